//! `airlock config validate` and `airlock config schema`.

use std::io::Write;
use std::path::Path;

use airlock_policy::Diagnostic;
use airlock_policy::config::Kind;
use serde_json::json;

use super::ConfigArgs;
use super::output::{Exit, fail, print_json, say};
use crate::config_file::resolve_and_read;

pub fn validate(args: &ConfigArgs) -> Exit {
    let (config_path, loaded) = match resolve_and_read(args.config.as_deref()) {
        Ok(l) => l,
        Err(e) => {
            return fail(
                args.json,
                "config_unreadable",
                &e.to_string(),
                Exit::Failure,
            );
        }
    };
    let errors: Vec<&Diagnostic> = loaded.report.errors().collect();
    let warnings: Vec<&Diagnostic> = loaded.report.warnings().collect();
    let path = config_path.display().to_string();
    let (reads, proposals) = loaded.config.as_ref().map_or((0, 0), |c| {
        let p = c
            .capabilities
            .iter()
            .filter(|c| c.kind == Kind::Proposal)
            .count();
        (c.capabilities.len() - p, p)
    });
    let disabled = loaded.config.as_ref().map_or(0, |c| c.disabled.len());
    if args.json {
        print_json(&json!({
            "ok": errors.is_empty(),
            "config": path,
            "errors": errors,
            "warnings": warnings,
            "capabilities": {"read": reads, "proposal": proposals, "disabled": disabled},
        }));
    } else if let Some(cfg) = &loaded.config {
        let sources: Vec<String> = cfg
            .sources
            .iter()
            .map(|(n, s)| format!("{n} ({})", s.engine.as_str()))
            .collect();
        say!(
            "OK: {path} is a valid reviewed config: {} capabilities ({reads} read, {proposals} proposal) over {}{}.",
            reads + proposals,
            sources.join(", "),
            if disabled == 0 {
                String::new()
            } else {
                format!("; {disabled} more disabled until reviewed (not served)")
            }
        );
        print_findings(&warnings);
    } else {
        say!(
            "INVALID: {path} has {} error{} and {} warning{}; nothing was started.\n",
            errors.len(),
            plural(errors.len()),
            warnings.len(),
            plural(warnings.len())
        );
        print_findings(&errors);
        print_findings(&warnings);
    }
    if errors.is_empty() {
        Exit::Ok
    } else {
        Exit::Failure
    }
}

/// Print the config's JSON Schema, or write it to `output` (replacing the
/// file whole: a temporary file beside it, then a rename, so an editor never
/// reads half a schema).
pub fn schema(output: Option<&Path>) -> Exit {
    let text = airlock_policy::config_schema::config_schema_text();
    let Some(output) = output else {
        let mut out = std::io::stdout().lock();
        return match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            Ok(()) => Exit::Ok,
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Exit::Ok,
            Err(e) => fail(
                false,
                "output_unwritable",
                &format!("cannot write the schema: {e}"),
                Exit::Failure,
            ),
        };
    };
    let shown = output.display();
    if let Err(e) = crate::config_file::replace_file(output, text.as_bytes()) {
        return fail(
            false,
            "output_unwritable",
            &format!("cannot write {shown}: {e}; it was not changed"),
            Exit::Failure,
        );
    }
    let name = output
        .file_name()
        .map_or_else(|| shown.to_string(), |n| n.to_string_lossy().into_owned());
    say!(
        "Wrote the config schema to {shown} ({} bytes).\nEditors check a config against it when the config starts with \"$schema\": \"./{name}\" (a path relative to the config, or a URL).",
        text.len()
    );
    Exit::Ok
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn print_findings(list: &[&Diagnostic]) {
    for d in list {
        let label = match d.severity {
            airlock_policy::Severity::Error => "error",
            airlock_policy::Severity::Warning => "warning",
        };
        say!(
            "{label}: {}\n    {}\n    fix: {}\n",
            d.path,
            d.message,
            d.fix
        );
    }
}
