//! A single-producer/single-consumer ring of pages in shared memory: a memfd
//! or a file that two processes map. The producer fills a slot and publishes
//! its length; the consumer reads the slot where it lies and gives it back.
//! Nothing is copied; only the indices in the header move, atomically.
//!
//! The header is shared with another process, so nothing in it is trusted.
//! The geometry is read once, at attach, checked against the mapping's real
//! length and kept in this process; a header that later disagrees with it is
//! EPROTO. This side's own counters live in this process too (the shared
//! copy only tells the peer); each value read from the peer (its index, a
//! length) is checked each time it is used, before any byte is touched.
//!
//! Waiting uses the futex on the index word the other side moves (a shared
//! futex, so the other process's wake reaches it), in slices: after each
//! slice the peer's pid is checked, so a peer that died is an EPIPE, not a hang.
const std = @import("std");
const builtin = @import("builtin");
const errno = @import("errno.zig");
const Errno = errno.Errno;
const regions = @import("regions.zig");
const guard = @import("guard.zig");

const magic: u32 = 0x7067_7267; // "grgp"
const layout_version: u32 = 1;

/// Limit: slots per ring (a slot index fits in 16 bits of the receive result).
pub const slots_max = 65536;
/// Limit: bytes per slot.
pub const slot_bytes_max: u64 = 1 << 30;
/// How long one futex wait lasts before the peer's liveness is checked again.
const slice_ns: u64 = 50 * std.time.ns_per_ms;
/// Limit: checks of the index before sleeping (about 10 µs on x86-64). A peer that answers within it is met
/// without a system call on either side; a futex wake-up costs ~20 µs each way on a small VM. Bounded, so an
/// idle ring sleeps in the kernel, never burns a core.
const spin_count = 400;
/// The timeout that means "wait as long as it takes".
pub const forever: u32 = std.math.maxInt(u32);
/// The smallest page size of any target: slots start and end on such a boundary, and a received slot's
/// pages are touched at this stride.
const page_min_bytes = 4096;

pub const Role = enum(u32) { producer, consumer };
const State = enum(u32) { absent, attached, closed, _ };

/// One cache line per writer, so the two processes do not bounce a line on every publish.
const Side = extern struct {
    index: u32, // producer: slots published; consumer: slots given back
    pid: i32,
    state: u32,
    waiting: u32,
    _pad: [12]u32,
};

const Header = extern struct {
    magic: u32,
    version: u32,
    slots: u32,
    slot_size: u32,
    data_offset: u32,
    _pad: [11]u32,
    producer: Side,
    consumer: Side,
    // lengths: [slots]u32 follow, then the slots from data_offset (page-aligned)
};

// Both processes read this layout (maybe different builds, the other runtime): it must not drift.
comptime {
    std.debug.assert(@sizeOf(Side) == 64);
    std.debug.assert(@sizeOf(Header) == 192);
    std.debug.assert(@offsetOf(Header, "producer") == 64 and @offsetOf(Header, "consumer") == 128);
}

const lengths_offset = @sizeOf(Header);

pub const Geometry = struct { slots: u32, slot_size: u32, data_offset: u32 };

/// Where the slots start and the bytes a ring of this shape needs.
pub fn bytesFor(slots: u64, slot_size: u64, page: u64) Errno!struct { data_offset: u64, total: u64 } {
    if (slots == 0 or slots > slots_max or slot_size == 0 or slot_size > slot_bytes_max) return error.INVAL;
    if (slot_size % page != 0) return error.INVAL;
    const data_offset = std.mem.alignForward(u64, lengths_offset + 4 * slots, page);
    return .{ .data_offset = data_offset, .total = data_offset + slots * slot_size };
}

/// What this process knows of a ring it attached to, kept out of the peer's reach. One per region slot; a
/// region attached as both producer and consumer (tests) shares it. Each counter has one writer (the thread
/// running that side's call) and is read by the other side's calls in this process, hence the atomics.
const Attached = struct {
    region: regions.Id = 0,
    roles: u32 = 0, // bit per Role
    geometry: Geometry = .{ .slots = 0, .slot_size = 0, .data_offset = 0 },
    published: u32 = 0, // producer: slots published
    received: u32 = 0, // consumer: slots handed out
    given_back: u32 = 0, // consumer: slots given back
};

var attached: [regions.region_count_max]Attached = [_]Attached{.{}} ** regions.region_count_max;
var attach_mutex: std.Thread.Mutex = .{};

const Ring = struct {
    base: usize,
    header: *Header,
    lengths: [*]u32,
    geometry: Geometry,
    mine: *Attached,

    fn side(ring: Ring, role: Role) *Side {
        return if (role == .producer) &ring.header.producer else &ring.header.consumer;
    }

    /// The ring's mapping is still the file's and its header still says what it said at attach.
    fn check(ring: Ring, region: regions.Id) Errno!void {
        const r = try regions.lookup(region);
        return ring.checkWith(r.fault);
    }

    /// `check`, given the region's fault as looked up already.
    fn checkWith(ring: Ring, fault: regions.Fault) Errno!void {
        if (fault != .none) return fault.errno(); // the guard put zeros in: nothing there is a message
        const h = ring.header;
        if (@atomicLoad(u32, &h.magic, .acquire) != magic or @atomicLoad(u32, &h.version, .monotonic) != layout_version or
            @atomicLoad(u32, &h.slots, .monotonic) != ring.geometry.slots or
            @atomicLoad(u32, &h.slot_size, .monotonic) != ring.geometry.slot_size or
            @atomicLoad(u32, &h.data_offset, .monotonic) != ring.geometry.data_offset) return error.PROTO;
    }
};

fn attachedIndex(region: regions.Id) usize {
    return (region & 0xFFFF) -% 1; // regions.Id: slot index + 1 in the low 16 bits
}

/// The ring in `region` as this process attached to it as `role`: EBADF if it did not.
fn open(region: regions.Id, role: Role) Errno!Ring {
    const r = try regions.lookup(region);
    const index = attachedIndex(region);
    if (index >= attached.len) return error.BADF;
    const mine = &attached[index];
    if (@atomicLoad(u32, &mine.region, .acquire) != region or mine.roles & roleBit(role) == 0) return error.BADF;
    const ring: Ring = .{
        .base = r.base,
        .header = @ptrFromInt(r.base),
        .lengths = @ptrFromInt(r.base + lengths_offset),
        .geometry = mine.geometry,
        .mine = mine,
    };
    if (!fits(ring.geometry, r.len)) return error.BADF; // checked at attach: only a stale id gets here
    try ring.checkWith(r.fault);
    return ring;
}

fn roleBit(role: Role) u32 {
    return @as(u32, 1) << @intCast(@intFromEnum(role));
}

/// Writes a fresh header into `region` (zeroed shared memory of at least `bytesFor` bytes).
pub fn init(region: regions.Id, slots: u32, slot_size: u32, page: u64) Errno!void {
    const r = try regions.lookup(region);
    const need = try bytesFor(slots, slot_size, page);
    if (need.total > r.len or r.base % page != 0) return error.INVAL;
    const header: *Header = @ptrFromInt(r.base);
    if (@atomicLoad(u32, &header.magic, .acquire) != 0) return error.EXIST;
    header.* = std.mem.zeroes(Header);
    header.version = layout_version;
    header.slots = slots;
    header.slot_size = slot_size;
    header.data_offset = @intCast(need.data_offset);
    @atomicStore(u32, &header.magic, magic, .release); // last: a peer that sees the magic sees the rest
}

/// Claims `role` for this process and takes the ring's geometry, read once here and checked against the
/// mapping's real length: EPROTO when it is no ring's shape, ENODATA when the mapping is shorter than it (the
/// file was truncated); EBUSY if another process attached to it first.
pub fn attach(region: regions.Id, role: Role) Errno!Geometry {
    const r = try regions.lookup(region);
    if (r.fault != .none) return r.fault.errno();
    if (r.len < lengths_offset or r.base % page_min_bytes != 0) return error.INVAL;
    const header: *Header = @ptrFromInt(r.base);
    if (@atomicLoad(u32, &header.magic, .acquire) != magic or @atomicLoad(u32, &header.version, .monotonic) != layout_version)
        return error.PROTO;
    const geometry: Geometry = .{
        .slots = @atomicLoad(u32, &header.slots, .monotonic),
        .slot_size = @atomicLoad(u32, &header.slot_size, .monotonic),
        .data_offset = @atomicLoad(u32, &header.data_offset, .monotonic),
    };
    if (!wellFormed(geometry)) return error.PROTO;
    if (!fits(geometry, r.len)) return error.NODATA; // a ring of this shape, cut short: its file was truncated
    attach_mutex.lock();
    defer attach_mutex.unlock();
    const mine = &attached[attachedIndex(region)];
    const again = @atomicLoad(u32, &mine.region, .acquire) == region; // the other role, in this process (tests)
    if (again and mine.roles & roleBit(role) != 0) return error.BUSY;
    if (again and !std.meta.eql(mine.geometry, geometry)) return error.PROTO;
    const s = if (role == .producer) &header.producer else &header.consumer;
    if (@cmpxchgStrong(u32, &s.state, @intFromEnum(State.absent), @intFromEnum(State.attached), .seq_cst, .seq_cst) != null)
        return error.BUSY;
    @atomicStore(i32, &s.pid, currentPid(), .seq_cst);
    // The counters start where the shared copy says (0 for a fresh ring); from here on this process keeps them.
    const start = @atomicLoad(u32, &s.index, .acquire);
    if (!again) {
        @atomicStore(u32, &mine.region, 0, .release); // a stale id of this slot's last region no longer matches
        mine.* = .{ .geometry = geometry };
    }
    switch (role) {
        .producer => @atomicStore(u32, &mine.published, start, .release),
        .consumer => {
            @atomicStore(u32, &mine.received, start, .release);
            @atomicStore(u32, &mine.given_back, start, .release);
        },
    }
    mine.roles |= roleBit(role);
    @atomicStore(u32, &mine.region, region, .release);
    return geometry;
}

/// Whether `g` is a ring's shape: limits kept, slots page-aligned past the lengths.
fn wellFormed(g: Geometry) bool {
    if (g.slots == 0 or g.slots > slots_max or g.slot_size == 0 or g.slot_size > slot_bytes_max) return false;
    if (g.slot_size % page_min_bytes != 0 or g.data_offset % page_min_bytes != 0) return false;
    return g.data_offset >= lengths_offset + 4 * @as(u64, g.slots);
}

/// Whether a ring of shape `g` lies inside a mapping of `mapped_len` bytes.
fn fits(g: Geometry, mapped_len: u64) bool {
    return wellFormed(g) and g.data_offset <= mapped_len and @as(u64, g.slots) * g.slot_size <= mapped_len - g.data_offset;
}

/// Marks `role` closed and wakes everyone waiting on the ring, in this process or the other. Works on a
/// faulted or lied-about ring too: the peer must still learn that this side is gone.
pub fn close(region: regions.Id, role: Role) Errno!void {
    const r = try regions.lookup(region);
    const index = attachedIndex(region);
    if (index >= attached.len or @atomicLoad(u32, &attached[index].region, .acquire) != region) return error.BADF;
    const header: *Header = @ptrFromInt(r.base);
    const s = if (role == .producer) &header.producer else &header.consumer;
    @atomicStore(u32, &s.state, @intFromEnum(State.closed), .seq_cst);
    wake(&header.producer.index);
    wake(&header.consumer.index);
}

/// Closes every role this process attached in `region` (its JS thread ended without closing them).
pub fn closeAttached(region: regions.Id) void {
    const index = attachedIndex(region);
    if (index >= attached.len or @atomicLoad(u32, &attached[index].region, .acquire) != region) return;
    const roles = blk: {
        attach_mutex.lock();
        defer attach_mutex.unlock();
        break :blk attached[index].roles;
    };
    inline for (.{ Role.producer, Role.consumer }) |role| {
        if (roles & roleBit(role) != 0) close(region, role) catch {};
    }
}

/// Producer: the slot to fill next, once one is free. EPIPE when the consumer closed or died,
/// ECANCELED when this side was closed meanwhile, ETIMEDOUT after `timeout_ms`, EPROTO when the
/// consumer's index is not one it could have.
pub fn reserve(region: regions.Id, timeout_ms: u32) Errno!u32 {
    const ring = try open(region, .producer);
    const me = &ring.header.producer;
    const peer = &ring.header.consumer;
    const deadline = Deadline.start(timeout_ms);
    while (true) {
        if (stateOf(me) != .attached) return error.CANCELED;
        if (stateOf(peer) == .closed) return error.PIPE;
        const head = @atomicLoad(u32, &ring.mine.published, .monotonic);
        const tail = @atomicLoad(u32, &peer.index, .acquire); // the consumer is done with those slots
        const used = head -% tail;
        if (used > ring.geometry.slots) return error.PROTO;
        if (used < ring.geometry.slots) return head % ring.geometry.slots;
        try wait(&peer.index, tail, &me.waiting, peer, &deadline);
        try ring.check(region);
    }
}

/// Producer: publishes reserved slot `slot` with `length` bytes.
pub fn publish(region: regions.Id, slot: u32, length: u32) Errno!void {
    const ring = try open(region, .producer);
    const me = &ring.header.producer;
    const peer = &ring.header.consumer;
    if (length > ring.geometry.slot_size) return error.INVAL;
    const head = @atomicLoad(u32, &ring.mine.published, .monotonic);
    const used = head -% @atomicLoad(u32, &peer.index, .acquire);
    if (used > ring.geometry.slots) return error.PROTO;
    if (used == ring.geometry.slots) return error.NOBUFS; // no slot reserved
    if (slot != head % ring.geometry.slots) return error.INVAL; // not the slot reserve() gave
    @atomicStore(u32, &ring.lengths[slot], length, .monotonic);
    @atomicStore(u32, &ring.mine.published, head +% 1, .monotonic);
    @atomicStore(u32, &me.index, head +% 1, .seq_cst); // release: the slot's bytes and length before the index
    if (@atomicLoad(u32, &peer.waiting, .seq_cst) != 0) wake(&me.index);
}

/// Consumer: the next published slot and its length, as slot * 2^32 + length. ENODATA once the
/// producer closed and everything it published was received; EPIPE if it died instead; EPROTO when the
/// producer's index or a length is not one it could have; the guard's errno (ENOSPC, EIO, ENODATA for a
/// truncated file) when the slot's pages cannot be read.
pub fn receive(region: regions.Id, timeout_ms: u32) Errno!u64 {
    const ring = try open(region, .consumer);
    const me = &ring.header.consumer;
    const peer = &ring.header.producer;
    const deadline = Deadline.start(timeout_ms);
    while (true) {
        if (stateOf(me) != .attached) return error.CANCELED;
        const received = @atomicLoad(u32, &ring.mine.received, .monotonic);
        const given_back = @atomicLoad(u32, &ring.mine.given_back, .monotonic);
        const producer_closed = stateOf(peer) == .closed; // read before the index: a close comes after its last publish
        const head = @atomicLoad(u32, &peer.index, .acquire);
        // Published but not given back can never be more than the ring holds; published before received is a lie.
        if (head -% given_back > ring.geometry.slots or head -% received > head -% given_back) return error.PROTO;
        if (head != received) {
            const slot = received % ring.geometry.slots;
            const length = @atomicLoad(u32, &ring.lengths[slot], .monotonic);
            if (length > ring.geometry.slot_size) return error.PROTO;
            try probe(ring, region, slot, length);
            @atomicStore(u32, &ring.mine.received, received +% 1, .monotonic);
            return @as(u64, slot) << 32 | length;
        }
        if (producer_closed) return error.NODATA;
        try wait(&peer.index, head, &me.waiting, peer, &deadline);
        try ring.check(region);
    }
}

/// Touches every page of the slot's first `length` bytes, so a page the file lost (truncated, or no room on
/// its filesystem) faults here, under the guard, and the message is refused instead of read as zeros.
fn probe(ring: Ring, region: regions.Id, slot: u32, length: u32) Errno!void {
    const start = ring.base + ring.geometry.data_offset + @as(usize, slot) * ring.geometry.slot_size;
    const bytes: [*]const volatile u8 = @ptrFromInt(start);
    const faults = guard.fault_count.load(.acquire);
    var at: usize = 0;
    while (at < length) : (at += page_min_bytes) _ = bytes[at];
    if (guard.fault_count.load(.acquire) != faults) try ring.check(region); // a page faulted: whose, and why
}

/// Consumer: gives the oldest `count` received slots back to the producer.
pub fn release(region: regions.Id, count: u32) Errno!void {
    const ring = try open(region, .consumer);
    const me = &ring.header.consumer;
    const peer = &ring.header.producer;
    const tail = @atomicLoad(u32, &ring.mine.given_back, .monotonic);
    if (count > @atomicLoad(u32, &ring.mine.received, .monotonic) -% tail) return error.INVAL;
    @atomicStore(u32, &ring.mine.given_back, tail +% count, .monotonic);
    @atomicStore(u32, &me.index, tail +% count, .seq_cst); // release: done reading those slots
    if (@atomicLoad(u32, &peer.waiting, .seq_cst) != 0) wake(&me.index);
}

fn stateOf(side: *const Side) State {
    return @enumFromInt(@atomicLoad(u32, &side.state, .seq_cst));
}

const Deadline = struct {
    begun: ?std.time.Instant,
    ns: u64,

    fn start(timeout_ms: u32) Deadline {
        if (timeout_ms == forever) return .{ .begun = null, .ns = 0 };
        return .{ .begun = std.time.Instant.now() catch null, .ns = @as(u64, timeout_ms) * std.time.ns_per_ms };
    }

    /// Nanoseconds left, or null for no limit.
    fn left(d: *const Deadline) ?u64 {
        const begun = d.begun orelse return null;
        const now = std.time.Instant.now() catch return 0;
        const spent = now.since(begun);
        return if (spent >= d.ns) 0 else d.ns - spent;
    }
};

/// Waits while `word` still holds `seen`: a short bounded spin, then the futex for at most one slice.
/// `waiting` tells the other side to wake us (a wake is a system call it skips when nobody waits); the
/// seq_cst store and the re-check after it pair with the other side's seq_cst index store and flag load, so
/// a wake is never lost.
fn wait(word: *u32, seen: u32, waiting: *u32, peer: *const Side, deadline: *const Deadline) Errno!void {
    const left = deadline.left();
    if (left != null and left.? == 0) return error.TIMEDOUT;
    var spins: u32 = 0;
    while (spins < spin_count) : (spins += 1) {
        if (@atomicLoad(u32, word, .acquire) != seen) return;
        std.atomic.spinLoopHint();
    }
    @atomicStore(u32, waiting, 1, .seq_cst);
    defer @atomicStore(u32, waiting, 0, .seq_cst);
    if (@atomicLoad(u32, word, .seq_cst) != seen) return;
    const ns = @min(slice_ns, left orelse slice_ns);
    if (!sleepOn(word, seen, ns)) return; // woken or the value moved: the caller looks again
    const peer_state = stateOf(peer);
    if (peer_state == .attached and !alive(@atomicLoad(i32, &peer.pid, .seq_cst))) return error.PIPE;
}

/// Sleeps while `word` == `seen`, up to `ns`; true when the time ran out.
fn sleepOn(word: *u32, seen: u32, ns: u64) bool {
    if (builtin.os.tag == .linux) {
        const linux = std.os.linux;
        const timeout: linux.timespec = .{ .sec = @intCast(ns / std.time.ns_per_s), .nsec = @intCast(ns % std.time.ns_per_s) };
        // Not FUTEX_PRIVATE: the other process wakes this word through its own mapping.
        const rc = linux.futex_wait(@ptrCast(word), linux.FUTEX.WAIT, @bitCast(seen), &timeout);
        return linux.E.init(rc) == .TIMEDOUT;
    }
    // No futex across processes on other systems: short sleeps, still no spinning.
    std.Thread.sleep(@min(ns, std.time.ns_per_ms));
    return @atomicLoad(u32, word, .seq_cst) == seen;
}

fn wake(word: *u32) void {
    if (builtin.os.tag == .linux) _ = std.os.linux.futex_wake(@ptrCast(word), std.os.linux.FUTEX.WAKE, std.math.maxInt(i32));
}

fn currentPid() i32 {
    return @intCast(std.c.getpid());
}

/// Whether process `pid` is still running. A process that exited but was not yet reaped (a zombie) counts
/// as gone: its pidfd is readable then, where kill(pid, 0) would still succeed.
fn alive(pid: i32) bool {
    if (pid <= 0) return true; // not attached yet
    if (builtin.os.tag == .linux) {
        const linux = std.os.linux;
        const rc = linux.pidfd_open(pid, 0);
        switch (linux.E.init(rc)) {
            .SUCCESS => {
                const fd: i32 = @intCast(rc);
                defer _ = linux.close(fd);
                var fds = [1]linux.pollfd{.{ .fd = fd, .events = linux.POLL.IN, .revents = 0 }};
                return linux.poll(&fds, 1, 0) == 0;
            },
            .SRCH => return false,
            else => {}, // an old kernel without pidfd: ask kill()
        }
    }
    return !(std.c.kill(pid, 0) != 0 and std.c._errno().* == @intFromEnum(std.posix.E.SRCH));
}

test "a ring hands slots from producer to consumer and back, in order" {
    const mapping = @import("mapping.zig");
    const page = mapping.pageSize();
    const need = try bytesFor(2, page, page);
    const m = try mapping.mapAnonymous(need.total, true);
    defer mapping.unmap(m.region) catch {};
    try std.testing.expectError(error.BADF, reserve(m.region, 0)); // not attached
    try init(m.region, 2, @intCast(page), page);
    try std.testing.expectError(error.EXIST, init(m.region, 2, @intCast(page), page));
    _ = try attach(m.region, .producer);
    try std.testing.expectError(error.BUSY, attach(m.region, .producer));
    try std.testing.expectError(error.BADF, receive(m.region, 0)); // the consumer is not attached yet
    const geometry = try attach(m.region, .consumer);
    try std.testing.expectEqual(@as(u32, 2), geometry.slots);

    try std.testing.expectError(error.TIMEDOUT, receive(m.region, 0));
    try std.testing.expectEqual(@as(u32, 0), try reserve(m.region, 0));
    try std.testing.expectError(error.INVAL, publish(m.region, 0, @intCast(page + 1)));
    try std.testing.expectError(error.INVAL, publish(m.region, 1, 5)); // not the reserved slot
    try publish(m.region, 0, 5);
    try std.testing.expectEqual(@as(u32, 1), try reserve(m.region, 0));
    try publish(m.region, 1, 7);
    try std.testing.expectError(error.TIMEDOUT, reserve(m.region, 1)); // full
    try std.testing.expectError(error.NOBUFS, publish(m.region, 0, 1));
    try std.testing.expectEqual(@as(u64, 5), try receive(m.region, 0));
    try std.testing.expectEqual(@as(u64, 1 << 32 | 7), try receive(m.region, 0));
    try std.testing.expectError(error.INVAL, release(m.region, 3));
    try release(m.region, 1);
    try std.testing.expectEqual(@as(u32, 0), try reserve(m.region, 0));
    try close(m.region, .producer);
    try std.testing.expectError(error.NODATA, receive(m.region, forever));
    try close(m.region, .consumer);
    try std.testing.expectError(error.CANCELED, receive(m.region, 0));
}

test "closeAttached ends a wait running on another thread and tells the peer" {
    const mapping = @import("mapping.zig");
    const page = mapping.pageSize();
    const m = try mapping.mapAnonymous((try bytesFor(1, page, page)).total, true);
    defer mapping.unmap(m.region) catch {};
    try init(m.region, 1, @intCast(page), page);
    _ = try attach(m.region, .producer);
    _ = try attach(m.region, .consumer);
    const Waiter = struct {
        fn run(region: regions.Id, result: *Errno!u64) void {
            result.* = receive(region, forever);
        }
    };
    var result: Errno!u64 = 0;
    const thread = try std.Thread.spawn(.{}, Waiter.run, .{ m.region, &result });
    std.time.sleep(20 * std.time.ns_per_ms);
    closeAttached(m.region);
    thread.join();
    // Both roles are this thread's here: the wait sees either its own side closed or the producer's end first.
    if (result) |_| return error.TestUnexpectedResult else |err| try std.testing.expect(err == error.CANCELED or err == error.NODATA);
    try std.testing.expectError(error.CANCELED, reserve(m.region, 0));
}

test "a header that does not fit the mapping is refused at attach" {
    const mapping = @import("mapping.zig");
    const page = mapping.pageSize();
    const m = try mapping.mapAnonymous(2 * page, true);
    defer mapping.unmap(m.region) catch {};
    try std.testing.expectError(error.PROTO, attach(m.region, .consumer)); // no magic
    try std.testing.expectError(error.INVAL, init(m.region, 4, @intCast(page), page)); // too small
    try init(m.region, 1, @intCast(page), page);
    const words: [*]u32 = @ptrFromInt(m.address);
    const w = struct {
        fn of(comptime field: []const u8) usize {
            return @offsetOf(Header, field) / 4;
        }
    };
    const lies = [_]struct { word: usize, value: u32, err: Errno }{
        .{ .word = w.of("slots"), .value = 2, .err = error.NODATA }, // one slot more than the mapping holds
        .{ .word = w.of("slots"), .value = 0, .err = error.PROTO },
        .{ .word = w.of("slot_size"), .value = @intCast(2 * page), .err = error.NODATA },
        .{ .word = w.of("slot_size"), .value = 100, .err = error.PROTO }, // not page-aligned
        .{ .word = w.of("data_offset"), .value = @intCast(page + 4096), .err = error.NODATA },
        .{ .word = w.of("data_offset"), .value = 64, .err = error.PROTO }, // over the lengths
        .{ .word = w.of("data_offset"), .value = 0xFFFF_F000, .err = error.NODATA },
        .{ .word = w.of("version"), .value = 2, .err = error.PROTO },
    };
    for (lies) |lie| {
        const kept = words[lie.word];
        words[lie.word] = lie.value;
        try std.testing.expectError(lie.err, attach(m.region, .consumer));
        words[lie.word] = kept;
    }
    _ = try attach(m.region, .consumer);
}

/// One ring in a memfd mapped twice, as two processes would: the producer's view and the consumer's.
const TwoViews = struct {
    fd: i32,
    producer: @import("mapping.zig").Mapped,
    consumer: @import("mapping.zig").Mapped,
    total: usize,

    fn make(slots: u32, slot_size: u32) !TwoViews {
        const mapping = @import("mapping.zig");
        const file = @import("file.zig");
        const page = mapping.pageSize();
        const need = try bytesFor(slots, slot_size, page);
        const fd = try file.memoryFile(need.total);
        const p = try mapping.mapFile(fd, 0, need.total, .{ .write = true });
        const c = try mapping.mapFile(fd, 0, need.total, .{ .write = true });
        try init(p.region, slots, slot_size, page);
        _ = try attach(p.region, .producer);
        _ = try attach(c.region, .consumer);
        return .{ .fd = fd, .producer = p, .consumer = c, .total = need.total };
    }

    fn free(v: TwoViews) void {
        const mapping = @import("mapping.zig");
        mapping.unmap(v.producer.region) catch {};
        mapping.unmap(v.consumer.region) catch {};
        @import("file.zig").close(v.fd) catch {};
    }
};

test "a peer that rewrites any header word gets EPROTO or a slot inside the ring, never memory outside it" {
    const slots = 4;
    const slot_size: u32 = 4096;
    const values = [_]u32{ 0, 1, 3, 4, 5, 9, 4097, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFE, 0xFFFF_FFFF };
    var word: usize = 0;
    while (word < (lengths_offset + 4 * slots) / 4) : (word += 1) {
        for (values) |value| {
            const v = try TwoViews.make(slots, slot_size);
            defer v.free();
            // Traffic first, so indices are mid-ring: two published, one received and held.
            for (0..2) |k| {
                const slot = try reserve(v.producer.region, 0);
                try publish(v.producer.region, slot, @intCast(100 + k));
            }
            _ = try receive(v.consumer.region, 0);
            const words: [*]volatile u32 = @ptrFromInt(v.consumer.address);
            words[word] = value; // the lie, seen by both sides (the same memory)
            const geometry = attached[attachedIndex(v.consumer.region)].geometry;
            for (0..6) |_| {
                if (reserve(v.producer.region, 0)) |slot| {
                    try std.testing.expect(slot < geometry.slots);
                    publish(v.producer.region, slot, 8) catch |err| try expectRefusal(err);
                } else |err| try expectRefusal(err);
                if (receive(v.consumer.region, 0)) |packed_slot| {
                    try std.testing.expect(packed_slot >> 32 < geometry.slots);
                    try std.testing.expect(packed_slot & 0xFFFF_FFFF <= geometry.slot_size);
                } else |err| try expectRefusal(err);
                release(v.consumer.region, 1) catch |err| try expectRefusal(err);
            }
        }
    }
}

fn expectRefusal(err: Errno) !void {
    switch (err) {
        error.PROTO, error.TIMEDOUT, error.INVAL, error.NOBUFS, error.CANCELED, error.PIPE, error.NODATA => {},
        else => return err,
    }
}

test "geometry rewritten after attach is EPROTO; this side's counters are its own" {
    const v = try TwoViews.make(2, 4096);
    defer v.free();
    const header: *Header = @ptrFromInt(v.consumer.address);
    header.slot_size = 1 << 20; // bigger slots than the mapping: followed, they would reach past it
    try std.testing.expectError(error.PROTO, reserve(v.producer.region, 0));
    try std.testing.expectError(error.PROTO, receive(v.consumer.region, 0));
    header.slot_size = 4096;
    try publish(v.producer.region, try reserve(v.producer.region, 0), 3);
    header.consumer.index = 0xFFFF; // the producer rewrites the consumer's shared index: ignored by the consumer
    try std.testing.expectEqual(@as(u64, 3), try receive(v.consumer.region, 0));
    try std.testing.expectError(error.PROTO, reserve(v.producer.region, 0)); // but the producer sees a lie
    try release(v.consumer.region, 1); // the consumer's own count writes the truth back
    try std.testing.expectEqual(@as(u32, 1), try reserve(v.producer.region, 0));
}

test "a dead peer is noticed: EPIPE, not a hang" {
    try std.testing.expect(alive(currentPid()));
    try std.testing.expect(!alive(std.math.maxInt(i32))); // no such process
}
