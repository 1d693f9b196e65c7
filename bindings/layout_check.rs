// SPDX-License-Identifier: GPL-2.0

//! Load-time check that the struct layouts a module uses from rust/bindings
//! (or from its own bindgen output) match what the C compiler sees.
//!
//! In this build rust/bindings' `task_struct` does not match C (see
//! `importer_current_mm()` in tests/importer/importer_shim.h), so every
//! layout we rely on is verified against the module's C (`p2pmap_layout()`,
//! `importer_layout()`) before anything uses it. Shared by p2pmap.ko and the
//! test importer (included with `#[path]`).

use kernel::prelude::*;

/// One size or offset: its name, the item of the module's layout function
/// and the value Rust computed.
pub(crate) struct Item {
    pub(crate) name: &'static str,
    pub(crate) item: u32,
    pub(crate) rust: usize,
}

/// Compares every item with the C value given by `c_value`; logs and fails
/// with `EINVAL` on the first mismatch.
pub(crate) fn check(items: &[Item], c_value: impl Fn(u32) -> u64) -> Result {
    for it in items {
        let c = c_value(it.item);
        if c != it.rust as u64 {
            pr_err!(
                "layout mismatch: {} is {} for C but {} in Rust bindings\n",
                it.name,
                c,
                it.rust
            );
            return Err(EINVAL);
        }
    }
    Ok(())
}
