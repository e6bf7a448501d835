//! Exit codes and output helpers shared by the CLI commands.

use std::io::Write;
use std::process::ExitCode;

use serde_json::Value;

/// `println!` for a person: control and bidi characters in what it prints
/// are escaped ([`escape_lines`]), and a closed stdout is ignored instead of
/// panicking. Values that may hold a newline of their own go through
/// [`escape`] first, so they cannot forge a line. (Used from the modules
/// beside this one, which reach it as `super::output`.)
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let text = format!($($arg)*);
        let _ = writeln!(
            std::io::stdout().lock(),
            "{}",
            super::output::escape_lines(&text)
        );
    }};
}
pub(crate) use say;

/// Whether a terminal could be steered by this character: C0 and C1
/// controls (ESC, CR, BEL, …), DEL, the bidi embeddings, overrides and
/// isolates, the directional marks, and the line and paragraph separators.
pub fn is_steering(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
                | '\u{2028}'
                | '\u{2029}'
        )
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
    }
}

/// One displayed value with every steering character written as a visible
/// escape (`\n`, `\u{1b}`, `\u{202e}`), so it stays on its line and shows
/// what it really holds. The single place human output escapes a value;
/// `--json` output carries the exact string instead.
pub fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    escape_where(s, is_steering)
}

/// A whole block of human output: like [`escape`], but the line breaks and
/// tabs the CLI itself writes are kept.
pub fn escape_lines(s: &str) -> std::borrow::Cow<'_, str> {
    escape_where(s, |c| c != '\n' && c != '\t' && is_steering(c))
}

/// `s` with every character `escaped` selects written as a visible escape.
fn escape_where(s: &str, escaped: impl Fn(char) -> bool) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(&escaped) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if escaped(c) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// The documented exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    Failure = 1,
    Usage = 2,
    Refused = 3,
    Conflict = 4,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

/// Print a JSON document on stdout (pretty, newline-terminated).
pub fn print_json(value: &Value) {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".to_owned());
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
}

/// Print an error for a person on stderr, or as `{"ok": false, "error": …}` JSON on stdout.
pub fn fail(json: bool, code: &str, message: &str, exit: Exit) -> Exit {
    if json {
        print_json(&serde_json::json!({"ok": false, "error": {"code": code, "message": message}}));
    } else {
        eprintln!("airlock: {}", escape_lines(message));
    }
    exit
}

/// Quote a word for a POSIX shell when it needs it (commands printed for a
/// person to paste).
pub fn shell_word(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:=@,%".contains(c))
    {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// A command's refusal: what was wrong, each problem on its own line, and
/// the exit code; printed as `{"ok": false, "error": {code, message,
/// problems}}` with `--json`, else on stderr.
#[derive(Debug)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
    pub problems: Vec<String>,
    pub exit: Exit,
}

impl Refusal {
    /// Exit 1.
    pub fn new(code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            message: message.into(),
            problems: Vec::new(),
            exit: Exit::Failure,
        }
    }

    /// Exit 2: the command was used wrongly.
    pub fn usage(code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            exit: Exit::Usage,
            ..Refusal::new(code, message)
        }
    }

    pub fn print(&self, json: bool) -> Exit {
        if json {
            print_json(&serde_json::json!({"ok": false, "error": {
                "code": self.code,
                "message": self.message,
                "problems": self.problems,
            }}));
        } else {
            let mut text = format!("airlock: {}", self.message);
            for p in &self.problems {
                text.push_str("\n  - ");
                text.push_str(&escape(p));
            }
            eprintln!("{}", escape_lines(&text));
        }
        self.exit
    }
}

/// One decision as a line, every recorded value passed through `esc` (the
/// terminal's [`escape`], or the review UI's HTML escaping):
/// `approved by ann (uid 1000) at 2026-…: note`.
pub fn decision_line(d: &airlock_ipc::message::Decision, esc: impl Fn(&str) -> String) -> String {
    format!(
        "{} by {} (uid {}) at {}{}",
        d.state.as_str(),
        esc(d.by.user.as_deref().unwrap_or("?")),
        d.by.uid,
        esc(&d.at),
        d.note
            .as_deref()
            .map_or(String::new(), |n| format!(": {}", esc(n)))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steering_characters_are_escaped_visibly() {
        let hostile =
            "a\u{1b}[2Jb\u{202e}c\nd\re\u{7f}f\u{9b}g\u{2066}h\u{200f}i\u{61c}j\u{2028}k\u{2029}";
        let shown = escape(hostile);
        assert_eq!(
            shown,
            "a\\u{1b}[2Jb\\u{202e}c\\nd\\re\\u{7f}f\\u{9b}g\\u{2066}h\\u{200f}i\\u{61c}j\\u{2028}k\\u{2029}"
        );
        assert!(!shown.chars().any(is_steering));
        assert_eq!(escape_lines("x\u{1b}\ny\tz"), "x\\u{1b}\ny\tz");
        assert!(matches!(
            escape("plain ünïcode"),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}
