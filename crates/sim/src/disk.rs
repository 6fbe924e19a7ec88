//! A node's simulated disk: RocksDB on a memory file system (`/dev/shm`),
//! where a crash keeps only what was fsynced.
//!
//! ```text
//!  incarnation k: <root>/node-<id>/<k>/db      (RocksDB, WAL written on every write, unsynced)
//!        each WAL fsync ──after_fsync──► synced[wal file] = its size now
//!  crash: copy <k>/db to <k+1>/db, every WAL file cut to its synced size
//!         (a file never fsynced: empty) ─► restart opens <k+1>
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
    /// Call while the crashed node's store may still be open (nothing runs
    /// meanwhile: the simulation is single-threaded).
    pub fn crash(&mut self) -> anyhow::Result<()> {
        let from = self.db();
        self.incarnation += 1;
        let to = self.db();
        std::fs::create_dir_all(&to).with_context(|| format!("create {}", to.display()))?;
        let synced = self
            .synced
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for e in std::fs::read_dir(&from).with_context(|| format!("read {}", from.display()))? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name == "LOCK" || name.starts_with("LOG") {
                continue;
            }
            let dest = to.join(&name);
            if std::fs::copy(e.path(), &dest).is_err() {
                // Deleted by RocksDB while we listed: it was obsolete.
                continue;
            }
            if name.ends_with(".log") {
                let keep = synced.get(&name).copied().unwrap_or(0);
                let f = std::fs::OpenOptions::new().write(true).open(&dest)?;
                if f.metadata()?.len() > keep {
                    f.set_len(keep)?;
                }
            }
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
