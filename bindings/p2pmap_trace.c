// SPDX-License-Identifier: GPL-2.0
/*
 * p2pmap's trace events (p2pmap_trace.h): the tracepoints are static
 * inlines with a static key, which Rust cannot call; these wrappers can.
 * Each returns at once when its event is disabled.
 */
#define CREATE_TRACE_POINTS
#include "p2pmap_trace.h"

#include "p2pmap_shim.h"

bool p2pmap_trace_map_enabled(void)
{
	return trace_p2pmap_map_enabled() || trace_p2pmap_refuse_enabled();
}

bool p2pmap_trace_stage_enabled(void)
{
	return trace_p2pmap_stage_enabled();
}

void p2pmap_trace_map(struct device *importer, u32 sdev, u64 ino,
		      const void *inode, s64 pos, u64 pages, u32 flags,
		      const char *path, int path_len, int err, u64 ns)
{
	trace_p2pmap_map(importer, sdev, ino, inode, pos, pages, flags, path,
			 path_len, err, ns);
}

void p2pmap_trace_refuse(struct device *importer, u32 sdev, u64 ino,
			 const void *inode, s64 pos, u64 pages,
			 const char *reason, int reason_len, int err)
{
	trace_p2pmap_refuse(importer, sdev, ino, inode, pos, pages, reason,
			    reason_len, err);
}

void p2pmap_trace_stage(u32 sdev, u64 ino, const void *inode, s64 pos,
			u64 bytes, u32 mapped, u32 zeroed, u32 map_blocks,
			const char *reason, int reason_len, u64 ns)
{
	trace_p2pmap_stage(sdev, ino, inode, pos, bytes, mapped, zeroed,
			   map_blocks, reason, reason_len, ns);
}

void p2pmap_trace_revoke(const char *cause, int cause_len, const char *scope,
			 int scope_len, const void *inode, s64 start, s64 end,
			 u64 windows, u64 ns)
{
	trace_p2pmap_revoke(cause, cause_len, scope, scope_len, inode, start,
			    end, windows, ns);
}

void p2pmap_trace_unmap(struct device *importer, unsigned long start,
			unsigned long end, u64 pages, bool matched)
{
	trace_p2pmap_unmap(importer, start, end, pages, matched);
}
