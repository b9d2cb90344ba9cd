//! The HTTP layer: routes, extractors and the error type.

mod auth;
mod categories;
pub mod client;
pub mod conn;
pub mod error;
mod expenses;
pub mod extract;
mod health;
mod idempotency;
pub mod import_slots;
pub mod imports;
mod metrics;
pub mod openapi;
mod upload;

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::MatchedPath;
use axum::http::{HeaderName, Request, Response};
use axum::response::IntoResponse;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tracing::Span;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;
use error::ApiError;

/// Largest accepted request body.
pub const BODY_LIMIT: usize = 1024 * 1024;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The routes and the OpenAPI document describing them, built together so they cannot drift.
pub fn routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut doc) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(auth::register))
        .routes(routes!(auth::login))
        .routes(routes!(auth::me))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::change_password))
        .routes(routes!(expenses::list, expenses::create))
        .routes(routes!(expenses::summary))
        .routes(routes!(expenses::trend))
        .routes(routes!(expenses::export))
        .routes(routes!(
            expenses::get_one,
            expenses::update,
            expenses::delete
        ))
        .routes(routes!(categories::list))
        .routes(routes!(categories::rename))
        .routes(routes!(imports::mock))
        .routes(routes!(imports::job))
        .merge(
            OpenApiRouter::new()
                .routes(routes!(imports::csv))
                .routes(routes!(imports::ofx))
                .layer(DefaultBodyLimit::max(imports::FILE_BODY_LIMIT)),
        )
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(metrics::render))
        .routes(routes!(openapi::serve))
        .split_for_parts();
    utoipa::Modify::modify(&openapi::Contract, &mut doc);
    openapi::publish(&doc);
    (router, doc)
}

/// Cancels a request that runs past the deadline; dropping it rolls back any
/// open transaction, so nothing half-done is kept.
async fn deadline(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    match tokio::time::timeout(state.limits.request_timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!("request cancelled at its deadline");
            ApiError::Unavailable.into_response()
        }
    }
}

fn route_of<B>(req: &Request<B>) -> &str {
    req.extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
}

/// Every route of the API, with its middleware.
pub fn router(state: AppState) -> Router {
    let (routes, _) = routes();
    routes
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            deadline,
        ))
        .with_state(state)
        .layer(axum::middleware::from_fn(crate::telemetry::metrics::track))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(|req: &Request<_>| {
                            let id = req
                                .headers()
                                .get(REQUEST_ID)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("");
                            tracing::info_span!(
                                "request",
                                method = %req.method(),
                                route = %route_of(req),
                                request_id = %id,
                                status = tracing::field::Empty,
                                latency_ms = tracing::field::Empty,
                            )
                        })
                        .on_request(())
                        .on_response(|res: &Response<_>, latency: Duration, span: &Span| {
                            span.record("status", res.status().as_u16());
                            span.record("latency_ms", latency.as_secs_f64() * 1000.0);
                            tracing::info!("request done");
                        }),
                )
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(CatchPanicLayer::custom(|_| {
                    ApiError::Internal(anyhow::anyhow!("handler panicked")).into_response()
                })),
        )
}
