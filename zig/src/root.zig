//! The C ABI of libpageio: one export block, every name `pageio_noun_verb`.
//! Each returns a double: >= 0 is the result, < 0 is -errno (see errno.zig).
//! Pointers from JS are typed-array buffers whose sizes come with them.
const std = @import("std");
const errno = @import("errno.zig");
const Result = errno.Result;
const regions = @import("regions.zig");
const file = @import("file.zig");
const mapping = @import("mapping.zig");
const gather = @import("gather.zig");
const kernel_move = @import("kernel_move.zig");
const guard = @import("guard.zig");
const channel = @import("channel.zig");
const ring = @import("ring.zig");

comptime {
    _ = @import("abi_check.zig"); // ffi/abi.ts against the declarations below: a mismatch fails the build
}
const poller = @import("poller.zig");
const socket = @import("socket.zig");
const beneath = @import("beneath.zig");
const share = @import("share.zig");
const owned = @import("owned.zig");
const slices = @import("slices.zig");
const behind = @import("behind.zig");
const stream_sockets = @import("stream_sockets.zig");

/// Bumped whenever a signature or meaning below changes; `ffi/symbols.ts`
/// carries the same number and the loader refuses a library that differs.
pub const abi_version = @import("build_options").abi_version_override orelse 3;

/// The version as text in the binary, so a cross-compiled library can be
/// checked without loading it (scripts/dist.mjs).
export const pageio_abi_marker = std.fmt.comptimePrint("pageio-abi-{d}", .{abi_version}).*;

export fn pageio_abi_version() Result {
    return abi_version;
}

export fn pageio_page_size() Result {
    return errno.result(mapping.pageSize());
}

/// Live regions (mappings and slabs): lets tests prove nothing leaks.
export fn pageio_region_count() Result {
    var count: u64 = 0;
    var id: u32 = 1;
    while (id <= regions.region_count_max) : (id += 1) {
        // Walks the table; only for tests and diagnostics, never a hot path.
        count += @intFromBool(regions.liveAt(id - 1));
    }
    return errno.result(count);
}

extern "c" fn strerror(code: c_int) [*:0]const u8;

/// 0, or the errno every use of `region` fails with since the SIGBUS guard put zeros into it: ENODATA (its
/// file was truncated), ENOSPC (no room for a page), EIO (a page could not be read).
export fn pageio_region_fault(region: u32) Result {
    const r = regions.lookup(region) catch |err| return errno.result(err);
    if (r.fault == .none) return 0;
    return @floatFromInt(@intFromEnum(errno.toE(r.fault.errno())));
}

/// SIGBUS faults the guard has absorbed in this process.
export fn pageio_fault_count() Result {
    return errno.result(guard.fault_count.load(.monotonic));
}

/// Writes errno `code`'s name, a space and the OS's text ("NOENT No such file
/// or directory") into `out`, cut to `out_len`; returns the length written.
export fn pageio_errno_name(code: i32, out: ?[*]u8, out_len: u32) Result {
    const e = std.meta.intToEnum(errno.E, code) catch return errno.result(error.INVAL);
    const name = std.enums.tagName(errno.E, e) orelse return errno.result(error.INVAL);
    const o = out orelse return errno.result(error.FAULT);
    if (out_len < name.len) return errno.result(error.RANGE);
    var written = std.fmt.bufPrint(o[0..out_len], "{s} {s}", .{ name, std.mem.span(strerror(code)) }) catch o[0..out_len];
    written.len = @min(written.len, out_len);
    return errno.result(written.len);
}

export fn pageio_open(path: ?[*]const u8, path_len: u32, mode: u32, flags: u32) Result {
    const p = path orelse return errno.result(error.FAULT);
    const m = std.meta.intToEnum(file.Mode, mode) catch return errno.result(error.INVAL);
    const fd = file.open(p[0..path_len], m, @bitCast(flags)) catch |err| return errno.result(err);
    return errno.result(@intCast(fd));
}

/// A close-on-exec duplicate of `fd`, owned by the calling JS thread as pageio_open's are.
export fn pageio_dup(fd: i32) Result {
    const dup = file.duplicate(fd) catch |err| return errno.result(err);
    owned.own(dup) catch {}; // only a terminated Worker's cleanup is lost: pageio_close still closes it
    return errno.result(@intCast(dup));
}

export fn pageio_close(fd: i32) Result {
    owned.disown(fd);
    stream_sockets.forget(fd);
    file.close(fd) catch |err| return errno.result(err);
    return 0;
}

/// out[0] = size in bytes, out[1] = file.Kind.
export fn pageio_fstat(fd: i32, out: ?*[2]f64) Result {
    const o = out orelse return errno.result(error.FAULT);
    const st = file.status(fd) catch |err| return errno.result(err);
    o.* = .{ @floatFromInt(st.size), @floatFromInt(@intFromEnum(st.kind)) };
    return 0;
}

/// A pipe (kind 0) or a unix socket pair (kind 1), close-on-exec, optionally non-blocking.
/// out[0], out[1] = the descriptors (a pipe's read end first).
export fn pageio_pair(kind: u32, non_blocking: u32, out: ?*[2]f64) Result {
    const o = out orelse return errno.result(error.FAULT);
    const k = std.meta.intToEnum(channel.PairKind, kind) catch return errno.result(error.INVAL);
    const pair = switch (k) {
        .pipe => channel.pipe(non_blocking != 0),
        .socket => channel.socketPair(non_blocking != 0),
    } catch |err| return errno.result(err);
    if (k == .socket) for (pair) |end| stream_sockets.mark(end);
    o.* = .{ @floatFromInt(pair[0]), @floatFromInt(pair[1]) };
    return 0;
}

/// Sets a pipe's capacity; returns the capacity the kernel chose.
export fn pageio_pipe_size(fd: i32, bytes: u32) Result {
    return errno.result(channel.setPipeSize(fd, bytes));
}

/// Sets a file's size (ftruncate).
export fn pageio_truncate(fd: i32, size: f64) Result {
    const n = errno.wholeNumber(size) catch |err| return errno.result(err);
    guard.quietWrites(); // a size past RLIMIT_FSIZE raises SIGXFSZ as a write does
    file.truncate(fd, n) catch |err| return errno.result(err);
    return 0;
}

/// A memfd of `size` zero bytes; returns its descriptor.
export fn pageio_memory_file(size: f64) Result {
    const n = errno.wholeNumber(size) catch |err| return errno.result(err);
    guard.quietWrites(); // sizing a memfd past RLIMIT_FSIZE raises SIGXFSZ, as for a file
    return errno.result(@intCast(file.memoryFile(n) catch |err| return errno.result(err)));
}

/// Bytes a shared ring of `slots` slots of `slot_size` bytes needs (its header included).
export fn pageio_ring_bytes(slots: u32, slot_size: u32) Result {
    return errno.result(if (ring.bytesFor(slots, slot_size, mapping.pageSize())) |need| need.total else |err| err);
}

/// Writes a new ring header into `region` (fresh zeroed shared memory).
export fn pageio_ring_init(region: u32, slots: u32, slot_size: u32) Result {
    ring.init(region, slots, slot_size, mapping.pageSize()) catch |err| return errno.result(err);
    return 0;
}

/// Claims `role` (0 producer, 1 consumer) of the ring in `region`. out = {slots, slot_size, data_offset}.
export fn pageio_ring_attach(region: u32, role: u32, out: ?*[3]f64) Result {
    const o = out orelse return errno.result(error.FAULT);
    const r = std.meta.intToEnum(ring.Role, role) catch return errno.result(error.INVAL);
    const g = ring.attach(region, r) catch |err| return errno.result(err);
    o.* = .{ @floatFromInt(g.slots), @floatFromInt(g.slot_size), @floatFromInt(g.data_offset) };
    return 0;
}

/// Closes `role`'s side and wakes every waiter on the ring.
export fn pageio_ring_close(region: u32, role: u32) Result {
    const r = std.meta.intToEnum(ring.Role, role) catch return errno.result(error.INVAL);
    ring.close(region, r) catch |err| return errno.result(err);
    return 0;
}

/// Producer: waits up to `timeout_ms` (0xFFFFFFFF: no limit) for a free slot; returns its index.
export fn pageio_ring_reserve(region: u32, timeout_ms: u32) Result {
    // A wait runs off the JS thread: it holds the mapping, so a Worker that ends meanwhile (its regions let
    // go by the thread's end) cannot unmap the ring under it.
    regions.retain(region) catch |err| return errno.result(err);
    defer mapping.releaseView(region) catch {};
    return errno.result(if (ring.reserve(region, timeout_ms)) |slot| slot else |err| err);
}

/// Producer: publishes reserved slot `slot` holding `length` bytes.
export fn pageio_ring_publish(region: u32, slot: u32, length: u32) Result {
    ring.publish(region, slot, length) catch |err| return errno.result(err);
    return 0;
}

/// Consumer: waits up to `timeout_ms` for a published slot; returns slot * 2^32 + length
/// (-ENODATA: the producer closed and all was received).
export fn pageio_ring_receive(region: u32, timeout_ms: u32) Result {
    regions.retain(region) catch |err| return errno.result(err); // as in reserve
    defer mapping.releaseView(region) catch {};
    return errno.result(ring.receive(region, timeout_ms));
}

/// Consumer: gives the oldest `count` received slots back.
export fn pageio_ring_release(region: u32, count: u32) Result {
    ring.release(region, count) catch |err| return errno.result(err);
    return 0;
}

/// Waits up to `timeout_ms` (0xFFFFFFFF: no limit) for `fd` to be readable (bytes, or its writers gone after
/// one came); returns 1, or 0 on timeout.
export fn pageio_wait_readable(fd: i32, timeout_ms: u32) Result {
    return errno.result(channel.waitReadable(fd, timeout_ms));
}

/// Fresh zeroed pages at `[offset, offset + length)` of a private anonymous region (pool pages still held by a
/// pipe they were lent to keep their old pages there).
export fn pageio_replace_pages(region: u32, offset: f64, length: f64) Result {
    const off = errno.wholeNumber(offset) catch |err| return errno.result(err);
    const len = errno.wholeNumber(length) catch |err| return errno.result(err);
    mapping.replacePages(region, off, len) catch |err| return errno.result(err);
    return 0;
}

/// 1 when a page over `[offset, offset + length)` of `region` is not its file's own page (a write made a
/// private copy, or the region is anonymous memory), else 0: such a span's bytes go from memory, not by a
/// kernel move of the file.
export fn pageio_region_changed(region: u32, offset: f64, length: f64) Result {
    const off = errno.wholeNumber(offset) catch |err| return errno.result(err);
    const len = errno.wholeNumber(length) catch |err| return errno.result(err);
    const yes = mapping.changed(region, off, len) catch |err| return errno.result(err);
    return if (yes) 1 else 0;
}

/// One more reference on `region` for an ArrayBuffer over [address, address + length), whose deallocator is
/// `pageio_view_release`; -EFAULT (nothing retained) when that span is not wholly inside the region.
export fn pageio_region_retain(region: u32, address: f64, length: f64) Result {
    viewSpan(region, address, length) catch |err| return errno.result(err);
    regions.retain(region) catch |err| return errno.result(err);
    return 0;
}

/// An ArrayBuffer that no runtime reports released is about to view [address, address + length) of `region`:
/// it will be retired, never unmapped; -EFAULT (nothing marked) when that span is not wholly inside it.
export fn pageio_region_viewed(region: u32, address: f64, length: f64) Result {
    viewSpan(region, address, length) catch |err| return errno.result(err);
    regions.markViewedUntracked(region) catch |err| return errno.result(err);
    return 0;
}

fn viewSpan(region: u32, address: f64, length: f64) errno.Errno!void {
    const at = try errno.wholeNumber(address);
    const len = try errno.wholeNumber(length);
    try regions.checkSpan(region, at, len);
}

/// The owner lets go of `region` while an untracked view may still reach it (a transferred ArrayBuffer):
/// the memory stays mapped for good (a file's pages become zeroed anonymous ones).
export fn pageio_retire(region: u32) Result {
    regions.markEscaped(region) catch |err| return errno.result(err);
    share.unmap(region) catch |err| return errno.result(err); // deferred while a Worker holds a share
    return 0;
}

/// Bytes kept mapped for good by retired regions in this process.
export fn pageio_retired_bytes() Result {
    return errno.result(regions.retired_bytes);
}

/// An ArrayBuffer deallocator (Bun's `JSTypedArrayBytesDeallocator`): the runtime freed a view's backing
/// store, wherever it had moved (transfer, structuredClone, postMessage); `context` is the region id.
export fn pageio_view_release(bytes: ?*anyopaque, context: ?*anyopaque) callconv(.C) void {
    _ = bytes;
    mapping.releaseView(@truncate(@intFromPtr(context))) catch {};
}

/// The address of `pageio_view_release`, to hand to the runtime as a deallocator.
export fn pageio_view_release_address() Result {
    return errno.result(@intFromPtr(&pageio_view_release));
}

var thread_key: std.c.pthread_key_t = undefined;
var thread_key_once = std.once(createThreadKey);
var thread_key_ok = false;

const DlInfo = extern struct { fname: ?[*:0]const u8, fbase: ?*anyopaque, sname: ?[*:0]const u8, saddr: ?*anyopaque };
extern "c" fn dladdr(address: *const anyopaque, info: *DlInfo) c_int;

fn createThreadKey() void {
    // The key's destructor is our code: pin the library so that no dlclose (a Worker's runtime unloading
    // it) can leave a thread to call into unmapped text when it ends.
    var info: DlInfo = undefined;
    if (dladdr(@ptrCast(&createThreadKey), &info) == 0) return;
    const path = info.fname orelse return;
    if (std.c.dlopen(path, .{ .NOW = true, .NOLOAD = true, .NODELETE = true }) == null) return;
    thread_key_ok = std.c.pthread_key_create(&thread_key, threadEnded) == .SUCCESS;
}

/// A JS thread that attached has ended (a Worker terminated): its heap will release nothing more.
fn threadEnded(value: ?*anyopaque) callconv(.C) void {
    regions.releaseThread(@intFromPtr(value), releaseOrphan);
    poller.closeThread(@intFromPtr(value)); // its epoll set and wake-up descriptor
    owned.closeThread(@intFromPtr(value)); // the files and sockets it opened and never closed
}

/// The owner's let-go of a region whose thread ended, as its unmap() would: deferred while shares hold it.
fn releaseOrphan(region: regions.Id) void {
    ring.closeAttached(region); // as its close() would: the peer and any wait still running learn it is gone
    share.unmap(region) catch {};
}

/// Marks the calling thread as a JS thread: the regions it maps are let go (as by their owner) when it
/// ends, as a terminated Worker's are.
export fn pageio_thread_attach() Result {
    thread_key_once.call();
    if (!thread_key_ok) return errno.result(error.AGAIN);
    const id = regions.attachThread();
    if (std.c.pthread_setspecific(thread_key, @ptrFromInt(id)) != 0) return errno.result(error.NOMEM);
    return 0;
}

/// The calling thread's blocking calls on pipes and sockets are cut into slices: EINTR at the end of one, and
/// the same call made again goes on where it stopped (Bun's worker, so that a terminated Worker's helper ends).
export fn pageio_thread_sliced() Result {
    slices.want();
    return 0;
}

/// `fd` (just opened through pageio) belongs to the calling JS thread: closed when that thread ends.
export fn pageio_fd_own(fd: i32) Result {
    owned.own(fd) catch |err| return errno.result(err);
    return 0;
}

/// Reads up to `length` bytes of `fd` at `offset` into `buffer` (pread); 0 at end of file.
export fn pageio_pread(fd: i32, buffer: ?[*]u8, length: u32, offset: f64) Result {
    const b = buffer orelse return errno.result(if (length == 0) 0 else error.FAULT);
    const off = errno.wholeNumber(offset) catch |err| return errno.result(err);
    return errno.result(file.readAt(fd, b[0..length], off));
}

/// Reads up to `length` bytes of `fd` at `offset` into `[at, at + length)` of `region` (pread), without a JS
/// view of it: a PageReader window's copy, filled as its heads need bytes, whatever became of its buffer.
export fn pageio_pread_region(fd: i32, region: u32, at: f64, length: u32, offset: f64) Result {
    const a = errno.wholeNumber(at) catch |err| return errno.result(err);
    const off = errno.wholeNumber(offset) catch |err| return errno.result(err);
    const into = regions.resolve(region, a, length) catch |err| return errno.result(err);
    return errno.result(file.readAt(fd, into[0..length], off));
}

/// Maps `length` bytes of `fd` from page-aligned `offset`. out[0] = address;
/// returns the region id.
export fn pageio_map_file(fd: i32, offset: f64, length: f64, options: u32, out: ?*[1]f64) Result {
    const o = out orelse return errno.result(error.FAULT);
    const off = errno.wholeNumber(offset) catch |err| return errno.result(err);
    const len = errno.wholeNumber(length) catch |err| return errno.result(err);
    const m = mapping.mapFile(fd, off, len, @bitCast(options)) catch |err| return errno.result(err);
    o.* = .{@floatFromInt(m.address)};
    return errno.result(m.region);
}

export fn pageio_map_anonymous(length: f64, shared: u32, out: ?*[1]f64) Result {
    const o = out orelse return errno.result(error.FAULT);
    const len = errno.wholeNumber(length) catch |err| return errno.result(err);
    const m = mapping.mapAnonymous(len, shared != 0) catch |err| return errno.result(err);
    o.* = .{@floatFromInt(m.address)};
    return errno.result(m.region);
}

export fn pageio_unmap(region: u32) Result {
    share.unmap(region) catch |err| return errno.result(err); // deferred while a Worker holds a share
    return 0;
}

/// A share of `[offset, offset + length)` of `region` for another JS thread of this process; an untaken
/// one outlives the owner's unmap by `grace_ms` at most.
export fn pageio_share(region: u32, offset: f64, length: f64, grace_ms: u32) Result {
    const off = errno.wholeNumber(offset) catch |err| return errno.result(err);
    const len = errno.wholeNumber(length) catch |err| return errno.result(err);
    const id = share.create(region, off, len, grace_ms) catch |err| return errno.result(err);
    return @floatFromInt(id);
}

/// Takes a pending share: its address in `out[0]`, its length as the result.
export fn pageio_share_take(id: u32, out: ?*[2]f64) Result {
    const o = out orelse return errno.result(error.FAULT);
    const taken = share.take(id) catch |err| return errno.result(err);
    o.* = .{ @floatFromInt(taken.address), @floatFromInt(taken.region) };
    return errno.result(taken.len);
}

export fn pageio_share_drop(id: u32) Result {
    share.drop(id) catch |err| return errno.result(err);
    return 0;
}

/// 1 while share `id` lives (pending or taken), else 0.
export fn pageio_share_live(id: u32) Result {
    return @floatFromInt(@intFromBool(share.live(id)));
}

/// Live shares in this process (tests).
export fn pageio_share_count() Result {
    return errno.result(share.count());
}

/// Cuts whole pages [offset, offset + length) of `region` loose from its file: private memory holding a copy
/// of their bytes, at the same address (a ring slot whose view was transferred away, before the slot is reused).
export fn pageio_privatize(region: u32, offset: f64, length: f64) Result {
    const off = errno.wholeNumber(offset) catch |err| return errno.result(err);
    const len = errno.wholeNumber(length) catch |err| return errno.result(err);
    mapping.privatize(region, off, len) catch |err| return errno.result(err);
    return 0;
}

export fn pageio_advise(region: u32, offset: f64, length: f64, advice: u32) Result {
    const off = errno.wholeNumber(offset) catch |err| return errno.result(err);
    const len = errno.wholeNumber(length) catch |err| return errno.result(err);
    const a = std.meta.intToEnum(mapping.Advice, advice) catch return errno.result(error.INVAL);
    mapping.advise(region, off, len, a) catch |err| return errno.result(err);
    return 0;
}

export fn pageio_sync(region: u32, offset: f64, length: f64) Result {
    const off = errno.wholeNumber(offset) catch |err| return errno.result(err);
    const len = errno.wholeNumber(length) catch |err| return errno.result(err);
    mapping.sync(region, off, len) catch |err| return errno.result(err);
    return 0;
}

/// Gather write of `count` descriptors (16 bytes each) from `list`. Returns
/// the bytes written; out[0] holds them also when an error is returned.
export fn pageio_writev(fd: i32, list: ?[*]const u8, list_len: u32, count: u32, staging: ?[*]u8, staging_len: u32, calls_max: u32, out: ?*[1]f64) Result {
    guard.quietWrites();
    return transfer(.write, fd, list, list_len, count, staging, staging_len, calls_max, out);
}

/// Scatter read, the twin of pageio_writev.
export fn pageio_readv(fd: i32, list: ?[*]const u8, list_len: u32, count: u32, staging: ?[*]u8, staging_len: u32, calls_max: u32, out: ?*[1]f64) Result {
    return transfer(.read, fd, list, list_len, count, staging, staging_len, calls_max, out);
}

/// Copies `length` bytes of a JS typed array into `staging[at..]` (a small chunk of a gather write);
/// returns `at + length`.
export fn pageio_stage(staging: ?[*]u8, staging_len: u32, at: u32, bytes: ?[*]const u8, length: u32) Result {
    const stage: []u8 = if (staging) |s| s[0..staging_len] else &.{};
    return errno.result(gather.stage(stage, at, bytes, length));
}

/// The address of a JS typed array's first byte, as the runtime passes it to a call: an FFI call's
/// pointer argument costs a few ns on both runtimes, where Deno's UnsafePointer.of costs ~0.3 µs.
export fn pageio_address(bytes: ?[*]const u8) Result {
    return errno.result(@intFromPtr(bytes));
}

/// Queues a gather write of `count` descriptors (pool or mapping regions) to the regular file `fd`, done by
/// the library's write-behind thread; the memory must stay as it is until pageio_behind_wait returns.
/// Returns the job's id; AGAIN when none can be queued now (write synchronously instead).
export fn pageio_behind_submit(fd: i32, list: ?[*]const u8, list_len: u32, count: u32) Result {
    if (@as(u64, count) * @sizeOf(gather.Descriptor) > list_len) return errno.result(error.FAULT);
    if (count == 0 or list == null) return errno.result(error.INVAL);
    const descriptors = @as([*]const gather.Descriptor, @alignCast(@ptrCast(list.?)))[0..count];
    const id = behind.submit(fd, descriptors) catch |err| return errno.result(err);
    return errno.result(id);
}

/// Waits until job `id` is written; returns its bytes written. On an error out[0] holds the bytes written
/// before it.
export fn pageio_behind_wait(id: u32, out: ?*[1]f64) Result {
    const o = out orelse return errno.result(error.FAULT);
    var done: u64 = 0;
    const written = behind.wait(id, &done) catch |err| {
        o.* = .{@floatFromInt(done)};
        return errno.result(err);
    };
    o.* = .{@floatFromInt(written)};
    return errno.result(written);
}

/// Lends the descriptors' memory to the pipe `fd` (vmsplice): as pageio_writev, but the pipe holds the pages
/// themselves until its reader takes the bytes.
export fn pageio_vmsplice(fd: i32, list: ?[*]const u8, list_len: u32, count: u32, staging: ?[*]u8, staging_len: u32, calls_max: u32, out: ?*[1]f64) Result {
    guard.quietWrites();
    return transfer(.splice, fd, list, list_len, count, staging, staging_len, calls_max, out);
}

/// Moves `length` bytes of `fd_in` from `offset_in` to `fd_out` inside the
/// kernel (kind: 0 copy_file_range, 1 sendfile). Returns the bytes moved;
/// out[0] holds them also when an error is returned.
export fn pageio_move(kind: u32, fd_in: i32, offset_in: f64, fd_out: i32, length: f64, out: ?*[1]f64) Result {
    guard.quietWrites();
    const o = out orelse return errno.result(error.FAULT);
    o.* = .{0};
    const k = std.meta.intToEnum(kernel_move.Kind, kind) catch return errno.result(error.INVAL);
    const offset = errno.wholeNumber(offset_in) catch |err| return errno.result(err);
    const len = errno.wholeNumber(length) catch |err| return errno.result(err);
    var done: u64 = 0;
    kernel_move.move(k, fd_in, offset, fd_out, len, &done) catch |err| {
        o.* = .{@floatFromInt(done)};
        return errno.result(err);
    };
    o.* = .{@floatFromInt(done)};
    return errno.result(done);
}

/// A readiness poller for one JS isolate; with a doorbell, its thread calls it when fds become ready (see
/// poller.zig). Returns the poller's id.
export fn pageio_poller_open(doorbell: ?poller.Doorbell) Result {
    return errno.result(if (poller.open(doorbell)) |id| id else |err| err);
}

/// Arms `fd` once for `interest` (1 read, 2 write); -EPERM for a regular file (always ready).
export fn pageio_poller_arm(id: u32, fd: i32, interest: u32) Result {
    poller.arm(id, fd, interest) catch |err| return errno.result(err);
    return 0;
}

/// Registers `fd` for good, edge-triggered (reading, writing, hang-up): each time it turns ready it is
/// reported, with no call per wait. Forget it before closing it. -EPERM: a regular file.
export fn pageio_poller_register(id: u32, fd: i32) Result {
    poller.register(id, fd) catch |err| return errno.result(err);
    return 0;
}

/// Drops `fd` from the poller (before it is closed).
export fn pageio_poller_forget(id: u32, fd: i32) Result {
    poller.forget(id, fd) catch |err| return errno.result(err);
    return 0;
}

/// Doorbell mode: takes up to `max` ready events {fd: i32, ready: u32} into `out` (queued, then what the kernel
/// has ready now); returns how many. After a non-zero count call it again (see poller.zig): the thread waits meanwhile.
export fn pageio_poller_drain(id: u32, out: ?[*]poller.Event, max: u32) Result {
    const o = out orelse return errno.result(error.FAULT);
    return errno.result(if (poller.drain(id, o[0..max])) |n| n else |err| err);
}

/// Call mode: waits up to `timeout_ms` (-1 no limit) for ready events, as pageio_poller_drain.
export fn pageio_poller_wait(id: u32, out: ?[*]poller.Event, max: u32, timeout_ms: i32) Result {
    const o = out orelse return errno.result(error.FAULT);
    return errno.result(if (poller.wait(id, o[0..max], timeout_ms)) |n| n else |err| err);
}

/// Doorbell mode: JS waits on something (1) or nothing (0); 1 back: drain now (on) or wait for the ring (off).
export fn pageio_poller_want(id: u32, on: u32) Result {
    return errno.result(if (poller.setWant(id, on != 0)) |n| n else |err| err);
}

/// Call mode: makes an outstanding pageio_poller_wait return.
export fn pageio_poller_wake(id: u32) Result {
    poller.wake(id) catch |err| return errno.result(err);
    return 0;
}

export fn pageio_poller_close(id: u32) Result {
    poller.close(id) catch |err| return errno.result(err);
    return 0;
}

/// How an async operation may treat `fd` (poller.Blocking): non-blocking, always ready (a regular file), may
/// wait for a peer (a pipe or socket someone else opened blocking), or a character device.
export fn pageio_fd_blocking(fd: i32) Result {
    return errno.result(if (poller.blocking(fd)) |b| @intFromEnum(b) else |err| err);
}

/// Without a poller: waits up to `timeout_ms` for one fd (poll(2)); returns its readiness bits, 0 on timeout.
export fn pageio_wait_fd(fd: i32, interest: u32, timeout_ms: i32) Result {
    return errno.result(if (poller.waitFd(fd, interest, timeout_ms)) |bits| bits else |err| err);
}

/// Polls `fd` on the caller's thread, without sleeping, for up to `max_ns`: the nanoseconds until it was ready
/// for `interest`, or -ETIMEDOUT.
export fn pageio_spin_fd(fd: i32, interest: u32, max_ns: u32) Result {
    return errno.result(if (poller.spinFd(fd, interest, max_ns)) |ns| ns else |err| err);
}

/// When fewer than `want` bytes wait in pipe or socket `fd`, sleeps once for `sleep_ns` (at most 100 µs) so
/// more can come; returns the bytes waiting (FIONREAD).
export fn pageio_settle_fd(fd: i32, want: u32, sleep_ns: u32) Result {
    return errno.result(if (poller.settleFd(fd, want, sleep_ns)) |n| n else |err| err);
}

/// A listening socket (transport 0 tcp, 1 unix) on `host`:`port` or the unix path `host`; flags bit 0 reuse_port.
/// Returns its descriptor (non-blocking, close-on-exec).
export fn pageio_socket_listen(transport: u32, host: ?[*]const u8, host_len: u32, port: u32, backlog: u32, flags: u32) Result {
    const h = host orelse return errno.result(error.FAULT);
    const t = std.meta.intToEnum(socket.Transport, transport) catch return errno.result(error.INVAL);
    return errno.result(@intCast(socket.listen(t, h[0..host_len], port, backlog, @bitCast(flags)) catch |err| return errno.result(err)));
}

/// The next waiting connection on listener `fd` (-EAGAIN: none yet).
export fn pageio_socket_accept(fd: i32) Result {
    const accepted = socket.accept(fd) catch |err| return errno.result(err);
    stream_sockets.mark(accepted);
    return errno.result(@intCast(accepted));
}

/// A socket connecting to `host`:`port` (or unix path). wait_ms 0: out[0] = 1 while the connect is in progress
/// (wait until writable, then pageio_socket_connect_result); else waits up to wait_ms for it.
export fn pageio_socket_connect(transport: u32, host: ?[*]const u8, host_len: u32, port: u32, wait_ms: u32, out: ?*[1]f64) Result {
    const h = host orelse return errno.result(error.FAULT);
    const o = out orelse return errno.result(error.FAULT);
    const t = std.meta.intToEnum(socket.Transport, transport) catch return errno.result(error.INVAL);
    var pending = false;
    const fd = socket.connect(t, h[0..host_len], port, wait_ms, &pending) catch |err| return errno.result(err);
    stream_sockets.mark(fd);
    o.* = .{@floatFromInt(@intFromBool(pending))};
    return errno.result(@intCast(fd));
}

/// How a pending connect ended: 0 connected, else -errno (SO_ERROR).
export fn pageio_socket_connect_result(fd: i32) Result {
    socket.connectResult(fd) catch |err| return errno.result(err);
    return 0;
}

/// Sets socket option `option` (socket.Option) to `value`.
export fn pageio_socket_set_option(fd: i32, option: u32, value: i32) Result {
    const o = std.meta.intToEnum(socket.Option, option) catch return errno.result(error.INVAL);
    socket.setOption(fd, o, value) catch |err| return errno.result(err);
    return 0;
}

/// Socket option `option` as 0 or 1.
export fn pageio_socket_get_option(fd: i32, option: u32) Result {
    const o = std.meta.intToEnum(socket.Option, option) catch return errno.result(error.INVAL);
    return errno.result(@as(u64, socket.getOption(fd, o) catch |err| return errno.result(err)));
}

/// Shuts down the read side (0), the write side (1) or both (2).
export fn pageio_socket_shutdown(fd: i32, how: u32) Result {
    const h = std.meta.intToEnum(socket.Shutdown, how) catch return errno.result(error.INVAL);
    socket.shutdown(fd, h) catch |err| return errno.result(err);
    return 0;
}

/// The socket's address (peer 0) or its peer's (peer 1) as text in `out`; info = {family, port}. Returns the
/// text's length.
export fn pageio_socket_address(fd: i32, peer: u32, out: ?[*]u8, out_len: u32, info: ?*[2]f64) Result {
    const o = out orelse return errno.result(error.FAULT);
    const i = info orelse return errno.result(error.FAULT);
    const named = socket.addressOf(fd, peer != 0, o[0..out_len]) catch |err| return errno.result(err);
    i.* = .{ @floatFromInt(@intFromEnum(named.family)), @floatFromInt(named.port) };
    return errno.result(named.text_len);
}

/// Sends `len` bytes of `bytes` on stream socket `fd` as far as it takes them now (-EAGAIN: none); flags bit 0
/// more (MSG_MORE: the body follows at once).
export fn pageio_socket_send(fd: i32, bytes: ?[*]const u8, len: u32, flags: u32) Result {
    const b = bytes orelse return errno.result(if (len == 0) 0 else error.FAULT);
    return errno.result(@intCast(socket.send(fd, b[0..len], @bitCast(flags)) catch |err| return errno.result(err)));
}

/// Takes over stream socket `fd` from elsewhere: duplicate 1 works on a close-on-exec copy (returned), 0 on
/// `fd` itself; either way non-blocking from now on.
export fn pageio_socket_adopt(fd: i32, duplicate: u32) Result {
    const taken_over_held = duplicate == 0 and owned.isOwned(fd);
    const own = socket.adopt(fd, duplicate != 0, taken_over_held) catch |err| return errno.result(err);
    stream_sockets.mark(own);
    return errno.result(@intCast(own));
}

/// Opens `path` read-only under directory `dir`, refusing any resolution that leaves it (-EXDEV, -ELOOP).
export fn pageio_open_beneath(dir: i32, path: ?[*]const u8, path_len: u32) Result {
    const p = path orelse return errno.result(error.FAULT);
    return errno.result(@intCast(beneath.open(dir, p[0..path_len]) catch |err| return errno.result(err)));
}

fn transfer(comptime direction: gather.Direction, fd: i32, list: ?[*]const u8, list_len: u32, count: u32, staging: ?[*]u8, staging_len: u32, calls_max: u32, out: ?*[1]f64) Result {
    const o = out orelse return errno.result(error.FAULT);
    o.* = .{0};
    if (@as(u64, count) * @sizeOf(gather.Descriptor) > list_len) return errno.result(error.FAULT);
    if (count > 0 and list == null) return errno.result(error.FAULT);
    const descriptors: []const gather.Descriptor = if (count == 0) &.{} else @as([*]const gather.Descriptor, @alignCast(@ptrCast(list.?)))[0..count];
    const stage: []u8 = if (staging) |s| s[0..staging_len] else &.{};
    var done: u64 = 0;
    gather.transfer(direction, fd, descriptors, stage, calls_max, &done) catch |err| {
        o.* = .{@floatFromInt(done)};
        return errno.result(err);
    };
    o.* = .{@floatFromInt(done)};
    return errno.result(done);
}

test {
    std.testing.refAllDecls(@This());
    _ = @import("abi_check.zig");
    _ = errno;
    _ = regions;
    _ = behind;
    _ = stream_sockets;
    _ = file;
    _ = mapping;
    _ = gather;
    _ = kernel_move;
    _ = guard;
    _ = channel;
    _ = ring;
    _ = poller;
    _ = owned;
    _ = slices;
    _ = socket;
    _ = beneath;
    _ = share;
}

test "pageio_pread_region reads into a region's range, and only inside it" {
    var tmp = std.testing.tmpDir(.{});
    defer tmp.cleanup();
    const f = try tmp.dir.createFile("src", .{ .read = true });
    defer f.close();
    try f.writeAll("abcdefgh");
    var out: [1]f64 = undefined;
    const region: u32 = @intFromFloat(pageio_map_anonymous(8192, 0, &out));
    defer _ = pageio_unmap(region);
    const base: [*]u8 = @ptrFromInt(@as(usize, @intFromFloat(out[0])));
    try std.testing.expectEqual(@as(f64, 5), pageio_pread_region(f.handle, region, 4096, 16, 3));
    try std.testing.expectEqualStrings("defgh", base[4096..4101]);
    try std.testing.expectEqual(@as(u8, 0), base[4095]);
    const fault: f64 = -@as(f64, @floatFromInt(@intFromEnum(errno.E.FAULT)));
    try std.testing.expectEqual(fault, pageio_pread_region(f.handle, region, 8190, 3, 0));
    try std.testing.expectEqual(fault, pageio_pread_region(f.handle, 12345, 0, 1, 0));
}

test "the exports refuse null and too-small inputs" {
    var out: [1]f64 = undefined;
    try std.testing.expect(pageio_writev(1, null, 0, 1, null, 0, 0, &out) < 0);
    try std.testing.expect(pageio_writev(1, null, 0, 0, null, 0, 0, null) < 0);
    try std.testing.expect(pageio_map_anonymous(std.math.nan(f64), 0, &out) < 0);
    try std.testing.expect(pageio_map_anonymous(-4096, 0, &out) < 0);
    try std.testing.expect(pageio_unmap(12345) < 0);
    var name: [16]u8 = undefined;
    try std.testing.expectEqual(@as(f64, 16), pageio_errno_name(@intFromEnum(errno.E.NOENT), &name, name.len));
    try std.testing.expectEqualStrings("NOENT No such fi", name[0..16]);
    try std.testing.expect(pageio_errno_name(2, &name, 2) < 0);
    try std.testing.expect(pageio_open(null, 0, 0, 0) < 0);
    try std.testing.expect(pageio_open("/", 1, 99, 0) < 0);
}
