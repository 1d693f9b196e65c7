// SPDX-License-Identifier: GPL-2.0

//! `p2pctl status FILE [--json] [--probe] [--importer BDF]`: whether and
//! how FILE can be served peer to peer, and for each refusal found, why
//! and what to do about it.
//!
//! It looks at what userspace can see, in the order p2pmap checks
//! (`Documentation/admin-guide.rst`): the filesystem (DAX, export block
//! ops: XFS), an active swap file, the NVMe function behind the block
//! device and the CMB it publishes, the PCIe route from each importer to
//! it (a common switch, or only the host bridge), page-cache residency
//! (`mincore`), the extents (`FIEMAP`: shared, unwritten, delalloc,
//! holes), and `fs.leases-enable`. With `--probe` it also asks p2pmap: it
//! maps the file through the test importer with the fallback off, reports
//! what `device_map` said and which `refused_*` counter moved (a probe
//! drops clean unmapped cached pages and stages the file in the CMB, as a
//! real mapping would, then unmaps).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::{
    errno_str, Fd, Map, Mapping, Res, DEV, IOC_MAP, IOC_UNMAP, MAP_NO_FALLBACK, PAGE, STATS,
};

const XFS_MAGIC: i64 = 0x5846_5342;
const EXT4_MAGIC: i64 = 0xEF53;
const TMPFS_MAGIC: i64 = 0x0102_1994;
const BTRFS_MAGIC: i64 = 0x9123_683E;

/// `FS_IOC_FIEMAP`: `_IOWR('f', 11, struct fiemap)`.
const FS_IOC_FIEMAP: u32 = (3 << 30) | (32 << 16) | ((b'f' as u32) << 8) | 11;
const FIEMAP_EXTENT_LAST: u32 = 0x1;
const FIEMAP_EXTENT_DELALLOC: u32 = 0x4;
const FIEMAP_EXTENT_UNWRITTEN: u32 = 0x800;
const FIEMAP_EXTENT_SHARED: u32 = 0x2000;
/// Extents asked per FIEMAP call.
const FIEMAP_BATCH: usize = 64;

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct FiemapExtent {
    logical: u64,
    physical: u64,
    length: u64,
    reserved64: [u64; 2],
    flags: u32,
    reserved: [u32; 3],
}

#[repr(C)]
struct Fiemap {
    start: u64,
    length: u64,
    flags: u32,
    mapped_extents: u32,
    extent_count: u32,
    reserved: u32,
    extents: [FiemapExtent; FIEMAP_BATCH],
}

/// What `FIEMAP` says of the file.
#[derive(Default)]
struct Extents {
    count: u64,
    shared: u64,
    unwritten: u64,
    delalloc: u64,
    /// Bytes of the file no extent covers (holes).
    hole_bytes: u64,
}

fn fiemap(fd: &Fd, size: u64) -> Res<Extents> {
    let mut e = Extents::default();
    let mut pos = 0u64;
    loop {
        let mut fm = Fiemap {
            start: pos,
            length: u64::MAX - pos,
            // No FIEMAP_FLAG_SYNC: looking must not write the file back.
            flags: 0,
            mapped_extents: 0,
            extent_count: FIEMAP_BATCH as u32,
            reserved: 0,
            extents: [FiemapExtent::default(); FIEMAP_BATCH],
        };
        fd.ioctl(FS_IOC_FIEMAP, &mut fm)
            .map_err(|err| format!("FIEMAP: {}", errno_str(err)))?;
        let n = (fm.mapped_extents as usize).min(FIEMAP_BATCH);
        let mut last = n == 0;
        for x in &fm.extents[..n] {
            e.count += 1;
            e.shared += u64::from(x.flags & FIEMAP_EXTENT_SHARED != 0);
            e.unwritten += u64::from(x.flags & FIEMAP_EXTENT_UNWRITTEN != 0);
            e.delalloc += u64::from(x.flags & FIEMAP_EXTENT_DELALLOC != 0);
            let covered_from = x.logical.min(size);
            e.hole_bytes += covered_from.saturating_sub(pos.min(size));
            pos = pos.max(x.logical.saturating_add(x.length));
            last |= x.flags & FIEMAP_EXTENT_LAST != 0;
        }
        if last {
            e.hole_bytes += size.saturating_sub(pos);
            return Ok(e);
        }
    }
}

/// Pages of the first `pages` pages of the mapping that are in the page
/// cache.
fn resident(map: &Mapping, pages: usize) -> Res<usize> {
    let mut vec = vec![0u8; pages];
    // SAFETY: `map` covers `pages` pages; `vec` has one byte per page.
    if unsafe { libc::mincore(map.addr, pages * PAGE as usize, vec.as_mut_ptr()) } < 0 {
        return Err(crate::last_err("mincore"));
    }
    Ok(vec.iter().filter(|b| **b & 1 != 0).count())
}

/// A PCI address (`dddd:bb:dd.f`).
fn is_bdf(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 12 && b[4] == b':' && b[7] == b':' && b[10] == b'.'
}

/// The PCI functions on the sysfs device path `p`, root first (the last
/// is the device itself, or the function it sits on).
fn pci_chain(p: &Path) -> Vec<String> {
    p.components()
        .filter_map(|c| c.as_os_str().to_str())
        .filter(|s| is_bdf(s))
        .map(str::to_string)
        .collect()
}

fn read_trim(p: impl AsRef<Path>) -> Option<String> {
    fs::read_to_string(p).ok().map(|s| s.trim().to_string())
}

/// The CMB a PCI function publishes as P2P memory.
struct Cmb {
    published: bool,
    size: u64,
    available: u64,
}

fn cmb_of(bdf: &str) -> Option<Cmb> {
    let d = PathBuf::from("/sys/bus/pci/devices")
        .join(bdf)
        .join("p2pmem");
    let num = |f: &str| {
        read_trim(d.join(f))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    d.exists().then(|| Cmb {
        published: read_trim(d.join("published")).as_deref() == Some("1"),
        size: num("size"),
        available: num("available"),
    })
}

/// How an importer reaches the NVMe function: the PCI bridge or switch
/// port both sit below (bus addresses work), or none but the host bridge.
fn route(importer: &[String], nvme: &[String]) -> Option<String> {
    importer
        .iter()
        .zip(nvme.iter())
        .take_while(|(a, b)| a == b)
        .last()
        .map(|(a, _)| a.clone())
}

/// One refusal found: its reason (the `refused_*` counter's name), what
/// was seen, and what to do.
struct Refusal {
    reason: &'static str,
    seen: String,
    advice: String,
}

/// The advice for a refusal `reason` of FILE of `size` bytes.
pub(crate) fn advice(reason: &str, file: &str, size: u64) -> String {
    match reason {
        "reflinked" => format!(
            "unshare its extents: xfs_io -c \"funshare 0 {size}\" {file}, or copy it with cp --reflink=never and use the copy"
        ),
        "no_block_ops" => {
            "put the file on XFS (its export block ops give p2pmap the file's blocks); other filesystems are served from the page cache".into()
        }
        "dax" => "DAX files have no block device to stage from: use a non-DAX XFS mount".into(),
        "swapfile" => format!("swapoff {file} first: the swap code owns its blocks"),
        "no_p2p_provider" => {
            "the NVMe function holding the filesystem publishes no CMB as P2P memory: give it a Controller Memory Buffer (and a driver that publishes it, nvme does when the CMB supports reads and writes)".into()
        }
        "no_p2p_path" | "host_bridge_route" => {
            "put the importer and the NVMe below one PCIe switch (peer to peer through the host bridge is refused: it needs an IOMMU mapping, not the CMB's bus addresses); check ACS on the switch ports".into()
        }
        "page_cache_resident" => format!(
            "write the file back (sync {file}) and end CPU mappings of it (munmap, or stop the processes that mmap it); clean, unmapped cached pages are dropped when the device maps"
        ),
        "past_eof" => "map only up to the end of the file (rounded up to a page)".into(),
        "leases_disabled" => {
            "enable leases: sysctl fs.leases-enable=1 (without a layout lease p2pmap would not learn of truncate or write)".into()
        }
        "lease_broken" | "cpu_write" => {
            "the file was being changed (truncate, write, store through mmap): map again once the change is done".into()
        }
        "cmb_full" => "the CMB is full of windows other importers use: unmap some, or map a smaller range".into(),
        "too_large" => "the range is larger than the whole CMB: map it in pieces".into(),
        "extent_unsupported" => format!(
            "the file has extents p2pmap cannot stage (delayed allocation): sync {file} and map again"
        ),
        "fs_error" => {
            "the filesystem failed (an XFS forced shutdown, see dmesg): unmount it, run xfs_repair if the log says so, and mount it again".into()
        }
        "map_blocks_failed" | "read_failed" => {
            "the filesystem or the NVMe failed: see the kernel log (dmesg)".into()
        }
        "write_overlap" => {
            "another device holds a write mapping of part of the range: map the same range, or wait until it is given back".into()
        }
        "no_space" => "the filesystem has no space for the range's blocks: free some, or map a smaller range".into(),
        "write_private" | "write_vma_read_only" | "write_fd_read_only" => {
            "a write mapping needs a shared mapping with PROT_WRITE of a file opened for writing".into()
        }
        "write_immutable" | "write_append_only" => {
            "the file is immutable or append-only (lsattr): no device may write it".into()
        }
        "write_fs_read_only" => "the filesystem or the mount is read-only".into(),
        "write_fs_frozen" => "the filesystem is frozen (fsfreeze -u to thaw it)".into(),
        "pin_disabled" => {
            "pinning is the administrator's choice: echo 1 > /sys/kernel/debug/p2pmap/allow_pin (or load p2pmap with allow_pin=1)".into()
        }
        "pin_no_buffer" => "a PIN request needs a dma_buf pointer (bufp): an importer bug".into(),
        "atomic_without_write" => "AtomicOps write: ask for DEVICE_MAP_FLAG_WRITE too".into(),
        "atomic_completer" => {
            "the NVMe function does not complete 32- and 64-bit PCIe AtomicOps (DevCap2): map without DEVICE_MAP_FLAG_SUPPORT_ATOMIC_OP".into()
        }
        "atomic_routing" | "atomic_egress_blocked" => {
            "a PCIe switch port between the importer and the NVMe function does not pass AtomicOps (DevCap2 AtomicOp routing, DevCtl2 egress blocking; the kernel log names it): map without atomics, or move the devices".into()
        }
        "atomic_requester" => {
            "the importer cannot issue PCIe AtomicOps, or its driver did not enable them (DevCtl2 AtomicOp Requester Enable)".into()
        }
        _ => "see Documentation/admin-guide.rst for this reason".into(),
    }
}

/// The `refused_*` counters of p2pmap, by reason.
fn refusal_counters() -> Vec<(String, u64)> {
    fs::read_to_string(STATS)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((
                k.strip_prefix("refused_")?.to_string(),
                v.trim().parse().ok()?,
            ))
        })
        .collect()
}

/// What `--probe` found.
struct Probe {
    served: bool,
    errno: i32,
    /// The `refused_*` counters that moved during the probe.
    reasons: Vec<String>,
}

fn probe(map: &Mapping, len: u64) -> Res<Probe> {
    let dev = Fd::open(DEV, libc::O_RDWR)?;
    let before = refusal_counters();
    let mut m = Map {
        addr: map.addr as u64,
        len,
        flags: MAP_NO_FALLBACK,
        ..Default::default()
    };
    let r = dev.ioctl(IOC_MAP, &mut m);
    let after = refusal_counters();
    let reasons = after
        .iter()
        .filter(|(k, v)| before.iter().any(|(bk, bv)| bk == k && v > bv))
        .map(|(k, _)| k.clone())
        .collect();
    Ok(match r {
        Ok(()) => {
            // Unmapping a mapping of our own cannot fail but for a bug;
            // the process exit would drop it anyway.
            let _ = dev.ioctl(IOC_UNMAP, &mut m.handle);
            Probe {
                served: true,
                errno: 0,
                reasons,
            }
        }
        Err(e) => Probe {
            served: false,
            errno: e,
            reasons,
        },
    })
}

/// A JSON string.
fn js(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// `p2pctl status`. Returns whether the file can be served peer to peer
/// (no refusal found, and the probe, if asked, served it).
pub(crate) fn status(file: &str, json: bool, do_probe: bool, importers: &[String]) -> Res<bool> {
    let fd = Fd::open(file, libc::O_RDONLY)?;
    let meta = fs::metadata(file).map_err(|e| format!("{file}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{file}: not a regular file"));
    }
    let size = meta.len();
    let pages = size.div_ceil(PAGE);
    let mut facts: Vec<(&str, String)> = Vec::new();
    let mut refusals: Vec<Refusal> = Vec::new();
    let mut refuse = |reason: &'static str, seen: String| {
        refusals.push(Refusal {
            reason,
            seen,
            advice: advice(reason, file, size),
        })
    };

    // The filesystem.
    // SAFETY: `sfs` is written by fstatfs.
    let mut sfs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and buffer.
    if unsafe { libc::fstatfs(fd.0, &mut sfs) } < 0 {
        return Err(crate::last_err("fstatfs"));
    }
    let magic = sfs.f_type as i64;
    let fs_name = match magic {
        XFS_MAGIC => "xfs".to_string(),
        EXT4_MAGIC => "ext4".to_string(),
        TMPFS_MAGIC => "tmpfs".to_string(),
        BTRFS_MAGIC => "btrfs".to_string(),
        m => format!("{m:#x}"),
    };
    let (maj, min) = (libc::major(meta.dev()), libc::minor(meta.dev()));
    facts.push(("filesystem", fs_name.clone()));
    facts.push(("device", format!("{maj}:{min}")));
    facts.push(("size", size.to_string()));
    facts.push(("pages", pages.to_string()));
    // STATX_ATTR_DAX through statx.
    // SAFETY: `stx` is written by statx.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    let empty = c"";
    // SAFETY: valid fd, empty path with AT_EMPTY_PATH, valid buffer.
    let dax = unsafe { libc::statx(fd.0, empty.as_ptr(), libc::AT_EMPTY_PATH, 0, &mut stx) } == 0
        && stx.stx_attributes & 0x0020_0000 != 0;
    if dax {
        refuse("dax", "the file is DAX".into());
    }
    if magic != XFS_MAGIC {
        refuse(
            "no_block_ops",
            format!("filesystem {fs_name} has no export block ops"),
        );
    }
    let canon = fs::canonicalize(file).unwrap_or_else(|_| PathBuf::from(file));
    let swaps = fs::read_to_string("/proc/swaps").unwrap_or_default();
    if swaps
        .lines()
        .skip(1)
        .any(|l| l.split_whitespace().next() == canon.to_str())
    {
        refuse("swapfile", "the file is an active swap file".into());
    }

    // The NVMe function behind the block device, and its CMB.
    let blk = fs::canonicalize(format!("/sys/dev/block/{maj}:{min}")).ok();
    let nvme_chain = blk.as_deref().map(pci_chain).unwrap_or_default();
    if let Some(b) = blk
        .as_ref()
        .and_then(|b| b.file_name())
        .and_then(|n| n.to_str())
    {
        facts.push(("block_device", b.to_string()));
    }
    match nvme_chain.last() {
        Some(nvme) => {
            facts.push(("pci_function", nvme.clone()));
            match cmb_of(nvme) {
                Some(c) => {
                    facts.push(("cmb_published", u8::from(c.published).to_string()));
                    facts.push(("cmb_size", c.size.to_string()));
                    facts.push(("cmb_available", c.available.to_string()));
                    if !c.published {
                        refuse(
                            "no_p2p_provider",
                            format!("{nvme} has P2P memory but does not publish it"),
                        );
                    }
                }
                None => refuse(
                    "no_p2p_provider",
                    format!("{nvme} has no P2P memory (no CMB)"),
                ),
            }
        }
        None if magic == XFS_MAGIC => refuse(
            "no_p2p_provider",
            "the block device is not on a PCI function".into(),
        ),
        None => {}
    }

    // The route from each importer.
    let found: Vec<String>;
    let importers = if importers.is_empty() {
        found = fs::read_dir("/sys/bus/pci/drivers/p2pmap_importer")
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.file_name().to_str().map(str::to_string))
                    .filter(|n| is_bdf(n))
                    .collect()
            })
            .unwrap_or_default();
        &found[..]
    } else {
        importers
    };
    let mut routes = Vec::new();
    for imp in importers {
        let chain = fs::canonicalize(PathBuf::from("/sys/bus/pci/devices").join(imp))
            .map(|p| pci_chain(&p))
            .unwrap_or_default();
        if chain.is_empty() {
            return Err(format!("importer {imp}: no such PCI function"));
        }
        let r = if nvme_chain.is_empty() {
            "unknown (no PCI function behind the file)".to_string()
        } else {
            match route(&chain, &nvme_chain) {
                Some(sw) => format!("switch (both below {sw})"),
                None => {
                    refuse(
                        "host_bridge_route",
                        format!(
                            "importer {imp} and {} share no PCIe switch",
                            nvme_chain.last().map_or("", |s| s)
                        ),
                    );
                    "host_bridge".to_string()
                }
            }
        };
        routes.push((imp.clone(), r));
    }

    // The page cache and the extents.
    let map = if size > 0 {
        Some(Mapping::new(&fd, 0, pages * PAGE, false)?)
    } else {
        None
    };
    let res = match &map {
        Some(m) => resident(m, pages as usize)?,
        None => 0,
    };
    facts.push(("resident_pages", res.to_string()));
    // Not a refusal by itself: clean pages nobody maps are dropped when
    // the device maps. Dirty, CPU-mapped or locked ones refuse, which
    // userspace cannot tell apart: the probe can.
    let cache_note = (res > 0).then(|| {
        format!(
            "{res} of {pages} pages are in the page cache: clean unmapped ones are dropped when the device maps; dirty or CPU-mapped ones refuse (page_cache_resident); if so: {}",
            advice("page_cache_resident", file, size)
        )
    });
    let ext = fiemap(&fd, size);
    match &ext {
        Ok(e) => {
            facts.push(("extents", e.count.to_string()));
            facts.push(("shared_extents", e.shared.to_string()));
            facts.push(("unwritten_extents", e.unwritten.to_string()));
            facts.push(("delalloc_extents", e.delalloc.to_string()));
            facts.push(("hole_bytes", e.hole_bytes.to_string()));
            if e.shared > 0 {
                refuse(
                    "reflinked",
                    format!("{} extents are shared (reflink)", e.shared),
                );
            }
            if e.delalloc > 0 {
                refuse(
                    "extent_unsupported",
                    format!("{} extents are not allocated yet (delalloc)", e.delalloc),
                );
            }
        }
        Err(e) => facts.push(("extents", format!("unknown ({e})"))),
    }
    let leases = read_trim("/proc/sys/fs/leases-enable").unwrap_or_default();
    facts.push(("leases_enable", leases.clone()));
    if leases == "0" {
        refuse("leases_disabled", "fs.leases-enable is 0".into());
    }
    let loaded = Path::new("/sys/module/p2pmap").exists();
    facts.push(("p2pmap_loaded", u8::from(loaded).to_string()));

    let probed = match (&map, do_probe) {
        (Some(m), true) => Some(probe(m, pages * PAGE)?),
        _ => None,
    };
    drop(map);
    let servable = refusals.is_empty() && probed.as_ref().is_none_or(|p| p.served);

    if json {
        let mut o = format!("{{\"file\":{}", js(file));
        for (k, v) in &facts {
            o.push_str(&format!(",{}:{}", js(k), js(v)));
        }
        o.push_str(",\"importers\":[");
        for (i, (imp, r)) in routes.iter().enumerate() {
            let sep = if i > 0 { "," } else { "" };
            o.push_str(&format!(
                "{sep}{{\"pci_function\":{},\"route\":{}}}",
                js(imp),
                js(r)
            ));
        }
        o.push_str("],\"refusals\":[");
        for (i, r) in refusals.iter().enumerate() {
            let sep = if i > 0 { "," } else { "" };
            o.push_str(&format!(
                "{sep}{{\"reason\":{},\"seen\":{},\"advice\":{}}}",
                js(r.reason),
                js(&r.seen),
                js(&r.advice)
            ));
        }
        o.push(']');
        if let Some(n) = &cache_note {
            o.push_str(&format!(",\"note\":{}", js(n)));
        }
        if let Some(p) = &probed {
            let reasons: Vec<String> = p.reasons.iter().map(|r| js(r)).collect();
            o.push_str(&format!(
                ",\"probe\":{{\"served\":{},\"errno\":{},\"reasons\":[{}]}}",
                p.served,
                p.errno,
                reasons.join(",")
            ));
        }
        o.push_str(&format!(",\"servable\":{servable}}}"));
        println!("{o}");
        return Ok(servable);
    }
    println!("file {file}");
    for (k, v) in &facts {
        println!("{k} {v}");
    }
    for (imp, r) in &routes {
        println!("importer {imp} route {r}");
    }
    for r in &refusals {
        println!("refusal {}: {}", r.reason, r.seen);
        println!("  advice: {}", r.advice);
    }
    if let Some(n) = &cache_note {
        println!("note {n}");
    }
    if let Some(p) = &probed {
        if p.served {
            println!("probe served peer to peer");
        } else {
            println!(
                "probe refused: {} reason {}",
                errno_str(p.errno),
                if p.reasons.is_empty() {
                    "unknown".to_string()
                } else {
                    p.reasons.join(",")
                }
            );
            for r in p
                .reasons
                .iter()
                .filter(|r| !refusals.iter().any(|x| x.reason == *r))
            {
                println!("  advice: {}", advice(r, file, size));
            }
        }
    }
    println!("verdict {}", if servable { "servable" } else { "refused" });
    Ok(servable)
}
