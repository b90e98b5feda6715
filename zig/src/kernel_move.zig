//! Kernel-side moves of file spans: the kernel copies from the source file's
//! page cache to the target without the bytes crossing user space. Linux only;
//! elsewhere ENOSYS, and the caller falls back to a gather write.
const std = @import("std");
const builtin = @import("builtin");
const errno = @import("errno.zig");
const Errno = errno.Errno;
const gather = @import("gather.zig");
const guard = @import("guard.zig");
const stream_sockets = @import("stream_sockets.zig");
const regions = @import("regions.zig");
const slices = @import("slices.zig");

/// `copy_file_range` for a regular-file target, `sendfile` for any other.
pub const Kind = enum(u32) { copy_file_range, sendfile };

/// Moves `len` bytes of `fd_in` from `offset_in` to `fd_out`'s current
/// position. Loops over the per-call limit and EINTR; EAGAIN after progress
/// returns that progress; a source that ends early (truncated since its span
/// was read) is ENODATA, never a silent short move.
/// `done` always holds the bytes moved, also when an error is returned.
pub fn move(kind: Kind, fd_in: i32, offset_in: u64, fd_out: i32, len: u64, done: *u64) Errno!void {
    done.* = 0;
    if (kind == .sendfile and stream_sockets.isMarked(fd_out)) {
        const saved = guard.blockPipe();
        defer guard.unblockPipe(&saved);
        errdefer |err| guard.settleSignal(err); // before the unblock: a pending SIGPIPE would be delivered then
        return moveAll(kind, fd_in, offset_in, fd_out, len, done);
    }
    return moveAll(kind, fd_in, offset_in, fd_out, len, done);
}

fn moveAll(kind: Kind, fd_in: i32, offset_in: u64, fd_out: i32, len: u64, done: *u64) Errno!void {
    if (builtin.os.tag != .linux) return error.NOSYS;
    if (offset_in > std.math.maxInt(i64) or len > std.math.maxInt(i64) - offset_in) return error.INVAL;
    const linux = std.os.linux;
    const reserved = if (kind == .copy_file_range) reserveBlocks(fd_out, len) else null;
    // A copy that stops short gives back the blocks it reserved and did not fill.
    defer if (reserved) |r| if (done.* < r.len) releaseBlocks(fd_out, r.start + done.*, r.start + r.len);
    // On a thread that asked for slices (Bun's worker), a move to a blocking pipe or socket is cut at the end of
    // each slice and goes on where it stopped when called again with the same arguments (slices.zig).
    const sliced = regions.currentThread() == 0 and slices.wanted() and slices.blocking(fd_out);
    const here: Suspended = .{ .kind = kind, .fd_in = fd_in, .offset_in = offset_in, .fd_out = fd_out, .len = len };
    if (suspended) |s| if (sliced and std.meta.eql(s.call, here)) {
        done.* = s.done;
    };
    suspended = null;
    var offset: i64 = @intCast(offset_in + done.*);
    var slice: slices.Slice = if (sliced) slices.Slice.start() else .{};
    defer slice.stop();
    while (done.* < len) {
        const want: usize = @intCast(@min(len - done.*, gather.call_bytes_max));
        // Raw system calls: glibc 2.17, the oldest target, has no copy_file_range wrapper.
        const rc = switch (kind) {
            .copy_file_range => linux.copy_file_range(fd_in, &offset, fd_out, null, want, 0),
            .sendfile => linux.sendfile(fd_out, fd_in, &offset, want),
        };
        switch (linux.E.init(rc)) {
            .SUCCESS => {},
            .INTR => if (slice.active()) {
                suspended = .{ .call = here, .done = done.* };
                return error.INTR;
            } else continue,
            .AGAIN => return if (done.* > 0) {} else error.AGAIN,
            else => |e| return errno.fromE(e),
        }
        if (rc == 0) return error.NODATA; // the source is shorter than its span
        done.* += rc;
        if (slice.active() and rc < want and done.* < len) { // cut short: its slice ended
            suspended = .{ .call = here, .done = done.* };
            return error.INTR;
        }
    }
}

/// A sliced move that stopped at the end of its slice (see `moveAll`), on this thread, until it is called again.
const Suspended = struct { kind: Kind, fd_in: i32, offset_in: u64, fd_out: i32, len: u64 };
threadlocal var suspended: ?struct { call: Suspended, done: u64 } = null;

/// Limit: moves from this size on get their target blocks reserved first.
const reserve_bytes_min: u64 = 1 << 20;

/// Reserves the target's blocks for a big copy in one go (fallocate, keeping the size: a copy that fails midway
/// leaves the file's length as the bytes written say). A filesystem that allocates block by block while copying
/// is about a third slower on ext4. Best effort: a filesystem that cannot is simply not helped. Returns the
/// span reserved (from the target's position), or null.
fn reserveBlocks(fd: i32, len: u64) ?struct { start: u64, len: u64 } {
    if (len < reserve_bytes_min) return null;
    const linux = std.os.linux;
    const position = linux.lseek(fd, 0, linux.SEEK.CUR);
    if (linux.E.init(position) != .SUCCESS) return null;
    if (linux.E.init(linux.fallocate(fd, linux.FALLOC.FL_KEEP_SIZE, @intCast(position), @intCast(len))) != .SUCCESS) return null;
    return .{ .start = position, .len = len };
}

/// Gives back reserved blocks in `[from, to)` that lie past the target's end: inside the file they hold its
/// data (a copy over existing bytes), past it only the reservation. The size stays as it is.
fn releaseBlocks(fd: i32, from: u64, to: u64) void {
    const linux = std.os.linux;
    var st: linux.Stat = undefined;
    if (linux.E.init(linux.fstat(fd, &st)) != .SUCCESS) return;
    const start = @max(from, @as(u64, @intCast(@max(st.size, 0))));
    if (start >= to) return;
    const flags = linux.FALLOC.FL_PUNCH_HOLE | linux.FALLOC.FL_KEEP_SIZE;
    _ = linux.fallocate(fd, flags, @intCast(start), @intCast(to - start));
    // ext4 punches no hole past the end; setting the size it already has drops blocks there. (A process
    // appending to this very file in the microseconds between fstat and here would lose that append.)
    _ = linux.ftruncate(fd, st.size);
}

test "copy_file_range and sendfile move a file span to another file" {
    var tmp = std.testing.tmpDir(.{});
    defer tmp.cleanup();
    try tmp.dir.writeFile(.{ .sub_path = "in", .data = "0123456789abcdef" });
    const in = try tmp.dir.openFile("in", .{});
    defer in.close();
    const out = try tmp.dir.createFile("out", .{ .read = true });
    defer out.close();
    var done: u64 = 0;
    try move(.copy_file_range, in.handle, 2, out.handle, 5, &done);
    try std.testing.expectEqual(@as(u64, 5), done);
    try std.testing.expectError(error.NODATA, move(.sendfile, in.handle, 10, out.handle, 100, &done));
    try std.testing.expectEqual(@as(u64, 6), done); // what the source had was moved
    var buf: [16]u8 = undefined;
    const n = try std.posix.pread(out.handle, &buf, 0);
    try std.testing.expectEqualStrings("23456abcdef", buf[0..n]);
    try std.testing.expectError(error.BADF, move(.sendfile, -1, 0, out.handle, 1, &done));
    try std.testing.expectError(error.INVAL, move(.sendfile, in.handle, std.math.maxInt(i64), out.handle, 2, &done));
}

test "a big copy reserves its blocks but the target's size is what was copied" {
    if (builtin.os.tag != .linux) return error.SkipZigTest;
    var tmp = std.testing.tmpDir(.{});
    defer tmp.cleanup();
    const data = try std.testing.allocator.alloc(u8, 3 << 20);
    defer std.testing.allocator.free(data);
    for (data, 0..) |*b, i| b.* = @truncate(i *% 31);
    try tmp.dir.writeFile(.{ .sub_path = "in", .data = data });
    const in = try tmp.dir.openFile("in", .{});
    defer in.close();
    const out = try tmp.dir.createFile("out", .{ .read = true });
    defer out.close();
    var done: u64 = 0;
    try move(.copy_file_range, in.handle, 1 << 20, out.handle, 2 << 20, &done);
    try std.testing.expectEqual(@as(u64, 2 << 20), (try out.stat()).size);
    const back = try std.testing.allocator.alloc(u8, 2 << 20);
    defer std.testing.allocator.free(back);
    _ = try std.posix.pread(out.handle, back, 0);
    try std.testing.expectEqualSlices(u8, data[1 << 20 ..], back);
}

test "a big copy that stops short keeps no reservation past what it wrote, nor touches the bytes it did not copy" {
    if (builtin.os.tag != .linux) return error.SkipZigTest;
    var tmp = std.testing.tmpDir(.{});
    defer tmp.cleanup();
    const data = try std.testing.allocator.alloc(u8, 1 << 20);
    defer std.testing.allocator.free(data);
    @memset(data, 5);
    try tmp.dir.writeFile(.{ .sub_path = "in", .data = data });
    const in = try tmp.dir.openFile("in", .{});
    defer in.close();
    // The target already holds 2 MiB past which the copy reaches: those bytes must survive the release.
    const old = try std.testing.allocator.alloc(u8, 2 << 20);
    defer std.testing.allocator.free(old);
    @memset(old, 9);
    try tmp.dir.writeFile(.{ .sub_path = "out", .data = old });
    const out = try tmp.dir.openFile("out", .{ .mode = .read_write });
    defer out.close();
    var done: u64 = 0;
    // Asks for 64 MiB of a 1 MiB source: ENODATA after 1 MiB, as when the source was truncated under a reader.
    try std.testing.expectError(error.NODATA, move(.copy_file_range, in.handle, 0, out.handle, 64 << 20, &done));
    try std.testing.expectEqual(@as(u64, 1 << 20), done);
    const st = try std.posix.fstat(out.handle);
    try std.testing.expectEqual(@as(i64, 2 << 20), st.size);
    // 512-byte units; a little slack for the filesystem's own metadata blocks.
    try std.testing.expect(@as(u64, @intCast(st.blocks)) * 512 <= (2 << 20) + (256 << 10));
    const back = try std.testing.allocator.alloc(u8, 2 << 20);
    defer std.testing.allocator.free(back);
    _ = try std.posix.pread(out.handle, back, 0);
    try std.testing.expectEqualSlices(u8, data, back[0 .. 1 << 20]);
    try std.testing.expectEqualSlices(u8, old[1 << 20 ..], back[1 << 20 ..]);
}
