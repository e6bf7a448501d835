//! A client for either role: connects, says `hello`, then makes one request
//! at a time. Used by the proposer (proposer role) and the CLI (operator role).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::ErrorBody;
use crate::frame::{FrameError, read_frame, write_frame};
use crate::message::{Hello, Request, RequestFrame, Response, ResponseFrame, Role, Welcome};
use crate::transport::{IpcStream, connect};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the Airlock executor is not running (no socket at {path}): {source}")]
    NotRunning {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "cannot connect to the executor's socket {path}: {source}; is your OS user allowed to reach it (see airlock.socket_group)?"
    )]
    Unreachable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("lost the connection to the executor: {0}")]
    Frame(#[from] FrameError),
    #[error("the executor closed the connection")]
    Closed,
    #[error("the executor did not answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Refused(ErrorBody),
    #[error("unexpected answer from the executor: {0}")]
    Protocol(String),
}

/// A connected, welcomed client.
pub struct Client {
    stream: IpcStream,
    next_id: u64,
    timeout: Duration,
    welcome: Welcome,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("role", &self.welcome.role)
            .finish()
    }
}

impl Client {
    /// Connect to `socket` and complete the handshake as `role`.
    pub async fn connect(
        socket: &Path,
        role: Role,
        client_version: &str,
        timeout: Duration,
    ) -> Result<Client, ClientError> {
        let stream = connect(socket)
            .await
            .map_err(|source| match source.kind() {
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                    ClientError::NotRunning {
                        path: socket.to_owned(),
                        source,
                    }
                }
                _ => ClientError::Unreachable {
                    path: socket.to_owned(),
                    source,
                },
            })?;
        let mut client = Client {
            stream,
            next_id: 0,
            timeout,
            welcome: Welcome {
                protocol: String::new(),
                role,
                server_version: String::new(),
                peer: crate::message::PeerInfo {
                    uid: 0,
                    gid: 0,
                    pid: None,
                    user: None,
                },
                config_hash: String::new(),
                limits: crate::message::LimitsInfo {
                    max_frame_bytes: 0,
                    max_json_depth: 0,
                    max_rows_per_read: 0,
                },
            },
        };
        let hello = Request::Hello(Hello {
            protocol: crate::PROTOCOL.into(),
            role,
            client_version: client_version.into(),
        });
        match client.call(hello).await? {
            Response::Welcome(w) => {
                client.welcome = w;
                Ok(client)
            }
            other => Err(ClientError::Protocol(format!(
                "expected welcome, got {}",
                other.type_name()
            ))),
        }
    }

    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    /// Whether the executor has already closed this connection (it
    /// restarted, or idled us out): a pending end of stream is readable at
    /// once. Checked before a request that must not be sent twice.
    pub async fn is_closed(&mut self) -> bool {
        use tokio::io::AsyncReadExt;
        let mut byte = [0u8; 1];
        let mut read = std::pin::pin!(self.stream.read(&mut byte));
        // Poll once, without a timer (a zero timeout still waits for the
        // next 1 ms timer tick): not ready means nothing to read, alive;
        // end of stream, an error, or bytes nobody asked for: unusable.
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(std::future::Future::poll(read.as_mut(), cx).is_ready())
        })
        .await
    }

    /// Send one request and wait for its response. An `error` response
    /// becomes [`ClientError::Refused`].
    pub async fn call(&mut self, request: Request) -> Result<Response, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let frame = RequestFrame { id, request }.encode();
        let exchange = async {
            // A peer the executor refuses is answered and closed before it
            // reads our request; the refusal is still waiting to be read.
            let written = write_frame(&mut self.stream, &frame).await;
            let body = match read_frame(&mut self.stream).await {
                Ok(body) => Ok(body),
                Err(read_err) => Err(written.err().unwrap_or(read_err)),
            };
            let body = body?.ok_or(ClientError::Closed)?;
            let resp = ResponseFrame::decode(&body)
                .map_err(|(_, e)| ClientError::Protocol(e.to_string()))?;
            Ok::<_, ClientError>(resp)
        };
        let resp = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| ClientError::Timeout(self.timeout))??;
        match resp.response {
            Response::Error(e) => Err(ClientError::Refused(e)),
            // An error frame may answer with an unknown id (e.g. a malformed frame); others must echo ours.
            _ if resp.id != id => Err(ClientError::Protocol(format!(
                "response id {} does not match request id {id}",
                resp.id
            ))),
            other => Ok(other),
        }
    }
}
