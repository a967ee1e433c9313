//! `get_pod_logs`: a container's logs, bounded, filtered and with credentials masked.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::LogParams;
use regex::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{bounded, check_name, check_namespace, parse_duration};
use super::{Tool, ToolContext};
use crate::error::ToolError;
use crate::redact;

/// Default cap on returned log bytes.
pub const DEFAULT_LIMIT_BYTES: u32 = 64 * 1024;
/// Largest `limit_bytes` accepted.
pub const MAX_LIMIT_BYTES: u32 = 1024 * 1024;
/// Bytes read from the API at most, before filtering.
const MAX_FETCH_BYTES: i64 = 8 * 1024 * 1024;

/// Arguments of `get_pod_logs`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Namespace of the pod.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Container; required when the pod has several containers.
    #[serde(default)]
    pub container: Option<String>,
    /// Logs of the previous (crashed) instance of the container.
    #[serde(default)]
    pub previous: bool,
    /// Only the last N lines (1–10000, default 200).
    #[serde(default)]
    pub tail_lines: Option<i64>,
    /// Only lines written within this duration (e.g. 10m, 1h; at most 7d).
    #[serde(default)]
    pub since: Option<String>,
    /// Cap on returned bytes (1–1048576, default 65536); longer output is truncated, keeping the newest lines.
    #[serde(default)]
    pub limit_bytes: Option<i64>,
    /// Regular expression (Rust regex syntax); only matching lines are returned.
    #[serde(default)]
    pub grep: Option<String>,
}

/// Result of `get_pod_logs`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Output {
    /// Namespace of the pod.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Container the logs are from.
    pub container: String,
    /// Whether these are the previous instance's logs.
    pub previous: bool,
    /// The log lines, oldest first.
    pub lines: Vec<String>,
    /// Lines read from the API (after tail_lines/since, before grep).
    pub lines_read: usize,
    /// Lines matching `grep` (present only when grep was given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grep_matches: Option<usize>,
    /// True when output was cut to fit limit_bytes.
    pub truncated: bool,
    /// Lines dropped by truncation (the oldest ones).
    pub lines_dropped: usize,
    /// Lines in which credentials were masked.
    pub lines_redacted: usize,
}

/// The `get_pod_logs` tool.
pub struct GetPodLogs;

impl Tool for GetPodLogs {
    const NAME: &'static str = "get_pod_logs";
    const TITLE: &'static str = "Get pod logs";
    const DESCRIPTION: &'static str = "Logs of one container of a pod, bounded (default 64 KiB, newest lines kept, with a truncation marker) and with obvious credentials masked. Use previous=true for the crashed instance of a restarting container, grep to filter lines server-side (regex), tail_lines and since to narrow the window. When the pod has several containers, name one; the error lists them.";
    const READ_ONLY: bool = true;
    type Args = Args;
    type Output = Output;

    async fn run(ctx: ToolContext, args: Args) -> Result<Output, ToolError> {
        ctx.check_scope(Some(&args.namespace))?;
        check_namespace(&args.namespace)?;
        check_name("pod", &args.pod)?;
        let tail = bounded("tail_lines", args.tail_lines, 200, 10_000)?;
        let limit_bytes = bounded(
            "limit_bytes",
            args.limit_bytes,
            DEFAULT_LIMIT_BYTES,
            MAX_LIMIT_BYTES,
        )? as usize;
        let since = args
            .since
            .as_deref()
            .map(|s| parse_duration("since", s, Duration::from_secs(7 * 86_400)))
            .transpose()?;
        let grep = args
            .grep
            .as_deref()
            .map(|g| {
                regex::RegexBuilder::new(g)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| {
                        ToolError::invalid(format!(
                            "grep {g:?} is not a valid regular expression: {e}"
                        ))
                    })
            })
            .transpose()?;

        ctx.cluster.ensure_namespace(&args.namespace).await?;
        let api = ctx.cluster.api::<Pod>(Some(&args.namespace));
        let pod = api.get_opt(&args.pod).await.map_err(|e| {
            ToolError::from_kube(format!("reading pod {}/{}", args.namespace, args.pod), e)
        })?;
        let Some(pod) = pod else {
            return Err(ToolError::NotFound(format!(
                "pod {:?} does not exist in namespace {:?}; list pods with get_pod_status",
                args.pod, args.namespace
            )));
        };
        let containers: Vec<String> = pod
            .spec
            .as_ref()
            .map(|s| s.containers.iter().map(|c| c.name.clone()).collect())
            .unwrap_or_default();
        let container = match &args.container {
            Some(c) if containers.contains(c) => c.clone(),
            Some(c) => {
                return Err(ToolError::invalid(format!(
                    "container {c:?} is not in pod {}; its containers are: {}",
                    args.pod,
                    containers.join(", ")
                )));
            }
            None if containers.len() == 1 => containers[0].clone(),
            None => {
                return Err(ToolError::invalid(format!(
                    "pod {} has {} containers; choose one with the container argument: {}",
                    args.pod,
                    containers.len(),
                    containers.join(", ")
                )));
            }
        };
        let lp = LogParams {
            container: Some(container.clone()),
            previous: args.previous,
            tail_lines: Some(i64::from(tail)),
            since_seconds: since.map(|d| d.as_secs().max(1) as i64),
            limit_bytes: Some(MAX_FETCH_BYTES),
            ..Default::default()
        };
        let text = api.logs(&args.pod, &lp).await.map_err(|e| match e {
            kube::Error::Api(s) if s.code == 400 && args.previous => ToolError::NotFound(format!(
                "container {container:?} of pod {} has no previous (terminated) instance: {}",
                args.pod, s.message
            )),
            e => ToolError::from_kube(
                format!("reading logs of {}/{}", args.namespace, args.pod),
                e,
            ),
        })?;
        Ok(shape(&args, container, &text, grep.as_ref(), limit_bytes))
    }

    const UNTRUSTED: &'static [&'static str] = &["/lines/*"];

    fn summary(out: &Output) -> String {
        let mut s = format!(
            "{} line(s) from {}/{} container {}{}",
            out.lines.len(),
            out.namespace,
            out.pod,
            out.container,
            if out.previous {
                " (previous instance)"
            } else {
                ""
            }
        );
        if let Some(m) = out.grep_matches {
            s.push_str(&format!(", {m} matching grep"));
        }
        if out.truncated {
            s.push_str(&format!(
                ", truncated: {} older line(s) dropped",
                out.lines_dropped
            ));
        }
        if out.lines_redacted > 0 {
            s.push_str(&format!(
                ", credentials masked in {} line(s)",
                out.lines_redacted
            ));
        }
        s.push('.');
        s
    }
}

/// Filter, mask and bound the raw log text (pure, so it is tested without a cluster).
fn shape(
    args: &Args,
    container: String,
    text: &str,
    grep: Option<&Regex>,
    limit_bytes: usize,
) -> Output {
    let raw: Vec<&str> = text.lines().collect();
    let lines_read = raw.len();
    let mut redacted = 0;
    // Mask first, then filter: grep must never see a credential, or a caller could recover it
    // one character at a time from match counts.
    let mut lines: Vec<String> = redact::mask_lines(raw)
        .into_iter()
        .filter(|(l, _)| grep.is_none_or(|g| g.is_match(l)))
        .map(|(l, changed)| {
            redacted += usize::from(changed);
            l
        })
        .collect();
    let grep_matches = grep.map(|_| lines.len());
    // keep the newest lines that fit
    let mut total = 0usize;
    let mut keep_from = lines.len();
    for (i, l) in lines.iter().enumerate().rev() {
        if total + l.len() + 1 > limit_bytes {
            break;
        }
        total += l.len() + 1;
        keep_from = i;
    }
    let dropped = keep_from;
    if dropped > 0 {
        lines.drain(..keep_from);
        lines.insert(
            0,
            format!("[… {dropped} older line(s) truncated to fit limit_bytes={limit_bytes} …]"),
        );
    }
    Output {
        namespace: args.namespace.clone(),
        pod: args.pod.clone(),
        container,
        previous: args.previous,
        lines,
        lines_read,
        grep_matches,
        truncated: dropped > 0,
        lines_dropped: dropped,
        lines_redacted: redacted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> Args {
        serde_json::from_value(serde_json::json!({"namespace": "shop", "pod": "p"})).unwrap()
    }

    #[test]
    fn truncation_keeps_newest_lines_and_says_so() {
        let text: String = (0..100).map(|i| format!("line {i:03}\n")).collect();
        let out = shape(&args(), "c".into(), &text, None, 90);
        assert!(out.truncated);
        assert_eq!(out.lines.last().unwrap(), "line 099");
        assert_eq!(out.lines_dropped + out.lines.len() - 1, 100);
        assert!(out.lines[0].contains("truncated"), "{:?}", out.lines[0]);
        let kept: usize = out.lines[1..].iter().map(|l| l.len() + 1).sum();
        assert!(kept <= 90);
    }

    #[test]
    fn grep_sees_only_masked_text() {
        let text = "REDIS_URL=redis://cart:Sup3rS3cret@redis:6379\nkey AKIAIOSFODNN7EXAMPLE\n";
        for secret in ["cart:S", "Sup3r", "AKIAIOSFODNN7E"] {
            let re = Regex::new(secret).unwrap();
            let out = shape(&args(), "c".into(), text, Some(&re), 1000);
            assert_eq!(
                out.grep_matches,
                Some(0),
                "grep {secret:?} must not match masked text"
            );
        }
        let re = Regex::new(r"\[REDACTED").unwrap();
        let out = shape(&args(), "c".into(), text, Some(&re), 1000);
        assert_eq!(out.grep_matches, Some(2));
    }

    #[test]
    fn grep_counts_and_masks() {
        let text = "ok\nERROR password=abc\nok\nERROR x\n";
        let re = Regex::new("ERROR").unwrap();
        let out = shape(&args(), "c".into(), text, Some(&re), 1000);
        assert_eq!(out.grep_matches, Some(2));
        assert_eq!(out.lines, vec!["ERROR password=[REDACTED]", "ERROR x"]);
        assert_eq!(out.lines_redacted, 1);
        assert_eq!(out.lines_read, 4);
        assert!(!out.truncated);
    }
}
