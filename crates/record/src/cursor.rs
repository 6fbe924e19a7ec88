//! A bounds-checked reader over a batch buffer.

use crate::varint::{unzigzag32, unzigzag64};

/// Why a [`Cursor`] read failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// Not enough bytes left.
    Eof,
    /// A varint starting at this absolute position is too long or overflows.
    BadVarint(usize),
}

/// Reads big-endian integers and varints from `buf[pos..end]`. Positions are
/// absolute indexes into `buf`, so errors can point into the whole batch.
#[derive(Debug, Clone)]
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> Cursor<'a> {
    #[cfg(test)]
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Cursor {
            buf,
            pos: 0,
            end: buf.len(),
        }
    }

    /// A cursor over `buf[pos..end]`; `end` is clamped to the buffer.
    pub(crate) fn with_range(buf: &'a [u8], pos: usize, end: usize) -> Self {
        let end = end.min(buf.len());
        Cursor {
            buf,
            pos: pos.min(end),
            end,
        }
    }

    /// Absolute position of the next byte to read.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.end - self.pos
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos == self.end
    }

    /// Skips `n` bytes and returns the absolute range they occupy.
    pub(crate) fn skip(&mut self, n: usize) -> Result<std::ops::Range<usize>, ReadError> {
        if n > self.remaining() {
            return Err(ReadError::Eof);
        }
        let start = self.pos;
        self.pos += n;
        Ok(start..self.pos)
    }

    pub(crate) fn i8(&mut self) -> Result<i8, ReadError> {
        let r = self.skip(1)?;
        Ok(self.buf[r.start] as i8)
    }

    fn unsigned(&mut self, max_bytes: usize) -> Result<u64, ReadError> {
        let start = self.pos;
        let mut value: u64 = 0;
        for i in 0..max_bytes {
            if self.pos >= self.end {
                return Err(ReadError::Eof);
            }
            let b = self.buf[self.pos];
            self.pos += 1;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ReadError::BadVarint(start))
    }

    /// Reads a zig-zag varint (at most 5 bytes, must fit 32 bits).
    pub(crate) fn varint(&mut self) -> Result<i32, ReadError> {
        let start = self.pos;
        let v = self.unsigned(5)?;
        let v = u32::try_from(v).map_err(|_| ReadError::BadVarint(start))?;
        Ok(unzigzag32(v))
    }

    /// Reads a zig-zag varlong (at most 10 bytes, must fit 64 bits).
    pub(crate) fn varlong(&mut self) -> Result<i64, ReadError> {
        let start = self.pos;
        let v = self.unsigned(10)?;
        // The 10th byte carries only bit 63; anything more overflowed.
        if self.pos - start == 10 && self.buf[self.pos - 1] > 1 {
            return Err(ReadError::BadVarint(start));
        }
        Ok(unzigzag64(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_overlong_and_overflowing_varints() {
        let six = [0x80, 0x80, 0x80, 0x80, 0x80, 0x00];
        assert_eq!(Cursor::new(&six).varint(), Err(ReadError::BadVarint(0)));
        // Five bytes whose value exceeds 32 bits.
        let big = [0xff, 0xff, 0xff, 0xff, 0x1f];
        assert_eq!(Cursor::new(&big).varint(), Err(ReadError::BadVarint(0)));
        let eleven = [0x80; 11];
        assert_eq!(Cursor::new(&eleven).varlong(), Err(ReadError::BadVarint(0)));
        let mut ten = [0xff; 10];
        ten[9] = 0x02;
        assert_eq!(Cursor::new(&ten).varlong(), Err(ReadError::BadVarint(0)));
        ten[9] = 0x01;
        assert_eq!(Cursor::new(&ten).varlong(), Ok(i64::MIN));
    }

    #[test]
    fn eof_is_reported() {
        assert_eq!(Cursor::new(&[0x80]).varint(), Err(ReadError::Eof));
        assert_eq!(Cursor::new(&[]).i8(), Err(ReadError::Eof));
        let buf = [1, 2, 3, 4];
        let mut c = Cursor::with_range(&buf, 1, 3);
        assert_eq!(c.remaining(), 2);
        assert_eq!(c.skip(3), Err(ReadError::Eof));
        assert_eq!(c.skip(2), Ok(1..3));
        assert!(c.is_empty());
        let c = Cursor::with_range(&buf, 9, 99);
        assert!(c.is_empty());
    }
}
