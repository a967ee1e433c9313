//! The stdio transport: newline-delimited JSON-RPC on stdin/stdout, with a line filter in
//! front of rmcp. rmcp drops a line it cannot parse without answering (the client then
//! waits forever) and ends the session on a notification sent before `initialize`; the
//! filter answers every request it can identify instead:
//!
//! | line | answer |
//! |---|---|
//! | not JSON (syntax, bad UTF-8, lone surrogate) | -32700 with the id if it can be read |
//! | longer than the limit | -32600 with the id if the line's start names it |
//! | duplicate keys, wrong `jsonrpc`, `params` not an object, bad `id`, batch | -32600 |
//! | a request whose id is still in flight | -32600, the first request carries on |
//! | a known method with params of the wrong shape (e.g. `tools/call` without `name`) | -32602 |
//! | a notification or response before `initialize` | ignored |
//!
//! Everything the filter lets through goes to rmcp over an in-memory channel, and one writer
//! task owns stdout, so rmcp's messages and the filter's answers never interleave.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};
use rmcp::ServiceExt;
use rmcp::model::{ClientJsonRpcMessage, ClientRequest, ServerJsonRpcMessage};
use serde::de::{self, Deserializer as _, Visitor};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use crate::server::EksOpsServer;

/// Default largest line (one JSON-RPC message) accepted on stdin.
pub const DEFAULT_MAX_LINE_BYTES: usize = 4 * 1024 * 1024;

/// How much of an oversized line is kept to find its id in.
const OVERSIZED_PREFIX: usize = 64 * 1024;

const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const INVALID_PARAMS: i64 = -32602;

/// Methods rmcp knows: when their params do not fit, rmcp would take the request for an
/// unknown custom method (-32601), so the filter answers -32602 itself.
const KNOWN_METHODS: &[&str] = &[
    "ping",
    "initialize",
    "completion/complete",
    "logging/setLevel",
    "prompts/get",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "tools/call",
    "tools/list",
];

/// What goes to stdout: rmcp's messages, and the filter's own answers.
enum Out {
    Rmcp(Box<ServerJsonRpcMessage>),
    Own(Value),
}

/// Requests handed to rmcp and not yet answered, and whether the session has started.
#[derive(Default)]
struct Session {
    /// id (as JSON text) → method.
    in_flight: HashMap<String, String>,
    /// `initialize` (or a request carrying its own protocol version) went through: from
    /// then on notifications reach rmcp.
    started: bool,
}

type Shared = Arc<Mutex<Session>>;

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Session> {
    s.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Serve one MCP session over the process's stdin and stdout.
pub async fn serve_stdio(server: EksOpsServer) -> Result<(), std::io::Error> {
    serve_stdio_with_limit(server, DEFAULT_MAX_LINE_BYTES).await
}

/// [`serve_stdio`] with a chosen line limit.
pub async fn serve_stdio_with_limit(
    server: EksOpsServer,
    max_line_bytes: usize,
) -> Result<(), std::io::Error> {
    serve_lines(
        server,
        tokio::io::stdin(),
        tokio::io::stdout(),
        max_line_bytes,
    )
    .await
}

/// Serve one MCP session reading lines from `input` and writing lines to `output`, until
/// `input` ends or the session stops.
pub async fn serve_lines<R, W>(
    server: EksOpsServer,
    input: R,
    output: W,
    max_line_bytes: usize,
) -> Result<(), std::io::Error>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let session = Shared::default();
    let (out_tx, out_rx) = mpsc::channel::<Out>(64);
    let (client_tx, client_rx) = mpsc::channel::<ClientJsonRpcMessage>(64);
    let writer = tokio::spawn(write_lines(output, out_rx, session.clone()));
    let reader = tokio::spawn(read_lines(
        input,
        max_line_bytes.max(1024),
        client_tx,
        out_tx.clone(),
        session,
    ));
    let sink = out_tx.with(|m| futures::future::ok::<_, mpsc::SendError>(Out::Rmcp(Box::new(m))));
    let result =
        match server.serve((sink, client_rx)).await {
            Ok(running) => running.waiting().await.map(|_| ()).map_err(|e| {
                std::io::Error::other(format!("MCP session ended with an error: {e}"))
            }),
            Err(e) => Err(std::io::Error::other(format!(
                "MCP initialisation over stdio failed: {e}"
            ))),
        };
    // rmcp has stopped (its sink is gone); the reader may still be waiting on stdin
    reader.abort();
    let _ = reader.await;
    // the writer ends once every queued message is written
    let _ = writer.await;
    result
}

/// One line read from the input.
enum Line {
    /// The whole line (without the newline).
    Whole,
    /// The line was longer than the limit: its length, and its start kept in the buffer.
    TooLong(usize),
}

/// Read one line into `buf`, keeping at most `max` bytes; `None` at the end of the input.
async fn read_line<R: AsyncRead + Unpin>(
    r: &mut BufReader<R>,
    max: usize,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<Line>> {
    buf.clear();
    let mut total = 0usize;
    let mut too_long = false;
    loop {
        let available = r.fill_buf().await?;
        if available.is_empty() {
            return Ok((total > 0).then_some(if too_long {
                Line::TooLong(total)
            } else {
                Line::Whole
            }));
        }
        let newline = available.iter().position(|b| *b == b'\n');
        let chunk = &available[..newline.unwrap_or(available.len())];
        total += chunk.len();
        if !too_long && buf.len() + chunk.len() > max {
            too_long = true;
        }
        let keep = if too_long {
            OVERSIZED_PREFIX.min(max)
        } else {
            max
        };
        let room = keep.saturating_sub(buf.len()).min(chunk.len());
        buf.extend_from_slice(&chunk[..room]);
        let used = newline.map_or(available.len(), |i| i + 1);
        r.consume(used);
        if newline.is_some() {
            return Ok(Some(if too_long {
                Line::TooLong(total)
            } else {
                Line::Whole
            }));
        }
    }
}

async fn read_lines<R: AsyncRead + Unpin>(
    input: R,
    max: usize,
    mut to_rmcp: mpsc::Sender<ClientJsonRpcMessage>,
    mut out: mpsc::Sender<Out>,
    session: Shared,
) {
    let mut reader = BufReader::with_capacity(64 * 1024, input);
    let mut buf = Vec::new();
    loop {
        let line = match read_line(&mut reader, max, &mut buf).await {
            Ok(Some(line)) => line,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!("cannot read stdin: {e}");
                return;
            }
        };
        let verdict = match line {
            Line::Whole => judge(&buf, &session),
            Line::TooLong(len) => Verdict::Answer(error_answer(
                scan_id(&buf),
                INVALID_REQUEST,
                format!("message of {len} bytes is larger than the limit of {max} bytes"),
            )),
        };
        let sent = match verdict {
            Verdict::Forward(msg) => to_rmcp.send(*msg).await.is_ok(),
            Verdict::Answer(v) => out.send(Out::Own(v)).await.is_ok(),
            Verdict::Ignore(why) => {
                tracing::debug!("stdin line ignored: {why}");
                true
            }
        };
        if !sent {
            return;
        }
    }
}

async fn write_lines<W: AsyncWrite + Unpin>(
    mut output: W,
    mut rx: mpsc::Receiver<Out>,
    session: Shared,
) {
    while let Some(out) = rx.next().await {
        let text = match out {
            Out::Own(v) => serde_json::to_vec(&v),
            Out::Rmcp(msg) => {
                match &*msg {
                    ServerJsonRpcMessage::Response(r) => answered(&r.id, true, &session),
                    ServerJsonRpcMessage::Error(e) => {
                        if let Some(id) = &e.id {
                            answered(id, false, &session);
                        }
                    }
                    _ => {}
                }
                serde_json::to_vec(&*msg)
            }
        };
        let mut line = match text {
            Ok(line) => line,
            Err(e) => {
                tracing::error!("cannot serialise a message for stdout: {e}");
                continue;
            }
        };
        line.push(b'\n');
        if output.write_all(&line).await.is_err() || output.flush().await.is_err() {
            // stdout is gone: nothing more can reach the client
            return;
        }
    }
}

/// rmcp answered request `id`: the id is free again; a successful answer to anything but a
/// ping or discovery means the session has started.
fn answered(id: &rmcp::model::RequestId, success: bool, session: &Shared) {
    let key = serde_json::to_string(id).unwrap_or_default();
    let mut s = lock(session);
    if let Some(method) = s.in_flight.remove(&key)
        && success
        && method != "ping"
        && method != "server/discover"
    {
        s.started = true;
    }
}

/// What to do with one line.
enum Verdict {
    Forward(Box<ClientJsonRpcMessage>),
    Answer(Value),
    Ignore(String),
}

fn error_answer(id: Option<Value>, code: i64, message: String) -> Value {
    json!({"jsonrpc": "2.0", "id": id.unwrap_or(Value::Null), "error": {"code": code, "message": message}})
}

/// Judge one whole line.
fn judge(line: &[u8], session: &Shared) -> Verdict {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return Verdict::Ignore("empty line".into());
    }
    let value = match parse_strict(line) {
        Ok(v) => v,
        Err(e) if e.classify() == serde_json::error::Category::Data => {
            // well-formed JSON that repeats a key: the lenient parse finds the id
            let id = serde_json::from_slice::<Value>(line)
                .ok()
                .and_then(|v| v.get("id").cloned())
                .filter(valid_id);
            return Verdict::Answer(error_answer(
                id,
                INVALID_REQUEST,
                format!("invalid request: {e}"),
            ));
        }
        Err(e) => {
            return Verdict::Answer(error_answer(
                scan_id(line),
                PARSE_ERROR,
                format!("parse error: {e}"),
            ));
        }
    };
    judge_value(value, session)
}

fn valid_id(id: &Value) -> bool {
    id.is_string() || id.as_i64().is_some()
}

fn judge_value(value: Value, session: &Shared) -> Verdict {
    let invalid = |id: Option<Value>, msg: String| {
        Verdict::Answer(error_answer(
            id,
            INVALID_REQUEST,
            format!("invalid request: {msg}"),
        ))
    };
    let Some(obj) = value.as_object() else {
        return invalid(
            None,
            if value.is_array() {
                "batches are not supported; send one message per line".into()
            } else {
                "a message must be a JSON object".into()
            },
        );
    };
    let id = match obj.get("id") {
        None => None,
        Some(id) if valid_id(id) => Some(id.clone()),
        Some(other) => {
            return invalid(
                None,
                format!("id must be a string or an integer, not {other}"),
            );
        }
    };
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return invalid(id, "\"jsonrpc\" must be \"2.0\"".into());
    }
    let method = match obj.get("method") {
        None => None,
        Some(Value::String(m)) => Some(m.clone()),
        Some(_) => return invalid(id, "method must be a string".into()),
    };
    if let Some(params) = obj.get("params")
        && !params.is_object()
    {
        return invalid(id, "params must be an object".into());
    }
    let started = lock(session).started;
    match (method, id) {
        // a notification: nothing can be answered
        (Some(method), None) => {
            if !started {
                return Verdict::Ignore(format!("notification {method} before initialize"));
            }
            match serde_json::from_value::<ClientJsonRpcMessage>(value) {
                Ok(msg) => {
                    if method == "notifications/cancelled"
                        && let ClientJsonRpcMessage::Notification(n) = &msg
                        && let rmcp::model::ClientNotification::CancelledNotification(c) =
                            &n.notification
                    {
                        // a cancelled request is not answered: its id is free again
                        let key = serde_json::to_string(&c.params.request_id).unwrap_or_default();
                        lock(session).in_flight.remove(&key);
                    }
                    Verdict::Forward(Box::new(msg))
                }
                Err(e) => Verdict::Ignore(format!("malformed notification {method}: {e}")),
            }
        }
        (Some(method), Some(id)) => judge_request(value, method, id, session),
        // a response (to an elicitation, a ping) from the client
        (None, Some(id)) => {
            if !(obj.contains_key("result") || obj.contains_key("error")) {
                return invalid(
                    Some(id),
                    "a message needs a method, or a result or error".into(),
                );
            }
            if !started {
                return Verdict::Ignore("response before initialize".into());
            }
            match serde_json::from_value::<ClientJsonRpcMessage>(value) {
                Ok(msg) => Verdict::Forward(Box::new(msg)),
                Err(e) => Verdict::Ignore(format!("malformed response: {e}")),
            }
        }
        (None, None) => invalid(
            None,
            "a message needs a method, or an id with a result or error".into(),
        ),
    }
}

fn judge_request(value: Value, method: String, id: Value, session: &Shared) -> Verdict {
    let key = id.to_string();
    if lock(session).in_flight.contains_key(&key) {
        return Verdict::Answer(error_answer(
            Some(id.clone()),
            INVALID_REQUEST,
            format!(
                "invalid request: id {id} is already used by a request still in progress; use a new id"
            ),
        ));
    }
    let bad_params = |detail: String| {
        Verdict::Answer(error_answer(
            Some(id.clone()),
            INVALID_PARAMS,
            format!("invalid params for {method}: {detail}"),
        ))
    };
    let params = value.get("params").cloned();
    let msg = match serde_json::from_value::<ClientJsonRpcMessage>(value) {
        Ok(msg) => msg,
        Err(e) => return bad_params(e.to_string()),
    };
    if let ClientJsonRpcMessage::Request(r) = &msg
        && let ClientRequest::CustomRequest(_) = &r.request
        && KNOWN_METHODS.contains(&method.as_str())
    {
        return bad_params(params_problem(&method, params));
    }
    let mut s = lock(session);
    if method == "initialize" {
        s.started = true;
    }
    s.in_flight.insert(key, method);
    Verdict::Forward(Box::new(msg))
}

/// Why the params of a known method do not fit, as precisely as can be told.
fn params_problem(method: &str, params: Option<Value>) -> String {
    let Some(params) = params else {
        return "params are missing".into();
    };
    let typed = match method {
        "tools/call" => serde_json::from_value::<rmcp::model::CallToolRequestParams>(params)
            .err()
            .map(|e| e.to_string()),
        _ => None,
    };
    typed.unwrap_or_else(|| "params do not have the shape this method takes".into())
}

/// Parse JSON like serde_json, but refuse an object that repeats a key (serde_json keeps
/// the last; rmcp's typed parse would fail on it later without an answer).
fn parse_strict(line: &[u8]) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(line);
    let value = (&mut de).deserialize_any(StrictVisitor)?;
    de.end()?;
    Ok(value)
}

struct Strict(Value);

impl<'de> de::Deserialize<'de> for Strict {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut obj = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if obj.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            let Strict(v) = map.next_value()?;
            obj.insert(key, v);
        }
        Ok(Value::Object(obj))
    }
}

/// The top-level `"id"` of a message that cannot be parsed (broken further on, or cut at
/// the size limit): a string or integer, read from the raw text.
fn scan_id(text: &[u8]) -> Option<Value> {
    let mut depth = 0usize;
    let mut i = 0usize;
    while i < text.len() {
        match text[i] {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            b'"' => {
                let end = string_end(text, i)?;
                let is_id_key = depth == 1 && &text[i..=end] == b"\"id\"";
                i = end + 1;
                if is_id_key {
                    let rest = skip_ws(text, i);
                    if text.get(rest) == Some(&b':') {
                        return id_value(text, skip_ws(text, rest + 1));
                    }
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Index of the quote closing the string that opens at `start`.
fn string_end(text: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < text.len() {
        match text[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

fn skip_ws(text: &[u8], mut i: usize) -> usize {
    while text.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    i
}

fn id_value(text: &[u8], at: usize) -> Option<Value> {
    match text.get(at)? {
        b'"' => {
            let end = string_end(text, at)?;
            serde_json::from_slice::<Value>(&text[at..=end]).ok()
        }
        b'-' | b'0'..=b'9' => {
            let len = text[at..]
                .iter()
                .position(|b| !(b.is_ascii_digit() || *b == b'-'))
                .unwrap_or(text.len() - at);
            let n: i64 = std::str::from_utf8(&text[at..at + len])
                .ok()?
                .parse()
                .ok()?;
            // 12.5 or 1e3 is no integer id
            match text.get(at + len) {
                Some(b'.' | b'e' | b'E') => None,
                _ => Some(Value::from(n)),
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_and_id(v: &Verdict) -> (i64, Value) {
        match v {
            Verdict::Answer(a) => (a["error"]["code"].as_i64().unwrap_or(0), a["id"].clone()),
            Verdict::Forward(_) => (0, Value::Null),
            Verdict::Ignore(_) => (1, Value::Null),
        }
    }

    fn started() -> Shared {
        let s = Shared::default();
        lock(&s).started = true;
        s
    }

    #[test]
    fn ids_are_read_from_broken_lines() {
        assert_eq!(
            scan_id(br#"{"jsonrpc":"2.0","id":7,"method":"x","params":{"a":"\ud800"}}"#),
            Some(json!(7))
        );
        assert_eq!(
            scan_id(br#"{"params":{"id":1,"s":"}{\""},"id":"abc","method"#),
            Some(json!("abc"))
        );
        assert_eq!(scan_id(br#"{"id": -3 , "#), Some(json!(-3)));
        assert_eq!(scan_id(br#"{"id": 1.5}"#), None);
        assert_eq!(scan_id(br#"{"method":"x""#), None);
        assert_eq!(scan_id(br#"[{"id":1}]"#), None);
    }

    #[test]
    fn every_malformed_request_is_answered_with_its_id() {
        let s = started();
        let cases: &[(&[u8], i64, Value)] = &[
            (b"not json", PARSE_ERROR, Value::Null),
            (
                br#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"get_events","arguments":{"namespace":"\ud800"}}}"#,
                PARSE_ERROR,
                json!(3),
            ),
            (
                br#"{"jsonrpc":"2.0","id":4,"method":"tools/list","params":"x"}"#,
                INVALID_REQUEST,
                json!(4),
            ),
            (
                br#"{"jsonrpc":"1.0","id":"five","method":"tools/list"}"#,
                INVALID_REQUEST,
                json!("five"),
            ),
            (
                br#"{"jsonrpc":"2.0","id":6,"id":6,"method":"tools/list"}"#,
                INVALID_REQUEST,
                json!(6),
            ),
            (
                br#"{"jsonrpc":"2.0","id":7,"method":"tools/call"}"#,
                INVALID_PARAMS,
                json!(7),
            ),
            (
                br#"{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"arguments":{}}}"#,
                INVALID_PARAMS,
                json!(8),
            ),
            (
                br#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":5}}"#,
                INVALID_PARAMS,
                json!(9),
            ),
            (
                br#"[{"jsonrpc":"2.0","id":10,"method":"ping"}]"#,
                INVALID_REQUEST,
                Value::Null,
            ),
            (
                br#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
                INVALID_REQUEST,
                Value::Null,
            ),
        ];
        for (line, code, id) in cases {
            let got = code_and_id(&judge(line, &s));
            assert_eq!(
                got,
                (*code, id.clone()),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn good_requests_pass_and_a_reused_id_is_refused_while_in_flight() {
        let s = started();
        let call = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_events","arguments":{}}}"#;
        assert_eq!(code_and_id(&judge(call, &s)).0, 0);
        assert_eq!(code_and_id(&judge(call, &s)), (INVALID_REQUEST, json!(1)));
        // the answer frees the id
        answered(&rmcp::model::RequestId::Number(1), true, &s);
        assert_eq!(code_and_id(&judge(call, &s)).0, 0);
        // an unknown method is rmcp's to answer (-32601)
        let custom = br#"{"jsonrpc":"2.0","id":2,"method":"no/such","params":{}}"#;
        assert_eq!(code_and_id(&judge(custom, &s)).0, 0);
    }

    #[test]
    fn notifications_before_initialize_are_ignored() {
        let s = Shared::default();
        let note = br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
        assert_eq!(code_and_id(&judge(note, &s)).0, 1);
        let init = br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}"#;
        assert_eq!(code_and_id(&judge(init, &s)).0, 0);
        assert_eq!(code_and_id(&judge(note, &s)).0, 0);
    }

    #[tokio::test]
    async fn long_lines_are_cut_and_the_next_line_is_read_whole() {
        let mut text =
            br#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":""#.to_vec();
        text.extend(std::iter::repeat_n(b'a', 5000));
        text.extend_from_slice(b"\"}}\n{\"short\":1}\n");
        let mut r = BufReader::with_capacity(64, &text[..]);
        let mut buf = Vec::new();
        let first = read_line(&mut r, 2048, &mut buf).await.ok().flatten();
        assert!(matches!(first, Some(Line::TooLong(n)) if n == text.len() - 13));
        assert_eq!(scan_id(&buf), Some(json!(42)));
        let second = read_line(&mut r, 2048, &mut buf).await.ok().flatten();
        assert!(matches!(second, Some(Line::Whole)));
        assert_eq!(buf, b"{\"short\":1}");
        assert!(
            read_line(&mut r, 2048, &mut buf)
                .await
                .ok()
                .flatten()
                .is_none()
        );
    }
}
