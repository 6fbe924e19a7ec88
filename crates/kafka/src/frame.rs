//! Size-prefixed frames: a big-endian i32 length, then that many bytes.

use bytes::BytesMut;
use tokio::io::AsyncRead;
use tokio::io::AsyncReadExt;

use crate::KafkaError;

/// Kafka's `socket.request.max.bytes` default: 100 MiB.
pub const DEFAULT_MAX_REQUEST_BYTES: u64 = 100 << 20;

/// Reads one request frame (without its size prefix). `Ok(None)` when the
/// peer closed the connection between frames. A size above `max_bytes` is
/// refused before anything is allocated for it.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max_bytes: u64,
) -> Result<Option<BytesMut>, KafkaError> {
    match read_frame_size(reader, max_bytes).await? {
        Some(size) => read_frame_body(reader, size).await.map(Some),
        None => Ok(None),
    }
}

/// Reads a frame's size prefix only, so that a server can reserve memory
/// for the frame before it reads (and allocates) the body. `Ok(None)` when
/// the peer closed the connection between frames; a size above
/// `max_bytes` is refused.
pub async fn read_frame_size<R: AsyncRead + Unpin>(
    reader: &mut R,
    max_bytes: u64,
) -> Result<Option<usize>, KafkaError> {
    let mut size = [0u8; 4];
    match reader.read_exact(&mut size).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let size = i32::from_be_bytes(size);
    if size < 0 {
        return Err(KafkaError::NegativeFrameSize(size));
    }
    if size as u64 > max_bytes {
        return Err(KafkaError::FrameTooLarge {
            size: size as u64,
            max: max_bytes,
        });
    }
    Ok(Some(size as usize))
}

/// Reads the body of a frame whose size prefix [`read_frame_size`] read.
pub async fn read_frame_body<R: AsyncRead + Unpin>(
    reader: &mut R,
    size: usize,
) -> Result<BytesMut, KafkaError> {
    let mut frame = BytesMut::zeroed(size);
    reader.read_exact(&mut frame).await?;
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_are_read_whole_and_oversized_ones_refused() {
        let mut input: &[u8] = &[0, 0, 0, 3, 7, 8, 9, 0, 0, 0, 1];
        let f = read_frame(&mut input, 10).await.unwrap().unwrap();
        assert_eq!(&f[..], &[7, 8, 9]);
        // A frame cut short by the peer closing is an error, not a frame.
        assert!(matches!(
            read_frame(&mut input, 10).await,
            Err(KafkaError::Io(_))
        ));
        let mut empty: &[u8] = &[];
        assert!(read_frame(&mut empty, 10).await.unwrap().is_none());
        let mut big: &[u8] = &[0, 0, 0, 11];
        assert!(matches!(
            read_frame(&mut big, 10).await,
            Err(KafkaError::FrameTooLarge { size: 11, max: 10 })
        ));
        let mut negative: &[u8] = &[0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            read_frame(&mut negative, 10).await,
            Err(KafkaError::NegativeFrameSize(-1))
        ));
    }
}
