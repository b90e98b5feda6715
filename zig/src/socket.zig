//! Stream sockets: TCP over IPv4 and IPv6, and unix-domain. Every socket pageio makes is non-blocking and
//! close-on-exec; waiting for one is the caller's (a readiness wait), never a blocked thread.
const std = @import("std");
const builtin = @import("builtin");
const errno = @import("errno.zig");
const Errno = errno.Errno;
const c = std.c;

/// Where a socket lives, in the order of the TypeScript transport names.
pub const Transport = enum(u32) { tcp, unix };

/// What an address turned out to be (`pageio_socket_address` reports it).
pub const Family = enum(u32) { ipv4, ipv6, unix };

/// Socket options, in the order of src/socket.ts `OPTION`.
pub const Option = enum(u32) { no_delay, keep_alive, reuse_address, reuse_port, unsent_bytes_max, cork };

pub const ListenFlags = packed struct(u32) {
    reuse_port: bool = false,
    _: u31 = 0,
};

pub const SendFlags = packed struct(u32) {
    /// More follows at once (MSG_MORE): a partial packet waits for the next send or sendfile to fill it.
    more: bool = false,
    _: u31 = 0,
};

/// Limit: a host text longer than any numeric IPv6 address (45 characters) or unix path (108 bytes) is refused.
pub const host_bytes_max = 256;

/// A parsed address and its length, ready for bind or connect.
const Address = struct {
    storage: c.sockaddr.storage = undefined,
    len: c.socklen_t = 0,

    fn ptr(self: *const Address) *const c.sockaddr {
        return @ptrCast(&self.storage);
    }
};

extern "c" fn inet_pton(af: c_int, src: [*:0]const u8, dst: *anyopaque) c_int;
extern "c" fn inet_ntop(af: c_int, src: *const anyopaque, dst: [*]u8, size: c.socklen_t) ?[*:0]const u8;

/// A numeric IPv4 or IPv6 address with a port, or a unix path. Anything else (a host name) is EINVAL: names are
/// resolved before they get here.
fn parse(transport: Transport, host: []const u8, port: u32) Errno!Address {
    // A unix path starting with NUL is an abstract address (Linux): a name with no file, all of its bytes its own.
    const abstract = builtin.os.tag == .linux and transport == .unix and host.len > 1 and host[0] == 0;
    const name = if (abstract) host[1..] else host;
    if (host.len >= host_bytes_max or std.mem.indexOfScalar(u8, name, 0) != null) return error.INVAL;
    var result: Address = .{};
    @memset(std.mem.asBytes(&result.storage), 0);
    if (transport == .unix) {
        var un: c.sockaddr.un = undefined;
        @memset(std.mem.asBytes(&un), 0);
        if (host.len == 0) return error.INVAL;
        // A path needs room for its terminating NUL (107 bytes of sun_path's 108); an abstract name has none, so
        // it may fill all 108 with its leading NUL, as the kernel takes it.
        if (host.len + @intFromBool(!abstract) > un.path.len) return error.NAMETOOLONG;
        un.family = c.AF.UNIX;
        @memcpy(un.path[0..host.len], host);
        @memcpy(std.mem.asBytes(&result.storage)[0..@sizeOf(c.sockaddr.un)], std.mem.asBytes(&un));
        // A path's length counts its terminating NUL; an abstract name's is its bytes alone (a NUL would be one).
        result.len = @intCast(@offsetOf(c.sockaddr.un, "path") + host.len + @intFromBool(!abstract));
        return result;
    }
    if (port > std.math.maxInt(u16)) return error.INVAL;
    var text: [host_bytes_max]u8 = undefined;
    @memcpy(text[0..host.len], host);
    text[host.len] = 0;
    const z: [*:0]const u8 = @ptrCast(&text);
    var in: c.sockaddr.in = .{ .port = std.mem.nativeToBig(u16, @intCast(port)), .addr = 0 };
    if (inet_pton(c.AF.INET, z, &in.addr) == 1) {
        @memcpy(std.mem.asBytes(&result.storage)[0..@sizeOf(c.sockaddr.in)], std.mem.asBytes(&in));
        result.len = @sizeOf(c.sockaddr.in);
        return result;
    }
    var in6: c.sockaddr.in6 = .{ .port = std.mem.nativeToBig(u16, @intCast(port)), .flowinfo = 0, .addr = undefined, .scope_id = 0 };
    if (inet_pton(c.AF.INET6, z, &in6.addr) == 1) {
        @memcpy(std.mem.asBytes(&result.storage)[0..@sizeOf(c.sockaddr.in6)], std.mem.asBytes(&in6));
        result.len = @sizeOf(c.sockaddr.in6);
        return result;
    }
    return error.INVAL;
}

fn familyOf(target: *const Address) c_uint {
    return @as(*const c.sockaddr, @ptrCast(&target.storage)).family;
}

/// A new non-blocking, close-on-exec stream socket of `domain`.
fn open(domain: c_uint) Errno!i32 {
    if (builtin.os.tag == .linux) {
        const fd = c.socket(domain, c.SOCK.STREAM | c.SOCK.NONBLOCK | c.SOCK.CLOEXEC, 0);
        if (fd < 0) return errno.last();
        return fd;
    }
    const fd = c.socket(domain, c.SOCK.STREAM, 0);
    if (fd < 0) return errno.last();
    errdefer _ = c.close(fd);
    try setFlags(fd);
    // macOS raises SIGPIPE on a write to a closed peer unless the socket says otherwise.
    if (builtin.os.tag.isDarwin()) try setInt(fd, c.SOL.SOCKET, c.SO.NOSIGPIPE, 1);
    return fd;
}

/// Where flags cannot be given at creation (macOS): set them right after.
fn setFlags(fd: i32) Errno!void {
    if (c.fcntl(fd, c.F.SETFD, @as(c_int, c.FD_CLOEXEC)) < 0) return errno.last();
    const flags = c.fcntl(fd, c.F.GETFL);
    if (flags < 0) return errno.last();
    if (c.fcntl(fd, c.F.SETFL, flags | @as(c_int, @bitCast(c.O{ .NONBLOCK = true }))) < 0) return errno.last();
}

fn setInt(fd: i32, level: i32, name: u32, value: c_int) Errno!void {
    if (c.setsockopt(fd, level, name, &value, @sizeOf(c_int)) != 0) return errno.last();
}

/// A listening socket bound to `host`:`port` (port 0: any free one) or to the unix path `host`.
/// TCP listeners set SO_REUSEADDR, as every server does: a restart must not wait out TIME_WAIT.
pub fn listen(transport: Transport, host: []const u8, port: u32, backlog: u32, flags: ListenFlags) Errno!i32 {
    const target = try parse(transport, host, port);
    const fd = try open(familyOf(&target));
    errdefer _ = c.close(fd);
    if (transport == .tcp) {
        try setInt(fd, c.SOL.SOCKET, c.SO.REUSEADDR, 1);
        if (flags.reuse_port) try setInt(fd, c.SOL.SOCKET, c.SO.REUSEPORT, 1);
    }
    if (c.bind(fd, target.ptr(), target.len) != 0) return errno.last();
    if (c.listen(fd, @min(backlog, std.math.maxInt(i32))) != 0) return errno.last();
    return fd;
}

/// The next connection waiting on `fd`, non-blocking and close-on-exec; AGAIN when none is waiting.
/// A connection reset before it was accepted is skipped, not reported: the listener is fine. So is one that Linux
/// hands over with its own network error pending (accept(2): "treat them like EAGAIN by retrying"); each such error
/// takes that connection off the queue, so the loop ends.
pub fn accept(fd: i32) Errno!i32 {
    while (true) {
        const rc = if (builtin.os.tag == .linux)
            c.accept4(fd, null, null, c.SOCK.NONBLOCK | c.SOCK.CLOEXEC)
        else
            c.accept(fd, null, null);
        if (rc >= 0) {
            if (builtin.os.tag != .linux) {
                errdefer _ = c.close(rc);
                try setFlags(rc);
                if (builtin.os.tag.isDarwin()) try setInt(rc, c.SOL.SOCKET, c.SO.NOSIGPIPE, 1);
            }
            return rc;
        }
        const err = errno.last();
        switch (err) {
            error.INTR, error.CONNABORTED => continue,
            else => if (!pendingNetworkError(err)) return err,
        }
    }
}

/// accept(2) on Linux: a network error already pending on the new connection, reported instead of it. Not EPERM:
/// a security module or seccomp refuses the call itself, before any connection is taken off the queue, so
/// retrying it would spin for ever.
fn pendingNetworkError(err: Errno) bool {
    return if (builtin.os.tag == .linux) switch (errno.toE(err)) {
        .PROTO, .NOPROTOOPT, .HOSTDOWN, .NONET, .HOSTUNREACH, .NETDOWN, .NETUNREACH => true,
        else => false,
    } else false;
}

test "accept retries only errors that took their connection off the queue" {
    if (builtin.os.tag != .linux) return error.SkipZigTest;
    try std.testing.expect(pendingNetworkError(error.PROTO));
    try std.testing.expect(pendingNetworkError(error.NETUNREACH));
    try std.testing.expect(!pendingNetworkError(error.PERM)); // refused before the dequeue
    try std.testing.expect(!pendingNetworkError(error.AGAIN));
    try std.testing.expect(!pendingNetworkError(error.MFILE));
}

/// Limit: the longest pause between tries of a connect to a unix listener whose backlog is full.
pub const backlog_retry_ms_max = 50;

/// A socket connecting to `host`:`port` (or the unix path `host`). With `wait_ms` 0 it returns at once and
/// `pending` says whether the connection is still being made (EINPROGRESS: wait until writable, then
/// `connectResult`); otherwise it waits up to `wait_ms` (maxInt(u32): no limit) and fails as the connect would.
/// A unix listener whose backlog is full refuses a non-blocking connect with EAGAIN, and no poll says when it
/// has room: with `wait_ms` 0 that is returned, otherwise the connect is tried again until `wait_ms` is up.
pub fn connect(transport: Transport, host: []const u8, port: u32, wait_ms: u32, pending: *bool) Errno!i32 {
    pending.* = false;
    const target = try parse(transport, host, port);
    const fd = try open(familyOf(&target));
    errdefer _ = c.close(fd);
    var waited_ms: u64 = 0;
    var pause_ms: u64 = 1;
    while (c.connect(fd, target.ptr(), target.len) != 0) {
        const err = errno.last();
        switch (err) {
            error.INTR => {}, // the connect goes on in the background: wait for it like EINPROGRESS
            error.INPROGRESS => {},
            error.AGAIN => {
                if (transport != .unix or wait_ms == 0) return err;
                if (wait_ms != std.math.maxInt(u32) and waited_ms >= wait_ms) return error.TIMEDOUT;
                std.Thread.sleep(pause_ms * std.time.ns_per_ms);
                waited_ms += pause_ms;
                pause_ms = @min(2 * pause_ms, backlog_retry_ms_max);
                continue;
            },
            else => return err,
        }
        if (wait_ms == 0) {
            pending.* = true;
            return fd;
        }
        try waitWritable(fd, wait_ms);
        try connectResult(fd);
        return fd;
    }
    return fd;
}

fn waitWritable(fd: i32, wait_ms: u32) Errno!void {
    var poll_fd = [1]c.pollfd{.{ .fd = fd, .events = c.POLL.OUT, .revents = 0 }};
    const timeout: c_int = if (wait_ms == std.math.maxInt(u32)) -1 else @intCast(@min(wait_ms, std.math.maxInt(i31)));
    while (true) {
        const rc = c.poll(&poll_fd, 1, timeout);
        if (rc > 0) return;
        if (rc == 0) return error.TIMEDOUT;
        const err = errno.last();
        if (err != error.INTR) return err;
    }
}

/// How a non-blocking connect ended (SO_ERROR): nothing when connected, else its error.
pub fn connectResult(fd: i32) Errno!void {
    var value: c_int = 0;
    var len: c.socklen_t = @sizeOf(c_int);
    if (c.getsockopt(fd, c.SOL.SOCKET, c.SO.ERROR, &value, &len) != 0) return errno.last();
    if (value != 0) return errno.fromE(@enumFromInt(value));
}

fn optionName(option: Option) struct { level: i32, name: u32 } {
    return switch (option) {
        .no_delay => .{ .level = c.IPPROTO.TCP, .name = 1 }, // TCP_NODELAY is 1 on Linux and macOS
        .keep_alive => .{ .level = c.SOL.SOCKET, .name = c.SO.KEEPALIVE },
        .reuse_address => .{ .level = c.SOL.SOCKET, .name = c.SO.REUSEADDR },
        .reuse_port => .{ .level = c.SOL.SOCKET, .name = c.SO.REUSEPORT },
        // TCP_NOTSENT_LOWAT: 25 on Linux, 0x201 on macOS.
        .unsent_bytes_max => .{ .level = c.IPPROTO.TCP, .name = if (builtin.os.tag == .linux) 25 else 0x201 },
        // TCP_CORK on Linux (3); TCP_NOPUSH on macOS (4), which holds partial frames the same way.
        .cork => .{ .level = c.IPPROTO.TCP, .name = if (builtin.os.tag == .linux) 3 else 4 },
    };
}

pub fn setOption(fd: i32, option: Option, value: i32) Errno!void {
    const o = optionName(option);
    try setInt(fd, o.level, o.name, value);
}

pub fn getOption(fd: i32, option: Option) Errno!u32 {
    const o = optionName(option);
    var value: c_int = 0;
    var len: c.socklen_t = @sizeOf(c_int);
    if (c.getsockopt(fd, o.level, o.name, &value, &len) != 0) return errno.last();
    return switch (option) {
        .unsent_bytes_max => @as(u32, @bitCast(value)), // bytes (0xFFFFFFFF: no limit)
        else => @intFromBool(value != 0),
    };
}

pub const Shutdown = enum(u32) { read, write, both };

pub fn shutdown(fd: i32, how: Shutdown) Errno!void {
    const h: c_int = switch (how) {
        .read => c.SHUT.RD,
        .write => c.SHUT.WR,
        .both => c.SHUT.RDWR,
    };
    if (c.shutdown(fd, h) != 0) return errno.last();
}

pub const Named = struct { family: Family, port: u16, text_len: usize };

/// The socket's own address (`peer` false) or its peer's, as text in `out` (an IP address without brackets,
/// or a unix path: empty for an unnamed socket, starting with NUL for an abstract one).
pub fn addressOf(fd: i32, peer: bool, out: []u8) Errno!Named {
    var storage: c.sockaddr.storage = undefined;
    var len: c.socklen_t = @sizeOf(c.sockaddr.storage);
    const sa: *c.sockaddr = @ptrCast(&storage);
    const rc = if (peer) c.getpeername(fd, sa, &len) else c.getsockname(fd, sa, &len);
    if (rc != 0) return errno.last();
    switch (sa.family) {
        c.AF.INET, c.AF.INET6 => {
            const v4 = sa.family == c.AF.INET;
            const in: *const c.sockaddr.in = @ptrCast(@alignCast(sa));
            const in6: *const c.sockaddr.in6 = @ptrCast(@alignCast(sa));
            if (out.len < 46) return error.RANGE; // INET6_ADDRSTRLEN
            const src: *const anyopaque = if (v4) @ptrCast(&in.addr) else @ptrCast(&in6.addr);
            const text = inet_ntop(sa.family, src, out.ptr, @intCast(out.len)) orelse return errno.last();
            return .{
                .family = if (v4) .ipv4 else .ipv6,
                .port = std.mem.bigToNative(u16, if (v4) in.port else in6.port),
                .text_len = std.mem.len(text),
            };
        },
        c.AF.UNIX => {
            const offset = @offsetOf(c.sockaddr.un, "path");
            const un: *const c.sockaddr.un = @ptrCast(@alignCast(sa));
            const path_len = if (len <= offset) 0 else @min(len - offset, un.path.len);
            var path: []const u8 = un.path[0..path_len];
            // A named socket's path ends at its NUL; an abstract one starts with NUL and is all its bytes.
            if (path.len > 0 and path[0] != 0) path = std.mem.sliceTo(path, 0);
            if (out.len < path.len) return error.RANGE;
            @memcpy(out[0..path.len], path);
            return .{ .family = .unix, .port = 0, .text_len = path.len };
        },
        else => return error.AFNOSUPPORT,
    }
}

/// Takes over a stream socket opened elsewhere (another library's connection). With `duplicate` it works on a
/// close-on-exec copy, so each owner closes its own descriptor; either way the socket becomes non-blocking
/// (a flag both descriptors share). NOTSOCK for a descriptor that is not a stream socket.
/// `taken_over_held`: `fd` itself would be taken over while pageio holds it open already (refused).
pub fn adopt(fd: i32, duplicate: bool, taken_over_held: bool) Errno!i32 {
    // F_DUPFD_CLOEXEC: 1030 on Linux (missing from this std's table), 67 on macOS.
    const dupfd_cloexec: c_int = if (builtin.os.tag == .linux) 1030 else c.F.DUPFD_CLOEXEC;
    var kind: c_int = 0;
    var len: c.socklen_t = @sizeOf(c_int);
    if (c.getsockopt(fd, c.SOL.SOCKET, c.SO.TYPE, &kind, &len) != 0) return errno.last();
    if (kind != c.SOCK.STREAM) return error.PROTOTYPE; // a datagram (UDP) or raw socket: no stream to carry
    // A listener's reads and writes are all ENOTCONN: refused here, not as a Socket that fails at its first use.
    var listening: c_int = 0;
    if (c.getsockopt(fd, c.SOL.SOCKET, c.SO.ACCEPTCONN, &listening, &len) != 0) return errno.last();
    if (listening != 0) return error.INVAL;
    // Taken over, a number pageio already holds would have two owners: the first close leaves the other writing
    // into whatever file gets the number next.
    if (taken_over_held) return error.BUSY;
    const own = if (duplicate) c.fcntl(fd, dupfd_cloexec, @as(c_int, 0)) else fd;
    if (own < 0) return errno.last();
    errdefer if (duplicate) {
        _ = c.close(own);
    };
    try setFlags(own);
    return own;
}

/// Sends what stream socket `fd` takes of `bytes` now (never waits, never raises SIGPIPE): the bytes sent, AGAIN
/// when its buffer is full. With `more`, a response's head held this way leaves in one packet with the start of
/// the body sent next, where a plain write would go out (and wake the peer) on its own.
pub fn send(fd: i32, bytes: []const u8, flags: SendFlags) Errno!usize {
    var how: u32 = 0;
    if (builtin.os.tag == .linux) {
        const MSG = std.os.linux.MSG;
        how = MSG.DONTWAIT | MSG.NOSIGNAL;
        if (flags.more) how |= MSG.MORE;
    }
    while (true) {
        const rc = c.send(fd, bytes.ptr, bytes.len, how);
        if (rc >= 0) return @intCast(rc);
        const err = errno.last();
        if (err != error.INTR) return err;
    }
}

comptime {
    std.debug.assert(@sizeOf(ListenFlags) == 4);
    std.debug.assert(@sizeOf(SendFlags) == 4);
    std.debug.assert(@sizeOf(c.sockaddr.storage) >= @sizeOf(c.sockaddr.un));
}

test "listen on a free port, connect, accept, and see both addresses" {
    const server = try listen(.tcp, "127.0.0.1", 0, 16, .{});
    defer _ = c.close(server);
    var text: [64]u8 = undefined;
    const local = try addressOf(server, false, &text);
    try std.testing.expectEqual(Family.ipv4, local.family);
    try std.testing.expectEqualStrings("127.0.0.1", text[0..local.text_len]);
    try std.testing.expect(local.port != 0);
    try std.testing.expectError(error.AGAIN, accept(server));

    var pending = false;
    const client = try connect(.tcp, "127.0.0.1", local.port, 5000, &pending);
    defer _ = c.close(client);
    try std.testing.expect(!pending);
    const conn = try accept(server);
    defer _ = c.close(conn);
    try std.testing.expect(c.fcntl(conn, c.F.GETFD) & c.FD_CLOEXEC != 0);
    try std.testing.expect(c.fcntl(conn, c.F.GETFL) & @as(c_int, @bitCast(c.O{ .NONBLOCK = true })) != 0);
    const peer = try addressOf(conn, true, &text);
    try std.testing.expectEqual((try addressOf(client, false, &text)).port, peer.port);

    try setOption(conn, .no_delay, 1);
    try std.testing.expectEqual(@as(u32, 1), try getOption(conn, .no_delay));
    try setOption(conn, .unsent_bytes_max, 65536);
    try std.testing.expectEqual(@as(u32, 65536), try getOption(conn, .unsent_bytes_max));
    try setOption(conn, .cork, 1);
    try std.testing.expectEqual(@as(u32, 1), try getOption(conn, .cork));
    try setOption(conn, .cork, 0);
    try std.testing.expectEqual(@as(u32, 0), try getOption(conn, .cork));
    try setOption(conn, .keep_alive, 0);
    try std.testing.expectEqual(@as(u32, 0), try getOption(conn, .keep_alive));
    try shutdown(client, .write);
    var buf: [4]u8 = undefined;
    var poll_fd = [1]c.pollfd{.{ .fd = conn, .events = c.POLL.IN, .revents = 0 }};
    _ = c.poll(&poll_fd, 1, 5000);
    try std.testing.expectEqual(@as(usize, 0), try std.posix.read(conn, &buf)); // the client's half-close
}

test "the OS's errors come back: a port in use, nothing listening, not an address" {
    const server = try listen(.tcp, "127.0.0.1", 0, 1, .{});
    var text: [64]u8 = undefined;
    const port = (try addressOf(server, false, &text)).port;
    try std.testing.expectError(error.ADDRINUSE, listen(.tcp, "127.0.0.1", port, 1, .{}));
    _ = c.close(server);
    var pending = false;
    try std.testing.expectError(error.CONNREFUSED, connect(.tcp, "127.0.0.1", port, 5000, &pending));
    try std.testing.expectError(error.INVAL, listen(.tcp, "localhost", 0, 1, .{}));
    try std.testing.expectError(error.INVAL, listen(.tcp, "127.0.0.1", 65536, 1, .{}));
    try std.testing.expectError(error.INVAL, listen(.tcp, "1.2.3.4\x00", 0, 1, .{}));
    try std.testing.expectError(error.NAMETOOLONG, listen(.unix, "/tmp/" ++ "x" ** 120, 0, 1, .{}));
    if (builtin.os.tag == .linux) {
        // An abstract name fills sun_path whole (its leading NUL and 107 bytes); one byte more is too long.
        var name: [109]u8 = undefined;
        @memset(&name, 'a');
        _ = try std.fmt.bufPrint(&name, "\x00pageio-{d}-", .{c.getpid()}); // one name per test process
        const longest = try listen(.unix, name[0..108], 0, 1, .{});
        defer _ = c.close(longest);
        var abstract_pending = false;
        const client = try connect(.unix, name[0..108], 0, 5000, &abstract_pending);
        _ = c.close(client);
        var seen: [128]u8 = undefined;
        const named = try addressOf(longest, false, &seen);
        try std.testing.expectEqualSlices(u8, name[0..108], seen[0..named.text_len]);
        try std.testing.expectError(error.NAMETOOLONG, listen(.unix, name[0..109], 0, 1, .{}));
    }
    try std.testing.expectError(error.BADF, accept(-1));
    try std.testing.expectError(error.BADF, adopt(-1, true, false));
    try std.testing.expectError(error.NOTSOCK, adopt(0, true, false) catch |err| if (err == error.BADF) error.NOTSOCK else err);
}

test "an adopted socket is a non-blocking, close-on-exec copy that still works" {
    var fds: [2]i32 = undefined;
    try std.testing.expectEqual(@as(c_int, 0), c.socketpair(c.AF.UNIX, c.SOCK.STREAM, 0, &fds));
    defer _ = c.close(fds[1]);
    const copy = try adopt(fds[0], true, false);
    _ = c.close(fds[0]);
    defer _ = c.close(copy);
    try std.testing.expect(c.fcntl(copy, c.F.GETFD) & c.FD_CLOEXEC != 0);
    var buf: [4]u8 = undefined;
    try std.testing.expectError(error.WouldBlock, std.posix.read(copy, &buf));
    _ = try std.posix.write(fds[1], "hi");
    try std.testing.expectEqualStrings("hi", buf[0..try std.posix.read(copy, &buf)]);
    var dgram: [2]i32 = undefined;
    try std.testing.expectEqual(@as(c_int, 0), c.socketpair(c.AF.UNIX, c.SOCK.DGRAM, 0, &dgram));
    defer for (dgram) |fd| {
        _ = c.close(fd);
    };
    try std.testing.expectError(error.PROTOTYPE, adopt(dgram[0], true, false));
    const listener = try listen(.tcp, "127.0.0.1", 0, 4, .{});
    defer _ = c.close(listener);
    try std.testing.expectError(error.INVAL, adopt(listener, true, false));
}

test "a non-blocking connect reports its outcome through SO_ERROR" {
    const server = listen(.tcp, "::1", 0, 4, .{ .reuse_port = true }) catch |err| switch (err) {
        error.ADDRNOTAVAIL, error.AFNOSUPPORT => return error.SkipZigTest, // no IPv6 here
        else => return err,
    };
    defer _ = c.close(server);
    var text: [64]u8 = undefined;
    const local = try addressOf(server, false, &text);
    try std.testing.expectEqual(Family.ipv6, local.family);
    try std.testing.expectEqualStrings("::1", text[0..local.text_len]);
    try std.testing.expectEqual(@as(u32, 1), try getOption(server, .reuse_port));
    var pending = false;
    const client = try connect(.tcp, "::1", local.port, 0, &pending);
    defer _ = c.close(client);
    if (pending) try waitWritable(client, 5000);
    try connectResult(client);
}

test "unix sockets: listen on a path, connect, and name both ends" {
    var tmp = std.testing.tmpDir(.{});
    defer tmp.cleanup();
    var dir_buf: [std.fs.max_path_bytes]u8 = undefined;
    const dir = try tmp.dir.realpath(".", &dir_buf);
    var path_buf: [200]u8 = undefined;
    const path = try std.fmt.bufPrint(&path_buf, "{s}/s", .{dir});
    const server = try listen(.unix, path, 0, 4, .{});
    defer _ = c.close(server);
    var text: [200]u8 = undefined;
    const local = try addressOf(server, false, &text);
    try std.testing.expectEqual(Family.unix, local.family);
    try std.testing.expectEqualStrings(path, text[0..local.text_len]);
    var pending = false;
    const client = try connect(.unix, path, 0, 5000, &pending);
    defer _ = c.close(client);
    const conn = try accept(server);
    defer _ = c.close(conn);
    try std.testing.expectEqual(@as(usize, 0), (try addressOf(client, false, &text)).text_len); // unnamed
    try std.testing.expectError(error.ADDRINUSE, listen(.unix, path, 0, 4, .{}));
}

test "send with more holds the head for the data after it; AGAIN once full" {
    const server = try listen(.tcp, "127.0.0.1", 0, 16, .{});
    defer _ = c.close(server);
    var text: [64]u8 = undefined;
    const local = try addressOf(server, false, &text);
    var pending = false;
    const client = try connect(.tcp, text[0..local.text_len], local.port, 1000, &pending);
    defer _ = c.close(client);
    const conn = try accept(server);
    defer _ = c.close(conn);
    try std.testing.expectEqual(@as(usize, 4), try send(conn, "head", .{ .more = true }));
    try std.testing.expectEqual(@as(usize, 4), try send(conn, "body", .{}));
    var got: [16]u8 = undefined;
    var n: usize = 0;
    var tries: usize = 0;
    while (n < 8 and tries < 1000) : (tries += 1) {
        const rc = c.recv(client, got[n..].ptr, got.len - n, 0);
        if (rc > 0) n += @intCast(rc);
    }
    try std.testing.expectEqualStrings("headbody", got[0..n]);
    const big = [_]u8{7} ** 65536;
    var total: usize = 0;
    const full = while (total < 1 << 30) {
        total += send(conn, &big, .{}) catch |err| break err;
    } else error.NOSPC;
    try std.testing.expectEqual(error.AGAIN, full);
    try std.testing.expectError(error.BADF, send(-1, "x", .{}));
}
