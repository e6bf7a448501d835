//! Server-rendered HTML. Every value that came from the executor, the
//! database or the browser goes through [`h`]: steering characters (controls,
//! bidi overrides) become visible escapes exactly as in the terminal output,
//! then HTML's special characters become entities. Pages carry no inline
//! script or style (the CSP forbids both); forms work without JavaScript.

use std::fmt::Write as _;

use airlock_ipc::message::{
    Freshness, FreshnessReport, ProposalDetail, ProposalState, ProposalSummary, ReplayStory,
    WritebackResult,
};
use serde_json::Value;

use super::super::output::{escape, escape_lines};

/// One displayed value, safe in HTML text and in a quoted attribute.
pub fn h(s: &str) -> String {
    entities(&escape(s))
}

/// A preformatted block (pretty JSON): like [`h`], but its own line breaks
/// and tabs are kept.
fn h_block(s: &str) -> String {
    entities(&escape_lines(s))
}

fn entities(shown: &str) -> String {
    let mut out = String::with_capacity(shown.len() + 8);
    for c in shown.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A JSON value as a person reads it: strings quoted, the rest as JSON.
fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => h(&format!("\"{s}\"")),
        other => h(&other.to_string()),
    }
}

/// A path segment for a link (proposal ids are `[A-Za-z0-9_]`, but links
/// must stay links whatever an id holds).
fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The whole page around `body`.
pub fn layout(title: &str, body: &str) -> String {
    layout_live(title, body, None)
}

/// [`layout`] for a page rendered after ledger event `since`: its live
/// notice reports every event after that one.
pub fn layout_live(title: &str, body: &str, since: Option<u64>) -> String {
    let since = since.map_or(String::new(), |n| format!(" data-since=\"{n}\""));
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{t} — Airlock review</title>\
<link rel=\"stylesheet\" href=\"/static/app.css\">\
<script src=\"/static/app.js\" defer></script></head>\
<body><header><nav aria-label=\"main\"><a class=\"brand\" href=\"/\">Airlock review</a> \
<a href=\"/\">Pending</a> <a href=\"/?state=all\">All proposals</a> <a href=\"/ledger\">Ledger</a></nav>\
<p id=\"live\" role=\"status\" aria-live=\"polite\"{since}></p></header>\
<main>{body}</main></body></html>\n",
        t = h(title)
    )
}

/// A refusal or failure, said plainly.
pub fn message_page(title: &str, message: &str, back: Option<&str>) -> String {
    let back = back.map_or(String::new(), |b| {
        format!("<p><a href=\"{}\">Back</a></p>", h(b))
    });
    layout(
        title,
        &format!(
            "<h1>{}</h1><p class=\"error\" id=\"message\">{}</p>{back}",
            h(title),
            h(message)
        ),
    )
}

/// "3m", "2h 5m", "4d 1h".
fn span(secs: i64) -> String {
    let s = secs.abs();
    let (d, hr, m) = (s / 86_400, (s % 86_400) / 3600, (s % 3600) / 60);
    if d > 0 {
        format!("{d}d {hr}h")
    } else if hr > 0 {
        format!("{hr}h {m}m")
    } else if m > 0 {
        format!("{m}m")
    } else {
        format!("{s}s")
    }
}

fn seconds_since(at: &str) -> Option<i64> {
    let t = chrono::DateTime::parse_from_rfc3339(at).ok()?;
    Some((chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds())
}

fn age(created_at: &str) -> String {
    seconds_since(created_at).map_or_else(|| h(created_at), |s| format!("{} ago", span(s)))
}

fn expiry(expires_at: &str) -> String {
    match seconds_since(expires_at) {
        Some(s) if s >= 0 => format!("<span class=\"bad\">expired {} ago</span>", span(s)),
        Some(s) => format!("in {}", span(s)),
        None => h(expires_at),
    }
}

/// What the list page filters by.
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct ListFilter {
    /// A state name, or `all`; default `pending_approval`.
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub capability: Option<String>,
    #[serde(default)]
    pub tenant: Option<String>,
}

impl ListFilter {
    pub fn keeps(&self, p: &ProposalSummary) -> bool {
        let matches = |want: &Option<String>, have: &str| {
            want.as_deref()
                .map(str::trim)
                .is_none_or(|w| w.is_empty() || have.contains(w))
        };
        matches(&self.capability, &p.capability) && matches(&self.tenant, &p.tenant_id)
    }
}

pub fn list_page(
    items: &[ProposalSummary],
    filter: &ListFilter,
    state: Option<ProposalState>,
    since: Option<u64>,
) -> String {
    let mut b = String::new();
    let _ = write!(
        b,
        "<h1>{}</h1>",
        match state {
            Some(ProposalState::PendingApproval) => "Pending proposals".to_owned(),
            Some(s) => format!("Proposals: {}", s.as_str()),
            None => "All proposals".to_owned(),
        }
    );
    // A GET form: filtering is a link, bookmarkable, no JavaScript.
    let current = state.map_or("all", |s| s.as_str());
    let mut options = String::new();
    for name in std::iter::once("all").chain(ProposalState::ALL.iter().map(|s| s.as_str())) {
        let _ = write!(
            options,
            "<option value=\"{name}\"{}>{name}</option>",
            if name == current { " selected" } else { "" }
        );
    }
    let _ = write!(
        b,
        "<form class=\"filters\" method=\"get\" action=\"/\">\
<label>State <select name=\"state\">{options}</select></label> \
<label>Capability <input name=\"capability\" value=\"{}\"></label> \
<label>Tenant <input name=\"tenant\" value=\"{}\"></label> \
<button type=\"submit\">Filter</button></form>",
        h(filter.capability.as_deref().unwrap_or("")),
        h(filter.tenant.as_deref().unwrap_or(""))
    );
    let shown: Vec<&ProposalSummary> = items.iter().filter(|p| filter.keeps(p)).collect();
    if shown.is_empty() {
        b.push_str("<p id=\"empty\">No proposals match.</p>");
        return layout_live("Proposals", &b, since);
    }
    b.push_str(
        "<table id=\"proposals\"><thead><tr><th scope=\"col\">Proposal</th><th scope=\"col\">State</th>\
<th scope=\"col\">Capability</th><th scope=\"col\">Tenant</th><th scope=\"col\">Object</th>\
<th scope=\"col\">Age</th><th scope=\"col\">Expires</th><th scope=\"col\">Needs role</th></tr></thead><tbody>",
    );
    for p in shown {
        let _ = write!(
            b,
            "<tr><td><a href=\"/p/{}\">{}</a></td><td class=\"state-{st}\">{st}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            seg(&p.proposal_id),
            h(&p.proposal_id),
            h(&p.capability),
            h(&p.tenant_id),
            h(&p.object_id),
            age(&p.created_at),
            expiry(&p.expires_at),
            h(p.required_role.as_deref().unwrap_or("any approver")),
            st = p.state.as_str(),
        );
    }
    b.push_str("</tbody></table>");
    layout_live("Proposals", &b, since)
}

fn freshness_html(f: Option<&FreshnessReport>, state: ProposalState) -> String {
    let Some(f) = f else {
        return format!(
            "<p id=\"freshness\" class=\"muted\">Not checked: the proposal is {}.</p>",
            state.as_str()
        );
    };
    let at = h(&f.checked_at);
    match f.freshness {
        Freshness::Current => format!(
            "<p id=\"freshness\" class=\"good\"><strong>Still current</strong>: the row was re-read at {at} and every guard holds.</p>"
        ),
        Freshness::Changed => format!(
            "<p id=\"freshness\" class=\"bad\"><strong>Changed since proposal</strong> (re-read at {at}): {} no longer hold; applying would be a conflict.</p>",
            h(&f.changed.join(", "))
        ),
        Freshness::Gone => format!(
            "<p id=\"freshness\" class=\"bad\"><strong>Row gone</strong> (re-read at {at}): no row with that key for this tenant.</p>"
        ),
        Freshness::Unavailable => format!(
            "<p id=\"freshness\" class=\"warn\"><strong>Unknown</strong>: the row could not be re-read ({}).</p>",
            h(f.detail.as_deref().unwrap_or("no detail"))
        ),
    }
}

/// A fixed notice after a decision (never text from the request).
pub fn notice(done: Option<&str>) -> &'static str {
    match done {
        Some("approved") => {
            "<p id=\"notice\" class=\"good\">Approved. The decision and its note are in the ledger.</p>"
        }
        Some("rejected") => {
            "<p id=\"notice\" class=\"good\">Rejected. The reason is in the ledger.</p>"
        }
        Some("counted") => {
            "<p id=\"notice\" class=\"good\">Your approval is counted. The proposal waits for approvals from other approvers.</p>"
        }
        _ => "",
    }
}

pub fn detail_page(
    d: &ProposalDetail,
    fresh: Option<&FreshnessReport>,
    csrf: &str,
    done: Option<&str>,
    since: Option<u64>,
) -> String {
    let s = &d.summary;
    let cs = &d.change_set;
    let id = seg(&s.proposal_id);
    let mut b = String::new();
    let _ = write!(
        b,
        "<h1>Proposal <code>{}</code> <span class=\"state-{st}\">{st}</span></h1>{}",
        h(&s.proposal_id),
        notice(done),
        st = s.state.as_str()
    );
    b.push_str(&freshness_html(fresh, s.state));
    let _ = write!(
        b,
        "<dl class=\"facts\"><dt>Capability</dt><dd>{}</dd><dt>Tenant</dt><dd>{}</dd>\
<dt>Object</dt><dd>{}.{} where {} = {}</dd><dt>Proposed</dt><dd>by principal {} (OS user {} uid {}) at {} ({})</dd>\
<dt>Expires</dt><dd>{} ({})</dd><dt>Required role</dt><dd id=\"role\">{}</dd>{}\
<dt>Proposal hash</dt><dd><code id=\"hash\">{}</code></dd></dl>",
        h(&s.capability),
        h(&s.tenant_id),
        h(&cs.target.schema),
        h(&cs.target.table),
        h(&cs.target.primary_key.column),
        h(&cs.object_id()),
        h(&d.principal),
        h(d.proposed_by.user.as_deref().unwrap_or("?")),
        d.proposed_by.uid,
        h(&s.created_at),
        age(&s.created_at),
        h(&s.expires_at),
        expiry(&s.expires_at),
        h(s.required_role.as_deref().unwrap_or("any approver")),
        s.quorum.as_ref().map_or(String::new(), |q| format!(
            "<dt>Approvals</dt><dd id=\"quorum\">{}/{} distinct approvers</dd>",
            q.approvals, q.required
        )),
        h(&d.proposal_hash),
    );
    b.push_str("<h2>Change</h2><table id=\"diff\"><thead><tr><th scope=\"col\">Column</th><th scope=\"col\">Before</th><th scope=\"col\">Proposed</th></tr></thead><tbody>");
    for (col, before, after) in &cs.diff() {
        let _ = write!(
            b,
            "<tr><th scope=\"row\">{}</th><td class=\"before\">{}</td><td class=\"after\">{}</td></tr>",
            h(col),
            value_text(before),
            value_text(after)
        );
    }
    b.push_str("</tbody></table>");
    if let Some(set) = &cs.set {
        let _ = write!(
            b,
            "<p id=\"set\">Bounded set: {} of at most {} rows, frozen (digest <code>{}</code>).",
            set.row_count,
            set.max_rows,
            h(&set.set_digest)
        );
        for bound in &set.aggregate_bounds {
            let _ = write!(
                b,
                " Total {} of {}: {} (at most {}).",
                bound.measure.as_str(),
                h(&bound.column),
                value_text(&bound.actual),
                bound.maximum
            );
        }
        b.push_str("</p>");
    }
    b.push_str("<h2>Guards <small>(checked again at apply time)</small></h2><ul id=\"guards\">");
    if let Some(t) = &cs.guards.tenant {
        let _ = write!(
            b,
            "<li>{} must be {}</li>",
            h(&t.column),
            value_text(&t.value)
        );
    }
    if let Some(p) = &cs.guards.principal {
        let _ = write!(
            b,
            "<li>{} must be {} (principal scope)</li>",
            h(&p.column),
            value_text(&p.value)
        );
    }
    if let Some(v) = &cs.guards.expected_version {
        let _ = write!(
            b,
            "<li>{} must still be {} (else: conflict, nothing changes)</li>",
            h(&v.column),
            value_text(&v.value)
        );
    }
    if let Some(rh) = &cs.guards.row_hash {
        let _ = write!(
            b,
            "<li>the visible row must still hash to <code>{}</code> (weak guard)</li>",
            h(rh)
        );
    }
    for t in &cs.guards.transitions {
        let _ = write!(
            b,
            "<li>transition {}: {} → {}</li>",
            h(&t.column),
            value_text(&t.from),
            value_text(&t.to)
        );
    }
    let _ = write!(
        b,
        "<li>only these columns may change: {}</li></ul>",
        h(&cs.guards.allowed_columns.join(", "))
    );
    match &d.evidence {
        Some(ev) => {
            let _ = write!(
                b,
                "<h2>Evidence: the row the model read</h2><p>{} — read by {} at {} with the reviewed query <code>{}</code></p>",
                h(&ev.evidence_id),
                h(ev.recorded_by.user.as_deref().unwrap_or("?")),
                h(&ev.recorded_at),
                h(&ev.query_fingerprint)
            );
            for row in &ev.rows {
                b.push_str("<table class=\"evidence\"><tbody>");
                for (k, v) in row {
                    let _ = write!(
                        b,
                        "<tr><th scope=\"row\">{}</th><td>{}</td></tr>",
                        h(k),
                        value_text(v)
                    );
                }
                b.push_str("</tbody></table>");
            }
        }
        None => b.push_str("<h2>Evidence</h2><p>None recorded.</p>"),
    }
    if !d.decisions.is_empty() {
        b.push_str("<h2>Decisions</h2><ul id=\"decisions\">");
        for dec in &d.decisions {
            let _ = write!(
                b,
                "<li>{}</li>",
                super::super::output::decision_line(dec, h)
            );
        }
        b.push_str("</ul>");
    }
    let csrf = h(csrf);
    match s.state {
        ProposalState::PendingApproval => {
            let _ = write!(
                b,
                "<section class=\"decide\"><h2>Approve</h2>\
<form id=\"approve\" method=\"post\" action=\"/p/{id}/approve\">\
<input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<p><label for=\"confirm_hash\">Type the proposal hash shown above (at least <code>sha256:</code> and its first 12 hex digits) to confirm this is the change you reviewed</label>\
<input id=\"confirm_hash\" name=\"confirm_hash\" required autocomplete=\"off\" spellcheck=\"false\" size=\"40\"></p>\
<p><label for=\"note\">Note (recorded in the ledger)</label><textarea id=\"note\" name=\"note\" rows=\"2\" maxlength=\"2000\"></textarea></p>\
<p><button type=\"submit\">Approve</button></p></form>\
<h2>Reject</h2><form id=\"reject\" method=\"post\" action=\"/p/{id}/reject\">\
<input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<p><label for=\"reason\">Reason (required, recorded in the ledger)</label><textarea id=\"reason\" name=\"reason\" rows=\"2\" required maxlength=\"2000\"></textarea></p>\
<p><button type=\"submit\">Reject</button></p></form></section>"
            );
        }
        ProposalState::Approved => {
            let _ = write!(
                b,
                "<section class=\"decide\"><h2>Apply</h2><p>The executor re-reads the row, checks every guard, and writes exactly once; a changed row is a conflict and nothing changes.</p>\
<form id=\"apply\" method=\"post\" action=\"/p/{id}/apply\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<button type=\"submit\">Apply</button></form></section>"
            );
        }
        _ => {}
    }
    let _ = write!(
        b,
        "<p><a id=\"replay-link\" href=\"/p/{id}/replay\">Replay timeline</a></p>"
    );
    layout_live(&format!("Proposal {}", s.proposal_id), &b, since)
}

/// The outcome of an apply, with its receipt.
pub fn apply_page(r: &WritebackResult) -> String {
    let (class, headline) = match r.status.as_str() {
        "applied" => (
            "good",
            "Applied: the change was made once, in one guarded transaction.",
        ),
        "already_applied" => ("good", "Already applied: nothing was written again."),
        "conflict" => (
            "bad",
            "Conflict: the row changed since the proposal; nothing was changed. Ask the agent for a fresh proposal.",
        ),
        _ => ("bad", "Failed: nothing was changed."),
    };
    let receipt = serde_json::to_string_pretty(&r.receipt).unwrap_or_default();
    let id = seg(&r.proposal_id);
    layout(
        "Apply",
        &format!(
            "<h1>Apply {}</h1><p id=\"outcome\" class=\"{class}\"><strong>{}</strong> — {headline}</p>{}\
<h2>Receipt</h2><pre id=\"receipt\">{}</pre>\
<p><a href=\"/p/{id}\">Back to the proposal</a> · <a href=\"/p/{id}/replay\">Replay timeline</a></p>",
            h(&r.proposal_id),
            h(&r.status),
            r.detail
                .as_deref()
                .map_or(String::new(), |d| format!("<p id=\"detail\">{}</p>", h(d))),
            h_block(&receipt),
        ),
    )
}

/// The whole story of a proposal: the same lines as `airlock replay show
/// --details`, then the ledger events with their chain links.
pub fn replay_page(story: &ReplayStory) -> String {
    let s = &story.proposal.summary;
    let text = super::super::writeback_cmd::replay_text(story, true);
    let mut b = format!(
        "<h1>Replay of <code>{}</code></h1><ul id=\"timeline\">",
        h(&s.proposal_id)
    );
    for line in text.lines().skip(1) {
        let _ = write!(b, "<li>{}</li>", h(line.trim()));
    }
    b.push_str("</ul><h2>Ledger events</h2><table id=\"events\"><thead><tr><th scope=\"col\">Seq</th><th scope=\"col\">At</th><th scope=\"col\">Event</th><th scope=\"col\">By</th><th scope=\"col\">Chain link</th></tr></thead><tbody>");
    for e in &story.events {
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            e.seq,
            h(&e.at),
            h(&e.kind),
            e.actor.as_ref().map_or(String::new(), |a| format!(
                "{} (uid {})",
                h(a.user.as_deref().unwrap_or("?")),
                a.uid
            )),
            h(&e.hash)
        );
    }
    let _ = write!(
        b,
        "</tbody></table><p><a href=\"/p/{}\">Back to the proposal</a></p>",
        seg(&s.proposal_id)
    );
    layout(&format!("Replay {}", s.proposal_id), &b)
}

/// The ledger's chain check, as `airlock ledger verify` reports it.
pub fn ledger_page(status: &super::LedgerStatus) -> String {
    use super::LedgerStatus;
    let body = match status {
        LedgerStatus::Intact {
            path,
            events,
            head,
            start_seq,
        } => format!(
            "<p id=\"verify\" class=\"good\"><strong>Intact</strong>: {} — {events} events, hash chain verified{} (head <code>{}</code>).</p>",
            h(path),
            if *start_seq > 0 {
                format!(", continuing from pruned event {start_seq}")
            } else {
                String::new()
            },
            h(head)
        ),
        LedgerStatus::Broken {
            path,
            events,
            seq,
            reason,
        } => format!(
            "<p id=\"verify\" class=\"bad\"><strong>BROKEN</strong>: {} — the chain breaks at event {seq}: {}. The {events} events before it verify; keep the file and restore from a backup.</p>",
            h(path),
            h(reason)
        ),
        LedgerStatus::Unavailable(why) => format!(
            "<p id=\"verify\" class=\"warn\"><strong>Not checked</strong>: {}. Run <code>airlock ledger verify</code> on the executor's host.</p>",
            h(why)
        ),
    };
    layout("Ledger", &format!("<h1>Ledger verify</h1>{body}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escaping_covers_markup_controls_and_bidi() {
        assert_eq!(
            h("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
        // Steering characters become the same visible escapes as in the terminal.
        assert_eq!(h("a\u{202e}b\nc\u{1b}"), "a\\u{202e}b\\nc\\u{1b}");
        assert_eq!(seg("wrp_1/../x"), "wrp_1%2F%2E%2E%2Fx");
        // Blocks keep their own line breaks, nothing else.
        assert_eq!(
            h_block("{\n\t\"<\u{1b}\"\n}"),
            "{\n\t&quot;&lt;\\u{1b}&quot;\n}"
        );
    }

    fn detail(state: &str) -> ProposalDetail {
        serde_json::from_value(serde_json::json!({
            "summary": {
                "proposal_id": "wrp_1", "capability": "orders.propose_status_change",
                "tenant_id": "acme", "object_id": "O-1002", "state": state,
                "required_role": "ops_lead", "created_at": "2026-01-01T00:00:00Z",
                "expires_at": "2026-01-02T00:00:00Z"
            },
            "proposal_hash": "sha256:00ff",
            "change_set": {
                "capability": "orders.propose_status_change", "args": {},
                "tenant_id": "acme", "principal": "agent_17",
                "target": {"schema": "main", "table": "orders",
                           "primary_key": {"column": "id", "value": "O-1002"}},
                "before": {"status": "processing"}, "patch": {"status": "shipped"},
                "after": {"status": "shipped"},
                "guards": {"tenant": {"column": "tenant_id", "value": "acme"},
                           "allowed_columns": ["status"], "expected_version": null,
                           "row_hash": null,
                           "transitions": [{"column": "status", "from": "processing", "to": "shipped"}]}
            },
            "principal": "agent_17",
            "proposed_by": {"uid": 1000, "user": "agent"},
            "evidence": null,
            "decisions": [{"proposal_id": "wrp_1", "state": "approved",
                           "by": {"uid": 0, "user": "root"}, "at": "2026-01-01T00:01:00Z",
                           "note": "ok <b>now</b>"}]
        }))
        .unwrap()
    }

    #[test]
    fn the_page_shows_transitions_and_offers_only_the_next_step() {
        let pending = detail_page(&detail("pending_approval"), None, "tok", None, Some(7));
        assert!(
            pending.contains("transition status: &quot;processing&quot; → &quot;shipped&quot;")
        );
        assert!(
            pending.contains("ok &lt;b&gt;now&lt;/b&gt;"),
            "notes are escaped"
        );
        assert!(pending.contains("id=\"approve\"") && pending.contains("id=\"reject\""));
        assert!(pending.contains("name=\"confirm_hash\" required"));
        assert!(pending.contains("name=\"csrf\" value=\"tok\""));
        assert!(pending.contains("data-since=\"7\""));
        assert!(!pending.contains("id=\"apply\""));
        let approved = detail_page(&detail("approved"), None, "tok", Some("approved"), None);
        assert!(approved.contains("id=\"apply\"") && approved.contains("id=\"notice\""));
        assert!(!approved.contains("id=\"approve\""));
        let applied = detail_page(&detail("applied"), None, "tok", Some("<x>"), None);
        assert!(!applied.contains("<form") && !applied.contains("<x>"));
    }

    #[test]
    fn a_set_shows_each_member_its_totals_and_the_quorum() {
        let mut d = detail("pending_approval");
        d.summary.quorum = Some(
            serde_json::from_value(serde_json::json!({"approvals": 1, "required": 2})).unwrap(),
        );
        d.change_set.set = Some(
            serde_json::from_value(serde_json::json!({
                "max_rows": 10, "row_count": 2,
                "aggregate_bounds": [{"column": "cost_cents", "measure": "before", "maximum": 50000.0, "actual": 23000}],
                "members": [
                    {"primary_key": "T-01", "before": {"status": "overdue", "cost_cents": 8000}, "after": {"status": "closed", "cost_cents": 8000}},
                    {"primary_key": "T-02", "before": {"status": "overdue", "cost_cents": 15000}, "after": {"status": "closed", "cost_cents": 15000}}
                ],
                "set_digest": "sha256:125f9d6d6feca7f26371ce9bb29933d6904828bc6c98ec5a231efbe07af0212f"
            }))
            .unwrap(),
        );
        let page = detail_page(&d, None, "tok", None, None);
        assert!(page.contains("<th scope=\"row\">T-01.status</th><td class=\"before\">&quot;overdue&quot;</td><td class=\"after\">&quot;closed&quot;</td>"), "{page}");
        assert!(page.contains("T-02.status"));
        assert!(
            !page.contains("T-01.cost_cents"),
            "unchanged columns are not listed"
        );
        assert!(page.contains("Bounded set: 2 of at most 10 rows"));
        assert!(page.contains("Total before of cost_cents: 23000 (at most 50000)"));
        assert!(page.contains("<dd id=\"quorum\">1/2 distinct approvers</dd>"));
        assert!(page.contains("where id = set_125f9d6d"));
        let single = detail_page(&detail("pending_approval"), None, "tok", None, None);
        assert!(!single.contains("id=\"quorum\"") && !single.contains("id=\"set\""));
        assert!(single.contains("where id = O-1002"));
    }

    #[test]
    fn list_filter_matches_substrings_and_ignores_blanks() {
        let p = ProposalSummary {
            proposal_id: "wrp_1".into(),
            capability: "billing.propose_late_fee_waiver".into(),
            tenant_id: "acme".into(),
            object_id: "INV-1".into(),
            state: ProposalState::PendingApproval,
            required_role: None,
            created_at: "2026-01-01T00:00:00Z".into(),
            expires_at: "2026-01-02T00:00:00Z".into(),
            quorum: None,
        };
        let f = |c: &str, t: &str| ListFilter {
            state: None,
            capability: Some(c.into()),
            tenant: Some(t.into()),
        };
        assert!(f("", " ").keeps(&p));
        assert!(f("billing", "acme").keeps(&p));
        assert!(!f("orders", "").keeps(&p));
        assert!(!f("", "globex").keeps(&p));
    }
}
