//! The routes. Reads are GETs; each state change is a POST from one of our
//! own forms (Origin checked, CSRF token checked) that the executor then
//! authorizes from this process's uid like any `airlock` command.

// Helpers fail with the finished error page; one per request, never in a loop.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use airlock_ipc::client::ClientError;
use airlock_ipc::error::ErrorCode;
use airlock_ipc::message::{
    Approve, Empty, FreshnessReport, ListProposals, ProposalDetail, ProposalRef, ProposalState,
    Reject, Request, Response as IpcResponse,
};
use axum::Router;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{
    DefaultBodyLimit, Extension, Form, Path, Query, Request as HttpRequest, State,
};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::{AppState, events, ledger_status, pages, security};

/// The session's CSRF token, put on the request by [`guard`].
#[derive(Clone)]
pub struct Csrf(String);

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/login", get(login))
        .route("/static/app.css", get(css))
        .route("/static/app.js", get(js))
        .route("/", get(list))
        .route("/ledger", get(ledger))
        .route("/events", get(events::stream))
        .route("/p/{id}", get(detail))
        .route("/p/{id}/replay", get(replay))
        .route("/p/{id}/approve", post(approve))
        .route("/p/{id}/reject", post(reject))
        .route("/p/{id}/apply", post(apply))
        .fallback(not_found)
        // Forms hold an id, a hash and a note: 64 KiB is plenty.
        .layer(DefaultBodyLimit::max(64 * 1024))
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

pub fn html(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

fn refuse(status: StatusCode, title: &str, message: &str) -> Response {
    html(status, pages::message_page(title, message, Some("/")))
}

/// Before any route: the `Host` must be ours (DNS rebinding), a session is
/// needed for everything but sign-in and the static assets, and a POST must
/// come from our own origin. Every answer gets the hardening headers.
async fn guard(State(st): State<Arc<AppState>>, mut req: HttpRequest, next: Next) -> Response {
    let mut resp = match check(&st, &mut req) {
        Some(refusal) => refusal,
        None => next.run(req).await,
    };
    security::harden(resp.headers_mut());
    resp
}

/// `Some(refusal)` or `None` to go on.
fn check(st: &AppState, req: &mut HttpRequest) -> Option<Response> {
    let headers = req.headers();
    if !security::host_allowed(headers, st.listen) {
        return Some(refuse(
            StatusCode::MISDIRECTED_REQUEST,
            "Wrong host",
            &format!(
                "This review UI answers only as http://{} (or localhost with its port); the address in the browser names another host, so nothing was done.",
                st.listen
            ),
        ));
    }
    let path = req.uri().path();
    if path == "/login" || path.starts_with("/static/") {
        return None;
    }
    let Some(csrf) = st.sessions.csrf_for(headers) else {
        return Some(refuse(
            StatusCode::UNAUTHORIZED,
            "Not signed in",
            "This browser has no valid review session. Open the link `airlock review` printed in its terminal (each link works once; restart `airlock review` for a new one).",
        ));
    };
    if req.method() != Method::GET
        && req.method() != Method::HEAD
        && !security::origin_allowed(headers, st.listen)
    {
        return Some(refuse(
            StatusCode::FORBIDDEN,
            "Foreign origin",
            "Refused: this request did not come from a page of this review UI (its Origin is missing or another site's). Nothing was done.",
        ));
    }
    req.extensions_mut().insert(Csrf(csrf));
    None
}

#[derive(Deserialize)]
struct LoginQuery {
    #[serde(default)]
    secret: Option<String>,
}

async fn login(
    State(st): State<Arc<AppState>>,
    q: Result<Query<LoginQuery>, QueryRejection>,
) -> Response {
    let given = q.ok().and_then(|Query(q)| q.secret).unwrap_or_default();
    match st.sessions.login(&given) {
        Ok(cookie) => {
            let mut r = (StatusCode::SEE_OTHER, "").into_response();
            let h = r.headers_mut();
            h.insert(header::LOCATION, HeaderValue::from_static("/"));
            if let Ok(v) = HeaderValue::from_str(&security::session_cookie(&cookie)) {
                h.insert(header::SET_COOKIE, v);
            }
            r
        }
        Err(security::LoginRefusal::Stale) => refuse(
            StatusCode::FORBIDDEN,
            "Sign-in link not valid",
            "This sign-in link is not valid: it was used already, or it belongs to an earlier run of `airlock review`. Restart `airlock review` for a new link.",
        ),
        Err(security::LoginRefusal::Internal) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Cannot sign in",
            "The review UI could not create a session.",
        ),
    }
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", include_str!("assets/app.css"))
}

async fn js() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("assets/app.js"),
    )
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    let mut r = body.into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    r
}

async fn not_found() -> Response {
    refuse(StatusCode::NOT_FOUND, "Not found", "There is no such page.")
}

/// An IPC failure as a page: the executor's refusal (wrong role, unknown
/// proposal, wrong state) in its own words, or why it could not be reached.
pub fn ipc_failure(e: ClientError) -> Response {
    match e {
        ClientError::Refused(body) => {
            let status = match body.code {
                ErrorCode::RoleRequired
                | ErrorCode::UnauthorizedPeer
                | ErrorCode::Forbidden
                | ErrorCode::TenantNotAllowed
                | ErrorCode::PolicyViolation
                | ErrorCode::SecretMaterial => StatusCode::FORBIDDEN,
                ErrorCode::NotFound => StatusCode::NOT_FOUND,
                _ => StatusCode::CONFLICT,
            };
            refuse(
                status,
                "Refused by the executor",
                &format!("Refused by the executor ({}): {}", body.code, body.message),
            )
        }
        other => refuse(
            StatusCode::BAD_GATEWAY,
            "Executor unreachable",
            &other.to_string(),
        ),
    }
}

fn unexpected(r: &IpcResponse) -> Response {
    refuse(
        StatusCode::BAD_GATEWAY,
        "Unexpected answer",
        &format!("unexpected answer `{}` from the executor", r.type_name()),
    )
}

/// One request on a fresh operator connection.
async fn call(st: &AppState, request: Request) -> Result<IpcResponse, Response> {
    let mut client = st.client().await.map_err(ipc_failure)?;
    client.call(request).await.map_err(ipc_failure)
}

/// Proposal ids in links and forms: the executor's own shape, never
/// `latest` (a decision names exactly the proposal the page showed).
fn checked_id(id: &str) -> Result<&str, Response> {
    if !id.is_empty()
        && id.len() <= 128
        && id != "latest"
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        Ok(id)
    } else {
        Err(not_found_sync())
    }
}

fn not_found_sync() -> Response {
    refuse(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no such proposal.",
    )
}

/// How many ledger events there are now (taken before the page's data, so
/// the live notice misses nothing after it). `None`: the notice starts from
/// when the browser connects.
async fn events_so_far(st: &AppState) -> Option<u64> {
    match call(st, Request::Stats(Empty {})).await {
        Ok(IpcResponse::Stats(s)) => Some(s.events),
        _ => None,
    }
}

async fn fetch(st: &AppState, id: &str) -> Result<ProposalDetail, Response> {
    match call(
        st,
        Request::ShowProposal(ProposalRef {
            proposal_id: id.to_owned(),
        }),
    )
    .await?
    {
        IpcResponse::Proposal(d) => Ok(d),
        other => Err(unexpected(&other)),
    }
}

async fn list(
    State(st): State<Arc<AppState>>,
    q: Result<Query<pages::ListFilter>, QueryRejection>,
) -> Response {
    let Ok(Query(filter)) = q else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "Bad filter",
            "The filter could not be read.",
        );
    };
    let state = match filter.state.as_deref().map(str::trim) {
        None | Some("") => Some(ProposalState::PendingApproval),
        Some("all") => None,
        Some(s) => match ProposalState::parse(s) {
            Some(s) => Some(s),
            None => {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "Bad filter",
                    &format!("unknown state `{s}`"),
                );
            }
        },
    };
    let since = events_so_far(&st).await;
    match call(
        &st,
        Request::ListProposals(ListProposals {
            status: state,
            limit: Some(500),
        }),
    )
    .await
    {
        Ok(IpcResponse::Proposals(p)) => html(
            StatusCode::OK,
            pages::list_page(&p.items, &filter, state, since),
        ),
        Ok(other) => unexpected(&other),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct DetailQuery {
    #[serde(default)]
    done: Option<String>,
}

async fn detail(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    Extension(Csrf(csrf)): Extension<Csrf>,
    q: Result<Query<DetailQuery>, QueryRejection>,
) -> Response {
    let id = match checked_id(&id) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let since = events_so_far(&st).await;
    let d = match fetch(&st, id).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    // The row re-read now, for a proposal still waiting on a decision or apply.
    let fresh: Option<FreshnessReport> = if matches!(
        d.summary.state,
        ProposalState::PendingApproval | ProposalState::Approved
    ) {
        match call(
            &st,
            Request::CheckFreshness(ProposalRef {
                proposal_id: id.to_owned(),
            }),
        )
        .await
        {
            Ok(IpcResponse::Freshness(f)) => Some(f),
            Ok(other) => return unexpected(&other),
            Err(r) => return r,
        }
    } else {
        None
    };
    let done = q.ok().and_then(|Query(q)| q.done);
    html(
        StatusCode::OK,
        pages::detail_page(&d, fresh.as_ref(), &csrf, done.as_deref(), since),
    )
}

async fn replay(State(st): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    let id = match checked_id(&id) {
        Ok(id) => id,
        Err(r) => return r,
    };
    match call(
        &st,
        Request::Replay(ProposalRef {
            proposal_id: id.to_owned(),
        }),
    )
    .await
    {
        Ok(IpcResponse::Replay(story)) => html(StatusCode::OK, pages::replay_page(&story)),
        Ok(other) => unexpected(&other),
        Err(r) => r,
    }
}

async fn ledger(State(st): State<Arc<AppState>>) -> Response {
    let st2 = st.clone();
    // Reading and hashing the whole ledger is blocking work.
    let status = tokio::task::spawn_blocking(move || {
        ledger_status(st2.store.as_deref(), st2.conn.config.as_deref())
    })
    .await
    .unwrap_or_else(|_| super::LedgerStatus::Unavailable("the check stopped".into()));
    html(StatusCode::OK, pages::ledger_page(&status))
}

#[derive(Deserialize)]
struct DecisionForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    confirm_hash: Option<String>,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

/// The form, read, with its CSRF token checked against the session's.
/// A decision's id and form, both checked (the id first, as the router
/// would answer an unknown page), for approve, reject and apply.
fn checked_decision<'a>(
    id: &'a str,
    csrf: &str,
    form: Result<Form<DecisionForm>, FormRejection>,
) -> Result<(&'a str, DecisionForm), Response> {
    let id = checked_id(id)?;
    Ok((id, checked_form(csrf, form)?))
}

fn checked_form(
    csrf: &str,
    form: Result<Form<DecisionForm>, FormRejection>,
) -> Result<DecisionForm, Response> {
    let Ok(Form(f)) = form else {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "Bad form",
            "The form could not be read (send it from the proposal page). Nothing was done.",
        ));
    };
    match f.csrf.as_deref() {
        Some(given) if security::ct_eq(given, csrf) => Ok(f),
        _ => Err(refuse(
            StatusCode::FORBIDDEN,
            "Missing CSRF token",
            "Refused: the form's CSRF token is missing or wrong, so it may not have come from this review UI. Nothing was done; reload the proposal page and try again.",
        )),
    }
}

fn trimmed(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

fn see_other(to: &str) -> Response {
    let mut r = (StatusCode::SEE_OTHER, "").into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

async fn approve(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    Extension(Csrf(csrf)): Extension<Csrf>,
    form: Result<Form<DecisionForm>, FormRejection>,
) -> Response {
    let (id, f) = match checked_decision(&id, &csrf, form) {
        Ok(checked) => checked,
        Err(r) => return r,
    };
    // The reviewer confirms the hash shown: `sha256:` and at least 12 hex
    // digits, as the CLI's `--hash` (the `sha256:` may be left out).
    let given = trimmed(f.confirm_hash).unwrap_or_default();
    let given = if given.starts_with("sha256:") {
        given
    } else {
        format!("sha256:{given}")
    };
    let prefix = match super::super::operator::parse_hash_prefix(&given) {
        Ok(p) => p,
        Err(_) => {
            return refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Hash not confirmed",
                &format!(
                    "Not approved: type the proposal hash shown on the page (at least sha256: and its first {} hex digits).",
                    super::super::operator::MIN_HASH_PREFIX_HEX
                ),
            );
        }
    };
    let d = match fetch(&st, id).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    if !d.proposal_hash.to_ascii_lowercase().starts_with(&prefix) {
        return refuse(
            StatusCode::CONFLICT,
            "Hash does not match",
            &format!(
                "Not approved: proposal {} has hash {}, which does not start with what was typed. Review the proposal again.",
                d.summary.proposal_id, d.proposal_hash
            ),
        );
    }
    let req = Request::Approve(Approve {
        proposal_id: d.summary.proposal_id.clone(),
        note: trimmed(f.note),
    });
    decided(&st, req, id, "approved").await
}

async fn reject(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    Extension(Csrf(csrf)): Extension<Csrf>,
    form: Result<Form<DecisionForm>, FormRejection>,
) -> Response {
    let (id, f) = match checked_decision(&id, &csrf, form) {
        Ok(checked) => checked,
        Err(r) => return r,
    };
    let Some(reason) = trimmed(f.reason) else {
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Reason required",
            "Not rejected: give a reason; it is recorded in the ledger.",
        );
    };
    let req = Request::Reject(Reject {
        proposal_id: id.to_owned(),
        reason,
    });
    decided(&st, req, id, "rejected").await
}

/// Send a decision; on success, back to the proposal's page saying `done`.
async fn decided(st: &Arc<AppState>, req: Request, id: &str, done: &str) -> Response {
    match call(st, req).await {
        // A quorum vote that is not the last one is counted, not approved.
        Ok(IpcResponse::Decision(d)) if d.state == ProposalState::PendingApproval => {
            see_other(&format!("/p/{id}?done=counted"))
        }
        Ok(IpcResponse::Decision(_)) => see_other(&format!("/p/{id}?done={done}")),
        Ok(other) => unexpected(&other),
        Err(r) => r,
    }
}

async fn apply(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    Extension(Csrf(csrf)): Extension<Csrf>,
    form: Result<Form<DecisionForm>, FormRejection>,
) -> Response {
    let id = match checked_decision(&id, &csrf, form) {
        Ok((id, _)) => id,
        Err(r) => return r,
    };
    match call(
        &st,
        Request::Apply(ProposalRef {
            proposal_id: id.to_owned(),
        }),
    )
    .await
    {
        Ok(IpcResponse::Writeback(r)) => {
            let status = match r.status.as_str() {
                "applied" | "already_applied" => StatusCode::OK,
                "conflict" => StatusCode::CONFLICT,
                _ => StatusCode::BAD_GATEWAY,
            };
            html(status, pages::apply_page(&r))
        }
        Ok(other) => unexpected(&other),
        Err(r) => r,
    }
}
