//! Reading stored records back: walking the chain from a known point to the end of a file,
//! and reading the single record that ends at a byte offset (a checkpoint).

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};

use super::record::{Link, parse_line};

/// Why a walk stopped short.
#[derive(Debug)]
pub(crate) enum ScanError {
    Io(std::io::Error),
    /// The chain is broken before the end (tampering, or damage not explained by a crash).
    Broken(String),
}

impl From<std::io::Error> for ScanError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

/// A damaged last record: what a crash (or a full disk) in the middle of a write leaves.
#[derive(Debug, Clone)]
pub(crate) struct Torn {
    /// Where it starts (the end of the last good record).
    pub offset: u64,
    /// Its length in bytes.
    pub len: u64,
    /// What is wrong with it.
    pub reason: String,
}

/// The result of walking a file.
#[derive(Debug)]
pub(crate) struct Walk {
    /// End of the last good record.
    pub end: u64,
    /// The last good record.
    pub last: Link,
    /// Good records read.
    pub records: u64,
    /// A damaged last record, if any (nothing follows it).
    pub torn: Option<Torn>,
    /// The hash of the record numbered `watch`, if the walk passed it.
    pub watched: Option<String>,
}

/// Where a line is, for messages: its line number when the walk started at the top of the
/// file, else its byte offset.
fn place(from: u64, line_no: u64, at: u64) -> String {
    if from == 0 {
        format!("line {line_no}")
    } else {
        format!("the record at byte {at}")
    }
}

/// Walk `file` from byte `from` (the end of record `base`) to byte `upto`, checking that each
/// record is intact and follows the one before it. A damaged *last* record is returned as
/// `torn`; damage with records after it, or an intact record that does not follow its
/// predecessor, is `Broken`.
pub(crate) fn walk(
    file: &mut File,
    from: u64,
    upto: u64,
    base: Link,
    watch: Option<u64>,
) -> Result<Walk, ScanError> {
    file.seek(SeekFrom::Start(from))?;
    let mut reader = BufReader::with_capacity(64 * 1024, Read::by_ref(file).take(upto - from));
    let mut last = base;
    let mut pos = from;
    let mut records = 0u64;
    let mut watched = None;
    let mut buf = Vec::with_capacity(4096);
    let mut line_no = 0u64;
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf)? as u64;
        if n == 0 {
            break;
        }
        line_no += 1;
        let at = pos;
        pos += n;
        let problem = if buf.last() != Some(&b'\n') {
            Err("is cut short (no newline)".to_string())
        } else {
            parse_line(&buf[..buf.len() - 1])
        };
        let parsed = match problem {
            Ok(p) => p,
            Err(reason) => {
                if pos < upto {
                    return Err(ScanError::Broken(format!(
                        "{} {reason}, and records follow it",
                        place(from, line_no, at)
                    )));
                }
                return Ok(Walk {
                    end: at,
                    last,
                    records,
                    torn: Some(Torn {
                        offset: at,
                        len: n,
                        reason: format!("{} {reason}", place(from, line_no, at)),
                    }),
                    watched,
                });
            }
        };
        if parsed.prev_hash != last.hash {
            return Err(ScanError::Broken(format!(
                "{}: prev_hash does not match the record before it (records removed or reordered)",
                place(from, line_no, at)
            )));
        }
        if parsed.seq != last.seq + 1 {
            return Err(ScanError::Broken(format!(
                "{}: sequence {} follows {}",
                place(from, line_no, at),
                parsed.seq,
                last.seq
            )));
        }
        if watch == Some(parsed.seq) {
            watched = Some(parsed.hash.clone());
        }
        last = Link {
            seq: parsed.seq,
            hash: parsed.hash,
        };
        records += 1;
    }
    Ok(Walk {
        end: pos,
        last,
        records,
        torn: None,
        watched,
    })
}

/// The intact record whose line ends exactly at byte `offset` (None if the bytes there are
/// not one).
pub(crate) fn record_ending_at(file: &mut File, offset: u64) -> std::io::Result<Option<Link>> {
    if offset == 0 {
        return Ok(None);
    }
    let mut chunk = 64 * 1024 + 1024u64;
    loop {
        let start = offset.saturating_sub(chunk);
        file.seek(SeekFrom::Start(start))?;
        let mut buf = Vec::with_capacity((offset - start) as usize);
        Read::by_ref(file)
            .take(offset - start)
            .read_to_end(&mut buf)?;
        if buf.len() as u64 != offset - start || buf.last() != Some(&b'\n') {
            return Ok(None);
        }
        let body = &buf[..buf.len() - 1];
        let line = match body.iter().rposition(|&b| b == b'\n') {
            Some(p) => &body[p + 1..],
            None if start == 0 => body,
            None => {
                chunk *= 4;
                continue;
            }
        };
        return Ok(parse_line(line).ok().map(|p| Link {
            seq: p.seq,
            hash: p.hash,
        }));
    }
}
