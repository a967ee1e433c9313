//! Asking a human to approve an escalated action.

use std::future::Future;
use std::pin::Pin;

use serde::Serialize;

use super::Change;
use crate::policy::{DecidingPolicy, Target};

/// What a human is asked to approve.
#[derive(Debug, Clone, Serialize)]
pub struct ApprovalRequest {
    /// The action (tool).
    pub action: String,
    /// The object acted on.
    pub target: Target,
    /// One line: what changes.
    pub summary: String,
    /// Field changes.
    pub changes: Vec<Change>,
    /// Why approval is needed.
    pub why: String,
    /// The escalation policies.
    pub policies: Vec<DecidingPolicy>,
    /// Whether the change would be a dry run.
    pub dry_run: bool,
}

impl ApprovalRequest {
    /// The question shown to the human.
    pub fn message(&self) -> String {
        let target = if self.target.namespace.is_empty() {
            format!("{} {}", self.target.kind, self.target.name)
        } else {
            format!(
                "{} {}/{}",
                self.target.kind, self.target.namespace, self.target.name
            )
        };
        let mut s = format!(
            "An agent asks to run {} on {target}: {}.\nIt needs your approval because {}.",
            self.action, self.summary, self.why
        );
        for c in &self.changes {
            s.push_str(&format!("\n  {}: {} → {}", c.field, c.before, c.after));
        }
        if self.dry_run {
            s.push_str("\n(This would be a dry run; nothing would change.)");
        }
        s.push_str("\nApprove only if you want this change made now.");
        s
    }
}

/// The answer to an approval request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalOutcome {
    /// The human explicitly accepted.
    Approved,
    /// The human declined.
    Declined,
    /// The human dismissed the request.
    Cancelled,
    /// No answer within the time limit.
    TimedOut,
    /// The client cannot ask a human (with the reason).
    Unavailable(String),
}

impl ApprovalOutcome {
    /// Short label used in results and the audit log.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Approved => "approved",
            Self::Declined => "declined",
            Self::Cancelled => "cancelled",
            Self::TimedOut => "timed_out",
            Self::Unavailable(_) => "unavailable",
        }
    }

    /// A sentence for the agent.
    pub fn detail(&self) -> String {
        match self {
            Self::Approved => "a human approved the action".into(),
            Self::Declined => "a human declined the action".into(),
            Self::Cancelled => "the approval request was dismissed".into(),
            Self::TimedOut => "no human answered in time".into(),
            Self::Unavailable(why) => format!(
                "no human could be asked: {why}; ask a human to run it, or to approve it from a client that supports elicitation"
            ),
        }
    }
}

/// A way to ask a human.
pub trait Approver: Send + Sync {
    /// Ask; never fails (a failure to ask is [`ApprovalOutcome::Unavailable`]).
    fn approve<'a>(
        &'a self,
        request: &'a ApprovalRequest,
    ) -> Pin<Box<dyn Future<Output = ApprovalOutcome> + Send + 'a>>;
}

/// No human can be asked (e.g. the client does not support elicitation).
#[derive(Debug, Default, Clone)]
pub struct NoApprover;

impl Approver for NoApprover {
    fn approve<'a>(
        &'a self,
        _request: &'a ApprovalRequest,
    ) -> Pin<Box<dyn Future<Output = ApprovalOutcome> + Send + 'a>> {
        Box::pin(async {
            ApprovalOutcome::Unavailable("the client does not support elicitation".into())
        })
    }
}

/// Always gives the same answer; for tests and for wiring a fixed policy (never `Approved`
/// outside tests).
#[derive(Debug, Clone)]
pub struct FixedApprover(pub ApprovalOutcome);

impl Approver for FixedApprover {
    fn approve<'a>(
        &'a self,
        _request: &'a ApprovalRequest,
    ) -> Pin<Box<dyn Future<Output = ApprovalOutcome> + Send + 'a>> {
        let answer = self.0.clone();
        Box::pin(async move { answer })
    }
}
