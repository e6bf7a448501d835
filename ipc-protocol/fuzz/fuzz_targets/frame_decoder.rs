//! Arbitrary bytes through every decoding layer of `airlock.ipc.v1`: the
//! framing reader, the strict JSON object parser, and both message decoders.
//! None of them may panic (invariant 10); errors are expected and ignored.

#![no_main]

use std::sync::OnceLock;

use airlock_ipc::frame::{parse_object, read_frame};
use airlock_ipc::{RequestFrame, ResponseFrame};
use libfuzzer_sys::fuzz_target;
use tokio::runtime::Runtime;

fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap_or_else(|e| panic!("cannot build the tokio runtime: {e}"))
    })
}

fuzz_target!(|data: &[u8]| {
    // The body decoders.
    let _ = parse_object(data);
    if let Ok(frame) = RequestFrame::decode(data) {
        // Whatever decodes must re-encode to something that decodes the same.
        let again = RequestFrame::decode(&frame.encode());
        assert!(
            again.as_ref().is_ok_and(|f| *f == frame),
            "request re-encoding is not stable"
        );
    }
    if let Ok(frame) = ResponseFrame::decode(data) {
        let again = ResponseFrame::decode(&frame.encode());
        assert!(
            again.as_ref().is_ok_and(|f| *f == frame),
            "response re-encoding is not stable"
        );
    }

    // The framing reader over the same bytes: read frames until the stream
    // ends or a frame error, decoding each body.
    runtime().block_on(async {
        let mut reader: &[u8] = data;
        while let Ok(Some(body)) = read_frame(&mut reader).await {
            let _ = RequestFrame::decode(&body);
            let _ = ResponseFrame::decode(&body);
        }
    });
});
