//! Splitting a buffer of concatenated batches (a Kafka "records" field).

use crate::header::{BATCH_LENGTH_OFFSET, LOG_OVERHEAD, MIN_BATCH_LENGTH};
use crate::RecordError;

/// Iterator over the batches in a buffer of concatenated batches, yielding
/// each batch's bytes (`batchLength + 12` of them).
///
/// Only the `batchLength` field is read to find boundaries; call
/// [`crate::validate_batch`] on each batch to check it. After the first
/// error the iterator yields nothing more.
///
/// Created by [`split_batches`] (every batch must be complete) or
/// [`split_batches_allow_partial`] (a truncated last batch ends iteration
/// quietly and is reported by [`BatchIter::partial_tail`]).
#[derive(Debug, Clone)]
pub struct BatchIter<'a> {
    buf: &'a [u8],
    pos: usize,
    allow_partial: bool,
    partial_tail: bool,
    done: bool,
}

/// Walks `buf`, which must consist of complete batches only: a truncated
/// last batch yields [`RecordError::Truncated`], a `batchLength` below 49
/// yields [`RecordError::InvalidBatchLength`]. An empty buffer yields nothing.
pub fn split_batches(buf: &[u8]) -> BatchIter<'_> {
    BatchIter::new(buf, false)
}

/// Walks `buf` like [`split_batches`], but a last batch cut short (as in a
/// Kafka fetch response limited by `max_bytes`) is not an error: iteration
/// ends before it and [`BatchIter::partial_tail`] returns its bytes. A
/// `batchLength` below 49 is still an error.
pub fn split_batches_allow_partial(buf: &[u8]) -> BatchIter<'_> {
    BatchIter::new(buf, true)
}

impl<'a> BatchIter<'a> {
    fn new(buf: &'a [u8], allow_partial: bool) -> Self {
        BatchIter {
            buf,
            pos: 0,
            allow_partial,
            partial_tail: false,
            done: false,
        }
    }

    /// Byte position of the next batch in the buffer; after iteration ends
    /// without error, the number of bytes in complete batches.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Whether iteration stopped at a truncated last batch (only possible for
    /// [`split_batches_allow_partial`]).
    pub fn is_tail_partial(&self) -> bool {
        self.partial_tail
    }

    /// The bytes of the truncated last batch, if iteration stopped at one.
    pub fn partial_tail(&self) -> Option<&'a [u8]> {
        if self.partial_tail {
            self.buf.get(self.pos..)
        } else {
            None
        }
    }

    fn truncated(&mut self, needed: usize, got: usize) -> Option<Result<&'a [u8], RecordError>> {
        self.done = true;
        if self.allow_partial {
            self.partial_tail = true;
            None
        } else {
            Some(Err(RecordError::Truncated { needed, got }))
        }
    }
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = Result<&'a [u8], RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        if rest.is_empty() {
            self.done = true;
            return None;
        }
        let Some(len_bytes) = rest.get(BATCH_LENGTH_OFFSET..LOG_OVERHEAD) else {
            return self.truncated(LOG_OVERHEAD, rest.len());
        };
        let mut raw = [0u8; 4];
        raw.copy_from_slice(len_bytes);
        let batch_length = i32::from_be_bytes(raw);
        if batch_length < MIN_BATCH_LENGTH {
            self.done = true;
            return Some(Err(RecordError::InvalidBatchLength(batch_length)));
        }
        // batch_length >= 49, so the conversion is lossless.
        let total = batch_length as usize + LOG_OVERHEAD;
        let Some(batch) = rest.get(..total) else {
            return self.truncated(total, rest.len());
        };
        self.pos += total;
        Some(Ok(batch))
    }
}

impl std::iter::FusedIterator for BatchIter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{validate_batch, RecordBatchBuilder};

    fn batch(n: usize) -> Vec<u8> {
        let mut b = RecordBatchBuilder::new();
        for i in 0..n {
            b.push(i as i64, None, Some(&[i as u8; 10]), &[]);
        }
        b.build().to_vec()
    }

    #[test]
    fn splits_complete_batches() {
        let (a, b, c) = (batch(1), batch(2), batch(3));
        let all = [a.clone(), b.clone(), c.clone()].concat();
        let parts: Vec<&[u8]> = split_batches(&all).map(Result::unwrap).collect();
        assert_eq!(parts, vec![&a[..], &b[..], &c[..]]);
        for p in parts {
            validate_batch(p).unwrap();
        }
        assert_eq!(split_batches(&[]).count(), 0);
    }

    #[test]
    fn strict_reports_truncated_tail() {
        let (a, b) = (batch(1), batch(2));
        let all = [a.clone(), b.clone()].concat();
        let cut = &all[..all.len() - 3];
        let mut it = split_batches(cut);
        assert_eq!(it.next(), Some(Ok(&a[..])));
        assert_eq!(
            it.next(),
            Some(Err(RecordError::Truncated {
                needed: b.len(),
                got: b.len() - 3
            }))
        );
        assert_eq!(it.next(), None);
        assert!(!it.is_tail_partial());
        // Fewer than 12 bytes left.
        let mut it = split_batches(&all[..a.len() + 5]);
        assert!(it.next().unwrap().is_ok());
        assert_eq!(
            it.next(),
            Some(Err(RecordError::Truncated { needed: 12, got: 5 }))
        );
    }

    #[test]
    fn lenient_stops_at_partial_tail() {
        let (a, b) = (batch(1), batch(2));
        let all = [a.clone(), b.clone()].concat();
        for cut in [a.len() + 1, a.len() + 11, a.len() + 12, all.len() - 1] {
            let mut it = split_batches_allow_partial(&all[..cut]);
            let got: Vec<_> = (&mut it).collect();
            assert_eq!(got, vec![Ok(&a[..])]);
            assert!(it.is_tail_partial());
            assert_eq!(it.position(), a.len());
            assert_eq!(it.partial_tail(), Some(&all[a.len()..cut]));
        }
        let mut it = split_batches_allow_partial(&all);
        assert_eq!(it.by_ref().count(), 2);
        assert!(!it.is_tail_partial());
        assert_eq!(it.partial_tail(), None);
        assert_eq!(it.position(), all.len());
    }

    #[test]
    fn invalid_length_is_an_error_in_both_modes() {
        let mut all = batch(1);
        all.extend_from_slice(&[0u8; 8]);
        all.extend_from_slice(&10i32.to_be_bytes());
        all.extend_from_slice(&[0u8; 40]);
        for mut it in [split_batches(&all), split_batches_allow_partial(&all)] {
            assert!(it.next().unwrap().is_ok());
            assert_eq!(it.next(), Some(Err(RecordError::InvalidBatchLength(10))));
            assert_eq!(it.next(), None);
            assert!(!it.is_tail_partial());
        }
    }
}
