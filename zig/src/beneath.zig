//! Opening a path that must stay inside a directory: a server's document root. Neither `..` nor a symbolic
//! link may lead out of it. Linux 5.6+ checks this in one call (openat2 RESOLVE_BENEATH); elsewhere, or where a
//! sandbox refuses openat2, each component is opened in turn with O_NOFOLLOW and `..` is refused (stricter:
//! a symbolic link that stays inside is refused too).
const std = @import("std");
const builtin = @import("builtin");
const errno = @import("errno.zig");
const Errno = errno.Errno;
const file = @import("file.zig");
const c = std.c;

/// Opens `path` (relative to `dir`, read-only, close-on-exec) if it resolves beneath `dir`; EXDEV when it would
/// leave it, ELOOP for a link the fallback refuses.
pub fn open(dir: i32, path: []const u8) Errno!i32 {
    if (path.len == 0) return error.NOENT;
    if (path.len >= file.path_bytes_max) return error.NAMETOOLONG;
    if (std.mem.indexOfScalar(u8, path, 0) != null) return error.INVAL;
    var path_z: [file.path_bytes_max]u8 = undefined;
    @memcpy(path_z[0..path.len], path);
    path_z[path.len] = 0;
    if (builtin.os.tag == .linux) {
        if (openat2(dir, @ptrCast(&path_z))) |fd| return fd else |err| switch (err) {
            error.NOSYS, error.PERM => {}, // an old kernel, or a seccomp filter that refuses openat2
            else => return err,
        }
    }
    return byComponents(dir, path);
}

const OpenHow = extern struct { flags: u64, mode: u64, resolve: u64 };
const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_BENEATH: u64 = 0x08;

comptime {
    std.debug.assert(@sizeOf(OpenHow) == 24); // the kernel's struct open_how, version 0
}

fn openat2(dir: i32, path: [*:0]const u8) Errno!i32 {
    const linux = std.os.linux;
    // NONBLOCK: opening a FIFO must not wait for a writer (it would hold up the whole event loop).
    const flags: linux.O = .{ .ACCMODE = .RDONLY, .CLOEXEC = true, .NONBLOCK = true };
    var how: OpenHow = .{ .flags = @as(u32, @bitCast(flags)), .mode = 0, .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS };
    while (true) {
        const rc = linux.syscall4(.openat2, @bitCast(@as(isize, dir)), @intFromPtr(path), @intFromPtr(&how), @sizeOf(OpenHow));
        switch (linux.E.init(rc)) {
            .SUCCESS => return @intCast(rc),
            .INTR, .AGAIN => continue, // AGAIN: a rename raced the lookup (RESOLVE_BENEATH retries are the caller's)
            else => |e| return errno.fromE(e),
        }
    }
}

fn byComponents(dir: i32, path: []const u8) Errno!i32 {
    if (path[0] == '/') return error.XDEV;
    var at = dir;
    var it = std.mem.tokenizeScalar(u8, path, '/');
    var name_z: [file.path_bytes_max]u8 = undefined;
    while (it.next()) |name| {
        if (std.mem.eql(u8, name, ".")) continue;
        if (std.mem.eql(u8, name, "..")) {
            if (at != dir) _ = c.close(at);
            return error.XDEV;
        }
        @memcpy(name_z[0..name.len], name);
        name_z[name.len] = 0;
        const last = it.peek() == null;
        const flags: c.O = .{ .ACCMODE = .RDONLY, .CLOEXEC = true, .NOFOLLOW = true, .DIRECTORY = !last, .NONBLOCK = true };
        const fd = c.openat(at, @ptrCast(&name_z), flags);
        const err: ?Errno = if (fd < 0) errno.last() else null;
        if (at != dir) _ = c.close(at);
        if (err) |e| return e;
        at = fd;
    }
    if (at == dir) return std.posix.dup(dir) catch error.MFILE; // "" or "." alone: the directory itself
    return at;
}

test "paths beneath the directory open; .., absolute paths and links out are refused" {
    var tmp = std.testing.tmpDir(.{});
    defer tmp.cleanup();
    try tmp.dir.makeDir("sub");
    try tmp.dir.writeFile(.{ .sub_path = "sub/a", .data = "in" });
    try tmp.dir.symLink("/etc/hostname", "out", .{});
    try tmp.dir.symLink("../sub/a", "sub/up", .{});
    const dir = tmp.dir.fd;
    inline for (.{ "sub/a", "./sub//a" }) |p| {
        const fd = try open(dir, p);
        var buf: [4]u8 = undefined;
        try std.testing.expectEqualStrings("in", buf[0..try std.posix.read(fd, &buf)]);
        _ = c.close(fd);
    }
    for ([_][]const u8{ "../x", "sub/../../x", "/etc/hostname", "out" }) |p| {
        try std.testing.expect(if (open(dir, p)) |fd| blk: {
            _ = c.close(fd);
            break :blk false;
        } else |err| err == error.XDEV or err == error.LOOP);
        try std.testing.expect(if (byComponents(dir, p)) |fd| blk: {
            _ = c.close(fd);
            break :blk false;
        } else |err| err == error.XDEV or err == error.LOOP);
    }
    try std.testing.expectError(error.NOENT, open(dir, "missing"));
    try std.testing.expectError(error.INVAL, open(dir, "a\x00b"));
    try std.testing.expectError(error.LOOP, byComponents(dir, "sub/up")); // the fallback refuses every link
}
