//! `get_node_status`: nodes with pressure conditions, capacity, taints and EKS/Karpenter labels.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Node;
use kube::api::ListParams;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{age, check_name};
use super::{Tool, ToolContext};
use crate::error::ToolError;

/// Arguments of `get_node_status`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// One node by name; omit for all nodes.
    #[serde(default)]
    pub name: Option<String>,
    /// Label selector, e.g. `karpenter.sh/capacity-type=spot`.
    #[serde(default)]
    pub label_selector: Option<String>,
    /// Only nodes that are not Ready, report a pressure condition, or are cordoned.
    #[serde(default)]
    pub only_problems: bool,
}

/// A node condition.
#[derive(Debug, Serialize, JsonSchema)]
pub struct NodeCondition {
    /// Ready, MemoryPressure, DiskPressure, PIDPressure, NetworkUnavailable, …
    #[serde(rename = "type")]
    pub type_: String,
    /// True, False or Unknown.
    pub status: String,
    /// Reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Last transition (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
}

/// A node taint.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Taint {
    /// Key.
    pub key: String,
    /// Value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// NoSchedule, PreferNoSchedule or NoExecute.
    pub effect: String,
}

/// One node.
#[derive(Debug, Serialize, JsonSchema)]
pub struct NodeInfo {
    /// Name.
    pub name: String,
    /// Ready condition is True.
    pub ready: bool,
    /// Conditions that are not in their healthy state (pressure True, Ready not True).
    pub problems: Vec<String>,
    /// Cordoned (spec.unschedulable).
    pub cordoned: bool,
    /// All conditions.
    pub conditions: Vec<NodeCondition>,
    /// Capacity (cpu, memory, pods, ephemeral-storage).
    pub capacity: BTreeMap<String, String>,
    /// Allocatable resources.
    pub allocatable: BTreeMap<String, String>,
    /// Taints.
    pub taints: Vec<Taint>,
    /// EC2 instance type label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    /// Capacity type: on-demand or spot (Karpenter or EKS managed node group label).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity_type: Option<String>,
    /// Karpenter NodePool or EKS node group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_pool: Option<String>,
    /// Availability zone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Kubelet version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubelet_version: Option<String>,
    /// Age.
    pub age: String,
}

/// Result of `get_node_status`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Output {
    /// Nodes, sorted by name.
    pub nodes: Vec<NodeInfo>,
}

/// The `get_node_status` tool.
pub struct GetNodeStatus;

/// Summarise one node.
pub fn node_info(n: &Node) -> NodeInfo {
    let labels = n.metadata.labels.clone().unwrap_or_default();
    let label = |keys: &[&str]| keys.iter().find_map(|k| labels.get(*k).cloned());
    let status = n.status.clone().unwrap_or_default();
    let conditions: Vec<NodeCondition> = status
        .conditions
        .unwrap_or_default()
        .into_iter()
        .map(|c| NodeCondition {
            type_: c.type_,
            status: c.status,
            reason: c.reason,
            message: c.message,
            since: c.last_transition_time.map(|t| t.0.to_string()),
        })
        .collect();
    let ready = conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    let mut problems: Vec<String> = conditions
        .iter()
        .filter(|c| {
            (c.type_ == "Ready" && c.status != "True") || (c.type_ != "Ready" && c.status == "True")
        })
        .map(|c| c.type_.clone())
        .collect();
    let cordoned = n
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false);
    if cordoned {
        problems.push("Cordoned".into());
    }
    let quantities =
        |m: Option<BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>| {
            m.unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect()
        };
    NodeInfo {
        name: n.metadata.name.clone().unwrap_or_default(),
        ready,
        problems,
        cordoned,
        conditions,
        capacity: quantities(status.capacity),
        allocatable: quantities(status.allocatable),
        taints: n
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|t| Taint {
                key: t.key,
                value: t.value,
                effect: t.effect,
            })
            .collect(),
        instance_type: label(&[
            "node.kubernetes.io/instance-type",
            "beta.kubernetes.io/instance-type",
        ]),
        capacity_type: label(&[
            "karpenter.sh/capacity-type",
            "eks.amazonaws.com/capacityType",
        ])
        .map(|c| c.to_ascii_lowercase().replace('_', "-")),
        node_pool: label(&["karpenter.sh/nodepool", "eks.amazonaws.com/nodegroup"]),
        zone: label(&["topology.kubernetes.io/zone"]),
        kubelet_version: status.node_info.map(|i| i.kubelet_version),
        age: n
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| age(&t.0))
            .unwrap_or_default(),
    }
}

impl Tool for GetNodeStatus {
    const NAME: &'static str = "get_node_status";
    const TITLE: &'static str = "Get node status";
    const DESCRIPTION: &'static str = "Nodes with their conditions (Ready, MemoryPressure, DiskPressure, PIDPressure) and a list of problems, capacity and allocatable resources, taints, cordon state, instance type, capacity type (on-demand/spot), Karpenter NodePool or node group, zone and age.";
    const READ_ONLY: bool = true;
    type Args = Args;
    type Output = Output;

    async fn run(ctx: ToolContext, args: Args) -> Result<Output, ToolError> {
        let api = ctx.cluster.cluster_api::<Node>();
        let nodes = if let Some(name) = &args.name {
            check_name("name", name)?;
            match api
                .get_opt(name)
                .await
                .map_err(|e| ToolError::from_kube(format!("reading node {name}"), e))?
            {
                Some(n) => vec![n],
                None => {
                    let known: Vec<String> = api
                        .list(&ListParams::default())
                        .await
                        .map(|l| {
                            l.items
                                .into_iter()
                                .filter_map(|n| n.metadata.name)
                                .collect()
                        })
                        .unwrap_or_default();
                    return Err(ToolError::NotFound(format!(
                        "node {name:?} does not exist; nodes: {}",
                        known.join(", ")
                    )));
                }
            }
        } else {
            let mut lp = ListParams::default();
            if let Some(sel) = &args.label_selector {
                lp = lp.labels(sel);
            }
            api.list(&lp)
                .await
                .map_err(|e| match e {
                    kube::Error::Api(s) if s.code == 400 => {
                        ToolError::invalid(format!("label_selector is not valid: {}", s.message))
                    }
                    e => ToolError::from_kube("listing nodes", e),
                })?
                .items
        };
        let mut out: Vec<NodeInfo> = nodes.iter().map(node_info).collect();
        if args.only_problems {
            out.retain(|n| !n.problems.is_empty());
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Output { nodes: out })
    }

    const UNTRUSTED: &'static [&'static str] = &["/nodes/*/conditions/*/message"];

    fn summary(out: &Output) -> String {
        let bad = out.nodes.iter().filter(|n| !n.problems.is_empty()).count();
        let mut s = format!("{} node(s), {bad} with problems.", out.nodes.len());
        for n in out.nodes.iter().filter(|n| !n.problems.is_empty()) {
            let problems: Vec<&str> = n
                .problems
                .iter()
                .map(|p| super::untrusted::word(p))
                .collect();
            s.push_str(&format!("\n{}: {}", n.name, problems.join(", ")));
        }
        s
    }
}
