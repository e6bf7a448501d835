//! Exit codes and output helpers shared by the CLI commands.

use std::io::Write;
use std::process::ExitCode;

use serde_json::Value;

/// `println!` that ignores a closed stdout instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}
pub(crate) use say;

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
        eprintln!("airlock: {message}");
    }
    exit
}
