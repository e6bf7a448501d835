//! Operator commands that talk to the executor's operator socket:
//! `proposals list|show|approve|reject` and `events tail`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use airlock_ipc::Role;
use airlock_ipc::client::{Client, ClientError, ExpectedServer};
use airlock_ipc::error::ErrorCode;
use airlock_ipc::message::{
    Approve, Decision, Empty, EventsSince, Freshness, FreshnessReport, ListProposals,
    ProposalDetail, ProposalRef, ProposalState, Reject, Request, Response,
};
use airlock_ipc::transport::{OPERATOR_SOCKET, resolve_socket_dir};
use airlock_policy::change_set::scalar_text;
use serde_json::{Value, json};

use super::ConnArgs;
use super::output::{Exit, escape, fail, print_json, say};

/// How long the CLI waits for the executor to answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The operator socket path for these arguments.
pub fn operator_socket(conn: &ConnArgs) -> PathBuf {
    // `--config`, else ./airlock.json when there is one; with neither, the
    // socket directory comes from the flags and the environment alone.
    let config = crate::config_file::resolve_config(conn.config.as_deref()).ok();
    let config = config.as_deref();
    let config_value = config
        .and_then(|p| crate::config_file::read_config(p).ok())
        .and_then(|l| l.config)
        .and_then(|c| c.airlock.socket_dir);
    let config_dir = config.and_then(Path::parent);
    resolve_socket_dir(
        conn.socket_dir.as_deref(),
        |k| std::env::var(k).ok(),
        config_value.as_deref(),
        config_dir,
    )
    .join(OPERATOR_SOCKET)
}

/// Run one async operator session on a small runtime.
fn run<F: std::future::Future<Output = Exit>>(json: bool, fut: F) -> Exit {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(fut),
        Err(e) => fail(
            json,
            "runtime",
            &format!("cannot start: {e}"),
            Exit::Failure,
        ),
    }
}

async fn connect(conn: &ConnArgs, json: bool) -> Result<Client, Exit> {
    let socket = operator_socket(conn);
    let expected =
        ExpectedServer::resolve(conn.executor_user.as_deref(), |k| std::env::var(k).ok())
            .map_err(|e| fail(json, "executor_user", &e, Exit::Usage))?;
    Client::connect_expecting(
        &socket,
        Role::Operator,
        env!("CARGO_PKG_VERSION"),
        CALL_TIMEOUT,
        &expected,
    )
    .await
    .map_err(|e| client_failure(json, e))
}

/// Turn a client error into a message and an exit code.
pub fn client_failure(json: bool, e: ClientError) -> Exit {
    match e {
        ClientError::NotRunning { path, .. } => fail(
            json,
            "executor_not_running",
            &format!(
                "the Airlock executor is not running (no socket at {}). Start it with `airlock-executor serve --config <config.json>`, or point to its sockets with --socket-dir / AIRLOCK_SOCKET_DIR",
                path.display()
            ),
            Exit::Failure,
        ),
        ClientError::Refused(body) => {
            let exit = match body.code {
                ErrorCode::RoleRequired
                | ErrorCode::UnauthorizedPeer
                | ErrorCode::Forbidden
                | ErrorCode::TenantNotAllowed
                | ErrorCode::PolicyViolation
                | ErrorCode::SecretMaterial
                | ErrorCode::AlreadyVoted => Exit::Refused,
                ErrorCode::Stale => Exit::Conflict,
                _ => Exit::Failure,
            };
            if json {
                print_json(
                    &json!({"ok": false, "error": {"code": body.code, "message": body.message, "details": body.details}}),
                );
            } else {
                eprintln!(
                    "airlock: refused ({}): {}",
                    body.code,
                    escape(&body.message)
                );
            }
            exit
        }
        e @ ClientError::UntrustedServer { .. } => {
            fail(json, "executor_untrusted", &e.to_string(), Exit::Failure)
        }
        other => fail(
            json,
            "executor_unreachable",
            &other.to_string(),
            Exit::Failure,
        ),
    }
}

async fn call(client: &mut Client, json: bool, request: Request) -> Result<Response, Exit> {
    client
        .call(request)
        .await
        .map_err(|e| client_failure(json, e))
}

pub fn list(conn: &ConnArgs, status: Option<&str>, json: bool) -> Exit {
    let status = match status.map(|s| ProposalState::parse(s).ok_or(s)) {
        Some(Err(bad)) => {
            let all: Vec<&str> = ProposalState::ALL.iter().map(|s| s.as_str()).collect();
            return fail(
                json,
                "usage",
                &format!("unknown status `{bad}`; use one of: {}", all.join(", ")),
                Exit::Usage,
            );
        }
        Some(Ok(s)) => Some(s),
        None => None,
    };
    run(json, async {
        let mut client = match connect(conn, json).await {
            Ok(c) => c,
            Err(e) => return e,
        };
        let items = match call(
            &mut client,
            json,
            Request::ListProposals(ListProposals {
                status,
                limit: Some(200),
            }),
        )
        .await
        {
            Ok(Response::Proposals(p)) => p.items,
            Ok(other) => return unexpected(json, &other),
            Err(e) => return e,
        };
        if json {
            print_json(&json!({"ok": true, "proposals": items}));
        } else if items.is_empty() {
            say!(
                "No proposals{}.",
                status.map_or(String::new(), |s| format!(" with status {}", s.as_str()))
            );
        } else {
            say!(
                "{:<24} {:<17} {:<36} {:<10} {:<12} {}",
                "PROPOSAL",
                "STATUS",
                "CAPABILITY",
                "TENANT",
                "OBJECT",
                "CREATED"
            );
            for p in &items {
                // Quorum progress beside the state: `pending_approval 1/2`.
                let state = match &p.quorum {
                    Some(q) => format!("{} {}/{}", p.state.as_str(), q.approvals, q.required),
                    None => p.state.as_str().to_owned(),
                };
                say!(
                    "{:<24} {:<17} {:<36} {:<10} {:<12} {}",
                    escape(&p.proposal_id),
                    state,
                    escape(&p.capability),
                    escape(&p.tenant_id),
                    escape(&p.object_id),
                    escape(&p.created_at)
                );
            }
        }
        Exit::Ok
    })
}

/// Connect as an operator and run `f` with the client.
pub fn call_once<F, Fut>(conn: &ConnArgs, json: bool, f: F) -> Exit
where
    F: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = Exit>,
{
    run(json, async {
        match connect(conn, json).await {
            Ok(c) => f(c).await,
            Err(e) => e,
        }
    })
}

/// `show_proposal` (resolving `latest`).
pub async fn fetch_detail(
    client: &mut Client,
    json: bool,
    id: &str,
) -> Result<ProposalDetail, Exit> {
    fetch(client, json, id).await
}

pub fn unexpected_answer(json: bool, r: &Response) -> Exit {
    unexpected(json, r)
}

fn unexpected(json: bool, r: &Response) -> Exit {
    fail(
        json,
        "protocol",
        &format!("unexpected answer `{}` from the executor", r.type_name()),
        Exit::Failure,
    )
}

async fn fetch(client: &mut Client, json: bool, id: &str) -> Result<ProposalDetail, Exit> {
    match call(
        client,
        json,
        Request::ShowProposal(ProposalRef {
            proposal_id: id.to_owned(),
        }),
    )
    .await?
    {
        Response::Proposal(d) => Ok(d),
        other => Err(unexpected(json, &other)),
    }
}

pub fn show(conn: &ConnArgs, id: &str, json: bool) -> Exit {
    run(json, async {
        let mut client = match connect(conn, json).await {
            Ok(c) => c,
            Err(e) => return e,
        };
        let d = match fetch(&mut client, json, id).await {
            Ok(d) => d,
            Err(e) => return e,
        };
        // An open proposal's row is re-read now; a finished one's is not
        // (its answer no longer depends on the row).
        let fresh = if is_open(d.summary.state) {
            match check_freshness(&mut client, json, &d.summary.proposal_id).await {
                Ok(f) => Some(f),
                Err(e) => return e,
            }
        } else {
            None
        };
        if json {
            print_json(&json!({"ok": true, "proposal": d, "freshness": fresh}));
        } else {
            print_detail(&d);
            match &fresh {
                Some(f) => print_freshness(f),
                None => say!(
                    "\n  Freshness:  not checked: the proposal is {}",
                    d.summary.state.as_str()
                ),
            }
        }
        Exit::Ok
    })
}

/// Waiting for a decision or for its apply.
fn is_open(state: ProposalState) -> bool {
    matches!(
        state,
        ProposalState::PendingApproval | ProposalState::Approved
    )
}

async fn check_freshness(
    client: &mut Client,
    json: bool,
    id: &str,
) -> Result<FreshnessReport, Exit> {
    match call(
        client,
        json,
        Request::CheckFreshness(ProposalRef {
            proposal_id: id.to_owned(),
        }),
    )
    .await?
    {
        Response::Freshness(f) => Ok(f),
        other => Err(unexpected(json, &other)),
    }
}

/// One line (or two): is the row still what the proposal was built on?
pub fn print_freshness(f: &FreshnessReport) {
    let at = escape(&f.checked_at);
    match f.freshness {
        Freshness::Current => {
            say!("\n  Freshness:  still current (the row was re-read at {at}; every guard holds)")
        }
        Freshness::Changed => say!(
            "\n  Freshness:  CHANGED since the proposal (re-read at {at}): {} no longer hold{}; applying would be a conflict",
            escape(&f.changed.join(", ")),
            if f.changed.len() == 1 { "s" } else { "" }
        ),
        Freshness::Gone => say!(
            "\n  Freshness:  the row is GONE (re-read at {at}): no row with that key for this tenant"
        ),
        Freshness::Unavailable => say!(
            "\n  Freshness:  unknown: the row could not be re-read ({})",
            escape(f.detail.as_deref().unwrap_or("no detail"))
        ),
    }
}

/// `proposals check-freshness ID`: exit 0 still current, 4 changed or gone,
/// 1 when the row could not be re-read.
pub fn freshness(conn: &ConnArgs, id: &str, json: bool) -> Exit {
    run(json, async {
        let mut client = match connect(conn, json).await {
            Ok(c) => c,
            Err(e) => return e,
        };
        let f = match check_freshness(&mut client, json, id).await {
            Ok(f) => f,
            Err(e) => return e,
        };
        let exit = match f.freshness {
            Freshness::Current => Exit::Ok,
            Freshness::Changed | Freshness::Gone => Exit::Conflict,
            Freshness::Unavailable => Exit::Failure,
        };
        if json {
            print_json(&json!({"ok": exit == Exit::Ok, "freshness": f}));
        } else {
            say!("Proposal {}", escape(&f.proposal_id));
            print_freshness(&f);
        }
        exit
    })
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => format!("\"{}\"", escape(s)),
        other => escape(&other.to_string()).into_owned(),
    }
}

/// A readable diff of one proposal.
pub fn print_detail(d: &ProposalDetail) {
    let s = &d.summary;
    let cs = &d.change_set;
    say!(
        "Proposal {}  [{}]  {}",
        escape(&s.proposal_id),
        s.state.as_str(),
        escape(&s.capability)
    );
    say!("  tenant:     {}", escape(&s.tenant_id));
    say!(
        "  object:     {}.{} where {} = {}",
        escape(&cs.target.schema),
        escape(&cs.target.table),
        escape(&cs.target.primary_key.column),
        escape(&scalar_text(&cs.target.primary_key.value))
    );
    say!(
        "  proposed:   by principal {} (OS user {} uid {}) at {}",
        escape(&d.principal),
        escape(d.proposed_by.user.as_deref().unwrap_or("?")),
        d.proposed_by.uid,
        escape(&s.created_at)
    );
    say!("  expires:    {}", s.expires_at);
    say!(
        "  needs role: {}",
        s.required_role.as_deref().unwrap_or("any approver")
    );
    if let Some(q) = &s.quorum {
        say!(
            "  approvals:  {}/{} distinct approvers",
            q.approvals,
            q.required
        );
    }
    for dep in &d.dependencies {
        say!(
            "  depends on: {} — {}.{} {} = {} at {} {}",
            escape(&dep.id),
            escape(&dep.schema),
            escape(&dep.table),
            escape(&dep.primary_key),
            text(&dep.key),
            escape(&dep.version_column),
            escape(dep.version.as_deref().unwrap_or("NULL"))
        );
    }
    if let Some(set) = &cs.set {
        say!(
            "\n  Bounded set: {} {} of at most {}, frozen (digest {})",
            set.row_count,
            if set.row_count == 1 { "row" } else { "rows" },
            set.max_rows,
            escape(&set.set_digest)
        );
        for b in &set.aggregate_bounds {
            say!(
                "    total {} of {}: {} (at most {})",
                b.measure.as_str(),
                escape(&b.column),
                text(&b.actual),
                b.maximum
            );
        }
    }
    say!("\n  Change (column: before → after):");
    let diff = cs.diff();
    let width = diff.iter().map(|(c, _, _)| c.len()).max().unwrap_or(0);
    for (col, before, after) in &diff {
        say!(
            "    {:<width$}  {} → {}",
            escape(col),
            text(before),
            text(after)
        );
    }
    say!("\n  Guards (checked again at apply time):");
    if let Some(t) = &cs.guards.tenant {
        say!("    {} must be {}", escape(&t.column), text(&t.value));
    }
    if let Some(p) = &cs.guards.principal {
        say!(
            "    {} must be {} (principal scope)",
            escape(&p.column),
            text(&p.value)
        );
    }
    if let Some(v) = &cs.guards.expected_version {
        say!(
            "    {} must still be {} (else: conflict, nothing changes)",
            escape(&v.column),
            text(&v.value)
        );
    }
    if let Some(h) = &cs.guards.row_hash {
        say!(
            "    the visible row must still hash to {} (weak guard)",
            escape(h)
        );
    }
    for t in &cs.guards.transitions {
        say!(
            "    {}: {} → {} is an allowed transition",
            escape(&t.column),
            text(&t.from),
            text(&t.to)
        );
    }
    say!(
        "    only these columns may change: {}",
        escape(&cs.guards.allowed_columns.join(", "))
    );
    match &d.evidence {
        Some(ev) => say!(
            "\n  Evidence:   {} — {} row(s) read by {} at {} (query {})",
            escape(&ev.evidence_id),
            ev.rows.len(),
            escape(ev.recorded_by.user.as_deref().unwrap_or("?")),
            escape(&ev.recorded_at),
            escape(&ev.query_fingerprint)
        ),
        None => say!("\n  Evidence:   none"),
    }
    say!("  Hash:       {}", escape(&d.proposal_hash));
    for dec in &d.decisions {
        say!(
            "  Decision:   {}",
            super::output::decision_line(dec, |s| escape(s).into_owned())
        );
    }
}

fn print_decision(d: &Decision, json: bool) {
    if json {
        print_json(&json!({"ok": true, "decision": d}));
    } else {
        say!(
            "{} {} as {} (uid {}) at {}.",
            match d.state {
                ProposalState::Approved => "Approved",
                ProposalState::PendingApproval => "Counted your approval of",
                _ => "Rejected",
            },
            escape(&d.proposal_id),
            escape(d.by.user.as_deref().unwrap_or("?")),
            d.by.uid,
            escape(&d.at)
        );
        if let Some(q) = &d.quorum {
            say!(
                "Approvals: {}/{} distinct approvers{}.",
                q.approvals,
                q.required,
                if d.state == ProposalState::PendingApproval {
                    "; it stays pending until the rest approve"
                } else {
                    ""
                }
            );
        }
    }
}

/// Ask on the terminal; anything but "yes"/"y" declines.
fn confirm(question: &str) -> bool {
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "{question} [y/N] ");
    let _ = err.flush();
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() {
        return false;
    }
    matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// The fewest hex digits `--hash` must give after `sha256:` (48 bits: no
/// second proposal matches by accident).
pub const MIN_HASH_PREFIX_HEX: usize = 12;

/// How `approve` decides and what it does after.
pub struct ApproveOptions {
    pub note: Option<String>,
    /// Do not ask for confirmation.
    pub yes: bool,
    /// `--hash`: the proposal's hash must start with this.
    pub hash: Option<String>,
    /// Apply right after approving.
    pub apply: bool,
}

/// Check a `--hash` value: `sha256:` then 12 to 64 hex digits. Returns it
/// in lower case.
pub fn parse_hash_prefix(given: &str) -> Result<String, String> {
    let hex = given.strip_prefix("sha256:").unwrap_or("");
    if given.starts_with("sha256:")
        && (MIN_HASH_PREFIX_HEX..=64).contains(&hex.len())
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
    {
        Ok(given.to_ascii_lowercase())
    } else {
        Err(format!(
            "`--hash` must be `sha256:` followed by {MIN_HASH_PREFIX_HEX} to 64 hex digits of the proposal's hash (the `Hash:` line of `airlock proposals show`), not {}",
            super::output::escape(given)
        ))
    }
}

pub fn approve(conn: &ConnArgs, id: &str, opts: ApproveOptions, json: bool) -> Exit {
    let ApproveOptions {
        note,
        yes,
        hash,
        apply,
    } = opts;
    let hash = match hash.as_deref().map(parse_hash_prefix).transpose() {
        Ok(h) => h,
        Err(e) => return fail(json, "usage", &e, Exit::Usage),
    };
    // Without a prompt, `latest` would approve whatever is newest at that
    // instant, which may not be the proposal the person reviewed.
    let prompts = !yes && std::io::stdin().is_terminal();
    if id == "latest" && !prompts && hash.is_none() {
        return fail(
            json,
            "hash_required",
            &format!(
                "`approve latest` without a confirmation prompt (--yes or a non-interactive stdin) would approve whatever proposal is newest at that instant; give the hash of the one you reviewed with `--hash sha256:<at least {MIN_HASH_PREFIX_HEX} hex digits>` (the `Hash:` line of `airlock proposals show latest`), or name it by its id"
            ),
            Exit::Usage,
        );
    }
    run(json, async {
        let mut client = match connect(conn, json).await {
            Ok(c) => c,
            Err(e) => return e,
        };
        // Resolve `latest` and show exactly what is being approved.
        let detail = match fetch(&mut client, json, id).await {
            Ok(d) => d,
            Err(e) => return e,
        };
        // The id → hash binding is fixed in the hash-chained ledger, and the
        // approval below names this id: checking here is checking what is
        // approved.
        if let Some(prefix) = &hash
            && !detail
                .proposal_hash
                .to_ascii_lowercase()
                .starts_with(prefix)
        {
            return fail(
                json,
                "hash_mismatch",
                &format!(
                    "not approved: proposal {} has hash {}, which does not start with {prefix}{}; review it with `airlock proposals show {}`",
                    detail.summary.proposal_id,
                    detail.proposal_hash,
                    if id == "latest" {
                        " (a newer proposal arrived since you looked?)"
                    } else {
                        ""
                    },
                    detail.summary.proposal_id,
                ),
                Exit::Failure,
            );
        }
        if !json {
            print_detail(&detail);
            if let Ok(f) = check_freshness(&mut client, json, &detail.summary.proposal_id).await {
                print_freshness(&f);
            }
            say!("");
        }
        if prompts && !confirm(&format!("Approve {}?", escape(&detail.summary.proposal_id))) {
            return fail(
                json,
                "declined",
                "not approved: confirmation declined",
                Exit::Failure,
            );
        }
        let req = Request::Approve(Approve {
            proposal_id: detail.summary.proposal_id.clone(),
            note,
        });
        let decision = match call(&mut client, json, req).await {
            Ok(Response::Decision(d)) => d,
            Ok(other) => return unexpected(json, &other),
            Err(e) => return e,
        };
        // A counted quorum vote is not an approval: nothing to apply yet.
        if !apply || decision.state != ProposalState::Approved {
            print_decision(&decision, json);
            return Exit::Ok;
        }
        if !json {
            print_decision(&decision, json);
        }
        let req = Request::Apply(ProposalRef {
            proposal_id: detail.summary.proposal_id.clone(),
        });
        match call(&mut client, json, req).await {
            Ok(Response::Writeback(r)) => {
                super::writeback_cmd::report_writeback(&r, Some(&detail), json)
            }
            Ok(other) => unexpected(json, &other),
            Err(e) => e,
        }
    })
}

pub fn reject(conn: &ConnArgs, id: &str, reason: String, json: bool) -> Exit {
    run(json, async {
        let mut client = match connect(conn, json).await {
            Ok(c) => c,
            Err(e) => return e,
        };
        // Resolve `latest` to the id the person is deciding on.
        let proposal_id = match fetch(&mut client, json, id).await {
            Ok(d) => d.summary.proposal_id,
            Err(e) => return e,
        };
        match call(
            &mut client,
            json,
            Request::Reject(Reject {
                proposal_id,
                reason,
            }),
        )
        .await
        {
            Ok(Response::Decision(d)) => {
                print_decision(&d, json);
                Exit::Ok
            }
            Ok(other) => unexpected(json, &other),
            Err(e) => e,
        }
    })
}

pub fn events_tail(conn: &ConnArgs, follow: bool, json: bool) -> Exit {
    run(json, async {
        let mut client = match connect(conn, json).await {
            Ok(c) => c,
            Err(e) => return e,
        };
        let total = match call(&mut client, json, Request::Stats(Empty {})).await {
            Ok(Response::Stats(s)) => s.events,
            Ok(other) => return unexpected(json, &other),
            Err(e) => return e,
        };
        // A pruned ledger starts after the archived events: its events are
        // numbered on from the first one left, without gaps.
        let first = match call(
            &mut client,
            json,
            Request::EventsSince(EventsSince {
                since: 0,
                limit: Some(1),
            }),
        )
        .await
        {
            Ok(Response::Events(e)) => e.items.first().map_or(1, |e| e.seq),
            Ok(other) => return unexpected(json, &other),
            Err(e) => return e,
        };
        let mut cursor = first
            .saturating_sub(1)
            .saturating_add(total)
            .saturating_sub(20);
        loop {
            let events = match call(
                &mut client,
                json,
                Request::EventsSince(EventsSince {
                    since: cursor,
                    limit: Some(500),
                }),
            )
            .await
            {
                Ok(Response::Events(e)) => e,
                Ok(other) => return unexpected(json, &other),
                Err(e) => return e,
            };
            for e in &events.items {
                if json {
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "{}", serde_json::to_string(e).unwrap_or_default());
                } else {
                    say!(
                        "{:>6}  {}  {:<18} {}{}{}",
                        e.seq,
                        escape(&e.at),
                        escape(&e.kind),
                        escape(e.proposal_id.as_deref().unwrap_or("")),
                        e.evidence_id
                            .as_deref()
                            .map_or(String::new(), |id| format!(" {}", escape(id))),
                        e.actor.as_ref().map_or(String::new(), |a| format!(
                            "  by {} (uid {})",
                            escape(a.user.as_deref().unwrap_or("?")),
                            a.uid
                        ))
                    );
                }
            }
            cursor = events.next_cursor;
            if !follow {
                return Exit::Ok;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
}
