//! MySQL/MariaDB: one database from `information_schema`, and the
//! account's posture from `SHOW GRANTS` (the same reading `airlock doctor`
//! checks a reader with).

use std::collections::{BTreeMap, BTreeSet};

use airlock_policy::config::Engine;
use airlock_policy::schema_info::{
    ColumnInfo, ForeignKeyInfo, IndexInfo, SchemaInfo, TableInfo, TableKind,
};
use sqlx::Row;

use super::{InspectError, Posture, PostureFinding};
use crate::cli::doctor::{db_error_text, mysql_grant_finding, mysql_grants, mysql_object_in};

/// Privileges that let an account change rows.
const WRITES: &[&str] = &["ALL PRIVILEGES", "ALL", "INSERT", "UPDATE", "DELETE"];

fn text(r: &sqlx::any::AnyRow, i: usize) -> Result<String, sqlx::Error> {
    Ok(r.try_get::<Option<String>, _>(i)?.unwrap_or_default())
}

pub(super) async fn read_on(
    c: &mut sqlx::AnyConnection,
    url: &str,
    schema: Option<&str>,
) -> Result<(SchemaInfo, Posture), InspectError> {
    let err = |e: sqlx::Error| InspectError::Query(db_error_text(Engine::Mysql, &e, url));
    sqlx::raw_sql("SET SESSION TRANSACTION READ ONLY")
        .execute(&mut *c)
        .await
        .map_err(err)?;
    let current: Option<String> = sqlx::query("SELECT CAST(DATABASE() AS CHAR)")
        .fetch_one(&mut *c)
        .await
        .and_then(|r| r.try_get(0))
        .map_err(err)?;
    let Some(schema) = schema.map(str::to_owned).or(current) else {
        return Err(InspectError::NoSchema(
            "the URL names no database: add it to the URL (mysql://…/DATABASE) or pass --schema"
                .to_owned(),
        ));
    };
    let visible = sqlx::query(
        "SELECT CAST(COUNT(*) AS CHAR) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
    )
    .bind(schema.clone())
    .fetch_one(&mut *c)
    .await
    .and_then(|r| text(&r, 0))
    .map_err(err)?;
    if visible == "0" {
        return Err(InspectError::NoSchema(format!(
            "there is no database `{schema}`, or this account may not see it"
        )));
    }

    let mut tables: BTreeMap<String, TableInfo> = BTreeMap::new();
    for r in sqlx::query(
        "SELECT CAST(TABLE_NAME AS CHAR), CAST(TABLE_TYPE AS CHAR) FROM information_schema.TABLES
          WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME",
    )
    .bind(schema.clone())
    .fetch_all(&mut *c)
    .await
    .map_err(err)?
    {
        let name = text(&r, 0).map_err(err)?;
        let kind = text(&r, 1).map_err(err)?;
        tables.insert(
            name.clone(),
            TableInfo {
                name,
                kind: if kind.contains("VIEW") {
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
                row_level_security: false,
            },
        );
    }

    for r in sqlx::query(
        "SELECT CAST(TABLE_NAME AS CHAR), CAST(COLUMN_NAME AS CHAR), CAST(COLUMN_TYPE AS CHAR), CAST(IS_NULLABLE AS CHAR)
           FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ?
          ORDER BY TABLE_NAME, ORDINAL_POSITION",
    )
    .bind(schema.clone())
    .fetch_all(&mut *c)
    .await
    .map_err(err)?
    {
        let table = text(&r, 0).map_err(err)?;
        if let Some(t) = tables.get_mut(&table) {
            t.columns.push(ColumnInfo {
                name: text(&r, 1).map_err(err)?,
                data_type: text(&r, 2).map_err(err)?.to_lowercase(),
                nullable: text(&r, 3).map_err(err)? == "YES",
            });
        }
    }

    // MariaDB stores JSON as longtext with a `json_valid(col)` check: name
    // the declared type. (MySQL reports `json` itself; a server without
    // this table has no such columns.)
    if let Ok(rows) = sqlx::query(
        "SELECT CAST(TABLE_NAME AS CHAR), CAST(CONSTRAINT_NAME AS CHAR), CAST(CHECK_CLAUSE AS CHAR)
           FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ?",
    )
    .bind(schema.clone())
    .fetch_all(&mut *c)
    .await
    {
        for r in rows {
            let (Ok(table), Ok(column), Ok(clause)) = (text(&r, 0), text(&r, 1), text(&r, 2))
            else {
                continue;
            };
            let json_check = clause.eq_ignore_ascii_case(&format!("json_valid(`{column}`)"));
            if let Some(col) = tables
                .get_mut(&table)
                .and_then(|t| t.columns.iter_mut().find(|c| c.name == column))
                .filter(|_| json_check)
            {
                col.data_type = "json".to_owned();
            }
        }
    }

    // Indexes, the primary key among them (`PRIMARY`), columns in order.
    let mut indexes: BTreeMap<(String, String), (bool, Vec<String>)> = BTreeMap::new();
    for r in sqlx::query(
        "SELECT CAST(TABLE_NAME AS CHAR), CAST(INDEX_NAME AS CHAR), CAST(NON_UNIQUE AS CHAR), CAST(COLUMN_NAME AS CHAR)
           FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ?
          ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX",
    )
    .bind(schema.clone())
    .fetch_all(&mut *c)
    .await
    .map_err(err)?
    {
        let key = (text(&r, 0).map_err(err)?, text(&r, 1).map_err(err)?);
        let unique = text(&r, 2).map_err(err)? == "0";
        // NULL for a functional key part (MySQL 8): left out.
        let column: Option<String> = r.try_get(3).map_err(err)?;
        let e = indexes.entry(key).or_insert((unique, vec![]));
        if let Some(col) = column {
            e.1.push(col);
        }
    }
    for ((table, name), (unique, columns)) in indexes {
        let Some(t) = tables.get_mut(&table) else {
            continue;
        };
        if name == "PRIMARY" {
            t.primary_key = columns.clone();
        } else if unique && !columns.is_empty() && !t.unique.contains(&columns) {
            t.unique.push(columns.clone());
        }
        t.indexes.push(IndexInfo {
            name,
            columns,
            unique,
        });
    }

    let mut fks: BTreeMap<(String, String), ForeignKeyInfo> = BTreeMap::new();
    for r in sqlx::query(
        "SELECT CAST(k.TABLE_NAME AS CHAR), CAST(k.CONSTRAINT_NAME AS CHAR), CAST(k.COLUMN_NAME AS CHAR),
                CAST(k.REFERENCED_TABLE_SCHEMA AS CHAR), CAST(k.REFERENCED_TABLE_NAME AS CHAR),
                CAST(k.REFERENCED_COLUMN_NAME AS CHAR), CAST(rc.DELETE_RULE AS CHAR), CAST(rc.UPDATE_RULE AS CHAR)
           FROM information_schema.KEY_COLUMN_USAGE k
           LEFT JOIN information_schema.REFERENTIAL_CONSTRAINTS rc
             ON rc.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND rc.CONSTRAINT_NAME = k.CONSTRAINT_NAME
            AND rc.TABLE_NAME = k.TABLE_NAME
          WHERE k.TABLE_SCHEMA = ? AND k.REFERENCED_TABLE_NAME IS NOT NULL
          ORDER BY k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION",
    )
    .bind(schema.clone())
    .fetch_all(&mut *c)
    .await
    .map_err(err)?
    {
        let table = text(&r, 0).map_err(err)?;
        let name = text(&r, 1).map_err(err)?;
        let ref_schema = text(&r, 3).map_err(err)?;
        let ref_table = text(&r, 4).map_err(err)?;
        let references_table = if ref_schema == schema {
            ref_table
        } else {
            format!("{ref_schema}.{ref_table}")
        };
        let e = fks
            .entry((table, name))
            .or_insert_with(|| ForeignKeyInfo {
                columns: vec![],
                references_table,
                references_columns: vec![],
                on_delete: String::new(),
                on_update: String::new(),
            });
        e.columns.push(text(&r, 2).map_err(err)?);
        e.references_columns.push(text(&r, 5).map_err(err)?);
        // Empty when REFERENTIAL_CONSTRAINTS is hidden (see below).
        e.on_delete = text(&r, 6).map_err(err)?.to_lowercase();
        e.on_update = text(&r, 7).map_err(err)?.to_lowercase();
    }
    // MariaDB hides REFERENTIAL_CONSTRAINTS from an account that may only
    // SELECT: read the actions from the table's definition instead.
    let mut ddl: BTreeMap<String, String> = BTreeMap::new();
    for ((table, name), mut fk) in fks {
        if fk.on_delete.is_empty() {
            if !ddl.contains_key(&table) {
                let sql = format!(
                    "SHOW CREATE TABLE `{}`.`{}`",
                    schema.replace('`', "``"),
                    table.replace('`', "``")
                );
                let text = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .fetch_one(&mut *c)
                    .await
                    .and_then(|r| text(&r, 1))
                    .map_err(err)?;
                ddl.insert(table.clone(), text);
            }
            let (on_delete, on_update) = ddl
                .get(&table)
                .and_then(|d| fk_actions(d, &name))
                .unwrap_or_else(|| ("unknown".to_owned(), "unknown".to_owned()));
            fk.on_delete = on_delete;
            fk.on_update = on_update;
        }
        if let Some(t) = tables.get_mut(&table) {
            t.foreign_keys.push(fk);
        }
    }

    for r in sqlx::query(
        "SELECT CAST(EVENT_OBJECT_TABLE AS CHAR), CAST(TRIGGER_NAME AS CHAR) FROM information_schema.TRIGGERS
          WHERE EVENT_OBJECT_SCHEMA = ? ORDER BY 1, 2",
    )
    .bind(schema.clone())
    .fetch_all(&mut *c)
    .await
    .map_err(err)?
    {
        let table = text(&r, 0).map_err(err)?;
        let name = text(&r, 1).map_err(err)?;
        if let Some(t) = tables.get_mut(&table)
            && !t.triggers.contains(&name)
        {
            t.triggers.push(name);
        }
    }

    // The posture: the account's own grants, as doctor reads them.
    let (user, lines) = mysql_grants(c).await.map_err(err)?;
    let this: BTreeSet<&str> = BTreeSet::from([schema.as_str()]);
    let mut posture = Posture::empty();
    for (privileges, object) in lines.iter().filter_map(|l| mysql_grant_finding(l)) {
        if !mysql_object_in(&object, &this) {
            continue;
        }
        let names: Vec<&str> = privileges.split(", ").collect();
        if names.iter().any(|p| WRITES.contains(p)) {
            posture.can_write = true;
        }
        let everything = object == "*.*";
        if everything
            && names
                .iter()
                .any(|p| matches!(*p, "ALL PRIVILEGES" | "ALL" | "SUPER"))
        {
            posture.superuser = true;
        }
        posture.findings.push(PostureFinding {
            reason: format!("the account holds {privileges} on {object}"),
            fix: format!("REVOKE {privileges} ON {object} FROM {user}"),
        });
    }
    posture.select_only = posture.findings.is_empty();
    posture.notes.push(
        "MySQL/MariaDB show a table's triggers only to an account with the TRIGGER privilege on it: a read-only account sees none".to_owned(),
    );
    posture.role = Some(user);

    let info = SchemaInfo {
        engine: Engine::Mysql,
        schema,
        tables: tables.into_values().collect(),
    };
    Ok((info, posture))
}

/// The `ON DELETE` and `ON UPDATE` actions of foreign key `constraint` in a
/// `SHOW CREATE TABLE` text, lower-cased; an action the text leaves out is
/// the default, `restrict`. `None` when the constraint is not there.
fn fk_actions(ddl: &str, constraint: &str) -> Option<(String, String)> {
    let head = format!("CONSTRAINT `{}` FOREIGN KEY", constraint.replace('`', "``"));
    let line = ddl.lines().find(|l| l.trim_start().starts_with(&head))?;
    let action = |clause: &str| {
        let after = line.split_once(clause).map(|(_, a)| a.trim_start());
        [
            "CASCADE",
            "SET NULL",
            "SET DEFAULT",
            "NO ACTION",
            "RESTRICT",
        ]
        .into_iter()
        .find(|a| after.is_some_and(|rest| rest.starts_with(a)))
        .unwrap_or("RESTRICT")
        .to_lowercase()
    };
    Some((action(" ON DELETE "), action(" ON UPDATE ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_key_actions_are_read_from_the_definition() {
        let ddl = "CREATE TABLE `payments` (\n  `id` bigint NOT NULL,\n  CONSTRAINT `payments_ibfk_1` FOREIGN KEY (`org_id`) REFERENCES `organizations` (`id`),\n  CONSTRAINT `payments_ibfk_2` FOREIGN KEY (`pm_id`) REFERENCES `payment_methods` (`id`) ON DELETE SET NULL ON UPDATE CASCADE,\n  CONSTRAINT `odd``name` FOREIGN KEY (`x`) REFERENCES `t` (`id`) ON UPDATE NO ACTION\n)";
        let own = |a: &str, b: &str| Some((a.to_owned(), b.to_owned()));
        assert_eq!(
            fk_actions(ddl, "payments_ibfk_1"),
            own("restrict", "restrict")
        );
        assert_eq!(
            fk_actions(ddl, "payments_ibfk_2"),
            own("set null", "cascade")
        );
        assert_eq!(fk_actions(ddl, "odd`name"), own("restrict", "no action"));
        assert_eq!(fk_actions(ddl, "payments_ibfk_9"), None);
    }
}
