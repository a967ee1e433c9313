//! kubectl's table view: `kubectl get` asks for
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io` and prints the columns the API
//! server chose. The sandbox answers with the columns a real API server prints for the
//! kinds its scenarios hold (pod STATUS is the same kubectl-style status the tools report);
//! other kinds get NAME and AGE.

use axum::http::{HeaderMap, header};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{Value, json};

use super::resources::ResourceType;
use crate::tools::get_node_status::node_info;
use crate::tools::get_pod_status::pod_info;

/// Whether the client asked for a `meta.k8s.io` Table.
pub fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|part| {
            let params: Vec<&str> = part.split(';').map(str::trim).collect();
            params.contains(&"as=Table") && params.contains(&"g=meta.k8s.io")
        })
}

/// A Table of `objects` of type `rt`.
pub fn table(rt: &ResourceType, objects: &[Value], resource_version: &str) -> Value {
    let columns: Vec<(&str, &str, u8)> = match rt.plural {
        "pods" => vec![
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Status", "string", 0),
            ("Restarts", "string", 0),
            ("Age", "string", 0),
            ("IP", "string", 1),
            ("Node", "string", 1),
        ],
        "deployments" => vec![
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            ("Age", "string", 0),
        ],
        "replicasets" => vec![
            ("Name", "string", 0),
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            ("Age", "string", 0),
        ],
        "statefulsets" => vec![
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Age", "string", 0),
        ],
        "nodes" => vec![
            ("Name", "string", 0),
            ("Status", "string", 0),
            ("Roles", "string", 0),
            ("Age", "string", 0),
            ("Version", "string", 0),
        ],
        "events" => vec![
            ("Last Seen", "string", 0),
            ("Type", "string", 0),
            ("Reason", "string", 0),
            ("Object", "string", 0),
            ("Message", "string", 0),
        ],
        "horizontalpodautoscalers" => vec![
            ("Name", "string", 0),
            ("Reference", "string", 0),
            ("MinPods", "string", 0),
            ("MaxPods", "integer", 0),
            ("Replicas", "integer", 0),
            ("Age", "string", 0),
        ],
        _ => vec![("Name", "string", 0), ("Age", "string", 0)],
    };
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            json!({
                "cells": cells(rt, o),
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": o.get("metadata").cloned().unwrap_or_else(|| json!({})),
                },
            })
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": columns.iter().map(|(name, kind, priority)| json!({
            "name": name, "type": kind, "format": if *name == "Name" { "name" } else { "" },
            "description": "", "priority": priority,
        })).collect::<Vec<_>>(),
        "rows": rows,
    })
}

fn cells(rt: &ResourceType, o: &Value) -> Vec<Value> {
    let s = |p: &str| {
        o.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let n = |p: &str| o.pointer(p).and_then(Value::as_i64).unwrap_or(0);
    let name = s("/metadata/name");
    let age = age_of(o.pointer("/metadata/creationTimestamp"));
    match rt.plural {
        "pods" => match serde_json::from_value::<Pod>(o.clone()) {
            Ok(p) => {
                let i = pod_info(&p);
                let ip = s("/status/podIP");
                let node = i.node.clone().unwrap_or_else(|| "<none>".into());
                vec![
                    json!(name),
                    json!(i.ready),
                    json!(i.status),
                    json!(i.restarts.to_string()),
                    json!(age),
                    json!(if ip.is_empty() { "<none>".into() } else { ip }),
                    json!(node),
                ]
            }
            Err(_) => vec![
                json!(name),
                json!(""),
                json!("Unknown"),
                json!("0"),
                json!(age),
                json!("<none>"),
                json!("<none>"),
            ],
        },
        "deployments" => vec![
            json!(name),
            json!(format!(
                "{}/{}",
                n("/status/readyReplicas"),
                n("/spec/replicas")
            )),
            json!(n("/status/updatedReplicas")),
            json!(n("/status/availableReplicas")),
            json!(age),
        ],
        "replicasets" => vec![
            json!(name),
            json!(n("/spec/replicas")),
            json!(n("/status/replicas")),
            json!(n("/status/readyReplicas")),
            json!(age),
        ],
        "statefulsets" => vec![
            json!(name),
            json!(format!(
                "{}/{}",
                n("/status/readyReplicas"),
                n("/spec/replicas")
            )),
            json!(age),
        ],
        "nodes" => match serde_json::from_value::<Node>(o.clone()) {
            Ok(node) => {
                let i = node_info(&node);
                let mut status = if i.ready { "Ready" } else { "NotReady" }.to_string();
                if i.cordoned {
                    status.push_str(",SchedulingDisabled");
                }
                let roles: Vec<String> = node
                    .metadata
                    .labels
                    .iter()
                    .flatten()
                    .filter_map(|(k, _)| {
                        k.strip_prefix("node-role.kubernetes.io/").map(String::from)
                    })
                    .collect();
                vec![
                    json!(name),
                    json!(status),
                    json!(if roles.is_empty() {
                        "<none>".to_string()
                    } else {
                        roles.join(",")
                    }),
                    json!(age),
                    json!(i.kubelet_version.unwrap_or_default()),
                ]
            }
            Err(_) => vec![
                json!(name),
                json!("Unknown"),
                json!("<none>"),
                json!(age),
                json!(""),
            ],
        },
        "events" => {
            let last = o
                .pointer("/lastTimestamp")
                .or_else(|| o.pointer("/eventTime"))
                .or_else(|| o.pointer("/metadata/creationTimestamp"));
            vec![
                json!(age_of(last)),
                json!(s("/type")),
                json!(s("/reason")),
                json!(format!(
                    "{}/{}",
                    s("/involvedObject/kind").to_lowercase(),
                    s("/involvedObject/name")
                )),
                json!(s("/message")),
            ]
        }
        "horizontalpodautoscalers" => vec![
            json!(name),
            json!(format!(
                "{}/{}",
                s("/spec/scaleTargetRef/kind"),
                s("/spec/scaleTargetRef/name")
            )),
            json!(
                o.pointer("/spec/minReplicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(1)
                    .to_string()
            ),
            json!(n("/spec/maxReplicas")),
            json!(n("/status/currentReplicas")),
            json!(age),
        ],
        _ => vec![json!(name), json!(age)],
    }
}

/// kubectl's AGE of an RFC 3339 time (`<unknown>` without one).
fn age_of(t: Option<&Value>) -> String {
    match t
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<Timestamp>().ok())
    {
        Some(t) => human_duration(Timestamp::now().as_second() - t.as_second()),
        None => "<unknown>".into(),
    }
}

/// Kubernetes' `duration.HumanDuration`, which kubectl's AGE column uses: precise when
/// recent, coarser with age (`90s`, `5m30s`, `3h15m`, `3d4h`, `60d`, `2y70d`).
fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let secs = secs.max(0);
    let (minutes, hours) = (secs / 60, secs / 3_600);
    let with = |big: i64, unit: &str, small: i64, small_unit: &str| {
        if small == 0 {
            format!("{big}{unit}")
        } else {
            format!("{big}{unit}{small}{small_unit}")
        }
    };
    if secs < 120 {
        format!("{secs}s")
    } else if minutes < 10 {
        with(minutes, "m", secs % 60, "s")
    } else if minutes < 180 {
        format!("{minutes}m")
    } else if hours < 8 {
        with(hours, "h", minutes % 60, "m")
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        with(hours / 24, "d", hours % 24, "h")
    } else if hours < 24 * 365 * 2 {
        format!("{}d", hours / 24)
    } else if hours < 24 * 365 * 8 {
        with(hours / 24 / 365, "y", (hours / 24) % 365, "d")
    } else {
        format!("{}y", hours / 24 / 365)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::resources;

    #[test]
    fn the_table_accept_header_is_recognised() {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT,
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
                .parse()
                .unwrap(),
        );
        assert!(wants_table(&h));
        h.insert(header::ACCEPT, "application/json".parse().unwrap());
        assert!(!wants_table(&h));
    }

    #[test]
    fn pods_show_kubectl_status_and_restarts() {
        let rt = resources::find("", "v1", "pods").unwrap();
        let pod = json!({
            "metadata": {"name": "payment-api-1", "namespace": "payments", "creationTimestamp": "2020-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "app"}], "nodeName": "ip-10-0-1-11"},
            "status": {"phase": "Running", "podIP": "10.0.1.5", "containerStatuses": [{
                "name": "app", "ready": false, "restartCount": 7, "image": "x", "imageID": "",
                "state": {"waiting": {"reason": "CrashLoopBackOff"}}
            }]}
        });
        let t = table(rt, &[pod], "42");
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["columnDefinitions"][2]["name"], "Status");
        let cells = &t["rows"][0]["cells"];
        assert_eq!(cells[0], "payment-api-1");
        assert_eq!(cells[1], "0/1");
        assert_eq!(cells[2], "CrashLoopBackOff");
        assert_eq!(cells[3], "7");
        assert!(cells[4].as_str().unwrap().contains('y'), "{}", cells[4]);
        assert_eq!(cells[5], "10.0.1.5");
        assert_eq!(t["rows"][0]["object"]["metadata"]["namespace"], "payments");
    }

    #[test]
    fn ages_read_like_kubectl() {
        for (secs, want) in [
            (-5, "<invalid>"),
            (-1, "0s"),
            (90, "90s"),
            (330, "5m30s"),
            (300, "5m"),
            (2_700, "45m"),
            (11_700, "3h15m"),
            (30 * 3_600, "30h"),
            (3 * 86_400 + 4 * 3_600, "3d4h"),
            (3 * 86_400, "3d"),
            (60 * 86_400, "60d"),
            (800 * 86_400, "2y70d"),
            (9 * 365 * 86_400, "9y"),
        ] {
            assert_eq!(human_duration(secs), want, "{secs} s");
        }
    }
}
