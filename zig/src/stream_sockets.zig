//! Which descriptors pageio made stream sockets of (accepted, connected, adopted, socket pairs): a write to one
//! goes out by `sendmsg` with MSG_NOSIGNAL, so a peer that is gone is EPIPE whatever SIGPIPE's disposition. Both
//! runtimes ignore SIGPIPE, but removing the last listener for it (`process.off`, `Deno.removeSignalListener`)
//! puts its default action back, and a `writev` to a reset socket then ended the process where Deno's own socket
//! writes (which send with MSG_NOSIGNAL) went on. One bit a number, no system call to look: a number closed
//! elsewhere and reused for a pipe or file is found by its ENOTSOCK and forgotten.
const std = @import("std");

/// Limit: descriptors above this are never marked (their writes are plain `writev`s).
pub const fd_max = 1 << 20;

var bits: [fd_max / 64]std.atomic.Value(u64) = @splat(std.atomic.Value(u64).init(0));

pub fn mark(fd: i32) void {
    if (fd < 0 or fd >= fd_max) return;
    const i: usize = @intCast(fd);
    _ = bits[i / 64].fetchOr(@as(u64, 1) << @intCast(i % 64), .release);
}

pub fn forget(fd: i32) void {
    if (fd < 0 or fd >= fd_max) return;
    const i: usize = @intCast(fd);
    _ = bits[i / 64].fetchAnd(~(@as(u64, 1) << @intCast(i % 64)), .release);
}

pub fn isMarked(fd: i32) bool {
    if (fd < 0 or fd >= fd_max) return false;
    const i: usize = @intCast(fd);
    return bits[i / 64].load(.acquire) & (@as(u64, 1) << @intCast(i % 64)) != 0;
}

test "mark, isMarked and forget one number, leaving its neighbours" {
    mark(65);
    try std.testing.expect(isMarked(65));
    try std.testing.expect(!isMarked(64) and !isMarked(66));
    forget(65);
    try std.testing.expect(!isMarked(65));
    mark(-1);
    mark(fd_max);
    try std.testing.expect(!isMarked(-1) and !isMarked(fd_max));
}
