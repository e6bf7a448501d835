//! Streamable HTTP transport: rmcp's service mounted at `/mcp` in axum,
//! behind a bearer-token check (rmcp has no server-side auth of its own).

use axum::serve::ListenerExt;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use crate::observability::MetricsEndpoint;
use crate::server::McpServer;
use crate::tools::Proposer;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The bearer tokens accepted: the active one and, during a rotation, the
/// previous one (`--previous-auth-token-env`).
#[derive(Clone)]
struct Auth {
    tokens: Arc<Vec<Vec<u8>>>,
}

/// How `/mcp` requests are authenticated.
pub enum HttpAuth {
    /// `--insecure-no-auth` (loopback only).
    None,
    /// Static bearer tokens (the active one and, while rotating, the
    /// previous one).
    Static(Vec<String>),
    /// Signed tokens whose claims name the tenant and principal
    /// (`session_auth`).
    Verified(Arc<crate::http_identity::IdentityGate>),
}

/// Compare without an early exit, so timing does not reveal the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for (i, x) in a.iter().enumerate() {
        diff |= x ^ b.get(i % b.len().max(1)).copied().unwrap_or(0);
    }
    diff == 0
}

/// The token of the request's `Authorization: Bearer` header, if any.
pub(crate) fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

/// Whether the request's `Authorization: Bearer` token is one of
/// `accepted`. Every accepted token is compared, so the time does not tell
/// which (or whether any) matched.
fn bearer_accepted(headers: &axum::http::HeaderMap, accepted: &[Vec<u8>]) -> bool {
    let presented = bearer_token(headers).map(str::as_bytes);
    presented.is_some_and(|p| {
        accepted
            .iter()
            .fold(false, |any, t| constant_time_eq(p, t) | any)
    })
}

async fn require_bearer(State(auth): State<Auth>, request: Request, next: Next) -> Response {
    if bearer_accepted(request.headers(), &auth.tokens) {
        return next.run(request).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer realm=\"airlock\"")],
        "missing or wrong bearer token\n",
    )
        .into_response()
}

/// `/metrics`: 404 unless metrics are enabled; then the scrapers' token
/// (a token of its own, never the MCP one) when one is configured.
async fn metrics_page(
    State(endpoint): State<Option<MetricsEndpoint>>,
    headers: axum::http::HeaderMap,
) -> Response {
    let Some(endpoint) = endpoint else {
        return (
            StatusCode::NOT_FOUND,
            "metrics are not enabled (config: metrics.enabled)\n",
        )
            .into_response();
    };
    if let Some(expected) = &endpoint.token
        && !bearer_accepted(&headers, std::slice::from_ref(expected))
    {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer realm=\"airlock-metrics\"")],
            "missing or wrong metrics token\n",
        )
            .into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        endpoint.render(),
    )
        .into_response()
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn healthz() -> Response {
    json_response(StatusCode::OK, &crate::observability::health_body())
}

async fn readyz(State(proposer): State<Arc<Proposer>>) -> Response {
    let (ready, body) = crate::observability::readiness_body(&proposer.readiness().await);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(status, &body)
}

/// One access-log line per request: method, route, status, time. Never
/// the query string, a header, a token or a body.
async fn access_log(request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let method = request.method().as_str().to_owned();
    let route = crate::observability::route_of(request.uri().path());
    let response = next.run(request).await;
    let status = response.status().as_u16();
    crate::observability::record_request(route, status);
    tracing::info!(
        target: "access",
        method = %method,
        route,
        status,
        duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "http"
    );
    response
}

/// Serve MCP over Streamable HTTP at `http://<listen>/mcp` until `shutdown`
/// resolves, with `/healthz`, `/readyz` and `/metrics` beside it.
pub async fn serve(
    proposer: Arc<Proposer>,
    listener: tokio::net::TcpListener,
    auth: HttpAuth,
    metrics: Option<MetricsEndpoint>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let cancel = tokio_util::sync::CancellationToken::new();
    let mut config = StreamableHttpServerConfig::default();
    config.max_request_body_bytes = MAX_BODY_BYTES;
    // Browsers may only talk to this server from a local page.
    config.allowed_origins = vec![
        "http://localhost:*".into(),
        "http://127.0.0.1:*".into(),
        "http://[::1]:*".into(),
    ];
    config.cancellation_token = cancel.clone();
    let for_sessions = Arc::clone(&proposer);
    let service = StreamableHttpService::new(
        move || Ok(McpServer::new(Arc::clone(&for_sessions))),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let mut metadata = None;
    let mcp = axum::Router::new().nest_service("/mcp", service);
    let mcp = match auth {
        HttpAuth::Verified(gate) => {
            metadata = gate.metadata();
            mcp.layer(axum::middleware::from_fn_with_state(
                gate,
                crate::http_identity::require_identity,
            ))
        }
        HttpAuth::Static(tokens) => mcp.layer(axum::middleware::from_fn_with_state(
            Auth {
                tokens: Arc::new(tokens.into_iter().map(String::into_bytes).collect()),
            },
            require_bearer,
        )),
        HttpAuth::None => mcp,
    };
    // Health and readiness answer without a token (they say nothing but
    // whether the parts answer); metrics have a token of their own.
    let app = axum::Router::new()
        .route("/healthz", axum::routing::get(healthz))
        .route(
            "/readyz",
            axum::routing::get(readyz).with_state(Arc::clone(&proposer)),
        )
        .route(
            "/metrics",
            axum::routing::get(metrics_page).with_state(metrics),
        )
        .merge(mcp);
    // RFC 9728: where clients learn which issuer grants tokens for /mcp
    // (public, like the issuer's own metadata).
    let app = match metadata {
        Some((paths, doc)) => {
            let body = doc.to_string();
            paths.into_iter().fold(app, |app, path| {
                let body = body.clone();
                app.route(
                    &path,
                    axum::routing::get(move || async move {
                        ([(header::CONTENT_TYPE, "application/json")], body)
                    }),
                )
            })
        }
        None => app,
    }
    .layer(axum::middleware::from_fn(access_log));
    // Without TCP_NODELAY the last small write of each streamed response
    // waits for the client's delayed ACK (~40 ms per call).
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            cancel.cancel();
        })
        .await
}

/// Whether an address only accepts local connections.
pub fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"secret-token", b"secret-token"));
        assert!(!constant_time_eq(b"secret-token", b"secret-tokex"));
        assert!(!constant_time_eq(b"secret", b"secret-token"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(!constant_time_eq(b"x", b""));
    }
}
