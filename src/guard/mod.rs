//! The guard: the one path every mutating tool goes through —
//! plan → facts → decide → approve → apply → verify → record.
//!
//! Structural guarantees: a mutation needs a [`Writer`] to change anything, a `Writer` needs
//! a [`GuardToken`], and only this module can make a `GuardToken`; so a mutating tool can
//! only change the cluster from inside [`Guard::run`], after the policies allowed it.

pub mod approval;
pub mod elicitation;
pub mod ledger;
pub mod outcome;

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
use ledger::Ledger;
pub use outcome::Landed;

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

/// What a mutation would do, read from the live cluster. `S` is the tool's own data for the
/// apply step (typed, so a misspelt field is a compile error, not a silent default).
#[derive(Debug, Clone)]
pub struct Plan<S> {
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
    /// The target's change ledger, as read with the plan (empty for targets the change
    /// deletes, such as a restarted pod).
    pub ledger: Ledger,
    /// Tool-private data the apply step needs (e.g. a pod template).
    pub state: S,
    /// The ledger entry of this change, set by the guard just before apply.
    entry: Option<ledger::Entry>,
}

impl<S> Plan<S> {
    /// A plan with an empty ledger; add the target's with [`Plan::with_ledger`].
    pub fn new(target: Target, facts: Facts, summary: String, state: S) -> Self {
        Self {
            target,
            changes: Vec::new(),
            facts,
            summary,
            resource_version: None,
            ledger: Ledger::default(),
            state,
            entry: None,
        }
    }

    /// The field changes.
    pub fn with_changes(mut self, changes: Vec<Change>) -> Self {
        self.changes = changes;
        self
    }

    /// The target's metadata as read: its resourceVersion (the write's precondition) and
    /// its change ledger.
    pub fn with_meta(
        mut self,
        meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    ) -> Self {
        self.resource_version = meta.resource_version.clone();
        self.ledger = Ledger::from_annotations(meta.annotations.as_ref());
        self
    }

    /// The `metadata` of the change's write: the plan's resourceVersion as precondition and
    /// the change ledger with this change's entry, so that the change and its record land
    /// together or not at all.
    pub fn metadata_patch(&self) -> Value {
        let mut meta = json!({"resourceVersion": self.resource_version});
        if let Some(e) = &self.entry {
            meta["annotations"] = json!({ledger::ANNOTATION: self.ledger.with(e.clone())});
        }
        meta
    }

    /// The id of this change in the ledger (set once the guard is about to apply it).
    pub fn change_id(&self) -> Option<&str> {
        self.entry.as_ref().map(|e| e.id.as_str())
    }
}

/// What a mutation acts on, for the server's namespace scope: a namespaced server refuses
/// cluster-wide actions in the guard, before anything is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    /// Objects of one namespace.
    Namespaced(&'a str),
    /// A cluster-scoped object (a node), possibly touching pods of every namespace.
    Cluster,
}

/// A mutating action, run by [`Guard::run`].
pub trait Mutation: Send + Sync {
    /// Tool-private data the plan hands to apply.
    type State: Send + Sync;
    /// Policy action (the tool name).
    fn action(&self) -> &'static str;
    /// What the call names, for scoping checks before anything is read.
    fn scope(&self) -> Scope<'_>;
    /// Whether the caller asked for a dry run.
    fn dry_run(&self) -> bool;
    /// Read the live target and say exactly what would change.
    fn plan(
        &self,
        cluster: &Cluster,
    ) -> impl Future<Output = Result<Plan<Self::State>, ToolError>> + Send;
    /// Apply the plan (server-side dry run when `dry_run`); returns what the API answered.
    /// Every write carries [`Plan::metadata_patch`] (or, for a delete, the plan's
    /// preconditions).
    fn apply(
        &self,
        writer: &Writer,
        plan: &Plan<Self::State>,
        dry_run: bool,
    ) -> impl Future<Output = Result<Value, ToolError>> + Send;
    /// Read back and report the observed result.
    fn verify(
        &self,
        cluster: &Cluster,
        plan: &Plan<Self::State>,
    ) -> impl Future<Output = Result<Value, ToolError>> + Send;
    /// After an apply whose answer was lost (timeout, reset, unreadable answer, 5xx): did
    /// the change land? The default reads the target back and looks for this change's
    /// ledger entry.
    fn landed(
        &self,
        cluster: &Cluster,
        plan: &Plan<Self::State>,
    ) -> impl Future<Output = Landed> + Send {
        outcome::by_ledger(
            cluster,
            &plan.target,
            plan.resource_version.as_deref(),
            plan.change_id(),
        )
    }
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
    /// The API's answer to the change was lost and reading back showed it did not land;
    /// nothing changed.
    NotApplied,
    /// The API's answer to the change was lost and reading back could not tell whether it
    /// landed: see `outcome` for what to check.
    Unknown,
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
    /// When the API's answer to the change was lost: what went wrong, and what reading the
    /// target back showed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
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
            Status::NotApplied => format!(
                "NOT APPLIED {}: {} — {}",
                self.action,
                self.summary,
                self.outcome.as_deref().unwrap_or("the change did not land")
            ),
            Status::Unknown => format!(
                "OUTCOME UNKNOWN {}: {} — {}",
                self.action,
                self.summary,
                self.outcome.as_deref().unwrap_or("check the target")
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
    /// Longest the apply step may wait for the API's answer before the guard reads the
    /// target back to find out what happened.
    pub apply_timeout: std::time::Duration,
}

/// Default [`GuardConfig::apply_timeout`]: well inside the default call timeout (30 s), so
/// that an unanswered change is still read back and reported within the call.
pub const DEFAULT_APPLY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

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
            apply_timeout: DEFAULT_APPLY_TIMEOUT,
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
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("config", &self.config)
            .finish()
    }
}

/// Kinds of objects that are workloads, for [`Facts::workload_kinds`].
const WORKLOAD_KINDS: &[&str] = &[
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "Job",
];

impl Guard {
    /// A guard over a policy engine and audit log.
    pub fn new(engine: Arc<PolicyEngine>, audit: Arc<AuditLog>, config: GuardConfig) -> Self {
        Self {
            engine,
            audit,
            config,
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

    /// Refuse what the configured scope does not cover: a cluster-wide action on a
    /// namespaced server, or a namespace outside the scope.
    fn check_call_scope(&self, action: &str, scope: Scope<'_>) -> Result<(), ToolError> {
        match (scope, &self.config.namespaces) {
            (Scope::Cluster, Some(allowed)) => Err(ToolError::Refused(format!(
                "{action} acts on a cluster-scoped object, beyond this server's namespaces ({}); run it from a server without --namespaces",
                allowed.join(", ")
            ))),
            (Scope::Namespaced(ns), _) => self.check_scope(ns),
            (Scope::Cluster, None) => Ok(()),
        }
    }

    fn complete_facts<S>(&self, plan: &Plan<S>, dry_run: bool, now: i64) -> Facts {
        let mut facts = plan.facts.clone();
        facts.allowed_verbs = self.config.allowed_verbs.clone();
        facts.dry_run = dry_run;
        // what the action touches includes the target itself
        let t = &plan.target;
        if !t.namespace.is_empty() {
            facts.namespaces.push(t.namespace.clone());
        }
        if WORKLOAD_KINDS.contains(&t.kind.as_str()) {
            facts.workload_kinds.push(t.kind.clone());
        }
        facts.namespaces.sort();
        facts.namespaces.dedup();
        facts.workload_kinds.sort();
        facts.workload_kinds.dedup();
        if let Some(r) = facts.replicas.as_mut() {
            r.ceiling = self.config.replica_ceiling;
            let (lo, hi) = plan.ledger.replica_range(now, r.current);
            r.low_last_hour = lo;
            r.high_last_hour = hi;
        }
        if let Some(h) = facts.hpa.as_mut() {
            h.ceiling = self.config.replica_ceiling;
        }
        facts.mutations_last_hour = plan.ledger.count(now, None);
        if let Some(r) = facts.rollout.as_mut() {
            r.rollbacks_last_hour = plan.ledger.count(now, Some("rollback"));
        }
        facts
    }

    /// The configuration's hard limits, enforced here as well as by the default policies,
    /// so that a replacement policy set (`--policies DIR` without `--extend`) cannot
    /// silently drop them.
    fn configured_limits(&self, facts: &Facts) -> Option<Decision> {
        let deny = |id: &str, message: String| Decision {
            outcome: Outcome::Deny,
            reason: message.clone(),
            policies: vec![DecidingPolicy {
                id: id.to_string(),
                effect: "forbid".into(),
                message,
                escalate: None,
            }],
        };
        if !self.config.allowed_verbs.contains(&facts.verb) {
            return Some(deny(
                "config-allowed-verbs",
                format!(
                    "the kubectl verb {:?} of this action is not in the configured verb allow-list ({})",
                    facts.verb,
                    self.config.allowed_verbs.join(", ")
                ),
            ));
        }
        let ceiling = self.config.replica_ceiling;
        let requested = [
            facts.replicas.as_ref().map(|r| r.requested),
            facts.hpa.as_ref().map(|h| h.requested_max),
        ];
        if let Some(n) = requested.into_iter().flatten().find(|n| *n > ceiling) {
            return Some(deny(
                "config-replica-ceiling",
                format!(
                    "the requested replica count {n} is above the configured ceiling {ceiling}"
                ),
            ));
        }
        None
    }

    fn decide(&self, request: &PolicyRequest, approved: bool) -> Result<Decision, ToolError> {
        let decided = if approved {
            self.engine.decide_approved(request)
        } else {
            self.engine.decide(request)
        };
        let decision = decided.map_err(|e| {
            ToolError::Internal(format!(
                "the policies could not decide, so nothing was changed: {e}"
            ))
        })?;
        // the policies' own deny names its rule; the configuration's limits hold regardless
        if decision.outcome == Outcome::Deny {
            return Ok(decision);
        }
        Ok(self.configured_limits(&request.facts).unwrap_or(decision))
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
        self.check_call_scope(action, m.scope())?;
        // 1. plan, 2. facts
        let mut plan = m.plan(cluster).await?;
        if !plan.target.namespace.is_empty() {
            self.check_scope(&plan.target.namespace)?;
        }
        for ns in &plan.facts.namespaces {
            self.check_scope(ns)?;
        }
        let dry_run = m.dry_run() || self.config.dry_run_only;
        let now = ledger::now();
        let facts = self.complete_facts(&plan, dry_run, now);
        let request = PolicyRequest {
            principal: caller.principal.clone(),
            action: action.to_string(),
            resource: plan.target.clone(),
            facts: facts.clone(),
        };
        // 3. decide
        let mut decision = self.decide(&request, false)?;
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
            outcome: None,
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
                let approved = self.decide(&request, true)?;
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
        // the change's ledger entry goes out in the same write as the change
        plan.entry = Some(ledger::Entry {
            t: now,
            a: action.to_string(),
            id: uuid::Uuid::new_v4().simple().to_string(),
            human: report.approval.is_some(),
            from: report.facts.replicas.as_ref().map(|r| r.current),
            to: report.facts.replicas.as_ref().map(|r| r.requested),
        });
        // the decision is on record before anything changes
        self.record_decision(caller, &report)?;
        // 5. apply
        let writer = cluster.writer(&GuardToken(()));
        let applied =
            tokio::time::timeout(self.config.apply_timeout, m.apply(&writer, &plan, dry_run))
                .await
                .unwrap_or_else(|_| {
                    Err(ToolError::Timeout {
                        what: "the cluster API's answer to the change".into(),
                        seconds: self.config.apply_timeout.as_secs(),
                    })
                });
        let result = match applied {
            Ok(result) => result,
            Err(e) if dry_run || !outcome::is_ambiguous(&e) => return Err(e),
            Err(e) => {
                // the answer was lost, not refused: find out what the cluster did
                let landed = m.landed(cluster, &plan).await;
                report.outcome = Some(format!("the API's answer was lost ({e}); {landed}"));
                match landed {
                    Landed::Applied => {}
                    Landed::NotApplied => {
                        report.status = Status::NotApplied;
                        return Ok(report);
                    }
                    Landed::Unknown(_) => {
                        report.status = Status::Unknown;
                        return Ok(report);
                    }
                }
                json!({"answer_lost": e.to_string()})
            }
        };
        report.result = Some(result);
        if dry_run {
            report.status = Status::DryRun;
            return Ok(report);
        }
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
            .append(crate::redact::redacted(json!({
                "phase": "decided",
                "principal": caller.principal,
                "tool": report.action,
                "target": report.target,
                "plan": {"summary": report.summary, "changes": report.changes},
                "facts": report.facts,
                "decision": report.decision,
                "approval": report.approval,
            })))
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
