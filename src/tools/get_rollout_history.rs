//! `get_rollout_history`: a Deployment's revisions, from its ReplicaSets.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::ListParams;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{check_name, check_namespace, ts};
use super::get_pod_status::selector_text;
use super::{Tool, ToolContext};
use crate::cluster::Cluster;
use crate::error::ToolError;

/// Arguments of `get_rollout_history`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Namespace of the Deployment.
    pub namespace: String,
    /// Deployment name.
    pub name: String,
}

/// One revision.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Revision {
    /// Revision number.
    pub revision: i64,
    /// ReplicaSet holding this revision.
    pub replica_set: String,
    /// Container images of the revision.
    pub images: Vec<String>,
    /// `kubernetes.io/change-cause` annotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change_cause: Option<String>,
    /// When the ReplicaSet was created (RFC 3339).
    pub created: String,
    /// Desired replicas of the ReplicaSet.
    pub replicas: i32,
    /// Ready replicas of the ReplicaSet.
    pub ready_replicas: i32,
    /// Whether this is the Deployment's current revision.
    pub current: bool,
    /// Whether this is the revision before the current one (what a plain rollback returns to).
    pub previous: bool,
}

/// Result of `get_rollout_history`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Output {
    /// Namespace.
    pub namespace: String,
    /// Deployment.
    pub name: String,
    /// Current revision number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_revision: Option<i64>,
    /// Previous revision number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_revision: Option<i64>,
    /// Revisions, newest first.
    pub revisions: Vec<Revision>,
}

/// The `get_rollout_history` tool.
pub struct GetRolloutHistory;

fn revision(rs: &ReplicaSet) -> Option<i64> {
    rs.metadata
        .annotations
        .as_ref()?
        .get("deployment.kubernetes.io/revision")?
        .parse()
        .ok()
}

/// The ReplicaSets Deployment `name` (read as `dep`) owns, with their revision numbers,
/// newest first (what `kubectl rollout history` lists).
pub(crate) async fn owned_revisions(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    dep: &Deployment,
) -> Result<Vec<(i64, ReplicaSet)>, ToolError> {
    let uid = dep.metadata.uid.clone().unwrap_or_default();
    let selector = dep
        .spec
        .as_ref()
        .map(|s| selector_text(&s.selector))
        .unwrap_or_default();
    let mut rss: Vec<(i64, ReplicaSet)> = cluster
        .api::<ReplicaSet>(Some(namespace))
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| ToolError::from_kube("listing replica sets", e))?
        .items
        .into_iter()
        .filter(|rs| {
            rs.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.kind == "Deployment" && (o.uid == uid || o.name == name))
        })
        .filter_map(|rs| revision(&rs).map(|r| (r, rs)))
        .collect();
    rss.sort_by_key(|(r, _)| std::cmp::Reverse(*r));
    Ok(rss)
}

impl Tool for GetRolloutHistory {
    const NAME: &'static str = "get_rollout_history";
    const TITLE: &'static str = "Get rollout history";
    const DESCRIPTION: &'static str = "A Deployment's revisions from its ReplicaSets, newest first: revision number, images, change cause, creation time and replica counts, marking the current and the previous revision (the one a rollback returns to).";
    const READ_ONLY: bool = true;
    type Args = Args;
    type Output = Output;

    async fn run(ctx: ToolContext, args: Args) -> Result<Output, ToolError> {
        ctx.check_scope(Some(&args.namespace))?;
        check_namespace(&args.namespace)?;
        check_name("name", &args.name)?;
        ctx.cluster.ensure_namespace(&args.namespace).await?;
        let dep = ctx
            .cluster
            .get_in::<Deployment>(
                &args.namespace,
                &args.name,
                "deployment",
                "see list_workloads",
            )
            .await?;
        let mut revisions: Vec<Revision> =
            owned_revisions(&ctx.cluster, &args.namespace, &args.name, &dep)
                .await?
                .iter()
                .map(|(revision, rs)| Revision {
                    revision: *revision,
                    replica_set: rs.metadata.name.clone().unwrap_or_default(),
                    images: rs
                        .spec
                        .as_ref()
                        .and_then(|s| s.template.as_ref())
                        .and_then(|t| t.spec.as_ref())
                        .map(|s| {
                            s.containers
                                .iter()
                                .filter_map(|c| c.image.clone())
                                .collect()
                        })
                        .unwrap_or_default(),
                    change_cause: rs
                        .metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get("kubernetes.io/change-cause").cloned())
                        .filter(|c| !c.is_empty()),
                    created: rs
                        .metadata
                        .creation_timestamp
                        .as_ref()
                        .map(|t| ts(&t.0))
                        .unwrap_or_default(),
                    replicas: rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0),
                    ready_replicas: rs
                        .status
                        .as_ref()
                        .and_then(|s| s.ready_replicas)
                        .unwrap_or(0),
                    current: false,
                    previous: false,
                })
                .collect();
        let current_revision = revisions.first().map(|r| r.revision);
        let previous_revision = revisions.get(1).map(|r| r.revision);
        if let Some(r) = revisions.get_mut(0) {
            r.current = true;
        }
        if let Some(r) = revisions.get_mut(1) {
            r.previous = true;
        }
        Ok(Output {
            namespace: args.namespace,
            name: args.name,
            current_revision,
            previous_revision,
            revisions,
        })
    }

    const UNTRUSTED: &'static [&'static str] = &["/revisions/*/change_cause"];

    fn summary(out: &Output) -> String {
        let mut s = format!(
            "deployment {}/{}: {} revision(s), current {}, previous {}.",
            out.namespace,
            out.name,
            out.revisions.len(),
            out.current_revision
                .map_or("none".into(), |r| r.to_string()),
            out.previous_revision
                .map_or("none".into(), |r| r.to_string())
        );
        for r in &out.revisions {
            s.push_str(&format!(
                "\n#{} {}{}",
                r.revision,
                r.images.join(","),
                if r.current {
                    " (current)"
                } else if r.previous {
                    " (previous)"
                } else {
                    ""
                }
            ));
        }
        s
    }
}
