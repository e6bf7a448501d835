//! Every rule of the config loader, one broken config each, checked against
//! the loader itself (no CLI in between).
//!
//! `tests/fixtures/invalid-configs/` holds small configs with exactly one
//! thing broken; `expected.json` in the same directory is the table of the
//! exact JSON path and a message fragment each must produce. The end-to-end
//! suite `tests/suites/invalid_configs.rs` reads the same table and checks the
//! same through `airlock config validate --json`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use airlock_policy::load_config_str;

#[path = "../../tests/support/invalid_config_cases.rs"]
mod invalid_config_cases;
use invalid_config_cases::{Case, Reported, check_errors, fixtures_on_disk};

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/invalid-configs")
}

fn cases() -> Vec<Case> {
    invalid_config_cases::cases(&fixtures_dir())
}

/// Every way one fixture fails its case (empty when it passes).
fn check(case: &Case) -> Vec<String> {
    let text = std::fs::read_to_string(fixtures_dir().join(&case.file))
        .unwrap_or_else(|e| panic!("read {}: {e}", case.file));
    let loaded = load_config_str(&text);
    let errors: Vec<Reported> = loaded
        .report
        .errors()
        .map(|e| Reported {
            path: e.path.clone(),
            message: e.message.clone(),
            fix: e.fix.clone(),
        })
        .collect();
    let mut problems = check_errors(case, &errors);
    if loaded.config.is_some() {
        problems.push(format!("{}: loaded a config despite the error", case.file));
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
    let on_disk = fixtures_on_disk(&fixtures_dir());
    let cases = cases();
    let in_table: std::collections::BTreeSet<String> =
        cases.iter().map(|c| c.file.clone()).collect();
    assert_eq!(in_table.len(), cases.len(), "a fixture is listed twice");
    assert_eq!(on_disk, in_table);
    assert_eq!(on_disk.len(), 83);
}
