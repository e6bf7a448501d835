//! `airlock mcp config`: a client snippet that launches `airlock-proposer`.
//!
//! The snippet gives the proposer only what it may hold: the read URL of each
//! source and the trusted-context variables (`Config::proposer_env_names()`),
//! by name, with placeholder values. It never copies a value from this
//! process's environment and never names a write URL, handler URL, token,
//! signing secret or command variable (`Config::write_authority_env_names()`)
//! — the proposer would refuse to start with any of them set anyway.
//!
//! The snippet goes to stdout (so it can be redirected into the client's
//! config file); where to put it goes to stderr.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use airlock_ipc::transport::locate_socket_dir;
use airlock_policy::config::{Config, ValueSource};
use serde_json::{Map, Value, json};

use super::output::{Exit, fail, say};
use crate::config_file::resolve_and_read;

/// Client kinds accepted by `airlock mcp config`.
pub const CLIENTS: &[&str] = &[
    "claude-desktop",
    "claude-desktop-remote",
    "cursor",
    "vscode",
    "generic",
    "openai-agents",
];

/// The variable that tells the proposer where the executor's sockets are.
const SOCKET_DIR_ENV: &str = "AIRLOCK_SOCKET_DIR";

/// The Streamable HTTP address and bearer-token variable of the generic snippet.
const HTTP_LISTEN: &str = "127.0.0.1:8766";
const HTTP_PORT: u16 = 8766;
const HTTP_TOKEN_ENV: &str = "AIRLOCK_MCP_TOKEN";
const HTTP_TOKEN_ENV_FALLBACK: &str = "AIRLOCK_PROPOSER_MCP_TOKEN";

/// Print the snippet for `client`. `socket_dir` overrides where the
/// executor's sockets are (else resolved as the executor resolves it).
pub fn print(
    client: String,
    config: Option<PathBuf>,
    absolute_paths: bool,
    socket_dir: Option<PathBuf>,
) -> Exit {
    if !CLIENTS.contains(&client.as_str()) {
        return fail(
            false,
            "usage",
            &format!(
                "unknown client `{client}`; use one of: {}",
                CLIENTS.join(", ")
            ),
            Exit::Usage,
        );
    }
    let (config, loaded) = match resolve_and_read(config.as_deref()) {
        Ok(found) => found,
        Err(e) => return fail(false, "config_unreadable", &e.to_string(), Exit::Failure),
    };
    let Some(cfg) = loaded.config else {
        let n = loaded.report.errors().count();
        return fail(
            false,
            "invalid_config",
            &format!(
                "{} is not a valid config ({n} error{}); run `airlock config validate --config {}` for details",
                config.display(),
                if n == 1 { "" } else { "s" },
                config.display()
            ),
            Exit::Failure,
        );
    };
    let (command, config_arg) = if absolute_paths {
        match absolute(&config) {
            Ok(paths) => paths,
            Err(e) => return fail(false, "path", &e, Exit::Failure),
        }
    } else {
        ("airlock-proposer".to_owned(), config.display().to_string())
    };
    let mut env = proposer_env(&cfg);
    // MCP clients start servers with a sanitized environment (no
    // XDG_RUNTIME_DIR) in a working directory of their choosing: the
    // snippet names the executor's socket directory absolutely.
    let (dir, from) = locate_socket_dir(
        socket_dir.as_deref(),
        |k| std::env::var(k).ok(),
        cfg.airlock.socket_dir.as_deref(),
        config.parent(),
    );
    let dir = match std::path::absolute(&dir) {
        Ok(d) => d,
        Err(e) => {
            return fail(
                false,
                "path",
                &format!("cannot resolve the socket directory {}: {e}", dir.display()),
                Exit::Failure,
            );
        }
    };
    env.insert(SOCKET_DIR_ENV.to_owned(), dir.display().to_string());
    let snippet = Snippet {
        command,
        config: config_arg,
        env,
        token_env: token_env(&cfg),
    };
    let (text, hint) = match client.as_str() {
        "claude-desktop" => (
            pretty(&snippet.mcp_servers(false)),
            "Add this to claude_desktop_config.json (merge into an existing \"mcpServers\"), then restart Claude Desktop.",
        ),
        "claude-desktop-remote" => {
            let host = snippet.host_command();
            eprintln!(
                "airlock: 1. On the Linux host, run the proposer as a long-lived Streamable HTTP server on loopback (set each variable first; {} is the bearer token, at least 16 characters, e.g. `openssl rand -hex 32`):\n  {host}",
                snippet.token_env
            );
            eprintln!(
                "airlock: 2. On the desktop, forward the port over SSH (the token never crosses the network in clear): ssh -N -L {HTTP_PORT}:127.0.0.1:{HTTP_PORT} <linux-host>"
            );
            (
                pretty(&snippet.remote_desktop()),
                "3. Add this to claude_desktop_config.json (merge into an existing \"mcpServers\"), put the token after `Bearer ` in AIRLOCK_AUTH_HEADER, then restart Claude Desktop (it needs Node.js for `npx mcp-remote`).",
            )
        }
        "cursor" => (
            pretty(&snippet.mcp_servers(false)),
            "Add this to .cursor/mcp.json in the project, or ~/.cursor/mcp.json (merge into an existing \"mcpServers\").",
        ),
        "vscode" => (
            pretty(&snippet.mcp_servers(true)),
            "Add this to .vscode/mcp.json (merge into an existing \"servers\").",
        ),
        "generic" => (
            pretty(&snippet.generic_http()),
            "Run `command` with `env` set (a long-lived Streamable HTTP server), then point the MCP client at `url` with the `headers`.",
        ),
        _ => (
            snippet.openai_agents(),
            "Use this with the OpenAI Agents SDK (`pip install openai-agents`); the model sees OpenAI-safe tool names (`.` becomes `__`).",
        ),
    };
    say!("{text}");
    eprintln!("airlock: {hint}");
    eprintln!(
        "airlock: replace each \"<set NAME: …>\" placeholder with the real value. Give the proposer nothing else: never a write URL, handler URL, token, signing secret or command variable."
    );
    eprintln!(
        "airlock: the proposer will look for the executor in {} (from {}); if the executor runs with another socket directory, pass it with --socket-dir",
        dir.display(),
        from.describe()
    );
    if !absolute_paths && matches!(client.as_str(), "claude-desktop" | "cursor" | "vscode") {
        eprintln!(
            "airlock: desktop clients do not start servers from your shell; use --absolute-paths for absolute binary and config paths."
        );
    }
    Exit::Ok
}

/// The proposer's sibling binary and the config, both absolute.
fn absolute(config: &Path) -> Result<(String, String), String> {
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot find this executable's path: {e}"))?;
    let dir = exe
        .parent()
        .ok_or_else(|| format!("{} has no directory", exe.display()))?;
    let proposer = dir.join("airlock-proposer");
    if !proposer.is_file() {
        eprintln!(
            "airlock: warning: {} does not exist (yet); build it with `cargo build --release --bins` or install it there",
            proposer.display()
        );
    }
    let config = std::fs::canonicalize(config)
        .map_err(|e| format!("cannot resolve {}: {e}", config.display()))?;
    Ok((proposer.display().to_string(), config.display().to_string()))
}

/// Each variable the proposer may be given, with a placeholder saying what
/// to put there. Names only: no value is ever read from the environment.
fn proposer_env(cfg: &Config) -> BTreeMap<String, String> {
    let forbidden = cfg.write_authority_env_names();
    let mut what: BTreeMap<&str, String> = BTreeMap::new();
    for source in cfg.sources.values() {
        what.insert(
            &source.read_url_env,
            format!(
                "a read-only {} connection URL (a role that can only SELECT)",
                source.engine.as_str()
            ),
        );
    }
    for ctx in std::iter::once(&cfg.trusted_context).chain(cfg.contexts.values()) {
        if let ValueSource::Env(name) = &ctx.tenant {
            what.insert(name, "the tenant this agent works for".to_owned());
        }
        if let ValueSource::Env(name) = &ctx.principal {
            what.insert(
                name,
                "who the agent acts for (recorded with each proposal)".to_owned(),
            );
        }
    }
    cfg.proposer_env_names()
        .into_iter()
        .filter(|name| !forbidden.contains(name))
        .map(|name| {
            let desc = what
                .get(name)
                .cloned()
                .unwrap_or_else(|| "its value".to_owned());
            (name.to_owned(), format!("<set {name}: {desc}>"))
        })
        .collect()
}

/// The bearer-token variable of the HTTP snippet (never a write-authority name).
fn token_env(cfg: &Config) -> String {
    let taken = cfg.write_authority_env_names();
    if taken.contains(&HTTP_TOKEN_ENV) {
        HTTP_TOKEN_ENV_FALLBACK.to_owned()
    } else {
        HTTP_TOKEN_ENV.to_owned()
    }
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| "{}".to_owned())
}

#[derive(Debug)]
struct Snippet {
    command: String,
    config: String,
    env: BTreeMap<String, String>,
    token_env: String,
}

impl Snippet {
    fn env_json(&self) -> Value {
        Value::Object(
            self.env
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect::<Map<String, Value>>(),
        )
    }

    /// Claude Desktop and Cursor: `mcpServers`; VS Code: `servers` with a type.
    fn mcp_servers(&self, vscode: bool) -> Value {
        let mut server = Map::new();
        if vscode {
            server.insert("type".into(), json!("stdio"));
        }
        server.insert("command".into(), json!(self.command));
        server.insert("args".into(), json!(["serve", "--config", self.config]));
        server.insert("env".into(), self.env_json());
        let key = if vscode { "servers" } else { "mcpServers" };
        json!({ key: { "airlock": Value::Object(server) } })
    }

    /// A long-lived Streamable HTTP proposer and how a client reaches it.
    fn generic_http(&self) -> Value {
        let mut env = self.env.clone();
        env.insert(
            self.token_env.clone(),
            format!(
                "<set {}: a random token of at least 16 characters, e.g. from `openssl rand -hex 32`>",
                self.token_env
            ),
        );
        json!({
            "transport": "streamable-http",
            "command": [
                self.command, "serve", "--config", self.config,
                "--transport", "streamable-http",
                "--listen", HTTP_LISTEN,
                "--auth-token-env", self.token_env,
            ],
            "env": env,
            "url": format!("http://{HTTP_LISTEN}/mcp"),
            "headers": {
                "Authorization": format!("Bearer <the value of {}>", self.token_env),
            },
        })
    }

    /// The host side of the remote recipe: the HTTP proposer on loopback,
    /// one shell line (placeholders for every value).
    fn host_command(&self) -> String {
        let mut line = String::new();
        for (k, v) in &self.env {
            line.push_str(&format!("{k}='{v}' "));
        }
        line.push_str(&format!(
            "{}='<token>' {} serve --config {} --transport streamable-http --listen {HTTP_LISTEN} --auth-token-env {} --alias-mode openai",
            self.token_env, self.command, self.config, self.token_env
        ));
        line
    }

    /// The desktop side: Claude Desktop launches `mcp-remote`, which
    /// speaks stdio to Claude and Streamable HTTP (with the bearer header)
    /// to the forwarded port.
    fn remote_desktop(&self) -> Value {
        json!({
            "mcpServers": {
                "airlock": {
                    "command": "npx",
                    "args": [
                        "-y", "mcp-remote", format!("http://{HTTP_LISTEN}/mcp"),
                        "--header", "Authorization:${AIRLOCK_AUTH_HEADER}",
                    ],
                    "env": {"AIRLOCK_AUTH_HEADER": "Bearer <the value of the host's token variable>"},
                }
            }
        })
    }

    /// The OpenAI Agents SDK: a stdio server with OpenAI-safe tool names.
    fn openai_agents(&self) -> String {
        // JSON string literals are valid Python string literals.
        let lit = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned());
        let args = ["serve", "--config", &self.config, "--alias-mode", "openai"]
            .iter()
            .map(|a| lit(a))
            .collect::<Vec<_>>()
            .join(", ");
        let mut env = String::new();
        for (k, v) in &self.env {
            env.push_str(&format!("        {}: {},\n", lit(k), lit(v)));
        }
        format!(
            "from agents import Agent\n\
             from agents.mcp import MCPServerStdio\n\
             \n\
             # The proposer gets only the read URL and the trusted context.\n\
             # Never add a write URL, handler URL, token, signing secret or command variable.\n\
             airlock = MCPServerStdio(params={{\n    \
             \"command\": {},\n    \
             \"args\": [{args}],\n    \
             \"env\": {{\n{env}    }},\n\
             }})\n\
             agent = Agent(name=\"airlock agent\", mcp_servers=[airlock])",
            lit(&self.command)
        )
    }
}
