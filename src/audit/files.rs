//! The files beside a log: its head (checkpoint), its quarantine, its rotated segments and
//! the staging file of a rotation in progress; and replacing a file atomically.

use std::fs::{File, Metadata, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

/// `FILE.head`: the checkpoint.
pub(crate) fn head_path(path: &Path) -> PathBuf {
    sibling(path, ".head")
}

/// `FILE.quarantine`: damaged last records moved out of the log.
pub(crate) fn quarantine_path(path: &Path) -> PathBuf {
    sibling(path, ".quarantine")
}

/// `FILE.rotating`: the next segment while a rotation is in progress.
pub(crate) fn staging_path(path: &Path) -> PathBuf {
    sibling(path, ".rotating")
}

/// `FILE.N`: the N-th rotated (closed) segment, 1 the oldest.
pub(crate) fn segment_path(path: &Path, n: u64) -> PathBuf {
    sibling(path, &format!(".{n}"))
}

/// The rotated segments of a log, oldest first.
pub(crate) fn segments(path: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return Ok(Vec::new());
    };
    let prefix = format!("{name}.");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let entry = entry?;
        let file_name = entry.file_name();
        let Some(n) = file_name
            .to_str()
            .and_then(|f| f.strip_prefix(&prefix))
            .filter(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|rest| rest.parse::<u64>().ok())
        else {
            continue;
        };
        found.push((n, dir.join(file_name)));
    }
    found.sort();
    Ok(found)
}

/// Whether two metadata describe the same file (inode).
pub(crate) fn same_file(a: &Metadata, b: &Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        a.dev() == b.dev() && a.ino() == b.ino()
    }
    #[cfg(not(unix))]
    {
        let _ = (a, b);
        true
    }
}

/// Sync a folder, so that a rename or a new name in it survives a crash.
pub(crate) fn sync_dir(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
}

/// The checkpoint: the newest record known to be on disk, and where it ends in the current
/// file. Records past it are accepted on open if they chain; records before it are never
/// re-read on open.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Head {
    pub seq: u64,
    pub hash: String,
    /// Byte offset of the end of record `seq` in the current file (absent in heads written
    /// by earlier versions, which then cost one full walk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
}

/// Read a log's head; None when there is none.
pub(crate) fn read_head(path: &Path) -> Result<Option<Head>, String> {
    let hp = head_path(path);
    match std::fs::read_to_string(&hp) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| format!("{}: {e}", hp.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", hp.display())),
    }
}

/// Replace a log's head atomically: a temporary file, synced, renamed over the head, and the
/// folder synced. A crash leaves the old head or the new one, never a torn one.
pub(crate) fn write_head(path: &Path, head: &Head) -> std::io::Result<()> {
    let hp = head_path(path);
    let tmp = sibling(&hp, ".tmp");
    let text = serde_json::to_string(head).map_err(std::io::Error::other)?;
    let result = (|| {
        let mut f = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &hp)?;
        sync_dir(&hp)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Append damaged bytes to `FILE.quarantine`: a JSON line saying where they came from and
/// how long they are, then the bytes exactly, then a newline; synced before returning (the
/// log is truncated only after).
pub(crate) fn quarantine(
    path: &Path,
    offset: u64,
    bytes: &[u8],
    reason: &str,
) -> std::io::Result<()> {
    let header = serde_json::json!({
        "time": jiff::Timestamp::now().to_string(),
        "file": path.display().to_string(),
        "offset": offset,
        "bytes": bytes.len(),
        "reason": reason,
    });
    let mut out = header.to_string().into_bytes();
    out.push(b'\n');
    out.extend_from_slice(bytes);
    out.push(b'\n');
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(quarantine_path(path))?;
    f.write_all(&out)?;
    f.sync_all()
}
