//! Issue 18, item 4 — what the HTTP proposer tells operators, through the
//! real processes: `/healthz`, `/readyz` (sources and the executor, 503 when
//! the executor is gone), `/metrics` behind its own token (404 when off),
//! tool calls counted by canonical tool and outcome with model-chosen names
//! never becoming labels, and one JSON access-log line per request without
//! a token or query string.

use std::process::Stdio;

use airlock_tests::databases::{REFERENCE_DB, postgres_reference, reference_config_for};
use airlock_tests::executor::ExecutorProcess;
use airlock_tests::mcp::{HttpProposer, call};
use airlock_tests::runtime as rt;
use serde_json::{Value, json};

const TOKEN: &str = "test-bearer-token-0123456789";
const METRICS_TOKEN: &str = "metrics-scraper-token-9876543210";

/// The shared reference database, created once per test process.
fn postgres() -> &'static airlock_tests::databases::Database {
    static DB: std::sync::OnceLock<airlock_tests::databases::Database> = std::sync::OnceLock::new();
    DB.get_or_init(|| postgres_reference(REFERENCE_DB))
}

fn get(url: &str, token: Option<&str>) -> (u16, String) {
    rt().block_on(async {
        let mut req = reqwest::Client::new().get(url);
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.text().await.unwrap())
    })
}

#[test]
fn health_readiness_metrics_and_the_access_log_of_the_http_proposer() {
    let db = postgres();
    let mut config = reference_config_for(db);
    config["metrics"] = json!({"enabled": true, "token_env": "METRICS_TOKEN"});
    let mut exec = ExecutorProcess::start(&config, &[("APP_TENANT_ID", "acme")]);
    let log_path = exec.path().join("proposer.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let env = [
        ("APP_READ_URL", db.read_url.as_str()),
        ("APP_TENANT_ID", "acme"),
        ("APP_PRINCIPAL", "agent_17"),
        ("MCP_TOKEN", TOKEN),
        ("METRICS_TOKEN", METRICS_TOKEN),
    ];
    let http = HttpProposer::start_with_stderr(
        &exec.config_path,
        &exec.socket_dir,
        &env,
        &["--auth-token-env", "MCP_TOKEN", "--log-format", "json"],
        Stdio::from(log),
    );
    let base = format!("http://127.0.0.1:{}", http.port);

    let (status, body) = get(&format!("{base}/healthz"), None);
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"ok": true, "status": "live", "transport": "streamable-http"})
    );
    let (status, body) = get(&format!("{base}/readyz?probe=1"), None);
    assert_eq!(status, 200, "{body}");
    let ready: Value = serde_json::from_str(&body).unwrap();
    let names: Vec<(&str, bool)> = ready["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["ok"].as_bool().unwrap()))
        .collect();
    assert_eq!(names, [("source:app", true), ("executor", true)], "{ready}");

    // One served tool call, one unknown tool: counted under a closed label set.
    rt().block_on(async {
        let client = http.client(Some(TOKEN)).await;
        let (_, env) = call(
            &client,
            "billing__inspect_invoice",
            json!({"invoice_id": "INV-3001"}),
        )
        .await;
        assert_eq!(env["ok"], true, "{env}");
        let (_, env) = call(&client, "drop__table__users", json!({})).await;
        assert_eq!(env["ok"], false);
        client.cancel().await.unwrap();
    });

    // Metrics: their own token; the MCP token is not it.
    assert_eq!(get(&format!("{base}/metrics"), None).0, 401);
    assert_eq!(get(&format!("{base}/metrics"), Some(TOKEN)).0, 401);
    let (status, text) = get(&format!("{base}/metrics"), Some(METRICS_TOKEN));
    assert_eq!(status, 200);
    assert!(
        text.contains(
            "airlock_tool_calls_total{tool=\"billing.inspect_invoice\",outcome=\"ok\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains("airlock_tool_calls_total{tool=\"unknown\",outcome=\"unknown_tool\"} 1"),
        "{text}"
    );
    assert!(!text.contains("drop__table__users"), "{text}");
    assert!(
        text.contains(
            "airlock_tool_call_duration_seconds_count{tool=\"billing.inspect_invoice\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains("airlock_http_requests_total{route=\"/healthz\",status=\"2xx\"} 1"),
        "{text}"
    );

    // The executor gone: not ready, and the component says which.
    exec.stop();
    let (status, body) = get(&format!("{base}/readyz"), None);
    assert_eq!(status, 503, "{body}");
    let ready: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["status"], "not_ready");
    assert_eq!(ready["components"][1]["code"], "EXECUTOR_UNAVAILABLE");

    // The access log: one JSON object per request; no token, no query.
    let log = std::fs::read_to_string(&log_path).unwrap();
    let access: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "http")
        .collect();
    assert!(access.len() >= 7, "{log}");
    let readyz = access
        .iter()
        .find(|v| v["fields"]["route"] == "/readyz")
        .unwrap();
    assert_eq!(readyz["fields"]["method"], "GET");
    assert_eq!(readyz["fields"]["status"], 200);
    assert!(readyz["fields"]["duration_ms"].is_u64());
    for secret in [TOKEN, METRICS_TOKEN, "probe=1"] {
        assert!(!log.contains(secret), "{secret} in the log");
    }
}

#[test]
fn metrics_are_off_unless_enabled_and_never_open_off_loopback() {
    let db = postgres();
    let config = reference_config_for(db);
    let exec = ExecutorProcess::start(&config, &[("APP_TENANT_ID", "acme")]);
    let env = [
        ("APP_READ_URL", db.read_url.as_str()),
        ("APP_TENANT_ID", "acme"),
        ("APP_PRINCIPAL", "agent_17"),
        ("MCP_TOKEN", TOKEN),
    ];
    let http = HttpProposer::start(
        &exec.config_path,
        &exec.socket_dir,
        &env,
        &["--auth-token-env", "MCP_TOKEN"],
    );
    let (status, body) = get(&format!("http://127.0.0.1:{}/metrics", http.port), None);
    assert_eq!(
        (status, body.as_str()),
        (404, "metrics are not enabled (config: metrics.enabled)\n")
    );

    let mut config = reference_config_for(db);
    config["metrics"] = json!({"enabled": true});
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
    let out = std::process::Command::new(airlock_tests::bin("airlock-proposer"))
        .args([
            "serve",
            "--transport",
            "streamable-http",
            "--listen",
            "0.0.0.0:0",
        ])
        .args(["--auth-token-env", "MCP_TOKEN", "--config"])
        .arg(&path)
        .arg("--socket-dir")
        .arg(&exec.socket_dir)
        .envs(env)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("METRICS_AUTH_REQUIRED"), "{stderr}");
}

#[test]
fn the_executor_serves_its_own_metrics_behind_the_token() {
    let db = postgres();
    let port = airlock_tests::mcp::free_port();
    let mut config = reference_config_for(db);
    config["metrics"] = json!({"enabled": true, "token_env": "METRICS_TOKEN", "executor_listen": format!("127.0.0.1:{port}")});
    let exec = ExecutorProcess::start(
        &config,
        &[("APP_TENANT_ID", "acme"), ("METRICS_TOKEN", METRICS_TOKEN)],
    );
    let env = [
        ("APP_READ_URL", db.read_url.as_str()),
        ("APP_TENANT_ID", "acme"),
        ("APP_PRINCIPAL", "agent_17"),
        ("MCP_TOKEN", TOKEN),
        ("METRICS_TOKEN", METRICS_TOKEN),
    ];
    let http = HttpProposer::start(
        &exec.config_path,
        &exec.socket_dir,
        &env,
        &["--auth-token-env", "MCP_TOKEN"],
    );
    inspect_once(&http);
    let url = format!("http://127.0.0.1:{port}/metrics");
    assert_eq!(get(&url, None).0, 401);
    let expected = [
        "airlock_executor_requests_total{message=\"record_read\",outcome=\"ok\"} 1",
        "airlock_proposals{state=\"pending_approval\"} 0",
        "airlock_ledger_events 1",
        "airlock_executor_request_duration_seconds_count{message=\"record_read\"} 1",
    ];
    // One scrape: the recorder is installed before the sockets accept
    // anyone, so the read is already counted when its result comes back.
    let (status, text) = get(&url, Some(METRICS_TOKEN));
    assert_eq!(status, 200);
    for line in expected {
        assert!(text.contains(line), "{line} in\n{text}");
    }
    let bytes: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("airlock_ledger_bytes "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(bytes > 0.0, "{text}");
    assert!(!text.contains("acme"), "no tenant in a label: {text}");
}

/// A stand-in OpenTelemetry collector (OTLP over HTTP, JSON): keeps every
/// body POSTed to it.
fn collector() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = std::sync::Arc::clone(&bodies);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut data = Vec::new();
            let mut buf = [0u8; 65536];
            // Headers, then exactly content-length bytes of body.
            let body = loop {
                let Ok(n) = s.read(&mut buf) else { break None };
                if n == 0 {
                    break None;
                }
                data.extend_from_slice(&buf[..n]);
                let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
                    continue;
                };
                let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if data.len() >= end + 4 + len {
                    break Some(data[end + 4..end + 4 + len].to_vec());
                }
            };
            if let Some(body) = body
                && let Ok(v) = serde_json::from_slice::<Value>(&body)
            {
                kept.lock().unwrap().push(v);
            }
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
            );
        }
    });
    (url, bodies)
}

/// (service, name, trace id, span id, parent span id, attributes) of every
/// span the collector received.
fn spans(bodies: &[Value]) -> Vec<(String, String, String, String, String, Value)> {
    let mut out = Vec::new();
    for body in bodies {
        for rs in body["resourceSpans"].as_array().into_iter().flatten() {
            let service = rs["resource"]["attributes"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|a| a["key"] == "service.name")
                .and_then(|a| a["value"]["stringValue"].as_str())
                .unwrap_or_default()
                .to_owned();
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                for sp in ss["spans"].as_array().into_iter().flatten() {
                    let s = |k: &str| sp[k].as_str().unwrap_or_default().to_owned();
                    out.push((
                        service.clone(),
                        s("name"),
                        s("traceId"),
                        s("spanId"),
                        s("parentSpanId"),
                        sp["attributes"].clone(),
                    ));
                }
            }
        }
    }
    out
}

#[test]
fn one_tool_call_is_one_trace_from_the_proposer_through_the_executor_to_the_databases() {
    let db = postgres();
    let (endpoint, bodies) = collector();
    let config = reference_config_for(db);
    let fast = [
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("APP_TENANT_ID", "acme"),
    ];
    let exec =
        ExecutorProcess::start_with_args(&config, &fast, &["--otel-traces-endpoint", &endpoint]);
    let http = HttpProposer::start(
        &exec.config_path,
        &exec.socket_dir,
        &[
            ("APP_READ_URL", db.read_url.as_str()),
            ("APP_TENANT_ID", "acme"),
            ("APP_PRINCIPAL", "agent_17"),
            ("MCP_TOKEN", TOKEN),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
        &[
            "--auth-token-env",
            "MCP_TOKEN",
            "--otel-traces-endpoint",
            &endpoint,
        ],
    );
    inspect_once(&http);
    // The batches arrive within a few hundred milliseconds.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let all = loop {
        let all = spans(&bodies.lock().unwrap());
        let has = |svc: &str, name: &str| all.iter().any(|s| s.0 == svc && s.1 == name);
        if has("airlock-proposer", "tools/call")
            && has("airlock-proposer", "db.query")
            && has("airlock-executor", "record_read")
            && has("airlock-executor", "ledger")
        {
            break all;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "spans so far: {all:#?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let one = |svc: &str, name: &str| {
        all.iter()
            .find(|s| s.0 == svc && s.1 == name)
            .unwrap_or_else(|| panic!("no {svc} {name}"))
            .clone()
    };
    let call_span = one("airlock-proposer", "tools/call");
    let query = one("airlock-proposer", "db.query");
    let record = one("airlock-executor", "record_read");
    let ledger = all
        .iter()
        .find(|s| s.0 == "airlock-executor" && s.1 == "ledger" && s.4 == record.3)
        .unwrap_or_else(|| panic!("no ledger span under record_read: {all:#?}"))
        .clone();
    // One trace: the tool call is its root; the query and the executor's
    // request are its children; the ledger write is the request's.
    assert_eq!(call_span.4, "", "tools/call is the root: {call_span:?}");
    for child in [&query, &record, &ledger] {
        assert_eq!(child.2, call_span.2, "same trace: {child:?}");
    }
    assert_eq!(query.4, call_span.3);
    assert_eq!(
        record.4, call_span.3,
        "the executor continued the proposer's span"
    );
    let attrs = call_span.5.to_string();
    assert!(attrs.contains("billing.inspect_invoice"), "{attrs}");
    assert!(query.5.to_string().contains("postgresql"), "{:?}", query.5);
    // No tenant, principal or argument in any span.
    for s in &all {
        let text = s.5.to_string();
        for secret in ["acme", "agent_17", "INV-3001", TOKEN] {
            assert!(!text.contains(secret), "{secret} in {s:?}");
        }
    }
}

/// One successful `billing.inspect_invoice` call through `http`.
fn inspect_once(http: &HttpProposer) {
    rt().block_on(async {
        let client = http.client(Some(TOKEN)).await;
        let (_, env) = call(
            &client,
            "billing__inspect_invoice",
            json!({"invoice_id": "INV-3001"}),
        )
        .await;
        assert_eq!(env["ok"], true, "{env}");
        client.cancel().await.unwrap();
    });
}
