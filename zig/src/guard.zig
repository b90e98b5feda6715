//! The signal guard, for the two ways a mapped file can kill a JS process.
//!
//! SIGBUS: a page of a file mapping past the file's end (another process
//! truncated it) faults on the next touch. The handler maps a zero page over
//! the lost one, so the access retries and reads zeros, and records the fault
//! on the region; pageio's next call on that mapping reports it.
//!
//! SIGSEGV: JS cannot make a view read-only, so `bytes[i] = x` on a read-only
//! mapping faults. The handler gives that one page a private copy (copy on
//! write, by hand) and the write retries; the file never sees it.
//!
//! Faults outside pageio's file mappings go to the handler that was there
//! before (V8's and JSC's own rely on that). Linux only for now; elsewhere
//! install() does nothing and read-only mappings are made copy-on-write.
const std = @import("std");
const builtin = @import("builtin");
const regions = @import("regions.zig");

const linux = std.os.linux;
const enabled = builtin.os.tag == .linux;

var installed = std.atomic.Value(bool).init(false);
var previous_bus: if (enabled) linux.Sigaction else void = undefined;
var previous_segv: if (enabled) linux.Sigaction else void = undefined;
var page_size_bytes: usize = 4096;
/// SIGBUS faults the guard has absorbed (for tests and diagnostics).
pub var fault_count = std.atomic.Value(u64).init(0);
/// Pages of read-only mappings the guard copied privately because JS wrote to them.
pub var private_copy_count = std.atomic.Value(u64).init(0);

/// Whether read-only file mappings can rely on the guard (else they are mapped copy-on-write).
pub const guards_read_only_writes = enabled;

/// Installs the handler once, when the first file mapping is made.
pub fn install(page_size: usize) void {
    if (!enabled) return;
    if (installed.swap(true, .acq_rel)) return;
    page_size_bytes = page_size;
    const bus: linux.Sigaction = .{
        .handler = .{ .sigaction = handleBus },
        .mask = linux.empty_sigset,
        .flags = linux.SA.SIGINFO | linux.SA.ONSTACK,
    };
    _ = linux.sigaction(linux.SIG.BUS, &bus, &previous_bus);
    const segv: linux.Sigaction = .{
        .handler = .{ .sigaction = handleSegv },
        .mask = linux.empty_sigset,
        .flags = linux.SA.SIGINFO | linux.SA.ONSTACK,
    };
    _ = linux.sigaction(linux.SIG.SEGV, &segv, &previous_segv);
}

const SEGV_ACCERR = 2; // si_code: a write to a page mapped without PROT_WRITE
const MREMAP_MAYMOVE = 1;
const MREMAP_FIXED = 2;

fn handleSegv(signal: i32, info: *const linux.siginfo_t, context: ?*anyopaque) callconv(.C) void {
    const address = @intFromPtr(info.fields.sigfault.addr);
    if (info.code == SEGV_ACCERR and regions.isReadOnlyFile(address)) {
        if (privateCopy(std.mem.alignBackward(usize, address, page_size_bytes))) {
            _ = private_copy_count.fetchAdd(1, .monotonic);
            return; // the write runs again, on this process's own copy of the page
        }
    }
    chain(&previous_segv, signal, info, context);
}

/// Replaces the read-only page at `page` by a private writable copy of it: copy into a fresh anonymous
/// page, then move that page over the original in one mremap. Raw system calls only.
fn privateCopy(page: usize) bool {
    const fresh = linux.mmap(null, page_size_bytes, linux.PROT.READ | linux.PROT.WRITE, .{ .TYPE = .PRIVATE, .ANONYMOUS = true }, -1, 0);
    if (linux.E.init(fresh) != .SUCCESS) return false;
    const to: [*]u8 = @ptrFromInt(fresh);
    const from: [*]const u8 = @ptrFromInt(page);
    @memcpy(to[0..page_size_bytes], from[0..page_size_bytes]); // a truncated page reads as zeros (SIGBUS guard)
    const moved = linux.syscall5(.mremap, fresh, page_size_bytes, page_size_bytes, MREMAP_MAYMOVE | MREMAP_FIXED, page);
    if (linux.E.init(moved) == .SUCCESS) return true;
    _ = linux.munmap(to, page_size_bytes);
    return false;
}

fn handleBus(signal: i32, info: *const linux.siginfo_t, context: ?*anyopaque) callconv(.C) void {
    // si_code > 0: the kernel raised it for a memory access (BUS_ADRERR…); kill() and tkill() carry no address.
    const address = @intFromPtr(info.fields.sigfault.addr);
    if (info.code > 0 and regions.markFault(address)) {
        // Raw system call: nothing here may take a lock or allocate.
        const page = std.mem.alignBackward(usize, address, page_size_bytes);
        const rc = linux.mmap(
            @ptrFromInt(page),
            page_size_bytes,
            linux.PROT.READ | linux.PROT.WRITE,
            .{ .TYPE = .PRIVATE, .ANONYMOUS = true, .FIXED = true },
            -1,
            0,
        );
        if (linux.E.init(rc) == .SUCCESS) {
            _ = fault_count.fetchAdd(1, .monotonic);
            return; // the access runs again, on the zero page
        }
    }
    chain(&previous_bus, signal, info, context);
}

/// Hands a fault that is not pageio's to whoever handled the signal before.
fn chain(previous: *const linux.Sigaction, signal: i32, info: *const linux.siginfo_t, context: ?*anyopaque) void {
    if (previous.flags & linux.SA.SIGINFO != 0) {
        if (previous.handler.sigaction) |handler| return handler(signal, info, context);
    } else if (previous.handler.handler) |handler| {
        if (handler != linux.SIG.DFL and handler != linux.SIG.IGN) return handler(signal);
    }
    // No handler before: restore the default and raise the signal again, so it ends the process as it
    // would have without pageio (a fault would also recur on return; a kill() would not).
    const default: linux.Sigaction = .{ .handler = .{ .handler = linux.SIG.DFL }, .mask = linux.empty_sigset, .flags = 0 };
    _ = linux.sigaction(@intCast(signal), &default, null);
    _ = linux.tkill(linux.gettid(), signal);
}

test "a truncated file's pages read as zeros and the region records the fault" {
    if (!enabled) return error.SkipZigTest;
    const mapping = @import("mapping.zig");
    var tmp = std.testing.tmpDir(.{});
    defer tmp.cleanup();
    const page = mapping.pageSize();
    const file = try tmp.dir.createFile("cut", .{ .read = true });
    defer file.close();
    try file.setEndPos(3 * page);
    const marks = [_]u8{ 0xAB, 0xAB };
    _ = try file.pwriteAll(&marks, 0);
    _ = try file.pwriteAll(&marks, 2 * page + 5);
    const m = try mapping.mapFile(file.handle, 0, 3 * page, .{});
    defer mapping.unmap(m.region) catch unreachable;
    const bytes: [*]volatile u8 = @ptrFromInt(m.address);
    try std.testing.expectEqual(@as(u8, 0xAB), bytes[0]);
    try std.testing.expectEqual(@as(u8, 0xAB), bytes[2 * page + 5]);
    try file.setEndPos(page); // another descriptor cuts the file to one page
    const before = fault_count.load(.monotonic);
    try std.testing.expectEqual(@as(u8, 0), bytes[2 * page + 5]); // SIGBUS without the guard
    try std.testing.expectEqual(@as(u8, 0xAB), bytes[1]);
    try std.testing.expectEqual(before + 1, fault_count.load(.monotonic));
    try std.testing.expect((try regions.lookup(m.region)).faulted);
}

test "a write to a read-only file mapping gets a private copy of its page; the file never sees it" {
    if (!enabled) return error.SkipZigTest;
    const mapping = @import("mapping.zig");
    var tmp = std.testing.tmpDir(.{});
    defer tmp.cleanup();
    const page = mapping.pageSize();
    const file = try tmp.dir.createFile("ro", .{ .read = true });
    defer file.close();
    try file.setEndPos(2 * page);
    _ = try file.pwriteAll("abc", page);
    const m = try mapping.mapFile(file.handle, 0, 2 * page, .{});
    defer mapping.unmap(m.region) catch unreachable;
    const bytes: [*]volatile u8 = @ptrFromInt(m.address);
    const before = private_copy_count.load(.monotonic);
    bytes[page + 1] = 'X'; // SIGSEGV without the guard
    try std.testing.expectEqual(@as(u8, 'X'), bytes[page + 1]);
    try std.testing.expectEqual(@as(u8, 'a'), bytes[page]); // the rest of the page was copied
    try std.testing.expectEqual(before + 1, private_copy_count.load(.monotonic));
    var on_disk: [3]u8 = undefined;
    _ = try file.preadAll(&on_disk, page);
    try std.testing.expectEqualStrings("abc", &on_disk);
}
