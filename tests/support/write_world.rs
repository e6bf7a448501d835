//! One reference database with extra tables and an executor running on a
//! config of the write-kind suites (`write_kinds`, `bounded_sets`,
//! `revert`): propose over MCP with the real proposer, decide and apply
//! with the real `airlock` CLI, read the database back.

use std::process::Output;

use airlock_policy::config::Engine;
use serde_json::Value;

use crate::databases::{Database, query_strings};
use crate::executor::ExecutorProcess;
use crate::mcp::{agent_env, call, propose_over_mcp, stdio_client};
use crate::runtime as rt;

/// The schema a target names on `db`'s engine: Postgres `public`, the
/// MySQL database itself, SQLite's `main`.
pub fn schema_of(db: &Database) -> String {
    match db.engine {
        Engine::Postgres => "public".to_owned(),
        Engine::Mysql => db.name.clone(),
        Engine::Sqlite => "main".to_owned(),
    }
}

pub struct WriteWorld {
    pub exec: ExecutorProcess,
    pub db: Database,
    pub env: Vec<(&'static str, String)>,
}

impl WriteWorld {
    /// Start the executor on `config` with the trusted tenant `acme` and
    /// the write URL; with `fault` (`AIRLOCK_FAULT=<point>`) it kills
    /// itself, as kill -9 would, when an apply reaches that point.
    pub fn start(db: Database, config: &Value, fault: Option<&str>) -> WriteWorld {
        let mut env = vec![
            ("APP_TENANT_ID", "acme".to_owned()),
            ("APP_WRITE_URL", db.write_url.clone()),
        ];
        if let Some(f) = fault {
            env.push(("AIRLOCK_FAULT", f.to_owned()));
        }
        let e: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let exec = ExecutorProcess::start(config, &e);
        WriteWorld { exec, db, env }
    }

    /// Start the executor again on the same ledger, with `self.env`.
    fn start_again(&mut self) {
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.exec.restart(&env);
    }

    /// Collect an executor that died at its fault point and start it again
    /// (the same ledger), without the fault when `keep_fault` is false.
    pub fn restart_after_crash(&mut self, keep_fault: bool) {
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(
            !self.exec.is_alive(),
            "the executor died at its fault point"
        );
        self.exec.reap();
        if !keep_fault {
            self.env.retain(|(k, _)| *k != "AIRLOCK_FAULT");
        }
        self.start_again();
    }

    pub fn restart(&mut self) {
        self.exec.stop();
        self.start_again();
    }

    /// Propose over MCP; the proposal id.
    pub fn propose(&self, capability: &str, args: Value) -> String {
        rt().block_on(propose_over_mcp(
            &self.exec.config_path,
            &self.exec.socket_dir,
            &self.db.read_url,
            capability,
            args,
        ))
    }

    /// The tool's whole answer, for refusals.
    pub fn call(&self, capability: &str, args: Value) -> Value {
        rt().block_on(async {
            let client = stdio_client(
                &self.exec.config_path,
                &self.exec.socket_dir,
                &agent_env(&self.db.read_url),
                &[],
            )
            .await;
            let tool = airlock_policy::catalog::openai_alias(capability);
            let (_, envelope) = call(&client, &tool, args).await;
            client.cancel().await.unwrap();
            envelope
        })
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        self.exec.cli(args)
    }

    /// `airlock proposals approve ID --yes --json`, whatever it answers.
    pub fn approve(&self, id: &str) -> Output {
        self.cli(&["proposals", "approve", id, "--yes", "--json"])
    }

    /// `airlock apply ID --json`: (exit code, answer).
    pub fn apply(&self, id: &str) -> (Option<i32>, Value) {
        let out = self.cli(&["apply", id, "--json"]);
        (
            out.status.code(),
            serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
        )
    }

    /// `airlock proposals show ID --json`.
    pub fn show(&self, id: &str) -> Value {
        let out = self.cli(&["proposals", "show", id, "--json"]);
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    pub fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        query_strings(&self.db, sql)
    }

    /// The SQL type to cast a value to text with on this engine.
    pub fn text(&self) -> &'static str {
        if self.db.engine == Engine::Mysql {
            "CHAR"
        } else {
            "TEXT"
        }
    }

    /// `airlock ledger verify` on the executor's ledger must pass.
    pub fn verify_ledger(&self) {
        let out = crate::airlock(&[
            "ledger",
            "verify",
            "--store",
            self.exec.store.to_str().unwrap(),
        ]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
