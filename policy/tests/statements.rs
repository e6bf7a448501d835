//! The exact SQL text and bind order of every statement `statement.rs`
//! builds, for every engine, written out as literal strings; and properties
//! that every generated write statement is constrained by primary key,
//! tenant and (for the UPDATE) version, each bound at its own placeholder.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use airlock_policy::change_set::{ChangeSet, ColumnValue, Guards, TargetRef, Transition};
use airlock_policy::config::{
    Approval, Capability, ConflictGuard, Engine, EvidenceMode, Kind, Operation, OperationKind,
    PatchValue, ProposalSpec, Target, TransitionGuard,
};
use airlock_policy::statement::{
    Bind, BoundStatement, LookupParam, NextVersion, RECEIPT_COLUMNS, RECEIPTS_TABLE, RowCheck,
    Statement, WriteDialect, is_text_type, receipt_insert, receipt_lookup, receipts_ddl,
    select_row, table_name, tenant_predicate, writeback_checks, writeback_lock,
    writeback_new_version, writeback_update,
};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

// ---------------------------------------------------------------------------
// Fixtures, written out field by field.

fn target(tenant: bool) -> Target {
    Target {
        schema: "public".into(),
        table: "invoices".into(),
        primary_key: "id".into(),
        tenant_key: tenant.then(|| "tenant_id".into()),
        principal_scope_key: None,
    }
}

fn proposal(conflict_guard: ConflictGuard) -> ProposalSpec {
    ProposalSpec {
        executor: None,
        patch: vec![
            ("late_fee_cents".into(), PatchValue::Fixed(json!(0))),
            ("waiver_reason".into(), PatchValue::FromArg("reason".into())),
        ],
        allowed_columns: vec!["late_fee_cents".into(), "waiver_reason".into()],
        numeric_bounds: BTreeMap::new(),
        transition_guards: BTreeMap::from([(
            "status".to_owned(),
            TransitionGuard {
                from_column: Some("state_code".into()),
                allowed: BTreeMap::new(),
            },
        )]),
        conflict_guard,
        approval: Approval::default(),
        operation: Operation::default(),
        reversibility: None,
    }
}

/// The late-fee waiver: tenant-scoped, versioned by `updated_at`.
fn waiver_cap() -> Capability {
    Capability {
        name: "billing.propose_late_fee_waiver".into(),
        kind: Kind::Proposal,
        description: None,
        returns_hint: None,
        source: "app".into(),
        context: None,
        target: target(true),
        args: Vec::new(),
        lookup_arg: "invoice_id".into(),
        visible_columns: vec![
            "id".into(),
            "tenant_id".into(),
            "status".into(),
            "late_fee_cents".into(),
            "updated_at".into(),
        ],
        evidence: EvidenceMode::Required,
        max_rows: 1,
        proposal: Some(proposal(ConflictGuard::Column {
            column: "updated_at".into(),
        })),
        list: None,
        aggregate: None,
    }
}

/// A read capability with no tenant key and a larger row limit.
fn untenanted_read_cap() -> Capability {
    Capability {
        name: "dev.inspect".into(),
        kind: Kind::Read,
        description: None,
        returns_hint: None,
        source: "app".into(),
        context: None,
        target: target(false),
        args: Vec::new(),
        lookup_arg: "invoice_id".into(),
        visible_columns: vec!["id".into(), "status".into()],
        evidence: EvidenceMode::Optional,
        max_rows: 5,
        proposal: None,
        list: None,
        aggregate: None,
    }
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn waiver_cs() -> ChangeSet {
    ChangeSet {
        capability: "billing.propose_late_fee_waiver".into(),
        args: obj(json!({"invoice_id": "INV-3001", "reason": "r"})),
        tenant_id: "acme".into(),
        principal: "agent".into(),
        target: TargetRef {
            schema: "public".into(),
            table: "invoices".into(),
            primary_key: ColumnValue {
                column: "id".into(),
                value: json!("INV-3001"),
            },
        },
        before: obj(json!({
            "late_fee_cents": 5500, "waiver_reason": null, "updated_at": "2026-06-20T14:31:08Z"
        })),
        patch: obj(json!({"late_fee_cents": 0, "waiver_reason": "r"})),
        after: obj(json!({
            "late_fee_cents": 0, "waiver_reason": "r", "updated_at": "2026-06-20T14:31:08Z"
        })),
        guards: Guards {
            tenant: Some(ColumnValue {
                column: "tenant_id".into(),
                value: json!("acme"),
            }),
            allowed_columns: vec!["late_fee_cents".into(), "waiver_reason".into()],
            expected_version: Some(ColumnValue {
                column: "updated_at".into(),
                value: json!("2026-06-20T14:31:08Z"),
            }),
            row_hash: None,
            transitions: Vec::new(),
            deduplication: Vec::new(),
            principal: None,
        },
        operation: OperationKind::Update,
        apply_time: Vec::new(),
        set: None,
        compensation: None,
    }
}

fn pg_types(c: &str) -> Option<String> {
    match c {
        "id" | "waiver_reason" => Some("text".into()),
        "late_fee_cents" => Some("integer".into()),
        "updated_at" => Some("timestamp with time zone".into()),
        _ => None,
    }
}

fn my_types(c: &str) -> Option<String> {
    match c {
        "id" => Some("varchar(64)".into()),
        "waiver_reason" => Some("text".into()),
        "late_fee_cents" => Some("int".into()),
        "updated_at" => Some("datetime(6)".into()),
        _ => None,
    }
}

fn no_types(_: &str) -> Option<String> {
    None
}

fn pg() -> WriteDialect<'static> {
    WriteDialect {
        engine: Engine::Postgres,
        column_type: &pg_types,
    }
}

fn my() -> WriteDialect<'static> {
    WriteDialect {
        engine: Engine::Mysql,
        column_type: &my_types,
    }
}

fn lite() -> WriteDialect<'static> {
    WriteDialect {
        engine: Engine::Sqlite,
        column_type: &my_types,
    }
}

fn b(column: &str, value: Value) -> Bind {
    Bind {
        column: Some(column.into()),
        value,
    }
}

fn tenant_bind() -> Bind {
    Bind {
        column: None,
        value: json!("acme"),
    }
}

const VERSION: &str = "2026-06-20T14:31:08Z";

// ---------------------------------------------------------------------------
// The reader's SELECT.

#[test]
fn select_row_exact_text_for_every_engine() {
    let cap = waiver_cap();
    let key_tenant = vec![LookupParam::PrimaryKey, LookupParam::Tenant];
    let cases = [
        (
            Engine::Postgres,
            false,
            "SELECT \"id\", \"tenant_id\", \"status\", \"late_fee_cents\", \"updated_at\", \"waiver_reason\", \"state_code\" FROM \"public\".\"invoices\" WHERE \"id\" = $1 AND \"tenant_id\"::text = $2 LIMIT 1",
        ),
        (
            Engine::Postgres,
            true,
            "SELECT \"id\", \"tenant_id\", \"status\", \"late_fee_cents\", \"updated_at\", \"waiver_reason\", \"state_code\" FROM \"public\".\"invoices\" WHERE \"id\" = $1 AND \"tenant_id\"::text = $2 LIMIT 1 FOR UPDATE",
        ),
        (
            Engine::Mysql,
            false,
            "SELECT `id`, `tenant_id`, `status`, `late_fee_cents`, `updated_at`, `waiver_reason`, `state_code` FROM `public`.`invoices` WHERE `id` = ? AND CAST(CAST(`tenant_id` AS CHAR) AS BINARY) = CAST(? AS BINARY) LIMIT 1",
        ),
        (
            Engine::Mysql,
            true,
            "SELECT `id`, `tenant_id`, `status`, `late_fee_cents`, `updated_at`, `waiver_reason`, `state_code` FROM `public`.`invoices` WHERE `id` = ? AND CAST(CAST(`tenant_id` AS CHAR) AS BINARY) = CAST(? AS BINARY) LIMIT 1 FOR UPDATE",
        ),
        (
            Engine::Sqlite,
            false,
            "SELECT \"id\", \"tenant_id\", \"status\", \"late_fee_cents\", \"updated_at\", \"waiver_reason\", \"state_code\" FROM \"public\".\"invoices\" WHERE \"id\" = ? AND CAST(\"tenant_id\" AS TEXT) = ? LIMIT 1",
        ),
        // SQLite has no row locks: FOR UPDATE is never emitted.
        (
            Engine::Sqlite,
            true,
            "SELECT \"id\", \"tenant_id\", \"status\", \"late_fee_cents\", \"updated_at\", \"waiver_reason\", \"state_code\" FROM \"public\".\"invoices\" WHERE \"id\" = ? AND CAST(\"tenant_id\" AS TEXT) = ? LIMIT 1",
        ),
    ];
    for (engine, for_update, sql) in cases {
        assert_eq!(
            select_row(engine, &cap, for_update),
            Statement {
                sql: sql.into(),
                params: key_tenant.clone(),
            },
            "{engine:?} for_update={for_update}"
        );
    }
}

#[test]
fn select_row_without_tenant_binds_only_the_key_and_uses_max_rows() {
    let cap = untenanted_read_cap();
    let cases = [
        (
            Engine::Postgres,
            "SELECT \"id\", \"status\" FROM \"public\".\"invoices\" WHERE \"id\" = $1 LIMIT 5 FOR UPDATE",
        ),
        (
            Engine::Mysql,
            "SELECT `id`, `status` FROM `public`.`invoices` WHERE `id` = ? LIMIT 5 FOR UPDATE",
        ),
        (
            Engine::Sqlite,
            "SELECT \"id\", \"status\" FROM \"public\".\"invoices\" WHERE \"id\" = ? LIMIT 5",
        ),
    ];
    for (engine, sql) in cases {
        assert_eq!(
            select_row(engine, &cap, true),
            Statement {
                sql: sql.into(),
                params: vec![LookupParam::PrimaryKey],
            },
            "{engine:?}"
        );
    }
}

#[test]
fn fingerprint_is_the_sha256_of_the_sql_text() {
    let st = Statement {
        sql: "SELECT 1".into(),
        params: Vec::new(),
    };
    // printf 'SELECT 1' | sha256sum
    assert_eq!(
        st.fingerprint(),
        "sha256:e004ebd5b5532a4b85984a62f8ad48a81aa3460c1ca07701f386135d72cdecf5"
    );
    // Parameters are not part of the fingerprint.
    let with_params = Statement {
        sql: "SELECT 1".into(),
        params: vec![LookupParam::Tenant],
    };
    assert_eq!(with_params.fingerprint(), st.fingerprint());
}

#[test]
fn tenant_predicate_and_table_name_per_engine() {
    assert_eq!(
        tenant_predicate(Engine::Postgres, "org", 3),
        "\"org\"::text = $3"
    );
    assert_eq!(
        tenant_predicate(Engine::Mysql, "org", 3),
        "CAST(CAST(`org` AS CHAR) AS BINARY) = CAST(? AS BINARY)"
    );
    assert_eq!(
        tenant_predicate(Engine::Sqlite, "org", 3),
        "CAST(\"org\" AS TEXT) = ?"
    );
    let cap = waiver_cap();
    assert_eq!(
        table_name(Engine::Postgres, &cap),
        "\"public\".\"invoices\""
    );
    assert_eq!(table_name(Engine::Mysql, &cap), "`public`.`invoices`");
    assert_eq!(table_name(Engine::Sqlite, &cap), "\"public\".\"invoices\"");
}

// ---------------------------------------------------------------------------
// Small decisions of the writer.

#[test]
fn text_types_are_recognised_case_insensitively() {
    for t in [
        "char(3)",
        "varchar(255)",
        "VARCHAR(255)",
        "text",
        "MEDIUMTEXT",
        "tinytext",
        "enum('a','b')",
        "set('x')",
        "SET('x')",
        "nchar",
    ] {
        assert!(is_text_type(t), "{t}");
    }
    for t in [
        "int",
        "bigint unsigned",
        "decimal(10,2)",
        "datetime(6)",
        "timestamp",
        "binary(16)",
        "varbinary(16)",
        "blob",
        "json",
        "",
    ] {
        assert!(!is_text_type(t), "{t}");
    }
}

#[test]
fn next_version_follows_the_type_of_the_version_value() {
    for v in [
        json!(0),
        json!(7),
        json!(-1),
        json!(i64::MIN),
        json!(u64::MAX),
    ] {
        assert_eq!(NextVersion::for_value(&v), NextVersion::Increment, "{v}");
    }
    for v in [
        json!(1.5),
        json!(-2.0),
        json!("7"),
        json!(VERSION),
        Value::Null,
        json!(true),
    ] {
        assert_eq!(NextVersion::for_value(&v), NextVersion::Now, "{v}");
    }
}

// ---------------------------------------------------------------------------
// Guards checked on the locked row.

fn check(label: &str, column: &str, expected: Value) -> RowCheck {
    RowCheck {
        label: label.into(),
        column: column.into(),
        expected,
    }
}

#[test]
fn checks_of_a_versioned_change() {
    let cap = waiver_cap();
    let cs = waiver_cs();
    assert_eq!(
        writeback_checks(&cap, &cs, None),
        vec![
            check("version", "updated_at", json!(VERSION)),
            check("before:late_fee_cents", "late_fee_cents", json!(5500)),
            check("before:waiver_reason", "waiver_reason", Value::Null),
        ]
    );
    // A row read is only used for a row-hash guard.
    let row = obj(json!({"id": "INV-3001", "status": "overdue"}));
    assert_eq!(writeback_checks(&cap, &cs, Some(&row)).len(), 3);
}

#[test]
fn checks_of_a_row_hash_change_with_transitions() {
    let mut cap = waiver_cap();
    cap.proposal = Some(proposal(ConflictGuard::RowHash));
    let mut cs = waiver_cs();
    cs.guards.expected_version = None;
    cs.guards.row_hash = Some("sha256:00".into());
    // `status` is guarded by `state_code` (from_column); `kind` by itself;
    // the second transition on `late_fee_cents` repeats a patched column.
    cs.guards.transitions = vec![
        Transition {
            column: "status".into(),
            from: json!("S1"),
            to: json!("waived"),
        },
        Transition {
            column: "kind".into(),
            from: json!("fee"),
            to: json!("none"),
        },
        Transition {
            column: "late_fee_cents".into(),
            from: json!(1),
            to: json!(0),
        },
    ];
    // The before-image lacks waiver_reason: no before check for it.
    cs.before = obj(json!({"late_fee_cents": 5500}));
    let row = obj(json!({
        "id": "INV-3001", "tenant_id": "acme", "state_code": "S9",
        "late_fee_cents": 5500, "updated_at": VERSION
    }));
    let expected = vec![
        check("before:late_fee_cents", "late_fee_cents", json!(5500)),
        check("from:state_code", "state_code", json!("S1")),
        check("from:kind", "kind", json!("fee")),
        check("row:tenant_id", "tenant_id", json!("acme")),
        check("row:updated_at", "updated_at", json!(VERSION)),
    ];
    assert_eq!(writeback_checks(&cap, &cs, Some(&row)), expected);
    // Without the row read, only the explicit guards.
    assert_eq!(writeback_checks(&cap, &cs, None), expected[..3].to_vec());
    // A read row without a row-hash guard adds nothing.
    cs.guards.row_hash = None;
    assert_eq!(
        writeback_checks(&cap, &cs, Some(&row)),
        expected[..3].to_vec()
    );
}

#[test]
fn checks_without_a_proposal_spec_use_the_transition_column() {
    let cap = untenanted_read_cap();
    let mut cs = waiver_cs();
    cs.patch = Map::new();
    cs.guards.expected_version = None;
    cs.guards.transitions = vec![Transition {
        column: "status".into(),
        from: json!("open"),
        to: json!("closed"),
    }];
    assert_eq!(
        writeback_checks(&cap, &cs, None),
        vec![check("from:status", "status", json!("open"))]
    );
}

// ---------------------------------------------------------------------------
// The lock.

fn waiver_checks() -> Vec<RowCheck> {
    vec![
        check("version", "updated_at", json!(VERSION)),
        check("before:late_fee_cents", "late_fee_cents", json!(5500)),
        check("before:waiver_reason", "waiver_reason", Value::Null),
    ]
}

fn check_binds() -> Vec<Bind> {
    vec![
        b("updated_at", json!(VERSION)),
        b("late_fee_cents", json!(5500)),
        b("waiver_reason", Value::Null),
    ]
}

#[test]
fn lock_exact_text_postgres() {
    let st = writeback_lock(&pg(), &waiver_cap(), &waiver_cs(), &waiver_checks());
    let mut binds = check_binds();
    binds.extend([b("id", json!("INV-3001")), tenant_bind()]);
    assert_eq!(
        st,
        BoundStatement {
            sql: "SELECT CASE WHEN \"updated_at\" IS NOT DISTINCT FROM CAST($1 AS timestamp with time zone) THEN 1 ELSE 0 END AS c0, CASE WHEN \"late_fee_cents\" IS NOT DISTINCT FROM CAST($2 AS integer) THEN 1 ELSE 0 END AS c1, CASE WHEN \"waiver_reason\" IS NOT DISTINCT FROM CAST($3 AS text) THEN 1 ELSE 0 END AS c2 FROM \"public\".\"invoices\" WHERE \"id\" = CAST($4 AS text) AND \"tenant_id\"::pg_catalog.text = $5 FOR UPDATE".into(),
            binds,
        }
    );
}

#[test]
fn lock_exact_text_mysql() {
    let st = writeback_lock(&my(), &waiver_cap(), &waiver_cs(), &waiver_checks());
    let mut binds = check_binds();
    // A text primary key is compared twice: by index, then byte-exactly.
    binds.extend([
        b("id", json!("INV-3001")),
        b("id", json!("INV-3001")),
        tenant_bind(),
    ]);
    assert_eq!(
        st,
        BoundStatement {
            sql: "SELECT CASE WHEN `updated_at` <=> ? THEN 1 ELSE 0 END AS c0, CASE WHEN `late_fee_cents` <=> ? THEN 1 ELSE 0 END AS c1, CASE WHEN CAST(`waiver_reason` AS BINARY) <=> CAST(? AS BINARY) THEN 1 ELSE 0 END AS c2 FROM `public`.`invoices` WHERE `id` = ? AND CAST(`id` AS BINARY) = CAST(? AS BINARY) AND CAST(CAST(`tenant_id` AS CHAR) AS BINARY) = CAST(? AS BINARY) FOR UPDATE".into(),
            binds,
        }
    );
}

#[test]
fn lock_exact_text_sqlite() {
    let st = writeback_lock(&lite(), &waiver_cap(), &waiver_cs(), &waiver_checks());
    let mut binds = check_binds();
    binds.extend([b("id", json!("INV-3001")), tenant_bind()]);
    assert_eq!(
        st,
        BoundStatement {
            sql: "SELECT CASE WHEN \"updated_at\" IS ? THEN 1 ELSE 0 END AS c0, CASE WHEN \"late_fee_cents\" IS ? THEN 1 ELSE 0 END AS c1, CASE WHEN \"waiver_reason\" IS ? THEN 1 ELSE 0 END AS c2 FROM \"public\".\"invoices\" WHERE \"id\" = ? AND CAST(\"tenant_id\" AS TEXT) = ?".into(),
            binds,
        }
    );
}

#[test]
fn lock_without_checks_or_tenant_or_types() {
    let mut cap = waiver_cap();
    cap.target.tenant_key = None;
    let cs = waiver_cs();
    let untyped = WriteDialect {
        engine: Engine::Postgres,
        column_type: &no_types,
    };
    assert_eq!(
        writeback_lock(&untyped, &cap, &cs, &[]),
        BoundStatement {
            sql: "SELECT 1 AS c0 FROM \"public\".\"invoices\" WHERE \"id\" = $1 FOR UPDATE".into(),
            binds: vec![b("id", json!("INV-3001"))],
        }
    );
    // MySQL with an untyped (so not text) key: one key comparison only.
    let my_untyped = WriteDialect {
        engine: Engine::Mysql,
        column_type: &no_types,
    };
    assert_eq!(
        writeback_lock(&my_untyped, &cap, &cs, &[]),
        BoundStatement {
            sql: "SELECT 1 AS c0 FROM `public`.`invoices` WHERE `id` = ? FOR UPDATE".into(),
            binds: vec![b("id", json!("INV-3001"))],
        }
    );
    assert_eq!(
        writeback_lock(&lite(), &cap, &cs, &[]),
        BoundStatement {
            sql: "SELECT 1 AS c0 FROM \"public\".\"invoices\" WHERE \"id\" = ?".into(),
            binds: vec![b("id", json!("INV-3001"))],
        }
    );
}

// ---------------------------------------------------------------------------
// The guarded UPDATE.

fn update_binds_pg() -> Vec<Bind> {
    vec![
        b("late_fee_cents", json!(0)),
        b("waiver_reason", json!("r")),
        b("id", json!("INV-3001")),
        tenant_bind(),
        b("updated_at", json!(VERSION)),
    ]
}

#[test]
fn update_exact_text_postgres() {
    let (cap, cs) = (waiver_cap(), waiver_cs());
    assert_eq!(
        writeback_update(&pg(), &cap, &cs, NextVersion::Now),
        BoundStatement {
            sql: "UPDATE \"public\".\"invoices\" SET \"late_fee_cents\" = CAST($1 AS integer), \"waiver_reason\" = CAST($2 AS text), \"updated_at\" = pg_catalog.now() WHERE \"id\" = CAST($3 AS text) AND \"tenant_id\"::pg_catalog.text = $4 AND \"updated_at\" IS NOT DISTINCT FROM CAST($5 AS timestamp with time zone)".into(),
            binds: update_binds_pg(),
        }
    );
    assert_eq!(
        writeback_update(&pg(), &cap, &cs, NextVersion::Increment),
        BoundStatement {
            sql: "UPDATE \"public\".\"invoices\" SET \"late_fee_cents\" = CAST($1 AS integer), \"waiver_reason\" = CAST($2 AS text), \"updated_at\" = \"updated_at\" + 1 WHERE \"id\" = CAST($3 AS text) AND \"tenant_id\"::pg_catalog.text = $4 AND \"updated_at\" IS NOT DISTINCT FROM CAST($5 AS timestamp with time zone)".into(),
            binds: update_binds_pg(),
        }
    );
    let untyped = WriteDialect {
        engine: Engine::Postgres,
        column_type: &no_types,
    };
    assert_eq!(
        writeback_update(&untyped, &cap, &cs, NextVersion::Now).sql,
        "UPDATE \"public\".\"invoices\" SET \"late_fee_cents\" = $1, \"waiver_reason\" = $2, \"updated_at\" = pg_catalog.now() WHERE \"id\" = $3 AND \"tenant_id\"::pg_catalog.text = $4 AND \"updated_at\" IS NOT DISTINCT FROM $5"
    );
}

#[test]
fn update_exact_text_mysql() {
    let (cap, cs) = (waiver_cap(), waiver_cs());
    let binds = vec![
        b("late_fee_cents", json!(0)),
        b("waiver_reason", json!("r")),
        b("id", json!("INV-3001")),
        b("id", json!("INV-3001")),
        tenant_bind(),
        b("updated_at", json!(VERSION)),
    ];
    assert_eq!(
        writeback_update(&my(), &cap, &cs, NextVersion::Now),
        BoundStatement {
            sql: "UPDATE `public`.`invoices` SET `late_fee_cents` = ?, `waiver_reason` = ?, `updated_at` = CURRENT_TIMESTAMP(6) WHERE `id` = ? AND CAST(`id` AS BINARY) = CAST(? AS BINARY) AND CAST(CAST(`tenant_id` AS CHAR) AS BINARY) = CAST(? AS BINARY) AND `updated_at` <=> ?".into(),
            binds: binds.clone(),
        }
    );
    assert_eq!(
        writeback_update(&my(), &cap, &cs, NextVersion::Increment),
        BoundStatement {
            sql: "UPDATE `public`.`invoices` SET `late_fee_cents` = ?, `waiver_reason` = ?, `updated_at` = `updated_at` + 1 WHERE `id` = ? AND CAST(`id` AS BINARY) = CAST(? AS BINARY) AND CAST(CAST(`tenant_id` AS CHAR) AS BINARY) = CAST(? AS BINARY) AND `updated_at` <=> ?".into(),
            binds,
        }
    );
}

#[test]
fn update_exact_text_sqlite() {
    let (cap, cs) = (waiver_cap(), waiver_cs());
    let binds = vec![
        b("late_fee_cents", json!(0)),
        b("waiver_reason", json!("r")),
        b("id", json!("INV-3001")),
        tenant_bind(),
        b("updated_at", json!(VERSION)),
    ];
    assert_eq!(
        writeback_update(&lite(), &cap, &cs, NextVersion::Now),
        BoundStatement {
            sql: "UPDATE \"public\".\"invoices\" SET \"late_fee_cents\" = ?, \"waiver_reason\" = ?, \"updated_at\" = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE \"id\" = ? AND CAST(\"tenant_id\" AS TEXT) = ? AND \"updated_at\" IS ?".into(),
            binds: binds.clone(),
        }
    );
    assert_eq!(
        writeback_update(&lite(), &cap, &cs, NextVersion::Increment),
        BoundStatement {
            sql: "UPDATE \"public\".\"invoices\" SET \"late_fee_cents\" = ?, \"waiver_reason\" = ?, \"updated_at\" = \"updated_at\" + 1 WHERE \"id\" = ? AND CAST(\"tenant_id\" AS TEXT) = ? AND \"updated_at\" IS ?".into(),
            binds,
        }
    );
}

#[test]
fn update_without_version_guard_or_tenant() {
    let mut cap = waiver_cap();
    cap.target.tenant_key = None;
    let mut cs = waiver_cs();
    cs.guards.expected_version = None;
    let binds = vec![
        b("late_fee_cents", json!(0)),
        b("waiver_reason", json!("r")),
        b("id", json!("INV-3001")),
    ];
    assert_eq!(
        writeback_update(&pg(), &cap, &cs, NextVersion::Now),
        BoundStatement {
            sql: "UPDATE \"public\".\"invoices\" SET \"late_fee_cents\" = CAST($1 AS integer), \"waiver_reason\" = CAST($2 AS text) WHERE \"id\" = CAST($3 AS text)".into(),
            binds: binds.clone(),
        }
    );
    assert_eq!(
        writeback_update(&lite(), &cap, &cs, NextVersion::Increment),
        BoundStatement {
            sql: "UPDATE \"public\".\"invoices\" SET \"late_fee_cents\" = ?, \"waiver_reason\" = ? WHERE \"id\" = ?".into(),
            binds,
        }
    );
    assert_eq!(writeback_new_version(&pg(), &cap, &cs), None);
}

// ---------------------------------------------------------------------------
// Reading the new version back.

#[test]
fn new_version_exact_text_for_every_engine() {
    let (cap, cs) = (waiver_cap(), waiver_cs());
    assert_eq!(
        writeback_new_version(&pg(), &cap, &cs),
        Some(BoundStatement {
            sql: "SELECT pg_catalog.to_json(\"updated_at\") #>> '{}' FROM \"public\".\"invoices\" WHERE \"id\" = CAST($1 AS text) AND \"tenant_id\"::pg_catalog.text = $2".into(),
            binds: vec![b("id", json!("INV-3001")), tenant_bind()],
        })
    );
    assert_eq!(
        writeback_new_version(&my(), &cap, &cs),
        Some(BoundStatement {
            sql: "SELECT CAST(`updated_at` AS CHAR) FROM `public`.`invoices` WHERE `id` = ? AND CAST(`id` AS BINARY) = CAST(? AS BINARY) AND CAST(CAST(`tenant_id` AS CHAR) AS BINARY) = CAST(? AS BINARY)".into(),
            binds: vec![b("id", json!("INV-3001")), b("id", json!("INV-3001")), tenant_bind()],
        })
    );
    assert_eq!(
        writeback_new_version(&lite(), &cap, &cs),
        Some(BoundStatement {
            sql: "SELECT CAST(\"updated_at\" AS TEXT) FROM \"public\".\"invoices\" WHERE \"id\" = ? AND CAST(\"tenant_id\" AS TEXT) = ?".into(),
            binds: vec![b("id", json!("INV-3001")), tenant_bind()],
        })
    );
}

// ---------------------------------------------------------------------------
// The receipt table.

#[test]
fn receipts_ddl_exact_text_for_every_engine() {
    // Synapsor Runner's receipt table, column for column and type for type
    // (examples/*/seed/001_schema.sql of Synapsor Runner 1.x).
    assert_eq!(
        receipts_ddl(Engine::Postgres, "airlock"),
        "CREATE TABLE IF NOT EXISTS \"airlock\".\"synapsor_writeback_receipts\" (
  idempotency_key text PRIMARY KEY,
  job_id text UNIQUE NOT NULL,
  proposal_id text NOT NULL,
  status text NOT NULL,
  result_hash text,
  created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
  completed_at timestamptz
)"
    );
    assert_eq!(
        receipts_ddl(Engine::Mysql, "airlock"),
        "CREATE TABLE IF NOT EXISTS `airlock`.`synapsor_writeback_receipts` (
  idempotency_key varchar(255) PRIMARY KEY,
  job_id varchar(255) UNIQUE NOT NULL,
  proposal_id varchar(512) NOT NULL,
  status varchar(64) NOT NULL,
  result_hash varchar(128),
  created_at timestamp(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  completed_at timestamp(6) NULL
)"
    );
    assert_eq!(
        receipts_ddl(Engine::Sqlite, "main"),
        "CREATE TABLE IF NOT EXISTS \"main\".\"synapsor_writeback_receipts\" (
  idempotency_key TEXT PRIMARY KEY,
  job_id TEXT UNIQUE NOT NULL,
  proposal_id TEXT NOT NULL,
  status TEXT NOT NULL,
  result_hash TEXT,
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  completed_at TEXT
)"
    );
}

#[test]
fn receipt_columns_are_synapsors_seven_in_ddl_order() {
    assert_eq!(RECEIPTS_TABLE, "synapsor_writeback_receipts");
    assert_eq!(
        RECEIPT_COLUMNS,
        [
            "idempotency_key",
            "job_id",
            "proposal_id",
            "status",
            "result_hash",
            "created_at",
            "completed_at"
        ]
    );
    // Every engine's DDL declares exactly these columns, in this order.
    for engine in [Engine::Postgres, Engine::Mysql, Engine::Sqlite] {
        let ddl = receipts_ddl(engine, "s");
        let declared: Vec<&str> = ddl
            .lines()
            .skip(1)
            .filter_map(|l| l.trim().split(' ').next())
            .filter(|w| !w.is_empty() && *w != ")")
            .collect();
        assert_eq!(declared, RECEIPT_COLUMNS, "{ddl}");
    }
}

#[test]
fn receipt_lookup_and_insert_exact_text_for_every_engine() {
    assert_eq!(
        receipt_lookup(Engine::Postgres, "airlock"),
        "SELECT job_id, status, result_hash FROM \"airlock\".\"synapsor_writeback_receipts\" WHERE idempotency_key = $1"
    );
    assert_eq!(
        receipt_lookup(Engine::Mysql, "airlock"),
        "SELECT job_id, status, result_hash FROM `airlock`.`synapsor_writeback_receipts` WHERE idempotency_key = ?"
    );
    assert_eq!(
        receipt_lookup(Engine::Sqlite, "main"),
        "SELECT job_id, status, result_hash FROM \"main\".\"synapsor_writeback_receipts\" WHERE idempotency_key = ?"
    );
    assert_eq!(
        receipt_insert(Engine::Postgres, "airlock"),
        "INSERT INTO \"airlock\".\"synapsor_writeback_receipts\" (idempotency_key, job_id, proposal_id, status, result_hash, completed_at) VALUES ($1, $2, $3, 'applied', $4, pg_catalog.now())"
    );
    assert_eq!(
        receipt_insert(Engine::Mysql, "airlock"),
        "INSERT INTO `airlock`.`synapsor_writeback_receipts` (idempotency_key, job_id, proposal_id, status, result_hash, completed_at) VALUES (?, ?, ?, 'applied', ?, CURRENT_TIMESTAMP(6))"
    );
    assert_eq!(
        receipt_insert(Engine::Sqlite, "main"),
        "INSERT INTO \"main\".\"synapsor_writeback_receipts\" (idempotency_key, job_id, proposal_id, status, result_hash, completed_at) VALUES (?, ?, ?, 'applied', ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))"
    );
}

// ---------------------------------------------------------------------------
// Properties: every write statement is constrained by key and tenant (and
// the UPDATE by version), each bound at the placeholder it names.

/// A generated writeback: distinct column names, per-column types, values.
#[derive(Debug, Clone)]
struct Gen {
    engine: Engine,
    schema: String,
    table: String,
    pk: String,
    tenant: Option<String>,
    version: Option<String>,
    patch: Vec<String>,
    types: BTreeMap<String, String>,
    pk_value: Value,
    tenant_id: String,
    version_value: Value,
    patch_values: Vec<Value>,
}

fn arb_engine() -> impl Strategy<Value = Engine> {
    prop_oneof![
        Just(Engine::Postgres),
        Just(Engine::Mysql),
        Just(Engine::Sqlite)
    ]
}

fn arb_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(|n| json!(n)),
        "[ -~]{0,12}".prop_map(Value::String),
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
    ]
}

fn arb_type() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof![
        Just("text".to_owned()),
        Just("varchar(32)".to_owned()),
        Just("integer".to_owned()),
        Just("bigint".to_owned()),
        Just("timestamp with time zone".to_owned()),
        Just("uuid".to_owned()),
        Just("enum('a','b')".to_owned()),
    ])
}

const IDENT: &str = "[A-Za-z_][A-Za-z0-9_]{0,20}";

fn arb_gen() -> impl Strategy<Value = Gen> {
    (
        arb_engine(),
        IDENT,
        IDENT,
        prop::collection::btree_set(IDENT, 3..7),
        any::<(bool, bool)>(),
        prop::collection::vec(arb_type(), 7),
        (
            arb_scalar(),
            "[ -~]{0,16}",
            arb_scalar(),
            prop::collection::vec(arb_scalar(), 4),
        ),
    )
        .prop_map(
            |(engine, schema, table, cols, (has_tenant, has_version), types, values)| {
                let cols: Vec<String> = cols.into_iter().collect();
                let pk = cols[0].clone();
                let tenant = has_tenant.then(|| cols[1].clone());
                let version = has_version.then(|| cols[2].clone());
                let patch = cols[3..].to_vec();
                let types = cols
                    .iter()
                    .zip(types)
                    .filter_map(|(c, t)| t.map(|t| (c.clone(), t)))
                    .collect();
                let (pk_value, tenant_id, version_value, patch_values) = values;
                Gen {
                    engine,
                    schema,
                    table,
                    pk,
                    tenant,
                    version,
                    patch,
                    types,
                    pk_value,
                    tenant_id,
                    version_value,
                    patch_values,
                }
            },
        )
}

impl Gen {
    fn cap(&self) -> Capability {
        let mut cap = waiver_cap();
        cap.target = Target {
            schema: self.schema.clone(),
            table: self.table.clone(),
            primary_key: self.pk.clone(),
            tenant_key: self.tenant.clone(),
            principal_scope_key: None,
        };
        cap
    }

    fn cs(&self) -> ChangeSet {
        let mut cs = waiver_cs();
        cs.tenant_id = self.tenant_id.clone();
        cs.target.primary_key = ColumnValue {
            column: self.pk.clone(),
            value: self.pk_value.clone(),
        };
        cs.patch = self
            .patch
            .iter()
            .cloned()
            .zip(self.patch_values.iter().cloned())
            .collect();
        cs.guards.expected_version = self.version.as_ref().map(|c| ColumnValue {
            column: c.clone(),
            value: self.version_value.clone(),
        });
        cs
    }

    fn q(&self, ident: &str) -> String {
        match self.engine {
            Engine::Mysql => format!("`{ident}`"),
            Engine::Postgres | Engine::Sqlite => format!("\"{ident}\""),
        }
    }

    /// The placeholder text for parameter `n` of a column.
    fn ph(&self, column: Option<&str>, n: usize) -> String {
        match self.engine {
            Engine::Postgres => match column.and_then(|c| self.types.get(c)) {
                Some(t) => format!("CAST(${n} AS {t})"),
                None => format!("${n}"),
            },
            Engine::Mysql | Engine::Sqlite => "?".into(),
        }
    }

    fn mysql_text(&self, column: &str) -> bool {
        self.engine == Engine::Mysql
            && self.types.get(column).is_some_and(|t| {
                let t = t.to_ascii_lowercase();
                ["char", "text", "enum", "set"]
                    .iter()
                    .any(|k| t.contains(k))
            })
    }
}

/// Byte offsets and parameter numbers of the placeholders in `sql`, in
/// order of appearance; `?` is numbered by position. Also checks Postgres
/// numbers follow the order of appearance.
fn placeholders(sql: &str) -> Vec<(usize, usize)> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'?' {
            out.push((i, out.len() + 1));
        } else if bytes[i] == b'$' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
            let mut j = i + 1;
            while j < bytes.len() && bytes[j].is_ascii_digit() {
                j += 1;
            }
            let n: usize = sql[i + 1..j].parse().unwrap();
            assert_eq!(n, out.len() + 1, "placeholders out of order in {sql}");
            out.push((i, n));
        }
        i += 1;
    }
    out
}

/// The WHERE clause's conjuncts, each with the parameter numbers inside it.
fn conjuncts(sql: &str) -> Vec<(String, Vec<usize>)> {
    let parts: Vec<&str> = sql.split(" WHERE ").collect();
    assert_eq!(parts.len(), 2, "exactly one WHERE in {sql}");
    let start = parts[0].len() + " WHERE ".len();
    let phs = placeholders(sql);
    let mut out = Vec::new();
    let mut at = start;
    for c in parts[1].split(" AND ") {
        let end = at + c.len();
        let ns = phs
            .iter()
            .filter(|(o, _)| (at..end).contains(o))
            .map(|(_, n)| *n)
            .collect();
        out.push((c.to_owned(), ns));
        at = end + " AND ".len();
    }
    out
}

/// The exact conjuncts the row predicate must contain (key, byte-exact
/// MySQL text key, tenant), numbered from `first`, with the binds they take.
fn expected_row_predicate(g: &Gen, first: usize) -> Vec<(String, Bind)> {
    let mut out = Vec::new();
    let mut n = first;
    let key = Bind {
        column: Some(g.pk.clone()),
        value: g.pk_value.clone(),
    };
    out.push((
        format!("{} = {}", g.q(&g.pk), g.ph(Some(&g.pk), n)),
        key.clone(),
    ));
    n += 1;
    if g.mysql_text(&g.pk) {
        out.push((
            format!("CAST({} AS BINARY) = CAST(? AS BINARY)", g.q(&g.pk)),
            key,
        ));
        n += 1;
    }
    if let Some(tk) = &g.tenant {
        let col = g.q(tk);
        let text = match g.engine {
            Engine::Postgres => format!("{col}::pg_catalog.text = ${n}"),
            Engine::Mysql => format!("CAST(CAST({col} AS CHAR) AS BINARY) = CAST(? AS BINARY)"),
            Engine::Sqlite => format!("CAST({col} AS TEXT) = ?"),
        };
        out.push((
            text,
            Bind {
                column: None,
                value: json!(g.tenant_id),
            },
        ));
    }
    out
}

fn expected_version_conjunct(g: &Gen, n: usize) -> Option<(String, Bind)> {
    let v = g.version.as_ref()?;
    let col = g.q(v);
    let p = g.ph(Some(v), n);
    let text = match g.engine {
        Engine::Postgres => format!("{col} IS NOT DISTINCT FROM {p}"),
        Engine::Mysql if g.mysql_text(v) => {
            format!("CAST({col} AS BINARY) <=> CAST({p} AS BINARY)")
        }
        Engine::Mysql => format!("{col} <=> {p}"),
        Engine::Sqlite => format!("{col} IS {p}"),
    };
    Some((
        text,
        Bind {
            column: Some(v.clone()),
            value: g.version_value.clone(),
        },
    ))
}

/// The WHERE clause is exactly `expected`, each conjunct's one placeholder
/// bound to its value, and there is one bind per placeholder.
fn assert_where(st: &BoundStatement, expected: &[(String, Bind)]) {
    let phs = placeholders(&st.sql);
    assert_eq!(
        phs.len(),
        st.binds.len(),
        "one bind per placeholder: {st:?}"
    );
    let got = conjuncts(&st.sql);
    assert_eq!(got.len(), expected.len(), "{}", st.sql);
    for ((text, ns), (want, bind)) in got.iter().zip(expected) {
        assert_eq!(text, want, "{}", st.sql);
        assert_eq!(ns.len(), 1, "one parameter in {text}");
        assert_eq!(&st.binds[ns[0] - 1], bind, "bind of {text} in {}", st.sql);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn update_is_constrained_by_key_tenant_and_version(g in arb_gen()) {
        let types = g.types.clone();
        let column_type = move |c: &str| types.get(c).cloned();
        let d = WriteDialect { engine: g.engine, column_type: &column_type };
        let (cap, cs) = (g.cap(), g.cs());
        for next in [NextVersion::Now, NextVersion::Increment] {
            let st = writeback_update(&d, &cap, &cs, next);
            let table = format!("{}.{}", g.q(&g.schema), g.q(&g.table));
            prop_assert!(st.sql.starts_with(&format!("UPDATE {table} SET ")), "{}", st.sql);
            // SET: each patched column takes its own value, in order.
            let set_clause = st.sql.split(" WHERE ").next().unwrap();
            for (i, col) in g.patch.iter().enumerate() {
                let want = format!("{} = {}", g.q(col), g.ph(Some(col), i + 1));
                prop_assert!(set_clause.contains(&want), "{want} in {}", st.sql);
                prop_assert_eq!(&st.binds[i], &Bind {
                    column: Some(col.clone()),
                    value: g.patch_values[i].clone(),
                });
            }
            let mut expected = expected_row_predicate(&g, g.patch.len() + 1);
            let n = g.patch.len() + expected.len() + 1;
            expected.extend(expected_version_conjunct(&g, n));
            assert_where(&st, &expected);
        }
    }

    #[test]
    fn lock_and_read_back_are_constrained_by_key_and_tenant(g in arb_gen()) {
        let types = g.types.clone();
        let column_type = move |c: &str| types.get(c).cloned();
        let d = WriteDialect { engine: g.engine, column_type: &column_type };
        let (cap, cs) = (g.cap(), g.cs());
        let checks = writeback_checks(&cap, &cs, None);
        let lock = writeback_lock(&d, &cap, &cs, &checks);
        prop_assert_eq!(lock.sql.ends_with(" FOR UPDATE"), g.engine != Engine::Sqlite);
        let lock_sql = lock.sql.trim_end_matches(" FOR UPDATE").to_owned();
        let lock = BoundStatement { sql: lock_sql, binds: lock.binds };
        assert_where(&lock, &expected_row_predicate(&g, checks.len() + 1));
        match writeback_new_version(&d, &cap, &cs) {
            Some(st) => {
                prop_assert!(g.version.is_some());
                assert_where(&st, &expected_row_predicate(&g, 1));
            }
            None => prop_assert!(g.version.is_none()),
        }
    }

    #[test]
    fn select_row_is_constrained_by_key_and_tenant(g in arb_gen(), for_update in any::<bool>()) {
        let cap = g.cap();
        let st = select_row(g.engine, &cap, for_update);
        let mut params = vec![LookupParam::PrimaryKey];
        let (ph1, ph2) = match g.engine {
            Engine::Postgres => ("$1", "$2"),
            Engine::Mysql | Engine::Sqlite => ("?", "?"),
        };
        let mut pred = format!("{} = {ph1}", g.q(&g.pk));
        if let Some(tk) = &g.tenant {
            let col = g.q(tk);
            pred.push_str(" AND ");
            pred.push_str(&match g.engine {
                Engine::Postgres => format!("{col}::text = {ph2}"),
                Engine::Mysql => format!("CAST(CAST({col} AS CHAR) AS BINARY) = CAST({ph2} AS BINARY)"),
                Engine::Sqlite => format!("CAST({col} AS TEXT) = {ph2}"),
            });
            params.push(LookupParam::Tenant);
        }
        let lock = if for_update && g.engine != Engine::Sqlite { " FOR UPDATE" } else { "" };
        let tail = format!(" FROM {}.{} WHERE {pred} LIMIT 1{lock}", g.q(&g.schema), g.q(&g.table));
        prop_assert!(st.sql.starts_with("SELECT "), "{}", st.sql);
        prop_assert!(st.sql.ends_with(&tail), "{} / {tail}", st.sql);
        prop_assert_eq!(st.params, params);
    }
}
