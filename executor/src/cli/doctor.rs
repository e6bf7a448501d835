//! `airlock doctor`: diagnose a setup, each check with a status, a one-line
//! reason and the fix. Reads only: it never changes a business row (the
//! writer probe runs inside a transaction that is rolled back).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use airlock_ipc::Role;
use airlock_ipc::client::{Client, ClientError};
use airlock_ipc::transport::{OPERATOR_SOCKET, PROPOSER_SOCKET, resolve_socket_dir};
use airlock_policy::config::{Capability, Config, Engine, ExecutorSpec, Kind};
use airlock_policy::db_error::Misconfiguration;
use airlock_policy::identifier::quote;
use airlock_policy::statement::{RECEIPTS_TABLE, table_name};
use serde::Serialize;
use serde_json::json;
use sqlx::Connection;

use super::output::{Exit, print_json, say};
use crate::writeback::receipt_table::{self, Trust, pg_ident};
use crate::writeback::sql_update::misconfiguration;

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

pub fn run(config: Option<&Path>, json: bool) -> Exit {
    let mut checks = Vec::new();
    let (config_path, loaded) = match crate::config_file::resolve_and_read(config) {
        Ok(found) => found,
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
        schema_lock_checks(&cfg, &config_path, &mut checks).await;
        socket_checks(&cfg, &config_path, &mut checks).await;
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
        say!("\n{}", summary(checks));
    }
    if failed { Exit::Failure } else { Exit::Ok }
}

/// The last line: `All checks passed.` only when nothing failed or warned.
fn summary(checks: &[Check]) -> String {
    let count = |s: Status| checks.iter().filter(|c| c.status == s).count();
    let (failed, warned) = (count(Status::Fail), count(Status::Warn));
    if failed == 0 && warned == 0 {
        return "All checks passed.".to_owned();
    }
    format!(
        "{failed} check(s) failed, {warned} warned, {} passed.",
        count(Status::Ok)
    )
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

/// `schema lock <capability>`: each locked capability's live table (read
/// with the read URL) against the config's schema lock, as the proposer and
/// executor compare them at start; a warning for each capability without a
/// lock.
async fn schema_lock_checks(cfg: &Config, config_path: &Path, checks: &mut Vec<Check>) {
    use airlock_policy::drift::{self, LockStatus};
    let locked: Vec<&Capability> = cfg
        .capabilities
        .iter()
        .filter(|c| cfg.airlock.schema_lock.contains_key(&c.name))
        .collect();
    let live = super::schema_lock_cmd::read_live(cfg, &locked, |k| std::env::var(k).ok()).await;
    let relock = |name: &str| {
        format!(
            "review the schema change against the capability, then run `airlock config lock --config {} --capability {name}`, review the config diff and restart the executor and proposer",
            config_path.display()
        )
    };
    for (name, status) in drift::evaluate(cfg, &live) {
        let label = format!("schema lock {name}");
        match status {
            LockStatus::Ok => {
                let n = cfg
                    .airlock
                    .schema_lock
                    .get(&name)
                    .map_or(0, |e| e.columns.len());
                check(
                    checks,
                    label,
                    Status::Ok,
                    format!("the live table matches the lock ({n} columns)"),
                    "",
                );
            }
            LockStatus::NoLock => check(
                checks,
                label,
                Status::Warn,
                "no schema lock: a dropped or retyped column, or a new tenant column, would not be noticed at start",
                format!(
                    "after review, run `airlock config lock --config {}`",
                    config_path.display()
                ),
            ),
            LockStatus::Drifted { drift } => check(
                checks,
                label,
                Status::Fail,
                format!(
                    "disabled at start (not offered by the proposer; the executor refuses its proposals): {drift}"
                ),
                relock(&name),
            ),
            LockStatus::Unverified { reason }
                if cfg
                    .capability(&name)
                    .and_then(|c| cfg.sources.get(&c.source))
                    .is_some_and(|s| std::env::var_os(&s.read_url_env).is_none()) =>
            {
                check(
                    checks,
                    label,
                    Status::Warn,
                    format!("not checked here: {reason}"),
                    "run doctor where the proposer's read URL is set",
                )
            }
            LockStatus::Unverified { reason } => check(
                checks,
                label,
                Status::Fail,
                format!(
                    "cannot check the lock: {reason}; the proposer and the executor disable a capability they cannot check"
                ),
                "make the table readable with the read URL (see the `read` checks), then run doctor again",
            ),
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
        let read_ok = match tokio::time::timeout(Duration::from_secs(5), probe).await {
            Ok(Ok(())) => {
                check(
                    checks,
                    format!("read {name}"),
                    Status::Ok,
                    format!("connected ({})", source.engine.as_str()),
                    "",
                );
                true
            }
            Ok(Err(e)) => {
                check(
                    checks,
                    format!("read {name}"),
                    Status::Fail,
                    db_error_text(source.engine, &e, &read_url),
                    format!(
                        "check {} and that the database is running",
                        source.read_url_env
                    ),
                );
                false
            }
            Err(_) => {
                check(
                    checks,
                    format!("read {name}"),
                    Status::Fail,
                    "no answer within 5 s",
                    "check the host, port and firewall",
                );
                false
            }
        };
        if read_ok {
            capability_checks(cfg, name, source.engine, &read_url, checks).await;
            if source.engine == Engine::Mysql {
                let schemas = cfg
                    .capabilities
                    .iter()
                    .filter(|c| c.source == *name)
                    .map(|c| c.target.schema.as_str())
                    .collect();
                mysql_reader_check(name, &read_url, &schemas, checks).await;
            }
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
        let writer_connected = matches!(outcome, Ok(Ok(_)));
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
                db_error_text(source.engine, &e, &write_url),
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
        if writer_connected {
            writer_grant_checks(cfg, name, source.engine, &write_url, checks).await;
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
pub(super) struct WriterIdentity {
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
#[derive(Debug)]
pub(super) struct Finding {
    pub reason: String,
    pub fix: String,
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
    let probe = reader_findings(read_url, writer, &schemas, targets);
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
                db_error_text(Engine::Postgres, &e, read_url)
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
    targets: &std::collections::BTreeMap<&str, std::collections::BTreeSet<&str>>,
) -> Result<(String, Vec<Finding>), sqlx::Error> {
    let mut c = sqlx::AnyConnection::connect(read_url).await?;
    sqlx::raw_sql("SET search_path = pg_catalog, pg_temp")
        .execute(&mut c)
        .await?;
    let posture = pg_reader_posture(&mut c, writer, schemas, targets).await?;
    let _ = c.close().await;
    Ok((posture.reader, posture.findings))
}

/// What a Postgres read role can do beyond reading: the facts, and each
/// finding with its fix. `doctor` fails on any finding; `inspect` reports
/// them as the role's posture. Runs on `c` with `search_path` pinned to
/// `pg_catalog, pg_temp` by the caller.
#[derive(Debug, Default)]
pub(super) struct PgReaderPosture {
    /// The session user.
    pub reader: String,
    pub superuser: bool,
    /// Roles the reader can act as (itself included) that have BYPASSRLS.
    pub bypass_rls: Vec<String>,
    /// Targets (schema, table) the reader owns or can act as the owner of.
    pub owned: Vec<(String, String)>,
    /// Tables and views (schema, table) the reader can write; at most 20,
    /// then `writable_more`.
    pub writable: Vec<(String, String)>,
    pub writable_more: bool,
    pub findings: Vec<Finding>,
}

pub(super) async fn pg_reader_posture(
    c: &mut sqlx::AnyConnection,
    writer: Option<&WriterIdentity>,
    schemas: &[String],
    targets: &std::collections::BTreeMap<&str, std::collections::BTreeSet<&str>>,
) -> Result<PgReaderPosture, sqlx::Error> {
    use sqlx::Row;
    let mut posture = PgReaderPosture::default();
    let row = sqlx::query(
        "SELECT CAST(SESSION_USER AS pg_catalog.text), CAST(pg_catalog.current_database() AS pg_catalog.text)",
    )
    .fetch_one(&mut *c)
    .await?;
    let reader: String = row.try_get(0)?;
    let database: String = row.try_get(1)?;
    let me = pg_ident(&reader);
    let mut findings = Vec::new();

    // A superuser can do anything (and act as every role): one finding says it all.
    let sup: String = sqlx::query(
        "SELECT CAST(r.rolsuper AS pg_catalog.text) FROM pg_catalog.pg_roles r WHERE r.rolname = SESSION_USER",
    )
    .fetch_one(&mut *c)
    .await?
    .try_get(0)?;
    if sup == "true" {
        findings.push(Finding {
            reason: format!(
                "the read role `{reader}` is a superuser: it can write every table, bypasses row-level security and can act as any role"
            ),
            fix: format!("ALTER ROLE {me} NOSUPERUSER (or give the proposer a plain role that can only SELECT)"),
        });
        posture.superuser = true;
        posture.bypass_rls.push(reader.clone());
        posture.reader = reader;
        posture.findings = findings;
        return Ok(posture);
    }

    // Roles the reader can act as that hold authority by themselves.
    for r in sqlx::query(
        "SELECT CAST(r.rolname AS pg_catalog.text), CAST(r.rolsuper AS pg_catalog.text)            FROM pg_catalog.pg_roles r           WHERE pg_catalog.pg_has_role(SESSION_USER, r.oid, 'MEMBER') AND (r.rolsuper OR r.rolcreaterole)           ORDER BY 1",
    )
    .fetch_all(&mut *c)
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
    // BYPASSRLS: row-level security would not apply to the reader.
    for r in sqlx::query(
        "SELECT CAST(r.rolname AS pg_catalog.text) FROM pg_catalog.pg_roles r           WHERE pg_catalog.pg_has_role(SESSION_USER, r.oid, 'MEMBER') AND r.rolbypassrls AND NOT r.rolsuper           ORDER BY 1",
    )
    .fetch_all(&mut *c)
    .await?
    {
        let role: String = r.try_get(0)?;
        findings.push(Finding {
            reason: format!("the read role can act as `{role}`, which has BYPASSRLS (row-level security does not apply to it)"),
            fix: format!("ALTER ROLE {} NOBYPASSRLS", pg_ident(&role)),
        });
        posture.bypass_rls.push(role);
    }
    // Owner of a target table: may ALTER, DROP or write it, and is exempt from its RLS.
    let pairs: Vec<serde_json::Value> = targets
        .iter()
        .flat_map(|(schema, tables)| tables.iter().map(move |t| json!([schema, t])))
        .collect();
    for r in sqlx::query(
        "SELECT CAST(n.nspname AS pg_catalog.text), CAST(c.relname AS pg_catalog.text),                 CAST(pg_catalog.pg_get_userbyid(c.relowner) AS pg_catalog.text)            FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace,                 pg_catalog.json_array_elements(CAST($1 AS pg_catalog.json)) e           WHERE n.nspname = e.value->>0 AND c.relname = e.value->>1             AND pg_catalog.pg_has_role(SESSION_USER, c.relowner, 'MEMBER')           ORDER BY 1, 2",
    )
    .bind(serde_json::Value::from(pairs).to_string())
    .fetch_all(&mut *c)
    .await?
    {
        let schema: String = r.try_get(0)?;
        let table: String = r.try_get(1)?;
        let owner: String = r.try_get(2)?;
        let t = format!("{}.{}", pg_ident(&schema), pg_ident(&table));
        findings.push(Finding {
            reason: format!("the read role owns the target {t} (as `{owner}`): it can alter, drop or write it"),
            fix: format!("ALTER TABLE {t} OWNER TO <an administrator role>"),
        });
        posture.owned.push((schema, table));
    }
    if let Some(w) = writer {
        let row = sqlx::query(
            "SELECT CAST(pg_catalog.pg_has_role(SESSION_USER, r.oid, 'MEMBER') AS pg_catalog.text)                FROM pg_catalog.pg_roles r WHERE r.rolname = $1",
        )
        .bind(w.role.clone())
        .fetch_optional(&mut *c)
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
    .fetch_all(&mut *c)
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
    .fetch_all(&mut *c)
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
    .fetch_all(&mut *c)
    .await?;
    if !rows.is_empty() {
        let mut tables = Vec::new();
        for r in rows.iter().take(20) {
            let schema: String = r.try_get(0)?;
            let table: String = r.try_get(1)?;
            tables.push(format!("{}.{}", pg_ident(&schema), pg_ident(&table)));
            posture.writable.push((schema, table));
        }
        posture.writable_more = rows.len() > 20;
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
    posture.reader = reader;
    posture.findings = findings;
    Ok(posture)
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

/// Text for a database error in a report: a category, or the engine's
/// primary message — never its code, position or server source line, and
/// never the URL or its password.
pub(super) fn db_error_text(engine: Engine, e: &sqlx::Error, url: &str) -> String {
    if let Some(db) = e.as_database_error() {
        if let Some(m) = misconfiguration(engine, e) {
            return m.describe().to_owned();
        }
        let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
        let number = db
            .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
            .map(sqlx::mysql::MySqlDatabaseError::number);
        return match (code.as_str(), number) {
            ("28P01" | "28000", _) | (_, Some(1045 | 1698)) => "authentication failed".to_owned(),
            ("3D000", _) | (_, Some(1049)) => "the database does not exist".to_owned(),
            _ => format!("the database refused: {}", scrub(db.message(), url)),
        };
    }
    scrub(&e.to_string(), url)
}

/// The columns each capability reads, selected as the reader with a false
/// predicate: a missing table or column, or a missing grant, is named with
/// its capability before any call reaches it.
async fn capability_checks(
    cfg: &Config,
    source_name: &str,
    engine: Engine,
    read_url: &str,
    checks: &mut Vec<Check>,
) {
    let caps: Vec<&Capability> = cfg
        .capabilities
        .iter()
        .filter(|c| c.source == source_name)
        .collect();
    if caps.is_empty() {
        return;
    }
    let probe = async {
        let mut c = sqlx::AnyConnection::connect(read_url).await?;
        let mut out = Vec::new();
        for cap in &caps {
            let cols = cap.read_columns();
            out.push(probe_columns(&mut c, engine, cap, &cols, ColumnUse::Select).await?);
        }
        let _ = c.close().await;
        Ok::<_, sqlx::Error>(out)
    };
    match tokio::time::timeout(Duration::from_secs(10), probe).await {
        Ok(Ok(results)) => {
            for (cap, result) in caps.iter().zip(results) {
                let table = shown_table(cap);
                let n = cap.read_columns().len();
                match result {
                    Probe::Ok => check(
                        checks,
                        format!("capability {}", cap.name),
                        Status::Ok,
                        format!("the read credential can SELECT its {n} column(s) of {table}"),
                        "",
                    ),
                    problem => {
                        let (reason, fix) = problem.explain(cap, "the read credential", "SELECT");
                        check(
                            checks,
                            format!("capability {}", cap.name),
                            Status::Fail,
                            reason,
                            fix,
                        );
                    }
                }
            }
        }
        Ok(Err(e)) => check(
            checks,
            format!("capabilities {source_name}"),
            Status::Fail,
            format!(
                "cannot check the capabilities' columns: {}",
                db_error_text(engine, &e, read_url)
            ),
            "check the read credential",
        ),
        Err(_) => check(
            checks,
            format!("capabilities {source_name}"),
            Status::Fail,
            "no answer within 10 s while checking the capabilities' columns",
            "check the host, port and firewall",
        ),
    }
}

/// `schema.table` for a message.
fn shown_table(cap: &Capability) -> String {
    format!("`{}.{}`", cap.target.schema, cap.target.table)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ColumnUse {
    Select,
    /// MySQL/MariaDB only: an `UPDATE … WHERE 1 = 0` in a transaction
    /// that is rolled back (no row matches; MySQL has no statement triggers).
    Update,
}

/// What a probe of some columns found.
#[derive(Debug, PartialEq, Eq)]
enum Probe {
    Ok,
    MissingTable,
    /// Columns that do not exist, and columns the credential may not use.
    Columns {
        missing: Vec<String>,
        denied: Vec<String>,
    },
    /// Some other database error, as report text.
    Other(String),
}

impl Probe {
    fn explain(&self, cap: &Capability, who: &str, privilege: &str) -> (String, String) {
        let table = shown_table(cap);
        let list = |v: &[String]| {
            v.iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Probe::Ok => (String::new(), String::new()),
            Probe::MissingTable => (
                format!(
                    "capability `{}`: the table {table} does not exist, or {who} cannot see it",
                    cap.name
                ),
                "create the table, or correct the capability's target in the config".to_owned(),
            ),
            Probe::Columns { missing, denied } => {
                let mut reasons = Vec::new();
                let mut fixes = Vec::new();
                if !missing.is_empty() {
                    reasons.push(format!(
                        "capability `{}`: column {} of {table} does not exist",
                        cap.name,
                        list(missing)
                    ));
                    fixes.push(
                        "add the column, or remove it from the capability (visible_columns, patch, conflict_guard) in the config"
                            .to_owned(),
                    );
                }
                if !denied.is_empty() {
                    reasons.push(format!(
                        "capability `{}`: {who} may not {privilege} column {} of {table}",
                        cap.name,
                        list(denied)
                    ));
                    let cols: Vec<String> = denied.iter().map(|c| pg_ident(c)).collect();
                    fixes.push(format!(
                        "GRANT {privilege} ({}) ON {}.{} TO <that role> (see `airlock writeback grants`)",
                        cols.join(", "),
                        pg_ident(&cap.target.schema),
                        pg_ident(&cap.target.table)
                    ));
                }
                (reasons.join("; "), fixes.join("; "))
            }
            Probe::Other(text) => (
                format!("capability `{}`: {table}: {text}", cap.name),
                "check the capability's target against the database".to_owned(),
            ),
        }
    }
}

/// Use `cols` of the capability's table with a false predicate; on a
/// missing column or grant, each column alone, to name them.
async fn probe_columns(
    c: &mut sqlx::AnyConnection,
    engine: Engine,
    cap: &Capability,
    cols: &[&str],
    how: ColumnUse,
) -> Result<Probe, sqlx::Error> {
    let table = table_name(engine, cap);
    let sql_for = |cols: &[&str]| -> String {
        let quoted: Vec<String> = cols.iter().map(|col| quote(engine, col)).collect();
        match how {
            ColumnUse::Select => format!("SELECT {} FROM {table} WHERE 1 = 0", quoted.join(", ")),
            ColumnUse::Update => format!(
                "UPDATE {table} SET {} WHERE 1 = 0",
                quoted
                    .iter()
                    .map(|q| format!("{q} = NULL"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    };
    let whole = sqlx::raw_sql(sqlx::AssertSqlSafe(sql_for(cols)))
        .execute(&mut *c)
        .await;
    let e = match whole {
        Ok(_) => return Ok(Probe::Ok),
        Err(e) => e,
    };
    match misconfiguration(engine, &e) {
        Some(Misconfiguration::MissingTable) => return Ok(Probe::MissingTable),
        Some(_) => {}
        None if e.as_database_error().is_some() => {
            return Ok(Probe::Other(db_error_text(engine, &e, "")));
        }
        None => return Err(e),
    }
    let mut missing = Vec::new();
    let mut denied = Vec::new();
    for col in cols {
        match sqlx::raw_sql(sqlx::AssertSqlSafe(sql_for(&[col])))
            .execute(&mut *c)
            .await
        {
            Ok(_) => {}
            Err(e) => match misconfiguration(engine, &e) {
                Some(Misconfiguration::MissingColumn) => missing.push((*col).to_owned()),
                Some(Misconfiguration::PermissionDenied) => denied.push((*col).to_owned()),
                Some(Misconfiguration::MissingTable) => return Ok(Probe::MissingTable),
                None if e.as_database_error().is_some() => {
                    return Ok(Probe::Other(db_error_text(engine, &e, "")));
                }
                None => return Err(e),
            },
        }
    }
    if missing.is_empty() && denied.is_empty() {
        // The whole statement failed but no column alone does: report it as is.
        return Ok(Probe::Other(db_error_text(engine, &e, "")));
    }
    Ok(Probe::Columns { missing, denied })
}

/// The columns the writer reads (the row lock and its checks) and sets
/// (the patch and the version column) for a `sql_update` capability.
fn writer_columns(cap: &Capability) -> Option<(Vec<&str>, Vec<&str>)> {
    let p = cap.proposal.as_ref()?;
    let mut set: Vec<&str> = p.patch.iter().map(|(c, _)| c.as_str()).collect();
    set.extend(p.version_column());
    set.dedup();
    Some((cap.read_columns(), set))
}

/// As the writer, per `sql_update` proposal capability: SELECT on the
/// columns the guarded update reads and UPDATE on those it sets
/// (Postgres: the catalog's privilege functions; MySQL/MariaDB: the
/// statements themselves with a false predicate, rolled back); and SELECT
/// and INSERT on each receipt table that exists.
async fn writer_grant_checks(
    cfg: &Config,
    source_name: &str,
    engine: Engine,
    write_url: &str,
    checks: &mut Vec<Check>,
) {
    if engine == Engine::Sqlite {
        return;
    }
    let caps: Vec<&Capability> = cfg
        .capabilities
        .iter()
        .filter(|c| c.source == source_name && c.kind == Kind::Proposal)
        .filter(|c| {
            c.proposal
                .as_ref()
                .is_some_and(|p| matches!(cfg.executor_for(p).spec, ExecutorSpec::SqlUpdate))
        })
        .collect();
    let schemas: std::collections::BTreeSet<&str> =
        caps.iter().map(|c| c.target.schema.as_str()).collect();
    let probe = async {
        let mut c = sqlx::AnyConnection::connect(write_url).await?;
        let mut tx = c.begin().await?;
        let mut per_cap = Vec::new();
        for cap in &caps {
            let Some((read, set)) = writer_columns(cap) else {
                continue;
            };
            let found = match engine {
                Engine::Postgres => pg_column_privileges(&mut tx, cap, &read, &set).await?,
                _ => {
                    let r = probe_columns(&mut tx, engine, cap, &read, ColumnUse::Select).await?;
                    if r == Probe::Ok {
                        (
                            Probe::Ok,
                            probe_columns(&mut tx, engine, cap, &set, ColumnUse::Update).await?,
                        )
                    } else {
                        (r, Probe::Ok)
                    }
                }
            };
            per_cap.push((*cap, found));
        }
        let mut receipts = Vec::new();
        for schema in &schemas {
            if !receipts_exist(&mut tx, engine, schema).await? {
                continue;
            }
            let lacking = receipt_privileges(&mut tx, engine, schema).await?;
            if !lacking.is_empty() {
                receipts.push(((*schema).to_owned(), lacking));
            }
        }
        tx.rollback().await?;
        Ok::<_, sqlx::Error>((per_cap, receipts))
    };
    match tokio::time::timeout(Duration::from_secs(10), probe).await {
        Ok(Ok((per_cap, receipts))) => {
            for (cap, (read, set)) in per_cap {
                let name = format!("writer grants {}", cap.name);
                if read == Probe::Ok && set == Probe::Ok {
                    let (_, cols) = writer_columns(cap).unwrap_or_default();
                    check(
                        checks,
                        name,
                        Status::Ok,
                        format!(
                            "the write credential can read the row and UPDATE {} of {}",
                            cols.iter()
                                .map(|c| format!("`{c}`"))
                                .collect::<Vec<_>>()
                                .join(", "),
                            shown_table(cap)
                        ),
                        "",
                    );
                    continue;
                }
                let mut reasons = Vec::new();
                let mut fixes = Vec::new();
                for (probe, privilege) in [(&read, "SELECT"), (&set, "UPDATE")] {
                    if *probe != Probe::Ok {
                        let (r, f) = probe.explain(cap, "the write credential", privilege);
                        reasons.push(r);
                        fixes.push(f);
                    }
                }
                check(
                    checks,
                    name,
                    Status::Fail,
                    reasons.join("; "),
                    format!(
                        "{} (`airlock writeback grants --engine {} --writer-role <role> --config <config>` prints them all)",
                        fixes.join("; "),
                        engine.as_str()
                    ),
                );
            }
            if !receipts.is_empty() {
                let what: Vec<String> = receipts
                    .iter()
                    .map(|(s, l)| format!("{} on `{s}.{RECEIPTS_TABLE}`", l.join(" and ")))
                    .collect();
                check(
                    checks,
                    format!("receipt grants {source_name}"),
                    Status::Fail,
                    format!("the write credential lacks {}", what.join(", ")),
                    format!(
                        "GRANT SELECT, INSERT ON the receipt table TO the writer (see `airlock writeback grants --engine {}`)",
                        engine.as_str()
                    ),
                );
            }
        }
        Ok(Err(e)) => check(
            checks,
            format!("writer grants {source_name}"),
            Status::Fail,
            format!(
                "cannot check the writer's grants: {}",
                db_error_text(engine, &e, write_url)
            ),
            "check the write credential",
        ),
        Err(_) => check(
            checks,
            format!("writer grants {source_name}"),
            Status::Fail,
            "no answer within 10 s while checking the writer's grants",
            "check the host, port and firewall",
        ),
    }
}

/// Postgres: which of `read` the writer may not SELECT and which of `set`
/// it may not UPDATE (or which do not exist), from the catalog.
async fn pg_column_privileges(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    cap: &Capability,
    read: &[&str],
    set: &[&str],
) -> Result<(Probe, Probe), sqlx::Error> {
    use sqlx::Row;
    let regclass = table_name(Engine::Postgres, cap);
    let exists: Option<String> =
        sqlx::query("SELECT CAST(pg_catalog.to_regclass($1) AS pg_catalog.text)")
            .bind(regclass.clone())
            .fetch_one(&mut **tx)
            .await?
            .try_get(0)?;
    if exists.is_none() {
        return Ok((Probe::MissingTable, Probe::Ok));
    }
    let mut out = Vec::new();
    for (cols, privilege) in [(read, "SELECT"), (set, "UPDATE")] {
        let mut missing = Vec::new();
        let mut denied = Vec::new();
        for col in cols {
            let row = sqlx::query(
                "SELECT CAST(a.attnum AS pg_catalog.text),                         CAST(pg_catalog.has_column_privilege(a.attrelid, a.attnum, $3) AS pg_catalog.text)                    FROM pg_catalog.pg_attribute a                   WHERE a.attrelid = CAST(pg_catalog.to_regclass($1) AS pg_catalog.oid)                     AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped",
            )
            .bind(regclass.clone())
            .bind((*col).to_owned())
            .bind(privilege)
            .fetch_optional(&mut **tx)
            .await?;
            match row {
                None => missing.push((*col).to_owned()),
                Some(r) => {
                    if r.try_get::<String, _>(1)? != "true" {
                        denied.push((*col).to_owned());
                    }
                }
            }
        }
        out.push(if missing.is_empty() && denied.is_empty() {
            Probe::Ok
        } else {
            Probe::Columns { missing, denied }
        });
    }
    let set_probe = out.pop().unwrap_or(Probe::Ok);
    let read_probe = out.pop().unwrap_or(Probe::Ok);
    Ok((read_probe, set_probe))
}

/// The privileges (`SELECT`, `INSERT`) the writer lacks on the receipt
/// table of `schema`, which exists.
async fn receipt_privileges(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    engine: Engine,
    schema: &str,
) -> Result<Vec<&'static str>, sqlx::Error> {
    use sqlx::Row;
    let mut lacking = Vec::new();
    match engine {
        Engine::Postgres => {
            for privilege in ["SELECT", "INSERT"] {
                let v: String = sqlx::query(
                    "SELECT CAST(pg_catalog.has_table_privilege(CAST(pg_catalog.to_regclass($1) AS pg_catalog.oid), $2) AS pg_catalog.text)",
                )
                .bind(receipt_table::receipts_regclass(schema))
                .bind(privilege)
                .fetch_one(&mut **tx)
                .await?
                .try_get(0)?;
                if v != "true" {
                    lacking.push(privilege);
                }
            }
        }
        Engine::Mysql => {
            let t = format!(
                "{}.{}",
                quote(engine, schema),
                quote(engine, RECEIPTS_TABLE)
            );
            // Zero rows either way, and rolled back.
            for (privilege, sql) in [
                ("SELECT", format!("SELECT 1 FROM {t} WHERE 1 = 0")),
                (
                    "INSERT",
                    format!("INSERT INTO {t} SELECT * FROM {t} WHERE 1 = 0"),
                ),
            ] {
                if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&mut **tx)
                    .await
                {
                    if misconfiguration(engine, &e) == Some(Misconfiguration::PermissionDenied) {
                        lacking.push(privilege);
                    } else {
                        return Err(e);
                    }
                }
            }
        }
        Engine::Sqlite => {}
    }
    Ok(lacking)
}

/// MySQL/MariaDB: the reader's own grants (`SHOW GRANTS`) must allow
/// nothing beyond reading: no `ALL PRIVILEGES`, `SUPER`, write, DDL,
/// `FILE` or `GRANT OPTION`, on any object.
async fn mysql_reader_check(
    name: &str,
    read_url: &str,
    schemas: &std::collections::BTreeSet<&str>,
    checks: &mut Vec<Check>,
) {
    let probe = async {
        let mut c = sqlx::AnyConnection::connect(read_url).await?;
        let grants = mysql_grants(&mut c).await?;
        let _ = c.close().await;
        Ok::<_, sqlx::Error>(grants)
    };
    let check_name = format!("reader privileges {name}");
    match tokio::time::timeout(Duration::from_secs(10), probe).await {
        Ok(Ok((user, lines))) => {
            let findings: Vec<(String, String)> = lines
                .iter()
                .filter_map(|l| mysql_grant_finding(l))
                .filter(|(_, object)| mysql_object_in(object, schemas))
                .collect();
            if findings.is_empty() {
                check(
                    checks,
                    check_name,
                    Status::Ok,
                    format!("the read account {user} holds no privilege beyond reading"),
                    "",
                );
            } else {
                check(
                    checks,
                    check_name,
                    Status::Fail,
                    format!(
                        "the read account {user} can do more than read: {}",
                        findings
                            .iter()
                            .map(|(p, o)| format!("{p} on {o}"))
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                    findings
                        .iter()
                        .map(|(p, o)| format!("REVOKE {p} ON {o} FROM {user}"))
                        .collect::<Vec<_>>()
                        .join("; "),
                );
            }
        }
        Ok(Err(e)) => check(
            checks,
            check_name,
            Status::Fail,
            format!(
                "cannot check the read account's privileges: {}",
                db_error_text(Engine::Mysql, &e, read_url)
            ),
            "check the read credential",
        ),
        Err(_) => check(
            checks,
            check_name,
            Status::Fail,
            "no answer within 10 s while checking the read account's privileges",
            "check the host, port and firewall",
        ),
    }
}

/// MySQL/MariaDB: the account (`CURRENT_USER()`) and its `SHOW GRANTS`
/// lines. The lines may hold a password hash: callers echo only what
/// [`mysql_grant_finding`] extracts.
pub(super) async fn mysql_grants(
    c: &mut sqlx::AnyConnection,
) -> Result<(String, Vec<String>), sqlx::Error> {
    use sqlx::Row;
    let user: String = sqlx::query("SELECT CAST(CURRENT_USER() AS CHAR)")
        .fetch_one(&mut *c)
        .await?
        .try_get(0)?;
    let rows = sqlx::query("SHOW GRANTS").fetch_all(&mut *c).await?;
    let mut lines = Vec::new();
    for r in rows {
        lines.push(r.try_get::<String, _>(0)?);
    }
    Ok((user, lines))
}

/// Whether a `SHOW GRANTS` object (`*.*`, `` `db`.* ``, `` `db`.`t` ``)
/// covers one of the target databases (a `%` pattern counts).
pub(super) fn mysql_object_in(object: &str, schemas: &std::collections::BTreeSet<&str>) -> bool {
    let db = match object.strip_prefix('`').and_then(|o| o.split_once("`.")) {
        Some((db, _)) => db.replace("\\_", "_").replace("\\%", "%"),
        None => object.split('.').next().unwrap_or("").to_owned(),
    };
    db == "*" || db.contains('%') || schemas.contains(db.as_str())
}

/// Privileges a MySQL/MariaDB read account must not hold.
const MYSQL_NOT_FOR_READERS: &[&str] = &[
    "ALL PRIVILEGES",
    "ALL",
    "SUPER",
    "INSERT",
    "UPDATE",
    "DELETE",
    "DELETE HISTORY",
    "CREATE",
    "DROP",
    "ALTER",
    "INDEX",
    "TRIGGER",
    "CREATE VIEW",
    "CREATE ROUTINE",
    "ALTER ROUTINE",
    "FILE",
    "GRANT OPTION",
];

/// One `SHOW GRANTS` line: the privileges a reader must not hold, and the
/// object (`*.*`, `` `db`.* ``, `` `db`.`t` ``). Role and proxy grants and
/// the password clause are ignored; nothing of the line is echoed but the
/// privilege names and the object.
pub(super) fn mysql_grant_finding(line: &str) -> Option<(String, String)> {
    let rest = line.strip_prefix("GRANT ")?;
    let (privs, after) = rest.split_once(" ON ")?;
    let (object, tail) = after.split_once(" TO ")?;
    let mut bad = Vec::new();
    let mut depth = 0;
    let mut current = String::new();
    for ch in privs.chars().chain(std::iter::once(',')) {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                let name = current.trim().to_ascii_uppercase();
                if MYSQL_NOT_FOR_READERS.contains(&name.as_str()) {
                    bad.push(name);
                }
                current.clear();
            }
            c if depth == 0 => current.push(c),
            _ => {}
        }
    }
    if tail.contains("WITH GRANT OPTION") {
        bad.push("GRANT OPTION".to_owned());
    }
    (!bad.is_empty()).then(|| (bad.join(", "), object.trim().to_owned()))
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
    use super::{Check, Status, mysql_grant_finding, mysql_object_in, parse_search_path, summary};

    #[test]
    fn mysql_grant_objects_are_matched_to_the_target_databases() {
        let schemas = ["app_db"].into_iter().collect();
        for (object, covers) in [
            ("*.*", true),
            ("`app_db`.*", true),
            ("`app\\_db`.*", true),
            ("`app_db`.`invoices`", true),
            ("`a%`.*", true),
            ("`other`.*", false),
            ("`other`.`app_db`", false),
        ] {
            assert_eq!(mysql_object_in(object, &schemas), covers, "{object}");
        }
    }

    fn c(status: Status) -> Check {
        Check {
            check: "x".into(),
            status,
            reason: String::new(),
            fix: String::new(),
        }
    }

    #[test]
    fn only_a_clean_report_says_all_checks_passed() {
        assert_eq!(
            summary(&[c(Status::Ok), c(Status::Ok)]),
            "All checks passed."
        );
        assert_eq!(
            summary(&[c(Status::Ok), c(Status::Warn)]),
            "0 check(s) failed, 1 warned, 1 passed."
        );
        assert_eq!(
            summary(&[c(Status::Fail), c(Status::Warn), c(Status::Fail)]),
            "2 check(s) failed, 1 warned, 0 passed."
        );
    }

    #[test]
    fn mysql_grants_beyond_reading_are_found() {
        let u = "TO `airlock_reader`@`%`";
        assert_eq!(
            mysql_grant_finding(&format!("GRANT SELECT ON `app`.* {u}")),
            None
        );
        assert_eq!(
            mysql_grant_finding(&format!(
                "GRANT USAGE ON *.* {u} IDENTIFIED BY PASSWORD '*ABC'"
            )),
            None
        );
        assert_eq!(mysql_grant_finding(&format!("GRANT `role1` {u}")), None);
        assert_eq!(
            mysql_grant_finding(&format!(
                "GRANT SELECT, INSERT, UPDATE (a, b) ON `app`.`t` {u}"
            )),
            Some(("INSERT, UPDATE".into(), "`app`.`t`".into()))
        );
        assert_eq!(
            mysql_grant_finding(&format!("GRANT ALL PRIVILEGES ON `app`.* {u}")),
            Some(("ALL PRIVILEGES".into(), "`app`.*".into()))
        );
        assert_eq!(
            mysql_grant_finding(&format!(
                "GRANT SUPER ON *.* {u} IDENTIFIED BY PASSWORD '*SECRET'"
            )),
            Some(("SUPER".into(), "*.*".into()))
        );
        assert_eq!(
            mysql_grant_finding(&format!("GRANT SELECT ON `app`.* {u} WITH GRANT OPTION")),
            Some(("GRANT OPTION".into(), "`app`.*".into()))
        );
        // A column named like a privilege is not a privilege.
        assert_eq!(
            mysql_grant_finding(&format!(
                "GRANT SELECT (`delete`, `update`) ON `app`.`t` {u}"
            )),
            None
        );
    }

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
