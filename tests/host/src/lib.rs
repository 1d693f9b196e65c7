// SPDX-License-Identifier: GPL-2.0

//! Host build of the module's pure logic: the very files the kernel module
//! compiles (`src/logic`), tested with `cargo test`.

#[path = "../../../src/logic/mod.rs"]
pub mod logic;
