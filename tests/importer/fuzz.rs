// SPDX-License-Identifier: GPL-2.0

//! `device_map` called directly with random arguments (issue 17, part 3):
//! whatever a buggy importer passes (ranges around and outside the vma,
//! empty, reversed and unaligned ones, every flag and random bits, with and
//! without a dma_buf pointer), the vma's provider answers with 0 or an
//! errno, never oopses, and gives back what it served.

use kernel::{
    bindings,
    page::PAGE_SIZE,
    prelude::*, //
};

use crate::{
    edu::Edu,
    ffi::{
        self,
        device_map_flag, //
    },
    uapi,
};

/// Most pages of one drawn range: the size of the `pa` array.
const MAX_PAGES: usize = 32;

/// xorshift64* (Vigna): one fixed sequence per seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        // xorshift never leaves 0.
        Self(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform enough in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The arguments of one call.
struct Args {
    start: usize,
    end: usize,
    flags: u32,
    with_bufp: bool,
}

/// Draws the arguments of one call around `[addr, addr + len)`.
fn draw(rng: &mut Rng, addr: usize, len: usize) -> Args {
    let page = PAGE_SIZE as u64;
    let pages = (len / PAGE_SIZE) as u64;
    // First page: from 4 pages before the mapping to 4 past its end.
    let first = (addr as u64 / page + rng.below(pages + 8)).saturating_sub(4);
    let mut start = first * page;
    // From 4 pages before `start` to 31 after it: reversed, empty, short
    // and long ranges (at most MAX_PAGES pages with an unaligned end).
    let mut end = (start + rng.below(36) * page).saturating_sub(4 * page);
    if rng.below(8) == 0 {
        start += 1 + rng.below(page - 1);
    }
    if rng.below(8) == 0 {
        end += 1 + rng.below(page - 1);
    }
    let flags = match rng.below(8) {
        0..=3 => 0,
        4 => device_map_flag::WRITE,
        5 => device_map_flag::PIN,
        6 => device_map_flag::SUPPORT_ATOMIC_OP,
        _ => rng.next() as u32,
    };
    Args {
        start: start as usize,
        end: end as usize,
        flags,
        with_bufp: rng.below(2) == 0,
    }
}

/// `P2PMAP_IOC_FUZZ_DEVICE_MAP` (see the ABI header).
pub(crate) fn fuzz_device_map(edu: &Edu, req: &mut uapi::Fuzz) -> Result {
    // The bound on `len` also keeps `draw`'s address arithmetic far from
    // overflow (a user address plus at most 128 MiB and a few pages).
    if req.count > uapi::FUZZ_MAX_COUNT
        || req.len == 0
        || req.len > crate::MAX_MAP_LEN
        || req.len % PAGE_SIZE as u64 != 0
    {
        return Err(EINVAL);
    }
    let addr = usize::try_from(req.addr)?;
    let len = usize::try_from(req.len)?;
    addr.checked_add(len).ok_or(EINVAL)?;
    let mm = ffi::current_mm().ok_or(EINVAL)?;
    if mm.mmap_read_lock().vma_lookup(addr).is_none() {
        return Err(EFAULT);
    }
    let mut pa = KVec::<bindings::dma_addr_t>::from_elem(0, MAX_PAGES + 1, GFP_KERNEL)?;
    let mut rng = Rng::new(req.seed);
    (req.served, req.retried, req.refused) = (0, 0, 0);
    req.errno_mask = [0; 2];
    req.other_errno = 0;
    for _ in 0..req.count {
        let a = draw(&mut rng, addr, len);
        let ret = ffi::raw_device_map(
            &mm,
            addr,
            edu.device(),
            a.start,
            a.end,
            a.flags,
            a.with_bufp,
            &mut pa,
            None,
        );
        match ret {
            0 => req.served += 1,
            e if e == EAGAIN.to_errno() => req.retried += 1,
            e => {
                req.refused += 1;
                let errno = e.unsigned_abs() as usize;
                if e < 0 && errno < 128 {
                    req.errno_mask[errno / 64] |= 1 << (errno % 64);
                } else if req.other_errno == 0 {
                    req.other_errno = e;
                }
            }
        }
    }
    Ok(())
}
