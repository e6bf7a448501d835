//! Every rule of the config loader, one broken config each.
//!
//! Each fixture in `tests/fixtures/invalid-configs/` is a small valid config
//! with exactly one thing broken. For each, `airlock config validate --json`
//! must exit 1, report `ok: false`, and name the exact JSON path of the
//! problem with a message saying what is wrong and a fix saying what to write
//! instead. Every fixture in the directory must be listed in the table
//! `expected.json` there, so a new fixture cannot go untested.

use std::collections::BTreeSet;
use std::path::PathBuf;

use airlock_tests::{airlock, stdout_json, workspace_root};
use serde_json::Value;

/// The table of expected errors, inside the fixture directory (not a
/// fixture itself). `policy/tests/invalid_configs.rs` checks the same table
/// against the loader directly.
const TABLE: &str = "expected.json";

/// One fixture and the error it must produce.
struct Case {
    /// File name inside `tests/fixtures/invalid-configs/`.
    file: String,
    /// The exact JSON path of the expected error.
    path: String,
    /// A fragment the error's message must contain.
    message: String,
}

/// Every case, read from `tests/fixtures/invalid-configs/expected.json`.
fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(fixtures_dir().join(TABLE)).expect("read expected.json");
    let table: Vec<Value> = serde_json::from_str(&text).expect("expected.json is JSON");
    table
        .iter()
        .map(|c| {
            let field = |k: &str| {
                c[k].as_str()
                    .unwrap_or_else(|| panic!("`{k}` missing in {c}"))
                    .to_owned()
            };
            Case {
                file: field("file"),
                path: field("path"),
                message: field("message"),
            }
        })
        .collect()
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
            if !message.contains(&case.message) {
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
    let cases = cases();
    let problems: Vec<String> = cases.iter().flat_map(check).collect();
    assert!(
        problems.is_empty(),
        "{} of {} invalid-config fixtures misbehaved:\n{}",
        problems.len(),
        cases.len(),
        problems.join("\n")
    );
}

#[test]
fn every_fixture_is_in_the_table_and_every_table_entry_has_a_fixture() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(fixtures_dir())
        .expect("read the invalid-configs fixture directory")
        .map(|e| e.expect("directory entry").file_name())
        .map(|n| n.into_string().expect("fixture names are UTF-8"))
        .filter(|n| n.ends_with(".json") && n != TABLE)
        .collect();
    let cases = cases();
    let in_table: BTreeSet<String> = cases.iter().map(|c| c.file.clone()).collect();
    assert_eq!(
        in_table.len(),
        cases.len(),
        "a fixture is listed twice in expected.json"
    );
    let untested: Vec<&String> = on_disk.difference(&in_table).collect();
    assert!(
        untested.is_empty(),
        "fixtures with no entry in expected.json (add one): {untested:?}"
    );
    let missing: Vec<&String> = in_table.difference(&on_disk).collect();
    assert!(
        missing.is_empty(),
        "expected.json names missing fixtures: {missing:?}"
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
