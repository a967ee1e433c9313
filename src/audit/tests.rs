//! The log's behaviour on real files: chain checks, crash recovery at every byte of a torn
//! record, heads that lag or lead, bounded values, result digests, rotation and concurrent
//! verification.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Value, json};

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

fn open(path: &Path) -> AuditLog {
    AuditLog::open(path.to_str().unwrap()).unwrap()
}

fn open_opts(path: &Path, options: AuditOptions) -> AuditLog {
    AuditLog::open_with(path.to_str().unwrap(), options).unwrap()
}

/// Append a read's record (no sync, no head update).
fn read_record(log: &AuditLog, i: usize) -> u64 {
    log.append_with(json!({"tool": "get_events", "i": i}), false)
        .unwrap()
        .unwrap()
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn an_intact_log_verifies_and_continues_its_chain() {
    let (_d, path) = log_with(5);
    let v = verify(&path).unwrap();
    assert_eq!((v.records, v.past_head, v.segments), (5, 0, 1));
    assert!(v.head_checked && v.torn_tail.is_none());
    let log = open(&path);
    assert_eq!(log.append(json!({"tool": "x"})).unwrap(), Some(6));
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
    let l = lines(&path);
    // a record from the middle
    std::fs::write(&path, format!("{}\n{}\n{}\n", l[0], l[2], l[3])).unwrap();
    assert!(verify(&path).unwrap_err().to_string().contains("line 2"));
    // the last record (caught by the head file)
    std::fs::write(&path, format!("{}\n{}\n{}\n", l[0], l[1], l[2])).unwrap();
    let e = verify(&path).unwrap_err().to_string();
    assert!(e.contains("removed from the end"), "{e}");
    // and a server refuses to continue such a log
    let e = AuditLog::open(path.to_str().unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("removed from the end"), "{e}");
    // records cut back into the middle of one the head covers
    std::fs::write(&path, format!("{}\n{}", l[0], &l[1][..20])).unwrap();
    let e = verify(&path).unwrap_err().to_string();
    assert!(e.contains("removed from the end"), "{e}");
}

#[test]
fn records_past_the_head_are_reported_not_tampering_and_accepted_on_open() {
    let (_d, path) = log_with(2);
    let log = open(&path);
    for i in 0..5 {
        read_record(&log, i);
    }
    // a crash: no shutdown, so the head still records record 2
    std::mem::forget(log);
    let v = verify(&path).unwrap();
    assert_eq!((v.records, v.past_head), (7, 5));
    let log = open(&path);
    assert_eq!(log.quarantined(), 0);
    assert_eq!(
        verify(&path).unwrap().past_head,
        0,
        "the head moved forward"
    );
    assert_eq!(read_record(&log, 9), 8);
    drop(log);
    let v = verify(&path).unwrap();
    assert_eq!((v.records, v.past_head), (8, 0), "shutdown writes the head");
}

#[test]
fn a_torn_last_record_is_quarantined_at_every_byte_it_can_be_cut() {
    let (_d, path) = log_with(3);
    let log = open(&path);
    read_record(&log, 3);
    std::mem::forget(log);
    let all = std::fs::read(&path).unwrap();
    let last_len = lines(&path)[3].len() + 1;
    let good = all.len() - last_len;
    let qpath = files::quarantine_path(&path);
    let mut quarantined_bytes = 0;
    for cut in 1..last_len {
        std::fs::write(&path, &all[..good + cut]).unwrap();
        let log = open(&path);
        assert_eq!(log.quarantined(), 1, "cut at {cut}");
        assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, good);
        quarantined_bytes += cut;
        let q = std::fs::read(&qpath).unwrap();
        assert!(
            q.windows(cut).any(|w| w == &all[good..good + cut]),
            "cut at {cut}: the torn bytes are kept in the quarantine file"
        );
        // appends continue the chain from the last good record
        assert_eq!(read_record(&log, 4), 4);
        drop(log);
        let v = verify(&path).unwrap();
        assert_eq!((v.records, v.torn_tail), (4, None));
        // back to the head at record 3 (what the crash left)
        std::fs::write(&path, &all[..good]).unwrap();
        let head = files::Head {
            seq: 3,
            hash: lines(&path)[2][lines(&path)[2].len() - 66..][..64].to_string(),
            offset: Some(good as u64),
        };
        files::write_head(&path, &head).unwrap();
    }
    assert!(std::fs::metadata(&qpath).unwrap().len() as usize > quarantined_bytes);
    // the whole line present: accepted, nothing quarantined
    std::fs::write(&path, &all).unwrap();
    assert_eq!(open(&path).quarantined(), 0);
    assert_eq!(verify(&path).unwrap().records, 4);
}

#[test]
fn verify_reports_a_torn_tail_past_the_head_without_calling_it_tampering() {
    let (_d, path) = log_with(2);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(b"{\"seq\":3,\"ti")
        .unwrap();
    let v = verify(&path).unwrap();
    assert_eq!(v.records, 2);
    assert!(v.torn_tail.unwrap().contains("cut short"));
}

#[test]
fn a_complete_last_record_with_a_bad_hash_past_the_head_is_quarantined() {
    let (_d, path) = log_with(2);
    let log = open(&path);
    read_record(&log, 7);
    std::mem::forget(log);
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\"i\":7", "\"i\":8");
    std::fs::write(&path, text).unwrap();
    let log = open(&path);
    assert_eq!(log.quarantined(), 1);
    assert_eq!(verify(&path).unwrap().records, 2);
}

#[test]
fn damage_with_records_after_it_is_not_taken_for_a_crash() {
    let (_d, path) = log_with(2);
    let log = open(&path);
    for i in 10..13 {
        read_record(&log, i);
    }
    std::mem::forget(log);
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replacen("\"i\":11", "\"i\":15", 1);
    std::fs::write(&path, text).unwrap();
    let e = AuditLog::open(path.to_str().unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("records follow it"), "{e}");
}

#[test]
fn another_writers_torn_record_is_repaired_by_the_next_append() {
    let (_d, path) = log_with(2);
    let log = open(&path);
    // a second process crashed in the middle of its record
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(b"{\"seq\":3,\"time\":\"2026")
        .unwrap();
    assert_eq!(read_record(&log, 3), 3);
    assert_eq!(log.quarantined(), 1);
    drop(log);
    assert_eq!(verify(&path).unwrap().records, 3);
}

#[test]
fn open_walks_only_from_the_checkpoint() {
    let (_d, path) = log_with(3);
    // damage a record the head covers: open does not re-read it (verify does)
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replacen("\"i\":0", "\"i\":9", 1);
    std::fs::write(&path, text).unwrap();
    let log = open(&path);
    assert_eq!(log.append(json!({"tool": "x"})).unwrap(), Some(4));
    assert!(verify(&path).unwrap_err().to_string().contains("line 1"));
}

#[test]
fn a_head_in_the_old_format_costs_one_walk_and_is_upgraded() {
    let (_d, path) = log_with(3);
    let l = lines(&path);
    let hash = &l[2][l[2].len() - 66..][..64];
    std::fs::write(
        files::head_path(&path),
        json!({"seq": 3, "hash": hash}).to_string(),
    )
    .unwrap();
    drop(open(&path));
    assert!(files::read_head(&path).unwrap().unwrap().offset.is_some());
    assert!(verify(&path).unwrap().head_checked);
}

#[test]
fn floats_that_do_not_round_trip_still_verify() {
    let (_d, path) = log_with(0);
    let log = open(&path);
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
fn oversize_values_are_bounded_with_their_size() {
    let (_d, path) = log_with(0);
    let log = open(&path);
    let huge = "x".repeat(10 * 1024 * 1024);
    log.append(json!({"tool": "scale_deployment", "arguments": {"name": huge}}))
        .unwrap();
    let l = lines(&path);
    assert!(l[0].len() <= MAX_RECORD, "{}", l[0].len());
    let rec: Value = serde_json::from_str(&l[0]).unwrap();
    let name = rec["arguments"]["name"].as_str().unwrap();
    assert!(name.len() <= MAX_STRING);
    assert!(
        name.ends_with("…[truncated: 10485760 bytes]"),
        "{}",
        &name[4000..]
    );
    assert_eq!(verify(&path).unwrap().records, 1);
}

#[test]
fn a_reads_result_is_stored_as_a_digest_by_default() {
    let (_d, path) = log_with(0);
    let result = json!({"pods": ["a", "b"]});
    let text = serde_json::to_string(&result).unwrap();
    let log = open(&path);
    log.append_with(json!({"tool": "get_pod_status", "result": result}), false)
        .unwrap();
    log.append_with(json!({"tool": "scale_deployment", "result": result}), true)
        .unwrap();
    drop(log);
    let full = open_opts(
        &path,
        AuditOptions {
            results: ResultMode::Full,
            ..Default::default()
        },
    );
    full.append_with(json!({"tool": "get_pod_status", "result": result}), false)
        .unwrap();
    let recs: Vec<Value> = lines(&path)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    use sha2::Digest as _;
    let sha: String = sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        recs[0]["result"],
        json!({"sha256": sha, "bytes": text.len()})
    );
    assert_eq!(recs[1]["result"], result, "a mutation keeps its result");
    assert_eq!(recs[2]["result"], result, "--audit-results full");
}

#[test]
fn two_writers_on_one_file_keep_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let a = Arc::new(open(&path));
    let b = Arc::new(open(&path));
    let threads: Vec<_> = [a, b]
        .into_iter()
        .map(|log| {
            std::thread::spawn(move || {
                for i in 0..50 {
                    log.append_with(json!({"i": i}), i % 10 == 0).unwrap();
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
    std::fs::remove_file(files::head_path(&path)).unwrap();
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replacen("get_events", "get_evenTs", 1);
    std::fs::write(&path, text).unwrap();
    assert!(AuditLog::open(path.to_str().unwrap()).is_err());
}

fn small(max: u64) -> AuditOptions {
    AuditOptions {
        max_bytes: Some(max),
        ..Default::default()
    }
}

#[test]
fn rotation_keeps_one_chain_across_files() {
    let (_d, path) = log_with(0);
    let log = open_opts(&path, small(2000));
    for i in 0..60 {
        log.append_with(json!({"tool": "get_events", "i": i}), i % 7 == 0)
            .unwrap();
    }
    drop(log);
    let segs = files::segments(&path).unwrap();
    assert!(segs.len() >= 3, "{segs:?}");
    for (_, p) in &segs {
        assert!(std::fs::metadata(p).unwrap().len() <= 2000);
    }
    let v = verify(&path).unwrap();
    assert_eq!((v.records, v.segments), (60, segs.len() + 1));
    // continues after reopening
    let log = open_opts(&path, small(2000));
    assert_eq!(read_record(&log, 60), 61);
    drop(log);
    // a segment removed from the middle breaks the chain
    std::fs::remove_file(&segs[1].1).unwrap();
    let e = verify(&path).unwrap_err().to_string();
    assert!(e.contains("prev_hash does not match"), "{e}");
}

#[test]
fn a_rotation_stopped_by_a_crash_is_finished_or_undone() {
    for head_written in [true, false] {
        let (_d, path) = log_with(0);
        let log = open_opts(&path, small(1200));
        let mut i = 0;
        while files::segments(&path).unwrap().is_empty() {
            read_record(&log, i);
            i += 1;
        }
        drop(log);
        let seg = files::segments(&path).unwrap()[0].1.clone();
        // back to the moment before the rename: the new file staged, the old one linked
        // as the segment and still the current file
        std::fs::rename(&path, files::staging_path(&path)).unwrap();
        std::fs::hard_link(&seg, &path).unwrap();
        if !head_written {
            let l = lines(&seg);
            let last = l.last().unwrap();
            files::write_head(
                &path,
                &files::Head {
                    seq: l.len() as u64,
                    hash: last[last.len() - 66..][..64].to_string(),
                    offset: Some(std::fs::metadata(&seg).unwrap().len()),
                },
            )
            .unwrap();
        }
        let log = open_opts(&path, small(1200));
        assert!(!files::staging_path(&path).exists());
        assert_eq!(read_record(&log, i), i as u64 + 1);
        drop(log);
        assert_eq!(verify(&path).unwrap().records, i as u64 + 1);
    }
    // a crash before the link: the staging file is dropped
    let (_d, path) = log_with(2);
    std::fs::write(files::staging_path(&path), "partial").unwrap();
    drop(open(&path));
    assert!(!files::staging_path(&path).exists());
    assert_eq!(verify(&path).unwrap().records, 2);
}

#[test]
fn verify_while_processes_write_and_rotate_never_reports_tampering() {
    let (_d, path) = log_with(0);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let path = path.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let log = open_opts(&path, small(20_000));
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    log.append_with(json!({"w": w, "i": n}), n % 50 == 0)
                        .unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut checks = 0;
    let mut last = 0;
    // at least 20 checks (each reads every file again, so more only costs time), and until
    // the writers have rotated twice
    while checks < 20 || files::segments(&path).unwrap().len() < 2 {
        let v = verify(&path).unwrap_or_else(|e| panic!("check {checks}: {e}"));
        assert!(v.records >= last);
        last = v.records;
        checks += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let written: u64 = writers.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(verify(&path).unwrap().records, written);
}
