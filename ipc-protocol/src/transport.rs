//! The transport: Unix stream sockets at filesystem paths, behind this one
//! small module (Linux is the target).
//!
//! Sockets are always path-based (never the abstract namespace, which has no
//! file permissions), created with their mode applied before `bind`, and
//! every accepted stream exposes the peer's kernel-reported credentials.

use std::io;
use std::path::Path;

use interprocess::local_socket::tokio::{Listener, Stream};
use interprocess::local_socket::traits::StreamCommon as _;
use interprocess::local_socket::traits::tokio::{Listener as _, Stream as _};
use interprocess::local_socket::{GenericFilePath, ListenerOptions, ToFsName};
use interprocess::os::unix::local_socket::ListenerOptionsExt;

pub use interprocess::local_socket::tokio::Stream as IpcStream;

/// Credentials of a connected peer, as the kernel reported them at connect time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCredentials {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
}

/// A listening socket.
pub struct IpcListener {
    inner: Listener,
}

impl std::fmt::Debug for IpcListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IpcListener")
    }
}

/// Bind a socket at `path` with file mode `mode` (e.g. 0o600). Fails if the
/// path exists; the caller removes stale sockets first. The socket file is
/// removed when the listener is dropped.
pub fn listen(path: &Path, mode: u32) -> io::Result<IpcListener> {
    let name = path.to_fs_name::<GenericFilePath>()?;
    let inner = ListenerOptions::new()
        .name(name)
        .mode(mode)
        .reclaim_name(true)
        .create_tokio()?;
    Ok(IpcListener { inner })
}

impl IpcListener {
    /// Accept one connection and read its peer credentials.
    pub async fn accept(&self) -> io::Result<(Stream, PeerCredentials)> {
        let stream = self.inner.accept().await?;
        let creds = peer_credentials(&stream)?;
        Ok((stream, creds))
    }
}

/// The peer credentials of a connected stream.
pub fn peer_credentials(stream: &Stream) -> io::Result<PeerCredentials> {
    let creds = stream.peer_creds()?;
    match (creds.euid(), creds.egid()) {
        (Some(uid), Some(gid)) => Ok(PeerCredentials {
            uid,
            gid,
            pid: creds.pid(),
        }),
        _ => Err(io::Error::other("the kernel reported no peer credentials")),
    }
}

/// Connect to the socket at `path`.
pub async fn connect(path: &Path) -> io::Result<Stream> {
    let name = path.to_fs_name::<GenericFilePath>()?;
    Stream::connect(name).await
}
