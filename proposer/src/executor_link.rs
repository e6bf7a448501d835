//! The proposer's connection to the executor's proposer socket.
//!
//! Connected lazily and re-established after a failure, so the executor may
//! start after the proposer or restart under it. Requests that only record
//! (evidence, status) are retried once on a fresh connection; a proposal
//! submission is never blindly resent, because the first may have been
//! recorded: the caller is told to check the proposal list instead.

use std::path::PathBuf;
use std::time::Duration;

use airlock_ipc::client::{Client, ClientError, ExpectedServer};
use airlock_ipc::message::{Request, Response};
use airlock_ipc::{ErrorBody, Role};
use tokio::sync::Mutex;

const CALL_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("the Airlock executor is not running or not reachable at {0}")]
    Unavailable(String),
    #[error("{0}")]
    Refused(ErrorBody),
    #[error("the connection to the executor was lost during the request; the outcome is unknown")]
    Lost,
    /// The process at the socket is not the executor (wrong uid): nothing
    /// was sent to it.
    #[error("{0}")]
    Untrusted(String),
}

#[derive(Debug)]
pub struct ExecutorLink {
    socket: PathBuf,
    expected: ExpectedServer,
    conns: Vec<Mutex<Option<Client>>>,
    next: std::sync::atomic::AtomicUsize,
}

impl ExecutorLink {
    /// A link with up to `parallel` connections (requests on one connection
    /// are sequential; several let concurrent sessions overlap).
    /// The listening process must run as one of `expected`'s uids.
    pub fn new(socket: PathBuf, expected: ExpectedServer, parallel: usize) -> ExecutorLink {
        ExecutorLink {
            socket,
            expected,
            conns: (0..parallel.max(1)).map(|_| Mutex::new(None)).collect(),
            next: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    pub fn socket(&self) -> &std::path::Path {
        &self.socket
    }

    /// Send one request. `retry_safe`: may be resent on a fresh connection.
    pub async fn call(&self, request: Request, retry_safe: bool) -> Result<Response, LinkError> {
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.conns.len();
        let mut slot = self.conns[i].lock().await;

        // A connection the executor closed (a restart) is replaced before a
        // request that cannot be resent, so it is never lost in a dead socket.
        if let Some(client) = slot.as_mut()
            && client.is_closed().await
        {
            *slot = None;
        }
        for attempt in 0..2 {
            if slot.is_none() {
                match Client::connect_expecting(
                    &self.socket,
                    Role::Proposer,
                    env!("CARGO_PKG_VERSION"),
                    CALL_TIMEOUT,
                    &self.expected,
                )
                .await
                {
                    Ok(c) => *slot = Some(c),
                    Err(ClientError::Refused(e)) => return Err(LinkError::Refused(e)),
                    Err(e @ ClientError::UntrustedServer { .. }) => {
                        tracing::error!("{e}");
                        return Err(LinkError::Untrusted(e.to_string()));
                    }
                    Err(_) => {
                        return Err(LinkError::Unavailable(self.socket.display().to_string()));
                    }
                }
            }
            let Some(client) = slot.as_mut() else {
                continue;
            };
            match client
                .call_traced(request.clone(), crate::telemetry::current_traceparent())
                .await
            {
                Ok(resp) => return Ok(resp),
                Err(ClientError::Refused(e)) => return Err(LinkError::Refused(e)),
                Err(_) => {
                    *slot = None;
                    // A reused connection may simply have gone stale (executor restarted).
                    if attempt == 0 && retry_safe {
                        continue;
                    }
                    return Err(if retry_safe {
                        LinkError::Unavailable(self.socket.display().to_string())
                    } else {
                        LinkError::Lost
                    });
                }
            }
        }
        Err(LinkError::Unavailable(self.socket.display().to_string()))
    }
}
