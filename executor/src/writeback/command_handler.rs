//! The `command_handler` executor: a local program applies the approved
//! change and prints a terminal receipt.
//!
//! The command is the value of the variable named by `command_env`: an
//! executable (an absolute path, or a name looked up in the fixed `PATH`
//! below) followed by arguments, split on whitespace. **There is no shell**:
//! quotes, `$VARS`, globs, pipes and redirections are passed through as
//! literal text, and an argument cannot contain a space. Wrap anything more
//! elaborate in a script.
//!
//! The contract:
//! * environment: only `PATH=/usr/local/bin:/usr/bin:/bin`, `LANG=C.UTF-8`,
//!   `AIRLOCK_IDEMPOTENCY_KEY` and `AIRLOCK_WRITEBACK_JOB_ID` — nothing of the
//!   executor's environment (write URLs, tokens) reaches the program, which
//!   must find its own configuration (a file, or an argument);
//! * stdin: the `synapsor.handler-writeback.v1` JSON, then end of file;
//! * stdout: one JSON receipt (at most 64 KiB), as for http handlers;
//! * stderr: kept (the last 16 KiB), scrubbed and cut to its last ~2 KiB
//!   for the receipt's detail;
//! * `timeout_ms` bounds the run until the program has exited and closed its
//!   output; then its whole process group is killed and reaped. The program
//!   runs in a process group of its own, so helpers it started die with it.
//!
//! | program result                                 | outcome                        |
//! |------------------------------------------------|--------------------------------|
//! | exit 0 + valid receipt                         | the receipt's status           |
//! | exit 0 + anything else on stdout               | failed `HANDLER_BAD_RECEIPT`   |
//! | exit ≠ 0 + valid `conflict`/`failed` receipt   | that receipt                   |
//! | exit ≠ 0 otherwise                             | failed `HANDLER_EXIT_<code>`   |
//! | killed by a signal (not by us)                 | failed `HANDLER_SIGNAL_<n>`    |
//! | still running at `timeout_ms`                  | failed `HANDLER_TIMEOUT`       |
//! | cannot be started (not found, not executable)  | failed `HANDLER_NOT_EXECUTABLE`|
//!
//! As with http handlers, a timeout does not prove nothing changed; the
//! retry carries the same idempotency key and resolves it.
//!
//! Details never contain the command's arguments (they may carry
//! credentials): they are redacted from everything the program prints.

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::Duration;

use airlock_policy::config::CommandHandlerSpec;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use super::payload::{
    MAX_RECEIPT_BYTES, handler_payload, receipt_for_job, safe_text, withhold_known,
};
use super::{Outcome, ReceiptStatus, WritebackJob};

/// The only `PATH` a command handler sees.
pub const CHILD_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// How much stderr is kept while the program runs (the tail).
pub const MAX_STDERR_BYTES: usize = 16 * 1024;
/// How much stderr goes into the receipt's detail (the tail, in characters).
pub const MAX_STDERR_DETAIL_CHARS: usize = 2 * 1024;
const MAX_DETAIL_CHARS: usize = 500;

/// The command comes from a credential variable: the whole value, the
/// program path (and its directory) and every argument are withheld, and a
/// URL among the arguments also by its password (encoded and decoded).
fn known_secrets(command: &str) -> Vec<String> {
    let mut words = command.split_whitespace();
    let program = words.next().unwrap_or("");
    let mut known: Vec<String> = Vec::new();
    for arg in words {
        known.push(arg.to_owned());
        // `--url=https://u:p%40ss@host/`: the URL part on its own too.
        let url = arg.split_once('=').map_or(arg, |(_, v)| v);
        if url.contains("://") {
            known.extend(airlock_policy::secrets::url_secrets(url));
        }
    }
    known.push(command.trim().to_owned());
    known.push(program.to_owned());
    if let Some(dir) = std::path::Path::new(program)
        .parent()
        .and_then(|d| d.to_str())
        .filter(|d| d.len() > 1)
    {
        known.push(dir.to_owned());
    }
    known.sort_by_key(|s| std::cmp::Reverse(s.len()));
    known
}

/// Run the command handler for `job` and map its result to an outcome. No
/// field of the outcome holds the command or a part of it, in any form
/// ([`withhold_known`]).
pub async fn run(
    spec: &CommandHandlerSpec,
    executor_name: &str,
    command: &str,
    job: &WritebackJob,
) -> Outcome {
    withhold_known(
        execute(spec, executor_name, command, job).await,
        &known_secrets(command),
    )
}

async fn execute(
    spec: &CommandHandlerSpec,
    executor_name: &str,
    command: &str,
    job: &WritebackJob,
) -> Outcome {
    let mut words = command.split_whitespace();
    let program = words.next().unwrap_or("");
    let args: Vec<&str> = words.collect();
    let known = known_secrets(command);
    let label = format!("handler `{executor_name}`");
    let fail = |code: &str, detail: String| {
        Outcome::failed(
            code,
            safe_text(&format!("{label}: {detail}"), &known, MAX_DETAIL_CHARS),
        )
    };
    if program.is_empty() {
        return fail(
            "HANDLER_NOT_EXECUTABLE",
            format!("the value of {} is empty", spec.command_env),
        );
    }
    let payload = match serde_json::to_vec(&handler_payload(job, false)) {
        Ok(p) => p,
        Err(_) => {
            return fail(
                "HANDLER_PAYLOAD_ERROR",
                "could not serialize the payload".to_owned(),
            );
        }
    };

    let mut cmd = Command::new(program);
    cmd.args(&args)
        .env_clear()
        .env("PATH", CHILD_PATH)
        .env("LANG", "C.UTF-8")
        .env("AIRLOCK_IDEMPOTENCY_KEY", &job.idempotency_key)
        .env("AIRLOCK_WRITEBACK_JOB_ID", &job.job_id)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return fail(
                "HANDLER_NOT_EXECUTABLE",
                format!("could not start `{program}`: {e}"),
            );
        }
    };
    let pid = child.id();

    let stdin = child.stdin.take();
    let writer = tokio::spawn(async move {
        if let Some(mut stdin) = stdin {
            // A program that exits without reading its input is not an
            // error here; its exit status and receipt tell.
            let _ = stdin.write_all(&payload).await;
            let _ = stdin.shutdown().await;
        }
    });
    let mut out_task = tokio::spawn(read_head(child.stdout.take(), MAX_RECEIPT_BYTES));
    let mut err_task = tokio::spawn(read_tail(child.stderr.take(), MAX_STDERR_BYTES));

    let timeout = Duration::from_millis(spec.timeout_ms.max(1));
    let finished = tokio::time::timeout(timeout, async {
        let status = child.wait().await;
        let out = (&mut out_task).await;
        let err = (&mut err_task).await;
        (status, out, err)
    })
    .await;
    writer.abort();

    let (status, stdout, stderr) = match finished {
        Ok((Ok(status), Ok(stdout), Ok(stderr))) => (status, stdout, stderr),
        Ok((Err(e), _, _)) => {
            kill_and_reap(pid, &mut child).await;
            out_task.abort();
            err_task.abort();
            return fail(
                "HANDLER_WAIT_FAILED",
                format!("could not wait for the program: {e}"),
            );
        }
        Ok(_) => {
            kill_and_reap(pid, &mut child).await;
            return fail(
                "HANDLER_WAIT_FAILED",
                "could not read the program's output".to_owned(),
            );
        }
        Err(_) => {
            kill_and_reap(pid, &mut child).await;
            out_task.abort();
            // The group is dead, so stderr reaches end of file promptly.
            let stderr = match tokio::time::timeout(Duration::from_millis(500), &mut err_task).await
            {
                Ok(Ok(bytes)) => bytes,
                _ => {
                    err_task.abort();
                    Vec::new()
                }
            };
            let outcome = fail(
                "HANDLER_TIMEOUT",
                format!(
                    "still running after {} ms; its process group was killed",
                    spec.timeout_ms
                ),
            );
            return with_stderr(outcome, &stderr, &known);
        }
    };

    let outcome = match status.code() {
        Some(0) => match stdout {
            None => fail(
                "HANDLER_BAD_RECEIPT",
                format!(
                    "exited 0 but printed more than {} KiB",
                    MAX_RECEIPT_BYTES / 1024
                ),
            ),
            Some(out) => match receipt_for_job(&out, job) {
                Ok(r) => r.into_outcome(&known),
                Err(why) => fail(
                    "HANDLER_BAD_RECEIPT",
                    format!("exited 0 but the receipt is unusable: {why}"),
                ),
            },
        },
        Some(code) => match stdout.as_deref().map(|o| receipt_for_job(o, job)) {
            Some(Ok(r)) if matches!(r.status, ReceiptStatus::Conflict | ReceiptStatus::Failed) => {
                let mut outcome = r.into_outcome(&known);
                if outcome.safe_error_code.as_deref() == Some("HANDLER_FAILED") {
                    outcome.safe_error_code = Some(format!("HANDLER_EXIT_{code}"));
                }
                outcome
            }
            Some(Ok(r)) => fail(
                &format!("HANDLER_EXIT_{code}"),
                format!(
                    "exited with status {code} and a receipt saying `{}`; a failing exit cannot confirm a change (a retry with the same idempotency key will tell)",
                    r.status.as_str()
                ),
            ),
            _ => fail(
                &format!("HANDLER_EXIT_{code}"),
                format!("exited with status {code}"),
            ),
        },
        None => {
            let sig = status.signal().unwrap_or(0);
            fail(
                &format!("HANDLER_SIGNAL_{sig}"),
                format!("was killed by signal {sig}"),
            )
        }
    };
    with_stderr(outcome, &stderr, &known)
}

/// Append the scrubbed tail of stderr to an outcome's detail.
fn with_stderr(mut outcome: Outcome, stderr: &[u8], known: &[String]) -> Outcome {
    let text = String::from_utf8_lossy(stderr);
    let text = safe_text(&text, known, MAX_STDERR_DETAIL_CHARS);
    if text.is_empty() {
        return outcome;
    }
    outcome.detail = Some(match outcome.detail.take() {
        Some(d) if !d.is_empty() => format!("{d}\nstderr: {text}"),
        _ => format!("stderr: {text}"),
    });
    outcome
}

/// Kill the program's whole process group, then reap the program.
async fn kill_and_reap(pid: Option<u32>, child: &mut tokio::process::Child) {
    if let Some(pgid) = pid.and_then(|p| i32::try_from(p).ok()).filter(|p| *p > 1) {
        // The program leads its own group (process_group(0)), and it has
        // not been reaped yet, so the group id cannot have been reused.
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pgid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let _ = child.start_kill();
    let _ = child.wait().await;
}

/// Read to end of file, keeping at most `cap` bytes; `None` if there was
/// more. Keeps draining after the cap so the program is never blocked on a
/// full pipe.
async fn read_head<R: AsyncRead + Unpin>(pipe: Option<R>, cap: usize) -> Option<Vec<u8>> {
    let mut pipe = pipe?;
    let mut out = Vec::new();
    let mut over = false;
    let mut buf = [0u8; 8192];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let chunk = buf.get(..n).unwrap_or(&[]);
                if out.len() + chunk.len() > cap {
                    over = true;
                } else if !over {
                    out.extend_from_slice(chunk);
                }
            }
        }
    }
    (!over).then_some(out)
}

/// Read to end of file, keeping the last `cap` bytes.
async fn read_tail<R: AsyncRead + Unpin>(pipe: Option<R>, cap: usize) -> Vec<u8> {
    let Some(mut pipe) = pipe else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                out.extend_from_slice(buf.get(..n).unwrap_or(&[]));
                if out.len() > cap {
                    let excess = out.len() - cap;
                    out.drain(..excess);
                }
            }
        }
    }
    out
}
