//! Argument validation and small helpers shared by the tools.

use std::time::Duration;

use jiff::Timestamp;

use crate::error::ToolError;

/// Check a namespace name (DNS-1123 label).
pub fn check_namespace(ns: &str) -> Result<(), ToolError> {
    if is_dns_label(ns) {
        Ok(())
    } else {
        Err(ToolError::invalid(format!(
            "namespace {ns:?} is not a valid name: use at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit"
        )))
    }
}

/// Check an object name (DNS-1123 subdomain), naming the argument in the error.
pub fn check_name(arg: &str, name: &str) -> Result<(), ToolError> {
    let ok = !name.is_empty() && name.len() <= 253 && name.split('.').all(is_dns_label);
    if ok {
        Ok(())
    } else {
        Err(ToolError::invalid(format!(
            "{arg} {name:?} is not a valid Kubernetes name: use at most 253 lower-case letters, digits, '-' and '.', starting and ending with a letter or digit"
        )))
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Parse a duration argument such as `15m`, `2h`, `1d`, bounded to `max`.
pub fn parse_duration(arg: &str, text: &str, max: Duration) -> Result<Duration, ToolError> {
    let d = humantime::parse_duration(text.trim()).map_err(|e| {
        ToolError::invalid(format!(
            "{arg} {text:?} is not a duration ({e}); write it like 30s, 15m, 2h or 1d"
        ))
    })?;
    if d.is_zero() || d > max {
        return Err(ToolError::invalid(format!(
            "{arg} {text:?} is out of range: it must be more than 0 and at most {}",
            humantime::format_duration(max)
        )));
    }
    Ok(d)
}

/// Check a count argument is within `1..=max`, or use `default` when absent.
pub fn bounded(arg: &str, value: Option<i64>, default: u32, max: u32) -> Result<u32, ToolError> {
    match value {
        None => Ok(default),
        Some(v) if v >= 1 && v <= max as i64 => Ok(v as u32),
        Some(v) => Err(ToolError::invalid(format!(
            "{arg} {v} is out of range: it must be between 1 and {max}"
        ))),
    }
}

/// RFC 3339 text of a timestamp.
pub fn ts(t: &Timestamp) -> String {
    t.to_string()
}

/// A pod template without its `pod-template-hash` label: what two ReplicaSets' templates
/// are compared by (the label differs by construction).
pub fn without_pod_template_hash(template: &serde_json::Value) -> serde_json::Value {
    let mut t = template.clone();
    if let Some(l) = t
        .pointer_mut("/metadata/labels")
        .and_then(serde_json::Value::as_object_mut)
    {
        l.remove("pod-template-hash");
    }
    t
}

/// Human age of something created at `t` (e.g. `3d4h`, `12m`).
pub fn age(t: &Timestamp) -> String {
    let secs = Timestamp::now().duration_since(*t).as_secs().max(0);
    let (d, h, m) = (secs / 86_400, (secs % 86_400) / 3_600, (secs % 3_600) / 60);
    if d > 0 {
        format!("{d}d{h}h")
    } else if h > 0 {
        format!("{h}h{m}m")
    } else if m > 0 {
        format!("{m}m")
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_namespace("shop").is_ok());
        assert!(check_namespace("Shop").is_err());
        assert!(check_namespace("-x").is_err());
        assert!(check_namespace(&"a".repeat(64)).is_err());
        assert!(check_name("pod", "cart-7d9f8b6c5d-xk2lp").is_ok());
        assert!(check_name("node", "ip-10-0-1-11.eu-west-1.compute.internal").is_ok());
        assert!(check_name("pod", "bad_name").is_err());
        assert!(check_name("pod", "").is_err());
    }

    #[test]
    fn durations_and_bounds() {
        let max = Duration::from_secs(86_400);
        assert_eq!(
            parse_duration("since", "15m", max).unwrap(),
            Duration::from_secs(900)
        );
        assert!(parse_duration("since", "0s", max).is_err());
        assert!(parse_duration("since", "2d", max).is_err());
        let e = parse_duration("since", "yesterday", max).unwrap_err();
        assert!(e.to_string().contains("15m"), "{e}");
        assert_eq!(bounded("limit", None, 50, 500).unwrap(), 50);
        assert!(bounded("limit", Some(0), 50, 500).is_err());
        assert!(bounded("limit", Some(-3), 50, 500).is_err());
        assert!(bounded("limit", Some(501), 50, 500).is_err());
    }
}

/// An RFC 7386 merge patch that turns `from` into `to`: keys missing in `to` are set to
/// null, objects are diffed recursively, anything else is replaced. Used to write a whole
/// pod template back (as `kubectl rollout undo` does) with a merge patch.
pub fn merge_diff(from: &serde_json::Value, to: &serde_json::Value) -> serde_json::Value {
    use serde_json::{Map, Value};
    match (from, to) {
        (Value::Object(f), Value::Object(t)) => {
            let mut out = Map::new();
            for k in f.keys() {
                if !t.contains_key(k) {
                    out.insert(k.clone(), Value::Null);
                }
            }
            for (k, tv) in t {
                match f.get(k) {
                    Some(fv) if fv == tv => {}
                    Some(fv) if fv.is_object() && tv.is_object() => {
                        out.insert(k.clone(), merge_diff(fv, tv));
                    }
                    _ => {
                        out.insert(k.clone(), tv.clone());
                    }
                }
            }
            Value::Object(out)
        }
        (_, t) => t.clone(),
    }
}

/// Pods a rolling update takes down at once: `maxUnavailable` of `replicas` (rounded down,
/// as the deployment controller does; 25% when unset); all of them for `Recreate`.
pub fn rollout_unavailable(
    strategy: Option<&k8s_openapi::api::apps::v1::DeploymentStrategy>,
    replicas: i64,
) -> i64 {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    if strategy.and_then(|s| s.type_.as_deref()) == Some("Recreate") {
        return replicas;
    }
    let max = strategy
        .and_then(|s| s.rolling_update.as_ref())
        .and_then(|r| r.max_unavailable.clone())
        .unwrap_or(IntOrString::String("25%".into()));
    match max {
        IntOrString::Int(n) => i64::from(n).min(replicas),
        IntOrString::String(s) => {
            let pct: i64 = s.trim_end_matches('%').trim().parse().unwrap_or(25);
            (replicas * pct / 100).min(replicas)
        }
    }
}

#[cfg(test)]
mod patch_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_diff_round_trips_through_a_merge_patch() {
        let from = json!({"metadata": {"labels": {"app": "x", "old": "1"}}, "spec": {"containers": [{"name": "a", "image": "v2"}], "nodeSelector": {"a": "b"}}});
        let to = json!({"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "a", "image": "v1"}]}});
        let patch = merge_diff(&from, &to);
        assert_eq!(
            patch,
            json!({"metadata": {"labels": {"old": null}}, "spec": {"nodeSelector": null, "containers": [{"name": "a", "image": "v1"}]}})
        );
        let mut applied = from.clone();
        crate::sandbox::mutate::merge_patch(&mut applied, &patch);
        assert_eq!(applied, to);
    }

    #[test]
    fn rollout_unavailable_follows_the_strategy() {
        use k8s_openapi::api::apps::v1::{DeploymentStrategy, RollingUpdateDeployment};
        use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
        assert_eq!(rollout_unavailable(None, 4), 1);
        assert_eq!(rollout_unavailable(None, 3), 0);
        let recreate = DeploymentStrategy {
            type_: Some("Recreate".into()),
            ..Default::default()
        };
        assert_eq!(rollout_unavailable(Some(&recreate), 4), 4);
        let two = DeploymentStrategy {
            rolling_update: Some(RollingUpdateDeployment {
                max_unavailable: Some(IntOrString::Int(2)),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(rollout_unavailable(Some(&two), 4), 2);
    }
}
