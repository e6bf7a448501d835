//! Candidates `airlock inspect` ranks for a person to confirm, from schema
//! metadata alone: the tenant key, each table's version column, and what a
//! write to a table sets off beyond its own row (triggers, cascading
//! foreign keys).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::column_type::{TypeFamily, type_family};
use crate::identifier::Engine;
use crate::schema_info::{SchemaInfo, TableInfo, TableKind, is_tenant_shaped};

/// A column that may key every row to a tenant, with the evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantCandidate {
    pub column: String,
    /// The column's types, distinct, sorted.
    pub data_types: Vec<String>,
    /// The tables (not views) holding it with a key-like type, sorted.
    pub tables: Vec<String>,
    /// How many tables (not views) the schema has.
    pub of_tables: usize,
    /// Of `tables`, those where it leads an index or the primary key.
    pub indexed: Vec<String>,
    /// Of `tables`, those where it leads none.
    pub not_indexed: Vec<String>,
    /// Tables its foreign keys reference (`orgs`), sorted.
    pub references: Vec<String>,
}

impl TenantCandidate {
    /// One line of evidence: `on 27 of 30 tables, indexed on 25, references orgs`.
    pub fn evidence(&self) -> String {
        let mut s = format!(
            "on {} of {} tables, indexed on {}",
            self.tables.len(),
            self.of_tables,
            self.indexed.len()
        );
        if !self.references.is_empty() {
            s.push_str(&format!(", references {}", self.references.join(", ")));
        }
        s
    }
}

/// Whether a column of this type can be a tenant key: an integer, text,
/// UUID or binary (MySQL's `binary(16)` UUIDs) value.
fn key_like(family: TypeFamily) -> bool {
    matches!(
        family,
        TypeFamily::Integer | TypeFamily::Text | TypeFamily::Uuid | TypeFamily::Binary
    )
}

/// Whether `column` is the first column of the table's primary key or of
/// one of its indexes (unique or not).
pub fn leads_an_index(table: &TableInfo, column: &str) -> bool {
    table.primary_key.first().is_some_and(|c| c == column)
        || table
            .indexes
            .iter()
            .any(|i| i.columns.first().is_some_and(|c| c == column))
}

/// Tenant-key candidates: tenant-shaped column names
/// ([`is_tenant_shaped`]) with a key-like type, best first — on the most
/// tables, then indexed on the most, then by name.
pub fn tenant_candidates(schema: &SchemaInfo) -> Vec<TenantCandidate> {
    let tables: Vec<&TableInfo> = schema
        .tables
        .iter()
        .filter(|t| t.kind == TableKind::Table)
        .collect();
    let mut by_column: BTreeMap<&str, TenantCandidate> = BTreeMap::new();
    for t in &tables {
        for c in &t.columns {
            if !is_tenant_shaped(&c.name) || !key_like(type_family(&c.data_type)) {
                continue;
            }
            let e = by_column
                .entry(c.name.as_str())
                .or_insert_with(|| TenantCandidate {
                    column: c.name.clone(),
                    data_types: vec![],
                    tables: vec![],
                    of_tables: tables.len(),
                    indexed: vec![],
                    not_indexed: vec![],
                    references: vec![],
                });
            if !e.data_types.contains(&c.data_type) {
                e.data_types.push(c.data_type.clone());
            }
            e.tables.push(t.name.clone());
            if leads_an_index(t, &c.name) {
                e.indexed.push(t.name.clone());
            } else {
                e.not_indexed.push(t.name.clone());
            }
            for fk in &t.foreign_keys {
                let single = fk.columns.len() == 1 && fk.columns[0] == c.name;
                if single && !e.references.contains(&fk.references_table) {
                    e.references.push(fk.references_table.clone());
                }
            }
        }
    }
    let mut out: Vec<TenantCandidate> = by_column.into_values().collect();
    for c in &mut out {
        c.data_types.sort();
        c.tables.sort();
        c.indexed.sort();
        c.not_indexed.sort();
        c.references.sort();
    }
    out.sort_by(|a, b| {
        b.tables
            .len()
            .cmp(&a.tables.len())
            .then(b.indexed.len().cmp(&a.indexed.len()))
            .then(a.column.cmp(&b.column))
    });
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionKind {
    /// An integer bumped on every write (`version`, `lock_version`).
    Counter,
    /// An opaque value replaced on every write (`etag`).
    Token,
    /// The time of the last write (`updated_at`).
    Timestamp,
}

/// A column a write capability could use to detect a concurrent change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionCandidate {
    pub table: String,
    pub column: String,
    pub data_type: String,
    pub kind: VersionKind,
}

const COUNTER_NAMES: &[&str] = &[
    "version",
    "rowversion",
    "lockversion",
    "recordversion",
    "versionnumber",
    "versionno",
    "revision",
    "rev",
    "optimisticlock",
];
const TOKEN_NAMES: &[&str] = &[
    "etag",
    "versiontoken",
    "concurrencytoken",
    "concurrencystamp",
    "locktoken",
];
const TIMESTAMP_NAMES: &[&str] = &[
    "updatedat",
    "modifiedat",
    "lastmodified",
    "lastmodifiedat",
    "updatedon",
    "modifiedon",
    "lastupdated",
    "lastupdatedat",
    "changedat",
    "updatetime",
    "updatedtime",
];

/// Whether a column's name and type make it a version column, and of
/// which kind. The type must fit: a counter is an integer, a timestamp a
/// date-time (SQLite stores date-times as text or numbers, so there those
/// pass too), a token text, a UUID, binary or an integer.
pub fn version_kind(engine: Engine, column: &str, data_type: &str) -> Option<VersionKind> {
    let name: String = crate::sensitive::words(column).concat();
    let family = type_family(data_type);
    let sqlite = engine == Engine::Sqlite;
    if COUNTER_NAMES.contains(&name.as_str()) {
        return (family == TypeFamily::Integer).then_some(VersionKind::Counter);
    }
    if TOKEN_NAMES.contains(&name.as_str()) {
        return matches!(
            family,
            TypeFamily::Text | TypeFamily::Uuid | TypeFamily::Binary | TypeFamily::Integer
        )
        .then_some(VersionKind::Token);
    }
    if TIMESTAMP_NAMES.contains(&name.as_str()) {
        let fits = family == TypeFamily::Timestamp
            || (sqlite && matches!(family, TypeFamily::Text | TypeFamily::Integer));
        return fits.then_some(VersionKind::Timestamp);
    }
    None
}

/// Version-column candidates of every table (not views), in table order,
/// each table's best first: counter, token, then timestamp.
pub fn version_candidates(schema: &SchemaInfo) -> Vec<VersionCandidate> {
    let mut out = Vec::new();
    for t in schema.tables.iter().filter(|t| t.kind == TableKind::Table) {
        let mut found: Vec<VersionCandidate> = t
            .columns
            .iter()
            .filter_map(|c| {
                version_kind(schema.engine, &c.name, &c.data_type).map(|kind| VersionCandidate {
                    table: t.name.clone(),
                    column: c.name.clone(),
                    data_type: c.data_type.clone(),
                    kind,
                })
            })
            .collect();
        found.sort_by_key(|v| v.kind);
        out.extend(found);
    }
    out
}

/// A foreign key elsewhere whose action changes rows of its own table
/// when a referenced row changes or goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cascade {
    /// The table holding the foreign key (whose rows change).
    pub table: String,
    pub columns: Vec<String>,
    pub on_delete: String,
    pub on_update: String,
}

/// What a write to one table sets off beyond its own row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteEffects {
    pub table: String,
    /// The table's triggers.
    pub triggers: Vec<String>,
    /// Foreign keys that reference this table with `cascade`, `set null`
    /// or `set default` on delete or update.
    pub cascades: Vec<Cascade>,
}

/// Whether a referential action changes the referencing rows (rather than
/// refusing the change, or doing nothing).
pub fn is_cascading(action: &str) -> bool {
    matches!(
        action.to_ascii_lowercase().as_str(),
        "cascade" | "set null" | "set default"
    )
}

/// Each table (not view) with triggers or cascading foreign keys pointing
/// at it, in table order.
pub fn write_effects(schema: &SchemaInfo) -> Vec<WriteEffects> {
    let mut out = Vec::new();
    for t in schema.tables.iter().filter(|t| t.kind == TableKind::Table) {
        let mut cascades = Vec::new();
        for other in &schema.tables {
            for fk in &other.foreign_keys {
                let cascading = is_cascading(&fk.on_delete) || is_cascading(&fk.on_update);
                if fk.references_table == t.name && cascading {
                    cascades.push(Cascade {
                        table: other.name.clone(),
                        columns: fk.columns.clone(),
                        on_delete: fk.on_delete.clone(),
                        on_update: fk.on_update.clone(),
                    });
                }
            }
        }
        if !t.triggers.is_empty() || !cascades.is_empty() {
            out.push(WriteEffects {
                table: t.name.clone(),
                triggers: t.triggers.clone(),
                cascades,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema_info::{ColumnInfo, ForeignKeyInfo, IndexInfo};
    use proptest::prelude::*;

    fn col(name: &str, ty: &str) -> ColumnInfo {
        ColumnInfo::new(name, ty, false)
    }

    fn table(name: &str, columns: Vec<ColumnInfo>) -> TableInfo {
        TableInfo::new(name, columns, vec!["id".into()])
    }

    fn index(name: &str, columns: &[&str]) -> IndexInfo {
        IndexInfo {
            name: name.into(),
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            unique: false,
        }
    }

    fn fk(columns: &[&str], to: &str, on_delete: &str, on_update: &str) -> ForeignKeyInfo {
        ForeignKeyInfo {
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            references_table: to.into(),
            references_columns: vec!["id".into()],
            on_delete: on_delete.into(),
            on_update: on_update.into(),
        }
    }

    fn schema(engine: Engine, tables: Vec<TableInfo>) -> SchemaInfo {
        SchemaInfo {
            engine,
            schema: "s".into(),
            tables,
        }
    }

    #[test]
    fn an_index_or_primary_key_counts_only_when_the_column_leads_it() {
        let mut t = table("t", vec![col("id", "int"), col("org_id", "int")]);
        assert!(leads_an_index(&t, "id"));
        assert!(!leads_an_index(&t, "org_id"));
        t.indexes.push(index("t_id_org", &["id", "org_id"]));
        assert!(!leads_an_index(&t, "org_id"));
        t.indexes.push(index("t_org", &["org_id", "id"]));
        assert!(leads_an_index(&t, "org_id"));
        let mut composite = table("c", vec![]);
        composite.primary_key = vec!["org_id".into(), "id".into()];
        assert!(leads_an_index(&composite, "org_id"));
        assert!(!leads_an_index(&composite, "id"));
        composite.primary_key.clear();
        assert!(!leads_an_index(&composite, "org_id"));
    }

    #[test]
    fn tenant_candidates_are_ranked_with_their_evidence() {
        let mut orgs = table("orgs", vec![col("id", "uuid"), col("name", "text")]);
        orgs.indexes.push(index("orgs_name", &["name"]));
        let mut a = table("a", vec![col("id", "int"), col("org_id", "uuid")]);
        a.indexes.push(index("a_org", &["org_id"]));
        a.foreign_keys
            .push(fk(&["org_id"], "orgs", "cascade", "no action"));
        let mut b = table("b", vec![col("id", "int"), col("org_id", "UUID")]);
        b.foreign_keys
            .push(fk(&["org_id", "id"], "composite", "no action", "no action"));
        b.foreign_keys
            .push(fk(&["org_id"], "orgs", "no action", "no action"));
        let mut c = table("c", vec![col("id", "int"), col("org_id", "uuid")]);
        c.indexes.push(index("c_org", &["org_id"]));
        c.foreign_keys
            .push(fk(&["org_id"], "organizations", "no action", "no action"));
        c.columns.push(col("team_id", "bigint"));
        c.indexes.push(index("c_team", &["team_id"]));
        let mut d = table("d", vec![col("id", "int"), col("team_id", "bigint")]);
        d.columns.push(col("account_id", "bigint"));
        d.indexes.push(index("d_account", &["account_id"]));
        let mut e = table("e", vec![col("account_id", "integer")]);
        e.columns.push(col("workspace", "boolean"));
        e.columns.push(col("tenant_id", "timestamp"));
        let mut view = table("v", vec![col("org_id", "uuid")]);
        view.kind = TableKind::View;
        let s = schema(Engine::Postgres, vec![orgs, a, b, c, d, e, view]);
        let got = tenant_candidates(&s);
        let names: Vec<&str> = got.iter().map(|c| c.column.as_str()).collect();
        // org_id: 3 tables; account_id and team_id: 2 each, account_id
        // indexed on 1 and team_id on 1 -> by name. Booleans, timestamps
        // and views do not count.
        assert_eq!(names, ["org_id", "account_id", "team_id"]);
        let org = &got[0];
        assert_eq!(org.data_types, ["UUID", "uuid"]);
        assert_eq!(org.tables, ["a", "b", "c"]);
        assert_eq!(org.of_tables, 6);
        assert_eq!(org.indexed, ["a", "c"]);
        assert_eq!(org.not_indexed, ["b"]);
        assert_eq!(org.references, ["organizations", "orgs"]);
        assert_eq!(
            org.evidence(),
            "on 3 of 6 tables, indexed on 2, references organizations, orgs"
        );
        assert_eq!(got[1].data_types, ["bigint", "integer"]);
        assert_eq!(got[1].tables, ["d", "e"]);
        assert_eq!(got[1].evidence(), "on 2 of 6 tables, indexed on 1");
        assert!(got[1].references.is_empty());
    }

    #[test]
    fn more_indexes_rank_first_among_equally_common_columns() {
        let mut a = table("a", vec![col("team_id", "int"), col("org_id", "int")]);
        a.indexes.push(index("a_team", &["team_id"]));
        let b = table("b", vec![col("team_id", "int"), col("org_id", "int")]);
        let s = schema(Engine::Mysql, vec![a.clone(), b.clone()]);
        let names: Vec<String> = tenant_candidates(&s)
            .into_iter()
            .map(|c| c.column)
            .collect();
        assert_eq!(names, ["team_id", "org_id"]);
        // The same count of tables and indexes: by name.
        let s = schema(Engine::Mysql, vec![b]);
        let names: Vec<String> = tenant_candidates(&s)
            .into_iter()
            .map(|c| c.column)
            .collect();
        assert_eq!(names, ["org_id", "team_id"]);
    }

    #[test]
    fn key_like_types_only() {
        for (ty, ok) in [
            ("uuid", true),
            ("bigint", true),
            ("varchar(64)", true),
            ("binary(16)", true),
            ("boolean", false),
            ("numeric(10,2)", false),
            ("jsonb", false),
            ("date", false),
            ("", false),
        ] {
            let s = schema(Engine::Sqlite, vec![table("t", vec![col("tenant_id", ty)])]);
            assert_eq!(tenant_candidates(&s).len(), usize::from(ok), "{ty}");
        }
    }

    #[test]
    fn version_columns_need_a_fitting_type() {
        use VersionKind::*;
        for (engine, name, ty, want) in [
            (Engine::Postgres, "version", "integer", Some(Counter)),
            (Engine::Postgres, "lock_version", "bigint", Some(Counter)),
            (Engine::Postgres, "RowVersion", "int", Some(Counter)),
            (Engine::Postgres, "version", "text", None),
            (Engine::Postgres, "etag", "text", Some(Token)),
            (Engine::Postgres, "etag", "uuid", Some(Token)),
            (Engine::Mysql, "etag", "binary(16)", Some(Token)),
            (Engine::Mysql, "concurrency_token", "bigint", Some(Token)),
            (Engine::Mysql, "etag", "datetime", None),
            (
                Engine::Postgres,
                "updated_at",
                "timestamp with time zone",
                Some(Timestamp),
            ),
            (Engine::Mysql, "modified_at", "datetime(6)", Some(Timestamp)),
            (Engine::Mysql, "updatedAt", "timestamp", Some(Timestamp)),
            (Engine::Postgres, "updated_at", "text", None),
            (Engine::Mysql, "updated_at", "bigint", None),
            (Engine::Sqlite, "updated_at", "TEXT", Some(Timestamp)),
            (Engine::Sqlite, "updated_at", "integer", Some(Timestamp)),
            (Engine::Sqlite, "updated_at", "DATETIME", Some(Timestamp)),
            (Engine::Sqlite, "updated_at", "blob", None),
            (Engine::Sqlite, "version", "INTEGER", Some(Counter)),
            (Engine::Postgres, "created_at", "timestamp", None),
            (Engine::Postgres, "versions", "integer", None),
            (Engine::Postgres, "status", "text", None),
        ] {
            assert_eq!(
                version_kind(engine, name, ty),
                want,
                "{engine:?} {name} {ty}"
            );
        }
    }

    #[test]
    fn version_candidates_list_each_tables_best_first() {
        let a = table(
            "a",
            vec![
                col("updated_at", "timestamp"),
                col("etag", "text"),
                col("version", "integer"),
                col("status", "text"),
            ],
        );
        let b = table("b", vec![col("modified_at", "timestamp")]);
        let mut v = table("v", vec![col("version", "integer")]);
        v.kind = TableKind::View;
        let s = schema(Engine::Postgres, vec![a, v, b]);
        let got: Vec<(String, String, VersionKind)> = version_candidates(&s)
            .into_iter()
            .map(|c| (c.table, c.column, c.kind))
            .collect();
        let want = [
            ("a", "version", VersionKind::Counter),
            ("a", "etag", VersionKind::Token),
            ("a", "updated_at", VersionKind::Timestamp),
            ("b", "modified_at", VersionKind::Timestamp),
        ];
        assert_eq!(got.len(), want.len(), "{got:?}");
        for (g, w) in got.iter().zip(want) {
            assert_eq!((g.0.as_str(), g.1.as_str(), g.2), w);
        }
        assert_eq!(version_candidates(&s)[0].data_type, "integer");
    }

    #[test]
    fn cascading_actions_are_the_ones_that_change_rows() {
        for a in ["cascade", "CASCADE", "set null", "SET DEFAULT"] {
            assert!(is_cascading(a), "{a}");
        }
        for a in ["no action", "restrict", "", "cascades"] {
            assert!(!is_cascading(a), "{a}");
        }
    }

    #[test]
    fn write_effects_name_triggers_and_the_foreign_keys_that_cascade_here() {
        let mut orgs = table("orgs", vec![col("id", "int")]);
        orgs.triggers.push("orgs_touch".into());
        let mut users = table("users", vec![col("id", "int")]);
        users
            .foreign_keys
            .push(fk(&["org_id"], "orgs", "cascade", "no action"));
        let mut invoices = table("invoices", vec![col("id", "int")]);
        invoices
            .foreign_keys
            .push(fk(&["org_id"], "orgs", "restrict", "set null"));
        invoices
            .foreign_keys
            .push(fk(&["user_id"], "users", "no action", "no action"));
        let plans = table("plans", vec![col("id", "int")]);
        let mut lines = table("lines", vec![col("id", "int")]);
        lines
            .foreign_keys
            .push(fk(&["invoice_id"], "invoices", "set default", "no action"));
        let mut view = table("v", vec![]);
        view.kind = TableKind::View;
        view.triggers.push("v_instead".into());
        let s = schema(
            Engine::Postgres,
            vec![orgs, users, invoices, plans, lines, view],
        );
        let got = write_effects(&s);
        let tables: Vec<&str> = got.iter().map(|e| e.table.as_str()).collect();
        assert_eq!(tables, ["orgs", "invoices"]);
        assert_eq!(got[0].triggers, ["orgs_touch"]);
        let from: Vec<(&str, &str, &str)> = got[0]
            .cascades
            .iter()
            .map(|c| (c.table.as_str(), c.on_delete.as_str(), c.on_update.as_str()))
            .collect();
        assert_eq!(
            from,
            [
                ("users", "cascade", "no action"),
                ("invoices", "restrict", "set null")
            ]
        );
        assert_eq!(got[0].cascades[0].columns, ["org_id"]);
        assert!(got[1].triggers.is_empty());
        assert_eq!(got[1].cascades.len(), 1);
        assert_eq!(got[1].cascades[0].table, "lines");
    }

    proptest! {
        // Whatever the schema, every candidate's tables split exactly into
        // indexed and not indexed, and none counts more tables than there are.
        #[test]
        fn candidate_evidence_adds_up(
            spec in proptest::collection::vec((0usize..4, any::<bool>(), any::<bool>()), 0..12)
        ) {
            let names = ["org_id", "tenant_id", "team_id", "user_id"];
            let tables: Vec<TableInfo> = spec.iter().enumerate().map(|(i, (n, indexed, view))| {
                let mut t = table(&format!("t{i}"), vec![col(names[*n], "bigint")]);
                if *indexed { t.indexes.push(index("i", &[names[*n]])); }
                if *view { t.kind = TableKind::View; }
                t
            }).collect();
            let base = tables.iter().filter(|t| t.kind == TableKind::Table).count();
            let s = schema(Engine::Postgres, tables);
            let got = tenant_candidates(&s);
            prop_assert!(got.iter().all(|c| c.column != "user_id"));
            for c in &got {
                prop_assert_eq!(c.of_tables, base);
                prop_assert!(c.tables.len() <= base);
                prop_assert_eq!(c.indexed.len() + c.not_indexed.len(), c.tables.len());
            }
            prop_assert!(got.windows(2).all(|w| w[0].tables.len() >= w[1].tables.len()));
        }
    }
}
