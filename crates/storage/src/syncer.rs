//! The group-commit syncer: one OS thread per store turning many "tell me when my write is
//! durable" requests into one WAL fsync.
//!
//! ```text
//!  append(g1) ─write─┐                         ┌─> callback(g1)
//!  append(g7) ─write─┼─> queue ─> [take all] ──┼─> callback(g7)
//!  sync()     ─────  ┘            flush_wal(true)└─> sync() returns
//! ```
//!
//! Every request is enqueued *after* its write returned, and the thread takes requests off
//! the queue *before* it starts the fsync, so the fsync covers every write whose request it
//! completes. Requests that arrive during an fsync wait for the next one; that is the group
//! commit: while the disk is busy, requests pile up and share the next fsync.
//!
//! After a failed fsync the syncer is poisoned: it never fsyncs again and fails every
//! request, because after a failed fsync the kernel may have dropped dirty pages and a
//! retried fsync can report success for data that never reached the disk.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;

use crate::error::Cause;

/// Why a sync request failed.
#[derive(Debug, Clone)]
pub(crate) enum SyncFailure {
    /// The fsync failed (`poisoned`: an earlier one did, this request was not even tried).
    Fsync {
        error: rocksdb::Error,
        poisoned: bool,
    },
    /// The syncer thread is gone.
    Stopped,
}

impl SyncFailure {
    pub(crate) fn into_cause(self) -> Cause {
        match self {
            SyncFailure::Fsync { error, poisoned } => Cause::WalSync { error, poisoned },
            SyncFailure::Stopped => Cause::SyncerStopped,
        }
    }
}

/// Called on the syncer thread once a WAL fsync covering the request's write completed (or
/// failed). Must not block: it runs before the completions after it.
pub(crate) type Completion = Box<dyn FnOnce(Result<(), SyncFailure>) + Send + 'static>;

#[derive(Debug, Default)]
struct Counters {
    syncs: AtomicU64,
    waiters: AtomicU64,
}

/// Handle to the syncer thread. Dropping it lets the thread drain the queue and exit, and
/// joins it.
pub(crate) struct Syncer {
    tx: Option<mpsc::Sender<Completion>>,
    thread: Option<thread::JoinHandle<()>>,
    counters: Arc<Counters>,
    /// Runtime mode (the simulator): no thread; fsyncs run on the tokio
    /// runtime of the caller.
    inline: Option<Arc<std::sync::Mutex<Inline>>>,
}

type Fsync = Box<dyn FnMut() -> Result<(), rocksdb::Error> + Send + 'static>;

struct Inline {
    fsync: Fsync,
    poisoned: Option<rocksdb::Error>,
    /// How long each fsync takes (simulated); zero: at once, on the
    /// caller's thread.
    delay: crate::options::SyncDelay,
    /// Requests waiting for the scheduled fsync.
    queue: Vec<Completion>,
    scheduled: bool,
    /// Fault injection (a bug planted on purpose): complete before fsyncing,
    /// and never fsync.
    ack_before_fsync: bool,
}

impl Syncer {
    /// Start the thread; `fsync` makes every write completed before the call durable.
    pub(crate) fn spawn<F>(fsync: F) -> std::io::Result<Syncer>
    where
        F: FnMut() -> Result<(), rocksdb::Error> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let thread_counters = Arc::clone(&counters);
        let thread = thread::Builder::new()
            .name("cairn-wal-sync".into())
            .spawn(move || run(rx, fsync, &thread_counters))?;
        Ok(Syncer {
            tx: Some(tx),
            thread: Some(thread),
            counters,
            inline: None,
        })
    }

    /// A syncer without a thread, for a simulated cluster whose clock is
    /// paused: an fsync is a task on the caller's tokio runtime that takes
    /// what `delay` says (simulated) and serves every request queued meanwhile (group
    /// commit, as the thread does); with a zero delay each request fsyncs at
    /// once on the caller's thread. No real thread works while simulated
    /// time runs on. With `ack_before_fsync` it completes requests without
    /// any fsync: a bug planted on purpose, for the simulator to find.
    pub(crate) fn in_runtime<F>(
        fsync: F,
        delay: crate::options::SyncDelay,
        ack_before_fsync: bool,
    ) -> Syncer
    where
        F: FnMut() -> Result<(), rocksdb::Error> + Send + 'static,
    {
        Syncer {
            tx: None,
            thread: None,
            counters: Arc::new(Counters::default()),
            inline: Some(Arc::new(std::sync::Mutex::new(Inline {
                fsync: Box::new(fsync),
                poisoned: None,
                delay,
                queue: Vec::new(),
                scheduled: false,
                ack_before_fsync,
            }))),
        }
    }

    /// Queue `completion` for the next fsync. The caller's write must have returned already.
    pub(crate) fn enqueue(&self, completion: Completion) {
        if let Some(inline) = &self.inline {
            self.enqueue_in_runtime(inline, completion);
            return;
        }
        let Some(tx) = &self.tx else {
            completion(Err(SyncFailure::Stopped));
            return;
        };
        if let Err(mpsc::SendError(completion)) = tx.send(completion) {
            completion(Err(SyncFailure::Stopped));
        }
    }

    fn enqueue_in_runtime(&self, inline: &Arc<std::sync::Mutex<Inline>>, completion: Completion) {
        let Ok(mut i) = inline.lock() else {
            completion(Err(SyncFailure::Stopped));
            return;
        };
        let handle = tokio::runtime::Handle::try_current();
        let delay = if i.ack_before_fsync || i.scheduled {
            std::time::Duration::ZERO
        } else {
            (i.delay.0)()
        };
        if i.ack_before_fsync || (delay.is_zero() && !i.scheduled) || handle.is_err() {
            let outcome = i.sync(&self.counters);
            drop(i);
            completion(outcome);
            return;
        }
        i.queue.push(completion);
        if i.scheduled {
            return;
        }
        i.scheduled = true;
        drop(i);
        let inline = Arc::clone(inline);
        let counters = Arc::clone(&self.counters);
        if let Ok(handle) = handle {
            handle.spawn(async move {
                tokio::time::sleep(delay).await;
                let (batch, outcome) = {
                    let Ok(mut i) = inline.lock() else {
                        return;
                    };
                    i.scheduled = false;
                    let batch = std::mem::take(&mut i.queue);
                    let outcome = i.sync(&counters);
                    (batch, outcome)
                };
                for completion in batch {
                    completion(outcome.clone());
                }
            });
        }
    }

    pub(crate) fn syncs(&self) -> u64 {
        self.counters.syncs.load(Ordering::Relaxed)
    }

    pub(crate) fn waiters(&self) -> u64 {
        self.counters.waiters.load(Ordering::Relaxed)
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        // Closing the channel ends the thread once it has served everything queued.
        drop(self.tx.take());
        if let Some(handle) = self.thread.take() {
            // A completion could hold the last store handle; never join ourselves.
            if handle.thread().id() != thread::current().id() && handle.join().is_err() {
                tracing::error!("cairn-wal-sync thread panicked");
            }
        }
    }
}

impl Inline {
    fn sync(&mut self, counters: &Counters) -> Result<(), SyncFailure> {
        counters.waiters.fetch_add(1, Ordering::Relaxed);
        if self.ack_before_fsync {
            return Ok(());
        }
        if let Some(error) = &self.poisoned {
            return Err(SyncFailure::Fsync {
                error: error.clone(),
                poisoned: true,
            });
        }
        counters.syncs.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("cairn_storage_syncs_total").increment(1);
        (self.fsync)().map_err(|error| {
            self.poisoned = Some(error.clone());
            SyncFailure::Fsync {
                error,
                poisoned: false,
            }
        })
    }
}

fn run<F>(rx: mpsc::Receiver<Completion>, mut fsync: F, counters: &Counters)
where
    F: FnMut() -> Result<(), rocksdb::Error>,
{
    let mut poisoned: Option<rocksdb::Error> = None;
    let mut batch: Vec<Completion> = Vec::new();
    while let Ok(first) = rx.recv() {
        batch.push(first);
        batch.extend(rx.try_iter());
        let waiters = batch.len();

        let outcome = match &poisoned {
            Some(error) => Err(SyncFailure::Fsync {
                error: error.clone(),
                poisoned: true,
            }),
            None => {
                let started = cairn_clock::now();
                let result = fsync();
                let seconds = started.elapsed().as_secs_f64();
                counters.syncs.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("cairn_storage_syncs_total").increment(1);
                metrics::histogram!("cairn_storage_sync_seconds").record(seconds);
                match result {
                    Ok(()) => Ok(()),
                    Err(error) => {
                        tracing::error!(
                            waiters,
                            seconds,
                            error = %error,
                            "WAL fsync failed; failing all waiters, store is poisoned"
                        );
                        poisoned = Some(error.clone());
                        Err(SyncFailure::Fsync {
                            error,
                            poisoned: false,
                        })
                    }
                }
            }
        };
        metrics::histogram!("cairn_storage_sync_batch_size").record(waiters as f64);
        counters
            .waiters
            .fetch_add(waiters as u64, Ordering::Relaxed);

        for completion in batch.drain(..) {
            let outcome = outcome.clone();
            if std::panic::catch_unwind(AssertUnwindSafe(move || completion(outcome))).is_err() {
                tracing::error!(
                    waiters,
                    "sync completion panicked; continuing with the others"
                );
            }
        }
    }
    tracing::debug!(
        syncs = counters.syncs.load(Ordering::Relaxed),
        "cairn-wal-sync thread exiting"
    );
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc as std_mpsc;
    use std::sync::Mutex;

    use super::*;

    type Outcomes = Arc<Mutex<Vec<Result<(), String>>>>;

    fn recorder(outcomes: &Outcomes) -> Completion {
        let outcomes = Arc::clone(outcomes);
        Box::new(move |r| {
            outcomes
                .lock()
                .unwrap()
                .push(r.map_err(|f| f.into_cause().to_string()))
        })
    }

    /// While an fsync is in progress, everything queued shares the next single fsync.
    #[test]
    fn requests_queued_during_an_fsync_share_the_next_one() {
        let (entered_tx, entered_rx) = std_mpsc::channel::<()>();
        let (release_tx, release_rx) = std_mpsc::channel::<()>();
        let syncer = Syncer::spawn(move || {
            entered_tx.send(()).ok();
            release_rx.recv().ok();
            Ok(())
        })
        .unwrap();
        let outcomes: Outcomes = Arc::default();

        syncer.enqueue(recorder(&outcomes));
        entered_rx.recv().unwrap(); // first fsync is running
        for _ in 0..50 {
            syncer.enqueue(recorder(&outcomes));
        }
        release_tx.send(()).unwrap(); // finish fsync #1
        entered_rx.recv().unwrap(); // fsync #2 started, with all 50 taken
        release_tx.send(()).unwrap();
        drop(syncer); // joins: every completion has run

        assert_eq!(outcomes.lock().unwrap().len(), 51);
        assert!(outcomes.lock().unwrap().iter().all(Result::is_ok));
        // Exactly two fsyncs happened: the channel would have closed otherwise.
        assert!(entered_rx.try_recv().is_err());
    }

    #[test]
    fn counters_and_drain_on_drop() {
        let syncer = Syncer::spawn(|| Ok(())).unwrap();
        let outcomes: Outcomes = Arc::default();
        for _ in 0..10 {
            syncer.enqueue(recorder(&outcomes));
        }
        // Wait for all 10 through a final marker.
        let (tx, rx) = std_mpsc::channel();
        syncer.enqueue(Box::new(move |r| tx.send(r.is_ok()).unwrap()));
        assert!(rx.recv().unwrap());
        assert_eq!(syncer.waiters(), 11);
        assert!(syncer.syncs() >= 1 && syncer.syncs() <= 11);
        drop(syncer);
        assert_eq!(outcomes.lock().unwrap().len(), 10);
    }

    /// `rocksdb::Error` has no public constructor; get a real one.
    fn a_rocksdb_error() -> rocksdb::Error {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"not a directory").unwrap();
        match rocksdb::DB::open_default(&file) {
            Ok(_) => panic!("opening a DB inside a file succeeded"),
            Err(e) => e,
        }
    }

    #[test]
    fn a_failed_fsync_fails_everyone_and_poisons() {
        let error = a_rocksdb_error();
        let calls = Arc::new(AtomicU64::new(0));
        let thread_calls = Arc::clone(&calls);
        let syncer = Syncer::spawn(move || {
            thread_calls.fetch_add(1, Ordering::SeqCst);
            Err(error.clone())
        })
        .unwrap();
        let (tx, rx) = std_mpsc::channel();
        let mut poisoned_flags = Vec::new();
        for _ in 0..3 {
            let tx = tx.clone();
            syncer.enqueue(Box::new(move |r| tx.send(r).unwrap()));
            match rx.recv().unwrap() {
                Err(SyncFailure::Fsync { poisoned, .. }) => poisoned_flags.push(poisoned),
                other => panic!("expected an fsync failure, got {other:?}"),
            }
        }
        drop(syncer);
        // The first request saw the failure itself, the later ones the poison; no retry.
        assert_eq!(poisoned_flags, [false, true, true]);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    /// A runtime-mode syncer whose fsyncs take 2 ms and are counted.
    fn counting_in_runtime(ack_before_fsync: bool) -> (Syncer, Arc<AtomicU64>) {
        let calls = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&calls);
        let syncer = Syncer::in_runtime(
            move || {
                counted.fetch_add(1, Ordering::SeqCst);
                Ok(())
            },
            crate::options::SyncDelay(Arc::new(|| std::time::Duration::from_millis(2))),
            ack_before_fsync,
        );
        (syncer, calls)
    }

    /// The simulator's mode: an fsync takes its (simulated) time on the
    /// runtime, and everything queued meanwhile shares it.
    #[tokio::test(start_paused = true)]
    async fn in_runtime_mode_completes_only_after_the_delayed_fsync() {
        let (syncer, calls) = counting_in_runtime(false);
        let outcomes: Outcomes = Arc::default();
        for _ in 0..3 {
            syncer.enqueue(recorder(&outcomes));
        }
        assert!(
            outcomes.lock().unwrap().is_empty(),
            "completed before the fsync"
        );
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        assert!(
            outcomes.lock().unwrap().is_empty(),
            "completed before the fsync"
        );
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        assert_eq!(outcomes.lock().unwrap().len(), 3);
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "one fsync served all three"
        );
    }

    /// The planted bug: completions without any fsync.
    #[tokio::test(start_paused = true)]
    async fn the_planted_bug_acknowledges_without_fsync() {
        let (syncer, calls) = counting_in_runtime(true);
        let outcomes: Outcomes = Arc::default();
        syncer.enqueue(recorder(&outcomes));
        assert_eq!(outcomes.lock().unwrap().len(), 1);
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_panicking_completion_does_not_stop_the_others() {
        let syncer = Syncer::spawn(|| Ok(())).unwrap();
        syncer.enqueue(Box::new(|_| panic!("boom")));
        let (tx, rx) = std_mpsc::channel();
        syncer.enqueue(Box::new(move |r| tx.send(r.is_ok()).unwrap()));
        assert!(rx.recv().unwrap());
    }
}
