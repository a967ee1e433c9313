//! `get_events`: recent cluster events, filtered and with repeats aggregated.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Event;
use kube::api::ListParams;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{bounded, check_name, check_namespace, parse_duration, ts};
use super::{Tool, ToolContext};
use crate::error::ToolError;

/// Arguments of `get_events`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Namespace to read; omit for all namespaces.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Kind of the involved object (Pod, Node, Deployment, …).
    #[serde(default)]
    pub kind: Option<String>,
    /// Name of the involved object.
    #[serde(default)]
    pub name: Option<String>,
    /// Only these reasons (case-insensitive), e.g. BackOff, OOMKilled, FailedScheduling, Unhealthy.
    /// `OOMKilled` also matches the kernel monitor's `OOMKilling` node events.
    #[serde(default)]
    pub reasons: Option<Vec<String>>,
    /// `Normal` or `Warning`.
    #[serde(default, rename = "type")]
    pub event_type: Option<String>,
    /// Only events last seen within this duration (e.g. 30m, 2h; at most 7d).
    #[serde(default)]
    pub since: Option<String>,
    /// Maximum aggregated entries to return (1–500, default 50).
    #[serde(default)]
    pub limit: Option<i64>,
}

/// One aggregated event: all occurrences of one reason on one object.
#[derive(Debug, Serialize, JsonSchema)]
pub struct EventGroup {
    /// Namespace of the involved object (empty for cluster-scoped objects).
    pub namespace: String,
    /// Kind of the involved object.
    pub kind: String,
    /// Name of the involved object.
    pub name: String,
    /// Event reason.
    pub reason: String,
    /// `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Message of the most recent occurrence.
    pub message: String,
    /// Number of occurrences.
    pub count: i64,
    /// First occurrence (RFC 3339).
    pub first_seen: String,
    /// Last occurrence (RFC 3339).
    pub last_seen: String,
    /// Component that reported it (kubelet, default-scheduler, …).
    pub source: String,
}

/// Result of `get_events`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Output {
    /// Aggregated events, newest first.
    pub events: Vec<EventGroup>,
    /// Aggregated entries matching the filters before the limit was applied.
    pub total_matched: usize,
    /// True when `limit` cut the list.
    pub truncated: bool,
}

/// The `get_events` tool.
pub struct GetEvents;

fn last_seen(e: &Event) -> Option<Timestamp> {
    e.series
        .as_ref()
        .and_then(|s| s.last_observed_time.as_ref().map(|t| t.0))
        .or_else(|| e.last_timestamp.as_ref().map(|t| t.0))
        .or_else(|| e.event_time.as_ref().map(|t| t.0))
        .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

fn first_seen(e: &Event) -> Option<Timestamp> {
    e.first_timestamp
        .as_ref()
        .map(|t| t.0)
        .or_else(|| e.event_time.as_ref().map(|t| t.0))
        .or_else(|| last_seen(e))
}

fn reason_matches(wanted: &[String], reason: &str) -> bool {
    wanted.iter().any(|w| {
        w.eq_ignore_ascii_case(reason)
            || (w.eq_ignore_ascii_case("OOMKilled") && reason.eq_ignore_ascii_case("OOMKilling"))
    })
}

impl Tool for GetEvents {
    const NAME: &'static str = "get_events";
    const TITLE: &'static str = "Get cluster events";
    const DESCRIPTION: &'static str = "Recent Kubernetes events, newest first, with repeats of the same reason on the same object aggregated (count, first and last seen). Filter by namespace, involved object kind/name, reasons (BackOff, OOMKilled, FailedScheduling, Unhealthy, …), type (Normal/Warning) and age (since). Start here to see what happened.";
    const READ_ONLY: bool = true;
    type Args = Args;
    type Output = Output;

    async fn run(ctx: ToolContext, args: Args) -> Result<Output, ToolError> {
        ctx.check_scope(args.namespace.as_deref())?;
        if let Some(ns) = &args.namespace {
            check_namespace(ns)?;
        }
        if let Some(name) = &args.name {
            check_name("name", name)?;
        }
        let event_type = match args.event_type.as_deref() {
            None => None,
            Some(t) if t.eq_ignore_ascii_case("normal") => Some("Normal"),
            Some(t) if t.eq_ignore_ascii_case("warning") => Some("Warning"),
            Some(t) => {
                return Err(ToolError::invalid(format!(
                    "type {t:?} is not an event type; use Normal or Warning"
                )));
            }
        };
        let since = args
            .since
            .as_deref()
            .map(|s| parse_duration("since", s, Duration::from_secs(7 * 86_400)))
            .transpose()?;
        let limit = bounded("limit", args.limit, 50, 500)? as usize;
        let reasons = args.reasons.unwrap_or_default();
        if let Some(ns) = &args.namespace {
            ctx.cluster.ensure_namespace(ns).await?;
        }

        let mut fields = Vec::new();
        if let Some(kind) = &args.kind {
            fields.push(format!("involvedObject.kind={kind}"));
        }
        if let Some(name) = &args.name {
            fields.push(format!("involvedObject.name={name}"));
        }
        if let Some(t) = event_type {
            fields.push(format!("type={t}"));
        }
        let mut lp = ListParams::default();
        if !fields.is_empty() {
            lp = lp.fields(&fields.join(","));
        }
        let api = ctx.cluster.api::<Event>(args.namespace.as_deref());
        let events = api
            .list(&lp)
            .await
            .map_err(|e| ToolError::from_kube("listing events", e))?;

        let cutoff = since.and_then(|d| {
            jiff::SignedDuration::try_from(d)
                .ok()
                .map(|d| Timestamp::now() - d)
        });
        // key -> (group, first seen, last seen)
        type Key = (String, String, String, String);
        let mut groups: BTreeMap<Key, (EventGroup, Timestamp, Timestamp)> = BTreeMap::new();
        for e in events.items {
            let reason = e.reason.clone().unwrap_or_default();
            if !reasons.is_empty() && !reason_matches(&reasons, &reason) {
                continue;
            }
            let (Some(first), Some(last)) = (first_seen(&e), last_seen(&e)) else {
                continue;
            };
            if cutoff.is_some_and(|c| last < c) {
                continue;
            }
            let obj = &e.involved_object;
            let key = (
                obj.namespace.clone().unwrap_or_default(),
                obj.kind.clone().unwrap_or_default(),
                obj.name.clone().unwrap_or_default(),
                reason.clone(),
            );
            let count = i64::from(
                e.series
                    .as_ref()
                    .and_then(|s| s.count)
                    .or(e.count)
                    .unwrap_or(1),
            );
            let source = e
                .source
                .as_ref()
                .and_then(|s| s.component.clone())
                .or_else(|| e.reporting_component.clone())
                .unwrap_or_default();
            let (g, g_first, g_last) = groups.entry(key.clone()).or_insert_with(|| {
                (
                    EventGroup {
                        namespace: key.0.clone(),
                        kind: key.1.clone(),
                        name: key.2.clone(),
                        reason: reason.clone(),
                        event_type: e.type_.clone().unwrap_or_default(),
                        message: String::new(),
                        count: 0,
                        first_seen: ts(&first),
                        last_seen: ts(&last),
                        source: source.clone(),
                    },
                    first,
                    last,
                )
            });
            g.count += count;
            if first < *g_first {
                *g_first = first;
                g.first_seen = ts(&first);
            }
            if last >= *g_last || g.message.is_empty() {
                *g_last = last;
                g.last_seen = ts(&last);
                g.message = e.message.clone().unwrap_or_default();
                g.event_type = e.type_.clone().unwrap_or_default();
                g.source = source;
            }
        }
        let mut sorted: Vec<(EventGroup, Timestamp, Timestamp)> = groups.into_values().collect();
        sorted.sort_by(|a, b| b.2.cmp(&a.2).then(b.0.count.cmp(&a.0.count)));
        let mut events: Vec<EventGroup> = sorted.into_iter().map(|(g, _, _)| g).collect();
        let total_matched = events.len();
        events.truncate(limit);
        Ok(Output {
            truncated: total_matched > events.len(),
            total_matched,
            events,
        })
    }

    const UNTRUSTED: &'static [&'static str] = &["/events/*/message"];

    fn summary(out: &Output) -> String {
        let warnings = out
            .events
            .iter()
            .filter(|e| e.event_type == "Warning")
            .count();
        let mut s = format!(
            "{} event group(s){}, {warnings} warning group(s).",
            out.events.len(),
            if out.truncated {
                format!(" of {} (truncated by limit)", out.total_matched)
            } else {
                String::new()
            }
        );
        for e in out.events.iter().take(5) {
            s.push_str(&format!(
                "\n{} {} {}/{} x{}",
                e.last_seen,
                super::untrusted::word(&e.reason),
                e.kind,
                e.name,
                e.count
            ));
        }
        s
    }
}
