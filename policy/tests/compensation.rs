//! Reviewed compensation (`reversibility`): the loader's rules, the inverse
//! captured for each write kind, the re-check before recording and apply,
//! the reason rule, the refusal of a proposer-submitted compensation, and
//! the SQL that finds and deletes an inserted row by its identity.
//!
//! Every case starts from the repository's reference config, and states
//! the expected outcome written out by hand.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use airlock_policy::args::validate_args;
use airlock_policy::change_set::{ChangeSet, ViolationCode, build, verify};
use airlock_policy::compensation::{
    MAX_DEPTH, MAX_REASON_CHARS, Unavailable, check_applicable, check_reason, for_revert, inverse,
    locates_by_identity,
};
use airlock_policy::config::{ContextProvider, OperationKind, Reversibility};
use airlock_policy::context::TrustedContext;
use airlock_policy::statement::{
    Bind, NextVersion, WriteDialect, freshness_probe, writeback_checks, writeback_delete,
    writeback_update,
};
use airlock_policy::{Config, load_config};
use serde_json::{Map, Value, json};

const REFERENCE: &str = include_str!("../../tests/fixtures/reference/airlock.reference.json");
const WAIVER: usize = 5; // billing.propose_late_fee_waiver
const WAIVER_NAME: &str = "billing.propose_late_fee_waiver";
const INSERT: &str = "billing.propose_credit_note";
const DELETE: &str = "billing.propose_invoice_removal";
const FWD: &str = "wrp_forward00000000001";

fn reference() -> Value {
    serde_json::from_str(REFERENCE).unwrap()
}

fn reversible() -> Value {
    json!({"mode": "reviewed_inverse"})
}

/// The reference waiver made reversible, stamping `waived_at`; a
/// reversible insert; a (plain) delete.
fn edited(edit: impl FnOnce(&mut Value)) -> airlock_policy::load::Loaded {
    let mut v = reference();
    let caps = v["capabilities"].as_array_mut().unwrap();
    caps[WAIVER]["reversibility"] = reversible();
    caps[WAIVER]["patch"]["waived_at"] = json!({"apply_time": true});
    caps[WAIVER]["allowed_columns"] = json!(["late_fee_cents", "waiver_reason", "waived_at"]);
    caps.push(json!({
        "name": INSERT,
        "kind": "proposal",
        "source": "app_postgres",
        "context": "local_operator",
        "target": {"schema": "public", "table": "credit_notes", "primary_key": "id", "tenant_key": "tenant_id"},
        "args": {"amount_cents": {"type": "integer", "required": true, "minimum": 1, "maximum": 5000}},
        "visible_columns": ["id", "amount_cents"],
        "patch": {"amount_cents": {"from_arg": "amount_cents"}, "created_at": {"apply_time": true}},
        "allowed_columns": ["amount_cents", "created_at"],
        "operation": {"kind": "insert", "deduplication": {"components": [
            {"column": "tenant_id", "source": "trusted_tenant"},
            {"column": "request_id", "source": "proposal_id"},
            {"column": "kind", "source": "fixed", "fixed": "credit"}
        ]}},
        "approval": {"mode": "human", "required_role": "billing_lead", "required_approvals": 2},
        "reversibility": reversible()
    }));
    caps.push(json!({
        "name": DELETE,
        "kind": "proposal",
        "source": "app_postgres",
        "context": "local_operator",
        "target": {"schema": "public", "table": "invoices", "primary_key": "id", "tenant_key": "tenant_id"},
        "args": {"invoice_id": {"type": "string", "required": true, "max_length": 128}},
        "lookup": {"id_from_arg": "invoice_id"},
        "visible_columns": ["id", "status", "updated_at"],
        "conflict_guard": {"column": "updated_at"},
        "operation": {"kind": "delete"}
    }));
    edit(&mut v);
    load_config(&v)
}

fn config() -> Config {
    let loaded = edited(|_| {});
    assert!(!loaded.report.has_errors(), "{:#?}", loaded.report);
    loaded.config.unwrap()
}

/// Every error of an edit: (path, message fragment, fix fragment).
fn refused(edit: impl FnOnce(&mut Value), want: &[(&str, &str, &str)]) {
    let loaded = edited(edit);
    assert!(loaded.config.is_none());
    let got: Vec<(String, String, String)> = loaded
        .report
        .errors()
        .map(|d| (d.path.clone(), d.message.clone(), d.fix.clone()))
        .collect();
    assert_eq!(got.len(), want.len(), "{got:#?}");
    for ((path, msg, fix), (wp, wm, wf)) in got.iter().zip(want) {
        assert_eq!(path, wp, "{got:#?}");
        assert!(msg.contains(wm), "{msg:?} lacks {wm:?}");
        assert!(fix.contains(wf), "{fix:?} lacks {wf:?}");
    }
}

fn ctx() -> TrustedContext {
    TrustedContext {
        tenant_id: "acme".into(),
        principal: "agent_17".into(),
        source: ContextProvider::Environment,
    }
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

fn build_with(cfg: &Config, cap: &str, args: Value, row: &Map<String, Value>) -> ChangeSet {
    let cap = cfg.capability(cap).unwrap();
    let args = validate_args(cap, Some(&args)).unwrap();
    build(cap, &args, &ctx(), row).unwrap()
}

fn waiver_cs(cfg: &Config) -> ChangeSet {
    build_with(
        cfg,
        WAIVER_NAME,
        json!({"invoice_id": "INV-3001", "reason": "courtesy"}),
        &obj(json!({
            "id": "INV-3001", "tenant_id": "acme", "customer_id": "c", "status": "overdue",
            "balance_cents": 25500, "late_fee_cents": 5500, "waiver_reason": null,
            "updated_at": "2026-06-20T14:31:08Z", "waived_at": null
        })),
    )
}

fn insert_cs(cfg: &Config) -> ChangeSet {
    build_with(cfg, INSERT, json!({"amount_cents": 250}), &Map::new())
}

const NEW_VERSION: &str = "2026-06-21T09:00:00Z";

fn update_inverse(cfg: &Config) -> ChangeSet {
    let cap = cfg.capability(WAIVER_NAME).unwrap();
    inverse(cap, true, FWD, &waiver_cs(cfg), Some(&json!(NEW_VERSION))).unwrap()
}

fn insert_inverse(cfg: &Config) -> ChangeSet {
    let cap = cfg.capability(INSERT).unwrap();
    inverse(cap, true, FWD, &insert_cs(cfg), None).unwrap()
}

// ---------------------------------------------------------------------------
// Loader.

#[test]
fn a_reversible_update_and_insert_load_and_others_are_unchanged() {
    let cfg = config();
    let p = |n: &str| {
        cfg.capability(n)
            .unwrap()
            .proposal
            .as_ref()
            .unwrap()
            .reversibility
    };
    assert_eq!(p(WAIVER_NAME), Some(Reversibility::ReviewedInverse));
    assert_eq!(p(INSERT), Some(Reversibility::ReviewedInverse));
    assert_eq!(p(DELETE), None);
    assert_eq!(p("orders.propose_status_change"), None);
    // Left out of the serialized capability (and so of its digest) when unset.
    let plain = serde_json::to_value(cfg.capability(DELETE).unwrap()).unwrap();
    assert!(plain["proposal"].get("reversibility").is_none(), "{plain}");
    let rev = serde_json::to_value(cfg.capability(INSERT).unwrap()).unwrap();
    assert_eq!(rev["proposal"]["reversibility"], "reviewed_inverse");
}

#[test]
fn the_loader_refuses_an_inverse_it_could_not_capture() {
    let at = "$.capabilities[5].reversibility";
    refused(
        |v| v["capabilities"][WAIVER]["reversibility"] = json!({"mode": "rollback"}),
        &[(
            "$.capabilities[5].reversibility.mode",
            "unknown reversibility mode `rollback`",
            "reviewed_inverse",
        )],
    );
    refused(
        |v| v["capabilities"][WAIVER]["reversibility"] = json!({}),
        &[(
            "$.capabilities[5].reversibility.mode",
            "missing required field `mode`",
            "reviewed_inverse",
        )],
    );
    refused(
        |v| {
            v["capabilities"][WAIVER]["reversibility"] =
                json!({"mode": "reviewed_inverse", "auto": true})
        },
        &[("$.capabilities[5].reversibility.auto", "unknown", "")],
    );
    refused(
        |v| v["capabilities"][9]["reversibility"] = reversible(),
        &[(
            "$.capabilities[9].reversibility",
            "unavailable: a hard DELETE cannot be restored",
            "soft-delete UPDATE",
        )],
    );
    refused(
        |v| {
            let c = &mut v["capabilities"][WAIVER];
            c["conflict_guard"] = json!({"weak_guard_ack": true});
        },
        &[(at, "needs an exact version column", "conflict_guard")],
    );
    refused(
        |v| {
            v["executors"] = json!({"billing_app": {"type": "command_handler", "command_env": "BILLING_COMMAND"}});
            v["capabilities"][WAIVER]["executor"] = json!("billing_app");
        },
        &[(
            at,
            "unavailable: an app-owned handler",
            "compensation capability",
        )],
    );
    // A bounded set UPDATE is reversible; a set DELETE is a hard delete.
    let loaded = edited(|v| {
        v["capabilities"].as_array_mut().unwrap().push(set_cap());
    });
    assert!(!loaded.report.has_errors(), "{:#?}", loaded.report);
    refused(
        |v| {
            let mut c = set_cap();
            c["operation"]["kind"] = json!("delete");
            c.as_object_mut().unwrap().remove("patch");
            c.as_object_mut().unwrap().remove("allowed_columns");
            c["operation"]
                .as_object_mut()
                .unwrap()
                .remove("version_advance");
            v["capabilities"].as_array_mut().unwrap().push(c);
        },
        &[(
            "$.capabilities[10].reversibility",
            "a hard DELETE cannot be restored",
            "soft-delete UPDATE",
        )],
    );
    // A read capability cannot declare it.
    refused(
        |v| v["capabilities"][4]["reversibility"] = reversible(),
        &[("$.capabilities[4].reversibility", "", "")],
    );
}

// ---------------------------------------------------------------------------
// The inverse of each kind.

#[test]
fn an_update_is_undone_by_restoring_exactly_its_columns_guarded_by_the_new_version() {
    let cfg = config();
    let fwd = waiver_cs(&cfg);
    let inv = update_inverse(&cfg);
    assert_eq!(inv.operation, OperationKind::Update);
    assert_eq!(inv.capability, fwd.capability);
    assert_eq!(inv.target, fwd.target);
    assert_eq!(inv.tenant_id, "acme");
    assert_eq!(
        Value::Object(inv.patch.clone()),
        json!({"late_fee_cents": 5500, "waiver_reason": null, "waived_at": null})
    );
    assert_eq!(
        Value::Object(inv.before.clone()),
        json!({"late_fee_cents": 0, "waiver_reason": "courtesy", "updated_at": NEW_VERSION})
    );
    assert_eq!(
        Value::Object(inv.after.clone()),
        json!({"late_fee_cents": 5500, "waiver_reason": null, "waived_at": null, "updated_at": NEW_VERSION})
    );
    let v = inv.guards.expected_version.as_ref().unwrap();
    assert_eq!(
        (v.column.as_str(), &v.value),
        ("updated_at", &json!(NEW_VERSION))
    );
    assert_eq!(inv.guards.tenant, fwd.guards.tenant);
    assert_eq!(inv.guards.principal, fwd.guards.principal);
    assert!(inv.guards.transitions.is_empty() && inv.guards.row_hash.is_none());
    assert!(inv.apply_time.is_empty());
    let c = inv.compensation.as_ref().unwrap();
    assert_eq!(
        (
            c.reverts_proposal_id.as_str(),
            c.root_proposal_id.as_str(),
            c.depth
        ),
        (FWD, FWD, 1)
    );
    assert_eq!(c.forward_operation, OperationKind::Update);
    assert!(c.reason.is_empty() && c.forward_receipt_hash.is_none());
    assert!(!locates_by_identity(&inv));
}

#[test]
fn a_revert_of_a_revert_restores_the_values_and_restamps_the_apply_time() {
    let cfg = config();
    let cap = cfg.capability(WAIVER_NAME).unwrap();
    let first = update_inverse(&cfg);
    let second = inverse(cap, true, "wrp_revert1", &first, Some(&json!("v3"))).unwrap();
    assert_eq!(
        Value::Object(second.patch.clone()),
        json!({"late_fee_cents": 0, "waiver_reason": "courtesy"})
    );
    assert_eq!(second.apply_time, vec!["waived_at".to_owned()]);
    assert_eq!(
        Value::Object(second.before.clone()),
        json!({"late_fee_cents": 5500, "waiver_reason": null, "waived_at": null, "updated_at": "v3"})
    );
    let c = second.compensation.unwrap();
    assert_eq!(
        (
            c.reverts_proposal_id.as_str(),
            c.root_proposal_id.as_str(),
            c.depth
        ),
        ("wrp_revert1", FWD, 2)
    );
}

#[test]
fn an_insert_is_undone_by_deleting_its_exact_identity() {
    let cfg = config();
    let inv = insert_inverse(&cfg);
    assert_eq!(inv.operation, OperationKind::Delete);
    assert!(inv.patch.is_empty() && inv.after.is_empty());
    let identity: Vec<(String, Option<Value>)> = inv
        .guards
        .deduplication
        .iter()
        .map(|d| (d.column.clone(), d.value.clone()))
        .collect();
    assert_eq!(
        identity,
        vec![
            ("tenant_id".to_owned(), Some(json!("acme"))),
            ("request_id".to_owned(), Some(json!(FWD))),
            ("kind".to_owned(), Some(json!("credit"))),
        ]
    );
    assert_eq!(
        Value::Object(inv.before.clone()),
        json!({"amount_cents": 250, "tenant_id": "acme", "request_id": FWD, "kind": "credit"})
    );
    assert!(inv.guards.expected_version.is_none());
    assert_eq!(
        inv.compensation.as_ref().unwrap().forward_operation,
        OperationKind::Insert
    );
    assert!(locates_by_identity(&inv));
    // Its own inverse would re-insert: unavailable.
    let cap = cfg.capability(INSERT).unwrap();
    assert_eq!(
        inverse(cap, true, "wrp_r", &inv, None),
        Err(Unavailable::InverseOfInsert)
    );
}

#[test]
fn no_inverse_where_none_can_be_captured() {
    let cfg = config();
    let waiver = cfg.capability(WAIVER_NAME).unwrap();
    let fwd = waiver_cs(&cfg);
    let v = json!(NEW_VERSION);
    // Not reversible.
    let plain = cfg.capability("orders.propose_status_change").unwrap();
    assert_eq!(
        inverse(plain, true, FWD, &fwd, Some(&v)),
        Err(Unavailable::NotReversible)
    );
    // A handler.
    assert_eq!(
        inverse(waiver, false, FWD, &fwd, Some(&v)),
        Err(Unavailable::AppHandler)
    );
    // No version left, or a null one.
    assert_eq!(
        inverse(waiver, true, FWD, &fwd, None),
        Err(Unavailable::NoNewVersion)
    );
    assert_eq!(
        inverse(waiver, true, FWD, &fwd, Some(&Value::Null)),
        Err(Unavailable::NoNewVersion)
    );
    let mut unguarded = fwd.clone();
    unguarded.guards.expected_version = None;
    assert_eq!(
        inverse(waiver, true, FWD, &unguarded, Some(&v)),
        Err(Unavailable::NoNewVersion)
    );
    // A patched column without its before-value (not an apply-time one).
    let mut partial = fwd.clone();
    partial.before.remove("waiver_reason");
    assert_eq!(
        inverse(waiver, true, FWD, &partial, Some(&v)),
        Err(Unavailable::MissingBefore("waiver_reason".into()))
    );
    // A hard delete.
    let mut deleted = fwd.clone();
    deleted.operation = OperationKind::Delete;
    assert_eq!(
        inverse(waiver, true, FWD, &deleted, Some(&v)),
        Err(Unavailable::HardDelete)
    );
    // A set's change under a single-row capability.
    let mut set = fwd.clone();
    set.set = Some(
        serde_json::from_value(json!({
            "max_rows": 1, "row_count": 0, "aggregate_bounds": [], "members": [], "set_digest": "sha256:00"
        }))
        .unwrap(),
    );
    assert_eq!(
        inverse(waiver, true, FWD, &set, Some(&v)),
        Err(Unavailable::CardinalityChanged)
    );
    let mut applicable = update_inverse(&cfg);
    applicable.set = set.set.clone();
    assert!(
        check_applicable(waiver, true, &applicable)
            .unwrap_err()
            .contains("cardinality")
    );
    // The chain is capped.
    let mut deep = update_inverse(&cfg);
    deep.compensation.as_mut().unwrap().depth = MAX_DEPTH - 1;
    assert!(inverse(waiver, true, "wrp_r", &deep, Some(&v)).is_ok());
    deep.compensation.as_mut().unwrap().depth = MAX_DEPTH;
    assert_eq!(
        inverse(waiver, true, "wrp_r", &deep, Some(&v)),
        Err(Unavailable::DepthLimit)
    );
}

#[test]
fn every_unavailable_reason_has_a_code_and_says_what_to_do() {
    let all = [
        (
            Unavailable::NotReversible,
            "NOT_REVERSIBLE",
            "not reversible",
        ),
        (
            Unavailable::AppHandler,
            "APP_OWNED_HANDLER",
            "unavailable: the change was applied by an application handler",
        ),
        (
            Unavailable::HardDelete,
            "HARD_DELETE",
            "unavailable: a hard DELETE cannot be restored; use a soft-delete UPDATE",
        ),
        (
            Unavailable::NoNewVersion,
            "NO_NEW_VERSION",
            "no known version",
        ),
        (
            Unavailable::MissingBefore("c".into()),
            "MISSING_BEFORE_VALUE",
            "no before-value for `c`",
        ),
        (
            Unavailable::InverseOfInsert,
            "INVERSE_OF_INSERT",
            "propose the insert again",
        ),
        (
            Unavailable::DepthLimit,
            "LINEAGE_DEPTH_LIMIT",
            "already 16 long",
        ),
        (
            Unavailable::CardinalityChanged,
            "CARDINALITY_CHANGED",
            "a bounded set and the capability changes one row",
        ),
    ];
    for (u, code, says) in all {
        assert_eq!(u.code(), code);
        assert!(u.describe().contains(says), "{}", u.describe());
    }
}

// ---------------------------------------------------------------------------
// Reason, revert and re-check.

#[test]
fn a_reason_is_required_plain_and_bounded() {
    assert!(check_reason("wrong invoice").is_ok());
    assert!(check_reason("two\nlines").is_ok());
    assert!(check_reason(&"x".repeat(MAX_REASON_CHARS)).is_ok());
    for bad in ["", "  \n ", "a\u{1b}[2J", "tab\there"] {
        assert!(check_reason(bad).is_err(), "{bad:?}");
    }
    assert!(check_reason("").unwrap_err().contains("needs a reason"));
    assert!(
        check_reason(&"x".repeat(MAX_REASON_CHARS + 1))
            .unwrap_err()
            .contains("at most 2000")
    );
}

#[test]
fn a_revert_carries_the_reason_and_the_forward_receipt() {
    let cfg = config();
    let captured = update_inverse(&cfg);
    let r = for_revert(&captured, "wrong invoice", "sha256:abc");
    let c = r.compensation.as_ref().unwrap();
    assert_eq!(c.reason, "wrong invoice");
    assert_eq!(c.forward_receipt_hash.as_deref(), Some("sha256:abc"));
    assert_ne!(r.hash(), captured.hash(), "the reason is in the hash");
    // Everything else is the captured inverse.
    let mut back = r.clone();
    back.compensation = captured.compensation.clone();
    assert_eq!(back, captured);
    // Not a compensation: unchanged.
    let fwd = waiver_cs(&cfg);
    assert_eq!(for_revert(&fwd, "r", "h"), fwd);
}

#[test]
fn a_compensation_is_rechecked_against_the_live_capability() {
    let cfg = config();
    let waiver = cfg.capability(WAIVER_NAME).unwrap();
    let insert = cfg.capability(INSERT).unwrap();
    let upd = update_inverse(&cfg);
    let del = insert_inverse(&cfg);
    assert_eq!(check_applicable(waiver, true, &upd), Ok(()));
    assert_eq!(check_applicable(insert, true, &del), Ok(()));

    let err = |cap, sql, cs: &ChangeSet| check_applicable(cap, sql, cs).unwrap_err();
    assert_eq!(err(waiver, true, &waiver_cs(&cfg)), "not a compensation");
    assert!(err(waiver, false, &upd).contains("application handler"));
    let plain = cfg.capability("orders.propose_status_change").unwrap();
    assert!(err(plain, true, &upd).contains("not reversible"));
    let read = cfg.capability("billing.inspect_invoice").unwrap();
    assert!(err(read, true, &upd).contains("not reversible"));
    for depth in [0, MAX_DEPTH + 1] {
        let mut cs = upd.clone();
        cs.compensation.as_mut().unwrap().depth = depth;
        assert!(err(waiver, true, &cs).contains("lineage depth"));
    }
    let mut deepest = upd.clone();
    deepest.compensation.as_mut().unwrap().depth = MAX_DEPTH;
    assert_eq!(check_applicable(waiver, true, &deepest), Ok(()));
    // A column the capability allows but does not patch is no revert's to write.
    let (widened, _) = {
        let loaded = edited(|v| {
            v["capabilities"][WAIVER]["allowed_columns"] = json!([
                "late_fee_cents",
                "waiver_reason",
                "waived_at",
                "balance_cents"
            ]);
        });
        assert!(!loaded.report.has_errors(), "{:#?}", loaded.report);
        (loaded.config.unwrap(), ())
    };
    let wide = widened.capability(WAIVER_NAME).unwrap();
    assert_eq!(check_applicable(wide, true, &upd), Ok(()));
    let mut cs = upd.clone();
    cs.patch.insert("balance_cents".into(), json!(0));
    assert!(err(wide, true, &cs).contains("does not patch"));
    let mut cs = upd.clone();
    cs.target.table = "customers".into();
    assert!(err(waiver, true, &cs).contains("target"));
    let mut cs = upd.clone();
    cs.capability = INSERT.into();
    assert!(err(waiver, true, &cs).contains("target"));
    // Only columns the capability patches.
    let mut cs = upd.clone();
    cs.patch.insert("balance_cents".into(), json!(0));
    assert!(err(waiver, true, &cs).contains("does not patch"));
    let mut cs = upd.clone();
    cs.apply_time.push("waiver_reason".into());
    assert!(err(waiver, true, &cs).contains("does not patch"));
    let mut cs = upd.clone();
    cs.patch.clear();
    assert!(err(waiver, true, &cs).contains("does not patch"));
    let mut cs = upd.clone();
    cs.patch.clear();
    cs.apply_time.push("waived_at".into());
    assert_eq!(check_applicable(waiver, true, &cs), Ok(()));
    // Guarded by the version column.
    let mut cs = upd.clone();
    cs.guards.expected_version = None;
    assert!(err(waiver, true, &cs).contains("version column"));
    let mut cs = upd.clone();
    cs.guards.expected_version.as_mut().unwrap().column = "status".into();
    assert!(err(waiver, true, &cs).contains("version column"));
    // An insert's inverse deletes by the full identity, the reverted id in it.
    for (i, value) in [
        (0, json!("globex")),
        (1, json!("wrp_other")),
        (2, json!("debit")),
    ] {
        let mut cs = del.clone();
        cs.guards.deduplication[i].value = Some(value);
        assert!(err(insert, true, &cs).contains("full identity"), "{i}");
    }
    let mut cs = del.clone();
    cs.guards.deduplication[1].value = None;
    assert!(err(insert, true, &cs).contains("full identity"));
    let mut cs = del.clone();
    cs.guards.deduplication.pop();
    assert!(err(insert, true, &cs).contains("full identity"));
    let mut cs = del.clone();
    cs.guards.deduplication[2].column = "memo".into();
    assert!(err(insert, true, &cs).contains("full identity"));
    let mut cs = del.clone();
    cs.patch.insert("amount_cents".into(), json!(1));
    assert!(err(insert, true, &cs).contains("full identity"));
    // Kinds that do not fit each other.
    let mut cs = del.clone();
    cs.operation = OperationKind::Update;
    assert!(err(insert, true, &cs).contains("does not fit"));
    let mut cs = upd.clone();
    cs.compensation.as_mut().unwrap().forward_operation = OperationKind::Insert;
    assert!(err(waiver, true, &cs).contains("does not fit"));
}

#[test]
fn a_proposer_cannot_submit_a_compensation() {
    let cfg = config();
    let mut cs = waiver_cs(&cfg);
    assert!(verify(&cfg, &cs, &|_| true).is_ok());
    cs.compensation = update_inverse(&cfg).compensation;
    let errs = verify(&cfg, &cs, &|_| true).unwrap_err();
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].code, ViolationCode::ExecutorAuthored);
    assert_eq!(errs[0].path, "compensation");
    // Whatever else it is: the captured inverse itself is refused too.
    let errs = verify(&cfg, &update_inverse(&cfg), &|_| true).unwrap_err();
    assert_eq!(errs[0].code, ViolationCode::ExecutorAuthored);
}

// ---------------------------------------------------------------------------
// SQL: the inverse UPDATE is an ordinary guarded update; an insert's inverse
// finds and deletes its row by identity and inserted values.

fn pg_types(c: &str) -> Option<String> {
    Some(
        if c == "amount_cents" {
            "integer"
        } else {
            "text"
        }
        .to_owned(),
    )
}

#[test]
fn an_inserted_row_is_found_and_deleted_by_its_identity_and_values() {
    let cfg = config();
    let cap = cfg.capability(INSERT).unwrap();
    let inv = insert_inverse(&cfg);
    let d = WriteDialect {
        engine: airlock_policy::config::Engine::Postgres,
        column_type: &pg_types,
    };
    let checks = writeback_checks(cap, &inv, None);
    let labels: Vec<&str> = checks.iter().map(|c| c.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "before:amount_cents",
            "before:tenant_id",
            "before:kind",
            "before:request_id"
        ]
    );
    let probe = freshness_probe(&d, cap, &inv, &checks);
    assert!(
        probe.sql.ends_with("WHERE \"tenant_id\" IS NOT DISTINCT FROM CAST($5 AS text) AND \"request_id\" IS NOT DISTINCT FROM CAST($6 AS text) AND \"kind\" IS NOT DISTINCT FROM CAST($7 AS text) AND \"tenant_id\"::pg_catalog.text = $8"),
        "{}",
        probe.sql
    );
    let del = writeback_delete(&d, cap, &inv);
    assert_eq!(
        del.sql,
        "DELETE FROM \"public\".\"credit_notes\" WHERE \"tenant_id\" IS NOT DISTINCT FROM CAST($1 AS text) AND \"request_id\" IS NOT DISTINCT FROM CAST($2 AS text) AND \"kind\" IS NOT DISTINCT FROM CAST($3 AS text) AND \"tenant_id\"::pg_catalog.text = $4 AND \"amount_cents\" IS NOT DISTINCT FROM CAST($5 AS integer) AND \"tenant_id\" IS NOT DISTINCT FROM CAST($6 AS text) AND \"kind\" IS NOT DISTINCT FROM CAST($7 AS text) AND \"request_id\" IS NOT DISTINCT FROM CAST($8 AS text)"
    );
    let values: Vec<&Value> = del.binds.iter().map(|b: &Bind| &b.value).collect();
    assert_eq!(
        values,
        [
            &json!("acme"),
            &json!(FWD),
            &json!("credit"),
            &json!("acme"),
            &json!(250),
            &json!("acme"),
            &json!("credit"),
            &json!(FWD)
        ]
    );
    // A delete by identity without one matches nothing.
    let mut none = inv.clone();
    none.guards.deduplication.clear();
    none.before.clear();
    assert!(
        writeback_delete(&d, cap, &none)
            .sql
            .contains("WHERE 1 = 0 AND")
    );
    // An ordinary delete is still by key.
    let mut by_key = inv.clone();
    by_key.compensation = None;
    assert!(
        writeback_delete(&d, cap, &by_key)
            .sql
            .contains("WHERE \"id\" = ")
    );
}

#[test]
fn an_update_inverse_is_a_guarded_update_of_its_columns() {
    let cfg = config();
    let cap = cfg.capability(WAIVER_NAME).unwrap();
    let inv = update_inverse(&cfg);
    let d = WriteDialect {
        engine: airlock_policy::config::Engine::Sqlite,
        column_type: &|_| None,
    };
    let labels: Vec<String> = writeback_checks(cap, &inv, None)
        .into_iter()
        .map(|c| c.label)
        .collect();
    assert_eq!(
        labels,
        ["version", "before:late_fee_cents", "before:waiver_reason"]
    );
    let up = writeback_update(&d, cap, &inv, NextVersion::for_change(cap, &inv));
    assert!(
        up.sql.starts_with("UPDATE \"public\".\"invoices\" SET \"late_fee_cents\" = ?, \"waiver_reason\" = ?, \"waived_at\" = ?, \"updated_at\" = "),
        "{}",
        up.sql
    );
    assert!(up.sql.ends_with("AND \"updated_at\" IS ?"), "{}", up.sql);
}

/// A reversible bounded-set UPDATE of `tickets`.
fn set_cap() -> Value {
    json!({
        "name": "billing.propose_ticket_closure",
        "kind": "proposal",
        "source": "app_postgres",
        "context": "local_operator",
        "target": {"schema": "public", "table": "tickets", "primary_key": "id", "tenant_key": "tenant_id"},
        "args": {"reason": {"type": "string", "required": true, "max_length": 200}},
        "visible_columns": ["id", "tenant_id", "status", "cost_cents", "version"],
        "patch": {"status": {"fixed": "closed"}, "close_reason": {"from_arg": "reason"}},
        "allowed_columns": ["status", "close_reason"],
        "conflict_guard": {"column": "version"},
        "operation": {
            "kind": "update",
            "cardinality": "set",
            "selection": {"all": [{"column": "status", "operator": "eq", "value": "overdue"}]},
            "max_rows": 3,
            "aggregate_bounds": [{"column": "cost_cents", "measure": "before", "maximum": 10000}],
            "version_advance": {"column": "version", "strategy": "integer_increment"}
        },
        "approval": {"mode": "human", "required_role": "billing_lead"},
        "reversibility": {"mode": "reviewed_inverse"}
    })
}

#[test]
fn a_set_update_is_reverted_member_by_member() {
    let loaded = edited(|v| {
        v["capabilities"].as_array_mut().unwrap().push(set_cap());
    });
    let cfg = loaded.config.unwrap();
    let cap = cfg.capability("billing.propose_ticket_closure").unwrap();
    let args = airlock_policy::args::validate_args(cap, Some(&json!({"reason": "close"}))).unwrap();
    let row = |id: &str, version: i64| {
        json!({"id": id, "tenant_id": "acme", "status": "overdue", "cost_cents": 100, "close_reason": null, "version": version})
            .as_object()
            .cloned()
            .unwrap()
    };
    let ctx = airlock_policy::context::TrustedContext {
        tenant_id: "acme".into(),
        principal: "agent_17".into(),
        source: airlock_policy::config::ContextProvider::Environment,
    };
    let forward =
        airlock_policy::bounded_set::build(cap, &args, &ctx, &[row("T-1", 1), row("T-2", 5)])
            .unwrap();
    let back = inverse(cap, true, FWD, &forward, None).unwrap();
    let set = back.set.as_ref().unwrap();
    assert_eq!(set.row_count, 2);
    assert!(set.aggregate_bounds.is_empty());
    assert_eq!(
        set.set_digest,
        airlock_policy::canonical::hash_value(&json!(set.members))
    );
    let m = &set.members[1];
    assert_eq!(m.primary_key, json!("T-2"));
    assert_eq!(m.before["status"], json!("closed"));
    assert_eq!(m.before["close_reason"], json!("close"));
    assert_eq!(
        m.before["version"],
        json!(6),
        "the version the forward write left"
    );
    assert_eq!(m.after["status"], json!("overdue"));
    assert_eq!(m.after["close_reason"], Value::Null);
    assert_eq!(back.operation, OperationKind::Update);
    assert!(back.patch.is_empty() && back.apply_time.is_empty());
    let comp = back.compensation.as_ref().unwrap();
    assert_eq!(
        (comp.depth, comp.forward_operation),
        (1, OperationKind::Update)
    );
    assert_eq!(check_applicable(cap, true, &back), Ok(()));
    // Each member is written as the single-row restore, guarded by its version.
    let member = airlock_policy::bounded_set::member_change(cap, &back, 0).unwrap();
    assert_eq!(
        member.patch,
        json!({"status": "overdue", "close_reason": null})
            .as_object()
            .cloned()
            .unwrap()
    );
    assert_eq!(member.guards.expected_version.unwrap().value, json!(2));
    // A column allowed but not patched is refused too.
    let allowed_more = edited(|v| {
        let mut c = set_cap();
        c["allowed_columns"] = json!(["status", "close_reason", "cost_cents"]);
        v["capabilities"].as_array_mut().unwrap().push(c);
    })
    .config
    .unwrap();
    let more = allowed_more
        .capability("billing.propose_ticket_closure")
        .unwrap();
    assert_eq!(check_applicable(more, true, &back), Ok(()));
    let mut sneaky = back.clone();
    sneaky.set.as_mut().unwrap().members[0]
        .after
        .insert("cost_cents".into(), json!(0));
    assert!(check_applicable(more, true, &sneaky).is_err());
    // A revert that would also write an unpatched column is refused.
    let mut wider = back.clone();
    wider.set.as_mut().unwrap().members[0]
        .after
        .insert("cost_cents".into(), json!(0));
    assert!(
        check_applicable(cap, true, &wider)
            .unwrap_err()
            .contains("patched columns")
    );
    let mut unversioned = back.clone();
    unversioned.set.as_mut().unwrap().members[0]
        .before
        .remove("version");
    assert!(check_applicable(cap, true, &unversioned).is_err());
    let mut empty = back.clone();
    empty.set.as_mut().unwrap().members.clear();
    assert!(check_applicable(cap, true, &empty).is_err());
    let mut as_delete = back.clone();
    as_delete.operation = OperationKind::Delete;
    assert!(check_applicable(cap, true, &as_delete).is_err());
    // A revert of the revert restores the forward values, two versions on.
    let again = inverse(cap, true, "wrp_back", &back, None).unwrap();
    let m = &again.set.as_ref().unwrap().members[1];
    assert_eq!(
        (m.before["version"].clone(), m.after["status"].clone()),
        (json!(7), json!("closed"))
    );
    assert_eq!(again.compensation.as_ref().unwrap().depth, 2);
    // A set DELETE has no inverse; a set never fits a single-row capability.
    let mut deleted = forward.clone();
    deleted.operation = OperationKind::Delete;
    assert_eq!(
        inverse(cap, true, FWD, &deleted, None),
        Err(Unavailable::HardDelete)
    );
    let waiver = cfg.capability(WAIVER_NAME).unwrap();
    assert_eq!(
        inverse(waiver, true, FWD, &forward, None),
        Err(Unavailable::CardinalityChanged)
    );
}
