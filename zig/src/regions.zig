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
    /// The SIGBUS guard replaced a page of it: the file was truncated under the mapping.
    faulted: bool = false,
    /// References to the memory: its JS owner's (until `close`) plus one per ArrayBuffer over it whose
    /// release the runtime reports (Bun's deallocator). The memory is unmapped when the last one goes.
    refs: u32 = 0,
    /// The JS owner let go: its id no longer resolves, though the memory may live on under views.
    closed: bool = false,
    /// Viewed by an ArrayBuffer whose release no runtime reports (Deno): it is retired, never unmapped.
    viewed_untracked: bool = false,
    /// The attached JS thread that registered it (0: none), released when that thread ends.
    thread: u64 = 0,
};

var slots: [region_count_max]Slot = [_]Slot{.{}} ** region_count_max;
var free_indexes: [region_count_max]u16 = undefined;
var free_count: usize = 0;
var fresh_count: usize = 0;
// Deno's non-blocking FFI calls run on other threads; the table is shared.
var mutex: std.Thread.Mutex = .{};

pub const Region = struct { base: usize, len: usize, faulted: bool = false, kind: Kind = .anonymous };

/// What a region maps: anonymous memory, a file that may be written through the mapping, or a file mapped
/// read-only (whose pages the guard copies privately on a write instead of letting it fault).
pub const Kind = enum { anonymous, anonymous_shared, file, file_read_only };

pub fn register(base: usize, len: usize, kind: Kind) Errno!Id {
    std.debug.assert(base != 0);
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
    slot.* = .{ .base = base, .len = len, .generation = generation, .kind = kind, .refs = 1, .thread = current_thread };
    @atomicStore(bool, &slot.live, true, .release);
    return (@as(u32, generation) << 16) | (@as(u32, index) + 1);
}

/// Removes a live region at once, whatever holds it, and returns what it was (a constructor undoing itself).
pub fn unregister(id: Id) Errno!Region {
    mutex.lock();
    defer mutex.unlock();
    const slot = try find(id);
    return free(slot, id);
}

fn free(slot: *Slot, id: Id) Region {
    @atomicStore(bool, &slot.live, false, .release);
    free_indexes[free_count] = @intCast((id & 0xFFFF) - 1);
    free_count += 1;
    return .{ .base = slot.base, .len = slot.len, .kind = slot.kind };
}

/// Another reference on an open region (an ArrayBuffer whose deallocator will call `release(id, .view)`).
pub fn retain(id: Id) Errno!void {
    mutex.lock();
    defer mutex.unlock();
    const slot = try find(id);
    if (slot.refs == std.math.maxInt(u32)) return error.OVERFLOW;
    slot.refs += 1;
}

/// Records that an ArrayBuffer no runtime will report released now views the region.
pub fn markViewedUntracked(id: Id) Errno!void {
    mutex.lock();
    defer mutex.unlock();
    (try find(id)).viewed_untracked = true;
}

/// Who lets go: the owner after revoking every view it made, the owner when it could not (a view escaped,
/// or its thread ended), or a view whose release the runtime reported.
pub const Holder = enum { owner, owner_unrevoked, view };

/// What `release` decided: the memory can go (`unmap`), must stay forever (`retire`), or is still held.
pub const Released = union(enum) { held, unmap: Region, retire: Region };

/// Drops a reference. The owner's (once only) also closes the id to JS. When the last one goes, the slot
/// is freed and the caller unmaps the memory, unless an untracked view may still reach it: then it is
/// retired (kept mapped, counted in `retired_bytes`).
pub fn release(id: Id, holder: Holder) Errno!Released {
    mutex.lock();
    defer mutex.unlock();
    const slot = switch (holder) {
        .owner, .owner_unrevoked => try find(id),
        .view => try findOpenOrClosed(id),
    };
    if (holder != .view) slot.closed = true;
    if (holder == .owner) slot.viewed_untracked = false; // every such view is revoked
    std.debug.assert(slot.refs > 0);
    slot.refs -= 1;
    if (slot.refs > 0) return .held;
    const untracked = slot.viewed_untracked;
    const region = free(slot, id);
    if (!untracked) return .{ .unmap = region };
    retired_bytes += region.len;
    return .{ .retire = region };
}

/// Bytes of memory kept mapped for good because a view no runtime reports may still reach them.
pub var retired_bytes: u64 = 0;

/// The calling thread's id when it is an attached JS thread (`attachThread`), else 0.
threadlocal var current_thread: u64 = 0;

/// Marks the calling thread as a JS thread: regions it registers from now on are its own, and released
/// by `releaseThread` when it ends.
pub fn attachThread() u64 {
    current_thread = std.Thread.getCurrentId();
    return current_thread;
}

/// The owner references of every open region that `thread` registered (a Worker ended: nothing of its
/// heap will release them). Calls `each` with every decision, outside the lock.
pub fn releaseThread(thread: u64, each: *const fn (Released) void) void {
    const count = @atomicLoad(usize, &fresh_count, .acquire);
    for (0..count) |index| {
        const id = blk: {
            mutex.lock();
            defer mutex.unlock();
            const slot = &slots[index];
            if (!slot.live or slot.closed or slot.thread != thread) continue;
            break :blk (@as(u32, slot.generation) << 16) | (@as(u32, @intCast(index)) + 1);
        };
        each(release(id, .owner_unrevoked) catch continue);
    }
}

pub fn lookup(id: Id) Errno!Region {
    mutex.lock();
    defer mutex.unlock();
    const slot = try find(id);
    return .{ .base = slot.base, .len = slot.len, .faulted = @atomicLoad(bool, &slot.faulted, .acquire), .kind = slot.kind };
}

/// For the SIGBUS handler: marks the live file region holding `address` as
/// faulted and returns true, or false when no pageio file mapping holds it.
/// Takes no lock (a signal may arrive while the lock is held) and allocates nothing.
pub fn markFault(address: usize) bool {
    const slot = liveSlotHolding(address) orelse return false;
    if (slot.kind == .anonymous or slot.kind == .anonymous_shared) return false;
    @atomicStore(bool, &slot.faulted, true, .release);
    return true;
}

/// For the SIGSEGV handler: whether `address` is in a live read-only file mapping. No lock, no allocation.
pub fn isReadOnlyFile(address: usize) bool {
    const slot = liveSlotHolding(address) orelse return false;
    return slot.kind == .file_read_only;
}

fn liveSlotHolding(address: usize) ?*Slot {
    const count = @atomicLoad(usize, &fresh_count, .acquire);
    for (slots[0..count]) |*slot| {
        if (!@atomicLoad(bool, &slot.live, .acquire)) continue;
        if (address >= slot.base and address - slot.base < slot.len) return slot;
    }
    return null;
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
        // Its file was truncated: those pages are zeros now, not the file's bytes.
        if (r.region.faulted) return error.IO;
        if (offset > r.region.len or len > r.region.len - offset) return error.FAULT;
        return @ptrFromInt(r.region.base + offset);
    }
};

/// A region still open to JS (not yet released by its owner).
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

test "a fault is recorded only for a live file region, and then refuses to resolve" {
    var mem: [4096]u8 = undefined;
    var anon: [64]u8 = undefined;
    const file_id = try register(@intFromPtr(&mem), mem.len, .file);
    defer _ = unregister(file_id) catch unreachable;
    const anon_id = try register(@intFromPtr(&anon), anon.len, .anonymous);
    defer _ = unregister(anon_id) catch unreachable;
    try std.testing.expect(!markFault(@intFromPtr(&anon[3])));
    try std.testing.expect(!markFault(@intFromPtr(&mem) + mem.len));
    try std.testing.expect(markFault(@intFromPtr(&mem[100])));
    var resolver: Resolver = .{};
    try std.testing.expectError(error.IO, resolver.resolve(file_id, 0, 1));
    try std.testing.expect((try lookup(file_id)).faulted);
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
    try std.testing.expect(liveSlotHolding(@intFromPtr(&memory[3])) != null); // still guarded
    try std.testing.expectEqual(@intFromPtr(&memory), (try release(id, .view)).unmap.base);
    try std.testing.expectError(error.BADF, release(id, .view));

    const before = retired_bytes;
    const other = try register(@intFromPtr(&memory), memory.len, .anonymous);
    try markViewedUntracked(other);
    try std.testing.expectEqual(@as(usize, 64), (try release(other, .owner_unrevoked)).retire.len);
    const revoked = try register(@intFromPtr(&memory), memory.len, .anonymous);
    try markViewedUntracked(revoked);
    try std.testing.expectEqual(@as(usize, 64), (try release(revoked, .owner)).unmap.len);
    try std.testing.expectEqual(before + 64, retired_bytes);
}

/// Whether slot `index` holds a live region (diagnostics only).
pub fn liveAt(index: usize) bool {
    mutex.lock();
    defer mutex.unlock();
    return slots[index].live;
}
