//! [`RecordBudget`]: hands out the records a benchmark may still send or
//! read, shared by its tasks.

use std::sync::atomic::{AtomicU64, Ordering};

/// A shared limit on records (or no limit).
#[derive(Debug)]
pub struct RecordBudget {
    limit: Option<u64>,
    claimed: AtomicU64,
}

impl RecordBudget {
    /// A budget of `limit` records; `None` is unlimited.
    pub fn new(limit: Option<u64>) -> Self {
        RecordBudget {
            limit,
            claimed: AtomicU64::new(0),
        }
    }

    /// Claims up to `want` records and returns how many were granted (0 once
    /// the budget is spent).
    pub fn claim(&self, want: u64) -> u64 {
        let Some(limit) = self.limit else {
            return want;
        };
        let before = self.claimed.fetch_add(want, Ordering::Relaxed);
        if before >= limit {
            // Keep the counter from creeping towards overflow.
            self.claimed.fetch_sub(want, Ordering::Relaxed);
            0
        } else {
            want.min(limit - before)
        }
    }

    /// Whether nothing is left.
    pub fn is_spent(&self) -> bool {
        self.limit
            .is_some_and(|limit| self.claimed.load(Ordering::Relaxed) >= limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limited() {
        let b = RecordBudget::new(Some(10));
        assert_eq!(b.claim(4), 4);
        assert_eq!(b.claim(4), 4);
        assert!(!b.is_spent());
        assert_eq!(b.claim(4), 2);
        assert!(b.is_spent());
        assert_eq!(b.claim(4), 0);
        assert_eq!(b.claim(1), 0);
    }

    #[test]
    fn unlimited() {
        let b = RecordBudget::new(None);
        assert_eq!(b.claim(u64::MAX), u64::MAX);
        assert!(!b.is_spent());
    }

    #[test]
    fn concurrent_claims_never_exceed_limit() {
        let b = std::sync::Arc::new(RecordBudget::new(Some(10_000)));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || {
                    let mut got = 0;
                    loop {
                        let n = b.claim(7);
                        if n == 0 {
                            return got;
                        }
                        got += n;
                    }
                })
            })
            .collect();
        let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(total, 10_000);
    }
}
