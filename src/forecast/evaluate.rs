//! Evaluation on labelled data: reading `timestamp,value` CSV files (the Numenta Anomaly
//! Benchmark format) and scoring anomaly bands against labelled anomaly windows.

use std::path::Path;

use jiff::civil::DateTime;
use serde::Serialize;

use super::ForecastError;
use super::anomaly::{self, Detection};
use super::history::regularize;
use super::seasonality;

/// Parse a `timestamp,value` CSV (header line first; timestamps `YYYY-MM-DD HH:MM:SS[.ffffff]`
/// in UTC, or unix seconds).
pub fn read_csv(text: &str) -> Result<Vec<(i64, f64)>, ForecastError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let (ts, v) = line.split_once(',').ok_or_else(|| {
            ForecastError::Invalid(format!("line {}: expected timestamp,value", i + 1))
        })?;
        let t = parse_time(ts.trim()).ok_or_else(|| {
            ForecastError::Invalid(format!("line {}: bad timestamp {ts:?}", i + 1))
        })?;
        let v: f64 = v
            .trim()
            .parse()
            .map_err(|_| ForecastError::Invalid(format!("line {}: bad value {v:?}", i + 1)))?;
        out.push((t, v));
    }
    Ok(out)
}

/// Unix seconds of `YYYY-MM-DD HH:MM:SS[.f]` (UTC), RFC 3339, or plain unix seconds.
pub fn parse_time(s: &str) -> Option<i64> {
    if let Ok(t) = s.parse::<i64>() {
        return Some(t);
    }
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Some(t.as_second());
    }
    let dt: DateTime = s.replace(' ', "T").parse().ok()?;
    dt.to_zoned(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp().as_second())
}

/// Score of one labelled series.
#[derive(Debug, Clone, Serialize)]
pub struct Score {
    /// File name.
    pub file: String,
    /// Labelled windows.
    pub windows: usize,
    /// Windows with at least one anomaly inside.
    pub hit: usize,
    /// Anomaly events (anomalies within an hour merged) outside every window.
    pub false_alarms: usize,
    /// Days of data scored (after warm-up).
    pub days: f64,
    /// Seasonality used.
    pub method: String,
}

impl Score {
    /// False alarms per day.
    pub fn false_per_day(&self) -> f64 {
        if self.days > 0.0 {
            self.false_alarms as f64 / self.days
        } else {
            0.0
        }
    }
}

/// Run the band on a series and score it against labelled windows (unix seconds).
pub fn score(
    file: &str,
    points: &[(i64, f64)],
    windows: &[(i64, i64)],
    k: f64,
) -> Result<Score, ForecastError> {
    let (reg, _) = regularize(points)?;
    let season = seasonality::detect(&reg.values, reg.step);
    let d: Detection = anomaly::detect(&reg, &season, k);
    let events = anomaly::events(&d.anomalies, 3_600);
    let scored_from = d.band.first().map(|b| b.t).unwrap_or(i64::MAX);
    let inside = |t: i64| windows.iter().any(|&(a, b)| t >= a && t <= b);
    let hit = windows
        .iter()
        .filter(|&&(a, b)| b >= scored_from && d.anomalies.iter().any(|x| x.t >= a && x.t <= b))
        .count();
    let false_alarms = events
        .iter()
        .filter(|(a, b)| !inside(*a) && !inside(*b))
        .count();
    let days = d.band.len() as f64 * reg.step as f64 / 86_400.0;
    Ok(Score {
        file: file.to_string(),
        windows: windows.iter().filter(|&&(_, b)| b >= scored_from).count(),
        hit,
        false_alarms,
        days,
        method: d.method,
    })
}

/// Score every labelled file of a NAB folder whose path starts with `prefix`
/// (e.g. `realAWSCloudwatch/`).
pub fn score_nab(dir: &Path, prefix: &str, k: f64) -> Result<Vec<Score>, ForecastError> {
    let labels_text = std::fs::read_to_string(dir.join("labels.json")).map_err(|e| {
        ForecastError::Invalid(format!("cannot read {}/labels.json: {e}", dir.display()))
    })?;
    let labels: std::collections::BTreeMap<String, Vec<(String, String)>> =
        serde_json::from_str(&labels_text)
            .map_err(|e| ForecastError::Invalid(format!("labels.json: {e}")))?;
    let mut out = Vec::new();
    for (file, wins) in labels.iter().filter(|(f, _)| f.starts_with(prefix)) {
        let path = dir.join(file);
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let mut points = read_csv(&text)?;
        // a few NAB files repeat a timestamp (clock changes); keep the first value
        points.sort_by_key(|p| p.0);
        points.dedup_by_key(|p| p.0);
        let windows: Vec<(i64, i64)> = wins
            .iter()
            .filter_map(|(a, b)| Some((parse_time(a)?, parse_time(b)?)))
            .collect();
        out.push(score(file, &points, &windows, k)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_and_times() {
        let pts =
            read_csv("timestamp,value\n2014-02-14 14:30:00,1.5\n2014-02-14 14:35:00.000000,2\n")
                .unwrap();
        assert_eq!(pts, vec![(1_392_388_200, 1.5), (1_392_388_500, 2.0)]);
        assert!(read_csv("timestamp,value\nnope,1\n").is_err());
        assert_eq!(parse_time("1700000000"), Some(1_700_000_000));
    }
}
