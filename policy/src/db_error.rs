//! What a database error says about the setup.
//!
//! A read or write that names a table or column the database does not have,
//! or that the credential may not use, fails the same way on every call:
//! it is a configuration problem for the operator, not a transient one the
//! model could wait out. The proposer, the executor and `airlock doctor`
//! classify the engine's error code here (never its text, except SQLite's,
//! which has no finer code) and then word their own message: the engine's
//! text is never passed on to the model or into the ledger.

use crate::config::Engine;

/// The tool error code for a [`Misconfiguration`] (not retryable).
pub const SOURCE_MISCONFIGURED: &str = "source_misconfigured";

/// What the model is told. Names no table, column or engine detail.
pub const SOURCE_MISCONFIGURED_MESSAGE: &str = "This tool is misconfigured; tell the operator (the database is missing a table or column this tool uses, or the credential may not use it; `airlock doctor` names it). Retrying will not help.";

/// A database error that no retry can fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misconfiguration {
    /// The table (or its schema) does not exist.
    MissingTable,
    /// A column does not exist.
    MissingColumn,
    /// The credential lacks a privilege on the table or a column.
    PermissionDenied,
}

impl Misconfiguration {
    /// A stable name, for logs and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Misconfiguration::MissingTable => "missing_table",
            Misconfiguration::MissingColumn => "missing_column",
            Misconfiguration::PermissionDenied => "permission_denied",
        }
    }

    /// A short phrase for an operator's message.
    pub fn describe(self) -> &'static str {
        match self {
            Misconfiguration::MissingTable => "the table does not exist",
            Misconfiguration::MissingColumn => "a column does not exist",
            Misconfiguration::PermissionDenied => "permission denied",
        }
    }
}

/// Classify a database error by its engine's code: the SQLSTATE for
/// PostgreSQL (`42P01`, `3F000`, `42703`, `42501`), the error number for
/// MySQL/MariaDB (1146, 1054, 1142, 1143, 1044), and for SQLite (whose
/// code is the generic `SQLITE_ERROR`) the start of its message
/// (`no such table`, `no such column`). `None`: some other error.
pub fn classify(
    engine: Engine,
    sqlstate: Option<&str>,
    mysql_number: Option<u16>,
    message: &str,
) -> Option<Misconfiguration> {
    match engine {
        Engine::Postgres => match sqlstate? {
            "42P01" | "3F000" => Some(Misconfiguration::MissingTable),
            "42703" => Some(Misconfiguration::MissingColumn),
            "42501" => Some(Misconfiguration::PermissionDenied),
            _ => None,
        },
        Engine::Mysql => match mysql_number? {
            1146 => Some(Misconfiguration::MissingTable),
            1054 => Some(Misconfiguration::MissingColumn),
            1142 | 1143 | 1044 => Some(Misconfiguration::PermissionDenied),
            _ => None,
        },
        Engine::Sqlite => {
            if message.starts_with("no such table") {
                Some(Misconfiguration::MissingTable)
            } else if message.starts_with("no such column") {
                Some(Misconfiguration::MissingColumn)
            } else {
                None
            }
        }
    }
}
