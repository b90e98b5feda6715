//! Kernel-side moves of file spans: the kernel copies from the source file's
//! page cache to the target without the bytes crossing user space. Linux only;
//! elsewhere ENOSYS, and the caller falls back to a gather write.
const std = @import("std");
const builtin = @import("builtin");
const errno = @import("errno.zig");
const Errno = errno.Errno;
const gather = @import("gather.zig");

/// `copy_file_range` for a regular-file target, `sendfile` for any other.
pub const Kind = enum(u32) { copy_file_range, sendfile };

/// Moves `len` bytes of `fd_in` from `offset_in` to `fd_out`'s current
/// position. Loops over the per-call limit and EINTR; EAGAIN after progress
/// returns that progress; a source that ends early (truncated since its span
/// was read) is ENODATA, never a silent short move.
/// `done` always holds the bytes moved, also when an error is returned.
pub fn move(kind: Kind, fd_in: i32, offset_in: u64, fd_out: i32, len: u64, done: *u64) Errno!void {
    done.* = 0;
    if (builtin.os.tag != .linux) return error.NOSYS;
    if (offset_in > std.math.maxInt(i64) or len > std.math.maxInt(i64) - offset_in) return error.INVAL;
    const linux = std.os.linux;
    if (kind == .copy_file_range) reserveBlocks(fd_out, len);
    var offset: i64 = @intCast(offset_in);
    while (done.* < len) {
        const want: usize = @intCast(@min(len - done.*, gather.call_bytes_max));
        // Raw system calls: glibc 2.17, the oldest target, has no copy_file_range wrapper.
        const rc = switch (kind) {
            .copy_file_range => linux.copy_file_range(fd_in, &offset, fd_out, null, want, 0),
            .sendfile => linux.sendfile(fd_out, fd_in, &offset, want),
        };
        switch (linux.E.init(rc)) {
            .SUCCESS => {},
            .INTR => continue,
            .AGAIN => return if (done.* > 0) {} else error.AGAIN,
            else => |e| return errno.fromE(e),
        }
        if (rc == 0) return error.NODATA; // the source is shorter than its span
        done.* += rc;
    }
}

/// Limit: moves from this size on get their target blocks reserved first.
const reserve_bytes_min: u64 = 1 << 20;

/// Reserves the target's blocks for a big copy in one go (fallocate, keeping the size: a copy that fails midway
/// leaves the file's length as the bytes written say). A filesystem that allocates block by block while copying
/// is about a third slower on ext4. Best effort: a filesystem that cannot is simply not helped.
fn reserveBlocks(fd: i32, len: u64) void {
    if (len < reserve_bytes_min) return;
    const linux = std.os.linux;
    const position = linux.lseek(fd, 0, linux.SEEK.CUR);
    if (linux.E.init(position) != .SUCCESS) return;
    _ = linux.fallocate(fd, linux.FALLOC.FL_KEEP_SIZE, @intCast(position), @intCast(len));
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
