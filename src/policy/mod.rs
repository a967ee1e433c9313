//! The policy engine: Cedar policies over facts gathered from the cluster, with three
//! outcomes. Pure: facts in, decision out; no I/O besides loading policy files.
//!
//! A satisfied `forbid` annotated `@escalate("why")` means a human may lift it
//! (**escalate**); any other satisfied `forbid` means **deny**; no satisfied `permit`
//! means **deny**. After a human approves, the request is decided again without the
//! escalation-only forbids (see [`PolicyEngine::decide_approved`]); hard forbids still hold.

pub mod cases;
pub mod facts;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use cedar_policy::{
    Authorizer, Context, Entities, EntityUid, Policy, PolicyId, PolicySet, Request, Schema,
    ValidationMode, Validator,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use thiserror::Error;

pub use facts::{Facts, Target};

/// The built-in Cedar schema.
pub const BUILTIN_SCHEMA: &str = include_str!("../../policies/schema.cedarschema");
/// The built-in default policies.
pub const BUILTIN_POLICIES: &str = include_str!("../../policies/default.cedar");

/// Errors loading policies or deciding.
#[derive(Debug, Error)]
pub enum PolicyError {
    /// A policy or schema file is not valid; the message points at file, line and column.
    #[error("{0}")]
    Invalid(String),
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The request does not fit the schema (a defect in fact gathering, or an unknown action).
    #[error("policy request is not valid: {0}")]
    Request(String),
}

/// The three outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The action may run on its own.
    Allow,
    /// The action never runs.
    Deny,
    /// A human must approve the action.
    Escalate,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::Allow => "allow",
            Outcome::Deny => "deny",
            Outcome::Escalate => "escalate",
        })
    }
}

/// A policy that decided, with its message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DecidingPolicy {
    /// The policy's `@id`.
    pub id: String,
    /// `permit` or `forbid`.
    pub effect: String,
    /// The policy's `@message`.
    pub message: String,
    /// For an escalation policy: why a human must decide.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub escalate: Option<String>,
}

/// A decision with the policies behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Decision {
    /// allow, deny or escalate.
    pub outcome: Outcome,
    /// The deciding policies: for allow the permits, for deny the hard forbids (empty when no
    /// permit applied), for escalate the escalation forbids a human would lift.
    pub policies: Vec<DecidingPolicy>,
    /// One sentence saying why.
    pub reason: String,
}

/// An authorisation question.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyRequest {
    /// The calling agent.
    pub principal: String,
    /// The action (tool name).
    pub action: String,
    /// The object acted on.
    pub resource: Target,
    /// Facts gathered from the cluster and configuration.
    pub facts: Facts,
}

struct Meta {
    message: String,
    escalate: Option<String>,
    effect: String,
}

/// The loaded, validated policies.
pub struct PolicyEngine {
    schema: Schema,
    all: PolicySet,
    hard: PolicySet,
    meta: HashMap<String, Meta>,
    authorizer: Authorizer,
    action_entities: Entities,
}

impl std::fmt::Debug for PolicyEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyEngine")
            .field("policies", &self.meta.len())
            .finish()
    }
}

/// Render a Cedar diagnostic as `file:line:col: message (help)`.
fn render(file: &str, src: &str, err: &dyn miette::Diagnostic) -> String {
    let mut out = String::new();
    let labels: Vec<miette::LabeledSpan> = err.labels().map(|l| l.collect()).unwrap_or_default();
    let (line, col) = labels
        .first()
        .map(|l| {
            let offset = l.offset().min(src.len());
            let before = &src[..offset];
            let line = before.matches('\n').count() + 1;
            let col = before.rsplit('\n').next().map_or(0, |s| s.chars().count()) + 1;
            (line, col)
        })
        .unwrap_or((0, 0));
    if line > 0 {
        out.push_str(&format!("{file}:{line}:{col}: {err}"));
        if let Some(text) = src.lines().nth(line - 1) {
            out.push_str(&format!("\n    {line} | {text}"));
        }
    } else {
        out.push_str(&format!("{file}: {err}"));
    }
    for l in &labels {
        if let Some(label) = l.label() {
            out.push_str(&format!("\n    note: {label}"));
        }
    }
    if let Some(help) = err.help() {
        out.push_str(&format!("\n    help: {help}"));
    }
    out
}

fn render_all<E: miette::Diagnostic>(
    file: &str,
    src: &str,
    errs: impl IntoIterator<Item = E>,
) -> String {
    errs.into_iter()
        .map(|e| render(file, src, &e))
        .collect::<Vec<_>>()
        .join("\n")
}

impl PolicyEngine {
    /// The built-in schema and default policies.
    pub fn builtin() -> Result<Self, PolicyError> {
        Self::from_sources(
            ("policies/schema.cedarschema", BUILTIN_SCHEMA),
            &[("policies/default.cedar", BUILTIN_POLICIES.to_string())],
        )
    }

    /// Load `schema.cedarschema` (built-in when the folder has none) and every `*.cedar` file of
    /// `dir`; with `extend`, the built-in default policies are loaded too.
    pub fn from_dir(dir: &Path, extend: bool) -> Result<Self, PolicyError> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|source| PolicyError::Io {
                path: p.to_path_buf(),
                source,
            })
        };
        let schema_path = dir.join("schema.cedarschema");
        let schema_src = if schema_path.exists() {
            read(&schema_path)?
        } else {
            BUILTIN_SCHEMA.to_string()
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|source| PolicyError::Io {
                path: dir.to_path_buf(),
                source,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "cedar"))
            .collect();
        files.sort();
        let mut sources = Vec::new();
        if extend {
            sources.push((
                "policies/default.cedar (built-in)".to_string(),
                BUILTIN_POLICIES.to_string(),
            ));
        }
        for f in &files {
            sources.push((f.display().to_string(), read(f)?));
        }
        if sources.is_empty() {
            return Err(PolicyError::Invalid(format!(
                "{} has no .cedar policy files",
                dir.display()
            )));
        }
        let refs: Vec<(&str, String)> = sources
            .iter()
            .map(|(n, s)| (n.as_str(), s.clone()))
            .collect();
        Self::from_sources((&schema_path.display().to_string(), &schema_src), &refs)
    }

    /// Build from a schema and policy texts, each with the file name used in errors.
    pub fn from_sources(
        schema: (&str, &str),
        policies: &[(&str, String)],
    ) -> Result<Self, PolicyError> {
        let (schema_file, schema_src) = schema;
        let (schema, _warnings) = Schema::from_cedarschema_str(schema_src)
            .map_err(|e| PolicyError::Invalid(render(schema_file, schema_src, &e)))?;
        let validator = Validator::new(schema.clone());
        let mut all = PolicySet::new();
        let mut hard = PolicySet::new();
        let mut meta = HashMap::new();
        let mut origin: HashMap<String, String> = HashMap::new();
        for (file, src) in policies {
            let set = PolicySet::from_str(src)
                .map_err(|e| PolicyError::Invalid(render(file, src, &e)))?;
            let result = validator.validate(&set, ValidationMode::Strict);
            if !result.validation_passed() {
                return Err(PolicyError::Invalid(render_all(
                    file,
                    src,
                    result.validation_errors().cloned(),
                )));
            }
            for p in set.policies() {
                let Some(id) = p.annotation("id").map(str::to_string) else {
                    return Err(PolicyError::Invalid(format!(
                        "{file}: a policy has no @id annotation; every policy needs @id(\"…\") and @message(\"…\"):\n{}",
                        p.to_string().lines().take(3).collect::<Vec<_>>().join("\n")
                    )));
                };
                if let Some(first) = origin.insert(id.clone(), file.to_string()) {
                    return Err(PolicyError::Invalid(format!(
                        "{file}: @id(\"{id}\") is used twice (also in {first}); policy ids must be unique"
                    )));
                }
                let message = p.annotation("message").map(str::to_string).ok_or_else(|| {
                    PolicyError::Invalid(format!("{file}: policy {id} has no @message annotation"))
                })?;
                let effect = p.effect().to_string();
                let escalate = p.annotation("escalate").map(|e| {
                    if e.is_empty() {
                        message.clone()
                    } else {
                        e.to_string()
                    }
                });
                if escalate.is_some() && effect != "forbid" {
                    return Err(PolicyError::Invalid(format!(
                        "{file}: policy {id} is a permit with @escalate; only forbid policies can escalate"
                    )));
                }
                let policy: Policy = p.new_id(PolicyId::new(&id));
                all.add(policy.clone())
                    .map_err(|e| PolicyError::Invalid(format!("{file}: {e}")))?;
                if escalate.is_none() {
                    hard.add(policy)
                        .map_err(|e| PolicyError::Invalid(format!("{file}: {e}")))?;
                }
                meta.insert(
                    id,
                    Meta {
                        message,
                        escalate,
                        effect,
                    },
                );
            }
        }
        let action_entities = schema
            .action_entities()
            .map_err(|e| PolicyError::Invalid(format!("{schema_file}: {e}")))?;
        Ok(Self {
            schema,
            all,
            hard,
            meta,
            authorizer: Authorizer::new(),
            action_entities,
        })
    }

    /// Number of loaded policies.
    pub fn len(&self) -> usize {
        self.meta.len()
    }

    /// Whether no policy is loaded.
    pub fn is_empty(&self) -> bool {
        self.meta.is_empty()
    }

    fn cedar_request(&self, req: &PolicyRequest) -> Result<(Request, Entities), PolicyError> {
        let bad = |e: &dyn std::fmt::Display| PolicyError::Request(e.to_string());
        let principal = EntityUid::from_str(&format!("Agent::{}", json!(req.principal)))
            .map_err(|e| bad(&e))?;
        let action =
            EntityUid::from_str(&format!("Action::{}", json!(req.action))).map_err(|e| bad(&e))?;
        let r = &req.resource;
        let rid = if r.namespace.is_empty() {
            r.name.clone()
        } else {
            format!("{}/{}", r.namespace, r.name)
        };
        let resource =
            EntityUid::from_str(&format!("{}::{}", r.kind, json!(rid))).map_err(|_| {
                PolicyError::Request(format!(
                    "resource kind {:?} is not a policy entity type",
                    r.kind
                ))
            })?;
        let tags: BTreeMap<&String, &String> = r.labels.iter().collect();
        let entities_json = json!([
            {"uid": {"type": "Agent", "id": req.principal}, "attrs": {}, "parents": []},
            {"uid": {"type": r.kind, "id": rid}, "attrs": {"namespace": r.namespace, "name": r.name},
             "parents": [], "tags": tags}
        ]);
        let entities = self
            .action_entities
            .clone()
            .add_entities_from_json_value(entities_json, Some(&self.schema))
            .map_err(|e| bad(&e))?;
        let context_json = serde_json::to_value(&req.facts).map_err(|e| bad(&e))?;
        let context = Context::from_json_value(context_json, Some((&self.schema, &action)))
            .map_err(|e| bad(&e))?;
        let request = Request::new(principal, action, resource, context, Some(&self.schema))
            .map_err(|e| bad(&e))?;
        Ok((request, entities))
    }

    fn deciding(&self, ids: impl Iterator<Item = String>) -> Vec<DecidingPolicy> {
        let mut out: Vec<DecidingPolicy> = ids
            .filter_map(|id| {
                self.meta.get(&id).map(|m| DecidingPolicy {
                    id: id.clone(),
                    effect: m.effect.clone(),
                    message: m.message.clone(),
                    escalate: m.escalate.clone(),
                })
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// Decide a request.
    pub fn decide(&self, req: &PolicyRequest) -> Result<Decision, PolicyError> {
        self.decide_inner(req, false)
    }

    /// Decide a request a human has approved: escalation forbids are lifted, hard forbids hold.
    pub fn decide_approved(&self, req: &PolicyRequest) -> Result<Decision, PolicyError> {
        self.decide_inner(req, true)
    }

    fn decide_inner(&self, req: &PolicyRequest, approved: bool) -> Result<Decision, PolicyError> {
        let action_uid = EntityUid::from_str(&format!("Action::{}", json!(req.action)))
            .map_err(|e| PolicyError::Request(e.to_string()))?;
        if self.action_entities.get(&action_uid).is_none() {
            return Ok(Decision {
                outcome: Outcome::Deny,
                policies: vec![],
                reason: format!(
                    "the policies know no action {:?}; nothing permits it",
                    req.action
                ),
            });
        }
        let (request, entities) = self.cedar_request(req)?;
        let errors = |resp: &cedar_policy::Response| -> Result<(), PolicyError> {
            let errs: Vec<String> = resp.diagnostics().errors().map(|e| e.to_string()).collect();
            if errs.is_empty() {
                Ok(())
            } else {
                Err(PolicyError::Request(format!(
                    "policy evaluation failed: {}",
                    errs.join("; ")
                )))
            }
        };
        let hard = self
            .authorizer
            .is_authorized(&request, &self.hard, &entities);
        errors(&hard)?;
        let hard_ids: Vec<String> = hard.diagnostics().reason().map(|p| p.to_string()).collect();
        if hard.decision() == cedar_policy::Decision::Deny {
            let policies = self.deciding(hard_ids.into_iter());
            let reason = if policies.is_empty() {
                format!(
                    "no policy permits {} on {} {}",
                    req.action, req.resource.kind, req.resource.name
                )
            } else {
                policies
                    .iter()
                    .map(|p| p.message.clone())
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            return Ok(Decision {
                outcome: Outcome::Deny,
                policies,
                reason,
            });
        }
        if approved {
            return Ok(Decision {
                outcome: Outcome::Allow,
                policies: self.deciding(hard_ids.into_iter()),
                reason: "approved by a human; no hard rule forbids it".into(),
            });
        }
        let full = self
            .authorizer
            .is_authorized(&request, &self.all, &entities);
        errors(&full)?;
        let ids: Vec<String> = full.diagnostics().reason().map(|p| p.to_string()).collect();
        if full.decision() == cedar_policy::Decision::Allow {
            let policies = self.deciding(ids.into_iter());
            return Ok(Decision {
                outcome: Outcome::Allow,
                reason: "allowed: within the automatic rules".into(),
                policies,
            });
        }
        let policies = self.deciding(ids.into_iter());
        let reason = policies
            .iter()
            .map(|p| p.message.clone())
            .collect::<Vec<_>>()
            .join("; ");
        Ok(Decision {
            outcome: Outcome::Escalate,
            policies,
            reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_policies_load() {
        let e = PolicyEngine::builtin().unwrap();
        assert!(e.len() >= 15);
    }

    #[test]
    fn a_bad_policy_points_at_its_line() {
        let bad = "@id(\"x\") @message(\"m\")\npermit (principal, action, resource)\nwhen { context.nonexistent == 1 };\n";
        let err = PolicyEngine::from_sources(
            ("schema", BUILTIN_SCHEMA),
            &[("custom.cedar", bad.to_string())],
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("custom.cedar:3:"), "{err}");
        assert!(err.contains("nonexistent"), "{err}");
        let syntax = "@id(\"x\") @message(\"m\")\npermit (principal, action, resource\n";
        let err = PolicyEngine::from_sources(
            ("schema", BUILTIN_SCHEMA),
            &[("s.cedar", syntax.to_string())],
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("s.cedar:"), "{err}");
    }

    #[test]
    fn ids_and_messages_are_required_and_unique() {
        let no_id = "@message(\"m\") permit (principal, action, resource);";
        let e =
            PolicyEngine::from_sources(("schema", BUILTIN_SCHEMA), &[("a.cedar", no_id.into())])
                .unwrap_err();
        assert!(e.to_string().contains("no @id"), "{e}");
        let dup = "@id(\"x\") @message(\"m\") permit (principal, action, resource);";
        let e = PolicyEngine::from_sources(
            ("schema", BUILTIN_SCHEMA),
            &[("a.cedar", dup.into()), ("b.cedar", dup.into())],
        )
        .unwrap_err();
        assert!(e.to_string().contains("used twice"), "{e}");
        let esc_permit =
            "@id(\"x\") @message(\"m\") @escalate(\"y\") permit (principal, action, resource);";
        let e = PolicyEngine::from_sources(
            ("schema", BUILTIN_SCHEMA),
            &[("a.cedar", esc_permit.into())],
        )
        .unwrap_err();
        assert!(e.to_string().contains("only forbid"), "{e}");
    }
}
