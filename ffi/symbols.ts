/**
 * Every C symbol of libpageio, declared once. Both runtime bindings are
 * derived from this table; nothing else spells a native type.
 *
 * Every function returns a double: `>= 0` is the result, `< 0` is `-errno`
 * (a double holds every integer below 2^53 exactly and is a plain number on
 * both runtimes, where a 64-bit integer may come back as a BigInt).
 * @module
 */

/** The C interface version this TypeScript expects; `zig/src/root.zig` has the same. */
export const ABI_VERSION = 3;

/**
 * Runtime-neutral parameter types: `buffer` is a typed array (or null) passed as a pointer; `function` is a
 * callback's pointer, made by `Binding.callback` from the `callbacks` table below.
 */
export type NativeType = "i32" | "u32" | "f64" | "buffer" | "function";

/** One symbol: parameter types in order, its (always double) result, and whether it may wait on I/O. */
export interface SymbolSpec {
  readonly parameters: readonly NativeType[];
  readonly result: "f64";
  /** It may block on a pipe, socket or slow disk: the bindings also offer it as a Promise, off the JS thread. */
  readonly mayBlock?: true;
}

export const symbols = {
  pageio_abi_version: { parameters: [], result: "f64" },
  pageio_page_size: { parameters: [], result: "f64" },
  pageio_region_count: { parameters: [], result: "f64" },
  // (region: u32) -> 0, or the errno every use of the region fails with since the SIGBUS guard put zeros
  // into it: ENODATA (its file was truncated), ENOSPC (no room for a page), EIO (a page could not be read)
  pageio_region_fault: { parameters: ["u32"], result: "f64" },
  // () -> SIGBUS faults absorbed by the guard in this process
  pageio_fault_count: { parameters: [], result: "f64" },
  // (code: i32, out: u8*, out_len: u32) -> name length
  pageio_errno_name: { parameters: ["i32", "buffer", "u32"], result: "f64" },
  // (path: u8*, path_len: u32, mode: u32 FileMode index, flags: u32 bits no_follow|non_blocking) -> fd
  pageio_open: { parameters: ["buffer", "u32", "u32", "u32"], result: "f64" },
  // (fd: i32) -> a close-on-exec duplicate, owned by the calling JS thread (pageio_fd_own)
  pageio_dup: { parameters: ["i32"], result: "f64" },
  // (fd: i32) -> 0
  pageio_close: { parameters: ["i32"], result: "f64" },
  // (kind: u32 0 pipe | 1 unix socket pair, non_blocking: u32, out: f64[2] the two fds) -> 0
  pageio_pair: { parameters: ["u32", "u32", "buffer"], result: "f64" },
  // (fd: i32, bytes: u32) -> the pipe's new capacity (F_SETPIPE_SZ)
  pageio_pipe_size: { parameters: ["i32", "u32"], result: "f64" },
  // (fd: i32, size: f64) -> 0 (ftruncate)
  pageio_truncate: { parameters: ["i32", "f64"], result: "f64" },
  // (size: f64) -> fd of a new memfd of that many zero bytes
  pageio_memory_file: { parameters: ["f64"], result: "f64" },
  // (slots: u32, slot_size: u32) -> bytes a shared ring of that shape needs
  pageio_ring_bytes: { parameters: ["u32", "u32"], result: "f64" },
  // (region: u32, slots: u32, slot_size: u32) -> 0: a fresh ring header
  pageio_ring_init: { parameters: ["u32", "u32", "u32"], result: "f64" },
  // (region: u32, role: u32 0 producer | 1 consumer, out: f64[3] {slots, slot_size, data_offset}) -> 0
  pageio_ring_attach: { parameters: ["u32", "u32", "buffer"], result: "f64" },
  // (region: u32, role: u32) -> 0: that side is closed, every waiter woken
  pageio_ring_close: { parameters: ["u32", "u32"], result: "f64" },
  // (region: u32, timeout_ms: u32, 0xFFFFFFFF no limit) -> free slot index (producer)
  pageio_ring_reserve: { parameters: ["u32", "u32"], result: "f64", mayBlock: true },
  // (region: u32, slot: u32 the reserved slot, length: u32) -> 0: the slot is published (producer)
  pageio_ring_publish: { parameters: ["u32", "u32", "u32"], result: "f64" },
  // (region: u32, timeout_ms: u32) -> slot * 2^32 + length; -ENODATA once the producer closed (consumer)
  pageio_ring_receive: { parameters: ["u32", "u32"], result: "f64", mayBlock: true },
  // (region: u32, count: u32) -> 0: the oldest count received slots go back (consumer)
  pageio_ring_release: { parameters: ["u32", "u32"], result: "f64" },
  // (fd: i32, timeout_ms: u32, 0xFFFFFFFF no limit) -> 1 readable (bytes, or writers gone after one came), 0 timeout
  pageio_wait_readable: { parameters: ["i32", "u32"], result: "f64", mayBlock: true },
  // (region: u32, offset: f64, length: f64) -> 0: fresh zeroed pages in place (private anonymous regions only)
  pageio_replace_pages: { parameters: ["u32", "f64", "f64"], result: "f64" },
  // (fd: i32, out: f64[2] {size, kind}) -> 0
  pageio_fstat: { parameters: ["i32", "buffer"], result: "f64" },
  // (region: u32, address: f64, length: f64) -> 0: one more reference, for an ArrayBuffer over that span whose
  // deallocator is pageio_view_release (-EFAULT: the span is not wholly inside the region)
  pageio_region_retain: { parameters: ["u32", "f64", "f64"], result: "f64" },
  // (region: u32, address: f64, length: f64) -> 0: an ArrayBuffer no runtime reports released views that span
  // (the region is retired, not unmapped; -EFAULT: the span is not wholly inside the region)
  pageio_region_viewed: { parameters: ["u32", "f64", "f64"], result: "f64" },
  // (region: u32) -> 0: the owner lets go while an untracked view may live; the memory stays mapped for good
  pageio_retire: { parameters: ["u32"], result: "f64" },
  // () -> bytes kept mapped for good by retired regions
  pageio_retired_bytes: { parameters: [], result: "f64" },
  // () -> address of pageio_view_release(bytes: void*, context: void* region id): void, a view deallocator
  pageio_view_release_address: { parameters: [], result: "f64" },
  // () -> 0: the calling thread is a JS thread; what it maps is let go when it ends (a terminated Worker)
  pageio_thread_attach: { parameters: [], result: "f64" },
  // () -> 0: this thread's blocking calls on pipes and sockets end each slice with -EINTR, made again to go on
  pageio_thread_sliced: { parameters: [], result: "f64" },
  // (fd: i32) -> 0: fd belongs to the calling JS thread, closed when it ends (pageio_close lets it go)
  pageio_fd_own: { parameters: ["i32"], result: "f64" },
  // (fd: i32, buffer: u8*, length: u32, offset: f64) -> bytes read at offset (pread), 0 at end of file
  pageio_pread: { parameters: ["i32", "buffer", "u32", "f64"], result: "f64" },
  // (fd: i32, region: u32, at: f64, length: u32, offset: f64) -> bytes read at offset into [at, at + length) of region
  pageio_pread_region: { parameters: ["i32", "u32", "f64", "u32", "f64"], result: "f64" },
  // (fd: i32, offset: f64 page-aligned, length: f64, options: u32 bits write|private|populate, out: f64[1] address) -> region
  pageio_map_file: { parameters: ["i32", "f64", "f64", "u32", "buffer"], result: "f64" },
  // (length: f64, shared: u32, out: f64[1] address) -> region
  pageio_map_anonymous: { parameters: ["f64", "u32", "buffer"], result: "f64" },
  // (region: u32) -> 0; deferred to the last pageio_share_drop while a share holds the region
  pageio_unmap: { parameters: ["u32"], result: "f64" },
  // (region: u32, offset: f64, length: f64, grace_ms: u32 an untaken share outlives the unmap) -> share id
  pageio_share: { parameters: ["u32", "f64", "f64", "u32"], result: "f64" },
  // (share: u32, out: f64[2] {address, region}) -> length; EALREADY once taken, ENOENT unknown or swept
  pageio_share_take: { parameters: ["u32", "buffer"], result: "f64" },
  // (share: u32) -> 0: the last share of an unmapped region unmaps it
  pageio_share_drop: { parameters: ["u32"], result: "f64" },
  // (share: u32) -> 1 while it lives (pending or taken), else 0
  pageio_share_live: { parameters: ["u32"], result: "f64" },
  // () -> live shares in this process
  pageio_share_count: { parameters: [], result: "f64" },
  // (region: u32, offset: f64, length: f64, advice: u32 Advice index) -> 0
  pageio_advise: { parameters: ["u32", "f64", "f64", "u32"], result: "f64" },
  // (region: u32, offset: f64, length: f64; whole pages) -> 0; the range becomes a private copy of its bytes
  pageio_privatize: { parameters: ["u32", "f64", "f64"], result: "f64" },
  // (region: u32, offset: f64, length: f64) -> 0
  pageio_sync: { parameters: ["u32", "f64", "f64"], result: "f64" },
  // (region: u32, offset: f64, length: f64) -> 1: a page there is not its file's (a private copy, or anonymous), else 0
  pageio_region_changed: { parameters: ["u32", "f64", "f64"], result: "f64" },
  // (fd: i32, list: u32[4 * count], list_bytes: u32, count: u32, staging: u8*, staging_bytes: u32,
  //  calls_max: u32 (0 = until done), out: f64[1] bytes moved) -> bytes moved
  pageio_writev: {
    parameters: ["i32", "buffer", "u32", "u32", "buffer", "u32", "u32", "buffer"],
    result: "f64",
    mayBlock: true,
  },
  pageio_readv: {
    parameters: ["i32", "buffer", "u32", "u32", "buffer", "u32", "u32", "buffer"],
    result: "f64",
    mayBlock: true,
  },
  // (staging: u8*, staging_bytes: u32, at: u32, bytes: u8* a typed array's memory, length: u32) -> at + length
  pageio_stage: { parameters: ["buffer", "u32", "u32", "buffer", "u32"], result: "f64" },
  // (bytes: u8* a typed array's memory) -> its address (for an ADDRESS_REGION descriptor)
  pageio_address: { parameters: ["buffer"], result: "f64" },
  // (fd: i32 a regular file, list: u32[4 * count] pool or mapping descriptors only, list_bytes: u32,
  //  count: u32 <= BEHIND_IOV_MAX) -> job id; the write-behind thread writes them (AGAIN: none free now)
  pageio_behind_submit: { parameters: ["i32", "buffer", "u32", "u32"], result: "f64" },
  // (job: u32, out: f64[1] bytes written, also on error) -> bytes written, once the job is done; frees it
  pageio_behind_wait: { parameters: ["u32", "buffer"], result: "f64" },
  // as pageio_writev, into a pipe by vmsplice: the pipe holds the pages themselves until read
  pageio_vmsplice: {
    parameters: ["i32", "buffer", "u32", "u32", "buffer", "u32", "u32", "buffer"],
    result: "f64",
    mayBlock: true,
  },
  // (kind: u32 0 copy_file_range | 1 sendfile, fd_in: i32, offset_in: f64, fd_out: i32, length: f64,
  //  out: f64[1] bytes moved) -> bytes moved
  pageio_move: { parameters: ["u32", "i32", "f64", "i32", "f64", "buffer"], result: "f64", mayBlock: true },
  // (doorbell: void (*)(void) or null) -> poller id; with a doorbell, a thread calls it when fds become ready
  pageio_poller_open: { parameters: ["function"], result: "f64" },
  // (poller: u32, fd: i32, interest: u32 bits 1 read | 2 write) -> 0, once (oneshot); -EPERM: a regular file
  pageio_poller_arm: { parameters: ["u32", "i32", "u32"], result: "f64" },
  // (poller: u32, fd: i32) -> 0: fd registered for good, edge-triggered (read, write, hang-up); -EPERM: a file
  pageio_poller_register: { parameters: ["u32", "i32"], result: "f64" },
  // (poller: u32, fd: i32) -> 0: fd dropped from the set and the queue (call it before closing fd)
  pageio_poller_forget: { parameters: ["u32", "i32"], result: "f64" },
  // (poller: u32, out: {fd: i32, ready: u32}[max], max: u32) -> events taken from the doorbell's queue, then
  // from the kernel without blocking; after some, call it again (the thread waits until one finds none)
  pageio_poller_drain: { parameters: ["u32", "buffer", "u32"], result: "f64" },
  // (poller: u32, out: {fd: i32, ready: u32}[max], max: u32, timeout_ms: i32 -1 no limit) -> ready events
  pageio_poller_wait: { parameters: ["u32", "buffer", "u32", "i32"], result: "f64", mayBlock: true },
  // (poller: u32, on: u32) -> 1: on, events queued that JS drains itself; off, a ring JS has not drained yet
  pageio_poller_want: { parameters: ["u32", "u32"], result: "f64" },
  // (poller: u32) -> 0: an outstanding pageio_poller_wait returns
  pageio_poller_wake: { parameters: ["u32"], result: "f64" },
  // (poller: u32) -> 0
  pageio_poller_close: { parameters: ["u32"], result: "f64" },
  // (fd: i32) -> FdBlocking: 0 non-blocking | 1 never waits (regular file) | 2 may wait (pipe, socket) | 3 device
  pageio_fd_blocking: { parameters: ["i32"], result: "f64" },
  // (fd: i32, interest: u32, timeout_ms: i32) -> readiness bits, 0 on timeout (poll(2): no poller needed)
  pageio_wait_fd: { parameters: ["i32", "u32", "i32"], result: "f64", mayBlock: true },
  // (fd: i32, interest: u32, max_ns: u32 capped at 100 µs) -> ns until ready, -ETIMEDOUT: a bounded busy poll
  pageio_spin_fd: { parameters: ["i32", "u32", "u32"], result: "f64" },
  // (fd: i32, want: u32, sleep_ns: u32 capped at 100 µs) -> bytes waiting (FIONREAD), after one sleep if < want
  pageio_settle_fd: { parameters: ["i32", "u32", "u32"], result: "f64" },
  // (transport: u32 0 tcp | 1 unix, host: u8* numeric address or unix path, host_len: u32, port: u32,
  //  backlog: u32, flags: u32 bit 0 reuse_port) -> fd of a listening socket (non-blocking, close-on-exec)
  pageio_socket_listen: { parameters: ["u32", "buffer", "u32", "u32", "u32", "u32"], result: "f64" },
  // (fd: i32 listener) -> fd of the next connection (non-blocking, close-on-exec); -EAGAIN when none waits
  pageio_socket_accept: { parameters: ["i32"], result: "f64" },
  // (transport: u32, host: u8*, host_len: u32, port: u32, wait_ms: u32 0 = return at once | 0xFFFFFFFF no limit,
  //  out: f64[1] 1 while the connect is in progress) -> fd
  pageio_socket_connect: { parameters: ["u32", "buffer", "u32", "u32", "u32", "buffer"], result: "f64" },
  // (fd: i32) -> 0 once a pending connect succeeded, else -errno (SO_ERROR)
  pageio_socket_connect_result: { parameters: ["i32"], result: "f64" },
  // (fd: i32, option: u32 socket.Option index, value: i32) -> 0
  pageio_socket_set_option: { parameters: ["i32", "u32", "i32"], result: "f64" },
  // (fd: i32, option: u32) -> 0 or 1 (unsent_bytes_max: bytes, 0xFFFFFFFF no limit)
  pageio_socket_get_option: { parameters: ["i32", "u32"], result: "f64" },
  // (fd: i32, how: u32 0 read | 1 write | 2 both) -> 0
  pageio_socket_shutdown: { parameters: ["i32", "u32"], result: "f64" },
  // (fd: i32, peer: u32 0 own | 1 peer's, out: u8* text, out_len: u32, info: f64[2] {family 0 ipv4 | 1 ipv6 |
  //  2 unix, port}) -> text length
  pageio_socket_address: { parameters: ["i32", "u32", "buffer", "u32", "buffer"], result: "f64" },
  // (fd: i32, bytes: u8*, len: u32, flags: u32 bit 0 more) -> bytes sent now (MSG_DONTWAIT|MSG_NOSIGNAL,
  //  MSG_MORE with bit 0); -EAGAIN when the socket's buffer is full
  pageio_socket_send: { parameters: ["i32", "buffer", "u32", "u32"], result: "f64" },
  // (fd: i32 a stream socket from elsewhere, duplicate: u32 1 = a close-on-exec copy) -> fd, now non-blocking
  pageio_socket_adopt: { parameters: ["i32", "u32"], result: "f64" },
  // (dir: i32, path: u8*, path_len: u32) -> fd opened read-only beneath dir (-EXDEV/-ELOOP: it would leave dir)
  pageio_open_beneath: { parameters: ["i32", "buffer", "u32"], result: "f64" },
} as const satisfies Record<string, SymbolSpec>;

/** A callback the library calls: its parameter types (none yet) and result. */
export interface CallbackSpec {
  readonly parameters: readonly [];
  readonly result: "void";
  /** Called from a native thread, not the JS one: the runtime queues it onto the event loop. */
  readonly threadSafe: true;
}

/** Every callback type the library takes, declared once like the symbols. */
export const callbacks = {
  // void (*)(void): the poller's doorbell, rung from its thread when the ready queue was drained and fills again
  doorbell: { parameters: [], result: "void", threadSafe: true },
} as const satisfies Record<string, CallbackSpec>;

export type CallbackName = keyof typeof callbacks;

export type Symbols = typeof symbols;

/** A callback made by `Binding.callback`, passed where a symbol takes a `function`. */
export interface NativeCallback {
  /** Opaque: only for passing to a `function` parameter. */
  readonly pointer: unknown;
  /** Keep the process alive while the library may call it (the default)… */
  ref(): void;
  /** …or not. */
  unref(): void;
  close(): void;
}

type JsType<T extends NativeType> = T extends "buffer" ? ArrayBufferView | null
  : T extends "function" ? NativeCallback["pointer"]
  : number;
type JsParameters<P extends readonly NativeType[]> = { [K in keyof P]: P[K] extends NativeType ? JsType<P[K]> : never };

/** The symbols as JS functions, the same shape on both runtimes. */
export type NativeFunctions = {
  readonly [K in keyof Symbols]: (...args: JsParameters<Symbols[K]["parameters"]>) => number;
};

/** Names of the symbols that may block. */
export type BlockingName = { [K in keyof Symbols]: Symbols[K] extends { mayBlock: true } ? K : never }[keyof Symbols];

/**
 * The blocking symbols as Promises, run off the JS thread. Typed arrays passed in must not be touched until the
 * Promise settles; what the call writes into them (results, bytes read) is in them when it does.
 */
export type AsyncFunctions = {
  readonly [K in BlockingName]: (...args: JsParameters<Symbols[K]["parameters"]>) => Promise<number>;
};

/** The names of the blocking symbols, from the table. */
export const blockingNames: readonly BlockingName[] = Object.entries(symbols)
  .filter(([, spec]) => (spec as SymbolSpec).mayBlock)
  .map(([name]) => name as BlockingName);
