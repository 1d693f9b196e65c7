// SPDX-License-Identifier: GPL-2.0

//! p2pmap test importer: a PCI driver for QEMU's `edu` device that does what
//! a GPU/NIC/FPGA driver does with p2pmap. It maps a range of the caller's
//! address space through `vma->vm_ops->device_map()`, keeps the bus
//! addresses under an mmu interval notifier, and reads (or writes) them with
//! the edu DMA engine. When `device_map` refuses it falls back to the page
//! cache (`hmm_range_fault()` + `dma_map_page()`) like a real driver.
//!
//! ABI: `tests/include/p2pmap_importer.h`, device `/dev/p2pmap_importer`.

use core::mem;
use kernel::{
    dma::{
        Device as _,
        DmaMask, //
    },
    fs::File,
    ioctl::_IOC_SIZE,
    miscdevice::{MiscDevice, MiscDeviceOptions, MiscDeviceRegistration},
    new_mutex,
    page::PAGE_SIZE,
    pci,
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        Arc, Mutex,
    },
    time::{Instant, Monotonic},
    uaccess::{UserPtr, UserSlice},
};

mod edu;
mod ffi;
mod uapi;

use edu::{Edu, CHUNK};
use ffi::{DeviceMap, DmaPage, IntervalNotifier, Invalidate, InvalidateRange, VmOps};

/// Largest range one MAP may cover: larger than the test CMB (64 MiB), so
/// that a request that cannot fit reaches the provider. The bus address
/// array (8 bytes a page, 256 KiB at most) may come from vmalloc.
const MAX_MAP_LEN: u64 = 128 << 20;
/// Attempts of device_map/hmm_range_fault before giving up on a racing range.
const MAX_ATTEMPTS: u32 = 16;

/// QEMU's vendor ID (not in pci_ids.h, so no `pci::Vendor` constant) and edu.
const EDU_VENDOR: u16 = 0x1234;
const EDU_DEVICE: u16 = 0x11e8;

// Match edu's class (0x00ff00, as QEMU sets it) and check vendor/device in probe.
kernel::pci_device_table!(
    PCI_TABLE,
    <ImporterDriver as pci::Driver>::IdInfo,
    [(pci::DeviceId::from_class(0x00ff00, 0xffffff), ())]
);

kernel::module_pci_driver! {
    type: ImporterDriver,
    name: "p2pmap_importer",
    authors: ["p2pmap developers"],
    description: "p2pmap test importer for QEMU's edu device",
    license: "GPL",
}

struct ImporterDriver;

/// Per bound edu function: the misc device and the shared device state.
#[pin_data]
pub(crate) struct ImporterData {
    #[pin]
    misc: MiscDeviceRegistration<ImporterFile>,
    edu: Arc<Edu>,
}

impl pci::Driver for ImporterDriver {
    type IdInfo = ();
    type Data<'bound> = ImporterData;

    const ID_TABLE: pci::IdTable<Self::IdInfo> = &PCI_TABLE;

    fn probe<'bound>(
        pdev: &'bound pci::Device<kernel::device::Core<'_>>,
        _info: Option<&'bound Self::IdInfo>,
    ) -> impl PinInit<Self::Data<'bound>, Error> + 'bound {
        pin_init::pin_init_scope(move || {
            if pdev.vendor_id().as_raw() != EDU_VENDOR || pdev.device_id() != EDU_DEVICE {
                return Err(ENODEV);
            }
            ffi::check_layouts()?;
            pdev.enable_device_mem()?;
            pdev.set_master();
            // edu's registers take 32-bit addresses here (see edu::transfer).
            // SAFETY: probe, before the device maps or allocates anything
            // for DMA.
            unsafe { pdev.dma_set_mask_and_coherent(DmaMask::new::<32>())? };
            let bar = pdev
                .iomap_region_sized::<{ edu::BAR_SIZE }>(0, c"p2pmap_importer")?
                .into_devres()?;
            let edu = Arc::pin_init(Edu::new(pdev, bar)?, GFP_KERNEL)?;
            dev_info!(pdev, "p2pmap test importer bound\n");
            // `edu` first: the misc device can be opened as soon as it is
            // registered, and open reads `edu`.
            Ok(try_pin_init!(ImporterData {
                edu,
                misc <- MiscDeviceRegistration::register(MiscDeviceOptions {
                    name: c"p2pmap_importer",
                }),
            }))
        })
    }
}

// --- mappings ----------------------------------------------------------------

/// The device-visible state of a mapping, under [`MapState::inner`].
struct Inner {
    path: u32,
    mapped: bool,
    revoked: bool,
    /// P2P path: bus addresses from `device_map`, one per page.
    pa: KVVec<u64>,
    /// P2P path: the ops to give the mapping back with.
    vm_ops: Option<VmOps>,
    /// P2P path, after the mapping was given back: the same ops, for
    /// `IOC_UNMAP_AGAIN` (a buggy importer's double unmap).
    given_back: Option<VmOps>,
    /// Fallback path: DMA mappings of the page-cache pages.
    dma: KVec<DmaPage>,
}

impl Inner {
    /// Bus address of byte `offset` of the mapping.
    fn bus(&self, offset: usize) -> Option<u64> {
        let page = offset / PAGE_SIZE;
        let base = match self.path {
            uapi::PATH_P2P => *self.pa.get(page)?,
            _ => self.dma.get(page)?.addr(),
        };
        Some(base + (offset % PAGE_SIZE) as u64)
    }

    /// Stops device access: gives the P2P mapping back or drops the DMA
    /// mappings. Does not sleep (notifier context).
    fn teardown(&mut self, edu: &Edu, start: usize, len: usize) {
        if !self.mapped {
            return;
        }
        if let Some(ops) = self.vm_ops.take() {
            ops.device_unmap(edu.device(), start, start + len, &mut self.pa);
            self.given_back = Some(ops);
        }
        self.dma.clear();
        self.mapped = false;
    }
}

/// One MAP handle.
#[pin_data]
struct MapState {
    edu: Arc<Edu>,
    addr: usize,
    len: usize,
    flags: u32,
    p2p_errno: Atomic<i32>,
    /// Held while the device accesses the mapping (one DMA chunk) and by the
    /// invalidate callback: taking it means DMA has quiesced.
    #[pin]
    inner: Mutex<Inner>,
    invalidations: Atomic<u64>,
    quiesce_ns: Atomic<u64>,
    /// 1 + the `enum mmu_notifier_event` of the invalidation that revoked
    /// the mapping, 0 while it was not revoked.
    revoked_by: Atomic<u32>,
}

type Mapping = IntervalNotifier<MapState>;

impl Invalidate for MapState {
    // Model: lib/test_hmm.c dmirror_interval_invalidate().
    fn invalidate(this: &Mapping, range: &InvalidateRange, cur_seq: u64) -> bool {
        let m = this.data();
        let start = Instant::<Monotonic>::now();
        let mut inner = if range.blockable {
            m.inner.lock()
        } else {
            match m.inner.try_lock() {
                Some(guard) => guard,
                None => return false,
            }
        };
        this.set_seq(cur_seq);
        m.invalidations.add(1, Relaxed);
        if inner.mapped {
            inner.teardown(&m.edu, m.addr, m.len);
            inner.revoked = true;
            // What revoked it, for STATUS: 1 + the mmu notifier event.
            m.revoked_by.store(range.event.saturating_add(1), Relaxed);
            let ns = start.elapsed().as_nanos();
            m.quiesce_ns.store(u64::try_from(ns).unwrap_or(0), Relaxed);
        }
        true
    }

    fn released(this: &Mapping) {
        let m = this.data();
        m.inner.lock().teardown(&m.edu, m.addr, m.len);
    }
}

impl MapState {
    fn new(edu: Arc<Edu>, addr: usize, len: usize, flags: u32) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            edu,
            addr,
            len,
            flags,
            p2p_errno: Atomic::new(0),
            inner <- new_mutex!(Inner {
                path: 0,
                mapped: false,
                revoked: false,
                pa: KVVec::new(),
                vm_ops: None,
                given_back: None,
                dma: KVec::new(),
            }),
            invalidations: Atomic::new(0),
            quiesce_ns: Atomic::new(0),
            revoked_by: Atomic::new(0),
        })
    }
}

/// Validates MAP arguments; returns (addr, len, pages).
fn check_map_args(req: &uapi::Map) -> Result<(usize, usize, usize)> {
    let page = PAGE_SIZE as u64;
    if req.flags & !uapi::MAP_FLAGS != 0
        || req.len == 0
        || req.addr % page != 0
        || req.len % page != 0
        || req.addr.checked_add(req.len).is_none()
    {
        return Err(EINVAL);
    }
    if req.len > MAX_MAP_LEN {
        return Err(E2BIG);
    }
    let addr = usize::try_from(req.addr)?;
    let len = usize::try_from(req.len)?;
    Ok((addr, len, len / PAGE_SIZE))
}

/// Maps through `device_map`. Returns 0 on success, else device_map's
/// (negative) errno. `pa` is consumed on success.
fn map_p2p(m: &Mapping, mm: &kernel::mm::MmWithUser, pa: &mut KVVec<u64>) -> Result<i32> {
    let s = m.data();
    let dev_flags = s.flags & uapi::MAP_WRITE;
    for _ in 0..MAX_ATTEMPTS {
        let seq = m.read_begin();
        match ffi::device_map(mm.mmap_read_lock(), s.edu.device(), s.addr, dev_flags, pa) {
            DeviceMap::Retry => continue,
            DeviceMap::Refused(guard, errno) => {
                drop(guard);
                return Ok(errno);
            }
            DeviceMap::Mapped(guard, ops) => {
                drop(guard);
                let mut inner = s.inner.lock();
                if m.read_retry(seq) {
                    // Invalidated since read_begin: give it back, try again.
                    drop(inner);
                    ops.device_unmap(s.edu.device(), s.addr, s.addr + s.len, pa);
                    continue;
                }
                inner.pa = mem::take(pa);
                inner.vm_ops = Some(ops);
                inner.path = uapi::PATH_P2P;
                inner.mapped = true;
                return Ok(0);
            }
        }
    }
    Ok(EBUSY.to_errno())
}

/// Maps the page-cache pages, as a driver does when `device_map` refuses.
fn map_fallback(m: &Mapping, mm: &kernel::mm::MmWithUser, pages: usize) -> Result {
    let s = m.data();
    let write = s.flags & uapi::MAP_WRITE != 0;
    let mut pfns = KVec::from_elem(0, pages, GFP_KERNEL)?;
    let mut dma = KVec::with_capacity(pages, GFP_KERNEL)?;
    for _ in 0..MAX_ATTEMPTS {
        let seq = m.hmm_fault(mm, s.addr, s.addr + s.len, write, &mut pfns)?;
        dma.clear();
        for &pfn in pfns.iter() {
            dma.push(DmaPage::map(s.edu.device(), pfn, write)?, GFP_KERNEL)?;
        }
        let mut inner = s.inner.lock();
        if m.read_retry(seq) {
            drop(inner);
            continue;
        }
        inner.dma = mem::take(&mut dma);
        inner.path = uapi::PATH_FALLBACK;
        inner.mapped = true;
        return Ok(());
    }
    Err(EBUSY)
}

// --- the misc device -----------------------------------------------------------

/// Handles of one open file.
struct Handles {
    next: u32,
    list: KVec<(u32, Arc<Mapping>)>,
}

/// An open `/dev/p2pmap_importer`.
#[pin_data]
struct ImporterFile {
    edu: Arc<Edu>,
    #[pin]
    handles: Mutex<Handles>,
}

impl ImporterFile {
    fn lookup(&self, handle: u32) -> Result<Arc<Mapping>> {
        let handles = self.handles.lock();
        handles
            .list
            .iter()
            .find(|(h, _)| *h == handle)
            .map(|(_, m)| m.clone())
            .ok_or(ENOENT)
    }

    fn map(&self, req: &mut uapi::Map) -> Result {
        let (addr, len, pages) = check_map_args(req)?;
        let mm = ffi::current_mm().ok_or(EINVAL)?;
        let mm = &*mm;
        let mut pa = KVVec::from_elem(0u64, pages, GFP_KERNEL)?;
        let m = Arc::pin_init(
            IntervalNotifier::new(MapState::new(self.edu.clone(), addr, len, req.flags)),
            GFP_KERNEL,
        )?;
        m.insert(mm, addr, len)?;

        let errno = map_p2p(&m, mm, &mut pa)?;
        m.data().p2p_errno.store(errno, Relaxed);
        if errno != 0 {
            if req.flags & uapi::MAP_NO_FALLBACK != 0 {
                return Err(Error::from_errno(errno));
            }
            map_fallback(&m, mm, pages)?;
        }
        req.p2p_errno = errno;
        req.path = if errno == 0 {
            uapi::PATH_P2P
        } else {
            uapi::PATH_FALLBACK
        };

        let mut handles = self.handles.lock();
        handles.next = handles.next.checked_add(1).ok_or(ENOSPC)?;
        req.handle = handles.next;
        // The handles lock is never taken in notifier context, so
        // allocating under it is fine.
        handles.list.push((req.handle, m), GFP_KERNEL)?;
        Ok(())
    }

    fn rw(&self, req: &uapi::Rw, write: bool) -> Result {
        let m = self.lookup(req.handle)?;
        let s = m.data();
        if write && s.flags & uapi::MAP_WRITE == 0 {
            return Err(EACCES);
        }
        let end = req.offset.checked_add(req.len).ok_or(EINVAL)?;
        if end > s.len as u64 {
            return Err(EINVAL);
        }
        let (mut off, end) = (usize::try_from(req.offset)?, usize::try_from(end)?);
        let user = UserSlice::new(UserPtr::from_addr(usize::try_from(req.buf)?), end - off);
        let (mut reader, mut writer) = user.reader_writer();
        let mut chunk = KBox::new([0u8; CHUNK], GFP_KERNEL)?;
        while off < end {
            let n = (end - off).min(PAGE_SIZE - off % PAGE_SIZE).min(CHUNK);
            if write {
                reader.read_slice(&mut chunk[..n])?;
            }
            {
                // Device access only under the lock the notifier takes.
                let inner = s.inner.lock();
                if inner.revoked || !inner.mapped {
                    return Err(ESTALE);
                }
                let bus = inner.bus(off).ok_or(EINVAL)?;
                if write {
                    s.edu.write(bus, n, &chunk)?;
                } else {
                    s.edu.read(bus, n, &mut chunk)?;
                }
            }
            if !write {
                // Outside the lock: this may fault and invalidate.
                writer.write_slice(&chunk[..n])?;
            }
            off += n;
        }
        Ok(())
    }

    fn status(&self, st: &mut uapi::Status) -> Result {
        let m = self.lookup(st.handle)?;
        let s = m.data();
        let inner = s.inner.lock();
        st.path = inner.path;
        st.p2p_errno = s.p2p_errno.load(Relaxed);
        st.mapped = u32::from(inner.mapped);
        st.revoked = u32::from(inner.revoked);
        st.invalidations = s.invalidations.load(Relaxed);
        st.quiesce_ns = s.quiesce_ns.load(Relaxed);
        st.revoked_by = s.revoked_by.load(Relaxed);
        st.len = s.len as u64;
        Ok(())
    }

    /// Fault injection: calls `device_unmap` once more for a P2P mapping
    /// that was already given back, as a buggy importer would.
    fn unmap_again(&self, handle: u32) -> Result {
        let m = self.lookup(handle)?;
        let s = m.data();
        let mut inner = s.inner.lock();
        if inner.mapped {
            return Err(EBUSY);
        }
        let inner = &mut *inner;
        let ops = inner.given_back.as_ref().ok_or(EINVAL)?;
        ops.device_unmap(s.edu.device(), s.addr, s.addr + s.len, &mut inner.pa);
        Ok(())
    }

    fn unmap(&self, handle: u32) -> Result {
        let removed = {
            let mut handles = self.handles.lock();
            let i = handles
                .list
                .iter()
                .position(|(h, _)| *h == handle)
                .ok_or(ENOENT)?;
            handles.list.remove(i)?
        };
        // Dropped outside the lock: removing the notifier may sleep.
        drop(removed);
        Ok(())
    }
}

#[vtable]
impl MiscDevice for ImporterFile {
    type Ptr = Pin<KBox<Self>>;

    fn open(_file: &File, misc: &MiscDeviceRegistration<Self>) -> Result<Pin<KBox<Self>>> {
        let edu = ffi::edu_of(misc).clone();
        KBox::try_pin_init(
            try_pin_init!(ImporterFile {
                edu,
                handles <- new_mutex!(Handles {
                    next: 0,
                    list: KVec::new(),
                }),
            }),
            GFP_KERNEL,
        )
    }

    fn ioctl(me: Pin<&ImporterFile>, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        let user = UserSlice::new(UserPtr::from_addr(arg), _IOC_SIZE(cmd));
        match cmd {
            uapi::IOC_MAP => {
                let (mut r, mut w) = user.reader_writer();
                let mut req: uapi::Map = r.read()?;
                me.map(&mut req)?;
                if let Err(e) = w.write(&req) {
                    // The caller cannot learn the handle: do not keep it.
                    let _ = me.unmap(req.handle);
                    return Err(e);
                }
            }
            uapi::IOC_READ | uapi::IOC_WRITE => {
                let req: uapi::Rw = user.reader().read()?;
                me.rw(&req, cmd == uapi::IOC_WRITE)?;
            }
            uapi::IOC_STATUS => {
                let (mut r, mut w) = user.reader_writer();
                let mut st: uapi::Status = r.read()?;
                me.status(&mut st)?;
                w.write(&st)?;
            }
            uapi::IOC_UNMAP => {
                let handle: u32 = user.reader().read()?;
                me.unmap(handle)?;
            }
            uapi::IOC_UNMAP_AGAIN => {
                let handle: u32 = user.reader().read()?;
                me.unmap_again(handle)?;
            }
            _ => return Err(ENOTTY),
        }
        Ok(0)
    }
}
