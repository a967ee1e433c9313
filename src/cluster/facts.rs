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

/// A pod's controller as the cluster has it now.
#[derive(Debug, Clone, PartialEq)]
pub struct Owner {
    /// Kind named by the pod's controller reference ("" for a bare pod).
    pub kind: String,
    /// Its name.
    pub name: String,
    /// The controller exists (same uid as the reference) and wants at least one pod, so it
    /// recreates a deleted or evicted pod.
    pub recreates: bool,
    /// Ready replicas of the controller (1 for a bare pod or one whose controller cannot
    /// be read).
    pub ready: i64,
    /// Replicas the controller wants (1 when unknown).
    pub desired: i64,
}

/// Read a pod's controller, checking that the object the reference names still exists
/// (a pod whose controller is gone is never recreated).
pub async fn owner_of(cluster: &Cluster, pod: &Pod) -> Result<Owner, ToolError> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let Some(r) = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
    else {
        return Ok(Owner {
            kind: String::new(),
            name: String::new(),
            recreates: false,
            ready: 1,
            desired: 1,
        });
    };
    let what = || format!("reading the pod's {} {}", r.kind, r.name);
    let same = |uid: &Option<String>| uid.as_deref() == Some(r.uid.as_str());
    // (exists with the referenced uid, desired, ready)
    let found: Option<(bool, i64, i64)> = match r.kind.as_str() {
        "ReplicaSet" => cluster
            .api::<ReplicaSet>(Some(&ns))
            .get_opt(&r.name)
            .await
            .map_err(|e| ToolError::from_kube(what(), e))?
            .map(|o| {
                (
                    same(&o.metadata.uid),
                    o.spec.and_then(|s| s.replicas).map_or(1, i64::from),
                    o.status.and_then(|s| s.ready_replicas).map_or(0, i64::from),
                )
            }),
        "StatefulSet" => cluster
            .api::<StatefulSet>(Some(&ns))
            .get_opt(&r.name)
            .await
            .map_err(|e| ToolError::from_kube(what(), e))?
            .map(|o| {
                (
                    same(&o.metadata.uid),
                    o.spec.and_then(|s| s.replicas).map_or(1, i64::from),
                    o.status.and_then(|s| s.ready_replicas).map_or(0, i64::from),
                )
            }),
        "DaemonSet" => cluster
            .api::<DaemonSet>(Some(&ns))
            .get_opt(&r.name)
            .await
            .map_err(|e| ToolError::from_kube(what(), e))?
            .map(|o| {
                let st = o.status.unwrap_or_default();
                (
                    same(&o.metadata.uid),
                    i64::from(st.desired_number_scheduled),
                    i64::from(st.number_ready),
                )
            }),
        // a controller this server cannot read (a Job, a custom controller): whether it
        // recreates the pod is not known, so it is not assumed
        _ => Some((false, 1, 1)),
    };
    let (exists, desired, ready) = found.unwrap_or((false, 1, 0));
    Ok(Owner {
        kind: r.kind.clone(),
        name: r.name.clone(),
        recreates: exists && desired >= 1,
        ready: ready.max(1),
        desired: desired.max(1),
    })
}

/// Facts about a pod, its controller, and the share of its workload that deleting it takes
/// down (a pod that is not ready serves nothing, so it takes nothing down).
pub async fn pod_facts(
    cluster: &Cluster,
    pod: &Pod,
) -> Result<(PodFacts, AffectedFacts, Owner), ToolError> {
    let status = pod.status.clone().unwrap_or_default();
    let containers: Vec<_> = status
        .init_container_statuses
        .unwrap_or_default()
        .into_iter()
        .chain(status.container_statuses.unwrap_or_default())
        .collect();
    let waiting = |c: &k8s_openapi::api::core::v1::ContainerStatus| {
        c.state
            .as_ref()
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.reason.clone())
    };
    // The reason and the restart count come from the same container: a crash-looping
    // container's own restarts, not a healthy sidecar's.
    let (waiting_reason, restart_count) = containers
        .iter()
        .filter_map(|c| waiting(c).map(|w| (w, i64::from(c.restart_count))))
        .max_by_key(|(w, n)| (w == "CrashLoopBackOff", *n))
        .unwrap_or_else(|| {
            let most = containers
                .iter()
                .map(|c| i64::from(c.restart_count))
                .max()
                .unwrap_or(0);
            (String::new(), most)
        });
    let owner = owner_of(cluster, pod).await?;
    let facts = PodFacts {
        phase: status.phase.unwrap_or_default(),
        waiting_reason,
        restart_count,
        mounts_pvc: mounts_pvc(pod),
        // a controller that no longer exists is no owner: nothing recreates the pod
        owner_kind: if owner.recreates {
            owner.kind.clone()
        } else {
            String::new()
        },
    };
    let affected = AffectedFacts {
        pods: i64::from(is_ready(pod)),
        total: owner.desired,
    };
    Ok((facts, affected, owner))
}

/// The worst a set of deleted or evicted pods does, per workload, for the policies.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Disruption {
    /// Namespaces of the pods.
    pub namespaces: Vec<String>,
    /// Kinds of their controllers.
    pub workload_kinds: Vec<String>,
    /// Pods no existing controller would recreate.
    pub unrecreated: i64,
    /// The workload losing the largest share of its ready replicas: ready pods removed out
    /// of its ready total.
    pub worst: Option<AffectedFacts>,
    /// Per workload: "Kind ns/name: k of n ready", for plans and approvals.
    pub per_workload: Vec<String>,
}

/// Gather, per workload, what removing `pods` takes away.
pub async fn disruption(cluster: &Cluster, pods: &[Pod]) -> Result<Disruption, ToolError> {
    use std::collections::BTreeMap;
    let mut d = Disruption::default();
    // (namespace, kind, name) → (ready pods removed, ready total)
    let mut groups: BTreeMap<(String, String, String), (i64, i64)> = BTreeMap::new();
    // one read per controller, not per pod: a node holds many pods of few controllers
    let mut owners: BTreeMap<(String, String), Owner> = BTreeMap::new();
    for (i, pod) in pods.iter().enumerate() {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let key = pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
            .map(|o| (ns.clone(), o.uid.clone()));
        let owner = match key.as_ref().and_then(|k| owners.get(k)) {
            Some(o) => o.clone(),
            None => {
                let o = owner_of(cluster, pod).await?;
                if let Some(k) = key {
                    owners.insert(k, o.clone());
                }
                o
            }
        };
        if !owner.recreates {
            d.unrecreated += 1;
        }
        if !owner.kind.is_empty() {
            d.workload_kinds.push(owner.kind.clone());
        }
        d.namespaces.push(ns.clone());
        // a bare pod is a workload of its own
        let name = if owner.kind.is_empty() {
            format!("pod#{i}:{}", pod.metadata.name.clone().unwrap_or_default())
        } else {
            owner.name.clone()
        };
        let g = groups
            .entry((ns, owner.kind.clone(), name))
            .or_insert((0, owner.ready));
        g.0 += i64::from(is_ready(pod));
    }
    for ((ns, kind, name), (pods, total)) in &groups {
        let kind = if kind.is_empty() { "Pod" } else { kind };
        d.per_workload
            .push(format!("{kind} {ns}/{name}: {pods} of {total} ready"));
        let total = (*total).max(*pods).max(1);
        let worse = d
            .worst
            .as_ref()
            .is_none_or(|w| pods * w.total > w.pods * total);
        if worse {
            d.worst = Some(AffectedFacts { pods: *pods, total });
        }
    }
    d.namespaces.sort();
    d.namespaces.dedup();
    d.workload_kinds.sort();
    d.workload_kinds.dedup();
    Ok(d)
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
