//! Whether a receipt table may be trusted (edge review F4) and has
//! Synapsor Runner's shape.
//!
//! A row in `synapsor_writeback_receipts` makes the executor answer
//! `already_applied` and write nothing, so whoever can write that table can
//! silently cancel approved changes. The read credential must never be that
//! someone: if it may `CREATE` in the target's schema it can create the
//! table before the executor does and plant receipts in it. So before the
//! executor relies on the table it checks, in the catalog:
//!
//! * **owner**: the writer itself (`current_user`), or a role that already
//!   holds the authority this table would give (a superuser, or a role with
//!   the privileges of the target table's owner or of the schema's owner —
//!   either can rewrite the data or replace the table anyway);
//! * **kind**: a plain table (not a view, foreign or partitioned table) with
//!   no child tables (whose rows a lookup on the parent would include);
//! * **privileges**: `PUBLIC` may not write it;
//! * **shape**: exactly the columns and types `receipts_ddl` creates, with a
//!   unique key on `idempotency_key` alone.
//!
//! Every catalog object is schema-qualified: these queries must not resolve
//! anything through `search_path` either.
//!
//! MySQL/MariaDB and SQLite have no table owners to check, but the shape is
//! checked on every engine before anything is written: a plain table with
//! exactly Synapsor Runner's seven columns (`RECEIPT_COLUMNS`) and a unique
//! key on `idempotency_key` alone. A table of another shape — Airlock's own
//! 13-column table from before 1.0, or one missing `job_id` — is refused with
//! the missing columns named and the fix.

use airlock_policy::config::Engine;
use airlock_policy::identifier::quote;
use airlock_policy::statement::{RECEIPT_COLUMNS, RECEIPTS_TABLE};
use sqlx::{AnyConnection, Row};

/// The columns `receipts_ddl` creates on Postgres (Synapsor Runner's), as
/// `format_type` names them.
pub const POSTGRES_COLUMNS: [(&str, &str); 7] = [
    ("idempotency_key", "text"),
    ("job_id", "text"),
    ("proposal_id", "text"),
    ("status", "text"),
    ("result_hash", "text"),
    ("created_at", "timestamp with time zone"),
    ("completed_at", "timestamp with time zone"),
];

/// What the catalog says about a schema's receipt table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// No such table.
    Missing,
    /// It exists and passes every check.
    Trusted,
    /// It exists and must not be relied on; the text says why and what to do.
    Untrusted(String),
}

/// `"schema".synapsor_writeback_receipts`, as `to_regclass` reads it.
pub fn receipts_regclass(schema: &str) -> String {
    format!(
        "{}.{}",
        quote(Engine::Postgres, schema),
        quote(Engine::Postgres, RECEIPTS_TABLE)
    )
}

/// A Postgres identifier quoted for display in a fix (any name the catalog
/// returns, not only the loader's safe identifiers).
pub fn pg_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn truthy(v: &Option<String>) -> bool {
    matches!(v.as_deref(), Some("true" | "t" | "1"))
}

/// Inspect `schema`'s receipt table on a Postgres connection, for writes to
/// `target_table` (a table name in the same schema) by the connection's
/// `current_user`.
pub async fn inspect_postgres(
    conn: &mut AnyConnection,
    schema: &str,
    target_table: &str,
) -> Result<Trust, sqlx::Error> {
    let receipts = receipts_regclass(schema);
    let target = format!(
        "{}.{}",
        quote(Engine::Postgres, schema),
        quote(Engine::Postgres, target_table)
    );
    let row = sqlx::query(
        "SELECT CAST(c.relkind AS pg_catalog.text), \
                CAST(pg_catalog.pg_get_userbyid(c.relowner) AS pg_catalog.text), \
                CAST(CURRENT_USER AS pg_catalog.text), \
                CAST((c.relowner = (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = CURRENT_USER) \
                      OR pg_catalog.pg_has_role(c.relowner, n.nspowner, 'USAGE') \
                      OR (t.oid IS NOT NULL AND pg_catalog.pg_has_role(c.relowner, t.relowner, 'USAGE'))) AS pg_catalog.text), \
                CAST(pg_catalog.has_table_privilege('public', c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE, TRIGGER') AS pg_catalog.text), \
                CAST(EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i WHERE i.inhparent = c.oid) AS pg_catalog.text), \
                CAST(EXISTS (SELECT 1 FROM pg_catalog.pg_index x \
                              JOIN pg_catalog.pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0] \
                             WHERE x.indrelid = c.oid AND x.indisunique AND x.indnkeyatts = 1 \
                               AND x.indpred IS NULL AND x.indexprs IS NULL \
                               AND a.attname = 'idempotency_key') AS pg_catalog.text) \
           FROM pg_catalog.pg_class c \
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
           LEFT JOIN pg_catalog.pg_class t ON t.oid = pg_catalog.to_regclass($2) \
          WHERE c.oid = pg_catalog.to_regclass($1)",
    )
    .bind(receipts.clone())
    .bind(target)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(Trust::Missing);
    };
    let kind: Option<String> = row.try_get(0)?;
    let owner: String = row.try_get::<Option<String>, _>(1)?.unwrap_or_default();
    let writer: String = row.try_get::<Option<String>, _>(2)?.unwrap_or_default();
    let owner_trusted = truthy(&row.try_get(3)?);
    let public_writes = truthy(&row.try_get(4)?);
    let has_children = truthy(&row.try_get(5)?);
    let unique_key = truthy(&row.try_get(6)?);
    if !owner_trusted {
        return Ok(Trust::Untrusted(format!(
            "{receipts} is owned by `{owner}`, not by the writer `{writer}`, a superuser or the owner of the target table or schema; its rows could make an approved change answer already_applied unwritten. Fix: an administrator inspects and drops it (or ALTER TABLE ... OWNER TO {}) and revokes CREATE on the schema from the read role (`airlock doctor` names it)",
            pg_ident(&writer)
        )));
    }
    if kind.as_deref() != Some("r") || has_children {
        return Ok(Trust::Untrusted(format!(
            "{receipts} is not a plain table without child tables (relkind {}{}). Fix: drop it and let the executor create it, or run `airlock writeback migration`",
            kind.as_deref().unwrap_or("?"),
            if has_children {
                ", has child tables"
            } else {
                ""
            }
        )));
    }
    if public_writes {
        return Ok(Trust::Untrusted(format!(
            "PUBLIC may write {receipts}, so any role could plant receipts. Fix: REVOKE ALL ON {receipts} FROM PUBLIC"
        )));
    }
    let rows = sqlx::query(
        "SELECT CAST(a.attname AS pg_catalog.text), pg_catalog.format_type(a.atttypid, a.atttypmod) \
           FROM pg_catalog.pg_attribute a \
          WHERE a.attrelid = pg_catalog.to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped \
          ORDER BY a.attnum",
    )
    .bind(receipts.clone())
    .fetch_all(&mut *conn)
    .await?;
    let mut found: Vec<(String, String)> = Vec::with_capacity(rows.len());
    for r in rows {
        found.push((
            r.try_get::<Option<String>, _>(0)?.unwrap_or_default(),
            r.try_get::<Option<String>, _>(1)?.unwrap_or_default(),
        ));
    }
    let expected: Vec<(String, String)> = POSTGRES_COLUMNS
        .iter()
        .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
        .collect();
    let show = |c: &(String, String)| format!("{} {}", c.0, c.1);
    if let Some(why) = shape_problem(
        Engine::Postgres,
        schema,
        &receipts,
        &expected.iter().map(show).collect::<Vec<_>>(),
        &found.iter().map(show).collect::<Vec<_>>(),
    ) {
        return Ok(Trust::Untrusted(why));
    }
    if !unique_key {
        return Ok(Trust::Untrusted(no_unique_key(
            Engine::Postgres,
            schema,
            &receipts,
        )));
    }
    Ok(Trust::Trusted)
}

/// The fix for a receipt table of the wrong shape or kind.
fn fix(engine: Engine, schema: &str, receipts: &str) -> String {
    format!(
        "Fix: rename it aside, create {receipts} with the DDL from `airlock writeback migration --engine {} --schema {schema}` and grant the writer SELECT, INSERT on it",
        engine.as_str()
    )
}

fn no_unique_key(engine: Engine, schema: &str, receipts: &str) -> String {
    format!(
        "{receipts} has no unique key on idempotency_key alone. {}",
        fix(engine, schema, receipts)
    )
}

const MAX_UNEXPECTED_SHOWN: usize = 5;

/// Why a receipt table with the `found` columns is not Synapsor Runner's
/// (`expected`), naming the missing and the unexpected columns; `None` when
/// they are the same set.
pub fn shape_problem(
    engine: Engine,
    schema: &str,
    receipts: &str,
    expected: &[String],
    found: &[String],
) -> Option<String> {
    let missing: Vec<&str> = expected
        .iter()
        .filter(|c| !found.contains(c))
        .map(String::as_str)
        .collect();
    let unexpected: Vec<&str> = found
        .iter()
        .filter(|c| !expected.contains(c))
        .map(String::as_str)
        .collect();
    if missing.is_empty() && unexpected.is_empty() {
        return None;
    }
    // Every missing column is named (at most seven); unexpected ones up to
    // five, so the message stays short enough to show whole.
    let mut extra = unexpected
        .iter()
        .take(MAX_UNEXPECTED_SHOWN)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if unexpected.len() > MAX_UNEXPECTED_SHOWN {
        extra.push_str(&format!(
            " and {} more",
            unexpected.len() - MAX_UNEXPECTED_SHOWN
        ));
    }
    Some(format!(
        "{receipts} does not have the columns of Synapsor Runner's receipt table (missing: [{}]; unexpected: [{extra}]). {}",
        missing.join(", "),
        fix(engine, schema, receipts)
    ))
}

/// Inspect `schema`'s receipt table on any engine (see the module docs):
/// on Postgres, trust and shape; on MySQL/MariaDB and SQLite, kind and shape.
pub async fn inspect(
    conn: &mut AnyConnection,
    engine: Engine,
    schema: &str,
    target_table: &str,
) -> Result<Trust, sqlx::Error> {
    match engine {
        Engine::Postgres => inspect_postgres(conn, schema, target_table).await,
        Engine::Mysql => inspect_mysql(conn, schema).await,
        Engine::Sqlite => inspect_sqlite(conn, schema).await,
    }
}

fn expected_names() -> Vec<String> {
    RECEIPT_COLUMNS.iter().map(|c| (*c).to_owned()).collect()
}

/// Checks the receipt table's kind, columns and key from what the catalog
/// said: `kind_ok` (a base table), the column names, and whether a unique
/// key covers `idempotency_key` alone.
fn judge(
    engine: Engine,
    schema: &str,
    kind_ok: bool,
    kind: &str,
    found: &[String],
    unique_key: bool,
) -> Trust {
    let receipts = format!(
        "{}.{}",
        quote(engine, schema),
        quote(engine, RECEIPTS_TABLE)
    );
    if !kind_ok {
        return Trust::Untrusted(format!(
            "{receipts} is not a plain table ({kind}). {}",
            fix(engine, schema, &receipts)
        ));
    }
    // Column names are case-insensitive on MySQL and SQLite.
    let found: Vec<String> = found.iter().map(|c| c.to_ascii_lowercase()).collect();
    if let Some(why) = shape_problem(engine, schema, &receipts, &expected_names(), &found) {
        return Trust::Untrusted(why);
    }
    if !unique_key {
        return Trust::Untrusted(no_unique_key(engine, schema, &receipts));
    }
    Trust::Trusted
}

fn text_at(row: &sqlx::any::AnyRow, i: usize) -> Result<String, sqlx::Error> {
    Ok(row.try_get::<Option<String>, _>(i)?.unwrap_or_default())
}

/// MySQL/MariaDB: `information_schema` shows the writer the table if it
/// holds any privilege on it (SELECT, INSERT suffice).
pub async fn inspect_mysql(conn: &mut AnyConnection, schema: &str) -> Result<Trust, sqlx::Error> {
    let Some(kind) = sqlx::query(
        "SELECT CAST(TABLE_TYPE AS CHAR) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
    )
    .bind(schema.to_owned())
    .bind(RECEIPTS_TABLE)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(Trust::Missing);
    };
    let kind = text_at(&kind, 0)?;
    let mut found = Vec::new();
    for r in sqlx::query(
        "SELECT CAST(COLUMN_NAME AS CHAR) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
    )
    .bind(schema.to_owned())
    .bind(RECEIPTS_TABLE)
    .fetch_all(&mut *conn)
    .await?
    {
        found.push(text_at(&r, 0)?);
    }
    // A unique index whose only column is idempotency_key.
    let unique = sqlx::query(
        "SELECT CAST(COUNT(*) AS CHAR) FROM information_schema.STATISTICS s \
          WHERE s.TABLE_SCHEMA = ? AND s.TABLE_NAME = ? AND s.NON_UNIQUE = 0 \
            AND s.SEQ_IN_INDEX = 1 AND LOWER(s.COLUMN_NAME) = 'idempotency_key' AND s.SUB_PART IS NULL \
            AND NOT EXISTS (SELECT 1 FROM information_schema.STATISTICS t \
                             WHERE t.TABLE_SCHEMA = s.TABLE_SCHEMA AND t.TABLE_NAME = s.TABLE_NAME \
                               AND t.INDEX_NAME = s.INDEX_NAME AND t.SEQ_IN_INDEX > 1)",
    )
    .bind(schema.to_owned())
    .bind(RECEIPTS_TABLE)
    .fetch_one(&mut *conn)
    .await?;
    let unique_key = text_at(&unique, 0)? != "0";
    Ok(judge(
        Engine::Mysql,
        schema,
        kind == "BASE TABLE",
        &kind,
        &found,
        unique_key,
    ))
}

/// SQLite: the schema's catalog and the table-valued pragmas.
pub async fn inspect_sqlite(conn: &mut AnyConnection, schema: &str) -> Result<Trust, sqlx::Error> {
    let master = format!("{}.sqlite_master", quote(Engine::Sqlite, schema));
    let Some(kind) = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT type FROM {master} WHERE name = ?"
    )))
    .bind(RECEIPTS_TABLE)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(Trust::Missing);
    };
    let kind = text_at(&kind, 0)?;
    let mut found = Vec::new();
    for r in sqlx::query("SELECT name FROM pragma_table_info(?, ?) ORDER BY cid")
        .bind(RECEIPTS_TABLE)
        .bind(schema.to_owned())
        .fetch_all(&mut *conn)
        .await?
    {
        found.push(text_at(&r, 0)?);
    }
    let unique = sqlx::query(
        "SELECT CAST(COUNT(*) AS TEXT) FROM pragma_index_list(?1, ?2) il \
          WHERE il.\"unique\" = 1 AND il.partial = 0 \
            AND (SELECT COUNT(*) FROM pragma_index_xinfo(il.name, ?2) x WHERE x.key = 1) = 1 \
            AND (SELECT LOWER(x.name) FROM pragma_index_xinfo(il.name, ?2) x WHERE x.key = 1) = 'idempotency_key'",
    )
    .bind(RECEIPTS_TABLE)
    .bind(schema.to_owned())
    .fetch_one(&mut *conn)
    .await?;
    let unique_key = text_at(&unique, 0)? != "0";
    Ok(judge(
        Engine::Sqlite,
        schema,
        kind == "table",
        &kind,
        &found,
        unique_key,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn postgres_columns_are_the_receipt_columns() {
        let pg: Vec<&str> = POSTGRES_COLUMNS.iter().map(|(n, _)| *n).collect();
        assert_eq!(pg, RECEIPT_COLUMNS);
        assert_eq!(
            POSTGRES_COLUMNS.iter().map(|(_, t)| *t).collect::<Vec<_>>(),
            [
                "text",
                "text",
                "text",
                "text",
                "text",
                "timestamp with time zone",
                "timestamp with time zone"
            ]
        );
    }

    #[test]
    fn the_right_shape_passes_and_another_is_named() {
        let t = "`app`.`synapsor_writeback_receipts`";
        assert_eq!(
            judge(
                Engine::Mysql,
                "app",
                true,
                "BASE TABLE",
                &expected_names(),
                true
            ),
            Trust::Trusted
        );
        // Column names are case-insensitive on MySQL and SQLite; order is free.
        let mut upper: Vec<String> = expected_names()
            .iter()
            .map(|c| c.to_ascii_uppercase())
            .collect();
        upper.reverse();
        assert_eq!(
            judge(Engine::Sqlite, "main", true, "table", &upper, true),
            Trust::Trusted
        );
        // Airlock's own table from before: missing and unexpected columns named.
        let old = names(&[
            "idempotency_key",
            "proposal_id",
            "writeback_job_id",
            "runner_id",
            "status",
            "rows_affected",
            "target_table",
            "object_id",
            "tenant_id",
            "previous_version",
            "new_version",
            "proposal_hash",
            "executed_at",
        ]);
        let Trust::Untrusted(why) = judge(Engine::Mysql, "app", true, "BASE TABLE", &old, true)
        else {
            panic!("the old shape was accepted")
        };
        assert!(why.starts_with(&format!("{t} does not have the columns of Synapsor Runner's receipt table (missing: [job_id, result_hash, created_at, completed_at]; unexpected: [writeback_job_id, runner_id, rows_affected, target_table, object_id and 5 more]).")), "{why}");
        assert!(
            why.ends_with(" Fix: rename it aside, create `app`.`synapsor_writeback_receipts` with the DDL from `airlock writeback migration --engine mysql --schema app` and grant the writer SELECT, INSERT on it"),
            "{why}"
        );
        // Only job_id missing.
        let no_job: Vec<String> = expected_names()
            .into_iter()
            .filter(|c| c != "job_id")
            .collect();
        let Trust::Untrusted(why) = judge(Engine::Sqlite, "main", true, "table", &no_job, true)
        else {
            panic!("a table without job_id was accepted")
        };
        assert!(why.contains("(missing: [job_id]; unexpected: [])"), "{why}");
        assert!(why.contains("--engine sqlite --schema main"), "{why}");
        // An extra column alone is another shape too.
        let mut extra = expected_names();
        extra.push("note".into());
        assert!(matches!(
            judge(Engine::Mysql, "app", true, "BASE TABLE", &extra, true),
            Trust::Untrusted(w) if w.contains("(missing: []; unexpected: [note])")
        ));
        // Five unexpected columns are all named; the sixth is counted.
        for (n, shown) in [(5, "[a, b, c, d, e]"), (6, "[a, b, c, d, e and 1 more]")] {
            let mut cols = expected_names();
            cols.extend(
                ["a", "b", "c", "d", "e", "f"]
                    .iter()
                    .take(n)
                    .map(|c| (*c).to_owned()),
            );
            assert!(matches!(
                judge(Engine::Mysql, "app", true, "BASE TABLE", &cols, true),
                Trust::Untrusted(w) if w.contains(&format!("unexpected: {shown})"))
            ));
        }
        // A view, or no unique key on idempotency_key.
        assert!(matches!(
            judge(Engine::Mysql, "app", false, "VIEW", &expected_names(), true),
            Trust::Untrusted(w) if w.starts_with(&format!("{t} is not a plain table (VIEW). Fix: "))
        ));
        assert!(matches!(
            judge(Engine::Mysql, "app", true, "BASE TABLE", &expected_names(), false),
            Trust::Untrusted(w) if w.starts_with(&format!("{t} has no unique key on idempotency_key alone. Fix: "))
        ));
        assert_eq!(
            shape_problem(
                Engine::Postgres,
                "public",
                "x",
                &expected_names(),
                &expected_names()
            ),
            None
        );
    }
}
