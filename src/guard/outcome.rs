//! What happened to a change whose answer was lost.
//!
//! A write the API applied may still come back as an error: the answer was slow (the change
//! lands after the client gave up), the connection was reset, the body was cut or not
//! JSON, a proxy answered 5xx. Reporting such a change as "failed" is a lie half the time,
//! so the guard reads the target back and says which it was.
//!
//! Every guarded write carries the plan's resourceVersion as a precondition and this
//! change's ledger entry (see [`super::ledger`]), which makes the answer decidable:
//! - the entry is on the object → the change was applied;
//! - the object changed and the entry is not on it → something else wrote first, so the
//!   precondition can never hold again: not applied, and it never will be;
//! - the object did not change → the write may still be in flight: unknown, with what to
//!   check.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::ledger::Ledger;
use crate::cluster::Cluster;
use crate::error::ToolError;
use crate::policy::Target;

/// Times the target is read back while its state does not tell yet, and the pause between.
const READS: u32 = 4;
const PAUSE: Duration = Duration::from_millis(500);

/// Whether a change landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Landed {
    /// Read back: the change is on the object.
    Applied,
    /// Read back: the change is not on the object and can no longer land.
    NotApplied,
    /// Reading back could not tell; what to check.
    Unknown(String),
}

impl std::fmt::Display for Landed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Applied => write!(f, "reading the target back shows the change was applied"),
            Self::NotApplied => write!(
                f,
                "reading the target back shows the change was not applied (the object changed otherwise, so it cannot apply any more); nothing was changed"
            ),
            Self::Unknown(what) => write!(f, "whether the change was applied is unknown: {what}"),
        }
    }
}

/// Whether an error from an apply step leaves the change's fate open (the request may have
/// been applied) rather than being a refusal by the API.
pub fn is_ambiguous(e: &ToolError) -> bool {
    matches!(
        e,
        ToolError::Timeout { .. } | ToolError::KubeNoAnswer { .. }
    )
}

/// Read the metadata of a target of the kinds the guard changes.
async fn read_meta(cluster: &Cluster, t: &Target) -> Result<Option<ObjectMeta>, ToolError> {
    let ns = t.namespace.as_str();
    let what = || format!("reading {} {} back", t.kind, t.name);
    let meta = match t.kind.as_str() {
        "Deployment" => cluster
            .api::<Deployment>(Some(ns))
            .get_opt(&t.name)
            .await
            .map(|o| o.map(|o| o.metadata)),
        "StatefulSet" => cluster
            .api::<StatefulSet>(Some(ns))
            .get_opt(&t.name)
            .await
            .map(|o| o.map(|o| o.metadata)),
        "DaemonSet" => cluster
            .api::<DaemonSet>(Some(ns))
            .get_opt(&t.name)
            .await
            .map(|o| o.map(|o| o.metadata)),
        "HorizontalPodAutoscaler" => cluster
            .api::<HorizontalPodAutoscaler>(Some(ns))
            .get_opt(&t.name)
            .await
            .map(|o| o.map(|o| o.metadata)),
        "Pod" => cluster
            .api::<Pod>(Some(ns))
            .get_opt(&t.name)
            .await
            .map(|o| o.map(|o| o.metadata)),
        "Node" => cluster
            .cluster_api::<Node>()
            .get_opt(&t.name)
            .await
            .map(|o| o.map(|o| o.metadata)),
        other => {
            return Err(ToolError::Internal(format!(
                "no way to read a {other} back; this is a defect of the server"
            )));
        }
    };
    meta.map_err(|e| ToolError::from_kube(what(), e))
}

/// Decide from the target's ledger whether the change with `id`, written with precondition
/// `rv`, landed.
pub async fn by_ledger(
    cluster: &Cluster,
    target: &Target,
    rv: Option<&str>,
    id: Option<&str>,
) -> Landed {
    let Some(id) = id else {
        return Landed::Unknown("the change carried no ledger entry to look for".into());
    };
    let check = format!(
        "look for change id {id} in the annotation {} of {} {}",
        super::ledger::ANNOTATION,
        target.kind,
        super::target_name(target)
    );
    let mut last_error = None;
    for i in 0..READS {
        if i > 0 {
            tokio::time::sleep(PAUSE).await;
        }
        match read_meta(cluster, target).await {
            Ok(Some(meta)) => {
                if Ledger::from_annotations(meta.annotations.as_ref()).contains(id) {
                    return Landed::Applied;
                }
                if rv.is_some() && meta.resource_version.as_deref() != rv {
                    return Landed::NotApplied;
                }
            }
            // the object is gone: a write with its resourceVersion as precondition cannot land
            Ok(None) if rv.is_some() => return Landed::NotApplied,
            Ok(None) => {}
            Err(e) => last_error = Some(e.to_string()),
        }
    }
    Landed::Unknown(match last_error {
        Some(e) => format!("reading the target back failed ({e}); {check}"),
        None => format!(
            "the object has not changed yet, so the write may still be applied; {check} (the write carries resourceVersion {} as a precondition, so once the object changes otherwise it can no longer apply)",
            rv.unwrap_or("none")
        ),
    })
}
