//! `airlock config validate`.

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
    if args.json {
        print_json(&json!({
            "ok": errors.is_empty(),
            "config": path,
            "errors": errors,
            "warnings": warnings,
            "capabilities": {"read": reads, "proposal": proposals},
        }));
    } else if let Some(cfg) = &loaded.config {
        let sources: Vec<String> = cfg
            .sources
            .iter()
            .map(|(n, s)| format!("{n} ({})", s.engine.as_str()))
            .collect();
        say!(
            "OK: {path} is a valid reviewed config: {} capabilities ({reads} read, {proposals} proposal) over {}.",
            reads + proposals,
            sources.join(", ")
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
