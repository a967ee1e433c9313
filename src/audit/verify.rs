//! `audit verify`: the whole chain, across rotated segments, checked against the head.
//!
//! Servers may be appending while this runs. The files are opened and measured under a
//! shared lock on the current file (writers take it exclusively for each record, so no
//! record is half-written at that moment), and only what was complete then is checked. Should
//! that find damage, the check is repeated holding the lock throughout, so that a writer's
//! repair of a crashed process's record is never mistaken for tampering.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::AuditError;
use super::files::{self, Head};
use super::record::{GENESIS, Link};
use super::scan::{self, ScanError};

/// Result of verifying a log.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// Records checked, in all segments.
    pub records: u64,
    /// Hash of the last record.
    pub last_hash: String,
    /// Whether a head file was found and the chain reaches it.
    pub head_checked: bool,
    /// Records after the head's checkpoint: appended since the head was last updated (the
    /// head moves at mutations, every 256 records, after a second, and on shutdown). Not a
    /// sign of tampering; removed records past the head cannot be detected.
    pub past_head: u64,
    /// Files checked: rotated segments (`FILE.1`, `FILE.2`, … oldest first) and the file.
    pub segments: usize,
    /// A damaged last record past the head, what a crash in the middle of a write leaves;
    /// the next server to open the log moves it to `FILE.quarantine`. Not counted in
    /// `records`.
    pub torn_tail: Option<String>,
}

struct Snapshot {
    segments: Vec<(PathBuf, File)>,
    current: File,
    len: u64,
    head: Option<Head>,
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> AuditError + '_ {
    move |source| AuditError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn broken(path: &Path, reason: String) -> AuditError {
    AuditError::Broken {
        path: path.display().to_string(),
        reason,
    }
}

/// Open every file of the log under a shared lock on the current file; returns with the
/// lock held.
fn snapshot(path: &Path) -> Result<Snapshot, AuditError> {
    loop {
        let current = File::open(path).map_err(io_err(path))?;
        current.lock_shared().map_err(io_err(path))?;
        let held = current.metadata().map_err(io_err(path))?;
        if !std::fs::metadata(path).is_ok_and(|now| files::same_file(&held, &now)) {
            // rotated between opening and locking
            let _ = current.unlock();
            continue;
        }
        let head = files::read_head(path).map_err(|r| broken(path, r))?;
        let mut segments = Vec::new();
        for (_, seg) in files::segments(path).map_err(io_err(path))? {
            let f = File::open(&seg).map_err(io_err(&seg))?;
            segments.push((seg, f));
        }
        return Ok(Snapshot {
            segments,
            current,
            len: held.len(),
            head,
        });
    }
}

fn check(path: &Path, snap: &mut Snapshot) -> Result<Verified, AuditError> {
    let watch = snap.head.as_ref().map(|h| h.seq);
    let mut base = Link::genesis();
    let mut records = 0;
    let mut watched = None;
    let walk_err = |p: &Path, e: ScanError| match e {
        ScanError::Io(source) => io_err(p)(source),
        ScanError::Broken(reason) => broken(p, reason),
    };
    for (seg, f) in &mut snap.segments {
        let len = f.metadata().map_err(io_err(seg))?.len();
        let walk = scan::walk(f, 0, len, base, watch).map_err(|e| walk_err(seg, e))?;
        if let Some(t) = walk.torn {
            return Err(broken(
                seg,
                format!("{} (a rotated segment must be intact)", t.reason),
            ));
        }
        records += walk.records;
        watched = watched.or(walk.watched);
        base = walk.last;
    }
    let walk =
        scan::walk(&mut snap.current, 0, snap.len, base, watch).map_err(|e| walk_err(path, e))?;
    records += walk.records;
    watched = watched.or(walk.watched);
    let last = walk.last;
    let mut past_head = 0;
    if let Some(h) = &snap.head {
        if last.seq < h.seq {
            return Err(broken(
                path,
                format!(
                    "the log ends at record {}, but its head records {}: records were removed from the end",
                    last.seq, h.seq
                ),
            ));
        }
        let reached = if h.seq == 0 {
            h.hash == GENESIS
        } else {
            watched.as_deref() == Some(h.hash.as_str())
        };
        if !reached {
            return Err(broken(
                path,
                format!(
                    "record {} is not the one its head records: the log was rewritten",
                    h.seq
                ),
            ));
        }
        past_head = last.seq - h.seq;
    }
    Ok(Verified {
        records,
        last_hash: last.hash,
        head_checked: snap.head.is_some(),
        past_head,
        segments: snap.segments.len() + 1,
        torn_tail: walk.torn.map(|t| format!("{} ({} bytes)", t.reason, t.len)),
    })
}

/// Check a log's whole chain — its rotated segments `FILE.1`, `FILE.2`, … (oldest first,
/// the first starting from the genesis hash, each continuing the one before) and then
/// `FILE` — and compare its end with `FILE.head`. Returns the count and last hash, or where
/// the chain breaks.
pub fn verify(path: &Path) -> Result<Verified, AuditError> {
    let mut snap = snapshot(path)?;
    let _ = snap.current.unlock();
    match check(path, &mut snap) {
        Err(AuditError::Broken { .. }) => {
            // confirm with writers held off (see the module comment)
            let mut snap = snapshot(path)?;
            let result = check(path, &mut snap);
            let _ = snap.current.unlock();
            result
        }
        other => other,
    }
}
