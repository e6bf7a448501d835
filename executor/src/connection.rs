//! One peer connection: authorize by peer uid before reading a byte, then
//! handshake, then one request at a time until the peer leaves, idles out,
//! breaks the protocol, or the executor shuts down.

use std::sync::Arc;

use airlock_ipc::error::{ErrorBody, ErrorCode};
use airlock_ipc::frame::{FrameError, read_frame_timed, write_frame};
use airlock_ipc::limits::{
    FRAME_TIMEOUT, HANDSHAKE_TIMEOUT, IDLE_TIMEOUT, MAX_FRAME_BYTES, MAX_JSON_DEPTH,
    MAX_ROWS_PER_READ, WRITE_TIMEOUT,
};
use airlock_ipc::message::{
    LimitsInfo, PeerInfo, Request, RequestFrame, Response, ResponseFrame, Welcome,
};
use airlock_ipc::transport::{IpcStream, PeerCredentials};
use airlock_ipc::{PROTOCOL, Role};
use tokio::sync::watch;

use crate::authority::{Authority, Peer};
use crate::daemon::{ConnectionCounter, describe_peer};
use crate::{intake, refusal_log, review};

/// What to do after answering.
enum Next {
    Continue,
    Close,
}

/// Write one answer within [`WRITE_TIMEOUT`]. `false`: the peer is gone or
/// stopped reading, and the connection must be closed (freeing its slot).
async fn send(stream: &mut IpcStream, frame: ResponseFrame) -> bool {
    match tokio::time::timeout(WRITE_TIMEOUT, write_frame(stream, &frame.encode())).await {
        Ok(written) => written.is_ok(),
        Err(_) => {
            if refusal_log::admit("write_timeout") {
                tracing::warn!(
                    "closing a connection: the peer did not read its answer within {WRITE_TIMEOUT:?}"
                );
            }
            false
        }
    }
}

/// Answer with an error. `false`: the peer is gone or stopped reading.
async fn refuse(
    stream: &mut IpcStream,
    id: u64,
    code: ErrorCode,
    message: impl Into<String>,
) -> bool {
    send(
        stream,
        ResponseFrame::error(id, ErrorBody::new(code, message)),
    )
    .await
}

pub async fn serve_connection(
    auth: Arc<Authority>,
    counter: Arc<ConnectionCounter>,
    mut stream: IpcStream,
    creds: PeerCredentials,
    role: Role,
    mut shutdown: watch::Receiver<bool>,
) {
    let who = describe_peer(&creds);
    // Authorize on the kernel's word before reading anything from the peer.
    if !auth.peers.may_connect(role, creds.uid) {
        if refusal_log::admit("unauthorized_peer") {
            tracing::warn!(peer = %who, socket = role.as_str(), "refused: peer not authorized for this socket");
        }
        refuse(
            &mut stream,
            0,
            ErrorCode::UnauthorizedPeer,
            format!(
                "OS uid {} may not use the {} socket (see the `airlock` section of the config)",
                creds.uid,
                role.as_str()
            ),
        )
        .await;
        return;
    }
    let Some(_slot) = counter.acquire(role, creds.uid) else {
        if refusal_log::admit("connection_limit") {
            tracing::warn!(peer = %who, socket = role.as_str(), "refused: connection limit reached");
        }
        refuse(
            &mut stream,
            0,
            ErrorCode::Busy,
            format!(
                "too many connections on the {} socket; try again later",
                role.as_str()
            ),
        )
        .await;
        return;
    };
    let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(creds.uid))
        .ok()
        .flatten()
        .map(|u| u.name);
    let peer = Peer { creds, user };

    // Handshake.
    // The whole hello, not just its first byte, must arrive within the
    // handshake timeout: a client trickling it would otherwise hold a
    // connection slot for the handshake plus a frame timeout.
    let hello = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        read_frame_timed(&mut stream, HANDSHAKE_TIMEOUT, FRAME_TIMEOUT),
    )
    .await
    .unwrap_or(Err(FrameError::Timeout));
    let hello = match hello {
        Ok(Some(body)) => RequestFrame::decode(&body),
        Ok(None) => return,
        Err(e) => {
            answer_frame_error(&mut stream, &who, e).await;
            return;
        }
    };
    let id = match hello {
        Ok(RequestFrame {
            id,
            request: Request::Hello(h),
            ..
        }) => {
            if h.protocol != PROTOCOL {
                refuse(&mut stream, id, ErrorCode::UnsupportedVersion, format!("this executor speaks {PROTOCOL}; upgrade the client or the executor so they match")).await;
                return;
            }
            if h.role != role {
                if refusal_log::admit("role_mismatch") {
                    tracing::warn!(peer = %who, socket = role.as_str(), claimed = h.role.as_str(), "refused: role does not match the socket");
                }
                refuse(
                    &mut stream,
                    id,
                    ErrorCode::RoleMismatch,
                    format!(
                        "this is the {} socket; connect to the {} socket instead",
                        role.as_str(),
                        h.role.as_str()
                    ),
                )
                .await;
                return;
            }
            id
        }
        Ok(RequestFrame { id, .. }) => {
            refuse(
                &mut stream,
                id,
                ErrorCode::HandshakeRequired,
                "send `hello` first",
            )
            .await;
            return;
        }
        Err((id, e)) => {
            refuse(&mut stream, id.unwrap_or(0), e.code(), e.to_string()).await;
            return;
        }
    };
    let welcome = Welcome {
        protocol: PROTOCOL.to_owned(),
        role,
        server_version: env!("CARGO_PKG_VERSION").to_owned(),
        peer: PeerInfo {
            uid: peer.creds.uid,
            gid: peer.creds.gid,
            pid: peer.creds.pid,
            user: peer.user.clone(),
        },
        config_hash: auth.config_hash.clone(),
        limits: LimitsInfo {
            max_frame_bytes: MAX_FRAME_BYTES as u64,
            max_json_depth: MAX_JSON_DEPTH as u64,
            max_rows_per_read: MAX_ROWS_PER_READ as u64,
        },
    };
    if !send(
        &mut stream,
        ResponseFrame {
            id,
            response: Response::Welcome(welcome),
        },
    )
    .await
    {
        return;
    }

    loop {
        let read = tokio::select! {
            r = read_frame_timed(&mut stream, IDLE_TIMEOUT, FRAME_TIMEOUT) => r,
            _ = shutdown.changed() => return,
        };
        let body = match read {
            Ok(Some(body)) => body,
            Ok(None) => return,
            Err(e) => {
                answer_frame_error(&mut stream, &who, e).await;
                return;
            }
        };
        let (id, request, traceparent) = match RequestFrame::decode(&body) {
            Ok(f) => (f.id, f.request, f.traceparent),
            Err((id, e)) => {
                tracing::debug!(peer = %who, code = %e.code(), "undecodable request");
                let answered = refuse(&mut stream, id.unwrap_or(0), e.code(), e.to_string()).await;
                if !answered || e.code() == ErrorCode::MalformedFrame {
                    return;
                }
                continue;
            }
        };
        let message = request.type_name();
        let started = std::time::Instant::now();
        // This request's span joins the caller's trace when it sent one
        // (exported only with --otel-traces-endpoint).
        let span = tracing::debug_span!(
            target: airlock_proposer::telemetry::TARGET,
            "airlock.ipc",
            otel.name = message,
            ipc.message = message,
            otel.kind = "server"
        );
        if let Some(parent) = &traceparent {
            airlock_proposer::telemetry::continue_trace(&span, parent);
        }
        let (response, next) = {
            use tracing::Instrument as _;
            handle(&auth, &counter, &peer, role, request)
                .instrument(span)
                .await
        };
        let outcome = match &response {
            Response::Error(body) => body.code.as_str(),
            Response::Writeback(w) => {
                crate::metrics_endpoint::record_apply(&w.status);
                "ok"
            }
            _ => "ok",
        };
        crate::metrics_endpoint::record_request(message, outcome, started.elapsed());
        if !send(&mut stream, ResponseFrame { id, response }).await {
            return;
        }
        if matches!(next, Next::Close) {
            return;
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

async fn answer_frame_error(stream: &mut IpcStream, who: &str, e: FrameError) {
    let code = match e {
        FrameError::TooLarge(_) => ErrorCode::FrameTooLarge,
        FrameError::Io(_) | FrameError::Truncated => return,
        _ => ErrorCode::MalformedFrame,
    };
    tracing::debug!(peer = %who, error = %e, "closing after a frame error");
    refuse(stream, 0, code, e.to_string()).await;
}

fn reply<T>(r: Result<T, ErrorBody>, wrap: fn(T) -> Response) -> (Response, Next) {
    match r {
        Ok(v) => (wrap(v), Next::Continue),
        Err(e) => (Response::Error(e), Next::Continue),
    }
}

async fn handle(
    auth: &Authority,
    counter: &ConnectionCounter,
    peer: &Peer,
    role: Role,
    request: Request,
) -> (Response, Next) {
    if matches!(request, Request::Hello(_)) {
        return (
            Response::Error(ErrorBody::new(
                ErrorCode::HandshakeRequired,
                "`hello` is allowed once, at the start",
            )),
            Next::Close,
        );
    }
    if !request.allowed_for(role) && refusal_log::admit("forbidden_message") {
        tracing::warn!(
            peer = %describe_peer(&peer.creds),
            socket = role.as_str(),
            message = request.type_name(),
            "refused: message not allowed for this role; closing the connection"
        );
    }
    if !request.allowed_for(role) {
        let msg = format!(
            "`{}` is not allowed on the {} socket",
            request.type_name(),
            role.as_str()
        );
        return (
            Response::Error(ErrorBody::new(ErrorCode::Forbidden, msg)),
            Next::Close,
        );
    }
    match request {
        Request::Hello(_) => (
            Response::Error(ErrorBody::new(
                ErrorCode::HandshakeRequired,
                "unexpected hello",
            )),
            Next::Close,
        ),
        Request::RecordRead(r) => reply(
            intake::record_read(auth, peer, r).await,
            Response::ReadRecorded,
        ),
        Request::SubmitProposal(r) => reply(
            intake::submit_proposal(auth, peer, r).await,
            Response::ProposalRecorded,
        ),
        Request::ProposalStatus(r) => reply(
            intake::proposal_status(auth, peer, r).await,
            Response::ProposalStatus,
        ),
        Request::ListProposals(r) => reply(review::list(auth, r).await, Response::Proposals),
        Request::ShowProposal(r) => reply(review::show(auth, r).await, Response::Proposal),
        Request::Approve(r) => reply(review::approve(auth, peer, r).await, Response::Decision),
        Request::Reject(r) => reply(review::reject(auth, peer, r).await, Response::Decision),
        Request::EventsSince(r) => reply(review::events(auth, r).await, Response::Events),
        Request::Stats(_) => reply(review::stats(auth, counter.total()).await, Response::Stats),
        Request::Apply(r) => reply(
            crate::writeback::apply::apply(auth, peer, &r.proposal_id).await,
            Response::Writeback,
        ),
        Request::Replay(r) => reply(review::replay(auth, r).await, Response::Replay),
        Request::ShowEvidence(r) => reply(review::evidence(auth, r).await, Response::Evidence),
        Request::CheckFreshness(r) => reply(review::freshness(auth, r).await, Response::Freshness),
        Request::PruneLedger(r) => reply(
            crate::lifecycle::prune(auth, peer, r).await,
            Response::Pruned,
        ),
        Request::NotificationStatus(_) => reply(
            crate::notify::status(auth).await,
            Response::NotificationStatus,
        ),
        Request::TestNotification(r) => reply(
            crate::notify::test(auth, r.sink.as_deref()).await,
            Response::NotificationTest,
        ),
        Request::Revert(r) => reply(
            crate::revert::revert(auth, peer, r).await,
            Response::ProposalRecorded,
        ),
        Request::ExploreReserve(r) => reply(
            crate::explore::explore_reserve(auth, peer, r).await,
            Response::ExploreReserved,
        ),
        Request::ExploreCommit(r) => reply(
            crate::explore::explore_commit(auth, peer, r).await,
            Response::ExploreCommitted,
        ),
        Request::ExploreRelease(r) => reply(
            crate::explore::explore_release(auth, peer, r).await,
            Response::ExploreReleased,
        ),
        Request::ExploreAudit(r) => reply(
            crate::explore::explore_audit(auth, r).await,
            Response::ExploreAudit,
        ),
    }
}
