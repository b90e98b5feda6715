//! Descriptors a JS thread opened through pageio, by number: closed when that thread ends (a terminated
//! Worker), as its own close() calls would have, so its files and listening ports do not outlive it.
const std = @import("std");
const errno = @import("errno.zig");
const regions = @import("regions.zig");

/// Who owns a descriptor number, and the file it named then: a number closed behind pageio's back and given
/// to someone else since is not closed under them.
const Owner = struct { thread: u64 = 0, dev: u64 = 0, ino: u64 = 0 };

var mutex: std.Thread.Mutex = .{};
/// owners[fd]: the attached thread that owns descriptor `fd` (thread 0: none).
var owners: []Owner = &.{};

fn identity(fd: i32) ?struct { dev: u64, ino: u64 } {
    var st: std.c.Stat = undefined;
    if (std.c.fstat(fd, &st) != 0) return null;
    return .{ .dev = @intCast(st.dev), .ino = @intCast(st.ino) };
}

/// `fd` is now the calling thread's (if it is an attached JS thread). A number someone else owned was closed
/// behind pageio's back before the kernel gave it out again: the new owner takes it.
pub fn own(fd: i32) errno.Errno!void {
    if (fd < 0) return error.BADF;
    const thread = regions.currentThread();
    const id = identity(fd) orelse return errno.last();
    mutex.lock();
    defer mutex.unlock();
    const index: usize = @intCast(fd);
    if (index >= owners.len) {
        if (thread == 0) return;
        const len = @max(64, std.math.ceilPowerOfTwo(usize, index + 1) catch return error.NOMEM);
        const grown = std.heap.page_allocator.alloc(Owner, len) catch return error.NOMEM;
        @memset(grown, .{});
        @memcpy(grown[0..owners.len], owners);
        if (owners.len != 0) std.heap.page_allocator.free(owners);
        owners = grown;
    }
    owners[index] = .{ .thread = thread, .dev = id.dev, .ino = id.ino };
}

/// Whether a JS thread holds `fd` through pageio (a handle it opened, still naming the file it opened).
pub fn isOwned(fd: i32) bool {
    if (fd < 0) return false;
    const id = identity(fd) orelse return false;
    mutex.lock();
    defer mutex.unlock();
    const index: usize = @intCast(fd);
    if (index >= owners.len) return false;
    const owner = owners[index];
    return owner.thread != 0 and owner.dev == id.dev and owner.ino == id.ino;
}

/// `fd` is being closed by its owner.
pub fn disown(fd: i32) void {
    if (fd < 0) return;
    mutex.lock();
    defer mutex.unlock();
    const index: usize = @intCast(fd);
    if (index < owners.len) owners[index] = .{};
}

/// Closes every descriptor `thread` owns that still names the file it owned: the thread ended, and nothing of
/// its heap will close them now.
pub fn closeThread(thread: u64) void {
    if (thread == 0) return;
    mutex.lock();
    defer mutex.unlock();
    for (owners, 0..) |*owner, index| {
        if (owner.thread != thread) continue;
        const fd: i32 = @intCast(index);
        const now = identity(fd);
        const same = now != null and now.?.dev == owner.dev and now.?.ino == owner.ino;
        owner.* = .{};
        if (same) _ = std.c.close(fd);
    }
}

test "a thread's descriptors are closed when it ends, and only its own" {
    const attached = regions.attachThread();
    const pipe = try std.posix.pipe();
    try own(pipe[0]);
    try own(pipe[1]);
    disown(pipe[1]); // closed by its owner below, not at the thread's end
    closeThread(attached + 1); // another thread: nothing of this one's
    try std.testing.expect(std.c.fcntl(pipe[0], std.posix.F.GETFD) >= 0);
    closeThread(attached);
    try std.testing.expect(std.c.fcntl(pipe[0], std.posix.F.GETFD) < 0);
    try std.testing.expect(std.c.fcntl(pipe[1], std.posix.F.GETFD) >= 0);
    std.posix.close(pipe[1]);
}

test "a number closed behind pageio's back and reused for another file is not closed at the thread's end" {
    const attached = regions.attachThread();
    const first = try std.posix.pipe();
    try own(first[0]);
    std.posix.close(first[0]); // not through pageio_close: still recorded as owned
    const second = try std.posix.pipe(); // the kernel gives the lowest free number: first[0]'s
    defer std.posix.close(second[1]);
    try std.testing.expectEqual(first[0], second[0]);
    closeThread(attached);
    try std.testing.expect(std.c.fcntl(second[0], std.posix.F.GETFD) >= 0); // another pipe now: left open
    std.posix.close(second[0]);
    std.posix.close(first[1]);
}
