//! The controllers of the sandbox, reduced to what the tools observe: Deployments own
//! ReplicaSets (a new one per pod template, revisions numbered like the deployment
//! controller does, an existing one reused on rollback), ReplicaSets and StatefulSets own
//! pods, pods are scheduled on schedulable nodes. Rollouts complete at once.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::resources::{self, ResourceType};
use super::store::{Store, fill_pod_status, owned_by, pod_ready, revision_of, str_at};
use crate::tools::common::without_pod_template_hash;

fn rt(plural: &str) -> &'static ResourceType {
    resources::RESOURCES
        .iter()
        .find(|r| r.plural == plural)
        .expect("resource type is served")
}

/// A short, stable hash of a pod template, like the `pod-template-hash` label.
pub fn template_hash(template: &Value) -> String {
    let t = without_pod_template_hash(template);
    name_chars(
        &Sha256::digest(serde_json::to_string(&t).unwrap_or_default().as_bytes()),
        10,
    )
}

/// The first `n` bytes of a digest as characters of the alphabet Kubernetes uses for
/// generated names (no vowels, no 0/1/3).
fn name_chars(digest: &[u8], n: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    digest
        .iter()
        .take(n)
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// Bring every workload to its desired state, then recompute statuses.
pub fn reconcile(store: &mut Store) {
    reconcile_deployments(store);
    reconcile_replicasets(store);
    reconcile_statefulsets(store);
    store.derive_workload_status();
}

fn reconcile_deployments(store: &mut Store) {
    let (deps, rss) = (rt("deployments"), rt("replicasets"));
    for (ns, name) in store.keys(deps) {
        let Some(dep) = store.get(deps, &ns, &name).cloned() else {
            continue;
        };
        let template = dep.pointer("/spec/template").cloned().unwrap_or(json!({}));
        let desired = dep
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let owned: Vec<Value> = store
            .list(rss, Some(&ns))
            .into_iter()
            .filter(|r| owned_by(r, "Deployment", &name))
            .cloned()
            .collect();
        let max_rev = owned.iter().map(revision_of).max().unwrap_or(0);
        let matching = owned.iter().find(|r| {
            r.pointer("/spec/template").map(without_pod_template_hash)
                == Some(without_pod_template_hash(&template))
        });
        let current_name = match matching {
            Some(rs) => {
                let rs_name = str_at(rs, &["metadata", "name"])
                    .unwrap_or_default()
                    .to_string();
                if revision_of(rs) < max_rev {
                    // a rollback: the old ReplicaSet becomes the newest revision
                    let mut rs = rs.clone();
                    rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] =
                        json!((max_rev + 1).to_string());
                    if let Some(cause) =
                        dep.pointer("/metadata/annotations/kubernetes.io~1change-cause")
                    {
                        rs["metadata"]["annotations"]["kubernetes.io/change-cause"] = cause.clone();
                    }
                    store.put(rss, &ns, &rs_name, rs);
                }
                rs_name
            }
            None => {
                let hash = template_hash(&template);
                let rs_name = format!("{name}-{hash}");
                let mut t = template.clone();
                t["metadata"]["labels"]["pod-template-hash"] = json!(hash);
                let mut selector = dep.pointer("/spec/selector").cloned().unwrap_or(json!({}));
                selector["matchLabels"]["pod-template-hash"] = json!(hash);
                let mut annotations =
                    json!({"deployment.kubernetes.io/revision": (max_rev + 1).to_string()});
                if let Some(cause) =
                    dep.pointer("/metadata/annotations/kubernetes.io~1change-cause")
                {
                    annotations["kubernetes.io/change-cause"] = cause.clone();
                }
                let rs = json!({
                    "apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "metadata": {"name": rs_name, "namespace": ns, "labels": t["metadata"]["labels"].clone(),
                        "annotations": annotations,
                        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                            "uid": dep.pointer("/metadata/uid").cloned().unwrap_or(json!("")),
                            "controller": true, "blockOwnerDeletion": true}]},
                    "spec": {"replicas": desired, "selector": selector, "template": t}
                });
                store.create(rss, &ns, rs);
                rs_name
            }
        };
        for rs in store
            .list(rss, Some(&ns))
            .into_iter()
            .filter(|r| owned_by(r, "Deployment", &name))
            .cloned()
            .collect::<Vec<_>>()
        {
            let rs_name = str_at(&rs, &["metadata", "name"])
                .unwrap_or_default()
                .to_string();
            let want = if rs_name == current_name { desired } else { 0 };
            if rs.pointer("/spec/replicas").and_then(Value::as_i64) != Some(want) {
                let mut rs = rs;
                rs["spec"]["replicas"] = json!(want);
                store.put(rss, &ns, &rs_name, rs);
            }
        }
    }
}

/// Pick a node for a new pod: the first Ready node that is not cordoned and has no
/// NoSchedule/NoExecute taint.
fn schedule(store: &Store) -> Option<String> {
    store
        .list(rt("nodes"), None)
        .into_iter()
        .filter(|n| n.pointer("/spec/unschedulable").and_then(Value::as_bool) != Some(true))
        .filter(|n| {
            !n.pointer("/spec/taints")
                .and_then(Value::as_array)
                .is_some_and(|ts| {
                    ts.iter()
                        .any(|t| matches!(str_at(t, &["effect"]), Some("NoSchedule" | "NoExecute")))
                })
        })
        .find_map(|n| str_at(n, &["metadata", "name"]).map(str::to_string))
}

fn new_pod(
    store: &mut Store,
    ns: &str,
    name: &str,
    owner_kind: &str,
    owner: &Value,
    template: &Value,
) {
    let mut labels = template
        .pointer("/metadata/labels")
        .cloned()
        .unwrap_or(json!({}));
    if owner_kind == "StatefulSet" {
        labels["statefulset.kubernetes.io/pod-name"] = json!(name);
    }
    let mut spec = template.pointer("/spec").cloned().unwrap_or(json!({}));
    let node = schedule(store);
    match &node {
        Some(n) => spec["nodeName"] = json!(n),
        None => {
            if let Some(o) = spec.as_object_mut() {
                o.remove("nodeName");
            }
        }
    }
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": owner_kind,
                "name": str_at(owner, &["metadata", "name"]).unwrap_or_default(),
                "uid": owner.pointer("/metadata/uid").cloned().unwrap_or(json!("")),
                "controller": true, "blockOwnerDeletion": true}]},
        "spec": spec,
    });
    if node.is_none() {
        pod["status"] = json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
            "reason": "Unschedulable", "message": "0 nodes are available: every node is cordoned or tainted."}]});
    }
    let mut pod = store.create(rt("pods"), ns, pod);
    let stamp = pod
        .pointer("/metadata/creationTimestamp")
        .cloned()
        .unwrap_or(json!(""));
    fill_pod_status(&mut pod);
    // a new container started now
    if let Some(cs) = pod
        .pointer_mut("/status/containerStatuses")
        .and_then(Value::as_array_mut)
    {
        for c in cs {
            c["state"] = json!({"running": {"startedAt": stamp}});
        }
    }
    store.put(rt("pods"), ns, name, pod);
}

fn generated_suffix(seed: &str) -> String {
    let digest = Sha256::digest(format!("{seed}/{}", uuid::Uuid::new_v4()).as_bytes());
    name_chars(&digest, 5)
}

fn reconcile_replicasets(store: &mut Store) {
    let (rss, pods) = (rt("replicasets"), rt("pods"));
    for (ns, name) in store.keys(rss) {
        let Some(rs) = store.get(rss, &ns, &name).cloned() else {
            continue;
        };
        let desired = rs
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1)
            .max(0) as usize;
        let mut owned: Vec<Value> = store
            .list(pods, Some(&ns))
            .into_iter()
            .filter(|p| owned_by(p, "ReplicaSet", &name))
            .cloned()
            .collect();
        if owned.len() > desired {
            // like the ReplicaSet controller: remove unready pods first, then the newest
            owned.sort_by_key(|p| {
                (
                    pod_ready(p),
                    std::cmp::Reverse(
                        str_at(p, &["metadata", "creationTimestamp"])
                            .unwrap_or_default()
                            .to_string(),
                    ),
                )
            });
            for p in owned.iter().take(owned.len() - desired) {
                if let Some(n) = str_at(p, &["metadata", "name"]) {
                    store.delete(pods, &ns, n);
                }
            }
        }
        let template = rs.pointer("/spec/template").cloned().unwrap_or(json!({}));
        for _ in owned.len()..desired {
            let pod_name = format!("{name}-{}", generated_suffix(&name));
            new_pod(store, &ns, &pod_name, "ReplicaSet", &rs, &template);
        }
    }
}

fn reconcile_statefulsets(store: &mut Store) {
    let (stss, pods) = (rt("statefulsets"), rt("pods"));
    for (ns, name) in store.keys(stss) {
        let Some(sts) = store.get(stss, &ns, &name).cloned() else {
            continue;
        };
        let desired = sts
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1)
            .max(0);
        let template = sts.pointer("/spec/template").cloned().unwrap_or(json!({}));
        let claims: Vec<String> = sts
            .pointer("/spec/volumeClaimTemplates")
            .and_then(Value::as_array)
            .map(|v| {
                v.iter()
                    .filter_map(|c| str_at(c, &["metadata", "name"]).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        for (pns, pname) in store.keys(pods) {
            if pns != ns {
                continue;
            }
            let Some(p) = store.get(pods, &pns, &pname) else {
                continue;
            };
            if !owned_by(p, "StatefulSet", &name) {
                continue;
            }
            let ordinal = pname
                .rsplit('-')
                .next()
                .and_then(|o| o.parse::<i64>().ok())
                .unwrap_or(i64::MAX);
            if ordinal >= desired {
                store.delete(pods, &ns, &pname);
            }
        }
        for i in 0..desired {
            let pod_name = format!("{name}-{i}");
            if store.get(pods, &ns, &pod_name).is_none() {
                let mut t = template.clone();
                let volumes: Vec<Value> = claims
                    .iter()
                    .map(|c| json!({"name": c, "persistentVolumeClaim": {"claimName": format!("{c}-{pod_name}")}}))
                    .collect();
                if !volumes.is_empty() {
                    t["spec"]["volumes"] = Value::Array(volumes);
                }
                new_pod(store, &ns, &pod_name, "StatefulSet", &sts, &t);
            }
        }
    }
}
