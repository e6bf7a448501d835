//! `airlock inspect --from-env VAR`: what a database's catalog says about one
//! schema, and what a reviewed config would need to know — tenant-key and
//! version-column candidates, sensitive columns with their reasons, the
//! role's posture, triggers and cascading foreign keys.
//!
//! Metadata only: every query reads the catalog (`pg_catalog`,
//! `information_schema`, `sqlite_schema` and SQLite's pragmas); no business
//! row is ever read. It connects with the URL in `VAR` — the read
//! credential — and never prints it. The decisions (classification,
//! ranking) are pure functions in `airlock_policy::{sensitive, candidates}`;
//! this module reads the catalog ([`read_schema`]) and prints.

use std::time::{Duration, Instant};

use airlock_policy::candidates::{
    TenantCandidate, VersionCandidate, WriteEffects, tenant_candidates, version_candidates,
    write_effects,
};
use airlock_policy::config::Engine;
use airlock_policy::schema_info::{SchemaInfo, TableKind};
use airlock_policy::sensitive::{SensitiveColumn, sensitive_columns};
use serde::Serialize;
use serde_json::json;

use super::doctor::db_error_text;
use super::output::{Exit, escape, fail, print_json, say};
use sqlx::Connection as _;

mod mysql;
mod postgres;
mod sqlite;

/// How long inspect waits for a server to connect or answer a query.
const TIMEOUT: Duration = Duration::from_secs(15);

/// Something the reading role can do beyond reading, with its fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PostureFinding {
    pub reason: String,
    pub fix: String,
}

/// What the connecting role may do: the read credential's posture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Posture {
    /// The role (Postgres) or account (MySQL/MariaDB) inspect connected as;
    /// none for SQLite (a file has no roles).
    pub role: Option<String>,
    /// It can only read: no finding below, and (SQLite) the file cannot be
    /// written with this URL.
    pub select_only: bool,
    /// It can write some table (a write privilege, ownership, superuser;
    /// SQLite: the file is writable by this OS user and the URL does not
    /// open it read-only).
    pub can_write: bool,
    pub superuser: bool,
    /// Row-level security does not apply to it (Postgres; false elsewhere).
    pub bypass_rls: bool,
    /// Tables of the schema it owns (Postgres).
    pub owns_tables: Vec<String>,
    /// Tables of the schema with row-level security enabled (Postgres).
    pub rls_tables: Vec<String>,
    /// Tables it can write (Postgres: up to 20, any schema).
    pub writable_tables: Vec<String>,
    /// Everything it can do beyond reading, each with its fix.
    pub findings: Vec<PostureFinding>,
    /// SQLite: whether this OS user may write the database file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_writable: Option<bool>,
    /// SQLite: whether the URL opens the file read-only (`mode=ro`,
    /// `immutable=1`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url_read_only: Option<bool>,
    /// What the engine does not let this role see.
    pub notes: Vec<String>,
}

impl Posture {
    fn empty() -> Posture {
        Posture {
            role: None,
            select_only: false,
            can_write: false,
            superuser: false,
            bypass_rls: false,
            owns_tables: vec![],
            rls_tables: vec![],
            writable_tables: vec![],
            findings: vec![],
            file_writable: None,
            url_read_only: None,
            notes: vec![],
        }
    }
}

/// Why inspect could not read a schema. The URL is never part of a message.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("the environment variable {0} is not set (it must hold the database URL to inspect)")]
    MissingVar(String),
    #[error(
        "{0} does not hold a database URL airlock knows: expected postgres://, postgresql://, mysql://, mariadb:// or sqlite: (the value is not shown)"
    )]
    UnknownUrl(String),
    #[error("cannot connect to {engine} with the URL in {var}: {detail}")]
    Connect {
        engine: &'static str,
        var: String,
        detail: String,
    },
    #[error("{0}")]
    NoSchema(String),
    #[error("a catalog query failed: {0}")]
    Query(String),
    #[error("no answer from the database within {} s", TIMEOUT.as_secs())]
    Timeout,
    #[error("cannot start the async runtime: {0}")]
    Runtime(String),
}

impl InspectError {
    pub fn code(&self) -> &'static str {
        match self {
            InspectError::MissingVar(_) => "missing_env",
            InspectError::UnknownUrl(_) => "bad_url",
            InspectError::Connect { .. } => "connect",
            InspectError::NoSchema(_) => "no_schema",
            InspectError::Query(_) => "query",
            InspectError::Timeout => "timeout",
            InspectError::Runtime(_) => "runtime",
        }
    }
}

/// The engine a URL names by its scheme; `None` for anything else.
pub fn engine_of_url(url: &str) -> Option<Engine> {
    let scheme = url.split_once(':').map(|(s, _)| s.to_ascii_lowercase())?;
    match scheme.as_str() {
        "postgres" | "postgresql" => Some(Engine::Postgres),
        "mysql" | "mariadb" => Some(Engine::Mysql),
        "sqlite" => Some(Engine::Sqlite),
        _ => None,
    }
}

/// Read one schema's catalog and the role's posture. `schema`: the Postgres
/// schema (default: the role's current schema), the MySQL/MariaDB database
/// (default: the URL's) or the SQLite database (`main`, the default). `var`
/// names where the URL came from, for messages. Builds its own runtime:
/// call it from synchronous code (the CLI's commands).
pub fn read_schema(
    engine: Engine,
    url: &str,
    var: &str,
    schema: Option<&str>,
) -> Result<(SchemaInfo, Posture), InspectError> {
    if engine == Engine::Sqlite {
        return sqlite::read(url, var, schema);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| InspectError::Runtime(e.to_string()))?;
    runtime.block_on(async {
        let work = async {
            sqlx::any::install_default_drivers();
            let mut c =
                sqlx::AnyConnection::connect(url)
                    .await
                    .map_err(|e| InspectError::Connect {
                        engine: engine.as_str(),
                        var: var.to_owned(),
                        detail: db_error_text(engine, &e, url),
                    })?;
            let out = match engine {
                Engine::Postgres => postgres::read_on(&mut c, url, schema).await,
                _ => mysql::read_on(&mut c, url, schema).await,
            };
            let _ = c.close().await;
            out
        };
        tokio::time::timeout(TIMEOUT, work)
            .await
            .unwrap_or(Err(InspectError::Timeout))
    })
}

/// The URL in `var`, its engine, and what [`read_schema`] reads with it.
/// The URL is returned for the caller's own catalog reads; never print it.
pub fn read_from_env(
    var: &str,
    schema: Option<&str>,
) -> Result<(Engine, String, SchemaInfo, Posture), InspectError> {
    let url = std::env::var(var).map_err(|_| InspectError::MissingVar(var.to_owned()))?;
    let engine = engine_of_url(&url)
        .or_else(|| sqlite::is_plain_path(&url).then_some(Engine::Sqlite))
        .ok_or_else(|| InspectError::UnknownUrl(var.to_owned()))?;
    let (info, posture) = read_schema(engine, &url, var, schema)?;
    Ok((engine, url, info, posture))
}

/// Everything `inspect` reports, in its `--json` shape.
#[derive(Debug, Serialize)]
pub struct Report {
    pub schema: SchemaInfo,
    pub tenant_candidates: Vec<TenantCandidateOut>,
    pub version_candidates: Vec<VersionCandidate>,
    pub sensitive_columns: Vec<SensitiveColumn>,
    pub write_effects: Vec<WriteEffects>,
    pub posture: Posture,
}

/// A tenant candidate with its evidence line.
#[derive(Debug, Serialize)]
pub struct TenantCandidateOut {
    #[serde(flatten)]
    pub candidate: TenantCandidate,
    pub evidence: String,
}

/// The whole report for a schema read by [`read_schema`].
pub fn report(schema: SchemaInfo, mut posture: Posture) -> Report {
    posture.rls_tables = schema
        .tables
        .iter()
        .filter(|t| t.row_level_security)
        .map(|t| t.name.clone())
        .collect();
    Report {
        tenant_candidates: tenant_candidates(&schema)
            .into_iter()
            .map(|c| TenantCandidateOut {
                evidence: c.evidence(),
                candidate: c,
            })
            .collect(),
        version_candidates: version_candidates(&schema),
        sensitive_columns: sensitive_columns(&schema),
        write_effects: write_effects(&schema),
        posture,
        schema,
    }
}

/// `airlock inspect`.
pub fn run(from_env: &str, schema: Option<&str>, json: bool) -> Exit {
    let started = Instant::now();
    let result = read_from_env(from_env, schema).map(|(_, _, info, posture)| (info, posture));
    let (info, posture) = match result {
        Ok(found) => found,
        Err(e) => return fail(json, e.code(), &e.to_string(), Exit::Failure),
    };
    let report = report(info, posture);
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    if json {
        let mut v = serde_json::to_value(&report).unwrap_or_else(|_| json!({}));
        if let Some(o) = v.as_object_mut() {
            o.insert("elapsed_ms".into(), json!(elapsed_ms));
            let mut out = serde_json::Map::new();
            out.insert("ok".into(), json!(true));
            out.insert("engine".into(), json!(report.schema.engine.as_str()));
            out.extend(std::mem::take(o));
            v = serde_json::Value::Object(out);
        }
        print_json(&v);
    } else {
        print_human(&report, elapsed_ms);
    }
    Exit::Ok
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items
            .iter()
            .map(|i| escape(i).into_owned())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn print_human(r: &Report, elapsed_ms: u64) {
    let s = &r.schema;
    let tables = s
        .tables
        .iter()
        .filter(|t| t.kind == TableKind::Table)
        .count();
    let views = s.tables.len() - tables;
    let who = r
        .posture
        .role
        .as_deref()
        .map(|role| format!(" as `{}`", escape(role)))
        .unwrap_or_default();
    say!(
        "{} schema `{}`{who}: {tables} table(s), {views} view(s)",
        s.engine.as_str(),
        escape(&s.schema)
    );
    let tenant = r
        .tenant_candidates
        .first()
        .map(|c| c.candidate.column.as_str());

    say!("\nTables");
    let width = s
        .tables
        .iter()
        .map(|t| t.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    say!(
        "  {:<width$}  {:<5}  {:>4}  {:<16}  FLAGS",
        "NAME",
        "KIND",
        "COLS",
        "PRIMARY KEY"
    );
    for t in &s.tables {
        let mut flags = Vec::new();
        if let Some(col) = tenant.filter(|c| t.column(c).is_some()) {
            flags.push(format!("tenant:{}", escape(col)));
        }
        if let Some(v) = r.version_candidates.iter().find(|v| v.table == t.name) {
            flags.push(format!("version:{}", escape(&v.column)));
        }
        let sensitive = r
            .sensitive_columns
            .iter()
            .filter(|c| c.table == t.name)
            .count();
        if sensitive > 0 {
            flags.push(format!("sensitive:{sensitive}"));
        }
        if t.row_level_security {
            flags.push("rls".to_owned());
        }
        if !t.triggers.is_empty() {
            flags.push(format!("triggers:{}", t.triggers.len()));
        }
        if let Some(w) = r.write_effects.iter().find(|w| w.table == t.name)
            && !w.cascades.is_empty()
        {
            flags.push(format!("cascades:{}", w.cascades.len()));
        }
        if t.kind == TableKind::Table && t.primary_key.is_empty() {
            flags.push("no-primary-key".to_owned());
        }
        let kind = match t.kind {
            TableKind::Table => "table",
            TableKind::View => "view",
        };
        let pk = if t.primary_key.is_empty() {
            "-".to_owned()
        } else {
            t.primary_key.join(",")
        };
        say!(
            "  {:<width$}  {:<5}  {:>4}  {:<16}  {}",
            escape(&t.name),
            kind,
            t.columns.len(),
            escape(&pk),
            flags.join(" ")
        );
    }

    say!("\nTenant-key candidates (best first)");
    if r.tenant_candidates.is_empty() {
        say!(
            "  none: no tenant-shaped column (tenant_id, org_id, account_id, …) with a key type; a single-tenant schema?"
        );
    }
    for (i, c) in r.tenant_candidates.iter().enumerate() {
        let c_ = &c.candidate;
        say!(
            "  {}. {} ({}): {}",
            i + 1,
            escape(&c_.column),
            escape(&c_.data_types.join(", ")),
            escape(&c.evidence)
        );
        if !c_.not_indexed.is_empty() {
            say!("     not indexed on: {}", list_or_none(&c_.not_indexed));
        }
        let missing: Vec<String> = s
            .tables
            .iter()
            .filter(|t| t.kind == TableKind::Table && !c_.tables.contains(&t.name))
            .map(|t| t.name.clone())
            .collect();
        if !missing.is_empty() && i == 0 {
            say!("     absent from: {}", list_or_none(&missing));
        }
    }

    say!("\nVersion-column candidates (per table, best first)");
    if r.version_candidates.is_empty() {
        say!("  none");
    }
    let mut last = "";
    let mut line = String::new();
    for v in &r.version_candidates {
        if v.table != last {
            if !line.is_empty() {
                say!("{line}");
            }
            line = format!("  {}: ", escape(&v.table));
            last = &v.table;
        } else {
            line.push_str(", ");
        }
        let kind = serde_json::to_value(v.kind)
            .ok()
            .and_then(|k| k.as_str().map(str::to_owned))
            .unwrap_or_default();
        line.push_str(&format!(
            "{} ({}, {kind})",
            escape(&v.column),
            escape(&v.data_type)
        ));
    }
    if !line.is_empty() {
        say!("{line}");
    }

    say!(
        "\nSensitive columns ({}; a drafted config hides them unless you decide otherwise)",
        r.sensitive_columns.len()
    );
    if r.sensitive_columns.is_empty() {
        say!("  none");
    }
    for c in &r.sensitive_columns {
        let reasons: Vec<String> = c
            .findings
            .iter()
            .map(|f| format!("{}: {}", f.category.as_str(), f.reason))
            .collect();
        say!(
            "  {}.{} ({}): {}",
            escape(&c.table),
            escape(&c.column),
            escape(&c.data_type),
            escape(&reasons.join("; "))
        );
    }

    say!("\nTriggers and cascading foreign keys (a write capability sets these off)");
    if r.write_effects.is_empty() {
        say!("  none");
    }
    for w in &r.write_effects {
        let mut parts = Vec::new();
        if !w.triggers.is_empty() {
            parts.push(format!("triggers {}", list_or_none(&w.triggers)));
        }
        for c in &w.cascades {
            parts.push(format!(
                "{}({}) on delete {}, on update {}",
                escape(&c.table),
                escape(&c.columns.join(",")),
                escape(&c.on_delete),
                escape(&c.on_update)
            ));
        }
        say!("  {}: {}", escape(&w.table), parts.join("; "));
    }

    let p = &r.posture;
    say!("\nRole posture");
    if let Some(role) = &p.role {
        say!("  role: {}", escape(role));
    }
    say!(
        "  SELECT-only: {}{}",
        yes_no(p.select_only),
        if p.can_write { " (it can write)" } else { "" }
    );
    say!("  superuser: {}", yes_no(p.superuser));
    if s.engine == Engine::Postgres {
        say!("  BYPASSRLS: {}", yes_no(p.bypass_rls));
        say!("  owns tables: {}", list_or_none(&p.owns_tables));
        say!("  RLS enabled on: {}", list_or_none(&p.rls_tables));
    }
    if let Some(w) = p.file_writable {
        say!("  file writable by this OS user: {}", yes_no(w));
    }
    if let Some(ro) = p.url_read_only {
        say!("  URL opens the file read-only: {}", yes_no(ro));
    }
    if !p.writable_tables.is_empty() {
        say!("  can write: {}", list_or_none(&p.writable_tables));
    }
    for f in &p.findings {
        say!("  - {}", escape(&f.reason));
        say!("    fix: {}", escape(&f.fix));
    }
    for n in &p.notes {
        say!("  note: {}", escape(n));
    }
    say!("\nInspected in {elapsed_ms} ms (catalog only; no business row was read).");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engine_comes_from_the_scheme() {
        assert_eq!(engine_of_url("postgres://u@h/db"), Some(Engine::Postgres));
        assert_eq!(engine_of_url("PostgreSQL://u@h/db"), Some(Engine::Postgres));
        assert_eq!(engine_of_url("mysql://u@h/db"), Some(Engine::Mysql));
        assert_eq!(engine_of_url("mariadb://u@h/db"), Some(Engine::Mysql));
        assert_eq!(engine_of_url("sqlite:///tmp/x.db"), Some(Engine::Sqlite));
        assert_eq!(engine_of_url("sqlite:x.db"), Some(Engine::Sqlite));
        assert_eq!(engine_of_url("http://h"), None);
        assert_eq!(engine_of_url("/tmp/x.db"), None);
    }

    #[test]
    fn errors_name_the_variable_never_the_value() {
        let e = InspectError::UnknownUrl("APP_URL".into());
        assert!(e.to_string().starts_with("APP_URL does not hold"), "{e}");
        assert_eq!(e.code(), "bad_url");
        let e = InspectError::MissingVar("APP_URL".into());
        assert!(e.to_string().contains("APP_URL is not set"), "{e}");
    }
}
