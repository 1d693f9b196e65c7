/* SPDX-License-Identifier: GPL-2.0 */
/*
 * p2pmap's trace events (TRACE_SYSTEM p2pmap), emitted through the
 * wrappers of p2pmap_trace.c, which Rust calls. A file is named by its
 * device and inode number where p2pmap holds it, and everywhere by the
 * (hashed) address of its inode, the key p2pmap's state uses: the events
 * of one file can be matched by either.
 *
 *   p2pmap_map      every device_map call: which path served it (fast:
 *                   staged windows; slow: staged now, -EAGAIN, retried;
 *                   refused), its errno and how long it took;
 *   p2pmap_refuse   a refusal and its reason (the debugfs counter's name);
 *   p2pmap_stage    a window staged (or not) by the slow path: bytes,
 *                   extents read and zero-filled, map_blocks calls;
 *   p2pmap_revoke   a revocation: cause, scope, windows revoked, and the
 *                   time until their importers were quiesced;
 *   p2pmap_unmap    every device_unmap call, and whether it matched.
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM p2pmap

#if !defined(_P2PMAP_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define _P2PMAP_TRACE_H

#include <linux/device.h>
#include <linux/kdev_t.h>
#include <linux/tracepoint.h>

TRACE_EVENT(p2pmap_map,
	TP_PROTO(struct device *importer, u32 sdev, u64 ino, const void *inode,
		 s64 pos, u64 pages, u32 flags, const char *path, int path_len,
		 int err, u64 ns),
	TP_ARGS(importer, sdev, ino, inode, pos, pages, flags, path, path_len,
		err, ns),
	TP_STRUCT__entry(
		__string(importer, dev_name(importer))
		__field(u32, sdev)
		__field(u64, ino)
		__field(const void *, inode)
		__field(s64, pos)
		__field(u64, pages)
		__field(u32, flags)
		__string_len(path, path, path_len)
		__field(int, err)
		__field(u64, ns)
	),
	TP_fast_assign(
		__assign_str(importer);
		__entry->sdev = sdev;
		__entry->ino = ino;
		__entry->inode = inode;
		__entry->pos = pos;
		__entry->pages = pages;
		__entry->flags = flags;
		__assign_str(path);
		__entry->err = err;
		__entry->ns = ns;
	),
	TP_printk("importer=%s dev=%u:%u ino=%llu inode=%p pos=%lld pages=%llu flags=%#x path=%s err=%d ns=%llu",
		  __get_str(importer), MAJOR(__entry->sdev), MINOR(__entry->sdev),
		  __entry->ino, __entry->inode, __entry->pos, __entry->pages,
		  __entry->flags, __get_str(path), __entry->err, __entry->ns)
);

TRACE_EVENT(p2pmap_refuse,
	TP_PROTO(struct device *importer, u32 sdev, u64 ino, const void *inode,
		 s64 pos, u64 pages, const char *reason, int reason_len, int err),
	TP_ARGS(importer, sdev, ino, inode, pos, pages, reason, reason_len, err),
	TP_STRUCT__entry(
		__string(importer, dev_name(importer))
		__field(u32, sdev)
		__field(u64, ino)
		__field(const void *, inode)
		__field(s64, pos)
		__field(u64, pages)
		__string_len(reason, reason, reason_len)
		__field(int, err)
	),
	TP_fast_assign(
		__assign_str(importer);
		__entry->sdev = sdev;
		__entry->ino = ino;
		__entry->inode = inode;
		__entry->pos = pos;
		__entry->pages = pages;
		__assign_str(reason);
		__entry->err = err;
	),
	TP_printk("importer=%s dev=%u:%u ino=%llu inode=%p pos=%lld pages=%llu reason=%s err=%d",
		  __get_str(importer), MAJOR(__entry->sdev), MINOR(__entry->sdev),
		  __entry->ino, __entry->inode, __entry->pos, __entry->pages,
		  __get_str(reason), __entry->err)
);

TRACE_EVENT(p2pmap_stage,
	TP_PROTO(u32 sdev, u64 ino, const void *inode, s64 pos, u64 bytes,
		 u32 mapped, u32 zeroed, u32 map_blocks, const char *reason,
		 int reason_len, u64 ns),
	TP_ARGS(sdev, ino, inode, pos, bytes, mapped, zeroed, map_blocks, reason,
		reason_len, ns),
	TP_STRUCT__entry(
		__field(u32, sdev)
		__field(u64, ino)
		__field(const void *, inode)
		__field(s64, pos)
		__field(u64, bytes)
		__field(u32, mapped)
		__field(u32, zeroed)
		__field(u32, map_blocks)
		__string_len(reason, reason, reason_len)
		__field(u64, ns)
	),
	TP_fast_assign(
		__entry->sdev = sdev;
		__entry->ino = ino;
		__entry->inode = inode;
		__entry->pos = pos;
		__entry->bytes = bytes;
		__entry->mapped = mapped;
		__entry->zeroed = zeroed;
		__entry->map_blocks = map_blocks;
		__assign_str(reason);
		__entry->ns = ns;
	),
	TP_printk("dev=%u:%u ino=%llu inode=%p pos=%lld bytes=%llu mapped_extents=%u zeroed_extents=%u map_blocks=%u result=%s ns=%llu",
		  MAJOR(__entry->sdev), MINOR(__entry->sdev), __entry->ino,
		  __entry->inode, __entry->pos, __entry->bytes, __entry->mapped,
		  __entry->zeroed, __entry->map_blocks, __get_str(reason),
		  __entry->ns)
);

TRACE_EVENT(p2pmap_revoke,
	TP_PROTO(const char *cause, int cause_len, const char *scope,
		 int scope_len, const void *inode, s64 start, s64 end,
		 u64 windows, u64 ns),
	TP_ARGS(cause, cause_len, scope, scope_len, inode, start, end, windows,
		ns),
	TP_STRUCT__entry(
		__string_len(cause, cause, cause_len)
		__string_len(scope, scope, scope_len)
		__field(const void *, inode)
		__field(s64, start)
		__field(s64, end)
		__field(u64, windows)
		__field(u64, ns)
	),
	TP_fast_assign(
		__assign_str(cause);
		__assign_str(scope);
		__entry->inode = inode;
		__entry->start = start;
		__entry->end = end;
		__entry->windows = windows;
		__entry->ns = ns;
	),
	TP_printk("cause=%s scope=%s inode=%p start=%lld end=%lld windows=%llu quiesce_ns=%llu",
		  __get_str(cause), __get_str(scope), __entry->inode,
		  __entry->start, __entry->end, __entry->windows, __entry->ns)
);

TRACE_EVENT(p2pmap_unmap,
	TP_PROTO(struct device *importer, unsigned long start, unsigned long end,
		 u64 pages, bool matched),
	TP_ARGS(importer, start, end, pages, matched),
	TP_STRUCT__entry(
		__string(importer, dev_name(importer))
		__field(unsigned long, start)
		__field(unsigned long, end)
		__field(u64, pages)
		__field(bool, matched)
	),
	TP_fast_assign(
		__assign_str(importer);
		__entry->start = start;
		__entry->end = end;
		__entry->pages = pages;
		__entry->matched = matched;
	),
	TP_printk("importer=%s start=%#lx end=%#lx pages=%llu matched=%d",
		  __get_str(importer), __entry->start, __entry->end,
		  __entry->pages, __entry->matched)
);

#endif /* _P2PMAP_TRACE_H */

/* This part must be outside the include guard. */
#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE p2pmap_trace
#include <trace/define_trace.h>
