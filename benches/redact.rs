//! Cost of the redaction pass on about 1 MB of typical container log text: line by line as
//! `get_pod_logs` masks it, as one string, and as the JSON walk the server runs over every
//! result. One text has a credential on about one line in a hundred, one has none.
//!
//! Run: `cargo bench --bench redact`.

use std::time::{Duration, Instant};

use eks_ops_mcp::redact;
use serde_json::json;

/// Lines of the kinds containers print; `i` varies ids and numbers.
fn ordinary(i: usize) -> String {
    match i % 6 {
        0 => format!(
            r#"{{"level":"INFO","ts":"2026-12-02T10:{:02}:{:02}Z","logger":"c.a.payments.Api","msg":"POST /v1/charges 200","latency_ms":{},"trace_id":"{:032x}"}}"#,
            i % 60,
            (i * 7) % 60,
            i % 300,
            i * 2_654_435_761
        ),
        1 => format!(
            "10.0.{}.{} - - [02/Dec/2026:10:00:{:02} +0000] \"GET /cart/{} HTTP/1.1\" 200 {} \"-\" \"kube-probe/1.35\"",
            i % 255,
            (i * 3) % 255,
            i % 60,
            i,
            i % 5000
        ),
        2 => format!(
            "2026-12-02 10:00:{:02}.123 WARN  [pool-{}] o.h.e.j.s.SqlExceptionHelper - SQL Error: 0, SQLState: 08001 connection to db-{} refused",
            i % 60,
            i % 8,
            i % 3
        ),
        3 => format!(
            "pulled image registry.example.com/shop/cart@sha256:{:064x} for pod cart-7d9f8b6c5d-{:05}",
            i as u128 * 0x9e37_79b9_7f4a_7c15,
            i
        ),
        4 => format!(
            "level=info msg=\"reconciled\" object=Deployment/shop/checkout-{} resourceVersion={} uid=6f1c2a4e-2b1d-4c7e-9f51-{:012x}",
            i % 9,
            1_000_000 + i,
            i
        ),
        _ => format!(
            "   at com.acme.cart.CartService.checkout(CartService.java:{})  token bucket refill rate={}",
            100 + i % 400,
            i % 50
        ),
    }
}

/// Lines with a credential, one of each common shape.
fn leaky(i: usize) -> String {
    match i % 6 {
        0 => format!("connecting to postgres://app:pw{i}Secret@db:5432/shop"),
        1 => format!("DB_PASSWORD=hunter{i} LOG_LEVEL=debug"),
        2 => "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJiZW5jaCJ9.c2lnbmF0dXJl".into(),
        3 => format!(
            r#"{{"AccessKeyId":"ASIAEXAMPLE","SecretAccessKey":"wJalrXUtnFEMI/K7MDENG/bPxRfiCY{i:010}"}}"#
        ),
        4 => format!("curl -u admin:adm{i}pw https://api.internal/health"),
        _ => format!("client_secret={i:x}abcdef&grant_type=client_credentials"),
    }
}

fn text(bytes: usize, leak_every: Option<usize>) -> Vec<String> {
    let mut lines = Vec::new();
    let mut total = 0;
    let mut i = 0;
    while total < bytes {
        let l = match leak_every {
            Some(n) if i % n == n - 1 => leaky(i / n),
            _ => ordinary(i),
        };
        total += l.len() + 1;
        lines.push(l);
        i += 1;
    }
    lines
}

fn time(label: &str, bytes: usize, runs: usize, mut f: impl FnMut() -> usize) {
    let mut best = Duration::MAX;
    let mut masked = 0;
    for _ in 0..runs {
        let t = Instant::now();
        masked = f();
        best = best.min(t.elapsed());
    }
    let mb = bytes as f64 / (1024.0 * 1024.0);
    println!(
        "| {label} | {:.1} | {:.0} | {masked} |",
        best.as_secs_f64() * 1000.0,
        mb / best.as_secs_f64()
    );
}

fn main() {
    // compile the rules outside the timings
    let _ = redact::redact_str("warm up password=x");
    println!("| input (≈1 MiB) | best of 5, ms | MiB/s | strings masked |");
    println!("|---|---|---|---|");
    for (name, leak_every) in [("no credentials", None), ("1 line in 100 leaks", Some(100))] {
        let lines = text(1 << 20, leak_every);
        let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
        time(
            &format!("{name}: per line (get_pod_logs)"),
            bytes,
            5,
            || {
                redact::mask_lines(lines.iter().map(String::as_str))
                    .iter()
                    .filter(|(_, c)| *c)
                    .count()
            },
        );
        let joined = lines.join("\n");
        time(&format!("{name}: one string"), bytes, 5, || {
            usize::from(matches!(
                redact::redact_str(&joined),
                std::borrow::Cow::Owned(_)
            ))
        });
        let value = json!({"sandbox": true, "namespace": "shop", "pod": "cart", "lines": lines});
        time(
            &format!("{name}: JSON walk of the result (server)"),
            bytes,
            5,
            || {
                let mut v = value.clone();
                redact::redact_value(&mut v)
            },
        );
    }
}
