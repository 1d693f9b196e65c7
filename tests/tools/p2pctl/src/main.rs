// SPDX-License-Identifier: GPL-2.0

//! p2pctl: drive p2pmap's test importer from the guest.
//!
//! ```text
//! p2pctl verify FILE [--offset N] [--len N] [--write] [--no-fallback] [--pin]
//! p2pctl hold FILE [--offset N] [--len N] [--timeout SECS]
//! p2pctl sample FILE --pages N [--piece SIZE] [--no-fallback]
//! p2pctl stat [--json]
//! p2pctl status FILE [--json] [--probe] [--importer BDF]...
//! p2pctl p2pmem FILE [--offset N] [--len N] [--pages N] [--nvme BDF]
//! ```
//!
//! `verify` mmaps FILE, maps the range for the edu device through
//! `/dev/p2pmap_importer`, reads it with device DMA and compares it with the
//! file's bytes read with O_DIRECT (with `--write` it writes a pattern
//! through the device first; with `--pin` it maps with
//! `DEVICE_MAP_FLAG_PIN` and the device reads the dma_buf it returned). `hold` maps and waits until the mapping is
//! revoked. `sample` checks a large file without reading all of it through
//! the (slow) device: it maps the file in pieces of SIZE (default: at most
//! 64 MiB), reads N evenly spaced pages of each piece (first and last
//! included) through the device, compares them with O_DIRECT reads and
//! unmaps the piece before the next. `stat` prints p2pmap's counters and
//! the CMB size the PCI functions publish. `status` tells an administrator
//! whether FILE can be served peer to peer and, for each refusal, why and
//! what to do (see `status.rs`); its exit status is 1 if it cannot.
//! `p2pmem` reads FILE into the NVMe function's P2P memory (its
//! `p2pmem/allocate` file) with O_DIRECT and has the device read that buffer
//! through the device file's `device_map()` (see `p2pmem.rs`). Exit
//! status 0 on success, 1 on a mismatch or error, 2 on bad usage.

use std::ffi::CString;
use std::fs;
use std::io::{self, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

mod p2pmem;
mod status;

const DEV: &str = "/dev/p2pmap_importer";

const STATS: &str = "/sys/kernel/debug/p2pmap/stats";
const PAGE: u64 = 4096;

/// The importer's ioctl ABI, generated from `tests/include/p2pmap_importer.h`
/// by `build.rs`.
#[allow(non_camel_case_types, non_upper_case_globals, dead_code)]
mod abi {
    include!(concat!(env!("OUT_DIR"), "/abi.rs"));
}

use abi::{
    p2pmap_map as Map,
    p2pmap_rw as Rw,
    p2pmap_status as Status,
    P2PMAP_IOCTL_MAP as IOC_MAP,
    P2PMAP_IOCTL_MAP_PIN as IOC_MAP_PIN,
    P2PMAP_IOCTL_READ as IOC_READ,
    P2PMAP_IOCTL_STATUS as IOC_STATUS,
    P2PMAP_IOCTL_UNMAP as IOC_UNMAP,
    P2PMAP_IOCTL_WRITE as IOC_WRITE,
    P2PMAP_MAP_NO_FALLBACK as MAP_NO_FALLBACK,
    P2PMAP_MAP_WRITE as MAP_WRITE,
    P2PMAP_PATH_P2P as PATH_P2P,
    P2PMAP_PATH_PINNED as PATH_PINNED, //
};

type Res<T> = Result<T, String>;

fn errno_str(e: i32) -> String {
    format!("{} ({})", io::Error::from_raw_os_error(e), e)
}

fn last_err(what: &str) -> String {
    format!("{what}: {}", io::Error::last_os_error())
}

/// An open file descriptor, closed on drop.
struct Fd(i32);

impl Fd {
    fn open(path: &str, flags: i32) -> Res<Fd> {
        let c = CString::new(path).map_err(|_| format!("{path}: NUL in path"))?;
        // SAFETY: `c` is a valid C string.
        let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(last_err(path));
        }
        Ok(Fd(fd))
    }

    fn ioctl<T>(&self, req: u32, arg: &mut T) -> Result<(), i32> {
        // SAFETY: `arg` points to a live, properly sized `repr(C)` value.
        let r = unsafe { libc::ioctl(self.0, req as _, arg as *mut T) };
        if r < 0 {
            Err(io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO))
        } else {
            Ok(())
        }
    }

    fn size(&self) -> Res<u64> {
        // SAFETY: `st` is written by fstat.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid fd and buffer.
        if unsafe { libc::fstat(self.0, &mut st) } < 0 {
            return Err(last_err("fstat"));
        }
        Ok(st.st_size as u64)
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: we own the descriptor.
        unsafe { libc::close(self.0) };
    }
}

/// A shared file mapping, unmapped on drop.
struct Mapping {
    addr: *mut libc::c_void,
    len: usize,
}

impl Mapping {
    fn new(fd: &Fd, offset: u64, len: u64, write: bool) -> Res<Mapping> {
        let prot = libc::PROT_READ | if write { libc::PROT_WRITE } else { 0 };
        // SAFETY: a fresh shared mapping of `fd`; the kernel picks the address.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len as usize,
                prot,
                libc::MAP_SHARED,
                fd.0,
                offset as i64,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(last_err("mmap"));
        }
        Ok(Mapping {
            addr,
            len: len as usize,
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: we own the mapping.
        unsafe { libc::munmap(self.addr, self.len) };
    }
}

/// A page-aligned buffer for O_DIRECT.
struct Aligned {
    ptr: *mut u8,
    len: usize,
}

impl Aligned {
    fn new(len: usize) -> Res<Aligned> {
        let mut p: *mut libc::c_void = std::ptr::null_mut();
        let len = len.max(1);
        // SAFETY: posix_memalign writes `p` on success.
        if unsafe { libc::posix_memalign(&mut p, PAGE as usize, len) } != 0 {
            return Err("out of memory".into());
        }
        Ok(Aligned { ptr: p.cast(), len })
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` holds `len` bytes we own.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for Aligned {
    fn drop(&mut self) {
        // SAFETY: allocated by posix_memalign.
        unsafe { libc::free(self.ptr.cast()) };
    }
}

/// Reads [off, off + len) of `path` with O_DIRECT (page-aligned I/O).
fn read_direct(path: &str, off: u64, len: u64) -> Res<Vec<u8>> {
    let fd = Fd::open(path, libc::O_RDONLY | libc::O_DIRECT)?;
    let start = off / PAGE * PAGE;
    let end = (off + len).div_ceil(PAGE) * PAGE;
    let mut buf = Aligned::new((end - start) as usize)?;
    let mut done = 0usize;
    let total = (end - start) as usize;
    while done < total {
        let b = &mut buf.as_mut_slice()[done..];
        // SAFETY: `b` is valid for `b.len()` bytes and page aligned.
        let n = unsafe {
            libc::pread(
                fd.0,
                b.as_mut_ptr().cast(),
                b.len(),
                (start as usize + done) as i64,
            )
        };
        if n < 0 {
            return Err(last_err("pread O_DIRECT"));
        }
        if n == 0 {
            break; // EOF: the rest reads as zeros (tail of the last page)
        }
        done += n as usize;
    }
    let skip = (off - start) as usize;
    Ok(buf.as_mut_slice()[skip..skip + len as usize].to_vec())
}

struct Args {
    file: String,
    offset: u64,
    len: Option<u64>,
    write: bool,
    no_fallback: bool,
    pin: bool,
    timeout: u64,
    pages: u64,
    piece: Option<u64>,
    nvme: Option<String>,
}

fn parse(args: &[String]) -> Res<Args> {
    let mut a = Args {
        file: String::new(),
        offset: 0,
        len: None,
        write: false,
        no_fallback: false,
        pin: false,
        timeout: 60,
        pages: 16,
        piece: None,
        nvme: None,
    };
    let mut it = args.iter();
    let num = |v: Option<&String>, name: &str| -> Res<u64> {
        let v = v.ok_or(format!("{name} needs a value"))?;
        let (digits, mult) = match v.as_bytes().last() {
            Some(b'K' | b'k') => (&v[..v.len() - 1], 1u64 << 10),
            Some(b'M' | b'm') => (&v[..v.len() - 1], 1 << 20),
            Some(b'G' | b'g') => (&v[..v.len() - 1], 1 << 30),
            _ => (v.as_str(), 1),
        };
        let n: u64 = if let Some(h) = digits.strip_prefix("0x") {
            u64::from_str_radix(h, 16).map_err(|_| format!("bad {name}: {v}"))?
        } else {
            digits.parse().map_err(|_| format!("bad {name}: {v}"))?
        };
        n.checked_mul(mult).ok_or(format!("{name} too large"))
    };
    while let Some(x) = it.next() {
        match x.as_str() {
            "--offset" => a.offset = num(it.next(), "--offset")?,
            "--len" => a.len = Some(num(it.next(), "--len")?),
            "--timeout" => a.timeout = num(it.next(), "--timeout")?,
            "--pages" => a.pages = num(it.next(), "--pages")?,
            "--piece" => a.piece = Some(num(it.next(), "--piece")?),
            "--nvme" => a.nvme = Some(it.next().ok_or("--nvme needs a PCI address")?.clone()),
            "--write" => a.write = true,
            "--no-fallback" => a.no_fallback = true,
            "--pin" => a.pin = true,
            f if !f.starts_with('-') && a.file.is_empty() => a.file = f.to_string(),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.file.is_empty() {
        return Err("missing FILE".into());
    }
    Ok(a)
}

/// Maps [offset, offset+len) of the file for the device; returns the pieces
/// that must stay alive and the MAP result.
fn map_file(a: &Args, file: &Fd) -> Res<(Fd, Mapping, Map, u64, u64)> {
    let size = file.size()?;
    let len = a.len.unwrap_or(size.saturating_sub(a.offset));
    if len == 0 {
        return Err("empty range".into());
    }
    let map_off = a.offset / PAGE * PAGE;
    let map_len = (a.offset + len).div_ceil(PAGE) * PAGE - map_off;
    let mapping = Mapping::new(file, map_off, map_len, a.write)?;
    let dev = Fd::open(DEV, libc::O_RDWR)?;
    if a.pin {
        // A pinned buffer: read-only, no fallback.
        let mut m = Map {
            addr: mapping.addr as u64,
            len: map_len,
            ..Default::default()
        };
        dev.ioctl(IOC_MAP_PIN, &mut m).map_err(|e| {
            let hint = if e == libc::EOPNOTSUPP {
                " (is pinning allowed? /sys/kernel/debug/p2pmap/allow_pin)"
            } else {
                ""
            };
            format!("MAP_PIN: {}{hint}", errno_str(e))
        })?;
        return Ok((dev, mapping, m, a.offset - map_off, len));
    }
    let mut m = Map {
        addr: mapping.addr as u64,
        len: map_len,
        flags: if a.write { MAP_WRITE } else { 0 }
            | if a.no_fallback { MAP_NO_FALLBACK } else { 0 },
        ..Default::default()
    };
    dev.ioctl(IOC_MAP, &mut m)
        .map_err(|e| format!("MAP: {}", errno_str(e)))?;
    Ok((dev, mapping, m, a.offset - map_off, len))
}

fn path_name(m: &Map) -> String {
    if m.path == PATH_P2P {
        "p2p".into()
    } else if m.path == PATH_PINNED {
        "p2p pinned=1".into()
    } else {
        format!("fallback ({})", errno_str(-m.p2p_errno))
    }
}

/// `p2pmap_status.revoked_by` in words (`P2PMAP_REVOKED_BY_*`: 1 + the
/// kernel's `enum mmu_notifier_event`).
fn revoked_by_name(v: u32) -> &'static str {
    match v {
        0 => "none",
        1 => "unmap (munmap or exit)",
        2 => {
            "clear (unmap_mapping_range: truncate, punch, or a p2pmap revocation; see p2pctl stat)"
        }
        3 => "protection_vma (mprotect)",
        4 => "protection_page (writeback write-protected a page)",
        5 => "soft_dirty",
        6 => "release (the mm went away)",
        7 => "migrate (page migration or compaction)",
        8 => "exclusive",
        _ => "unknown",
    }
}

/// After a device access failed with ESTALE: what revoked the handle.
fn why_revoked(dev: &Fd, handle: u32) -> String {
    let mut st = Status {
        handle,
        ..Default::default()
    };
    match dev.ioctl(IOC_STATUS, &mut st) {
        Ok(_) => format!("revoked_by={}", revoked_by_name(st.revoked_by)),
        Err(e) => format!("STATUS: {}", errno_str(e)),
    }
}

fn pattern(off: u64) -> u8 {
    (off.wrapping_mul(131) ^ (off >> 12)) as u8 ^ 0xa5
}

fn verify(a: &Args) -> Res<bool> {
    if a.pin && a.write {
        return Err("--pin maps read-only: it cannot be combined with --write".into());
    }
    let file = Fd::open(
        &a.file,
        if a.write {
            libc::O_RDWR
        } else {
            libc::O_RDONLY
        },
    )?;
    let (dev, _mapping, m, skip, len) = map_file(a, &file)?;
    let start = Instant::now();
    if a.write {
        let data: Vec<u8> = (0..len).map(|i| pattern(a.offset + i)).collect();
        let mut rw = Rw {
            handle: m.handle,
            offset: skip,
            len,
            buf: data.as_ptr() as u64,
            ..Default::default()
        };
        dev.ioctl(IOC_WRITE, &mut rw)
            .map_err(|e| format!("WRITE: {}", errno_str(e)))?;
    }
    let mut buf = vec![0u8; len as usize];
    let mut rw = Rw {
        handle: m.handle,
        offset: skip,
        len,
        buf: buf.as_mut_ptr() as u64,
        ..Default::default()
    };
    dev.ioctl(IOC_READ, &mut rw).map_err(|e| {
        if e == libc::ESTALE {
            format!("READ: {}: {}", errno_str(e), why_revoked(&dev, m.handle))
        } else {
            format!("READ: {}", errno_str(e))
        }
    })?;
    let dma_time = start.elapsed();
    let mut handle = m.handle;
    let _ = dev.ioctl(IOC_UNMAP, &mut handle);
    let expect = read_direct(&a.file, a.offset, len)?;
    let mismatch = buf.iter().zip(expect.iter()).position(|(x, y)| x != y);
    let written_ok = !a.write
        || expect
            .iter()
            .enumerate()
            .all(|(i, &b)| b == pattern(a.offset + i as u64));
    let result = match (mismatch, written_ok) {
        (None, true) => "ok".to_string(),
        (Some(i), _) => format!(
            "MISMATCH at file offset {}: device {:#04x}, file {:#04x}",
            a.offset + i as u64,
            buf[i],
            expect[i]
        ),
        (None, false) => "MISMATCH: the file does not hold what the device wrote".to_string(),
    };
    println!(
        "{}: path={} offset={} bytes={} dma_ms={} result={}",
        a.file,
        path_name(&m),
        a.offset,
        len,
        dma_time.as_millis(),
        result
    );
    Ok(mismatch.is_none() && written_ok)
}

/// Reads `n` evenly spaced pages (first and last included) of the `len`
/// bytes of `handle` through the device and compares each with the bytes
/// of `file` at `file_off` onwards, read with O_DIRECT. Returns the file
/// offset of the first difference.
fn sample_pages(
    dev: &Fd,
    handle: u32,
    len: u64,
    n: u64,
    file: &str,
    file_off: u64,
) -> Res<Option<u64>> {
    let npages = len.div_ceil(PAGE);
    let mut buf = vec![0u8; PAGE as usize];
    for k in 0..n {
        let page = if n == 1 {
            0
        } else {
            k * (npages - 1) / (n - 1)
        };
        let at = page * PAGE;
        let cnt = PAGE.min(len - at);
        let mut rw = Rw {
            handle,
            offset: at,
            len: cnt,
            buf: buf.as_mut_ptr() as u64,
            ..Default::default()
        };
        dev.ioctl(IOC_READ, &mut rw)
            .map_err(|e| format!("READ: {}", errno_str(e)))?;
        let expect = read_direct(file, file_off + at, cnt)?;
        if let Some(i) = buf[..cnt as usize]
            .iter()
            .zip(expect.iter())
            .position(|(x, y)| x != y)
        {
            return Ok(Some(file_off + at + i as u64));
        }
    }
    Ok(None)
}

fn sample(a: &Args) -> Res<bool> {
    let file = Fd::open(&a.file, libc::O_RDONLY)?;
    let size = file.size()?;
    let piece = a.piece.unwrap_or(64 << 20).max(PAGE) / PAGE * PAGE;
    let (mut pieces, mut checked, mut all_p2p) = (0u64, 0u64, true);
    let start = Instant::now();
    let mut off = 0;
    while off < size {
        let len = piece.min(size - off);
        let pa = Args {
            file: a.file.clone(),
            offset: off,
            len: Some(len),
            nvme: None,
            ..*a
        };
        let (dev, _mapping, m, _skip, len) = map_file(&pa, &file)?;
        all_p2p &= m.path == PATH_P2P;
        let n = a.pages.clamp(1, len.div_ceil(PAGE));
        if let Some(at) = sample_pages(&dev, m.handle, len, n, &a.file, off)? {
            println!(
                "{}: path={} result=MISMATCH at file offset {}",
                a.file,
                path_name(&m),
                at
            );
            return Ok(false);
        }
        checked += n;
        let mut handle = m.handle;
        let _ = dev.ioctl(IOC_UNMAP, &mut handle);
        pieces += 1;
        off += len;
    }
    println!(
        "{}: size={} pieces={} pages_checked={} path={} ms={} result=ok",
        a.file,
        size,
        pieces,
        checked,
        if all_p2p { "p2p" } else { "mixed/fallback" },
        start.elapsed().as_millis()
    );
    Ok(true)
}

fn hold(a: &Args) -> Res<bool> {
    let file = Fd::open(&a.file, libc::O_RDONLY)?;
    let (dev, _mapping, m, _skip, len) = map_file(a, &file)?;
    println!(
        "{}: mapped {} bytes, path={}; waiting for revocation",
        a.file,
        len,
        path_name(&m)
    );
    let _ = io::stdout().flush();
    let start = Instant::now();
    let mut st = Status {
        handle: m.handle,
        ..Default::default()
    };
    loop {
        dev.ioctl(IOC_STATUS, &mut st)
            .map_err(|e| format!("STATUS: {}", errno_str(e)))?;
        if st.revoked != 0 {
            println!(
                "{}: revoked after {:.3} s: invalidations={} invalidate->quiesced_us={:.1} revoked_by={}",
                a.file,
                start.elapsed().as_secs_f64(),
                st.invalidations,
                st.quiesce_ns as f64 / 1000.0,
                revoked_by_name(st.revoked_by)
            );
            return Ok(true);
        }
        if start.elapsed() > Duration::from_secs(a.timeout) {
            println!("{}: not revoked within {} s", a.file, a.timeout);
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn stat(json: bool) -> Res<bool> {
    let s = fs::read_to_string(STATS).map_err(|e| format!("{STATS}: {e} (is p2pmap loaded?)"))?;
    // The CMB the PCI functions publish as P2P memory (sysfs).
    let mut total = 0u64;
    if let Ok(dir) = fs::read_dir("/sys/bus/pci/devices") {
        for d in dir.flatten() {
            let p = d.path().join("p2pmem");
            let published = fs::read_to_string(p.join("published")).unwrap_or_default();
            if published.trim() == "1" {
                total += fs::read_to_string(p.join("size"))
                    .ok()
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
            }
        }
    }
    if !json {
        print!("{s}");
        println!("cmb_bytes_total {total}");
        return Ok(true);
    }
    // Every "name value" line whose value is a number.
    let mut o = String::from("{");
    for (k, v) in s
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, v)| v.trim().parse::<u64>().is_ok())
    {
        o.push_str(&format!("\"{k}\":{},", v.trim()));
    }
    o.push_str(&format!("\"cmb_bytes_total\":{total}}}"));
    println!("{o}");
    Ok(true)
}

/// `status FILE [--json] [--probe] [--importer BDF]...`
fn status_cmd(args: &[String]) -> Res<bool> {
    let (mut file, mut json, mut probe, mut importers) = (None, false, false, Vec::new());
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--json" => json = true,
            "--probe" => probe = true,
            "--importer" => {
                importers.push(it.next().ok_or("--importer needs a PCI address")?.clone())
            }
            f if !f.starts_with('-') && file.is_none() => file = Some(f.to_string()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let file = file.ok_or("missing FILE")?;
    status::status(&file, json, probe, &importers)
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: p2pctl verify FILE [--offset N] [--len N] [--write] [--no-fallback] [--pin]\n       \
         p2pctl hold FILE [--offset N] [--len N] [--timeout SECS]\n       \
         p2pctl sample FILE [--pages N] [--piece SIZE] [--no-fallback]\n       \
         p2pctl stat [--json]\n       \
         p2pctl status FILE [--json] [--probe] [--importer BDF]...\n       \
         p2pctl p2pmem FILE [--offset N] [--len N] [--pages N] [--nvme BDF]"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let Some(cmd) = argv.get(1) else {
        return usage();
    };
    let rest = &argv[2..];
    let r = match cmd.as_str() {
        "stat" => match rest {
            [] => stat(false),
            [j] if j == "--json" => stat(true),
            _ => return usage(),
        },
        "status" => match status_cmd(rest) {
            Err(e)
                if e.starts_with("unknown argument")
                    || e.starts_with("missing")
                    || e.starts_with("--importer") =>
            {
                eprintln!("p2pctl: {e}");
                return usage();
            }
            r => r,
        },
        "verify" | "hold" | "sample" | "p2pmem" => match parse(rest) {
            Ok(a) if cmd == "verify" => verify(&a),
            Ok(a) if cmd == "sample" => sample(&a),
            Ok(a) if cmd == "p2pmem" => p2pmem::p2pmem(&a),
            Ok(a) => hold(&a),
            Err(e) => {
                eprintln!("p2pctl: {e}");
                return usage();
            }
        },
        _ => return usage(),
    };
    match r {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("p2pctl: {e}");
            ExitCode::from(1)
        }
    }
}
