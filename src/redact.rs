//! Masking of obvious credentials in text that leaves the server (log lines).

use std::sync::LazyLock;

use regex::Regex;

struct Rule {
    re: Regex,
    replacement: &'static str,
}

static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    let rule = |pattern: &str, replacement: &'static str| Rule {
        re: Regex::new(pattern).expect("redaction patterns are valid"),
        replacement,
    };
    vec![
        // AWS access key ids (long-term AKIA, temporary ASIA, and the other documented prefixes)
        rule(
            r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b",
            "[REDACTED:aws-access-key-id]",
        ),
        // aws_secret_access_key=... / AWS_SECRET_ACCESS_KEY: ...
        rule(
            r"(?i)(aws_secret_access_key\s*[=:]\s*)[A-Za-z0-9/+=]{40}",
            "${1}[REDACTED]",
        ),
        // Authorization: Bearer <token>, and bare "Bearer <token>"
        rule(r"(?i)\b(bearer\s+)[A-Za-z0-9\-._~+/]+=*", "${1}[REDACTED]"),
        // user:password@ in URLs
        rule(
            r"(?i)\b([a-z][a-z0-9+.\-]*://[^/\s:@]*:)[^@\s/]+@",
            "${1}[REDACTED]@",
        ),
        // password=..., secret: ..., token=... (key-value style)
        rule(
            r#"(?i)\b([A-Za-z0-9_.\-]*?(?:password|passwd|pwd|secret|api[_-]?key|access[_-]?token|auth[_-]?token|client[_-]?secret|private[_-]?key)\s*["']?\s*[=:]\s*["']?)[^\s"',;&]+"#,
            "${1}[REDACTED]",
        ),
    ]
});

/// Mask credentials in one line of text; returns the line and whether anything was masked.
pub fn mask(line: &str) -> (String, bool) {
    let mut out = std::borrow::Cow::Borrowed(line);
    for r in RULES.iter() {
        if r.re.is_match(&out) {
            out = std::borrow::Cow::Owned(r.re.replace_all(&out, r.replacement).into_owned());
        }
    }
    let changed = out != line;
    (out.into_owned(), changed)
}

#[cfg(test)]
mod tests {
    use super::mask;

    #[test]
    fn masks_common_credentials() {
        let cases = [
            (
                "key AKIAIOSFODNN7EXAMPLE here",
                "key [REDACTED:aws-access-key-id] here",
            ),
            (
                "Authorization: Bearer eyJhbGciOi.eyJzdWIi.sig",
                "Authorization: Bearer [REDACTED]",
            ),
            (
                "redis://cart:Sup3rS3cret@redis:6379/0",
                "redis://cart:[REDACTED]@redis:6379/0",
            ),
            ("password=hunter2 user=bob", "password=[REDACTED] user=bob"),
            ("DB_PASSWORD=hunter2hunter2", "DB_PASSWORD=[REDACTED]"),
            (
                "POSTGRES_PASSWORD: pgS3cretValue",
                "POSTGRES_PASSWORD: [REDACTED]",
            ),
            ("MYSQL_ROOT_PASSWORD=x1", "MYSQL_ROOT_PASSWORD=[REDACTED]"),
            ("STRIPE_API_KEY=sk_live_abc", "STRIPE_API_KEY=[REDACTED]"),
            (
                "{\"client_secret\": \"abc\"}",
                "{\"client_secret\": \"[REDACTED]\"}",
            ),
            (
                "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "aws_secret_access_key = [REDACTED]",
            ),
        ];
        for (input, want) in cases {
            let (got, changed) = mask(input);
            assert_eq!(got, want, "input {input:?}");
            assert!(changed);
        }
    }

    #[test]
    fn leaves_ordinary_lines_alone() {
        let line = "GET /cart/1001 200 3ms token_count=5";
        assert_eq!(mask(line), (line.to_string(), false));
    }
}
