#!/usr/bin/env python3
"""Side-by-side forecasting benchmark: this server's models vs statsforecast and prophet.

Runs `cargo bench --bench forecast` (the Rust side: protocol, data, this server's models;
it writes a JSON file with every series it used, already regularised, and its results),
then fits the Python models on exactly the same training windows, scores them with the
same metrics, and prints one combined markdown table (also written to a file) with the
aims check.

Usage (from the repository root):

    python3 bench/forecast_compare.py                 # builds + runs the Rust bench too
    python3 bench/forecast_compare.py --rust-json ~/.cache/eks-ops-mcp/target/forecast-bench.json
                                                      # reuse the JSON of an earlier cargo bench

Options: --out FILE.md (default: next to the JSON, forecast-compare.md), --jobs N (Python
worker processes, default 2), --venv DIR, --reuse-python (keep the last Python results when
the data and the Python models are unchanged), --prophet (the Rust bench with the server's
optional Prophet model). Env: CARGO_TARGET_DIR (default
~/.cache/eks-ops-mcp/target), EKS_OPS_MCP_FORECAST_VENV (venv; default
~/.cache/eks-ops-mcp/forecast-venv), EKS_OPS_MCP_NAB_DIR (passed on to the Rust bench).

The script creates its venv and installs bench/requirements-forecast.txt with pip the first
time (statsforecast, prophet — prophet's wheel ships its compiled Stan model), then re-runs
itself inside it. Nothing here is needed by the normal test command.

Python models (each refitted at every origin on the same window as the Rust models; one fit
per origin forecasting 24 h, whose first 12 steps are the 1 h forecast — identical to a
separate 12-step call for these models; the time shown is that fit + 288-step predict):
- sf_seasonal_naive: statsforecast SeasonalNaive(288).
- sf_mstl: statsforecast MSTL(season_length=[288] + [2016 with >= 2 weeks of data],
  trend_forecaster=AutoETS(model="ZZN")) — the same decomposition + ETS-trend idea as the
  server's mstl_ets. statsmodels' STL is used with R stl()'s speed-up "jumps" for the daily
  period (seasonal 2, trend 30, low-pass 29): without them one fit takes ~8 s here.
- sf_autoets_hourly / sf_autoarima_hourly: AutoETS(season_length=24) and
  AutoARIMA(season_length=24) on hourly means (12-step blocks ending at the origin), each
  hourly value and interval repeated over its 12 five-minute steps. On 5-minute data with
  season 288 AutoARIMA is impractically slow, and AutoETS took > 100 s per fit (ETS is meant
  for seasons <= 24); on hourly data the daily season is 24, which both handle.
  AutoARIMA also uses approximation=True (the stepwise search on approximate likelihoods,
  R auto.arima's default for series this long); with exact likelihoods a fit took 6–85 s.
- prophet: Prophet(daily + weekly seasonality, no yearly, 90% interval), seed 0.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQS = ROOT / "bench" / "requirements-forecast.txt"
IN_VENV = "EKS_OPS_MCP_FORECAST_COMPARE_IN_VENV"

PY_MODELS = [
    "sf_seasonal_naive",
    "sf_autoets_hourly",
    "sf_mstl",
    "sf_autoarima_hourly",
    "prophet",
]
SERVER_MODELS = [
    "server_default",
    "server_naive",
    "server_seasonal_naive_daily",
    "server_seasonal_naive_weekly",
    "server_recent_median",
    "server_ets_log",
    "server_mstl_ets",
    "server_mstl_ets_log",
    "server_prophet",
]


def default_target_dir() -> Path:
    return Path(
        os.environ.get("CARGO_TARGET_DIR")
        or Path.home() / ".cache" / "eks-ops-mcp" / "target"
    )


def ensure_venv(venv: Path) -> None:
    """Create the venv, install the requirements (once per requirements content), re-exec."""
    py = venv / "bin" / "python"
    if not py.exists():
        print(f"creating venv {venv}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    stamp = venv / ".forecast-requirements.sha"
    want = hashlib.sha256(REQS.read_bytes()).hexdigest()
    if not stamp.exists() or stamp.read_text().strip() != want:
        print(f"installing {REQS.name} into {venv} (pip)", file=sys.stderr)
        subprocess.run(
            [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", str(REQS)],
            check=True,
        )
        stamp.write_text(want)
    env = dict(os.environ)
    env[IN_VENV] = "1"
    os.execve(str(py), [str(py), str(Path(__file__).resolve()), *sys.argv[1:]], env)


# --------------------------------------------------------------------------- metrics


def replicas(load: float, capacity: float, target: float) -> int:
    """capacity::plan with floor 1 and no current count: ceil(max(load, 0) / (u × c))."""
    per_pod = target * capacity
    return max(1, math.ceil(max(load, 0.0) / per_pod))


class Sums:
    def __init__(self):
        self.scaled_mae: list[float] = []
        self.smape = 0.0
        self.inside = self.over = self.under = self.n = 0
        self.under_prov = 0
        self.extra = 0.0
        self.under_prov_point = 0
        self.extra_point = 0.0
        self.total = 0.0
        self.ms: list[float] = []
        self.failures: list[str] = []

    def score(self, point, lower, upper, values, observed, origin, scale, capacity, target):
        abs_sum, k = 0.0, 0
        for h in range(len(point)):
            t = origin + h
            if not observed[t]:
                continue
            a, f, lo, hi = values[t], float(point[h]), float(lower[h]), float(upper[h])
            abs_sum += abs(f - a)
            denom = abs(f) + abs(a)
            self.smape += 2.0 * abs(f - a) / denom if denom > 0 else 0.0
            self.inside += int(lo <= a <= hi)
            self.over += int(f > a)
            self.under += int(f < a)
            have, need = replicas(hi, capacity, target), replicas(a, capacity, target)
            self.under_prov += int(have < need)
            self.extra += max(have - need, 0)
            have_point = replicas(f, capacity, target)
            self.under_prov_point += int(have_point < need)
            self.extra_point += max(have_point - need, 0)
            self.total += have
            k += 1
        self.n += k
        if k > 0 and scale > 0:
            self.scaled_mae.append(abs_sum / k / scale)

    def row(self, series, model, horizon):
        n = max(self.n, 1)
        per_day = 24.0 / n
        ms = sorted(self.ms)
        return {
            "series": series,
            "model": model,
            "horizon": horizon,
            "mase": mean(self.scaled_mae),
            "smape": 100.0 * self.smape / n,
            "coverage": self.inside / n,
            "over_rate": self.over / n,
            "under_rate": self.under / n,
            "steps": self.n,
            "origins": len(self.scaled_mae),
            "under_provisioned": self.under_prov / n,
            "extra_replica_hours_per_day": self.extra * per_day,
            "under_provisioned_point": self.under_prov_point / n,
            "extra_replica_hours_per_day_point": self.extra_point * per_day,
            "replica_hours_per_day": self.total * per_day,
            "fit_predict_ms_median": median(ms),
            "fit_predict_ms_mean": mean(ms),
            "failures": self.failures,
        }


def mean(v):
    v = [x for x in v if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return sum(v) / len(v) if v else float("nan")


def median(v):
    v = sorted(x for x in v if x is not None and not (isinstance(x, float) and math.isnan(x)))
    if not v:
        return float("nan")
    k = len(v)
    return v[k // 2] if k % 2 else (v[k // 2 - 1] + v[k // 2]) / 2


# --------------------------------------------------------------------------- python models


def _setup_worker():
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("prophet.plot").setLevel(logging.CRITICAL)
    import cmdstanpy  # noqa: F401 — configures its logger on import; quiet it afterwards
    import prophet  # noqa: F401

    logging.getLogger("cmdstanpy").disabled = True  # its handler is added lazily, at the first fit
    for name in ("cmdstanpy", "prophet"):
        lg = logging.getLogger(name)
        lg.setLevel(logging.ERROR)
        for hd in lg.handlers:
            hd.setLevel(logging.ERROR)


def fit_predict(model: str, train, start: int, step: int, h: int, level: int = 90):
    """One model fitted on `train` (values at start + i*step), `h` steps ahead: (mean, lo, hi)."""
    import numpy as np

    if model == "sf_seasonal_naive":
        from statsforecast.models import SeasonalNaive

        r = SeasonalNaive(season_length=288).forecast(y=train, h=h, level=[level])
    elif model == "sf_mstl":
        from statsforecast.models import MSTL, AutoETS

        seasons = [288] + ([2016] if len(train) >= 2 * 2016 else [])
        r = MSTL(
            season_length=seasons,
            trend_forecaster=AutoETS(model="ZZN"),
            stl_kwargs={"seasonal_jump": 2, "trend_jump": 30, "low_pass_jump": 29},
        ).forecast(y=train, h=h, level=[level])
    elif model in ("sf_autoets_hourly", "sf_autoarima_hourly"):
        from statsforecast.models import AutoARIMA, AutoETS

        k = len(train) // 12
        hourly = np.asarray(train[len(train) - 12 * k :]).reshape(k, 12).mean(axis=1)
        hh = math.ceil(h / 12)
        m = (
            AutoETS(season_length=24)
            if model == "sf_autoets_hourly"
            # approximation: R's auto.arima default for series over 150 points or seasons over 12
            # (statsforecast defaults to exact likelihoods: 6–85 s per fit here instead of < 1 s)
            else AutoARIMA(season_length=24, approximation=True)
        )
        r = m.forecast(y=hourly, h=hh, level=[level])
        r = {key: np.repeat(np.asarray(v), 12)[:h] for key, v in r.items()}
    elif model == "prophet":
        import pandas as pd
        from prophet import Prophet

        n = len(train)
        ds = pd.to_datetime(start + step * np.arange(n), unit="s")
        df = pd.DataFrame({"ds": ds, "y": train})
        np.random.seed(0)
        m = Prophet(
            daily_seasonality=True,
            weekly_seasonality=True,
            yearly_seasonality=False,
            interval_width=level / 100,
        )
        m.fit(df)
        fut = pd.DataFrame({"ds": pd.to_datetime(start + step * np.arange(n, n + h), unit="s")})
        f = m.predict(fut)
        r = {
            "mean": f["yhat"].to_numpy(),
            f"lo-{level}": f["yhat_lower"].to_numpy(),
            f"hi-{level}": f["yhat_upper"].to_numpy(),
        }
    else:
        raise ValueError(model)
    point = np.asarray(r["mean"], dtype=float)
    lo = np.asarray(r[f"lo-{level}"], dtype=float)
    hi = np.asarray(r[f"hi-{level}"], dtype=float)
    if len(point) != h or not (np.isfinite(point).all() and np.isfinite(lo).all() and np.isfinite(hi).all()):
        raise ValueError("non-finite or short forecast")
    return point, lo, hi


_WARM = False


def warm_up():
    """JIT/compile caches and imports before anything is timed (once per process)."""
    global _WARM
    if _WARM:
        return
    _WARM = True
    import numpy as np

    rng = np.random.default_rng(0)
    i = np.arange(2 * 2016 + 288)
    y = 100 + 30 * np.sin(2 * np.pi * i / 288) + rng.normal(0, 3, len(i))
    for m in PY_MODELS:
        fit_predict(m, y, 1_704_067_200, 300, 288)


def run_series(args):
    """All Python models on one series: rows (per model, horizon) and per-call times."""
    s, meta = args
    _setup_worker()
    warm_up()
    import numpy as np

    values = np.asarray(s["values"], dtype=float)
    observed = np.ones(len(values), dtype=bool)
    observed[s["missing"]] = False
    horizons = meta["horizons"]
    hmax = max(horizons)
    target = meta["target_utilization"]
    cap = s["capacity_per_pod"]
    sums = {(m, h): Sums() for m in PY_MODELS for h in horizons}
    calls = []
    scale_mismatch = 0.0
    for oi, o in enumerate(s["origins"]):
        lo_i = s["train_starts"][oi]
        train = values[lo_i:o].copy()
        lag = s["mase_lag"][oi]
        scale = float(np.mean(np.abs(train[lag:] - train[:-lag]))) if len(train) > lag else 0.0
        rust_scale = s["mase_scale"][oi]
        if rust_scale > 0:
            scale_mismatch = max(scale_mismatch, abs(scale - rust_scale) / rust_scale)
        for m in PY_MODELS:
            t0 = time.perf_counter()
            try:
                point, lo, hi = fit_predict(m, train, s["start"] + lo_i * s["step"], s["step"], hmax)
                ok = True
            except Exception as e:  # noqa: BLE001 — a model failing is a result
                ok = False
                err = f"origin {o}: {type(e).__name__}: {e}"[:200]
            ms = (time.perf_counter() - t0) * 1e3
            for h in horizons:
                e_ = sums[(m, h)]
                if ok:
                    e_.ms.append(ms)
                    e_.score(point[:h], lo[:h], hi[:h], values, observed, o, scale, cap, target)
                else:
                    e_.failures.append(err)
            calls.append({"series": s["name"], "model": m, "origin": o, "train_steps": o - lo_i, "ms": ms, "ok": ok})
    rows = [sums[(m, h)].row(s["name"], m, h) for m in PY_MODELS for h in horizons]
    return s["name"], rows, calls, scale_mismatch


# --------------------------------------------------------------------------- report


def fmt(x, d=3):
    if x is None or (isinstance(x, float) and (math.isnan(x) or math.isinf(x))):
        return "—"
    return f"{x:.{d}f}"


def build_report(doc, py_rows, py_calls, timings) -> str:
    meta = doc["meta"]
    series = [s["name"] for s in doc["series"]]
    full14 = {
        s["name"]
        for s in doc["series"]
        if all(o - ts == meta["train_max_steps"] for o, ts in zip(s["origins"], s["train_starts"]))
    }
    rows = doc["results"] + py_rows
    models = SERVER_MODELS + PY_MODELS
    by = {(r["series"], r["model"], r["horizon"]): r for r in rows}
    hpa = {(r["series"], r["horizon"]): r for r in doc["hpa"]}
    horizons = meta["horizons"]
    hname = {12: "1 h (12 steps)", 288: "24 h (288 steps)"}
    out = []
    w = out.append
    w("# Forecasting benchmark: this server vs statsforecast and prophet\n")
    w(
        f"{len(series)} series ({sum(1 for s in doc['series'] if s['source'] == 'nab')} NAB, "
        f"{sum(1 for s in doc['series'] if s['source'] == 'synthetic')} synthetic), 5-minute steps; "
        f"{meta['origins_per_series']} origins per series every {meta['origin_every_steps'] * 5 // 60} h "
        f"over the last {meta['eval_steps'] * 5 // 1440} days; each model refitted at every origin on the "
        f"last ≤ {meta['train_max_steps'] * 5 // 1440} days; {int(meta['level'] * 100)}% intervals; "
        f"replicas: capacity per pod = median / ({meta['target_utilization']} × {int(meta['pods_at_median'])}), "
        f"target utilisation {meta['target_utilization']}, floor 1.\n"
    )
    w(
        "Columns: MASE (per origin MAE / in-sample mean |y_t − y_{t−m}|, m = 288 when the server's detector "
        "finds a daily cycle in the training window, else 1; mean over origins), then mean / median over series; "
        "sMAPE, coverage of the 90% interval, over/under = share of steps the point forecast is above/below the "
        "actual value (means over series); under-prov. = share of 5-minute steps where replicas sized from the "
        "upper bound are fewer than the actual value needs (mean over series); extra replica-h/day = "
        "replica-hours above need per day (median over series: a few spiky series have intervals thousands of "
        "times the median); wins vs SN = series where MASE < seasonal naive (daily)'s; ms = fit + predict, median "
        "over the series with full-length training windows (Python: one fit + 288-step predict serves both "
        "horizons).\n"
    )
    for h in horizons:
        w(f"\n## Horizon {hname.get(h, h)}\n")
        w("| model | MASE mean | MASE median | wins vs SN | sMAPE % | coverage | over | under | under-prov. | extra replica-h/day | ms (full window) |")
        w("|---|---|---|---|---|---|---|---|---|---|---|")
        for m in models:
            rs = [by[(s, m, h)] for s in series if (s, m, h) in by]
            if not rs:
                continue
            wins = sum(
                1
                for s in series
                if (s, m, h) in by
                and by[(s, m, h)]["mase"] < (1 - 1e-9) * by[(s, "server_seasonal_naive_daily", h)]["mase"]
            )
            ms14 = median([by[(s, m, h)]["fit_predict_ms_median"] for s in full14 if (s, m, h) in by])
            fails = sum(len(r["failures"]) for r in rs)
            name = m + (f" ({fails} failed fits)" if fails else "")
            w(
                f"| {name} | {fmt(mean([r['mase'] for r in rs]))} | {fmt(median([r['mase'] for r in rs]))} | "
                f"{wins}/{len(rs)} | {fmt(mean([r['smape'] for r in rs]), 1)} | {fmt(mean([r['coverage'] for r in rs]))} | "
                f"{fmt(mean([r['over_rate'] for r in rs]))} | {fmt(mean([r['under_rate'] for r in rs]))} | "
                f"{fmt(mean([r['under_provisioned'] for r in rs]))} | "
                f"{fmt(median([r['extra_replica_hours_per_day'] for r in rs]), 1)} | {fmt(ms14, 1)} |"
            )
        hs = [hpa[(s, h)] for s in series if (s, h) in hpa]
        w(
            f"| reactive HPA (lags 1 step) | | | | | | | | {fmt(mean([r['under_provisioned'] for r in hs]))} | "
            f"{fmt(median([r['extra_replica_hours_per_day'] for r in hs]), 1)} | |"
        )
    w("\n## Replicas: sized from the upper bound (as the server does) vs from the point forecast\n")
    w(
        "Share of 5-minute steps under-provisioned (mean over series) / replica-hours above need per day "
        "(median over series). The reactive HPA has, at each step, what the previous step's actual value needed.\n"
    )
    w("| model | " + " | ".join(f"upper, {hname.get(h, h)} | point, {hname.get(h, h)}" for h in horizons) + " |")
    w("|---|" + "---|---|" * len(horizons))
    for m in models:
        cells = []
        for h in horizons:
            rs = [by[(s, m, h)] for s in series if (s, m, h) in by]
            cells.append(
                f"{fmt(100 * mean([r['under_provisioned'] for r in rs]), 1)}% / "
                f"{fmt(median([r['extra_replica_hours_per_day'] for r in rs]), 1)}"
            )
            cells.append(
                f"{fmt(100 * mean([r['under_provisioned_point'] for r in rs]), 1)}% / "
                f"{fmt(median([r['extra_replica_hours_per_day_point'] for r in rs]), 1)}"
            )
        w(f"| {m} | " + " | ".join(cells) + " |")
    cells = []
    for h in horizons:
        hs = [hpa[(s, h)] for s in series if (s, h) in hpa]
        c = (
            f"{fmt(100 * mean([r['under_provisioned'] for r in hs]), 1)}% / "
            f"{fmt(median([r['extra_replica_hours_per_day'] for r in hs]), 1)}"
        )
        cells += [c, c]
    w("| reactive HPA (lags 1 step) | " + " | ".join(cells) + " |")
    w("\n## Sizing level: safety against capacity (server default)\n")
    w(
        "`recommend_replicas` sizes from the forecast's upper bound at its `level` (default 0.8: the 90th "
        "percentile). The same forecasts sized from lower levels' upper bounds, and from the point forecast (the "
        "median for the log-scale models): share of 5-minute steps under-provisioned (mean over series) and "
        "replica-hours relative to the reactive HPA's (median over series of the ratio; 1.00 = as many).\n"
    )
    w("| sized from | " + " | ".join(f"under-prov., {hname.get(h, h)} | replica-h vs HPA, {hname.get(h, h)}" for h in horizons) + " |")
    w("|---|" + "---|---|" * len(horizons))

    def ratio(rows_by_series, h, key):
        return median(
            [
                r[key] / hpa[(s, h)]["replica_hours_per_day"]
                for s, r in rows_by_series.items()
                if (s, h) in hpa and hpa[(s, h)]["replica_hours_per_day"] > 0
            ]
        )

    for label, model, under_key, total_key in (
        ("point forecast", "server_default", "under_provisioned_point", "replica_hours_per_day_point"),
        ("upper bound, level 0.6 (80th pct.)", "server_default_sized_level_0.6", "under_provisioned", "replica_hours_per_day"),
        ("upper bound, level 0.8 (90th pct., recommend_replicas default)", "server_default_sized_level_0.8", "under_provisioned", "replica_hours_per_day"),
        ("upper bound, level 0.9 (95th pct., the forecast's default interval)", "server_default", "under_provisioned", "replica_hours_per_day"),
    ):
        cells = []
        for h in horizons:
            rs = {s: by[(s, model, h)] for s in series if (s, model, h) in by}
            if not rs or total_key not in next(iter(rs.values())):
                cells += ["—", "—"]
                continue
            cells.append(f"{fmt(100 * mean([r[under_key] for r in rs.values()]), 1)}%")
            cells.append(fmt(ratio(rs, h, total_key), 2))
        w(f"| {label} | " + " | ".join(cells) + " |")
    cells = []
    for h in horizons:
        hs = [hpa[(s, h)] for s in series if (s, h) in hpa]
        cells += [f"{fmt(100 * mean([r['under_provisioned'] for r in hs]), 1)}%", "1.00"]
    w("| reactive HPA (lags 1 step) | " + " | ".join(cells) + " |")
    for h in horizons:
        w(f"\n### MASE per series, horizon {hname.get(h, h)}\n")
        short = {m: m.replace("server_", "").replace("seasonal_naive", "snaive") for m in models}
        w("| series | default chose | " + " | ".join(short[m] for m in models) + " |")
        w("|---|---|" + "---|" * len(models))
        for s in series:
            ch = doc["default_choices"].get(s, {}).get(str(h), {})
            chose = ", ".join(f"{k} ×{v}" for k, v in sorted(ch.items(), key=lambda kv: -kv[1]))
            cells = []
            best = min((by[(s, m, h)]["mase"] for m in models if (s, m, h) in by and not math.isnan(by[(s, m, h)]["mase"])), default=None)
            for m in models:
                r = by.get((s, m, h))
                c = fmt(r["mase"]) if r else "—"
                if r and best is not None and r["mase"] == best:
                    c = f"**{c}**"
                cells.append(c)
            w(f"| {s} | {chose} | " + " | ".join(cells) + " |")
    for h in horizons:
        w(f"\n### Replicas per series, horizon {hname.get(h, h)}: under-provisioned share / extra replica-h per day\n")
        cols = ["server_default", "server_mstl_ets", "server_seasonal_naive_daily", "sf_mstl", "sf_autoarima_hourly", "prophet"]
        w("| series | reactive HPA | " + " | ".join(cols) + " |")
        w("|---|---|" + "---|" * len(cols))
        for s in series:
            hp = hpa.get((s, h))
            cells = [f"{fmt(hp['under_provisioned'], 2)} / {fmt(hp['extra_replica_hours_per_day'], 0)}" if hp else "—"]
            for m in cols:
                r = by.get((s, m, h))
                cells.append(f"{fmt(r['under_provisioned'], 2)} / {fmt(r['extra_replica_hours_per_day'], 0)}" if r else "—")
            w(f"| {s} | " + " | ".join(cells) + " |")

    # ---- aims
    w("\n## Aims check\n")
    for h in horizons:
        w(f"**Horizon {hname.get(h, h)}**\n")
        d = {s: by[(s, "server_default", h)]["mase"] for s in series if (s, "server_default", h) in by}
        sn = {s: by[(s, "server_seasonal_naive_daily", h)]["mase"] for s in series}
        beat = [s for s in d if d[s] < sn[s]]
        w(
            f"- Default beats seasonal naive (daily) on {len(beat)}/{len(d)} series "
            f"→ {'YES' if len(beat) > len(d) / 2 else 'NO'} (most series). Mean MASE default {fmt(mean(d.values()))} "
            f"vs seasonal naive {fmt(mean(sn.values()))}; median {fmt(median(d.values()))} vs {fmt(median(sn.values()))}."
        )
        py_mean = {m: mean([by[(s, m, h)]["mase"] for s in series if (s, m, h) in by]) for m in PY_MODELS}
        py_med = {m: median([by[(s, m, h)]["mase"] for s in series if (s, m, h) in by]) for m in PY_MODELS}
        best_m = min(py_mean, key=lambda m: py_mean[m])
        best_med = min(py_med, key=lambda m: py_med[m])
        per_series_best = {
            s: min(by[(s, m, h)]["mase"] for m in PY_MODELS if (s, m, h) in by and not math.isnan(by[(s, m, h)]["mase"]))
            for s in series
        }
        le = sum(1 for s in d if d[s] <= per_series_best[s])
        le5 = sum(1 for s in d if d[s] <= 1.05 * per_series_best[s])
        rel = 100 * (mean(d.values()) / py_mean[best_m] - 1)
        w(
            f"- Best Python model by mean MASE: {best_m} ({fmt(py_mean[best_m])}); default {fmt(mean(d.values()))} "
            f"({rel:+.1f}%) → {'matches or beats' if rel <= 5 else 'does NOT match'} it (match = within 5%). "
            f"By median MASE: best {best_med} ({fmt(py_med[best_med])}) vs default {fmt(median(d.values()))}. "
            f"Per series, the default is ≤ the best Python model on that series on {le}/{len(d)} series "
            f"({le5}/{len(d)} within 5%)."
        )
        hs = {s: hpa[(s, h)] for s in series if (s, h) in hpa}
        dr = {s: by[(s, "server_default", h)] for s in series if (s, "server_default", h) in by}
        fewer = sum(1 for s in dr if dr[s]["under_provisioned"] < hs[s]["under_provisioned"])
        both = sum(
            1
            for s in dr
            if dr[s]["under_provisioned"] < hs[s]["under_provisioned"]
            and dr[s]["extra_replica_hours_per_day"] <= hs[s]["extra_replica_hours_per_day"]
        )
        w(
            f"- Replicas from the default's upper bound vs reactive HPA: under-provisioned steps "
            f"{fmt(100 * mean([r['under_provisioned'] for r in dr.values()]), 1)}% vs "
            f"{fmt(100 * mean([r['under_provisioned'] for r in hs.values()]), 1)}% (mean over series; fewer on "
            f"{fewer}/{len(dr)} series); extra replica-hours per day (median over series) "
            f"{fmt(median([r['extra_replica_hours_per_day'] for r in dr.values()]), 1)} vs "
            f"{fmt(median([r['extra_replica_hours_per_day'] for r in hs.values()]), 1)}; fewer under-provisioned "
            f"AND no more replica-hours on {both}/{len(dr)} series → "
            f"{'YES' if both > len(dr) / 2 else 'NO'}. Sized from the point forecast instead: "
            f"{fmt(100 * mean([r['under_provisioned_point'] for r in dr.values()]), 1)}% under-provisioned, "
            f"{fmt(median([r['extra_replica_hours_per_day_point'] for r in dr.values()]), 1)} extra replica-h/day."
        )
        w("")
    # time for two weeks of 5-minute data
    calls14 = [c for c in doc.get("default_calls", []) if c["train_steps"] == meta["train_max_steps"]]
    w(f"**Fit + predict time on {meta['train_max_steps'] * 5 // 1440} days of 5-minute data ({meta['train_max_steps']} points)**, per call:\n")
    w("| model | calls | median ms | p90 ms | max ms |")
    w("|---|---|---|---|---|")

    def pct(v, p):
        v = sorted(v)
        return v[min(len(v) - 1, int(round((len(v) - 1) * p)))] if v else float("nan")

    for h in horizons:
        for label, pred in (
            ("all", lambda c: True),
            ("with MSTL among the candidates", lambda c: "mstl_ets" in [x["model"] for x in c["candidates"]]),
            ("no seasonality found (median, ETS)", lambda c: not any("seasonal" in x["model"] or "mstl" in x["model"] for x in c["candidates"])),
        ):
            v = [c["ms"] for c in calls14 if c["horizon"] == h and pred(c)]
            if v:
                w(f"| server_default, h={h}, {label} | {len(v)} | {fmt(median(v), 1)} | {fmt(pct(v, 0.9), 1)} | {fmt(max(v), 1)} |")
    for m in ["server_mstl_ets"]:
        v = [by[(s, m, 288)]["fit_predict_ms_median"] for s in full14 if (s, m, 288) in by]
        if v:
            w(f"| {m} (h=288; medians per series) | {len(v)} series | {fmt(median(v), 1)} | {fmt(pct(v, 0.9), 1)} | {fmt(max(v), 1)} |")
    for m in PY_MODELS:
        v = [c["ms"] for c in py_calls if c["model"] == m and c["train_steps"] == meta["train_max_steps"] and c["ok"]]
        if v:
            w(f"| {m} (h=288) | {len(v)} | {fmt(median(v), 1)} | {fmt(pct(v, 0.9), 1)} | {fmt(max(v), 1)} |")
    w("\n## Notes and simplifications\n")
    w(
        "- Same data for both sides: the Rust bench regularises each series once with the server's "
        "`history::regularize` (gaps interpolated) and writes the values to its JSON; Python fits on those values. "
        "Steps missing from the raw data are not scored. Synthetic series are generated by the Rust bench "
        "(deterministic) and written as NAB-style CSVs next to the JSON (forecast-bench-data/).\n"
        "- server_<model> rows use fixed periods (daily 288, weekly 2016 — MSTL uses a period only with two full "
        "cycles in the training window, like sf_mstl); server_default detects seasonality itself and chooses by its "
        "3-fold rolling backtest; it is timed whole (detection + backtest + final fit).\n"
        "- AutoARIMA and AutoETS run on hourly means (season 24), each hourly forecast repeated over its 12 "
        "five-minute steps: on 5-minute data with season 288 AutoARIMA is impractically slow and AutoETS took "
        "> 100 s per fit. AutoARIMA uses approximation=True (R auto.arima's default for long series); with "
        "statsforecast's default exact likelihoods one fit took 6–85 s here.\n"
        "- sf_mstl runs statsmodels' STL with speed-up jumps (seasonal 2, trend 30, low-pass 29 — R stl()'s "
        "defaults for the daily period); without them a fit with the weekly period took ~8 s.\n"
        "- Python models are fitted once per origin for 288 steps; the 1 h metrics use the first 12 steps (the "
        "same numbers a 12-step call gives for these models), so their time is that of the 288-step call. The "
        "Python side runs in worker processes side by side (one thread each) on the 2 cores.\n"
    )
    w("\n## Runtimes\n")
    for k, v in timings.items():
        w(f"- {k}: {v}")
    w("")
    return "\n".join(out)


def python_models_source() -> str:
    """The text of this script's Python-models section (what the reusable results depend on)."""
    text = Path(__file__).read_text()
    start = text.index("# " + "-" * 75 + " python models")
    end = text.index("\n# " + "-" * 75, start + 1)
    return text[start:end]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rust-json", help="reuse this Rust bench JSON instead of running cargo bench")
    ap.add_argument("--out", help="markdown output (default: forecast-compare.md next to the JSON)")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--venv", default=os.environ.get("EKS_OPS_MCP_FORECAST_VENV"))
    ap.add_argument("--only", help="comma-separated series names (a quick partial run)")
    ap.add_argument(
        "--prophet",
        action="store_true",
        help="build the Rust bench with the server's optional Prophet model (cargo feature prophet)",
    )
    ap.add_argument(
        "--reuse-python",
        action="store_true",
        help="reuse the Python results of the last run when the data, windows and this script are unchanged "
        "(the Rust side alone is re-run: for iterating on the server's models)",
    )
    args = ap.parse_args()
    if os.environ.get(IN_VENV) != "1":
        venv = Path(args.venv) if args.venv else Path.home() / ".cache" / "eks-ops-mcp" / "forecast-venv"
        ensure_venv(venv)
        return
    # one thread per worker: the workers run side by side on the 2 cores
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[k] = "1"
    timings = {}
    t_all = time.perf_counter()
    if args.rust_json:
        json_path = Path(args.rust_json)
    else:
        target = default_target_dir()
        json_path = target / "forecast-bench.json"
        env = dict(os.environ)
        env["CARGO_TARGET_DIR"] = str(target)
        cmd = ["cargo", "bench", *(["--features", "prophet"] if args.prophet else []), "--bench", "forecast", "--", str(json_path)]
        print("running:", " ".join(cmd), f"(CARGO_TARGET_DIR={target})", file=sys.stderr)
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=sys.stderr)
        timings["cargo bench --bench forecast (build + run)"] = f"{time.perf_counter() - t0:.1f} s"
    doc = json.loads(json_path.read_text())
    timings["Rust protocol (all series, all server models, both horizons)"] = f"{doc['meta']['total_seconds']:.1f} s"
    meta = doc["meta"]
    if args.only:
        keep = set(args.only.split(","))
        doc["series"] = [s for s in doc["series"] if s["name"] in keep]
        doc["results"] = [r for r in doc["results"] if r["series"] in keep]
        doc["hpa"] = [r for r in doc["hpa"] if r["series"] in keep]
    todo = sorted(doc["series"], key=lambda s: -len(s["values"]))
    py_rows, py_calls = [], []
    t0 = time.perf_counter()
    worst_scale = 0.0
    fingerprint = hashlib.sha256(
        json.dumps(
            [
                [s["name"], s["values"], s["origins"], s["train_starts"], s["mase_scale"], s["capacity_per_pod"]]
                for s in todo
            ]
        ).encode()
        + python_models_source().encode()
    ).hexdigest()
    out = Path(args.out) if args.out else json_path.with_name("forecast-compare.md")
    py_json = out.with_name(out.stem + "-python.json")
    reused = None
    if args.reuse_python and py_json.exists():
        old = json.loads(py_json.read_text())
        if old.get("fingerprint") == fingerprint:
            reused = old
        else:
            print("the Python results are for other data or another script: running them again", file=sys.stderr)
    if reused is not None:
        py_rows, py_calls = reused["results"], reused["calls"]
        worst_scale = reused.get("worst_scale", 0.0)
        timings.update({f"(reused) {k}": v for k, v in reused.get("timings", {}).items()})
    elif args.jobs > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=args.jobs) as ex:
            results = ex.map(run_series, [(s, meta) for s in todo])
            for name, rows, calls, mismatch in results:
                print(f"python models: {name} done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
                py_rows += rows
                py_calls += calls
                worst_scale = max(worst_scale, mismatch)
    else:
        for s in todo:
            name, rows, calls, mismatch = run_series((s, meta))
            print(f"python models: {name} done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
            py_rows += rows
            py_calls += calls
            worst_scale = max(worst_scale, mismatch)
    if reused is None:
        timings[f"Python models ({args.jobs} worker process(es), incl. warm-up)"] = f"{time.perf_counter() - t0:.1f} s"
    if worst_scale > 1e-9:
        print(f"warning: MASE scales differ from Rust's by up to {worst_scale:.2e} (relative)", file=sys.stderr)
    timings["largest relative difference of the MASE scale, Python vs Rust"] = f"{worst_scale:.1e}"
    timings["whole script"] = f"{time.perf_counter() - t_all:.1f} s"
    from importlib.metadata import version

    timings["versions"] = (
        f"Python {sys.version.split()[0]}, statsforecast {version('statsforecast')}, "
        f"prophet {version('prophet')}, statsmodels {version('statsmodels')}, numpy {version('numpy')}"
    )
    report = build_report(doc, py_rows, py_calls, timings)
    out.write_text(report)
    if reused is None:
        py_timings = {k: v for k, v in timings.items() if k.startswith("Python") or k.startswith("largest")}
        py_json.write_text(
            json.dumps(
                {
                    "fingerprint": fingerprint,
                    "worst_scale": worst_scale,
                    "timings": py_timings,
                    "results": py_rows,
                    "calls": py_calls,
                }
            )
        )
    print(report)
    print(f"\nwritten: {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
