//! The sandbox's Kubernetes REST API: discovery, list/get with selectors and
//! chunking, `pods/log`, and the `scale` subresource (with `dryRun=All`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde_json::{Value, json};
use tokio::sync::RwLock;

use super::mutate;
use super::resources::{self, RESOURCES, ResourceType};
use super::selector::{FieldSelector, LabelSelector};
use super::store::{Store, matches_labels};
use super::table;

/// Shared state of the API handlers.
#[derive(Clone)]
pub struct ApiState {
    /// The objects.
    pub store: Arc<RwLock<Store>>,
    /// `host:port` the API is served on (for discovery documents).
    pub address: String,
}

/// A Kubernetes `Status` failure response.
pub(super) fn status(code: StatusCode, reason: &str, message: impl Into<String>) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message.into(), "reason": reason, "code": code.as_u16()
    });
    (code, axum::Json(body)).into_response()
}

pub(super) fn not_found(rt: &ResourceType, name: &str) -> Response {
    let what = if rt.group.is_empty() {
        rt.plural.to_string()
    } else {
        format!("{}.{}", rt.plural, rt.group)
    };
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("{what} \"{name}\" not found"),
    )
}

pub(super) fn bad_request(message: impl Into<String>) -> Response {
    status(StatusCode::BAD_REQUEST, "BadRequest", message)
}

pub(super) fn json_ok(v: Value) -> Response {
    (StatusCode::OK, axum::Json(v)).into_response()
}

fn resource_list(group: &str, version: &str) -> Value {
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let mut list = Vec::new();
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        list.push(json!({
            "name": r.plural, "singularName": r.kind.to_lowercase(), "namespaced": r.namespaced,
            "kind": r.kind, "shortNames": r.short_names,
            "verbs": if r.plural == "pods" { json!(["get", "list", "create", "patch", "delete"]) } else { json!(["get", "list", "create", "patch"]) },
        }));
        if r.scalable {
            list.push(json!({"name": format!("{}/scale", r.plural), "singularName": "", "namespaced": r.namespaced,
                "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]}));
        }
        if r.plural == "pods" {
            list.push(json!({"name": "pods/log", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get"]}));
            list.push(json!({"name": "pods/eviction", "singularName": "", "namespaced": true, "group": "policy",
                "version": "v1", "kind": "Eviction", "verbs": ["create"]}));
        }
    }
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": list})
}

fn group_doc(group: &str, version: &str) -> Value {
    let gv = json!({"groupVersion": format!("{group}/{version}"), "version": version});
    json!({"name": group, "versions": [gv], "preferredVersion": gv})
}

/// Entry point: every request of the API server comes here.
pub async fn handle(
    State(state): State<ApiState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let as_table = table::wants_table(&headers);
    let path = uri.path().trim_end_matches('/');
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["version"] => json_ok(json!({
            "major": "1", "minor": "35", "gitVersion": "v1.35.0-eks-sandbox",
            "gitCommit": "sandbox", "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
            "goVersion": "go1.24", "compiler": "gc", "platform": "linux/amd64"
        })),
        ["healthz"] | ["readyz"] | ["livez"] => (StatusCode::OK, "ok").into_response(),
        ["api"] => json_ok(json!({
            "kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": state.address}]
        })),
        ["apis"] => json_ok(json!({
            "kind": "APIGroupList", "apiVersion": "v1",
            "groups": resources::groups().iter().map(|(g, v)| group_doc(g, v)).collect::<Vec<_>>()
        })),
        ["api", "v1"] => json_ok(resource_list("", "v1")),
        ["apis", g] => match resources::groups().iter().find(|(x, _)| x == g) {
            Some((g, v)) => json_ok(json!({"kind": "APIGroup", "apiVersion": "v1", "name": g,
                "versions": group_doc(g, v)["versions"], "preferredVersion": group_doc(g, v)["preferredVersion"]})),
            None => status(
                StatusCode::NOT_FOUND,
                "NotFound",
                "the server could not find the requested resource",
            ),
        },
        ["apis", g, v] if resources::groups().iter().any(|(x, y)| x == g && y == v) => {
            json_ok(resource_list(g, v))
        }
        ["api", "v1", ..] | ["apis", _, _, ..] => {
            let (group, version, rest) = match segs.as_slice() {
                ["apis", g, v, rest @ ..] => (*g, *v, rest),
                [_, _, rest @ ..] => ("", "v1", rest),
                _ => {
                    return status(
                        StatusCode::NOT_FOUND,
                        "NotFound",
                        "the server could not find the requested resource",
                    );
                }
            };
            resource(
                &state,
                &method,
                group,
                version,
                rest,
                &query,
                &body,
                &content_type,
                as_table,
            )
            .await
        }
        _ => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        ),
    }
}

#[allow(clippy::too_many_arguments)]
async fn resource(
    state: &ApiState,
    method: &Method,
    group: &str,
    version: &str,
    rest: &[&str],
    query: &HashMap<String, String>,
    body: &Bytes,
    content_type: &str,
    as_table: bool,
) -> Response {
    // /namespaces/{ns}/{plural}[/{name}[/{sub}]] or /{plural}[/{name}[/{sub}]]
    let (ns, plural, name, sub) = match rest {
        ["namespaces", ns, plural, tail @ ..] if tail.len() <= 2 => (
            Some(*ns),
            *plural,
            tail.first().copied(),
            tail.get(1).copied(),
        ),
        [plural, tail @ ..] if tail.len() <= 2 => {
            (None, *plural, tail.first().copied(), tail.get(1).copied())
        }
        _ => {
            return status(
                StatusCode::NOT_FOUND,
                "NotFound",
                "the server could not find the requested resource",
            );
        }
    };
    let Some(rt) = resources::find(group, version, plural) else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("the server could not find the requested resource ({plural})"),
        );
    };
    if rt.namespaced != ns.is_some() && name.is_some() {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        );
    }
    let ns_str = ns.unwrap_or("");
    match (method.clone(), name, sub) {
        (Method::GET, None, None) => {
            if query.get("watch").is_some_and(|w| w == "true" || w == "1") {
                return status(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "MethodNotAllowed",
                    "the sandbox does not support watch",
                );
            }
            list(state, rt, ns, query, as_table).await
        }
        (Method::GET, Some(name), None) => {
            let store = state.store.read().await;
            match store.get(rt, ns_str, name) {
                Some(o) if as_table => json_ok(table::table(
                    rt,
                    std::slice::from_ref(o),
                    &store.resource_version(),
                )),
                Some(o) => json_ok(o.clone()),
                None => not_found(rt, name),
            }
        }
        (Method::GET, Some(name), Some("log")) if rt.plural == "pods" => {
            logs(state, ns_str, name, query).await
        }
        (Method::GET, Some(name), Some("scale")) if rt.scalable => {
            let store = state.store.read().await;
            match store.get(rt, ns_str, name) {
                Some(o) => json_ok(scale_of(o)),
                None => not_found(rt, name),
            }
        }
        (Method::PATCH | Method::PUT, Some(name), Some("scale")) if rt.scalable => {
            update_scale(state, rt, ns_str, name, query, body).await
        }
        (Method::POST, None, None) if rt.plural != "events" => {
            mutate::create_object(state, rt, ns, query, body).await
        }
        (Method::PATCH, Some(name), None) => {
            mutate::patch_object(state, rt, ns_str, name, query, body, content_type).await
        }
        (Method::DELETE, Some(name), None) if rt.plural == "pods" => {
            mutate::delete_pod(state, ns_str, name, query, body).await
        }
        (Method::POST, Some(name), Some("eviction")) if rt.plural == "pods" => {
            mutate::evict_pod(state, ns_str, name, query, body).await
        }
        (m, _, Some(sub)) if m == Method::GET => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{}/{sub} is not served by the sandbox", rt.plural),
        ),
        (m, _, _) => status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("{m} on {} is not supported by the sandbox", rt.plural),
        ),
    }
}

async fn list(
    state: &ApiState,
    rt: &ResourceType,
    ns: Option<&str>,
    query: &HashMap<String, String>,
    as_table: bool,
) -> Response {
    let labels = match LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str)) {
        Ok(s) => s,
        Err(e) => return bad_request(e.to_string()),
    };
    let fields = match FieldSelector::parse(query.get("fieldSelector").map_or("", String::as_str)) {
        Ok(s) => s,
        Err(e) => return bad_request(e.to_string()),
    };
    let limit: usize = match query.get("limit").map(|l| l.parse::<usize>()) {
        None => 0,
        Some(Ok(l)) => l,
        Some(Err(_)) => return bad_request("limit must be a non-negative integer"),
    };
    let offset: usize = match query.get("continue").filter(|c| !c.is_empty()) {
        None => 0,
        Some(c) => match c.parse() {
            Ok(o) => o,
            Err(_) => {
                return status(
                    StatusCode::GONE,
                    "Expired",
                    "the provided continue parameter is not valid",
                );
            }
        },
    };
    let store = state.store.read().await;
    let matching: Vec<Value> = store
        .list(rt, ns)
        .into_iter()
        .filter(|o| matches_labels(o, &labels) && fields.matches(o))
        .cloned()
        .collect();
    let end = if limit == 0 {
        matching.len()
    } else {
        (offset + limit).min(matching.len())
    };
    let items: Vec<Value> = matching.get(offset.min(end)..end).unwrap_or(&[]).to_vec();
    let mut metadata = json!({"resourceVersion": store.resource_version()});
    if end < matching.len() {
        metadata["continue"] = json!(end.to_string());
        metadata["remainingItemCount"] = json!(matching.len() - end);
    }
    if as_table {
        let mut t = table::table(rt, &items, &store.resource_version());
        t["metadata"] = metadata;
        return json_ok(t);
    }
    json_ok(json!({
        "kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(),
        "metadata": metadata, "items": items
    }))
}

fn scale_of(obj: &Value) -> Value {
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": obj.pointer("/metadata/name"), "namespace": obj.pointer("/metadata/namespace"),
            "uid": obj.pointer("/metadata/uid"), "resourceVersion": obj.pointer("/metadata/resourceVersion"),
            "creationTimestamp": obj.pointer("/metadata/creationTimestamp"),
        },
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(1))},
        "status": {"replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
                   "selector": selector_string(obj)}
    })
}

fn selector_string(obj: &Value) -> String {
    obj.pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

async fn update_scale(
    state: &ApiState,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    query: &HashMap<String, String>,
    body: &Bytes,
) -> Response {
    let patch: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return bad_request(format!("request body is not JSON: {e}")),
    };
    let Some(replicas) = patch.pointer("/spec/replicas").and_then(Value::as_i64) else {
        return bad_request("spec.replicas (integer) is required");
    };
    if !(0..=i32::MAX as i64).contains(&replicas) {
        return status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!(
                "Scale.autoscaling \"{name}\" is invalid: spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0"
            ),
        );
    }
    let mut store = state.store.write().await;
    let Some(current) = store.get(rt, ns, name).cloned() else {
        return not_found(rt, name);
    };
    if let Some(want_rv) = patch
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        && Some(want_rv)
            != current
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
    {
        return status(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {}.{} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                rt.plural, rt.group
            ),
        );
    }
    let mut updated = current;
    updated["spec"]["replicas"] = json!(replicas);
    if query.get("dryRun").is_some_and(|d| d == "All") {
        return json_ok(scale_of(&updated));
    }
    let gen_ = updated
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    updated["metadata"]["generation"] = json!(gen_ + 1);
    let stored = store.put(rt, ns, name, updated);
    super::controller::reconcile(&mut store);
    json_ok(scale_of(&stored))
}

async fn logs(state: &ApiState, ns: &str, name: &str, query: &HashMap<String, String>) -> Response {
    let store = state.store.read().await;
    let pods = resources::find("", "v1", "pods").expect("pods are served");
    let Some(pod) = store.get(pods, ns, name) else {
        return not_found(pods, name);
    };
    let containers: Vec<String> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let container = match query.get("container").filter(|c| !c.is_empty()) {
        Some(c) if containers.contains(c) => c.clone(),
        Some(c) => {
            return bad_request(format!("container {c} is not valid for pod {name}"));
        }
        None if containers.len() == 1 => containers[0].clone(),
        None => {
            return bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            ));
        }
    };
    let previous = query.get("previous").is_some_and(|p| p == "true");
    let key = (
        ns.to_string(),
        name.to_string(),
        container.clone(),
        previous,
    );
    let Some(lines) = store.logs(&key) else {
        if previous {
            return bad_request(format!(
                "previous terminated container \"{container}\" in pod \"{name}\" not found"
            ));
        }
        return (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], "").into_response();
    };
    let now = Timestamp::now();
    let since = match (query.get("sinceSeconds"), query.get("sinceTime")) {
        (Some(s), _) => match s.parse::<i64>() {
            Ok(s) if s > 0 => Some(now - jiff::SignedDuration::from_secs(s)),
            _ => return bad_request("sinceSeconds must be a positive integer"),
        },
        (None, Some(t)) => match t.parse::<Timestamp>() {
            Ok(t) => Some(t),
            Err(e) => return bad_request(format!("sinceTime is not RFC3339: {e}")),
        },
        _ => None,
    };
    let timestamps = query.get("timestamps").is_some_and(|t| t == "true");
    let mut selected: Vec<_> = lines
        .iter()
        .filter(|l| since.is_none_or(|s| l.time >= s) && l.time <= now)
        .collect();
    if let Some(tail) = query.get("tailLines") {
        match tail.parse::<usize>() {
            Ok(t) => {
                let skip = selected.len().saturating_sub(t);
                selected.drain(..skip);
            }
            Err(_) => return bad_request("tailLines must be a non-negative integer"),
        }
    }
    let mut text = String::new();
    for l in selected {
        if timestamps {
            text.push_str(&format!("{} ", l.time));
        }
        text.push_str(&l.text);
        text.push('\n');
    }
    if let Some(limit) = query.get("limitBytes") {
        match limit.parse::<usize>() {
            Ok(n) if n > 0 => {
                if text.len() > n {
                    let mut cut = n;
                    while !text.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    text.truncate(cut);
                }
            }
            _ => return bad_request("limitBytes must be a positive integer"),
        }
    }
    let mut resp = Response::new(Body::from(text));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}
