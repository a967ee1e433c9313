//! Each rule with texts it must mask and texts it must leave alone.
//!
//! Provider tokens are assembled at run time (`join`) so that this file does not itself
//! look like a leaked credential to scanners; every value is a made-up example.

use super::*;
use serde_json::json;

fn join(parts: &[&str]) -> String {
    parts.concat()
}

fn b62(n: usize) -> String {
    "EXAMPLEk3y0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
        .chars()
        .cycle()
        .take(n)
        .collect()
}

fn hex(n: usize) -> String {
    "0123456789abcdef".chars().cycle().take(n).collect()
}

/// (rule, input, the input with its secret masked)
fn positives() -> Vec<(&'static str, String, String)> {
    let r =
        |rule: &'static str, input: &str, want: &str| (rule, input.to_string(), want.to_string());
    let t = |rule: &'static str, token: String, want_name: &str| {
        (
            rule,
            format!("value {token} end"),
            format!("value [REDACTED:{want_name}] end"),
        )
    };
    vec![
        r(
            "private-key",
            "key -----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAexample\n-----END RSA PRIVATE KEY----- done",
            "key [REDACTED:private-key] done",
        ),
        r(
            "private-key",
            r#"{"private_key": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANexample\n-----END PRIVATE KEY-----\n"}"#,
            r#"{"private_key": "[REDACTED:private-key]\n"}"#,
        ),
        r(
            "private-key",
            "-----BEGIN OPENSSH PRIVATE KEY-----",
            "[REDACTED:private-key]",
        ),
        r(
            "private-key",
            "PuTTY-User-Key-File-2: ssh-rsa",
            "[REDACTED:private-key]",
        ),
        (
            "private-key",
            format!(
                "client-key-data {}",
                base64_of("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA")
            ),
            "client-key-data [REDACTED:private-key]".into(),
        ),
        r(
            "authorization-header",
            "Authorization: Basic dXNlcjpwYXNzd29yZA==",
            "Authorization: Basic [REDACTED]",
        ),
        r(
            "authorization-header",
            r#"{"authorization":"Bearer abc.def-123"}"#,
            r#"{"authorization":"Bearer [REDACTED]"}"#,
        ),
        r(
            "authorization-header",
            r#"{\"Authorization\": \"token abcdef123456\"}"#,
            r#"{\"Authorization\": \"token [REDACTED]\"}"#,
        ),
        r(
            "cookie",
            "Cookie: session=abc123; theme=dark",
            "Cookie: [REDACTED]",
        ),
        r(
            "bearer-token",
            "sent bearer abc123def456 to upstream",
            "sent bearer [REDACTED:bearer-token] to upstream",
        ),
        t(
            "jwt",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlEXAMPLE".into(),
            "jwt",
        ),
        t(
            "aws-access-key-id",
            "AKIAIOSFODNN7EXAMPLE".into(),
            "aws-access-key-id",
        ),
        t(
            "aws-access-key-id",
            "ASIAIOSFODNN7EXAMPLF".into(),
            "aws-access-key-id",
        ),
        t(
            "github-token",
            join(&["gh", "p_", &b62(36)]),
            "github-token",
        ),
        t(
            "github-token",
            join(&["gh", "s_", &b62(36)]),
            "github-token",
        ),
        t(
            "github-token",
            join(&["github", "_pat_", &b62(40)]),
            "github-token",
        ),
        t(
            "gitlab-token",
            join(&["gl", "pat-", &b62(20)]),
            "gitlab-token",
        ),
        t(
            "slack-token",
            join(&["xo", "xb-1234-5678-", &b62(24)]),
            "slack-token",
        ),
        t(
            "slack-token",
            join(&["xa", "pp-1-A0B1C2-", &b62(24)]),
            "slack-token",
        ),
        r(
            "slack-webhook",
            "posting to https://hooks.slack.com/services/T000/B000/XXXXexample",
            "posting to https://hooks.slack.com/[REDACTED:slack-webhook]",
        ),
        t(
            "stripe-key",
            join(&["sk", "_live_", &b62(24)]),
            "stripe-key",
        ),
        t(
            "stripe-key",
            join(&["rk", "_live_", &b62(24)]),
            "stripe-key",
        ),
        t(
            "google-api-key",
            join(&["AI", "za", &b62(35)]),
            "google-api-key",
        ),
        t(
            "google-oauth",
            join(&["GOC", "SPX-", &b62(28)]),
            "google-oauth",
        ),
        t(
            "anthropic-key",
            join(&["sk-", "ant-api03-", &b62(40)]),
            "anthropic-key",
        ),
        t(
            "openai-key",
            join(&["sk-", "proj-", &b62(40)]),
            "openai-key",
        ),
        t("openai-key", join(&["sk-", &b62(48)]), "openai-key"),
        t("npm-token", join(&["np", "m_", &b62(36)]), "npm-token"),
        t(
            "pypi-token",
            join(&["py", "pi-AgEIcHlwaS5vcmc", &b62(60)]),
            "pypi-token",
        ),
        t("twilio-key", join(&["S", "K", &hex(32)]), "twilio-key"),
        t("twilio-key", join(&["A", "C", &hex(32)]), "twilio-key"),
        t(
            "sendgrid-key",
            join(&["S", "G.", &b62(22), ".", &b62(43)]),
            "sendgrid-key",
        ),
        t(
            "mailchimp-key",
            join(&[&hex(32), "-us", "12"]),
            "mailchimp-key",
        ),
        t(
            "square-token",
            join(&["sq0", "atp-", &b62(22)]),
            "square-token",
        ),
        t(
            "telegram-bot-token",
            join(&["123456789", ":AA", &b62(33)]),
            "telegram-bot-token",
        ),
        t("vault-token", join(&["hv", "s.", &b62(30)]), "vault-token"),
        t(
            "huggingface-token",
            join(&["h", "f_", "abcdefghijklmnopqrstuvwxyzABCDEFGH"]),
            "huggingface-token",
        ),
        t(
            "shopify-token",
            join(&["shp", "at_", &hex(32)]),
            "shopify-token",
        ),
        t(
            "docker-hub-token",
            join(&["dckr", "_pat_", &b62(27)]),
            "docker-hub-token",
        ),
        t(
            "grafana-token",
            join(&["gl", "sa_", &b62(32), "_", &hex(8)]),
            "grafana-token",
        ),
        t(
            "digitalocean-token",
            join(&["do", "p_v1_", &hex(64)]),
            "digitalocean-token",
        ),
        t(
            "age-secret-key",
            join(&["AGE-SECRET", "-KEY-1", &"QZ".repeat(29)]),
            "age-secret-key",
        ),
        t(
            "linear-key",
            join(&["lin", "_api_", &b62(40)]),
            "linear-key",
        ),
        t(
            "newrelic-key",
            join(&["NR", "AK-", &"A1".repeat(13), "B"]),
            "newrelic-key",
        ),
        t(
            "pulumi-token",
            join(&["pu", "l-", &hex(40)]),
            "pulumi-token",
        ),
        t(
            "databricks-token",
            join(&["da", "pi", &hex(32)]),
            "databricks-token",
        ),
        r(
            "url-userinfo",
            "redis://cart:Sup3rS3cret@redis:6379/0",
            "redis://cart:[REDACTED]@redis:6379/0",
        ),
        r(
            "url-userinfo",
            "mongodb+srv://app:m0ngoPw@cluster0.example.net/db",
            "mongodb+srv://app:[REDACTED]@cluster0.example.net/db",
        ),
        r(
            "userinfo",
            "connecting to app:s3cretPw@db.internal:5432",
            "connecting to app:[REDACTED]@db.internal:5432",
        ),
        r(
            "signed-url",
            "GET https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20260101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Security-Token=FwoGZXIvYXdzEXAMPLE&X-Amz-Signature=abcdef0123456789",
            "GET https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=[REDACTED]&X-Amz-Security-Token=[REDACTED]&X-Amz-Signature=[REDACTED]",
        ),
        r(
            "signed-url",
            "https://acct.blob.core.windows.net/c/b?sv=2022-11-02&sig=abcDEF%2Bexample%3D",
            "https://acct.blob.core.windows.net/c/b?sv=2022-11-02&sig=[REDACTED]",
        ),
        r(
            "basic-auth-flag",
            "curl -u admin:hunter2pw https://api.internal",
            "curl -u admin:[REDACTED] https://api.internal",
        ),
        r(
            "secret-flag",
            "app --db-password s3cret --port 5432",
            "app --db-password [REDACTED] --port 5432",
        ),
        r(
            "secret-flag",
            "cli --token 'abc def' --verbose",
            "cli --token '[REDACTED]' --verbose",
        ),
        r(
            "mysql-password-flag",
            "mysql -h db -u root -pR00tPw -e 'select 1'",
            "mysql -h db -u root -p[REDACTED] -e 'select 1'",
        ),
        r(
            "connection-string-password",
            "Server=db;Database=shop;User Id=app;Password=two words;Encrypt=true",
            "Server=db;Database=shop;User Id=app;Password=[REDACTED];Encrypt=true",
        ),
        r(
            "connection-string-password",
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=abc+def/ghi==;EndpointSuffix=core.windows.net",
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=[REDACTED];EndpointSuffix=core.windows.net",
        ),
        r(
            "secret-key-value",
            "password=hunter2 user=bob",
            "password=[REDACTED] user=bob",
        ),
        r(
            "secret-key-value",
            "DB_PASSWORD=hunter2hunter2",
            "DB_PASSWORD=[REDACTED]",
        ),
        r(
            "secret-key-value",
            "POSTGRES_PASSWORD: pgS3cretValue",
            "POSTGRES_PASSWORD: [REDACTED]",
        ),
        r(
            "secret-key-value",
            r#"password="two words" next"#,
            r#"password="[REDACTED]" next"#,
        ),
        r(
            "secret-key-value",
            "password='two words' next",
            "password='[REDACTED]' next",
        ),
        r(
            "secret-key-value",
            r#"{"AccessKeyId":"ASIAEXAMPLE","SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY","SessionToken":"FwoGZXIvYXdzEJr//////////wEaDEXAMPLE"}"#,
            r#"{"AccessKeyId":"ASIAEXAMPLE","SecretAccessKey": "[REDACTED]","SessionToken":"[REDACTED]"}"#,
        ),
        r(
            "secret-key-value",
            r#"{"aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}"#,
            r#"{"aws_secret_access_key": "[REDACTED]"}"#,
        ),
        r(
            "secret-key-value",
            r#"{"msg":"{\"password\": \"two words\", \"user\": \"bob\"}"}"#,
            r#"{"msg":"{\"password\": \"[REDACTED]\", \"user\": \"bob\"}"}"#,
        ),
        r(
            "secret-key-value",
            "grant_type=refresh_token&refresh_token=rt-abc123&client_secret=cs-xyz",
            "grant_type=refresh_token&refresh_token=[REDACTED]&client_secret=[REDACTED]",
        ),
        r(
            "secret-key-value",
            "GITHUB_TOKEN=abcdef",
            "GITHUB_TOKEN=[REDACTED]",
        ),
        r(
            "secret-key-value",
            "APP_SECRET=abcdef",
            "APP_SECRET=[REDACTED]",
        ),
        r(
            "secret-key-value",
            "x-api-key: abcdef",
            "x-api-key: [REDACTED]",
        ),
        r(
            "secret-key-value",
            "authToken=abcdef",
            "authToken=[REDACTED]",
        ),
        r("secret-key-value", "token=abcdef", "token=[REDACTED]"),
        r(
            "secret-key-value",
            r#"{"auths":{"r.io":{"auth":"dXNlcjpwYXNz"}}}"#,
            r#"{"auths":{"r.io":{"auth":"[REDACTED]"}}}"#,
        ),
        r(
            "secret-env-key",
            "DD_API_KEY=abc123",
            "DD_API_KEY=[REDACTED]",
        ),
        r(
            "secret-env-key",
            "STRIPE_KEY=abc123",
            "STRIPE_KEY=[REDACTED]",
        ),
        r("secret-env-key", "DB_PASS=abc123", "DB_PASS=[REDACTED]"),
        r(
            "secret-xml-element",
            "<password>hunter2</password>",
            "<password>[REDACTED]</password>",
        ),
    ]
}

fn base64_of(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Texts that carry no credential and must come back unchanged.
const NEGATIVES: &[&str] = &[
    "GET /cart/1001 200 3ms token_count=5",
    "passwordless login enabled for the admin console",
    "token bucket refilled: 40 tokens/s",
    "max_tokens=1024 temperature=0.2",
    "secretName: db-creds",
    r#"{"secretName":"db-creds","secretKeyRef":{"name":"db","key":"password"}}"#,
    r#"MountVolume.SetUp failed for volume "db-creds" : secret "db-creds" not found"#,
    "Bearer authentication is required",
    "uid 6f1c2a4e-2b1d-4c7e-9f51-0a1b2c3d4e5f resourceVersion 1234567",
    "image nginx:1.25@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "Successfully pulled image \"registry.example.com:5000/shop/cart:v1.4.2@sha256:0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9\"",
    "Created pod: checkout-7c9d8f6b5d-k7x2p pod-template-hash=7c9d8f6b5d",
    "commit 3f2a9c1d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39 deployed",
    "digest sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "AWS_ACCESS_KEY_ID_SOURCE=instance-profile AWS_KEY_ID=none",
    "docker run -u 1000:1000 app",
    "mail sent to:ann@example.com",
    "app --password-stdin < /run/pw",
    "ssh -p 2222 node",
    "mysql -P 3306 -h db",
    "PWD=/srv/app HOME=/root",
    "cache key=user:1001 hit",
    "auth: true",
    "oauth: enabled",
    "Back-off restarting failed container cart in pod cart-5f7d9c6b8-abcde",
    "0/3 nodes are available: 3 Insufficient memory.",
    "sk-learn version 1.5",
    "task-runner-deployment-7c9d8f6b5d-x2x2x scheduled on sk-batch-worker-pool-node-abcdef",
    "http://example.com/a:b@c is not userinfo",
    "tests pass=3 fail=0",
    "Readiness probe failed: Get \"http://10.0.1.5:8080/ready\": context deadline exceeded",
    "ContainerCreating: kubelet pulling image",
    "",
];

#[test]
fn each_rule_masks_its_examples() {
    let wrong: Vec<String> = positives()
        .into_iter()
        .filter_map(|(rule, input, want)| {
            let (got, changed) = mask(&input);
            (got != want || !changed)
                .then(|| format!("rule {rule}: {input:?}\n   got {got:?}\n  want {want:?}"))
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_rule_has_an_example() {
    let covered: Vec<&str> = positives().iter().map(|p| p.0).collect();
    for name in rule_names() {
        assert!(
            covered.contains(&name),
            "rule {name} has no positive example"
        );
    }
    for name in &covered {
        assert!(
            rule_names().contains(name),
            "example names unknown rule {name}"
        );
    }
}

#[test]
fn ordinary_text_and_identifiers_are_left_alone() {
    let wrong: Vec<String> = NEGATIVES
        .iter()
        .filter(|t| redact_str(t) != **t)
        .map(|t| format!("{t:?} became {:?}", redact_str(t)))
        .collect();
    assert!(wrong.is_empty(), "over-masked:\n{}", wrong.join("\n"));
}

#[test]
fn masking_is_idempotent() {
    for (rule, input, _) in positives() {
        let once = redact_str(&input).into_owned();
        assert_eq!(
            redact_str(&once),
            once,
            "rule {rule}: second pass changed {once:?}"
        );
    }
}

#[test]
fn a_private_key_over_several_log_lines_is_masked_to_its_end() {
    let lines = [
        "starting",
        "-----BEGIN EC PRIVATE KEY-----",
        "MHcCAQEEIexampleexampleexampleexampleexampleexampleexamAoGCCqGSM49",
        "AwEHoUQDQgAEexample",
        "-----END EC PRIVATE KEY-----",
        "listening on :8443",
    ];
    let out = mask_lines(lines);
    let texts: Vec<&str> = out.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(
        texts,
        [
            "starting",
            "[REDACTED:private-key]",
            "[REDACTED:private-key]",
            "[REDACTED:private-key]",
            "[REDACTED:private-key]",
            "listening on :8443"
        ]
    );
    let flags: Vec<bool> = out.iter().map(|(_, c)| *c).collect();
    assert_eq!(flags, [false, true, true, true, true, false]);
}

#[test]
fn json_values_are_walked_with_their_keys() {
    let mut v = json!({
        "Credentials": {
            "AccessKeyId": "ASIAIOSFODNN7EXAMPLE",
            "SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "SessionToken": "FwoGZXIvYXdzEXAMPLE",
            "Expiration": "2026-01-01T00:00:00Z"
        },
        "env": [
            {"name": "DB_PASSWORD", "value": "hunter2"},
            {"name": "LOG_LEVEL", "value": "debug"}
        ],
        "password": "",
        "secretName": "db-creds",
        "next_token": "page-2",
        "token_count": 5,
        "note": "login with password=hunter2",
        "list": ["ok", "Authorization: Bearer abc.def-123"],
        "password=hunter3": "a key that carries a value"
    });
    let changed = redact_value(&mut v);
    assert_eq!(
        v,
        json!({
            "Credentials": {
                "AccessKeyId": "[REDACTED:aws-access-key-id]",
                "SecretAccessKey": "[REDACTED]",
                "SessionToken": "[REDACTED]",
                "Expiration": "2026-01-01T00:00:00Z"
            },
            "env": [
                {"name": "DB_PASSWORD", "value": "[REDACTED]"},
                {"name": "LOG_LEVEL", "value": "debug"}
            ],
            "password": "",
            "secretName": "db-creds",
            "next_token": "page-2",
            "token_count": 5,
            "note": "login with password=[REDACTED]",
            "list": ["ok", "Authorization: Bearer [REDACTED]"],
            "password=[REDACTED]": "a key that carries a value"
        })
    );
    assert_eq!(changed, 7);
    assert_eq!(redact_value(&mut v), 0, "a second pass changes nothing");
}

#[test]
fn secret_keys_are_told_from_names_of_secrets() {
    for k in [
        "password",
        "DB_PASSWORD",
        "dbPassword",
        "client_secret",
        "clientSecret",
        "SecretAccessKey",
        "aws_secret_access_key",
        "SessionToken",
        "token",
        "refresh_token",
        "x-api-key",
        "auth",
        "private_key",
        "client-key-data",
        "db_pwd",
    ] {
        assert!(is_secret_key(k), "{k} names a secret value");
    }
    for k in [
        "secretName",
        "secretRef",
        "secretKeyRef",
        "token_count",
        "max_tokens",
        "nextToken",
        "NextToken",
        "continue_token",
        "passed",
        "PWD",
        "AccessKeyId",
        "private_key_id",
        "key",
        "name",
        "lines_redacted",
    ] {
        assert!(!is_secret_key(k), "{k} does not hold a secret");
    }
}

#[test]
fn log_records_are_masked_and_bounded() {
    let long = format!("kube said {} password=hunter2\n", "x".repeat(20_000));
    let out = writer::bounded_record(&redact_str(&long));
    assert!(out.len() < writer::MAX_RECORD_BYTES + 100, "{}", out.len());
    assert!(out.ends_with("cut]\n"), "{}", &out[out.len() - 40..]);
    assert!(!out.contains("hunter2"));
}
