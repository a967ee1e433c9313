//! The guard's facts cover what an action really does, its temporal rules hold across
//! processes and races, and a change whose answer is lost is reported as what happened.
//! Each test checks the sandbox's state afterwards, not only the report.

use std::sync::Arc;
use std::time::Duration;

use eks_ops_mcp::audit::AuditLog;
use eks_ops_mcp::cluster::Cluster;
use eks_ops_mcp::guard::{ApprovalOutcome, Guard, GuardConfig};
use eks_ops_mcp::policy::PolicyEngine;
use eks_ops_mcp::sandbox::resources;
use eks_ops_mcp::server::{EksOpsServer, ServerSettings};
use eks_ops_mcp::tools::ToolContext;
use serde_json::{Value, json};

use crate::fixture::{Fixture, caller, start_guarded, start_guarded_with};

const N1: &str = "ip-10-0-1-11.eu-west-1.compute.internal";

fn ids(v: &Value) -> Vec<String> {
    v["decision"]["policies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["id"].as_str().map(str::to_string))
        .collect()
}

fn has(v: &Value, id: &str) -> bool {
    ids(v).iter().any(|i| i == id)
}

/// Change an object in the sandbox's store directly (as another actor would).
async fn edit(
    f: &Fixture,
    group: &str,
    plural: &str,
    ns: &str,
    name: &str,
    change: impl FnOnce(&mut Value),
) {
    let version = if group == "autoscaling" { "v2" } else { "v1" };
    let store = f.sandbox.store();
    let mut s = store.write().await;
    let rt = resources::find(group, version, plural).expect("known resource");
    let mut obj = s.get(rt, ns, name).expect("object exists").clone();
    change(&mut obj);
    s.put(rt, ns, name, obj);
}

/// Put a new object into the sandbox's store.
async fn put(f: &Fixture, group: &str, version: &str, plural: &str, ns: &str, obj: Value) {
    let store = f.sandbox.store();
    let mut s = store.write().await;
    let rt = resources::find(group, version, plural).expect("known resource");
    let name = obj["metadata"]["name"].as_str().unwrap().to_string();
    s.put(rt, ns, &name, obj);
}

async fn replicas(f: &Fixture, ns: &str, name: &str) -> i64 {
    f.object("deployments", ns, name).await.unwrap()["spec"]["replicas"]
        .as_i64()
        .unwrap()
}

/// A second server over the same sandbox, with its own guard and audit log: nothing is
/// shared with the first but the cluster, as with two stdio processes or two replicas.
fn second_server(
    f: &Fixture,
    cluster: Cluster,
    config: GuardConfig,
) -> (EksOpsServer, tempfile::TempDir) {
    let _ = &f.sandbox;
    let dir = tempfile::tempdir().unwrap();
    let audit = Arc::new(AuditLog::open(dir.path().join("audit.jsonl").to_str().unwrap()).unwrap());
    let guard = Arc::new(Guard::new(
        Arc::new(PolicyEngine::builtin().unwrap()),
        audit.clone(),
        config,
    ));
    let server = EksOpsServer::new(
        ToolContext::new(cluster).with_guard(guard),
        ServerSettings {
            audit: Some(audit),
            ..Default::default()
        },
    );
    (server, dir)
}

async fn call(server: &EksOpsServer, tool: &str, args: Value) -> Value {
    let r = server
        .call(tool, args.as_object().cloned().unwrap())
        .await
        .expect("no protocol error");
    r.structured_content
        .unwrap_or_else(|| json!({"error": format!("{:?}", r.content)}))
}

#[tokio::test]
async fn a_drain_sees_kube_system_half_of_a_workload_and_statefulset_pods() {
    let f = start_guarded().await;
    // put N1 under pressure so that only the blast radius can stop the drain
    edit(&f, "", "nodes", "", N1, |n| {
        for c in n["status"]["conditions"].as_array_mut().unwrap() {
            if c["type"] == "MemoryPressure" {
                c["status"] = json!("True");
            }
        }
    })
    .await;
    let v = f.ok("drain_node", json!({"name": N1})).await;
    assert_eq!(v["status"], "escalation_required", "{v}");
    for id in [
        "escalate-kube-system",
        "escalate-half-of-replicas",
        "escalate-statefulset",
    ] {
        assert!(has(&v, id), "{id} not in {:?}", ids(&v));
    }
    assert!(
        v["facts"]["namespaces"]
            .as_array()
            .unwrap()
            .contains(&json!("kube-system"))
    );
    assert!(
        f.object("nodes", "", N1).await.unwrap()["spec"]
            .get("unschedulable")
            .is_none(),
        "nothing changed"
    );
    assert_eq!(f.pods("kube-system", "coredns-").await.len(), 2);
}

#[tokio::test]
async fn a_drain_of_a_bare_pod_needs_a_human() {
    let f = start_guarded().await;
    edit(&f, "", "nodes", "", N1, |n| {
        for c in n["status"]["conditions"].as_array_mut().unwrap() {
            if c["type"] == "DiskPressure" {
                c["status"] = json!("True");
            }
        }
    })
    .await;
    let v = f
        .ok("drain_node", json!({"name": N1, "dry_run": true}))
        .await;
    assert_eq!(v["facts"]["unrecreated_pods"], 0, "{v}");
    put(
        &f,
        "",
        "v1",
        "pods",
        "shop",
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "debug-shell", "namespace": "shop", "uid": "u-debug"},
               "spec": {"nodeName": N1, "containers": [{"name": "sh", "image": "busybox"}]},
               "status": {"phase": "Running"}}),
    )
    .await;
    let v = f
        .ok("drain_node", json!({"name": N1, "dry_run": true}))
        .await;
    assert_eq!(v["facts"]["unrecreated_pods"], 1, "{v}");
    assert!(has(&v, "escalate-bare-pod"), "{:?}", ids(&v));
}

#[tokio::test]
async fn adjust_hpa_is_judged_on_its_effect_on_the_running_replicas() {
    let f = start_guarded().await;
    // an HPA at 2..10 running 10 pods: max 10 → 5 is within ±50% of the bounds but halves
    // the running replicas, like scale_deployment 10 → 5
    edit(
        &f,
        "autoscaling",
        "horizontalpodautoscalers",
        "payments",
        "payment-api",
        |h| {
            h["spec"]["minReplicas"] = json!(2);
            h["spec"]["maxReplicas"] = json!(10);
        },
    )
    .await;
    edit(&f, "apps", "deployments", "payments", "payment-api", |d| {
        d["spec"]["replicas"] = json!(10);
    })
    .await;
    let v = f
        .ok(
            "adjust_hpa",
            json!({"namespace": "payments", "name": "payment-api", "max_replicas": 5}),
        )
        .await;
    assert_eq!(v["status"], "escalation_required", "{v}");
    assert!(has(&v, "escalate-half-of-replicas"), "{:?}", ids(&v));
    assert_eq!(v["facts"]["replicas"]["current"], 10);
    assert_eq!(v["facts"]["replicas"]["requested"], 5);
    assert_eq!(v["facts"]["hpa"]["target_kind"], "Deployment");
    let hpa = f
        .object("horizontalpodautoscalers", "payments", "payment-api")
        .await
        .unwrap();
    assert_eq!(hpa["spec"]["maxReplicas"], 10, "nothing changed");

    // an HPA on a StatefulSet is a StatefulSet change
    put(
        &f,
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "data",
        json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
               "metadata": {"name": "postgres", "namespace": "data"},
               "spec": {"minReplicas": 3, "maxReplicas": 5,
                        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "postgres"}}}),
    )
    .await;
    let v = f
        .ok(
            "adjust_hpa",
            json!({"namespace": "data", "name": "postgres", "max_replicas": 6}),
        )
        .await;
    assert_eq!(v["status"], "escalation_required", "{v}");
    assert!(has(&v, "escalate-statefulset"), "{:?}", ids(&v));
}

#[tokio::test]
async fn reserve_capacity_sees_the_total_reserved_cpu_and_memory() {
    let f = start_guarded().await;
    let approved = caller(ApprovalOutcome::Approved);
    let v = f
        .ok_as(
            "reserve_capacity",
            json!({"replicas": 2, "cpu": "1", "memory": "2Gi"}),
            approved,
        )
        .await;
    assert_eq!(v["status"], "applied", "{v}");
    // same replicas, each placeholder 256 times bigger: not automatic
    let v = f
        .ok(
            "reserve_capacity",
            json!({"replicas": 2, "cpu": "256", "memory": "4Ti"}),
        )
        .await;
    assert_eq!(v["status"], "escalation_required", "{v}");
    assert!(
        has(&v, "escalate-reservation-beyond-double"),
        "{:?}",
        ids(&v)
    );
    assert_eq!(v["facts"]["reservation"]["cpu_millis_before"], 2000);
    assert_eq!(v["facts"]["reservation"]["cpu_millis_after"], 512_000);
    // the plan shows the true before
    let before = v["changes"][0]["before"].as_str().unwrap();
    assert!(before.contains("1000m CPU, 2048Mi"), "{before}");
    let d = f
        .object("deployments", "eks-ops-capacity", "capacity-reservation")
        .await
        .unwrap();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"],
        "1"
    );
}

#[tokio::test]
async fn a_priority_class_of_the_same_name_is_not_taken_as_its_own() {
    let f = start_guarded().await;
    put(
        &f,
        "scheduling.k8s.io",
        "v1",
        "priorityclasses",
        "",
        json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
               "metadata": {"name": "eks-ops-placeholder"}, "value": 1_000_000}),
    )
    .await;
    let e = f.err("reserve_capacity", json!({"replicas": 1})).await;
    assert!(e.contains("did not create") && e.contains("1000000"), "{e}");
    assert!(
        f.object("deployments", "eks-ops-capacity", "capacity-reservation")
            .await
            .is_none()
    );
}

#[tokio::test]
async fn staircases_are_bounded_over_the_hour() {
    let f = start_guarded().await;
    // 4 → 3 (25%) is automatic; 3 → 2 is a third of 3 but half of the hour's 4
    let v = f
        .ok(
            "scale_deployment",
            json!({"namespace": "shop", "name": "checkout", "replicas": 3}),
        )
        .await;
    assert_eq!(v["status"], "applied", "{v}");
    let v = f
        .ok(
            "scale_deployment",
            json!({"namespace": "shop", "name": "checkout", "replicas": 2}),
        )
        .await;
    assert_eq!(v["status"], "escalation_required", "{v}");
    assert!(has(&v, "escalate-cumulative-scale-down"), "{:?}", ids(&v));
    assert_eq!(v["facts"]["replicas"]["high_last_hour"], 4);
    assert_eq!(replicas(&f, "shop", "checkout").await, 3);

    // up: 2 → 4 → 8 on cart: each step at most double, 8 is four times the hour's 2
    let v = f
        .ok(
            "scale_deployment",
            json!({"namespace": "shop", "name": "cart", "replicas": 4}),
        )
        .await;
    assert_eq!(v["status"], "applied", "{v}");
    let v = f
        .ok(
            "scale_deployment",
            json!({"namespace": "shop", "name": "cart", "replicas": 8}),
        )
        .await;
    assert_eq!(v["status"], "escalation_required", "{v}");
    assert!(has(&v, "escalate-cumulative-scale-up"), "{:?}", ids(&v));
    assert_eq!(replicas(&f, "shop", "cart").await, 4);

    // the history is on the object, so a second server sees it too
    let (other, _dir) = second_server(&f, f.sandbox.cluster().unwrap(), GuardConfig::default());
    let v = call(
        &other,
        "scale_deployment",
        json!({"namespace": "shop", "name": "cart", "replicas": 8}),
    )
    .await;
    assert_eq!(v["status"], "escalation_required", "{v}");
}

#[tokio::test]
async fn restart_pod_checks_the_owner_and_the_crash_looping_container() {
    let f = start_guarded().await;
    // a StatefulSet pod is a StatefulSet change
    let v = f
        .ok(
            "restart_pod",
            json!({"namespace": "data", "name": "postgres-1", "dry_run": true}),
        )
        .await;
    assert!(has(&v, "escalate-statefulset"), "{:?}", ids(&v));

    // a pod whose controller does not exist would never come back
    put(
        &f,
        "",
        "v1",
        "pods",
        "shop",
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "orphan-1", "namespace": "shop", "uid": "u-orphan",
                            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "ghost-123",
                                                 "uid": "u-ghost", "controller": true}]},
               "spec": {"nodeName": N1, "containers": [{"name": "app", "image": "x"}]},
               "status": {"phase": "Running", "containerStatuses": [
                   {"name": "app", "ready": false, "restartCount": 9, "image": "x", "imageID": "",
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}),
    )
    .await;
    let v = f
        .ok(
            "restart_pod",
            json!({"namespace": "shop", "name": "orphan-1"}),
        )
        .await;
    assert_eq!(v["status"], "escalation_required", "{v}");
    assert!(has(&v, "escalate-bare-pod"), "{:?}", ids(&v));
    assert!(
        v["summary"]
            .as_str()
            .unwrap()
            .contains("nothing would recreate it"),
        "{v}"
    );
    assert!(f.object("pods", "shop", "orphan-1").await.is_some());

    // a crash-looping container with 1 restart beside a sidecar with 7: the rule sees 1
    let pod = f.pods("shop", "cart-").await[0].clone();
    edit(&f, "", "pods", "shop", &pod, |p| {
        p["status"]["containerStatuses"] = json!([
            {"name": "cart", "ready": false, "restartCount": 1, "image": "x", "imageID": "",
             "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
            {"name": "sidecar", "ready": true, "restartCount": 7, "image": "y", "imageID": "",
             "state": {"running": {}}}
        ]);
    })
    .await;
    let v = f
        .ok(
            "restart_pod",
            json!({"namespace": "shop", "name": pod, "dry_run": true}),
        )
        .await;
    assert_eq!(v["facts"]["pod"]["restart_count"], 1, "{v}");
    assert!(has(&v, "auto-restart-pod-only-crashloop"), "{:?}", ids(&v));
}

#[tokio::test]
async fn a_rollback_shows_every_template_difference() {
    let f = start_guarded().await;
    // the previous revision: same image as now, but privileged and another command
    let current = f
        .object("deployments", "shop", "checkout")
        .await
        .unwrap()["spec"]["template"]["spec"]["containers"][0]["image"]
        .clone();
    let rss = [
        "checkout-5f6d7c8b9a",
        "checkout-6b7f9c8d4f",
        "checkout-84c5d9f7b6",
    ];
    let mut previous = None;
    for rs in rss {
        let obj = f.object("replicasets", "shop", rs).await.unwrap();
        if obj["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2" {
            previous = Some(rs);
        }
    }
    let previous = previous.expect("revision 2 exists");
    edit(&f, "apps", "replicasets", "shop", previous, |r| {
        let c = &mut r["spec"]["template"]["spec"]["containers"][0];
        c["image"] = current.clone();
        c["command"] = json!(["sh", "-c", "run-anything"]);
        c["securityContext"] = json!({"privileged": true});
    })
    .await;
    let v = f
        .ok(
            "rollback",
            json!({"namespace": "shop", "name": "checkout", "dry_run": true}),
        )
        .await;
    let fields: Vec<&str> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["field"].as_str())
        .collect();
    assert!(
        fields.iter().any(|f| f.contains("].securityContext")),
        "{fields:?}"
    );
    assert!(
        fields.iter().any(|f| f.ends_with("].command")),
        "{fields:?}"
    );
    assert!(!fields.iter().any(|f| f.ends_with("].image")), "{fields:?}");
    assert!(v["summary"].as_str().unwrap().contains("privileged"), "{v}");
}

#[tokio::test]
async fn concurrent_identical_rollbacks_apply_exactly_once() {
    let f = start_guarded().await;
    let server = f.server.clone();
    let calls = (0..16).map(|_| {
        let s = server.clone();
        tokio::spawn(async move {
            let r = s
                .call(
                    "rollback",
                    json!({"namespace": "shop", "name": "checkout"})
                        .as_object()
                        .cloned()
                        .unwrap(),
                )
                .await
                .unwrap();
            r.structured_content
                .map(|v| v["status"].as_str().unwrap_or_default().to_string())
                .unwrap_or_else(|| "error".into())
        })
    });
    let mut applied = 0;
    for c in calls {
        if c.await.unwrap() == "applied" {
            applied += 1;
        }
    }
    assert_eq!(applied, 1, "exactly one of the racing rollbacks applies");
    let d = f.object("deployments", "shop", "checkout").await.unwrap();
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "4",
        "one new revision"
    );
}

#[tokio::test]
async fn a_second_server_sees_the_first_ones_rollback() {
    let f = start_guarded().await;
    let v = f
        .ok("rollback", json!({"namespace": "shop", "name": "checkout"}))
        .await;
    assert_eq!(v["status"], "applied", "{v}");
    let (other, _dir) = second_server(&f, f.sandbox.cluster().unwrap(), GuardConfig::default());
    let v = call(
        &other,
        "rollback",
        json!({"namespace": "shop", "name": "checkout"}),
    )
    .await;
    assert_eq!(v["status"], "escalation_required", "{v}");
    assert!(has(&v, "escalate-second-rollback"), "{:?}", ids(&v));
    assert_eq!(v["facts"]["rollout"]["rollbacks_last_hour"], 1);
}

#[tokio::test]
async fn a_namespaced_server_refuses_node_actions_in_the_guard() {
    let f = start_guarded_with(GuardConfig {
        namespaces: Some(vec!["shop".into()]),
        ..GuardConfig::default()
    })
    .await;
    for tool in ["cordon_node", "drain_node", "uncordon_node"] {
        let e = f.err(tool, json!({"name": N1})).await;
        assert!(e.contains("cluster-scoped"), "{tool}: {e}");
    }
    let e = f
        .err(
            "scale_deployment",
            json!({"namespace": "payments", "name": "payment-api", "replicas": 3}),
        )
        .await;
    assert!(e.contains("outside this server's scope"), "{e}");
}

/// How the fault proxy treats a write.
#[derive(Clone, Copy)]
enum Fault {
    /// Forward it, answer only after a delay longer than the guard waits.
    Slow,
    /// Forward it, answer 200 with a body that is not JSON.
    Garbage,
    /// Do not forward it; answer 504 after a delay.
    Drop,
    /// Answer every request, reads included, 429 Too Many Requests.
    Throttle,
}

/// A proxy in front of the sandbox that passes reads through and mistreats writes.
async fn fault_proxy(upstream: String, fault: Fault) -> String {
    use axum::body::{Body, to_bytes};
    use axum::extract::Request;
    use axum::response::Response;
    let client = reqwest::Client::new();
    let app = axum::Router::new().fallback(move |req: Request| {
        let client = client.clone();
        let upstream = upstream.clone();
        async move {
            let method = req.method().clone();
            let path = req
                .uri()
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default();
            let ctype = req.headers().get("content-type").cloned();
            let body = to_bytes(req.into_body(), 64 << 20)
                .await
                .unwrap_or_default();
            let write = method == http::Method::PATCH;
            if matches!(fault, Fault::Throttle) {
                let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                    "message": "too many requests, please try again later",
                                    "reason": "TooManyRequests", "code": 429});
                return Response::builder()
                    .status(429)
                    .header("content-type", "application/json")
                    .body(Body::from(status.to_string()))
                    .unwrap();
            }
            if write && matches!(fault, Fault::Drop) {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                return Response::builder()
                    .status(504)
                    .body(Body::from("gateway timeout"))
                    .unwrap();
            }
            let mut rb = client
                .request(method, format!("{upstream}{path}"))
                .body(body);
            if let Some(c) = ctype {
                rb = rb.header("content-type", c);
            }
            let up = rb.send().await.unwrap();
            let status = up.status().as_u16();
            let bytes = up.bytes().await.unwrap_or_default();
            if write {
                match fault {
                    Fault::Slow => tokio::time::sleep(Duration::from_secs(3)).await,
                    Fault::Garbage => {
                        return Response::builder()
                            .status(200)
                            .header("content-type", "application/json")
                            .body(Body::from("{\"kind\": \"Deployment\", \"metad"))
                            .unwrap();
                    }
                    Fault::Drop | Fault::Throttle => {}
                }
            }
            Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(Body::from(bytes))
                .unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

async fn through_proxy(f: &Fixture, fault: Fault) -> (EksOpsServer, tempfile::TempDir) {
    let url = fault_proxy(f.sandbox.url(), fault).await;
    let config = kube::Config::new(url.parse().unwrap());
    let cluster = Cluster::from_config(config, true).unwrap();
    second_server(
        f,
        cluster,
        GuardConfig {
            apply_timeout: Duration::from_secs(1),
            ..GuardConfig::default()
        },
    )
}

#[tokio::test]
async fn a_change_whose_answer_is_late_is_reported_applied() {
    let f = start_guarded().await;
    let (server, _dir) = through_proxy(&f, Fault::Slow).await;
    let v = call(
        &server,
        "scale_deployment",
        json!({"namespace": "shop", "name": "checkout", "replicas": 5}),
    )
    .await;
    assert_eq!(v["status"], "applied", "{v}");
    assert!(
        v["outcome"].as_str().unwrap().contains("was applied"),
        "{v}"
    );
    assert_eq!(replicas(&f, "shop", "checkout").await, 5);
}

#[tokio::test]
async fn a_change_whose_answer_is_garbled_is_reported_applied() {
    let f = start_guarded().await;
    let (server, _dir) = through_proxy(&f, Fault::Garbage).await;
    let v = call(
        &server,
        "rollback",
        json!({"namespace": "shop", "name": "checkout"}),
    )
    .await;
    assert_eq!(v["status"], "applied", "{v}");
    let d = f.object("deployments", "shop", "checkout").await.unwrap();
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "4"
    );
}

#[tokio::test]
async fn a_change_that_never_arrived_is_reported_unknown_not_failed() {
    let f = start_guarded().await;
    let (server, _dir) = through_proxy(&f, Fault::Drop).await;
    let v = call(
        &server,
        "scale_deployment",
        json!({"namespace": "shop", "name": "checkout", "replicas": 5}),
    )
    .await;
    assert_eq!(v["status"], "unknown", "{v}");
    let outcome = v["outcome"].as_str().unwrap();
    assert!(
        outcome.contains("eks-ops-mcp/changes"),
        "says what to check: {outcome}"
    );
    assert_eq!(replicas(&f, "shop", "checkout").await, 4, "nothing changed");
}

#[tokio::test]
async fn a_lost_change_is_not_applied_once_the_object_changed_otherwise() {
    let f = start_guarded().await;
    let (server, _dir) = through_proxy(&f, Fault::Drop).await;
    let store = f.sandbox.store();
    // someone else writes while the change's answer is outstanding
    let other = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut s = store.write().await;
        let rt = resources::find("apps", "v1", "deployments").unwrap();
        let mut d = s.get(rt, "shop", "checkout").unwrap().clone();
        d["metadata"]["labels"]["touched"] = json!("yes");
        s.put(rt, "shop", "checkout", d);
    });
    let v = call(
        &server,
        "scale_deployment",
        json!({"namespace": "shop", "name": "checkout", "replicas": 5}),
    )
    .await;
    other.await.unwrap();
    assert_eq!(v["status"], "not_applied", "{v}");
    assert_eq!(replicas(&f, "shop", "checkout").await, 4, "nothing changed");
}

#[tokio::test]
async fn lists_are_paged_and_capped() {
    use k8s_openapi::api::core::v1::Pod;
    let f = start_guarded().await;
    let pod = |i: usize| {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": format!("bulk-{i:05}"), "namespace": "bulk", "uid": format!("u-bulk-{i}")},
               "spec": {"containers": [{"name": "c", "image": "x"}]},
               "status": {"phase": "Pending"}})
    };
    {
        let store = f.sandbox.store();
        let mut s = store.write().await;
        let rt = resources::find("", "v1", "pods").unwrap();
        for i in 0..1_203 {
            s.put(rt, "bulk", &format!("bulk-{i:05}"), pod(i));
        }
    }
    let cluster = f.sandbox.cluster().unwrap();
    let all = cluster
        .api::<Pod>(Some("bulk"))
        .list(&Default::default())
        .await
        .unwrap();
    assert_eq!(all.items.len(), 1_203, "three pages, every pod once");
    let names: std::collections::BTreeSet<_> =
        all.items.iter().map(|p| p.metadata.name.clone()).collect();
    assert_eq!(names.len(), 1_203);

    {
        let store = f.sandbox.store();
        let mut s = store.write().await;
        let rt = resources::find("", "v1", "pods").unwrap();
        for i in 1_203..(eks_ops_mcp::cluster::LIST_CAP + 10) {
            s.put(rt, "bulk", &format!("bulk-{i:05}"), pod(i));
        }
    }
    let e = cluster
        .api::<Pod>(Some("bulk"))
        .list(&Default::default())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("narrow the query"), "{e}");
    // a tool answers with the same advice, as an error
    put(
        &f,
        "",
        "v1",
        "namespaces",
        "",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bulk"}}),
    )
    .await;
    let e = f.err("get_pod_status", json!({"namespace": "bulk"})).await;
    assert!(e.contains("narrow the query"), "{e}");
}

#[tokio::test]
async fn a_persistently_throttled_api_is_reported_as_throttled_not_as_a_timeout() {
    let f = start_guarded().await;
    let (server, _dir) = through_proxy(&f, Fault::Throttle).await;
    let started = std::time::Instant::now();
    let r = server
        .call(
            "get_pod_status",
            json!({"namespace": "shop"}).as_object().cloned().unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(true));
    let text = format!("{:?}", r.content);
    assert!(text.contains("429"), "{text}");
    assert!(!text.contains("timed out"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "gave up after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_applied_change_whose_completion_record_fails_is_reported_applied() {
    let f = start_guarded().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let audit = Arc::new(AuditLog::open(log.to_str().unwrap()).unwrap());
    let guard = Arc::new(Guard::new(
        Arc::new(PolicyEngine::builtin().unwrap()),
        audit.clone(),
        GuardConfig::default(),
    ));
    // the real scale_deployment, after which the log's path stops being writable: the
    // decision record went in before the change, the completion record cannot
    let mut tools = eks_ops_mcp::tools::all();
    let scale = tools
        .iter_mut()
        .find(|t| t.def.name == "scale_deployment")
        .unwrap();
    let inner = scale.handler.clone();
    let (path, moved) = (log.clone(), dir.path().join("moved.jsonl"));
    scale.handler = Arc::new(move |ctx, args| {
        let (inner, path, moved) = (inner.clone(), path.clone(), moved.clone());
        Box::pin(async move {
            let out = inner(ctx, args).await;
            std::fs::rename(&path, &moved).unwrap();
            std::fs::create_dir(&path).unwrap();
            out
        })
    });
    let server = EksOpsServer::with_tools(
        ToolContext::new(f.sandbox.cluster().unwrap()).with_guard(guard),
        ServerSettings {
            audit: Some(audit),
            ..Default::default()
        },
        tools,
    );
    let r = server
        .call(
            "scale_deployment",
            json!({"namespace": "shop", "name": "checkout", "replicas": 5})
                .as_object()
                .cloned()
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(true));
    let text = format!("{:?}", r.content);
    assert!(text.contains("WAS APPLIED"), "{text}");
    assert!(!text.contains("refuses to answer"), "{text}");
    assert_eq!(r.structured_content.unwrap()["status"], "applied");
    assert_eq!(replicas(&f, "shop", "checkout").await, 5);

    // space comes back: the kept record is written ahead of the next one
    std::fs::remove_dir(&log).unwrap();
    std::fs::rename(dir.path().join("moved.jsonl"), &log).unwrap();
    let r = server
        .call(
            "get_events",
            json!({"namespace": "shop"}).as_object().cloned().unwrap(),
        )
        .await
        .unwrap();
    assert_ne!(r.is_error, Some(true), "{:?}", r.content);
    let text = std::fs::read_to_string(&log).unwrap();
    let late: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["written_late"] == true)
        .collect();
    assert_eq!(late.len(), 1, "{text}");
    assert_eq!(late[0]["tool"], "scale_deployment");
    assert_eq!(late[0]["result"]["status"], "applied");
}
