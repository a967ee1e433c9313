//! The guard: the one path every mutating tool goes through —
//! plan → facts → decide → approve → apply → verify → record.
//!
//! Structural guarantees: a mutation needs a [`Writer`] to change anything, a `Writer` needs
//! a [`GuardToken`], and only this module can make a `GuardToken`; so a mutating tool can
//! only change the cluster from inside [`Guard::run`], after the policies allowed it.

pub mod approval;
pub mod elicitation;
pub mod history;

use std::future::Future;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::audit::AuditLog;
use crate::cluster::{Cluster, Writer};
use crate::error::ToolError;
use crate::policy::facts::{DEFAULT_ALLOWED_VERBS, DEFAULT_REPLICA_CEILING};
use crate::policy::{
    DecidingPolicy, Decision, Facts, Outcome, PolicyEngine, PolicyRequest, Target,
};
pub use approval::{ApprovalOutcome, ApprovalRequest, Approver, NoApprover};
use history::History;

/// Proof of being the guard. Its field is private to this module, so no other code can
/// make one, and without one there is no [`Writer`].
pub struct GuardToken(());

/// One field that a mutation changes.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Change {
    /// What changes, e.g. `spec.replicas`.
    pub field: String,
    /// Value now.
    pub before: Value,
    /// Value after the change.
    pub after: Value,
}

/// What a mutation would do, read from the live cluster.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The object acted on (kind as the cluster reports it).
    pub target: Target,
    /// Field changes, before → after.
    pub changes: Vec<Change>,
    /// Facts for the policies (the guard adds configuration and history).
    pub facts: Facts,
    /// One line: what would change.
    pub summary: String,
    /// resourceVersion the plan was made on, sent as a precondition.
    pub resource_version: Option<String>,
    /// Tool-private data the apply step needs (e.g. a pod template).
    pub state: Value,
}

/// A mutating action, run by [`Guard::run`].
pub trait Mutation: Send + Sync {
    /// Policy action (the tool name).
    fn action(&self) -> &'static str;
    /// Namespace the call names, for scoping checks before anything is read.
    fn namespace(&self) -> Option<&str>;
    /// Whether the caller asked for a dry run.
    fn dry_run(&self) -> bool;
    /// Read the live target and say exactly what would change.
    fn plan(&self, cluster: &Cluster) -> impl Future<Output = Result<Plan, ToolError>> + Send;
    /// Apply the plan (server-side dry run when `dry_run`); returns what the API answered.
    fn apply(
        &self,
        writer: &Writer,
        plan: &Plan,
        dry_run: bool,
    ) -> impl Future<Output = Result<Value, ToolError>> + Send;
    /// Read back and report the observed result.
    fn verify(
        &self,
        cluster: &Cluster,
        plan: &Plan,
    ) -> impl Future<Output = Result<Value, ToolError>> + Send;
}

/// How a mutating call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Applied and verified.
    Applied,
    /// Evaluated and sent as a server-side dry run; nothing changed.
    DryRun,
    /// Refused by policy; nothing changed.
    Denied,
    /// A human must approve and did not (could not be asked, declined, or did not answer);
    /// nothing changed.
    EscalationRequired,
}

/// What a human would have to approve.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Escalation {
    /// The escalation policies that apply.
    pub policies: Vec<DecidingPolicy>,
    /// Why a human must decide.
    pub why: String,
    /// The change a human would approve.
    pub to_approve: String,
    /// What happened when approval was sought: unavailable, declined, cancelled or timed_out.
    pub approval: String,
    /// Detail of the approval attempt.
    pub detail: String,
}

/// The result of every mutating tool.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct MutationReport {
    /// applied, dry_run, denied or escalation_required.
    pub status: Status,
    /// The action (tool).
    pub action: String,
    /// The object acted on.
    pub target: Target,
    /// One line: what changes.
    pub summary: String,
    /// Field changes, before → after.
    pub changes: Vec<Change>,
    /// The facts the decision was made on.
    pub facts: Facts,
    /// The policy decision, with the deciding policy ids and messages.
    pub decision: Decision,
    /// Approval by a human, when the decision was escalate: approved, declined, cancelled,
    /// unavailable or timed_out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<String>,
    /// Present when status is escalation_required.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub escalation: Option<Escalation>,
    /// What the API answered to the change (or the dry run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The state read back after the change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified: Option<Value>,
}

impl MutationReport {
    /// One line for people.
    pub fn text(&self) -> String {
        let ids = |ps: &[DecidingPolicy]| {
            ps.iter()
                .map(|p| p.id.clone())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self.status {
            Status::Applied => format!(
                "APPLIED {}: {} (allowed by {})",
                self.action,
                self.summary,
                ids(&self.decision.policies)
            ),
            Status::DryRun => format!(
                "DRY RUN {}: {} — decision {}: {}; nothing was changed",
                self.action, self.summary, self.decision.outcome, self.decision.reason
            ),
            Status::Denied => format!(
                "DENIED {}: {} — {} [{}]; nothing was changed",
                self.action,
                self.summary,
                self.decision.reason,
                ids(&self.decision.policies)
            ),
            Status::EscalationRequired => format!(
                "ESCALATION REQUIRED {}: {} — {} [{}]; approval {}; nothing was changed",
                self.action,
                self.summary,
                self.decision.reason,
                ids(&self.decision.policies),
                self.approval.as_deref().unwrap_or("not sought")
            ),
        }
    }
}

/// Guard settings from the server configuration.
#[derive(Debug, Clone)]
pub struct GuardConfig {
    /// kubectl verbs agents may use.
    pub allowed_verbs: Vec<String>,
    /// Highest replica count any action may set.
    pub replica_ceiling: i64,
    /// Shadow mode: every mutation is a dry run; decisions are still made and recorded.
    pub dry_run_only: bool,
    /// Namespaces tools may touch (`None`: all).
    pub namespaces: Option<Vec<String>>,
}

impl Default for GuardConfig {
    fn default() -> Self {
        Self {
            allowed_verbs: DEFAULT_ALLOWED_VERBS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            replica_ceiling: DEFAULT_REPLICA_CEILING,
            dry_run_only: false,
            namespaces: None,
        }
    }
}

/// Who is calling and how to reach a human, per call.
#[derive(Clone)]
pub struct Caller {
    /// The calling agent.
    pub principal: String,
    /// How to ask a human.
    pub approver: Arc<dyn Approver>,
}

impl Default for Caller {
    fn default() -> Self {
        Self {
            principal: "anonymous".into(),
            approver: Arc::new(NoApprover),
        }
    }
}

/// The guard.
pub struct Guard {
    engine: Arc<PolicyEngine>,
    audit: Arc<AuditLog>,
    config: GuardConfig,
    history: History,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("config", &self.config)
            .finish()
    }
}

impl Guard {
    /// A guard over a policy engine and audit log.
    pub fn new(engine: Arc<PolicyEngine>, audit: Arc<AuditLog>, config: GuardConfig) -> Self {
        Self {
            engine,
            audit,
            config,
            history: History::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &GuardConfig {
        &self.config
    }

    /// Check a namespace against the configured scope.
    pub fn check_scope(&self, namespace: &str) -> Result<(), ToolError> {
        match &self.config.namespaces {
            Some(allowed) if !allowed.iter().any(|n| n == namespace) => {
                Err(ToolError::Refused(format!(
                    "namespace {namespace:?} is outside this server's scope; allowed namespaces: {}",
                    allowed.join(", ")
                )))
            }
            _ => Ok(()),
        }
    }

    fn complete_facts(&self, plan: &Plan, dry_run: bool) -> Facts {
        let mut facts = plan.facts.clone();
        facts.allowed_verbs = self.config.allowed_verbs.clone();
        facts.dry_run = dry_run;
        if let Some(r) = facts.replicas.as_mut() {
            r.ceiling = self.config.replica_ceiling;
        }
        if let Some(h) = facts.hpa.as_mut() {
            h.ceiling = self.config.replica_ceiling;
        }
        let key = history::key(&plan.target);
        facts.mutations_last_hour = self.history.count(&key, None);
        if let Some(r) = facts.rollout.as_mut() {
            r.rollbacks_last_hour = self.history.count(&key, Some("rollback"));
        }
        facts
    }

    /// Run a mutation through every step. Never changes anything unless the policies allow
    /// it (or a human approved an escalation and no hard rule forbids it).
    pub async fn run<M: Mutation>(
        &self,
        cluster: &Cluster,
        caller: &Caller,
        m: &M,
    ) -> Result<MutationReport, ToolError> {
        let action = m.action();
        if let Some(ns) = m.namespace() {
            self.check_scope(ns)?;
        }
        // 1. plan, 2. facts
        let plan = m.plan(cluster).await?;
        if !plan.target.namespace.is_empty() {
            self.check_scope(&plan.target.namespace)?;
        }
        let dry_run = m.dry_run() || self.config.dry_run_only;
        let facts = self.complete_facts(&plan, dry_run);
        let request = PolicyRequest {
            principal: caller.principal.clone(),
            action: action.to_string(),
            resource: plan.target.clone(),
            facts: facts.clone(),
        };
        // 3. decide
        let mut decision = self
            .engine
            .decide(&request)
            .map_err(|e| ToolError::Internal(e.to_string()))?;
        let mut report = MutationReport {
            status: Status::Denied,
            action: action.to_string(),
            target: plan.target.clone(),
            summary: plan.summary.clone(),
            changes: plan.changes.clone(),
            facts,
            decision: decision.clone(),
            approval: None,
            escalation: None,
            result: None,
            verified: None,
        };
        match decision.outcome {
            Outcome::Deny => {
                self.record_decision(caller, &report)?;
                return Ok(report);
            }
            Outcome::Escalate => {
                // 4. approve
                let ask = ApprovalRequest {
                    action: action.to_string(),
                    target: plan.target.clone(),
                    summary: plan.summary.clone(),
                    changes: plan.changes.clone(),
                    why: decision.reason.clone(),
                    policies: decision.policies.clone(),
                    dry_run,
                };
                let outcome = caller.approver.approve(&ask).await;
                report.approval = Some(outcome.label().to_string());
                if outcome != ApprovalOutcome::Approved {
                    report.status = Status::EscalationRequired;
                    report.escalation = Some(Escalation {
                        policies: decision.policies.clone(),
                        why: decision.reason.clone(),
                        to_approve: format!(
                            "{action} on {} {}: {}",
                            plan.target.kind,
                            target_name(&plan.target),
                            plan.summary
                        ),
                        approval: outcome.label().to_string(),
                        detail: outcome.detail(),
                    });
                    self.record_decision(caller, &report)?;
                    return Ok(report);
                }
                // re-authorise with escalations lifted: hard rules still hold
                let approved = self
                    .engine
                    .decide_approved(&request)
                    .map_err(|e| ToolError::Internal(e.to_string()))?;
                if approved.outcome == Outcome::Deny {
                    report.decision = approved;
                    self.record_decision(caller, &report)?;
                    return Ok(report);
                }
                decision.reason = format!("approved by a human: {}", decision.reason);
                report.decision = decision;
            }
            Outcome::Allow => {}
        }
        // the decision is on record before anything changes
        self.record_decision(caller, &report)?;
        // 5. apply
        let writer = cluster.writer(&GuardToken(()));
        let result = m.apply(&writer, &plan, dry_run).await?;
        report.result = Some(result);
        if dry_run {
            report.status = Status::DryRun;
            return Ok(report);
        }
        self.history.record(history::key(&plan.target), action);
        // 6. verify
        report.status = Status::Applied;
        report.verified = Some(match m.verify(cluster, &plan).await {
            Ok(v) => v,
            Err(e) => json!({"error": format!("applied, but reading back failed: {e}")}),
        });
        Ok(report)
    }

    fn record_decision(&self, caller: &Caller, report: &MutationReport) -> Result<(), ToolError> {
        self.audit
            .append(json!({
                "phase": "decided",
                "principal": caller.principal,
                "tool": report.action,
                "target": report.target,
                "plan": {"summary": report.summary, "changes": report.changes},
                "facts": report.facts,
                "decision": report.decision,
                "approval": report.approval,
            }))
            .map(|_| ())
            .map_err(|e| {
                ToolError::Internal(format!(
                    "the decision could not be recorded, so nothing was changed: {e}"
                ))
            })
    }
}

fn target_name(t: &Target) -> String {
    if t.namespace.is_empty() {
        t.name.clone()
    } else {
        format!("{}/{}", t.namespace, t.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::{Sandbox, Scenario};
    use crate::tools::scale_deployment::{Args, Scale};

    #[tokio::test]
    async fn a_plan_made_on_stale_state_fails_cleanly() {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let sb = Sandbox::start(&Scenario::builtin().unwrap(), ([127, 0, 0, 1], 0).into())
            .await
            .unwrap();
        let cluster = Cluster::new(sb.client().unwrap(), true);
        let m = Scale(Args {
            namespace: "shop".into(),
            name: "checkout".into(),
            replicas: 5,
            dry_run: false,
        });
        let plan = m.plan(&cluster).await.unwrap();
        // someone else changes the deployment after the plan was made
        {
            let store = sb.store();
            let mut s = store.write().await;
            let rt = crate::sandbox::resources::find("apps", "v1", "deployments").unwrap();
            let mut d = s.get(rt, "shop", "checkout").unwrap().clone();
            d["metadata"]["labels"]["touched"] = json!("yes");
            s.put(rt, "shop", "checkout", d);
        }
        let err = m
            .apply(&cluster.writer(&GuardToken(())), &plan, false)
            .await
            .unwrap_err();
        assert!(matches!(err, ToolError::Conflict(_)), "{err}");
        assert!(err.to_string().contains("nothing was applied"), "{err}");
        let rt = crate::sandbox::resources::find("apps", "v1", "deployments").unwrap();
        assert_eq!(
            sb.store().read().await.get(rt, "shop", "checkout").unwrap()["spec"]["replicas"],
            4
        );
    }
}
