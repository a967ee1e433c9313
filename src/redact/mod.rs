//! Masking of credentials in everything that leaves the server: tool results, error
//! messages, audit records and log output.
//!
//! One pass, [`redact_value`], walks a JSON value and masks every string in it (and every
//! string under a key that names a secret, such as `"SessionToken"`). The shapes masked in
//! text are the named rules of [`rules`]; a [`regex::RegexSet`] over all of them finds, in
//! one scan, the few rules worth running on a string, so text without credentials costs one
//! DFA pass.
//!
//! Not masked, by decision: identifiers that are not credentials (hex ids, UIDs, digests,
//! resource versions, pod-template hashes, AWS access key *ids* are masked though, as every
//! scanner flags them), and the *names* of Kubernetes Secrets (`secretName: db-creds`): a
//! name says where a credential lives, not what it is, and the agent needs it to diagnose a
//! missing Secret.

mod rules;
pub mod writer;

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::{Regex, RegexSet};
use serde_json::Value;

pub use writer::RedactingWriter;

/// The marker that replaces a secret after a key (`password=[REDACTED]`).
pub const MARKER: &str = "[REDACTED]";

struct Compiled {
    rule: &'static rules::Rule,
    re: Regex,
    marker: String,
}

struct Engine {
    set: RegexSet,
    rules: Vec<Compiled>,
    secret_key: Regex,
    not_secret_key: Regex,
}

/// `\b` in the table means an ASCII word boundary: a Unicode one would send every search
/// of non-ASCII text to the slow engines.
fn ascii_boundaries(pattern: &str) -> String {
    pattern.replace(r"\b", r"(?-u:\b)")
}

static ENGINE: LazyLock<Engine> = LazyLock::new(|| {
    let patterns: Vec<String> = rules::RULES
        .iter()
        .map(|r| ascii_boundaries(r.pattern))
        .collect();
    let set = RegexSet::new(&patterns).expect("redaction patterns are valid");
    let rules = rules::RULES
        .iter()
        .zip(&patterns)
        .map(|(rule, p)| Compiled {
            rule,
            re: Regex::new(p).expect("redaction patterns are valid"),
            marker: if rule.keyed {
                MARKER.to_string()
            } else {
                format!("[REDACTED:{}]", rule.name)
            },
        })
        .collect();
    let secret_key = Regex::new(&ascii_boundaries(&format!(
        r"(?i)^(?:[A-Za-z0-9_.\-]*?(?:{})|(?:[A-Za-z0-9]*[_.\-])?(?:token|auth)|[A-Za-z0-9]*[_.\-](?:pwd|pass)|(?-i:[A-Za-z0-9]*[a-z0-9](?:Token|Pass|Pwd|Auth)))$",
        rules::STRONG_KEYS
    )))
    .expect("secret key pattern is valid");
    // continuation and pagination handles are called tokens but grant nothing
    let not_secret_key = Regex::new(
        r"(?i)(?:next|continue|continuation|page|pagination|resume|sync|cancel(?:lation)?)[_\-]?token$",
    )
    .expect("non-secret key pattern is valid");
    Engine {
        set,
        rules,
        secret_key,
        not_secret_key,
    }
});

/// Names of all rules, in the order they are applied (for documentation and tests).
pub fn rule_names() -> Vec<&'static str> {
    rules::RULES.iter().map(|r| r.name).collect()
}

/// Mask credentials in a text; borrowed when nothing was masked.
pub fn redact_str(text: &str) -> Cow<'_, str> {
    let engine = &*ENGINE;
    let hits = engine.set.matches(text);
    if !hits.matched_any() {
        return Cow::Borrowed(text);
    }
    let mut out = Cow::Borrowed(text);
    for i in hits.iter() {
        let c = &engine.rules[i];
        // an earlier rule may have masked what this one matched
        if let Some(masked) = apply(c, &out) {
            out = Cow::Owned(masked);
        }
    }
    out
}

/// Mask credentials in one line of text; returns the line and whether anything was masked.
pub fn mask(line: &str) -> (String, bool) {
    match redact_str(line) {
        Cow::Borrowed(s) => (s.to_string(), false),
        Cow::Owned(s) => (s, true),
    }
}

/// Mask one rule's matches; `None` when nothing was replaced.
fn apply(c: &Compiled, text: &str) -> Option<String> {
    let mut out = String::new();
    let mut last = 0;
    let mut changed = false;
    for caps in c.re.captures_iter(text) {
        let Some(s) = rules::secret(&caps) else {
            continue;
        };
        let secret = s.as_str();
        if secret.len() < c.rule.min_len
            || secret.starts_with("[REDACTED")
            || c.rule.accept.is_some_and(|ok| !ok(&caps))
        {
            continue;
        }
        out.push_str(&text[last..s.start()]);
        out.push_str(&c.marker);
        last = s.end();
        changed = true;
    }
    if !changed {
        return None;
    }
    out.push_str(&text[last..]);
    Some(out)
}

/// Whether a JSON key or field name says that its value is a secret (`password`,
/// `SessionToken`, `client_secret`, `DB_PASSWORD`), as opposed to naming one
/// (`secretName`, `secretRef`) or counting (`token_count`).
pub fn is_secret_key(key: &str) -> bool {
    let engine = &*ENGINE;
    engine.secret_key.is_match(key) && !engine.not_secret_key.is_match(key)
}

/// Mask credentials everywhere in a JSON value: every string (object keys included), and
/// the whole string value of a key that names a secret, or of an `{"name": "DB_PASSWORD",
/// "value": …}` pair (an environment variable). Returns how many strings changed.
pub fn redact_value(value: &mut Value) -> usize {
    match value {
        Value::String(s) => redact_string(s),
        Value::Array(a) => a.iter_mut().map(redact_value).sum(),
        Value::Object(o) => {
            let mut changed = 0;
            let env_secret = o
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(is_secret_key);
            let renamed: Vec<String> = o
                .keys()
                .filter(|k| matches!(redact_str(k), Cow::Owned(_)))
                .cloned()
                .collect();
            for k in renamed {
                if let Some(v) = o.remove(&k) {
                    o.insert(redact_str(&k).into_owned(), v);
                    changed += 1;
                }
            }
            for (k, v) in o.iter_mut() {
                let whole = is_secret_key(k) || (env_secret && k == "value");
                match v {
                    Value::String(s) if whole && !s.is_empty() && !s.starts_with("[REDACTED") => {
                        *s = MARKER.to_string();
                        changed += 1;
                    }
                    _ => changed += redact_value(v),
                }
            }
            changed
        }
        _ => 0,
    }
}

/// A redacted copy of a JSON value.
pub fn redacted(mut value: Value) -> Value {
    redact_value(&mut value);
    value
}

fn redact_string(s: &mut String) -> usize {
    match redact_str(s) {
        Cow::Borrowed(_) => 0,
        Cow::Owned(masked) => {
            *s = masked;
            1
        }
    }
}

/// Mask credentials in consecutive lines of one text (a container's log): like [`mask`]
/// on each line, and a private key printed over several lines is masked from its BEGIN
/// line to its END line. Returns each line and whether it was masked.
pub fn mask_lines<'a>(lines: impl IntoIterator<Item = &'a str>) -> Vec<(String, bool)> {
    static BEGIN: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----").expect("valid")
    });
    static END: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----").expect("valid")
    });
    let mut in_key = false;
    lines
        .into_iter()
        .map(|line| {
            if in_key {
                if END.is_match(line) {
                    in_key = false;
                }
                return ("[REDACTED:private-key]".to_string(), true);
            }
            if BEGIN.is_match(line) && !END.is_match(line) {
                in_key = true;
            }
            mask(line)
        })
        .collect()
}

#[cfg(test)]
mod tests;
