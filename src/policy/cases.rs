//! Policy test cases: tables of requests with the expected decision, kept in
//! `policies/tests/*.json`, run by `cargo test` and by `eks-ops-mcp policy test`.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::facts::{DEFAULT_ALLOWED_VERBS, DEFAULT_REPLICA_CEILING, Facts, Target};
use super::{Outcome, PolicyEngine, PolicyError, PolicyRequest};

/// One case.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// What the case checks.
    pub name: String,
    /// The action (tool name).
    pub action: String,
    /// The object acted on.
    pub resource: Target,
    /// Facts, merged over the file's defaults and the configuration defaults.
    #[serde(default)]
    pub facts: Value,
    /// Expected outcome.
    pub expect: Outcome,
    /// Policy ids that must be among the deciding ones.
    #[serde(default)]
    pub policies: Vec<String>,
    /// Principal (default `agent`).
    #[serde(default)]
    pub principal: Option<String>,
    /// Decide as if a human approved.
    #[serde(default)]
    pub approved: bool,
}

/// A file of cases.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    /// What the file covers.
    #[serde(default)]
    pub description: String,
    /// Facts merged under every case's facts.
    #[serde(default)]
    pub defaults: Value,
    /// The cases.
    pub cases: Vec<Case>,
}

/// The result of one case.
#[derive(Debug)]
pub struct CaseResult {
    /// File the case is in.
    pub file: String,
    /// Case name.
    pub name: String,
    /// Whether it passed.
    pub passed: bool,
    /// What was expected and what came out.
    pub detail: String,
}

fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, o) if !o.is_null() => *b = o.clone(),
        _ => {}
    }
}

/// Facts of a case: configuration defaults, then the file's defaults, then the case's facts.
pub fn case_facts(case: &Case, defaults: &Value) -> Result<Facts, String> {
    let verbs: Vec<String> = DEFAULT_ALLOWED_VERBS
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut v = serde_json::to_value(Facts::new(&case.action, &case.resource.namespace, &verbs))
        .map_err(|e| e.to_string())?;
    merge(&mut v, defaults);
    merge(&mut v, &case.facts);
    // a replicas/hpa block without a ceiling gets the default ceiling
    for key in ["replicas", "hpa"] {
        if let Some(o) = v.get_mut(key).and_then(Value::as_object_mut) {
            o.entry("ceiling")
                .or_insert(Value::from(DEFAULT_REPLICA_CEILING));
        }
    }
    // no earlier change in the window unless the case says so: the hour's range is `current`
    if let Some(o) = v.get_mut("replicas").and_then(Value::as_object_mut) {
        let current = o.get("current").cloned().unwrap_or(Value::Null);
        for key in ["low_last_hour", "high_last_hour"] {
            o.entry(key).or_insert(current.clone());
        }
    }
    if let Some(o) = v.get_mut("hpa").and_then(Value::as_object_mut) {
        o.entry("target_kind").or_insert(Value::from("Deployment"));
    }
    serde_json::from_value(v)
        .map_err(|e| format!("facts of case {:?} are not valid: {e}", case.name))
}

/// Run one file of cases.
pub fn run_file(engine: &PolicyEngine, path: &Path) -> Result<Vec<CaseResult>, PolicyError> {
    let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let file: CaseFile = serde_json::from_str(&text)
        .map_err(|e| PolicyError::Invalid(format!("{}: {e}", path.display())))?;
    let fname = path.display().to_string();
    let mut out = Vec::new();
    for case in &file.cases {
        let facts = match case_facts(case, &file.defaults) {
            Ok(f) => f,
            Err(e) => {
                out.push(CaseResult {
                    file: fname.clone(),
                    name: case.name.clone(),
                    passed: false,
                    detail: e,
                });
                continue;
            }
        };
        let req = PolicyRequest {
            principal: case.principal.clone().unwrap_or_else(|| "agent".into()),
            action: case.action.clone(),
            resource: case.resource.clone(),
            facts,
        };
        let decision = if case.approved {
            engine.decide_approved(&req)
        } else {
            engine.decide(&req)
        };
        let result = match decision {
            Err(e) => CaseResult {
                file: fname.clone(),
                name: case.name.clone(),
                passed: false,
                detail: e.to_string(),
            },
            Ok(d) => {
                let ids: Vec<&str> = d.policies.iter().map(|p| p.id.as_str()).collect();
                let missing: Vec<&String> = case
                    .policies
                    .iter()
                    .filter(|p| !ids.contains(&p.as_str()))
                    .collect();
                let passed = d.outcome == case.expect && missing.is_empty();
                CaseResult {
                    file: fname.clone(),
                    name: case.name.clone(),
                    passed,
                    detail: format!(
                        "expected {}{}, got {} by [{}]",
                        case.expect,
                        if case.policies.is_empty() {
                            String::new()
                        } else {
                            format!(" by [{}]", case.policies.join(", "))
                        },
                        d.outcome,
                        ids.join(", ")
                    ),
                }
            }
        };
        out.push(result);
    }
    Ok(out)
}

/// Run every `*.json` case file of a folder, in name order.
pub fn run_dir(engine: &PolicyEngine, dir: &Path) -> Result<Vec<CaseResult>, PolicyError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| PolicyError::Io {
            path: dir.to_path_buf(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        out.extend(run_file(engine, &f)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_cases_pass() {
        let engine = PolicyEngine::builtin().unwrap();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/tests");
        let results = run_dir(&engine, &dir).unwrap();
        assert!(results.len() >= 40, "only {} cases", results.len());
        let failed: Vec<String> = results
            .iter()
            .filter(|r| !r.passed)
            .map(|r| format!("{} / {}: {}", r.file, r.name, r.detail))
            .collect();
        assert!(
            failed.is_empty(),
            "failing policy cases:\n{}",
            failed.join("\n")
        );
    }
}
