//! `airlock evidence show ID`: one evidence record — what a read returned
//! to the model, as the executor recorded it — and the proposals that cite
//! it. Asked of the executor over the operator socket (`show_evidence`).

use airlock_ipc::message::{EvidenceRecord, EvidenceRef, Request, Response};
use serde_json::{Value, json};

use super::ConnArgs;
use super::operator::{call_once, client_failure, unexpected_answer};
use super::output::{Exit, escape, print_json, say};

pub fn show(conn: &ConnArgs, id: &str, json: bool) -> Exit {
    call_once(conn, json, |mut client| async move {
        let answer = client
            .call(Request::ShowEvidence(EvidenceRef {
                evidence_id: id.to_owned(),
            }))
            .await;
        match answer {
            Ok(Response::Evidence(record)) => {
                if json {
                    print_json(
                        &json!({"ok": true, "evidence": record.evidence, "cited_by": record.cited_by}),
                    );
                } else {
                    print_record(&record);
                }
                Exit::Ok
            }
            Ok(other) => unexpected_answer(json, &other),
            Err(e) => client_failure(json, e),
        }
    })
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => format!("\"{}\"", escape(s)),
        other => escape(&other.to_string()).into_owned(),
    }
}

/// The columns of the rows, in the order they first appear.
fn columns(record: &EvidenceRecord) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for row in &record.evidence.rows {
        for key in row.keys() {
            if !out.contains(&key.as_str()) {
                out.push(key);
            }
        }
    }
    out
}

fn print_record(record: &EvidenceRecord) {
    let ev = &record.evidence;
    say!(
        "Evidence {}  {}",
        escape(&ev.evidence_id),
        escape(&ev.capability)
    );
    say!("  tenant:     {}", escape(&ev.tenant_id));
    say!("  principal:  {}", escape(&ev.principal));
    say!(
        "  recorded:   {} by {} (uid {})",
        escape(&ev.recorded_at),
        escape(ev.recorded_by.user.as_deref().unwrap_or("?")),
        ev.recorded_by.uid
    );
    say!("  query:      {}", escape(&ev.query_fingerprint));
    let params: Vec<String> = ev
        .parameters
        .iter()
        .map(|p| {
            format!(
                "${} ← {} ({})",
                p.position,
                escape(&p.bound_from),
                escape(&p.json_type)
            )
        })
        .collect();
    say!(
        "  parameters: {}",
        if params.is_empty() {
            "none".to_owned()
        } else {
            params.join(", ")
        }
    );
    let cols: Vec<String> = columns(record)
        .into_iter()
        .map(|c| escape(c).into_owned())
        .collect();
    say!("  columns:    {}", cols.join(", "));
    say!("\n  Rows the model read ({}):", ev.rows.len());
    for (n, row) in ev.rows.iter().enumerate() {
        let fields: Vec<String> = row
            .iter()
            .map(|(k, v)| format!("{}={}", escape(k), value_text(v)))
            .collect();
        say!("    {}. {}", n + 1, fields.join("  "));
    }
    if record.cited_by.is_empty() {
        say!("\n  Cited by:   no proposal");
    } else {
        say!("\n  Cited by ({}):", record.cited_by.len());
        for p in &record.cited_by {
            say!(
                "    {}  [{}]  {}  {}  created {}",
                escape(&p.proposal_id),
                p.state.as_str(),
                escape(&p.capability),
                escape(&p.object_id),
                escape(&p.created_at)
            );
        }
    }
}
