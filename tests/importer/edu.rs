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
    sync::{
        new_mutex,
        Mutex, //
    },
    time::{delay::fsleep, Delta, Instant, Monotonic},
};

use crate::ffi;

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
/// catches a stuck device: a timed-out engine is reset (see
/// [`Edu::reset_engine`]), which a slow or loaded host must never cause
/// (60 s: 600 times the expected cost).
const DMA_TIMEOUT_MS: i64 = 60_000;
/// Most transfers one `INJECT_TIMEOUT` may declare timed out.
pub(crate) const MAX_INJECTED_TIMEOUTS: u32 = 16;

/// The DMA engine's state.
struct Engine {
    /// Host bounce buffer the engine copies to/from; freed by
    /// [`Edu::shutdown`], while the function is still bound.
    bounce: Option<Coherent<[u8]>>,
    /// A transfer timed out and the engine could not be reset, or the
    /// device is gone: a transfer may still be running, so no further one
    /// is started (the engine could still write into memory that is no
    /// longer ours).
    dead: bool,
    /// Fault injection: the next this many transfers are declared timed
    /// out as soon as they started (the engine is then still running
    /// them), so that the reset runs against a busy engine.
    inject_timeouts: u32,
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
            engine <- new_mutex!(Engine {
                bounce: Some(bounce),
                dead: false,
                inject_timeouts: 0,
            }),
        }))
    }

    /// The remove path: waits for a transfer in progress, then starts no
    /// other and frees the bounce buffer while the function is bound.
    pub(crate) fn shutdown(&self) {
        let mut engine = self.engine.lock();
        engine.dead = true;
        engine.bounce = None;
    }

    /// Declares the next `n` transfers timed out as soon as they started.
    pub(crate) fn inject_timeouts(&self, n: u32) -> Result {
        if n > MAX_INJECTED_TIMEOUTS {
            return Err(EINVAL);
        }
        self.engine.lock().inject_timeouts = n;
        Ok(())
    }

    /// The device, as importer of mappings.
    pub(crate) fn device(&self) -> &kernel::device::Device {
        self.pdev.as_ref()
    }

    /// One transfer. A timed-out one is stopped by resetting the engine;
    /// the engine is marked dead if that fails or the device is gone.
    fn transfer(&self, engine: &mut Engine, bus: u64, count: usize, dir: Dir) -> Result {
        if engine.dead {
            return Err(EIO);
        }
        let injected = engine.inject_timeouts > 0;
        if injected {
            engine.inject_timeouts -= 1;
        }
        let ret = self.do_transfer(bus, count, dir, injected);
        match ret {
            Err(e) if e == ETIMEDOUT => {
                if self.reset_engine().is_err() {
                    engine.dead = true;
                    dev_err!(self.pdev.as_ref(), "edu DMA stuck; engine disabled\n");
                }
            }
            Err(e) if e == ENODEV => engine.dead = true,
            _ => {}
        }
        ret
    }

    /// Stops a timed-out transfer and makes the engine usable again.
    ///
    /// edu has no reset register, so the reset is the one every PCI
    /// function has: with Bus Master Enable clear a function issues no
    /// memory request (PCI Local Bus 3.0, 6.2.2; QEMU disables the
    /// function's bus-master address space, so the late transfer reaches no
    /// memory), then wait until the engine reports the command done, and
    /// enable bus mastering again. Called with the engine lock held, so no
    /// other transfer starts meanwhile; the caller holds the mapping's
    /// lock too, so the revocation of that mapping waits for this.
    fn reset_engine(&self) -> Result {
        {
            let _bound = self.bar.try_access().ok_or(ENODEV)?;
            ffi::set_bus_master(&self.pdev, false);
        }
        // Still running after the timeout: bus mastering stays off.
        self.wait_idle(false)
            .map_err(|e| if e == ETIMEDOUT { EIO } else { e })?;
        // Bound while the BAR is accessible: never re-enable DMA of a
        // function its driver has let go.
        let _bound = self.bar.try_access().ok_or(ENODEV)?;
        ffi::set_bus_master(&self.pdev, true);
        dev_warn!(self.pdev.as_ref(), "edu DMA timed out; engine reset\n");
        Ok(())
    }

    fn do_transfer(&self, bus: u64, count: usize, dir: Dir, injected: bool) -> Result {
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
        self.wait_idle(injected)
    }

    /// Waits until the engine reports its command done: `ETIMEDOUT` after
    /// [`DMA_TIMEOUT_MS`], or at the first busy poll if `give_up`.
    fn wait_idle(&self, give_up: bool) -> Result {
        let start = Instant::<Monotonic>::now();
        loop {
            let busy = {
                let bar = self.bar.try_access().ok_or(ENODEV)?;
                bar.read32(REG_DMA_CMD) & CMD_START != 0
            };
            if !busy {
                return Ok(());
            }
            if give_up || start.elapsed().as_millis() > DMA_TIMEOUT_MS {
                return Err(ETIMEDOUT);
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
        let bounce_bus = engine.bounce.as_ref().ok_or(ENODEV)?.dma_address();
        self.transfer(&mut engine, bus, count, Dir::ToDevice)?;
        self.transfer(&mut engine, bounce_bus, count, Dir::ToRam)?;
        engine.bounce.as_ref().ok_or(ENODEV)?.copy_to_slice(out);
        Ok(())
    }

    /// Writes `data[..count]` (at most [`CHUNK`] bytes) to bus address
    /// `bus`: `data` -> host bounce buffer -> edu buffer -> bus.
    pub(crate) fn write(&self, bus: u64, count: usize, data: &[u8; CHUNK]) -> Result {
        if count == 0 || count > CHUNK {
            return Err(EINVAL);
        }
        let mut engine = self.engine.lock();
        let bounce = engine.bounce.as_ref().ok_or(ENODEV)?;
        bounce.copy_from_slice(data);
        let bounce_bus = bounce.dma_address();
        self.transfer(&mut engine, bounce_bus, count, Dir::ToDevice)?;
        self.transfer(&mut engine, bus, count, Dir::ToRam)
    }
}
