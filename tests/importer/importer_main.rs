// SPDX-License-Identifier: GPL-2.0

//! p2pmap test importer: a PCI driver for QEMU's `edu` device that does what
//! a GPU/NIC/FPGA driver does with p2pmap. It maps a range of the caller's
//! address space with the kernel's importer helper (`struct
//! device_map_range`, patch 0011, as [`ffi::DeviceMapRange`]): peer to peer
//! through `vma->vm_ops->device_map()`, or the page cache when that is
//! refused, kept under an mmu interval notifier that revokes it; and reads
//! (or writes) the bus addresses with the edu DMA engine.
//!
//! ABI: `tests/include/p2pmap_importer.h`, device `/dev/p2pmap_importer`.

use kernel::{
    dma::{
        Device as _,
        DmaMask, //
    },
    fs::File,
    ioctl::_IOC_SIZE,
    miscdevice::{
        MiscDevice,
        MiscDeviceOptions,
        MiscDeviceRegistration, //
    },
    new_mutex,
    page::PAGE_SIZE,
    pci,
    prelude::*,
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        new_condvar,
        Arc,
        CondVar,
        Mutex, //
    },
    uaccess::{
        UserPtr,
        UserSlice, //
    },
};

mod edu;
mod ffi;
mod fuzz;
mod timing;
mod uapi;

use edu::{
    Edu,
    CHUNK, //
};
use ffi::{
    DeviceMapRange,
    Invalidated,
    PinnedBuf, //
};

/// Largest range one MAP may cover: larger than the test CMB (64 MiB), so
/// that a request that cannot fit reaches the provider. The bus address
/// array (8 bytes a page, 256 KiB at most) may come from vmalloc.
const MAX_MAP_LEN: u64 = 128 << 20;

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

/// Per bound edu function: the misc device and the state its files share.
#[pin_data]
pub(crate) struct ImporterData {
    #[pin]
    misc: MiscDeviceRegistration<ImporterFile>,
    shared: Arc<Shared>,
}

/// What the open files of one edu function share: the device, and what
/// its unbind needs to stop them.
#[pin_data]
pub(crate) struct Shared {
    edu: Arc<Edu>,
    #[pin]
    state: Mutex<SharedState>,
    /// Signalled when `users` drops to 0.
    #[pin]
    idle: CondVar,
}

struct SharedState {
    /// The function is being unbound: no new user, no new file.
    unbound: bool,
    /// ioctls in progress.
    users: usize,
    /// The handles of every open file, which the unbind revokes.
    files: KVec<Arc<FileHandles>>,
}

/// An ioctl in progress ([`Shared::enter`]).
struct User<'a>(&'a Shared);

impl Drop for User<'_> {
    fn drop(&mut self) {
        let mut st = self.0.state.lock();
        st.users -= 1;
        if st.users == 0 {
            self.0.idle.notify_all();
        }
    }
}

impl Shared {
    fn new(edu: Arc<Edu>) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            edu,
            state <- new_mutex!(SharedState {
                unbound: false,
                users: 0,
                files: KVec::new(),
            }),
            idle <- new_condvar!(),
        })
    }

    /// Starts an ioctl; `ENODEV` once the function is being unbound.
    fn enter(&self) -> Result<User<'_>> {
        let mut st = self.state.lock();
        if st.unbound {
            return Err(ENODEV);
        }
        st.users += 1;
        Ok(User(self))
    }

    /// Adds an open file's handles to those the unbind revokes.
    fn register(&self, handles: &Arc<FileHandles>) -> Result {
        let mut st = self.state.lock();
        if st.unbound {
            return Err(ENODEV);
        }
        // The state lock is never taken in notifier context: allocating
        // under it is fine.
        st.files.push(handles.clone(), GFP_KERNEL)?;
        Ok(())
    }

    fn unregister(&self, handles: &Arc<FileHandles>) {
        self.state.lock().files.retain(|h| !Arc::ptr_eq(h, handles));
    }

    /// The remove path: refuses new ioctls, waits for those in progress
    /// (a transfer ends within the engine's timeout), then revokes every
    /// mapping of every open file (`device_map_range_fini()`: the
    /// provider's `device_unmap`, or the page-cache DMA unmapping) while
    /// the function is still bound. Open files stay valid and get
    /// `ENODEV`.
    fn unbind(&self) {
        let files = {
            let mut st = self.state.lock();
            st.unbound = true;
            while st.users > 0 {
                self.idle.wait(&mut st);
            }
            core::mem::take(&mut st.files)
        };
        // No ioctl holds a mapping now: dropping the lists' references
        // finalizes them, outside every lock (removing a notifier sleeps).
        for f in files.iter() {
            let list = core::mem::take(&mut f.handles.lock().list);
            drop(list);
        }
        self.edu.shutdown();
    }
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
            let shared = Arc::pin_init(Shared::new(edu), GFP_KERNEL)?;
            dev_info!(pdev, "p2pmap test importer bound\n");
            // `shared` first: the misc device can be opened as soon as it
            // is registered, and open reads `shared`.
            Ok(try_pin_init!(ImporterData {
                shared,
                misc <- MiscDeviceRegistration::register(MiscDeviceOptions {
                    name: c"p2pmap_importer",
                }),
            }))
        })
    }

    fn unbind<'bound>(
        pdev: &'bound pci::Device<kernel::device::Core<'_>>,
        this: Pin<&Self::Data<'bound>>,
    ) {
        this.shared.unbind();
        dev_info!(
            pdev,
            "p2pmap test importer unbound; its mappings were revoked\n"
        );
    }
}

// --- mappings ---------------------------------------------------------------
//
// The importer example of Documentation/importer-api.rst is the code between
// the two markers below, included from here (tests/host checks its length).

// importer-example-start
/// One mapping: the helper's state ([`DeviceMapRange`]) and ours.
#[pin_data]
struct MapState {
    edu: Arc<Edu>,
    flags: u32,
    revoked: Atomic<bool>,
    invalidations: Atomic<u64>,
    quiesce_ns: Atomic<u64>,
    revoked_by: Atomic<u32>, // 1 + the enum mmu_notifier_event, 0 if live
}

type Mapping = DeviceMapRange<MapState>;

impl Invalidated for MapState {
    // Called with the range's lock held: device access has stopped.
    fn invalidated(this: &Mapping, event: u32, torn_down: bool, quiesce_ns: u64) {
        let m = this.data();
        m.invalidations.add(1, Relaxed);
        if torn_down {
            m.revoked.store(true, Relaxed);
            m.revoked_by.store(event.saturating_add(1), Relaxed);
            m.quiesce_ns.store(quiesce_ns, Relaxed);
        }
    }
}

/// Maps `[addr, addr + len)` of the calling process for the device:
/// peer to peer through `device_map`, else (unless `NO_FALLBACK`) the
/// page cache.
fn map_range(edu: &Arc<Edu>, addr: usize, len: usize, flags: u32) -> Result<Arc<Mapping>> {
    let mm = ffi::current_mm().ok_or(EINVAL)?;
    let state = try_pin_init!(MapState {
        edu: edu.clone(),
        flags,
        revoked: Atomic::new(false),
        invalidations: Atomic::new(0),
        quiesce_ns: Atomic::new(0),
        revoked_by: Atomic::new(0),
    });
    let dm_flags = flags & uapi::MAP_DEVICE_FLAGS; // DEVICE_MAP_FLAG_WRITE, _ATOMIC_OP
    let range = Mapping::new(edu.device(), &mm, addr, len, dm_flags, state);
    let m = Arc::pin_init(range, GFP_KERNEL)?;
    m.map(flags & uapi::MAP_NO_FALLBACK == 0)?;
    Ok(m)
}

/// Moves `n` bytes between byte `off` of the mapping and `chunk` with the
/// device's DMA engine.
fn device_rw(m: &Mapping, off: usize, n: usize, chunk: &mut [u8; CHUNK], write: bool) -> Result {
    // The invalidation waits for `access`: no DMA after it returns.
    let access = m.lock();
    let bus = access.bus(off).ok_or(ESTALE)?;
    if write {
        m.data().edu.write(bus, n, chunk)
    } else {
        m.data().edu.read(bus, n, chunk)
    }
}
// importer-example-end

/// Validates MAP arguments; returns (addr, len).
fn check_map_args(req: &uapi::Map) -> Result<(usize, usize)> {
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
    Ok((usize::try_from(req.addr)?, usize::try_from(req.len)?))
}

// --- the misc device -----------------------------------------------------------

/// What a handle holds: a range mapped through the importer helper, or a
/// pinned buffer (the dma_buf of a PIN `device_map()`).
#[derive(Clone)]
enum Handle {
    Range(Arc<Mapping>),
    Pinned(Arc<PinnedBuf>),
}

impl Handle {
    fn range(self) -> Result<Arc<Mapping>> {
        match self {
            Handle::Range(m) => Ok(m),
            Handle::Pinned(_) => Err(EINVAL),
        }
    }
}

/// Handles of one open file.
struct Handles {
    next: u32,
    list: KVec<(u32, Handle)>,
}

/// The handles of one open file, shared with [`Shared`] for the unbind.
#[pin_data]
struct FileHandles {
    #[pin]
    handles: Mutex<Handles>,
}

/// An open `/dev/p2pmap_importer`.
struct ImporterFile {
    shared: Arc<Shared>,
    handles: Arc<FileHandles>,
}

impl ImporterFile {
    fn lookup(&self, handle: u32) -> Result<Handle> {
        let handles = self.handles.handles.lock();
        handles
            .list
            .iter()
            .find(|(h, _)| *h == handle)
            .map(|(_, m)| m.clone())
            .ok_or(ENOENT)
    }

    /// Records `h` under a new handle number.
    fn insert(&self, h: Handle) -> Result<u32> {
        let mut handles = self.handles.handles.lock();
        handles.next = handles.next.checked_add(1).ok_or(ENOSPC)?;
        let n = handles.next;
        // The handles lock is never taken in notifier context, so
        // allocating under it is fine.
        handles.list.push((n, h), GFP_KERNEL)?;
        Ok(n)
    }

    fn map(&self, req: &mut uapi::Map) -> Result {
        let (addr, len) = check_map_args(req)?;
        let m = map_range(&self.shared.edu, addr, len, req.flags)?;
        req.p2p_errno = m.p2p_errno();
        req.path = m.lock().path();
        req.handle = self.insert(Handle::Range(m))?;
        Ok(())
    }

    /// MAP_PIN: the range's dma_buf, imported by the device.
    fn map_pin(&self, req: &mut uapi::Map) -> Result {
        let (addr, len) = check_map_args(req)?;
        if req.flags != 0 {
            return Err(EINVAL);
        }
        let mm = ffi::current_mm().ok_or(EINVAL)?;
        let pin = PinnedBuf::map(self.shared.edu.device(), &mm, addr, len)?;
        req.p2p_errno = 0;
        req.path = uapi::PATH_PINNED;
        req.handle = self.insert(Handle::Pinned(Arc::new(pin, GFP_KERNEL)?))?;
        Ok(())
    }

    /// IMPORT: the dma_buf of a file descriptor, imported by the device.
    fn import(&self, req: &mut uapi::Import) -> Result {
        if req.flags & !uapi::IMPORT_FLAGS != 0 {
            return Err(EINVAL);
        }
        let pin = PinnedBuf::from_fd(self.shared.edu.device(), req.fd, req.flags)?;
        req.len = pin.state().3;
        req.handle = self.insert(Handle::Pinned(Arc::new(pin, GFP_KERNEL)?))?;
        Ok(())
    }

    /// PIN_FD: a new file descriptor of a pinned handle's dma_buf.
    fn pin_fd(&self, handle: u32) -> Result<i32> {
        match self.lookup(handle)? {
            Handle::Pinned(p) => p.fd(),
            Handle::Range(_) => Err(EINVAL),
        }
    }

    /// READ of a pinned handle (read-only: the windows are copies).
    fn read_pinned(&self, p: &PinnedBuf, req: &uapi::Rw) -> Result {
        let end = req.offset.checked_add(req.len).ok_or(EINVAL)?;
        if end > p.state().3 {
            return Err(EINVAL);
        }
        let (mut off, end) = (usize::try_from(req.offset)?, usize::try_from(end)?);
        let mut writer =
            UserSlice::new(UserPtr::from_addr(usize::try_from(req.buf)?), end - off).writer();
        let mut chunk = KBox::new([0u8; CHUNK], GFP_KERNEL)?;
        while off < end {
            let n = (end - off).min(PAGE_SIZE - off % PAGE_SIZE).min(CHUNK);
            {
                // The invalidation waits for `access`: no DMA after it.
                let access = p.lock();
                let bus = access.bus(off).ok_or(ESTALE)?;
                self.shared.edu.read(bus, n, &mut chunk)?;
            }
            writer.write_slice(&chunk[..n])?;
            off += n;
        }
        Ok(())
    }

    fn rw(&self, req: &uapi::Rw, write: bool) -> Result {
        let m = match self.lookup(req.handle)? {
            Handle::Range(m) => m,
            Handle::Pinned(_) if write => return Err(EACCES),
            Handle::Pinned(p) => return self.read_pinned(&p, req),
        };
        if write && m.data().flags & uapi::MAP_WRITE == 0 {
            return Err(EACCES);
        }
        let end = req.offset.checked_add(req.len).ok_or(EINVAL)?;
        if end > m.len() as u64 {
            return Err(EINVAL);
        }
        let (mut off, end) = (usize::try_from(req.offset)?, usize::try_from(end)?);
        let user = UserSlice::new(UserPtr::from_addr(usize::try_from(req.buf)?), end - off);
        let (mut reader, mut writer) = user.reader_writer();
        let mut chunk = KBox::new([0u8; CHUNK], GFP_KERNEL)?;
        while off < end {
            let n = (end - off).min(PAGE_SIZE - off % PAGE_SIZE).min(CHUNK);
            // User memory only outside the device access: a fault may
            // invalidate the range, and the invalidation waits for it.
            if write {
                reader.read_slice(&mut chunk[..n])?;
            }
            device_rw(&m, off, n, &mut chunk, write)?;
            if !write {
                writer.write_slice(&chunk[..n])?;
            }
            off += n;
        }
        Ok(())
    }

    fn status(&self, st: &mut uapi::Status) -> Result {
        let m = match self.lookup(st.handle)? {
            Handle::Range(m) => m,
            Handle::Pinned(p) => {
                let (mapped, revoked, invalidations, len) = p.state();
                st.p2p_errno = 0;
                st.path = uapi::PATH_PINNED;
                st.mapped = u32::from(mapped);
                st.revoked = u32::from(revoked);
                st.invalidations = invalidations;
                st.quiesce_ns = 0;
                st.revoked_by = 0;
                st.len = len;
                return Ok(());
            }
        };
        st.p2p_errno = m.p2p_errno();
        let s = m.data();
        let access = m.lock();
        st.path = access.path();
        st.mapped = u32::from(access.mapped());
        st.revoked = u32::from(s.revoked.load(Relaxed));
        st.invalidations = s.invalidations.load(Relaxed);
        st.quiesce_ns = s.quiesce_ns.load(Relaxed);
        st.revoked_by = s.revoked_by.load(Relaxed);
        st.len = m.len() as u64;
        Ok(())
    }

    /// Fault injection: calls `device_unmap` once more for a P2P mapping
    /// that was already given back, as a buggy importer would.
    fn unmap_again(&self, handle: u32) -> Result {
        self.lookup(handle)?.range()?.lock().device_unmap_again()
    }

    fn unmap(&self, handle: u32) -> Result {
        let removed = {
            let mut handles = self.handles.handles.lock();
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
        let shared = ffi::shared_of(misc).clone();
        let handles = Arc::pin_init(
            try_pin_init!(FileHandles {
                handles <- new_mutex!(Handles {
                    next: 0,
                    list: KVec::new(),
                }),
            }),
            GFP_KERNEL,
        )?;
        let file = KBox::pin(ImporterFile { shared, handles }, GFP_KERNEL)?;
        file.shared.register(&file.handles)?;
        Ok(file)
    }

    fn release(me: Pin<KBox<Self>>, _file: &File) {
        me.shared.unregister(&me.handles);
        // Dropping `me` finalizes the file's mappings (outside any lock).
    }

    fn ioctl(me: Pin<&ImporterFile>, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        let _user = me.shared.enter()?;
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
            uapi::IOC_MAP_PIN => {
                let (mut r, mut w) = user.reader_writer();
                let mut req: uapi::Map = r.read()?;
                me.map_pin(&mut req)?;
                if let Err(e) = w.write(&req) {
                    let _ = me.unmap(req.handle);
                    return Err(e);
                }
            }
            uapi::IOC_IMPORT => {
                let (mut r, mut w) = user.reader_writer();
                let mut req: uapi::Import = r.read()?;
                me.import(&mut req)?;
                if let Err(e) = w.write(&req) {
                    let _ = me.unmap(req.handle);
                    return Err(e);
                }
            }
            uapi::IOC_PIN_FD => {
                let handle: u32 = user.reader().read()?;
                return Ok(me.pin_fd(handle)? as isize);
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
            uapi::IOC_FUZZ_DEVICE_MAP => {
                let (mut r, mut w) = user.reader_writer();
                let mut req: uapi::Fuzz = r.read()?;
                fuzz::fuzz_device_map(&me.shared.edu, &mut req)?;
                w.write(&req)?;
            }
            uapi::IOC_TIME_DEVICE_MAP => {
                let (mut r, mut w) = user.reader_writer();
                let mut req: uapi::TimeMap = r.read()?;
                timing::time_device_map(&me.shared.edu, &mut req)?;
                w.write(&req)?;
            }
            uapi::IOC_INJECT_TIMEOUT => {
                let n: u32 = user.reader().read()?;
                me.shared.edu.inject_timeouts(n)?;
            }
            _ => return Err(ENOTTY),
        }
        Ok(0)
    }
}
