//! A webhook receiver on loopback for the notification suites: a plain
//! HTTP/1.1 server on a thread that records each request (its headers, its
//! exact body bytes and when it arrived) and answers as told — or never.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the receiver answers.
#[derive(Debug, Clone)]
pub enum Answer {
    /// This status and body.
    Status(u16, String),
    /// Read the request, then say nothing for this long.
    Hang(Duration),
}

#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub method: String,
    pub path: String,
    /// Lower-case names.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }
}

pub struct Receiver {
    pub port: u16,
    answer: Arc<Mutex<Answer>>,
    received: mpsc::Receiver<Received>,
}

impl Receiver {
    /// Listen on a free loopback port.
    pub fn start(answer: Answer) -> Receiver {
        Receiver::on(TcpListener::bind("127.0.0.1:0").expect("bind"), answer)
    }

    /// Listen on `port` (e.g. one a receiver that was down used to have).
    pub fn start_on(port: u16, answer: Answer) -> Receiver {
        Receiver::on(
            TcpListener::bind(("127.0.0.1", port)).expect("bind the port again"),
            answer,
        )
    }

    fn on(listener: TcpListener, answer: Answer) -> Receiver {
        let port = listener.local_addr().unwrap().port();
        let answer = Arc::new(Mutex::new(answer));
        let (tx, rx) = mpsc::channel();
        let shared = Arc::clone(&answer);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (tx, answer) = (tx.clone(), shared.lock().unwrap().clone());
                std::thread::spawn(move || serve(stream, tx, answer));
            }
        });
        Receiver {
            port,
            answer,
            received: rx,
        }
    }

    pub fn set_answer(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The next request, if one arrives within `wait`.
    pub fn next(&self, wait: Duration) -> Option<Received> {
        self.received.recv_timeout(wait).ok()
    }

    /// Every request that arrives within `wait`.
    pub fn drain(&self, wait: Duration) -> Vec<Received> {
        let deadline = Instant::now() + wait;
        let mut out = Vec::new();
        while let Some(r) = self.next(deadline.saturating_duration_since(Instant::now())) {
            out.push(r);
        }
        out
    }
}

/// A port nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn serve(stream: TcpStream, tx: mpsc::Sender<Received>, answer: Answer) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let _ = tx.send(Received {
        at: Instant::now(),
        method,
        path,
        headers,
        body,
    });
    let mut stream = reader.into_inner();
    match answer {
        Answer::Status(code, text) => {
            let _ = write!(
                stream,
                "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            );
        }
        Answer::Hang(d) => std::thread::sleep(d),
    }
}
