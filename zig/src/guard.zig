//! The SIGBUS guard: a mapped file whose pages cannot be brought in must not
//! kill the JS process.
//!
//! A page of a file mapping faults with SIGBUS when the file no longer has it
//! (another process truncated it), when its filesystem has no room for it (a
//! sparse file on a full disk or tmpfs), or when it cannot be read (an I/O
//! error). The handler tells these apart (fstat and fstatfs are plain system
//! calls, safe in a signal handler), records the cause on the region, and maps
//! zero pages over the region from the lost page to its end in ONE mmap, so
//! the access retries and reads zeros. A region then has at most two parts
//! (file, then zeros) whatever the fault pattern: the process never runs out
//! of VMAs (vm.max_map_count). pageio's next use of the region reports the
//! cause; its zeros never go out as data.
//!
//! Writes into a mapping opened without `write` need no handler: such mappings
//! are private and writable, the kernel's own copy-on-write.
//!
//! Faults outside pageio's file mappings go to the handler that was there
//! before (V8's and JSC's own rely on that). Linux only for now.
const std = @import("std");
const builtin = @import("builtin");
const regions = @import("regions.zig");
const files = @import("file.zig");
const errno = @import("errno.zig");
const Errno = errno.Errno;

const linux = std.os.linux;
pub const enabled = builtin.os.tag == .linux;

var installed = std.atomic.Value(bool).init(false);
var previous_bus: if (enabled) linux.Sigaction else void = undefined;
var page_size_bytes: usize = 4096;
/// SIGBUS faults the guard has absorbed (for tests and diagnostics).
pub var fault_count = std.atomic.Value(u64).init(0);

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
}

/// Two signals a failed write raises, whose default action ends the process: SIGPIPE (a socket or pipe whose other
/// end is gone) and SIGXFSZ (a file grown past RLIMIT_FSIZE, `ulimit -f`). Bun ignores both, Deno SIGPIPE only.
/// Before pageio's first write, either that still has its default action gets a handler that does nothing, so the
/// write fails with EPIPE or EFBIG, a typed error on both runtimes alike. A handler, not SIG_IGN: exec puts a caught
/// signal back to its default, so children start as they would have (an ignored one stays ignored). Once: a listener
/// added and removed later (`process.off`, `Deno.removeSignalListener`) puts the default back, and a write to a
/// closed pipe then ends the process, as the runtimes' own writes do. Making sure at every write costs one system
/// call (~0.25 µs here) to look, or two to block the signals around it (+0.5 µs on a 0.8 µs write); a mask left
/// blocked is inherited by every child the thread spawns (none of them would die of SIGPIPE).
pub fn quietWrites() void {
    if (!enabled) return;
    if (writes_quiet.load(.acquire) or writes_quiet.swap(true, .acq_rel)) return;
    for ([_]u6{ linux.SIG.PIPE, linux.SIG.XFSZ }) |sig| {
        var old: linux.Sigaction = undefined;
        _ = linux.sigaction(sig, null, &old);
        if (old.handler.handler != null) continue; // ignored, or someone's handler: theirs to keep
        const nothing: linux.Sigaction = .{
            .handler = .{ .handler = ignore },
            .mask = linux.empty_sigset,
            .flags = linux.SA.RESTART,
        };
        _ = linux.sigaction(sig, &nothing, null);
    }
}

var writes_quiet = std.atomic.Value(bool).init(false);

fn ignore(_: i32) callconv(.c) void {}

/// SIGPIPE blocked on this thread for one `sendfile` to a stream socket, which has no MSG_NOSIGNAL (see
/// stream_sockets.zig); `unblockPipe` puts the mask back, after `settleSignal` took back the one an EPIPE left
/// pending. Two system calls, beside a move of up to 2 GiB.
pub fn blockPipe() Mask {
    var saved: Mask = undefined;
    if (enabled) _ = linux.sigprocmask(linux.SIG.BLOCK, &pipe_set, &saved);
    return saved;
}

pub fn unblockPipe(saved: *const Mask) void {
    if (!enabled) return;
    _ = linux.sigprocmask(linux.SIG.SETMASK, saved, null);
}

pub const Mask = if (enabled) linux.sigset_t else void;
const pipe_set = if (enabled) signalSet(&.{linux.SIG.PIPE}) else {};

/// Blocks both for good on a thread of pageio's own, which spawns no process (the write-behind thread).
pub fn quietThread() void {
    if (!enabled) return;
    _ = linux.sigprocmask(linux.SIG.BLOCK, &quiet_set, null);
}

/// Takes back the signal that a write which failed with `err` left pending on this thread (blocked, it waits
/// there, and a later unblock would deliver it). A system call only after an EPIPE or EFBIG.
pub fn settleSignal(err: anyerror) void {
    if (!enabled) return;
    const sig: u6 = if (err == error.PIPE) linux.SIG.PIPE else if (err == error.FBIG) linux.SIG.XFSZ else return;
    const set = signalSet(&.{sig});
    const now: linux.timespec = .{ .sec = 0, .nsec = 0 };
    _ = linux.syscall4(.rt_sigtimedwait, @intFromPtr(&set), 0, @intFromPtr(&now), linux.NSIG / 8);
}

const quiet_set = if (enabled) signalSet(&.{ linux.SIG.PIPE, linux.SIG.XFSZ }) else {};

fn signalSet(signals: []const u6) linux.sigset_t {
    var set = linux.empty_sigset;
    for (signals) |sig| linux.sigaddset(&set, sig);
    return set;
}

// By address (SIG_DFL 0, SIG_IGN 1): a function pointer constant of 1 is no valid pointer to the compiler.
const setDisposition = @extern(*const fn (c_int, usize) callconv(.c) usize, .{ .name = "signal" });

test "quietWrites: EPIPE and EFBIG where SIGPIPE and SIGXFSZ had their default action, which exec puts back" {
    if (!enabled) return;
    const saved_pipe = setDisposition(linux.SIG.PIPE, 0);
    defer _ = setDisposition(linux.SIG.PIPE, saved_pipe);
    const saved_xfsz = setDisposition(linux.SIG.XFSZ, 0);
    defer _ = setDisposition(linux.SIG.XFSZ, saved_xfsz);
    writes_quiet.store(false, .release);
    quietWrites();

    const fds = try std.posix.pipe();
    std.posix.close(fds[0]);
    defer std.posix.close(fds[1]);
    try std.testing.expectError(error.BrokenPipe, std.posix.write(fds[1], "x"));

    var tmp = std.testing.tmpDir(.{});
    defer tmp.cleanup();
    const out = try tmp.dir.createFile("limited", .{});
    defer out.close();
    const saved_limit = try std.posix.getrlimit(.FSIZE);
    try std.posix.setrlimit(.FSIZE, .{ .cur = 4096, .max = saved_limit.max });
    defer std.posix.setrlimit(.FSIZE, saved_limit) catch {};
    try std.testing.expectError(error.FileTooBig, std.posix.pwrite(out.handle, "x", 8192));

    for ([_]u6{ linux.SIG.PIPE, linux.SIG.XFSZ }) |sig| { // caught, not ignored: children get the default back
        var now: linux.Sigaction = undefined;
        _ = linux.sigaction(sig, null, &now);
        try std.testing.expect(now.handler.handler == ignore);
    }
}

const F_DUPFD_CLOEXEC = 1030;

/// Files the guard keeps a descriptor on, one per file however many mappings it has (PageReader windows).
/// Limit: as many as there can be regions.
const Watched = struct { dev: u64, ino: u64, fd: i32, refs: u32 };
var watched: [regions.region_count_max]Watched = undefined;
var watched_count: usize = 0;
var watched_mutex: std.Thread.Mutex = .{};

/// A descriptor of the guard's own on `fd`'s file, for the handler's fstat (the caller may close theirs at
/// once), shared by every mapping of that file; -1 where there is no guard. Give it back with `unwatch`.
pub fn watch(fd: i32, st: files.Status) Errno!i32 {
    if (!enabled) return -1;
    watched_mutex.lock();
    defer watched_mutex.unlock();
    for (watched[0..watched_count]) |*w| {
        if (w.dev == st.dev and w.ino == st.ino) {
            w.refs += 1;
            return w.fd;
        }
    }
    const rc = linux.fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (linux.E.init(rc) != .SUCCESS) return errno.fromE(linux.E.init(rc));
    std.debug.assert(watched_count < watched.len); // one per region at most
    watched[watched_count] = .{ .dev = st.dev, .ino = st.ino, .fd = @intCast(rc), .refs = 1 };
    watched_count += 1;
    return @intCast(rc);
}

/// Gives back a descriptor from `watch`; the last mapping of its file closes it.
pub fn unwatch(fd: i32) void {
    if (fd < 0) return;
    watched_mutex.lock();
    defer watched_mutex.unlock();
    for (watched[0..watched_count], 0..) |*w, i| {
        if (w.fd != fd) continue;
        w.refs -= 1;
        if (w.refs > 0) return;
        _ = linux.close(fd);
        watched_count -= 1;
        watched[i] = watched[watched_count];
        return;
    }
    unreachable; // every descriptor given back was handed out
}

fn handleBus(signal: i32, info: *const linux.siginfo_t, context: ?*anyopaque) callconv(.C) void {
    // si_code > 0: the kernel raised it for a memory access (BUS_ADRERR…); kill() and tkill() carry no address.
    const address = @intFromPtr(info.fields.sigfault.addr);
    if (info.code > 0) {
        if (regions.fileRegionHolding(address)) |region| {
            if (absorb(region, address)) {
                _ = fault_count.fetchAdd(1, .monotonic);
                return; // the access runs again, on a zero page
            }
        }
    }
    chain(&previous_bus, signal, info, context);
}

/// For a system call that failed with EFAULT on `address` (the kernel could not bring in a page of memory
/// it was to read or fill): when that is a page a file mapping lost, does what the handler does for an access
/// from JS (records why, maps zeros from there on) and returns the errno that says why (ENODATA for a
/// truncated file); null when `address` is no file mapping's, and EFAULT stands.
pub fn explainFault(address: usize) ?Errno {
    if (!enabled) return null;
    const region = regions.fileRegionHolding(address) orelse return null;
    if (!absorb(region, address)) return null;
    return regions.faultAt(region.index).errno();
}

/// Records why the page at `address` is lost and maps zeros from there to the region's end.
/// Raw system calls only: nothing here may take a lock or allocate.
fn absorb(region: regions.FileRegion, address: usize) bool {
    const page = std.mem.alignBackward(usize, address, page_size_bytes);
    const end = std.mem.alignForward(usize, region.base + region.len, page_size_bytes);
    const lost = classify(region, page);
    const rc = linux.mmap(
        @ptrFromInt(lost.from),
        end - lost.from,
        linux.PROT.READ | linux.PROT.WRITE,
        .{ .TYPE = .PRIVATE, .ANONYMOUS = true, .FIXED = true, .NORESERVE = true },
        -1,
        0,
    );
    if (linux.E.init(rc) != .SUCCESS) return false;
    regions.recordFault(region.index, lost.fault);
    return true;
}

/// Why `page` of `region` faulted, and the first address whose bytes are gone with it: for a truncation,
/// everything past the page holding the file's new end; otherwise the faulting page on.
fn classify(region: regions.FileRegion, page: usize) struct { fault: regions.Fault, from: usize } {
    const page_offset = region.file_offset + (page - region.base); // the file offset of the faulting page
    var st: linux.Stat = undefined;
    if (linux.E.init(linux.fstat(region.fd, &st)) != .SUCCESS) return .{ .fault = .io, .from = page };
    const size: u64 = @intCast(@max(st.size, 0));
    if (size <= page_offset) {
        const kept = if (size > region.file_offset) std.mem.alignForward(u64, size - region.file_offset, page_size_bytes) else 0;
        return .{ .fault = .truncated, .from = region.base + @min(kept, page - region.base) };
    }
    return .{ .fault = if (fileSystemFull(region.fd)) .no_space else .io, .from = page };
}

/// struct statfs of 64-bit Linux: every field a word but f_fsid.
const StatFs = extern struct {
    type: i64,
    bsize: i64,
    blocks: u64,
    bfree: u64,
    bavail: u64,
    files: u64,
    ffree: u64,
    fsid: [2]i32,
    namelen: i64,
    frsize: i64,
    flags: i64,
    spare: [4]i64,
};
comptime {
    std.debug.assert(@sizeOf(StatFs) == 120); // what the kernel writes (fstatfs on x86-64 and arm64)
}

/// Whether `fd`'s filesystem has no block left for this process: a page the kernel could not allocate there
/// is ENOSPC, not an I/O error.
fn fileSystemFull(fd: i32) bool {
    if (@sizeOf(usize) != 8) return false;
    var fs: StatFs = undefined;
    const rc = linux.syscall2(.fstatfs, @bitCast(@as(isize, fd)), @intFromPtr(&fs));
    if (linux.E.init(rc) != .SUCCESS) return false;
    return fs.blocks != 0 and (fs.bavail == 0 or fs.bfree == 0);
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

/// Memory areas (VMAs) of this process that overlap [base, base + len), from /proc/self/maps (tests only).
pub fn vmasOverlapping(base: usize, len: usize) !usize {
    var buffer: [1 << 20]u8 = undefined;
    const maps = try std.fs.cwd().readFile("/proc/self/maps", &buffer);
    var count: usize = 0;
    var lines = std.mem.splitScalar(u8, maps, '\n');
    while (lines.next()) |line| {
        const dash = std.mem.indexOfScalar(u8, line, '-') orelse continue;
        const space = std.mem.indexOfScalar(u8, line, ' ') orelse continue;
        const start = try std.fmt.parseInt(usize, line[0..dash], 16);
        const stop = try std.fmt.parseInt(usize, line[dash + 1 .. space], 16);
        if (start < base + len and stop > base) count += 1;
    }
    return count;
}

test "a truncated file's pages read as zeros, its tail is one replacement, and the region records why" {
    if (!enabled) return error.SkipZigTest;
    const mapping = @import("mapping.zig");
    var tmp = std.testing.tmpDir(.{});
    defer tmp.cleanup();
    const page = mapping.pageSize();
    const pages = 64;
    const file = try tmp.dir.createFile("cut", .{ .read = true });
    defer file.close();
    try file.setEndPos(pages * page);
    const marks = [_]u8{ 0xAB, 0xAB };
    _ = try file.pwriteAll(&marks, 0);
    _ = try file.pwriteAll(&marks, 2 * page + 5);
    const m = try mapping.mapFile(file.handle, 0, pages * page, .{});
    defer mapping.unmap(m.region) catch unreachable;
    const bytes: [*]volatile u8 = @ptrFromInt(m.address);
    try std.testing.expectEqual(@as(u8, 0xAB), bytes[0]);
    try std.testing.expectEqual(@as(u8, 0xAB), bytes[2 * page + 5]);
    try file.setEndPos(page + 1); // another descriptor cuts the file into its second page
    const before = fault_count.load(.monotonic);
    var page_index: usize = 2;
    while (page_index < pages) : (page_index += 2) { // every other page: SIGBUS each without the guard
        try std.testing.expectEqual(@as(u8, 0), bytes[page_index * page + 5]);
    }
    try std.testing.expectEqual(@as(u8, 0xAB), bytes[1]);
    try std.testing.expectEqual(@as(u8, 0), bytes[page + 7]); // the page holding the new end is the file's
    try std.testing.expectEqual(before + 1, fault_count.load(.monotonic)); // one fault took the whole tail
    try std.testing.expectEqual(regions.Fault.truncated, (try regions.lookup(m.region)).fault);
    try std.testing.expectEqual(@as(usize, 2), try vmasOverlapping(m.address, pages * page));
}

test "a fault that is not a truncation is told apart: the file still has the page" {
    if (!enabled) return error.SkipZigTest;
    const mapping = @import("mapping.zig");
    var tmp = std.testing.tmpDir(.{});
    defer tmp.cleanup();
    const page = mapping.pageSize();
    const file = try tmp.dir.createFile("whole", .{ .read = true });
    defer file.close();
    try file.setEndPos(4 * page);
    const m = try mapping.mapFile(file.handle, 0, 4 * page, .{});
    defer mapping.unmap(m.region) catch unreachable;
    const found = regions.fileRegionHolding(m.address + 2 * page).?;
    const lost = classify(found, m.address + 2 * page);
    try std.testing.expect(lost.fault != .truncated);
    try std.testing.expectEqual(m.address + 2 * page, lost.from);
    try file.setEndPos(page / 2);
    const cut = classify(found, m.address + 2 * page);
    try std.testing.expectEqual(regions.Fault.truncated, cut.fault);
    try std.testing.expectEqual(m.address + page, cut.from); // the page holding the new end stays
}

test "a writev from a file mapping's lost page is the cause (ENODATA), not EFAULT" {
    if (!enabled) return error.SkipZigTest;
    const mapping = @import("mapping.zig");
    const gather = @import("gather.zig");
    var tmp = std.testing.tmpDir(.{});
    defer tmp.cleanup();
    const page = mapping.pageSize();
    const file = try tmp.dir.createFile("cut", .{ .read = true });
    defer file.close();
    try file.setEndPos(8 * page);
    const m = try mapping.mapFile(file.handle, 0, 8 * page, .{});
    defer mapping.unmap(m.region) catch unreachable;
    const out = try tmp.dir.createFile("out", .{ .read = true });
    defer out.close();
    try file.setEndPos(page); // cut under the mapping; nothing in this process touched the lost pages
    const list = [_]gather.Descriptor{.{ .region = m.region, .offset_low = @intCast(2 * page), .offset_high = 0, .length = @intCast(page) }};
    var done: u64 = 0;
    try std.testing.expectError(error.NODATA, gather.transfer(.write, out.handle, &list, &.{}, 0, &done));
    try std.testing.expectEqual(@as(u64, 0), done);
    try std.testing.expectEqual(regions.Fault.truncated, (try regions.lookup(m.region)).fault);
    // A memory that is no file mapping's keeps its EFAULT (here: nothing there).
    try std.testing.expectEqual(@as(?Errno, null), explainFault(8));
}

test "mappings of one file share one watched descriptor, closed with the last" {
    if (!enabled) return error.SkipZigTest;
    var tmp = std.testing.tmpDir(.{});
    defer tmp.cleanup();
    const a = try tmp.dir.createFile("a", .{ .read = true });
    defer a.close();
    const b = try tmp.dir.createFile("b", .{ .read = true });
    defer b.close();
    const again = try tmp.dir.openFile("a", .{});
    defer again.close();
    const first = try watch(a.handle, try files.status(a.handle));
    try std.testing.expectEqual(first, try watch(again.handle, try files.status(again.handle))); // another descriptor, the same file
    const other = try watch(b.handle, try files.status(b.handle));
    try std.testing.expect(other != first);
    unwatch(first);
    try std.testing.expect(linux.E.init(linux.fcntl(first, linux.F.GETFD, 0)) == .SUCCESS); // still held
    unwatch(first);
    try std.testing.expect(linux.E.init(linux.fcntl(first, linux.F.GETFD, 0)) == .BADF);
    unwatch(other);
}
