//! Every rule of the config loader, one broken config each, checked against
//! the loader itself (no CLI in between).
//!
//! `tests/fixtures/invalid-configs/` holds small configs with exactly one
//! thing broken; `expected.json` in the same directory is the table of the
//! exact JSON path and a message fragment each must produce. The end-to-end
//! suite `tests/suites/invalid_configs.rs` reads the same table and checks the
//! same through `airlock config validate --json`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use airlock_policy::load_config_str;
use serde_json::Value;

/// The name of the table inside the fixture directory (not a fixture).
const TABLE: &str = "expected.json";

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/invalid-configs")
}

struct Case {
    file: String,
    path: String,
    message: String,
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(fixtures_dir().join(TABLE)).expect("read expected.json");
    let table: Vec<Value> = serde_json::from_str(&text).expect("expected.json is JSON");
    table
        .iter()
        .map(|c| {
            let field = |k: &str| {
                c[k].as_str()
                    .unwrap_or_else(|| panic!("`{k}` in {c}"))
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

/// Every way one fixture fails its case (empty when it passes).
fn check(case: &Case) -> Vec<String> {
    let text = std::fs::read_to_string(fixtures_dir().join(&case.file))
        .unwrap_or_else(|e| panic!("read {}: {e}", case.file));
    let loaded = load_config_str(&text);
    let mut problems = Vec::new();
    let mut fail = |what: String| problems.push(format!("{}: {what}", case.file));
    if loaded.config.is_some() {
        fail("loaded a config despite the error".to_owned());
    }
    let errors: Vec<_> = loaded.report.errors().collect();
    let listed: Vec<String> = errors
        .iter()
        .map(|e| format!("{} | {}", e.path, e.message))
        .collect();
    match errors.iter().find(|e| e.path == case.path) {
        None => fail(format!(
            "no error at exactly `{}`; errors were: {listed:#?}",
            case.path
        )),
        Some(e) => {
            if !e.message.contains(&case.message) {
                fail(format!(
                    "the error at `{}` says {:?}, which does not contain {:?}",
                    case.path, e.message, case.message
                ));
            }
            if e.fix.trim().is_empty() {
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
fn each_invalid_config_names_its_exact_path_and_message() {
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
fn every_fixture_is_in_the_table() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(fixtures_dir())
        .expect("read the invalid-configs fixture directory")
        .map(|e| e.expect("directory entry").file_name())
        .map(|n| n.into_string().expect("fixture names are UTF-8"))
        .filter(|n| n.ends_with(".json") && n != TABLE)
        .collect();
    let cases = cases();
    let in_table: BTreeSet<String> = cases.iter().map(|c| c.file.clone()).collect();
    assert_eq!(in_table.len(), cases.len(), "a fixture is listed twice");
    assert_eq!(on_disk, in_table);
    assert_eq!(on_disk.len(), 83);
}
