// SPDX-License-Identifier: GPL-2.0

//! p2pmap: direct block mapping through the filesystem for devices.
//!
//! Provides `vm_operations_struct::device_map`/`device_unmap` for file
//! mappings of filesystems that opt in (XFS, ext4) through the
//! `device_map_register_provider()` hook of the kernel patch series in
//! `patches/`. See `Documentation/design.rst`.

use kernel::prelude::*;

mod changes;
mod extents;
mod ffi;
// Shared with the host test crate (tests/host), where these items are the
// crate's public API.
#[allow(unreachable_pub)]
mod logic;
mod provider;
mod revocation;
mod stats;
mod windows;
mod writeback;

module! {
    type: P2pMap,
    name: "p2pmap",
    authors: ["p2pmap developers"],
    description: "Peer-to-peer device mappings of file blocks through an NVMe CMB",
    license: "GPL",
    params: {
        allow_pin: bool {
            default: false,
            description: "Allow DEVICE_MAP_FLAG_PIN: a dma_buf owns the mapping (runtime: debugfs p2pmap/allow_pin)",
        },
    },
}

/// The module: its debugfs statistics and its provider registration.
///
/// Fields drop in declaration order: the provider is unregistered (which
/// waits for calls in flight) before debugfs goes away.
struct P2pMap {
    provider: Option<ffi::ProviderRegistration>,
    pci_notifier: Option<ffi::PciUnbindNotifier>,
    _debugfs: stats::Debugfs,
}

impl kernel::Module for P2pMap {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        ffi::check_layouts()?;
        stats::STATS.set_pin_allowed(module_parameters::allow_pin.value());
        windows::init();
        changes::init();
        ffi::lease_init()?;
        if let Err(e) = ffi::flush_init() {
            ffi::lease_exit();
            return Err(e);
        }
        let registered = (|| {
            let debugfs = stats::Debugfs::new()?;
            let pci_notifier = ffi::PciUnbindNotifier::register()?;
            let provider = ffi::ProviderRegistration::register::<provider::P2pProvider>()?;
            Ok(P2pMap {
                provider: Some(provider),
                pci_notifier: Some(pci_notifier),
                _debugfs: debugfs,
            })
        })();
        match registered {
            Ok(m) => {
                pr_info!("loaded, device_map provider registered\n");
                Ok(m)
            }
            Err(e) => {
                // Nothing was staged: only the workers to undo.
                ffi::flush_exit();
                ffi::lease_exit();
                Err(e)
            }
        }
    }
}

impl Drop for P2pMap {
    fn drop(&mut self) {
        pr_info!("unloading\n");
        // A task between break_begin and break_end would miss its
        // break_end once the provider is gone: leases stop being passed by.
        windows::stop_passing_leases();
        // No new mappings (waits for calls in flight), then revoke the live
        // ones: importers stop device access in their notifiers before
        // unmap_mapping_range returns, and the windows are freed.
        drop(self.provider.take());
        // No device removal runs from here on: revoke_all() covers them.
        drop(self.pci_notifier.take());
        revocation::revoke_all();
        // Nothing queues write-back any more.
        ffi::flush_exit();
        ffi::lease_exit();
        windows::exit();
    }
}
