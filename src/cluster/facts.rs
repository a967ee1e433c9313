//! Facts for the policies, read from the live cluster: never taken from an agent's words.

use k8s_openapi::api::apps::v1::{DaemonSet, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::ListParams;

use super::Cluster;
use crate::error::ToolError;
use crate::policy::facts::{AffectedFacts, NodeFacts, PodFacts};

/// Whether a pod mounts a PersistentVolumeClaim.
pub fn mounts_pvc(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .is_some_and(|vs| vs.iter().any(|v| v.persistent_volume_claim.is_some()))
}

/// Whether a pod's Ready condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The controlling owner of an object, as (kind, name).
pub fn controller_of(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<(String, String)> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| (o.kind.clone(), o.name.clone()))
}

/// Facts about a pod, and the share of its workload that deleting it takes down (a pod
/// that is not ready serves nothing, so it takes nothing down).
pub async fn pod_facts(
    cluster: &Cluster,
    pod: &Pod,
) -> Result<(PodFacts, AffectedFacts), ToolError> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let containers = status.container_statuses.unwrap_or_default();
    let waiting_reason = containers
        .iter()
        .find_map(|c| {
            c.state
                .as_ref()
                .and_then(|s| s.waiting.as_ref())
                .and_then(|w| w.reason.clone())
        })
        .unwrap_or_default();
    let restart_count = containers
        .iter()
        .map(|c| i64::from(c.restart_count))
        .max()
        .unwrap_or(0);
    let owner = controller_of(&pod.metadata);
    let total = match &owner {
        Some((kind, name)) if kind == "ReplicaSet" => cluster
            .api::<ReplicaSet>(Some(&ns))
            .get_opt(name)
            .await
            .map_err(|e| ToolError::from_kube(format!("reading the pod's ReplicaSet {name}"), e))?
            .and_then(|r| r.spec.and_then(|s| s.replicas))
            .map(i64::from),
        Some((kind, name)) if kind == "StatefulSet" => cluster
            .api::<StatefulSet>(Some(&ns))
            .get_opt(name)
            .await
            .map_err(|e| ToolError::from_kube(format!("reading the pod's StatefulSet {name}"), e))?
            .and_then(|r| r.spec.and_then(|s| s.replicas))
            .map(i64::from),
        Some((kind, name)) if kind == "DaemonSet" => cluster
            .api::<DaemonSet>(Some(&ns))
            .get_opt(name)
            .await
            .map_err(|e| ToolError::from_kube(format!("reading the pod's DaemonSet {name}"), e))?
            .and_then(|d| d.status.map(|s| i64::from(s.desired_number_scheduled))),
        _ => None,
    }
    .unwrap_or(1)
    .max(1);
    let facts = PodFacts {
        phase: status.phase.unwrap_or_default(),
        waiting_reason,
        restart_count,
        mounts_pvc: mounts_pvc(pod),
        owner_kind: owner.map(|(k, _)| k).unwrap_or_default(),
    };
    Ok((
        facts,
        AffectedFacts {
            pods: i64::from(is_ready(pod)),
            total,
        },
    ))
}

/// A node, its facts, and the pods a drain would evict (DaemonSet, mirror and finished pods
/// are left alone, as `kubectl drain --ignore-daemonsets` does).
pub async fn node_facts(
    cluster: &Cluster,
    name: &str,
) -> Result<(Node, NodeFacts, Vec<Pod>), ToolError> {
    let node = cluster
        .cluster_api::<Node>()
        .get_opt(name)
        .await
        .map_err(|e| ToolError::from_kube(format!("reading node {name}"), e))?
        .ok_or_else(|| {
            ToolError::NotFound(format!("node {name:?} does not exist; see get_node_status"))
        })?;
    let cond = |t: &str| {
        node.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == t))
            .is_some_and(|c| c.status == "True")
    };
    let pods = cluster
        .api::<Pod>(None)
        .list(&ListParams::default().fields(&format!("spec.nodeName={name}")))
        .await
        .map_err(|e| ToolError::from_kube(format!("listing pods on node {name}"), e))?
        .items;
    let evictable: Vec<Pod> = pods
        .into_iter()
        .filter(|p| controller_of(&p.metadata).is_none_or(|(k, _)| k != "DaemonSet"))
        .filter(|p| {
            !p.metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"))
        })
        .filter(|p| {
            !matches!(
                p.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Succeeded" | "Failed")
            )
        })
        .collect();
    let facts = NodeFacts {
        ready: cond("Ready"),
        memory_pressure: cond("MemoryPressure"),
        disk_pressure: cond("DiskPressure"),
        pid_pressure: cond("PIDPressure"),
        hosts_pvc_pods: evictable.iter().any(mounts_pvc),
        pods_to_evict: evictable.len() as i64,
    };
    Ok((node, facts, evictable))
}
