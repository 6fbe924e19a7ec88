//! [`ValuePool`]: random, incompressible record values without per-record
//! random number generation.
//!
//! One buffer of random bytes is generated up front; each value is a slice of
//! it at a pseudo-random position. The buffer is much larger than a record
//! batch, so values of one batch rarely overlap and compress no better than
//! random data.

use bytes::Bytes;
use rand::RngCore;

/// Pool size beyond the value size.
const POOL_BYTES: usize = 8 << 20;

/// A buffer of random bytes to slice values from.
#[derive(Debug, Clone)]
pub struct ValuePool {
    data: Bytes,
    value_size: usize,
}

impl ValuePool {
    /// A pool for values of `value_size` bytes.
    pub fn new(value_size: usize) -> Self {
        let mut data = vec![0u8; POOL_BYTES + value_size];
        rand::rng().fill_bytes(&mut data);
        ValuePool {
            data: Bytes::from(data),
            value_size,
        }
    }

    /// The value at position `seed` (any number; e.g. from [`next_seed`]).
    pub fn value(&self, seed: u64) -> &[u8] {
        let positions = self.data.len() - self.value_size + 1;
        let start = (seed % positions as u64) as usize;
        &self.data[start..start + self.value_size]
    }
}

/// Advances a xorshift64 state (must be non-zero) and returns the new value.
pub fn next_seed(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_have_the_right_size_and_vary() {
        let pool = ValuePool::new(100);
        let mut state = 0x1234_5678;
        let a = pool.value(next_seed(&mut state)).to_vec();
        let b = pool.value(next_seed(&mut state)).to_vec();
        assert_eq!(a.len(), 100);
        assert_eq!(b.len(), 100);
        assert_ne!(a, b);
        assert_eq!(pool.value(u64::MAX).len(), 100);
        assert!(ValuePool::new(0).value(5).is_empty());
    }

    #[test]
    fn xorshift_does_not_get_stuck() {
        let mut s = 1;
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            assert!(seen.insert(next_seed(&mut s)));
        }
    }
}
