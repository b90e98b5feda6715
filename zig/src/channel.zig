//! Pipes and socket pairs: descriptor pairs for moving pages between
//! processes. Close-on-exec, like every descriptor pageio makes.
const std = @import("std");
const builtin = @import("builtin");
const errno = @import("errno.zig");
const Errno = errno.Errno;

pub const Pair = [2]i32;

/// What `pageio_pair` makes.
pub const PairKind = enum(u32) { pipe, socket };

/// A pipe: [read end, write end].
pub fn pipe(non_blocking: bool) Errno!Pair {
    var fds: Pair = undefined;
    if (builtin.os.tag == .linux) {
        const flags: std.c.O = .{ .CLOEXEC = true, .NONBLOCK = non_blocking };
        if (std.c.pipe2(&fds, flags) != 0) return errno.last();
        return fds;
    }
    if (std.c.pipe(&fds) != 0) return errno.last();
    return setFlags(fds, non_blocking);
}

/// A connected pair of unix stream sockets.
pub fn socketPair(non_blocking: bool) Errno!Pair {
    var fds: Pair = undefined;
    if (builtin.os.tag == .linux) {
        var kind: u32 = std.c.SOCK.STREAM | std.c.SOCK.CLOEXEC;
        if (non_blocking) kind |= std.c.SOCK.NONBLOCK;
        if (std.c.socketpair(std.c.AF.UNIX, kind, 0, &fds) != 0) return errno.last();
        return fds;
    }
    if (std.c.socketpair(std.c.AF.UNIX, std.c.SOCK.STREAM, 0, &fds) != 0) return errno.last();
    return setFlags(fds, non_blocking);
}

/// Where the flags cannot be given at creation (macOS): set them right after. A fork in between would
/// inherit the pair; Linux has no such window.
fn setFlags(fds: Pair, non_blocking: bool) Errno!Pair {
    for (fds) |fd| {
        if (std.c.fcntl(fd, std.c.F.SETFD, @as(c_int, std.c.FD_CLOEXEC)) < 0 or
            (non_blocking and std.c.fcntl(fd, std.c.F.SETFL, std.c.fcntl(fd, std.c.F.GETFL) | @as(c_int, @bitCast(std.c.O{ .NONBLOCK = true }))) < 0))
        {
            const err = errno.last();
            _ = std.c.close(fds[0]);
            _ = std.c.close(fds[1]);
            return err;
        }
    }
    return fds;
}

/// Waits up to `timeout_ms` (maxInt(u32): no limit) until `fd` has bytes to read or its writers came and
/// went; returns 1 then, 0 on timeout. A FIFO opened for reading before any writer reads as ended at once
/// (read() returns 0 with no writer), but polls as not ready until a writer has come: this waits for it.
pub fn waitReadable(fd: i32, timeout_ms: u32) Errno!u64 {
    if (fd < 0) return error.BADF; // poll() skips negative descriptors: it would just sleep
    var fds = [1]std.c.pollfd{.{ .fd = fd, .events = std.c.POLL.IN, .revents = 0 }};
    const timeout: c_int = if (timeout_ms == std.math.maxInt(u32)) -1 else @intCast(@min(timeout_ms, std.math.maxInt(c_int)));
    while (true) {
        const rc = std.c.poll(&fds, 1, timeout);
        if (rc >= 0) {
            if (rc > 0 and fds[0].revents & std.c.POLL.NVAL != 0) return error.BADF;
            return @intCast(rc);
        }
        const err = errno.last();
        if (err != error.INTR) return err; // a signal: wait again (the whole timeout; callers bound it)
    }
}

test "waitReadable waits for bytes, or for the writers to have come and gone" {
    const fds = try pipe(false);
    defer _ = std.c.close(fds[0]);
    try std.testing.expectEqual(@as(u64, 0), try waitReadable(fds[0], 0));
    _ = std.c.write(fds[1], "x", 1);
    try std.testing.expectEqual(@as(u64, 1), try waitReadable(fds[0], 0));
    _ = std.c.close(fds[1]);
    try std.testing.expectEqual(@as(u64, 1), try waitReadable(fds[0], 0));
    try std.testing.expectError(error.BADF, waitReadable(fds[1], 0)); // closed
    try std.testing.expectError(error.BADF, waitReadable(-1, 0));
}

/// Sets a pipe's capacity (Linux F_SETPIPE_SZ); returns the capacity the kernel chose. A bigger pipe lets one
/// gather write of many pages go through in one call instead of waiting for the reader page by page.
pub fn setPipeSize(fd: i32, bytes: u32) Errno!u64 {
    if (builtin.os.tag != .linux) return error.NOSYS;
    const F_SETPIPE_SZ = 1031;
    const rc = std.c.fcntl(fd, F_SETPIPE_SZ, @as(c_int, @intCast(@min(bytes, std.math.maxInt(i32)))));
    if (rc < 0) return errno.last();
    return @intCast(rc);
}

test "a pipe and a socket pair carry bytes and are close-on-exec" {
    const p = try pipe(false);
    defer std.posix.close(p[0]);
    defer std.posix.close(p[1]);
    _ = try std.posix.write(p[1], "pipe");
    var buf: [8]u8 = undefined;
    try std.testing.expectEqualStrings("pipe", buf[0..try std.posix.read(p[0], &buf)]);
    try std.testing.expect(std.c.fcntl(p[0], std.c.F.GETFD) & std.c.FD_CLOEXEC != 0);
    if (builtin.os.tag == .linux) {
        try std.testing.expect(try setPipeSize(p[1], 1 << 20) >= 1 << 20);
    }
    const s = try socketPair(true);
    defer std.posix.close(s[0]);
    defer std.posix.close(s[1]);
    _ = try std.posix.write(s[0], "both");
    try std.testing.expectEqualStrings("both", buf[0..try std.posix.read(s[1], &buf)]);
    try std.testing.expectError(error.WouldBlock, std.posix.read(s[1], &buf)); // non-blocking, nothing left
}
