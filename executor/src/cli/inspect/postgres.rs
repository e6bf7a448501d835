//! PostgreSQL: one schema from `pg_catalog`, and the role's posture (the
//! same queries `airlock doctor` checks a reader with).

use std::collections::{BTreeMap, BTreeSet};

use airlock_policy::config::Engine;
use airlock_policy::schema_info::{
    ColumnInfo, ForeignKeyInfo, IndexInfo, SchemaInfo, TableInfo, TableKind,
};
use sqlx::Row;

use super::{InspectError, Posture, PostureFinding};
use crate::cli::doctor::{db_error_text, pg_reader_posture};

fn query_error(e: &sqlx::Error, url: &str) -> InspectError {
    InspectError::Query(db_error_text(Engine::Postgres, e, url))
}

/// A JSON array of names (`to_json(ARRAY(...))`), as a list.
fn names(json: Option<String>) -> Vec<String> {
    json.and_then(|j| serde_json::from_str(&j).ok())
        .unwrap_or_default()
}

fn action(code: &str) -> String {
    match code {
        "a" => "no action",
        "r" => "restrict",
        "c" => "cascade",
        "n" => "set null",
        "d" => "set default",
        _ => "unknown",
    }
    .to_owned()
}

/// The relations inspect lists: tables, partitioned tables, views,
/// materialized views and foreign tables — not the partitions themselves.
const RELATIONS: &str = "c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition";

pub(super) async fn read_on(
    c: &mut sqlx::AnyConnection,
    url: &str,
    schema: Option<&str>,
) -> Result<(SchemaInfo, Posture), InspectError> {
    let err = |e: sqlx::Error| query_error(&e, url);
    // The role's own default schema, before the path is pinned.
    let current: Option<String> =
        sqlx::query("SELECT CAST(pg_catalog.current_schema() AS pg_catalog.text)")
            .fetch_one(&mut *c)
            .await
            .and_then(|r| r.try_get(0))
            .map_err(err)?;
    sqlx::raw_sql(
        "SET search_path = pg_catalog, pg_temp; SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY; SET statement_timeout = 10000",
    )
    .execute(&mut *c)
    .await
    .map_err(err)?;
    let schema = schema
        .map(str::to_owned)
        .or(current)
        .unwrap_or_else(|| "public".to_owned());
    let exists = sqlx::query(
        "SELECT CAST(COUNT(*) AS pg_catalog.text) FROM pg_catalog.pg_namespace WHERE nspname = $1",
    )
    .bind(schema.clone())
    .fetch_one(&mut *c)
    .await
    .and_then(|r| r.try_get::<String, _>(0))
    .map_err(err)?;
    if exists == "0" {
        return Err(InspectError::NoSchema(format!(
            "there is no schema `{schema}` in this database (pass another with --schema)"
        )));
    }

    let mut tables: BTreeMap<String, TableInfo> = BTreeMap::new();
    for r in sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT CAST(c.relname AS pg_catalog.text), CAST(c.relkind AS pg_catalog.text), CAST(c.relrowsecurity AS pg_catalog.text)
           FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = $1 AND {RELATIONS} ORDER BY 1"
    )))
    .bind(schema.clone())
    .fetch_all(&mut *c)
    .await
    .map_err(err)?
    {
        let name: String = r.try_get(0).map_err(err)?;
        let kind: String = r.try_get(1).map_err(err)?;
        let rls: String = r.try_get(2).map_err(err)?;
        tables.insert(
            name.clone(),
            TableInfo {
                name,
                kind: if matches!(kind.as_str(), "v" | "m") {
                    TableKind::View
                } else {
                    TableKind::Table
                },
                columns: vec![],
                primary_key: vec![],
                unique: vec![],
                foreign_keys: vec![],
                indexes: vec![],
                triggers: vec![],
                row_level_security: rls == "true",
            },
        );
    }

    for r in sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT CAST(c.relname AS pg_catalog.text), CAST(a.attname AS pg_catalog.text),
                CAST(pg_catalog.format_type(a.atttypid, a.atttypmod) AS pg_catalog.text),
                CAST(a.attnotnull AS pg_catalog.text)
           FROM pg_catalog.pg_attribute a
           JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = $1 AND {RELATIONS} AND a.attnum > 0 AND NOT a.attisdropped
          ORDER BY c.relname, a.attnum"
    )))
    .bind(schema.clone())
    .fetch_all(&mut *c)
    .await
    .map_err(err)?
    {
        let table: String = r.try_get(0).map_err(err)?;
        let column: String = r.try_get(1).map_err(err)?;
        let data_type: String = r.try_get(2).map_err(err)?;
        let not_null: String = r.try_get(3).map_err(err)?;
        if let Some(t) = tables.get_mut(&table) {
            t.columns.push(ColumnInfo {
                name: column,
                data_type: data_type.to_lowercase(),
                nullable: not_null != "true",
            });
        }
    }

    // Primary keys, UNIQUE constraints and foreign keys, columns in key order.
    for r in sqlx::query(
        "SELECT CAST(c.relname AS pg_catalog.text), CAST(con.contype AS pg_catalog.text),
                CAST(pg_catalog.to_json(ARRAY(
                    SELECT a.attname FROM pg_catalog.unnest(con.conkey) WITH ORDINALITY k(attnum, ord)
                      JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
                     ORDER BY k.ord)) AS pg_catalog.text),
                CAST(CASE WHEN rn.nspname = n.nspname THEN r.relname
                          ELSE rn.nspname OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) r.relname END AS pg_catalog.text),
                CAST(pg_catalog.to_json(ARRAY(
                    SELECT a.attname FROM pg_catalog.unnest(con.confkey) WITH ORDINALITY k(attnum, ord)
                      JOIN pg_catalog.pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum
                     ORDER BY k.ord)) AS pg_catalog.text),
                CAST(con.confdeltype AS pg_catalog.text), CAST(con.confupdtype AS pg_catalog.text)
           FROM pg_catalog.pg_constraint con
           JOIN pg_catalog.pg_class c ON c.oid = con.conrelid
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
           LEFT JOIN pg_catalog.pg_class r ON r.oid = con.confrelid
           LEFT JOIN pg_catalog.pg_namespace rn ON rn.oid = r.relnamespace
          WHERE n.nspname = $1 AND con.contype IN ('p', 'u', 'f')
          ORDER BY c.relname, con.conname",
    )
    .bind(schema.clone())
    .fetch_all(&mut *c)
    .await
    .map_err(err)?
    {
        let table: String = r.try_get(0).map_err(err)?;
        let kind: String = r.try_get(1).map_err(err)?;
        let columns = names(r.try_get(2).map_err(err)?);
        let Some(t) = tables.get_mut(&table) else {
            continue;
        };
        match kind.as_str() {
            "p" => t.primary_key = columns,
            "u" => {
                if !t.unique.contains(&columns) {
                    t.unique.push(columns);
                }
            }
            _ => {
                let references_table: Option<String> = r.try_get(3).map_err(err)?;
                let on_delete: String = r.try_get(5).map_err(err)?;
                let on_update: String = r.try_get(6).map_err(err)?;
                t.foreign_keys.push(ForeignKeyInfo {
                    columns,
                    references_table: references_table.unwrap_or_default(),
                    references_columns: names(r.try_get(4).map_err(err)?),
                    on_delete: action(&on_delete),
                    on_update: action(&on_update),
                });
            }
        }
    }

    // Indexes: key columns only (not INCLUDE), expressions left out.
    for r in sqlx::query(
        "SELECT CAST(t.relname AS pg_catalog.text), CAST(i.relname AS pg_catalog.text),
                CAST(x.indisunique AS pg_catalog.text), CAST(x.indisprimary AS pg_catalog.text),
                CAST(pg_catalog.to_json(ARRAY(
                    SELECT a.attname FROM pg_catalog.unnest(CAST(x.indkey AS pg_catalog.int2[])) WITH ORDINALITY k(attnum, ord)
                      JOIN pg_catalog.pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
                     WHERE k.ord <= x.indnkeyatts
                     ORDER BY k.ord)) AS pg_catalog.text)
           FROM pg_catalog.pg_index x
           JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
           JOIN pg_catalog.pg_class t ON t.oid = x.indrelid
           JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace
          WHERE n.nspname = $1
          ORDER BY t.relname, i.relname",
    )
    .bind(schema.clone())
    .fetch_all(&mut *c)
    .await
    .map_err(err)?
    {
        let table: String = r.try_get(0).map_err(err)?;
        let name: String = r.try_get(1).map_err(err)?;
        let unique: String = r.try_get(2).map_err(err)?;
        let primary: String = r.try_get(3).map_err(err)?;
        let columns = names(r.try_get(4).map_err(err)?);
        let Some(t) = tables.get_mut(&table) else {
            continue;
        };
        let unique = unique == "true";
        if unique && primary != "true" && !columns.is_empty() && !t.unique.contains(&columns) {
            t.unique.push(columns.clone());
        }
        t.indexes.push(IndexInfo {
            name,
            columns,
            unique,
        });
    }

    for r in sqlx::query(
        "SELECT CAST(c.relname AS pg_catalog.text), CAST(tg.tgname AS pg_catalog.text)
           FROM pg_catalog.pg_trigger tg
           JOIN pg_catalog.pg_class c ON c.oid = tg.tgrelid
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = $1 AND NOT tg.tgisinternal
          ORDER BY 1, 2",
    )
    .bind(schema.clone())
    .fetch_all(&mut *c)
    .await
    .map_err(err)?
    {
        let table: String = r.try_get(0).map_err(err)?;
        let name: String = r.try_get(1).map_err(err)?;
        if let Some(t) = tables.get_mut(&table) {
            t.triggers.push(name);
        }
    }

    // The posture: doctor's reader checks, with every table of the schema
    // as a target.
    let targets: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::from([(
        schema.as_str(),
        tables
            .keys()
            .map(String::as_str)
            .collect::<BTreeSet<&str>>(),
    )]);
    let schemas = vec!["pg_catalog".to_owned(), schema.clone()];
    let reader = pg_reader_posture(c, None, &schemas, &targets)
        .await
        .map_err(err)?;
    let mut posture = Posture::empty();
    posture.select_only = reader.findings.is_empty();
    posture.can_write = reader.superuser || !reader.writable.is_empty() || !reader.owned.is_empty();
    posture.superuser = reader.superuser;
    posture.bypass_rls = !reader.bypass_rls.is_empty();
    posture.owns_tables = reader.owned.into_iter().map(|(_, t)| t).collect();
    posture.writable_tables = reader
        .writable
        .into_iter()
        .map(|(s, t)| if s == schema { t } else { format!("{s}.{t}") })
        .collect();
    if reader.writable_more {
        posture.writable_tables.push("…".to_owned());
    }
    posture.findings = reader
        .findings
        .into_iter()
        .map(|f| PostureFinding {
            reason: f.reason,
            fix: f.fix,
        })
        .collect();
    posture.role = Some(reader.reader);

    let info = SchemaInfo {
        engine: Engine::Postgres,
        schema,
        tables: tables.into_values().collect(),
    };
    Ok((info, posture))
}
