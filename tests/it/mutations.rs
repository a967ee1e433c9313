//! The guard on the sandbox: allowed actions applied and verified, denied ones leave the
//! cluster unchanged, escalations with a human who accepts / declines / cannot be asked,
//! dry runs, stale plans, bad input — and every call audited.

use eks_ops_mcp::guard::{ApprovalOutcome, GuardConfig};
use serde_json::{Value, json};

use crate::fixture::{caller, start_guarded, start_guarded_with, text};

async fn replicas(f: &crate::fixture::Fixture, ns: &str, name: &str) -> i64 {
    f.object("deployments", ns, name).await.unwrap()["spec"]["replicas"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn allowed_scale_up_is_applied_and_verified() {
    let f = start_guarded().await;
    let before = f.pods("shop", "checkout-").await.len();
    assert_eq!(before, 4);
    let v = f
        .ok(
            "scale_deployment",
            json!({"namespace": "shop", "name": "checkout", "replicas": 6}),
        )
        .await;
    assert_eq!(v["status"], "applied");
    assert_eq!(v["decision"]["outcome"], "allow");
    assert_eq!(
        v["changes"][0],
        json!({"field": "spec.replicas", "before": 4, "after": 6})
    );
    assert_eq!(
        v["facts"]["replicas"],
        json!({"current": 4, "requested": 6, "ceiling": 100})
    );
    assert_eq!(v["verified"]["spec_replicas"], 6);
    assert_eq!(v["verified"]["ready_replicas"], 6);
    assert_eq!(replicas(&f, "shop", "checkout").await, 6);
    assert_eq!(
        f.pods("shop", "checkout-84c5d9f7b6-").await.len(),
        6,
        "new pods in the current ReplicaSet"
    );

    // scale down by less than half: automatic; pods removed
    let v = f
        .ok(
            "scale_deployment",
            json!({"namespace": "shop", "name": "checkout", "replicas": 4}),
        )
        .await;
    assert_eq!(v["status"], "applied");
    assert_eq!(f.pods("shop", "checkout-").await.len(), 4);
}

#[tokio::test]
async fn escalation_without_a_human_changes_nothing() {
    let f = start_guarded().await;
    let r = f
        .call(
            "scale_deployment",
            json!({"namespace": "shop", "name": "checkout", "replicas": 20}),
        )
        .await;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    let v = r.structured_content.clone().unwrap();
    assert_eq!(v["status"], "escalation_required");
    assert_eq!(v["decision"]["outcome"], "escalate");
    assert_eq!(
        v["escalation"]["policies"][0]["id"],
        "escalate-scale-up-beyond-double"
    );
    assert_eq!(v["escalation"]["approval"], "unavailable");
    assert!(
        v["escalation"]["to_approve"]
            .as_str()
            .unwrap()
            .contains("replicas 4 → 20")
    );
    assert!(text(&r).starts_with("ESCALATION REQUIRED"), "{}", text(&r));
    assert_eq!(replicas(&f, "shop", "checkout").await, 4);
}

#[tokio::test]
async fn escalation_approved_by_a_human_is_applied() {
    let f = start_guarded().await;
    let r = f
        .call_as(
            "scale_deployment",
            json!({"namespace": "shop", "name": "checkout", "replicas": 20}),
            caller(ApprovalOutcome::Approved),
        )
        .await;
    let v = r.structured_content.clone().unwrap();
    assert_eq!(v["status"], "applied");
    assert_eq!(v["approval"], "approved");
    assert_eq!(replicas(&f, "shop", "checkout").await, 20);
}

#[tokio::test]
async fn escalation_declined_or_timed_out_changes_nothing() {
    let f = start_guarded().await;
    for answer in [
        ApprovalOutcome::Declined,
        ApprovalOutcome::Cancelled,
        ApprovalOutcome::TimedOut,
    ] {
        let label = answer.label();
        let r = f
            .call_as(
                "scale_deployment",
                json!({"namespace": "shop", "name": "checkout", "replicas": 1}),
                caller(answer),
            )
            .await;
        let v = r.structured_content.clone().unwrap();
        assert_eq!(v["status"], "escalation_required", "{label}");
        assert_eq!(v["escalation"]["approval"], label);
        assert_eq!(
            v["escalation"]["policies"][0]["id"],
            "escalate-half-of-replicas"
        );
        assert_eq!(replicas(&f, "shop", "checkout").await, 4);
    }
}

#[tokio::test]
async fn denied_action_leaves_the_cluster_unchanged_even_with_approval() {
    let f = start_guarded().await;
    let r = f
        .call_as(
            "scale_deployment",
            json!({"namespace": "shop", "name": "checkout", "replicas": 150}),
            caller(ApprovalOutcome::Approved),
        )
        .await;
    let v = r.structured_content.clone().unwrap();
    assert_eq!(v["status"], "denied");
    assert_eq!(
        v["decision"]["policies"][0]["id"],
        "deny-above-replica-ceiling"
    );
    assert!(text(&r).starts_with("DENIED"));
    assert_eq!(replicas(&f, "shop", "checkout").await, 4);
}

#[tokio::test]
async fn dry_run_decides_but_changes_nothing() {
    let f = start_guarded().await;
    let v = f
        .ok(
            "scale_deployment",
            json!({"namespace": "shop", "name": "checkout", "replicas": 5, "dry_run": true}),
        )
        .await;
    assert_eq!(v["status"], "dry_run");
    assert_eq!(v["decision"]["outcome"], "allow");
    assert_eq!(
        v["result"]["spec_replicas"], 5,
        "the server-side dry run answered"
    );
    assert_eq!(replicas(&f, "shop", "checkout").await, 4);
    assert_eq!(f.pods("shop", "checkout-").await.len(), 4);
}

#[tokio::test]
async fn shadow_mode_makes_every_mutation_a_dry_run() {
    let f = start_guarded_with(GuardConfig {
        dry_run_only: true,
        ..Default::default()
    })
    .await;
    let v = f
        .ok(
            "scale_deployment",
            json!({"namespace": "shop", "name": "checkout", "replicas": 6}),
        )
        .await;
    assert_eq!(v["status"], "dry_run");
    assert_eq!(v["facts"]["dry_run"], true);
    assert_eq!(replicas(&f, "shop", "checkout").await, 4);
}

#[tokio::test]
async fn an_hpa_owned_deployment_is_refused_with_the_alternative() {
    let f = start_guarded().await;
    let e = f
        .err(
            "scale_deployment",
            json!({"namespace": "payments", "name": "payment-api", "replicas": 5}),
        )
        .await;
    assert!(
        e.contains("HorizontalPodAutoscaler payment-api") && e.contains("adjust_hpa"),
        "{e}"
    );
    assert_eq!(replicas(&f, "payments", "payment-api").await, 3);
}

#[tokio::test]
async fn namespace_scope_and_bad_input_are_refused_and_audited() {
    let f = start_guarded_with(GuardConfig {
        namespaces: Some(vec!["payments".into()]),
        ..Default::default()
    })
    .await;
    let e = f
        .err(
            "scale_deployment",
            json!({"namespace": "shop", "name": "checkout", "replicas": 5}),
        )
        .await;
    assert!(
        e.contains("outside this server's scope") && e.contains("payments"),
        "{e}"
    );
    let f = start_guarded().await;
    for (args, want) in [
        (
            json!({"namespace": "shop", "name": "checkout", "replicas": -1}),
            "between 0 and 10000",
        ),
        (
            json!({"namespace": "shop", "name": "checkout", "replicas": 1000000}),
            "between 0 and 10000",
        ),
        (
            json!({"namespace": "shop", "name": "Check_Out!", "replicas": 3}),
            "not a valid Kubernetes name",
        ),
        (
            json!({"namespace": "shop", "name": "ghost", "replicas": 3}),
            "does not exist",
        ),
        (
            json!({"namespace": "shop", "name": "checkout", "replicas": "3"}),
            "argument replicas",
        ),
        (
            json!({"namespace": "shop", "name": "checkout", "replicas": 3, "force": true}),
            "unknown field `force`",
        ),
    ] {
        let e = f.err("scale_deployment", args.clone()).await;
        assert!(e.contains(want), "{args}: {e}");
    }
    assert_eq!(replicas(&f, "shop", "checkout").await, 4);
    let records = f.audit_records();
    assert_eq!(records.len(), 6, "one record per call");
    assert!(
        records
            .iter()
            .all(|r| r["is_error"] == true && r["tool"] == "scale_deployment")
    );
}

#[tokio::test]
async fn every_call_is_audited_with_plan_facts_and_decision() {
    let f = start_guarded().await;
    f.ok("get_events", json!({"namespace": "shop", "limit": 1}))
        .await;
    f.ok(
        "scale_deployment",
        json!({"namespace": "shop", "name": "checkout", "replicas": 5}),
    )
    .await;
    f.call(
        "scale_deployment",
        json!({"namespace": "shop", "name": "checkout", "replicas": 50}),
    )
    .await;
    let records = f.audit_records();
    let phases: Vec<(&str, &str)> = records
        .iter()
        .map(|r| (r["tool"].as_str().unwrap(), r["phase"].as_str().unwrap()))
        .collect();
    assert_eq!(
        phases,
        [
            ("get_events", "completed"),
            ("scale_deployment", "decided"),
            ("scale_deployment", "completed"),
            ("scale_deployment", "decided"),
            ("scale_deployment", "completed"),
        ]
    );
    let decided = &records[1];
    assert_eq!(decided["principal"], "anonymous");
    assert_eq!(decided["decision"]["outcome"], "allow");
    assert_eq!(decided["facts"]["replicas"]["requested"], 5);
    assert_eq!(decided["plan"]["summary"], "replicas 4 → 5");
    assert_eq!(records[2]["result"]["status"], "applied");
    assert_eq!(records[3]["decision"]["outcome"], "escalate");
    assert_eq!(records[4]["result"]["status"], "escalation_required");
    assert!(
        records
            .iter()
            .all(|r| r["duration_ms"].is_number() || r["phase"] == "decided")
    );
    let v = eks_ops_mcp::audit::verify(f.audit_path.as_ref().unwrap()).unwrap();
    assert_eq!(v.records, 5);
    let _: Vec<Value> = records;
}
