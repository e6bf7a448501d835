//! A real `airlock-executor serve` process in a private temporary directory.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use airlock_ipc::Role;
use airlock_ipc::client::Client;
use serde_json::Value;

use crate::bin;

pub struct ExecutorProcess {
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub socket_dir: PathBuf,
    pub store: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
    /// More `serve` arguments, given at every (re)start.
    extra_args: Vec<String>,
}

impl ExecutorProcess {
    /// Write `config` to a fresh directory and start the executor on it,
    /// with `env` added to its environment. Waits until both sockets exist.
    pub fn start(config: &Value, env: &[(&str, &str)]) -> ExecutorProcess {
        ExecutorProcess::start_with_setup(config, env, |_| {})
    }

    /// Like [`ExecutorProcess::start`], but runs `setup` on the fresh
    /// directory before the executor first starts (e.g. to mount a small
    /// filesystem at `<dir>/ledger`, where the store lives).
    /// Like [`ExecutorProcess::start`], with more `serve` arguments (kept
    /// for restarts).
    pub fn start_with_args(config: &Value, env: &[(&str, &str)], args: &[&str]) -> ExecutorProcess {
        ExecutorProcess::start_inner(config, env, |_| {}, args)
    }

    pub fn start_with_setup(
        config: &Value,
        env: &[(&str, &str)],
        setup: impl FnOnce(&Path),
    ) -> ExecutorProcess {
        ExecutorProcess::start_inner(config, env, setup, &[])
    }

    fn start_inner(
        config: &Value,
        env: &[(&str, &str)],
        setup: impl FnOnce(&Path),
        args: &[&str],
    ) -> ExecutorProcess {
        let dir = tempfile::Builder::new()
            .prefix("airlock-test-")
            .tempdir()
            .expect("temp dir");
        // Other OS users (the `nobody` tests) must be able to traverse to the sockets.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let config_path = dir.path().join("config.json");
        std::fs::write(&config_path, serde_json::to_vec_pretty(config).unwrap()).unwrap();
        setup(dir.path());
        let mut p = ExecutorProcess {
            socket_dir: dir.path().join("run"),
            store: dir.path().join("ledger").join("ledger.db"),
            log_path: dir.path().join("executor.log"),
            config_path,
            dir,
            child: None,
            extra_args: args.iter().map(|a| (*a).to_owned()).collect(),
        };
        p.spawn(env);
        p
    }

    fn spawn(&mut self, env: &[(&str, &str)]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .unwrap();
        let mut cmd = Command::new(bin("airlock-executor"));
        cmd.arg("serve")
            .arg("--config")
            .arg(&self.config_path)
            .arg("--socket-dir")
            .arg(&self.socket_dir)
            .arg("--store")
            .arg(&self.store)
            .args(&self.extra_args)
            .env_remove("AIRLOCK_SOCKET_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let readies = self.log().matches("airlock-executor ready").count();
        self.child = Some(cmd.spawn().expect("spawn airlock-executor"));
        let deadline = Instant::now() + Duration::from_secs(20);
        // Stale socket files may exist already: wait for this start's ready line.
        while self.log().matches("airlock-executor ready").count() == readies {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("airlock-executor exited early ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "airlock-executor did not create its sockets:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Restart after `stop`.
    pub fn restart(&mut self, env: &[(&str, &str)]) {
        assert!(self.child.is_none(), "stop the executor first");
        self.spawn(env);
    }

    pub fn proposer_socket(&self) -> PathBuf {
        self.socket_dir.join("proposer.sock")
    }

    pub fn operator_socket(&self) -> PathBuf {
        self.socket_dir.join("operator.sock")
    }

    pub async fn client(&self, role: Role) -> Client {
        let path = match role {
            Role::Proposer => self.proposer_socket(),
            Role::Operator => self.operator_socket(),
        };
        Client::connect(&path, role, "test", Duration::from_secs(10))
            .await
            .expect("connect and hello")
    }

    /// Run the operator CLI against this executor.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(bin("airlock"))
            .args(args)
            .arg("--socket-dir")
            .arg(&self.socket_dir)
            .stdin(Stdio::null())
            .output()
            .expect("spawn airlock")
    }

    /// Run the operator CLI as another OS user (the tests run as root).
    pub fn cli_as(&self, user: &str, args: &[&str]) -> Output {
        Command::new("runuser")
            .arg("-u")
            .arg(user)
            .arg("--")
            .arg(bin("airlock"))
            .args(args)
            .arg("--socket-dir")
            .arg(&self.socket_dir)
            .stdin(Stdio::null())
            .output()
            .expect("spawn airlock via runuser")
    }

    pub fn is_alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("executor running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "executor did not stop on SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Collect a child that died (e.g. after kill -9) so it can be restarted.
    pub fn reap(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log_path) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for ExecutorProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
