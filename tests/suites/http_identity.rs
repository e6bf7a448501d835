//! Issue 18, item 3 — verified identities on Streamable HTTP, through the
//! real processes and a local identity provider (a JWKS on loopback):
//!
//! - a valid token's claims are the call's tenant and principal, down to
//!   the rows read and the evidence the executor records;
//! - wrong `iss`/`aud`, expired, not yet valid, `alg: none`, HS256 keyed
//!   with the public key, an unknown `kid`, a missing scope: refused with
//!   RFC 6750 challenges pointing at the RFC 9728 metadata, before any
//!   query;
//! - an MCP session stays with the identity that opened it, and each
//!   principal has its own request rate;
//! - a proposer that changes the tenant between HTTP and IPC is refused by
//!   the executor, which verifies the token again (and the same request is
//!   accepted by an executor without `session_auth`, so the refusal is the
//!   verification's).

use airlock_ipc::client::{Client, ClientError};
use airlock_ipc::message::{ProposalRef, Request, Response, Role, SubmitProposal};
use airlock_policy::config::ContextProvider;
use airlock_tests::databases::{
    REFERENCE_DB, ledger_rows, postgres_reference, reference_config_for,
};
use airlock_tests::executor::ExecutorProcess;
use airlock_tests::jwt::{self, AUDIENCE, ISSUER, JwksServer, SCOPE};
use airlock_tests::mcp::{HttpProposer, call};
use airlock_tests::proposals::{honest_proposal, invoice_row, read_of, waiver};
use airlock_tests::runtime as rt;
use serde_json::{Value, json};
use std::time::Duration;

fn postgres() -> &'static airlock_tests::databases::Database {
    static DB: std::sync::OnceLock<airlock_tests::databases::Database> = std::sync::OnceLock::new();
    DB.get_or_init(|| postgres_reference(REFERENCE_DB))
}

/// An executor and an HTTP proposer on a verified-identity config.
struct World {
    exec: ExecutorProcess,
    http: HttpProposer,
    jwks: JwksServer,
}

fn world(edit: impl FnOnce(&mut Value)) -> World {
    let db = postgres();
    let jwks = JwksServer::start();
    let mut config = jwt::verified_identity_config(reference_config_for(db));
    edit(&mut config);
    let exec = ExecutorProcess::start(&config, &[("JWKS_URL", jwks.url.as_str())]);
    // No tenant variable anywhere: the tenant can only come from tokens.
    let http = HttpProposer::start(
        &exec.config_path,
        &exec.socket_dir,
        &[
            ("APP_READ_URL", db.read_url.as_str()),
            ("JWKS_URL", jwks.url.as_str()),
        ],
        &[],
    );
    World { exec, http, jwks }
}

/// POST an MCP `initialize` with `token`: (status, WWW-Authenticate, body).
fn initialize(url: &str, token: Option<&str>) -> (u16, String, String, Option<String>) {
    rt().block_on(async {
        let mut req = reqwest::Client::new()
            .post(url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(
                json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                    "protocolVersion": "2025-06-18", "capabilities": {},
                    "clientInfo": {"name": "t", "version": "1"}}})
                .to_string(),
            );
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let challenge = r
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let session = r
            .headers()
            .get("mcp-session-id")
            .map(|v| v.to_str().unwrap().to_owned());
        (status, challenge, r.text().await.unwrap(), session)
    })
}

#[test]
fn a_verified_token_is_the_calls_tenant_and_principal_down_to_the_ledger() {
    let w = world(|_| {});
    rt().block_on(async {
        let acme = w
            .http
            .client(Some(&jwt::token(&jwt::claims("acme", "ann"))))
            .await;
        let (_, env) = call(
            &acme,
            "billing__inspect_invoice",
            json!({"invoice_id": "INV-3001"}),
        )
        .await;
        assert_eq!(env["ok"], true, "{env}");
        assert_eq!(env["_meta"]["tenant_id"], "acme", "{env}");
        assert_eq!(env["_meta"]["principal"], "ann", "{env}");
        assert_eq!(env["_meta"]["provenance"], "http_claims", "{env}");
        // A proposal is recorded for the token's tenant and principal.
        let (_, env) = call(
            &acme,
            "billing__propose_late_fee_waiver",
            json!({"invoice_id": "INV-3001", "reason": "customer asked"}),
        )
        .await;
        assert_eq!(env["proposal"]["state"], "review_required", "{env}");
        // Another tenant's invoice does not exist for acme's token…
        let (_, env) = call(
            &acme,
            "billing__inspect_invoice",
            json!({"invoice_id": "INV-9001"}),
        )
        .await;
        assert_eq!(env["ok"], false, "{env}");
        acme.cancel().await.unwrap();
        // …and is read with otherco's (an ES256 token: both algorithms work).
        let other = w
            .http
            .client(Some(&jwt::sign_es256(&jwt::claims("otherco", "olga"))))
            .await;
        let (_, env) = call(
            &other,
            "billing__inspect_invoice",
            json!({"invoice_id": "INV-9001"}),
        )
        .await;
        assert_eq!(env["ok"], true, "{env}");
        assert_eq!(env["_meta"]["tenant_id"], "otherco", "{env}");
        other.cancel().await.unwrap();
    });
    // Evidence may be committed in a batch a moment after the answer.
    let mut evidence = Vec::new();
    for _ in 0..100 {
        evidence = ledger_rows(
            &w.exec.store,
            "SELECT tenant_id, principal FROM evidence ORDER BY seq",
        );
        if evidence.len() >= 4 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        evidence,
        // The found read, the proposal's read, the not-found read (an
        // empty result is evidence too), and otherco's read.
        vec![
            vec![Some("acme".into()), Some("ann".into())],
            vec![Some("acme".into()), Some("ann".into())],
            vec![Some("acme".into()), Some("ann".into())],
            vec![Some("otherco".into()), Some("olga".into())],
        ]
    );
    assert_eq!(
        ledger_rows(&w.exec.store, "SELECT tenant_id, principal FROM proposals"),
        vec![vec![Some("acme".into()), Some("ann".into())]]
    );
    assert!(
        w.jwks.fetches() >= 2,
        "proposer and executor each fetched the keys"
    );
}

#[test]
fn bad_tokens_are_refused_with_challenges_that_point_at_the_metadata() {
    let w = world(|_| {});
    let url = &w.http.url;
    let metadata_url = "https://airlock.test/.well-known/oauth-protected-resource/mcp";

    let (status, challenge, _, _) = initialize(url, None);
    assert_eq!(status, 401);
    assert_eq!(
        challenge,
        format!("Bearer realm=\"airlock\", resource_metadata=\"{metadata_url}\"")
    );

    let good = jwt::claims("acme", "ann");
    let with = |k: &str, v: Value| {
        let mut c = good.clone();
        c[k] = v;
        c
    };
    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "wrong iss",
            jwt::token(&with("iss", json!("https://evil.test"))),
            401,
            "invalid_token",
        ),
        (
            "wrong aud",
            jwt::token(&with("aud", json!("https://other.test/mcp"))),
            401,
            "invalid_token",
        ),
        (
            "expired",
            jwt::token(&with("exp", json!(jwt::now() - 120))),
            401,
            "invalid_token",
        ),
        (
            "not yet valid",
            jwt::token(&with("nbf", json!(jwt::now() + 600))),
            401,
            "invalid_token",
        ),
        ("alg none", jwt::unsigned(&good), 401, "invalid_token"),
        (
            "HS256 with the public key",
            jwt::hs256_with_public_key(&good),
            401,
            "invalid_token",
        ),
        (
            "unknown kid",
            jwt::sign_rs256("rsa-x", "rsa-other.pem", &good),
            401,
            "invalid_token",
        ),
        (
            "forged under a known kid",
            jwt::sign_rs256("rsa-a", "rsa-other.pem", &good),
            401,
            "invalid_token",
        ),
        (
            "no tenant claim",
            jwt::token(&with("tenant_id", Value::Null)),
            401,
            "invalid_token",
        ),
        (
            "missing scope",
            jwt::token(&with("scope", json!("openid"))),
            403,
            "insufficient_scope",
        ),
    ];
    for (name, token, want, error) in cases {
        let (status, challenge, body, session) = initialize(url, Some(&token));
        assert_eq!(status, want, "{name}: {body}");
        assert!(
            challenge.starts_with(&format!(
                "Bearer realm=\"airlock\", error=\"{error}\", error_description=\""
            )),
            "{name}: {challenge}"
        );
        assert!(
            challenge.ends_with(&format!("resource_metadata=\"{metadata_url}\"")),
            "{name}: {challenge}"
        );
        assert!(session.is_none(), "{name}: no session for a refused token");
        assert!(!body.contains(&token), "{name}: the token is not echoed");
    }
    let (_, challenge, _, _) = initialize(url, Some(&jwt::token(&with("scope", json!("openid")))));
    assert!(
        challenge.contains(&format!("scope=\"{SCOPE}\"")),
        "{challenge}"
    );

    // The control: the same request with a valid token opens a session.
    let (status, _, body, session) = initialize(url, Some(&jwt::token(&good)));
    assert_eq!(status, 200, "{body}");
    assert!(session.is_some());

    // RFC 9728 metadata, public, at both the generic and the resource path.
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let (status, body) = rt().block_on(async {
            let r = reqwest::get(format!("http://127.0.0.1:{}{path}", w.http.port))
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        });
        assert_eq!(status, 200, "{path}");
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap(),
            json!({
                "resource": AUDIENCE,
                "authorization_servers": [ISSUER],
                "bearer_methods_supported": ["header"],
                "scopes_supported": [SCOPE],
                "resource_name": "Airlock (test)",
            }),
            "{path}"
        );
    }
}

#[test]
fn a_session_stays_with_its_identity_and_each_principal_has_its_own_rate() {
    let w = world(|c| {
        c["http_security"]["limits"] = json!({"principal_requests_per_minute": 4});
    });
    let url = &w.http.url;
    let ann = jwt::token(&jwt::claims("acme", "ann"));
    let (status, _, _, session) = initialize(url, Some(&ann));
    assert_eq!(status, 200);
    let session = session.unwrap();
    // Another identity presenting ann's session id is refused.
    let olga = jwt::token(&jwt::claims("otherco", "olga"));
    let status = rt().block_on(async {
        reqwest::Client::new()
            .post(url)
            .header("authorization", format!("Bearer {olga}"))
            .header("mcp-session-id", &session)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    assert_eq!(status, 403);
    // ann has used 1 of 4; three more pass, the fifth waits.
    for i in 0..3 {
        assert_eq!(initialize(url, Some(&ann)).0, 200, "request {i}");
    }
    let (status, _, body, _) = initialize(url, Some(&ann));
    assert_eq!(status, 429, "{body}");
    // olga (1 of 4 used by the refused request above) and bob are not slowed.
    assert_eq!(initialize(url, Some(&olga)).0, 200);
    assert_eq!(
        initialize(url, Some(&jwt::token(&jwt::claims("acme", "bob")))).0,
        200
    );
}

#[test]
fn the_executor_refuses_a_tenant_the_forwarded_token_does_not_name() {
    let db = postgres();
    let jwks = JwksServer::start();
    let config = jwt::verified_identity_config(reference_config_for(db));
    let cfg = airlock_policy::load_config(&config).config.unwrap();
    let exec = ExecutorProcess::start(&config, &[("JWKS_URL", jwks.url.as_str())]);
    let read = |tenant: &str, principal: &str, token: Option<String>| {
        let id = if tenant == "acme" {
            "INV-3001"
        } else {
            "INV-9001"
        };
        let mut r = read_of(
            &cfg,
            "billing.inspect_invoice",
            json!({"invoice_id": id}),
            &invoice_row(id, tenant),
            tenant,
        );
        r.context.principal = principal.into();
        r.context.source = ContextProvider::HttpClaims;
        r.identity_token = token;
        Request::RecordRead(r)
    };
    let refusal = |result: Result<Response, ClientError>| match result {
        Err(ClientError::Refused(e)) => (
            e.code.as_str().to_owned(),
            e.details.unwrap_or_default()["identity"].clone(),
        ),
        other => panic!("expected a refusal, got {other:?}"),
    };
    let acme_ann = jwt::token(&jwt::claims("acme", "ann"));
    rt().block_on(async {
        let mut c = Client::connect(
            &exec.proposer_socket(),
            Role::Proposer,
            "rogue",
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        // A proposer swaps the tenant (or the principal) after HTTP.
        assert_eq!(
            refusal(c.call(read("otherco", "ann", Some(acme_ann.clone()))).await),
            ("tenant_not_allowed".into(), json!("claims_mismatch"))
        );
        assert_eq!(
            refusal(c.call(read("acme", "root", Some(acme_ann.clone()))).await),
            ("tenant_not_allowed".into(), json!("claims_mismatch"))
        );
        // …drops the token, or mints its own.
        assert_eq!(
            refusal(c.call(read("otherco", "ann", None)).await),
            ("tenant_not_allowed".into(), json!("no_token"))
        );
        let forged = jwt::sign_rs256("rsa-a", "rsa-other.pem", &jwt::claims("otherco", "ann"));
        assert_eq!(
            refusal(c.call(read("otherco", "ann", Some(forged))).await),
            ("tenant_not_allowed".into(), json!("bad_signature"))
        );
        // The control: the honest request is recorded.
        let ok = c
            .call(read("acme", "ann", Some(acme_ann.clone())))
            .await
            .unwrap();
        let Response::ReadRecorded(ev) = ok else {
            panic!("{ok:?}")
        };
        // …and so is ann's proposal; but a status question carries no
        // token, so no proposer learns a proposal's state from this executor.
        let mut cs = waiver(&cfg, "INV-3001", "acme", "verified waiver");
        cs.principal = "ann".into();
        let recorded = c
            .call(Request::SubmitProposal(SubmitProposal {
                change_set: cs,
                evidence_id: Some(ev.evidence_id),
                identity_token: Some(acme_ann.clone()),
            }))
            .await
            .unwrap();
        let Response::ProposalRecorded(p) = recorded else {
            panic!("{recorded:?}")
        };
        let status = c
            .call(Request::ProposalStatus(ProposalRef {
                proposal_id: p.proposal_id,
            }))
            .await;
        assert_eq!(refusal(status).0, "not_found");
    });

    // Without `session_auth` (the environment provider, no tenant pinned
    // for this proposer's user), the executor has nothing to verify: the
    // swapped tenant is accepted. The verification above is the defence.
    let plain = reference_config_for(db);
    let plain_cfg = airlock_policy::load_config(&plain).config.unwrap();
    let unguarded = ExecutorProcess::start(&plain, &[]);
    rt().block_on(async {
        let mut c = Client::connect(
            &unguarded.proposer_socket(),
            Role::Proposer,
            "rogue",
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        let mut r = read_of(
            &plain_cfg,
            "billing.inspect_invoice",
            json!({"invoice_id": "INV-9001"}),
            &invoice_row("INV-9001", "otherco"),
            "otherco",
        );
        r.context.principal = "ann".into();
        let got = c.call(Request::RecordRead(r)).await.unwrap();
        assert!(matches!(got, Response::ReadRecorded(_)), "{got:?}");
        // …and a proposal's state is answered to the proposer.
        let p = honest_proposal(&mut c, &plain_cfg, "plain waiver").await;
        let status = c
            .call(Request::ProposalStatus(ProposalRef {
                proposal_id: p.proposal_id,
            }))
            .await
            .unwrap();
        assert!(matches!(status, Response::ProposalStatus(_)), "{status:?}");
    });
}

#[test]
fn a_verified_identity_config_is_refused_over_stdio_and_beside_a_static_token() {
    let db = postgres();
    let jwks = JwksServer::start();
    let config = jwt::verified_identity_config(reference_config_for(db));
    let exec = ExecutorProcess::start(&config, &[("JWKS_URL", jwks.url.as_str())]);
    let run = |extra: &[&str]| {
        std::process::Command::new(airlock_tests::bin("airlock-proposer"))
            .args(["serve", "--config"])
            .arg(&exec.config_path)
            .arg("--socket-dir")
            .arg(&exec.socket_dir)
            .args(extra)
            .env_clear()
            .env("APP_READ_URL", &db.read_url)
            .env("JWKS_URL", &jwks.url)
            .env("MCP_TOKEN", "a-static-token-0123456789")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let out = run(&[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("serve it with --transport streamable-http"),
        "{err}"
    );
    let out = run(&[
        "--transport",
        "streamable-http",
        "--listen",
        "127.0.0.1:0",
        "--auth-token-env",
        "MCP_TOKEN",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("remove --auth-token-env"), "{err}");
}
