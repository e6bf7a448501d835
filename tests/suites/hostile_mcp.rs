//! A hostile MCP client against the real `airlock-proposer`, on the Postgres
//! reference database with a real executor, over both transports:
//!
//! * stdio: raw JSON-RPC lines written to the proposer's stdin (where a
//!   well-behaved SDK client could not send the bad input);
//! * Streamable HTTP: raw requests (reqwest) and the rmcp client.
//!
//! Unknown tools, wrong argument types, huge strings, deeply nested JSON,
//! invalid JSON-RPC, requests before `initialize`, cancelled requests,
//! 10,000 calls in a burst, many sessions, missing/wrong bearer tokens and a
//! wrong Origin. After every hostile step the suite checks that the same
//! proposer process still answers a valid `tools/call`, that no answer
//! carries another tenant's row, and that every error is specific (an MCP
//! tool result with `ok: false` and a known `error.code`, or a JSON-RPC error
//! with a known code and a message, or an HTTP status with a message). Each
//! test prints a table: attempt, expected, observed.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use airlock_tests::bin;
use airlock_tests::databases::{Database, execute, postgres_reference, reference_config_for};
use airlock_tests::executor::ExecutorProcess;
use airlock_tests::mcp::{HttpProposer, McpClient, call};
use serde_json::{Value, json};

const TOKEN: &str = "hostile-bearer-token-0123456789abcdef";

/// Airlock codes (`error.airlock_code`) a tool result may carry when `ok`
/// is false (never `internal`).
const TOOL_ERROR_CODES: &[&str] = &[
    "unknown_tool",
    "invalid_arguments",
    "not_found",
    "policy_refused",
    "executor_unavailable",
    "refused_by_executor",
    "source_timeout",
    "source_unavailable",
    "source_misconfigured",
    "outcome_unknown",
];

/// JSON-RPC error codes that say what was wrong (never -32603 internal error).
const RPC_ERROR_CODES: &[i64] = &[-32700, -32600, -32601, -32602];

/// Values of the other tenant's seed rows that no request of this suite ever
/// sends: they may appear in no answer at all.
const OTHER_TENANT_VALUES: &[&str] = &[
    "OtherCo Labs",
    "ops@otherco.invalid",
    "OtherCo private billing ticket",
];

/// The other tenant's identifiers: requests name them (error messages may
/// echo the requested id), but no result's `data` may hold them.
const OTHER_TENANT_IDS: &[&str] = &["otherco", "INV-9001", "T-9001", "O-9001", "cust_other_1"];

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn postgres() -> &'static Database {
    static DB: OnceLock<Database> = OnceLock::new();
    DB.get_or_init(|| postgres_reference("airlock_hostile_mcp"))
}

/// A real executor on the reference config; the proposer's environment.
struct Stack {
    exec: ExecutorProcess,
    env: Vec<(&'static str, String)>,
}

impl Stack {
    fn new() -> Stack {
        let db = postgres();
        Stack::on(db, &db.read_url)
    }

    fn on(db: &Database, read_url: &str) -> Stack {
        let exec = ExecutorProcess::start(&reference_config_for(db), &[("APP_TENANT_ID", "acme")]);
        let env = vec![
            ("APP_READ_URL", read_url.to_owned()),
            ("APP_TENANT_ID", "acme".to_owned()),
            ("APP_PRINCIPAL", "agent_17".to_owned()),
        ];
        Stack { exec, env }
    }

    fn env(&self) -> Vec<(&str, &str)> {
        self.env.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }

    fn http(&self, name: &str) -> (HttpProposer, PathBuf) {
        let log = self.exec.path().join(format!("{name}.stderr"));
        let mut env = self.env();
        env.push(("MCP_TOKEN", TOKEN));
        let p = HttpProposer::start_with_stderr(
            &self.exec.config_path,
            &self.exec.socket_dir,
            &env,
            &["--auth-token-env", "MCP_TOKEN"],
            Stdio::from(std::fs::File::create(&log).unwrap()),
        );
        (p, log)
    }
}

/// A reader role on `db` that may hold at most `limit` connections, so a test
/// that provokes a flood of connections cannot exhaust the shared server's
/// slots (and break everything else running against it). Its read URL.
fn limited_reader(db: &Database, role: &str, limit: u32) -> String {
    execute(
        db,
        &format!(
            "DO $$ BEGIN CREATE ROLE {role} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
             ALTER ROLE {role} LOGIN CONNECTION LIMIT {limit};
             GRANT CONNECT ON DATABASE \"{name}\" TO {role};
             GRANT USAGE ON SCHEMA public TO {role};
             GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role};",
            name = db.name
        ),
    );
    let url = db.read_url.replace(
        "synapsor_reader:synapsor_reader_password",
        &format!("{role}:unused-under-trust"),
    );
    assert_ne!(url, db.read_url, "the reader URL has the expected shape");
    url
}

// ------------------------------------------------------------ the verdicts

/// The summary every test prints.
#[derive(Default)]
struct Table {
    rows: Vec<(String, String, String)>,
}

impl Table {
    fn row(&mut self, attempt: &str, expected: &str, observed: impl Into<String>) {
        self.rows
            .push((attempt.to_owned(), expected.to_owned(), observed.into()));
    }

    fn print(&self, title: &str) {
        let mut out = format!(
            "\n== {title}\n{:<58} {:<40} observed\n",
            "attempt", "expected"
        );
        for (a, e, o) in &self.rows {
            out.push_str(&format!("{a:<58} {e:<40} {o}\n"));
        }
        std::io::stderr().write_all(out.as_bytes()).unwrap();
    }
}

fn short(s: &str) -> String {
    let one_line = s.replace('\n', " ");
    if one_line.chars().count() > 90 {
        format!("{}…", one_line.chars().take(90).collect::<String>())
    } else {
        one_line
    }
}

fn clip(s: &str) -> String {
    s.chars().take(3000).collect()
}

/// Another tenant's row never appears: not its values anywhere, not its ids in `data`.
fn assert_no_other_tenant(text: &str) {
    for v in OTHER_TENANT_VALUES {
        assert!(
            !text.contains(v),
            "another tenant's data ({v:?}) leaked: {}",
            clip(text)
        );
    }
}

/// Judge one tool-result envelope: specific when not ok, only acme's data.
fn judge_envelope(env: &Value) -> String {
    assert_no_other_tenant(&env.to_string());
    let data = env["data"].to_string().to_lowercase();
    for id in OTHER_TENANT_IDS {
        assert!(
            !data.contains(&id.to_lowercase()),
            "another tenant's row ({id}) in data: {env}"
        );
    }
    if let Some(t) = env["data"].get("tenant_id") {
        assert_eq!(t, "acme", "{env}");
    }
    if env["ok"] == true {
        assert!(env["error"].is_null(), "{env}");
        return "ok".to_owned();
    }
    assert_eq!(env["ok"], false, "the envelope says ok or not: {env}");
    assert!(env["data"].is_null(), "no data with an error: {env}");
    assert!(
        env["proposal"].is_null(),
        "no proposal with an error: {env}"
    );
    let safe = env["error"]["code"].as_str().unwrap_or_default();
    assert!(
        !safe.is_empty() && safe.chars().all(|c| c.is_ascii_uppercase() || c == '_'),
        "error.code is UPPER_SNAKE_CASE: {env}"
    );
    assert!(env["error"]["retryable"].is_boolean(), "{env}");
    let code = env["error"]["airlock_code"].as_str().unwrap_or_default();
    let message = env["error"]["message"].as_str().unwrap_or_default();
    assert!(
        TOOL_ERROR_CODES.contains(&code),
        "tool error code {code:?} is not a specific, known one: {}",
        clip(&env.to_string())
    );
    assert!(
        !message.trim().is_empty() && !message.to_lowercase().contains("internal error"),
        "tool error message is empty or generic: {env}"
    );
    format!("{code}: {}", short(message))
}

/// Judge one JSON-RPC message from the server: a known error code with a
/// message, or a result (tool results judged as envelopes).
fn judge(m: &Value) -> String {
    let text = m.to_string();
    assert_no_other_tenant(&text);
    assert_eq!(m["jsonrpc"], "2.0", "{}", clip(&text));
    if let Some(err) = m.get("error") {
        let code = err["code"]
            .as_i64()
            .unwrap_or_else(|| panic!("JSON-RPC error without an integer code: {m}"));
        let message = err["message"].as_str().unwrap_or_default();
        assert!(
            RPC_ERROR_CODES.contains(&code),
            "JSON-RPC error code {code} is not a specific one: {m}"
        );
        assert!(
            !message.trim().is_empty() && !message.to_lowercase().contains("internal error"),
            "JSON-RPC error message is empty or generic: {m}"
        );
        return format!("JSON-RPC {code} {:?}", short(message));
    }
    let result = m
        .get("result")
        .unwrap_or_else(|| panic!("a server message is neither a result nor an error: {m}"));
    match result.get("structuredContent") {
        Some(env) => {
            let verdict = judge_envelope(env);
            assert_eq!(
                result["isError"],
                json!(env["ok"] != true),
                "isError agrees with ok: {}",
                clip(&text)
            );
            verdict
        }
        None => "result".to_owned(),
    }
}

fn rpc_error_code(m: &Value) -> Option<i64> {
    m.get("error").and_then(|e| e["code"].as_i64())
}

fn tool_error_code(m: &Value) -> Option<&str> {
    m["result"]["structuredContent"]["error"]["airlock_code"].as_str()
}

fn tool_call(id: impl Into<Value>, tool: &str, args: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id.into(), "method": "tools/call", "params": {"name": tool, "arguments": args}})
}

fn initialize(id: i64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "hostile", "version": "1"}}})
}

fn nested_arrays(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

fn nested_objects(depth: usize) -> String {
    format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth))
}

// ----------------------------------------------------------------- stdio

/// The proposer over stdio, driven with raw lines.
struct RawStdio {
    child: Child,
    stdin: Option<Box<dyn Write + Send>>,
    lines: mpsc::Receiver<String>,
    stderr: PathBuf,
    next_id: i64,
}

/// A JSON-RPC line, not a log line (`2>&1`).
fn is_json_rpc(line: &[u8]) -> bool {
    const MARK: &[u8] = b"\"jsonrpc\":\"2.0\"";
    line.windows(MARK.len()).any(|w| w == MARK)
}

/// How the client's end is wired to the proposer's stdin and stdout.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wiring {
    /// Pipes, as MCP clients spawn servers (the proposer's non-blocking path).
    Pipes,
    /// Unix sockets: not pipes, so the proposer falls back to tokio's stdio.
    Sockets,
    /// Pipes, with stderr sharing stdout's pipe (`2>&1`): stdout stays blocking.
    SharedLog,
}

impl RawStdio {
    fn spawn(stack: &Stack, name: &str) -> RawStdio {
        RawStdio::spawn_wired(stack, name, Wiring::Pipes)
    }

    fn spawn_wired(stack: &Stack, name: &str, wiring: Wiring) -> RawStdio {
        let stderr = stack.exec.path().join(format!("{name}.stderr"));
        let mut cmd = Command::new(bin("airlock-proposer"));
        cmd.arg("serve")
            .arg("--config")
            .arg(&stack.exec.config_path)
            .arg("--socket-dir")
            .arg(&stack.exec.socket_dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(stack.env())
            .stderr(std::fs::File::create(&stderr).unwrap());
        // The client's own ends where they are not the child's pipes.
        type Ends = (
            Option<Box<dyn Write + Send>>,
            Option<Box<dyn std::io::Read + Send>>,
        );
        let (our_stdin, our_stdout): Ends = match wiring {
            Wiring::Pipes => {
                cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
                (None, None)
            }
            Wiring::Sockets => {
                let (ours_in, theirs_in) = std::os::unix::net::UnixStream::pair().unwrap();
                let (ours_out, theirs_out) = std::os::unix::net::UnixStream::pair().unwrap();
                cmd.stdin(std::os::fd::OwnedFd::from(theirs_in))
                    .stdout(std::os::fd::OwnedFd::from(theirs_out));
                (Some(Box::new(ours_in)), Some(Box::new(ours_out)))
            }
            Wiring::SharedLog => {
                let (reader, writer) = std::io::pipe().unwrap();
                cmd.stdin(Stdio::piped())
                    .stdout(writer.try_clone().unwrap())
                    .stderr(writer);
                (None, Some(Box::new(reader)))
            }
        };
        let mut child = cmd.spawn().expect("spawn airlock-proposer");
        // `cmd` holds the child's ends of the pipes and sockets: close them,
        // or the client never sees the proposer's EOF.
        drop(cmd);
        let stdin: Box<dyn Write + Send> =
            our_stdin.unwrap_or_else(|| Box::new(child.stdin.take().unwrap()));
        let stdout: Box<dyn std::io::Read + Send> =
            our_stdout.unwrap_or_else(|| Box::new(child.stdout.take().unwrap()));
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    // With `2>&1` the log's lines arrive here too.
                    Ok(_) if wiring == Wiring::SharedLog && !is_json_rpc(&buf) => {}
                    Ok(_) => {
                        let line = String::from_utf8(buf.clone())
                            .unwrap_or_else(|_| "<non-UTF-8 output>".to_owned());
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        RawStdio {
            stdin: Some(stdin),
            child,
            lines,
            stderr,
            next_id: 1000,
        }
    }

    fn id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }

    fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }

    fn send_bytes(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        let r = stdin
            .write_all(bytes)
            .and_then(|()| stdin.write_all(b"\n"))
            .and_then(|()| stdin.flush());
        if let Err(e) = r {
            let status = self.child.try_wait().ok().flatten();
            panic!(
                "cannot write to the proposer ({e}); exited: {status:?}\nstderr:\n{}",
                self.stderr_text()
            );
        }
    }

    fn send_line(&mut self, line: &str) {
        self.send_bytes(line.as_bytes());
    }

    fn send(&mut self, v: &Value) {
        self.send_line(&v.to_string());
    }

    fn parse(&self, line: &str) -> Value {
        serde_json::from_str(line).unwrap_or_else(|e| {
            panic!(
                "stdout carries only JSON-RPC, got ({e}): {}\nstderr:\n{}",
                clip(line),
                self.stderr_text()
            )
        })
    }

    /// Every message until one answer for each of `ids` has arrived.
    fn wait_for(&mut self, ids: &[Value], timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        let mut missing: Vec<Value> = ids.to_vec();
        let mut got = Vec::new();
        while !missing.is_empty() {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => {
                    let v = self.parse(&line);
                    if let Some(pos) = missing.iter().position(|id| *id == v["id"]) {
                        missing.remove(pos);
                    }
                    got.push(v);
                }
                Err(RecvTimeoutError::Timeout) => {
                    let alive = self.alive();
                    panic!(
                        "no answer for {missing:?} within {timeout:?} (alive: {alive})\nstderr:\n{}",
                        self.stderr_text()
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(Duration::from_millis(100));
                    let status = self.child.try_wait().ok().flatten();
                    panic!(
                        "the proposer closed stdout while {missing:?} were pending (exit: {status:?})\nstderr:\n{}",
                        self.stderr_text()
                    )
                }
            }
        }
        got
    }

    /// Whatever arrives within `window`.
    fn collect(&mut self, window: Duration) -> Vec<Value> {
        let deadline = Instant::now() + window;
        let mut got = Vec::new();
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            got.push(self.parse(&line));
        }
        got
    }

    /// Read INV-3001 and expect it answered; returns every message up to
    /// that answer (the session still serves).
    fn read_ok(&mut self, context: &str) -> Vec<Value> {
        let id = self.id();
        self.send(&tool_call(
            id,
            "billing__inspect_invoice",
            json!({"invoice_id": "INV-3001"}),
        ));
        let msgs = self.wait_for(&[json!(id)], Duration::from_secs(30));
        assert_eq!(judge(msgs.last().unwrap()), "ok", "{context}");
        msgs
    }

    fn handshake(&mut self) {
        self.send(&initialize(1));
        let msgs = self.wait_for(&[json!(1)], Duration::from_secs(20));
        let init = msgs.iter().find(|m| m["id"] == 1).unwrap();
        assert_eq!(
            init["result"]["serverInfo"]["name"], "airlock-proposer",
            "{init}"
        );
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    }

    fn close(mut self) -> String {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.alive() {
            assert!(
                Instant::now() < deadline,
                "the proposer did not exit at end of input"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let stderr = self.stderr_text();
        assert!(
            !stderr.contains("panicked"),
            "the proposer panicked:\n{stderr}"
        );
        stderr
    }
}

impl Drop for RawStdio {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How the liveness of the same process is proven after a step.
#[derive(Clone, Copy)]
enum Control {
    /// Before `initialize`: a ping.
    Ping,
    /// After: a valid read of the tenant's own invoice.
    Call,
}

/// One hostile step over stdio: write `lines`, then a control request; wait
/// for the answers to `wait` and to the control; judge every message; let
/// `expect` check the step's own answers and describe them.
fn stdio_step(
    p: &mut RawStdio,
    table: &mut Table,
    control: Control,
    (attempt, expected): (&str, &str),
    lines: &[Vec<u8>],
    wait: &[Value],
    expect: impl FnOnce(&[Value]) -> String,
) {
    for l in lines {
        p.send_bytes(l);
    }
    let cid = p.id();
    match control {
        Control::Ping => p.send(&json!({"jsonrpc": "2.0", "id": cid, "method": "ping"})),
        Control::Call => p.send(&tool_call(
            cid,
            "billing__inspect_invoice",
            json!({"invoice_id": "INV-3001"}),
        )),
    }
    let mut ids = wait.to_vec();
    ids.push(json!(cid));
    let msgs = p.wait_for(&ids, Duration::from_secs(30));
    let mut own = Vec::new();
    for m in &msgs {
        judge(m);
        if m["id"] == cid {
            match control {
                Control::Ping => assert_eq!(m["result"], json!({}), "{attempt}: ping: {m}"),
                Control::Call => {
                    let env = &m["result"]["structuredContent"];
                    assert_eq!(env["ok"], true, "{attempt}: the control call failed: {m}");
                    assert_eq!(env["data"]["id"], "INV-3001", "{attempt}: {m}");
                }
            }
        } else if m["id"].is_null() || wait.contains(&m["id"]) {
            own.push(m.clone());
        }
        // Anything else is a late answer to an earlier step: judged, not matched.
    }
    let observed = expect(&own);
    assert!(
        p.alive(),
        "{attempt}: the proposer died\nstderr:\n{}",
        p.stderr_text()
    );
    table.row(attempt, expected, observed);
}

fn describe(msgs: &[Value]) -> String {
    if msgs.is_empty() {
        return "no answer".to_owned();
    }
    msgs.iter().map(judge).collect::<Vec<_>>().join(" | ")
}

/// Every message is an id-less `-32600 Invalid request`, one per bad line.
fn invalid_requests(n: usize) -> impl FnOnce(&[Value]) -> String {
    move |msgs: &[Value]| {
        assert_eq!(msgs.len(), n, "one answer per bad line: {msgs:?}");
        for m in msgs {
            assert_eq!(rpc_error_code(m), Some(-32600), "{m}");
            assert!(m["id"].is_null(), "{m}");
        }
        format!("{n} × {}", describe(&msgs[..1]))
    }
}

/// Each answer is a tool result with this error code.
fn tool_errors(code: &'static str) -> impl FnOnce(&[Value]) -> String {
    move |msgs: &[Value]| {
        assert!(!msgs.is_empty());
        let mut seen = Vec::new();
        for m in msgs {
            assert_eq!(tool_error_code(m), Some(code), "{}", clip(&m.to_string()));
            let v = judge(m);
            if !seen.contains(&v) {
                seen.push(v);
            }
        }
        format!("{} × {}", msgs.len(), seen.join(" | "))
    }
}

/// Every message is a `-32700 Parse error` with `id: null`, one per line that
/// is not JSON (the proposer's stdio front answers them; rmcp alone drops them).
fn parse_errors(n: usize) -> impl FnOnce(&[Value]) -> String {
    move |msgs: &[Value]| {
        assert_eq!(msgs.len(), n, "one answer per unparsable line: {msgs:?}");
        for m in msgs {
            assert_eq!(rpc_error_code(m), Some(-32700), "{m}");
            assert_eq!(m.get("id"), Some(&Value::Null), "id null: {m}");
            let message = m["error"]["message"].as_str().unwrap_or_default();
            assert!(message.starts_with("Parse error: "), "{m}");
        }
        format!("{n} × {}", describe(&msgs[..1]))
    }
}

/// Silence, or only specific errors.
fn silent_or_specific(msgs: &[Value]) -> String {
    for m in msgs {
        assert!(m.get("error").is_some(), "no result for bad input: {m}");
    }
    if msgs.is_empty() {
        "no answer (ignored); the same process serves on".to_owned()
    } else {
        describe(msgs)
    }
}

#[test]
fn stdio_hostile_client() {
    let stack = Stack::new();
    let mut p = RawStdio::spawn(&stack, "stdio-hostile");
    let mut t = Table::default();
    let l = |v: Value| v.to_string().into_bytes();

    // ---- before initialize
    stdio_step(
        &mut p,
        &mut t,
        Control::Ping,
        ("tools/list before initialize", "JSON-RPC error for its id"),
        &[l(
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
        )],
        &[json!(1)],
        |m| {
            assert!(m[0].get("result").is_none(), "{}", m[0]);
            assert!(rpc_error_code(&m[0]).is_some(), "{}", m[0]);
            describe(m)
        },
    );
    stdio_step(
        &mut p,
        &mut t,
        Control::Ping,
        (
            "tools/call (other tenant's invoice) before initialize",
            "JSON-RPC error, no data",
        ),
        &[l(tool_call(
            2,
            "billing__inspect_invoice",
            json!({"invoice_id": "INV-9001"}),
        ))],
        &[json!(2)],
        |m| {
            assert!(m[0].get("result").is_none(), "{}", m[0]);
            describe(m)
        },
    );
    stdio_step(
        &mut p,
        &mut t,
        Control::Ping,
        ("garbage line before initialize", "-32700 with id null"),
        &[b"GET / HTTP/1.1".to_vec()],
        &[],
        parse_errors(1),
    );
    p.handshake();
    t.row(
        "initialize after all that",
        "the same process initializes",
        "ok",
    );

    // ---- invalid JSON-RPC
    stdio_step(
        &mut p,
        &mut t,
        Control::Call,
        (
            "garbage, truncated JSON, non-UTF-8 bytes, blank line",
            "-32700 with id null for each non-blank line",
        ),
        &[
            b"}{ not json at all".to_vec(),
            b"{\"jsonrpc\": \"2.0\", \"id\": 3, \"method\": \"tools/li".to_vec(),
            vec![0xff, 0xfe, 0xfd, 0x00, 0x80],
            b"   ".to_vec(),
        ],
        &[],
        parse_errors(3),
    );
    stdio_step(
        &mut p,
        &mut t,
        Control::Call,
        (
            "JSON that is not a message: null, 42, \"s\", {}",
            "-32600 per line",
        ),
        &[
            b"null".to_vec(),
            b"42".to_vec(),
            b"\"s\"".to_vec(),
            b"{}".to_vec(),
        ],
        &[],
        invalid_requests(4),
    );
    stdio_step(
        &mut p,
        &mut t,
        Control::Call,
        ("a JSON array (batch) and an empty array", "-32600 per line"),
        &[
            l(json!([{"jsonrpc": "2.0", "id": 4, "method": "tools/list"}])),
            b"[]".to_vec(),
        ],
        &[],
        invalid_requests(2),
    );
    stdio_step(
        &mut p,
        &mut t,
        Control::Call,
        (
            "jsonrpc \"1.0\", missing jsonrpc, id object, id null",
            "-32600 per line",
        ),
        &[
            l(json!({"jsonrpc": "1.0", "id": 5, "method": "tools/list"})),
            l(json!({"id": 6, "method": "tools/list"})),
            l(json!({"jsonrpc": "2.0", "id": {"a": 1}, "method": "tools/list"})),
            l(json!({"jsonrpc": "2.0", "id": null, "method": "tools/list"})),
        ],
        &[],
        invalid_requests(4),
    );
    stdio_step(
        &mut p,
        &mut t,
        Control::Call,
        ("a method that does not exist", "-32601 for its id"),
        &[l(
            json!({"jsonrpc": "2.0", "id": 7, "method": "db/execute_sql", "params": {"sql": "DROP TABLE invoices"}}),
        )],
        &[json!(7)],
        |m| {
            assert_eq!(rpc_error_code(&m[0]), Some(-32601), "{}", m[0]);
            describe(m)
        },
    );
    stdio_step(
        &mut p,
        &mut t,
        Control::Call,
        (
            "tools/call without an id (a notification)",
            "no answer (notifications get none)",
        ),
        &[l(
            json!({"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "billing__inspect_invoice", "arguments": {"invoice_id": "INV-9001"}}}),
        )],
        &[],
        |m| {
            assert!(m.is_empty(), "{m:?}");
            "no answer".to_owned()
        },
    );
    stdio_step(
        &mut p,
        &mut t,
        Control::Call,
        (
            "tools/call with params an array, a string",
            "-32600 per line",
        ),
        &[
            l(json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": [1, 2]})),
            l(json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": "x"})),
        ],
        &[],
        invalid_requests(2),
    );
    stdio_step(
        &mut p,
        &mut t,
        Control::Call,
        (
            "tools/call: params null, no params, no name, arguments an array",
            "JSON-RPC error for each id",
        ),
        &[
            l(json!({"jsonrpc": "2.0", "id": 10, "method": "tools/call", "params": null})),
            l(json!({"jsonrpc": "2.0", "id": 14, "method": "tools/call"})),
            l(json!({"jsonrpc": "2.0", "id": 11, "method": "tools/call", "params": {}})),
            l(
                json!({"jsonrpc": "2.0", "id": 12, "method": "tools/call", "params": {"name": "billing__inspect_invoice", "arguments": ["INV-9001"]}}),
            ),
        ],
        &[json!(10), json!(14), json!(11), json!(12)],
        |m| {
            for x in m {
                assert!(rpc_error_code(x).is_some(), "{x}");
            }
            let mut kinds: Vec<String> = m.iter().map(judge).collect();
            kinds.dedup();
            format!("{} × {}", m.len(), kinds.join(" | "))
        },
    );
    stdio_step(
        &mut p,
        &mut t,
        Control::Call,
        (
            "a stray response and a stray error from the client",
            "ignored",
        ),
        &[
            l(json!({"jsonrpc": "2.0", "id": 99999, "result": {}})),
            l(json!({"jsonrpc": "2.0", "id": 99998, "error": {"code": 1, "message": "x"}})),
        ],
        &[],
        silent_or_specific,
    );
    stdio_step(
        &mut p,
        &mut t,
        Control::Call,
        (
            "initialize a second time",
            "a specific answer; session unchanged",
        ),
        &[l(initialize(13))],
        &[json!(13)],
        describe,
    );

    // ---- unknown tools
    let huge_name = "x".repeat(512 * 1024);
    stdio_step(
        &mut p,
        &mut t,
        Control::Call,
        (
            "unknown tools (SQL, empty, canonical dotted name, path, 512 KiB name)",
            "unknown_tool",
        ),
        &[
            l(tool_call(
                20,
                "db.execute_sql",
                json!({"sql": "SELECT * FROM invoices"}),
            )),
            l(tool_call(21, "", json!({}))),
            // The default names are client-safe: the dotted name is not a tool.
            l(tool_call(
                22,
                "billing.inspect_invoice",
                json!({"invoice_id": "INV-3001"}),
            )),
            l(tool_call(
                23,
                "../../billing.inspect_invoice",
                json!({"invoice_id": "INV-3001"}),
            )),
            l(tool_call(24, "billing.approve", json!({}))),
            l(tool_call(25, &huge_name, json!({}))),
        ],
        &(20..=25).map(|i| json!(i)).collect::<Vec<_>>(),
        tool_errors("unknown_tool"),
    );

    // ---- wrong argument types
    stdio_step(
        &mut p,
        &mut t,
        Control::Call,
        (
            "wrong argument types (number, bool, array, object, null, string for number)",
            "invalid_arguments",
        ),
        &[
            l(tool_call(
                30,
                "billing__inspect_invoice",
                json!({"invoice_id": 9001}),
            )),
            l(tool_call(
                31,
                "billing__inspect_invoice",
                json!({"invoice_id": true}),
            )),
            l(tool_call(
                32,
                "billing__inspect_invoice",
                json!({"invoice_id": ["INV-9001"]}),
            )),
            l(tool_call(
                33,
                "billing__inspect_invoice",
                json!({"invoice_id": {"id": "INV-9001"}}),
            )),
            l(tool_call(
                34,
                "billing__inspect_invoice",
                json!({"invoice_id": null}),
            )),
            l(tool_call(
                35,
                "support__propose_plan_credit",
                json!({"customer_id": "cust_acme_1", "credit_cents": "1200", "reason": "r"}),
            )),
            l(tool_call(
                36,
                "support__propose_plan_credit",
                json!({"customer_id": "cust_acme_1", "credit_cents": 1e308, "reason": "r"}),
            )),
            l(tool_call(
                37,
                "orders__propose_status_change",
                json!({"order_id": "O-1001", "status": 1, "reason": "r"}),
            )),
            l(
                json!({"jsonrpc": "2.0", "id": 38, "method": "tools/call", "params": {"name": "billing__inspect_invoice"}}),
            ),
        ],
        &(30..=38).map(|i| json!(i)).collect::<Vec<_>>(),
        tool_errors("invalid_arguments"),
    );
    stdio_step(
        &mut p,
        &mut t,
        Control::Call,
        (
            "authority as arguments (tenant_id, principal, schema)",
            "invalid_arguments",
        ),
        &[
            l(tool_call(
                40,
                "billing__inspect_invoice",
                json!({"invoice_id": "INV-9001", "tenant_id": "otherco"}),
            )),
            l(tool_call(
                41,
                "billing__propose_late_fee_waiver",
                json!({"invoice_id": "INV-9001", "reason": "r", "principal": "admin"}),
            )),
            l(tool_call(
                42,
                "billing__inspect_invoice",
                json!({"invoice_id": "INV-3001", "schema": "pg_catalog"}),
            )),
        ],
        &[json!(40), json!(41), json!(42)],
        tool_errors("invalid_arguments"),
    );
    stdio_step(
        &mut p,
        &mut t,
        Control::Call,
        (
            "the other tenant's rows by id, wildcard, injection, spacing",
            "not_found (or invalid_arguments), no data",
        ),
        &[
            l(tool_call(
                50,
                "billing__inspect_invoice",
                json!({"invoice_id": "INV-9001"}),
            )),
            l(tool_call(
                51,
                "support__inspect_customer_account",
                json!({"customer_id": "cust_other_1"}),
            )),
            l(tool_call(
                52,
                "support__inspect_ticket",
                json!({"ticket_id": "T-9001"}),
            )),
            l(tool_call(
                53,
                "orders__inspect_order",
                json!({"order_id": "O-9001"}),
            )),
            l(tool_call(
                54,
                "billing__inspect_invoice",
                json!({"invoice_id": "INV-9001' OR tenant_id = 'otherco' --"}),
            )),
            l(tool_call(
                55,
                "billing__inspect_invoice",
                json!({"invoice_id": "%"}),
            )),
            l(tool_call(
                56,
                "billing__inspect_invoice",
                json!({"invoice_id": " INV-9001"}),
            )),
            l(tool_call(
                57,
                "billing__inspect_invoice",
                json!({"invoice_id": "INV-9001\u{0}"}),
            )),
            l(tool_call(
                58,
                "billing__propose_late_fee_waiver",
                json!({"invoice_id": "INV-9001", "reason": "r"}),
            )),
        ],
        &(50..=58).map(|i| json!(i)).collect::<Vec<_>>(),
        |m| {
            let mut codes = Vec::new();
            for x in m {
                let c = tool_error_code(x).unwrap_or_else(|| panic!("not refused: {x}"));
                assert!(matches!(c, "not_found" | "invalid_arguments"), "{x}");
                codes.push(c);
            }
            format!(
                "{} × not_found, {} × invalid_arguments; no data",
                codes.iter().filter(|c| **c == "not_found").count(),
                codes.iter().filter(|c| **c == "invalid_arguments").count()
            )
        },
    );

    // ---- huge strings
    let big = "x".repeat(512 * 1024);
    stdio_step(
        &mut p,
        &mut t,
        Control::Call,
        (
            "512 KiB string arguments (id, reason, argument name)",
            "invalid_arguments naming the limit",
        ),
        &[
            l(tool_call(
                60,
                "billing__inspect_invoice",
                json!({"invoice_id": big}),
            )),
            l(tool_call(
                61,
                "billing__propose_late_fee_waiver",
                json!({"invoice_id": "INV-3001", "reason": big}),
            )),
            l(tool_call(
                62,
                "billing__inspect_invoice",
                json!({"invoice_id": "INV-3001", big.clone(): 1}),
            )),
        ],
        &[json!(60), json!(61), json!(62)],
        |m| {
            let mut sizes = Vec::new();
            for x in m {
                assert_eq!(
                    tool_error_code(x),
                    Some("invalid_arguments"),
                    "{}",
                    clip(&x.to_string())
                );
                sizes.push(x.to_string().len());
            }
            let limit = m
                .iter()
                .filter(|x| x["id"] != 62)
                .all(|x| x.to_string().contains("the limit is"));
            assert!(limit, "the limit is named");
            format!(
                "3 × invalid_arguments (\"…characters; the limit is N\"); answer sizes {sizes:?} bytes"
            )
        },
    );

    // A line over the 1 MiB limit is discarded as it is read, never buffered.
    let over = "x".repeat(1024 * 1024 + 1);
    stdio_step(
        &mut p,
        &mut t,
        Control::Call,
        ("a line over 1 MiB", "-32600 with id null naming the limit"),
        &[l(tool_call(
            63,
            "billing__inspect_invoice",
            json!({"invoice_id": over}),
        ))],
        &[],
        |m| {
            let observed = invalid_requests(1)(m);
            assert!(
                m[0].to_string().contains("at most 1048576 bytes"),
                "{}",
                m[0]
            );
            observed
        },
    );

    // ---- deeply nested JSON
    let nested_call = |id: i64, value: &str| {
        format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"tools/call\",\"params\":{{\"name\":\"billing__inspect_invoice\",\"arguments\":{{\"invoice_id\":{value}}}}}}}"
        )
        .into_bytes()
    };
    stdio_step(
        &mut p,
        &mut t,
        Control::Call,
        (
            "arguments nested 100 deep (arrays, objects)",
            "invalid_arguments (wrong type)",
        ),
        &[
            nested_call(70, &nested_arrays(100)),
            nested_call(71, &nested_objects(100)),
        ],
        &[json!(70), json!(71)],
        tool_errors("invalid_arguments"),
    );
    stdio_step(
        &mut p,
        &mut t,
        Control::Call,
        (
            "arguments nested 10,000 deep (arrays, objects)",
            "-32700 with id null; no crash or stack overflow",
        ),
        &[
            nested_call(72, &nested_arrays(10_000)),
            nested_call(73, &nested_objects(10_000)),
        ],
        &[],
        |m| {
            // serde's recursion limit makes the line unparsable, so its id
            // cannot be known: the answer is a parse error with id null.
            let observed = parse_errors(2)(m);
            for x in m {
                let message = x["error"]["message"].as_str().unwrap_or_default();
                assert!(message.contains("recursion limit exceeded"), "{x}");
            }
            format!("{observed}; serves on")
        },
    );

    // ---- cancelled requests
    let cancelled = p.id();
    stdio_step(
        &mut p,
        &mut t,
        Control::Call,
        (
            "notifications/cancelled for an in-flight proposal",
            "no crash; later calls work",
        ),
        &[
            l(tool_call(
                cancelled,
                "billing__propose_late_fee_waiver",
                json!({"invoice_id": "INV-3001", "reason": "cancel me"}),
            )),
            l(
                json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": cancelled, "reason": "user pressed stop"}}),
            ),
        ],
        &[],
        |_| String::new(),
    );
    let late: Vec<Value> = p
        .collect(Duration::from_millis(1500))
        .into_iter()
        .filter(|m| m["id"] == cancelled)
        .collect();
    let observed = if late.is_empty() {
        "no answer for the cancelled id (dropped, as MCP allows); serves on".to_owned()
    } else {
        format!("answered anyway: {}", describe(&late))
    };
    t.rows.last_mut().unwrap().2 = observed;
    stdio_step(
        &mut p,
        &mut t,
        Control::Call,
        (
            "cancel an unknown id; cancel without requestId",
            "ignored or specific error",
        ),
        &[
            l(
                json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 424242}}),
            ),
            l(json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {}})),
        ],
        &[],
        silent_or_specific,
    );
    stdio_step(
        &mut p,
        &mut t,
        Control::Call,
        (
            "two in-flight requests with the same id",
            "answered (at least once); no crash",
        ),
        &[
            l(tool_call(
                80,
                "billing__inspect_invoice",
                json!({"invoice_id": "INV-3002"}),
            )),
            l(tool_call(
                80,
                "billing__inspect_invoice",
                json!({"invoice_id": "INV-9001"}),
            )),
        ],
        &[json!(80)],
        describe,
    );
    // Let any second answer to id 80 arrive now, judged like the rest.
    for m in p.collect(Duration::from_millis(500)) {
        judge(&m);
    }

    let stderr = p.close();
    t.print("stdio: hostile client, one proposer process throughout");
    assert!(
        !stderr.contains("panicked"),
        "no panic in the proposer's log"
    );
}

#[test]
fn stdio_notification_before_initialize() {
    let stack = Stack::new();
    let mut t = Table::default();
    for (what, first) in [
        (
            "notifications/initialized before initialize",
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        ),
        (
            "notifications/cancelled before initialize",
            json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}}),
        ),
        (
            "a stray response before initialize",
            json!({"jsonrpc": "2.0", "id": 7, "result": {}}),
        ),
    ] {
        // rmcp's handshake alone ends the session here (exit 1, "expect
        // initialized request"); the proposer's stdio front drops the line.
        let mut p = RawStdio::spawn(&stack, "stdio-early-notification");
        p.send(&first);
        let early = p.collect(Duration::from_millis(300));
        assert!(early.is_empty(), "{what}: answered {early:?}");
        assert!(p.alive(), "{what}: the session ended\n{}", p.stderr_text());
        p.handshake();
        p.read_ok(what);
        t.row(
            what,
            "ignored; session initializes",
            "no answer; the same process initializes and serves tools/call",
        );
        p.close();
    }
    t.print("stdio: notifications before initialize");
}

/// The proposer reads and writes its stdio pipes itself, without blocking
/// threads; what is not a pipe (a socket here; a terminal or a file) and a
/// stdout that shares its pipe with the log (`2>&1`) keep tokio's blocking
/// stdio. Each wiring serves the same session to its end.
#[test]
fn stdio_over_pipes_sockets_and_a_shared_log() {
    let stack = Stack::new();
    let mut t = Table::default();
    for (wiring, what) in [
        (Wiring::Pipes, "stdin and stdout are pipes"),
        (Wiring::Sockets, "stdin and stdout are Unix sockets"),
        (Wiring::SharedLog, "stderr shares stdout's pipe (2>&1)"),
    ] {
        let mut p = RawStdio::spawn_wired(&stack, "stdio-wiring", wiring);
        p.handshake();
        p.send_line("not json");
        let msgs = p.read_ok(what);
        assert_eq!(
            msgs.iter()
                .filter(|m| rpc_error_code(m) == Some(-32700))
                .count(),
            1,
            "{what}: {msgs:?}"
        );
        p.close();
        t.row(
            what,
            "one -32700, the read answered, exit at EOF",
            "as expected",
        );
    }
    t.print("stdio: how stdin and stdout are wired");
}

/// Pipeline `n` tools/call on one stdio session (a writer thread, so answers
/// drain meanwhile); every answer arrives once and carries one of the codes
/// `kind(id)` allows ("ok" for success). Returns the time and the counts.
fn pipeline(
    p: &mut RawStdio,
    n: i64,
    kind: impl Fn(i64) -> (&'static str, Value, &'static [&'static str]),
) -> (Duration, std::collections::BTreeMap<String, usize>) {
    let mut batch = Vec::with_capacity(n as usize * 100);
    for i in 1..=n {
        let (tool, args, _) = kind(i);
        batch.extend_from_slice(tool_call(i, tool, args).to_string().as_bytes());
        batch.push(b'\n');
    }
    let mut stdin = p.stdin.take().unwrap();
    let started = Instant::now();
    let writer = std::thread::spawn(move || {
        stdin.write_all(&batch).unwrap();
        stdin.flush().unwrap();
        stdin
    });
    let mut seen = vec![false; n as usize + 1];
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    let deadline = started + Duration::from_secs(150);
    let mut answered = 0;
    while answered < n {
        let line = match p
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            Ok(l) => l,
            Err(e) => panic!(
                "only {answered} of {n} answered ({e:?}); alive: {}\nstderr:\n{}",
                p.alive(),
                p.stderr_text()
            ),
        };
        let m = p.parse(&line);
        let id = m["id"].as_i64().unwrap_or_else(|| panic!("{m}"));
        assert!(!seen[id as usize], "id {id} answered twice");
        seen[id as usize] = true;
        answered += 1;
        let verdict = judge(&m);
        let code = verdict.split(':').next().unwrap().to_owned();
        let (_, _, allowed) = kind(id);
        assert!(allowed.contains(&code.as_str()), "id {id}: {m}");
        *counts.entry(code).or_default() += 1;
    }
    let elapsed = started.elapsed();
    p.stdin = Some(writer.join().unwrap());
    // The same process serves on.
    p.read_ok("after the burst");
    (elapsed, counts)
}

#[test]
fn stdio_burst_of_10000_calls() {
    const N: i64 = 10_000;
    let db = postgres();
    let stack = Stack::on(db, &limited_reader(db, "airlock_burst_reader", 8));
    let mut p = RawStdio::spawn(&stack, "stdio-burst");
    p.handshake();
    // Reads queue for the source's few connections; under this burst some
    // may wait longer than the statement timeout and say so.
    const READ: &[&str] = &["ok", "source_timeout", "source_unavailable"];
    const OTHER: &[&str] = &["not_found", "source_timeout", "source_unavailable"];
    let (elapsed, counts) = pipeline(&mut p, N, |i| match i % 4 {
        0 => (
            "billing__inspect_invoice",
            json!({"invoice_id": "INV-3001"}),
            READ,
        ),
        1 => (
            "billing__inspect_invoice",
            json!({"invoice_id": "INV-9001"}),
            OTHER,
        ),
        2 => (
            "db.execute_sql",
            json!({"sql": "SELECT 1"}),
            &["unknown_tool"],
        ),
        _ => (
            "billing__inspect_invoice",
            json!({"invoice_id": 3001}),
            &["invalid_arguments"],
        ),
    });
    p.close();
    let mut t = Table::default();
    t.row(
        &format!("{N} tools/call pipelined on one stdio session"),
        "all answered, each ok or a specific error",
        format!(
            "{N} answered in {:.1} s ({:.0}/s): {counts:?}; serves on",
            elapsed.as_secs_f64(),
            N as f64 / elapsed.as_secs_f64()
        ),
    );
    t.print("stdio: burst");
}

/// Poll how many connections the proposer holds to `db` until `stop`.
fn watch_connections(
    db: &Database,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<i64> {
    let url = db.admin_url.clone();
    let name = db.name.clone();
    std::thread::spawn(move || {
        use sqlx::Connection;
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
                let mut max = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let n: i64 = sqlx::query_scalar(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'airlock-proposer'",
                    )
                    .bind(&name)
                    .fetch_one(&mut c)
                    .await
                    .unwrap();
                    max = max.max(n);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                max
            })
    })
}

/// Hold an exclusive lock on `table` (a slow, contended database) for `hold`;
/// returns once the lock is held.
fn lock_table(db: &Database, table: &str, hold: Duration) -> std::thread::JoinHandle<()> {
    let (held, is_held) = mpsc::channel();
    let url = db.admin_url.clone();
    let table = table.to_owned();
    let t = std::thread::spawn(move || {
        use sqlx::Connection;
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
                let mut tx = c.begin().await.unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"
                )))
                .execute(&mut *tx)
                .await
                .unwrap();
                held.send(()).unwrap();
                tokio::time::sleep(hold).await;
                tx.commit().await.unwrap();
            });
    });
    is_held.recv().expect("the table lock is held");
    t
}

/// A burst of reads must not turn into a flood of database connections: the
/// proposer's pool holds at most 4 per source, and a hostile client must not
/// be able to make it open more (the source's `max_connections` is shared
/// with the application the database serves). The table is locked for 4.5 s
/// first (a slow database, exactly when a flood hurts most): the reads queue
/// up meanwhile, and the earliest reach the pool's acquire timeout (5 s)
/// while the queue drains, on a fast machine as on a slow one.
#[test]
fn a_read_burst_stays_within_the_source_pool() {
    const N: i64 = 3_000;
    /// The pool's size (proposer/src/source) plus one diagnostic connection.
    const BOUND: i64 = 4 + 1;
    static DB: OnceLock<Database> = OnceLock::new();
    let db = DB.get_or_init(|| postgres_reference("airlock_hostile_flood"));
    // The role's own limit (8) keeps the shared server usable if the bound breaks.
    let stack = Stack::on(db, &limited_reader(db, "airlock_flood_reader", 8));
    let mut p = RawStdio::spawn(&stack, "stdio-read-burst");
    p.handshake();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = watch_connections(db, stop.clone());
    const READ: &[&str] = &["ok", "source_timeout", "source_unavailable"];
    let lock = lock_table(db, "invoices", Duration::from_millis(4500));
    let (elapsed, counts) = pipeline(&mut p, N, |_| {
        (
            "billing__inspect_invoice",
            json!({"invoice_id": "INV-3001"}),
            READ,
        )
    });
    lock.join().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let max = watcher.join().unwrap();
    let stderr = p.close();
    let slots = stderr.matches("remaining connection slots").count()
        + stderr.matches("too many clients").count()
        + stderr.matches("too many connections").count();
    let mut t = Table::default();
    t.row(
        &format!("{N} reads pipelined on one stdio session, table locked 4.5 s"),
        &format!("all answered; ≤ {BOUND} source connections"),
        format!(
            "{N} answered in {:.1} s: {counts:?}; peak {max} proposer connections to the source; {slots} × \"connection slots exhausted\" in its log",
            elapsed.as_secs_f64()
        ),
    );
    t.print("stdio: read burst against the source pool");
    assert!(
        max <= BOUND,
        "a burst of reads made the proposer open {max} connections to the source database (the pool holds 4; this test's reader role caps it at 8, and the proposer hit that cap {slots} times): one MCP client can exhaust the database's connection slots (proposer/src/source/mod.rs: every acquire that times out opens its own diagnostic connection)"
    );
    assert_eq!(
        slots, 0,
        "the proposer ran into the source's connection limit {slots} times"
    );
}

// ------------------------------------------------------------------ HTTP

/// Raw HTTP requests against the proposer's /mcp endpoint.
struct RawHttp {
    client: reqwest::Client,
    url: String,
}

struct HttpAnswer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
    /// JSON-RPC messages in an SSE or JSON body.
    messages: Vec<Value>,
}

impl RawHttp {
    async fn post(&self, body: impl Into<reqwest::Body>, headers: &[(&str, &str)]) -> HttpAnswer {
        let mut req = self.client.post(&self.url).body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = tokio::time::timeout(Duration::from_secs(30), req.send())
            .await
            .expect("an answer within 30 s")
            .expect("the HTTP server answers");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = tokio::time::timeout(Duration::from_secs(30), resp.text())
            .await
            .expect("the body within 30 s")
            .unwrap_or_default();
        let messages = parse_messages(&body);
        HttpAnswer {
            status,
            headers,
            body,
            messages,
        }
    }

    /// A POST with the token, the Accept header and a JSON body.
    async fn rpc(&self, body: impl Into<reqwest::Body>, session: Option<&str>) -> HttpAnswer {
        let mut h = vec![
            ("Authorization", format!("Bearer {TOKEN}")),
            ("Accept", "application/json, text/event-stream".to_owned()),
            ("Content-Type", "application/json".to_owned()),
        ];
        if let Some(s) = session {
            h.push(("Mcp-Session-Id", s.to_owned()));
            h.push(("MCP-Protocol-Version", "2025-06-18".to_owned()));
        }
        let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.post(body, &h).await
    }

    /// initialize + notifications/initialized; the session id.
    async fn session(&self) -> String {
        let a = self.rpc(initialize(1).to_string(), None).await;
        assert_eq!(a.status, 200, "{}", a.body);
        let sid = a.headers["mcp-session-id"].to_str().unwrap().to_owned();
        let a = self
            .rpc(
                json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string(),
                Some(&sid),
            )
            .await;
        assert_eq!(a.status, 202, "{}", a.body);
        sid
    }
}

fn parse_messages(body: &str) -> Vec<Value> {
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        return vec![v];
    }
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .collect()
}

/// Judge an HTTP answer: no other tenant's data; a refusal carries a message;
/// every JSON-RPC message in it is specific. Returns a description.
fn judge_http(a: &HttpAnswer) -> String {
    assert_no_other_tenant(&a.body);
    if a.status >= 400 {
        assert!(
            !a.body.trim().is_empty() && !a.body.to_lowercase().contains("internal error"),
            "HTTP {} without a specific message",
            a.status
        );
        assert!(
            a.status < 500,
            "a client error is not a server error: {}",
            a.status
        );
        return format!("HTTP {} {:?}", a.status, short(a.body.trim()));
    }
    if a.messages.is_empty() {
        return format!("HTTP {} (empty)", a.status);
    }
    format!(
        "HTTP {} {}",
        a.status,
        a.messages.iter().map(judge).collect::<Vec<_>>().join(" | ")
    )
}

/// The same server still serves a valid call (a fresh rmcp session) and is alive.
async fn http_control(http: &mut HttpProposer, what: &str) {
    assert!(http.is_alive(), "{what}: the HTTP proposer died");
    let client = http.client(Some(TOKEN)).await;
    let (_, env) = call(
        &client,
        "billing__inspect_invoice",
        json!({"invoice_id": "INV-3001"}),
    )
    .await;
    assert_eq!(env["ok"], true, "{what}: control call: {env}");
    assert_eq!(judge_envelope(&env), "ok");
    client.cancel().await.unwrap();
}

#[test]
fn http_hostile_client() {
    let stack = Stack::new();
    let (mut http, log) = stack.http("http-hostile");
    let raw = RawHttp {
        client: reqwest::Client::new(),
        url: http.url.clone(),
    };
    let mut t = Table::default();
    rt().block_on(http_hostile_steps(&mut http, &raw, &mut t));
    assert!(http.is_alive());
    drop(http);
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!stderr.contains("panicked"), "{stderr}");
    t.print("Streamable HTTP: hostile client");
}

/// Every hostile HTTP step, each followed by a control call on the same server.
async fn http_hostile_steps(http: &mut HttpProposer, raw: &RawHttp, t: &mut Table) {
    let init = initialize(1).to_string();
    let accept = "application/json, text/event-stream";

    // ---- bearer token and Origin
    let bearer = format!("Bearer {TOKEN}");
    let lower = format!("bearer {TOKEN}");
    let spaced = format!("Bearer  {TOKEN}");
    let prefix = format!("Bearer {}", &TOKEN[..16]);
    let longer = format!("Bearer {TOKEN}x");
    let basic = "Basic aG9zdGlsZTpob3N0aWxl".to_owned();
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("no Authorization header", vec![]),
        (
            "Bearer <wrong token>",
            vec![("Authorization", "Bearer wrong-token-wrong-token-wrong")],
        ),
        (
            "lowercase `bearer <token>`",
            vec![("Authorization", lower.as_str())],
        ),
        (
            "two spaces before the token",
            vec![("Authorization", spaced.as_str())],
        ),
        (
            "the token's first 16 characters",
            vec![("Authorization", prefix.as_str())],
        ),
        (
            "the token plus one character",
            vec![("Authorization", longer.as_str())],
        ),
        ("Basic credentials", vec![("Authorization", basic.as_str())]),
        ("empty `Bearer `", vec![("Authorization", "Bearer ")]),
    ];
    for (what, auth) in cases {
        let mut h = auth.clone();
        h.push(("Accept", accept));
        h.push(("Content-Type", "application/json"));
        let a = raw.post(init.clone(), &h).await;
        assert_eq!(a.status, 401, "{what}: {}", a.body);
        assert_eq!(a.headers["www-authenticate"], "Bearer realm=\"airlock\"");
        let v = judge_http(&a);
        http_control(http, what).await;
        t.row(&format!("token: {what}"), "401", v);
    }
    // The token in the query string is not a token.
    let a = RawHttp {
        client: raw.client.clone(),
        url: format!("{}?access_token={TOKEN}", raw.url),
    }
    .post(
        init.clone(),
        &[("Accept", accept), ("Content-Type", "application/json")],
    )
    .await;
    assert_eq!(a.status, 401, "{}", a.body);
    t.row("token: in the query string", "401", judge_http(&a));

    for (what, origin, want) in [
        ("Origin https://evil.example", "https://evil.example", 403),
        (
            "Origin http://localhost.evil.example:3000",
            "http://localhost.evil.example:3000",
            403,
        ),
        (
            "Origin http://127.0.0.1.evil.example",
            "http://127.0.0.1.evil.example",
            403,
        ),
        ("Origin null", "null", 403),
        (
            "Origin https://localhost:3000 (https)",
            "https://localhost:3000",
            403,
        ),
        (
            "Origin http://localhost:3000 (allowed)",
            "http://localhost:3000",
            200,
        ),
    ] {
        let a = raw
            .post(
                init.clone(),
                &[
                    ("Authorization", &bearer),
                    ("Accept", accept),
                    ("Content-Type", "application/json"),
                    ("Origin", origin),
                ],
            )
            .await;
        assert_eq!(a.status, want, "{what}: {}", a.body);
        let v = judge_http(&a);
        http_control(http, what).await;
        t.row(what, &want.to_string(), v);
    }
    // A wrong origin without a token: still 401 first (nothing is revealed).
    let a = raw
        .post(
            init.clone(),
            &[
                ("Accept", accept),
                ("Content-Type", "application/json"),
                ("Origin", "https://evil.example"),
            ],
        )
        .await;
    assert_eq!(a.status, 401);
    t.row("wrong Origin and no token", "401", judge_http(&a));
    let a = raw
        .post(
            init.clone(),
            &[
                ("Authorization", &bearer),
                ("Accept", accept),
                ("Content-Type", "application/json"),
                ("Host", "evil.example"),
            ],
        )
        .await;
    assert!(
        matches!(a.status, 400 | 403),
        "Host evil.example: {} {}",
        a.status,
        a.body
    );
    let v = judge_http(&a);
    http_control(http, "Host header").await;
    t.row("Host: evil.example (DNS rebinding)", "403 or 400", v);

    // ---- transport-level bad requests
    for (what, headers, want) in [
        (
            "no Accept header",
            vec![
                ("Authorization", bearer.as_str()),
                ("Content-Type", "application/json"),
            ],
            406,
        ),
        (
            "Content-Type text/plain",
            vec![
                ("Authorization", bearer.as_str()),
                ("Accept", accept),
                ("Content-Type", "text/plain"),
            ],
            415,
        ),
    ] {
        let a = raw.post(init.clone(), &headers).await;
        assert_eq!(a.status, want, "{what}: {}", a.body);
        let v = judge_http(&a);
        http_control(http, what).await;
        t.row(what, &want.to_string(), v);
    }

    // ---- requests before initialize / without a session
    let a = raw
        .rpc(
            json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}).to_string(),
            None,
        )
        .await;
    assert_eq!(a.status, 400, "{}", a.body);
    t.row(
        "tools/list with no session (before initialize)",
        "400 naming the session",
        judge_http(&a),
    );
    let a = raw
        .rpc(
            tool_call(
                3,
                "billing__inspect_invoice",
                json!({"invoice_id": "INV-9001"}),
            )
            .to_string(),
            Some("00000000-0000-0000-0000-000000000000"),
        )
        .await;
    assert!(matches!(a.status, 400 | 404), "{} {}", a.status, a.body);
    t.row(
        "tools/call with a made-up session id",
        "404 (or 400)",
        judge_http(&a),
    );
    http_control(http, "before initialize").await;

    // ---- inside a real session
    let sid = raw.session().await;
    let s = Some(sid.as_str());
    let in_session =
        |what: &'static str, expected: &'static str, body: String, check: fn(&HttpAnswer)| {
            let raw = &raw;
            async move {
                let a = raw.rpc(body, s).await;
                check(&a);
                (what, expected, judge_http(&a))
            }
        };
    let mut rows = Vec::new();
    rows.push(
        in_session(
            "garbage body",
            "4xx with a message",
            "}{ not json".to_owned(),
            |a| assert!((400..500).contains(&a.status), "{}", a.status),
        )
        .await,
    );
    rows.push(
        in_session(
            "a JSON array (batch)",
            "4xx with a message",
            json!([{"jsonrpc": "2.0", "id": 4, "method": "tools/list"}]).to_string(),
            |a| assert!((400..500).contains(&a.status), "{}", a.status),
        )
        .await,
    );
    rows.push(
        in_session(
            "jsonrpc \"1.0\"",
            "4xx with a message",
            json!({"jsonrpc": "1.0", "id": 5, "method": "tools/list"}).to_string(),
            |a| assert!((400..500).contains(&a.status), "{}", a.status),
        )
        .await,
    );
    rows.push(
        in_session(
            "a method that does not exist",
            "JSON-RPC -32601",
            json!({"jsonrpc": "2.0", "id": 6, "method": "db/execute_sql"}).to_string(),
            |a| assert_eq!(rpc_error_code(&a.messages[0]), Some(-32601), "{}", a.body),
        )
        .await,
    );
    rows.push(
        in_session(
            "tools/call without an id",
            "202, no answer",
            json!({"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "billing__inspect_invoice", "arguments": {"invoice_id": "INV-9001"}}}).to_string(),
            |a| assert_eq!(a.status, 202, "{}", a.body),
        )
        .await,
    );
    rows.push(
        in_session(
            "tools/call with params an array",
            "4xx with a message",
            json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": [1]}).to_string(),
            |a| assert!((400..500).contains(&a.status), "{}", a.status),
        )
        .await,
    );
    rows.push(
        in_session(
            "tools/call with arguments an array",
            "JSON-RPC error",
            json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {"name": "billing__inspect_invoice", "arguments": ["INV-9001"]}}).to_string(),
            |a| assert!(rpc_error_code(&a.messages[0]).is_some(), "{}", a.body),
        )
        .await,
    );
    rows.push(
        in_session(
            "unknown tool db.execute_sql",
            "unknown_tool",
            tool_call(9, "db.execute_sql", json!({"sql": "DROP TABLE invoices"})).to_string(),
            |a| {
                assert_eq!(
                    tool_error_code(&a.messages[0]),
                    Some("unknown_tool"),
                    "{}",
                    a.body
                )
            },
        )
        .await,
    );
    rows.push(
        in_session(
            "wrong argument type (array holding INV-9001)",
            "invalid_arguments",
            tool_call(
                10,
                "billing__inspect_invoice",
                json!({"invoice_id": ["INV-9001"]}),
            )
            .to_string(),
            |a| {
                assert_eq!(
                    tool_error_code(&a.messages[0]),
                    Some("invalid_arguments"),
                    "{}",
                    a.body
                )
            },
        )
        .await,
    );
    rows.push(
        in_session(
            "tenant_id as an argument",
            "invalid_arguments",
            tool_call(
                11,
                "billing__inspect_invoice",
                json!({"invoice_id": "INV-9001", "tenant_id": "otherco"}),
            )
            .to_string(),
            |a| {
                assert_eq!(
                    tool_error_code(&a.messages[0]),
                    Some("invalid_arguments"),
                    "{}",
                    a.body
                )
            },
        )
        .await,
    );
    rows.push(
        in_session(
            "the other tenant's invoice",
            "not_found, no data",
            tool_call(
                12,
                "billing__inspect_invoice",
                json!({"invoice_id": "INV-9001"}),
            )
            .to_string(),
            |a| {
                assert_eq!(
                    tool_error_code(&a.messages[0]),
                    Some("not_found"),
                    "{}",
                    a.body
                )
            },
        )
        .await,
    );
    rows.push(
        in_session(
            "the other tenant's customer via injection",
            "not_found, no data",
            tool_call(
                13,
                "support__inspect_customer_account",
                json!({"customer_id": "cust_other_1' OR '1'='1"}),
            )
            .to_string(),
            |a| {
                assert_eq!(
                    tool_error_code(&a.messages[0]),
                    Some("not_found"),
                    "{}",
                    a.body
                )
            },
        )
        .await,
    );
    rows.push(
        in_session(
            "arguments nested 100 deep",
            "invalid_arguments",
            format!(
                "{{\"jsonrpc\":\"2.0\",\"id\":14,\"method\":\"tools/call\",\"params\":{{\"name\":\"billing__inspect_invoice\",\"arguments\":{{\"invoice_id\":{}}}}}}}",
                nested_arrays(100)
            ),
            |a| assert_eq!(tool_error_code(&a.messages[0]), Some("invalid_arguments"), "{}", a.body),
        )
        .await,
    );
    rows.push(
        in_session(
            "arguments nested 10,000 deep (arrays)",
            "4xx with a message; no crash",
            format!(
                "{{\"jsonrpc\":\"2.0\",\"id\":15,\"method\":\"tools/call\",\"params\":{{\"name\":\"billing__inspect_invoice\",\"arguments\":{{\"invoice_id\":{}}}}}}}",
                nested_arrays(10_000)
            ),
            |a| assert!((400..500).contains(&a.status) && a.body.contains("recursion limit"), "{} {}", a.status, a.body),
        )
        .await,
    );
    rows.push(
        in_session(
            "arguments nested 10,000 deep (objects)",
            "4xx with a message; no crash",
            format!(
                "{{\"jsonrpc\":\"2.0\",\"id\":16,\"method\":\"tools/call\",\"params\":{{\"name\":\"billing__inspect_invoice\",\"arguments\":{{\"invoice_id\":{}}}}}}}",
                nested_objects(10_000)
            ),
            |a| assert!((400..500).contains(&a.status), "{} {}", a.status, a.body),
        )
        .await,
    );
    // Bodies just under and just over the 1 MiB cap.
    let envelope_len = tool_call(17, "billing__inspect_invoice", json!({"invoice_id": ""}))
        .to_string()
        .len();
    let under = tool_call(
        17,
        "billing__inspect_invoice",
        json!({"invoice_id": "x".repeat(1024 * 1024 - envelope_len - 64)}),
    )
    .to_string();
    assert!(under.len() < 1024 * 1024);
    let under_len = under.len();
    rows.push(
        in_session(
            "body just under 1 MiB (1 MiB string argument)",
            "200, invalid_arguments naming the limit",
            under,
            |a| {
                assert_eq!(a.status, 200, "{}", a.body);
                assert_eq!(
                    tool_error_code(&a.messages[0]),
                    Some("invalid_arguments"),
                    "{}",
                    clip(&a.body)
                );
                assert!(a.body.contains("the limit is 128"), "{}", clip(&a.body));
            },
        )
        .await,
    );
    let over = tool_call(
        18,
        "billing__inspect_invoice",
        json!({"invoice_id": "x".repeat(1024 * 1024)}),
    )
    .to_string();
    let over_len = over.len();
    rows.push(
        in_session("body just over 1 MiB", "413", over, |a| {
            assert_eq!(a.status, 413, "{}", a.body)
        })
        .await,
    );
    for (what, expected, observed) in rows {
        http_control(http, what).await;
        let what = match what {
            "body just under 1 MiB (1 MiB string argument)" => {
                format!("body of {under_len} bytes (just under 1 MiB)")
            }
            "body just over 1 MiB" => format!("body of {over_len} bytes (just over 1 MiB)"),
            other => other.to_owned(),
        };
        t.row(&what, expected, observed);
    }

    // ---- a cancelled request
    let started = Instant::now();
    let pending = {
        let raw = RawHttp {
            client: raw.client.clone(),
            url: raw.url.clone(),
        };
        let sid = sid.clone();
        tokio::spawn(async move {
            let body = tool_call(
                20,
                "billing__propose_late_fee_waiver",
                json!({"invoice_id": "INV-3001", "reason": "cancel me over HTTP"}),
            )
            .to_string();
            tokio::time::timeout(Duration::from_secs(10), raw.rpc(body, Some(&sid))).await
        })
    };
    tokio::time::sleep(Duration::from_millis(5)).await;
    let a = raw
        .rpc(
            json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 20, "reason": "stop"}}).to_string(),
            Some(&sid),
        )
        .await;
    assert_eq!(a.status, 202, "{}", a.body);
    let observed = match pending.await.unwrap() {
        Ok(a) => {
            let v = judge_http(&a);
            if a.messages.is_empty() {
                format!(
                    "request stream closed without an answer after {:.1} s",
                    started.elapsed().as_secs_f64()
                )
            } else {
                format!("answered anyway: {v}")
            }
        }
        Err(_) => "request stream still open after 10 s (no answer)".to_owned(),
    };
    http_control(http, "cancelled").await;
    t.row(
        "notifications/cancelled for an in-flight proposal",
        "no crash; later calls work",
        observed,
    );

    // ---- the session can be ended, and is then gone
    let a = raw
        .client
        .delete(&raw.url)
        .header("Authorization", &bearer)
        .header("Mcp-Session-Id", &sid)
        .send()
        .await
        .unwrap();
    assert!(a.status().is_success(), "{}", a.status());
    let a = raw
        .rpc(
            tool_call(
                21,
                "billing__inspect_invoice",
                json!({"invoice_id": "INV-3001"}),
            )
            .to_string(),
            Some(&sid),
        )
        .await;
    assert!(matches!(a.status, 400 | 404), "{} {}", a.status, a.body);
    t.row(
        "tools/call on a deleted session",
        "404 (or 400)",
        judge_http(&a),
    );
    http_control(http, "deleted session").await;
}

#[test]
fn http_many_sessions_at_once() {
    const SESSIONS: usize = 32;
    const CALLS: usize = 20;
    let stack = Stack::new();
    let (mut http, log) = stack.http("http-sessions");
    let mut t = Table::default();
    rt().block_on(async {
        let started = Instant::now();
        let mut clients: Vec<McpClient> = Vec::new();
        let connects = (0..SESSIONS).map(|_| http.client(Some(TOKEN)));
        for c in join_all(connects).await {
            clients.push(c);
        }
        let opened = started.elapsed();
        let work = clients.iter().enumerate().map(|(s, c)| async move {
            let mut verdicts = Vec::new();
            for i in 0..CALLS {
                let (tool, args, want) = match (s + i) % 4 {
                    0 => (
                        "billing__inspect_invoice",
                        json!({"invoice_id": "INV-3001"}),
                        "ok",
                    ),
                    1 => (
                        "billing__inspect_invoice",
                        json!({"invoice_id": "INV-9001"}),
                        "not_found",
                    ),
                    2 => (
                        "support__inspect_ticket",
                        json!({"ticket_id": "T-9001"}),
                        "not_found",
                    ),
                    _ => (
                        "billing__inspect_invoice",
                        json!({"invoice_id": ["x"]}),
                        "invalid_arguments",
                    ),
                };
                let (_, env) = call(c, tool, args).await;
                let v = judge_envelope(&env);
                assert_eq!(v.split(':').next().unwrap(), want, "{env}");
                verdicts.push(want);
            }
            verdicts.len()
        });
        let total: usize = join_all(work).await.into_iter().sum();
        let elapsed = started.elapsed();
        assert_eq!(total, SESSIONS * CALLS);
        for c in clients {
            c.cancel().await.unwrap();
        }
        http_control(&mut http, "after many sessions").await;
        t.row(
            &format!("{SESSIONS} HTTP sessions at once, {CALLS} calls each"),
            "all answered; ok or specific; only acme data",
            format!(
                "{total} answered; sessions opened in {:.2} s, all done in {:.2} s; serves on",
                opened.as_secs_f64(),
                elapsed.as_secs_f64()
            ),
        );
    });
    assert!(http.is_alive());
    drop(http);
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!stderr.contains("panicked"), "{stderr}");
    t.print("Streamable HTTP: many sessions");
}

/// Await every future concurrently (no extra crate).
async fn join_all<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut pending: Vec<(usize, std::pin::Pin<Box<F>>)> = futs.map(Box::pin).enumerate().collect();
    let mut out: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(move |cx| {
        pending.retain_mut(|(i, f)| match f.as_mut().poll(cx) {
            std::task::Poll::Ready(v) => {
                out[*i] = Some(v);
                false
            }
            std::task::Poll::Pending => true,
        });
        if pending.is_empty() {
            std::task::Poll::Ready(out.drain(..).map(|o| o.unwrap()).collect())
        } else {
            std::task::Poll::Pending
        }
    })
    .await
}
