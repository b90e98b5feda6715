//! A call that may block, made on a thread that asked for it (Bun's worker, which makes a Worker's blocking
//! calls), is cut into slices (Linux): a timer signals the thread every `slice_ms` while the call runs, which
//! ends a write blocked on a pipe or socket nobody drains (EINTR, or the bytes it moved by then). The call then
//! returns EINTR, and goes on where it stopped when the thread calls it again, as Bun's worker does at once: its
//! JS runs in between, so a terminated Worker's helper ends within a slice. Before, it stayed in the write for
//! good, the terminated Worker's thread waited for it, and the process never exited.
const std = @import("std");
const builtin = @import("builtin");

pub const enabled = builtin.os.tag == .linux;
const linux = std.os.linux;

/// How long a blocking call runs before its thread is signalled (then again as often, until it returns).
pub const slice_ms = 100;

/// A real-time signal that neither runtime handles (SIGRTMAX - 6); taken by someone else, calls are not cut.
const signal: u6 = 58;

var install_once = std.once(install);
var usable = false;

/// This thread's calls are to be cut into slices (the caller calls again after EINTR).
threadlocal var wanted_here = false;

pub fn want() void {
    wanted_here = true;
}

pub fn wanted() bool {
    return enabled and wanted_here;
}

fn install() void {
    if (!enabled) return;
    var old: linux.Sigaction = undefined;
    if (linux.sigaction(signal, null, &old) != 0) return;
    if (old.handler.handler != null) return; // ignored, or someone's handler: theirs
    // No SA_RESTART: the point is that a blocked call ends with EINTR (or the bytes it moved).
    const wake: linux.Sigaction = .{ .handler = .{ .handler = nothing }, .mask = linux.empty_sigset, .flags = 0 };
    usable = linux.sigaction(signal, &wake, null) == 0;
}

fn nothing(_: i32) callconv(.c) void {}

const SigEvent = extern struct {
    value: usize = 0,
    signo: c_int,
    notify: c_int,
    tid: c_int,
    pad: [11]c_int = [_]c_int{0} ** 11,
};
const SIGEV_THREAD_ID = 4;

/// The slices of one call: `start` arms the timer (nothing where slices are unusable), `stop` disarms it.
pub const Slice = struct {
    timer: i32 = -1,
    mask: if (enabled) linux.sigset_t else void = undefined,

    /// Whether the call is being cut: an EINTR or a short write means its slice ended, so it returns.
    pub fn active(self: *const Slice) bool {
        return self.timer >= 0;
    }

    pub fn start() Slice {
        if (!enabled) return .{};
        install_once.call();
        if (!usable) return .{};
        var self: Slice = .{};
        var event: SigEvent = .{ .signo = signal, .notify = SIGEV_THREAD_ID, .tid = linux.gettid() };
        var id: i32 = -1;
        const created = linux.syscall3(.timer_create, @intFromEnum(linux.CLOCK.MONOTONIC), @intFromPtr(&event), @intFromPtr(&id));
        if (linux.E.init(created) != .SUCCESS) return .{};
        const every: linux.timespec = .{ .sec = 0, .nsec = slice_ms * std.time.ns_per_ms };
        const spec: linux.itimerspec = .{ .it_interval = every, .it_value = every };
        if (linux.E.init(linux.syscall4(.timer_settime, @intCast(id), 0, @intFromPtr(&spec), 0)) != .SUCCESS) {
            _ = linux.syscall1(.timer_delete, @intCast(id));
            return .{};
        }
        // The thread may block the signal (a runtime's pool): let it through for the call.
        var set = linux.empty_sigset;
        set[(signal - 1) / 32] |= @as(u32, 1) << (signal - 1) % 32; // std's sigaddset overflows past signal 32
        _ = linux.sigprocmask(linux.SIG.UNBLOCK, &set, &self.mask);
        self.timer = id;
        return self;
    }

    pub fn stop(self: *Slice) void {
        if (!enabled or self.timer < 0) return;
        _ = linux.syscall1(.timer_delete, @intCast(self.timer));
        self.timer = -1;
        // A signal already pending is taken by the handler here, if the mask blocked it before.
        _ = linux.sigprocmask(linux.SIG.SETMASK, &self.mask, null);
    }
};

/// Whether `fd` is a blocking pipe or socket (no O_NONBLOCK): a call on one can wait in the kernel for a peer.
pub fn blocking(fd: i32) bool {
    if (!enabled) return false;
    const flags = linux.fcntl(fd, linux.F.GETFL, 0);
    if (linux.E.init(flags) != .SUCCESS) return false;
    if (flags & 0o4000 != 0) return false; // O_NONBLOCK, as x86-64 and arm64 both number it
    var st: linux.Stat = undefined;
    if (linux.E.init(linux.fstat(fd, &st)) != .SUCCESS) return false;
    const kind = st.mode & linux.S.IFMT;
    return kind == linux.S.IFIFO or kind == linux.S.IFSOCK;
}

test "a write blocked on a full pipe nobody reads ends within a slice, with what it moved" {
    if (!enabled) return error.SkipZigTest;
    const fds = try std.posix.pipe();
    defer std.posix.close(fds[0]);
    defer std.posix.close(fds[1]);
    try std.testing.expect(blocking(fds[1]));
    var slice = Slice.start();
    defer slice.stop();
    if (!slice.active()) return error.SkipZigTest;
    const bytes = try std.testing.allocator.alloc(u8, 1 << 20);
    defer std.testing.allocator.free(bytes);
    const rc = std.c.write(fds[1], bytes.ptr, bytes.len); // the pipe holds 64 KiB: blocks until the signal
    try std.testing.expect(rc > 0 and rc < bytes.len);
}
