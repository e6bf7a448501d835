//! The capability half of the config loader (`capabilities` and everything
//! under one capability: name, target, args, lookup, proposal, patch, bounds,
//! transition guards, conflict guard, approval).
//!
//! Every case starts from the repository's reference config, changes one
//! thing, and states the outcome written out by hand: for a refused config,
//! every error as (exact JSON path, message fragment); for an accepted one,
//! the exact value the loader produced.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;

use airlock_policy::config::{
    ArgType, Bounds, Capability, ConflictGuard, EvidenceMode, Kind, PatchValue,
};
use airlock_policy::load::Loaded;
use airlock_policy::{Config, Severity, load_config};
use serde_json::{Value, json};

const REFERENCE: &str = include_str!("../../tests/fixtures/reference/airlock.reference.json");

// Capability indices in the reference config.
const TICKET: usize = 0; // support.inspect_ticket (read)
const RESOLUTION: usize = 1; // support.propose_ticket_resolution (fixed status, guarded)
const CREDIT: usize = 3; // support.propose_plan_credit (bounded, from a number arg)
const WAIVER: usize = 5; // billing.propose_late_fee_waiver (bounded, fixed 0)
const STATUS: usize = 7; // orders.propose_status_change (status from an enum arg, guarded)

fn reference() -> Value {
    serde_json::from_str(REFERENCE).unwrap()
}

fn cap(v: &mut Value, i: usize) -> &mut Value {
    &mut v["capabilities"][i]
}

fn remove(v: &mut Value, key: &str) {
    v.as_object_mut().unwrap().remove(key).expect("key present");
}

fn edited(edit: impl FnOnce(&mut Value)) -> Loaded {
    let mut v = reference();
    edit(&mut v);
    load_config(&v)
}

/// Load an edited reference config that must be accepted without errors.
fn accepted(edit: impl FnOnce(&mut Value)) -> (Config, Loaded) {
    let loaded = edited(edit);
    assert!(
        !loaded.report.has_errors(),
        "unexpected errors: {:#?}",
        loaded.report
    );
    (loaded.config.clone().expect("a config"), loaded)
}

fn warnings(loaded: &Loaded) -> Vec<(String, String)> {
    loaded
        .report
        .warnings()
        .map(|d| (d.path.clone(), d.message.clone()))
        .collect()
}

/// One refused edit: every error it must produce, in report order.
struct Refused {
    what: &'static str,
    edit: fn(&mut Value),
    errors: &'static [(&'static str, &'static str)],
}

fn check_refused(cases: &[Refused]) {
    for case in cases {
        let loaded = edited(case.edit);
        assert!(
            loaded.config.is_none(),
            "{}: a config came back despite errors",
            case.what
        );
        let got: Vec<(&str, &str)> = loaded
            .report
            .errors()
            .map(|d| (d.path.as_str(), d.message.as_str()))
            .collect();
        assert_eq!(
            got.len(),
            case.errors.len(),
            "{}: expected {:?}, got {got:#?}",
            case.what,
            case.errors
        );
        for ((path, message), (want_path, fragment)) in got.iter().zip(case.errors) {
            assert_eq!(path, want_path, "{}: {got:#?}", case.what);
            assert!(
                message.contains(fragment),
                "{}: message {message:?} lacks {fragment:?}",
                case.what
            );
        }
    }
}

fn capability<'a>(cfg: &'a Config, name: &str) -> &'a Capability {
    cfg.capability(name).expect("capability present")
}

// ---------------------------------------------------------------------------
// The reference config, parsed exactly.

#[test]
fn reference_capabilities_parse_to_exactly_these_values() {
    let (cfg, loaded) = accepted(|_| {});
    assert!(warnings(&loaded).is_empty(), "{:#?}", loaded.report);
    let names: Vec<&str> = cfg.capabilities.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "support.inspect_ticket",
            "support.propose_ticket_resolution",
            "support.inspect_customer_account",
            "support.propose_plan_credit",
            "billing.inspect_invoice",
            "billing.propose_late_fee_waiver",
            "orders.inspect_order",
            "orders.propose_status_change",
        ]
    );
    let kinds: Vec<Kind> = cfg.capabilities.iter().map(|c| c.kind).collect();
    assert_eq!(
        kinds,
        [
            Kind::Read,
            Kind::Proposal,
            Kind::Read,
            Kind::Proposal,
            Kind::Read,
            Kind::Proposal,
            Kind::Read,
            Kind::Proposal,
        ]
    );

    let ticket = capability(&cfg, "support.inspect_ticket");
    assert_eq!(ticket.description, None);
    assert_eq!(ticket.returns_hint, None);
    assert_eq!(ticket.source, "app_postgres");
    assert_eq!(ticket.context.as_deref(), Some("local_operator"));
    assert_eq!(ticket.target.schema, "public");
    assert_eq!(ticket.target.table, "support_tickets");
    assert_eq!(ticket.target.primary_key, "id");
    assert_eq!(ticket.target.tenant_key.as_deref(), Some("tenant_id"));
    assert_eq!(ticket.args.len(), 1);
    let id = &ticket.args[0];
    assert_eq!(id.name, "ticket_id");
    assert_eq!(id.ty, ArgType::String);
    assert!(id.required);
    assert_eq!(id.max_length, Some(128));
    assert_eq!(id.minimum, None);
    assert_eq!(id.maximum, None);
    assert_eq!(id.enum_values, None);
    assert_eq!(id.description, None);
    assert_eq!(ticket.lookup_arg, "ticket_id");
    assert_eq!(
        ticket.visible_columns,
        [
            "id",
            "tenant_id",
            "customer_id",
            "subject",
            "status",
            "resolution_note",
            "updated_at"
        ]
    );
    assert_eq!(ticket.evidence, EvidenceMode::Required);
    assert_eq!(ticket.max_rows, 1);
    assert!(ticket.proposal.is_none());

    let resolution = capability(&cfg, "support.propose_ticket_resolution");
    let p = resolution.proposal.as_ref().expect("a proposal");
    assert_eq!(p.executor, None);
    assert_eq!(
        p.patch,
        vec![
            (
                "status".to_owned(),
                PatchValue::Fixed(json!("pending_review"))
            ),
            (
                "resolution_note".to_owned(),
                PatchValue::FromArg("resolution_note".to_owned())
            ),
        ]
    );
    assert_eq!(p.allowed_columns, ["status", "resolution_note"]);
    assert!(p.numeric_bounds.is_empty());
    assert_eq!(p.transition_guards.keys().collect::<Vec<_>>(), ["status"]);
    let guard = &p.transition_guards["status"];
    assert_eq!(guard.from_column, None);
    assert_eq!(
        guard.allowed,
        BTreeMap::from([
            ("open".to_owned(), vec!["pending_review".to_owned()]),
            ("pending_review".to_owned(), vec!["resolved".to_owned()]),
        ])
    );
    assert_eq!(
        p.conflict_guard,
        ConflictGuard::Column {
            column: "updated_at".to_owned()
        }
    );
    assert_eq!(p.approval.required_role.as_deref(), Some("support_lead"));

    let credit = capability(&cfg, "support.propose_plan_credit");
    let names: Vec<&str> = credit.args.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["customer_id", "credit_cents", "reason"]);
    let cents = credit.arg("credit_cents").unwrap();
    assert_eq!(cents.ty, ArgType::Number);
    assert!(cents.required);
    assert_eq!(cents.max_length, None);
    assert_eq!(cents.minimum, Some(0.0));
    assert_eq!(cents.maximum, Some(5000.0));
    let p = credit.proposal.as_ref().unwrap();
    assert_eq!(
        p.patch,
        vec![
            (
                "plan_credit_cents".to_owned(),
                PatchValue::FromArg("credit_cents".to_owned())
            ),
            (
                "credit_reason".to_owned(),
                PatchValue::FromArg("reason".to_owned())
            ),
        ]
    );
    assert_eq!(
        p.numeric_bounds,
        BTreeMap::from([(
            "plan_credit_cents".to_owned(),
            Bounds {
                minimum: Some(0.0),
                maximum: Some(5000.0)
            }
        )])
    );
    assert!(p.transition_guards.is_empty());

    let waiver = capability(&cfg, "billing.propose_late_fee_waiver");
    let p = waiver.proposal.as_ref().unwrap();
    assert_eq!(
        p.numeric_bounds,
        BTreeMap::from([(
            "late_fee_cents".to_owned(),
            Bounds {
                minimum: Some(0.0),
                maximum: Some(10000.0)
            }
        )])
    );
    assert_eq!(p.approval.required_role.as_deref(), Some("billing_lead"));

    let status = capability(&cfg, "orders.propose_status_change");
    let arg = status.arg("status").unwrap();
    assert_eq!(arg.ty, ArgType::String);
    assert_eq!(arg.max_length, None);
    assert_eq!(
        arg.enum_values,
        Some(vec![json!("ready_to_ship"), json!("canceled")])
    );
    let p = status.proposal.as_ref().unwrap();
    assert_eq!(
        p.transition_guards["status"].allowed,
        BTreeMap::from([
            (
                "paid".to_owned(),
                vec!["ready_to_ship".to_owned(), "canceled".to_owned()]
            ),
            ("processing".to_owned(), vec!["ready_to_ship".to_owned()]),
        ])
    );
    assert_eq!(p.approval.required_role.as_deref(), Some("orders_lead"));
}

// ---------------------------------------------------------------------------
// `capabilities` and capability names.

fn numbered_capabilities(v: &mut Value, n: usize) {
    let template = v["capabilities"][TICKET].clone();
    let caps: Vec<Value> = (0..n)
        .map(|i| {
            let mut c = template.clone();
            c["name"] = json!(format!("support.inspect_ticket_{i}"));
            c
        })
        .collect();
    v["capabilities"] = Value::Array(caps);
}

#[test]
fn at_most_512_capabilities() {
    let (cfg, _) = accepted(|v| numbered_capabilities(v, 512));
    assert_eq!(cfg.capabilities.len(), 512);
    assert_eq!(cfg.capabilities[511].name, "support.inspect_ticket_511");
    check_refused(&[Refused {
        what: "513 capabilities",
        edit: |v| numbered_capabilities(v, 513),
        errors: &[("$.capabilities", "513 capabilities; the limit is 512")],
    }]);
}

#[test]
fn capability_names_are_qualified_unique_and_claim_no_authority() {
    // 63 characters with one dot: 64 as the client-safe `billing__…`.
    let name63 = format!("billing.{}", "a".repeat(55));
    assert_eq!(name63.len(), 63);
    let (cfg, _) = accepted(|v| cap(v, TICKET)["name"] = json!(name63.clone()));
    assert_eq!(cfg.capabilities[TICKET].name, name63);

    check_refused(&[
        Refused {
            what: "capabilities missing",
            edit: |v| remove(v, "capabilities"),
            errors: &[("$.capabilities", "missing required field `capabilities`")],
        },
        Refused {
            what: "capabilities empty",
            edit: |v| v["capabilities"] = json!([]),
            errors: &[("$.capabilities", "at least one capability is required")],
        },
        Refused {
            what: "capabilities not an array",
            edit: |v| v["capabilities"] = json!({}),
            errors: &[("$.capabilities", "expected an array, found an object")],
        },
        Refused {
            what: "name without a dot",
            edit: |v| cap(v, TICKET)["name"] = json!("billing"),
            errors: &[(
                "$.capabilities[0].name",
                "`billing` is not a qualified capability name",
            )],
        },
        Refused {
            what: "name with an unsafe part",
            edit: |v| cap(v, TICKET)["name"] = json!("billing.bad-name"),
            errors: &[(
                "$.capabilities[0].name",
                "`billing.bad-name` is not a qualified capability name",
            )],
        },
        Refused {
            what: "name with an empty part",
            edit: |v| cap(v, TICKET)["name"] = json!("billing."),
            errors: &[(
                "$.capabilities[0].name",
                "`billing.` is not a qualified capability name",
            )],
        },
        Refused {
            what: "name of 64 characters, 65 as a client-safe name",
            edit: |v| cap(v, TICKET)["name"] = json!(format!("billing.{}", "a".repeat(56))),
            errors: &[(
                "$.capabilities[0].name",
                "becomes the 65-character tool name `billing__aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa` for clients that allow no dots; MCP clients accept at most 64",
            )],
        },
        Refused {
            what: "name of 65 characters",
            edit: |v| cap(v, TICKET)["name"] = json!(format!("billing.{}", "a".repeat(57))),
            errors: &[(
                "$.capabilities[0].name",
                "is not a qualified capability name",
            )],
        },
        Refused {
            what: "name claiming approval",
            edit: |v| cap(v, TICKET)["name"] = json!("billing.approve_refund"),
            errors: &[(
                "$.capabilities[0].name",
                "capability names may not contain `approve`",
            )],
        },
        Refused {
            what: "name missing",
            edit: |v| remove(cap(v, TICKET), "name"),
            errors: &[("$.capabilities[0].name", "missing required field `name`")],
        },
        Refused {
            what: "the same name twice",
            edit: |v| cap(v, 2)["name"] = json!("support.inspect_ticket"),
            errors: &[(
                "$.capabilities[2].name",
                "capability `support.inspect_ticket` is defined twice",
            )],
        },
        Refused {
            what: "two names with one OpenAI alias",
            edit: |v| {
                cap(v, TICKET)["name"] = json!("support.inspect__ticket");
                cap(v, 2)["name"] = json!("support__inspect.ticket");
            },
            errors: &[(
                "$.capabilities[2].name",
                "capability `support__inspect.ticket` has the same OpenAI-safe alias `support__inspect__ticket` as another capability",
            )],
        },
    ]);
}

// ---------------------------------------------------------------------------
// One capability's own fields.

#[test]
fn capability_fields_parse_exactly() {
    let long = "é".repeat(2000);
    let (cfg, _) = accepted(|v| {
        let c = cap(v, TICKET);
        c["description"] = json!(long.clone());
        c["returns_hint"] = json!("one ticket");
        c["evidence"] = json!("optional");
        c["max_rows"] = json!(100);
        remove(c, "context");
    });
    let c = &cfg.capabilities[TICKET];
    assert_eq!(c.description.as_deref(), Some(long.as_str()));
    assert_eq!(c.returns_hint.as_deref(), Some("one ticket"));
    assert_eq!(c.evidence, EvidenceMode::Optional);
    assert_eq!(c.max_rows, 100);
    assert_eq!(c.context, None);

    let (cfg, _) = accepted(|v| {
        let c = cap(v, TICKET);
        remove(c, "evidence");
        remove(c, "max_rows");
    });
    assert_eq!(cfg.capabilities[TICKET].evidence, EvidenceMode::Required);
    assert_eq!(cfg.capabilities[TICKET].max_rows, 1);
}

#[test]
fn capability_field_errors() {
    check_refused(&[
        Refused {
            what: "description of 2001 characters",
            edit: |v| cap(v, TICKET)["description"] = json!("é".repeat(2001)),
            errors: &[(
                "$.capabilities[0].description",
                "longer than 2000 characters",
            )],
        },
        Refused {
            what: "unknown kind",
            edit: |v| cap(v, TICKET)["kind"] = json!("write"),
            errors: &[("$.capabilities[0].kind", "unknown capability kind `write`")],
        },
        Refused {
            what: "kind missing",
            edit: |v| remove(cap(v, TICKET), "kind"),
            errors: &[("$.capabilities[0].kind", "missing required field `kind`")],
        },
        Refused {
            what: "unknown evidence mode",
            edit: |v| cap(v, TICKET)["evidence"] = json!("maybe"),
            errors: &[(
                "$.capabilities[0].evidence",
                "unknown evidence mode `maybe`",
            )],
        },
        Refused {
            what: "unknown source",
            edit: |v| cap(v, TICKET)["source"] = json!("nope"),
            errors: &[("$.capabilities[0].source", "unknown source `nope`")],
        },
        Refused {
            what: "source missing",
            edit: |v| remove(cap(v, TICKET), "source"),
            errors: &[(
                "$.capabilities[0].source",
                "missing required field `source`",
            )],
        },
        Refused {
            // The source's own error is the only one: the capability does
            // not report a reference to a written-but-invalid source again.
            what: "source written but invalid",
            edit: |v| {
                v["sources"]["broken"] = json!({"engine": "oracle", "read_url_env": "BROKEN_URL"});
                cap(v, TICKET)["source"] = json!("broken");
            },
            errors: &[("$.sources.broken.engine", "unknown engine `oracle`")],
        },
        Refused {
            what: "unknown context",
            edit: |v| cap(v, TICKET)["context"] = json!("nope"),
            errors: &[("$.capabilities[0].context", "unknown context `nope`")],
        },
        Refused {
            what: "context written but invalid",
            edit: |v| {
                v["contexts"]["broken"] = json!({"provider": "magic"});
                cap(v, TICKET)["context"] = json!("broken");
            },
            errors: &[(
                "$.contexts.broken.provider",
                "trusted-context provider `magic` is not supported",
            )],
        },
        Refused {
            what: "visible_columns missing",
            edit: |v| remove(cap(v, TICKET), "visible_columns"),
            errors: &[(
                "$.capabilities[0].visible_columns",
                "missing required field `visible_columns`",
            )],
        },
        Refused {
            what: "a proposal-only key on a read",
            edit: |v| cap(v, TICKET)["patch"] = json!({"status": {"fixed": "x"}}),
            errors: &[(
                "$.capabilities[0].patch",
                "`patch` applies only to proposal capabilities",
            )],
        },
        Refused {
            what: "proposals in read_only mode",
            edit: |v| v["mode"] = json!("read_only"),
            errors: &[
                (
                    "$.capabilities[1].kind",
                    "mode `read_only` serves no proposal capabilities",
                ),
                (
                    "$.capabilities[3].kind",
                    "mode `read_only` serves no proposal capabilities",
                ),
                (
                    "$.capabilities[5].kind",
                    "mode `read_only` serves no proposal capabilities",
                ),
                (
                    "$.capabilities[7].kind",
                    "mode `read_only` serves no proposal capabilities",
                ),
            ],
        },
    ]);
    let fix = edited(|v| cap(v, TICKET)["source"] = json!("nope"))
        .report
        .errors()
        .next()
        .unwrap()
        .fix
        .clone();
    assert_eq!(
        fix,
        "use one of the sources defined in `sources`: app_postgres"
    );
}

// ---------------------------------------------------------------------------
// Target and tenant scoping.

#[test]
fn acknowledged_single_tenant_target_loads_with_a_warning() {
    let (cfg, loaded) = accepted(|v| {
        let c = cap(v, TICKET);
        remove(&mut c["target"], "tenant_key");
        c["target"]["single_tenant_dev"] = json!(true);
        c["single_tenant_dev_ack"] = json!(true);
    });
    assert_eq!(cfg.capabilities[TICKET].target.tenant_key, None);
    assert_eq!(cfg.capabilities[TICKET].target.primary_key, "id");
    assert_eq!(
        warnings(&loaded),
        [(
            "$.capabilities[0].target.single_tenant_dev".to_owned(),
            "this capability has no tenant key: every row of the table is in scope".to_owned()
        )]
    );
    assert!(
        loaded
            .report
            .diagnostics
            .iter()
            .all(|d| d.severity == Severity::Warning)
    );
}

#[test]
fn target_errors() {
    check_refused(&[
        Refused {
            what: "target missing",
            edit: |v| remove(cap(v, TICKET), "target"),
            errors: &[(
                "$.capabilities[0].target",
                "missing required field `target`",
            )],
        },
        Refused {
            what: "tenant key missing",
            edit: |v| remove(&mut cap(v, TICKET)["target"], "tenant_key"),
            errors: &[(
                "$.capabilities[0].target.tenant_key",
                "missing `tenant_key`: every read and proposal must be scoped by the trusted tenant",
            )],
        },
        Refused {
            what: "single_tenant_dev without the acknowledgement",
            edit: |v| {
                let c = cap(v, TICKET);
                remove(&mut c["target"], "tenant_key");
                c["target"]["single_tenant_dev"] = json!(true);
            },
            errors: &[(
                "$.capabilities[0].single_tenant_dev_ack",
                "`single_tenant_dev` without a tenant key must be acknowledged",
            )],
        },
        Refused {
            what: "the acknowledgement without single_tenant_dev",
            edit: |v| {
                let c = cap(v, TICKET);
                remove(&mut c["target"], "tenant_key");
                c["single_tenant_dev_ack"] = json!(true);
            },
            errors: &[(
                "$.capabilities[0].target.tenant_key",
                "missing `tenant_key`",
            )],
        },
        Refused {
            what: "tenant key is the primary key",
            edit: |v| cap(v, TICKET)["target"]["tenant_key"] = json!("id"),
            errors: &[(
                "$.capabilities[0].target.tenant_key",
                "the tenant key cannot be the primary key",
            )],
        },
        Refused {
            what: "unsafe table",
            edit: |v| cap(v, TICKET)["target"]["table"] = json!("bad table"),
            errors: &[(
                "$.capabilities[0].target.table",
                "`bad table` is not a safe SQL identifier",
            )],
        },
    ]);
}

// ---------------------------------------------------------------------------
// Arguments and the lookup.

fn many_args(v: &mut Value, extra: usize) {
    let args = cap(v, TICKET)["args"].as_object_mut().unwrap();
    for i in 0..extra {
        args.insert(format!("note_{i}"), json!({"type": "string"}));
    }
}

fn arg(v: &mut Value, value: Value) {
    cap(v, TICKET)["args"]["channel"] = value;
}

#[test]
fn at_most_32_arguments() {
    let (cfg, _) = accepted(|v| many_args(v, 31));
    assert_eq!(cfg.capabilities[TICKET].args.len(), 32);
    assert_eq!(cfg.capabilities[TICKET].args[31].name, "note_30");
    check_refused(&[Refused {
        what: "33 arguments",
        edit: |v| many_args(v, 32),
        errors: &[("$.capabilities[0].args", "33 arguments; the limit is 32")],
    }]);
}

#[test]
fn argument_specs_parse_exactly() {
    let (cfg, _) = accepted(|v| {
        arg(
            v,
            json!({"type": "integer", "description": "which", "minimum": -3, "maximum": -3, "enum": [-3]}),
        );
        cap(v, TICKET)["args"]["flag"] = json!({"type": "boolean", "enum": [true]});
        cap(v, TICKET)["args"]["ratio"] = json!({"type": "number", "enum": [1.5, 2]});
        cap(v, TICKET)["args"]["code"] =
            json!({"type": "string", "max_length": 2, "enum": ["éé", "ab"]});
    });
    let c = &cfg.capabilities[TICKET];
    let names: Vec<&str> = c.args.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["ticket_id", "channel", "flag", "ratio", "code"]);
    let channel = c.arg("channel").unwrap();
    assert_eq!(channel.ty, ArgType::Integer);
    assert!(!channel.required);
    assert_eq!(channel.description.as_deref(), Some("which"));
    assert_eq!(channel.minimum, Some(-3.0));
    assert_eq!(channel.maximum, Some(-3.0));
    assert_eq!(channel.max_length, None);
    assert_eq!(channel.enum_values, Some(vec![json!(-3)]));
    let flag = c.arg("flag").unwrap();
    assert_eq!(flag.ty, ArgType::Boolean);
    assert_eq!(flag.enum_values, Some(vec![json!(true)]));
    let ratio = c.arg("ratio").unwrap();
    assert_eq!(ratio.ty, ArgType::Number);
    assert_eq!(ratio.enum_values, Some(vec![json!(1.5), json!(2)]));
    let code = c.arg("code").unwrap();
    assert_eq!(code.max_length, Some(2));
    assert_eq!(code.enum_values, Some(vec![json!("éé"), json!("ab")]));

    // 256 enum values are the most an argument may list.
    let values: Vec<Value> = (0..256).map(|i| json!(format!("v{i}"))).collect();
    let (cfg, _) = accepted(|v| arg(v, json!({"type": "string", "enum": values.clone()})));
    assert_eq!(
        cfg.capabilities[TICKET]
            .arg("channel")
            .unwrap()
            .enum_values
            .as_ref()
            .unwrap()
            .len(),
        256
    );

    // A number argument whose minimum equals its maximum.
    let (cfg, _) = accepted(|v| {
        cap(v, CREDIT)["args"]["credit_cents"]["minimum"] = json!(5);
        cap(v, CREDIT)["args"]["credit_cents"]["maximum"] = json!(5);
    });
    let cents = cfg.capabilities[CREDIT].arg("credit_cents").unwrap();
    assert_eq!((cents.minimum, cents.maximum), (Some(5.0), Some(5.0)));
}

#[test]
fn argument_errors() {
    check_refused(&[
        Refused {
            what: "args missing",
            edit: |v| remove(cap(v, TICKET), "args"),
            errors: &[("$.capabilities[0].args", "missing required field `args`")],
        },
        Refused {
            what: "args empty",
            edit: |v| cap(v, TICKET)["args"] = json!({}),
            errors: &[(
                "$.capabilities[0].args",
                "at least one argument is required (the lookup id)",
            )],
        },
        Refused {
            what: "authority-shaped argument",
            edit: |v| cap(v, TICKET)["args"]["tenant_id"] = json!({"type": "string"}),
            errors: &[(
                "$.capabilities[0].args.tenant_id",
                "argument `tenant_id` is named like authority or query shape",
            )],
        },
        Refused {
            what: "unsafe argument name",
            edit: |v| cap(v, TICKET)["args"]["bad-name"] = json!({"type": "string"}),
            errors: &[(
                "$.capabilities[0].args[\"bad-name\"]",
                "`bad-name` is not a valid argument name",
            )],
        },
        Refused {
            what: "argument not an object",
            edit: |v| arg(v, json!("string")),
            errors: &[(
                "$.capabilities[0].args.channel",
                "expected an object, found a string",
            )],
        },
        Refused {
            what: "unknown argument type",
            edit: |v| arg(v, json!({"type": "text"})),
            errors: &[(
                "$.capabilities[0].args.channel.type",
                "unknown argument type `text`",
            )],
        },
        Refused {
            what: "argument type missing",
            edit: |v| arg(v, json!({"required": true})),
            errors: &[(
                "$.capabilities[0].args.channel.type",
                "missing required field `type`",
            )],
        },
        Refused {
            what: "max_length on an integer",
            edit: |v| arg(v, json!({"type": "integer", "max_length": 5})),
            errors: &[(
                "$.capabilities[0].args.channel.max_length",
                "`max_length` applies only to string arguments",
            )],
        },
        Refused {
            what: "minimum on a string",
            edit: |v| arg(v, json!({"type": "string", "minimum": 1})),
            errors: &[(
                "$.capabilities[0].args.channel.minimum",
                "`minimum` applies only to number and integer arguments",
            )],
        },
        Refused {
            what: "maximum on a boolean",
            edit: |v| arg(v, json!({"type": "boolean", "maximum": 1})),
            errors: &[(
                "$.capabilities[0].args.channel.maximum",
                "`maximum` applies only to number and integer arguments",
            )],
        },
        Refused {
            what: "minimum above maximum",
            edit: |v| {
                cap(v, CREDIT)["args"]["credit_cents"]["minimum"] = json!(6);
                cap(v, CREDIT)["args"]["credit_cents"]["maximum"] = json!(5);
            },
            errors: &[(
                "$.capabilities[3].args.credit_cents.minimum",
                "minimum 6 is greater than maximum 5",
            )],
        },
        Refused {
            what: "empty enum",
            edit: |v| arg(v, json!({"type": "string", "enum": []})),
            errors: &[(
                "$.capabilities[0].args.channel.enum",
                "an enum must list 1 to 256 values",
            )],
        },
        Refused {
            what: "257 enum values",
            edit: |v| {
                let values: Vec<Value> = (0..257).map(|i| json!(format!("v{i}"))).collect();
                arg(v, json!({"type": "string", "enum": values}));
            },
            errors: &[(
                "$.capabilities[0].args.channel.enum",
                "an enum must list 1 to 256 values",
            )],
        },
        Refused {
            what: "string enum value longer than max_length",
            edit: |v| {
                arg(
                    v,
                    json!({"type": "string", "max_length": 2, "enum": ["ab", "abc"]}),
                )
            },
            errors: &[(
                "$.capabilities[0].args.channel.enum[1]",
                "enum value \"abc\" does not fit the argument's type string",
            )],
        },
        Refused {
            what: "number in a string enum",
            edit: |v| arg(v, json!({"type": "string", "enum": [1]})),
            errors: &[(
                "$.capabilities[0].args.channel.enum[0]",
                "enum value 1 does not fit the argument's type string",
            )],
        },
        Refused {
            what: "fraction in an integer enum",
            edit: |v| arg(v, json!({"type": "integer", "enum": [-1, 1.5]})),
            errors: &[(
                "$.capabilities[0].args.channel.enum[1]",
                "enum value 1.5 does not fit the argument's type integer",
            )],
        },
        Refused {
            what: "string in a number enum",
            edit: |v| arg(v, json!({"type": "number", "enum": ["1"]})),
            errors: &[(
                "$.capabilities[0].args.channel.enum[0]",
                "enum value \"1\" does not fit the argument's type number",
            )],
        },
        Refused {
            what: "number in a boolean enum",
            edit: |v| arg(v, json!({"type": "boolean", "enum": [true, 0]})),
            errors: &[(
                "$.capabilities[0].args.channel.enum[1]",
                "enum value 0 does not fit the argument's type boolean",
            )],
        },
    ]);
    let fix = |edit: fn(&mut Value)| edited(edit).report.errors().next().unwrap().fix.clone();
    assert_eq!(
        fix(|v| arg(
            v,
            json!({"type": "string", "max_length": 1, "enum": ["ab"]})
        )),
        "write a string value within max_length"
    );
    assert_eq!(
        fix(|v| arg(v, json!({"type": "boolean", "enum": ["yes"]}))),
        "write a boolean value"
    );
}

#[test]
fn lookup_argument() {
    // An integer id argument is a fine lookup.
    let (cfg, _) = accepted(|v| {
        cap(v, TICKET)["args"]["ticket_id"] = json!({"type": "integer", "required": true});
    });
    assert_eq!(cfg.capabilities[TICKET].lookup_arg, "ticket_id");
    assert_eq!(cfg.capabilities[TICKET].args[0].ty, ArgType::Integer);

    check_refused(&[
        Refused {
            what: "lookup missing",
            edit: |v| remove(cap(v, TICKET), "lookup"),
            errors: &[(
                "$.capabilities[0].lookup",
                "missing required field `lookup`",
            )],
        },
        Refused {
            what: "id_from_arg missing",
            edit: |v| cap(v, TICKET)["lookup"] = json!({}),
            errors: &[(
                "$.capabilities[0].lookup.id_from_arg",
                "missing required field `id_from_arg`",
            )],
        },
        Refused {
            what: "lookup names no argument",
            edit: |v| cap(v, TICKET)["lookup"]["id_from_arg"] = json!("nope"),
            errors: &[(
                "$.capabilities[0].lookup.id_from_arg",
                "`nope` is not one of this capability's args",
            )],
        },
        Refused {
            what: "lookup argument not required",
            edit: |v| cap(v, TICKET)["args"]["ticket_id"]["required"] = json!(false),
            errors: &[(
                "$.capabilities[0].lookup.id_from_arg",
                "the lookup argument `ticket_id` must be required",
            )],
        },
        Refused {
            what: "lookup argument without `required` (optional by default)",
            edit: |v| remove(&mut cap(v, TICKET)["args"]["ticket_id"], "required"),
            errors: &[(
                "$.capabilities[0].lookup.id_from_arg",
                "the lookup argument `ticket_id` must be required",
            )],
        },
        Refused {
            what: "boolean lookup argument",
            edit: |v| {
                cap(v, TICKET)["args"]["ticket_id"] = json!({"type": "boolean", "required": true});
            },
            errors: &[(
                "$.capabilities[0].lookup.id_from_arg",
                "a boolean cannot identify a row",
            )],
        },
    ]);
}

// ---------------------------------------------------------------------------
// Proposals: allowed columns, executor, source.

#[test]
fn proposal_executor_choices() {
    // The built-in executor may be named without being defined.
    let (cfg, _) = accepted(|v| cap(v, RESOLUTION)["executor"] = json!("sql_update"));
    assert_eq!(
        cfg.capabilities[RESOLUTION]
            .proposal
            .as_ref()
            .unwrap()
            .executor
            .as_deref(),
        Some("sql_update")
    );

    // A handler executor needs no write URL on the source.
    let (cfg, _) = accepted(|v| {
        v["executors"] = json!({"hook": {"type": "http_handler", "url_env": "HOOK_URL"}});
        remove(&mut v["sources"]["app_postgres"], "write_url_env");
        for i in [RESOLUTION, CREDIT, WAIVER, STATUS] {
            cap(v, i)["executor"] = json!("hook");
        }
    });
    assert_eq!(
        cfg.capabilities[WAIVER]
            .proposal
            .as_ref()
            .unwrap()
            .executor
            .as_deref(),
        Some("hook")
    );

    check_refused(&[
        Refused {
            what: "undefined executor",
            edit: |v| cap(v, RESOLUTION)["executor"] = json!("nope"),
            errors: &[("$.capabilities[1].executor", "unknown executor `nope`")],
        },
        Refused {
            what: "sql_update without a write URL",
            edit: |v| {
                v["executors"] = json!({"hook": {"type": "http_handler", "url_env": "HOOK_URL"}});
                remove(&mut v["sources"]["app_postgres"], "write_url_env");
                cap(v, RESOLUTION)["executor"] = json!("hook");
            },
            errors: &[
                (
                    "$.capabilities[3].source",
                    "this proposal is applied by sql_update, but source `app_postgres` has no `write_url_env`",
                ),
                (
                    "$.capabilities[5].source",
                    "this proposal is applied by sql_update, but source `app_postgres` has no `write_url_env`",
                ),
                (
                    "$.capabilities[7].source",
                    "this proposal is applied by sql_update, but source `app_postgres` has no `write_url_env`",
                ),
            ],
        },
        Refused {
            what: "a defined sql_update executor without a write URL",
            edit: |v| {
                v["executors"] = json!({"db": {"type": "sql_update"}});
                remove(&mut v["sources"]["app_postgres"], "write_url_env");
                cap(v, RESOLUTION)["executor"] = json!("db");
                cap(v, CREDIT)["executor"] = json!("db");
                cap(v, WAIVER)["executor"] = json!("db");
                cap(v, STATUS)["executor"] = json!("db");
            },
            errors: &[
                ("$.capabilities[1].source", "has no `write_url_env`"),
                ("$.capabilities[3].source", "has no `write_url_env`"),
                ("$.capabilities[5].source", "has no `write_url_env`"),
                ("$.capabilities[7].source", "has no `write_url_env`"),
            ],
        },
        Refused {
            what: "sql_update on a read_only source",
            edit: |v| v["sources"]["app_postgres"]["read_only"] = json!(true),
            errors: &[
                (
                    "$.capabilities[1].source",
                    "this proposal is applied by sql_update, but its source is `read_only`",
                ),
                ("$.capabilities[3].source", "its source is `read_only`"),
                ("$.capabilities[5].source", "its source is `read_only`"),
                ("$.capabilities[7].source", "its source is `read_only`"),
            ],
        },
    ]);
    let fix = |edit: fn(&mut Value)| edited(edit).report.errors().next().unwrap().fix.clone();
    assert_eq!(
        fix(|v| cap(v, RESOLUTION)["executor"] = json!("nope")),
        "define it under `executors` (defined: none), or omit `executor` for the built-in sql_update"
    );
    assert_eq!(
        fix(|v| {
            v["executors"] = json!({
                "hook": {"type": "http_handler", "url_env": "HOOK_URL"},
                "cmd": {"type": "command_handler", "command_env": "CMD_PATH"}
            });
            cap(v, RESOLUTION)["executor"] = json!("nope");
        }),
        "define it under `executors` (defined: cmd, hook), or omit `executor` for the built-in sql_update"
    );
}

#[test]
fn allowed_columns_never_include_the_keys_or_the_version_column() {
    // With a row-hash guard there is no version column to protect.
    let (cfg, loaded) = accepted(|v| {
        cap(v, RESOLUTION)["conflict_guard"] = json!({"weak_guard_ack": true});
        cap(v, RESOLUTION)["allowed_columns"] = json!(["status", "resolution_note", "updated_at"]);
    });
    let p = cfg.capabilities[RESOLUTION].proposal.as_ref().unwrap();
    assert_eq!(p.conflict_guard, ConflictGuard::RowHash);
    assert_eq!(
        p.allowed_columns,
        ["status", "resolution_note", "updated_at"]
    );
    assert_eq!(
        warnings(&loaded),
        [(
            "$.capabilities[1].conflict_guard.weak_guard_ack".to_owned(),
            "a row-hash conflict guard only compares the visible columns; concurrent changes to other columns go unnoticed".to_owned()
        )]
    );

    check_refused(&[
        Refused {
            what: "allowed_columns missing",
            edit: |v| remove(cap(v, RESOLUTION), "allowed_columns"),
            errors: &[(
                "$.capabilities[1].allowed_columns",
                "missing required field `allowed_columns`",
            )],
        },
        Refused {
            what: "primary key allowed",
            edit: |v| {
                cap(v, RESOLUTION)["allowed_columns"] = json!(["status", "resolution_note", "id"]);
            },
            errors: &[(
                "$.capabilities[1].allowed_columns[2]",
                "`id` is the primary key and can never be changed by a proposal",
            )],
        },
        Refused {
            what: "tenant key allowed",
            edit: |v| {
                cap(v, RESOLUTION)["allowed_columns"] =
                    json!(["tenant_id", "status", "resolution_note"]);
            },
            errors: &[(
                "$.capabilities[1].allowed_columns[0]",
                "`tenant_id` is the tenant key and can never be changed by a proposal",
            )],
        },
        Refused {
            what: "version column allowed",
            edit: |v| {
                cap(v, RESOLUTION)["allowed_columns"] =
                    json!(["status", "updated_at", "resolution_note"]);
            },
            errors: &[(
                "$.capabilities[1].allowed_columns[1]",
                "`updated_at` is the conflict-guard column (the executor advances it) and can never be changed by a proposal",
            )],
        },
    ]);
}

#[test]
fn conflict_guard_errors() {
    check_refused(&[
        Refused {
            what: "conflict_guard missing",
            edit: |v| remove(cap(v, RESOLUTION), "conflict_guard"),
            errors: &[(
                "$.capabilities[1].conflict_guard",
                "missing required field `conflict_guard`",
            )],
        },
        Refused {
            what: "empty conflict guard",
            edit: |v| cap(v, RESOLUTION)["conflict_guard"] = json!({}),
            errors: &[(
                "$.capabilities[1].conflict_guard",
                "a conflict guard needs a `column`, or an explicit `weak_guard_ack: true` for a row-hash guard",
            )],
        },
        Refused {
            what: "weak guard not acknowledged",
            edit: |v| cap(v, RESOLUTION)["conflict_guard"] = json!({"weak_guard_ack": false}),
            errors: &[(
                "$.capabilities[1].conflict_guard",
                "a conflict guard needs a `column`",
            )],
        },
        Refused {
            what: "unsafe guard column",
            edit: |v| cap(v, RESOLUTION)["conflict_guard"] = json!({"column": "bad col"}),
            errors: &[(
                "$.capabilities[1].conflict_guard.column",
                "`bad col` is not a safe SQL identifier",
            )],
        },
    ]);
}

// ---------------------------------------------------------------------------
// Patch.

#[test]
fn patch_bindings() {
    let (cfg, _) = accepted(|v| cap(v, RESOLUTION)["patch"]["status"] = json!({"fixed": null}));
    assert_eq!(
        cfg.capabilities[RESOLUTION]
            .proposal
            .as_ref()
            .unwrap()
            .patch[0],
        ("status".to_owned(), PatchValue::Fixed(Value::Null))
    );

    check_refused(&[
        Refused {
            what: "patch missing",
            edit: |v| remove(cap(v, RESOLUTION), "patch"),
            errors: &[("$.capabilities[1].patch", "missing required field `patch`")],
        },
        Refused {
            what: "patch empty",
            edit: |v| cap(v, RESOLUTION)["patch"] = json!({}),
            errors: &[(
                "$.capabilities[1].patch",
                "a proposal must patch at least one column",
            )],
        },
        Refused {
            what: "unsafe patch column",
            edit: |v| cap(v, RESOLUTION)["patch"]["bad col"] = json!({"fixed": 1}),
            errors: &[(
                "$.capabilities[1].patch[\"bad col\"]",
                "`bad col` is not a safe SQL identifier",
            )],
        },
        Refused {
            what: "patch column outside allowed_columns",
            edit: |v| cap(v, RESOLUTION)["patch"]["customer_id"] = json!({"fixed": 1}),
            errors: &[(
                "$.capabilities[1].patch.customer_id",
                "patch column `customer_id` is not in `allowed_columns`",
            )],
        },
        Refused {
            what: "array as fixed value",
            edit: |v| cap(v, RESOLUTION)["patch"]["status"] = json!({"fixed": ["open"]}),
            errors: &[(
                "$.capabilities[1].patch.status.fixed",
                "a fixed value must be a string, number, boolean or null",
            )],
        },
        Refused {
            what: "object as fixed value",
            edit: |v| cap(v, RESOLUTION)["patch"]["status"] = json!({"fixed": {}}),
            errors: &[(
                "$.capabilities[1].patch.status.fixed",
                "a fixed value must be a string, number, boolean or null",
            )],
        },
        Refused {
            what: "from_arg naming no argument",
            edit: |v| cap(v, RESOLUTION)["patch"]["resolution_note"] = json!({"from_arg": "nope"}),
            errors: &[(
                "$.capabilities[1].patch.resolution_note.from_arg",
                "`nope` is not one of this capability's args",
            )],
        },
        Refused {
            what: "both fixed and from_arg",
            edit: |v| {
                cap(v, RESOLUTION)["patch"]["status"] =
                    json!({"fixed": "pending_review", "from_arg": "ticket_id"});
            },
            errors: &[(
                "$.capabilities[1].patch.status",
                "a patch binding needs exactly one of `fixed`, `from_arg`, `increment_from_arg`, `decrement_from_arg` or `apply_time`",
            )],
        },
        Refused {
            what: "neither fixed nor from_arg",
            edit: |v| cap(v, RESOLUTION)["patch"]["status"] = json!({}),
            errors: &[(
                "$.capabilities[1].patch.status",
                "a patch binding needs exactly one of `fixed`, `from_arg`, `increment_from_arg`, `decrement_from_arg` or `apply_time`",
            )],
        },
    ]);
}

// ---------------------------------------------------------------------------
// Numeric bounds.

#[test]
fn numeric_bounds_values() {
    let (cfg, _) = accepted(|v| {
        cap(v, WAIVER)["numeric_bounds"]["late_fee_cents"] = json!({"minimum": 0, "maximum": 0});
        cap(v, CREDIT)["numeric_bounds"]["plan_credit_cents"] = json!({"minimum": 7, "maximum": 7});
    });
    assert_eq!(
        cfg.capabilities[WAIVER]
            .proposal
            .as_ref()
            .unwrap()
            .numeric_bounds,
        BTreeMap::from([(
            "late_fee_cents".to_owned(),
            Bounds {
                minimum: Some(0.0),
                maximum: Some(0.0)
            }
        )])
    );
    assert_eq!(
        cfg.capabilities[CREDIT]
            .proposal
            .as_ref()
            .unwrap()
            .numeric_bounds["plan_credit_cents"],
        Bounds {
            minimum: Some(7.0),
            maximum: Some(7.0)
        }
    );

    // A bound on an integer argument, with only a maximum; no bounds at all.
    let (cfg, _) = accepted(|v| {
        cap(v, CREDIT)["args"]["credit_cents"]["type"] = json!("integer");
        cap(v, CREDIT)["numeric_bounds"] = json!({"plan_credit_cents": {"maximum": 9}});
        remove(cap(v, WAIVER), "numeric_bounds");
    });
    assert_eq!(
        cfg.capabilities[CREDIT]
            .proposal
            .as_ref()
            .unwrap()
            .numeric_bounds,
        BTreeMap::from([(
            "plan_credit_cents".to_owned(),
            Bounds {
                minimum: None,
                maximum: Some(9.0)
            }
        )])
    );
    assert!(
        cfg.capabilities[WAIVER]
            .proposal
            .as_ref()
            .unwrap()
            .numeric_bounds
            .is_empty()
    );
}

#[test]
fn numeric_bounds_errors() {
    check_refused(&[
        Refused {
            what: "numeric_bounds not an object",
            edit: |v| cap(v, WAIVER)["numeric_bounds"] = json!([]),
            errors: &[(
                "$.capabilities[5].numeric_bounds",
                "expected an object, found an array",
            )],
        },
        Refused {
            what: "unsafe bounded column",
            edit: |v| cap(v, WAIVER)["numeric_bounds"]["bad col"] = json!({}),
            errors: &[(
                "$.capabilities[5].numeric_bounds[\"bad col\"]",
                "`bad col` is not a safe SQL identifier",
            )],
        },
        Refused {
            what: "bounds on a column outside allowed_columns",
            edit: |v| cap(v, WAIVER)["numeric_bounds"]["balance_cents"] = json!({"minimum": 0}),
            errors: &[(
                "$.capabilities[5].numeric_bounds.balance_cents",
                "bounds on `balance_cents`, which is not in `allowed_columns`",
            )],
        },
        Refused {
            what: "bounds not an object",
            edit: |v| cap(v, WAIVER)["numeric_bounds"]["late_fee_cents"] = json!(5),
            errors: &[(
                "$.capabilities[5].numeric_bounds.late_fee_cents",
                "expected an object, found a number",
            )],
        },
        Refused {
            what: "bound minimum above maximum",
            edit: |v| {
                cap(v, CREDIT)["numeric_bounds"]["plan_credit_cents"] =
                    json!({"minimum": 10, "maximum": 5});
            },
            errors: &[(
                "$.capabilities[3].numeric_bounds.plan_credit_cents.minimum",
                "minimum 10 is greater than maximum 5",
            )],
        },
        Refused {
            what: "fixed value below the minimum",
            edit: |v| cap(v, WAIVER)["numeric_bounds"]["late_fee_cents"]["minimum"] = json!(1),
            errors: &[(
                "$.capabilities[5].numeric_bounds.late_fee_cents",
                "the fixed patch value 0 for `late_fee_cents` is outside these bounds",
            )],
        },
        Refused {
            what: "fixed value above the maximum",
            edit: |v| {
                cap(v, WAIVER)["numeric_bounds"]["late_fee_cents"] =
                    json!({"minimum": -10, "maximum": -1});
            },
            errors: &[(
                "$.capabilities[5].numeric_bounds.late_fee_cents",
                "the fixed patch value 0 for `late_fee_cents` is outside these bounds",
            )],
        },
        Refused {
            what: "fixed value not a number",
            edit: |v| cap(v, WAIVER)["patch"]["late_fee_cents"] = json!({"fixed": "zero"}),
            errors: &[(
                "$.capabilities[5].numeric_bounds.late_fee_cents",
                "the fixed patch value \"zero\" for `late_fee_cents` is outside these bounds",
            )],
        },
        Refused {
            what: "bounded column taking a string argument",
            edit: |v| cap(v, CREDIT)["numeric_bounds"]["credit_reason"] = json!({"maximum": 5}),
            errors: &[(
                "$.capabilities[3].numeric_bounds.credit_reason",
                "`credit_reason` is bounded but takes argument `reason` of type string",
            )],
        },
    ]);
}

// ---------------------------------------------------------------------------
// Transition guards.

fn from_column(v: &mut Value, from: &str) {
    cap(v, STATUS)["transition_guards"]["status"]["from_column"] = json!(from);
}

#[test]
fn transition_guard_from_column_values() {
    for from in ["status", "status_change_reason", "updated_at"] {
        let (cfg, _) = accepted(|v| from_column(v, from));
        let p = cfg.capabilities[STATUS].proposal.as_ref().unwrap();
        assert_eq!(
            p.transition_guards["status"].from_column.as_deref(),
            Some(from)
        );
    }
    // No transition guards at all.
    let (cfg, _) = accepted(|v| remove(cap(v, STATUS), "transition_guards"));
    assert!(
        cfg.capabilities[STATUS]
            .proposal
            .as_ref()
            .unwrap()
            .transition_guards
            .is_empty()
    );
    // A fixed value that is a target of some allowed transition.
    let (cfg, _) = accepted(|v| {
        cap(v, RESOLUTION)["transition_guards"]["status"]["allowed"] =
            json!({"open": ["closed"], "reopened": ["closed", "pending_review"]});
    });
    assert_eq!(
        cfg.capabilities[RESOLUTION]
            .proposal
            .as_ref()
            .unwrap()
            .transition_guards["status"]
            .allowed["reopened"],
        ["closed", "pending_review"]
    );
}

#[test]
fn transition_guard_errors() {
    check_refused(&[
        Refused {
            what: "transition_guards not an object",
            edit: |v| cap(v, STATUS)["transition_guards"] = json!("status"),
            errors: &[(
                "$.capabilities[7].transition_guards",
                "expected an object, found a string",
            )],
        },
        Refused {
            what: "unsafe guarded column",
            edit: |v| cap(v, STATUS)["transition_guards"]["bad col"] = json!({"allowed": {}}),
            errors: &[(
                "$.capabilities[7].transition_guards[\"bad col\"]",
                "`bad col` is not a safe SQL identifier",
            )],
        },
        Refused {
            what: "guard on an unpatched column",
            edit: |v| {
                cap(v, STATUS)["transition_guards"]["customer_id"] =
                    json!({"allowed": {"a": ["b"]}});
            },
            errors: &[(
                "$.capabilities[7].transition_guards.customer_id",
                "a transition guard on `customer_id`, which the patch never sets, has no effect",
            )],
        },
        Refused {
            what: "guard not an object",
            edit: |v| cap(v, STATUS)["transition_guards"]["status"] = json!([]),
            errors: &[(
                "$.capabilities[7].transition_guards.status",
                "expected an object, found an array",
            )],
        },
        Refused {
            what: "from_column neither patched nor the version column",
            edit: |v| from_column(v, "customer_id"),
            errors: &[(
                "$.capabilities[7].transition_guards.status.from_column",
                "`from_column` `customer_id` is neither patched by this capability nor its version column, so the executor cannot check the transition and would refuse every proposal",
            )],
        },
        Refused {
            what: "allowed missing",
            edit: |v| cap(v, STATUS)["transition_guards"]["status"] = json!({}),
            errors: &[(
                "$.capabilities[7].transition_guards.status.allowed",
                "missing required field `allowed`",
            )],
        },
        Refused {
            what: "allowed not an object",
            edit: |v| cap(v, STATUS)["transition_guards"]["status"]["allowed"] = json!(["paid"]),
            errors: &[(
                "$.capabilities[7].transition_guards.status.allowed",
                "expected an object, found an array",
            )],
        },
        Refused {
            what: "a target state that is not a string",
            edit: |v| {
                cap(v, STATUS)["transition_guards"]["status"]["allowed"]["paid"] =
                    json!(["canceled", 1]);
            },
            errors: &[(
                "$.capabilities[7].transition_guards.status.allowed.paid",
                "expected a list of target states (strings)",
            )],
        },
        Refused {
            what: "target states not a list",
            edit: |v| {
                cap(v, STATUS)["transition_guards"]["status"]["allowed"]["paid"] =
                    json!("canceled");
            },
            errors: &[(
                "$.capabilities[7].transition_guards.status.allowed.paid",
                "expected a list of target states (strings)",
            )],
        },
        Refused {
            what: "fixed patch value that no transition reaches",
            edit: |v| {
                cap(v, RESOLUTION)["transition_guards"]["status"]["allowed"] =
                    json!({"open": ["resolved"]});
            },
            errors: &[(
                "$.capabilities[1].transition_guards.status",
                "the fixed patch value `pending_review` is not a target of any allowed transition, so every proposal would be refused",
            )],
        },
    ]);

    let fix = |edit: fn(&mut Value)| edited(edit).report.errors().next().unwrap().fix.clone();
    assert_eq!(
        fix(|v| from_column(v, "customer_id")),
        "read the state from a patched column or from the version column `updated_at`, or remove `from_column` to read `status` itself"
    );
    assert_eq!(
        fix(|v| {
            cap(v, STATUS)["conflict_guard"] = json!({"weak_guard_ack": true});
            from_column(v, "updated_at");
        }),
        "read the state from a patched column, or remove `from_column` to read `status` itself"
    );
}

// ---------------------------------------------------------------------------
// Approval.

#[test]
fn approval_values() {
    for (approval, role) in [
        (
            json!({"mode": "human", "required_role": "ops-lead.eu_1"}),
            Some("ops-lead.eu_1"),
        ),
        (json!({"mode": "human"}), None),
        (json!({}), None),
        (
            json!({"required_role": "a".repeat(64)}),
            Some(&*"a".repeat(64)),
        ),
    ] {
        let (cfg, _) = accepted(|v| cap(v, RESOLUTION)["approval"] = approval.clone());
        assert_eq!(
            cfg.capabilities[RESOLUTION]
                .proposal
                .as_ref()
                .unwrap()
                .approval
                .required_role
                .as_deref(),
            role,
            "{approval}"
        );
    }
    let (cfg, _) = accepted(|v| remove(cap(v, RESOLUTION), "approval"));
    assert_eq!(
        cfg.capabilities[RESOLUTION]
            .proposal
            .as_ref()
            .unwrap()
            .approval
            .required_role,
        None
    );
}

#[test]
fn approval_errors() {
    check_refused(&[
        Refused {
            what: "approval not an object",
            edit: |v| cap(v, RESOLUTION)["approval"] = json!("human"),
            errors: &[(
                "$.capabilities[1].approval",
                "expected an object, found a string",
            )],
        },
        Refused {
            what: "approval by anything but a person",
            edit: |v| cap(v, RESOLUTION)["approval"]["mode"] = json!("auto"),
            errors: &[(
                "$.capabilities[1].approval.mode",
                "approval mode `auto` is not supported: every proposal needs a person",
            )],
        },
        Refused {
            what: "role with a space",
            edit: |v| cap(v, RESOLUTION)["approval"]["required_role"] = json!("bad role"),
            errors: &[(
                "$.capabilities[1].approval.required_role",
                "`bad role` is not a valid role name",
            )],
        },
        Refused {
            what: "role of 65 characters",
            edit: |v| cap(v, RESOLUTION)["approval"]["required_role"] = json!("a".repeat(65)),
            errors: &[(
                "$.capabilities[1].approval.required_role",
                "is not a valid role name",
            )],
        },
    ]);
}
