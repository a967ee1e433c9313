//! The facts a policy decision is made on, as Cedar context, and the object acted on.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The verbs agents are usually given, plus what node drain needs.
pub const DEFAULT_ALLOWED_VERBS: &[&str] = &[
    "get", "describe", "logs", "top", "rollout", "scale", "delete", "cordon", "drain",
];

/// Default ceiling on replicas any scaling action may request.
pub const DEFAULT_REPLICA_CEILING: i64 = 100;

/// The kubectl verb an action amounts to, which the verb allow-list is checked against.
/// `adjust_hpa` counts as `scale`: it changes scaling bounds, and kubectl has no verb of its own
/// for editing an HPA short of `patch`.
pub fn verb_of(action: &str) -> &'static str {
    match action {
        "scale_deployment" | "adjust_hpa" | "reserve_capacity" => "scale",
        "rollback" | "restart_workload" => "rollout",
        "restart_pod" => "delete",
        "drain_node" => "drain",
        "cordon_node" => "cordon",
        "uncordon_node" => "uncordon",
        "get" => "get",
        _ => "patch",
    }
}

/// Replica counts of a scaling action.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReplicaFacts {
    /// Replicas now.
    pub current: i64,
    /// Replicas asked for.
    pub requested: i64,
    /// Configured ceiling.
    pub ceiling: i64,
    /// Lowest replica count of the target over the last hour, now included (from the
    /// change ledger kept on the object): bounds a staircase of small steps up.
    pub low_last_hour: i64,
    /// Highest replica count of the target over the last hour, now included: bounds a
    /// staircase of small steps down.
    pub high_last_hour: i64,
}

impl ReplicaFacts {
    /// Facts of a change from `current` to `requested` with no earlier change in the window.
    pub fn new(current: i64, requested: i64) -> Self {
        Self {
            current,
            requested,
            ceiling: 0,
            low_last_hour: current,
            high_last_hour: current,
        }
    }
}

/// Serving replicas an action takes down, out of the workload's total.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AffectedFacts {
    /// Ready pods removed, deleted or evicted.
    pub pods: i64,
    /// The workload's replicas.
    pub total: i64,
}

/// Facts about a pod.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PodFacts {
    /// Pod phase.
    pub phase: String,
    /// Waiting reason of a container ("" when none waits).
    pub waiting_reason: String,
    /// Restarts of the waiting container the waiting reason is taken from (a crash-looping
    /// container's own count, not a sidecar's); the highest count when none waits.
    pub restart_count: i64,
    /// Whether the pod mounts a PersistentVolumeClaim.
    pub mounts_pvc: bool,
    /// Kind of the controlling owner ("" for a bare pod).
    pub owner_kind: String,
}

/// Facts about a node.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NodeFacts {
    /// Ready condition is True.
    pub ready: bool,
    /// MemoryPressure is True.
    pub memory_pressure: bool,
    /// DiskPressure is True.
    pub disk_pressure: bool,
    /// PIDPressure is True.
    pub pid_pressure: bool,
    /// A pod that would be evicted mounts a PersistentVolumeClaim.
    pub hosts_pvc_pods: bool,
    /// Pods that would be evicted.
    pub pods_to_evict: i64,
}

/// An HPA bounds change.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HpaFacts {
    /// minReplicas now.
    pub current_min: i64,
    /// maxReplicas now.
    pub current_max: i64,
    /// minReplicas asked for.
    pub requested_min: i64,
    /// maxReplicas asked for.
    pub requested_max: i64,
    /// Configured replica ceiling.
    pub ceiling: i64,
    /// Kind of the workload the HPA scales (Deployment, StatefulSet, …).
    pub target_kind: String,
}

/// CPU and memory a capacity reservation holds, in total over all its placeholder pods.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReservationFacts {
    /// Millicores reserved now.
    pub cpu_millis_before: i64,
    /// Millicores reserved after the change.
    pub cpu_millis_after: i64,
    /// MiB of memory reserved now.
    pub memory_mib_before: i64,
    /// MiB of memory reserved after the change.
    pub memory_mib_after: i64,
}

/// A rollback.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RolloutFacts {
    /// Current revision.
    pub current_revision: i64,
    /// Previous revision (0 when there is none).
    pub previous_revision: i64,
    /// Revision asked for.
    pub target_revision: i64,
    /// Rollbacks of this Deployment in the last hour, before this one.
    pub rollbacks_last_hour: i64,
}

/// Everything the policies may look at, gathered by the server (never the agent's words).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Facts {
    /// kubectl verb of the action.
    pub verb: String,
    /// The configured verb allow-list.
    pub allowed_verbs: Vec<String>,
    /// Namespace of the target ("" for cluster-scoped objects).
    pub namespace: String,
    /// Whether the call is a dry run.
    pub dry_run: bool,
    /// Mutations of the same target in the last hour, before this one.
    pub mutations_last_hour: i64,
    /// Every namespace the action changes something in: the target's, and that of every pod
    /// it deletes or evicts.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Kinds of the workloads the action changes or disrupts: the target's own kind, an
    /// HPA's target, the controllers of the pods it deletes or evicts.
    #[serde(default)]
    pub workload_kinds: Vec<String>,
    /// Pods the action deletes or evicts that no existing controller would recreate.
    #[serde(default)]
    pub unrecreated_pods: i64,
    /// Scaling facts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<ReplicaFacts>,
    /// Share of serving replicas affected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affected: Option<AffectedFacts>,
    /// Pod facts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodFacts>,
    /// Node facts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeFacts>,
    /// HPA facts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hpa: Option<HpaFacts>,
    /// Rollback facts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutFacts>,
    /// Capacity reservation facts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation: Option<ReservationFacts>,
}

impl Facts {
    /// Facts with the defaults of the configuration for `action` in `namespace`.
    pub fn new(action: &str, namespace: &str, allowed_verbs: &[String]) -> Self {
        Self {
            verb: verb_of(action).to_string(),
            allowed_verbs: allowed_verbs.to_vec(),
            namespace: namespace.to_string(),
            dry_run: false,
            mutations_last_hour: 0,
            namespaces: Vec::new(),
            workload_kinds: Vec::new(),
            unrecreated_pods: 0,
            replicas: None,
            affected: None,
            pod: None,
            node: None,
            hpa: None,
            rollout: None,
            reservation: None,
        }
    }
}

/// The Kubernetes object an action is on.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Kind (Deployment, Pod, Node, …).
    pub kind: String,
    /// Namespace ("" for cluster-scoped objects).
    #[serde(default)]
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}
