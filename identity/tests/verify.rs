//! The verifier against a real local JWKS issuer (a TCP server on
//! loopback serving the fixtures' public keys): signatures, algorithms,
//! key choice, the key cache, and the bounded, redirect-free fetch.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use airlock_identity::{JwksError, KeySet, Verifier, VerifyError};
use airlock_policy::session_auth::{SessionAuth, TokenRefusal};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/jwt");
const ISSUER: &str = "https://identity.test";
const AUDIENCE: &str = "https://airlock.test/mcp";
const NOW: i64 = 1_800_000_000;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{name}")).unwrap()
}

fn auth(algorithms: &[&str]) -> SessionAuth {
    SessionAuth {
        algorithms: algorithms.iter().map(|a| (*a).to_owned()).collect(),
        jwks_url_env: "JWKS_URL".into(),
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        tenant_claim: "tenant_id".into(),
        principal_claim: "sub".into(),
        clock_skew_seconds: 30,
        jwks_cache_seconds: 600,
        jwks_cooldown_seconds: 1,
        fetch_timeout_ms: 2_000,
        max_response_bytes: 64 * 1024,
        required_scopes: Vec::new(),
    }
}

fn claims() -> Value {
    json!({"iss": ISSUER, "aud": AUDIENCE, "exp": NOW + 300, "tenant_id": "acme", "sub": "ann"})
}

fn rs256(kid: Option<&str>, key: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = kid.map(str::to_owned);
    encode(
        &header,
        claims,
        &EncodingKey::from_rsa_pem(&fixture(key)).unwrap(),
    )
    .unwrap()
}

fn es256(kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = kid.map(str::to_owned);
    encode(
        &header,
        claims,
        &EncodingKey::from_ec_pem(&fixture("ec-b.pem")).unwrap(),
    )
    .unwrap()
}

fn b64(v: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

/// A one-route HTTP server answering every request with `status`,
/// `extra` headers and `body`; counts the requests.
async fn issuer(status: u16, extra: &'static str, body: Vec<u8>) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    let body = Arc::new(body);
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            counter.fetch_add(1, Ordering::SeqCst);
            let body = Arc::clone(&body);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let head = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n{extra}\r\n",
                    body.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(&body).await;
            });
        }
    });
    (url, hits)
}

async fn verifier(algorithms: &[&str]) -> (Verifier, Arc<AtomicUsize>) {
    let (url, hits) = issuer(200, "", fixture("jwks.json")).await;
    (Verifier::new(auth(algorithms), url).unwrap(), hits)
}

fn refused(r: Result<impl std::fmt::Debug, VerifyError>) -> TokenRefusal {
    match r {
        Err(VerifyError::Refused(r)) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn valid_rs256_and_es256_tokens_name_their_tenant_and_principal() {
    let (v, _) = verifier(&["RS256", "ES256"]).await;
    let got = v
        .verify_at(&rs256(Some("rsa-a"), "rsa-a.pem", &claims()), NOW)
        .await
        .unwrap();
    assert_eq!(
        (got.tenant_id.as_str(), got.principal.as_str()),
        ("acme", "ann")
    );
    assert_eq!(got.expires_at, NOW + 300);
    let mut other = claims();
    other["tenant_id"] = json!("globex");
    other["sub"] = json!("bob");
    let got = v
        .verify_at(&es256(Some("ec-b"), &other), NOW)
        .await
        .unwrap();
    assert_eq!(
        (got.tenant_id.as_str(), got.principal.as_str()),
        ("globex", "bob")
    );
}

#[tokio::test]
async fn claim_rules_apply_after_the_signature() {
    let (v, _) = verifier(&["RS256"]).await;
    let with = |k: &str, val: Value| {
        let mut c = claims();
        c[k] = val;
        rs256(Some("rsa-a"), "rsa-a.pem", &c)
    };
    assert_eq!(
        refused(
            v.verify_at(&with("iss", json!("https://evil.test")), NOW)
                .await
        ),
        TokenRefusal::WrongIssuer
    );
    assert_eq!(
        refused(
            v.verify_at(&with("aud", json!("https://other.test/mcp")), NOW)
                .await
        ),
        TokenRefusal::WrongAudience
    );
    assert_eq!(
        refused(v.verify_at(&with("exp", json!(NOW - 31)), NOW).await),
        TokenRefusal::Expired
    );
    assert_eq!(
        refused(v.verify_at(&with("nbf", json!(NOW + 31)), NOW).await),
        TokenRefusal::NotYetValid
    );
    assert_eq!(
        refused(v.verify_at(&with("tenant_id", json!(7)), NOW).await),
        TokenRefusal::NoTenant
    );
}

#[tokio::test]
async fn alg_none_and_hs256_keyed_with_the_public_key_are_refused_before_any_key_is_used() {
    let (v, hits) = verifier(&["RS256"]).await;
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims())
    );
    assert_eq!(
        refused(v.verify_at(&none, NOW).await),
        TokenRefusal::AlgorithmNotAllowed
    );
    // The classic confusion attack: HMAC with the RSA public key as secret.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("rsa-a".into());
    let forged = encode(
        &header,
        &claims(),
        &EncodingKey::from_secret(&fixture("rsa-a.pub.pem")),
    )
    .unwrap();
    assert_eq!(
        refused(v.verify_at(&forged, NOW).await),
        TokenRefusal::AlgorithmNotAllowed
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "no key was fetched for a refused algorithm"
    );
    // The control: the same RS256 claims with the real key pass, so the
    // refusals above are the algorithm's, not the claims'.
    v.verify_at(&rs256(Some("rsa-a"), "rsa-a.pem", &claims()), NOW)
        .await
        .unwrap();
}

#[tokio::test]
async fn an_allowed_algorithm_outside_the_config_is_refused() {
    let (v, _) = verifier(&["RS256"]).await;
    assert_eq!(
        refused(v.verify_at(&es256(Some("ec-b"), &claims()), NOW).await),
        TokenRefusal::AlgorithmNotAllowed
    );
}

#[tokio::test]
async fn unknown_kids_wrong_keys_and_mismatched_families_are_refused() {
    let (v, hits) = verifier(&["RS256", "ES256"]).await;
    // Signed by a key the issuer does not publish, under a kid it does not know.
    assert_eq!(
        refused(
            v.verify_at(&rs256(Some("rsa-x"), "rsa-other.pem", &claims()), NOW)
                .await
        ),
        TokenRefusal::UnknownKey
    );
    // …under a published kid: the signature does not verify.
    assert_eq!(
        refused(
            v.verify_at(&rs256(Some("rsa-a"), "rsa-other.pem", &claims()), NOW)
                .await
        ),
        TokenRefusal::BadSignature
    );
    // An ES256 token naming the RSA key: the key's own alg is RS256.
    assert_eq!(
        refused(v.verify_at(&es256(Some("rsa-a"), &claims()), NOW).await),
        TokenRefusal::UnknownKey
    );
    // No kid with two published keys: ambiguous.
    assert_eq!(
        refused(v.verify_at(&rs256(None, "rsa-a.pem", &claims()), NOW).await),
        TokenRefusal::UnknownKey
    );
    // A tampered payload.
    let good = rs256(Some("rsa-a"), "rsa-a.pem", &claims());
    let parts: Vec<&str> = good.split('.').collect();
    let mut evil = claims();
    evil["tenant_id"] = json!("globex");
    let tampered = format!("{}.{}.{}", parts[0], b64(&evil), parts[2]);
    assert_eq!(
        refused(v.verify_at(&tampered, NOW).await),
        TokenRefusal::BadSignature
    );
    // The unknown kid caused one extra fetch (cooldown 1 s), no more.
    assert!(
        hits.load(Ordering::SeqCst) <= 3,
        "{}",
        hits.load(Ordering::SeqCst)
    );
}

#[tokio::test]
async fn malformed_tokens_are_refused() {
    let (v, _) = verifier(&["RS256"]).await;
    for t in ["", "a.b", "a.b.c.d", "!!!.e30.x", &"a".repeat(9000)] {
        assert_eq!(
            refused(v.verify_at(t, NOW).await),
            TokenRefusal::Malformed,
            "{t:.20}"
        );
    }
    let crit = format!(
        "{}.{}.sig",
        b64(&json!({"alg": "RS256", "crit": ["x"]})),
        b64(&claims())
    );
    assert_eq!(
        refused(v.verify_at(&crit, NOW).await),
        TokenRefusal::Malformed
    );
}

#[tokio::test]
async fn a_single_unnamed_key_is_used_for_tokens_without_kid() {
    let mut jwks: Value = serde_json::from_slice(&fixture("jwks.json")).unwrap();
    let rsa = jwks["keys"][0].clone();
    let mut unnamed = rsa.clone();
    unnamed.as_object_mut().unwrap().remove("kid");
    jwks = json!({"keys": [unnamed]});
    let (url, _) = issuer(200, "", jwks.to_string().into_bytes()).await;
    let v = Verifier::new(auth(&["RS256"]), url).unwrap();
    v.verify_at(&rs256(None, "rsa-a.pem", &claims()), NOW)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_fetch_follows_no_redirect_and_reads_a_bounded_body() {
    let (target, target_hits) = issuer(200, "", fixture("jwks.json")).await;
    let location: &'static str = Box::leak(format!("location: {target}\r\n").into_boxed_str());
    let (redirecting, _) = issuer(302, location, Vec::new()).await;
    let err = KeySet::fetch(&redirecting, 65_536, Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(matches!(err, JwksError::Redirect(302)), "{err:?}");
    assert_eq!(
        target_hits.load(Ordering::SeqCst),
        0,
        "the redirect was not followed"
    );
    // The control: the target itself serves keys.
    KeySet::fetch(&target, 65_536, Duration::from_secs(2))
        .await
        .unwrap();

    let err = KeySet::fetch(&target, 256, Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(matches!(err, JwksError::TooLarge(256)), "{err:?}");
    let (broken, _) = issuer(500, "", Vec::new()).await;
    assert!(matches!(
        KeySet::fetch(&broken, 65_536, Duration::from_secs(2))
            .await
            .unwrap_err(),
        JwksError::Status(500)
    ));
    assert!(matches!(
        KeySet::fetch(
            "http://203.0.113.9/jwks.json",
            65_536,
            Duration::from_secs(2)
        )
        .await
        .unwrap_err(),
        JwksError::UrlNotAllowed
    ));
    assert!(Verifier::new(auth(&["RS256"]), "http://example.test/jwks".into()).is_err());
}

#[test]
fn a_key_set_with_private_material_is_refused_whole() {
    let mut jwks: Value = serde_json::from_slice(&fixture("jwks.json")).unwrap();
    KeySet::parse(jwks.to_string().as_bytes()).unwrap();
    jwks["keys"][1]["d"] = json!("c2VjcmV0");
    assert!(matches!(
        KeySet::parse(jwks.to_string().as_bytes()),
        Err(JwksError::PrivateMaterial("d"))
    ));
    let oct = json!({"keys": [{"kty": "oct", "kid": "h", "k": "c2VjcmV0"}]});
    assert!(matches!(
        KeySet::parse(oct.to_string().as_bytes()),
        Err(JwksError::PrivateMaterial("k"))
    ));
    assert!(matches!(KeySet::parse(b"[]"), Err(JwksError::NotAKeySet)));
    assert!(matches!(
        KeySet::parse(br#"{"keys": []}"#),
        Err(JwksError::NoUsableKeys)
    ));
    let enc_only =
        json!({"keys": [{"kty": "RSA", "kid": "e", "use": "enc", "n": "AQAB", "e": "AQAB"}]});
    assert!(matches!(
        KeySet::parse(enc_only.to_string().as_bytes()),
        Err(JwksError::NoUsableKeys)
    ));
}

#[tokio::test]
async fn keys_are_cached_and_an_unreachable_issuer_fails_closed() {
    let (v, hits) = verifier(&["RS256"]).await;
    for _ in 0..5 {
        v.verify_at(&rs256(Some("rsa-a"), "rsa-a.pem", &claims()), NOW)
            .await
            .unwrap();
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "one fetch serves every verification"
    );
    // An issuer that is down: nothing verifies.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    drop(listener);
    let down = Verifier::new(auth(&["RS256"]), url).unwrap();
    assert_eq!(
        down.verify_at(&rs256(Some("rsa-a"), "rsa-a.pem", &claims()), NOW)
            .await
            .unwrap_err(),
        VerifyError::KeysUnavailable
    );
}

#[tokio::test]
async fn a_verified_token_is_remembered_but_its_claims_are_checked_at_every_use() {
    let (v, hits) = verifier(&["RS256"]).await;
    let token = rs256(Some("rsa-a"), "rsa-a.pem", &claims());
    v.verify_at(&token, NOW).await.unwrap();
    let fetched = hits.load(Ordering::SeqCst);
    // Remembered: the same token verifies again without the keys.
    v.verify_at(&token, NOW + 1).await.unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), fetched);
    // …but time still runs out for it (exp NOW+300, skew 30).
    assert_eq!(
        v.verify_at(&token, NOW + 330).await.unwrap_err(),
        VerifyError::Refused(TokenRefusal::Expired)
    );
    // A token that failed its claims is not remembered as good.
    let mut early = claims();
    early["nbf"] = json!(NOW + 100);
    let early = rs256(Some("rsa-a"), "rsa-a.pem", &early);
    assert_eq!(
        refused(v.verify_at(&early, NOW).await),
        TokenRefusal::NotYetValid
    );
    v.verify_at(&early, NOW + 100).await.unwrap();
}
