//! Principal row scope (`target.principal_scope_key`): the loader's rules,
//! the SQL text of reads and writes per engine, and the change set's
//! principal guard as `build` makes it and `verify` re-checks it. Expected
//! values are written out here, never computed by the code under test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use airlock_policy::args::validate_args;
use airlock_policy::catalog::{AliasMode, Catalog};
use airlock_policy::change_set::{
    ChangeSet, ColumnValue, ExportMeta, ViolationCode, build, export_v1, principal_guard,
    principal_in_scope, verify,
};
use airlock_policy::config::{ContextProvider, Engine};
use airlock_policy::context::TrustedContext;
use airlock_policy::statement::{
    LookupParam, NextVersion, WriteDialect, freshness_probe, select_row, writeback_checks,
    writeback_lock, writeback_new_version, writeback_update,
};
use airlock_policy::{Config, load_config};
use serde_json::{Map, Value, json};

#[path = "support/json_edit.rs"]
mod json_edit;
use json_edit::{remove, set};

const READ: &str = "tasks.inspect_task";
const PROPOSE: &str = "tasks.propose_status";

/// A read and a proposal on `tasks`, both scoped by tenant and by
/// `assigned_to` = the trusted principal.
fn base() -> Value {
    let target = json!({
        "schema": "public", "table": "tasks", "primary_key": "id",
        "tenant_key": "tenant_id", "principal_scope_key": "assigned_to"
    });
    json!({
        "version": 1,
        "mode": "review",
        "sources": {"app": {"engine": "postgres", "read_url_env": "APP_READ_URL", "write_url_env": "APP_WRITE_URL"}},
        "trusted_context": {
            "provider": "environment",
            "values": {"tenant_id_env": "APP_TENANT_ID", "principal_env": "APP_PRINCIPAL"}
        },
        "capabilities": [
            {
                "name": READ, "kind": "read", "source": "app", "target": target,
                "args": {"task_id": {"type": "string", "required": true, "max_length": 64}},
                "lookup": {"id_from_arg": "task_id"},
                "visible_columns": ["id", "title", "status"],
                "max_rows": 1
            },
            {
                "name": PROPOSE, "kind": "proposal", "source": "app", "target": target,
                "args": {"task_id": {"type": "string", "required": true, "max_length": 64}},
                "lookup": {"id_from_arg": "task_id"},
                "visible_columns": ["id", "status"],
                "patch": {"status": {"fixed": "done"}},
                "allowed_columns": ["status"],
                "conflict_guard": {"column": "updated_at"}
            }
        ]
    })
}

fn config() -> Config {
    let loaded = load_config(&base());
    assert!(!loaded.report.has_errors(), "{:#?}", loaded.report);
    loaded.config.unwrap()
}

/// Every error as `path | message | fix`.
fn refusals(v: &Value) -> Vec<String> {
    let loaded = load_config(v);
    assert!(loaded.config.is_none());
    loaded
        .report
        .errors()
        .map(|d| format!("{} | {} | {}", d.path, d.message, d.fix))
        .collect()
}

fn ctx(principal: &str) -> TrustedContext {
    TrustedContext {
        tenant_id: "acme".into(),
        principal: principal.into(),
        source: ContextProvider::Environment,
    }
}

fn row(assigned_to: Value) -> Map<String, Value> {
    json!({
        "id": "T-1", "tenant_id": "acme", "assigned_to": assigned_to,
        "title": "x", "status": "open", "updated_at": "2026-01-01T00:00:00Z"
    })
    .as_object()
    .unwrap()
    .clone()
}

fn proposal_for(cfg: &Config, principal: &str) -> ChangeSet {
    let cap = cfg.capability(PROPOSE).unwrap();
    let args = validate_args(cap, Some(&json!({"task_id": "T-1"}))).unwrap();
    build(cap, &args, &ctx(principal), &row(json!(principal))).unwrap()
}

// ---------------------------------------------------------------------------
// Loader.

#[test]
fn the_key_loads_into_the_target_and_the_read_columns() {
    let cfg = config();
    let cap = cfg.capability(READ).unwrap();
    assert_eq!(
        cap.target.principal_scope_key.as_deref(),
        Some("assigned_to")
    );
    assert_eq!(
        cap.read_columns(),
        vec!["id", "title", "status", "tenant_id", "assigned_to"]
    );
    // Without the key the target serializes exactly as before.
    let mut plain = base();
    remove(&mut plain, "/capabilities/0/target/principal_scope_key");
    let plain = load_config(&plain).config.unwrap();
    let target = serde_json::to_value(&plain.capability(READ).unwrap().target).unwrap();
    assert_eq!(
        target,
        json!({"schema": "public", "table": "tasks", "primary_key": "id", "tenant_key": "tenant_id"})
    );
    assert_eq!(
        plain.capability(READ).unwrap().read_columns(),
        vec!["id", "title", "status", "tenant_id"]
    );
}

#[test]
fn the_key_must_be_a_safe_column_other_than_the_primary_and_tenant_keys() {
    let mut v = base();
    set(
        &mut v,
        "/capabilities/0/target/principal_scope_key",
        json!("id"),
    );
    assert_eq!(
        refusals(&v),
        vec![
            "$.capabilities[0].target.principal_scope_key | the principal scope key cannot be the primary key | name the column that holds the principal a row is assigned to, e.g. \"assigned_to\""
        ]
    );
    let mut v = base();
    set(
        &mut v,
        "/capabilities/0/target/principal_scope_key",
        json!("tenant_id"),
    );
    assert_eq!(
        refusals(&v),
        vec![
            "$.capabilities[0].target.principal_scope_key | the principal scope key cannot be the tenant key | name the column that holds the principal a row is assigned to, e.g. \"assigned_to\""
        ]
    );
    let mut v = base();
    set(
        &mut v,
        "/capabilities/0/target/principal_scope_key",
        json!("assigned to"),
    );
    let errs = refusals(&v);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("$.capabilities[0].target.principal_scope_key | "),
        "{errs:?}"
    );
}

#[test]
fn the_key_narrows_a_tenant_scope_and_never_replaces_it() {
    let mut v = base();
    set(
        &mut v,
        "/capabilities/1/target",
        json!({"schema": "public", "table": "tasks", "primary_key": "id",
               "single_tenant_dev": true, "principal_scope_key": "assigned_to"}),
    );
    set(&mut v, "/capabilities/1/single_tenant_dev_ack", json!(true));
    assert_eq!(
        refusals(&v),
        vec![
            "$.capabilities[1].target.principal_scope_key | a principal scope narrows the tenant scope and cannot replace it; this target has no tenant key | add \"tenant_key\": the column holding the tenant id, e.g. \"tenant_id\" (and drop `single_tenant_dev`)"
        ]
    );
}

#[test]
fn the_key_needs_a_context_that_names_a_principal() {
    let mut v = base();
    remove(&mut v, "/trusted_context/values/principal_env");
    assert_eq!(
        refusals(&v),
        vec![
            "$.capabilities[0].target.principal_scope_key | the principal scope needs a trusted principal, but `trusted_context` names no principal source | add \"principal_env\": \"APP_PRINCIPAL\" (environment provider) or \"principal\" (static_dev) to that context's `values`",
            "$.capabilities[1].target.principal_scope_key | the principal scope needs a trusted principal, but `trusted_context` names no principal source | add \"principal_env\": \"APP_PRINCIPAL\" (environment provider) or \"principal\" (static_dev) to that context's `values`",
        ]
    );
    // A named context is the one that must name it.
    let mut v = base();
    set(
        &mut v,
        "/contexts",
        json!({"desk": {"provider": "environment", "values": {"tenant_id_env": "APP_TENANT_ID"}}}),
    );
    set(&mut v, "/capabilities/0/context", json!("desk"));
    assert_eq!(
        refusals(&v),
        vec![
            "$.capabilities[0].target.principal_scope_key | the principal scope needs a trusted principal, but context `desk` names no principal source | add \"principal_env\": \"APP_PRINCIPAL\" (environment provider) or \"principal\" (static_dev) to that context's `values`"
        ]
    );
}

#[test]
fn the_key_must_be_a_locked_column_when_a_schema_lock_exists() {
    let lock = |cols: &[&str]| {
        let columns: BTreeMap<String, String> = cols
            .iter()
            .map(|c| ((*c).to_owned(), "text".to_owned()))
            .collect();
        let fp = airlock_policy::drift::fingerprint("public", "tasks", &columns);
        json!({"schema": "public", "table": "tasks", "columns": columns, "fingerprint": fp})
    };
    let all = [
        "id",
        "tenant_id",
        "assigned_to",
        "title",
        "status",
        "updated_at",
    ];
    let mut v = base();
    set(
        &mut v,
        "/airlock",
        json!({"schema_lock": {READ: lock(&all)}}),
    );
    assert!(!load_config(&v).report.has_errors());
    let mut v = base();
    set(
        &mut v,
        "/airlock",
        json!({"schema_lock": {READ: lock(&["id", "tenant_id", "title", "status"])}}),
    );
    assert_eq!(
        refusals(&v),
        vec![
            "$.capabilities[0].target.principal_scope_key | `assigned_to` is not a column of public.tasks as the schema lock records it | name an existing column of that table, or add the column and then run `airlock config lock --config <file>` to record the live table again, and review the change"
        ]
    );
}

#[test]
fn a_proposal_can_never_change_the_principal_column() {
    let mut v = base();
    set(
        &mut v,
        "/capabilities/1/allowed_columns",
        json!(["status", "assigned_to"]),
    );
    assert_eq!(
        refusals(&v),
        vec![
            "$.capabilities[1].allowed_columns[1] | `assigned_to` is the principal scope key and can never be changed by a proposal | remove it from `allowed_columns`"
        ]
    );
}

#[test]
fn tool_descriptions_say_the_records_are_the_callers() {
    let cfg = config();
    let catalog = Catalog::new(&cfg, AliasMode::Canonical);
    let read = catalog
        .tools()
        .iter()
        .find(|t| t.canonical == READ)
        .unwrap();
    assert!(
        read.description
            .contains("Read-only; scoped to your tenant and to records assigned to you."),
        "{}",
        read.description
    );
    let prop = catalog
        .tools()
        .iter()
        .find(|t| t.canonical == PROPOSE)
        .unwrap();
    assert!(
        prop.description.contains(" Only records assigned to you."),
        "{}",
        prop.description
    );
}

// ---------------------------------------------------------------------------
// SQL text.

#[test]
fn reads_and_write_predicates_compare_the_principal_exactly_as_text() {
    let cfg = config();
    let cap = cfg.capability(READ).unwrap();
    let pg = select_row(Engine::Postgres, cap, false);
    assert_eq!(
        pg.sql,
        "SELECT \"id\", \"title\", \"status\", \"tenant_id\", \"assigned_to\" FROM \"public\".\"tasks\" WHERE \"id\" = $1 AND \"tenant_id\"::text = $2 AND \"assigned_to\"::text = $3 LIMIT 1"
    );
    assert_eq!(
        pg.params,
        vec![
            LookupParam::PrimaryKey,
            LookupParam::Tenant,
            LookupParam::Principal
        ]
    );
    assert_eq!(
        select_row(Engine::Mysql, cap, true).sql,
        "SELECT `id`, `title`, `status`, `tenant_id`, `assigned_to` FROM `public`.`tasks` WHERE `id` = ? AND CAST(CAST(`tenant_id` AS CHAR) AS BINARY) = CAST(? AS BINARY) AND CAST(CAST(`assigned_to` AS CHAR) AS BINARY) = CAST(? AS BINARY) LIMIT 1 FOR UPDATE"
    );
    let lite = select_row(Engine::Sqlite, cap, false);
    assert_eq!(
        lite.sql,
        "SELECT \"id\", \"title\", \"status\", \"tenant_id\", \"assigned_to\" FROM \"public\".\"tasks\" WHERE \"id\" = ? AND CAST(\"tenant_id\" AS TEXT) = ? AND CAST(\"assigned_to\" AS TEXT) = ? LIMIT 1"
    );
    assert_eq!(lite.params, pg.params);
}

#[test]
fn every_writer_statement_is_scoped_by_the_change_sets_principal() {
    let cfg = config();
    let cap = cfg.capability(PROPOSE).unwrap();
    let cs = proposal_for(&cfg, "ann");
    let types = |_: &str| Some("text".to_owned());
    let pg = WriteDialect {
        engine: Engine::Postgres,
        column_type: &types,
    };
    let checks = writeback_checks(cap, &cs, None);
    let lock = writeback_lock(&pg, cap, &cs, &checks);
    assert_eq!(
        lock.sql,
        "SELECT CASE WHEN \"updated_at\" IS NOT DISTINCT FROM CAST($1 AS text) THEN 1 ELSE 0 END AS c0, CASE WHEN \"status\" IS NOT DISTINCT FROM CAST($2 AS text) THEN 1 ELSE 0 END AS c1 FROM \"public\".\"tasks\" WHERE \"id\" = CAST($3 AS text) AND \"tenant_id\"::pg_catalog.text = $4 AND \"assigned_to\"::pg_catalog.text = $5 FOR UPDATE"
    );
    let last = lock.binds.last().unwrap();
    assert_eq!(last.column, None);
    assert_eq!(last.value, json!("ann"));
    let update = writeback_update(&pg, cap, &cs, NextVersion::Now);
    assert_eq!(
        update.sql,
        "UPDATE \"public\".\"tasks\" SET \"status\" = CAST($1 AS text), \"updated_at\" = pg_catalog.now() WHERE \"id\" = CAST($2 AS text) AND \"tenant_id\"::pg_catalog.text = $3 AND \"assigned_to\"::pg_catalog.text = $4 AND \"updated_at\" IS NOT DISTINCT FROM CAST($5 AS text)"
    );
    assert_eq!(update.binds[3].value, json!("ann"));
    let probe = freshness_probe(&pg, cap, &cs, &checks);
    assert!(
        probe
            .sql
            .ends_with("AND \"assigned_to\"::pg_catalog.text = $5"),
        "{}",
        probe.sql
    );
    let read_back = writeback_new_version(&pg, cap, &cs).unwrap();
    assert!(
        read_back
            .sql
            .ends_with("AND \"assigned_to\"::pg_catalog.text = $3"),
        "{}",
        read_back.sql
    );
    assert_eq!(read_back.binds[2].value, json!("ann"));
    for (engine, pred) in [
        (
            Engine::Mysql,
            " AND CAST(CAST(`assigned_to` AS CHAR) AS BINARY) = CAST(? AS BINARY)",
        ),
        (Engine::Sqlite, " AND CAST(\"assigned_to\" AS TEXT) = ?"),
    ] {
        let d = WriteDialect {
            engine,
            column_type: &types,
        };
        let probe = freshness_probe(&d, cap, &cs, &checks);
        assert!(probe.sql.ends_with(pred), "{}", probe.sql);
        assert_eq!(probe.binds.last().unwrap().value, json!("ann"));
    }
    // A change set without a principal guard (never verified) matches no row.
    let mut unguarded = cs.clone();
    unguarded.guards.principal = None;
    let probe = freshness_probe(&pg, cap, &unguarded, &checks);
    assert_eq!(probe.binds.last().unwrap().value, Value::Null);
    assert!(probe.sql.ends_with("\"assigned_to\"::pg_catalog.text = $5"));
}

// ---------------------------------------------------------------------------
// Change sets.

#[test]
fn build_records_the_trusted_principal_as_a_guard() {
    let cfg = config();
    let cap = cfg.capability(PROPOSE).unwrap();
    let cs = proposal_for(&cfg, "ann");
    assert_eq!(
        cs.guards.principal,
        Some(ColumnValue {
            column: "assigned_to".into(),
            value: json!("ann")
        })
    );
    assert_eq!(
        principal_guard(cap, &ctx("bob")),
        Some(ColumnValue {
            column: "assigned_to".into(),
            value: json!("bob")
        })
    );
    assert_eq!(
        serde_json::to_value(&cs).unwrap()["guards"]["principal"],
        json!({"column": "assigned_to", "value": "ann"})
    );
    // A numeric principal column compares by its text.
    let args = validate_args(cap, Some(&json!({"task_id": "T-1"}))).unwrap();
    assert!(build(cap, &args, &ctx("42"), &row(json!(42))).is_ok());
}

#[test]
fn build_refuses_a_row_of_another_principal_or_without_the_column() {
    let cfg = config();
    let cap = cfg.capability(PROPOSE).unwrap();
    let args = validate_args(cap, Some(&json!({"task_id": "T-1"}))).unwrap();
    for r in [row(json!("bob")), row(json!("ANN")), row(Value::Null), {
        let mut r = row(json!("ann"));
        r.remove("assigned_to");
        r
    }] {
        let errs = build(cap, &args, &ctx("ann"), &r).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].code, ViolationCode::PrincipalMismatch);
        assert_eq!(errs[0].path, "guards.principal");
    }
    assert!(principal_in_scope(cap, &row(json!("ann")), "ann"));
    assert!(!principal_in_scope(cap, &row(json!("ann")), "bob"));
}

#[test]
fn without_the_key_nothing_changes() {
    let mut v = base();
    remove(&mut v, "/capabilities/1/target/principal_scope_key");
    let cfg = load_config(&v).config.unwrap();
    let cap = cfg.capability(PROPOSE).unwrap();
    assert_eq!(principal_guard(cap, &ctx("ann")), None);
    // Any row is in scope, whoever it is assigned to.
    assert!(principal_in_scope(cap, &row(json!("bob")), "ann"));
    let args = validate_args(cap, Some(&json!({"task_id": "T-1"}))).unwrap();
    let cs = build(cap, &args, &ctx("ann"), &row(json!("bob"))).unwrap();
    assert_eq!(cs.guards.principal, None);
    let guards = serde_json::to_value(&cs).unwrap()["guards"].clone();
    assert!(guards.get("principal").is_none(), "{guards}");
    assert!(
        !select_row(Engine::Postgres, cap, false)
            .sql
            .contains("assigned_to")
    );
    // A principal guard on such a change set is forged.
    let mut forged = cs.clone();
    forged.guards.principal = Some(ColumnValue {
        column: "assigned_to".into(),
        value: json!("ann"),
    });
    let errs = verify(&cfg, &forged, &|_| true).unwrap_err();
    assert_eq!(errs[0].code, ViolationCode::PrincipalMismatch);
    assert_eq!(verify(&cfg, &cs, &|_| true).unwrap(), cs);
}

#[test]
fn verify_refuses_a_removed_altered_or_moved_principal_guard() {
    let cfg = config();
    let cs = proposal_for(&cfg, "ann");
    assert_eq!(verify(&cfg, &cs, &|_| true).unwrap(), cs);

    let refused = |cs: &ChangeSet| -> Vec<(ViolationCode, String)> {
        verify(&cfg, cs, &|_| true)
            .unwrap_err()
            .into_iter()
            .map(|v| (v.code, v.path))
            .collect()
    };
    let mut removed = cs.clone();
    removed.guards.principal = None;
    assert_eq!(
        refused(&removed),
        vec![(ViolationCode::PrincipalMismatch, "guards.principal".into())]
    );
    let mut other = cs.clone();
    other.guards.principal = Some(ColumnValue {
        column: "assigned_to".into(),
        value: json!("bob"),
    });
    assert_eq!(
        refused(&other),
        vec![(ViolationCode::PrincipalMismatch, "guards.principal".into())]
    );
    let mut moved = cs.clone();
    moved.guards.principal = Some(ColumnValue {
        column: "title".into(),
        value: json!("ann"),
    });
    assert_eq!(
        refused(&moved),
        vec![(ViolationCode::PrincipalMismatch, "guards.principal".into())]
    );
    // Claiming another principal with a matching guard verifies as that
    // principal's change set: the executor then needs that principal's
    // evidence (checked at intake) and the row still assigned (at apply).
    let mut claimed = cs.clone();
    claimed.principal = "bob".into();
    claimed.guards.principal = Some(ColumnValue {
        column: "assigned_to".into(),
        value: json!("bob"),
    });
    let rebuilt = verify(&cfg, &claimed, &|_| true).unwrap();
    assert_eq!(rebuilt.guards.principal.unwrap().value, json!("bob"));
    // A principal that differs from its own guard is refused.
    let mut split = cs.clone();
    split.principal = "bob".into();
    assert_eq!(
        refused(&split),
        vec![(ViolationCode::PrincipalMismatch, "guards.principal".into())]
    );
    // The principal column in the patch is never allowed.
    let mut patched = cs.clone();
    patched.patch.insert("assigned_to".into(), json!("ann"));
    assert_eq!(
        refused(&patched)[0],
        (ViolationCode::ColumnNotAllowed, "patch.assigned_to".into())
    );
    // Nor in the before-image.
    let mut before = cs.clone();
    before.before.insert("assigned_to".into(), json!("ann"));
    assert_eq!(
        refused(&before)[0],
        (ViolationCode::UnexpectedColumn, "before.assigned_to".into())
    );
}

#[test]
fn the_export_shows_the_principal_scope_held() {
    let cfg = config();
    let cs = proposal_for(&cfg, "ann");
    let meta = ExportMeta {
        proposal_id: "p",
        source_id: "app",
        engine: Engine::Postgres,
        evidence_bundle_id: "e",
        query_fingerprint: "q",
        evidence_items: Vec::new(),
        approval_status: "pending",
        required_role: None,
        writeback_status: "not_applied",
        source_database_mutated: false,
        principal_source: "environment",
        created_at: "now",
    };
    let out = export_v1(&cs, &meta);
    assert_eq!(
        out["guards"]["principal"],
        json!({"column": "assigned_to", "value": "ann"})
    );
    let mut plain = cs.clone();
    plain.guards.principal = None;
    assert!(
        export_v1(&plain, &meta)["guards"]
            .get("principal")
            .is_none()
    );
}
