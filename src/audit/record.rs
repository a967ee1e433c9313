//! One record: bounding its values, digesting a read's result, sealing it into a hash-chained
//! line, and taking a stored line apart again.

use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// Length of `,"hash":"<64 hex>"}` at the end of a stored line.
const HASH_SUFFIX_LEN: usize = 9 + 64 + 2;

/// Hash of the record before the first one.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Longest audited string value (and object key), in bytes; longer ones keep a prefix and a
/// marker with their original size.
pub const MAX_STRING: usize = 4 * 1024;

/// Longest stored record, in bytes (approximately: the bound applies to the record's fields,
/// and sealing adds about 200 bytes of sequence number, time and hashes).
pub const MAX_RECORD: usize = 64 * 1024;

/// Room kept for the fields sealing adds.
const SEAL_ROOM: usize = 512;

/// Fields sealing writes; a caller's record cannot set them.
const RESERVED: [&str; 4] = ["seq", "time", "prev_hash", "hash"];

/// Position in the chain: a record's sequence number and hash (0 and GENESIS before the first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Link {
    pub seq: u64,
    pub hash: String,
}

impl Link {
    pub fn genesis() -> Self {
        Self {
            seq: 0,
            hash: GENESIS.to_string(),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
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

/// The marker that replaces what was cut from a value of `size` bytes.
fn marker(size: usize) -> String {
    format!("…[truncated: {size} bytes]")
}

/// `s` cut to at most `limit` bytes including the marker, on a character boundary.
fn cut(s: &str, limit: usize) -> String {
    let mark = marker(s.len());
    let mut end = limit.saturating_sub(mark.len()).min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{mark}", &s[..end])
}

/// Bound every string and object key in `v` to `limit` bytes.
fn bound_strings(v: &mut Value, limit: usize) {
    match v {
        Value::String(s) if s.len() > limit => *s = cut(s, limit),
        Value::Array(items) => items.iter_mut().for_each(|i| bound_strings(i, limit)),
        Value::Object(map) => {
            if map.keys().any(|k| k.len() > limit) {
                let old = std::mem::take(map);
                for (k, mut val) in old {
                    bound_strings(&mut val, limit);
                    let k = if k.len() > limit { cut(&k, limit) } else { k };
                    map.insert(k, val);
                }
            } else {
                map.values_mut().for_each(|i| bound_strings(i, limit));
            }
        }
        _ => {}
    }
}

fn json_len(v: &Value) -> usize {
    serde_json::to_string(v).map(|s| s.len()).unwrap_or(0)
}

/// Serialised length of an object of `fields`, without building it.
fn fields_len(fields: &Map<String, Value>) -> usize {
    2 + fields
        .iter()
        .map(|(k, v)| k.len() + 4 + json_len(v))
        .sum::<usize>()
}

/// Bound a record's fields: every string to MAX_STRING bytes, and the whole record to
/// MAX_RECORD bytes — by tightening the string bound, then by replacing the largest fields
/// with a marker carrying their serialised size.
pub(crate) fn bound(fields: &mut Map<String, Value>) {
    let budget = MAX_RECORD - SEAL_ROOM;
    let mut limit = MAX_STRING;
    loop {
        for v in fields.values_mut() {
            bound_strings(v, limit);
        }
        if fields_len(fields) <= budget || limit <= 64 {
            break;
        }
        limit /= 4;
    }
    // still too large (many small values, e.g. a huge array of numbers)
    while fields_len(fields) > budget {
        let Some((key, size)) = fields
            .iter()
            .filter(|(_, v)| !v.is_string() || v.as_str().is_some_and(|s| s.len() > 64))
            .map(|(k, v)| (k.clone(), json_len(v)))
            .max_by_key(|(_, n)| *n)
        else {
            break;
        };
        fields.insert(key, Value::String(marker(size)));
    }
}

/// A read's result replaced by its SHA-256 and size (of its compact JSON text), so that
/// reading a large object costs the log 100 bytes while the record still identifies what
/// was answered.
pub(crate) fn digest_result(fields: &mut Map<String, Value>) {
    if let Some(result) = fields.get_mut("result") {
        let text = serde_json::to_string(result).unwrap_or_default();
        let sha = hex(&Sha256::digest(text.as_bytes()));
        *result = json!({"sha256": sha, "bytes": text.len()});
    }
}

/// Number, time-stamp and hash a record after `prev`; returns its line (with the newline)
/// and its link.
pub(crate) fn seal(prev: &Link, fields: Map<String, Value>) -> (String, Link) {
    let seq = prev.seq + 1;
    let mut rec = Map::new();
    rec.insert("seq".into(), json!(seq));
    rec.insert("time".into(), json!(jiff::Timestamp::now().to_string()));
    for (k, v) in fields {
        if !RESERVED.contains(&k.as_str()) {
            rec.insert(k, v);
        }
    }
    rec.insert("prev_hash".into(), json!(prev.hash));
    let body = serde_json::to_string(&rec).unwrap_or_else(|_| "{}".into());
    let hash = record_hash(&prev.hash, &body);
    // BODY without its closing brace, then the hash field, then the brace
    let line = format!("{},\"hash\":\"{hash}\"}}\n", &body[..body.len() - 1]);
    (line, Link { seq, hash })
}

/// The chain fields of a stored record (the rest is skipped while parsing).
#[derive(Deserialize)]
struct ChainFields {
    seq: u64,
    prev_hash: String,
}

/// A stored line taken apart and checked on its own.
pub(crate) struct Parsed {
    pub seq: u64,
    pub prev_hash: String,
    pub hash: String,
}

/// Take a stored line (without its newline) apart and check that its hash matches its body
/// after `prev_hash`; the error says what is wrong.
pub(crate) fn parse_line(line: &[u8]) -> Result<Parsed, String> {
    let line = std::str::from_utf8(line).map_err(|_| "is not UTF-8 text".to_string())?;
    // a stored line is BODY with `,"hash":"<64 hex>"` inserted before its closing brace
    let (body, hash) = match line.len().checked_sub(HASH_SUFFIX_LEN) {
        Some(c)
            if line.is_char_boundary(c)
                && line[c..].starts_with(",\"hash\":\"")
                && line.ends_with("\"}") =>
        {
            (
                format!("{}}}", &line[..c]),
                line[c + 9..line.len() - 2].to_string(),
            )
        }
        _ => return Err("has no hash at its end".into()),
    };
    let chain: ChainFields =
        serde_json::from_str(&body).map_err(|e| format!("is not a JSON record: {e}"))?;
    if record_hash(&chain.prev_hash, &body) != hash {
        return Err("was edited (hash mismatch)".into());
    }
    Ok(Parsed {
        seq: chain.seq,
        prev_hash: chain.prev_hash,
        hash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_strings_keep_a_prefix_and_their_size() {
        let mut f = Map::new();
        f.insert("arguments".into(), json!({"q": "é".repeat(6000)}));
        bound(&mut f);
        let s = f["arguments"]["q"].as_str().unwrap();
        assert!(s.len() <= MAX_STRING, "{}", s.len());
        assert!(s.ends_with("…[truncated: 12000 bytes]"), "{s}");
        assert!(s.starts_with("éé"));
    }

    #[test]
    fn long_keys_are_bounded_too() {
        let mut f = Map::new();
        let key = "k".repeat(10_000);
        f.insert("arguments".into(), json!({ key: 1 }));
        bound(&mut f);
        let args = f["arguments"].as_object().unwrap();
        let k = args.keys().next().unwrap();
        assert!(k.len() <= MAX_STRING && k.ends_with("[truncated: 10000 bytes]"));
    }

    #[test]
    fn a_record_of_many_values_is_bounded_as_a_whole() {
        let mut f = Map::new();
        f.insert("tool".into(), json!("get_events"));
        f.insert("result".into(), json!(vec![123_456_789u64; 50_000]));
        f.insert(
            "arguments".into(),
            json!((0..100).map(|i| "x".repeat(3000 + i)).collect::<Vec<_>>()),
        );
        let before = json_len(&f["result"]);
        bound(&mut f);
        let total = json_len(&Value::Object(f.clone()));
        assert!(total <= MAX_RECORD - SEAL_ROOM, "{total}");
        assert_eq!(f["tool"], "get_events");
        assert_eq!(f["result"], json!(format!("…[truncated: {before} bytes]")));
    }

    #[test]
    fn a_sealed_line_parses_back_and_catches_edits() {
        let mut f = Map::new();
        f.insert("tool".into(), json!("x"));
        f.insert("seq".into(), json!(99));
        let (line, link) = seal(&Link::genesis(), f);
        let p = parse_line(line.trim_end().as_bytes()).unwrap();
        assert_eq!((p.seq, p.hash.as_str()), (1, link.hash.as_str()));
        assert_eq!(p.prev_hash, GENESIS);
        let edited = line.replace("\"x\"", "\"y\"");
        assert!(parse_line(edited.trim_end().as_bytes()).is_err());
    }
}
