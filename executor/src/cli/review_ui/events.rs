//! Live updates: a server-sent events stream of the ledger's new events,
//! read over this process's own operator connection (`events_since`). The
//! page's script only shows a notice; every page works without it.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use airlock_ipc::message::{Empty, EventsSince, Request, Response as IpcResponse};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::server::ipc_failure;

/// How often the executor is asked for new events.
const POLL: Duration = Duration::from_secs(1);

/// Where the stream starts: the page says which ledger event it was
/// rendered after (`?since=`), and a reconnecting browser says which event
/// it saw last (`Last-Event-ID`), so nothing in between is missed.
#[derive(Deserialize)]
pub struct Since {
    #[serde(default)]
    since: Option<u64>,
}

pub async fn stream(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    q: Result<Query<Since>, QueryRejection>,
) -> Response {
    let mut client = match st.client().await {
        Ok(c) => c,
        Err(e) => return ipc_failure(e),
    };
    let resumed = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let given = resumed.or(q.ok().and_then(|Query(s)| s.since));
    let cursor = match given {
        Some(c) => c,
        // Without one: only what happens from now on.
        None => match client.call(Request::Stats(Empty {})).await {
            Ok(IpcResponse::Stats(s)) => s.events,
            Ok(_) => 0,
            Err(e) => return ipc_failure(e),
        },
    };
    let events = futures_util::stream::unfold(
        (client, cursor, VecDeque::new()),
        |(mut client, mut cursor, mut pending)| async move {
            loop {
                if let Some(ev) = pending.pop_front() {
                    return Some((Ok::<Event, Infallible>(ev), (client, cursor, pending)));
                }
                tokio::time::sleep(POLL).await;
                let req = Request::EventsSince(EventsSince {
                    since: cursor,
                    limit: Some(100),
                });
                match client.call(req).await {
                    Ok(IpcResponse::Events(e)) => {
                        cursor = e.next_cursor;
                        for item in e.items {
                            let data = json!({
                                "seq": item.seq,
                                "kind": item.kind,
                                "proposal_id": item.proposal_id,
                            });
                            pending
                                .push_back(Event::default().event("ledger").data(data.to_string()));
                        }
                    }
                    // The executor went away or refused: end the stream (the
                    // browser's EventSource reconnects by itself).
                    _ => return None,
                }
            }
        },
    );
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}
