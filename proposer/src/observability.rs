//! What the HTTP proposer tells operators about itself: `/healthz` (the
//! process answers), `/readyz` (its sources and the executor answer),
//! `/metrics` (Prometheus text: tool calls by tool and outcome, their
//! latency), and one access-log line per HTTP request. None of it carries a
//! token, a query string, an argument or a row.

use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::{Value, json};

/// One readiness component.
#[derive(Debug, Clone)]
pub struct Component {
    pub name: String,
    pub ok: bool,
    pub code: &'static str,
    pub latency_ms: u64,
}

impl Component {
    pub fn new(name: String, ok: bool, code: &'static str, started: Instant) -> Component {
        Component {
            name,
            ok,
            code,
            latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// The `/readyz` body: ready when every component is.
pub fn readiness_body(components: &[Component]) -> (bool, Value) {
    let ready = components.iter().all(|c| c.ok);
    let list: Vec<Value> = components
        .iter()
        .map(|c| json!({"name": c.name, "ok": c.ok, "code": c.code, "latency_ms": c.latency_ms}))
        .collect();
    (
        ready,
        json!({"ok": ready, "status": if ready { "ready" } else { "not_ready" }, "components": list}),
    )
}

/// The `/healthz` body.
pub fn health_body() -> Value {
    json!({"ok": true, "status": "live", "transport": "streamable-http"})
}

/// The metrics endpoint: the recorder's handle and the scrapers' token.
#[derive(Clone)]
pub struct MetricsEndpoint {
    handle: PrometheusHandle,
    pub token: Option<Arc<Vec<u8>>>,
}

impl std::fmt::Debug for MetricsEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsEndpoint").finish_non_exhaustive()
    }
}

/// Latency buckets (seconds) for tool calls: 0.5 ms to 10 s.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

impl MetricsEndpoint {
    /// Install the process's recorder (once; metrics are no-ops without it).
    pub fn install(token: Option<String>) -> anyhow::Result<MetricsEndpoint> {
        let handle = PrometheusBuilder::new()
            .set_buckets(BUCKETS)?
            .install_recorder()?;
        metrics::describe_counter!(
            "airlock_tool_calls_total",
            "Tool calls answered, by canonical tool and outcome (ok or the error code)."
        );
        metrics::describe_histogram!(
            "airlock_tool_call_duration_seconds",
            metrics::Unit::Seconds,
            "Time to answer a tool call, by canonical tool."
        );
        metrics::describe_counter!(
            "airlock_http_requests_total",
            "HTTP requests, by route and status class."
        );
        Ok(MetricsEndpoint {
            handle,
            token: token.map(|t| Arc::new(t.into_bytes())),
        })
    }

    pub fn render(&self) -> String {
        self.handle.render()
    }
}

/// Count one tool call. `tool` must be a canonical name the config serves
/// (or `unknown`): a model-chosen name never becomes a label.
pub fn record_call(tool: &str, outcome: &str, elapsed: Duration) {
    metrics::counter!("airlock_tool_calls_total", "tool" => tool.to_owned(), "outcome" => outcome.to_owned())
        .increment(1);
    metrics::histogram!("airlock_tool_call_duration_seconds", "tool" => tool.to_owned())
        .record(elapsed.as_secs_f64());
}

/// The route label of a path: one of the known ones, never the raw path.
pub fn route_of(path: &str) -> &'static str {
    match path {
        "/mcp" => "/mcp",
        "/healthz" => "/healthz",
        "/readyz" => "/readyz",
        "/metrics" => "/metrics",
        p if p.starts_with("/mcp/") => "/mcp",
        _ => "other",
    }
}

/// Count one HTTP request.
pub fn record_request(route: &'static str, status: u16) {
    let class = match status {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    metrics::counter!("airlock_http_requests_total", "route" => route, "status" => class)
        .increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_a_closed_set() {
        assert_eq!(route_of("/mcp"), "/mcp");
        assert_eq!(route_of("/mcp/x"), "/mcp");
        assert_eq!(route_of("/readyz"), "/readyz");
        assert_eq!(route_of("/etc/passwd"), "other");
    }

    #[test]
    fn ready_only_when_every_component_is() {
        let c = |ok| Component {
            name: "x".into(),
            ok,
            code: if ok { "ok" } else { "SOURCE_UNAVAILABLE" },
            latency_ms: 1,
        };
        assert!(readiness_body(&[c(true), c(true)]).0);
        let (ready, body) = readiness_body(&[c(true), c(false)]);
        assert!(!ready);
        assert_eq!(body["status"], "not_ready");
        assert_eq!(body["components"][1]["code"], "SOURCE_UNAVAILABLE");
    }
}
