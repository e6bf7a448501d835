//! The read adapters against real servers: Postgres and MariaDB/MySQL on
//! loopback (`AIRLOCK_TEST_POSTGRES_URL`, `AIRLOCK_TEST_MYSQL_URL`) and a
//! SQLite file. No mocks, never skipped: an unreachable server fails the
//! test with instructions. Each test works in its own database, dropped at
//! the end (also when the test fails).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use airlock_policy::config::{Capability, Engine};
use airlock_policy::statement::{LookupParam, Statement, select_row};
use airlock_proposer::source::{SourceError, SourcePool};
use serde_json::{Map, Value, json};
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Executor, Row};

const PG_DEFAULT: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const MY_DEFAULT: &str = "mysql://root@127.0.0.1:3306/test";
const SECRET: &str = "pw-SECRET-123";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn unique_name() -> String {
    format!(
        "airlock_src_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

fn pg_admin_url() -> String {
    std::env::var("AIRLOCK_TEST_POSTGRES_URL").unwrap_or_else(|_| PG_DEFAULT.to_owned())
}

fn my_admin_url() -> String {
    std::env::var("AIRLOCK_TEST_MYSQL_URL").unwrap_or_else(|_| MY_DEFAULT.to_owned())
}

/// `url` with its database (path) replaced by `db`; the query string is kept.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let (scheme, rest) = base.split_once("://").expect("URL has a scheme");
    let authority = rest.split('/').next().unwrap_or(rest);
    let mut out = format!("{scheme}://{authority}/{db}");
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

async fn pg_admin() -> PgConnection {
    let url = pg_admin_url();
    match PgConnection::connect(&url).await {
        Ok(c) => c,
        Err(e) => panic!(
            "PostgreSQL is not reachable at AIRLOCK_TEST_POSTGRES_URL ({e}).\n\
             Start it with `bash tests/run.sh` (starts PostgreSQL and MariaDB), or \
             `pg_ctlcluster --skip-systemctl-redirect 15 main start`, or point \
             AIRLOCK_TEST_POSTGRES_URL at a running server."
        ),
    }
}

async fn my_admin() -> MySqlConnection {
    let url = my_admin_url();
    match MySqlConnection::connect(&url).await {
        Ok(c) => c,
        Err(e) => panic!(
            "MariaDB/MySQL is not reachable at AIRLOCK_TEST_MYSQL_URL ({e}).\n\
             Start it with `bash tests/run.sh` (starts PostgreSQL and MariaDB), or \
             `start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql`, \
             or point AIRLOCK_TEST_MYSQL_URL at a running server."
        ),
    }
}

/// Drops the test database (or removes the SQLite file) when dropped, even
/// when the test panicked. Best effort.
enum TempDb {
    Postgres(String),
    Mysql(String),
    Sqlite(std::path::PathBuf),
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let job = match self {
            TempDb::Sqlite(path) => {
                let _ = std::fs::remove_file(&*path);
                return;
            }
            TempDb::Postgres(name) => (true, name.clone()),
            TempDb::Mysql(name) => (false, name.clone()),
        };
        // A fresh thread and runtime: Drop cannot await, and may run inside
        // the test's runtime.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let (pg, name) = job;
                if pg {
                    if let Ok(mut c) = PgConnection::connect(&pg_admin_url()).await {
                        let _ = c
                            .execute(AssertSqlSafe(format!(
                                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                            )))
                            .await;
                    }
                } else if let Ok(mut c) = MySqlConnection::connect(&my_admin_url()).await {
                    let _ = c
                        .execute(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}")))
                        .await;
                }
            });
        })
        .join();
    }
}

/// Load a config with one read capability per `(name, table)` and return them.
fn capabilities(engine: Engine, schema: &str, tables: &[(&str, &str, &[&str])]) -> Vec<Capability> {
    let caps: Vec<Value> = tables
        .iter()
        .map(|(name, table, cols)| {
            json!({
                "name": name,
                "kind": "read",
                "source": "src",
                "target": {
                    "schema": schema,
                    "table": table,
                    "primary_key": "id",
                    "tenant_key": "tenant_id"
                },
                "args": { "row_id": { "type": "string", "required": true, "max_length": 200 } },
                "lookup": { "id_from_arg": "row_id" },
                "visible_columns": cols,
                "evidence": "required",
                "max_rows": 1
            })
        })
        .collect();
    let config = json!({
        "version": 1,
        "mode": "read_only",
        "sources": {
            "src": {
                "engine": engine.as_str(),
                "read_url_env": "AIRLOCK_TEST_SOURCE_READ_URL",
                "statement_timeout_ms": 3000
            }
        },
        "trusted_context": {
            "provider": "environment",
            "values": { "tenant_id_env": "AIRLOCK_TEST_TENANT", "principal_env": "AIRLOCK_TEST_PRINCIPAL" }
        },
        "capabilities": caps
    });
    let loaded = airlock_policy::load_config_str(&config.to_string());
    let cfg = loaded
        .config
        .unwrap_or_else(|| panic!("test config does not load: {:#?}", loaded.report));
    tables
        .iter()
        .map(|(name, _, _)| cfg.capability(name).expect("capability").clone())
        .collect()
}

async fn fetch(
    pool: &SourcePool,
    st: &Statement,
    key: Value,
    tenant: &str,
) -> Vec<Map<String, Value>> {
    pool.fetch_rows(st, &key, Some(tenant), 10)
        .await
        .unwrap_or_else(|e| panic!("read of {key} failed: {e}"))
}

fn one_row(rows: Vec<Map<String, Value>>) -> Map<String, Value> {
    assert_eq!(rows.len(), 1, "expected exactly one row, got {rows:?}");
    rows.into_iter().next().expect("one row")
}

/// Exact equality, column by column (clearer failures), and column order.
fn assert_row(actual: &Map<String, Value>, expected: &Value, cap: &Capability) {
    let expected = expected.as_object().expect("expected is an object");
    for (k, v) in expected {
        assert_eq!(actual.get(k), Some(v), "column `{k}`");
    }
    assert_eq!(actual.len(), expected.len(), "columns: {actual:?}");
    let order: Vec<&str> = actual.keys().map(String::as_str).collect();
    assert_eq!(order, cap.read_columns(), "column order");
}

fn assert_no_secret(err: &SourceError) {
    let shown = format!("{err} / {err:?}");
    assert!(!shown.contains(SECRET), "the password leaked: {shown}");
    assert!(
        !shown.contains("@127.0.0.1") && !shown.contains("@airlock-no-such-host"),
        "the URL leaked: {shown}"
    );
}

fn statement(sql: &str, params: Vec<LookupParam>) -> Statement {
    Statement {
        sql: sql.to_owned(),
        params,
    }
}

// ---------------------------------------------------------------------------
// Postgres
// ---------------------------------------------------------------------------

const PG_TYPED_COLUMNS: &[&str] = &[
    "id",
    "tenant_id",
    "c_smallint",
    "c_int",
    "c_bigint",
    "c_numeric",
    "c_numeric_big",
    "c_numeric_free",
    "c_real",
    "c_double",
    "c_text",
    "c_varchar",
    "c_char",
    "c_bool",
    "c_timestamptz",
    "c_timestamp",
    "c_date",
    "c_time",
    "c_uuid",
    "c_json",
    "c_jsonb",
    "c_bytea",
    "c_enum",
    "c_domain",
    "c_text_array",
    "c_int_matrix",
    "c_interval",
    "c_inet",
    "c_nothing",
];

const PG_SETUP: &str = r#"
CREATE TYPE mood AS ENUM ('happy', 'sad');
CREATE DOMAIN positive_int AS integer CHECK (VALUE > 0);
CREATE TABLE typed_rows (
  id text PRIMARY KEY,
  tenant_id text NOT NULL,
  c_smallint smallint, c_int integer, c_bigint bigint,
  c_numeric numeric(12,2), c_numeric_big numeric(30,6), c_numeric_free numeric,
  c_real real, c_double double precision,
  c_text text, c_varchar varchar(100), c_char char(5),
  c_bool boolean,
  c_timestamptz timestamptz, c_timestamp timestamp, c_date date, c_time time,
  c_uuid uuid, c_json json, c_jsonb jsonb, c_bytea bytea,
  c_enum mood, c_domain positive_int,
  c_text_array text[], c_int_matrix integer[],
  c_interval interval, c_inet inet,
  c_nothing text
);
INSERT INTO typed_rows VALUES (
  'row-acme-1', 'acme',
  -7, 2147483647, -9223372036854775807,
  12.50, 123456789012345678.000001, -0.000100,
  0.1, 6.02214076e23,
  'Grüße, 世界 🚀', $q$it's "quoted" '; DROP TABLE x; --$q$, 'ab',
  true,
  '2026-06-20T14:31:08Z', '2026-06-20 14:31:08.120', '2026-06-20', '09:05:00',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": [1, 2.5, "x"], "b": null}', '{"n": 10, "k": "v"}', '\x00ff10',
  'happy', 42,
  '{a,"b c",NULL}', '{{1,2},{3,4}}',
  '1 year 2 mons 3 days 04:05:06.5', '192.168.0.1/24',
  NULL
);
INSERT INTO typed_rows (id, tenant_id) VALUES ('row-acme-2', 'acme');
INSERT INTO typed_rows (id, tenant_id, c_text, c_numeric) VALUES ('row-other-1', 'otherco', 'otherco secret', 99.99);
CREATE TABLE int_keyed (id bigint PRIMARY KEY, tenant_id text NOT NULL, note text);
INSERT INTO int_keyed VALUES (7, 'acme', 'seven'), (8, 'otherco', 'eight');
CREATE TABLE uuid_keyed (id uuid PRIMARY KEY, tenant_id uuid NOT NULL, note text);
INSERT INTO uuid_keyed VALUES
  ('6f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f', '11111111-1111-1111-1111-111111111111', 'uuid row');
"#;

/// A fresh Postgres database with the typed tables; returns its read URL.
async fn pg_database() -> (TempDb, String, String) {
    let name = unique_name();
    let mut admin = pg_admin().await;
    admin
        .execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .expect("create database");
    let guard = TempDb::Postgres(name.clone());
    let url = with_database(&pg_admin_url(), &name);
    let mut conn = PgConnection::connect(&url)
        .await
        .expect("connect to test db");
    conn.execute(sqlx::raw_sql(PG_SETUP)).await.expect("setup");
    conn.close().await.expect("close");
    (guard, name, url)
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_reads_typed_rows_scoped_by_tenant() {
    let (_db, _name, url) = pg_database().await;
    let caps = capabilities(
        Engine::Postgres,
        "public",
        &[
            ("typed.inspect", "typed_rows", PG_TYPED_COLUMNS),
            ("ints.inspect", "int_keyed", &["id", "tenant_id", "note"]),
            ("uuids.inspect", "uuid_keyed", &["id", "tenant_id", "note"]),
        ],
    );
    let typed = select_row(Engine::Postgres, &caps[0], false);
    let ints = select_row(Engine::Postgres, &caps[1], false);
    let uuids = select_row(Engine::Postgres, &caps[2], false);
    let pool = SourcePool::connect_lazy(Engine::Postgres, &url, 3000).expect("pool");
    pool.warm_up().await.expect("warm up");

    let row = one_row(fetch(&pool, &typed, json!("row-acme-1"), "acme").await);
    let expected = json!({
        "id": "row-acme-1",
        "tenant_id": "acme",
        "c_smallint": -7,
        "c_int": 2147483647,
        "c_bigint": -9223372036854775807i64,
        "c_numeric": "12.50",
        "c_numeric_big": "123456789012345678.000001",
        "c_numeric_free": "-0.000100",
        "c_real": 0.1,
        "c_double": 6.02214076e23,
        "c_text": "Grüße, 世界 🚀",
        "c_varchar": "it's \"quoted\" '; DROP TABLE x; --",
        "c_char": "ab   ",
        "c_bool": true,
        "c_timestamptz": "2026-06-20T14:31:08Z",
        "c_timestamp": "2026-06-20T14:31:08.12",
        "c_date": "2026-06-20",
        "c_time": "09:05:00",
        "c_uuid": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "c_json": { "a": [1, 2.5, "x"], "b": null },
        "c_jsonb": { "k": "v", "n": 10 },
        "c_bytea": "AP8Q",
        "c_enum": "happy",
        "c_domain": 42,
        "c_text_array": ["a", "b c", null],
        "c_int_matrix": [[1, 2], [3, 4]],
        "c_interval": "P1Y2M3DT4H5M6.5S",
        "c_inet": "192.168.0.1/24",
        "c_nothing": null
    });
    assert_row(&row, &expected, &caps[0]);

    // Every type's NULL is null.
    let row = one_row(fetch(&pool, &typed, json!("row-acme-2"), "acme").await);
    for (k, v) in &row {
        if k != "id" && k != "tenant_id" {
            assert_eq!(v, &Value::Null, "column {k}");
        }
    }

    // Another tenant's row is indistinguishable from a missing one.
    assert!(
        fetch(&pool, &typed, json!("row-other-1"), "acme")
            .await
            .is_empty()
    );
    assert!(
        fetch(&pool, &typed, json!("no-such-row"), "acme")
            .await
            .is_empty()
    );
    let other = one_row(fetch(&pool, &typed, json!("row-other-1"), "otherco").await);
    assert_eq!(other["c_numeric"], json!("99.99"));
    // Tenant ids compare exactly (no case folding, no padding).
    assert!(
        fetch(&pool, &typed, json!("row-acme-1"), "ACME")
            .await
            .is_empty()
    );

    // Injection-shaped keys are just values: no rows, nothing changed.
    for key in [
        "row-acme-1' OR '1'='1",
        "'; DROP TABLE typed_rows; --",
        "row-acme-1\u{0}",
    ] {
        assert!(fetch(&pool, &typed, json!(key), "acme").await.is_empty());
    }
    assert!(
        fetch(&pool, &typed, json!("row-acme-1"), "acme' OR '1'='1")
            .await
            .is_empty()
    );
    let mut admin = PgConnection::connect(&url).await.expect("admin");
    let count: i64 = admin
        .fetch_one("SELECT count(*) FROM typed_rows")
        .await
        .expect("count")
        .get(0);
    assert_eq!(count, 3);

    // Integer keys: a JSON integer or its decimal string; anything that is
    // not an integer matches nothing (no error, no query).
    for key in [json!(7), json!("7"), json!(7.0)] {
        let row = one_row(fetch(&pool, &ints, key, "acme").await);
        assert_eq!(
            Value::Object(row),
            json!({"id": 7, "tenant_id": "acme", "note": "seven"})
        );
    }
    for key in [
        json!("7abc"),
        json!(7.5),
        json!("99999999999999999999"),
        json!(8),
    ] {
        assert!(fetch(&pool, &ints, key, "acme").await.is_empty());
    }

    // UUID keys and a UUID tenant column (compared as text).
    let tenant = "11111111-1111-1111-1111-111111111111";
    let row = one_row(
        fetch(
            &pool,
            &uuids,
            json!("6f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f"),
            tenant,
        )
        .await,
    );
    assert_eq!(
        Value::Object(row),
        json!({"id": "6f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f", "tenant_id": tenant, "note": "uuid row"})
    );
    assert!(
        fetch(&pool, &uuids, json!("not-a-uuid"), tenant)
            .await
            .is_empty()
    );
    assert!(
        fetch(
            &pool,
            &uuids,
            json!("6f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f"),
            "acme"
        )
        .await
        .is_empty()
    );

    // A tenant-scoped statement never runs without a tenant.
    let err = pool
        .fetch_rows(&typed, &json!("row-acme-1"), None, 1)
        .await
        .expect_err("no tenant");
    assert!(matches!(err, SourceError::InvalidArgument { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_session_is_read_only_and_bounded_in_time() {
    let (_db, _name, url) = pg_database().await;
    let pool = SourcePool::connect_lazy(Engine::Postgres, &url, 200).expect("pool");

    let insert = statement(
        "INSERT INTO public.typed_rows (id, tenant_id) VALUES ($1, $2)",
        vec![LookupParam::PrimaryKey, LookupParam::Tenant],
    );
    let err = pool
        .fetch_rows(&insert, &json!("row-sneaky"), Some("acme"), 1)
        .await
        .expect_err("the write must be refused");
    assert!(matches!(err, SourceError::Query { .. }), "{err}");
    assert!(err.to_string().contains("read-only"), "{err}");
    let mut admin = PgConnection::connect(&url).await.expect("admin");
    let count: i64 = admin
        .fetch_one("SELECT count(*) FROM typed_rows WHERE id = 'row-sneaky'")
        .await
        .expect("count")
        .get(0);
    assert_eq!(count, 0);

    let started = Instant::now();
    let err = pool
        .fetch_rows(&statement("SELECT pg_sleep(2)", vec![]), &json!(1), None, 1)
        .await
        .expect_err("must time out");
    assert!(err.is_timeout(), "{err}");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    assert!(err.to_string().contains("statement_timeout_ms"), "{err}");

    // The pool is still usable afterwards.
    let caps = capabilities(
        Engine::Postgres,
        "public",
        &[("typed.inspect", "typed_rows", &["id", "tenant_id"])],
    );
    let st = select_row(Engine::Postgres, &caps[0], false);
    one_row(fetch(&pool, &st, json!("row-acme-1"), "acme").await);
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_pool_recovers_from_killed_connections() {
    let (_db, name, url) = pg_database().await;
    let caps = capabilities(
        Engine::Postgres,
        "public",
        &[(
            "typed.inspect",
            "typed_rows",
            &["id", "tenant_id", "c_text"],
        )],
    );
    let st = select_row(Engine::Postgres, &caps[0], false);
    let pool = SourcePool::connect_lazy(Engine::Postgres, &url, 3000).expect("pool");
    one_row(fetch(&pool, &st, json!("row-acme-1"), "acme").await);

    let mut admin = pg_admin().await;
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = $1 AND application_name = 'airlock-proposer'",
    )
    .bind(&name)
    .fetch_one(&mut admin)
    .await
    .expect("terminate");
    assert!(killed >= 1, "no pooled connection to kill");
    tokio::time::sleep(Duration::from_millis(100)).await;

    let row = one_row(fetch(&pool, &st, json!("row-acme-1"), "acme").await);
    assert_eq!(row["c_text"], json!("Grüße, 世界 🚀"));
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_errors_never_show_the_password() {
    pg_admin().await; // the server must be up for the first case to mean anything
    let admin = PgConnectOptions::from_str(&pg_admin_url()).expect("admin URL");
    let host = admin.get_host().to_owned();
    let port = admin.get_port();
    let user = admin.get_username().to_owned();

    // Reachable server, wrong password or unknown database.
    let url = format!("postgres://{user}:{SECRET}@{host}:{port}/airlock_no_such_db");
    let pool = SourcePool::connect_lazy(Engine::Postgres, &url, 500).expect("lazy");
    let err = pool.warm_up().await.expect_err("must fail");
    assert!(matches!(err, SourceError::Connect { .. }), "{err}");
    assert_no_secret(&err);
    eprintln!("reachable, refused: {err}");

    // Unknown host.
    let url = format!("postgres://{user}:{SECRET}@airlock-no-such-host.invalid:{port}/x");
    let pool = SourcePool::connect_lazy(Engine::Postgres, &url, 200).expect("lazy");
    let err = pool.warm_up().await.expect_err("must fail");
    assert!(matches!(err, SourceError::Connect { .. }), "{err}");
    assert_no_secret(&err);
    eprintln!("unknown host: {err}");

    // Nothing listening.
    let url = format!("postgres://{user}:{SECRET}@127.0.0.1:1/x");
    let pool = SourcePool::connect_lazy(Engine::Postgres, &url, 100).expect("lazy");
    let err = pool.warm_up().await.expect_err("must fail");
    assert!(matches!(err, SourceError::Connect { .. }), "{err}");
    assert!(err.to_string().contains("refused"), "{err}");
    assert_no_secret(&err);
    eprintln!("refused: {err}");

    // Unparseable URL, and a URL for another engine.
    for url in [
        format!("postgres://{user}:{SECRET}@127.0.0.1:notaport/x"),
        format!("mysql://{user}:{SECRET}@127.0.0.1:3306/x"),
    ] {
        let err = SourcePool::connect_lazy(Engine::Postgres, &url, 100).expect_err("bad URL");
        assert!(matches!(err, SourceError::Url { .. }), "{err}");
        assert_no_secret(&err);
        eprintln!("bad URL: {err}");
    }
}

// ---------------------------------------------------------------------------
// MariaDB / MySQL
// ---------------------------------------------------------------------------

const MY_TYPED_COLUMNS: &[&str] = &[
    "id",
    "tenant_id",
    "c_tinyint",
    "c_bool",
    "c_smallint",
    "c_mediumint",
    "c_int",
    "c_bigint",
    "c_uint",
    "c_ubigint",
    "c_decimal",
    "c_decimal_big",
    "c_float",
    "c_double",
    "c_char",
    "c_varchar",
    "c_text",
    "c_text_bin",
    "c_enum",
    "c_set",
    "c_date",
    "c_time",
    "c_time_neg",
    "c_datetime",
    "c_timestamp",
    "c_json",
    "c_blob",
    "c_varbinary",
    "c_bit",
    "c_year",
    "c_nothing",
];

const MY_SETUP: &[&str] = &[
    r#"CREATE TABLE typed_rows (
  id VARCHAR(64) PRIMARY KEY, tenant_id VARCHAR(64) NOT NULL,
  c_tinyint TINYINT, c_bool BOOLEAN, c_smallint SMALLINT, c_mediumint MEDIUMINT, c_int INT, c_bigint BIGINT,
  c_uint INT UNSIGNED, c_ubigint BIGINT UNSIGNED,
  c_decimal DECIMAL(12,2), c_decimal_big DECIMAL(30,6),
  c_float FLOAT, c_double DOUBLE,
  c_char CHAR(5), c_varchar VARCHAR(100), c_text TEXT, c_text_bin TEXT COLLATE utf8mb4_bin,
  c_enum ENUM('small','large'), c_set SET('a','b','c'),
  c_date DATE, c_time TIME, c_time_neg TIME, c_datetime DATETIME(6), c_timestamp TIMESTAMP NULL DEFAULT NULL,
  c_json JSON, c_blob BLOB, c_varbinary VARBINARY(16), c_bit BIT(8), c_year YEAR,
  c_nothing VARCHAR(10)
) CHARACTER SET utf8mb4"#,
    r#"INSERT INTO typed_rows VALUES (
  'row-acme-1', 'acme',
  -128, TRUE, -32768, -8388608, 2147483647, -9223372036854775807,
  4294967295, 18446744073709551615,
  12.50, 123456789012345678.000001,
  0.1, 6.02214076e23,
  'ab', 'it''s "quoted" ''; DROP TABLE x; --', 'Grüße, 世界 🚀', 'Case Sensitive',
  'large', 'a,c',
  '2026-06-20', '09:05:00', '-01:30:00', '2026-06-20 14:31:08.120000', '2026-06-20 14:31:08',
  '{"a": [1, 2.5, "x"], "b": null}', X'00FF10', X'DEADBEEF', b'10100101', 2026,
  NULL)"#,
    "INSERT INTO typed_rows (id, tenant_id) VALUES ('row-acme-2', 'acme')",
    "INSERT INTO typed_rows (id, tenant_id, c_text, c_decimal) VALUES ('row-other-1', 'otherco', 'otherco secret', 99.99)",
    "CREATE TABLE int_keyed (id BIGINT PRIMARY KEY, tenant_id VARCHAR(64) NOT NULL, note TEXT)",
    "INSERT INTO int_keyed VALUES (7, 'acme', 'seven'), (8, 'otherco', 'eight')",
];

async fn my_database() -> (TempDb, String, String, bool) {
    let name = unique_name();
    let mut admin = my_admin().await;
    admin
        .execute(AssertSqlSafe(format!(
            "CREATE DATABASE {name} CHARACTER SET utf8mb4"
        )))
        .await
        .expect("create database");
    let guard = TempDb::Mysql(name.clone());
    let version: String = admin
        .fetch_one("SELECT VERSION()")
        .await
        .expect("version")
        .get(0);
    let url = with_database(&my_admin_url(), &name);
    let mut conn = MySqlConnection::connect(&url)
        .await
        .expect("connect to test db");
    for sql in MY_SETUP {
        conn.execute(*sql).await.expect("setup");
    }
    conn.close().await.expect("close");
    (guard, name, url, version.contains("MariaDB"))
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_reads_typed_rows_scoped_by_tenant() {
    let (_db, name, url, mariadb) = my_database().await;
    let caps = capabilities(
        Engine::Mysql,
        &name,
        &[
            ("typed.inspect", "typed_rows", MY_TYPED_COLUMNS),
            ("ints.inspect", "int_keyed", &["id", "tenant_id", "note"]),
        ],
    );
    let typed = select_row(Engine::Mysql, &caps[0], false);
    let ints = select_row(Engine::Mysql, &caps[1], false);
    let pool = SourcePool::connect_lazy(Engine::Mysql, &url, 3000).expect("pool");
    pool.warm_up().await.expect("warm up");

    let json_text = r#"{"a": [1, 2.5, "x"], "b": null}"#;
    let row = one_row(fetch(&pool, &typed, json!("row-acme-1"), "acme").await);
    let expected = json!({
        "id": "row-acme-1",
        "tenant_id": "acme",
        "c_tinyint": -128,
        "c_bool": 1,
        "c_smallint": -32768,
        "c_mediumint": -8388608,
        "c_int": 2147483647,
        "c_bigint": -9223372036854775807i64,
        "c_uint": 4294967295u64,
        "c_ubigint": 18446744073709551615u64,
        "c_decimal": "12.50",
        "c_decimal_big": "123456789012345678.000001",
        "c_float": 0.1,
        "c_double": 6.02214076e23,
        "c_char": "ab",
        "c_varchar": "it's \"quoted\" '; DROP TABLE x; --",
        "c_text": "Grüße, 世界 🚀",
        "c_text_bin": "Case Sensitive",
        "c_enum": "large",
        "c_set": "a,c",
        "c_date": "2026-06-20",
        "c_time": "09:05:00",
        "c_time_neg": "-01:30:00",
        "c_datetime": "2026-06-20T14:31:08.12",
        "c_timestamp": "2026-06-20T14:31:08Z",
        // MariaDB's JSON is LONGTEXT: the text as stored; MySQL's is JSON.
        "c_json": if mariadb { json!(json_text) } else { serde_json::from_str::<Value>(json_text).unwrap() },
        "c_blob": "AP8Q",
        "c_varbinary": "3q2+7w==",
        "c_bit": 165,
        "c_year": 2026,
        "c_nothing": null
    });
    assert_row(&row, &expected, &caps[0]);

    let row = one_row(fetch(&pool, &typed, json!("row-acme-2"), "acme").await);
    for (k, v) in &row {
        if k != "id" && k != "tenant_id" {
            assert_eq!(v, &Value::Null, "column {k}");
        }
    }

    assert!(
        fetch(&pool, &typed, json!("row-other-1"), "acme")
            .await
            .is_empty()
    );
    let other = one_row(fetch(&pool, &typed, json!("row-other-1"), "otherco").await);
    assert_eq!(other["c_decimal"], json!("99.99"));
    // Binary tenant comparison despite the case-insensitive default collation.
    assert!(
        fetch(&pool, &typed, json!("row-acme-1"), "ACME")
            .await
            .is_empty()
    );
    assert!(
        fetch(&pool, &typed, json!("row-acme-1"), "acme ")
            .await
            .is_empty()
    );

    for key in [
        "row-acme-1' OR '1'='1",
        "'; DROP TABLE typed_rows; --",
        "row-acme-1\\' OR 1=1 -- ",
    ] {
        assert!(fetch(&pool, &typed, json!(key), "acme").await.is_empty());
    }
    assert!(
        fetch(&pool, &typed, json!("row-acme-1"), "acme' OR '1'='1")
            .await
            .is_empty()
    );
    let mut admin = MySqlConnection::connect(&url).await.expect("admin");
    let count: i64 = admin
        .fetch_one("SELECT count(*) FROM typed_rows")
        .await
        .expect("count")
        .get(0);
    assert_eq!(count, 3);

    for key in [json!(7), json!("7")] {
        let row = one_row(fetch(&pool, &ints, key, "acme").await);
        assert_eq!(
            Value::Object(row),
            json!({"id": 7, "tenant_id": "acme", "note": "seven"})
        );
    }
    assert!(fetch(&pool, &ints, json!(8), "acme").await.is_empty());
    assert!(fetch(&pool, &ints, json!(7.5), "acme").await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_session_is_read_only_and_bounded_in_time() {
    let (_db, name, url, mariadb) = my_database().await;
    let pool = SourcePool::connect_lazy(Engine::Mysql, &url, 200).expect("pool");

    let insert = statement(
        &format!("INSERT INTO `{name}`.`typed_rows` (id, tenant_id) VALUES (?, ?)"),
        vec![LookupParam::PrimaryKey, LookupParam::Tenant],
    );
    let err = pool
        .fetch_rows(&insert, &json!("row-sneaky"), Some("acme"), 1)
        .await
        .expect_err("the write must be refused");
    assert!(matches!(err, SourceError::Query { .. }), "{err}");
    assert!(err.to_string().contains("read-only"), "{err}");
    let mut admin = MySqlConnection::connect(&url).await.expect("admin");
    let count: i64 = admin
        .fetch_one("SELECT count(*) FROM typed_rows WHERE id = 'row-sneaky'")
        .await
        .expect("count")
        .get(0);
    assert_eq!(count, 0);

    // MySQL answers a bare interrupted `SELECT SLEEP(2)` with 1 and no
    // error; as part of a larger query it is an error on both servers.
    let mut sleepers = vec!["SELECT SLEEP(2) AS s FROM (SELECT 1 AS a UNION ALL SELECT 2) AS t"];
    if mariadb {
        sleepers.push("SELECT SLEEP(2)");
    }
    for sql in sleepers {
        let started = Instant::now();
        let err = pool
            .fetch_rows(&statement(sql, vec![]), &json!(1), None, 1)
            .await
            .expect_err("must time out");
        assert!(err.is_timeout(), "{sql}: {err}");
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "{:?}",
            started.elapsed()
        );
    }

    // The session is UTC and the pool still works.
    let now = pool
        .fetch_rows(
            &statement(
                "SELECT @@session.time_zone AS tz, @@session.transaction_read_only AS ro",
                vec![],
            ),
            &json!(1),
            None,
            1,
        )
        .await;
    match now {
        Ok(rows) => {
            let row = one_row(rows);
            assert_eq!(row["tz"], json!("+00:00"));
            assert_eq!(row["ro"], json!(1));
        }
        // MariaDB < 11.1 calls it tx_read_only.
        Err(_) => {
            let row = one_row(
                pool.fetch_rows(
                    &statement(
                        "SELECT @@session.time_zone AS tz, @@session.tx_read_only AS ro",
                        vec![],
                    ),
                    &json!(1),
                    None,
                    1,
                )
                .await
                .expect("session variables"),
            );
            assert_eq!(row["tz"], json!("+00:00"));
            assert_eq!(row["ro"], json!(1));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_pool_recovers_from_killed_connections() {
    let (_db, name, url, _mariadb) = my_database().await;
    let caps = capabilities(
        Engine::Mysql,
        &name,
        &[(
            "typed.inspect",
            "typed_rows",
            &["id", "tenant_id", "c_text"],
        )],
    );
    let st = select_row(Engine::Mysql, &caps[0], false);
    let pool = SourcePool::connect_lazy(Engine::Mysql, &url, 3000).expect("pool");
    one_row(fetch(&pool, &st, json!("row-acme-1"), "acme").await);

    let mut admin = my_admin().await;
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()",
    )
    .bind(&name)
    .fetch_all(&mut admin)
    .await
    .expect("processlist");
    assert!(!ids.is_empty(), "no pooled connection to kill");
    for id in ids {
        admin
            .execute(AssertSqlSafe(format!("KILL {id}")))
            .await
            .expect("kill");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;

    let row = one_row(fetch(&pool, &st, json!("row-acme-1"), "acme").await);
    assert_eq!(row["c_text"], json!("Grüße, 世界 🚀"));
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_errors_never_show_the_password() {
    my_admin().await;
    let admin = MySqlConnectOptions::from_str(&my_admin_url()).expect("admin URL");
    let host = admin.get_host().to_owned();
    let port = admin.get_port();

    let url = format!("mysql://airlock_nobody:{SECRET}@{host}:{port}/test");
    // Generous timeout: under a loaded CI run a 500 ms connect could time out
    // before the server says "access denied", which is what is asserted.
    let pool = SourcePool::connect_lazy(Engine::Mysql, &url, 5000).expect("lazy");
    let err = pool.warm_up().await.expect_err("must fail");
    assert!(matches!(err, SourceError::Connect { .. }), "{err}");
    assert!(err.to_string().contains("password"), "{err}");
    assert_no_secret(&err);
    eprintln!("bad password: {err}");

    let url = format!("mysql://root:{SECRET}@airlock-no-such-host.invalid:{port}/test");
    let pool = SourcePool::connect_lazy(Engine::Mysql, &url, 200).expect("lazy");
    let err = pool.warm_up().await.expect_err("must fail");
    assert_no_secret(&err);
    eprintln!("unknown host: {err}");

    let url = format!("mysql://root:{SECRET}@127.0.0.1:notaport/test");
    let err = SourcePool::connect_lazy(Engine::Mysql, &url, 100).expect_err("bad URL");
    assert!(matches!(err, SourceError::Url { .. }), "{err}");
    assert_no_secret(&err);
}

// ---------------------------------------------------------------------------
// SQLite
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_reads_typed_rows_read_only() {
    let path = std::env::temp_dir().join(format!("{}.db", unique_name()));
    let _guard = TempDb::Sqlite(path.clone());
    {
        let mut rw: SqliteConnection = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .connect()
            .await
            .expect("create sqlite file");
        rw.execute(sqlx::raw_sql(
            r#"
CREATE TABLE typed_rows (
  id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL,
  c_int INTEGER, c_real REAL, c_text TEXT, c_blob BLOB, c_numeric NUMERIC,
  c_bool BOOLEAN, c_dynamic INTEGER, c_big INTEGER, c_timestamp TEXT, c_nothing TEXT
);
INSERT INTO typed_rows VALUES (
  'row-acme-1', 'acme', -9223372036854775807, 3.5,
  'Grüße, 世界 🚀 it''s "quoted" ''; DROP TABLE x; --', X'00FF10', 12.50,
  1, 'not a number', 9223372036854775807, '2026-06-20T14:31:08Z', NULL);
INSERT INTO typed_rows (id, tenant_id) VALUES ('row-acme-2', 'acme');
INSERT INTO typed_rows (id, tenant_id, c_text) VALUES ('row-other-1', 'otherco', 'otherco secret');
CREATE TABLE int_keyed (id INTEGER PRIMARY KEY, tenant_id TEXT NOT NULL, note TEXT);
INSERT INTO int_keyed VALUES (7, 'acme', 'seven'), (8, 'otherco', 'eight');
"#,
        ))
        .await
        .expect("setup");
        rw.close().await.expect("close");
    }
    let columns = [
        "id",
        "tenant_id",
        "c_int",
        "c_real",
        "c_text",
        "c_blob",
        "c_numeric",
        "c_bool",
        "c_dynamic",
        "c_big",
        "c_timestamp",
        "c_nothing",
    ];
    let caps = capabilities(
        Engine::Sqlite,
        "main",
        &[
            ("typed.inspect", "typed_rows", &columns),
            ("ints.inspect", "int_keyed", &["id", "tenant_id", "note"]),
        ],
    );
    let typed = select_row(Engine::Sqlite, &caps[0], false);
    let ints = select_row(Engine::Sqlite, &caps[1], false);
    let url = format!("sqlite://{}", path.display());
    let pool = SourcePool::connect_lazy(Engine::Sqlite, &url, 3000).expect("pool");
    pool.warm_up().await.expect("warm up");

    let row = one_row(fetch(&pool, &typed, json!("row-acme-1"), "acme").await);
    let expected = json!({
        "id": "row-acme-1",
        "tenant_id": "acme",
        "c_int": -9223372036854775807i64,
        "c_real": 3.5,
        "c_text": "Grüße, 世界 🚀 it's \"quoted\" '; DROP TABLE x; --",
        "c_blob": "AP8Q",
        "c_numeric": 12.5,
        "c_bool": 1,
        "c_dynamic": "not a number",
        "c_big": 9223372036854775807i64,
        "c_timestamp": "2026-06-20T14:31:08Z",
        "c_nothing": null
    });
    assert_row(&row, &expected, &caps[0]);
    let row = one_row(fetch(&pool, &typed, json!("row-acme-2"), "acme").await);
    assert_eq!(row["c_blob"], Value::Null);

    assert!(
        fetch(&pool, &typed, json!("row-other-1"), "acme")
            .await
            .is_empty()
    );
    assert!(
        fetch(&pool, &typed, json!("row-acme-1"), "ACME")
            .await
            .is_empty()
    );
    for key in ["row-acme-1' OR '1'='1", "'; DROP TABLE typed_rows; --"] {
        assert!(fetch(&pool, &typed, json!(key), "acme").await.is_empty());
    }
    for key in [json!(7), json!("7")] {
        let row = one_row(fetch(&pool, &ints, key, "acme").await);
        assert_eq!(
            Value::Object(row),
            json!({"id": 7, "tenant_id": "acme", "note": "seven"})
        );
    }
    assert!(fetch(&pool, &ints, json!(8), "acme").await.is_empty());

    // Writes are refused, and nothing changed.
    let insert = statement(
        "INSERT INTO main.typed_rows (id, tenant_id) VALUES (?, ?)",
        vec![LookupParam::PrimaryKey, LookupParam::Tenant],
    );
    let err = pool
        .fetch_rows(&insert, &json!("row-sneaky"), Some("acme"), 1)
        .await
        .expect_err("the write must be refused");
    assert!(matches!(err, SourceError::Query { .. }), "{err}");
    assert!(err.to_string().contains("read-only"), "{err}");
    let mut check: SqliteConnection = SqliteConnectOptions::new()
        .filename(&path)
        .read_only(true)
        .connect()
        .await
        .expect("open");
    let count: i64 = check
        .fetch_one("SELECT count(*) FROM typed_rows")
        .await
        .expect("count")
        .get(0);
    assert_eq!(count, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_never_creates_a_missing_file() {
    let path = std::env::temp_dir().join(format!("{}-missing.db", unique_name()));
    let _guard = TempDb::Sqlite(path.clone());
    for url in [
        format!("sqlite://{}", path.display()),
        format!("sqlite://{}?mode=rwc", path.display()),
    ] {
        let pool = SourcePool::connect_lazy(Engine::Sqlite, &url, 200).expect("lazy");
        let err = pool.warm_up().await.expect_err("missing file");
        assert!(matches!(err, SourceError::Connect { .. }), "{err}");
        assert!(err.to_string().contains("never creates"), "{err}");
        assert!(!path.exists(), "the source file was created");
    }
}

/// A read naming a table or column the SQLite file lacks is a setup problem
/// (`Misconfigured`), not a transient failure; other errors are not.
#[tokio::test(flavor = "multi_thread")]
async fn sqlite_missing_tables_and_columns_are_misconfigured() {
    use airlock_policy::db_error::Misconfiguration;
    let path = std::env::temp_dir().join(format!("{}-misconfigured.db", unique_name()));
    let _guard = TempDb::Sqlite(path.clone());
    {
        let mut rw: SqliteConnection = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .connect()
            .await
            .expect("create sqlite file");
        rw.execute(sqlx::raw_sql(
            "CREATE TABLE t (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL)",
        ))
        .await
        .expect("setup");
        rw.close().await.expect("close");
    }
    let pool =
        SourcePool::connect_lazy(Engine::Sqlite, &format!("sqlite://{}", path.display()), 500)
            .expect("pool");
    let params = vec![LookupParam::PrimaryKey];
    for (sql, want) in [
        (
            "SELECT id FROM main.missing WHERE id = ?",
            Misconfiguration::MissingTable,
        ),
        (
            "SELECT id, gone FROM main.t WHERE id = ?",
            Misconfiguration::MissingColumn,
        ),
    ] {
        let err = pool
            .fetch_rows(&statement(sql, params.clone()), &json!("x"), None, 1)
            .await
            .expect_err("the read must fail");
        match &err {
            SourceError::Misconfigured { what, .. } => assert_eq!(*what, want, "{err}"),
            other => panic!("{sql}: not misconfigured: {other}"),
        }
        assert!(err.to_string().contains("airlock doctor"), "{err}");
    }
    let err = pool
        .fetch_rows(
            &statement("SELEC id FROM main.t WHERE id = ?", params),
            &json!("x"),
            None,
            1,
        )
        .await
        .expect_err("a syntax error");
    assert!(matches!(err, SourceError::Query { .. }), "{err}");
}
