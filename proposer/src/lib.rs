//! # airlock-proposer
//!
//! The MCP server the model talks to. It owns the reviewed read and
//! proposal tools: fixed, parameterized SELECTs scoped by primary key and
//! tenant over a read-only credential, change sets built with `policy`, and
//! evidence and proposals sent to the executor over its proposer socket.
//!
//! It must never hold or reach write authority: it refuses to start when a
//! write credential is in its environment, never opens the ledger, cannot
//! approve or apply, and sandboxes itself once start-up is done: it is
//! non-dumpable, may only read a short list of files and write none
//! (Landlock), and runs under no_new_privs + seccomp on every thread.

#![forbid(unsafe_code)]

pub mod app_card;
pub mod cli;
pub mod credentials;
pub mod envelope;
pub mod executor_link;
pub mod explore;
pub mod http;
pub mod http_identity;
pub mod observability;
pub mod sandbox;
pub mod server;
pub mod source;
pub mod stdio_front;
pub mod telemetry;
pub mod tools;
