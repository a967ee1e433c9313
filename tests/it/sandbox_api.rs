//! The sandbox speaks the Kubernetes REST API: discovery, selectors, chunking, logs,
//! the scale subresource with dryRun and optimistic concurrency, and Status errors.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::{Value, json};

use crate::fixture::start;

async fn get(client: &kube::Client, path: &str) -> Result<Value, kube::Error> {
    let req = http::Request::get(path).body(Vec::new()).unwrap();
    client.request::<Value>(req).await
}

#[tokio::test]
async fn discovery_documents() {
    let f = start().await;
    let c = f.sandbox.client().unwrap();
    let api = get(&c, "/api").await.unwrap();
    assert_eq!(api["versions"], json!(["v1"]));
    let groups = get(&c, "/apis").await.unwrap();
    let names: Vec<&str> = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"apps") && names.contains(&"autoscaling") && names.contains(&"policy"));
    let core = get(&c, "/api/v1").await.unwrap();
    let res: Vec<&str> = core["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(
        res.contains(&"pods")
            && res.contains(&"pods/log")
            && res.contains(&"nodes")
            && res.contains(&"events")
    );
    assert!(
        !res.contains(&"secrets") && !res.contains(&"configmaps"),
        "the sandbox holds no secrets or configmaps"
    );
    let apps = get(&c, "/apis/apps/v1").await.unwrap();
    assert!(
        apps["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "deployments/scale")
    );
    let v = get(&c, "/version").await.unwrap();
    assert_eq!(v["major"], "1");
    // secrets are simply not served
    let err = get(&c, "/api/v1/namespaces/shop/secrets")
        .await
        .unwrap_err();
    assert!(matches!(err, kube::Error::Api(s) if s.code == 404));
}

#[tokio::test]
async fn list_with_selectors_and_chunking() {
    let f = start().await;
    let c = f.sandbox.client().unwrap();
    let pods: Api<Pod> = Api::all(c.clone());
    let all = pods.list(&ListParams::default()).await.unwrap();
    assert!(all.items.len() > 15);
    let by_label = pods
        .list(&ListParams::default().labels("app=checkout"))
        .await
        .unwrap();
    assert_eq!(by_label.items.len(), 4);
    let by_field = pods
        .list(
            &ListParams::default().fields("spec.nodeName=ip-10-0-2-22.eu-west-1.compute.internal"),
        )
        .await
        .unwrap();
    assert!(
        by_field
            .items
            .iter()
            .all(|p| p.spec.as_ref().unwrap().node_name.as_deref()
                == Some("ip-10-0-2-22.eu-west-1.compute.internal"))
    );
    assert!(!by_field.items.is_empty());
    // chunking: limit + continue visits every item exactly once
    let mut seen = Vec::new();
    let mut lp = ListParams::default().limit(4);
    loop {
        let page = pods.list(&lp).await.unwrap();
        seen.extend(page.items.iter().map(|p| p.metadata.name.clone().unwrap()));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => lp = lp.continue_token(&token),
            None => break,
        }
    }
    assert_eq!(seen.len(), all.items.len());
    let err = pods
        .list(&ListParams::default().labels("app in cart"))
        .await
        .unwrap_err();
    assert!(matches!(err, kube::Error::Api(s) if s.code == 400));
}

#[tokio::test]
async fn scale_subresource_honours_dry_run_and_resource_version() {
    let f = start().await;
    let c = f.sandbox.client().unwrap();
    let deps: Api<Deployment> = Api::namespaced(c, "shop");
    let before = deps.get_scale("checkout").await.unwrap();
    assert_eq!(before.spec.as_ref().unwrap().replicas, Some(4));

    let dry = PatchParams {
        dry_run: true,
        ..Default::default()
    };
    let r = deps
        .patch_scale(
            "checkout",
            &dry,
            &Patch::Merge(json!({"spec": {"replicas": 6}})),
        )
        .await
        .unwrap();
    assert_eq!(r.spec.unwrap().replicas, Some(6));
    assert_eq!(
        deps.get("checkout").await.unwrap().spec.unwrap().replicas,
        Some(4),
        "dry run changed nothing"
    );

    let stale = json!({"metadata": {"resourceVersion": "1"}, "spec": {"replicas": 6}});
    let err = deps
        .patch_scale("checkout", &PatchParams::default(), &Patch::Merge(stale))
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 409),
        "{err}"
    );

    let r = deps
        .patch_scale(
            "checkout",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 6}})),
        )
        .await
        .unwrap();
    assert_eq!(r.spec.unwrap().replicas, Some(6));
    assert_eq!(
        deps.get("checkout").await.unwrap().spec.unwrap().replicas,
        Some(6)
    );

    let err = deps
        .patch_scale(
            "checkout",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": -1}})),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 422),
        "{err}"
    );
}

#[tokio::test]
async fn a_test_can_bring_its_own_scenario() {
    let text = r#"{"name": "tiny", "objects": [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "solo", "namespace": "lab", "creationTimestamp": "${now-5m}"},
         "spec": {"containers": [{"name": "main", "image": "busybox"}]}}],
      "logs": [{"namespace": "lab", "pod": "solo", "container": "main", "start": "${now-1m}", "lines": ["hello", "world"]}]}"#;
    let scenario = eks_ops_mcp::sandbox::Scenario::parse(text, jiff::Timestamp::now()).unwrap();
    let f = crate::fixture::start_with(scenario).await;
    let v = f.ok("get_pod_status", json!({"namespace": "lab"})).await;
    assert_eq!(v["pods"][0]["name"], "solo");
    assert_eq!(v["pods"][0]["status"], "Running");
    assert_eq!(v["pods"][0]["age"], "5m");
    let v = f
        .ok("get_pod_logs", json!({"namespace": "lab", "pod": "solo"}))
        .await;
    assert_eq!(v["lines"], json!(["hello", "world"]));
}

#[test]
fn scenario_errors_are_precise() {
    use eks_ops_mcp::sandbox::store::Store;
    let now = jiff::Timestamp::now();
    let s = eks_ops_mcp::sandbox::Scenario::parse(
        r#"{"name": "bad", "objects": [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}}]}"#,
        now,
    )
    .unwrap();
    let e = Store::from_scenario(&s).unwrap_err().to_string();
    assert!(e.contains("Secret") && e.contains("does not serve"), "{e}");
    let s = eks_ops_mcp::sandbox::Scenario::parse(
        r#"{"name": "bad", "objects": [{"apiVersion": "v1", "kind": "Pod", "metadata": {}}]}"#,
        now,
    )
    .unwrap();
    let e = Store::from_scenario(&s).unwrap_err().to_string();
    assert!(e.contains("no metadata.name"), "{e}");
}
