//! Driving the real `airlock-proposer` with a real MCP client (rmcp), over
//! stdio (the client spawns the proposer) and over Streamable HTTP.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{ConfigureCommandExt, StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use serde_json::Value;

use crate::bin;

pub type McpClient = RunningService<RoleClient, ()>;

/// Spawn the proposer over stdio with exactly `env` (plus PATH) and connect.
pub async fn stdio_client(
    config: &Path,
    socket_dir: &Path,
    env: &[(&str, &str)],
    extra: &[&str],
) -> McpClient {
    stdio_client_with_stderr(config, socket_dir, env, extra, Stdio::inherit()).await
}

/// The environment an MCP client gives the proposer in the reference
/// setup: the read URL only, tenant `acme`, principal `agent_17`.
pub fn agent_env(read_url: &str) -> [(&'static str, &str); 3] {
    [
        ("APP_READ_URL", read_url),
        ("APP_TENANT_ID", "acme"),
        ("APP_PRINCIPAL", "agent_17"),
    ]
}

/// Make one proposal as the model would: spawn the proposer over stdio as
/// tenant `acme`, principal `agent_17`, with only the read URL, call the
/// tool of `capability` by the name the model sees (the client-safe alias,
/// the proposer's default), and return the new proposal's id (the call
/// must succeed).
pub async fn propose_over_mcp(
    config: &Path,
    socket_dir: &Path,
    read_url: &str,
    capability: &str,
    args: Value,
) -> String {
    let client = stdio_client(config, socket_dir, &agent_env(read_url), &[]).await;
    let tool = airlock_policy::catalog::openai_alias(capability);
    let (_, envelope) = call(&client, &tool, args).await;
    client.cancel().await.expect("close the MCP session");
    assert_eq!(envelope["ok"], true, "{envelope}");
    assert_eq!(envelope["_meta"]["canonical_capability"], capability);
    envelope["proposal"]["id"]
        .as_str()
        .expect("a proposal id")
        .to_owned()
}

/// As [`stdio_client`], with the proposer's stderr sent to `stderr` (e.g. a
/// log file the test inspects afterwards).
pub async fn stdio_client_with_stderr(
    config: &Path,
    socket_dir: &Path,
    env: &[(&str, &str)],
    extra: &[&str],
    stderr: Stdio,
) -> McpClient {
    let cmd = tokio::process::Command::new(bin("airlock-proposer")).configure(|c| {
        c.arg("serve")
            .arg("--config")
            .arg(config)
            .arg("--socket-dir")
            .arg(socket_dir)
            .args(extra);
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default());
        for (k, v) in env {
            c.env(k, v);
        }
    });
    let (transport, _) = TokioChildProcess::builder(cmd)
        .stderr(stderr)
        .spawn()
        .expect("spawn airlock-proposer");
    ().serve(transport)
        .await
        .expect("MCP initialize over stdio")
}

/// Call a tool; return the result and its structured envelope.
pub async fn call(client: &McpClient, tool: &str, args: Value) -> (CallToolResult, Value) {
    let mut params = CallToolRequestParams::new(tool.to_owned());
    if let Value::Object(m) = args {
        params = params.with_arguments(m);
    }
    let result = client
        .call_tool(params)
        .await
        .unwrap_or_else(|e| panic!("tools/call {tool} failed at the protocol level: {e}"));
    let envelope = result
        .structured_content
        .clone()
        .expect("every result carries the envelope as structured content");
    (result, envelope)
}

/// A proposer serving Streamable HTTP on a free loopback port.
pub struct HttpProposer {
    child: Child,
    pub url: String,
    pub port: u16,
}

impl HttpProposer {
    pub fn start(
        config: &Path,
        socket_dir: &Path,
        env: &[(&str, &str)],
        extra: &[&str],
    ) -> HttpProposer {
        HttpProposer::start_with_stderr(config, socket_dir, env, extra, Stdio::inherit())
    }

    /// As [`HttpProposer::start`], with the proposer's stderr sent to `stderr`.
    pub fn start_with_stderr(
        config: &Path,
        socket_dir: &Path,
        env: &[(&str, &str)],
        extra: &[&str],
        stderr: Stdio,
    ) -> HttpProposer {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut cmd = Command::new(bin("airlock-proposer"));
        cmd.args([
            "serve",
            "--transport",
            "streamable-http",
            "--listen",
            &listen,
        ])
        .arg("--config")
        .arg(config)
        .arg("--socket-dir")
        .arg(socket_dir)
        .args(extra)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn airlock-proposer (http)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&listen).is_err() {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("airlock-proposer (http) exited early: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "airlock-proposer did not listen on {listen}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        HttpProposer {
            child,
            url: format!("http://{listen}/mcp"),
            port,
        }
    }

    pub async fn client(&self, token: Option<&str>) -> McpClient {
        let mut cfg = StreamableHttpClientTransportConfig::with_uri(self.url.clone());
        if let Some(t) = token {
            cfg = cfg.auth_header(t.to_owned());
        }
        ().serve(StreamableHttpClientTransport::from_config(cfg))
            .await
            .expect("MCP initialize over HTTP")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the server process is still running.
    pub fn is_alive(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }
}

impl Drop for HttpProposer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Seccomp and NoNewPrivs of every thread of `pid`.
pub fn thread_sandbox_status(pid: u32) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let tid = entry.unwrap().file_name().to_string_lossy().into_owned();
        let status =
            std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_owned())
                .unwrap_or_default()
        };
        out.push((tid, field("Seccomp:"), field("NoNewPrivs:")));
    }
    out
}
