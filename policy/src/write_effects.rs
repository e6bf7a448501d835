//! What an INSERT or DELETE needs from the target table, read from the
//! catalog by the executor with its write credential, and the pure
//! judgement of what it read.
//!
//! - An INSERT's de-duplication identity must be enforced by the source: a
//!   PRIMARY KEY or UNIQUE constraint (whole columns, no partial or
//!   expression index) whose columns all belong to the identity. Ledger
//!   memory alone cannot stop a second row once a receipt is lost.
//! - A hard DELETE must remove exactly one row: a trigger firing on DELETE
//!   (or a Postgres rule), or a foreign key that cascades, sets null or sets
//!   a default in another table, would widen it. Each must be acknowledged
//!   by name in `operation.acknowledge_effects`; a new one refuses again.
//!
//! Every query returns text columns only and binds schema and table as
//! parameters, except SQLite's, whose schema is a reviewed identifier
//! quoted into the text (an attached database cannot be a parameter).

use std::collections::{BTreeMap, BTreeSet};

use crate::config::Operation;
use crate::identifier::{Engine, quote};

/// A catalog query and its parameters, in bind order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogQuery {
    pub sql: String,
    pub binds: Vec<String>,
}

/// Unique indexes of `schema.table`: rows of (index name, column name,
/// `yes` when the index covers the whole column value, else `no`).
pub fn unique_keys_query(engine: Engine, schema: &str, table: &str) -> CatalogQuery {
    let sql = match engine {
        Engine::Postgres => {
            "SELECT CAST(ic.relname AS pg_catalog.text), CAST(a.attname AS pg_catalog.text), \
CASE WHEN i.indpred IS NULL AND i.indexprs IS NULL THEN 'yes' ELSE 'no' END \
FROM pg_catalog.pg_index i \
JOIN pg_catalog.pg_class c ON c.oid = i.indrelid \
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid \
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY (i.indkey) \
WHERE n.nspname = $1 AND c.relname = $2 AND i.indisunique AND i.indisvalid"
                .to_owned()
        }
        Engine::Mysql => {
            "SELECT CAST(INDEX_NAME AS CHAR), CAST(COALESCE(COLUMN_NAME, '') AS CHAR), \
CAST(CASE WHEN SUB_PART IS NULL AND COLUMN_NAME IS NOT NULL THEN 'yes' ELSE 'no' END AS CHAR) \
FROM information_schema.STATISTICS \
WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0"
                .to_owned()
        }
        Engine::Sqlite => "SELECT il.name, COALESCE(ii.name, ''), \
CASE WHEN il.partial = 0 AND ii.name IS NOT NULL THEN 'yes' ELSE 'no' END \
FROM pragma_index_list(?1, ?2) il JOIN pragma_index_info(il.name, ?2) ii \
WHERE il.\"unique\" = 1"
            .to_owned(),
    };
    let binds = match engine {
        Engine::Sqlite => vec![table.to_owned(), schema.to_owned()],
        _ => vec![schema.to_owned(), table.to_owned()],
    };
    CatalogQuery { sql, binds }
}

/// Does a unique index of the table enforce the identity `columns`? Every
/// index is given as its rows from [`unique_keys_query`]; one qualifies
/// when it covers whole column values and all its columns are in the
/// identity (then no two rows can share the identity).
pub fn identity_enforced(rows: &[(String, String, String)], columns: &[String]) -> bool {
    let mut indexes: BTreeMap<&str, (BTreeSet<&str>, bool)> = BTreeMap::new();
    for (index, column, whole) in rows {
        let entry = indexes.entry(index).or_insert((BTreeSet::new(), true));
        entry.0.insert(column);
        entry.1 &= whole == "yes";
    }
    indexes.values().any(|(cols, whole)| {
        *whole && !cols.is_empty() && cols.iter().all(|c| columns.iter().any(|x| x == c))
    })
}

/// What could widen a DELETE of `schema.table`: rows of (kind, name) with
/// kind `trigger` (name: the trigger or rule), `cascade` (name: the
/// `schema.table` whose foreign key acts on delete) or, on MySQL, one
/// `trigger_visibility` row whose name is the count of TRIGGER grants the
/// writer holds (without one, its catalog hides the table's triggers).
pub fn delete_effects_query(engine: Engine, schema: &str, table: &str) -> CatalogQuery {
    match engine {
        Engine::Postgres => CatalogQuery {
            sql: "SELECT 'trigger', CAST(t.tgname AS pg_catalog.text) FROM pg_catalog.pg_trigger t \
JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
WHERE n.nspname = $1 AND c.relname = $2 AND NOT t.tgisinternal AND (t.tgtype & 8) <> 0 \
UNION ALL SELECT 'trigger', CAST(r.rulename AS pg_catalog.text) FROM pg_catalog.pg_rewrite r \
JOIN pg_catalog.pg_class c ON c.oid = r.ev_class JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
WHERE n.nspname = $1 AND c.relname = $2 AND r.ev_type = '4' \
UNION ALL SELECT 'cascade', CAST(rn.nspname AS pg_catalog.text) || '.' || CAST(rc.relname AS pg_catalog.text) \
FROM pg_catalog.pg_constraint k JOIN pg_catalog.pg_class c ON c.oid = k.confrelid \
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace JOIN pg_catalog.pg_class rc ON rc.oid = k.conrelid \
JOIN pg_catalog.pg_namespace rn ON rn.oid = rc.relnamespace \
WHERE n.nspname = $1 AND c.relname = $2 AND k.contype = 'f' AND k.confdeltype IN ('c', 'n', 'd')"
                .to_owned(),
            binds: vec![schema.to_owned(), table.to_owned()],
        },
        // InnoDB's foreign-key catalog needs the PROCESS privilege and
        // refuses without it, so a writer that cannot see cascades fails
        // closed; TYPE bits 1 and 2 are ON DELETE CASCADE and SET NULL.
        Engine::Mysql => CatalogQuery {
            sql: "SELECT CAST('trigger' AS CHAR), CAST(TRIGGER_NAME AS CHAR) FROM information_schema.TRIGGERS \
WHERE EVENT_OBJECT_SCHEMA = ? AND EVENT_OBJECT_TABLE = ? AND EVENT_MANIPULATION = 'DELETE' \
UNION ALL SELECT CAST('cascade' AS CHAR), CAST(REPLACE(FOR_NAME, '/', '.') AS CHAR) \
FROM information_schema.INNODB_SYS_FOREIGN WHERE REF_NAME = CONCAT(?, '/', ?) AND (TYPE & 3) <> 0 \
UNION ALL SELECT CAST('trigger_visibility' AS CHAR), CAST(COUNT(*) AS CHAR) FROM ( \
SELECT 1 AS g FROM information_schema.USER_PRIVILEGES WHERE PRIVILEGE_TYPE = 'TRIGGER' \
UNION ALL SELECT 1 FROM information_schema.SCHEMA_PRIVILEGES WHERE PRIVILEGE_TYPE = 'TRIGGER' AND TABLE_SCHEMA = ? \
UNION ALL SELECT 1 FROM information_schema.TABLE_PRIVILEGES WHERE PRIVILEGE_TYPE = 'TRIGGER' AND TABLE_SCHEMA = ? AND TABLE_NAME = ?) g"
                .to_owned(),
            binds: vec![
                schema.to_owned(),
                table.to_owned(),
                schema.to_owned(),
                table.to_owned(),
                schema.to_owned(),
                schema.to_owned(),
                table.to_owned(),
            ],
        },
        // Every trigger whose text mentions DELETE (a DELETE trigger must);
        // foreign keys are listed whether or not `PRAGMA foreign_keys` is on.
        Engine::Sqlite => {
            let s = quote(engine, schema);
            CatalogQuery {
                sql: format!(
                    "SELECT 'trigger', name FROM {s}.sqlite_master WHERE type = 'trigger' AND tbl_name = ?1 AND upper(sql) LIKE '%DELETE%' \
UNION ALL SELECT 'cascade', ?2 || '.' || m.name FROM {s}.sqlite_master m, pragma_foreign_key_list(m.name, ?2) f \
WHERE m.type = 'table' AND f.\"table\" = ?1 AND f.on_delete IN ('CASCADE', 'SET NULL', 'SET DEFAULT')"
                ),
                binds: vec![table.to_owned(), schema.to_owned()],
            }
        }
    }
}

/// Judge what [`delete_effects_query`] found against the reviewed
/// acknowledgements: `Err` names every effect that is not acknowledged and
/// how to proceed.
pub fn judge_delete_effects(
    engine: Engine,
    rows: &[(String, String)],
    op: &Operation,
) -> Result<(), String> {
    let mut problems = Vec::new();
    if engine == Engine::Mysql
        && !rows
            .iter()
            .any(|(k, n)| k == "trigger_visibility" && n != "0")
    {
        problems.push("the write credential holds no TRIGGER privilege on the table, so its catalog hides any DELETE trigger (grant TRIGGER on the table to the writer)".to_owned());
    }
    let triggers: BTreeSet<&str> = rows
        .iter()
        .filter(|(k, n)| k == "trigger" && !op.acknowledged_triggers.contains(n))
        .map(|(_, n)| n.as_str())
        .collect();
    let cascades: BTreeSet<&str> = rows
        .iter()
        .filter(|(k, n)| k == "cascade" && !op.acknowledged_cascades.contains(n))
        .map(|(_, n)| n.as_str())
        .collect();
    if !triggers.is_empty() {
        problems.push(format!(
            "DELETE triggers not acknowledged: {}",
            triggers.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    if !cascades.is_empty() {
        problems.push(format!(
            "foreign keys that cascade, set null or set default from: {}",
            cascades.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "a delete could change more than the one reviewed row: {}. Use a soft delete (an update), or have a reviewer list each one in `operation.acknowledge_effects` (`triggers`: names, `cascades`: \"schema.table\")",
            problems.join("; ")
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::config::OperationKind;

    fn rows(r: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
        r.iter()
            .map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned()))
            .collect()
    }

    fn cols(c: &[&str]) -> Vec<String> {
        c.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn an_identity_needs_a_whole_unique_index_inside_it() {
        let idx = rows(&[
            ("pk", "id", "yes"),
            ("uq", "tenant_id", "yes"),
            ("uq", "request_id", "yes"),
        ]);
        assert!(identity_enforced(&idx, &cols(&["tenant_id", "request_id"])));
        assert!(identity_enforced(
            &idx,
            &cols(&["request_id", "tenant_id", "x"])
        ));
        assert!(!identity_enforced(&idx, &cols(&["request_id"])));
        assert!(identity_enforced(&idx, &cols(&["id"])));
        assert!(!identity_enforced(&[], &cols(&["id"])));
        // A prefix or partial index does not enforce the whole value.
        let partial = rows(&[("uq", "tenant_id", "yes"), ("uq", "request_id", "no")]);
        assert!(!identity_enforced(
            &partial,
            &cols(&["tenant_id", "request_id"])
        ));
        let expr = rows(&[("e", "", "no")]);
        assert!(!identity_enforced(&expr, &cols(&[""])));
    }

    fn op(triggers: &[&str], cascades: &[&str]) -> Operation {
        Operation {
            kind: OperationKind::Delete,
            acknowledged_triggers: cols(triggers),
            acknowledged_cascades: cols(cascades),
            ..Operation::default()
        }
    }

    fn effects(r: &[(&str, &str)]) -> Vec<(String, String)> {
        r.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn delete_effects_must_each_be_acknowledged() {
        let found = effects(&[("trigger", "audit_del"), ("cascade", "public.lines")]);
        let err = judge_delete_effects(Engine::Postgres, &found, &op(&[], &[])).unwrap_err();
        assert!(
            err.contains("audit_del") && err.contains("public.lines"),
            "{err}"
        );
        let err =
            judge_delete_effects(Engine::Postgres, &found, &op(&["audit_del"], &[])).unwrap_err();
        assert!(
            !err.contains("audit_del") && err.contains("public.lines"),
            "{err}"
        );
        let err = judge_delete_effects(Engine::Postgres, &found, &op(&[], &["public.lines"]))
            .unwrap_err();
        assert!(
            err.contains("audit_del") && !err.contains("public.lines"),
            "{err}"
        );
        assert_eq!(
            judge_delete_effects(
                Engine::Postgres,
                &found,
                &op(&["audit_del"], &["public.lines"])
            ),
            Ok(())
        );
        assert_eq!(
            judge_delete_effects(Engine::Sqlite, &[], &op(&[], &[])),
            Ok(())
        );
    }

    #[test]
    fn mysql_needs_trigger_visibility() {
        let none = effects(&[("trigger_visibility", "0")]);
        let err = judge_delete_effects(Engine::Mysql, &none, &op(&[], &[])).unwrap_err();
        assert!(err.contains("TRIGGER privilege"), "{err}");
        assert!(judge_delete_effects(Engine::Mysql, &[], &op(&[], &[])).is_err());
        let seen = effects(&[("trigger_visibility", "1")]);
        assert_eq!(
            judge_delete_effects(Engine::Mysql, &seen, &op(&[], &[])),
            Ok(())
        );
        // Only MySQL's catalog hides triggers from the writer.
        assert_eq!(
            judge_delete_effects(Engine::Postgres, &none, &op(&[], &[])),
            Ok(())
        );
    }

    #[test]
    fn queries_bind_schema_and_table() {
        let q = unique_keys_query(Engine::Postgres, "public", "credits");
        assert_eq!(q.binds, cols(&["public", "credits"]));
        assert!(q.sql.contains("indisunique") && q.sql.contains("$2"));
        let q = unique_keys_query(Engine::Sqlite, "main", "credits");
        assert_eq!(q.binds, cols(&["credits", "main"]));
        let q = unique_keys_query(Engine::Mysql, "app", "credits");
        assert_eq!(q.binds, cols(&["app", "credits"]));
        assert!(q.sql.contains("NON_UNIQUE = 0"));
        let q = delete_effects_query(Engine::Mysql, "app", "t");
        assert_eq!(q.binds.len(), q.sql.matches('?').count());
        assert_eq!(q.binds, cols(&["app", "t", "app", "t", "app", "app", "t"]));
        let q = delete_effects_query(Engine::Sqlite, "main", "t");
        assert!(q.sql.contains("\"main\".sqlite_master"), "{}", q.sql);
        assert_eq!(q.binds, cols(&["t", "main"]));
        let q = delete_effects_query(Engine::Postgres, "public", "t");
        assert_eq!(q.binds, cols(&["public", "t"]));
        assert!(q.sql.contains("confdeltype IN ('c', 'n', 'd')"));
    }
}
