//! The client against scripted servers: a real Unix socket in a scratch
//! directory whose task reads the client's frames and answers with
//! hand-written ones, so every decision of `Client` is seen on the wire.

// Helpers outside `#[test]` functions fail the test the same way.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::future::Future;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use airlock_ipc::client::{Client, ClientError, ExpectedServer};
use airlock_ipc::frame::{read_frame, write_frame};
use airlock_ipc::message::{LimitsInfo, PeerInfo, StatsReport, Welcome};
use airlock_ipc::transport::{IpcStream, listen};
use airlock_ipc::{ErrorBody, ErrorCode, Request, Response, Role};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::task::JoinHandle;

const TIMEOUT: Duration = Duration::from_secs(5);

/// A scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "airlock-ipc-client-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn socket(&self) -> PathBuf {
        self.0.join("executor.sock")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Listen at a fresh socket and run `script` on the first connection.
fn serve<F, Fut>(script: F) -> (Scratch, JoinHandle<()>)
where
    F: FnOnce(IpcStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let scratch = Scratch::new();
    let listener = listen(&scratch.socket(), 0o600).unwrap();
    let task = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        script(stream).await;
    });
    (scratch, task)
}

fn own_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// Trusts the uid this test runs as (the scripted server's).
fn trust_me() -> ExpectedServer {
    ExpectedServer::uids(&[own_uid()], "expected you")
}

async fn connect(path: &Path, role: Role) -> Result<Client, ClientError> {
    Client::connect_expecting(path, role, "test 1.0", TIMEOUT, &trust_me()).await
}

/// Read one frame and check it is exactly `expected`.
async fn expect(stream: &mut IpcStream, expected: Value) {
    let body = read_frame(stream)
        .await
        .unwrap()
        .expect("a frame, not the end of the stream");
    let got: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(got, expected, "the client sent");
}

async fn send(stream: &mut IpcStream, frame: &str) {
    write_frame(stream, frame.as_bytes()).await.unwrap();
}

/// Wait until the client has gone (its end of the stream).
async fn until_client_leaves(stream: &mut IpcStream) {
    while read_frame(stream).await.is_ok_and(|f| f.is_some()) {}
}

fn hello(role: &str) -> Value {
    json!({"id": 0, "type": "hello", "body": {
        "protocol": "airlock.ipc.v1", "role": role, "client_version": "test 1.0"}})
}

fn welcome_frame(id: u64, role: &str) -> String {
    format!(
        r#"{{"id":{id},"type":"welcome","body":{{"protocol":"airlock.ipc.v1","role":"{role}","server_version":"scripted 9.9","peer":{{"uid":1000,"gid":1001,"pid":4242,"user":"dana"}},"config_hash":"sha256:0000000000000000000000000000000000000000000000000000000000000000","limits":{{"max_frame_bytes":1048576,"max_json_depth":32,"max_rows_per_read":100}}}}}}"#
    )
}

fn stats_frame(id: u64) -> String {
    format!(
        r#"{{"id":{id},"type":"stats","body":{{"proposals":{{"applied":{id}}},"evidence":2,"events":3,"connections":4}}}}"#
    )
}

fn stats_report(applied: u64) -> Response {
    Response::Stats(StatsReport {
        proposals: BTreeMap::from([("applied".to_owned(), applied)]),
        evidence: 2,
        events: 3,
        connections: 4,
    })
}

fn stats_request(id: u64) -> Value {
    json!({"id": id, "type": "stats", "body": {}})
}

fn stats() -> Request {
    Request::Stats(airlock_ipc::message::Empty {})
}

/// The server's side of a successful handshake as `role`.
async fn handshake(stream: &mut IpcStream, role: &str) {
    expect(stream, hello(role)).await;
    send(stream, &welcome_frame(0, role)).await;
}

#[tokio::test]
async fn the_handshake_sends_hello_and_keeps_the_welcome() {
    let (scratch, server) = serve(|mut s| async move {
        handshake(&mut s, "operator").await;
        until_client_leaves(&mut s).await;
    });
    let client = connect(&scratch.socket(), Role::Operator).await.unwrap();
    assert_eq!(
        client.welcome(),
        &Welcome {
            protocol: "airlock.ipc.v1".into(),
            role: Role::Operator,
            server_version: "scripted 9.9".into(),
            peer: PeerInfo {
                uid: 1000,
                gid: 1001,
                pid: Some(4242),
                user: Some("dana".into()),
            },
            config_hash: "sha256:0000000000000000000000000000000000000000000000000000000000000000"
                .into(),
            limits: LimitsInfo {
                max_frame_bytes: 1_048_576,
                max_json_depth: 32,
                max_rows_per_read: 100,
            },
        }
    );
    // Debug shows the role and nothing of the connection.
    assert_eq!(format!("{client:?}"), "Client { role: Operator }");
    drop(client);
    server.await.unwrap();

    let (scratch, server) = serve(|mut s| async move {
        handshake(&mut s, "proposer").await;
        until_client_leaves(&mut s).await;
    });
    let client = connect(&scratch.socket(), Role::Proposer).await.unwrap();
    assert_eq!(client.welcome().role, Role::Proposer);
    assert_eq!(format!("{client:?}"), "Client { role: Proposer }");
    drop(client);
    server.await.unwrap();
}

#[tokio::test]
async fn requests_carry_ids_counting_up_from_the_hello() {
    let (scratch, server) = serve(|mut s| async move {
        handshake(&mut s, "operator").await;
        for id in 1..=3 {
            expect(&mut s, stats_request(id)).await;
            send(&mut s, &stats_frame(id)).await;
        }
        until_client_leaves(&mut s).await;
    });
    let mut client = connect(&scratch.socket(), Role::Operator).await.unwrap();
    for id in 1..=3 {
        assert_eq!(client.call(stats()).await.unwrap(), stats_report(id));
    }
    drop(client);
    server.await.unwrap();
}

#[tokio::test]
async fn a_response_with_another_id_is_a_protocol_error() {
    let (scratch, server) = serve(|mut s| async move {
        handshake(&mut s, "operator").await;
        expect(&mut s, stats_request(1)).await;
        send(&mut s, &stats_frame(2)).await;
        until_client_leaves(&mut s).await;
    });
    let mut client = connect(&scratch.socket(), Role::Operator).await.unwrap();
    match client.call(stats()).await {
        Err(ClientError::Protocol(m)) => {
            assert_eq!(m, "response id 2 does not match request id 1")
        }
        other => panic!("{other:?}"),
    }
    drop(client);
    server.await.unwrap();

    // The welcome too must echo the hello's id.
    let (scratch, server) = serve(|mut s| async move {
        expect(&mut s, hello("operator")).await;
        send(&mut s, &welcome_frame(5, "operator")).await;
        until_client_leaves(&mut s).await;
    });
    match connect(&scratch.socket(), Role::Operator).await {
        Err(e @ ClientError::Protocol(_)) => assert_eq!(
            e.to_string(),
            "unexpected answer from the executor: response id 5 does not match request id 0"
        ),
        other => panic!("{other:?}"),
    }
    server.await.unwrap();
}

#[tokio::test]
async fn an_error_response_is_refused_whatever_its_id() {
    let (scratch, server) = serve(|mut s| async move {
        handshake(&mut s, "operator").await;
        expect(&mut s, stats_request(1)).await;
        send(
            &mut s,
            r#"{"id":1,"type":"error","body":{"code":"forbidden","message":"not on this socket"}}"#,
        )
        .await;
        expect(&mut s, stats_request(2)).await;
        send(
            &mut s,
            r#"{"id":0,"type":"error","body":{"code":"malformed_frame","message":"bad frame","details":{"at":3}}}"#,
        )
        .await;
        expect(&mut s, stats_request(3)).await;
        send(
            &mut s,
            r#"{"id":18446744073709551615,"type":"error","body":{"code":"busy","message":"later"}}"#,
        )
        .await;
        until_client_leaves(&mut s).await;
    });
    let mut client = connect(&scratch.socket(), Role::Operator).await.unwrap();
    match client.call(stats()).await {
        Err(e @ ClientError::Refused(_)) => {
            assert_eq!(e.to_string(), "not on this socket (forbidden)");
            let ClientError::Refused(body) = e else {
                unreachable!()
            };
            assert_eq!(
                body,
                ErrorBody::new(ErrorCode::Forbidden, "not on this socket")
            );
        }
        other => panic!("{other:?}"),
    }
    match client.call(stats()).await {
        Err(ClientError::Refused(body)) => assert_eq!(
            body,
            ErrorBody::new(ErrorCode::MalformedFrame, "bad frame").with_details(json!({"at": 3}))
        ),
        other => panic!("{other:?}"),
    }
    match client.call(stats()).await {
        Err(ClientError::Refused(body)) => {
            assert_eq!(body, ErrorBody::new(ErrorCode::Busy, "later"))
        }
        other => panic!("{other:?}"),
    }
    drop(client);
    server.await.unwrap();
}

#[tokio::test]
async fn a_refused_hello_is_refused_and_a_wrong_answer_is_a_protocol_error() {
    let (scratch, server) = serve(|mut s| async move {
        expect(&mut s, hello("proposer")).await;
        send(
            &mut s,
            r#"{"id":0,"type":"error","body":{"code":"role_mismatch","message":"this is the operator socket"}}"#,
        )
        .await;
        until_client_leaves(&mut s).await;
    });
    match connect(&scratch.socket(), Role::Proposer).await {
        Err(ClientError::Refused(body)) => assert_eq!(
            body,
            ErrorBody::new(ErrorCode::RoleMismatch, "this is the operator socket")
        ),
        other => panic!("{other:?}"),
    }
    server.await.unwrap();

    let (scratch, server) = serve(|mut s| async move {
        expect(&mut s, hello("operator")).await;
        send(&mut s, &stats_frame(0)).await;
        until_client_leaves(&mut s).await;
    });
    match connect(&scratch.socket(), Role::Operator).await {
        Err(ClientError::Protocol(m)) => assert_eq!(m, "expected welcome, got stats"),
        other => panic!("{other:?}"),
    }
    server.await.unwrap();

    // An answer that is no response frame at all.
    let (scratch, server) = serve(|mut s| async move {
        expect(&mut s, hello("operator")).await;
        send(&mut s, r#"{"id":0,"type":"hello","body":{}}"#).await;
        until_client_leaves(&mut s).await;
    });
    match connect(&scratch.socket(), Role::Operator).await {
        Err(ClientError::Protocol(m)) => assert_eq!(m, "unknown message type `hello`"),
        other => panic!("{other:?}"),
    }
    server.await.unwrap();
}

#[tokio::test]
async fn a_server_that_hangs_up_without_answering_is_closed() {
    let (scratch, server) = serve(|mut s| async move {
        expect(&mut s, hello("operator")).await;
    });
    match connect(&scratch.socket(), Role::Operator).await {
        Err(e @ ClientError::Closed) => {
            assert_eq!(e.to_string(), "the executor closed the connection")
        }
        other => panic!("{other:?}"),
    }
    server.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_server_that_never_answers_times_out() {
    let (scratch, server) = serve(|mut s| async move {
        expect(&mut s, hello("operator")).await;
        until_client_leaves(&mut s).await;
    });
    let start = tokio::time::Instant::now();
    match connect(&scratch.socket(), Role::Operator).await {
        Err(e @ ClientError::Timeout(_)) => {
            assert_eq!(e.to_string(), "the executor did not answer within 5s");
            assert!(matches!(e, ClientError::Timeout(d) if d == TIMEOUT));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(start.elapsed(), TIMEOUT);
    server.await.unwrap();
}

/// `is_closed` until it says so, letting the runtime see the hang-up.
async fn closes_soon(client: &mut Client) -> bool {
    for _ in 0..200 {
        if client.is_closed().await {
            return true;
        }
        tokio::task::yield_now().await;
    }
    false
}

#[tokio::test]
async fn is_closed_tells_an_open_connection_from_a_closed_one() {
    let (scratch, server) = serve(|mut s| async move {
        handshake(&mut s, "operator").await;
        expect(&mut s, stats_request(1)).await;
        send(&mut s, &stats_frame(1)).await;
        // Then hang up.
    });
    let mut client = connect(&scratch.socket(), Role::Operator).await.unwrap();
    for _ in 0..3 {
        assert!(!client.is_closed().await, "open, nothing to read");
        tokio::task::yield_now().await;
    }
    assert_eq!(client.call(stats()).await.unwrap(), stats_report(1));
    server.await.unwrap();
    assert!(closes_soon(&mut client).await, "the server hung up");

    // Bytes nobody asked for also make the connection unusable.
    let (scratch, server) = serve(|mut s| async move {
        handshake(&mut s, "operator").await;
        s.write_all(b"\x00\x00").await.unwrap();
        until_client_leaves(&mut s).await;
    });
    let mut client = connect(&scratch.socket(), Role::Operator).await.unwrap();
    assert!(closes_soon(&mut client).await, "unsolicited bytes");
    drop(client);
    server.await.unwrap();
}

#[tokio::test]
async fn no_socket_is_not_running_and_other_connect_failures_are_unreachable() {
    let scratch = Scratch::new();
    let missing = scratch.socket();
    match connect(&missing, Role::Operator).await {
        Err(e @ ClientError::NotRunning { .. }) => {
            assert!(
                e.to_string().starts_with(&format!(
                    "the Airlock executor is not running (no socket at {}): ",
                    missing.display()
                )),
                "{e}"
            );
            let ClientError::NotRunning { path, source } = e else {
                unreachable!()
            };
            assert_eq!(path, missing);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("{other:?}"),
    }

    // A socket file nobody listens on any more (a stopped executor).
    let stale = scratch.0.join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());
    match connect(&stale, Role::Operator).await {
        Err(ClientError::NotRunning { path, source }) => {
            assert_eq!(path, stale);
            assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused);
        }
        other => panic!("{other:?}"),
    }

    // A path through a regular file: neither absent nor refused.
    let file = scratch.0.join("file");
    std::fs::write(&file, b"").unwrap();
    let through = file.join("executor.sock");
    match connect(&through, Role::Operator).await {
        Err(e @ ClientError::Unreachable { .. }) => {
            assert!(
                e.to_string().starts_with(&format!(
                    "cannot connect to the executor's socket {}: ",
                    through.display()
                )),
                "{e}"
            );
            assert!(
                e.to_string()
                    .ends_with("; is your OS user allowed to reach it (see airlock.socket_group)?"),
                "{e}"
            );
            let ClientError::Unreachable { path, source } = e else {
                unreachable!()
            };
            assert_eq!(path, through);
            assert_eq!(source.kind(), std::io::ErrorKind::NotADirectory);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn connect_trusts_this_user_by_default() {
    // Without AIRLOCK_EXECUTOR_USER the client's own uid (or root) is the
    // executor; with it, root still is. Either way a server run by this
    // test is accepted when the test runs as root or without the variable.
    let configured = std::env::var_os("AIRLOCK_EXECUTOR_USER").is_some_and(|v| !v.is_empty());
    if configured && own_uid() != 0 {
        return;
    }
    let (scratch, server) = serve(|mut s| async move {
        handshake(&mut s, "proposer").await;
        until_client_leaves(&mut s).await;
    });
    let client = Client::connect(&scratch.socket(), Role::Proposer, "test 1.0", TIMEOUT)
        .await
        .unwrap();
    assert_eq!(client.welcome().server_version, "scripted 9.9");
    drop(client);
    server.await.unwrap();
}

// ---------------------------------------------------------------------------
// SO_PEERCRED: a server run by another uid is refused before a byte is sent.

/// Set in the environment of the server process started by
/// `an_untrusted_server_is_refused_before_anything_is_sent`.
const UNTRUSTED_SOCKET_ENV: &str = "AIRLOCK_IPC_TEST_UNTRUSTED_SOCKET";
/// The uid that process runs as (`nobody`).
const UNTRUSTED_UID: u32 = 65534;

/// One line to the test that started the server process.
fn report(what: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    writeln!(out, "untrusted-server: {what}").unwrap();
    out.flush().unwrap();
}

/// The body of that server process: this test binary run again as another
/// user, with only this test selected. Does nothing in an ordinary run.
#[test]
fn untrusted_server_process() {
    let Some(path) = std::env::var_os(UNTRUSTED_SOCKET_ENV) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = listen(Path::new(&path), 0o666).unwrap();
        report("ready");
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let got = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await;
        match got {
            Ok(Ok(n)) => report(&format!("received {n}")),
            Ok(Err(e)) => report(&format!("error {e}")),
            Err(_) => report("timeout"),
        }
    });
}

fn check_refusal(result: Result<Client, ClientError>, socket: &Path, uid: u32) {
    match result {
        Err(e @ ClientError::UntrustedServer { .. }) => {
            assert_eq!(
                e.to_string(),
                format!(
                    "refusing to talk to {}: the process listening there runs as uid {uid}, which is not the Airlock executor (expected uid 4242 (`exec`) or root); another local user may have put a socket there. Nothing was sent. If the executor really runs as uid {uid}, say so with --executor-user or AIRLOCK_EXECUTOR_USER",
                    socket.display()
                )
            );
            let ClientError::UntrustedServer {
                path,
                uid: got,
                expected,
            } = e
            else {
                unreachable!()
            };
            assert_eq!(path, socket);
            assert_eq!(got, uid);
            assert_eq!(expected, "expected uid 4242 (`exec`) or root");
        }
        other => panic!("expected UntrustedServer, got {other:?}"),
    }
}

#[tokio::test]
async fn an_untrusted_server_is_refused_before_anything_is_sent() {
    let expected = ExpectedServer::uids(&[4242], "expected uid 4242 (`exec`) or root");
    let me = own_uid();
    if me != 0 {
        // Not root: a server of this test's own uid is already untrusted.
        assert_ne!(me, 4242);
        let (scratch, server) = serve(|mut s| async move {
            let mut buf = [0u8; 4096];
            assert_eq!(s.read(&mut buf).await.unwrap(), 0, "nothing was sent");
        });
        let socket = scratch.socket();
        let result =
            Client::connect_expecting(&socket, Role::Operator, "test 1.0", TIMEOUT, &expected)
                .await;
        check_refusal(result, &socket, me);
        server.await.unwrap();
        return;
    }

    // Root, which is always trusted: run the server as `nobody`.
    use std::os::unix::fs::PermissionsExt as _;
    use std::os::unix::process::CommandExt as _;
    let scratch = Scratch::new();
    std::fs::set_permissions(&scratch.0, std::fs::Permissions::from_mode(0o777)).unwrap();
    let socket = scratch.socket();
    // `nobody` may not be able to reach the checkout (a private home or CI
    // directory): run a copy of this test binary from the scratch directory.
    let exe = scratch.0.join("untrusted-server");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut child = std::process::Command::new(&exe)
        .args([
            "--exact",
            "untrusted_server_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(UNTRUSTED_SOCKET_ENV, &socket)
        .uid(UNTRUSTED_UID)
        .gid(UNTRUSTED_UID)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next_report = || loop {
        match lines.next() {
            Some(line) => {
                let line = line.unwrap();
                // The harness may print `test … ... ` before it on the line.
                if let Some((_, report)) = line.split_once("untrusted-server: ") {
                    return report.to_owned();
                }
            }
            None => panic!("the server process ended early: {:?}", child.wait()),
        }
    };
    assert_eq!(next_report(), "ready");
    let result =
        Client::connect_expecting(&socket, Role::Operator, "test 1.0", TIMEOUT, &expected).await;
    check_refusal(result, &socket, UNTRUSTED_UID);
    // The refused client hung up without a byte.
    assert_eq!(next_report(), "received 0");
    assert!(child.wait().unwrap().success());
}
