//! Bounds on the values the forecasting and sizing tools compute with, checked where values
//! enter (a metric answer, an inline series) so that an error names the value and where it
//! came from instead of a result of `inf` or `NaN` further on.
//!
//! NaN is a gap, not an error: Prometheus writes it for 0/0 and the history code fills gaps
//! (and says so). Infinite values and finite ones beyond [`MAX_ABS_VALUE`] are refused.

use super::{MetricsError, Series};

/// Largest magnitude computed with. Above 2^53 (≈ 9.0e15) an f64 no longer holds every
/// integer, sums of a few such values overflow long before 1e308, and no request rate,
/// core count or byte count of a workload comes near 1e15 (a petabyte).
pub const MAX_ABS_VALUE: f64 = 1e15;

/// What is wrong with a value to compute with, if anything (NaN is a gap, not a problem).
pub fn problem(v: f64) -> Option<&'static str> {
    if v.is_infinite() {
        Some("not finite")
    } else if v.abs() > MAX_ABS_VALUE {
        Some("absurdly large")
    } else {
        None
    }
}

/// A value for a message: plain decimals in the usual range, scientific notation for huge
/// or tiny ones (Rust's `{}` writes 1e308 with 308 zeros).
pub fn show(v: f64) -> String {
    if v == 0.0 || !v.is_finite() || (1e-4..1e15).contains(&v.abs()) {
        v.to_string()
    } else {
        format!("{v:e}")
    }
}

/// The range a value must be in, for messages.
pub fn allowed_range() -> String {
    format!("finite numbers within ±{MAX_ABS_VALUE:e}")
}

/// Check the points of series a source answered: the first infinite or absurd value is an
/// error naming the series, the time and the value.
pub fn check_answer(series: &[Series], endpoint: &str) -> Result<(), MetricsError> {
    for s in series {
        if let Some((t, v, why)) = s
            .points
            .iter()
            .find_map(|&(t, v)| problem(v).map(|why| (t, v, why)))
        {
            let labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let at = jiff::Timestamp::from_second(t)
                .map(|t| t.to_string())
                .unwrap_or_else(|_| t.to_string());
            return Err(MetricsError::Invalid(format!(
                "{endpoint} answered {} at {at} for the series {{{}}}, which is {why}: values \
                 to compute with must be {}; check the query (a division by zero gives ±Inf)",
                show(v),
                labels.join(", "),
                allowed_range()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn infinite_and_absurd_values_are_named_nan_is_a_gap() {
        assert_eq!(problem(f64::NAN), None);
        assert_eq!(problem(-MAX_ABS_VALUE), None);
        assert_eq!(problem(f64::INFINITY), Some("not finite"));
        assert_eq!(problem(1e308), Some("absurdly large"));
        assert_eq!(problem(-1e16), Some("absurdly large"));
        let s = |v: f64| Series {
            labels: BTreeMap::from([("pod".to_string(), "p-1".to_string())]),
            points: vec![
                (1_700_000_000, 1.0),
                (1_700_000_060, f64::NAN),
                (1_700_000_120, v),
            ],
        };
        check_answer(&[s(2.0)], "http://prom").unwrap();
        let e = check_answer(&[s(2.0), s(1e308)], "http://prom")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(
                "http://prom answered 1e308 at 2023-11-14T22:15:20Z for the series {pod=p-1}"
            ),
            "{e}"
        );
        assert!(e.contains("within ±1e15"), "{e}");
        let e = check_answer(&[s(f64::NEG_INFINITY)], "cw")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("answered -inf") && e.contains("not finite"),
            "{e}"
        );
        assert_eq!(show(0.25), "0.25");
        assert_eq!(show(1e308), "1e308");
        assert_eq!(show(-2.5e-7), "-2.5e-7");
    }
}
