//! Prometheus metrics: the recorder and what is recorded (`GET /metrics`
//! is `http::metrics`).
//!
//! Labels are bounded whatever clients send: the route is the matched
//! template (`/api/expenses/{id}`), or `unmatched`; methods outside the
//! standard set are `other`.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

const LATENCY_BUCKETS: &[f64] = &[
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0,
];

/// How often recorded latencies are folded into the histograms' buckets.
const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// The process-wide recorder (installed on first use; every server in the process shares it).
///
/// The recorder keeps each latency it is given until upkeep folds it into
/// the buckets: without a thread doing that, a server nobody scrapes grows
/// by 8 bytes a request for as long as it runs.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), LATENCY_BUCKETS)
            .map(PrometheusBuilder::build_recorder)
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let handle = recorder.handle();
        let upkeep = handle.clone();
        let _ = std::thread::Builder::new()
            .name("metrics-upkeep".to_owned())
            .spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_INTERVAL);
                    upkeep.run_upkeep();
                }
            });
        // Fails only if another recorder was installed first; ours still renders.
        let _ = metrics::set_global_recorder(recorder);
        describe();
        handle
    })
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "http_requests_total",
        "HTTP requests by method, route template and status"
    );
    describe_histogram!(
        "http_request_duration_seconds",
        "HTTP request latency by method, route template and status"
    );
    describe_counter!(
        "cache_requests_total",
        "Summary cache lookups by result (hit or miss)"
    );
    describe_counter!("cache_errors_total", "Cache backend failures");
    describe_gauge!(
        "db_pool_connections",
        "Database connections by state (open or idle)"
    );
    describe_counter!("imports_total", "Imports run, by source");
    describe_counter!(
        "imported_transactions_total",
        "Transactions imported (not skipped), by source"
    );
    describe_gauge!(
        "password_hashes_in_flight",
        "Argon2 hashes and verifications running or waiting"
    );
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Middleware: counts every request and records its latency.
pub async fn track(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = method_label(req.method());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(req).await;
    let labels = [
        ("method", method.to_owned()),
        ("route", route),
        ("status", response.status().as_u16().to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels)
        .record(start.elapsed().as_secs_f64());
    response
}
