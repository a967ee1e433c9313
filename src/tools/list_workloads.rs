//! `list_workloads`: Deployments, StatefulSets and DaemonSets with replica counts,
//! revision, images, conditions and the HPA that scales them.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::api::ListParams;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{check_namespace, ts};
use super::{Tool, ToolContext};
use crate::error::ToolError;

/// Arguments of `list_workloads`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Namespace; omit for all namespaces.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Kinds to list: any of Deployment, StatefulSet, DaemonSet (default all three).
    #[serde(default)]
    pub kinds: Option<Vec<String>>,
    /// Label selector applied to the workloads.
    #[serde(default)]
    pub label_selector: Option<String>,
}

/// A workload condition.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Condition {
    /// Type (Available, Progressing, …).
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
}

/// The HPA that scales a workload.
#[derive(Debug, Serialize, JsonSchema)]
pub struct HpaInfo {
    /// HPA name.
    pub name: String,
    /// minReplicas.
    pub min_replicas: i32,
    /// maxReplicas.
    pub max_replicas: i32,
    /// Current replicas as the HPA sees them.
    pub current_replicas: i32,
    /// Replicas the HPA wants.
    pub desired_replicas: i32,
    /// Metric targets with their current values, e.g. `cpu 64%/70%`.
    pub targets: Vec<String>,
}

/// One workload.
#[derive(Debug, Serialize, JsonSchema)]
pub struct WorkloadInfo {
    /// Deployment, StatefulSet or DaemonSet.
    pub kind: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Desired replicas (scheduled pods for a DaemonSet).
    pub desired: i32,
    /// Ready replicas.
    pub ready: i32,
    /// Replicas on the current template.
    pub updated: i32,
    /// Available replicas.
    pub available: i32,
    /// Current revision (Deployment revision number, StatefulSet/DaemonSet controller revision).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Container images of the pod template.
    pub images: Vec<String>,
    /// Conditions.
    pub conditions: Vec<Condition>,
    /// The HPA targeting this workload, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hpa: Option<HpaInfo>,
    /// Creation time (RFC 3339).
    pub created: String,
}

/// Result of `list_workloads`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Output {
    /// Workloads, sorted by namespace, kind and name.
    pub workloads: Vec<WorkloadInfo>,
}

/// The `list_workloads` tool.
pub struct ListWorkloads;

fn images(t: Option<&PodTemplateSpec>) -> Vec<String> {
    t.and_then(|t| t.spec.as_ref())
        .map(|s| {
            s.containers
                .iter()
                .filter_map(|c| c.image.clone())
                .collect()
        })
        .unwrap_or_default()
}

fn hpa_info(h: &HorizontalPodAutoscaler) -> HpaInfo {
    let spec = h.spec.clone().unwrap_or_default();
    let status = h.status.clone().unwrap_or_default();
    let mut targets = Vec::new();
    for (i, m) in spec.metrics.iter().flatten().enumerate() {
        let current = status.current_metrics.as_ref().and_then(|c| c.get(i));
        if let Some(r) = &m.resource {
            let want = r
                .target
                .average_utilization
                .map(|u| format!("{u}%"))
                .or_else(|| r.target.average_value.as_ref().map(|q| q.0.clone()))
                .unwrap_or_else(|| "?".into());
            let have = current
                .and_then(|c| c.resource.as_ref())
                .and_then(|c| {
                    c.current
                        .average_utilization
                        .map(|u| format!("{u}%"))
                        .or_else(|| c.current.average_value.as_ref().map(|q| q.0.clone()))
                })
                .unwrap_or_else(|| "<unknown>".into());
            targets.push(format!("{} {have}/{want}", r.name));
        } else {
            targets.push(format!("{} metric", m.type_));
        }
    }
    HpaInfo {
        name: h.metadata.name.clone().unwrap_or_default(),
        min_replicas: spec.min_replicas.unwrap_or(1),
        max_replicas: spec.max_replicas,
        current_replicas: status.current_replicas.unwrap_or(0),
        desired_replicas: status.desired_replicas,
        targets,
    }
}

macro_rules! conditions {
    ($status:expr) => {
        $status
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|c| Condition {
                type_: c.type_,
                status: c.status,
                reason: c.reason,
                message: c.message,
            })
            .collect()
    };
}

impl Tool for ListWorkloads {
    const NAME: &'static str = "list_workloads";
    const TITLE: &'static str = "List workloads";
    const DESCRIPTION: &'static str = "Deployments, StatefulSets and DaemonSets with desired/ready/updated/available replicas, current revision, images, conditions and the HPA that scales each one (min/max/current/desired and metric targets). Use it to see what runs and whether a rollout is healthy.";
    const READ_ONLY: bool = true;
    type Args = Args;
    type Output = Output;

    async fn run(ctx: ToolContext, args: Args) -> Result<Output, ToolError> {
        ctx.check_scope(args.namespace.as_deref())?;
        if let Some(ns) = &args.namespace {
            check_namespace(ns)?;
        }
        const KINDS: [&str; 3] = ["Deployment", "StatefulSet", "DaemonSet"];
        let mut kinds: Vec<&str> = Vec::new();
        for k in args.kinds.iter().flatten() {
            let canon = KINDS
                .iter()
                .find(|x| x.eq_ignore_ascii_case(k))
                .ok_or_else(|| ToolError::invalid(format!("kind {k:?} is not listed by this tool; use Deployment, StatefulSet or DaemonSet")))?;
            kinds.push(canon);
        }
        if kinds.is_empty() {
            kinds = KINDS.to_vec();
        }
        if let Some(ns) = &args.namespace {
            ctx.cluster.ensure_namespace(ns).await?;
        }
        let ns = args.namespace.as_deref();
        let mut lp = ListParams::default();
        if let Some(sel) = &args.label_selector {
            lp = lp.labels(sel);
        }
        let map_err = |what: &'static str| {
            move |e: kube::Error| match e {
                kube::Error::Api(s) if s.code == 400 => {
                    ToolError::invalid(format!("label_selector is not valid: {}", s.message))
                }
                e => ToolError::from_kube(format!("listing {what}"), e),
            }
        };
        let hpas = ctx
            .cluster
            .api::<HorizontalPodAutoscaler>(ns)
            .list(&ListParams::default())
            .await
            .map_err(map_err("horizontal pod autoscalers"))?
            .items;
        let hpa_for = |kind: &str, namespace: &str, name: &str| {
            hpas.iter()
                .find(|h| {
                    h.metadata.namespace.as_deref() == Some(namespace)
                        && h.spec.as_ref().is_some_and(|s| {
                            s.scale_target_ref.kind == kind && s.scale_target_ref.name == name
                        })
                })
                .map(hpa_info)
        };
        let mut out = Vec::new();
        if kinds.contains(&"Deployment") {
            for d in ctx
                .cluster
                .api::<Deployment>(ns)
                .list(&lp)
                .await
                .map_err(map_err("deployments"))?
                .items
            {
                let (namespace, name) = (
                    d.metadata.namespace.clone().unwrap_or_default(),
                    d.metadata.name.clone().unwrap_or_default(),
                );
                let status = d.status.as_ref();
                out.push(WorkloadInfo {
                    kind: "Deployment".into(),
                    desired: d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                    ready: status.and_then(|s| s.ready_replicas).unwrap_or(0),
                    updated: status.and_then(|s| s.updated_replicas).unwrap_or(0),
                    available: status.and_then(|s| s.available_replicas).unwrap_or(0),
                    revision: d
                        .metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get("deployment.kubernetes.io/revision").cloned()),
                    images: images(d.spec.as_ref().map(|s| &s.template)),
                    conditions: conditions!(status),
                    hpa: hpa_for("Deployment", &namespace, &name),
                    created: d
                        .metadata
                        .creation_timestamp
                        .as_ref()
                        .map(|t| ts(&t.0))
                        .unwrap_or_default(),
                    namespace,
                    name,
                });
            }
        }
        if kinds.contains(&"StatefulSet") {
            for s in ctx
                .cluster
                .api::<StatefulSet>(ns)
                .list(&lp)
                .await
                .map_err(map_err("statefulsets"))?
                .items
            {
                let (namespace, name) = (
                    s.metadata.namespace.clone().unwrap_or_default(),
                    s.metadata.name.clone().unwrap_or_default(),
                );
                let status = s.status.as_ref();
                out.push(WorkloadInfo {
                    kind: "StatefulSet".into(),
                    desired: s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                    ready: status.and_then(|s| s.ready_replicas).unwrap_or(0),
                    updated: status.and_then(|s| s.updated_replicas).unwrap_or(0),
                    available: status.and_then(|s| s.available_replicas).unwrap_or(0),
                    revision: status.and_then(|s| s.current_revision.clone()),
                    images: images(s.spec.as_ref().map(|s| &s.template)),
                    conditions: conditions!(status),
                    hpa: hpa_for("StatefulSet", &namespace, &name),
                    created: s
                        .metadata
                        .creation_timestamp
                        .as_ref()
                        .map(|t| ts(&t.0))
                        .unwrap_or_default(),
                    namespace,
                    name,
                });
            }
        }
        if kinds.contains(&"DaemonSet") {
            for d in ctx
                .cluster
                .api::<DaemonSet>(ns)
                .list(&lp)
                .await
                .map_err(map_err("daemonsets"))?
                .items
            {
                let status = d.status.as_ref();
                out.push(WorkloadInfo {
                    kind: "DaemonSet".into(),
                    namespace: d.metadata.namespace.clone().unwrap_or_default(),
                    name: d.metadata.name.clone().unwrap_or_default(),
                    desired: status.map_or(0, |s| s.desired_number_scheduled),
                    ready: status.map_or(0, |s| s.number_ready),
                    updated: status.and_then(|s| s.updated_number_scheduled).unwrap_or(0),
                    available: status.and_then(|s| s.number_available).unwrap_or(0),
                    revision: None,
                    images: images(d.spec.as_ref().map(|s| &s.template)),
                    conditions: conditions!(status),
                    hpa: None,
                    created: d
                        .metadata
                        .creation_timestamp
                        .as_ref()
                        .map(|t| ts(&t.0))
                        .unwrap_or_default(),
                });
            }
        }
        out.sort_by(|a, b| (&a.namespace, &a.kind, &a.name).cmp(&(&b.namespace, &b.kind, &b.name)));
        Ok(Output { workloads: out })
    }

    const UNTRUSTED: &'static [&'static str] = &["/workloads/*/conditions/*/message"];

    fn summary(out: &Output) -> String {
        let mut s = format!("{} workload(s).", out.workloads.len());
        for w in &out.workloads {
            s.push_str(&format!(
                "\n{} {}/{}: {}/{} ready{}",
                w.kind,
                w.namespace,
                w.name,
                w.ready,
                w.desired,
                w.hpa
                    .as_ref()
                    .map(|h| format!(", HPA {}-{}", h.min_replicas, h.max_replicas))
                    .unwrap_or_default()
            ));
        }
        s
    }
}
