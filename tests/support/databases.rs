//! Real databases for the end-to-end suites: the reference billing database
//! (`tests/fixtures/reference/`) on PostgreSQL, MariaDB and SQLite, each with
//! least-privilege reader and writer accounts.

use std::path::Path;

use airlock_policy::config::Engine;
use serde_json::{Value, json};
use sqlx::Connection;

use crate::{block_on, reference_dir};

pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
pub const DEFAULT_MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/test";
/// The database the Postgres MCP suite loads the reference example into.
pub const REFERENCE_DB: &str = "airlock_reference_billing";

pub fn postgres_admin_url() -> String {
    std::env::var("AIRLOCK_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

pub fn mysql_admin_url() -> String {
    std::env::var("AIRLOCK_TEST_MYSQL_URL").unwrap_or_else(|_| DEFAULT_MYSQL_URL.to_owned())
}

/// A prepared database and the URLs for each role.
#[derive(Debug, Clone)]
pub struct Database {
    pub engine: Engine,
    pub name: String,
    /// Least-privilege reader (SELECT only): what the proposer gets.
    pub read_url: String,
    /// Least-privilege writer (UPDATE on allowed and version columns): the executor's.
    pub write_url: String,
    /// Full-privilege URL for the test's own checks.
    pub admin_url: String,
}

pub fn with_database(url: &str, db: &str) -> String {
    match url.rfind('/') {
        Some(i) if url[..i].contains("://") => {
            let (base, rest) = url.split_at(i);
            let query = rest.find('?').map(|q| &rest[q..]).unwrap_or("");
            format!("{base}/{db}{query}")
        }
        _ => format!("{url}/{db}"),
    }
}

pub fn with_user(url: &str, user: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("URL has a scheme");
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    format!("{scheme}://{user}:{password}@{host}")
}

fn unreachable(what: &str, url: &str, e: impl std::fmt::Display, how: &str) -> ! {
    panic!(
        "{what} is not reachable at {url}: {e}\nStart it: `bash tests/run.sh` starts PostgreSQL and MariaDB before running the tests, or run `{how}` yourself."
    )
}

/// An empty PostgreSQL database `name` (dropped first if it exists), owned
/// by the admin user. Returns its admin URL.
pub fn fresh_postgres_database(name: &str) -> String {
    let admin = postgres_admin_url();
    block_on(async {
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| {
                unreachable(
                    "PostgreSQL",
                    &admin,
                    e,
                    "pg_ctlcluster --skip-systemctl-redirect 15 main start",
                )
            });
        for sql in [
            format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
            format!("CREATE DATABASE \"{name}\""),
        ] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .unwrap();
        }
    });
    with_database(&admin, name)
}

/// Create (or recreate) a Postgres database from the reference schema and
/// seed (`postgres.sql`, `postgres-seed.sql`), with the `synapsor_reader` and
/// `synapsor_writer` roles.
pub fn postgres_reference(name: &str) -> Database {
    let admin = postgres_admin_url();
    let schema = std::fs::read_to_string(reference_dir().join("postgres.sql")).unwrap();
    let seed = std::fs::read_to_string(reference_dir().join("postgres-seed.sql")).unwrap();
    let db_url = fresh_postgres_database(name);
    block_on(async {
        let mut db = sqlx::PgConnection::connect(&db_url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(schema))
            .execute(&mut db)
            .await
            .expect("reference postgres.sql");
        sqlx::raw_sql(sqlx::AssertSqlSafe(seed))
            .execute(&mut db)
            .await
            .expect("reference postgres-seed.sql");
        // The writer also needs the receipt table (created by the executor on first apply).
        Database {
            engine: Engine::Postgres,
            name: name.to_owned(),
            read_url: with_database(
                &with_user(&admin, "synapsor_reader", "synapsor_reader_password"),
                name,
            ),
            write_url: with_database(
                &with_user(&admin, "synapsor_writer", "synapsor_writer_password"),
                name,
            ),
            admin_url: db_url,
        }
    })
}

/// The same tables and rows on MariaDB/MySQL, with `airlock_reader`
/// (SELECT) and `airlock_writer` (SELECT + column-level UPDATE) accounts.
pub fn mysql_reference(name: &str) -> Database {
    let admin = mysql_admin_url();
    let dir = reference_dir();
    let schema = std::fs::read_to_string(dir.join("mysql.sql")).unwrap();
    let seed = std::fs::read_to_string(dir.join("mysql-seed.sql")).unwrap();
    block_on(async {
        let mut conn = sqlx::MySqlConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| unreachable("MariaDB", &admin, e, "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql"));
        let mut setup = vec![
            format!("DROP DATABASE IF EXISTS `{name}`"),
            format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"),
        ];
        for host in ["localhost", "127.0.0.1", "%"] {
            setup.push(format!("CREATE USER IF NOT EXISTS 'airlock_reader'@'{host}' IDENTIFIED BY 'airlock_reader_password'"));
            setup.push(format!("CREATE USER IF NOT EXISTS 'airlock_writer'@'{host}' IDENTIFIED BY 'airlock_writer_password'"));
        }
        for sql in setup {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .unwrap();
        }
        let db_url = with_database(&admin, name);
        let mut db = sqlx::MySqlConnection::connect(&db_url).await.unwrap();
        for stmt in schema
            .split(';')
            .chain(seed.split(';'))
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            sqlx::raw_sql(sqlx::AssertSqlSafe(stmt.to_owned()))
                .execute(&mut db)
                .await
                .unwrap_or_else(|e| panic!("{stmt}: {e}"));
        }
        let ddl = airlock_policy::statement::receipts_ddl(Engine::Mysql, name);
        sqlx::raw_sql(sqlx::AssertSqlSafe(ddl))
            .execute(&mut db)
            .await
            .unwrap();
        for host in ["localhost", "127.0.0.1", "%"] {
            for grant in [
                format!("GRANT SELECT ON `{name}`.* TO 'airlock_reader'@'{host}'"),
                format!("GRANT SELECT ON `{name}`.* TO 'airlock_writer'@'{host}'"),
                // Least privilege: the receipt table is created by the admin
                // (`airlock writeback migration`), the writer may only use it.
                format!(
                    "GRANT SELECT, INSERT ON `{name}`.`synapsor_writeback_receipts` TO 'airlock_writer'@'{host}'"
                ),
                format!(
                    "GRANT UPDATE (plan_credit_cents, credit_reason, updated_at) ON `{name}`.customers TO 'airlock_writer'@'{host}'"
                ),
                format!(
                    "GRANT UPDATE (status, resolution_note, updated_at) ON `{name}`.support_tickets TO 'airlock_writer'@'{host}'"
                ),
                format!(
                    "GRANT UPDATE (late_fee_cents, waiver_reason, updated_at) ON `{name}`.invoices TO 'airlock_writer'@'{host}'"
                ),
                format!(
                    "GRANT UPDATE (status, status_change_reason, updated_at) ON `{name}`.orders TO 'airlock_writer'@'{host}'"
                ),
            ] {
                sqlx::raw_sql(sqlx::AssertSqlSafe(grant))
                    .execute(&mut db)
                    .await
                    .unwrap();
            }
        }
        Database {
            engine: Engine::Mysql,
            name: name.to_owned(),
            read_url: with_database(
                &with_user(&admin, "airlock_reader", "airlock_reader_password"),
                name,
            ),
            write_url: with_database(
                &with_user(&admin, "airlock_writer", "airlock_writer_password"),
                name,
            ),
            admin_url: db_url,
        }
    })
}

/// The same tables and rows in an SQLite file inside `dir`.
pub fn sqlite_reference(dir: &Path, name: &str) -> Database {
    let fixtures = reference_dir();
    let path = dir.join(format!("{name}.db"));
    let _ = std::fs::remove_file(&path);
    let url = format!("sqlite://{}", path.display());
    block_on(async {
        let opts = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let mut db = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
        for file in ["sqlite.sql", "sqlite-seed.sql"] {
            let sql = std::fs::read_to_string(fixtures.join(file)).unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut db)
                .await
                .unwrap();
        }
    });
    Database {
        engine: Engine::Sqlite,
        name: name.to_owned(),
        read_url: url.clone(),
        write_url: url.clone(),
        admin_url: url,
    }
}

/// The reference config adapted to `db`: same capabilities, with the
/// source's engine and the targets' schema set for that engine. Environment
/// variable names: APP_READ_URL / APP_WRITE_URL, APP_TENANT_ID / APP_PRINCIPAL.
pub fn reference_config_for(db: &Database) -> Value {
    let mut v: Value =
        serde_json::from_slice(&std::fs::read(crate::reference_config()).unwrap()).unwrap();
    let schema = match db.engine {
        Engine::Postgres => "public".to_owned(),
        Engine::Mysql => db.name.clone(),
        Engine::Sqlite => "main".to_owned(),
    };
    v["sources"] = json!({"app": {"engine": db.engine.as_str(), "read_url_env": "APP_READ_URL", "write_url_env": "APP_WRITE_URL", "statement_timeout_ms": 3000}});
    let ctx = json!({"provider": "environment", "values": {"tenant_id_env": "APP_TENANT_ID", "principal_env": "APP_PRINCIPAL"}});
    v["trusted_context"] = ctx.clone();
    v["contexts"] = json!({"local_operator": ctx});
    for cap in v["capabilities"].as_array_mut().unwrap() {
        cap["source"] = json!("app");
        cap["target"]["schema"] = json!(schema);
    }
    v
}

/// Query the database directly (admin URL) and return the rows as JSON text
/// values, for checks that the source is (or is not) changed.
pub fn query_strings(db: &Database, sql: &str) -> Vec<Vec<Option<String>>> {
    rows_as_text(&db.admin_url, sql)
}

/// Read an Airlock ledger file directly (read-only), every column as text.
pub fn ledger_rows(store: &Path, sql: &str) -> Vec<Vec<Option<String>>> {
    rows_as_text(&format!("sqlite://{}?mode=ro", store.display()), sql)
}

/// The rows of `sql` on the database at `url`, every column as text.
fn rows_as_text(url: &str, sql: &str) -> Vec<Vec<Option<String>>> {
    use sqlx::Row;
    block_on(async {
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_all(&mut conn)
            .await
            .unwrap();
        rows.iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| r.try_get::<Option<String>, _>(i).unwrap())
                    .collect()
            })
            .collect()
    })
}

/// A connection to `db` as its admin, through sqlx's engine-neutral driver.
async fn admin(db: &Database) -> sqlx::AnyConnection {
    sqlx::any::install_default_drivers();
    sqlx::AnyConnection::connect(&db.admin_url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test database: {e}"))
}

/// Run SQL (one or more statements) directly as the admin, for test setup
/// and for changing rows behind Airlock's back.
pub fn execute(db: &Database, sql: &str) {
    block_on(async {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut admin(db).await)
            .await
            .unwrap_or_else(|e| panic!("test SQL failed: {e}"));
    })
}

/// A fresh PostgreSQL database `name` for a shared ledger, with the schema
/// made by `airlock ledger migrate --config <config_path>` (its owner is
/// the admin user). Returns its URL.
pub fn migrated_ledger_database(name: &str, config_path: &Path) -> String {
    let url = fresh_postgres_database(name);
    let out = std::process::Command::new(crate::bin("airlock"))
        .args(["ledger", "migrate", "--json", "--config"])
        .arg(config_path)
        .env("AIRLOCK_LEDGER_DATABASE_URL", &url)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "ledger migrate: {out:?}");
    url
}
