//! Support for Airlock's end-to-end suites: locating (and building) the real
//! binaries, spawning them, and reaching the real database servers.

#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub mod databases;
pub mod executor;
pub mod jwt;
pub mod mcp;
pub mod onboarding;
pub mod proposals;
pub mod receiver;
pub mod schema;
pub mod webdriver;
pub mod write_world;

/// The workspace root (the directory holding the top-level Cargo.toml).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_owned()
}

/// The repository's reference example (`tests/fixtures/reference/`): the
/// reviewed config and the same database for each engine.
pub fn reference_dir() -> PathBuf {
    workspace_root().join("tests/fixtures/reference")
}

/// The reference config (`tests/fixtures/reference/airlock.reference.json`).
pub fn reference_config() -> PathBuf {
    reference_dir().join("airlock.reference.json")
}

/// Path of a workspace binary, built (once per test process) with the same
/// profile as the running test, so a test never runs a stale binary.
pub fn bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let exe = std::env::current_exe().expect("current exe");
        // target/<profile>/deps/<test> → target/<profile>
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test binary lives in target/<profile>/deps")
            .to_owned();
        let target_dir = profile_dir.parent().expect("target dir").to_owned();
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        // `cargo bench` runs bench binaries (built with the `bench` profile,
        // which also lives in target/release) with a `--bench` argument:
        // build the binaries with that same profile, not `--release`.
        let bench = release && std::env::args().skip(1).any(|a| a == "--bench");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(workspace_root())
            .args([
                "build",
                "--quiet",
                // All three programs (the package also builds the proposer;
                // naming `airlock-proposer` too would build each file twice).
                "-p",
                "airlock-executor",
                "--bins",
            ])
            .env("CARGO_TARGET_DIR", &target_dir);
        if !bench {
            // The features `cargo test --workspace` unifies, so nothing is
            // rebuilt. Benches measure the production build (no fault points).
            cmd.args(["--features", "airlock-executor/fault-injection"]);
        }
        if bench {
            cmd.args(["--profile", "bench"]);
        } else if release {
            cmd.arg("--release");
        }
        let status = cmd
            .status()
            .expect("run cargo build for the Airlock binaries");
        assert!(status.success(), "building the Airlock binaries failed");
        profile_dir
    });
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "binary {} was not built at {}",
        name,
        path.display()
    );
    path
}

/// Run `airlock` with arguments and return its output.
pub fn airlock(args: &[&str]) -> Output {
    Command::new(bin("airlock"))
        .args(args)
        .output()
        .expect("spawn airlock")
}

/// Parse a command's stdout as JSON, with a useful message when it is not.
pub fn stdout_json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n--- stdout\n{}\n--- stderr\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Run `f` to completion on a private runtime in its own thread, so this
/// works from sync tests and from inside async tests alike.
pub fn block_on<F>(f: F) -> F::Output
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(f)
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

/// The multi-thread runtime (two workers) the end-to-end suites drive their
/// clients on.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}
