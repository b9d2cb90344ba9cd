//! `/healthz` and `/readyz`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use finance_shared::{Health, Readiness};

use crate::state::AppState;

/// `GET /healthz`: the process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process is up", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".to_owned(),
    })
}

/// `GET /readyz`: 503 only when the database does not answer.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "The database answers (the cache may be down: degraded, still ready)", body = Readiness),
        (status = 503, description = "The database does not answer", body = Readiness),
    ))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let database_up = state.store.ping().await.is_ok();
    let backend = state.summaries.backend();
    let cache = match backend.kind() {
        "memory" => "memory",
        "off" => "off",
        _ if backend.is_up().await => "up",
        _ => "down",
    };
    let status = if database_up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Readiness {
            status: if database_up { "ready" } else { "unavailable" }.to_owned(),
            database: if database_up { "up" } else { "down" }.to_owned(),
            cache: cache.to_owned(),
        }),
    )
}
