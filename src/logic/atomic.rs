// SPDX-License-Identifier: GPL-2.0

//! Whether an importer's PCIe AtomicOps can reach the CMB
//! (`DEVICE_MAP_FLAG_SUPPORT_ATOMIC_OP`).
//!
//! An AtomicOp request travels from the importer (the requester) through
//! the switch ports between it and the NVMe function (the completer) that
//! owns the CMB. All of these must hold (PCIe r6.0, sec. 6.15 and 7.5.3.15
//! to 7.5.3.16; the kernel checks the same for the way up to the root port
//! in `pci_enable_atomic_ops_to_root()`, drivers/pci/pci.c):
//!
//! - the completer advertises AtomicOp completion
//!   (`PCI_EXP_DEVCAP2_ATOMIC_COMP32` and `_COMP64`: FetchAdd, Swap and CAS
//!   of 32 and 64 bits, what device memory models need);
//! - every switch port on the path routes AtomicOps
//!   (`PCI_EXP_DEVCAP2_ATOMIC_ROUTE`), and a conventional PCI bridge on the
//!   path routes none;
//! - no port the request leaves through blocks AtomicOp egress
//!   (`PCI_EXP_DEVCTL2_ATOMIC_EGRESS_BLOCK`): upstream ports on the way up
//!   from the requester, downstream ports on the way down to the completer;
//! - the requester is a PCIe function whose driver enabled AtomicOp requests
//!   (`PCI_EXP_DEVCTL2_ATOMIC_REQ`, required to be writable by functions
//!   that can issue them and allowed to be hardwired to 0 by the others).
//!   p2pmap does not set it: the importer's driver owns its device's
//!   configuration.
//!
//! The checks run from the completer towards the requester, and the first
//! missing link is the refusal's reason.

use super::reason::Reason;

/// `PCI_EXP_DEVCAP2_ATOMIC_ROUTE` (include/uapi/linux/pci_regs.h).
pub const DEVCAP2_ATOMIC_ROUTE: u32 = 0x0000_0040;
/// `PCI_EXP_DEVCAP2_ATOMIC_COMP32`.
pub const DEVCAP2_ATOMIC_COMP32: u32 = 0x0000_0080;
/// `PCI_EXP_DEVCAP2_ATOMIC_COMP64`.
pub const DEVCAP2_ATOMIC_COMP64: u32 = 0x0000_0100;
/// `PCI_EXP_DEVCTL2_ATOMIC_REQ`.
pub const DEVCTL2_ATOMIC_REQ: u16 = 0x0040;
/// `PCI_EXP_DEVCTL2_ATOMIC_EGRESS_BLOCK`.
pub const DEVCTL2_ATOMIC_EGRESS_BLOCK: u16 = 0x0080;

/// Completion widths the completer must offer.
pub const COMPLETER_NEEDS: u32 = DEVCAP2_ATOMIC_COMP32 | DEVCAP2_ATOMIC_COMP64;

/// What the decision needs to know of one PCI function: its PCI Express
/// capability's Device Capabilities 2 and Device Control 2 registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Function {
    /// The function has a PCI Express capability (else conventional PCI,
    /// and both registers are 0).
    pub pcie: bool,
    /// `PCI_EXP_DEVCAP2`.
    pub devcap2: u32,
    /// `PCI_EXP_DEVCTL2`.
    pub devctl2: u16,
}

/// A bridge (switch port) between the requester and the completer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Port {
    /// Its registers.
    pub function: Function,
    /// The request leaves the port through its egress side towards the
    /// completer: an upstream port on the requester's way up, a downstream
    /// port on the way down to the completer.
    pub egress: bool,
}

/// The first missing link, in the order [`check`] looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gap {
    /// The completer does not complete 32- and 64-bit AtomicOps.
    Completer,
    /// The port at this index of the path does not route AtomicOps.
    Routing(usize),
    /// The port at this index of the path blocks AtomicOp egress.
    EgressBlocked(usize),
    /// The requester is conventional PCI: it cannot issue AtomicOps.
    RequesterConventional,
    /// The requester's driver has not enabled AtomicOp requests.
    RequesterDisabled,
}

impl Gap {
    /// The refusal reason counted for this gap.
    pub const fn reason(self) -> Reason {
        match self {
            Gap::Completer => Reason::AtomicCompleter,
            Gap::Routing(_) => Reason::AtomicRouting,
            Gap::EgressBlocked(_) => Reason::AtomicEgressBlocked,
            Gap::RequesterConventional | Gap::RequesterDisabled => Reason::AtomicRequester,
        }
    }

    /// The path index of the port this gap names, if it names one.
    pub const fn port(self) -> Option<usize> {
        match self {
            Gap::Routing(i) | Gap::EgressBlocked(i) => Some(i),
            _ => None,
        }
    }

    /// The role of the function this gap names, for the log line.
    pub const fn role(self) -> &'static str {
        match self {
            Gap::Completer => "completer",
            Gap::Routing(_) | Gap::EgressBlocked(_) => "switch port",
            Gap::RequesterConventional | Gap::RequesterDisabled => "requester",
        }
    }

    /// What is missing, for the log line.
    pub const fn describe(self) -> &'static str {
        match self {
            Gap::Completer => "completes no 32- and 64-bit AtomicOps",
            Gap::Routing(_) => "does not route AtomicOps",
            Gap::EgressBlocked(_) => "blocks AtomicOp egress",
            Gap::RequesterConventional => "is conventional PCI and cannot issue AtomicOps",
            Gap::RequesterDisabled => "has AtomicOp requests disabled (PCI_EXP_DEVCTL2_ATOMIC_REQ)",
        }
    }
}

/// Decides whether AtomicOps from `requester` reach `completer` through
/// `path` (the switch ports between them, any order). Returns the first
/// missing link: completer, then the ports in `path` order, then the
/// requester.
pub fn check(
    requester: &Function,
    completer: &Function,
    path: impl IntoIterator<Item = Port>,
) -> Result<(), Gap> {
    if !completer.pcie || completer.devcap2 & COMPLETER_NEEDS != COMPLETER_NEEDS {
        return Err(Gap::Completer);
    }
    for (i, port) in path.into_iter().enumerate() {
        if !port.function.pcie || port.function.devcap2 & DEVCAP2_ATOMIC_ROUTE == 0 {
            return Err(Gap::Routing(i));
        }
        if port.egress && port.function.devctl2 & DEVCTL2_ATOMIC_EGRESS_BLOCK != 0 {
            return Err(Gap::EgressBlocked(i));
        }
    }
    if !requester.pcie {
        return Err(Gap::RequesterConventional);
    }
    if requester.devctl2 & DEVCTL2_ATOMIC_REQ == 0 {
        return Err(Gap::RequesterDisabled);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `PCI_EXP_DEVCAP2_ATOMIC_COMP128`: not needed, not in the way.
    const DEVCAP2_ATOMIC_COMP128: u32 = 0x0000_0200;

    /// A conventional PCI function (or bridge): no PCI Express capability.
    const CONVENTIONAL: Function = Function {
        pcie: false,
        devcap2: 0,
        devctl2: 0,
    };

    const REQ: Function = Function {
        pcie: true,
        devcap2: 0,
        devctl2: DEVCTL2_ATOMIC_REQ,
    };
    const COMP: Function = Function {
        pcie: true,
        devcap2: COMPLETER_NEEDS,
        devctl2: 0,
    };
    const ROUTES: Function = Function {
        pcie: true,
        devcap2: DEVCAP2_ATOMIC_ROUTE,
        devctl2: 0,
    };

    fn port(function: Function, egress: bool) -> Port {
        Port { function, egress }
    }

    /// A switch: the requester's downstream port (ingress), the
    /// completer's downstream port (egress).
    fn switch() -> [Port; 2] {
        [port(ROUTES, false), port(ROUTES, true)]
    }

    #[test]
    fn everything_in_place_is_accepted() {
        assert_eq!(check(&REQ, &COMP, switch()), Ok(()));
        // Two levels: up through a lower switch's upstream port (egress).
        let deep = [
            port(ROUTES, false),
            port(ROUTES, true),
            port(ROUTES, false),
            port(ROUTES, true),
        ];
        assert_eq!(check(&REQ, &COMP, deep), Ok(()));
        // Directly under one bridge: no port between them.
        assert_eq!(check(&REQ, &COMP, []), Ok(()));
    }

    #[test]
    fn the_completer_needs_32_and_64_bit_completion() {
        for caps in [
            0,
            DEVCAP2_ATOMIC_COMP32,
            DEVCAP2_ATOMIC_COMP64,
            DEVCAP2_ATOMIC_COMP128,
            DEVCAP2_ATOMIC_COMP32 | DEVCAP2_ATOMIC_COMP128,
            DEVCAP2_ATOMIC_ROUTE,
        ] {
            let c = Function {
                devcap2: caps,
                ..COMP
            };
            assert_eq!(check(&REQ, &c, switch()), Err(Gap::Completer), "{caps:#x}");
        }
        let all = Function {
            devcap2: COMPLETER_NEEDS | DEVCAP2_ATOMIC_COMP128,
            ..COMP
        };
        assert_eq!(check(&REQ, &all, switch()), Ok(()));
        assert_eq!(check(&REQ, &CONVENTIONAL, switch()), Err(Gap::Completer));
    }

    #[test]
    fn every_port_must_route() {
        for i in 0..2 {
            let mut p = switch();
            p[i].function.devcap2 = 0;
            assert_eq!(check(&REQ, &COMP, p), Err(Gap::Routing(i)));
            let mut p = switch();
            p[i].function = CONVENTIONAL;
            assert_eq!(check(&REQ, &COMP, p), Err(Gap::Routing(i)));
        }
    }

    #[test]
    fn only_egress_ports_may_not_block() {
        let blocking = Function {
            devctl2: DEVCTL2_ATOMIC_EGRESS_BLOCK,
            ..ROUTES
        };
        // Ingress side: the bit does not apply.
        let p = [port(blocking, false), port(ROUTES, true)];
        assert_eq!(check(&REQ, &COMP, p), Ok(()));
        let p = [port(ROUTES, false), port(blocking, true)];
        assert_eq!(check(&REQ, &COMP, p), Err(Gap::EgressBlocked(1)));
    }

    #[test]
    fn the_requester_must_be_pcie_and_enabled() {
        assert_eq!(
            check(&CONVENTIONAL, &COMP, switch()),
            Err(Gap::RequesterConventional)
        );
        let off = Function { devctl2: 0, ..REQ };
        assert_eq!(check(&off, &COMP, switch()), Err(Gap::RequesterDisabled));
    }

    /// Every combination of the seven facts: the verdict is accepted
    /// exactly when all hold, and otherwise names the first missing one
    /// in the documented order.
    #[test]
    fn table_over_all_combinations() {
        for bits in 0u32..(1 << 7) {
            let has = |b: u32| bits & (1 << b) != 0;
            let completer = Function {
                devcap2: if has(0) {
                    COMPLETER_NEEDS
                } else {
                    DEVCAP2_ATOMIC_COMP32
                },
                ..COMP
            };
            let ingress = Function {
                devcap2: if has(1) { DEVCAP2_ATOMIC_ROUTE } else { 0 },
                devctl2: if has(2) {
                    0
                } else {
                    DEVCTL2_ATOMIC_EGRESS_BLOCK
                },
                pcie: true,
            };
            let egress = Function {
                devcap2: if has(3) { DEVCAP2_ATOMIC_ROUTE } else { 0 },
                devctl2: if has(4) {
                    0
                } else {
                    DEVCTL2_ATOMIC_EGRESS_BLOCK
                },
                pcie: true,
            };
            let requester = Function {
                pcie: has(5),
                devcap2: 0,
                devctl2: if has(6) { DEVCTL2_ATOMIC_REQ } else { 0 },
            };
            let path = [port(ingress, false), port(egress, true)];
            let expected = if !has(0) {
                Err(Gap::Completer)
            } else if !has(1) {
                Err(Gap::Routing(0))
            } else if !has(3) {
                Err(Gap::Routing(1))
            } else if !has(4) {
                Err(Gap::EgressBlocked(1))
            } else if !has(5) {
                Err(Gap::RequesterConventional)
            } else if !has(6) {
                Err(Gap::RequesterDisabled)
            } else {
                Ok(())
            };
            assert_eq!(check(&requester, &completer, path), expected, "{bits:#09b}");
        }
    }

    #[test]
    fn gaps_map_to_their_reasons() {
        assert_eq!(Gap::Completer.reason(), Reason::AtomicCompleter);
        assert_eq!(Gap::Routing(3).reason(), Reason::AtomicRouting);
        assert_eq!(Gap::Routing(3).port(), Some(3));
        assert_eq!(Gap::EgressBlocked(1).reason(), Reason::AtomicEgressBlocked);
        assert_eq!(Gap::RequesterConventional.reason(), Reason::AtomicRequester);
        assert_eq!(Gap::RequesterDisabled.reason(), Reason::AtomicRequester);
        assert_eq!(Gap::RequesterDisabled.port(), None);
    }
}
