//! Forecast accuracy and replica planning on real and synthetic load series, by rolling
//! origin, for this server's models; `bench/forecast_compare.py` runs the same protocol with
//! Python's statsforecast and prophet on the very same data (read from this bench's JSON)
//! and prints the side-by-side table.
//!
//! Run: `cargo bench --bench forecast [-- OUT.json]` (release); with `--features prophet` the
//! server's optional Prophet model (augurs, Stan on wasmtime) is a row too. Writes JSON to the path given
//! as argument, else `$EKS_OPS_MCP_BENCH_OUT`, else `$CARGO_TARGET_DIR/forecast-bench.json`
//! (else `target/forecast-bench.json`), and prints a table.
//!
//! Data: the NAB series (`$EKS_OPS_MCP_NAB_DIR`, default `../shared/data/nab` beside the
//! repository) and three synthetic series generated here deterministically (daily + weekly
//! cycles, trend, level shifts, gaps), written as NAB-style CSVs next to the JSON
//! (`forecast-bench-data/`) and read back like the NAB files. Each series is regularised
//! once with the server's own `history::regularize` (gaps filled by interpolation); the JSON
//! carries those values, so Python fits on exactly the same numbers. Steps that were missing
//! in the raw data are not scored.
//!
//! Protocol: 9 origins, every 6 h over the last 3 days (each with 24 h of data after it);
//! at each origin every model is refitted on the last 21 days (6,048 steps: what the tools
//! fetch by default) before it, or all there is; horizons 1 h (12 steps) and 24 h (288 steps); 90% intervals.
//! - `server_default`: `forecast::forecast` with `model: None` (its own seasonality detection
//!   and backtest choice), timed whole.
//! - `server_<model>`: `models::predict` with fixed periods (daily 288; weekly 2016, which
//!   MSTL uses only with two weeks of training data) — the same periods the Python models get.
//!   `ets_log` and `mstl_ets_log` fit on log(1 + v) (every series here is non-negative).
//!
//! Metrics: MASE (per origin: MAE / mean |y_t − y_{t−m}| over the training window, m = 288
//! when `seasonality::detect` finds a daily cycle in it, else 1; averaged over origins),
//! sMAPE, interval coverage, over/under-prediction rates. Replicas: capacity per pod =
//! median / (0.7 × 5), so the median needs 5 pods; at each step the forecast's replicas are
//! `capacity::plan` of the step's upper bound (floor 1), the need is the same formula on the
//! actual value, and the reactive HPA has, at step t, what the actual value at t − 1 needed.
//! Under-provisioned: the share of scored steps with fewer replicas than needed; extra
//! replica-hours: replicas above need, summed, per day of scored steps. The `_point` fields
//! size from the point forecast instead of the upper bound, for comparison.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use eks_ops_mcp::forecast::capacity::{CapacityInput, plan};
use eks_ops_mcp::forecast::evaluate::read_csv;
use eks_ops_mcp::forecast::history::regularize;
use eks_ops_mcp::forecast::models::{ModelKind, Prediction, predict};
use eks_ops_mcp::forecast::seasonality::{Seasonality, detect};
use eks_ops_mcp::forecast::{Options, forecast, kind_name, mase_scale};
use serde::Serialize;
use serde_json::json;

const STEP: i64 = 300;
const DAY: usize = 288;
const WEEK: usize = 7 * DAY;
const HORIZONS: [usize; 2] = [12, 288];
const LEVEL: f64 = 0.9;
const ORIGINS: usize = 9;
const ORIGIN_EVERY: usize = 72; // 6 h
const EVAL_STEPS: usize = 3 * DAY;
const TRAIN_MAX: usize = 3 * WEEK; // 21 days, what the tools fetch by default
const TARGET_UTILIZATION: f64 = 0.7;
const PODS_AT_MEDIAN: f64 = 5.0;
/// Lower interval levels the default's replicas are also sized from (upper bound = the
/// (1 + level)/2 quantile): the safety / capacity trade-off of `recommend_replicas`' `level`.
const SIZING_LEVELS: [(f64, &str); 2] = [
    (0.6, "server_default_sized_level_0.6"),
    (0.8, "server_default_sized_level_0.8"),
];

const NAB_FILES: &[&str] = &[
    "realTweets/Twitter_volume_AAPL.csv",
    "realTweets/Twitter_volume_AMZN.csv",
    "realTweets/Twitter_volume_FB.csv",
    "realTweets/Twitter_volume_GOOG.csv",
    "realTweets/Twitter_volume_IBM.csv",
    "realAWSCloudwatch/elb_request_count_8c0756.csv",
    "realAWSCloudwatch/ec2_cpu_utilization_24ae8d.csv",
    "realAWSCloudwatch/ec2_cpu_utilization_5f5533.csv",
    "realAWSCloudwatch/ec2_cpu_utilization_825cc2.csv",
    "realAWSCloudwatch/ec2_cpu_utilization_fe7f93.csv",
    "realAWSCloudwatch/ec2_network_in_257a54.csv",
    "realAWSCloudwatch/ec2_network_in_5abac7.csv",
    "realAWSCloudwatch/rds_cpu_utilization_cc0c53.csv",
    "realAWSCloudwatch/rds_cpu_utilization_e47b3b.csv",
];

/// Deterministic pseudo-random numbers (a 64-bit LCG), uniform in [0, 1).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let u = self.next().max(1e-12);
        let v = self.next();
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// A synthetic 5-minute load series of 21 days starting on a Monday: a daily cycle
/// (trough at night, peak mid-afternoon), quieter weekends, noise, the given trend (share of
/// the level per day) and a level shift (factor from step `shift_at` on), with 1% of the
/// points missing at random plus a 4-hour gap (day 10) and a 1-hour gap (late day 19).
fn synthetic(seed: u64, trend_per_day: f64, shift_at: usize, shift: f64) -> Vec<(i64, f64)> {
    let days = 21;
    let n = days * DAY;
    let start = 1_704_067_200; // 2024-01-01 00:00:00 UTC, a Monday
    let mut rng = Lcg(seed);
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let d = (i % DAY) as f64 / DAY as f64;
        let weekday = (i / DAY) % 7;
        let daily = 1.0 + 0.5 * (2.0 * std::f64::consts::PI * (d - 0.375)).sin();
        let weekly = if weekday >= 5 { 0.65 } else { 1.0 };
        let trend = 1.0 + trend_per_day * i as f64 / DAY as f64;
        let level = if i >= shift_at { shift } else { 1.0 };
        let mean = 400.0 * daily * weekly * trend * level;
        let v = (mean + (0.06 * mean + 5.0) * rng.normal()).max(0.0);
        let dropped = rng.next() < 0.01
            || (10 * DAY + 100..10 * DAY + 148).contains(&i)
            || (19 * DAY + 200..19 * DAY + 212).contains(&i);
        if !dropped {
            out.push((start + i as i64 * STEP, v));
        }
    }
    out
}

fn write_csv(path: &Path, points: &[(i64, f64)]) -> std::io::Result<()> {
    let mut s = String::from("timestamp,value\n");
    for (t, v) in points {
        let ts = jiff::Timestamp::from_second(*t).expect("timestamp");
        s.push_str(&format!("{},{v:.3}\n", ts.strftime("%Y-%m-%d %H:%M:%S")));
    }
    std::fs::write(path, s)
}

/// Error and replica sums for one (series, model, horizon).
#[derive(Default)]
struct Sums {
    scaled_mae: Vec<f64>,
    smape: f64,
    inside: usize,
    over: usize,
    under: usize,
    n: usize,
    under_provisioned: usize,
    extra_replica_steps: f64,
    under_provisioned_point: usize,
    extra_replica_steps_point: f64,
    replica_steps: f64,
    replica_steps_point: f64,
    ms: Vec<f64>,
    failures: Vec<String>,
}

#[derive(Serialize)]
struct Row {
    series: String,
    model: String,
    horizon: usize,
    mase: f64,
    smape: f64,
    coverage: f64,
    over_rate: f64,
    under_rate: f64,
    steps: usize,
    origins: usize,
    under_provisioned: f64,
    extra_replica_hours_per_day: f64,
    under_provisioned_point: f64,
    extra_replica_hours_per_day_point: f64,
    replica_hours_per_day: f64,
    replica_hours_per_day_point: f64,
    fit_predict_ms_median: f64,
    fit_predict_ms_mean: f64,
    failures: Vec<String>,
}

fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let k = s.len();
    if k % 2 == 1 {
        s[k / 2]
    } else {
        (s[k / 2 - 1] + s[k / 2]) / 2.0
    }
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// Replicas for a load, as the server plans them (floor 1, no current count to keep).
fn replicas(load: f64, capacity_per_pod: f64) -> i64 {
    plan(CapacityInput {
        peak_upper: load,
        capacity_per_pod,
        target_utilization: TARGET_UTILIZATION,
        current: 0,
        hpa_min: None,
        hpa_max: None,
        floor: 1,
    })
    .proposed
}

/// Score one forecast made at `origin` against the series.
fn score(
    s: &mut Sums,
    p: &Prediction,
    values: &[f64],
    observed: &[bool],
    origin: usize,
    scale: f64,
    capacity: f64,
) {
    let (mut abs, mut k) = (0.0, 0usize);
    for h in 0..p.point.len() {
        let t = origin + h;
        if !observed[t] {
            continue;
        }
        let (a, f, lo, hi) = (values[t], p.point[h], p.lower[h], p.upper[h]);
        abs += (f - a).abs();
        let denom = f.abs() + a.abs();
        s.smape += if denom > 0.0 {
            2.0 * (f - a).abs() / denom
        } else {
            0.0
        };
        s.inside += usize::from(a >= lo && a <= hi);
        s.over += usize::from(f > a);
        s.under += usize::from(f < a);
        let (have, need) = (replicas(hi, capacity), replicas(a, capacity));
        s.under_provisioned += usize::from(have < need);
        s.extra_replica_steps += (have - need).max(0) as f64;
        // for comparison: replicas sized from the point forecast instead
        let have_point = replicas(f, capacity);
        s.under_provisioned_point += usize::from(have_point < need);
        s.extra_replica_steps_point += (have_point - need).max(0) as f64;
        s.replica_steps_point += have_point as f64;
        s.replica_steps += have as f64;
        k += 1;
    }
    s.n += k;
    if k > 0 && scale > 0.0 {
        s.scaled_mae.push(abs / k as f64 / scale);
    }
}

fn row(series: &str, model: &str, horizon: usize, s: &Sums) -> Row {
    let n = s.n.max(1) as f64;
    // replica-steps → replica-hours per day of scored steps: × (5/60 h) / (n × 5 / 1440 days)
    let per_day = 24.0 / n;
    Row {
        series: series.into(),
        model: model.into(),
        horizon,
        mase: mean(&s.scaled_mae),
        smape: 100.0 * s.smape / n,
        coverage: s.inside as f64 / n,
        over_rate: s.over as f64 / n,
        under_rate: s.under as f64 / n,
        steps: s.n,
        origins: s.scaled_mae.len(),
        under_provisioned: s.under_provisioned as f64 / n,
        extra_replica_hours_per_day: s.extra_replica_steps * per_day,
        under_provisioned_point: s.under_provisioned_point as f64 / n,
        extra_replica_hours_per_day_point: s.extra_replica_steps_point * per_day,
        replica_hours_per_day: s.replica_steps * per_day,
        replica_hours_per_day_point: s.replica_steps_point * per_day,
        fit_predict_ms_median: median(&s.ms),
        fit_predict_ms_mean: mean(&s.ms),
        failures: s.failures.clone(),
    }
}

fn fixed_season() -> Seasonality {
    Seasonality {
        daily: Some(DAY),
        weekly: Some(WEEK),
        proposed: vec![],
        acf_daily: None,
        acf_weekly: None,
        day: DAY,
    }
}

fn fixed_name(k: ModelKind) -> &'static str {
    match k {
        ModelKind::Naive => "server_naive",
        ModelKind::SeasonalNaiveDaily => "server_seasonal_naive_daily",
        ModelKind::SeasonalNaiveWeekly => "server_seasonal_naive_weekly",
        ModelKind::RecentMedian => "server_recent_median",
        ModelKind::Ets => "server_ets",
        ModelKind::EtsLog => "server_ets_log",
        ModelKind::MstlEts => "server_mstl_ets",
        ModelKind::MstlEtsLog => "server_mstl_ets_log",
        ModelKind::Prophet => "server_prophet",
    }
}

struct Loaded {
    name: String,
    source: &'static str,
    file: String,
    points: Vec<(i64, f64)>,
}

fn main() {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out_path: PathBuf = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("EKS_OPS_MCP_BENCH_OUT").map(PathBuf::from))
        .unwrap_or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| manifest.join("target"))
                .join("forecast-bench.json")
        });
    let nab_dir = std::env::var_os("EKS_OPS_MCP_NAB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../shared/data/nab"));
    let out_dir = out_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let data_dir = out_dir.join("forecast-bench-data");
    std::fs::create_dir_all(&data_dir).expect("create the data folder");

    // ---- data
    let mut loaded = Vec::new();
    for f in NAB_FILES {
        let path = nab_dir.join(f);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("skipping {}: {e}", path.display());
                continue;
            }
        };
        let mut points = read_csv(&text).expect("NAB csv");
        // a few NAB files repeat a timestamp: sort (stable) and keep the first
        points.sort_by_key(|p| p.0);
        points.dedup_by_key(|p| p.0);
        let name = Path::new(f)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        loaded.push(Loaded {
            name,
            source: "nab",
            file: path.display().to_string(),
            points,
        });
    }
    if loaded.is_empty() {
        eprintln!(
            "no NAB file found under {} (set EKS_OPS_MCP_NAB_DIR); synthetic series only",
            nab_dir.display()
        );
    }
    let n_syn = 21 * DAY;
    let synth = [
        ("synthetic_trend", synthetic(11, 0.02, usize::MAX, 1.0)),
        (
            "synthetic_level_shift",
            synthetic(22, 0.005, n_syn - 5 * DAY, 1.5),
        ),
        (
            "synthetic_shift_in_window",
            synthetic(33, 0.0, n_syn - 3 * DAY / 2, 1.6),
        ),
    ];
    for (name, pts) in synth {
        let path = data_dir.join(format!("{name}.csv"));
        write_csv(&path, &pts).expect("write synthetic csv");
        let text = std::fs::read_to_string(&path).expect("read synthetic csv");
        let points = read_csv(&text).expect("synthetic csv");
        loaded.push(Loaded {
            name: name.into(),
            source: "synthetic",
            file: path.display().to_string(),
            points,
        });
    }

    // ---- protocol
    let mut fixed = vec![
        ModelKind::Naive,
        ModelKind::SeasonalNaiveDaily,
        ModelKind::SeasonalNaiveWeekly,
        ModelKind::RecentMedian,
        ModelKind::EtsLog,
        ModelKind::MstlEts,
        ModelKind::MstlEtsLog,
    ];
    // `cargo bench --features prophet --bench forecast`: the Rust Prophet too
    if cfg!(feature = "prophet") {
        fixed.push(ModelKind::Prophet);
    }
    let season = fixed_season();
    let mut rows: Vec<Row> = Vec::new();
    let mut hpa_rows = Vec::new();
    let mut series_json = Vec::new();
    let mut choices: BTreeMap<String, BTreeMap<usize, BTreeMap<String, usize>>> = BTreeMap::new();
    let mut calls = Vec::new();
    let started = Instant::now();
    for s in &loaded {
        let t_series = Instant::now();
        let (reg, warnings) = regularize(&s.points).expect("regularize");
        assert_eq!(reg.step, STEP, "{}: expected 5-minute data", s.name);
        let values = &reg.values;
        let n = values.len();
        let mut observed = vec![false; n];
        for &(t, v) in &s.points {
            let idx = ((t - reg.start + STEP / 2) / STEP) as usize;
            if idx < n && v.is_finite() {
                observed[idx] = true;
            }
        }
        if n < EVAL_STEPS + 2 * DAY {
            eprintln!("skipping {}: only {n} steps", s.name);
            continue;
        }
        let origins: Vec<usize> = (0..ORIGINS)
            .map(|k| n - EVAL_STEPS + k * ORIGIN_EVERY)
            .collect();
        // capacity per pod: the series' median (of its positive values when the median is 0)
        // needs PODS_AT_MEDIAN pods at the target utilisation
        let positive: Vec<f64> = values.iter().copied().filter(|v| *v > 0.0).collect();
        let typical = Some(median(values))
            .filter(|m| *m > 0.0)
            .or_else(|| Some(median(&positive)).filter(|m| *m > 0.0))
            .unwrap_or(1.0);
        let capacity = typical / (TARGET_UTILIZATION * PODS_AT_MEDIAN);

        let mut lags = Vec::new();
        let mut scales = Vec::new();
        let mut train_starts = Vec::new();
        let mut detected = Vec::new();
        for &o in &origins {
            let lo = o.saturating_sub(TRAIN_MAX);
            let train = &values[lo..o];
            let found = detect(train, STEP);
            let m = found.daily.unwrap_or(1);
            lags.push(m);
            scales.push(mase_scale(train, m));
            train_starts.push(lo);
            detected.push(json!({
                "daily": found.daily.is_some(),
                "weekly": found.weekly.is_some(),
                "acf_daily": found.acf_daily,
                "acf_weekly": found.acf_weekly,
            }));
        }

        for &h in &HORIZONS {
            let mut sums: BTreeMap<&str, Sums> = BTreeMap::new();
            let mut hpa = Sums::default();
            let chosen = choices
                .entry(s.name.clone())
                .or_default()
                .entry(h)
                .or_default();
            for (oi, &o) in origins.iter().enumerate() {
                let lo = train_starts[oi];
                let train = &values[lo..o];
                let scale = scales[oi];
                // the server's default: detection, backtest choice and forecast, timed whole
                let pts: Vec<(i64, f64)> = (lo..o).map(|i| (reg.time(i), values[i])).collect();
                let t = Instant::now();
                let res = forecast(
                    &pts,
                    Options {
                        horizon: h,
                        level: LEVEL,
                        model: None,
                    },
                );
                let ms = t.elapsed().as_secs_f64() * 1e3;
                let e = sums.entry("server_default").or_default();
                match res {
                    Ok(out) => {
                        e.ms.push(ms);
                        calls.push(json!({
                            "series": s.name, "horizon": h, "origin": o, "train_steps": o - lo,
                            "ms": ms, "chosen": kind_name(out.model),
                            "candidates": out.candidates,
                        }));
                        *chosen.entry(kind_name(out.model)).or_default() += 1;
                        score(e, &out.prediction, values, &observed, o, scale, capacity);
                        // replicas sized from the chosen model's upper bound at lower levels
                        for (lv, name) in SIZING_LEVELS {
                            if let Ok(p) = predict(out.model, train, &out.fit_seasonality, h, lv) {
                                let sized = Prediction {
                                    point: out.prediction.point.clone(),
                                    ..p
                                };
                                let e = sums.entry(name).or_default();
                                score(e, &sized, values, &observed, o, scale, capacity);
                            }
                        }
                    }
                    Err(err) => e.failures.push(format!("origin {o}: {err}")),
                }
                for &k in &fixed {
                    let t = Instant::now();
                    let res = predict(k, train, &season, h, LEVEL);
                    let ms = t.elapsed().as_secs_f64() * 1e3;
                    let e = sums.entry(fixed_name(k)).or_default();
                    match res {
                        Ok(p) => {
                            e.ms.push(ms);
                            score(e, &p, values, &observed, o, scale, capacity);
                        }
                        Err(err) => e.failures.push(format!("origin {o}: {err}")),
                    }
                }
                // reactive HPA: at step t, what the actual value at t − 1 needed
                for step in 0..h {
                    let t = o + step;
                    if !observed[t] {
                        continue;
                    }
                    let (have, need) = (
                        replicas(values[t - 1], capacity),
                        replicas(values[t], capacity),
                    );
                    hpa.under_provisioned += usize::from(have < need);
                    hpa.extra_replica_steps += (have - need).max(0) as f64;
                    hpa.replica_steps += have as f64;
                    hpa.n += 1;
                }
            }
            for (model, sm) in &sums {
                rows.push(row(&s.name, model, h, sm));
            }
            let r = row(&s.name, "reactive_hpa", h, &hpa);
            hpa_rows.push(json!({
                "series": s.name, "horizon": h, "steps": r.steps,
                "under_provisioned": r.under_provisioned,
                "extra_replica_hours_per_day": r.extra_replica_hours_per_day,
                "replica_hours_per_day": r.replica_hours_per_day,
            }));
        }
        let missing: Vec<usize> = (0..n).filter(|&i| !observed[i]).collect();
        series_json.push(json!({
            "name": s.name,
            "source": s.source,
            "file": s.file,
            "start": reg.start,
            "step": reg.step,
            "values": values,
            "missing": missing,
            "origins": origins,
            "train_starts": train_starts,
            "mase_lag": lags,
            "mase_scale": scales,
            "detected": detected,
            "capacity_per_pod": capacity,
            "warnings": warnings,
        }));
        eprintln!(
            "{:<32} {:>6} steps  {:>6.1} s",
            s.name,
            n,
            t_series.elapsed().as_secs_f64()
        );
    }
    let total_s = started.elapsed().as_secs_f64();

    // ---- output
    let doc = json!({
        "meta": {
            "bench": "cargo bench --bench forecast",
            "level": LEVEL,
            "step_seconds": STEP,
            "horizons": HORIZONS,
            "origins_per_series": ORIGINS,
            "origin_every_steps": ORIGIN_EVERY,
            "eval_steps": EVAL_STEPS,
            "train_max_steps": TRAIN_MAX,
            "fixed_periods": [DAY, WEEK],
            "target_utilization": TARGET_UTILIZATION,
            "pods_at_median": PODS_AT_MEDIAN,
            "replica_floor": 1,
            "nab_dir": nab_dir.display().to_string(),
            "data_dir": data_dir.display().to_string(),
            "total_seconds": total_s,
        },
        "series": series_json,
        "results": rows,
        "hpa": hpa_rows,
        "default_choices": choices,
        "default_calls": calls,
    });
    std::fs::write(&out_path, serde_json::to_vec(&doc).expect("json")).expect("write the JSON");

    // ---- table
    for &h in &HORIZONS {
        println!(
            "\n### Horizon {} ({h} steps of 5 min), over series (mean unless marked median)\n",
            if h == 12 { "1 h" } else { "24 h" }
        );
        println!(
            "| model | MASE mean | MASE median | sMAPE % | coverage | over | under | under-prov. | extra replica-h/day (median) | fit+predict ms (median) |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|");
        let mut names: Vec<&str> = rows.iter().map(|r| r.model.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        for name in names {
            let rs: Vec<&Row> = rows
                .iter()
                .filter(|r| r.model == name && r.horizon == h)
                .collect();
            let col = |f: &dyn Fn(&Row) -> f64| mean(&rs.iter().map(|r| f(r)).collect::<Vec<_>>());
            println!(
                "| {name} | {:.3} | {:.3} | {:.1} | {:.3} | {:.3} | {:.3} | {:.3} | {:.2} | {:.1} |",
                col(&|r| r.mase),
                median(&rs.iter().map(|r| r.mase).collect::<Vec<_>>()),
                col(&|r| r.smape),
                col(&|r| r.coverage),
                col(&|r| r.over_rate),
                col(&|r| r.under_rate),
                col(&|r| r.under_provisioned),
                median(
                    &rs.iter()
                        .map(|r| r.extra_replica_hours_per_day)
                        .collect::<Vec<_>>()
                ),
                median(
                    &rs.iter()
                        .map(|r| r.fit_predict_ms_median)
                        .collect::<Vec<_>>()
                ),
            );
        }
        let hs: Vec<&serde_json::Value> = hpa_rows.iter().filter(|r| r["horizon"] == h).collect();
        let hcol = |k: &str| hs.iter().filter_map(|r| r[k].as_f64()).collect::<Vec<_>>();
        println!(
            "| reactive_hpa (lag 1 step) | | | | | | | {:.3} | {:.2} | |",
            mean(&hcol("under_provisioned")),
            median(&hcol("extra_replica_hours_per_day"))
        );
    }
    println!("\n### MASE per series\n");
    let models: Vec<&str> = {
        let mut v: Vec<&str> = rows.iter().map(|r| r.model.as_str()).collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    println!(
        "| series | h | default chose | {} |",
        models
            .iter()
            .map(|m| m.trim_start_matches("server_"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("|---|---|---|{}", "---|".repeat(models.len()));
    for s in &series_json {
        let name = s["name"].as_str().unwrap_or_default();
        for &h in &HORIZONS {
            let chose = choices
                .get(name)
                .and_then(|c| c.get(&h))
                .map(|c| {
                    c.iter()
                        .map(|(k, v)| format!("{k}×{v}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            let cells: Vec<String> = models
                .iter()
                .map(|m| {
                    rows.iter()
                        .find(|r| r.series == name && r.horizon == h && r.model == *m)
                        .map(|r| format!("{:.3}", r.mase))
                        .unwrap_or_else(|| "—".into())
                })
                .collect();
            println!("| {name} | {h} | {chose} | {} |", cells.join(" | "));
        }
    }
    println!(
        "\n{} series in {total_s:.1} s; JSON: {}",
        series_json.len(),
        out_path.display()
    );
}
