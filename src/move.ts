/**
 * Kernel-side moves of file spans (`copy_file_range` to a regular file,
 * `sendfile` to anything else): the bytes go from the source's page cache to
 * the target without crossing user space.
 * @module
 */
import { fn } from "../ffi/native.ts";
import { errnoNamed, failedAfter, type Plan, type Wait, wouldBlock } from "./drive.ts";
import { unwrap } from "./errors.ts";
import { stat } from "./file.ts";

const KIND_COPY_FILE_RANGE = 0; // zig/src/kernel_move.zig Kind
const KIND_SENDFILE = 1;

/** errnos meaning "not this way here" (the kernel, filesystem or descriptor pair refuses): fall back to a write. */
const REFUSALS = new Set(
  ["EINVAL", "EXDEV", "ENOSYS", "EOPNOTSUPP", "ENOTSUP", "EBADF", "ESPIPE", "EIO"].map(errnoNamed),
);

/** How a target takes kernel moves, decided once per target per flush. */
export type MoveKind = typeof KIND_COPY_FILE_RANGE | typeof KIND_SENDFILE;

/** @internal The kind of kernel move that suits `fd`. */
export function moveKindFor(fd: number): MoveKind {
  return stat(fd).kind === "file" ? KIND_COPY_FILE_RANGE : KIND_SENDFILE;
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
      const moved = out[0];
      if (result < 0 && !wouldBlock(result, moved)) {
        if (total === 0 && moved === 0 && REFUSALS.has(-result)) return null;
        total += moved;
        unwrap(result, kind === KIND_SENDFILE ? "sendfile" : "copy_file_range", undefined, total);
      }
      total += moved;
      if (total >= length || result === 0) return total; // all moved, or the source ended
      if (!(yield WAIT_WRITE)) return total;
    }
  } catch (error) {
    throw failedAfter(error, total);
  }
}

const WAIT_WRITE: Wait = { wait: "write" };
