//! The boundary table (ffi/abi.ts, generated into the `abi` module by build.zig) against the Zig
//! declarations it names: a value out of order, a flag on another bit, a reserved number changed or an errno
//! name the OS does not have is a compile error, in the library build and in the tests alike.
const std = @import("std");
const abi = @import("abi");

const modules = .{
    .file = @import("file.zig"),
    .mapping = @import("mapping.zig"),
    .ring = @import("ring.zig"),
    .kernel_move = @import("kernel_move.zig"),
    .channel = @import("channel.zig"),
    .gather = @import("gather.zig"),
    .behind = @import("behind.zig"),
    .poller = @import("poller.zig"),
    .socket = @import("socket.zig"),
};

/// `module.Decl` by name.
fn declared(comptime path: []const u8) type {
    const dot = std.mem.indexOfScalar(u8, path, '.') orelse @compileError("abi: '" ++ path ++ "' is not module.Decl");
    return @field(@field(modules, path[0..dot]), path[dot + 1 ..]);
}

fn constantValue(comptime path: []const u8) u64 {
    if (comptime std.mem.startsWith(u8, path, "@sizeOf(")) return @sizeOf(declared(path["@sizeOf(".len .. path.len - 1]));
    const dot = std.mem.indexOfScalar(u8, path, '.').?;
    return @field(@field(modules, path[0..dot]), path[dot + 1 ..]);
}

/// The Zig tag a TS value stands for: the table's `tags`, else the value with '-' as '_'.
fn tagOf(comptime e: abi.Enum, comptime i: usize) []const u8 {
    if (e.tags) |tags| return tags[i];
    var name: [e.values[i].len]u8 = e.values[i][0..].*;
    std.mem.replaceScalar(u8, &name, '-', '_');
    const final = name;
    return &final;
}

comptime {
    @setEvalBranchQuota(100_000);
    for (abi.enums) |e| {
        const fields = @typeInfo(declared(e.zig)).@"enum".fields;
        if (fields.len != e.values.len) {
            @compileError(std.fmt.comptimePrint("abi: {s} has {d} values in ffi/abi.ts, {s} has {d}", .{ e.ts, e.values.len, e.zig, fields.len }));
        }
        for (fields, 0..) |field, i| {
            if (field.value != i or !std.mem.eql(u8, field.name, tagOf(e, i))) {
                @compileError(std.fmt.comptimePrint("abi: {s}[{d}] is \"{s}\" in ffi/abi.ts, {s} has .{s} = {d} there", .{ e.ts, i, e.values[i], e.zig, field.name, field.value }));
            }
        }
    }
    for (abi.flags) |f| {
        const T = declared(f.zig);
        if (@bitSizeOf(T) != 32) @compileError("abi: " ++ f.zig ++ " must be a packed struct(u32)");
        var named = 0;
        for (@typeInfo(T).@"struct".fields) |field| {
            if (field.type == bool) named += 1;
        }
        if (named != f.bits.len) @compileError(std.fmt.comptimePrint("abi: {s} has {d} flags in ffi/abi.ts, {s} has {d}", .{ f.ts, f.bits.len, f.zig, named }));
        for (f.bits) |bit| {
            if (!@hasField(T, bit.name)) @compileError("abi: " ++ f.zig ++ " has no flag " ++ bit.name);
            if (@as(u64, 1) << @bitOffsetOf(T, bit.name) != bit.value) {
                @compileError(std.fmt.comptimePrint("abi: {s}.{s} is bit value {d} in ffi/abi.ts, bit {d} in {s}", .{ f.ts, bit.name, bit.value, @bitOffsetOf(T, bit.name), f.zig }));
            }
        }
    }
    for (abi.constants) |c| {
        if (constantValue(c.zig) != c.value) {
            @compileError(std.fmt.comptimePrint("abi: {s} is {d} in ffi/abi.ts, {s} is {d}", .{ c.ts, c.value, c.zig, constantValue(c.zig) }));
        }
    }
    for (abi.errnos) |name| {
        // Linux has no ENOTSUP of its own (it is EOPNOTSUPP); the TS side maps it.
        if (!@hasField(std.posix.E, name[1..]) and !std.mem.eql(u8, name, "ENOTSUP")) {
            @compileError("abi: errno " ++ name ++ " is not one this OS has");
        }
    }
}

test "the boundary table was checked against the Zig declarations" {
    try std.testing.expect(abi.enums.len > 0 and abi.flags.len > 0 and abi.constants.len > 0);
}
