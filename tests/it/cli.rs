//! The command line: the predictive-scaling job, `policy test`, `policy check`, `audit verify`.

use std::process::Command;

use serde_json::Value;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_eks-ops-mcp"));
    c.env_remove("EKS_OPS_MCP_AUTH_TOKEN")
        .args(["--log", "warn"]);
    c
}

/// Runs `eks-ops-mcp forecast` on the sandbox for shop/checkout with `extra` arguments and
/// JSON output: (success, report, stderr).
fn forecast_job(
    dir: &std::path::Path,
    audit: &std::path::Path,
    extra: &[&str],
) -> (bool, Value, String) {
    let out = bin()
        .env("EKS_OPS_MCP_AUDIT_LOG", audit)
        .env("EKS_OPS_MCP_FORECAST_STORE", dir.join("forecasts.jsonl"))
        .args([
            "forecast",
            "--sandbox",
            "--deployment",
            "shop/checkout",
            "--promql",
            "http_requests_per_second{service=\"checkout\"}",
            "--output",
            "json",
        ])
        .args(extra)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (
        out.status.success(),
        report,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn forecast_job_recommends_and_applies_through_the_guard() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let run = |capacity: &str, apply: bool| {
        let mut extra = vec!["--capacity-per-pod", capacity, "--lead", "1h"];
        if apply {
            extra.push("--apply");
        }
        forecast_job(dir.path(), &audit, &extra)
    };
    // a generous capacity per pod: the proposal stays within twice the replicas, so it applies
    let (ok, report, err) = run("1000", true);
    assert!(ok, "{err}");
    let rec = &report["recommendation"];
    assert_eq!(rec["current_replicas"], 4);
    assert_eq!(rec["action"], "none", "{rec}");
    let (ok, report, err) = run("40", false);
    assert!(ok, "{err}");
    let proposed = report["recommendation"]["plan"]["proposed"]
        .as_i64()
        .unwrap();
    assert!(
        report.get("applied").is_none(),
        "without --apply nothing is applied"
    );
    if proposed > 4 && proposed <= 8 {
        let (ok, report, err) = run("40", true);
        assert!(ok, "{err}");
        assert_eq!(report["applied"]["status"], "applied");
    }
    // a small capacity per pod: ~156 replicas, above the ceiling of 100 — the guard denies it and
    // the job fails visibly, with the decision in its report
    let (ok, report, err) = run("2", true);
    assert!(!ok, "an unapplied proposal is a failed job");
    assert_eq!(report["applied"]["status"], "denied", "{report}");
    assert_eq!(
        report["applied"]["decision"]["policies"][0]["id"],
        "deny-above-replica-ceiling"
    );
    assert!(err.contains("was not applied"), "{err}");
    // every call of the job is in the audit log, and the chain verifies
    let out = bin()
        .args(["audit", "verify"])
        .arg(&audit)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("chain intact"));
}

#[test]
fn forecast_job_sizes_for_the_level_asked() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let run = |level: Option<&str>| {
        let mut extra = vec!["--capacity-per-pod", "40"];
        if let Some(l) = level {
            extra.extend(["--level", l]);
        }
        forecast_job(dir.path(), &audit, &extra)
    };
    let (ok, default, err) = run(None);
    assert!(ok, "{err}");
    let (ok, safer, err) = run(Some("0.95"));
    assert!(ok, "{err}");
    let peak = |r: &Value| r["recommendation"]["peak_upper"].as_f64().unwrap();
    let raw = |r: &Value| r["recommendation"]["plan"]["raw"].as_i64().unwrap();
    // the default sizes for the 90th percentile, 0.95 for the 97.5th: a higher bound, never
    // fewer replicas
    assert!(peak(&safer) > peak(&default), "{safer} vs {default}");
    assert!(raw(&safer) >= raw(&default));
    let (ok, _, err) = run(Some("1.5"));
    assert!(!ok);
    assert!(
        err.contains("level 1.5 must be between 0.5 and 0.99"),
        "{err}"
    );
}

#[test]
fn policy_commands() {
    let out = bin()
        .args(["policy", "test", "--cases"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/policies/tests"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.trim_end().ends_with(" passed, 0 failed"), "{stdout}");

    let dir = tempfile::tempdir().unwrap();
    let req = dir.path().join("req.json");
    std::fs::write(
        &req,
        r#"{"principal": "kiro", "action": "get", "resource": {"kind": "Secret", "namespace": "shop", "name": "db"},
            "facts": {"verb": "get", "allowed_verbs": ["get"], "namespace": "shop", "dry_run": false, "mutations_last_hour": 0}}"#,
    )
    .unwrap();
    let out = bin().args(["policy", "check"]).arg(&req).output().unwrap();
    let decision: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(decision["outcome"], "deny");
    assert_eq!(decision["policies"][0]["id"], "deny-secrets-and-configmaps");

    // facts gathered from the (sandbox) cluster by the tool's plan step
    let out = bin()
        .env("EKS_OPS_MCP_AUDIT_LOG", dir.path().join("audit.jsonl"))
        .env("EKS_OPS_MCP_FORECAST_STORE", dir.path().join("f.jsonl"))
        .args([
            "policy",
            "check",
            "--sandbox",
            "--tool",
            "scale_deployment",
            "--args",
            r#"{"namespace":"shop","name":"checkout","replicas":9}"#,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["decision"]["outcome"], "escalate");
    assert_eq!(
        v["facts"]["replicas"]["current"], 4,
        "read from the cluster, not the arguments"
    );
    assert_eq!(v["plan"]["summary"], "replicas 4 → 9");

    let bad = dir.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    std::fs::write(bad.join("p.cedar"), "@id(\"x\")\n@message(\"m\")\npermit (principal, action, resource)\nwhen { context.nope };\n").unwrap();
    let out = bin()
        .args(["policy", "test", "--policies"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("p.cedar:4:"), "{err}");
}

#[test]
fn a_tampered_audit_log_fails_verification() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.jsonl");
    let log = eks_ops_mcp::audit::AuditLog::open(path.to_str().unwrap()).unwrap();
    for i in 0..3 {
        log.append(serde_json::json!({"tool": "get_events", "i": i}))
            .unwrap();
    }
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\"i\":1", "\"i\":5");
    std::fs::write(&path, text).unwrap();
    let out = bin().args(["audit", "verify"]).arg(&path).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("line 2"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
