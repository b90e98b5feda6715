//! Descriptors a JS thread opened through pageio, by number: closed when that thread ends (a terminated
//! Worker), as its own close() calls would have, so its files and listening ports do not outlive it.
const std = @import("std");
const errno = @import("errno.zig");
const regions = @import("regions.zig");

var mutex: std.Thread.Mutex = .{};
/// owners[fd]: the id of the attached thread that owns descriptor `fd`, 0 for none.
var owners: []u64 = &.{};

/// `fd` is now the calling thread's (if it is an attached JS thread). A number someone else owned was closed
/// behind pageio's back before the kernel gave it out again: the new owner takes it.
pub fn own(fd: i32) errno.Errno!void {
    if (fd < 0) return error.BADF;
    const thread = regions.currentThread();
    mutex.lock();
    defer mutex.unlock();
    const index: usize = @intCast(fd);
    if (index >= owners.len) {
        if (thread == 0) return;
        const len = @max(64, std.math.ceilPowerOfTwo(usize, index + 1) catch return error.NOMEM);
        const grown = std.heap.page_allocator.alloc(u64, len) catch return error.NOMEM;
        @memset(grown, 0);
        @memcpy(grown[0..owners.len], owners);
        if (owners.len != 0) std.heap.page_allocator.free(owners);
        owners = grown;
    }
    owners[index] = thread;
}

/// `fd` is being closed by its owner.
pub fn disown(fd: i32) void {
    if (fd < 0) return;
    mutex.lock();
    defer mutex.unlock();
    const index: usize = @intCast(fd);
    if (index < owners.len) owners[index] = 0;
}

/// Closes every descriptor `thread` owns: it ended, and nothing of its heap will close them now.
pub fn closeThread(thread: u64) void {
    if (thread == 0) return;
    mutex.lock();
    defer mutex.unlock();
    for (owners, 0..) |*owner, fd| {
        if (owner.* != thread) continue;
        owner.* = 0;
        _ = std.c.close(@intCast(fd));
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
