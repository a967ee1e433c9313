//! Metric series of a scenario, generated from short descriptions: a request rate with
//! daily and weekly cycles, a memory curve that climbs until the container is OOM-killed, an
//! error ratio that jumps after a rollout. Deterministic for a given scenario and end time.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use serde::Deserialize;

use super::prometheus::SandboxSeries;
use super::scenario::ScenarioError;

/// The shape of a generated series.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Shape {
    /// `base` × (1 + `daily` × cos(hour − `peak_hour`)) × (1 − `weekly` at weekends) + trend, with noise.
    Seasonal {
        /// Mean level.
        base: f64,
        /// Relative amplitude of the daily cycle (0.5 = ±50%).
        daily: f64,
        /// Relative dip at weekends (0.3 = 30% less on Saturday and Sunday).
        #[serde(default)]
        weekly: f64,
        /// Hour of the daily peak (UTC).
        #[serde(default = "default_peak")]
        peak_hour: f64,
        /// Change of the level per day, relative to `base`.
        #[serde(default)]
        trend_per_day: f64,
        /// Relative standard deviation of the noise.
        #[serde(default)]
        noise: f64,
    },
    /// Flat at `from` until `since`, then climbing linearly to `to` over `reset_every` and
    /// falling back to `from` (a leak that ends in an OOM kill, again and again).
    Sawtooth {
        /// Value after a restart.
        from: f64,
        /// Value just before the kill.
        to: f64,
        /// When the leak started.
        since: Timestamp,
        /// Time from restart to kill (humantime, e.g. 45m).
        reset_every: String,
        /// Relative standard deviation of the noise.
        #[serde(default)]
        noise: f64,
    },
    /// `before` until `at`, then `after`.
    Step {
        /// Value before.
        before: f64,
        /// Value after.
        after: f64,
        /// When it changes.
        at: Timestamp,
        /// Relative standard deviation of the noise.
        #[serde(default)]
        noise: f64,
    },
}

fn default_peak() -> f64 {
    14.0
}

fn default_history() -> String {
    "14d".into()
}

fn default_step() -> String {
    "5m".into()
}

/// One metric of a scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSpec {
    /// Metric name.
    pub name: String,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// How far back the series goes (humantime; default 14d).
    #[serde(default = "default_history")]
    pub history: String,
    /// Step between samples (humantime; default 5m).
    #[serde(default = "default_step")]
    pub step: String,
    /// The shape.
    pub shape: Shape,
}

/// A small deterministic generator (SplitMix64) with Gaussian draws; the series only need
/// to be repeatable, not cryptographic, so no crate is pulled in for it.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn gauss(&mut self) -> f64 {
        let (u1, u2) = (self.next().max(1e-12), self.next());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

fn duration(what: &str, s: &str) -> Result<Duration, ScenarioError> {
    humantime::parse_duration(s)
        .map_err(|e| ScenarioError::Invalid(format!("metric {what}: {s:?} is not a duration: {e}")))
}

/// Generate a metric's samples, ending at `now`.
pub fn generate(spec: &MetricSpec, now: Timestamp) -> Result<SandboxSeries, ScenarioError> {
    let step = duration(&spec.name, &spec.step)?.as_secs().max(1) as i64;
    let history = duration(&spec.name, &spec.history)?.as_secs() as i64;
    if history / step > 200_000 {
        return Err(ScenarioError::Invalid(format!(
            "metric {}: more than 200,000 samples",
            spec.name
        )));
    }
    let end = now.as_second() / step * step;
    let start = end - history / step * step;
    let seed = spec
        .name
        .bytes()
        .chain(
            spec.labels
                .iter()
                .flat_map(|(k, v)| k.bytes().chain(v.bytes())),
        )
        .fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
        });
    let mut rng = Rng(seed);
    let mut points = Vec::with_capacity(((end - start) / step + 1) as usize);
    let mut t = start;
    while t <= end {
        let v = match &spec.shape {
            Shape::Seasonal {
                base,
                daily,
                weekly,
                peak_hour,
                trend_per_day,
                noise,
            } => {
                let hour = (t.rem_euclid(86_400)) as f64 / 3_600.0;
                // 1970-01-01 was a Thursday: day 0 → Thursday, so Saturday and Sunday are days 2 and 3 mod 7
                let weekday = (t.div_euclid(86_400)).rem_euclid(7);
                let weekend = if weekday == 2 || weekday == 3 {
                    1.0 - weekly
                } else {
                    1.0
                };
                let cycle =
                    1.0 + daily * (2.0 * std::f64::consts::PI * (hour - peak_hour) / 24.0).cos();
                let trend = 1.0 + trend_per_day * (t - start) as f64 / 86_400.0;
                (base * cycle * weekend * trend * (1.0 + noise * rng.gauss())).max(0.0)
            }
            Shape::Sawtooth {
                from,
                to,
                since,
                reset_every,
                noise,
            } => {
                let period = duration(&spec.name, reset_every)?.as_secs().max(1) as i64;
                let since = since.as_second();
                let base = if t < since {
                    *from
                } else {
                    from + (to - from) * ((t - since) % period) as f64 / period as f64
                };
                base * (1.0 + noise * rng.gauss())
            }
            Shape::Step {
                before,
                after,
                at,
                noise,
            } => {
                let base = if t < at.as_second() { *before } else { *after };
                (base * (1.0 + noise * rng.gauss())).max(0.0)
            }
        };
        points.push((t, v));
        t += step;
    }
    Ok(SandboxSeries {
        name: spec.name.clone(),
        labels: spec.labels.clone(),
        points,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seasonal_series_peak_on_weekday_afternoons() {
        let spec: MetricSpec = serde_json::from_value(serde_json::json!({
            "name": "rps", "shape": {"kind": "seasonal", "base": 100.0, "daily": 0.5, "weekly": 0.3}
        }))
        .unwrap();
        let now: Timestamp = "2026-11-25T23:59:00Z".parse().unwrap(); // a Wednesday
        let s = generate(&spec, now).unwrap();
        assert_eq!(s.points.len(), 14 * 288 + 1);
        let at = |iso: &str| {
            let t = iso.parse::<Timestamp>().unwrap().as_second();
            s.points.iter().find(|p| p.0 == t).unwrap().1
        };
        assert!(
            (at("2026-11-25T14:00:00Z") - 150.0).abs() < 1e-9,
            "weekday peak"
        );
        assert!(
            (at("2026-11-25T02:00:00Z") - 50.0).abs() < 1e-9,
            "night trough"
        );
        assert!(
            (at("2026-11-22T14:00:00Z") - 105.0).abs() < 1e-9,
            "Sunday peak is 30% lower"
        );
        assert_eq!(
            generate(&spec, now).unwrap().points,
            s.points,
            "deterministic"
        );
    }
}
