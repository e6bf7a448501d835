//! Verified identities on Streamable HTTP (`trusted_context.provider:
//! "http_claims"`): every request's bearer token is verified against the
//! issuer's keys, its tenant and principal become the call's trusted
//! context, an MCP session stays bound to the identity that opened it, and
//! each identity gets its own request rate. Refusals follow RFC 6750 and
//! point clients at the protected-resource metadata (RFC 9728).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use airlock_identity::{Verifier, VerifyError};
use airlock_policy::config::ContextProvider;
use airlock_policy::context::TrustedContext;
use airlock_policy::session_auth::{HttpSecurity, OAuthResource, TokenRefusal, VerifiedClaims};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::tools::CallIdentity;

/// Sessions remembered for binding; the oldest are forgotten first (a
/// forgotten session is bound again by its next request's identity).
const MAX_BOUND_SESSIONS: usize = 10_000;
/// Identities whose request rate is tracked at once; idle ones are dropped
/// first.
const MAX_TRACKED_IDENTITIES: usize = 100_000;
const SESSION_HEADER: &str = "mcp-session-id";

/// The HTTP front's identity check.
pub struct IdentityGate {
    verifier: Arc<Verifier>,
    resource: Option<OAuthResource>,
    limiter: PrincipalLimiter,
    sessions: Mutex<SessionBindings>,
}

impl std::fmt::Debug for IdentityGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityGate").finish_non_exhaustive()
    }
}

impl IdentityGate {
    pub fn new(verifier: Arc<Verifier>, http: &HttpSecurity) -> IdentityGate {
        IdentityGate {
            verifier,
            resource: http.oauth_resource.clone(),
            limiter: PrincipalLimiter::new(http.principal_requests_per_minute),
            sessions: Mutex::new(SessionBindings::default()),
        }
    }

    /// The protected-resource metadata and the paths it is served at.
    pub fn metadata(&self) -> Option<(Vec<String>, serde_json::Value)> {
        let res = self.resource.as_ref()?;
        let mut paths = vec!["/.well-known/oauth-protected-resource".to_owned()];
        let specific = res.metadata_path();
        if !paths.contains(&specific) {
            paths.push(specific);
        }
        Some((paths, res.metadata()))
    }

    /// A 401 (or 403 for a missing scope) with its `WWW-Authenticate`.
    fn challenge(&self, refusal: Option<TokenRefusal>) -> Response {
        let mut value = String::from("Bearer realm=\"airlock\"");
        let (status, body) = match refusal {
            None => (
                StatusCode::UNAUTHORIZED,
                "a bearer token from the identity provider is required\n".to_owned(),
            ),
            Some(r) => {
                value.push_str(&format!(
                    ", error=\"{}\", error_description=\"{}\"",
                    r.oauth_error(),
                    r.message()
                ));
                let status = if r == TokenRefusal::MissingScope {
                    if let Some(res) = &self.resource
                        && !res.required_scopes.is_empty()
                    {
                        value.push_str(&format!(", scope=\"{}\"", res.required_scopes.join(" ")));
                    }
                    StatusCode::FORBIDDEN
                } else {
                    StatusCode::UNAUTHORIZED
                };
                (status, format!("{}\n", r.message()))
            }
        };
        if let Some(res) = &self.resource {
            value.push_str(&format!(", resource_metadata=\"{}\"", res.metadata_url()));
        }
        let mut response = (status, body).into_response();
        if let Ok(v) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        response
    }
}

/// The middleware in front of `/mcp`.
pub async fn require_identity(
    State(gate): State<Arc<IdentityGate>>,
    mut request: Request,
    next: Next,
) -> Response {
    let token = crate::http::bearer_token(request.headers())
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned);
    let Some(token) = token else {
        count_refusal("no_token");
        return gate.challenge(None);
    };
    let claims = match gate.verifier.verify(&token).await {
        Ok(c) => c,
        Err(VerifyError::Refused(r)) => {
            count_refusal(r.code());
            tracing::info!(reason = r.code(), "refused a bearer token");
            return gate.challenge(Some(r));
        }
        Err(VerifyError::KeysUnavailable) => {
            count_refusal("keys_unavailable");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "30")],
                "the identity provider's signing keys cannot be fetched right now; try again shortly\n",
            )
                .into_response();
        }
    };
    let session = request
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(id) = &session
        && !bind(&gate, id, &claims)
    {
        count_refusal("session_identity_mismatch");
        return (
            StatusCode::FORBIDDEN,
            "this MCP session was opened by another identity; open a new session with your own token\n",
        )
            .into_response();
    }
    if let Err(wait) = gate.limiter.admit(&claims.tenant_id, &claims.principal) {
        count_refusal("rate_limited");
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, wait.to_string())],
            "too many requests for this identity; slow down (http_security.limits.principal_requests_per_minute)\n",
        )
            .into_response();
    }
    request.extensions_mut().insert(CallIdentity {
        context: TrustedContext {
            tenant_id: claims.tenant_id.clone(),
            principal: claims.principal.clone(),
            source: ContextProvider::HttpClaims,
        },
        token: Arc::from(token),
    });
    let response = next.run(request).await;
    // A session this request opened belongs to its identity from now on.
    if session.is_none()
        && let Some(id) = response
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
    {
        bind(&gate, id, &claims);
    }
    response
}

fn bind(gate: &IdentityGate, session: &str, claims: &VerifiedClaims) -> bool {
    let mut sessions = gate
        .sessions
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    sessions.bind(session, &claims.tenant_id, &claims.principal)
}

fn count_refusal(reason: &'static str) {
    metrics::counter!("airlock_proposer_auth_refusals_total", "reason" => reason).increment(1);
}

/// MCP session id → the identity that opened it.
#[derive(Default)]
struct SessionBindings {
    owner: HashMap<String, (String, String)>,
    order: VecDeque<String>,
}

impl SessionBindings {
    /// Bind `session` to the identity if it is new; whether the identity
    /// is the session's.
    fn bind(&mut self, session: &str, tenant: &str, principal: &str) -> bool {
        if let Some((t, p)) = self.owner.get(session) {
            return t == tenant && p == principal;
        }
        while self.owner.len() >= MAX_BOUND_SESSIONS {
            match self.order.pop_front() {
                Some(old) => {
                    self.owner.remove(&old);
                }
                None => break,
            }
        }
        self.owner.insert(
            session.to_owned(),
            (tenant.to_owned(), principal.to_owned()),
        );
        self.order.push_back(session.to_owned());
        true
    }
}

/// A token bucket per tenant and principal: a minute's allowance at most,
/// refilled continuously.
struct PrincipalLimiter {
    per_minute: f64,
    buckets: Mutex<HashMap<(String, String), (f64, Instant)>>,
}

impl PrincipalLimiter {
    fn new(per_minute: u32) -> PrincipalLimiter {
        PrincipalLimiter {
            per_minute: f64::from(per_minute.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Take one request; `Err(seconds)` to wait when the bucket is empty.
    fn admit(&self, tenant: &str, principal: &str) -> Result<(), u64> {
        let now = Instant::now();
        let rate = self.per_minute / 60.0;
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= MAX_TRACKED_IDENTITIES {
            // Full buckets are idle identities: forgetting them loses nothing.
            let cap = self.per_minute;
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < cap
            });
        }
        let entry = buckets
            .entry((tenant.to_owned(), principal.to_owned()))
            .or_insert((self.per_minute, now));
        let tokens =
            (entry.0 + now.duration_since(entry.1).as_secs_f64() * rate).min(self.per_minute);
        if tokens >= 1.0 {
            *entry = (tokens - 1.0, now);
            Ok(())
        } else {
            *entry = (tokens, now);
            Err(((1.0 - tokens) / rate).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_stays_with_the_identity_that_opened_it() {
        let mut s = SessionBindings::default();
        assert!(s.bind("s1", "acme", "ann"));
        assert!(s.bind("s1", "acme", "ann"));
        assert!(!s.bind("s1", "globex", "ann"));
        assert!(!s.bind("s1", "acme", "bob"));
        assert!(s.bind("s2", "globex", "bob"));
    }

    #[test]
    fn the_limiter_allows_a_minutes_worth_then_refuses_per_identity() {
        let l = PrincipalLimiter::new(3);
        for _ in 0..3 {
            assert_eq!(l.admit("acme", "ann"), Ok(()));
        }
        let wait = l.admit("acme", "ann").expect_err("fourth request");
        assert!((1..=20).contains(&wait), "{wait}");
        // Another principal of the same tenant has its own allowance.
        assert_eq!(l.admit("acme", "bob"), Ok(()));
    }
}
