//! `GET /metrics`.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;

use crate::state::AppState;
use crate::telemetry::metrics::handle;

/// `GET /metrics`: Prometheus text.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format", content_type = "text/plain", body = String)))]
pub async fn render(State(state): State<AppState>) -> impl IntoResponse {
    let pool = state.store.pool_stats();
    metrics::gauge!("db_pool_connections", "state" => "open").set(f64::from(pool.open));
    metrics::gauge!("db_pool_connections", "state" => "idle").set(pool.idle as f64);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        handle().render(),
    )
}
