//! The `sql_update` executor: one guarded UPDATE of one row, with its
//! idempotency receipt, in one database transaction.
//!
//! 1. A receipt for the idempotency key already exists → `already_applied`.
//! 2. Lock the row by primary key **and** tenant (`FOR UPDATE`; SQLite
//!    serializes writers instead) and check, in SQL with the column's own
//!    type, that the version column, the before-value of every patched
//!    column and any transition "from" value still hold. No row, or any
//!    check failing → `conflict`, rollback, nothing changed.
//! 3. Check the receipt again under the lock (a concurrent apply).
//! 4. `UPDATE … SET <patched columns>, <version> = <next> WHERE pk AND
//!    tenant AND version`: exactly one row, or rollback.
//! 5. Insert the receipt; commit. A crash before the commit leaves nothing;
//!    after it, step 1 answers every retry.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use airlock_policy::bounded_set::{judge_membership, member_change, member_checks};
use airlock_policy::change_set::scalar_text;
use airlock_policy::config::OperationKind;
use airlock_policy::config::{Capability, Engine, Source};
use airlock_policy::db_error::{Misconfiguration, classify};
use airlock_policy::secrets::redact;
use airlock_policy::statement::{
    BoundStatement, NextVersion, RECEIPTS_TABLE, RowFreshness, WriteDialect, freshness_probe,
    judge_freshness, receipt_insert, receipt_lookup, receipts_ddl, set_members_query,
    writeback_checks, writeback_delete, writeback_insert, writeback_lock, writeback_new_version,
    writeback_update,
};
use airlock_policy::write_effects::{CatalogQuery, delete_effects_query, judge_delete_effects};
use serde_json::{Map, Value};
use sqlx::any::{AnyArguments, AnyPoolOptions, AnyRow};
use sqlx::{AnyConnection, AnyPool, Arguments, Row};
use tokio::sync::Mutex;

use super::credentials::read_secret;
use super::receipt::result_hash;
use super::receipt_table;
use super::{Outcome, ReceiptStatus, WritebackJob};
use crate::writeback::fault;

/// The name recorded as `runner_id` in receipts.
pub const RUNNER_ID: &str = "airlock-executor";

/// Column name → type, as the catalog reports it.
pub(crate) type ColumnTypes = HashMap<String, String>;

/// Lazily opened write pools, one per source, and cached column types.
#[derive(Default)]
pub struct WritePools {
    pools: Mutex<HashMap<String, AnyPool>>,
    types: Mutex<HashMap<(String, String, String), Arc<ColumnTypes>>>,
    receipts_ready: Mutex<HashMap<(String, String), bool>>,
}

impl std::fmt::Debug for WritePools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WritePools")
    }
}

/// A failure before or during the transaction; `secrets` are scrubbed from it.
fn failed(code: &str, what: &str, err: &dyn std::fmt::Display, secrets: &[String]) -> Outcome {
    let detail = redact(&format!("{what}: {err}"), secrets);
    Outcome::failed(code, detail.chars().take(500).collect::<String>())
}

/// A database error that means the writer cannot use the target as the
/// capability needs (a missing table or column, a missing grant): the code
/// `SOURCE_MISCONFIGURED` and the executor's own words — the engine's text
/// (positions, source lines of the server) stays out of the ledger.
fn misconfigured(engine: Engine, cap: &Capability, what: &str, e: &sqlx::Error) -> Option<Outcome> {
    let category = misconfiguration(engine, e)?;
    Some(Outcome::failed(
        "SOURCE_MISCONFIGURED",
        format!(
            "{what}: {} (`{}`.`{}`, as the write credential); nothing was written. Run `airlock doctor`: it names the table, column or grant",
            category.describe(),
            cap.target.schema,
            cap.target.table
        ),
    ))
}

/// The category of `e`, if it is a setup problem.
pub(crate) fn misconfiguration(engine: Engine, e: &sqlx::Error) -> Option<Misconfiguration> {
    let db = e.as_database_error()?;
    let code = db.code();
    let number = db
        .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
        .map(sqlx::mysql::MySqlDatabaseError::number);
    classify(engine, code.as_deref(), number, db.message())
}

impl WritePools {
    pub(crate) async fn pool(
        &self,
        source_id: &str,
        source: &Source,
        url: &str,
    ) -> Result<AnyPool, sqlx::Error> {
        let mut pools = self.pools.lock().await;
        if let Some(p) = pools.get(source_id) {
            return Ok(p.clone());
        }
        sqlx::any::install_default_drivers();
        let timeout_ms = source.statement_timeout_ms;
        let engine = source.engine;
        let pool = AnyPoolOptions::new()
            .max_connections(4)
            .min_connections(0)
            .acquire_timeout(Duration::from_millis(timeout_ms + 2_000))
            // `before_acquire` below replaces the ping (one round trip either way).
            .test_before_acquire(false)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if engine == Engine::Postgres {
                        // Not best effort: without the pin, a function or
                        // operator the read role planted could run with write rights.
                        sqlx::raw_sql(PIN_SEARCH_PATH).execute(&mut *conn).await?;
                    }
                    for sql in session_setup(engine, timeout_ms) {
                        // Best effort: MariaDB and MySQL name their timeout differently.
                        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                            .execute(&mut *conn)
                            .await;
                    }
                    Ok(())
                })
            })
            .before_acquire(move |conn, _| {
                Box::pin(async move {
                    if engine != Engine::Postgres {
                        sqlx::Connection::ping(&mut *conn).await?;
                        return Ok(true);
                    }
                    // A pooled connection whose search_path was changed (e.g.
                    // by a trigger calling set_config) is closed, not reused.
                    let path: String =
                        sqlx::query_scalar("SELECT pg_catalog.current_setting('search_path')")
                            .fetch_one(&mut *conn)
                            .await?;
                    Ok(path == PINNED_SEARCH_PATH)
                })
            })
            .connect_lazy(url)?;
        pools.insert(source_id.to_owned(), pool.clone());
        Ok(pool)
    }

    /// The columns of `schema.table` as the catalog lists them
    /// (`airlock_policy::catalog_sql`), read with this source's write pool:
    /// the connection the executor applies with. Used at start to check the
    /// config's schema lock. The error is scrubbed of the URL's secrets.
    pub async fn table_columns(
        &self,
        source_id: &str,
        source: &Source,
        schema: &str,
        table: &str,
    ) -> Result<Vec<airlock_policy::schema_info::ColumnInfo>, String> {
        let q = airlock_policy::catalog_sql::columns_query(source.engine);
        let query = CatalogQuery {
            sql: q.sql.to_owned(),
            binds: q
                .bind_values(schema, table)
                .into_iter()
                .map(str::to_owned)
                .collect(),
        };
        self.catalog_rows(source_id, source, &query, 3)
            .await?
            .iter()
            .map(|r| airlock_policy::catalog_sql::column_from_row(&r[0], &r[1], &r[2]))
            .collect()
    }

    /// Run a catalog query with this source's write pool (the connection
    /// the executor applies with): every row as text columns. The error is
    /// scrubbed of the URL's secrets.
    pub async fn catalog_rows(
        &self,
        source_id: &str,
        source: &Source,
        query: &CatalogQuery,
        columns: usize,
    ) -> Result<Vec<Vec<String>>, String> {
        let Some(write_env) = &source.write_url_env else {
            return Err(format!("source `{source_id}` has no write_url_env"));
        };
        let url = read_secret(write_env).map_err(|e| e.to_string())?;
        let secrets = airlock_policy::secrets::url_secrets(&url);
        let scrub = |e: &dyn std::fmt::Display| redact(&e.to_string(), &secrets);
        let pool = self
            .pool(source_id, source, &url)
            .await
            .map_err(|e| scrub(&e))?;
        let mut conn = pool.acquire().await.map_err(|e| scrub(&e))?;
        catalog_rows(&mut conn, query, columns)
            .await
            .map_err(|e| scrub(&e))
    }

    pub(crate) async fn column_types(
        &self,
        conn: &mut AnyConnection,
        source_id: &str,
        engine: Engine,
        cap: &Capability,
    ) -> Result<Arc<ColumnTypes>, sqlx::Error> {
        let key = (
            source_id.to_owned(),
            cap.target.schema.clone(),
            cap.target.table.clone(),
        );
        if let Some(t) = self.types.lock().await.get(&key) {
            return Ok(Arc::clone(t));
        }
        let rows: Vec<AnyRow> = match engine {
            Engine::Postgres => {
                let regclass = format!("{}.{}", airlock_policy::identifier::quote(engine, &cap.target.schema), airlock_policy::identifier::quote(engine, &cap.target.table));
                sqlx::query("SELECT CAST(a.attname AS pg_catalog.text), pg_catalog.format_type(a.atttypid, NULL) FROM pg_catalog.pg_attribute a WHERE a.attrelid = CAST($1 AS pg_catalog.regclass) AND a.attnum > 0 AND NOT a.attisdropped")
                    .bind(regclass)
                    .fetch_all(&mut *conn)
                    .await?
            }
            Engine::Mysql => {
                sqlx::query("SELECT CAST(COLUMN_NAME AS CHAR), CAST(COLUMN_TYPE AS CHAR) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?")
                    .bind(cap.target.schema.clone())
                    .bind(cap.target.table.clone())
                    .fetch_all(&mut *conn)
                    .await?
            }
            Engine::Sqlite => Vec::new(),
        };
        let mut types = ColumnTypes::new();
        for r in rows {
            types.insert(r.try_get::<String, _>(0)?, r.try_get::<String, _>(1)?);
        }
        let types = Arc::new(types);
        self.types.lock().await.insert(key, Arc::clone(&types));
        Ok(types)
    }

    /// Create the receipt table if it is missing, and check that it can be
    /// trusted and has Synapsor Runner's shape (once per source, schema and
    /// target table).
    async fn ensure_receipts(
        &self,
        conn: &mut AnyConnection,
        source_id: &str,
        engine: Engine,
        schema: &str,
        target_table: &str,
    ) -> Result<(), ReceiptTableError> {
        let key = (source_id.to_owned(), format!("{schema}\u{0}{target_table}"));
        // Held across the look-up and the CREATE: concurrent first applies
        // must not race to create the table.
        let mut ready = self.receipts_ready.lock().await;
        if ready.contains_key(&key) {
            return Ok(());
        }
        let exists = match engine {
            Engine::Postgres => sqlx::query("SELECT CAST(pg_catalog.to_regclass($1) AS pg_catalog.text)")
                .bind(receipt_table::receipts_regclass(schema))
                .fetch_one(&mut *conn)
                .await?
                .try_get::<Option<String>, _>(0)?
                .is_some(),
            // MySQL demands the CREATE privilege even for CREATE TABLE IF NOT
            // EXISTS, so a least-privilege writer must find it by looking.
            Engine::Mysql => sqlx::query("SELECT CAST(COUNT(*) AS CHAR) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?")
                .bind(schema.to_owned())
                .bind(RECEIPTS_TABLE)
                .fetch_one(&mut *conn)
                .await?
                .try_get::<String, _>(0)?
                != "0",
            Engine::Sqlite => false,
        };
        if !exists
            && let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(receipts_ddl(engine, schema)))
                .execute(&mut *conn)
                .await
        {
            // Another executor (or a person) created it meanwhile: that is fine.
            let created_elsewhere = e
                .as_database_error()
                .and_then(|d| d.code())
                .is_some_and(|c| matches!(c.as_ref(), "23505" | "42P07" | "1050"));
            if !created_elsewhere {
                return Err(e.into());
            }
        }
        // Checked even when this call created it: `IF NOT EXISTS` also
        // succeeds when another role created it a moment earlier, or when a
        // table of another shape is there already.
        match receipt_table::inspect(conn, engine, schema, target_table).await? {
            receipt_table::Trust::Trusted => {}
            receipt_table::Trust::Missing => {
                return Err(ReceiptTableError::Untrusted(format!(
                    "the receipt table {}.{} is missing after creating it",
                    airlock_policy::identifier::quote(engine, schema),
                    airlock_policy::identifier::quote(engine, RECEIPTS_TABLE)
                )));
            }
            receipt_table::Trust::Untrusted(why) => {
                return Err(ReceiptTableError::Untrusted(why));
            }
        }
        ready.insert(key, true);
        Ok(())
    }
}

/// Why the receipt table cannot be used.
enum ReceiptTableError {
    Database(sqlx::Error),
    /// It exists but must not be relied on (Postgres owner; kind or shape).
    Untrusted(String),
}

impl From<sqlx::Error> for ReceiptTableError {
    fn from(e: sqlx::Error) -> Self {
        ReceiptTableError::Database(e)
    }
}

/// The writer's `search_path` on Postgres: the system catalog first, the
/// session's own temporary schema last, nothing the read role could create in.
pub const PINNED_SEARCH_PATH: &str = "pg_catalog, pg_temp";
const PIN_SEARCH_PATH: &str = "SET search_path = pg_catalog, pg_temp";

/// Statements run on every new writer connection.
fn session_setup(engine: Engine, timeout_ms: u64) -> Vec<String> {
    match engine {
        Engine::Postgres => vec![format!("SET statement_timeout = {timeout_ms}")],
        Engine::Mysql => vec![
            "SET time_zone = '+00:00'".to_owned(),
            format!(
                "SET SESSION max_statement_time = {}",
                timeout_ms as f64 / 1000.0
            ),
            format!("SET SESSION max_execution_time = {timeout_ms}"),
        ],
        Engine::Sqlite => vec![format!("PRAGMA busy_timeout = {timeout_ms}")],
    }
}

/// A JSON scalar as the text the database will cast (Postgres) or convert
/// (MySQL); MySQL temporal values lose the RFC 3339 `T` and `Z`.
fn as_text(engine: Engine, column_type: Option<&str>, v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => {
            let temporal = column_type.is_some_and(|t| {
                let t = t.to_ascii_lowercase();
                t.starts_with("datetime") || t.starts_with("timestamp")
            });
            if engine == Engine::Mysql && temporal {
                Some(s.trim_end_matches('Z').replacen('T', " ", 1))
            } else {
                Some(s.clone())
            }
        }
        Value::Bool(b) => Some(match engine {
            Engine::Postgres => b.to_string(),
            _ => u8::from(*b).to_string(),
        }),
        other => Some(other.to_string()),
    }
}

/// Bind values: text everywhere but SQLite, which compares by storage class
/// and so gets each value in its own JSON type.
pub(crate) fn arguments(
    engine: Engine,
    stmt: &BoundStatement,
    types: &ColumnTypes,
) -> Result<AnyArguments, sqlx::Error> {
    let mut args = AnyArguments::default();
    for bind in &stmt.binds {
        let col_type = bind
            .column
            .as_ref()
            .and_then(|c| types.get(c))
            .map(String::as_str);
        let v = &bind.value;
        let r = match (engine, v) {
            (Engine::Sqlite, Value::Number(n)) if n.is_i64() || n.is_u64() => args.add(n.as_i64()),
            (Engine::Sqlite, Value::Number(n)) => args.add(n.as_f64()),
            (Engine::Sqlite, Value::Bool(b)) => args.add(Some(i64::from(*b))),
            _ => args.add(as_text(engine, col_type, v)),
        };
        r.map_err(sqlx::Error::Encode)?;
    }
    Ok(args)
}

/// Run a catalog query on `conn`: every row as `columns` text values.
async fn catalog_rows(
    conn: &mut AnyConnection,
    query: &CatalogQuery,
    columns: usize,
) -> Result<Vec<Vec<String>>, sqlx::Error> {
    let mut q = sqlx::query(sqlx::AssertSqlSafe(query.sql.clone()));
    for b in &query.binds {
        q = q.bind(b.clone());
    }
    q.fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| {
            (0..columns)
                .map(|i| Ok(r.try_get::<Option<String>, _>(i)?.unwrap_or_default()))
                .collect()
        })
        .collect()
}

fn int_at(row: &AnyRow, i: usize) -> i64 {
    row.try_get::<i64, _>(i)
        .or_else(|_| row.try_get::<bool, _>(i).map(i64::from))
        .unwrap_or(0)
}

/// Re-read a proposal's target row without a lock, with the writer's
/// connection, and judge the proposal's guards against it (the checks
/// `apply` makes under the lock). `Err`: why the row could not be re-read,
/// without credentials.
pub async fn freshness(
    pools: &WritePools,
    source_id: &str,
    source: &Source,
    cap: &Capability,
    cs: &airlock_policy::change_set::ChangeSet,
    read_row: Option<&Map<String, Value>>,
) -> Result<RowFreshness, String> {
    if cs.operation == OperationKind::Insert {
        // No row existed to read; the identity is checked when it is added.
        return Ok(RowFreshness::Current);
    }
    let (mut conn, secrets, types) = reader_for(pools, source_id, source, cap).await?;
    let scrub = |what: &str, e: &dyn std::fmt::Display| scrubbed(what, e, &secrets);
    let column_type = |c: &str| types.get(c).cloned();
    let dialect = WriteDialect {
        engine: source.engine,
        column_type: &column_type,
    };
    if cs.set.is_some() {
        return set_freshness(&mut conn, &dialect, cap, cs, &types)
            .await
            .map_err(|e| scrub("cannot re-read the set's members", &e));
    }
    let checks = writeback_checks(cap, cs, read_row);
    probe(&mut conn, &dialect, cap, cs, &checks, &types)
        .await
        .map_err(|e| scrub("cannot re-read the row", &e))
}

/// A connection with the write credential for re-reading `cap`'s table,
/// the texts to keep out of errors, and the table's column types.
async fn reader_for(
    pools: &WritePools,
    source_id: &str,
    source: &Source,
    cap: &Capability,
) -> Result<
    (
        sqlx::pool::PoolConnection<sqlx::Any>,
        Vec<String>,
        Arc<ColumnTypes>,
    ),
    String,
> {
    let (mut conn, secrets) = connect_reader(pools, source_id, source).await?;
    let types = pools
        .column_types(&mut conn, source_id, source.engine, cap)
        .await
        .map_err(|e| scrubbed("cannot read the table's column types", &e, &secrets))?;
    Ok((conn, secrets, types))
}

/// Every frozen member of a set, re-read without a lock: `Gone` if one no
/// longer exists for the tenant, `Changed` (labels prefixed with the
/// member's key) if one changed, else `Current`.
async fn set_freshness(
    conn: &mut AnyConnection,
    dialect: &WriteDialect<'_>,
    cap: &Capability,
    cs: &airlock_policy::change_set::ChangeSet,
    types: &ColumnTypes,
) -> Result<RowFreshness, sqlx::Error> {
    let count = cs.set.as_ref().map_or(0, |s| s.members.len());
    for i in 0..count {
        let Some(member) = member_change(cap, cs, i) else {
            return Ok(RowFreshness::Gone);
        };
        let checks = member_checks(&member);
        match probe(conn, dialect, cap, &member, &checks, types).await? {
            RowFreshness::Current => {}
            RowFreshness::Gone => return Ok(RowFreshness::Gone),
            RowFreshness::Changed(labels) => {
                let key = scalar_text(&member.target.primary_key.value);
                let key: String = key.chars().take(64).collect();
                return Ok(RowFreshness::Changed(
                    labels
                        .into_iter()
                        .map(|l| format!("member {key}: {l}"))
                        .collect(),
                ));
            }
        }
    }
    Ok(RowFreshness::Current)
}

/// What the executor found when it checked a proposed set against the
/// source itself.
pub enum SetCheck {
    /// The members are exactly what the selection matches, as frozen.
    Exact,
    /// Not so: why, for the proposer (no credentials).
    Refused(String),
}

/// Run a set proposal's reviewed selection with the write credential and
/// check its members are exactly the rows it matches now, each still
/// holding every frozen value. `Err`: the source could not be read.
pub async fn check_set_now(
    pools: &WritePools,
    source_id: &str,
    source: &Source,
    cap: &Capability,
    cs: &airlock_policy::change_set::ChangeSet,
) -> Result<SetCheck, String> {
    let Some(set) = cap.proposal.as_ref().and_then(|p| p.set()) else {
        return Ok(SetCheck::Refused("not a set capability".into()));
    };
    let (mut conn, secrets, types) = reader_for(pools, source_id, source, cap).await?;
    let scrub = |what: &str, e: &dyn std::fmt::Display| scrubbed(what, e, &secrets);
    let engine = source.engine;
    let column_type = |c: &str| types.get(c).cloned();
    let dialect = WriteDialect {
        engine,
        column_type: &column_type,
    };
    let query = set_members_query(&dialect, cap, set, &cs.tenant_id, &cs.principal);
    let keys: Vec<String> = sqlx::query_with(
        sqlx::AssertSqlSafe(query.sql.clone()),
        arguments(engine, &query, &types).map_err(|e| scrub("cannot bind the selection", &e))?,
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| scrub("cannot run the set's selection", &e))?
    .iter()
    .map(|r| {
        r.try_get::<Option<String>, _>(0)
            .map(Option::unwrap_or_default)
    })
    .collect::<Result<_, _>>()
    .map_err(|e| scrub("cannot read the set's keys", &e))?;
    if let Err(v) = judge_membership(cs, &keys) {
        return Ok(SetCheck::Refused(v.message));
    }
    match set_freshness(&mut conn, &dialect, cap, cs, &types)
        .await
        .map_err(|e| scrub("cannot re-read the set's members", &e))?
    {
        RowFreshness::Current => Ok(SetCheck::Exact),
        RowFreshness::Gone => Ok(SetCheck::Refused(
            "a member no longer exists for this tenant".into(),
        )),
        RowFreshness::Changed(labels) => Ok(SetCheck::Refused(format!(
            "the members' values are not what the source holds ({}); a set must be frozen from the rows as they are",
            labels.join(", ")
        ))),
    }
}

/// `what: e`, with the write URL's secrets withheld, at most 500 characters.
fn scrubbed(what: &str, e: &dyn std::fmt::Display, secrets: &[String]) -> String {
    redact(&format!("{what}: {e}"), secrets)
        .chars()
        .take(500)
        .collect()
}

/// A connection with the source's write credential for reading rows
/// outside an apply (freshness re-reads, dependency versions), and the
/// texts to keep out of errors.
pub(crate) async fn connect_reader(
    pools: &WritePools,
    source_id: &str,
    source: &Source,
) -> Result<(sqlx::pool::PoolConnection<sqlx::Any>, Vec<String>), String> {
    let Some(write_env) = &source.write_url_env else {
        return Err(format!(
            "source `{source_id}` has no write_url_env, so the executor holds no connection to re-read it"
        ));
    };
    let url = read_secret(write_env).map_err(|e| e.to_string())?;
    let secrets = airlock_policy::secrets::url_secrets(&url);
    let pool = pools
        .pool(source_id, source, &url)
        .await
        .map_err(|e| scrubbed("the write URL is not usable", &e, &secrets))?;
    let conn = pool
        .acquire()
        .await
        .map_err(|e| scrubbed("cannot connect with the write credential", &e, &secrets))?;
    Ok((conn, secrets))
}

/// Apply one job with `sql_update`.
pub async fn apply(
    pools: &WritePools,
    source_id: &str,
    source: &Source,
    cap: &Capability,
    job: &WritebackJob,
    read_row: Option<&Map<String, Value>>,
) -> Outcome {
    let Some(write_env) = &source.write_url_env else {
        return Outcome::failed(
            "WRITE_URL_NOT_CONFIGURED",
            format!("source `{source_id}` has no write_url_env"),
        );
    };
    let url = match read_secret(write_env) {
        Ok(u) => u,
        Err(e) => return Outcome::failed("WRITE_CREDENTIAL_MISSING", e.to_string()),
    };
    let secrets = airlock_policy::secrets::url_secrets(&url);
    let engine = source.engine;
    let pool = match pools.pool(source_id, source, &url).await {
        Ok(p) => p,
        Err(e) => {
            return failed(
                "WRITE_URL_INVALID",
                "the write URL is not usable",
                &e,
                &secrets,
            );
        }
    };
    let mut conn = match pool.acquire().await {
        Ok(c) => c,
        Err(e) => {
            return failed(
                "SOURCE_UNAVAILABLE",
                "cannot connect with the write credential",
                &e,
                &secrets,
            );
        }
    };
    let types = match pools.column_types(&mut conn, source_id, engine, cap).await {
        Ok(t) => t,
        Err(e) => {
            if let Some(o) = misconfigured(engine, cap, "cannot read the table's column types", &e)
            {
                return o;
            }
            return failed(
                "SOURCE_UNAVAILABLE",
                "cannot read the table's column types",
                &e,
                &secrets,
            );
        }
    };
    match pools
        .ensure_receipts(
            &mut conn,
            source_id,
            engine,
            &cap.target.schema,
            &cap.target.table,
        )
        .await
    {
        Ok(()) => {}
        Err(ReceiptTableError::Database(e)) => {
            if let Some(category) = misconfiguration(engine, &e) {
                return Outcome::failed(
                    "RECEIPT_TABLE_UNAVAILABLE",
                    format!(
                        "cannot create or find the receipt table in `{}`: {}; nothing was written. Run `airlock writeback migration` and `airlock writeback grants`, then `airlock doctor`",
                        cap.target.schema,
                        category.describe()
                    ),
                );
            }
            return failed(
                "RECEIPT_TABLE_UNAVAILABLE",
                "cannot create or find the receipt table (run `airlock writeback migration`)",
                &e,
                &secrets,
            );
        }
        Err(ReceiptTableError::Untrusted(why)) => {
            // Airlock's own text (catalog names and the fix), shown whole.
            let detail = redact(
                &format!("refused to trust the receipt table; nothing was written: {why}"),
                &secrets,
            );
            return Outcome::failed(
                "RECEIPT_TABLE_UNTRUSTED",
                detail.chars().take(1000).collect::<String>(),
            );
        }
    }
    fault::point("before_transaction");
    match run_transaction(&mut conn, engine, cap, job, read_row, &types).await {
        Ok(outcome) => outcome,
        Err(e) => misconfigured(
            engine,
            cap,
            "the guarded update failed and was rolled back",
            &e,
        )
        .unwrap_or_else(|| {
            failed(
                "WRITE_FAILED",
                "the guarded update failed and was rolled back",
                &e,
                &secrets,
            )
        }),
    }
}

async fn run_transaction(
    conn: &mut AnyConnection,
    engine: Engine,
    cap: &Capability,
    job: &WritebackJob,
    read_row: Option<&Map<String, Value>>,
    types: &ColumnTypes,
) -> Result<Outcome, sqlx::Error> {
    let cs = &job.change_set;
    let column_type = |c: &str| types.get(c).cloned();
    let dialect = WriteDialect {
        engine,
        column_type: &column_type,
    };
    let previous_version = cs.guards.expected_version.as_ref().map(|v| v.value.clone());
    let schema = &cap.target.schema;

    let lookup = receipt_lookup(engine, schema);
    let kind = NextVersion::for_change(cap, cs);
    let mut tx = match engine {
        // A deferred BEGIN takes SQLite's write lock only at the UPDATE, and
        // SQLite refuses that upgrade at once (no busy wait) while another
        // apply holds the lock; IMMEDIATE waits for it under busy_timeout.
        Engine::Sqlite => sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE").await?,
        _ => sqlx::Connection::begin(&mut *conn).await?,
    };
    if let Some(outcome) = receipt_answer(&mut tx, &lookup, &dialect, cap, job, kind, types).await?
    {
        tx.rollback().await?;
        return Ok(outcome);
    }

    if cs.operation == OperationKind::Insert {
        return insert_row(tx, &dialect, cap, job, types).await;
    }
    if cs.operation == OperationKind::Delete {
        // Checked again here, not only at start: a trigger or foreign key
        // added since would make the delete reach further than reviewed.
        let query = delete_effects_query(engine, schema, &cap.target.table);
        let found: Vec<(String, String)> = catalog_rows(&mut tx, &query, 2)
            .await?
            .into_iter()
            .map(|mut r| (r.remove(0), r.remove(0)))
            .collect();
        let op = cap
            .proposal
            .as_ref()
            .map(|p| p.operation.clone())
            .unwrap_or_default();
        if let Err(why) = judge_delete_effects(engine, &found, &op) {
            tx.rollback().await?;
            return Ok(Outcome::failed(
                "DELETE_EFFECTS_UNACKNOWLEDGED",
                format!("{why}; nothing was written"),
            ));
        }
    }

    if cs.set.is_some() {
        return apply_set(tx, &dialect, cap, job, types, &lookup, kind).await;
    }

    // Lock the row and check every guard against it. A delete only reads
    // the checks (locking would need the UPDATE privilege on Postgres): its
    // own WHERE compares the exact version, so a row changed in between
    // matches nothing and is a conflict all the same.
    let checks = writeback_checks(cap, cs, read_row);
    let Some(failed_checks) = lock_and_check(&mut tx, &dialect, cap, cs, &checks, types).await?
    else {
        tx.rollback().await?;
        return Ok(conflict(
            "ROW_NOT_FOUND",
            "the row no longer exists for this tenant",
            previous_version,
        ));
    };
    if !failed_checks.is_empty() {
        tx.rollback().await?;
        let code = if failed_checks.iter().any(|c| c == "version") {
            "VERSION_CONFLICT"
        } else {
            "BEFORE_MISMATCH"
        };
        return Ok(conflict(
            code,
            &format!(
                "the row changed since the proposal ({}); nothing was changed",
                failed_checks.join(", ")
            ),
            previous_version,
        ));
    }
    if let Some(stale) = super::dependencies::lock_and_check(
        &mut tx,
        engine,
        &job.dependencies,
        previous_version.clone(),
    )
    .await?
    {
        tx.rollback().await?;
        return Ok(stale);
    }
    if let Some(outcome) = receipt_answer(&mut tx, &lookup, &dialect, cap, job, kind, types).await?
    {
        tx.rollback().await?;
        return Ok(outcome);
    }

    // The one guarded UPDATE or DELETE.
    let next = kind;
    let what = match cs.operation {
        OperationKind::Delete => "delete",
        _ => "update",
    };
    let affected = guarded_write(&mut tx, &dialect, cap, cs, next, types).await?;
    if affected != 1 {
        tx.rollback().await?;
        return Ok(conflict(
            "VERSION_CONFLICT",
            &format!("the guarded {what} matched {affected} rows; rolled back"),
            previous_version,
        ));
    }
    let new_version = match writeback_new_version(&dialect, cap, cs)
        .filter(|_| cs.operation == OperationKind::Update)
    {
        Some(stmt) => {
            let text: Option<String> = sqlx::query_with(
                sqlx::AssertSqlSafe(stmt.sql.clone()),
                arguments(engine, &stmt, types)?,
            )
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
            text.map(|t| version_value(t, next))
        }
        None => None,
    };
    commit_applied(tx, engine, schema, job, previous_version, new_version, 1).await
}

/// A bounded set: lock every frozen member by key, in key order (a delete
/// reads its checks, as for one row), check each still holds every frozen
/// value, then change each with the single-row statement guarded by its
/// version; one missing or stale member rolls back the whole set. One
/// receipt for the set.
async fn apply_set(
    mut tx: sqlx::Transaction<'_, sqlx::Any>,
    dialect: &WriteDialect<'_>,
    cap: &Capability,
    job: &WritebackJob,
    types: &ColumnTypes,
    lookup: &str,
    kind: NextVersion,
) -> Result<Outcome, sqlx::Error> {
    let engine = dialect.engine;
    let cs = &job.change_set;
    let count = cs.set.as_ref().map_or(0, |s| s.members.len());
    let mut members = Vec::with_capacity(count);
    for i in 0..count {
        let Some(member) = member_change(cap, cs, i) else {
            tx.rollback().await?;
            return Ok(Outcome::failed(
                "SET_INVALID",
                "a member of the set could not be read from the proposal; nothing was written",
            ));
        };
        let key: String = scalar_text(&member.target.primary_key.value)
            .chars()
            .take(64)
            .collect();
        let checks = member_checks(&member);
        let Some(stale) = lock_and_check(&mut tx, dialect, cap, &member, &checks, types).await?
        else {
            tx.rollback().await?;
            return Ok(conflict(
                "SET_MEMBER_MISSING",
                &format!("member `{key}` no longer exists for this tenant; no member was changed"),
                None,
            ));
        };
        if !stale.is_empty() {
            tx.rollback().await?;
            return Ok(conflict(
                "SET_DRIFT_CONFLICT",
                &format!(
                    "member `{key}` changed since the proposal ({}); no member was changed",
                    stale.join(", ")
                ),
                None,
            ));
        }
        members.push((key, member));
    }
    fault::point("set_locked");
    if let Some(stale) =
        super::dependencies::lock_and_check(&mut tx, engine, &job.dependencies, None).await?
    {
        tx.rollback().await?;
        return Ok(stale);
    }
    if let Some(outcome) = receipt_answer(&mut tx, lookup, dialect, cap, job, kind, types).await? {
        tx.rollback().await?;
        return Ok(outcome);
    }
    for (key, member) in &members {
        let affected =
            guarded_write(&mut tx, dialect, cap, member, NextVersion::Increment, types).await?;
        if affected != 1 {
            tx.rollback().await?;
            return Ok(conflict(
                "SET_DRIFT_CONFLICT",
                &format!(
                    "the guarded write of member `{key}` matched {affected} rows; no member was changed"
                ),
                None,
            ));
        }
    }
    commit_applied(
        tx,
        engine,
        &cap.target.schema,
        job,
        None,
        None,
        count as u64,
    )
    .await
}

/// The answer a receipt already in the source table gives for this job's
/// idempotency key, if there is one.
async fn receipt_answer(
    tx: &mut AnyConnection,
    lookup: &str,
    dialect: &WriteDialect<'_>,
    cap: &Capability,
    job: &WritebackJob,
    kind: NextVersion,
    types: &ColumnTypes,
) -> Result<Option<Outcome>, sqlx::Error> {
    let Some(row) = sqlx::query(sqlx::AssertSqlSafe(lookup.to_owned()))
        .bind(job.idempotency_key.clone())
        .fetch_optional(&mut *tx)
        .await?
    else {
        return Ok(None);
    };
    existing_receipt(tx, dialect, cap, job, &row, kind, types)
        .await
        .map(Some)
}

/// Lock one row (a delete only reads it: locking would need the UPDATE
/// privilege on Postgres; its own WHERE compares the exact version) and
/// run `checks` on it: `None` when the row is gone, else the labels of
/// the checks that no longer hold.
async fn lock_and_check(
    tx: &mut AnyConnection,
    dialect: &WriteDialect<'_>,
    cap: &Capability,
    cs: &airlock_policy::change_set::ChangeSet,
    checks: &[airlock_policy::statement::RowCheck],
    types: &ColumnTypes,
) -> Result<Option<Vec<String>>, sqlx::Error> {
    let lock = match cs.operation {
        OperationKind::Delete => freshness_probe(dialect, cap, cs, checks),
        _ => writeback_lock(dialect, cap, cs, checks),
    };
    let flags = check_flags(tx, dialect, &lock, checks.len(), types).await?;
    Ok(flags.map(|flags| {
        checks
            .iter()
            .zip(flags)
            .filter(|(_, f)| *f != 1)
            .map(|(c, _)| c.label.clone())
            .collect()
    }))
}

/// Re-read one row without a lock and judge `checks` against it: gone,
/// changed (the failed labels) or current.
async fn probe(
    conn: &mut AnyConnection,
    dialect: &WriteDialect<'_>,
    cap: &Capability,
    cs: &airlock_policy::change_set::ChangeSet,
    checks: &[airlock_policy::statement::RowCheck],
    types: &ColumnTypes,
) -> Result<RowFreshness, sqlx::Error> {
    let stmt = freshness_probe(dialect, cap, cs, checks);
    let flags = check_flags(conn, dialect, &stmt, checks.len(), types).await?;
    Ok(judge_freshness(checks, flags.as_deref()))
}

/// Run a statement that answers one `1`/`0` per check for one row (`None`:
/// no row).
async fn check_flags(
    conn: &mut AnyConnection,
    dialect: &WriteDialect<'_>,
    stmt: &airlock_policy::statement::BoundStatement,
    count: usize,
    types: &ColumnTypes,
) -> Result<Option<Vec<i64>>, sqlx::Error> {
    let row = sqlx::query_with(
        sqlx::AssertSqlSafe(stmt.sql.clone()),
        arguments(dialect.engine, stmt, types)?,
    )
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|r| (0..count).map(|i| int_at(&r, i)).collect()))
}

/// The guarded UPDATE or DELETE of one row; how many rows it touched.
async fn guarded_write(
    tx: &mut AnyConnection,
    dialect: &WriteDialect<'_>,
    cap: &Capability,
    cs: &airlock_policy::change_set::ChangeSet,
    next: NextVersion,
    types: &ColumnTypes,
) -> Result<u64, sqlx::Error> {
    let write = match cs.operation {
        OperationKind::Delete => writeback_delete(dialect, cap, cs),
        _ => writeback_update(dialect, cap, cs, next),
    };
    Ok(sqlx::query_with(
        sqlx::AssertSqlSafe(write.sql.clone()),
        arguments(dialect.engine, &write, types)?,
    )
    .execute(&mut *tx)
    .await?
    .rows_affected())
}

/// Record the source receipt in the change's transaction and commit it.
/// Synapsor Runner's seven columns; the versions, rows affected and
/// proposal hash are in the ledger's receipt. `result_hash` binds this job
/// to the version it wrote, so a later `already_applied` can tell whether
/// the row still holds it.
async fn commit_applied(
    mut tx: sqlx::Transaction<'_, sqlx::Any>,
    engine: Engine,
    schema: &str,
    job: &WritebackJob,
    previous_version: Option<Value>,
    new_version: Option<Value>,
    rows_affected: u64,
) -> Result<Outcome, sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(receipt_insert(engine, schema)))
        .bind(job.idempotency_key.clone())
        .bind(job.job_id.clone())
        .bind(job.proposal_id.clone())
        .bind(result_hash(&job.job_id, "applied", new_version.as_ref()))
        .execute(&mut *tx)
        .await?;
    fault::point("after_update_before_commit");
    tx.commit().await?;
    fault::point("after_commit_before_receipt");
    Ok(Outcome {
        status: ReceiptStatus::Applied,
        rows_affected,
        previous_version,
        new_version,
        source_database_mutated: true,
        safe_error_code: None,
        detail: None,
    })
}

/// The guarded INSERT: exactly one new row whose identity no row holds
/// yet (the source's unique constraint answers that, under its own lock),
/// then the receipt, in one transaction.
async fn insert_row(
    mut tx: sqlx::Transaction<'_, sqlx::Any>,
    dialect: &WriteDialect<'_>,
    cap: &Capability,
    job: &WritebackJob,
    types: &ColumnTypes,
) -> Result<Outcome, sqlx::Error> {
    let engine = dialect.engine;
    let insert = writeback_insert(dialect, cap, &job.change_set, &job.proposal_id);
    let result = sqlx::query_with(
        sqlx::AssertSqlSafe(insert.sql.clone()),
        arguments(engine, &insert, types)?,
    )
    .execute(&mut *tx)
    .await;
    let result = match result {
        Err(e)
            if e.as_database_error()
                .is_some_and(|d| d.is_unique_violation()) =>
        {
            tx.rollback().await?;
            return Ok(conflict(
                "DEDUP_CONFLICT",
                "a row with this proposal's identity already exists in the source (its unique constraint refused a second one); nothing was written",
                None,
            ));
        }
        other => other?,
    };
    if result.rows_affected() != 1 {
        tx.rollback().await?;
        return Ok(conflict(
            "INSERT_NOT_ONE_ROW",
            &format!(
                "the insert added {} rows; rolled back",
                result.rows_affected()
            ),
            None,
        ));
    }
    commit_applied(tx, engine, &cap.target.schema, job, None, None, 1).await
}

/// What a receipt row already in the table means for this apply, by its
/// `status` (as Synapsor Runner reads it): `applied` (or `already_applied`)
/// → the change was made; `conflict` and `failed` → a terminal answer
/// without writing; anything else (Synapsor Runner's `in_progress`…) → no
/// answer can be trusted, nothing is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExistingReceipt {
    Applied,
    Conflict,
    Failed(&'static str),
}

pub fn classify_existing(status: Option<&str>) -> ExistingReceipt {
    match status {
        Some("applied" | "already_applied") => ExistingReceipt::Applied,
        Some("conflict") => ExistingReceipt::Conflict,
        Some("failed") => ExistingReceipt::Failed("IDEMPOTENT_FAILED"),
        _ => ExistingReceipt::Failed("SOURCE_RECEIPT_UNAVAILABLE"),
    }
}

/// The answer for an idempotency key the receipt table already holds.
/// `previous_version` is the version the proposal was built on (the applied
/// write was guarded by it); `new_version` is the row's version now when the
/// row's `result_hash` shows this is the version the recorded job wrote, else
/// unknown (the row changed since, or another product wrote the receipt).
async fn existing_receipt(
    tx: &mut AnyConnection,
    dialect: &WriteDialect<'_>,
    cap: &Capability,
    job: &WritebackJob,
    row: &AnyRow,
    kind: NextVersion,
    types: &ColumnTypes,
) -> Result<Outcome, sqlx::Error> {
    let recorded_job: Option<String> = row.try_get(0)?;
    let status: Option<String> = row.try_get(1)?;
    let recorded_hash: Option<String> = row.try_get(2)?;
    let cs = &job.change_set;
    let previous_version = cs.guards.expected_version.as_ref().map(|v| v.value.clone());
    let shown: String = status
        .as_deref()
        .unwrap_or("NULL")
        .chars()
        .take(64)
        .collect();
    match classify_existing(status.as_deref()) {
        ExistingReceipt::Applied => {}
        ExistingReceipt::Conflict => {
            return Ok(conflict(
                "IDEMPOTENT_CONFLICT",
                "the source database's receipt for this idempotency key records a conflict; nothing was written",
                previous_version,
            ));
        }
        ExistingReceipt::Failed(code) => {
            return Ok(Outcome::failed(
                code,
                format!(
                    "the source database's receipt for this idempotency key has status `{shown}`, not applied; nothing was written. Fix: find out which process wrote it (column job_id) before removing it"
                ),
            ));
        }
    }
    let mut new_version = None;
    if let (Some(stmt), Some(recorded_job), Some(recorded_hash)) = (
        writeback_new_version(dialect, cap, cs),
        recorded_job,
        recorded_hash,
    ) {
        let current: Option<String> = sqlx::query_with(
            sqlx::AssertSqlSafe(stmt.sql.clone()),
            arguments(dialect.engine, &stmt, types)?,
        )
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| r.try_get::<Option<String>, _>(0))
        .transpose()?
        .flatten();
        let current = current.map(|t| version_value(t, kind));
        if current.is_some()
            && result_hash(&recorded_job, "applied", current.as_ref()) == recorded_hash
        {
            new_version = current;
        }
    }
    Ok(Outcome {
        status: ReceiptStatus::AlreadyApplied,
        rows_affected: 0,
        previous_version,
        new_version,
        source_database_mutated: false,
        safe_error_code: None,
        detail: Some("the source database already holds a receipt for this idempotency key".into()),
    })
}

/// A version read back as text, in the same form the proposer reads it:
/// integers as numbers, UTC timestamps ending in `Z`.
fn version_value(text: String, kind: NextVersion) -> Value {
    match kind {
        NextVersion::Increment => text.parse::<i64>().map_or(Value::String(text), Value::from),
        NextVersion::Database if text.parse::<i64>().is_ok() => {
            text.parse::<i64>().map_or(Value::String(text), Value::from)
        }
        NextVersion::Now | NextVersion::Database => {
            Value::String(match text.strip_suffix("+00:00") {
                Some(t) => format!("{t}Z"),
                None => text,
            })
        }
    }
}

fn conflict(code: &str, detail: &str, previous_version: Option<Value>) -> Outcome {
    Outcome {
        status: ReceiptStatus::Conflict,
        rows_affected: 0,
        previous_version,
        new_version: None,
        source_database_mutated: false,
        safe_error_code: Some(code.to_owned()),
        detail: Some(detail.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_existing_receipt_is_read_by_its_status() {
        assert_eq!(classify_existing(Some("applied")), ExistingReceipt::Applied);
        assert_eq!(
            classify_existing(Some("already_applied")),
            ExistingReceipt::Applied
        );
        assert_eq!(
            classify_existing(Some("conflict")),
            ExistingReceipt::Conflict
        );
        assert_eq!(
            classify_existing(Some("failed")),
            ExistingReceipt::Failed("IDEMPOTENT_FAILED")
        );
        for other in [Some("in_progress"), Some("APPLIED"), Some(""), None] {
            assert_eq!(
                classify_existing(other),
                ExistingReceipt::Failed("SOURCE_RECEIPT_UNAVAILABLE"),
                "{other:?}"
            );
        }
    }
}
