//! A process that is NOT the Airlock executor, listening where a client
//! expects the executor's socket: `airlock-test-impostor SOCKET CAPTURE`.
//! Every byte a client sends it is appended to CAPTURE; each connection is
//! read once (up to 64 KiB, 2 s) and closed. The local-users suite runs it
//! as another OS user to show the clients refuse it before sending.

#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::time::Duration;

fn main() {
    let mut args = std::env::args_os().skip(1);
    let (Some(socket), Some(capture)) = (args.next(), args.next()) else {
        eprintln!("usage: airlock-test-impostor SOCKET CAPTURE");
        std::process::exit(2);
    };
    let listener = UnixListener::bind(&socket).expect("bind the impostor socket");
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let mut buf = vec![0u8; 64 * 1024];
        let n = stream.read(&mut buf).unwrap_or(0);
        let mut out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&capture)
            .expect("open the capture file");
        out.write_all(&buf[..n]).unwrap();
        // Dropping the stream closes the connection.
    }
}
