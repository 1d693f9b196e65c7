// SPDX-License-Identifier: GPL-2.0

//! QEMU's `edu` device (docs/specs/edu.rst in QEMU): its DMA engine copies
//! up to 4 KiB between a bus address and its internal buffer at device
//! address 0x40000; a transfer completes after a timer.

use kernel::{
    dma::Coherent,
    io::Io,
    pci,
    prelude::*,
    sync::aref::ARef,
    sync::{new_mutex, Mutex},
    time::{delay::fsleep, Delta, Instant, Monotonic},
};

/// BAR0 size we touch (registers up to 0x98 + 8).
pub(crate) const BAR_SIZE: usize = 0x100;
/// The DMA unit. The edu buffer is 4 KiB, but QEMU 7.2 (Debian bookworm)
/// rejects, with hw_error() (QEMU aborts), any transfer that ends exactly at
/// the end of the buffer (edu_check_range() compares the end with `<`), so
/// transfers use its first half.
pub(crate) const CHUNK: usize = 2048;

const REG_DMA_SRC: usize = 0x80;
const REG_DMA_DST: usize = 0x88;
const REG_DMA_COUNT: usize = 0x90;
const REG_DMA_CMD: usize = 0x98;
const CMD_START: u32 = 1;
const CMD_TO_RAM: u32 = 2;
/// Device-side address of the edu buffer.
const EDU_BUFFER: u32 = 0x40000;
/// A transfer takes ~100 ms of virtual time (a QEMU timer). The bound only
/// catches a dead device: a timed-out engine is marked dead and every later
/// transfer fails, so a slow or loaded host must never reach it (60 s: 600
/// times the expected cost).
const DMA_TIMEOUT_MS: i64 = 60_000;

/// The DMA engine's state.
struct Engine {
    /// Host bounce buffer the engine copies to/from.
    bounce: Coherent<[u8]>,
    /// A transfer failed (timeout, device gone) and may still be running:
    /// no further transfer is started, since the engine could still write
    /// into memory that is no longer ours.
    dead: bool,
}

/// One bound edu function.
#[pin_data]
pub(crate) struct Edu {
    pdev: ARef<pci::Device>,
    bar: pci::DevresBar<BAR_SIZE>,
    /// The single DMA engine, serialized.
    #[pin]
    engine: Mutex<Engine>,
}

/// Direction of a transfer through the edu buffer.
#[derive(Clone, Copy)]
enum Dir {
    /// bus address -> edu buffer
    ToDevice,
    /// edu buffer -> bus address
    ToRam,
}

impl Edu {
    /// Sets up DMA for a bound edu function.
    pub(crate) fn new(
        pdev: &pci::Device<kernel::device::Core<'_>>,
        bar: pci::DevresBar<BAR_SIZE>,
    ) -> Result<impl PinInit<Self, Error>> {
        let bounce = Coherent::<u8>::zeroed_slice(pdev.as_ref(), CHUNK, GFP_KERNEL)?;
        let pdev: ARef<pci::Device> = pdev.into();
        Ok(try_pin_init!(Self {
            pdev,
            bar,
            engine <- new_mutex!(Engine { bounce, dead: false }),
        }))
    }

    /// The device, as importer of mappings.
    pub(crate) fn device(&self) -> &kernel::device::Device {
        self.pdev.as_ref()
    }

    /// One transfer; marks the engine dead if it fails after starting.
    fn transfer(&self, engine: &mut Engine, bus: u64, count: usize, dir: Dir) -> Result {
        if engine.dead {
            return Err(EIO);
        }
        let ret = self.do_transfer(bus, count, dir);
        if matches!(ret, Err(e) if e == EIO || e == ENODEV) {
            engine.dead = true;
            dev_err!(self.pdev.as_ref(), "edu DMA failed; engine disabled\n");
        }
        ret
    }

    fn do_transfer(&self, bus: u64, count: usize, dir: Dir) -> Result {
        // The Rust MMIO abstraction only does 32-bit accesses to a BAR, and a
        // 4-byte write to edu's 64-bit DMA registers stores the zero-extended
        // value: addresses must be below 4 GiB (the CMB and a 2 GiB guest are).
        let bus = u32::try_from(bus).map_err(|_| ERANGE)?;
        let count = u32::try_from(count).map_err(|_| EINVAL)?;
        let (src, dst, cmd) = match dir {
            Dir::ToDevice => (bus, EDU_BUFFER, CMD_START),
            Dir::ToRam => (EDU_BUFFER, bus, CMD_START | CMD_TO_RAM),
        };
        {
            let bar = self.bar.try_access().ok_or(ENODEV)?;
            bar.write32(src, REG_DMA_SRC);
            bar.write32(dst, REG_DMA_DST);
            bar.write32(count, REG_DMA_COUNT);
            bar.write32(cmd, REG_DMA_CMD);
        }
        let start = Instant::<Monotonic>::now();
        loop {
            let busy = {
                let bar = self.bar.try_access().ok_or(ENODEV)?;
                bar.read32(REG_DMA_CMD) & CMD_START != 0
            };
            if !busy {
                return Ok(());
            }
            if start.elapsed().as_millis() > DMA_TIMEOUT_MS {
                return Err(EIO);
            }
            // Sleep rather than spin: the transfer completes on a QEMU timer.
            fsleep(Delta::from_millis(10));
        }
    }

    /// Reads `count` (at most [`CHUNK`]) bytes at bus address `bus` into
    /// `out[..count]`: bus -> edu buffer -> host bounce buffer -> `out`.
    /// `out` is a whole chunk.
    pub(crate) fn read(&self, bus: u64, count: usize, out: &mut [u8; CHUNK]) -> Result {
        if count == 0 || count > CHUNK {
            return Err(EINVAL);
        }
        let mut engine = self.engine.lock();
        let bounce_bus = engine.bounce.dma_address();
        self.transfer(&mut engine, bus, count, Dir::ToDevice)?;
        self.transfer(&mut engine, bounce_bus, count, Dir::ToRam)?;
        (&engine.bounce).copy_to_slice(out);
        Ok(())
    }

    /// Writes `data[..count]` (at most [`CHUNK`] bytes) to bus address
    /// `bus`: `data` -> host bounce buffer -> edu buffer -> bus.
    pub(crate) fn write(&self, bus: u64, count: usize, data: &[u8; CHUNK]) -> Result {
        if count == 0 || count > CHUNK {
            return Err(EINVAL);
        }
        let mut engine = self.engine.lock();
        (&engine.bounce).copy_from_slice(data);
        let bounce_bus = engine.bounce.dma_address();
        self.transfer(&mut engine, bounce_bus, count, Dir::ToDevice)?;
        self.transfer(&mut engine, bus, count, Dir::ToRam)
    }
}
