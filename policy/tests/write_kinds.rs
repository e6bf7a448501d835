//! Write kinds (`operation`): INSERT with a source-enforced identity, DELETE
//! with an exact version, increments and decrements, apply-time columns and
//! version-advance strategies — the loader's every rule, the change sets
//! they build and verify, the SQL they write, and the catalog texts.
//!
//! Every case starts from the repository's reference config plus, where
//! needed, one added capability, and states the outcome written out by
//! hand: for a refused config every error as (exact JSON path, message
//! fragment, fix fragment); for an accepted one the exact value loaded.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use airlock_policy::args::validate_args;
use airlock_policy::catalog::{AliasMode, Catalog};
use airlock_policy::change_set::{
    ChangeSet, DedupValue, Violation, ViolationCode, build, patch_value, verify,
};
use airlock_policy::config::{
    Capability, ConflictGuard, ContextProvider, DedupComponent, DedupSource, Engine, Operation,
    OperationKind, PatchValue, VersionStrategy,
};
use airlock_policy::context::TrustedContext;
use airlock_policy::load::Loaded;
use airlock_policy::statement::{
    Bind, BoundStatement, NextVersion, WriteDialect, writeback_delete, writeback_insert,
    writeback_update,
};
use airlock_policy::{Config, load_config};
use serde_json::{Map, Value, json};

const REFERENCE: &str = include_str!("../../tests/fixtures/reference/airlock.reference.json");

// Capability indices: the reference config's, and the one a test appends.
const CREDIT: usize = 3; // support.propose_plan_credit
const WAIVER: usize = 5; // billing.propose_late_fee_waiver
const ADDED: usize = 8;

const INSERT: &str = "billing.propose_credit_note";
const DELETE: &str = "billing.propose_invoice_removal";

fn reference() -> Value {
    serde_json::from_str(REFERENCE).unwrap()
}

/// An INSERT of one credit note, identified by (tenant, request, kind).
fn insert_cap() -> Value {
    json!({
        "name": INSERT,
        "kind": "proposal",
        "source": "app_postgres",
        "context": "local_operator",
        "target": {"schema": "public", "table": "credit_notes", "primary_key": "id", "tenant_key": "tenant_id"},
        "args": {
            "amount_cents": {"type": "integer", "required": true, "minimum": 1, "maximum": 5000},
            "memo": {"type": "string", "required": true, "max_length": 200}
        },
        "visible_columns": ["id", "tenant_id", "amount_cents", "memo", "kind", "request_id", "created_at"],
        "evidence": "required",
        "max_rows": 1,
        "patch": {
            "amount_cents": {"from_arg": "amount_cents"},
            "memo": {"from_arg": "memo"},
            "created_at": {"apply_time": true}
        },
        "allowed_columns": ["amount_cents", "memo", "created_at"],
        "operation": {
            "kind": "insert",
            "deduplication": {"components": [
                {"column": "tenant_id", "source": "trusted_tenant"},
                {"column": "request_id", "source": "proposal_id"},
                {"column": "kind", "source": "fixed", "fixed": "credit"}
            ]}
        },
        "approval": {"mode": "human", "required_role": "billing_lead"}
    })
}

/// A DELETE of one invoice, guarded by its exact `updated_at`.
fn delete_cap() -> Value {
    json!({
        "name": DELETE,
        "kind": "proposal",
        "source": "app_postgres",
        "context": "local_operator",
        "target": {"schema": "public", "table": "invoices", "primary_key": "id", "tenant_key": "tenant_id"},
        "args": {"invoice_id": {"type": "string", "required": true, "max_length": 128}},
        "lookup": {"id_from_arg": "invoice_id"},
        "visible_columns": ["id", "tenant_id", "status", "balance_cents", "updated_at"],
        "evidence": "required",
        "max_rows": 1,
        "conflict_guard": {"column": "updated_at"},
        "operation": {
            "kind": "delete",
            "acknowledge_effects": {"triggers": ["audit_del"], "cascades": ["public.invoice_lines"]}
        },
        "approval": {"mode": "human", "required_role": "billing_lead"}
    })
}

fn with_insert(v: &mut Value) {
    v["capabilities"].as_array_mut().unwrap().push(insert_cap());
}

fn with_delete(v: &mut Value) {
    v["capabilities"].as_array_mut().unwrap().push(delete_cap());
}

fn cap(v: &mut Value, i: usize) -> &mut Value {
    &mut v["capabilities"][i]
}

fn op(v: &mut Value) -> &mut Value {
    &mut v["capabilities"][ADDED]["operation"]
}

fn remove(v: &mut Value, key: &str) {
    v.as_object_mut().unwrap().remove(key).expect("key present");
}

/// The credit capability stepping `plan_credit_cents` by `credit_cents`.
fn stepped(v: &mut Value, binding: &str) {
    cap(v, CREDIT)["patch"]["plan_credit_cents"] = json!({binding: "credit_cents"});
}

/// The waiver capability also stamping `waived_at` with the apply time.
fn stamped(v: &mut Value) {
    cap(v, WAIVER)["patch"]["waived_at"] = json!({"apply_time": true});
    cap(v, WAIVER)["allowed_columns"] = json!(["late_fee_cents", "waiver_reason", "waived_at"]);
}

fn edited(edit: impl FnOnce(&mut Value)) -> Loaded {
    let mut v = reference();
    edit(&mut v);
    load_config(&v)
}

fn accepted(edit: impl FnOnce(&mut Value)) -> (Config, Loaded) {
    let loaded = edited(edit);
    assert!(
        !loaded.report.has_errors(),
        "unexpected errors: {:#?}",
        loaded.report
    );
    (loaded.config.clone().expect("a config"), loaded)
}

fn spec_of<'a>(cfg: &'a Config, name: &str) -> &'a Capability {
    cfg.capability(name).expect("capability present")
}

/// One refused edit: every error it must produce, in report order, as
/// (path, message fragment, fix fragment).
struct Refused {
    what: &'static str,
    edit: fn(&mut Value),
    errors: &'static [(&'static str, &'static str, &'static str)],
}

fn check_refused(cases: &[Refused]) {
    for case in cases {
        let loaded = edited(case.edit);
        assert!(
            loaded.config.is_none(),
            "{}: a config came back despite errors",
            case.what
        );
        let got: Vec<(&str, &str, &str)> = loaded
            .report
            .errors()
            .map(|d| (d.path.as_str(), d.message.as_str(), d.fix.as_str()))
            .collect();
        assert_eq!(
            got.len(),
            case.errors.len(),
            "{}: expected {:?}, got {got:#?}",
            case.what,
            case.errors
        );
        for ((path, message, fix), (want_path, fragment, fix_fragment)) in
            got.iter().zip(case.errors)
        {
            assert_eq!(path, want_path, "{}: {got:#?}", case.what);
            assert!(
                message.contains(fragment),
                "{}: message {message:?} lacks {fragment:?}",
                case.what
            );
            assert!(
                !fix.is_empty() && fix.contains(fix_fragment),
                "{}: fix {fix:?} lacks {fix_fragment:?}",
                case.what
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Loader: accepted operations, exactly.

#[test]
fn an_insert_loads_with_its_identity_and_no_lookup() {
    let (cfg, loaded) = accepted(with_insert);
    assert_eq!(loaded.report.warnings().count(), 0, "{:#?}", loaded.report);
    let c = spec_of(&cfg, INSERT);
    assert_eq!(c.lookup_arg, "");
    let p = c.proposal.as_ref().unwrap();
    assert_eq!(p.kind(), OperationKind::Insert);
    assert_eq!(p.conflict_guard, ConflictGuard::None);
    assert_eq!(p.version_column(), None);
    assert_eq!(
        p.operation,
        Operation {
            kind: OperationKind::Insert,
            version_advance: None,
            deduplication: vec![
                DedupComponent {
                    column: "tenant_id".into(),
                    source: DedupSource::TrustedTenant
                },
                DedupComponent {
                    column: "request_id".into(),
                    source: DedupSource::ProposalId
                },
                DedupComponent {
                    column: "kind".into(),
                    source: DedupSource::Fixed(json!("credit"))
                },
            ],
            acknowledged_triggers: vec![],
            acknowledged_cascades: vec![],
        }
    );
    assert_eq!(
        p.patch,
        vec![
            (
                "amount_cents".to_owned(),
                PatchValue::FromArg("amount_cents".into())
            ),
            ("memo".to_owned(), PatchValue::FromArg("memo".into())),
            ("created_at".to_owned(), PatchValue::ApplyTime),
        ]
    );
    // The capability digest material carries the operation of an insert
    // and of nothing else (existing capabilities keep their digests).
    let ser = serde_json::to_value(p).unwrap();
    assert_eq!(ser["operation"]["kind"], json!("insert"));
    assert_eq!(
        ser["operation"]["deduplication"][2],
        json!({"column": "kind", "source": {"fixed": "credit"}})
    );
    let waiver = serde_json::to_value(
        spec_of(&cfg, "billing.propose_late_fee_waiver")
            .proposal
            .as_ref()
            .unwrap(),
    )
    .unwrap();
    assert!(waiver.get("operation").is_none(), "{waiver}");
    assert!(!p.operation.is_default());
    assert!(Operation::default().is_default());
}

#[test]
fn an_insert_may_name_a_lookup_and_its_primary_key_column() {
    let (cfg, _) = accepted(|v| {
        with_insert(v);
        let c = cap(v, ADDED);
        c["lookup"] = json!({"id_from_arg": "memo"});
        c["args"]["note_id"] = json!({"type": "string", "required": true, "max_length": 64});
        c["patch"]["id"] = json!({"from_arg": "note_id"});
        c["allowed_columns"] = json!(["id", "amount_cents", "memo", "created_at"]);
    });
    let c = spec_of(&cfg, INSERT);
    assert_eq!(c.lookup_arg, "memo");
    let p = c.proposal.as_ref().unwrap();
    assert_eq!(p.allowed_columns[0], "id");
    assert!(
        p.patch
            .contains(&("id".to_owned(), PatchValue::FromArg("note_id".into())))
    );
}

#[test]
fn an_insert_conflict_guard_is_a_warning_not_an_error() {
    let (cfg, loaded) = accepted(|v| {
        with_insert(v);
        cap(v, ADDED)["conflict_guard"] = json!({"column": "updated_at"});
    });
    let w: Vec<(String, String, String)> = loaded
        .report
        .warnings()
        .map(|d| (d.path.clone(), d.message.clone(), d.fix.clone()))
        .collect();
    assert_eq!(w.len(), 1, "{w:#?}");
    assert_eq!(w[0].0, "$.capabilities[8].conflict_guard");
    assert!(w[0].1.contains("an insert has no existing row"), "{w:?}");
    assert!(w[0].2.contains("remove `conflict_guard`"), "{w:?}");
    assert_eq!(
        spec_of(&cfg, INSERT)
            .proposal
            .as_ref()
            .unwrap()
            .conflict_guard,
        ConflictGuard::None
    );
}

#[test]
fn a_delete_loads_with_its_acknowledged_effects() {
    let (cfg, loaded) = accepted(with_delete);
    assert_eq!(loaded.report.warnings().count(), 0, "{:#?}", loaded.report);
    let c = spec_of(&cfg, DELETE);
    assert_eq!(c.lookup_arg, "invoice_id");
    let p = c.proposal.as_ref().unwrap();
    assert_eq!(p.kind(), OperationKind::Delete);
    assert!(p.patch.is_empty() && p.allowed_columns.is_empty());
    assert_eq!(p.version_column(), Some("updated_at"));
    assert_eq!(
        p.operation,
        Operation {
            kind: OperationKind::Delete,
            version_advance: None,
            deduplication: vec![],
            acknowledged_triggers: vec!["audit_del".into()],
            acknowledged_cascades: vec!["public.invoice_lines".into()],
        }
    );
    // An empty `patch` is the same as none.
    let (cfg, _) = accepted(|v| {
        with_delete(v);
        cap(v, ADDED)["patch"] = json!({});
        op(v)["acknowledge_effects"] = json!({});
    });
    let p = spec_of(&cfg, DELETE).proposal.as_ref().unwrap();
    assert!(p.patch.is_empty() && p.allowed_columns.is_empty());
    assert_eq!(
        p.operation,
        Operation {
            kind: OperationKind::Delete,
            ..Operation::default()
        }
    );
    // Without `acknowledge_effects` at all.
    let (cfg, _) = accepted(|v| {
        with_delete(v);
        remove(op(v), "acknowledge_effects");
        op(v)["cardinality"] = json!("single");
    });
    assert_eq!(
        spec_of(&cfg, DELETE)
            .proposal
            .as_ref()
            .unwrap()
            .operation
            .acknowledged_cascades,
        Vec::<String>::new()
    );
}

#[test]
fn an_explicit_update_is_the_default_operation() {
    let (cfg, _) = accepted(|v| {
        cap(v, WAIVER)["operation"] = json!({"kind": "update", "cardinality": "single"});
    });
    let p = spec_of(&cfg, "billing.propose_late_fee_waiver")
        .proposal
        .as_ref()
        .unwrap();
    assert!(p.operation.is_default());
    assert_eq!(p.version_column(), Some("updated_at"));
}

#[test]
fn version_advance_strategies_load() {
    for (name, want) in [
        ("integer_increment", VersionStrategy::IntegerIncrement),
        ("timestamp", VersionStrategy::Timestamp),
        ("database_generated", VersionStrategy::DatabaseGenerated),
    ] {
        let (cfg, _) = accepted(|v| {
            cap(v, WAIVER)["operation"] = json!({
                "kind": "update",
                "version_advance": {"column": "updated_at", "strategy": name}
            });
        });
        let p = spec_of(&cfg, "billing.propose_late_fee_waiver")
            .proposal
            .as_ref()
            .unwrap();
        assert_eq!(p.operation.version_advance, Some(want), "{name}");
        assert_eq!(p.kind(), OperationKind::Update);
    }
}

#[test]
fn increments_decrements_and_apply_time_load() {
    for (binding, want) in [
        (
            "increment_from_arg",
            PatchValue::IncrementFromArg("credit_cents".into()),
        ),
        (
            "decrement_from_arg",
            PatchValue::DecrementFromArg("credit_cents".into()),
        ),
    ] {
        let (cfg, _) = accepted(|v| stepped(v, binding));
        let p = spec_of(&cfg, "support.propose_plan_credit")
            .proposal
            .as_ref()
            .unwrap();
        assert_eq!(
            p.patch[0],
            ("plan_credit_cents".to_owned(), want),
            "{binding}"
        );
    }
    let (cfg, _) = accepted(stamped);
    let p = spec_of(&cfg, "billing.propose_late_fee_waiver")
        .proposal
        .as_ref()
        .unwrap();
    assert_eq!(
        p.patch,
        vec![
            ("late_fee_cents".to_owned(), PatchValue::Fixed(json!(0))),
            (
                "waiver_reason".to_owned(),
                PatchValue::FromArg("reason".into())
            ),
            ("waived_at".to_owned(), PatchValue::ApplyTime),
        ]
    );
    // A null fixed value is a scalar.
    let (cfg, _) = accepted(|v| cap(v, WAIVER)["patch"]["waiver_reason"] = json!({"fixed": null}));
    let p = spec_of(&cfg, "billing.propose_late_fee_waiver")
        .proposal
        .as_ref()
        .unwrap();
    assert_eq!(p.patch[1].1, PatchValue::Fixed(Value::Null));
}

#[test]
fn fixed_identity_values_may_be_any_scalar() {
    for fixed in [json!("credit"), json!(7), json!(true)] {
        let (cfg, _) = accepted(|v| {
            with_insert(v);
            op(v)["deduplication"]["components"][2]["fixed"] = fixed.clone();
        });
        let p = spec_of(&cfg, INSERT).proposal.as_ref().unwrap();
        assert_eq!(
            p.operation.deduplication[2].source,
            DedupSource::Fixed(fixed)
        );
    }
    // Eight components is the most; a proposal id alone is enough.
    let (cfg, _) = accepted(|v| {
        with_insert(v);
        let mut comps = vec![json!({"column": "request_id", "source": "proposal_id"})];
        for i in 0..7 {
            comps.push(json!({"column": format!("k{i}"), "source": "fixed", "fixed": i}));
        }
        op(v)["deduplication"]["components"] = json!(comps);
    });
    assert_eq!(
        spec_of(&cfg, INSERT)
            .proposal
            .as_ref()
            .unwrap()
            .operation
            .deduplication
            .len(),
        8
    );
    let (cfg, _) = accepted(|v| {
        with_insert(v);
        op(v)["deduplication"]["components"] =
            json!([{"column": "request_id", "source": "proposal_id"}]);
    });
    assert_eq!(
        spec_of(&cfg, INSERT)
            .proposal
            .as_ref()
            .unwrap()
            .operation
            .deduplication,
        vec![DedupComponent {
            column: "request_id".into(),
            source: DedupSource::ProposalId
        }]
    );
}

// ---------------------------------------------------------------------------
// Loader: refused operations.

#[test]
fn operation_kind_and_cardinality_are_checked() {
    check_refused(&[
        Refused {
            what: "unknown kind",
            edit: |v| cap(v, WAIVER)["operation"] = json!({"kind": "upsert"}),
            errors: &[(
                "$.capabilities[5].operation.kind",
                "unknown operation kind `upsert`",
                "\"update\", \"insert\" or \"delete\"",
            )],
        },
        Refused {
            what: "no kind",
            edit: |v| cap(v, WAIVER)["operation"] = json!({"cardinality": "single"}),
            errors: &[(
                "$.capabilities[5].operation.kind",
                "missing required field `kind`",
                "add \"kind\"",
            )],
        },
        Refused {
            what: "a set",
            edit: |v| cap(v, WAIVER)["operation"] = json!({"kind": "update", "cardinality": "set"}),
            errors: &[(
                "$.capabilities[5].operation.cardinality",
                "bounded set writes are not supported",
                "propose one row per proposal",
            )],
        },
        Refused {
            what: "unknown cardinality",
            edit: |v| {
                cap(v, WAIVER)["operation"] = json!({"kind": "update", "cardinality": "many"})
            },
            errors: &[(
                "$.capabilities[5].operation.cardinality",
                "unknown cardinality `many`",
                "use \"single\"",
            )],
        },
        Refused {
            what: "set-only keys under single",
            edit: |v| {
                cap(v, WAIVER)["operation"] = json!({
                    "kind": "update", "cardinality": "single",
                    "selection": {}, "max_rows": 5, "aggregate_bounds": {}, "batch": {}
                })
            },
            errors: &[
                (
                    "$.capabilities[5].operation.selection",
                    "`selection` applies only to a bounded set",
                    "remove `selection`",
                ),
                (
                    "$.capabilities[5].operation.max_rows",
                    "`max_rows` applies only to a bounded set",
                    "remove `max_rows`",
                ),
                (
                    "$.capabilities[5].operation.aggregate_bounds",
                    "`aggregate_bounds` applies only",
                    "remove `aggregate_bounds`",
                ),
                (
                    "$.capabilities[5].operation.batch",
                    "`batch` applies only",
                    "remove `batch`",
                ),
            ],
        },
        Refused {
            what: "set-only key without cardinality",
            edit: |v| cap(v, WAIVER)["operation"] = json!({"kind": "update", "max_rows": 5}),
            errors: &[(
                "$.capabilities[5].operation.max_rows",
                "applies only to a bounded set",
                "remove `max_rows`",
            )],
        },
    ]);
}

#[test]
fn version_advance_is_checked() {
    check_refused(&[
        Refused {
            what: "version_advance on an insert",
            edit: |v| {
                with_insert(v);
                op(v)["version_advance"] = json!({"column": "updated_at", "strategy": "timestamp"});
            },
            errors: &[(
                "$.capabilities[8].operation.version_advance",
                "`version_advance` applies only to an update, not to insert",
                "remove `version_advance`",
            )],
        },
        Refused {
            what: "version_advance on a delete",
            edit: |v| {
                with_delete(v);
                op(v)["version_advance"] = json!({"column": "updated_at", "strategy": "timestamp"});
            },
            errors: &[(
                "$.capabilities[8].operation.version_advance",
                "applies only to an update, not to delete",
                "remove `version_advance`",
            )],
        },
        Refused {
            what: "another column than the guard's",
            edit: |v| {
                cap(v, WAIVER)["operation"] = json!({
                    "kind": "update",
                    "version_advance": {"column": "version", "strategy": "integer_increment"}
                })
            },
            errors: &[(
                "$.capabilities[5].operation.version_advance.column",
                "`version` is not the conflict-guard column `updated_at`",
                "write \"column\": \"updated_at\"",
            )],
        },
        Refused {
            what: "with a row-hash guard",
            edit: |v| {
                cap(v, WAIVER)["conflict_guard"] = json!({"weak_guard_ack": true});
                cap(v, WAIVER)["operation"] = json!({
                    "kind": "update",
                    "version_advance": {"column": "updated_at", "strategy": "timestamp"}
                });
            },
            errors: &[(
                "$.capabilities[5].operation.version_advance.column",
                "a version can only advance with a conflict-guard column",
                "add \"conflict_guard\": {\"column\": \"updated_at\"}",
            )],
        },
        Refused {
            what: "unknown strategy",
            edit: |v| {
                cap(v, WAIVER)["operation"] = json!({
                    "kind": "update",
                    "version_advance": {"column": "updated_at", "strategy": "random"}
                })
            },
            errors: &[(
                "$.capabilities[5].operation.version_advance.strategy",
                "unknown version strategy `random`",
                "\"integer_increment\", \"timestamp\" or \"database_generated\"",
            )],
        },
    ]);
}

#[test]
fn deduplication_is_checked() {
    check_refused(&[
        Refused {
            what: "insert without deduplication",
            edit: |v| {
                with_insert(v);
                remove(op(v), "deduplication");
            },
            errors: &[(
                "$.capabilities[8].operation.deduplication",
                "missing required field `deduplication`",
                "PRIMARY KEY or UNIQUE",
            )],
        },
        Refused {
            what: "deduplication on an update",
            edit: |v| {
                cap(v, WAIVER)["operation"] = json!({
                    "kind": "update",
                    "deduplication": {"components": [{"column": "request_id", "source": "proposal_id"}]}
                })
            },
            errors: &[(
                "$.capabilities[5].operation.deduplication",
                "`deduplication` applies only to an insert, not to update",
                "remove `deduplication`",
            )],
        },
        Refused {
            what: "deduplication on a delete",
            edit: |v| {
                with_delete(v);
                op(v)["deduplication"] =
                    json!({"components": [{"column": "request_id", "source": "proposal_id"}]});
            },
            errors: &[(
                "$.capabilities[8].operation.deduplication",
                "applies only to an insert, not to delete",
                "remove `deduplication`",
            )],
        },
        Refused {
            what: "no components",
            edit: |v| {
                with_insert(v);
                op(v)["deduplication"]["components"] = json!([]);
            },
            errors: &[(
                "$.capabilities[8].operation.deduplication.components",
                "a de-duplication identity has 1 to 8 columns",
                "PRIMARY KEY or UNIQUE",
            )],
        },
        Refused {
            what: "nine components",
            edit: |v| {
                with_insert(v);
                let mut comps = vec![json!({"column": "request_id", "source": "proposal_id"})];
                for i in 0..8 {
                    comps.push(json!({"column": format!("k{i}"), "source": "fixed", "fixed": i}));
                }
                op(v)["deduplication"]["components"] = json!(comps);
            },
            errors: &[(
                "$.capabilities[8].operation.deduplication.components",
                "1 to 8 columns",
                "PRIMARY KEY or UNIQUE",
            )],
        },
        Refused {
            what: "components missing",
            edit: |v| {
                with_insert(v);
                op(v)["deduplication"] = json!({});
            },
            errors: &[(
                "$.capabilities[8].operation.deduplication.components",
                "missing required field `components`",
                "add \"components\"",
            )],
        },
        Refused {
            what: "components not an array",
            edit: |v| {
                with_insert(v);
                op(v)["deduplication"] = json!({"components": "request_id"});
            },
            errors: &[(
                "$.capabilities[8].operation.deduplication.components",
                "array",
                "",
            )],
        },
        Refused {
            what: "unknown source",
            edit: |v| {
                with_insert(v);
                op(v)["deduplication"]["components"][2] =
                    json!({"column": "kind", "source": "random"});
            },
            errors: &[(
                "$.capabilities[8].operation.deduplication.components[2].source",
                "unknown identity source `random`",
                "\"proposal_id\", \"trusted_tenant\" or \"fixed\"",
            )],
        },
        Refused {
            what: "item_field",
            edit: |v| {
                with_insert(v);
                op(v)["deduplication"]["components"][2] =
                    json!({"column": "kind", "source": "item_field"});
            },
            errors: &[(
                "$.capabilities[8].operation.deduplication.components[2].source",
                "`item_field` identities belong to batch inserts",
                "\"proposal_id\", \"trusted_tenant\" or \"fixed\"",
            )],
        },
        Refused {
            what: "fixed missing",
            edit: |v| {
                with_insert(v);
                remove(&mut op(v)["deduplication"]["components"][2], "fixed");
            },
            errors: &[(
                "$.capabilities[8].operation.deduplication.components[2].fixed",
                "missing required field `fixed`",
                "the reviewed value of this column",
            )],
        },
        Refused {
            what: "fixed array",
            edit: |v| {
                with_insert(v);
                op(v)["deduplication"]["components"][2]["fixed"] = json!(["credit"]);
            },
            errors: &[(
                "$.capabilities[8].operation.deduplication.components[2].fixed",
                "a fixed identity value must be a string, number or boolean",
                "write a scalar value",
            )],
        },
        Refused {
            what: "fixed object",
            edit: |v| {
                with_insert(v);
                op(v)["deduplication"]["components"][2]["fixed"] = json!({"a": 1});
            },
            errors: &[(
                "$.capabilities[8].operation.deduplication.components[2].fixed",
                "a fixed identity value must be a string, number or boolean",
                "write a scalar value",
            )],
        },
        Refused {
            what: "fixed null",
            edit: |v| {
                with_insert(v);
                op(v)["deduplication"]["components"][2]["fixed"] = Value::Null;
            },
            errors: &[(
                "$.capabilities[8].operation.deduplication.components[2].fixed",
                "a fixed identity value must be a string, number or boolean",
                "write a scalar value",
            )],
        },
        Refused {
            what: "fixed on a proposal_id source",
            edit: |v| {
                with_insert(v);
                op(v)["deduplication"]["components"][1]["fixed"] = json!("x");
            },
            errors: &[(
                "$.capabilities[8].operation.deduplication.components[1].fixed",
                "`fixed` applies only to `source: \"fixed\"`",
                "remove `fixed`",
            )],
        },
        Refused {
            what: "duplicate column",
            edit: |v| {
                with_insert(v);
                op(v)["deduplication"]["components"][2] =
                    json!({"column": "request_id", "source": "fixed", "fixed": 1});
            },
            errors: &[(
                "$.capabilities[8].operation.deduplication.components[2].column",
                "`request_id` appears twice in the identity",
                "list each column once",
            )],
        },
        Refused {
            what: "patched column as identity",
            edit: |v| {
                with_insert(v);
                op(v)["deduplication"]["components"][2] =
                    json!({"column": "memo", "source": "fixed", "fixed": "m"});
            },
            errors: &[(
                "$.capabilities[8].operation.deduplication.components[2].column",
                "`memo` is set by the patch, so the model would choose the identity",
                "remove `memo` from `patch` and `allowed_columns`",
            )],
        },
        Refused {
            what: "trusted_tenant on another column",
            edit: |v| {
                with_insert(v);
                op(v)["deduplication"]["components"][2] =
                    json!({"column": "kind", "source": "trusted_tenant"});
            },
            errors: &[(
                "$.capabilities[8].operation.deduplication.components[2].column",
                "`trusted_tenant` fills the tenant key, and `kind` is not it",
                "write \"column\": \"tenant_id\"",
            )],
        },
        Refused {
            what: "no proposal_id component",
            edit: |v| {
                with_insert(v);
                op(v)["deduplication"]["components"] = json!([
                    {"column": "tenant_id", "source": "trusted_tenant"},
                    {"column": "kind", "source": "fixed", "fixed": "credit"}
                ]);
            },
            errors: &[(
                "$.capabilities[8].operation.deduplication.components",
                "the identity has no `proposal_id` column",
                "\"source\": \"proposal_id\"",
            )],
        },
        Refused {
            // One error only: the missing proposal id is not added to another.
            what: "a bad component and no proposal_id",
            edit: |v| {
                with_insert(v);
                op(v)["deduplication"]["components"] = json!([
                    {"column": "tenant_id", "source": "trusted_tenant"},
                    {"column": "kind", "source": "random"}
                ]);
            },
            errors: &[(
                "$.capabilities[8].operation.deduplication.components[1].source",
                "unknown identity source `random`",
                "\"proposal_id\"",
            )],
        },
    ]);
}

#[test]
fn trusted_tenant_needs_a_tenant_key() {
    let loaded = edited(|v| {
        with_insert(v);
        let c = cap(v, ADDED);
        remove(&mut c["target"], "tenant_key");
        c["single_tenant_dev_ack"] = json!(true);
    });
    let errs: Vec<(String, String, String)> = loaded
        .report
        .errors()
        .map(|d| (d.path.clone(), d.message.clone(), d.fix.clone()))
        .collect();
    assert!(
        errs.iter().any(|(p, m, f)| p
            == "$.capabilities[8].operation.deduplication.components[0].column"
            && m.contains("`tenant_id` is not it")
            && f == "set `target.tenant_key`"),
        "{errs:#?}"
    );
}

#[test]
fn acknowledge_effects_is_checked() {
    check_refused(&[
        Refused {
            what: "on an update",
            edit: |v| {
                cap(v, WAIVER)["operation"] = json!({"kind": "update", "acknowledge_effects": {}})
            },
            errors: &[(
                "$.capabilities[5].operation.acknowledge_effects",
                "`acknowledge_effects` applies only to a delete, not to update",
                "remove `acknowledge_effects`",
            )],
        },
        Refused {
            what: "on an insert",
            edit: |v| {
                with_insert(v);
                op(v)["acknowledge_effects"] = json!({"triggers": []});
            },
            errors: &[(
                "$.capabilities[8].operation.acknowledge_effects",
                "applies only to a delete, not to insert",
                "remove `acknowledge_effects`",
            )],
        },
        Refused {
            what: "a cascade without a schema",
            edit: |v| {
                with_delete(v);
                op(v)["acknowledge_effects"]["cascades"] = json!(["invoice_lines"]);
            },
            errors: &[(
                "$.capabilities[8].operation.acknowledge_effects.cascades[0]",
                "expected \"schema.table\"",
                "public.invoice_lines",
            )],
        },
        Refused {
            what: "a cascade that is not a string",
            edit: |v| {
                with_delete(v);
                op(v)["acknowledge_effects"]["cascades"] = json!(["public.a", 5]);
            },
            errors: &[(
                "$.capabilities[8].operation.acknowledge_effects.cascades[1]",
                "expected \"schema.table\"",
                "public.invoice_lines",
            )],
        },
        Refused {
            what: "a cascade with a bad table name",
            edit: |v| {
                with_delete(v);
                op(v)["acknowledge_effects"]["cascades"] = json!(["public.bad-name"]);
            },
            errors: &[(
                "$.capabilities[8].operation.acknowledge_effects.cascades[0]",
                "",
                "",
            )],
        },
        Refused {
            what: "a cascade with a bad schema name",
            edit: |v| {
                with_delete(v);
                op(v)["acknowledge_effects"]["cascades"] = json!(["bad-schema.lines"]);
            },
            errors: &[(
                "$.capabilities[8].operation.acknowledge_effects.cascades[0]",
                "",
                "",
            )],
        },
        Refused {
            what: "cascades not a list",
            edit: |v| {
                with_delete(v);
                op(v)["acknowledge_effects"]["cascades"] = json!("public.lines");
            },
            errors: &[(
                "$.capabilities[8].operation.acknowledge_effects.cascades",
                "",
                "",
            )],
        },
        Refused {
            what: "triggers not a list",
            edit: |v| {
                with_delete(v);
                op(v)["acknowledge_effects"]["triggers"] = json!("audit_del");
            },
            errors: &[(
                "$.capabilities[8].operation.acknowledge_effects.triggers",
                "",
                "",
            )],
        },
    ]);
}

#[test]
fn insert_and_delete_shapes_are_checked() {
    check_refused(&[
        Refused {
            what: "an update still needs a lookup",
            edit: |v| remove(cap(v, WAIVER), "lookup"),
            errors: &[(
                "$.capabilities[5].lookup",
                "missing required field `lookup`",
                "",
            )],
        },
        Refused {
            what: "an update may not patch its primary key",
            edit: |v| {
                cap(v, WAIVER)["allowed_columns"] =
                    json!(["id", "late_fee_cents", "waiver_reason"]);
            },
            errors: &[(
                "$.capabilities[5].allowed_columns[0]",
                "the primary key",
                "",
            )],
        },
        Refused {
            what: "insert transition guards",
            edit: |v| {
                with_insert(v);
                cap(v, ADDED)["transition_guards"] = json!({"memo": {"allowed": {"a": ["b"]}}});
            },
            errors: &[(
                "$.capabilities[8].transition_guards",
                "`transition_guards` does not apply to an insert, which has no current state",
                "remove `transition_guards`",
            )],
        },
        Refused {
            what: "insert increment",
            edit: |v| {
                with_insert(v);
                cap(v, ADDED)["patch"]["amount_cents"] =
                    json!({"increment_from_arg": "amount_cents"});
            },
            errors: &[(
                "$.capabilities[8].patch.amount_cents.increment_from_arg",
                "an insert has no current value to add to",
                "write {\"from_arg\": \"amount_cents\"}",
            )],
        },
        Refused {
            what: "insert decrement",
            edit: |v| {
                with_insert(v);
                cap(v, ADDED)["patch"]["amount_cents"] =
                    json!({"decrement_from_arg": "amount_cents"});
            },
            errors: &[(
                "$.capabilities[8].patch.amount_cents.decrement_from_arg",
                "an insert has no current value to add to",
                "write {\"from_arg\": \"amount_cents\"}",
            )],
        },
        Refused {
            what: "delete with a row-hash guard",
            edit: |v| {
                with_delete(v);
                cap(v, ADDED)["conflict_guard"] = json!({"weak_guard_ack": true});
            },
            errors: &[(
                "$.capabilities[8].conflict_guard",
                "a delete needs an exact version column",
                "\"conflict_guard\": {\"column\": \"updated_at\"}",
            )],
        },
        Refused {
            what: "delete without a conflict guard",
            edit: |v| {
                with_delete(v);
                remove(cap(v, ADDED), "conflict_guard");
            },
            errors: &[(
                "$.capabilities[8].conflict_guard",
                "missing required field `conflict_guard`",
                "",
            )],
        },
        Refused {
            what: "delete with allowed columns",
            edit: |v| {
                with_delete(v);
                cap(v, ADDED)["allowed_columns"] = json!(["status"]);
            },
            errors: &[(
                "$.capabilities[8].allowed_columns",
                "a delete changes no column",
                "remove `allowed_columns`",
            )],
        },
        Refused {
            what: "delete with a patch",
            edit: |v| {
                with_delete(v);
                cap(v, ADDED)["patch"] = json!({"status": {"fixed": "void"}});
            },
            errors: &[(
                "$.capabilities[8].patch",
                "a delete sets no column",
                "remove `patch`",
            )],
        },
        Refused {
            what: "delete with numeric bounds and transition guards",
            edit: |v| {
                with_delete(v);
                cap(v, ADDED)["numeric_bounds"] = json!({});
                cap(v, ADDED)["transition_guards"] = json!({});
            },
            errors: &[
                (
                    "$.capabilities[8].numeric_bounds",
                    "`numeric_bounds` does not apply to a delete",
                    "remove `numeric_bounds`",
                ),
                (
                    "$.capabilities[8].transition_guards",
                    "`transition_guards` does not apply to a delete",
                    "remove `transition_guards`",
                ),
            ],
        },
        Refused {
            what: "an insert through a handler",
            edit: |v| {
                with_insert(v);
                v["executors"] = json!({"hook": {"type": "http_handler", "url_env": "HOOK_URL"}});
                cap(v, ADDED)["executor"] = json!("hook");
            },
            errors: &[(
                "$.capabilities[8].executor",
                "a handler executor receives updates only; this capability is an insert",
                "omit `executor`",
            )],
        },
        Refused {
            what: "a delete through a handler",
            edit: |v| {
                with_delete(v);
                v["executors"] = json!({"hook": {"type": "http_handler", "url_env": "HOOK_URL"}});
                cap(v, ADDED)["executor"] = json!("hook");
            },
            errors: &[(
                "$.capabilities[8].executor",
                "this capability is an delete",
                "omit `executor`",
            )],
        },
    ]);
}

#[test]
fn patch_bindings_are_checked() {
    check_refused(&[
        Refused {
            what: "two bindings",
            edit: |v| {
                cap(v, WAIVER)["patch"]["late_fee_cents"] = json!({"fixed": 0, "apply_time": true})
            },
            errors: &[(
                "$.capabilities[5].patch.late_fee_cents",
                "exactly one of `fixed`, `from_arg`, `increment_from_arg`, `decrement_from_arg` or `apply_time`",
                "{\"fixed\": 0}",
            )],
        },
        Refused {
            what: "fixed array",
            edit: |v| cap(v, WAIVER)["patch"]["late_fee_cents"] = json!({"fixed": [0]}),
            errors: &[(
                "$.capabilities[5].patch.late_fee_cents.fixed",
                "a fixed value must be a string, number, boolean or null",
                "write a scalar value",
            )],
        },
        Refused {
            what: "fixed object",
            edit: |v| cap(v, WAIVER)["patch"]["late_fee_cents"] = json!({"fixed": {"a": 0}}),
            errors: &[(
                "$.capabilities[5].patch.late_fee_cents.fixed",
                "a fixed value must be a string, number, boolean or null",
                "write a scalar value",
            )],
        },
        Refused {
            what: "unknown step argument",
            edit: |v| {
                cap(v, CREDIT)["patch"]["plan_credit_cents"] = json!({"increment_from_arg": "nope"})
            },
            errors: &[(
                "$.capabilities[3].patch.plan_credit_cents.increment_from_arg",
                "`nope` is not one of this capability's args",
                "name an argument defined under `args`",
            )],
        },
        Refused {
            what: "a step from a string",
            edit: |v| {
                cap(v, CREDIT)["patch"]["plan_credit_cents"] =
                    json!({"increment_from_arg": "reason"})
            },
            errors: &[(
                "$.capabilities[3].patch.plan_credit_cents.increment_from_arg",
                "`reason` is a string; a step must be a number",
                "make args.reason an integer or number",
            )],
        },
        Refused {
            what: "a step without a maximum",
            edit: |v| {
                stepped(v, "decrement_from_arg");
                remove(&mut cap(v, CREDIT)["args"]["credit_cents"], "maximum");
            },
            errors: &[(
                "$.capabilities[3].patch.plan_credit_cents.decrement_from_arg",
                "the step argument `credit_cents` has no minimum and maximum",
                "add \"minimum\" and \"maximum\" to args.credit_cents",
            )],
        },
        Refused {
            what: "a step without a minimum",
            edit: |v| {
                stepped(v, "increment_from_arg");
                remove(&mut cap(v, CREDIT)["args"]["credit_cents"], "minimum");
            },
            errors: &[(
                "$.capabilities[3].patch.plan_credit_cents.increment_from_arg",
                "has no minimum and maximum",
                "add \"minimum\" and \"maximum\"",
            )],
        },
        Refused {
            what: "a step result without bounds",
            edit: |v| {
                stepped(v, "increment_from_arg");
                remove(cap(v, CREDIT), "numeric_bounds");
            },
            errors: &[(
                "$.capabilities[3].patch.plan_credit_cents",
                "`plan_credit_cents` changes by a step but its result is not bounded",
                "\"numeric_bounds\": {\"plan_credit_cents\": {\"minimum\": 0, \"maximum\": 100000}}",
            )],
        },
        Refused {
            what: "a step result without a maximum",
            edit: |v| {
                stepped(v, "increment_from_arg");
                cap(v, CREDIT)["numeric_bounds"] = json!({"plan_credit_cents": {"minimum": 0}});
            },
            errors: &[(
                "$.capabilities[3].patch.plan_credit_cents",
                "its result is not bounded",
                "numeric_bounds",
            )],
        },
        Refused {
            what: "a step result without a minimum",
            edit: |v| {
                stepped(v, "decrement_from_arg");
                cap(v, CREDIT)["numeric_bounds"] = json!({"plan_credit_cents": {"maximum": 10}});
            },
            errors: &[(
                "$.capabilities[3].patch.plan_credit_cents",
                "its result is not bounded",
                "numeric_bounds",
            )],
        },
        Refused {
            what: "apply_time false",
            edit: |v| {
                stamped(v);
                cap(v, WAIVER)["patch"]["waived_at"] = json!({"apply_time": false});
            },
            errors: &[(
                "$.capabilities[5].patch.waived_at.apply_time",
                "`apply_time` takes the value true",
                "write {\"apply_time\": true}",
            )],
        },
        Refused {
            what: "apply_time a string",
            edit: |v| {
                stamped(v);
                cap(v, WAIVER)["patch"]["waived_at"] = json!({"apply_time": "now"});
            },
            errors: &[(
                "$.capabilities[5].patch.waived_at.apply_time",
                "takes the value true",
                "true",
            )],
        },
        Refused {
            what: "bounds on an apply-time column",
            edit: |v| {
                stamped(v);
                cap(v, WAIVER)["numeric_bounds"]["waived_at"] = json!({"minimum": 0});
            },
            errors: &[(
                "$.capabilities[5].numeric_bounds.waived_at",
                "`waived_at` is set to the apply time, which is not a number",
                "remove the bounds on `waived_at`",
            )],
        },
    ]);
}

// ---------------------------------------------------------------------------
// Change sets.

fn config_from(edit: impl FnOnce(&mut Value)) -> Config {
    accepted(edit).0
}

/// The reference config plus the insert (index 8) and the delete (index 9).
fn kinds_config() -> Config {
    config_from(|v| {
        with_insert(v);
        with_delete(v);
    })
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

fn build_with(
    cfg: &Config,
    cap: &str,
    args: Value,
    row: &Map<String, Value>,
) -> Result<ChangeSet, Vec<Violation>> {
    let cap = cfg.capability(cap).unwrap();
    let args = validate_args(cap, Some(&args)).expect("arguments pass their own checks");
    build(cap, &args, &ctx("acme"), row)
}

fn anyone(_: &str) -> bool {
    true
}

fn viol(code: ViolationCode, path: &str, message: &str) -> Violation {
    Violation {
        code,
        path: path.into(),
        message: message.into(),
    }
}

fn insert_cs(cfg: &Config) -> ChangeSet {
    build_with(
        cfg,
        INSERT,
        json!({"amount_cents": 250, "memo": "goodwill"}),
        &Map::new(),
    )
    .unwrap()
}

fn invoice_row() -> Map<String, Value> {
    obj(json!({
        "id": "INV-3001", "tenant_id": "acme", "customer_id": "cust_acme_1", "status": "overdue",
        "balance_cents": 25500, "late_fee_cents": 5500, "waiver_reason": null,
        "updated_at": "2026-06-20T14:31:08Z", "waived_at": null
    }))
}

fn delete_cs(cfg: &Config) -> ChangeSet {
    build_with(
        cfg,
        DELETE,
        json!({"invoice_id": "INV-3001"}),
        &invoice_row(),
    )
    .unwrap()
}

fn customer_row(credit: Value) -> Map<String, Value> {
    obj(json!({
        "id": "cust_1", "tenant_id": "acme", "name": "Acme", "plan": "pro",
        "plan_credit_cents": credit, "credit_reason": null, "updated_at": "2026-06-20T10:00:00Z"
    }))
}

fn stepped_config(binding: &str) -> Config {
    config_from(|v| stepped(v, binding))
}

fn credit_cs(cfg: &Config, current: Value, step: Value) -> Result<ChangeSet, Vec<Violation>> {
    build_with(
        cfg,
        "support.propose_plan_credit",
        json!({"customer_id": "cust_1", "credit_cents": step, "reason": "goodwill"}),
        &customer_row(current),
    )
}

#[test]
fn an_insert_change_set_is_exactly_the_new_row() {
    let cfg = kinds_config();
    let cs = insert_cs(&cfg);
    let expected: ChangeSet = serde_json::from_value(json!({
        "capability": INSERT,
        "args": {"amount_cents": 250, "memo": "goodwill"},
        "tenant_id": "acme",
        "principal": "agent_17",
        "target": {"schema": "public", "table": "credit_notes",
                   "primary_key": {"column": "id", "value": null}},
        "before": {},
        "patch": {"amount_cents": 250, "memo": "goodwill"},
        "after": {"amount_cents": 250, "memo": "goodwill", "tenant_id": "acme", "kind": "credit"},
        "guards": {
            "tenant": {"column": "tenant_id", "value": "acme"},
            "allowed_columns": ["amount_cents", "memo", "created_at"],
            "expected_version": null,
            "row_hash": null,
            "transitions": [],
            "deduplication": [
                {"column": "tenant_id", "source": "trusted_tenant", "value": "acme"},
                {"column": "request_id", "source": "proposal_id"},
                {"column": "kind", "source": "fixed", "value": "credit"}
            ]
        },
        "operation": "insert",
        "apply_time": ["created_at"]
    }))
    .unwrap();
    assert_eq!(cs, expected);
    assert_eq!(
        cs.guards.deduplication[1],
        DedupValue {
            column: "request_id".into(),
            source: "proposal_id".into(),
            value: None
        }
    );
    // The new fields are serialized (and hashed) for an insert.
    let ser = serde_json::to_value(&cs).unwrap();
    assert_eq!(ser["operation"], json!("insert"));
    assert_eq!(ser["apply_time"], json!(["created_at"]));
    assert!(ser["guards"]["deduplication"][1].get("value").is_none());
    // Even when the insert names a lookup, there is no existing row's key.
    let cfg = config_from(|v| {
        with_insert(v);
        cap(v, ADDED)["lookup"] = json!({"id_from_arg": "memo"});
    });
    assert_eq!(insert_cs(&cfg).target.primary_key.value, Value::Null);
}

#[test]
fn an_update_change_set_serializes_without_the_new_fields() {
    let cfg = kinds_config();
    let cs = build_with(
        &cfg,
        "billing.propose_late_fee_waiver",
        json!({"invoice_id": "INV-3001", "reason": "customer requested review"}),
        &invoice_row(),
    )
    .unwrap();
    let ser = serde_json::to_value(&cs).unwrap();
    assert!(ser.get("operation").is_none(), "{ser}");
    assert!(ser.get("apply_time").is_none(), "{ser}");
    assert!(ser["guards"].get("deduplication").is_none(), "{ser}");
    assert_eq!(cs.operation, OperationKind::Update);
}

#[test]
fn a_delete_change_set_shows_the_row_it_removes() {
    let cfg = kinds_config();
    let cs = delete_cs(&cfg);
    let expected: ChangeSet = serde_json::from_value(json!({
        "capability": DELETE,
        "args": {"invoice_id": "INV-3001"},
        "tenant_id": "acme",
        "principal": "agent_17",
        "target": {"schema": "public", "table": "invoices",
                   "primary_key": {"column": "id", "value": "INV-3001"}},
        "before": {"tenant_id": "acme", "status": "overdue", "balance_cents": 25500,
                   "updated_at": "2026-06-20T14:31:08Z"},
        "patch": {},
        "after": {},
        "guards": {
            "tenant": {"column": "tenant_id", "value": "acme"},
            "allowed_columns": [],
            "expected_version": {"column": "updated_at", "value": "2026-06-20T14:31:08Z"},
            "row_hash": null,
            "transitions": []
        },
        "operation": "delete"
    }))
    .unwrap();
    assert_eq!(cs, expected);
    // Another tenant's row is refused.
    let mut row = invoice_row();
    row.insert("tenant_id".into(), json!("globex"));
    let errs = build_with(&cfg, DELETE, json!({"invoice_id": "INV-3001"}), &row).unwrap_err();
    assert_eq!(errs[0].code, ViolationCode::TenantMismatch);
}

#[test]
fn increments_and_decrements_are_exact() {
    let inc = stepped_config("increment_from_arg");
    let cs = credit_cs(&inc, json!(1200), json!(300)).unwrap();
    assert_eq!(cs.patch["plan_credit_cents"], json!(1500));
    assert_eq!(cs.before["plan_credit_cents"], json!(1200));
    assert_eq!(cs.after["plan_credit_cents"], json!(1500));
    let dec = stepped_config("decrement_from_arg");
    let cs = credit_cs(&dec, json!(1200), json!(300)).unwrap();
    assert_eq!(cs.patch["plan_credit_cents"], json!(900));
    // The result is bounded.
    assert_eq!(
        credit_cs(&inc, json!(4900), json!(300)).unwrap_err(),
        vec![viol(
            ViolationCode::NumericBound,
            "patch.plan_credit_cents",
            "`plan_credit_cents` would be 5200; it must be from 0 to 5000"
        )]
    );
    assert_eq!(
        credit_cs(&dec, json!(100), json!(300)).unwrap_err()[0].path,
        "patch.plan_credit_cents"
    );
    // A current value that is not a number.
    assert_eq!(
        credit_cs(&inc, json!("lots"), json!(300)).unwrap_err(),
        vec![viol(
            ViolationCode::InvalidValue,
            "patch.plan_credit_cents",
            "`plan_credit_cents` holds \"lots\", not a number, so it cannot change by a step"
        )]
    );
}

#[test]
fn step_arithmetic_overflows_into_a_violation_and_floats_stay_floats() {
    let args = obj(json!({"n": 1, "f": 2.0, "big": i64::MAX}));
    let inc = PatchValue::IncrementFromArg("n".into());
    let dec = PatchValue::DecrementFromArg("n".into());
    let overflow = viol(ViolationCode::NumericBound, "patch.c", "`c` would overflow");
    assert_eq!(
        patch_value("c", &inc, Some(&json!(i64::MAX)), &args),
        Err(overflow.clone())
    );
    assert_eq!(
        patch_value("c", &dec, Some(&json!(i64::MIN)), &args),
        Err(overflow.clone())
    );
    assert_eq!(
        patch_value(
            "c",
            &PatchValue::DecrementFromArg("big".into()),
            Some(&json!(-2)),
            &args
        ),
        Err(overflow)
    );
    assert_eq!(
        patch_value("c", &inc, Some(&json!(41)), &args),
        Ok(Some(json!(42)))
    );
    assert_eq!(
        patch_value("c", &dec, Some(&json!(-41)), &args),
        Ok(Some(json!(-42)))
    );
    let finc = PatchValue::IncrementFromArg("f".into());
    let fdec = PatchValue::DecrementFromArg("f".into());
    assert_eq!(
        patch_value("c", &finc, Some(&json!(10.5)), &args),
        Ok(Some(json!(12.5)))
    );
    assert_eq!(
        patch_value("c", &fdec, Some(&json!(10.5)), &args),
        Ok(Some(json!(8.5)))
    );
    assert_eq!(
        patch_value("c", &inc, Some(&json!(0.25)), &args),
        Ok(Some(json!(1.25)))
    );
    assert_eq!(
        patch_value("c", &inc, None, &args),
        Err(viol(
            ViolationCode::InvalidValue,
            "patch.c",
            "`c` holds null, not a number, so it cannot change by a step"
        ))
    );
    assert_eq!(
        patch_value("c", &PatchValue::ApplyTime, Some(&json!(1)), &args),
        Ok(None)
    );
    assert_eq!(
        patch_value("c", &PatchValue::Fixed(json!("x")), None, &args),
        Ok(Some(json!("x")))
    );
    assert_eq!(
        patch_value("c", &PatchValue::FromArg("n".into()), None, &args),
        Ok(Some(json!(1)))
    );
}

#[test]
fn apply_time_columns_are_listed_not_patched() {
    let cfg = config_from(stamped);
    let cs = build_with(
        &cfg,
        "billing.propose_late_fee_waiver",
        json!({"invoice_id": "INV-3001", "reason": "r"}),
        &invoice_row(),
    )
    .unwrap();
    assert_eq!(cs.apply_time, vec!["waived_at".to_owned()]);
    assert!(!cs.patch.contains_key("waived_at"));
    assert_eq!(cs.before["waived_at"], Value::Null);
    // Only the apply time changes: still a change.
    let mut row = invoice_row();
    row.insert("late_fee_cents".into(), json!(0));
    row.insert("waiver_reason".into(), json!("r"));
    let cs = build_with(
        &cfg,
        "billing.propose_late_fee_waiver",
        json!({"invoice_id": "INV-3001", "reason": "r"}),
        &row,
    )
    .unwrap();
    assert_eq!(cs.apply_time, vec!["waived_at".to_owned()]);
    // Without the apply-time column the same proposal changes nothing.
    let errs = build_with(
        &kinds_config(),
        "billing.propose_late_fee_waiver",
        json!({"invoice_id": "INV-3001", "reason": "r"}),
        &row,
    )
    .unwrap_err();
    assert_eq!(errs[0].code, ViolationCode::NoChange);
    // The executor's rebuild agrees.
    let ok = verify(&cfg, &cs, &anyone).unwrap();
    assert_eq!(ok, cs);
}

fn advancing(strategy: &'static str) -> Config {
    config_from(move |v| {
        cap(v, WAIVER)["operation"] = json!({
            "kind": "update",
            "version_advance": {"column": "updated_at", "strategy": strategy}
        });
    })
}

#[test]
fn integer_increment_needs_an_integer_version() {
    let args = json!({"invoice_id": "INV-3001", "reason": "r"});
    let cfg = advancing("integer_increment");
    assert_eq!(
        build_with(
            &cfg,
            "billing.propose_late_fee_waiver",
            args.clone(),
            &invoice_row()
        )
        .unwrap_err(),
        vec![viol(
            ViolationCode::InvalidValue,
            "before.updated_at",
            "the version column `updated_at` holds \"2026-06-20T14:31:08Z\", not an integer, so it cannot advance by one"
        )]
    );
    for version in [json!(7), json!(-3), json!(u64::MAX)] {
        let mut row = invoice_row();
        row.insert("updated_at".into(), version.clone());
        let cs = build_with(&cfg, "billing.propose_late_fee_waiver", args.clone(), &row).unwrap();
        assert_eq!(cs.guards.expected_version.unwrap().value, version);
    }
    // The other strategies take any version.
    for s in ["timestamp", "database_generated"] {
        assert!(
            build_with(
                &advancing(s),
                "billing.propose_late_fee_waiver",
                args.clone(),
                &invoice_row()
            )
            .is_ok(),
            "{s}"
        );
    }
}

// ---------------------------------------------------------------------------
// verify

#[test]
fn honest_insert_delete_and_step_change_sets_pass() {
    let cfg = kinds_config();
    let cs = insert_cs(&cfg);
    assert_eq!(verify(&cfg, &cs, &anyone).unwrap(), cs);
    let cs = delete_cs(&cfg);
    assert_eq!(verify(&cfg, &cs, &anyone).unwrap(), cs);
    for binding in ["increment_from_arg", "decrement_from_arg"] {
        let cfg = stepped_config(binding);
        let cs = credit_cs(&cfg, json!(1200), json!(300)).unwrap();
        assert_eq!(verify(&cfg, &cs, &anyone).unwrap(), cs, "{binding}");
    }
}

#[test]
fn forged_insert_fields_are_refused() {
    let cfg = kinds_config();
    let honest = insert_cs(&cfg);

    let mut cs = honest.clone();
    cs.guards.deduplication[2].value = Some(json!("debit"));
    assert_eq!(
        verify(&cfg, &cs, &anyone).unwrap_err(),
        vec![viol(
            ViolationCode::GuardMismatch,
            "guards.deduplication",
            "the de-duplication identity must be the reviewed config's, with the trusted tenant"
        )]
    );

    let mut cs = honest.clone();
    cs.operation = OperationKind::Update;
    assert_eq!(
        verify(&cfg, &cs, &anyone).unwrap_err(),
        vec![viol(
            ViolationCode::GuardMismatch,
            "operation",
            "this capability's operation is insert"
        )]
    );

    let mut cs = honest.clone();
    cs.apply_time.clear();
    assert_eq!(
        verify(&cfg, &cs, &anyone).unwrap_err(),
        vec![viol(
            ViolationCode::GuardMismatch,
            "apply_time",
            "the columns set to the apply time must be the reviewed config's"
        )]
    );

    let mut cs = honest.clone();
    cs.patch
        .insert("created_at".into(), json!("1999-01-01T00:00:00Z"));
    assert_eq!(
        verify(&cfg, &cs, &anyone).unwrap_err(),
        vec![viol(
            ViolationCode::PatchValueMismatch,
            "patch.created_at",
            "`created_at` is set to the apply time by the executor, never by a value"
        )]
    );

    let mut cs = honest.clone();
    cs.before.insert("memo".into(), json!("old"));
    assert_eq!(
        verify(&cfg, &cs, &anyone).unwrap_err(),
        vec![viol(
            ViolationCode::UnexpectedColumn,
            "before.memo",
            "an insert has no before-image"
        )]
    );

    let mut cs = honest;
    cs.patch.insert("memo".into(), json!("other"));
    let errs = verify(&cfg, &cs, &anyone).unwrap_err();
    assert_eq!(
        errs[0],
        viol(
            ViolationCode::PatchValueMismatch,
            "patch.memo",
            "`memo` must equal the `memo` argument"
        )
    );
}

#[test]
fn a_delete_before_image_holds_only_read_columns_but_the_key() {
    let cfg = kinds_config();
    let mut cs = delete_cs(&cfg);
    cs.before.insert("customer_id".into(), json!("cust_acme_1"));
    assert_eq!(
        verify(&cfg, &cs, &anyone).unwrap_err(),
        vec![viol(
            ViolationCode::UnexpectedColumn,
            "before.customer_id",
            "`customer_id` is neither patched nor the version column"
        )]
    );
    let mut cs = delete_cs(&cfg);
    cs.before.insert("id".into(), json!("INV-3001"));
    assert_eq!(verify(&cfg, &cs, &anyone).unwrap_err()[0].path, "before.id");
    // An update's before-image may not hold an unpatched read column either.
    let cs = build_with(
        &cfg,
        "billing.propose_late_fee_waiver",
        json!({"invoice_id": "INV-3001", "reason": "r"}),
        &invoice_row(),
    )
    .unwrap();
    assert_eq!(verify(&cfg, &cs, &anyone).unwrap(), cs);
    let mut forged = cs;
    forged.before.insert("status".into(), json!("paid"));
    assert_eq!(
        verify(&cfg, &forged, &anyone).unwrap_err()[0].path,
        "before.status"
    );
}

#[test]
fn a_step_patch_must_equal_the_rebuilt_value() {
    for (binding, rule) in [
        (
            "increment_from_arg",
            "its value before plus the `credit_cents` argument",
        ),
        (
            "decrement_from_arg",
            "its value before minus the `credit_cents` argument",
        ),
    ] {
        let cfg = stepped_config(binding);
        let mut cs = credit_cs(&cfg, json!(1200), json!(300)).unwrap();
        cs.patch.insert("plan_credit_cents".into(), json!(4000));
        cs.after.insert("plan_credit_cents".into(), json!(4000));
        assert_eq!(
            verify(&cfg, &cs, &anyone).unwrap_err()[0],
            viol(
                ViolationCode::PatchValueMismatch,
                "patch.plan_credit_cents",
                &format!("`plan_credit_cents` must equal {rule}")
            ),
            "{binding}"
        );
    }
}

// ---------------------------------------------------------------------------
// SQL

fn types(c: &str) -> Option<String> {
    match c {
        "amount_cents" | "balance_cents" => Some("integer".into()),
        "id" | "memo" | "tenant_id" | "request_id" | "kind" => Some("text".into()),
        "updated_at" | "created_at" => Some("timestamp with time zone".into()),
        _ => None,
    }
}

fn dialect(engine: Engine) -> WriteDialect<'static> {
    WriteDialect {
        engine,
        column_type: &types,
    }
}

fn b(column: &str, value: Value) -> Bind {
    Bind {
        column: Some(column.into()),
        value,
    }
}

#[test]
fn insert_sql_is_exact() {
    let cfg = kinds_config();
    let cap = spec_of(&cfg, INSERT);
    let cs = insert_cs(&cfg);
    let binds = vec![
        b("amount_cents", json!(250)),
        b("memo", json!("goodwill")),
        b("tenant_id", json!("acme")),
        b("request_id", json!("prop_1")),
        b("kind", json!("credit")),
    ];
    for (engine, sql) in [
        (
            Engine::Postgres,
            "INSERT INTO \"public\".\"credit_notes\" (\"amount_cents\", \"memo\", \"tenant_id\", \"request_id\", \"kind\", \"created_at\") VALUES (CAST($1 AS integer), CAST($2 AS text), CAST($3 AS text), CAST($4 AS text), CAST($5 AS text), pg_catalog.now())",
        ),
        (
            Engine::Mysql,
            "INSERT INTO `public`.`credit_notes` (`amount_cents`, `memo`, `tenant_id`, `request_id`, `kind`, `created_at`) VALUES (?, ?, ?, ?, ?, CURRENT_TIMESTAMP(6))",
        ),
        (
            Engine::Sqlite,
            "INSERT INTO \"public\".\"credit_notes\" (\"amount_cents\", \"memo\", \"tenant_id\", \"request_id\", \"kind\", \"created_at\") VALUES (?, ?, ?, ?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
        ),
    ] {
        assert_eq!(
            writeback_insert(&dialect(engine), cap, &cs, "prop_1"),
            BoundStatement {
                sql: sql.into(),
                binds: binds.clone(),
            },
            "{engine:?}"
        );
    }
}

#[test]
fn delete_sql_is_exact() {
    let cfg = kinds_config();
    let cap = spec_of(&cfg, DELETE);
    let cs = delete_cs(&cfg);
    for (engine, sql) in [
        (
            Engine::Postgres,
            "DELETE FROM \"public\".\"invoices\" WHERE \"id\" = CAST($1 AS text) AND \"tenant_id\"::pg_catalog.text = $2 AND \"updated_at\" IS NOT DISTINCT FROM CAST($3 AS timestamp with time zone)",
        ),
        (
            Engine::Mysql,
            "DELETE FROM `public`.`invoices` WHERE `id` = ? AND CAST(`id` AS BINARY) = CAST(? AS BINARY) AND CAST(CAST(`tenant_id` AS CHAR) AS BINARY) = CAST(? AS BINARY) AND `updated_at` <=> ?",
        ),
        (
            Engine::Sqlite,
            "DELETE FROM \"public\".\"invoices\" WHERE \"id\" = ? AND CAST(\"tenant_id\" AS TEXT) = ? AND \"updated_at\" IS ?",
        ),
    ] {
        let got = writeback_delete(&dialect(engine), cap, &cs);
        assert_eq!(got.sql, sql, "{engine:?}");
        assert_eq!(
            got.binds.last(),
            Some(&b("updated_at", json!("2026-06-20T14:31:08Z")))
        );
    }
}

#[test]
fn update_sql_sets_apply_time_columns_and_advances_by_strategy() {
    let cfg = config_from(stamped);
    let cap = spec_of(&cfg, "billing.propose_late_fee_waiver");
    let cs = build_with(
        &cfg,
        "billing.propose_late_fee_waiver",
        json!({"invoice_id": "INV-3001", "reason": "r"}),
        &invoice_row(),
    )
    .unwrap();
    for (engine, next, sql) in [
        (
            Engine::Postgres,
            NextVersion::Increment,
            "UPDATE \"public\".\"invoices\" SET \"late_fee_cents\" = $1, \"waiver_reason\" = $2, \"waived_at\" = pg_catalog.now(), \"updated_at\" = \"updated_at\" + 1 WHERE \"id\" = CAST($3 AS text) AND \"tenant_id\"::pg_catalog.text = $4 AND \"updated_at\" IS NOT DISTINCT FROM CAST($5 AS timestamp with time zone)",
        ),
        (
            Engine::Postgres,
            NextVersion::Now,
            "UPDATE \"public\".\"invoices\" SET \"late_fee_cents\" = $1, \"waiver_reason\" = $2, \"waived_at\" = pg_catalog.now(), \"updated_at\" = pg_catalog.now() WHERE \"id\" = CAST($3 AS text) AND \"tenant_id\"::pg_catalog.text = $4 AND \"updated_at\" IS NOT DISTINCT FROM CAST($5 AS timestamp with time zone)",
        ),
        (
            Engine::Postgres,
            NextVersion::Database,
            "UPDATE \"public\".\"invoices\" SET \"late_fee_cents\" = $1, \"waiver_reason\" = $2, \"waived_at\" = pg_catalog.now() WHERE \"id\" = CAST($3 AS text) AND \"tenant_id\"::pg_catalog.text = $4 AND \"updated_at\" IS NOT DISTINCT FROM CAST($5 AS timestamp with time zone)",
        ),
        (
            Engine::Mysql,
            NextVersion::Now,
            "UPDATE `public`.`invoices` SET `late_fee_cents` = ?, `waiver_reason` = ?, `waived_at` = CURRENT_TIMESTAMP(6), `updated_at` = CURRENT_TIMESTAMP(6) WHERE `id` = ? AND CAST(`id` AS BINARY) = CAST(? AS BINARY) AND CAST(CAST(`tenant_id` AS CHAR) AS BINARY) = CAST(? AS BINARY) AND `updated_at` <=> ?",
        ),
        (
            Engine::Sqlite,
            NextVersion::Now,
            "UPDATE \"public\".\"invoices\" SET \"late_fee_cents\" = ?, \"waiver_reason\" = ?, \"waived_at\" = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), \"updated_at\" = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE \"id\" = ? AND CAST(\"tenant_id\" AS TEXT) = ? AND \"updated_at\" IS ?",
        ),
        (
            Engine::Sqlite,
            NextVersion::Database,
            "UPDATE \"public\".\"invoices\" SET \"late_fee_cents\" = ?, \"waiver_reason\" = ?, \"waived_at\" = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE \"id\" = ? AND CAST(\"tenant_id\" AS TEXT) = ? AND \"updated_at\" IS ?",
        ),
    ] {
        assert_eq!(
            writeback_update(&dialect(engine), cap, &cs, next).sql,
            sql,
            "{engine:?} {next:?}"
        );
    }
}

#[test]
fn next_version_follows_the_reviewed_strategy() {
    let args = json!({"invoice_id": "INV-3001", "reason": "r"});
    for (strategy, want) in [
        ("integer_increment", NextVersion::Increment),
        ("timestamp", NextVersion::Now),
        ("database_generated", NextVersion::Database),
    ] {
        let cfg = advancing(strategy);
        let mut row = invoice_row();
        row.insert("updated_at".into(), json!(7));
        let cs = build_with(&cfg, "billing.propose_late_fee_waiver", args.clone(), &row).unwrap();
        let cap = spec_of(&cfg, "billing.propose_late_fee_waiver");
        assert_eq!(NextVersion::for_change(cap, &cs), want, "{strategy}");
    }
    // Without a strategy: by the version's type, and the apply time without one.
    let cfg = kinds_config();
    let cap = spec_of(&cfg, "billing.propose_late_fee_waiver");
    let mut row = invoice_row();
    row.insert("updated_at".into(), json!(7));
    let cs = build_with(&cfg, "billing.propose_late_fee_waiver", args.clone(), &row).unwrap();
    assert_eq!(NextVersion::for_change(cap, &cs), NextVersion::Increment);
    let cs = build_with(
        &cfg,
        "billing.propose_late_fee_waiver",
        args,
        &invoice_row(),
    )
    .unwrap();
    assert_eq!(NextVersion::for_change(cap, &cs), NextVersion::Now);
    let mut cs = cs;
    cs.guards.expected_version = None;
    assert_eq!(NextVersion::for_change(cap, &cs), NextVersion::Now);
}

// ---------------------------------------------------------------------------
// Catalog texts

fn description(cfg: &Config, name: &str) -> String {
    Catalog::new(cfg, AliasMode::Canonical)
        .tools()
        .iter()
        .find(|t| t.name == name)
        .unwrap()
        .description
        .clone()
}

#[test]
fn catalog_describes_each_write_kind() {
    let cfg = kinds_config();
    assert_eq!(
        description(&cfg, INSERT),
        "Propose adding one new credit_notes record. Would set: amount_cents from `amount_cents`, memo from `memo`, created_at = the apply time. This does NOT change the database: it records a proposal that a person must approve (role billing_lead) before a separate process applies it."
    );
    assert_eq!(
        description(&cfg, DELETE),
        "Propose removing one invoices record, found by `invoice_id`. This does NOT change the database: it records a proposal that a person must approve (role billing_lead) before a separate process applies it."
    );
    assert_eq!(
        description(
            &stepped_config("increment_from_arg"),
            "support.propose_plan_credit"
        ),
        "Propose a change to one customers record, found by `customer_id`. Would set: plan_credit_cents + `credit_cents`, credit_reason from `reason`. This does NOT change the database: it records a proposal that a person must approve (role support_lead) before a separate process applies it."
    );
    assert_eq!(
        description(
            &stepped_config("decrement_from_arg"),
            "support.propose_plan_credit"
        ),
        "Propose a change to one customers record, found by `customer_id`. Would set: plan_credit_cents - `credit_cents`, credit_reason from `reason`. This does NOT change the database: it records a proposal that a person must approve (role support_lead) before a separate process applies it."
    );
    assert_eq!(
        description(&config_from(stamped), "billing.propose_late_fee_waiver"),
        "Propose a change to one invoices record, found by `invoice_id`. Would set: late_fee_cents = 0, waiver_reason from `reason`, waived_at = the apply time. This does NOT change the database: it records a proposal that a person must approve (role billing_lead) before a separate process applies it."
    );
}
