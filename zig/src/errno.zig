//! One error set for the whole library, generated from the platform's errno
//! list: internal code returns `error.NOENT`, `error.INVAL`…, and only the C ABI
//! (root.zig) turns it into a negative number.
const std = @import("std");

pub const E = std.posix.E;

pub const Errno = blk: {
    const fields = @typeInfo(E).@"enum".fields;
    var errors: [fields.len - 1]std.builtin.Type.Error = undefined;
    var count: usize = 0;
    for (fields) |field| {
        if (std.mem.eql(u8, field.name, "SUCCESS")) continue;
        errors[count] = .{ .name = field.name };
        count += 1;
    }
    break :blk @Type(.{ .error_set = &errors });
};

/// The error for an errno value the OS reported.
pub fn fromE(e: E) Errno {
    std.debug.assert(e != .SUCCESS);
    inline for (@typeInfo(E).@"enum".fields) |field| {
        if (comptime std.mem.eql(u8, field.name, "SUCCESS")) continue;
        if (@intFromEnum(e) == field.value) return @field(Errno, field.name);
    }
    return error.IO; // an errno this std does not name: still an error, never success
}

/// errno of the libc call that just failed (read it before any other call).
pub fn last() Errno {
    return fromE(@enumFromInt(std.c._errno().*));
}

pub fn toE(err: Errno) E {
    return switch (err) {
        inline else => |e| @field(E, @errorName(e)),
    };
}

/// The result type of every export: >= 0 is the value, < 0 is -errno. A double
/// holds every integer below 2^53 exactly and is a plain number on both runtimes
/// (a 64-bit integer result may come back as a BigInt).
pub const Result = f64;

pub fn result(value: anyerror!u64) Result {
    const v = value catch |err| return -@as(f64, @floatFromInt(@intFromEnum(toE(@errorCast(err)))));
    std.debug.assert(v <= max_exact);
    return @floatFromInt(v);
}

/// The largest integer a double (and so a JS number) holds exactly: 2^53 - 1.
pub const max_exact: u64 = (1 << 53) - 1;

/// A size, offset or count that JS passed as a double: a whole number in
/// [0, 2^53), or EINVAL. NaN, negatives, fractions and infinities all fail.
pub fn wholeNumber(x: f64) Errno!u64 {
    if (!(x >= 0) or x > @as(f64, @floatFromInt(max_exact)) or @floor(x) != x) return error.INVAL;
    return @intFromFloat(x);
}

test "errno round trip keeps the name" {
    const err = fromE(.NOENT);
    try std.testing.expectEqual(E.NOENT, toE(err));
    try std.testing.expectEqualStrings("NOENT", @errorName(err));
}

test "result encodes errors as negative errno" {
    try std.testing.expectEqual(@as(f64, 7), result(7));
    try std.testing.expectEqual(-@as(f64, @floatFromInt(@intFromEnum(E.BADF))), result(error.BADF));
}

test "wholeNumber refuses what is not a whole number in range" {
    try std.testing.expectEqual(@as(u64, 4096), try wholeNumber(4096));
    try std.testing.expectError(error.INVAL, wholeNumber(-1));
    try std.testing.expectError(error.INVAL, wholeNumber(std.math.nan(f64)));
    try std.testing.expectError(error.INVAL, wholeNumber(1.5));
    try std.testing.expectError(error.INVAL, wholeNumber(std.math.inf(f64)));
    try std.testing.expectError(error.INVAL, wholeNumber(9007199254740993.0));
}
