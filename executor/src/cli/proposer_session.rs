//! The operator CLI as an MCP client of a real `airlock-proposer`: spawn the
//! proposer binary that sits next to this `airlock`, speak MCP to it over
//! stdio (rmcp), list its tools and call them as a model would. Used by
//! `airlock demo` and `airlock smoke call`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use serde_json::Value;

/// A binary installed next to this `airlock` (`airlock-proposer`,
/// `airlock-executor`).
pub fn sibling(name: &str) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let path = exe.parent().map(|d| d.join(name)).ok_or("no directory")?;
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} was not found next to this `airlock`; build all binaries with `cargo build --release`",
            path.display()
        ))
    }
}

/// The tool the proposer offers under `wanted`: the same name, or the same
/// capability under its other spelling (`billing.inspect_invoice` and its
/// client-safe alias `billing__inspect_invoice`).
pub fn resolve_tool<'a>(offered: &'a [String], wanted: &str) -> Option<&'a str> {
    let safe = |s: &str| s.replace('.', "__");
    offered
        .iter()
        .find(|t| t.as_str() == wanted)
        .or_else(|| offered.iter().find(|t| safe(t) == safe(wanted)))
        .map(String::as_str)
}

/// How to start the proposer.
pub struct Launch<'a> {
    pub config: &'a Path,
    /// Its `--socket-dir`, when given.
    pub socket_dir: Option<&'a Path>,
    /// More arguments after `serve --config F [--socket-dir D]`.
    pub extra: Vec<OsString>,
    /// Its whole environment (PATH included): nothing else is inherited.
    pub env: Vec<(String, OsString)>,
}

/// An MCP session with a proposer this process spawned; the proposer stops
/// when the session ends (its stdin closes) or is dropped.
pub struct ProposerSession {
    service: RunningService<RoleClient, ()>,
    pid: u32,
}

impl ProposerSession {
    /// Spawn `airlock-proposer serve` over stdio and complete the MCP
    /// handshake. The proposer's stderr goes to ours, so its own refusal
    /// (a missing read URL, a write credential in its environment) is shown.
    pub async fn start(launch: Launch<'_>) -> Result<ProposerSession, String> {
        let bin = sibling("airlock-proposer")?;
        let cmd = tokio::process::Command::new(&bin).configure(|c| {
            c.args(["serve", "--config"]).arg(launch.config);
            if let Some(dir) = launch.socket_dir {
                c.arg("--socket-dir").arg(dir);
            }
            c.args(&launch.extra);
            c.env_clear();
            for (k, v) in &launch.env {
                c.env(k, v);
            }
        });
        let (transport, _stderr) = TokioChildProcess::builder(cmd)
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let pid = transport.id().unwrap_or(0);
        let service = ().serve(transport).await.map_err(|e| {
            format!(
                "airlock-proposer did not start an MCP session ({e}); its own message, if it gave one, is above"
            )
        })?;
        Ok(ProposerSession { service, pid })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The tool names the proposer offers, in its order.
    pub async fn tool_names(&self) -> Result<Vec<String>, String> {
        let tools = self
            .service
            .list_all_tools()
            .await
            .map_err(|e| format!("tools/list failed: {e}"))?;
        Ok(tools.into_iter().map(|t| t.name.into_owned()).collect())
    }

    /// Call one tool with `args` (an object) and return the result envelope
    /// the model receives: the structured content, else the JSON of the
    /// first text block, else null.
    pub async fn call(&self, name: &str, args: Value) -> Result<Value, String> {
        let mut params = CallToolRequestParams::new(name.to_owned());
        if let Value::Object(m) = args {
            params = params.with_arguments(m);
        }
        let result = self
            .service
            .call_tool(params)
            .await
            .map_err(|e| format!("tools/call {name} failed: {e}"))?;
        if let Some(envelope) = result.structured_content {
            return Ok(envelope);
        }
        Ok(result
            .content
            .iter()
            .find_map(|c| c.as_text())
            .and_then(|t| serde_json::from_str(&t.text).ok())
            .unwrap_or(Value::Null))
    }

    /// End the session (the proposer exits when its stdin closes).
    pub async fn close(self) {
        let _ = self.service.cancel().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tool_is_found_by_either_spelling() {
        let dotted = vec!["billing.inspect_invoice".to_owned(), "a.b".to_owned()];
        let safe = vec!["billing__inspect_invoice".to_owned()];
        assert_eq!(
            resolve_tool(&dotted, "billing__inspect_invoice"),
            Some("billing.inspect_invoice")
        );
        assert_eq!(
            resolve_tool(&safe, "billing.inspect_invoice"),
            Some("billing__inspect_invoice")
        );
        assert_eq!(resolve_tool(&dotted, "a.b"), Some("a.b"));
        assert_eq!(resolve_tool(&dotted, "billing.nope"), None);
        // An exact name wins over an alias match.
        let both = vec!["x__y".to_owned(), "x.y".to_owned()];
        assert_eq!(resolve_tool(&both, "x.y"), Some("x.y"));
    }
}
