/* SPDX-License-Identifier: GPL-2.0 */
/* Input of the test importer's bindgen run (see Kbuild). */
#include <linux/device_map_range.h>
#include <linux/mm.h>
#include <linux/mmu_notifier.h>

#include "importer_shim.h"
/* The ioctl ABI, shared with the C tests and p2pctl. */
#include "p2pmap_importer_consts.h"

/* The device_map() flags, as constants bindgen evaluates (not BIT()). */
const unsigned int IMPORTER_DEVICE_MAP_FLAG_PIN = DEVICE_MAP_FLAG_PIN;
const unsigned int IMPORTER_DEVICE_MAP_FLAG_WRITE = DEVICE_MAP_FLAG_WRITE;
const unsigned int IMPORTER_DEVICE_MAP_FLAG_SUPPORT_ATOMIC_OP = DEVICE_MAP_FLAG_SUPPORT_ATOMIC_OP;
