//! The classification of database errors into setup problems
//! (`policy/src/db_error.rs`), pinned code by code and engine by engine.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use airlock_policy::config::Engine;
use airlock_policy::db_error::{
    Misconfiguration, SOURCE_MISCONFIGURED, SOURCE_MISCONFIGURED_MESSAGE, classify,
};

use Misconfiguration::{MissingColumn, MissingTable, PermissionDenied};

#[test]
fn postgres_sqlstates() {
    let pg = |code: &str| classify(Engine::Postgres, Some(code), None, "no such table: x");
    assert_eq!(pg("42P01"), Some(MissingTable));
    assert_eq!(pg("3F000"), Some(MissingTable));
    assert_eq!(pg("42703"), Some(MissingColumn));
    assert_eq!(pg("42501"), Some(PermissionDenied));
    for other in ["57014", "25006", "42883", "23505", "", "42P0", "42P011"] {
        assert_eq!(pg(other), None, "{other}");
    }
    // Postgres is classified by SQLSTATE only: no code, no category,
    // whatever the message or a MySQL number say.
    assert_eq!(
        classify(Engine::Postgres, None, Some(1146), "no such table: x"),
        None
    );
}

#[test]
fn mysql_error_numbers() {
    let my = |n: u16| classify(Engine::Mysql, Some("42S02"), Some(n), "no such column: x");
    assert_eq!(my(1146), Some(MissingTable));
    assert_eq!(my(1054), Some(MissingColumn));
    assert_eq!(my(1142), Some(PermissionDenied));
    assert_eq!(my(1143), Some(PermissionDenied));
    assert_eq!(my(1044), Some(PermissionDenied));
    for other in [1045, 1049, 1064, 1792, 1969, 3024, 0] {
        assert_eq!(my(other), None, "{other}");
    }
    // The number decides, not the SQLSTATE or the message.
    assert_eq!(
        classify(Engine::Mysql, Some("42P01"), None, "no such table: x"),
        None
    );
}

#[test]
fn sqlite_messages() {
    let lite = |m: &str| classify(Engine::Sqlite, Some("1"), None, m);
    assert_eq!(lite("no such table: main.invoices"), Some(MissingTable));
    assert_eq!(lite("no such column: waiver_reason"), Some(MissingColumn));
    for other in [
        "attempt to write a readonly database",
        "database is locked",
        "syntax error: no such table",
        "",
    ] {
        assert_eq!(lite(other), None, "{other}");
    }
    // Codes alone say nothing on SQLite.
    assert_eq!(
        classify(Engine::Sqlite, Some("42P01"), Some(1146), "near x"),
        None
    );
}

#[test]
fn categories_have_names_and_phrases() {
    let table = [
        (MissingTable, "missing_table", "the table does not exist"),
        (MissingColumn, "missing_column", "a column does not exist"),
        (PermissionDenied, "permission_denied", "permission denied"),
    ];
    for (m, name, phrase) in table {
        assert_eq!(m.as_str(), name);
        assert_eq!(m.describe(), phrase);
    }
}

#[test]
fn the_model_is_told_to_tell_the_operator() {
    assert_eq!(SOURCE_MISCONFIGURED, "source_misconfigured");
    assert!(
        SOURCE_MISCONFIGURED_MESSAGE.starts_with("This tool is misconfigured; tell the operator")
    );
    assert!(SOURCE_MISCONFIGURED_MESSAGE.ends_with("Retrying will not help."));
    assert!(!SOURCE_MISCONFIGURED_MESSAGE.contains("try again"));
}
