//! Generated gRPC types for Cairn.
//!
//! - [`v1`]: the public client API (`cairn.v1`), a stable contract.
//! - [`internal`]: node-to-node RPC (`cairn.internal.v1`).

#![allow(clippy::all, missing_docs)]

pub mod v1 {
    tonic::include_proto!("cairn.v1");
}

pub mod internal {
    tonic::include_proto!("cairn.internal.v1");
}
