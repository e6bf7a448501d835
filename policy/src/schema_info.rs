//! What a database's catalog says about one schema: tables and views, their
//! columns, keys, indexes and the facts a write capability must know about
//! (triggers, cascading foreign keys, row-level security).
//!
//! The operator CLI fills this in from catalog queries only (`airlock
//! inspect`; never a business row) and the pure decisions built on it —
//! sensitive-field classification, tenant and version candidates, drafting a
//! config, matching recipes, the drift fingerprint — read nothing else. It is
//! also the documented `--json` shape of `airlock inspect` (under `schema`).

use serde::{Deserialize, Serialize};

use crate::identifier::Engine;

/// One schema (Postgres), database (MySQL/MariaDB) or attached database
/// (SQLite, usually `main`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaInfo {
    pub engine: Engine,
    pub schema: String,
    /// Tables and views, sorted by name.
    pub tables: Vec<TableInfo>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableKind {
    Table,
    View,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableInfo {
    pub name: String,
    pub kind: TableKind,
    /// In the table's column order.
    pub columns: Vec<ColumnInfo>,
    /// Empty when the table has none (always empty for a view).
    pub primary_key: Vec<String>,
    /// Each UNIQUE constraint or unique index other than the primary key.
    pub unique: Vec<Vec<String>>,
    pub foreign_keys: Vec<ForeignKeyInfo>,
    pub indexes: Vec<IndexInfo>,
    /// Names of the table's triggers (any event, any timing).
    pub triggers: Vec<String>,
    /// Row-level security is enabled on the table (Postgres only; false
    /// elsewhere).
    pub row_level_security: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnInfo {
    pub name: String,
    /// The type as the engine's catalog spells it, lower-cased
    /// (`text`, `integer`, `timestamp with time zone`, `varchar(64)`,
    /// `bigint unsigned`, …).
    pub data_type: String,
    pub nullable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForeignKeyInfo {
    pub columns: Vec<String>,
    pub references_table: String,
    pub references_columns: Vec<String>,
    /// The referential action, lower-cased: `no action`, `restrict`,
    /// `cascade`, `set null`, `set default`.
    pub on_delete: String,
    pub on_update: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexInfo {
    pub name: String,
    pub columns: Vec<String>,
    pub unique: bool,
}

/// Whether a column's name says it keys rows to a tenant: `tenant_id`,
/// `org_id`, `organization_id`, `workspace_id`, `account_id`, `company_id`,
/// `team_id` and their spellings without `_id` or with `Id`. Used for
/// tenant-key candidates (`airlock inspect`) and by the drift lock (a table
/// that gains such a column may have become multi-tenant since review).
pub fn is_tenant_shaped(column: &str) -> bool {
    let lower = column.to_ascii_lowercase();
    let base = lower
        .strip_suffix("_id")
        .or_else(|| lower.strip_suffix("id"))
        .unwrap_or(&lower);
    let base = base.strip_suffix('_').unwrap_or(base);
    TENANT_WORDS.contains(&base)
}

const TENANT_WORDS: [&str; 8] = [
    "tenant",
    "org",
    "organization",
    "organisation",
    "workspace",
    "account",
    "company",
    "team",
];

impl SchemaInfo {
    pub fn table(&self, name: &str) -> Option<&TableInfo> {
        self.tables.iter().find(|t| t.name == name)
    }
}

impl ColumnInfo {
    pub fn new(name: &str, data_type: &str, nullable: bool) -> ColumnInfo {
        ColumnInfo {
            name: name.to_owned(),
            data_type: data_type.to_owned(),
            nullable,
        }
    }
}

impl TableInfo {
    /// A table with these columns and primary key, and nothing else known
    /// (no constraints, indexes, triggers or row-level security).
    pub fn new(name: &str, columns: Vec<ColumnInfo>, primary_key: Vec<String>) -> TableInfo {
        TableInfo {
            name: name.to_owned(),
            kind: TableKind::Table,
            columns,
            primary_key,
            unique: vec![],
            foreign_keys: vec![],
            indexes: vec![],
            triggers: vec![],
            row_level_security: false,
        }
    }

    pub fn column(&self, name: &str) -> Option<&ColumnInfo> {
        self.columns.iter().find(|c| c.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str) -> TableInfo {
        TableInfo {
            name: name.into(),
            kind: TableKind::Table,
            columns: vec![ColumnInfo {
                name: "id".into(),
                data_type: "text".into(),
                nullable: false,
            }],
            primary_key: vec!["id".into()],
            unique: vec![],
            foreign_keys: vec![],
            indexes: vec![],
            triggers: vec![],
            row_level_security: false,
        }
    }

    #[test]
    fn tenant_shaped_names() {
        for yes in [
            "tenant_id",
            "tenant",
            "TenantId",
            "tenantid",
            "org_id",
            "organization_id",
            "organisation_id",
            "workspace_id",
            "account_id",
            "company_id",
            "team_id",
            "TEAM",
            "org_",
        ] {
            assert!(is_tenant_shaped(yes), "{yes}");
        }
        for no in [
            "id",
            "tenant_name",
            "customer_id",
            "subtenant_id",
            "accounts",
            "organization_ids",
            "user_id",
            "",
        ] {
            assert!(!is_tenant_shaped(no), "{no}");
        }
    }

    #[test]
    fn lookups_find_by_exact_name_only() {
        let s = SchemaInfo {
            engine: Engine::Postgres,
            schema: "public".into(),
            tables: vec![table("a"), table("b")],
        };
        assert_eq!(s.table("b").unwrap().name, "b");
        assert!(s.table("B").is_none());
        assert_eq!(
            s.table("a").unwrap().column("id").unwrap().data_type,
            "text"
        );
        assert!(s.table("a").unwrap().column("ID").is_none());
    }

    #[test]
    fn the_json_shape_is_snake_case_and_strict() {
        let v = serde_json::to_value(table("t")).unwrap();
        assert_eq!(v["kind"], "table");
        assert_eq!(v["row_level_security"], false);
        let mut bad = v.clone();
        bad["extra"] = serde_json::json!(1);
        assert!(serde_json::from_value::<TableInfo>(bad).is_err());
        assert_eq!(serde_json::from_value::<TableInfo>(v).unwrap(), table("t"));
    }
}
