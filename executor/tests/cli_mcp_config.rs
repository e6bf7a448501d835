//! `airlock mcp config`: every client snippet launches the proposer with only
//! the read URL and the trusted-context variables, by name, with placeholder
//! values — never a value from the environment, never a write or handler
//! variable.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const CLIENTS: &[&str] = &[
    "claude-desktop",
    "cursor",
    "vscode",
    "generic",
    "openai-agents",
];
const ALLOWED: &[&str] = &[
    "REFERENCE_POSTGRES_READ_URL",
    "SYNAPSOR_TENANT_ID",
    "SYNAPSOR_PRINCIPAL",
];
/// Write-authority variables of the configs below, with planted values.
const PLANTED: &[(&str, &str)] = &[
    (
        "REFERENCE_POSTGRES_WRITE_URL",
        "postgres://w:planted-secret@x/y",
    ),
    (
        "REFERENCE_POSTGRES_READ_URL",
        "postgres://r:planted-read@x/y",
    ),
    ("SYNAPSOR_TENANT_ID", "planted-tenant"),
    ("SYNAPSOR_PRINCIPAL", "planted-principal"),
    ("BILLING_WEBHOOK_URL", "https://planted-hook.example/x"),
    ("BILLING_WEBHOOK_TOKEN", "planted-token-0123456789"),
    ("BILLING_SIGNING_SECRET", "planted-signing-secret"),
    ("FULFIL_COMMAND", "/planted/command"),
];
const NEVER: &[&str] = &[
    "REFERENCE_POSTGRES_WRITE_URL",
    "BILLING_WEBHOOK_URL",
    "BILLING_WEBHOOK_TOKEN",
    "BILLING_SIGNING_SECRET",
    "FULFIL_COMMAND",
    "planted",
];

fn reference_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/reference/airlock.reference.json")
}

/// The reference config plus an http_handler and a command_handler, so the
/// config names handler URL, token, signing-secret and command variables.
fn config_with_handlers(dir: &Path) -> PathBuf {
    let mut cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(reference_config()).unwrap()).unwrap();
    cfg["executors"] = serde_json::json!({
        "billing_webhook": {
            "type": "http_handler",
            "url_env": "BILLING_WEBHOOK_URL",
            "method": "POST",
            "auth": {"type": "bearer_env", "token_env": "BILLING_WEBHOOK_TOKEN"},
            "signing_secret_env": "BILLING_SIGNING_SECRET"
        },
        "fulfil": {"type": "command_handler", "command_env": "FULFIL_COMMAND"}
    });
    let caps = cfg["capabilities"].as_array_mut().unwrap();
    let mut handlers = ["billing_webhook", "fulfil"].into_iter();
    for cap in caps.iter_mut().filter(|c| c["kind"] == "proposal") {
        if let Some(h) = handlers.next() {
            cap["executor"] = Value::from(h);
        }
    }
    let path = dir.join("with-handlers.json");
    std::fs::write(&path, serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
    path
}

fn airlock(args: &[&str], cwd: Option<&Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_airlock"));
    cmd.args(args);
    // The snippet's socket directory then comes from the config's location.
    cmd.env_remove("AIRLOCK_SOCKET_DIR")
        .env_remove("XDG_RUNTIME_DIR");
    for (k, v) in PLANTED {
        cmd.env(k, v);
    }
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    cmd.output().unwrap()
}

fn check_no_secrets(client: &str, out: &Output) -> String {
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{client}: exit {:?}\n{stdout}\n{stderr}",
        out.status
    );
    for name in ALLOWED {
        assert!(stdout.contains(name), "{client}: {name} missing:\n{stdout}");
    }
    for bad in NEVER {
        assert!(
            !stdout.contains(bad),
            "{client}: `{bad}` in the snippet:\n{stdout}"
        );
        assert!(
            !stderr.contains(bad),
            "{client}: `{bad}` in the hints:\n{stderr}"
        );
    }
    stdout
}

/// The proposer's `env` of a JSON snippet.
fn env_of<'a>(client: &str, doc: &'a Value) -> &'a serde_json::Map<String, Value> {
    let server = match client {
        "claude-desktop" | "cursor" => &doc["mcpServers"]["airlock"],
        "vscode" => &doc["servers"]["airlock"],
        _ => doc,
    };
    server["env"]
        .as_object()
        .unwrap_or_else(|| panic!("{client}: no env object in {doc:#}"))
}

/// The socket directory `mcp config` resolves for `config` when nothing
/// else names one: `.airlock/run` beside the config, absolute.
fn beside(config: &Path) -> String {
    std::path::absolute(config.parent().unwrap().join(".airlock/run"))
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned()
}

fn assert_placeholders(
    client: &str,
    env: &serde_json::Map<String, Value>,
    extra: &[&str],
    socket_dir: &str,
) {
    let keys: BTreeSet<&str> = env.keys().map(String::as_str).collect();
    let want: BTreeSet<&str> = ALLOWED
        .iter()
        .chain(extra)
        .chain(&["AIRLOCK_SOCKET_DIR"])
        .copied()
        .collect();
    assert_eq!(keys, want, "{client}: env names");
    assert_eq!(env["AIRLOCK_SOCKET_DIR"], socket_dir, "{client}");
    for (k, v) in env.iter().filter(|(k, _)| *k != "AIRLOCK_SOCKET_DIR") {
        let v = v.as_str().unwrap();
        assert!(
            v.starts_with(&format!("<set {k}")),
            "{client}: {k} is not a placeholder: {v}"
        );
    }
}

fn check_snippet(client: &str, stdout: &str, proposer: &str, config: &str, socket_dir: &str) {
    if client == "openai-agents" {
        assert!(
            stdout.contains(&format!("\"AIRLOCK_SOCKET_DIR\": \"{socket_dir}\"")),
            "{stdout}"
        );
        assert!(stdout.contains("MCPServerStdio"), "{stdout}");
        assert!(stdout.contains(r#""--alias-mode", "openai""#), "{stdout}");
        assert!(
            stdout.contains(&format!("\"command\": \"{proposer}\"")),
            "{stdout}"
        );
        assert!(stdout.contains(config), "{stdout}");
        python_parses(stdout);
        return;
    }
    let doc: Value = serde_json::from_str(stdout)
        .unwrap_or_else(|e| panic!("{client}: not JSON ({e}):\n{stdout}"));
    match client {
        "claude-desktop" | "cursor" | "vscode" => {
            let server = if client == "vscode" {
                assert_eq!(doc["servers"]["airlock"]["type"], "stdio");
                &doc["servers"]["airlock"]
            } else {
                &doc["mcpServers"]["airlock"]
            };
            assert_eq!(server["command"], proposer, "{client}");
            assert_eq!(
                server["args"],
                serde_json::json!(["serve", "--config", config]),
                "{client}"
            );
            assert_placeholders(client, env_of(client, &doc), &[], socket_dir);
        }
        "generic" => {
            let command: Vec<&str> = doc["command"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            assert_eq!(command.first().copied(), Some(proposer));
            let joined = command.join(" ");
            assert!(
                joined.contains(&format!("serve --config {config}")),
                "{joined}"
            );
            assert!(
                joined.contains("--transport streamable-http --listen 127.0.0.1:8766 --auth-token-env AIRLOCK_MCP_TOKEN"),
                "{joined}"
            );
            assert_eq!(doc["url"], "http://127.0.0.1:8766/mcp");
            assert_eq!(
                doc["headers"]["Authorization"],
                "Bearer <the value of AIRLOCK_MCP_TOKEN>"
            );
            assert_placeholders(
                client,
                env_of(client, &doc),
                &["AIRLOCK_MCP_TOKEN"],
                socket_dir,
            );
        }
        other => panic!("unexpected client {other}"),
    }
}

/// The Python snippet is valid Python (checked when python3 is installed).
fn python_parses(source: &str) {
    let Ok(out) = Command::new("python3")
        .args(["-c", "import ast, sys; ast.parse(sys.stdin.read())"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(source.as_bytes())?;
            child.wait_with_output()
        })
    else {
        eprintln!("python3 not available; the Python snippet's syntax was not checked");
        return;
    };
    assert!(
        out.status.success(),
        "the openai-agents snippet is not valid Python: {}\n{source}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_client_gets_only_read_and_context_variables_by_name() {
    let config = reference_config();
    let config_s = config.to_str().unwrap();
    for client in CLIENTS {
        let out = airlock(&["mcp", "config", client, "--config", config_s], None);
        let stdout = check_no_secrets(client, &out);
        check_snippet(
            client,
            &stdout,
            "airlock-proposer",
            config_s,
            &beside(&config),
        );
    }
}

#[test]
fn handler_tokens_secrets_and_commands_never_appear() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_with_handlers(dir.path());
    let config_s = config.to_str().unwrap();
    let validate = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["config", "validate", "--config", config_s])
        .output()
        .unwrap();
    assert!(
        validate.status.success(),
        "the test config must be valid: {}{}",
        String::from_utf8_lossy(&validate.stdout),
        String::from_utf8_lossy(&validate.stderr)
    );
    for client in CLIENTS {
        let out = airlock(&["mcp", "config", client, "--config", config_s], None);
        let stdout = check_no_secrets(client, &out);
        check_snippet(
            client,
            &stdout,
            "airlock-proposer",
            config_s,
            &beside(&config),
        );
    }
}

#[test]
fn absolute_paths_name_the_sibling_proposer_and_the_absolute_config() {
    let config = reference_config().canonicalize().unwrap();
    let dir = config.parent().unwrap();
    let proposer = Path::new(env!("CARGO_BIN_EXE_airlock"))
        .parent()
        .unwrap()
        .join("airlock-proposer");
    let proposer_s = proposer.to_str().unwrap();
    for client in CLIENTS {
        // A relative config path, from the config's own directory.
        let out = airlock(
            &[
                "mcp",
                "config",
                client,
                "--config",
                "airlock.reference.json",
                "--absolute-paths",
            ],
            Some(dir),
        );
        let stdout = check_no_secrets(client, &out);
        check_snippet(
            client,
            &stdout,
            proposer_s,
            config.to_str().unwrap(),
            &beside(&config),
        );
    }
}

/// The executor's socket directory, as the executor would resolve it, is in
/// every snippet as an absolute AIRLOCK_SOCKET_DIR: MCP clients start the
/// proposer without XDG_RUNTIME_DIR and in a directory of their choosing.
#[test]
fn the_snippet_names_the_executors_socket_directory_absolutely() {
    let config = reference_config().canonicalize().unwrap();
    let dir = config.parent().unwrap();
    let socket_dir_of = |out: &Output| -> (String, String) {
        let stdout = String::from_utf8(out.stdout.clone()).unwrap();
        let doc: Value = serde_json::from_str(&stdout).unwrap();
        let value = doc["mcpServers"]["airlock"]["env"]["AIRLOCK_SOCKET_DIR"]
            .as_str()
            .unwrap()
            .to_owned();
        (value, String::from_utf8_lossy(&out.stderr).into_owned())
    };
    // A relative config path, run from its directory: beside the config.
    let out = airlock(
        &[
            "mcp",
            "config",
            "claude-desktop",
            "--config",
            "airlock.reference.json",
        ],
        Some(dir),
    );
    let (value, stderr) = socket_dir_of(&out);
    assert_eq!(value, dir.join(".airlock/run").to_str().unwrap());
    assert!(
        stderr.contains(&format!(
            "the proposer will look for the executor in {value} (from the default .airlock/run beside the config file"
        )),
        "{stderr}"
    );
    // --socket-dir wins, made absolute against the working directory.
    let out = airlock(
        &[
            "mcp",
            "config",
            "claude-desktop",
            "--config",
            "airlock.reference.json",
            "--socket-dir",
            "sockets",
        ],
        Some(dir),
    );
    let (value, stderr) = socket_dir_of(&out);
    assert_eq!(value, dir.join("sockets").to_str().unwrap());
    assert!(stderr.contains("(from --socket-dir)"), "{stderr}");
    // AIRLOCK_SOCKET_DIR in this environment, as the executor would see it.
    let out = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["mcp", "config", "claude-desktop", "--config"])
        .arg(&config)
        .env("AIRLOCK_SOCKET_DIR", "/run/airlock-test")
        .env("XDG_RUNTIME_DIR", "/run/user/4242")
        .output()
        .unwrap();
    let (value, stderr) = socket_dir_of(&out);
    assert_eq!(value, "/run/airlock-test");
    assert!(stderr.contains("(from AIRLOCK_SOCKET_DIR)"), "{stderr}");
    // XDG_RUNTIME_DIR when nothing else names one.
    let out = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["mcp", "config", "claude-desktop", "--config"])
        .arg(&config)
        .env_remove("AIRLOCK_SOCKET_DIR")
        .env("XDG_RUNTIME_DIR", "/run/user/4242")
        .output()
        .unwrap();
    let (value, stderr) = socket_dir_of(&out);
    assert_eq!(value, "/run/user/4242/airlock");
    assert!(
        stderr.contains("(from $XDG_RUNTIME_DIR/airlock)"),
        "{stderr}"
    );
}

#[test]
fn usage_and_config_errors_are_clear() {
    let config = reference_config();
    let out = airlock(
        &[
            "mcp",
            "config",
            "emacs",
            "--config",
            config.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("claude-desktop"));

    let out = airlock(
        &[
            "mcp",
            "config",
            "cursor",
            "--config",
            "/nonexistent/airlock.json",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/airlock.json"));

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"version": 1, "capabilities": [{"name": "x", "sql": "select 1"}]}"#,
    )
    .unwrap();
    let out = airlock(
        &["mcp", "config", "vscode", "--config", bad.to_str().unwrap()],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("airlock config validate"));
}

/// `claude-desktop-remote`: the desktop side launches `mcp-remote` against a
/// forwarded loopback port with the bearer header from its own env; the
/// host side (on stderr) runs the HTTP proposer on loopback. Neither part
/// names a write or handler variable or copies a value from the environment.
#[test]
fn the_remote_recipe_pairs_a_loopback_http_proposer_with_mcp_remote() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_with_handlers(dir.path());
    let out = airlock(
        &[
            "mcp",
            "config",
            "claude-desktop-remote",
            "--config",
            config.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    let server = &doc["mcpServers"]["airlock"];
    assert_eq!(server["command"], "npx");
    assert_eq!(
        server["args"],
        serde_json::json!([
            "-y",
            "mcp-remote",
            "http://127.0.0.1:8766/mcp",
            "--header",
            "Authorization:${AIRLOCK_AUTH_HEADER}"
        ])
    );
    let env = server["env"].as_object().unwrap();
    assert_eq!(env.keys().collect::<Vec<_>>(), ["AIRLOCK_AUTH_HEADER"]);
    assert!(
        env["AIRLOCK_AUTH_HEADER"]
            .as_str()
            .unwrap()
            .starts_with("Bearer <")
    );
    // The desktop holds no database variable at all.
    for name in ALLOWED {
        assert!(
            !stdout.contains(name),
            "{name} on the desktop side:\n{stdout}"
        );
    }
    let host = stderr
        .lines()
        .find(|l| l.contains("serve --config"))
        .unwrap_or_else(|| panic!("no host command in:\n{stderr}"));
    assert!(
        host.contains(
            "--transport streamable-http --listen 127.0.0.1:8766 --auth-token-env AIRLOCK_MCP_TOKEN"
        ),
        "{host}"
    );
    for name in ALLOWED {
        assert!(
            host.contains(&format!("{name}='<set {name}")),
            "{name}: {host}"
        );
    }
    assert!(stderr.contains("ssh -N -L 8766:127.0.0.1:8766"), "{stderr}");
    for bad in NEVER {
        assert!(
            !stdout.contains(bad) && !stderr.contains(bad),
            "`{bad}` leaked"
        );
    }
}
