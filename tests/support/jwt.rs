//! A local identity provider for the JWT tests: a JWKS served over HTTP
//! on loopback (the fixtures' public keys) and tokens signed with the
//! fixtures' private keys (`tests/fixtures/jwt`, test-only keys).

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

pub const ISSUER: &str = "https://identity.airlock.test";
pub const AUDIENCE: &str = "https://airlock.test/mcp";
pub const SCOPE: &str = "airlock.mcp";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        crate::workspace_root()
            .join("tests/fixtures/jwt")
            .join(name),
    )
    .unwrap()
}

/// The issuer's JWKS endpoint, served until the process exits.
pub struct JwksServer {
    pub url: String,
    hits: Arc<AtomicUsize>,
}

impl JwksServer {
    pub fn start() -> JwksServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://{}/.well-known/jwks.json",
            listener.local_addr().unwrap()
        );
        let body = fixture("jwks.json");
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&hits);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                counter.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes());
                let _ = s.write_all(&body);
            }
        });
        JwksServer { url, hits }
    }

    /// How many times the keys were fetched.
    pub fn fetches(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Valid claims for `tenant` and `principal`, good for five minutes.
pub fn claims(tenant: &str, principal: &str) -> Value {
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "exp": now() + 300,
        "iat": now(),
        "scope": format!("openid {SCOPE}"),
        "tenant_id": tenant,
        "sub": principal,
    })
}

/// `claims` signed RS256 by the issuer's key `rsa-a`.
pub fn token(claims: &Value) -> String {
    sign_rs256("rsa-a", "rsa-a.pem", claims)
}

/// RS256 with any fixture key under any `kid` (forgeries included).
pub fn sign_rs256(kid: &str, key_file: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    encode(
        &header,
        claims,
        &EncodingKey::from_rsa_pem(&fixture(key_file)).unwrap(),
    )
    .unwrap()
}

/// ES256 by the issuer's key `ec-b`.
pub fn sign_es256(claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("ec-b".to_owned());
    encode(
        &header,
        claims,
        &EncodingKey::from_ec_pem(&fixture("ec-b.pem")).unwrap(),
    )
    .unwrap()
}

/// An unsigned token (`alg: none`).
pub fn unsigned(claims: &Value) -> String {
    use base64::Engine as _;
    let b = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.",
        b(&json!({"alg": "none", "typ": "JWT"})),
        b(claims)
    )
}

/// HS256 keyed with the issuer's RSA public key (the confusion attack).
pub fn hs256_with_public_key(claims: &Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("rsa-a".to_owned());
    encode(
        &header,
        claims,
        &EncodingKey::from_secret(&fixture("rsa-a.pub.pem")),
    )
    .unwrap()
}

/// Turn a reference config into one whose tenant and principal come from
/// verified tokens of this issuer (JWKS URL in `JWKS_URL`).
pub fn verified_identity_config(mut config: Value) -> Value {
    config["trusted_context"] = json!({"provider": "http_claims"});
    config["contexts"] = json!({"local_operator": {"provider": "http_claims"}});
    config["session_auth"] = json!({
        "provider": "jwt_asymmetric",
        "algorithms": ["RS256", "ES256"],
        "jwks_url_env": "JWKS_URL",
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "tenant_claim": "tenant_id",
        "principal_claim": "sub",
    });
    config["http_security"] = json!({
        "oauth_resource": {
            "resource": AUDIENCE,
            "authorization_servers": [ISSUER],
            "scopes_supported": [SCOPE],
            "required_scopes": [SCOPE],
            "resource_name": "Airlock (test)",
        },
    });
    config
}
