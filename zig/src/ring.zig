//! A single-producer/single-consumer ring of pages in shared memory: a memfd
//! or a file that two processes map. The producer fills a slot and publishes
//! its length; the consumer reads the slot where it lies and gives it back.
//! Nothing is copied; only the indices in the header move, atomically.
//!
//! The header is shared with another process, so nothing in it is trusted:
//! every call re-checks the geometry against the mapping's real length and
//! every length against the slot size before touching a byte.
//!
//! Waiting uses the futex on the index word the other side moves (a shared
//! futex, so the other process's wake reaches it), in slices: after each
//! slice the peer's pid is checked, so a peer that died is an EPIPE, not a hang.
const std = @import("std");
const builtin = @import("builtin");
const errno = @import("errno.zig");
const Errno = errno.Errno;
const regions = @import("regions.zig");

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

pub const Role = enum(u32) { producer, consumer };
const State = enum(u32) { absent, attached, closed, _ };

/// One cache line per writer, so the two processes do not bounce a line on every publish.
const Side = extern struct {
    index: u32, // producer: slots published; consumer: slots given back
    pid: i32,
    state: u32,
    waiting: u32,
    received: u32, // consumer only: slots handed to JS (between index and the producer's index)
    _pad: [11]u32,
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

const lengths_offset = @sizeOf(Header);

pub const Geometry = struct { slots: u32, slot_size: u32, data_offset: u32 };

/// Where the slots start and the bytes a ring of this shape needs.
pub fn bytesFor(slots: u64, slot_size: u64, page: u64) Errno!struct { data_offset: u64, total: u64 } {
    if (slots == 0 or slots > slots_max or slot_size == 0 or slot_size > slot_bytes_max) return error.INVAL;
    if (slot_size % page != 0) return error.INVAL;
    const data_offset = std.mem.alignForward(u64, lengths_offset + 4 * slots, page);
    return .{ .data_offset = data_offset, .total = data_offset + slots * slot_size };
}

const Ring = struct {
    header: *Header,
    lengths: [*]u32,
    geometry: Geometry,

    fn side(ring: Ring, role: Role) *Side {
        return if (role == .producer) &ring.header.producer else &ring.header.consumer;
    }
};

/// The ring in `region`, its header checked against the region's real length.
fn open(region: regions.Id) Errno!Ring {
    const r = try regions.lookup(region);
    if (r.len < lengths_offset or r.base % @alignOf(Header) != 0) return error.INVAL;
    const header: *Header = @ptrFromInt(r.base);
    if (@atomicLoad(u32, &header.magic, .acquire) != magic or header.version != layout_version) return error.PROTO;
    const geometry: Geometry = .{ .slots = header.slots, .slot_size = header.slot_size, .data_offset = header.data_offset };
    // Read once into `geometry` and checked here: a peer rewriting the header later changes nothing this call uses.
    if (geometry.slots == 0 or geometry.slots > slots_max or geometry.slot_size == 0 or geometry.slot_size > slot_bytes_max or
        geometry.data_offset < lengths_offset + 4 * @as(u64, geometry.slots) or
        geometry.data_offset + @as(u64, geometry.slots) * geometry.slot_size > r.len) return error.PROTO;
    return .{ .header = header, .lengths = @ptrFromInt(r.base + lengths_offset), .geometry = geometry };
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

/// Claims `role` for this process; EBUSY if another attached to it first.
pub fn attach(region: regions.Id, role: Role) Errno!Geometry {
    const ring = try open(region);
    const s = ring.side(role);
    if (@cmpxchgStrong(u32, &s.state, @intFromEnum(State.absent), @intFromEnum(State.attached), .seq_cst, .seq_cst) != null)
        return error.BUSY;
    @atomicStore(i32, &s.pid, currentPid(), .seq_cst);
    return ring.geometry;
}

/// Marks `role` closed and wakes everyone waiting on the ring, in this process or the other.
pub fn close(region: regions.Id, role: Role) Errno!void {
    const ring = try open(region);
    @atomicStore(u32, &ring.side(role).state, @intFromEnum(State.closed), .seq_cst);
    wake(&ring.header.producer.index);
    wake(&ring.header.consumer.index);
}

/// Producer: the slot to fill next, once one is free. EPIPE when the consumer closed or died,
/// ECANCELED when this side was closed meanwhile, ETIMEDOUT after `timeout_ms`.
pub fn reserve(region: regions.Id, timeout_ms: u32) Errno!u32 {
    const ring = try open(region);
    const me = &ring.header.producer;
    const peer = &ring.header.consumer;
    const deadline = Deadline.start(timeout_ms);
    while (true) {
        if (stateOf(me) != .attached) return error.CANCELED;
        if (stateOf(peer) == .closed) return error.PIPE;
        const head = @atomicLoad(u32, &me.index, .monotonic);
        const tail = @atomicLoad(u32, &peer.index, .acquire); // the consumer is done with those slots
        const used = head -% tail;
        if (used > ring.geometry.slots) return error.PROTO;
        if (used < ring.geometry.slots) return head % ring.geometry.slots;
        try wait(&peer.index, tail, &me.waiting, peer, &deadline);
    }
}

/// Producer: publishes the reserved slot with `length` bytes.
pub fn publish(region: regions.Id, length: u32) Errno!void {
    const ring = try open(region);
    const me = &ring.header.producer;
    const peer = &ring.header.consumer;
    if (length > ring.geometry.slot_size) return error.INVAL;
    const head = @atomicLoad(u32, &me.index, .monotonic);
    if (head -% @atomicLoad(u32, &peer.index, .acquire) >= ring.geometry.slots) return error.NOBUFS; // no slot reserved
    ring.lengths[head % ring.geometry.slots] = length;
    @atomicStore(u32, &me.index, head +% 1, .seq_cst); // release: the slot's bytes and length before the index
    if (@atomicLoad(u32, &peer.waiting, .seq_cst) != 0) wake(&me.index);
}

/// Consumer: the next published slot and its length, as slot * 2^32 + length. ENODATA once the
/// producer closed and everything it published was received; EPIPE if it died instead.
pub fn receive(region: regions.Id, timeout_ms: u32) Errno!u64 {
    const ring = try open(region);
    const me = &ring.header.consumer;
    const peer = &ring.header.producer;
    const deadline = Deadline.start(timeout_ms);
    while (true) {
        if (stateOf(me) != .attached) return error.CANCELED;
        const received = @atomicLoad(u32, &me.received, .monotonic);
        const producer_closed = stateOf(peer) == .closed; // read before the index: a close comes after its last publish
        const head = @atomicLoad(u32, &peer.index, .acquire);
        if (head != received) {
            if (head -% received > ring.geometry.slots) return error.PROTO;
            const slot = received % ring.geometry.slots;
            const length = @atomicLoad(u32, &ring.lengths[slot], .monotonic);
            if (length > ring.geometry.slot_size) return error.PROTO;
            @atomicStore(u32, &me.received, received +% 1, .monotonic);
            return @as(u64, slot) << 32 | length;
        }
        if (producer_closed) return error.NODATA;
        try wait(&peer.index, head, &me.waiting, peer, &deadline);
    }
}

/// Consumer: gives the oldest `count` received slots back to the producer.
pub fn release(region: regions.Id, count: u32) Errno!void {
    const ring = try open(region);
    const me = &ring.header.consumer;
    const peer = &ring.header.producer;
    const tail = @atomicLoad(u32, &me.index, .monotonic);
    if (count > @atomicLoad(u32, &me.received, .monotonic) -% tail) return error.INVAL;
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
    try init(m.region, 2, @intCast(page), page);
    try std.testing.expectError(error.EXIST, init(m.region, 2, @intCast(page), page));
    _ = try attach(m.region, .producer);
    try std.testing.expectError(error.BUSY, attach(m.region, .producer));
    const geometry = try attach(m.region, .consumer);
    try std.testing.expectEqual(@as(u32, 2), geometry.slots);

    try std.testing.expectError(error.TIMEDOUT, receive(m.region, 0));
    try std.testing.expectEqual(@as(u32, 0), try reserve(m.region, 0));
    try std.testing.expectError(error.INVAL, publish(m.region, @intCast(page + 1)));
    try publish(m.region, 5);
    try std.testing.expectEqual(@as(u32, 1), try reserve(m.region, 0));
    try publish(m.region, 7);
    try std.testing.expectError(error.TIMEDOUT, reserve(m.region, 1)); // full
    try std.testing.expectError(error.NOBUFS, publish(m.region, 1));
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

test "a corrupted header is refused, never followed" {
    const mapping = @import("mapping.zig");
    const page = mapping.pageSize();
    const m = try mapping.mapAnonymous(2 * page, true);
    defer mapping.unmap(m.region) catch {};
    try std.testing.expectError(error.PROTO, attach(m.region, .consumer)); // no magic
    try std.testing.expectError(error.INVAL, init(m.region, 4, @intCast(page), page)); // too small
    try init(m.region, 1, @intCast(page), page);
    const header: *Header = @ptrFromInt(m.address);
    header.slots = 1000; // a peer lying about the geometry
    try std.testing.expectError(error.PROTO, receive(m.region, 0));
    header.slots = 1;
    _ = try attach(m.region, .consumer);
    header.producer.index = 1;
    (@as([*]u32, @ptrFromInt(m.address + lengths_offset)))[0] = @intCast(page + 1); // a length past the slot
    try std.testing.expectError(error.PROTO, receive(m.region, 0));
    header.producer.index = 9; // more published than slots
    try std.testing.expectError(error.PROTO, receive(m.region, 0));
}

test "a dead peer is noticed: EPIPE, not a hang" {
    try std.testing.expect(alive(currentPid()));
    try std.testing.expect(!alive(std.math.maxInt(i32))); // no such process
}
