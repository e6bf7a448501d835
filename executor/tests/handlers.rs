//! http_handler and command_handler executors against real handlers: an
//! in-process axum server on loopback and small scripts in a temp dir.
//! Also the handler templates (`airlock handler template`), including real
//! runs of the command template (and the FastAPI template's `apply`) against
//! a SQLite store on every kind of change: update, insert, delete, and
//! bounded sets.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use airlock_executor::writeback::command_handler;
use airlock_executor::writeback::http_handler::{self, HttpSecrets};
use airlock_executor::writeback::payload::{handler_payload, parse_receipt};
use airlock_executor::writeback::{Outcome, ReceiptStatus, WritebackJob};
use airlock_policy::args::validate_args;
use airlock_policy::bounded_set;
use airlock_policy::change_set::{self, ChangeSet};
use airlock_policy::config::{
    CommandHandlerSpec, ContextProvider, Engine, HttpHandlerSpec, HttpMethod,
};
use airlock_policy::context::TrustedContext;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use sha2::Sha256;

// The template command, compiled here from the CLI's own source files.
#[allow(dead_code, unused_imports)]
#[path = "../src/cli/handler_cmd.rs"]
mod handler_cmd;
#[allow(dead_code, unused_imports, unused_macros)]
#[path = "../src/cli/output.rs"]
mod output;
use output::Exit;

const CONFIG: &str = include_str!("../../tests/fixtures/reference/airlock.reference.json");
const TOKEN: &str = "tok_live_3f9a8b7c6d5e4f3a2b1c";
const SIGNING_SECRET: &str = "whsec_0a1b2c3d4e5f60718293a4b5c6d7e8f9";
const OLD_VERSION: &str = "2026-06-20T14:31:08Z";

// ---------------------------------------------------------------- the job

fn invoice_row(tenant: &str) -> Map<String, Value> {
    json!({
        "id": "INV-3001", "tenant_id": tenant, "customer_id": "CUS-1", "status": "overdue",
        "balance_cents": 12000, "late_fee_cents": 5500, "waiver_reason": null,
        "updated_at": OLD_VERSION,
    })
    .as_object()
    .unwrap()
    .clone()
}

fn job_for(proposal_id: &str, tenant: &str, attempt: u32) -> WritebackJob {
    let config = airlock_policy::load_config_str(CONFIG).config.unwrap();
    let cap = config
        .capability("billing.propose_late_fee_waiver")
        .unwrap();
    let args = validate_args(
        cap,
        Some(&json!({"invoice_id": "INV-3001", "reason": "customer requested review"})),
    )
    .unwrap();
    let ctx = TrustedContext {
        tenant_id: tenant.to_owned(),
        principal: "support_agent_17".to_owned(),
        source: ContextProvider::Environment,
    };
    let cs = change_set::build(cap, &args, &ctx, &invoice_row(tenant)).unwrap();
    WritebackJob {
        job_id: format!("wbj_{proposal_id}_{attempt}"),
        proposal_id: proposal_id.to_owned(),
        idempotency_key: format!("{proposal_id}:INV-3001"),
        attempt,
        proposal_hash: cs.hash(),
        capability: cap.name.clone(),
        executor: "billing_handler".to_owned(),
        source_id: "app_postgres".to_owned(),
        engine: Engine::Postgres,
        evidence_id: Some("ev_456".to_owned()),
        change_set: cs,
        dependencies: Vec::new(),
    }
}

fn job() -> WritebackJob {
    job_for("wrp_123", "acme", 1)
}

#[test]
fn payload_has_the_documented_shape() {
    let job = job();
    let p = handler_payload(&job, false);
    let expected = json!({
        "schema_version": "synapsor.handler-writeback.v1",
        "writeback_job_id": "wbj_wrp_123_1",
        "proposal_id": "wrp_123",
        "idempotency_key": "wrp_123:INV-3001",
        "executor": "billing_handler",
        "dry_run": false,
        "attempt": 1,
        "proposal_hash": job.proposal_hash,
        "capability": "billing.propose_late_fee_waiver",
        "change_set": {
            "scope": {"tenant_id": "acme", "business_object": "invoice", "object_id": "INV-3001"},
            "principal": {"id": "support_agent_17"},
            "target": {"schema": "public", "table": "invoices",
                       "primary_key": {"column": "id", "value": "INV-3001"}},
            "before": {"late_fee_cents": 5500, "waiver_reason": null, "updated_at": OLD_VERSION},
            "patch": {"late_fee_cents": 0, "waiver_reason": "customer requested review"},
            "after": {"late_fee_cents": 0, "waiver_reason": "customer requested review",
                      "updated_at": OLD_VERSION},
            "guards": {
                "tenant": {"column": "tenant_id", "value": "acme"},
                "allowed_columns": ["late_fee_cents", "waiver_reason"],
                "expected_version": {"column": "updated_at", "value": OLD_VERSION},
                "transitions": [],
            },
            "evidence": {"bundle_id": "ev_456"},
        },
        "operation": {"kind": "update", "cardinality": "single"},
    });
    assert_eq!(p, expected);
    assert!(job.proposal_hash.starts_with("sha256:"));
    assert_eq!(handler_payload(&job, true)["dry_run"], json!(true));
    // Field order is stable (handlers may log it verbatim).
    let keys: Vec<&String> = p.as_object().unwrap().keys().collect();
    assert_eq!(keys[0], "schema_version");
}

#[test]
fn receipt_parser_is_strict() {
    assert!(parse_receipt(br#"{"status":"applied","rows_affected":1,"receipt_id":"r1"}"#).is_ok());
    assert!(parse_receipt(br#"{"rows_affected":1}"#).is_err());
    assert!(parse_receipt(br#"{"status":"APPLIED"}"#).is_err());
    assert!(parse_receipt(br#"{"status":"failed","safe_error_code":"has space"}"#).is_err());
}

// ------------------------------------------------------- the http handler

#[derive(Debug, Clone)]
struct Seen {
    mode: String,
    method: Method,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

#[derive(Default)]
struct Server {
    seen: Mutex<Vec<Seen>>,
}

async fn handle(
    State(server): State<Arc<Server>>,
    UrlPath(mode): UrlPath<String>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    server.seen.lock().unwrap().push(Seen {
        mode: mode.clone(),
        method,
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body: body.to_vec(),
    });
    let receipt = |code: StatusCode, v: Value| (code, v.to_string()).into_response();
    match mode.as_str() {
        "applied" => receipt(
            StatusCode::OK,
            json!({"status": "applied", "rows_affected": 1, "previous_version": OLD_VERSION,
                   "new_version": "2026-06-21T09:00:00Z", "message": "waived"}),
        ),
        "already" => receipt(
            StatusCode::OK,
            json!({"status": "already_applied", "idempotency_key": "wrp_123:INV-3001"}),
        ),
        "conflict" => receipt(
            StatusCode::CONFLICT,
            json!({"status": "conflict", "safe_error_code": "VERSION_CONFLICT",
                   "previous_version": OLD_VERSION, "new_version": "2026-06-20T15:00:00Z"}),
        ),
        "conflict200" => receipt(StatusCode::OK, json!({"status": "conflict"})),
        "failed" => receipt(
            StatusCode::OK,
            json!({"status": "failed", "safe_error_code": "INVOICE_LOCKED",
                   "message": format!("locked; debug: secret={SIGNING_SECRET}")}),
        ),
        "failed422" => receipt(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"status": "failed", "message": "no"}),
        ),
        "applied409" => receipt(StatusCode::CONFLICT, json!({"status": "applied"})),
        "error500" => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Traceback: auth header was Bearer {TOKEN}; db postgres://app:hunter2@db/prod"),
        )
            .into_response(),
        "garbage" => (StatusCode::OK, "<html>not a receipt</html>").into_response(),
        "empty" => StatusCode::NO_CONTENT.into_response(),
        "huge" => (StatusCode::OK, " ".repeat(100 * 1024)).into_response(),
        "otherkey" => receipt(
            StatusCode::OK,
            json!({"status": "applied", "idempotency_key": "wrp_999:INV-3001"}),
        ),
        "redirect" => (
            StatusCode::TEMPORARY_REDIRECT,
            [("location", "http://127.0.0.1:1/elsewhere")],
        )
            .into_response(),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            receipt(StatusCode::OK, json!({"status": "applied"}))
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn start_server() -> (String, Arc<Server>) {
    let server = Arc::new(Server::default());
    let app = axum::Router::new()
        .route("/h/{mode}", axum::routing::any(handle))
        .with_state(server.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("http://{addr}"), server)
}

fn http_spec(method: HttpMethod, timeout_ms: u64) -> HttpHandlerSpec {
    HttpHandlerSpec {
        url_env: "BILLING_HANDLER_URL".to_owned(),
        method,
        token_env: Some("BILLING_HANDLER_TOKEN".to_owned()),
        signing_secret_env: Some("BILLING_HANDLER_SECRET".to_owned()),
        timeout_ms,
    }
}

fn secrets(url: String) -> HttpSecrets {
    HttpSecrets {
        url,
        token: Some(TOKEN.to_owned()),
        signing_secret: Some(SIGNING_SECRET.to_owned()),
    }
}

fn assert_clean(o: &Outcome, also: &[&str]) {
    let text = serde_json::to_string(o).unwrap();
    for s in [TOKEN, SIGNING_SECRET, "hunter2"].iter().chain(also) {
        assert!(!text.contains(s), "outcome leaks {s:?}: {text}");
    }
}

fn code(o: &Outcome) -> &str {
    o.safe_error_code.as_deref().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread")]
async fn http_handler_sends_the_signed_payload_and_maps_every_answer() {
    let (base, server) = start_server().await;
    let job = job();
    let spec = http_spec(HttpMethod::Post, 2_000);
    let run = |mode: &str| {
        let s = secrets(format!("{base}/h/{mode}"));
        let spec = spec.clone();
        let job = job.clone();
        async move { http_handler::run(&spec, "billing_handler", &s, &job).await }
    };

    // applied
    let o = run("applied").await;
    assert_eq!(o.status, ReceiptStatus::Applied, "{o:?}");
    assert!(o.source_database_mutated);
    assert_eq!(o.rows_affected, 1);
    assert_eq!(o.previous_version, Some(json!(OLD_VERSION)));
    assert_eq!(o.new_version, Some(json!("2026-06-21T09:00:00Z")));
    assert_eq!(o.detail.as_deref(), Some("waived"));

    // What the handler received.
    let seen = server.seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(seen.mode, "applied");
    assert_eq!(seen.method, Method::POST);
    let h = &seen.headers;
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(h["authorization"], format!("Bearer {TOKEN}"));
    assert_eq!(h["idempotency-key"], "wrp_123:INV-3001");
    let body: Value = serde_json::from_slice(&seen.body).unwrap();
    assert_eq!(body, handler_payload(&job, false));
    assert_eq!(body["idempotency_key"], "wrp_123:INV-3001");
    assert_eq!(body["change_set"]["guards"]["tenant"]["value"], "acme");
    // The signature, recomputed here from the secret.
    let ts: u64 = h["x-airlock-timestamp"].parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now.abs_diff(ts) < 60, "timestamp {ts} vs now {now}");
    let mut mac = Hmac::<Sha256>::new_from_slice(SIGNING_SECRET.as_bytes()).unwrap();
    mac.update(format!("{ts}.").as_bytes());
    mac.update(&seen.body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(h["x-airlock-signature"], format!("v1={hex}"));
    assert_eq!(
        http_handler::signature(SIGNING_SECRET.as_bytes(), ts, &seen.body),
        format!("v1={hex}")
    );

    // already_applied: the change exists; this attempt changed nothing.
    let o = run("already").await;
    assert_eq!(o.status, ReceiptStatus::AlreadyApplied, "{o:?}");
    assert!(!o.source_database_mutated);
    assert_eq!(o.rows_affected, 0);

    // 409 with a conflict receipt.
    let o = run("conflict").await;
    assert_eq!(o.status, ReceiptStatus::Conflict, "{o:?}");
    assert_eq!(code(&o), "VERSION_CONFLICT");
    assert!(!o.source_database_mutated);
    assert_eq!(o.new_version, Some(json!("2026-06-20T15:00:00Z")));

    // A conflict receipt on 200 without a code gets the default code.
    let o = run("conflict200").await;
    assert_eq!(
        (o.status, code(&o)),
        (ReceiptStatus::Conflict, "HANDLER_CONFLICT")
    );

    // failed, with the secret echoed in the message: redacted.
    let o = run("failed").await;
    assert_eq!(
        (o.status, code(&o)),
        (ReceiptStatus::Failed, "INVOICE_LOCKED")
    );
    assert!(o.detail.as_deref().unwrap().contains("[REDACTED]"), "{o:?}");
    assert_clean(&o, &[]);

    // A non-2xx with a failed receipt uses it, with the HTTP code as default.
    let o = run("failed422").await;
    assert_eq!(
        (o.status, code(&o)),
        (ReceiptStatus::Failed, "HANDLER_HTTP_422")
    );

    // An error status cannot confirm a change.
    let o = run("applied409").await;
    assert_eq!(
        (o.status, code(&o)),
        (ReceiptStatus::Failed, "HANDLER_HTTP_409")
    );
    assert!(!o.source_database_mutated);

    // 500 whose body repeats the token and a database URL.
    let o = run("error500").await;
    assert_eq!(
        (o.status, code(&o)),
        (ReceiptStatus::Failed, "HANDLER_HTTP_500"),
        "{o:?}"
    );
    assert!(
        o.detail.as_deref().unwrap().contains("HTTP 500: Traceback"),
        "{o:?}"
    );
    assert!(!o.source_database_mutated);
    assert_clean(&o, &["app:hunter2"]);

    // 2xx but not a receipt.
    for mode in ["garbage", "empty", "huge", "otherkey"] {
        let o = run(mode).await;
        assert_eq!(
            (o.status, code(&o)),
            (ReceiptStatus::Failed, "HANDLER_BAD_RECEIPT"),
            "{mode}: {o:?}"
        );
        assert!(!o.source_database_mutated);
        assert_clean(&o, &[]);
    }

    // Redirects are not followed (the token goes only to the configured URL).
    let before = server.seen.lock().unwrap().len();
    let o = run("redirect").await;
    assert_eq!(code(&o), "HANDLER_HTTP_307", "{o:?}");
    assert_eq!(server.seen.lock().unwrap().len(), before + 1);

    // Every request carried the same idempotency key; no detail leaks.
    for s in server.seen.lock().unwrap().iter() {
        assert_eq!(s.headers["idempotency-key"], "wrp_123:INV-3001");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn http_handler_timeout_unreachable_and_bad_config() {
    let (base, server) = start_server().await;
    let job = job();

    // Sleeps past the timeout.
    let started = Instant::now();
    let o = http_handler::run(
        &http_spec(HttpMethod::Put, 300),
        "billing_handler",
        &secrets(format!("{base}/h/slow")),
        &job,
    )
    .await;
    let elapsed = started.elapsed();
    assert_eq!(
        (o.status, code(&o)),
        (ReceiptStatus::Failed, "HANDLER_TIMEOUT"),
        "{o:?}"
    );
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
    assert!(!o.source_database_mutated);
    assert_clean(&o, &[&base]);
    assert_eq!(server.seen.lock().unwrap()[0].method, Method::PUT);

    // Nobody listening.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/h/applied?key={TOKEN}");
    let o = http_handler::run(
        &http_spec(HttpMethod::Patch, 2_000),
        "billing_handler",
        &secrets(url.clone()),
        &job,
    )
    .await;
    assert_eq!(
        (o.status, code(&o)),
        (ReceiptStatus::Failed, "HANDLER_UNREACHABLE"),
        "{o:?}"
    );
    assert_clean(&o, &[&url, &format!(":{port}")]);

    // DNS failure.
    let o = http_handler::run(
        &http_spec(HttpMethod::Post, 5_000),
        "billing_handler",
        &secrets("http://airlock-no-such-host.invalid/h".to_owned()),
        &job,
    )
    .await;
    assert_eq!(code(&o), "HANDLER_UNREACHABLE", "{o:?}");
    assert_clean(&o, &["airlock-no-such-host"]);

    // Not an http(s) URL; a token that cannot be a header.
    let o = http_handler::run(
        &http_spec(HttpMethod::Post, 1_000),
        "billing_handler",
        &secrets("ftp://user:pw@files.example/x".to_owned()),
        &job,
    )
    .await;
    assert_eq!(code(&o), "HANDLER_BAD_URL", "{o:?}");
    assert_clean(&o, &["user:pw", "files.example"]);
    let mut bad = secrets(format!("{base}/h/applied"));
    bad.token = Some(format!("{TOKEN}\nX-Evil: 1"));
    let o = http_handler::run(
        &http_spec(HttpMethod::Post, 1_000),
        "billing_handler",
        &bad,
        &job,
    )
    .await;
    assert_eq!(code(&o), "HANDLER_BAD_CREDENTIAL", "{o:?}");
    assert_clean(&o, &[]);
    assert_eq!(
        server.seen.lock().unwrap().len(),
        1,
        "nothing else was sent"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn http_handler_without_token_or_secret_sends_neither() {
    let (base, server) = start_server().await;
    let s = HttpSecrets {
        url: format!("{base}/h/applied"),
        token: None,
        signing_secret: None,
    };
    let spec = HttpHandlerSpec {
        token_env: None,
        signing_secret_env: None,
        ..http_spec(HttpMethod::Post, 2_000)
    };
    let o = http_handler::run(&spec, "billing_handler", &s, &job()).await;
    assert_eq!(o.status, ReceiptStatus::Applied);
    let seen = server.seen.lock().unwrap()[0].clone();
    for h in [
        "authorization",
        "x-airlock-signature",
        "x-airlock-timestamp",
    ] {
        assert!(!seen.headers.contains_key(h), "{h} was sent");
    }
    assert_eq!(seen.headers["idempotency-key"], "wrp_123:INV-3001");
}

#[test]
fn handler_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let job = job();
    let s = secrets("http://127.0.0.1:1/".to_owned());
    let spec = http_spec(HttpMethod::Post, 10);
    assert_send(&http_handler::run(&spec, "x", &s, &job));
    let cspec = CommandHandlerSpec {
        command_env: "X".to_owned(),
        timeout_ms: 10,
    };
    assert_send(&command_handler::run(&cspec, "x", "/bin/true", &job));
}

// ---------------------------------------------------- the command handler

fn script(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn cmd_spec(timeout_ms: u64) -> CommandHandlerSpec {
    CommandHandlerSpec {
        command_env: "BILLING_HANDLER_COMMAND".to_owned(),
        timeout_ms,
    }
}

async fn run_cmd(command: &str, timeout_ms: u64, job: &WritebackJob) -> Outcome {
    command_handler::run(&cmd_spec(timeout_ms), "billing_command", command, job).await
}

const OK_SCRIPT: &str = r#"#!/usr/bin/env python3
import json, os, sys
job = json.load(sys.stdin)
out = sys.argv[1]
with open(os.path.join(out, "env.json"), "w") as f:
    json.dump(dict(os.environ), f)
with open(os.path.join(out, "payload.json"), "w") as f:
    json.dump(job, f)
assert job["idempotency_key"] == os.environ["AIRLOCK_IDEMPOTENCY_KEY"], "key mismatch"
assert job["writeback_job_id"] == os.environ["AIRLOCK_WRITEBACK_JOB_ID"], "job mismatch"
print("applying", job["idempotency_key"], file=sys.stderr)
print(json.dumps({"status": "applied", "rows_affected": 1,
                  "previous_version": job["change_set"]["guards"]["expected_version"]["value"],
                  "new_version": "2026-06-21T09:00:00Z", "idempotency_key": job["idempotency_key"]}))
"#;

#[tokio::test(flavor = "multi_thread")]
async fn command_handler_success_gets_the_payload_on_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let ok = script(dir.path(), "ok.py", OK_SCRIPT);
    let job = job();
    let o = run_cmd(
        &format!("{} {}", ok.display(), dir.path().display()),
        5_000,
        &job,
    )
    .await;
    assert_eq!(o.status, ReceiptStatus::Applied, "{o:?}");
    assert!(o.source_database_mutated);
    assert_eq!(o.previous_version, Some(json!(OLD_VERSION)));
    // stderr is kept, but the command's arguments are redacted from it.
    let detail = o.detail.clone().unwrap();
    assert!(
        detail.contains("stderr: applying wrp_123:INV-3001"),
        "{detail}"
    );
    let payload: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("payload.json")).unwrap())
            .unwrap();
    assert_eq!(payload, handler_payload(&job, false));
}

/// The child sees only PATH, LANG and the two AIRLOCK_ variables, even when
/// the executor's own environment holds write credentials. The test re-runs
/// itself with such a variable planted (setting it in-process needs unsafe).
#[tokio::test(flavor = "multi_thread")]
async fn command_handler_environment_is_minimal() {
    const PLANTED: &str = "postgres://writer:planted-pw@db.internal/app";
    if std::env::var("APP_WRITE_URL").is_err() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "command_handler_environment_is_minimal"])
            .env("APP_WRITE_URL", PLANTED)
            .env("BILLING_HANDLER_TOKEN", TOKEN)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "the re-run with a planted APP_WRITE_URL failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ok = script(dir.path(), "ok.py", OK_SCRIPT);
    let job = job();
    let o = run_cmd(
        &format!("{} {}", ok.display(), dir.path().display()),
        5_000,
        &job,
    )
    .await;
    assert_eq!(o.status, ReceiptStatus::Applied, "{o:?}");
    let env: BTreeMap<String, String> =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("env.json")).unwrap())
            .unwrap();
    let keys: Vec<&str> = env.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "AIRLOCK_IDEMPOTENCY_KEY",
            "AIRLOCK_WRITEBACK_JOB_ID",
            "LANG",
            "PATH"
        ],
        "{env:?}"
    );
    assert_eq!(env["PATH"], "/usr/local/bin:/usr/bin:/bin");
    assert_eq!(env["LANG"], "C.UTF-8");
    assert_eq!(env["AIRLOCK_IDEMPOTENCY_KEY"], "wrp_123:INV-3001");
    assert_eq!(env["AIRLOCK_WRITEBACK_JOB_ID"], job.job_id);
    let all = serde_json::to_string(&env).unwrap();
    assert!(!all.contains("planted-pw") && !all.contains(TOKEN));
}

#[tokio::test(flavor = "multi_thread")]
async fn command_handler_failure_stderr_is_scrubbed_and_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let fail = script(
        dir.path(),
        "fail.sh",
        r#"#!/bin/sh
i=0
while [ $i -lt 200 ]; do echo "noise line $i ................................" >&2; i=$((i+1)); done
echo "connecting to postgres://app:hunter2@db.internal/prod" >&2
echo "using token ghp_abcdefghijklmnopqrstuvwxyz0123456789" >&2
echo "argument was $1" >&2
echo "the final error" >&2
exit 3
"#,
    );
    let o = run_cmd(
        &format!("{} --password=SuperSecretArg123", fail.display()),
        5_000,
        &job(),
    )
    .await;
    assert_eq!(
        (o.status, code(&o)),
        (ReceiptStatus::Failed, "HANDLER_EXIT_3"),
        "{o:?}"
    );
    assert!(!o.source_database_mutated);
    let detail = o.detail.clone().unwrap();
    assert!(detail.contains("the final error"), "{detail}");
    assert!(!detail.contains("noise line 0 "), "not truncated: {detail}");
    assert!(
        detail.chars().count() < 3_000,
        "{} chars",
        detail.chars().count()
    );
    assert_clean(&o, &["ghp_abcdefghij", "SuperSecretArg123", "db.internal"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn command_handler_timeout_kills_the_whole_group() {
    let dir = tempfile::tempdir().unwrap();
    let hang = script(
        dir.path(),
        "hang.sh",
        "#!/bin/sh\necho $$ > \"$1/pid\"\nsleep 30 &\necho $! > \"$1/bgpid\"\necho started >&2\nwait\n",
    );
    let started = Instant::now();
    let o = run_cmd(
        &format!("{} {}", hang.display(), dir.path().display()),
        500,
        &job(),
    )
    .await;
    let elapsed = started.elapsed();
    assert_eq!(
        (o.status, code(&o)),
        (ReceiptStatus::Failed, "HANDLER_TIMEOUT"),
        "{o:?}"
    );
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    assert!(o.detail.as_deref().unwrap().contains("started"), "{o:?}");
    for f in ["pid", "bgpid"] {
        let pid = std::fs::read_to_string(dir.path().join(f)).unwrap();
        let pid = pid.trim();
        // Gone, or at most a zombie waiting for init (the sleep's parent died).
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| s.rsplit(") ").next().map(|r| r.chars().next().unwrap()));
            match state {
                None | Some('Z') | Some('X') => break,
                Some(s) if Instant::now() > deadline => {
                    panic!("{f} {pid} still alive in state {s}")
                }
                Some(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
    // The handler itself was reaped by us: not even a zombie.
    let pid = std::fs::read_to_string(dir.path().join("pid")).unwrap();
    assert!(!Path::new(&format!("/proc/{}", pid.trim())).exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn command_handler_bad_programs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let job = job();

    let garbage = script(d, "garbage.sh", "#!/bin/sh\necho 'this is not json'\n");
    let o = run_cmd(&garbage.display().to_string(), 5_000, &job).await;
    assert_eq!(code(&o), "HANDLER_BAD_RECEIPT", "{o:?}");

    let silent = script(d, "silent.sh", "#!/bin/sh\nexit 0\n");
    assert_eq!(
        code(&run_cmd(&silent.display().to_string(), 5_000, &job).await),
        "HANDLER_BAD_RECEIPT"
    );

    let huge = script(
        d,
        "huge.sh",
        "#!/bin/sh\nhead -c 200000 /dev/zero | tr '\\0' ' '\necho '{\"status\":\"applied\"}'\n",
    );
    let o = run_cmd(&huge.display().to_string(), 5_000, &job).await;
    assert_eq!(code(&o), "HANDLER_BAD_RECEIPT", "{o:?}");

    let conflict = script(
        d,
        "conflict.sh",
        "#!/bin/sh\ncat >/dev/null\necho '{\"status\":\"conflict\",\"safe_error_code\":\"VERSION_CONFLICT\"}'\nexit 1\n",
    );
    let o = run_cmd(&conflict.display().to_string(), 5_000, &job).await;
    assert_eq!(
        (o.status, code(&o)),
        (ReceiptStatus::Conflict, "VERSION_CONFLICT"),
        "{o:?}"
    );

    let liar = script(
        d,
        "liar.sh",
        "#!/bin/sh\necho '{\"status\":\"applied\"}'\nexit 2\n",
    );
    let o = run_cmd(&liar.display().to_string(), 5_000, &job).await;
    assert_eq!(
        (o.status, code(&o)),
        (ReceiptStatus::Failed, "HANDLER_EXIT_2"),
        "{o:?}"
    );

    let killed = script(d, "killed.sh", "#!/bin/sh\nkill -9 $$\n");
    let o = run_cmd(&killed.display().to_string(), 5_000, &job).await;
    assert_eq!(code(&o), "HANDLER_SIGNAL_9", "{o:?}");

    let plain = d.join("not-executable.sh");
    std::fs::write(&plain, "#!/bin/sh\necho '{\"status\":\"applied\"}'\n").unwrap();
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = run_cmd(&plain.display().to_string(), 5_000, &job).await;
    assert_eq!(
        (o.status, code(&o)),
        (ReceiptStatus::Failed, "HANDLER_NOT_EXECUTABLE"),
        "{o:?}"
    );
    let detail = o.detail.as_deref().unwrap();
    // The command comes from a credential variable: its path is withheld.
    assert!(
        !detail.contains("not-executable.sh") && detail.contains("Permission denied"),
        "{detail}"
    );

    for missing in ["/nonexistent/handler", "", "   "] {
        let o = run_cmd(missing, 5_000, &job).await;
        assert_eq!(code(&o), "HANDLER_NOT_EXECUTABLE", "{missing:?}: {o:?}");
    }

    // No shell: quotes and $VARS arrive literally, split on whitespace.
    let args = script(
        d,
        "args.py",
        "#!/usr/bin/env python3\nimport json, sys\nsys.stdin.read()\nopen(sys.argv[1], 'w').write(json.dumps(sys.argv[2:]))\nprint(json.dumps({'status': 'applied'}))\n",
    );
    let argv = d.join("argv.json");
    let o = run_cmd(
        &format!(
            "{}  {}\t\"a b\" $HOME;x `id`",
            args.display(),
            argv.display()
        ),
        5_000,
        &job,
    )
    .await;
    assert_eq!(o.status, ReceiptStatus::Applied, "{o:?}");
    let seen: Vec<String> = serde_json::from_str(&std::fs::read_to_string(&argv).unwrap()).unwrap();
    assert_eq!(seen, ["\"a", "b\"", "$HOME;x", "`id`"]);
}

// ------------------------------------------------------------ templates

#[test]
fn template_command_writes_once_and_refuses_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("handler.py");
    assert_eq!(handler_cmd::template("command", &out, true), Exit::Ok);
    let mode = std::fs::metadata(&out).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o755);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.starts_with("#!/usr/bin/env python3"));
    std::fs::write(&out, "mine").unwrap();
    assert_eq!(handler_cmd::template("command", &out, false), Exit::Failure);
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "mine",
        "not overwritten"
    );
    assert_eq!(
        handler_cmd::template("ruby-sinatra", &dir.path().join("x"), true),
        Exit::Usage
    );
    assert!(!dir.path().join("x").exists());
    for kind in ["node-fastify", "python-fastapi"] {
        let p = dir.path().join(kind);
        assert_eq!(handler_cmd::template(kind, &p, false), Exit::Ok);
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
    }
}

#[test]
fn templates_are_valid_programs() {
    let dir = tempfile::tempdir().unwrap();
    for t in handler_cmd::TEMPLATES {
        let text = t.text;
        assert!(text.contains("idempotency"), "{}", t.kind);
        assert!(
            text.contains("already_applied") && text.contains("VERSION_CONFLICT"),
            "{}",
            t.kind
        );
        if t.kind != "command" {
            assert!(
                text.contains("x-airlock-signature") && text.contains("v1="),
                "{}",
                t.kind
            );
        }
        let path = dir.path().join(t.kind);
        std::fs::write(&path, text).unwrap();
        let (prog, args): (&str, Vec<&str>) = if t.kind == "node-fastify" {
            ("node", vec!["--check"])
        } else {
            (
                "python3",
                vec!["-c", "import ast,sys; ast.parse(open(sys.argv[1]).read())"],
            )
        };
        match std::process::Command::new(prog)
            .args(&args)
            .arg(&path)
            .output()
        {
            Ok(out) => assert!(
                out.status.success(),
                "{}: {}",
                t.kind,
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => panic!(
                "{prog} is needed to check the {} template (node and python3 are on this machine kind): {e}",
                t.kind
            ),
        }
    }
}

/// The command template, run for real by the command_handler executor
/// against a SQLite "application database".
#[tokio::test(flavor = "multi_thread")]
async fn command_template_applies_once_and_rechecks_guards() {
    let dir = tempfile::tempdir().unwrap();
    let handler = dir.path().join("handler.py");
    assert_eq!(handler_cmd::template("command", &handler, true), Exit::Ok);
    let db_path = dir.path().join("app.db");
    {
        let db = rusqlite::Connection::open(&db_path).unwrap();
        db.execute_batch(
            "CREATE TABLE invoices (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL,
               late_fee_cents INTEGER, waiver_reason TEXT, updated_at TEXT NOT NULL);
             INSERT INTO invoices VALUES ('INV-3001', 'acme', 5500, NULL, '2026-06-20T14:31:08Z');",
        )
        .unwrap();
    }
    let command = format!("{} {}", handler.display(), db_path.display());
    let row =
        || {
            let db = rusqlite::Connection::open(&db_path).unwrap();
            db.query_row(
            "SELECT late_fee_cents, waiver_reason, updated_at FROM invoices WHERE id = 'INV-3001'",
            [],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Option<String>>(1)?, r.get::<_, String>(2)?)),
        )
        .unwrap()
        };

    // Another tenant's proposal for the same id: not found for that tenant.
    let o = run_cmd(&command, 10_000, &job_for("wrp_777", "globex", 1)).await;
    assert_eq!(
        (o.status, code(&o)),
        (ReceiptStatus::Conflict, "ROW_NOT_FOUND"),
        "{o:?}"
    );
    assert_eq!(row().0, 5500);

    // First apply.
    let o = run_cmd(&command, 10_000, &job_for("wrp_123", "acme", 1)).await;
    assert_eq!(o.status, ReceiptStatus::Applied, "{o:?}");
    assert!(o.source_database_mutated);
    assert_eq!(o.rows_affected, 1);
    assert_eq!(o.previous_version, Some(json!(OLD_VERSION)));
    let (fee, reason, version) = row();
    assert_eq!(
        (fee, reason.as_deref()),
        (0, Some("customer requested review"))
    );
    assert_ne!(version, OLD_VERSION);
    assert_eq!(o.new_version, Some(json!(version)));

    // A retry (new job id, same idempotency key): already applied, no write.
    let o = run_cmd(&command, 10_000, &job_for("wrp_123", "acme", 2)).await;
    assert_eq!(o.status, ReceiptStatus::AlreadyApplied, "{o:?}");
    assert!(!o.source_database_mutated);
    assert_eq!(o.new_version, Some(json!(version)));
    assert_eq!(row().2, version);

    // A different proposal made against the old version: conflict.
    let o = run_cmd(&command, 10_000, &job_for("wrp_124", "acme", 1)).await;
    assert_eq!(
        (o.status, code(&o)),
        (ReceiptStatus::Conflict, "VERSION_CONFLICT"),
        "{o:?}"
    );
    assert_eq!(o.new_version, Some(json!(version)));
    assert_eq!(row().2, version);

    // Missing database argument: a failed receipt, exit 2.
    let o = run_cmd(&handler.display().to_string(), 10_000, &job()).await;
    assert_eq!(
        (o.status, code(&o)),
        (ReceiptStatus::Failed, "HANDLER_USAGE"),
        "{o:?}"
    );
}

// ------------------------------------ the command template: every kind of change

/// The reference config plus four capabilities applied by a command
/// handler, on the tables the command template's own allow-list names: an
/// INSERT of `credit_notes`, a set UPDATE of `tickets`, and a DELETE and a
/// set DELETE of `sessions`.
fn kinds_config() -> airlock_policy::Config {
    let mut v: Value = serde_json::from_str(CONFIG).unwrap();
    v["executors"] = json!({"billing_command": {
        "type": "command_handler", "command_env": "BILLING_HANDLER_COMMAND"}});
    let target = |table: &str| json!({"schema": "public", "table": table, "primary_key": "id", "tenant_key": "tenant_id"});
    let approval = json!({"mode": "human", "required_role": "billing_lead"});
    let caps = v["capabilities"].as_array_mut().unwrap();
    caps.push(json!({
        "name": "billing.propose_credit_note",
        "kind": "proposal",
        "source": "app_postgres",
        "context": "local_operator",
        "executor": "billing_command",
        "target": target("credit_notes"),
        "args": {
            "customer_id": {"type": "string", "required": true, "max_length": 64},
            "amount_cents": {"type": "integer", "required": true, "minimum": 1, "maximum": 5000}
        },
        "visible_columns": ["id", "customer_id", "amount_cents"],
        "patch": {
            "customer_id": {"from_arg": "customer_id"},
            "amount_cents": {"from_arg": "amount_cents"},
            "created_at": {"apply_time": true}
        },
        "allowed_columns": ["customer_id", "amount_cents", "created_at"],
        "operation": {"kind": "insert", "deduplication": {"components": [
            {"column": "tenant_id", "source": "trusted_tenant"},
            {"column": "request_id", "source": "proposal_id"}
        ]}},
        "approval": approval,
    }));
    caps.push(json!({
        "name": "tickets.close_overdue",
        "kind": "proposal",
        "source": "app_postgres",
        "context": "local_operator",
        "executor": "billing_command",
        "target": target("tickets"),
        "args": {"reason": {"type": "string", "required": true, "max_length": 200}},
        "visible_columns": ["id", "tenant_id", "status", "cost_cents", "close_reason", "version"],
        "evidence": "required",
        "max_rows": 1,
        "patch": {"status": {"fixed": "closed"}, "close_reason": {"from_arg": "reason"}},
        "allowed_columns": ["status", "close_reason"],
        "conflict_guard": {"column": "version"},
        "operation": {
            "kind": "update",
            "cardinality": "set",
            "selection": {"all": [{"column": "status", "operator": "eq", "value": "overdue"}]},
            "max_rows": 10,
            "aggregate_bounds": [{"column": "cost_cents", "measure": "before", "maximum": 50000}],
            "version_advance": {"column": "version", "strategy": "integer_increment"}
        },
        "approval": approval,
    }));
    caps.push(json!({
        "name": "sessions.remove_session",
        "kind": "proposal",
        "source": "app_postgres",
        "context": "local_operator",
        "executor": "billing_command",
        "target": target("sessions"),
        "args": {"session_id": {"type": "string", "required": true, "max_length": 64}},
        "lookup": {"id_from_arg": "session_id"},
        "visible_columns": ["id", "tenant_id", "state", "size", "version"],
        "evidence": "required",
        "max_rows": 1,
        "conflict_guard": {"column": "version"},
        "operation": {"kind": "delete"},
        "approval": approval,
    }));
    caps.push(json!({
        "name": "sessions.purge_stale",
        "kind": "proposal",
        "source": "app_postgres",
        "context": "local_operator",
        "executor": "billing_command",
        "target": target("sessions"),
        "args": {"why": {"type": "string", "required": false, "max_length": 100}},
        "visible_columns": ["id", "tenant_id", "state", "size", "version"],
        "evidence": "required",
        "max_rows": 1,
        "conflict_guard": {"column": "version"},
        "operation": {
            "kind": "delete",
            "cardinality": "set",
            "selection": {"all": [{"column": "state", "operator": "eq", "value": "stale"}]},
            "max_rows": 10,
            "aggregate_bounds": [{"column": "size", "measure": "before", "maximum": 100}]
        },
        "approval": approval,
    }));
    let loaded = airlock_policy::load_config_str(&v.to_string());
    loaded
        .config
        .unwrap_or_else(|| panic!("the test config is refused: {:?}", loaded.report))
}

/// A command-handler job for a change set, keyed as `airlock apply` keys it.
fn handler_job(cs: ChangeSet, proposal_id: &str, attempt: u32) -> WritebackJob {
    WritebackJob {
        job_id: format!("wbj_{proposal_id}_{attempt}"),
        proposal_id: proposal_id.to_owned(),
        idempotency_key: format!("{proposal_id}:{}", cs.object_id()),
        attempt,
        proposal_hash: cs.hash(),
        capability: cs.capability.clone(),
        executor: "billing_command".to_owned(),
        source_id: "app_postgres".to_owned(),
        engine: Engine::Postgres,
        evidence_id: Some("ev_789".to_owned()),
        change_set: cs,
        dependencies: Vec::new(),
    }
}

fn acme() -> TrustedContext {
    TrustedContext {
        tenant_id: "acme".to_owned(),
        principal: "support_agent_17".to_owned(),
        source: ContextProvider::Environment,
    }
}

/// The change set of one row (`row` as read; empty for an INSERT).
fn row_change(
    config: &airlock_policy::Config,
    capability: &str,
    args: Value,
    ctx: &TrustedContext,
    row: &Map<String, Value>,
) -> ChangeSet {
    let cap = config.capability(capability).unwrap();
    let args = validate_args(cap, Some(&args)).unwrap();
    change_set::build(cap, &args, ctx, row).unwrap()
}

/// The change set of a bounded set from the rows its selection matched.
fn set_change(
    config: &airlock_policy::Config,
    capability: &str,
    args: Value,
    rows: &[Map<String, Value>],
) -> ChangeSet {
    let cap = config.capability(capability).unwrap();
    let args = validate_args(cap, Some(&args)).unwrap();
    bounded_set::build(cap, &args, &acme(), rows).unwrap()
}

/// Rows of the SQLite app database as JSON objects, as a proposer reads them.
fn read_rows(db: &Path, sql: &str) -> Vec<Map<String, Value>> {
    let db = rusqlite::Connection::open(db).unwrap();
    let mut stmt = db.prepare(sql).unwrap();
    let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
    stmt.query_map([], |r| {
        let mut row = Map::new();
        for (i, name) in names.iter().enumerate() {
            let v = match r.get_ref(i)? {
                rusqlite::types::ValueRef::Null => Value::Null,
                rusqlite::types::ValueRef::Integer(n) => json!(n),
                rusqlite::types::ValueRef::Real(f) => json!(f),
                rusqlite::types::ValueRef::Text(t) => json!(String::from_utf8_lossy(t)),
                rusqlite::types::ValueRef::Blob(_) => panic!("no blobs here"),
            };
            row.insert(name.clone(), v);
        }
        Ok(row)
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

fn exec(db: &Path, sql: &str) {
    rusqlite::Connection::open(db)
        .unwrap()
        .execute_batch(sql)
        .unwrap();
}

/// Runs the FastAPI template's `apply` as a command: stand-ins for the
/// web framework (only `apply` and the helpers it calls are exercised, with
/// SQLite as the template ships), the template's path and the database as
/// arguments.
const FASTAPI_SHIM: &str = r#"#!/usr/bin/env python3
import importlib.util, json, os, sys, types
for name in ["fastapi", "fastapi.responses", "starlette", "starlette.concurrency"]:
    sys.modules[name] = types.ModuleType(name)
class App:
    def post(self, *a, **k):
        return lambda f: f
sys.modules["fastapi"].FastAPI = App
sys.modules["fastapi"].Request = object
sys.modules["fastapi.responses"].JSONResponse = object
sys.modules["starlette.concurrency"].run_in_threadpool = None
os.environ["HANDLER_SIGNING_SECRET"] = "not-used-here"
os.environ["APP_DB_PATH"] = sys.argv[2]
spec = importlib.util.spec_from_file_location("handler", sys.argv[1])
handler = importlib.util.module_from_spec(spec)
spec.loader.exec_module(handler)
print(json.dumps(handler.apply(json.load(sys.stdin))))
"#;

/// The two Python templates whose `apply` runs for real here.
const PY_TEMPLATES: [&str; 2] = ["command", "python-fastapi"];

/// A template written by `airlock handler template KIND`, an app database
/// with the templates' example tables, and the command that runs it (the
/// command template itself; the FastAPI template's `apply` via a shim).
fn template_world(dir: &Path, kind: &str) -> (PathBuf, String) {
    let dir = dir.join(kind);
    std::fs::create_dir(&dir).unwrap();
    let handler = dir.join("handler.py");
    assert_eq!(handler_cmd::template(kind, &handler, true), Exit::Ok);
    let db = dir.join("app.db");
    exec(
        &db,
        "CREATE TABLE credit_notes (id INTEGER PRIMARY KEY, tenant_id TEXT NOT NULL,
           customer_id TEXT NOT NULL, amount_cents INTEGER NOT NULL, request_id TEXT NOT NULL,
           created_at TEXT NOT NULL, UNIQUE (tenant_id, request_id));
         CREATE TABLE tickets (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, status TEXT NOT NULL,
           cost_cents INTEGER NOT NULL, close_reason TEXT, version INTEGER NOT NULL);
         CREATE TABLE sessions (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, state TEXT NOT NULL,
           size INTEGER NOT NULL, version INTEGER NOT NULL);
         INSERT INTO tickets VALUES ('T-01', 'acme', 'overdue', 8000, NULL, 1),
           ('T-02', 'acme', 'overdue', 15000, NULL, 1), ('T-03', 'acme', 'overdue', 2000, NULL, 1),
           ('T-04', 'acme', 'overdue', 5000, NULL, 1), ('T-05', 'acme', 'closed', 100, NULL, 1),
           ('T-99', 'globex', 'overdue', 49000, NULL, 1);
         INSERT INTO sessions VALUES ('S-1', 'acme', 'stale', 10, 1), ('S-2', 'acme', 'stale', 20, 1),
           ('S-3', 'acme', 'stale', 30, 1), ('S-4', 'acme', 'live', 40, 1),
           ('S-9', 'globex', 'stale', 50, 1);",
    );
    let command = if kind == "command" {
        format!("{} {}", handler.display(), db.display())
    } else {
        let shim = script(&dir, "shim.py", FASTAPI_SHIM);
        format!("{} {} {}", shim.display(), handler.display(), db.display())
    };
    (db, command)
}

/// Run the template directly with a payload (for a dry run, which the
/// executor never sends).
fn run_template_directly(command: &str, payload: &Value) -> Value {
    use std::io::Write as _;
    let mut parts = command.split_whitespace();
    let mut child = std::process::Command::new(parts.next().unwrap())
        .args(parts)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(payload.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

fn count(db: &Path, sql: &str) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

/// INSERT through a Python template: one row with the patch, the
/// trusted tenant, the identity (the proposal id filled in) and the apply
/// time; a retry is `already_applied`; the same identity under another key
/// (a lost processed-key record) meets the table's unique constraint.
async fn insert_one_row_per_identity(kind: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (db, command) = template_world(dir.path(), kind);
    let config = kinds_config();
    let note = |customer: &str, amount: i64| {
        row_change(
            &config,
            "billing.propose_credit_note",
            json!({"customer_id": customer, "amount_cents": amount}),
            &acme(),
            &Map::new(),
        )
    };
    let job = handler_job(note("CUS-1", 1200), "wrp_ins1", 1);

    // What the template is given.
    let p = handler_payload(&job, false);
    assert_eq!(
        p["operation"],
        json!({"kind": "insert", "cardinality": "single"})
    );
    assert_eq!(
        p["change_set"]["guards"]["deduplication"],
        json!([{"column": "tenant_id", "source": "trusted_tenant", "value": "acme"},
               {"column": "request_id", "source": "proposal_id", "value": "wrp_ins1"}])
    );
    assert_eq!(p["change_set"]["apply_time"], json!(["created_at"]));
    assert_eq!(p["idempotency_key"], "wrp_ins1:null");

    // A dry run checks everything (the insert included) and keeps nothing.
    let r = run_template_directly(&command, &handler_payload(&job, true));
    assert_eq!(
        (r["status"].as_str(), r["safe_error_code"].as_str()),
        (Some("failed"), Some("DRY_RUN_OK")),
        "{r}"
    );
    assert_eq!(count(&db, "SELECT count(*) FROM credit_notes"), 0);

    let o = run_cmd(&command, 10_000, &job).await;
    assert_eq!(o.status, ReceiptStatus::Applied, "{o:?}");
    assert!(o.source_database_mutated);
    assert_eq!(o.rows_affected, 1);
    let rows = read_rows(
        &db,
        "SELECT tenant_id, customer_id, amount_cents, request_id, created_at FROM credit_notes",
    );
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(
        (
            &row["tenant_id"],
            &row["customer_id"],
            &row["amount_cents"],
            &row["request_id"]
        ),
        (
            &json!("acme"),
            &json!("CUS-1"),
            &json!(1200),
            &json!("wrp_ins1")
        )
    );
    let created = row["created_at"].as_str().unwrap();
    assert!(
        created.starts_with("20") && created.ends_with('Z'),
        "{created}"
    );

    // The retry (same key, next attempt): already applied, still one row.
    let o = run_cmd(
        &command,
        10_000,
        &handler_job(note("CUS-1", 1200), "wrp_ins1", 2),
    )
    .await;
    assert_eq!(o.status, ReceiptStatus::AlreadyApplied, "{o:?}");
    assert!(!o.source_database_mutated);
    assert_eq!(count(&db, "SELECT count(*) FROM credit_notes"), 1);

    // The same identity under another key: the unique constraint answers.
    let mut other_key = handler_job(note("CUS-1", 1200), "wrp_ins1", 3);
    other_key.idempotency_key = "wrp_ins1:resent".to_owned();
    let o = run_cmd(&command, 10_000, &other_key).await;
    assert_eq!(
        (o.status, code(&o)),
        (ReceiptStatus::Conflict, "DEDUP_CONFLICT"),
        "{o:?}"
    );
    // Likewise when the handler's record of the key is lost.
    exec(&db, "DELETE FROM airlock_processed_keys");
    let o = run_cmd(
        &command,
        10_000,
        &handler_job(note("CUS-1", 1200), "wrp_ins1", 4),
    )
    .await;
    assert_eq!(
        (o.status, code(&o)),
        (ReceiptStatus::Conflict, "DEDUP_CONFLICT"),
        "{o:?}"
    );
    assert_eq!(count(&db, "SELECT count(*) FROM credit_notes"), 1);

    // Another approved proposal is another identity: a second row.
    let o = run_cmd(
        &command,
        10_000,
        &handler_job(note("CUS-2", 300), "wrp_ins2", 1),
    )
    .await;
    assert_eq!(o.status, ReceiptStatus::Applied, "{o:?}");
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM credit_notes WHERE request_id = 'wrp_ins2' AND customer_id = 'CUS-2'"
        ),
        1
    );

    // Without the unique constraint the lost-record retry would have added
    // a second row: the constraint is the guard, not the handler's memory.
    exec(
        &db,
        "CREATE TABLE loose AS SELECT * FROM credit_notes; DROP TABLE credit_notes;
         CREATE TABLE credit_notes (id INTEGER PRIMARY KEY, tenant_id TEXT NOT NULL,
           customer_id TEXT NOT NULL, amount_cents INTEGER NOT NULL, request_id TEXT NOT NULL,
           created_at TEXT NOT NULL);
         INSERT INTO credit_notes SELECT * FROM loose; DELETE FROM airlock_processed_keys;",
    );
    let o = run_cmd(
        &command,
        10_000,
        &handler_job(note("CUS-1", 1200), "wrp_ins1", 5),
    )
    .await;
    assert_eq!(o.status, ReceiptStatus::Applied, "{o:?}");
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM credit_notes WHERE request_id = 'wrp_ins1'"
        ),
        2
    );

    // Outside the template's allow-list: refused, nothing written.
    let mut cs = note("CUS-3", 10);
    cs.patch.insert("tenant_note".to_owned(), json!("x"));
    let o = run_cmd(&command, 10_000, &handler_job(cs, "wrp_ins3", 1)).await;
    assert_eq!(
        (o.status, code(&o)),
        (ReceiptStatus::Failed, "COLUMN_NOT_ALLOWED"),
        "{o:?}"
    );
    let mut cs = note("CUS-3", 10);
    cs.guards.deduplication.pop();
    let o = run_cmd(&command, 10_000, &handler_job(cs, "wrp_ins3", 1)).await;
    assert_eq!(
        (o.status, code(&o)),
        (ReceiptStatus::Failed, "DEDUP_GUARD_MISSING"),
        "{o:?}"
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM credit_notes WHERE customer_id = 'CUS-3'"
        ),
        0
    );
}

/// DELETE of one row through a Python template: by key, tenant and the
/// exact version; another tenant's key is not found; a moved version is a
/// conflict; a retry is `already_applied`.
async fn delete_one_row_at_its_version(kind: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (db, command) = template_world(dir.path(), kind);
    let config = kinds_config();
    let session = |id: &str| {
        read_rows(
            &db,
            &format!("SELECT id, tenant_id, state, size, version FROM sessions WHERE id = '{id}'"),
        )
        .pop()
        .unwrap()
    };
    let remove = |row: &Map<String, Value>, ctx: &TrustedContext| {
        row_change(
            &config,
            "sessions.remove_session",
            json!({"session_id": row["id"]}),
            ctx,
            row,
        )
    };
    let exists = |id: &str| {
        count(
            &db,
            &format!("SELECT count(*) FROM sessions WHERE id = '{id}'"),
        )
    };

    let s1 = session("S-1");
    let job = handler_job(remove(&s1, &acme()), "wrp_del1", 1);
    let p = handler_payload(&job, false);
    assert_eq!(
        p["operation"],
        json!({"kind": "delete", "cardinality": "single"})
    );
    assert_eq!(
        p["change_set"]["before"],
        json!({"tenant_id": "acme", "state": "stale", "size": 10, "version": 1})
    );
    assert_eq!(p["change_set"]["patch"], json!({}));

    // Another tenant asking for S-1 (as if it had read such a row): not found.
    let globex = TrustedContext {
        tenant_id: "globex".to_owned(),
        ..acme()
    };
    let mut theirs = s1.clone();
    theirs.insert("tenant_id".to_owned(), json!("globex"));
    let o = run_cmd(
        &command,
        10_000,
        &handler_job(remove(&theirs, &globex), "wrp_del9", 1),
    )
    .await;
    assert_eq!(
        (o.status, code(&o)),
        (ReceiptStatus::Conflict, "ROW_NOT_FOUND"),
        "{o:?}"
    );
    assert_eq!(exists("S-1"), 1);

    // Applied: the row is gone.
    let o = run_cmd(&command, 10_000, &job).await;
    assert_eq!(o.status, ReceiptStatus::Applied, "{o:?}");
    assert_eq!(o.rows_affected, 1);
    assert_eq!(o.previous_version, Some(json!(1)));
    assert_eq!(exists("S-1"), 0);
    // The retry: already applied.
    let o = run_cmd(
        &command,
        10_000,
        &handler_job(remove(&s1, &acme()), "wrp_del1", 2),
    )
    .await;
    assert_eq!(o.status, ReceiptStatus::AlreadyApplied, "{o:?}");
    assert!(!o.source_database_mutated);

    // S-2 moved on after it was read: its version is checked exactly.
    let s2 = session("S-2");
    exec(&db, "UPDATE sessions SET version = 2 WHERE id = 'S-2'");
    let o = run_cmd(
        &command,
        10_000,
        &handler_job(remove(&s2, &acme()), "wrp_del2", 1),
    )
    .await;
    assert_eq!(
        (o.status, code(&o)),
        (ReceiptStatus::Conflict, "VERSION_CONFLICT"),
        "{o:?}"
    );
    assert_eq!(o.new_version, Some(json!(2)));
    assert_eq!(exists("S-2"), 1);
    // A value the reviewer saw changed without the version: still refused.
    let s3 = session("S-3");
    exec(&db, "UPDATE sessions SET state = 'live' WHERE id = 'S-3'");
    let o = run_cmd(
        &command,
        10_000,
        &handler_job(remove(&s3, &acme()), "wrp_del3", 1),
    )
    .await;
    assert_eq!(
        (o.status, code(&o)),
        (ReceiptStatus::Conflict, "STALE_ROW"),
        "{o:?}"
    );
    assert_eq!(exists("S-3"), 1);
}

fn ticket_rows(db: &Path) -> Vec<(String, String, Option<String>, i64)> {
    read_rows(
        db,
        "SELECT id, status, close_reason, version FROM tickets ORDER BY id",
    )
    .into_iter()
    .map(|r| {
        (
            r["id"].as_str().unwrap().to_owned(),
            r["status"].as_str().unwrap().to_owned(),
            r["close_reason"].as_str().map(str::to_owned),
            r["version"].as_i64().unwrap(),
        )
    })
    .collect()
}

/// A set UPDATE through a Python template: every member checked first
/// (one that moved, in its version or any value it was frozen with, aborts
/// the whole set with nothing changed), then each member updated with its
/// `after` values and its version advanced by one; one idempotency record.
async fn update_a_set_all_or_nothing(kind: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (db, command) = template_world(dir.path(), kind);
    let config = kinds_config();
    let overdue = || {
        read_rows(
            &db,
            "SELECT id, tenant_id, status, cost_cents, close_reason, version FROM tickets
             WHERE tenant_id = 'acme' AND status = 'overdue' ORDER BY id",
        )
    };
    let close = |rows: &[Map<String, Value>]| {
        set_change(
            &config,
            "tickets.close_overdue",
            json!({"reason": "written off"}),
            rows,
        )
    };
    let rows = overdue();
    assert_eq!(rows.len(), 4);
    let job = handler_job(close(&rows), "wrp_set1", 1);

    let p = handler_payload(&job, false);
    assert_eq!(
        p["operation"],
        json!({"kind": "update", "cardinality": "set"})
    );
    let set = &p["change_set"]["set"];
    assert_eq!(
        (set["row_count"].as_u64(), set["max_rows"].as_u64()),
        (Some(4), Some(10))
    );
    assert_eq!(set["members"][0]["primary_key"], "T-01");
    assert_eq!(set["members"][0]["before"]["version"], 1);
    assert_eq!(set["members"][0]["after"]["status"], "closed");
    assert_eq!(
        p["change_set"]["target"]["primary_key"]["value"],
        Value::Null
    );
    let object_id = p["change_set"]["scope"]["object_id"].as_str().unwrap();
    assert!(
        object_id.starts_with("set_") && object_id.len() == 12,
        "{object_id}"
    );
    assert_eq!(job.idempotency_key, format!("wrp_set1:{object_id}"));

    let untouched = ticket_rows(&db);

    // One member's version moved: nothing is changed.
    exec(&db, "UPDATE tickets SET version = 2 WHERE id = 'T-03'");
    let o = run_cmd(&command, 10_000, &job).await;
    assert_eq!(
        (o.status, code(&o)),
        (ReceiptStatus::Conflict, "SET_DRIFT_CONFLICT"),
        "{o:?}"
    );
    assert!(!o.source_database_mutated);
    assert!(o.detail.as_deref().unwrap().contains("T-03"), "{o:?}");
    let mut expected = untouched.clone();
    expected[2].3 = 2;
    assert_eq!(ticket_rows(&db), expected, "nothing changed");
    // The last member moved in a value it was frozen with (not its
    // version): the members before it, already checked, stay unchanged.
    exec(
        &db,
        "UPDATE tickets SET version = 1 WHERE id = 'T-03';
         UPDATE tickets SET cost_cents = 5001 WHERE id = 'T-04'",
    );
    let o = run_cmd(&command, 10_000, &handler_job(close(&rows), "wrp_set2", 1)).await;
    assert_eq!(
        (o.status, code(&o)),
        (ReceiptStatus::Conflict, "SET_DRIFT_CONFLICT"),
        "{o:?}"
    );
    assert_eq!(ticket_rows(&db), untouched, "nothing changed");
    exec(
        &db,
        "UPDATE tickets SET cost_cents = 5000 WHERE id = 'T-04'",
    );

    // Applied: every member once, version + 1; nothing else.
    let o = run_cmd(&command, 10_000, &handler_job(close(&rows), "wrp_set3", 1)).await;
    assert_eq!(o.status, ReceiptStatus::Applied, "{o:?}");
    assert!(o.source_database_mutated);
    assert_eq!(o.rows_affected, 4);
    let after = ticket_rows(&db);
    for (id, status, reason, version) in &after {
        if ["T-01", "T-02", "T-03", "T-04"].contains(&id.as_str()) {
            assert_eq!(
                (status.as_str(), reason.as_deref(), *version),
                ("closed", Some("written off"), 2),
                "{id}"
            );
        }
    }
    assert_eq!(after[4], untouched[4], "T-05 was not a member");
    assert_eq!(after[5], untouched[5], "another tenant's row");
    // One record for the whole set.
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM airlock_processed_keys WHERE idempotency_key LIKE 'wrp_set3:set_%'"
        ),
        1
    );

    // The retry: already applied; no member advances again.
    let o = run_cmd(&command, 10_000, &handler_job(close(&rows), "wrp_set3", 2)).await;
    assert_eq!(o.status, ReceiptStatus::AlreadyApplied, "{o:?}");
    assert_eq!(o.rows_affected, 0);
    assert_eq!(ticket_rows(&db), after);

    // A kind of change the template's allow-list does not name for the
    // table (tickets are never deleted): refused, nothing changed.
    let mut cs = close(&rows);
    cs.operation = airlock_policy::config::OperationKind::Delete;
    let o = run_cmd(&command, 10_000, &handler_job(cs, "wrp_set4", 1)).await;
    assert_eq!(
        (o.status, code(&o)),
        (ReceiptStatus::Failed, "OPERATION_NOT_HANDLED"),
        "{o:?}"
    );
    assert_eq!(ticket_rows(&db), after);
}

/// A set DELETE through a Python template: a member gone since the
/// proposal aborts it with nothing removed; otherwise every member goes at
/// its exact version, and nothing else.
async fn delete_a_set(kind: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (db, command) = template_world(dir.path(), kind);
    let config = kinds_config();
    let rows = read_rows(
        &db,
        "SELECT id, tenant_id, state, size, version FROM sessions
         WHERE tenant_id = 'acme' AND state = 'stale' ORDER BY id",
    );
    assert_eq!(rows.len(), 3);
    let purge = || set_change(&config, "sessions.purge_stale", json!({}), &rows);
    let ids = || {
        read_rows(&db, "SELECT id FROM sessions ORDER BY id")
            .into_iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let p = handler_payload(&handler_job(purge(), "wrp_purge1", 1), false);
    assert_eq!(
        p["operation"],
        json!({"kind": "delete", "cardinality": "set"})
    );
    assert_eq!(p["change_set"]["set"]["members"][1]["after"], json!({}));

    // S-2 was removed since: the set is refused whole.
    exec(&db, "DELETE FROM sessions WHERE id = 'S-2'");
    let o = run_cmd(&command, 10_000, &handler_job(purge(), "wrp_purge1", 1)).await;
    assert_eq!(
        (o.status, code(&o)),
        (ReceiptStatus::Conflict, "SET_MEMBER_MISSING"),
        "{o:?}"
    );
    assert_eq!(ids(), ["S-1", "S-3", "S-4", "S-9"]);

    exec(
        &db,
        "INSERT INTO sessions VALUES ('S-2', 'acme', 'stale', 20, 1)",
    );
    let o = run_cmd(&command, 10_000, &handler_job(purge(), "wrp_purge2", 1)).await;
    assert_eq!(o.status, ReceiptStatus::Applied, "{o:?}");
    assert_eq!(o.rows_affected, 3);
    assert_eq!(ids(), ["S-4", "S-9"]);
    let o = run_cmd(&command, 10_000, &handler_job(purge(), "wrp_purge2", 2)).await;
    assert_eq!(o.status, ReceiptStatus::AlreadyApplied, "{o:?}");
    assert_eq!(ids(), ["S-4", "S-9"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn templates_insert_one_row_per_identity() {
    for kind in PY_TEMPLATES {
        eprintln!("template: {kind}");
        insert_one_row_per_identity(kind).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn templates_delete_one_row_at_its_version() {
    for kind in PY_TEMPLATES {
        eprintln!("template: {kind}");
        delete_one_row_at_its_version(kind).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn templates_update_a_set_all_or_nothing() {
    for kind in PY_TEMPLATES {
        eprintln!("template: {kind}");
        update_a_set_all_or_nothing(kind).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn templates_delete_a_set() {
    for kind in PY_TEMPLATES {
        eprintln!("template: {kind}");
        delete_a_set(kind).await;
    }
}

/// Loads the Fastify template with a stand-in for the framework (the
/// template's own code runs unchanged, in memory as it ships), seeds its
/// store, runs its `apply` on each payload in turn, and prints the receipts
/// and the rows left.
const FASTIFY_SHIM: &str = r#"
const fs = require('node:fs');
const vm = require('node:vm');
const input = JSON.parse(fs.readFileSync(0, 'utf8'));
const framework = { addContentTypeParser() {}, route() {}, listen: () => Promise.resolve(), log: { error() {} } };
const ctx = vm.createContext({
  require: (name) => (name === 'fastify' ? () => framework : require(name)),
  process: { env: { HANDLER_SIGNING_SECRET: 'not-used-here' }, exit() { throw new Error('exit'); } },
  console, Buffer,
});
vm.runInContext(fs.readFileSync(process.argv[2], 'utf8'), ctx);
const seed = vm.runInContext('(key, row) => rows.set(key, row)', ctx);
for (const [key, row] of input.seed) seed(key, row);
const apply = vm.runInContext('apply', ctx);
const receipts = input.payloads.map((p) => apply(p));
const left = Object.fromEntries(vm.runInContext('[...rows.entries()]', ctx));
console.log(JSON.stringify({ receipts, rows: left }));
"#;

/// The Fastify template's `apply` (its in-memory store as it ships) on
/// every kind, with payloads from real change sets: an insert once, its
/// retry, the same identity under another key; a set update with a stale
/// member (nothing changed), then applied and retried; a set delete; a
/// one-row delete and its retry.
#[test]
fn fastify_template_applies_every_kind() {
    let dir = tempfile::tempdir().unwrap();
    let handler = dir.path().join("handler.js");
    assert_eq!(
        handler_cmd::template("node-fastify", &handler, true),
        Exit::Ok
    );
    let config = kinds_config();
    let ticket = |id: &str, version: i64| {
        json!({"id": id, "tenant_id": "acme", "status": "overdue", "cost_cents": 1000,
               "close_reason": null, "version": version})
        .as_object()
        .unwrap()
        .clone()
    };
    let session = |id: &str| {
        json!({"id": id, "tenant_id": "acme", "state": "stale", "size": 10, "version": 1})
            .as_object()
            .unwrap()
            .clone()
    };
    let tickets: Vec<_> = ["T-01", "T-02", "T-03"]
        .iter()
        .map(|id| ticket(id, 1))
        .collect();
    let sessions: Vec<_> = ["S-1", "S-2"].iter().map(|id| session(id)).collect();
    let mut seed: Vec<Value> = Vec::new();
    for r in tickets.iter().chain(&sessions).chain([&session("S-7")]) {
        let table = if r.contains_key("status") {
            "tickets"
        } else {
            "sessions"
        };
        seed.push(json!([
            format!("{table}/acme/{}", r["id"].as_str().unwrap()),
            r
        ]));
    }
    let note = row_change(
        &config,
        "billing.propose_credit_note",
        json!({"customer_id": "CUS-1", "amount_cents": 700}),
        &acme(),
        &Map::new(),
    );
    let close = |rows: &[Map<String, Value>]| {
        set_change(
            &config,
            "tickets.close_overdue",
            json!({"reason": "old"}),
            rows,
        )
    };
    let mut stale = tickets.clone();
    stale[2] = ticket("T-03", 0); // read before T-03 moved on
    let purge = set_change(&config, "sessions.purge_stale", json!({}), &sessions);
    let remove = row_change(
        &config,
        "sessions.remove_session",
        json!({"session_id": "S-7"}),
        &acme(),
        &session("S-7"),
    );
    let mut other_key = handler_job(note.clone(), "wrp_n1", 2);
    other_key.idempotency_key = "wrp_n1:resent".to_owned();
    let jobs = [
        handler_job(note.clone(), "wrp_n1", 1),
        handler_job(note.clone(), "wrp_n1", 2),
        other_key,
        handler_job(close(&stale), "wrp_s1", 1),
        handler_job(close(&tickets), "wrp_s2", 1),
        handler_job(close(&tickets), "wrp_s2", 2),
        handler_job(purge, "wrp_p1", 1),
        handler_job(remove.clone(), "wrp_d1", 1),
        handler_job(remove, "wrp_d1", 2),
    ];
    let payloads: Vec<Value> = jobs.iter().map(|j| handler_payload(j, false)).collect();
    let shim = dir.path().join("shim.js");
    std::fs::write(&shim, FASTIFY_SHIM).unwrap();
    let mut child = std::process::Command::new("node")
        .arg(&shim)
        .arg(&handler)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("node is needed to run the Fastify template");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(
                json!({"seed": seed, "payloads": payloads})
                    .to_string()
                    .as_bytes(),
            )
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    let answers: Vec<(String, String, u64)> = result["receipts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["status"].as_str().unwrap().to_owned(),
                r["safe_error_code"].as_str().unwrap_or("").to_owned(),
                r["rows_affected"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    let expected: Vec<(String, String, u64)> = [
        ("applied", "", 1),
        ("already_applied", "", 0),
        ("conflict", "DEDUP_CONFLICT", 0),
        ("conflict", "SET_DRIFT_CONFLICT", 0),
        ("applied", "", 3),
        ("already_applied", "", 0),
        ("applied", "", 2),
        ("applied", "", 1),
        ("already_applied", "", 0),
    ]
    .iter()
    .map(|(s, c, n)| (s.to_string(), c.to_string(), *n))
    .collect();
    assert_eq!(answers, expected, "{result}");
    // Every receipt is one the executor accepts.
    for r in result["receipts"].as_array().unwrap() {
        parse_receipt(r.to_string().as_bytes()).unwrap();
    }
    let rows = result["rows"].as_object().unwrap();
    let keys: Vec<&str> = rows.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "invoices/acme/INV-3001",
            "tickets/acme/T-01",
            "tickets/acme/T-02",
            "tickets/acme/T-03",
            "credit_notes/acme/1"
        ],
        "{result}"
    );
    for id in ["T-01", "T-02", "T-03"] {
        let t = &rows[&format!("tickets/acme/{id}")];
        assert_eq!(
            (&t["status"], &t["close_reason"], &t["version"]),
            (&json!("closed"), &json!("old"), &json!(2)),
            "{id}"
        );
    }
    let n = &rows["credit_notes/acme/1"];
    assert_eq!(
        (&n["tenant_id"], &n["request_id"], &n["amount_cents"]),
        (&json!("acme"), &json!("wrp_n1"), &json!(700))
    );
    assert!(n["created_at"].as_str().unwrap().ends_with('Z'), "{n}");
}
