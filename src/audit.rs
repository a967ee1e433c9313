//! Append-only audit log: JSON Lines, one record per tool call (and one more before a
//! mutation is applied), each carrying the hash of the previous record so that editing,
//! reordering or removing records is detectable (`eks-ops-mcp audit verify FILE`).
//!
//! Removing the *last* records leaves a valid chain; to catch that, the hash and sequence
//! number of the newest record are also written to `FILE.head` on every append, and
//! `verify` compares the two.
//!
//! Several server processes may share one file (an IDE starts one stdio server per
//! session): every append takes an exclusive lock on the file and continues the chain from
//! the file's last record, not from memory.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// Length of `,"hash":"<64 hex>"}` at the end of a stored line.
const HASH_SUFFIX_LEN: usize = 9 + 64 + 2;

/// Hash of the record before the first one.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

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

enum Sink {
    File { file: File, path: PathBuf },
    Stderr,
}

struct State {
    sink: Sink,
    // for the stderr sink only; a file's chain is read from the file under its lock
    seq: u64,
    last_hash: String,
}

/// Sequence number and hash of the last record of an open log file (GENESIS when empty).
fn tail_of(file: &mut File, label: &str) -> Result<(u64, String), AuditError> {
    use std::io::{Read, Seek, SeekFrom};
    let io = |source| AuditError::Io {
        path: label.to_string(),
        source,
    };
    let len = file.seek(SeekFrom::End(0)).map_err(io)?;
    if len == 0 {
        return Ok((0, GENESIS.to_string()));
    }
    // read backwards until the line before the last one ends
    let mut chunk = 4096u64;
    loop {
        let start = len.saturating_sub(chunk);
        file.seek(SeekFrom::Start(start)).map_err(io)?;
        let mut buf = Vec::with_capacity((len - start) as usize);
        Read::by_ref(file)
            .take(len - start)
            .read_to_end(&mut buf)
            .map_err(io)?;
        let text = String::from_utf8_lossy(&buf);
        let body = text.strip_suffix('\n').ok_or_else(|| AuditError::Broken {
            path: label.to_string(),
            reason: "the last record is cut short (no newline): the file was truncated".into(),
        })?;
        if let Some(pos) = body
            .rfind('\n')
            .or(if start == 0 { Some(usize::MAX) } else { None })
        {
            let last = if pos == usize::MAX {
                body
            } else {
                &body[pos + 1..]
            };
            let v: Value = serde_json::from_str(last).map_err(|e| AuditError::Broken {
                path: label.to_string(),
                reason: format!("the last record is not JSON: {e}"),
            })?;
            let seq = v.get("seq").and_then(Value::as_u64).unwrap_or(0);
            let hash = v
                .get("hash")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            return Ok((seq, hash));
        }
        chunk *= 4;
    }
}

/// The audit log.
pub struct AuditLog {
    state: Mutex<State>,
    label: String,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("target", &self.label)
            .finish()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hash of a record: SHA-256 over the previous hash and the record's JSON text without its
/// `hash` field, exactly as it is stored (the text, not a re-serialisation of parsed values:
/// floats do not always survive a parse and print unchanged).
pub fn record_hash(prev: &str, body: &str) -> String {
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(b"\n");
    h.update(body.as_bytes());
    hex(&h.finalize())
}

fn head_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".head");
    PathBuf::from(p)
}

/// Result of verifying a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// Records checked.
    pub records: u64,
    /// Hash of the last record.
    pub last_hash: String,
    /// Whether a `.head` file was found and matched.
    pub head_checked: bool,
}

/// Check a file's chain; returns the count and last hash, or where it breaks.
pub fn verify(path: &Path) -> Result<Verified, AuditError> {
    let label = path.display().to_string();
    let io = |source| AuditError::Io {
        path: label.clone(),
        source,
    };
    let broken = |reason: String| AuditError::Broken {
        path: label.clone(),
        reason,
    };
    let file = File::open(path).map_err(io)?;
    let mut prev = GENESIS.to_string();
    let mut seq = 0u64;
    let mut text = String::new();
    let mut reader = BufReader::new(file);
    let mut line_no = 0;
    loop {
        text.clear();
        let n = reader.read_line(&mut text).map_err(io)?;
        if n == 0 {
            break;
        }
        line_no += 1;
        if !text.ends_with('\n') {
            return Err(broken(format!(
                "line {line_no} is cut short (no newline): the file was truncated"
            )));
        }
        // a stored line is BODY with `,"hash":"<64 hex>"` inserted before its closing brace
        let line = text.trim_end();
        let (body, hash) = match line.len().checked_sub(HASH_SUFFIX_LEN) {
            Some(cut)
                if line.is_char_boundary(cut)
                    && line[cut..].starts_with(",\"hash\":\"")
                    && line.ends_with("\"}") =>
            {
                (
                    format!("{}}}", &line[..cut]),
                    line[cut + 9..line.len() - 2].to_string(),
                )
            }
            _ => return Err(broken(format!("line {line_no} has no hash at its end"))),
        };
        let rec: Map<String, Value> = serde_json::from_str(&body)
            .map_err(|e| broken(format!("line {line_no} is not a JSON record: {e}")))?;
        let rec_prev = rec
            .get("prev_hash")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if rec_prev != prev {
            return Err(broken(format!(
                "line {line_no}: prev_hash does not match the record before it (records removed or reordered)"
            )));
        }
        let rec_seq = rec.get("seq").and_then(Value::as_u64).unwrap_or(0);
        if rec_seq != seq + 1 {
            return Err(broken(format!(
                "line {line_no}: sequence {rec_seq} follows {seq}"
            )));
        }
        if record_hash(&prev, &body) != hash {
            return Err(broken(format!(
                "line {line_no}: the record was edited (hash mismatch)"
            )));
        }
        prev = hash;
        seq = rec_seq;
    }
    let head = head_path(path);
    let head_checked = match std::fs::read_to_string(&head) {
        Ok(h) => {
            let v: Value =
                serde_json::from_str(&h).map_err(|e| broken(format!("{}: {e}", head.display())))?;
            let want_seq = v.get("seq").and_then(Value::as_u64).unwrap_or(0);
            let want_hash = v.get("hash").and_then(Value::as_str).unwrap_or_default();
            if want_seq != seq || want_hash != prev {
                return Err(broken(format!(
                    "the log ends at record {seq}, but its head file records {want_seq}: records were removed from the end"
                )));
            }
            true
        }
        Err(_) => false,
    };
    Ok(Verified {
        records: seq,
        last_hash: prev,
        head_checked,
    })
}

impl AuditLog {
    /// Open (or create) a log file, continuing its chain; `-` logs to stderr.
    pub fn open(target: &str) -> Result<Self, AuditError> {
        if target == "-" {
            return Ok(Self {
                state: Mutex::new(State {
                    sink: Sink::Stderr,
                    seq: 0,
                    last_hash: GENESIS.into(),
                }),
                label: "stderr".into(),
            });
        }
        let path = PathBuf::from(target);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| AuditError::Io {
                path: target.into(),
                source,
            })?;
        }
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(|source| AuditError::Io {
                path: target.into(),
                source,
            })?;
        // refuse to continue a chain that is already broken (checked under the lock, so a
        // record another process is writing is never seen half-written)
        file.lock().map_err(|source| AuditError::Io {
            path: target.into(),
            source,
        })?;
        let checked = match file.metadata() {
            Ok(m) if m.len() > 0 => verify(&path).map(|v| (v.records, v.last_hash)),
            Ok(_) => Ok((0, GENESIS.to_string())),
            Err(source) => Err(AuditError::Io {
                path: target.into(),
                source,
            }),
        };
        let _ = file.unlock();
        let (seq, last_hash) = checked?;
        Ok(Self {
            state: Mutex::new(State {
                sink: Sink::File { file, path },
                seq,
                last_hash,
            }),
            label: target.to_string(),
        })
    }

    /// Where records go.
    pub fn target(&self) -> &str {
        &self.label
    }

    /// Append one record (an object); it is written and flushed before this returns.
    pub fn append(&self, record: Value) -> Result<u64, AuditError> {
        self.append_with(record, true)
    }

    /// Append one record; it is written and flushed to the operating system before this
    /// returns, and with `durable` also synced to disk (`fsync`) — what a record that must
    /// precede a change needs. Records of reads are written without the sync.
    pub fn append_with(&self, record: Value, durable: bool) -> Result<u64, AuditError> {
        let mut st = self.state.lock().map_err(|_| AuditError::Io {
            path: self.label.clone(),
            source: std::io::Error::other("audit lock poisoned"),
        })?;
        let label = self.label.clone();
        let io = |source| AuditError::Io {
            path: label.clone(),
            source,
        };
        let st = &mut *st;
        match &mut st.sink {
            Sink::Stderr => {
                let (line, seq, hash) = seal(st.seq, &st.last_hash, record);
                let mut err = std::io::stderr().lock();
                err.write_all(line.as_bytes()).map_err(io)?;
                err.flush().map_err(io)?;
                st.seq = seq;
                st.last_hash = hash;
                Ok(seq)
            }
            Sink::File { file, path } => {
                // other processes may append to the same file: lock it, continue from its tail
                file.lock().map_err(io)?;
                let result = (|| {
                    let (prev_seq, prev_hash) = tail_of(file, &label)?;
                    let (line, seq, hash) = seal(prev_seq, &prev_hash, record);
                    file.write_all(line.as_bytes()).map_err(io)?;
                    file.flush().map_err(io)?;
                    if durable {
                        file.sync_data().map_err(io)?;
                    }
                    let head = json!({"seq": seq, "hash": hash}).to_string();
                    std::fs::write(head_path(path), head).map_err(io)?;
                    Ok(seq)
                })();
                let _ = file.unlock();
                result
            }
        }
    }
}

/// Number, time-stamp and hash a record; returns its line, sequence number and hash.
fn seal(prev_seq: u64, prev_hash: &str, record: Value) -> (String, u64, String) {
    let seq = prev_seq + 1;
    let mut rec = Map::new();
    rec.insert("seq".into(), json!(seq));
    rec.insert("time".into(), json!(jiff::Timestamp::now().to_string()));
    if let Value::Object(fields) = record {
        for (k, v) in fields {
            rec.insert(k, v);
        }
    }
    rec.insert("prev_hash".into(), json!(prev_hash));
    let body = serde_json::to_string(&rec).unwrap_or_default();
    let hash = record_hash(prev_hash, &body);
    // BODY without its closing brace, then the hash field, then the brace
    let line = format!("{},\"hash\":\"{hash}\"}}\n", &body[..body.len() - 1]);
    (line, seq, hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_with(n: usize) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(path.to_str().unwrap()).unwrap();
        for i in 0..n {
            log.append(json!({"tool": "get_events", "i": i})).unwrap();
        }
        (dir, path)
    }

    #[test]
    fn an_intact_log_verifies_and_continues_its_chain() {
        let (_d, path) = log_with(5);
        let v = verify(&path).unwrap();
        assert_eq!(v.records, 5);
        assert!(v.head_checked);
        let log = AuditLog::open(path.to_str().unwrap()).unwrap();
        assert_eq!(log.append(json!({"tool": "x"})).unwrap(), 6);
        assert_eq!(verify(&path).unwrap().records, 6);
    }

    #[test]
    fn an_edited_record_is_detected() {
        let (_d, path) = log_with(4);
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replacen("\"i\":2", "\"i\":7", 1);
        std::fs::write(&path, text).unwrap();
        let e = verify(&path).unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("edited"), "{e}");
    }

    #[test]
    fn removed_records_are_detected() {
        let (_d, path) = log_with(4);
        let lines: Vec<String> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        // a record from the middle
        let middle = format!("{}\n{}\n{}\n", lines[0], lines[2], lines[3]);
        std::fs::write(&path, middle).unwrap();
        assert!(verify(&path).unwrap_err().to_string().contains("line 2"));
        // the last record (caught by the head file)
        let tail = format!("{}\n{}\n{}\n", lines[0], lines[1], lines[2]);
        std::fs::write(&path, tail).unwrap();
        let e = verify(&path).unwrap_err().to_string();
        assert!(e.contains("removed from the end"), "{e}");
        // a record cut in the middle
        let cut = format!("{}\n{}", lines[0], &lines[1][..20]);
        std::fs::write(&path, cut).unwrap();
        assert!(verify(&path).unwrap_err().to_string().contains("truncated"));
    }

    #[test]
    fn floats_that_do_not_round_trip_still_verify() {
        let (_d, path) = log_with(0);
        let log = AuditLog::open(path.to_str().unwrap()).unwrap();
        for v in [
            13.041746999999999_f64,
            0.1 + 0.2,
            1e-7 / 3.0,
            123_456.789_012_345,
        ] {
            log.append(json!({"duration_ms": v})).unwrap();
        }
        assert_eq!(verify(&path).unwrap().records, 4);
    }

    #[test]
    fn two_writers_on_one_file_keep_one_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let a = std::sync::Arc::new(AuditLog::open(path.to_str().unwrap()).unwrap());
        let b = std::sync::Arc::new(AuditLog::open(path.to_str().unwrap()).unwrap());
        let threads: Vec<_> = [a, b]
            .into_iter()
            .map(|log| {
                std::thread::spawn(move || {
                    for i in 0..50 {
                        log.append(json!({"i": i})).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(verify(&path).unwrap().records, 100);
    }

    #[test]
    fn opening_a_broken_log_refuses_to_continue_it() {
        let (_d, path) = log_with(3);
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replacen("get_events", "get_evenTs", 1);
        std::fs::write(&path, text).unwrap();
        assert!(AuditLog::open(path.to_str().unwrap()).is_err());
    }
}
