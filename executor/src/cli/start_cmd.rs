//! `airlock start --from-env VAR`: the laptop path in one command. Draft a
//! config from the database (as `init` does; an existing config is used as
//! it is), validate it, start `airlock-executor` in the background with
//! everything beside the config in `.airlock/` (ledger, sockets, log, pid
//! file), and print the MCP client snippet. The executor is a separate
//! process that outlives this command; `airlock start --stop` ends it.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use airlock_ipc::transport::locate_socket_dir;
use serde_json::json;

use super::init_cmd::{self, InitArgs, LAPTOP_DIR};
use super::output::{Exit, Refusal, print_json, say, shell_word};
use super::proposer_session::sibling;
use crate::config_file::read_config;

/// What `start` was given besides the drafting flags.
#[derive(Debug, Clone)]
pub struct StartArgs {
    pub init: InitArgs,
    /// The MCP client to print the snippet for.
    pub client: String,
    /// Stop the executor this config's `start` launched, and nothing else.
    pub stop: bool,
}

/// How long the executor may take to open its sockets.
const STARTUP: Duration = Duration::from_secs(20);

pub fn run(args: &StartArgs) -> Exit {
    let result = if args.stop { stop(args) } else { start(args) };
    match result {
        Ok(exit) => exit,
        Err(r) => r.print(args.init.json),
    }
}

fn laptop_dir(config: &Path) -> PathBuf {
    config
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join(LAPTOP_DIR)
}

fn absolute(p: &Path) -> Result<PathBuf, Refusal> {
    std::path::absolute(p)
        .map_err(|e| Refusal::new("path", format!("cannot resolve {}: {e}", p.display())))
}

fn start(args: &StartArgs) -> Result<Exit, Refusal> {
    let config = absolute(&args.init.output)?;
    let started = Instant::now();
    let drafted = if config.exists() {
        None
    } else {
        let prompts = init_cmd::prompts(&args.init)?;
        let d = init_cmd::draft_config(&args.init, prompts)?;
        init_cmd::write_new(&config, d.text.as_bytes(), false)?;
        Some(d)
    };
    let loaded =
        read_config(&config).map_err(|e| Refusal::new("config_unreadable", e.to_string()))?;
    let Some(cfg) = loaded.config else {
        let mut r = Refusal::new(
            "invalid_config",
            format!(
                "{} does not validate; fix it (airlock config validate --config {}) or move it away to draft a new one",
                config.display(),
                shell_word(&config.display().to_string())
            ),
        );
        r.problems = loaded
            .report
            .errors()
            .map(|d| format!("{}: {}", d.path, d.message))
            .collect();
        return Err(r);
    };
    let dir = laptop_dir(&config);
    private_dir(&dir)?;
    let (socket_dir, _) = locate_socket_dir(
        None,
        |k| std::env::var(k).ok(),
        cfg.airlock.socket_dir.as_deref(),
        config.parent(),
    );
    let socket_dir = absolute(&socket_dir)?;
    let pid_file = dir.join("executor.pid");
    let pid = match running_pid(&pid_file, &socket_dir) {
        Some(pid) => {
            say_unless(
                args,
                &format!("The executor is already running (pid {pid})."),
            );
            pid
        }
        None => spawn_executor(&config, &dir, &socket_dir, &pid_file)?,
    };
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let cfg_word = shell_word(&config.display().to_string());
    if args.init.json {
        print_json(&json!({
            "ok": true,
            "config": config.display().to_string(),
            "drafted": drafted.is_some(),
            "executor_pid": pid,
            "socket_dir": socket_dir.display().to_string(),
            "log": dir.join("executor.log").display().to_string(),
            "tools": cfg.capabilities.iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
            "disabled": cfg.airlock.disabled_capabilities,
            "elapsed_ms": elapsed_ms,
            "stop": format!("airlock start --stop --config {cfg_word}"),
        }));
        return Ok(Exit::Ok);
    }
    if let Some(d) = &drafted {
        say!(
            "Drafted {}: {} read tool{}, {} proposal tool{} ({} disabled until reviewed), {} sensitive column{} hidden.",
            config.display(),
            d.draft.reads.len(),
            if d.draft.reads.len() == 1 { "" } else { "s" },
            d.draft.proposals.len(),
            if d.draft.proposals.len() == 1 {
                ""
            } else {
                "s"
            },
            d.draft.proposals.iter().filter(|p| !p.enabled).count(),
            d.sensitive_hidden,
            if d.sensitive_hidden == 1 { "" } else { "s" },
        );
    } else {
        say!(
            "Using {} as it is ({} tools served).",
            config.display(),
            cfg.capabilities.len()
        );
    }
    say!(
        "The executor runs in the background (pid {pid}); its log is {}.",
        dir.join("executor.log").display()
    );
    say!("\nAdd the proposer to your MCP client ({}):\n", args.client);
    let exit = super::mcp_config::print(
        args.client.clone(),
        Some(config.clone()),
        true,
        Some(socket_dir.clone()),
    );
    if exit != Exit::Ok {
        return Ok(exit);
    }
    say!("\nThen ask the agent for a record; a proposal waits for you:");
    say!("  airlock tools preview --config {cfg_word}");
    say!("  airlock proposals list --config {cfg_word}");
    say!("  airlock proposals approve latest --config {cfg_word}");
    say!("Stop the executor: airlock start --stop --config {cfg_word}");
    say!("(ready in {:.1} s)", started.elapsed().as_secs_f64());
    Ok(Exit::Ok)
}

fn say_unless(args: &StartArgs, line: &str) {
    if !args.init.json {
        say!("{line}");
    }
}

/// `.airlock/`, private (see `demo::private_dir`).
fn private_dir(dir: &Path) -> Result<(), Refusal> {
    super::demo::private_dir(dir).map_err(|e| {
        Refusal::new(
            "laptop_dir",
            format!("cannot create {}: {e}", dir.display()),
        )
    })
}

/// Whether process `pid` runs `airlock-executor` (a pid file may outlive
/// its process, and the pid be reused by another program).
fn runs_executor(pid: i32) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&cmdline).contains("airlock-executor")
}

/// The pid in `pid_file` when that process still runs an executor whose
/// operator socket exists.
fn running_pid(pid_file: &Path, socket_dir: &Path) -> Option<u32> {
    let pid: i32 = std::fs::read_to_string(pid_file)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
    let is_executor = runs_executor(pid);
    (alive && is_executor && socket_dir.join("operator.sock").exists())
        .then(|| u32::try_from(pid).ok())
        .flatten()
}

/// Start `airlock-executor serve` detached (its own process group; stdin
/// closed; output to `.airlock/executor.log`) with this environment, and
/// wait until its operator socket exists.
fn spawn_executor(
    config: &Path,
    dir: &Path,
    socket_dir: &Path,
    pid_file: &Path,
) -> Result<u32, Refusal> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::process::CommandExt;
    let bin = sibling("airlock-executor").map_err(|e| Refusal::new("executor_missing", e))?;
    let log_path = dir.join("executor.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&log_path)
        .map_err(|e| Refusal::new("log", format!("cannot open {}: {e}", log_path.display())))?;
    let log_len = log.metadata().map(|m| m.len()).unwrap_or(0);
    let err_log = log
        .try_clone()
        .map_err(|e| Refusal::new("log", e.to_string()))?;
    let mut child = std::process::Command::new(&bin)
        .arg("serve")
        .arg("--config")
        .arg(config)
        .arg("--socket-dir")
        .arg(socket_dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err_log)
        .process_group(0)
        .spawn()
        .map_err(|e| Refusal::new("spawn", format!("cannot start airlock-executor: {e}")))?;
    let pid = child.id();
    let deadline = Instant::now() + STARTUP;
    loop {
        if socket_dir.join("operator.sock").exists() {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(Refusal::new(
                "executor_failed",
                format!(
                    "airlock-executor stopped at start ({status}):\n{}",
                    log_tail(&log_path, log_len)
                ),
            ));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Refusal::new(
                "executor_timeout",
                format!(
                    "airlock-executor did not open its sockets in {} s; it was stopped. Its log:\n{}",
                    STARTUP.as_secs(),
                    log_tail(&log_path, log_len)
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::write(pid_file, format!("{pid}\n")).map_err(|e| {
        Refusal::new(
            "pid_file",
            format!("cannot write {}: {e}", pid_file.display()),
        )
    })?;
    Ok(pid)
}

/// What the executor wrote to its log since `from` (at most 4 KiB).
fn log_tail(path: &Path, from: u64) -> String {
    use std::io::Seek;
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.seek(std::io::SeekFrom::Start(from));
        let _ = f.take(4096).read_to_string(&mut text);
    }
    text.trim_end().to_owned()
}

/// `--stop`: end the executor `start` launched for this config (its pid
/// file), waiting up to 10 s for it to exit.
fn stop(args: &StartArgs) -> Result<Exit, Refusal> {
    let config = absolute(&args.init.output)?;
    let pid_file = laptop_dir(&config).join("executor.pid");
    let pid: Option<i32> = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|s| s.trim().parse().ok());
    let Some(pid) = pid else {
        return Err(Refusal::new(
            "not_running",
            format!(
                "no executor started by `airlock start` for {} ({} is missing)",
                config.display(),
                pid_file.display()
            ),
        ));
    };
    let target = nix::unistd::Pid::from_raw(pid);
    // A zombie (exited, not yet reaped by its new parent) counts as gone.
    let alive = || {
        nix::sys::signal::kill(target, None).is_ok()
            && std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .map(|(_, rest)| rest.trim_start().starts_with('Z'))
                })
                == Some(false)
    };
    if !runs_executor(pid) {
        let _ = std::fs::remove_file(&pid_file);
        return Err(Refusal::new(
            "not_running",
            format!("the executor (pid {pid}) is not running; removed its stale pid file"),
        ));
    }
    let _ = nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_file(&pid_file);
    if args.init.json {
        print_json(&json!({"ok": true, "stopped": pid}));
    } else {
        say!("Stopped the executor (pid {pid}).");
    }
    Ok(Exit::Ok)
}
