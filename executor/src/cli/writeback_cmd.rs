//! `airlock apply`, `airlock replay show|export`, and the writeback helpers
//! `airlock writeback migration|grants`.

use std::path::Path;

use airlock_ipc::limits::MAX_LIST_ITEMS;
use airlock_ipc::message::{
    ListProposals, ProposalDetail, ProposalRef, ProposalState, ProposalSummary, ReplayStory,
    Request, Response, WritebackResult,
};
use airlock_policy::change_set::{ExportMeta, export_v1, scalar_text};
use airlock_policy::config::{Engine, Kind, OperationKind};
use airlock_policy::identifier::quote;
use airlock_policy::statement::{RECEIPTS_TABLE, receipts_ddl};
use serde_json::{Value, json};

use super::ConnArgs;
use super::operator::{call_once, fetch_detail, unexpected_answer};
use super::output::{Exit, escape, fail, print_json, say};

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

/// Print an apply's outcome and choose the exit code (4 for a conflict).
pub fn report_writeback(r: &WritebackResult, detail: Option<&ProposalDetail>, json: bool) -> Exit {
    let exit = match r.status.as_str() {
        "applied" | "already_applied" => Exit::Ok,
        "conflict" => Exit::Conflict,
        _ => Exit::Failure,
    };
    if json {
        print_json(&json!({"ok": exit == Exit::Ok, "writeback": r}));
        return exit;
    }
    let receipt = &r.receipt;
    match r.status.as_str() {
        "applied" => {
            say!(
                "Applied {}: the change was made once, in one guarded transaction.",
                r.proposal_id
            );
            if let Some(d) = detail {
                for (col, after) in &d.change_set.patch {
                    say!(
                        "  {col}: {} → {}",
                        d.change_set.before.get(col).map_or("?".into(), text),
                        text(after)
                    );
                }
            }
            say!(
                "  version: {} → {}",
                text(&receipt["previous_version"]),
                text(&receipt["new_version"])
            );
        }
        "already_applied" => say!(
            "{} was already applied; nothing was written again.",
            r.proposal_id
        ),
        "conflict" => say!(
            "CONFLICT for {}: {} — nothing was changed. Ask the agent for a fresh proposal.",
            escape(&r.proposal_id),
            escape(
                r.detail
                    .as_deref()
                    .unwrap_or("the row changed since the proposal")
            )
        ),
        _ => say!(
            "FAILED for {} ({}): {}. Nothing is known to have changed; fix the cause and run `airlock apply {}` again.",
            escape(&r.proposal_id),
            escape(receipt["safe_error_code"].as_str().unwrap_or("failed")),
            escape(r.detail.as_deref().unwrap_or("see the executor log")),
            escape(&r.proposal_id)
        ),
    }
    say!(
        "  receipt: {} ({}), job {}",
        receipt["status"].as_str().unwrap_or("?"),
        receipt["receipt_hash"].as_str().unwrap_or("?"),
        receipt["writeback_job_id"].as_str().unwrap_or("?")
    );
    exit
}

pub fn apply(conn: &ConnArgs, id: &str, json: bool) -> Exit {
    call_once(conn, json, |mut client| async move {
        let detail = match fetch_detail(&mut client, json, id).await {
            Ok(d) => d,
            Err(e) => return e,
        };
        let req = Request::Apply(ProposalRef {
            proposal_id: detail.summary.proposal_id.clone(),
        });
        match client.call(req).await {
            Ok(Response::Writeback(r)) => report_writeback(&r, Some(&detail), json),
            Ok(other) => unexpected_answer(json, &other),
            Err(e) => super::operator::client_failure(json, e),
        }
    })
}

/// Which approved proposals `apply --all-approved` takes.
#[derive(Debug, Clone, Default)]
pub struct ApprovedFilter {
    pub capability: Option<String>,
    pub tenant: Option<String>,
    pub max: Option<u32>,
}

impl ApprovedFilter {
    fn takes(&self, p: &ProposalSummary) -> bool {
        self.capability.as_ref().is_none_or(|c| *c == p.capability)
            && self.tenant.as_ref().is_none_or(|t| *t == p.tenant_id)
    }
}

/// `apply --all-approved`: apply each approved proposal that `filter`
/// takes, oldest first, one `apply` request each, so the executor decides
/// every one as it does for `airlock apply ID`; a conflict, failure or
/// refusal of one is reported and the next is applied. Rounds repeat
/// (the list answers at most `MAX_LIST_ITEMS` proposals) until none is
/// left or `max` were tried; a proposal is tried once per run, so a rerun
/// applies only what is still approved.
pub fn apply_all_approved(conn: &ConnArgs, filter: &ApprovedFilter, json: bool) -> Exit {
    call_once(conn, json, |mut client| async move {
        let mut tried = std::collections::BTreeSet::new();
        let mut results: Vec<Value> = Vec::new();
        let max = filter.max.map_or(usize::MAX, |m| m as usize);
        'rounds: while results.len() < max {
            let listed = match client
                .call(Request::ListProposals(ListProposals {
                    status: Some(ProposalState::Approved),
                    limit: Some(MAX_LIST_ITEMS),
                }))
                .await
            {
                Ok(Response::Proposals(p)) => p.items,
                Ok(other) => return unexpected_answer(json, &other),
                Err(e) => return super::operator::client_failure(json, e),
            };
            // Oldest first: the list is newest first.
            let round: Vec<ProposalSummary> = listed
                .into_iter()
                .rev()
                .filter(|p| filter.takes(p) && !tried.contains(&p.proposal_id))
                .collect();
            if round.is_empty() {
                break;
            }
            for p in round {
                if results.len() >= max {
                    break 'rounds;
                }
                tried.insert(p.proposal_id.clone());
                let answer = client
                    .call(Request::Apply(ProposalRef {
                        proposal_id: p.proposal_id.clone(),
                    }))
                    .await;
                let mut result = json!({
                    "proposal_id": p.proposal_id, "capability": p.capability, "tenant_id": p.tenant_id,
                });
                match answer {
                    Ok(Response::Writeback(r)) => {
                        result["status"] = json!(r.status);
                        result["detail"] = json!(r.detail);
                        result["receipt"] = r.receipt;
                    }
                    Ok(other) => return unexpected_answer(json, &other),
                    // Refused (e.g. `busy`, `role_required`, `config_changed`): reported, next.
                    Err(airlock_ipc::client::ClientError::Refused(e)) => {
                        result["status"] = json!("refused");
                        result["detail"] = json!(e.message);
                        result["error"] = json!({"code": e.code.as_str()});
                    }
                    Err(e) => return super::operator::client_failure(json, e),
                }
                if !json {
                    say_one(&result);
                }
                results.push(result);
            }
        }
        report_all(&results, json)
    })
}

fn say_one(r: &Value) {
    let id = escape(r["proposal_id"].as_str().unwrap_or("?")).into_owned();
    let cap = escape(r["capability"].as_str().unwrap_or("?")).into_owned();
    let detail = escape(r["detail"].as_str().unwrap_or("")).into_owned();
    match r["status"].as_str().unwrap_or("") {
        "applied" => say!("applied          {id} ({cap})"),
        "already_applied" => say!("already applied  {id} ({cap})"),
        "conflict" => say!("CONFLICT         {id} ({cap}): {detail} — nothing changed"),
        "failed" => say!("FAILED           {id} ({cap}): {detail}"),
        _ => say!("REFUSED          {id} ({cap}): {detail}"),
    }
}

/// Counts and the exit code: 0 all applied (or nothing to do), 4 some
/// conflicted, 1 some failed or were refused.
fn report_all(results: &[Value], json: bool) -> Exit {
    let count = |statuses: &[&str]| {
        results
            .iter()
            .filter(|r| statuses.contains(&r["status"].as_str().unwrap_or("")))
            .count()
    };
    let applied = count(&["applied", "already_applied"]);
    let conflicts = count(&["conflict"]);
    let failed = count(&["failed", "refused"]);
    let exit = if failed > 0 {
        Exit::Failure
    } else if conflicts > 0 {
        Exit::Conflict
    } else {
        Exit::Ok
    };
    if json {
        print_json(&json!({
            "ok": exit == Exit::Ok,
            "applied": applied, "conflicts": conflicts, "failed": failed,
            "results": results,
        }));
    } else if results.is_empty() {
        say!("No approved proposal to apply.");
    } else {
        say!("{applied} applied, {conflicts} conflict(s), {failed} failed or refused.");
    }
    exit
}

async fn fetch_replay(
    client: &mut airlock_ipc::client::Client,
    json: bool,
    id: &str,
) -> Result<ReplayStory, Exit> {
    match client
        .call(Request::Replay(ProposalRef {
            proposal_id: id.to_owned(),
        }))
        .await
    {
        Ok(Response::Replay(s)) => Ok(s),
        Ok(other) => Err(unexpected_answer(json, &other)),
        Err(e) => Err(super::operator::client_failure(json, e)),
    }
}

/// The replay as one exportable JSON document, in the shared protocol shapes.
pub fn replay_json(story: &ReplayStory, engine: Engine, source_id: &str) -> Value {
    let d = &story.proposal;
    let approval_status = match d.decisions.iter().map(|x| x.state).next_back() {
        Some(ProposalState::Approved) => "approved",
        Some(ProposalState::Rejected) => "rejected",
        _ => "pending",
    };
    let last = story.receipts.last();
    let writeback_status = match last.and_then(|r| r["status"].as_str()) {
        Some("applied") | Some("already_applied") => "applied",
        Some("conflict") => "conflict",
        Some("failed") => "failed",
        _ => "not_applied",
    };
    let mutated = story
        .receipts
        .iter()
        .any(|r| r["source_database_mutated"] == true);
    let evidence = d.evidence.as_ref();
    let change_set = export_v1(
        &d.change_set,
        &ExportMeta {
            proposal_id: &d.summary.proposal_id,
            source_id,
            engine,
            evidence_bundle_id: evidence.map_or("", |e| e.evidence_id.as_str()),
            query_fingerprint: evidence.map_or("", |e| e.query_fingerprint.as_str()),
            evidence_items: evidence
                .map(|e| e.rows.iter().cloned().map(Value::Object).collect())
                .unwrap_or_default(),
            approval_status,
            required_role: d.summary.required_role.as_deref(),
            writeback_status,
            source_database_mutated: mutated,
            principal_source: "environment",
            created_at: &d.summary.created_at,
        },
    );
    let mut out = json!({
        "schema_version": "airlock.replay.v1",
        "proposal_id": d.summary.proposal_id,
        "state": d.summary.state,
        "capability": d.summary.capability,
        "evidence": evidence,
        "change_set": change_set,
        "decisions": d.decisions,
        "writeback_jobs": story.jobs.iter().map(|j| v1_job(story, j, engine, source_id)).collect::<Vec<_>>(),
        "attempts": story.jobs,
        "execution_receipts": story.receipts,
        "source_database_changed": mutated,
        "events": story.events,
    });
    // The revert link, both ways, only where there is one.
    if let Some(obj) = out.as_object_mut() {
        if let Some(c) = &d.change_set.compensation {
            obj.insert("compensation".into(), json!(c));
        }
        if !d.compensated_by.is_empty() {
            obj.insert("compensated_by".into(), json!(d.compensated_by));
        }
    }
    out
}

/// A recorded attempt as a `synapsor.writeback-job.v1` object.
fn v1_job(story: &ReplayStory, record: &Value, engine: Engine, source_id: &str) -> Value {
    let d = &story.proposal;
    let text = |k: &str| record[k].as_str().unwrap_or_default().to_owned();
    let job = crate::writeback::WritebackJob {
        job_id: text("job_id"),
        proposal_id: d.summary.proposal_id.clone(),
        idempotency_key: text("idempotency_key"),
        attempt: record["attempt"]
            .as_u64()
            .and_then(|a| u32::try_from(a).ok())
            .unwrap_or(1),
        proposal_hash: d.proposal_hash.clone(),
        capability: d.summary.capability.clone(),
        executor: text("executor"),
        source_id: source_id.to_owned(),
        engine,
        evidence_id: d.evidence.as_ref().map(|e| e.evidence_id.clone()),
        change_set: d.change_set.clone(),
        dependencies: Vec::new(),
    };
    crate::writeback::receipt::job_json(&job, &text("started_at"))
}

/// The story in order, for a person.
pub fn replay_text(story: &ReplayStory, details: bool) -> String {
    let d = &story.proposal;
    let cs = &d.change_set;
    let mut out = String::new();
    // Every line on its own: a value's newline or control character is
    // shown as an escape, never as a line or a terminal command.
    let mut line = |s: String| {
        out.push_str(&escape(&s));
        out.push('\n');
    };
    line(format!(
        "Replay of {} [{}] — {} on {}.{} {} = {} (tenant {})",
        d.summary.proposal_id,
        d.summary.state.as_str(),
        d.summary.capability,
        cs.target.schema,
        cs.target.table,
        cs.target.primary_key.column,
        scalar_text(&cs.target.primary_key.value),
        d.summary.tenant_id
    ));
    if let Some(ev) = &d.evidence {
        line(format!(
            "1. {}  The model read {} row(s) with the reviewed query {} (evidence {}, recorded for OS user {} uid {}).",
            ev.recorded_at,
            ev.rows.len(),
            ev.query_fingerprint,
            ev.evidence_id,
            ev.recorded_by.user.as_deref().unwrap_or("?"),
            ev.recorded_by.uid
        ));
        if details {
            for r in &ev.rows {
                line(format!("     row: {}", Value::Object(r.clone())));
            }
        }
    } else {
        line("1. No evidence was recorded.".into());
    }
    line(format!(
        "2. {}  Proposed by principal {} (proposal hash {}):",
        d.summary.created_at, d.principal, d.proposal_hash
    ));
    for (col, after) in &cs.patch {
        line(format!(
            "     {col}: {} → {}",
            cs.before.get(col).map_or("?".into(), text),
            text(after)
        ));
    }
    if let Some(c) = &cs.compensation {
        line(format!(
            "     a revert of {} (depth {}, chain from {}), asked because: {}",
            c.reverts_proposal_id, c.depth, c.root_proposal_id, c.reason
        ));
        if airlock_policy::compensation::locates_by_identity(cs) {
            let identity: Vec<String> = cs
                .guards
                .deduplication
                .iter()
                .map(|d| {
                    format!(
                        "{} = {}",
                        d.column,
                        d.value.as_ref().map_or("?".into(), text)
                    )
                })
                .collect();
            line(format!(
                "     deletes the row it inserted ({}), only while it holds the values inserted",
                identity.join(", ")
            ));
        }
    }
    if !d.compensated_by.is_empty() {
        line(format!("     reverted by {}", d.compensated_by.join(", ")));
    }
    if let Some(p) = &cs.guards.principal {
        line(format!(
            "     scoped to principal {} = {}",
            p.column,
            text(&p.value)
        ));
    }
    if let Some(v) = &cs.guards.expected_version {
        line(format!("     guarded by {} = {}", v.column, text(&v.value)));
    }
    let mut n = 3;
    for dec in &d.decisions {
        line(format!(
            "{n}. {}  {} by {} (uid {}){}",
            dec.at,
            if dec.state == ProposalState::Approved {
                "Approved"
            } else {
                "Rejected"
            },
            dec.by.user.as_deref().unwrap_or("?"),
            dec.by.uid,
            dec.note
                .as_deref()
                .map_or(String::new(), |x| format!(": {x}"))
        ));
        n += 1;
    }
    for job in &story.jobs {
        line(format!(
            "{n}. {}  Writeback job {} (attempt {}) via {}, started by uid {}.",
            job["started_at"].as_str().unwrap_or("?"),
            job["job_id"].as_str().unwrap_or("?"),
            job["attempt"],
            job["executor"].as_str().unwrap_or("?"),
            job["started_by"]["uid"]
        ));
        n += 1;
        for r in story
            .receipts
            .iter()
            .filter(|r| r["writeback_job_id"] == job["job_id"])
        {
            line(format!(
                "{n}. {}  Receipt: {}{} — rows {}, version {} → {}{}",
                r["executed_at"].as_str().unwrap_or("?"),
                r["status"].as_str().unwrap_or("?"),
                r["safe_error_code"]
                    .as_str()
                    .map_or(String::new(), |c| format!(" ({c})")),
                r["rows_affected"],
                text(&r["previous_version"]),
                text(&r["new_version"]),
                r["detail"]
                    .as_str()
                    .map_or(String::new(), |x| format!("; {x}"))
            ));
            n += 1;
            if details {
                line(format!("     {r}"));
            }
        }
    }
    let mutated = story
        .receipts
        .iter()
        .any(|r| r["source_database_mutated"] == true);
    line(format!(
        "Source database changed: {}",
        if mutated {
            "yes — exactly once, by the approved writeback"
        } else {
            "no"
        }
    ));
    out
}

fn replay_markdown(story: &ReplayStory) -> String {
    let body = replay_text(story, true);
    format!(
        "# Airlock replay: {}\n\n```text\n{body}```\n",
        story.proposal.summary.proposal_id
    )
}

/// (engine, source id) of a capability, from the config (`--config`, else
/// ./airlock.json) when there is one.
fn source_of(conn: &ConnArgs, capability: &str) -> (Engine, String) {
    let cfg = crate::config_file::resolve_and_read(conn.config.as_deref())
        .ok()
        .map(|(_, loaded)| loaded)
        .and_then(|l| l.config);
    cfg.as_ref()
        .and_then(|c| {
            c.capability(capability)
                .map(|cap| (cap.source.clone(), c.source_for(cap).map(|s| s.engine)))
        })
        .map_or((Engine::Postgres, "source".to_owned()), |(id, e)| {
            (e.unwrap_or(Engine::Postgres), id)
        })
}

pub fn replay_show(conn: &ConnArgs, id: &str, details: bool, json: bool) -> Exit {
    let conn_args = conn.clone();
    call_once(conn, json, |mut client| async move {
        let story = match fetch_replay(&mut client, json, id).await {
            Ok(s) => s,
            Err(e) => return e,
        };
        if json {
            let (engine, source) = source_of(&conn_args, &story.proposal.summary.capability);
            print_json(&replay_json(&story, engine, &source));
        } else {
            say!("{}", replay_text(&story, details).trim_end());
        }
        Exit::Ok
    })
}

pub fn replay_export(conn: &ConnArgs, id: &str, format: &str, output: &Path, json: bool) -> Exit {
    // `-`: the replay itself goes to stdout, so nothing else may.
    let to_stdout = output == Path::new("-");
    if to_stdout && json {
        return fail(
            json,
            "usage",
            "`--output -` writes the replay itself to stdout; leave out --json (or write to a file)",
            Exit::Usage,
        );
    }
    if !to_stdout && output.exists() {
        return fail(
            json,
            "exists",
            &format!("{} exists; choose another --output", output.display()),
            Exit::Failure,
        );
    }
    let conn_args = conn.clone();
    let format = format.to_owned();
    let output = output.to_owned();
    call_once(conn, json, |mut client| async move {
        let story = match fetch_replay(&mut client, json, id).await {
            Ok(s) => s,
            Err(e) => return e,
        };
        let text = if format == "markdown" {
            replay_markdown(&story)
        } else {
            let (engine, source) = source_of(&conn_args, &story.proposal.summary.capability);
            serde_json::to_string_pretty(&replay_json(&story, engine, &source)).unwrap_or_default()
        };
        if to_stdout {
            if format == "markdown" {
                // Human output: steering characters shown as escapes (F14).
                say!("{text}");
            } else {
                // JSON carries the exact strings, as every --json output does.
                use std::io::Write as _;
                let _ = writeln!(std::io::stdout().lock(), "{text}");
            }
            return Exit::Ok;
        }
        if let Err(e) = std::fs::write(&output, text) {
            return fail(
                json,
                "write",
                &format!("cannot write {}: {e}", output.display()),
                Exit::Failure,
            );
        }
        if json {
            print_json(
                &json!({"ok": true, "output": output.display().to_string(), "format": format}),
            );
        } else {
            say!(
                "Wrote the replay of {} to {} ({format}).",
                story.proposal.summary.proposal_id,
                output.display()
            );
        }
        Exit::Ok
    })
}

fn parse_engine(engine: &str, json: bool) -> Result<Engine, Exit> {
    Engine::parse(engine).ok_or_else(|| {
        fail(
            json,
            "usage",
            &format!("unknown engine `{engine}`; use postgres, mysql or sqlite"),
            Exit::Usage,
        )
    })
}

pub fn migration(engine: &str, schema: Option<&str>, json: bool) -> Exit {
    let engine = match parse_engine(engine, json) {
        Ok(e) => e,
        Err(x) => return x,
    };
    let schema = schema.unwrap_or(match engine {
        Engine::Postgres => "public",
        Engine::Mysql => "app",
        Engine::Sqlite => "main",
    });
    if !airlock_policy::identifier::is_safe_identifier(schema) {
        return fail(
            json,
            "usage",
            "the schema must be a plain identifier",
            Exit::Usage,
        );
    }
    let ddl = format!("{};", receipts_ddl(engine, schema));
    if json {
        print_json(&json!({"ok": true, "engine": engine.as_str(), "sql": ddl}));
    } else {
        say!(
            "-- The idempotency receipts: Synapsor Runner's {RECEIPTS_TABLE}, column for column (Airlock's detail is in its ledger)."
        );
        say!(
            "-- The executor creates this table on first apply if its writer may; or run this once."
        );
        say!("{ddl}");
    }
    Exit::Ok
}

/// Least-privilege grants for the writer role: SELECT on the target tables,
/// UPDATE on exactly the allowed and version columns, and the receipt table.
pub fn grants(engine: &str, writer_role: &str, config: Option<&Path>, json: bool) -> Exit {
    let engine = match parse_engine(engine, json) {
        Ok(e) => e,
        Err(x) => return x,
    };
    if engine == Engine::Sqlite {
        return fail(
            json,
            "unsupported",
            "SQLite has no roles or grants: protect the file with file permissions (the executor's user may write it, the proposer's may only read it)",
            Exit::Failure,
        );
    }
    if !writer_role
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        || writer_role.is_empty()
    {
        return fail(
            json,
            "usage",
            "the writer role must be letters, digits and underscores",
            Exit::Usage,
        );
    }
    let Ok(path) = crate::config_file::resolve_config(config) else {
        return fail(
            json,
            "usage",
            "grants depend on the reviewed capabilities: pass --config FILE (there is no ./airlock.json here)",
            Exit::Usage,
        );
    };
    let cfg = match crate::config_file::read_config(&path) {
        Ok(l) => match l.config {
            Some(c) => c,
            None => {
                return fail(
                    json,
                    "invalid_config",
                    "the config is invalid; run `airlock config validate`",
                    Exit::Failure,
                );
            }
        },
        Err(e) => return fail(json, "config_unreadable", &e.to_string(), Exit::Failure),
    };
    let role = match engine {
        Engine::Postgres => quote(engine, writer_role),
        _ => format!("'{writer_role}'@'%'"),
    };
    // Per table: the columns updates set, the columns inserts fill, and
    // whether a capability deletes.
    type Privileges = (
        std::collections::BTreeSet<String>,
        std::collections::BTreeSet<String>,
        bool,
    );
    let mut per_table: std::collections::BTreeMap<(String, String), Privileges> =
        Default::default();
    for cap in cfg.capabilities.iter().filter(|c| c.kind == Kind::Proposal) {
        if cfg.source_for(cap).map(|s| s.engine) != Some(engine) {
            continue;
        }
        let Some(p) = &cap.proposal else { continue };
        if !matches!(
            cfg.executor_for(p).spec,
            airlock_policy::config::ExecutorSpec::SqlUpdate
        ) {
            continue;
        }
        let (update, insert, delete) = per_table
            .entry((cap.target.schema.clone(), cap.target.table.clone()))
            .or_default();
        match p.kind() {
            OperationKind::Update => {
                update.extend(p.patch.iter().map(|(c, _)| c.clone()));
                update.extend(p.version_column().map(str::to_owned));
            }
            OperationKind::Insert => {
                insert.extend(p.patch.iter().map(|(c, _)| c.clone()));
                insert.extend(cap.target.tenant_key.clone());
                insert.extend(p.operation.deduplication.iter().map(|c| c.column.clone()));
            }
            OperationKind::Delete => *delete = true,
        }
    }
    let mut sql = Vec::new();
    let mut schemas = std::collections::BTreeSet::new();
    let mut deletes_on_mysql = false;
    for ((schema, table), (update, insert, delete)) in &per_table {
        let t = format!("{}.{}", quote(engine, schema), quote(engine, table));
        let list = |cols: &std::collections::BTreeSet<String>| -> String {
            cols.iter()
                .map(|c| quote(engine, c))
                .collect::<Vec<_>>()
                .join(", ")
        };
        sql.push(format!("GRANT SELECT ON {t} TO {role};"));
        if !update.is_empty() {
            sql.push(format!("GRANT UPDATE ({}) ON {t} TO {role};", list(update)));
        }
        if !insert.is_empty() {
            sql.push(format!("GRANT INSERT ({}) ON {t} TO {role};", list(insert)));
            if engine == Engine::Postgres {
                sql.push(format!("-- and USAGE on {t}'s identity or serial sequence, if its key is generated: GRANT USAGE ON SEQUENCE <sequence> TO {role};"));
            }
        }
        if *delete {
            if engine == Engine::Mysql {
                // Without TRIGGER the writer's catalog hides the table's
                // triggers, and the executor refuses to delete blind.
                sql.push(format!("GRANT DELETE, TRIGGER ON {t} TO {role};"));
                deletes_on_mysql = true;
            } else {
                sql.push(format!("GRANT DELETE ON {t} TO {role};"));
            }
        }
        schemas.insert(schema.clone());
    }
    if deletes_on_mysql {
        // InnoDB's foreign-key catalog, read to prove a delete cascades nowhere.
        sql.push(format!("GRANT PROCESS ON *.* TO {role};"));
    }
    for schema in &schemas {
        let r = format!(
            "{}.{}",
            quote(engine, schema),
            quote(engine, RECEIPTS_TABLE)
        );
        sql.push(format!("{};", receipts_ddl(engine, schema)));
        sql.push(format!("GRANT SELECT, INSERT ON {r} TO {role};"));
    }
    if json {
        print_json(
            &json!({"ok": true, "engine": engine.as_str(), "writer_role": writer_role, "sql": sql}),
        );
    } else {
        say!(
            "-- Least-privilege grants for the executor's writer role {writer_role} ({}):",
            engine.as_str()
        );
        say!(
            "-- UPDATE only on each proposal's allowed and version columns; nothing else is writable."
        );
        for s in &sql {
            say!("{s}");
        }
    }
    Exit::Ok
}
