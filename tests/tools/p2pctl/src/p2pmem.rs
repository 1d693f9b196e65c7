// SPDX-License-Identifier: GPL-2.0

//! `p2pctl p2pmem FILE [--offset N] [--len N] [--pages N] [--nvme BDF]`:
//! device_map() of a device file.
//!
//! Maps P2P memory of the NVMe function (its CMB) through
//! `/sys/bus/pci/devices/BDF/p2pmem/allocate`, fills it with an O_DIRECT read
//! of FILE (NVMe media -> CMB: the P2PDMA core's userspace path), maps that
//! buffer for the edu device through the importer (`device_map()` of the
//! p2pmem vma, patch 0014; no page-cache fallback) and reads N evenly spaced
//! pages of it with device DMA (all of them for up to 16 pages), each
//! compared with an O_DIRECT read of the file into host memory. Prints
//! `path=p2p source=p2pmem` when the device read the CMB through the bus
//! addresses the exporter returned.

use std::time::Instant;

use crate::{
    errno_str, last_err, sample_pages, Args, Fd, Map, Mapping, Res, DEV, IOC_MAP, IOC_UNMAP,
    MAP_NO_FALLBACK, PAGE, PATH_P2P,
};

/// The PCI function of nvme0, as its sysfs name.
fn default_nvme() -> Res<String> {
    let link = std::fs::read_link("/sys/class/nvme/nvme0/device")
        .map_err(|e| format!("/sys/class/nvme/nvme0/device: {e} (no NVMe? give --nvme BDF)"))?;
    link.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .ok_or_else(|| "cannot name the NVMe function".to_string())
}

pub(crate) fn p2pmem(a: &Args) -> Res<bool> {
    let nvme = match &a.nvme {
        Some(n) => n.clone(),
        None => default_nvme()?,
    };
    if !a.offset.is_multiple_of(PAGE) {
        return Err("--offset must be a multiple of 4096 (O_DIRECT)".into());
    }
    let file = Fd::open(&a.file, libc::O_RDONLY | libc::O_DIRECT)?;
    let size = file.size()?;
    let len = a.len.unwrap_or(size.saturating_sub(a.offset));
    if len == 0 || a.offset + len > size {
        return Err(format!("range outside the file ({size} bytes)"));
    }
    let buf_len = len.div_ceil(PAGE) * PAGE;
    let alloc = format!("/sys/bus/pci/devices/{nvme}/p2pmem/allocate");
    let mem = Fd::open(&alloc, libc::O_RDWR)?;
    let buf = Mapping::new(&mem, 0, buf_len, true).map_err(|e| format!("{alloc}: {e}"))?;

    // NVMe media -> CMB.
    let mut done = 0u64;
    while done < len {
        // SAFETY: `buf` maps `buf_len` bytes; the read stays inside it.
        let n = unsafe {
            libc::pread(
                file.0,
                buf.addr.cast::<u8>().add(done as usize).cast(),
                (buf_len - done) as usize,
                (a.offset + done) as i64,
            )
        };
        if n < 0 {
            return Err(last_err("O_DIRECT read into P2P memory"));
        }
        if n == 0 {
            break;
        }
        done += n as u64;
    }
    if done < len {
        return Err(format!("O_DIRECT read stopped at {done} of {len} bytes"));
    }

    let dev = Fd::open(DEV, libc::O_RDWR)?;
    let mut m = Map {
        addr: buf.addr as u64,
        len: buf_len,
        flags: MAP_NO_FALLBACK,
        ..Default::default()
    };
    dev.ioctl(IOC_MAP, &mut m).map_err(|e| {
        format!(
            "MAP of the p2pmem buffer: {} (device_map refused)",
            errno_str(e)
        )
    })?;
    let start = Instant::now();
    let npages = buf_len / PAGE;
    let n = if npages <= 16 {
        npages
    } else {
        a.pages.clamp(1, npages)
    };
    let result = match sample_pages(&dev, m.handle, len, n, &a.file, a.offset)? {
        None => "ok".to_string(),
        Some(at) => format!("MISMATCH at file offset {at}"),
    };
    let dma_ms = start.elapsed().as_millis();
    let mut handle = m.handle;
    let _ = dev.ioctl(IOC_UNMAP, &mut handle);
    println!(
        "{}: path={} source=p2pmem nvme={} offset={} bytes={} pages_checked={} dma_ms={} result={}",
        a.file,
        if m.path == PATH_P2P {
            "p2p"
        } else {
            "fallback"
        },
        nvme,
        a.offset,
        len,
        n,
        dma_ms,
        result
    );
    Ok(result == "ok" && m.path == PATH_P2P)
}
