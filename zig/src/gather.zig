//! Gather writes and scatter reads over lists of descriptors. The whole list
//! comes down in one call as packed {region, offset, length} entries; each is
//! resolved against the region table before any byte moves.
const std = @import("std");
const builtin = @import("builtin");
const errno = @import("errno.zig");
const Errno = errno.Errno;
const regions = @import("regions.zig");
const guard = @import("guard.zig");
const mappings = @import("mapping.zig");
const stream_sockets = @import("stream_sockets.zig");
const slices = @import("slices.zig");

/// One entry of the packed list, 16 bytes, as `src/gather.ts` writes it (DESCRIPTOR_BYTES there). A chunk
/// longer than `entry_bytes_max` comes as several entries, so no length ever wraps at 2^32.
pub const Descriptor = extern struct {
    region: u32,
    offset_low: u32,
    offset_high: u32,
    length: u32,

    fn offset(d: Descriptor) u64 {
        return (@as(u64, d.offset_high) << 32) | d.offset_low;
    }
};

comptime {
    std.debug.assert(@sizeOf(Descriptor) == 16);
    std.debug.assert(@alignOf(Descriptor) == 4);
}

/// `region` of an entry whose offset is into the staging buffer passed with
/// the call (small plain Uint8Arrays are copied there by JS).
pub const staging_region: u32 = 0;
/// `region` of an entry whose offset is an address the runtime gave for a
/// live JS buffer, used only within the synchronous call that carries it.
pub const address_region: u32 = 0xFFFF_FFFF;

/// Limit: iovecs per system call (IOV_MAX on Linux and macOS).
pub const iov_count_max = 1024;
/// Limit: bytes per system call; Linux moves at most this much in one call.
pub const call_bytes_max: u64 = 0x7fff_f000;
/// Limit: bytes one descriptor names (JS splits longer chunks): one iovec never exceeds a call's worth.
pub const entry_bytes_max: u32 = @intCast(call_bytes_max);

/// `splice`: the memory is lent to a pipe (vmsplice): the pipe holds the pages themselves until its reader
/// takes the bytes, so they must stay unchanged until then (Linux; ENOSYS elsewhere).
pub const Direction = enum { write, read, splice };

/// Moves the bytes the descriptors name, in order, with as many system calls
/// as it takes (at most `calls_max`, 0 meaning no limit). A short write is
/// resumed where it stopped, EINTR is retried, and EAGAIN after some progress
/// returns that progress. A read stops at the first short read or end of file.
/// `done` always holds the bytes moved, also when an error is returned.
pub fn transfer(
    comptime direction: Direction,
    fd: i32,
    descriptors: []const Descriptor,
    staging: []u8,
    calls_max: u32,
    done: *u64,
) Errno!void {
    // Every value from JS is checked explicitly below; the implicit checks of
    // ReleaseSafe cost as much per entry as the kernel's own work (measured:
    // 11.3 ns an entry with them, 4.8 ns for the bare writev).
    @setRuntimeSafety(false);
    done.* = 0;
    var iov: [iov_count_max]std.posix.iovec = undefined;
    // Check every entry before any byte moves; the same pass fills the first batch.
    var resolver: regions.Resolver = .{};
    var batch: Batch = .{};
    var open = true;
    // Off a JS thread (Deno's non-blocking calls, Bun's worker) the call waits in the kernel while its JS
    // thread goes on, and may unmap what the descriptors name (a mapping, a ring): each region is held until
    // the call returns, so the kernel never reads or writes memory that is gone or mapped anew.
    const pin = regions.currentThread() == 0;
    var pinned: usize = 0;
    var index: usize = 0; // first descriptor not wholly moved
    var skip: u64 = 0; // bytes of descriptors[index] already moved
    var calls: u32 = 0;
    // On a thread that asked for slices (Bun's worker), a call on a blocking descriptor is cut at the end of
    // each slice and goes on where it stopped when called again with the same list (slices.zig): its regions
    // stay pinned, and its addresses resolved, in between.
    const sliced = pin and slices.wanted() and slices.blocking(fd);
    var kept = false; // suspended: the pins stay for the call that goes on
    defer if (pin and !kept) unpin(descriptors[0..pinned]);
    const resumed = if (suspended) |s| s.fd == fd and s.list == @intFromPtr(descriptors.ptr) and
        s.count == descriptors.len and s.staging == @intFromPtr(staging.ptr) and s.direction == direction else false;
    if (resumed and sliced) {
        const s = suspended.?;
        resolver = s.resolver;
        index = s.index;
        skip = s.skip;
        calls = s.calls;
        done.* = s.done;
        pinned = s.pinned;
    } else {
        // A call suspended and never resumed (its thread was stopped in between) keeps its pins: its list may
        // be gone, so nothing can tell which regions they were. Only a terminated Worker leaves one.
        for (descriptors, 0..) |d, i| {
            if (d.length > entry_bytes_max) return error.INVAL;
            if (pin and pinsRegion(descriptors, i)) regions.retain(d.region) catch return error.FAULT;
            pinned = i + 1;
            const base = try address(&resolver, d, staging);
            if (open) open = batch.add(&iov, base, d.length);
        }
    }
    suspended = null;
    var slice: slices.Slice = if (sliced) slices.Slice.start() else .{};
    defer slice.stop();
    const cut = struct {
        /// The slice ended: remember where the call stopped, keep its pins, and tell the caller to call again.
        fn here(state: Suspended, keep: *bool) Errno {
            suspended = state;
            keep.* = true;
            return error.INTR;
        }
    };

    while (index < descriptors.len) {
        if (calls_max != 0 and calls == calls_max) return;
        if (batch.count == 0) {
            var i = index;
            while (i < descriptors.len and batch.bytes < call_bytes_max) : (i += 1) {
                const d = descriptors[i];
                const from = if (i == index) skip else 0;
                const len = @min(d.length - from, call_bytes_max - batch.bytes);
                const base = (try address(&resolver, d, staging)) + from; // checked, unless a call went on after a cut
                if (!batch.add(&iov, base, len)) break;
            }
            if (batch.bytes == 0) return; // only empty entries were left
        }
        const count = batch.count;
        const batch_bytes = batch.bytes;
        batch = .{};

        const rc = switch (direction) {
            .write => if (stream_sockets.isMarked(fd)) sendNoSignal(fd, iov[0..count]) else std.c.writev(fd, @ptrCast(&iov), @intCast(count)),
            .read => std.c.readv(fd, &iov, @intCast(count)),
            .splice => vmsplice(fd, iov[0..count]),
        };
        if (rc < 0) {
            const err = errno.last();
            if (err == error.INTR) {
                if (!slice.active()) continue;
                return cut.here(.{ .fd = fd, .list = @intFromPtr(descriptors.ptr), .count = descriptors.len, .staging = @intFromPtr(staging.ptr), .direction = direction, .resolver = resolver, .index = index, .skip = skip, .calls = calls, .done = done.*, .pinned = pinned }, &kept);
            }
            if (err == error.NOTSOCK and direction == .write and stream_sockets.isMarked(fd)) {
                stream_sockets.forget(fd); // the number was closed elsewhere and now names a pipe or file
                continue;
            }
            if (err == error.AGAIN and done.* > 0) return;
            // Nothing moved in this call: the kernel faulted on its first bytes. A file mapping's lost page
            // (the file was cut under it) says why, as an access from JS would.
            if (err == error.FAULT) return guard.explainFault(@intFromPtr(iov[0].base)) orelse err;
            return err;
        }
        calls += 1;
        const moved: u64 = @intCast(rc);
        done.* += moved;
        if (moved == 0) return; // end of file, or a zero-length write: never spin
        advance(descriptors, &index, &skip, moved);
        if (direction == .read and moved < batch_bytes) return;
        if (slice.active() and moved < batch_bytes and index < descriptors.len) { // cut short: its slice ended
            return cut.here(.{ .fd = fd, .list = @intFromPtr(descriptors.ptr), .count = descriptors.len, .staging = @intFromPtr(staging.ptr), .direction = direction, .resolver = resolver, .index = index, .skip = skip, .calls = calls, .done = done.*, .pinned = pinned }, &kept);
        }
    }
}

/// Where a sliced call stopped (see `transfer`), on this thread, until it is called again.
const Suspended = struct {
    fd: i32,
    list: usize,
    count: usize,
    staging: usize,
    direction: Direction,
    resolver: regions.Resolver,
    index: usize,
    skip: u64,
    calls: u32,
    done: u64,
    pinned: usize,
};
threadlocal var suspended: ?Suspended = null;

/// Whether descriptor `i` holds its region for the call: a region's first descriptor of a run (one hold a run).
fn pinsRegion(descriptors: []const Descriptor, i: usize) bool {
    const region = descriptors[i].region;
    if (region == staging_region or region == address_region) return false;
    return i == 0 or descriptors[i - 1].region != region;
}

/// Lets go of what `transfer` held, the last holder unmapping what its owner let go of meanwhile.
fn unpin(descriptors: []const Descriptor) void {
    for (descriptors, 0..) |d, i| {
        if (pinsRegion(descriptors, i)) mappings.releaseView(d.region) catch {};
    }
}

/// The iovecs of one system call. Entries whose bytes follow on in memory (slices of one page, a run of
/// pool pages, consecutive staged arrays) share one iovec: less work for the kernel, more entries a call.
const Batch = struct {
    count: usize = 0,
    bytes: u64 = 0,

    /// Adds `len` bytes at `base`; false (nothing added) when the call is full.
    fn add(b: *Batch, iov: *[iov_count_max]std.posix.iovec, base: [*]u8, len: u64) bool {
        if (len == 0) return true; // an empty entry: nothing to send, and no iovec spent on it
        if (b.bytes + len > call_bytes_max) return false;
        if (b.count > 0 and @intFromPtr(iov[b.count - 1].base) + iov[b.count - 1].len == @intFromPtr(base)) {
            iov[b.count - 1].len += @intCast(len);
        } else {
            if (b.count == iov_count_max) return false;
            iov[b.count] = .{ .base = base, .len = @intCast(len) };
            b.count += 1;
        }
        b.bytes += len;
        return true;
    }
};

/// writev to a stream socket with MSG_NOSIGNAL: a peer that is gone is EPIPE, never SIGPIPE (see stream_sockets).
fn sendNoSignal(fd: i32, iov: []const std.posix.iovec) isize {
    if (builtin.os.tag != .linux) return std.c.writev(fd, @ptrCast(iov.ptr), @intCast(iov.len));
    const message: std.c.msghdr_const = .{
        .name = null,
        .namelen = 0,
        .iov = @ptrCast(iov.ptr),
        .iovlen = @intCast(iov.len),
        .control = null,
        .controllen = 0,
        .flags = 0,
    };
    return std.c.sendmsg(fd, &message, std.os.linux.MSG.NOSIGNAL);
}

/// vmsplice with the libc calling convention of writev (-1 and errno on failure).
fn vmsplice(fd: i32, iov: []const std.posix.iovec) isize {
    if (builtin.os.tag != .linux) {
        std.c._errno().* = @intFromEnum(std.posix.E.NOSYS);
        return -1;
    }
    const linux = std.os.linux;
    // vmsplice ignores the pipe's O_NONBLOCK: without SPLICE_F_NONBLOCK it waits on a full non-blocking pipe.
    const SPLICE_F_NONBLOCK: usize = 2;
    const non_blocking = std.c.fcntl(fd, std.c.F.GETFL) & @as(c_int, @bitCast(std.c.O{ .NONBLOCK = true })) != 0;
    const flags: usize = if (non_blocking) SPLICE_F_NONBLOCK else 0;
    const rc = linux.syscall4(.vmsplice, @bitCast(@as(isize, fd)), @intFromPtr(iov.ptr), iov.len, flags);
    const e = linux.E.init(rc);
    if (e == .SUCCESS) return @bitCast(rc);
    std.c._errno().* = @intFromEnum(e);
    return -1;
}

fn advance(descriptors: []const Descriptor, index: *usize, skip: *u64, moved: u64) void {
    var left = moved;
    // The kernel never reports more bytes than the iovecs held, so index stays in range.
    while (left > 0) {
        const remaining = descriptors[index.*].length - skip.*;
        if (left < remaining) {
            skip.* += left;
            return;
        }
        left -= remaining;
        index.* += 1;
        skip.* = 0;
    }
}

inline fn address(resolver: *regions.Resolver, d: Descriptor, staging: []u8) Errno![*]u8 {
    return switch (d.region) {
        staging_region => {
            const off = d.offset();
            if (off > staging.len or d.length > staging.len - off) return error.FAULT;
            return staging.ptr + off;
        },
        address_region => {
            const addr = d.offset();
            if (addr == 0 or addr > @as(u64, std.math.maxInt(usize)) - d.length) return error.FAULT;
            return @ptrFromInt(addr);
        },
        else => resolver.resolve(d.region, d.offset(), d.length),
    };
}

/// Copies `length` bytes from `bytes` (a JS typed array's memory, passed by the runtime for this call only)
/// to `staging[at..]`: small plain arrays are gathered this way, raw bytes whatever the array's element type.
/// `length` comes from the intrinsic byteLength getter, read with no user code run since; the staging
/// bounds are checked here. Returns `at + length`, where the next copy goes.
pub fn stage(staging: []u8, at: u64, bytes: ?[*]const u8, length: u64) Errno!u64 {
    if (at > staging.len or length > staging.len - at) return error.FAULT;
    if (length == 0) return at;
    const from = bytes orelse return error.FAULT;
    @memcpy(staging[@intCast(at)..][0..@intCast(length)], from[0..@intCast(length)]);
    return at + length;
}

fn stagingEntry(offset: u32, length: u32) Descriptor {
    return .{ .region = staging_region, .offset_low = offset, .offset_high = 0, .length = length };
}

test "gather write through a pipe keeps order across more entries than IOV_MAX" {
    const fds = try std.posix.pipe();
    defer std.posix.close(fds[0]);
    defer std.posix.close(fds[1]);
    var staging: [3000]u8 = undefined;
    for (&staging, 0..) |*b, i| b.* = @truncate(i);
    var list: [3000]Descriptor = undefined;
    for (&list, 0..) |*d, i| d.* = stagingEntry(@intCast(i), 1);
    var done: u64 = 0;
    try transfer(.write, fds[1], &list, &staging, 0, &done);
    try std.testing.expectEqual(@as(u64, 3000), done);
    var back: [3000]u8 = undefined;
    try std.testing.expectEqual(@as(usize, 3000), try std.posix.read(fds[0], &back));
    try std.testing.expectEqualSlices(u8, &staging, &back);
}

test "a number marked a socket that now names a pipe is written by writev, and its mark forgotten" {
    const fds = try std.posix.pipe();
    defer std.posix.close(fds[0]);
    defer std.posix.close(fds[1]);
    stream_sockets.mark(fds[1]); // a socket closed elsewhere, its number reused
    var staging = [_]u8{ 1, 2, 3 };
    const list = [_]Descriptor{stagingEntry(0, 3)};
    var done: u64 = 0;
    try transfer(.write, fds[1], &list, &staging, 0, &done);
    try std.testing.expectEqual(@as(u64, 3), done);
    try std.testing.expect(!stream_sockets.isMarked(fds[1]));
    var back: [3]u8 = undefined;
    try std.testing.expectEqual(@as(usize, 3), try std.posix.read(fds[0], &back));
    try std.testing.expectEqualSlices(u8, &staging, &back);
}

test "one call at most when asked, and bad entries refused before any byte moves" {
    const fds = try std.posix.pipe();
    defer std.posix.close(fds[0]);
    defer std.posix.close(fds[1]);
    var staging = [_]u8{ 1, 2, 3, 4 };
    var done: u64 = 0;
    const bad = [_]Descriptor{ stagingEntry(0, 2), stagingEntry(3, 2) };
    try std.testing.expectError(error.FAULT, transfer(.write, fds[1], &bad, &staging, 0, &done));
    try std.testing.expectEqual(@as(u64, 0), done);
    const unknown = [_]Descriptor{.{ .region = 77, .offset_low = 0, .offset_high = 0, .length = 1 }};
    try std.testing.expectError(error.FAULT, transfer(.write, fds[1], &unknown, &staging, 0, &done));
    const good = [_]Descriptor{ stagingEntry(0, 2), stagingEntry(2, 0), stagingEntry(2, 2) };
    try transfer(.write, fds[1], &good, &staging, 1, &done);
    try std.testing.expectEqual(@as(u64, 4), done);
}

test "a list over a call's worth goes out in calls of at most call_bytes_max, all of it" {
    // /dev/null takes every byte without reading them: addresses far past real memory never fault.
    const fd = try std.posix.open("/dev/null", .{ .ACCMODE = .WRONLY }, 0);
    defer std.posix.close(fd);
    const base: u64 = 0x7000_0000_0000;
    const list = [_]Descriptor{
        .{ .region = address_region, .offset_low = 0, .offset_high = @intCast(base >> 32), .length = entry_bytes_max },
        .{ .region = address_region, .offset_low = entry_bytes_max, .offset_high = @intCast(base >> 32), .length = entry_bytes_max },
        .{ .region = address_region, .offset_low = 2 * entry_bytes_max, .offset_high = @intCast(base >> 32), .length = 16384 },
    };
    var done: u64 = 0;
    try transfer(.write, fd, &list, &.{}, 0, &done);
    try std.testing.expectEqual(2 * @as(u64, entry_bytes_max) + 16384, done);
}

test "entries that follow on in memory share an iovec: 3000 one-byte entries, one call" {
    const fds = try std.posix.pipe();
    defer std.posix.close(fds[0]);
    defer std.posix.close(fds[1]);
    var staging: [3000]u8 = undefined;
    for (&staging, 0..) |*b, i| b.* = @truncate(i * 7);
    var list: [3000]Descriptor = undefined;
    for (&list, 0..) |*d, i| d.* = stagingEntry(@intCast(i), 1);
    var done: u64 = 0;
    try transfer(.write, fds[1], &list, &staging, 1, &done); // at most one system call
    try std.testing.expectEqual(@as(u64, 3000), done);
    var back: [3000]u8 = undefined;
    _ = try std.posix.read(fds[0], &back);
    try std.testing.expectEqualSlices(u8, &staging, &back);
}

test "empty entries never end a write early, however many come first" {
    const fds = try std.posix.pipe();
    defer std.posix.close(fds[0]);
    defer std.posix.close(fds[1]);
    var staging = [_]u8{ 'a', 'b' } ++ [_]u8{0} ** (3 * iov_count_max);
    var list: [3 * iov_count_max]Descriptor = undefined;
    for (&list) |*d| d.* = stagingEntry(0, 0);
    list[0] = stagingEntry(0, 1);
    list[list.len - 1] = stagingEntry(1, 1);
    var done: u64 = 0;
    try transfer(.write, fds[1], &list, &staging, 0, &done);
    try std.testing.expectEqual(@as(u64, 2), done);
    var back: [2]u8 = undefined;
    _ = try std.posix.read(fds[0], &back);
    try std.testing.expectEqualStrings("ab", &back);
}

test "entries longer than a call's worth are refused before any byte moves" {
    var staging = [_]u8{0} ** 4;
    var done: u64 = 0;
    const long = [_]Descriptor{.{ .region = address_region, .offset_low = 4096, .offset_high = 0, .length = entry_bytes_max + 1 }};
    try std.testing.expectError(error.INVAL, transfer(.write, 1, &long, &staging, 0, &done));
    try std.testing.expectEqual(@as(u64, 0), done);
}

test "stage copies raw bytes within staging and refuses what does not fit" {
    var staging = [_]u8{0} ** 8;
    const from = [_]u8{ 1, 2, 3 };
    try std.testing.expectEqual(@as(u64, 5), try stage(&staging, 2, &from, 3));
    try std.testing.expectEqualSlices(u8, &.{ 0, 0, 1, 2, 3, 0, 0, 0 }, &staging);
    try std.testing.expectError(error.FAULT, stage(&staging, 6, &from, 3));
    try std.testing.expectError(error.FAULT, stage(&staging, 9, &from, 0));
    try std.testing.expectError(error.FAULT, stage(&staging, 0, null, 1));
    try std.testing.expectEqual(@as(u64, 8), try stage(&staging, 8, null, 0));
}

test "scatter read stops at end of file" {
    const fds = try std.posix.pipe();
    defer std.posix.close(fds[0]);
    _ = try std.posix.write(fds[1], "abcde");
    std.posix.close(fds[1]);
    var staging: [8]u8 = undefined;
    const list = [_]Descriptor{ stagingEntry(0, 3), stagingEntry(3, 5) };
    var done: u64 = 0;
    try transfer(.read, fds[0], &list, &staging, 0, &done);
    try std.testing.expectEqual(@as(u64, 5), done);
    try std.testing.expectEqualStrings("abcde", staging[0..5]);
    try transfer(.read, fds[0], &list, &staging, 0, &done);
    try std.testing.expectEqual(@as(u64, 0), done);
}

test "on a full non-blocking pipe, progress is returned and then EAGAIN, never a spin" {
    const fds = try std.posix.pipe2(.{ .NONBLOCK = true });
    defer std.posix.close(fds[0]);
    defer std.posix.close(fds[1]);
    var staging: [256 * 1024]u8 = undefined;
    @memset(&staging, 7);
    const list = [_]Descriptor{ stagingEntry(0, 128 * 1024), stagingEntry(128 * 1024, 128 * 1024) };
    var done: u64 = 0;
    try transfer(.write, fds[1], &list, &staging, 0, &done);
    try std.testing.expect(done > 0 and done < staging.len); // the pipe took what it holds
    try std.testing.expectError(error.AGAIN, transfer(.write, fds[1], &list, &staging, 0, &done));
    try std.testing.expectEqual(@as(u64, 0), done);
}

test "vmsplice lends pages: the pipe keeps their bytes when the memory gets fresh pages" {
    if (builtin.os.tag != .linux) return error.SkipZigTest;
    const mapping = @import("mapping.zig");
    const page = mapping.pageSize();
    const m = try mapping.mapAnonymous(page, false);
    defer mapping.unmap(m.region) catch {};
    const bytes: [*]u8 = @ptrFromInt(m.address);
    @memset(bytes[0..page], 'x');
    const fds = try std.posix.pipe();
    defer std.posix.close(fds[0]);
    defer std.posix.close(fds[1]);
    const list = [_]Descriptor{.{ .region = m.region, .offset_low = 0, .offset_high = 0, .length = @intCast(page) }};
    var done: u64 = 0;
    try transfer(.splice, fds[1], &list, &.{}, 0, &done);
    try std.testing.expectEqual(@as(u64, page), done);
    try mapping.replacePages(m.region, 0, page);
    bytes[0] = 'y'; // the fresh page, not the lent one
    var back: [1]u8 = undefined;
    _ = try std.posix.read(fds[0], &back);
    try std.testing.expectEqual(@as(u8, 'x'), back[0]);
}
