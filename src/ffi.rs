// SPDX-License-Identifier: GPL-2.0

//! FFI layer: p2pmap's own bindgen output (`bindings/p2pmap_generated.rs`)
//! and the safe wrappers around it and around the raw `kernel::bindings`
//! the rest of the module needs. All of p2pmap's `unsafe` code is here but
//! the initialization of the registry's locks (`windows.rs`); policy lives
//! in `provider.rs` and `logic/`. This file imports neither of them: the
//! C-to-Rust entry points live with the code they call.

use core::{
    marker::PhantomData,
    ptr::{self, NonNull},
};
use kernel::{
    bindings,
    device::Device,
    error::{
        from_err_ptr,
        to_result, //
    },
    ffi::{c_int, c_uint, c_ulong, c_void},
    fs::File,
    mm::virt::{self, VmaRef},
    page::PAGE_SIZE,
    pci,
    prelude::*,
    sync::aref::ARef,
};

use crate::logic::{
    atomic,
    reason::Reason,
    request::{self, MapRequest, ValidRequest, VmaInfo},
    revoke::Cause,
};

#[allow(
    unsafe_op_in_unsafe_fn,
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    dead_code,
    missing_docs,
    unreachable_pub,
    improper_ctypes,
    clippy::all,
    clippy::undocumented_unsafe_blocks
)]
mod ext {
    // Types the generated items refer to but do not define.
    use kernel::bindings::*;
    use kernel::ffi;
    include!("../bindings/p2pmap_generated.rs");
}

#[path = "../bindings/layout_check.rs"]
mod layout_check;

/// Checks the layouts this module reads from rust/bindings and its own
/// bindgen output against the C compiler's (see `layout_check`).
pub(crate) fn check_layouts() -> Result {
    use core::mem::{offset_of, size_of};
    use layout_check::Item;
    let items = [
        Item {
            name: "sizeof(struct vm_area_struct)",
            item: ext::P2PMAP_SZ_VMA,
            rust: size_of::<bindings::vm_area_struct>(),
        },
        Item {
            name: "sizeof(struct vm_operations_struct)",
            item: ext::P2PMAP_SZ_VM_OPS,
            rust: size_of::<bindings::vm_operations_struct>(),
        },
        Item {
            name: "offsetof(struct vm_area_struct, vm_mm)",
            item: ext::P2PMAP_OFF_VMA_VM_MM,
            rust: offset_of!(bindings::vm_area_struct, vm_mm),
        },
        Item {
            name: "offsetof(struct vm_area_struct, vm_file)",
            item: ext::P2PMAP_OFF_VMA_VM_FILE,
            rust: offset_of!(bindings::vm_area_struct, vm_file),
        },
        Item {
            name: "sizeof(struct device_map_provider)",
            item: ext::P2PMAP_SZ_DEVICE_MAP_PROVIDER,
            rust: size_of::<ext::device_map_provider>(),
        },
    ];
    // SAFETY: `p2pmap_layout` only returns constants.
    layout_check::check(&items, |i| unsafe { ext::p2pmap_layout(i as i32) as u64 })
}

/// The kernel's `DEVICE_MAP_FLAG_*` values, for cross-checking
/// `logic::request` in the KUnit suite.
pub(crate) mod kernel_flags {
    pub(crate) use super::ext::{
        P2PMAP_DEVICE_MAP_FLAGS_ALL as ALL, P2PMAP_DEVICE_MAP_FLAG_PIN as PIN,
        P2PMAP_DEVICE_MAP_FLAG_SUPPORT_ATOMIC_OP as SUPPORT_ATOMIC_OP,
        P2PMAP_DEVICE_MAP_FLAG_WRITE as WRITE,
    };
}

/// One `device_map` call, as received from `filemap_device_map()`.
///
/// # Invariants
///
/// - `vma` is locked by the caller (mmap_lock held for read) for `'a`.
/// - `pa` points to an array of at least `(end - start) / PAGE_SIZE`
///   writable `dma_addr_t` whenever `start..end` is a page-aligned,
///   non-empty range (the importer's side of the `device_map` contract),
///   not accessed by the importer during the call.
/// - `bufp` is NULL or writable (the contract: where a PIN call stores its
///   dma_buf).
pub(crate) struct MapCall<'a> {
    vma: &'a VmaRef,
    importer: &'a Device,
    req: MapRequest,
    pa: *mut bindings::dma_addr_t,
    bufp: *mut *mut bindings::dma_buf,
}

/// Which path a `device_map` call took, for its trace event.
#[derive(Clone, Copy)]
pub(crate) enum MapPath {
    /// Served from staged windows, under the caller's mmap_lock.
    Fast,
    /// mmap_lock released, a window (or a refusal) staged: `-EAGAIN`.
    Slow,
    /// Refused (the refusal has its own event, with the reason).
    Refused,
}

impl MapPath {
    fn name(self) -> &'static str {
        match self {
            MapPath::Fast => "fast",
            MapPath::Slow => "slow",
            MapPath::Refused => "refused",
        }
    }
}

/// A `device_map` call as the trace events name it: the importer, the
/// file (device, inode number, inode key) and the request, captured while
/// the vma is locked, so that events can be emitted after the slow path
/// released it. The importer is the call's: live until it returns. `None`
/// while the events are off: nothing is gathered on the fast path then.
#[derive(Clone, Copy)]
pub(crate) struct MapTrace<'a>(Option<MapTraceData<'a>>);

#[derive(Clone, Copy)]
struct MapTraceData<'a> {
    importer: &'a Device,
    sdev: u32,
    ino: u64,
    inode: usize,
    pos: i64,
    pages: u64,
    flags: u32,
    start_ns: u64,
}

impl MapTrace<'_> {
    /// The call ends (`err` 0, or the errno it returns, negative).
    pub(crate) fn end(&self, path: MapPath, err: c_int) {
        let Some(t) = &self.0 else { return };
        let name = path.name();
        // SAFETY: the importer is live for the call (`'a`); the string is
        // passed with its length; the inode key is only printed.
        unsafe {
            ext::p2pmap_trace_map(
                device_ptr(t.importer),
                t.sdev,
                t.ino,
                t.inode as *const c_void,
                t.pos,
                t.pages,
                t.flags,
                name.as_ptr().cast(),
                name.len() as c_int,
                err,
                now_ns().saturating_sub(t.start_ns),
            )
        };
    }

    /// The call is refused for `reason`.
    pub(crate) fn refuse(&self, reason: Reason) {
        let Some(t) = &self.0 else { return };
        let name = reason.name();
        // SAFETY: as in `end`.
        unsafe {
            ext::p2pmap_trace_refuse(
                device_ptr(t.importer),
                t.sdev,
                t.ino,
                t.inode as *const c_void,
                t.pos,
                t.pages,
                name.as_ptr().cast(),
                name.len() as c_int,
                -reason.errno(),
            )
        };
    }
}

/// What the slow path staged, for the `p2pmap_stage` event.
pub(crate) struct StageTrace {
    /// Bytes of the window.
    pub(crate) bytes: u64,
    /// Extents read from the block device, and zero-filled (holes,
    /// unwritten).
    pub(crate) mapped: u32,
    pub(crate) zeroed: u32,
    /// `map_blocks` calls (the others came from the block map cache).
    pub(crate) map_blocks: u32,
    /// `ktime_get_ns()` when staging began.
    pub(crate) start_ns: u64,
}

/// Emits `p2pmap_revoke`: `windows` windows of `scope` (its name, and its
/// inode and byte range where it has them) revoked for `cause`, their
/// importers quiesced `ns` after it started.
pub(crate) fn trace_revoke(
    cause: Cause,
    scope: &str,
    inode: Option<InodeKey>,
    range: (i64, i64),
    windows: usize,
    ns: u64,
) {
    let cause = cause.name();
    // SAFETY: the strings are passed with their lengths; the inode key is
    // only printed.
    unsafe {
        ext::p2pmap_trace_revoke(
            cause.as_ptr().cast(),
            cause.len() as c_int,
            scope.as_ptr().cast(),
            scope.len() as c_int,
            inode.map_or(0, |i| i.raw()) as *const c_void,
            range.0,
            range.1,
            windows as u64,
            ns,
        )
    };
}

/// A `device_map` call whose request passed [`request::validate`].
///
/// # Invariants
///
/// `vma` is locked for `'a` (from [`MapCall`]); `start` is the validated
/// start address inside it.
pub(crate) struct ValidMapCall<'a> {
    vma: &'a VmaRef,
    importer: &'a Device,
    req: ValidRequest,
    start: usize,
    pa: &'a mut [bindings::dma_addr_t],
    bufp: *mut *mut bindings::dma_buf,
}

impl<'a> MapCall<'a> {
    /// The call as the trace events name it, timed from now; nothing if
    /// they are off.
    pub(crate) fn trace(&self) -> MapTrace<'a> {
        // SAFETY: reads a static key; any context.
        if !unsafe { ext::p2pmap_trace_map_enabled() } {
            return MapTrace(None);
        }
        // SAFETY: the vma is valid and locked (type invariant).
        let file = unsafe { ext::p2pmap_vma_file(self.vma.as_ptr()) };
        let (sdev, ino, inode) = if file.is_null() {
            (0, 0, 0)
        } else {
            // SAFETY: the `vm_file` of a locked vma is live.
            unsafe {
                (
                    ext::p2pmap_file_sdev(file),
                    ext::p2pmap_file_ino(file),
                    ext::p2pmap_file_inode(file) as usize,
                )
            }
        };
        let start = self.req.start as usize;
        let pos = if !file.is_null() && start >= self.vma.start() && start < self.vma.end() {
            // SAFETY: the vma is valid and locked, `start` inside it.
            unsafe { ext::p2pmap_vma_file_pos(self.vma.as_ptr(), start as c_ulong) }
        } else {
            -1
        };
        MapTrace(Some(MapTraceData {
            importer: self.importer,
            sdev,
            ino,
            inode,
            pos,
            pages: self.req.end.saturating_sub(self.req.start) / PAGE_SIZE as u64,
            flags: self.req.flags,
            start_ns: now_ns(),
        }))
    }

    /// Validates the request against its vma (see `logic::request`).
    pub(crate) fn validate(self) -> Result<ValidMapCall<'a>, Reason> {
        let flags = self.vma.flags();
        let info = VmaInfo {
            start: self.vma.start() as u64,
            end: self.vma.end() as u64,
            shared: flags & virt::flags::SHARED != 0,
            may_share: flags & virt::flags::MAYSHARE != 0,
            writable: flags & virt::flags::WRITE != 0,
        };
        let valid = request::validate(&info, &self.req, PAGE_SIZE as u64)?;
        let pages = usize::try_from(valid.pages).map_err(|_| Reason::OutsideVma)?;
        // SAFETY: `validate` checked that the range is page aligned and
        // non-empty, so by the type invariant `pa` has room for `pages`
        // entries that nobody else touches during the call.
        let pa = unsafe { core::slice::from_raw_parts_mut(self.pa, pages) };
        // INVARIANT: the vma lock is inherited; `start` was validated.
        Ok(ValidMapCall {
            vma: self.vma,
            importer: self.importer,
            req: valid,
            start: self.req.start as usize,
            pa,
            bufp: self.bufp,
        })
    }
}

impl ValidMapCall<'_> {
    /// The validated request.
    pub(crate) fn request(&self) -> &ValidRequest {
        &self.req
    }

    /// The importing device.
    pub(crate) fn importer(&self) -> &Device {
        self.importer
    }

    /// The mapped file, if the vma has one.
    pub(crate) fn file(&self) -> Option<MappedFile<'_>> {
        // SAFETY: the vma is valid and locked (type invariant).
        let file = unsafe { ext::p2pmap_vma_file(self.vma.as_ptr()) };
        // INVARIANT: `vm_file` of a locked vma stays valid while it is locked.
        (!file.is_null()).then_some(MappedFile {
            file,
            _vma: PhantomData,
        })
    }

    /// The output array: one bus address per page of the range.
    pub(crate) fn pa(&mut self) -> &mut [bindings::dma_addr_t] {
        self.pa
    }

    /// Who asks, for the window's claim: the importer and the virtual range
    /// it will give back with `device_unmap`.
    pub(crate) fn claimant(&self) -> Claimant {
        let len = self.pa.len() * PAGE_SIZE;
        Claimant::new(device_key(self.importer), self.start, self.start + len)
    }

    /// Whether the caller gave a place for a dma_buf (`bufp`).
    pub(crate) fn has_buf_ptr(&self) -> bool {
        !self.bufp.is_null()
    }

    /// Hands the importer `pin`, whose claim on the windows of this call's
    /// `pa` is taken: exports its dma_buf into `*bufp`. On failure the
    /// claim was given back (`p2pmap_rust_pin_release`) and the pin freed.
    /// `EINVAL` (and nothing done) without `bufp`: check
    /// [`Self::has_buf_ptr`] before claiming.
    ///
    /// Context: sleeps (allocates the dma_buf and its file).
    pub(crate) fn give_pin(&mut self, pin: PinnedRange) -> Result {
        if self.bufp.is_null() {
            return Err(EINVAL);
        }
        let raw = pin.into_raw();
        // SAFETY: `raw` is a live pin, not exported (owned by us until
        // this call, which consumes it); `pa` has its `npages` entries.
        let buf = unsafe { ext::p2pmap_pin_export(raw, self.pa.as_ptr()) };
        let buf = from_err_ptr(buf)?;
        // SAFETY: `bufp` is non-NULL and writable (type invariant of
        // `MapCall`, inherited); the dma_buf reference is the importer's.
        unsafe { *self.bufp = buf };
        Ok(())
    }

    /// The file byte range `[start, end)` of the request.
    pub(crate) fn file_range(&self) -> (i64, i64) {
        // SAFETY: the vma is valid and locked, `start` inside it (invariant).
        let start = unsafe { ext::p2pmap_vma_file_pos(self.vma.as_ptr(), self.start as c_ulong) };
        let len = (self.req.pages * PAGE_SIZE as u64) as i64;
        (start, start.saturating_add(len))
    }
}

/// The file of a locked vma.
///
/// # Invariants
///
/// `file` is the `vm_file` of a vma whose mmap_lock is held for `'a`, so
/// the file (and its inode, superblock and block device) stays alive.
pub(crate) struct MappedFile<'a> {
    file: *mut bindings::file,
    _vma: PhantomData<&'a VmaRef>,
}

impl MappedFile<'_> {
    /// The filesystem has export block ops (`map_blocks`/`commit_blocks`).
    pub(crate) fn has_block_ops(&self) -> bool {
        // SAFETY: `file` is valid (type invariant).
        unsafe { ext::p2pmap_file_has_block_ops(self.file) }
    }

    /// Identifies the inode while the file (or a reference on it) lives.
    pub(crate) fn inode_key(&self) -> InodeKey {
        // SAFETY: `file` is valid (type invariant).
        InodeKey::of(unsafe { ext::p2pmap_file_inode(self.file) })
    }

    /// `i_size` of the inode.
    pub(crate) fn size(&self) -> i64 {
        // SAFETY: `file` is valid (type invariant).
        unsafe { ext::p2pmap_file_size(self.file) }
    }

    /// Why the file may not be written through a device mapping now, as
    /// a `write()` would find it (`p2pmap_file_write_check()`): not open
    /// for writing, immutable, append-only, read-only or frozen
    /// filesystem; `None` if it may.
    pub(crate) fn write_refusal(&self) -> Option<Reason> {
        // SAFETY: `file` is valid (type invariant).
        let r = unsafe { ext::p2pmap_file_write_check(self.file) };
        match r {
            ext::P2PMAP_WRITE_CHECK_OK => None,
            ext::P2PMAP_WRITE_CHECK_FD_READ_ONLY => Some(Reason::WriteFdReadOnly),
            ext::P2PMAP_WRITE_CHECK_IMMUTABLE => Some(Reason::WriteImmutable),
            ext::P2PMAP_WRITE_CHECK_APPEND_ONLY => Some(Reason::WriteAppendOnly),
            ext::P2PMAP_WRITE_CHECK_FS_FROZEN => Some(Reason::WriteFsFrozen),
            _ => Some(Reason::WriteFsReadOnly),
        }
    }

    /// The file is an active swap file (the swap code owns its blocks).
    pub(crate) fn is_swapfile(&self) -> bool {
        // SAFETY: `file` is valid (type invariant).
        unsafe { ext::p2pmap_file_is_swapfile(self.file) }
    }

    /// The inode is DAX.
    pub(crate) fn is_dax(&self) -> bool {
        // SAFETY: `file` is valid (type invariant).
        unsafe { ext::p2pmap_file_is_dax(self.file) }
    }

    /// The PCI function behind the filesystem's block device.
    pub(crate) fn pci_dev(&self) -> Option<Nvme> {
        // SAFETY: `file` is valid (type invariant); the result carries a
        // reference of its own.
        let pdev = unsafe { ext::p2pmap_file_pci_dev(self.file) };
        // SAFETY: a non-NULL result holds a reference for us.
        NonNull::new(pdev).map(|pdev| unsafe { Nvme::from_owned(pdev) })
    }

    /// Drops the clean, unmapped page-cache pages of the file byte range
    /// `[start, end)`; returns whether pages are left (dirty, mapped by the
    /// CPU, locked or under writeback).
    ///
    /// Does not sleep on I/O; takes folio locks only with trylock
    /// (`invalidate_mapping_pages()`), so it is fine under mmap_lock.
    pub(crate) fn drop_clean_cache(&self, start: i64, end: i64) -> bool {
        // SAFETY: `file` is valid (type invariant).
        unsafe { ext::p2pmap_file_drop_clean_cache(self.file, start, end) }
    }
}

/// Proof that the provider released the caller's mmap_lock: the only way
/// for a provider to make `device_map` return `-EAGAIN`.
pub(crate) struct LockDropped(());

/// Why `Provider::map` did not map.
pub(crate) enum MapFailure {
    /// Refused (any errno; an `EAGAIN` is turned into `EBUSY`).
    Refused(Error),
    /// mmap_lock was released: the caller looks the vma up and retries.
    Retry(LockDropped),
}

impl From<Error> for MapFailure {
    fn from(e: Error) -> Self {
        MapFailure::Refused(e)
    }
}

/// The slow path of a `device_map` call, after mmap_lock was released: holds
/// a reference on the mapped file, which is all that may be used.
pub(crate) struct SlowPath {
    file: ARef<File>,
}

impl ValidMapCall<'_> {
    /// Takes a reference on the mapped file and releases the caller's
    /// mmap_lock, as `device_map` may before returning `-EAGAIN` (like a
    /// fault handler before `VM_FAULT_RETRY`). Consumes the call: the vma
    /// must not be touched any more.
    pub(crate) fn release_mmap_lock(self) -> Result<SlowPath, Reason> {
        let file = self.file().ok_or(Reason::NoBlockOps)?;
        // SAFETY: `file.file` is the vm_file of the locked vma (valid), and
        // `into` takes a reference of our own (get_file).
        let file: ARef<File> = unsafe { File::from_raw_file(file.file) }.into();
        let mm = self.vma.mm().as_raw();
        // SAFETY: the caller holds `mm`'s mmap_lock for read (the
        // device_map contract, asserted by filemap_device_map); `self` and
        // with it every borrow of the vma end here.
        unsafe { bindings::mmap_read_unlock(mm) };
        Ok(SlowPath { file })
    }
}

impl SlowPath {
    /// Emits `p2pmap_stage` for `what` at file byte `pos`: staged, or
    /// refused for `reason`.
    pub(crate) fn trace_stage(&self, pos: i64, what: &StageTrace, reason: Option<Reason>) {
        // SAFETY: reads a static key; any context.
        if !unsafe { ext::p2pmap_trace_stage_enabled() } {
            return;
        }
        let result = reason.map_or("staged", |r| r.name());
        // SAFETY: we hold a reference on the file; the string is passed
        // with its length; the inode address is only printed.
        unsafe {
            let file = self.file.as_ptr();
            ext::p2pmap_trace_stage(
                ext::p2pmap_file_sdev(file),
                ext::p2pmap_file_ino(file),
                ext::p2pmap_file_inode(file) as *const c_void,
                pos,
                what.bytes,
                what.mapped,
                what.zeroed,
                what.map_blocks,
                result.as_ptr().cast(),
                result.len() as c_int,
                now_ns().saturating_sub(what.start_ns),
            )
        };
    }

    /// Ends the slow path (dropping the file reference): `device_map`
    /// returns `-EAGAIN`.
    pub(crate) fn retry(self) -> LockDropped {
        LockDropped(())
    }

    /// The mapped file (the slow path holds a reference).
    pub(crate) fn file(&self) -> &ARef<File> {
        &self.file
    }

    /// `i_size` of the inode.
    pub(crate) fn file_size(&self) -> i64 {
        // SAFETY: we hold a reference on the file.
        unsafe { ext::p2pmap_file_size(self.file.as_ptr()) }
    }

    /// Waits for the direct I/O in flight on the inode: a direct write
    /// submitted before the lease was taken broke no lease, and
    /// `map_blocks` does not wait for it. Call after [`Self::take_lease`]
    /// (later writers break the lease) and before staging.
    ///
    /// Context: sleeps; takes i_rwsem.
    pub(crate) fn wait_direct_io(&self) {
        // SAFETY: we hold a reference on the file; no lock held (the
        // caller's mmap_lock was released).
        unsafe { ext::p2pmap_file_wait_direct_io(self.file.as_ptr()) };
    }

    /// The filesystem's `map_blocks` for a mapping starting at file byte
    /// `offset`: the extent that covers it. With `write`, holes are
    /// allocated first (XFS: unwritten extents, logged synchronously, the
    /// inode marked preallocated so that blocks past EOF stay).
    ///
    /// Context: sleeps; takes the inode's locks (i_rwsem) itself, which is
    /// why it only runs after mmap_lock was released.
    pub(crate) fn map_blocks(&self, offset: i64, len: u64, write: bool) -> Result<Extent> {
        let mut iomap = ext::iomap::default();
        // SAFETY: we hold a reference on the file; its filesystem has block
        // ops (checked by the caller under mmap_lock: a file's superblock
        // does not change); `iomap` is a valid out parameter.
        to_result(unsafe {
            ext::p2pmap_file_map_blocks(self.file.as_ptr(), offset, len, &mut iomap, write)
        })?;
        let kind = match u32::from(iomap.type_) {
            ext::IOMAP_MAPPED => ExtentKind::Mapped(iomap.addr),
            ext::IOMAP_HOLE => ExtentKind::Hole,
            ext::IOMAP_UNWRITTEN => ExtentKind::Unwritten(iomap.addr),
            _ => ExtentKind::Other,
        };
        Ok(Extent {
            offset: iomap.offset,
            length: iomap.length,
            kind,
        })
    }

    /// Reads `len` bytes at byte `addr` of the filesystem's block device
    /// into `buf` at `at`, peer to peer (bios on the CMB pages).
    pub(crate) fn read_into(&self, buf: &mut CmbBuf, at: usize, addr: u64, len: usize) -> Result {
        if at.checked_add(len).is_none_or(|end| end > buf.size) {
            return Err(EINVAL);
        }
        // SAFETY: we hold a reference on the file; `[at, at + len)` is
        // inside `buf`'s P2P allocation, which we own.
        to_result(unsafe {
            ext::p2pmap_bdev_read_p2p(self.file.as_ptr(), addr, buf.vaddr.add(at).cast(), len)
        })
    }
}

/// The layout lease p2pmap holds on an inode, as C keeps it: the
/// `file_lease` on the inode, its `lm_ops` and the worker that releases it
/// (`bindings/p2pmap_lease.c`). Its state is Rust's (`crate::windows`),
/// named by C through the inode and the generation it was taken with.
///
/// # Invariants
///
/// `ptr` is a lease `p2pmap_lease_take()` returned and nobody released;
/// this value owns it and releases it when dropped.
pub(crate) struct LeaseHandle {
    ptr: NonNull<ext::p2pmap_lease>,
}

// SAFETY: a lease may be released from any task and any context
// (`p2pmap_lease_release()` only queues work); nothing else is done with it.
unsafe impl Send for LeaseHandle {}

impl LeaseHandle {
    /// Takes a layout lease on the inode of `file`, tagged `generation` in
    /// the `lm_ops` calls to Rust, which may come before this returns: the
    /// state of `generation` must exist already. `EAGAIN` while a breaker
    /// waits for the inode's leases to go (patch 6).
    ///
    /// Context: process; sleeps; call without p2pmap's spinlocks.
    pub(crate) fn take(file: &File, generation: u64) -> Result<Self> {
        // SAFETY: `file` is live (a reference to it exists); no spinlock
        // is held (the caller's contract).
        let ptr = from_err_ptr(unsafe { ext::p2pmap_lease_take(file.as_ptr(), generation) })?;
        // INVARIANT: a lease just taken (never NULL), ours.
        NonNull::new(ptr)
            .map(|ptr| LeaseHandle { ptr })
            .ok_or(ENOMEM)
    }

    /// Gives the lease back, telling the release when it was broken
    /// (`ktime_get_ns()`), 0 if never: the release counts the time from
    /// break to release. Any context.
    pub(crate) fn release(self, broken_ns: u64) {
        let this = core::mem::ManuallyDrop::new(self);
        // SAFETY: we own the lease (type invariant) and give it up here:
        // `this` is never dropped.
        unsafe { ext::p2pmap_lease_release(this.ptr.as_ptr(), broken_ns) };
    }
}

impl Drop for LeaseHandle {
    fn drop(&mut self) {
        // SAFETY: we own the lease (type invariant); dropped once.
        unsafe { ext::p2pmap_lease_release(self.ptr.as_ptr(), 0) };
    }
}

/// `ktime_get_ns()`: CLOCK_MONOTONIC, the clock the lease code stamps
/// breaks with.
pub(crate) fn now_ns() -> u64 {
    // SAFETY: ktime_get() may be called from any context once timekeeping
    // is up (long before modules load).
    let t = unsafe { bindings::ktime_get() };
    u64::try_from(t).unwrap_or(0)
}

/// Runs [`crate::windows::reap_unclaimed`] on the lease worker in `ms`
/// milliseconds, unless a run is already pending. Any context.
pub(crate) fn reap_schedule(ms: u64) {
    // SAFETY: the lease worker exists from `lease_init` to `lease_exit`,
    // and windows are only published (the only caller) in between.
    unsafe { ext::p2pmap_reap_schedule(ms as c_ulong) };
}

/// Has the write-back worker run [`crate::writeback`] soon (unless it is
/// queued already). Any context (`queue_work()`).
pub(crate) fn flush_schedule() {
    // SAFETY: `queue_work()` on the module's workqueue, or nothing outside
    // `flush_init()`..`flush_exit()`; any context.
    unsafe { ext::p2pmap_flush_schedule() };
}

/// Creates the write-back worker's workqueue. Module init.
pub(crate) fn flush_init() -> Result {
    // SAFETY: called once, at module init.
    to_result(unsafe { ext::p2pmap_flush_init() })
}

/// Runs the write-back queued so far to its end and destroys the worker.
/// Module exit, once nothing queues write-back any more.
pub(crate) fn flush_exit() {
    // SAFETY: called once, at module exit, after `flush_init` succeeded.
    unsafe { ext::p2pmap_flush_exit() };
}

/// The filesystem's `commit_blocks` for the `extents` of `file` a device
/// wrote: converts their unwritten blocks and sets the size to `new_size`
/// if it is larger, synchronously (XFS: a sync transaction).
///
/// Context: process; sleeps; takes the inode's locks (XFS: the iolock), so
/// the caller holds none of the filesystem's locks nor mmap_lock.
pub(crate) fn commit_blocks(file: &File, extents: &[Extent], new_size: i64) -> Result {
    let mut maps = KVec::with_capacity(extents.len(), GFP_KERNEL)?;
    for e in extents {
        let type_ = match e.kind {
            ExtentKind::Mapped(_) => ext::IOMAP_MAPPED,
            ExtentKind::Unwritten(_) => ext::IOMAP_UNWRITTEN,
            _ => return Err(EINVAL),
        };
        let addr = match e.kind {
            ExtentKind::Mapped(a) | ExtentKind::Unwritten(a) => a,
            _ => 0,
        };
        maps.push(
            ext::iomap {
                offset: e.offset,
                length: e.length,
                addr,
                type_: u16::try_from(type_).map_err(|_| EINVAL)?,
                ..Default::default()
            },
            GFP_KERNEL,
        )?;
    }
    let nr = c_int::try_from(maps.len()).map_err(|_| EINVAL)?;
    // SAFETY: we hold a reference on the file, whose filesystem has block
    // ops (checked when the window was staged); `maps` holds `nr` iomaps.
    to_result(unsafe {
        ext::p2pmap_file_commit_blocks(file.as_ptr(), maps.as_mut_ptr(), nr, new_size)
    })
}

/// Flushes the volatile cache of `file`'s block device
/// (`blkdev_issue_flush()`): what was written before is stable whichever
/// filesystem commits it (XFS's synchronous commit flushes too).
///
/// Context: process; sleeps.
pub(crate) fn flush_device_cache(file: &File) -> Result {
    // SAFETY: we hold a reference on the file.
    to_result(unsafe { ext::p2pmap_bdev_flush(file.as_ptr()) })
}

/// Writes back the page-cache pages of `[start, end)` of `file` that the
/// CPU dirtied, and waits: `commit_blocks` invalidates the range's pages
/// and cannot drop a dirty one. Returns whether any was dirty. Their
/// write errors go to the mapping, for the CPU's writers.
///
/// Context: process; sleeps.
pub(crate) fn flush_cpu_range(file: &File, start: i64, end: i64) -> bool {
    // SAFETY: we hold a reference on the file.
    unsafe { ext::p2pmap_file_flush_cpu_range(file.as_ptr(), start, end) > 0 }
}

/// Records a write-back error in the mapping of `file` (`mapping_set_error`):
/// the next `fsync()` of every open file of it returns it.
///
/// Context: any.
pub(crate) fn set_mapping_error(file: &File, err: Error) {
    // SAFETY: we hold a reference on the file; errseq_set() and a bit
    // operation, any context.
    unsafe { ext::p2pmap_file_set_error(file.as_ptr(), err.to_errno()) };
}

/// Sets up the lease machinery (its real-time kthread worker). Module init.
pub(crate) fn lease_init() -> Result {
    // SAFETY: called once, at module init.
    to_result(unsafe { ext::p2pmap_lease_init() })
}

/// Waits for every lease release and tears the machinery down. Module exit,
/// after every window (hence every lease reference) is gone.
pub(crate) fn lease_exit() {
    // SAFETY: called once, at module exit, after `lease_init` succeeded.
    unsafe { ext::p2pmap_lease_exit() };
}

/// What one `map_blocks` extent is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ExtentKind {
    /// Blocks at this byte address of the block device.
    Mapped(u64),
    /// No blocks: reads as zeros.
    Hole,
    /// Allocated but unwritten, at this byte address of the block device:
    /// reads as zeros (the blocks hold old data) until committed.
    Unwritten(u64),
    /// Anything else (delalloc, inline).
    Other,
}

/// One extent from `map_blocks`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Extent {
    /// File offset of the extent, bytes.
    pub(crate) offset: i64,
    /// Length, bytes.
    pub(crate) length: u64,
    /// What backs it.
    pub(crate) kind: ExtentKind,
}

/// A window of CMB (P2P memory of an NVMe function).
///
/// # Invariants
///
/// `vaddr` is a live `pci_alloc_p2pmem(nvme, size)` allocation, freed on
/// drop; `bus` is its bus address (`pci_p2pmem_virt_to_bus`).
pub(crate) struct CmbBuf {
    nvme: Nvme,
    vaddr: *mut u8,
    bus: u64,
    size: usize,
}

// SAFETY: the allocation is owned; freeing it is allowed from any context
// (gen_pool_free + percpu_ref_put).
unsafe impl Send for CmbBuf {}
// SAFETY: `&CmbBuf` only reads plain fields (`bus`, `size`, the device
// key); the CMB behind `vaddr` is written only through `&mut CmbBuf`
// (`zero`, `SlowPath::read_into`), by the slow path that owns the window
// before it is published.
unsafe impl Sync for CmbBuf {}

impl CmbBuf {
    /// Allocates `size` bytes of `nvme`'s CMB, or `None` if it is full.
    pub(crate) fn alloc(nvme: &Nvme, size: usize) -> Option<CmbBuf> {
        // SAFETY: `nvme` is a live pci_dev.
        let vaddr = unsafe { ext::pci_alloc_p2pmem(nvme.as_raw(), size) }.cast::<u8>();
        if vaddr.is_null() {
            return None;
        }
        // SAFETY: `vaddr` was just allocated from `nvme`'s P2P memory.
        let bus = unsafe { ext::pci_p2pmem_virt_to_bus(nvme.as_raw(), vaddr.cast()) };
        // INVARIANT: allocated above.
        Some(CmbBuf {
            nvme: nvme.clone(),
            vaddr,
            bus,
            size,
        })
    }

    /// Writes `[at, at + len)` of the window to byte `addr` of `file`'s
    /// block device, peer to peer (bios on the CMB pages: the controller
    /// copies from its own CMB); [`flush_device_cache`] makes it stable.
    ///
    /// Context: process; sleeps.
    pub(crate) fn write_to_media(&self, file: &File, at: usize, addr: u64, len: usize) -> Result {
        if at.checked_add(len).is_none_or(|end| end > self.size) {
            return Err(EINVAL);
        }
        // SAFETY: we hold a reference on the file; `[at, at + len)` is
        // inside the allocation, which lives as long as `self`; the bios
        // only read it.
        to_result(unsafe {
            ext::p2pmap_bdev_write_p2p(file.as_ptr(), addr, self.vaddr.add(at).cast(), len)
        })
    }

    /// Zero-fills `[at, at + len)`.
    pub(crate) fn zero(&mut self, at: usize, len: usize) -> Result {
        if at.checked_add(len).is_none_or(|end| end > self.size) {
            return Err(EINVAL);
        }
        // SAFETY: inside the allocation we own.
        unsafe { ext::p2pmap_p2pmem_zero(self.vaddr.add(at).cast(), len) };
        Ok(())
    }

    /// Bus address of the start of the window.
    pub(crate) fn bus(&self) -> u64 {
        self.bus
    }

    /// Size in bytes.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// The NVMe function whose CMB holds the window ([`Nvme::key`]).
    pub(crate) fn device_key(&self) -> DeviceKey {
        self.nvme.key()
    }
}

impl Drop for CmbBuf {
    fn drop(&mut self) {
        // SAFETY: allocated from `nvme` with this size (type invariant).
        unsafe { ext::pci_free_p2pmem(self.nvme.as_raw(), self.vaddr.cast(), self.size) };
        // SAFETY: an atomic increment and a wake-up; any context.
        unsafe { ext::p2pmap_cmb_freed() };
    }
}

/// How many CMB windows were freed so far (wraps): a snapshot for
/// [`wait_cmb_freed`].
pub(crate) fn cmb_frees() -> u32 {
    // SAFETY: an atomic read; any context.
    unsafe { ext::p2pmap_cmb_frees() }
}

/// Sleeps until a CMB window was freed after snapshot `seen` of
/// [`cmb_frees`] (at once if one was already), at most `timeout_ms`;
/// `false` if none was.
///
/// Context: process; sleeps. Hold no lock: the frees come from other
/// tasks' revocations (`wait_var_event_timeout()`).
pub(crate) fn wait_cmb_freed(seen: u32, timeout_ms: u32) -> bool {
    // SAFETY: sleeps in TASK_UNINTERRUPTIBLE at most `timeout_ms`; the
    // caller is in process context and holds no spinlock (documented).
    unsafe { ext::p2pmap_cmb_wait_freed(seen, timeout_ms) }
}

/// An NVMe function whose CMB p2pmap may use, held by a reference on its
/// `struct pci_dev` through the kernel's `ARef<pci::Device>`.
#[derive(Clone)]
pub(crate) struct Nvme(ARef<pci::Device>);

impl Nvme {
    /// Takes over a reference on `pdev`.
    ///
    /// # Safety
    ///
    /// `pdev` is a live `struct pci_dev` on which the caller owns one
    /// reference (from a `pci_dev_get()`-style call); it moves into the
    /// result, which drops it with `pci_dev_put()`.
    unsafe fn from_owned(pdev: NonNull<bindings::pci_dev>) -> Self {
        // SAFETY: `pci::Device` is `#[repr(transparent)]` over `struct
        // pci_dev`, and the caller's reference is the one `ARef` gives back
        // (`AlwaysRefCounted for pci::Device`: `pci_dev_put`).
        Nvme(unsafe { ARef::from_raw(pdev.cast()) })
    }

    /// The `struct pci_dev`, for the C calls Rust has no abstraction of.
    fn as_raw(&self) -> *mut bindings::pci_dev {
        // `pci::Device::as_raw` is crate-private; the type is transparent
        // over `struct pci_dev`, so the cast keeps the address.
        ptr::from_ref::<pci::Device>(&self.0).cast_mut().cast()
    }

    /// Identity of the function, to compare devices.
    pub(crate) fn key(&self) -> DeviceKey {
        DeviceKey::of(self.as_raw())
    }

    /// Whether this function publishes P2P memory (its CMB), as
    /// `pci_p2pmem_find_many()` checks a candidate. Not through that call:
    /// it allocates and returns NULL on allocation failure too, which made
    /// an ENOMEM a "no P2P provider" refusal (found by failslab; patch 0012
    /// exports the allocation-free check).
    pub(crate) fn publishes_p2pmem(&self) -> bool {
        // SAFETY: `self` holds a reference on the live pci_dev; the call
        // only reads its p2pdma state under RCU.
        unsafe { ext::pci_has_p2pmem(self.as_raw()) }
    }

    /// An upper bound of the P2P memory this function publishes (the length
    /// of the BAR its pool is in), `None` while the pool is full.
    ///
    /// Context: sleeps (allocates and frees one page of the pool).
    pub(crate) fn p2pmem_capacity(&self) -> Option<usize> {
        // SAFETY: a live pci_dev (reference held).
        let cap = unsafe { ext::p2pmap_p2pmem_capacity(self.as_raw()) };
        usize::try_from(cap).ok().filter(|&c| c > 0)
    }

    /// `pci_p2pdma_distance_many()` from this function to `client`, or
    /// `None` when P2P between them is not supported. With `verbose`, the
    /// kernel logs why it refuses (a warning per call: callers ratelimit).
    pub(crate) fn p2p_distance(&self, client: &Device, verbose: bool) -> Option<i32> {
        // `Device` wraps `struct device` transparently (its `as_raw` is
        // crate-private), so the cast keeps the address.
        let mut client: *mut bindings::device = ptr::from_ref(client).cast_mut().cast();
        // SAFETY: a live provider and one live client device.
        let d = unsafe { ext::pci_p2pdma_distance_many(self.as_raw(), &mut client, 1, verbose) };
        (d >= 0).then_some(d)
    }

    /// The AtomicOp facts of the path from `client` (the requester) to this
    /// function (the completer), for [`atomic::check`]. `None` if `client`
    /// is no PCI function or the two share no upstream bridge (callers
    /// checked the P2P path first, so neither happens), or the path has
    /// more than [`AtomicPath::MAX_PORTS`] ports.
    ///
    /// Context: process context (configuration space reads).
    pub(crate) fn atomic_path(&self, client: &Device) -> Option<AtomicPath> {
        // See `p2p_distance` for the cast.
        let client: *mut bindings::device = ptr::from_ref(client).cast_mut().cast();
        let mut path = AtomicPath::EMPTY;
        // SAFETY: a live provider and a live client device (references
        // held by the caller and by `self`); the three outputs are valid
        // for writes, `ports` for `MAX_PORTS` entries.
        let n = unsafe {
            ext::p2pmap_atomic_path(
                self.as_raw(),
                client,
                &mut path.requester,
                &mut path.completer,
                path.ports.as_mut_ptr(),
                AtomicPath::MAX_PORTS as c_int,
            )
        };
        // INVARIANT: the C side filled `n` ports, at most `MAX_PORTS`.
        path.len = usize::try_from(n).ok()?;
        Some(path)
    }

    /// Whether P2P between this function and `client` is routed by a PCI
    /// switch (`PCI_P2PDMA_MAP_BUS_ADDR`), so that `client` can use the
    /// CMB's bus addresses; `false` through a host bridge.
    pub(crate) fn bus_addr_path(&self, client: &Device) -> bool {
        // See `p2p_distance` for the cast.
        let client: *mut bindings::device = ptr::from_ref(client).cast_mut().cast();
        // SAFETY: a live provider and a live client device (references
        // held by the caller and by `self`).
        unsafe { ext::p2pmap_p2p_bus_addr_path(self.as_raw(), client) }
    }
}

/// The functions an importer's AtomicOps would cross to reach the CMB, as
/// read from their configuration space (see [`Nvme::atomic_path`]).
///
/// # Invariants
///
/// `len <= MAX_PORTS`; `ports[..len]` were filled by `p2pmap_atomic_path()`.
pub(crate) struct AtomicPath {
    requester: ext::p2pmap_atomic_fn,
    completer: ext::p2pmap_atomic_fn,
    ports: [ext::p2pmap_atomic_fn; AtomicPath::MAX_PORTS],
    len: usize,
}

impl AtomicPath {
    /// Ports followed at most (`P2PMAP_ATOMIC_MAX_PORTS`).
    pub(crate) const MAX_PORTS: usize = ext::P2PMAP_ATOMIC_PATH_MAX_PORTS as usize;

    const NO_FN: ext::p2pmap_atomic_fn = ext::p2pmap_atomic_fn {
        devcap2: 0,
        devctl2: 0,
        pcie: false,
        egress: false,
        name: [0; 16],
    };

    // INVARIANT: no port.
    const EMPTY: AtomicPath = AtomicPath {
        requester: Self::NO_FN,
        completer: Self::NO_FN,
        ports: [Self::NO_FN; Self::MAX_PORTS],
        len: 0,
    };

    fn function(f: &ext::p2pmap_atomic_fn) -> atomic::Function {
        atomic::Function {
            pcie: f.pcie,
            devcap2: f.devcap2,
            devctl2: f.devctl2,
        }
    }

    /// Decides with [`atomic::check`].
    pub(crate) fn check(&self) -> Result<(), atomic::Gap> {
        let ports = self.ports.iter().take(self.len).map(|f| atomic::Port {
            function: Self::function(f),
            egress: f.egress,
        });
        atomic::check(
            &Self::function(&self.requester),
            &Self::function(&self.completer),
            ports,
        )
    }

    /// The PCI name of the function `gap` names (`0000:01:00.0`).
    pub(crate) fn name_of(&self, gap: atomic::Gap) -> &CStr {
        let f = match (gap, gap.port()) {
            (_, Some(i)) => self.ports.get(i).unwrap_or(&self.completer),
            (atomic::Gap::Completer, None) => &self.completer,
            (_, None) => &self.requester,
        };
        // `strscpy()` NUL-terminated the name (it is all zeros otherwise).
        CStr::from_bytes_until_nul(&f.name).unwrap_or(c"?")
    }
}

/// A pinned range before its export (`DEVICE_MAP_FLAG_PIN`, see
/// `bindings/p2pmap_pin.c`): listed for revocation, its claim not yet
/// handed to a dma_buf. Dropping it frees it.
///
/// # Invariants
///
/// The pointer is a live pin from `p2pmap_pin_new()`, not exported.
pub(crate) struct PinnedRange(NonNull<ext::p2pmap_pin>);

impl PinnedRange {
    /// A pin of `pages` pages at file byte `start` of `inode`, in the CMB
    /// of `nvme`; `None` without memory.
    ///
    /// Context: sleeps.
    pub(crate) fn new(nvme: &Nvme, inode: InodeKey, start: i64, pages: usize) -> Option<Self> {
        // SAFETY: a live pci_dev (reference held by `nvme`); the inode
        // pointer is only a key for C.
        let p = unsafe {
            ext::p2pmap_pin_new(
                nvme.as_raw(),
                inode.raw() as *const c_void,
                start,
                pages as c_ulong,
            )
        };
        // INVARIANT: fresh from `p2pmap_pin_new()`.
        NonNull::new(p).map(PinnedRange)
    }

    /// What the pin's claim is recorded under.
    pub(crate) fn claimant(&self) -> Claimant {
        // SAFETY: a live pin (type invariant).
        Claimant::pin(unsafe { ext::p2pmap_pin_key(self.0.as_ptr()) } as usize)
    }

    fn into_raw(self) -> *mut ext::p2pmap_pin {
        let p = self.0.as_ptr();
        core::mem::forget(self);
        p
    }
}

impl Drop for PinnedRange {
    fn drop(&mut self) {
        // SAFETY: a live, unexported pin (type invariant), freed once.
        unsafe { ext::p2pmap_pin_discard(self.0.as_ptr()) };
    }
}

/// The bus addresses C passes to `p2pmap_rust_pin_release()`.
///
/// # Safety
///
/// `pa` points to `n` initialized `u64` that stay valid and unchanged for
/// `'a`.
pub(crate) unsafe fn bus_addresses<'a>(pa: *const u64, n: usize) -> &'a [u64] {
    if pa.is_null() || n == 0 {
        return &[];
    }
    // SAFETY: the caller's guarantee.
    unsafe { core::slice::from_raw_parts(pa, n) }
}

/// Revokes the exported pins of `inode` (`None`: any) meeting `[start,
/// end)` whose windows are in the CMB of `dev` (`None`: any): their
/// importers are invalidated, and each pin gives its claim back once
/// nothing maps it. Returns how many were revoked.
///
/// Context: process, sleeps (the dma_bufs' reservation locks); call
/// without p2pmap's locks.
pub(crate) fn revoke_pins(
    inode: Option<InodeKey>,
    start: i64,
    end: i64,
    dev: Option<DeviceKey>,
) -> u32 {
    let inode = inode.map_or(ptr::null(), |i| i.raw() as *const c_void);
    let dev = dev.map_or(ptr::null(), |d| d.0 as *const bindings::pci_dev);
    // SAFETY: the pointers are keys, compared only; no lock of ours held.
    unsafe { ext::p2pmap_pins_revoke(inode, start, end, dev.cast()) }
}

/// Who holds a claim on a window: the importing device and the virtual
/// range it mapped, i.e. what it passes to `device_unmap` (see
/// [`ValidMapCall::claimant`] and [`UnmapCall::claimant`]).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Claimant {
    importer: usize,
    start: usize,
    end: usize,
}

impl Claimant {
    fn new(importer: usize, start: usize, end: usize) -> Self {
        Claimant {
            importer,
            start,
            end,
        }
    }

    /// The claim of a pin (`key`: its address, never a device's, as the
    /// empty range tells apart).
    pub(crate) fn pin(key: usize) -> Self {
        Claimant::new(key, 0, 0)
    }
}

/// The `struct device` of `dev`, for C (`Device` wraps it transparently;
/// its `as_raw` is private to the kernel crate).
fn device_ptr(dev: &Device) -> *mut bindings::device {
    ptr::from_ref(dev).cast_mut().cast()
}

/// Identifies a device for window claims (never dereferenced).
fn device_key(dev: &Device) -> usize {
    // The address of the `struct device` (`Device` wraps it transparently).
    core::ptr::from_ref(dev) as usize
}

/// One `device_unmap` call.
pub(crate) struct UnmapCall<'a> {
    importer: &'a Device,
    start: usize,
    end: usize,
    pa: &'a [u64],
}

impl UnmapCall<'_> {
    /// The importing device.
    pub(crate) fn importer(&self) -> &Device {
        self.importer
    }

    /// The range that was mapped.
    pub(crate) fn range(&self) -> (usize, usize) {
        (self.start, self.end)
    }

    /// The claim this call gives back (see [`ValidMapCall::claimant`]).
    pub(crate) fn claimant(&self) -> Claimant {
        Claimant::new(device_key(self.importer), self.start, self.end)
    }

    /// The bus addresses `device_map` returned for the mapping, one per
    /// page: they identify its windows.
    pub(crate) fn pa(&self) -> &[u64] {
        self.pa
    }

    /// Emits `p2pmap_unmap`; `matched`: the call dropped a claim.
    pub(crate) fn trace(&self, matched: bool) {
        // SAFETY: the importer is live for the call.
        unsafe {
            ext::p2pmap_trace_unmap(
                device_ptr(self.importer),
                self.start as c_ulong,
                self.end as c_ulong,
                self.pa.len() as u64,
                matched,
            )
        };
    }
}

/// What p2pmap implements for the `device_map_provider` hook.
pub(crate) trait Provider {
    /// `device_map`: called with mmap_lock held for read; may sleep; may
    /// release mmap_lock only through [`ValidMapCall::release_mmap_lock`].
    fn map(call: MapCall<'_>) -> Result<(), MapFailure>;
    /// `device_unmap`: may be called from a non-blockable mmu notifier; must
    /// not sleep.
    fn unmap(call: UnmapCall<'_>);
    /// `mkwrite`: `len` bytes of `file` at byte `pos` are about to become
    /// writable through a shared mapping; device mappings of that range must
    /// be revoked on return. Process context (`->page_mkwrite()`, the
    /// faulting mm's mmap_lock or vma lock held for read, no filesystem
    /// lock); may sleep.
    fn mkwrite(file: &File, pos: i64, len: usize);
    /// `break_begin`: the current task is about to break the layout leases
    /// of `inode` and then change `[start, end)` (`end` `i64::MAX`: to the
    /// end of the file); device mappings of that range must be revoked on
    /// return. Process context, filesystem locks held; may sleep.
    fn break_begin(inode: &BreakingInode<'_>, start: i64, end: i64);
    /// `break_end`: the break [`Self::break_begin`] prepared is over. Must
    /// not sleep.
    fn break_end(inode: &BreakingInode<'_>);
    /// `written`: whether devices wrote `[start, end)` of `inode` through
    /// write mappings and p2pmap has not committed it yet. Any context;
    /// must not sleep.
    fn written(inode: InodeKey, start: i64, end: i64) -> bool;
    /// `sync`: revokes the write mappings of `[start, end)` of `inode` and
    /// returns once what devices wrote there is written back and committed
    /// (or failed, recorded in the mapping). Process context, no filesystem
    /// lock, no mmap_lock; sleeps.
    fn sync(inode: InodeKey, start: i64, end: i64);
}

/// An inode whose layout the current task is about to change, for one
/// `break_begin` or `break_end` call.
///
/// # Invariants
///
/// `ptr` points to a live inode for `'a`.
pub(crate) struct BreakingInode<'a> {
    ptr: *mut bindings::inode,
    _call: PhantomData<&'a ()>,
}

impl BreakingInode<'_> {
    /// The key of windows and revocations (see [`inode_key`]).
    pub(crate) fn key(&self) -> InodeKey {
        InodeKey::of(self.ptr)
    }

    /// `unmap_mapping_range()` of `[start, end)` of the inode's mapping
    /// (`end` `i64::MAX`: to the end): every importer of a window covering
    /// it is invalidated before this returns.
    ///
    /// Context: sleeps (i_mmap_rwsem); call without p2pmap's locks.
    pub(crate) fn revoke_range(&self, start: i64, end: i64) {
        // SAFETY: the inode is live (type invariant); the caller holds none
        // of p2pmap's locks.
        unsafe { ext::p2pmap_inode_unmap_range(self.ptr, start, end) };
    }
}

/// # Safety
///
/// Called only by `filemap_device_map()` under the `device_map` contract:
/// `vma` valid and locked for read, `importer` a live device, `pa` sized for
/// the range when the range is valid.
unsafe extern "C" fn map_trampoline<T: Provider>(
    vma: *mut bindings::vm_area_struct,
    importer: *mut bindings::device,
    bufp: *mut *mut bindings::dma_buf,
    start: c_ulong,
    end: c_ulong,
    flags: c_uint,
    pa: *mut bindings::dma_addr_t,
) -> c_int {
    if vma.is_null() || importer.is_null() || pa.is_null() {
        return EINVAL.to_errno();
    }
    // SAFETY: `vma` is valid and its mm's mmap_lock is held for read on
    // entry (the contract; `filemap_device_map` asserts it). It stays held
    // for as long as the vma is borrowed: the only way to release it is
    // `ValidMapCall::release_mmap_lock`, which consumes the call and with it
    // every borrow of the vma.
    let vma = unsafe { VmaRef::from_raw(vma) };
    // SAFETY: the importer holds a reference to its own device while it
    // calls `device_map`.
    let importer = unsafe { Device::from_raw(importer) };
    // INVARIANT: the vma lock and the `pa` sizing come from the contract
    // stated in this function's safety section.
    let call = MapCall {
        vma,
        importer,
        req: MapRequest {
            start: start as u64,
            end: end as u64,
            flags,
        },
        pa,
        bufp,
    };
    match T::map(call) {
        Ok(()) => 0,
        Err(MapFailure::Retry(LockDropped(()))) => EAGAIN.to_errno(),
        // -EAGAIN tells the caller that mmap_lock was released; an EAGAIN
        // from below (e.g. a lease conflict) must not be passed through.
        Err(MapFailure::Refused(e)) if e == EAGAIN => EBUSY.to_errno(),
        Err(MapFailure::Refused(e)) => e.to_errno(),
    }
}

/// # Safety
///
/// Called only by `filemap_device_unmap()`: `importer` is a live device.
unsafe extern "C" fn unmap_trampoline<T: Provider>(
    _vma: *mut bindings::vm_area_struct,
    importer: *mut bindings::device,
    start: c_ulong,
    end: c_ulong,
    pa: *mut bindings::dma_addr_t,
) {
    if importer.is_null() {
        return;
    }
    let pages = end.saturating_sub(start) / PAGE_SIZE;
    let pa: &[u64] = if pa.is_null() || pages == 0 {
        &[]
    } else {
        // SAFETY: `device_unmap` gives back the array `device_map` filled
        // for `[start, end)` (patch 1's contract): one initialized entry per
        // page, which the caller does not change during the call.
        unsafe { core::slice::from_raw_parts(pa, pages) }
    };
    // SAFETY: the importer holds a reference to its own device while it
    // calls `device_unmap`.
    let importer = unsafe { Device::from_raw(importer) };
    T::unmap(UnmapCall {
        importer,
        start,
        end,
        pa,
    });
}

/// # Safety
///
/// Called only by `filemap_device_mkwrite()`: `file` is the `vm_file` of the
/// faulting vma.
unsafe extern "C" fn mkwrite_trampoline<T: Provider>(
    file: *mut bindings::file,
    pos: bindings::loff_t,
    len: usize,
) {
    if file.is_null() {
        return;
    }
    // SAFETY: the faulting vma holds a reference on its file, and the vma
    // cannot go away during the fault (its mmap_lock or vma lock is held for
    // read), so `file` is live for the whole call.
    let file = unsafe { File::from_raw_file(file) };
    T::mkwrite(file, pos, len);
}

/// # Safety
///
/// Called only by `filemap_device_break_begin()`: `inode` is live for the
/// call (the caller holds its filesystem locks and a reference).
unsafe extern "C" fn break_begin_trampoline<T: Provider>(
    inode: *mut bindings::inode,
    start: bindings::loff_t,
    end: bindings::loff_t,
) {
    if inode.is_null() || end <= start {
        return;
    }
    // INVARIANT: live for this call (the safety section).
    let inode = BreakingInode {
        ptr: inode,
        _call: PhantomData,
    };
    T::break_begin(&inode, start, end);
}

/// # Safety
///
/// Called only by `filemap_device_break_end()`, with the inode passed to
/// `filemap_device_break_begin()`, still live.
unsafe extern "C" fn break_end_trampoline<T: Provider>(inode: *mut bindings::inode) {
    if inode.is_null() {
        return;
    }
    // INVARIANT: live for this call (the safety section).
    let inode = BreakingInode {
        ptr: inode,
        _call: PhantomData,
    };
    T::break_end(&inode);
}

/// # Safety
///
/// Called only by `filemap_device_written()`/`filemap_device_sync()`;
/// `inode` is only used as a key.
unsafe extern "C" fn written_trampoline<T: Provider>(
    inode: *mut bindings::inode,
    start: bindings::loff_t,
    end: bindings::loff_t,
) -> bool {
    !inode.is_null() && end > start && T::written(InodeKey::of(inode), start, end)
}

/// # Safety
///
/// Called only by `filemap_device_sync()`, in process context without
/// filesystem locks; `inode` is only used as a key.
unsafe extern "C" fn sync_trampoline<T: Provider>(
    inode: *mut bindings::inode,
    start: bindings::loff_t,
    end: bindings::loff_t,
) {
    if !inode.is_null() && end > start {
        T::sync(InodeKey::of(inode), start, end);
    }
}

struct VTable<T>(PhantomData<T>);

impl<T: Provider> VTable<T> {
    const VTABLE: ext::device_map_provider = ext::device_map_provider {
        map: Some(map_trampoline::<T>),
        unmap: Some(unmap_trampoline::<T>),
        mkwrite: Some(mkwrite_trampoline::<T>),
        break_begin: Some(break_begin_trampoline::<T>),
        break_end: Some(break_end_trampoline::<T>),
        written: Some(written_trampoline::<T>),
        sync: Some(sync_trampoline::<T>),
    };
}

/// Identifies the inode of `file` (the key of windows and revocations).
pub(crate) fn inode_key(file: &File) -> InodeKey {
    // SAFETY: `file` is live (a reference to it exists).
    InodeKey::of(unsafe { ext::p2pmap_file_inode(file.as_ptr()) })
}

/// Identifies an inode by its address, never dereferenced through the key:
/// an identity while something holds the inode (a file, a lease).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct InodeKey(usize);

impl InodeKey {
    /// The key of the inode at `inode`.
    pub(crate) fn of(inode: *const bindings::inode) -> Self {
        InodeKey(inode as usize)
    }

    /// The address, for the pure logic (`src/logic`), which only compares it.
    pub(crate) fn raw(self) -> usize {
        self.0
    }
}

/// Identifies a PCI function (one whose CMB holds windows) by its address,
/// never dereferenced through the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DeviceKey(usize);

impl DeviceKey {
    /// The key of the function at `pdev`.
    pub(crate) fn of(pdev: *const bindings::pci_dev) -> Self {
        DeviceKey(pdev as usize)
    }
}

/// p2pmap registered as the kernel's `device_map` provider.
///
/// # Invariants
///
/// `vtable` is registered with `device_map_register_provider()` until this
/// value is dropped.
pub(crate) struct ProviderRegistration {
    vtable: &'static ext::device_map_provider,
}

impl ProviderRegistration {
    /// Registers `T`. Fails with `EBUSY` if another provider is registered.
    pub(crate) fn register<T: Provider + 'static>() -> Result<Self> {
        let vtable: &'static ext::device_map_provider = &VTable::<T>::VTABLE;
        // SAFETY: `vtable` is a static with valid callbacks for the whole
        // lifetime of the module; `Drop` unregisters it before unload.
        to_result(unsafe { ext::device_map_register_provider(vtable) })?;
        // INVARIANT: registered just above.
        Ok(Self { vtable })
    }
}

impl Drop for ProviderRegistration {
    fn drop(&mut self) {
        // SAFETY: by the type invariant `vtable` is the registered provider;
        // this waits for every call in flight, after which no code of ours
        // runs from the hook.
        unsafe { ext::device_map_unregister_provider(self.vtable) };
    }
}

/// The PCI bus notifier that revokes the windows of an NVMe function before
/// its driver unbinds (hot-unplug, `remove`, unbind).
///
/// # Invariants
///
/// The notifier is registered; `Drop` unregisters it.
pub(crate) struct PciUnbindNotifier(());

impl PciUnbindNotifier {
    /// Registers the notifier on `pci_bus_type`.
    pub(crate) fn register() -> Result<Self> {
        // SAFETY: the notifier block is a static of p2pmap_shim.c, registered
        // once; `Drop` unregisters it before the module's code goes away.
        to_result(unsafe { ext::p2pmap_pci_notifier_register() })?;
        // INVARIANT: registered just above.
        Ok(Self(()))
    }
}

impl Drop for PciUnbindNotifier {
    fn drop(&mut self) {
        // SAFETY: registered (type invariant); this waits for a callback in
        // flight.
        unsafe { ext::p2pmap_pci_notifier_unregister() };
    }
}

/// `unmap_mapping_range()` of a file byte range: every mm that maps it is
/// invalidated through its mmu notifiers before this returns.
///
/// Context: sleeps (i_mmap_rwsem); call without p2pmap's locks.
pub(crate) fn revoke_file_range(file: &File, start: i64, len: usize) {
    // SAFETY: `file` is a live file (the caller holds a reference).
    unsafe { ext::p2pmap_file_unmap_range(file.as_ptr(), start, len as i64) };
}
