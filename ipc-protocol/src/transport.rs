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

/// The proposer-role socket's file name.
pub const PROPOSER_SOCKET: &str = "proposer.sock";
/// The operator-role socket's file name.
pub const OPERATOR_SOCKET: &str = "operator.sock";

/// Which setting chose the socket directory, for messages that name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketDirSource {
    /// `--socket-dir`.
    Flag,
    /// `AIRLOCK_SOCKET_DIR`.
    Env,
    /// The config's `airlock.socket_dir`.
    Config,
    /// `$XDG_RUNTIME_DIR/airlock`.
    XdgRuntimeDir,
    /// `.airlock/run` beside the config file.
    BesideConfig,
}

impl SocketDirSource {
    /// How a person would name the setting.
    pub fn describe(self) -> &'static str {
        match self {
            SocketDirSource::Flag => "--socket-dir",
            SocketDirSource::Env => "AIRLOCK_SOCKET_DIR",
            SocketDirSource::Config => "the config's airlock.socket_dir",
            SocketDirSource::XdgRuntimeDir => "$XDG_RUNTIME_DIR/airlock",
            SocketDirSource::BesideConfig => {
                "the default .airlock/run beside the config file (no --socket-dir, AIRLOCK_SOCKET_DIR, airlock.socket_dir or XDG_RUNTIME_DIR)"
            }
        }
    }
}

/// Where the sockets live: `--socket-dir`, else `AIRLOCK_SOCKET_DIR`, else
/// the config's `airlock.socket_dir` (relative to the config file), else
/// `$XDG_RUNTIME_DIR/airlock`, else `.airlock/run` beside the config file
/// (like the ledger: never the working directory of whoever started the
/// process, which an MCP client chooses). Environment look-ups are injected
/// so every binary resolves the same way.
pub fn resolve_socket_dir(
    flag: Option<&Path>,
    env: impl Fn(&str) -> Option<String>,
    config_value: Option<&str>,
    config_dir: Option<&Path>,
) -> std::path::PathBuf {
    locate_socket_dir(flag, env, config_value, config_dir).0
}

/// [`resolve_socket_dir`], and which setting chose it.
pub fn locate_socket_dir(
    flag: Option<&Path>,
    env: impl Fn(&str) -> Option<String>,
    config_value: Option<&str>,
    config_dir: Option<&Path>,
) -> (std::path::PathBuf, SocketDirSource) {
    let beside_config = |p: &Path| match config_dir {
        Some(base) if p.is_relative() => base.join(p),
        _ => p.to_owned(),
    };
    if let Some(dir) = flag {
        return (dir.to_owned(), SocketDirSource::Flag);
    }
    if let Some(dir) = env("AIRLOCK_SOCKET_DIR").filter(|d| !d.is_empty()) {
        return (dir.into(), SocketDirSource::Env);
    }
    if let Some(dir) = config_value {
        return (beside_config(Path::new(dir)), SocketDirSource::Config);
    }
    if let Some(run) = env("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        return (
            Path::new(&run).join("airlock"),
            SocketDirSource::XdgRuntimeDir,
        );
    }
    (
        beside_config(&Path::new(".airlock").join("run")),
        SocketDirSource::BesideConfig,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn socket_dir_precedence() {
        let env = |k: &str| match k {
            "AIRLOCK_SOCKET_DIR" => Some("/env".to_owned()),
            "XDG_RUNTIME_DIR" => Some("/run/user/1".to_owned()),
            _ => None,
        };
        let none = |_: &str| None;
        let cfg = Some(Path::new("/etc/airlock"));
        assert_eq!(
            resolve_socket_dir(Some(Path::new("/flag")), env, Some("x"), cfg),
            PathBuf::from("/flag")
        );
        assert_eq!(
            resolve_socket_dir(None, env, Some("x"), cfg),
            PathBuf::from("/env")
        );
        assert_eq!(
            resolve_socket_dir(None, none, Some("run"), cfg),
            PathBuf::from("/etc/airlock/run")
        );
        let xdg = |k: &str| (k == "XDG_RUNTIME_DIR").then(|| "/run/user/1".to_owned());
        assert_eq!(
            resolve_socket_dir(None, xdg, None, cfg),
            PathBuf::from("/run/user/1/airlock")
        );
        assert_eq!(
            resolve_socket_dir(None, none, None, cfg),
            PathBuf::from("/etc/airlock/.airlock/run")
        );
        assert_eq!(
            resolve_socket_dir(None, none, None, None),
            PathBuf::from(".airlock/run")
        );
    }

    #[test]
    fn the_source_of_the_socket_dir_is_named() {
        let all = |k: &str| match k {
            "AIRLOCK_SOCKET_DIR" => Some("/env".to_owned()),
            "XDG_RUNTIME_DIR" => Some("/run/user/1".to_owned()),
            _ => None,
        };
        let xdg = |k: &str| (k == "XDG_RUNTIME_DIR").then(|| "/run/user/1".to_owned());
        let none = |_: &str| None;
        let cfg = Some(Path::new("/etc/airlock"));
        let source =
            |flag: Option<&str>, env: &dyn Fn(&str) -> Option<String>, value: Option<&str>| {
                locate_socket_dir(flag.map(Path::new), env, value, cfg).1
            };
        assert_eq!(source(Some("/f"), &all, Some("x")), SocketDirSource::Flag);
        assert_eq!(source(None, &all, Some("x")), SocketDirSource::Env);
        assert_eq!(source(None, &xdg, Some("x")), SocketDirSource::Config);
        assert_eq!(source(None, &xdg, None), SocketDirSource::XdgRuntimeDir);
        assert_eq!(source(None, &none, None), SocketDirSource::BesideConfig);
        assert_eq!(SocketDirSource::Flag.describe(), "--socket-dir");
        assert_eq!(SocketDirSource::Env.describe(), "AIRLOCK_SOCKET_DIR");
        assert_eq!(
            SocketDirSource::Config.describe(),
            "the config's airlock.socket_dir"
        );
        assert_eq!(
            SocketDirSource::XdgRuntimeDir.describe(),
            "$XDG_RUNTIME_DIR/airlock"
        );
        assert_eq!(
            SocketDirSource::BesideConfig.describe(),
            "the default .airlock/run beside the config file (no --socket-dir, AIRLOCK_SOCKET_DIR, airlock.socket_dir or XDG_RUNTIME_DIR)"
        );
    }

    #[test]
    fn empty_environment_values_are_ignored() {
        let empty = |_: &str| Some(String::new());
        let cfg = Some(Path::new("/etc/airlock"));
        assert_eq!(
            resolve_socket_dir(None, empty, Some("run"), cfg),
            PathBuf::from("/etc/airlock/run")
        );
        assert_eq!(
            resolve_socket_dir(None, empty, None, cfg),
            PathBuf::from("/etc/airlock/.airlock/run")
        );
        let empty_dir_set_xdg = |k: &str| match k {
            "AIRLOCK_SOCKET_DIR" => Some(String::new()),
            _ => Some("/run/user/7".to_owned()),
        };
        assert_eq!(
            resolve_socket_dir(None, empty_dir_set_xdg, None, None),
            PathBuf::from("/run/user/7/airlock")
        );
    }

    #[test]
    fn config_paths_resolve_against_the_config_directory_only_when_relative() {
        let none = |_: &str| None;
        let cfg = Some(Path::new("/etc/airlock"));
        assert_eq!(
            resolve_socket_dir(None, none, Some("/srv/run"), cfg),
            PathBuf::from("/srv/run")
        );
        assert_eq!(
            resolve_socket_dir(None, none, Some("run/sockets"), None),
            PathBuf::from("run/sockets")
        );
        // The config value wins over XDG_RUNTIME_DIR.
        let xdg = |k: &str| (k == "XDG_RUNTIME_DIR").then(|| "/run/user/1".to_owned());
        assert_eq!(
            resolve_socket_dir(None, xdg, Some("/srv/run"), None),
            PathBuf::from("/srv/run")
        );
    }

    /// A fresh, empty directory for one test's sockets.
    fn scratch_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "airlock-ipc-transport-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[tokio::test]
    async fn listen_connect_accept_report_the_kernel_credentials() {
        use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
        let dir = scratch_dir("creds");
        let path = dir.join("t.sock");
        let listener = listen(&path, 0o600).unwrap();
        assert_eq!(format!("{listener:?}"), "IpcListener");
        let meta = std::fs::metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);

        let (client, accepted) = tokio::join!(connect(&path), listener.accept());
        let client = client.unwrap();
        let (server_side, creds) = accepted.unwrap();
        let me = PeerCredentials {
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            pid: Some(i32::try_from(std::process::id()).unwrap()),
        };
        assert_eq!(creds, me, "the client as the server sees it");
        assert_eq!(peer_credentials(&client).unwrap(), me, "and the other way");
        assert_eq!(peer_credentials(&server_side).unwrap(), me);

        // A second listener on the same path is refused.
        assert!(listen(&path, 0o600).is_err());
        drop(listener);
        assert!(!path.exists(), "the socket file goes with its listener");
        assert!(connect(&path).await.is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
