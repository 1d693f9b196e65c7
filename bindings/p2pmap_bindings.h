/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Input of p2pmap's own bindgen run (see Kbuild): the kernel headers whose
 * items rust/bindings does not cover, plus constants that bindgen cannot
 * evaluate from macros (BIT()) and the static-inline wrappers of
 * p2pmap_shim.c.
 */
#include <linux/device_map.h>
#include <linux/exportfs.h>
#include <linux/exportfs_block.h>
#include <linux/filelock.h>
#include <linux/fs.h>
#include <linux/iomap.h>
#include <linux/mm.h>
#include <linux/mmu_notifier.h>
#include <linux/pci-p2pdma.h>

#include "p2pmap_shim.h"

const u32 P2PMAP_DEVICE_MAP_FLAG_PIN = DEVICE_MAP_FLAG_PIN;
const u32 P2PMAP_DEVICE_MAP_FLAG_WRITE = DEVICE_MAP_FLAG_WRITE;
const u32 P2PMAP_DEVICE_MAP_FLAG_SUPPORT_ATOMIC_OP = DEVICE_MAP_FLAG_SUPPORT_ATOMIC_OP;
const u32 P2PMAP_DEVICE_MAP_FLAGS_ALL = DEVICE_MAP_FLAGS_ALL;
const int P2PMAP_ATOMIC_PATH_MAX_PORTS = P2PMAP_ATOMIC_MAX_PORTS;
const int P2PMAP_WRITE_CHECK_OK = P2PMAP_WRITE_OK;
const int P2PMAP_WRITE_CHECK_FD_READ_ONLY = P2PMAP_WRITE_FD_READ_ONLY;
const int P2PMAP_WRITE_CHECK_IMMUTABLE = P2PMAP_WRITE_IMMUTABLE;
const int P2PMAP_WRITE_CHECK_APPEND_ONLY = P2PMAP_WRITE_APPEND_ONLY;
const int P2PMAP_WRITE_CHECK_FS_READ_ONLY = P2PMAP_WRITE_FS_READ_ONLY;
const int P2PMAP_WRITE_CHECK_FS_FROZEN = P2PMAP_WRITE_FS_FROZEN;
