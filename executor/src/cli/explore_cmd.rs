//! `airlock explore audit`: the Scoped Explore query audit — each query a
//! proposer asked to run, its normalized plan and how it ended (released,
//! suppressed, refused, failed), newest first. Never a row value: the
//! ledger holds none. Asked of the executor over the operator socket
//! (`explore_audit`).

use airlock_ipc::message::{ExploreAuditEntry, ExploreAuditQuery, Request, Response};
use serde_json::json;

use super::ConnArgs;
use super::operator::{call_once, client_failure, unexpected_answer};
use super::output::{Exit, escape, print_json, say};

pub fn audit(conn: &ConnArgs, limit: u32, tenant: Option<String>, json: bool) -> Exit {
    call_once(conn, json, |mut client| async move {
        let answer = client
            .call(Request::ExploreAudit(ExploreAuditQuery {
                limit,
                tenant_id: tenant.clone(),
            }))
            .await;
        match answer {
            Ok(Response::ExploreAudit(audit)) => {
                if json {
                    print_json(&json!({"ok": true, "entries": audit.entries}));
                } else if audit.entries.is_empty() {
                    say!(
                        "No Scoped Explore queries{}.",
                        tenant.map_or(String::new(), |t| format!(" of tenant {}", escape(&t)))
                    );
                } else {
                    print_table(&audit.entries);
                }
                Exit::Ok
            }
            Ok(other) => unexpected_answer(json, &other),
            Err(e) => client_failure(json, e),
        }
    })
}

fn print_table(entries: &[ExploreAuditEntry]) {
    say!(
        "{:<24} {:<10} {:<12} {:<16} {:<10} {:>6} {:>5}  {}",
        "AT",
        "TENANT",
        "PRINCIPAL",
        "RESOURCE",
        "OUTCOME",
        "CELLS",
        "SUPPR",
        "REASON"
    );
    for e in entries {
        say!(
            "{:<24} {:<10} {:<12} {:<16} {:<10} {:>6} {:>5}  {}",
            escape(&e.at),
            escape(&e.tenant_id),
            escape(&e.principal),
            escape(e.resource.as_deref().unwrap_or("-")),
            escape(&e.outcome),
            e.cells,
            e.suppressed_groups,
            escape(e.reason.as_deref().unwrap_or("-"))
        );
        // The plan on its own line: it is what a reviewer reads.
        if let Some(plan) = &e.plan {
            say!("    plan: {}", escape(&plan.to_string()));
        }
    }
}
