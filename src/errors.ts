/**
 * The one place where a native result becomes a thrown error, and where
 * arguments are checked before they reach native code.
 * @module
 */
import { describeErrno } from "../ffi/native.ts";

/**
 * An error from the OS (`code` is the errno name, `errno` its number) or from
 * pageio's own rules (`code` starts with `ERR_`, `errno` is 0).
 *
 * @example
 * ```ts
 * import { openFile, PageIoError } from "@pageio/pageio";
 * try {
 *   openFile("/no/such/file");
 * } catch (error) {
 *   console.log(error instanceof PageIoError && error.code); // "ENOENT"
 * }
 * ```
 */
export class PageIoError extends Error {
  /** `"ENOENT"`, `"EBADF"`… for OS errors; `"ERR_RELEASED"`, `"ERR_CLOSED"`… for pageio's own. */
  readonly code: string;
  /** The errno value, 0 when the error is not the OS's. */
  readonly errno: number;
  /** The system call or pageio operation that failed. */
  readonly syscall: string;
  /** The path involved, when there is one. */
  readonly path?: string;
  /** Bytes moved before a gather or scatter call failed. */
  readonly bytesTransferred?: number;

  /** An error with its code and details; pageio makes these, users match on `code`. */
  constructor(
    code: string,
    message: string,
    details: { errno?: number; syscall: string; path?: string; bytesTransferred?: number },
  ) {
    super(message);
    this.name = "PageIoError";
    this.code = code;
    this.errno = details.errno ?? 0;
    this.syscall = details.syscall;
    if (details.path !== undefined) this.path = details.path;
    if (details.bytesTransferred !== undefined) this.bytesTransferred = details.bytesTransferred;
  }
}

/** Returns a native result, or throws it as a PageIoError when it is `-errno`. */
export function unwrap(result: number, syscall: string, path?: string, bytesTransferred?: number): number {
  if (result >= 0) return result;
  const errno = -result;
  const [code, text] = describeErrno(errno);
  const where = path === undefined ? "" : ` '${path}'`;
  throw new PageIoError(code, `${code}: ${text.toLowerCase()}, ${syscall}${where}`, {
    errno,
    syscall,
    path,
    bytesTransferred,
  });
}

/**
 * `error` naming `path`, for an OS error from a call on what was opened from a path (a read or write, which
 * knows only the fd): the same code, errno, syscall and bytes moved. Anything else is returned as it is.
 */
export function withPath(error: unknown, path: string | undefined): unknown {
  if (path === undefined || !(error instanceof PageIoError) || error.errno === 0 || error.path !== undefined) {
    return error;
  }
  return new PageIoError(error.code, `${error.message} '${path}'`, {
    errno: error.errno,
    syscall: error.syscall,
    path,
    bytesTransferred: error.bytesTransferred,
  });
}

/** A use of something released or closed: a typed error, never a touch of freed memory. */
export function stateError(
  code: "ERR_RELEASED" | "ERR_CLOSED" | "ERR_POOL_EXHAUSTED" | "ERR_FILE_TRUNCATED" | "ERR_BUSY",
  message: string,
  syscall: string,
): PageIoError {
  return new PageIoError(code, message, { syscall });
}

/**
 * The error for memory the SIGBUS guard put zeros into, from the errno it recorded (`pageio_region_fault`):
 * `ERR_FILE_TRUNCATED` when the file was cut short under it, else the OS's code (`ENOSPC`: no room for a
 * page on its filesystem; `EIO`: a page could not be read).
 */
export function faultError(errno: number, what: string, operation: string, path?: string): PageIoError {
  const [code, text] = describeErrno(errno);
  if (code === "ENODATA") {
    return new PageIoError(
      "ERR_FILE_TRUNCATED",
      `the file behind this ${what} was truncated: reads past its new end gave zeros`,
      { syscall: operation, path },
    );
  }
  const message = `${code}: ${text.toLowerCase()}: a page of this ${what} could not be brought in, and reads from ` +
    `there gave zeros, ${operation}`;
  return new PageIoError(code, message, { errno, syscall: operation, path });
}

/** Checks that `value` is a whole number in [min, max]; names the value in the error. */
export function checkInteger(name: string, value: unknown, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== "number") throw new TypeError(`${name} must be a number, got ${typeof value}`);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${name} must be a whole number from ${min} to ${max}, got ${value}`);
  }
  return value;
}

/** Resolves an optional {offset, length} inside `size` bytes, or throws a RangeError naming both. */
export function checkRange(
  what: string,
  size: number,
  offset = 0,
  length?: number,
): { offset: number; length: number } {
  checkInteger(`${what} offset`, offset);
  if (offset > size) throw new RangeError(`${what} offset ${offset} is past the end of ${size} bytes`);
  const len = length === undefined ? size - offset : checkInteger(`${what} length`, length);
  if (offset + len > size) {
    throw new RangeError(`${what} offset ${offset} + length ${len} is past the end of ${size} bytes`);
  }
  return { offset, length: len };
}

/**
 * An async call's options: as `checkOptions`, and a `signal` given must be an AbortSignal. Returns the signal,
 * read once: a getter cannot give the check one value and the call another.
 */
export function checkAsyncOptions(options: unknown, what: string): AbortSignal | undefined {
  checkOptions(options, what);
  const signal = (options as { signal?: unknown } | undefined)?.signal;
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    const kind = signal === null
      ? "null"
      : typeof signal === "object"
      ? signal.constructor?.name ?? "object"
      : typeof signal;
    throw new TypeError(`${what} signal must be an AbortSignal, got ${kind}`);
  }
  return signal;
}

/** What a name that other file APIs use (Node's streams, fs.open) is called here. */
const otherNames: Record<string, string> = {
  start: "a byte range is { offset, length }",
  end: "a byte range is { offset, length } (length = end - start + 1)",
  flags: "a PageWriter appends with { append: true }; openFile takes its mode as the second argument",
  flag: "a PageWriter appends with { append: true }; openFile takes its mode as the second argument",
  encoding: "strings are written as UTF-8, and heads and chunks are bytes",
};

/**
 * Options must be an object when given (`undefined` takes the defaults): null or a number is a TypeError. With
 * `known`, a key that is none of them is a TypeError too: a misspelt or another API's option (Node's
 * `{ start, end }`, `{ flags: "a" }`) would otherwise be ignored, reading the whole file or truncating a log.
 */
export function checkOptions(options: unknown, what: string, known?: readonly string[]): void {
  if (options === undefined) return;
  if (typeof options !== "object" || options === null) {
    throw new TypeError(`${what} options must be an object, got ${options === null ? "null" : typeof options}`);
  }
  if (known === undefined) return;
  for (const key of Object.keys(options)) {
    if (known.includes(key)) continue;
    const hint = Object.hasOwn(otherNames, key) ? `: ${otherNames[key]}` : "";
    throw new TypeError(`${what} has no option "${key}" (its options: ${known.join(", ")})${hint}`);
  }
}

/** What an aborted operation rejects with: `ABORT_ERR`, the signal's reason as `cause`. */
export function abortError(reason: unknown): PageIoError {
  const error = new PageIoError("ABORT_ERR", "the operation was aborted", { syscall: "abort", bytesTransferred: 0 });
  (error as { cause?: unknown }).cause = reason;
  return error;
}
