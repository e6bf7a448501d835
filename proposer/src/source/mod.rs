//! Read adapters: one small, lazily connecting, read-only pool per source.
//!
//! Every read is a statement built by `airlock_policy::statement` with its
//! values bound as parameters (never formatted into SQL), run under a
//! per-source statement timeout on a session that the database itself keeps
//! read-only (defence in depth: the credential should be read-only too):
//!
//! | engine   | read-only session                                  | statement timeout                                        |
//! |----------|----------------------------------------------------|----------------------------------------------------------|
//! | Postgres | `default_transaction_read_only=on` (startup option) | `statement_timeout` (startup option)                     |
//! | MySQL    | `SET SESSION TRANSACTION READ ONLY`                | `max_execution_time` (ms)                                |
//! | MariaDB  | `SET SESSION TRANSACTION READ ONLY`                | `max_statement_time` (seconds)                           |
//! | SQLite   | opened read-only, `PRAGMA query_only`, never created | `busy_timeout`                                          |
//!
//! plus a client-side limit of the statement timeout + 500 ms on every query.
//! MySQL/MariaDB sessions use `time_zone = '+00:00'`, Postgres sessions
//! `TimeZone=UTC` (a startup option).
//!
//! ## Values as JSON
//!
//! | database type                                   | JSON                                                      |
//! |-------------------------------------------------|-----------------------------------------------------------|
//! | NULL (any type; MySQL zero dates too)           | `null`                                                    |
//! | int2/int4/int8, oid; MySQL TINYINT…BIGINT (also UNSIGNED), YEAR, BIT; SQLite INTEGER | integer                |
//! | MySQL BOOLEAN (= TINYINT(1))                    | integer (`0`/`1`; the column can hold other values)       |
//! | Postgres bool                                   | `true`/`false`                                            |
//! | NUMERIC / DECIMAL                               | exact decimal string with the column's scale (`"12.50"`)  |
//! | real/float4, double/float8, FLOAT, DOUBLE, SQLite REAL | number (`float4`/FLOAT by shortest decimal: `0.1`); NaN/±inf → `"NaN"`, `"Infinity"`, `"-Infinity"`; Postgres numeric NaN/±inf likewise |
//! | text, varchar, char(n) (Postgres keeps the padding), name, citext, xml, enums; MySQL CHAR/VARCHAR/TEXT/ENUM/SET (non-binary collation); SQLite TEXT | string |
//! | Postgres `"char"`                               | one-character string                                      |
//! | timestamptz                                     | `"2026-06-20T14:31:08Z"` (UTC, fraction only as needed)   |
//! | Postgres timestamp (no zone)                    | `"2026-06-20T14:31:08.5"` (no `Z`)                        |
//! | MySQL TIMESTAMP (read in a UTC session)         | `"2026-06-20T14:31:08Z"`                                  |
//! | MySQL DATETIME (wall clock, no zone)            | `"2026-06-20T14:31:08"` (no `Z`)                          |
//! | date / DATE                                     | `"2026-06-20"`; Postgres ±infinity → `"infinity"`, `"-infinity"` |
//! | time / TIME                                     | `"09:05:00"`, `"09:05:00.25"`; MySQL may be negative or ≥ 24 h (`"-01:30:00"`) |
//! | timetz                                          | `"09:05:00+02:00"`                                        |
//! | interval                                        | ISO 8601 duration as Postgres' `iso_8601` style (`"P1Y2M3DT4H5M6.5S"`) |
//! | uuid                                            | lowercase hyphenated string                               |
//! | json/jsonb; MySQL JSON                          | the JSON value itself                                     |
//! | MariaDB JSON (an alias of LONGTEXT)             | string (the JSON text as stored)                          |
//! | bytea; MySQL BINARY/VARBINARY/BLOB (binary collation); SQLite BLOB | base64 string (RFC 4648, padded)       |
//! | inet/cidr, macaddr, bit/varbit                  | string (`"192.168.0.1/24"`, `"08:00:2b:01:02:03"`, `"0101"`) |
//! | Postgres arrays (any supported element type)    | JSON array, nested per dimension                          |
//! | anything else (money, ranges, composites, geometry…) | MySQL: string if it decodes as text; otherwise a `Decode` error naming the column and type |
//!
//! SQLite is dynamically typed: each value is mapped by its storage class
//! (INTEGER → integer, REAL → number, TEXT → string, BLOB → base64,
//! NULL → null), whatever the column's declared type.
//!
//! ## Binding
//!
//! The primary key is bound by its JSON type (string → text, integer → i64
//! (u64 above i64), other number → f64) and the tenant as text, in the order
//! of `statement.params`. On Postgres, whose operators are strictly typed,
//! the statement is prepared first and the key is converted to the parameter
//! type the server inferred from the key column (so a string id can look up
//! a `uuid` or `bigint` key); a key that cannot be a value of that type
//! (`"abc"` for a `bigint` key) matches no row and returns no rows without a
//! query.
//!
//! A list read's page binds the values `airlock_policy::list_read::page_query`
//! prepared (strings and numbers), in order ([`SourcePool::fetch_values`]).
//! Its filters cast their values in the SQL where the type matters; its
//! cursor values are compared with their own columns, so on Postgres a
//! `date`, `timestamp`, `timestamptz` or `bool` parameter is converted from
//! the text the decoder wrote (and one that cannot be, such as `infinity`,
//! fails the read rather than match nothing).

mod decode;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use airlock_policy::config::Engine;
use airlock_policy::db_error::{Misconfiguration, classify};
use airlock_policy::secrets::{redact, url_password};
use airlock_policy::statement::{LookupParam, Statement};
use serde_json::{Map, Value};
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlDatabaseError};
use sqlx::pool::{PoolConnection, PoolOptions};
use sqlx::postgres::{PgConnectOptions, PgTypeInfo, PgTypeKind};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::types::{BigDecimal, Uuid};
use sqlx::{
    AssertSqlSafe, ConnectOptions, Connection, Database, Either, Executor, MySql, Pool, Postgres,
    Row, Sqlite, Statement as _, TypeInfo,
};

use decode::DecodeFailure;

/// Connections per source: reads are single short statements.
const MAX_CONNECTIONS: u32 = 4;
/// How much longer than the statement timeout a caller waits for a connection.
const ACQUIRE_MARGIN: Duration = Duration::from_secs(2);
/// The client-side limit's margin over the server's own statement timeout,
/// so the server's (clearer) error normally wins.
const QUERY_MARGIN: Duration = Duration::from_millis(500);
/// How long a failed connection gets to explain itself.
const DIAGNOSE_TIMEOUT: Duration = Duration::from_secs(3);
const APPLICATION_NAME: &str = "airlock-proposer";

/// Why a read failed. The messages never contain the URL or its password
/// and end with what to do.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The read URL could not be parsed, or names another engine.
    #[error(
        "the {engine} source's read URL is not usable: {reason}; fix the URL in the environment variable named by the source's `read_url_env`"
    )]
    Url {
        engine: &'static str,
        reason: String,
    },

    /// No connection could be opened (or kept).
    #[error("could not connect to the {engine} source: {detail}; {hint}")]
    Connect {
        engine: &'static str,
        detail: String,
        hint: &'static str,
    },

    /// The statement (or the wait for a free connection) took too long.
    #[error(
        "the {engine} source did not answer within {limit_ms} ms ({what}); try again, or raise the source's `statement_timeout_ms` if the read is legitimately slow"
    )]
    Timeout {
        engine: &'static str,
        what: &'static str,
        limit_ms: u64,
    },

    /// The database refused or failed the statement.
    #[error("the {engine} source refused the read: {detail}; {hint}")]
    Query {
        engine: &'static str,
        detail: String,
        hint: &'static str,
    },

    /// The statement names a table or column the database does not have, or
    /// the read credential may not read it: no retry can fix it.
    #[error("the {engine} source cannot serve this read ({}): {detail}; {hint}", what.describe())]
    Misconfigured {
        engine: &'static str,
        what: Misconfiguration,
        detail: String,
        hint: &'static str,
    },

    /// A value could not be turned into JSON.
    #[error(
        "cannot read column `{column}` (type {type_name}): {detail}; expose it through a view that casts it (for example to text), or leave it out of `visible_columns`"
    )]
    Decode {
        column: String,
        type_name: String,
        detail: String,
    },

    /// The caller passed arguments the statement cannot use (a bug in the
    /// caller, not in the model's input: arguments are validated first).
    #[error("invalid lookup arguments: {detail}")]
    InvalidArgument { detail: String },
}

impl SourceError {
    /// True for [`SourceError::Timeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, SourceError::Timeout { .. })
    }
}

impl From<DecodeFailure> for SourceError {
    fn from(f: DecodeFailure) -> Self {
        SourceError::Decode {
            column: f.column,
            type_name: f.type_name,
            detail: f.detail,
        }
    }
}

/// A read-only connection pool for one configured source. Cheap to clone.
#[derive(Clone)]
pub struct SourcePool {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    pool: EnginePool,
    statement_timeout_ms: u64,
    scrub: Scrubber,
    /// At most one out-of-pool diagnostic connection at a time: under load,
    /// every timed-out waiter opening its own would exhaust the server.
    diagnosing: tokio::sync::Mutex<()>,
}

enum EnginePool {
    Postgres(Pool<Postgres>),
    Mysql(Pool<MySql>),
    Sqlite(Pool<Sqlite>),
}

impl fmt::Debug for SourcePool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourcePool")
            .field("engine", &self.inner.engine.as_str())
            .field("statement_timeout_ms", &self.inner.statement_timeout_ms)
            .finish_non_exhaustive()
    }
}

/// A bound value, in statement order.
#[derive(Debug, Clone)]
enum Bind {
    Text(String),
    Int(i64),
    UInt(u64),
    Float(f64),
}

impl Bind {
    fn from_key(v: &Value) -> Option<Bind> {
        match v {
            Value::String(s) => Some(Bind::Text(s.clone())),
            Value::Number(n) => n
                .as_i64()
                .map(Bind::Int)
                .or_else(|| n.as_u64().map(Bind::UInt))
                .or_else(|| n.as_f64().map(Bind::Float)),
            _ => None,
        }
    }

    fn as_text(&self) -> String {
        match self {
            Bind::Text(s) => s.clone(),
            Bind::Int(i) => i.to_string(),
            Bind::UInt(u) => u.to_string(),
            Bind::Float(f) => f.to_string(),
        }
    }

    fn as_i64(&self) -> Option<i64> {
        match self {
            Bind::Text(s) => s.trim().parse().ok(),
            Bind::Int(i) => Some(*i),
            Bind::UInt(u) => i64::try_from(*u).ok(),
            Bind::Float(f) => {
                let whole = f.fract() == 0.0 && *f >= i64::MIN as f64 && *f < i64::MAX as f64;
                whole.then_some(*f as i64)
            }
        }
    }

    fn as_f64(&self) -> Option<f64> {
        match self {
            Bind::Text(s) => s.trim().parse().ok(),
            Bind::Int(i) => Some(*i as f64),
            Bind::UInt(u) => Some(*u as f64),
            Bind::Float(f) => Some(*f),
        }
    }
}

/// Why a statement run failed before decoding.
enum RunFailure {
    Sql(sqlx::Error),
    Params(String),
}

impl From<sqlx::Error> for RunFailure {
    fn from(e: sqlx::Error) -> Self {
        RunFailure::Sql(e)
    }
}

/// What a run produced: rows, or the knowledge that no row can match.
enum Fetched<R> {
    Rows(Vec<R>),
    NoMatch,
}

/// A source's parsed connection options: what [`SourcePool::connect_lazy`]
/// builds a pool from. Parsing needs no runtime and may read files (sqlx
/// reads `~/.pgpass` and the user database for Postgres defaults), so the
/// proposer parses before its file sandbox goes on and builds the pools
/// afterwards, inside the runtime.
pub struct SourceOptions {
    engine: Engine,
    options: EngineOptions,
    statement_timeout_ms: u64,
    scrub: Scrubber,
}

enum EngineOptions {
    Postgres(PgConnectOptions),
    Mysql(MySqlConnectOptions),
    Sqlite(SqliteConnectOptions),
}

impl fmt::Debug for SourceOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceOptions")
            .field("engine", &self.engine.as_str())
            .field("statement_timeout_ms", &self.statement_timeout_ms)
            .finish_non_exhaustive()
    }
}

impl SourceOptions {
    /// Parse `url` for `engine` (no connection is opened).
    pub fn parse(
        engine: Engine,
        url: &str,
        statement_timeout_ms: u64,
    ) -> Result<SourceOptions, SourceError> {
        let scrub = Scrubber::for_url(url);
        let name = engine.as_str();
        let url_error = |reason: String| SourceError::Url {
            engine: name,
            reason: scrub.scrub(&reason),
        };
        let options = match engine {
            Engine::Postgres => {
                if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                    return Err(url_error(
                        "a postgres source needs a postgres:// or postgresql:// URL".to_owned(),
                    ));
                }
                EngineOptions::Postgres(
                    PgConnectOptions::from_str(url).map_err(|e| url_error(config_reason(&e)))?,
                )
            }
            Engine::Mysql => {
                if !(url.starts_with("mysql://") || url.starts_with("mariadb://")) {
                    return Err(url_error(
                        "a mysql source needs a mysql:// or mariadb:// URL".to_owned(),
                    ));
                }
                EngineOptions::Mysql(
                    MySqlConnectOptions::from_str(url)
                        .map_err(|e| url_error(config_reason(&e)))?
                        .timezone(Some("+00:00".to_owned())),
                )
            }
            Engine::Sqlite => EngineOptions::Sqlite(if url.starts_with("sqlite:") {
                SqliteConnectOptions::from_str(url).map_err(|e| url_error(config_reason(&e)))?
            } else {
                SqliteConnectOptions::new().filename(url)
            }),
        };
        Ok(SourceOptions {
            engine,
            options,
            statement_timeout_ms,
            scrub,
        })
    }

    /// The database file a SQLite source opens (as configured: possibly
    /// relative to the working directory). `None` for other engines and for
    /// in-memory databases (`:memory:`, `mode=memory`, `file:` names).
    pub fn sqlite_file(&self) -> Option<&std::path::Path> {
        let EngineOptions::Sqlite(opts) = &self.options else {
            return None;
        };
        let path = opts.get_filename();
        let shown = path.to_string_lossy();
        // sqlx names `:memory:` databases `file:sqlx-in-memory-N`; it does
        // not expose `mode=memory`, which the Debug form shows.
        let in_memory = shown == ":memory:"
            || shown.starts_with("file:")
            || format!("{opts:?}").contains("in_memory: true");
        (!in_memory).then_some(path)
    }

    /// Build a lazily-connecting pool (no connection is opened until first
    /// use). Must be called inside a Tokio runtime (the pool's maintenance
    /// task is spawned on it).
    pub fn connect_lazy(self) -> Result<SourcePool, SourceError> {
        let SourceOptions {
            engine,
            options,
            statement_timeout_ms,
            scrub,
        } = self;
        let ms = statement_timeout_ms.max(1);
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(SourceError::Connect {
                engine: engine.as_str(),
                detail: "no async runtime is running".to_owned(),
                hint: "create source pools from inside the proposer's Tokio runtime",
            });
        }
        let acquire = Duration::from_millis(ms) + ACQUIRE_MARGIN;
        let pool = match options {
            EngineOptions::Postgres(opts) => EnginePool::Postgres(
                pool_options::<Postgres>(acquire).connect_lazy_with(pg_session(opts, ms)),
            ),
            EngineOptions::Mysql(opts) => EnginePool::Mysql(
                pool_options::<MySql>(acquire)
                    .after_connect(move |conn, _meta| Box::pin(mysql_session(conn, ms)))
                    .connect_lazy_with(opts),
            ),
            EngineOptions::Sqlite(opts) => EnginePool::Sqlite(
                pool_options::<Sqlite>(acquire).connect_lazy_with(sqlite_session(opts, ms)),
            ),
        };
        Ok(SourcePool {
            inner: Arc::new(Inner {
                engine,
                pool,
                statement_timeout_ms: ms,
                scrub,
                diagnosing: tokio::sync::Mutex::new(()),
            }),
        })
    }
}

impl SourcePool {
    /// Build a lazily-connecting pool (no connection is opened until first
    /// use). Must be called inside a Tokio runtime (the pool's maintenance
    /// task is spawned on it).
    pub fn connect_lazy(
        engine: Engine,
        url: &str,
        statement_timeout_ms: u64,
    ) -> Result<SourcePool, SourceError> {
        // `SourceOptions::connect_lazy` refuses to run outside a runtime.
        SourceOptions::parse(engine, url, statement_timeout_ms)?.connect_lazy()
    }

    /// The source's engine.
    pub fn engine(&self) -> Engine {
        self.inner.engine
    }

    /// Run `statement` with `primary_key` (a JSON scalar from the validated
    /// args: string, integer or number) and `tenant` bound in the order of
    /// `statement.params`; return each row as a JSON object of column name →
    /// typed JSON value (at most `max_rows`).
    pub async fn fetch_rows(
        &self,
        statement: &Statement,
        primary_key: &Value,
        tenant: Option<&str>,
        max_rows: usize,
    ) -> Result<Vec<Map<String, Value>>, SourceError> {
        self.fetch_scoped_rows(statement, primary_key, tenant, None, max_rows)
            .await
    }

    /// [`Self::fetch_rows`], also binding the trusted `principal` where the
    /// statement has a principal-scope parameter.
    pub async fn fetch_scoped_rows(
        &self,
        statement: &Statement,
        primary_key: &Value,
        tenant: Option<&str>,
        principal: Option<&str>,
        max_rows: usize,
    ) -> Result<Vec<Map<String, Value>>, SourceError> {
        let binds = scoped_lookup_binds(statement, primary_key, tenant, principal, None)?;
        self.fetch_bound(statement, &binds, max_rows).await
    }

    /// The rows a bounded set's reviewed selection matches: `statement` is
    /// [`airlock_policy::statement::select_set`], bound with the set's
    /// reviewed values and the trusted tenant and principal.
    pub async fn fetch_set_rows(
        &self,
        statement: &Statement,
        set: &airlock_policy::config::SetSpec,
        tenant: Option<&str>,
        principal: Option<&str>,
        max_rows: usize,
    ) -> Result<Vec<Map<String, Value>>, SourceError> {
        let binds = scoped_lookup_binds(statement, &Value::Null, tenant, principal, Some(set))?;
        self.fetch_bound(statement, &binds, max_rows).await
    }

    /// Run `sql` with `values` (JSON strings and numbers) bound in order;
    /// at most `max_rows` rows. The statements are `policy`'s: a Scoped
    /// Explore plan's (`explore::compile`) or a list read's page
    /// (`list_read::page_query`).
    pub async fn fetch_values(
        &self,
        sql: &str,
        values: &[Value],
        max_rows: usize,
    ) -> Result<Vec<Map<String, Value>>, SourceError> {
        let binds = values
            .iter()
            .map(|v| {
                Bind::from_key(v).ok_or_else(|| SourceError::InvalidArgument {
                    detail: "a bound value must be a JSON string or number".to_owned(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.fetch_sql(sql, &binds, max_rows).await
    }

    /// The rows of an aggregate read: `statement` is
    /// [`airlock_policy::aggregate_read::statement`], bound with the
    /// reviewed selection values and the trusted tenant and principal.
    pub async fn fetch_aggregate_rows(
        &self,
        statement: &Statement,
        selection: &[airlock_policy::config::SelectionTerm],
        tenant: Option<&str>,
        principal: Option<&str>,
        max_rows: usize,
    ) -> Result<Vec<Map<String, Value>>, SourceError> {
        // Bound exactly like a bounded set's selection terms.
        let terms = airlock_policy::config::SetSpec {
            selection: selection.to_vec(),
            keys: Vec::new(),
            max_rows: 0,
            aggregate_bounds: Vec::new(),
        };
        let binds = scoped_lookup_binds(statement, &Value::Null, tenant, principal, Some(&terms))?;
        self.fetch_bound(statement, &binds, max_rows).await
    }

    async fn fetch_bound(
        &self,
        statement: &Statement,
        binds: &[Bind],
        max_rows: usize,
    ) -> Result<Vec<Map<String, Value>>, SourceError> {
        self.fetch_sql(&statement.sql, binds, max_rows).await
    }

    async fn fetch_sql(
        &self,
        sql: &str,
        binds: &[Bind],
        max_rows: usize,
    ) -> Result<Vec<Map<String, Value>>, SourceError> {
        use tracing::Instrument as _;
        // One span per statement (engine only: never the SQL's values).
        let span = tracing::debug_span!(
            target: crate::telemetry::TARGET,
            "db.query",
            db.system = engine_label(self.inner.engine),
            otel.kind = "client"
        );
        self.fetch_sql_inner(sql, binds, max_rows)
            .instrument(span)
            .await
    }

    async fn fetch_sql_inner(
        &self,
        sql: &str,
        binds: &[Bind],
        max_rows: usize,
    ) -> Result<Vec<Map<String, Value>>, SourceError> {
        let lookup = Lookup { sql, binds };
        let mut rows = match &self.inner.pool {
            EnginePool::Postgres(pool) => match self.run(pool, &lookup).await? {
                Fetched::NoMatch => Vec::new(),
                Fetched::Rows(rows) => rows
                    .iter()
                    .take(max_rows)
                    .map(decode::pg_row)
                    .collect::<Result<_, _>>()?,
            },
            EnginePool::Mysql(pool) => match self.run(pool, &lookup).await? {
                Fetched::NoMatch => Vec::new(),
                Fetched::Rows(rows) => rows
                    .iter()
                    .take(max_rows)
                    .map(decode::mysql_row)
                    .collect::<Result<_, _>>()?,
            },
            EnginePool::Sqlite(pool) => match self.run(pool, &lookup).await? {
                Fetched::NoMatch => Vec::new(),
                Fetched::Rows(rows) => rows
                    .iter()
                    .take(max_rows)
                    .map(decode::sqlite_row)
                    .collect::<Result<_, _>>()?,
            },
        };
        rows.truncate(max_rows);
        Ok(rows)
    }

    /// The columns of `schema.table` as the catalog lists them (metadata
    /// only: `airlock_policy::catalog_sql`), in the table's order; empty
    /// when the table does not exist or this credential cannot see it. Used
    /// at start to check the config's schema lock.
    pub async fn table_columns(
        &self,
        schema: &str,
        table: &str,
    ) -> Result<Vec<airlock_policy::schema_info::ColumnInfo>, SourceError> {
        let q = airlock_policy::catalog_sql::columns_query(self.inner.engine);
        let lookup = CatalogLookup {
            sql: q.sql,
            binds: q
                .bind_values(schema, table)
                .into_iter()
                .map(str::to_owned)
                .collect(),
        };
        let texts: Vec<[String; 3]> = match &self.inner.pool {
            EnginePool::Postgres(pool) => catalog_texts(self.run(pool, &lookup).await?)?,
            EnginePool::Mysql(pool) => catalog_texts(self.run(pool, &lookup).await?)?,
            EnginePool::Sqlite(pool) => catalog_texts(self.run(pool, &lookup).await?)?,
        };
        texts
            .iter()
            .map(|[name, ty, nullable]| {
                airlock_policy::catalog_sql::column_from_row(name, ty, nullable).map_err(|detail| {
                    SourceError::Query {
                        engine: self.inner.engine.as_str(),
                        detail,
                        hint: "the catalog answered an unexpected shape; report this",
                    }
                })
            })
            .collect()
    }

    /// Open one connection now (used right before the sandbox is installed,
    /// and by `doctor`). On failure the error says why the server could not
    /// be reached.
    pub async fn warm_up(&self) -> Result<(), SourceError> {
        match &self.inner.pool {
            EnginePool::Postgres(pool) => self.acquire(pool).await.map(drop),
            EnginePool::Mysql(pool) => self.acquire(pool).await.map(drop),
            EnginePool::Sqlite(pool) => self.acquire(pool).await.map(drop),
        }
    }

    /// Acquire a connection and run `f` on it under the client-side
    /// statement limit. A connection that failed at the transport level is
    /// discarded and the read retried once on a fresh one (reads are
    /// idempotent; a server restart must not wedge the pool).
    async fn run<DB, L>(&self, pool: &Pool<DB>, lookup: &L) -> Result<Fetched<L::Row>, SourceError>
    where
        DB: Database,
        L: Fetch<DB>,
    {
        let limit = Duration::from_millis(self.inner.statement_timeout_ms) + QUERY_MARGIN;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let mut conn = self.acquire(pool).await?;
            let outcome = tokio::time::timeout(limit, lookup.fetch(&mut *conn)).await;
            match outcome {
                Ok(Ok(fetched)) => return Ok(fetched),
                Ok(Err(RunFailure::Sql(e))) => {
                    let transport = matches!(
                        e,
                        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::Tls(_)
                    );
                    if transport {
                        conn.close_on_drop();
                        if attempts < 2 {
                            continue;
                        }
                    }
                    return Err(self.query_error(e));
                }
                Ok(Err(RunFailure::Params(detail))) => {
                    return Err(SourceError::Query {
                        engine: self.inner.engine.as_str(),
                        detail: self.inner.scrub.scrub(&detail),
                        hint: "check that the capability's primary key and tenant key columns exist and have ordinary types",
                    });
                }
                Err(_) => {
                    // The connection is mid-statement: never reuse it.
                    conn.close_on_drop();
                    return Err(self.timeout("the statement timeout"));
                }
            }
        }
    }

    async fn acquire<DB: Database>(
        &self,
        pool: &Pool<DB>,
    ) -> Result<PoolConnection<DB>, SourceError> {
        match pool.acquire().await {
            Ok(conn) => Ok(conn),
            Err(sqlx::Error::PoolTimedOut) => {
                // Connections exist, so the server is reachable: this is contention.
                if pool.size() > 0 {
                    return Err(self.timeout("waiting for a free connection"));
                }
                let Ok(_one_at_a_time) = self.inner.diagnosing.try_lock() else {
                    return Err(self.timeout("waiting for a connection"));
                };
                match self.diagnose().await {
                    Some(e) => Err(self.connect_error(e)),
                    None => Err(SourceError::Connect {
                        engine: self.inner.engine.as_str(),
                        detail: format!(
                            "no connection within {} ms",
                            (Duration::from_millis(self.inner.statement_timeout_ms)
                                + ACQUIRE_MARGIN)
                                .as_millis()
                        ),
                        hint: "the server may be overloaded or intermittently unreachable; try again",
                    }),
                }
            }
            Err(e) => Err(self.connect_error(e)),
        }
    }

    /// After a pool timeout (sqlx retries refused connections until then),
    /// open one connection directly to learn the underlying error.
    async fn diagnose(&self) -> Option<sqlx::Error> {
        let attempt = async {
            match &self.inner.pool {
                EnginePool::Postgres(p) => p.connect_options().connect().await.map(drop),
                EnginePool::Mysql(p) => {
                    let mut conn = p.connect_options().connect().await?;
                    mysql_session(&mut conn, self.inner.statement_timeout_ms).await?;
                    conn.close().await
                }
                EnginePool::Sqlite(p) => p.connect_options().connect().await.map(drop),
            }
        };
        match tokio::time::timeout(DIAGNOSE_TIMEOUT, attempt).await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(_) => Some(sqlx::Error::PoolTimedOut),
        }
    }

    fn timeout(&self, what: &'static str) -> SourceError {
        SourceError::Timeout {
            engine: self.inner.engine.as_str(),
            what,
            limit_ms: self.inner.statement_timeout_ms,
        }
    }

    fn connect_error(&self, e: sqlx::Error) -> SourceError {
        let engine = self.inner.engine.as_str();
        let scrub = &self.inner.scrub;
        let (detail, hint) = match &e {
            sqlx::Error::Configuration(_) => {
                return SourceError::Url {
                    engine,
                    reason: scrub.scrub(&config_reason(&e)),
                };
            }
            sqlx::Error::Database(db) => {
                let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                let number = db
                    .try_downcast_ref::<MySqlDatabaseError>()
                    .map(MySqlDatabaseError::number);
                let hint = match (self.inner.engine, code.as_str(), number) {
                    // MariaDB answers an unknown user with 1045 or, depending on the
                    // authentication exchange, 1698 (no "using password").
                    (Engine::Postgres, "28P01" | "28000", _)
                    | (Engine::Mysql, _, Some(1045 | 1698)) => {
                        "check the user name and password in the read URL"
                    }
                    (Engine::Postgres, "3D000", _) | (Engine::Mysql, _, Some(1049)) => {
                        "check the database name in the read URL"
                    }
                    (Engine::Sqlite, _, _) => {
                        "the SQLite file must already exist and be readable: Airlock opens it read-only and never creates it"
                    }
                    _ => "check the read URL and that the server accepts this user",
                };
                (db_detail(db.as_ref(), scrub), hint)
            }
            sqlx::Error::Io(io) => {
                let hint = match io.kind() {
                    std::io::ErrorKind::ConnectionRefused => {
                        "is the server running and listening at the host and port in the read URL?"
                    }
                    _ => "check the host and port in the read URL and that the server is reachable",
                };
                (scrub.scrub(&io.to_string()), hint)
            }
            sqlx::Error::Tls(t) => (
                scrub.scrub(&format!("TLS failed: {t}")),
                "check the URL's sslmode / ssl-mode and the server's certificate",
            ),
            sqlx::Error::PoolTimedOut => (
                format!("no answer within {} ms", DIAGNOSE_TIMEOUT.as_millis()),
                "check the host and port in the read URL and that the server is reachable",
            ),
            other => (
                scrub.scrub(&other.to_string()),
                "check the read URL and that the server is reachable",
            ),
        };
        SourceError::Connect {
            engine,
            detail,
            hint,
        }
    }

    fn query_error(&self, e: sqlx::Error) -> SourceError {
        let engine = self.inner.engine;
        let scrub = &self.inner.scrub;
        match &e {
            sqlx::Error::Database(db) => {
                let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                let number = db
                    .try_downcast_ref::<MySqlDatabaseError>()
                    .map(MySqlDatabaseError::number);
                let sqlite_primary = code.parse::<i64>().ok().map(|c| c & 0xff);
                // Server-side statement timeouts.
                let timed_out = match engine {
                    Engine::Postgres => code == "57014",
                    Engine::Mysql => matches!(number, Some(1969 | 3024)),
                    Engine::Sqlite => matches!(sqlite_primary, Some(5 | 6)),
                };
                if timed_out {
                    return self.timeout("the statement timeout");
                }
                if let Some(what) = classify(engine, Some(code.as_str()), number, db.message()) {
                    return SourceError::Misconfigured {
                        engine: engine.as_str(),
                        what,
                        detail: db_detail(db.as_ref(), scrub),
                        hint: match what {
                            Misconfiguration::PermissionDenied => {
                                "grant the read credential SELECT on the capability's table and columns; `airlock doctor` names them"
                            }
                            _ => {
                                "check that the schema, table and columns named in the config exist; `airlock doctor` names the missing one"
                            }
                        },
                    };
                }
                let hint = match (engine, code.as_str(), number, sqlite_primary) {
                    (Engine::Postgres, "25006", _, _)
                    | (Engine::Mysql, _, Some(1792), _)
                    | (Engine::Sqlite, _, _, Some(8)) => {
                        "the read session is read-only; Airlock's reads never write"
                    }
                    (Engine::Mysql, _, Some(1049), _) => {
                        "check that the schema, table and columns named in the config exist"
                    }
                    (Engine::Sqlite, _, _, Some(1)) => {
                        "check that the table and columns named in the config exist"
                    }
                    (Engine::Postgres, "42883" | "42804", _, _) => {
                        "the lookup argument's type does not fit the primary key column; check the capability's args"
                    }
                    _ => "check the capability's target against the database",
                };
                SourceError::Query {
                    engine: engine.as_str(),
                    detail: db_detail(db.as_ref(), scrub),
                    hint,
                }
            }
            sqlx::Error::Io(io) => SourceError::Connect {
                engine: engine.as_str(),
                detail: scrub.scrub(&format!("the connection was lost: {io}")),
                hint: "try again; the next read opens a new connection",
            },
            sqlx::Error::Tls(t) => SourceError::Connect {
                engine: engine.as_str(),
                detail: scrub.scrub(&format!("TLS failed: {t}")),
                hint: "try again; the next read opens a new connection",
            },
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => SourceError::Connect {
                engine: engine.as_str(),
                detail: "no connection available".to_owned(),
                hint: "try again",
            },
            other => SourceError::Query {
                engine: engine.as_str(),
                detail: scrub.scrub(&other.to_string()),
                hint: "check the capability's target against the database",
            },
        }
    }
}

type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// One lookup (SQL and values in order), runnable on each engine.
struct Lookup<'a> {
    sql: &'a str,
    binds: &'a [Bind],
}

/// Run a lookup on one connection of engine `DB`.
trait Fetch<DB: Database>: Sync {
    type Row: Send;
    fn fetch<'c>(
        &'c self,
        conn: &'c mut DB::Connection,
    ) -> BoxFuture<'c, Result<Fetched<Self::Row>, RunFailure>>;
}

impl Fetch<Postgres> for Lookup<'_> {
    type Row = sqlx::postgres::PgRow;
    fn fetch<'c>(
        &'c self,
        conn: &'c mut sqlx::PgConnection,
    ) -> BoxFuture<'c, Result<Fetched<Self::Row>, RunFailure>> {
        Box::pin(pg_fetch(conn, self.sql, self.binds))
    }
}

impl Fetch<MySql> for Lookup<'_> {
    type Row = sqlx::mysql::MySqlRow;
    fn fetch<'c>(
        &'c self,
        conn: &'c mut MySqlConnection,
    ) -> BoxFuture<'c, Result<Fetched<Self::Row>, RunFailure>> {
        Box::pin(async move {
            // MySQL compares loosely typed values: bind them as they are.
            let mut q = sqlx::query::<MySql>(AssertSqlSafe(self.sql.to_owned()));
            for b in self.binds {
                q = match b {
                    Bind::Text(s) => q.bind(s.clone()),
                    Bind::Int(i) => q.bind(*i),
                    Bind::UInt(u) => q.bind(*u),
                    Bind::Float(f) => q.bind(*f),
                };
            }
            Ok(Fetched::Rows(q.fetch_all(&mut *conn).await?))
        })
    }
}

impl Fetch<Sqlite> for Lookup<'_> {
    type Row = sqlx::sqlite::SqliteRow;
    fn fetch<'c>(
        &'c self,
        conn: &'c mut sqlx::SqliteConnection,
    ) -> BoxFuture<'c, Result<Fetched<Self::Row>, RunFailure>> {
        Box::pin(async move {
            // SQLite applies column affinity to compared values: bind as is.
            let mut q = sqlx::query::<Sqlite>(AssertSqlSafe(self.sql.to_owned()));
            for b in self.binds {
                q = match b {
                    Bind::Text(s) => q.bind(s.clone()),
                    Bind::Int(i) => q.bind(*i),
                    // SQLite integers are i64; a larger key can only be a REAL.
                    Bind::UInt(u) => q.bind(*u as f64),
                    Bind::Float(f) => q.bind(*f),
                };
            }
            Ok(Fetched::Rows(q.fetch_all(&mut *conn).await?))
        })
    }
}

/// A catalog query: text parameters only, on every engine.
struct CatalogLookup {
    sql: &'static str,
    binds: Vec<String>,
}

macro_rules! catalog_fetch {
    ($db:ty, $conn:ty) => {
        impl Fetch<$db> for CatalogLookup {
            type Row = <$db as Database>::Row;
            fn fetch<'c>(
                &'c self,
                conn: &'c mut $conn,
            ) -> BoxFuture<'c, Result<Fetched<Self::Row>, RunFailure>> {
                Box::pin(async move {
                    let mut q = sqlx::query::<$db>(self.sql);
                    for b in &self.binds {
                        q = q.bind(b.clone());
                    }
                    Ok(Fetched::Rows(q.fetch_all(&mut *conn).await?))
                })
            }
        }
    };
}
catalog_fetch!(Postgres, sqlx::PgConnection);
catalog_fetch!(MySql, MySqlConnection);
catalog_fetch!(Sqlite, sqlx::SqliteConnection);

/// The three text columns of each catalog row.
fn catalog_texts<R>(fetched: Fetched<R>) -> Result<Vec<[String; 3]>, SourceError>
where
    R: sqlx::Row,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    let Fetched::Rows(rows) = fetched else {
        return Ok(Vec::new());
    };
    rows.iter()
        .map(|r| {
            let text = |i: usize| {
                r.try_get::<String, _>(i).map_err(|e| SourceError::Decode {
                    column: ["name", "data_type", "nullable"][i].to_owned(),
                    type_name: "text".to_owned(),
                    detail: e.to_string(),
                })
            };
            Ok([text(0)?, text(1)?, text(2)?])
        })
        .collect()
}

fn pool_options<DB: Database>(acquire_timeout: Duration) -> PoolOptions<DB> {
    PoolOptions::<DB>::new()
        .max_connections(MAX_CONNECTIONS)
        .min_connections(0)
        .acquire_timeout(acquire_timeout)
        // A connection killed by a server restart fails the ping and is
        // replaced instead of failing the next read.
        .test_before_acquire(true)
}

/// Postgres: read-only transactions by default, a statement timeout and
/// UTC, as startup options (appended after any in the URL, so they win).
fn pg_session(opts: PgConnectOptions, timeout_ms: u64) -> PgConnectOptions {
    let opts = if opts.get_application_name().is_none() {
        opts.application_name(APPLICATION_NAME)
    } else {
        opts
    };
    // UTC, like MySQL's sessions: Scoped Explore's day windows and time
    // buckets, and a list read's times, are UTC.
    opts.options([
        ("statement_timeout", timeout_ms.to_string()),
        ("default_transaction_read_only", "on".to_owned()),
        ("TimeZone", "UTC".to_owned()),
    ])
}

/// MySQL/MariaDB: a read-only session, a statement timeout (MariaDB's
/// `max_statement_time` in seconds, MySQL's `max_execution_time` in ms) and
/// UTC. The timeout is a number from the reviewed config, not model input.
async fn mysql_session(conn: &mut MySqlConnection, timeout_ms: u64) -> Result<(), sqlx::Error> {
    let version: String = conn.fetch_one("SELECT VERSION()").await?.try_get(0)?;
    let limit = if version.contains("MariaDB") {
        format!(
            "SET SESSION max_statement_time = {}.{:03}, time_zone = '+00:00'",
            timeout_ms / 1000,
            timeout_ms % 1000
        )
    } else {
        format!("SET SESSION max_execution_time = {timeout_ms}, time_zone = '+00:00'")
    };
    conn.execute(AssertSqlSafe(limit)).await?;
    conn.execute("SET SESSION TRANSACTION READ ONLY").await?;
    Ok(())
}

/// SQLite: open read-only, never create the file, refuse writes even via
/// attached databases (`query_only`), wait at most the timeout for locks.
fn sqlite_session(opts: SqliteConnectOptions, timeout_ms: u64) -> SqliteConnectOptions {
    opts.read_only(true)
        .create_if_missing(false)
        .busy_timeout(Duration::from_millis(timeout_ms))
        .pragma("query_only", "ON")
}

/// The values to bind, in statement order.
#[cfg(test)]
fn lookup_binds(
    statement: &Statement,
    primary_key: &Value,
    tenant: Option<&str>,
) -> Result<Vec<Bind>, SourceError> {
    scoped_lookup_binds(statement, primary_key, tenant, None, None)
}

/// The values to bind, in statement order, with the trusted principal for
/// a principal-scope parameter.
fn scoped_lookup_binds(
    statement: &Statement,
    primary_key: &Value,
    tenant: Option<&str>,
    principal: Option<&str>,
    set: Option<&airlock_policy::config::SetSpec>,
) -> Result<Vec<Bind>, SourceError> {
    let reviewed = |v: Option<&Value>| {
        v.and_then(Bind::from_key)
            .ok_or_else(|| SourceError::InvalidArgument {
                detail:
                    "a bounded set's reviewed selection value is missing or not a string or number"
                        .to_owned(),
            })
    };
    statement
        .params
        .iter()
        .map(|p| match p {
            LookupParam::PrimaryKey => {
                Bind::from_key(primary_key).ok_or_else(|| SourceError::InvalidArgument {
                    detail: "the primary key must be a JSON string or number".to_owned(),
                })
            }
            LookupParam::Tenant => tenant.map(|t| Bind::Text(t.to_owned())).ok_or_else(|| {
                SourceError::InvalidArgument {
                    detail: "this read is tenant-scoped but no trusted tenant was given".to_owned(),
                }
            }),
            LookupParam::Principal => {
                principal.map(|p| Bind::Text(p.to_owned())).ok_or_else(|| {
                    SourceError::InvalidArgument {
                        detail: "this read is principal-scoped but no trusted principal was given"
                            .to_owned(),
                    }
                })
            }
            LookupParam::Selection(i) => reviewed(
                set.and_then(|s| s.selection.get(usize::from(*i)))
                    .map(|t| &t.value),
            ),
            LookupParam::SetKey(i) => reviewed(set.and_then(|s| s.keys.get(usize::from(*i)))),
        })
        .collect()
}

/// A value converted to the type Postgres inferred for a parameter.
enum PgBind {
    I16(i16),
    I32(i32),
    I64(i64),
    F32(f32),
    F64(f64),
    Numeric(BigDecimal),
    Uuid(Uuid),
    Text(String),
    Bool(bool),
    Date(chrono::NaiveDate),
    Timestamp(chrono::NaiveDateTime),
    Timestamptz(chrono::DateTime<chrono::Utc>),
}

/// Convert `b` to the parameter type `ty`; `Ok(None)` when no value of
/// that type can equal it (so no row can match).
fn pg_bind(ty: &PgTypeInfo, b: &Bind, depth: u8) -> Result<Option<PgBind>, String> {
    if depth > 8 {
        return Err("parameter type nests too deeply".to_owned());
    }
    match ty.kind() {
        PgTypeKind::Domain(base) => return pg_bind(base, b, depth + 1),
        PgTypeKind::Enum(_) => return Ok(pg_text(b)),
        _ => {}
    }
    Ok(match ty.name() {
        "INT2" => b
            .as_i64()
            .and_then(|i| i16::try_from(i).ok())
            .map(PgBind::I16),
        "INT4" => b
            .as_i64()
            .and_then(|i| i32::try_from(i).ok())
            .map(PgBind::I32),
        "INT8" => b.as_i64().map(PgBind::I64),
        "FLOAT4" => b.as_f64().map(|f| PgBind::F32(f as f32)),
        "FLOAT8" => b.as_f64().map(PgBind::F64),
        "NUMERIC" => BigDecimal::from_str(b.as_text().trim())
            .ok()
            .map(PgBind::Numeric),
        "UUID" => match b {
            Bind::Text(s) => Uuid::parse_str(s.trim()).ok().map(PgBind::Uuid),
            _ => None,
        },
        "TEXT" | "VARCHAR" | "CHAR" | "NAME" | "UNKNOWN" => pg_text(b),
        // A list read's cursor carries these as the decoder wrote them.
        "BOOL" => match b.as_text().as_str() {
            "true" | "t" | "1" => Some(PgBind::Bool(true)),
            "false" | "f" | "0" => Some(PgBind::Bool(false)),
            _ => None,
        },
        "DATE" | "TIMESTAMP" | "TIMESTAMPTZ" => return pg_time(ty.name(), &b.as_text()).map(Some),
        other if other.eq_ignore_ascii_case("citext") => pg_text(b),
        other => {
            return Err(format!(
                "a lookup parameter has type {other}, which Airlock cannot bind"
            ));
        }
    })
}

/// A date or timestamp as the decoder writes it (`2026-06-20`,
/// `2026-06-20T14:31:08.5`, `2026-06-20T14:31:08Z`). Anything else is an
/// error rather than "no match": a cursor's value must bind exactly.
fn pg_time(ty: &str, text: &str) -> Result<PgBind, String> {
    let parsed = match ty {
        "DATE" => chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .map(PgBind::Date),
        "TIMESTAMP" => chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
            .ok()
            .map(PgBind::Timestamp),
        _ => chrono::DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| PgBind::Timestamptz(t.with_timezone(&chrono::Utc))),
    };
    parsed.ok_or_else(|| {
        format!(
            "a {ty} parameter cannot be bound from {:?} (infinite or out-of-range dates cannot be compared)",
            text.chars().take(40).collect::<String>()
        )
    })
}

/// Postgres text cannot hold NUL, so a value with one matches no row.
fn pg_text(b: &Bind) -> Option<PgBind> {
    let text = b.as_text();
    (!text.contains('\0')).then_some(PgBind::Text(text))
}

/// Postgres: prepare (cached per connection) to learn the parameter types
/// the server inferred, convert each value to its type, then run.
async fn pg_fetch(
    conn: &mut sqlx::PgConnection,
    sql: &str,
    binds: &[Bind],
) -> Result<Fetched<sqlx::postgres::PgRow>, RunFailure> {
    let prepared = (&mut *conn)
        .prepare(sqlx::SqlSafeStr::into_sql_str(AssertSqlSafe(
            sql.to_owned(),
        )))
        .await?;
    let types: Vec<PgTypeInfo> = match prepared.parameters() {
        Some(Either::Left(types)) => types.to_vec(),
        _ => Vec::new(),
    };
    if types.len() != binds.len() {
        return Err(RunFailure::Params(format!(
            "the statement has {} parameters but {} values were given",
            types.len(),
            binds.len()
        )));
    }
    let mut q = sqlx::query::<Postgres>(AssertSqlSafe(sql.to_owned()));
    for (ty, b) in types.iter().zip(binds) {
        let Some(v) = pg_bind(ty, b, 0).map_err(RunFailure::Params)? else {
            return Ok(Fetched::NoMatch);
        };
        q = match v {
            PgBind::I16(v) => q.bind(v),
            PgBind::I32(v) => q.bind(v),
            PgBind::I64(v) => q.bind(v),
            PgBind::F32(v) => q.bind(v),
            PgBind::F64(v) => q.bind(v),
            PgBind::Numeric(v) => q.bind(v),
            PgBind::Uuid(v) => q.bind(v),
            PgBind::Text(v) => q.bind(v),
            PgBind::Bool(v) => q.bind(v),
            PgBind::Date(v) => q.bind(v),
            PgBind::Timestamp(v) => q.bind(v),
            PgBind::Timestamptz(v) => q.bind(v),
        };
    }
    Ok(Fetched::Rows(q.fetch_all(&mut *conn).await?))
}

fn config_reason(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Configuration(inner) => inner.to_string(),
        other => other.to_string(),
    }
}

/// The server's message and code, scrubbed.
fn db_detail(db: &dyn sqlx::error::DatabaseError, scrub: &Scrubber) -> String {
    let mut detail = scrub.scrub(db.message());
    if let Some(code) = db.code() {
        detail.push_str(&format!(" (code {code})"));
    }
    if let Some(n) = db
        .try_downcast_ref::<MySqlDatabaseError>()
        .map(MySqlDatabaseError::number)
    {
        detail.push_str(&format!(" (error {n})"));
    }
    detail
}

/// Removes the URL and its password from text that may echo them.
struct Scrubber {
    /// Redacted wherever they appear (at least 4 characters long).
    long: Vec<String>,
    /// Too short to redact safely: text containing one is withheld whole.
    short: Vec<String>,
}

impl Scrubber {
    fn for_url(url: &str) -> Scrubber {
        let mut secrets = vec![url.to_owned()];
        if let Some(pw) = url_password(url) {
            let decoded = percent_decode(&pw);
            secrets.push(pw);
            secrets.push(decoded);
        }
        secrets.retain(|s| !s.is_empty());
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        let (long, short) = secrets.into_iter().partition(|s| s.len() >= 4);
        Scrubber { long, short }
    }

    fn scrub(&self, text: &str) -> String {
        if self.short.iter().any(|s| text.contains(s.as_str())) {
            return "(details withheld: they might contain the password)".to_owned();
        }
        redact(text, &self.long)
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' && i + 2 < bytes.len() + 1 {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The OpenTelemetry `db.system` of an engine.
fn engine_label(engine: Engine) -> &'static str {
    match engine {
        Engine::Postgres => "postgresql",
        Engine::Mysql => "mysql",
        Engine::Sqlite => "sqlite",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_found_and_scrubbed() {
        let url = "postgres://app:pw%2FSECRET-123@db.internal:5432/x?sslmode=require";
        assert_eq!(url_password(url).as_deref(), Some("pw%2FSECRET-123"));
        let s = Scrubber::for_url(url);
        assert_eq!(
            s.scrub("failed for pw/SECRET-123 and pw%2FSECRET-123"),
            "failed for [REDACTED] and [REDACTED]"
        );
        assert!(!s.scrub(&format!("bad url {url}")).contains("SECRET"));
        assert_eq!(url_password("mysql://root@127.0.0.1:3306/test"), None);
        assert_eq!(url_password("sqlite:///tmp/x.db"), None);
        let short = Scrubber::for_url("mysql://u:pw@h/db");
        assert!(!short.scrub("the password pw was wrong").contains("pw "));
        assert_eq!(short.scrub("all fine"), "all fine");
    }

    #[test]
    fn binds_follow_statement_params() {
        let st = Statement {
            sql: String::new(),
            params: vec![LookupParam::PrimaryKey, LookupParam::Tenant],
        };
        let b = lookup_binds(&st, &serde_json::json!(7), Some("acme")).unwrap();
        assert!(matches!(b.as_slice(), [Bind::Int(7), Bind::Text(t)] if t == "acme"));
        let b = lookup_binds(&st, &serde_json::json!(7.5), Some("acme")).unwrap();
        assert!(matches!(b.as_slice(), [Bind::Float(_), _]));
        let b = lookup_binds(&st, &serde_json::json!(u64::MAX), Some("acme")).unwrap();
        assert!(matches!(b.as_slice(), [Bind::UInt(u64::MAX), _]));
        assert!(matches!(
            lookup_binds(&st, &serde_json::json!("x"), None),
            Err(SourceError::InvalidArgument { .. })
        ));
        assert!(matches!(
            lookup_binds(&st, &serde_json::json!(true), Some("acme")),
            Err(SourceError::InvalidArgument { .. })
        ));
        let single = Statement {
            sql: String::new(),
            params: vec![LookupParam::PrimaryKey],
        };
        assert_eq!(
            lookup_binds(&single, &serde_json::json!("k"), Some("acme"))
                .unwrap()
                .len(),
            1
        );
    }

    /// The lead awaits these inside spawned tasks and MCP handlers.
    #[allow(dead_code)]
    fn futures_are_send(pool: &SourcePool, st: &Statement, key: &Value) {
        fn is_send<T: Send>(_: &T) {}
        is_send(&pool.fetch_rows(st, key, Some("t"), 1));
        is_send(&pool.warm_up());
        is_send(pool);
        fn is_sync<T: Sync>(_: &T) {}
        is_sync(pool);
    }

    /// A list read's cursor carries dates, timestamps and booleans as the
    /// decoder wrote them; they bind back to exactly those values.
    #[test]
    fn cursor_values_bind_to_postgres_time_and_bool_types() {
        use chrono::{NaiveDate, TimeZone, Utc};
        let day = NaiveDate::from_ymd_opt(2026, 6, 20).unwrap();
        assert!(matches!(pg_time("DATE", "2026-06-20"), Ok(PgBind::Date(d)) if d == day));
        let noon = day.and_hms_micro_opt(14, 31, 8, 500_000).unwrap();
        assert!(
            matches!(pg_time("TIMESTAMP", "2026-06-20T14:31:08.5"), Ok(PgBind::Timestamp(t)) if t == noon)
        );
        let whole = day.and_hms_opt(14, 31, 8).unwrap();
        assert!(
            matches!(pg_time("TIMESTAMP", "2026-06-20T14:31:08"), Ok(PgBind::Timestamp(t)) if t == whole)
        );
        let utc = Utc.from_utc_datetime(&whole);
        assert!(
            matches!(pg_time("TIMESTAMPTZ", "2026-06-20T14:31:08Z"), Ok(PgBind::Timestamptz(t)) if t == utc)
        );
        assert!(
            matches!(pg_time("TIMESTAMPTZ", "2026-06-20T16:31:08+02:00"), Ok(PgBind::Timestamptz(t)) if t == utc)
        );
        for (ty, bad) in [
            ("DATE", "infinity"),
            ("TIMESTAMP", "-infinity"),
            ("TIMESTAMPTZ", "2026-06-20T14:31:08"),
            ("DATE", "2026-02-30"),
        ] {
            let e = pg_time(ty, bad).err().unwrap();
            assert!(
                e.starts_with(&format!("a {ty} parameter cannot be bound from")),
                "{e}"
            );
        }
        let bool_of = |text: &str| {
            let ty = <bool as sqlx::Type<Postgres>>::type_info();
            match pg_bind(&ty, &Bind::Text(text.into()), 0) {
                Ok(Some(PgBind::Bool(b))) => Some(b),
                _ => None,
            }
        };
        assert_eq!(bool_of("true"), Some(true));
        assert_eq!(bool_of("f"), Some(false));
        assert_eq!(bool_of("yes"), None);
    }

    #[test]
    fn key_conversions() {
        assert_eq!(Bind::Text(" 42 ".into()).as_i64(), Some(42));
        assert_eq!(Bind::Text("42abc".into()).as_i64(), None);
        assert_eq!(Bind::Float(5.0).as_i64(), Some(5));
        assert_eq!(Bind::Float(5.5).as_i64(), None);
        assert_eq!(Bind::UInt(u64::MAX).as_i64(), None);
        assert_eq!(Bind::Int(3).as_text(), "3");
    }
}
