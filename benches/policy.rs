//! Policy decision latency for the default policy set, and the guard's own overhead on a
//! mutating call (everything but the Kubernetes API round trips).
//!
//! Run: `cargo bench --bench policy`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use eks_ops_mcp::audit::AuditLog;
use eks_ops_mcp::guard::{Guard, GuardConfig};
use eks_ops_mcp::policy::cases::case_facts;
use eks_ops_mcp::policy::{PolicyEngine, PolicyRequest, Target};
use eks_ops_mcp::sandbox::{Sandbox, Scenario};
use eks_ops_mcp::server::{EksOpsServer, ServerSettings};
use eks_ops_mcp::tools::ToolContext;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::json;

fn pct(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e6
}

fn stats(mut v: Vec<Duration>) -> (f64, f64, f64) {
    v.sort();
    let mean = v.iter().map(|d| d.as_secs_f64()).sum::<f64>() / v.len() as f64 * 1e6;
    (pct(&v, 0.5), pct(&v, 0.99), mean)
}

fn request(action: &str, kind: &str, facts: serde_json::Value, expect: &str) -> PolicyRequest {
    let case: eks_ops_mcp::policy::cases::Case = serde_json::from_value(json!({
        "name": "bench", "action": action, "resource": {"kind": kind, "namespace": "shop", "name": "x"},
        "facts": facts, "expect": expect
    }))
    .expect("case");
    PolicyRequest {
        principal: "bench".into(),
        action: action.into(),
        resource: Target {
            kind: kind.into(),
            namespace: "shop".into(),
            name: "x".into(),
            labels: Default::default(),
        },
        facts: case_facts(&case, &json!({})).expect("facts"),
    }
}

fn main() {
    let engine = PolicyEngine::builtin().expect("policies");
    let cases = [
        (
            "allow (scale 4 → 6)",
            request(
                "scale_deployment",
                "Deployment",
                json!({"replicas": {"current": 4, "requested": 6}, "affected": {"pods": 0, "total": 4}}),
                "allow",
            ),
        ),
        (
            "escalate (scale 4 → 20)",
            request(
                "scale_deployment",
                "Deployment",
                json!({"replicas": {"current": 4, "requested": 20}, "affected": {"pods": 0, "total": 4}}),
                "escalate",
            ),
        ),
        ("deny (Secret)", request("get", "Secret", json!({}), "deny")),
    ];
    println!("| policy decision | p50 µs | p99 µs | mean µs |\n|---|---|---|---|");
    for (name, req) in &cases {
        for _ in 0..1000 {
            engine.decide(req).expect("decide");
        }
        let samples: Vec<Duration> = (0..20_000)
            .map(|_| {
                let t = Instant::now();
                let d = engine.decide(req).expect("decide");
                let e = t.elapsed();
                std::hint::black_box(d);
                e
            })
            .collect();
        let (p50, p99, mean) = stats(samples);
        println!("| {name} | {p50:.1} | {p99:.1} | {mean:.1} |");
    }

    // guard overhead: a dry-run scale through the whole tool, minus the same API calls made directly
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let sb = Sandbox::start(&Scenario::builtin().expect("scenario"), ([127, 0, 0, 1], 0).into()).await.expect("sandbox");
        let dir = std::env::temp_dir().join(format!("eks-ops-bench-{}", std::process::id()));
        let audit = Arc::new(AuditLog::open(dir.join("audit.jsonl").to_str().expect("path")).expect("audit"));
        let guard = Arc::new(Guard::new(Arc::new(PolicyEngine::builtin().expect("policies")), audit.clone(), GuardConfig::default()));
        let server = EksOpsServer::new(
            ToolContext::new(sb.cluster().expect("cluster")).with_guard(guard),
            ServerSettings { audit: Some(audit), ..Default::default() },
        );
        let args = json!({"namespace": "shop", "name": "checkout", "replicas": 5, "dry_run": true}).as_object().cloned().expect("object");
        let client = sb.client().expect("client");
        let deps: Api<Deployment> = Api::namespaced(client.clone(), "shop");
        let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), "shop");
        let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
        let (mut tool, mut raw) = (Vec::new(), Vec::new());
        for i in 0..2200 {
            let t = Instant::now();
            let r = server.call("scale_deployment", args.clone()).await.expect("call");
            let e = t.elapsed();
            assert_ne!(r.is_error, Some(true));
            let t = Instant::now();
            deps.get("checkout").await.expect("get");
            hpas.list(&ListParams::default()).await.expect("hpas");
            deps.patch_scale("checkout", &PatchParams { dry_run: true, ..Default::default() }, &Patch::Merge(json!({"spec": {"replicas": 5}})))
                .await
                .expect("scale");
            let _ = &ns;
            let r = t.elapsed();
            if i >= 200 {
                tool.push(e);
                raw.push(r);
            }
        }
        let (tp50, tp99, tmean) = stats(tool);
        let (rp50, rp99, rmean) = stats(raw);
        println!("\n| guarded call | p50 µs | p99 µs | mean µs |\n|---|---|---|---|");
        println!("| scale_deployment dry_run (tool, incl. 2 audit records with fsync) | {tp50:.0} | {tp99:.0} | {tmean:.0} |");
        println!("| the same 3 API requests made directly | {rp50:.0} | {rp99:.0} | {rmean:.0} |");
        println!("\nguard + tool overhead: {:.0} µs per call (mean tool − mean raw API)", tmean - rmean);
        let _ = std::fs::remove_dir_all(&dir);
    });
}
