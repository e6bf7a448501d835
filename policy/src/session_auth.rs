//! Verified identity on HTTP (`trusted_context.provider: "http_claims"`):
//! the `session_auth` and `http_security` settings, and the checks of a
//! signed token's header and claims.
//!
//! Signatures are verified by the caller against the issuer's published
//! keys before the claims reach [`check_claims`]; every decision about
//! what a verified token may claim is made here, the same way in the HTTP
//! proposer and in the executor, which checks each token again.

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::context::is_valid_context_value;

/// The signature algorithms a config may allow: asymmetric only, so that
/// neither process holds anything that could sign a token. `none` and the
/// HMAC algorithms (`HS256`…) are refused by the loader.
pub const ASYMMETRIC_ALGORITHMS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// Defaults, as in Synapsor Runner.
pub const DEFAULT_TENANT_CLAIM: &str = "tenant_id";
pub const DEFAULT_PRINCIPAL_CLAIM: &str = "sub";
pub const DEFAULT_CLOCK_SKEW_SECONDS: u64 = 30;
pub const DEFAULT_JWKS_CACHE_SECONDS: u64 = 600;
pub const DEFAULT_JWKS_COOLDOWN_SECONDS: u64 = 30;
pub const DEFAULT_FETCH_TIMEOUT_MS: u64 = 3_000;
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 1024 * 1024;
/// Requests per minute one tenant and principal may send to the HTTP
/// proposer when `http_security.limits` does not say.
pub const DEFAULT_PRINCIPAL_REQUESTS_PER_MINUTE: u32 = 600;
/// Longest bearer token read (header and claims of any real issuer fit).
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// `session_auth` (`provider: "jwt_asymmetric"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionAuth {
    /// Allowed `alg` values, each one of [`ASYMMETRIC_ALGORITHMS`].
    pub algorithms: Vec<String>,
    /// The variable holding the issuer's JWKS URL (https, or http on
    /// loopback).
    pub jwks_url_env: String,
    /// `iss` must be exactly this.
    pub issuer: String,
    /// `aud` must be, or contain, exactly this.
    pub audience: String,
    pub tenant_claim: String,
    pub principal_claim: String,
    pub clock_skew_seconds: u64,
    pub jwks_cache_seconds: u64,
    /// Least time between two fetches for an unknown `kid`.
    pub jwks_cooldown_seconds: u64,
    pub fetch_timeout_ms: u64,
    pub max_response_bytes: u64,
    /// Scopes the token must grant (`http_security.oauth_resource.required_scopes`).
    pub required_scopes: Vec<String>,
}

/// `http_security`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HttpSecurity {
    /// RFC 9728 protected-resource metadata, served at
    /// `/.well-known/oauth-protected-resource`.
    pub oauth_resource: Option<OAuthResource>,
    /// Requests per minute per tenant and principal (verified identities
    /// only; a static token has no principal).
    pub principal_requests_per_minute: u32,
}

impl Default for HttpSecurity {
    fn default() -> Self {
        HttpSecurity {
            oauth_resource: None,
            principal_requests_per_minute: DEFAULT_PRINCIPAL_REQUESTS_PER_MINUTE,
        }
    }
}

/// `http_security.oauth_resource`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OAuthResource {
    /// The MCP endpoint's exact URL (equal to `session_auth.audience`).
    pub resource: String,
    pub authorization_servers: Vec<String>,
    pub scopes_supported: Vec<String>,
    pub required_scopes: Vec<String>,
    pub resource_name: Option<String>,
}

impl OAuthResource {
    /// The metadata document (RFC 9728 §2).
    pub fn metadata(&self) -> Value {
        let mut doc = json!({
            "resource": self.resource,
            "authorization_servers": self.authorization_servers,
            "bearer_methods_supported": ["header"],
        });
        if !self.scopes_supported.is_empty() {
            doc["scopes_supported"] = json!(self.scopes_supported);
        }
        if let Some(name) = &self.resource_name {
            doc["resource_name"] = json!(name);
        }
        doc
    }

    /// Where the metadata is served (RFC 9728 §3.1): the well-known path
    /// inserted between the resource's origin and its path.
    pub fn metadata_url(&self) -> String {
        let (origin, path) = split_origin(&self.resource);
        format!("{origin}/.well-known/oauth-protected-resource{path}")
    }

    /// The path part of [`OAuthResource::metadata_url`] (what the proposer
    /// routes).
    pub fn metadata_path(&self) -> String {
        let (_, path) = split_origin(&self.resource);
        format!("/.well-known/oauth-protected-resource{path}")
    }
}

/// `https://host:port/mcp` → (`https://host:port`, `/mcp`); a URL without
/// a path gives an empty path.
fn split_origin(url: &str) -> (&str, &str) {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => url.split_at(after_scheme + i),
        None => (url, ""),
    }
}

/// The tenant and principal a verified token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedClaims {
    pub tenant_id: String,
    pub principal: String,
    /// `exp`, in seconds since the epoch.
    pub expires_at: i64,
}

/// Why a token's header or claims are refused. The message names the rule,
/// never a claim's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRefusal {
    Malformed,
    AlgorithmNotAllowed,
    UnknownKey,
    BadSignature,
    WrongIssuer,
    WrongAudience,
    NoExpiry,
    Expired,
    NotYetValid,
    MissingScope,
    NoTenant,
    NoPrincipal,
}

impl TokenRefusal {
    /// The OAuth error (RFC 6750 §3.1) a 401 or 403 carries.
    pub fn oauth_error(self) -> &'static str {
        match self {
            TokenRefusal::MissingScope => "insufficient_scope",
            _ => "invalid_token",
        }
    }

    /// A stable code for logs and the executor's refusal.
    pub fn code(self) -> &'static str {
        match self {
            TokenRefusal::Malformed => "malformed",
            TokenRefusal::AlgorithmNotAllowed => "algorithm_not_allowed",
            TokenRefusal::UnknownKey => "unknown_key",
            TokenRefusal::BadSignature => "bad_signature",
            TokenRefusal::WrongIssuer => "wrong_issuer",
            TokenRefusal::WrongAudience => "wrong_audience",
            TokenRefusal::NoExpiry => "no_expiry",
            TokenRefusal::Expired => "expired",
            TokenRefusal::NotYetValid => "not_yet_valid",
            TokenRefusal::MissingScope => "missing_scope",
            TokenRefusal::NoTenant => "no_tenant",
            TokenRefusal::NoPrincipal => "no_principal",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            TokenRefusal::Malformed => "the bearer token is not a signed JWT",
            TokenRefusal::AlgorithmNotAllowed => {
                "the token's signature algorithm is not one session_auth.algorithms allows"
            }
            TokenRefusal::UnknownKey => {
                "the token was signed with a key the issuer does not publish"
            }
            TokenRefusal::BadSignature => "the token's signature does not verify",
            TokenRefusal::WrongIssuer => "the token's issuer is not session_auth.issuer",
            TokenRefusal::WrongAudience => "the token's audience is not session_auth.audience",
            TokenRefusal::NoExpiry => "the token has no expiry (exp)",
            TokenRefusal::Expired => "the token has expired",
            TokenRefusal::NotYetValid => "the token is not valid yet (nbf)",
            TokenRefusal::MissingScope => "the token does not grant a required scope",
            TokenRefusal::NoTenant => {
                "the token's tenant claim is missing, not a string, or not a valid tenant id"
            }
            TokenRefusal::NoPrincipal => {
                "the token's principal claim is missing, not a string, or not a valid principal"
            }
        }
    }
}

/// Whether `alg` (a token header's) is one the config allows.
pub fn algorithm_allowed(auth: &SessionAuth, alg: &str) -> bool {
    ASYMMETRIC_ALGORITHMS.contains(&alg) && auth.algorithms.iter().any(|a| a == alg)
}

/// Check a signature-verified token's claims at `now` (seconds since the
/// epoch): exact issuer; audience equal to or containing the configured
/// one; `exp` required and `nbf` honoured, each with the configured skew;
/// every required scope granted (`scope`, space-separated, or `scp`); and
/// the tenant and principal claims present as valid context values.
pub fn check_claims(
    auth: &SessionAuth,
    claims: &Map<String, Value>,
    now: i64,
) -> Result<VerifiedClaims, TokenRefusal> {
    if claims.get("iss").and_then(Value::as_str) != Some(auth.issuer.as_str()) {
        return Err(TokenRefusal::WrongIssuer);
    }
    let audience_ok = match claims.get("aud") {
        Some(Value::String(a)) => *a == auth.audience,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(&auth.audience)),
        _ => false,
    };
    if !audience_ok {
        return Err(TokenRefusal::WrongAudience);
    }
    let skew = i64::try_from(auth.clock_skew_seconds).unwrap_or(i64::MAX);
    let Some(exp) = numeric_date(claims.get("exp")) else {
        return Err(TokenRefusal::NoExpiry);
    };
    if now >= exp.saturating_add(skew) {
        return Err(TokenRefusal::Expired);
    }
    if let Some(nbf) = claims.get("nbf") {
        match numeric_date(Some(nbf)) {
            Some(nbf) if now.saturating_add(skew) >= nbf => {}
            _ => return Err(TokenRefusal::NotYetValid),
        }
    }
    let granted = granted_scopes(claims);
    if !auth
        .required_scopes
        .iter()
        .all(|s| granted.contains(&s.as_str()))
    {
        return Err(TokenRefusal::MissingScope);
    }
    let value = |name: &str| {
        claims
            .get(name)
            .and_then(Value::as_str)
            .filter(|v| is_valid_context_value(v))
            .map(str::to_owned)
    };
    let tenant_id = value(&auth.tenant_claim).ok_or(TokenRefusal::NoTenant)?;
    let principal = value(&auth.principal_claim).ok_or(TokenRefusal::NoPrincipal)?;
    Ok(VerifiedClaims {
        tenant_id,
        principal,
        expires_at: exp,
    })
}

/// A NumericDate (RFC 7519 §2): seconds since the epoch, fractions
/// truncated. Anything else (a string, a huge or non-finite number) is
/// not one.
fn numeric_date(v: Option<&Value>) -> Option<i64> {
    let v = v?;
    if let Some(i) = v.as_i64() {
        return Some(i);
    }
    let f = v.as_f64().filter(|f| f.is_finite())?;
    // Within ±2^53 every such date converts exactly.
    (f.abs() < 9_007_199_254_740_992.0).then(|| f.trunc() as i64)
}

/// The scopes a token grants: `scope` (RFC 8693/9068: space-separated) and
/// `scp` (a list, or one string, as some issuers write it).
fn granted_scopes(claims: &Map<String, Value>) -> Vec<&str> {
    let mut out: Vec<&str> = claims
        .get("scope")
        .and_then(Value::as_str)
        .map(|s| s.split(' ').filter(|x| !x.is_empty()).collect())
        .unwrap_or_default();
    match claims.get("scp") {
        Some(Value::String(s)) => out.extend(s.split(' ').filter(|x| !x.is_empty())),
        Some(Value::Array(list)) => out.extend(list.iter().filter_map(Value::as_str)),
        _ => {}
    }
    out
}

/// Whether a JWKS URL may be fetched: https anywhere, plain http only to
/// a loopback host (a key set read in the clear could be swapped).
pub fn jwks_url_allowed(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("https://") {
        return url.len() > "https://".len();
    }
    let Some(rest) = lower.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return false;
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
