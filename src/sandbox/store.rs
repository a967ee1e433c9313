//! In-memory object store of the sandbox cluster, with the bits of controller
//! behaviour the tools observe: object defaults, pod status, workload status.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use serde_json::{Map, Value, json};

use super::resources::{self, ResourceType};
use super::scenario::{Scenario, ScenarioError};
use super::selector::LabelSelector;

/// One log line of a container.
#[derive(Debug, Clone)]
pub struct LogLine {
    /// When the line was written.
    pub time: Timestamp,
    /// The text, without a trailing newline.
    pub text: String,
}

/// Key of a container's log stream: namespace, pod, container, previous instance.
pub type LogKey = (String, String, String, bool);

/// The object store.
#[derive(Debug, Default)]
pub struct Store {
    objects: BTreeMap<(&'static str, String, String), Value>,
    logs: HashMap<LogKey, Vec<LogLine>>,
    resource_version: u64,
}

fn meta(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata").and_then(Value::as_object)
}

/// The string at a path of keys, if any.
pub fn str_at<'a>(obj: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = obj;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

fn key_of(rt: &ResourceType) -> &'static str {
    // plural names are unique across the served groups
    rt.plural
}

impl Store {
    /// Build a store from a scenario: objects get the defaults an API server and its
    /// controllers would give them, then workload status is derived from the pods.
    pub fn from_scenario(scenario: &Scenario) -> Result<Self, ScenarioError> {
        let mut store = Store::default();
        let now = Timestamp::now();
        for (i, obj) in scenario.objects.iter().enumerate() {
            let api_version = str_at(obj, &["apiVersion"]).unwrap_or_default();
            let kind = str_at(obj, &["kind"]).unwrap_or_default();
            let rt = resources::find_kind(api_version, kind).ok_or_else(|| {
                ScenarioError::Invalid(format!(
                    "object #{i} has apiVersion {api_version:?} kind {kind:?}, which the sandbox does not serve"
                ))
            })?;
            let name = str_at(obj, &["metadata", "name"])
                .filter(|n| !n.is_empty())
                .ok_or_else(|| {
                    ScenarioError::Invalid(format!("object #{i} ({kind}) has no metadata.name"))
                })?
                .to_string();
            let mut obj = obj.clone();
            let ns = if rt.namespaced {
                str_at(&obj, &["metadata", "namespace"])
                    .unwrap_or("default")
                    .to_string()
            } else {
                String::new()
            };
            store.fill_metadata(&mut obj, rt, &ns, now);
            if !ns.is_empty() {
                store.ensure_namespace(&ns, now);
            }
            let key = (key_of(rt), ns.clone(), name.clone());
            if store.objects.contains_key(&key) {
                return Err(ScenarioError::Invalid(format!(
                    "{kind} {ns}/{name} is defined twice"
                )));
            }
            store.objects.insert(key, obj);
        }
        for spec in &scenario.logs {
            let start = spec.start;
            let lines = spec
                .lines
                .iter()
                .enumerate()
                .map(|(i, text)| LogLine {
                    time: start
                        + jiff::SignedDuration::from_secs(
                            (i as i64).saturating_mul(spec.interval_seconds as i64),
                        ),
                    text: text.clone(),
                })
                .collect();
            store.logs.insert(
                (
                    spec.namespace.clone(),
                    spec.pod.clone(),
                    spec.container.clone(),
                    spec.previous,
                ),
                lines,
            );
        }
        store.link_owners();
        store.default_pod_status();
        store.derive_workload_status();
        Ok(store)
    }

    fn next_rv(&mut self) -> String {
        self.resource_version += 1;
        self.resource_version.to_string()
    }

    /// The current resource version of the whole store.
    pub fn resource_version(&self) -> String {
        self.resource_version.to_string()
    }

    fn ensure_namespace(&mut self, ns: &str, now: Timestamp) {
        let key = ("namespaces", String::new(), ns.to_string());
        if self.objects.contains_key(&key) {
            return;
        }
        let mut obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        let rt = resources::find("", "v1", "namespaces").expect("namespaces is served");
        self.fill_metadata(&mut obj, rt, "", now);
        self.objects.insert(key, obj);
    }

    fn fill_metadata(&mut self, obj: &mut Value, rt: &ResourceType, ns: &str, now: Timestamp) {
        let rv = self.next_rv();
        let Some(o) = obj.as_object_mut() else { return };
        o.insert("apiVersion".into(), json!(rt.api_version()));
        o.insert("kind".into(), json!(rt.kind));
        let m = o
            .entry("metadata")
            .or_insert_with(|| json!({}))
            .as_object_mut();
        let Some(m) = m else { return };
        if rt.namespaced {
            m.insert("namespace".into(), json!(ns));
        }
        m.entry("uid")
            .or_insert_with(|| json!(uuid::Uuid::new_v4().to_string()));
        m.insert("resourceVersion".into(), json!(rv));
        m.entry("creationTimestamp")
            .or_insert_with(|| json!((now - jiff::SignedDuration::from_hours(72)).to_string()));
        m.entry("generation").or_insert(json!(1));
        if rt.kind == "Namespace" {
            o.entry("status").or_insert(json!({"phase": "Active"}));
            o.entry("spec")
                .or_insert(json!({"finalizers": ["kubernetes"]}));
        }
    }

    /// Fill apiVersion, uid and controller flag of owner references written by name only.
    fn link_owners(&mut self) {
        let uids: HashMap<(String, String, String), String> = self
            .objects
            .iter()
            .filter_map(|((_, ns, name), o)| {
                Some((
                    (str_at(o, &["kind"])?.to_string(), ns.clone(), name.clone()),
                    str_at(o, &["metadata", "uid"])?.to_string(),
                ))
            })
            .collect();
        for ((_, ns, _), obj) in self.objects.iter_mut() {
            let Some(refs) = obj
                .pointer_mut("/metadata/ownerReferences")
                .and_then(Value::as_array_mut)
            else {
                continue;
            };
            for r in refs.iter_mut() {
                let kind = str_at(r, &["kind"]).unwrap_or_default().to_string();
                let name = str_at(r, &["name"]).unwrap_or_default().to_string();
                let Some(ro) = r.as_object_mut() else {
                    continue;
                };
                let api_version = match kind.as_str() {
                    "ReplicaSet" | "Deployment" | "StatefulSet" | "DaemonSet" => "apps/v1",
                    _ => "v1",
                };
                ro.entry("apiVersion").or_insert(json!(api_version));
                ro.entry("controller").or_insert(json!(true));
                ro.entry("blockOwnerDeletion").or_insert(json!(true));
                if let Some(uid) = uids.get(&(kind, ns.clone(), name)) {
                    ro.entry("uid").or_insert(json!(uid));
                }
            }
        }
    }

    /// Pods written without a status get the status of a healthy running pod; container
    /// statuses given in the scenario are completed from the spec.
    fn default_pod_status(&mut self) {
        for ((plural, _, _), pod) in self.objects.iter_mut() {
            if *plural == "pods" {
                fill_pod_status(pod);
            }
        }
    }

    fn pods_owned_by(&self, ns: &str, kind: &str, name: &str) -> Vec<&Value> {
        self.objects
            .iter()
            .filter(|((p, n, _), _)| *p == "pods" && n == ns)
            .map(|(_, o)| o)
            .filter(|o| owned_by(o, kind, name))
            .collect()
    }

    /// Recompute the status of ReplicaSets, Deployments, StatefulSets and DaemonSets from
    /// their pods, and the status of HPAs from their targets.
    pub fn derive_workload_status(&mut self) {
        let keys: Vec<_> = self.objects.keys().cloned().collect();
        // ReplicaSets, StatefulSets, DaemonSets own pods directly.
        for key in keys
            .iter()
            .filter(|k| matches!(k.0, "replicasets" | "statefulsets" | "daemonsets"))
        {
            let kind = match key.0 {
                "replicasets" => "ReplicaSet",
                "statefulsets" => "StatefulSet",
                _ => "DaemonSet",
            };
            let pods = self.pods_owned_by(&key.1, kind, &key.2);
            let total = pods.len() as i64;
            let ready = pods.iter().filter(|p| pod_ready(p)).count() as i64;
            let Some(obj) = self.objects.get_mut(key) else {
                continue;
            };
            let generation = obj
                .pointer("/metadata/generation")
                .cloned()
                .unwrap_or(json!(1));
            let status = if kind == "DaemonSet" {
                json!({"currentNumberScheduled": total, "desiredNumberScheduled": total,
                       "numberReady": ready, "numberAvailable": ready, "updatedNumberScheduled": total,
                       "numberMisscheduled": 0, "observedGeneration": generation})
            } else {
                json!({"replicas": total, "readyReplicas": ready, "availableReplicas": ready,
                       "currentReplicas": total, "updatedReplicas": total,
                       "fullyLabeledReplicas": total, "observedGeneration": generation})
            };
            merge_status(obj, status);
        }
        // Deployments aggregate their ReplicaSets; the current one has the highest revision.
        for key in keys.iter().filter(|k| k.0 == "deployments") {
            let mut total = 0;
            let mut ready = 0;
            let mut updated = 0;
            let mut best_rev = -1;
            for ((p, ns, name), rs) in &self.objects {
                if *p != "replicasets" || *ns != key.1 || !owned_by(rs, "Deployment", &key.2) {
                    continue;
                }
                let pods = self.pods_owned_by(ns, "ReplicaSet", name);
                let rev = revision_of(rs);
                total += pods.len() as i64;
                ready += pods.iter().filter(|p| pod_ready(p)).count() as i64;
                if rev > best_rev {
                    best_rev = rev;
                    updated = pods.len() as i64;
                }
            }
            let Some(obj) = self.objects.get_mut(key) else {
                continue;
            };
            let desired = obj
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            let generation = obj
                .pointer("/metadata/generation")
                .cloned()
                .unwrap_or(json!(1));
            let created = str_at(obj, &["metadata", "creationTimestamp"])
                .unwrap_or_default()
                .to_string();
            if best_rev > 0
                && let Some(m) = obj.pointer_mut("/metadata").and_then(Value::as_object_mut)
            {
                let ann = m.entry("annotations").or_insert_with(|| json!({}));
                if let Some(a) = ann.as_object_mut() {
                    a.insert(
                        "deployment.kubernetes.io/revision".into(),
                        json!(best_rev.to_string()),
                    );
                }
            }
            let available = ready >= desired.saturating_sub(1).max(1).min(desired);
            let cond = |t: &str, ok: bool, reason: &str| {
                json!({"type": t, "status": if ok {"True"} else {"False"},
                "reason": reason, "lastTransitionTime": created, "lastUpdateTime": created})
            };
            merge_status(
                obj,
                json!({
                    "replicas": total, "readyReplicas": ready, "availableReplicas": ready,
                    "updatedReplicas": updated, "unavailableReplicas": (desired - ready).max(0),
                    "observedGeneration": generation,
                    "conditions": [
                        cond("Available", available, if available {"MinimumReplicasAvailable"} else {"MinimumReplicasUnavailable"}),
                        cond("Progressing", true, "NewReplicaSetAvailable"),
                    ]
                }),
            );
        }
    }

    /// Look up one object.
    pub fn get(&self, rt: &ResourceType, ns: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(&(key_of(rt), ns.to_string(), name.to_string()))
    }

    /// Replace an object (its resourceVersion is bumped); returns the stored object.
    pub fn put(&mut self, rt: &ResourceType, ns: &str, name: &str, mut obj: Value) -> Value {
        let rv = self.next_rv();
        if let Some(m) = obj.pointer_mut("/metadata").and_then(Value::as_object_mut) {
            m.insert("resourceVersion".into(), json!(rv));
        }
        self.objects
            .insert((key_of(rt), ns.to_string(), name.to_string()), obj.clone());
        obj
    }

    /// Create a new object with server-set metadata (uid, resourceVersion, creation time).
    pub fn create(&mut self, rt: &ResourceType, ns: &str, mut obj: Value) -> Value {
        let now = Timestamp::now();
        if let Some(m) = obj.pointer_mut("/metadata").and_then(Value::as_object_mut) {
            m.insert(
                "creationTimestamp".into(),
                json!(
                    now.round(jiff::Unit::Second)
                        .map(|t| t.to_string())
                        .unwrap_or_default()
                ),
            );
        }
        self.fill_metadata(&mut obj, rt, ns, now);
        let name = str_at(&obj, &["metadata", "name"])
            .unwrap_or_default()
            .to_string();
        self.objects
            .insert((key_of(rt), ns.to_string(), name), obj.clone());
        obj
    }

    /// Remove an object; returns it.
    pub fn delete(&mut self, rt: &ResourceType, ns: &str, name: &str) -> Option<Value> {
        self.resource_version += 1;
        self.objects
            .remove(&(key_of(rt), ns.to_string(), name.to_string()))
    }

    /// Keys (namespace, name) of every object of a type.
    pub fn keys(&self, rt: &ResourceType) -> Vec<(String, String)> {
        self.objects
            .keys()
            .filter(|(p, _, _)| *p == key_of(rt))
            .map(|(_, n, name)| (n.clone(), name.clone()))
            .collect()
    }

    /// All objects of a type, in a namespace or (with `None`) in all namespaces, sorted by
    /// namespace and name.
    pub fn list(&self, rt: &ResourceType, ns: Option<&str>) -> Vec<&Value> {
        self.objects
            .iter()
            .filter(|((p, n, _), _)| *p == key_of(rt) && ns.is_none_or(|ns| ns == n))
            .map(|(_, o)| o)
            .collect()
    }

    /// The log lines of a container, if the sandbox has any.
    pub fn logs(&self, key: &LogKey) -> Option<&Vec<LogLine>> {
        self.logs.get(key)
    }
}

fn merge_status(obj: &mut Value, derived: Value) {
    let Some(o) = obj.as_object_mut() else { return };
    let status = o.entry("status").or_insert_with(|| json!({}));
    if let (Some(s), Some(d)) = (status.as_object_mut(), derived.as_object()) {
        for (k, v) in d {
            s.insert(k.clone(), v.clone());
        }
    }
}

/// Whether `obj` has a controller owner reference to `kind`/`name`.
pub fn owned_by(obj: &Value, kind: &str, name: &str) -> bool {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| str_at(r, &["kind"]) == Some(kind) && str_at(r, &["name"]) == Some(name))
        })
}

/// The `deployment.kubernetes.io/revision` annotation of a ReplicaSet, or -1.
pub fn revision_of(obj: &Value) -> i64 {
    obj.pointer("/metadata/annotations/deployment.kubernetes.io~1revision")
        .and_then(Value::as_str)
        .and_then(|r| r.parse().ok())
        .unwrap_or(-1)
}

/// Whether a pod's Ready condition is True.
pub fn pod_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                str_at(c, &["type"]) == Some("Ready") && str_at(c, &["status"]) == Some("True")
            })
        })
}

/// Whether an object matches a label selector.
pub fn matches_labels(obj: &Value, sel: &LabelSelector) -> bool {
    sel.matches(
        meta(obj)
            .and_then(|m| m.get("labels"))
            .and_then(Value::as_object),
    )
}

/// Complete a pod's status the way the kubelet would report a healthy pod: phase Running,
/// container statuses for every container of the spec (those given are kept), conditions.
pub fn fill_pod_status(pod: &mut Value) {
    let created = str_at(pod, &["metadata", "creationTimestamp"])
        .unwrap_or_default()
        .to_string();
    let containers: Vec<(String, String)> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    (
                        str_at(c, &["name"]).unwrap_or_default().to_string(),
                        str_at(c, &["image"]).unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let scheduled = pod.pointer("/spec/nodeName").is_some_and(|n| n.is_string());
    let Some(po) = pod.as_object_mut() else {
        return;
    };
    let status = po
        .entry("status")
        .or_insert_with(|| json!({}))
        .as_object_mut();
    let Some(status) = status else { return };
    let given: Vec<Value> = status
        .get("containerStatuses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let phase = status
        .get("phase")
        .and_then(Value::as_str)
        .unwrap_or("Running")
        .to_string();
    let mut statuses = Vec::new();
    for (name, image) in &containers {
        let mut cs = json!({
            "name": name, "image": image,
            "imageID": format!("{image}@sha256:{:0>64}", name.len()),
            "containerID": format!("containerd://{}", uuid::Uuid::new_v4().simple()),
            "ready": phase == "Running", "restartCount": 0, "started": phase == "Running",
            "state": if phase == "Running" { json!({"running": {"startedAt": created}}) }
                     else { json!({"waiting": {"reason": "ContainerCreating"}}) },
            "lastState": {}
        });
        if let Some(g) = given.iter().find(|g| str_at(g, &["name"]) == Some(name))
            && let (Some(c), Some(g)) = (cs.as_object_mut(), g.as_object())
        {
            for (k, v) in g {
                c.insert(k.clone(), v.clone());
            }
            if g.get("state").and_then(|s| s.get("waiting")).is_some() && !g.contains_key("ready") {
                c.insert("ready".into(), json!(false));
            }
        }
        statuses.push(cs);
    }
    let all_ready = !statuses.is_empty()
        && statuses
            .iter()
            .all(|c| c.get("ready").and_then(Value::as_bool) == Some(true));
    if scheduled {
        status.insert("containerStatuses".into(), Value::Array(statuses));
    } else {
        // an unscheduled pod has no containers yet
        status.remove("containerStatuses");
    }
    status.insert("phase".into(), json!(phase));
    status.entry("qosClass").or_insert(json!("Burstable"));
    status.entry("startTime").or_insert(json!(created));
    if phase != "Pending" {
        status.entry("podIP").or_insert(json!("10.0.1.10"));
        status.entry("hostIP").or_insert(json!("10.0.1.11"));
    }
    let cond = |t: &str, ok: bool| json!({"type": t, "status": if ok {"True"} else {"False"}, "lastTransitionTime": created});
    status.entry("conditions").or_insert_with(|| {
        json!([
            cond("PodScheduled", phase != "Pending"),
            cond("Initialized", true),
            cond("ContainersReady", all_ready),
            cond("Ready", all_ready),
        ])
    });
}
