//! OpenTelemetry spans over OTLP/gRPC (`--tracing-endpoint`,
//! `--tracing-sampling-rate-per-million`, upstream's flags): a pod's or node's stage
//! transitions and the writes that carry them out.
//!
//! # Implementation
//! Spans are `tracing` spans of target [`TARGET`], which only the OpenTelemetry layer
//! takes: the log output never shows them, and without an endpoint no layer wants them,
//! so each `info_span!(target: TARGET, …)` is one cached check of its callsite and
//! nothing is built, recorded or exported.

use anyhow::{Context as _, Result};
use opentelemetry::{KeyValue, trace::TracerProvider as _};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::{
    Resource,
    trace::{Sampler, SdkTracerProvider},
};
use tracing_subscriber::{Layer, filter::Targets};

/// The target of the spans that are exported (and never logged).
pub const TARGET: &str = "kwok_otel";

/// The service name spans carry (upstream kwok's).
pub const SERVICE_NAME: &str = "kwok-controller";

/// Where spans go and how many traces are kept.
#[derive(Debug, Clone)]
pub struct Config {
    /// `host:port` (or a URL) of an OTLP/gRPC collector; empty turns tracing off.
    pub endpoint: String,
    /// Traces kept per million (parent-based: a trace that arrives sampled stays so).
    pub sampling_rate_per_million: u32,
    /// `service.instance.id` (the lease holder identity).
    pub instance: String,
}

/// Flushes the spans still queued when dropped (at exit).
pub struct Guard(SdkTracerProvider);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Err(err) = self.0.shutdown() {
            tracing::warn!(%err, "failed to flush trace spans");
        }
    }
}

/// A layer exporting [`TARGET`] spans to `config.endpoint`, and its guard; `None`
/// when the endpoint is empty.
///
/// Call it inside the Tokio runtime: the gRPC channel's worker is spawned there (the
/// SDK's export thread only hands it batches).
///
/// # Errors
/// The endpoint is not a valid URI.
pub fn layer<S>(config: &Config) -> Result<Option<(impl Layer<S> + use<S>, Guard)>>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    if config.endpoint.is_empty() {
        return Ok(None);
    }
    let endpoint = if config.endpoint.contains("://") {
        config.endpoint.clone()
    } else {
        format!("http://{}", config.endpoint)
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(&endpoint)
        .build()
        .with_context(|| format!("invalid --tracing-endpoint {:?}", config.endpoint))?;
    let ratio = f64::from(config.sampling_rate_per_million) / 1_000_000.0;
    let resource = Resource::builder()
        .with_service_name(SERVICE_NAME)
        .with_attribute(KeyValue::new("service.instance.id", config.instance.clone()))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio))))
        .with_resource(resource)
        .build();
    let tracer = provider.tracer(SERVICE_NAME);
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(Targets::new().with_target(TARGET, tracing::Level::TRACE));
    Ok(Some((layer, Guard(provider))))
}

/// Adds the current span's W3C `traceparent` to `request`, so the apiserver's spans of a
/// write join kwok's trace (client-go's tracing transport does the same). Installed on
/// the client only with `--tracing-endpoint`.
pub fn inject<B>(mut request: http::Request<B>) -> http::Request<B> {
    use opentelemetry::propagation::TextMapPropagator as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;

    let context = tracing::Span::current().context();
    let mut headers = Headers(request.headers_mut());
    opentelemetry_sdk::propagation::TraceContextPropagator::new().inject_context(&context, &mut headers);
    request
}

/// Request headers as an OpenTelemetry carrier.
struct Headers<'a>(&'a mut http::HeaderMap);

impl opentelemetry::propagation::Injector for Headers<'_> {
    fn set(&mut self, key: &str, value: String) {
        let name = http::HeaderName::from_bytes(key.as_bytes());
        if let (Ok(name), Ok(value)) = (name, http::HeaderValue::from_str(&value)) {
            self.0.insert(name, value);
        }
    }
}

/// The log filter with [`TARGET`] turned off, so spans meant for export never print.
pub fn without_spans(filter: tracing_subscriber::EnvFilter) -> tracing_subscriber::EnvFilter {
    filter.add_directive(format!("{TARGET}=off").parse().expect("a valid directive"))
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::{Layer as _, layer::SubscriberExt as _};

    use super::*;

    fn config(endpoint: &str) -> Config {
        Config {
            endpoint: endpoint.into(),
            sampling_rate_per_million: 1_000_000,
            instance: "test".into(),
        }
    }

    #[test]
    fn no_endpoint_should_mean_no_exporter_and_disabled_spans() {
        let layer = layer::<tracing_subscriber::Registry>(&config("")).unwrap();
        assert!(layer.is_none());
        // The log layer as main.rs sets it up, at the most verbose level.
        let logs = tracing_subscriber::fmt::layer()
            .with_filter(without_spans(tracing_subscriber::EnvFilter::new("trace")));
        let subscriber = tracing_subscriber::registry().with(logs);
        tracing::subscriber::with_default(subscriber, || {
            assert!(!tracing::span_enabled!(target: TARGET, tracing::Level::INFO));
            assert!(tracing::info_span!(target: TARGET, "stage").is_disabled());
            assert!(
                tracing::span_enabled!(tracing::Level::INFO),
                "other spans still log"
            );
        });
    }

    #[tokio::test]
    async fn an_endpoint_should_make_an_exporter_without_connecting() {
        // Nothing listens there: the channel connects lazily, so this still succeeds.
        let made = layer::<tracing_subscriber::Registry>(&config("127.0.0.1:1")).unwrap();
        assert!(made.is_some());
    }
}
