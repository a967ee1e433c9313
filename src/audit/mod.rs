//! Append-only audit log: JSON Lines, one record per tool call (and one more before a
//! mutation is applied), each carrying the hash of the previous record so that editing,
//! reordering or removing records is detectable (`eks-ops-mcp audit verify FILE`).
//!
//! - Crashes: a record is one `write` of a whole line. `FILE.head` is a checkpoint (sequence
//!   number, hash and byte offset of a record known to be on disk), replaced atomically. On
//!   open only the records after the checkpoint are walked: those that chain are accepted
//!   and the head moved forward; a damaged last record (what a crash or a full disk leaves)
//!   is moved to `FILE.quarantine`, reported and counted, and the file cut back to the last
//!   good record.
//! - The head moves at every mutation record (which is synced to disk first), every 256
//!   records, at a record written a second or more after the last move, and on shutdown; a
//!   read's record costs one write and no sync.
//! - Full disk: a failed write is cut back so that no partial record stays; what the server
//!   then does is [`AuditFailurePolicy`].
//! - Size: every string is bounded (see [`MAX_STRING`], [`MAX_RECORD`]); a read's result is
//!   stored as its SHA-256 and size by default ([`ResultMode`]); the file is rotated by size
//!   into `FILE.1`, `FILE.2`, … and the chain continues across them.
//!
//! Several server processes may share one file (an IDE starts one stdio server per
//! session): every append takes an exclusive lock on the file and continues the chain from
//! the file's end, not from memory.

mod files;
mod record;
mod scan;
mod verify;
mod writer;

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value};
use thiserror::Error;

pub use record::{GENESIS, MAX_RECORD, MAX_STRING, record_hash};
pub use verify::{Verified, verify};

use record::Link;
use writer::FileSink;

/// Default size at which the log file is rotated: 100 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 100 * 1024 * 1024;

/// Audit failures.
#[derive(Debug, Error)]
pub enum AuditError {
    /// The file could not be opened, read or written.
    #[error("audit log {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The existing file is not a valid chain.
    #[error("audit log {path} is not intact: {reason}")]
    Broken {
        /// The file.
        path: String,
        /// What is wrong, with the line.
        reason: String,
    },
}

/// What happens to a call whose record cannot be written (a full disk, a failing device).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuditFailurePolicy {
    /// Refuse every call that cannot be recorded (the default: an unrecorded read of
    /// secrets or logs is what an audit log exists to prevent).
    #[default]
    RefuseAll,
    /// Answer reads anyway, with a warning in the server's log and a count
    /// ([`AuditLog::unrecorded`]); mutations are still refused.
    AllowReads,
}

/// What a read's record keeps of the tool's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResultMode {
    /// Its SHA-256 and size in bytes (of its compact JSON text): the default, so that a
    /// large read costs the log about 100 bytes.
    #[default]
    Digest,
    /// The result itself (bounded like every value).
    Full,
}

/// How a log file is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditOptions {
    /// What to do when a record cannot be written.
    pub failure: AuditFailurePolicy,
    /// What a read's record keeps of the result.
    pub results: ResultMode,
    /// Rotate the file when it would grow past this many bytes (None: never).
    pub max_bytes: Option<u64>,
}

impl Default for AuditOptions {
    fn default() -> Self {
        Self {
            failure: AuditFailurePolicy::default(),
            results: ResultMode::default(),
            max_bytes: Some(DEFAULT_MAX_BYTES),
        }
    }
}

enum Sink {
    File(FileSink),
    Stderr { tail: Link },
}

/// The audit log.
pub struct AuditLog {
    sink: Mutex<Sink>,
    label: String,
    options: AuditOptions,
    unrecorded: AtomicU64,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("target", &self.label)
            .finish()
    }
}

impl AuditLog {
    /// Open (or create) a log file with the default options; `-` logs to stderr.
    pub fn open(target: &str) -> Result<Self, AuditError> {
        Self::open_with(target, AuditOptions::default())
    }

    /// Open (or create) a log file, recovering it after a crash and continuing its chain;
    /// `-` logs to stderr.
    pub fn open_with(target: &str, options: AuditOptions) -> Result<Self, AuditError> {
        let sink = if target == "-" {
            Sink::Stderr {
                tail: Link::genesis(),
            }
        } else {
            Sink::File(FileSink::open(PathBuf::from(target), options.max_bytes)?)
        };
        Ok(Self {
            sink: Mutex::new(sink),
            label: if target == "-" {
                "stderr".into()
            } else {
                target.into()
            },
            options,
            unrecorded: AtomicU64::new(0),
        })
    }

    /// Where records go.
    pub fn target(&self) -> &str {
        &self.label
    }

    /// Damaged last records this process moved to `FILE.quarantine`.
    pub fn quarantined(&self) -> u64 {
        match &*self.sink.lock().unwrap_or_else(|p| p.into_inner()) {
            Sink::File(f) => f.quarantined,
            Sink::Stderr { .. } => 0,
        }
    }

    /// Reads answered without a record under [`AuditFailurePolicy::AllowReads`].
    pub fn unrecorded(&self) -> u64 {
        self.unrecorded.load(Ordering::Relaxed)
    }

    /// Append a mutation's record (synced to disk before this returns).
    pub fn append(&self, record: Value) -> Result<Option<u64>, AuditError> {
        self.append_with(record, true)
    }

    /// Append one record (an object). With `durable` — a mutation's record, which must be
    /// on disk before the change — it is synced to disk before this returns. Otherwise it
    /// is a read's record: written (not synced), its `result` kept as [`ResultMode`] says,
    /// and if it cannot be written, [`AuditFailurePolicy`] decides between the error and
    /// `Ok(None)` (not recorded, with a warning). Returns the record's sequence number.
    pub fn append_with(&self, record: Value, durable: bool) -> Result<Option<u64>, AuditError> {
        let mut fields = match record {
            Value::Object(m) => m,
            other => {
                let mut m = Map::new();
                m.insert("value".into(), other);
                m
            }
        };
        if !durable && self.options.results == ResultMode::Digest {
            record::digest_result(&mut fields);
        }
        record::bound(&mut fields);
        let result = {
            let mut sink = self.sink.lock().map_err(|_| AuditError::Io {
                path: self.label.clone(),
                source: std::io::Error::other("audit lock poisoned"),
            })?;
            match &mut *sink {
                Sink::File(f) => f.append(fields, durable),
                Sink::Stderr { tail } => {
                    let (line, link) = record::seal(tail, fields);
                    let mut err = std::io::stderr().lock();
                    err.write_all(line.as_bytes())
                        .and_then(|()| err.flush())
                        .map_err(|source| AuditError::Io {
                            path: self.label.clone(),
                            source,
                        })
                        .map(|()| {
                            *tail = link;
                            tail.seq
                        })
                }
            }
        };
        match result {
            Ok(seq) => Ok(Some(seq)),
            Err(e) if !durable && self.options.failure == AuditFailurePolicy::AllowReads => {
                self.unrecorded.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    log = %self.label,
                    "a read is answered without an audit record (--audit-failure reads-continue): {e}"
                );
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        if let Ok(Sink::File(f)) = self.sink.get_mut() {
            f.flush_head();
        }
    }
}

#[cfg(test)]
mod tests;
