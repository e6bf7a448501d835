//! Validation findings: errors and warnings, each naming a JSON path and
//! saying what to write instead.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Error,
    Warning,
}

/// One finding about a config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// JSON path of the offending value, e.g. `$.capabilities[2].target.table`.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// What to write instead.
    pub fix: String,
}

/// All findings about one config, errors first in document order.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub diagnostics: Vec<Diagnostic>,
}

impl Report {
    pub fn error(
        &mut self,
        path: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.push(Severity::Error, path.into(), message.into(), fix.into());
    }

    pub fn warning(
        &mut self,
        path: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.push(Severity::Warning, path.into(), message.into(), fix.into());
    }

    fn push(&mut self, severity: Severity, path: String, message: String, fix: String) {
        // One finding per path and severity: the first is the most specific.
        if self
            .diagnostics
            .iter()
            .any(|d| d.path == path && d.severity == severity)
        {
            return;
        }
        self.diagnostics.push(Diagnostic {
            severity,
            path,
            message,
            fix,
        });
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Warning)
    }

    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }
}

/// Append an object key to a JSON path, bracket-quoting keys that are not
/// plain identifiers (`$.sources["my-db"]`).
pub fn join_key(path: &str, key: &str) -> String {
    if crate::identifier::is_safe_identifier(key) {
        format!("{path}.{key}")
    } else {
        format!("{path}[{}]", serde_json::Value::String(key.to_owned()))
    }
}

/// Append an array index to a JSON path.
pub fn join_index(path: &str, index: usize) -> String {
    format!("{path}[{index}]")
}
