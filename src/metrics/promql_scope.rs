//! Whether a PromQL query reads only the namespaces a scoped server allows.
//!
//! The query is parsed (GreptimeTeam's `promql-parser`, which follows Prometheus' own
//! grammar) and every series selector in it — inside functions, aggregations (their
//! parameters too), binary operations, subqueries, with or without `offset` / `@` — must
//! carry a `namespace` matcher that limits it to the allowed namespaces: `namespace="a"`
//! with an allowed `a`, or `namespace=~"a|b"` whose alternatives are all allowed names
//! written out. `!=`, `!~`, any other regular expression, or no namespace matcher at all
//! is refused, naming the selector.
//!
//! Refuse, not inject: adding `namespace="a"` to the agent's selectors would quietly
//! change what the query means (a `sum` over "everything" would become a sum over one
//! namespace without the agent knowing, and an `or`/`unless` over two selectors can flip
//! meaning), and the rewritten query would be the server's, not the agent's, in the audit
//! log. A refusal that says which selector lacks what, and what is allowed, costs the agent
//! one retry and keeps the query it sent the query that ran.

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{self, Expr, VectorSelector};

use super::MetricsError;

/// Longest query checked (characters). The parser builds a tree as deep as the query is
/// nested, and walking (and dropping) it recurses; a bound on the length bounds the depth.
pub const MAX_SCOPED_PROMQL_CHARS: usize = 8_192;
/// Deepest nesting walked; deeper queries are refused rather than risking the stack.
const MAX_DEPTH: usize = 256;
/// Selectors named in one refusal at most.
const MAX_NAMED: usize = 5;

/// Check that every series selector of `promql` is limited to `allowed` namespaces.
pub fn check(promql: &str, allowed: &[String]) -> Result<(), MetricsError> {
    let q = promql.trim();
    let chars = q.chars().count();
    if chars > MAX_SCOPED_PROMQL_CHARS {
        return Err(MetricsError::OutOfScope(format!(
            "the PromQL query has {chars} characters; on a namespace-scoped server queries \
             are checked before they are sent and may have at most {MAX_SCOPED_PROMQL_CHARS}"
        )));
    }
    // the parser's own recursion (building, printing and dropping the tree) follows the
    // nesting: refuse absurd nesting before it parses
    let depth = nesting(q);
    if depth > MAX_DEPTH {
        return Err(MetricsError::OutOfScope(format!(
            "the PromQL query nests {depth} levels deep; on a namespace-scoped server at most \
             {MAX_DEPTH} are checked"
        )));
    }
    let expr = parser::parse(q).map_err(|e| {
        MetricsError::Invalid(format!(
            "the PromQL query does not parse ({e}); on a namespace-scoped server every query \
             is parsed to check its namespaces before it is sent"
        ))
    })?;
    let mut problems = Vec::new();
    walk(&expr, allowed, &mut problems);
    if problems.is_empty() {
        return Ok(());
    }
    let total = problems.len();
    problems.truncate(MAX_NAMED);
    let more = if total > MAX_NAMED {
        format!(" (and {} more)", total - MAX_NAMED)
    } else {
        String::new()
    };
    Err(MetricsError::OutOfScope(format!(
        "this server is limited to the namespaces {}: every series selector of a PromQL query \
         must carry namespace=\"NAME\" or namespace=~\"NAME1|NAME2\" with allowed names only \
         (no !=, !~ or other regular expressions); {}{more}",
        allowed.join(", "),
        problems.join("; ")
    )))
}

/// Deepest bracket nesting of `q`, outside string literals.
fn nesting(q: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in q.chars() {
        match quote {
            Some(_) if escaped => escaped = false,
            Some(_) if c == '\\' => escaped = true,
            Some(open) if c == open => quote = None,
            Some(_) => {}
            None => match c {
                '"' | '\'' | '`' => quote = Some(c),
                '(' | '[' | '{' => {
                    depth += 1;
                    max = max.max(depth);
                }
                ')' | ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
    }
    max
}

fn walk(e: &Expr, allowed: &[String], problems: &mut Vec<String>) {
    match e {
        Expr::Aggregate(a) => {
            if let Some(p) = &a.param {
                walk(p, allowed, problems);
            }
            walk(&a.expr, allowed, problems);
        }
        Expr::Unary(u) => walk(&u.expr, allowed, problems),
        Expr::Binary(b) => {
            walk(&b.lhs, allowed, problems);
            walk(&b.rhs, allowed, problems);
        }
        Expr::Paren(p) => walk(&p.expr, allowed, problems),
        Expr::Subquery(s) => walk(&s.expr, allowed, problems),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => {}
        Expr::VectorSelector(vs) => check_selector(vs, &vs.to_string(), allowed, problems),
        Expr::MatrixSelector(ms) => check_selector(&ms.vs, &ms.to_string(), allowed, problems),
        Expr::Call(c) => {
            // info() joins each series with target_info series that the query does not
            // select (matched on instance and job): their labels come from wherever those
            // live, whatever the selectors say
            if c.func.name == "info" {
                problems.push(
                    "info() reads target_info series beyond its selectors; it is not allowed \
                     on a namespace-scoped server"
                        .into(),
                );
            }
            for a in &c.args.args {
                walk(a, allowed, problems);
            }
        }
        // the parser never makes one; anything unknown is not provably scoped
        Expr::Extension(_) => problems.push("an extension expression cannot be checked".into()),
    }
}

/// A selector is scoped when each of its alternatives (`{a="1" or b="2"}` reads the union
/// of both) has a namespace matcher that limits it to allowed namespaces; other matchers
/// only narrow further.
fn check_selector(
    vs: &VectorSelector,
    shown: &str,
    allowed: &[String],
    problems: &mut Vec<String>,
) {
    let m = &vs.matchers;
    let groups: Vec<Vec<&Matcher>> = if m.or_matchers.is_empty() {
        vec![m.matchers.iter().collect()]
    } else {
        m.or_matchers
            .iter()
            .map(|g| g.iter().chain(m.matchers.iter()).collect())
            .collect()
    };
    for group in groups {
        let ns: Vec<&&Matcher> = group.iter().filter(|m| m.name == "namespace").collect();
        if ns.iter().any(|m| limits(m, allowed)) {
            continue;
        }
        problems.push(match ns.first() {
            None => format!("`{shown}` has no namespace matcher"),
            Some(m) => {
                format!("`{shown}` has {m}, which does not limit it to the allowed namespaces")
            }
        });
        // one problem per selector is enough to name it
        return;
    }
}

/// Whether a `namespace` matcher admits only allowed namespaces.
fn limits(m: &Matcher, allowed: &[String]) -> bool {
    let is_allowed = |name: &str| {
        // a Kubernetes namespace name has no regular-expression metacharacter, so an
        // alternative that equals one (and is made of name characters) matches only itself
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && allowed.iter().any(|a| a == name)
    };
    match &m.op {
        MatchOp::Equal => allowed.contains(&m.value),
        // PromQL anchors the expression: `a|b` matches exactly `a` or `b`
        MatchOp::Re(_) => m.value.split('|').all(is_allowed),
        MatchOp::NotEqual | MatchOp::NotRe(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Vec<String> {
        vec!["shop".into(), "payments".into()]
    }

    fn ok(q: &str) {
        if let Err(e) = check(q, &allowed()) {
            panic!("{q} should be in scope: {e}");
        }
    }

    fn refused(q: &str, want: &str) -> String {
        let e = check(q, &allowed()).expect_err(q).to_string();
        assert!(e.contains(want), "{q}: {e}");
        e
    }

    #[test]
    fn scoped_selectors_pass_wherever_they_are() {
        ok(r#"http_requests_per_second{namespace="shop"}"#);
        ok(r#"http_requests_per_second{service="checkout", namespace="shop"}"#);
        ok(r#"sum by (pod) (rate(container_cpu_usage_seconds_total{namespace="payments"}[5m]))"#);
        ok(
            r#"histogram_quantile(0.99, sum by (le) (rate(h_bucket{namespace=~"shop|payments"}[5m])))"#,
        );
        ok(r#"a{namespace="shop"} / on(pod) group_left b{namespace="payments"}"#);
        ok(r#"max_over_time(rate(x{namespace="shop"}[5m])[1h:1m])"#);
        ok(r#"x{namespace="shop"} offset 1h"#);
        ok(r#"x{namespace="shop"} @ 1700000000"#);
        ok(r#"rate(x{namespace="shop"}[5m] offset 1d)"#);
        ok(r#"topk(scalar(count(y{namespace="shop"})), x{namespace="shop"})"#);
        ok(r#"{__name__=~".+", namespace="shop"}"#);
        ok(r#"x{namespace="shop", namespace!="payments"}"#);
        ok(r#"label_replace(x{namespace="shop"}, "namespace", "other", "", "")"#);
        ok(r#"-x{namespace="shop"} + 1"#);
        ok(r#"x{namespace="shop" or namespace="payments"}"#);
        // no data read at all
        ok("vector(1) + time()");
    }

    #[test]
    fn unscoped_selectors_are_named() {
        refused("up", "`up` has no namespace matcher");
        let e = refused(
            r#"sum(rate(x{namespace="shop"}[5m])) / sum(rate(x[5m]))"#,
            "`x[5m]` has no namespace matcher",
        );
        assert!(
            e.contains("limited to the namespaces shop, payments"),
            "{e}"
        );
        assert!(!e.contains(r#"`x{namespace="shop"}[5m]`"#), "{e}");
        refused(r#"x{namespace="data"}"#, r#"has namespace="data""#);
        refused(r#"x{namespace!="shop"}"#, r#"has namespace!="shop""#);
        refused(r#"x{namespace!~"shop"}"#, "namespace!~");
        refused(r#"x{namespace=~"shop|data"}"#, "does not limit");
        refused(r#"x{namespace=~"sho.*"}"#, "does not limit");
        refused(r#"x{namespace=~"shop|"}"#, "does not limit");
        refused(r#"x{namespace=~"(shop)"}"#, "does not limit");
        refused(r#"x{namespace=~".+"}"#, "does not limit");
        refused(r#"{__name__=~".+"}"#, "has no namespace matcher");
        refused(
            r#"max_over_time(rate(x{job="a"}[5m])[1h:1m])"#,
            r#"`x{job="a"}[5m]` has no namespace matcher"#,
        );
        refused(
            r#"x{namespace="shop"} offset 1h or y @ 1700000000"#,
            "`y @ 1700000000.000` has no namespace matcher",
        );
        refused(r#"quantile(scalar(z), x{namespace="shop"})"#, "`z`");
        refused(
            r#"x{namespace="shop" or job="a"}"#,
            "has no namespace matcher",
        );
        refused(r#"absent(x{namespace="kube-system"})"#, "kube-system");
        refused(r#"info(x{namespace="shop"})"#, "info() reads target_info");
    }

    #[test]
    fn many_problems_are_counted_not_all_listed() {
        let q = (0..8)
            .map(|i| format!("m{i}"))
            .collect::<Vec<_>>()
            .join(" + ");
        let e = refused(&q, "(and 3 more)");
        assert!(
            e.contains("`m0`") && e.contains("`m4`") && !e.contains("`m5`"),
            "{e}"
        );
    }

    #[test]
    fn unparsable_long_and_deep_queries_are_refused_with_reasons() {
        let e = check("sum(", &allowed()).unwrap_err();
        assert!(matches!(e, MetricsError::Invalid(_)), "{e}");
        assert!(e.to_string().contains("does not parse"), "{e}");
        let long = format!("x{{namespace=\"shop\", a=\"{}\"}}", "y".repeat(9000));
        refused(&long, "at most 8192");
        let deep = format!(
            "{}x{{namespace=\"shop\"}}{}",
            "(".repeat(300),
            ")".repeat(300)
        );
        refused(&deep, "nests 301 levels");
        // brackets inside strings do not count
        assert_eq!(nesting(r#"x{a="((((", b='[[', c=`{{`}"#), 1);
        let fine = format!(
            "{}x{{namespace=\"shop\"}}{}",
            "(".repeat(255),
            ")".repeat(255)
        );
        ok(&fine);
        let calls = format!(
            "{}x{{namespace=\"shop\"}}{}",
            "abs(".repeat(255),
            ")".repeat(255)
        );
        ok(&calls);
        // operators nest the tree without brackets: the length bound keeps that in reach
        let chain = format!("{}x{{namespace=\"shop\"}}", "1+".repeat(4000));
        ok(&chain);
        let chain = format!("{}y", "x{namespace=\"shop\"}+".repeat(400));
        refused(&chain, "`y` has no namespace matcher");
    }
}
