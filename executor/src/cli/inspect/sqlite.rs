//! SQLite: the `main` database from `sqlite_schema` and the pragmas,
//! opened read-only (the file is never created or written), and the
//! posture of the file: can this OS user write it, does the URL open it
//! read-only.

use std::path::{Path, PathBuf};

use airlock_policy::config::Engine;
use airlock_policy::schema_info::{
    ColumnInfo, ForeignKeyInfo, IndexInfo, SchemaInfo, TableInfo, TableKind,
};
use airlock_proposer::source::SourceOptions;
use rusqlite::{Connection, OpenFlags};

use super::{InspectError, Posture};

/// A value with no scheme that names an existing file: an SQLite database
/// given by its path.
pub(super) fn is_plain_path(value: &str) -> bool {
    !value.contains("://") && Path::new(value).is_file()
}

/// Whether the URL's query asks for a read-only open (`mode=ro`,
/// `immutable=1`).
fn url_read_only(url: &str) -> bool {
    let Some((_, query)) = url.split_once('?') else {
        return false;
    };
    query.split('&').any(|kv| {
        matches!(
            kv.to_ascii_lowercase().as_str(),
            "mode=ro" | "immutable=1" | "immutable=true"
        )
    })
}

fn file_of(url: &str, var: &str) -> Result<PathBuf, InspectError> {
    let connect = |detail: String| InspectError::Connect {
        engine: "sqlite",
        var: var.to_owned(),
        detail,
    };
    let opts = SourceOptions::parse(Engine::Sqlite, url, 1000)
        .map_err(|e| connect(format!("the URL does not parse: {e}")))?;
    let path = opts
        .sqlite_file()
        .ok_or_else(|| connect("an in-memory database has nothing to inspect".to_owned()))?
        .to_path_buf();
    if !path.is_file() {
        return Err(connect(
            "no database file there (inspect never creates one)".to_owned(),
        ));
    }
    Ok(path)
}

pub(super) fn read(
    url: &str,
    var: &str,
    schema: Option<&str>,
) -> Result<(SchemaInfo, Posture), InspectError> {
    let schema = schema.unwrap_or("main");
    if schema != "main" {
        return Err(InspectError::NoSchema(format!(
            "an SQLite source has one database, `main`; there is no `{schema}` to inspect"
        )));
    }
    let path = file_of(url, var)?;
    let c = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| InspectError::Connect {
        engine: "sqlite",
        var: var.to_owned(),
        detail: e.to_string(),
    })?;
    let err = |e: rusqlite::Error| InspectError::Query(e.to_string());
    c.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(err)?;
    c.pragma_update(None, "query_only", "ON").map_err(err)?;
    let tables = read_tables(&c).map_err(err)?;
    let file_writable = nix::unistd::access(path.as_path(), nix::unistd::AccessFlags::W_OK).is_ok();
    let ro = url_read_only(url);
    let mut posture = Posture::empty();
    posture.file_writable = Some(file_writable);
    posture.url_read_only = Some(ro);
    posture.can_write = file_writable && !ro;
    posture.select_only = !posture.can_write;
    if posture.can_write {
        posture.findings.push(super::PostureFinding {
            reason: "this OS user can write the database file, and the URL does not open it read-only".to_owned(),
            fix: "add ?mode=ro to the read URL (the proposer opens SQLite read-only either way), and let only the executor's user write the file".to_owned(),
        });
    }
    let info = SchemaInfo {
        engine: Engine::Sqlite,
        schema: schema.to_owned(),
        tables,
    };
    Ok((info, posture))
}

fn read_tables(c: &Connection) -> rusqlite::Result<Vec<TableInfo>> {
    let mut out = Vec::new();
    let mut stmt = c.prepare(
        "SELECT name, type FROM main.sqlite_schema
          WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
          ORDER BY name",
    )?;
    let names: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (name, kind) in names {
        let mut t = TableInfo {
            name: name.clone(),
            kind: if kind == "view" {
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
        };
        // Columns; `pk` is the column's position in the primary key (0: none).
        let mut pk: Vec<(i64, String)> = Vec::new();
        let mut stmt = c.prepare(
            "SELECT name, type, \"notnull\", pk FROM pragma_table_info(?1, 'main') ORDER BY cid",
        )?;
        let rows = stmt.query_map([&name], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        for row in rows {
            let (col, ty, not_null, pos) = row?;
            if pos > 0 {
                pk.push((pos, col.clone()));
            }
            t.columns.push(ColumnInfo {
                // An INTEGER PRIMARY KEY is the rowid: never NULL.
                nullable: not_null == 0 && pos == 0,
                name: col,
                data_type: ty.unwrap_or_default().to_lowercase(),
            });
        }
        pk.sort();
        t.primary_key = pk.into_iter().map(|(_, c)| c).collect();

        // Foreign keys: one row per column; `to` is NULL when the key
        // references the parent's primary key.
        let mut stmt = c.prepare(
            "SELECT id, \"table\", \"from\", \"to\", on_update, on_delete
               FROM pragma_foreign_key_list(?1, 'main') ORDER BY id, seq",
        )?;
        let rows = stmt.query_map([&name], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
            ))
        })?;
        let mut last_id = None;
        for row in rows {
            let (id, parent, from, to, on_update, on_delete) = row?;
            if last_id != Some(id) {
                t.foreign_keys.push(ForeignKeyInfo {
                    columns: vec![],
                    references_table: parent,
                    references_columns: vec![],
                    on_delete: on_delete.to_lowercase(),
                    on_update: on_update.to_lowercase(),
                });
                last_id = Some(id);
            }
            if let Some(fk) = t.foreign_keys.last_mut() {
                fk.columns.push(from);
                fk.references_columns.extend(to);
            }
        }

        // Indexes (the automatic ones of UNIQUE and PRIMARY KEY too).
        let mut stmt = c.prepare(
            "SELECT name, \"unique\", origin FROM pragma_index_list(?1, 'main') ORDER BY name",
        )?;
        let list: Vec<(String, i64, String)> = stmt
            .query_map([&name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        for (index, unique, origin) in list {
            let mut stmt =
                c.prepare("SELECT name FROM pragma_index_info(?1, 'main') ORDER BY seqno")?;
            let columns: Vec<String> = stmt
                .query_map([&index], |r| r.get::<_, Option<String>>(0))?
                .filter_map(Result::transpose)
                .collect::<Result<_, _>>()?;
            let unique = unique == 1;
            if unique && origin != "pk" && !columns.is_empty() && !t.unique.contains(&columns) {
                t.unique.push(columns.clone());
            }
            t.indexes.push(IndexInfo {
                name: index,
                columns,
                unique,
            });
        }
        out.push(t);
    }
    // Triggers, by the table they are on.
    let mut stmt = c.prepare(
        "SELECT tbl_name, name FROM main.sqlite_schema WHERE type = 'trigger' ORDER BY tbl_name, name",
    )?;
    let triggers: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (table, trigger) in triggers {
        if let Some(t) = out.iter_mut().find(|t| t.name == table) {
            t.triggers.push(trigger);
        }
    }
    // References by a table's primary key (`to` NULL) name its columns.
    let pks: Vec<(String, Vec<String>)> = out
        .iter()
        .map(|t| (t.name.clone(), t.primary_key.clone()))
        .collect();
    for t in &mut out {
        for fk in &mut t.foreign_keys {
            if fk.references_columns.is_empty()
                && let Some((_, pk)) = pks.iter().find(|(n, _)| *n == fk.references_table)
            {
                fk.references_columns = pk.clone();
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_only_url_is_recognized() {
        assert!(url_read_only("sqlite:///x.db?mode=ro"));
        assert!(url_read_only("sqlite:///x.db?cache=shared&immutable=1"));
        assert!(!url_read_only("sqlite:///x.db"));
        assert!(!url_read_only("sqlite:///x.db?mode=rwc"));
    }
}
