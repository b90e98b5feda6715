/**
 * Files opened by pageio: close-on-exec descriptors with an explicit close.
 * @module
 */
import { abi, errno, fn, native } from "../ffi/native.ts";
import { checkInteger, checkOptions, PageIoError, stateError, unwrap } from "./errors.ts";
import { forget, renumbered, untrack } from "./reactor.ts";

/**
 * `"r"` read; `"r+"` read and write; `"w"` write, create, truncate; `"w+"` read and write, create, truncate;
 * `"a"` append, create; `"wx+"` read and write, create a new file (`EEXIST` if one is there).
 */
export type FileMode = "r" | "r+" | "w" | "w+" | "a" | "wx+";
const modes: readonly FileMode[] = abi.enums.FileMode.values; // the index is the native mode

/** What a descriptor refers to. */
export type FileKind = "other" | "file" | "directory" | "character-device" | "block-device" | "fifo" | "socket";
const kinds: readonly FileKind[] = abi.enums.FileKind.values;
const { OpenFlags } = abi.flags;
const BLOCKING_NO = abi.enums.FdBlocking.values.indexOf("no");
const pairKinds = abi.enums.PairKind.values;

const encoder = new TextEncoder();
const statOut = new Float64Array(2);
/** A path's UTF-8 for the native open calls, which read it at once: one buffer, not a new array per open (an
 * array's memory outside the heap costs an allocation, and a free after a collection, per file a server opens). */
let pathBytes = new Uint8Array(1024);

/** Encodes `path` into `pathBytes`; returns its length in bytes. */
function encodePath(path: string): number {
  if (path.length * 3 > pathBytes.length) pathBytes = new Uint8Array(path.length * 3); // UTF-8: 3 bytes a unit at most
  return encoder.encodeInto(path, pathBytes).written;
}

/**
 * An open file descriptor owned by pageio.
 *
 * @example
 * ```ts
 * import { openFile } from "@pageio/pageio";
 * using file = openFile("README.md");
 * console.log(file.size() > 0); // true
 * ```
 */
export class FileHandle {
  #fd: number;
  /** The path it was opened with, if any (for error messages). */
  readonly path?: string;

  /** Wraps a descriptor; `close()` closes it. Prefer `openFile`. */
  constructor(fd: number, path?: string) {
    this.#fd = checkInteger("fd", fd, 0, 2 ** 31 - 1);
    if (path !== undefined) this.path = path;
    untrack(fd); // a socket that had this number was closed elsewhere: this file's waits must not take its path
  }

  /** The descriptor number; throws once closed. */
  get fd(): number {
    if (this.#fd < 0) throw stateError("ERR_CLOSED", `file${this.path ? ` '${this.path}'` : ""} is closed`, "fd");
    return this.#fd;
  }

  /** True once `close()` has run. */
  get closed(): boolean {
    return this.#fd < 0;
  }

  /** The file's size in bytes now. */
  size(): number {
    return stat(this.fd, this.path).size;
  }

  /** What the descriptor refers to (file, directory, fifo, socket…). */
  kind(): FileKind {
    return stat(this.fd, this.path).kind;
  }

  /**
   * Size and kind from one `fstat`, for code that needs both (a server checks the kind, then sends `size` bytes).
   *
   * @example
   * ```ts
   * import { openFile } from "@pageio/pageio";
   * using file = openFile("README.md");
   * const { kind, size } = file.stat();
   * console.log(kind, size > 0); // file true
   * ```
   */
  stat(): FileStat {
    return stat(this.fd, this.path);
  }

  /** Closes the descriptor; a second call does nothing. */
  close(): void {
    if (this.#fd < 0) return;
    const fd = this.#fd;
    this.#fd = -1;
    forget(fd); // a wait on it ends (ERR_CLOSED) before the number can name another file
    unwrap(fn.pageio_close(fd), "close", this.path);
  }

  /** Closes, as `close()` does, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** What `FileHandle.stat()` tells. */
export interface FileStat {
  /** Size in bytes (of a regular file; what the kernel reports for anything else). */
  size: number;
  /** What the descriptor refers to. */
  kind: FileKind;
}

/** Size and kind of an open descriptor. */
export function stat(fd: number, path?: string): FileStat {
  unwrap(fn.pageio_fstat(fd, statOut), "fstat", path);
  return { size: statOut[0], kind: kinds[statOut[1]] };
}

/** Options of `openFile`. */
export interface OpenOptions {
  /** Refuse a symbolic link as the last path component (`O_NOFOLLOW`: `ELOOP`). */
  noFollow?: boolean;
  /**
   * `true`: never block on this descriptor (`O_NONBLOCK`): writes that would wait return what they wrote.
   * By default a FIFO (or socket) is `O_NONBLOCK` so that async calls never need a thread, while the blocking
   * calls still wait, as on a `pipe()`'s ends; `false`: truly blocking, for a FIFO handed to another process
   * that expects it (async calls on it take a thread). Regular files are blocking unless `true`.
   */
  nonBlocking?: boolean;
}

/** What each open mode needs: Deno's read and write permissions, by mode index. */
const access: readonly { read: boolean; write: boolean }[] = [
  { read: true, write: false }, // r
  { read: true, write: true }, // r+
  { read: false, write: true }, // w
  { read: true, write: true }, // w+
  { read: false, write: true }, // a
  { read: true, write: true }, // wx+
];

/**
 * Opens `path` (close-on-exec) and returns its handle. Opening never waits: a FIFO with nobody at its other end
 * opens at once for reading (a PageReader's first read waits for a writer) and fails with `ENXIO` for writing.
 * On Deno the path must pass the `--allow-read`/`--allow-write` check `Deno.openSync` makes (else `EACCES`,
 * naming the flag).
 *
 * @example
 * ```ts
 * import { openFile } from "@pageio/pageio";
 * const file = openFile("README.md", "r");
 * console.log(file.fd >= 0); // true
 * file.close();
 * ```
 */
export function openFile(path: string | URL, mode: FileMode = "r", options: OpenOptions = {}): FileHandle {
  checkOptions(options, "openFile", ["noFollow", "nonBlocking"]);
  const p = toPath(path);
  const index = modes.indexOf(mode);
  if (index < 0) throw new TypeError(`mode must be one of ${modes.join(", ")}, got ${String(mode)}`);
  const { read, write } = access[index];
  if (read) checkAccess("read", p, "open");
  if (write) checkAccess("write", p, "open");
  const length = encodePath(p);
  // A FIFO (or socket) opened without `nonBlocking` stays O_NONBLOCK, its blocking calls waiting for readiness
  // as a `pipe()`'s do: an async call on it never blocks a thread (a terminated Worker's thread stayed in a
  // sendfile to a FIFO nobody read, holding its descriptors).
  const flags = (options.noFollow ? OpenFlags.bits.no_follow : 0) |
    (options.nonBlocking ? OpenFlags.bits.non_blocking : 0) |
    (options.nonBlocking === undefined ? OpenFlags.bits.pipes_wait_ready : 0);
  const fd = unwrap(fn.pageio_open(pathBytes, length, index, flags), "open", p);
  const handle = owned(new FileHandle(fd, p));
  if (options.nonBlocking === undefined) perhapsWaiting.add(handle);
  return handle;
}

/**
 * @internal A handle on a descriptor pageio just opened: it belongs to this thread, so it is closed when the
 * thread ends (a terminated Worker) if `close()` never ran, as the runtime's own files are.
 */
export function owned<T extends FileHandle>(handle: T): T {
  fn.pageio_fd_own(handle.fd);
  renumbered(handle.fd);
  return handle;
}

/**
 * @internal Throws unless the runtime's permissions let this program open `path` for `access` (Deno's
 * `--allow-read`/`--allow-write` scopes, asked as `Deno.openSync` would ask; Bun has none): FFI itself could
 * open anything. `EACCES` with a message naming the flag.
 */
export function checkAccess(access: "read" | "write", path: string, syscall: string): void {
  if (native.permitted({ name: access, path })) return;
  throw new PageIoError("EACCES", `EACCES: requires ${access} access to '${path}' (run deno with --allow-${access})`, {
    errno: errno.EACCES,
    syscall,
    path,
  });
}

/**
 * A path from a string or a `file:` URL; any other URL, or value, is a TypeError (a `http:` URL's
 * path is not a local file's).
 */
function toPath(path: unknown): string {
  if (typeof path === "string") return path;
  if (!(path instanceof URL)) throw new TypeError(`path must be a string or a file: URL, got ${describe(path)}`);
  const { protocol, hostname, pathname } = path; // read once
  if (protocol !== "file:") throw new TypeError(`only file: URLs name local files, got a ${protocol} URL`);
  if (hostname !== "" && hostname !== "localhost") {
    throw new TypeError(`a file: URL must name a local file, got host '${hostname}'`);
  }
  if (/%2f/i.test(pathname)) throw new TypeError("a file: URL path must not hold an encoded '/' (%2F)");
  return decodeURIComponent(pathname);
}

/**
 * Opens `path` read-only inside the directory `dir`, refusing any path that would resolve outside it: `..`
 * past the top, an absolute path, or a symbolic link leading out (`EXDEV`; on systems without Linux's
 * `openat2`, every symbolic link is refused with `ELOOP`). For serving files from a root directory.
 *
 * @example
 * ```ts
 * import { openBeneath, openFile } from "@pageio/pageio";
 * using root = openFile(".");
 * using readme = openBeneath(root, "README.md");
 * console.log(readme.size() > 0); // true
 * try {
 *   openBeneath(root, "../outside");
 * } catch (error) {
 *   console.log((error as { code: string }).code); // "EXDEV"
 * }
 * ```
 */
export function openBeneath(dir: FileHandle, path: string): FileHandle {
  if (!(dir instanceof FileHandle)) throw new TypeError(`dir must be a FileHandle, got ${describe(dir)}`);
  if (typeof path !== "string") throw new TypeError(`path must be a string, got ${describe(path)}`);
  const full = dir.path === undefined ? path : `${dir.path.replace(/\/+$/, "")}/${path}`;
  checkAccess("read", full, "openat2");
  const length = encodePath(path);
  const fd = fn.pageio_open_beneath(dir.fd, pathBytes, length);
  if (fd === -errno.EXDEV) { // the kernel's text for it, "invalid cross-device link", would mislead here
    throw new PageIoError("EXDEV", `EXDEV: '${path}' resolves outside its directory, openat2 '${full}'`, {
      errno: errno.EXDEV,
      syscall: "openat2",
      path: full,
    });
  }
  return owned(new FileHandle(unwrap(fd, "openat2", full), full));
}

/** A descriptor to operate on: a FileHandle (must be open) or a plain fd number from elsewhere. */
export type Target = FileHandle | number;

/** The fd of a target, checked. */
export function fdOf(target: Target): number {
  if (target instanceof FileHandle) return target.fd;
  if (typeof target === "number") return checkInteger("fd", target, 0, 2 ** 31 - 1);
  // Another library's file object (node:fs/promises has a FileHandle too): say what to pass instead.
  const fd = typeof target === "object" && target !== null ? (target as { fd?: unknown }).fd : undefined;
  const hint = typeof fd === "number"
    ? `: pass its fd (${fd}) to use that descriptor`
    : typeof target === "object" && target !== null
    ? ": pass a path, an fd number (1 for stdout), or a FileHandle from openFile() or pipe()"
    : "";
  throw new TypeError(`expected a pageio FileHandle or a file descriptor number, got ${describe(target)}${hint}`);
}

export function describe(value: unknown): string {
  return value === null ? "null" : typeof value === "object" ? (value.constructor?.name ?? "object") : typeof value;
}

const pairOut = new Float64Array(2);

/** Options of `pipe` and `socketPair`. */
export interface PairOptions {
  /**
   * By default both ends are `O_NONBLOCK` so that async calls never need a thread, while the blocking calls
   * (`writev`, `readv`, `flush`…) still wait as on a blocking descriptor. `true`: the blocking calls return
   * what they moved instead of waiting (EAGAIN). `false`: truly blocking descriptors, for an end handed to
   * another process that expects them (async calls on them take a thread).
   */
  nonBlocking?: boolean;
}

/** Handles that are non-blocking only for pageio's async forms: their blocking calls wait for readiness. */
const waiting = new WeakSet<FileHandle>();

/** @internal Whether blocking calls on `target` wait for readiness instead of returning on EAGAIN. */
export function waitsFor(target: Target): boolean {
  if (typeof target !== "object") return false;
  if (perhapsWaiting.delete(target) && fn.pageio_fd_blocking(target.fd) === BLOCKING_NO) waiting.add(target);
  return waiting.has(target);
}

/** Handles `openFile` opened as a FIFO's would be (non-blocking if it is one), not yet asked which they are. */
const perhapsWaiting = new WeakSet<FileHandle>();

function pairOf(options: PairOptions): [FileHandle, FileHandle] {
  const pair: [FileHandle, FileHandle] = [owned(new FileHandle(pairOut[0])), owned(new FileHandle(pairOut[1]))];
  if (options.nonBlocking === undefined) pair.forEach((end) => waiting.add(end));
  return pair;
}

/**
 * A pipe, as `[readEnd, writeEnd]`. `size` sets its capacity (Linux `F_SETPIPE_SZ`; the kernel rounds it up to
 * a power of two pages): a pipe as big as a gather write takes it in one call.
 *
 * @example
 * ```ts
 * import { pipe, readv, writev } from "@pageio/pageio";
 * const [readEnd, writeEnd] = pipe();
 * writev(writeEnd, [new TextEncoder().encode("through")]);
 * const bytes = new Uint8Array(7);
 * console.log(readv(readEnd, [bytes])); // 7
 * readEnd.close();
 * writeEnd.close();
 * ```
 */
export function pipe(options: PairOptions & { size?: number } = {}): [readEnd: FileHandle, writeEnd: FileHandle] {
  checkOptions(options, "pipe");
  const size = options.size === undefined ? undefined : checkInteger("size", options.size, 1, 2 ** 31 - 1);
  unwrap(fn.pageio_pair(pairKinds.indexOf("pipe"), options.nonBlocking === false ? 0 : 1, pairOut), "pipe2");
  const pair = pairOf(options);
  if (size !== undefined) {
    try {
      unwrap(fn.pageio_pipe_size(pair[1].fd, size), "fcntl(F_SETPIPE_SZ)");
    } catch (error) {
      pair.forEach((end) => end.close());
      throw error;
    }
  }
  return pair;
}

/**
 * A connected pair of unix stream sockets, each end both readable and writable.
 *
 * @example
 * ```ts
 * import { readv, socketPair, writev } from "@pageio/pageio";
 * const [a, b] = socketPair();
 * writev(a, [new TextEncoder().encode("hi")]);
 * console.log(readv(b, [new Uint8Array(2)])); // 2
 * a.close();
 * b.close();
 * ```
 */
export function socketPair(options: PairOptions = {}): [FileHandle, FileHandle] {
  checkOptions(options, "socketPair");
  unwrap(fn.pageio_pair(pairKinds.indexOf("socket"), options.nonBlocking === false ? 0 : 1, pairOut), "socketpair");
  return pairOf(options);
}
