//! Freshness-bound approval: the SQL that reads (and, at apply, locks) a
//! reviewed dependency row's version, and the judgement of what it found.
//!
//! A dependency row is found exactly as its read capability finds it: by
//! primary key (bound with the column's own type, so the key's index is
//! used) and by the trusted tenant. Its version column is read as text, so
//! any version type (timestamp, integer, text) compares exactly.

use serde_json::Value;

use crate::config::{Engine, Target};
use crate::identifier::{is_safe_identifier, quote};
use crate::statement::{Bind, BoundStatement, WriteDialect, is_text_type};

/// One dependency row of a proposal: where it is, and the version it had
/// when the executor recorded the proposal.
#[derive(Debug, Clone)]
pub struct DependencyRow<'a> {
    pub target: &'a Target,
    pub key: &'a Value,
    pub version_column: &'a str,
    /// The trusted tenant (when the table has a tenant key).
    pub tenant: Option<&'a str>,
}

fn param(d: &WriteDialect<'_>, column: &str, n: usize) -> String {
    match d.engine {
        Engine::Postgres => match (d.column_type)(column) {
            Some(t) => format!("CAST(${n} AS {t})"),
            None => format!("${n}"),
        },
        Engine::Mysql | Engine::Sqlite => "?".to_owned(),
    }
}

/// Whether every identifier of `row` is one the loader would accept (the
/// stored record is re-checked before any SQL is built from it).
pub fn identifiers_are_safe(row: &DependencyRow<'_>) -> bool {
    [
        row.target.schema.as_str(),
        row.target.table.as_str(),
        row.target.primary_key.as_str(),
        row.version_column,
    ]
    .into_iter()
    .chain(row.target.tenant_key.as_deref())
    .all(is_safe_identifier)
}

/// `SELECT <version as text> FROM <table> WHERE <key> AND <tenant>`; with
/// `lock`, `FOR UPDATE` (Postgres, MySQL; SQLite's apply transaction is
/// `BEGIN IMMEDIATE`, which already serializes writers).
pub fn dependency_select(
    d: &WriteDialect<'_>,
    row: &DependencyRow<'_>,
    lock: bool,
) -> BoundStatement {
    let e = d.engine;
    let t = row.target;
    let ver = quote(e, row.version_column);
    let version = match e {
        Engine::Postgres => format!("{ver}::pg_catalog.text"),
        Engine::Mysql => format!("CAST({ver} AS CHAR)"),
        Engine::Sqlite => format!("CAST({ver} AS TEXT)"),
    };
    let pk = quote(e, &t.primary_key);
    let mut binds = vec![Bind {
        column: Some(t.primary_key.clone()),
        value: row.key.clone(),
    }];
    let mut sql = format!(
        "SELECT {version} FROM {}.{} WHERE {pk} = {}",
        quote(e, &t.schema),
        quote(e, &t.table),
        param(d, &t.primary_key, 1)
    );
    if e == Engine::Mysql && (d.column_type)(&t.primary_key).is_some_and(|c| is_text_type(&c)) {
        binds.push(Bind {
            column: Some(t.primary_key.clone()),
            value: row.key.clone(),
        });
        sql.push_str(&format!(" AND CAST({pk} AS BINARY) = CAST(? AS BINARY)"));
    }
    if let Some(tk) = &t.tenant_key {
        binds.push(Bind {
            column: None,
            value: Value::String(row.tenant.unwrap_or_default().to_owned()),
        });
        let col = quote(e, tk);
        let n = binds.len();
        sql.push_str(&match e {
            Engine::Postgres => format!(" AND {col}::pg_catalog.text = ${n}"),
            Engine::Mysql => {
                format!(" AND CAST(CAST({col} AS CHAR) AS BINARY) = CAST(? AS BINARY)")
            }
            Engine::Sqlite => format!(" AND CAST({col} AS TEXT) = ?"),
        });
    }
    if lock && e != Engine::Sqlite {
        sql.push_str(" FOR UPDATE");
    }
    BoundStatement { sql, binds }
}

/// What re-reading one dependency row found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DependencyState {
    /// The version is the one recorded with the proposal.
    Current,
    /// The row has another version now.
    Changed,
    /// No such row for this tenant any more.
    Gone,
}

/// Judge a re-read: `found` is `None` when no row came back, else the
/// row's version as text (`None` for SQL NULL); `recorded` is the version
/// the proposal was made with.
pub fn judge_dependency(recorded: Option<&str>, found: Option<Option<&str>>) -> DependencyState {
    match found {
        None => DependencyState::Gone,
        Some(v) if v == recorded => DependencyState::Current,
        Some(_) => DependencyState::Changed,
    }
}

/// The order dependency rows are locked in at apply (after the target):
/// by schema, table, then key text, so two applies never take the same
/// rows in opposite orders.
pub fn lock_order<T>(rows: &mut [T], key: impl Fn(&T) -> (String, String, String)) {
    rows.sort_by_key(|r| key(r));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn target(tenant: bool) -> Target {
        Target {
            schema: "public".into(),
            table: "invoices".into(),
            primary_key: "id".into(),
            tenant_key: tenant.then(|| "tenant_id".into()),
            principal_scope_key: None,
        }
    }

    #[test]
    fn the_select_finds_the_row_by_typed_key_and_tenant_and_locks_only_at_apply() {
        let t = target(true);
        let key = json!(42);
        let row = DependencyRow {
            target: &t,
            key: &key,
            version_column: "updated_at",
            tenant: Some("acme"),
        };
        let types = |c: &str| (c == "id").then(|| "integer".to_owned());
        let pg = WriteDialect {
            engine: Engine::Postgres,
            column_type: &types,
        };
        let s = dependency_select(&pg, &row, true);
        assert_eq!(
            s.sql,
            "SELECT \"updated_at\"::pg_catalog.text FROM \"public\".\"invoices\" WHERE \"id\" = CAST($1 AS integer) AND \"tenant_id\"::pg_catalog.text = $2 FOR UPDATE"
        );
        assert_eq!(s.binds.len(), 2);
        assert_eq!(s.binds[0].value, json!(42));
        assert_eq!(s.binds[1].value, json!("acme"));
        assert!(
            !dependency_select(&pg, &row, false)
                .sql
                .contains("FOR UPDATE")
        );

        let text = |c: &str| (c == "id").then(|| "varchar(64)".to_owned());
        let my = WriteDialect {
            engine: Engine::Mysql,
            column_type: &text,
        };
        let s = dependency_select(&my, &row, true);
        assert_eq!(
            s.sql,
            "SELECT CAST(`updated_at` AS CHAR) FROM `public`.`invoices` WHERE `id` = ? AND CAST(`id` AS BINARY) = CAST(? AS BINARY) AND CAST(CAST(`tenant_id` AS CHAR) AS BINARY) = CAST(? AS BINARY) FOR UPDATE"
        );
        assert_eq!(s.binds.len(), 3);
        let int = |_: &str| Some("int".to_owned());
        let my_int = WriteDialect {
            engine: Engine::Mysql,
            column_type: &int,
        };
        assert_eq!(dependency_select(&my_int, &row, false).binds.len(), 2);

        let none = |_: &str| None;
        let lite = WriteDialect {
            engine: Engine::Sqlite,
            column_type: &none,
        };
        let t = target(false);
        let row = DependencyRow {
            target: &t,
            key: &key,
            version_column: "updated_at",
            tenant: None,
        };
        let s = dependency_select(&lite, &row, true);
        assert_eq!(
            s.sql,
            "SELECT CAST(\"updated_at\" AS TEXT) FROM \"public\".\"invoices\" WHERE \"id\" = ?"
        );
        assert_eq!(s.binds.len(), 1);
        let pg_untyped = WriteDialect {
            engine: Engine::Postgres,
            column_type: &none,
        };
        assert!(
            dependency_select(&pg_untyped, &row, false)
                .sql
                .ends_with("WHERE \"id\" = $1")
        );
    }

    #[test]
    fn unsafe_stored_identifiers_are_refused() {
        let key = json!(1);
        let mut t = target(true);
        let ok = |t: &Target, v: &str| {
            identifiers_are_safe(&DependencyRow {
                target: t,
                key: &key,
                version_column: v,
                tenant: None,
            })
        };
        assert!(ok(&t, "updated_at"));
        assert!(!ok(&t, "updated_at; DROP TABLE x"));
        t.tenant_key = Some("t\"x".into());
        assert!(!ok(&t, "updated_at"));
        let mut t = target(false);
        t.table = "a b".into();
        assert!(!ok(&t, "updated_at"));
        let mut t = target(false);
        t.schema = "".into();
        assert!(!ok(&t, "v"));
        let mut t = target(false);
        t.primary_key = "-".into();
        assert!(!ok(&t, "v"));
    }

    #[test]
    fn a_dependency_is_current_only_at_its_recorded_version() {
        assert_eq!(
            judge_dependency(Some("v1"), Some(Some("v1"))),
            DependencyState::Current
        );
        assert_eq!(
            judge_dependency(Some("v1"), Some(Some("v2"))),
            DependencyState::Changed
        );
        assert_eq!(
            judge_dependency(Some("v1"), Some(None)),
            DependencyState::Changed
        );
        assert_eq!(judge_dependency(None, Some(None)), DependencyState::Current);
        assert_eq!(judge_dependency(Some("v1"), None), DependencyState::Gone);
    }

    #[test]
    fn rows_are_locked_in_one_order() {
        let mut rows = vec![
            ("s", "b", "2"),
            ("s", "a", "9"),
            ("r", "z", "1"),
            ("s", "a", "1"),
        ];
        lock_order(&mut rows, |r| (r.0.into(), r.1.into(), r.2.into()));
        assert_eq!(
            rows,
            vec![
                ("r", "z", "1"),
                ("s", "a", "1"),
                ("s", "a", "9"),
                ("s", "b", "2")
            ]
        );
    }
}
