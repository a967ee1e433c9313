//! `get_pod_status`: pods with phase, readiness, restarts and why they are unhealthy.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::ListParams;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{age, bounded, check_name, check_namespace, ts};
use super::{Tool, ToolContext};
use crate::error::ToolError;

/// Arguments of `get_pod_status`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Namespace; omit for all namespaces (not allowed together with owner).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Label selector, e.g. `app=cart` or `tier in (web,api)`.
    #[serde(default)]
    pub label_selector: Option<String>,
    /// Only pods of this workload, written `Kind/name`: Deployment, StatefulSet, DaemonSet or ReplicaSet.
    #[serde(default)]
    pub owner: Option<String>,
    /// Only unhealthy pods: not Running/Succeeded, not ready, or restarting.
    #[serde(default)]
    pub only_unhealthy: bool,
    /// Maximum pods to return (1–1000, default 100).
    #[serde(default)]
    pub limit: Option<i64>,
}

/// Last termination of a container.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Termination {
    /// Reason, e.g. OOMKilled, Error, Completed.
    pub reason: String,
    /// Exit code (137 usually means killed by SIGKILL, e.g. OOM).
    pub exit_code: i32,
    /// When it ended (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
}

/// One container of a pod.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ContainerInfo {
    /// Container name.
    pub name: String,
    /// Image.
    pub image: String,
    /// Whether the container is ready.
    pub ready: bool,
    /// Restarts of the container.
    pub restart_count: i32,
    /// `running`, `waiting` or `terminated`.
    pub state: String,
    /// Reason of the waiting/terminated state, e.g. CrashLoopBackOff, ImagePullBackOff.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Message of the waiting/terminated state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The previous instance's termination, if it was terminated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_terminated: Option<Termination>,
}

/// One pod.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PodInfo {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Status as kubectl shows it (Running, CrashLoopBackOff, Pending, OOMKilled, …).
    pub status: String,
    /// Pod phase.
    pub phase: String,
    /// Ready containers over all containers, e.g. `1/2`.
    pub ready: String,
    /// Restarts summed over containers.
    pub restarts: i32,
    /// Node the pod runs on (absent while unscheduled).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Controlling owner as `Kind/name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Age, e.g. `3d4h`.
    pub age: String,
    /// Creation time (RFC 3339).
    pub created: String,
    /// Why the pod is not running or not ready (e.g. the scheduler's message), if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Containers.
    pub containers: Vec<ContainerInfo>,
}

/// Result of `get_pod_status`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Output {
    /// Pods, sorted by namespace and name.
    pub pods: Vec<PodInfo>,
    /// Pods matching before the limit.
    pub total_matched: usize,
    /// True when `limit` cut the list.
    pub truncated: bool,
}

/// The `get_pod_status` tool.
pub struct GetPodStatus;

/// Turn a workload's selector into label-selector text.
pub fn selector_text(sel: &LabelSelector) -> String {
    let mut parts: Vec<String> = sel
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in sel.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            _ => format!("!{}", e.key),
        });
    }
    parts.join(",")
}

/// The label selector of the workload an `owner` argument (`Kind/name`) names.
async fn owner_selector(ctx: &ToolContext, ns: &str, owner: &str) -> Result<String, ToolError> {
    let (kind, name) = owner.split_once('/').ok_or_else(|| {
        ToolError::invalid(format!(
            "owner {owner:?} must be written Kind/name, e.g. Deployment/checkout; kinds: Deployment, StatefulSet, DaemonSet, ReplicaSet"
        ))
    })?;
    check_name("owner name", name)?;
    let c = &ctx.cluster;
    let hint = "see list_workloads";
    let sel = match kind.to_ascii_lowercase().as_str() {
        "deployment" => c
            .get_in::<Deployment>(ns, name, "Deployment", hint)
            .await?
            .spec
            .map(|s| s.selector),
        "statefulset" => c
            .get_in::<StatefulSet>(ns, name, "StatefulSet", hint)
            .await?
            .spec
            .map(|s| s.selector),
        "daemonset" => c
            .get_in::<DaemonSet>(ns, name, "DaemonSet", hint)
            .await?
            .spec
            .map(|s| s.selector),
        "replicaset" => c
            .get_in::<ReplicaSet>(ns, name, "ReplicaSet", hint)
            .await?
            .spec
            .map(|s| s.selector),
        _ => {
            return Err(ToolError::invalid(format!(
                "owner kind {kind:?} is not supported; use Deployment, StatefulSet, DaemonSet or ReplicaSet"
            )));
        }
    };
    Ok(sel.as_ref().map(selector_text).unwrap_or_default())
}

fn container_info(c: &ContainerStatus) -> ContainerInfo {
    let (state, reason, message) = match &c.state {
        Some(s) if s.waiting.is_some() => {
            let w = s.waiting.as_ref();
            (
                "waiting",
                w.and_then(|w| w.reason.clone()),
                w.and_then(|w| w.message.clone()),
            )
        }
        Some(s) if s.terminated.is_some() => {
            let t = s.terminated.as_ref();
            (
                "terminated",
                t.and_then(|t| t.reason.clone()),
                t.and_then(|t| t.message.clone()),
            )
        }
        _ => ("running", None, None),
    };
    let last_terminated = c
        .last_state
        .as_ref()
        .and_then(|l| l.terminated.as_ref())
        .map(|t| Termination {
            reason: t.reason.clone().unwrap_or_default(),
            exit_code: t.exit_code,
            finished_at: t.finished_at.as_ref().map(|f| ts(&f.0)),
        });
    ContainerInfo {
        name: c.name.clone(),
        image: c.image.clone(),
        ready: c.ready,
        restart_count: c.restart_count,
        state: state.to_string(),
        reason,
        message,
        last_terminated,
    }
}

/// Summarise one pod as `get_pod_status` reports it.
pub fn pod_info(p: &Pod) -> PodInfo {
    let status = p.status.clone().unwrap_or_default();
    let phase = status.phase.clone().unwrap_or_else(|| "Unknown".into());
    let containers: Vec<ContainerInfo> = status
        .container_statuses
        .iter()
        .flatten()
        .map(container_info)
        .collect();
    let total = p
        .spec
        .as_ref()
        .map_or(containers.len(), |s| s.containers.len());
    let ready = containers.iter().filter(|c| c.ready).count();
    let restarts = containers.iter().map(|c| c.restart_count).sum();
    // kubectl's STATUS column: a waiting/terminated reason wins over the phase
    let display = containers
        .iter()
        .find_map(|c| c.reason.clone().filter(|_| c.state != "running"))
        .or_else(|| status.reason.clone())
        .unwrap_or_else(|| phase.clone());
    let reason = status
        .conditions
        .iter()
        .flatten()
        .find(|c| {
            c.status == "False"
                && c.message.is_some()
                && (c.type_ == "PodScheduled" || c.type_ == "Ready")
        })
        .and_then(|c| c.message.clone())
        .or_else(|| status.message.clone());
    let created = p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    PodInfo {
        namespace: p.metadata.namespace.clone().unwrap_or_default(),
        name: p.metadata.name.clone().unwrap_or_default(),
        status: display,
        phase,
        ready: format!("{ready}/{total}"),
        restarts,
        node: p.spec.as_ref().and_then(|s| s.node_name.clone()),
        owner: p
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
            .map(|o| format!("{}/{}", o.kind, o.name)),
        age: created.as_ref().map(age).unwrap_or_default(),
        created: created.as_ref().map(ts).unwrap_or_default(),
        reason,
        containers,
    }
}

fn unhealthy(p: &PodInfo) -> bool {
    let (r, t) = p.ready.split_once('/').unwrap_or(("0", "0"));
    !(p.phase == "Running" || p.phase == "Succeeded")
        || (p.phase == "Running" && r != t)
        || p.containers
            .iter()
            .any(|c| c.state != "running" || c.last_terminated.is_some())
}

impl Tool for GetPodStatus {
    const NAME: &'static str = "get_pod_status";
    const TITLE: &'static str = "Get pod status";
    const DESCRIPTION: &'static str = "Pods selected by namespace, label selector or owning workload (owner=Deployment/name), with phase, kubectl-style status (CrashLoopBackOff, OOMKilled, Pending, …), readiness, restart counts, waiting and last-terminated reasons with exit codes, node and age. only_unhealthy=true keeps the pods that need attention.";
    const READ_ONLY: bool = true;
    type Args = Args;
    type Output = Output;

    async fn run(ctx: ToolContext, args: Args) -> Result<Output, ToolError> {
        ctx.check_scope(args.namespace.as_deref())?;
        if let Some(ns) = &args.namespace {
            check_namespace(ns)?;
        }
        let limit = bounded("limit", args.limit, 100, 1000)? as usize;
        if let Some(sel) = &args.label_selector
            && sel.trim().is_empty()
        {
            return Err(ToolError::invalid(
                "label_selector is empty; omit it or write e.g. app=cart",
            ));
        }
        if let Some(ns) = &args.namespace {
            ctx.cluster.ensure_namespace(ns).await?;
        }
        let mut selectors: Vec<String> = args.label_selector.iter().cloned().collect();
        if let Some(owner) = &args.owner {
            let ns = args.namespace.as_deref().ok_or_else(|| {
                ToolError::invalid("owner needs a namespace: give namespace together with owner")
            })?;
            let sel = owner_selector(&ctx, ns, owner).await?;
            if !sel.is_empty() {
                selectors.push(sel);
            }
        }
        let mut lp = ListParams::default();
        if !selectors.is_empty() {
            lp = lp.labels(&selectors.join(","));
        }
        let pods = ctx
            .cluster
            .api::<Pod>(args.namespace.as_deref())
            .list(&lp)
            .await
            .map_err(|e| match e {
                kube::Error::Api(s) if s.code == 400 => ToolError::invalid(format!(
                    "label_selector is not valid: {}; write it like app=cart,tier!=db or env in (prod,staging)",
                    s.message
                )),
                e => ToolError::from_kube("listing pods", e),
            })?;
        let mut out: Vec<PodInfo> = pods.items.iter().map(pod_info).collect();
        if args.only_unhealthy {
            out.retain(unhealthy);
        }
        out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        let total_matched = out.len();
        out.truncate(limit);
        Ok(Output {
            truncated: total_matched > out.len(),
            total_matched,
            pods: out,
        })
    }

    const UNTRUSTED: &'static [&'static str] = &["/pods/*/containers/*/message"];

    fn summary(out: &Output) -> String {
        let bad: Vec<&PodInfo> = out.pods.iter().filter(|p| unhealthy(p)).collect();
        let mut s = format!("{} pod(s), {} need attention.", out.pods.len(), bad.len());
        for p in bad.iter().take(8) {
            s.push_str(&format!(
                "\n{}/{}: {} ready {} restarts {}",
                p.namespace,
                p.name,
                super::untrusted::word(&p.status),
                p.ready,
                p.restarts
            ));
        }
        s
    }
}
