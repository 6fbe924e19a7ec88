use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;

use cairn_raft::GroupId;
use tokio::sync::watch;

/// State a partition's state machine publishes to its readers.
pub struct PartitionShared {
    pub group: GroupId,
    /// Next offset to assign == high watermark: every offset below it is
    /// committed on a majority and applied.
    high_watermark: watch::Sender<u64>,
    log_start: AtomicU64,
    /// 1 + the Raft index a snapshot should cover so the log below the log
    /// start can be purged; 0 while there is none.
    purge_wanted: AtomicU64,
}

impl PartitionShared {
    pub fn new(group: GroupId) -> Self {
        Self {
            group,
            high_watermark: watch::Sender::new(0),
            log_start: AtomicU64::new(0),
            purge_wanted: AtomicU64::new(0),
        }
    }

    pub fn high_watermark(&self) -> u64 {
        *self.high_watermark.borrow()
    }

    pub fn log_start(&self) -> u64 {
        self.log_start.load(Ordering::Acquire)
    }

    /// The Raft index up to which the log holds only records below the log
    /// start: a snapshot at that index lets openraft purge them.
    pub fn purge_wanted(&self) -> Option<u64> {
        self.purge_wanted.load(Ordering::Acquire).checked_sub(1)
    }

    pub(crate) fn publish_purge(&self, upto: Option<u64>) {
        self.purge_wanted
            .store(upto.map_or(0, |i| i + 1), Ordering::Release);
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.high_watermark.subscribe()
    }

    pub(crate) fn publish(&self, high_watermark: u64, log_start: u64) {
        self.log_start.store(log_start, Ordering::Release);
        self.high_watermark.send_if_modified(|hw| {
            let changed = *hw != high_watermark;
            *hw = high_watermark;
            changed
        });
    }
}
