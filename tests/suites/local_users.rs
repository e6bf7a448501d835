//! Another local OS user against Airlock's edges (issue 12, items 5, 6, 12):
//! an impostor listening where the clients expect the executor, unsafe
//! socket-directory ancestors, links planted at the store, and what
//! `--insecure-no-auth` opens up. Real binaries, real processes, real
//! uids (the suite runs as root and uses `nobody`).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use airlock_tests::bin;
use airlock_tests::databases::{Database, reference_config_for, sqlite_reference};
use airlock_tests::mcp::{HttpProposer, call, stdio_client};
use airlock_tests::proposals::reference_value;
use serde_json::json;

const NOBODY_UID: u32 = 65534;

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn chown_nobody(p: &Path) {
    let ok = Command::new("chown")
        .args(["nobody:nogroup"])
        .arg(p)
        .status()
        .unwrap()
        .success();
    assert!(ok, "chown nobody {}", p.display());
}

/// A private directory other users can traverse (the tests run as root).
fn workdir(prefix: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
    chmod(dir.path(), 0o755);
    dir
}

/// `airlock-test-impostor` listening at `<dir>/<socket>` as `nobody`.
struct Impostor {
    child: Child,
    capture: PathBuf,
    dir: PathBuf,
}

impl Impostor {
    fn start(parent: &Path, socket: &str) -> Impostor {
        let dir = parent.join("impostor");
        std::fs::create_dir(&dir).unwrap();
        chown_nobody(&dir);
        let capture = dir.join("captured");
        let child = Command::new("setpriv")
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_airlock-test-impostor"))
            .arg(dir.join(socket))
            .arg(&capture)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !dir.join(socket).exists() {
            assert!(Instant::now() < deadline, "the impostor did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(
            std::fs::metadata(dir.join(socket)).unwrap().uid(),
            NOBODY_UID,
            "the impostor's socket is another user's"
        );
        Impostor {
            child,
            capture,
            dir,
        }
    }

    /// The bytes clients sent it so far.
    fn received(&self) -> Vec<u8> {
        std::fs::read(&self.capture).unwrap_or_default()
    }

    /// Wait until it has received something (or 15 s pass).
    fn wait_for_bytes(&self) -> Vec<u8> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let got = self.received();
            if !got.is_empty() || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Impostor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_cli_refuses_an_impostor_socket_before_sending_anything() {
    let work = workdir("airlock-impostor-cli-");
    let imp = Impostor::start(work.path(), "operator.sock");
    let cli = |extra: &[&str], env: &[(&str, &str)]| {
        Command::new(bin("airlock"))
            .args(["proposals", "list", "--json", "--socket-dir"])
            .arg(&imp.dir)
            .args(extra)
            .envs(env.iter().copied())
            .env_remove("AIRLOCK_SOCKET_DIR")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };

    // Default: the executor must be the CLI's own uid, `airlock`, or root.
    let out = cli(&[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = airlock_tests::stdout_json(&out);
    assert_eq!(err["error"]["code"], "executor_untrusted", "{err}");
    let message = err["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("uid {NOBODY_UID}")) && message.contains("Nothing was sent"),
        "{message}"
    );
    // A wrong explicit executor user is refused the same way.
    let out = cli(&["--executor-user", "daemon"], &[]);
    assert_eq!(
        airlock_tests::stdout_json(&out)["error"]["code"],
        "executor_untrusted",
        "{}",
        text(&out)
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        imp.received().is_empty(),
        "the impostor received {:?}",
        String::from_utf8_lossy(&imp.received())
    );

    // Not vacuous: when the impostor's uid is the one the CLI is told to
    // expect, the very same connection goes through and the hello is sent.
    let out = cli(&[], &[("AIRLOCK_EXECUTOR_USER", "nobody")]);
    let got = imp.wait_for_bytes();
    assert!(
        String::from_utf8_lossy(&got).contains("\"hello\""),
        "the impostor got {:?}; cli: {}",
        String::from_utf8_lossy(&got),
        text(&out)
    );
    assert_ne!(
        airlock_tests::stdout_json(&out)["error"]["code"],
        "executor_untrusted"
    );
    let before = got.len();
    let out = cli(&["--executor-user", &NOBODY_UID.to_string()], &[]);
    let deadline = Instant::now() + Duration::from_secs(15);
    while imp.received().len() == before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(imp.received().len() > before, "{}", text(&out));
}

fn proposer_env(db: &Database) -> Vec<(&'static str, String)> {
    vec![
        ("APP_READ_URL", db.read_url.clone()),
        ("APP_TENANT_ID", "acme".to_owned()),
        ("APP_PRINCIPAL", "agent_17".to_owned()),
    ]
}

#[test]
fn the_proposer_refuses_an_impostor_before_sending_evidence_or_proposals() {
    let work = workdir("airlock-impostor-mcp-");
    let db = sqlite_reference(work.path(), "reference");
    let config = work.path().join("config.json");
    std::fs::write(
        &config,
        serde_json::to_vec(&reference_config_for(&db)).unwrap(),
    )
    .unwrap();
    let imp = Impostor::start(work.path(), "proposer.sock");
    let env = proposer_env(&db);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = stdio_client(&config, &imp.dir, &env, &[]).await;
        // The read's rows would go to the impostor as evidence: refused.
        let (r, envelope) = call(
            &client,
            "billing__inspect_invoice",
            json!({"invoice_id": "INV-3001"}),
        )
        .await;
        assert_eq!(r.is_error, Some(true), "{envelope}");
        assert_eq!(
            envelope["error"]["airlock_code"], "executor_untrusted",
            "{envelope}"
        );
        let message = envelope["error"]["message"].as_str().unwrap();
        assert!(message.contains(&format!("uid {NOBODY_UID}")), "{message}");
        let (r, envelope) = call(
            &client,
            "billing__propose_late_fee_waiver",
            json!({"invoice_id": "INV-3001", "reason": "r"}),
        )
        .await;
        assert_eq!(r.is_error, Some(true), "{envelope}");
        assert_eq!(
            envelope["error"]["airlock_code"], "executor_untrusted",
            "{envelope}"
        );
        client.cancel().await.unwrap();
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        imp.received().is_empty(),
        "the impostor received {:?}",
        String::from_utf8_lossy(&imp.received())
    );

    // Not vacuous: told to expect `nobody`, the same proposer talks to it.
    rt.block_on(async {
        let client = stdio_client(&config, &imp.dir, &env, &["--executor-user", "nobody"]).await;
        let (_, envelope) = call(
            &client,
            "billing__inspect_invoice",
            json!({"invoice_id": "INV-3001"}),
        )
        .await;
        assert_ne!(
            envelope["error"]["airlock_code"], "executor_untrusted",
            "{envelope}"
        );
        client.cancel().await.unwrap();
    });
    let got = imp.wait_for_bytes();
    assert!(
        String::from_utf8_lossy(&got).contains("\"hello\""),
        "the impostor got {:?}",
        String::from_utf8_lossy(&got)
    );
}

/// Start the executor once; `Ok(())` when it became ready (then stopped),
/// `Err(log)` when it exited first.
fn try_serve(config: &Path, socket_dir: &Path, store: &Path) -> Result<(), String> {
    let log_path = config.with_file_name(format!(
        "executor-{}.log",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(bin("airlock-executor"))
        .args(["serve", "--config"])
        .arg(config)
        .arg("--socket-dir")
        .arg(socket_dir)
        .arg("--store")
        .arg(store)
        .env("SYNAPSOR_TENANT_ID", "acme")
        .env_remove("AIRLOCK_SOCKET_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let read = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(!status.success(), "exited 0 without serving: {}", read());
            return Err(read());
        }
        if read().contains("airlock-executor ready") {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let _ = child.wait();
            return Ok(());
        }
        assert!(Instant::now() < deadline, "executor hung: {}", read());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn write_config(dir: &Path) -> PathBuf {
    let config = dir.join("config.json");
    std::fs::write(&config, serde_json::to_vec(&reference_value()).unwrap()).unwrap();
    config
}

#[test]
fn the_executor_refuses_a_socket_dir_whose_ancestors_others_can_replace() {
    let work = workdir("airlock-ancestors-");
    let config = write_config(work.path());
    let store = |name: &str| work.path().join(format!("ledger-{name}")).join("ledger.db");

    // World-writable without the sticky bit: anyone could rename `run` away.
    let open = work.path().join("open");
    std::fs::create_dir(&open).unwrap();
    chmod(&open, 0o777);
    let err = try_serve(&config, &open.join("run"), &store("open")).unwrap_err();
    assert!(
        err.contains("socket directory") && err.contains(&format!("chmod go-w {}", open.display())),
        "{err}"
    );
    assert!(
        !open.join("run").exists(),
        "refused before creating anything"
    );
    assert_eq!(std::fs::metadata(&open).unwrap().mode() & 0o7777, 0o777);

    // Group-writable: the same.
    let group = work.path().join("group");
    std::fs::create_dir(&group).unwrap();
    chmod(&group, 0o775);
    let err = try_serve(&config, &group.join("run"), &store("group")).unwrap_err();
    assert!(err.contains("its group"), "{err}");

    // An ancestor owned by another user.
    let theirs = work.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    chmod(&theirs, 0o755);
    chown_nobody(&theirs);
    let err = try_serve(&config, &theirs.join("run"), &store("theirs")).unwrap_err();
    assert!(
        err.contains(&format!("belongs to uid {NOBODY_UID}")),
        "{err}"
    );

    // Sticky and world-writable (like /tmp) with our own next component: fine;
    // with another user's next component: refused.
    let sticky = work.path().join("sticky");
    std::fs::create_dir(&sticky).unwrap();
    chmod(&sticky, 0o1777);
    try_serve(&config, &sticky.join("run"), &store("sticky")).unwrap();
    let planted = sticky.join("planted");
    std::fs::create_dir(&planted).unwrap();
    chown_nobody(&planted);
    let err = try_serve(&config, &planted.join("run"), &store("planted")).unwrap_err();
    assert!(
        err.contains(&format!("belongs to uid {NOBODY_UID}")),
        "{err}"
    );

    // A proper directory passes.
    let proper = work.path().join("proper");
    std::fs::create_dir(&proper).unwrap();
    chmod(&proper, 0o755);
    try_serve(&config, &proper.join("run"), &store("proper")).unwrap();
}

#[test]
fn store_links_are_refused_and_their_targets_left_untouched() {
    let work = workdir("airlock-store-links-");
    let config = write_config(work.path());
    let run = |name: &str| work.path().join(format!("run-{name}"));
    let victim = work.path().join("victim");
    std::fs::create_dir(&victim).unwrap();
    chmod(&victim, 0o700);

    // (a) The store directory is a link to another directory.
    let linked_dir = work.path().join("linked-dir");
    std::os::unix::fs::symlink(&victim, &linked_dir).unwrap();
    let err = try_serve(&config, &run("a"), &linked_dir.join("ledger.db")).unwrap_err();
    assert!(err.contains("is a symbolic link"), "{err}");
    assert!(
        std::fs::read_dir(&victim).unwrap().next().is_none(),
        "nothing was created in the link's target"
    );

    // (b) The ledger file is a link to an (empty) file elsewhere.
    let target_db = victim.join("target.db");
    std::fs::write(&target_db, b"").unwrap();
    let b = work.path().join("b");
    std::fs::create_dir(&b).unwrap();
    chmod(&b, 0o700);
    std::os::unix::fs::symlink(&target_db, b.join("ledger.db")).unwrap();
    let err = try_serve(&config, &run("b"), &b.join("ledger.db")).unwrap_err();
    assert!(
        err.contains("is a symbolic link") && err.contains("ledger.db"),
        "{err}"
    );
    assert_eq!(std::fs::metadata(&target_db).unwrap().len(), 0, "untouched");

    // (c) The lock file is a link to a precious file (the lock is truncated
    // and gets the pid written into it).
    let precious = victim.join("x.db.lock");
    std::fs::write(&precious, b"precious\n").unwrap();
    let c = work.path().join("c");
    std::fs::create_dir(&c).unwrap();
    chmod(&c, 0o700);
    std::os::unix::fs::symlink(&precious, c.join("ledger.db.lock")).unwrap();
    let err = try_serve(&config, &run("c"), &c.join("ledger.db")).unwrap_err();
    assert!(
        err.contains("is a symbolic link") && err.contains("ledger.db.lock"),
        "{err}"
    );
    assert_eq!(std::fs::read(&precious).unwrap(), b"precious\n");
    assert!(!c.join("ledger.db").exists(), "no ledger was created");

    // (d) A WAL companion that is a link is refused too.
    let d = work.path().join("d");
    std::fs::create_dir(&d).unwrap();
    chmod(&d, 0o700);
    std::os::unix::fs::symlink(&precious, d.join("ledger.db-wal")).unwrap();
    let err = try_serve(&config, &run("d"), &d.join("ledger.db")).unwrap_err();
    assert!(err.contains("ledger.db-wal"), "{err}");
    assert_eq!(std::fs::read(&precious).unwrap(), b"precious\n");

    // Not vacuous: the same targets, named directly, are where the executor
    // writes — following any of those links would have written them.
    try_serve(&config, &run("direct-db"), &target_db).unwrap();
    assert!(
        std::fs::metadata(&target_db).unwrap().len() > 0,
        "the executor wrote a ledger into the target file"
    );
    try_serve(&config, &run("direct-lock"), &victim.join("x.db")).unwrap();
    assert_ne!(
        std::fs::read(&precious).unwrap(),
        b"precious\n",
        "the executor wrote its pid into the lock file"
    );
}

#[test]
fn an_existing_store_dir_with_a_loose_mode_is_refused_not_chmodded() {
    let work = workdir("airlock-store-mode-");
    let config = write_config(work.path());
    let loose = work.path().join("loose");
    std::fs::create_dir(&loose).unwrap();
    chmod(&loose, 0o755);
    let err = try_serve(&config, &work.path().join("run1"), &loose.join("ledger.db")).unwrap_err();
    assert!(
        err.contains(&format!("chmod 700 {}", loose.display())),
        "{err}"
    );
    assert_eq!(
        std::fs::metadata(&loose).unwrap().mode() & 0o7777,
        0o755,
        "the mode was not changed"
    );
    assert!(!loose.join("ledger.db").exists());

    // Another user's directory (even with mode 0700) is refused as well.
    let theirs = work.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    chmod(&theirs, 0o700);
    chown_nobody(&theirs);
    let err = try_serve(
        &config,
        &work.path().join("run2"),
        &theirs.join("ledger.db"),
    )
    .unwrap_err();
    assert!(
        err.contains(&format!("belongs to uid {NOBODY_UID}")),
        "{err}"
    );

    // After the suggested fix it starts; a missing directory is created 0700.
    chmod(&loose, 0o700);
    try_serve(&config, &work.path().join("run3"), &loose.join("ledger.db")).unwrap();
    let fresh = work.path().join("fresh").join("deeper");
    try_serve(&config, &work.path().join("run4"), &fresh.join("ledger.db")).unwrap();
    assert_eq!(std::fs::metadata(&fresh).unwrap().mode() & 0o7777, 0o700);
}

/// POST an MCP initialize to `url` as `nobody` (curl); the HTTP status.
fn initialize_as_nobody(url: &str) -> String {
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "other-user", "version": "1"}}});
    let out = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
        .args([
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "POST",
        ])
        .args(["-H", "Accept: application/json, text/event-stream"])
        .args(["-H", "Content-Type: application/json"])
        .arg("--data")
        .arg(init.to_string())
        .arg(url)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn insecure_no_auth_warns_at_start_and_lets_another_local_user_in() {
    let work = workdir("airlock-no-auth-");
    let db = sqlite_reference(work.path(), "reference");
    let config = work.path().join("config.json");
    std::fs::write(
        &config,
        serde_json::to_vec(&reference_config_for(&db)).unwrap(),
    )
    .unwrap();
    let env = proposer_env(&db);
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let run_dir = work.path().join("run");
    let start = |env: &[(&str, &str)], args: &[&str], log: &Path| {
        HttpProposer::start_with_stderr(
            &config,
            &run_dir,
            env,
            args,
            Stdio::from(std::fs::File::create(log).unwrap()),
        )
    };

    // With the flag: a loud warning, and another OS user gets in.
    let open_log = work.path().join("open.log");
    let open = start(&env, &["--insecure-no-auth"], &open_log);
    assert_eq!(initialize_as_nobody(&open.url), "200");
    drop(open);
    let log = std::fs::read_to_string(&open_log).unwrap();
    assert!(
        log.contains("WARN")
            && log.contains("INSECURE: --insecure-no-auth")
            && log.contains("EVERY local OS user"),
        "{log}"
    );

    // With a token: no warning, and the same request from `nobody` is refused.
    env.push(("MCP_TOKEN", "test-bearer-token-0123456789"));
    let token_log = work.path().join("token.log");
    let guarded = start(&env, &["--auth-token-env", "MCP_TOKEN"], &token_log);
    assert_eq!(initialize_as_nobody(&guarded.url), "401");
    drop(guarded);
    let log = std::fs::read_to_string(&token_log).unwrap();
    assert!(!log.contains("INSECURE"), "{log}");
}
