/**
 * Files opened by pageio: close-on-exec descriptors with an explicit close.
 * @module
 */
import { fn } from "../ffi/native.ts";
import { checkInteger, stateError, unwrap } from "./errors.ts";
import { forget } from "./reactor.ts";

/**
 * `"r"` read; `"r+"` read and write; `"w"` write, create, truncate; `"w+"` read and write, create, truncate;
 * `"a"` append, create; `"wx+"` read and write, create a new file (`EEXIST` if one is there).
 */
export type FileMode = "r" | "r+" | "w" | "w+" | "a" | "wx+";
const modes: readonly FileMode[] = ["r", "r+", "w", "w+", "a", "wx+"]; // indexes are zig/src/file.zig Mode

/** What a descriptor refers to. */
export type FileKind = "other" | "file" | "directory" | "character-device" | "block-device" | "fifo" | "socket";
const kinds: readonly FileKind[] = ["other", "file", "directory", "character-device", "block-device", "fifo", "socket"];

const encoder = new TextEncoder();
const statOut = new Float64Array(2);

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

/** Size and kind of an open descriptor. */
export function stat(fd: number, path?: string): { size: number; kind: FileKind } {
  unwrap(fn.pageio_fstat(fd, statOut), "fstat", path);
  return { size: statOut[0], kind: kinds[statOut[1]] };
}

/** Options of `openFile`. */
export interface OpenOptions {
  /** Refuse a symbolic link as the last path component (`O_NOFOLLOW`: `ELOOP`). */
  noFollow?: boolean;
  /** Never block on this descriptor (`O_NONBLOCK`): writes that would wait return what they wrote. */
  nonBlocking?: boolean;
}

/**
 * Opens `path` (close-on-exec) and returns its handle.
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
  const p = path instanceof URL ? decodeURIComponent(path.pathname) : path;
  if (typeof p !== "string") throw new TypeError(`path must be a string or URL, got ${typeof path}`);
  const index = modes.indexOf(mode);
  if (index < 0) throw new TypeError(`mode must be one of ${modes.join(", ")}, got ${String(mode)}`);
  const bytes = encoder.encode(p);
  const flags = (options.noFollow ? 1 : 0) | (options.nonBlocking ? 2 : 0);
  const fd = unwrap(fn.pageio_open(bytes, bytes.length, index, flags), "open", p);
  return new FileHandle(fd, p);
}

/** A descriptor to operate on: a FileHandle (must be open) or a plain fd number from elsewhere. */
export type Target = FileHandle | number;

/** The fd of a target, checked. */
export function fdOf(target: Target): number {
  if (target instanceof FileHandle) return target.fd;
  if (typeof target === "number") return checkInteger("fd", target, 0, 2 ** 31 - 1);
  throw new TypeError(`expected a FileHandle or a file descriptor number, got ${describe(target)}`);
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
  return typeof target === "object" && waiting.has(target);
}

function pairOf(options: PairOptions): [FileHandle, FileHandle] {
  const pair: [FileHandle, FileHandle] = [new FileHandle(pairOut[0]), new FileHandle(pairOut[1])];
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
  const size = options.size === undefined ? undefined : checkInteger("size", options.size, 1, 2 ** 31 - 1);
  unwrap(fn.pageio_pair(0, options.nonBlocking === false ? 0 : 1, pairOut), "pipe2");
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
  unwrap(fn.pageio_pair(1, options.nonBlocking === false ? 0 : 1, pairOut), "socketpair");
  return pairOf(options);
}
