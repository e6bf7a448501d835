//! Whether a Postgres receipt table may be trusted (edge review F4).
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

use airlock_policy::config::Engine;
use airlock_policy::identifier::quote;
use airlock_policy::statement::RECEIPTS_TABLE;
use sqlx::{AnyConnection, Row};

/// The columns `receipts_ddl` creates on Postgres, as `format_type` names them.
pub const POSTGRES_COLUMNS: [(&str, &str); 13] = [
    ("idempotency_key", "text"),
    ("proposal_id", "text"),
    ("writeback_job_id", "text"),
    ("runner_id", "text"),
    ("status", "text"),
    ("rows_affected", "integer"),
    ("target_table", "text"),
    ("object_id", "text"),
    ("tenant_id", "text"),
    ("previous_version", "text"),
    ("new_version", "text"),
    ("proposal_hash", "text"),
    ("executed_at", "timestamp with time zone"),
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
    let mut expected: Vec<(String, String)> = POSTGRES_COLUMNS
        .iter()
        .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
        .collect();
    let mut sorted = found.clone();
    sorted.sort();
    expected.sort();
    if sorted != expected {
        let show = |cols: &[(String, String)]| {
            cols.iter()
                .map(|(n, t)| format!("{n} {t}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let extra: Vec<(String, String)> = found
            .iter()
            .filter(|c| !expected.contains(c))
            .cloned()
            .collect();
        let missing: Vec<(String, String)> = expected
            .iter()
            .filter(|c| !found.contains(c))
            .cloned()
            .collect();
        return Ok(Trust::Untrusted(format!(
            "{receipts} does not have the columns Airlock creates (missing: [{}]; unexpected: [{}]). Fix: compare it with `airlock writeback migration --engine postgres --schema {schema}`",
            show(&missing),
            show(&extra)
        )));
    }
    if !unique_key {
        return Ok(Trust::Untrusted(format!(
            "{receipts} has no unique key on idempotency_key alone. Fix: recreate it with `airlock writeback migration --engine postgres --schema {schema}`"
        )));
    }
    Ok(Trust::Trusted)
}
