//! Issue 12, item 1: code running inside the sandboxed proposer cannot
//! escape through the process that started it.
//!
//! A small shared object (`tests/fixtures/sandbox-probe/probe.c`, compiled
//! here with the system C compiler) is LD_PRELOADed into the real
//! `airlock-proposer`, which this test process starts over stdio as an MCP
//! client would. Once the proposer's seccomp filter is on (`Seccomp: 2`), the
//! probe tries to open this process's `/proc/<pid>/mem` for writing and its
//! `environ`, to create a file in a writable directory, and to signal this
//! process (`kill`, `tgkill`, `pidfd_send_signal`, all with signal 0). Every
//! attempt must fail while the proposer still serves a real read (Postgres,
//! through a host *name*, so name resolution works under the sandbox). The
//! same probe is run against `--no-sandbox`, where every attempt succeeds:
//! the test process (root, dumpable) is a target the probe would otherwise
//! reach, so the sandboxed run cannot pass vacuously.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use airlock_tests::databases::{Database, postgres_reference, reference_config_for};
use airlock_tests::executor::ExecutorProcess;
use airlock_tests::mcp::{agent_env, call, stdio_client_with_stderr};
use airlock_tests::workspace_root;
use serde_json::json;

use airlock_tests::runtime as rt;

fn postgres() -> &'static Database {
    static DB: OnceLock<Database> = OnceLock::new();
    DB.get_or_init(|| postgres_reference("airlock_e2e_sandbox_probe"))
}

/// The probe, compiled once per test process into a temporary directory.
fn probe_library() -> &'static Path {
    static LIB: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, lib) = LIB.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("probe.so");
        let source = workspace_root().join("tests/fixtures/sandbox-probe/probe.c");
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
        let out = Command::new(&cc)
            .args(["-shared", "-fPIC", "-O1", "-Wall", "-o"])
            .arg(&lib)
            .arg(&source)
            .args(["-pthread", "-ldl"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run the C compiler `{cc}`: {e}"));
        assert!(
            out.status.success(),
            "compiling {} failed:\n{}",
            source.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        (dir, lib)
    });
    lib
}

/// What the probe reported, and the proposer's whole stderr.
struct ProbeRun {
    fields: BTreeMap<String, String>,
    created: bool,
    log: String,
}

impl ProbeRun {
    fn get(&self, key: &str) -> &str {
        self.fields
            .get(key)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("the probe reported no `{key}`:\n{}", self.log))
    }
}

const ATTEMPTS: [&str; 6] = ["mem", "environ", "create", "kill", "tgkill", "pidfd_signal"];

/// Start the proposer with the probe preloaded and `extra` flags, serve one
/// real read, and collect the probe's report.
fn run_probe(extra: &[&str], wait: &str) -> ProbeRun {
    let db = postgres();
    let config = reference_config_for(db);
    let exec = ExecutorProcess::start(&config, &[("APP_TENANT_ID", "acme")]);
    let scratch = tempfile::tempdir().unwrap();
    let writable = scratch.path().join("writable");
    std::fs::create_dir(&writable).unwrap();
    let stderr_path = scratch.path().join("proposer.stderr");
    let stderr = std::fs::File::create(&stderr_path).unwrap();
    // A host name, not an address: getaddrinfo must work inside the sandbox.
    let read_url = db.read_url.replacen("127.0.0.1", "localhost", 1);
    assert_ne!(
        read_url, db.read_url,
        "the reader URL has no 127.0.0.1 host"
    );
    let preload = probe_library().display().to_string();
    let probe_dir = writable.display().to_string();
    let env = [
        ("APP_READ_URL", read_url.as_str()),
        ("APP_TENANT_ID", "acme"),
        ("APP_PRINCIPAL", "agent_17"),
        ("LD_PRELOAD", preload.as_str()),
        ("AIRLOCK_PROBE_DIR", probe_dir.as_str()),
        ("AIRLOCK_PROBE_WAIT", wait),
    ];
    let log = rt().block_on(async {
        let client = stdio_client_with_stderr(
            &exec.config_path,
            &exec.socket_dir,
            &env,
            extra,
            Stdio::from(stderr),
        )
        .await;
        let deadline = Instant::now() + Duration::from_secs(40);
        let log = loop {
            let log = std::fs::read_to_string(&stderr_path).unwrap_or_default();
            if log.lines().any(|l| l.starts_with("PROBE ")) {
                break log;
            }
            assert!(
                Instant::now() < deadline,
                "the probe did not report within 40 s; proposer stderr:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        // The proposer still does its job after the attempts.
        let (r, envelope) = call(
            &client,
            "billing__inspect_invoice",
            json!({"invoice_id": "INV-3001"}),
        )
        .await;
        assert_eq!(r.is_error, Some(false), "{envelope}\n{log}");
        assert_eq!(envelope["data"]["late_fee_cents"], 5500, "{envelope}");
        client.cancel().await.unwrap();
        log
    });
    let line = log
        .lines()
        .find(|l| l.starts_with("PROBE "))
        .unwrap_or_default()
        .to_owned();
    eprintln!("proposer {extra:?}: {line}");
    let fields = line
        .split_whitespace()
        .skip(1)
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let created = writable.join("created-by-probe").exists();
    ProbeRun {
        fields,
        created,
        log,
    }
}

#[test]
fn code_inside_the_proposer_cannot_reach_its_parent_and_can_without_the_sandbox() {
    // Sandboxed (the default).
    let sandboxed = run_probe(&[], "seccomp");
    assert_eq!(
        sandboxed.get("seccomp"),
        "2",
        "the probe ran before the filter:\n{}",
        sandboxed.log
    );
    for attempt in ATTEMPTS {
        let got = sandboxed.get(attempt);
        assert!(
            got == "EACCES" || got == "EPERM",
            "sandboxed proposer: {attempt} = {got}, want a refusal (EACCES/EPERM):\n{}",
            sandboxed.log
        );
    }
    // Landlock refuses the /proc files and the file creation; signals are
    // refused by the seccomp filter (and Landlock's signal scope).
    assert_eq!(sandboxed.get("create"), "EACCES", "{}", sandboxed.log);
    assert_eq!(sandboxed.get("dumpable"), "0", "{}", sandboxed.log);
    assert!(!sandboxed.created, "the sandboxed probe created a file");
    assert!(
        !sandboxed.log.contains("WEAKER SANDBOX"),
        "{}",
        sandboxed.log
    );

    // Control: the same probe, the same parent, no sandbox.
    let open = run_probe(&["--no-sandbox"], "sleep");
    assert!(
        open.log.contains("SANDBOX DISABLED (--no-sandbox)"),
        "{}",
        open.log
    );
    assert_eq!(open.get("seccomp"), "0", "{}", open.log);
    for attempt in ATTEMPTS {
        assert_eq!(
            open.get(attempt),
            "ok",
            "without the sandbox {attempt} should succeed (else the sandboxed run proves nothing):\n{}",
            open.log
        );
    }
    assert!(
        open.created,
        "the unsandboxed probe did not create its file"
    );
    assert_eq!(open.get("dumpable"), "1", "{}", open.log);
}

/// `--allow-weaker-sandbox` only permits a weaker sandbox; on a kernel that
/// enforces everything it changes nothing and logs no warning.
#[test]
fn allow_weaker_sandbox_changes_nothing_where_landlock_is_complete() {
    let run = run_probe(&["--allow-weaker-sandbox"], "seccomp");
    assert_eq!(run.get("seccomp"), "2", "{}", run.log);
    for attempt in ATTEMPTS {
        let got = run.get(attempt);
        assert!(
            got == "EACCES" || got == "EPERM",
            "{attempt} = {got}:\n{}",
            run.log
        );
    }
    assert!(!run.created);
    assert!(!run.log.contains("WEAKER SANDBOX"), "{}", run.log);
}

/// The file sandbox lets the proposer read its SQLite source's directory,
/// not only the file: in WAL mode SQLite opens `<db>-wal` and `<db>-shm`,
/// which a writer creates after the proposer started (they are removed when
/// the last connection closes). A change still in the WAL must be read.
#[test]
fn a_wal_mode_sqlite_source_is_read_under_the_file_sandbox() {
    use sqlx::{ConnectOptions, Connection, Executor};

    let dir = tempfile::tempdir().unwrap();
    let db = airlock_tests::databases::sqlite_reference(dir.path(), "wal");
    let file = dir.path().join("wal.db");
    let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(&file);
    rt().block_on(async {
        let mut conn = opts.connect().await.unwrap();
        conn.execute("PRAGMA journal_mode=WAL").await.unwrap();
        conn.close().await.unwrap();
    });
    assert!(
        !dir.path().join("wal.db-wal").exists(),
        "the WAL file should not exist before the proposer starts"
    );
    let config = reference_config_for(&db);
    let exec = ExecutorProcess::start(&config, &[("APP_TENANT_ID", "acme")]);
    let env = agent_env(&db.read_url);
    rt().block_on(async {
        let client = stdio_client_with_stderr(
            &exec.config_path,
            &exec.socket_dir,
            &env,
            &[],
            Stdio::inherit(),
        )
        .await;
        // A writer opens the database now: -wal and -shm appear, and the
        // change stays in the WAL while the connection is open.
        let mut writer = opts.connect().await.unwrap();
        writer.execute("PRAGMA wal_autocheckpoint=0").await.unwrap();
        writer
            .execute("UPDATE invoices SET late_fee_cents = 7700 WHERE id = 'INV-3001'")
            .await
            .unwrap();
        assert!(dir.path().join("wal.db-wal").exists());
        let (r, envelope) = call(
            &client,
            "billing__inspect_invoice",
            json!({"invoice_id": "INV-3001"}),
        )
        .await;
        assert_eq!(r.is_error, Some(false), "{envelope}");
        assert_eq!(envelope["data"]["late_fee_cents"], 7700, "{envelope}");
        writer.close().await.unwrap();
        client.cancel().await.unwrap();
    });
}

/// Landlock confines the calling thread and the threads it starts later,
/// not threads that already exist. A thread started before the proposer's
/// `main` (here by the probe's constructor) would stay unconfined, so the
/// proposer refuses to start instead of serving half-sandboxed.
#[test]
fn a_thread_that_predates_the_sandbox_makes_the_proposer_refuse_to_start() {
    let db = postgres();
    let config = reference_config_for(db);
    let exec = ExecutorProcess::start(&config, &[("APP_TENANT_ID", "acme")]);
    let start = |early: bool| {
        let mut cmd = Command::new(airlock_tests::bin("airlock-proposer"));
        cmd.arg("serve")
            .arg("--config")
            .arg(&exec.config_path)
            .arg("--socket-dir")
            .arg(&exec.socket_dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("APP_READ_URL", &db.read_url)
            .env("APP_TENANT_ID", "acme")
            .env("APP_PRINCIPAL", "agent_17")
            .env("LD_PRELOAD", probe_library())
            .env("AIRLOCK_PROBE_EARLY_THREAD", if early { "1" } else { "0" })
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let out = cmd.output().unwrap();
        (
            out.status,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (status, stderr) = start(true);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr
            .contains("the file sandbox must go on while the process has one thread, but it has 2"),
        "{stderr}"
    );
    assert!(!stderr.contains("airlock-proposer ready"), "{stderr}");
    // Control: the same start without the early thread gets past the
    // sandbox (and then ends at stdin's EOF).
    let (_, stderr) = start(false);
    assert!(stderr.contains("airlock-proposer ready"), "{stderr}");
    assert!(!stderr.contains("one thread"), "{stderr}");
}
