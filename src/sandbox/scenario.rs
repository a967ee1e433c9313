//! Scenario files: the objects, logs and history a sandbox cluster starts with.
//!
//! Times are written relative to the moment the scenario is loaded, as
//! `"${now}"`, `"${now-15m}"` or `"${now+1h}"` (any humantime duration), so a
//! scenario never ages.

use std::path::Path;

use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use serde_json::Value;
use thiserror::Error;

/// The default scenario, built into the binary.
pub const DEFAULT_SCENARIO: &str = include_str!("../../scenarios/default.json");

/// A scenario that could not be loaded.
#[derive(Debug, Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read scenario file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The JSON does not have the scenario's shape.
    #[error("scenario is not valid: {0}")]
    Parse(#[from] serde_json::Error),
    /// The content is inconsistent.
    #[error("scenario is not valid: {0}")]
    Invalid(String),
}

/// Log lines of one container, written at a fixed interval from `start`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSpec {
    /// Namespace of the pod.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Container name.
    pub container: String,
    /// Whether these are the logs of the previous (terminated) instance.
    #[serde(default)]
    pub previous: bool,
    /// Time of the first line.
    pub start: Timestamp,
    /// Seconds between lines.
    #[serde(default = "default_interval")]
    pub interval_seconds: u64,
    /// The lines.
    pub lines: Vec<String>,
}

fn default_interval() -> u64 {
    5
}

/// A loaded scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name.
    pub name: String,
    /// What the scenario shows.
    #[serde(default)]
    pub description: String,
    /// Kubernetes objects, as they would be returned by the API.
    #[serde(default)]
    pub objects: Vec<Value>,
    /// Container logs.
    #[serde(default)]
    pub logs: Vec<LogSpec>,
    /// Metric series served by the sandbox's Prometheus API.
    #[serde(default)]
    pub metrics: Vec<super::series::MetricSpec>,
}

impl Scenario {
    /// Parse a scenario from JSON text, resolving `${now…}` times against `now`.
    pub fn parse(text: &str, now: Timestamp) -> Result<Self, ScenarioError> {
        let mut value: Value = serde_json::from_str(text)?;
        resolve_times(&mut value, now)?;
        Ok(serde_json::from_value(value)?)
    }

    /// Load a scenario file.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, Timestamp::now())
    }

    /// The built-in scenario.
    pub fn builtin() -> Result<Self, ScenarioError> {
        Self::parse(DEFAULT_SCENARIO, Timestamp::now())
    }
}

fn resolve_time(expr: &str, now: Timestamp) -> Result<Option<Timestamp>, ScenarioError> {
    let Some(inner) = expr.strip_prefix("${now").and_then(|r| r.strip_suffix('}')) else {
        return Ok(None);
    };
    let inner = inner.trim();
    if inner.is_empty() {
        return Ok(Some(now));
    }
    let (sign, dur) = match inner.split_at(1) {
        ("-", d) => (-1, d),
        ("+", d) => (1, d),
        _ => {
            return Err(ScenarioError::Invalid(format!(
                "{expr:?}: expected ${{now}}, ${{now-DURATION}} or ${{now+DURATION}}"
            )));
        }
    };
    let d = humantime::parse_duration(dur.trim())
        .map_err(|e| ScenarioError::Invalid(format!("{expr:?}: {e}")))?;
    let d = SignedDuration::try_from(d)
        .map_err(|e| ScenarioError::Invalid(format!("{expr:?}: {e}")))?;
    Ok(Some(if sign < 0 { now - d } else { now + d }))
}

fn resolve_times(v: &mut Value, now: Timestamp) -> Result<(), ScenarioError> {
    match v {
        Value::String(s) => {
            if let Some(t) = resolve_time(s, now)? {
                // whole seconds (truncated), as the API server writes them
                let t = Timestamp::from_second(t.as_second())
                    .map_err(|e| ScenarioError::Invalid(e.to_string()))?;
                *s = t.to_string();
            }
        }
        Value::Array(a) => {
            for x in a {
                resolve_times(x, now)?;
            }
        }
        Value::Object(o) => {
            for (_, x) in o.iter_mut() {
                resolve_times(x, now)?;
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_relative_to_now() {
        let now: Timestamp = "2026-01-01T12:00:00Z".parse().unwrap();
        let s = Scenario::parse(
            r#"{"name":"t","objects":[{"a":"${now-15m}","b":"${now}","c":"${now+1h}","d":"x"}]}"#,
            now,
        )
        .unwrap();
        assert_eq!(s.objects[0]["a"], "2026-01-01T11:45:00Z");
        assert_eq!(s.objects[0]["b"], "2026-01-01T12:00:00Z");
        assert_eq!(s.objects[0]["c"], "2026-01-01T13:00:00Z");
        assert_eq!(s.objects[0]["d"], "x");
    }

    #[test]
    fn bad_time_expression_is_an_error() {
        let now = Timestamp::now();
        let e = Scenario::parse(r#"{"name":"t","objects":[{"a":"${now*3}"}]}"#, now).unwrap_err();
        assert!(e.to_string().contains("${now*3}"), "{e}");
        assert!(Scenario::parse(r#"{"name":"t","bogus":1}"#, now).is_err());
    }

    #[test]
    fn builtin_scenario_loads() {
        let s = Scenario::builtin().unwrap();
        assert!(!s.objects.is_empty());
        super::super::store::Store::from_scenario(&s).unwrap();
    }
}
