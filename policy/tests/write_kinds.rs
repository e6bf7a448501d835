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
use airlock_policy::bounded_set::{self, AggregateActual, SetMember};
use airlock_policy::canonical::hash_value;
use airlock_policy::catalog::{AliasMode, Catalog};
use airlock_policy::change_set::{
    ChangeSet, ColumnValue, DedupValue, Violation, ViolationCode, build, patch_value, verify,
};
use airlock_policy::config::{
    AggregateBound, Capability, ConflictGuard, ContextProvider, DedupComponent, DedupSource,
    Engine, Measure, Operation, OperationKind, PatchValue, SelectionTerm, SetSpec, VersionStrategy,
};
use airlock_policy::context::TrustedContext;
use airlock_policy::load::Loaded;
use airlock_policy::statement::{
    Bind, BoundStatement, LookupParam, NextVersion, WriteDialect, read_statement, select_row,
    select_set, set_members_query, writeback_delete, writeback_insert, writeback_update,
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
            set: None,
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
            set: None,
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
    assert_eq!(
        description(&config_from(with_set), SET),
        "Propose changing every tickets record a reviewed rule selects (at most 3, chosen by the rule, not by you). Would set: status = \"closed\", close_reason from `reason`. This does NOT change the database: it records a proposal that a person must approve (role billing_lead) before a separate process applies it."
    );
    assert_eq!(
        description(&config_from(set_delete), SET),
        "Propose removing every tickets record a reviewed rule selects (at most 2, chosen by the rule, not by you). This does NOT change the database: it records a proposal that a person must approve (role billing_lead) before a separate process applies it."
    );
}

// ---------------------------------------------------------------------------
// Bounded sets (`cardinality: "set"`): the loader, the frozen change set,
// its verification, the executor's membership and member checks, and SQL.

const SET: &str = "tickets.close_overdue";

fn set_cap() -> Value {
    json!({
        "name": SET,
        "kind": "proposal",
        "source": "app_postgres",
        "context": "local_operator",
        "target": {"schema": "public", "table": "tickets", "primary_key": "id", "tenant_key": "tenant_id"},
        "args": {
            "reason": {"type": "string", "required": true, "max_length": 200},
            "bonus": {"type": "integer", "required": false, "minimum": 1, "maximum": 50}
        },
        "visible_columns": ["id", "tenant_id", "status", "cost_cents", "version"],
        "evidence": "required",
        "max_rows": 1,
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
        "approval": {"mode": "human", "required_role": "billing_lead"}
    })
}

fn with_set(v: &mut Value) {
    v["capabilities"].as_array_mut().unwrap().push(set_cap());
}

fn set_delete(v: &mut Value) {
    with_set(v);
    let c = cap(v, ADDED);
    remove(c, "patch");
    remove(c, "allowed_columns");
    c["operation"] = json!({
        "kind": "delete",
        "cardinality": "set",
        "selection": {"keys": ["T-1", 7]},
        "max_rows": 2,
        "aggregate_bounds": [{"column": "cost_cents", "measure": "before", "maximum": 0}]
    });
}

#[test]
fn a_set_update_loads_exactly() {
    let (cfg, loaded) = accepted(with_set);
    assert_eq!(loaded.report.warnings().count(), 0, "{:#?}", loaded.report);
    let c = spec_of(&cfg, SET);
    assert_eq!(c.lookup_arg, "");
    assert_eq!(c.read_row_cap(), 3);
    let p = c.proposal.as_ref().unwrap();
    assert_eq!(
        p.set(),
        Some(&SetSpec {
            selection: vec![SelectionTerm {
                column: "status".into(),
                value: json!("overdue")
            }],
            keys: vec![],
            max_rows: 3,
            aggregate_bounds: vec![AggregateBound {
                column: "cost_cents".into(),
                measure: Measure::Before,
                maximum: 10000.0
            }],
        })
    );
    // A single-row capability reads its own max_rows.
    assert_eq!(
        spec_of(&cfg, "billing.propose_late_fee_waiver").read_row_cap(),
        1
    );
    assert_eq!(
        spec_of(&cfg, "billing.propose_late_fee_waiver")
            .proposal
            .as_ref()
            .unwrap()
            .set(),
        None
    );
}

#[test]
fn a_set_delete_freezes_each_row_with_nothing_after() {
    let (cfg, _) = accepted(|v| {
        set_delete(v);
        op(v)["aggregate_bounds"][0]["maximum"] = json!(100000);
    });
    let cap = cfg.capability(SET).unwrap();
    let args = validate_args(cap, Some(&json!({"reason": "r"}))).unwrap();
    let mut rows = tickets();
    for r in &mut rows {
        r.remove("close_reason");
    }
    rows[1].insert("id".into(), json!(7));
    let cs = bounded_set::build(cap, &args, &ctx("acme"), &rows[..2]).unwrap();
    let set = cs.set.as_ref().unwrap();
    assert_eq!(cs.operation, OperationKind::Delete);
    assert!(set.members.iter().all(|m| m.after.is_empty()), "{set:?}");
    assert_eq!(set.members[0].before["cost_cents"], json!(1000));
    assert!(cs.patch.is_empty());
    // Each member is the single-row DELETE guarded by its version.
    let m = bounded_set::member_change(cap, &cs, 1).unwrap();
    assert_eq!(m.target.primary_key.value, json!(7));
    assert!(m.patch.is_empty());
    assert_eq!(
        writeback_delete(&dialect(Engine::Sqlite), cap, &m).sql,
        "DELETE FROM \"public\".\"tickets\" WHERE \"id\" = ? AND CAST(\"tenant_id\" AS TEXT) = ? AND \"version\" IS ?"
    );
}

#[test]
fn a_set_delete_by_reviewed_keys_loads_exactly() {
    let (cfg, _) = accepted(set_delete);
    let p = spec_of(&cfg, SET).proposal.as_ref().unwrap();
    assert_eq!(p.kind(), OperationKind::Delete);
    let set = p.set().unwrap();
    assert_eq!(set.keys, vec![json!("T-1"), json!(7)]);
    assert!(set.selection.is_empty());
    assert_eq!(set.aggregate_bounds[0].maximum, 0.0);
    for (m, name) in [
        (Measure::Before, "before"),
        (Measure::After, "after"),
        (Measure::AbsoluteDelta, "absolute_delta"),
    ] {
        assert_eq!(m.as_str(), name);
    }
}

#[test]
fn handlers_receive_inserts_deletes_and_sets() {
    for add in [with_insert as fn(&mut Value), with_delete, with_set] {
        let (cfg, _) = accepted(|v| {
            add(v);
            v["executors"] = json!({"hook": {"type": "http_handler", "url_env": "HOOK_URL"}});
            cap(v, ADDED)["executor"] = json!("hook");
        });
        let c = &cfg.capabilities[ADDED];
        assert_eq!(
            c.proposal.as_ref().unwrap().executor.as_deref(),
            Some("hook")
        );
    }
}

#[test]
fn set_shapes_are_checked() {
    check_refused(&[
        Refused {
            what: "a batch insert",
            edit: |v| {
                with_insert(v);
                op(v)["cardinality"] = json!("set");
            },
            errors: &[(
                "$.capabilities[8].operation.cardinality",
                "batch inserts",
                "single-row insert",
            )],
        },
        Refused {
            what: "batch items",
            edit: |v| {
                with_set(v);
                op(v)["batch"] = json!({"items_from_arg": "items"});
            },
            errors: &[(
                "$.capabilities[8].operation.batch",
                "`batch` belongs to batch inserts",
                "remove `batch`",
            )],
        },
        Refused {
            what: "set keys on one row",
            edit: |v| {
                with_set(v);
                op(v)["cardinality"] = json!("single");
                cap(v, ADDED)["lookup"] = json!({"id_from_arg": "reason"});
            },
            errors: &[
                (
                    "$.capabilities[8].operation.selection",
                    "applies only to a bounded set",
                    "remove `selection`",
                ),
                (
                    "$.capabilities[8].operation.max_rows",
                    "applies only to a bounded set",
                    "remove `max_rows`",
                ),
                (
                    "$.capabilities[8].operation.aggregate_bounds",
                    "applies only to a bounded set",
                    "remove `aggregate_bounds`",
                ),
            ],
        },
        Refused {
            what: "no max_rows",
            edit: |v| {
                with_set(v);
                remove(op(v), "max_rows");
            },
            errors: &[(
                "$.capabilities[8].operation.max_rows",
                "missing required field `max_rows`",
                "1 to 100",
            )],
        },
        Refused {
            what: "max_rows over 100",
            edit: |v| {
                with_set(v);
                op(v)["max_rows"] = json!(101);
            },
            errors: &[(
                "$.capabilities[8].operation.max_rows",
                "from 1 to 100, found 101",
                "between 1 and 100",
            )],
        },
        Refused {
            what: "max_rows 0",
            edit: |v| {
                with_set(v);
                op(v)["max_rows"] = json!(0);
            },
            errors: &[(
                "$.capabilities[8].operation.max_rows",
                "from 1 to 100, found 0",
                "between 1 and 100",
            )],
        },
        Refused {
            what: "no selection",
            edit: |v| {
                with_set(v);
                remove(op(v), "selection");
            },
            errors: &[(
                "$.capabilities[8].operation.selection",
                "missing required field `selection`",
                "\"all\"",
            )],
        },
        Refused {
            what: "an empty selection",
            edit: |v| {
                with_set(v);
                op(v)["selection"] = json!({});
            },
            errors: &[(
                "$.capabilities[8].operation.selection",
                "needs `all`",
                "add \"all\"",
            )],
        },
        Refused {
            what: "no terms",
            edit: |v| {
                with_set(v);
                op(v)["selection"] = json!({"all": []});
            },
            errors: &[(
                "$.capabilities[8].operation.selection.all",
                "1 to 8 terms",
                "fixed `column = value` terms",
            )],
        },
        Refused {
            what: "nine terms",
            edit: |v| {
                with_set(v);
                let terms: Vec<Value> = (0..9)
                    .map(|i| json!({"column": format!("c{i}"), "operator": "eq", "value": i}))
                    .collect();
                op(v)["selection"] = json!({"all": terms});
            },
            errors: &[(
                "$.capabilities[8].operation.selection.all",
                "1 to 8 terms",
                "fixed `column = value` terms",
            )],
        },
        Refused {
            what: "a range",
            edit: |v| {
                with_set(v);
                op(v)["selection"]["all"][0]["operator"] = json!("gt");
            },
            errors: &[(
                "$.capabilities[8].operation.selection.all[0].operator",
                "unknown selection operator `gt`",
                "exact equality only",
            )],
        },
        Refused {
            what: "a boolean literal",
            edit: |v| {
                with_set(v);
                op(v)["selection"]["all"][0]["value"] = json!(true);
            },
            errors: &[(
                "$.capabilities[8].operation.selection.all[0].value",
                "a string or a number, found a boolean",
                "booleans and null are not supported",
            )],
        },
        Refused {
            what: "no literal",
            edit: |v| {
                with_set(v);
                remove(&mut op(v)["selection"]["all"][0], "value");
            },
            errors: &[(
                "$.capabilities[8].operation.selection.all[0].value",
                "missing required field `value`",
                "the reviewed literal",
            )],
        },
        Refused {
            what: "no operator",
            edit: |v| {
                with_set(v);
                remove(&mut op(v)["selection"]["all"][0], "operator");
            },
            errors: &[(
                "$.capabilities[8].operation.selection.all[0].operator",
                "missing required field `operator`",
                "\"eq\"",
            )],
        },
        Refused {
            what: "a column twice",
            edit: |v| {
                with_set(v);
                op(v)["selection"]["all"] = json!([
                    {"column": "status", "operator": "eq", "value": "overdue"},
                    {"column": "status", "operator": "eq", "value": "late"}
                ]);
            },
            errors: &[(
                "$.capabilities[8].operation.selection.all[1].column",
                "`status` appears twice",
                "one term",
            )],
        },
        Refused {
            what: "empty keys",
            edit: |v| {
                with_set(v);
                op(v)["selection"]["keys"] = json!([]);
            },
            errors: &[(
                "$.capabilities[8].operation.selection.keys",
                "`keys` is empty",
                "primary-key values",
            )],
        },
        Refused {
            what: "a key twice and a key that is no scalar",
            edit: |v| {
                with_set(v);
                op(v)["selection"]["keys"] = json!(["T-1", "T-1", {"id": 1}]);
            },
            errors: &[
                (
                    "$.capabilities[8].operation.selection.keys[1]",
                    "listed twice",
                    "once",
                ),
                (
                    "$.capabilities[8].operation.selection.keys[2]",
                    "a string or a number, found an object",
                    "primary-key value",
                ),
            ],
        },
        Refused {
            what: "more keys than rows",
            edit: |v| {
                with_set(v);
                op(v)["selection"]["keys"] = json!(["a", "b", "c", "d"]);
            },
            errors: &[(
                "$.capabilities[8].operation.selection.keys",
                "4 keys but `max_rows` is 3 (1 too many)",
                "raise `max_rows`",
            )],
        },
        Refused {
            what: "no aggregate bounds",
            edit: |v| {
                with_set(v);
                remove(op(v), "aggregate_bounds");
            },
            errors: &[(
                "$.capabilities[8].operation.aggregate_bounds",
                "missing required field `aggregate_bounds`",
                "at least one cap",
            )],
        },
        Refused {
            what: "no bound in the list",
            edit: |v| {
                with_set(v);
                op(v)["aggregate_bounds"] = json!([]);
            },
            errors: &[(
                "$.capabilities[8].operation.aggregate_bounds",
                "1 to 8 aggregate bounds",
                "cap the total",
            )],
        },
        Refused {
            what: "a bad measure, a negative maximum and none",
            edit: |v| {
                with_set(v);
                op(v)["aggregate_bounds"] = json!([
                    {"column": "cost_cents", "measure": "median", "maximum": 1},
                    {"column": "cost_cents", "measure": "after", "maximum": -1},
                    {"column": "cost_cents", "measure": "absolute_delta"}
                ]);
            },
            errors: &[
                (
                    "$.capabilities[8].operation.aggregate_bounds[0].measure",
                    "unknown measure `median`",
                    "\"absolute_delta\"",
                ),
                (
                    "$.capabilities[8].operation.aggregate_bounds[1].maximum",
                    "at least 0",
                    "largest total",
                ),
                (
                    "$.capabilities[8].operation.aggregate_bounds[2].maximum",
                    "missing required field `maximum`",
                    "largest total",
                ),
            ],
        },
        Refused {
            what: "a delete bounding its total after",
            edit: |v| {
                set_delete(v);
                op(v)["aggregate_bounds"][0]["measure"] = json!("after");
            },
            errors: &[(
                "$.capabilities[8].operation.aggregate_bounds[0].measure",
                "can only bound `before`",
                "\"before\"",
            )],
        },
        Refused {
            what: "a row-hash guard",
            edit: |v| {
                with_set(v);
                cap(v, ADDED)["conflict_guard"] = json!({"weak_guard_ack": true});
                remove(op(v), "version_advance");
            },
            errors: &[
                (
                    "$.capabilities[8].operation.cardinality",
                    "needs an exact version column",
                    "\"conflict_guard\"",
                ),
                (
                    "$.capabilities[8].operation.version_advance",
                    "advance an integer version by one",
                    "integer_increment",
                ),
            ],
        },
        Refused {
            what: "a timestamp version",
            edit: |v| {
                with_set(v);
                op(v)["version_advance"]["strategy"] = json!("timestamp");
            },
            errors: &[(
                "$.capabilities[8].operation.version_advance",
                "advance an integer version by one",
                "integer_increment",
            )],
        },
        Refused {
            what: "a lookup",
            edit: |v| {
                with_set(v);
                cap(v, ADDED)["lookup"] = json!({"id_from_arg": "reason"});
            },
            errors: &[(
                "$.capabilities[8].lookup",
                "chosen by its reviewed `operation.selection`",
                "remove `lookup`",
            )],
        },
        Refused {
            what: "hidden selection, aggregate and version columns",
            edit: |v| {
                with_set(v);
                cap(v, ADDED)["visible_columns"] = json!(["id", "tenant_id"]);
            },
            errors: &[(
                "$.capabilities[8].visible_columns",
                "`status` (selection), `cost_cents` (aggregate bound), `version` (conflict guard) are not visible",
                "add \"status\", \"cost_cents\", \"version\" to `visible_columns`",
            )],
        },
        Refused {
            what: "a set through a handler without an executor connection",
            edit: |v| {
                with_set(v);
                v["sources"]["handled"] =
                    json!({"engine": "postgres", "read_url_env": "HANDLED_READ_URL"});
                cap(v, ADDED)["source"] = json!("handled");
                v["executors"] = json!({"hook": {"type": "http_handler", "url_env": "HOOK_URL"}});
                cap(v, ADDED)["executor"] = json!("hook");
            },
            errors: &[(
                "$.capabilities[8].source",
                "has no `write_url_env`",
                "SELECT is enough",
            )],
        },
    ]);
}

fn set_config() -> Config {
    accepted(with_set).0
}

fn ticket(id: &str, cost: i64, version: i64) -> Map<String, Value> {
    obj(
        json!({"id": id, "tenant_id": "acme", "status": "overdue", "cost_cents": cost, "close_reason": null, "version": version}),
    )
}

fn tickets() -> Vec<Map<String, Value>> {
    vec![
        ticket("T-1", 1000, 1),
        ticket("T-2", 2500, 4),
        ticket("T-3", 500, 2),
    ]
}

fn set_cs(cfg: &Config, rows: &[Map<String, Value>]) -> Result<ChangeSet, Vec<Violation>> {
    let cap = cfg.capability(SET).unwrap();
    let args = validate_args(cap, Some(&json!({"reason": "quarter close"}))).unwrap();
    bounded_set::build(cap, &args, &ctx("acme"), rows)
}

#[test]
fn a_set_is_frozen_member_by_member() {
    let cfg = set_config();
    let cs = set_cs(&cfg, &tickets()).unwrap();
    let set = cs.set.as_ref().unwrap();
    assert_eq!(set.max_rows, 3);
    assert_eq!(set.row_count, 3);
    let keys: Vec<&Value> = set.members.iter().map(|m| &m.primary_key).collect();
    assert_eq!(keys, [&json!("T-1"), &json!("T-2"), &json!("T-3")]);
    assert_eq!(
        set.members[1],
        SetMember {
            primary_key: json!("T-2"),
            before: obj(
                json!({"tenant_id": "acme", "status": "overdue", "cost_cents": 2500, "close_reason": null, "version": 4})
            ),
            after: obj(
                json!({"tenant_id": "acme", "status": "closed", "cost_cents": 2500, "version": 4, "close_reason": "quarter close"})
            ),
        }
    );
    assert_eq!(
        set.aggregate_bounds,
        vec![AggregateActual {
            column: "cost_cents".into(),
            measure: Measure::Before,
            maximum: 10000.0,
            actual: json!(4000),
        }]
    );
    assert_eq!(set.set_digest, hash_value(&json!(set.members)));
    assert_eq!(cs.object_id(), format!("set_{}", &set.set_digest[7..15]));
    // What every member gets alike; the set itself has no one key or image.
    assert_eq!(
        cs.patch,
        obj(json!({"status": "closed", "close_reason": "quarter close"}))
    );
    assert_eq!(
        cs.target.primary_key,
        ColumnValue {
            column: "id".into(),
            value: Value::Null
        }
    );
    assert!(cs.before.is_empty() && cs.after.is_empty());
    assert_eq!(cs.guards.expected_version, None);
    assert_eq!(
        cs.guards.tenant,
        Some(ColumnValue {
            column: "tenant_id".into(),
            value: json!("acme")
        })
    );
    assert_eq!(cs.operation, OperationKind::Update);
    // The frozen set is in the proposal hash.
    let mut other = cs.clone();
    other.set.as_mut().unwrap().members[0]
        .before
        .insert("version".into(), json!(2));
    assert_ne!(other.hash(), cs.hash());
    // A single-row change set carries no set, and its key is its object id.
    let one = build_with(
        &cfg,
        "billing.propose_late_fee_waiver",
        json!({"invoice_id": "INV-3001", "reason": "r"}),
        &invoice_row(),
    )
    .unwrap();
    assert!(one.set.is_none());
    assert_eq!(one.object_id(), "INV-3001");
    assert!(!serde_json::to_string(&one).unwrap().contains("\"set\""));
}

#[test]
fn a_set_is_refused_when_it_is_not_exactly_what_was_reviewed() {
    let cfg = set_config();
    let codes = |rows: Vec<Map<String, Value>>| -> Vec<(ViolationCode, String)> {
        set_cs(&cfg, &rows)
            .unwrap_err()
            .into_iter()
            .map(|v| (v.code, v.path))
            .collect()
    };
    let msg = |rows: Vec<Map<String, Value>>| -> String {
        set_cs(&cfg, &rows).unwrap_err()[0].message.clone()
    };
    assert!(msg(vec![]).contains("matches no row"));
    let mut four = tickets();
    four.push(ticket("T-4", 1, 1));
    assert!(msg(four).contains("more than 3 rows"));
    let mut loud = tickets();
    loud[1].insert("status".into(), json!("OVERDUE"));
    assert_eq!(
        codes(loud),
        [(
            ViolationCode::SetMismatch,
            "set.members[1].before".to_owned()
        )]
    );
    let mut theirs = tickets();
    theirs[2].insert("tenant_id".into(), json!("globex"));
    assert_eq!(
        codes(theirs),
        [(
            ViolationCode::TenantMismatch,
            "set.members[2].guards.tenant".to_owned()
        )]
    );
    let mut twice = tickets();
    twice[2] = ticket("T-1", 1, 1);
    assert_eq!(
        codes(twice),
        [(
            ViolationCode::SetMismatch,
            "set.members[2].primary_key".to_owned()
        )]
    );
    let mut keyless = tickets();
    keyless[0].insert("id".into(), Value::Null);
    assert_eq!(
        codes(keyless),
        [(
            ViolationCode::SetMismatch,
            "set.members[0].primary_key".to_owned()
        )]
    );
    let mut short = tickets();
    short[0].remove("cost_cents");
    assert_eq!(
        codes(short),
        [(
            ViolationCode::MissingColumn,
            "set.members[0].before.cost_cents".to_owned()
        )]
    );
    let mut extra = tickets();
    extra[0].insert("secret".into(), json!(1));
    assert_eq!(
        codes(extra),
        [(
            ViolationCode::UnexpectedColumn,
            "set.members[0].before.secret".to_owned()
        )]
    );
    let mut nested = tickets();
    nested[0].insert("status".into(), json!(["overdue"]));
    assert_eq!(codes(nested)[0].0, ViolationCode::UnexpectedColumn);
    let mut text_cost = tickets();
    text_cost[1].insert("cost_cents".into(), json!("lots"));
    assert_eq!(
        codes(text_cost.clone()),
        [(
            ViolationCode::InvalidValue,
            "set.aggregate_bounds[0]".to_owned()
        )]
    );
    assert!(msg(text_cost).contains("T-2"));
    let dear = vec![ticket("T-1", 6000, 1), ticket("T-2", 4001, 1)];
    assert_eq!(
        codes(dear.clone()),
        [(
            ViolationCode::AggregateBound,
            "set.aggregate_bounds[0]".to_owned()
        )]
    );
    assert!(msg(dear).contains(
        "the set's total before of `cost_cents` is 10001; the reviewed maximum is 10000"
    ));
    // Exactly at the bound passes; decimals arriving as text count.
    let at = vec![ticket("T-1", 6000, 1), ticket("T-2", 4000, 1)];
    assert_eq!(
        set_cs(&cfg, &at).unwrap().set.unwrap().aggregate_bounds[0].actual,
        json!(10000)
    );
    let mut decimal = at.clone();
    decimal[0].insert("cost_cents".into(), json!("5999.5"));
    assert_eq!(
        set_cs(&cfg, &decimal)
            .unwrap()
            .set
            .unwrap()
            .aggregate_bounds[0]
            .actual,
        json!(9999.5)
    );
    // A null version cannot guard a member.
    let mut unversioned = tickets();
    unversioned[0].insert("version".into(), Value::Null);
    assert_eq!(codes(unversioned)[0].0, ViolationCode::MissingVersion);
    // A member already closed would change nothing.
    let mut closed = tickets();
    closed[0].insert("status".into(), json!("closed"));
    assert_eq!(
        codes(closed)[0],
        (
            ViolationCode::SetMismatch,
            "set.members[0].before".to_owned()
        )
    );
    // `build` refuses a set capability; the set builder a single-row one.
    let err = build_with(&cfg, SET, json!({"reason": "r"}), &tickets()[0]).unwrap_err();
    assert_eq!(err[0].code, ViolationCode::SetMismatch);
    let waiver = cfg.capability("billing.propose_late_fee_waiver").unwrap();
    let args = validate_args(
        waiver,
        Some(&json!({"invoice_id": "INV-3001", "reason": "r"})),
    )
    .unwrap();
    assert_eq!(
        bounded_set::build(waiver, &args, &ctx("acme"), &[invoice_row()]).unwrap_err()[0].code,
        ViolationCode::SetMismatch
    );
}

fn stepped_set() -> Config {
    accepted(|v| {
        with_set(v);
        let c = cap(v, ADDED);
        c["patch"] = json!({"cost_cents": {"decrement_from_arg": "bonus"}});
        c["allowed_columns"] = json!(["cost_cents"]);
        c["numeric_bounds"] = json!({"cost_cents": {"minimum": 0, "maximum": 100000}});
        c["args"]["bonus"]["required"] = json!(true);
        op(v)["aggregate_bounds"] = json!([
            {"column": "cost_cents", "measure": "after", "maximum": 3960},
            {"column": "cost_cents", "measure": "absolute_delta", "maximum": 40}
        ]);
    })
    .0
}

#[test]
fn after_and_delta_bounds_add_up_each_members_step() {
    let cfg = stepped_set();
    let cap = cfg.capability(SET).unwrap();
    let args = validate_args(cap, Some(&json!({"reason": "r", "bonus": 10}))).unwrap();
    let rows: Vec<Map<String, Value>> = tickets()
        .into_iter()
        .map(|mut r| {
            r.remove("close_reason");
            r
        })
        .collect();
    let cs = bounded_set::build(cap, &args, &ctx("acme"), &rows[..2]).unwrap();
    let set = cs.set.as_ref().unwrap();
    assert_eq!(set.members[0].after["cost_cents"], json!(990));
    assert_eq!(set.members[1].after["cost_cents"], json!(2490));
    let actual: Vec<&Value> = set.aggregate_bounds.iter().map(|b| &b.actual).collect();
    assert_eq!(actual, [&json!(3480), &json!(20)]);
    // A step's result differs per member: it is not in the shared patch.
    assert!(cs.patch.is_empty());
    let member = bounded_set::member_change(cap, &cs, 1).unwrap();
    assert_eq!(member.patch, obj(json!({"cost_cents": 2490})));
    // Five members' worth of delta (50) is over 40.
    let args = validate_args(cap, Some(&json!({"reason": "r", "bonus": 25}))).unwrap();
    let err = bounded_set::build(cap, &args, &ctx("acme"), &rows[..2]).unwrap_err();
    assert_eq!(
        err.iter().map(|v| v.path.as_str()).collect::<Vec<_>>(),
        ["set.aggregate_bounds[1]"]
    );
    assert!(
        err[0]
            .message
            .contains("absolute_delta of `cost_cents` is 50")
    );
    // Decimals (floats) step and add up the same way.
    let mut floats = rows.clone();
    floats[0].insert("cost_cents".into(), json!(1000.5));
    let args10 = validate_args(cap, Some(&json!({"reason": "r", "bonus": 10}))).unwrap();
    let cs = bounded_set::build(cap, &args10, &ctx("acme"), &floats[..2]).unwrap();
    let actual: Vec<&Value> = cs
        .set
        .as_ref()
        .unwrap()
        .aggregate_bounds
        .iter()
        .map(|b| &b.actual)
        .collect();
    assert_eq!(actual, [&json!(3480.5), &json!(20.0)]);
    // And the total after is bounded: 990 + 2490 + 490 = 3970 > 3960.
    let args = validate_args(cap, Some(&json!({"reason": "r", "bonus": 10}))).unwrap();
    let err = bounded_set::build(cap, &args, &ctx("acme"), &rows).unwrap_err();
    assert_eq!(err[0].path, "set.aggregate_bounds[0]");
    assert!(
        err[0].message.contains("after of `cost_cents` is 3970"),
        "{err:?}"
    );
}

#[test]
fn a_submitted_set_passes_only_as_the_executor_rebuilds_it() {
    let cfg = set_config();
    let honest = set_cs(&cfg, &tickets()).unwrap();
    assert_eq!(verify(&cfg, &honest, &anyone).unwrap(), honest);
    type Edit = fn(&mut ChangeSet);
    let cases: [(&str, Edit, ViolationCode, &str); 12] = [
        (
            "after",
            |cs| {
                cs.set.as_mut().unwrap().members[0]
                    .after
                    .insert("status".into(), json!("paid"));
            },
            ViolationCode::AfterMismatch,
            "set.members[0].after",
        ),
        (
            "total",
            |cs| cs.set.as_mut().unwrap().aggregate_bounds[0].actual = json!(1),
            ViolationCode::GuardMismatch,
            "set.aggregate_bounds",
        ),
        (
            "digest",
            |cs| cs.set.as_mut().unwrap().set_digest = "sha256:00".into(),
            ViolationCode::SetMismatch,
            "set.set_digest",
        ),
        (
            "count",
            |cs| cs.set.as_mut().unwrap().row_count = 2,
            ViolationCode::SetMismatch,
            "set.set_digest",
        ),
        (
            "cap",
            |cs| cs.set.as_mut().unwrap().max_rows = 2,
            ViolationCode::SetMismatch,
            "set.set_digest",
        ),
        (
            "target",
            |cs| cs.target.table = "invoices".into(),
            ViolationCode::GuardMismatch,
            "target",
        ),
        (
            "patch",
            |cs| {
                cs.patch.insert("status".into(), json!("paid"));
            },
            ViolationCode::GuardMismatch,
            "patch",
        ),
        (
            "before",
            |cs| {
                cs.before.insert("status".into(), json!("x"));
            },
            ViolationCode::GuardMismatch,
            "before",
        ),
        (
            "after top",
            |cs| {
                cs.after.insert("status".into(), json!("x"));
            },
            ViolationCode::GuardMismatch,
            "after",
        ),
        (
            "guards",
            |cs| cs.guards.allowed_columns.clear(),
            ViolationCode::GuardMismatch,
            "guards",
        ),
        (
            "operation",
            |cs| cs.operation = OperationKind::Delete,
            ViolationCode::GuardMismatch,
            "operation",
        ),
        (
            "apply time",
            |cs| cs.apply_time.push("status".into()),
            ViolationCode::GuardMismatch,
            "apply_time",
        ),
    ];
    for (what, edit, code, path) in cases {
        let mut cs = honest.clone();
        edit(&mut cs);
        let err = verify(&cfg, &cs, &anyone).unwrap_err();
        assert!(
            err.iter().any(|v| v.code == code && v.path == path),
            "{what}: {err:#?}"
        );
    }
    // Too many members, another tenant, bad arguments: refused first.
    let mut many = honest.clone();
    let m = many.set.as_ref().unwrap().members[0].clone();
    many.set.as_mut().unwrap().members.push(m);
    assert_eq!(
        verify(&cfg, &many, &anyone).unwrap_err()[0],
        viol(
            ViolationCode::SetMismatch,
            "set.members",
            "a set holds at most 3 members"
        )
    );
    assert_eq!(
        verify(&cfg, &honest, &|_| false).unwrap_err()[0].code,
        ViolationCode::TenantNotClaimable
    );
    let mut bad_args = honest.clone();
    bad_args.args.insert("reason".into(), json!(7));
    assert_eq!(
        verify(&cfg, &bad_args, &anyone).unwrap_err()[0].code,
        ViolationCode::InvalidArgument
    );
    // A set capability without its set, and a set on a single-row one.
    let mut bare = honest.clone();
    bare.set = None;
    let err = verify(&cfg, &bare, &anyone).unwrap_err();
    assert_eq!(
        (err[0].code, err[0].path.as_str()),
        (ViolationCode::SetMismatch, "set")
    );
    assert!(err[0].message.contains("must carry its frozen members"));
    let mut waiver = build_with(
        &cfg,
        "billing.propose_late_fee_waiver",
        json!({"invoice_id": "INV-3001", "reason": "r"}),
        &invoice_row(),
    )
    .unwrap();
    waiver.set = honest.set.clone();
    let err = verify(&cfg, &waiver, &anyone).unwrap_err();
    assert!(
        err[0].message.contains("changes one row, not a set"),
        "{err:?}"
    );
    // A re-sealed lie is consistent on its face: only the source catches it.
    let mut rows = tickets();
    rows[0].insert("cost_cents".into(), json!(1));
    let resealed = set_cs(&cfg, &rows).unwrap();
    assert!(verify(&cfg, &resealed, &anyone).is_ok());
}

#[test]
fn membership_is_exactly_the_frozen_keys_in_order() {
    let cfg = set_config();
    let cs = set_cs(&cfg, &tickets()).unwrap();
    let k = |ks: &[&str]| ks.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        bounded_set::judge_membership(&cs, &k(&["T-1", "T-2", "T-3"])),
        Ok(())
    );
    let msg = |ks: &[&str]| {
        bounded_set::judge_membership(&cs, &k(ks))
            .unwrap_err()
            .message
    };
    assert!(msg(&["T-1", "T-3", "T-2"]).starts_with("the members are not in primary-key order"));
    assert!(
        msg(&["T-1", "T-2"])
            .starts_with("members `T-3` are not rows the reviewed selection matches")
    );
    let two = set_cs(&cfg, &tickets()[..2]).unwrap();
    assert!(
        bounded_set::judge_membership(&two, &k(&["T-1", "T-2", "T-9"]))
            .unwrap_err()
            .message
            .starts_with("rows `T-9` match the reviewed selection but are not members")
    );
    assert!(msg(&["T-1", "T-2", "T-9"]).starts_with(
        "members `T-3` are not rows the reviewed selection matches, and rows `T-9` are missing"
    ));
    assert!(msg(&["a", "b", "c", "d"]).contains("now matches more than 3 rows"));
    let err = bounded_set::judge_membership(&cs, &k(&["T-1"])).unwrap_err();
    assert_eq!(
        (err.code, err.path.as_str()),
        (ViolationCode::SetMismatch, "set.members")
    );
    let one = build_with(
        &cfg,
        "billing.propose_late_fee_waiver",
        json!({"invoice_id": "INV-3001", "reason": "r"}),
        &invoice_row(),
    )
    .unwrap();
    assert!(bounded_set::judge_membership(&one, &[]).is_err());
}

#[test]
fn each_member_is_checked_and_written_as_one_row() {
    let cfg = set_config();
    let cap = cfg.capability(SET).unwrap();
    let cs = set_cs(&cfg, &tickets()).unwrap();
    let m = bounded_set::member_change(cap, &cs, 1).unwrap();
    assert_eq!(
        m.target.primary_key,
        ColumnValue {
            column: "id".into(),
            value: json!("T-2")
        }
    );
    assert_eq!(
        m.guards.expected_version,
        Some(ColumnValue {
            column: "version".into(),
            value: json!(4)
        })
    );
    assert_eq!(
        m.patch,
        obj(json!({"status": "closed", "close_reason": "quarter close"}))
    );
    assert_eq!(m.before, cs.set.as_ref().unwrap().members[1].before);
    assert!(m.set.is_none());
    assert_eq!(m.guards.tenant, cs.guards.tenant);
    assert!(bounded_set::member_change(cap, &cs, 3).is_none());
    let checks: Vec<(String, String, Value)> = bounded_set::member_checks(&m)
        .into_iter()
        .map(|c| (c.label, c.column, c.expected))
        .collect();
    assert_eq!(
        checks,
        [
            ("version".to_owned(), "version".to_owned(), json!(4)),
            (
                "before:tenant_id".to_owned(),
                "tenant_id".to_owned(),
                json!("acme")
            ),
            (
                "before:status".to_owned(),
                "status".to_owned(),
                json!("overdue")
            ),
            (
                "before:cost_cents".to_owned(),
                "cost_cents".to_owned(),
                json!(2500)
            ),
            (
                "before:close_reason".to_owned(),
                "close_reason".to_owned(),
                Value::Null
            ),
        ]
    );
    // The write of a member is the single-row UPDATE guarded by its version.
    let stmt = writeback_update(&dialect(Engine::Postgres), cap, &m, NextVersion::Increment);
    assert_eq!(
        stmt.sql,
        "UPDATE \"public\".\"tickets\" SET \"status\" = $1, \"close_reason\" = $2, \"version\" = \"version\" + 1 WHERE \"id\" = CAST($3 AS text) AND \"tenant_id\"::pg_catalog.text = $4 AND \"version\" IS NOT DISTINCT FROM $5"
    );
}

#[test]
fn the_selection_matches_exactly() {
    let cfg = set_config();
    let cap = cfg.capability(SET).unwrap();
    assert!(bounded_set::selection_matches(cap, &ticket("T-1", 1, 1)));
    let mut loud = ticket("T-1", 1, 1);
    loud.insert("status".into(), json!("Overdue"));
    assert!(!bounded_set::selection_matches(cap, &loud));
    let mut gone = ticket("T-1", 1, 1);
    gone.remove("status");
    assert!(!bounded_set::selection_matches(cap, &gone));
    let (keyed, _) = accepted(set_delete);
    let keyed = keyed.capability(SET).unwrap();
    assert!(bounded_set::selection_matches(
        keyed,
        &obj(json!({"id": "T-1"}))
    ));
    assert!(bounded_set::selection_matches(
        keyed,
        &obj(json!({"id": 7}))
    ));
    assert!(bounded_set::selection_matches(
        keyed,
        &obj(json!({"id": "7"}))
    ));
    assert!(!bounded_set::selection_matches(
        keyed,
        &obj(json!({"id": "T-2"}))
    ));
    // A number term is no string, and a string term no number.
    let (num, _) = accepted(|v| {
        with_set(v);
        op(v)["selection"]["all"][0] =
            json!({"column": "cost_cents", "operator": "eq", "value": 5});
    });
    let num = num.capability(SET).unwrap();
    assert!(bounded_set::selection_matches(
        num,
        &obj(json!({"cost_cents": 5}))
    ));
    assert!(bounded_set::selection_matches(
        num,
        &obj(json!({"cost_cents": 5.0}))
    ));
    assert!(!bounded_set::selection_matches(
        num,
        &obj(json!({"cost_cents": "5"}))
    ));
    let waiver = cfg.capability("billing.propose_late_fee_waiver").unwrap();
    assert!(!bounded_set::selection_matches(waiver, &invoice_row()));
}

#[test]
fn set_sql_is_exact() {
    let cfg = set_config();
    let sc = cfg.capability(SET).unwrap();
    let set = sc.proposal.as_ref().unwrap().set().unwrap();
    let pg = read_statement(Engine::Postgres, sc);
    assert_eq!(
        pg.sql,
        "SELECT \"id\", \"tenant_id\", \"status\", \"cost_cents\", \"version\", \"close_reason\" FROM \"public\".\"tickets\" WHERE \"status\" = $1 AND \"tenant_id\"::text = $2 ORDER BY \"id\" LIMIT 4"
    );
    assert_eq!(pg.params, [LookupParam::Selection(0), LookupParam::Tenant]);
    assert_eq!(pg, select_set(Engine::Postgres, sc, set));
    let (keyed, _) = accepted(|v| {
        with_set(v);
        op(v)["selection"]["keys"] = json!(["T-1", "T-2"]);
        cap(v, ADDED)["target"]["principal_scope_key"] = json!("owner");
    });
    let kc = keyed.capability(SET).unwrap();
    let my = read_statement(Engine::Mysql, kc);
    assert!(
        my.sql.ends_with("WHERE `status` = ? AND `id` IN (?, ?) AND CAST(CAST(`tenant_id` AS CHAR) AS BINARY) = CAST(? AS BINARY) AND CAST(CAST(`owner` AS CHAR) AS BINARY) = CAST(? AS BINARY) ORDER BY `id` LIMIT 4"),
        "{}",
        my.sql
    );
    assert_eq!(
        my.params,
        [
            LookupParam::Selection(0),
            LookupParam::SetKey(0),
            LookupParam::SetKey(1),
            LookupParam::Tenant,
            LookupParam::Principal
        ]
    );
    // A single-row capability reads its row by key.
    let waiver = cfg.capability("billing.propose_late_fee_waiver").unwrap();
    assert_eq!(
        read_statement(Engine::Sqlite, waiver),
        select_row(Engine::Sqlite, waiver, false)
    );

    // The executor's run of the selection: exact, NULL-free literals.
    let q = set_members_query(
        &dialect(Engine::Postgres),
        kc,
        kc.proposal.as_ref().unwrap().set().unwrap(),
        "acme",
        "agent_17",
    );
    assert_eq!(
        q.sql,
        "SELECT pg_catalog.to_json(\"id\") #>> '{}' FROM \"public\".\"tickets\" WHERE \"status\" = $1 AND (\"id\" = CAST($2 AS text) OR \"id\" = CAST($3 AS text)) AND \"tenant_id\"::pg_catalog.text = $4 AND \"owner\"::pg_catalog.text = $5 ORDER BY \"id\" LIMIT 4"
    );
    assert_eq!(
        q.binds,
        [
            b("status", json!("overdue")),
            b("id", json!("T-1")),
            b("id", json!("T-2")),
            Bind {
                column: None,
                value: json!("acme")
            },
            Bind {
                column: None,
                value: json!("agent_17")
            },
        ]
    );
    let my = set_members_query(&dialect(Engine::Mysql), sc, set, "acme", "p");
    assert_eq!(
        my.sql,
        "SELECT CAST(`id` AS CHAR) FROM `public`.`tickets` WHERE `status` = ? AND CAST(CAST(`tenant_id` AS CHAR) AS BINARY) = CAST(? AS BINARY) ORDER BY `id` LIMIT 4"
    );
    let text_types = |c: &str| (c == "status").then(|| "varchar(32)".to_owned());
    let mysql_text = WriteDialect {
        engine: Engine::Mysql,
        column_type: &text_types,
    };
    let my = set_members_query(&mysql_text, sc, set, "acme", "p");
    assert!(
        my.sql
            .contains("WHERE (`status` = ? AND CAST(`status` AS BINARY) = CAST(? AS BINARY)) AND"),
        "{}",
        my.sql
    );
    assert_eq!(my.binds.len(), 3);
    let lite = set_members_query(&dialect(Engine::Sqlite), sc, set, "acme", "p");
    assert_eq!(
        lite.sql,
        "SELECT CAST(\"id\" AS TEXT) FROM \"public\".\"tickets\" WHERE \"status\" = ? AND CAST(\"tenant_id\" AS TEXT) = ? ORDER BY \"id\" LIMIT 4"
    );
}

#[test]
fn the_diff_a_person_reads_shows_what_each_kind_changes() {
    let d = |rows: &[(&str, Value, Value)]| -> Vec<(String, Value, Value)> {
        rows.iter()
            .map(|(c, b, a)| ((*c).to_owned(), b.clone(), a.clone()))
            .collect()
    };
    // An update: each patched column before → after, apply time named.
    let cfg = config_from(stamped);
    let waiver = build_with(
        &cfg,
        "billing.propose_late_fee_waiver",
        json!({"invoice_id": "INV-3001", "reason": "r"}),
        &invoice_row(),
    )
    .unwrap();
    assert_eq!(
        waiver.diff(),
        d(&[
            ("late_fee_cents", json!(5500), json!(0)),
            ("waiver_reason", Value::Null, json!("r")),
            ("waived_at", Value::Null, json!("(apply time)")),
        ])
    );
    // A delete: every column read goes to null.
    let kinds = kinds_config();
    let gone = delete_cs(&kinds).diff();
    assert!(!gone.is_empty() && gone.iter().all(|(_, _, a)| a.is_null()));
    assert!(gone.contains(&("status".to_owned(), json!("overdue"), Value::Null)));
    // An insert: the new values, nothing before.
    let added = insert_cs(&kinds).diff();
    assert!(added.contains(&("amount_cents".to_owned(), Value::Null, json!(250))));
    assert!(added.contains(&("created_at".to_owned(), Value::Null, json!("(apply time)"))));
    // A set: each member's changed columns only, by key.
    let set = set_cs(&set_config(), &tickets()[..2]).unwrap();
    assert_eq!(
        set.diff(),
        d(&[
            ("T-1.status", json!("overdue"), json!("closed")),
            ("T-1.close_reason", Value::Null, json!("quarter close")),
            ("T-2.status", json!("overdue"), json!("closed")),
            ("T-2.close_reason", Value::Null, json!("quarter close")),
        ])
    );
    // A set delete: every member column to null.
    let (del_cfg, _) = accepted(|v| {
        set_delete(v);
        op(v)["aggregate_bounds"][0]["maximum"] = json!(100000);
    });
    let dc = del_cfg.capability(SET).unwrap();
    let args = validate_args(dc, Some(&json!({"reason": "r"}))).unwrap();
    let mut rows = tickets();
    rows[0].remove("close_reason");
    let removed = bounded_set::build(dc, &args, &ctx("acme"), &rows[..1])
        .unwrap()
        .diff();
    assert!(removed.contains(&("T-1.status".to_owned(), json!("overdue"), Value::Null)));
    assert!(
        removed
            .iter()
            .all(|(c, _, a)| c.starts_with("T-1.") && a.is_null())
    );
    // A set stamping the apply time shows it per member.
    let (stamped_set, _) = accepted(|v| {
        with_set(v);
        cap(v, ADDED)["patch"]["close_reason"] = json!({"apply_time": true});
    });
    let sc = stamped_set.capability(SET).unwrap();
    let args = validate_args(sc, Some(&json!({"reason": "r"}))).unwrap();
    let stamped = bounded_set::build(sc, &args, &ctx("acme"), &tickets()[..1])
        .unwrap()
        .diff();
    assert!(stamped.contains(&(
        "T-1.close_reason".to_owned(),
        Value::Null,
        json!("(apply time)")
    )));
}
