//! What verifying a request's token costs (`session_auth`): the first time
//! a token is seen (signature check) and again (remembered; the claims are
//! still checked). `cargo bench -p airlock-identity --bench verify`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::io::{Read, Write};

use airlock_identity::Verifier;
use airlock_policy::session_auth::SessionAuth;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/jwt");
const NOW: i64 = 1_800_000_000;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{name}")).unwrap()
}

/// The fixtures' JWKS on loopback.
fn issuer() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    let body = fixture("jwks.json");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let _ = s.read(&mut [0u8; 4096]);
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&body);
        }
    });
    url
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let auth = SessionAuth {
        algorithms: vec!["RS256".into(), "ES256".into()],
        jwks_url_env: "JWKS_URL".into(),
        issuer: "https://identity.test".into(),
        audience: "https://airlock.test/mcp".into(),
        tenant_claim: "tenant_id".into(),
        principal_claim: "sub".into(),
        clock_skew_seconds: 30,
        jwks_cache_seconds: 86_400,
        jwks_cooldown_seconds: 30,
        fetch_timeout_ms: 2_000,
        max_response_bytes: 65_536,
        required_scopes: Vec::new(),
    };
    let verifier = Verifier::new(auth, issuer()).unwrap();
    rt.block_on(verifier.prefetch()).unwrap();
    let rsa = EncodingKey::from_rsa_pem(&fixture("rsa-a.pem")).unwrap();
    let ec = EncodingKey::from_ec_pem(&fixture("ec-b.pem")).unwrap();
    let mut n = 0u64;
    let mut token = |alg: Algorithm, kid: &str, key: &EncodingKey| {
        n += 1;
        let mut h = Header::new(alg);
        h.kid = Some(kid.into());
        let claims = json!({"iss": "https://identity.test", "aud": "https://airlock.test/mcp",
            "exp": NOW + 300, "tenant_id": "acme", "sub": "ann", "jti": n});
        encode(&h, &claims, key).unwrap()
    };
    let mut g = c.benchmark_group("verify");
    g.bench_function("rs256_first_use", |b| {
        b.iter_batched(
            || token(Algorithm::RS256, "rsa-a", &rsa),
            |t| black_box(rt.block_on(verifier.verify_at(&t, NOW)).unwrap()),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("es256_first_use", |b| {
        b.iter_batched(
            || token(Algorithm::ES256, "ec-b", &ec),
            |t| black_box(rt.block_on(verifier.verify_at(&t, NOW)).unwrap()),
            BatchSize::SmallInput,
        )
    });
    let seen = token(Algorithm::RS256, "rsa-a", &rsa);
    rt.block_on(verifier.verify_at(&seen, NOW)).unwrap();
    g.bench_function("remembered", |b| {
        b.iter(|| black_box(rt.block_on(verifier.verify_at(&seen, NOW)).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
