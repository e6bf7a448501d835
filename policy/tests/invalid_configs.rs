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
use invalid_config_cases::{
    Case, Reported, assert_every_case, assert_table_covers_fixtures, check_errors,
};

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
    assert_every_case(&cases(), check);
}

#[test]
fn every_fixture_is_in_the_table() {
    assert_eq!(assert_table_covers_fixtures(&fixtures_dir()), 88);
}
