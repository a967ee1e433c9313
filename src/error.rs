//! Errors that reach a tool's caller. Every message says what was wrong and,
//! where it applies, what is allowed.

use thiserror::Error;

/// An error a tool returns to its caller as a tool error (`isError: true`).
#[derive(Debug, Error)]
pub enum ToolError {
    /// The arguments are malformed or out of range.
    #[error("invalid arguments: {0}")]
    InvalidArgs(String),
    /// The object the call names does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The call is refused by the server's configuration (scoping, modes).
    #[error("refused: {0}")]
    Refused(String),
    /// The object changed between plan and apply; nothing was applied.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The Kubernetes API answered with an error.
    #[error("Kubernetes API error while {context}: {message}")]
    Kube {
        /// What the tool was doing.
        context: String,
        /// The API's message.
        message: String,
    },
    /// The Kubernetes API gave no usable answer (connection reset, timeout, unreadable
    /// body, a 5xx): a write may or may not have been applied.
    #[error("the Kubernetes API gave no usable answer while {context}: {message}")]
    KubeNoAnswer {
        /// What the tool was doing.
        context: String,
        /// What went wrong.
        message: String,
    },
    /// A service the tool depends on (Prometheus/AMP, CloudWatch) failed, could not be
    /// reached or did not answer in time: not the caller's mistake, not a defect here.
    #[error("{message}; {hint}")]
    Upstream {
        /// What failed, naming the service and endpoint.
        message: String,
        /// What to do next.
        hint: String,
    },
    /// The call did not finish within the configured time.
    #[error(
        "timed out after {seconds} s: {what} did not finish in time; narrow the query or retry"
    )]
    Timeout {
        /// What did not finish (the call, the change, …).
        what: String,
        /// The limit that ran out.
        seconds: u64,
    },
    /// A defect in the server.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ToolError {
    /// Build an [`ToolError::InvalidArgs`] error.
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::InvalidArgs(msg.into())
    }

    /// A stable machine-readable code for the error kind.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidArgs(_) => "invalid_arguments",
            Self::NotFound(_) => "not_found",
            Self::Refused(_) => "refused",
            Self::Conflict(_) => "conflict",
            Self::Kube { .. } => "kubernetes_error",
            Self::KubeNoAnswer { .. } => "kubernetes_no_answer",
            Self::Upstream { .. } => "upstream_error",
            Self::Timeout { .. } => "timeout",
            Self::Internal(_) => "internal",
        }
    }

    /// Map a kube error, saying what was being done; a 404 becomes [`ToolError::NotFound`].
    pub fn from_kube(context: impl Into<String>, err: kube::Error) -> Self {
        let context = context.into();
        match err {
            kube::Error::Api(status) if status.code == 404 => {
                Self::NotFound(format!("{context}: {}", status.message))
            }
            kube::Error::Api(status) if status.code == 409 => Self::Conflict(format!(
                "{context}: {}; nothing was applied — the object changed after the plan was made, call the tool again to plan on its current state",
                status.message
            )),
            kube::Error::Api(status) if status.code >= 500 => Self::KubeNoAnswer {
                context,
                message: format!("{} ({} {})", status.message, status.code, status.reason),
            },
            kube::Error::Api(status) => Self::Kube {
                context,
                message: format!("{} ({} {})", status.message, status.code, status.reason),
            },
            other => Self::KubeNoAnswer {
                context,
                message: other.to_string(),
            },
        }
    }
}
