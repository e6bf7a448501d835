//! Every rule of the config loader, one broken config each.
//!
//! Each fixture in `tests/fixtures/invalid-configs/` is a small valid config
//! with exactly one thing broken. For each, `airlock config validate --json`
//! must exit 1, report `ok: false`, and name the exact JSON path of the
//! problem with a message saying what is wrong and a fix saying what to write
//! instead. Every fixture in the directory must be listed in [`CASES`], so a
//! new fixture cannot go untested.

use std::collections::BTreeSet;
use std::path::PathBuf;

use airlock_tests::{airlock, stdout_json, workspace_root};
use serde_json::Value;

/// One fixture and the error it must produce.
struct Case {
    /// File name inside `tests/fixtures/invalid-configs/`.
    file: &'static str,
    /// The exact JSON path of the expected error.
    path: &'static str,
    /// A fragment the error's message must contain.
    message: &'static str,
}

const fn case(file: &'static str, path: &'static str, message: &'static str) -> Case {
    Case {
        file,
        path,
        message,
    }
}

const CASES: &[Case] = &[
    case(
        "01-version-not-1.json",
        "$.version",
        "unsupported config version 2",
    ),
    case(
        "02-unknown-mode.json",
        "$.mode",
        "mode `shadow` is not supported",
    ),
    case("03-not-json.json", "$", "not valid JSON"),
    case(
        "04-unknown-top-level-field.json",
        "$.notifications",
        "unknown field `notifications`",
    ),
    case(
        "05-raw-sql-on-capability.json",
        "$.capabilities[0].sql",
        "raw SQL (`sql`) is never accepted",
    ),
    case(
        "06-raw-query-on-capability.json",
        "$.capabilities[1].query",
        "raw SQL (`query`) is never accepted",
    ),
    case(
        "07-inline-read-url-key.json",
        "$.sources.app_postgres.read_url",
        "inline connection details or secrets (`read_url`)",
    ),
    case(
        "08-connection-string-as-env-name.json",
        "$.sources.app_postgres.read_url_env",
        "inline connection string",
    ),
    case(
        "09-invalid-env-var-name.json",
        "$.sources.app_postgres.write_url_env",
        "`app-postgres-write-url` is not a valid environment variable name",
    ),
    case(
        "10-unknown-engine.json",
        "$.sources.app_postgres.engine",
        "unknown engine `oracle`",
    ),
    case(
        "11-read-and-write-env-same.json",
        "$.sources.app_postgres.write_url_env",
        "the read and write URLs come from the same variable",
    ),
    case(
        "12-unknown-source.json",
        "$.capabilities[0].source",
        "unknown source `warehouse`",
    ),
    case(
        "13-unknown-context.json",
        "$.capabilities[0].context",
        "unknown context `night_shift`",
    ),
    case(
        "14-unknown-executor.json",
        "$.capabilities[1].executor",
        "unknown executor `billing_webhook`",
    ),
    case(
        "15-duplicate-capability-name.json",
        "$.capabilities[2].name",
        "`billing.propose_late_fee_waiver` is defined twice",
    ),
    case(
        "16-unqualified-capability-name.json",
        "$.capabilities[0].name",
        "`inspect_invoice` is not a qualified capability name",
    ),
    case(
        "17-capability-name-contains-approve.json",
        "$.capabilities[1].name",
        "may not contain `approve`",
    ),
    case(
        "18-capability-name-contains-sql.json",
        "$.capabilities[0].name",
        "may not contain `sql`",
    ),
    case(
        "19-unknown-kind.json",
        "$.capabilities[0].kind",
        "unknown capability kind `write`",
    ),
    case(
        "20-arg-named-tenant-id.json",
        "$.capabilities[0].args.tenant_id",
        "argument `tenant_id` is named like authority",
    ),
    case(
        "21-arg-named-table.json",
        "$.capabilities[0].args.table",
        "argument `table` is named like authority",
    ),
    case(
        "22-arg-named-column.json",
        "$.capabilities[2].args.column",
        "argument `column` is named like authority",
    ),
    case(
        "23-unsafe-identifier-target-table.json",
        "$.capabilities[0].target.table",
        "is not a safe SQL identifier",
    ),
    case(
        "24-unsafe-identifier-visible-column.json",
        "$.capabilities[0].visible_columns[2]",
        "`customer id` is not a safe SQL identifier",
    ),
    case(
        "25-missing-tenant-key.json",
        "$.capabilities[0].target.tenant_key",
        "missing `tenant_key`",
    ),
    case(
        "26-proposal-without-allowed-columns.json",
        "$.capabilities[1].allowed_columns",
        "missing required field `allowed_columns`",
    ),
    case(
        "27-proposal-without-patch.json",
        "$.capabilities[1].patch",
        "missing required field `patch`",
    ),
    case(
        "28-proposal-without-conflict-guard.json",
        "$.capabilities[1].conflict_guard",
        "missing required field `conflict_guard`",
    ),
    case(
        "29-patch-column-not-allowed.json",
        "$.capabilities[1].patch.status",
        "patch column `status` is not in `allowed_columns`",
    ),
    case(
        "30-patch-from-unknown-arg.json",
        "$.capabilities[1].patch.waiver_reason.from_arg",
        "`note` is not one of this capability's args",
    ),
    case(
        "31-lookup-unknown-arg.json",
        "$.capabilities[0].lookup.id_from_arg",
        "`id` is not one of this capability's args",
    ),
    case(
        "32-lookup-arg-not-required.json",
        "$.capabilities[0].lookup.id_from_arg",
        "the lookup argument `invoice_id` must be required",
    ),
    case(
        "33-arg-type-unknown.json",
        "$.capabilities[1].args.reason.type",
        "unknown argument type `text`",
    ),
    case(
        "34-max-length-on-number-arg.json",
        "$.capabilities[1].args.late_fee_cents.max_length",
        "`max_length` applies only to string arguments",
    ),
    case(
        "35-minimum-greater-than-maximum.json",
        "$.capabilities[1].args.late_fee_cents.minimum",
        "minimum 10000 is greater than maximum 0",
    ),
    case(
        "36-enum-value-wrong-type.json",
        "$.capabilities[2].args.status.enum[1]",
        "enum value 3 does not fit the argument's type string",
    ),
    case(
        "37-fixed-patch-outside-numeric-bounds.json",
        "$.capabilities[1].numeric_bounds.late_fee_cents",
        "the fixed patch value 25000 for `late_fee_cents` is outside these bounds",
    ),
    case(
        "38-allowed-columns-primary-key.json",
        "$.capabilities[1].allowed_columns[2]",
        "`id` is the primary key",
    ),
    case(
        "39-allowed-columns-tenant-key.json",
        "$.capabilities[1].allowed_columns[2]",
        "`tenant_id` is the tenant key",
    ),
    case(
        "40-allowed-columns-conflict-guard-column.json",
        "$.capabilities[1].allowed_columns[2]",
        "`updated_at` is the conflict-guard column",
    ),
    case(
        "41-transition-guard-on-unpatched-column.json",
        "$.capabilities[1].transition_guards.status",
        "which the patch never sets",
    ),
    case(
        "42-approval-mode-not-human.json",
        "$.capabilities[1].approval.mode",
        "approval mode `auto` is not supported",
    ),
    case(
        "43-read-capability-with-patch.json",
        "$.capabilities[0].patch",
        "`patch` applies only to proposal capabilities",
    ),
    case(
        "44-proposal-in-read-only-mode.json",
        "$.capabilities[1].kind",
        "mode `read_only` serves no proposal capabilities",
    ),
    case(
        "45-sql-update-source-without-write-url.json",
        "$.capabilities[1].source",
        "source `app_postgres` has no `write_url_env`",
    ),
    case(
        "46-http-handler-without-url-env.json",
        "$.executors.billing_webhook.url_env",
        "missing required field `url_env`",
    ),
    case(
        "47-environment-context-without-tenant-id-env.json",
        "$.trusted_context.values.tenant_id_env",
        "missing required field `tenant_id_env`",
    ),
    case(
        "48-unknown-field-in-airlock-section.json",
        "$.airlock.socket_directory",
        "unknown field `socket_directory`",
    ),
    case(
        "49-proposer-with-user-and-uid.json",
        "$.airlock.proposers[0]",
        "name exactly one of `user`",
    ),
    case(
        "50-empty-capabilities.json",
        "$.capabilities",
        "at least one capability is required",
    ),
    case(
        "51-missing-trusted-context.json",
        "$.trusted_context",
        "missing required field `trusted_context`",
    ),
    case(
        "52-unsupported-context-provider.json",
        "$.contexts.local_operator.provider",
        "trusted-context provider `http_claims` is not supported",
    ),
    case(
        "53-environment-context-with-literal-tenant.json",
        "$.trusted_context.values.tenant_id",
        "the environment provider reads `tenant_id_env`",
    ),
    case(
        "54-single-tenant-dev-without-ack.json",
        "$.capabilities[0].single_tenant_dev_ack",
        "must be acknowledged",
    ),
    case(
        "55-tenant-key-is-primary-key.json",
        "$.capabilities[0].target.tenant_key",
        "the tenant key cannot be the primary key",
    ),
    case(
        "56-conflict-guard-without-column-or-ack.json",
        "$.capabilities[1].conflict_guard",
        "a conflict guard needs a `column`",
    ),
    case(
        "57-max-rows-over-limit.json",
        "$.capabilities[0].max_rows",
        "expected a whole number from 1 to 100, found 500",
    ),
    case(
        "58-unknown-evidence-mode.json",
        "$.capabilities[0].evidence",
        "unknown evidence mode `none`",
    ),
    case(
        "59-boolean-lookup-arg.json",
        "$.capabilities[0].lookup.id_from_arg",
        "a boolean cannot identify a row",
    ),
    case(
        "60-patch-binding-fixed-and-from-arg.json",
        "$.capabilities[1].patch.waiver_reason",
        "exactly one of `fixed` or `from_arg`",
    ),
    case(
        "61-fixed-value-not-an-allowed-transition.json",
        "$.capabilities[2].transition_guards.status",
        "the fixed patch value `shipped` is not a target of any allowed transition",
    ),
    case(
        "62-numeric-bounds-on-string-arg.json",
        "$.capabilities[1].numeric_bounds.waiver_reason",
        "takes argument `reason` of type string",
    ),
    case(
        "63-unknown-executor-type.json",
        "$.executors.billing_webhook.type",
        "unknown executor type `lambda`",
    ),
    case(
        "64-sql-update-executor-with-url-env.json",
        "$.executors.writer.url_env",
        "`url_env` does not apply to a sql_update executor",
    ),
    case(
        "65-http-handler-unsupported-method.json",
        "$.executors.billing_webhook.method",
        "unsupported method `GET`",
    ),
    case(
        "66-statement-timeout-zero.json",
        "$.sources.app_postgres.statement_timeout_ms",
        "expected a whole number from 1 to 600000, found 0",
    ),
    case(
        "67-inline-token-in-description.json",
        "$.capabilities[0].description",
        "inline secret material (an API token)",
    ),
    case(
        "68-capability-alias-collision.json",
        "$.capabilities[1].name",
        "the same OpenAI-safe alias `billing__inspect__invoice`",
    ),
    case(
        "69-invalid-required-role.json",
        "$.capabilities[1].approval.required_role",
        "`billing lead` is not a valid role name",
    ),
    case(
        "70-proposal-ttl-too-short.json",
        "$.airlock.proposal_ttl_seconds",
        "expected a whole number from 1 to 31622400, found 0",
    ),
    case(
        "71-approver-without-roles.json",
        "$.airlock.approvers[0].roles",
        "missing required field `roles`",
    ),
    case(
        "72-result-format-unsupported.json",
        "$.result_format",
        "unsupported result format 3",
    ),
    case(
        "73-duplicate-visible-column.json",
        "$.capabilities[0].visible_columns[7]",
        "column `status` is listed twice",
    ),
    case(
        "74-unsafe-arg-name.json",
        "$.capabilities[1].args[\"reason-text\"]",
        "`reason-text` is not a valid argument name",
    ),
    case(
        "75-empty-args.json",
        "$.capabilities[0].args",
        "at least one argument is required",
    ),
    case("76-duplicate-key.json", "$", "duplicate key `mode`"),
    case(
        "77-authority-word-in-arg-name.json",
        "$.capabilities[0].args.sort_column",
        "named like authority",
    ),
    case(
        "78-camel-case-approve-name.json",
        "$.capabilities[1].name",
        "may not contain `approve`",
    ),
    case(
        "79-transition-guard-from-unpatched-column.json",
        "$.capabilities[2].transition_guards.status.from_column",
        "`from_column` `customer_id` is neither patched by this capability nor its version column",
    ),
];

fn fixtures_dir() -> PathBuf {
    workspace_root().join("tests/fixtures/invalid-configs")
}

fn fixture(file: &str) -> String {
    let path = fixtures_dir().join(file);
    assert!(path.is_file(), "fixture {} is missing", path.display());
    path.to_str().expect("fixture path is UTF-8").to_owned()
}

/// Run `config validate --json` on one fixture and return every way it
/// fails its case (empty when it passes).
fn check(case: &Case) -> Vec<String> {
    let path = fixture(case.file);
    let out = airlock(&["config", "validate", "--config", &path, "--json"]);
    let v = stdout_json(&out);
    let mut problems = Vec::new();
    let mut fail = |what: String| problems.push(format!("{}: {what}", case.file));

    if out.status.code() != Some(1) {
        fail(format!("exit code {:?}, expected 1", out.status.code()));
    }
    if v["ok"] != Value::Bool(false) {
        fail(format!("`ok` is {}, expected false", v["ok"]));
    }
    let errors = v["errors"].as_array().cloned().unwrap_or_default();
    for e in &errors {
        if e["severity"] != "error" {
            fail(format!("entry of `errors` has severity {}", e["severity"]));
        }
        if e["message"].as_str().is_none_or(str::is_empty) {
            fail(format!("error at {} has no message", e["path"]));
        }
    }
    let listed: Vec<String> = errors
        .iter()
        .map(|e| format!("{} | {}", e["path"], e["message"]))
        .collect();
    match errors.iter().find(|e| e["path"] == case.path) {
        None => fail(format!(
            "no error at exactly `{}`; errors were: {listed:#?}",
            case.path
        )),
        Some(e) => {
            let message = e["message"].as_str().unwrap_or_default();
            if !message.contains(case.message) {
                fail(format!(
                    "the error at `{}` says {message:?}, which does not contain {:?}",
                    case.path, case.message
                ));
            }
            if e["fix"].as_str().is_none_or(|f| f.trim().is_empty()) {
                fail(format!("the error at `{}` has an empty fix", case.path));
            }
        }
    }
    if errors.len() != 1 {
        fail(format!(
            "expected exactly one error (one rule per fixture), found {}: {listed:#?}",
            errors.len()
        ));
    }
    problems
}

#[test]
fn each_invalid_config_names_its_exact_path_message_and_fix() {
    let problems: Vec<String> = CASES.iter().flat_map(check).collect();
    assert!(
        problems.is_empty(),
        "{} of {} invalid-config fixtures misbehaved:\n{}",
        problems.len(),
        CASES.len(),
        problems.join("\n")
    );
}

#[test]
fn every_fixture_is_in_the_table_and_every_table_entry_has_a_fixture() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(fixtures_dir())
        .expect("read the invalid-configs fixture directory")
        .map(|e| e.expect("directory entry").file_name())
        .map(|n| n.into_string().expect("fixture names are UTF-8"))
        .filter(|n| n.ends_with(".json"))
        .collect();
    let in_table: BTreeSet<String> = CASES.iter().map(|c| c.file.to_owned()).collect();
    assert_eq!(
        in_table.len(),
        CASES.len(),
        "a fixture is listed twice in CASES"
    );
    let untested: Vec<&String> = on_disk.difference(&in_table).collect();
    assert!(
        untested.is_empty(),
        "fixtures with no entry in CASES (add one): {untested:?}"
    );
    let missing: Vec<&String> = in_table.difference(&on_disk).collect();
    assert!(
        missing.is_empty(),
        "CASES names missing fixtures: {missing:?}"
    );
    assert!(
        on_disk.len() >= 30,
        "expected at least 30 invalid-config fixtures, found {}",
        on_disk.len()
    );
    // Names are `NN-what-is-broken.json`, numbered without gaps or repeats.
    for (i, name) in in_table.iter().enumerate() {
        let expected = format!("{:02}-", i + 1);
        assert!(
            name.starts_with(&expected),
            "fixture {name} should start with {expected} (numbered 01, 02, … without gaps)"
        );
    }
}

#[test]
fn human_output_names_the_path_and_the_fix() {
    let path = fixture("23-unsafe-identifier-target-table.json");
    let out = airlock(&["config", "validate", "--config", &path]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "stdout:\n{stdout}");
    assert!(
        serde_json::from_str::<Value>(&stdout).is_err(),
        "without --json the output is for people, not JSON:\n{stdout}"
    );
    assert!(stdout.contains("INVALID"), "{stdout}");
    assert!(
        stdout.contains("$.capabilities[0].target.table"),
        "the output must name the JSON path:\n{stdout}"
    );
    assert!(
        stdout.contains("is not a safe SQL identifier"),
        "the output must say what is wrong:\n{stdout}"
    );
    assert!(
        stdout.contains("fix:"),
        "the output must say how to fix it:\n{stdout}"
    );
}
