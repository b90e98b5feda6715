//! The table of live memory regions (file mappings, anonymous mappings, pool
//! slabs). JS names memory only as {region id, offset, length}; every such
//! triple is resolved here against a live region, so no value from JS can make
//! the library touch memory outside one.
const std = @import("std");
const Errno = @import("errno.zig").Errno;

/// Limit: live regions at once. Each is at least one page, so this is far past
/// what a process maps through pageio; the index must also fit in 16 bits.
pub const region_count_max = 65535;

/// An id is (generation << 16) | (slot index + 1). The generation changes each
/// time a slot is reused, so a stale id of an unmapped region never resolves
/// to the region that took its slot. 0 and 0xFFFF_FFFF are never ids.
pub const Id = u32;

const Slot = struct {
    base: usize = 0,
    len: usize = 0,
    generation: u16 = 0,
    /// Read by the SIGBUS handler without the lock: set last on register, cleared first on unregister.
    live: bool = false,
    kind: Kind = .anonymous,
    /// File mappings: a descriptor of the region's own on its file (the SIGBUS handler's fstat needs one,
    /// whatever the caller does with theirs), and the file offset of `base`.
    fd: i32 = -1,
    file_offset: u64 = 0,
    /// Set by the SIGBUS guard (atomically, from a signal handler): why some of its pages are zeros now.
    fault: Fault = .none,
    /// References to the memory: its JS owner's (until it lets go) plus one per ArrayBuffer over it whose
    /// release the runtime reports (Bun's deallocator). The memory is unmapped when the last one goes.
    refs: u32 = 1,
    /// The JS owner let go: its id no longer resolves, though the memory may live on under views.
    closed: bool = false,
    /// Viewed by an ArrayBuffer whose release no runtime reports (Deno): retired, never unmapped, unless
    /// the owner revoked every view first.
    viewed_untracked: bool = false,
    /// A view escaped its owner (transferred away) with no release the runtime reports: retired, never
    /// unmapped, whoever lets go last.
    escaped: bool = false,
    /// The attached JS thread that registered it (0: none), whose end lets go of it.
    thread: u64 = 0,
};

var slots: [region_count_max]Slot = [_]Slot{.{}} ** region_count_max;
var free_indexes: [region_count_max]u16 = undefined;
var free_count: usize = 0;
var fresh_count: usize = 0;
// Deno's non-blocking FFI calls run on other threads; the table is shared.
var mutex: std.Thread.Mutex = .{};

pub const Region = struct { base: usize, len: usize, fault: Fault = .none, kind: Kind = .anonymous, fd: i32 = -1 };

/// What a region maps: anonymous memory (private or shared) or a file.
pub const Kind = enum { anonymous, anonymous_shared, file };

/// Why the SIGBUS guard put zero pages into a file region. Its bytes from there on are not the file's, so
/// nothing sends them as data: each use of the region fails with `errno()`.
pub const Fault = enum(u8) {
    none,
    /// The file is shorter than the faulting offset now (truncated under the mapping).
    truncated,
    /// The file's filesystem had no room for the page (a sparse file on a full disk or tmpfs).
    no_space,
    /// Any other failure to bring the page in (an I/O error).
    io,

    /// The errno every use of a faulted region returns. A truncated file is ENODATA, as a kernel move of a
    /// span past its new end is.
    pub fn errno(fault: Fault) Errno {
        return switch (fault) {
            .none => unreachable,
            .truncated => error.NODATA,
            .no_space => error.NOSPC,
            .io => error.IO,
        };
    }
};

pub fn register(base: usize, len: usize, kind: Kind) Errno!Id {
    std.debug.assert(kind != .file); // files come with their descriptor: registerFile
    return add(.{ .base = base, .len = len, .kind = kind });
}

/// Registers a file mapping whose own descriptor on the file is `fd`; `unregister` hands it back to be closed.
pub fn registerFile(base: usize, len: usize, fd: i32, file_offset: u64) Errno!Id {
    return add(.{ .base = base, .len = len, .kind = .file, .fd = fd, .file_offset = file_offset });
}

fn add(fresh: Slot) Errno!Id {
    std.debug.assert(fresh.base != 0);
    mutex.lock();
    defer mutex.unlock();
    const index: u16 = if (free_count > 0) blk: {
        free_count -= 1;
        break :blk free_indexes[free_count];
    } else if (fresh_count < region_count_max) blk: {
        @atomicStore(usize, &fresh_count, fresh_count + 1, .release);
        break :blk @intCast(fresh_count - 1);
    } else return error.NOMEM;
    const slot = &slots[index];
    std.debug.assert(!slot.live);
    const generation: u16 = if (slot.generation >= 0xFFFE) 1 else slot.generation + 1;
    slot.* = fresh;
    slot.generation = generation;
    slot.thread = current_thread;
    @atomicStore(bool, &slot.live, true, .release);
    return (@as(u32, generation) << 16) | (@as(u32, index) + 1);
}

/// Removes a live region at once, whatever holds it, and returns what it was (a constructor undoing itself).
pub fn unregister(id: Id) Errno!Region {
    mutex.lock();
    defer mutex.unlock();
    return free(try find(id), id);
}

fn free(slot: *Slot, id: Id) Region {
    @atomicStore(bool, &slot.live, false, .release);
    free_indexes[free_count] = @intCast((id & 0xFFFF) - 1);
    free_count += 1;
    return .{ .base = slot.base, .len = slot.len, .kind = slot.kind, .fd = slot.fd };
}

/// Another reference on an open region (an ArrayBuffer whose deallocator will call `release(id, .view)`).
pub fn retain(id: Id) Errno!void {
    mutex.lock();
    defer mutex.unlock();
    const slot = try find(id);
    if (slot.refs == std.math.maxInt(u32)) return error.OVERFLOW;
    slot.refs += 1;
}

/// A view of [address, address + len) may be made over region `id`: EFAULT when that is not wholly inside it
/// (an address from JS is checked here before any ArrayBuffer is made over it).
pub fn checkSpan(id: Id, address: u64, len: u64) Errno!void {
    const region = try lookup(id);
    if (address < region.base or address - region.base > region.len or len > region.len - (address - region.base)) {
        return error.FAULT;
    }
}

/// Records that an ArrayBuffer no runtime will report released now views the region.
pub fn markViewedUntracked(id: Id) Errno!void {
    mutex.lock();
    defer mutex.unlock();
    (try find(id)).viewed_untracked = true;
}

/// Records that a view of the region escaped its owner and no runtime reports its release.
pub fn markEscaped(id: Id) Errno!void {
    mutex.lock();
    defer mutex.unlock();
    (try find(id)).escaped = true;
}

/// Who lets go: the owner (having revoked the views it could), or a view whose release the runtime reported.
pub const Holder = enum { owner, view };

/// What `release` decided: the memory can go (`unmap`), must stay for good (`retire`), or is still held.
pub const Released = union(enum) { held, unmap: Region, retire: Region };

/// Drops a reference. The owner's (once only) also closes the id to JS. When the last one goes, the slot
/// is freed and the caller unmaps the memory, unless an untracked view may still reach it: then it is
/// retired (kept mapped, counted in `retired_bytes`).
pub fn release(id: Id, holder: Holder) Errno!Released {
    mutex.lock();
    defer mutex.unlock();
    const slot = switch (holder) {
        .owner => try find(id),
        .view => try findOpenOrClosed(id),
    };
    if (holder == .owner) {
        slot.closed = true;
        slot.viewed_untracked = false; // every such view is revoked, or marked escaped
    }
    std.debug.assert(slot.refs > 0);
    slot.refs -= 1;
    if (slot.refs > 0) return .held;
    const untracked = slot.viewed_untracked or slot.escaped;
    const region = free(slot, id);
    if (!untracked) return .{ .unmap = region };
    retired_bytes += region.len;
    return .{ .retire = region };
}

/// Bytes of memory kept mapped for good because a view no runtime reports may still reach them.
pub var retired_bytes: u64 = 0;

/// The calling thread's id when it is an attached JS thread (`attachThread`), else 0.
threadlocal var current_thread: u64 = 0;

/// The calling thread's id if it is an attached JS thread, else 0.
pub fn currentThread() u64 {
    return current_thread;
}

/// Marks the calling thread as a JS thread: regions it registers from now on are its own, and released
/// by `releaseThread` when it ends.
pub fn attachThread() u64 {
    current_thread = std.Thread.getCurrentId();
    return current_thread;
}

/// Calls `each` (outside the lock) with every open region that `thread` registered, after marking those
/// its views reached untracked as escaped: the thread ended (a Worker), its heap revokes nothing more.
pub fn releaseThread(thread: u64, each: *const fn (Id) void) void {
    const count = @atomicLoad(usize, &fresh_count, .acquire);
    for (0..count) |index| {
        const id = blk: {
            mutex.lock();
            defer mutex.unlock();
            const slot = &slots[index];
            if (!slot.live or slot.closed or slot.thread != thread) continue;
            if (slot.viewed_untracked) slot.escaped = true;
            break :blk (@as(u32, slot.generation) << 16) | (@as(u32, @intCast(index)) + 1);
        };
        each(id);
    }
}

pub fn lookup(id: Id) Errno!Region {
    mutex.lock();
    defer mutex.unlock();
    const slot = try find(id);
    return .{ .base = slot.base, .len = slot.len, .fault = @atomicLoad(Fault, &slot.fault, .acquire), .kind = slot.kind, .fd = slot.fd };
}

/// A live file region as the SIGBUS handler sees it.
pub const FileRegion = struct { index: usize, base: usize, len: usize, fd: i32, file_offset: u64 };

/// For the SIGBUS handler: the live file region holding `address`, or null when no pageio file mapping
/// holds it. Takes no lock (a signal may arrive while the lock is held) and allocates nothing.
pub fn fileRegionHolding(address: usize) ?FileRegion {
    const count = @atomicLoad(usize, &fresh_count, .acquire);
    for (slots[0..count], 0..) |*slot, index| {
        if (!@atomicLoad(bool, &slot.live, .acquire)) continue;
        if (address < slot.base or address - slot.base >= slot.len) continue;
        if (slot.kind != .file) return null;
        return .{ .index = index, .base = slot.base, .len = slot.len, .fd = slot.fd, .file_offset = slot.file_offset };
    }
    return null;
}

/// For the SIGBUS handler: records why region `index` has zero pages; the first cause stays.
pub fn recordFault(index: usize, fault: Fault) void {
    std.debug.assert(fault != .none);
    _ = @cmpxchgStrong(Fault, &slots[index].fault, .none, fault, .acq_rel, .acquire);
}

/// The cause recorded on region `index` (the guard reads back the first one, which `recordFault` keeps).
pub fn faultAt(index: usize) Fault {
    return @atomicLoad(Fault, &slots[index].fault, .acquire);
}

/// The address of [offset, offset + len) inside region `id`, or EFAULT when
/// that range is not wholly inside a live region.
pub fn resolve(id: Id, offset: u64, len: u64) Errno![*]u8 {
    const region = lookup(id) catch return error.FAULT;
    if (offset > region.len or len > region.len - offset) return error.FAULT;
    return @ptrFromInt(region.base + offset);
}

/// Resolves many ranges in one call (a gather list): remembers the last region
/// looked up, so entries that share a slab or mapping take the lock once.
pub const Resolver = struct {
    id: Id = 0,
    region: Region = .{ .base = 0, .len = 0 },

    pub inline fn resolve(r: *Resolver, id: Id, offset: u64, len: u64) Errno![*]u8 {
        if (id != r.id or r.id == 0) {
            r.region = lookup(id) catch return error.FAULT;
            r.id = id;
        }
        // The guard put zero pages into it: those are not the file's bytes.
        if (r.region.fault != .none) return r.region.fault.errno();
        if (offset > r.region.len or len > r.region.len - offset) return error.FAULT;
        return @ptrFromInt(r.region.base + offset);
    }
};

/// A region still open to JS (its owner has not let go).
fn find(id: Id) Errno!*Slot {
    const slot = try findOpenOrClosed(id);
    if (slot.closed) return error.BADF;
    return slot;
}

fn findOpenOrClosed(id: Id) Errno!*Slot {
    const index_plus_one = id & 0xFFFF;
    if (index_plus_one == 0 or index_plus_one > region_count_max) return error.BADF;
    const slot = &slots[index_plus_one - 1];
    if (!slot.live or slot.generation != id >> 16) return error.BADF;
    return slot;
}

test "a view's span is checked against its region" {
    var memory: [64]u8 = undefined;
    const base = @intFromPtr(&memory);
    const id = try register(base, memory.len, .anonymous);
    defer _ = unregister(id) catch unreachable;
    try checkSpan(id, base, 64);
    try checkSpan(id, base + 60, 4);
    try checkSpan(id, base + 64, 0);
    try std.testing.expectError(error.FAULT, checkSpan(id, base + 60, 5));
    try std.testing.expectError(error.FAULT, checkSpan(id, base - 1, 1));
    try std.testing.expectError(error.FAULT, checkSpan(id, 8, 4096));
    try std.testing.expectError(error.FAULT, checkSpan(id, base + 1, std.math.maxInt(u64)));
    try std.testing.expectError(error.BADF, checkSpan(id +% 0x10000, base, 1));
}

test "a registered region resolves within bounds only" {
    var memory: [64]u8 = undefined;
    const id = try register(@intFromPtr(&memory), memory.len, .anonymous);
    defer _ = unregister(id) catch unreachable;
    try std.testing.expectEqual(@as([*]u8, &memory), try resolve(id, 0, 64));
    try std.testing.expectEqual(@as([*]u8, @ptrCast(&memory[60])), try resolve(id, 60, 4));
    try std.testing.expectError(error.FAULT, resolve(id, 60, 5));
    try std.testing.expectError(error.FAULT, resolve(id, 65, 0));
    try std.testing.expectError(error.FAULT, resolve(id, 1, std.math.maxInt(u64)));
}

test "a resolver checks bounds like resolve and follows region changes" {
    var a: [16]u8 = undefined;
    var b: [32]u8 = undefined;
    const id_a = try register(@intFromPtr(&a), a.len, .anonymous);
    defer _ = unregister(id_a) catch unreachable;
    const id_b = try register(@intFromPtr(&b), b.len, .anonymous);
    defer _ = unregister(id_b) catch unreachable;
    var resolver: Resolver = .{};
    try std.testing.expectEqual(@as([*]u8, &a), try resolver.resolve(id_a, 0, 16));
    try std.testing.expectError(error.FAULT, resolver.resolve(id_a, 0, 17));
    try std.testing.expectEqual(@as([*]u8, @ptrCast(&b[20])), try resolver.resolve(id_b, 20, 12));
    try std.testing.expectError(error.FAULT, resolver.resolve(77, 0, 1));
    try std.testing.expectError(error.FAULT, resolver.resolve(0, 0, 0));
}

test "a fault is recorded only for a live file region, keeps its first cause, and refuses to resolve" {
    var mem: [4096]u8 = undefined;
    var anon: [64]u8 = undefined;
    const file_id = try registerFile(@intFromPtr(&mem), mem.len, -1, 8192);
    defer _ = unregister(file_id) catch unreachable;
    const anon_id = try register(@intFromPtr(&anon), anon.len, .anonymous);
    defer _ = unregister(anon_id) catch unreachable;
    try std.testing.expectEqual(@as(?FileRegion, null), fileRegionHolding(@intFromPtr(&anon[3])));
    try std.testing.expectEqual(@as(?FileRegion, null), fileRegionHolding(@intFromPtr(&mem) + mem.len));
    const found = fileRegionHolding(@intFromPtr(&mem[100])).?;
    try std.testing.expectEqual(@as(u64, 8192), found.file_offset);
    recordFault(found.index, .no_space);
    recordFault(found.index, .truncated);
    var resolver: Resolver = .{};
    try std.testing.expectError(error.NOSPC, resolver.resolve(file_id, 0, 1));
    try std.testing.expectEqual(Fault.no_space, (try lookup(file_id)).fault);
    try std.testing.expectEqual(Fault.none, (try lookup(anon_id)).fault);
}

test "a stale id does not resolve to the region that reused its slot" {
    var a: [8]u8 = undefined;
    var b: [8]u8 = undefined;
    const id_a = try register(@intFromPtr(&a), a.len, .anonymous);
    _ = try unregister(id_a);
    const id_b = try register(@intFromPtr(&b), b.len, .anonymous);
    defer _ = unregister(id_b) catch unreachable;
    try std.testing.expectEqual(id_a & 0xFFFF, id_b & 0xFFFF); // same slot
    try std.testing.expectError(error.FAULT, resolve(id_a, 0, 1));
    try std.testing.expectError(error.BADF, unregister(id_a));
    try std.testing.expectError(error.BADF, lookup(0));
    try std.testing.expectError(error.BADF, lookup(0xFFFF_FFFF));
}

test "a region's memory outlives its owner while a view holds it; an untracked view retires it" {
    var memory: [64]u8 = undefined;
    const id = try register(@intFromPtr(&memory), memory.len, .anonymous);
    try retain(id);
    try std.testing.expectEqual(Released.held, try release(id, .owner));
    try std.testing.expectError(error.BADF, lookup(id)); // closed to JS at once
    try std.testing.expectError(error.BADF, release(id, .owner)); // the owner lets go once
    try std.testing.expectEqual(@as(usize, @intFromPtr(&memory)), (try release(id, .view)).unmap.base);
    try std.testing.expectError(error.BADF, release(id, .view));

    const before = retired_bytes;
    const other = try register(@intFromPtr(&memory), memory.len, .anonymous);
    try markEscaped(other);
    try std.testing.expectEqual(@as(usize, 64), (try release(other, .owner)).retire.len);
    try std.testing.expectEqual(before + 64, retired_bytes);
    const revoked = try register(@intFromPtr(&memory), memory.len, .anonymous);
    try markViewedUntracked(revoked);
    try std.testing.expectEqual(@as(usize, 64), (try release(revoked, .owner)).unmap.len);
}

/// Whether slot `index` holds a live region (diagnostics only).
pub fn liveAt(index: usize) bool {
    mutex.lock();
    defer mutex.unlock();
    return slots[index].live;
}
