/**
 * Kernel-side moves of file spans (`copy_file_range` to a regular file,
 * `sendfile` to anything else): the bytes go from the source's page cache to
 * the target without crossing user space.
 * @module
 */
import { abi, errno, fn } from "../ffi/native.ts";
import { failedAfter, type Plan, type Wait, wouldBlock } from "./drive.ts";
import { PageIoError, unwrap } from "./errors.ts";
import { stat } from "./file.ts";

const kinds = abi.enums.MoveKind.values;
/** @internal The native MoveKind values. */
export const KIND_COPY_FILE_RANGE: number = kinds.indexOf("copy_file_range");
export const KIND_SENDFILE: number = kinds.indexOf("sendfile");

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
  // One call, as the planner driven by runSync would make it, without a generator and its arrays per call: a
  // server sends a small file per request. What it returns or throws is the planner's (`moved`).
  const result = fn.pageio_move(kind, fdIn, offset, fdOut, length, spanOut);
  if (result >= 0) return result; // all moved, a short move (the socket is full), or the source's end
  return moved(kind, result, spanOut[0], 0, offset, length, fdIn);
}

/** What `moveSpan` passes to the native call for the bytes moved (read at once after it: one per thread). */
const spanOut = new Float64Array(1);

/**
 * What a failed move means, `total` bytes moved by earlier calls and `bytes` by this one: 0 for nothing moved
 * as the target would block, null for a refusal before anything moved (the caller writes instead); else it
 * throws, with `bytesTransferred`.
 */
function moved(
  kind: MoveKind,
  result: number,
  bytes: number,
  total: number,
  offset: number,
  length: number,
  fdIn: number,
): 0 | null {
  if (wouldBlock(result, bytes)) return 0;
  if (total === 0 && bytes === 0 && REFUSALS.has(-result)) return null;
  total += bytes;
  const syscall = kind === KIND_SENDFILE ? "sendfile" : "copy_file_range";
  if (-result === errno.ENODATA) {
    // The kernel's own text ("no data available") does not say which end was met. A span that starts past the end
    // moved nothing: the file is shorter than its offset, so its size now says how much of it there was.
    let there = offset + total;
    try {
      there = Math.min(there, stat(fdIn).size);
    } catch { /* no size to be had: what the move saw */ }
    throw new PageIoError(
      "ENODATA",
      `ENODATA: the file ends before byte ${offset + length} (cut short, or a length past its end): ` +
        `${there} bytes of it were there, ${syscall}`,
      { errno: -result, syscall, bytesTransferred: total },
    );
  }
  return unwrap(result, syscall, undefined, total) as never;
}

/**
 * @internal The planner of a kernel move of up to `length` bytes of `fdIn` from `offset` to `fdOut`: the bytes
 * moved, or `null` when the kernel refuses this pair before moving anything (the caller writes them instead).
 * A short move (the target would block) waits and goes on; the source's end stops it; other errors throw with
 * `bytesTransferred`.
 */
export function* movePlan(
  kind: MoveKind,
  fdIn: number,
  offset: number,
  fdOut: number,
  length: number,
): Plan<number | null> {
  const out = new Float64Array(1);
  let total = 0;
  try {
    while (true) {
      const at = offset + total, left = length - total;
      const run = () => fn.pageio_move(kind, fdIn, at, fdOut, left, out);
      const args = [kind, fdIn, at, fdOut, left, out];
      const result = (yield { name: "pageio_move", args, run, interest: "write", bytes: left }) as number;
      const before = total;
      total += out[0]; // before `moved` throws: the catch below reports it
      if (result < 0 && moved(kind, result, out[0], before, offset, length, fdIn) === null) return null;
      if (total >= length || result === 0) return total; // all moved, or the source ended
      if (!(yield WAIT_WRITE)) return total;
    }
  } catch (error) {
    throw failedAfter(error, total);
  }
}

const WAIT_WRITE: Wait = { wait: "write" };
