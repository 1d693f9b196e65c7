/* SPDX-License-Identifier: GPL-2.0 */
/* Input of the test importer's bindgen run (see Kbuild). */
#include <linux/dma-mapping.h>
#include <linux/hmm.h>
#include <linux/mm.h>
#include <linux/mmu_notifier.h>

#include "importer_shim.h"
/* The ioctl ABI, shared with the C tests and p2pctl. */
#include "p2pmap_importer_consts.h"

const unsigned long P2PMAP_HMM_PFN_VALID = HMM_PFN_VALID;
const unsigned long P2PMAP_HMM_PFN_REQ_FAULT = HMM_PFN_REQ_FAULT;
const unsigned long P2PMAP_HMM_PFN_REQ_WRITE = HMM_PFN_REQ_WRITE;
