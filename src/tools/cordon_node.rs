//! `cordon_node`: mark a node unschedulable (also the mutation behind `uncordon_node`).

use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::common::check_name;
use super::{Tool, ToolContext};
use crate::cluster::facts::node_facts;
use crate::cluster::{Cluster, Writer};
use crate::error::ToolError;
use crate::guard::{Change, Mutation, MutationReport, Plan, Scope};
use crate::policy::{Facts, Target};

/// Arguments of `cordon_node` and `uncordon_node`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Node name.
    pub name: String,
    /// Evaluate the policies and send a server-side dry run; change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// Set `spec.unschedulable` of a node.
pub(crate) struct SetSchedulable {
    pub(crate) args: Args,
    pub(crate) unschedulable: bool,
}

impl SetSchedulable {
    /// The whole of `cordon_node` / `uncordon_node`: check the name, then plan → decide →
    /// apply through the guard (which refuses a node on a namespace-scoped server).
    pub(crate) async fn run(self, ctx: &ToolContext) -> Result<MutationReport, ToolError> {
        check_name("name", &self.args.name)?;
        ctx.guard()?.run(&ctx.cluster, &ctx.caller, &self).await
    }
}

/// Patch a node's `spec.unschedulable`, with `metadata` from the plan (its resourceVersion
/// as precondition, and the change ledger).
pub(crate) async fn set_unschedulable(
    writer: &Writer,
    name: &str,
    metadata: Value,
    value: bool,
    dry_run: bool,
) -> Result<Value, ToolError> {
    let patch = json!({"metadata": metadata, "spec": {"unschedulable": if value { json!(true) } else { Value::Null }}});
    let pp = PatchParams {
        dry_run,
        ..Default::default()
    };
    let node = writer
        .cluster::<Node>()
        .patch(name, &pp, &Patch::Merge(patch))
        .await
        .map_err(|e| {
            ToolError::from_kube(
                format!(
                    "{} node {name}",
                    if value { "cordoning" } else { "uncordoning" }
                ),
                e,
            )
        })?;
    Ok(
        json!({"unschedulable": node.spec.and_then(|s| s.unschedulable).unwrap_or(false), "dry_run": dry_run}),
    )
}

impl Mutation for SetSchedulable {
    type State = ();
    fn action(&self) -> &'static str {
        if self.unschedulable {
            "cordon_node"
        } else {
            "uncordon_node"
        }
    }
    fn scope(&self) -> Scope<'_> {
        Scope::Cluster
    }
    fn dry_run(&self) -> bool {
        self.args.dry_run
    }

    async fn plan(&self, cluster: &Cluster) -> Result<Plan<()>, ToolError> {
        let name = &self.args.name;
        let (node, node_f, _) = node_facts(cluster, name).await?;
        let now = node
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false);
        let mut facts = Facts::new(self.action(), "", &[]);
        let problems: Vec<&str> = [
            ("MemoryPressure", node_f.memory_pressure),
            ("DiskPressure", node_f.disk_pressure),
            ("PIDPressure", node_f.pid_pressure),
        ]
        .into_iter()
        .filter(|(_, on)| *on)
        .map(|(n, _)| n)
        .collect();
        facts.node = Some(node_f);
        let target = Target {
            kind: "Node".into(),
            namespace: String::new(),
            name: name.clone(),
            labels: node.metadata.labels.clone().unwrap_or_default(),
        };
        // a cordon evicts nothing: running pods keep running, so its facts name no pods
        // (a drain is judged on every pod it evicts)
        let summary = format!(
            "{} node {name}{}{}",
            if self.unschedulable {
                "cordon"
            } else {
                "uncordon"
            },
            if problems.is_empty() {
                String::new()
            } else {
                format!(" ({})", problems.join(", "))
            },
            if now == self.unschedulable {
                " — already in that state"
            } else {
                ""
            }
        );
        Ok(Plan::new(target, facts, summary, ())
            .with_changes(vec![Change {
                field: "spec.unschedulable".into(),
                before: json!(now),
                after: json!(self.unschedulable),
            }])
            .with_meta(&node.metadata))
    }

    async fn apply(
        &self,
        writer: &Writer,
        plan: &Plan<()>,
        dry_run: bool,
    ) -> Result<Value, ToolError> {
        set_unschedulable(
            writer,
            &self.args.name,
            plan.metadata_patch(),
            self.unschedulable,
            dry_run,
        )
        .await
    }

    async fn verify(&self, cluster: &Cluster, _plan: &Plan<()>) -> Result<Value, ToolError> {
        let node = cluster
            .cluster_api::<Node>()
            .get(&self.args.name)
            .await
            .map_err(|e| ToolError::from_kube("reading the node back", e))?;
        Ok(json!({"unschedulable": node.spec.and_then(|s| s.unschedulable).unwrap_or(false)}))
    }
}

/// The `cordon_node` tool.
pub struct CordonNode;

impl Tool for CordonNode {
    const NAME: &'static str = "cordon_node";
    const TITLE: &'static str = "Cordon a node";
    const DESCRIPTION: &'static str = "Mark a node unschedulable so no new pods land on it (existing pods keep running). Runs on its own for a node under MemoryPressure or DiskPressure; otherwise a human decides. dry_run=true changes nothing.";
    const READ_ONLY: bool = false;
    const DESTRUCTIVE: bool = false;
    const IDEMPOTENT: bool = true;
    type Args = Args;
    type Output = MutationReport;

    async fn run(ctx: ToolContext, args: Args) -> Result<MutationReport, ToolError> {
        SetSchedulable {
            args,
            unschedulable: true,
        }
        .run(&ctx)
        .await
    }

    fn summary(out: &MutationReport) -> String {
        out.text()
    }
}
