//! `session_auth` and `http_security`, in Synapsor Runner 1.x's shape.
//!
//! Only `jwt_asymmetric` is a provider: with `jwt_hs256` the proposer
//! would hold the secret that signs tokens, and could mint any tenant.
//! Runner's other `http_security` settings (TLS channel, hosts, origins,
//! HTTP limits) are refused by name, with what to use instead.

use serde_json::Value;

use super::{Obj, join_index, short, type_name};
use crate::diagnostics::Report;
use crate::session_auth::{
    ASYMMETRIC_ALGORITHMS, DEFAULT_CLOCK_SKEW_SECONDS, DEFAULT_FETCH_TIMEOUT_MS,
    DEFAULT_JWKS_CACHE_SECONDS, DEFAULT_JWKS_COOLDOWN_SECONDS, DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_PRINCIPAL_CLAIM, DEFAULT_PRINCIPAL_REQUESTS_PER_MINUTE, DEFAULT_TENANT_CLAIM,
    HttpSecurity, OAuthResource, SessionAuth,
};

const SESSION_KEYS: &[&str] = &[
    "provider",
    "algorithms",
    "jwks_url_env",
    "issuer",
    "audience",
    "tenant_claim",
    "principal_claim",
    "clock_skew_seconds",
    "jwks_cache_seconds",
    "jwks_cooldown_seconds",
    "fetch_timeout_ms",
    "max_response_bytes",
    // Refused below with a reason:
    "secret_env",
    "previous_secret_env",
    "public_key_env",
    "public_key_path",
];

/// Runner's `http_security` keys Airlock does not take, and what to use.
const HTTP_REFUSED: &[(&str, &str)] = &[
    (
        "deployment",
        "Airlock decides by the listener: off loopback it needs a bearer token or session_auth",
    ),
    (
        "channel",
        "terminate TLS in a reverse proxy in front of the proposer",
    ),
    (
        "static_token",
        "give the token with `airlock-proposer --auth-token-env` (and `--previous-auth-token-env` while rotating)",
    ),
    (
        "allowed_origins",
        "the proposer accepts browser requests only from local pages",
    ),
    (
        "allowed_hosts",
        "the proposer checks the Host header itself (loopback names)",
    ),
];

const LIMIT_KEYS: &[&str] = &["principal_requests_per_minute"];

/// `session_auth`, or `None` when absent or wrong (errors reported).
pub(super) fn parse_session_auth(
    r: &mut Report,
    o: &Obj,
    required_scopes: &[String],
) -> Option<SessionAuth> {
    let v = o.get("session_auth")?;
    let s = Obj::open(r, &o.at("session_auth"), v, SESSION_KEYS)?;
    let mut ok = true;
    match s
        .req_string(
            r,
            "provider",
            "add \"provider\": \"jwt_asymmetric\" (tokens signed by your identity provider, checked against its JWKS)",
        )
        .as_deref()
    {
        Some("jwt_asymmetric") => {}
        Some("jwt_hs256") => {
            r.error(
                s.at("provider"),
                "`jwt_hs256` is not supported: with a shared secret the proposer could sign tokens for any tenant",
                "use \"jwt_asymmetric\": your identity provider signs, Airlock only verifies against its public keys",
            );
            ok = false;
        }
        Some(other) => {
            r.error(
                s.at("provider"),
                format!("unknown provider `{}`", other.escape_debug()),
                "use \"jwt_asymmetric\"",
            );
            ok = false;
        }
        None => ok = false,
    }
    for key in ["secret_env", "previous_secret_env"] {
        if s.has(key) {
            r.error(
                s.at(key),
                format!("`{key}` is a shared signing secret, which Airlock never holds"),
                "remove it and use \"provider\": \"jwt_asymmetric\" with \"jwks_url_env\"",
            );
            ok = false;
        }
    }
    for key in ["public_key_env", "public_key_path"] {
        if s.has(key) {
            r.error(
                s.at(key),
                format!("`{key}` is not supported by Airlock"),
                "publish the public key as a JWKS and name its URL's variable in \"jwks_url_env\"",
            );
            ok = false;
        }
    }
    let algorithms = parse_algorithms(r, &s);
    let jwks_url_env = s.req_env_name(
        r,
        "jwks_url_env",
        "add \"jwks_url_env\": the variable holding the issuer's JWKS URL, e.g. AIRLOCK_JWKS_URL",
    );
    let issuer = s.req_string(
        r,
        "issuer",
        "add \"issuer\": the exact `iss` your identity provider writes, e.g. \"https://identity.example\"",
    );
    let audience = s.req_string(
        r,
        "audience",
        "add \"audience\": this MCP endpoint's URL, the `aud` tokens are issued for",
    );
    let tenant_claim = claim_name(r, &s, "tenant_claim", DEFAULT_TENANT_CLAIM);
    let principal_claim = claim_name(r, &s, "principal_claim", DEFAULT_PRINCIPAL_CLAIM);
    let int = |r: &mut Report, key: &str, min: u64, max: u64, default: u64| {
        if s.has(key) {
            s.integer(r, key, min, max)
        } else {
            Some(default)
        }
    };
    let clock_skew_seconds = int(r, "clock_skew_seconds", 0, 300, DEFAULT_CLOCK_SKEW_SECONDS);
    let jwks_cache_seconds = int(
        r,
        "jwks_cache_seconds",
        10,
        86_400,
        DEFAULT_JWKS_CACHE_SECONDS,
    );
    let jwks_cooldown_seconds = int(
        r,
        "jwks_cooldown_seconds",
        1,
        3_600,
        DEFAULT_JWKS_COOLDOWN_SECONDS,
    );
    let fetch_timeout_ms = int(r, "fetch_timeout_ms", 100, 30_000, DEFAULT_FETCH_TIMEOUT_MS);
    let max_response_bytes = int(
        r,
        "max_response_bytes",
        1_024,
        16 * 1024 * 1024,
        DEFAULT_MAX_RESPONSE_BYTES,
    );
    if !ok {
        return None;
    }
    Some(SessionAuth {
        algorithms: algorithms?,
        jwks_url_env: jwks_url_env?,
        issuer: issuer?,
        audience: audience?,
        tenant_claim: tenant_claim?,
        principal_claim: principal_claim?,
        clock_skew_seconds: clock_skew_seconds?,
        jwks_cache_seconds: jwks_cache_seconds?,
        jwks_cooldown_seconds: jwks_cooldown_seconds?,
        fetch_timeout_ms: fetch_timeout_ms?,
        max_response_bytes: max_response_bytes?,
        required_scopes: required_scopes.to_vec(),
    })
}

/// `algorithms`: required, at least one, each asymmetric, none twice.
fn parse_algorithms(r: &mut Report, s: &Obj) -> Option<Vec<String>> {
    if !s.has("algorithms") {
        s.missing(
            r,
            "algorithms",
            "add \"algorithms\": the signature algorithms your issuer uses, e.g. [\"RS256\"]",
        );
        return None;
    }
    let items = s.array(r, "algorithms")?;
    let path = s.at("algorithms");
    if items.is_empty() {
        r.error(
            &path,
            "must allow at least one algorithm",
            "list your issuer's, e.g. [\"RS256\"]",
        );
        return None;
    }
    let mut out: Vec<String> = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let p = join_index(&path, i);
        match item.as_str() {
            Some(a) if ASYMMETRIC_ALGORITHMS.contains(&a) => {
                if out.iter().any(|x| x == a) {
                    r.error(
                        &p,
                        format!("`{a}` is listed twice"),
                        "list each algorithm once",
                    );
                    ok = false;
                } else {
                    out.push(a.to_owned());
                }
            }
            Some(a) => {
                let why = if a.eq_ignore_ascii_case("none") {
                    "an unsigned token proves nothing".to_owned()
                } else if a.to_ascii_uppercase().starts_with("HS") {
                    format!(
                        "`{}` is symmetric: whoever verifies could also sign",
                        a.escape_debug()
                    )
                } else {
                    format!(
                        "`{}` is not a JWS algorithm Airlock verifies",
                        a.escape_debug()
                    )
                };
                r.error(
                    &p,
                    why,
                    format!(
                        "use asymmetric algorithms: {}",
                        ASYMMETRIC_ALGORITHMS.join(", ")
                    ),
                );
                ok = false;
            }
            None => {
                r.error(
                    &p,
                    format!("expected an algorithm name, found {}", type_name(item)),
                    "write it as a string, e.g. \"RS256\"",
                );
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

/// A claim name: 1 to 64 characters, printable.
fn claim_name(r: &mut Report, s: &Obj, key: &str, default: &str) -> Option<String> {
    if !s.has(key) {
        return Some(default.to_owned());
    }
    let name = s.string(r, key)?;
    if name.chars().count() > 64 || name.chars().any(char::is_control) {
        r.error(
            s.at(key),
            "a claim name must be at most 64 characters with no control characters",
            format!("write the claim's name, e.g. \"{default}\""),
        );
        return None;
    }
    Some(name)
}

/// `http_security`; the defaults when absent.
pub(super) fn parse_http_security(r: &mut Report, o: &Obj) -> HttpSecurity {
    let Some(v) = o.get("http_security") else {
        return HttpSecurity::default();
    };
    let mut known = vec!["oauth_resource", "limits"];
    known.extend(HTTP_REFUSED.iter().map(|(k, _)| *k));
    let Some(h) = Obj::open(r, &o.at("http_security"), v, &known) else {
        return HttpSecurity::default();
    };
    for (key, instead) in HTTP_REFUSED {
        if h.has(key) {
            r.error(
                h.at(key),
                format!("`http_security.{key}` is not supported by Airlock"),
                format!("remove it; {instead}"),
            );
        }
    }
    let oauth_resource = h
        .get("oauth_resource")
        .and_then(|v| parse_oauth_resource(r, &h.at("oauth_resource"), v));
    let mut principal_requests_per_minute = DEFAULT_PRINCIPAL_REQUESTS_PER_MINUTE;
    if let Some(v) = h.get("limits") {
        let path = h.at("limits");
        let mut known: Vec<&str> = LIMIT_KEYS.to_vec();
        for key in v.as_object().into_iter().flat_map(|m| m.keys()) {
            if !LIMIT_KEYS.contains(&key.as_str()) {
                r.error(
                    super::join_key(&path, key),
                    format!("`http_security.limits.{}` is not supported by Airlock", key.escape_debug()),
                    "remove it; the only limit is \"principal_requests_per_minute\" (request bodies are capped at 1 MiB)",
                );
                known.push(key);
            }
        }
        if let Some(l) = Obj::open(r, &path, v, &known)
            && let Some(n) = l.integer(r, "principal_requests_per_minute", 1, 1_000_000)
        {
            principal_requests_per_minute = u32::try_from(n).unwrap_or(u32::MAX);
        }
    }
    HttpSecurity {
        oauth_resource,
        principal_requests_per_minute,
    }
}

fn parse_oauth_resource(r: &mut Report, path: &str, v: &Value) -> Option<OAuthResource> {
    let o = Obj::open(
        r,
        path,
        v,
        &[
            "resource",
            "authorization_servers",
            "scopes_supported",
            "required_scopes",
            "resource_name",
        ],
    )?;
    let resource = o
        .req_string(
            r,
            "resource",
            "add \"resource\": this MCP endpoint's exact URL, e.g. \"https://airlock.example/mcp\"",
        )
        .filter(|u| {
            let ok = is_http_url(u);
            if !ok {
                r.error(
                    o.at("resource"),
                    format!("`{}` is not an http(s) URL", u.escape_debug()),
                    "write the endpoint's URL, e.g. \"https://airlock.example/mcp\"",
                );
            }
            ok
        });
    let servers = if o.has("authorization_servers") {
        string_list(r, &o, "authorization_servers", true)
    } else {
        o.missing(
            r,
            "authorization_servers",
            "add \"authorization_servers\": [the issuer that grants tokens for this resource]",
        );
        None
    };
    let scopes_supported = string_list(r, &o, "scopes_supported", false);
    let required_scopes = string_list(r, &o, "required_scopes", false);
    let resource_name = o.string(r, "resource_name");
    Some(OAuthResource {
        resource: resource?,
        authorization_servers: servers?,
        scopes_supported: scopes_supported.unwrap_or_default(),
        required_scopes: required_scopes.unwrap_or_default(),
        resource_name,
    })
}

fn is_http_url(u: &str) -> bool {
    let lower = u.to_ascii_lowercase();
    ["https://", "http://"]
        .iter()
        .any(|p| lower.starts_with(p) && u.len() > p.len())
        && !u.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// A list of non-empty strings without whitespace; `non_empty` requires
/// one at least. `None` when absent or wrong (errors reported).
fn string_list(r: &mut Report, o: &Obj, key: &str, non_empty: bool) -> Option<Vec<String>> {
    let items = o.array(r, key)?;
    let path = o.at(key);
    if non_empty && items.is_empty() {
        r.error(&path, "must list at least one", "add an entry");
        return None;
    }
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match item.as_str() {
            Some(s) if !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || c.is_control()) => {
                out.push(s.to_owned());
            }
            _ => {
                r.error(
                    join_index(&path, i),
                    format!(
                        "expected a non-empty string without spaces, found {}",
                        short(item)
                    ),
                    "write each entry as a string",
                );
                return None;
            }
        }
    }
    Some(out)
}
