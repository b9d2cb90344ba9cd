//! Logs (stderr, `RUST_LOG`, `LOG_FORMAT=json`), metrics, and with the `otel`
//! feature, traces exported over OTLP.

pub mod metrics;
#[cfg(feature = "otel")]
mod otel;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Keeps exporters alive; dropping it flushes what is buffered.
pub struct Guard {
    #[cfg(feature = "otel")]
    _otel: Option<otel::Guard>,
}

/// Installs the global subscriber: `RUST_LOG` filters (default `info`);
/// `LOG_FORMAT=json` writes one JSON object a line for log shippers.
pub fn init() -> Guard {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if json {
        fmt.json()
            .with_current_span(true)
            .with_span_list(false)
            .boxed()
    } else {
        fmt.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .boxed()
    };
    // The filter is the log's own: trace export keeps request spans at any RUST_LOG.
    let registry = tracing_subscriber::registry().with(fmt.with_filter(filter));
    #[cfg(feature = "otel")]
    {
        let (layer, guard) = otel::layer();
        let spans = tracing_subscriber::filter::LevelFilter::INFO;
        registry.with(layer.with_filter(spans)).init();
        if guard.is_some() {
            tracing::info!("exporting traces over OTLP");
        }
        Guard { _otel: guard }
    }
    #[cfg(not(feature = "otel"))]
    {
        registry.init();
        Guard {}
    }
}
