//! The history being written: every operation of every process, in the
//! order they happened, with its time since the run started.

use std::path::Path;
use std::sync::Mutex;

use anyhow::Result;
use cairn_jepsen::{HistoryWriter, Op, OpF, OpKind};
use tokio::time::Instant;

pub struct Recorder {
    start: Instant,
    inner: Mutex<Inner>,
}

struct Inner {
    writer: HistoryWriter,
    next_index: u64,
    error: Option<String>,
}

impl Recorder {
    pub fn create(path: &Path) -> Result<Recorder> {
        Ok(Recorder {
            start: Instant::now(),
            inner: Mutex::new(Inner {
                writer: HistoryWriter::create(path)?,
                next_index: 0,
                error: None,
            }),
        })
    }

    /// Microseconds since the run started.
    pub fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    /// Appends one operation; `fill` sets its optional fields. Returns its index.
    pub fn record(&self, process: u64, kind: OpKind, f: OpF, fill: impl FnOnce(&mut Op)) -> u64 {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let index = inner.next_index;
        inner.next_index += 1;
        let mut op = Op::new(index, self.now_us(), process, kind, f);
        fill(&mut op);
        if let Err(e) = inner.writer.append(&op) {
            inner.error.get_or_insert_with(|| e.to_string());
        }
        index
    }

    /// Flushes the file; reports the first write error of the run, if any.
    pub fn finish(&self) -> Result<()> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.writer.flush()?;
        match inner.error.take() {
            Some(e) => anyhow::bail!("writing the history failed: {e}"),
            None => Ok(()),
        }
    }
}
