//! `drain_node`: cordon a node, then evict its pods through the Eviction API so that
//! PodDisruptionBudgets are honoured (DaemonSet and mirror pods stay, as with
//! `kubectl drain --ignore-daemonsets`).

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, EvictParams, ListParams, PostParams};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::common::check_name;
use super::cordon_node::{refuse_when_scoped, set_unschedulable};
use super::{Tool, ToolContext};
use crate::cluster::facts::{mounts_pvc, node_facts};
use crate::cluster::{Cluster, Writer};
use crate::error::ToolError;
use crate::guard::{Change, Mutation, MutationReport, Plan};
use crate::policy::{Facts, Target};

/// Arguments of `drain_node`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Node name.
    pub name: String,
    /// Evaluate the policies and send server-side dry runs; change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// The `drain_node` tool.
pub struct DrainNode;

struct Drain(Args);

impl Mutation for Drain {
    fn action(&self) -> &'static str {
        "drain_node"
    }
    fn namespace(&self) -> Option<&str> {
        None
    }
    fn dry_run(&self) -> bool {
        self.0.dry_run
    }

    async fn plan(&self, cluster: &Cluster) -> Result<Plan, ToolError> {
        let name = &self.0.name;
        let (node, node_f, pods) = node_facts(cluster, name).await?;
        let listed: Vec<Value> = pods
            .iter()
            .map(|p| json!({"namespace": p.metadata.namespace, "name": p.metadata.name, "mounts_pvc": mounts_pvc(p)}))
            .collect();
        let names: Vec<String> = pods
            .iter()
            .map(|p| {
                format!(
                    "{}/{}",
                    p.metadata.namespace.clone().unwrap_or_default(),
                    p.metadata.name.clone().unwrap_or_default()
                )
            })
            .collect();
        let summary = format!(
            "cordon node {name} and evict {} pod(s){}",
            names.len(),
            if node_f.hosts_pvc_pods {
                ", some with PersistentVolumeClaims"
            } else {
                ""
            }
        );
        let mut facts = Facts::new(self.action(), "", &[]);
        facts.node = Some(node_f);
        Ok(Plan {
            target: Target {
                kind: "Node".into(),
                namespace: String::new(),
                name: name.clone(),
                labels: node.metadata.labels.clone().unwrap_or_default(),
            },
            changes: vec![
                Change {
                    field: "spec.unschedulable".into(),
                    before: json!(
                        node.spec
                            .as_ref()
                            .and_then(|s| s.unschedulable)
                            .unwrap_or(false)
                    ),
                    after: json!(true),
                },
                Change {
                    field: "pods".into(),
                    before: json!(names),
                    after: json!("evicted (rescheduled by their controllers elsewhere)"),
                },
            ],
            facts,
            summary,
            resource_version: node.metadata.resource_version.clone(),
            state: json!({"pods": listed}),
        })
    }

    async fn apply(&self, writer: &Writer, plan: &Plan, dry_run: bool) -> Result<Value, ToolError> {
        let name = &self.0.name;
        let cordon =
            set_unschedulable(writer, name, plan.resource_version.as_ref(), true, dry_run).await?;
        let mut evicted = Vec::new();
        let mut not_evicted = Vec::new();
        for p in plan.state["pods"].as_array().into_iter().flatten() {
            let (Some(ns), Some(pod)) = (p["namespace"].as_str(), p["name"].as_str()) else {
                continue;
            };
            let ep = EvictParams {
                delete_options: Some(DeleteParams {
                    dry_run,
                    ..Default::default()
                }),
                post_options: PostParams {
                    dry_run,
                    ..Default::default()
                },
            };
            match writer.evictions(ns).evict(pod, &ep).await {
                Ok(_) => evicted.push(format!("{ns}/{pod}")),
                Err(kube::Error::Api(s)) if s.code == 429 => not_evicted.push(json!({
                    "pod": format!("{ns}/{pod}"),
                    "reason": "a PodDisruptionBudget does not allow this disruption now",
                    "detail": s.message,
                })),
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    evicted.push(format!("{ns}/{pod} (already gone)"))
                }
                Err(e) => {
                    not_evicted.push(json!({"pod": format!("{ns}/{pod}"), "reason": e.to_string()}))
                }
            }
        }
        Ok(
            json!({"cordon": cordon, "evicted": evicted, "not_evicted": not_evicted, "dry_run": dry_run}),
        )
    }

    async fn verify(&self, cluster: &Cluster, _plan: &Plan) -> Result<Value, ToolError> {
        let name = &self.0.name;
        let node = cluster
            .cluster_api::<Node>()
            .get(name)
            .await
            .map_err(|e| ToolError::from_kube("reading the node back", e))?;
        let remaining: Vec<String> = cluster
            .api::<Pod>(None)
            .list(&ListParams::default().fields(&format!("spec.nodeName={name}")))
            .await
            .map_err(|e| ToolError::from_kube("listing pods left on the node", e))?
            .items
            .into_iter()
            .map(|p| {
                format!(
                    "{}/{}",
                    p.metadata.namespace.unwrap_or_default(),
                    p.metadata.name.unwrap_or_default()
                )
            })
            .collect();
        Ok(
            json!({"unschedulable": node.spec.and_then(|s| s.unschedulable).unwrap_or(false), "pods_left": remaining}),
        )
    }
}

impl Tool for DrainNode {
    const NAME: &'static str = "drain_node";
    const TITLE: &'static str = "Drain a node";
    const DESCRIPTION: &'static str = "Cordon a node, then evict its pods with the Eviction API so PodDisruptionBudgets are honoured; DaemonSet and mirror pods stay. Reports the pods that could not be evicted and why. Runs on its own for a node under MemoryPressure or DiskPressure whose pods have no PersistentVolumeClaims; otherwise a human decides. dry_run=true changes nothing.";
    const READ_ONLY: bool = false;
    const DESTRUCTIVE: bool = true;
    const IDEMPOTENT: bool = true;
    type Args = Args;
    type Output = MutationReport;

    async fn run(ctx: ToolContext, args: Args) -> Result<MutationReport, ToolError> {
        refuse_when_scoped(&ctx, Self::NAME)?;
        check_name("name", &args.name)?;
        ctx.guard()?
            .run(&ctx.cluster, &ctx.caller, &Drain(args))
            .await
    }

    fn summary(out: &MutationReport) -> String {
        let mut s = out.text();
        if let Some(failed) = out
            .result
            .as_ref()
            .and_then(|r| r["not_evicted"].as_array())
            .filter(|f| !f.is_empty())
        {
            s.push_str(&format!("; {} pod(s) could not be evicted", failed.len()));
        }
        s
    }
}
