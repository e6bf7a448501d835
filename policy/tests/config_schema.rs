//! The config's JSON Schema (`airlock config schema`) against the loader it
//! describes, checked with a real validator (the `jsonschema` crate):
//!
//! * the schema is a valid draft 2020-12 document, and the checked-in copy
//!   `docs/airlock.config.schema.json` is exactly what the command prints;
//! * every object's `properties` are the keys the loader knows there, read
//!   out of the loader's own "unknown field" error for that object;
//! * every config in the repository (fixtures, deploy examples, the configs
//!   and config fragments in the docs) is valid against it;
//! * the broken-config fixtures the loader refuses for a structural reason
//!   are refused by the schema too (the list is below), and on a table of
//!   variations the schema and the loader agree.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use airlock_policy::config_schema::{DIALECT, config_schema, config_schema_text};
use airlock_policy::load_config;
use jsonschema::Validator;
use serde_json::{Value, json};

#[path = "support/json_edit.rs"]
mod json_edit;

/// The command that rewrites the checked-in copy.
const REGENERATE: &str = "cargo run -q -p airlock-executor --bin airlock -- config schema --output docs/airlock.config.schema.json";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn validator() -> Validator {
    jsonschema::draft202012::new(&config_schema()).expect("the config schema compiles")
}

/// The schema's complaints about `doc`, one line each.
fn schema_errors(v: &Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// The loader's errors, one line each.
fn loader_errors(doc: &Value) -> Vec<String> {
    load_config(doc)
        .report
        .errors()
        .map(|e| format!("{}: {}", e.path, e.message))
        .collect()
}

/// `$.capabilities[1].args.ticket_id` → `/capabilities/1/args/ticket_id`.
fn pointer(path: &str) -> String {
    // `["a.b"]` names an entry whose name has dots.
    if let Some((head, rest)) = path.split_once("[\"") {
        let (name, tail) = rest.split_once("\"]").unwrap();
        return format!("{}/{name}{}", pointer(head), pointer(&format!("${tail}")));
    }
    let mut out = String::new();
    for segment in path.trim_start_matches('$').split('.').skip(1) {
        let (name, index) = match segment.split_once('[') {
            Some((name, rest)) => (name, Some(rest.trim_end_matches(']'))),
            None => (segment, None),
        };
        out.push('/');
        out.push_str(name);
        if let Some(i) = index {
            out.push('/');
            out.push_str(i);
        }
    }
    out
}

/// The repository's reference config with every optional section filled
/// in, so that each kind of object appears at least once. Loads cleanly.
fn complete() -> Value {
    let text =
        std::fs::read_to_string(repo().join("tests/fixtures/reference/airlock.reference.json"))
            .unwrap();
    let mut v: Value = serde_json::from_str(&text).unwrap();
    let o = v.as_object_mut().unwrap();
    o.insert("$schema".into(), json!("./airlock.config.schema.json"));
    o.insert(
        "executors".into(),
        json!({
            "http": {
                "type": "http_handler",
                "url_env": "HANDLER_URL",
                "method": "PATCH",
                "auth": {"type": "bearer_env", "token_env": "HANDLER_TOKEN"},
                "signing_secret_env": "HANDLER_SIGNING_SECRET",
                "timeout_ms": 2000
            },
            "cmd": {"type": "command_handler", "command_env": "HANDLER_COMMAND"},
            "sql": {"type": "sql_update"}
        }),
    );
    o.insert(
        "airlock".into(),
        json!({
            "socket_dir": "/run/airlock",
            "socket_group": "airlock",
            "proposers": [{"user": "agent", "tenants": ["acme"]}],
            "approvers": [{"uid": 1000, "roles": "*"}],
            "proposal_ttl_seconds": 3600,
            "limits": {"rate_window_seconds": 30},
            "explore": {
                "source": "app_postgres",
                "context": "local_operator",
                "minimum_cohort_size": 5,
                "limits": {"max_top_n": 10},
                "resources": {
                    "tickets": {
                        "schema": "public", "table": "support_tickets", "primary_key": "id", "tenant_key": "tenant_id",
                        "label": "Tickets",
                        "fields": {"status": {"type": "text", "uses": ["dimension", "filter"], "values": ["open", "closed"]}},
                        "kept_out": ["subject"],
                        "relationships": {"customer": {"column": "customer_id", "resource": "customers"}}
                    },
                    "customers": {
                        "schema": "public", "table": "customers", "primary_key": "id", "tenant_key": "tenant_id",
                        "fields": {"plan": {"type": "text", "uses": ["dimension"]}}
                    }
                }
            }
        }),
    );
    o.get_mut("capabilities")
        .and_then(Value::as_array_mut)
        .unwrap()
        .extend([
            json!({
                "name": "billing.propose_credit_note",
                "kind": "proposal",
                "source": "app_postgres",
                "context": "local_operator",
                "target": {"schema": "public", "table": "credit_notes", "primary_key": "id", "tenant_key": "tenant_id"},
                "args": {
                    "customer_id": {"type": "string", "required": true, "max_length": 128},
                    "amount_cents": {"type": "integer", "required": true, "minimum": 1, "maximum": 5000}
                },
                "visible_columns": ["id", "customer_id", "amount_cents"],
                "patch": {
                    "customer_id": {"from_arg": "customer_id"},
                    "amount_cents": {"from_arg": "amount_cents"},
                    "created_at": {"apply_time": true}
                },
                "allowed_columns": ["customer_id", "amount_cents", "created_at"],
                "operation": {
                    "kind": "insert",
                    "cardinality": "single",
                    "deduplication": {"components": [
                        {"column": "tenant_id", "source": "trusted_tenant"},
                        {"column": "request_id", "source": "proposal_id"},
                        {"column": "origin", "source": "fixed", "fixed": "agent"}
                    ]}
                }
            }),
            json!({
                "name": "billing.propose_draft_removal",
                "kind": "proposal",
                "source": "app_postgres",
                "context": "local_operator",
                "target": {"schema": "public", "table": "invoice_drafts", "primary_key": "id", "tenant_key": "tenant_id"},
                "args": {"draft_id": {"type": "string", "required": true, "max_length": 128}},
                "lookup": {"id_from_arg": "draft_id"},
                "visible_columns": ["id", "status", "version"],
                "conflict_guard": {"column": "version"},
                "operation": {
                    "kind": "delete",
                    "acknowledge_effects": {"triggers": ["audit_draft_delete"], "cascades": ["public.draft_lines"]}
                }
            }),
            json!({
                "name": "support.list_tickets",
                "kind": "read",
                "source": "app_postgres",
                "context": "local_operator",
                "target": {"schema": "public", "table": "support_tickets", "primary_key": "id", "tenant_key": "tenant_id"},
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
            }),
            json!({
                "name": "billing.overdue_fees_by_customer",
                "kind": "aggregate_read",
                "source": "app_postgres",
                "context": "local_operator",
                "target": {"schema": "public", "table": "invoices", "primary_key": "id", "tenant_key": "tenant_id"},
                "args": {},
                "visible_columns": [],
                "evidence": "required",
                "aggregate": {
                    "function": "sum",
                    "column": "late_fee_cents",
                    "selection": {"all": [{"column": "status", "operator": "eq", "value": "overdue"}]},
                    "minimum_group_size": 5,
                    "group_by": ["customer_id"],
                    "max_groups": 100
                }
            }),
        ]);
    o.get_mut("capabilities")
        .and_then(|c| c.get_mut(3))
        .and_then(Value::as_object_mut)
        .unwrap()
        .insert(
            "operation".into(),
            json!({"kind": "update", "version_advance": {"column": "updated_at", "strategy": "timestamp"}}),
        );
    o.insert(
        "notifications".into(),
        json!({
            "enabled": true,
            "sinks": [
                {"id": "ops", "type": "webhook", "url_env": "NOTIFY_URL", "signing_secret_env": "NOTIFY_SECRET",
                 "events": ["proposal.created"], "capabilities": ["support.inspect_ticket"],
                 "timeout_ms": 2000, "max_attempts": 3},
                {"id": "audit", "type": "jsonl", "path": "notifications.jsonl"}
            ]
        }),
    );
    o.insert(
        "proposal_freshness".into(),
        json!({
            "support.propose_plan_credit": {
                "approval": "required",
                "dependencies": [
                    {"id": "account", "capability": "support.inspect_customer_account",
                     "identity_from_arg": "customer_id", "version_column": "updated_at"}
                ]
            }
        }),
    );
    v
}

fn set(v: &mut Value, path: &str, value: Value) {
    json_edit::set(v, &pointer(path), value);
}

fn remove(v: &mut Value, path: &str) {
    json_edit::remove(v, &pointer(path));
}

#[test]
fn the_schema_is_a_valid_draft_2020_12_schema() {
    let schema = config_schema();
    assert_eq!(schema["$schema"], DIALECT);
    assert_eq!(DIALECT, "https://json-schema.org/draft/2020-12/schema");
    if let Err(e) = jsonschema::meta::validate(&schema) {
        panic!(
            "the config schema is not a valid JSON Schema: {e} at {}",
            e.instance_path()
        );
    }
    // Every `$ref` points at a definition that exists.
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("$ref", Value::String(r)) => out.push(r.clone()),
                        _ => refs(v, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&schema, &mut all);
    assert!(all.len() > 40, "{all:?}");
    for r in all {
        let ptr = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{r} is not local"));
        assert!(schema.pointer(ptr).is_some(), "{r} points nowhere");
    }
}

#[test]
fn the_checked_in_copy_is_what_the_command_prints() {
    let text = config_schema_text();
    assert!(text.ends_with("}\n"), "one document and a final newline");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        config_schema()
    );
    assert!(text.starts_with("{\n  \"$schema\": \"https://json-schema.org/draft/2020-12/schema\",\n  \"title\": \"Airlock reviewed config\","), "{}", &text[..120]);
    let path = repo().join("docs/airlock.config.schema.json");
    let copy = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        copy == text,
        "{} is not the schema `airlock config schema` prints (the config model changed?). Regenerate it with:\n  {REGENERATE}",
        path.display()
    );
}

/// Where each object of the schema sits in [`complete`]: the definition's
/// name (`#` for the document itself) and a path to one such object.
const OBJECTS: &[(&str, &str)] = &[
    ("#", "$"),
    ("storage", "$.storage"),
    ("source", "$.sources.app_postgres"),
    ("context", "$.trusted_context"),
    ("context_values", "$.contexts.local_operator.values"),
    ("executor", "$.executors.http"),
    ("http_auth", "$.executors.http.auth"),
    ("airlock", "$.airlock"),
    ("limits", "$.airlock.limits"),
    ("proposer", "$.airlock.proposers[0]"),
    ("approver", "$.airlock.approvers[0]"),
    ("capability", "$.capabilities[1]"),
    ("target", "$.capabilities[1].target"),
    ("arg", "$.capabilities[1].args.ticket_id"),
    ("lookup", "$.capabilities[1].lookup"),
    ("patch_binding", "$.capabilities[1].patch.status"),
    (
        "bounds",
        "$.capabilities[3].numeric_bounds.plan_credit_cents",
    ),
    (
        "transition_guard",
        "$.capabilities[1].transition_guards.status",
    ),
    ("conflict_guard", "$.capabilities[1].conflict_guard"),
    ("approval", "$.capabilities[1].approval"),
    ("operation", "$.capabilities[8].operation"),
    ("deduplication", "$.capabilities[8].operation.deduplication"),
    (
        "dedup_component",
        "$.capabilities[8].operation.deduplication.components[0]",
    ),
    (
        "version_advance",
        "$.capabilities[3].operation.version_advance",
    ),
    (
        "acknowledge_effects",
        "$.capabilities[9].operation.acknowledge_effects",
    ),
    ("explore", "$.airlock.explore"),
    ("explore_limits", "$.airlock.explore.limits"),
    ("explore_resource", "$.airlock.explore.resources.tickets"),
    (
        "explore_field",
        "$.airlock.explore.resources.tickets.fields.status",
    ),
    ("list", "$.capabilities[10].list"),
    ("list_filter", "$.capabilities[10].list.filters[0]"),
    ("list_order", "$.capabilities[10].list.order_by[0]"),
    ("arg_items", "$.capabilities[10].args.statuses.items"),
    ("aggregate", "$.capabilities[11].aggregate"),
    ("notifications", "$.notifications"),
    ("notification_sink", "$.notifications.sinks[0]"),
    (
        "proposal_freshness",
        "$.proposal_freshness[\"support.propose_plan_credit\"]",
    ),
    (
        "freshness_dependency",
        "$.proposal_freshness[\"support.propose_plan_credit\"].dependencies[0]",
    ),
];

#[test]
fn every_object_has_exactly_the_keys_the_loader_knows() {
    let schema = config_schema();
    let v = validator();
    let base = complete();
    assert_eq!(loader_errors(&base), Vec::<String>::new());
    assert_eq!(schema_errors(&v, &base), Vec::<String>::new());

    // Every closed object of the schema is probed below.
    let mut closed: BTreeSet<&str> = schema["$defs"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, d)| d["additionalProperties"] == false)
        .map(|(name, _)| name.as_str())
        .collect();
    closed.insert("#");
    let probed: BTreeSet<&str> = OBJECTS.iter().map(|(d, _)| *d).collect();
    assert_eq!(
        closed, probed,
        "add each closed object of the schema to OBJECTS"
    );

    let probe = "zz_not_a_field";
    for (def, path) in OBJECTS {
        let node = if *def == "#" {
            &schema
        } else {
            &schema["$defs"][*def]
        };
        let in_schema: BTreeSet<String> = node["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();

        let mut doc = base.clone();
        let at = pointer(path);
        assert!(doc.pointer(&at).is_some_and(Value::is_object), "{path}");
        doc.pointer_mut(&at)
            .and_then(Value::as_object_mut)
            .unwrap()
            .insert(probe.into(), json!(1));

        let loaded = load_config(&doc);
        let errors: Vec<_> = loaded.report.errors().collect();
        assert_eq!(errors.len(), 1, "{path}: {errors:#?}");
        let e = errors[0];
        let probe_path = if *path == "$" {
            format!("$.{probe}")
        } else {
            format!("{path}.{probe}")
        };
        assert_eq!(e.path, probe_path);
        assert_eq!(e.message, format!("unknown field `{probe}`"));
        let known: BTreeSet<String> = e
            .fix
            .strip_prefix("remove it or use one of: ")
            .unwrap_or_else(|| panic!("{path}: {}", e.fix))
            .split(", ")
            .map(str::to_owned)
            .collect();
        assert_eq!(
            in_schema, known,
            "the schema's `{def}` and the loader at {path} know different keys"
        );

        let refused = schema_errors(&v, &doc);
        assert!(
            refused
                .iter()
                .any(|r| r.starts_with(&format!("{at}: ")) && r.contains(probe)),
            "{path}: the schema does not refuse the unknown key: {refused:?}"
        );
    }
}

/// A variation of [`complete`]: values set (or, with `None`, removed) at
/// paths, and whether the loader accepts the result.
struct Variation {
    changes: Vec<(&'static str, Option<Value>)>,
    accepted: bool,
}

impl Variation {
    /// The same variation, also setting `value` at `path`.
    fn and(mut self, path: &'static str, value: Value) -> Variation {
        self.changes.push((path, Some(value)));
        self
    }
}

fn vary(path: &'static str, value: Value, accepted: bool) -> Variation {
    Variation {
        changes: vec![(path, Some(value))],
        accepted,
    }
}

fn without(path: &'static str, accepted: bool) -> Variation {
    Variation {
        changes: vec![(path, None)],
        accepted,
    }
}

#[test]
fn the_schema_and_the_loader_agree_on_each_variation() {
    let long = "x".repeat(2001);
    let many_args: serde_json::Map<String, Value> = (0..33)
        .map(|i| (format!("a{i}"), json!({"type": "string", "required": true})))
        .collect();
    let cases = vec![
        // Accepted shapes a reviewer may write.
        vary("$.$schema", json!("https://example.com/airlock.config.schema.json"), true),
        without("$.$schema", true),
        vary("$.result_format", json!(1), true),
        vary("$.strict", json!(false), true),
        vary("$.cloud", json!({"anything": ["goes", 1]}), true),
        vary("$.sources.app_postgres.ssl", json!({"mode": "require"}), true),
        vary("$.sources.app_postgres.engine", json!("postgresql"), true),
        vary("$.sources.app_postgres.read_only", json!(false), true),
        vary(
            "$.trusted_context",
            json!({"provider": "static_dev", "values": {"tenant_id": "acme", "principal": "dev"}}),
            true,
        ),
        vary("$.executors.http.auth", json!({"bearer_env": "HANDLER_TOKEN"}), true),
        without("$.executors.http.method", true),
        vary("$.airlock.proposers[0]", json!({"uid": 0, "tenants": "*"}), true),
        vary("$.airlock.approvers[0]", json!({"user": "alice", "roles": []}), true),
        vary("$.capabilities[1].conflict_guard", json!({"weak_guard_ack": true}), true),
        vary("$.capabilities[1].patch.status", json!({"fixed": null}), true),
        vary("$.capabilities[5].patch.late_fee_cents", json!({"fixed": 0.5}), true),
        vary(
            "$.capabilities[0].target",
            json!({"schema": "public", "table": "support_tickets", "primary_key": "id", "single_tenant_dev": true}),
            true,
        )
        .and("$.capabilities[0].single_tenant_dev_ack", json!(true)),
        vary("$.capabilities[0].single_tenant_dev_ack", json!(false), true),
        vary("$.capabilities[0].target.principal_scope_key", json!("assigned_to"), true),
        vary("$.capabilities[0].target.principal_scope_key", json!("assigned to"), false),
        vary(
            "$.capabilities[0].target",
            json!({"schema": "public", "table": "support_tickets", "primary_key": "id", "single_tenant_dev": true, "principal_scope_key": "assigned_to"}),
            false,
        )
        .and("$.capabilities[0].single_tenant_dev_ack", json!(true)),
        vary("$.capabilities[0].evidence", json!("optional"), true),
        vary("$.capabilities[0].max_rows", json!(100), true),
        vary(
            "$.capabilities[0].args.ticket_id",
            json!({"type": "integer", "required": true, "minimum": 1, "enum": [1, 2]}),
            true,
        ),
        without("$.capabilities[1].approval", true),
        vary("$.capabilities[1].approval", json!({"required_role": "support.lead-2"}), true),
        vary("$.capabilities[1].approval", json!({"required_approvals": 10}), true),
        vary("$.capabilities[1].approval", json!({"required_approvals": 11}), false),
        vary("$.capabilities[1].approval", json!({"required_approvals": 0}), false),
        vary("$.notifications.sinks[0].format", json!("slack"), true),
        vary("$.notifications.sinks[1]", json!({"id": "dev", "type": "jsonl", "destination": "stdout"}), true),
        vary("$.notifications.sinks[0].budgets", json!({"per_minute": 10}), true),
        without("$.notifications.sinks[0].events", true),
        vary("$.capabilities[3].patch.plan_credit_cents", json!({"increment_from_arg": "credit_cents"}), true),
        vary("$.capabilities[3].patch.plan_credit_cents", json!({"decrement_from_arg": "credit_cents"}), true),
        vary("$.capabilities[3].operation.version_advance.strategy", json!("database_generated"), true),
        without("$.capabilities[3].operation.version_advance", true),
        without("$.capabilities[9].operation.acknowledge_effects", true),
        vary("$.capabilities[8].operation.cardinality", json!("single"), true),
        // List reads: accepted shapes.
        vary("$.capabilities[10].args", json!({}), true).and("$.capabilities[10].list.filters", json!([])),
        without("$.capabilities[10].list.order_by", true),
        without("$.capabilities[10].list.default_limit", true),
        without("$.capabilities[10].list.order_by[0].direction", true),
        vary("$.capabilities[10].list.max_limit", json!(100), true),
        vary("$.capabilities[10].args.opened_after.format", json!("date"), true),
        vary("$.capabilities[10].args.statuses.items", json!({"type": "integer", "enum": [1, 2, 3]}), true),
        // List reads: refused, for a reason a schema can state.
        without("$.capabilities[10].list.max_limit", false),
        vary("$.capabilities[10].list.max_limit", json!(101), false),
        vary("$.capabilities[10].list.default_limit", json!(0), false),
        vary("$.capabilities[10].list.filters[0].op", json!("like"), false),
        without("$.capabilities[10].list.filters[0].arg", false),
        vary("$.capabilities[10].list.filters[0].column", json!("customer id"), false),
        vary("$.capabilities[10].list.order_by[0].direction", json!("down"), false),
        vary(
            "$.capabilities[10].list.order_by",
            json!([{"column": "id"}, {"column": "status"}, {"column": "priority"}, {"column": "opened_at"}]),
            false,
        ),
        vary("$.capabilities[10].lookup", json!({"id_from_arg": "customer_id"}), false),
        vary("$.capabilities[10].max_rows", json!(5), false),
        vary("$.capabilities[10].kind", json!("proposal"), false),
        vary("$.capabilities[10].args.opened_after.format", json!("time"), false),
        vary("$.capabilities[10].args.min_priority.format", json!("date"), false),
        without("$.capabilities[10].args.statuses.max_items", false),
        without("$.capabilities[10].args.statuses.items", false),
        vary("$.capabilities[10].args.statuses.max_items", json!(51), false),
        vary("$.capabilities[10].args.statuses.items.type", json!("boolean"), false),
        vary("$.capabilities[10].args.statuses.items.enum", json!(["open", 1]), false),
        vary("$.capabilities[10].args.statuses.enum", json!(["open"]), false),
        vary("$.capabilities[0].args.ticket_id.items", json!({"type": "string", "enum": ["a"]}), false),
        vary("$.capabilities[0].args.ticket_id.type", json!("array"), false),
        // Aggregate reads: Synapsor Runner's shapes and Airlock's additions.
        vary("$.capabilities[11].aggregate", json!({"function": "count", "count_mode": "rows", "minimum_group_size": 5}), true),
        vary("$.capabilities[11].aggregate", json!({"function": "count", "count_mode": "non_null", "column": "waiver_reason", "minimum_group_size": 1}), true),
        vary("$.capabilities[11].aggregate.function", json!("avg"), true),
        vary("$.capabilities[11].aggregate.function", json!("max"), true),
        vary("$.capabilities[11].aggregate.group_by", json!([]), false)
            .and("$.capabilities[11].aggregate.max_groups", json!(3)),
        vary("$.capabilities[11].aggregate.group_by", json!([]), true)
            .and("$.capabilities[11].aggregate", json!({"function": "avg", "column": "balance_cents", "minimum_group_size": 5, "group_by": []})),
        without("$.capabilities[11].aggregate.max_groups", true),
        without("$.capabilities[11].aggregate.selection", true),
        without("$.capabilities[11].evidence", true),
        vary("$.capabilities[11].aggregate.function", json!("median"), false),
        vary("$.capabilities[11].aggregate.count_mode", json!("rows"), false),
        without("$.capabilities[11].aggregate.column", false),
        without("$.capabilities[11].aggregate.minimum_group_size", false),
        vary("$.capabilities[11].aggregate.minimum_group_size", json!(0), false),
        vary("$.capabilities[11].aggregate", json!({"function": "count", "minimum_group_size": 5}), false),
        vary("$.capabilities[11].aggregate", json!({"function": "count", "count_mode": "rows", "column": "x", "minimum_group_size": 5}), false),
        vary("$.capabilities[11].aggregate", json!({"function": "count", "count_mode": "non_null", "minimum_group_size": 5}), false),
        vary("$.capabilities[11].aggregate.selection", json!({"all": []}), false),
        vary("$.capabilities[11].aggregate.selection.all[0].operator", json!("ne"), false),
        vary("$.capabilities[11].aggregate.selection.all[0].value", json!(null), false),
        vary("$.capabilities[11].aggregate.group_by", json!(["a", "b", "c", "d"]), false),
        vary("$.capabilities[11].aggregate.group_by", json!(["value"]), false),
        vary("$.capabilities[11].aggregate.group_by", json!(["region", "region"]), false),
        vary("$.capabilities[11].aggregate.max_groups", json!(501), false),
        without("$.capabilities[11].aggregate", false),
        vary("$.capabilities[11].args", json!({"customer_id": {"type": "string"}}), false),
        vary("$.capabilities[11].visible_columns", json!(["id"]), false),
        vary("$.capabilities[11].lookup", json!({"id_from_arg": "x"}), false),
        vary("$.capabilities[11].max_rows", json!(1), false),
        vary("$.capabilities[11].patch", json!({"status": {"fixed": "x"}}), false),
        without("$.capabilities[11].args", false),
        without("$.capabilities[11].target.tenant_key", false),
        vary("$.capabilities[0].aggregate", json!({"function": "count", "count_mode": "rows", "minimum_group_size": 5}), false),
        vary("$.mode", json!("read_only"), true)
            .and("$.capabilities", json!([{
                "name": "support.inspect_ticket",
                "kind": "read",
                "source": "app_postgres",
                "target": {"schema": "public", "table": "t", "primary_key": "id", "tenant_key": "tenant_id"},
                "args": {"ticket_id": {"type": "string", "required": true}},
                "lookup": {"id_from_arg": "ticket_id"},
                "visible_columns": ["id"]
            }, {
                "name": "billing.overdue_total",
                "kind": "aggregate_read",
                "source": "app_postgres",
                "target": {"schema": "public", "table": "invoices", "primary_key": "id", "tenant_key": "tenant_id"},
                "args": {},
                "visible_columns": [],
                "aggregate": {"function": "count", "count_mode": "rows", "minimum_group_size": 5}
            }]))
            .and("$.proposal_freshness", json!({})),
        // Refused, for a reason a schema can state.
        vary("$.capabilities[8].operation.cardinality", json!("set"), false),
        vary("$.capabilities[8].operation.kind", json!("upsert"), false),
        vary("$.capabilities[8].operation.max_rows", json!(5), false),
        without("$.capabilities[8].operation.deduplication", false),
        vary("$.capabilities[8].operation.deduplication.components", json!([]), false),
        vary(
            "$.capabilities[8].operation.deduplication.components",
            json!([{"column": "tenant_id", "source": "trusted_tenant"}]),
            false,
        ),
        vary("$.capabilities[8].operation.deduplication.components[2]", json!({"column": "origin", "source": "fixed"}), false),
        vary("$.capabilities[8].operation.deduplication.components[2].source", json!("item_field"), false),
        vary("$.capabilities[8].operation.deduplication.components[0].fixed", json!("x"), false),
        vary("$.capabilities[8].operation.version_advance", json!({"column": "updated_at", "strategy": "timestamp"}), false),
        vary("$.capabilities[8].patch", json!({}), false),
        vary("$.capabilities[8].patch.created_at", json!({"apply_time": false}), false),
        vary("$.capabilities[9].patch", json!({"status": {"fixed": "gone"}}), false),
        vary("$.capabilities[9].conflict_guard", json!({"weak_guard_ack": true}), false),
        without("$.capabilities[9].conflict_guard", false),
        without("$.capabilities[9].lookup", false),
        vary("$.capabilities[9].operation.deduplication", json!({"components": [{"column": "request_id", "source": "proposal_id"}]}), false),
        vary("$.capabilities[9].operation.acknowledge_effects.cascades", json!(["draft_lines"]), false),
        vary("$.capabilities[3].operation.version_advance.strategy", json!("uuid"), false),
        vary("$.capabilities[3].operation.acknowledge_effects", json!({"triggers": ["t"]}), false),
        vary("$.capabilities[0].operation", json!({"kind": "update"}), false),
        without("$.notifications.sinks[0].signing_secret_env", false),
        without("$.notifications.sinks[0].url_env", false),
        without("$.notifications.sinks[1].path", false),
        vary("$.notifications.sinks[0].format", json!("teams"), false),
        vary("$.notifications.sinks[0].timeout_ms", json!(30_001), false),
        vary("$.notifications.sinks[0].max_attempts", json!(0), false),
        vary("$.notifications.sinks[0].events", json!([]), false),
        vary("$.notifications.sinks[0].capabilities", json!([]), false),
        vary("$.notifications.sinks[0].type", json!("email"), false),
        vary("$.notifications.sinks[1].url_env", json!("NOTIFY_URL"), false),
        vary("$.notifications.sinks[0].path", json!("x.jsonl"), false),
        vary("$.notifications.enabled", json!("yes"), false),
        vary("$.version", json!("1"), false),
        vary("$.mode", json!("shadow"), false),
        vary("$.result_format", json!(3), false),
        vary("$.strict", json!("yes"), false),
        vary("$.$schema", json!(5), false),
        vary("$.$schema", json!(""), false),
        vary("$.sources", json!({}), false),
        vary("$.sources.app_postgres.statement_timeout_ms", json!(600_001), false),
        vary("$.sources.app_postgres.read_only", json!("no"), false),
        without("$.sources.app_postgres.engine", false),
        vary("$.contexts", json!({"bad name": {"provider": "environment", "values": {"tenant_id_env": "T"}}}), false),
        vary("$.trusted_context", json!({"provider": "environment"}), false),
        vary("$.trusted_context", json!({"provider": "static_dev"}), false),
        vary("$.trusted_context.values.principal", json!("p"), false),
        vary("$.trusted_context.values.tenant_id_env", json!("lower_case"), false),
        vary(
            "$.executors.http.auth",
            json!({"token_env": "HANDLER_TOKEN", "bearer_env": "HANDLER_TOKEN"}),
            false,
        ),
        vary("$.executors.http.auth", json!({"type": "basic", "token_env": "X"}), false),
        vary("$.executors.http.auth", json!({}), false),
        without("$.executors.http.url_env", false),
        vary("$.executors.cmd.url_env", json!("HANDLER_URL"), false),
        without("$.executors.cmd.command_env", false),
        vary("$.executors.sql.timeout_ms", json!(1000), false),
        vary("$.executors.sql.type", json!("ftp"), false),
        vary("$.airlock.proposers[0]", json!({"user": "a", "uid": 1, "tenants": "*"}), false),
        vary("$.airlock.proposers[0]", json!({"tenants": "*"}), false),
        vary("$.airlock.proposers[0].tenants", json!("acme"), false),
        vary("$.airlock.approvers[0].roles", json!([""]), false),
        without("$.airlock.approvers[0].roles", false),
        vary("$.airlock.approvers[0].uid", json!(-1), false),
        vary("$.airlock.limits.max_evidence_bytes", json!(63), false),
        vary("$.airlock.proposal_ttl_seconds", json!(0), false),
        vary("$.airlock.socket_dir", json!(""), false),
        vary("$.capabilities", json!([]), false),
        vary("$.capabilities[0].name", json!("inspect_ticket"), false),
        vary("$.capabilities[0].kind", json!("write"), false),
        vary("$.capabilities[0].description", json!(long), false),
        vary("$.capabilities[0].max_rows", json!(0), false),
        vary("$.capabilities[0].evidence", json!("never"), false),
        vary("$.capabilities[0].visible_columns", json!([]), false),
        vary("$.capabilities[0].visible_columns", json!(["id", "id"]), false),
        vary("$.capabilities[0].visible_columns", json!(["id", "a b"]), false),
        vary("$.capabilities[0].args", json!({}), false),
        vary("$.capabilities[0].args", Value::Object(many_args), false),
        vary("$.capabilities[0].args.ticket_id.max_length", json!(0), false),
        vary("$.capabilities[0].args.ticket_id.minimum", json!(1), false),
        vary("$.capabilities[0].args.ticket_id.enum", json!([1]), false),
        vary("$.capabilities[0].args.ticket_id.enum", json!([]), false),
        vary("$.capabilities[0].args.ticket_id.required", json!("yes"), false),
        vary("$.capabilities[0].args.ticket_id.type", json!("date"), false),
        without("$.capabilities[0].target.primary_key", false),
        without("$.capabilities[0].target.tenant_key", false),
        vary("$.capabilities[0].target.single_tenant_dev", json!(true), true)
            .and("$.capabilities[0].single_tenant_dev_ack", json!(true)),
        vary(
            "$.capabilities[0].target",
            json!({"schema": "public", "table": "support_tickets", "primary_key": "id", "single_tenant_dev": true}),
            false,
        ),
        vary(
            "$.capabilities[0].target",
            json!({"schema": "public", "table": "support_tickets", "primary_key": "id", "single_tenant_dev": false}),
            false,
        )
        .and("$.capabilities[0].single_tenant_dev_ack", json!(true)),
        vary("$.mode", json!("read_only"), true)
            .and("$.capabilities", json!([{
                "name": "support.inspect_ticket",
                "kind": "read",
                "source": "app_postgres",
                "target": {"schema": "public", "table": "t", "primary_key": "id", "tenant_key": "tenant_id"},
                "args": {"ticket_id": {"type": "string", "required": true}},
                "lookup": {"id_from_arg": "ticket_id"},
                "visible_columns": ["id"]
            }]))
            .and("$.proposal_freshness", json!({})),
        vary("$.capabilities[0].target.table", json!("support tickets"), false),
        without("$.capabilities[0].lookup", false),
        vary("$.capabilities[0].lookup", json!({}), false),
        vary("$.capabilities[0].allowed_columns", json!(["status"]), false),
        vary("$.capabilities[0].approval", json!({"mode": "human"}), false),
        without("$.capabilities[1].patch", false),
        without("$.capabilities[1].allowed_columns", false),
        without("$.capabilities[1].conflict_guard", false),
        vary("$.capabilities[1].patch", json!({}), false),
        vary("$.capabilities[1].patch.status", json!({"fixed": ["a"]}), false),
        vary("$.capabilities[1].patch.status", json!({}), false),
        vary("$.capabilities[1].conflict_guard", json!({"weak_guard_ack": false}), false),
        vary("$.capabilities[1].conflict_guard", json!({"column": "updated at"}), false),
        vary("$.capabilities[1].transition_guards.status", json!({"from_column": "status"}), false),
        vary("$.capabilities[1].transition_guards.status.allowed.open", json!("resolved"), false),
        vary("$.capabilities[1].approval.mode", json!("auto"), false),
        vary("$.capabilities[1].approval.required_role", json!("support lead"), false),
        vary("$.capabilities[3].numeric_bounds.plan_credit_cents.maximum", json!("5000"), false),
        vary("$.mode", json!("read_only"), false),
    ];
    let v = validator();
    let mut problems = Vec::new();
    for case in &cases {
        let mut doc = complete();
        let mut what = Vec::new();
        for (path, value) in &case.changes {
            match value {
                Some(value) => {
                    set(&mut doc, path, value.clone());
                    let shown: String = value.to_string().chars().take(60).collect();
                    what.push(format!("{path} = {shown}"));
                }
                None => {
                    remove(&mut doc, path);
                    what.push(format!("without {path}"));
                }
            }
        }
        let what = what.join(", ");
        let loader = loader_errors(&doc);
        let schema = schema_errors(&v, &doc);
        if loader.is_empty() != case.accepted {
            problems.push(format!("{what}: the loader says {loader:?}"));
        }
        if schema.is_empty() != loader.is_empty() {
            problems.push(format!("{what}: loader {loader:?}, schema {schema:?}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Every `.json` file under `dir`, skipping build output and hidden
/// directories.
fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if !(name.starts_with('.') || name == "target" || name == "node_modules") {
                json_files(&path, out);
            }
        } else if name.ends_with(".json") {
            out.push(path);
        }
    }
}

/// A JSON document that is a whole reviewed config.
fn is_config(v: &Value) -> bool {
    v.get("version").is_some() && v.get("capabilities").is_some()
}

#[test]
fn every_config_in_the_repository_is_valid_against_the_schema() {
    let v = validator();
    let root = repo();
    let broken = root.join("tests/fixtures/invalid-configs");
    let mut files = Vec::new();
    json_files(&root, &mut files);
    let mut checked = Vec::new();
    let mut problems = Vec::new();
    for file in files {
        if file.starts_with(&broken) {
            continue;
        }
        let Ok(doc) = serde_json::from_str::<Value>(&std::fs::read_to_string(&file).unwrap())
        else {
            continue;
        };
        if !is_config(&doc) {
            continue;
        }
        let shown = file.strip_prefix(&root).unwrap().display().to_string();
        let loader = loader_errors(&doc);
        if !loader.is_empty() {
            problems.push(format!("{shown} does not load (broken configs belong in tests/fixtures/invalid-configs/): {loader:?}"));
        }
        let schema = schema_errors(&v, &doc);
        if !schema.is_empty() {
            problems.push(format!(
                "{shown} is not valid against the schema: {schema:?}"
            ));
        }
        checked.push(shown);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    for must in [
        "tests/fixtures/reference/airlock.reference.json",
        "deploy/examples/config.json",
    ] {
        assert!(
            checked.iter().any(|c| c == must),
            "{must} was not checked: {checked:?}"
        );
    }
}

/// The fenced ```json blocks of a Markdown text; a block that is a bare
/// `"key": value` fragment is read as the object `{"key": value}`.
fn json_blocks(text: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match (&mut current, line.trim()) {
            (None, "```json") => current = Some(String::new()),
            (Some(block), "```") => {
                let parsed = serde_json::from_str(block)
                    .or_else(|_| serde_json::from_str(&format!("{{{block}}}")));
                if let Ok(v) = parsed {
                    out.push(v);
                }
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    out
}

/// The schema a documented config fragment's key is checked against.
const FRAGMENT_KEYS: &[(&str, &str)] = &[
    ("airlock", "#/$defs/airlock"),
    ("proposers", "#/$defs/airlock/properties/proposers"),
    ("approvers", "#/$defs/airlock/properties/approvers"),
    (
        "transition_guards",
        "#/$defs/capability/properties/transition_guards",
    ),
];

#[test]
fn every_config_and_config_fragment_in_the_docs_is_valid_against_the_schema() {
    let schema = config_schema();
    let v = validator();
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.push(repo().join("README.md"));
    docs.sort();
    let (mut configs, mut fragments) = (0, 0);
    let mut problems = Vec::new();
    for file in &docs {
        let shown = file.file_name().unwrap().to_string_lossy().into_owned();
        for block in json_blocks(&std::fs::read_to_string(file).unwrap()) {
            if is_config(&block) {
                configs += 1;
                let loader = loader_errors(&block);
                let errors = schema_errors(&v, &block);
                if !loader.is_empty() || !errors.is_empty() {
                    problems.push(format!(
                        "{shown}: a config: loader {loader:?}, schema {errors:?}"
                    ));
                }
                continue;
            }
            let Some(map) = block.as_object() else {
                continue;
            };
            let parts: Vec<(&String, &Value, &str)> = map
                .iter()
                .filter_map(|(k, val)| {
                    FRAGMENT_KEYS
                        .iter()
                        .find(|(key, _)| key == k)
                        .map(|(_, at)| (k, val, *at))
                })
                .collect();
            if parts.len() != map.len() {
                continue;
            }
            for (key, value, at) in parts {
                fragments += 1;
                let wrapper = json!({"$schema": DIALECT, "$ref": at, "$defs": schema["$defs"]});
                let part = jsonschema::draft202012::new(&wrapper).unwrap();
                let errors = schema_errors(&part, value);
                if !errors.is_empty() {
                    problems.push(format!("{shown}: the `{key}` fragment: {errors:?}"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(configs >= 2, "found {configs} whole configs in the docs");
    assert!(
        fragments >= 4,
        "found {fragments} config fragments in the docs"
    );
}

/// The broken-config fixtures the schema alone refuses: an unknown or
/// misplaced key, a wrong type, a missing field, a value outside its set or
/// range, a pattern (identifier, variable name), or a required combination.
/// `03` (not JSON) and `76` (a duplicate key) are refused as JSON, before any
/// schema, by the loader's strict parser as by editors. The rest break rules
/// a schema cannot state (references between entries, naming rules, inline
/// secrets, comparisons of two values); only the loader (`airlock config
/// validate`) catches those.
const SCHEMA_REFUSES: &[&str] = &[
    "01-version-not-1.json",
    "02-unknown-mode.json",
    "03-not-json.json",
    "04-unknown-top-level-field.json",
    "05-raw-sql-on-capability.json",
    "06-raw-query-on-capability.json",
    "07-inline-read-url-key.json",
    "08-connection-string-as-env-name.json",
    "09-invalid-env-var-name.json",
    "10-unknown-engine.json",
    "16-unqualified-capability-name.json",
    "19-unknown-kind.json",
    "23-unsafe-identifier-target-table.json",
    "24-unsafe-identifier-visible-column.json",
    "25-missing-tenant-key.json",
    "26-proposal-without-allowed-columns.json",
    "27-proposal-without-patch.json",
    "28-proposal-without-conflict-guard.json",
    "33-arg-type-unknown.json",
    "34-max-length-on-number-arg.json",
    "36-enum-value-wrong-type.json",
    "42-approval-mode-not-human.json",
    "43-read-capability-with-patch.json",
    "44-proposal-in-read-only-mode.json",
    "46-http-handler-without-url-env.json",
    "47-environment-context-without-tenant-id-env.json",
    "48-unknown-field-in-airlock-section.json",
    "49-proposer-with-user-and-uid.json",
    "50-empty-capabilities.json",
    "51-missing-trusted-context.json",
    "52-unsupported-context-provider.json",
    "53-environment-context-with-literal-tenant.json",
    "54-single-tenant-dev-without-ack.json",
    "56-conflict-guard-without-column-or-ack.json",
    "57-max-rows-over-limit.json",
    "58-unknown-evidence-mode.json",
    "60-patch-binding-fixed-and-from-arg.json",
    "63-unknown-executor-type.json",
    "64-sql-update-executor-with-url-env.json",
    "65-http-handler-unsupported-method.json",
    "66-statement-timeout-zero.json",
    "69-invalid-required-role.json",
    "70-proposal-ttl-too-short.json",
    "71-approver-without-roles.json",
    "72-result-format-unsupported.json",
    "73-duplicate-visible-column.json",
    "74-unsafe-arg-name.json",
    "75-empty-args.json",
    "76-duplicate-key.json",
    "80-synapsor-top-level-key.json",
    "81-synapsor-capability-operation.json",
    "82-synapsor-approval-policy.json",
    "83-synapsor-source-receipts.json",
    "87-array-arg-outside-list-read.json",
    "88-list-read-with-lookup.json",
];

#[test]
fn the_schema_refuses_the_structurally_broken_fixtures() {
    let dir = repo().join("tests/fixtures/invalid-configs");
    let table: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let v = validator();
    let mut refused = Vec::new();
    let mut problems = Vec::new();
    for case in &table {
        let file = case["file"].as_str().unwrap();
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        // A document that is not JSON (or repeats a key) is refused before
        // any schema.
        let by_schema = airlock_policy::strict_json::parse(text.as_bytes(), 64)
            .map_or(true, |doc| !v.is_valid(&doc));
        if by_schema {
            refused.push(file);
        }
        if by_schema != SCHEMA_REFUSES.contains(&file) {
            problems.push(format!(
                "{file}: the schema {} it; update SCHEMA_REFUSES (and the docs) if that is right",
                if by_schema { "refuses" } else { "accepts" }
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    for listed in SCHEMA_REFUSES {
        assert!(refused.contains(listed), "{listed} is not a fixture");
    }
    // Most of the loader's refusals are structural.
    assert!(
        refused.len() * 2 > table.len(),
        "{} of {}",
        refused.len(),
        table.len()
    );
}
