// SPDX-License-Identifier: GPL-2.0
/* The importer links its own copy of p2pmap's static-inline wrappers. */
#include "../../bindings/p2pmap_shim.c"
