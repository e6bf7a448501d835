//! Named aggregate reads (`kind: "aggregate_read"`): every rule of the
//! loader, the statement per engine (pinned), the suppression decision
//! over decoded rows, the executor's check of evidence rows, and the
//! catalog texts.
//!
//! Every case starts from the repository's reference config plus one added
//! capability (Synapsor Runner's own example shape unless the case says
//! otherwise), and states the outcome written out by hand.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use airlock_policy::aggregate_read::{
    AggregateSpec, CountMode, DEFAULT_MAX_GROUPS, Function, ReleaseError, Released,
    aggregate_number, check_evidence_rows, data_schema, describe_suffix, release,
    reviewed_selection, statement, what,
};
use airlock_policy::catalog::{AliasMode, Catalog};
use airlock_policy::config::{Capability, Engine, EvidenceMode, Kind, SelectionTerm};
use airlock_policy::load::Loaded;
use airlock_policy::statement::{LookupParam, read_statement};
use airlock_policy::{Config, load_config};
use serde_json::{Map, Value, json};

const REFERENCE: &str = include_str!("../../tests/fixtures/reference/airlock.reference.json");

/// Index of the capability a test appends to the reference config.
const ADDED: usize = 8;
const TOTAL: &str = "billing.overdue_balance_total";
const AT: &str = "$.capabilities[8]";

fn reference() -> Value {
    serde_json::from_str(REFERENCE).unwrap()
}

/// Synapsor Runner's own example (`packages/config` tests): the overdue
/// late-fee total of the trusted tenant, withheld under five invoices.
fn runner_example() -> Value {
    json!({
        "name": TOTAL,
        "kind": "aggregate_read",
        "source": "app_postgres",
        "target": {"schema": "public", "table": "invoices", "primary_key": "id", "tenant_key": "tenant_id"},
        "args": {},
        "visible_columns": [],
        "evidence": "required",
        "aggregate": {
            "function": "sum",
            "column": "late_fee_cents",
            "minimum_group_size": 5,
            "selection": {"all": [{"column": "status", "operator": "eq", "value": "overdue"}]}
        }
    })
}

fn edited(edit: impl FnOnce(&mut Value)) -> Loaded {
    let mut v = reference();
    v["capabilities"]
        .as_array_mut()
        .unwrap()
        .push(runner_example());
    edit(&mut v["capabilities"][ADDED]);
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

fn added(cfg: &Config) -> &Capability {
    cfg.capabilities.last().expect("the added capability")
}

fn spec(cfg: &Config) -> &AggregateSpec {
    added(cfg).aggregate.as_ref().expect("an aggregate")
}

fn warnings(loaded: &Loaded) -> Vec<(String, String, String)> {
    loaded
        .report
        .warnings()
        .map(|d| (d.path.clone(), d.message.clone(), d.fix.clone()))
        .collect()
}

fn agg(v: &mut Value) -> &mut Value {
    &mut v["aggregate"]
}

fn remove(v: &mut Value, key: &str) {
    v.as_object_mut().unwrap().remove(key).expect("key present");
}

fn term(column: &str, value: Value) -> Value {
    json!({"column": column, "operator": "eq", "value": value})
}

// ---------------------------------------------------------------------------
// Loader: accepted shapes, exactly.

#[test]
fn synapsors_example_loads_exactly() {
    let (cfg, loaded) = accepted(|_| {});
    assert_eq!(warnings(&loaded), vec![], "no warning");
    let c = added(&cfg);
    assert_eq!(c.name, TOTAL);
    assert_eq!(c.kind, Kind::AggregateRead);
    assert_eq!(c.kind.as_str(), "aggregate_read");
    assert!(c.args.is_empty() && c.visible_columns.is_empty());
    assert_eq!(c.lookup_arg, "");
    assert_eq!(c.evidence, EvidenceMode::Required);
    assert!(c.proposal.is_none());
    assert_eq!(
        spec(&cfg),
        &AggregateSpec {
            function: Function::Sum,
            count_mode: None,
            column: Some("late_fee_cents".into()),
            selection: vec![SelectionTerm {
                column: "status".into(),
                value: json!("overdue")
            }],
            minimum_group_size: 5,
            group_by: vec![],
            max_groups: DEFAULT_MAX_GROUPS,
        }
    );
    assert_eq!(DEFAULT_MAX_GROUPS, 50);
    // The statement names its columns; an ungrouped read records one row.
    assert_eq!(
        c.read_columns(),
        ["id", "tenant_id", "status", "late_fee_cents"]
    );
    assert_eq!(c.read_row_cap(), 1);
    assert_eq!(reviewed_selection(c), spec(&cfg).selection.as_slice());
    // The other capabilities carry no aggregate and no reviewed selection.
    let inspect = cfg.capability("billing.inspect_invoice").unwrap();
    assert!(inspect.aggregate.is_none());
    assert!(reviewed_selection(inspect).is_empty());
    // The serialized capability names its aggregate; others are unchanged.
    let s = serde_json::to_value(c).unwrap();
    assert_eq!(s["kind"], "aggregate_read");
    assert_eq!(
        s["aggregate"],
        json!({"function": "sum", "column": "late_fee_cents", "selection": [{"column": "status", "value": "overdue"}], "minimum_group_size": 5, "max_groups": 50})
    );
    assert!(
        serde_json::to_value(inspect)
            .unwrap()
            .get("aggregate")
            .is_none()
    );
}

#[test]
fn synapsors_count_of_rows_loads_without_a_column_or_selection() {
    let (cfg, loaded) = accepted(|c| {
        c["aggregate"] =
            json!({"function": "count", "count_mode": "rows", "minimum_group_size": 5});
    });
    assert_eq!(warnings(&loaded), vec![]);
    let s = spec(&cfg);
    assert_eq!(s.function, Function::Count);
    assert_eq!(s.count_mode, Some(CountMode::Rows));
    assert_eq!(s.column, None);
    assert!(s.selection.is_empty() && s.group_by.is_empty());
    assert_eq!(added(&cfg).read_columns(), ["id", "tenant_id"]);
}

#[test]
fn a_count_of_non_null_values_names_its_column() {
    let (cfg, _) = accepted(|c| {
        c["aggregate"] = json!({"function": "count", "count_mode": "non_null", "column": "waiver_reason", "minimum_group_size": 3});
    });
    let s = spec(&cfg);
    assert_eq!(
        (s.function, s.count_mode, s.column.as_deref()),
        (
            Function::Count,
            Some(CountMode::NonNull),
            Some("waiver_reason")
        )
    );
    assert_eq!(s.minimum_group_size, 3);
}

#[test]
fn every_function_parses_and_prints_its_name() {
    for (name, f) in [
        ("count", Function::Count),
        ("sum", Function::Sum),
        ("avg", Function::Avg),
        ("min", Function::Min),
        ("max", Function::Max),
    ] {
        assert_eq!(Function::parse(name), Some(f));
        assert_eq!(f.as_str(), name);
    }
    for bad in ["", "COUNT", "median", "count_distinct", "stddev"] {
        assert_eq!(Function::parse(bad), None, "{bad}");
    }
}

#[test]
fn min_and_max_load_with_a_warning_that_they_release_one_records_value() {
    for f in ["min", "max"] {
        let (cfg, loaded) = accepted(|c| agg(c)["function"] = json!(f));
        assert_eq!(spec(&cfg).function, Function::parse(f).unwrap());
        let w = warnings(&loaded);
        assert_eq!(w.len(), 1, "{w:#?}");
        assert_eq!(w[0].0, format!("{AT}.aggregate.function"));
        assert!(w[0].1.contains("one record's own value"), "{w:?}");
        assert!(w[0].2.contains("prefer `avg` or `sum`"), "{w:?}");
    }
    let (_, loaded) = accepted(|c| agg(c)["function"] = json!("avg"));
    assert_eq!(warnings(&loaded), vec![], "avg warns of nothing");
}

#[test]
fn a_minimum_group_size_of_one_loads_with_a_warning() {
    let (cfg, loaded) = accepted(|c| agg(c)["minimum_group_size"] = json!(1));
    assert_eq!(spec(&cfg).minimum_group_size, 1);
    let w = warnings(&loaded);
    assert_eq!(w.len(), 1, "{w:#?}");
    assert_eq!(w[0].0, format!("{AT}.aggregate.minimum_group_size"));
    assert!(w[0].1.contains("withholds nothing"), "{w:?}");
    assert!(w[0].2.contains("use 5 or more"), "{w:?}");
    let (cfg, loaded) = accepted(|c| agg(c)["minimum_group_size"] = json!(2));
    assert_eq!(spec(&cfg).minimum_group_size, 2);
    assert_eq!(warnings(&loaded), vec![]);
    let (cfg, _) = accepted(|c| agg(c)["minimum_group_size"] = json!(1_000_000));
    assert_eq!(spec(&cfg).minimum_group_size, 1_000_000);
}

#[test]
fn grouping_loads_with_its_cap_or_the_default() {
    let (cfg, _) = accepted(|c| {
        agg(c)["group_by"] = json!(["customer_id", "status"]);
        agg(c)["max_groups"] = json!(500);
    });
    let s = spec(&cfg);
    assert_eq!(s.group_by, ["customer_id", "status"]);
    assert_eq!(s.max_groups, 500);
    assert!(s.is_grouped());
    assert_eq!(s.fetch_limit(), 501);
    assert_eq!(added(&cfg).read_row_cap(), 500);
    assert_eq!(
        added(&cfg).read_columns(),
        ["id", "tenant_id", "status", "customer_id", "late_fee_cents"]
    );
    let (cfg, _) = accepted(|c| agg(c)["group_by"] = json!(["customer_id"]));
    assert_eq!(spec(&cfg).max_groups, 50);
    assert_eq!(spec(&cfg).fetch_limit(), 51);
    let (cfg, _) = accepted(|c| {
        agg(c)["group_by"] = json!(["customer_id", "status", "waiver_reason"]);
        agg(c)["max_groups"] = json!(1);
    });
    assert_eq!(spec(&cfg).group_by.len(), 3);
    assert_eq!(spec(&cfg).max_groups, 1);
    // An empty grouping is no grouping.
    let (cfg, _) = accepted(|c| agg(c)["group_by"] = json!([]));
    assert!(!spec(&cfg).is_grouped());
    assert_eq!(spec(&cfg).fetch_limit(), 1);
}

#[test]
fn the_statements_columns_are_named_once_each() {
    let (cfg, _) = accepted(|c| {
        c["aggregate"] = json!({"function": "max", "column": "status", "minimum_group_size": 5,
            "selection": {"all": [term("status", json!("open")), term("customer_id", json!(3))]},
            "group_by": ["customer_id", "region"]});
    });
    assert_eq!(spec(&cfg).columns(), ["status", "customer_id", "region"]);
}

#[test]
fn a_bounded_sets_selection_is_the_reviewed_selection_too() {
    let mut v = reference();
    v["capabilities"].as_array_mut().unwrap().push(json!({
        "name": "billing.close_overdue",
        "kind": "proposal",
        "source": "app_postgres",
        "context": "local_operator",
        "target": {"schema": "public", "table": "tickets", "primary_key": "id", "tenant_key": "tenant_id"},
        "args": {"reason": {"type": "string", "required": true, "max_length": 200}},
        "visible_columns": ["id", "tenant_id", "status", "cost_cents", "close_reason", "version"],
        "patch": {"status": {"fixed": "closed"}, "close_reason": {"from_arg": "reason"}},
        "allowed_columns": ["status", "close_reason"],
        "conflict_guard": {"column": "version"},
        "operation": {
            "kind": "update",
            "cardinality": "set",
            "selection": {"all": [{"column": "status", "operator": "eq", "value": "overdue"}]},
            "max_rows": 10,
            "aggregate_bounds": [{"column": "cost_cents", "measure": "before", "maximum": 50000}],
            "version_advance": {"column": "version", "strategy": "integer_increment"}
        },
        "approval": {"mode": "human", "required_role": "billing_lead"}
    }));
    let loaded = load_config(&v);
    let cfg = loaded.config.expect("loads");
    let set = cfg.capability("billing.close_overdue").unwrap();
    assert!(set.aggregate.is_none());
    assert_eq!(
        reviewed_selection(set),
        [SelectionTerm {
            column: "status".into(),
            value: json!("overdue")
        }]
    );
}

#[test]
fn every_term_of_a_selection_loads_in_order() {
    let (cfg, _) = accepted(|c| {
        agg(c)["selection"]["all"] = json!(
            (0..8)
                .map(|i| term(
                    &format!("c{i}"),
                    if i % 2 == 0 {
                        json!(i)
                    } else {
                        json!(format!("v{i}"))
                    }
                ))
                .collect::<Vec<_>>()
        );
    });
    let s = spec(&cfg);
    assert_eq!(s.selection.len(), 8);
    assert_eq!(s.selection[0].value, json!(0));
    assert_eq!(s.selection[7].column, "c7");
    assert_eq!(s.selection[7].value, json!("v7"));
}

#[test]
fn the_principal_scope_optional_evidence_and_read_only_mode_are_honoured() {
    let (cfg, _) = accepted(|c| {
        c["target"]["principal_scope_key"] = json!("customer_id");
        c["evidence"] = json!("optional");
        c["context"] = json!("local_operator");
    });
    let c = added(&cfg);
    assert_eq!(c.target.principal_scope_key.as_deref(), Some("customer_id"));
    assert_eq!(c.evidence, EvidenceMode::Optional);
    let st = read_statement(Engine::Postgres, c);
    assert_eq!(
        st.params,
        [
            LookupParam::Selection(0),
            LookupParam::Tenant,
            LookupParam::Principal
        ]
    );
    assert!(st.sql.ends_with(
        "WHERE \"status\" = $1 AND \"tenant_id\"::text = $2 AND \"customer_id\"::text = $3"
    ));
    // An aggregate read is a read: a read-only config serves it.
    let mut v = reference();
    v["mode"] = json!("read_only");
    v["capabilities"] = json!([runner_example()]);
    v.as_object_mut().unwrap().remove("proposal_freshness");
    let loaded = load_config(&v);
    assert!(!loaded.report.has_errors(), "{:#?}", loaded.report);
}

// ---------------------------------------------------------------------------
// Loader: refusals, each with its exact path, message and fix.

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
        let got: Vec<(String, &str, &str)> = loaded
            .report
            .errors()
            .map(|d| (d.path.replace(AT, "@"), d.message.as_str(), d.fix.as_str()))
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
                fix.contains(fix_fragment),
                "{}: fix {fix:?} lacks {fix_fragment:?}",
                case.what
            );
        }
    }
}

#[test]
fn the_capability_shape_of_a_read_is_refused_key_by_key() {
    check_refused(&[
        Refused {
            what: "model arguments",
            edit: |c| c["args"] = json!({"status": {"type": "string", "required": true}}),
            errors: &[("@.args", "takes no arguments", "\"args\": {}")],
        },
        Refused {
            what: "args missing",
            edit: |c| remove(c, "args"),
            errors: &[("@.args", "missing required field `args`", "\"args\": {}")],
        },
        Refused {
            what: "args not an object",
            edit: |c| c["args"] = json!([]),
            errors: &[(
                "@.args",
                "expected an object, found an array",
                "\"args\": {}",
            )],
        },
        Refused {
            what: "visible columns",
            edit: |c| c["visible_columns"] = json!(["id", "late_fee_cents"]),
            errors: &[(
                "@.visible_columns",
                "returns no columns of any record",
                "`aggregate.group_by`",
            )],
        },
        Refused {
            what: "visible columns missing",
            edit: |c| remove(c, "visible_columns"),
            errors: &[(
                "@.visible_columns",
                "missing required field `visible_columns`",
                "\"visible_columns\": []",
            )],
        },
        Refused {
            what: "a lookup",
            edit: |c| c["lookup"] = json!({"id_from_arg": "invoice_id"}),
            errors: &[("@.lookup", "looks up no record", "remove `lookup`")],
        },
        Refused {
            what: "max_rows",
            edit: |c| c["max_rows"] = json!(1),
            errors: &[("@.max_rows", "never rows", "`aggregate.max_groups`")],
        },
        Refused {
            what: "proposal keys",
            edit: |c| {
                c["patch"] = json!({"status": {"fixed": "paid"}});
                c["approval"] = json!({"mode": "human"});
            },
            errors: &[
                (
                    "@.patch",
                    "applies only to proposal capabilities; an aggregate read changes nothing",
                    "remove `patch`",
                ),
                (
                    "@.approval",
                    "applies only to proposal capabilities",
                    "remove `approval`",
                ),
            ],
        },
        Refused {
            what: "no aggregate",
            edit: |c| remove(c, "aggregate"),
            errors: &[(
                "@.aggregate",
                "missing required field `aggregate`",
                "\"count_mode\": \"rows\"",
            )],
        },
        Refused {
            what: "an aggregate on a read",
            edit: |c| {
                c["kind"] = json!("read");
                c["args"] = json!({"invoice_id": {"type": "string", "required": true}});
                c["lookup"] = json!({"id_from_arg": "invoice_id"});
                c["visible_columns"] = json!(["id"]);
            },
            errors: &[(
                "@.aggregate",
                "applies only to capabilities of kind `aggregate_read`",
                "\"kind\": \"aggregate_read\"",
            )],
        },
        Refused {
            what: "no tenant key",
            edit: |c| {
                c["target"].as_object_mut().unwrap().remove("tenant_key");
            },
            errors: &[(
                "@.target.tenant_key",
                "missing `tenant_key`",
                "\"tenant_key\"",
            )],
        },
        Refused {
            what: "an unknown aggregate key",
            edit: |c| agg(c)["where"] = json!("status = 'x'"),
            errors: &[("@.aggregate.where", "raw SQL", "")],
        },
        Refused {
            what: "another unknown aggregate key",
            edit: |c| agg(c)["limit"] = json!(3),
            errors: &[(
                "@.aggregate.limit",
                "unknown field `limit`",
                "group_by, max_groups",
            )],
        },
        Refused {
            what: "aggregate not an object",
            edit: |c| c["aggregate"] = json!("sum"),
            errors: &[("@.aggregate", "expected an object", "")],
        },
    ]);
}

#[test]
fn an_unknown_kind_names_the_aggregate_kind_in_its_fix() {
    let loaded = edited(|c| c["kind"] = json!("aggregate"));
    let e = loaded
        .report
        .errors()
        .find(|d| d.path == format!("{AT}.kind"))
        .expect("an error at kind");
    assert_eq!(e.message, "unknown capability kind `aggregate`");
    // An invalid kind is reported once, not again at `aggregate`.
    assert!(
        loaded
            .report
            .errors()
            .all(|d| !d.path.starts_with(&format!("{AT}.aggregate"))),
        "{:#?}",
        loaded.report
    );
    assert_eq!(e.fix, "use \"read\", \"aggregate_read\" or \"proposal\"");
    let loaded = edited(|c| remove(c, "kind"));
    let e = loaded
        .report
        .errors()
        .find(|d| d.path == format!("{AT}.kind"))
        .expect("an error at kind");
    assert!(e.fix.contains("\"aggregate_read\""), "{e:?}");
}

#[test]
fn functions_modes_and_columns_are_checked_together() {
    check_refused(&[
        Refused {
            what: "unknown function",
            edit: |c| agg(c)["function"] = json!("median"),
            errors: &[(
                "@.aggregate.function",
                "unknown aggregate function `median`",
                "\"min\" or \"max\" (Airlock's)",
            )],
        },
        Refused {
            what: "no function",
            edit: |c| remove(agg(c), "function"),
            errors: &[("@.aggregate.function", "missing required field", "\"sum\"")],
        },
        Refused {
            what: "count without count_mode",
            edit: |c| {
                c["aggregate"] = json!({"function": "count", "minimum_group_size": 5});
            },
            errors: &[(
                "@.aggregate.count_mode",
                "missing required field `count_mode`",
                "\"rows\"",
            )],
        },
        Refused {
            what: "unknown count mode",
            edit: |c| {
                c["aggregate"] =
                    json!({"function": "count", "count_mode": "distinct", "minimum_group_size": 5});
            },
            errors: &[(
                "@.aggregate.count_mode",
                "unknown count mode `distinct`",
                "\"non_null\"",
            )],
        },
        Refused {
            what: "count_mode on a sum",
            edit: |c| agg(c)["count_mode"] = json!("rows"),
            errors: &[(
                "@.aggregate.count_mode",
                "applies only to `count`, not `sum`",
                "remove `count_mode`",
            )],
        },
        Refused {
            what: "a count of rows with a column",
            edit: |c| {
                c["aggregate"] = json!({"function": "count", "count_mode": "rows", "column": "status", "minimum_group_size": 5});
            },
            errors: &[(
                "@.aggregate.column",
                "uses no column",
                "\"count_mode\": \"non_null\"",
            )],
        },
        Refused {
            what: "sum without a column",
            edit: |c| remove(agg(c), "column"),
            errors: &[(
                "@.aggregate.column",
                "missing required field `column`",
                "the reviewed column to take the sum of",
            )],
        },
        Refused {
            what: "max without a column",
            edit: |c| {
                remove(agg(c), "column");
                agg(c)["function"] = json!("max");
            },
            errors: &[(
                "@.aggregate.column",
                "missing required field `column`",
                "take the max of",
            )],
        },
        Refused {
            what: "count non_null without a column",
            edit: |c| {
                c["aggregate"] =
                    json!({"function": "count", "count_mode": "non_null", "minimum_group_size": 5});
            },
            errors: &[(
                "@.aggregate.column",
                "missing required field `column`",
                "count (the records where it is set)",
            )],
        },
        Refused {
            what: "an unsafe column",
            edit: |c| agg(c)["column"] = json!("late_fee_cents; DROP"),
            errors: &[("@.aggregate.column", "not a safe SQL identifier", "")],
        },
        Refused {
            what: "no minimum group size",
            edit: |c| remove(agg(c), "minimum_group_size"),
            errors: &[(
                "@.aggregate.minimum_group_size",
                "missing required field",
                "\"minimum_group_size\": 5",
            )],
        },
        Refused {
            what: "a minimum group size of zero",
            edit: |c| agg(c)["minimum_group_size"] = json!(0),
            errors: &[(
                "@.aggregate.minimum_group_size",
                "from 1 to 1000000, found 0",
                "",
            )],
        },
        Refused {
            what: "a minimum group size too large",
            edit: |c| agg(c)["minimum_group_size"] = json!(1_000_001),
            errors: &[(
                "@.aggregate.minimum_group_size",
                "from 1 to 1000000, found 1000001",
                "",
            )],
        },
        Refused {
            what: "a minimum group size as text",
            edit: |c| agg(c)["minimum_group_size"] = json!("5"),
            errors: &[("@.aggregate.minimum_group_size", "found \"5\"", "")],
        },
    ]);
}

#[test]
fn a_selection_is_fixed_equality_on_reviewed_columns_only() {
    check_refused(&[
        Refused {
            what: "no terms key",
            edit: |c| agg(c)["selection"] = json!({}),
            errors: &[(
                "@.aggregate.selection.all",
                "missing required field `all`",
                "remove `selection` to aggregate every record",
            )],
        },
        Refused {
            what: "zero terms",
            edit: |c| agg(c)["selection"] = json!({"all": []}),
            errors: &[("@.aggregate.selection.all", "1 to 8 terms", "")],
        },
        Refused {
            what: "nine terms",
            edit: |c| {
                agg(c)["selection"]["all"] = json!(
                    (0..9)
                        .map(|i| term(&format!("c{i}"), json!(i)))
                        .collect::<Vec<_>>()
                );
            },
            errors: &[("@.aggregate.selection.all", "1 to 8 terms", "")],
        },
        Refused {
            what: "a range",
            edit: |c| agg(c)["selection"]["all"][0]["operator"] = json!("gt"),
            errors: &[(
                "@.aggregate.selection.all[0].operator",
                "unknown selection operator `gt`",
                "exact equality only",
            )],
        },
        Refused {
            what: "a boolean value",
            edit: |c| agg(c)["selection"]["all"][0]["value"] = json!(true),
            errors: &[(
                "@.aggregate.selection.all[0].value",
                "a string or a number, found a boolean",
                "booleans and null",
            )],
        },
        Refused {
            what: "a null value",
            edit: |c| agg(c)["selection"]["all"][0]["value"] = Value::Null,
            errors: &[("@.aggregate.selection.all[0].value", "found null", "")],
        },
        Refused {
            what: "no value",
            edit: |c| remove(&mut agg(c)["selection"]["all"][0], "value"),
            errors: &[(
                "@.aggregate.selection.all[0].value",
                "missing required field",
                "",
            )],
        },
        Refused {
            what: "a column twice",
            edit: |c| {
                agg(c)["selection"]["all"] =
                    json!([term("status", json!("a")), term("status", json!("b"))]);
            },
            errors: &[("@.aggregate.selection.all[1].column", "appears twice", "")],
        },
        Refused {
            what: "the tenant key",
            edit: |c| {
                agg(c)["selection"]["all"] = json!([term("tenant_id", json!("globex"))]);
            },
            errors: &[(
                "@.aggregate.selection.all[0].column",
                "comes from the trusted context",
                "remove this term",
            )],
        },
        Refused {
            what: "the principal scope key",
            edit: |c| {
                c["context"] = json!("local_operator");
                c["target"]["principal_scope_key"] = json!("customer_id");
                agg(c)["selection"]["all"] = json!([term("customer_id", json!("c1"))]);
            },
            errors: &[(
                "@.aggregate.selection.all[0].column",
                "tenant or principal scope key",
                "",
            )],
        },
        Refused {
            what: "a set's keys",
            edit: |c| agg(c)["selection"]["keys"] = json!(["INV-1"]),
            errors: &[("@.aggregate.selection.keys", "unknown field `keys`", "all")],
        },
        Refused {
            what: "an unknown term key",
            edit: |c| agg(c)["selection"]["all"][0]["negate"] = json!(true),
            errors: &[("@.aggregate.selection.all[0].negate", "unknown field", "")],
        },
        Refused {
            what: "an unsafe term column",
            edit: |c| agg(c)["selection"]["all"][0]["column"] = json!("status or 1=1"),
            errors: &[(
                "@.aggregate.selection.all[0].column",
                "not a safe SQL identifier",
                "",
            )],
        },
        Refused {
            what: "a term that is not an object",
            edit: |c| agg(c)["selection"]["all"][0] = json!("status = 'overdue'"),
            errors: &[("@.aggregate.selection.all[0]", "expected an object", "")],
        },
    ]);
}

#[test]
fn grouping_is_only_by_reviewed_business_columns() {
    check_refused(&[
        Refused {
            what: "four group columns",
            edit: |c| agg(c)["group_by"] = json!(["a", "b", "c", "d"]),
            errors: &[(
                "@.aggregate.group_by",
                "4 group columns; an aggregate groups by at most 3",
                "",
            )],
        },
        Refused {
            what: "the tenant key",
            edit: |c| agg(c)["group_by"] = json!(["status", "tenant_id"]),
            errors: &[(
                "@.aggregate.group_by[1]",
                "cannot be grouped by `tenant_id`, the tenant key",
                "a reviewed business column",
            )],
        },
        Refused {
            what: "the principal scope key",
            edit: |c| {
                c["context"] = json!("local_operator");
                c["target"]["principal_scope_key"] = json!("customer_id");
                agg(c)["group_by"] = json!(["customer_id"]);
            },
            errors: &[("@.aggregate.group_by[0]", "the principal scope key", "")],
        },
        Refused {
            what: "the primary key",
            edit: |c| agg(c)["group_by"] = json!(["id"]),
            errors: &[(
                "@.aggregate.group_by[0]",
                "the primary key: every record would be a group of its own",
                "",
            )],
        },
        Refused {
            what: "a name of the result",
            edit: |c| agg(c)["group_by"] = json!(["value"]),
            errors: &[(
                "@.aggregate.group_by[0]",
                "cannot be named `value`",
                "reviewed view",
            )],
        },
        Refused {
            what: "the cohort name",
            edit: |c| agg(c)["group_by"] = json!(["cohort"]),
            errors: &[("@.aggregate.group_by[0]", "cannot be named `cohort`", "")],
        },
        Refused {
            what: "a column twice",
            edit: |c| agg(c)["group_by"] = json!(["status", "status"]),
            errors: &[("@.aggregate.group_by[1]", "listed twice", "")],
        },
        Refused {
            what: "not a name",
            edit: |c| agg(c)["group_by"] = json!([3]),
            errors: &[(
                "@.aggregate.group_by[0]",
                "expected a column name, found a number",
                "",
            )],
        },
        Refused {
            what: "an unsafe name",
            edit: |c| agg(c)["group_by"] = json!(["1; --"]),
            errors: &[("@.aggregate.group_by[0]", "not a safe SQL identifier", "")],
        },
        Refused {
            what: "not a list",
            edit: |c| agg(c)["group_by"] = json!("status"),
            errors: &[("@.aggregate.group_by", "expected an array", "")],
        },
        Refused {
            what: "max_groups without grouping",
            edit: |c| agg(c)["max_groups"] = json!(10),
            errors: &[(
                "@.aggregate.max_groups",
                "applies only to a grouped aggregate",
                "remove `max_groups`",
            )],
        },
        Refused {
            what: "max_groups with an empty grouping",
            edit: |c| {
                agg(c)["group_by"] = json!([]);
                agg(c)["max_groups"] = json!(10);
            },
            errors: &[(
                "@.aggregate.max_groups",
                "applies only to a grouped aggregate",
                "",
            )],
        },
        Refused {
            what: "too many groups allowed",
            edit: |c| {
                agg(c)["group_by"] = json!(["status"]);
                agg(c)["max_groups"] = json!(501);
            },
            errors: &[("@.aggregate.max_groups", "from 1 to 500, found 501", "")],
        },
        Refused {
            what: "no group allowed",
            edit: |c| {
                agg(c)["group_by"] = json!(["status"]);
                agg(c)["max_groups"] = json!(0);
            },
            errors: &[("@.aggregate.max_groups", "from 1 to 500, found 0", "")],
        },
    ]);
}

#[test]
fn every_problem_is_reported_in_one_pass() {
    let loaded = edited(|c| {
        c["args"] = json!({"x": {"type": "string"}});
        c["max_rows"] = json!(2);
        c["aggregate"] =
            json!({"function": "count", "column": "x", "group_by": ["id"], "max_groups": 0});
    });
    let paths: Vec<String> = loaded
        .report
        .errors()
        .map(|d| d.path.replace(AT, "@"))
        .collect();
    for want in [
        "@.args",
        "@.max_rows",
        "@.aggregate.count_mode",
        "@.aggregate.minimum_group_size",
        "@.aggregate.group_by[0]",
        "@.aggregate.max_groups",
    ] {
        assert!(paths.iter().any(|p| p == want), "{want} in {paths:?}");
    }
}

// ---------------------------------------------------------------------------
// The statement, per engine, pinned.

fn cap_with(edit: impl FnOnce(&mut Value)) -> Capability {
    let (cfg, _) = accepted(edit);
    added(&cfg).clone()
}

#[test]
fn synapsors_example_compiles_to_one_scoped_parameterized_statement_per_engine() {
    let c = cap_with(|_| {});
    let s = c.aggregate.as_ref().unwrap();
    let pg = statement(Engine::Postgres, &c, s);
    assert_eq!(
        pg.sql,
        "SELECT COUNT(*) AS \"cohort\", COUNT(\"late_fee_cents\") AS \"contributors\", SUM(\"late_fee_cents\") AS \"value\" FROM \"public\".\"invoices\" WHERE \"status\" = $1 AND \"tenant_id\"::text = $2"
    );
    assert_eq!(pg.params, [LookupParam::Selection(0), LookupParam::Tenant]);
    let my = statement(Engine::Mysql, &c, s);
    assert_eq!(
        my.sql,
        "SELECT COUNT(*) AS `cohort`, COUNT(`late_fee_cents`) AS `contributors`, SUM(`late_fee_cents`) AS `value` FROM `public`.`invoices` WHERE CAST(`status` AS BINARY) = CAST(? AS BINARY) AND CAST(CAST(`tenant_id` AS CHAR) AS BINARY) = CAST(? AS BINARY)"
    );
    assert_eq!(my.params, pg.params);
    let lite = statement(Engine::Sqlite, &c, s);
    assert_eq!(
        lite.sql,
        "SELECT COUNT(*) AS \"cohort\", COUNT(\"invoices\".\"late_fee_cents\") AS \"contributors\", SUM(\"invoices\".\"late_fee_cents\") AS \"value\" FROM \"public\".\"invoices\" WHERE \"invoices\".\"status\" = ? COLLATE BINARY AND CAST(\"tenant_id\" AS TEXT) = ?"
    );
    assert_eq!(lite.params, pg.params);
    // It is the capability's read statement, and its own fingerprint.
    for e in [Engine::Postgres, Engine::Mysql, Engine::Sqlite] {
        assert_eq!(read_statement(e, &c), statement(e, &c, s));
    }
    assert_ne!(pg.fingerprint(), my.fingerprint());
    assert!(pg.fingerprint().starts_with("sha256:"));
}

#[test]
fn a_grouped_count_of_rows_groups_scopes_and_caps() {
    let c = cap_with(|c| {
        c["context"] = json!("local_operator");
        c["target"]["principal_scope_key"] = json!("customer_id");
        c["aggregate"] = json!({"function": "count", "count_mode": "rows", "minimum_group_size": 5, "group_by": ["status", "waiver_reason"], "max_groups": 20});
    });
    let s = c.aggregate.as_ref().unwrap();
    let pg = statement(Engine::Postgres, &c, s);
    assert_eq!(
        pg.sql,
        "SELECT \"status\", \"waiver_reason\", COUNT(*) AS \"cohort\", COUNT(*) AS \"value\" FROM \"public\".\"invoices\" WHERE \"tenant_id\"::text = $1 AND \"customer_id\"::text = $2 GROUP BY \"status\", \"waiver_reason\" LIMIT 21"
    );
    assert_eq!(pg.params, [LookupParam::Tenant, LookupParam::Principal]);
    let my = statement(Engine::Mysql, &c, s);
    assert_eq!(
        my.sql,
        "SELECT `status`, `waiver_reason`, COUNT(*) AS `cohort`, COUNT(*) AS `value` FROM `public`.`invoices` WHERE CAST(CAST(`tenant_id` AS CHAR) AS BINARY) = CAST(? AS BINARY) AND CAST(CAST(`customer_id` AS CHAR) AS BINARY) = CAST(? AS BINARY) GROUP BY `status`, `waiver_reason` LIMIT 21"
    );
    let lite = statement(Engine::Sqlite, &c, s);
    assert_eq!(
        lite.sql,
        "SELECT \"invoices\".\"status\" AS \"status\", \"invoices\".\"waiver_reason\" AS \"waiver_reason\", COUNT(*) AS \"cohort\", COUNT(*) AS \"value\" FROM \"public\".\"invoices\" WHERE CAST(\"tenant_id\" AS TEXT) = ? AND CAST(\"customer_id\" AS TEXT) = ? GROUP BY \"invoices\".\"status\", \"invoices\".\"waiver_reason\" LIMIT 21"
    );
}

#[test]
fn each_function_has_its_expression_and_numbers_compare_plainly() {
    let expr = |aggregate: Value| {
        let c = cap_with(|c| c["aggregate"] = aggregate);
        statement(Engine::Mysql, &c, c.aggregate.as_ref().unwrap()).sql
    };
    let with = |f: &str| json!({"function": f, "column": "balance_cents", "minimum_group_size": 5, "selection": {"all": [term("customer_id", json!(7))]}});
    for (f, sql) in [
        ("sum", "SUM(`balance_cents`) AS `value`"),
        ("avg", "AVG(`balance_cents`) AS `value`"),
        ("min", "MIN(`balance_cents`) AS `value`"),
        ("max", "MAX(`balance_cents`) AS `value`"),
    ] {
        let got = expr(with(f));
        assert!(got.contains(sql), "{f}: {got}");
        assert!(
            got.contains("COUNT(`balance_cents`) AS `contributors`"),
            "{got}"
        );
        // A number is compared as a number (no byte comparison).
        assert!(got.contains("WHERE `customer_id` = ? AND"), "{got}");
    }
    let got = expr(
        json!({"function": "count", "count_mode": "non_null", "column": "waiver_reason", "minimum_group_size": 5}),
    );
    assert_eq!(
        got,
        "SELECT COUNT(*) AS `cohort`, COUNT(`waiver_reason`) AS `contributors`, COUNT(`waiver_reason`) AS `value` FROM `public`.`invoices` WHERE CAST(CAST(`tenant_id` AS CHAR) AS BINARY) = CAST(? AS BINARY)"
    );
    // Several terms bind in order, before the tenant.
    let c = cap_with(|c| {
        agg(c)["selection"]["all"] = json!([
            term("status", json!("overdue")),
            term("customer_id", json!(12))
        ]);
    });
    let pg = statement(Engine::Postgres, &c, c.aggregate.as_ref().unwrap());
    assert!(
        pg.sql.ends_with(
            "WHERE \"status\" = $1 AND \"customer_id\" = $2 AND \"tenant_id\"::text = $3"
        ),
        "{}",
        pg.sql
    );
    assert_eq!(
        pg.params,
        [
            LookupParam::Selection(0),
            LookupParam::Selection(1),
            LookupParam::Tenant
        ]
    );
    let lite = statement(Engine::Sqlite, &c, c.aggregate.as_ref().unwrap());
    assert!(
        lite.sql
            .contains("WHERE \"invoices\".\"status\" = ? COLLATE BINARY AND \"invoices\".\"customer_id\" = ? AND"),
        "{}",
        lite.sql
    );
}

#[test]
fn a_single_tenant_development_target_has_no_where_clause() {
    let c = cap_with(|c| {
        c["target"] = json!({"schema": "main", "table": "invoices", "primary_key": "id", "single_tenant_dev": true});
        c["single_tenant_dev_ack"] = json!(true);
        c["aggregate"] =
            json!({"function": "count", "count_mode": "rows", "minimum_group_size": 5});
    });
    let st = statement(Engine::Sqlite, &c, c.aggregate.as_ref().unwrap());
    assert_eq!(
        st.sql,
        "SELECT COUNT(*) AS \"cohort\", COUNT(*) AS \"value\" FROM \"main\".\"invoices\""
    );
    assert!(st.params.is_empty());
}

// ---------------------------------------------------------------------------
// Suppression: the rows a statement returned → what is released.

fn row(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

fn spec_from(aggregate: Value) -> AggregateSpec {
    cap_with(|c| c["aggregate"] = aggregate).aggregate.unwrap()
}

fn count_rows(min: u64) -> AggregateSpec {
    spec_from(json!({"function": "count", "count_mode": "rows", "minimum_group_size": min}))
}

fn sum_spec(min: u64) -> AggregateSpec {
    spec_from(json!({"function": "sum", "column": "balance_cents", "minimum_group_size": min}))
}

#[test]
fn an_ungrouped_result_is_released_at_the_minimum_and_withheld_below_it() {
    let s = count_rows(5);
    let at = release(&s, &[row(json!({"cohort": 5, "value": 5}))]).unwrap();
    assert_eq!(at, Released::Scalar(Some(json!(5))));
    assert!(!at.is_withheld());
    assert_eq!(
        at.data(&s),
        json!({"function": "count", "column": null, "suppressed": false, "minimum_group_size": 5, "value": 5, "member_rows_included": false})
    );
    assert_eq!(at.evidence_rows(), vec![row(json!({"value": 5}))]);

    let below = release(&s, &[row(json!({"cohort": 4, "value": 4}))]).unwrap();
    assert_eq!(below, Released::Scalar(None));
    assert!(below.is_withheld());
    // The stable withheld result: no value and no count.
    assert_eq!(
        below.data(&s),
        json!({"function": "count", "column": null, "suppressed": true, "minimum_group_size": 5, "value": null, "member_rows_included": false})
    );
    assert_eq!(
        below.evidence_rows(),
        vec![row(json!({"suppressed": true}))]
    );
    // No rows at all (a selection no row can match) is zero records.
    assert_eq!(release(&s, &[]).unwrap(), Released::Scalar(None));
    // A count of zero is withheld even at a minimum of one.
    assert_eq!(
        release(&count_rows(1), &[row(json!({"cohort": 0, "value": 0}))]).unwrap(),
        Released::Scalar(None)
    );
    assert_eq!(
        release(&count_rows(1), &[row(json!({"cohort": 1, "value": 1}))]).unwrap(),
        Released::Scalar(Some(json!(1)))
    );
}

#[test]
fn a_column_aggregate_needs_enough_contributing_records_too() {
    let s = sum_spec(5);
    // Enough records, too few with a value: withheld.
    assert_eq!(
        release(
            &s,
            &[row(json!({"cohort": 9, "contributors": 4, "value": 100}))]
        )
        .unwrap(),
        Released::Scalar(None)
    );
    // Enough contributors reported but too few records: withheld as well.
    assert_eq!(
        release(
            &s,
            &[row(json!({"cohort": 4, "contributors": 5, "value": 100}))]
        )
        .unwrap(),
        Released::Scalar(None)
    );
    let ok = release(
        &s,
        &[row(json!({"cohort": 9, "contributors": 5, "value": 100}))],
    )
    .unwrap();
    assert_eq!(ok, Released::Scalar(Some(json!(100))));
    assert_eq!(
        ok.data(&s),
        json!({"function": "sum", "column": "balance_cents", "suppressed": false, "minimum_group_size": 5, "value": 100, "member_rows_included": false})
    );
    // A column aggregate without its contributor count is not this statement's row.
    assert!(matches!(
        release(&s, &[row(json!({"cohort": 9, "value": 100}))]),
        Err(ReleaseError::Malformed(_))
    ));
}

#[test]
fn released_values_are_json_numbers_the_same_on_every_engine() {
    let sum = sum_spec(1);
    let avg =
        spec_from(json!({"function": "avg", "column": "balance_cents", "minimum_group_size": 1}));
    let min = spec_from(json!({"function": "min", "column": "status", "minimum_group_size": 1}));
    let one = |s: &AggregateSpec, value: Value| {
        release(
            s,
            &[row(json!({"cohort": 3, "contributors": 3, "value": value}))],
        )
    };
    // Postgres NUMERIC and MySQL DECIMAL arrive as text.
    assert_eq!(
        one(&sum, json!("1234.50")).unwrap(),
        Released::Scalar(Some(json!(1234.5)))
    );
    assert_eq!(
        one(&sum, json!("1200.00")).unwrap(),
        Released::Scalar(Some(json!(1200)))
    );
    assert_eq!(
        one(&sum, json!("12345")).unwrap(),
        Released::Scalar(Some(json!(12345)))
    );
    assert_eq!(
        one(&sum, json!("-7")).unwrap(),
        Released::Scalar(Some(json!(-7)))
    );
    assert_eq!(
        one(&sum, json!("12345678901234567890")).unwrap(),
        Released::Scalar(Some(json!(12_345_678_901_234_567_890u64)))
    );
    assert_eq!(
        one(&sum, json!(0.5)).unwrap(),
        Released::Scalar(Some(json!(0.5)))
    );
    // A sum is not rounded; an average is, to four places.
    assert_eq!(
        one(&sum, json!("0.123456")).unwrap(),
        Released::Scalar(Some(json!(0.123456)))
    );
    assert_eq!(
        one(&avg, json!("2500.3333333333")).unwrap(),
        Released::Scalar(Some(json!(2500.3333)))
    );
    assert_eq!(
        one(&avg, json!("2500.0000")).unwrap(),
        Released::Scalar(Some(json!(2500)))
    );
    assert_eq!(
        one(&avg, json!(2.5)).unwrap(),
        Released::Scalar(Some(json!(2.5)))
    );
    assert_eq!(
        one(&avg, json!(1.0 / 3.0)).unwrap(),
        Released::Scalar(Some(json!(0.3333)))
    );
    assert_eq!(
        one(&avg, json!(2.0)).unwrap(),
        Released::Scalar(Some(json!(2)))
    );
    // Not a number: refused, never shown as text.
    for bad in [
        json!("open"),
        json!("NaN"),
        json!("Infinity"),
        Value::Null,
        json!(true),
        json!([1]),
    ] {
        assert_eq!(
            one(&min, bad.clone()),
            Err(ReleaseError::NotNumeric),
            "{bad}"
        );
    }
    assert_eq!(
        aggregate_number(&json!(" 42 "), Function::Sum),
        Some(json!(42))
    );
    assert_eq!(
        aggregate_number(&json!("1e3"), Function::Max),
        Some(json!(1000))
    );
    assert_eq!(
        aggregate_number(&json!(1e300), Function::Sum),
        Some(json!(1e300))
    );
    assert_eq!(
        aggregate_number(&json!("-0.00004"), Function::Avg),
        Some(json!(0))
    );
    // Whole numbers become integers only where a double is still exact.
    assert_eq!(
        aggregate_number(&json!("8999999999999999.0"), Function::Sum),
        Some(json!(8_999_999_999_999_999i64))
    );
    assert_eq!(
        aggregate_number(&json!("9000000000000000.0"), Function::Sum),
        Some(json!(9.0e15))
    );
    assert_eq!(
        aggregate_number(&json!("0.00005"), Function::Avg),
        Some(json!(0.0001))
    );
}

#[test]
fn record_counts_and_row_shapes_are_checked() {
    let s = count_rows(2);
    // Engines that widen counts return them as text.
    assert_eq!(
        release(&s, &[row(json!({"cohort": "7", "value": "7"}))]).unwrap(),
        Released::Scalar(Some(json!(7)))
    );
    for bad in [
        json!({"value": 5}),
        json!({"cohort": -1, "value": 5}),
        json!({"cohort": "many", "value": 5}),
        json!({"cohort": 2.5, "value": 5}),
        json!({"cohort": 5}),
    ] {
        assert!(
            matches!(
                release(&s, &[row(bad.clone())]),
                Err(ReleaseError::Malformed(_))
            ),
            "{bad}"
        );
    }
    let two = [
        row(json!({"cohort": 5, "value": 5})),
        row(json!({"cohort": 5, "value": 5})),
    ];
    assert!(matches!(release(&s, &two), Err(ReleaseError::Malformed(_))));
}

fn grouped(max_groups: u32) -> AggregateSpec {
    spec_from(
        json!({"function": "count", "count_mode": "rows", "minimum_group_size": 5, "group_by": ["region"], "max_groups": max_groups}),
    )
}

#[test]
fn groups_below_the_minimum_are_withheld_and_counted_never_shown() {
    let s = grouped(10);
    let rows = [
        row(json!({"region": "west", "cohort": 7, "value": 7})),
        row(json!({"region": "east", "cohort": 2, "value": 2})),
        row(json!({"region": "North", "cohort": 5, "value": 5})),
        row(json!({"region": null, "cohort": 6, "value": 6})),
        row(json!({"region": "north", "cohort": 12, "value": 12})),
    ];
    let r = release(&s, &rows).unwrap();
    assert_eq!(
        r,
        Released::Groups {
            groups: vec![
                row(json!({"region": null, "value": 6})),
                row(json!({"region": "North", "value": 5})),
                row(json!({"region": "north", "value": 12})),
                row(json!({"region": "west", "value": 7})),
            ],
            withheld: 1,
        }
    );
    assert!(!r.is_withheld());
    assert_eq!(
        r.data(&s),
        json!({
            "function": "count", "column": null, "minimum_group_size": 5, "member_rows_included": false,
            "group_by": ["region"],
            "groups": [
                {"region": null, "value": 6},
                {"region": "North", "value": 5},
                {"region": "north", "value": 12},
                {"region": "west", "value": 7}
            ],
            "suppressed_groups": 1
        })
    );
    assert_eq!(
        r.evidence_rows(),
        vec![
            row(json!({"region": null, "value": 6})),
            row(json!({"region": "North", "value": 5})),
            row(json!({"region": "north", "value": 12})),
            row(json!({"region": "west", "value": 7})),
        ]
    );
    // Every group withheld: nothing released, the count says how many.
    let small = [row(json!({"region": "a", "cohort": 1, "value": 1}))];
    let r = release(&s, &small).unwrap();
    assert_eq!(
        r,
        Released::Groups {
            groups: vec![],
            withheld: 1
        }
    );
    assert!(r.is_withheld());
    assert!(r.evidence_rows().is_empty());
    assert_eq!(
        release(&s, &[]).unwrap(),
        Released::Groups {
            groups: vec![],
            withheld: 0
        }
    );
}

#[test]
fn groups_are_ordered_by_each_group_value_in_turn() {
    let s = spec_from(
        json!({"function": "count", "count_mode": "rows", "minimum_group_size": 1, "group_by": ["a", "b"]}),
    );
    let rows: Vec<Map<String, Value>> = [
        json!({"a": "x", "b": 2, "cohort": 1, "value": 1}),
        json!({"a": 10, "b": 1, "cohort": 1, "value": 2}),
        json!({"a": "x", "b": 1.5, "cohort": 1, "value": 3}),
        json!({"a": 9.5, "b": 1, "cohort": 1, "value": 4}),
        json!({"a": true, "b": 1, "cohort": 1, "value": 5}),
        json!({"a": false, "b": 1, "cohort": 1, "value": 6}),
        json!({"a": "x", "b": null, "cohort": 1, "value": 7}),
        json!({"a": 10, "b": 0, "cohort": 1, "value": 8}),
    ]
    .into_iter()
    .map(row)
    .collect();
    let Released::Groups { groups, withheld } = release(&s, &rows).unwrap() else {
        panic!("grouped")
    };
    assert_eq!(withheld, 0);
    let values: Vec<i64> = groups
        .iter()
        .map(|g| g["value"].as_i64().unwrap())
        .collect();
    assert_eq!(values, [6, 5, 4, 8, 2, 7, 3, 1]);
}

#[test]
fn more_groups_than_reviewed_are_refused_never_cut_short() {
    let s = grouped(3);
    let rows: Vec<Map<String, Value>> = (0..4)
        .map(|i| row(json!({"region": format!("r{i}"), "cohort": 9, "value": 9})))
        .collect();
    assert_eq!(
        release(&s, &rows),
        Err(ReleaseError::TooManyGroups { max_groups: 3 })
    );
    let msg = ReleaseError::TooManyGroups { max_groups: 3 }.to_string();
    assert!(
        msg.contains("more than 3 groups") && msg.contains("never cut short"),
        "{msg}"
    );
    let Released::Groups { groups, .. } = release(&s, &rows[..3]).unwrap() else {
        panic!("grouped")
    };
    assert_eq!(groups.len(), 3);
    // A group without its column, or with a structured value, is not this statement's.
    for bad in [
        json!({"cohort": 9, "value": 9}),
        json!({"region": ["a"], "cohort": 9, "value": 9}),
        json!({"region": {"a": 1}, "cohort": 9, "value": 9}),
    ] {
        assert!(
            matches!(
                release(&s, &[row(bad.clone())]),
                Err(ReleaseError::Malformed(_))
            ),
            "{bad}"
        );
    }
    assert!(ReleaseError::NotNumeric.to_string().contains("not numeric"));
    assert!(
        ReleaseError::Malformed("x".into())
            .to_string()
            .contains("unexpected aggregate rows: x")
    );
}

#[test]
fn the_output_schema_describes_every_released_shape() {
    let schema = data_schema();
    let props = schema["properties"].as_object().unwrap();
    assert_eq!(schema["additionalProperties"], false);
    let scalar = release(
        &sum_spec(1),
        &[row(json!({"cohort": 1, "contributors": 1, "value": 3}))],
    )
    .unwrap();
    let grouped_r = release(
        &grouped(5),
        &[row(json!({"region": "a", "cohort": 9, "value": 9}))],
    )
    .unwrap();
    for data in [
        scalar.data(&sum_spec(1)),
        grouped_r.data(&grouped(5)),
        Released::Scalar(None).data(&count_rows(5)),
    ] {
        let obj = data.as_object().unwrap();
        for k in obj.keys() {
            assert!(props.contains_key(k), "{k} is not in the schema");
        }
        for k in schema["required"].as_array().unwrap() {
            assert!(
                obj.contains_key(k.as_str().unwrap()),
                "{k} missing from {data}"
            );
        }
    }
    assert_eq!(props["member_rows_included"], json!({"const": false}));
    assert_eq!(
        props["function"]["enum"],
        json!(["count", "sum", "avg", "min", "max"])
    );
    assert_eq!(props["groups"]["items"]["required"], json!(["value"]));
}

// ---------------------------------------------------------------------------
// The executor's check of recorded evidence rows.

fn rows(v: Value) -> Vec<Map<String, Value>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| row(r.clone()))
        .collect()
}

#[test]
fn ungrouped_evidence_is_one_value_or_the_suppression_marker() {
    let s = sum_spec(5);
    assert_eq!(
        check_evidence_rows(&s, &rows(json!([{"value": 1250}]))),
        Ok(())
    );
    assert_eq!(
        check_evidence_rows(&s, &rows(json!([{"value": 12.5}]))),
        Ok(())
    );
    assert_eq!(
        check_evidence_rows(&s, &rows(json!([{"suppressed": true}]))),
        Ok(())
    );
    for (bad, why) in [
        (json!([]), "exactly one row"),
        (json!([{"value": 1}, {"value": 2}]), "exactly one row"),
        (
            json!([{"id": "INV-3001", "tenant_id": "acme", "balance_cents": 25500}]),
            "column `id` is not part of an aggregate's result",
        ),
        (
            json!([{"value": 1, "tenant_id": "acme"}]),
            "column `tenant_id`",
        ),
        (json!([{"value": 1, "cohort": 7}]), "column `cohort`"),
        (json!([{"value": "1250"}]), "{\"value\": <number>}"),
        (json!([{"value": null}]), "{\"value\": <number>}"),
        (json!([{"suppressed": false}]), "{\"suppressed\": true}"),
        (
            json!([{"value": 1, "suppressed": true}]),
            "{\"value\": <number>}",
        ),
        (json!([{}]), "{\"value\": <number>}"),
    ] {
        let got = check_evidence_rows(&s, &rows(bad.clone())).unwrap_err();
        assert!(got.contains(why), "{bad}: {got}");
    }
}

#[test]
fn grouped_evidence_is_the_released_groups_only() {
    let s = spec_from(
        json!({"function": "avg", "column": "balance_cents", "minimum_group_size": 5, "group_by": ["region", "plan"], "max_groups": 2}),
    );
    let ok = json!([{"region": "west", "plan": "pro", "value": 12.5}, {"region": null, "plan": 3, "value": 7}]);
    assert_eq!(check_evidence_rows(&s, &rows(ok)), Ok(()));
    assert_eq!(check_evidence_rows(&s, &[]), Ok(()), "every group withheld");
    for (bad, why) in [
        (
            json!([{"region": "a", "plan": "p", "value": 1}, {"region": "b", "plan": "p", "value": 1}, {"region": "c", "plan": "p", "value": 1}]),
            "3 rows, but this aggregate releases at most 2 groups",
        ),
        (
            json!([{"region": "a", "plan": "p", "value": 1, "id": "INV-1"}]),
            "column `id` is not a group column",
        ),
        (
            json!([{"region": "a", "plan": "p", "value": 1, "balance_cents": 9}]),
            "column `balance_cents`",
        ),
        (json!([{"suppressed": true}]), "column `suppressed`"),
        (json!([{"region": "a", "plan": "p"}]), "numeric `value`"),
        (
            json!([{"region": "a", "plan": "p", "value": "1"}]),
            "numeric `value`",
        ),
        (json!([{"region": "a", "value": 1}]), "group column `plan`"),
        (
            json!([{"region": "a", "plan": ["p"], "value": 1}]),
            "group column `plan`",
        ),
        (
            json!([{"region": {"x": 1}, "plan": "p", "value": 1}]),
            "group column `region`",
        ),
        (
            json!([{"region": "a", "plan": "p", "value": 1}, {"plan": "p", "region": "a", "value": 2}]),
            "recorded twice",
        ),
    ] {
        let got = check_evidence_rows(&s, &rows(bad.clone())).unwrap_err();
        assert!(got.contains(why), "{bad}: {got}");
    }
    // The same group values in another group column are distinct groups.
    let distinct =
        json!([{"region": "a", "plan": "b", "value": 1}, {"region": "b", "plan": "a", "value": 1}]);
    assert_eq!(check_evidence_rows(&s, &rows(distinct)), Ok(()));
}

#[test]
fn a_long_foreign_column_name_is_shortened_in_the_refusal() {
    let long = "x".repeat(300);
    let mut r = Map::new();
    r.insert(long.clone(), json!(1));
    let got = check_evidence_rows(&sum_spec(5), &[r.clone()]).unwrap_err();
    assert!(
        got.contains(&"x".repeat(64)) && !got.contains(&"x".repeat(65)),
        "{got}"
    );
    r.insert("value".into(), json!(1));
    let got = check_evidence_rows(&grouped(5), &[r]).unwrap_err();
    assert!(!got.contains(&"x".repeat(65)), "{got}");
}

// ---------------------------------------------------------------------------
// What the model is told.

#[test]
fn the_tool_takes_no_arguments_and_says_what_it_returns() {
    let (cfg, _) = accepted(|_| {});
    let catalog = Catalog::new(&cfg, AliasMode::Canonical);
    let tool = catalog.tools().iter().find(|t| t.name == TOTAL).unwrap();
    assert_eq!(tool.kind, Kind::AggregateRead);
    assert_eq!(
        tool.input_schema,
        json!({"type": "object", "properties": {}, "required": [], "additionalProperties": false})
    );
    assert_eq!(
        tool.description,
        "Return the sum of late_fee_cents over invoices records where status = \"overdue\". Read-only; scoped to your tenant. Returns one reviewed aggregate, never records: a result of fewer than 5 records is withheld (no value, no count)."
    );
    // A reviewer's description is kept; the facts are still appended.
    let (cfg, _) = accepted(|c| {
        c["description"] = json!("Overdue late fees in total.");
        c["returns_hint"] = json!("A number of cents.");
    });
    let catalog = Catalog::new(&cfg, AliasMode::Openai);
    let tool = catalog
        .tools()
        .iter()
        .find(|t| t.canonical == TOTAL)
        .unwrap();
    assert_eq!(tool.name, "billing__overdue_balance_total");
    assert_eq!(
        tool.description,
        "Overdue late fees in total. Read-only; scoped to your tenant. Returns one reviewed aggregate, never records: a result of fewer than 5 records is withheld (no value, no count). A number of cents."
    );
}

#[test]
fn every_function_and_grouping_is_described_in_words() {
    let describe = |aggregate: Value| {
        let c = cap_with(|c| c["aggregate"] = aggregate);
        let s = c.aggregate.clone().unwrap();
        (what(&c, &s), describe_suffix(&c, &s))
    };
    let base = |f: &str| json!({"function": f, "column": "balance_cents", "minimum_group_size": 5});
    assert_eq!(
        describe(base("sum")).0,
        "the sum of balance_cents over invoices records"
    );
    assert_eq!(
        describe(base("avg")).0,
        "the average balance_cents of invoices records"
    );
    assert_eq!(
        describe(base("min")).0,
        "the lowest balance_cents among invoices records"
    );
    assert_eq!(
        describe(base("max")).0,
        "the highest balance_cents among invoices records"
    );
    assert_eq!(
        describe(json!({"function": "count", "count_mode": "rows", "minimum_group_size": 5})).0,
        "the number of invoices records"
    );
    assert_eq!(
        describe(json!({"function": "count", "count_mode": "non_null", "column": "waiver_reason", "minimum_group_size": 5})).0,
        "the number of invoices records with a waiver_reason"
    );
    let (w, suffix) = describe(json!({
        "function": "count", "count_mode": "rows", "minimum_group_size": 1,
        "selection": {"all": [term("status", json!("open")), term("customer_id", json!(4))]},
        "group_by": ["region", "plan"], "max_groups": 7
    }));
    assert_eq!(
        w,
        "the number of invoices records where status = \"open\" and customer_id = 4, per region and plan"
    );
    assert_eq!(
        suffix,
        " Read-only; scoped to your tenant. Returns one reviewed aggregate, never records: one value per group, at most 7 groups; no group is withheld for being small (minimum group size 1)."
    );
    let (_, suffix) = describe(
        json!({"function": "count", "count_mode": "rows", "minimum_group_size": 3, "group_by": ["region"]}),
    );
    assert!(
        suffix.ends_with(
            "at most 50 groups; a group of fewer than 3 records is withheld (no value, no count)."
        ),
        "{suffix}"
    );
    let c = cap_with(|c| {
        c["context"] = json!("local_operator");
        c["target"]["principal_scope_key"] = json!("customer_id");
    });
    assert!(
        describe_suffix(&c, c.aggregate.as_ref().unwrap())
            .contains("scoped to your tenant and to records assigned to you"),
    );
}

#[test]
fn integer_groups_beyond_double_precision_are_ordered_exactly() {
    // 2^53 + 1 and 2^53 are the same double: only an integer comparison
    // puts them in order.
    let s = spec_from(
        json!({"function": "count", "count_mode": "rows", "minimum_group_size": 1, "group_by": ["a"]}),
    );
    let rows: Vec<Map<String, Value>> = [
        json!({"a": 9_007_199_254_740_993i64, "cohort": 1, "value": 1}),
        json!({"a": 9_007_199_254_740_992i64, "cohort": 1, "value": 2}),
        json!({"a": -9_007_199_254_740_992i64, "cohort": 1, "value": 3}),
        json!({"a": -9_007_199_254_740_993i64, "cohort": 1, "value": 4}),
    ]
    .into_iter()
    .map(row)
    .collect();
    assert_eq!(
        release(&s, &rows).unwrap(),
        Released::Groups {
            groups: vec![
                row(json!({"a": -9_007_199_254_740_993i64, "value": 4})),
                row(json!({"a": -9_007_199_254_740_992i64, "value": 3})),
                row(json!({"a": 9_007_199_254_740_992i64, "value": 2})),
                row(json!({"a": 9_007_199_254_740_993i64, "value": 1})),
            ],
            withheld: 0,
        }
    );
}
