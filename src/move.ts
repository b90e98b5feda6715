/**
 * Kernel-side moves of file spans (`copy_file_range` to a regular file,
 * `sendfile` to anything else): the bytes go from the source's page cache to
 * the target without crossing user space.
 * @module
 */
import { abi, errno, fn, native } from "../ffi/native.ts";
import { unwrap } from "./errors.ts";
import { stat } from "./file.ts";

const out = new Float64Array(1);
const kinds = abi.enums.MoveKind.values;
const KIND_COPY_FILE_RANGE = kinds.indexOf("copy_file_range");
const KIND_SENDFILE = kinds.indexOf("sendfile");

/** errnos meaning "not this way here" (the kernel, filesystem or descriptor pair refuses): fall back to a write. */
const REFUSALS = new Set(
  (["EINVAL", "EXDEV", "ENOSYS", "EOPNOTSUPP", "ENOTSUP", "EBADF", "ESPIPE", "EIO"] as const).map((name) =>
    errno[name]
  ),
);

/** How a target takes kernel moves (the native MoveKind), decided once per target per flush. */
export type MoveKind = number;

/** @internal The kind of kernel move that suits `fd`. */
export function moveKindFor(fd: number): MoveKind {
  return stat(fd).kind === "file" ? KIND_COPY_FILE_RANGE : KIND_SENDFILE;
}

/**
 * @internal Moves up to `length` bytes of `fdIn` from `offset` to `fdOut`. Returns the bytes moved, or
 * `null` when the kernel refuses this pair before moving anything (the caller writes them instead).
 * EAGAIN with nothing moved returns 0; other errors throw with `bytesTransferred`.
 */
export function moveSpan(kind: MoveKind, fdIn: number, offset: number, fdOut: number, length: number): number | null {
  return moveResult(fn.pageio_move(kind, fdIn, offset, fdOut, length, out), out[0], kind);
}

/** @internal `moveSpan` off the JS thread. */
export async function moveSpanAsync(
  kind: MoveKind,
  fdIn: number,
  offset: number,
  fdOut: number,
  length: number,
): Promise<number | null> {
  const moved = new Float64Array(1);
  return moveResult(await native.async.pageio_move(kind, fdIn, offset, fdOut, length, moved), moved[0], kind);
}

function moveResult(result: number, moved: number, kind: MoveKind): number | null {
  if (result >= 0) return result;
  if (moved === 0) {
    if (REFUSALS.has(-result)) return null;
    if (-result === errno.EAGAIN) return 0;
  }
  return unwrap(result, kind === KIND_SENDFILE ? "sendfile" : "copy_file_range", undefined, moved);
}
