//! The table of broken configs and the error each must produce, shared by
//! the loader's own test (`policy/tests/invalid_configs.rs`) and the CLI
//! suite (`tests/suites/invalid_configs.rs`), which include this file with
//! `#[path]`: one reading of `expected.json`, one rule for what an error list
//! must look like.

use std::collections::BTreeSet;
use std::path::Path;

/// The table's file name inside the fixture directory (not a fixture).
pub const TABLE: &str = "expected.json";

/// One fixture and the error it must produce.
pub struct Case {
    /// File name inside `tests/fixtures/invalid-configs/`.
    pub file: String,
    /// The exact JSON path of the expected error.
    pub path: String,
    /// A fragment the error's message must contain.
    pub message: String,
}

/// One reported error, however the caller got it.
pub struct Reported {
    pub path: String,
    pub message: String,
    pub fix: String,
}

/// Every case of `dir/expected.json`.
pub fn cases(dir: &Path) -> Vec<Case> {
    let text = std::fs::read_to_string(dir.join(TABLE)).expect("read expected.json");
    let table: Vec<serde_json::Value> = serde_json::from_str(&text).expect("expected.json is JSON");
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

/// Every case passes `check` (which returns the ways one case fails).
pub fn assert_every_case(cases: &[Case], check: impl Fn(&Case) -> Vec<String>) {
    let problems: Vec<String> = cases.iter().flat_map(check).collect();
    assert!(
        problems.is_empty(),
        "{} of {} invalid-config fixtures misbehaved:\n{}",
        problems.len(),
        cases.len(),
        problems.join("\n")
    );
}

/// The table and the directory name the same fixtures, each once, numbered
/// `NN-what-is-broken.json` without gaps or repeats. Returns how many.
pub fn assert_table_covers_fixtures(dir: &Path) -> usize {
    let on_disk = fixtures_on_disk(dir);
    let cases = cases(dir);
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
    for (i, name) in in_table.iter().enumerate() {
        let expected = format!("{:02}-", i + 1);
        assert!(
            name.starts_with(&expected),
            "fixture {name} should start with {expected} (numbered 01, 02, … without gaps)"
        );
    }
    on_disk.len()
}

/// The fixture files in `dir` (every `.json` but the table).
fn fixtures_on_disk(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .expect("read the invalid-configs fixture directory")
        .map(|e| e.expect("directory entry").file_name())
        .map(|n| n.into_string().expect("fixture names are UTF-8"))
        .filter(|n| n.ends_with(".json") && n != TABLE)
        .collect()
}

/// Every way `errors` fails `case` (empty when it passes): exactly one
/// error, at exactly the case's path, whose message holds the fragment and
/// whose fix is not empty.
pub fn check_errors(case: &Case, errors: &[Reported]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut fail = |what: String| problems.push(format!("{}: {what}", case.file));
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
