//! The onboarding fixtures (`tests/fixtures/onboarding/`): a 30-table
//! multi-tenant SaaS schema and a single-tenant shop schema on PostgreSQL,
//! MariaDB and SQLite, each loaded into its own database with a SELECT-only
//! reader and a writer account — what `airlock inspect` (and `init`) are
//! pointed at.

use std::path::{Path, PathBuf};

use airlock_policy::config::Engine;
use serde_json::Value;
use sqlx::Connection;

use crate::block_on;
use crate::databases::{mysql_admin_url, postgres_admin_url, with_database, with_user};

/// The password of every onboarding account; tests check it is never printed.
pub const PASSWORD: &str = "onb-PLANTED-pw-7f3a";

/// Which fixture schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fixture {
    /// `saas.*.sql`: 30 tables, `org_id` on 27.
    Saas,
    /// `single.*.sql`: no tenant column.
    Single,
}

impl Fixture {
    pub fn as_str(self) -> &'static str {
        match self {
            Fixture::Saas => "saas",
            Fixture::Single => "single",
        }
    }
}

pub fn fixtures_dir() -> PathBuf {
    crate::workspace_root().join("tests/fixtures/onboarding")
}

/// `sensitive.json`: the planted sensitive columns and the plain ones.
pub fn planted() -> Value {
    serde_json::from_slice(&std::fs::read(fixtures_dir().join("sensitive.json")).unwrap()).unwrap()
}

fn sql(fixture: Fixture, engine: &str) -> String {
    std::fs::read_to_string(fixtures_dir().join(format!("{}.{engine}.sql", fixture.as_str())))
        .unwrap()
}

/// A loaded fixture and the URLs of its accounts.
#[derive(Debug, Clone)]
pub struct OnboardingDb {
    pub engine: Engine,
    pub name: String,
    /// SELECT on every table, nothing else.
    pub read_url: String,
    /// Postgres: SELECT, INSERT, UPDATE, DELETE, BYPASSRLS and the owner of
    /// `credits`. MariaDB: SELECT, INSERT, UPDATE, DELETE, TRIGGER.
    /// SQLite: the file itself, read-write.
    pub write_url: String,
    pub admin_url: String,
    /// The role names (Postgres, MariaDB).
    pub reader: String,
    pub writer: String,
}

/// Load `fixture` into a fresh Postgres database `name` (dropped first),
/// with roles `<name>_r` (reader) and `<name>_w` (writer).
pub fn postgres(name: &str, fixture: Fixture) -> OnboardingDb {
    let admin = postgres_admin_url();
    let (reader, writer) = (format!("{name}_r"), format!("{name}_w"));
    let schema = sql(fixture, "postgres");
    block_on(async {
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL is not reachable at {admin}: {e}"));
        for stmt in [
            format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
            format!("DROP ROLE IF EXISTS \"{reader}\""),
            format!("DROP ROLE IF EXISTS \"{writer}\""),
            format!("CREATE DATABASE \"{name}\""),
            format!("CREATE ROLE \"{reader}\" LOGIN PASSWORD '{PASSWORD}'"),
            format!("CREATE ROLE \"{writer}\" LOGIN BYPASSRLS PASSWORD '{PASSWORD}'"),
        ] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(stmt))
                .execute(&mut conn)
                .await
                .unwrap();
        }
        let db_url = with_database(&admin, name);
        let mut db = sqlx::PgConnection::connect(&db_url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(schema))
            .execute(&mut db)
            .await
            .expect("onboarding postgres fixture");
        let mut grants = format!(
            "GRANT USAGE ON SCHEMA public TO \"{reader}\", \"{writer}\";
             GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{reader}\";
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO \"{writer}\";"
        );
        if fixture == Fixture::Saas {
            grants.push_str(&format!(
                "ALTER TABLE public.credits OWNER TO \"{writer}\";"
            ));
        }
        sqlx::raw_sql(sqlx::AssertSqlSafe(grants))
            .execute(&mut db)
            .await
            .unwrap();
        OnboardingDb {
            engine: Engine::Postgres,
            name: name.to_owned(),
            read_url: with_database(&with_user(&admin, &reader, PASSWORD), name),
            write_url: with_database(&with_user(&admin, &writer, PASSWORD), name),
            admin_url: db_url,
            reader,
            writer,
        }
    })
}

/// Load `fixture` into a fresh MariaDB/MySQL database `name`, with accounts
/// `<name>_r` and `<name>_w` (names of at most 32 characters).
pub fn mysql(name: &str, fixture: Fixture) -> OnboardingDb {
    let admin = mysql_admin_url();
    let (reader, writer) = (format!("{name}_r"), format!("{name}_w"));
    let schema = sql(fixture, "mysql");
    block_on(async {
        let mut conn = sqlx::MySqlConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("MariaDB is not reachable at {admin}: {e}"));
        let mut setup = vec![
            format!("DROP DATABASE IF EXISTS `{name}`"),
            format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"),
        ];
        for host in ["localhost", "127.0.0.1", "%"] {
            for user in [&reader, &writer] {
                setup.push(format!("DROP USER IF EXISTS '{user}'@'{host}'"));
                setup.push(format!(
                    "CREATE USER '{user}'@'{host}' IDENTIFIED BY '{PASSWORD}'"
                ));
            }
            setup.push(format!("GRANT SELECT ON `{name}`.* TO '{reader}'@'{host}'"));
            setup.push(format!(
                "GRANT SELECT, INSERT, UPDATE, DELETE, TRIGGER ON `{name}`.* TO '{writer}'@'{host}'"
            ));
        }
        for stmt in setup {
            sqlx::raw_sql(sqlx::AssertSqlSafe(stmt))
                .execute(&mut conn)
                .await
                .unwrap();
        }
        let db_url = with_database(&admin, name);
        let mut db = sqlx::MySqlConnection::connect(&db_url).await.unwrap();
        // No statement of the fixture holds a `;` of its own (the trigger
        // is a single statement).
        for stmt in schema.split(';').map(str::trim).filter(|s| {
            s.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with("--"))
        }) {
            sqlx::raw_sql(sqlx::AssertSqlSafe(stmt.to_owned()))
                .execute(&mut db)
                .await
                .unwrap_or_else(|e| panic!("{stmt}: {e}"));
        }
        OnboardingDb {
            engine: Engine::Mysql,
            name: name.to_owned(),
            read_url: with_database(&with_user(&admin, &reader, PASSWORD), name),
            write_url: with_database(&with_user(&admin, &writer, PASSWORD), name),
            admin_url: db_url,
            reader,
            writer,
        }
    })
}

/// Load `fixture` into a fresh SQLite file `<dir>/<name>.db`. The read URL
/// opens it read-only (`?mode=ro`); the write URL does not.
pub fn sqlite(dir: &Path, name: &str, fixture: Fixture) -> OnboardingDb {
    let path = dir.join(format!("{name}.db"));
    let _ = std::fs::remove_file(&path);
    let schema = sql(fixture, "sqlite");
    block_on(async {
        let opts = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let mut db = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(schema))
            .execute(&mut db)
            .await
            .expect("onboarding sqlite fixture");
        db.close().await.unwrap();
    });
    let url = format!("sqlite://{}", path.display());
    OnboardingDb {
        engine: Engine::Sqlite,
        name: name.to_owned(),
        read_url: format!("{url}?mode=ro"),
        write_url: url.clone(),
        admin_url: url,
        reader: String::new(),
        writer: String::new(),
    }
}
