//! # airlock-ipc
//!
//! The wire contract between the Airlock proposer, the executor and the
//! operator CLI (`airlock.ipc.v1`): length-prefixed JSON frames decoded
//! strictly, a `hello`/`welcome` handshake naming the role, typed requests
//! and responses per role, a closed set of error codes, and the limits that
//! bound every frame and connection.
//!
//! This crate owns the *shape* of the conversation, never its authority:
//! whether a peer may send a message is decided by the executor, from the
//! socket it connected to and its kernel-reported credentials.
//! `docs/ipc-protocol.md` is the reviewer's description of this contract;
//! `fixtures/` holds a golden example of every message.

#![forbid(unsafe_code)]

pub mod client;
pub mod error;
pub mod frame;
pub mod limits;
pub mod message;
pub mod transport;

pub use error::{ErrorBody, ErrorCode};
pub use message::{Request, RequestFrame, Response, ResponseFrame, Role};

/// The protocol name and version spoken in `hello` and `welcome`.
pub const PROTOCOL: &str = "airlock.ipc.v1";
