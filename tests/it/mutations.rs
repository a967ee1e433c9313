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
        json!({"current": 4, "requested": 6, "ceiling": 100, "low_last_hour": 4, "high_last_hour": 4})
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
    let v = f
        .ok_as(
            "scale_deployment",
            json!({"namespace": "shop", "name": "checkout", "replicas": 20}),
            caller(ApprovalOutcome::Approved),
        )
        .await;
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
        let v = f
            .ok_as(
                "scale_deployment",
                json!({"namespace": "shop", "name": "checkout", "replicas": 1}),
                caller(answer),
            )
            .await;
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

fn approved() -> eks_ops_mcp::guard::Caller {
    caller(ApprovalOutcome::Approved)
}

async fn status_of(f: &crate::fixture::Fixture, tool: &str, args: Value) -> Value {
    f.ok(tool, args).await
}

#[tokio::test]
async fn rollback_to_previous_is_automatic_and_produces_a_new_revision() {
    let f = start_guarded().await;
    let v = status_of(
        &f,
        "rollback",
        json!({"namespace": "shop", "name": "checkout"}),
    )
    .await;
    assert_eq!(v["status"], "applied", "{v}");
    assert_eq!(
        v["facts"]["rollout"],
        json!({"current_revision": 3, "previous_revision": 2, "target_revision": 2, "rollbacks_last_hour": 0})
    );
    // every differing field of the pod template, the image among them
    let image = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["field"].as_str().unwrap().ends_with("].image"))
        .unwrap_or_else(|| panic!("no image change in {v}"));
    assert_eq!(image["before"], "public.ecr.aws/acme/checkout:1.4.0");
    assert_eq!(image["after"], "public.ecr.aws/acme/checkout:1.3.2");
    assert_eq!(v["verified"]["revision"], "4");
    assert_eq!(
        v["verified"]["images"],
        json!(["public.ecr.aws/acme/checkout:1.3.2"])
    );
    // the old ReplicaSet came back as revision 4 and owns the pods now
    let history = f
        .ok(
            "get_rollout_history",
            json!({"namespace": "shop", "name": "checkout"}),
        )
        .await;
    assert_eq!(history["current_revision"], 4);
    assert_eq!(
        history["revisions"][0]["replica_set"],
        "checkout-6b7f9c8d4f"
    );
    assert_eq!(f.pods("shop", "checkout-6b7f9c8d4f-").await.len(), 4);
    assert!(f.pods("shop", "checkout-84c5d9f7b6-").await.is_empty());

    // a second rollback within the hour needs a human
    let v = status_of(
        &f,
        "rollback",
        json!({"namespace": "shop", "name": "checkout"}),
    )
    .await;
    assert_eq!(v["status"], "escalation_required");
    assert!(
        v["decision"]["policies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == "escalate-second-rollback")
    );
    assert_eq!(v["facts"]["rollout"]["rollbacks_last_hour"], 1);
}

#[tokio::test]
async fn rollback_to_an_older_revision_escalates_and_bad_revisions_are_explained() {
    let f = start_guarded().await;
    let v = status_of(
        &f,
        "rollback",
        json!({"namespace": "shop", "name": "checkout", "to_revision": 1}),
    )
    .await;
    assert_eq!(v["status"], "escalation_required");
    assert_eq!(
        v["decision"]["policies"][0]["id"],
        "escalate-rollback-not-previous"
    );
    let v = f
        .ok_as(
            "rollback",
            json!({"namespace": "shop", "name": "checkout", "to_revision": 1}),
            approved(),
        )
        .await;
    assert_eq!(v["status"], "applied");
    assert_eq!(
        v["verified"]["images"],
        json!(["public.ecr.aws/acme/checkout:1.3.0"])
    );

    let f = start_guarded().await;
    let e = f
        .err(
            "rollback",
            json!({"namespace": "shop", "name": "checkout", "to_revision": 9}),
        )
        .await;
    assert!(e.contains("no revision 9") && e.contains("3, 2, 1"), "{e}");
    let e = f
        .err(
            "rollback",
            json!({"namespace": "shop", "name": "checkout", "to_revision": 3}),
        )
        .await;
    assert!(e.contains("already the current revision"), "{e}");
    let e = f
        .err("rollback", json!({"namespace": "shop", "name": "frontend"}))
        .await;
    assert!(e.contains("no previous revision"), "{e}");
    let e = f
        .err(
            "rollback",
            json!({"namespace": "shop", "name": "checkout", "to_revision": 0}),
        )
        .await;
    assert!(e.contains("1 or more"), "{e}");
    assert_eq!(
        f.object("deployments", "shop", "checkout").await.unwrap()["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );
}

#[tokio::test]
async fn restart_pod_is_automatic_only_for_a_crashlooping_pod() {
    let f = start_guarded().await;
    let v = status_of(
        &f,
        "restart_pod",
        json!({"namespace": "shop", "name": "cart-7d9f8b6c5d-xk2lp"}),
    )
    .await;
    assert_eq!(v["status"], "applied", "{v}");
    assert_eq!(v["facts"]["pod"]["waiting_reason"], "CrashLoopBackOff");
    assert_eq!(v["facts"]["pod"]["restart_count"], 7);
    assert_eq!(
        v["facts"]["affected"],
        json!({"pods": 0, "total": 2}),
        "a crashlooping pod serves nothing"
    );
    assert_eq!(v["verified"]["old_pod_gone"], true);
    let cart = f.pods("shop", "cart-7d9f8b6c5d-").await;
    assert_eq!(cart.len(), 2, "the ReplicaSet replaced it: {cart:?}");
    assert!(!cart.contains(&"cart-7d9f8b6c5d-xk2lp".to_string()));

    // a healthy pod, the only other ready replica: escalates, nothing deleted
    let v = status_of(
        &f,
        "restart_pod",
        json!({"namespace": "shop", "name": "cart-7d9f8b6c5d-p9d4s"}),
    )
    .await;
    assert_eq!(v["status"], "escalation_required");
    let ids: Vec<&str> = v["decision"]["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"auto-restart-pod-only-crashloop"), "{ids:?}");
    assert!(
        f.object("pods", "shop", "cart-7d9f8b6c5d-p9d4s")
            .await
            .is_some()
    );

    // a pod with a volume claim may lose data
    let v = status_of(
        &f,
        "restart_pod",
        json!({"namespace": "data", "name": "postgres-1"}),
    )
    .await;
    assert_eq!(v["status"], "escalation_required");
    let ids: Vec<&str> = v["decision"]["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"escalate-may-lose-data"), "{ids:?}");
    // approved: the StatefulSet recreates it under the same name
    let r = f
        .call_as(
            "restart_pod",
            json!({"namespace": "data", "name": "postgres-1"}),
            approved(),
        )
        .await;
    assert_eq!(r.structured_content.clone().unwrap()["status"], "applied");
    assert!(f.object("pods", "data", "postgres-1").await.is_some());

    let e = f
        .err("restart_pod", json!({"namespace": "shop", "name": "nope"}))
        .await;
    assert!(e.contains("does not exist"), "{e}");
}

#[tokio::test]
async fn restart_workload_needs_a_human_and_replaces_pods_when_approved() {
    let f = start_guarded().await;
    let v = status_of(
        &f,
        "restart_workload",
        json!({"namespace": "shop", "kind": "Deployment", "name": "checkout"}),
    )
    .await;
    assert_eq!(v["status"], "escalation_required");
    assert_eq!(v["decision"]["policies"][0]["id"], "auto-not-listed");
    assert_eq!(v["facts"]["affected"], json!({"pods": 1, "total": 4}));
    let v = f
        .ok_as(
            "restart_workload",
            json!({"namespace": "shop", "kind": "deployment", "name": "checkout"}),
            approved(),
        )
        .await;
    assert_eq!(v["status"], "applied");
    assert_eq!(v["verified"]["revision"], "4");
    assert!(
        f.pods("shop", "checkout-84c5d9f7b6-").await.is_empty(),
        "old pods replaced"
    );
    assert_eq!(f.pods("shop", "checkout-").await.len(), 4);
    let e = f
        .err(
            "restart_workload",
            json!({"namespace": "shop", "kind": "CronJob", "name": "x"}),
        )
        .await;
    assert!(e.contains("Deployment, StatefulSet or DaemonSet"), "{e}");
}

#[tokio::test]
async fn adjust_hpa_within_half_is_automatic() {
    let f = start_guarded().await;
    let v = status_of(
        &f,
        "adjust_hpa",
        json!({"namespace": "payments", "name": "payment-api", "min_replicas": 4}),
    )
    .await;
    assert_eq!(v["status"], "applied", "{v}");
    assert_eq!(
        v["changes"],
        json!([
            {"field": "spec.minReplicas", "before": 3, "after": 4},
            {"field": "Deployment payment-api replicas (through the HPA)", "before": 3, "after": 4}
        ])
    );
    assert_eq!(v["verified"]["min_replicas"], 4);
    let hpa = f
        .object("horizontalpodautoscalers", "payments", "payment-api")
        .await
        .unwrap();
    assert_eq!(hpa["spec"]["minReplicas"], 4);

    let v = status_of(
        &f,
        "adjust_hpa",
        json!({"namespace": "payments", "name": "payment-api", "min_replicas": 7}),
    )
    .await;
    assert_eq!(v["status"], "escalation_required", "4 → 7 is +75%");
    let v = status_of(&f, "adjust_hpa", json!({"namespace": "payments", "name": "payment-api", "max_replicas": 150, "min_replicas": 4})).await;
    assert_eq!(v["status"], "denied");
    assert_eq!(
        v["decision"]["policies"][0]["id"],
        "deny-above-replica-ceiling"
    );
    for (args, want) in [
        (
            json!({"namespace": "payments", "name": "payment-api"}),
            "give min_replicas, max_replicas or both",
        ),
        (
            json!({"namespace": "payments", "name": "payment-api", "min_replicas": 0}),
            "between 1 and 10000",
        ),
        (
            json!({"namespace": "payments", "name": "payment-api", "min_replicas": 13}),
            "above maxReplicas 12",
        ),
        (
            json!({"namespace": "payments", "name": "nope", "min_replicas": 3}),
            "does not exist",
        ),
    ] {
        let e = f.err("adjust_hpa", args.clone()).await;
        assert!(e.contains(want), "{args}: {e}");
    }
    assert_eq!(
        f.object("horizontalpodautoscalers", "payments", "payment-api")
            .await
            .unwrap()["spec"]["minReplicas"],
        4
    );
}

const N1: &str = "ip-10-0-1-11.eu-west-1.compute.internal";
const N2: &str = "ip-10-0-2-22.eu-west-1.compute.internal";
const N3: &str = "ip-10-0-3-33.eu-west-1.compute.internal";

#[tokio::test]
async fn cordon_and_uncordon_follow_the_node_rules() {
    let f = start_guarded().await;
    let v = status_of(&f, "cordon_node", json!({"name": N2})).await;
    assert_eq!(v["status"], "applied", "{v}");
    assert_eq!(v["verified"]["unschedulable"], true);
    assert_eq!(
        f.object("nodes", "", N2).await.unwrap()["spec"]["unschedulable"],
        true
    );
    let v = status_of(&f, "cordon_node", json!({"name": N1})).await;
    assert_eq!(v["status"], "escalation_required");
    assert_eq!(
        v["decision"]["policies"][0]["id"],
        "auto-node-only-under-pressure"
    );
    let v = status_of(&f, "uncordon_node", json!({"name": N3})).await;
    assert_eq!(v["status"], "denied");
    assert_eq!(v["decision"]["policies"][0]["id"], "deny-verb-not-allowed");
    assert_eq!(
        f.object("nodes", "", N3).await.unwrap()["spec"]["unschedulable"],
        true
    );
    let e = f.err("cordon_node", json!({"name": "ip-9-9-9-9"})).await;
    assert!(e.contains("does not exist"), "{e}");
    let scoped = start_guarded_with(GuardConfig::default()).await;
    let _ = scoped;
}

#[tokio::test]
async fn uncordon_with_the_verb_allowed_needs_a_human() {
    let verbs = ["get", "cordon", "uncordon"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let f = start_guarded_with(GuardConfig {
        allowed_verbs: verbs,
        ..Default::default()
    })
    .await;
    let v = f
        .ok_as("uncordon_node", json!({"name": N3}), approved())
        .await;
    assert_eq!(v["status"], "applied", "{v}");
    assert_eq!(v["approval"], "approved");
    assert!(
        f.object("nodes", "", N3).await.unwrap()["spec"]
            .get("unschedulable")
            .is_none()
    );
}

#[tokio::test]
async fn drain_escalates_for_volume_pods_and_evicts_through_the_eviction_api() {
    let f = start_guarded().await;
    let v = status_of(&f, "drain_node", json!({"name": N2})).await;
    assert_eq!(v["status"], "escalation_required", "{v}");
    assert_eq!(v["facts"]["node"]["hosts_pvc_pods"], true);
    assert_eq!(
        v["facts"]["node"]["pods_to_evict"], 3,
        "DaemonSet pod aws-node is left alone"
    );
    let ids = policy_ids(&v["decision"]["policies"]);
    for want in [
        "escalate-may-lose-data",
        "escalate-statefulset",
        "escalate-half-of-replicas",
    ] {
        assert!(ids.contains(&want), "{want} not in {ids:?}");
    }
    assert_eq!(v["facts"]["namespaces"], json!(["data", "payments"]));
    assert_eq!(
        v["facts"]["workload_kinds"],
        json!(["ReplicaSet", "StatefulSet"])
    );
    assert!(
        f.object("nodes", "", N2).await.unwrap()["spec"]
            .get("unschedulable")
            .is_none(),
        "nothing changed"
    );

    // a PodDisruptionBudget that allows no disruption keeps the payment-api pods
    {
        let store = f.sandbox.store();
        let mut s = store.write().await;
        let rt =
            eks_ops_mcp::sandbox::resources::find("policy", "v1", "poddisruptionbudgets").unwrap();
        let mut pdb = s.get(rt, "payments", "payment-api").unwrap().clone();
        pdb["spec"]["minAvailable"] = json!(3);
        s.put(rt, "payments", "payment-api", pdb);
    }
    let r = f
        .call_as("drain_node", json!({"name": N2}), approved())
        .await;
    let v = r.structured_content.clone().unwrap();
    assert_eq!(v["status"], "applied", "{v}");
    assert_eq!(v["result"]["evicted"], json!(["data/postgres-1"]));
    let refused: Vec<&str> = v["result"]["not_evicted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pod"].as_str().unwrap())
        .collect();
    assert_eq!(
        refused,
        [
            "payments/payment-api-7c9d8f6b5d-k7x2p",
            "payments/payment-api-7c9d8f6b5d-t8w3r"
        ]
    );
    assert!(
        v["result"]["not_evicted"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("PodDisruptionBudget")
    );
    assert_eq!(v["verified"]["unschedulable"], true);
    assert!(
        text(&r).contains("2 pod(s) could not be evicted"),
        "{}",
        text(&r)
    );
    let postgres = f.object("pods", "data", "postgres-1").await.unwrap();
    assert_eq!(
        postgres["spec"]["nodeName"], N1,
        "recreated on a schedulable node"
    );
}

#[tokio::test]
async fn drain_dry_run_and_healthy_node() {
    let f = start_guarded().await;
    let v = status_of(&f, "drain_node", json!({"name": N1})).await;
    assert_eq!(v["status"], "escalation_required");
    let v = f
        .ok_as(
            "drain_node",
            json!({"name": N2, "dry_run": true}),
            approved(),
        )
        .await;
    assert_eq!(v["status"], "dry_run");
    assert_eq!(v["result"]["evicted"].as_array().unwrap().len(), 3);
    assert!(
        f.object("nodes", "", N2).await.unwrap()["spec"]
            .get("unschedulable")
            .is_none()
    );
    assert!(f.object("pods", "data", "postgres-1").await.is_some());
    assert_eq!(f.pods("payments", "payment-api-7c9d8f6b5d-").await.len(), 3);
}

#[tokio::test]
async fn reserve_capacity_creates_low_priority_placeholders_through_the_guard() {
    let f = start_guarded().await;
    // the first reservation (0 → 3) needs a human
    let v = status_of(
        &f,
        "reserve_capacity",
        json!({"replicas": 3, "cpu": "500m", "memory": "1Gi"}),
    )
    .await;
    assert_eq!(v["status"], "escalation_required", "{v}");
    assert!(
        f.object("deployments", "eks-ops-capacity", "capacity-reservation")
            .await
            .is_none()
    );
    let v = f
        .ok_as(
            "reserve_capacity",
            json!({"replicas": 3, "cpu": "500m", "memory": "1Gi"}),
            approved(),
        )
        .await;
    assert_eq!(v["status"], "applied", "{v}");
    let d = f
        .object("deployments", "eks-ops-capacity", "capacity-reservation")
        .await
        .unwrap();
    let pod_spec = &d["spec"]["template"]["spec"];
    assert_eq!(pod_spec["priorityClassName"], "eks-ops-placeholder");
    assert_eq!(
        pod_spec["containers"][0]["image"],
        "registry.k8s.io/pause:3.10"
    );
    assert_eq!(
        pod_spec["containers"][0]["resources"]["requests"],
        json!({"cpu": "500m", "memory": "1Gi"})
    );
    let pc = f
        .object("priorityclasses", "", "eks-ops-placeholder")
        .await
        .unwrap();
    assert_eq!(pc["value"], -10);
    assert_eq!(
        f.pods("eks-ops-capacity", "capacity-reservation-")
            .await
            .len(),
        3
    );
    // growing it within twice is automatic, releasing it too
    let v = status_of(
        &f,
        "reserve_capacity",
        json!({"replicas": 5, "cpu": "500m", "memory": "1Gi"}),
    )
    .await;
    assert_eq!(v["status"], "applied", "{v}");
    assert_eq!(
        f.pods("eks-ops-capacity", "capacity-reservation-")
            .await
            .len(),
        5
    );
    let v = status_of(&f, "reserve_capacity", json!({"replicas": 0})).await;
    assert_eq!(v["status"], "applied", "{v}");
    assert!(
        f.pods("eks-ops-capacity", "capacity-reservation-")
            .await
            .is_empty()
    );
    // never takes over a Deployment it does not manage; bad sizes are refused
    let e = f
        .err(
            "reserve_capacity",
            json!({"namespace": "shop", "name": "checkout", "replicas": 1}),
        )
        .await;
    assert!(e.contains("not a placeholder"), "{e}");
    let e = f
        .err("reserve_capacity", json!({"replicas": 1, "cpu": "lots"}))
        .await;
    assert!(e.contains("CPU quantity"), "{e}");
}

/// The ids of a list of deciding policies.
fn policy_ids(policies: &Value) -> Vec<&str> {
    policies
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["id"].as_str())
        .collect()
}
