//! `airlock-executor serve`: start-up, the two sockets, and shutdown.
//!
//! Start-up order matters: the process makes itself non-dumpable before it
//! reads any secret, takes an exclusive lock on the store before touching
//! the ledger, and creates the socket directory and sockets with restrictive
//! modes before accepting anyone.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use airlock_ipc::Role;
use airlock_ipc::limits::{
    MAX_CONNECTIONS_PER_UID, MAX_OPERATOR_CONNECTIONS, MAX_PROPOSER_CONNECTIONS,
};
use airlock_ipc::transport::{
    IpcListener, OPERATOR_SOCKET, PROPOSER_SOCKET, PeerCredentials, listen, resolve_socket_dir,
};
use airlock_policy::canonical::sha256_tagged;
use anyhow::{Context, anyhow, bail};
use nix::fcntl::{Flock, FlockArg};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::authority::Authority;
use crate::config_file::relative_to_config;
use crate::connection::serve_connection;
use crate::hardening;
use crate::ledger::Ledger;
use crate::ledger_location::SharedLedger;
use crate::peer_auth::PeerPolicy;

/// How long in-flight requests may take to finish after SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub config: PathBuf,
    pub store: Option<PathBuf>,
    pub socket_dir: Option<PathBuf>,
}

/// The apply lease of a fleet executor (`storage.shared_postgres`).
fn shared_lease_ms(config: &airlock_policy::Config) -> u64 {
    config.storage.shared_postgres.as_ref().map_or(
        airlock_policy::config::SharedPostgres::DEFAULT_APPLY_LEASE_MS,
        |s| s.apply_lease_ms,
    )
}

/// The ledger path: `--store`, else `storage.sqlite_path` (relative to the
/// config file), else `.airlock/ledger.db` beside the config file.
pub fn store_path(config_path: &Path, flag: Option<&Path>, configured: Option<&str>) -> PathBuf {
    match (flag, configured) {
        (Some(p), _) => p.to_owned(),
        (None, Some(p)) => relative_to_config(config_path, p),
        (None, None) => relative_to_config(config_path, ".airlock/ledger.db"),
    }
}

/// Counts connections per socket and per uid on each socket. Each socket
/// has its own budget, so proposer connections can never make the operator
/// socket answer `busy`.
#[derive(Debug, Default)]
pub struct ConnectionCounter {
    total: AtomicU64,
    /// (socket, uid) → open connections; the socket's own total under `uid: None`.
    held: Mutex<HashMap<(Role, Option<u32>), usize>>,
}

/// Releases its connection slot when dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    counter: Arc<ConnectionCounter>,
    role: Role,
    uid: u32,
}

impl ConnectionCounter {
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Take a slot for `uid` on `role`'s socket, or `None` when that
    /// socket's budget or this uid's share of it is used up.
    pub fn acquire(self: &Arc<Self>, role: Role, uid: u32) -> Option<ConnectionSlot> {
        let budget = match role {
            Role::Proposer => MAX_PROPOSER_CONNECTIONS,
            Role::Operator => MAX_OPERATOR_CONNECTIONS,
        };
        let mut held = self.held.lock().ok()?;
        let socket = held.get(&(role, None)).copied().unwrap_or(0);
        let mine = held.get(&(role, Some(uid))).copied().unwrap_or(0);
        if mine >= MAX_CONNECTIONS_PER_UID || socket >= budget {
            return None;
        }
        held.insert((role, None), socket + 1);
        held.insert((role, Some(uid)), mine + 1);
        self.total.fetch_add(1, Ordering::Relaxed);
        Some(ConnectionSlot {
            counter: Arc::clone(self),
            role,
            uid,
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.counter.total.fetch_sub(1, Ordering::Relaxed);
        if let Ok(mut held) = self.counter.held.lock() {
            for key in [(self.role, None), (self.role, Some(self.uid))] {
                if let Some(n) = held.get_mut(&key) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        held.remove(&key);
                    }
                }
            }
        }
    }
}

/// Run the executor until SIGTERM or SIGINT.
pub async fn serve(opts: ServeOptions) -> anyhow::Result<()> {
    // Before any secret is read: no core dumps, no same-uid ptrace or /proc reads.
    hardening::make_non_dumpable()
        .context("could not make the executor non-dumpable (PR_SET_DUMPABLE)")?;
    hardening::private_umask();
    if crate::writeback::fault::COMPILED_IN {
        tracing::warn!(
            "this executor was built with the TEST-ONLY fault-injection feature (AIRLOCK_FAULT kills it mid-apply); build production binaries with `cargo build --release`"
        );
    }

    let bytes = std::fs::read(&opts.config)
        .with_context(|| format!("cannot read config {}", opts.config.display()))?;
    let text = String::from_utf8(bytes.clone())
        .map_err(|_| anyhow!("config {} is not UTF-8", opts.config.display()))?;
    let loaded = airlock_policy::load_config_str(&text);
    for w in loaded.report.warnings() {
        tracing::warn!(path = %w.path, "{} (fix: {})", w.message, w.fix);
    }
    let Some(config) = loaded.config else {
        let errors: Vec<String> = loaded
            .report
            .errors()
            .map(|d| format!("  {}: {}", d.path, d.message))
            .collect();
        bail!(
            "config {} is invalid:\n{}\nrun `airlock config validate --config {}` for fixes",
            opts.config.display(),
            errors.join("\n"),
            opts.config.display()
        );
    };
    let config_hash = sha256_tagged(&bytes);

    let store = store_path(
        &opts.config,
        opts.store.as_deref(),
        config.storage.sqlite_path.as_deref(),
    );
    let own_uid = nix::unistd::geteuid().as_raw();
    // The store's directory, lock and ledger are opened without following
    // links, in a directory only the executor can change (secure_path).
    let _store_dir = crate::secure_path::open_store_dir(&store, own_uid)?;
    let lock = lock_store(&store)?;

    let peers = PeerPolicy::from_config(&config, own_uid, |k| std::env::var(k).ok(), user_uid)?;
    for w in &peers.warnings {
        tracing::warn!("{w}");
    }
    // As every credential: the environment, or a systemd credential.
    let secret = |k: &str| crate::writeback::credentials::read_secret(k).ok();
    let shared = SharedLedger::from_config(&config, secret)?;
    let ledger = match &shared {
        Some(shared) => {
            let unreachable = shared.check_distinct_from_sources(&config, secret).await?;
            for source in unreachable {
                tracing::warn!(
                    "source {source} was not reachable at start, so only its address was compared with the ledger's"
                );
            }
            let shared = shared.clone();
            // Its own connection and runtime: opened off the async threads.
            let mut ledger = tokio::task::spawn_blocking(move || shared.open())
                .await
                .map_err(|e| anyhow!("the ledger could not be opened: {e}"))??;
            let lease = crate::fleet::lease_for(ledger.instance_id(), shared_lease_ms(&config));
            tracing::info!(holder = %lease.holder, lease_ms = lease.ms, "fleet executor: applies are leased");
            ledger.set_apply_lease(Some(lease));
            ledger
        }
        None => {
            // SQLite opens by path: the file and its companions must not be
            // links. Only root or the executor could swap one in after this
            // check (the directory is the executor's, mode 0700, under safe
            // ancestors).
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let path = PathBuf::from(format!("{}{suffix}", store.display()));
                crate::secure_path::refuse_link(&path, "ledger file")?;
            }
            Ledger::open(&store)
                .with_context(|| format!("cannot open the ledger {}", store.display()))?
        }
    };
    tracing::info!(
        "ledger: {}",
        crate::ledger_location::describe(&store, shared.as_ref())
    );
    let notifier =
        crate::notify::Notifier::from_config(&config, &opts.config).map_err(|e| anyhow!(e))?;

    let config_dir = opts.config.parent().map(Path::to_owned);
    let socket_dir = resolve_socket_dir(
        opts.socket_dir.as_deref(),
        |k| std::env::var(k).ok(),
        config.airlock.socket_dir.as_deref(),
        config_dir.as_deref(),
    );
    let group = match &config.airlock.socket_group {
        Some(name) => Some(
            nix::unistd::Group::from_name(name)
                .ok()
                .flatten()
                .ok_or_else(|| {
                    anyhow!("airlock.socket_group names group `{name}`, which does not exist")
                })?
                .gid
                .as_raw(),
        ),
        None => None,
    };
    prepare_socket_dir(&socket_dir, own_uid, group)?;
    let proposer_path = socket_dir.join(PROPOSER_SOCKET);
    let operator_path = socket_dir.join(OPERATOR_SOCKET);
    clear_stale_socket(&proposer_path).await?;
    clear_stale_socket(&operator_path).await?;
    let mode = |role| {
        if group.is_some() && peers.others_allowed(role) {
            0o660
        } else {
            0o600
        }
    };
    let proposer_listener = bind(&proposer_path, mode(Role::Proposer), group)?;
    let operator_listener = bind(&operator_path, mode(Role::Operator), group)?;

    let identity = identity_verifier(&config).await?;
    let auth = Arc::new(
        Authority::new(
            config,
            config_hash,
            peers,
            std::path::absolute(&store).unwrap_or_else(|_| store.clone()),
            ledger,
            notifier,
        )
        .context("cannot start the ledger thread")?
        .with_identity(identity),
    );
    // The schema lock is checked once, before any proposal or apply is
    // served: a drifted capability stays disabled until a restart.
    auth.check_schema_lock().await;
    let counter = Arc::new(ConnectionCounter::default());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    // Before accepting anyone: every event recorded from now on notifies.
    crate::notify::start(Arc::clone(&auth), shutdown_rx.clone()).await?;
    let mut tasks = JoinSet::new();

    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    tracing::info!(
        pid = std::process::id(),
        socket_dir = %socket_dir.display(),
        store = %store.display(),
        "airlock-executor ready"
    );
    notify_systemd("READY=1");
    tokio::spawn(crate::refusal_log::flush_forever());
    tokio::spawn(crate::lifecycle::sweep_expired_forever(
        Arc::clone(&auth),
        shutdown_rx.clone(),
    ));
    if let (true, Some(listen)) = (
        auth.config.metrics.enabled,
        auth.config.metrics.executor_listen,
    ) {
        let token = match &auth.config.metrics.token_env {
            Some(var) => Some(
                crate::writeback::credentials::read_secret(var)
                    .ok()
                    .filter(|t| t.len() >= 16)
                    .ok_or_else(|| {
                        anyhow!("metrics.token_env names {var}, which is not set or shorter than 16 characters")
                    })?,
            ),
            None => None,
        };
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on metrics.executor_listen {listen}"))?;
        let handle = crate::metrics_endpoint::install()?;
        let (auth, rx) = (Arc::clone(&auth), shutdown_rx.clone());
        tokio::spawn(async move {
            if let Err(e) = crate::metrics_endpoint::serve(auth, handle, listener, token, rx).await
            {
                tracing::error!(error = %format!("{e:#}"), "the metrics endpoint stopped");
            }
        });
    }
    if shared.is_some() {
        tokio::spawn(crate::fleet::take_over_expired_forever(
            Arc::clone(&auth),
            crate::fleet::look_every(shared_lease_ms(&auth.config)),
            shutdown_rx.clone(),
        ));
    }

    loop {
        let (accepted, role) = tokio::select! {
            a = proposer_listener.accept() => (a, Role::Proposer),
            a = operator_listener.accept() => (a, Role::Operator),
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        };
        match accepted {
            Ok((stream, creds)) => {
                let (auth, counter, rx) =
                    (Arc::clone(&auth), Arc::clone(&counter), shutdown_rx.clone());
                tasks.spawn(serve_connection(auth, counter, stream, creds, role, rx));
            }
            Err(e) => {
                tracing::warn!(error = %e, role = role.as_str(), "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    tracing::info!("shutting down: no new connections; finishing in-flight requests");
    notify_systemd("STOPPING=1");
    drop(proposer_listener);
    drop(operator_listener);
    let _ = shutdown_tx.send(true);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("some connections did not finish within {SHUTDOWN_GRACE:?}; closing them");
        tasks.abort_all();
    }
    auth.checkpoint().await;
    drop(lock);
    tracing::info!("airlock-executor stopped");
    Ok(())
}

fn user_uid(name: &str) -> Option<u32> {
    nix::unistd::User::from_name(name)
        .ok()
        .flatten()
        .map(|u| u.uid.as_raw())
}

/// Hold an exclusive lock on `<store>.lock` for the executor's lifetime.
fn lock_store(store: &Path) -> anyhow::Result<Flock<File>> {
    let path = PathBuf::from(format!("{}.lock", store.display()));
    let file = crate::secure_path::open_store_file(&path)
        .with_context(|| format!("cannot open the store lock {}", path.display()))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(mut locked) => {
            let _ = locked.set_len(0);
            let _ = writeln!(locked, "{}", std::process::id());
            Ok(locked)
        }
        Err((_, _)) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            bail!(
                "another airlock-executor (pid {}) is already serving the ledger {}; stop it first",
                holder.trim(),
                store.display()
            )
        }
    }
}

/// The socket directory must be ours: created 0750 (group-owned when a
/// socket group is configured), never a directory someone else controls,
/// and every directory above it safe too (secure_path::check_ancestors).
fn prepare_socket_dir(dir: &Path, own_uid: u32, group: Option<u32>) -> anyhow::Result<()> {
    crate::secure_path::check_ancestors(dir, own_uid, "socket directory")?;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the socket directory {}", dir.display()))?;
    crate::secure_path::check_ancestors(dir, own_uid, "socket directory")?;
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.is_dir() {
        bail!("socket directory {} is not a directory", dir.display());
    }
    if meta.uid() != own_uid {
        bail!(
            "socket directory {} belongs to uid {}, not to the executor's uid {own_uid}; remove it or choose another with --socket-dir",
            dir.display(),
            meta.uid()
        );
    }
    if let Some(gid) = group {
        nix::unistd::chown(dir, None, Some(nix::unistd::Gid::from_raw(gid)))
            .with_context(|| format!("cannot give the socket directory to group {gid}"))?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750))?;
    Ok(())
}

/// Remove a socket file left by a dead executor; refuse if a live one answers.
async fn clear_stale_socket(path: &Path) -> anyhow::Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        bail!(
            "{} exists and is not a socket; refusing to replace it",
            path.display()
        );
    }
    if airlock_ipc::transport::connect(path).await.is_ok() {
        bail!(
            "another executor is already serving {}; stop it or use another --socket-dir",
            path.display()
        );
    }
    std::fs::remove_file(path)
        .with_context(|| format!("cannot remove the stale socket {}", path.display()))?;
    tracing::info!(path = %path.display(), "removed a stale socket");
    Ok(())
}

fn bind(path: &Path, mode: u32, group: Option<u32>) -> anyhow::Result<IpcListener> {
    let listener =
        listen(path, mode).with_context(|| format!("cannot listen on {}", path.display()))?;
    // bind() applies the umask (077) to the socket file; set the intended
    // mode explicitly. Until then the socket is only more restrictive.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", path.display()))?;
    if let Some(gid) = group {
        nix::unistd::chown(path, None, Some(nix::unistd::Gid::from_raw(gid)))
            .with_context(|| format!("cannot give {} to group {gid}", path.display()))?;
    }
    Ok(listener)
}

/// Tell systemd (Type=notify) about our state, if it is listening.
fn notify_systemd(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else {
        return;
    };
    if let Err(e) = sock.send_to(state.as_bytes(), &path) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

/// Peer credentials as a log-friendly string.
pub fn describe_peer(creds: &PeerCredentials) -> String {
    format!(
        "uid={} gid={} pid={}",
        creds.uid,
        creds.gid,
        creds.pid.map_or("?".into(), |p| p.to_string())
    )
}

/// The executor's own verifier of the tokens proposers forward
/// (`session_auth`), its keys fetched now so that a wrong URL stops the
/// start instead of every request. The URL is read like a credential (an
/// environment variable or a systemd credential of that name).
async fn identity_verifier(
    config: &airlock_policy::Config,
) -> anyhow::Result<Option<Arc<airlock_identity::Verifier>>> {
    let Some(auth) = &config.session_auth else {
        return Ok(None);
    };
    let url = crate::writeback::credentials::read_secret(&auth.jwks_url_env)
        .map_err(|e| anyhow!("session_auth.jwks_url_env: {e}"))?;
    let verifier = airlock_identity::Verifier::new(auth.clone(), url.trim().to_owned())
        .map_err(|e| anyhow!("session_auth.jwks_url_env ({}): {e}", auth.jwks_url_env))?;
    verifier
        .prefetch()
        .await
        .map_err(|e| anyhow!("cannot fetch the issuer's keys (session_auth.jwks_url_env): {e}"))?;
    Ok(Some(Arc::new(verifier)))
}
