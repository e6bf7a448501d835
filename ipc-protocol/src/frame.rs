//! Framing: a 4-byte big-endian length, then exactly one UTF-8 JSON object.
//!
//! Decoding is strict: the length is checked against the limit before any
//! allocation; the body must be valid UTF-8 JSON with no trailing data, no
//! duplicate object keys and at most [`MAX_JSON_DEPTH`] levels of nesting.
//! A frame error is final for the connection: the stream cannot be
//! resynchronized, so the receiver answers once and closes.

use serde_json::{Map, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::limits::{MAX_FRAME_BYTES, MAX_JSON_DEPTH};

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {0} bytes exceeds the {MAX_FRAME_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("empty frame")]
    Empty,
    #[error("connection closed in the middle of a frame")]
    Truncated,
    #[error("frame is not valid strict JSON: {0}")]
    Json(String),
    #[error("frame is not a JSON object")]
    NotAnObject,
    #[error("the peer was too slow to send a frame")]
    Timeout,
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Prefix `body` with its length. Refuses bodies over the limit.
pub fn encode(body: &[u8]) -> Result<Vec<u8>, FrameError> {
    if body.len() > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge(body.len()));
    }
    if body.is_empty() {
        return Err(FrameError::Empty);
    }
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    Ok(out)
}

/// Read one frame body. `Ok(None)` on a clean end of stream before a frame.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Vec<u8>>, FrameError> {
    let mut header = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = r.read(&mut header[got..]).await?;
        if n == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(FrameError::Truncated)
            };
        }
        got += n;
    }
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge(len));
    }
    if len == 0 {
        return Err(FrameError::Empty);
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await.map_err(eof_is_truncation)?;
    Ok(Some(body))
}

/// Read one frame as a server does: wait up to `idle` for its first byte,
/// then allow `frame_timeout` for the rest, so a slow sender cannot hold a
/// connection open by trickling bytes. `Ok(None)` on a clean end of stream;
/// `Err(FrameError::Timeout)` when either deadline passes.
pub async fn read_frame_timed<R: AsyncRead + Unpin>(
    r: &mut R,
    idle: std::time::Duration,
    frame_timeout: std::time::Duration,
) -> Result<Option<Vec<u8>>, FrameError> {
    let mut first = [0u8; 1];
    match tokio::time::timeout(idle, r.read(&mut first)).await {
        Err(_) => return Err(FrameError::Timeout),
        Ok(Err(e)) => return Err(FrameError::Io(e)),
        Ok(Ok(0)) => return Ok(None),
        Ok(Ok(_)) => {}
    }
    let rest = async {
        let mut header = [first[0], 0, 0, 0];
        r.read_exact(&mut header[1..])
            .await
            .map_err(eof_is_truncation)?;
        let len = u32::from_be_bytes(header) as usize;
        if len > MAX_FRAME_BYTES {
            return Err(FrameError::TooLarge(len));
        }
        if len == 0 {
            return Err(FrameError::Empty);
        }
        let mut body = vec![0u8; len];
        r.read_exact(&mut body).await.map_err(eof_is_truncation)?;
        Ok(Some(body))
    };
    tokio::time::timeout(frame_timeout, rest)
        .await
        .map_err(|_| FrameError::Timeout)?
}

fn eof_is_truncation(e: std::io::Error) -> FrameError {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof => FrameError::Truncated,
        _ => FrameError::Io(e),
    }
}

/// Write one frame (length prefix and body) and flush.
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, body: &[u8]) -> Result<(), FrameError> {
    let framed = encode(body)?;
    w.write_all(&framed).await?;
    w.flush().await?;
    Ok(())
}

/// Parse a frame body as one strict JSON object (no duplicate keys, at most
/// [`MAX_JSON_DEPTH`] levels, no trailing data).
pub fn parse_object(body: &[u8]) -> Result<Map<String, Value>, FrameError> {
    match airlock_policy::strict_json::parse(body, MAX_JSON_DEPTH) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(FrameError::NotAnObject),
        Err(e) => Err(FrameError::Json(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rejects_duplicates_depth_trailing_and_non_objects() {
        assert!(
            matches!(parse_object(br#"{"a":1,"a":2}"#), Err(FrameError::Json(m)) if m.contains("duplicate key"))
        );
        let deep = format!("{}{}", "[".repeat(40), "]".repeat(40));
        assert!(
            matches!(parse_object(format!(r#"{{"a":{deep}}}"#).as_bytes()), Err(FrameError::Json(m)) if m.contains("nested"))
        );
        assert!(matches!(
            parse_object(br#"{"a":1} x"#),
            Err(FrameError::Json(_))
        ));
        assert!(matches!(parse_object(b"[1]"), Err(FrameError::NotAnObject)));
        assert!(matches!(
            parse_object(b"{\"a\":\"\xff\"}"),
            Err(FrameError::Json(_))
        ));
        assert_eq!(
            parse_object(br#"{"a":[1,{"b":null}]}"#).unwrap()["a"][1]["b"],
            Value::Null
        );
    }

    #[tokio::test]
    async fn length_is_checked_before_allocating() {
        let mut huge: &[u8] = &[0xff, 0xff, 0xff, 0xff, b'{'];
        assert!(
            matches!(read_frame(&mut huge).await, Err(FrameError::TooLarge(n)) if n == u32::MAX as usize)
        );
        let mut truncated: &[u8] = &[0, 0, 0, 10, b'{'];
        assert!(matches!(
            read_frame(&mut truncated).await,
            Err(FrameError::Truncated)
        ));
        let mut half_header: &[u8] = &[0, 0];
        assert!(matches!(
            read_frame(&mut half_header).await,
            Err(FrameError::Truncated)
        ));
        let mut empty: &[u8] = &[];
        assert!(matches!(read_frame(&mut empty).await, Ok(None)));
        let framed = encode(b"{}").unwrap();
        let mut ok: &[u8] = &framed;
        assert_eq!(read_frame(&mut ok).await.unwrap().unwrap(), b"{}");
    }

    use std::pin::Pin;
    use std::task::{Context, Poll};
    use std::time::Duration;
    use tokio::io::ReadBuf;
    use tokio::time::Instant;

    /// A frame of `len` bytes as it is on the wire: the big-endian length,
    /// then `len` bytes of `x`.
    fn wire(len: usize) -> Vec<u8> {
        let mut out = u32::try_from(len).unwrap().to_be_bytes().to_vec();
        out.resize(4 + len, b'x');
        out
    }

    const IDLE: Duration = Duration::from_secs(900);
    const FRAME: Duration = Duration::from_secs(10);

    async fn timed(bytes: &[u8]) -> Result<Option<Vec<u8>>, FrameError> {
        let mut r = bytes;
        read_frame_timed(&mut r, IDLE, FRAME).await
    }

    #[test]
    fn encode_prefixes_the_big_endian_length() {
        assert_eq!(encode(b"{}").unwrap(), [0, 0, 0, 2, b'{', b'}']);
        let body = vec![b'a'; 0x0001_0203];
        let framed = encode(&body).unwrap();
        assert_eq!(framed[..4], [0x00, 0x01, 0x02, 0x03]);
        assert_eq!(framed[4..], body[..]);
    }

    #[test]
    fn encode_accepts_exactly_max_frame_bytes_and_refuses_one_more_or_none() {
        assert_eq!(MAX_FRAME_BYTES, 1_048_576);
        let framed = encode(&vec![b'x'; 1_048_576]).unwrap();
        assert_eq!(framed, wire(1_048_576));
        assert_eq!(framed[..4], [0x00, 0x10, 0x00, 0x00]);
        assert!(matches!(
            encode(&vec![b'x'; 1_048_577]),
            Err(FrameError::TooLarge(1_048_577))
        ));
        assert!(matches!(encode(b""), Err(FrameError::Empty)));
    }

    #[tokio::test]
    async fn read_frame_size_boundaries() {
        let max = wire(1_048_576);
        let mut r: &[u8] = &max;
        assert_eq!(read_frame(&mut r).await.unwrap().unwrap(), max[4..]);
        assert!(r.is_empty(), "exactly one frame consumed");
        // One more is refused from the prefix alone (no body follows).
        let mut r: &[u8] = &[0x00, 0x10, 0x00, 0x01];
        assert!(matches!(
            read_frame(&mut r).await,
            Err(FrameError::TooLarge(1_048_577))
        ));
        let mut r: &[u8] = &[0, 0, 0, 0, b'{', b'}'];
        assert!(matches!(read_frame(&mut r).await, Err(FrameError::Empty)));
        // Two frames back to back are read one at a time.
        let mut two = encode(b"{}").unwrap();
        two.extend(encode(b"[1]").unwrap());
        let mut r: &[u8] = &two;
        assert_eq!(read_frame(&mut r).await.unwrap().unwrap(), b"{}");
        assert_eq!(read_frame(&mut r).await.unwrap().unwrap(), b"[1]");
        assert!(read_frame(&mut r).await.unwrap().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn read_frame_timed_size_boundaries_and_truncation() {
        let max = wire(1_048_576);
        assert_eq!(timed(&max).await.unwrap().unwrap(), max[4..]);
        assert!(matches!(
            timed(&[0x00, 0x10, 0x00, 0x01]).await,
            Err(FrameError::TooLarge(1_048_577))
        ));
        assert!(matches!(
            timed(&[0xff, 0xff, 0xff, 0xff]).await,
            Err(FrameError::TooLarge(0xffff_ffff))
        ));
        assert!(matches!(
            timed(&[0, 0, 0, 0, b'{']).await,
            Err(FrameError::Empty)
        ));
        assert_eq!(timed(&[0, 0, 0, 1, b'7']).await.unwrap().unwrap(), b"7");
        // Clean end of stream before a frame.
        assert!(timed(&[]).await.unwrap().is_none());
        // The stream ends inside the header or the body.
        for cut in [&[0u8][..], &[0, 0, 0], &[0, 0, 0, 2], &[0, 0, 0, 2, b'{']] {
            assert!(
                matches!(timed(cut).await, Err(FrameError::Truncated)),
                "{cut:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn read_frame_timed_waits_idle_for_the_first_byte_then_frame_timeout_for_the_rest() {
        // Nothing arrives: the idle timeout (not the frame timeout) ends it.
        let (mut client, mut server) = tokio::io::duplex(64);
        let start = Instant::now();
        assert!(matches!(
            read_frame_timed(&mut server, IDLE, FRAME).await,
            Err(FrameError::Timeout)
        ));
        assert_eq!(start.elapsed(), IDLE);

        // One byte arrives, then nothing: the frame timeout ends it.
        client.write_all(&[0]).await.unwrap();
        let start = Instant::now();
        assert!(matches!(
            read_frame_timed(&mut server, IDLE, FRAME).await,
            Err(FrameError::Timeout)
        ));
        assert_eq!(start.elapsed(), FRAME);
    }

    #[tokio::test(start_paused = true)]
    async fn a_frame_may_take_longer_than_idle_but_not_longer_than_frame_timeout() {
        // The first byte arrives after a long idle wait, the rest within the
        // frame timeout but after more than `idle`: accepted.
        let (mut client, mut server) = tokio::io::duplex(64);
        let sender = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            client.write_all(&[0]).await.unwrap();
            tokio::time::sleep(Duration::from_secs(9)).await;
            client.write_all(&[0, 0, 2, b'{', b'}']).await.unwrap();
            client
        });
        let got = read_frame_timed(&mut server, Duration::from_secs(61), FRAME).await;
        assert_eq!(got.unwrap().unwrap(), b"{}");
        drop(sender.await.unwrap());

        // A sender trickling one byte every 3 s never completes its frame
        // within the frame timeout, though no single gap is long.
        let (mut client, mut server) = tokio::io::duplex(64);
        let sender = tokio::spawn(async move {
            for b in [0, 0, 0, 2, b'{', b'}'] {
                client.write_all(&[b]).await.unwrap();
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
            client
        });
        let start = Instant::now();
        assert!(matches!(
            read_frame_timed(&mut server, IDLE, FRAME).await,
            Err(FrameError::Timeout)
        ));
        assert_eq!(start.elapsed(), FRAME);
        drop(sender.await.unwrap());
    }

    /// A reader that yields `data`, then fails.
    struct FailingReader {
        data: Vec<u8>,
    }

    impl AsyncRead for FailingReader {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            if self.data.is_empty() {
                return Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "reset by peer",
                )));
            }
            let n = buf.remaining().min(self.data.len());
            let chunk: Vec<u8> = self.data.drain(..n).collect();
            buf.put_slice(&chunk);
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn io_errors_are_io_errors_on_both_read_paths() {
        for data in [vec![], vec![0], vec![0, 0, 0, 2, b'{']] {
            let mut r = FailingReader { data: data.clone() };
            let got = read_frame_timed(&mut r, IDLE, FRAME).await;
            assert!(
                matches!(&got, Err(FrameError::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionReset),
                "{data:?}: {got:?}"
            );
            let mut r = FailingReader { data: data.clone() };
            let got = read_frame(&mut r).await;
            assert!(
                matches!(&got, Err(FrameError::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionReset),
                "{data:?}: {got:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn write_frame_writes_the_prefix_and_body_and_flushes() {
        let mut out: Vec<u8> = Vec::new();
        write_frame(&mut out, b"{\"a\":1}").await.unwrap();
        assert_eq!(out, b"\x00\x00\x00\x07{\"a\":1}");

        // Through a buffered writer, the peer sees the frame at once: it was flushed.
        let (client, mut server) = tokio::io::duplex(64);
        let mut buffered = tokio::io::BufWriter::new(client);
        write_frame(&mut buffered, b"{}").await.unwrap();
        let got = read_frame_timed(&mut server, FRAME, FRAME).await;
        assert_eq!(got.unwrap().unwrap(), b"{}");

        // Refused bodies write nothing.
        let mut out: Vec<u8> = Vec::new();
        assert!(matches!(
            write_frame(&mut out, &vec![b'x'; 1_048_577]).await,
            Err(FrameError::TooLarge(1_048_577))
        ));
        assert!(matches!(
            write_frame(&mut out, b"").await,
            Err(FrameError::Empty)
        ));
        assert!(out.is_empty());
        // At the limit: written whole.
        write_frame(&mut out, &vec![b'x'; 1_048_576]).await.unwrap();
        assert_eq!(out, wire(1_048_576));
    }

    #[test]
    fn frame_errors_read_as_documented() {
        assert_eq!(
            FrameError::TooLarge(1_048_577).to_string(),
            "frame of 1048577 bytes exceeds the 1048576-byte limit"
        );
        assert_eq!(FrameError::Empty.to_string(), "empty frame");
        assert_eq!(
            FrameError::Truncated.to_string(),
            "connection closed in the middle of a frame"
        );
        assert_eq!(
            FrameError::Timeout.to_string(),
            "the peer was too slow to send a frame"
        );
        assert_eq!(
            FrameError::NotAnObject.to_string(),
            "frame is not a JSON object"
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_the_decoder(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_object(&bytes);
            let _ = crate::message::RequestFrame::decode(&bytes);
            let _ = crate::message::ResponseFrame::decode(&bytes);
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let mut r: &[u8] = &bytes;
            let _ = rt.block_on(read_frame(&mut r));
        }

        #[test]
        fn arbitrary_json_objects_never_panic_message_decoding(
            kind in prop::sample::select(crate::message::Request::TYPES.to_vec()),
            body in "\\{[a-z_\":,0-9\\[\\]{} ]{0,80}\\}",
        ) {
            let frame = format!(r#"{{"id":1,"type":"{kind}","body":{body}}}"#);
            let _ = crate::message::RequestFrame::decode(frame.as_bytes());
        }
    }
}
