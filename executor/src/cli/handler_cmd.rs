//! `airlock handler template node-fastify|python-fastapi|command --output F`:
//! write a starter handler that verifies the request, applies updates,
//! inserts, deletes and bounded sets (dispatching on the payload's
//! `operation`) within its own allow-list, re-checks tenant and expected
//! version against its own data, enforces idempotency by key, and answers
//! with terminal receipts.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde_json::json;

use super::output::{Exit, fail, print_json, say};

/// One starter handler.
#[derive(Debug, Clone, Copy)]
pub struct Template {
    /// The name given on the command line.
    pub kind: &'static str,
    /// What it is, for people.
    pub describe: &'static str,
    /// The file's text.
    pub text: &'static str,
    /// File mode of the written file.
    pub mode: u32,
    /// How to use it next.
    pub next: &'static str,
}

/// Every template, in the order the help lists them.
pub const TEMPLATES: &[Template] = &[
    Template {
        kind: "node-fastify",
        describe: "an http_handler in Node.js with Fastify",
        text: include_str!("../../templates/handler-node-fastify.js"),
        mode: 0o644,
        next: "npm install fastify; set HANDLER_SIGNING_SECRET (and HANDLER_TOKEN) for it, and the same values in the executor's signing_secret_env / auth.token_env variables",
    },
    Template {
        kind: "python-fastapi",
        describe: "an http_handler in Python with FastAPI",
        text: include_str!("../../templates/handler-python-fastapi.py"),
        mode: 0o644,
        next: "pip install fastapi uvicorn; set HANDLER_SIGNING_SECRET (and HANDLER_TOKEN) for it, and the same values in the executor's signing_secret_env / auth.token_env variables",
    },
    Template {
        kind: "command",
        describe: "a command_handler in Python (payload on stdin, receipt on stdout)",
        text: include_str!("../../templates/handler-command.py"),
        mode: 0o755,
        next: "set the executor's command_env variable to \"<path of this file> <path of your database>\" (no shell: arguments are split on spaces)",
    },
];

/// Find a template by kind.
pub fn find(kind: &str) -> Option<&'static Template> {
    TEMPLATES.iter().find(|t| t.kind == kind)
}

/// Write the template `kind` to `output`. Never overwrites a file.
pub fn template(kind: &str, output: &Path, json: bool) -> Exit {
    let Some(t) = find(kind) else {
        let kinds: Vec<&str> = TEMPLATES.iter().map(|t| t.kind).collect();
        return fail(
            json,
            "unknown_template",
            &format!(
                "there is no handler template `{kind}`; use one of: {}",
                kinds.join(", ")
            ),
            Exit::Usage,
        );
    };
    let shown = output.display();
    // create_new: refuses an existing file (or a symlink) without a race.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(t.mode)
        .open(output);
    let mut file = match file {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return fail(
                json,
                "output_exists",
                &format!(
                    "{shown} already exists; it was not changed. Choose another --output, or move the file away first."
                ),
                Exit::Failure,
            );
        }
        Err(e) => {
            return fail(
                json,
                "output_unwritable",
                &format!("cannot create {shown}: {e}"),
                Exit::Failure,
            );
        }
    };
    if let Err(e) = file
        .write_all(t.text.as_bytes())
        .and_then(|()| file.sync_all())
    {
        // Do not leave a half-written starter behind.
        let _ = std::fs::remove_file(output);
        return fail(
            json,
            "output_unwritable",
            &format!("cannot write {shown}: {e}"),
            Exit::Failure,
        );
    }
    if json {
        print_json(&json!({
            "ok": true,
            "kind": t.kind,
            "output": shown.to_string(),
            "bytes": t.text.len(),
            "next": t.next,
        }));
    } else {
        say!("Wrote {} ({}) to {shown}.", t.kind, t.describe);
        say!("Next: {}.", t.next);
        say!(
            "It handles updates, inserts, deletes and bounded sets (the payload's `operation`), re-checks tenant and expected version (every member's, for a set) in one transaction with the record of the idempotency key, and answers applied / already_applied / conflict / failed; adapt TABLES (its allow-list of tables, columns and operations) and the data store to your application."
        );
    }
    Exit::Ok
}
