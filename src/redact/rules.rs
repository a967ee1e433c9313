//! The table of credential shapes that are masked, each with a name.
//!
//! Every pattern marks the secret part with a capture group whose name starts with `s`
//! (`s`, `s2`, …); only that part is replaced, so the key, scheme or URL around it stays
//! readable (`password=[REDACTED]`, `https://hooks.slack.com/[REDACTED:slack-webhook]`).
//! `\b` is ASCII (rewritten when compiled), which keeps every pattern on the fast DFA
//! engines whatever the text.

use regex::Captures;

/// One credential shape.
pub(crate) struct Rule {
    /// Name shown in the marker (`[REDACTED:name]`) and in tests.
    pub name: &'static str,
    /// The pattern; the secret is the group named `s…`.
    pub pattern: &'static str,
    /// Replacement of the secret: `[REDACTED]` after a key that already says what it is,
    /// `[REDACTED:name]` for a token recognised by its shape.
    pub keyed: bool,
    /// Shorter secrets are left alone (prose such as "Bearer token", not a credential).
    pub min_len: usize,
    /// A further check on a match; `false` leaves it (e.g. an image digest that looks like
    /// `user:pass@host`).
    pub accept: Option<fn(&Captures) -> bool>,
}

const fn keyed(name: &'static str, pattern: &'static str) -> Rule {
    Rule {
        name,
        pattern,
        keyed: true,
        min_len: 1,
        accept: Some(not_placeholder),
    }
}

const fn token(name: &'static str, pattern: &'static str) -> Rule {
    Rule {
        name,
        pattern,
        keyed: false,
        min_len: 1,
        accept: None,
    }
}

const fn checked(mut r: Rule, accept: fn(&Captures) -> bool) -> Rule {
    r.accept = Some(accept);
    r
}

const fn at_least(mut r: Rule, min_len: usize) -> Rule {
    r.min_len = min_len;
    r
}

/// The secret group of a match.
pub(crate) fn secret<'h>(caps: &Captures<'h>) -> Option<regex::Match<'h>> {
    ["s", "s2", "s3", "s4"].iter().find_map(|n| caps.name(n))
}

/// Values that say there is no secret (`password: none`, `auth: true`): masking them would
/// only hide that fact.
fn not_placeholder(caps: &Captures) -> bool {
    let Some(s) = secret(caps) else { return false };
    let v = s.as_str().trim();
    !matches!(
        v.to_ascii_lowercase().as_str(),
        "true"
            | "false"
            | "none"
            | "null"
            | "nil"
            | "yes"
            | "no"
            | "enabled"
            | "disabled"
            | "required"
            | "optional"
            | "set"
            | "unset"
            | "empty"
            | "redacted"
            | "***"
            | "****"
            | "********"
    )
}

/// Text that only looks like `user:pass@host`: an image reference with a tag and a digest
/// (`nginx:1.25@sha256:…`), a mail address after a label (`to:ann@example.com`), or
/// `uid:gid` (`-u 1000:1000`).
fn real_userinfo(caps: &Captures) -> bool {
    let host = caps.name("h").map_or("", |h| h.as_str());
    let user = caps.name("u").map_or("", |u| u.as_str());
    let pass = secret(caps).map_or("", |s| s.as_str());
    let digest = ["sha256", "sha384", "sha512", "sha1", "md5"]
        .iter()
        .any(|d| host.eq_ignore_ascii_case(d) || host.starts_with(&format!("{d}:")));
    let label = [
        "mailto", "to", "from", "cc", "bcc", "email", "mail", "sender", "by", "at",
    ]
    .iter()
    .any(|l| user.eq_ignore_ascii_case(l));
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    !(digest || label || (numeric(user) && numeric(pass)))
}

/// `-u uid:gid` is not a credential.
fn not_uid_gid(caps: &Captures) -> bool {
    let user = caps.name("u").map_or("", |u| u.as_str());
    let pass = secret(caps).map_or("", |s| s.as_str());
    let numeric = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    !(numeric(user) && numeric(pass))
}

/// A flag's value must not be the next flag (`--password --stdin` has none).
fn not_a_flag(caps: &Captures) -> bool {
    secret(caps).is_some_and(|s| !s.as_str().starts_with('-')) && not_placeholder(caps)
}

/// A bearer token has a digit or a symbol; "Bearer authentication" is prose.
fn token_like(caps: &Captures) -> bool {
    secret(caps).is_some_and(|s| {
        s.as_str()
            .bytes()
            .any(|b| b.is_ascii_digit() || b"-._~+/=".contains(&b))
    })
}

/// Provider keys mix upper case and digits; Kubernetes object names (`sk-…` pods) are lower
/// case.
fn mixed_case(caps: &Captures) -> bool {
    secret(caps).is_some_and(|s| {
        let s = s.as_str();
        s.bytes().any(|b| b.is_ascii_uppercase()) && s.bytes().any(|b| b.is_ascii_digit())
    })
}

/// Base64 text that decodes to a PEM private key (a kubeconfig's `client-key-data`).
fn base64_private_key(caps: &Captures) -> bool {
    use base64::Engine as _;
    let Some(s) = secret(caps) else { return false };
    // whole 4-character groups of the start are enough to see the PEM header
    let head = &s.as_str()[..s.as_str().len().min(80) / 4 * 4];
    base64::engine::general_purpose::STANDARD
        .decode(head)
        .is_ok_and(|d| String::from_utf8_lossy(&d).contains("PRIVATE KEY"))
}

/// Key names whose value is a secret, anywhere in a longer name (`DB_PASSWORD`,
/// `x-api-key`, `clientSecret`, `SecretAccessKey`); one list for text and JSON keys.
macro_rules! strong_keys {
    () => {
        r"pass(?:word|wd|phrase)|secret(?:[_\-]?(?:access[_\-]?)?key)?|private[_\-]?key|client[_\-]?secret|api[_\-]?key|(?:app|application|account|shared[_\-]?access|master|encryption|signing)[_\-]?key|(?:access|refresh|auth|session|security|bearer|id|bot|api|oauth|csrf|xsrf|github|gitlab|slack|npm|registry)[_\-]?token|key[_\-]?data"
    };
}

/// A value after a key: `\"escaped quotes\"` (JSON inside JSON), `"double quotes"`,
/// `'single quotes'` (all may hold spaces), or a bare word (not an opening `{` or `[`: that
/// is a structure, not a value).
macro_rules! value {
    () => {
        r#"(?:\\"(?P<s>(?:[^"\\]|\\[^"])*)\\"|"(?P<s2>(?:[^"\\\r\n]|\\.)*)"|'(?P<s3>[^'\r\n]*)'|(?P<s4>(?:[^\s"',;&\\{\[]|\\[^"n\\])(?:[^\s"',;&\\]|\\[^"n\\])*))"#
    };
}

/// Separator between a key and its value: an optional closing quote, then `:` or `=`.
macro_rules! separator {
    () => {
        r#"\\?["']?[ \t]*[:=][ \t]*"#
    };
}

/// Strong keywords as one alternation, for the JSON key check.
pub(crate) const STRONG_KEYS: &str = strong_keys!();

/// All rules, applied in this order (the PEM block before the keys that may hold it).
pub(crate) static RULES: &[Rule] = &[
    // ---- private keys
    token(
        "private-key",
        r"(?P<s>-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----(?s:.*?)-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----)",
    ),
    // the start of a key whose end is in another string (a log line each): all the rest
    token(
        "private-key",
        r"(?P<s>-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----(?s:.*))",
    ),
    token("private-key", r"(?P<s>PuTTY-User-Key-File-\d:(?s:.*))"),
    checked(
        token(
            "private-key",
            r"(?P<s>LS0tLS1CRUdJTi[A-Za-z0-9+/]{40,}={0,2})",
        ),
        base64_private_key,
    ),
    // ---- HTTP credentials
    keyed(
        "authorization-header",
        r#"(?i)\b(?:proxy-)?authorization\\?["']?[ \t]*[:=][ \t]*\\?["']?(?:(?:basic|bearer|digest|token|negotiate|ntlm|aws4-hmac-sha256|apikey|sso-key)[ \t]+)?(?P<s>[^"'\\\r\n]+)"#,
    ),
    keyed(
        "cookie",
        r#"(?i)\b(?:set-)?cookie\\?["']?[ \t]*:[ \t]*\\?["']?(?P<s>[^"'\\\r\n]+)"#,
    ),
    checked(
        at_least(
            token(
                "bearer-token",
                r"(?i)\bbearer[ \t]+(?P<s>[A-Za-z0-9\-._~+/]+=*)",
            ),
            8,
        ),
        token_like,
    ),
    // ---- standalone tokens recognised by their shape
    token(
        "jwt",
        r"\b(?P<s>eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*)",
    ),
    token(
        "aws-access-key-id",
        r"\b(?P<s>(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16})\b",
    ),
    token(
        "github-token",
        r"\b(?P<s>(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255}))\b",
    ),
    token(
        "gitlab-token",
        r"\b(?P<s>gl(?:pat|ptt|dt|rt|cbt|oas|soat)-[A-Za-z0-9_\-]{20,})",
    ),
    token("slack-token", r"\b(?P<s>xox[abposre]-[A-Za-z0-9\-]{10,})"),
    token("slack-token", r"\b(?P<s>xapp-\d-[A-Za-z0-9\-]{10,})"),
    token(
        "slack-webhook",
        r"(?i)https://hooks\.slack\.com/(?P<s>(?:services|workflows|triggers)/[A-Za-z0-9_/\-]+)",
    ),
    token(
        "stripe-key",
        r"\b(?P<s>(?:(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,}|whsec_[A-Za-z0-9]{20,}))",
    ),
    token("google-api-key", r"\b(?P<s>AIza[0-9A-Za-z_\-]{35})"),
    token(
        "google-oauth",
        r"\b(?P<s>(?:GOCSPX-[A-Za-z0-9_\-]{20,}|ya29\.[0-9A-Za-z_\-]{20,}))",
    ),
    token(
        "anthropic-key",
        r"\b(?P<s>sk-ant-[a-z]{2,8}\d{2}-[A-Za-z0-9_\-]{20,})",
    ),
    checked(
        token(
            "openai-key",
            r"\b(?P<s>sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,})",
        ),
        mixed_case,
    ),
    token("npm-token", r"\b(?P<s>npm_[A-Za-z0-9]{36})\b"),
    token("pypi-token", r"\b(?P<s>pypi-AgE[A-Za-z0-9_\-]{50,})"),
    token("twilio-key", r"\b(?P<s>(?:AC|SK)[0-9a-f]{32})\b"),
    token(
        "sendgrid-key",
        r"\b(?P<s>SG\.[A-Za-z0-9_\-]{16,32}\.[A-Za-z0-9_\-]{16,64})",
    ),
    token("mailchimp-key", r"\b(?P<s>[0-9a-f]{32}-us[0-9]{1,2})\b"),
    token(
        "square-token",
        r"\b(?P<s>sq0(?:atp|csp)-[0-9A-Za-z_\-]{22,43})",
    ),
    token(
        "telegram-bot-token",
        r"\b(?P<s>\d{8,10}:AA[0-9A-Za-z_\-]{33})",
    ),
    token("vault-token", r"\b(?P<s>hv[sbr]\.[A-Za-z0-9_\-]{24,})"),
    token("huggingface-token", r"\b(?P<s>hf_[A-Za-z]{34,})"),
    token(
        "shopify-token",
        r"\b(?P<s>shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32})",
    ),
    token("docker-hub-token", r"\b(?P<s>dckr_pat_[A-Za-z0-9_\-]{20,})"),
    token(
        "grafana-token",
        r"\b(?P<s>(?:glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}|glc_[A-Za-z0-9+/]{32,}={0,2}))",
    ),
    token("digitalocean-token", r"\b(?P<s>do[opr]_v1_[a-f0-9]{64})"),
    token("age-secret-key", r"\b(?P<s>AGE-SECRET-KEY-1[0-9A-Z]{58})"),
    token("linear-key", r"\b(?P<s>lin_api_[A-Za-z0-9]{40})"),
    token("newrelic-key", r"\b(?P<s>NRAK-[A-Z0-9]{27})"),
    token("pulumi-token", r"\b(?P<s>pul-[a-f0-9]{40})"),
    token("databricks-token", r"\b(?P<s>dapi[a-f0-9]{32})\b"),
    // ---- URLs
    keyed(
        "url-userinfo",
        r#"(?i)\b[a-z][a-z0-9+.\-]*://[^/\s:@"'<>]*:(?P<s>[^@\s/"'<>]+)@"#,
    ),
    checked(
        keyed(
            "userinfo",
            r#"(?:^|[\s"'=(,\[])(?P<u>[A-Za-z0-9._%+\-]+):(?P<s>[^\s:@/"'<>]+)@(?P<h>[A-Za-z0-9][A-Za-z0-9.\-]*(?::[0-9a-f]{8})?)"#,
        ),
        real_userinfo,
    ),
    keyed(
        "signed-url",
        r#"(?i)[?&](?:x-amz-security-token|x-amz-signature|x-amz-credential|x-goog-signature|x-goog-credential|signature|sig|awsaccesskeyid)=(?P<s>[^&\s"'#\\]+)"#,
    ),
    // ---- command lines
    checked(
        keyed(
            "basic-auth-flag",
            r#"(?:^|\s)(?:-u|--user)(?:[ \t]+|=)["']?(?P<u>[^\s:"']+):(?P<s>[^\s"']+)"#,
        ),
        not_uid_gid,
    ),
    checked(
        keyed(
            "secret-flag",
            r#"(?i)(?:^|\s)--?(?:[a-z0-9]+-)*(?:password|passwd|pass|token|secret|api-key|apikey|client-secret|secret-key|access-token|auth-token)[ \t]+(?:"(?P<s>[^"\r\n]*)"|'(?P<s2>[^'\r\n]*)'|(?P<s3>[^\s"']+))"#,
        ),
        not_a_flag,
    ),
    keyed(
        "mysql-password-flag",
        r#"\bmysql(?:dump|admin|sh)?\b[^\r\n]*?[ \t]-p(?P<s>[^\s"']+)"#,
    ),
    // ---- connection strings: `Password=two words;` (ADO.NET, JDBC, ODBC)
    keyed(
        "connection-string-password",
        r#"(?i);[ \t]*(?:password|pwd)[ \t]*=[ \t]*(?P<s>[^;"'\r\n]+)"#,
    ),
    // ---- key = value, key: value, "key": "value", \"key\": \"value\", KEY=value
    keyed(
        "secret-key-value",
        concat!(
            r#"(?i)(?P<k>[A-Za-z0-9_.\-]*?(?:"#,
            strong_keys!(),
            r#")|(?:\b|[_.\-])(?:token|auth)|[_.\-]pwd|(?-i:[a-z0-9](?:Token|Pass|Pwd|Auth)))"#,
            separator!(),
            value!()
        ),
    ),
    // environment-variable style names ending in _KEY, _PWD, _PASS (upper case only:
    // `cache key=…` is ordinary text, and `*_KEY_ID` is an identifier)
    keyed(
        "secret-env-key",
        concat!(
            r"\b(?P<k>[A-Z][A-Z0-9_]*_(?:KEY|PWD|PASS|CREDENTIALS?))",
            separator!(),
            value!()
        ),
    ),
    keyed(
        "secret-xml-element",
        r"(?i)<(?P<k>[a-z_\-]*(?:password|secret|token|api[_\-]?key))>(?P<s>[^<]+)</",
    ),
];
