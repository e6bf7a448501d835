//! `airlock review`: a local web review UI, served by the operator CLI
//! process of the person who started it. It talks to `operator.sock` as
//! that person, so the executor's SO_PEERCRED check and each capability's
//! `required_role` still decide every approval; the browser adds no
//! authority (see `security`).
//!
//! - `security`: the one-time sign-in secret, session cookie, CSRF token,
//!   `Host`/`Origin` checks and the headers every answer carries.
//! - `pages`: server-rendered HTML and the escaping helper.
//! - `server`: the routes and what each does over IPC.
//! - `events`: live updates (server-sent events from the ledger's events).

mod events;
mod pages;
mod security;
mod server;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use airlock_ipc::Role;
use airlock_ipc::client::{Client, ClientError, ExpectedServer};

use super::ConnArgs;
use super::output::{Exit, fail, say};

/// How long one request waits for the executor.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// `airlock review`'s options.
pub struct ReviewOptions {
    pub listen: SocketAddr,
    pub no_open: bool,
    pub store: Option<PathBuf>,
    pub conn: ConnArgs,
}

/// What every request handler shares.
pub struct AppState {
    pub listen: SocketAddr,
    pub sessions: security::Sessions,
    pub conn: ConnArgs,
    pub store: Option<PathBuf>,
}

impl AppState {
    /// A fresh operator connection as this process's user: the executor
    /// decides from its SO_PEERCRED uid what may be done.
    async fn client(&self) -> Result<Client, ClientError> {
        let expected = ExpectedServer::resolve(self.conn.executor_user.as_deref(), |k| {
            std::env::var(k).ok()
        })
        .map_err(ClientError::Protocol)?;
        Client::connect_expecting(
            &super::operator::operator_socket(&self.conn),
            Role::Operator,
            env!("CARGO_PKG_VERSION"),
            CALL_TIMEOUT,
            &expected,
        )
        .await
    }
}

/// The ledger's chain, as far as this host can check it.
pub enum LedgerStatus {
    Intact {
        path: String,
        events: u64,
        head: String,
        /// 0, or the last event a prune moved to an archive.
        start_seq: u64,
    },
    Broken {
        path: String,
        events: u64,
        seq: u64,
        reason: String,
    },
    Unavailable(String),
}

/// Verify the ledger file the way `airlock ledger verify` does: read-only,
/// from this host. On a workstation that only reaches the executor's socket
/// there is no file to read, and the page says so.
fn ledger_status(
    store: Option<&std::path::Path>,
    config: Option<&std::path::Path>,
) -> LedgerStatus {
    let Some(path) = super::ledger_cmd::ledger_file(store, config) else {
        return LedgerStatus::Unavailable(
            "no ledger file named here (start `airlock review` with --store FILE or --config FILE on the executor's host)".into(),
        );
    };
    let shown = path.display().to_string();
    if !path.is_file() {
        return LedgerStatus::Unavailable(format!("no ledger file at {shown} on this host"));
    }
    match crate::ledger::Ledger::open_read_only(&path).and_then(|l| l.verify()) {
        Ok(r) => match r.first_break {
            None => LedgerStatus::Intact {
                path: shown,
                events: r.events,
                head: r.head.to_string(),
                start_seq: r.start_seq,
            },
            Some((seq, reason)) => LedgerStatus::Broken {
                path: shown,
                events: r.events,
                seq,
                reason: reason.to_string(),
            },
        },
        Err(e) => LedgerStatus::Unavailable(format!("cannot read the ledger {shown}: {e}")),
    }
}

/// Write a page only this user can read that sends the browser on to
/// `url` (a meta refresh: no script), in `dir`.
fn write_opener(dir: &std::path::Path, url: &str) -> std::io::Result<PathBuf> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = dir.join(format!("airlock-review-{}.html", security::random_hex(8)?));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    writeln!(
        f,
        "<!doctype html><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"0;url={url}\"><title>Airlock review</title><p><a href=\"{url}\">Open the Airlock review UI</a></p>"
    )?;
    Ok(path)
}

/// Ask the desktop to open the sign-in link through a private redirect
/// file; returns the file, to delete on exit.
fn open_browser(url: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|d| d.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    let file = write_opener(&dir, url).ok()?;
    let _ = std::process::Command::new("xdg-open")
        .arg(&file)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    Some(file)
}

/// Run the review UI until interrupted.
pub fn run(opts: ReviewOptions) -> Exit {
    // Loopback only: the UI acts with this user's operator authority.
    if !opts.listen.ip().is_loopback() {
        return fail(
            false,
            "usage",
            &format!(
                "--listen {} is not a loopback address; the review UI listens on 127.0.0.1 or ::1 only (reach a remote one with `ssh -L`)",
                opts.listen
            ),
            Exit::Usage,
        );
    }
    let secret = match security::random_hex(32) {
        Ok(s) => s,
        Err(e) => {
            return fail(
                false,
                "random",
                &format!("cannot read /dev/urandom: {e}"),
                Exit::Failure,
            );
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return fail(
                false,
                "runtime",
                &format!("cannot start: {e}"),
                Exit::Failure,
            );
        }
    };
    rt.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(opts.listen).await {
            Ok(l) => l,
            Err(e) => {
                return fail(
                    false,
                    "listen",
                    &format!("cannot listen on {}: {e}", opts.listen),
                    Exit::Failure,
                );
            }
        };
        let listen = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => return fail(false, "listen", &e.to_string(), Exit::Failure),
        };
        // Check the executor is reachable before handing out a URL.
        let state = Arc::new(AppState {
            listen,
            sessions: security::Sessions::new(secret.clone()),
            conn: opts.conn,
            store: opts.store,
        });
        if let Err(e) = state.client().await {
            return super::operator::client_failure(false, e);
        }
        let url = format!("http://{listen}/login?secret={secret}");
        say!("Airlock review UI for your operator identity on http://{listen}/");
        say!("Open this link once (it signs in this browser; the link then stops working):");
        say!("  {url}");
        say!("Stop with Ctrl-C.");
        // Best effort, and never with the secret on a command line (other
        // local users can read every process's argv): the browser opens a
        // private file that redirects to the link.
        let opener = if opts.no_open {
            None
        } else {
            open_browser(&url)
        };
        let app = server::router(state);
        // Ctrl-C ends the process at once: a graceful shutdown would wait
        // for every open live-update stream, i.e. for the browser tab.
        let exit = tokio::select! {
            served = std::future::IntoFuture::into_future(axum::serve(listener, app)) => match served {
                Ok(()) => Exit::Ok,
                Err(e) => fail(false, "serve", &format!("the review UI stopped: {e}"), Exit::Failure),
            },
            _ = tokio::signal::ctrl_c() => {
                say!("Stopped.");
                Exit::Ok
            }
        };
        if let Some(f) = opener {
            let _ = std::fs::remove_file(f);
        }
        exit
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_browser_opener_is_private_and_holds_the_link_only_inside() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let url = "http://127.0.0.1:8767/login?secret=5ec7e75ec7e75ec7e75ec7e7";
        let file = write_opener(dir.path(), url).unwrap();
        assert!(
            !file
                .display()
                .to_string()
                .contains("5ec7e75ec7e75ec7e75ec7e7"),
            "no secret in the path"
        );
        let meta = std::fs::metadata(&file).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let page = std::fs::read_to_string(&file).unwrap();
        assert!(page.contains(&format!("content=\"0;url={url}\"")), "{page}");
        assert!(!page.contains("<script"), "{page}");
    }

    #[test]
    fn a_ledger_this_host_cannot_read_is_not_checked_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("ledger.db");
        match ledger_status(Some(&missing), None) {
            LedgerStatus::Unavailable(why) => assert!(why.contains("no ledger file at"), "{why}"),
            _ => panic!("a missing ledger must not be reported as checked"),
        }
    }
}
