//! Logs, and OpenTelemetry traces when asked for (`--otel-traces-endpoint`):
//! one trace per tool call, from the proposer's `tools/call` span through
//! the executor's handling of each IPC request (the caller's `traceparent`
//! travels in the request envelope) to the database work on both sides.
//! Shared by `airlock-proposer` and `airlock-executor`.
//!
//! Only Airlock's own trace spans are exported (target [`TARGET`]): no log
//! event, no dependency's span (a driver's debug span may hold SQL), and no
//! tenant, principal, argument or value is a span attribute.

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::sync::{Arc, OnceLock};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{BatchSpanProcessor, SpanData, SpanProcessor};
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The `tracing` target of every span that is exported.
pub const TARGET: &str = "airlock::trace";

type Logs = Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync>;

/// Where the exporting processor goes once traces start
/// ([`Telemetry::start_traces`]): the proposer starts them only after its
/// file sandbox is on, because the exporter runs a thread of its own and
/// Landlock must be put on while the process has one thread. Until then
/// spans end here unexported.
#[derive(Debug, Clone, Default)]
struct ProcessorSlot(Arc<OnceLock<BatchSpanProcessor>>);

impl SpanProcessor for ProcessorSlot {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &opentelemetry::Context) {
        if let Some(p) = self.0.get() {
            p.on_start(span, cx);
        }
    }
    fn on_end(&self, span: SpanData) {
        if let Some(p) = self.0.get() {
            p.on_end(span);
        }
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.0.get().map_or(Ok(()), SpanProcessor::force_flush)
    }
    fn shutdown_with_timeout(&self, timeout: std::time::Duration) -> OTelSdkResult {
        self.0
            .get()
            .map_or(Ok(()), |p| p.shutdown_with_timeout(timeout))
    }
}

/// The installed logging, and the trace exporter once started; dropping it
/// flushes the spans not yet sent.
#[derive(Default)]
pub struct Telemetry {
    slot: Option<ProcessorSlot>,
    endpoint: Option<String>,
    resource: Option<opentelemetry_sdk::Resource>,
    provider: Option<SdkTracerProvider>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("traces", &self.slot.is_some())
            .finish()
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            let _ = p.shutdown();
        }
    }
}

/// How logs and traces are set up.
#[derive(Debug, Clone)]
pub struct TelemetryOptions<'a> {
    /// `service.name` of the exported spans.
    pub service: &'static str,
    /// `json` or `text`.
    pub log_format: &'a str,
    /// `AIRLOCK_LOG`'s default.
    pub default_filter: &'a str,
    pub ansi: bool,
    /// An OTLP/HTTP collector's traces URL (`…/v1/traces`); none: no traces.
    pub otel_traces_endpoint: Option<&'a str>,
}

/// Install the global subscriber: the log layer (filtered by `AIRLOCK_LOG`)
/// and, with an endpoint, the trace layer (its exporter started by
/// [`Telemetry::start_traces`]). Errors name what to fix.
pub fn init(options: &TelemetryOptions) -> Result<Telemetry, String> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AIRLOCK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(options.default_filter));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(options.ansi);
    let logs: Logs = if options.log_format == "json" {
        fmt.json().with_filter(filter).boxed()
    } else {
        fmt.with_filter(filter).boxed()
    };
    let Some(endpoint) = options.otel_traces_endpoint else {
        let _ = tracing_subscriber::registry().with(logs).try_init();
        return Ok(Telemetry::default());
    };
    let lower = endpoint.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return Err(format!(
            "--otel-traces-endpoint must be an http(s) URL of an OTLP/HTTP collector, e.g. http://127.0.0.1:4318/v1/traces (got `{}`)",
            endpoint.chars().take(80).collect::<String>()
        ));
    }
    let slot = ProcessorSlot::default();
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(options.service)
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(slot.clone())
        .with_resource(resource.clone())
        .build();
    let traces = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("airlock"))
        .with_filter(
            tracing_subscriber::filter::Targets::new().with_target(TARGET, tracing::Level::TRACE),
        );
    let _ = tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init();
    Ok(Telemetry {
        slot: Some(slot),
        endpoint: Some(endpoint.to_owned()),
        resource: Some(resource),
        provider: Some(provider),
    })
}

impl Telemetry {
    /// Whether the sandbox must let the exporter read the certificate
    /// authorities: its HTTP client loads them when it is built, even for
    /// an http:// collector.
    pub fn needs_tls_roots(&self) -> bool {
        self.slot.is_some()
    }

    /// Start the exporter (its thread starts now). Nothing without an
    /// endpoint.
    pub fn start_traces(&mut self) -> Result<(), String> {
        let (Some(slot), Some(endpoint)) = (&self.slot, &self.endpoint) else {
            return Ok(());
        };
        if slot.0.get().is_some() {
            return Ok(());
        }
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpJson)
            .with_endpoint(endpoint.clone())
            .build()
            .map_err(|e| format!("cannot start the trace exporter: {e}"))?;
        let mut processor = BatchSpanProcessor::builder(exporter).build();
        if let Some(resource) = &self.resource {
            processor.set_resource(resource);
        }
        let _ = slot.0.set(processor);
        Ok(())
    }
}

/// The W3C `traceparent` of the current span, when traces are exported.
pub fn current_traceparent() -> Option<String> {
    let cx = tracing::Span::current().context();
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        )
    })
}

/// Make `span` a child of the remote span `traceparent` names (already
/// validated by the IPC decoder; anything else leaves `span` a root).
pub fn continue_trace(span: &tracing::Span, traceparent: &str) {
    let parts: Vec<&str> = traceparent.split('-').collect();
    let [_, trace, parent, flags] = parts[..] else {
        return;
    };
    let (Ok(trace), Ok(parent), Ok(flags)) = (
        TraceId::from_hex(trace),
        SpanId::from_hex(parent),
        u8::from_str_radix(flags, 16),
    ) else {
        return;
    };
    let remote = SpanContext::new(
        trace,
        parent,
        TraceFlags::new(flags),
        true,
        TraceState::default(),
    );
    let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
}
