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
