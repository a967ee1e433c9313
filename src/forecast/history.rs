//! Turning raw points into a regular series the models can use: sorted, de-duplicated,
//! on a fixed step, gaps filled.

use super::ForecastError;

/// A regular series: `values[i]` is the value at `start + i * step`.
#[derive(Debug, Clone, PartialEq)]
pub struct Regular {
    /// Unix seconds of the first value.
    pub start: i64,
    /// Seconds between values.
    pub step: i64,
    /// Values (gaps already filled).
    pub values: Vec<f64>,
}

impl Regular {
    /// Unix seconds of the value at `i` (may be past the end, for forecasts).
    pub fn time(&self, i: usize) -> i64 {
        self.start + i as i64 * self.step
    }

    /// Seconds of history covered.
    pub fn span_seconds(&self) -> i64 {
        self.step * self.values.len().saturating_sub(1) as i64
    }
}

/// Build a regular series from (unix seconds, value) points.
///
/// Errors on unsorted or duplicate timestamps, and on a series with no finite value.
/// Gaps (missing steps, NaN values) are filled by linear interpolation and reported in the
/// returned warnings; negative values are kept and reported.
pub fn regularize(points: &[(i64, f64)]) -> Result<(Regular, Vec<String>), ForecastError> {
    let mut warnings = Vec::new();
    if points.len() < 3 {
        return Err(ForecastError::Invalid(format!(
            "the series has {} point(s); at least 3 are needed",
            points.len()
        )));
    }
    for (i, w) in points.windows(2).enumerate() {
        if w[1].0 == w[0].0 {
            return Err(ForecastError::Invalid(format!(
                "timestamps {} appears twice (points {} and {}); give one value per timestamp",
                w[0].0,
                i,
                i + 1
            )));
        }
        if w[1].0 < w[0].0 {
            return Err(ForecastError::Invalid(format!(
                "timestamps are not sorted: point {} ({}) comes after point {} ({}); sort them oldest first",
                i + 1,
                w[1].0,
                i,
                w[0].0
            )));
        }
    }
    let finite = points.iter().filter(|(_, v)| v.is_finite()).count();
    if finite == 0 {
        return Err(ForecastError::Invalid(
            "the series has no finite value (all NaN or infinite)".into(),
        ));
    }
    // the step is the most common spacing
    let mut diffs: Vec<i64> = points.windows(2).map(|w| w[1].0 - w[0].0).collect();
    diffs.sort_unstable();
    let step = diffs[diffs.len() / 2].max(1);
    let start = points[0].0;
    let end = points[points.len() - 1].0;
    let n = ((end - start) / step) as usize + 1;
    if n > 2_000_000 {
        return Err(ForecastError::Invalid(format!(
            "the series spans {n} steps of {step} s; at most 2,000,000 are accepted"
        )));
    }
    let mut values = vec![f64::NAN; n];
    let mut off_grid = 0usize;
    for &(t, v) in points {
        let offset = t - start;
        if offset % step != 0 {
            off_grid += 1;
        }
        let idx = ((offset + step / 2) / step) as usize;
        if idx < n && v.is_finite() {
            values[idx] = v;
        }
    }
    if off_grid > 0 {
        warnings.push(format!(
            "{off_grid} point(s) were not on the {step} s grid and were moved to the nearest step"
        ));
    }
    let missing = values.iter().filter(|v| v.is_nan()).count();
    if missing > 0 {
        fill_gaps(&mut values);
        warnings.push(format!(
            "{missing} missing value(s) of {n} ({:.1}%) were filled by linear interpolation",
            100.0 * missing as f64 / n as f64
        ));
    }
    let negative = values.iter().filter(|v| **v < 0.0).count();
    if negative > 0 {
        warnings.push(format!(
            "{negative} value(s) are negative; a load metric usually is not — check the query"
        ));
    }
    Ok((
        Regular {
            start,
            step,
            values,
        },
        warnings,
    ))
}

/// Fill NaN values by linear interpolation between neighbours (edges take the nearest value).
pub fn fill_gaps(values: &mut [f64]) {
    let known: Vec<usize> = (0..values.len())
        .filter(|&i| values[i].is_finite())
        .collect();
    let (Some(&first), Some(&last)) = (known.first(), known.last()) else {
        return;
    };
    for i in 0..first {
        values[i] = values[first];
    }
    for i in last + 1..values.len() {
        values[i] = values[last];
    }
    for w in known.windows(2) {
        let (a, b) = (w[0], w[1]);
        for i in a + 1..b {
            let f = (i - a) as f64 / (b - a) as f64;
            values[i] = values[a] + (values[b] - values[a]) * f;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_filled_and_reported() {
        let pts = vec![(0, 1.0), (60, 2.0), (180, 4.0), (240, f64::NAN), (300, 6.0)];
        let (r, w) = regularize(&pts).unwrap();
        assert_eq!(r.step, 60);
        assert_eq!(r.values, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert!(w[0].contains("2 missing"), "{w:?}");
    }

    #[test]
    fn bad_input_is_explained() {
        let e = regularize(&[(0, 1.0), (60, 2.0), (60, 3.0)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("appears twice"), "{e}");
        let e = regularize(&[(0, 1.0), (120, 2.0), (60, 3.0)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("not sorted"), "{e}");
        let e = regularize(&[(0, f64::NAN), (60, f64::NAN), (120, f64::NAN)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("no finite value"), "{e}");
        assert!(regularize(&[(0, 1.0)]).is_err());
        let (_, w) = regularize(&[(0, -1.0), (60, 2.0), (120, 3.0)]).unwrap();
        assert!(w.iter().any(|w| w.contains("negative")));
    }
}
