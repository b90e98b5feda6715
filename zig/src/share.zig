//! Shares: part of a region handed to another JS thread of this process (a Worker) without a copy. The
//! region table is process-wide, so a share is just a checked {region, offset, length} with a reference:
//! while any share of a region lives, the owner's unmap is deferred and the last drop unmaps it.
//! A share nobody takes within its grace period (its message was lost) is swept, so it never pins memory
//! for good; a take after that is ENOENT, never a view of freed memory.
const std = @import("std");
const regions = @import("regions.zig");
const mapping = @import("mapping.zig");
const Errno = @import("errno.zig").Errno;

/// Limit: live shares per process (a Worker holds one per view it took; a few words each).
pub const share_count_max = 4096;

const State = enum(u8) { free, pending, taken };

const Share = struct {
    state: State = .free,
    generation: u16 = 0,
    region: regions.Id = 0,
    offset: u64 = 0,
    len: u64 = 0,
    /// The owner unmapped the region while this share held it.
    owner_gone: bool = false,
    /// A share still pending then is swept: nobody is going to take it.
    deadline_ns: u64 = 0,
};

var shares: [share_count_max]Share = [_]Share{.{}} ** share_count_max;
/// Shares not free: while 0, an unmap or sweep has nothing to look through (every unmap asks).
var live_count: usize = 0;
var mutex: std.Thread.Mutex = .{};

fn nowNs() u64 {
    var ts: std.posix.timespec = undefined;
    std.posix.clock_gettime(.MONOTONIC, &ts) catch return 0;
    return @as(u64, @intCast(ts.sec)) * std.time.ns_per_s + @as(u64, @intCast(ts.nsec));
}

fn idOf(index: usize) u32 {
    return (@as(u32, shares[index].generation) << 16) | @as(u32, @intCast(index + 1));
}

fn find(id: u32) Errno!*Share {
    const index_plus_one = id & 0xFFFF;
    if (index_plus_one == 0 or index_plus_one > share_count_max) return error.NOENT;
    const share = &shares[index_plus_one - 1];
    if (share.state == .free or share.generation != id >> 16) return error.NOENT;
    return share;
}

/// A share of `[offset, offset + len)` of a live region, to be taken within `grace_ms`.
pub fn create(region: regions.Id, offset: u64, len: u64, grace_ms: u32) Errno!u32 {
    mutex.lock();
    defer mutex.unlock();
    const now = nowNs();
    sweep(now);
    if (owned(region) == .gone) return error.BADF; // its owner unmapped it already
    const r = try regions.lookup(region);
    if (offset > r.len or len > r.len - offset) return error.INVAL;
    for (&shares, 0..) |*share, index| {
        if (share.state != .free) continue;
        const generation: u16 = if (share.generation >= 0xFFFE) 1 else share.generation + 1;
        share.* = .{
            .state = .pending,
            .generation = generation,
            .region = region,
            .offset = offset,
            .len = len,
            .deadline_ns = now +| @as(u64, grace_ms) * std.time.ns_per_ms,
        };
        live_count += 1;
        return idOf(index);
    }
    return error.NOSPC;
}

/// Takes a pending share: its address and length (the region stays mapped until `drop`).
pub fn take(id: u32) Errno!struct { address: usize, len: u64, region: regions.Id } {
    mutex.lock();
    defer mutex.unlock();
    sweep(nowNs());
    const share = try find(id);
    if (share.state != .pending) return error.ALREADY;
    const r = try regions.lookup(share.region);
    std.debug.assert(share.offset + share.len <= r.len);
    share.state = .taken;
    return .{ .address = r.base + share.offset, .len = share.len, .region = share.region };
}

/// Lets go of a share, pending or taken; the last one of a region its owner unmapped unmaps it.
pub fn drop(id: u32) Errno!void {
    mutex.lock();
    defer mutex.unlock();
    const share = try find(id);
    const region = share.region;
    const gone = share.owner_gone;
    share.* = .{ .generation = share.generation };
    live_count -= 1;
    if (gone and owned(region) == .free) try mapping.unmap(region);
    sweep(nowNs());
}

/// The owner's unmap: at once when no share holds the region, else when the last one is dropped.
pub fn unmap(region: regions.Id) Errno!void {
    mutex.lock();
    defer mutex.unlock();
    switch (owned(region)) {
        .free => return mapping.unmap(region),
        .gone => return error.BADF, // unmapped twice
        .held => for (&shares) |*share| {
            if (share.state != .free and share.region == region) share.owner_gone = true;
        },
    }
}

/// Whether the process still has a share with `id` (taken or not): the owner's side learns a Worker let go.
pub fn live(id: u32) bool {
    mutex.lock();
    defer mutex.unlock();
    sweep(nowNs());
    _ = find(id) catch return false;
    return true;
}

/// Live shares, for tests and diagnostics.
pub fn count() u64 {
    mutex.lock();
    defer mutex.unlock();
    var n: u64 = 0;
    for (&shares) |*share| n += @intFromBool(share.state != .free);
    std.debug.assert(n == live_count);
    return n;
}

const Owned = enum { free, held, gone };

fn owned(region: regions.Id) Owned {
    var result: Owned = .free;
    if (live_count == 0) return result;
    for (&shares) |*share| {
        if (share.state == .free or share.region != region) continue;
        if (share.owner_gone) return .gone;
        result = .held;
    }
    return result;
}

/// Drops pending shares past their deadline (nobody is going to take them); the last of an unmapped
/// region unmaps it.
fn sweep(now: u64) void {
    if (live_count == 0) return;
    for (&shares) |*share| {
        if (share.state != .pending or now < share.deadline_ns) continue;
        const region = share.region;
        const gone = share.owner_gone;
        share.* = .{ .generation = share.generation };
        live_count -= 1;
        if (gone and owned(region) == .free) mapping.unmap(region) catch {};
    }
}

test "a share defers its region's unmap until it is dropped; a second take or a stale id fails" {
    const region = (try mapping.mapAnonymous(4096, false)).region;
    const id = try create(region, 100, 200, 1000);
    try std.testing.expectError(error.INVAL, create(region, 4000, 200, 1000));
    const taken = try take(id);
    try std.testing.expectEqual(@as(u64, 200), taken.len);
    try std.testing.expectError(error.ALREADY, take(id));
    try unmap(region);
    try std.testing.expectError(error.BADF, unmap(region));
    try std.testing.expectError(error.BADF, create(region, 0, 1, 1000));
    @as(*volatile u8, @ptrFromInt(taken.address)).* = 7; // still mapped: the share holds it
    try drop(id);
    try std.testing.expectError(error.BADF, regions.lookup(region)); // the last drop unmapped it
    try std.testing.expectError(error.NOENT, drop(id));
    try std.testing.expectError(error.NOENT, take(0));
    try std.testing.expectEqual(@as(u64, 0), count());
}

test "an untaken share is swept after its grace period, and unmaps the region its owner let go" {
    const region = (try mapping.mapAnonymous(4096, false)).region;
    const id = try create(region, 0, 4096, 0);
    try unmap(region);
    std.time.sleep(std.time.ns_per_ms);
    try std.testing.expectError(error.NOENT, take(id)); // swept: the region is gone, not viewed
    try std.testing.expectError(error.BADF, regions.lookup(region));
    try std.testing.expectEqual(@as(u64, 0), count());
}
