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

#[cfg(test)]
mod tests {
    use super::*;

    fn diag(severity: Severity, path: &str, message: &str, fix: &str) -> Diagnostic {
        Diagnostic {
            severity,
            path: path.to_owned(),
            message: message.to_owned(),
            fix: fix.to_owned(),
        }
    }

    #[test]
    fn an_empty_report_has_no_errors() {
        let r = Report::default();
        assert!(r.diagnostics.is_empty());
        assert!(!r.has_errors());
        assert_eq!(r.errors().count(), 0);
        assert_eq!(r.warnings().count(), 0);
    }

    #[test]
    fn errors_and_warnings_are_kept_in_order_and_told_apart() {
        let mut r = Report::default();
        r.warning("$.a", "w1", "f1");
        assert!(!r.has_errors());
        r.error("$.b", "e1", "f2");
        r.error("$.c", String::from("e2"), String::from("f3"));
        r.warning("$.d", "w2", "f4");
        assert!(r.has_errors());
        assert_eq!(
            r.diagnostics,
            vec![
                diag(Severity::Warning, "$.a", "w1", "f1"),
                diag(Severity::Error, "$.b", "e1", "f2"),
                diag(Severity::Error, "$.c", "e2", "f3"),
                diag(Severity::Warning, "$.d", "w2", "f4"),
            ]
        );
        let errors: Vec<&Diagnostic> = r.errors().collect();
        assert_eq!(
            errors,
            vec![
                &diag(Severity::Error, "$.b", "e1", "f2"),
                &diag(Severity::Error, "$.c", "e2", "f3"),
            ]
        );
        let warnings: Vec<&Diagnostic> = r.warnings().collect();
        assert_eq!(
            warnings,
            vec![
                &diag(Severity::Warning, "$.a", "w1", "f1"),
                &diag(Severity::Warning, "$.d", "w2", "f4"),
            ]
        );
    }

    #[test]
    fn one_finding_per_path_and_severity_the_first_wins() {
        let mut r = Report::default();
        r.error("$.x", "first", "fix first");
        r.error("$.x", "second", "fix second");
        r.warning("$.x", "a warning", "fix w");
        r.warning("$.x", "another warning", "fix w2");
        r.error("$.y", "other path", "fix y");
        r.warning("$.y", "other path warning", "fix wy");
        assert_eq!(
            r.diagnostics,
            vec![
                diag(Severity::Error, "$.x", "first", "fix first"),
                diag(Severity::Warning, "$.x", "a warning", "fix w"),
                diag(Severity::Error, "$.y", "other path", "fix y"),
                diag(Severity::Warning, "$.y", "other path warning", "fix wy"),
            ]
        );
    }

    #[test]
    fn a_report_serializes_with_lower_case_severities() {
        let mut r = Report::default();
        r.error("$.a", "m", "f");
        r.warning("$.b", "n", "g");
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"diagnostics":[{"severity":"error","path":"$.a","message":"m","fix":"f"},{"severity":"warning","path":"$.b","message":"n","fix":"g"}]}"#
        );
    }

    #[test]
    fn paths_quote_keys_that_are_not_plain_identifiers() {
        let cases = [
            ("$", "sources", "$.sources"),
            ("$.sources", "app_db", "$.sources.app_db"),
            ("$", "_x9", "$._x9"),
            ("$", "my-db", r#"$["my-db"]"#),
            ("$", "9lives", r#"$["9lives"]"#),
            ("$", "", r#"$[""]"#),
            ("$", "a b", r#"$["a b"]"#),
            ("$", "a\"b", r#"$["a\"b"]"#),
            ("$", "support.inspect", r#"$["support.inspect"]"#),
        ];
        for (path, key, want) in cases {
            assert_eq!(join_key(path, key), want, "{key:?}");
        }
        assert_eq!(join_index("$", 0), "$[0]");
        assert_eq!(join_index("$.capabilities", 12), "$.capabilities[12]");
    }
}
