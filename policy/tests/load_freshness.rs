//! `approval.required_approvals` and the `proposal_freshness` overlay:
//! what loads, what the capability digest binds, and every mistake with
//! its path and fix.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use airlock_policy::binding::capability_digest;
use airlock_policy::config::FreshnessDependency;
use airlock_policy::load_config;
use serde_json::{Value, json};

const WAIVER: &str = "billing.propose_late_fee_waiver";

fn reference() -> Value {
    serde_json::from_str(include_str!(
        "../../tests/fixtures/reference/airlock.reference.json"
    ))
    .unwrap()
}

fn waiver_index(v: &Value) -> usize {
    v["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .position(|c| c["name"] == WAIVER)
        .unwrap()
}

/// (path, message, fix) of every error.
fn errors(v: &Value) -> Vec<(String, String, String)> {
    load_config(v)
        .report
        .errors()
        .map(|e| (e.path.clone(), e.message.clone(), e.fix.clone()))
        .collect()
}

/// Exactly one error, at `path`, whose message and fix contain the texts.
fn refused(v: &Value, path: &str, message: &str, fix: &str) {
    let errs = errors(v);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    let (p, m, f) = &errs[0];
    assert_eq!(p, path, "{errs:#?}");
    assert!(m.contains(message), "message {m:?} lacks {message:?}");
    assert!(f.contains(fix), "fix {f:?} lacks {fix:?}");
}

fn dependency() -> Value {
    json!({"id": "invoice_status", "capability": "billing.inspect_invoice",
           "identity_from_arg": "invoice_id", "version_column": "status"})
}

fn with_freshness(entry: Value) -> Value {
    let mut v = reference();
    v["proposal_freshness"] = json!({ WAIVER: entry });
    v
}

#[test]
fn required_approvals_loads_and_only_a_quorum_changes_the_digest() {
    let base = reference();
    let cfg = load_config(&base).config.unwrap();
    let cap = cfg.capability(WAIVER).unwrap();
    assert_eq!(
        cap.proposal.as_ref().unwrap().approval.required_approvals,
        1
    );
    let digest = capability_digest(&cfg, cap);

    let i = waiver_index(&base);
    let mut one = base.clone();
    one["capabilities"][i]["approval"]["required_approvals"] = json!(1);
    let cfg1 = load_config(&one).config.unwrap();
    assert_eq!(
        capability_digest(&cfg1, cfg1.capability(WAIVER).unwrap()),
        digest,
        "an explicit 1 is the default: same digest"
    );

    let mut two = base.clone();
    two["capabilities"][i]["approval"]["required_approvals"] = json!(2);
    let cfg2 = load_config(&two).config.unwrap();
    let cap2 = cfg2.capability(WAIVER).unwrap();
    assert_eq!(
        cap2.proposal.as_ref().unwrap().approval.required_approvals,
        2
    );
    assert_ne!(capability_digest(&cfg2, cap2), digest, "a quorum is bound");

    let mut ten = base.clone();
    ten["capabilities"][i]["approval"]["required_approvals"] = json!(10);
    assert!(errors(&ten).is_empty());
}

#[test]
fn required_approvals_out_of_range_is_refused_with_its_path() {
    let base = reference();
    let i = waiver_index(&base);
    let path = format!("$.capabilities[{i}].approval.required_approvals");
    for bad in [json!(0), json!(11), json!("2"), json!(1.5), json!(-1)] {
        let mut v = base.clone();
        v["capabilities"][i]["approval"]["required_approvals"] = bad;
        refused(
            &v,
            &path,
            "expected a whole number from 1 to 10",
            "between 1 and 10",
        );
    }
}

#[test]
fn proposal_freshness_loads_and_binds_the_digest() {
    let base = reference();
    let cfg = load_config(&base).config.unwrap();
    assert!(cfg.proposal_freshness.is_empty());
    let digest = capability_digest(&cfg, cfg.capability(WAIVER).unwrap());

    let v = with_freshness(json!({"approval": "required", "dependencies": [dependency()]}));
    let loaded = load_config(&v);
    assert!(!loaded.report.has_errors(), "{:#?}", loaded.report);
    let cfg = loaded.config.unwrap();
    assert_eq!(
        cfg.proposal_freshness[WAIVER].dependencies,
        vec![FreshnessDependency {
            id: "invoice_status".into(),
            capability: "billing.inspect_invoice".into(),
            identity_from_arg: "invoice_id".into(),
            version_column: "status".into(),
        }]
    );
    assert_ne!(
        capability_digest(&cfg, cfg.capability(WAIVER).unwrap()),
        digest
    );
    // Other capabilities' digests do not change.
    let plain = load_config(&base).config.unwrap();
    let other = "orders.propose_status_change";
    assert_eq!(
        capability_digest(&cfg, cfg.capability(other).unwrap()),
        capability_digest(&plain, plain.capability(other).unwrap())
    );
    // Without dependencies: the target alone.
    let v = with_freshness(json!({"approval": "required"}));
    let cfg = load_config(&v).config.unwrap();
    assert!(cfg.proposal_freshness[WAIVER].dependencies.is_empty());
}

#[test]
fn every_freshness_mistake_has_a_path_and_a_fix() {
    let at = format!("$.proposal_freshness[\"{WAIVER}\"]");
    // The key must be a proposal capability of the file.
    let mut v = reference();
    v["proposal_freshness"] = json!({"billing.nope": {"approval": "required"}});
    refused(
        &v,
        "$.proposal_freshness[\"billing.nope\"]",
        "is not a capability",
        "proposal capability",
    );
    let mut v = reference();
    v["proposal_freshness"] = json!({"billing.inspect_invoice": {"approval": "required"}});
    refused(
        &v,
        "$.proposal_freshness[\"billing.inspect_invoice\"]",
        "is a read capability",
        "kind \"proposal\"",
    );
    let mut v = reference();
    v["proposal_freshness"] = json!([]);
    refused(
        &v,
        "$.proposal_freshness",
        "expected an object",
        "JSON object",
    );
    // `approval` must be present and `required`.
    refused(
        &with_freshness(json!({})),
        &format!("{at}.approval"),
        "missing required field `approval`",
        "\"approval\": \"required\"",
    );
    refused(
        &with_freshness(json!({"approval": "optional"})),
        &format!("{at}.approval"),
        "approval must be \"required\"",
        "\"approval\": \"required\"",
    );
    refused(
        &with_freshness(json!({"approval": "required", "extra": 1})),
        &format!("{at}.extra"),
        "unknown field `extra`",
        "approval, dependencies",
    );
    refused(
        &with_freshness(json!({"approval": "required", "dependencies": {}})),
        &format!("{at}.dependencies"),
        "expected an array",
        "JSON array",
    );
    let deps = |d: Value| with_freshness(json!({"approval": "required", "dependencies": [d]}));
    let dep = |k: &str, val: Value| {
        let mut d = dependency();
        d[k] = val;
        deps(d)
    };
    let dat = format!("{at}.dependencies[0]");
    refused(
        &dep("capability", json!("billing.nope")),
        &format!("{dat}.capability"),
        "is not a capability",
        "read capability",
    );
    refused(
        &dep("capability", json!(WAIVER)),
        &format!("{dat}.capability"),
        "is not a read capability",
        "kind \"read\"",
    );
    refused(
        &dep("capability", json!("support.propose_ticket_resolution")),
        &format!("{dat}.capability"),
        "is not a read capability",
        "kind \"read\"",
    );
    refused(
        &dep("identity_from_arg", json!("ticket_id")),
        &format!("{dat}.identity_from_arg"),
        "is not an argument",
        "invoice_id, reason",
    );
    refused(
        &dep("version_column", json!("updated at")),
        &format!("{dat}.version_column"),
        "",
        "",
    );
    refused(
        &dep("id", json!("bad id!")),
        &format!("{dat}.id"),
        "not a valid dependency id",
        "64 letters",
    );
    refused(
        &dep("id", json!("x".repeat(65))),
        &format!("{dat}.id"),
        "not a valid dependency id",
        "64 letters",
    );
    let mut d = dependency();
    d.as_object_mut().unwrap().remove("version_column");
    refused(
        &deps(d),
        &format!("{dat}.version_column"),
        "missing required field `version_column`",
        "version",
    );
    for key in ["id", "capability", "identity_from_arg"] {
        let mut d = dependency();
        d.as_object_mut().unwrap().remove(key);
        refused(
            &deps(d),
            &format!("{dat}.{key}"),
            &format!("missing required field `{key}`"),
            "add",
        );
    }
    refused(&dep("sql", json!("x")), &format!("{dat}.sql"), "", "");
    // Another source or context.
    let mut v = deps(dependency());
    v["sources"]["other"] = v["sources"]["app_postgres"].clone();
    v["capabilities"][4]["source"] = json!("other");
    refused(
        &v,
        &format!("{dat}.capability"),
        "reads source `other`",
        "proposal's own source and context",
    );
    let mut v = deps(dependency());
    v["contexts"]["other_ctx"] = v["contexts"]["local_operator"].clone();
    v["capabilities"][4]["context"] = json!("other_ctx");
    refused(
        &v,
        &format!("{dat}.capability"),
        "in context `other_ctx`",
        "proposal's own source and context",
    );
    // Duplicates: the same id, the same row.
    let v = with_freshness(
        json!({"approval": "required", "dependencies": [dependency(), dependency()]}),
    );
    let errs = errors(&v);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert_eq!(errs[0].0, format!("{at}.dependencies[1].id"));
    assert!(errs[0].1.contains("is used twice"));
    assert_eq!(errs[1].0, format!("{at}.dependencies[1]"));
    assert!(errs[1].1.contains("already names the row"), "{errs:#?}");
    assert_eq!(errs[1].2, "list each dependency row once");
    // At most 16.
    let many: Vec<Value> = (0..17)
        .map(|i| {
            let mut d = dependency();
            d["id"] = json!(format!("d{i}"));
            d
        })
        .collect();
    refused(
        &with_freshness(json!({"approval": "required", "dependencies": many})),
        &format!("{at}.dependencies"),
        "17 dependencies; at most 16",
        "keep the rows",
    );
    let sixteen: Vec<Value> = (0..16)
        .map(|i| {
            let mut d = dependency();
            d["id"] = json!(format!("d{i}"));
            d
        })
        .collect();
    let errs = errors(&with_freshness(
        json!({"approval": "required", "dependencies": sixteen}),
    ));
    assert!(
        errs.iter().all(|e| !e.1.contains("at most 16")),
        "{errs:#?}"
    );
}

#[test]
fn dependency_ids_may_use_64_letters_digits_and_separators() {
    for id in ["a-b.c_D9".to_owned(), "x".repeat(64)] {
        let mut d = dependency();
        d["id"] = json!(id);
        let v = with_freshness(json!({"approval": "required", "dependencies": [d]}));
        assert!(errors(&v).is_empty(), "{id}: {:#?}", errors(&v));
    }
}

#[test]
fn a_handler_capability_cannot_have_dependency_locks() {
    let mut v = with_freshness(json!({"approval": "required", "dependencies": [dependency()]}));
    v["executors"] = json!({"app": {"type": "command_handler", "command_env": "APPLY_CMD"}});
    let i = waiver_index(&v);
    v["capabilities"][i]["executor"] = json!("app");
    refused(
        &v,
        &format!("$.proposal_freshness[\"{WAIVER}\"]"),
        "applied by an application handler",
        "sql_update",
    );
    // The built-in sql_update named explicitly is fine.
    v["executors"] = json!({"app": {"type": "sql_update"}});
    assert!(errors(&v).is_empty(), "{:#?}", errors(&v));
}

#[test]
fn tenant_scope_must_agree() {
    let mut v = with_freshness(json!({"approval": "required", "dependencies": [dependency()]}));
    v["capabilities"][4]["target"]
        .as_object_mut()
        .unwrap()
        .remove("tenant_key");
    v["capabilities"][4]["target"]["single_tenant_dev"] = json!(true);
    v["capabilities"][4]["single_tenant_dev_ack"] = json!(true);
    let errs = errors(&v);
    assert!(
        errs.iter().any(|e| e.0
            == format!("$.proposal_freshness[\"{WAIVER}\"].dependencies[0].capability")
            && e.1.contains("disagree on tenant scope")),
        "{errs:#?}"
    );
}

#[test]
fn a_principal_scoped_dependency_read_is_refused_for_now() {
    let mut v = with_freshness(json!({"approval": "required", "dependencies": [dependency()]}));
    v["capabilities"][4]["target"]["principal_scope_key"] = json!("customer_id");
    refused(
        &v,
        &format!("$.proposal_freshness[\"{WAIVER}\"].dependencies[0].capability"),
        "has a principal row scope",
        "without `target.principal_scope_key`",
    );
    // The same dependency without the scope loads.
    v["capabilities"][4]["target"]
        .as_object_mut()
        .unwrap()
        .remove("principal_scope_key");
    assert!(errors(&v).is_empty(), "{:#?}", errors(&v));
}
