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
use crate::writeback::receipt_table::{self, Trust, pg_ident};

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
        // Target tables by schema: where the receipt tables live.
        let mut targets: std::collections::BTreeMap<&str, std::collections::BTreeSet<&str>> =
            Default::default();
        for c in cfg.capabilities.iter().filter(|c| c.source == *name) {
            targets
                .entry(c.target.schema.as_str())
                .or_default()
                .insert(c.target.table.as_str());
        }
        let Some(write_url) = source.write_url_env.as_deref().and_then(secret) else {
            if source.engine == Engine::Postgres {
                reader_privilege_check(name, &read_url, None, &targets, checks).await;
            }
            continue;
        };
        let probe = async {
            let mut c = sqlx::AnyConnection::connect(&write_url).await?;
            // The writer role and its own search_path, before Airlock pins it.
            let writer = if source.engine == Engine::Postgres {
                Some(writer_identity(&mut c).await?)
            } else {
                None
            };
            // Rolled back: proves the writer can open a transaction, nothing more.
            let mut tx = c.begin().await?;
            if source.engine == Engine::Postgres {
                sqlx::raw_sql("SET LOCAL search_path = pg_catalog, pg_temp")
                    .execute(&mut *tx)
                    .await?;
            }
            let mut missing = Vec::new();
            let mut untrusted = Vec::new();
            for (schema, tables) in &targets {
                if !receipts_exist(&mut tx, source.engine, schema).await? {
                    missing.push(schema.to_string());
                    continue;
                }
                for table in tables {
                    if let Trust::Untrusted(why) =
                        receipt_table::inspect(&mut tx, source.engine, schema, table).await?
                    {
                        untrusted.push(why);
                        break;
                    }
                }
            }
            tx.rollback().await?;
            Ok::<_, sqlx::Error>((missing, untrusted, writer))
        };
        let outcome = tokio::time::timeout(Duration::from_secs(5), probe).await;
        let mut writer = None;
        if let Ok(Ok((_, untrusted, w))) = &outcome {
            writer = w.clone();
            if !untrusted.is_empty() {
                let (reasons, fixes): (Vec<&str>, Vec<&str>) = untrusted
                    .iter()
                    .map(|u| u.split_once(" Fix: ").unwrap_or((u.as_str(), "")))
                    .unzip();
                check(
                    checks,
                    format!("receipt table {name}"),
                    Status::Fail,
                    reasons.join("; "),
                    fixes.join("; "),
                );
            }
        }
        match outcome.map(|r| r.map(|(missing, _, _)| missing)) {
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
        if source.engine == Engine::Postgres {
            reader_privilege_check(name, &read_url, writer.as_ref(), &targets, checks).await;
        }
    }
}

/// The writer's role and the schemas on its own `search_path` (as a session
/// without Airlock's pin resolves names: `"$user"` expanded, unquoted names
/// folded to lower case, missing schemas kept).
#[derive(Debug, Clone)]
struct WriterIdentity {
    role: String,
    search_path: Vec<String>,
}

async fn writer_identity(c: &mut sqlx::AnyConnection) -> Result<WriterIdentity, sqlx::Error> {
    use sqlx::Row;
    let row = sqlx::query(
        "SELECT CAST(CURRENT_USER AS pg_catalog.text), pg_catalog.current_setting('search_path')",
    )
    .fetch_one(&mut *c)
    .await?;
    let role: String = row.try_get(0)?;
    let setting: String = row.try_get(1)?;
    Ok(WriterIdentity {
        search_path: parse_search_path(&setting, &role),
        role,
    })
}

/// The schema names of a `search_path` setting.
fn parse_search_path(setting: &str, role: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = setting.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut name = String::new();
        let mut quoted = false;
        if chars.peek() == Some(&'"') {
            quoted = true;
            chars.next();
            while let Some(c) = chars.next() {
                if c == '"' {
                    if chars.peek() == Some(&'"') {
                        chars.next();
                        name.push('"');
                    } else {
                        break;
                    }
                } else {
                    name.push(c);
                }
            }
            while chars.peek().is_some_and(|c| *c != ',') {
                chars.next();
            }
        } else {
            while let Some(c) = chars.peek().copied() {
                if c == ',' {
                    break;
                }
                name.push(c);
                chars.next();
            }
            name = name.trim().to_lowercase();
        }
        if name == "$user" {
            out.push(role.to_owned());
        } else if !name.is_empty() || quoted {
            out.push(name);
        }
        if chars.next().is_none() {
            break;
        }
    }
    out
}

/// What the read role can do beyond reading, each with its fix.
struct Finding {
    reason: String,
    fix: String,
}

/// Fail when the read credential could become write authority: create
/// objects in a schema the writer's SQL or its search_path could resolve
/// (the target schemas — where the receipt table lives — the writer's own
/// search_path and `pg_catalog`), create schemas (a schema named after the
/// writer is on its default path as `"$user"`), write any table, or act as
/// the writer, a superuser or a CREATEROLE role.
async fn reader_privilege_check(
    name: &str,
    read_url: &str,
    writer: Option<&WriterIdentity>,
    targets: &std::collections::BTreeMap<&str, std::collections::BTreeSet<&str>>,
    checks: &mut Vec<Check>,
) {
    let mut schemas: Vec<String> = vec!["pg_catalog".to_owned()];
    for s in targets.keys() {
        schemas.push((*s).to_owned());
    }
    if let Some(w) = writer {
        schemas.extend(w.search_path.iter().cloned());
    } else {
        // The writer's own path is unknown here; check the default one's `public`.
        schemas.push("public".to_owned());
    }
    let mut seen = std::collections::BTreeSet::new();
    schemas.retain(|s| seen.insert(s.clone()));
    let probe = reader_findings(read_url, writer, &schemas);
    let check_name = format!("reader privileges {name}");
    match tokio::time::timeout(Duration::from_secs(10), probe).await {
        Ok(Ok((reader, findings))) if findings.is_empty() => check(
            checks,
            check_name,
            Status::Ok,
            format!(
                "the read role `{reader}` cannot write any table, create schemas, or create objects in {}{}",
                schemas.join(", "),
                if writer.is_some() {
                    " (the target schemas and the writer's search_path)"
                } else {
                    " (the writer's own search_path was not checked: its credential is not available here)"
                }
            ),
            "",
        ),
        Ok(Ok((_, findings))) => check(
            checks,
            check_name,
            Status::Fail,
            findings
                .iter()
                .map(|f| f.reason.as_str())
                .collect::<Vec<_>>()
                .join("; "),
            findings
                .iter()
                .map(|f| f.fix.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        ),
        Ok(Err(e)) => check(
            checks,
            check_name,
            Status::Fail,
            format!(
                "cannot check the read role's privileges: {}",
                scrub(&e.to_string(), read_url)
            ),
            "check the read credential; doctor must be able to read the catalog as the reader",
        ),
        Err(_) => check(
            checks,
            check_name,
            Status::Fail,
            "no answer within 10 s while checking the read role's privileges",
            "check the host, port and firewall",
        ),
    }
}

/// `PUBLIC` or a quoted role name, for a fix.
fn grantee(name: &str) -> String {
    if name == "PUBLIC" {
        name.to_owned()
    } else {
        pg_ident(name)
    }
}

async fn reader_findings(
    read_url: &str,
    writer: Option<&WriterIdentity>,
    schemas: &[String],
) -> Result<(String, Vec<Finding>), sqlx::Error> {
    use sqlx::Row;
    let mut c = sqlx::AnyConnection::connect(read_url).await?;
    sqlx::raw_sql("SET search_path = pg_catalog, pg_temp")
        .execute(&mut c)
        .await?;
    let row = sqlx::query(
        "SELECT CAST(SESSION_USER AS pg_catalog.text), CAST(pg_catalog.current_database() AS pg_catalog.text)",
    )
    .fetch_one(&mut c)
    .await?;
    let reader: String = row.try_get(0)?;
    let database: String = row.try_get(1)?;
    let me = pg_ident(&reader);
    let mut findings = Vec::new();

    // Roles the reader can act as that hold authority by themselves.
    for r in sqlx::query(
        "SELECT CAST(r.rolname AS pg_catalog.text), CAST(r.rolsuper AS pg_catalog.text)            FROM pg_catalog.pg_roles r           WHERE pg_catalog.pg_has_role(SESSION_USER, r.oid, 'MEMBER') AND (r.rolsuper OR r.rolcreaterole)           ORDER BY 1",
    )
    .fetch_all(&mut c)
    .await?
    {
        let role: String = r.try_get(0)?;
        let sup: String = r.try_get(1)?;
        let what = if sup == "true" { "SUPERUSER" } else { "CREATEROLE" };
        findings.push(Finding {
            reason: format!("the read role can act as `{role}`, which has {what}"),
            fix: format!("ALTER ROLE {} NO{what} (or give the reader a plain role)", pg_ident(&role)),
        });
    }
    if let Some(w) = writer {
        let row = sqlx::query(
            "SELECT CAST(pg_catalog.pg_has_role(SESSION_USER, r.oid, 'MEMBER') AS pg_catalog.text)                FROM pg_catalog.pg_roles r WHERE r.rolname = $1",
        )
        .bind(w.role.clone())
        .fetch_optional(&mut c)
        .await?;
        let can_be_writer = row
            .map(|r| r.try_get::<String, _>(0))
            .transpose()?
            .is_some_and(|v| v == "true");
        if can_be_writer {
            findings.push(Finding {
                reason: format!(
                    "the read role `{reader}` can act as the writer `{}`",
                    w.role
                ),
                fix: format!(
                    "give the proposer its own role: REVOKE {} FROM {me}",
                    pg_ident(&w.role)
                ),
            });
        }
    }

    // CREATE on the database: new schemas, e.g. one named after the writer ("$user").
    for r in sqlx::query(
        "SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE CAST(pg_catalog.pg_get_userbyid(a.grantee) AS pg_catalog.text) END,                 CAST(a.grantee = d.datdba AS pg_catalog.text)            FROM pg_catalog.pg_database d,                 pg_catalog.aclexplode(COALESCE(d.datacl, pg_catalog.acldefault('d', d.datdba))) a           WHERE d.datname = pg_catalog.current_database() AND a.privilege_type = 'CREATE'             AND (a.grantee = 0 OR pg_catalog.pg_has_role(SESSION_USER, a.grantee, 'MEMBER'))",
    )
    .fetch_all(&mut c)
    .await?
    {
        let holder: String = r.try_get(0)?;
        let owner: String = r.try_get(1)?;
        findings.push(Finding {
            reason: format!(
                "the read role can create schemas in database `{database}` (CREATE held by {holder}{})",
                if owner == "true" { ", its owner" } else { "" }
            ),
            fix: if owner == "true" {
                format!("ALTER DATABASE {} OWNER TO <an administrator role>", pg_ident(&database))
            } else {
                format!("REVOKE CREATE ON DATABASE {} FROM {}", pg_ident(&database), grantee(&holder))
            },
        });
    }

    // CREATE on a schema the writer could resolve names in.
    let list = serde_json::Value::from(schemas.to_vec()).to_string();
    for r in sqlx::query(
        "SELECT CAST(n.nspname AS pg_catalog.text),                 CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE CAST(pg_catalog.pg_get_userbyid(a.grantee) AS pg_catalog.text) END,                 CAST(a.grantee = n.nspowner AS pg_catalog.text)            FROM pg_catalog.pg_namespace n,                 pg_catalog.aclexplode(COALESCE(n.nspacl, pg_catalog.acldefault('n', n.nspowner))) a           WHERE n.nspname IN (SELECT pg_catalog.json_array_elements_text(CAST($1 AS pg_catalog.json)))             AND a.privilege_type = 'CREATE'             AND (a.grantee = 0 OR pg_catalog.pg_has_role(SESSION_USER, a.grantee, 'MEMBER'))           ORDER BY 1, 2",
    )
    .bind(list)
    .fetch_all(&mut c)
    .await?
    {
        let schema: String = r.try_get(0)?;
        let holder: String = r.try_get(1)?;
        let owner: String = r.try_get(2)?;
        findings.push(Finding {
            reason: format!(
                "the read role can create objects in schema `{schema}`, which the writer's SQL or search_path resolves names in (CREATE held by {holder}{})",
                if owner == "true" { ", its owner" } else { "" }
            ),
            fix: if owner == "true" {
                format!("ALTER SCHEMA {} OWNER TO <an administrator role>", pg_ident(&schema))
            } else {
                format!("REVOKE CREATE ON SCHEMA {} FROM {}", pg_ident(&schema), grantee(&holder))
            },
        });
    }

    // Any write privilege on any table, view or foreign table.
    let rows = sqlx::query(
        "SELECT CAST(n.nspname AS pg_catalog.text), CAST(c.relname AS pg_catalog.text)            FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace           WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')             AND n.nspname <> 'information_schema' AND pg_catalog.left(CAST(n.nspname AS pg_catalog.text), 3) <> 'pg_'             AND EXISTS (SELECT 1 FROM pg_catalog.pg_roles r                          WHERE pg_catalog.pg_has_role(SESSION_USER, r.oid, 'MEMBER')                            AND (pg_catalog.has_table_privilege(r.oid, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE, TRIGGER')                                 OR pg_catalog.has_any_column_privilege(r.oid, c.oid, 'INSERT, UPDATE')))           ORDER BY 1, 2 LIMIT 21",
    )
    .fetch_all(&mut c)
    .await?;
    if !rows.is_empty() {
        let mut tables = Vec::new();
        for r in rows.iter().take(20) {
            let schema: String = r.try_get(0)?;
            let table: String = r.try_get(1)?;
            tables.push(format!("{}.{}", pg_ident(&schema), pg_ident(&table)));
        }
        let more = if rows.len() > 20 { " and more" } else { "" };
        findings.push(Finding {
            reason: format!(
                "the read role can write (INSERT, UPDATE, DELETE, TRUNCATE or TRIGGER) {}{more}",
                tables.join(", ")
            ),
            fix: format!(
                "REVOKE INSERT, UPDATE, DELETE, TRUNCATE, TRIGGER ON {} FROM {me} (and from PUBLIC or any role it belongs to that holds them)",
                tables.join(", ")
            ),
        });
    }
    let _ = c.close().await;
    Ok((reader, findings))
}

async fn receipts_exist(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    engine: Engine,
    schema: &str,
) -> Result<bool, sqlx::Error> {
    use sqlx::Row;
    let row = match engine {
        Engine::Postgres => sqlx::query("SELECT CAST(pg_catalog.to_regclass($1) AS pg_catalog.text)").bind(receipt_table::receipts_regclass(schema)).fetch_one(&mut **tx).await?,
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

#[cfg(test)]
mod tests {
    use super::parse_search_path;

    #[test]
    fn search_path_settings_name_their_schemas() {
        let w = "synapsor_writer";
        assert_eq!(
            parse_search_path("\"$user\", public", w),
            ["synapsor_writer", "public"]
        );
        assert_eq!(
            parse_search_path("App_Ext,  \"Mixed Case\", \"a\"\"b\",public ", w),
            ["app_ext", "Mixed Case", "a\"b", "public"]
        );
        assert_eq!(
            parse_search_path("pg_catalog, pg_temp", w),
            ["pg_catalog", "pg_temp"]
        );
        assert!(parse_search_path("", w).is_empty());
        assert_eq!(parse_search_path("\"\"", w), [""]);
    }
}
