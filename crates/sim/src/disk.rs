//! A node's simulated disk: RocksDB on a memory file system (`/dev/shm`),
//! where a crash keeps only what was fsynced.
//!
//! ```text
//!  incarnation k: <root>/node-<id>/<k>/db      (RocksDB, WAL written on every write, unsynced)
//!        each WAL fsync ──after_fsync──► synced[wal file] = its size now
//!  crash: checkpoint <k>/db into <k+1>/db (no flush), every WAL file cut to
//!         its synced size (a file never fsynced: empty) ─► restart opens <k+1>
//! ```
//!
//! The store fsyncs on the simulation's own thread (`sync_in_runtime`), so the
//! size read right after an fsync is exactly what it covered. SST and MANIFEST files
//! are copied whole: RocksDB fsyncs them itself before it relies on them.
//! The crashed incarnation's files are removed once its node is stopped.

use std::collections::HashMap;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context as _;
use cairn_storage::FsyncHook;
use cairn_storage::NodeStore;
use cairn_storage::StoreOptions;
use cairn_storage::SyncDelay;
use rand::rngs::StdRng;
use rand::Rng;
use rand::SeedableRng;

/// Durable sizes of WAL files, by file name.
type Synced = Arc<Mutex<HashMap<String, u64>>>;

pub struct SimDisk {
    root: PathBuf,
    incarnation: u32,
    synced: Synced,
}

fn wal_sizes(db: &Path) -> HashMap<String, u64> {
    let mut out = HashMap::new();
    if let Ok(dir) = std::fs::read_dir(db) {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".log") && !name.starts_with("LOG") {
                if let Ok(m) = e.metadata() {
                    out.insert(name, m.len());
                }
            }
        }
    }
    out
}

/// How long one fsync takes: mostly a fast disk, sometimes a slow one,
/// now and then a stall. A leader's own fsync can thus finish after its
/// followers have written and fsynced the entries it sent them.
fn fsync_time(rng: &mut StdRng) -> Duration {
    let micros = match rng.random_range(0..100) {
        0..=69 => rng.random_range(300..2_000),
        70..=94 => rng.random_range(2_000..20_000),
        _ => rng.random_range(20_000..200_000),
    };
    Duration::from_micros(micros)
}

impl SimDisk {
    pub fn new(root: PathBuf) -> SimDisk {
        SimDisk {
            root,
            incarnation: 0,
            synced: Arc::default(),
        }
    }

    /// The data dir of the current incarnation.
    pub fn data_dir(&self) -> PathBuf {
        self.root.join(self.incarnation.to_string())
    }

    fn db(&self) -> PathBuf {
        self.data_dir().join("db")
    }

    /// The store options of a simulated node: fsync inline, record what each
    /// fsync made durable, small memory, optionally the planted bug.
    pub fn store_options(&mut self, plant_ack_before_fsync: bool, seed: u64) -> StoreOptions {
        let db = self.db();
        let rng = Mutex::new(StdRng::seed_from_u64(seed));
        // What is on disk when the store opens was durable (a fresh store,
        // or a crash copy). A map of this incarnation's own: a crashed
        // incarnation's late fsync must not count for the next.
        let synced: Synced = Arc::new(Mutex::new(wal_sizes(&db)));
        self.synced = synced.clone();
        StoreOptions {
            write_buffer_mb: 16,
            block_cache_mb: 4,
            max_background_jobs: 1,
            min_blob_size_bytes: 0,
            direct_io_for_flush_and_compaction: false,
            sync_in_runtime: Some(SyncDelay(Arc::new(move || {
                let mut rng = rng.lock().unwrap_or_else(|e| e.into_inner());
                fsync_time(&mut rng)
            }))),
            plant_ack_before_fsync,
            after_fsync: Some(FsyncHook(Arc::new(move || {
                let sizes = wal_sizes(&db);
                *synced.lock().unwrap_or_else(|e| e.into_inner()) = sizes;
            }))),
            ..StoreOptions::default()
        }
    }

    /// A power loss: the next incarnation holds only what was fsynced.
    /// Call while the crashed node's store is still open (nothing else of
    /// the simulation runs meanwhile: it is single-threaded). RocksDB's own
    /// flush and compaction threads are not the simulation's and may be at
    /// work: the copy is a RocksDB checkpoint (the live files, consistent
    /// with its MANIFEST) rather than a copy of the directory, which could
    /// name an SST file written after the listing (long-run seeds 100136,
    /// 100293: the next incarnation did not open).
    pub fn crash(&mut self, store: &NodeStore) -> anyhow::Result<()> {
        let synced = self
            .synced
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        self.incarnation += 1;
        let to = self.db();
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("create {}", parent.display()))?;
        }
        store
            .checkpoint_unflushed(&to)
            .with_context(|| format!("checkpoint into {}", to.display()))?;
        for e in std::fs::read_dir(&to).with_context(|| format!("read {}", to.display()))? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".log") || name.starts_with("LOG") {
                continue;
            }
            // Rewritten rather than cut in place: a checkpoint hard-links
            // closed WAL files, shared with the crashed incarnation.
            let keep = synced.get(&name).copied().unwrap_or(0);
            let mut bytes = std::fs::read(e.path())?;
            bytes.truncate(usize::try_from(keep).unwrap_or(usize::MAX));
            let fresh = to.join(format!("{name}.cut"));
            std::fs::write(&fresh, &bytes)?;
            std::fs::rename(&fresh, e.path())?;
        }
        Ok(())
    }

    /// Removes every incarnation but the current one.
    pub fn remove_old(&self) {
        for k in 0..self.incarnation {
            let _ = std::fs::remove_dir_all(self.root.join(k.to_string()));
        }
    }

    pub fn remove_all(&self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
