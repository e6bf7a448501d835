//! The drift lock (issue 14, item 5) on real PostgreSQL, MariaDB and SQLite:
//! the catalog queries of `policy::catalog_sql` run against each engine with
//! the least-privilege reader, and a locked capability whose table drifts is
//! disabled by the proposer, the executor and reported by `doctor`.

use airlock_policy::catalog_sql::{column_from_row, columns_query};
use airlock_policy::config::Engine;
use airlock_policy::schema_info::ColumnInfo;
use airlock_tests::block_on;
use airlock_tests::databases::{
    Database, execute, mysql_reference, postgres_reference, sqlite_reference,
};
use sqlx::{Connection, Row};

/// The live columns of `schema.table`, read with `url` through sqlx's `Any`
/// driver (as the operator CLI does) using the pinned catalog query.
fn live_columns(engine: Engine, url: &str, schema: &str, table: &str) -> Vec<ColumnInfo> {
    block_on(async {
        sqlx::any::install_default_drivers();
        let mut c = sqlx::AnyConnection::connect(url).await.unwrap();
        let q = columns_query(engine);
        let mut query = sqlx::query(sqlx::AssertSqlSafe(q.sql));
        for v in q.bind_values(schema, table) {
            query = query.bind(v.to_owned());
        }
        query
            .fetch_all(&mut c)
            .await
            .unwrap_or_else(|e| panic!("{engine:?} catalog query: {e}"))
            .iter()
            .map(|r| {
                column_from_row(
                    &r.try_get::<String, _>(0).unwrap(),
                    &r.try_get::<String, _>(1).unwrap(),
                    &r.try_get::<String, _>(2).unwrap(),
                )
                .unwrap()
            })
            .collect()
    })
}

fn col(name: &str, data_type: &str, nullable: bool) -> ColumnInfo {
    ColumnInfo {
        name: name.into(),
        data_type: data_type.into(),
        nullable,
    }
}

/// A table with a spread of types, created as admin; read as the reader.
fn catalog_probe(db: &Database, schema: &str) -> Vec<ColumnInfo> {
    let ddl = match db.engine {
        Engine::Postgres => {
            "CREATE TABLE public.drift_probe (id BIGINT PRIMARY KEY, Email VARCHAR(64) NOT NULL, \
             amount NUMERIC(10,2), seen_at TIMESTAMPTZ, note TEXT); \
             ALTER TABLE public.drift_probe DROP COLUMN note; \
             ALTER TABLE public.drift_probe ADD COLUMN flags INTEGER NOT NULL DEFAULT 0; \
             GRANT SELECT ON public.drift_probe TO synapsor_reader"
        }
        Engine::Mysql => {
            "CREATE TABLE drift_probe (id BIGINT UNSIGNED PRIMARY KEY, Email VARCHAR(64) NOT NULL, \
             amount DECIMAL(10,2), seen_at DATETIME NULL, flags INT NOT NULL DEFAULT 0)"
        }
        Engine::Sqlite => {
            "CREATE TABLE drift_probe (id INTEGER PRIMARY KEY, Email VARCHAR(64) NOT NULL, \
             amount NUMERIC(10,2), seen_at TEXT, flags INT NOT NULL DEFAULT 0)"
        }
    };
    execute(db, ddl);
    live_columns(db.engine, &db.read_url, schema, "drift_probe")
}

#[test]
fn catalog_queries_read_columns_in_order_on_every_engine() {
    let pg = postgres_reference("airlock_drift_catalog");
    assert_eq!(
        catalog_probe(&pg, "public"),
        vec![
            col("id", "bigint", false),
            col("email", "character varying(64)", false),
            col("amount", "numeric(10,2)", true),
            col("seen_at", "timestamp with time zone", true),
            col("flags", "integer", false),
        ],
        "dropped columns are skipped, the order is the table's"
    );
    // A table that does not exist (or another schema) has no columns.
    assert!(live_columns(Engine::Postgres, &pg.read_url, "other", "drift_probe").is_empty());

    let my = mysql_reference("airlock_drift_catalog");
    let got = catalog_probe(&my, "airlock_drift_catalog");
    let names: Vec<&str> = got.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["id", "Email", "amount", "seen_at", "flags"]);
    // MariaDB spells `bigint(20) unsigned`, MySQL 8 `bigint unsigned`.
    assert!(
        got[0].data_type.starts_with("bigint") && got[0].data_type.ends_with(" unsigned"),
        "{got:?}"
    );
    assert!(!got[0].nullable);
    assert_eq!(got[1], col("Email", "varchar(64)", false));
    assert_eq!(got[2], col("amount", "decimal(10,2)", true));
    assert_eq!(got[3], col("seen_at", "datetime", true));
    assert!(
        got[4].data_type.starts_with("int") && !got[4].nullable,
        "{got:?}"
    );
    assert!(
        live_columns(
            Engine::Mysql,
            &my.read_url,
            "information_schema_x",
            "drift_probe"
        )
        .is_empty()
    );

    let dir = tempfile::tempdir().unwrap();
    let lite = sqlite_reference(dir.path(), "drift_catalog");
    assert_eq!(
        catalog_probe(&lite, "main"),
        vec![
            col("id", "integer", true),
            col("Email", "varchar(64)", false),
            col("amount", "numeric(10,2)", true),
            col("seen_at", "text", true),
            col("flags", "int", false),
        ]
    );
    assert!(live_columns(Engine::Sqlite, &lite.read_url, "main", "no_such_table").is_empty());
}
