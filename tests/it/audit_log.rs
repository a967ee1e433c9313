//! The audit log under faults, with the real server binary: `kill -9` in the middle of bursts
//! of calls, a full disk (RLIMIT_FSIZE), and `audit verify` telling records added past the
//! head from records removed.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use eks_ops_mcp::audit::{self, AuditLog};
use serde_json::{Value, json};

/// The server binary (`EKS_OPS_MCP_BIN` overrides the one cargo built, as in the e2e tests).
fn bin() -> String {
    std::env::var("EKS_OPS_MCP_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_eks-ops-mcp").into())
}

/// A server over stdio, spoken to in newline-delimited JSON-RPC.
struct Server {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    next_id: u64,
}

impl Server {
    /// Start `command` (the server, or a wrapper that execs it) and initialise the session.
    fn start(mut command: Command, stderr: &Path) -> Self {
        let mut child = command
            .env_remove("EKS_OPS_MCP_AUTH_TOKEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(stderr).unwrap())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut s = Self {
            child,
            stdin,
            stdout,
            next_id: 1,
        };
        let init = s.request(
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "audit-crash-test", "version": "0"}}),
        );
        assert!(
            init.get("result").is_some(),
            "{init}: {}",
            std::fs::read_to_string(stderr).unwrap_or_default()
        );
        s.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        s
    }

    fn send(&mut self, msg: &Value) {
        let mut line = msg.to_string();
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).unwrap();
        self.stdin.flush().unwrap();
    }

    /// Send a request without waiting for its answer; returns its id.
    fn send_request(&mut self, method: &str, params: Value) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        id
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.send_request(method, params);
        let mut line = String::new();
        loop {
            line.clear();
            assert!(
                self.stdout.read_line(&mut line).unwrap() > 0,
                "the server closed its output"
            );
            let msg: Value = serde_json::from_str(&line).unwrap();
            if msg["id"] == json!(id) {
                return msg;
            }
        }
    }

    /// Call a tool; returns its result (`isError`, `content`, …).
    fn call(&mut self, tool: &str, args: Value) -> Value {
        let r = self.request("tools/call", json!({"name": tool, "arguments": args}));
        r.get("result").cloned().unwrap_or_else(|| panic!("{r}"))
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

fn serve_command(log: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.args(["--log", "warn", "serve", "--sandbox", "--audit-log"])
        .arg(log)
        .args(extra);
    c
}

fn scale_dry_run() -> Value {
    json!({"namespace": "shop", "name": "checkout", "replicas": 4, "dry_run": true})
}

/// A small deterministic generator for kill delays (no rand dependency).
fn next(state: &mut u64) -> u64 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *state >> 33
}

#[test]
fn kill_9_in_bursts_of_calls_leaves_a_log_that_recovers_and_continues() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let stderr = dir.path().join("server.err");
    let mut rng = 0x5eed_u64;
    let mut records = Vec::new();
    let mut torn_seen = 0;
    let mut past_head_seen = 0;
    for round in 0..20 {
        let mut s = Server::start(serve_command(&log, &[]), &stderr);
        // a burst: reads and dry-run mutations (synced decision records), not awaited
        for i in 0..150 {
            if i % 10 == 0 {
                s.send_request(
                    "tools/call",
                    json!({"name": "scale_deployment", "arguments": scale_dry_run()}),
                );
            } else {
                s.send_request(
                    "tools/call",
                    json!({"name": "get_node_status", "arguments": {}}),
                );
            }
        }
        // let some calls finish, then kill at a random moment of the ones that follow
        let answered = 1 + next(&mut rng) % 40;
        let mut line = String::new();
        for _ in 0..answered {
            line.clear();
            s.stdout.read_line(&mut line).unwrap();
        }
        std::thread::sleep(Duration::from_micros(next(&mut rng) % 3000));
        s.kill();
        // what the crash left: intact up to a possibly torn last record, never tampering
        let v = audit::verify(&log).unwrap_or_else(|e| panic!("round {round}: after kill -9: {e}"));
        torn_seen += usize::from(v.torn_tail.is_some());
        past_head_seen += usize::from(v.past_head > 0);
        records.push(v.records);
    }
    assert!(
        records.windows(2).all(|w| w[1] > w[0]),
        "the kills should land while calls are being recorded: {records:?}"
    );
    // the next server starts on it and continues the chain
    let mut s = Server::start(serve_command(&log, &[]), &stderr);
    let r = s.call("get_node_status", json!({}));
    assert_ne!(r["isError"], json!(true), "{r}");
    s.kill();
    let last = *records.last().unwrap();
    let v = audit::verify(&log).unwrap();
    assert!(v.records > last, "{} after {last}", v.records);
    // and so does a library writer, after which the log is fully intact
    let writer = AuditLog::open(log.to_str().unwrap()).unwrap();
    writer.append(json!({"tool": "after"})).unwrap();
    drop(writer);
    let v = audit::verify(&log).unwrap();
    assert_eq!((v.past_head, v.torn_tail), (0, None));
    eprintln!(
        "20 kills: {} records, {torn_seen} torn tails, {past_head_seen} times records past the head",
        v.records
    );
}

/// The server run with a soft RLIMIT_FSIZE of `bytes` (SIGXFSZ ignored, so a write past the limit
/// fails with EFBIG instead of killing the process).
fn limited_server(log: &Path, bytes: u64, extra: &[&str], stderr: &Path) -> Server {
    let mut c = Command::new("prlimit");
    c.arg(format!("--fsize={bytes}:unlimited"))
        .args(["--", "sh", "-c", "trap '' XFSZ; exec \"$@\"", "sh"])
        .arg(bin())
        .args(["--log", "warn", "serve", "--sandbox", "--audit-log"])
        .arg(log)
        .args(extra);
    Server::start(c, stderr)
}

fn raise_limit(s: &Server) {
    let ok = Command::new("prlimit")
        .arg(format!("--pid={}", s.child.id()))
        .arg("--fsize=unlimited:unlimited")
        .status()
        .unwrap()
        .success();
    assert!(ok, "prlimit --pid could not raise the limit");
}

fn text(result: &Value) -> String {
    result["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_full_disk_leaves_no_torn_record_and_the_log_works_once_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let limit = 16 * 1024;
    let mut s = limited_server(&log, limit, &[], &dir.path().join("server.err"));
    // reads until the log is full: then they are refused (the default policy)
    let mut refused = None;
    for _ in 0..200 {
        let r = s.call("get_node_status", json!({}));
        if r["isError"] == json!(true) {
            refused = Some(text(&r));
            break;
        }
    }
    let refused = refused.expect("the log should fill up");
    assert!(refused.contains("could not be written"), "{refused}");
    // a mutation is refused too, before anything changes
    let r = s.call("scale_deployment", scale_dry_run());
    assert_eq!(r["isError"], json!(true), "{r}");
    // no partial record: the file is a whole number of intact records
    let v = audit::verify(&log).unwrap();
    assert_eq!(v.torn_tail, None);
    assert!(std::fs::metadata(&log).unwrap().len() <= limit);
    let full_at = v.records;
    // space returns: the same process records again
    raise_limit(&s);
    let r = s.call("get_node_status", json!({}));
    assert_ne!(r["isError"], json!(true), "{r}");
    let r = s.call("scale_deployment", scale_dry_run());
    assert_ne!(r["isError"], json!(true), "{r}");
    s.kill();
    let v = audit::verify(&log).unwrap();
    assert!(v.records >= full_at + 3, "{} after {full_at}", v.records);
    assert_eq!(v.torn_tail, None);
    assert!(!dir.path().join("audit.jsonl.quarantine").exists());
}

#[test]
fn reads_continue_on_a_full_disk_when_configured_and_mutations_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let mut s = limited_server(
        &log,
        16 * 1024,
        &["--audit-failure", "reads-continue"],
        &dir.path().join("server.err"),
    );
    // reads are answered throughout; the log stops growing when it is full
    let mut unchanged = 0;
    let mut size = 0;
    for _ in 0..200 {
        let r = s.call("get_node_status", json!({}));
        assert_ne!(r["isError"], json!(true), "{r}");
        let now = std::fs::metadata(&log).unwrap().len();
        unchanged = if now == size { unchanged + 1 } else { 0 };
        size = now;
        if unchanged == 3 {
            break;
        }
    }
    assert_eq!(unchanged, 3, "the log should fill up");
    let r = s.call("scale_deployment", scale_dry_run());
    assert_eq!(r["isError"], json!(true), "{r}");
    // refused by the guard (the decision could not be recorded) and by the server (nor the call)
    assert!(text(&r).contains("could not be"), "{}", text(&r));
    s.kill();
    assert_eq!(audit::verify(&log).unwrap().torn_tail, None);
    let err = std::fs::read_to_string(dir.path().join("server.err")).unwrap();
    assert!(err.contains("without an audit record"), "{err}");
}

fn verify_cli(log: &Path) -> (bool, String) {
    let out = Command::new(bin())
        .args(["--log", "warn", "audit", "verify"])
        .arg(log)
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), all)
}

#[test]
fn audit_verify_tells_records_past_the_head_from_records_removed() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let writer = AuditLog::open(log.to_str().unwrap()).unwrap();
    writer.append(json!({"phase": "decided"})).unwrap();
    for i in 0..3 {
        writer
            .append_with(json!({"tool": "get_events", "i": i}), false)
            .unwrap();
    }
    // as if killed: the head still records the first record
    std::mem::forget(writer);
    let (ok, out) = verify_cli(&log);
    assert!(ok, "{out}");
    assert!(
        out.contains("4 records") && out.contains("3 record(s) were added after the head"),
        "{out}"
    );
    // removing records the head covers is tampering
    let text = std::fs::read_to_string(&log).unwrap();
    std::fs::write(&log, "").unwrap();
    let (ok, out) = verify_cli(&log);
    assert!(!ok && out.contains("removed from the end"), "{out}");
    // a torn last record is reported as a crash's leftover
    std::fs::write(&log, &text[..text.len() - 10]).unwrap();
    let (ok, out) = verify_cli(&log);
    assert!(ok && out.contains("incomplete"), "{out}");
}
