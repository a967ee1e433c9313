//! Memory for a 100,000-point range query bounded by max_points: a loopback HTTP server
//! answers a Prometheus matrix of 10 series × 10,000 points; the real client parses it and
//! the tool's shaping downsamples it to 300 points a series. A counting allocator reports
//! the peak heap in use.
//!
//! Run: `cargo bench --bench metrics_memory`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use eks_ops_mcp::metrics::Window;
use eks_ops_mcp::metrics::prometheus::PrometheusClient;
use eks_ops_mcp::tools::query_metrics::shape_series;

struct Counting;
static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator and only counts bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const SERIES: usize = 10;
const POINTS: usize = 10_000;

fn main() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let start = 1_700_000_000i64;
    let body = {
        let result: Vec<serde_json::Value> = (0..SERIES)
            .map(|s| {
                let values: Vec<serde_json::Value> = (0..POINTS)
                    .map(|i| serde_json::json!([start + i as i64 * 60, format!("{}", 100.0 + (i as f64 / 50.0).sin() * 20.0 + s as f64)]))
                    .collect();
                serde_json::json!({"metric": {"__name__": "rps", "pod": format!("pod-{s}")}, "values": values})
            })
            .collect();
        serde_json::json!({"status": "success", "data": {"resultType": "matrix", "result": result}})
            .to_string()
    };
    let body_len = body.len();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = axum::Router::new().route(
            "/api/v1/query_range",
            axum::routing::post(move || {
                let body = body.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        body,
                    )
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        let client =
            PrometheusClient::new(&format!("http://{addr}"), None, Duration::from_secs(30))
                .expect("client");
        let w = Window {
            start: jiff::Timestamp::from_second(start).expect("ts"),
            end: jiff::Timestamp::from_second(start + (POINTS as i64 - 1) * 60).expect("ts"),
            step: Duration::from_secs(60),
        };
        // warm up connections and lazies, then measure
        let _ = client.range("rps", &w).await.expect("query");
        let base = CURRENT.load(Ordering::Relaxed);
        PEAK.store(base, Ordering::Relaxed);
        let t = Instant::now();
        let series = client.range("rps", &w).await.expect("query");
        let points: usize = series.iter().map(|s| s.points.len()).sum();
        let after_parse = CURRENT.load(Ordering::Relaxed) - base;
        let (out, total, _) = shape_series(series, 300, 20);
        let elapsed = t.elapsed();
        let kept: usize = out.iter().map(|s| s.points.len()).sum();
        let answer = serde_json::to_vec(&out.iter().map(|s| &s.points).collect::<Vec<_>>())
            .expect("json")
            .len();
        drop(out);
        println!("| measurement | value |\n|---|---|");
        println!("| response body | {:.1} MiB |", body_len as f64 / 1048576.0);
        println!(
            "| series × points parsed | {total} × {} = {points} |",
            points / total.max(1)
        );
        println!(
            "| heap held by the parsed series | {:.1} MiB |",
            after_parse as f64 / 1048576.0
        );
        println!(
            "| peak heap during query + shaping (above baseline) | {:.1} MiB |",
            (PEAK.load(Ordering::Relaxed) - base) as f64 / 1048576.0
        );
        println!(
            "| points returned (max_points 300) | {kept} (≈{:.0} KiB of JSON) |",
            answer as f64 / 1024.0
        );
        println!(
            "| time: query over loopback + parse + shape | {:.0} ms |",
            elapsed.as_secs_f64() * 1000.0
        );
    });
}
