//! The drift lock: what a capability's table looked like when its config was
//! reviewed, and whether the live table still matches.
//!
//! `airlock config lock` records, per capability, its target's columns and
//! types (`airlock.schema_lock`, see [`SchemaLockEntry`]) with a `sha256:`
//! fingerprint of their canonical JSON. At start the proposer (with its read
//! connection) and the executor (with its write connection) read the live
//! columns with [`crate::catalog_sql`] and call [`evaluate`]; a capability
//! whose locked columns vanished or changed type, or whose table gained a
//! tenant-shaped column ([`is_tenant_shaped`]), or whose table could not be
//! read, is disabled for the life of the process (fail closed). New columns
//! that are not tenant-shaped are not drift: every statement names its
//! columns.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::json;

use crate::canonical::hash_value;
use crate::config::{Config, SchemaLockEntry};
use crate::schema_info::{ColumnInfo, is_tenant_shaped};

/// `sha256:` of the canonical JSON `{"columns": {name: type}, "schema": …,
/// "table": …}`.
pub fn fingerprint(schema: &str, table: &str, columns: &BTreeMap<String, String>) -> String {
    hash_value(&json!({"schema": schema, "table": table, "columns": columns}))
}

/// The lock entry recording `live` as the reviewed shape of `schema.table`.
pub fn lock_entry(schema: &str, table: &str, live: &[ColumnInfo]) -> SchemaLockEntry {
    let columns: BTreeMap<String, String> = live
        .iter()
        .map(|c| (c.name.clone(), c.data_type.clone()))
        .collect();
    SchemaLockEntry {
        schema: schema.to_owned(),
        table: table.to_owned(),
        fingerprint: fingerprint(schema, table, &columns),
        columns,
    }
}

/// A locked column whose type changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TypeChange {
    pub column: String,
    pub locked: String,
    pub live: String,
}

/// How a live table differs from its lock, in the ways that disable a
/// capability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drift {
    pub schema: String,
    pub table: String,
    /// The catalog lists no column at all: the table is gone (or the
    /// credential can no longer see it).
    pub table_missing: bool,
    /// Locked columns the live table no longer has, sorted.
    pub vanished: Vec<String>,
    /// Locked columns whose type changed, sorted by column.
    pub type_changes: Vec<TypeChange>,
    /// Columns that are not in the lock and whose name is tenant-shaped,
    /// sorted: the table may have become multi-tenant since review.
    pub new_tenant_columns: Vec<String>,
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "table {}.{}", self.schema, self.table)?;
        if self.table_missing {
            return f.write_str(" no longer exists (or is not visible to this credential)");
        }
        f.write_str(" changed since the schema lock was reviewed: ")?;
        let mut parts: Vec<String> = Vec::new();
        parts.extend(
            self.vanished
                .iter()
                .map(|c| format!("column `{c}` vanished")),
        );
        parts.extend(self.type_changes.iter().map(|t| {
            format!(
                "column `{}` changed type {} → {}",
                t.column, t.locked, t.live
            )
        }));
        parts.extend(
            self.new_tenant_columns
                .iter()
                .map(|c| format!("new tenant-shaped column `{c}`")),
        );
        f.write_str(&parts.join("; "))
    }
}

/// Compare a lock entry with the live columns of its table.
pub fn check(lock: &SchemaLockEntry, live: &[ColumnInfo]) -> Result<(), Box<Drift>> {
    let mut drift = Drift {
        schema: lock.schema.clone(),
        table: lock.table.clone(),
        table_missing: live.is_empty(),
        vanished: Vec::new(),
        type_changes: Vec::new(),
        new_tenant_columns: Vec::new(),
    };
    for (name, locked) in &lock.columns {
        match live.iter().find(|c| &c.name == name) {
            None => drift.vanished.push(name.clone()),
            Some(c) if &c.data_type != locked => drift.type_changes.push(TypeChange {
                column: name.clone(),
                locked: locked.clone(),
                live: c.data_type.clone(),
            }),
            Some(_) => {}
        }
    }
    let mut new_tenant: Vec<String> = live
        .iter()
        .filter(|c| !lock.columns.contains_key(&c.name) && is_tenant_shaped(&c.name))
        .map(|c| c.name.clone())
        .collect();
    new_tenant.sort();
    new_tenant.dedup();
    drift.new_tenant_columns = new_tenant;
    if drift.vanished.is_empty()
        && drift.type_changes.is_empty()
        && drift.new_tenant_columns.is_empty()
    {
        Ok(())
    } else {
        Err(Box::new(drift))
    }
}

/// The table a capability's lock is checked against: (source, schema, table).
pub type TargetKey = (String, String, String);

/// The targets of every locked capability, the tables a process must read
/// the live columns of before it serves.
pub fn locked_targets(config: &Config) -> BTreeSet<TargetKey> {
    config
        .capabilities
        .iter()
        .filter(|c| config.airlock.schema_lock.contains_key(&c.name))
        .map(|c| {
            (
                c.source.clone(),
                c.target.schema.clone(),
                c.target.table.clone(),
            )
        })
        .collect()
}

/// One capability's standing against its lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum LockStatus {
    /// The live table matches the lock.
    Ok,
    /// The config records no lock for this capability (it is served as
    /// before; `doctor` warns).
    NoLock,
    /// The live table drifted: the capability is disabled.
    Drifted { drift: Drift },
    /// The live columns could not be read: the capability is disabled.
    Unverified { reason: String },
}

impl LockStatus {
    /// Whether the capability must not be served.
    pub fn disables(&self) -> bool {
        matches!(
            self,
            LockStatus::Drifted { .. } | LockStatus::Unverified { .. }
        )
    }

    /// The specific message for a disabled capability (`None` when it is
    /// served), naming the drift and the fix.
    pub fn disabled_message(&self, capability: &str) -> Option<String> {
        let why = match self {
            LockStatus::Ok | LockStatus::NoLock => return None,
            LockStatus::Drifted { drift } => drift.to_string(),
            LockStatus::Unverified { reason } => {
                format!("its table's columns could not be read to check the schema lock ({reason})")
            }
        };
        Some(format!(
            "capability `{capability}` is disabled by the schema lock: {why}. {}",
            fix(capability)
        ))
    }
}

/// What the operator does about a drifted capability.
pub fn fix(capability: &str) -> String {
    format!(
        "Review the schema change against the capability, then run `airlock config lock --config <file> --capability {capability}`, review the config change, and restart the executor and proposer."
    )
}

/// Every capability's standing, given the live columns of the locked
/// targets (`live[target]` is the catalog's answer for that table, or why it
/// could not be read). The one decision the proposer, the executor and
/// `doctor` share.
pub fn evaluate(
    config: &Config,
    live: &BTreeMap<TargetKey, Result<Vec<ColumnInfo>, String>>,
) -> BTreeMap<String, LockStatus> {
    config
        .capabilities
        .iter()
        .map(|cap| {
            let status = match config.airlock.schema_lock.get(&cap.name) {
                None => LockStatus::NoLock,
                Some(lock) => {
                    let key = (
                        cap.source.clone(),
                        cap.target.schema.clone(),
                        cap.target.table.clone(),
                    );
                    match live.get(&key) {
                        None => LockStatus::Unverified {
                            reason: "the table was not read".to_owned(),
                        },
                        Some(Err(e)) => LockStatus::Unverified { reason: e.clone() },
                        Some(Ok(cols)) => match check(lock, cols) {
                            Ok(()) => LockStatus::Ok,
                            Err(drift) => LockStatus::Drifted { drift: *drift },
                        },
                    }
                }
            };
            (cap.name.clone(), status)
        })
        .collect()
}

/// The disabled capabilities and their messages.
pub fn disabled(statuses: &BTreeMap<String, LockStatus>) -> BTreeMap<String, String> {
    statuses
        .iter()
        .filter_map(|(name, s)| s.disabled_message(name).map(|m| (name.clone(), m)))
        .collect()
}

/// What re-locking changes, one line per column, for `airlock config lock`
/// to print: `+ name type` (new), `- name type` (gone), `~ name old → new`.
pub fn changes(old: Option<&SchemaLockEntry>, new: &SchemaLockEntry) -> Vec<String> {
    let empty = BTreeMap::new();
    let before = old.map_or(&empty, |o| &o.columns);
    let mut out = Vec::new();
    for (name, ty) in &new.columns {
        match before.get(name) {
            None => out.push(format!("+ {name} {ty}")),
            Some(was) if was != ty => out.push(format!("~ {name} {was} → {ty}")),
            Some(_) => {}
        }
    }
    for (name, ty) in before {
        if !new.columns.contains_key(name) {
            out.push(format!("- {name} {ty}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn col(name: &str, ty: &str) -> ColumnInfo {
        ColumnInfo::new(name, ty, true)
    }

    fn invoices() -> Vec<ColumnInfo> {
        vec![
            col("id", "text"),
            col("tenant_id", "text"),
            col("late_fee_cents", "integer"),
            col("updated_at", "timestamp with time zone"),
        ]
    }

    #[test]
    fn the_fingerprint_is_sha256_of_the_canonical_record() {
        let entry = lock_entry("public", "invoices", &invoices());
        assert_eq!(entry.schema, "public");
        assert_eq!(entry.table, "invoices");
        assert_eq!(
            entry
                .columns
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>(),
            [
                "id=text",
                "late_fee_cents=integer",
                "tenant_id=text",
                "updated_at=timestamp with time zone"
            ]
        );
        let canonical = r#"{"columns":{"id":"text","late_fee_cents":"integer","tenant_id":"text","updated_at":"timestamp with time zone"},"schema":"public","table":"invoices"}"#;
        assert_eq!(
            entry.fingerprint,
            crate::canonical::sha256_tagged(canonical.as_bytes())
        );
        assert_eq!(
            entry.fingerprint,
            fingerprint("public", "invoices", &entry.columns)
        );
        // Schema and table are part of it.
        assert_ne!(
            entry.fingerprint,
            fingerprint("other", "invoices", &entry.columns)
        );
        assert_ne!(
            entry.fingerprint,
            fingerprint("public", "orders", &entry.columns)
        );
    }

    #[test]
    fn an_unchanged_table_and_harmless_additions_pass() {
        let lock = lock_entry("public", "invoices", &invoices());
        assert_eq!(check(&lock, &invoices()), Ok(()));
        // Order and nullability are not part of the lock; a new ordinary column is no drift.
        let mut live = invoices();
        live.reverse();
        live[0].nullable = false;
        live.push(col("notes", "text"));
        assert_eq!(check(&lock, &live), Ok(()));
    }

    #[test]
    fn each_kind_of_drift_is_named() {
        let lock = lock_entry("public", "invoices", &invoices());
        let live = vec![
            col("id", "text"),
            col("tenant_id", "text"),
            col("updated_at", "timestamp without time zone"),
            col("org_id", "bigint"),
            col("account_id", "bigint"),
            col("memo", "text"),
        ];
        let drift = check(&lock, &live).unwrap_err();
        assert_eq!(
            *drift,
            Drift {
                schema: "public".into(),
                table: "invoices".into(),
                table_missing: false,
                vanished: vec!["late_fee_cents".into()],
                type_changes: vec![TypeChange {
                    column: "updated_at".into(),
                    locked: "timestamp with time zone".into(),
                    live: "timestamp without time zone".into(),
                }],
                new_tenant_columns: vec!["account_id".into(), "org_id".into()],
            }
        );
        assert_eq!(
            drift.to_string(),
            "table public.invoices changed since the schema lock was reviewed: column `late_fee_cents` vanished; column `updated_at` changed type timestamp with time zone → timestamp without time zone; new tenant-shaped column `account_id`; new tenant-shaped column `org_id`"
        );
    }

    #[test]
    fn each_kind_alone_is_drift() {
        let lock = lock_entry("s", "t", &[col("id", "text"), col("amount", "integer")]);
        let only_vanished = check(&lock, &[col("id", "text")]).unwrap_err();
        assert_eq!(only_vanished.vanished, ["amount"]);
        assert!(
            only_vanished.type_changes.is_empty() && only_vanished.new_tenant_columns.is_empty()
        );
        let only_retyped = check(&lock, &[col("id", "text"), col("amount", "bigint")]).unwrap_err();
        assert_eq!(only_retyped.type_changes.len(), 1);
        assert!(only_retyped.vanished.is_empty());
        let only_tenant = check(
            &lock,
            &[
                col("id", "text"),
                col("amount", "integer"),
                col("tenant_id", "text"),
            ],
        )
        .unwrap_err();
        assert_eq!(only_tenant.new_tenant_columns, ["tenant_id"]);
        assert_eq!(
            only_tenant.to_string(),
            "table s.t changed since the schema lock was reviewed: new tenant-shaped column `tenant_id`"
        );
        // A tenant-shaped column that was locked is not new.
        let with_tenant = lock_entry("s", "t", &[col("id", "text"), col("tenant_id", "text")]);
        assert_eq!(
            check(&with_tenant, &[col("id", "text"), col("tenant_id", "text")]),
            Ok(())
        );
    }

    #[test]
    fn a_missing_table_is_named_as_such() {
        let lock = lock_entry("public", "invoices", &invoices());
        let drift = check(&lock, &[]).unwrap_err();
        assert!(drift.table_missing);
        assert_eq!(drift.vanished.len(), 4);
        assert_eq!(
            drift.to_string(),
            "table public.invoices no longer exists (or is not visible to this credential)"
        );
        assert!(
            !check(&lock, &[col("id", "text")])
                .unwrap_err()
                .table_missing
        );
    }

    fn config_with_lock(lock: Option<SchemaLockEntry>) -> Config {
        let mut cfg = crate::load_config_str(crate::REFERENCE_CONFIG)
            .config
            .expect("reference config");
        if let Some(l) = lock {
            cfg.airlock
                .schema_lock
                .insert("billing.propose_late_fee_waiver".into(), l);
        }
        cfg
    }

    #[test]
    fn evaluate_decides_every_capability() {
        let source = crate::load_config_str(crate::REFERENCE_CONFIG)
            .config
            .unwrap()
            .capability("billing.propose_late_fee_waiver")
            .unwrap()
            .source
            .clone();
        let key = |t: &str| (source.clone(), "public".to_owned(), t.to_owned());
        let cfg = config_with_lock(Some(lock_entry("public", "invoices", &invoices())));
        assert_eq!(
            locked_targets(&cfg).into_iter().collect::<Vec<_>>(),
            vec![key("invoices")]
        );
        assert!(locked_targets(&config_with_lock(None)).is_empty());

        let mut live = BTreeMap::new();
        live.insert(key("invoices"), Ok(invoices()));
        let statuses = evaluate(&cfg, &live);
        assert_eq!(statuses.len(), cfg.capabilities.len());
        assert_eq!(statuses["billing.propose_late_fee_waiver"], LockStatus::Ok);
        assert_eq!(statuses["billing.inspect_invoice"], LockStatus::NoLock);
        assert!(disabled(&statuses).is_empty());

        live.insert(key("invoices"), Ok(invoices()[..3].to_vec()));
        let statuses = evaluate(&cfg, &live);
        let LockStatus::Drifted { drift } = &statuses["billing.propose_late_fee_waiver"] else {
            panic!("{statuses:?}");
        };
        assert_eq!(drift.vanished, ["updated_at"]);
        let off = disabled(&statuses);
        assert_eq!(off.len(), 1);
        assert_eq!(
            off["billing.propose_late_fee_waiver"],
            "capability `billing.propose_late_fee_waiver` is disabled by the schema lock: table public.invoices changed since the schema lock was reviewed: column `updated_at` vanished. Review the schema change against the capability, then run `airlock config lock --config <file> --capability billing.propose_late_fee_waiver`, review the config change, and restart the executor and proposer."
        );

        live.insert(key("invoices"), Err("connection refused".into()));
        let statuses = evaluate(&cfg, &live);
        assert_eq!(
            statuses["billing.propose_late_fee_waiver"],
            LockStatus::Unverified {
                reason: "connection refused".into()
            }
        );
        assert!(
            disabled(&statuses)["billing.propose_late_fee_waiver"]
                .contains("its table's columns could not be read to check the schema lock (connection refused)")
        );

        // Not read at all: fail closed too.
        let statuses = evaluate(&cfg, &BTreeMap::new());
        assert_eq!(
            statuses["billing.propose_late_fee_waiver"],
            LockStatus::Unverified {
                reason: "the table was not read".into()
            }
        );
    }

    #[test]
    fn which_statuses_disable() {
        let drift = check(&lock_entry("s", "t", &[col("a", "text")]), &[]).unwrap_err();
        assert!(!LockStatus::Ok.disables());
        assert!(!LockStatus::NoLock.disables());
        assert!(
            LockStatus::Drifted {
                drift: (*drift).clone()
            }
            .disables()
        );
        assert!(LockStatus::Unverified { reason: "x".into() }.disables());
        assert_eq!(LockStatus::Ok.disabled_message("c"), None);
        assert_eq!(LockStatus::NoLock.disabled_message("c"), None);
        assert!(
            LockStatus::Drifted { drift: *drift }
                .disabled_message("c")
                .unwrap()
                .starts_with(
                    "capability `c` is disabled by the schema lock: table s.t no longer exists"
                )
        );
    }

    #[test]
    fn changes_list_additions_removals_and_retypes() {
        let old = lock_entry(
            "s",
            "t",
            &[col("a", "text"), col("b", "integer"), col("c", "text")],
        );
        let new = lock_entry(
            "s",
            "t",
            &[col("a", "text"), col("b", "bigint"), col("d", "date")],
        );
        assert_eq!(
            changes(Some(&old), &new),
            ["~ b integer → bigint", "+ d date", "- c text"]
        );
        assert!(changes(Some(&old), &old).is_empty());
        assert_eq!(changes(None, &old), ["+ a text", "+ b integer", "+ c text"]);
    }

    fn arb_columns() -> impl Strategy<Value = Vec<ColumnInfo>> {
        proptest::collection::btree_map("[a-z_]{1,12}", "[a-z ()0-9,]{1,20}", 1..12)
            .prop_map(|m| m.into_iter().map(|(n, t)| col(&n, &t)).collect())
    }

    proptest! {
        #[test]
        fn a_table_always_matches_its_own_lock(cols in arb_columns()) {
            let lock = lock_entry("s", "t", &cols);
            prop_assert_eq!(check(&lock, &cols), Ok(()));
            prop_assert_eq!(&lock.fingerprint, &fingerprint("s", "t", &lock.columns));
        }

        #[test]
        fn dropping_any_locked_column_is_drift(cols in arb_columns(), i in 0usize..12) {
            let lock = lock_entry("s", "t", &cols);
            let i = i % cols.len();
            let mut live = cols.clone();
            let gone = live.remove(i);
            let drift = check(&lock, &live).unwrap_err();
            prop_assert_eq!(drift.vanished, vec![gone.name]);
        }

        #[test]
        fn retyping_any_locked_column_is_drift(cols in arb_columns(), i in 0usize..12) {
            let lock = lock_entry("s", "t", &cols);
            let i = i % cols.len();
            let mut live = cols.clone();
            live[i].data_type.push_str(" changed");
            let drift = check(&lock, &live).unwrap_err();
            prop_assert_eq!(drift.type_changes.len(), 1);
            prop_assert_eq!(&drift.type_changes[0].column, &cols[i].name);
            // And the fingerprint of the new shape differs.
            prop_assert_ne!(lock.fingerprint, lock_entry("s", "t", &live).fingerprint);
        }
    }
}
