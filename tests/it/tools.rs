//! Every read tool against the sandbox: real outcomes, schema conformance, bad input.

use serde_json::{Value, json};

use crate::fixture::{Fixture, start};

/// Check a structured result against the tool's declared output schema.
fn conforms(f: &Fixture, tool: &str, value: &Value) {
    let def = f
        .server
        .tool_defs()
        .into_iter()
        .find(|d| d.name == tool)
        .expect("tool listed");
    let schema = Value::Object((*def.output_schema.expect("output schema")).clone());
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{tool} result violates its outputSchema: {errors:?}"
    );
}

#[tokio::test]
async fn get_events_aggregates_filters_and_sorts() {
    let f = start().await;
    let v = f.ok("get_events", json!({"namespace": "shop"})).await;
    conforms(&f, "get_events", &v);
    let events = v["events"].as_array().unwrap();
    assert!(events.len() >= 5);
    // newest first
    let seen: Vec<&str> = events
        .iter()
        .map(|e| e["last_seen"].as_str().unwrap())
        .collect();
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted);
    let backoff = events
        .iter()
        .find(|e| e["reason"] == "BackOff")
        .expect("BackOff event");
    assert_eq!(backoff["name"], "cart-7d9f8b6c5d-xk2lp");
    assert_eq!(backoff["count"], 31);

    // reasons filter, case-insensitive, with the OOMKilled alias for kernel OOM events
    let v = f.ok("get_events", json!({"reasons": ["oomkilled"]})).await;
    let evs = v["events"].as_array().unwrap();
    assert!(!evs.is_empty());
    assert!(evs.iter().all(|e| e["reason"] == "OOMKilling"));
    let node2 = evs
        .iter()
        .find(|e| e["name"] == "ip-10-0-2-22.eu-west-1.compute.internal")
        .unwrap();
    assert_eq!(node2["count"], 3);

    // kind/name and type filters, since and limit
    let v = f
        .ok(
            "get_events",
            json!({"namespace": "shop", "kind": "Deployment", "name": "checkout"}),
        )
        .await;
    let evs = v["events"].as_array().unwrap();
    assert_eq!(
        evs.len(),
        1,
        "two ScalingReplicaSet events aggregate into one group"
    );
    assert_eq!(evs[0]["count"], 2);
    assert_eq!(
        evs[0]["message"],
        "Scaled down replica set checkout-6b7f9c8d4f to 0 from 1"
    );
    let v = f
        .ok("get_events", json!({"type": "warning", "since": "5m"}))
        .await;
    assert!(
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["type"] == "Warning")
    );
    assert!(
        !v["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["reason"] == "NodeNotSchedulable")
    );
    let v = f.ok("get_events", json!({"limit": 2})).await;
    assert_eq!(v["events"].as_array().unwrap().len(), 2);
    assert_eq!(v["truncated"], true);
    assert!(v["total_matched"].as_u64().unwrap() > 2);
}

#[tokio::test]
async fn get_events_bad_input() {
    let f = start().await;
    let e = f.err("get_events", json!({"namespace": "nope"})).await;
    assert!(
        e.contains("namespace \"nope\" does not exist") && e.contains("shop"),
        "{e}"
    );
    let e = f.err("get_events", json!({"type": "Critical"})).await;
    assert!(e.contains("Normal or Warning"), "{e}");
    let e = f.err("get_events", json!({"since": "yesterday"})).await;
    assert!(e.contains("since") && e.contains("15m"), "{e}");
    let e = f.err("get_events", json!({"limit": -1})).await;
    assert!(e.contains("between 1 and 500"), "{e}");
    let e = f.err("get_events", json!({"limit": 1000000})).await;
    assert!(e.contains("between 1 and 500"), "{e}");
    let e = f.err("get_events", json!({"namespace": "Bad_NS"})).await;
    assert!(e.contains("not a valid name"), "{e}");
    let e = f.err("get_events", json!({"bogus": 1})).await;
    assert!(
        e.contains("unknown field `bogus`") && e.contains("namespace"),
        "{e}"
    );
    let e = f.err("get_events", json!({"limit": "ten"})).await;
    assert!(e.contains("invalid type"), "{e}");
}

#[tokio::test]
async fn get_pod_logs_reads_previous_and_masks_credentials() {
    let f = start().await;
    let v = f
        .ok(
            "get_pod_logs",
            json!({"namespace": "shop", "pod": "cart-7d9f8b6c5d-xk2lp", "previous": true}),
        )
        .await;
    conforms(&f, "get_pod_logs", &v);
    let lines: Vec<&str> = v["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert_eq!(v["container"], "cart");
    assert_eq!(v["previous"], true);
    assert!(
        lines
            .last()
            .unwrap()
            .starts_with("panic: failed to connect to redis")
    );
    let all = lines.join("\n");
    assert!(
        !all.contains("Sup3rS3cret") && !all.contains("AKIAIOSFODNN7EXAMPLE"),
        "{all}"
    );
    assert!(all.contains("redis://cart:[REDACTED]@"), "{all}");
    assert_eq!(v["lines_redacted"], 2);

    // current instance differs from the previous one
    let v = f
        .ok(
            "get_pod_logs",
            json!({"namespace": "shop", "pod": "cart-7d9f8b6c5d-xk2lp"}),
        )
        .await;
    assert_eq!(v["lines"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn get_pod_logs_grep_tail_and_truncation() {
    let f = start().await;
    let pod = "checkout-84c5d9f7b6-2xkq8";
    let v = f
        .ok(
            "get_pod_logs",
            json!({"namespace": "shop", "pod": pod, "grep": "ERROR .* 502", "tail_lines": 1000}),
        )
        .await;
    let lines = v["lines"].as_array().unwrap();
    assert_eq!(v["grep_matches"].as_u64().unwrap() as usize, lines.len());
    assert!(lines.len() >= 10);
    assert!(
        lines
            .iter()
            .all(|l| l.as_str().unwrap().starts_with("ERROR POST /checkout 502"))
    );
    assert!(
        lines
            .iter()
            .all(|l| l.as_str().unwrap().contains("Bearer [REDACTED]"))
    );

    let v = f
        .ok(
            "get_pod_logs",
            json!({"namespace": "shop", "pod": pod, "tail_lines": 5}),
        )
        .await;
    assert_eq!(v["lines"].as_array().unwrap().len(), 5);

    let v = f
        .ok(
            "get_pod_logs",
            json!({"namespace": "shop", "pod": pod, "limit_bytes": 300}),
        )
        .await;
    assert_eq!(v["truncated"], true);
    let lines = v["lines"].as_array().unwrap();
    assert!(lines[0].as_str().unwrap().contains("truncated"));
    assert_eq!(
        v["lines_dropped"].as_u64().unwrap() as usize + lines.len() - 1,
        v["lines_read"].as_u64().unwrap() as usize
    );

    let v = f
        .ok(
            "get_pod_logs",
            json!({"namespace": "shop", "pod": pod, "since": "10m"}),
        )
        .await;
    let n_recent = v["lines"].as_array().unwrap().len();
    assert!(
        n_recent > 0 && n_recent < 20,
        "45 s between lines → about 13 lines in 10m, got {n_recent}"
    );
}

#[tokio::test]
async fn get_pod_logs_bad_input() {
    let f = start().await;
    let e = f
        .err(
            "get_pod_logs",
            json!({"namespace": "shop", "pod": "frontend-59b8c7d6e4-a1b2c"}),
        )
        .await;
    assert!(
        e.contains("2 containers") && e.contains("web, envoy"),
        "{e}"
    );
    let v = f
        .ok(
            "get_pod_logs",
            json!({"namespace": "shop", "pod": "frontend-59b8c7d6e4-a1b2c", "container": "envoy"}),
        )
        .await;
    assert_eq!(v["container"], "envoy");
    let e = f
        .err(
            "get_pod_logs",
            json!({"namespace": "shop", "pod": "frontend-59b8c7d6e4-a1b2c", "container": "nginx"}),
        )
        .await;
    assert!(
        e.contains("\"nginx\" is not in pod") && e.contains("web, envoy"),
        "{e}"
    );
    let e = f
        .err("get_pod_logs", json!({"namespace": "shop", "pod": "ghost"}))
        .await;
    assert!(e.contains("pod \"ghost\" does not exist"), "{e}");
    let e = f
        .err("get_pod_logs", json!({"namespace": "ghost-ns", "pod": "x"}))
        .await;
    assert!(e.contains("namespace \"ghost-ns\" does not exist"), "{e}");
    let e = f
        .err(
            "get_pod_logs",
            json!({"namespace": "shop", "pod": "cart-7d9f8b6c5d-p9d4s", "grep": "(unclosed"}),
        )
        .await;
    assert!(e.contains("not a valid regular expression"), "{e}");
    let e = f
        .err(
            "get_pod_logs",
            json!({"namespace": "shop", "pod": "cart-7d9f8b6c5d-p9d4s", "tail_lines": 0}),
        )
        .await;
    assert!(
        e.contains("tail_lines") && e.contains("between 1 and 10000"),
        "{e}"
    );
    let e = f.err("get_pod_logs", json!({"namespace": "shop", "pod": "cart-7d9f8b6c5d-p9d4s", "limit_bytes": 99999999999i64})).await;
    assert!(e.contains("limit_bytes"), "{e}");
    let e = f
        .err(
            "get_pod_logs",
            json!({"namespace": "shop", "pod": "cart-7d9f8b6c5d-p9d4s", "previous": true}),
        )
        .await;
    assert!(e.contains("no previous"), "{e}");
    let e = f.err("get_pod_logs", json!({"namespace": "shop"})).await;
    assert!(e.contains("missing field `pod`"), "{e}");
    let e = f
        .err(
            "get_pod_logs",
            json!({"namespace": "shop", "pod": "../etc/passwd"}),
        )
        .await;
    assert!(e.contains("not a valid Kubernetes name"), "{e}");
}

#[tokio::test]
async fn get_pod_status_reports_why_pods_are_unhealthy() {
    let f = start().await;
    let v = f
        .ok(
            "get_pod_status",
            json!({"namespace": "shop", "only_unhealthy": true}),
        )
        .await;
    conforms(&f, "get_pod_status", &v);
    let pods = v["pods"].as_array().unwrap();
    let cart = pods
        .iter()
        .find(|p| p["name"] == "cart-7d9f8b6c5d-xk2lp")
        .expect("cart pod");
    assert_eq!(cart["status"], "CrashLoopBackOff");
    assert_eq!(cart["restarts"], 7);
    assert_eq!(cart["ready"], "0/1");
    assert_eq!(cart["containers"][0]["last_terminated"]["exit_code"], 1);
    assert_eq!(cart["owner"], "ReplicaSet/cart-7d9f8b6c5d");
    let rec = pods
        .iter()
        .find(|p| p["name"] == "recommender-66d5f4c7b8-q2w3e")
        .expect("pending pod");
    assert_eq!(rec["status"], "Pending");
    assert!(
        rec["reason"]
            .as_str()
            .unwrap()
            .contains("Insufficient memory")
    );
    assert!(rec.get("node").is_none());
    assert!(
        !pods.iter().any(|p| p["name"] == "cart-7d9f8b6c5d-p9d4s"),
        "healthy pod filtered out"
    );

    // OOMKilled last termination on the leaking service, selected by owner
    let v = f
        .ok(
            "get_pod_status",
            json!({"namespace": "payments", "owner": "Deployment/payment-api"}),
        )
        .await;
    let pods = v["pods"].as_array().unwrap();
    assert_eq!(pods.len(), 3);
    for p in pods {
        let t = &p["containers"][0]["last_terminated"];
        assert_eq!(t["reason"], "OOMKilled");
        assert_eq!(t["exit_code"], 137);
    }
    assert_eq!(
        pods.iter()
            .map(|p| p["restarts"].as_i64().unwrap())
            .sum::<i64>(),
        6
    );

    // label selector across all namespaces, and limit
    let v = f
        .ok(
            "get_pod_status",
            json!({"label_selector": "app in (postgres,cart)"}),
        )
        .await;
    assert_eq!(v["pods"].as_array().unwrap().len(), 5);
    let v = f.ok("get_pod_status", json!({"limit": 3})).await;
    assert_eq!(v["pods"].as_array().unwrap().len(), 3);
    assert_eq!(v["truncated"], true);
}

#[tokio::test]
async fn get_pod_status_bad_input() {
    let f = start().await;
    let e = f
        .err("get_pod_status", json!({"owner": "Deployment/cart"}))
        .await;
    assert!(e.contains("needs a namespace"), "{e}");
    let e = f
        .err(
            "get_pod_status",
            json!({"namespace": "shop", "owner": "cart"}),
        )
        .await;
    assert!(e.contains("Kind/name"), "{e}");
    let e = f
        .err(
            "get_pod_status",
            json!({"namespace": "shop", "owner": "CronJob/cart"}),
        )
        .await;
    assert!(
        e.contains("not supported") && e.contains("StatefulSet"),
        "{e}"
    );
    let e = f
        .err(
            "get_pod_status",
            json!({"namespace": "shop", "owner": "Deployment/ghost"}),
        )
        .await;
    assert!(e.contains("does not exist"), "{e}");
    let e = f
        .err(
            "get_pod_status",
            json!({"namespace": "shop", "label_selector": "app in cart"}),
        )
        .await;
    assert!(e.contains("label_selector is not valid"), "{e}");
    let e = f.err("get_pod_status", json!({"limit": 0})).await;
    assert!(e.contains("between 1 and 1000"), "{e}");
}

#[tokio::test]
async fn list_workloads_with_hpa_and_revisions() {
    let f = start().await;
    let v = f.ok("list_workloads", json!({})).await;
    conforms(&f, "list_workloads", &v);
    let ws = v["workloads"].as_array().unwrap();
    let find = |kind: &str, name: &str| {
        ws.iter()
            .find(|w| w["kind"] == kind && w["name"] == name)
            .cloned()
            .unwrap()
    };
    let pay = find("Deployment", "payment-api");
    assert_eq!(pay["hpa"]["min_replicas"], 3);
    assert_eq!(pay["hpa"]["max_replicas"], 12);
    assert_eq!(pay["hpa"]["targets"][0], "cpu 64%/70%");
    let checkout = find("Deployment", "checkout");
    assert_eq!(checkout["revision"], "3");
    assert_eq!(checkout["desired"], 4);
    assert_eq!(checkout["images"][0], "public.ecr.aws/acme/checkout:1.4.0");
    let cart = find("Deployment", "cart");
    assert_eq!(cart["ready"], 1);
    assert_eq!(cart["desired"], 2);
    let pg = find("StatefulSet", "postgres");
    assert_eq!(pg["ready"], 3);
    let ds = find("DaemonSet", "aws-node");
    assert_eq!(ds["desired"], 3);

    let v = f
        .ok(
            "list_workloads",
            json!({"namespace": "data", "kinds": ["statefulset"]}),
        )
        .await;
    assert_eq!(v["workloads"].as_array().unwrap().len(), 1);
    let e = f.err("list_workloads", json!({"kinds": ["CronJob"]})).await;
    assert!(e.contains("Deployment, StatefulSet or DaemonSet"), "{e}");
    let e = f
        .err("list_workloads", json!({"namespace": "missing"}))
        .await;
    assert!(e.contains("does not exist"), "{e}");
}

#[tokio::test]
async fn get_node_status_shows_pressure_and_cordon() {
    let f = start().await;
    let v = f.ok("get_node_status", json!({})).await;
    conforms(&f, "get_node_status", &v);
    let nodes = v["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    let n2 = nodes
        .iter()
        .find(|n| n["name"] == "ip-10-0-2-22.eu-west-1.compute.internal")
        .unwrap();
    assert_eq!(n2["problems"], json!(["MemoryPressure"]));
    assert_eq!(n2["capacity_type"], "spot");
    assert_eq!(n2["instance_type"], "m6i.large");
    assert_eq!(n2["taints"][0]["key"], "node.kubernetes.io/memory-pressure");
    let n3 = nodes
        .iter()
        .find(|n| n["name"] == "ip-10-0-3-33.eu-west-1.compute.internal")
        .unwrap();
    assert_eq!(n3["cordoned"], true);

    let v = f
        .ok("get_node_status", json!({"only_problems": true}))
        .await;
    assert_eq!(v["nodes"].as_array().unwrap().len(), 2);
    let v = f
        .ok(
            "get_node_status",
            json!({"label_selector": "karpenter.sh/capacity-type=spot"}),
        )
        .await;
    assert_eq!(v["nodes"].as_array().unwrap().len(), 1);
    let e = f
        .err("get_node_status", json!({"name": "ip-1-2-3-4"}))
        .await;
    assert!(
        e.contains("does not exist") && e.contains("ip-10-0-1-11"),
        "{e}"
    );
}

#[tokio::test]
async fn get_rollout_history_marks_current_and_previous() {
    let f = start().await;
    let v = f
        .ok(
            "get_rollout_history",
            json!({"namespace": "shop", "name": "checkout"}),
        )
        .await;
    conforms(&f, "get_rollout_history", &v);
    assert_eq!(v["current_revision"], 3);
    assert_eq!(v["previous_revision"], 2);
    let revs = v["revisions"].as_array().unwrap();
    assert_eq!(
        revs.iter()
            .map(|r| r["revision"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        vec![3, 2, 1]
    );
    assert_eq!(revs[0]["current"], true);
    assert_eq!(revs[1]["previous"], true);
    assert_eq!(revs[1]["images"][0], "public.ecr.aws/acme/checkout:1.3.2");
    assert_eq!(revs[1]["change_cause"], "fix currency rounding");
    assert_eq!(revs[0]["replicas"], 4);

    let e = f
        .err(
            "get_rollout_history",
            json!({"namespace": "shop", "name": "nope"}),
        )
        .await;
    assert!(e.contains("deployment \"nope\" does not exist"), "{e}");
    let e = f
        .err("get_rollout_history", json!({"namespace": "shop"}))
        .await;
    assert!(e.contains("missing field `name`"), "{e}");
}
