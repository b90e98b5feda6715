//! io_uring with a provided buffer ring against readiness (epoll + non-blocking read) for pipe and socket reads,
//! on one thread and in pageio's shape (a waiter thread waits, a doorbell wakes the thread that does the I/O).
//!
//! Run (from zig/): zig build bench-uring   (`-- quick`: 32 MiB, 2 000 trips; on a shared machine wrap it in flock)
//! Not part of `zig build` or `zig build test`. Linux only. Every stream is checked (first and last byte of each
//! read against its offset, total byte count); "wait" counts the slow path (EAGAIN then a wait), "csw" voluntary
//! context switches of the whole process, "cpu" its CPU time; ratios are against the epoll row of the same shape.
//!
//! Linux 6.18 (Firecracker VM), 2 vCPUs, other load beside it; the full run, as committed:
//!
//! kernel 6.18.44-fc-v1045, io_uring_disabled=0, uid 0
//! probe: setup null, buffer ring null, READ bufsel on a pipe null, RECV_MULTISHOT on a socket null; features 0x3ffff
//! setup flags: SINGLE_ISSUER true, SINGLE_ISSUER|DEFER_TASKRUN true, COOP_TASKRUN true, COOP_TASKRUN|TASKRUN_FLAG true
//! seccomp io_uring_setup -> NOSYS: probe says fall back to epoll (setup error.SystemOutdated, buffer ring null)
//! seccomp io_uring_setup -> PERM: probe says fall back to epoll (setup error.PermissionDenied, buffer ring null)
//! seccomp io_uring_register -> PERM: probe says fall back to epoll (setup null, buffer ring error.Refused)
//!
//! 256 MiB per throughput run, 20000 round trips per latency run; median of 5 runs [min-max]
//!
//! pipe, 64 KiB writes
//!                                                   MiB/s [min-max] |    cpu |   KiB |  wait |   csw | speed vs
//!                                                                   | us/MiB | /read | /read | /read |
//!   blocking read (floor)                             662 [573-696] |   1374 |  64.0 |  0.00 |  1.59 | 0.85x epoll, one thread
//!   epoll + read, one thread                          781 [660-996] |   1066 |  64.0 |  0.65 |  1.39
//!   uring READ bufsel                                 793 [749-973] |   1097 |  64.0 |  0.00 |  1.57 | 1.02x epoll, one thread
//!   uring READ bufsel, DEFER_TASKRUN                  748 [551-962] |   1127 |  64.0 |  0.00 |  1.42 | 0.96x epoll, one thread
//!   [pageio] epoll waiter thread + bell               779 [441-833] |    976 |  64.0 |  0.89 |  2.66
//!   [pageio] uring main-owned, waiter enter         1034 [882-1424] |   1072 |  64.0 |  0.33 |  1.93 | 1.33x epoll waiter
//!   [pageio] uring main-owned, IOSQE_ASYNC            772 [690-827] |   1149 |  64.0 |  0.95 |  5.00 | 0.99x epoll waiter
//!   [pageio] uring poller-owned, DEFER_TASKRUN      1022 [911-1354] |    992 |  64.0 |  0.53 |  1.89 | 1.31x epoll waiter
//!
//! pipe, 8 KiB writes
//!                                                   MiB/s [min-max] |    cpu |   KiB |  wait |   csw | speed vs
//!                                                                   | us/MiB | /read | /read | /read |
//!   blocking read (floor)                          2052 [1590-2385] |    623 |  11.9 |  0.00 |  0.22 | 1.53x epoll, one thread
//!   epoll + read, one thread                       1346 [1185-5713] |    934 |  48.8 |  0.12 |  0.21
//!   uring READ bufsel                              1443 [1246-2976] |    900 |  17.2 |  0.00 |  0.15 | 1.07x epoll, one thread
//!   uring READ bufsel, DEFER_TASKRUN               1296 [1085-2231] |    956 |   9.5 |  0.00 |  0.17 | 0.96x epoll, one thread
//!   [pageio] epoll waiter thread + bell              855 [763-1700] |   1111 |   9.6 |  0.19 |  0.56
//!   [pageio] uring main-owned, waiter enter        1337 [1206-1487] |    884 |  12.2 |  0.06 |  0.38 | 1.56x epoll waiter
//!   [pageio] uring main-owned, IOSQE_ASYNC           746 [629-1413] |   1200 |  38.9 |  0.97 |  4.75 | 0.87x epoll waiter
//!   [pageio] uring poller-owned, DEFER_TASKRUN     2124 [1295-2543] |    730 |  21.8 |  0.02 |  0.06 | 2.48x epoll waiter
//!
//! socketpair, 64 KiB writes
//!                                                   MiB/s [min-max] |    cpu |   KiB |  wait |   csw | speed vs
//!                                                                   | us/MiB | /read | /read | /read |
//!   blocking read (floor)                          3667 [3096-3950] |    400 |  59.1 |  0.00 |  0.21 | 0.98x epoll, one thread
//!   epoll + read, one thread                       3744 [3617-4048] |    390 |  58.7 |  0.24 |  0.23
//!   uring READ bufsel                              4143 [3533-4346] |    369 |  59.3 |  0.00 |  0.22 | 1.11x epoll, one thread
//!   uring READ bufsel, DEFER_TASKRUN               4036 [3957-4226] |    376 |  59.1 |  0.00 |  0.22 | 1.08x epoll, one thread
//!   uring RECV_MULTISHOT                           3917 [3233-4381] |    368 |  57.7 |  0.00 |  0.23 | 1.05x epoll, one thread
//!   [pageio] epoll waiter thread + bell            3382 [2697-3552] |    390 |  58.3 |  0.18 |  0.48
//!   [pageio] uring main-owned, waiter enter        5116 [3258-7987] |    206 |  53.0 |  0.08 |  0.45 | 1.51x epoll waiter
//!   [pageio] uring main-owned, IOSQE_ASYNC           826 [762-2135] |   1041 |  63.0 |  0.99 |  3.65 | 0.24x epoll waiter
//!   [pageio] uring poller-owned, DEFER_TASKRUN     4617 [3562-4848] |    386 |  61.1 |  0.40 |  0.48 | 1.37x epoll waiter
//!
//! socketpair, 8 KiB writes
//!                                                   MiB/s [min-max] |    cpu |   KiB |  wait |   csw | speed vs
//!                                                                   | us/MiB | /read | /read | /read |
//!   blocking read (floor)                          3494 [3364-3704] |    513 |  63.3 |  0.00 |  0.10 | 1.10x epoll, one thread
//!   epoll + read, one thread                        3181 [300-3329] |    591 |  63.2 |  0.07 |  0.04
//!   uring READ bufsel                               3319 [579-3637] |    571 |  63.5 |  0.00 |  0.03 | 1.04x epoll, one thread
//!   uring READ bufsel, DEFER_TASKRUN               3331 [3179-3489] |    571 |  62.8 |  0.00 |  0.03 | 1.05x epoll, one thread
//!   uring RECV_MULTISHOT                           3319 [2583-3426] |    565 |  62.0 |  0.00 |  0.04 | 1.04x epoll, one thread
//!   [pageio] epoll waiter thread + bell            3021 [2703-3415] |    611 |  61.6 |  0.06 |  0.15
//!   [pageio] uring main-owned, waiter enter        2680 [2335-3071] |    605 |  62.5 |  0.06 |  0.21 | 0.89x epoll waiter
//!   [pageio] uring main-owned, IOSQE_ASYNC           777 [583-2568] |   1075 |  63.7 |  1.00 |  4.05 | 0.26x epoll waiter
//!   [pageio] uring poller-owned, DEFER_TASKRUN     3454 [3135-3693] |    544 |  63.7 |  0.02 |  0.06 | 1.14x epoll waiter
//!
//! 64 B ping-pong, echo thread
//!                                                   us/rt [min-max] |    cpu | wait |  csw | speed vs
//!                                                                   |  us/rt |  /rt |  /rt |
//!   blocking write + read (floor)                35.77 [31.47-48.55] |  25.07 | 0.00 | 1.56 | 1.10x epoll, one thread
//!   epoll + read, one thread                     39.31 [31.16-51.55] |  28.13 | 0.73 | 1.63
//!   uring WRITE+READ, submit_and_wait            42.60 [26.25-54.65] |  30.01 | 0.00 | 1.75 | 0.92x epoll, one thread
//!   uring WRITE+READ, DEFER_TASKRUN              36.06 [21.62-43.03] |  25.10 | 0.00 | 1.67 | 1.09x epoll, one thread
//!   [pageio] epoll waiter thread + bell          52.37 [32.83-60.55] |  39.00 | 0.83 | 2.65
//!   [pageio] uring main-owned, waiter enter      64.31 [25.67-68.06] |  49.24 | 0.78 | 3.88 | 0.81x epoll waiter
//!   [pageio] uring main-owned, IOSQE_ASYNC       76.87 [72.82-80.83] |  60.63 | 1.00 | 4.74 | 0.68x epoll waiter
//!   [pageio] uring poller-owned, DEFER_TASKRUN   19.21 [16.49-28.98] |  15.27 | 0.24 | 1.65 | 2.73x epoll waiter
//!
//! 64 B ping-pong, cat child
//!                                                   us/rt [min-max] |    cpu | wait |  csw | speed vs
//!                                                                   |  us/rt |  /rt |  /rt |
//!   blocking write + read (floor)                40.35 [31.86-52.49] |  14.08 | 0.00 | 0.88 | 1.31x epoll, one thread
//!   epoll + read, one thread                     52.74 [17.66-70.05] |  18.82 | 0.85 | 0.85
//!   uring WRITE+READ, submit_and_wait            42.24 [3.41-55.53] |  15.13 | 0.00 | 1.00 | 1.25x epoll, one thread
//!   uring WRITE+READ, DEFER_TASKRUN              47.09 [23.25-67.39] |  17.07 | 0.00 | 1.00 | 1.12x epoll, one thread
//!   [pageio] epoll waiter thread + bell          55.98 [39.82-62.66] |  27.38 | 0.86 | 1.71
//!   [pageio] uring main-owned, waiter enter      66.77 [45.68-71.11] |  28.49 | 0.82 | 2.67 | 0.84x epoll waiter
//!   [pageio] uring main-owned, IOSQE_ASYNC       80.64 [76.43-83.00] |  53.09 | 1.00 | 3.74 | 0.69x epoll waiter
//!   [pageio] uring poller-owned, DEFER_TASKRUN   20.16 [13.86-24.69] |  12.53 | 0.25 | 0.67 | 2.78x epoll waiter
//!
//! The same machine in a quiet moment (`-- quick`, medians of 3), the rows that decide:
//!   64 B ping-pong, echo thread:  epoll waiter 3.17 us, uring poller-owned 3.88 (0.82x), uring main-owned 4.53 (0.70x)
//!   64 B ping-pong, cat child:    epoll waiter 4.25 us, uring poller-owned 5.49 (0.77x), uring main-owned 6.54 (0.65x)
//!   pipe 64 KiB:                  epoll waiter 7238 MiB/s, poller-owned 7334 (1.01x), main-owned 7088 (0.98x)
//!   socketpair 8 KiB:             epoll waiter 4176 MiB/s, poller-owned 4569 (1.09x), main-owned 4823 (1.15x)
//!   one thread, 64 B cat ping-pong: epoll 3.29 us, uring WRITE+READ in one enter 3.82 (0.86x), DEFER_TASKRUN 3.57
//!
//! Reading it: the VM is throttled under sustained load (a 2 s quick run took 12-20 s later on), and then every
//! figure stretches 5-10x and the pageio-shape ratios swing from 0.8x to 2.8x (one quick run: 10x) with the share
//! of round trips that had to wait, not with the cost of a wait. Quiet, io_uring is no faster where pageio would
//! use it: a wait costs more (a request has to reach the ring's thread; a main-owned ring's task work runs on the
//! parked main thread, so a completion takes three wake-ups, and IOSQE_ASYNC hands every read to io-wq: 0.25-0.7x),
//! and data that is already there costs one system call either way (read(2), or io_uring_enter).
const std = @import("std");
const builtin = @import("builtin");
const linux = std.os.linux;
const posix = std.posix;
const IoUring = linux.IoUring;
const Futex = std.Thread.Futex;

/// Bytes per read buffer: one pool page run, page-aligned.
const chunk = 64 * 1024;
/// Buffers in the pool; the provided buffer ring gets `ring_buffers` of them.
const pool_count = 16;
const ring_buffers = 8;
/// Round trips carry this many bytes each way.
const ping_size = 64;

var total_bytes: usize = 256 << 20;
var runs: usize = 5;
var round_trips: usize = 20_000;

// ---------------------------------------------------------------------------------------------------------------
// Shared pieces: buffers, the stream check, the writer, the doorbell.

const Pool = struct {
    mem: []align(std.mem.page_size) u8,

    fn init() !Pool {
        const mem = try posix.mmap(null, pool_count * chunk, posix.PROT.READ | posix.PROT.WRITE, .{ .TYPE = .PRIVATE, .ANONYMOUS = true, .POPULATE = true }, -1, 0);
        return .{ .mem = mem };
    }
    fn buf(self: Pool, i: usize) []u8 {
        return self.mem[(i % pool_count) * chunk ..][0..chunk];
    }
};

/// Every byte at stream offset k is k % 251: a read's first and last byte show loss, duplication or reordering.
fn pattern(k: u64) u8 {
    return @intCast(k % 251);
}

/// Waits (EAGAIN then a wait, or a park) in the current run: how often the slow path ran.
var waits: usize = 0;
var last_waits: usize = 0;

const Check = struct {
    offset: u64 = 0,
    reads: usize = 0,
    fn take(self: *Check, data: []const u8) void {
        if (data.len == 0) return;
        self.reads += 1;
        if (data[0] != pattern(self.offset) or data[data.len - 1] != pattern(self.offset + data.len - 1))
            std.debug.panic("stream corrupted at {d}", .{self.offset});
        self.offset += data.len;
    }
};

var pattern_buf: [chunk + 251]u8 = undefined;

fn writer(fd: i32, bytes: usize, piece: usize) void {
    var off: usize = 0;
    while (off < bytes) {
        const n = @min(piece, bytes - off);
        off += posix.write(fd, pattern_buf[off % 251 ..][0..n]) catch |e| std.debug.panic("writer: {s}", .{@errorName(e)});
    }
    posix.close(fd); // the reader sees EOF
}

/// Stands for the doorbell that wakes the JS thread (a futex here; a runtime's thread-safe callback in pageio).
/// 0 idle, 1 parked, 2 rung: ringing a thread that is not parked costs no system call.
const Bell = struct {
    word: std.atomic.Value(u32) = std.atomic.Value(u32).init(0),
    fn ring(self: *Bell) void {
        if (self.word.swap(2, .acq_rel) == 1) Futex.wake(&self.word, 1);
    }
    fn park(self: *Bell) void {
        if (self.word.cmpxchgStrong(0, 1, .acq_rel, .acquire) == null) {
            while (self.word.load(.acquire) == 1) Futex.wait(&self.word, 1);
        }
        self.word.store(0, .release);
    }
};

fn setNonblock(fd: i32, on: bool) void {
    const flags = posix.fcntl(fd, posix.F.GETFL, 0) catch unreachable;
    const bit: usize = @as(u32, @bitCast(posix.O{ .NONBLOCK = true }));
    _ = posix.fcntl(fd, posix.F.SETFL, if (on) flags | bit else flags & ~bit) catch unreachable;
}

const Kind = enum { pipe, socket };

fn channel(kind: Kind) ![2]i32 {
    switch (kind) {
        .pipe => return posix.pipe2(.{ .CLOEXEC = true }),
        .socket => {
            var fds: [2]i32 = undefined;
            const rc = linux.socketpair(linux.AF.UNIX, linux.SOCK.STREAM | linux.SOCK.CLOEXEC, 0, &fds);
            if (linux.E.init(rc) != .SUCCESS) return error.SocketPair;
            return fds;
        },
    }
}

fn epollArm(ep: i32, fd: i32, added: *bool) void {
    var ev = linux.epoll_event{ .events = linux.EPOLL.IN | linux.EPOLL.RDHUP | linux.EPOLL.ONESHOT, .data = .{ .fd = fd } };
    posix.epoll_ctl(ep, if (added.*) linux.EPOLL.CTL_MOD else linux.EPOLL.CTL_ADD, fd, &ev) catch |e| std.debug.panic("epoll_ctl: {s}", .{@errorName(e)});
    added.* = true;
}

fn prepRead(ring: *IoUring, fd: i32, kind: Kind, group: u16, len: u32, user_data: u64, sqe_flags: u8) !void {
    const sqe = switch (kind) {
        .pipe => try ring.read(user_data, fd, .{ .buffer_selection = .{ .group_id = group, .len = len } }, std.math.maxInt(u64)),
        .socket => blk: {
            const s = try ring.get_sqe();
            s.prep_rw(.RECV, fd, 0, len, 0);
            s.flags |= linux.IOSQE_BUFFER_SELECT;
            s.buf_index = group;
            s.user_data = user_data;
            break :blk s;
        },
    };
    sqe.flags |= sqe_flags;
}

fn cqeError(cqe: linux.io_uring_cqe) noreturn {
    std.debug.panic("cqe user_data={d}: {s}", .{ cqe.user_data, @tagName(cqe.err()) });
}

// ---------------------------------------------------------------------------------------------------------------
// a) Throughput: one reader of a stream until EOF. Each returns nothing; the caller checks the byte count.

const Reader = struct {
    fd: i32,
    kind: Kind,
    pool: Pool,
    check: Check = .{},
};

fn readBlocking(r: *Reader) !void {
    var i: usize = 0;
    while (true) : (i += 1) {
        const b = r.pool.buf(i);
        const n = try posix.read(r.fd, b);
        if (n == 0) return;
        r.check.take(b[0..n]);
    }
}

/// The shape of src/reactor.ts on one thread: try the read; on EAGAIN arm a oneshot interest and wait.
fn readEpoll(r: *Reader) !void {
    setNonblock(r.fd, true);
    const ep = try posix.epoll_create1(linux.EPOLL.CLOEXEC);
    defer posix.close(ep);
    var added = false;
    var i: usize = 0;
    while (true) {
        const b = r.pool.buf(i);
        const n = posix.read(r.fd, b) catch |e| switch (e) {
            error.WouldBlock => {
                waits += 1;
                epollArm(ep, r.fd, &added);
                var out: [1]linux.epoll_event = undefined;
                _ = posix.epoll_wait(ep, &out, -1);
                continue;
            },
            else => return e,
        };
        if (n == 0) return;
        r.check.take(b[0..n]);
        i += 1;
    }
}

/// Single-shot READ (RECV on a socket) with IOSQE_BUFFER_SELECT: the kernel picks the buffer.
fn readUring(r: *Reader, flags: u32) !void {
    var ring = try IoUring.init(16, flags);
    defer ring.deinit();
    var group = try IoUring.BufferGroup.init(&ring, 1, r.pool.mem, chunk, pool_count);
    defer group.deinit();
    try prepRead(&ring, r.fd, r.kind, 1, chunk, 1, 0);
    var cqes: [16]linux.io_uring_cqe = undefined;
    while (true) {
        _ = try ring.submit_and_wait(1);
        const n = try ring.copy_cqes(&cqes, 0);
        for (cqes[0..n]) |cqe| {
            if (cqe.res < 0) cqeError(cqe);
            if (cqe.res == 0) return;
            r.check.take(try group.get_cqe(cqe));
            try group.put_cqe(cqe);
            try prepRead(&ring, r.fd, r.kind, 1, chunk, 1, 0);
        }
    }
}

/// One RECV_MULTISHOT: one submission, a completion per buffer filled, until EOF (or ENOBUFS: submit again).
fn readMultishot(r: *Reader, flags: u32) !void {
    var ring = try IoUring.init(16, flags);
    defer ring.deinit();
    var group = try IoUring.BufferGroup.init(&ring, 1, r.pool.mem, chunk, pool_count);
    defer group.deinit();
    _ = try group.recv_multishot(1, r.fd, 0);
    var cqes: [32]linux.io_uring_cqe = undefined;
    while (true) {
        _ = try ring.submit_and_wait(1);
        const n = try ring.copy_cqes(&cqes, 0);
        for (cqes[0..n]) |cqe| {
            if (cqe.res == -@as(i32, @intFromEnum(linux.E.NOBUFS))) {
                _ = try group.recv_multishot(1, r.fd, 0); // buffers went back above; go on
                continue;
            }
            if (cqe.res < 0) cqeError(cqe);
            if (cqe.res == 0) return;
            r.check.take(try group.get_cqe(cqe));
            try group.put_cqe(cqe);
            if (cqe.flags & linux.IORING_CQE_F_MORE == 0) _ = try group.recv_multishot(1, r.fd, 0);
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// c) The pageio shape: the "JS" thread never blocks in a wait of its own; a waiter thread waits and rings a Bell.

/// Today's poller.zig: the waiter blocks in epoll_wait and rings; the main thread re-arms (oneshot) and reads.
const EpollWaiter = struct {
    ep: i32,
    stop_fd: i32,
    bell: Bell = .{},
    thread: std.Thread = undefined,

    fn start(self: *EpollWaiter) !void {
        self.ep = try posix.epoll_create1(linux.EPOLL.CLOEXEC);
        self.stop_fd = try posix.eventfd(0, linux.EFD.CLOEXEC);
        var ev = linux.epoll_event{ .events = linux.EPOLL.IN, .data = .{ .fd = self.stop_fd } };
        try posix.epoll_ctl(self.ep, linux.EPOLL.CTL_ADD, self.stop_fd, &ev);
        self.thread = try std.Thread.spawn(.{}, run, .{self});
    }
    fn run(self: *EpollWaiter) void {
        var events: [16]linux.epoll_event = undefined;
        while (true) {
            const n = posix.epoll_wait(self.ep, &events, -1);
            var ring = false;
            for (events[0..n]) |e| {
                if (e.data.fd == self.stop_fd) return;
                ring = true;
            }
            if (ring) self.bell.ring();
        }
    }
    fn stop(self: *EpollWaiter) void {
        _ = posix.write(self.stop_fd, std.mem.asBytes(&@as(u64, 1))) catch unreachable;
        self.thread.join();
        posix.close(self.ep);
        posix.close(self.stop_fd);
    }
    /// Waits (parked) until `fd` is readable.
    fn waitReadable(self: *EpollWaiter, fd: i32, added: *bool) void {
        waits += 1;
        epollArm(self.ep, fd, added);
        self.bell.park();
    }
};

/// The main thread owns the ring: it submits and reaps (a load of the CQ tail, no system call); a waiter thread
/// blocks in io_uring_enter(GETEVENTS) only when asked, and rings. `sqe_flags` may force io-wq (IOSQE_ASYNC).
const UringMainWaiter = struct {
    ring: IoUring,
    want: std.atomic.Value(u32) = std.atomic.Value(u32).init(0),
    bell: Bell = .{},
    thread: std.Thread = undefined,

    fn start(self: *UringMainWaiter) !void {
        self.ring = try IoUring.init(16, 0);
        self.thread = try std.Thread.spawn(.{}, run, .{self});
    }
    fn run(self: *UringMainWaiter) void {
        while (true) {
            while (self.want.load(.acquire) == 0) Futex.wait(&self.want, 0);
            if (self.want.swap(0, .acq_rel) == 2) return;
            while (true) {
                _ = self.ring.enter(0, 1, linux.IORING_ENTER_GETEVENTS) catch |e| switch (e) {
                    error.SignalInterrupt => continue,
                    else => std.debug.panic("enter: {s}", .{@errorName(e)}),
                };
                break;
            }
            self.bell.ring();
        }
    }
    fn stop(self: *UringMainWaiter) void {
        self.want.store(2, .release);
        Futex.wake(&self.want, 1);
        self.thread.join();
        self.ring.deinit();
    }
    /// Submits what is queued, then takes one completion: from the CQ ring if there, else via the waiter.
    fn complete(self: *UringMainWaiter) !linux.io_uring_cqe {
        _ = try self.ring.submit();
        var cqes: [1]linux.io_uring_cqe = undefined;
        while (true) {
            if (try self.ring.copy_cqes(&cqes, 0) == 1) {
                return cqes[0];
            }
            waits += 1;
            self.want.store(1, .release);
            Futex.wake(&self.want, 1);
            self.bell.park();
        }
    }
};

/// The ring lives in the waiter ("poller") thread, which alone submits and reaps, so it may use
/// SINGLE_ISSUER|DEFER_TASKRUN. The main thread tries its read first; on EAGAIN it posts the fd and writes an
/// eventfd the poller has a READ pending on; the poller submits a buffer-select READ and rings when it completes.
/// The data is then already in a pool buffer: the main thread makes no read call after the wake-up.
const UringPoller = struct {
    ring: IoUring = undefined,
    group: IoUring.BufferGroup = undefined,
    pool: Pool,
    kind: Kind = .pipe,
    flags: u32,
    efd: i32 = -1,
    counter: u64 = 0,
    request: std.atomic.Value(i32) = std.atomic.Value(i32).init(-1),
    stopping: std.atomic.Value(bool) = std.atomic.Value(bool).init(false),
    /// res (low 32) and buffer id (high 32) of the completed read, or none.
    result: std.atomic.Value(u64) = std.atomic.Value(u64).init(none),
    bell: Bell = .{},
    ready: std.Thread.ResetEvent = .{},
    failed: ?anyerror = null,
    thread: std.Thread = undefined,

    const none = std.math.maxInt(u64);
    const efd_tag = 1;
    const data_tag = 2;

    fn start(self: *UringPoller) !void {
        self.efd = try posix.eventfd(0, linux.EFD.CLOEXEC);
        self.thread = try std.Thread.spawn(.{}, run, .{self});
        self.ready.wait();
        if (self.failed) |e| {
            self.thread.join();
            return e;
        }
    }
    fn armEventfd(self: *UringPoller) !void {
        _ = try self.ring.read(efd_tag, self.efd, .{ .buffer = std.mem.asBytes(&self.counter) }, 0);
    }
    fn run(self: *UringPoller) void {
        self.ring = IoUring.init(16, self.flags) catch |e| {
            self.failed = e;
            self.ready.set();
            return;
        };
        defer self.ring.deinit();
        // The first `ring_buffers` pool buffers are the kernel's to pick; the rest serve direct reads.
        self.group = IoUring.BufferGroup.init(&self.ring, 1, self.pool.mem[0 .. ring_buffers * chunk], chunk, ring_buffers) catch |e| {
            self.failed = e;
            self.ready.set();
            return;
        };
        defer self.group.deinit();
        self.armEventfd() catch unreachable;
        self.ready.set();
        var cqes: [16]linux.io_uring_cqe = undefined;
        while (true) {
            _ = self.ring.submit_and_wait(1) catch |e| switch (e) {
                error.SignalInterrupt => continue,
                else => std.debug.panic("poller: {s}", .{@errorName(e)}),
            };
            const n = self.ring.copy_cqes(&cqes, 0) catch unreachable;
            for (cqes[0..n]) |cqe| {
                if (cqe.user_data == efd_tag) {
                    if (self.stopping.load(.acquire)) return;
                    const fd = self.request.swap(-1, .acq_rel);
                    if (fd >= 0) prepRead(&self.ring, fd, self.kind, 1, chunk, data_tag, 0) catch unreachable;
                    self.armEventfd() catch unreachable;
                } else {
                    const bid: u64 = if (cqe.res > 0) cqe.buffer_id() catch unreachable else 0;
                    self.result.store(@as(u64, @as(u32, @bitCast(cqe.res))) | bid << 32, .release);
                    self.bell.ring();
                }
            }
        }
    }
    fn stop(self: *UringPoller) void {
        self.stopping.store(true, .release);
        _ = posix.write(self.efd, std.mem.asBytes(&@as(u64, 1))) catch unreachable;
        self.thread.join();
        posix.close(self.efd);
    }
    /// Waits (parked) for a read of `fd` done by the poller; returns its result and buffer (put it back after).
    fn read(self: *UringPoller, fd: i32) struct { res: i32, buf: []u8, bid: u16 } {
        waits += 1;
        self.request.store(fd, .release);
        _ = posix.write(self.efd, std.mem.asBytes(&@as(u64, 1))) catch unreachable;
        while (true) {
            self.bell.park();
            const r = self.result.swap(none, .acq_rel);
            if (r == none) continue;
            const res: i32 = @bitCast(@as(u32, @truncate(r)));
            const bid: u16 = @intCast(r >> 32);
            return .{ .res = res, .buf = self.group.get(bid), .bid = bid };
        }
    }
    /// Gives a buffer back to the kernel (the main thread is the buffer ring's only producer).
    fn put(self: *UringPoller, bid: u16) void {
        self.group.put(bid);
    }
};

fn readEpollWaiter(r: *Reader) !void {
    setNonblock(r.fd, true);
    var w: EpollWaiter = undefined;
    w.bell = .{};
    try w.start();
    defer w.stop();
    var added = false;
    var i: usize = 0;
    while (true) {
        const b = r.pool.buf(i);
        const n = posix.read(r.fd, b) catch |e| switch (e) {
            error.WouldBlock => {
                w.waitReadable(r.fd, &added);
                continue;
            },
            else => return e,
        };
        if (n == 0) return;
        r.check.take(b[0..n]);
        i += 1;
    }
}

fn readUringMain(r: *Reader, sqe_flags: u8) !void {
    var w = UringMainWaiter{ .ring = undefined };
    try w.start();
    defer w.stop();
    var group = try IoUring.BufferGroup.init(&w.ring, 1, r.pool.mem, chunk, pool_count);
    defer group.deinit();
    while (true) {
        try prepRead(&w.ring, r.fd, r.kind, 1, chunk, 1, sqe_flags);
        const cqe = try w.complete();
        if (cqe.res < 0) cqeError(cqe);
        if (cqe.res == 0) return;
        r.check.take(try group.get_cqe(cqe));
        try group.put_cqe(cqe);
    }
}

fn readUringPoller(r: *Reader, flags: u32) !void {
    setNonblock(r.fd, true);
    var p = UringPoller{ .pool = r.pool, .flags = flags, .kind = r.kind };
    try p.start();
    defer p.stop();
    var i: usize = 0;
    while (true) {
        const b = r.pool.buf(ring_buffers + i % (pool_count - ring_buffers));
        const n = posix.read(r.fd, b) catch |e| switch (e) {
            error.WouldBlock => {
                const done = p.read(r.fd);
                if (done.res < 0) std.debug.panic("poller read: {d}", .{done.res});
                if (done.res == 0) return;
                r.check.take(done.buf[0..@intCast(done.res)]);
                p.put(done.bid);
                continue;
            },
            else => return e,
        };
        if (n == 0) return;
        r.check.take(b[0..n]);
        i += 1;
    }
}

// ---------------------------------------------------------------------------------------------------------------
// b) and c) Latency: the main thread sends 64 B to an echo (a thread, or a `cat` child) and waits for them back.

const Echo = struct {
    to: i32, // main writes here
    from: i32, // main reads here
    child: ?std.process.Child = null,
    thread: ?std.Thread = null,
    far: [2]i32 = .{ -1, -1 },

    fn thread_echo() !Echo {
        const a = try posix.pipe2(.{ .CLOEXEC = true });
        const b = try posix.pipe2(.{ .CLOEXEC = true });
        const t = try std.Thread.spawn(.{}, echoRun, .{ a[0], b[1] });
        return .{ .to = a[1], .from = b[0], .thread = t, .far = .{ a[0], b[1] } };
    }
    fn echoRun(in: i32, out: i32) void {
        var buf: [4096]u8 = undefined;
        while (true) {
            const n = posix.read(in, &buf) catch return;
            if (n == 0) return;
            var off: usize = 0;
            while (off < n) off += posix.write(out, buf[off..n]) catch return;
        }
    }
    fn cat(allocator: std.mem.Allocator) !Echo {
        var child = std.process.Child.init(&.{"cat"}, allocator);
        child.stdin_behavior = .Pipe;
        child.stdout_behavior = .Pipe;
        try child.spawn();
        return .{ .to = child.stdin.?.handle, .from = child.stdout.?.handle, .child = child };
    }
    fn deinit(self: *Echo) void {
        if (self.child) |*c| {
            c.stdin.?.close();
            c.stdin = null;
            _ = c.wait() catch {};
        } else {
            posix.close(self.to);
            self.thread.?.join();
            posix.close(self.far[0]);
            posix.close(self.far[1]);
            posix.close(self.from);
        }
    }
};

const Ping = struct {
    echo: *Echo,
    pool: Pool,
    msg: [ping_size]u8 = [_]u8{'p'} ** ping_size,
};

fn pingBlocking(p: *Ping) !void {
    var buf: [ping_size]u8 = undefined;
    for (0..round_trips) |_| {
        _ = try posix.write(p.echo.to, &p.msg);
        var got: usize = 0;
        while (got < ping_size) got += try posix.read(p.echo.from, buf[got..]);
    }
}

fn pingEpoll(p: *Ping) !void {
    setNonblock(p.echo.from, true);
    defer setNonblock(p.echo.from, false);
    const ep = try posix.epoll_create1(linux.EPOLL.CLOEXEC);
    defer posix.close(ep);
    var added = false;
    var buf: [ping_size]u8 = undefined;
    for (0..round_trips) |_| {
        _ = try posix.write(p.echo.to, &p.msg);
        var got: usize = 0;
        while (got < ping_size) {
            got += posix.read(p.echo.from, buf[got..]) catch |e| switch (e) {
                error.WouldBlock => {
                    waits += 1;
                    epollArm(ep, p.echo.from, &added);
                    var out: [1]linux.epoll_event = undefined;
                    _ = posix.epoll_wait(ep, &out, -1);
                    continue;
                },
                else => return e,
            };
        }
    }
}

/// WRITE and a buffer-select READ in one io_uring_enter that also waits for both.
fn pingUring(p: *Ping, flags: u32) !void {
    var ring = try IoUring.init(16, flags);
    defer ring.deinit();
    var group = try IoUring.BufferGroup.init(&ring, 1, p.pool.mem, chunk, pool_count);
    defer group.deinit();
    var cqes: [4]linux.io_uring_cqe = undefined;
    for (0..round_trips) |_| {
        _ = try ring.write(0, p.echo.to, &p.msg, 0);
        var got: usize = 0;
        var pending: u32 = 1;
        while (got < ping_size) {
            try prepRead(&ring, p.echo.from, .pipe, 1, ping_size - @as(u32, @intCast(got)), 1, 0);
            pending += 1;
            _ = try ring.submit_and_wait(pending);
            const n = try ring.copy_cqes(&cqes, 0);
            pending -= n;
            for (cqes[0..n]) |cqe| {
                if (cqe.res < 0) cqeError(cqe);
                if (cqe.user_data == 1) {
                    got += @intCast(cqe.res);
                    try group.put_cqe(cqe);
                }
            }
        }
    }
}

fn pingEpollWaiter(p: *Ping) !void {
    setNonblock(p.echo.from, true);
    defer setNonblock(p.echo.from, false);
    var w: EpollWaiter = undefined;
    w.bell = .{};
    try w.start();
    defer w.stop();
    var added = false;
    var buf: [ping_size]u8 = undefined;
    for (0..round_trips) |_| {
        _ = try posix.write(p.echo.to, &p.msg);
        var got: usize = 0;
        while (got < ping_size) {
            got += posix.read(p.echo.from, buf[got..]) catch |e| switch (e) {
                error.WouldBlock => {
                    w.waitReadable(p.echo.from, &added);
                    continue;
                },
                else => return e,
            };
        }
    }
}

fn pingUringMain(p: *Ping, sqe_flags: u8) !void {
    var w = UringMainWaiter{ .ring = undefined };
    try w.start();
    defer w.stop();
    var group = try IoUring.BufferGroup.init(&w.ring, 1, p.pool.mem, chunk, pool_count);
    defer group.deinit();
    for (0..round_trips) |_| {
        // The write's completion is not wanted: skip it on success.
        const ws = try w.ring.write(0, p.echo.to, &p.msg, 0);
        ws.flags |= linux.IOSQE_CQE_SKIP_SUCCESS;
        var got: usize = 0;
        while (got < ping_size) {
            try prepRead(&w.ring, p.echo.from, .pipe, 1, ping_size - @as(u32, @intCast(got)), 1, sqe_flags);
            const cqe = try w.complete();
            if (cqe.res < 0) cqeError(cqe);
            got += @intCast(cqe.res);
            try group.put_cqe(cqe);
        }
    }
}

fn pingUringPoller(p: *Ping, flags: u32) !void {
    setNonblock(p.echo.from, true);
    defer setNonblock(p.echo.from, false);
    var u = UringPoller{ .pool = p.pool, .flags = flags };
    try u.start();
    defer u.stop();
    var buf: [ping_size]u8 = undefined;
    for (0..round_trips) |_| {
        _ = try posix.write(p.echo.to, &p.msg);
        var got: usize = 0;
        while (got < ping_size) {
            got += posix.read(p.echo.from, buf[got..]) catch |e| switch (e) {
                error.WouldBlock => {
                    const done = u.read(p.echo.from);
                    if (done.res <= 0) std.debug.panic("poller read: {d}", .{done.res});
                    u.put(done.bid);
                    got += @intCast(done.res);
                    continue;
                },
                else => return e,
            };
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Probing: what this kernel (or sandbox) allows. pageio would run `probe` once per process and fall back to epoll
// on any failure.

const Probe = struct {
    setup: ?anyerror = null,
    buf_ring: ?anyerror = null,
    read_bufsel: ?anyerror = null,
    recv_multishot: ?anyerror = null,
    features: u32 = 0,

    fn usable(self: Probe) bool {
        return self.setup == null and self.buf_ring == null and self.read_bufsel == null;
    }
};

/// Sets up a ring, registers a provided buffer ring and reads a byte from a pipe into it: all of what the
/// uring path needs, so a sandbox that refuses any step (ENOSYS, EPERM, EINVAL) is found here, once.
fn probe() Probe {
    var p = Probe{};
    var ring = IoUring.init(4, 0) catch |e| {
        p.setup = e;
        return p;
    };
    defer ring.deinit();
    p.features = ring.features;
    var mem: [2 * 4096]u8 align(4096) = undefined;
    var group = IoUring.BufferGroup.init(&ring, 7, &mem, 4096, 2) catch |e| {
        p.buf_ring = e;
        return p;
    };
    defer group.deinit();
    p.read_bufsel = probeRead(&ring, &group, .pipe);
    p.recv_multishot = probeRead(&ring, &group, .socket);
    return p;
}

fn probeRead(ring: *IoUring, group: *IoUring.BufferGroup, kind: Kind) ?anyerror {
    const fds = channel(kind) catch |e| return e;
    defer posix.close(fds[0]);
    defer posix.close(fds[1]);
    _ = posix.write(fds[1], "x") catch |e| return e;
    switch (kind) {
        .pipe => prepRead(ring, fds[0], .pipe, group.group_id, 4096, 9, 0) catch |e| return e,
        .socket => _ = group.recv_multishot(9, fds[0], 0) catch |e| return e,
    }
    _ = ring.submit_and_wait(1) catch |e| return e;
    const cqe = ring.copy_cqe() catch |e| return e;
    if (cqe.res < 0) return switch (cqe.err()) {
        .INVAL => error.InvalidArgument,
        .OPNOTSUPP => error.OperationNotSupported,
        .PERM => error.AccessDenied,
        else => error.Unexpected,
    };
    const data = group.get_cqe(cqe) catch |e| return e;
    if (data.len != 1 or data[0] != 'x') return error.WrongData;
    group.put_cqe(cqe) catch |e| return e;
    if (kind == .socket) {
        // Multishot is still armed (F_MORE): closing the socket ends it; take that completion too.
        if (cqe.flags & linux.IORING_CQE_F_MORE == 0) return error.NotMultishot;
        _ = posix.shutdown(fds[0], .both) catch {};
        _ = ring.copy_cqe() catch {};
    }
    return null;
}

/// A child installs a seccomp filter that makes io_uring_setup (or io_uring_register) fail with `err`, as a
/// container profile does, and reports what `probe` decides.
fn probeUnderSeccomp(syscall: linux.SYS, err: linux.E) !Probe {
    const pid = try posix.fork();
    if (pid == 0) {
        const Filter = extern struct { code: u16, jt: u8, jf: u8, k: u32 };
        const prog = [_]Filter{
            .{ .code = 0x20, .jt = 0, .jf = 0, .k = 0 }, // ld [nr]
            .{ .code = 0x15, .jt = 0, .jf = 1, .k = @intCast(@intFromEnum(syscall)) }, // jeq
            .{ .code = 0x06, .jt = 0, .jf = 0, .k = linux.SECCOMP.RET.ERRNO | @as(u32, @intFromEnum(err)) },
            .{ .code = 0x06, .jt = 0, .jf = 0, .k = linux.SECCOMP.RET.ALLOW },
        };
        const Fprog = extern struct { len: u16, filter: [*]const Filter };
        const fprog = Fprog{ .len = prog.len, .filter = &prog };
        _ = linux.prctl(@intFromEnum(linux.PR.SET_NO_NEW_PRIVS), 1, 0, 0, 0);
        if (linux.E.init(linux.seccomp(linux.SECCOMP.SET_MODE_FILTER, 0, &fprog)) != .SUCCESS) linux.exit(100);
        const p = probe();
        const code: u8 = if (p.usable()) 0 else if (p.setup) |e| @as(u8, if (e == error.SystemOutdated) 1 else if (e == error.PermissionDenied) 2 else 3) else if (p.buf_ring != null) 4 else 5;
        linux.exit(code);
    }
    const status = posix.waitpid(pid, 0).status;
    const code = posix.W.EXITSTATUS(status);
    var p = Probe{};
    switch (code) {
        0 => {},
        1 => p.setup = error.SystemOutdated,
        2 => p.setup = error.PermissionDenied,
        3 => p.setup = error.Unexpected,
        4 => p.buf_ring = error.Refused,
        5 => p.read_bufsel = error.Refused,
        else => return error.SeccompUnavailable,
    }
    return p;
}

fn setupWorks(flags: u32) bool {
    var ring = IoUring.init(4, flags) catch return false;
    ring.deinit();
    return true;
}

// ---------------------------------------------------------------------------------------------------------------
// The run: every case once per round, rounds interleaved so drift and neighbours hit every case alike.

const Case = struct {
    group: []const u8,
    name: []const u8,
    /// The case this one's ratio is against (same group), or null for the group's baseline.
    base: ?[]const u8,
    run: *const fn (*Case, Pool, std.mem.Allocator) anyerror!f64,
    kind: Kind = .pipe,
    piece: usize = chunk,
    flags: u32 = 0,
    sqe_flags: u8 = 0,
    variant: u8 = 0,
    cat: bool = false,
    samples: [32]f64 = undefined,
    /// Per run: reads (or round trips), waits, CPU microseconds of this process, voluntary context switches.
    ops: usize = 0,
    waits: [32]f64 = undefined,
    cpu: [32]f64 = undefined,
    csw: [32]f64 = undefined,
};

/// CPU time (all threads) and voluntary context switches so far: load on the machine stretches wall time, much
/// less these.
const Usage = struct {
    cpu_us: f64,
    csw: f64,
    fn now() Usage {
        const u = posix.getrusage(linux.rusage.SELF);
        const us = @as(f64, @floatFromInt(u.utime.sec + u.stime.sec)) * 1e6 + @as(f64, @floatFromInt(u.utime.usec + u.stime.usec));
        return .{ .cpu_us = us, .csw = @floatFromInt(u.nvcsw) };
    }
};

const defer_flags = linux.IORING_SETUP_SINGLE_ISSUER | linux.IORING_SETUP_DEFER_TASKRUN;

/// Milliseconds to read `total_bytes` from a writer thread.
fn throughput(c: *Case, pool: Pool, _: std.mem.Allocator) !f64 {
    const fds = try channel(c.kind);
    var r = Reader{ .fd = fds[0], .kind = c.kind, .pool = pool };
    waits = 0;
    var timer = try std.time.Timer.start();
    const t = try std.Thread.spawn(.{}, writer, .{ fds[1], total_bytes, c.piece });
    switch (c.variant) {
        0 => try readBlocking(&r),
        1 => try readEpoll(&r),
        2 => try readUring(&r, c.flags),
        3 => try readMultishot(&r, c.flags),
        4 => try readEpollWaiter(&r),
        5 => try readUringMain(&r, c.sqe_flags),
        6 => try readUringPoller(&r, c.flags),
        else => unreachable,
    }
    const ns = timer.read();
    t.join();
    posix.close(fds[0]);
    if (r.check.offset != total_bytes) std.debug.panic("{s}: {d} of {d} bytes", .{ c.name, r.check.offset, total_bytes });
    c.ops = r.check.reads;
    last_waits = waits;
    return @as(f64, @floatFromInt(ns)) / 1e6;
}

/// Microseconds per round trip.
fn latency(c: *Case, pool: Pool, allocator: std.mem.Allocator) !f64 {
    var echo = if (c.cat) try Echo.cat(allocator) else try Echo.thread_echo();
    defer echo.deinit();
    var p = Ping{ .echo = &echo, .pool = pool };
    waits = 0;
    var timer = try std.time.Timer.start();
    switch (c.variant) {
        0 => try pingBlocking(&p),
        1 => try pingEpoll(&p),
        2 => try pingUring(&p, c.flags),
        4 => try pingEpollWaiter(&p),
        5 => try pingUringMain(&p, c.sqe_flags),
        6 => try pingUringPoller(&p, c.flags),
        else => unreachable,
    }
    const ns = timer.read();
    c.ops = round_trips;
    last_waits = waits;
    return @as(f64, @floatFromInt(ns)) / 1e3 / @as(f64, @floatFromInt(round_trips));
}

fn tputCases(comptime group: []const u8, comptime kind: Kind, comptime piece: usize) [9]Case {
    const f = throughput;
    return .{
        .{ .group = group, .name = "blocking read (floor)", .base = "epoll + read, one thread", .run = f, .kind = kind, .piece = piece, .variant = 0 },
        .{ .group = group, .name = "epoll + read, one thread", .base = null, .run = f, .kind = kind, .piece = piece, .variant = 1 },
        .{ .group = group, .name = "uring READ bufsel", .base = "epoll + read, one thread", .run = f, .kind = kind, .piece = piece, .variant = 2 },
        .{ .group = group, .name = "uring READ bufsel, DEFER_TASKRUN", .base = "epoll + read, one thread", .run = f, .kind = kind, .piece = piece, .variant = 2, .flags = defer_flags },
        .{ .group = group, .name = if (kind == .socket) "uring RECV_MULTISHOT" else "-", .base = "epoll + read, one thread", .run = f, .kind = kind, .piece = piece, .variant = 3 },
        .{ .group = group, .name = "[pageio] epoll waiter thread + bell", .base = null, .run = f, .kind = kind, .piece = piece, .variant = 4 },
        .{ .group = group, .name = "[pageio] uring main-owned, waiter enter", .base = "[pageio] epoll waiter thread + bell", .run = f, .kind = kind, .piece = piece, .variant = 5 },
        .{ .group = group, .name = "[pageio] uring main-owned, IOSQE_ASYNC", .base = "[pageio] epoll waiter thread + bell", .run = f, .kind = kind, .piece = piece, .variant = 5, .sqe_flags = linux.IOSQE_ASYNC },
        .{ .group = group, .name = "[pageio] uring poller-owned, DEFER_TASKRUN", .base = "[pageio] epoll waiter thread + bell", .run = f, .kind = kind, .piece = piece, .variant = 6, .flags = defer_flags },
    };
}

fn latCases(comptime group: []const u8, comptime cat: bool) [8]Case {
    const f = latency;
    return .{
        .{ .group = group, .name = "blocking write + read (floor)", .base = "epoll + read, one thread", .run = f, .cat = cat, .variant = 0 },
        .{ .group = group, .name = "epoll + read, one thread", .base = null, .run = f, .cat = cat, .variant = 1 },
        .{ .group = group, .name = "uring WRITE+READ, submit_and_wait", .base = "epoll + read, one thread", .run = f, .cat = cat, .variant = 2 },
        .{ .group = group, .name = "uring WRITE+READ, DEFER_TASKRUN", .base = "epoll + read, one thread", .run = f, .cat = cat, .variant = 2, .flags = defer_flags },
        .{ .group = group, .name = "[pageio] epoll waiter thread + bell", .base = null, .run = f, .cat = cat, .variant = 4 },
        .{ .group = group, .name = "[pageio] uring main-owned, waiter enter", .base = "[pageio] epoll waiter thread + bell", .run = f, .cat = cat, .variant = 5 },
        .{ .group = group, .name = "[pageio] uring main-owned, IOSQE_ASYNC", .base = "[pageio] epoll waiter thread + bell", .run = f, .cat = cat, .variant = 5, .sqe_flags = linux.IOSQE_ASYNC },
        .{ .group = group, .name = "[pageio] uring poller-owned, DEFER_TASKRUN", .base = "[pageio] epoll waiter thread + bell", .run = f, .cat = cat, .variant = 6, .flags = defer_flags },
    };
}

fn median(xs: []f64) f64 {
    std.mem.sort(f64, xs, {}, std.sort.asc(f64));
    return if (xs.len % 2 == 1) xs[xs.len / 2] else (xs[xs.len / 2 - 1] + xs[xs.len / 2]) / 2;
}

pub fn main() !void {
    if (builtin.os.tag != .linux) return error.LinuxOnly;
    var gpa = std.heap.GeneralPurposeAllocator(.{}){};
    const allocator = gpa.allocator();
    const args = try std.process.argsAlloc(allocator);
    defer std.process.argsFree(allocator, args);
    for (args[1..]) |a| {
        if (std.mem.eql(u8, a, "quick")) {
            total_bytes = 32 << 20;
            runs = 3;
            round_trips = 2000;
        }
    }
    for (&pattern_buf, 0..) |*b, i| b.* = pattern(i);
    const out = std.io.getStdOut().writer();

    // Probes first, while this process has one thread (the seccomp checks fork).
    const p = probe();
    const disabled = std.fs.cwd().readFileAlloc(allocator, "/proc/sys/kernel/io_uring_disabled", 64) catch null;
    const uname = posix.uname();
    try out.print("kernel {s}, io_uring_disabled={s}, uid {d}\n", .{ std.mem.sliceTo(&uname.release, 0), if (disabled) |d| std.mem.trimRight(u8, d, "\n") else "?", linux.getuid() });
    try out.print("probe: setup {?}, buffer ring {?}, READ bufsel on a pipe {?}, RECV_MULTISHOT on a socket {?}; features 0x{x}\n", .{ p.setup, p.buf_ring, p.read_bufsel, p.recv_multishot, p.features });
    try out.print("setup flags: SINGLE_ISSUER {}, SINGLE_ISSUER|DEFER_TASKRUN {}, COOP_TASKRUN {}, COOP_TASKRUN|TASKRUN_FLAG {}\n", .{
        setupWorks(linux.IORING_SETUP_SINGLE_ISSUER),
        setupWorks(defer_flags),
        setupWorks(linux.IORING_SETUP_COOP_TASKRUN),
        setupWorks(linux.IORING_SETUP_COOP_TASKRUN | linux.IORING_SETUP_TASKRUN_FLAG),
    });
    inline for (.{ .{ linux.SYS.io_uring_setup, linux.E.NOSYS }, .{ linux.SYS.io_uring_setup, linux.E.PERM }, .{ linux.SYS.io_uring_register, linux.E.PERM } }) |s| {
        if (probeUnderSeccomp(s[0], s[1])) |r| {
            try out.print("seccomp {s} -> {s}: probe says {s} (setup {?}, buffer ring {?})\n", .{ @tagName(s[0]), @tagName(s[1]), if (r.usable()) "use io_uring" else "fall back to epoll", r.setup, r.buf_ring });
        } else |e| try out.print("seccomp {s} -> {s}: {s}\n", .{ @tagName(s[0]), @tagName(s[1]), @errorName(e) });
    }
    if (!p.usable()) {
        try out.print("io_uring is not usable here: nothing to compare\n", .{});
        return;
    }

    const pool = try Pool.init();
    var cases = tputCases("pipe, 64 KiB writes", .pipe, chunk) ++ tputCases("pipe, 8 KiB writes", .pipe, 8 << 10) ++
        tputCases("socketpair, 64 KiB writes", .socket, chunk) ++ tputCases("socketpair, 8 KiB writes", .socket, 8 << 10) ++
        latCases("64 B ping-pong, echo thread", false) ++ latCases("64 B ping-pong, cat child", true);
    // Round 0 warms up and is dropped.
    for (0..runs + 1) |round| {
        for (&cases) |*c| {
            if (std.mem.eql(u8, c.name, "-")) continue;
            const before = Usage.now();
            const v = try c.run(c, pool, allocator);
            const after = Usage.now();
            if (round > 0) {
                const ops: f64 = @floatFromInt(@max(c.ops, 1));
                c.samples[round - 1] = v;
                c.waits[round - 1] = @as(f64, @floatFromInt(last_waits)) / ops;
                c.cpu[round - 1] = after.cpu_us - before.cpu_us;
                c.csw[round - 1] = (after.csw - before.csw) / ops;
            }
        }
    }

    try out.print("\n{d} MiB per throughput run, {d} round trips per latency run; median of {d} runs [min-max]\n", .{ total_bytes >> 20, round_trips, runs });
    var group: []const u8 = "";
    for (&cases) |*c| {
        if (std.mem.eql(u8, c.name, "-")) continue;
        const is_tput = c.run == &throughput;
        if (!std.mem.eql(u8, group, c.group)) {
            group = c.group;
            try out.print("\n{s}\n", .{group});
            if (is_tput) {
                try out.print("  {s:<44} {s:>18} | {s:>6} | {s:>5} | {s:>5} | {s:>5} | speed vs\n", .{ "", "MiB/s [min-max]", "cpu", "KiB", "wait", "csw" });
                try out.print("  {s:<44} {s:>18} | {s:>6} | {s:>5} | {s:>5} | {s:>5} |\n", .{ "", "", "us/MiB", "/read", "/read", "/read" });
            } else {
                try out.print("  {s:<44} {s:>18} | {s:>6} | {s:>4} | {s:>4} | speed vs\n", .{ "", "us/rt [min-max]", "cpu", "wait", "csw" });
                try out.print("  {s:<44} {s:>18} | {s:>6} | {s:>4} | {s:>4} |\n", .{ "", "", "us/rt", "/rt", "/rt" });
            }
        }
        const m = median(c.samples[0..runs]);
        const lo = c.samples[0];
        const hi = c.samples[runs - 1];
        const mib = @as(f64, @floatFromInt(total_bytes >> 20));
        const ratio: ?f64 = if (c.base) |b| blk: {
            for (&cases) |*o| if (std.mem.eql(u8, o.group, c.group) and std.mem.eql(u8, o.name, b)) {
                const bm = median(o.samples[0..runs]);
                break :blk if (is_tput) bm / m else bm / m;
            };
            break :blk null;
        } else null;
        if (is_tput) {
            var b: [32]u8 = undefined;
            try out.print("  {s:<44} {s:>18}", .{ c.name, try std.fmt.bufPrint(&b, "{d:.0} [{d:.0}-{d:.0}]", .{ mib / m * 1000, mib / hi * 1000, mib / lo * 1000 }) });
        } else {
            var b: [32]u8 = undefined;
            try out.print("  {s:<44} {s:>18}", .{ c.name, try std.fmt.bufPrint(&b, "{d:.2} [{d:.2}-{d:.2}]", .{ m, lo, hi }) });
        }
        const per: f64 = @floatFromInt(@max(c.ops, 1));
        const cpu = median(c.cpu[0..runs]);
        if (is_tput) {
            try out.print(" | {d:>6.0} | {d:>5.1} | {d:>5.2} | {d:>5.2}", .{ cpu / mib, mib * 1024 / per, median(c.waits[0..runs]), median(c.csw[0..runs]) });
        } else {
            try out.print(" | {d:>6.2} | {d:>4.2} | {d:>4.2}", .{ cpu / @as(f64, @floatFromInt(round_trips)), median(c.waits[0..runs]), median(c.csw[0..runs]) });
        }
        if (ratio) |x| try out.print(" | {d:.2}x {s}", .{ x, if (std.mem.startsWith(u8, c.base.?, "[pageio]")) "epoll waiter" else "epoll, one thread" });
        try out.print("\n", .{});
    }
}
