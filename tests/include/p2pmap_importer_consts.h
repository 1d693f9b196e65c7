/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * The importer's ABI for bindgen, which makes the Rust definitions of the
 * importer (tests/importer, in its Kbuild) and of p2pctl (its build.rs)
 * from p2pmap_importer.h, the one copy of the ABI: the header itself, plus
 * what bindgen cannot evaluate from its macros (the ioctl numbers, built
 * with sizeof) as constants.
 */
#ifndef _P2PMAP_IMPORTER_CONSTS_H
#define _P2PMAP_IMPORTER_CONSTS_H

#include "p2pmap_importer.h"

const __u32 P2PMAP_IOCTL_MAP = P2PMAP_IOC_MAP;
const __u32 P2PMAP_IOCTL_READ = P2PMAP_IOC_READ;
const __u32 P2PMAP_IOCTL_WRITE = P2PMAP_IOC_WRITE;
const __u32 P2PMAP_IOCTL_STATUS = P2PMAP_IOC_STATUS;
const __u32 P2PMAP_IOCTL_UNMAP = P2PMAP_IOC_UNMAP;
const __u32 P2PMAP_IOCTL_UNMAP_AGAIN = P2PMAP_IOC_UNMAP_AGAIN;
const __u32 P2PMAP_IOCTL_INJECT_TIMEOUT = P2PMAP_IOC_INJECT_TIMEOUT;
const __u32 P2PMAP_IOCTL_FUZZ_DEVICE_MAP = P2PMAP_IOC_FUZZ_DEVICE_MAP;
const __u32 P2PMAP_IOCTL_TIME_DEVICE_MAP = P2PMAP_IOC_TIME_DEVICE_MAP;
const __u32 P2PMAP_IOCTL_MAP_PIN = P2PMAP_IOC_MAP_PIN;
const __u32 P2PMAP_IOCTL_PIN_FD = P2PMAP_IOC_PIN_FD;
const __u32 P2PMAP_IOCTL_IMPORT = P2PMAP_IOC_IMPORT;

#endif /* _P2PMAP_IMPORTER_CONSTS_H */
