//! Micro-benchmarks of the IPC wire contract on the proposal path: decoding
//! (strictly) and encoding the `submit_proposal` request of the golden
//! fixture, and the length-prefix framing.
//!
//! `cargo bench -p airlock-ipc --bench frame`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::path::PathBuf;

use airlock_ipc::frame::{encode, parse_object};
use airlock_ipc::message::RequestFrame;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn benches(c: &mut Criterion) {
    let pretty = fixture("request.submit_proposal.json");
    let frame = RequestFrame::decode(&pretty).expect("the fixture decodes");
    // What travels on the socket: the compact encoding.
    let wire = frame.encode();

    let mut g = c.benchmark_group("submit_proposal");
    g.throughput(Throughput::Bytes(wire.len() as u64));
    g.bench_function("RequestFrame::decode (strict)", |b| {
        b.iter(|| RequestFrame::decode(black_box(&wire)).unwrap())
    });
    g.bench_function("RequestFrame::encode", |b| {
        b.iter(|| black_box(&frame).encode())
    });
    g.bench_function("frame::parse_object (strict JSON only)", |b| {
        b.iter(|| parse_object(black_box(&wire)).unwrap())
    });
    g.bench_function("frame::encode (length prefix)", |b| {
        b.iter(|| encode(black_box(&wire)).unwrap())
    });
    g.finish();
}

criterion_group!(frame, benches);
criterion_main!(frame);
