//! `airlock smoke call TOOL --args JSON`: one tool call through a real
//! `airlock-proposer`, exactly as a model would make it — the proposer is
//! spawned over stdio with the reviewed config and, from this shell's
//! environment, only what a proposer may hold (the read URLs and the
//! trusted-context variables) — and the result envelope the model would
//! receive, printed as JSON.

use std::ffi::OsString;

use airlock_policy::Config;
use serde_json::{Map, Value};

use super::ConnArgs;
use super::output::{Exit, fail, print_json};
use super::proposer_session::{Launch, ProposerSession, resolve_tool};

/// Variables of the operator's environment that steer where the proposer
/// finds the executor and how much it logs (never a credential).
const PASSED_THROUGH: &[&str] = &[
    "PATH",
    "HOME",
    "XDG_RUNTIME_DIR",
    "AIRLOCK_SOCKET_DIR",
    "AIRLOCK_EXECUTOR_USER",
];

/// `--args`: a JSON object.
pub fn parse_args(text: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(format!(
            "`--args` must be a JSON object of the tool's arguments, e.g. '{{\"invoice_id\": \"INV-3001\"}}', not {}",
            match other {
                Value::Null => "null",
                Value::Bool(_) => "a boolean",
                Value::Number(_) => "a number",
                Value::String(_) => "a string",
                Value::Array(_) => "an array",
                Value::Object(_) => "an object",
            }
        )),
        Err(e) => Err(format!("`--args` is not valid JSON: {e}")),
    }
}

/// Whether the envelope says the call succeeded (`ok` in format 2; no
/// `error` in format 1).
pub fn envelope_ok(envelope: &Value) -> bool {
    match envelope.get("ok") {
        Some(ok) => ok.as_bool() == Some(true),
        None => envelope.is_object() && envelope.get("error").is_none_or(Value::is_null),
    }
}

/// The proposer's environment: what the config says a proposer may hold,
/// plus the variables in [`PASSED_THROUGH`], each only when set here. Write
/// authority named by the config is never passed (and is reported).
fn proposer_env(
    cfg: &Config,
    get: impl Fn(&str) -> Option<OsString>,
) -> (Vec<(String, OsString)>, Vec<String>) {
    let forbidden = cfg.write_authority_env_names();
    let mut env: Vec<(String, OsString)> = Vec::new();
    for name in PASSED_THROUGH
        .iter()
        .copied()
        .chain(cfg.proposer_env_names())
    {
        if forbidden.contains(&name) || env.iter().any(|(k, _)| k == name) {
            continue;
        }
        if let Some(v) = get(name) {
            env.push((name.to_owned(), v));
        }
    }
    let log = get("AIRLOCK_LOG").unwrap_or_else(|| "warn".into());
    env.push(("AIRLOCK_LOG".to_owned(), log));
    let withheld = forbidden
        .into_iter()
        .filter(|n| get(n).is_some())
        .map(str::to_owned)
        .collect();
    (env, withheld)
}

pub fn call(conn: &ConnArgs, tool: &str, args_text: &str, alias_mode: Option<&str>) -> Exit {
    let args = match parse_args(args_text) {
        Ok(a) => a,
        Err(e) => return fail(false, "usage", &e, Exit::Usage),
    };
    let config_path = conn
        .config
        .clone()
        .unwrap_or_else(|| crate::config_file::DEFAULT_CONFIG.into());
    let loaded = match crate::config_file::read_config(&config_path) {
        Ok(l) => l,
        Err(e) => return fail(false, "config", &e.to_string(), Exit::Usage),
    };
    let Some(cfg) = loaded.config else {
        return fail(
            false,
            "config",
            &format!(
                "config {} is invalid; run `airlock config validate --config {}` to see why",
                config_path.display(),
                config_path.display()
            ),
            Exit::Failure,
        );
    };
    let (env, withheld) = proposer_env(&cfg, |k| std::env::var_os(k));
    if !withheld.is_empty() {
        eprintln!(
            "airlock: not passed to the proposer (write authority stays with the executor): {}",
            withheld.join(", ")
        );
    }
    let mut extra: Vec<OsString> = Vec::new();
    if let Some(user) = &conn.executor_user {
        extra.extend(["--executor-user".into(), user.into()]);
    }
    if let Some(mode) = alias_mode {
        extra.extend(["--alias-mode".into(), mode.into()]);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(false, "runtime", &e.to_string(), Exit::Failure),
    };
    let launch = Launch {
        config: &config_path,
        socket_dir: conn.socket_dir.as_deref(),
        extra,
        env,
    };
    runtime.block_on(run(launch, tool, args))
}

async fn run(launch: Launch<'_>, tool: &str, args: Map<String, Value>) -> Exit {
    let config_shown = launch.config.display().to_string();
    let session = match ProposerSession::start(launch).await {
        Ok(s) => s,
        Err(e) => return fail(false, "proposer", &e, Exit::Failure),
    };
    let exit = call_on(&session, tool, args, &config_shown).await;
    session.close().await;
    exit
}

async fn call_on(
    session: &ProposerSession,
    tool: &str,
    args: Map<String, Value>,
    config: &str,
) -> Exit {
    let offered = match session.tool_names().await {
        Ok(t) => t,
        Err(e) => return fail(false, "proposer", &e, Exit::Failure),
    };
    let Some(name) = resolve_tool(&offered, tool) else {
        return fail(
            false,
            "unknown_tool",
            &format!(
                "the proposer (config {config}) offers no tool `{}`; it offers: {}",
                super::output::escape(tool),
                offered.join(", ")
            ),
            Exit::Usage,
        );
    };
    match session.call(name, Value::Object(args)).await {
        Ok(envelope) => {
            print_json(&envelope);
            if envelope_ok(&envelope) {
                Exit::Ok
            } else {
                Exit::Failure
            }
        }
        Err(e) => fail(false, "proposer", &e, Exit::Failure),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn args_must_be_a_json_object() {
        assert_eq!(
            parse_args(r#"{"invoice_id": "INV-1"}"#).unwrap()["invoice_id"],
            "INV-1"
        );
        assert!(parse_args("{}").unwrap().is_empty());
        assert!(parse_args("[1]").unwrap_err().contains("not an array"));
        assert!(parse_args("\"x\"").unwrap_err().contains("not a string"));
        assert!(parse_args("{").unwrap_err().contains("not valid JSON"));
    }

    #[test]
    fn ok_follows_the_envelope() {
        assert!(envelope_ok(&json!({"ok": true, "error": null})));
        assert!(!envelope_ok(&json!({"ok": false, "error": {"code": "x"}})));
        assert!(!envelope_ok(&json!({"ok": "true"})));
        // Format 1: no `ok`, success is the absence of an error.
        assert!(envelope_ok(&json!({"invoice": {}, "error": null})));
        assert!(envelope_ok(&json!({"invoice": {}})));
        assert!(!envelope_ok(&json!({"error": {"code": "x"}})));
        assert!(!envelope_ok(&Value::Null));
    }

    #[test]
    fn the_proposer_gets_no_write_authority() {
        let cfg = airlock_policy::load_config_str(include_str!(
            "../../../tests/fixtures/reference/airlock.reference.json"
        ))
        .config
        .unwrap();
        let write = cfg.write_authority_env_names()[0].to_owned();
        let read = cfg.proposer_env_names()[0].to_owned();
        let set = [
            write.clone(),
            read.clone(),
            "PATH".into(),
            "SECRET_X".into(),
        ];
        let (env, withheld) = proposer_env(&cfg, |k| {
            set.iter().any(|s| s == k).then(|| OsString::from("v"))
        });
        let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert!(names.contains(&read.as_str()), "{names:?}");
        assert!(names.contains(&"PATH"));
        assert!(!names.contains(&write.as_str()));
        assert!(!names.contains(&"SECRET_X"));
        assert_eq!(withheld, vec![write]);
        assert_eq!(
            env.iter().find(|(k, _)| k == "AIRLOCK_LOG").map(|(_, v)| v),
            Some(&OsString::from("warn"))
        );
    }
}
