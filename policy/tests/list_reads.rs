//! List reads (`list`, Airlock's own key): the loader's every rule, the
//! page statement per engine (pinned), the values and parameters it binds,
//! the cursor (round trip, tampering, another capability, other filter
//! arguments), the fingerprint's determinism, rows against filters, the
//! executor's evidence check, and the arguments list reads use (arrays of
//! reviewed values, dates and date-times).
//!
//! Every case starts from the repository's reference config plus the list
//! read `support.list_tickets` (index 8), and states the outcome written
//! out by hand.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::cmp::Ordering;

use airlock_policy::args::{ArgErrorCode, validate_args};
use airlock_policy::catalog::{AliasMode, Catalog};
use airlock_policy::config::{ArgType, Capability, ContextProvider, Engine, StringFormat};
use airlock_policy::context::TrustedContext;
use airlock_policy::list_read::*;
use airlock_policy::load::Loaded;
use airlock_policy::{Config, load_config};
use serde_json::{Map, Value, json};

const REFERENCE: &str = include_str!("../../tests/fixtures/reference/airlock.reference.json");
const LIST: usize = 8;
const NAME: &str = "support.list_tickets";

fn list_cap() -> Value {
    json!({
        "name": NAME,
        "kind": "read",
        "source": "app_postgres",
        "context": "local_operator",
        "target": {"schema": "public", "table": "tickets", "primary_key": "id", "tenant_key": "tenant_id"},
        "args": {
            "customer_id": {"type": "string", "max_length": 64},
            "min_priority": {"type": "integer", "minimum": 0, "maximum": 10},
            "opened_after": {"type": "string", "format": "date-time"},
            "statuses": {"type": "array", "items": {"type": "string", "enum": ["open", "pending", "closed"]}, "max_items": 3}
        },
        "list": {
            "filters": [
                {"column": "customer_id", "op": "eq", "arg": "customer_id"},
                {"column": "priority", "op": "gte", "arg": "min_priority"},
                {"column": "opened_at", "op": "gte", "arg": "opened_after"},
                {"column": "status", "op": "in", "arg": "statuses"}
            ],
            "order_by": [{"column": "opened_at", "direction": "desc"}],
            "max_limit": 50,
            "default_limit": 20
        },
        "visible_columns": ["id", "customer_id", "status", "priority", "opened_at"]
    })
}

fn with_list() -> Value {
    let mut v: Value = serde_json::from_str(REFERENCE).unwrap();
    v["capabilities"].as_array_mut().unwrap().push(list_cap());
    v
}

fn edited(edit: impl FnOnce(&mut Value)) -> Loaded {
    let mut v = with_list();
    edit(&mut v);
    load_config(&v)
}

fn config_with(edit: impl FnOnce(&mut Value)) -> Config {
    let loaded = edited(edit);
    loaded
        .config
        .clone()
        .unwrap_or_else(|| panic!("unexpected errors: {:#?}", loaded.report))
}

fn config() -> Config {
    config_with(|_| {})
}

fn lc(v: &mut Value) -> &mut Value {
    &mut v["capabilities"][LIST]
}

fn parts(cfg: &Config) -> (&Capability, &ListSpec) {
    let cap = cfg.capability(NAME).unwrap();
    (cap, cap.list.as_ref().unwrap())
}

fn ctx() -> TrustedContext {
    TrustedContext {
        tenant_id: "acme".into(),
        principal: "agent_17".into(),
        source: ContextProvider::Environment,
    }
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn call(cfg: &Config, args: Value) -> ListCall {
    let (cap, spec) = parts(cfg);
    parse_call(cap, spec, Some(&args)).unwrap_or_else(|e| panic!("{e:?}"))
}

fn call_err(cfg: &Config, args: Value) -> CallError {
    let (cap, spec) = parts(cfg);
    parse_call(cap, spec, Some(&args)).unwrap_err()
}

const ALL_ARGS: fn() -> Value = || json!({"customer_id": "C-1", "min_priority": 2, "opened_after": "2026-01-15T10:00:00+02:00", "statuses": ["open", "pending"]});

/// A cursor after the row `T-9` opened at 2026-06-20T14:31:08Z, for `args`.
fn cursor_for(cfg: &Config, args: Value) -> String {
    let (cap, spec) = parts(cfg);
    let c = call(cfg, args);
    next_cursor(
        cap,
        spec,
        &c,
        &obj(json!({"id": "T-9", "opened_at": "2026-06-20T14:31:08Z"})),
    )
    .unwrap()
}

fn with_cursor(args: Value, cursor: &str) -> Value {
    let mut a = args;
    a["cursor"] = json!(cursor);
    a
}

// ---------------------------------------------------------------------------
// Loading.

#[test]
fn the_list_read_loads_to_exactly_this_spec() {
    let cfg = config();
    let (cap, spec) = parts(&cfg);
    assert_eq!(
        spec,
        &ListSpec {
            filters: vec![
                Filter {
                    column: "customer_id".into(),
                    op: FilterOp::Eq,
                    arg: "customer_id".into()
                },
                Filter {
                    column: "priority".into(),
                    op: FilterOp::Gte,
                    arg: "min_priority".into()
                },
                Filter {
                    column: "opened_at".into(),
                    op: FilterOp::Gte,
                    arg: "opened_after".into()
                },
                Filter {
                    column: "status".into(),
                    op: FilterOp::In,
                    arg: "statuses".into()
                },
            ],
            order_by: vec![OrderTerm {
                column: "opened_at".into(),
                direction: Direction::Desc
            }],
            max_limit: 50,
            default_limit: 20,
        }
    );
    assert_eq!(cap.lookup_arg, "");
    assert_eq!(cap.max_rows, 1);
    let statuses = cap.arg("statuses").unwrap();
    assert_eq!(statuses.ty, ArgType::Array);
    let items = statuses.items.as_ref().unwrap();
    assert_eq!((items.ty, items.max_items), (ArgType::String, 3));
    assert_eq!(
        items.enum_values,
        vec![json!("open"), json!("pending"), json!("closed")]
    );
    assert_eq!(
        cap.arg("opened_after").unwrap().format,
        Some(StringFormat::DateTime)
    );
    assert_eq!(cap.arg("customer_id").unwrap().format, None);
    assert!(cap.arg("customer_id").unwrap().items.is_none());
    assert_eq!(arg_kind(cap.arg("customer_id").unwrap()), ArgKind::Text);
    assert_eq!(arg_kind(cap.arg("min_priority").unwrap()), ArgKind::Integer);
    assert_eq!(
        arg_kind(cap.arg("opened_after").unwrap()),
        ArgKind::DateTime
    );
    assert_eq!(arg_kind(statuses), ArgKind::TextSet);
    // The other capabilities, and their serialized form (the digest), are
    // untouched by the new optional fields.
    let reference = load_config(&serde_json::from_str(REFERENCE).unwrap())
        .config
        .unwrap();
    for (a, b) in reference.capabilities.iter().zip(&cfg.capabilities) {
        assert_eq!(
            serde_json::to_value(a).unwrap(),
            serde_json::to_value(b).unwrap()
        );
        let text = serde_json::to_string(a).unwrap();
        assert!(
            !text.contains("\"list\"")
                && !text.contains("\"format\"")
                && !text.contains("\"items\""),
            "{text}"
        );
    }
    let listed = serde_json::to_value(cap).unwrap();
    assert_eq!(
        listed["list"]["order_by"],
        json!([{"column": "opened_at", "direction": "desc"}])
    );
    assert_eq!(listed["list"]["filters"][3]["op"], "in");
    assert_eq!(listed["args"][2]["format"], "date-time");
}

#[test]
fn defaults_other_kinds_and_a_list_without_arguments() {
    // No default_limit: 20, or max_limit when smaller; no direction: asc.
    let cfg = config_with(|v| {
        lc(v)["list"]
            .as_object_mut()
            .unwrap()
            .remove("default_limit");
        lc(v)["list"]["max_limit"] = json!(7);
        lc(v)["list"]["order_by"] =
            json!([{"column": "priority"}, {"column": "customer_id", "direction": "asc"}]);
    });
    let (_, spec) = parts(&cfg);
    assert_eq!((spec.max_limit, spec.default_limit), (7, 7));
    assert_eq!(spec.order_by[0].direction, Direction::Asc);
    let cfg = config_with(|v| {
        lc(v)["list"]
            .as_object_mut()
            .unwrap()
            .remove("default_limit");
    });
    assert_eq!(parts(&cfg).1.default_limit, 20);
    // Every op and kind that fits loads; an integer set, a date, a number,
    // a boolean, a list of every row with no filter and no order.
    let cfg = config_with(|v| {
        lc(v)["args"] = json!({
            "day": {"type": "string", "format": "date"},
            "weight": {"type": "number"},
            "urgent": {"type": "boolean"},
            "levels": {"type": "array", "items": {"type": "integer", "enum": [1, 2, 3]}, "max_items": 2}
        });
        lc(v)["list"]["filters"] = json!([
            {"column": "opened_at", "op": "lt", "arg": "day"},
            {"column": "priority", "op": "gt", "arg": "weight"},
            {"column": "priority", "op": "lte", "arg": "weight"},
            {"column": "customer_id", "op": "eq", "arg": "urgent"},
            {"column": "priority", "op": "in", "arg": "levels"}
        ]);
    });
    let cap = cfg.capability(NAME).unwrap();
    assert_eq!(arg_kind(cap.arg("day").unwrap()), ArgKind::Date);
    assert_eq!(arg_kind(cap.arg("weight").unwrap()), ArgKind::Number);
    assert_eq!(arg_kind(cap.arg("urgent").unwrap()), ArgKind::Boolean);
    assert_eq!(arg_kind(cap.arg("levels").unwrap()), ArgKind::IntegerSet);
    let cfg = config_with(|v| {
        lc(v)["args"] = json!({});
        lc(v)["list"] = json!({"max_limit": 10});
    });
    let (cap, spec) = parts(&cfg);
    assert!(cap.args.is_empty() && spec.filters.is_empty() && spec.order_by.is_empty());
    // At the limits: 16 filters, 3 order-by terms, 256 reviewed values.
    let cfg = config_with(|v| {
        let cols: Vec<String> = (0..16).map(|i| format!("c{i}")).collect();
        let mut visible = vec![json!("id")];
        visible.extend(cols.iter().map(|c| json!(c)));
        lc(v)["visible_columns"] = Value::Array(visible);
        lc(v)["args"] = Value::Object(
            cols.iter()
                .map(|c| (format!("a_{c}"), json!({"type": "integer"})))
                .collect(),
        );
        lc(v)["list"]["filters"] = Value::Array(
            cols.iter()
                .map(|c| json!({"column": c, "op": "gte", "arg": format!("a_{c}")}))
                .collect(),
        );
        lc(v)["list"]["order_by"] =
            json!([{"column": "c0"}, {"column": "c1"}, {"column": "c2", "direction": "desc"}]);
    });
    let (_, spec) = parts(&cfg);
    assert_eq!((spec.filters.len(), spec.order_by.len()), (16, 3));
    let many: Vec<Value> = (0..256).map(|i| json!(format!("s{i}"))).collect();
    let cfg =
        config_with(|v| lc(v)["args"]["statuses"]["items"]["enum"] = Value::Array(many.clone()));
    assert_eq!(
        cfg.capability(NAME)
            .unwrap()
            .arg("statuses")
            .unwrap()
            .items
            .as_ref()
            .unwrap()
            .enum_values
            .len(),
        256
    );
    let mut too_many = many;
    too_many.push(json!("s256"));
    let loaded = edited(|v| lc(v)["args"]["statuses"]["items"]["enum"] = Value::Array(too_many));
    let errors: Vec<(String, String)> = loaded
        .report
        .errors()
        .map(|d| (d.path.clone(), d.message.clone()))
        .collect();
    assert_eq!(
        errors,
        [(
            "$.capabilities[8].args.statuses.items.enum".to_owned(),
            "an enum must list 1 to 256 values".to_owned()
        )]
    );
}

/// One refused edit: every error as (exact path, message fragment).
struct Refused {
    what: &'static str,
    edit: fn(&mut Value),
    errors: &'static [(&'static str, &'static str)],
}

#[test]
fn every_loader_rule_refuses_with_its_path_and_a_fix() {
    let cases: &[Refused] = &[
        Refused {
            what: "lookup",
            edit: |v| lc(v)["lookup"] = json!({"id_from_arg": "customer_id"}),
            errors: &[(
                "$.capabilities[8].lookup",
                "finds its rows by `list.filters`, not by one key",
            )],
        },
        Refused {
            what: "max_rows",
            edit: |v| lc(v)["max_rows"] = json!(5),
            errors: &[(
                "$.capabilities[8].max_rows",
                "page size is `list.max_limit`, not `max_rows`",
            )],
        },
        Refused {
            what: "proposal",
            edit: |v| {
                lc(v)["kind"] = json!("proposal");
                lc(v)["patch"] = json!({"status": {"fixed": "x"}});
                lc(v)["allowed_columns"] = json!(["status"]);
                lc(v)["conflict_guard"] = json!({"column": "opened_at"});
                lc(v)["lookup"] = json!({"id_from_arg": "customer_id"});
                lc(v)["args"]["customer_id"]["required"] = json!(true);
                lc(v)["args"].as_object_mut().unwrap().remove("statuses");
                lc(v)["list"]["filters"].as_array_mut().unwrap().pop();
            },
            errors: &[(
                "$.capabilities[8].list",
                "`list` applies only to read capabilities",
            )],
        },
        Refused {
            what: "tenant key filter",
            edit: |v| {
                lc(v)["visible_columns"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!("tenant_id"));
                lc(v)["list"]["filters"][0]["column"] = json!("tenant_id");
            },
            errors: &[(
                "$.capabilities[8].list.filters[0].column",
                "`tenant_id` is the tenant key; a list read never filters it by an argument",
            )],
        },
        Refused {
            what: "principal key filter",
            edit: |v| {
                lc(v)["target"]["principal_scope_key"] = json!("assigned_to");
                lc(v)["visible_columns"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!("assigned_to"));
                lc(v)["list"]["filters"][0]["column"] = json!("assigned_to");
            },
            errors: &[(
                "$.capabilities[8].list.filters[0].column",
                "`assigned_to` is the principal scope key",
            )],
        },
        Refused {
            what: "hidden filter column",
            edit: |v| lc(v)["list"]["filters"][0]["column"] = json!("secret_notes"),
            errors: &[(
                "$.capabilities[8].list.filters[0].column",
                "`secret_notes` is not in `visible_columns`: a filter on a hidden column would let the model learn its values",
            )],
        },
        Refused {
            what: "hidden order column",
            edit: |v| lc(v)["list"]["order_by"][0]["column"] = json!("updated_at"),
            errors: &[(
                "$.capabilities[8].list.order_by[0].column",
                "`updated_at` is not in `visible_columns`: the cursor carries order-by values",
            )],
        },
        Refused {
            what: "hidden primary key",
            edit: |v| {
                lc(v)["visible_columns"].as_array_mut().unwrap().remove(0);
            },
            errors: &[(
                "$.capabilities[8].visible_columns",
                "the primary key `id` is not visible, but a list read's cursor carries it",
            )],
        },
        Refused {
            what: "reserved cursor",
            edit: |v| {
                lc(v)["args"]["cursor"] = json!({"type": "string"});
                lc(v)["list"]["filters"][0]["arg"] = json!("cursor");
                lc(v)["args"].as_object_mut().unwrap().remove("customer_id");
            },
            errors: &[(
                "$.capabilities[8].args.cursor",
                "argument `cursor` is reserved in a list read",
            )],
        },
        Refused {
            what: "limit (authority-shaped everywhere)",
            edit: |v| lc(v)["args"]["limit"] = json!({"type": "integer"}),
            errors: &[(
                "$.capabilities[8].args.limit",
                "named like authority or query shape",
            )],
        },
        Refused {
            what: "unused argument",
            edit: |v| lc(v)["args"]["note"] = json!({"type": "string"}),
            errors: &[(
                "$.capabilities[8].args.note",
                "argument `note` is used by no filter of `list.filters`",
            )],
        },
        Refused {
            what: "unknown filter argument",
            edit: |v| lc(v)["list"]["filters"][0]["arg"] = json!("nobody"),
            errors: &[(
                "$.capabilities[8].list.filters[0].arg",
                "`nobody` is not one of this capability's args",
            )],
        },
        Refused {
            what: "unknown op",
            edit: |v| lc(v)["list"]["filters"][0]["op"] = json!("like"),
            errors: &[(
                "$.capabilities[8].list.filters[0].op",
                "unknown filter op `like`",
            )],
        },
        Refused {
            what: "range on text",
            edit: |v| lc(v)["list"]["filters"][0]["op"] = json!("gt"),
            errors: &[(
                "$.capabilities[8].list.filters[0].op",
                "`gt` cannot compare with argument `customer_id` (string): a range filter needs an integer or number argument",
            )],
        },
        Refused {
            what: "range on boolean",
            edit: |v| {
                lc(v)["args"]["customer_id"] = json!({"type": "boolean"});
                lc(v)["list"]["filters"][0]["op"] = json!("lte");
            },
            errors: &[(
                "$.capabilities[8].list.filters[0].op",
                "`lte` cannot compare with argument `customer_id` (boolean)",
            )],
        },
        Refused {
            what: "in on a scalar",
            edit: |v| lc(v)["list"]["filters"][1]["op"] = json!("in"),
            errors: &[(
                "$.capabilities[8].list.filters[1].op",
                "an `in` filter needs an array argument",
            )],
        },
        Refused {
            what: "eq with an array",
            edit: |v| lc(v)["list"]["filters"][3]["op"] = json!("eq"),
            errors: &[(
                "$.capabilities[8].list.filters[3].op",
                "an array argument can only be used by an `in` filter",
            )],
        },
        Refused {
            what: "duplicate filter",
            edit: |v| {
                lc(v)["args"]["other_customer"] = json!({"type": "string"});
                lc(v)["list"]["filters"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"column": "customer_id", "op": "eq", "arg": "other_customer"}));
            },
            errors: &[(
                "$.capabilities[8].list.filters[4]",
                "a `eq` filter on `customer_id` is listed twice",
            )],
        },
        Refused {
            what: "too many filters",
            edit: |v| {
                lc(v)["list"]["filters"] = Value::Array(
                    (0..17)
                        .map(|_| json!({"column": "id", "op": "eq", "arg": "customer_id"}))
                        .collect(),
                );
            },
            errors: &[(
                "$.capabilities[8].list.filters",
                "17 filters; the limit is 16",
            )],
        },
        Refused {
            what: "four order terms",
            edit: |v| lc(v)["list"]["order_by"] = json!([{"column": "id"}, {"column": "status"}, {"column": "priority"}, {"column": "opened_at"}]),
            errors: &[(
                "$.capabilities[8].list.order_by",
                "4 order-by columns; the limit is 3",
            )],
        },
        Refused {
            what: "order twice",
            edit: |v| {
                lc(v)["list"]["order_by"] =
                    json!([{"column": "status"}, {"column": "status", "direction": "desc"}])
            },
            errors: &[(
                "$.capabilities[8].list.order_by[1].column",
                "`status` is ordered by twice",
            )],
        },
        Refused {
            what: "direction",
            edit: |v| lc(v)["list"]["order_by"][0]["direction"] = json!("down"),
            errors: &[(
                "$.capabilities[8].list.order_by[0].direction",
                "unknown direction \"down\"",
            )],
        },
        Refused {
            what: "direction type",
            edit: |v| lc(v)["list"]["order_by"][0]["direction"] = json!(1),
            errors: &[(
                "$.capabilities[8].list.order_by[0].direction",
                "unknown direction a number",
            )],
        },
        Refused {
            what: "max_limit missing",
            edit: |v| {
                lc(v)["list"].as_object_mut().unwrap().remove("max_limit");
            },
            errors: &[(
                "$.capabilities[8].list.max_limit",
                "missing required field `max_limit`",
            )],
        },
        Refused {
            what: "max_limit 101",
            edit: |v| lc(v)["list"]["max_limit"] = json!(101),
            errors: &[(
                "$.capabilities[8].list.max_limit",
                "expected a whole number from 1 to 100, found 101",
            )],
        },
        Refused {
            what: "max_limit 0",
            edit: |v| lc(v)["list"]["max_limit"] = json!(0),
            errors: &[(
                "$.capabilities[8].list.max_limit",
                "expected a whole number from 1 to 100, found 0",
            )],
        },
        Refused {
            what: "default over max",
            edit: |v| lc(v)["list"]["default_limit"] = json!(51),
            errors: &[(
                "$.capabilities[8].list.default_limit",
                "expected a whole number from 1 to 50, found 51",
            )],
        },
        Refused {
            what: "unknown list key",
            edit: |v| lc(v)["list"]["page_size"] = json!(5),
            errors: &[(
                "$.capabilities[8].list.page_size",
                "unknown field `page_size`",
            )],
        },
        Refused {
            what: "unsafe filter column",
            edit: |v| lc(v)["list"]["filters"][0]["column"] = json!("a b"),
            errors: &[(
                "$.capabilities[8].list.filters[0].column",
                "`a b` is not a safe SQL identifier",
            )],
        },
        Refused {
            what: "array outside a list read",
            edit: |v| {
                let a = v["capabilities"][0]["args"].as_object_mut().unwrap();
                a.insert("tags".into(), json!({"type": "array", "items": {"type": "string", "enum": ["a"]}, "max_items": 1}));
            },
            errors: &[(
                "$.capabilities[0].args.tags.type",
                "array arguments are only for a list read's `in` filters",
            )],
        },
        Refused {
            what: "array without items",
            edit: |v| {
                lc(v)["args"]["statuses"]
                    .as_object_mut()
                    .unwrap()
                    .remove("items");
            },
            errors: &[(
                "$.capabilities[8].args.statuses.items",
                "missing required field `items`",
            )],
        },
        Refused {
            what: "array without max_items",
            edit: |v| {
                lc(v)["args"]["statuses"]
                    .as_object_mut()
                    .unwrap()
                    .remove("max_items");
            },
            errors: &[(
                "$.capabilities[8].args.statuses.max_items",
                "missing required field `max_items`",
            )],
        },
        Refused {
            what: "max_items 51",
            edit: |v| lc(v)["args"]["statuses"]["max_items"] = json!(51),
            errors: &[(
                "$.capabilities[8].args.statuses.max_items",
                "expected a whole number from 1 to 50, found 51",
            )],
        },
        Refused {
            what: "max_items over the enum",
            edit: |v| lc(v)["args"]["statuses"]["max_items"] = json!(4),
            errors: &[(
                "$.capabilities[8].args.statuses.max_items",
                "max_items 4 is more than the 3 values of `items.enum`",
            )],
        },
        Refused {
            what: "boolean items",
            edit: |v| lc(v)["args"]["statuses"]["items"]["type"] = json!("boolean"),
            errors: &[(
                "$.capabilities[8].args.statuses.items.type",
                "array items of type `boolean` are not supported",
            )],
        },
        Refused {
            what: "item of the wrong type",
            edit: |v| lc(v)["args"]["statuses"]["items"]["enum"] = json!(["open", 2, "closed"]),
            errors: &[(
                "$.capabilities[8].args.statuses.items.enum[1]",
                "enum value 2 does not fit the items' type string",
            )],
        },
        Refused {
            what: "integer item of the wrong type",
            edit: |v| {
                lc(v)["args"]["statuses"]["items"] = json!({"type": "integer", "enum": [1, "2", 3]})
            },
            errors: &[(
                "$.capabilities[8].args.statuses.items.enum[1]",
                "enum value \"2\" does not fit the items' type integer",
            )],
        },
        Refused {
            what: "item twice",
            edit: |v| {
                lc(v)["args"]["statuses"]["items"]["enum"] = json!(["open", "open", "closed"])
            },
            errors: &[(
                "$.capabilities[8].args.statuses.items.enum[1]",
                "enum value \"open\" is listed twice",
            )],
        },
        Refused {
            what: "empty items enum",
            edit: |v| lc(v)["args"]["statuses"]["items"]["enum"] = json!([]),
            errors: &[(
                "$.capabilities[8].args.statuses.items.enum",
                "an enum must list 1 to 256 values",
            )],
        },
        Refused {
            what: "items without enum",
            edit: |v| {
                lc(v)["args"]["statuses"]["items"]
                    .as_object_mut()
                    .unwrap()
                    .remove("enum");
            },
            errors: &[(
                "$.capabilities[8].args.statuses.items.enum",
                "missing required field `enum`",
            )],
        },
        Refused {
            what: "unknown items key",
            edit: |v| lc(v)["args"]["statuses"]["items"]["max_length"] = json!(3),
            errors: &[(
                "$.capabilities[8].args.statuses.items.max_length",
                "unknown field `max_length`",
            )],
        },
        Refused {
            what: "enum on an array",
            edit: |v| lc(v)["args"]["statuses"]["enum"] = json!(["open"]),
            errors: &[(
                "$.capabilities[8].args.statuses.enum",
                "an array argument lists its allowed values under `items`",
            )],
        },
        Refused {
            what: "unknown format",
            edit: |v| lc(v)["args"]["opened_after"]["format"] = json!("time"),
            errors: &[(
                "$.capabilities[8].args.opened_after.format",
                "unknown format `time`",
            )],
        },
        Refused {
            what: "format on an integer",
            edit: |v| lc(v)["args"]["min_priority"]["format"] = json!("date"),
            errors: &[(
                "$.capabilities[8].args.min_priority.format",
                "`format` applies only to string arguments",
            )],
        },
        Refused {
            what: "items on a string",
            edit: |v| {
                lc(v)["args"]["customer_id"]["items"] = json!({"type": "string", "enum": ["a"]})
            },
            errors: &[(
                "$.capabilities[8].args.customer_id.items",
                "`items` applies only to array arguments",
            )],
        },
        Refused {
            what: "max_items on a string (Synapsor's object arrays)",
            edit: |v| lc(v)["args"]["customer_id"]["max_items"] = json!(2),
            errors: &[(
                "$.capabilities[8].args.customer_id.max_items",
                "(object-array arguments) is not supported by Airlock yet",
            )],
        },
        Refused {
            what: "unknown kind",
            edit: |v| lc(v)["kind"] = json!("listing"),
            errors: &[(
                "$.capabilities[8].kind",
                "unknown capability kind `listing`",
            )],
        },
        Refused {
            what: "filters not an array",
            edit: |v| lc(v)["list"]["filters"] = json!({"column": "id"}),
            errors: &[(
                "$.capabilities[8].list.filters",
                "expected an array, found an object",
            )],
        },
        Refused {
            what: "order_by not an array",
            edit: |v| lc(v)["list"]["order_by"] = json!("opened_at"),
            errors: &[(
                "$.capabilities[8].list.order_by",
                "expected an array, found a string",
            )],
        },
        Refused {
            what: "filter not an object",
            edit: |v| lc(v)["list"]["filters"][0] = json!("customer_id = ?"),
            errors: &[(
                "$.capabilities[8].list.filters[0]",
                "expected an object, found a string",
            )],
        },
        Refused {
            what: "filter without a column",
            edit: |v| {
                lc(v)["list"]["filters"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("column");
            },
            errors: &[(
                "$.capabilities[8].list.filters[0].column",
                "missing required field `column`",
            )],
        },
        Refused {
            what: "order without a column",
            edit: |v| lc(v)["list"]["order_by"][0] = json!({"direction": "asc"}),
            errors: &[(
                "$.capabilities[8].list.order_by[0].column",
                "missing required field `column`",
            )],
        },
        Refused {
            what: "items without a type",
            edit: |v| {
                lc(v)["args"]["statuses"]["items"]
                    .as_object_mut()
                    .unwrap()
                    .remove("type");
            },
            errors: &[(
                "$.capabilities[8].args.statuses.items.type",
                "missing required field `type`",
            )],
        },
        Refused {
            what: "max_limit missing, default given",
            edit: |v| {
                lc(v)["list"].as_object_mut().unwrap().remove("max_limit");
            },
            errors: &[(
                "$.capabilities[8].list.max_limit",
                "missing required field `max_limit`",
            )],
        },
        Refused {
            what: "list not an object",
            edit: |v| lc(v)["list"] = json!(true),
            errors: &[(
                "$.capabilities[8].list",
                "expected an object, found a boolean",
            )],
        },
        Refused {
            what: "freshness on a list read",
            edit: |v| {
                v["proposal_freshness"] = json!({"support.propose_plan_credit": {"approval": "required", "dependencies": [
                    {"id": "t", "capability": NAME, "identity_from_arg": "customer_id", "version_column": "opened_at"}
                ]}});
            },
            errors: &[(
                "$.proposal_freshness[\"support.propose_plan_credit\"].dependencies[0].capability",
                "is a list read; a dependency is one row found by its key",
            )],
        },
    ];
    for case in cases {
        let loaded = edited(case.edit);
        assert!(loaded.config.is_none(), "{}: a config came back", case.what);
        let got: Vec<(String, String, String)> = loaded
            .report
            .errors()
            .map(|d| (d.path.clone(), d.message.clone(), d.fix.clone()))
            .collect();
        assert_eq!(
            got.len(),
            case.errors.len(),
            "{}: expected {:?}, got {got:#?}",
            case.what,
            case.errors
        );
        for ((path, message, fix), (want_path, fragment)) in got.iter().zip(case.errors) {
            assert_eq!(path, want_path, "{}: {got:#?}", case.what);
            assert!(
                message.contains(fragment),
                "{}: message {message:?} lacks {fragment:?}",
                case.what
            );
            assert!(!fix.trim().is_empty(), "{}: no fix", case.what);
        }
    }
}

#[test]
fn a_row_read_is_unchanged_by_the_list_rules() {
    // `cursor` is an ordinary argument name outside list reads, and an
    // empty `args` is still refused for them.
    let loaded = edited(|v| {
        v["capabilities"][0]["args"]["cursor"] = json!({"type": "string"});
    });
    assert!(loaded.config.is_some(), "{:#?}", loaded.report);
    let loaded = edited(|v| v["capabilities"][0]["args"] = json!({}));
    let errors: Vec<String> = loaded.report.errors().map(|d| d.path.clone()).collect();
    assert!(
        errors.contains(&"$.capabilities[0].args".to_owned()),
        "{errors:?}"
    );
    // `format` is accepted on any string argument, and checked at call time.
    let cfg = config_with(|v| v["capabilities"][0]["args"]["ticket_id"]["format"] = json!("date"));
    let cap = cfg.capability("support.inspect_ticket").unwrap();
    assert_eq!(
        validate_args(cap, Some(&json!({"ticket_id": "2026-02-28"}))).unwrap()["ticket_id"],
        "2026-02-28"
    );
    let errs = validate_args(cap, Some(&json!({"ticket_id": "T-1"}))).unwrap_err();
    assert_eq!(errs[0].code, ArgErrorCode::InvalidFormat);
    assert_eq!(
        errs[0].message,
        "`ticket_id` must be a date written YYYY-MM-DD, e.g. 2026-06-20"
    );
}

// ---------------------------------------------------------------------------
// The page statement.

#[test]
fn the_page_statement_is_pinned_per_engine() {
    let cfg = config();
    let (cap, spec) = parts(&cfg);
    let cursor = cursor_for(&cfg, ALL_ARGS());
    let full = call(&cfg, with_cursor(ALL_ARGS(), &cursor));
    let first = call(&cfg, json!({}));

    let pg = page_query(Engine::Postgres, cap, spec, &full, &ctx());
    assert_eq!(
        pg.sql,
        "SELECT \"id\", \"customer_id\", \"status\", \"priority\", \"opened_at\", \"tenant_id\" FROM \"public\".\"tickets\" WHERE \"customer_id\" = $1 AND \"priority\" >= CAST($2 AS BIGINT) AND \"opened_at\" >= CAST(CAST($3 AS TEXT) AS TIMESTAMPTZ) AND \"status\" IN ($4, $5, $6) AND \"tenant_id\"::text = $7 AND (\"opened_at\" < $8 OR (\"opened_at\" = $9 AND \"id\" > $10)) ORDER BY \"opened_at\" DESC NULLS FIRST, \"id\" ASC LIMIT $11"
    );
    assert_eq!(
        pg.values,
        vec![
            json!("C-1"),
            json!(2),
            json!("2026-01-15T08:00:00.000000Z"),
            json!("open"),
            json!("pending"),
            json!("pending"),
            json!("acme"),
            json!("2026-06-20T14:31:08Z"),
            json!("2026-06-20T14:31:08Z"),
            json!("T-9"),
            json!(21)
        ]
    );
    let from: Vec<String> = pg.parameters().into_iter().map(|(f, _)| f).collect();
    assert_eq!(
        from,
        [
            "arg:customer_id",
            "arg:min_priority",
            "arg:opened_after",
            "arg:statuses",
            "arg:statuses",
            "arg:statuses",
            "trusted_context:tenant_id",
            "cursor",
            "cursor",
            "cursor",
            "limit"
        ]
    );
    assert_eq!(
        pg.parameters()[1],
        ("arg:min_priority".to_owned(), "integer")
    );
    assert_eq!(pg.parameters()[0], ("arg:customer_id".to_owned(), "string"));
    assert_eq!(
        page_query(Engine::Postgres, cap, spec, &first, &ctx()).sql,
        "SELECT \"id\", \"customer_id\", \"status\", \"priority\", \"opened_at\", \"tenant_id\" FROM \"public\".\"tickets\" WHERE \"tenant_id\"::text = $1 ORDER BY \"opened_at\" DESC NULLS FIRST, \"id\" ASC LIMIT $2"
    );

    let my = page_query(Engine::Mysql, cap, spec, &full, &ctx());
    assert_eq!(
        my.sql,
        "SELECT `id`, `customer_id`, `status`, `priority`, `opened_at`, `tenant_id` FROM `public`.`tickets` WHERE (`customer_id` = ? AND CAST(`customer_id` AS BINARY) = CAST(? AS BINARY)) AND `priority` >= ? AND `opened_at` >= CAST(? AS DATETIME(6)) AND (`status` IN (?, ?, ?) AND CAST(`status` AS BINARY) IN (CAST(? AS BINARY), CAST(? AS BINARY), CAST(? AS BINARY))) AND CAST(CAST(`tenant_id` AS CHAR) AS BINARY) = CAST(? AS BINARY) AND (`opened_at` < ? OR (`opened_at` = ? AND `id` > ?)) ORDER BY `opened_at` IS NULL DESC, `opened_at` DESC, `id` ASC LIMIT ?"
    );
    assert_eq!(
        my.values,
        vec![
            json!("C-1"),
            json!("C-1"),
            json!(2),
            json!("2026-01-15 08:00:00.000000"),
            json!("open"),
            json!("pending"),
            json!("pending"),
            json!("open"),
            json!("pending"),
            json!("pending"),
            json!("acme"),
            json!("2026-06-20T14:31:08Z"),
            json!("2026-06-20T14:31:08Z"),
            json!("T-9"),
            json!(21)
        ]
    );
    assert_eq!(my.params.len(), my.sql.matches('?').count());

    let lite = page_query(Engine::Sqlite, cap, spec, &full, &ctx());
    assert_eq!(
        lite.sql,
        "SELECT \"id\", \"customer_id\", \"status\", \"priority\", \"opened_at\", \"tenant_id\" FROM \"public\".\"tickets\" WHERE \"customer_id\" = ? AND \"priority\" >= ? AND strftime('%Y-%m-%d %H:%M:%f', \"opened_at\") >= strftime('%Y-%m-%d %H:%M:%f', ?) AND \"status\" IN (?, ?, ?) AND CAST(\"tenant_id\" AS TEXT) = ? AND (\"opened_at\" < ? OR (\"opened_at\" = ? AND \"id\" > ?)) ORDER BY \"opened_at\" IS NULL DESC, \"opened_at\" DESC, \"id\" ASC LIMIT ?"
    );
    assert_eq!(lite.values[2], json!("2026-01-15T08:00:00.000000Z"));
    assert_eq!(
        page_query(Engine::Sqlite, cap, spec, &first, &ctx()).sql,
        "SELECT \"id\", \"customer_id\", \"status\", \"priority\", \"opened_at\", \"tenant_id\" FROM \"public\".\"tickets\" WHERE CAST(\"tenant_id\" AS TEXT) = ? ORDER BY \"opened_at\" IS NULL DESC, \"opened_at\" DESC, \"id\" ASC LIMIT ?"
    );
}

#[test]
fn every_filter_kind_and_order_has_its_sql_and_values() {
    let cfg = config_with(|v| {
        lc(v)["target"]["principal_scope_key"] = json!("assigned_to");
        lc(v)["args"] = json!({
            "day": {"type": "string", "format": "date"},
            "weight": {"type": "number"},
            "urgent": {"type": "boolean"},
            "levels": {"type": "array", "items": {"type": "integer", "enum": [1, 2, 3]}, "max_items": 2},
            "top": {"type": "integer"}
        });
        lc(v)["list"]["filters"] = json!([
            {"column": "opened_at", "op": "lt", "arg": "day"},
            {"column": "priority", "op": "gt", "arg": "weight"},
            {"column": "customer_id", "op": "eq", "arg": "urgent"},
            {"column": "priority", "op": "in", "arg": "levels"},
            {"column": "priority", "op": "lte", "arg": "top"},
            {"column": "id", "op": "eq", "arg": "top"}
        ]);
        lc(v)["list"]["order_by"] =
            json!([{"column": "status"}, {"column": "priority", "direction": "desc"}]);
    });
    let (cap, spec) = parts(&cfg);
    let args = json!({"day": "2026-03-01", "weight": 2.5, "urgent": true, "levels": [3], "top": 7});
    let cursor = {
        let c = call(&cfg, args.clone());
        next_cursor(
            cap,
            spec,
            &c,
            &obj(json!({"id": 41, "status": "open", "priority": 3})),
        )
        .unwrap()
    };
    let c = call(&cfg, with_cursor(args, &cursor));
    let pg = page_query(Engine::Postgres, cap, spec, &c, &ctx());
    assert_eq!(
        pg.sql,
        "SELECT \"id\", \"customer_id\", \"status\", \"priority\", \"opened_at\", \"tenant_id\", \"assigned_to\" FROM \"public\".\"tickets\" WHERE \"opened_at\" < CAST(CAST($1 AS TEXT) AS DATE) AND \"priority\" > CAST($2 AS NUMERIC) AND \"customer_id\" = $3 AND \"priority\" IN ($4, $5) AND \"priority\" <= CAST($6 AS BIGINT) AND \"id\" = $7 AND \"tenant_id\"::text = $8 AND \"assigned_to\"::text = $9 AND ((\"status\" > $10 OR \"status\" IS NULL) OR (\"status\" = $11 AND (\"priority\" < $12 OR (\"priority\" = $13 AND \"id\" > $14)))) ORDER BY \"status\" ASC NULLS LAST, \"priority\" DESC NULLS FIRST, \"id\" ASC LIMIT $15"
    );
    assert_eq!(
        pg.values,
        vec![
            json!("2026-03-01"),
            json!(2.5),
            json!("true"),
            json!(3),
            json!(3),
            json!(7),
            json!(7),
            json!("acme"),
            json!("agent_17"),
            json!("open"),
            json!("open"),
            json!(3),
            json!(3),
            json!(41),
            json!(21)
        ]
    );
    let types: Vec<&str> = pg.parameters().into_iter().map(|(_, t)| t).collect();
    assert_eq!(
        types,
        [
            "string", "number", "string", "integer", "integer", "integer", "integer", "string",
            "string", "string", "string", "integer", "integer", "integer", "integer"
        ]
    );
    assert_eq!(pg.parameters()[8].0, "trusted_context:principal");
    let my = page_query(Engine::Mysql, cap, spec, &c, &ctx());
    assert_eq!(
        my.sql,
        "SELECT `id`, `customer_id`, `status`, `priority`, `opened_at`, `tenant_id`, `assigned_to` FROM `public`.`tickets` WHERE `opened_at` < CAST(? AS DATE) AND `priority` > ? AND `customer_id` = ? AND `priority` IN (?, ?) AND `priority` <= ? AND `id` = ? AND CAST(CAST(`tenant_id` AS CHAR) AS BINARY) = CAST(? AS BINARY) AND CAST(CAST(`assigned_to` AS CHAR) AS BINARY) = CAST(? AS BINARY) AND ((`status` > ? OR `status` IS NULL) OR (`status` = ? AND (`priority` < ? OR (`priority` = ? AND `id` > ?)))) ORDER BY `status` IS NULL, `status` ASC, `priority` IS NULL DESC, `priority` DESC, `id` ASC LIMIT ?"
    );
    // Booleans bind as 1/0 on MySQL and SQLite.
    assert_eq!(my.values[2], json!(1));
    let lite = page_query(Engine::Sqlite, cap, spec, &c, &ctx());
    assert!(lite.sql.starts_with("SELECT \"id\", \"customer_id\", \"status\", \"priority\", \"opened_at\", \"tenant_id\", \"assigned_to\" FROM \"public\".\"tickets\" WHERE strftime('%Y-%m-%d %H:%M:%f', \"opened_at\") < strftime('%Y-%m-%d %H:%M:%f', ?) AND \"priority\" > ? AND \"customer_id\" = ? AND \"priority\" IN (?, ?) AND \"priority\" <= ? AND"), "{}", lite.sql);
    assert!(lite.sql.ends_with("ORDER BY \"status\" IS NULL, \"status\" ASC, \"priority\" IS NULL DESC, \"priority\" DESC, \"id\" ASC LIMIT ?"), "{}", lite.sql);
    let falsy = call(&cfg, json!({"urgent": false}));
    assert_eq!(
        page_query(Engine::Sqlite, cap, spec, &falsy, &ctx()).values[0],
        json!(0)
    );
    assert_eq!(
        page_query(Engine::Postgres, cap, spec, &falsy, &ctx()).values[0],
        json!("false")
    );
    // A Postgres cursor over a boolean binds its text for the server to cast.
    assert_eq!(
        page_query(Engine::Postgres, cap, spec, &falsy, &ctx()).parameters()[0],
        ("arg:urgent".to_owned(), "string")
    );
}

#[test]
fn the_fingerprint_depends_only_on_engine_capability_and_which_arguments_are_present() {
    let cfg = config();
    let (cap, spec) = parts(&cfg);
    let fp = |engine, args: Value| {
        page_query(engine, cap, spec, &call(&cfg, args), &ctx()).fingerprint()
    };
    let one = fp(
        Engine::Postgres,
        json!({"customer_id": "C-1", "statuses": ["open"]}),
    );
    // Other values, another limit, another tenant: the same statement.
    assert_eq!(
        one,
        fp(
            Engine::Postgres,
            json!({"customer_id": "C-2", "statuses": ["open", "pending", "closed"], "limit": 3})
        )
    );
    let other_tenant = TrustedContext {
        tenant_id: "globex".into(),
        ..ctx()
    };
    assert_eq!(
        one,
        page_query(
            Engine::Postgres,
            cap,
            spec,
            &call(&cfg, json!({"customer_id": "x", "statuses": ["closed"]})),
            &other_tenant
        )
        .fingerprint()
    );
    assert!(one.starts_with("sha256:") && one.len() == 71, "{one}");
    // Another set of arguments present, a cursor, another engine: another.
    let all = [
        one.clone(),
        fp(Engine::Postgres, json!({"customer_id": "C-1"})),
        fp(Engine::Postgres, json!({"statuses": ["open"]})),
        fp(Engine::Postgres, json!({})),
        fp(
            Engine::Postgres,
            with_cursor(
                json!({"customer_id": "C-1", "statuses": ["open"]}),
                &cursor_for(&cfg, json!({"customer_id": "C-1", "statuses": ["open"]})),
            ),
        ),
        fp(
            Engine::Mysql,
            json!({"customer_id": "C-1", "statuses": ["open"]}),
        ),
        fp(
            Engine::Sqlite,
            json!({"customer_id": "C-1", "statuses": ["open"]}),
        ),
    ];
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            assert_ne!(a, b);
        }
    }
    // Twice the same: the same.
    assert_eq!(fp(Engine::Mysql, json!({})), fp(Engine::Mysql, json!({})));
}

// ---------------------------------------------------------------------------
// The call: limit and cursor.

#[test]
fn limit_defaults_and_bounds() {
    let cfg = config();
    assert_eq!(call(&cfg, json!({})).limit, 20);
    assert_eq!(call(&cfg, json!({"limit": null})).limit, 20);
    assert_eq!(call(&cfg, json!({"limit": 1})).limit, 1);
    assert_eq!(call(&cfg, json!({"limit": 50})).limit, 50);
    assert_eq!(call(&cfg, json!({"limit": 5.0})).limit, 5);
    let (cap, spec) = parts(&cfg);
    assert_eq!(parse_call(cap, spec, None).unwrap().limit, 20);
    assert_eq!(parse_call(cap, spec, Some(&Value::Null)).unwrap().limit, 20);
    let one = |args: Value| match call_err(&cfg, args) {
        CallError::Arguments(errs) => (
            errs[0].argument.clone(),
            errs[0].code,
            errs[0].message.clone(),
        ),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        one(json!({"limit": 51})),
        (
            "limit".into(),
            ArgErrorCode::AboveMaximum,
            "`limit` is 51; this tool returns at most 50 rows a page".into()
        )
    );
    assert_eq!(
        one(json!({"limit": 0})),
        (
            "limit".into(),
            ArgErrorCode::BelowMinimum,
            "`limit` is 0; the minimum is 1".into()
        )
    );
    assert_eq!(one(json!({"limit": -3})).1, ArgErrorCode::BelowMinimum);
    assert_eq!(
        one(json!({"limit": 2.5})),
        (
            "limit".into(),
            ArgErrorCode::WrongType,
            "`limit` must be a whole number, not 2.5".into()
        )
    );
    assert_eq!(
        one(json!({"limit": "5"})),
        (
            "limit".into(),
            ArgErrorCode::WrongType,
            "`limit` must be a whole number, not a string".into()
        )
    );
    assert_eq!(
        one(json!({"cursor": 7})),
        (
            "cursor".into(),
            ArgErrorCode::WrongType,
            "`cursor` must be a string (the `next_cursor` of the previous page), not a number"
                .into()
        )
    );
    assert_eq!(one(json!({"page": 2})).1, ArgErrorCode::UnknownArgument);
    assert_eq!(one(json!({"statuses": []})).1, ArgErrorCode::ItemCount);
    assert_eq!(one(json!(["x"])).1, ArgErrorCode::NotAnObject);
    // Every problem at once: a bad filter argument and a bad limit.
    match call_err(&cfg, json!({"min_priority": 11, "limit": 0})) {
        CallError::Arguments(errs) => {
            let codes: Vec<ArgErrorCode> = errs.iter().map(|e| e.code).collect();
            assert_eq!(
                codes,
                [ArgErrorCode::AboveMaximum, ArgErrorCode::BelowMinimum]
            );
        }
        other => panic!("{other:?}"),
    }
    match call_err(&cfg, json!({"limit": 0, "cursor": "x"})) {
        CallError::Arguments(errs) => assert_eq!(errs.len(), 1),
        other => panic!("{other:?}"),
    }
    // The recorded arguments read back to the same call.
    let c = call(
        &cfg,
        with_cursor(
            json!({"customer_id": "C-1"}),
            &cursor_for(&cfg, json!({"customer_id": "C-1"})),
        ),
    );
    let rec = c.recorded_args();
    assert_eq!(rec["limit"], 20);
    assert_eq!(rec["cursor"], json!(c.cursor_text.clone().unwrap()));
    assert_eq!(
        parse_call(parts(&cfg).0, parts(&cfg).1, Some(&Value::Object(rec))).unwrap(),
        c
    );
    assert!(!call(&cfg, json!({})).recorded_args().contains_key("cursor"));
    assert!(c.applies(&parts(&cfg).1.filters[0]) && !c.applies(&parts(&cfg).1.filters[1]));
}

#[test]
fn a_cursor_round_trips_and_a_wrong_one_is_refused() {
    let cfg = config();
    let (cap, spec) = parts(&cfg);
    let args = json!({"customer_id": "C-1", "statuses": ["open"]});
    let cursor = cursor_for(&cfg, args.clone());
    let c = call(&cfg, with_cursor(args.clone(), &cursor));
    assert_eq!(
        c.cursor,
        Some(Cursor {
            after: vec![json!("2026-06-20T14:31:08Z")],
            key: json!("T-9")
        })
    );
    assert_eq!(c.cursor_text.as_deref(), Some(cursor.as_str()));
    // Another limit is fine: the cursor binds the filters, not the size.
    call(
        &cfg,
        with_cursor(
            json!({"customer_id": "C-1", "statuses": ["open"], "limit": 3}),
            &cursor,
        ),
    );
    let cursor_refusal = |args: Value| match call_err(&cfg, args) {
        CallError::Cursor(m) => m,
        other => panic!("{other:?}"),
    };
    let not_ours = "the cursor is not one this tool issued";
    let not_this = "the cursor does not belong to this listing";
    // Other filter arguments (another value, one more, one fewer).
    for other in [
        json!({"customer_id": "C-2", "statuses": ["open"]}),
        json!({"customer_id": "C-1", "statuses": ["open", "closed"]}),
        json!({"customer_id": "C-1"}),
        json!({"customer_id": "C-1", "statuses": ["open"], "min_priority": 0}),
    ] {
        assert!(cursor_refusal(with_cursor(other, &cursor)).starts_with(not_this));
    }
    // Altered: its position changed and re-encoded without the digest.
    let decoded: Value = serde_json::from_slice(&base64url_decode(&cursor).unwrap()).unwrap();
    let mut moved = decoded.clone();
    moved["key"] = json!("T-1");
    let forged = base64url_encode(moved.to_string().as_bytes());
    assert!(cursor_refusal(with_cursor(args.clone(), &forged)).starts_with(not_this));
    let mut moved = decoded.clone();
    moved["after"] = json!(["2030-01-01T00:00:00Z"]);
    assert!(
        cursor_refusal(with_cursor(
            args.clone(),
            &base64url_encode(moved.to_string().as_bytes())
        ))
        .starts_with(not_this)
    );
    // Malformed: not base64url, not JSON, wrong shape, too long, empty.
    let mut shapes = Vec::new();
    for (k, v) in [
        ("v", json!(2)),
        ("after", json!(["a", "b"])),
        ("after", json!([null])),
        ("key", json!(null)),
        ("key", json!({})),
        ("d", json!(1)),
        ("extra", json!(1)),
    ] {
        let mut d = decoded.clone();
        d[k] = v;
        shapes.push(base64url_encode(d.to_string().as_bytes()));
    }
    let mut missing = decoded.clone();
    missing.as_object_mut().unwrap().remove("d");
    shapes.push(base64url_encode(missing.to_string().as_bytes()));
    shapes.push(base64url_encode(b"[1]"));
    shapes.push(base64url_encode(b"{\"v\":1,\"v\":1}"));
    shapes.push(base64url_encode(b"not json"));
    shapes.push(format!("{cursor}="));
    shapes.push(cursor.replace('e', "+"));
    shapes.push(String::new());
    shapes.push("A".repeat(MAX_CURSOR_CHARS + 1));
    for bad in shapes {
        assert!(
            cursor_refusal(with_cursor(args.clone(), &bad)).starts_with(not_ours),
            "{bad}"
        );
    }
    // A cursor of another capability with the same order and arguments.
    let twin = config_with(|v| {
        let mut other = list_cap();
        other["name"] = json!("support.list_tickets_again");
        v["capabilities"].as_array_mut().unwrap().push(other);
    });
    let again = twin.capability("support.list_tickets_again").unwrap();
    let again_spec = again.list.as_ref().unwrap();
    let theirs = next_cursor(
        again,
        again_spec,
        &parse_call(again, again_spec, Some(&args)).unwrap(),
        &obj(json!({"id": "T-9", "opened_at": "2026-06-20T14:31:08Z"})),
    )
    .unwrap();
    assert_ne!(theirs, cursor);
    assert!(cursor_refusal(with_cursor(args.clone(), &theirs)).starts_with(not_this));
    // The same capability reordered: its cursors are refused too.
    let asc = config_with(|v| lc(v)["list"]["order_by"][0]["direction"] = json!("asc"));
    let (acap, aspec) = parts(&asc);
    match parse_call(acap, aspec, Some(&with_cursor(args.clone(), &cursor))) {
        Err(CallError::Cursor(m)) => assert!(m.starts_with(not_this)),
        other => panic!("{other:?}"),
    }
    // Deterministic: the same row and arguments give the same cursor.
    assert_eq!(cursor, cursor_for(&cfg, args.clone()));
    let _ = (cap, spec);
}

#[test]
fn no_cursor_points_at_a_null_or_a_non_scalar() {
    let cfg = config();
    let (cap, spec) = parts(&cfg);
    let c = call(&cfg, json!({}));
    let err =
        next_cursor(cap, spec, &c, &obj(json!({"id": "T-4", "opened_at": null}))).unwrap_err();
    assert!(
        err.contains("past the row with id `T-4`: its `opened_at` is empty (NULL)"),
        "{err}"
    );
    assert!(next_cursor(cap, spec, &c, &obj(json!({"id": "T-4"}))).is_err());
    assert!(
        next_cursor(
            cap,
            spec,
            &c,
            &obj(json!({"id": "T-4", "opened_at": ["a"]}))
        )
        .is_err()
    );
    assert!(
        next_cursor(
            cap,
            spec,
            &c,
            &obj(json!({"id": "T-4", "opened_at": {"a": 1}}))
        )
        .is_err()
    );
    let err = next_cursor(
        cap,
        spec,
        &c,
        &obj(json!({"id": null, "opened_at": "2026-01-01"})),
    )
    .unwrap_err();
    assert!(err.contains("primary key `id` is empty"), "{err}");
    for ok in [json!("2026-01-01"), json!(3), json!(2.5), json!(true)] {
        let cur = next_cursor(cap, spec, &c, &obj(json!({"id": 7, "opened_at": ok}))).unwrap();
        let back = call(&cfg, json!({"cursor": cur})).cursor.unwrap();
        assert_eq!(
            back,
            Cursor {
                after: vec![ok],
                key: json!(7)
            }
        );
    }
}

#[test]
fn base64url_is_exact_both_ways() {
    for (plain, encoded) in [
        (&b""[..], ""),
        (b"f", "Zg"),
        (b"fo", "Zm8"),
        (b"foo", "Zm9v"),
        (b"foob", "Zm9vYg"),
        (b"fooba", "Zm9vYmE"),
        (b"foobar", "Zm9vYmFy"),
        (&[0xfb, 0xff, 0xbf][..], "-_-_"),
        (&[0, 0x10, 0x83][..], "ABCD"),
    ] {
        assert_eq!(base64url_encode(plain), encoded);
        assert_eq!(base64url_decode(encoded).as_deref(), Some(plain));
    }
    for bad in ["Zg==", "Z", "Zh", "Zm9", "+/+/", "Zm9v Yg", "é"] {
        assert_eq!(base64url_decode(bad), None, "{bad}");
    }
    // Non-zero trailing bits: one encoding per value.
    assert_eq!(base64url_decode("Zm9="), None);
    assert_eq!(base64url_decode("Zm-"), None);
    assert_eq!(base64url_decode("Zh"), None);
    let all: Vec<u8> = (0..=255).collect();
    assert_eq!(base64url_decode(&base64url_encode(&all)), Some(all));
}

// ---------------------------------------------------------------------------
// Rows against filters.

#[test]
fn rows_are_checked_exactly_against_each_filter_kind() {
    use ArgKind::*;
    use FilterOp::*;
    let m =
        |op, kind, row: Value, arg: Value| value_matches(Engine::Postgres, op, kind, &row, &arg);
    // Text: exact, case and spaces matter; numbers compare by their text.
    assert!(m(Eq, Text, json!("C-1"), json!("C-1")));
    assert!(!m(Eq, Text, json!("c-1"), json!("C-1")));
    assert!(!m(Eq, Text, json!("C-1 "), json!("C-1")));
    assert!(m(Eq, Text, json!(7), json!("7")));
    assert!(!m(Eq, Text, json!(null), json!("null")));
    assert!(!m(Eq, Text, json!(true), json!("true")));
    // Numbers: integers exactly, decimal strings and floats by value.
    assert!(m(Eq, Integer, json!(5), json!(5)));
    assert!(!m(Eq, Integer, json!(5), json!(6)));
    assert!(m(Eq, Number, json!("12.50"), json!(12.5)));
    assert!(m(Gte, Integer, json!(5), json!(5)));
    assert!(!m(Gt, Integer, json!(5), json!(5)));
    assert!(m(Gt, Integer, json!(6), json!(5)));
    assert!(m(Lt, Number, json!(4.5), json!(5)));
    assert!(!m(Lt, Number, json!(5), json!(5)));
    assert!(m(Lte, Number, json!("5.00"), json!(5)));
    assert!(!m(Lte, Number, json!(5.01), json!(5)));
    assert!(m(
        Gte,
        Integer,
        json!(9_007_199_254_740_993u64),
        json!(9_007_199_254_740_993u64)
    ));
    assert!(!m(
        Gt,
        Integer,
        json!(9_007_199_254_740_993u64),
        json!(9_007_199_254_740_993u64)
    ));
    assert!(m(Gt, Integer, json!(u64::MAX), json!(i64::MAX)));
    assert!(!m(Gte, Integer, json!(null), json!(0)));
    assert!(!m(Gte, Integer, json!("abc"), json!(0)));
    assert!(!m(Eq, Number, json!("NaN"), json!(0)));
    // Booleans: true/false, or 1/0.
    assert!(m(Eq, Boolean, json!(true), json!(true)));
    assert!(m(Eq, Boolean, json!(1), json!(true)));
    assert!(m(Eq, Boolean, json!(0), json!(false)));
    assert!(!m(Eq, Boolean, json!(2), json!(true)));
    assert!(!m(Eq, Boolean, json!(false), json!(true)));
    assert!(!m(Eq, Boolean, json!(null), json!(false)));
    assert!(!m(Eq, Boolean, json!("true"), json!(true)));
    // Sets: exact membership.
    assert!(m(In, TextSet, json!("open"), json!(["pending", "open"])));
    assert!(!m(In, TextSet, json!("OPEN"), json!(["open"])));
    assert!(!m(In, TextSet, json!(null), json!(["null"])));
    assert!(m(In, IntegerSet, json!(2), json!([1, 2])));
    assert!(m(In, IntegerSet, json!("2"), json!([2])));
    assert!(!m(In, IntegerSet, json!(3), json!([1, 2])));
    // Times: instants, any offset or separator; dates are midnight UTC.
    assert!(m(
        Gte,
        DateTime,
        json!("2026-01-15T08:00:00Z"),
        json!("2026-01-15T10:00:00+02:00")
    ));
    assert!(!m(
        Gt,
        DateTime,
        json!("2026-01-15 08:00:00"),
        json!("2026-01-15T10:00:00+02:00")
    ));
    assert!(m(
        Eq,
        DateTime,
        json!("2026-01-15T08:00:00.000000"),
        json!("2026-01-15T08:00:00Z")
    ));
    assert!(m(
        Lt,
        DateTime,
        json!("2026-01-15T07:59:59.999999Z"),
        json!("2026-01-15T08:00:00Z")
    ));
    assert!(m(
        Gte,
        DateTime,
        json!("2026-01-16"),
        json!("2026-01-15T08:00:00Z")
    ));
    assert!(m(
        Gte,
        Date,
        json!("2026-01-15T00:00:00Z"),
        json!("2026-01-15")
    ));
    assert!(!m(
        Gte,
        Date,
        json!("2026-01-14T23:59:59Z"),
        json!("2026-01-15")
    ));
    assert!(m(Lte, Date, json!("-infinity"), json!("2026-01-15")));
    assert!(m(Gt, Date, json!("infinity"), json!("2026-01-15")));
    assert!(!m(
        Gte,
        DateTime,
        json!("soon"),
        json!("2026-01-15T08:00:00Z")
    ));
    assert!(!m(
        Gte,
        DateTime,
        json!(null),
        json!("2026-01-15T08:00:00Z")
    ));
    assert!(!m(
        Gte,
        DateTime,
        json!(1_768_464_000),
        json!("2026-01-15T08:00:00Z")
    ));
    assert!(!m(
        Gte,
        DateTime,
        json!("2026-01-15T08:00:00Z"),
        json!("not a time")
    ));
    // SQLite compares times to the millisecond, as its strftime does.
    let lite = |row: &str, arg: &str| {
        value_matches(Engine::Sqlite, Eq, DateTime, &json!(row), &json!(arg))
    };
    assert!(lite("2026-01-15T08:00:00.0004Z", "2026-01-15T08:00:00Z"));
    assert!(!lite("2026-01-15T08:00:00.0006Z", "2026-01-15T08:00:00Z"));
    assert!(!value_matches(
        Engine::Postgres,
        Eq,
        DateTime,
        &json!("2026-01-15T08:00:00.0004Z"),
        &json!("2026-01-15T08:00:00Z")
    ));
    assert!(!value_matches(
        Engine::Mysql,
        Eq,
        DateTime,
        &json!("2026-01-15T08:00:00.0004Z"),
        &json!("2026-01-15T08:00:00Z")
    ));
}

#[test]
fn a_row_violation_names_the_filter() {
    let cfg = config();
    let (cap, spec) = parts(&cfg);
    let c = call(&cfg, ALL_ARGS());
    let good = obj(
        json!({"id": "T-1", "customer_id": "C-1", "priority": 2, "opened_at": "2026-01-15T08:00:00Z", "status": "pending"}),
    );
    assert_eq!(row_violation(Engine::Mysql, cap, spec, &c, &good), None);
    let bad = |k: &str, v: Value| {
        let mut row = good.clone();
        row.insert(k.into(), v);
        row_violation(Engine::Mysql, cap, spec, &c, &row)
    };
    assert_eq!(
        bad("customer_id", json!("c-1")).as_deref(),
        Some("does not satisfy the filter `customer_id eq customer_id`")
    );
    assert_eq!(
        bad("priority", json!(1)).as_deref(),
        Some("does not satisfy the filter `priority gte min_priority`")
    );
    assert_eq!(
        bad("opened_at", json!("2026-01-15T07:59:59Z")).as_deref(),
        Some("does not satisfy the filter `opened_at gte opened_after`")
    );
    assert_eq!(
        bad("status", json!("closed")).as_deref(),
        Some("does not satisfy the filter `status in statuses`")
    );
    let mut missing = good.clone();
    missing.remove("status");
    assert_eq!(
        row_violation(Engine::Mysql, cap, spec, &c, &missing).as_deref(),
        Some("does not carry the column of the filter `status in statuses`")
    );
    // A filter whose argument is absent does not apply.
    let none = call(&cfg, json!({"customer_id": "C-1"}));
    assert_eq!(
        row_violation(
            Engine::Mysql,
            cap,
            spec,
            &none,
            &obj(json!({"customer_id": "C-1"}))
        ),
        None
    );
}

// ---------------------------------------------------------------------------
// The executor's check of a recorded page.

struct Page {
    args: Map<String, Value>,
    fingerprint: String,
    parameters: Vec<(u32, String, String)>,
    rows: Vec<Map<String, Value>>,
}

fn honest(cfg: &Config, engine: Engine, args: Value, rows: Vec<Value>) -> Page {
    let (cap, spec) = parts(cfg);
    let c = call(cfg, args);
    let q = page_query(engine, cap, spec, &c, &ctx());
    Page {
        args: c.recorded_args(),
        fingerprint: q.fingerprint(),
        parameters: q
            .parameters()
            .into_iter()
            .enumerate()
            .map(|(i, (f, t))| (i as u32 + 1, f, t.to_owned()))
            .collect(),
        rows: rows.into_iter().map(obj).collect(),
    }
}

fn check(cfg: &Config, engine: Engine, p: &Page) -> Result<ListCall, EvidenceRefusal> {
    let (cap, spec) = parts(cfg);
    let params: Vec<(u32, &str, &str)> = p
        .parameters
        .iter()
        .map(|(i, f, t)| (*i, f.as_str(), t.as_str()))
        .collect();
    let page = RecordedPage {
        args: &p.args,
        fingerprint: &p.fingerprint,
        parameters: &params,
        rows: &p.rows,
    };
    check_evidence(engine, cap, spec, &ctx(), page)
}

fn refused(cfg: &Config, engine: Engine, p: &Page) -> (RefusalKind, String) {
    let r = check(cfg, engine, p).unwrap_err();
    (r.kind, r.message)
}

fn row(id: &str, priority: i64) -> Value {
    json!({"id": id, "customer_id": "C-1", "status": "open", "priority": priority, "opened_at": "2026-02-01T00:00:00Z", "tenant_id": "acme"})
}

#[test]
fn the_executor_accepts_an_honest_page_and_refuses_every_forgery() {
    let cfg = config();
    let args = json!({"customer_id": "C-1", "min_priority": 2, "limit": 2});
    let rows = vec![row("T-1", 2), row("T-2", 9)];
    for engine in [Engine::Postgres, Engine::Mysql, Engine::Sqlite] {
        let p = honest(&cfg, engine, args.clone(), rows.clone());
        assert_eq!(check(&cfg, engine, &p).unwrap().limit, 2);
        // The same page recorded as another engine's statement is refused.
        let other = if engine == Engine::Mysql {
            Engine::Sqlite
        } else {
            Engine::Mysql
        };
        assert_eq!(refused(&cfg, other, &p).0, RefusalKind::PolicyViolation);
    }
    let e = Engine::Postgres;
    let base = || honest(&cfg, e, args.clone(), rows.clone());
    // An empty page is a page.
    assert!(check(&cfg, e, &honest(&cfg, e, args.clone(), vec![])).is_ok());
    // A forged fingerprint: the row statement, another filter set.
    let mut p = base();
    p.fingerprint = airlock_policy::statement::read_statement(e, parts(&cfg).0).fingerprint();
    assert_eq!(refused(&cfg, e, &p), (RefusalKind::PolicyViolation, "the query fingerprint is not the reviewed page statement of this list read for the recorded arguments".into()));
    let mut p = base();
    p.fingerprint = honest(&cfg, e, json!({"customer_id": "C-1"}), vec![]).fingerprint;
    assert_eq!(refused(&cfg, e, &p).0, RefusalKind::PolicyViolation);
    // Parameters that are not the statement's: a position, a source, a type, one missing or extra.
    let params_msg =
        "the recorded parameters are not those of the page statement for the recorded arguments";
    for forge in [
        (|p: &mut Page| p.parameters[0].0 = 2) as fn(&mut Page),
        |p| p.parameters[2].1 = "arg:min_priority".into(),
        |p| p.parameters[1].2 = "string".into(),
        |p| {
            p.parameters.pop();
        },
        |p| p.parameters.push((9, "limit".into(), "integer".into())),
        |p| p.parameters.clear(),
    ] {
        let mut p = base();
        forge(&mut p);
        assert_eq!(
            refused(&cfg, e, &p),
            (RefusalKind::PolicyViolation, params_msg.into())
        );
    }
    // More rows than the limit.
    let mut p = base();
    p.rows.push(obj(row("T-3", 5)));
    assert_eq!(
        refused(&cfg, e, &p),
        (
            RefusalKind::PolicyViolation,
            "3 rows recorded for a page of at most 2 (its `limit`)".into()
        )
    );
    // A row that violates a filter, or lacks its key.
    let mut p = base();
    p.rows[1] = obj(row("T-2", 1));
    assert_eq!(refused(&cfg, e, &p), (RefusalKind::PolicyViolation, "row 1 of the page does not satisfy the filter `priority gte min_priority` of the recorded arguments".into()));
    let mut p = base();
    p.rows[0]["customer_id"] = json!("C-2");
    assert!(
        refused(&cfg, e, &p).1.starts_with(
            "row 0 of the page does not satisfy the filter `customer_id eq customer_id`"
        )
    );
    let mut p = base();
    p.rows[0].remove("id");
    assert_eq!(
        refused(&cfg, e, &p),
        (
            RefusalKind::PolicyViolation,
            "row 0 of the page does not carry its primary key `id`".into()
        )
    );
    let mut p = base();
    p.rows[0]["id"] = Value::Null;
    assert_eq!(refused(&cfg, e, &p).0, RefusalKind::PolicyViolation);
    // Arguments that are no call, a limit over the maximum, a foreign cursor.
    let mut p = base();
    p.args.insert("min_priority".into(), json!(11));
    let (kind, msg) = refused(&cfg, e, &p);
    assert_eq!(kind, RefusalKind::InvalidRequest);
    assert!(
        msg.starts_with("the read's arguments do not match the capability: `min_priority` is 11"),
        "{msg}"
    );
    let mut p = base();
    p.args.insert("limit".into(), json!(500));
    assert_eq!(refused(&cfg, e, &p).0, RefusalKind::InvalidRequest);
    let mut p = base();
    p.args.insert(
        "cursor".into(),
        json!(cursor_for(&cfg, json!({"customer_id": "C-9"}))),
    );
    let (kind, msg) = refused(&cfg, e, &p);
    assert_eq!(kind, RefusalKind::InvalidRequest);
    assert!(
        msg.starts_with("the read's cursor is refused: the cursor does not belong to this listing"),
        "{msg}"
    );
    // An honest page after a cursor.
    let cursor = cursor_for(&cfg, json!({"customer_id": "C-1", "min_priority": 2}));
    let p = honest(&cfg, e, with_cursor(args.clone(), &cursor), rows.clone());
    assert!(check(&cfg, e, &p).unwrap().cursor.is_some());
}

// ---------------------------------------------------------------------------
// The arguments list reads use.

#[test]
fn array_arguments_hold_distinct_reviewed_values() {
    let cfg = config_with(|v| {
        lc(v)["args"]["levels"] = json!({"type": "array", "items": {"type": "integer", "enum": [1, 2, 3]}, "max_items": 2});
        lc(v)["list"]["filters"]
            .as_array_mut()
            .unwrap()
            .push(json!({"column": "priority", "op": "in", "arg": "levels"}));
    });
    let cap = cfg.capability(NAME).unwrap();
    let ok = |a: Value| validate_args(cap, Some(&a)).unwrap();
    assert_eq!(
        ok(json!({"statuses": ["closed", "open"]}))["statuses"],
        json!(["closed", "open"])
    );
    assert_eq!(
        ok(json!({"statuses": ["open", "pending", "closed"]}))["statuses"],
        json!(["open", "pending", "closed"])
    );
    assert_eq!(ok(json!({"levels": [2.0, 3]}))["levels"], json!([2, 3]));
    let err = |a: Value| {
        let e = validate_args(cap, Some(&a)).unwrap_err();
        (e[0].code, e[0].message.clone())
    };
    assert_eq!(
        err(json!({"statuses": []})),
        (
            ArgErrorCode::ItemCount,
            "`statuses` must list 1 to 3 values; it lists 0".into()
        )
    );
    assert_eq!(
        err(json!({"levels": [1, 2, 3]})),
        (
            ArgErrorCode::ItemCount,
            "`levels` must list 1 to 2 values; it lists 3".into()
        )
    );
    assert_eq!(
        err(json!({"statuses": "open"})),
        (
            ArgErrorCode::WrongType,
            "`statuses` must be an array of values from \"open\", \"pending\", \"closed\"".into()
        )
    );
    assert_eq!(err(json!({"statuses": ["open", "OPEN"]})), (ArgErrorCode::NotInEnum, "`statuses` may hold only \"open\", \"pending\", \"closed\"; \"OPEN\" is not one of them".into()));
    assert_eq!(err(json!({"statuses": [1]})).0, ArgErrorCode::NotInEnum);
    assert_eq!(err(json!({"levels": ["1"]})).0, ArgErrorCode::NotInEnum);
    assert_eq!(err(json!({"levels": [1.5]})).0, ArgErrorCode::NotInEnum);
    assert_eq!(err(json!({"levels": [4]})).0, ArgErrorCode::NotInEnum);
    assert_eq!(err(json!({"levels": [null]})).0, ArgErrorCode::NotInEnum);
    assert_eq!(
        err(json!({"statuses": ["open", "open"]})),
        (
            ArgErrorCode::DuplicateItem,
            "`statuses` lists \"open\" twice; list each value once".into()
        )
    );
    assert_eq!(
        err(json!({"levels": [2, 2.0]})).0,
        ArgErrorCode::DuplicateItem
    );
    // The tool's input schema says the same.
    let tool = Catalog::new(&cfg, AliasMode::Canonical)
        .tools()
        .iter()
        .find(|t| t.name == NAME)
        .cloned()
        .unwrap();
    assert_eq!(
        tool.input_schema["properties"]["levels"],
        json!({"type": "array", "items": {"type": "integer", "enum": [1, 2, 3]}, "minItems": 1, "maxItems": 2, "uniqueItems": true})
    );
}

#[test]
fn an_array_argument_without_items_accepts_nothing() {
    // Only a hand-built spec can lack `items` (the loader requires them).
    let cfg = config();
    let mut cap = cfg.capability(NAME).unwrap().clone();
    for a in &mut cap.args {
        a.items = None;
    }
    let e = validate_args(&cap, Some(&json!({"statuses": ["open"]}))).unwrap_err();
    assert_eq!(
        (e[0].code, e[0].message.as_str()),
        (
            ArgErrorCode::WrongType,
            "`statuses` is not a usable array argument"
        )
    );
    assert_eq!(arg_kind(cap.arg("statuses").unwrap()), ArgKind::TextSet);
}

#[test]
fn dates_and_date_times_are_checked_and_normalized() {
    let cfg = config_with(|v| {
        lc(v)["args"]["day"] = json!({"type": "string", "format": "date"});
        lc(v)["list"]["filters"]
            .as_array_mut()
            .unwrap()
            .push(json!({"column": "opened_at", "op": "lt", "arg": "day"}));
    });
    let cap = cfg.capability(NAME).unwrap();
    let valid = |k: &str, s: &str| validate_args(cap, Some(&json!({k: s}))).is_ok();
    for good in [
        "2026-06-20",
        "2024-02-29",
        "2000-02-29",
        "0001-01-01",
        "9999-12-31",
    ] {
        assert!(valid("day", good), "{good}");
    }
    for bad in [
        "2026-02-29",
        "1900-02-29",
        "2026-13-01",
        "2026-00-10",
        "2026-04-31",
        "2026-06-00",
        "2026-6-20",
        "20260620",
        "2026-06-20T00:00:00Z",
        " 2026-06-20",
        "2026/06/20",
        "",
    ] {
        assert!(!valid("day", bad), "{bad}");
    }
    for good in [
        "2026-06-20T14:31:08Z",
        "2026-06-20t14:31:08z",
        "2026-06-20T14:31:08.5+02:00",
        "2026-06-20T14:31:08.123456-11:30",
        "2026-06-20T14:31:08+23:59",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59.999999Z",
    ] {
        assert!(valid("opened_after", good), "{good}");
    }
    for bad in [
        "2026-06-20T14:31:08",
        "2026-06-20 14:31:08Z",
        "2026-06-20T14:31Z",
        "2026-06-20T24:00:00Z",
        "2026-06-20T14:60:00Z",
        "2026-06-20T14:31:60Z",
        "2026-06-20T14:31:08.1234567Z",
        "2026-06-20T14:31:08.Z",
        "2026-06-20T14:31:08+0200",
        "2026-06-20T14:31:08+02",
        "2026-06-20T14:31:08+24:00",
        "2026-06-20T14:31:08+02:60",
        "0001-01-01T00:00:00+00:01",
        "9999-12-31T23:59:59-00:01",
        "2026-06-20",
        "2026-06-20T14:31:08Zjunk",
    ] {
        assert!(!valid("opened_after", bad), "{bad}");
    }
    let e = validate_args(cap, Some(&json!({"opened_after": "yesterday"}))).unwrap_err();
    assert_eq!(e[0].code, ArgErrorCode::InvalidFormat);
    assert!(
        e[0].message
            .starts_with("`opened_after` must be an RFC 3339 date-time with an offset"),
        "{}",
        e[0].message
    );
    // Normalized to UTC, per engine.
    assert_eq!(
        normalize_date_time(Engine::Postgres, "2026-06-20T16:31:08.5+02:00").as_deref(),
        Some("2026-06-20T14:31:08.500000Z")
    );
    assert_eq!(
        normalize_date_time(Engine::Sqlite, "2026-01-01T00:30:00+01:00").as_deref(),
        Some("2025-12-31T23:30:00.000000Z")
    );
    assert_eq!(
        normalize_date_time(Engine::Mysql, "2024-02-29T23:59:59.000001-00:01").as_deref(),
        Some("2024-03-01 00:00:59.000001")
    );
    assert_eq!(normalize_date_time(Engine::Mysql, "not a time"), None);
    // The page binds the normalized form; the tool's schema says the format.
    let (cap, spec) = parts(&cfg);
    let c = call(
        &cfg,
        json!({"opened_after": "2026-06-20T16:31:08+02:00", "day": "2026-07-01"}),
    );
    assert_eq!(
        page_query(Engine::Mysql, cap, spec, &c, &ctx()).values[..2],
        [json!("2026-06-20 14:31:08.000000"), json!("2026-07-01")]
    );
    let tool = Catalog::new(&cfg, AliasMode::Canonical)
        .tools()
        .iter()
        .find(|t| t.name == NAME)
        .cloned()
        .unwrap();
    assert_eq!(
        tool.input_schema["properties"]["day"],
        json!({"type": "string", "maxLength": 4096, "format": "date"})
    );
}

#[test]
fn times_as_databases_return_them_parse_to_instants() {
    let at = |s: &str| parse_row_time(s);
    let base = at("2026-06-20T14:31:08Z").unwrap();
    for same in [
        "2026-06-20T14:31:08",
        "2026-06-20 14:31:08",
        "2026-06-20T14:31:08.000Z",
        "2026-06-20T16:31:08+02:00",
        "2026-06-20T16:31:08+02",
        "2026-06-20T16:31:08+0200",
        "2026-06-20T12:31:08-02:00",
        "2026-06-20t14:31:08z",
    ] {
        assert_eq!(at(same), Some(base), "{same}");
    }
    assert_eq!(at("2026-06-20T14:31"), at("2026-06-20T14:31:00Z"));
    assert_eq!(at("2026-06-20"), at("2026-06-20T00:00:00Z"));
    assert_eq!(at("2026-06-20"), parse_date("2026-06-20"));
    assert_eq!(
        at("2026-06-20T14:31:08.123456789"),
        at("2026-06-20T14:31:08.123456Z")
    );
    assert_eq!(at("1970-01-01T00:00:00Z"), Some(Instant::At(0)));
    assert_eq!(at("1970-01-02"), Some(Instant::At(86_400_000_000)));
    assert_eq!(at("1969-12-31T23:59:59.999999Z"), Some(Instant::At(-1)));
    assert_eq!(
        parse_date_time("2026-06-20T14:31:08.25Z"),
        Some(Instant::At(1_781_965_868_250_000))
    );
    assert_eq!(at("infinity"), Some(Instant::Infinity));
    assert_eq!(at("-infinity"), Some(Instant::NegInfinity));
    assert!(
        Instant::NegInfinity < Instant::At(i64::MIN) && Instant::At(i64::MAX) < Instant::Infinity
    );
    for bad in [
        "",
        "now",
        "2026-06-20X14:31:08",
        "2026-06-20T1:31:08",
        "2026-06-20T14:31:08.",
        "2026-06-20T14:31:08.1234567890",
        "2026-06-20T14:31:08 +02:00",
        "2026-06-20T14",
        "2026-02-30",
        "Infinity",
    ] {
        assert_eq!(at(bad), None, "{bad}");
    }
}

#[test]
fn ops_parse_print_and_decide() {
    use FilterOp::*;
    for op in FilterOp::ALL {
        assert_eq!(FilterOp::parse(op.as_str()), Some(op));
    }
    assert_eq!(FilterOp::parse("EQ"), None);
    assert_eq!(FilterOp::parse("ne"), None);
    assert_eq!(
        [Eq, Gt, Gte, Lt, Lte, In].map(FilterOp::sql),
        ["=", ">", ">=", "<", "<=", "IN"]
    );
    assert_eq!(
        [Eq, Gt, Gte, Lt, Lte, In].map(FilterOp::is_range),
        [false, true, true, true, true, false]
    );
    let table =
        |op: FilterOp| [Ordering::Less, Ordering::Equal, Ordering::Greater].map(|o| op.holds(o));
    assert_eq!(table(Eq), [false, true, false]);
    assert_eq!(table(Gt), [false, false, true]);
    assert_eq!(table(Gte), [false, true, true]);
    assert_eq!(table(Lt), [true, false, false]);
    assert_eq!(table(Lte), [true, true, false]);
    assert_eq!(table(In), [false, false, false]);
    assert_eq!(Direction::parse("asc"), Some(Direction::Asc));
    assert_eq!(Direction::parse("desc"), Some(Direction::Desc));
    assert_eq!(Direction::parse("DESC"), None);
    assert_eq!(
        (Direction::Asc.as_str(), Direction::Desc.as_str()),
        ("asc", "desc")
    );
    // Which argument kinds each op takes.
    use ArgKind::*;
    let kinds = [
        Text, Integer, Number, Boolean, Date, DateTime, TextSet, IntegerSet,
    ];
    let takes = |op: FilterOp| kinds.map(|k| op_refusal(op, k).is_none());
    assert_eq!(
        takes(Eq),
        [true, true, true, true, true, true, false, false]
    );
    for range in [Gt, Gte, Lt, Lte] {
        assert_eq!(
            takes(range),
            [false, true, true, false, true, true, false, false]
        );
    }
    assert_eq!(
        takes(In),
        [false, false, false, false, false, false, true, true]
    );
    assert_eq!(value_type(&json!("x")), "string");
    assert_eq!(value_type(&json!(1)), "integer");
    assert_eq!(value_type(&json!(u64::MAX)), "integer");
    assert_eq!(value_type(&json!(1.5)), "number");
    assert_eq!(value_type(&json!(true)), "boolean");
    assert_eq!(value_type(&Value::Null), "null");
    assert_eq!(
        ListParam::Principal.bound_from(),
        "trusted_context:principal"
    );
}

// ---------------------------------------------------------------------------
// What the model sees.

#[test]
fn the_tool_describes_the_list_and_adds_limit_and_cursor() {
    let cfg = config();
    let tool = Catalog::new(&cfg, AliasMode::Canonical)
        .tools()
        .iter()
        .find(|t| t.name == NAME)
        .cloned()
        .unwrap();
    assert_eq!(
        tool.description,
        "List tickets records where customer_id = `customer_id`, priority >= `min_priority`, opened_at >= `opened_after`, status in `statuses` (a filter applies only when its argument is given), ordered by opened_at descending, then id. 20 rows a page unless `limit` says otherwise (at most 50); when `next_cursor` is not null, pass it as `cursor` with the same arguments for the next page. Read-only; scoped to your tenant. Returns: id, customer_id, status, priority, opened_at."
    );
    assert_eq!(
        tool.input_schema,
        json!({
            "type": "object",
            "properties": {
                "customer_id": {"type": "string", "maxLength": 64},
                "min_priority": {"type": "integer", "minimum": 0, "maximum": 10},
                "opened_after": {"type": "string", "maxLength": 4096, "format": "date-time"},
                "statuses": {"type": "array", "items": {"type": "string", "enum": ["open", "pending", "closed"]}, "minItems": 1, "maxItems": 3, "uniqueItems": true},
                "limit": {"type": "integer", "description": "Rows per page: 1 to 50, 20 when left out.", "minimum": 1, "maximum": 50, "default": 20},
                "cursor": {"type": "string", "description": "The `next_cursor` of the previous page, exactly as given, with the same filter arguments; leave it out for the first page.", "maxLength": 2048}
            },
            "required": [],
            "additionalProperties": false
        })
    );
    // No filters, ascending, a principal scope: said so.
    let cfg = config_with(|v| {
        lc(v)["args"] = json!({});
        lc(v)["target"]["principal_scope_key"] = json!("assigned_to");
        lc(v)["list"] =
            json!({"order_by": [{"column": "status"}], "max_limit": 5, "default_limit": 2});
    });
    let tool = Catalog::new(&cfg, AliasMode::Canonical)
        .tools()
        .iter()
        .find(|t| t.name == NAME)
        .cloned()
        .unwrap();
    assert_eq!(
        tool.description,
        "List tickets records, ordered by status ascending, then id. 2 rows a page unless `limit` says otherwise (at most 5); when `next_cursor` is not null, pass it as `cursor` with the same arguments for the next page. Read-only; scoped to your tenant and to records assigned to you. Returns: id, customer_id, status, priority, opened_at."
    );
    // A configured description replaces the generated one.
    let cfg = config_with(|v| lc(v)["description"] = json!("Find tickets."));
    let tool = Catalog::new(&cfg, AliasMode::Canonical)
        .tools()
        .iter()
        .find(|t| t.name == NAME)
        .cloned()
        .unwrap();
    assert!(
        tool.description.starts_with("Find tickets. Read-only;"),
        "{}",
        tool.description
    );
}

/// The fenced ```json blocks of a document that are list-read capabilities.
fn documented_list_reads(doc: &str) -> Vec<Value> {
    let text =
        std::fs::read_to_string(format!("{}/../docs/{doc}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let mut out = Vec::new();
    let mut block: Option<String> = None;
    for line in text.lines() {
        match (&mut block, line.trim()) {
            (None, "```json") => block = Some(String::new()),
            (Some(b), "```") => {
                if let Ok(v) = serde_json::from_str::<Value>(b)
                    && v.get("list").is_some()
                    && v.get("name").is_some()
                {
                    out.push(v);
                }
                block = None;
            }
            (Some(b), _) => {
                b.push_str(line);
                b.push('\n');
            }
            (None, _) => {}
        }
    }
    out
}

#[test]
fn the_documented_list_reads_load() {
    for doc in ["config-reference.md", "getting-started.md"] {
        let examples = documented_list_reads(doc);
        assert_eq!(examples.len(), 1, "{doc}");
        for mut example in examples {
            // On the reference config's source (the guide names its own).
            example["source"] = json!("app_postgres");
            let loaded = edited(|v| {
                v["capabilities"].as_array_mut().unwrap().pop();
                v["capabilities"].as_array_mut().unwrap().push(example);
            });
            assert!(loaded.config.is_some(), "{doc}: {:#?}", loaded.report);
        }
    }
}

/// Dates across centuries and 400-year eras survive the round trip through
/// day numbers exactly (the leap-century rules: 1900 is not a leap year,
/// 2000 is, 1600 is).
#[test]
fn date_times_round_trip_across_centuries_and_eras() {
    use airlock_policy::config::Engine;
    use airlock_policy::list_read::normalize_date_time;
    for (input, expected) in [
        ("1600-02-29T12:00:00Z", "1600-02-29T12:00:00.000000Z"),
        ("1700-03-01T00:00:00Z", "1700-03-01T00:00:00.000000Z"),
        ("1752-09-14T08:00:00Z", "1752-09-14T08:00:00.000000Z"),
        ("1899-12-31T23:59:59Z", "1899-12-31T23:59:59.000000Z"),
        ("1900-02-28T23:59:59Z", "1900-02-28T23:59:59.000000Z"),
        ("1900-03-01T00:00:00Z", "1900-03-01T00:00:00.000000Z"),
        ("1999-12-31T23:59:59Z", "1999-12-31T23:59:59.000000Z"),
        ("2000-02-29T00:00:00Z", "2000-02-29T00:00:00.000000Z"),
        ("2000-03-01T00:00:00Z", "2000-03-01T00:00:00.000000Z"),
        ("2100-02-28T10:00:00Z", "2100-02-28T10:00:00.000000Z"),
        ("2399-12-31T00:00:00Z", "2399-12-31T00:00:00.000000Z"),
        ("2400-02-29T00:00:00Z", "2400-02-29T00:00:00.000000Z"),
        ("9999-12-31T23:59:59Z", "9999-12-31T23:59:59.000000Z"),
        ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000000Z"),
    ] {
        assert_eq!(
            normalize_date_time(Engine::Postgres, input).as_deref(),
            Some(expected),
            "{input}"
        );
    }
    // Every day of 1896..1904 and 1996..2004 comes back as itself.
    for year in (1896..1905).chain(1996..2005) {
        for month in 1..=12 {
            for day in 1..=31 {
                let text = format!("{year:04}-{month:02}-{day:02}T06:00:00Z");
                if let Some(out) = normalize_date_time(Engine::Sqlite, &text) {
                    assert_eq!(
                        out,
                        format!("{year:04}-{month:02}-{day:02}T06:00:00.000000Z")
                    );
                }
            }
        }
    }
}

/// `YYYY-MM-DD` needs both of its dashes: one in place and the other
/// replaced is not a date, whichever of the two is wrong.
#[test]
fn a_date_needs_both_of_its_dashes() {
    for bad in ["2026-06/20", "2026/06-20", "2026-06.20", "2026_06-20"] {
        assert_eq!(parse_date(bad), None, "{bad}");
        assert_eq!(parse_row_time(bad), None, "{bad}");
        let time = format!("{bad}T14:31:08Z");
        assert_eq!(parse_date_time(&time), None, "{time}");
    }
    assert_eq!(
        parse_date("2026-06-20"),
        Some(Instant::At(1_781_913_600_000_000))
    );
}

/// An offset of five characters after the sign is `HH:MM` only: another
/// character where the colon goes is refused, strictly and leniently.
#[test]
fn a_five_character_offset_needs_its_colon() {
    for bad in [
        "2026-06-20T14:31:08+02-00",
        "2026-06-20T14:31:08+02.00",
        "2026-06-20T14:31:08+02000",
        "2026-06-20T14:31:08-02 30",
    ] {
        assert_eq!(parse_date_time(bad), None, "{bad}");
        assert_eq!(parse_row_time(bad), None, "{bad}");
    }
    assert_eq!(
        parse_date_time("2026-06-20T16:31:08+02:00"),
        Some(Instant::At(1_781_965_868_000_000))
    );
    assert_eq!(
        parse_row_time("2026-06-20T12:01:08-02:30"),
        Some(Instant::At(1_781_965_868_000_000))
    );
}

/// Integers in an array argument are taken as given, however large or
/// negative (not through a float); a float with no fraction is taken as
/// its integer only below 9e15 in size, where floats are still exact.
#[test]
fn array_integers_are_exact_at_any_size_and_floats_only_below_9e15() {
    let cfg = config_with(|v| {
        lc(v)["args"]["levels"] = json!({"type": "array", "items": {"type": "integer", "enum": [-10000000000000000_i64, -9000000000000000_i64, -8999999999999999_i64, 8999999999999999_i64, 9000000000000000_i64, 9223372036854775807_i64, 18446744073709551615_u64]}, "max_items": 7});
        lc(v)["list"]["filters"]
            .as_array_mut()
            .unwrap()
            .push(json!({"column": "priority", "op": "in", "arg": "levels"}));
    });
    let cap = cfg.capability(NAME).unwrap();
    let ok = |a: Value| validate_args(cap, Some(&a)).unwrap()["levels"].clone();
    let err = |a: Value| validate_args(cap, Some(&a)).unwrap_err()[0].code;
    // Integers, of any size and sign, come back exactly.
    assert_eq!(
        ok(json!({"levels": [-10000000000000000_i64]})),
        json!([-10000000000000000_i64])
    );
    assert_eq!(
        ok(json!({"levels": [18446744073709551615_u64]})),
        json!([18446744073709551615_u64])
    );
    assert_eq!(
        ok(
            json!({"levels": [-10000000000000000_i64, 9223372036854775807_i64, 18446744073709551615_u64, -9000000000000000_i64, 9000000000000000_i64]})
        ),
        json!([
            -10000000000000000_i64,
            9223372036854775807_i64,
            18446744073709551615_u64,
            -9000000000000000_i64,
            9000000000000000_i64
        ])
    );
    // Floats with no fraction: just below 9e15 they are integers…
    assert_eq!(
        ok(json!({"levels": [8999999999999999.0, -8999999999999999.0]})),
        json!([8999999999999999_i64, -8999999999999999_i64])
    );
    // …at 9e15 (either sign) and above they are refused.
    assert_eq!(
        err(json!({"levels": [9000000000000000.0]})),
        ArgErrorCode::NotInEnum
    );
    assert_eq!(
        err(json!({"levels": [-9000000000000000.0]})),
        ArgErrorCode::NotInEnum
    );
    assert_eq!(
        err(json!({"levels": [10000000000000000.0]})),
        ArgErrorCode::NotInEnum
    );
}

/// A cursor of up to `MAX_CURSOR_CHARS` (2048) characters is read back; one
/// longer is refused unread, even when it is otherwise a real cursor (a
/// long primary key makes one).
#[test]
fn a_cursor_of_exactly_2048_characters_is_read_and_a_longer_one_refused() {
    let cfg = config();
    let (cap, spec) = parts(&cfg);
    let args = json!({"statuses": ["open"]});
    let c = call(&cfg, args.clone());
    let cursor_after = |key: &str| {
        next_cursor(
            cap,
            spec,
            &c,
            &obj(json!({"id": key, "opened_at": "2026-06-20T14:31:08Z"})),
        )
        .unwrap()
    };
    // 1448 key characters: a 1536-byte document, 2048 characters encoded.
    let key = format!("T-{}", "9".repeat(1446));
    let longest = cursor_after(&key);
    assert_eq!(longest.len(), 2048);
    assert_eq!(
        call(&cfg, with_cursor(args.clone(), &longest)).cursor,
        Some(Cursor {
            after: vec![json!("2026-06-20T14:31:08Z")],
            key: json!(key)
        })
    );
    // One key character more: 1537 bytes, 2050 characters, refused.
    let too_long = cursor_after(&format!("T-{}", "9".repeat(1447)));
    assert_eq!(too_long.len(), 2050);
    match call_err(&cfg, with_cursor(args.clone(), &too_long)) {
        CallError::Cursor(m) => assert!(
            m.starts_with("the cursor is not one this tool issued"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
    // Short ones are read as well.
    let short = cursor_after("T-9");
    assert_eq!(
        call(&cfg, with_cursor(args, &short)).cursor,
        Some(Cursor {
            after: vec![json!("2026-06-20T14:31:08Z")],
            key: json!("T-9")
        })
    );
}

/// A text of 4n+1 characters is no base64url (the last character would
/// carry 6 bits, less than a byte), even when those bits are all zero.
#[test]
fn a_lone_trailing_base64url_character_is_refused_even_when_zero() {
    for bad in ["A", "Zm9vA", "Zm9vYmFyA", "AAAAA"] {
        assert_eq!(base64url_decode(bad), None, "{bad}");
    }
    // One character fewer or more is a whole encoding.
    assert_eq!(base64url_decode("Zm9v").as_deref(), Some(&b"foo"[..]));
    assert_eq!(base64url_decode("Zm9vAA").as_deref(), Some(&b"foo\0"[..]));
    assert_eq!(base64url_decode("AAAA").as_deref(), Some(&[0, 0, 0][..]));
}

/// Integers a double cannot tell apart (above 2^53) still compare
/// exactly, whether the row holds a JSON number or a decimal string.
#[test]
fn integers_beyond_double_precision_compare_exactly_as_numbers_and_as_strings() {
    use ArgKind::*;
    use FilterOp::*;
    let m =
        |op, kind, row: Value, arg: Value| value_matches(Engine::Postgres, op, kind, &row, &arg);
    // JSON numbers on both sides.
    assert!(m(
        Gt,
        Integer,
        json!(9_007_199_254_740_993_i64),
        json!(9_007_199_254_740_992_i64)
    ));
    assert!(!m(
        Eq,
        Integer,
        json!(9_007_199_254_740_993_i64),
        json!(9_007_199_254_740_992_i64)
    ));
    assert!(m(
        Lt,
        Integer,
        json!(-9_007_199_254_740_993_i64),
        json!(-9_007_199_254_740_992_i64)
    ));
    assert!(m(Gt, Integer, json!(u64::MAX), json!(u64::MAX - 1)));
    assert!(!m(
        In,
        IntegerSet,
        json!(9_007_199_254_740_993_i64),
        json!([9_007_199_254_740_992_i64])
    ));
    // A decimal string in the row (NUMERIC / DECIMAL columns).
    assert!(m(
        Gt,
        Integer,
        json!("9007199254740993"),
        json!(9_007_199_254_740_992_i64)
    ));
    assert!(!m(
        Eq,
        Integer,
        json!(" 9007199254740993 "),
        json!(9_007_199_254_740_992_i64)
    ));
    assert!(m(
        Lt,
        Integer,
        json!("-9007199254740993"),
        json!(-9_007_199_254_740_992_i64)
    ));
    assert!(m(
        Gt,
        Integer,
        json!("18446744073709551616"),
        json!(u64::MAX)
    ));
    assert!(!m(
        In,
        IntegerSet,
        json!("9007199254740993"),
        json!([9_007_199_254_740_992_i64])
    ));
    assert!(m(
        In,
        IntegerSet,
        json!("9007199254740993"),
        json!([9_007_199_254_740_992_i64, 9_007_199_254_740_993_i64])
    ));
}

/// An integer array's enum may hold negative integers and integers above
/// `i64::MAX` (any JSON integer); a float or a string does not fit.
#[test]
fn integer_array_enums_load_negative_and_above_i64_values() {
    let cfg = config_with(|v| {
        lc(v)["args"]["levels"] = json!({"type": "array", "items": {"type": "integer", "enum": [-3, 0, 18446744073709551615_u64]}, "max_items": 3});
        lc(v)["list"]["filters"]
            .as_array_mut()
            .unwrap()
            .push(json!({"column": "priority", "op": "in", "arg": "levels"}));
    });
    let levels = cfg.capability(NAME).unwrap().arg("levels").unwrap();
    assert_eq!(
        levels.items.as_ref().unwrap().enum_values,
        vec![json!(-3), json!(0), json!(18446744073709551615_u64)]
    );
    for bad in [json!(1.5), json!("1")] {
        let loaded = edited(|v| {
            lc(v)["args"]["levels"] = json!({"type": "array", "items": {"type": "integer", "enum": [-3, bad]}, "max_items": 2});
            lc(v)["list"]["filters"]
                .as_array_mut()
                .unwrap()
                .push(json!({"column": "priority", "op": "in", "arg": "levels"}));
        });
        assert!(loaded.config.is_none(), "{bad}");
    }
}
