// SPDX-License-Identifier: GPL-2.0

//! Pure logic of p2pmap: no kernel dependencies, so the same files build in
//! the module and in the host `cargo test` crate (`tests/host`).

pub mod atomic;
pub mod changes;
pub mod cover;
pub mod errno;
pub mod extents;
pub mod lease;
pub mod reason;
pub mod request;
pub mod revoke;
