//! # airlock-identity
//!
//! Verification of the signed tokens that name the tenant and principal of
//! an HTTP request (`trusted_context.provider: "http_claims"`). The HTTP
//! proposer verifies each request's token; the executor verifies the same
//! token again before it records evidence, a proposal or an Explore
//! reservation, so a proposer cannot claim a tenant no issuer signed.
//!
//! What a valid token is — algorithms, issuer, audience, time, scopes,
//! claims — is decided in `airlock_policy::session_auth`; this crate adds
//! the two effects: fetching the issuer's public keys (JWKS) and checking
//! signatures.

#![forbid(unsafe_code)]

mod jwks;
mod verifier;

pub use jwks::{JwksError, KeySet};
pub use verifier::{Verifier, VerifyError};
