//! Change-set construction and re-validation edges (issue 19): every
//! violation code with its path and message, numeric bounds that the
//! argument schema does not already enforce, invalid context values, numeric
//! tenant ids, the row-hash conflict guard, and the v1 export.
//!
//! Expected values are written out literally (hashes are computed here with
//! `sha2` over a hand-written canonical JSON text), never by calling the code
//! under test.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use airlock_policy::args::validate_args;
use airlock_policy::change_set::{
    ChangeSet, ExportMeta, Violation, ViolationCode, build, export_v1, scalar_text, tenant_matches,
    verify,
};
use airlock_policy::config::{ContextProvider, Engine};
use airlock_policy::context::TrustedContext;
use airlock_policy::{Config, load_config_str};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

const REFERENCE: &str = include_str!("../../tests/fixtures/reference/airlock.reference.json");
const GOLDEN_CHANGE_SET: &str =
    include_str!("../../tests/fixtures/protocol/change-set.late-fee-waiver.v1.json");

const WAIVER: &str = "billing.propose_late_fee_waiver";
const CREDIT: &str = "support.propose_plan_credit";
const ORDER: &str = "orders.propose_status_change";

fn reference_doc() -> Value {
    serde_json::from_str(REFERENCE).unwrap()
}

fn load(doc: &Value) -> Config {
    let loaded = load_config_str(&doc.to_string());
    loaded
        .config
        .unwrap_or_else(|| panic!("config must load: {:?}", loaded.report))
}

fn config() -> Config {
    load(&reference_doc())
}

/// The reference config with one capability's JSON edited.
fn config_with(name: &str, edit: impl FnOnce(&mut Value)) -> Config {
    let mut doc = reference_doc();
    let cap = doc["capabilities"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|c| c["name"] == name)
        .unwrap();
    edit(cap);
    load(&doc)
}

fn ctx(tenant: &str) -> TrustedContext {
    TrustedContext {
        tenant_id: tenant.into(),
        principal: "agent_17".into(),
        source: ContextProvider::Environment,
    }
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

fn invoice_row() -> Map<String, Value> {
    obj(json!({
        "id": "INV-3001", "tenant_id": "acme", "customer_id": "cust_acme_1", "status": "overdue",
        "balance_cents": 25500, "late_fee_cents": 5500, "waiver_reason": null,
        "updated_at": "2026-06-20T14:31:08Z"
    }))
}

fn customer_row() -> Map<String, Value> {
    obj(json!({
        "id": "cust_1", "tenant_id": "acme", "name": "Acme", "plan": "pro",
        "plan_credit_cents": 0, "credit_reason": null, "updated_at": "2026-06-20T10:00:00Z"
    }))
}

fn order_row(status: &str) -> Map<String, Value> {
    obj(json!({
        "id": "O-1", "tenant_id": "acme", "customer_id": "c", "status": status,
        "status_change_reason": null, "updated_at": "2026-06-20T09:00:00Z"
    }))
}

fn build_with(
    cfg: &Config,
    cap: &str,
    args: Value,
    tenant: &str,
    row: &Map<String, Value>,
) -> Result<ChangeSet, Vec<Violation>> {
    let cap = cfg.capability(cap).unwrap();
    let args = validate_args(cap, Some(&args)).expect("arguments pass their own checks");
    build(cap, &args, &ctx(tenant), row)
}

fn waiver(cfg: &Config) -> ChangeSet {
    build_with(
        cfg,
        WAIVER,
        json!({"invoice_id": "INV-3001", "reason": "customer requested review"}),
        "acme",
        &invoice_row(),
    )
    .unwrap()
}

fn only_acme(t: &str) -> bool {
    t == "acme"
}

fn anyone(_: &str) -> bool {
    true
}

fn v(code: ViolationCode, path: &str, message: &str) -> Violation {
    Violation {
        code,
        path: path.into(),
        message: message.into(),
    }
}

fn refused(result: Result<ChangeSet, Vec<Violation>>) -> Vec<Violation> {
    result.expect_err("must be refused")
}

fn sha256_tagged(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

// ---------------------------------------------------------------------------
// build

#[test]
fn the_waiver_change_set_is_exactly_the_reviewed_shape() {
    let cs = waiver(&config());
    let expected: ChangeSet = serde_json::from_value(json!({
        "capability": "billing.propose_late_fee_waiver",
        "args": {"invoice_id": "INV-3001", "reason": "customer requested review"},
        "tenant_id": "acme",
        "principal": "agent_17",
        "target": {"schema": "public", "table": "invoices",
                   "primary_key": {"column": "id", "value": "INV-3001"}},
        "before": {"late_fee_cents": 5500, "waiver_reason": null, "updated_at": "2026-06-20T14:31:08Z"},
        "patch": {"late_fee_cents": 0, "waiver_reason": "customer requested review"},
        "after": {"late_fee_cents": 0, "waiver_reason": "customer requested review",
                  "updated_at": "2026-06-20T14:31:08Z"},
        "guards": {
            "tenant": {"column": "tenant_id", "value": "acme"},
            "allowed_columns": ["late_fee_cents", "waiver_reason"],
            "expected_version": {"column": "updated_at", "value": "2026-06-20T14:31:08Z"},
            "row_hash": null,
            "transitions": []
        }
    }))
    .unwrap();
    assert_eq!(cs, expected);
}

#[test]
fn the_proposal_hash_is_sha256_of_the_canonical_json() {
    let cs = waiver(&config());
    let canonical = concat!(
        r#"{"after":{"late_fee_cents":0,"updated_at":"2026-06-20T14:31:08Z","waiver_reason":"customer requested review"},"#,
        r#""args":{"invoice_id":"INV-3001","reason":"customer requested review"},"#,
        r#""before":{"late_fee_cents":5500,"updated_at":"2026-06-20T14:31:08Z","waiver_reason":null},"#,
        r#""capability":"billing.propose_late_fee_waiver","#,
        r#""guards":{"allowed_columns":["late_fee_cents","waiver_reason"],"#,
        r#""expected_version":{"column":"updated_at","value":"2026-06-20T14:31:08Z"},"#,
        r#""row_hash":null,"tenant":{"column":"tenant_id","value":"acme"},"transitions":[]},"#,
        r#""patch":{"late_fee_cents":0,"waiver_reason":"customer requested review"},"#,
        r#""principal":"agent_17","#,
        r#""target":{"primary_key":{"column":"id","value":"INV-3001"},"schema":"public","table":"invoices"},"#,
        r#""tenant_id":"acme"}"#
    );
    assert_eq!(cs.hash(), sha256_tagged(canonical));
    let mut other = cs.clone();
    other.principal = "agent_18".into();
    assert_ne!(other.hash(), cs.hash());
}

#[test]
fn violations_display_as_path_and_message() {
    let shown = v(
        ViolationCode::TenantMismatch,
        "guards.tenant",
        "the row does not belong to the trusted tenant",
    )
    .to_string();
    assert_eq!(
        shown,
        "guards.tenant: the row does not belong to the trusted tenant"
    );
}

#[test]
fn build_refuses_read_capabilities() {
    let cfg = config();
    let cap = cfg.capability("billing.inspect_invoice").unwrap();
    let args = validate_args(cap, Some(&json!({"invoice_id": "INV-3001"}))).unwrap();
    assert_eq!(
        build(cap, &args, &ctx("acme"), &invoice_row()).unwrap_err(),
        vec![v(
            ViolationCode::NotAProposal,
            "capability",
            "`billing.inspect_invoice` is not a proposal capability"
        )]
    );
}

#[test]
fn build_reports_every_problem_of_the_row() {
    let cfg = config();
    let mut row = invoice_row();
    row.insert("tenant_id".into(), json!("otherco"));
    row.remove("waiver_reason");
    row.insert("updated_at".into(), Value::Null);
    let errs = refused(build_with(
        &cfg,
        WAIVER,
        json!({"invoice_id": "INV-3001", "reason": "r"}),
        "acme",
        &row,
    ));
    assert_eq!(
        errs,
        vec![
            v(
                ViolationCode::TenantMismatch,
                "guards.tenant",
                "the row does not belong to the trusted tenant"
            ),
            v(
                ViolationCode::MissingColumn,
                "before.waiver_reason",
                "the current row has no column `waiver_reason`"
            ),
            v(
                ViolationCode::MissingVersion,
                "before.updated_at",
                "the row's conflict-guard column `updated_at` is empty, so a stale change could not be detected"
            ),
        ]
    );
    // A row without the tenant column at all is not the tenant's either.
    let mut row = invoice_row();
    row.remove("tenant_id");
    row.remove("updated_at");
    let errs = refused(build_with(
        &cfg,
        WAIVER,
        json!({"invoice_id": "INV-3001", "reason": "r"}),
        "acme",
        &row,
    ));
    let codes: Vec<_> = errs.iter().map(|e| e.code).collect();
    assert_eq!(
        codes,
        [ViolationCode::TenantMismatch, ViolationCode::MissingVersion]
    );
}

// ---------------------------------------------------------------------------
// Numeric tenant ids

#[test]
fn tenant_ids_compare_by_text() {
    assert!(tenant_matches(&json!("acme"), "acme"));
    assert!(!tenant_matches(&json!("acme"), "acme "));
    assert!(!tenant_matches(&json!("Acme"), "acme"));
    assert!(tenant_matches(&json!(42), "42"));
    assert!(!tenant_matches(&json!(42), "43"));
    assert!(!tenant_matches(&json!(42), "042"));
    assert!(tenant_matches(&json!(-7), "-7"));
    assert!(!tenant_matches(&json!(true), "true"));
    assert!(!tenant_matches(&Value::Null, "null"));
    assert!(!tenant_matches(&json!(["acme"]), "acme"));
}

#[test]
fn a_numeric_tenant_column_matches_its_decimal_text() {
    let cfg = config();
    let mut row = invoice_row();
    row.insert("tenant_id".into(), json!(42));
    let args = json!({"invoice_id": "INV-3001", "reason": "r"});
    let cs = build_with(&cfg, WAIVER, args.clone(), "42", &row).unwrap();
    assert_eq!(cs.tenant_id, "42");
    assert_eq!(
        serde_json::to_value(&cs.guards.tenant).unwrap(),
        json!({"column": "tenant_id", "value": "42"})
    );
    // The executor accepts it for a peer that may claim tenant "42" …
    let verified = verify(&cfg, &cs, &|t: &str| t == "42").unwrap();
    assert_eq!(verified, cs);
    // … and not for one that may not.
    assert_eq!(
        refused(verify(&cfg, &cs, &only_acme)),
        vec![v(
            ViolationCode::TenantNotClaimable,
            "tenant_id",
            "this proposer connection may not act for that tenant"
        )]
    );
    // Another numeric tenant's row is refused.
    let errs = refused(build_with(&cfg, WAIVER, args, "43", &row));
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].code, ViolationCode::TenantMismatch);
}

// ---------------------------------------------------------------------------
// Numeric bounds the argument schema does not enforce

/// Plan credit whose argument accepts -100..=10000 while the change-set
/// bound stays 0..=5000.
fn wide_credit_config() -> Config {
    config_with(CREDIT, |c| {
        c["args"]["credit_cents"]["minimum"] = json!(-100);
        c["args"]["credit_cents"]["maximum"] = json!(10000);
    })
}

fn credit(cfg: &Config, cents: Value) -> Result<ChangeSet, Vec<Violation>> {
    build_with(
        cfg,
        CREDIT,
        json!({"customer_id": "cust_1", "credit_cents": cents, "reason": "goodwill"}),
        "acme",
        &customer_row(),
    )
}

#[test]
fn numeric_bounds_are_inclusive_and_checked_after_the_arguments() {
    let cfg = wide_credit_config();
    for ok in [json!(0), json!(1), json!(2500), json!(4999.5), json!(5000)] {
        let cs = credit(&cfg, ok.clone()).unwrap();
        assert_eq!(cs.patch["plan_credit_cents"], ok);
    }
    let cases = [
        (
            json!(5001),
            "`plan_credit_cents` would be 5001; it must be from 0 to 5000",
        ),
        (
            json!(5000.5),
            "`plan_credit_cents` would be 5000.5; it must be from 0 to 5000",
        ),
        (
            json!(10000),
            "`plan_credit_cents` would be 10000; it must be from 0 to 5000",
        ),
        (
            json!(-1),
            "`plan_credit_cents` would be -1; it must be from 0 to 5000",
        ),
        (
            json!(-0.5),
            "`plan_credit_cents` would be -0.5; it must be from 0 to 5000",
        ),
    ];
    for (cents, message) in cases {
        assert_eq!(
            refused(credit(&cfg, cents)),
            vec![v(
                ViolationCode::NumericBound,
                "patch.plan_credit_cents",
                message
            )]
        );
    }
}

#[test]
fn one_sided_numeric_bounds_say_which_side() {
    let cfg = config_with(CREDIT, |c| {
        c["args"]["credit_cents"]["minimum"] = json!(-100);
        c["args"]["credit_cents"]["maximum"] = json!(10000);
        c["numeric_bounds"]["plan_credit_cents"] = json!({"minimum": 0});
    });
    assert!(credit(&cfg, json!(10000)).is_ok());
    assert_eq!(
        refused(credit(&cfg, json!(-1)))[0].message,
        "`plan_credit_cents` would be -1; it must be at least 0"
    );
    let cfg = config_with(CREDIT, |c| {
        c["args"]["credit_cents"]["minimum"] = json!(-100);
        c["numeric_bounds"]["plan_credit_cents"] = json!({"maximum": 10});
    });
    assert!(credit(&cfg, json!(-100)).is_ok());
    assert_eq!(
        refused(credit(&cfg, json!(11)))[0].message,
        "`plan_credit_cents` would be 11; it must be at most 10"
    );
}

#[test]
fn an_absent_optional_bounded_argument_is_not_a_number() {
    let cfg = config_with(CREDIT, |c| {
        c["args"]["credit_cents"]["required"] = json!(false);
        c["numeric_bounds"]["plan_credit_cents"] = json!({});
    });
    let errs = refused(build_with(
        &cfg,
        CREDIT,
        json!({"customer_id": "cust_1", "reason": "goodwill"}),
        "acme",
        &customer_row(),
    ));
    assert_eq!(
        errs,
        vec![v(
            ViolationCode::NumericBound,
            "patch.plan_credit_cents",
            "`plan_credit_cents` would be null; it must be a number"
        )]
    );
}

#[test]
fn a_change_set_that_passes_argument_checks_but_breaks_numeric_bounds_is_refused() {
    let cfg = wide_credit_config();
    let honest = credit(&cfg, json!(5000)).unwrap();
    assert_eq!(verify(&cfg, &honest, &only_acme).unwrap(), honest);
    let mut forged = honest.clone();
    forged.args.insert("credit_cents".into(), json!(5001));
    forged.patch.insert("plan_credit_cents".into(), json!(5001));
    forged.after.insert("plan_credit_cents".into(), json!(5001));
    assert_eq!(
        refused(verify(&cfg, &forged, &only_acme)),
        vec![v(
            ViolationCode::NumericBound,
            "patch.plan_credit_cents",
            "`plan_credit_cents` would be 5001; it must be from 0 to 5000"
        )]
    );
}

// ---------------------------------------------------------------------------
// Transitions

#[test]
fn refused_transitions_say_what_is_allowed() {
    let cfg = config_with(ORDER, |c| {
        c["transition_guards"]["status"]["allowed"]["delivered"] = json!([]);
    });
    let args = |status: &str| json!({"order_id": "O-1", "status": status, "reason": "r"});
    let ok = build_with(&cfg, ORDER, args("canceled"), "acme", &order_row("paid")).unwrap();
    assert_eq!(
        serde_json::to_value(&ok.guards.transitions).unwrap(),
        json!([{"column": "status", "from": "paid", "to": "canceled"}])
    );
    let ok = build_with(
        &cfg,
        ORDER,
        args("ready_to_ship"),
        "acme",
        &order_row("processing"),
    )
    .unwrap();
    assert_eq!(ok.guards.transitions[0].to, json!("ready_to_ship"));
    let cases = [
        (
            "processing",
            "`status` cannot move from \"processing\" to \"canceled\"; from \"processing\" it may only move to: ready_to_ship",
        ),
        (
            "shipped",
            "`status` cannot move from \"shipped\" to \"canceled\"; no change of `status` is allowed while `status` is \"shipped\"",
        ),
        (
            "delivered",
            "`status` cannot move from \"delivered\" to \"canceled\"; no change of `status` is allowed while `status` is \"delivered\"",
        ),
    ];
    for (from, message) in cases {
        assert_eq!(
            refused(build_with(
                &cfg,
                ORDER,
                args("canceled"),
                "acme",
                &order_row(from)
            )),
            vec![v(
                ViolationCode::TransitionNotAllowed,
                "patch.status",
                message
            )],
            "from {from}"
        );
    }
    let mut row = order_row("paid");
    row.insert("status".into(), Value::Null);
    assert_eq!(
        refused(build_with(&cfg, ORDER, args("canceled"), "acme", &row))[0].message,
        "`status` cannot move from null to \"canceled\"; no change of `status` is allowed while `status` is null"
    );
}

// ---------------------------------------------------------------------------
// Row-hash conflict guard

fn row_hash_config() -> Config {
    config_with(WAIVER, |c| {
        c["conflict_guard"] = json!({"weak_guard_ack": true});
    })
}

/// Canonical JSON of the invoice row's read columns (all of them).
const INVOICE_ROW_CANONICAL: &str = concat!(
    r#"{"balance_cents":25500,"customer_id":"cust_acme_1","id":"INV-3001","late_fee_cents":5500,"#,
    r#""status":"overdue","tenant_id":"acme","updated_at":"2026-06-20T14:31:08Z","waiver_reason":null}"#
);

fn row_hash_waiver(cfg: &Config) -> ChangeSet {
    waiver(cfg)
}

#[test]
fn a_row_hash_guard_hashes_the_read_columns_and_has_no_version() {
    let cfg = row_hash_config();
    let cs = row_hash_waiver(&cfg);
    assert_eq!(cs.guards.expected_version, None);
    assert_eq!(
        cs.guards.row_hash.as_deref(),
        Some(sha256_tagged(INVOICE_ROW_CANONICAL).as_str())
    );
    // Only the patched columns are in before: there is no version column.
    assert_eq!(
        Value::Object(cs.before.clone()),
        json!({"late_fee_cents": 5500, "waiver_reason": null})
    );
    assert_eq!(
        Value::Object(cs.after.clone()),
        json!({"late_fee_cents": 0, "waiver_reason": "customer requested review"})
    );
    // A read column missing from the row hashes as null.
    let mut row = invoice_row();
    row.remove("customer_id");
    let cs = build_with(
        &cfg,
        WAIVER,
        json!({"invoice_id": "INV-3001", "reason": "customer requested review"}),
        "acme",
        &row,
    )
    .unwrap();
    assert_eq!(
        cs.guards.row_hash.as_deref(),
        Some(sha256_tagged(&INVOICE_ROW_CANONICAL.replace("\"cust_acme_1\"", "null")).as_str())
    );
    // The version-guarded reference capability carries no row hash.
    assert_eq!(waiver(&config()).guards.row_hash, None);
}

#[test]
fn verify_keeps_a_well_formed_submitted_row_hash() {
    let cfg = row_hash_config();
    let cs = row_hash_waiver(&cfg);
    assert_eq!(verify(&cfg, &cs, &only_acme).unwrap(), cs);
    let upper = format!("sha256:{}", "AbCdEf0123456789".repeat(4));
    let mut other = cs.clone();
    other.guards.row_hash = Some(upper.clone());
    let verified = verify(&cfg, &other, &only_acme).unwrap();
    assert_eq!(verified.guards.row_hash, Some(upper));
}

#[test]
fn verify_refuses_a_malformed_or_missing_row_hash() {
    let cfg = row_hash_config();
    let cs = row_hash_waiver(&cfg);
    let bad = [
        None,
        Some(String::new()),
        Some(format!("sha256:{}", "a".repeat(63))),
        Some(format!("sha256:{}", "a".repeat(65))),
        Some(format!("sha256:{}", "g".repeat(64))),
        Some(format!("sha256:{}z", "a".repeat(63))),
        Some(format!("sha512:{}", "a".repeat(64))),
        Some("a".repeat(64)),
        Some(format!("SHA256:{}", "a".repeat(64))),
    ];
    for h in bad {
        let mut forged = cs.clone();
        forged.guards.row_hash = h.clone();
        assert_eq!(
            refused(verify(&cfg, &forged, &only_acme)),
            vec![v(
                ViolationCode::GuardMismatch,
                "guards.row_hash",
                "a row-hash guard must be `sha256:` and 64 hex digits"
            )],
            "{h:?}"
        );
    }
}

#[test]
fn a_row_hash_change_set_exports_the_hash_as_its_guard() {
    let cfg = row_hash_config();
    let cs = row_hash_waiver(&cfg);
    let exported = export_v1(&cs, &meta());
    assert_eq!(
        exported["guards"]["expected_version"],
        json!({"column": "_row_hash", "value": sha256_tagged(INVOICE_ROW_CANONICAL)})
    );
}

// ---------------------------------------------------------------------------
// verify: context, before-image, patch, after, guards

#[test]
fn verify_refuses_read_and_unknown_capabilities_with_their_messages() {
    let cfg = config();
    let mut cs = waiver(&cfg);
    cs.capability = "billing.inspect_invoice".into();
    assert_eq!(
        refused(verify(&cfg, &cs, &only_acme)),
        vec![v(
            ViolationCode::NotAProposal,
            "capability",
            "`billing.inspect_invoice` is a read capability; it cannot propose changes"
        )]
    );
    cs.capability = "billing.drop_everything".into();
    assert_eq!(
        refused(verify(&cfg, &cs, &only_acme)),
        vec![v(
            ViolationCode::UnknownCapability,
            "capability",
            "no capability of that name in the executor's config"
        )]
    );
}

const INVALID_CONTEXT: &str =
    "tenant and principal must be non-empty, at most 128 characters, without control characters";

#[test]
fn an_invalid_principal_alone_is_refused() {
    let cfg = config();
    let base = waiver(&cfg);
    for principal in [
        String::new(),
        "a".repeat(129),
        "agent\n17".into(),
        "agent\u{0}".into(),
    ] {
        let mut cs = base.clone();
        cs.principal = principal.clone();
        assert_eq!(
            refused(verify(&cfg, &cs, &anyone)),
            vec![v(
                ViolationCode::InvalidContext,
                "tenant_id",
                INVALID_CONTEXT
            )],
            "{principal:?}"
        );
    }
    // At the limit it is fine, and the verified copy keeps it.
    let mut cs = base.clone();
    cs.principal = "é".repeat(128);
    assert_eq!(
        verify(&cfg, &cs, &anyone).unwrap().principal,
        "é".repeat(128)
    );
}

#[test]
fn an_invalid_tenant_alone_is_refused_without_asking_who_may_claim_it() {
    let cfg = config();
    let base = waiver(&cfg);
    for tenant in [String::new(), "a".repeat(129), "ac\tme".into()] {
        let mut cs = base.clone();
        cs.tenant_id = tenant.clone();
        cs.guards.tenant.as_mut().unwrap().value = json!(tenant.clone());
        assert_eq!(
            refused(verify(&cfg, &cs, &|_: &str| -> bool {
                panic!("not asked")
            })),
            vec![v(
                ViolationCode::InvalidContext,
                "tenant_id",
                INVALID_CONTEXT
            )],
            "{tenant:?}"
        );
    }
}

#[test]
fn an_unclaimable_tenant_is_refused_with_its_message() {
    let cfg = config();
    let mut cs = waiver(&cfg);
    cs.tenant_id = "otherco".into();
    cs.guards.tenant.as_mut().unwrap().value = json!("otherco");
    assert_eq!(
        refused(verify(&cfg, &cs, &only_acme)),
        vec![v(
            ViolationCode::TenantNotClaimable,
            "tenant_id",
            "this proposer connection may not act for that tenant"
        )]
    );
    // The same change set is fine for a peer that may act for otherco.
    assert!(verify(&cfg, &cs, &|t: &str| t == "otherco").is_ok());
}

#[test]
fn invalid_arguments_are_reported_per_argument() {
    let cfg = config();
    let mut cs = waiver(&cfg);
    cs.args.insert("reason".into(), json!("x".repeat(501)));
    cs.args.insert("table".into(), json!("x"));
    assert_eq!(
        refused(verify(&cfg, &cs, &only_acme)),
        vec![
            v(
                ViolationCode::InvalidArgument,
                "args.table",
                "unknown argument `table`; this tool takes: invoice_id, reason"
            ),
            v(
                ViolationCode::InvalidArgument,
                "args.reason",
                "`reason` is 501 characters; the limit is 500"
            ),
        ]
    );
}

#[test]
fn the_before_image_holds_only_patched_and_version_scalars() {
    let cfg = config();
    let base = waiver(&cfg);
    let cases = [
        (
            "bad col",
            json!(1),
            vec![v(
                ViolationCode::UnexpectedColumn,
                "before",
                "unsafe column name in before",
            )],
        ),
        (
            "balance_cents",
            json!(1),
            vec![v(
                ViolationCode::UnexpectedColumn,
                "before.balance_cents",
                "`balance_cents` is neither patched nor the version column",
            )],
        ),
        (
            "waiver_reason",
            json!(["a"]),
            vec![v(
                ViolationCode::InvalidValue,
                "before.waiver_reason",
                "column values must be scalars",
            )],
        ),
        (
            "late_fee_cents",
            json!({"n": 1}),
            vec![v(
                ViolationCode::InvalidValue,
                "before.late_fee_cents",
                "column values must be scalars",
            )],
        ),
        (
            "status",
            json!([]),
            vec![
                v(
                    ViolationCode::UnexpectedColumn,
                    "before.status",
                    "`status` is neither patched nor the version column",
                ),
                v(
                    ViolationCode::InvalidValue,
                    "before.status",
                    "column values must be scalars",
                ),
            ],
        ),
    ];
    for (col, value, expected) in cases {
        let mut cs = base.clone();
        cs.before.insert(col.into(), value);
        assert_eq!(refused(verify(&cfg, &cs, &only_acme)), expected, "{col}");
    }
    // Scalars of every kind are fine in a patched column.
    for value in [json!(true), json!(1.5), json!("x"), Value::Null] {
        let mut cs = base.clone();
        cs.before.insert("waiver_reason".into(), value.clone());
        cs.after = cs.before.clone();
        for (k, p) in &base.patch {
            cs.after.insert(k.clone(), p.clone());
        }
        assert!(verify(&cfg, &cs, &only_acme).is_ok(), "{value}");
    }
}

#[test]
fn patch_columns_outside_the_patch_are_refused_with_the_right_reason() {
    let cfg = config_with(WAIVER, |c| {
        c["allowed_columns"] = json!(["late_fee_cents", "waiver_reason", "status"]);
    });
    let base = waiver(&cfg);
    assert_eq!(verify(&cfg, &base, &only_acme).unwrap(), base);
    let mut cs = base.clone();
    cs.patch.insert("status".into(), json!("paid"));
    assert_eq!(
        refused(verify(&cfg, &cs, &only_acme)),
        vec![v(
            ViolationCode::ColumnNotAllowed,
            "patch.status",
            "`status` is not set by this capability's patch"
        )]
    );
    let mut cs = base.clone();
    cs.patch.insert("balance_cents".into(), json!(0));
    assert_eq!(
        refused(verify(&cfg, &cs, &only_acme)),
        vec![v(
            ViolationCode::ColumnNotAllowed,
            "patch.balance_cents",
            "`balance_cents` is not an allowed column"
        )]
    );
}

#[test]
fn patch_values_must_equal_the_reviewed_bindings() {
    let cfg = config();
    let base = waiver(&cfg);

    let mut cs = base.clone();
    cs.patch.insert("late_fee_cents".into(), json!(1));
    cs.after.insert("late_fee_cents".into(), json!(1));
    assert_eq!(
        refused(verify(&cfg, &cs, &only_acme)),
        vec![
            v(
                ViolationCode::FixedValueAltered,
                "patch.late_fee_cents",
                "`late_fee_cents` is fixed to 0 by the reviewed config"
            ),
            v(
                ViolationCode::AfterMismatch,
                "after",
                "after must be exactly before with the patch applied"
            )
        ]
    );

    let mut cs = base.clone();
    cs.patch.insert("waiver_reason".into(), json!("other"));
    assert_eq!(
        refused(verify(&cfg, &cs, &only_acme)),
        vec![v(
            ViolationCode::PatchValueMismatch,
            "patch.waiver_reason",
            "`waiver_reason` must equal the `reason` argument"
        )]
    );

    // Numbers compare by value: 0.0 is the fixed 0.
    let mut cs = base.clone();
    cs.patch.insert("late_fee_cents".into(), json!(0.0));
    cs.after.insert("late_fee_cents".into(), json!(0.0));
    assert!(verify(&cfg, &cs, &only_acme).is_ok());

    let mut cs = base.clone();
    cs.patch.remove("waiver_reason");
    assert_eq!(
        refused(verify(&cfg, &cs, &only_acme)),
        vec![v(
            ViolationCode::MissingColumn,
            "patch.waiver_reason",
            "the patch must set `waiver_reason`"
        )]
    );
}

#[test]
fn after_must_be_exactly_before_with_the_patch_applied() {
    let cfg = config();
    let base = waiver(&cfg);
    let expected = vec![v(
        ViolationCode::AfterMismatch,
        "after",
        "after must be exactly before with the patch applied",
    )];
    let mut cs = base.clone();
    cs.after.remove("updated_at");
    assert_eq!(
        refused(verify(&cfg, &cs, &only_acme)),
        expected,
        "missing key"
    );
    let mut cs = base.clone();
    cs.after.insert("balance_cents".into(), json!(0));
    assert_eq!(
        refused(verify(&cfg, &cs, &only_acme)),
        expected,
        "extra key"
    );
    let mut cs = base.clone();
    cs.after
        .insert("updated_at".into(), json!("2026-06-21T00:00:00Z"));
    assert_eq!(
        refused(verify(&cfg, &cs, &only_acme)),
        expected,
        "other value"
    );
    let mut cs = base.clone();
    cs.after.remove("updated_at");
    cs.after
        .insert("other".into(), json!("2026-06-20T14:31:08Z"));
    assert_eq!(
        refused(verify(&cfg, &cs, &only_acme)),
        expected,
        "renamed key"
    );
    // Numbers compare by value.
    let mut cs = base.clone();
    cs.after.insert("late_fee_cents".into(), json!(0.0));
    assert!(verify(&cfg, &cs, &only_acme).is_ok());
}

#[test]
fn each_guard_must_match_the_rebuilt_one() {
    let cfg = config();
    let base = waiver(&cfg);

    let mut cs = base.clone();
    cs.guards.tenant = None;
    assert_eq!(
        refused(verify(&cfg, &cs, &only_acme)),
        vec![v(
            ViolationCode::TenantMismatch,
            "guards.tenant",
            "the tenant guard must be the tenant key with the claimed tenant id"
        )]
    );

    let mut cs = base.clone();
    cs.guards.allowed_columns.reverse();
    assert_eq!(
        refused(verify(&cfg, &cs, &only_acme)),
        vec![v(
            ViolationCode::GuardMismatch,
            "guards.allowed_columns",
            "allowed columns must equal the reviewed config's"
        )]
    );

    let mut cs = base.clone();
    cs.guards.expected_version.as_mut().unwrap().value = json!("2026-01-01T00:00:00Z");
    assert_eq!(
        refused(verify(&cfg, &cs, &only_acme)),
        vec![v(
            ViolationCode::GuardMismatch,
            "guards.expected_version",
            "the expected version must be the version column's value in before"
        )]
    );

    let mut cs = base.clone();
    cs.target.primary_key.value = json!("INV-9");
    assert_eq!(
        refused(verify(&cfg, &cs, &only_acme)),
        vec![v(
            ViolationCode::TargetMismatch,
            "target",
            "the target must be public.invoices keyed by id = the `invoice_id` argument"
        )]
    );

    // A version-guarded change set's row hash is not used: the rebuilt copy has none.
    let mut cs = base.clone();
    cs.guards.row_hash = Some(format!("sha256:{}", "a".repeat(64)));
    assert_eq!(verify(&cfg, &cs, &only_acme).unwrap(), base);
}

#[test]
fn forged_transitions_are_refused() {
    let cfg = config();
    let cs = build_with(
        &cfg,
        ORDER,
        json!({"order_id": "O-1", "status": "canceled", "reason": "r"}),
        "acme",
        &order_row("paid"),
    )
    .unwrap();
    assert_eq!(verify(&cfg, &cs, &only_acme).unwrap(), cs);
    let mut forged = cs.clone();
    forged.guards.transitions.clear();
    assert_eq!(
        refused(verify(&cfg, &forged, &only_acme)),
        vec![v(
            ViolationCode::GuardMismatch,
            "guards.transitions",
            "transitions must match the config's transition guards"
        )]
    );
}

// ---------------------------------------------------------------------------
// Export

fn meta() -> ExportMeta<'static> {
    ExportMeta {
        proposal_id: "wrp_1",
        source_id: "app_postgres",
        engine: Engine::Postgres,
        evidence_bundle_id: "ev_1",
        query_fingerprint: "sha256:00",
        evidence_items: vec![],
        approval_status: "pending",
        required_role: None,
        writeback_status: "not_applied",
        source_database_mutated: false,
        principal_source: "environment",
        created_at: "2026-06-20T14:31:09Z",
    }
}

#[test]
fn export_names_the_business_object_and_object_id_as_text() {
    let golden: Value = serde_json::from_str(GOLDEN_CHANGE_SET).unwrap();
    let mut cs = waiver(&config());
    let exported = export_v1(&cs, &meta());
    assert_eq!(exported["scope"], golden["scope"]);
    assert_eq!(exported["approval"], json!({"status": "pending"}));
    assert_eq!(exported["integrity"]["proposal_hash"], json!(cs.hash()));
    cs.target.table = "s".into();
    cs.target.primary_key.value = json!(3001);
    let exported = export_v1(&cs, &meta());
    assert_eq!(
        exported["scope"],
        json!({"tenant_id": "acme", "business_object": "s", "object_id": "3001"})
    );
    cs.target.table = "staff".into();
    let exported = export_v1(&cs, &meta());
    assert_eq!(exported["scope"]["business_object"], json!("staff"));
    assert_eq!(
        exported["source"]["primary_key"],
        json!({"column": "id", "value": 3001})
    );
}

#[test]
fn scalars_print_as_plain_text() {
    assert_eq!(scalar_text(&json!("INV-3001")), "INV-3001");
    assert_eq!(scalar_text(&json!("")), "");
    assert_eq!(scalar_text(&json!(42)), "42");
    assert_eq!(scalar_text(&json!(1.5)), "1.5");
    assert_eq!(scalar_text(&json!(true)), "true");
    assert_eq!(scalar_text(&Value::Null), "null");
}

// ---------------------------------------------------------------------------
// A proposal that changes nothing (issue 16, item 4)

#[test]
fn a_proposal_that_changes_nothing_is_refused_by_build_and_verify() {
    let cfg = config();
    let mut row = invoice_row();
    row.insert("late_fee_cents".into(), json!(0.0));
    row.insert("waiver_reason".into(), json!("already waived"));
    let args = json!({"invoice_id": "INV-3001", "reason": "already waived"});
    assert_eq!(
        refused(build_with(&cfg, WAIVER, args, "acme", &row)),
        [v(
            ViolationCode::NoChange,
            "patch",
            "the proposal changes nothing: every patched column already holds its proposed value"
        )],
        "0.0 in the row is 0 in the patch"
    );
    // One column that changes is enough.
    let args = json!({"invoice_id": "INV-3001", "reason": "a new reason"});
    assert!(build_with(&cfg, WAIVER, args, "acme", &row).is_ok());
    row.insert("late_fee_cents".into(), json!(1));
    row.insert("waiver_reason".into(), json!("already waived"));
    let args = json!({"invoice_id": "INV-3001", "reason": "already waived"});
    assert!(build_with(&cfg, WAIVER, args, "acme", &row).is_ok());

    // The executor's re-validation refuses a submitted no-op too.
    let mut cs = waiver(&cfg);
    cs.before.insert("late_fee_cents".into(), json!(0));
    cs.before
        .insert("waiver_reason".into(), json!("customer requested review"));
    cs.after = cs.before.clone();
    let codes: Vec<ViolationCode> = refused(verify(&cfg, &cs, &anyone))
        .into_iter()
        .map(|x| x.code)
        .collect();
    assert_eq!(codes, [ViolationCode::NoChange]);
}
