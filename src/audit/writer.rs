//! Appending to a log file: locking, recovery after a crash, all-or-nothing writes, the
//! checkpoint (head) and rotation by size.
//!
//! Several processes may append to one file. Each append takes an exclusive `flock` on the
//! file, checks that the path still names the file it has open (another process may have
//! rotated it), and continues the chain from what it knows of the file's end; if the file
//! grew meanwhile, only the new bytes are walked.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::AuditError;
use super::files::{self, Head};
use super::record::{Link, seal};
use super::scan::{self, ScanError, Walk};

/// The head is rewritten at least every this many records...
const HEAD_EVERY: u32 = 256;
/// ...or when a record is appended this long after the last head update.
const HEAD_INTERVAL: Duration = Duration::from_secs(1);

/// An open log file and what this process knows of its end.
pub(crate) struct FileSink {
    pub path: PathBuf,
    file: File,
    /// Whether `len` and `tail` describe `file` (false after reopening it).
    known: bool,
    len: u64,
    tail: Link,
    /// Records appended since this process last wrote the head.
    since_head: u32,
    head_at: Instant,
    /// Rotate when the file would grow past this.
    max_bytes: Option<u64>,
    /// Damaged records moved to the quarantine file by this process.
    pub quarantined: u64,
}

impl FileSink {
    fn label(&self) -> String {
        self.path.display().to_string()
    }

    fn io(&self, source: std::io::Error) -> AuditError {
        AuditError::Io {
            path: self.label(),
            source,
        }
    }

    fn broken(&self, reason: String) -> AuditError {
        AuditError::Broken {
            path: self.label(),
            reason,
        }
    }

    fn scan_err(&self, e: ScanError) -> AuditError {
        match e {
            ScanError::Io(source) => self.io(source),
            ScanError::Broken(reason) => self.broken(reason),
        }
    }

    fn open_file(path: &Path) -> std::io::Result<File> {
        OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
    }

    /// Open (or create) a log, recovering it after a crash (under its lock).
    pub fn open(path: PathBuf, max_bytes: Option<u64>) -> Result<Self, AuditError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| AuditError::Io {
                path: path.display().to_string(),
                source,
            })?;
        }
        let file = Self::open_file(&path).map_err(|source| AuditError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let mut sink = Self {
            path,
            file,
            known: false,
            len: 0,
            tail: Link::genesis(),
            since_head: 0,
            head_at: Instant::now(),
            max_bytes,
            quarantined: 0,
        };
        let result = sink.lock().and_then(|_| sink.recover());
        let _ = sink.file.unlock();
        result.map(|()| sink)
    }

    /// Take the exclusive lock on the file the path names now, reopening it if another
    /// process rotated it away; returns the file's length.
    fn lock(&mut self) -> Result<u64, AuditError> {
        loop {
            self.file.lock().map_err(|e| self.io(e))?;
            let held = self.file.metadata().map_err(|e| self.io(e))?;
            match std::fs::metadata(&self.path) {
                Ok(now) if files::same_file(&held, &now) => return Ok(held.len()),
                // rotated (or removed): continue in the file the path names now
                Ok(_) | Err(_) => {
                    let _ = self.file.unlock();
                    self.file = Self::open_file(&self.path).map_err(|e| self.io(e))?;
                    self.known = false;
                }
            }
        }
    }

    /// Make `len` and `tail` describe the file: finish or undo an interrupted rotation,
    /// start from the head's checkpoint, walk the records after it, and quarantine a damaged
    /// last record. Called under the lock.
    fn recover(&mut self) -> Result<(), AuditError> {
        self.settle_rotation()?;
        let len = self.file.metadata().map_err(|e| self.io(e))?.len();
        let head = files::read_head(&self.path).map_err(|r| self.broken(r))?;
        let (from, base) = self.checkpoint(head.as_ref(), len)?;
        let walk =
            scan::walk(&mut self.file, from, len, base, None).map_err(|e| self.scan_err(e))?;
        self.repair(&walk)?;
        self.len = walk.end;
        self.tail = walk.last;
        self.known = true;
        let head_link = head.map(|h| (h.seq, h.hash, h.offset));
        if head_link != Some((self.tail.seq, self.tail.hash.clone(), Some(self.len))) {
            // records past the head (or a head in the old format): move it forward; a head
            // that cannot be written (a full disk) only lags
            if let Err(e) = self.write_head(false) {
                tracing::warn!(log = %self.label(), "audit head could not be updated: {e}");
            }
        }
        Ok(())
    }

    /// A rotation stopped by a crash: if the old file was already linked as the newest
    /// segment, the staging file is complete (it is synced first) and the rotation is
    /// finished; otherwise the staging file is removed.
    fn settle_rotation(&mut self) -> Result<(), AuditError> {
        let staging = files::staging_path(&self.path);
        if !staging.exists() {
            return Ok(());
        }
        let held = self.file.metadata().map_err(|e| self.io(e))?;
        let segments = files::segments(&self.path).map_err(|e| self.io(e))?;
        let linked = segments
            .last()
            .and_then(|(_, p)| std::fs::metadata(p).ok())
            .is_some_and(|m| files::same_file(&m, &held));
        if linked {
            std::fs::rename(&staging, &self.path).map_err(|e| self.io(e))?;
            files::sync_dir(&self.path).map_err(|e| self.io(e))?;
            tracing::warn!(log = %self.label(), "finished a rotation a crash interrupted");
            let _ = self.file.unlock();
            self.file = Self::open_file(&self.path).map_err(|e| self.io(e))?;
            self.file.lock().map_err(|e| self.io(e))?;
        } else {
            std::fs::remove_file(&staging).map_err(|e| self.io(e))?;
        }
        Ok(())
    }

    /// Where to start walking the current file, and the record before that point.
    fn checkpoint(&mut self, head: Option<&Head>, len: u64) -> Result<(u64, Link), AuditError> {
        let predecessor = self.predecessor_tail()?;
        let Some(head) = head else {
            return Ok((0, predecessor.unwrap_or_else(Link::genesis)));
        };
        let Some(offset) = head.offset else {
            // a head from before checkpoints: walk the whole file once
            return Ok((0, predecessor.unwrap_or_else(Link::genesis)));
        };
        let want = Link {
            seq: head.seq,
            hash: head.hash.clone(),
        };
        if offset == 0 && want == predecessor.clone().unwrap_or_else(Link::genesis) {
            return Ok((0, want));
        }
        if offset <= len
            && scan::record_ending_at(&mut self.file, offset).map_err(|e| self.io(e))?
                == Some(want.clone())
        {
            return Ok((offset, want));
        }
        // a crash between rotating and writing the new head: the head is in the newest
        // segment, which must then be intact from there to its end
        if let Some((_, seg)) = files::segments(&self.path).map_err(|e| self.io(e))?.pop() {
            let mut f = File::open(&seg).map_err(|e| self.io(e))?;
            let seg_len = f.metadata().map_err(|e| self.io(e))?.len();
            if offset <= seg_len
                && scan::record_ending_at(&mut f, offset).map_err(|e| self.io(e))?
                    == Some(want.clone())
            {
                let walk = scan::walk(&mut f, offset, seg_len, want, None)
                    .map_err(|e| self.scan_err(e))?;
                if let Some(t) = walk.torn {
                    return Err(self.broken(format!("{}: {}", seg.display(), t.reason)));
                }
                return Ok((0, walk.last));
            }
        }
        Err(self.broken(format!(
            "the head records record {} ending at byte {offset}, which the log does not hold: \
             records were removed from the end or the file was replaced",
            head.seq
        )))
    }

    /// The last record of the newest rotated segment, if any.
    fn predecessor_tail(&self) -> Result<Option<Link>, AuditError> {
        let Some((_, seg)) = files::segments(&self.path).map_err(|e| self.io(e))?.pop() else {
            return Ok(None);
        };
        let mut f = File::open(&seg).map_err(|e| self.io(e))?;
        let len = f.metadata().map_err(|e| self.io(e))?.len();
        match scan::record_ending_at(&mut f, len).map_err(|e| self.io(e))? {
            Some(link) => Ok(Some(link)),
            None => Err(self.broken(format!(
                "the rotated segment {} does not end with an intact record",
                seg.display()
            ))),
        }
    }

    /// Move a damaged last record to the quarantine file and cut the log back to the last
    /// good record.
    fn repair(&mut self, walk: &Walk) -> Result<(), AuditError> {
        let Some(torn) = &walk.torn else {
            return Ok(());
        };
        let mut bytes = Vec::with_capacity(torn.len as usize);
        self.file
            .seek(SeekFrom::Start(torn.offset))
            .map_err(|e| self.io(e))?;
        Read::by_ref(&mut self.file)
            .take(torn.len)
            .read_to_end(&mut bytes)
            .map_err(|e| self.io(e))?;
        files::quarantine(&self.path, torn.offset, &bytes, &torn.reason).map_err(|e| self.io(e))?;
        self.file.set_len(torn.offset).map_err(|e| self.io(e))?;
        self.file.sync_all().map_err(|e| self.io(e))?;
        self.quarantined += 1;
        tracing::warn!(
            log = %self.label(),
            offset = torn.offset,
            bytes = torn.len,
            reason = %torn.reason,
            quarantine = %files::quarantine_path(&self.path).display(),
            "a damaged last audit record (left by a crash or a full disk) was moved to the quarantine file"
        );
        Ok(())
    }

    /// Sync the data and record the current end as the checkpoint.
    fn write_head(&mut self, synced: bool) -> std::io::Result<()> {
        if !synced {
            self.file.sync_data()?;
        }
        files::write_head(
            &self.path,
            &Head {
                seq: self.tail.seq,
                hash: self.tail.hash.clone(),
                offset: Some(self.len),
            },
        )?;
        self.since_head = 0;
        self.head_at = Instant::now();
        Ok(())
    }

    /// Bring `len` and `tail` up to the file's end at `len` bytes (other processes may have
    /// appended).
    fn catch_up(&mut self, len: u64) -> Result<(), AuditError> {
        if !self.known {
            return self.recover();
        }
        if len == self.len {
            return Ok(());
        }
        if len < self.len {
            return Err(self.broken(format!(
                "the file shrank from {} to {len} bytes while open: records were removed",
                self.len
            )));
        }
        let walk = scan::walk(&mut self.file, self.len, len, self.tail.clone(), None)
            .map_err(|e| self.scan_err(e))?;
        self.repair(&walk)?;
        self.len = walk.end;
        self.tail = walk.last;
        Ok(())
    }

    /// Append one record; `durable` syncs it to disk (and the head) before returning.
    pub fn append(&mut self, fields: Map<String, Value>, durable: bool) -> Result<u64, AuditError> {
        let len = self.lock()?;
        let result = self.append_locked(len, fields, durable);
        let _ = self.file.unlock();
        result
    }

    fn append_locked(
        &mut self,
        len: u64,
        fields: Map<String, Value>,
        durable: bool,
    ) -> Result<u64, AuditError> {
        self.catch_up(len)?;
        let (line, link) = seal(&self.tail, fields);
        let rotate = self
            .max_bytes
            .is_some_and(|max| self.len > 0 && self.len + line.len() as u64 > max);
        if rotate {
            match self.rotate(&line, &link) {
                Ok(()) => return Ok(link.seq),
                Err(e) => tracing::warn!(
                    log = %self.label(),
                    "could not rotate the audit log ({e}); appending to the current file"
                ),
            }
        }
        // one write of the whole line; on failure (a full disk writes part of it) cut the
        // file back so that no partial record stays
        if let Err(e) = self.file.write_all(line.as_bytes()) {
            if self.file.set_len(self.len).is_err() {
                // the next append walks the file again and quarantines what is left
                self.known = false;
            }
            return Err(self.io(e));
        }
        self.len += line.len() as u64;
        self.tail = link;
        self.since_head += 1;
        if durable {
            self.file.sync_data().map_err(|e| self.io(e))?;
        }
        if durable || self.since_head >= HEAD_EVERY || self.head_at.elapsed() >= HEAD_INTERVAL {
            // the record is written; a head that cannot be written only lags (the next open
            // accepts records past it)
            if let Err(e) = self.write_head(durable) {
                tracing::warn!(log = %self.label(), "audit head could not be updated: {e}");
            }
        }
        Ok(self.tail.seq)
    }

    /// Close the current file as the next numbered segment and continue in a new file whose
    /// first record is `line`. Steps, each safe to crash after: write and sync the new file
    /// as `FILE.rotating`; link the current file as `FILE.N`; write the head for the new
    /// file; rename the new file over `FILE`. Other processes holding the old file notice
    /// the rename when they next lock it.
    fn rotate(&mut self, line: &str, link: &Link) -> std::io::Result<()> {
        self.file.sync_data()?;
        let staging = files::staging_path(&self.path);
        let mut next = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .truncate(false)
            .open(&staging)?;
        let staged = (|| {
            next.set_len(0)?;
            next.write_all(line.as_bytes())?;
            next.sync_all()
        })();
        if let Err(e) = staged {
            let _ = std::fs::remove_file(&staging);
            return Err(e);
        }
        let mut n = files::segments(&self.path)?
            .last()
            .map_or(1, |(n, _)| n + 1);
        let segment = loop {
            let seg = files::segment_path(&self.path, n);
            match std::fs::hard_link(&self.path, &seg) {
                Ok(()) => break seg,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => n += 1,
                Err(e) => {
                    let _ = std::fs::remove_file(&staging);
                    return Err(e);
                }
            }
        };
        let head = Head {
            seq: link.seq,
            hash: link.hash.clone(),
            offset: Some(line.len() as u64),
        };
        let switched = files::write_head(&self.path, &head)
            .and_then(|()| std::fs::rename(&staging, &self.path))
            .and_then(|()| files::sync_dir(&self.path));
        if let Err(e) = switched {
            // undo: the old file stays current, with a head for it
            let _ = std::fs::remove_file(&staging);
            let _ = std::fs::remove_file(&segment);
            let _ = self.write_head(true);
            return Err(e);
        }
        tracing::info!(log = %self.label(), segment = %segment.display(), "audit log rotated");
        let _ = self.file.unlock();
        self.file = next;
        self.len = line.len() as u64;
        self.tail = link.clone();
        self.since_head = 0;
        self.head_at = Instant::now();
        Ok(())
    }

    /// Write the head if records were appended since the last one (on shutdown).
    pub fn flush_head(&mut self) {
        if self.since_head == 0 || self.lock().is_err() {
            return;
        }
        // only when the file still ends with this process's last record
        if self.known
            && self.file.metadata().is_ok_and(|m| m.len() == self.len)
            && let Err(e) = self.write_head(false)
        {
            tracing::warn!(log = %self.label(), "audit head could not be updated: {e}");
        }
        let _ = self.file.unlock();
    }
}
