//! Verified identities on HTTP: the claim checks of a signature-verified
//! token, the JWKS URL rule, the protected-resource metadata, the refusal
//! codes, and the loader of `session_auth` / `http_security` with the
//! `http_claims` provider. Expected values are written out here, never
//! computed by the code under test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use airlock_policy::config::{ContextProvider, ContextSpec, ValueSource};
use airlock_policy::context::{ContextError, resolve_context};
use airlock_policy::load::Loaded;
use airlock_policy::session_auth::{
    ASYMMETRIC_ALGORITHMS, DEFAULT_CLOCK_SKEW_SECONDS, DEFAULT_FETCH_TIMEOUT_MS,
    DEFAULT_JWKS_CACHE_SECONDS, DEFAULT_JWKS_COOLDOWN_SECONDS, DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_PRINCIPAL_CLAIM, DEFAULT_PRINCIPAL_REQUESTS_PER_MINUTE, DEFAULT_TENANT_CLAIM,
    HttpSecurity, MAX_TOKEN_BYTES, OAuthResource, SessionAuth, TokenRefusal, VerifiedClaims,
    algorithm_allowed, check_claims, jwks_url_allowed,
};
use airlock_policy::{Config, load_config, load_config_str};
use serde_json::{Map, Value, json};

#[path = "support/json_edit.rs"]
mod json_edit;
use json_edit::{remove, set};

// ---------------------------------------------------------------------------
// The constants other crates read (the proposer caps the bearer token it
// reads at MAX_TOKEN_BYTES).

#[test]
fn constants() {
    assert_eq!(MAX_TOKEN_BYTES, 8_192);
    assert_eq!(
        ASYMMETRIC_ALGORITHMS,
        [
            "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"
        ]
    );
    assert_eq!(DEFAULT_TENANT_CLAIM, "tenant_id");
    assert_eq!(DEFAULT_PRINCIPAL_CLAIM, "sub");
    assert_eq!(DEFAULT_CLOCK_SKEW_SECONDS, 30);
    assert_eq!(DEFAULT_JWKS_CACHE_SECONDS, 600);
    assert_eq!(DEFAULT_JWKS_COOLDOWN_SECONDS, 30);
    assert_eq!(DEFAULT_FETCH_TIMEOUT_MS, 3_000);
    assert_eq!(DEFAULT_MAX_RESPONSE_BYTES, 1_048_576);
    assert_eq!(DEFAULT_PRINCIPAL_REQUESTS_PER_MINUTE, 600);
}

// ---------------------------------------------------------------------------
// check_claims

const ISS: &str = "https://identity.example";
const AUD: &str = "https://airlock.example/mcp";
const NOW: i64 = 1_000_000;
const EXP: i64 = 1_000_600;

fn auth() -> SessionAuth {
    SessionAuth {
        algorithms: vec!["RS256".into()],
        jwks_url_env: "AIRLOCK_JWKS_URL".into(),
        issuer: ISS.into(),
        audience: AUD.into(),
        tenant_claim: "tenant_id".into(),
        principal_claim: "sub".into(),
        clock_skew_seconds: 30,
        jwks_cache_seconds: 600,
        jwks_cooldown_seconds: 30,
        fetch_timeout_ms: 3_000,
        max_response_bytes: 1_048_576,
        required_scopes: vec![],
    }
}

fn with_skew(skew: u64) -> SessionAuth {
    SessionAuth {
        clock_skew_seconds: skew,
        ..auth()
    }
}

fn with_scopes(scopes: &[&str]) -> SessionAuth {
    SessionAuth {
        required_scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        ..auth()
    }
}

/// A token every check accepts.
fn token() -> Value {
    json!({
        "iss": ISS,
        "aud": AUD,
        "exp": EXP,
        "tenant_id": "acme",
        "sub": "ann",
    })
}

/// `token()` with `key` set to `value`.
fn token_with(key: &str, value: Value) -> Value {
    let mut t = token();
    t[key] = value;
    t
}

/// `token()` without `key`.
fn token_without(key: &str) -> Value {
    let mut t = token();
    t.as_object_mut().unwrap().remove(key).unwrap();
    t
}

fn map(v: &Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn check_at(auth: &SessionAuth, token: &Value, now: i64) -> Result<VerifiedClaims, TokenRefusal> {
    check_claims(auth, &map(token), now)
}

fn check(token: &Value) -> Result<VerifiedClaims, TokenRefusal> {
    check_at(&auth(), token, NOW)
}

fn verified(
    tenant: &str,
    principal: &str,
    expires_at: i64,
) -> Result<VerifiedClaims, TokenRefusal> {
    Ok(VerifiedClaims {
        tenant_id: tenant.into(),
        principal: principal.into(),
        expires_at,
    })
}

#[test]
fn a_good_token_gives_its_tenant_principal_and_expiry() {
    assert_eq!(check(&token()), verified("acme", "ann", 1_000_600));
    // Claims the checks do not know are ignored.
    assert_eq!(
        check(&token_with("email", json!("ann@acme.example"))),
        verified("acme", "ann", 1_000_600)
    );
}

#[test]
fn the_issuer_must_match_exactly() {
    assert_eq!(check(&token()), verified("acme", "ann", 1_000_600));
    for bad in [
        json!("https://identity.example/"),
        json!("https://identity.exampl"),
        json!("https://identity.example.evil"),
        json!("https://IDENTITY.example"),
        json!("HTTPS://identity.example"),
        json!("http://identity.example"),
        json!(" https://identity.example"),
        json!(""),
        json!(["https://identity.example"]),
        json!(1),
        Value::Null,
    ] {
        assert_eq!(
            check(&token_with("iss", bad.clone())),
            Err(TokenRefusal::WrongIssuer),
            "{bad}"
        );
    }
    assert_eq!(check(&token_without("iss")), Err(TokenRefusal::WrongIssuer));
    // The issuer is checked before anything else.
    assert_eq!(
        check(&json!({"iss": "https://other.example"})),
        Err(TokenRefusal::WrongIssuer)
    );
}

#[test]
fn the_audience_is_the_configured_one_or_a_list_holding_it() {
    assert_eq!(
        check(&token_with("aud", json!("https://airlock.example/mcp"))),
        verified("acme", "ann", 1_000_600)
    );
    assert_eq!(
        check(&token_with(
            "aud",
            json!(["https://other.example", "https://airlock.example/mcp"])
        )),
        verified("acme", "ann", 1_000_600)
    );
    assert_eq!(
        check(&token_with("aud", json!(["https://airlock.example/mcp"]))),
        verified("acme", "ann", 1_000_600)
    );
    for bad in [
        json!("https://airlock.example/mcp/"),
        json!("https://airlock.example"),
        json!("https://AIRLOCK.example/mcp"),
        json!(["https://other.example"]),
        json!(["https://airlock.example/mcp/", "https://airlock.example"]),
        json!([]),
        json!([["https://airlock.example/mcp"]]),
        json!(1),
        json!(true),
        json!({"aud": "https://airlock.example/mcp"}),
        Value::Null,
    ] {
        assert_eq!(
            check(&token_with("aud", bad.clone())),
            Err(TokenRefusal::WrongAudience),
            "{bad}"
        );
    }
    assert_eq!(
        check(&token_without("aud")),
        Err(TokenRefusal::WrongAudience)
    );
    // The audience is checked before the expiry.
    assert_eq!(
        check(&json!({"iss": ISS, "aud": "https://other.example"})),
        Err(TokenRefusal::WrongAudience)
    );
}

#[test]
fn expiry_boundaries_with_the_skew() {
    let exp = 1_000_600;
    let t = token_with("exp", json!(exp));
    // Skew 30: valid until exp + 30, exclusive.
    assert_eq!(
        check_at(&with_skew(30), &t, 1_000_629),
        verified("acme", "ann", 1_000_600)
    );
    assert_eq!(
        check_at(&with_skew(30), &t, 1_000_630),
        Err(TokenRefusal::Expired)
    );
    assert_eq!(
        check_at(&with_skew(30), &t, 1_000_631),
        Err(TokenRefusal::Expired)
    );
    assert_eq!(
        check_at(&with_skew(30), &t, 2_000_000),
        Err(TokenRefusal::Expired)
    );
    // Skew 0: valid until exp, exclusive.
    assert_eq!(
        check_at(&with_skew(0), &t, 1_000_599),
        verified("acme", "ann", 1_000_600)
    );
    assert_eq!(
        check_at(&with_skew(0), &t, 1_000_600),
        Err(TokenRefusal::Expired)
    );
    // Skew 300.
    assert_eq!(
        check_at(&with_skew(300), &t, 1_000_899),
        verified("acme", "ann", 1_000_600)
    );
    assert_eq!(
        check_at(&with_skew(300), &t, 1_000_900),
        Err(TokenRefusal::Expired)
    );
    // A skew too large for an i64 saturates instead of overflowing.
    assert_eq!(
        check_at(
            &with_skew(u64::MAX),
            &token_with("exp", json!(5)),
            1_000_000
        ),
        verified("acme", "ann", 5)
    );
    // exp at the very end of time does not overflow with the skew.
    assert_eq!(
        check(&token_with("exp", json!(i64::MAX))),
        verified("acme", "ann", 9_223_372_036_854_775_807)
    );
    // Negative dates are dates.
    assert_eq!(
        check_at(&with_skew(0), &token_with("exp", json!(-10)), -11),
        verified("acme", "ann", -10)
    );
    assert_eq!(
        check_at(&with_skew(0), &token_with("exp", json!(-10)), -10),
        Err(TokenRefusal::Expired)
    );
}

#[test]
fn exp_is_required_and_must_be_a_numeric_date() {
    assert_eq!(check(&token_without("exp")), Err(TokenRefusal::NoExpiry));
    for bad in [
        json!("1000600"),
        json!(null),
        json!(true),
        json!([1_000_600]),
        json!({"t": 1_000_600}),
        // Beyond 2^53 as a float: not exact, so not a date.
        json!(9_007_199_254_740_992.0_f64),
        json!(1.0e16_f64),
        json!(-9_007_199_254_740_992.0_f64),
        json!(-1.0e16_f64),
        json!(1.0e300_f64),
        // Beyond i64.
        json!(18_446_744_073_709_551_615_u64),
        json!(9_223_372_036_854_775_808_u64),
    ] {
        assert_eq!(
            check(&token_with("exp", bad.clone())),
            Err(TokenRefusal::NoExpiry),
            "{bad}"
        );
    }
    // A fraction is truncated.
    assert_eq!(
        check(&token_with("exp", json!(1_000_600.9_f64))),
        verified("acme", "ann", 1_000_600)
    );
    assert_eq!(
        check_at(
            &with_skew(0),
            &token_with("exp", json!(1_000_600.9_f64)),
            1_000_600
        ),
        Err(TokenRefusal::Expired)
    );
    assert_eq!(
        check_at(&with_skew(0), &token_with("exp", json!(-0.5_f64)), -1),
        verified("acme", "ann", 0)
    );
    assert_eq!(
        check_at(&with_skew(0), &token_with("exp", json!(-10.7_f64)), -11),
        verified("acme", "ann", -10)
    );
    // The largest float below 2^53 is still a date.
    assert_eq!(
        check(&token_with("exp", json!(9_007_199_254_740_991.0_f64))),
        verified("acme", "ann", 9_007_199_254_740_991)
    );
    // A whole number beyond 2^53 that fits an i64 is an integer, not a
    // float: it is exact.
    assert_eq!(
        check(&token_with("exp", json!(9_007_199_254_740_993_i64))),
        verified("acme", "ann", 9_007_199_254_740_993)
    );
    assert_eq!(
        check(&token_with("exp", json!(1_000_600_u64))),
        verified("acme", "ann", 1_000_600)
    );
}

#[test]
fn not_before_boundaries_with_the_skew() {
    let t = |nbf: Value| token_with("nbf", nbf);
    // Skew 30: valid from nbf - 30.
    assert_eq!(
        check_at(&with_skew(30), &t(json!(1_000_030)), 1_000_000),
        verified("acme", "ann", 1_000_600)
    );
    assert_eq!(
        check_at(&with_skew(30), &t(json!(1_000_031)), 1_000_000),
        Err(TokenRefusal::NotYetValid)
    );
    assert_eq!(
        check_at(&with_skew(30), &t(json!(1_000_000)), 1_000_000),
        verified("acme", "ann", 1_000_600)
    );
    assert_eq!(
        check_at(&with_skew(30), &t(json!(0)), 1_000_000),
        verified("acme", "ann", 1_000_600)
    );
    // Skew 0: valid from nbf.
    assert_eq!(
        check_at(&with_skew(0), &t(json!(1_000_000)), 1_000_000),
        verified("acme", "ann", 1_000_600)
    );
    assert_eq!(
        check_at(&with_skew(0), &t(json!(1_000_001)), 1_000_000),
        Err(TokenRefusal::NotYetValid)
    );
    // A fractional nbf is truncated.
    assert_eq!(
        check_at(&with_skew(0), &t(json!(1_000_000.9_f64)), 1_000_000),
        verified("acme", "ann", 1_000_600)
    );
    // nbf present but not a date: refused.
    for bad in [
        json!("1000000"),
        json!(null),
        json!(true),
        json!([1]),
        json!(1.0e16_f64),
    ] {
        assert_eq!(
            check(&t(bad.clone())),
            Err(TokenRefusal::NotYetValid),
            "{bad}"
        );
    }
    // A huge skew saturates.
    assert_eq!(
        check_at(&with_skew(u64::MAX), &t(json!(i64::MAX)), 1_000_000),
        verified("acme", "ann", 1_000_600)
    );
    assert_eq!(
        check_at(
            &with_skew(30),
            &token_with("exp", json!(i64::MAX)),
            i64::MAX - 1
        ),
        verified("acme", "ann", i64::MAX)
    );
    assert_eq!(
        check_at(
            &with_skew(30),
            &json!({"iss": ISS, "aud": AUD, "exp": i64::MAX, "nbf": i64::MAX, "tenant_id": "acme", "sub": "ann"}),
            i64::MAX - 1
        ),
        verified("acme", "ann", i64::MAX)
    );
    // Expiry is checked before nbf.
    assert_eq!(
        check_at(&with_skew(0), &t(json!(5_000_000)), 2_000_000),
        Err(TokenRefusal::Expired)
    );
}

#[test]
fn required_scopes_from_scope_and_scp() {
    let a = with_scopes(&["invoices:read", "invoices:write"]);
    let ok = verified("acme", "ann", 1_000_600);
    let with = |k: &str, v: Value| check_at(&a, &token_with(k, v), NOW);
    assert_eq!(with("scope", json!("invoices:read invoices:write")), ok);
    assert_eq!(
        with(
            "scope",
            json!("openid invoices:write profile invoices:read")
        ),
        ok
    );
    assert_eq!(
        with("scope", json!("  invoices:read   invoices:write  ")),
        ok
    );
    assert_eq!(with("scp", json!(["invoices:write", "invoices:read"])), ok);
    assert_eq!(
        with("scp", json!(["invoices:write", 7, "invoices:read"])),
        ok
    );
    assert_eq!(with("scp", json!("invoices:read  invoices:write")), ok);
    // `scope` and `scp` add up.
    let mut t = token_with("scope", json!("invoices:read"));
    t["scp"] = json!(["invoices:write"]);
    assert_eq!(check_at(&a, &t, NOW), ok);
    let mut t = token_with("scope", json!("invoices:read"));
    t["scp"] = json!("invoices:write");
    assert_eq!(check_at(&a, &t, NOW), ok);

    let missing = Err(TokenRefusal::MissingScope);
    assert_eq!(check_at(&a, &token(), NOW), missing);
    assert_eq!(with("scope", json!("invoices:read")), missing);
    assert_eq!(
        with("scope", json!("invoices:read,invoices:write")),
        missing
    );
    assert_eq!(
        with("scope", json!("invoices:read\tinvoices:write")),
        missing
    );
    assert_eq!(
        with("scope", json!("INVOICES:READ INVOICES:WRITE")),
        missing
    );
    assert_eq!(
        with("scope", json!(["invoices:read", "invoices:write"])),
        missing
    );
    assert_eq!(with("scope", json!("")), missing);
    assert_eq!(with("scp", json!(["invoices:read"])), missing);
    assert_eq!(
        with("scp", json!(["invoices:read invoices:write"])),
        missing
    );
    assert_eq!(with("scp", json!("invoices:write")), missing);
    assert_eq!(
        with(
            "scp",
            json!({"invoices:read": true, "invoices:write": true})
        ),
        missing
    );
    assert_eq!(
        with("scopes", json!("invoices:read invoices:write")),
        missing
    );

    // No required scope: any or no scope claim will do.
    assert_eq!(check(&token()), ok);
    assert_eq!(check(&token_with("scope", json!("openid"))), ok);
    assert_eq!(check(&token_with("scope", json!(5))), ok);
    assert_eq!(check(&token_with("scp", json!(5))), ok);

    // One required scope, given alone among blanks.
    let one = with_scopes(&["a"]);
    assert_eq!(check_at(&one, &token_with("scope", json!(" a ")), NOW), ok);
    assert_eq!(check_at(&one, &token_with("scp", json!(" a ")), NOW), ok);
    assert_eq!(
        check_at(&one, &token_with("scope", json!("  ")), NOW),
        missing
    );
    // Scopes are checked before the tenant.
    assert_eq!(check_at(&one, &token_without("tenant_id"), NOW), missing);
}

#[test]
fn the_tenant_claim_must_be_a_valid_context_value() {
    let ok = |t: &str| verified(t, "ann", 1_000_600);
    assert_eq!(check(&token_with("tenant_id", json!("a"))), ok("a"));
    let t128 = "t".repeat(128);
    assert_eq!(check(&token_with("tenant_id", json!(t128))), ok(&t128));
    let e128 = "é".repeat(128);
    assert_eq!(check(&token_with("tenant_id", json!(e128))), ok(&e128));
    assert_eq!(
        check(&token_with("tenant_id", json!("tenant with spaces"))),
        ok("tenant with spaces")
    );
    for bad in [
        json!("t".repeat(129)),
        json!("é".repeat(129)),
        json!(""),
        json!("ac\nme"),
        json!("acme\u{7f}"),
        json!("\u{0}"),
        json!(5),
        json!(["acme"]),
        json!(null),
        json!(true),
    ] {
        assert_eq!(
            check(&token_with("tenant_id", bad.clone())),
            Err(TokenRefusal::NoTenant),
            "{bad}"
        );
    }
    assert_eq!(
        check(&token_without("tenant_id")),
        Err(TokenRefusal::NoTenant)
    );
    // The tenant is checked before the principal.
    assert_eq!(
        check(&token_with("tenant_id", json!(5)).tap_remove("sub")),
        Err(TokenRefusal::NoTenant)
    );
}

#[test]
fn the_principal_claim_must_be_a_valid_context_value() {
    let ok = |p: &str| verified("acme", p, 1_000_600);
    assert_eq!(check(&token_with("sub", json!("a"))), ok("a"));
    let p128 = "p".repeat(128);
    assert_eq!(check(&token_with("sub", json!(p128))), ok(&p128));
    for bad in [
        json!("p".repeat(129)),
        json!(""),
        json!("an\tn"),
        json!(5),
        json!(["ann"]),
        json!(null),
    ] {
        assert_eq!(
            check(&token_with("sub", bad.clone())),
            Err(TokenRefusal::NoPrincipal),
            "{bad}"
        );
    }
    assert_eq!(check(&token_without("sub")), Err(TokenRefusal::NoPrincipal));
}

#[test]
fn custom_claim_names_are_read_instead_of_the_defaults() {
    let a = SessionAuth {
        tenant_claim: "org".into(),
        principal_claim: "email".into(),
        ..auth()
    };
    let t = json!({
        "iss": ISS,
        "aud": AUD,
        "exp": EXP,
        "org": "globex",
        "email": "hank@globex.example",
        "tenant_id": "acme",
        "sub": "ann",
    });
    assert_eq!(
        check_at(&a, &t, NOW),
        verified("globex", "hank@globex.example", 1_000_600)
    );
    assert_eq!(
        check_at(&a, &token(), NOW),
        Err(TokenRefusal::NoTenant),
        "the default names are not read"
    );
    let mut only_org = token();
    only_org["org"] = json!("globex");
    assert_eq!(check_at(&a, &only_org, NOW), Err(TokenRefusal::NoPrincipal));
}

trait TapRemove {
    fn tap_remove(self, key: &str) -> Self;
}

impl TapRemove for Value {
    fn tap_remove(mut self, key: &str) -> Self {
        self.as_object_mut().unwrap().remove(key).unwrap();
        self
    }
}

// ---------------------------------------------------------------------------
// algorithm_allowed

#[test]
fn only_listed_asymmetric_algorithms_are_allowed() {
    let a = SessionAuth {
        algorithms: vec![
            "RS256".into(),
            "ES256".into(),
            "HS256".into(),
            "none".into(),
        ],
        ..auth()
    };
    assert!(algorithm_allowed(&a, "RS256"));
    assert!(algorithm_allowed(&a, "ES256"));
    // Listed, but not asymmetric (only a hand-built value can list them).
    assert!(!algorithm_allowed(&a, "HS256"));
    assert!(!algorithm_allowed(&a, "none"));
    // Asymmetric, but not listed.
    for alg in [
        "RS384", "RS512", "PS256", "PS384", "PS512", "ES384", "EdDSA",
    ] {
        assert!(!algorithm_allowed(&a, alg), "{alg}");
    }
    // Neither.
    for alg in ["rs256", "RS256 ", "", "HS512", "ES512", "NONE"] {
        assert!(!algorithm_allowed(&a, alg), "{alg:?}");
    }
    let all = SessionAuth {
        algorithms: [
            "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
        ]
        .map(String::from)
        .to_vec(),
        ..auth()
    };
    for alg in [
        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
    ] {
        assert!(algorithm_allowed(&all, alg), "{alg}");
    }
    let none = SessionAuth {
        algorithms: vec![],
        ..auth()
    };
    assert!(!algorithm_allowed(&none, "RS256"));
}

// ---------------------------------------------------------------------------
// jwks_url_allowed

#[test]
fn jwks_urls_are_https_or_loopback_http() {
    for ok in [
        "https://identity.example/.well-known/jwks.json",
        "https://10.0.0.1/jwks",
        "https://a",
        "HTTPS://IDENTITY.EXAMPLE/JWKS",
        "https://user@identity.example/jwks",
        "http://localhost/jwks",
        "http://localhost",
        "http://localhost:8080/jwks",
        "http://LOCALHOST:8080/jwks",
        "HTTP://localhost/jwks",
        "http://localhost?x=1",
        "http://localhost#k",
        "http://127.0.0.1/jwks",
        "http://127.0.0.1:9000/jwks",
        "http://127.1.2.3/jwks",
        "http://[::1]/jwks",
        "http://[::1]:8080/jwks",
        "http://[::1]",
    ] {
        assert!(jwks_url_allowed(ok), "{ok}");
    }
    for bad in [
        "https://",
        "HTTPS://",
        "http://",
        "http://identity.example/jwks",
        "http://10.0.0.1/jwks",
        "http://0.0.0.0/jwks",
        "http://[::2]/jwks",
        "http://[::]/jwks",
        "http://localhost.evil.example/jwks",
        "http://127.0.0.1.evil.example/jwks",
        "http://evil.example/localhost",
        "http://evil.example?localhost",
        "http://user@localhost/jwks",
        "http://localhost@evil.example/jwks",
        "http://localhost:pw@evil.example/jwks",
        "http://127.0.0.1:80@evil.example/jwks",
        "http://[::1]@evil.example/jwks",
        "ftp://localhost/jwks",
        "file:///etc/jwks.json",
        "ws://localhost/jwks",
        "localhost/jwks",
        "//localhost/jwks",
        "http:/localhost/jwks",
        "",
    ] {
        assert!(!jwks_url_allowed(bad), "{bad}");
    }
}

// ---------------------------------------------------------------------------
// OAuthResource

fn resource(url: &str) -> OAuthResource {
    OAuthResource {
        resource: url.into(),
        authorization_servers: vec!["https://identity.example".into()],
        scopes_supported: vec![],
        required_scopes: vec![],
        resource_name: None,
    }
}

#[test]
fn metadata_document_without_optional_fields() {
    assert_eq!(
        resource("https://a.example/mcp").metadata(),
        json!({
            "resource": "https://a.example/mcp",
            "authorization_servers": ["https://identity.example"],
            "bearer_methods_supported": ["header"],
        })
    );
    // required_scopes are not published by themselves.
    let r = OAuthResource {
        required_scopes: vec!["invoices:read".into()],
        ..resource("https://a.example/mcp")
    };
    assert_eq!(
        r.metadata(),
        json!({
            "resource": "https://a.example/mcp",
            "authorization_servers": ["https://identity.example"],
            "bearer_methods_supported": ["header"],
        })
    );
}

#[test]
fn metadata_document_with_scopes_and_name() {
    let r = OAuthResource {
        resource: "https://a.example/mcp".into(),
        authorization_servers: vec![
            "https://identity.example".into(),
            "https://backup.example".into(),
        ],
        scopes_supported: vec!["invoices:read".into(), "invoices:write".into()],
        required_scopes: vec!["invoices:read".into()],
        resource_name: Some("Acme billing".into()),
    };
    assert_eq!(
        r.metadata(),
        json!({
            "resource": "https://a.example/mcp",
            "authorization_servers": ["https://identity.example", "https://backup.example"],
            "bearer_methods_supported": ["header"],
            "scopes_supported": ["invoices:read", "invoices:write"],
            "resource_name": "Acme billing",
        })
    );
    let only_scopes = OAuthResource {
        scopes_supported: vec!["a".into()],
        ..resource("https://a.example/mcp")
    };
    assert_eq!(
        only_scopes.metadata(),
        json!({
            "resource": "https://a.example/mcp",
            "authorization_servers": ["https://identity.example"],
            "bearer_methods_supported": ["header"],
            "scopes_supported": ["a"],
        })
    );
    let only_name = OAuthResource {
        resource_name: Some("n".into()),
        ..resource("https://a.example/mcp")
    };
    assert_eq!(
        only_name.metadata(),
        json!({
            "resource": "https://a.example/mcp",
            "authorization_servers": ["https://identity.example"],
            "bearer_methods_supported": ["header"],
            "resource_name": "n",
        })
    );
}

#[test]
fn metadata_url_inserts_the_well_known_path_after_the_origin() {
    for (url, metadata_url, metadata_path) in [
        (
            "https://a.example/mcp",
            "https://a.example/.well-known/oauth-protected-resource/mcp",
            "/.well-known/oauth-protected-resource/mcp",
        ),
        (
            "https://a.example:8443/x/mcp",
            "https://a.example:8443/.well-known/oauth-protected-resource/x/mcp",
            "/.well-known/oauth-protected-resource/x/mcp",
        ),
        (
            "https://a.example",
            "https://a.example/.well-known/oauth-protected-resource",
            "/.well-known/oauth-protected-resource",
        ),
        (
            "https://a.example/",
            "https://a.example/.well-known/oauth-protected-resource/",
            "/.well-known/oauth-protected-resource/",
        ),
        (
            "https://a/mcp",
            "https://a/.well-known/oauth-protected-resource/mcp",
            "/.well-known/oauth-protected-resource/mcp",
        ),
        (
            "http://b/x",
            "http://b/.well-known/oauth-protected-resource/x",
            "/.well-known/oauth-protected-resource/x",
        ),
        (
            "http://127.0.0.1:8080/mcp",
            "http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp",
            "/.well-known/oauth-protected-resource/mcp",
        ),
        // Without a scheme the whole text up to the first slash is the origin.
        (
            "a.example/mcp",
            "a.example/.well-known/oauth-protected-resource/mcp",
            "/.well-known/oauth-protected-resource/mcp",
        ),
    ] {
        let r = resource(url);
        assert_eq!(r.metadata_url(), metadata_url, "{url}");
        assert_eq!(r.metadata_path(), metadata_path, "{url}");
    }
}

// ---------------------------------------------------------------------------
// TokenRefusal

#[test]
fn every_refusal_has_a_code_an_oauth_error_and_its_own_message() {
    let table: [(TokenRefusal, &str, &str); 12] = [
        (TokenRefusal::Malformed, "malformed", "invalid_token"),
        (
            TokenRefusal::AlgorithmNotAllowed,
            "algorithm_not_allowed",
            "invalid_token",
        ),
        (TokenRefusal::UnknownKey, "unknown_key", "invalid_token"),
        (TokenRefusal::BadSignature, "bad_signature", "invalid_token"),
        (TokenRefusal::WrongIssuer, "wrong_issuer", "invalid_token"),
        (
            TokenRefusal::WrongAudience,
            "wrong_audience",
            "invalid_token",
        ),
        (TokenRefusal::NoExpiry, "no_expiry", "invalid_token"),
        (TokenRefusal::Expired, "expired", "invalid_token"),
        (TokenRefusal::NotYetValid, "not_yet_valid", "invalid_token"),
        (
            TokenRefusal::MissingScope,
            "missing_scope",
            "insufficient_scope",
        ),
        (TokenRefusal::NoTenant, "no_tenant", "invalid_token"),
        (TokenRefusal::NoPrincipal, "no_principal", "invalid_token"),
    ];
    let mut messages: Vec<&str> = Vec::new();
    for (refusal, code, oauth_error) in table {
        assert_eq!(refusal.code(), code, "{refusal:?}");
        assert_eq!(refusal.oauth_error(), oauth_error, "{refusal:?}");
        let m = refusal.message();
        assert!(!m.is_empty(), "{refusal:?}");
        assert!(!messages.contains(&m), "{refusal:?}: {m}");
        messages.push(m);
    }
    assert_eq!(messages.len(), 12);
}

// ---------------------------------------------------------------------------
// context.rs: a claim source is per request

#[test]
fn a_claim_source_cannot_be_resolved_from_the_environment() {
    let spec = ContextSpec {
        provider: ContextProvider::HttpClaims,
        tenant: ValueSource::Claim("tenant_id".into()),
        principal: ValueSource::Claim("sub".into()),
    };
    let err = resolve_context(&spec, |_| panic!("no environment look-up")).unwrap_err();
    assert_eq!(err, ContextError::PerRequest);
    assert_eq!(
        err.to_string(),
        "the trusted context comes from each request's verified token (`http_claims`); serve it over HTTP (`--transport http`), where every request carries one"
    );
    // A claim as the principal only, too.
    let spec = ContextSpec {
        provider: ContextProvider::HttpClaims,
        tenant: ValueSource::Static("acme".into()),
        principal: ValueSource::Claim("sub".into()),
    };
    assert_eq!(
        resolve_context(&spec, |_| None),
        Err(ContextError::PerRequest)
    );
}

// ---------------------------------------------------------------------------
// The loader

/// A small valid config with verified identities: the `http_claims`
/// context and a minimal `session_auth`.
fn base() -> Value {
    json!({
        "version": 1,
        "mode": "review",
        "sources": {
            "app": {"engine": "postgres", "read_url_env": "APP_READ_URL"}
        },
        "trusted_context": {"provider": "http_claims"},
        "session_auth": {
            "provider": "jwt_asymmetric",
            "algorithms": ["RS256"],
            "jwks_url_env": "AIRLOCK_JWKS_URL",
            "issuer": "https://identity.example",
            "audience": "https://airlock.example/mcp"
        },
        "capabilities": [{
            "name": "billing.inspect_invoice",
            "kind": "read",
            "source": "app",
            "target": {
                "schema": "public",
                "table": "invoices",
                "primary_key": "id",
                "tenant_key": "tenant_id"
            },
            "args": {
                "invoice_id": {"type": "string", "required": true, "max_length": 128}
            },
            "lookup": {"id_from_arg": "invoice_id"},
            "visible_columns": ["id", "tenant_id", "status"],
            "evidence": "required",
            "max_rows": 1
        }]
    })
}

/// `base()` with the environment context and no `session_auth`.
fn env_base() -> Value {
    let mut v = base();
    v["trusted_context"] = json!({
        "provider": "environment",
        "values": {"tenant_id_env": "APP_TENANT_ID"}
    });
    v.as_object_mut().unwrap().remove("session_auth");
    v
}

fn with(at: &str, value: Value) -> Value {
    let mut v = base();
    set(&mut v, at, value);
    v
}

fn without(at: &str) -> Value {
    let mut v = base();
    remove(&mut v, at);
    v
}

fn ok(v: &Value) -> Config {
    let loaded = load_config(v);
    assert!(!loaded.report.has_errors(), "{:#?}", loaded.report);
    assert_eq!(warnings(&loaded), Vec::<String>::new());
    loaded.config.expect("a config when there are no errors")
}

fn errors(loaded: &Loaded) -> Vec<String> {
    loaded
        .report
        .errors()
        .map(|d| format!("{} | {}", d.path, d.message))
        .collect()
}

fn warnings(loaded: &Loaded) -> Vec<String> {
    loaded
        .report
        .warnings()
        .map(|d| format!("{} | {}", d.path, d.message))
        .collect()
}

/// The config must be refused with exactly these errors (`path | message`).
fn refused(v: &Value, expected: &[&str]) -> Loaded {
    let loaded = load_config(v);
    assert!(loaded.config.is_none(), "loaded despite {expected:?}");
    assert_eq!(errors(&loaded), expected, "{v:#}");
    loaded
}

/// The fix of the only error.
fn fix(loaded: &Loaded) -> &str {
    let mut errors = loaded.report.errors();
    let first = errors.next().unwrap();
    assert!(errors.next().is_none(), "one error only");
    &first.fix
}

fn assert_claims_context(c: &ContextSpec, tenant: &str, principal: &str) {
    assert_eq!(c.provider, ContextProvider::HttpClaims);
    assert_eq!(c.tenant, ValueSource::Claim(tenant.into()));
    assert_eq!(c.principal, ValueSource::Claim(principal.into()));
}

#[test]
fn a_full_config_loads_with_every_value() {
    let text = r#"{
        "version": 1,
        "mode": "review",
        "sources": {"app": {"engine": "postgres", "read_url_env": "APP_READ_URL"}},
        "trusted_context": {"provider": "http_claims"},
        "session_auth": {
            "provider": "jwt_asymmetric",
            "algorithms": ["RS256", "ES256", "EdDSA"],
            "jwks_url_env": "IDP_JWKS_URL",
            "issuer": "https://identity.example/realms/acme",
            "audience": "https://airlock.example/mcp",
            "tenant_claim": "org_id",
            "principal_claim": "email",
            "clock_skew_seconds": 5,
            "jwks_cache_seconds": 120,
            "jwks_cooldown_seconds": 7,
            "fetch_timeout_ms": 1500,
            "max_response_bytes": 65536
        },
        "http_security": {
            "oauth_resource": {
                "resource": "https://airlock.example/mcp",
                "authorization_servers": ["https://identity.example/realms/acme"],
                "scopes_supported": ["invoices:read", "invoices:write"],
                "required_scopes": ["invoices:read"],
                "resource_name": "Acme billing"
            },
            "limits": {"principal_requests_per_minute": 120}
        },
        "capabilities": [{
            "name": "billing.inspect_invoice",
            "kind": "read",
            "source": "app",
            "target": {"schema": "public", "table": "invoices", "primary_key": "id", "tenant_key": "tenant_id"},
            "args": {"invoice_id": {"type": "string", "required": true, "max_length": 128}},
            "lookup": {"id_from_arg": "invoice_id"},
            "visible_columns": ["id", "tenant_id", "status"],
            "evidence": "required",
            "max_rows": 1
        }]
    }"#;
    let loaded = load_config_str(text);
    assert_eq!(errors(&loaded), Vec::<String>::new());
    assert_eq!(warnings(&loaded), Vec::<String>::new());
    let cfg = loaded.config.unwrap();
    assert_eq!(
        cfg.session_auth,
        Some(SessionAuth {
            algorithms: vec!["RS256".into(), "ES256".into(), "EdDSA".into()],
            jwks_url_env: "IDP_JWKS_URL".into(),
            issuer: "https://identity.example/realms/acme".into(),
            audience: "https://airlock.example/mcp".into(),
            tenant_claim: "org_id".into(),
            principal_claim: "email".into(),
            clock_skew_seconds: 5,
            jwks_cache_seconds: 120,
            jwks_cooldown_seconds: 7,
            fetch_timeout_ms: 1500,
            max_response_bytes: 65536,
            required_scopes: vec!["invoices:read".into()],
        })
    );
    assert_eq!(
        cfg.http_security,
        HttpSecurity {
            oauth_resource: Some(OAuthResource {
                resource: "https://airlock.example/mcp".into(),
                authorization_servers: vec!["https://identity.example/realms/acme".into()],
                scopes_supported: vec!["invoices:read".into(), "invoices:write".into()],
                required_scopes: vec!["invoices:read".into()],
                resource_name: Some("Acme billing".into()),
            }),
            principal_requests_per_minute: 120,
        }
    );
    assert_claims_context(&cfg.trusted_context, "org_id", "email");
    assert!(cfg.contexts.is_empty());
}

#[test]
fn defaults_when_optional_keys_are_absent() {
    let cfg = ok(&base());
    assert_eq!(
        cfg.session_auth,
        Some(SessionAuth {
            algorithms: vec!["RS256".into()],
            jwks_url_env: "AIRLOCK_JWKS_URL".into(),
            issuer: "https://identity.example".into(),
            audience: "https://airlock.example/mcp".into(),
            tenant_claim: "tenant_id".into(),
            principal_claim: "sub".into(),
            clock_skew_seconds: 30,
            jwks_cache_seconds: 600,
            jwks_cooldown_seconds: 30,
            fetch_timeout_ms: 3000,
            max_response_bytes: 1_048_576,
            required_scopes: vec![],
        })
    );
    assert_eq!(
        cfg.http_security,
        HttpSecurity {
            oauth_resource: None,
            principal_requests_per_minute: 600,
        }
    );
    assert_eq!(
        HttpSecurity::default(),
        HttpSecurity {
            oauth_resource: None,
            principal_requests_per_minute: 600,
        }
    );
    assert_claims_context(&cfg.trusted_context, "tenant_id", "sub");

    // An empty http_security, empty limits, and an oauth_resource with only
    // its required keys.
    let cfg = ok(&with("/http_security", json!({})));
    assert_eq!(cfg.http_security.principal_requests_per_minute, 600);
    assert_eq!(cfg.http_security.oauth_resource, None);
    let cfg = ok(&with("/http_security", json!({"limits": {}})));
    assert_eq!(cfg.http_security.principal_requests_per_minute, 600);
    let cfg = ok(&with(
        "/http_security",
        json!({"oauth_resource": {
            "resource": "https://airlock.example/mcp",
            "authorization_servers": ["https://identity.example"]
        }}),
    ));
    assert_eq!(
        cfg.http_security.oauth_resource,
        Some(OAuthResource {
            resource: "https://airlock.example/mcp".into(),
            authorization_servers: vec!["https://identity.example".into()],
            scopes_supported: vec![],
            required_scopes: vec![],
            resource_name: None,
        })
    );
    assert_eq!(
        cfg.session_auth.unwrap().required_scopes,
        Vec::<String>::new()
    );

    // Empty scope lists are allowed.
    let cfg = ok(&with(
        "/http_security",
        json!({"oauth_resource": {
            "resource": "https://airlock.example/mcp",
            "authorization_servers": ["https://identity.example"],
            "scopes_supported": [],
            "required_scopes": []
        }}),
    ));
    let res = cfg.http_security.oauth_resource.unwrap();
    assert_eq!(res.scopes_supported, Vec::<String>::new());
    assert_eq!(res.required_scopes, Vec::<String>::new());

    // required_scopes come from oauth_resource.
    let cfg = ok(&with(
        "/http_security",
        json!({"oauth_resource": {
            "resource": "https://airlock.example/mcp",
            "authorization_servers": ["https://identity.example"],
            "required_scopes": ["a", "b"]
        }}),
    ));
    assert_eq!(
        cfg.session_auth.unwrap().required_scopes,
        vec!["a".to_owned(), "b".to_owned()]
    );

    // Without session_auth or http_security (the environment provider).
    let cfg = ok(&env_base());
    assert_eq!(cfg.session_auth, None);
    assert_eq!(
        cfg.http_security,
        HttpSecurity {
            oauth_resource: None,
            principal_requests_per_minute: 600,
        }
    );
    // http_security.limits without any session_auth is fine.
    let mut v = env_base();
    v["http_security"] = json!({"limits": {"principal_requests_per_minute": 9}});
    assert_eq!(ok(&v).http_security.principal_requests_per_minute, 9);
}

#[test]
fn named_contexts_with_http_claims() {
    let cfg = ok(&with(
        "/contexts",
        json!({"web": {"provider": "http_claims"}, "api": {"provider": "http_claims", "values": {"tenant_id_key": "tenant_id", "principal_key": "sub"}}}),
    ));
    assert_eq!(
        cfg.contexts.keys().map(String::as_str).collect::<Vec<_>>(),
        ["api", "web"]
    );
    assert_claims_context(&cfg.contexts["web"], "tenant_id", "sub");
    assert_claims_context(&cfg.contexts["api"], "tenant_id", "sub");
}

#[test]
fn claim_keys_equal_to_session_auth_are_accepted() {
    let cfg = ok(&with(
        "/trusted_context/values",
        json!({"tenant_id_key": "tenant_id", "principal_key": "sub"}),
    ));
    assert_claims_context(&cfg.trusted_context, "tenant_id", "sub");
    let cfg = ok(&with(
        "/trusted_context/values",
        json!({"tenant_id_key": "tenant_id"}),
    ));
    assert_claims_context(&cfg.trusted_context, "tenant_id", "sub");
    let cfg = ok(&with(
        "/trusted_context/values",
        json!({"principal_key": "sub"}),
    ));
    assert_claims_context(&cfg.trusted_context, "tenant_id", "sub");
    let cfg = ok(&with("/trusted_context/values", json!({})));
    assert_claims_context(&cfg.trusted_context, "tenant_id", "sub");

    let mut v = base();
    v["session_auth"]["tenant_claim"] = json!("org");
    v["session_auth"]["principal_claim"] = json!("email");
    v["trusted_context"]["values"] = json!({"tenant_id_key": "org", "principal_key": "email"});
    assert_claims_context(&ok(&v).trusted_context, "org", "email");
}

#[test]
fn claim_keys_other_than_session_auth_are_refused() {
    let l = refused(
        &with("/trusted_context/values", json!({"tenant_id_key": "org"})),
        &[
            "$.trusted_context.values.tenant_id_key | `tenant_id_key` names another claim than `session_auth.tenant_claim`",
        ],
    );
    assert_eq!(
        fix(&l),
        "remove `tenant_id_key` (session_auth.tenant_claim decides) or make them equal"
    );
    let l = refused(
        &with("/trusted_context/values", json!({"principal_key": "email"})),
        &[
            "$.trusted_context.values.principal_key | `principal_key` names another claim than `session_auth.principal_claim`",
        ],
    );
    assert_eq!(
        fix(&l),
        "remove `principal_key` (session_auth.principal_claim decides) or make them equal"
    );
    refused(
        &with(
            "/trusted_context/values",
            json!({"tenant_id_key": "sub", "principal_key": "tenant_id"}),
        ),
        &[
            "$.trusted_context.values.tenant_id_key | `tenant_id_key` names another claim than `session_auth.tenant_claim`",
            "$.trusted_context.values.principal_key | `principal_key` names another claim than `session_auth.principal_claim`",
        ],
    );
    // A custom claim name in session_auth: the default no longer matches.
    let mut v = base();
    v["session_auth"]["tenant_claim"] = json!("org");
    v["trusted_context"]["values"] = json!({"tenant_id_key": "tenant_id"});
    refused(
        &v,
        &[
            "$.trusted_context.values.tenant_id_key | `tenant_id_key` names another claim than `session_auth.tenant_claim`",
        ],
    );
    refused(
        &with("/trusted_context/values", json!({"tenant_id_key": 5})),
        &["$.trusted_context.values.tenant_id_key | expected a string, found a number"],
    );
    refused(
        &with(
            "/trusted_context/values",
            json!({"tenant_id_key": "TENANT_ID"}),
        ),
        &[
            "$.trusted_context.values.tenant_id_key | `tenant_id_key` names another claim than `session_auth.tenant_claim`",
        ],
    );
    // In a named context, too.
    refused(
        &with(
            "/contexts",
            json!({"web": {"provider": "http_claims", "values": {"principal_key": "email"}}}),
        ),
        &[
            "$.contexts.web.values.principal_key | `principal_key` names another claim than `session_auth.principal_claim`",
        ],
    );
}

#[test]
fn http_claims_refuses_environment_and_literal_values() {
    for key in ["tenant_id", "principal", "tenant_id_env", "principal_env"] {
        let value = if key.ends_with("_env") {
            json!("APP_X")
        } else {
            json!("acme")
        };
        let l = refused(
            &with("/trusted_context/values", json!({key: value})),
            &[&format!(
                "$.trusted_context.values.{key} | `{key}` does not apply to the http_claims provider (the tenant and principal are the verified token's claims)"
            )],
        );
        assert_eq!(fix(&l), format!("remove `{key}`"));
    }
}

#[test]
fn claim_keys_under_other_providers_are_refused() {
    for key in ["tenant_id_key", "principal_key"] {
        let mut v = env_base();
        v["trusted_context"]["values"][key] = json!("tenant_id");
        let l = refused(
            &v,
            &[&format!(
                "$.trusted_context.values.{key} | `{key}` does not apply to this provider (they name claims of a verified token, for \"http_claims\")"
            )],
        );
        assert_eq!(fix(&l), format!("remove `{key}`"));
        let mut v = env_base();
        v["trusted_context"] = json!({
            "provider": "static_dev",
            "values": {"tenant_id": "acme", key: "sub"}
        });
        refused(
            &v,
            &[&format!(
                "$.trusted_context.values.{key} | `{key}` does not apply to this provider (they name claims of a verified token, for \"http_claims\")"
            )],
        );
    }
}

#[test]
fn http_claims_needs_session_auth() {
    let l = refused(
        &without("/session_auth"),
        &[
            "$.trusted_context.provider | `http_claims` takes the tenant and principal from verified tokens, but there is no `session_auth`",
        ],
    );
    assert!(fix(&l).starts_with("add \"session_auth\": {\"provider\": \"jwt_asymmetric\""));
    // A named http_claims context without session_auth, beside an
    // environment trusted_context: the missing session_auth and the mix.
    let mut v = env_base();
    v["contexts"] = json!({"web": {"provider": "http_claims"}});
    refused(
        &v,
        &[
            "$.contexts.web.provider | `http_claims` takes the tenant and principal from verified tokens, but there is no `session_auth`",
        ],
    );
    // session_auth present but wrong: only its own error, not "no session_auth".
    refused(
        &with("/session_auth/provider", json!("jwt_hs256")),
        &[
            "$.session_auth.provider | `jwt_hs256` is not supported: with a shared secret the proposer could sign tokens for any tenant",
        ],
    );
    refused(
        &with("/session_auth", json!("yes")),
        &["$.session_auth | expected an object, found a string"],
    );
    let mut v = with("/session_auth/algorithms", json!([]));
    v["contexts"] = json!({"web": {"provider": "http_claims"}});
    refused(
        &v,
        &["$.session_auth.algorithms | must allow at least one algorithm"],
    );
    // The unknown provider is reported with the new choice among the fixes.
    let l = refused(
        &with("/trusted_context/provider", json!("jwt")),
        &[
            "$.trusted_context.provider | trusted-context provider `jwt` is not supported by Airlock",
        ],
    );
    assert_eq!(
        fix(&l),
        "use \"environment\" (values from the proposer's environment), \"http_claims\" (verified tokens on HTTP) or \"static_dev\" for local development"
    );
}

#[test]
fn session_auth_needs_the_http_claims_context() {
    let mut v = base();
    v["trusted_context"] = json!({
        "provider": "environment",
        "values": {"tenant_id_env": "APP_TENANT_ID"}
    });
    let l = refused(
        &v,
        &[
            "$.session_auth | `session_auth` verifies tokens whose claims name the tenant, but `trusted_context` does not take them",
        ],
    );
    assert_eq!(
        fix(&l),
        "set `trusted_context.provider` to \"http_claims\", or remove `session_auth`"
    );
    let mut v = base();
    v["trusted_context"] = json!({"provider": "static_dev", "values": {"tenant_id": "acme"}});
    let l = refused(
        &v,
        &[
            "$.session_auth | `session_auth` verifies tokens whose claims name the tenant, but `trusted_context` does not take them",
        ],
    );
    assert_eq!(
        warnings(&l),
        [
            "$.trusted_context.provider | static_dev fixes the tenant in the config file; use it for local development only"
        ]
    );
}

#[test]
fn every_context_takes_the_tenant_from_the_token_or_none_does() {
    let env_ctx = json!({"provider": "environment", "values": {"tenant_id_env": "OPS_TENANT"}});
    let l = refused(
        &with("/contexts", json!({"ops": env_ctx.clone()})),
        &[
            "$.contexts.ops.provider | every trusted context takes the tenant from the verified token, or none does",
        ],
    );
    assert_eq!(
        fix(&l),
        "use the same provider as `trusted_context` (\"http_claims\" everywhere, or no \"http_claims\" at all)"
    );
    // The other way round: an environment trusted_context and a claims one.
    let mut v = base();
    v["trusted_context"] = env_ctx.clone();
    v["contexts"] = json!({"web": {"provider": "http_claims"}});
    refused(
        &v,
        &[
            "$.contexts.web.provider | every trusted context takes the tenant from the verified token, or none does",
            "$.session_auth | `session_auth` verifies tokens whose claims name the tenant, but `trusted_context` does not take them",
        ],
    );
    // Several named contexts: each mismatching one, by name.
    refused(
        &with(
            "/contexts",
            json!({
                "a": {"provider": "http_claims"},
                "b": env_ctx,
                "c": {"provider": "static_dev", "values": {"tenant_id": "acme"}}
            }),
        ),
        &[
            "$.contexts.b.provider | every trusted context takes the tenant from the verified token, or none does",
            "$.contexts.c.provider | every trusted context takes the tenant from the verified token, or none does",
        ],
    );
    // Environment and static_dev mix freely without claims.
    let mut v = env_base();
    v["contexts"] = json!({"dev": {"provider": "static_dev", "values": {"tenant_id": "acme"}}});
    let l = load_config(&v);
    assert_eq!(errors(&l), Vec::<String>::new());
    assert!(l.config.is_some());
}

#[test]
fn the_protected_resource_is_the_audience() {
    let l = refused(
        &with(
            "/http_security",
            json!({"oauth_resource": {
                "resource": "https://airlock.example/mcp/",
                "authorization_servers": ["https://identity.example"]
            }}),
        ),
        &[
            "$.http_security.oauth_resource.resource | the protected resource must be exactly `session_auth.audience`",
        ],
    );
    assert_eq!(
        fix(&l),
        "write the same URL in both: the MCP endpoint tokens are issued for"
    );
    refused(
        &with(
            "/http_security",
            json!({"oauth_resource": {
                "resource": "HTTPS://AIRLOCK.EXAMPLE/MCP",
                "authorization_servers": ["https://identity.example"]
            }}),
        ),
        &[
            "$.http_security.oauth_resource.resource | the protected resource must be exactly `session_auth.audience`",
        ],
    );
    // Equal in any case the loader accepts.
    let mut v = with(
        "/http_security",
        json!({"oauth_resource": {
            "resource": "HTTPS://AIRLOCK.EXAMPLE/MCP",
            "authorization_servers": ["https://identity.example"]
        }}),
    );
    v["session_auth"]["audience"] = json!("HTTPS://AIRLOCK.EXAMPLE/MCP");
    assert_eq!(
        ok(&v).http_security.oauth_resource.unwrap().resource,
        "HTTPS://AIRLOCK.EXAMPLE/MCP"
    );
}

#[test]
fn oauth_resource_needs_session_auth() {
    let mut v = env_base();
    v["http_security"] = json!({"oauth_resource": {
        "resource": "https://airlock.example/mcp",
        "authorization_servers": ["https://identity.example"]
    }});
    let l = refused(
        &v,
        &[
            "$.http_security.oauth_resource | protected-resource metadata tells clients where to get tokens, but no `session_auth` verifies them",
        ],
    );
    assert_eq!(fix(&l), "add `session_auth`, or remove `oauth_resource`");
    // session_auth present but wrong: only its own errors.
    let mut v = with(
        "/http_security",
        json!({"oauth_resource": {
            "resource": "https://elsewhere.example/mcp",
            "authorization_servers": ["https://identity.example"]
        }}),
    );
    v["session_auth"]["provider"] = json!("vault");
    refused(&v, &["$.session_auth.provider | unknown provider `vault`"]);
}

#[test]
fn session_auth_provider_refusals() {
    let l = refused(
        &with("/session_auth/provider", json!("jwt_hs256")),
        &[
            "$.session_auth.provider | `jwt_hs256` is not supported: with a shared secret the proposer could sign tokens for any tenant",
        ],
    );
    assert_eq!(
        fix(&l),
        "use \"jwt_asymmetric\": your identity provider signs, Airlock only verifies against its public keys"
    );
    let l = refused(
        &with("/session_auth/provider", json!("oidc\n")),
        &["$.session_auth.provider | unknown provider `oidc\\n`"],
    );
    assert_eq!(fix(&l), "use \"jwt_asymmetric\"");
    refused(
        &with("/session_auth/provider", json!("JWT_ASYMMETRIC")),
        &["$.session_auth.provider | unknown provider `JWT_ASYMMETRIC`"],
    );
    let l = refused(
        &without("/session_auth/provider"),
        &["$.session_auth.provider | missing required field `provider`"],
    );
    assert!(fix(&l).starts_with("add \"provider\": \"jwt_asymmetric\""));
    refused(
        &with("/session_auth/provider", json!(1)),
        &["$.session_auth.provider | expected a string, found a number"],
    );
    refused(
        &with("/session_auth/provider", json!("")),
        &["$.session_auth.provider | must not be empty"],
    );
    refused(
        &with("/session_auth/kid", json!("k1")),
        &["$.session_auth.kid | unknown field `kid`"],
    );
}

#[test]
fn shared_secrets_and_static_keys_are_refused_by_name() {
    for key in ["secret_env", "previous_secret_env"] {
        let l = refused(
            &with(&format!("/session_auth/{key}"), json!("AIRLOCK_JWT_SECRET")),
            &[&format!(
                "$.session_auth.{key} | `{key}` is a shared signing secret, which Airlock never holds"
            )],
        );
        assert_eq!(
            fix(&l),
            "remove it and use \"provider\": \"jwt_asymmetric\" with \"jwks_url_env\""
        );
    }
    for key in ["public_key_env", "public_key_path"] {
        let l = refused(
            &with(&format!("/session_auth/{key}"), json!("AIRLOCK_JWT_KEY")),
            &[&format!(
                "$.session_auth.{key} | `{key}` is not supported by Airlock"
            )],
        );
        assert_eq!(
            fix(&l),
            "publish the public key as a JWKS and name its URL's variable in \"jwks_url_env\""
        );
    }
    // Runner's HS256 shape: every part reported at once.
    let mut v = base();
    v["session_auth"] = json!({
        "provider": "jwt_hs256",
        "algorithms": ["HS256"],
        "secret_env": "S",
        "previous_secret_env": "P",
        "issuer": "https://identity.example",
        "audience": "https://airlock.example/mcp"
    });
    refused(
        &v,
        &[
            "$.session_auth.provider | `jwt_hs256` is not supported: with a shared secret the proposer could sign tokens for any tenant",
            "$.session_auth.secret_env | `secret_env` is a shared signing secret, which Airlock never holds",
            "$.session_auth.previous_secret_env | `previous_secret_env` is a shared signing secret, which Airlock never holds",
            "$.session_auth.algorithms[0] | `HS256` is symmetric: whoever verifies could also sign",
            "$.session_auth.jwks_url_env | missing required field `jwks_url_env`",
        ],
    );
}

#[test]
fn algorithm_refusals() {
    let l = refused(
        &without("/session_auth/algorithms"),
        &["$.session_auth.algorithms | missing required field `algorithms`"],
    );
    assert_eq!(
        fix(&l),
        "add \"algorithms\": the signature algorithms your issuer uses, e.g. [\"RS256\"]"
    );
    let l = refused(
        &with("/session_auth/algorithms", json!([])),
        &["$.session_auth.algorithms | must allow at least one algorithm"],
    );
    assert_eq!(fix(&l), "list your issuer's, e.g. [\"RS256\"]");
    refused(
        &with("/session_auth/algorithms", json!("RS256")),
        &["$.session_auth.algorithms | expected an array, found a string"],
    );
    let asym =
        "use asymmetric algorithms: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA";
    let l = refused(
        &with("/session_auth/algorithms", json!(["none"])),
        &["$.session_auth.algorithms[0] | an unsigned token proves nothing"],
    );
    assert_eq!(fix(&l), asym);
    refused(
        &with("/session_auth/algorithms", json!(["RS256", "NoNe"])),
        &["$.session_auth.algorithms[1] | an unsigned token proves nothing"],
    );
    let l = refused(
        &with("/session_auth/algorithms", json!(["HS256"])),
        &["$.session_auth.algorithms[0] | `HS256` is symmetric: whoever verifies could also sign"],
    );
    assert_eq!(fix(&l), asym);
    refused(
        &with("/session_auth/algorithms", json!(["hs512"])),
        &["$.session_auth.algorithms[0] | `hs512` is symmetric: whoever verifies could also sign"],
    );
    let l = refused(
        &with("/session_auth/algorithms", json!(["ES512"])),
        &["$.session_auth.algorithms[0] | `ES512` is not a JWS algorithm Airlock verifies"],
    );
    assert_eq!(fix(&l), asym);
    refused(
        &with("/session_auth/algorithms", json!(["rs256"])),
        &["$.session_auth.algorithms[0] | `rs256` is not a JWS algorithm Airlock verifies"],
    );
    refused(
        &with("/session_auth/algorithms", json!(["R\"S"])),
        &["$.session_auth.algorithms[0] | `R\\\"S` is not a JWS algorithm Airlock verifies"],
    );
    let l = refused(
        &with(
            "/session_auth/algorithms",
            json!(["RS256", "ES256", "RS256"]),
        ),
        &["$.session_auth.algorithms[2] | `RS256` is listed twice"],
    );
    assert_eq!(fix(&l), "list each algorithm once");
    let l = refused(
        &with("/session_auth/algorithms", json!(["RS256", 256])),
        &["$.session_auth.algorithms[1] | expected an algorithm name, found a number"],
    );
    assert_eq!(fix(&l), "write it as a string, e.g. \"RS256\"");
    refused(
        &with("/session_auth/algorithms", json!([null])),
        &["$.session_auth.algorithms[0] | expected an algorithm name, found null"],
    );
    // Every refusal of the list at once.
    refused(
        &with(
            "/session_auth/algorithms",
            json!(["none", "HS384", "X", "PS256", "PS256", true]),
        ),
        &[
            "$.session_auth.algorithms[0] | an unsigned token proves nothing",
            "$.session_auth.algorithms[1] | `HS384` is symmetric: whoever verifies could also sign",
            "$.session_auth.algorithms[2] | `X` is not a JWS algorithm Airlock verifies",
            "$.session_auth.algorithms[4] | `PS256` is listed twice",
            "$.session_auth.algorithms[5] | expected an algorithm name, found a boolean",
        ],
    );
    // Every asymmetric algorithm is accepted, in the order given.
    let cfg = ok(&with(
        "/session_auth/algorithms",
        json!([
            "EdDSA", "ES384", "ES256", "PS512", "PS384", "PS256", "RS512", "RS384", "RS256"
        ]),
    ));
    assert_eq!(
        cfg.session_auth.unwrap().algorithms,
        [
            "EdDSA", "ES384", "ES256", "PS512", "PS384", "PS256", "RS512", "RS384", "RS256"
        ]
    );
}

#[test]
fn required_session_auth_strings() {
    let l = refused(
        &without("/session_auth/jwks_url_env"),
        &["$.session_auth.jwks_url_env | missing required field `jwks_url_env`"],
    );
    assert_eq!(
        fix(&l),
        "add \"jwks_url_env\": the variable holding the issuer's JWKS URL, e.g. AIRLOCK_JWKS_URL"
    );
    refused(
        &with("/session_auth/jwks_url_env", json!("airlock_jwks_url")),
        &[
            "$.session_auth.jwks_url_env | `airlock_jwks_url` is not a valid environment variable name",
        ],
    );
    refused(
        &with("/session_auth/jwks_url_env", json!(7)),
        &["$.session_auth.jwks_url_env | expected a string, found a number"],
    );
    let l = refused(
        &without("/session_auth/issuer"),
        &["$.session_auth.issuer | missing required field `issuer`"],
    );
    assert_eq!(
        fix(&l),
        "add \"issuer\": the exact `iss` your identity provider writes, e.g. \"https://identity.example\""
    );
    refused(
        &with("/session_auth/issuer", json!("")),
        &["$.session_auth.issuer | must not be empty"],
    );
    let l = refused(
        &without("/session_auth/audience"),
        &["$.session_auth.audience | missing required field `audience`"],
    );
    assert_eq!(
        fix(&l),
        "add \"audience\": this MCP endpoint's URL, the `aud` tokens are issued for"
    );
    refused(
        &with(
            "/session_auth/audience",
            json!(["https://airlock.example/mcp"]),
        ),
        &["$.session_auth.audience | expected a string, found an array"],
    );
    // All three missing: all three reported, and no second report about
    // the http_claims context.
    let mut v = base();
    v["session_auth"] = json!({"provider": "jwt_asymmetric", "algorithms": ["RS256"]});
    refused(
        &v,
        &[
            "$.session_auth.jwks_url_env | missing required field `jwks_url_env`",
            "$.session_auth.issuer | missing required field `issuer`",
            "$.session_auth.audience | missing required field `audience`",
        ],
    );
}

#[test]
fn integer_settings_are_bounded_inclusively() {
    for (key, min, max, default) in [
        ("clock_skew_seconds", 0_u64, 300_u64, 30_u64),
        ("jwks_cache_seconds", 10, 86_400, 600),
        ("jwks_cooldown_seconds", 1, 3_600, 30),
        ("fetch_timeout_ms", 100, 30_000, 3_000),
        ("max_response_bytes", 1_024, 16_777_216, 1_048_576),
    ] {
        let get = |a: &SessionAuth| match key {
            "clock_skew_seconds" => a.clock_skew_seconds,
            "jwks_cache_seconds" => a.jwks_cache_seconds,
            "jwks_cooldown_seconds" => a.jwks_cooldown_seconds,
            "fetch_timeout_ms" => a.fetch_timeout_ms,
            "max_response_bytes" => a.max_response_bytes,
            _ => unreachable!(),
        };
        let at = format!("/session_auth/{key}");
        assert_eq!(get(&ok(&base()).session_auth.unwrap()), default, "{key}");
        for n in [min, max] {
            let cfg = ok(&with(&at, json!(n)));
            assert_eq!(get(&cfg.session_auth.unwrap()), n, "{key}");
        }
        let below = if min == 0 { json!(-1) } else { json!(min - 1) };
        for bad in [below, json!(max + 1)] {
            let l = refused(
                &with(&at, bad.clone()),
                &[&format!(
                    "$.session_auth.{key} | expected a whole number from {min} to {max}, found {bad}"
                )],
            );
            assert_eq!(
                fix(&l),
                format!("write a whole number between {min} and {max}")
            );
        }
        refused(
            &with(&at, json!("30")),
            &[&format!(
                "$.session_auth.{key} | expected a whole number from {min} to {max}, found \"30\""
            )],
        );
        refused(
            &with(&at, json!(min as f64 + 0.5)),
            &[&format!(
                "$.session_auth.{key} | expected a whole number from {min} to {max}, found {}",
                min as f64 + 0.5
            )],
        );
    }
    // The literal bounds, written out once more.
    refused(
        &with("/session_auth/clock_skew_seconds", json!(301)),
        &["$.session_auth.clock_skew_seconds | expected a whole number from 0 to 300, found 301"],
    );
    refused(
        &with("/session_auth/jwks_cache_seconds", json!(9)),
        &["$.session_auth.jwks_cache_seconds | expected a whole number from 10 to 86400, found 9"],
    );
    refused(
        &with("/session_auth/jwks_cooldown_seconds", json!(0)),
        &["$.session_auth.jwks_cooldown_seconds | expected a whole number from 1 to 3600, found 0"],
    );
    refused(
        &with("/session_auth/fetch_timeout_ms", json!(30_001)),
        &[
            "$.session_auth.fetch_timeout_ms | expected a whole number from 100 to 30000, found 30001",
        ],
    );
    refused(
        &with("/session_auth/max_response_bytes", json!(1_023)),
        &[
            "$.session_auth.max_response_bytes | expected a whole number from 1024 to 16777216, found 1023",
        ],
    );
}

#[test]
fn claim_names() {
    for key in ["tenant_claim", "principal_claim"] {
        let at = format!("/session_auth/{key}");
        let name64 = "c".repeat(64);
        let cfg = ok(&with(&at, json!(name64)));
        let auth = cfg.session_auth.unwrap();
        let got = if key == "tenant_claim" {
            &auth.tenant_claim
        } else {
            &auth.principal_claim
        };
        assert_eq!(got, &name64);
        // 64 characters, not bytes.
        let wide64 = "é".repeat(64);
        let cfg = ok(&with(&at, json!(wide64)));
        let auth = cfg.session_auth.unwrap();
        let got = if key == "tenant_claim" {
            &auth.tenant_claim
        } else {
            &auth.principal_claim
        };
        assert_eq!(got, &wide64);
        let default = if key == "tenant_claim" {
            "tenant_id"
        } else {
            "sub"
        };
        for bad in [
            "c".repeat(65),
            "é".repeat(65),
            "ten\nant".to_owned(),
            "\u{7f}".to_owned(),
        ] {
            let l = refused(
                &with(&at, json!(bad)),
                &[&format!(
                    "$.session_auth.{key} | a claim name must be at most 64 characters with no control characters"
                )],
            );
            assert_eq!(
                fix(&l),
                format!("write the claim's name, e.g. \"{default}\"")
            );
        }
        refused(
            &with(&at, json!("")),
            &[&format!("$.session_auth.{key} | must not be empty")],
        );
        refused(
            &with(&at, json!(5)),
            &[&format!(
                "$.session_auth.{key} | expected a string, found a number"
            )],
        );
    }
    // Names with spaces, dots and URLs are claim names too.
    let mut v = base();
    v["session_auth"]["tenant_claim"] = json!("https://acme.example/claims/tenant");
    v["session_auth"]["principal_claim"] = json!("preferred username");
    let cfg = ok(&v);
    assert_claims_context(
        &cfg.trusted_context,
        "https://acme.example/claims/tenant",
        "preferred username",
    );
}

#[test]
fn http_security_refuses_runner_settings_by_name() {
    for (key, value, instead) in [
        (
            "deployment",
            json!("public"),
            "Airlock decides by the listener: off loopback it needs a bearer token or session_auth",
        ),
        (
            "channel",
            json!({"tls": true}),
            "terminate TLS in a reverse proxy in front of the proposer",
        ),
        (
            "static_token",
            json!({"token_env": "AIRLOCK_TOKEN"}),
            "give the token with `airlock-proposer --auth-token-env` (and `--previous-auth-token-env` while rotating)",
        ),
        (
            "allowed_origins",
            json!(["https://app.example"]),
            "the proposer accepts browser requests only from local pages",
        ),
        (
            "allowed_hosts",
            json!(["airlock.example"]),
            "the proposer checks the Host header itself (loopback names)",
        ),
    ] {
        let l = refused(
            &with("/http_security", json!({key: value})),
            &[&format!(
                "$.http_security.{key} | `http_security.{key}` is not supported by Airlock"
            )],
        );
        assert_eq!(fix(&l), format!("remove it; {instead}"));
    }
    refused(
        &with("/http_security", json!({"cors": true})),
        &["$.http_security.cors | unknown field `cors`"],
    );
    refused(
        &with("/http_security", json!("strict")),
        &["$.http_security | expected an object, found a string"],
    );
}

#[test]
fn limits() {
    for n in [1_u64, 600, 1_000_000] {
        let cfg = ok(&with(
            "/http_security",
            json!({"limits": {"principal_requests_per_minute": n}}),
        ));
        assert_eq!(
            u64::from(cfg.http_security.principal_requests_per_minute),
            n
        );
    }
    for bad in [
        json!(0),
        json!(1_000_001),
        json!(-1),
        json!("60"),
        json!(1.5),
    ] {
        let l = refused(
            &with(
                "/http_security",
                json!({"limits": {"principal_requests_per_minute": bad.clone()}}),
            ),
            &[&format!(
                "$.http_security.limits.principal_requests_per_minute | expected a whole number from 1 to 1000000, found {bad}"
            )],
        );
        assert_eq!(fix(&l), "write a whole number between 1 and 1000000");
    }
    let l = refused(
        &with(
            "/http_security",
            json!({"limits": {"max_body_bytes": 1024}}),
        ),
        &[
            "$.http_security.limits.max_body_bytes | `http_security.limits.max_body_bytes` is not supported by Airlock",
        ],
    );
    assert_eq!(
        fix(&l),
        "remove it; the only limit is \"principal_requests_per_minute\" (request bodies are capped at 1 MiB)"
    );
    refused(
        &with(
            "/http_security",
            json!({"limits": {"principal_requests_per_minute": 5, "a\"b": 1, "requests_per_minute": 2}}),
        ),
        &[
            "$.http_security.limits[\"a\\\"b\"] | `http_security.limits.a\\\"b` is not supported by Airlock",
            "$.http_security.limits.requests_per_minute | `http_security.limits.requests_per_minute` is not supported by Airlock",
        ],
    );
    refused(
        &with("/http_security", json!({"limits": 60})),
        &["$.http_security.limits | expected an object, found a number"],
    );
}

fn with_resource(res: Value) -> Value {
    with("/http_security", json!({"oauth_resource": res}))
}

#[test]
fn oauth_resource_refusals() {
    let servers = json!(["https://identity.example"]);
    let l = refused(
        &with_resource(json!({"authorization_servers": servers})),
        &["$.http_security.oauth_resource.resource | missing required field `resource`"],
    );
    assert_eq!(
        fix(&l),
        "add \"resource\": this MCP endpoint's exact URL, e.g. \"https://airlock.example/mcp\""
    );
    for bad in [
        "airlock.example/mcp",
        "ftp://airlock.example/mcp",
        "https://",
        "http://",
        "https://airlock.example/m cp",
        "https://airlock.example/mcp\u{1}",
        "https://airlock.example/mcp\n",
        "https:/airlock.example/mcp",
    ] {
        let l = refused(
            &with_resource(json!({"resource": bad, "authorization_servers": servers})),
            &[&format!(
                "$.http_security.oauth_resource.resource | `{}` is not an http(s) URL",
                bad.escape_debug()
            )],
        );
        assert_eq!(
            fix(&l),
            "write the endpoint's URL, e.g. \"https://airlock.example/mcp\""
        );
    }
    refused(
        &with_resource(json!({"resource": 5, "authorization_servers": servers})),
        &["$.http_security.oauth_resource.resource | expected a string, found a number"],
    );
    // http and a short host are URLs (equal to the audience, they load).
    for good in ["http://a", "https://a", "Https://Airlock.Example/mcp"] {
        let mut v = with_resource(json!({"resource": good, "authorization_servers": servers}));
        v["session_auth"]["audience"] = json!(good);
        assert_eq!(ok(&v).http_security.oauth_resource.unwrap().resource, good);
    }

    let l = refused(
        &with_resource(json!({"resource": AUD})),
        &[
            "$.http_security.oauth_resource.authorization_servers | missing required field `authorization_servers`",
        ],
    );
    assert_eq!(
        fix(&l),
        "add \"authorization_servers\": [the issuer that grants tokens for this resource]"
    );
    let l = refused(
        &with_resource(json!({"resource": AUD, "authorization_servers": []})),
        &["$.http_security.oauth_resource.authorization_servers | must list at least one"],
    );
    assert_eq!(fix(&l), "add an entry");
    refused(
        &with_resource(
            json!({"resource": AUD, "authorization_servers": "https://identity.example"}),
        ),
        &[
            "$.http_security.oauth_resource.authorization_servers | expected an array, found a string",
        ],
    );
    let l = refused(
        &with_resource(
            json!({"resource": AUD, "authorization_servers": ["https://identity.example", "https://id example"]}),
        ),
        &[
            "$.http_security.oauth_resource.authorization_servers[1] | expected a non-empty string without spaces, found \"https://id example\"",
        ],
    );
    assert_eq!(fix(&l), "write each entry as a string");
    for bad in [
        json!(""),
        json!(7),
        json!("a\u{1}b"),
        json!("a\tb"),
        json!(null),
    ] {
        refused(
            &with_resource(json!({"resource": AUD, "authorization_servers": [bad.clone()]})),
            &[&format!(
                "$.http_security.oauth_resource.authorization_servers[0] | expected a non-empty string without spaces, found {bad}"
            )],
        );
    }
    // Only the first bad entry of a list is reported.
    refused(
        &with_resource(json!({"resource": AUD, "authorization_servers": ["a b", "c d"]})),
        &[
            "$.http_security.oauth_resource.authorization_servers[0] | expected a non-empty string without spaces, found \"a b\"",
        ],
    );
    // A long entry is shortened in the message.
    refused(
        &with_resource(
            json!({"resource": AUD, "authorization_servers": [format!("{} x", "a".repeat(50))]}),
        ),
        &[&format!(
            "$.http_security.oauth_resource.authorization_servers[0] | expected a non-empty string without spaces, found \"{}…",
            "a".repeat(39)
        )],
    );

    for key in ["scopes_supported", "required_scopes"] {
        refused(
            &with_resource(json!({"resource": AUD, "authorization_servers": servers, key: "a b"})),
            &[&format!(
                "$.http_security.oauth_resource.{key} | expected an array, found a string"
            )],
        );
        refused(
            &with_resource(
                json!({"resource": AUD, "authorization_servers": servers, key: ["a", "b c"]}),
            ),
            &[&format!(
                "$.http_security.oauth_resource.{key}[1] | expected a non-empty string without spaces, found \"b c\""
            )],
        );
        refused(
            &with_resource(json!({"resource": AUD, "authorization_servers": servers, key: [""]})),
            &[&format!(
                "$.http_security.oauth_resource.{key}[0] | expected a non-empty string without spaces, found \"\""
            )],
        );
    }
    refused(
        &with_resource(
            json!({"resource": AUD, "authorization_servers": servers, "resource_name": 5}),
        ),
        &["$.http_security.oauth_resource.resource_name | expected a string, found a number"],
    );
    refused(
        &with_resource(
            json!({"resource": AUD, "authorization_servers": servers, "resource_name": ""}),
        ),
        &["$.http_security.oauth_resource.resource_name | must not be empty"],
    );
    refused(
        &with_resource(json!({"resource": AUD, "authorization_servers": servers, "jwks_uri": "x"})),
        &["$.http_security.oauth_resource.jwks_uri | unknown field `jwks_uri`"],
    );
    refused(
        &with_resource(json!([AUD])),
        &["$.http_security.oauth_resource | expected an object, found an array"],
    );
    // Everything wrong at once: every error, and no mismatch with the
    // audience reported on top.
    refused(
        &with_resource(
            json!({"resource": "x", "authorization_servers": [], "scopes_supported": [1]}),
        ),
        &[
            "$.http_security.oauth_resource.resource | `x` is not an http(s) URL",
            "$.http_security.oauth_resource.authorization_servers | must list at least one",
            "$.http_security.oauth_resource.scopes_supported[0] | expected a non-empty string without spaces, found 1",
        ],
    );
}
