//! Writes to the sandbox: merge patches (with resourceVersion preconditions and
//! `dryRun=All`), pod deletion, and the Eviction API honouring PodDisruptionBudgets.
//! Every write is followed by a reconcile, so its effects show as they would on a cluster.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::api::{ApiState, bad_request, json_ok, not_found, status};
use super::controller::reconcile;
use super::resources::{self, ResourceType};
use super::selector::LabelSelector;
use super::store::{matches_labels, pod_ready, str_at};

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            if let Some(t) = target.as_object_mut() {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

fn dry_run(query: &HashMap<String, String>) -> bool {
    query.get("dryRun").is_some_and(|d| d == "All")
}

fn conflict(rt: &ResourceType, name: &str) -> Response {
    let what = if rt.group.is_empty() {
        rt.plural.to_string()
    } else {
        format!("{}.{}", rt.plural, rt.group)
    };
    status(
        StatusCode::CONFLICT,
        "Conflict",
        format!(
            "Operation cannot be fulfilled on {what} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
        ),
    )
}

fn invalid(rt: &ResourceType, name: &str, msg: &str) -> Response {
    let group = if rt.group.is_empty() {
        String::new()
    } else {
        format!(".{}", rt.group)
    };
    status(
        StatusCode::UNPROCESSABLE_ENTITY,
        "Invalid",
        format!("{}{group} \"{name}\" is invalid: {msg}", rt.kind),
    )
}

/// What a validating API server would reject, as its message.
fn validate(rt: &ResourceType, obj: &Value) -> Option<&'static str> {
    let int = |p: &str| obj.pointer(p).map(|v| v.as_i64());
    match rt.kind {
        "Deployment" | "StatefulSet" | "ReplicaSet"
            if int("/spec/replicas").is_some_and(|r| r.is_none_or(|r| r < 0)) =>
        {
            Some("spec.replicas: must be greater than or equal to 0")
        }
        "HorizontalPodAutoscaler" => {
            let min = int("/spec/minReplicas").flatten().unwrap_or(1);
            let max = int("/spec/maxReplicas").flatten().unwrap_or(0);
            if min < 1 {
                Some("spec.minReplicas: must be greater than or equal to 1")
            } else if max < min {
                Some("spec.maxReplicas: must be greater than or equal to minReplicas")
            } else {
                None
            }
        }
        "Node"
            if obj
                .pointer("/spec/unschedulable")
                .is_some_and(|u| !u.is_boolean()) =>
        {
            Some("spec.unschedulable: must be a boolean")
        }
        _ => None,
    }
}

/// `PATCH` of an object.
pub async fn patch_object(
    state: &ApiState,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    query: &HashMap<String, String>,
    body: &Bytes,
    content_type: &str,
) -> Response {
    let ct = content_type.split(';').next().unwrap_or("").trim();
    if !matches!(
        ct,
        "application/merge-patch+json" | "application/strategic-merge-patch+json"
    ) {
        return status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!(
                "the sandbox supports merge and strategic merge patches (as merge patches), not {ct:?}"
            ),
        );
    }
    let mut patch: Value = match serde_json::from_slice(body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return bad_request("a patch must be a JSON object"),
        Err(e) => return bad_request(format!("request body is not JSON: {e}")),
    };
    let mut store = state.store.write().await;
    let Some(current) = store.get(rt, ns, name).cloned() else {
        return not_found(rt, name);
    };
    let want_rv = patch
        .pointer_mut("/metadata")
        .and_then(Value::as_object_mut)
        .and_then(|m| m.remove("resourceVersion"));
    if let Some(rv) = want_rv
        && Some(&rv) != current.pointer("/metadata/resourceVersion")
    {
        return conflict(rt, name);
    }
    for immutable in ["name", "namespace", "uid"] {
        if let Some(v) = patch.pointer(&format!("/metadata/{immutable}"))
            && Some(v) != current.pointer(&format!("/metadata/{immutable}"))
        {
            return status(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid",
                format!("metadata.{immutable}: field is immutable"),
            );
        }
    }
    let mut updated = current.clone();
    merge_patch(&mut updated, &patch);
    if let Some(msg) = validate(rt, &updated) {
        return invalid(rt, name, msg);
    }
    if updated.get("spec") != current.get("spec") {
        let generation = current
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        updated["metadata"]["generation"] = json!(generation + 1);
    }
    if dry_run(query) {
        return json_ok(updated);
    }
    store.put(rt, ns, name, updated);
    reconcile(&mut store);
    match store.get(rt, ns, name) {
        Some(o) => json_ok(o.clone()),
        None => not_found(rt, name),
    }
}

/// `POST` of a new object to a collection.
pub async fn create_object(
    state: &ApiState,
    rt: &ResourceType,
    ns: Option<&str>,
    query: &HashMap<String, String>,
    body: &Bytes,
) -> Response {
    let mut obj: Value = match serde_json::from_slice(body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return bad_request("the body must be a JSON object"),
        Err(e) => return bad_request(format!("request body is not JSON: {e}")),
    };
    let Some(name) = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(str::to_string)
    else {
        return status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!("{} is invalid: metadata.name: Required value", rt.kind),
        );
    };
    let ns = ns.unwrap_or("");
    if rt.namespaced
        && let Some(given) = obj.pointer("/metadata/namespace").and_then(Value::as_str)
        && given != ns
    {
        return bad_request(format!(
            "the namespace of the object ({given}) does not match the namespace on the request ({ns})"
        ));
    }
    if let Some(msg) = validate(rt, &obj) {
        return invalid(rt, &name, msg);
    }
    let mut store = state.store.write().await;
    if store.get(rt, ns, &name).is_some() {
        let what = if rt.group.is_empty() {
            rt.plural.to_string()
        } else {
            format!("{}.{}", rt.plural, rt.group)
        };
        return status(
            StatusCode::CONFLICT,
            "AlreadyExists",
            format!("{what} \"{name}\" already exists"),
        );
    }
    if dry_run(query) {
        return (StatusCode::CREATED, axum::Json(obj)).into_response();
    }
    if let Some(m) = obj.pointer_mut("/metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
        m.remove("uid");
    }
    store.create(rt, ns, obj);
    reconcile(&mut store);
    match store.get(rt, ns, &name) {
        Some(o) => (StatusCode::CREATED, axum::Json(o.clone())).into_response(),
        None => not_found(rt, &name),
    }
}

fn preconditions_hold(body: &Bytes, pod: &Value) -> bool {
    let Ok(opts) = serde_json::from_slice::<Value>(body) else {
        return true;
    };
    let rv = opts.pointer("/preconditions/resourceVersion");
    let uid = opts.pointer("/preconditions/uid");
    rv.is_none_or(|rv| Some(rv) == pod.pointer("/metadata/resourceVersion"))
        && uid.is_none_or(|uid| Some(uid) == pod.pointer("/metadata/uid"))
}

fn body_dry_run(body: &Bytes, path: &str) -> bool {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.pointer(path).cloned())
        .and_then(|d| d.as_array().cloned())
        .is_some_and(|d| d.iter().any(|x| x == "All"))
}

/// `DELETE` of a pod; its controller replaces it.
pub async fn delete_pod(
    state: &ApiState,
    ns: &str,
    name: &str,
    query: &HashMap<String, String>,
    body: &Bytes,
) -> Response {
    let pods = resources::find("", "v1", "pods").expect("pods are served");
    let mut store = state.store.write().await;
    let Some(pod) = store.get(pods, ns, name).cloned() else {
        return not_found(pods, name);
    };
    if !preconditions_hold(body, &pod) {
        return conflict(pods, name);
    }
    if dry_run(query) || body_dry_run(body, "/dryRun") {
        return json_ok(pod);
    }
    store.delete(pods, ns, name);
    reconcile(&mut store);
    json_ok(pod)
}

fn int_or_percent(v: &Value, total: i64, round_up: bool) -> i64 {
    match v {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) => {
            let pct: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
            let x = total * pct;
            if round_up { (x + 99) / 100 } else { x / 100 }
        }
        _ => 0,
    }
}

/// `POST pods/{name}/eviction`: deletes the pod unless a PodDisruptionBudget forbids it.
pub async fn evict_pod(
    state: &ApiState,
    ns: &str,
    name: &str,
    query: &HashMap<String, String>,
    body: &Bytes,
) -> Response {
    let pods = resources::find("", "v1", "pods").expect("pods are served");
    let pdbs = resources::find("policy", "v1", "poddisruptionbudgets").expect("pdbs are served");
    let mut store = state.store.write().await;
    let Some(pod) = store.get(pods, ns, name).cloned() else {
        return not_found(pods, name);
    };
    if pod_ready(&pod) {
        for pdb in store.list(pdbs, Some(ns)) {
            let sel = pdb
                .pointer("/spec/selector/matchLabels")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            let Ok(sel) = LabelSelector::parse(&sel) else {
                continue;
            };
            if !matches_labels(&pod, &sel) {
                continue;
            }
            let covered: Vec<&Value> = store
                .list(pods, Some(ns))
                .into_iter()
                .filter(|p| matches_labels(p, &sel))
                .collect();
            let expected = covered.len() as i64;
            let healthy = covered.iter().filter(|p| pod_ready(p)).count() as i64;
            let desired_healthy = if let Some(min) = pdb.pointer("/spec/minAvailable") {
                int_or_percent(min, expected, true)
            } else if let Some(max) = pdb.pointer("/spec/maxUnavailable") {
                expected - int_or_percent(max, expected, false)
            } else {
                0
            };
            if healthy - 1 < desired_healthy {
                let pdb_name = str_at(pdb, &["metadata", "name"]).unwrap_or_default();
                let body = json!({
                    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": "Cannot evict pod as it would violate the pod's disruption budget.",
                    "reason": "TooManyRequests", "code": 429,
                    "details": {"causes": [{"reason": "DisruptionBudget",
                        "message": format!("The disruption budget {pdb_name} needs {desired_healthy} healthy pods and has {healthy} currently")}]}
                });
                return (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
            }
        }
    }
    if !preconditions_hold(
        &serde_json::to_vec(
            &serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v.get("deleteOptions").cloned())
                .unwrap_or(json!({})),
        )
        .unwrap_or_default()
        .into(),
        &pod,
    ) {
        return conflict(pods, name);
    }
    if dry_run(query) || body_dry_run(body, "/deleteOptions/dryRun") {
        return (
            StatusCode::CREATED,
            axum::Json(
                json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 201}),
            ),
        )
            .into_response();
    }
    store.delete(pods, ns, name);
    reconcile(&mut store);
    (StatusCode::CREATED, axum::Json(json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}))).into_response()
}

#[cfg(test)]
mod tests {
    use super::merge_patch;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}, "list": [1, 2]});
        merge_patch(
            &mut t,
            &json!({"a": "z", "c": {"f": null}, "list": [3], "new": {"x": 1}}),
        );
        assert_eq!(
            t,
            json!({"a": "z", "c": {"d": "e"}, "list": [3], "new": {"x": 1}})
        );
    }
}
