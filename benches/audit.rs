//! Audit log costs: appending a read's record (the price every read tool call pays), a
//! mutation's synced record, opening a 10,000-record log, recovering one after a crash, and
//! verifying it in full.
//!
//! Run: `cargo bench --bench audit` (the log goes to a temporary folder; set TMPDIR to
//! measure another file system).

use std::time::{Duration, Instant};

use eks_ops_mcp::audit::{self, AuditLog};
use serde_json::{Value, json};

fn pct(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e6
}

fn stats(mut v: Vec<Duration>) -> (f64, f64, f64) {
    v.sort();
    let mean = v.iter().map(|d| d.as_secs_f64()).sum::<f64>() / v.len() as f64 * 1e6;
    (pct(&v, 0.5), pct(&v, 0.99), mean)
}

/// A completed read call's record as the server writes it, with a result of ~4 KB.
fn read_record(i: usize) -> Value {
    let pods: Vec<Value> = (0..20)
        .map(|p| json!({"name": format!("checkout-{i}-{p}"), "phase": "Running", "restarts": p, "ready": true,
                         "containers": [{"name": "app", "state": "running", "cpu_m": 120, "memory_mib": 256}]}))
        .collect();
    json!({"phase": "completed", "principal": "bench", "tool": "get_pod_status",
           "arguments": {"namespace": "shop"}, "is_error": false, "duration_ms": 0.4,
           "result": {"namespace": "shop", "pods": pods}})
}

fn mutation_record(i: usize) -> Value {
    json!({"phase": "decided", "principal": "bench", "tool": "scale_deployment",
           "target": {"namespace": "shop", "name": "checkout"},
           "plan": {"summary": format!("scale to {i}"), "changes": [{"path": "spec.replicas", "from": 4, "to": 6}]},
           "decision": {"outcome": "allow", "reason": "within limits"}})
}

fn row(name: &str, v: Vec<Duration>) {
    let (p50, p99, mean) = stats(v);
    println!("| {name} | {p50:.1} | {p99:.1} | {mean:.1} |");
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("audit.jsonl");
    let target = path.to_str().expect("utf-8 path");

    println!("| measurement | p50 µs | p99 µs | mean µs |\n|---|---|---|---|");
    let log = AuditLog::open(target).expect("open");
    for i in 0..500 {
        log.append_with(read_record(i), false).expect("append");
    }
    let mut reads = Vec::with_capacity(10_000);
    for i in 0..10_000 {
        let rec = read_record(i);
        let t = Instant::now();
        log.append_with(rec, false).expect("append");
        reads.push(t.elapsed());
    }
    row("read record (result digested), 10,000 appends", reads);
    let mut full = Vec::with_capacity(2_000);
    let full_log = AuditLog::open_with(
        dir.path().join("full.jsonl").to_str().expect("utf-8"),
        audit::AuditOptions {
            results: audit::ResultMode::Full,
            ..Default::default()
        },
    )
    .expect("open");
    for i in 0..2_000 {
        let rec = read_record(i);
        let t = Instant::now();
        full_log.append_with(rec, false).expect("append");
        full.push(t.elapsed());
    }
    row("read record (--audit-results full, ~4 KB result)", full);
    let mut muts = Vec::with_capacity(100);
    for i in 0..100 {
        let rec = mutation_record(i);
        let t = Instant::now();
        log.append(rec).expect("append");
        muts.push(t.elapsed());
    }
    row("mutation record (fsync + head)", muts);
    drop(log);
    let len = std::fs::metadata(&path).expect("log").len();
    println!("\nlog: {} records, {:.1} MB\n", 10_600, len as f64 / 1e6);

    println!("| measurement | ms |\n|---|---|");
    let t = Instant::now();
    let log = AuditLog::open(target).expect("open");
    println!(
        "| open (head current) | {:.2} |",
        t.elapsed().as_secs_f64() * 1e3
    );
    // a crash: 255 read records past the head and a torn last record
    for i in 0..255 {
        log.append_with(read_record(i), false).expect("append");
    }
    std::mem::forget(log);
    let mut torn = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .expect("log");
    std::io::Write::write_all(&mut torn, b"{\"seq\":10856,\"time\":\"20").expect("write");
    let t = Instant::now();
    let log = AuditLog::open(target).expect("open");
    println!(
        "| open after a crash (255 records past the head, torn last record quarantined) | {:.2} |",
        t.elapsed().as_secs_f64() * 1e3
    );
    assert_eq!(log.quarantined(), 1);
    drop(log);
    // a log whose head predates checkpoints: one full walk
    std::fs::remove_file(dir.path().join("audit.jsonl.head")).expect("head");
    let t = Instant::now();
    drop(AuditLog::open(target).expect("open"));
    println!(
        "| open without a head (full walk, once) | {:.2} |",
        t.elapsed().as_secs_f64() * 1e3
    );
    let t = Instant::now();
    let v = audit::verify(&path).expect("verify");
    println!(
        "| audit verify ({} records) | {:.2} |",
        v.records,
        t.elapsed().as_secs_f64() * 1e3
    );
}
