//! Traces over OTLP/HTTP, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
//!
//! Spans are exported in batches from a thread of their own: an unreachable
//! collector costs failed exports (logged by the exporter), never a request.

use opentelemetry::trace::TracerProvider;
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

/// Flushes and stops the exporter when dropped.
pub struct Guard(SdkTracerProvider);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.shutdown();
    }
}

/// The OpenTelemetry layer, if an endpoint is configured.
pub fn layer<S>() -> (Option<impl Layer<S>>, Option<Guard>)
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    let Ok(endpoint) = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT") else {
        return (None, None);
    };
    let traces = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let exporter = match SpanExporter::builder()
        .with_http()
        .with_endpoint(traces)
        .build()
    {
        Ok(exporter) => exporter,
        Err(e) => {
            eprintln!("finance-server: OTLP export disabled: {e}");
            return (None, None);
        }
    };
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name("finance-server")
                .build(),
        )
        .build();
    let tracer = provider.tracer("finance-server");
    (
        Some(tracing_opentelemetry::layer().with_tracer(tracer)),
        Some(Guard(provider)),
    )
}
