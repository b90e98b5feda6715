//! The SIGBUS guard. A page of a file mapping past the file's end (another
//! process truncated it) raises SIGBUS on the next touch, which kills the
//! process in every JS mmap library. Here the handler maps a zero page over
//! the lost one, so the access retries and reads zeros, and records the fault
//! on the region; pageio's next call on that mapping reports it. Faults
//! outside pageio's file mappings go to the handler that was there before.
//! Linux only for now; elsewhere install() does nothing.
const std = @import("std");
const builtin = @import("builtin");
const regions = @import("regions.zig");

const linux = std.os.linux;
const enabled = builtin.os.tag == .linux;

var installed = std.atomic.Value(bool).init(false);
var previous: if (enabled) linux.Sigaction else void = undefined;
var page_size_bytes: usize = 4096;
/// Faults the guard has absorbed (for tests and diagnostics).
pub var fault_count = std.atomic.Value(u64).init(0);

/// Installs the handler once, when the first file mapping is made.
pub fn install(page_size: usize) void {
    if (!enabled) return;
    if (installed.swap(true, .acq_rel)) return;
    page_size_bytes = page_size;
    const action: linux.Sigaction = .{
        .handler = .{ .sigaction = handle },
        .mask = linux.empty_sigset,
        .flags = linux.SA.SIGINFO | linux.SA.ONSTACK,
    };
    _ = linux.sigaction(linux.SIG.BUS, &action, &previous);
}

fn handle(signal: i32, info: *const linux.siginfo_t, context: ?*anyopaque) callconv(.C) void {
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
    chain(signal, info, context);
}

/// Hands a fault that is not pageio's to whoever handled SIGBUS before.
fn chain(signal: i32, info: *const linux.siginfo_t, context: ?*anyopaque) void {
    if (previous.flags & linux.SA.SIGINFO != 0) {
        if (previous.handler.sigaction) |handler| return handler(signal, info, context);
    } else if (previous.handler.handler) |handler| {
        if (handler != linux.SIG.DFL and handler != linux.SIG.IGN) return handler(signal);
    }
    // No handler before: restore the default and raise the signal again, so it ends the process as it
    // would have without pageio (a fault would also recur on return; a kill() would not).
    const default: linux.Sigaction = .{ .handler = .{ .handler = linux.SIG.DFL }, .mask = linux.empty_sigset, .flags = 0 };
    _ = linux.sigaction(linux.SIG.BUS, &default, null);
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
