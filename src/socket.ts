/**
 * Stream sockets: TCP over IPv4 and IPv6, and unix-domain. Sockets are `FileHandle`s (non-blocking,
 * close-on-exec), so `writev`, `readv`, `PageReader` and `PageWriter` work on them; the `…Async` forms wait
 * until the socket is ready instead of holding a thread.
 * @module
 */
import { abi, enumIndex, errno, fn, native } from "../ffi/native.ts";
import { abortError, checkAsyncOptions, checkInteger, checkOptions, PageIoError, unwrap } from "./errors.ts";
import { checkAccess, describe, fdOf, FileHandle, type Target } from "./file.ts";
import {
  checkLengths,
  type Chunk,
  chunkLengths,
  chunkList,
  isDetached,
  type ReadTarget,
  scatter,
  shared,
  viewOf,
} from "./gather.ts";
import type { PageHead } from "./head.ts";
import { KIND_SENDFILE, moveSpan } from "./move.ts";
import { type AsyncOptions, failedAfter } from "./drive.ts";
import { forget, type Interest, inWriteTurn, renumbered, track, turn, waitReady } from "./reactor.ts";
import { internalOnly, kConstruct, lengthOf, ownCall } from "./internal.ts";
import { lstatSync, unlinkSync } from "node:fs";
import { resolve } from "node:path";

/** Where a socket is: a TCP address (IPv4 or IPv6 hostname and port) or a unix path, as Deno names them. */
export type NetAddr = { transport: "tcp"; hostname: string; port: number } | { transport: "unix"; path: string };

/** Options of `listen` for TCP. */
export interface TcpListenOptions {
  /** Port to listen on; 0 (the default) picks a free one (see `listener.addr`). */
  port?: number;
  /** A numeric IPv4 or IPv6 address or "localhost" (default "0.0.0.0": every IPv4 interface). */
  hostname?: string;
  /** Connections the kernel queues before `accept` takes them (default 511). */
  backlog?: number;
  /** Let several listeners bind the same address and port (`SO_REUSEPORT`): the kernel spreads connections. */
  reusePort?: boolean;
}

/** Options of `listen` for a unix-domain socket. */
export interface UnixListenOptions {
  /**
   * Filesystem path of the socket (at most 107 bytes, no NUL); it must not exist yet. `close()` removes it. On Linux
   * a path starting with NUL (`"\0name"`) is an abstract address: no file, gone when the listener closes, and up to
   * 108 bytes with its NUL (it needs no NUL after it).
   */
  path: string;
  /** Connections the kernel queues before `accept` takes them (default 511). */
  backlog?: number;
}

/** Where `connect` goes: a TCP host and port, or a unix path. */
export type ConnectOptions =
  | { hostname?: string; port: number; path?: never }
  | { path: string; hostname?: never; port?: never };

const TRANSPORT_TCP = enumIndex("Transport", "tcp");
const TRANSPORT_UNIX = enumIndex("Transport", "unix");
const FAMILIES = abi.enums.AddressFamily.values;
const OPTION_NO_DELAY = enumIndex("SocketOption", "noDelay");
const OPTION_KEEP_ALIVE = enumIndex("SocketOption", "keepAlive");
const OPTION_UNSENT_LIMIT = enumIndex("SocketOption", "unsentLimit");
const OPTION_CORK = enumIndex("SocketOption", "cork");
const LISTEN_REUSE_PORT = abi.flags.ListenFlags.bits.reuse_port;
const SEND_MORE = abi.flags.SendFlags.bits.more;
/** The intrinsic typed-array tag ("Uint8Array" for one, a Buffer included), which no own property can fake. */
const tagOf = ownCall(
  Object.getOwnPropertyDescriptor(Object.getPrototypeOf(Uint8Array.prototype), Symbol.toStringTag)!
    .get! as (this: unknown) => string | undefined,
);
const WAIT_FOREVER = 0xffff_ffff;
/** accept errors that end once descriptors or memory are freed: a listener's loop pauses this long, then retries. */
const ACCEPT_LATER = new Set(["EMFILE", "ENFILE", "ENOBUFS", "ENOMEM"]);
const ACCEPT_PAUSE_MS = 50;

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const out = new Float64Array(2);
const ADDRESS_TEXT_BYTES = 256;
const addressText = new Uint8Array(ADDRESS_TEXT_BYTES);

/** A host as the native side parses it: a numeric address without brackets. */
function numericHost(hostname: unknown, fallback: string): string {
  if (hostname === undefined) return fallback;
  if (typeof hostname !== "string") throw new TypeError(`hostname must be a string, got ${describe(hostname)}`);
  const host = hostname.startsWith("[") && hostname.endsWith("]") ? hostname.slice(1, -1) : hostname;
  if (host === "localhost") return "127.0.0.1";
  // Dotted IPv4 or anything with a colon (IPv6); the native side checks the details.
  if (/^[0-9.]+$/.test(host) || host.includes(":")) return host;
  throw new TypeError(
    `hostname '${hostname}' is not a numeric IP address or "localhost": resolve names first ` +
      "(node:dns, Deno.resolveDns)",
  );
}

/** Deno's spelling of a network permission: "host:port", IPv6 in brackets. */
function netPermission(host: string, port: number): string {
  return `${host.includes(":") ? `[${host}]` : host}:${port}`;
}

function checkNet(host: string, port: number, syscall: string): void {
  const wanted = netPermission(host, port);
  if (!native.permitted({ name: "net", host: wanted })) {
    throw new PageIoError("EACCES", `EACCES: requires net access to "${wanted}" (run deno with --allow-net)`, {
      errno: errno.EACCES,
      syscall,
    });
  }
}

/**
 * A unix socket's path, which Deno's read and write scopes must both allow (as `Deno.listen` asks). An abstract
 * address (a leading NUL; Linux) names no file: it needs net access instead, unscoped, as Deno's own listen asks.
 */
function checkUnixPath(path: unknown, syscall: string): string {
  if (typeof path !== "string") throw new TypeError(`path must be a string, got ${describe(path)}`);
  if (path.startsWith("\0")) {
    if (native.permitted({ name: "net" })) return path;
    const where = `the abstract unix address '${shownPath(path)}'`;
    const message = `EACCES: requires net access to ${where} (run deno with --allow-net)`;
    throw new PageIoError("EACCES", message, { errno: errno.EACCES, syscall });
  }
  checkAccess("read", path, syscall);
  checkAccess("write", path, syscall);
  return path;
}

/** A unix path as errors show it: an abstract one as "@name" (as ss(8) does), not with a raw NUL in it. */
function shownPath(path: string): string {
  return path.startsWith("\0") ? `@${path.slice(1)}` : path;
}

function addressOf(fd: number, peer: boolean, syscall: string): NetAddr {
  const length = unwrap(fn.pageio_socket_address(fd, peer ? 1 : 0, addressText, ADDRESS_TEXT_BYTES, out), syscall);
  const text = decoder.decode(addressText.subarray(0, length));
  return FAMILIES[out[0]] === "unix"
    ? { transport: "unix", path: text }
    : { transport: "tcp", hostname: text, port: out[1] };
}

/**
 * A connected stream socket: a `FileHandle` with socket options, addresses, half-close, and reads and writes
 * that either return at once (`read`, `write`, `sendFile`: non-blocking) or wait until the socket is ready
 * (`readAsync`, `writeAsync`, `sendFileAsync`).
 *
 * @example
 * ```ts
 * import { connect, listen } from "@pageio/pageio";
 * using listener = listen({ hostname: "127.0.0.1", port: 0 });
 * using client = connect(listener.addr);
 * using server = (await listener.acceptAsync());
 * await client.writeAsync([new TextEncoder().encode("ping")]);
 * const bytes = new Uint8Array(4);
 * console.log(await server.readAsync(bytes)); // 4
 * ```
 */
export class Socket extends FileHandle {
  /** @internal Sockets come from `listen().accept()`, `connect()`, `connectAsync()` and `adoptSocket()`. */
  constructor(fd: number, key?: symbol, renewed = true) {
    internalOnly(key, "Socket", "listen(), connect(), connectAsync() or adoptSocket()");
    super(fd);
    if (renewed) renumbered(fd); // a number the kernel just gave (not one adopted as it is)
    fn.pageio_fd_own(fd); // closed when this thread ends, if close() never ran (a terminated Worker)
    track(fd); // closed only through close(), which forgets it first
  }

  /** Whether small writes go out at once (`TCP_NODELAY`, Nagle's algorithm off). TCP only. */
  get noDelay(): boolean {
    return unwrap(fn.pageio_socket_get_option(this.fd, OPTION_NO_DELAY), "getsockopt(TCP_NODELAY)") === 1;
  }
  set noDelay(on: boolean) {
    unwrap(fn.pageio_socket_set_option(this.fd, OPTION_NO_DELAY, on ? 1 : 0), "setsockopt(TCP_NODELAY)");
  }

  /** Whether the kernel probes an idle connection to find a dead peer (`SO_KEEPALIVE`). */
  get keepAlive(): boolean {
    return unwrap(fn.pageio_socket_get_option(this.fd, OPTION_KEEP_ALIVE), "getsockopt(SO_KEEPALIVE)") === 1;
  }
  set keepAlive(on: boolean) {
    unwrap(fn.pageio_socket_set_option(this.fd, OPTION_KEEP_ALIVE, on ? 1 : 0), "setsockopt(SO_KEEPALIVE)");
  }

  /**
   * Most bytes the socket holds queued but not yet sent before it stops taking more and reports itself not
   * writable (`TCP_NOTSENT_LOWAT`; `Infinity`: no limit, the default). A small limit keeps a big `sendFile`
   * moving in steps the sender transmits itself, instead of megabytes that wait in the kernel for the peer.
   */
  get unsentLimit(): number {
    const bytes = unwrap(fn.pageio_socket_get_option(this.fd, OPTION_UNSENT_LIMIT), "getsockopt(TCP_NOTSENT_LOWAT)");
    return bytes >= 2 ** 31 ? Infinity : bytes;
  }
  set unsentLimit(bytes: number) {
    const value = bytes === Infinity ? -1 : checkInteger("unsentLimit", bytes, 1, 2 ** 31 - 1);
    unwrap(fn.pageio_socket_set_option(this.fd, OPTION_UNSENT_LIMIT, value), "setsockopt(TCP_NOTSENT_LOWAT)");
  }

  /**
   * While true, the kernel holds back partial packets, so a response's head and a small body written by separate
   * calls (`write`, then `sendFile`) leave in one packet; setting it false sends what it holds at once (`TCP_CORK`;
   * `TCP_NOPUSH` on macOS). TCP only. Set it around one response, not for the connection's life: held bytes wait
   * up to 200 ms for more.
   *
   * @example
   * ```ts
   * import { connect, listen } from "@pageio/pageio";
   * using listener = listen({ hostname: "127.0.0.1", port: 0 });
   * using client = connect(listener.addr);
   * using server = await listener.acceptAsync();
   * server.cork = true;
   * server.write([new TextEncoder().encode("HTTP/1.1 200 OK\r\n\r\n")]);
   * server.write([new TextEncoder().encode("body")]);
   * server.cork = false; // both leave now, together
   * console.log(await client.readAsync(new Uint8Array(64)) > 0); // true
   * ```
   */
  get cork(): boolean {
    return unwrap(fn.pageio_socket_get_option(this.fd, OPTION_CORK), "getsockopt(TCP_CORK)") === 1;
  }
  set cork(on: boolean) {
    unwrap(fn.pageio_socket_set_option(this.fd, OPTION_CORK, on ? 1 : 0), "setsockopt(TCP_CORK)");
  }

  /** This end's address. */
  get localAddr(): NetAddr {
    return addressOf(this.fd, false, "getsockname");
  }

  /** The peer's address (`ENOTCONN` once the peer is gone). */
  get remoteAddr(): NetAddr {
    return addressOf(this.fd, true, "getpeername");
  }

  /**
   * Ends one direction: `"write"` (the default) sends end-of-stream to the peer and keeps reading, `"read"`
   * stops reading, `"both"` does both. The descriptor stays open until `close()`.
   */
  shutdown(how: "read" | "write" | "both" = "write"): void {
    const code = enumIndex("Shutdown", how);
    if (code < 0) throw new TypeError(`how must be "read", "write" or "both", got ${String(how)}`);
    unwrap(fn.pageio_socket_shutdown(this.fd, code), "shutdown");
  }

  /**
   * Set when a read took less than it asked for: the kernel's buffer was empty then, so the next `readAsync`
   * waits for readiness first instead of a read that would most likely find nothing (one system call saved per
   * request on a keep-alive connection; data or a hang-up reported meanwhile is kept, and ends it at once).
   */
  #drained = false;

  /**
   * Reads what has arrived into `target`: the bytes read, 0 at end of stream, null when nothing is waiting.
   * A `target` of 0 bytes is a RangeError (its 0 could not be told from end of stream).
   */
  read(target: ReadTarget): number | null {
    const read = readOnce(this.fd, target);
    this.#drained = read !== null && read > 0 && read < shared.byteLength();
    return read;
  }

  /** Reads into `target`, waiting until something arrives: the bytes read, 0 at end of stream. */
  async readAsync(target: ReadTarget, options?: AbortSignal | AsyncOptions): Promise<number> {
    const signal = signalOf(options, "readAsync");
    if (this.#drained) await ready(this.fd, "read", signal);
    for (;;) {
      const read = this.read(target);
      if (read !== null) return afterTurn(read);
      await ready(this.fd, "read", signal);
    }
  }

  /** Writes what the socket takes now, in one gather call: bytes written (0 when its buffer is full). */
  write(chunks: Iterable<Chunk>): number {
    const array = chunkList(chunks);
    const fd = this.fd; // after the caller's iterable ran; a closed socket is ERR_CLOSED, with nothing to write too
    return array.length === 0 ? 0 : shared.pack(array, 0, array.length).write(fd, 0);
  }

  /**
   * Sends what the socket takes of `bytes` now, in one `send` call: bytes sent (0 when its buffer is full).
   * With `more: true` the kernel holds a partial packet for what is sent next at once (`MSG_MORE`; Linux), so a
   * response's head sent this way leaves in one packet with the start of its `sendFile` body instead of alone
   * (one wake-up of the peer, not two). Unlike `cork`, nothing is held once a later call sends without `more`.
   *
   * @example
   * ```ts
   * import { connect, listen } from "@pageio/pageio";
   * using listener = listen({ hostname: "127.0.0.1", port: 0 });
   * using client = connect(listener.addr);
   * using server = await listener.acceptAsync();
   * server.send(new TextEncoder().encode("head "), { more: true });
   * server.send(new TextEncoder().encode("body"));
   * const bytes = new Uint8Array(16);
   * let got = 0;
   * while (got < 9) got += await client.readAsync(bytes.subarray(got));
   * console.log(new TextDecoder().decode(bytes.subarray(0, got))); // "head body"
   * ```
   */
  send(bytes: Uint8Array, options?: { more?: boolean }): number {
    // First: a getter runs here, before the bytes and the descriptor are read (one that closed the socket had its
    // number, now another connection's, sent to; one that detached the bytes, a stale length sent).
    const flags = options?.more === true ? SEND_MORE : 0;
    if (tagOf.call(bytes) !== "Uint8Array") throw new TypeError(`bytes must be a Uint8Array, got ${describe(bytes)}`);
    const length = lengthOf(bytes); // 0 when detached
    if (length === 0) {
      if (isDetached(bytes)) throw new TypeError("bytes were detached (transferred, or their page or mapping is gone)");
      return this.fd, 0; // closed: ERR_CLOSED, not a send that seemed to succeed
    }
    const result = fn.pageio_socket_send(this.fd, bytes, length, flags);
    return result === -errno.EAGAIN ? 0 : unwrap(result, "send");
  }

  /**
   * Writes every chunk, waiting while the socket's buffer is full; returns the bytes written. The chunks stay
   * the caller's and must not change until it settles (an array that shrinks meanwhile, a resizable buffer's, is a
   * TypeError with `bytesTransferred`). Aborted, it rejects with `ABORT_ERR` and `bytesTransferred`.
   * A call made while another async write on the socket is pending (this, `sendFileAsync`, `writevAsync`, a
   * `flushAsync`) starts when that one settles: they go out whole, in call order (a `write`, `send` or
   * `sendFile` made meanwhile goes ahead of them).
   */
  writeAsync(chunks: Iterable<Chunk>, options?: AbortSignal | AsyncOptions): Promise<number> {
    try {
      const signal = signalOf(options, "writeAsync");
      const list = chunkList(chunks);
      // What it was given: an array that shrank meanwhile (a resizable buffer) is a TypeError, as for writevAsync,
      // where it was sent short and reported as done.
      const lengths = chunkLengths(list);
      return inWriteTurn(this.fd, signal, () => this.#writeAll(list, lengths, signal));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  async #writeAll(list: Chunk[], lengths: number[], signal: AbortSignal | undefined): Promise<number> {
    let rest = { chunks: list, lengths };
    const slices: PageHead[] = [];
    let total = 0;
    try {
      for (;;) {
        try {
          const fd = this.fd;
          const { chunks, lengths } = rest;
          const written = chunks.length === 0 ? 0 : shared.pack(chunks, 0, chunks.length, lengths).write(fd, 0);
          total += written;
          rest = dropFront(chunks, lengths, written, slices);
          if (rest.chunks.length === 0) return afterTurn(total);
          await ready(this.fd, "write", signal);
          checkLengths(list, lengths); // the caller's code ran meanwhile
        } catch (error) {
          throw withBytes(error, total + bytesOf(error));
        }
      }
    } finally {
      for (const slice of slices) slice.release();
    }
  }

  /**
   * Sends `length` bytes of `file` from `offset` by `sendfile` (the kernel moves them from the page cache; no
   * copy in user space), as far as the socket takes them now: bytes sent, 0 when its buffer is full.
   */
  sendFile(file: Target, offset: number, length: number): number {
    checkInteger("offset", offset);
    checkInteger("length", length);
    if (length === 0) return fdOf(file), this.fd, 0; // closed file or socket: ERR_CLOSED, even for no bytes
    const moved = moveSpan(KIND_SENDFILE, fdOf(file), offset, this.fd, length);
    if (moved === null) {
      throw new PageIoError("EINVAL", "EINVAL: the kernel cannot sendfile from this file to this socket", {
        errno: errno.EINVAL,
        syscall: "sendfile",
      });
    }
    return moved;
  }

  /**
   * `sendFile` until all `length` bytes are sent, waiting while the socket's buffer is full; queued behind the
   * async writes pending on the socket as `writeAsync` is.
   */
  sendFileAsync(
    file: Target,
    offset: number,
    length: number,
    options?: AbortSignal | AsyncOptions,
  ): Promise<number> {
    try {
      checkInteger("offset", offset);
      checkInteger("length", length); // a NaN or negative length once sent nothing and reported 0
      const signal = signalOf(options, "sendFileAsync");
      return inWriteTurn(this.fd, signal, () => this.#sendAll(file, offset, length, signal));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  async #sendAll(file: Target, offset: number, length: number, signal: AbortSignal | undefined): Promise<number> {
    let sent = 0;
    try {
      do { // once at least: a length of 0 still checks the file and socket are open
        sent += this.sendFile(file, offset + sent, length - sent);
        if (sent < length) await ready(this.fd, "write", signal);
      } while (sent < length);
    } catch (error) {
      throw withBytes(error, sent + bytesOf(error));
    }
    return afterTurn(sent);
  }

  /** Closes the socket; waits on it settle first (its number may name another file next). */
  override close(): void {
    if (!this.closed) forget(this.fd);
    super.close();
  }
}

/** `value`, once timers have had their turn if operations have completed at once for a while (`turn`). */
function afterTurn<T>(value: T): T | Promise<T> {
  const pause = turn();
  return pause === undefined ? value : pause.then(() => value);
}

/**
 * The chunks after the first `written` bytes, with their lengths as given; a partly written head is sliced (the
 * slice recorded in `slices`), a partly written array viewed from where it stopped.
 */
function dropFront(
  chunks: Chunk[],
  lengths: number[],
  written: number,
  slices: PageHead[],
): { chunks: Chunk[]; lengths: number[] } {
  let i = 0;
  let left = written;
  while (i < chunks.length && lengths[i] <= left) left -= lengths[i++];
  if (i === chunks.length) return { chunks: [], lengths: [] };
  const rest = chunks.slice(i);
  const restLengths = lengths.slice(i);
  if (left > 0) {
    const first = rest[0];
    // Just written from (pack checked it held its length), so the view is in bounds.
    if (!ArrayBuffer.isView(first)) slices.push(rest[0] = first.slice(left));
    else rest[0] = viewOf(first, left, restLengths[0] - left);
    restLengths[0] -= left;
  }
  return { chunks: rest, lengths: restLengths };
}

/** The error of an operation that moved `bytes` in all before it failed, saying so (`bytesTransferred`). */
function withBytes(error: unknown, bytes: number): unknown {
  if (error instanceof PageIoError) return failedAfter(error, bytes); // in place: its cause and stack stay
  if (error instanceof Error) (error as Error & { bytesTransferred?: number }).bytesTransferred = bytes;
  return error;
}

/** Bytes a failed system call had moved before it failed. */
function bytesOf(error: unknown): number {
  return error instanceof PageIoError ? error.bytesTransferred ?? 0 : 0;
}

/** `waitReady`, with an abort as `ABORT_ERR` (the signal's reason as `cause`), like every other async form. */
async function ready(fd: number, interest: Interest, signal: AbortSignal | undefined): Promise<void> {
  try {
    await waitReady(fd, interest, signal);
  } catch (error) {
    throw signal?.aborted && error === signal.reason ? abortError(error) : error;
  }
}

/** Resolves after `ms`; an abort meanwhile rejects with `ABORT_ERR`. */
function delay(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortError(signal!.reason));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * The signal of an async socket call: an AbortSignal, or `{ signal }` as every other async form takes it. One
 * already aborted rejects the call before it does anything, as one aborted while it waited does.
 */
function signalOf(options: AbortSignal | AsyncOptions | undefined, what: string): AbortSignal | undefined {
  let signal: AbortSignal | undefined;
  if (options === undefined || options instanceof AbortSignal) signal = options;
  else {
    signal = checkAsyncOptions(options, what);
  }
  if (signal?.aborted) throw abortError(signal.reason);
  return signal;
}

/** One scatter read into one target: bytes, 0 at end, null for EAGAIN (no exception on the common path). */
function readOnce(fd: number, target: ReadTarget): number | null {
  const result = scatter(fd, [target]);
  if (result === -errno.EAGAIN) return null;
  return unwrap(result, "read", undefined, shared.out[0]);
}

/**
 * A listening socket. `accept()` returns a waiting connection or null; `acceptAsync()` and `for await` wait
 * for one without holding a thread.
 *
 * @example
 * ```ts
 * import { connect, listen } from "@pageio/pageio";
 * using listener = listen({ hostname: "127.0.0.1", port: 0 });
 * console.log(listener.accept()); // null: nobody has connected yet
 * using client = connect(listener.addr);
 * for await (const conn of listener) {
 *   console.log(conn.remoteAddr.transport); // "tcp"
 *   conn.close();
 *   break;
 * }
 * ```
 */
export class Listener implements AsyncIterable<Socket> {
  readonly #handle: Socket;
  readonly #addr: NetAddr;
  /** A unix listener's socket file, as bound: removed at close if it is still that file. */
  readonly #file: { path: string; dev: number; ino: number } | null = null;

  /** @internal Listeners come from `listen()`. */
  constructor(fd: number, key?: symbol, path?: string) {
    internalOnly(key, "Listener", "listen()");
    this.#handle = new Socket(fd, kConstruct);
    try {
      this.#addr = this.#handle.localAddr;
      if (path !== undefined && !path.startsWith("\0")) this.#file = socketFile(path); // an abstract one has none
    } catch (error) {
      this.#handle.close();
      throw error;
    }
  }

  /** The address it listens on (with the port the kernel picked for port 0). */
  get addr(): NetAddr {
    return { ...this.#addr };
  }

  /** The listening descriptor; throws once closed. */
  get fd(): number {
    return this.#handle.fd;
  }

  /** True once `close()` has run. */
  get closed(): boolean {
    return this.#handle.closed;
  }

  /** The next waiting connection, or null when none is waiting. */
  accept(): Socket | null {
    const result = fn.pageio_socket_accept(this.fd);
    if (result === -errno.EAGAIN) return null;
    return new Socket(unwrap(result, "accept"), kConstruct);
  }

  /** The next connection, waiting for one; rejects with `ERR_CLOSED` if the listener closes meanwhile. */
  async acceptAsync(options?: AbortSignal | AsyncOptions): Promise<Socket> {
    const signal = signalOf(options, "acceptAsync");
    for (;;) {
      const socket = this.accept();
      if (socket !== null) return afterTurn(socket);
      await ready(this.fd, "read", signal);
    }
  }

  /**
   * Connections as they arrive, until the listener is closed. One that cannot be taken for want of descriptors or
   * memory (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`) waits in the kernel's backlog while the loop tries again every
   * 50 ms: a server out of descriptors goes on once some are closed, instead of its loop ending in an exception
   * (`acceptAsync` reports those errors, for a caller that would rather decide).
   */
  async *[Symbol.asyncIterator](): AsyncIterableIterator<Socket> {
    while (!this.closed) {
      let socket: Socket;
      try {
        socket = await this.acceptAsync();
      } catch (error) {
        if (this.closed) return;
        if (!ACCEPT_LATER.has((error as PageIoError).code)) throw error;
        await delay(ACCEPT_PAUSE_MS, undefined);
        continue;
      }
      yield socket;
    }
  }

  /**
   * Stops listening; connections already accepted stay open. A unix listener removes its socket file (unless
   * another file took that path since), so the path can be listened on again. A second call does nothing.
   */
  close(): void {
    if (this.#handle.closed) return;
    this.#handle.close();
    const file = this.#file;
    if (file === null) return;
    try {
      const now = lstatSync(file.path);
      if (now.dev === file.dev && now.ino === file.ino && now.isSocket()) unlinkSync(file.path);
    } catch { /* gone already, or no longer ours to remove */ }
  }

  /** Closes, as `close()` does, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** The socket file a unix listener bound, to remove at close; null where it cannot be told (then it stays). */
function socketFile(path: string): { path: string; dev: number; ino: number } | null {
  try {
    const absolute = resolve(path); // the working directory may change before close
    const { dev, ino } = lstatSync(absolute);
    return { path: absolute, dev, ino };
  } catch {
    return null;
  }
}

/**
 * Listens on a TCP port (`{ port, hostname, backlog, reusePort }`) or a unix path (`{ path }`). In Deno it
 * needs `--allow-net` for the address (`--allow-read` and `--allow-write` for a unix path).
 *
 * @example
 * ```ts
 * import { listen } from "@pageio/pageio";
 * using listener = listen({ hostname: "127.0.0.1", port: 0 });
 * const addr = listener.addr;
 * console.log(addr.transport === "tcp" && addr.port > 0); // true
 * ```
 */
export function listen(options: TcpListenOptions | UnixListenOptions): Listener {
  if (typeof options !== "object" || options === null) {
    throw new TypeError(`listen options must be an object, got ${describe(options)}`);
  }
  const backlog = checkInteger("backlog", options.backlog ?? 511, 1, 2 ** 31 - 1);
  if ("path" in options) {
    const path = checkUnixPath(options.path, "listen");
    const bytes = encoder.encode(path);
    return new Listener(
      unwrap(fn.pageio_socket_listen(TRANSPORT_UNIX, bytes, lengthOf(bytes), 0, backlog, 0), "listen", shownPath(path)),
      kConstruct,
      path,
    );
  }
  const port = checkInteger("port", options.port ?? 0, 0, 65535);
  const host = numericHost(options.hostname, "0.0.0.0");
  checkNet(host, port, "listen");
  const bytes = encoder.encode(host);
  const flags = options.reusePort ? LISTEN_REUSE_PORT : 0;
  return new Listener(
    unwrap(
      fn.pageio_socket_listen(TRANSPORT_TCP, bytes, lengthOf(bytes), port, backlog, flags),
      "listen",
      netPermission(host, port),
    ),
    kConstruct,
  );
}

/** What a connect call needs: transport, address bytes, port, and what to say in errors. */
function connectTarget(options: ConnectOptions | NetAddr, syscall: string) {
  if (typeof options !== "object" || options === null) {
    throw new TypeError(`connect options must be an object, got ${describe(options)}`);
  }
  if ("path" in options && options.path !== undefined) {
    const path = checkUnixPath(options.path, syscall);
    return { transport: TRANSPORT_UNIX, bytes: encoder.encode(path), port: 0, path: shownPath(path) };
  }
  const port = checkInteger("port", (options as { port: unknown }).port, 1, 65535);
  const host = numericHost((options as { hostname?: string }).hostname, "127.0.0.1");
  checkNet(host, port, syscall);
  return { transport: TRANSPORT_TCP, bytes: encoder.encode(host), port, path: netPermission(host, port) };
}

/**
 * Connects to a TCP host and port (`hostname` defaults to "127.0.0.1") or a unix path, waiting on this thread
 * until the connection is made (up to `timeout` ms, no limit by default). Prefer `connectAsync` in servers.
 *
 * @example
 * ```ts
 * import { connect, listen } from "@pageio/pageio";
 * using listener = listen({ hostname: "127.0.0.1", port: 0 });
 * using socket = connect(listener.addr);
 * console.log(socket.remoteAddr); // the listener's address
 * ```
 */
export function connect(options: (ConnectOptions | NetAddr) & { timeout?: number }): Socket {
  const wait = options?.timeout === undefined ? WAIT_FOREVER : checkInteger("timeout", options.timeout, 1, 2 ** 31 - 1);
  const { transport, bytes, port, path } = connectTarget(options, "connect");
  const fd = unwrap(fn.pageio_socket_connect(transport, bytes, lengthOf(bytes), port, wait, out), "connect", path);
  return new Socket(fd, kConstruct);
}

/**
 * Connects without holding up the event loop: the connect is started, and the socket awaited until writable.
 *
 * @example
 * ```ts
 * import { connectAsync, listen } from "@pageio/pageio";
 * using listener = listen({ hostname: "127.0.0.1", port: 0 });
 * using socket = await connectAsync(listener.addr);
 * console.log(socket.closed); // false
 * ```
 */
export async function connectAsync(
  options: ConnectOptions | NetAddr,
  abort?: AbortSignal | AsyncOptions,
): Promise<Socket> {
  const { transport, bytes, port, path } = connectTarget(options, "connect");
  const signal = signalOf(abort, "connectAsync");
  let fd = fn.pageio_socket_connect(transport, bytes, lengthOf(bytes), port, 0, out);
  // A unix listener whose backlog is full refuses at once (EAGAIN), and no readiness says when it has room:
  // try again after a pause (1 ms, doubling up to 50), as the blocking connect does.
  for (let pause = 1; fd === -errno.EAGAIN && transport === TRANSPORT_UNIX; pause = Math.min(2 * pause, 50)) {
    await delay(pause, signal);
    fd = fn.pageio_socket_connect(transport, bytes, lengthOf(bytes), port, 0, out);
  }
  const socket = new Socket(unwrap(fd, "connect", path), kConstruct);
  if (out[0] === 0) return socket;
  try {
    for (;;) {
      await ready(socket.fd, "write", signal);
      unwrap(fn.pageio_socket_connect_result(socket.fd), "connect", path);
      if (connected(socket.fd)) return socket;
    }
  } catch (error) {
    socket.close();
    throw error;
  }
}

/**
 * Takes a stream socket opened elsewhere (e.g. Bun's `node:net` socket: `socket._handle.fd`) as a pageio
 * `Socket`. By default it works on a close-on-exec duplicate (`duplicate: false` takes over `fd` itself, which
 * the other owner must then not close); either way the socket becomes non-blocking. A listening socket is refused
 * (`EINVAL`), as is one that is no stream (`EPROTOTYPE`: UDP), and anything else (`ENOTSOCK`); so is taking over
 * (`duplicate: false`) a number pageio holds open already (`EBUSY`).
 *
 * @example
 * ```ts
 * import { adoptSocket, socketPair } from "@pageio/pageio";
 * const [a, b] = socketPair();
 * using socket = adoptSocket(a.fd);
 * a.close(); // the adopted copy stays open
 * console.log(socket.write([new Uint8Array(3)])); // 3
 * b.close();
 * ```
 */
export function adoptSocket(fd: number, options: { duplicate?: boolean } = {}): Socket {
  checkOptions(options, "adoptSocket");
  checkInteger("fd", fd, 0, 2 ** 31 - 1);
  const duplicate = options.duplicate !== false;
  const result = fn.pageio_socket_adopt(fd, duplicate ? 1 : 0);
  const refusal = ADOPT_REFUSALS.get(-result);
  if (refusal !== undefined) {
    const [code, why] = refusal;
    throw new PageIoError(code, `${code}: fd ${fd} ${why}`, { errno: -result, syscall: "adopt" });
  }
  return new Socket(unwrap(result, "adopt"), kConstruct, duplicate);
}

/** What adoptSocket refuses before taking anything over, by errno: the code and why, after "fd N". */
const ADOPT_REFUSALS = new Map<number, [string, string]>([
  [errno.EBUSY, ["EBUSY", "is open through pageio already: use that handle, or adopt a duplicate"]],
  [errno.EINVAL, ["EINVAL", "is a listening socket: adoptSocket takes a connected TCP or unix one"]],
  [errno.EPROTOTYPE, ["EPROTOTYPE", "is no stream socket (UDP, raw): adoptSocket takes a connected TCP or unix one"]],
]);

/** Whether a connect in progress has finished (a peer name exists only then). */
function connected(fd: number): boolean {
  const result = fn.pageio_socket_address(fd, 1, addressText, ADDRESS_TEXT_BYTES, out);
  if (result === -errno.ENOTCONN) return false;
  unwrap(result, "getpeername");
  return true;
}
