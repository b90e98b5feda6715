//! Opening, describing and closing files. Every descriptor pageio opens is
//! close-on-exec, so a child process never inherits one.
const std = @import("std");
const builtin = @import("builtin");
const errno = @import("errno.zig");
const Errno = errno.Errno;

/// The open modes of `openFile`, in the order of the TypeScript `FileMode`.
pub const Mode = enum(u32) { read, read_write, write, read_write_create, append, read_write_exclusive };

/// Limit: the longest path accepted, NUL included (Linux PATH_MAX).
pub const path_bytes_max = 4096;

pub const OpenFlags = packed struct(u32) {
    no_follow: bool = false,
    non_blocking: bool = false,
    /// A FIFO or socket stays O_NONBLOCK (without `non_blocking`, its blocking calls wait for readiness in JS):
    /// an async call then waits by readiness, never in a blocking call a thread cannot be taken back from.
    pipes_wait_ready: bool = false,
    _: u29 = 0,
};

pub fn open(path: []const u8, mode: Mode, open_flags: OpenFlags) Errno!i32 {
    if (path.len == 0) return error.NOENT;
    if (path.len >= path_bytes_max) return error.NAMETOOLONG;
    if (std.mem.indexOfScalar(u8, path, 0) != null) return error.INVAL;
    var path_z: [path_bytes_max]u8 = undefined;
    @memcpy(path_z[0..path.len], path);
    path_z[path.len] = 0;

    // Always O_NONBLOCK while opening: a FIFO with nobody at the other end would park the caller (the JS
    // thread) in open() for good. Cleared after unless asked for.
    var flags: std.c.O = .{ .CLOEXEC = true, .NOFOLLOW = open_flags.no_follow, .NONBLOCK = true };
    switch (mode) {
        .read => flags.ACCMODE = .RDONLY,
        .read_write => flags.ACCMODE = .RDWR,
        .write => {
            flags.ACCMODE = .WRONLY;
            flags.CREAT = true;
            flags.TRUNC = true;
        },
        .read_write_create => {
            flags.ACCMODE = .RDWR;
            flags.CREAT = true;
            flags.TRUNC = true;
        },
        .append => {
            flags.ACCMODE = .WRONLY;
            flags.CREAT = true;
            flags.APPEND = true;
        },
        .read_write_exclusive => {
            flags.ACCMODE = .RDWR;
            flags.CREAT = true;
            flags.EXCL = true;
        },
    }
    const fd = while (true) {
        const fd = std.c.open(@ptrCast(&path_z), flags, @as(c_uint, 0o666));
        if (fd >= 0) break fd;
        const err = errno.last();
        if (err != error.INTR) return err;
    };
    if (!open_flags.non_blocking and !(open_flags.pipes_wait_ready and isPipeLike(fd))) {
        // F_SETFL sets only the status flags (O_APPEND, O_NONBLOCK…); the others in `flags` are ignored.
        flags.NONBLOCK = false;
        if (std.c.fcntl(fd, std.c.F.SETFL, @as(u32, @bitCast(flags))) != 0) {
            const err = errno.last();
            _ = std.c.close(fd);
            return err;
        }
    }
    return fd;
}

/// Whether `fd` is a FIFO or a socket (a unix socket's file cannot be opened; one in /proc/self/fd can).
fn isPipeLike(fd: i32) bool {
    const kind = (status(fd) catch return false).kind;
    return kind == .fifo or kind == .socket;
}

pub fn close(fd: i32) Errno!void {
    if (fd < 0) return error.BADF;
    // On Linux the descriptor is gone even when close reports EINTR: never retry.
    if (std.c.close(fd) != 0) {
        const err = errno.last();
        if (err != error.INTR) return err;
    }
}

/// A close-on-exec duplicate of `fd`: another number for the same open file, which stays open until this
/// number is closed, whatever happens to `fd`.
pub fn duplicate(fd: i32) Errno!i32 {
    // F_DUPFD_CLOEXEC by value: Zig's std.c.F lacks it on Linux.
    const dupfd_cloexec: c_int = if (builtin.os.tag == .linux) 1030 else std.c.F.DUPFD_CLOEXEC;
    const dup = std.c.fcntl(fd, dupfd_cloexec, @as(c_int, 0));
    return if (dup < 0) errno.last() else dup;
}

/// Sets a file's size: the new bytes read as zeros.
pub fn truncate(fd: i32, size: u64) Errno!void {
    if (size > std.math.maxInt(i64)) return error.FBIG;
    while (std.c.ftruncate(fd, @intCast(size)) != 0) {
        const err = errno.last();
        if (err != error.INTR) return err;
    }
}

/// An anonymous file of `size` zero bytes in memory (Linux memfd), close-on-exec. Another process opens it
/// through /proc/<pid>/fd/<fd> while this descriptor stays open.
pub fn memoryFile(size: u64) Errno!i32 {
    if (builtin.os.tag != .linux) return error.NOSYS;
    const rc = std.os.linux.memfd_create("pageio", std.os.linux.MFD.CLOEXEC);
    switch (std.os.linux.E.init(rc)) {
        .SUCCESS => {},
        else => |e| return errno.fromE(e),
    }
    const fd: i32 = @intCast(rc);
    truncate(fd, size) catch |err| {
        _ = std.c.close(fd);
        return err;
    };
    return fd;
}

/// What kind of file a descriptor refers to, as the TypeScript `FileKind`.
pub const Kind = enum(u32) { other, file, directory, character_device, block_device, fifo, socket };

/// `dev` and `ino` name the file itself (the SIGBUS guard keeps one descriptor per file, not per mapping).
pub const Status = struct { size: u64, kind: Kind, dev: u64 = 0, ino: u64 = 0 };

pub fn status(fd: i32) Errno!Status {
    var st: std.c.Stat = undefined;
    if (std.c.fstat(fd, &st) != 0) return errno.last();
    const S = std.posix.S;
    const mode: u32 = @intCast(st.mode);
    const kind: Kind = if (S.ISREG(mode)) .file else if (S.ISDIR(mode)) .directory else if (S.ISCHR(mode))
        .character_device
    else if (S.ISBLK(mode)) .block_device else if (S.ISFIFO(mode)) .fifo else if (S.ISSOCK(mode)) .socket else .other;
    return .{ .size = @intCast(@max(st.size, 0)), .kind = kind, .dev = @intCast(st.dev), .ino = @intCast(st.ino) };
}

test "open, status and close a file" {
    const fd = try open("/proc/self/status", .read, .{});
    try std.testing.expectEqual(Kind.file, (try status(fd)).kind);
    try close(fd);
    try std.testing.expectError(error.BADF, status(fd));
}

test "a duplicate outlives the descriptor it was made from" {
    const fd = try open("/proc/self/status", .read, .{});
    const dup = try duplicate(fd);
    try close(fd);
    var buf: [5]u8 = undefined;
    try std.testing.expectEqual(@as(usize, 5), try std.posix.pread(dup, &buf, 0));
    try std.testing.expectEqualStrings("Name:", &buf);
    try std.testing.expect(try std.posix.fcntl(dup, std.posix.F.GETFD, 0) & std.posix.FD_CLOEXEC != 0);
    try close(dup);
    try std.testing.expectError(error.BADF, duplicate(fd));
}

test "open reports the OS errors and refuses bad paths" {
    try std.testing.expectError(error.NOENT, open("/nonexistent/pageio", .read, .{}));
    try std.testing.expectError(error.NOENT, open("", .read, .{}));
    try std.testing.expectError(error.INVAL, open("a\x00b", .read, .{}));
    const dir = try open("/", .read, .{});
    defer close(dir) catch unreachable;
    try std.testing.expectEqual(Kind.directory, (try status(dir)).kind);
    try std.testing.expectError(error.ISDIR, open("/", .write, .{}));
    try std.testing.expectError(error.BADF, close(-1));
}

extern "c" fn mkfifo(path: [*:0]const u8, mode: std.c.mode_t) c_int;

test "a FIFO with no one at the other end opens at once: for reading, blocking; for writing, ENXIO" {
    if (builtin.os.tag != .linux) return error.SkipZigTest;
    var tmp = std.testing.tmpDir(.{});
    defer tmp.cleanup();
    var dir_buf: [path_bytes_max]u8 = undefined;
    const dir = try tmp.dir.realpath(".", &dir_buf);
    var path_buf: [path_bytes_max]u8 = undefined;
    const path = try std.fmt.bufPrintZ(&path_buf, "{s}/fifo", .{dir});
    try std.testing.expectEqual(@as(c_int, 0), mkfifo(path, 0o600));
    try std.testing.expectError(error.NXIO, open(path, .write, .{})); // no reader yet
    const fd = try open(path, .read, .{});
    defer close(fd) catch unreachable;
    try std.testing.expectEqual(Kind.fifo, (try status(fd)).kind);
    const O: std.c.O = @bitCast(@as(u32, @intCast(std.c.fcntl(fd, std.c.F.GETFL))));
    try std.testing.expect(!O.NONBLOCK); // cleared again: reads wait as usual
    const nb = try open(path, .read, .{ .non_blocking = true });
    defer close(nb) catch unreachable;
    const O2: std.c.O = @bitCast(@as(u32, @intCast(std.c.fcntl(nb, std.c.F.GETFL))));
    try std.testing.expect(O2.NONBLOCK);
    const ready = try open(path, .read, .{ .pipes_wait_ready = true });
    defer close(ready) catch unreachable;
    const O3: std.c.O = @bitCast(@as(u32, @intCast(std.c.fcntl(ready, std.c.F.GETFL))));
    try std.testing.expect(O3.NONBLOCK); // kept: a FIFO waits by readiness
    try tmp.dir.writeFile(.{ .sub_path = "plain", .data = "x" });
    const plain_path = try std.fmt.bufPrint(&path_buf, "{s}/plain", .{dir});
    const plain = try open(plain_path, .read, .{ .pipes_wait_ready = true });
    defer close(plain) catch unreachable;
    const O4: std.c.O = @bitCast(@as(u32, @intCast(std.c.fcntl(plain, std.c.F.GETFL))));
    try std.testing.expect(!O4.NONBLOCK); // a regular file: cleared as always
}

test "append mode survives clearing O_NONBLOCK" {
    var tmp = std.testing.tmpDir(.{});
    defer tmp.cleanup();
    try tmp.dir.writeFile(.{ .sub_path = "a", .data = "xy" });
    var dir_buf: [path_bytes_max]u8 = undefined;
    const dir = try tmp.dir.realpath(".", &dir_buf);
    var path_buf: [path_bytes_max]u8 = undefined;
    const path = try std.fmt.bufPrint(&path_buf, "{s}/a", .{dir});
    const fd = try open(path, .append, .{});
    defer close(fd) catch unreachable;
    const O: std.c.O = @bitCast(@as(u32, @intCast(std.c.fcntl(fd, std.c.F.GETFL))));
    try std.testing.expect(O.APPEND and !O.NONBLOCK);
}

test "a memory file has the size asked for, zero-filled" {
    if (builtin.os.tag != .linux) return error.SkipZigTest;
    const fd = try memoryFile(3 * 4096);
    defer close(fd) catch unreachable;
    const st = try status(fd);
    try std.testing.expectEqual(@as(u64, 3 * 4096), st.size);
    try std.testing.expectEqual(Kind.file, st.kind);
    try truncate(fd, 10);
    try std.testing.expectEqual(@as(u64, 10), (try status(fd)).size);
}

/// Reads up to `buffer.len` bytes at `offset` without moving the file position (pread); 0 at end of file.
pub fn readAt(fd: i32, buffer: []u8, offset: u64) Errno!usize {
    if (offset > std.math.maxInt(i64)) return error.OVERFLOW;
    while (true) {
        const n = std.c.pread(fd, buffer.ptr, buffer.len, @intCast(offset));
        if (n >= 0) return @intCast(n);
        const err = errno.last();
        if (err != error.INTR) return err;
    }
}

test "readAt reads at an offset and leaves the position alone" {
    var tmp = std.testing.tmpDir(.{});
    defer tmp.cleanup();
    const f = try tmp.dir.createFile("at", .{ .read = true });
    defer f.close();
    try f.writeAll("abcdef");
    try f.seekTo(1);
    var buffer: [8]u8 = undefined;
    try std.testing.expectEqual(@as(usize, 3), try readAt(f.handle, &buffer, 3));
    try std.testing.expectEqualStrings("def", buffer[0..3]);
    try std.testing.expectEqual(@as(usize, 0), try readAt(f.handle, &buffer, 6));
    try std.testing.expectEqual(@as(u64, 1), try f.getPos());
}
