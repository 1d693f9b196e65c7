// SPDX-License-Identifier: GPL-2.0
/* The importer links its own copy of p2pmap's static-inline wrappers. */
#include "../../bindings/p2pmap_shim.c"

#include <linux/build_bug.h>
#include <linux/mmu_notifier.h>

#include "../include/p2pmap_importer.h"

/* STATUS.revoked_by is 1 + enum mmu_notifier_event: the ABI names them. */
static_assert(P2PMAP_REVOKED_BY_UNMAP == 1 + MMU_NOTIFY_UNMAP);
static_assert(P2PMAP_REVOKED_BY_CLEAR == 1 + MMU_NOTIFY_CLEAR);
static_assert(P2PMAP_REVOKED_BY_PROTECTION_VMA == 1 + MMU_NOTIFY_PROTECTION_VMA);
static_assert(P2PMAP_REVOKED_BY_PROTECTION_PAGE == 1 + MMU_NOTIFY_PROTECTION_PAGE);
static_assert(P2PMAP_REVOKED_BY_SOFT_DIRTY == 1 + MMU_NOTIFY_SOFT_DIRTY);
static_assert(P2PMAP_REVOKED_BY_RELEASE == 1 + MMU_NOTIFY_RELEASE);
static_assert(P2PMAP_REVOKED_BY_MIGRATE == 1 + MMU_NOTIFY_MIGRATE);
static_assert(P2PMAP_REVOKED_BY_EXCLUSIVE == 1 + MMU_NOTIFY_EXCLUSIVE);
