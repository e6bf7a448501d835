//! Secrets never leak. Unique values are planted in every credential
//! variable — the write URL's password, the read URL's password, an http
//! handler's URL (path and query key), bearer token and signing secret, a
//! command handler's path and argument, and the proposer's own HTTP bearer
//! token — and the whole loop runs on Postgres with `AIRLOCK_LOG=debug` for
//! both processes, errors included: bad arguments, not found, the executor
//! down for a moment, a handler answering 500 (echoing the secrets it
//! received), a handler dropping the connection, a command handler failing
//! and crashing, a conflict in the database and one from a handler, a
//! rejection. Then every output is searched for the planted values: proposer
//! logs, the executor log, every MCP result, every CLI output, the replay
//! exports, doctor, `mcp config`, `audit --stdio` of the proposer, the ledger
//! file bytes (and its WAL) and the source database's receipt rows. Zero hits.
//!
//! The read URL is legitimately given to the proposer, so its password is
//! only checked for not being echoed anywhere.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use airlock_tests::bin;
use airlock_tests::databases::{
    Database, execute, postgres_reference, query_strings, reference_config_for,
};
use airlock_tests::executor::ExecutorProcess;
use airlock_tests::mcp::{HttpProposer, McpClient, call, stdio_client_with_stderr};
use serde_json::{Value, json};

use airlock_tests::runtime as rt;

// ----------------------------------------------------------- the secrets

/// The planted values. Each holds the run's nonce, so one search for the
/// nonce also finds any fragment-preserving leak.
struct Planted {
    nonce: String,
    write_password: String,
    read_password: String,
    url_path: String,
    url_key: String,
    handler_token: String,
    signing_secret: String,
    command_dir: String,
    command_arg: String,
    mcp_token: String,
}

impl Planted {
    fn new() -> Planted {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let nonce = format!("Zq{:x}{:08x}", std::process::id(), nanos as u32);
        let v = |kind: &str| format!("{kind}{nonce}x");
        Planted {
            write_password: v("wpw"),
            read_password: v("rpw"),
            url_path: v("hookpath"),
            url_key: v("urlkey"),
            handler_token: v("tok"),
            signing_secret: v("whsec"),
            command_dir: v("cmddir"),
            command_arg: v("cmdarg"),
            mcp_token: v("mcptoken-0123456789-"),
            nonce,
        }
    }

    /// (variable, value) for the scan, the nonce last.
    fn needles(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("APP_WRITE_URL password", &self.write_password),
            ("APP_READ_URL password", &self.read_password),
            ("BILLING_URL path", &self.url_path),
            ("BILLING_URL query key", &self.url_key),
            ("BILLING_TOKEN", &self.handler_token),
            ("BILLING_SIGNING", &self.signing_secret),
            ("BILLING_CMD path", &self.command_dir),
            ("BILLING_CMD argument", &self.command_arg),
            ("MCP_TOKEN (proposer HTTP bearer)", &self.mcp_token),
            ("the run's nonce (any fragment)", &self.nonce),
        ]
    }
}

// ------------------------------------------------------- a handler app

const MODE_OK: u8 = 0;
const MODE_500: u8 = 1;
const MODE_CONFLICT: u8 = 2;
const MODE_DROP: u8 = 3;

#[derive(Debug, Clone)]
struct Seen {
    request_line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The application's HTTP handler on loopback: records each request and
/// answers as `mode` says. When it fails, it echoes the secrets it received
/// (the executor must scrub them from anything it keeps).
struct HandlerApp {
    port: u16,
    mode: Arc<AtomicU8>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl HandlerApp {
    fn start() -> HandlerApp {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(MODE_OK));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (m, s) = (mode.clone(), seen.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (m, s) = (m.clone(), s.clone());
                std::thread::spawn(move || handle(stream, &m, &s));
            }
        });
        HandlerApp { port, mode, seen }
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }

    fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn handle(mut s: TcpStream, mode: &AtomicU8, seen: &Mutex<Vec<Seen>>) {
    let Some(req) = read_request(&mut s) else {
        return;
    };
    seen.lock().unwrap().push(req.clone());
    let auth = req.header("authorization").unwrap_or("").to_owned();
    let sig = req.header("x-airlock-signature").unwrap_or("").to_owned();
    let key = req.header("idempotency-key").unwrap_or("").to_owned();
    let (status, body) = match mode.load(Ordering::SeqCst) {
        MODE_DROP => return,
        MODE_500 => (
            "500 Internal Server Error",
            format!(
                "billing app exploded handling {} (authorization: {auth}; signature: {sig})",
                req.request_line
            ),
        ),
        MODE_CONFLICT => (
            "409 Conflict",
            json!({"status": "conflict", "safe_error_code": "VERSION_CONFLICT", "idempotency_key": key, "message": format!("stale row; you sent {auth}")}).to_string(),
        ),
        _ => (
            "200 OK",
            json!({"status": "applied", "rows_affected": 1, "idempotency_key": key, "message": format!("applied for {} with {auth}", req.request_line)}).to_string(),
        ),
    };
    let _ = write!(
        s,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// The command handler: a Python script in a directory whose name is a
/// planted secret, given a planted argument. Its behaviour comes from a
/// `mode` file beside it: `ok`, `fail` (prints its argument to stderr and a
/// failed receipt quoting it, exits 3) or `crash` (an uncaught exception:
/// Python prints a traceback naming the script's path).
fn write_command_handler(root: &Path, planted: &Planted) -> (PathBuf, String) {
    let dir = root.join(&planted.command_dir);
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("handler.py");
    std::fs::write(
        &script,
        r#"#!/usr/bin/env python3
import json, os, sys
here = os.path.dirname(os.path.abspath(__file__))
job = json.load(sys.stdin)
with open(os.path.join(here, "calls.log"), "a") as f:
    f.write(json.dumps({"argv": sys.argv[1:], "key": job["idempotency_key"]}) + "\n")
mode = open(os.path.join(here, "mode")).read().strip()
if mode == "fail":
    sys.stderr.write("upstream refused the api key " + " ".join(sys.argv[1:]) + "\n")
    print(json.dumps({"status": "failed", "safe_error_code": "APP_REFUSED", "message": "refused " + sys.argv[1]}))
    sys.exit(3)
if mode == "crash":
    raise RuntimeError("cannot reach the app with " + sys.argv[1])
print(json.dumps({"status": "applied", "rows_affected": 1, "idempotency_key": job["idempotency_key"], "message": "done with " + sys.argv[1]}))
"#,
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(dir.join("mode"), "ok").unwrap();
    let command = format!("{} --api-key={}", script.display(), planted.command_arg);
    (dir, command)
}

// ------------------------------------------------------------ the outputs

/// Everything the run produced that an operator, a model or an attacker
/// with the files could see.
#[derive(Default)]
struct Outputs {
    items: Vec<(String, Vec<u8>)>,
}

impl Outputs {
    fn add(&mut self, name: impl Into<String>, bytes: impl Into<Vec<u8>>) {
        self.items.push((name.into(), bytes.into()));
    }

    /// Record a command's stdout and stderr; return the output.
    fn cmd(&mut self, name: &str, out: Output) -> Output {
        self.add(format!("{name} (stdout)"), out.stdout.clone());
        self.add(format!("{name} (stderr)"), out.stderr.clone());
        out
    }

    fn file(&mut self, name: &str, path: &Path) {
        let bytes = std::fs::read(path)
            .unwrap_or_else(|e| panic!("{name}: cannot read {}: {e}", path.display()));
        self.add(name, bytes);
    }
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Vec<usize> {
    hay.windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect()
}

/// One MCP call; the whole result (content and envelope) is an output.
async fn mcp(outputs: &mut Outputs, client: &McpClient, tool: &str, args: Value) -> Value {
    let (result, env) = call(client, tool, args).await;
    let n = outputs.items.len();
    outputs.add(
        format!("MCP result #{n} {tool}"),
        serde_json::to_vec(&result).unwrap(),
    );
    env
}

#[test]
fn no_planted_secret_appears_in_any_output() {
    let planted = Planted::new();
    let db: Database = postgres_reference("airlock_secret_leaks");
    let work = tempfile::Builder::new()
        .prefix("airlock-leaks-")
        .tempdir()
        .unwrap();
    let app = HandlerApp::start();
    let (command_dir, command) = write_command_handler(work.path(), &planted);
    let set_command_mode = |m: &str| std::fs::write(command_dir.join("mode"), m).unwrap();

    let write_url = db
        .write_url
        .replace("synapsor_writer_password", &planted.write_password);
    let read_url = db
        .read_url
        .replace("synapsor_reader_password", &planted.read_password);
    assert!(
        write_url.contains(&planted.write_password) && read_url.contains(&planted.read_password)
    );
    let handler_url = format!(
        "http://127.0.0.1:{}/hooks/{}/apply?key={}",
        app.port, planted.url_path, planted.url_key
    );

    let mut config = reference_config_for(&db);
    config["executors"] = json!({
        "billing_api": {"type": "http_handler", "url_env": "BILLING_URL", "method": "POST",
                        "auth": {"type": "bearer_env", "token_env": "BILLING_TOKEN"},
                        "signing_secret_env": "BILLING_SIGNING", "timeout_ms": 2000},
        "billing_cmd": {"type": "command_handler", "command_env": "BILLING_CMD", "timeout_ms": 5000}
    });
    for cap in config["capabilities"].as_array_mut().unwrap() {
        match cap["name"].as_str().unwrap() {
            "support.propose_plan_credit" => cap["executor"] = json!("billing_api"),
            "support.propose_ticket_resolution" => cap["executor"] = json!("billing_cmd"),
            _ => {}
        }
    }
    let exec_env: Vec<(&str, &str)> = vec![
        ("APP_TENANT_ID", "acme"),
        ("APP_WRITE_URL", &write_url),
        ("BILLING_URL", &handler_url),
        ("BILLING_TOKEN", &planted.handler_token),
        ("BILLING_SIGNING", &planted.signing_secret),
        ("BILLING_CMD", &command),
        ("AIRLOCK_LOG", "debug"),
    ];
    let mut exec = ExecutorProcess::start(&config, &exec_env);
    let proposer_env: Vec<(&str, &str)> = vec![
        ("APP_READ_URL", &read_url),
        ("APP_TENANT_ID", "acme"),
        ("APP_PRINCIPAL", "agent_17"),
        ("AIRLOCK_LOG", "debug"),
    ];
    let mut out = Outputs::default();
    let logs = work.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let stdio_log = logs.join("proposer-stdio.stderr");
    let http_log = logs.join("proposer-http.stderr");

    // ---- the model's side, over stdio: reads, errors, proposals
    let rt = rt();
    let ids = rt.block_on(async {
        let client = stdio_client_with_stderr(
            &exec.config_path,
            &exec.socket_dir,
            &proposer_env,
            &[],
            Stdio::from(std::fs::File::create(&stdio_log).unwrap()),
        )
        .await;
        let o = &mut out;
        let env = mcp(
            o,
            &client,
            "billing__inspect_invoice",
            json!({"invoice_id": "INV-3001"}),
        )
        .await;
        assert_eq!(env["ok"], true, "the planted read URL works: {env}");
        for (tool, args, code) in [
            (
                "billing__inspect_invoice",
                json!({"invoice_id": "INV-9001"}),
                "not_found",
            ),
            (
                "billing__inspect_invoice",
                json!({"invoice_id": 3001}),
                "invalid_arguments",
            ),
            (
                "billing__inspect_invoice",
                json!({"invoice_id": "INV-3001", "tenant_id": "otherco"}),
                "invalid_arguments",
            ),
            (
                "db.execute_sql",
                json!({"sql": "SELECT current_setting('password')"}),
                "unknown_tool",
            ),
            (
                "support__propose_plan_credit",
                json!({"customer_id": "cust_acme_1", "credit_cents": 9000, "reason": "r"}),
                "invalid_arguments",
            ),
            (
                "orders__propose_status_change",
                json!({"order_id": "O-1002", "status": "canceled", "reason": "r"}),
                "policy_refused",
            ),
        ] {
            let env = mcp(o, &client, tool, args).await;
            assert_eq!(env["error"]["airlock_code"], code, "{env}");
        }
        let mut ids = std::collections::BTreeMap::new();
        for (name, tool, args) in [
            (
                "waiver",
                "billing__propose_late_fee_waiver",
                json!({"invoice_id": "INV-3001", "reason": "customer asked"}),
            ),
            (
                "credit",
                "support__propose_plan_credit",
                json!({"customer_id": "cust_acme_1", "credit_cents": 1200, "reason": "goodwill"}),
            ),
            (
                "resolution",
                "support__propose_ticket_resolution",
                json!({"ticket_id": "T-1042", "resolution_note": "fee waived"}),
            ),
            (
                "order",
                "orders__propose_status_change",
                json!({"order_id": "O-1001", "status": "canceled", "reason": "customer asked"}),
            ),
            (
                "credit_conflict",
                "support__propose_plan_credit",
                json!({"customer_id": "cust_acme_2", "credit_cents": 300, "reason": "sorry"}),
            ),
            (
                "rejected",
                "billing__propose_late_fee_waiver",
                json!({"invoice_id": "INV-3002", "reason": "no"}),
            ),
        ] {
            let env = mcp(o, &client, tool, args).await;
            assert_eq!(env["proposal"]["state"], "review_required", "{name}: {env}");
            ids.insert(name, env["proposal"]["id"].as_str().unwrap().to_owned());
        }

        // The executor down for a moment: reads answer, proposals fail clearly.
        assert!(exec.stop().success());
        let env = mcp(
            o,
            &client,
            "billing__inspect_invoice",
            json!({"invoice_id": "INV-3001"}),
        )
        .await;
        assert_eq!(env["ok"], true);
        let env = mcp(
            o,
            &client,
            "support__propose_ticket_resolution",
            json!({"ticket_id": "T-1043", "resolution_note": "r"}),
        )
        .await;
        assert_eq!(
            env["error"]["airlock_code"], "executor_unavailable",
            "{env}"
        );
        exec.restart(&exec_env);
        // The proposer keeps up to 4 executor connections; after a restart a
        // stale one fails a proposal submission as `outcome_unknown` (reported
        // separately). Reads (retried on a fresh connection) renew all four.
        for _ in 0..4 {
            let env = mcp(
                o,
                &client,
                "billing__inspect_invoice",
                json!({"invoice_id": "INV-3001"}),
            )
            .await;
            assert_eq!(env["ok"], true);
        }
        for (name, tool, args) in [
            (
                "crash",
                "support__propose_ticket_resolution",
                json!({"ticket_id": "T-1043", "resolution_note": "duplicate charge refunded"}),
            ),
            (
                "dropped",
                "support__propose_plan_credit",
                json!({"customer_id": "cust_acme_1", "credit_cents": 2000, "reason": "second"}),
            ),
        ] {
            let env = mcp(o, &client, tool, args).await;
            assert_eq!(env["proposal"]["state"], "review_required", "{name}: {env}");
            ids.insert(name, env["proposal"]["id"].as_str().unwrap().to_owned());
        }
        client.cancel().await.unwrap();
        ids
    });
    let id = |name: &str| ids[name].clone();

    // ---- the operator's side: approve, apply, fail, retry, conflict, reject
    let cli = |out: &mut Outputs, name: &str, args: &[&str]| out.cmd(name, exec.cli(args));
    cli(
        &mut out,
        "proposals list --json",
        &["proposals", "list", "--json"],
    );
    cli(&mut out, "proposals list", &["proposals", "list"]);
    cli(
        &mut out,
        "proposals show --json",
        &["proposals", "show", &id("waiver"), "--json"],
    );
    cli(
        &mut out,
        "proposals show",
        &["proposals", "show", &id("credit")],
    );
    let o = cli(
        &mut out,
        "apply before approval",
        &["apply", &id("waiver"), "--json"],
    );
    assert_eq!(o.status.code(), Some(1));
    let o = cli(
        &mut out,
        "apply of an unknown id",
        &["apply", "wrp_doesnotexist", "--json"],
    );
    assert_ne!(o.status.code(), Some(0));
    let o = cli(
        &mut out,
        "proposals show of an unknown id",
        &["proposals", "show", "wrp_doesnotexist"],
    );
    assert_ne!(o.status.code(), Some(0));
    for name in [
        "waiver",
        "credit",
        "resolution",
        "order",
        "credit_conflict",
        "crash",
        "dropped",
    ] {
        let o = cli(
            &mut out,
            &format!("approve {name}"),
            &["proposals", "approve", &id(name), "--yes", "--json"],
        );
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let o = cli(
        &mut out,
        "reject",
        &[
            "proposals",
            "reject",
            &id("rejected"),
            "--reason",
            "not warranted",
            "--json",
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    let status = |o: &Output| {
        json_of(o)["writeback"]["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    // sql_update with the planted write URL: applied, then already_applied.
    let o = cli(
        &mut out,
        "apply sql_update",
        &["apply", &id("waiver"), "--json"],
    );
    assert_eq!(
        status(&o),
        "applied",
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let o = cli(
        &mut out,
        "apply sql_update again",
        &["apply", &id("waiver"), "--json"],
    );
    assert_eq!(status(&o), "already_applied");
    // http handler: 500 echoing the token and signature, then applied.
    app.set(MODE_500);
    let o = cli(
        &mut out,
        "apply http handler (500)",
        &["apply", &id("credit"), "--json"],
    );
    assert_eq!(
        status(&o),
        "failed",
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    app.set(MODE_OK);
    let o = cli(
        &mut out,
        "apply http handler (retry)",
        &["apply", &id("credit"), "--json"],
    );
    assert_eq!(
        status(&o),
        "applied",
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    // http handler: a conflict receipt quoting the token.
    app.set(MODE_CONFLICT);
    let o = cli(
        &mut out,
        "apply http handler (409 conflict)",
        &["apply", &id("credit_conflict"), "--json"],
    );
    assert_eq!(
        status(&o),
        "conflict",
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert_eq!(o.status.code(), Some(4));
    // http handler: the connection dropped without an answer.
    app.set(MODE_DROP);
    let o = cli(
        &mut out,
        "apply http handler (dropped)",
        &["apply", &id("dropped"), "--json"],
    );
    assert_eq!(
        status(&o),
        "failed",
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    app.set(MODE_OK);
    // command handler: fails quoting its argument, then applied.
    set_command_mode("fail");
    let o = cli(
        &mut out,
        "apply command handler (exit 3)",
        &["apply", &id("resolution"), "--json"],
    );
    assert_eq!(
        status(&o),
        "failed",
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    set_command_mode("ok");
    let o = cli(
        &mut out,
        "apply command handler (retry)",
        &["apply", &id("resolution"), "--json"],
    );
    assert_eq!(
        status(&o),
        "applied",
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    // command handler: an uncaught exception (a traceback on stderr).
    set_command_mode("crash");
    let o = cli(
        &mut out,
        "apply command handler (traceback)",
        &["apply", &id("crash"), "--json"],
    );
    assert_eq!(
        status(&o),
        "failed",
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    set_command_mode("ok");
    // sql_update: the row changed behind Airlock's back.
    execute(
        &db,
        "UPDATE orders SET updated_at = now() WHERE id = 'O-1001'",
    );
    let o = cli(
        &mut out,
        "apply sql_update (conflict)",
        &["apply", &id("order"), "--json"],
    );
    assert_eq!(
        status(&o),
        "conflict",
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );

    // The handlers really got the planted secrets (so the scan is not vacuous).
    let requests = app.requests();
    assert!(requests.len() >= 4, "{requests:?}");
    for r in &requests {
        assert!(
            r.request_line.contains(&planted.url_path) && r.request_line.contains(&planted.url_key),
            "{}",
            r.request_line
        );
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {}", planted.handler_token).as_str())
        );
        assert!(
            r.header("x-airlock-signature")
                .is_some_and(|s| s.starts_with("v1="))
        );
        assert!(!r.body.is_empty());
    }
    let calls = std::fs::read_to_string(command_dir.join("calls.log")).unwrap();
    assert!(
        calls.contains(&format!("--api-key={}", planted.command_arg)),
        "{calls}"
    );

    // ---- the story: replay, exports, events, ledger
    for name in ids.keys() {
        let i = id(name);
        cli(
            &mut out,
            &format!("replay show --details {name}"),
            &["replay", "show", &i, "--details"],
        );
        cli(
            &mut out,
            &format!("replay show --details --json {name}"),
            &["replay", "show", &i, "--details", "--json"],
        );
        for format in ["json", "markdown"] {
            let file = work.path().join(format!("replay-{name}.{format}"));
            let o = cli(
                &mut out,
                &format!("replay export {format} {name}"),
                &[
                    "replay",
                    "export",
                    &i,
                    "--format",
                    format,
                    "--output",
                    file.to_str().unwrap(),
                ],
            );
            assert_eq!(
                o.status.code(),
                Some(0),
                "{}",
                String::from_utf8_lossy(&o.stderr)
            );
            out.file(&format!("replay export file {format} {name}"), &file);
        }
    }
    cli(&mut out, "events tail", &["events", "tail"]);
    cli(
        &mut out,
        "events tail --json",
        &["events", "tail", "--json"],
    );
    let store = exec.store.to_str().unwrap().to_owned();
    let o = out.cmd(
        "ledger verify",
        airlock_tests::airlock(&["ledger", "verify", "--store", &store]),
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    out.cmd(
        "ledger verify --json",
        airlock_tests::airlock(&["ledger", "verify", "--store", &store, "--json"]),
    );

    // ---- helper commands, run in a shell that holds every secret
    let socket_dir = exec.socket_dir.to_str().unwrap().to_owned();
    let config_path = exec.config_path.to_str().unwrap().to_owned();
    let everything: Vec<(&str, &str)> = exec_env
        .iter()
        .copied()
        .chain([
            ("APP_READ_URL", read_url.as_str()),
            ("APP_PRINCIPAL", "agent_17"),
            ("AIRLOCK_SOCKET_DIR", socket_dir.as_str()),
            ("MCP_TOKEN", planted.mcp_token.as_str()),
        ])
        .collect();
    let helper = |args: &[&str], env: &[(&str, &str)]| {
        Command::new(bin("airlock"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let o = out.cmd(
        "doctor --json",
        helper(&["doctor", "--json", "--config", &config_path], &everything),
    );
    let report = json_of(&o);
    assert!(
        report["checks"].as_array().is_some_and(|c| c.len() > 3),
        "{report}"
    );
    out.cmd(
        "doctor",
        helper(&["doctor", "--config", &config_path], &everything),
    );
    for client in [
        "claude-desktop",
        "cursor",
        "vscode",
        "generic",
        "openai-agents",
    ] {
        let o = out.cmd(
            &format!("mcp config {client}"),
            helper(
                &["mcp", "config", client, "--config", &config_path],
                &everything,
            ),
        );
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    out.cmd(
        "tools preview --json",
        helper(
            &["tools", "preview", "--json", "--config", &config_path],
            &everything,
        ),
    );
    out.cmd(
        "config validate --json",
        helper(
            &["config", "validate", "--json", "--config", &config_path],
            &everything,
        ),
    );
    let proposer_cmd = format!(
        "{} serve --config {config_path} --socket-dir {socket_dir}",
        bin("airlock-proposer").display()
    );
    for format in ["json", "text"] {
        let o = out.cmd(
            &format!("audit --stdio (proposer) {format}"),
            helper(
                &["audit", "--stdio", &proposer_cmd, "--format", format],
                &proposer_env,
            ),
        );
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    // ---- the proposer over HTTP with a planted bearer token
    rt.block_on(async {
        let mut env = proposer_env.clone();
        env.push(("MCP_TOKEN", planted.mcp_token.as_str()));
        let http = HttpProposer::start_with_stderr(
            &exec.config_path,
            &exec.socket_dir,
            &env,
            &["--auth-token-env", "MCP_TOKEN"],
            Stdio::from(std::fs::File::create(&http_log).unwrap()),
        );
        let client = http.client(Some(&planted.mcp_token)).await;
        let env = mcp(&mut out, &client, "billing__inspect_invoice", json!({"invoice_id": "INV-3002"})).await;
        assert_eq!(env["ok"], true, "{env}");
        mcp(&mut out, &client, "billing__inspect_invoice", json!({"invoice_id": ["x"]})).await;
        client.cancel().await.unwrap();
        for (what, auth) in [
            ("no token", None),
            ("a wrong token", Some("Bearer wrong-token-wrong-token".to_owned())),
            ("the token's first half", Some(format!("Bearer {}", &planted.mcp_token[..planted.mcp_token.len() / 2]))),
        ] {
            let mut req = reqwest::Client::new()
                .post(&http.url)
                .header("Accept", "application/json, text/event-stream")
                .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}));
            if let Some(a) = auth {
                req = req.header("Authorization", a);
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 401);
            let headers = format!("{:?}", r.headers());
            let body = r.bytes().await.unwrap();
            out.add(format!("HTTP 401 answer ({what})"), [headers.as_bytes(), &body].concat());
        }
        drop(http);
    });

    // ---- logs, the ledger's bytes, the source's receipt rows
    out.file("proposer log (stdio, debug)", &stdio_log);
    out.file("proposer log (HTTP, debug)", &http_log);
    let wal = PathBuf::from(format!("{store}-wal"));
    if wal.exists() {
        out.file("ledger WAL (executor running)", &wal);
    }
    assert!(exec.stop().success());
    out.add("executor log (debug)", exec.log().into_bytes());
    out.file("ledger file", &exec.store);
    for suffix in ["-wal", "-shm", "-journal"] {
        let p = PathBuf::from(format!("{store}{suffix}"));
        if p.exists() {
            out.file(&format!("ledger {suffix} file (after stop)"), &p);
        }
    }
    let receipts = query_strings(
        &db,
        "SELECT row_to_json(r)::text FROM synapsor_writeback_receipts r",
    );
    assert!(!receipts.is_empty(), "sql_update wrote its receipts");
    let rows: Vec<String> = receipts.into_iter().flatten().flatten().collect();
    out.add("source receipt table rows", rows.join("\n").into_bytes());

    // ---- the scan
    let needles = planted.needles();
    let mut table = format!("{:<58} {:>10}  hits\n", "output scanned", "bytes");
    let mut total = 0usize;
    let mut hits = Vec::new();
    for (name, bytes) in &out.items {
        total += bytes.len();
        let mut found = Vec::new();
        for (what, value) in &needles {
            let at = find(bytes, value.as_bytes());
            if let Some(first) = at.first() {
                let from = first.saturating_sub(120);
                let to = (first + value.len() + 120).min(bytes.len());
                hits.push(format!(
                    "{name}: {what} × {} — …{}…",
                    at.len(),
                    String::from_utf8_lossy(&bytes[from..to])
                ));
                found.push(format!("{what} × {}", at.len()));
            }
        }
        table.push_str(&format!(
            "{name:<58} {:>10}  {}\n",
            bytes.len(),
            if found.is_empty() {
                "0".to_owned()
            } else {
                found.join(", ")
            }
        ));
    }
    table.push_str(&format!(
        "{:<58} {total:>10}  {} outputs\n",
        "total",
        out.items.len()
    ));
    std::io::stderr().write_all(table.as_bytes()).unwrap();
    assert!(
        hits.is_empty(),
        "planted secrets leaked ({} findings):\n{}",
        hits.len(),
        hits.join("\n\n")
    );
}

// ------------------------------------- every field of a handler's answer

/// A handler that answers with its own secrets in every field it can: the
/// version values, an unknown `receipt_id`, nested `data` (values and keys),
/// the request headers it saw, the `message`, a `safe_error_code`, an error
/// body. It records each raw answer, so the test can show the secrets were
/// really sent back.
struct EchoHandler {
    port: u16,
    mode: Arc<AtomicU8>,
    answers: Arc<Mutex<Vec<String>>>,
}

const ECHO_APPLIED: u8 = 0;
const ECHO_FAILED: u8 = 1;
const ECHO_500: u8 = 2;
const ECHO_CONFLICT: u8 = 3;

/// The echoed secrets: bearer token, signing secret (upper case, so it is a
/// well-formed `safe_error_code`), and the URL password as written
/// (percent-encoded) and as the server receives it (decoded).
struct EchoSecrets {
    nonce: String,
    token: String,
    signing: String,
    password_encoded: String,
    password_decoded: String,
}

impl EchoSecrets {
    fn new() -> EchoSecrets {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let nonce = format!("Qe{:x}{:08x}", std::process::id(), nanos as u32);
        EchoSecrets {
            token: format!("tok{nonce}x"),
            signing: format!("WHSEC_{}_X", nonce.to_ascii_uppercase()),
            password_encoded: format!("p%40ss%2F{nonce}"),
            password_decoded: format!("p@ss/{nonce}"),
            nonce,
        }
    }

    fn needles(&self) -> Vec<(&'static str, String)> {
        vec![
            ("the bearer token", self.token.clone()),
            ("the signing secret", self.signing.clone()),
            ("the URL password (encoded)", self.password_encoded.clone()),
            (
                "the URL password (encoded, lower-case hex)",
                self.password_encoded.to_ascii_lowercase(),
            ),
            ("the URL password (decoded)", self.password_decoded.clone()),
            ("the nonce (any fragment)", self.nonce.clone()),
            (
                "the nonce, upper case (a fragment of the signing secret)",
                self.nonce.to_ascii_uppercase(),
            ),
        ]
    }
}

impl EchoHandler {
    fn start(secrets: &EchoSecrets) -> EchoHandler {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(ECHO_APPLIED));
        let answers = Arc::new(Mutex::new(Vec::new()));
        let (m, a) = (mode.clone(), answers.clone());
        let (token, signing, enc, dec) = (
            secrets.token.clone(),
            secrets.signing.clone(),
            secrets.password_encoded.clone(),
            secrets.password_decoded.clone(),
        );
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (status, body) = {
                    let mut s = stream;
                    let Some(req) = read_request(&mut s) else {
                        continue;
                    };
                    let key = req.header("idempotency-key").unwrap_or("").to_owned();
                    let headers: serde_json::Map<String, Value> = req
                        .headers
                        .iter()
                        .map(|(k, v)| (k.clone(), Value::from(v.clone())))
                        .collect();
                    let answer = match m.load(Ordering::SeqCst) {
                        ECHO_FAILED => (
                            "200 OK",
                            json!({
                                "status": "failed", "rows_affected": 0, "idempotency_key": key,
                                "safe_error_code": signing,
                                "previous_version": format!("v1 {enc}"),
                                "message": format!("refused: upstream wanted {dec}"),
                            })
                            .to_string(),
                        ),
                        ECHO_500 => (
                            "500 Internal Server Error",
                            format!(
                                "crashed; token={token} signing={signing} password={dec} raw={enc} headers={}",
                                Value::Object(headers)
                            ),
                        ),
                        ECHO_CONFLICT => (
                            "409 Conflict",
                            json!({
                                "status": "conflict", "idempotency_key": key,
                                "safe_error_code": "VERSION_CONFLICT",
                                "new_version": token,
                                "message": format!("stale; you are {dec}"),
                                "data": {"headers": headers},
                            })
                            .to_string(),
                        ),
                        _ => (
                            "200 OK",
                            json!({
                                "status": "applied", "rows_affected": 1, "idempotency_key": key,
                                "previous_version": token,
                                "new_version": format!("v2-{dec}"),
                                "receipt_id": signing,
                                "message": format!("done for {enc} with {token}"),
                                "data": {"nested": [token, {"pw": dec}], signing.clone(): enc},
                                "headers_seen": headers,
                            })
                            .to_string(),
                        ),
                    };
                    let _ = write!(
                        s,
                        "HTTP/1.1 {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                        answer.0,
                        answer.1.len(),
                        answer.1
                    );
                    answer
                };
                a.lock().unwrap().push(format!("{status}\n{body}"));
            }
        });
        EchoHandler {
            port,
            mode,
            answers,
        }
    }
}

/// One HTTP request off the stream (headers and body).
fn read_request(s: &mut TcpStream) -> Option<Seen> {
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    Some(Seen {
        request_line,
        headers,
        body,
    })
}

#[test]
fn no_field_of_a_handler_answer_brings_its_secrets_into_the_ledger() {
    use airlock_ipc::Role;
    use airlock_tests::proposals::{WAIVER, honest_proposal, load, reference_value};

    let secrets = EchoSecrets::new();
    let handler = EchoHandler::start(&secrets);
    let url = format!(
        "http://hook:{}@127.0.0.1:{}/apply",
        secrets.password_encoded, handler.port
    );
    let mut config = reference_value();
    config["executors"] = json!({
        "billing_api": {"type": "http_handler", "url_env": "BILLING_URL", "method": "POST",
                        "auth": {"type": "bearer_env", "token_env": "BILLING_TOKEN"},
                        "signing_secret_env": "BILLING_SIGNING", "timeout_ms": 5000}
    });
    for cap in config["capabilities"].as_array_mut().unwrap() {
        if cap["name"] == WAIVER {
            cap["executor"] = json!("billing_api");
        }
    }
    let env = [
        ("SYNAPSOR_TENANT_ID", "acme"),
        ("BILLING_URL", url.as_str()),
        ("BILLING_TOKEN", secrets.token.as_str()),
        ("BILLING_SIGNING", secrets.signing.as_str()),
        ("AIRLOCK_LOG", "debug"),
    ];
    let exec = ExecutorProcess::start(&config, &env);
    let cfg = load(&config);
    let ids: Vec<String> = rt().block_on(async {
        let mut client = exec.client(Role::Proposer).await;
        let mut ids = Vec::new();
        for reason in ["one", "two", "three", "four"] {
            ids.push(honest_proposal(&mut client, &cfg, reason).await.proposal_id);
        }
        ids
    });

    let mut out = Outputs::default();
    let mut apply = |id: &str, mode: u8, name: &str| -> Value {
        handler.mode.store(mode, Ordering::SeqCst);
        let o = out.cmd(
            &format!("approve {name}"),
            exec.cli(&["proposals", "approve", id, "--yes", "--json"]),
        );
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let o = out.cmd(
            &format!("apply {name} --json"),
            exec.cli(&["apply", id, "--json"]),
        );
        let result = json_of(&o);
        // A second, human apply of the same proposal: the same receipt
        // again (or a retry), printed for a person.
        out.cmd(&format!("apply {name}"), exec.cli(&["apply", id]));
        out.cmd(
            &format!("replay {name}"),
            exec.cli(&["replay", "show", id, "--details"]),
        );
        out.cmd(
            &format!("replay {name} --json"),
            exec.cli(&["replay", "show", id, "--details", "--json"]),
        );
        out.cmd(
            &format!("show {name}"),
            exec.cli(&["proposals", "show", id]),
        );
        result["writeback"].clone()
    };

    let applied = apply(&ids[0], ECHO_APPLIED, "applied");
    assert_eq!(applied["status"], "applied", "{applied}");
    assert_eq!(applied["receipt"]["rows_affected"], 1);
    for field in ["previous_version", "new_version"] {
        assert!(
            applied["receipt"][field]
                .as_str()
                .is_some_and(|v| v.starts_with("[withheld")),
            "{field}: {applied}"
        );
    }
    assert!(
        applied["detail"].as_str().is_some_and(
            |d| d.contains("withheld from this receipt: previous_version, new_version")
        ),
        "the receipt records what was withheld: {applied}"
    );

    let failed = apply(&ids[1], ECHO_FAILED, "failed receipt");
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["receipt"]["safe_error_code"], "WITHHELD", "{failed}");
    assert!(
        failed["detail"]
            .as_str()
            .is_some_and(|d| d.contains("[REDACTED]") && d.contains("safe_error_code")),
        "{failed}"
    );

    let crashed = apply(&ids[2], ECHO_500, "HTTP 500");
    assert_eq!(crashed["status"], "failed", "{crashed}");
    assert_eq!(crashed["receipt"]["safe_error_code"], "HANDLER_HTTP_500");

    let conflict = apply(&ids[3], ECHO_CONFLICT, "409 conflict");
    assert_eq!(conflict["status"], "conflict", "{conflict}");

    // The handler really sent every secret back (the defence is what keeps
    // them out, not a quiet handler).
    let answers = handler.answers.lock().unwrap().join("\n");
    for (what, value) in secrets.needles().iter().take(5) {
        if what.contains("lower-case") {
            continue;
        }
        assert!(
            answers.contains(value.as_str()),
            "the handler echoed {what}"
        );
    }

    // Everything kept: the ledger's files (database, WAL), the executor's
    // log, every CLI output.
    for entry in std::fs::read_dir(exec.store.parent().unwrap()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            out.file(&format!("ledger file {}", path.display()), &path);
        }
    }
    out.add("executor log", exec.log());
    let mut hits = Vec::new();
    for (name, bytes) in &out.items {
        for (what, value) in secrets.needles() {
            if !find(bytes, value.as_bytes()).is_empty() {
                hits.push(format!("{name}: {what}"));
            }
        }
    }
    assert!(
        hits.is_empty(),
        "handler secrets leaked:\n{}",
        hits.join("\n")
    );
}
