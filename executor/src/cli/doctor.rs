//! `airlock doctor`: diagnose a setup, each check with a status, a one-line
//! reason and the fix. Reads only: it never changes a business row (the
//! writer probe runs inside a transaction that is rolled back).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use airlock_ipc::Role;
use airlock_ipc::client::{Client, ClientError};
use airlock_ipc::transport::{OPERATOR_SOCKET, PROPOSER_SOCKET, resolve_socket_dir};
use airlock_policy::config::{Config, Engine, ExecutorSpec};
use airlock_policy::statement::RECEIPTS_TABLE;
use serde::Serialize;
use serde_json::json;
use sqlx::Connection;

use super::output::{Exit, print_json, say};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Status {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Serialize)]
struct Check {
    check: String,
    status: Status,
    reason: String,
    fix: String,
}

fn check(
    checks: &mut Vec<Check>,
    name: impl Into<String>,
    status: Status,
    reason: impl Into<String>,
    fix: impl Into<String>,
) {
    checks.push(Check {
        check: name.into(),
        status,
        reason: reason.into(),
        fix: fix.into(),
    });
}

fn secret(name: &str) -> Option<String> {
    crate::writeback::credentials::read_secret(name).ok()
}

pub fn run(config_path: &Path, json: bool) -> Exit {
    let mut checks = Vec::new();
    let loaded = match crate::config_file::read_config(config_path) {
        Ok(l) => l,
        Err(e) => {
            check(
                &mut checks,
                "config",
                Status::Fail,
                e.to_string(),
                "pass the path of your reviewed config with --config",
            );
            return report(&checks, json);
        }
    };
    let Some(cfg) = loaded.config else {
        let n = loaded.report.errors().count();
        let first = loaded
            .report
            .errors()
            .next()
            .map(|d| format!("{}: {}", d.path, d.message))
            .unwrap_or_default();
        check(
            &mut checks,
            "config",
            Status::Fail,
            format!("{n} validation error(s), first: {first}"),
            format!(
                "run `airlock config validate --config {}`",
                config_path.display()
            ),
        );
        return report(&checks, json);
    };
    let warnings = loaded.report.warnings().count();
    check(
        &mut checks,
        "config",
        if warnings > 0 {
            Status::Warn
        } else {
            Status::Ok
        },
        format!(
            "valid: {} capabilities, {warnings} warning(s)",
            cfg.capabilities.len()
        ),
        if warnings > 0 {
            "see `airlock config validate`"
        } else {
            ""
        },
    );
    env_checks(&cfg, &mut checks);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            check(&mut checks, "runtime", Status::Fail, e.to_string(), "");
            return report(&checks, json);
        }
    };
    runtime.block_on(async {
        source_checks(&cfg, &mut checks).await;
        socket_checks(&cfg, config_path, &mut checks).await;
        handler_checks(&cfg, &mut checks).await;
    });
    report(&checks, json)
}

fn report(checks: &[Check], json: bool) -> Exit {
    let failed = checks.iter().any(|c| c.status == Status::Fail);
    if json {
        print_json(&json!({"ok": !failed, "checks": checks}));
    } else {
        for c in checks {
            let tag = match c.status {
                Status::Ok => "ok  ",
                Status::Warn => "warn",
                Status::Fail => "FAIL",
            };
            say!("[{tag}] {:<34} {}", c.check, c.reason);
            if !c.fix.is_empty() && c.status != Status::Ok {
                say!("       fix: {}", c.fix);
            }
        }
        let n = checks.iter().filter(|c| c.status == Status::Fail).count();
        say!(
            "\n{}",
            if failed {
                format!("{n} check(s) failed.")
            } else {
                "All checks passed.".to_owned()
            }
        );
    }
    if failed { Exit::Failure } else { Exit::Ok }
}

/// Names only, never values.
fn env_checks(cfg: &Config, checks: &mut Vec<Check>) {
    for name in cfg.proposer_env_names() {
        let present = std::env::var_os(name).is_some();
        check(
            checks,
            format!("env {name}"),
            if present { Status::Ok } else { Status::Warn },
            if present {
                "set (for the proposer)"
            } else {
                "not set here (the proposer needs it)"
            },
            format!("set {name} in the proposer's MCP client config (see `airlock mcp config`)"),
        );
    }
    for name in cfg.write_authority_env_names() {
        let present = secret(name).is_some();
        check(
            checks,
            format!("secret {name}"),
            if present { Status::Ok } else { Status::Warn },
            if present {
                "available to the executor (environment or $CREDENTIALS_DIRECTORY)"
            } else {
                "not available here"
            },
            format!(
                "give it to the executor only: its environment or a systemd credential named {name}"
            ),
        );
    }
    for (name, source) in &cfg.sources {
        if let (Some(read), Some(write)) = (
            std::env::var(&source.read_url_env).ok(),
            source.write_url_env.as_deref().and_then(secret),
        ) {
            let same = read == write;
            check(
                checks,
                format!("credential split {name}"),
                if same { Status::Fail } else { Status::Ok },
                if same {
                    "the read URL and the write URL are the same credential"
                } else {
                    "read and write credentials differ"
                },
                "give the proposer a role that can only SELECT (see `airlock writeback grants`)",
            );
        }
    }
}

async fn source_checks(cfg: &Config, checks: &mut Vec<Check>) {
    sqlx::any::install_default_drivers();
    for (name, source) in &cfg.sources {
        let Ok(read_url) = std::env::var(&source.read_url_env) else {
            continue;
        };
        let probe = async {
            let mut c = sqlx::AnyConnection::connect(&read_url).await?;
            sqlx::query("SELECT 1").fetch_one(&mut c).await?;
            Ok::<_, sqlx::Error>(())
        };
        match tokio::time::timeout(Duration::from_secs(5), probe).await {
            Ok(Ok(())) => check(
                checks,
                format!("read {name}"),
                Status::Ok,
                format!("connected ({})", source.engine.as_str()),
                "",
            ),
            Ok(Err(e)) => check(
                checks,
                format!("read {name}"),
                Status::Fail,
                scrub(&e.to_string(), &read_url),
                format!(
                    "check {} and that the database is running",
                    source.read_url_env
                ),
            ),
            Err(_) => check(
                checks,
                format!("read {name}"),
                Status::Fail,
                "no answer within 5 s",
                "check the host, port and firewall",
            ),
        }
        let Some(write_url) = source.write_url_env.as_deref().and_then(secret) else {
            continue;
        };
        let schemas: std::collections::BTreeSet<&str> = cfg
            .capabilities
            .iter()
            .filter(|c| c.source == *name)
            .map(|c| c.target.schema.as_str())
            .collect();
        let probe = async {
            let mut c = sqlx::AnyConnection::connect(&write_url).await?;
            // Rolled back: proves the writer can open a transaction, nothing more.
            let mut tx = c.begin().await?;
            let mut missing = Vec::new();
            for schema in &schemas {
                if !receipts_exist(&mut tx, source.engine, schema).await? {
                    missing.push(schema.to_string());
                }
            }
            tx.rollback().await?;
            Ok::<_, sqlx::Error>(missing)
        };
        match tokio::time::timeout(Duration::from_secs(5), probe).await {
            Ok(Ok(missing)) if missing.is_empty() => check(
                checks,
                format!("write {name}"),
                Status::Ok,
                format!("connected; {RECEIPTS_TABLE} is ready"),
                "",
            ),
            Ok(Ok(missing)) => check(
                checks,
                format!("write {name}"),
                Status::Warn,
                format!(
                    "connected; {RECEIPTS_TABLE} is missing in {}",
                    missing.join(", ")
                ),
                format!(
                    "it is created on the first apply if the writer may CREATE; else run `airlock writeback migration --engine {}`",
                    source.engine.as_str()
                ),
            ),
            Ok(Err(e)) => check(
                checks,
                format!("write {name}"),
                Status::Fail,
                scrub(&e.to_string(), &write_url),
                "check the write credential and the writer role's grants",
            ),
            Err(_) => check(
                checks,
                format!("write {name}"),
                Status::Fail,
                "no answer within 5 s",
                "check the host, port and firewall",
            ),
        }
    }
}

async fn receipts_exist(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    engine: Engine,
    schema: &str,
) -> Result<bool, sqlx::Error> {
    use sqlx::Row;
    let row = match engine {
        Engine::Postgres => sqlx::query("SELECT CAST(to_regclass($1) AS text)").bind(format!("\"{schema}\".{RECEIPTS_TABLE}")).fetch_one(&mut **tx).await?,
        Engine::Mysql => {
            sqlx::query("SELECT CAST(COUNT(*) AS CHAR) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?")
                .bind(schema.to_owned())
                .bind(RECEIPTS_TABLE)
                .fetch_one(&mut **tx)
                .await?
        }
        Engine::Sqlite => sqlx::query("SELECT CAST(COUNT(*) AS TEXT) FROM sqlite_master WHERE type = 'table' AND name = ?").bind(RECEIPTS_TABLE).fetch_one(&mut **tx).await?,
    };
    let v: Option<String> = row.try_get(0)?;
    Ok(match engine {
        Engine::Postgres => v.is_some(),
        _ => v.as_deref().is_some_and(|n| n != "0"),
    })
}

fn scrub(message: &str, url: &str) -> String {
    airlock_policy::secrets::redact(message, &airlock_policy::secrets::url_secrets(url))
        .chars()
        .take(300)
        .collect()
}

async fn socket_checks(cfg: &Config, config_path: &Path, checks: &mut Vec<Check>) {
    let dir = resolve_socket_dir(
        None,
        |k| std::env::var(k).ok(),
        cfg.airlock.socket_dir.as_deref(),
        config_path.parent(),
    );
    match std::fs::metadata(&dir) {
        Err(_) => check(
            checks,
            "socket directory",
            Status::Fail,
            format!("{} does not exist", dir.display()),
            "start the executor (`airlock-executor serve --config …`), or point to its sockets with AIRLOCK_SOCKET_DIR",
        ),
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o777;
            let open = mode & 0o007 != 0;
            check(
                checks,
                "socket directory",
                if open { Status::Fail } else { Status::Ok },
                format!(
                    "{} owned by uid {} mode {mode:o}",
                    dir.display(),
                    meta.uid()
                ),
                "the executor creates it 0750; remove a directory created by someone else",
            );
            for name in [PROPOSER_SOCKET, OPERATOR_SOCKET] {
                if let Ok(m) = std::fs::metadata(dir.join(name)) {
                    let mode = m.permissions().mode() & 0o777;
                    check(
                        checks,
                        format!("socket {name}"),
                        if mode & 0o007 != 0 {
                            Status::Fail
                        } else {
                            Status::Ok
                        },
                        format!("mode {mode:o}"),
                        "sockets must not be accessible to other users; restart the executor",
                    );
                }
            }
        }
    }
    match Client::connect(
        &dir.join(OPERATOR_SOCKET),
        Role::Operator,
        env!("CARGO_PKG_VERSION"),
        Duration::from_secs(5),
    )
    .await
    {
        Ok(c) => check(
            checks,
            "executor",
            Status::Ok,
            format!(
                "reachable, {} (server {}), config hash {}",
                c.welcome().protocol,
                c.welcome().server_version,
                c.welcome().config_hash
            ),
            "",
        ),
        Err(ClientError::Refused(e)) => check(
            checks,
            "executor",
            Status::Warn,
            format!("running, but refused this user: {}", e.message),
            "list your OS user under airlock.approvers",
        ),
        Err(e) => check(
            checks,
            "executor",
            Status::Fail,
            e.to_string(),
            "start it: `airlock-executor serve --config <config>`",
        ),
    }
}

async fn handler_checks(cfg: &Config, checks: &mut Vec<Check>) {
    for (name, spec) in &cfg.executors {
        match spec {
            ExecutorSpec::SqlUpdate => {}
            ExecutorSpec::HttpHandler(h) => {
                let Some(url) = secret(&h.url_env) else {
                    check(
                        checks,
                        format!("handler {name}"),
                        Status::Fail,
                        format!("{} is not available to the executor", h.url_env),
                        "set it for the executor (environment or systemd credential)",
                    );
                    continue;
                };
                let authority = url
                    .split_once("://")
                    .map_or(url.as_str(), |(_, r)| r)
                    .split(['/', '?'])
                    .next()
                    .unwrap_or("");
                let host_port = if authority.contains(':') {
                    authority.to_owned()
                } else if url.starts_with("https") {
                    format!("{authority}:443")
                } else {
                    format!("{authority}:80")
                };
                match tokio::time::timeout(
                    Duration::from_secs(3),
                    tokio::net::TcpStream::connect(&host_port),
                )
                .await
                {
                    Ok(Ok(_)) => check(
                        checks,
                        format!("handler {name}"),
                        Status::Ok,
                        format!("{host_port} accepts connections"),
                        "",
                    ),
                    _ => check(
                        checks,
                        format!("handler {name}"),
                        Status::Fail,
                        format!("cannot reach {host_port}"),
                        "start the handler service or fix its URL",
                    ),
                }
                for token in [&h.token_env, &h.signing_secret_env].into_iter().flatten() {
                    if secret(token).is_none() {
                        check(
                            checks,
                            format!("handler {name} {token}"),
                            Status::Fail,
                            "not available to the executor",
                            "provide it as an environment variable or systemd credential",
                        );
                    }
                }
            }
            ExecutorSpec::CommandHandler(c) => match secret(&c.command_env) {
                None => check(
                    checks,
                    format!("handler {name}"),
                    Status::Fail,
                    format!("{} is not available to the executor", c.command_env),
                    "set it to the handler's executable path",
                ),
                Some(cmd) => {
                    let program = cmd.split_whitespace().next().unwrap_or("");
                    let executable = std::fs::metadata(program)
                        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
                    check(
                        checks,
                        format!("handler {name}"),
                        if executable { Status::Ok } else { Status::Fail },
                        if executable {
                            format!("the program in {} is executable", c.command_env)
                        } else {
                            format!("the program in {} is not an executable file", c.command_env)
                        },
                        "set the command variable to an absolute path of an executable (no shell)",
                    );
                }
            },
        }
    }
}
