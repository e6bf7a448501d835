//! Behavioural and property tests of the policy against the repository's
//! reference config (`tests/fixtures/reference/`, the support/billing
//! example in Synapsor Runner's reviewed-config format).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use airlock_policy::args::{ArgErrorCode, validate_args};
use airlock_policy::catalog::{AliasMode, Catalog};
use airlock_policy::change_set::{ChangeSet, ExportMeta, ViolationCode, build, export_v1, verify};
use airlock_policy::config::{ContextProvider, Engine};
use airlock_policy::context::TrustedContext;
use airlock_policy::{Config, load_config, load_config_str};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

const REFERENCE: &str = include_str!("../../tests/fixtures/reference/airlock.reference.json");
const GOLDEN_CHANGE_SET: &str =
    include_str!("../../tests/fixtures/protocol/change-set.late-fee-waiver.v1.json");

fn config() -> Config {
    load_config_str(REFERENCE)
        .config
        .expect("reference config loads")
}

fn acme() -> TrustedContext {
    TrustedContext {
        tenant_id: "acme".into(),
        principal: "agent_17".into(),
        source: ContextProvider::Environment,
    }
}

fn invoice_row() -> Map<String, Value> {
    json!({
        "id": "INV-3001", "tenant_id": "acme", "customer_id": "cust_acme_1", "status": "overdue",
        "balance_cents": 25500, "late_fee_cents": 5500, "waiver_reason": null,
        "updated_at": "2026-06-20T14:31:08Z"
    })
    .as_object()
    .cloned()
    .unwrap()
}

fn waiver(cfg: &Config) -> ChangeSet {
    let cap = cfg.capability("billing.propose_late_fee_waiver").unwrap();
    let args = validate_args(
        cap,
        Some(&json!({"invoice_id": "INV-3001", "reason": "customer requested review"})),
    )
    .unwrap();
    build(cap, &args, &acme(), &invoice_row()).unwrap()
}

fn only_acme(t: &str) -> bool {
    t == "acme"
}

fn codes(
    result: Result<ChangeSet, Vec<airlock_policy::change_set::Violation>>,
) -> Vec<ViolationCode> {
    result
        .expect_err("must be refused")
        .into_iter()
        .map(|v| v.code)
        .collect()
}

#[test]
fn build_matches_the_golden_change_set_fields() {
    let cfg = config();
    let cs = waiver(&cfg);
    let golden: Value = serde_json::from_str(GOLDEN_CHANGE_SET).unwrap();
    assert_eq!(Value::Object(cs.before.clone()), golden["before"]);
    assert_eq!(Value::Object(cs.patch.clone()), golden["patch"]);
    assert_eq!(Value::Object(cs.after.clone()), golden["after"]);
    let meta = ExportMeta {
        proposal_id: "wrp_1",
        source_id: "app_postgres",
        engine: Engine::Postgres,
        evidence_bundle_id: "ev_1",
        query_fingerprint: "sha256:00",
        evidence_items: vec![],
        approval_status: "pending",
        required_role: Some("billing_lead"),
        writeback_status: "not_applied",
        source_database_mutated: false,
        principal_source: "trusted_session",
        created_at: "2026-06-20T14:31:09Z",
    };
    let exported = export_v1(&cs, &meta);
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        keys(&exported),
        keys(&golden),
        "top-level fields and their order match the golden object"
    );
    assert_eq!(exported["guards"], golden["guards"]);
    assert_eq!(exported["scope"], golden["scope"]);
    assert_eq!(
        exported["source"]["primary_key"],
        golden["source"]["primary_key"]
    );
}

#[test]
fn an_honest_change_set_verifies_to_the_same_change_set() {
    let cfg = config();
    let cs = waiver(&cfg);
    let verified = verify(&cfg, &cs, &only_acme).unwrap();
    assert_eq!(verified, cs);
    assert_eq!(verified.hash(), cs.hash());
}

#[test]
fn forged_change_sets_are_refused_with_specific_codes() {
    let cfg = config();
    let base = waiver(&cfg);
    let mut cases: Vec<(&str, ChangeSet, ViolationCode)> = Vec::new();

    let mut cs = base.clone();
    cs.patch.insert("balance_cents".into(), json!(0));
    cases.push((
        "column outside allowed_columns",
        cs,
        ViolationCode::ColumnNotAllowed,
    ));

    let mut cs = base.clone();
    cs.patch.insert("late_fee_cents".into(), json!(1));
    cs.after.insert("late_fee_cents".into(), json!(1));
    cases.push(("altered fixed value", cs, ViolationCode::FixedValueAltered));

    let mut cs = base.clone();
    cs.patch
        .insert("waiver_reason".into(), json!("something else"));
    cases.push((
        "patch differs from argument",
        cs,
        ViolationCode::PatchValueMismatch,
    ));

    let mut cs = base.clone();
    cs.tenant_id = "otherco".into();
    cases.push(("unclaimable tenant", cs, ViolationCode::TenantNotClaimable));

    let mut cs = base.clone();
    cs.target.table = "customers".into();
    cases.push(("other table", cs, ViolationCode::TargetMismatch));

    let mut cs = base.clone();
    cs.target.schema = "pg_catalog".into();
    cases.push(("other schema", cs, ViolationCode::TargetMismatch));

    let mut cs = base.clone();
    cs.target.primary_key.column = "customer_id".into();
    cases.push(("other key column", cs, ViolationCode::TargetMismatch));

    let mut cs = base.clone();
    cs.capability = "billing.inspect_invoice".into();
    cases.push(("read capability", cs, ViolationCode::NotAProposal));

    let mut cs = base.clone();
    cs.capability = "billing.drop_everything".into();
    cases.push(("unknown capability", cs, ViolationCode::UnknownCapability));

    let mut cs = base.clone();
    cs.before.insert("balance_cents".into(), json!(1));
    cases.push((
        "smuggled before column",
        cs,
        ViolationCode::UnexpectedColumn,
    ));

    let mut cs = base.clone();
    cs.after.insert("waiver_reason".into(), json!("x"));
    cases.push(("after not derived", cs, ViolationCode::AfterMismatch));

    let mut cs = base.clone();
    cs.guards.expected_version = None;
    cases.push(("dropped version guard", cs, ViolationCode::GuardMismatch));

    let mut cs = base.clone();
    cs.guards.tenant.as_mut().unwrap().column = "customer_id".into();
    cases.push((
        "tenant guard on other column",
        cs,
        ViolationCode::TenantMismatch,
    ));

    let mut cs = base.clone();
    cs.args.insert("reason".into(), json!("x".repeat(501)));
    cases.push(("argument too long", cs, ViolationCode::InvalidArgument));

    let mut cs = base.clone();
    cs.args.insert("tenant_id".into(), json!("otherco"));
    cases.push(("authority argument", cs, ViolationCode::InvalidArgument));

    let mut cs = base.clone();
    cs.target.primary_key.value = json!("INV-9001' OR '1'='1");
    cases.push(("key not from argument", cs, ViolationCode::TargetMismatch));

    for (what, cs, code) in cases {
        let got = codes(verify(&cfg, &cs, &only_acme));
        assert!(
            got.contains(&code),
            "{what}: expected {code:?}, got {got:?}"
        );
    }
}

#[test]
fn guards_are_enforced_at_build_and_verify() {
    let cfg = config();
    // Transition: a resolved ticket cannot go back to pending_review.
    let cap = cfg.capability("support.propose_ticket_resolution").unwrap();
    let args = validate_args(
        cap,
        Some(&json!({"ticket_id": "T-1042", "resolution_note": "done"})),
    )
    .unwrap();
    let mut row =
        json!({"id": "T-1042", "tenant_id": "acme", "status": "resolved", "resolution_note": null,
        "updated_at": "2026-06-20T12:00:00Z"})
        .as_object()
        .cloned()
        .unwrap();
    let err = build(cap, &args, &acme(), &row).unwrap_err();
    assert_eq!(err[0].code, ViolationCode::TransitionNotAllowed);
    row.insert("status".into(), json!("open"));
    let ok = build(cap, &args, &acme(), &row).unwrap();
    assert_eq!(ok.guards.transitions[0].to, json!("pending_review"));
    // The proposer lying about the before state does not help: verify re-checks.
    let mut forged = ok.clone();
    forged.before.insert("status".into(), json!("resolved"));
    forged.guards.transitions[0].from = json!("resolved");
    assert!(
        codes(verify(&cfg, &forged, &only_acme)).contains(&ViolationCode::TransitionNotAllowed)
    );

    // Numeric bounds: the argument schema says 0..=5000 too; the change set bound is checked independently.
    let credit = cfg.capability("support.propose_plan_credit").unwrap();
    let err = validate_args(
        credit,
        Some(&json!({"customer_id": "c", "credit_cents": 5001, "reason": "r"})),
    )
    .unwrap_err();
    assert_eq!(err[0].code, ArgErrorCode::AboveMaximum);

    // A row of another tenant cannot be the subject of a proposal.
    let waiver = cfg.capability("billing.propose_late_fee_waiver").unwrap();
    let args = validate_args(
        waiver,
        Some(&json!({"invoice_id": "INV-9001", "reason": "r"})),
    )
    .unwrap();
    let mut other = invoice_row();
    other.insert("tenant_id".into(), json!("otherco"));
    assert_eq!(
        build(waiver, &args, &acme(), &other).unwrap_err()[0].code,
        ViolationCode::TenantMismatch
    );
}

#[test]
fn argument_errors_are_specific() {
    let cfg = config();
    let cap = cfg.capability("orders.propose_status_change").unwrap();
    let cases = [
        (
            json!({"order_id": "O-1", "status": "canceled"}),
            ArgErrorCode::MissingArgument,
        ),
        (
            json!({"order_id": 5, "status": "canceled", "reason": "r"}),
            ArgErrorCode::WrongType,
        ),
        (
            json!({"order_id": "O-1", "status": "shipped", "reason": "r"}),
            ArgErrorCode::NotInEnum,
        ),
        (
            json!({"order_id": "O-1", "status": "canceled", "reason": "r", "table": "x"}),
            ArgErrorCode::UnknownArgument,
        ),
        (
            json!({"order_id": "x".repeat(129), "status": "canceled", "reason": "r"}),
            ArgErrorCode::TooLong,
        ),
        (
            json!({"order_id": "O-1\u{0}", "status": "canceled", "reason": "r"}),
            ArgErrorCode::InvalidCharacters,
        ),
        (json!(["O-1"]), ArgErrorCode::NotAnObject),
    ];
    for (args, code) in cases {
        let errs = validate_args(cap, Some(&args)).unwrap_err();
        assert_eq!(errs[0].code, code, "{args}");
    }
    let credit = cfg.capability("support.propose_plan_credit").unwrap();
    let errs = validate_args(
        credit,
        Some(&json!({"customer_id": "c", "credit_cents": -1, "reason": "r"})),
    )
    .unwrap_err();
    assert_eq!(errs[0].code, ArgErrorCode::BelowMinimum);
}

#[test]
fn catalog_lists_exactly_the_reviewed_tools_with_aliases() {
    let cfg = config();
    let canonical = Catalog::new(&cfg, AliasMode::Canonical);
    assert_eq!(canonical.tools().len(), 8);
    let both = Catalog::new(&cfg, AliasMode::Both);
    assert_eq!(both.tools().len(), 16);
    assert_eq!(
        both.resolve("billing__inspect_invoice"),
        Some("billing.inspect_invoice")
    );
    assert_eq!(
        both.resolve("billing.inspect_invoice"),
        Some("billing.inspect_invoice")
    );
    let openai = Catalog::new(&cfg, AliasMode::Openai);
    assert_eq!(openai.resolve("billing.inspect_invoice"), None);
    let tool = openai
        .tools()
        .iter()
        .find(|t| t.name == "orders__propose_status_change")
        .unwrap();
    assert_eq!(
        tool.input_schema,
        json!({
            "type": "object",
            "properties": {
                "order_id": {"type": "string", "maxLength": 128},
                "status": {"type": "string", "maxLength": 4096, "enum": ["ready_to_ship", "canceled"]},
                "reason": {"type": "string", "maxLength": 500}
            },
            "required": ["order_id", "status", "reason"],
            "additionalProperties": false
        })
    );
    for t in both.tools() {
        let lower = t.name.to_ascii_lowercase();
        for word in ["sql", "approve", "apply", "commit", "query", "execute"] {
            assert!(!lower.contains(word), "{} offers {word}", t.name);
        }
    }
}

// ---------------------------------------------------------------------------
// Properties.

fn arb_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "acme",
            "otherco",
            "open",
            "resolved",
            "pending_review",
            "INV-3001",
            "status",
            "tenant_id"
        ])
        .prop_map(|s| json!(s)),
    ]
}

fn arb_json() -> impl Strategy<Value = Value> {
    arb_scalar().prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((".{0,10}", inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Replace the value at a random position of the reference config.
fn mutate(doc: &mut Value, mut pick: usize, replacement: Value) -> bool {
    fn walk(v: &mut Value, pick: &mut usize, replacement: &Value) -> bool {
        if *pick == 0 {
            *v = replacement.clone();
            return true;
        }
        *pick -= 1;
        match v {
            Value::Object(m) => m.values_mut().any(|c| walk(c, pick, replacement)),
            Value::Array(a) => a.iter_mut().any(|c| walk(c, pick, replacement)),
            _ => false,
        }
    }
    walk(doc, &mut pick, &replacement)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_documents_never_panic_the_loader(doc in arb_json()) {
        let loaded = load_config(&doc);
        prop_assert!(loaded.config.is_none() || !loaded.report.has_errors());
    }

    #[test]
    fn mutated_reference_configs_never_panic(pick in 0usize..400, replacement in arb_json()) {
        let mut doc: Value = serde_json::from_str(REFERENCE).unwrap();
        mutate(&mut doc, pick, replacement);
        let loaded = load_config(&doc);
        // Either a config comes back, or at least one error names a path.
        if loaded.config.is_none() {
            prop_assert!(loaded.report.errors().all(|d| d.path.starts_with('$')));
            prop_assert!(loaded.report.has_errors());
        }
    }

    #[test]
    fn arbitrary_arguments_never_panic(args in arb_json()) {
        let cfg = config();
        for cap in &cfg.capabilities {
            let _ = validate_args(cap, Some(&args));
        }
    }

    #[test]
    fn verified_change_sets_touch_only_allowed_columns_of_the_claimed_tenant(
        reason in ".{0,40}",
        patch_extra in prop::collection::vec(("[a-z_]{1,12}", arb_scalar()), 0..3),
        tenant in prop::sample::select(vec!["acme", "otherco"]),
        fee in arb_scalar(),
        version in arb_scalar(),
        extra_arg in prop::option::of((prop::sample::select(vec!["tenant_id", "table", "sql", "reason"]), arb_scalar())),
    ) {
        let cfg = config();
        let mut cs = waiver(&cfg);
        cs.args.insert("reason".into(), json!(reason));
        cs.patch.insert("waiver_reason".into(), json!(reason));
        cs.after.insert("waiver_reason".into(), json!(reason));
        for (k, v) in patch_extra {
            cs.patch.insert(k.clone(), v.clone());
            cs.after.insert(k, v);
        }
        cs.tenant_id = tenant.to_owned();
        cs.patch.insert("late_fee_cents".into(), fee);
        cs.before.insert("updated_at".into(), version);
        if let Some((k, v)) = extra_arg {
            cs.args.insert(k.into(), v);
        }
        if let Ok(verified) = verify(&cfg, &cs, &only_acme) {
            let allowed = &cfg.capability("billing.propose_late_fee_waiver").unwrap().proposal.as_ref().unwrap().allowed_columns;
            prop_assert!(verified.patch.keys().all(|k| allowed.contains(k)));
            prop_assert_eq!(&verified.tenant_id, "acme");
            prop_assert_eq!(verified.guards.tenant.as_ref().unwrap().value.clone(), json!("acme"));
            prop_assert_eq!(verified.patch.get("late_fee_cents"), Some(&json!(0)));
        }
    }
}
