//! The stdio front: a line filter between the client's stdin/stdout and rmcp.
//!
//! rmcp 3.11's stdio transport drops a line that is not JSON (including JSON
//! nested past serde's recursion limit) without an answer, and its handshake
//! ends the session when a notification or response arrives before
//! `initialize`. This front reads stdin one bounded line at a time and:
//!
//! * blank line: ignored (as rmcp does);
//! * longer than [`MAX_LINE_BYTES`]: the rest is discarded as it is read, never
//!   buffered, and the line is answered `-32600`;
//! * not JSON: answered `-32700 Parse error` with `id: null` (JSON-RPC 2.0).
//!   Our answer is valid JSON, so a client that answers garbage with garbage
//!   cannot start an error storm with us;
//! * a notification or response before the client's `initialize` request:
//!   dropped (they get no answer anyway);
//! * anything else: forwarded unchanged to rmcp through an in-memory pipe.
//!
//! One task owns stdout and writes whole lines, rmcp's and the front's, so they
//! never interleave (a front answer may overtake rmcp's answer to an earlier
//! line; JSON-RPC answers carry no order). EOF on stdin closes rmcp's input,
//! ending the session.

use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use serde_json::{Value, json};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::io::{DuplexStream, duplex};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Longest message accepted on stdin (newline excluded): the HTTP body limit.
pub const MAX_LINE_BYTES: usize = crate::http::MAX_BODY_BYTES;

/// What the front does with one complete line from stdin.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Ignore,
    /// Answer `-32700` with this reason (serde's message, never the input).
    ParseError(String),
    /// A notification or response before `initialize`: rmcp would end the session.
    DropEarly,
    /// Hand the line to rmcp; `initialize` marks the client's initialize request.
    Forward {
        initialize: bool,
    },
}

/// Judge one line; `initialized` says an `initialize` request was forwarded.
pub fn classify(line: &[u8], initialized: bool) -> Verdict {
    let text = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line); // rmcp skips a BOM too
    if text.trim_ascii().is_empty() {
        return Verdict::Ignore;
    }
    let message: Value = match serde_json::from_slice(text) {
        Ok(v) => v,
        Err(e) => return Verdict::ParseError(e.to_string()),
    };
    let has = |key: &str| message.get(key).is_some();
    let notification = has("method") && !has("id");
    let response = !has("method") && (has("result") || has("error"));
    if !initialized && (notification || response) {
        return Verdict::DropEarly;
    }
    let initialize = has("id") && message["method"] == "initialize";
    Verdict::Forward { initialize }
}

/// The front, running. Pass [`StdioFront::start`]'s pipes to rmcp's `serve`.
pub struct StdioFront {
    output: JoinHandle<()>,
}

impl StdioFront {
    /// Start on the process's stdin and stdout; returns rmcp's (input, output).
    pub fn start() -> (StdioFront, (DuplexStream, DuplexStream)) {
        let (rmcp_in, to_rmcp) = duplex(64 * 1024);
        let (rmcp_out, from_rmcp) = duplex(64 * 1024);
        let (answers, answers_rx) = mpsc::channel(64);
        tokio::spawn(pump_input(stdin(), to_rmcp, answers));
        let output = tokio::spawn(pump_output(from_rmcp, answers_rx, stdout()));
        (StdioFront { output }, (rmcp_in, rmcp_out))
    }

    /// Wait until rmcp's last line is on stdout (once rmcp dropped its pipes).
    pub async fn finish(self) {
        let _ = self.output.await;
    }
}

/// Stdin as the runtime's own non-blocking pipe when it is one (what MCP
/// clients give a server), else tokio's `stdin`. Tokio's `stdin` reads on
/// its blocking pool: every line costs a hand-off to another thread and back,
/// which was a large part of a call's CPU (`docs/benchmarks.md`).
fn stdin() -> Box<dyn AsyncRead + Unpin + Send> {
    match own_pipe(std::io::stdin().as_fd())
        .and_then(|(f, _)| tokio::net::unix::pipe::Receiver::from_file(f).ok())
    {
        Some(pipe) => Box::new(pipe),
        None => Box::new(tokio::io::stdin()),
    }
}

/// Stdout as a non-blocking pipe, as [`stdin`]; not when stderr shares its
/// open file (`2>&1`): the pipe's non-blocking flag would then make the
/// log's blocking writes fail when the pipe is full.
fn stdout() -> Box<dyn AsyncWrite + Unpin + Send> {
    let log = own_file(std::io::stderr().as_fd()).map(|(_, m)| (m.dev(), m.ino()));
    match own_pipe(std::io::stdout().as_fd())
        .filter(|(_, m)| Some((m.dev(), m.ino())) != log)
        .and_then(|(f, _)| tokio::net::unix::pipe::Sender::from_file(f).ok())
    {
        Some(pipe) => Box::new(pipe),
        None => Box::new(tokio::io::stdout()),
    }
}

/// A duplicate of `fd` if it is a pipe (tokio's pipe types refuse anything
/// else: a terminal or a file keeps tokio's blocking stdio).
fn own_pipe(fd: std::os::fd::BorrowedFd<'_>) -> Option<(std::fs::File, std::fs::Metadata)> {
    own_file(fd).filter(|(_, m)| m.file_type().is_fifo())
}

/// A duplicate of `fd` and what it is.
fn own_file(fd: std::os::fd::BorrowedFd<'_>) -> Option<(std::fs::File, std::fs::Metadata)> {
    let file = std::fs::File::from(fd.try_clone_to_owned().ok()?);
    let meta = file.metadata().ok()?;
    Some((file, meta))
}

fn error_line(code: i64, message: String) -> String {
    json!({"jsonrpc": "2.0", "id": null, "error": {"code": code, "message": message}}).to_string()
}

async fn pump_input(
    input: impl AsyncRead + Unpin,
    mut to_rmcp: DuplexStream,
    answers: mpsc::Sender<String>,
) {
    let mut input = BufReader::with_capacity(64 * 1024, input);
    let mut line = Vec::new();
    let mut initialized = false;
    loop {
        let answer = match read_line(&mut input, &mut line, MAX_LINE_BYTES).await {
            Ok(Line::Complete) => match classify(&line, initialized) {
                Verdict::Ignore => continue,
                Verdict::ParseError(why) => error_line(-32700, format!("Parse error: {why}")),
                Verdict::DropEarly => {
                    tracing::debug!("ignored a notification or response sent before initialize");
                    continue;
                }
                Verdict::Forward { initialize } => {
                    initialized |= initialize;
                    if to_rmcp.write_all(&line).await.is_err() {
                        break; // rmcp has ended
                    }
                    continue;
                }
            },
            Ok(Line::TooLong) => error_line(
                -32600,
                format!(
                    "Invalid Request: a message may be at most {MAX_LINE_BYTES} bytes; this line was discarded"
                ),
            ),
            Ok(Line::Eof) => break,
            Err(e) => {
                tracing::error!("cannot read stdin: {e}");
                break;
            }
        };
        if answers.send(answer).await.is_err() {
            break;
        }
    }
    // Dropping `to_rmcp` is rmcp's EOF: the session ends as on stdin's EOF.
}

async fn pump_output(
    from_rmcp: DuplexStream,
    mut answers: mpsc::Receiver<String>,
    mut output: impl AsyncWrite + Unpin,
) {
    let mut rmcp_lines = BufReader::new(from_rmcp).lines();
    loop {
        let mut line = tokio::select! {
            // The front's own answers first: one is queued before the line
            // after it reaches rmcp, so it goes out before rmcp's answer to
            // that later line (a client sees answers in the order it caused
            // them, e.g. a -32700 before the answer to the next ping).
            biased;
            Some(answer) = answers.recv() => answer,
            // `next_line` is cancel safe: a partly read line waits for the next call.
            next = rmcp_lines.next_line() => match next {
                Ok(Some(line)) => line,
                _ => break, // rmcp has ended
            },
        };
        line.push('\n');
        if output.write_all(line.as_bytes()).await.is_err() || output.flush().await.is_err() {
            break; // the client has gone
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Line {
    Complete,
    TooLong,
    Eof,
}

/// Read one line, newline included, into `line`. Past `max` bytes the rest of
/// the line is consumed and dropped, so memory stays bounded.
async fn read_line(
    input: &mut (impl AsyncBufRead + Unpin),
    line: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Line> {
    line.clear();
    let mut too_long = false;
    loop {
        let chunk = input.fill_buf().await?;
        if chunk.is_empty() {
            return Ok(Line::Eof); // an unterminated last line is dropped, as rmcp does
        }
        let newline = chunk.iter().position(|&b| b == b'\n');
        let take = newline.map_or(chunk.len(), |i| i + 1);
        too_long |= line.len() + take > max + 1;
        if too_long {
            line.clear();
        } else {
            line.extend_from_slice(&chunk[..take]);
        }
        input.consume(take);
        if newline.is_some() {
            return Ok(if too_long {
                Line::TooLong
            } else {
                Line::Complete
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_lines() {
        let fwd = |initialize| Verdict::Forward { initialize };
        assert_eq!(classify(b"  \r\n", false), Verdict::Ignore);
        assert!(matches!(
            classify(b"}{ not json\n", true),
            Verdict::ParseError(_)
        ));
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let Verdict::ParseError(why) = classify(deep.as_bytes(), true) else {
            panic!("10,000-deep JSON is a parse error")
        };
        assert!(why.contains("recursion limit"), "{why}");
        let note = br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
        let response = br#"{"jsonrpc":"2.0","id":7,"result":{}}"#;
        assert_eq!(classify(note, false), Verdict::DropEarly);
        assert_eq!(classify(response, false), Verdict::DropEarly);
        assert_eq!(classify(note, true), fwd(false));
        assert_eq!(classify(response, true), fwd(false));
        let init = br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#;
        assert_eq!(classify(init, false), fwd(true));
        assert_eq!(
            classify(&[b"\xEF\xBB\xBF", &init[..]].concat(), false),
            fwd(true)
        );
        let list = br#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
        assert_eq!(classify(list, false), fwd(false));
        for other in [&b"{}"[..], b"null", b"[]"] {
            assert_eq!(classify(other, false), fwd(false)); // rmcp answers -32600
        }
    }

    #[tokio::test]
    async fn discards_oversized_lines_without_buffering_them() {
        let data = format!("short\n{}\n0123456789\nlast", "x".repeat(100));
        let mut input = BufReader::with_capacity(4, data.as_bytes());
        let mut line = Vec::new();
        assert_eq!(
            read_line(&mut input, &mut line, 10).await.unwrap(),
            Line::Complete
        );
        assert_eq!(line, b"short\n");
        assert_eq!(
            read_line(&mut input, &mut line, 10).await.unwrap(),
            Line::TooLong
        );
        assert!(line.capacity() <= 16, "buffered {}", line.capacity());
        assert_eq!(
            read_line(&mut input, &mut line, 10).await.unwrap(),
            Line::Complete
        );
        assert_eq!(line, b"0123456789\n");
        assert_eq!(
            read_line(&mut input, &mut line, 10).await.unwrap(),
            Line::Eof
        );
    }
}
