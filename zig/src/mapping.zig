//! Memory mappings: files and anonymous memory, registered in the region table
//! so JS can name them by id and view them by address.
const std = @import("std");
const builtin = @import("builtin");
const errno = @import("errno.zig");
const Errno = errno.Errno;
const regions = @import("regions.zig");
const file = @import("file.zig");
const guard = @import("guard.zig");

extern "c" fn getpagesize() c_int;

/// madvise values: the same numbers on Linux and Darwin (this std names them for Linux only).
const madv = struct {
    const normal = 0;
    const random = 1;
    const sequential = 2;
    const willneed = 3;
    const dontneed = 4;
    /// Linux 5.14: fault the pages in for reading (no copy-on-write copies, unlike MAP_POPULATE on a
    /// private writable mapping).
    const populate_read = 22;
};

/// The OS page size at run time (16 KiB on Apple silicon, 4 KiB on x86-64).
pub fn pageSize() usize {
    return @intCast(getpagesize());
}

pub const Mapped = struct { region: regions.Id, address: usize };

pub const Options = packed struct(u32) {
    write: bool = false,
    private: bool = false,
    populate: bool = false,
    _: u29 = 0,
};

pub fn mapFile(fd: i32, offset: u64, len: u64, options: Options) Errno!Mapped {
    // Only regular files, and only bytes the file has: a page past its end
    // would raise SIGBUS on first touch instead of an error here.
    const st = try file.status(fd);
    if (st.kind == .directory) return error.ISDIR;
    if (st.kind != .file) return error.NODEV;
    if (len == 0 or offset % pageSize() != 0) return error.INVAL;
    if (offset > st.size or len > st.size - offset) return error.NXIO;
    if (offset > std.math.maxInt(i64) or len > std.math.maxInt(usize)) return error.OVERFLOW;
    // JS cannot make a view read-only, so every mapping is writable: without `write` it is private, and a
    // write to `bytes` gets the kernel's copy-on-write (reads still share the page cache). NORESERVE: only
    // the pages JS writes take memory, so a file larger than RAM still maps under the default overcommit.
    const shared = options.write and !options.private;
    var flags: std.c.MAP = .{ .TYPE = if (shared) .SHARED else .PRIVATE };
    if (@hasField(std.c.MAP, "NORESERVE")) flags.NORESERVE = !shared;
    // MAP_POPULATE on a private writable mapping would copy every page; those are populated for reading below.
    const populate_now = options.populate and shared and @hasField(std.c.MAP, "POPULATE");
    if (populate_now) flags.POPULATE = true;
    guard.install(pageSize());
    const own_fd = try guard.watch(fd, st);
    errdefer guard.unwatch(own_fd);
    const memory = std.c.mmap(null, @intCast(len), std.c.PROT.READ | std.c.PROT.WRITE, flags, fd, @intCast(offset));
    if (@intFromPtr(memory) == std.math.maxInt(usize)) return errno.last();
    errdefer _ = std.c.munmap(@alignCast(memory), @intCast(len));
    if (options.populate and !populate_now) populate(@intFromPtr(memory), len);
    const region = try regions.registerFile(@intFromPtr(memory), @intCast(len), own_fd, offset);
    return checked(region, @intFromPtr(memory));
}

/// Faults `[address, address + len)` in for reading, or asks for read-ahead where that is not possible.
/// A hint: a failure (the file shrank meanwhile) shows at the first touch, as without it.
fn populate(address: usize, len: u64) void {
    if (builtin.os.tag == .linux and std.c.madvise(@ptrFromInt(address), @intCast(len), madv.populate_read) == 0) return;
    _ = std.c.madvise(@ptrFromInt(address), @intCast(len), madv.willneed); // before Linux 5.14, and elsewhere
}

pub fn mapAnonymous(len: u64, shared: bool) Errno!Mapped {
    if (len == 0) return error.INVAL;
    const flags: std.c.MAP = .{ .TYPE = if (shared) .SHARED else .PRIVATE, .ANONYMOUS = true };
    return mapAndRegister(len, flags, if (shared) .anonymous_shared else .anonymous);
}

/// Gives `[offset, offset + len)` of a private anonymous region fresh zeroed pages at the same addresses
/// (MAP_FIXED). Whoever still holds the old pages (a pipe they were vmspliced into) keeps them, unchanged.
pub fn replacePages(region: regions.Id, offset: u64, len: u64) Errno!void {
    const r = try regions.lookup(region);
    if (r.kind != .anonymous) return error.INVAL;
    if (len == 0 or offset % pageSize() != 0 or len % pageSize() != 0) return error.INVAL;
    if (offset > r.len or len > r.len - offset) return error.INVAL;
    // Populated now: the page is about to be written again, and one call faulting the run in costs less than a
    // fault per page (a lent 64 KiB page: 16). Where MAP_POPULATE does not exist the pages fault in on use.
    var flags: std.c.MAP = .{ .TYPE = .PRIVATE, .ANONYMOUS = true, .FIXED = true };
    if (@hasField(std.c.MAP, "POPULATE")) flags.POPULATE = true;
    const memory = std.c.mmap(@ptrFromInt(r.base + offset), @intCast(len), std.c.PROT.READ | std.c.PROT.WRITE, flags, -1, 0);
    if (@intFromPtr(memory) == std.math.maxInt(usize)) return errno.last();
}

fn mapAndRegister(len: u64, flags: std.c.MAP, kind: regions.Kind) Errno!Mapped {
    const memory = std.c.mmap(null, @intCast(len), std.c.PROT.READ | std.c.PROT.WRITE, flags, -1, 0);
    if (@intFromPtr(memory) == std.math.maxInt(usize)) return errno.last();
    const region = regions.register(@intFromPtr(memory), @intCast(len), kind) catch |err| {
        _ = std.c.munmap(@alignCast(memory), @intCast(len));
        return err;
    };
    return checked(region, @intFromPtr(memory));
}

fn checked(region: regions.Id, address: usize) Mapped {
    std.debug.assert(address <= errno.max_exact); // addresses cross to JS as doubles
    return .{ .region = region, .address = address };
}

/// The JS owner lets go of `region`: its id is dead at once; the memory is unmapped when no view holds it.
pub fn unmap(region: regions.Id) Errno!void {
    finish(try regions.release(region, .owner));
}

/// A view whose release the runtime reported (Bun's ArrayBuffer deallocator) let go of `region`.
pub fn releaseView(region: regions.Id) Errno!void {
    finish(try regions.release(region, .view));
}

/// The JS owner lets go of `region` although a view it can neither revoke nor track may still reach it (an
/// ArrayBuffer transferred away, on a runtime that reports no release): the memory stays mapped for good.
pub fn retire(region: regions.Id) Errno!void {
    try regions.markEscaped(region);
    finish(try regions.release(region, .owner));
}

/// Acts on what a released reference decided. Retired file memory becomes zeroed anonymous pages in place:
/// its slot is gone, so a truncation of the file would no longer be guarded (and the file is let go).
pub fn finish(released: regions.Released) void {
    switch (released) {
        .held => {},
        .unmap => |r| {
            const rc = std.c.munmap(@ptrFromInt(r.base), r.len);
            std.debug.assert(rc == 0); // a registered region is always a whole mapping
            guard.unwatch(r.fd); // after the munmap: the handler may fstat it until then
        },
        .retire => |r| if (r.kind == .file) {
            const flags: std.c.MAP = .{ .TYPE = .PRIVATE, .ANONYMOUS = true, .FIXED = true };
            // Cannot fail for a range that is mapped whole; if it did, the file mapping simply stays.
            _ = std.c.mmap(@ptrFromInt(r.base), r.len, std.c.PROT.READ | std.c.PROT.WRITE, flags, -1, 0);
            guard.unwatch(r.fd);
        },
    }
}

/// Cuts [offset, offset + len) of `region` (whole pages) loose from what it maps: the range becomes private
/// anonymous memory holding a copy of its bytes, at the same address. A view of it that escaped (transferred
/// away) keeps what it saw, and no longer sees the file (a ring slot the peer writes next). Linux swaps the copy
/// in at once (mremap); elsewhere the range reads as zeros until the copy is back.
pub fn privatize(region: regions.Id, offset: u64, len: u64) Errno!void {
    const r = try regions.lookup(region);
    const page = pageSize();
    if (offset % page != 0 or len % page != 0 or len == 0) return error.INVAL;
    if (offset > r.len or len > r.len - offset) return error.FAULT;
    const at: [*]u8 = @ptrFromInt(r.base + offset);
    const flags: std.c.MAP = .{ .TYPE = .PRIVATE, .ANONYMOUS = true };
    const rw = std.c.PROT.READ | std.c.PROT.WRITE;
    const copy = std.c.mmap(null, len, rw, flags, -1, 0);
    if (copy == std.c.MAP_FAILED) return errno.last();
    const bytes: [*]u8 = @ptrCast(copy);
    @memcpy(bytes[0..len], at[0..len]);
    if (builtin.os.tag == .linux) {
        const linux = std.os.linux;
        const moved = linux.syscall5(.mremap, @intFromPtr(copy), len, len, mremap_maymove | mremap_fixed, @intFromPtr(at));
        if (linux.E.init(moved) != .SUCCESS) {
            _ = std.c.munmap(@alignCast(copy), len);
            return errno.fromE(linux.E.init(moved));
        }
        return;
    }
    defer _ = std.c.munmap(@alignCast(copy), len);
    const fixed: std.c.MAP = .{ .TYPE = .PRIVATE, .ANONYMOUS = true, .FIXED = true };
    if (std.c.mmap(@ptrCast(@alignCast(at)), len, rw, fixed, -1, 0) == std.c.MAP_FAILED) return errno.last();
    @memcpy(at[0..len], bytes[0..len]);
}

const mremap_maymove = 1; // MREMAP_MAYMOVE, as Linux numbers it on every architecture
const mremap_fixed = 2; // MREMAP_FIXED

test "a privatized range keeps its bytes and no longer sees the file" {
    var tmp = std.testing.tmpDir(.{});
    defer tmp.cleanup();
    const f = try tmp.dir.createFile("ring", .{ .read = true });
    defer f.close();
    const page = pageSize();
    try f.setEndPos(2 * page);
    const m = try mapFile(f.handle, 0, 2 * page, .{ .write = true });
    defer unmap(m.region) catch {};
    const bytes: [*]u8 = @ptrFromInt(m.address);
    bytes[0] = 'a';
    bytes[page] = 'b';
    try std.testing.expectError(error.INVAL, privatize(m.region, 1, page));
    try std.testing.expectError(error.FAULT, privatize(m.region, page, 2 * page));
    try privatize(m.region, 0, page);
    try std.testing.expectEqual(@as(u8, 'a'), bytes[0]); // its copy
    const other = try mapFile(f.handle, 0, 2 * page, .{ .write = true });
    defer unmap(other.region) catch {};
    const fresh: [*]u8 = @ptrFromInt(other.address);
    fresh[0] = 'x'; // the file's page, written by another mapping of it
    fresh[page] = 'y';
    try std.testing.expectEqual(@as(u8, 'a'), bytes[0]); // cut loose
    try std.testing.expectEqual(@as(u8, 'y'), bytes[page]); // the rest still the file's
}

/// The madvise names of `Mapping.advise`, in the TypeScript order.
pub const Advice = enum(u32) { normal, sequential, random, willneed, dontneed };

pub fn advise(region: regions.Id, offset: u64, len: u64, advice: Advice) Errno!void {
    const range = try pageRange(region, offset, len);
    const value: u32 = switch (advice) {
        .normal => madv.normal,
        .sequential => madv.sequential,
        .random => madv.random,
        .willneed => madv.willneed,
        .dontneed => madv.dontneed,
    };
    if (range.len == 0) return;
    if (std.c.madvise(@ptrFromInt(range.base), range.len, value) != 0) return errno.last();
}

pub fn sync(region: regions.Id, offset: u64, len: u64) Errno!void {
    const range = try pageRange(region, offset, len);
    if (range.len == 0) return;
    if (std.c.msync(@ptrFromInt(range.base), range.len, std.c.MSF.SYNC) != 0) return errno.last();
}

/// Whether any page over [offset, offset + len) of a region is not the file's own page: a private copy made
/// by a write into a file mapping (or any page of anonymous memory). A kernel move of such a span would send
/// the file's bytes, not the ones its memory shows. Reads /proc/self/pagemap (present or swapped, and not a
/// file page); without it (no /proc) every span counts as changed, so its bytes go from memory.
pub fn changed(region: regions.Id, offset: u64, len: u64) Errno!bool {
    const range = try pageRange(region, offset, len);
    const r = try regions.lookup(region);
    if (r.kind != .file) return true;
    if (range.len == 0) return false;
    const page = pageSize();
    // Opened per call, not kept: a descriptor held for good would be one the caller never opened.
    const fd = std.posix.openZ("/proc/self/pagemap", .{ .CLOEXEC = true }, 0) catch return true;
    defer std.posix.close(fd);
    var vpn: u64 = range.base / page;
    const end: u64 = (range.base + range.len + page - 1) / page;
    var entries: [512]u64 = undefined;
    while (vpn < end) {
        const want: usize = @intCast(@min(end - vpn, entries.len));
        const bytes = std.mem.sliceAsBytes(entries[0..want]);
        const n = std.posix.pread(fd, bytes, vpn * 8) catch return true;
        if (n < 8) return true;
        for (entries[0 .. n / 8]) |entry| {
            const present_or_swapped = entry & (@as(u64, 3) << 62) != 0;
            const file_page = entry & (@as(u64, 1) << 61) != 0;
            if (present_or_swapped and !file_page) return true;
        }
        vpn += n / 8;
    }
    return false;
}

/// [offset, offset + len) of a region widened to whole pages, as madvise and
/// msync require; the region itself starts on a page.
fn pageRange(region: regions.Id, offset: u64, len: u64) Errno!regions.Region {
    const r = try regions.lookup(region);
    if (offset > r.len or len > r.len - offset) return error.FAULT;
    const start = std.mem.alignBackward(u64, offset, pageSize());
    return .{ .base = r.base + start, .len = offset + len - start };
}

test "anonymous mapping is registered, writable and unmapped" {
    const m = try mapAnonymous(3 * pageSize(), false);
    const bytes: [*]u8 = try regions.resolve(m.region, 0, 3 * pageSize());
    bytes[3 * pageSize() - 1] = 7;
    try advise(m.region, 1, 10, .willneed);
    try std.testing.expectError(error.FAULT, advise(m.region, 0, 3 * pageSize() + 1, .normal));
    try unmap(m.region);
    try std.testing.expectError(error.BADF, unmap(m.region));
}

test "mapping a file shows its bytes and refuses bad ranges" {
    var tmp = std.testing.tmpDir(.{});
    defer tmp.cleanup();
    try tmp.dir.writeFile(.{ .sub_path = "f", .data = "hello pages" });
    const handle = try tmp.dir.openFile("f", .{});
    defer handle.close();
    const st = try file.status(handle.handle);
    const m = try mapFile(handle.handle, 0, st.size, .{});
    defer unmap(m.region) catch unreachable;
    const bytes: [*]u8 = @ptrFromInt(m.address);
    try std.testing.expectEqualStrings("hello pages", bytes[0..11]);
    bytes[0] = 'j'; // a mapping without `write` is copy-on-write: no fault, and the file keeps its byte
    var file_byte: [1]u8 = undefined;
    _ = try std.posix.pread(handle.handle, &file_byte, 0);
    try std.testing.expectEqual(@as(u8, 'h'), file_byte[0]);
    try std.testing.expectError(error.INVAL, mapFile(handle.handle, 1, 4, .{}));
    try std.testing.expectError(error.INVAL, mapFile(handle.handle, 0, 0, .{}));
    try std.testing.expectError(error.BADF, mapFile(-1, 0, 4, .{}));
    try std.testing.expectError(error.NXIO, mapFile(handle.handle, 0, 12, .{}));
    var dir = try tmp.dir.openDir(".", .{});
    defer dir.close();
    try std.testing.expectError(error.ISDIR, mapFile(dir.fd, 0, 1, .{}));
}

test "a retired file region is zero pages, kept mapped and no longer the file's" {
    var tmp = std.testing.tmpDir(.{});
    defer tmp.cleanup();
    const page = pageSize();
    const f = try tmp.dir.createFile("retire", .{ .read = true });
    defer f.close();
    try f.setEndPos(page);
    _ = try f.pwriteAll("xyz", 0);
    const m = try mapFile(f.handle, 0, page, .{});
    const bytes: [*]volatile u8 = @ptrFromInt(m.address);
    try std.testing.expectEqual(@as(u8, 'x'), bytes[0]);
    try retire(m.region);
    try std.testing.expectEqual(@as(u8, 0), bytes[0]); // still mapped: no fault
    try f.setEndPos(0);
    try std.testing.expectEqual(@as(u8, 0), bytes[1]); // not the file's any more: no SIGBUS
    try std.testing.expectError(error.BADF, unmap(m.region));
    _ = std.c.munmap(@ptrFromInt(m.address), page); // the test's own cleanup
}

test "replacePages gives a private region fresh pages in place, and refuses anything else" {
    const page = pageSize();
    const m = try mapAnonymous(2 * page, false);
    defer unmap(m.region) catch {};
    const bytes: [*]u8 = @ptrFromInt(m.address);
    bytes[0] = 7;
    bytes[page] = 8;
    try replacePages(m.region, 0, page);
    try std.testing.expectEqual(@as(u8, 0), bytes[0]);
    try std.testing.expectEqual(@as(u8, 8), bytes[page]);
    try std.testing.expectError(error.INVAL, replacePages(m.region, 1, page));
    try std.testing.expectError(error.INVAL, replacePages(m.region, page, 2 * page));
    const s = try mapAnonymous(page, true);
    defer unmap(s.region) catch {};
    try std.testing.expectError(error.INVAL, replacePages(s.region, 0, page)); // shared memory is not ours to swap
}

test "writes into a mapping without write stay private, take no extra memory areas, and dontneed drops them" {
    var tmp = std.testing.tmpDir(.{});
    defer tmp.cleanup();
    const page = pageSize();
    const pages = 32;
    const handle = try tmp.dir.createFile("ro", .{ .read = true });
    defer handle.close();
    try handle.setEndPos(pages * page);
    _ = try handle.pwriteAll("abc", page);
    const m = try mapFile(handle.handle, 0, pages * page, .{ .populate = true });
    defer unmap(m.region) catch unreachable;
    const bytes: [*]volatile u8 = @ptrFromInt(m.address);
    var i: usize = 0;
    while (i < pages) : (i += 2) bytes[i * page + 1] = 'X'; // every other page: a private copy each
    try std.testing.expectEqual(@as(u8, 'X'), bytes[1]);
    try std.testing.expectEqual(@as(u8, 'a'), bytes[page]); // an untouched page is the file's
    var on_disk: [3]u8 = undefined;
    _ = try handle.preadAll(&on_disk, page);
    try std.testing.expectEqualStrings("abc", &on_disk);
    if (guard.enabled) try std.testing.expectEqual(@as(usize, 1), try guard.vmasOverlapping(m.address, pages * page));
    try advise(m.region, 0, pages * page, .dontneed); // drops the private copies: the file's bytes again
    try std.testing.expectEqual(@as(u8, 0), bytes[1]);
    bytes[page + 1] = 'Y';
    try advise(m.region, page, 1, .dontneed);
    try std.testing.expectEqual(@as(u8, 'b'), bytes[page + 1]);
}

test "changed tells a private copy in a file mapping from the file's own pages" {
    if (builtin.os.tag != .linux) return error.SkipZigTest;
    var tmp = std.testing.tmpDir(.{});
    defer tmp.cleanup();
    const page = pageSize();
    const handle = try tmp.dir.createFile("cow", .{ .read = true });
    defer handle.close();
    try handle.setEndPos(4 * page);
    const m = try mapFile(handle.handle, 0, 4 * page, .{});
    defer unmap(m.region) catch unreachable;
    const bytes: [*]volatile u8 = @ptrFromInt(m.address);
    _ = bytes[page]; // read: the file's page
    try std.testing.expect(!try changed(m.region, 0, 4 * page));
    bytes[2 * page + 7] = 'X'; // written: a private copy
    try std.testing.expect(!try changed(m.region, 0, 2 * page));
    try std.testing.expect(try changed(m.region, 2 * page + 100, 1));
    try std.testing.expect(try changed(m.region, 0, 4 * page));
    try std.testing.expectError(error.FAULT, changed(m.region, 4 * page, 1));
    const anon = try mapAnonymous(page, false);
    defer unmap(anon.region) catch unreachable;
    try std.testing.expect(try changed(anon.region, 0, page));
}
