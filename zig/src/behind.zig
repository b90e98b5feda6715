//! Write-behind: a gather write to a regular file done by one thread of the library's own, so the JS thread
//! goes on filling the next pages while the kernel copies these into the page cache (on two cores the two
//! halves of a log writer's time overlap). JS keeps the memory referenced until `wait` has returned.
const std = @import("std");
const errno = @import("errno.zig");
const Errno = errno.Errno;
const gather = @import("gather.zig");
const regions = @import("regions.zig");
const mapping = @import("mapping.zig");
const guard = @import("guard.zig");

/// Limit: jobs submitted and not yet waited for, in the whole process (a writer has at most one).
pub const job_count_max = 64;
/// Limit: iovecs a job holds (a writer's early flush is ~8 pool pages; more goes the synchronous way).
pub const job_iov_max = 64;

/// F_DUPFD_CLOEXEC: 1030 on Linux (missing from this std's table), 67 on macOS.
const dupfd_cloexec: c_int = if (@import("builtin").os.tag == .linux) 1030 else std.c.F.DUPFD_CLOEXEC;

const State = enum(u8) { free, queued, done };

const Job = struct {
    state: State = .free,
    /// Bumped at each submit: an id from an earlier job of this slot is refused (BADF).
    generation: u16 = 0,
    /// A duplicate of the caller's descriptor, closed by the thread once written: the caller's number may be
    /// closed and reused meanwhile without the bytes going elsewhere.
    fd: i32 = -1,
    iov: [job_iov_max]std.posix.iovec_const = undefined,
    count: usize = 0,
    /// The regions its iovecs point into, each holding a reference until written: a Worker that ends (its
    /// regions let go by their owner at once) or an owner's unmap must not unmap memory the thread still reads.
    held: [job_iov_max]regions.Id = undefined,
    held_count: usize = 0,
    done_bytes: u64 = 0,
    failure: ?Errno = null,
};

var mutex: std.Thread.Mutex = .{};
var queued: std.Thread.Condition = .{};
var finished: std.Thread.Condition = .{};
var jobs: [job_count_max]Job = [_]Job{.{}} ** job_count_max;
/// Slots in submission order, `queue[head .. head + queue_len)` modulo job_count_max.
var queue: [job_count_max]u8 = undefined;
var queue_head: usize = 0;
var queue_len: usize = 0;
var thread_started = false;

/// Queues a gather write of `descriptors` (pool or mapping regions only: staged and by-address bytes live
/// only for one synchronous call) to `fd`'s current position. Returns the job's id for `wait`. AGAIN when
/// every slot is taken or no thread can be had (the caller writes synchronously instead).
pub fn submit(fd: i32, descriptors: []const gather.Descriptor) Errno!u32 {
    if (descriptors.len == 0 or descriptors.len > job_iov_max) return error.INVAL;
    var iov: [job_iov_max]std.posix.iovec_const = undefined;
    var count: usize = 0;
    var resolver: regions.Resolver = .{};
    var held: [job_iov_max]regions.Id = undefined;
    var held_count: usize = 0;
    for (descriptors) |d| {
        if (d.region == gather.staging_region or d.region == gather.address_region) return error.INVAL;
        if (d.length == 0) continue;
        const base = try resolver.resolve(d.region, (@as(u64, d.offset_high) << 32) | d.offset_low, d.length);
        if (std.mem.indexOfScalar(regions.Id, held[0..held_count], d.region) == null) {
            held[held_count] = d.region;
            held_count += 1;
        }
        if (count > 0 and @intFromPtr(iov[count - 1].base) + iov[count - 1].len == @intFromPtr(base)) {
            iov[count - 1].len += d.length;
        } else {
            iov[count] = .{ .base = base, .len = d.length };
            count += 1;
        }
    }
    if (count == 0) return error.INVAL;
    const dup = std.c.fcntl(fd, dupfd_cloexec, @as(c_int, 0));
    if (dup < 0) return errno.last();
    errdefer _ = std.c.close(dup);

    mutex.lock();
    defer mutex.unlock();
    const index = for (jobs, 0..) |job, i| {
        if (job.state == .free) break i;
    } else return error.AGAIN;
    if (!thread_started) {
        // Detached, for the life of the process: it only ever waits on `queued` or writes.
        const thread = std.Thread.spawn(.{ .stack_size = 64 * 1024 }, run, .{}) catch return error.AGAIN;
        thread.detach();
        thread_started = true;
    }
    for (held[0..held_count], 0..) |region, i| regions.retain(region) catch |err| {
        for (held[0..i]) |taken| mapping.releaseView(taken) catch {};
        return err;
    };
    const job = &jobs[index];
    const generation = job.generation +% 1; // a local: the literal below is written into job.* in place
    job.* = .{ .state = .queued, .generation = generation, .fd = dup, .count = count, .held_count = held_count };
    @memcpy(job.iov[0..count], iov[0..count]);
    @memcpy(job.held[0..held_count], held[0..held_count]);
    queue[(queue_head + queue_len) % job_count_max] = @intCast(index);
    queue_len += 1;
    queued.signal();
    return @as(u32, job.generation) << 8 | @as(u32, @intCast(index + 1));
}

/// Waits until job `id` is written and frees its slot. Returns the bytes written; on failure the error, with
/// `done` holding the bytes that were written before it (the caller writes the rest again, or reports).
pub fn wait(id: u32, done: *u64) Errno!u64 {
    done.* = 0;
    const index_plus_one = id & 0xFF;
    if (index_plus_one == 0 or index_plus_one > job_count_max) return error.BADF;
    mutex.lock();
    defer mutex.unlock();
    const job = &jobs[index_plus_one - 1];
    if (job.state == .free or job.generation != @as(u16, @truncate(id >> 8))) return error.BADF;
    while (job.state != .done) finished.wait(&mutex);
    job.state = .free;
    done.* = job.done_bytes;
    if (job.failure) |failure| return failure;
    return job.done_bytes;
}

fn run() void {
    guard.quietThread(); // EPIPE and EFBIG here too, never a signal that ends the process
    while (true) {
        mutex.lock();
        while (queue_len == 0) queued.wait(&mutex);
        const job = &jobs[queue[queue_head]];
        queue_head = (queue_head + 1) % job_count_max;
        queue_len -= 1;
        mutex.unlock();

        // The job is this thread's alone until it is marked done.
        var done: u64 = 0;
        const failure = writeAll(job.fd, job.iov[0..job.count], &done);
        _ = std.c.close(job.fd);
        // Unmaps what its owner let go of meanwhile (mapping's own lock, not ours).
        for (job.held[0..job.held_count]) |region| mapping.releaseView(region) catch {};

        mutex.lock();
        job.done_bytes = done;
        job.failure = failure;
        job.fd = -1;
        job.state = .done;
        finished.broadcast();
        mutex.unlock();
    }
}

/// Writes every iovec, resuming short writes and retrying EINTR; null when all was written.
fn writeAll(fd: i32, iov: []std.posix.iovec_const, done: *u64) ?Errno {
    var first: usize = 0;
    while (first < iov.len) {
        const rc = std.c.writev(fd, iov[first..].ptr, @intCast(iov.len - first));
        if (rc < 0) {
            const err = errno.last();
            if (err == error.INTR) continue;
            guard.settleSignal(err);
            return err;
        }
        var moved: usize = @intCast(rc);
        if (moved == 0) return error.IO; // a regular file that takes nothing: never spin
        done.* += moved;
        while (first < iov.len and moved >= iov[first].len) : (first += 1) moved -= iov[first].len;
        if (moved > 0) {
            iov[first].base += moved;
            iov[first].len -= moved;
        }
    }
    return null;
}

test "a job writes its regions' bytes in order, to the file's position, and its id is good once" {
    var tmp = std.testing.tmpDir(.{});
    defer tmp.cleanup();
    const out = try tmp.dir.createFile("out", .{ .read = true });
    defer out.close();
    try out.writeAll("head:");
    const page = try std.posix.mmap(null, 8192, std.posix.PROT.READ | std.posix.PROT.WRITE, .{ .TYPE = .PRIVATE, .ANONYMOUS = true }, -1, 0);
    defer std.posix.munmap(page);
    @memset(page[0..4096], 'a');
    @memset(page[4096..], 'b');
    const region = try regions.register(@intFromPtr(page.ptr), page.len, .anonymous);
    defer if (regions.unregister(region)) |_| {} else |_| {};
    const list = [_]gather.Descriptor{
        .{ .region = region, .offset_low = 4090, .offset_high = 0, .length = 6 },
        .{ .region = region, .offset_low = 4096, .offset_high = 0, .length = 3 },
        .{ .region = region, .offset_low = 0, .offset_high = 0, .length = 2 },
    };
    const id = try submit(out.handle, &list);
    var done: u64 = 0;
    try std.testing.expectEqual(@as(u64, 11), try wait(id, &done));
    try std.testing.expectError(error.BADF, wait(id, &done));
    var buf: [32]u8 = undefined;
    const n = try std.posix.pread(out.handle, &buf, 0);
    try std.testing.expectEqualStrings("head:aaaaaabbbaa", buf[0..n]);
}

test "bytes that live for one call only, an empty or too long list and a closed descriptor are refused" {
    var tmp = std.testing.tmpDir(.{});
    defer tmp.cleanup();
    const out = try tmp.dir.createFile("out", .{});
    defer out.close();
    const staged = [_]gather.Descriptor{.{ .region = gather.staging_region, .offset_low = 0, .offset_high = 0, .length = 1 }};
    try std.testing.expectError(error.INVAL, submit(out.handle, &staged));
    const by_address = [_]gather.Descriptor{.{ .region = gather.address_region, .offset_low = 4096, .offset_high = 0, .length = 1 }};
    try std.testing.expectError(error.INVAL, submit(out.handle, &by_address));
    try std.testing.expectError(error.INVAL, submit(out.handle, &.{}));
    const unknown = [_]gather.Descriptor{.{ .region = 0xFFFF, .offset_low = 0, .offset_high = 0, .length = 1 }};
    try std.testing.expectError(error.FAULT, submit(out.handle, &unknown));
    var done: u64 = 0;
    try std.testing.expectError(error.BADF, wait(0, &done));
    try std.testing.expectError(error.BADF, wait(5, &done));
}

test "a write that fails reports the error and the bytes written before it" {
    const full = std.fs.openFileAbsolute("/dev/full", .{ .mode = .write_only }) catch return error.SkipZigTest;
    defer full.close();
    const page = try std.posix.mmap(null, 4096, std.posix.PROT.READ | std.posix.PROT.WRITE, .{ .TYPE = .PRIVATE, .ANONYMOUS = true }, -1, 0);
    defer std.posix.munmap(page);
    const region = try regions.register(@intFromPtr(page.ptr), page.len, .anonymous);
    defer if (regions.unregister(region)) |_| {} else |_| {};
    const list = [_]gather.Descriptor{.{ .region = region, .offset_low = 0, .offset_high = 0, .length = 100 }};
    const id = try submit(full.handle, &list);
    var done: u64 = 7;
    try std.testing.expectError(error.NOSPC, wait(id, &done));
    try std.testing.expectEqual(@as(u64, 0), done);
}

test "memory whose owner lets go while its job waits stays mapped until the job has written it" {
    // A job into a full pipe nobody reads holds the thread: the next job is still queued when its owner unmaps.
    const pipe = try std.posix.pipe();
    defer std.posix.close(pipe[0]);
    defer std.posix.close(pipe[1]);
    const blocker = try mapping.mapAnonymous(256 * 1024, false);
    defer mapping.unmap(blocker.region) catch {};
    const stuck = [_]gather.Descriptor{.{ .region = blocker.region, .offset_low = 0, .offset_high = 0, .length = 256 * 1024 }};
    const stuck_id = try submit(pipe[1], &stuck);

    var tmp = std.testing.tmpDir(.{});
    defer tmp.cleanup();
    const out = try tmp.dir.createFile("out", .{ .read = true });
    defer out.close();
    const source = try mapping.mapAnonymous(8192, false);
    const bytes: [*]u8 = @ptrFromInt(source.address);
    for (0..8192) |i| bytes[i] = @truncate(i *% 7);
    const list = [_]gather.Descriptor{.{ .region = source.region, .offset_low = 0, .offset_high = 0, .length = 8192 }};
    const id = try submit(out.handle, &list);
    try mapping.unmap(source.region); // as a Worker's end does: the owner lets go at once

    var sink: [65536]u8 = undefined;
    var drained: usize = 0;
    while (drained < 256 * 1024) drained += try std.posix.read(pipe[0], &sink);
    var done: u64 = 0;
    try std.testing.expectEqual(@as(u64, 256 * 1024), try wait(stuck_id, &done));
    try std.testing.expectEqual(@as(u64, 8192), try wait(id, &done));
    var got: [8192]u8 = undefined;
    try std.testing.expectEqual(@as(usize, 8192), try std.posix.pread(out.handle, &got, 0));
    for (got, 0..) |byte, i| try std.testing.expectEqual(@as(u8, @truncate(i *% 7)), byte);
    try std.testing.expectError(error.BADF, regions.lookup(source.region)); // and let go once written
}
