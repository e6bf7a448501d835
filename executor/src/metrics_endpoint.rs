//! The executor's Prometheus metrics (`metrics.executor_listen`): requests
//! on its sockets by message and outcome (Scoped Explore's budget refusals
//! among them), their latency, applies by outcome — counted as they happen
//! — and, read
//! from the ledger at each scrape, proposals by state and the ledger's size.
//! Served on its own listener (loopback unless a token guards it); the
//! labels come from closed sets (message types, error codes, states), never
//! from a tenant, an id or a value.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::sync::watch;

use crate::authority::Authority;
use crate::ledger::Durability;

/// Latency buckets (seconds): 50 µs to 10 s.
const BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 10.0,
];

/// Count one request answered on a socket.
pub fn record_request(message: &'static str, outcome: &'static str, elapsed: Duration) {
    metrics::counter!("airlock_executor_requests_total", "message" => message, "outcome" => outcome)
        .increment(1);
    metrics::histogram!("airlock_executor_request_duration_seconds", "message" => message)
        .record(elapsed.as_secs_f64());
}

/// Count one apply by its receipt's status.
pub fn record_apply(status: &str) {
    let status: &'static str = match status {
        "applied" => "applied",
        "already_applied" => "already_applied",
        "conflict" => "conflict",
        "failed" => "failed",
        _ => "other",
    };
    metrics::counter!("airlock_applies_total", "status" => status).increment(1);
}

#[derive(Clone)]
struct Endpoint {
    handle: PrometheusHandle,
    token: Option<Arc<String>>,
    auth: Arc<Authority>,
}

async fn page(State(e): State<Endpoint>, headers: HeaderMap) -> Response {
    if let Some(expected) = &e.token {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !presented.is_some_and(|p| crate::secret_token::ct_eq(p, expected)) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer realm=\"airlock-metrics\"")],
                "missing or wrong metrics token\n",
            )
                .into_response();
        }
    }
    // Scrape-time gauges, from the ledger (the whole fleet's, on PostgreSQL).
    if let Ok((counts, bytes)) = e
        .auth
        .ledger(Durability::Read, |l| Ok((l.counts()?, l.storage_bytes()?)))
        .await
    {
        for s in airlock_ipc::message::ProposalState::ALL {
            let n = counts
                .per_state
                .iter()
                .find(|(name, _)| name == s.as_str())
                .map_or(0, |(_, n)| *n);
            metrics::gauge!("airlock_proposals", "state" => s.as_str()).set(n as f64);
        }
        metrics::gauge!("airlock_ledger_events").set(counts.events as f64);
        metrics::gauge!("airlock_ledger_bytes").set(bytes as f64);
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        e.handle.render(),
    )
        .into_response()
}

/// Install the process's metrics recorder. Called before the sockets accept
/// anything, so the first request is counted (a recorder installed later
/// silently drops what came before it).
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets(BUCKETS)?
        .install_recorder()?;
    metrics::describe_counter!(
        "airlock_executor_requests_total",
        "Requests answered on the proposer and operator sockets, by message and outcome (ok or the error code)."
    );
    metrics::describe_histogram!(
        "airlock_executor_request_duration_seconds",
        metrics::Unit::Seconds,
        "Time to answer a request, by message."
    );
    metrics::describe_counter!("airlock_applies_total", "Applies, by the receipt's status.");
    metrics::describe_gauge!("airlock_proposals", "Proposals in the ledger, by state.");
    metrics::describe_gauge!("airlock_ledger_events", "Events in the ledger's chain.");
    metrics::describe_gauge!(
        "airlock_ledger_bytes",
        metrics::Unit::Bytes,
        "Size of the ledger (the file, or the PostgreSQL tables)."
    );
    Ok(handle)
}

/// Serve `/metrics` on `listener` until shutdown, rendering `handle`
/// (from [`install`]).
pub async fn serve(
    auth: Arc<Authority>,
    handle: PrometheusHandle,
    listener: tokio::net::TcpListener,
    token: Option<String>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let endpoint = Endpoint {
        handle,
        token: token.map(Arc::new),
        auth,
    };
    let app = axum::Router::new()
        .route("/metrics", axum::routing::get(page))
        .with_state(endpoint);
    if let Ok(listen) = listener.local_addr() {
        tracing::info!(address = %listen, "serving the executor's metrics at http://{listen}/metrics");
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = shutdown.changed().await;
        })
        .await?;
    Ok(())
}
