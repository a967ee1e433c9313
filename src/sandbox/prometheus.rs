//! The sandbox's Prometheus HTTP API (`/api/v1/query_range`, `/api/v1/query`) over the
//! scenario's series, so every metrics and forecasting tool works on the sandbox.
//!
//! It evaluates series selectors (`name{label="v", l2=~"re", l3!="x"}`) — the sandbox
//! generates its series already as rates and gauges, so no functions are needed; anything
//! else is answered with Prometheus' own error shape (`bad_data`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use regex::Regex;
use serde_json::{Value, json};

/// One generated series.
#[derive(Debug, Clone)]
pub struct SandboxSeries {
    /// Metric name.
    pub name: String,
    /// Labels (without `__name__`).
    pub labels: BTreeMap<String, String>,
    /// (unix seconds, value), oldest first, on a regular step.
    pub points: Vec<(i64, f64)>,
}

/// State of the Prometheus API.
#[derive(Clone)]
pub struct PromState {
    /// The series.
    pub series: Arc<Vec<SandboxSeries>>,
}

enum Op {
    Eq,
    Ne,
    Re,
    NotRe,
}

struct Matcher {
    label: String,
    op: Op,
    value: String,
    re: Option<Regex>,
}

fn bad_data(msg: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"status": "error", "errorType": "bad_data", "error": msg.into()})),
    )
        .into_response()
}

/// Parse a series selector.
fn parse_selector(q: &str) -> Result<Vec<Matcher>, String> {
    let q = q.trim();
    let unsupported = || {
        format!(
            "the sandbox's Prometheus evaluates series selectors only (like http_requests_per_second{{service=\"checkout\"}}), not {q:?}"
        )
    };
    let (name, rest) = match q.find('{') {
        Some(i) => (&q[..i], &q[i..]),
        None => (q, ""),
    };
    let name = name.trim();
    let mut matchers = Vec::new();
    if !name.is_empty() {
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        {
            return Err(unsupported());
        }
        matchers.push(Matcher {
            label: "__name__".into(),
            op: Op::Eq,
            value: name.into(),
            re: None,
        });
    }
    if !rest.is_empty() {
        let inner = rest
            .strip_prefix('{')
            .and_then(|r| r.strip_suffix('}'))
            .ok_or_else(unsupported)?;
        for part in inner.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (label, op, value) = ["!~", "=~", "!=", "="]
                .iter()
                .find_map(|op| part.split_once(op).map(|(l, v)| (l.trim(), *op, v.trim())))
                .ok_or_else(unsupported)?;
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .ok_or_else(|| format!("parse error: label value of {label} must be quoted"))?;
            let op = match op {
                "=" => Op::Eq,
                "!=" => Op::Ne,
                "=~" => Op::Re,
                _ => Op::NotRe,
            };
            let re = match op {
                Op::Re | Op::NotRe => Some(Regex::new(&format!("^(?:{value})$")).map_err(|e| {
                    format!("parse error: invalid regular expression {value:?}: {e}")
                })?),
                _ => None,
            };
            matchers.push(Matcher {
                label: label.into(),
                op,
                value: value.into(),
                re,
            });
        }
    }
    if matchers.is_empty() {
        return Err(
            "parse error: vector selector must contain at least one non-empty matcher".into(),
        );
    }
    Ok(matchers)
}

fn matches(s: &SandboxSeries, ms: &[Matcher]) -> bool {
    ms.iter().all(|m| {
        let v = if m.label == "__name__" {
            Some(s.name.as_str())
        } else {
            s.labels.get(&m.label).map(String::as_str)
        };
        let v = v.unwrap_or("");
        match m.op {
            Op::Eq => v == m.value,
            Op::Ne => v != m.value,
            Op::Re => m.re.as_ref().is_some_and(|r| r.is_match(v)),
            Op::NotRe => !m.re.as_ref().is_some_and(|r| r.is_match(v)),
        }
    })
}

fn metric(s: &SandboxSeries) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("__name__".into(), json!(s.name));
    for (k, v) in &s.labels {
        m.insert(k.clone(), json!(v));
    }
    Value::Object(m)
}

fn params(query: HashMap<String, String>, body: &Bytes) -> HashMap<String, String> {
    let mut p = query;
    if let Ok(form) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(body) {
        p.extend(form);
    }
    p
}

fn time_param(p: &HashMap<String, String>, key: &str) -> Result<Option<f64>, String> {
    match p.get(key) {
        None => Ok(None),
        Some(v) => v
            .parse::<f64>()
            .ok()
            .or_else(|| {
                v.parse::<jiff::Timestamp>()
                    .ok()
                    .map(|t| t.as_second() as f64)
            })
            .map(Some)
            .ok_or_else(|| {
                format!("invalid parameter \"{key}\": cannot parse {v:?} to a valid timestamp")
            }),
    }
}

/// Value of a series at `t`: the last sample at or before it within 5 minutes (Prometheus'
/// lookback delta).
fn at(s: &SandboxSeries, t: i64) -> Option<f64> {
    let i = s.points.partition_point(|(pt, _)| *pt <= t);
    let (pt, v) = *s.points.get(i.checked_sub(1)?)?;
    (t - pt <= 300).then_some(v)
}

fn fmt(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

/// `/api/v1/query_range`.
pub async fn query_range(
    State(st): State<PromState>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let p = params(q, &body);
    let Some(query) = p.get("query") else {
        return bad_data("invalid parameter \"query\": no query given");
    };
    let ms = match parse_selector(query) {
        Ok(m) => m,
        Err(e) => return bad_data(e),
    };
    let (start, end) = match (time_param(&p, "start"), time_param(&p, "end")) {
        (Ok(Some(s)), Ok(Some(e))) => (s as i64, e as i64),
        (Err(r), _) | (_, Err(r)) => return bad_data(r),
        _ => return bad_data("invalid parameter \"start\"/\"end\": both are required"),
    };
    if end < start {
        return bad_data("invalid parameter \"end\": end timestamp must not be before start time");
    }
    let step = match p
        .get("step")
        .and_then(|s| s.trim_end_matches('s').parse::<f64>().ok())
    {
        Some(s) if s > 0.0 => s as i64,
        _ => {
            return bad_data(
                "invalid parameter \"step\": zero or negative query resolution step widths are not accepted",
            );
        }
    };
    if (end - start) / step > 11_000 {
        return bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        );
    }
    let result: Vec<Value> = st
        .series
        .iter()
        .filter(|s| matches(s, &ms))
        .filter_map(|s| {
            let values: Vec<Value> = (0..=(end - start) / step)
                .filter_map(|i| {
                    let t = start + i * step;
                    at(s, t).map(|v| json!([t, fmt(v)]))
                })
                .collect();
            (!values.is_empty()).then(|| json!({"metric": metric(s), "values": values}))
        })
        .collect();
    axum::Json(json!({"status": "success", "data": {"resultType": "matrix", "result": result}}))
        .into_response()
}

/// `/api/v1/query`.
pub async fn query(
    State(st): State<PromState>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let p = params(q, &body);
    let Some(query) = p.get("query") else {
        return bad_data("invalid parameter \"query\": no query given");
    };
    let ms = match parse_selector(query) {
        Ok(m) => m,
        Err(e) => return bad_data(e),
    };
    let t = match time_param(&p, "time") {
        Ok(t) => t.map_or_else(|| jiff::Timestamp::now().as_second(), |t| t as i64),
        Err(r) => return bad_data(r),
    };
    let result: Vec<Value> = st
        .series
        .iter()
        .filter(|s| matches(s, &ms))
        .filter_map(|s| at(s, t).map(|v| json!({"metric": metric(s), "value": [t, fmt(v)]})))
        .collect();
    axum::Json(json!({"status": "success", "data": {"resultType": "vector", "result": result}}))
        .into_response()
}

/// `/-/ready` and `/-/healthy`.
pub async fn ready() -> &'static str {
    "Prometheus Server is Ready.\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors() {
        let s = SandboxSeries {
            name: "up".into(),
            labels: [("job".to_string(), "api".to_string())].into(),
            points: vec![],
        };
        let t = |q: &str| matches(&s, &parse_selector(q).unwrap());
        assert!(t("up"));
        assert!(t("up{job=\"api\"}"));
        assert!(t("{job=~\"a.*\"}"));
        assert!(!t("up{job!=\"api\"}"));
        assert!(!t("up{job!~\"api\"}"));
        assert!(parse_selector("rate(up[5m])").is_err());
        assert!(parse_selector("{}").is_err());
        assert!(parse_selector("up{job=api}").is_err());
    }
}
