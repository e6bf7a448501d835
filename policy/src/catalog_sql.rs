//! The catalog query that reads one table's columns, per engine.
//!
//! Metadata only: each query reads the engine's catalog (`pg_catalog`,
//! `information_schema.COLUMNS`, `pragma_table_info`), never a business row.
//! Every query returns, in the table's column order, three text columns:
//!
//! | column      | meaning                                             |
//! |-------------|-----------------------------------------------------|
//! | `name`      | the column's name                                   |
//! | `data_type` | the type as the catalog spells it, lower-cased      |
//! | `nullable`  | `yes` or `no`                                       |
//!
//! All three are text on every engine (MySQL's catalog columns are cast to
//! `CHAR`), so sqlx's `Any` driver and the typed drivers decode them alike.
//! The schema and table names are bound parameters, never SQL text; the order
//! of the parameters is given by [`ColumnsQuery::params`].
//! [`column_from_row`] turns one result row into a [`ColumnInfo`].

use crate::identifier::Engine;
use crate::schema_info::ColumnInfo;

/// One bound parameter of a catalog query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogParam {
    /// The schema (Postgres), database (MySQL) or attached database name
    /// (SQLite, usually `main`).
    Schema,
    /// The table or view name.
    Table,
}

/// A catalog query and the order of its bound parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnsQuery {
    pub sql: &'static str,
    pub params: &'static [CatalogParam],
}

impl ColumnsQuery {
    /// The parameter values in bind order.
    pub fn bind_values<'a>(&self, schema: &'a str, table: &'a str) -> Vec<&'a str> {
        self.params
            .iter()
            .map(|p| match p {
                CatalogParam::Schema => schema,
                CatalogParam::Table => table,
            })
            .collect()
    }
}

/// Postgres: `pg_catalog` only (schema-qualified, so `search_path` cannot
/// redirect it); tables, partitioned tables, views, materialized views and
/// foreign tables; dropped columns skipped; `format_type` spells the type
/// with its modifier (`character varying(64)`, `numeric(10,2)`).
pub const POSTGRES_COLUMNS: &str = "SELECT CAST(a.attname AS pg_catalog.text) AS name, \
pg_catalog.lower(pg_catalog.format_type(a.atttypid, a.atttypmod)) AS data_type, \
CASE WHEN a.attnotnull THEN 'no' ELSE 'yes' END AS nullable \
FROM pg_catalog.pg_attribute a \
JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
WHERE n.nspname = $1 AND c.relname = $2 \
AND c.relkind IN ('r', 'p', 'v', 'm', 'f') \
AND a.attnum > 0 AND NOT a.attisdropped \
ORDER BY a.attnum";

/// MySQL/MariaDB: `information_schema.COLUMNS`, `COLUMN_TYPE` (with length
/// and `unsigned`), every value cast to `CHAR`.
pub const MYSQL_COLUMNS: &str = "SELECT CAST(COLUMN_NAME AS CHAR) AS name, \
CAST(LOWER(COLUMN_TYPE) AS CHAR) AS data_type, \
CAST(LOWER(IS_NULLABLE) AS CHAR) AS nullable \
FROM information_schema.COLUMNS \
WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
ORDER BY ORDINAL_POSITION";

/// SQLite: the `pragma_table_info(table, schema)` table-valued function; the
/// declared type, lower-cased (empty when the column declares none).
pub const SQLITE_COLUMNS: &str = "SELECT name AS name, \
lower(type) AS data_type, \
CASE WHEN \"notnull\" THEN 'no' ELSE 'yes' END AS nullable \
FROM pragma_table_info(?, ?) \
ORDER BY cid";

const SCHEMA_TABLE: &[CatalogParam] = &[CatalogParam::Schema, CatalogParam::Table];
const TABLE_SCHEMA: &[CatalogParam] = &[CatalogParam::Table, CatalogParam::Schema];

/// The query reading one table's columns on `engine`.
pub fn columns_query(engine: Engine) -> ColumnsQuery {
    match engine {
        Engine::Postgres => ColumnsQuery {
            sql: POSTGRES_COLUMNS,
            params: SCHEMA_TABLE,
        },
        Engine::Mysql => ColumnsQuery {
            sql: MYSQL_COLUMNS,
            params: SCHEMA_TABLE,
        },
        Engine::Sqlite => ColumnsQuery {
            sql: SQLITE_COLUMNS,
            params: TABLE_SCHEMA,
        },
    }
}

/// One result row of a [`columns_query`] as a [`ColumnInfo`]. The type is
/// lower-cased again (the queries already do; a caller's own query may not)
/// and `nullable` must be `yes` or `no` in any case.
pub fn column_from_row(name: &str, data_type: &str, nullable: &str) -> Result<ColumnInfo, String> {
    let nullable = match nullable.to_ascii_lowercase().as_str() {
        "yes" => true,
        "no" => false,
        other => {
            return Err(format!(
                "catalog row for column `{name}`: nullable is `{other}`, expected `yes` or `no`"
            ));
        }
    };
    Ok(ColumnInfo {
        name: name.to_owned(),
        data_type: data_type.to_lowercase(),
        nullable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_text_is_pinned() {
        let q = columns_query(Engine::Postgres);
        assert_eq!(
            q.sql,
            "SELECT CAST(a.attname AS pg_catalog.text) AS name, \
pg_catalog.lower(pg_catalog.format_type(a.atttypid, a.atttypmod)) AS data_type, \
CASE WHEN a.attnotnull THEN 'no' ELSE 'yes' END AS nullable \
FROM pg_catalog.pg_attribute a \
JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
WHERE n.nspname = $1 AND c.relname = $2 \
AND c.relkind IN ('r', 'p', 'v', 'm', 'f') \
AND a.attnum > 0 AND NOT a.attisdropped \
ORDER BY a.attnum"
        );
        assert_eq!(q.params, &[CatalogParam::Schema, CatalogParam::Table]);
        assert_eq!(q.bind_values("s", "t"), vec!["s", "t"]);
    }

    #[test]
    fn mysql_text_is_pinned() {
        let q = columns_query(Engine::Mysql);
        assert_eq!(
            q.sql,
            "SELECT CAST(COLUMN_NAME AS CHAR) AS name, \
CAST(LOWER(COLUMN_TYPE) AS CHAR) AS data_type, \
CAST(LOWER(IS_NULLABLE) AS CHAR) AS nullable \
FROM information_schema.COLUMNS \
WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
ORDER BY ORDINAL_POSITION"
        );
        assert_eq!(q.params, &[CatalogParam::Schema, CatalogParam::Table]);
        assert_eq!(q.bind_values("db", "t"), vec!["db", "t"]);
    }

    #[test]
    fn sqlite_text_is_pinned() {
        let q = columns_query(Engine::Sqlite);
        assert_eq!(
            q.sql,
            "SELECT name AS name, \
lower(type) AS data_type, \
CASE WHEN \"notnull\" THEN 'no' ELSE 'yes' END AS nullable \
FROM pragma_table_info(?, ?) \
ORDER BY cid"
        );
        // pragma_table_info takes the table first, then the schema.
        assert_eq!(q.params, &[CatalogParam::Table, CatalogParam::Schema]);
        assert_eq!(q.bind_values("main", "t"), vec!["t", "main"]);
    }

    #[test]
    fn no_query_names_a_business_table_or_reads_rows() {
        for e in [Engine::Postgres, Engine::Mysql, Engine::Sqlite] {
            let sql = columns_query(e).sql;
            assert!(sql.starts_with("SELECT "), "{sql}");
            assert!(!sql.contains(';'), "{sql}");
            // Exactly as many placeholders as bound parameters.
            let n = sql.matches('?').count() + sql.matches('$').count();
            assert_eq!(n, columns_query(e).params.len(), "{sql}");
        }
    }

    #[test]
    fn rows_become_column_infos() {
        assert_eq!(
            column_from_row("Email", "CHARACTER VARYING(64)", "YES").unwrap(),
            ColumnInfo {
                name: "Email".into(),
                data_type: "character varying(64)".into(),
                nullable: true,
            }
        );
        assert_eq!(
            column_from_row("id", "bigint", "no").unwrap(),
            ColumnInfo {
                name: "id".into(),
                data_type: "bigint".into(),
                nullable: false,
            }
        );
        let err = column_from_row("id", "bigint", "maybe").unwrap_err();
        assert_eq!(
            err,
            "catalog row for column `id`: nullable is `maybe`, expected `yes` or `no`"
        );
    }
}
