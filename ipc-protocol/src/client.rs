//! A client for either role: connects, says `hello`, then makes one request
//! at a time. Used by the proposer (proposer role) and the CLI (operator role).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::ErrorBody;
use crate::frame::{FrameError, read_frame, write_frame};
use crate::message::{Hello, Request, RequestFrame, Response, ResponseFrame, Role, Welcome};
use crate::transport::{IpcStream, connect, peer_credentials};

/// The environment variable naming the executor's OS user for clients.
pub const EXECUTOR_USER_ENV: &str = "AIRLOCK_EXECUTOR_USER";

/// The system user the packaged executor runs as (`deploy/sysusers`).
pub const DEFAULT_EXECUTOR_USER: &str = "airlock";

/// Which uids a client accepts as the executor, checked with SO_PEERCRED
/// on the connected socket before the client sends a single byte: a
/// socket some other local user put at the path is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedServer {
    uids: Vec<u32>,
    described: String,
}

impl ExpectedServer {
    /// Exactly these uids (root, which can impersonate anyone anyway, is
    /// always accepted).
    pub fn uids(uids: &[u32], described: &str) -> ExpectedServer {
        let mut all = vec![0];
        all.extend(uids.iter().copied().filter(|u| *u != 0));
        ExpectedServer {
            uids: all,
            described: described.to_owned(),
        }
    }

    /// Without configuration: this process's own uid (the single-user
    /// default), the `airlock` system user when it exists (the packaged
    /// service), or root.
    pub fn local_default() -> ExpectedServer {
        let own = nix::unistd::geteuid().as_raw();
        let mut uids = vec![own];
        let mut parts = Vec::new();
        if own != 0 {
            parts.push(format!("uid {own} (yours)"));
        }
        if let Some(u) = lookup_user(DEFAULT_EXECUTOR_USER) {
            uids.push(u);
            parts.push(format!("uid {u} (`{DEFAULT_EXECUTOR_USER}`)"));
        }
        parts.push("root".to_owned());
        ExpectedServer::uids(&uids, &format!("expected {}", parts.join(" or ")))
    }

    /// From an explicit user name or numeric uid (`--executor-user`), else
    /// [`EXECUTOR_USER_ENV`] in `env`, else [`ExpectedServer::local_default`].
    pub fn resolve(
        explicit: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<ExpectedServer, String> {
        let spec = match explicit {
            Some(s) => Some(s.to_owned()),
            None => env(EXECUTOR_USER_ENV).filter(|s| !s.is_empty()),
        };
        let Some(spec) = spec else {
            return Ok(ExpectedServer::local_default());
        };
        let uid = match spec.parse::<u32>() {
            Ok(uid) => uid,
            Err(_) => lookup_user(&spec).ok_or_else(|| {
                format!(
                    "the executor user `{spec}` (--executor-user / {EXECUTOR_USER_ENV}) does not exist on this machine; give the user name or numeric uid the executor runs as"
                )
            })?,
        };
        Ok(ExpectedServer::uids(
            &[uid],
            &format!("expected uid {uid} (`{spec}`) or root"),
        ))
    }

    pub fn accepts(&self, uid: u32) -> bool {
        self.uids.contains(&uid)
    }

    /// Who is expected, for messages.
    pub fn describe(&self) -> &str {
        &self.described
    }
}

fn lookup_user(name: &str) -> Option<u32> {
    nix::unistd::User::from_name(name)
        .ok()
        .flatten()
        .map(|u| u.uid.as_raw())
}

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
    #[error(
        "refusing to talk to {path}: the process listening there runs as uid {uid}, which is not the Airlock executor ({expected}); another local user may have put a socket there. Nothing was sent. If the executor really runs as uid {uid}, say so with --executor-user or AIRLOCK_EXECUTOR_USER"
    )]
    UntrustedServer {
        path: PathBuf,
        uid: u32,
        expected: String,
    },
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
    /// Connect to `socket` and complete the handshake as `role`, accepting
    /// the server as the executor per [`EXECUTOR_USER_ENV`], else
    /// [`ExpectedServer::local_default`] (also when the variable names no
    /// user: that set is trusted anyway, so this still fails closed).
    pub async fn connect(
        socket: &Path,
        role: Role,
        client_version: &str,
        timeout: Duration,
    ) -> Result<Client, ClientError> {
        let expected = ExpectedServer::resolve(None, |k| std::env::var(k).ok())
            .unwrap_or_else(|_| ExpectedServer::local_default());
        Client::connect_expecting(socket, role, client_version, timeout, &expected).await
    }

    /// Connect to `socket`, check that the listening process runs as one of
    /// `expected`'s uids (SO_PEERCRED, before anything is sent), and
    /// complete the handshake as `role`.
    pub async fn connect_expecting(
        socket: &Path,
        role: Role,
        client_version: &str,
        timeout: Duration,
        expected: &ExpectedServer,
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
        // The listener's credentials, captured by the kernel at listen():
        // checked before the hello, so an impostor learns nothing.
        let server = peer_credentials(&stream).map_err(|source| ClientError::Unreachable {
            path: socket.to_owned(),
            source,
        })?;
        if !expected.accepts(server.uid) {
            return Err(ClientError::UntrustedServer {
                path: socket.to_owned(),
                uid: server.uid,
                expected: expected.describe().to_owned(),
            });
        }
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
        self.call_traced(request, None).await
    }

    /// [`Client::call`], with the caller's W3C `traceparent` so that the
    /// executor's spans join the caller's trace.
    pub async fn call_traced(
        &mut self,
        request: Request,
        traceparent: Option<String>,
    ) -> Result<Response, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let frame = RequestFrame {
            id,
            request,
            traceparent,
        }
        .encode();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_server_resolution() {
        let none = |_: &str| None;
        let own = nix::unistd::geteuid().as_raw();
        let default = ExpectedServer::resolve(None, none).unwrap();
        assert!(default.accepts(own) && default.accepts(0));
        let explicit = ExpectedServer::resolve(Some("65534"), none).unwrap();
        assert!(explicit.accepts(65534) && explicit.accepts(0));
        assert_eq!(explicit.accepts(own), own == 0);
        let env = |k: &str| (k == EXECUTOR_USER_ENV).then(|| "4242".to_owned());
        assert!(ExpectedServer::resolve(None, env).unwrap().accepts(4242));
        let err = ExpectedServer::resolve(Some("no-such-user-xyz"), none).unwrap_err();
        assert!(err.contains("does not exist"), "{err}");
    }

    #[test]
    fn explicit_uids_always_include_root_and_nothing_else() {
        let e = ExpectedServer::uids(&[4242, 0, 7], "expected uid 4242 (`exec`) or root");
        for uid in [0, 4242, 7] {
            assert!(e.accepts(uid), "{uid}");
        }
        for uid in [1, 4241, 4243, 65534, u32::MAX] {
            assert!(!e.accepts(uid), "{uid}");
        }
        assert_eq!(e.describe(), "expected uid 4242 (`exec`) or root");
        let only_root = ExpectedServer::uids(&[], "expected root");
        assert!(only_root.accepts(0));
        assert!(!only_root.accepts(1));
        assert_eq!(only_root.describe(), "expected root");
    }

    #[test]
    fn names_and_numbers_resolve_to_a_uid_and_say_so() {
        let none = |_: &str| None;
        // A user name is looked up (root exists everywhere).
        let root = ExpectedServer::resolve(Some("root"), none).unwrap();
        assert_eq!(root.describe(), "expected uid 0 (`root`) or root");
        assert!(root.accepts(0));
        assert!(!root.accepts(4242));
        let num = ExpectedServer::resolve(Some("4242"), none).unwrap();
        assert_eq!(num.describe(), "expected uid 4242 (`4242`) or root");
        assert!(num.accepts(4242) && num.accepts(0) && !num.accepts(4243));
        // The explicit value wins over the environment.
        let env = |k: &str| (k == EXECUTOR_USER_ENV).then(|| "4242".to_owned());
        let explicit = ExpectedServer::resolve(Some("77"), env).unwrap();
        assert!(explicit.accepts(77) && !explicit.accepts(4242));
        let from_env = ExpectedServer::resolve(None, env).unwrap();
        assert_eq!(from_env.describe(), "expected uid 4242 (`4242`) or root");
        // Only EXECUTOR_USER_ENV is consulted, and an empty value is no value.
        let other = |k: &str| (k != EXECUTOR_USER_ENV).then(|| "4242".to_owned());
        assert_eq!(
            ExpectedServer::resolve(None, other).unwrap(),
            ExpectedServer::local_default()
        );
        let empty = |_: &str| Some(String::new());
        assert_eq!(
            ExpectedServer::resolve(None, empty).unwrap(),
            ExpectedServer::local_default()
        );
        assert_eq!(
            ExpectedServer::resolve(Some("no-such-user-xyz"), none).unwrap_err(),
            "the executor user `no-such-user-xyz` (--executor-user / AIRLOCK_EXECUTOR_USER) does not exist on this machine; give the user name or numeric uid the executor runs as"
        );
    }

    #[test]
    fn the_local_default_is_this_user_the_airlock_user_and_root() {
        let own = nix::unistd::geteuid().as_raw();
        let airlock = nix::unistd::User::from_name("airlock")
            .unwrap()
            .map(|u| u.uid.as_raw());
        let expected = match (own, airlock) {
            (0, None) => "expected root".to_owned(),
            (0, Some(a)) => format!("expected uid {a} (`airlock`) or root"),
            (me, None) => format!("expected uid {me} (yours) or root"),
            (me, Some(a)) => format!("expected uid {me} (yours) or uid {a} (`airlock`) or root"),
        };
        let d = ExpectedServer::local_default();
        assert_eq!(d.describe(), expected);
        assert!(d.accepts(own) && d.accepts(0));
        if let Some(a) = airlock {
            assert!(d.accepts(a));
        }
        let stranger = (1..).find(|u| *u != own && Some(*u) != airlock).unwrap();
        assert!(!d.accepts(stranger));
    }
}
