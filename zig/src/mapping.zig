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
    var flags: std.c.MAP = .{ .TYPE = if (options.write and !options.private) .SHARED else .PRIVATE };
    if (@hasField(std.c.MAP, "POPULATE")) flags.POPULATE = options.populate;
    guard.install(pageSize());
    if (options.write) return mapAndRegister(len, true, flags, fd, @intCast(offset), options.populate, .file);
    // JS cannot make a view read-only, so `bytes[i] = x` on a PROT_READ page would be SIGSEGV. Where the
    // guard copies such a page privately, map read-only and shared (the page cache, faulted in fast);
    // elsewhere map copy-on-write (slower to fault in: the kernel maps private pages one at a time).
    if (guard.guards_read_only_writes) {
        flags.TYPE = .SHARED;
        return mapAndRegister(len, false, flags, fd, @intCast(offset), options.populate, .file_read_only);
    }
    return mapAndRegister(len, true, flags, fd, @intCast(offset), false, .file);
}

pub fn mapAnonymous(len: u64, shared: bool) Errno!Mapped {
    if (len == 0) return error.INVAL;
    const flags: std.c.MAP = .{ .TYPE = if (shared) .SHARED else .PRIVATE, .ANONYMOUS = true };
    return mapAndRegister(len, true, flags, -1, 0, false, if (shared) .anonymous_shared else .anonymous);
}

/// Gives `[offset, offset + len)` of a private anonymous region fresh zeroed pages at the same addresses
/// (MAP_FIXED). Whoever still holds the old pages (a pipe they were vmspliced into) keeps them, unchanged.
pub fn replacePages(region: regions.Id, offset: u64, len: u64) Errno!void {
    const r = try regions.lookup(region);
    if (r.kind != .anonymous) return error.INVAL;
    if (len == 0 or offset % pageSize() != 0 or len % pageSize() != 0) return error.INVAL;
    if (offset > r.len or len > r.len - offset) return error.INVAL;
    const flags: std.c.MAP = .{ .TYPE = .PRIVATE, .ANONYMOUS = true, .FIXED = true };
    const memory = std.c.mmap(@ptrFromInt(r.base + offset), @intCast(len), std.c.PROT.READ | std.c.PROT.WRITE, flags, -1, 0);
    if (@intFromPtr(memory) == std.math.maxInt(usize)) return errno.last();
}

fn mapAndRegister(len: u64, writable: bool, flags: std.c.MAP, fd: i32, offset: i64, populate: bool, kind: regions.Kind) Errno!Mapped {
    const prot: c_uint = if (writable) std.c.PROT.READ | std.c.PROT.WRITE else std.c.PROT.READ;
    const memory = std.c.mmap(null, @intCast(len), prot, flags, fd, offset);
    if (@intFromPtr(memory) == std.math.maxInt(usize)) return errno.last();
    const address = @intFromPtr(memory);
    // Where MAP_POPULATE does not exist, ask for read-ahead instead.
    if (populate and !@hasField(std.c.MAP, "POPULATE")) _ = std.c.madvise(@alignCast(memory), @intCast(len), madv.willneed);
    const region = regions.register(address, @intCast(len), kind) catch |err| {
        // The table is full: nothing may stay mapped behind the error.
        _ = std.c.munmap(@alignCast(memory), @intCast(len));
        return err;
    };
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
    try regions.markViewedUntracked(region);
    finish(try regions.release(region, .owner_unrevoked));
}

/// Acts on what a released reference decided. Retired file memory becomes zeroed anonymous pages in place:
/// its slot is gone, so a truncation of the file would no longer be guarded (and the file is let go).
pub fn finish(released: regions.Released) void {
    switch (released) {
        .held => {},
        .unmap => |r| {
            const rc = std.c.munmap(@ptrFromInt(r.base), r.len);
            std.debug.assert(rc == 0); // a registered region is always a whole mapping
        },
        .retire => |r| if (r.kind == .file or r.kind == .file_read_only) {
            const flags: std.c.MAP = .{ .TYPE = .PRIVATE, .ANONYMOUS = true, .FIXED = true };
            // Cannot fail for a range that is mapped whole; if it did, the file mapping simply stays.
            _ = std.c.mmap(@ptrFromInt(r.base), r.len, std.c.PROT.READ | std.c.PROT.WRITE, flags, -1, 0);
        },
    }
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
