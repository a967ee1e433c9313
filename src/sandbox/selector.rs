//! Kubernetes label and field selectors, as the API server parses them.
//!
//! Written here rather than taken from a crate: kube-rs only *builds* selectors
//! (client side) and no maintained crate parses the server-side grammar.

use serde_json::Value;
use thiserror::Error;

/// A selector that could not be parsed.
#[derive(Debug, Error, PartialEq)]
#[error("invalid selector {selector:?}: {reason}")]
pub struct SelectorError {
    /// The selector text as received.
    pub selector: String,
    /// What was wrong with it.
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector (`app=web,tier in (a,b),!canary`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector(Vec<Requirement>);

/// Split on commas that are not inside parentheses.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 316
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn parse_set(selector: &str, rest: &str) -> Result<Vec<String>, SelectorError> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| SelectorError {
            selector: selector.to_string(),
            reason: "a set must be written as (v1,v2)".into(),
        })?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

impl LabelSelector {
    /// Parse the `labelSelector` query parameter.
    pub fn parse(selector: &str) -> Result<Self, SelectorError> {
        let err = |reason: &str| SelectorError {
            selector: selector.to_string(),
            reason: reason.to_string(),
        };
        let mut reqs = Vec::new();
        if selector.trim().is_empty() {
            return Ok(Self(reqs));
        }
        for part in split_top_level(selector) {
            let part = part.trim();
            if part.is_empty() {
                return Err(err("empty requirement"));
            }
            let req = if let Some(key) = part.strip_prefix('!') {
                Requirement::NotExists(key.trim().to_string())
            } else if let Some((k, v)) = part.split_once("!=") {
                Requirement::NotEquals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once("==") {
                Requirement::Equals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once('=') {
                Requirement::Equals(k.trim().into(), v.trim().into())
            } else if let Some(idx) = part.find(" notin ") {
                Requirement::NotIn(
                    part[..idx].trim().into(),
                    parse_set(selector, &part[idx + 7..])?,
                )
            } else if let Some(idx) = part.find(" in ") {
                Requirement::In(
                    part[..idx].trim().into(),
                    parse_set(selector, &part[idx + 4..])?,
                )
            } else {
                Requirement::Exists(part.to_string())
            };
            let key = match &req {
                Requirement::Equals(k, _)
                | Requirement::NotEquals(k, _)
                | Requirement::In(k, _)
                | Requirement::NotIn(k, _)
                | Requirement::Exists(k)
                | Requirement::NotExists(k) => k,
            };
            if !valid_key(key) {
                return Err(err(&format!("invalid label key {key:?}")));
            }
            reqs.push(req);
        }
        Ok(Self(reqs))
    }

    /// Whether an object's labels satisfy every requirement.
    pub fn matches(&self, labels: Option<&serde_json::Map<String, Value>>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::NotIn(k, vs) => !get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::NotExists(k) => get(k).is_none(),
        })
    }
}

/// A parsed field selector (`spec.nodeName=n1,status.phase!=Running`).
///
/// Any dotted path into the object is accepted; a real API server accepts a
/// fixed set per resource, which is a subset of this.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector(Vec<(Vec<String>, bool, String)>);

impl FieldSelector {
    /// Parse the `fieldSelector` query parameter.
    pub fn parse(selector: &str) -> Result<Self, SelectorError> {
        let mut reqs = Vec::new();
        if selector.trim().is_empty() {
            return Ok(Self(reqs));
        }
        for part in selector.split(',') {
            let part = part.trim();
            let (path, eq, value) = if let Some((k, v)) = part.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = part.split_once("==") {
                (k, true, v)
            } else if let Some((k, v)) = part.split_once('=') {
                (k, true, v)
            } else {
                return Err(SelectorError {
                    selector: selector.to_string(),
                    reason: format!("{part:?} is not of the form field=value or field!=value"),
                });
            };
            reqs.push((
                path.trim().split('.').map(str::to_string).collect(),
                eq,
                value.trim().to_string(),
            ));
        }
        Ok(Self(reqs))
    }

    /// Whether the object satisfies every requirement.
    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(path, eq, want)| {
            let mut cur = obj;
            for seg in path {
                cur = cur.get(seg).unwrap_or(&Value::Null);
            }
            let have = match cur {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (have == *want) == *eq
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(v: Value) -> serde_json::Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn label_selector_semantics() {
        let l = labels(json!({"app": "web", "tier": "front"}));
        let t = |s: &str| LabelSelector::parse(s).unwrap().matches(Some(&l));
        assert!(t("app=web"));
        assert!(t("app==web,tier=front"));
        assert!(!t("app!=web"));
        assert!(t("tier in (front, back)"));
        assert!(!t("tier notin (front)"));
        assert!(t("app"));
        assert!(!t("!app"));
        assert!(t("!canary"));
        assert!(t(""));
        assert!(!LabelSelector::parse("missing=x").unwrap().matches(None));
    }

    #[test]
    fn label_selector_errors() {
        assert!(LabelSelector::parse("app=web,,x=y").is_err());
        assert!(LabelSelector::parse("tier in front").is_err());
        assert!(LabelSelector::parse("bad key=1").is_err());
    }

    #[test]
    fn field_selector_semantics() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        let t = |s: &str| FieldSelector::parse(s).unwrap().matches(&pod);
        assert!(t("metadata.name=p"));
        assert!(t("spec.nodeName==n1,status.phase!=Pending"));
        assert!(!t("spec.nodeName=n2"));
        assert!(t("spec.missing="));
        assert!(FieldSelector::parse("nonsense").is_err());
    }
}
