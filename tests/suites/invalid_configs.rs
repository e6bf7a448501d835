//! Every rule of the config loader, one broken config each.
//!
//! Each fixture in `tests/fixtures/invalid-configs/` is a small valid config
//! with exactly one thing broken. For each, `airlock config validate --json`
//! must exit 1, report `ok: false`, and name the exact JSON path of the
//! problem with a message saying what is wrong and a fix saying what to write
//! instead. Every fixture in the directory must be listed in the table
//! `expected.json` there, so a new fixture cannot go untested.

use std::path::PathBuf;

use airlock_tests::{airlock, stdout_json, workspace_root};
use serde_json::Value;

// The table and the error-list rule, shared with `policy/tests/invalid_configs.rs`.
#[path = "../support/invalid_config_cases.rs"]
mod invalid_config_cases;
use invalid_config_cases::{
    Case, Reported, assert_every_case, assert_table_covers_fixtures, check_errors,
};

fn cases() -> Vec<Case> {
    invalid_config_cases::cases(&fixtures_dir())
}

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
    let path = fixture(&case.file);
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
    let reported: Vec<Reported> = errors
        .iter()
        .map(|e| Reported {
            path: e["path"].as_str().unwrap_or_default().to_owned(),
            message: e["message"].as_str().unwrap_or_default().to_owned(),
            fix: e["fix"].as_str().unwrap_or_default().to_owned(),
        })
        .collect();
    problems.extend(check_errors(case, &reported));
    problems
}

#[test]
fn each_invalid_config_names_its_exact_path_message_and_fix() {
    assert_every_case(&cases(), check);
}

#[test]
fn every_fixture_is_in_the_table_and_every_table_entry_has_a_fixture() {
    let count = assert_table_covers_fixtures(&fixtures_dir());
    assert!(
        count >= 30,
        "expected at least 30 invalid-config fixtures, found {count}"
    );
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
