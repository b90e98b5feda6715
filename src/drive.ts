/**
 * One planner, two drivers. An operation's planner is a generator that decides every system call (which one,
 * over which chunks, how a short one is resumed) and yields what it needs next: a `Call`, answered with the
 * native result, or a `Wait` when the descriptor would block, answered with whether to go on. The drivers
 * differ only in how they wait:
 * - `runSync` makes each call at once and answers a wait with "stop": a non-blocking descriptor returns what
 *   moved so far, as the blocking calls always have.
 * - `runAsync` makes each call on the JS thread too (a non-blocking descriptor or a regular file never holds
 *   it up), waits on the reactor when the descriptor would block, and takes the runtime's thread only for a
 *   blocking pipe or socket that someone else opened. An abort ends the wait at once and rejects with the
 *   bytes moved so far.
 * @module
 */
import { abi, errno, fn, native } from "../ffi/native.ts";
import type { BlockingName } from "../ffi/symbols.ts";
import { abortError, type PageIoError, stateError, unwrap } from "./errors.ts";
import { FileHandle, type Target } from "./file.ts";
import { endsOf, type Interest, readDone, settleAfterWait, settleBeforeRead, turn, waitReady } from "./reactor.ts";
import { readEnv } from "./internal.ts";

/** A system call the planner wants made: the native symbol and its arguments, and the fd it may wait on. */
export interface Call {
  readonly wait?: undefined;
  /** The native symbol, and its arguments for a call off the JS thread. */
  readonly name: BlockingName;
  readonly args: readonly unknown[];
  /** The same call made directly (a spread call would miss the runtimes' FFI fast paths). */
  run(): number;
  /** What the call waits for on a blocking descriptor, and how many bytes it moves at most. */
  readonly interest?: Interest;
  readonly bytes?: number;
  /**
   * After a wait for a blocking descriptor, in which user code ran: throws if memory the call names is gone
   * (an array transferred away, a head released), as the planner's own checks after its waits do.
   */
  check?(): void;
  /**
   * Before the call goes off the JS thread, where it runs on while user code does: makes what it names the
   * call's own (copies of arrays passed by address, its heads' pages held); returns what lets go of them.
   */
  hold?(): () => void;
}

/**
 * The descriptor would block: wait until it is ready for `wait`, then go on (async) or stop (sync). Or, for
 * a wait that only a native call can make (a futex in shared memory), that call: made at once by the sync
 * driver, off the JS thread by the async one; answered with its result.
 */
export interface Wait {
  readonly wait: Interest | Call;
}

/** A planner: yields calls and waits, returns the operation's result. */
export type Plan<T> = Generator<Call | Wait, T, number | boolean>;

/** Options every asynchronous form takes. */
export interface AsyncOptions {
  /** Ends the operation early: it rejects with `ABORT_ERR` and `bytesTransferred`, its stream consistent. */
  signal?: AbortSignal;
}

/** A native result meaning "nothing moved, it would block". */
export function wouldBlock(result: number, moved: number): boolean {
  return result === -errno.EAGAIN && moved === 0;
}

const BLOCKING_NO = abi.enums.FdBlocking.values.indexOf("no");
const BLOCKING_MAY_WAIT = abi.enums.FdBlocking.values.indexOf("may_wait");
const BLOCKING_DEVICE = abi.enums.FdBlocking.values.indexOf("device");

const READ = abi.constants.INTEREST_READ.value;
const WRITE = abi.constants.INTEREST_WRITE.value;

/** Forces the thread path for every async call (`PAGEIO_ASYNC=thread`), to test the fallback. */
const threadAlways = readEnv("PAGEIO_ASYNC") === "thread";

/**
 * Runs a planner with each call made at once. A wait is answered "stop", or, when `waits` (a descriptor that
 * pageio made non-blocking only for its async forms), by blocking in poll(2) as a blocking descriptor would.
 */
export function runSync<T>(plan: Plan<T>, fd = -1, waits = false): T {
  let step = plan.next();
  while (!step.done) {
    const next = step.value;
    if (next.wait === undefined) step = plan.next(next.run());
    else if (typeof next.wait === "object") step = plan.next(next.wait.run());
    else if (!waits) step = plan.next(false);
    else {
      const ready = fn.pageio_wait_fd(fd, next.wait === "read" ? READ : WRITE, -1);
      step = ready < 0 ? plan.throw(errorOf(ready, "poll")) : plan.next(true);
    }
  }
  return step.value;
}

function errorOf(result: number, syscall: string): unknown {
  try {
    unwrap(result, syscall);
  } catch (error) {
    return error;
  }
}

/**
 * Runs a planner without holding up the event loop. `fd` is the descriptor it works on; its arrays stay
 * referenced by the planner until this settles, so nothing passed by address is collected meanwhile.
 */
export async function runAsync<T>(
  target: Target | null,
  fd: number,
  plan: Plan<T>,
  signal?: AbortSignal,
  keep?: unknown,
): Promise<T> {
  const offThread = native.async as unknown as Record<string, (...args: unknown[]) => Promise<number>>;
  let blocking: number | undefined; // the fd's FdBlocking, asked once per operation
  let woke = false; // the last step waited for the fd to turn readable
  // A plain number: closed by pageio or given to another file between two calls (a wait, a call off the JS
  // thread), the rest must not go there. A FileHandle says so itself.
  const handle = target instanceof FileHandle;
  const ends = handle || fd < 0 ? 0 : endsOf(fd);
  let step = plan.next();
  while (!step.done) {
    const next = step.value;
    let answer: number | boolean;
    try {
      if (signal?.aborted) throw signal.reason;
      // Closed while this waited: its number may name another file by now.
      if (handle ? (target as FileHandle).closed : fd >= 0 && endsOf(fd) !== ends) throw closedError(fd);
      if (typeof next.wait === "object") answer = await offThread[next.wait.name](...next.wait.args);
      else if (next.wait !== undefined) {
        await waitReady(fd, next.wait, signal);
        woke = next.wait === "read";
        answer = true;
      } else {
        blocking ??= fd < 0 ? 0 : fn.pageio_fd_blocking(fd);
        if (blocking === BLOCKING_NO && next.interest === "read" && !threadAlways) {
          const bytes = next.bytes ?? 0;
          if (woke) settleAfterWait(fd, bytes);
          else settleBeforeRead(fd, bytes);
          woke = false;
          readDone(fd, bytes, answer = next.run());
        } else if (blocking !== BLOCKING_MAY_WAIT && blocking !== BLOCKING_DEVICE && !threadAlways) answer = next.run();
        else answer = await blockingCall(fd, next, blocking === BLOCKING_DEVICE, signal, offThread);
      }
    } catch (error) {
      step = plan.throw(signal?.aborted && error === signal.reason ? abortError(error) : error);
      continue;
    }
    step = plan.next(answer);
  }
  const pause = turn(); // done at once for a while: timers get their turn first
  if (pause !== undefined) await pause;
  held = keep; // the arrays a call took by address stay reachable until here
  return step.value;
}
// deno-lint-ignore no-unused-vars
let held: unknown;

function closedError(fd: number): PageIoError {
  return stateError("ERR_CLOSED", `fd ${fd} was closed while an operation was in flight on it`, "async");
}

/** Limit: a write this small to a ready pipe or socket goes in whole (PIPE_BUF), so it never blocks. */
const SMALL_WRITE_BYTES = 4096;

/**
 * A call on a blocking descriptor someone else opened: it waits (abortably) on the reactor until the fd is
 * ready; then a read, a write small enough to fit, or anything on a character device (ready means it takes
 * the call) is made on the JS thread, a big write to a pipe or socket on a thread. (A second reader of the
 * same descriptor could still take the bytes between the two: then the read waits.)
 */
async function blockingCall(
  fd: number,
  call: Call,
  device: boolean,
  signal: AbortSignal | undefined,
  offThread: Record<string, (...args: unknown[]) => Promise<number>>,
): Promise<number> {
  if (call.interest !== undefined && !threadAlways) {
    if (fn.pageio_wait_fd(fd, call.interest === "read" ? READ : WRITE, 0) === 0) {
      await waitReady(fd, call.interest, signal);
      call.check?.(); // the caller's code ran meanwhile: a read into freed memory crashed Bun
    }
    if (device || call.interest === "read" || (call.bytes ?? Infinity) <= SMALL_WRITE_BYTES) return call.run();
  }
  // Off the JS thread the caller's code runs during the call: a head it released had its page's next owner's
  // bytes written, an array it transferred away freed memory read or written.
  const release = call.hold?.();
  try {
    return await offThread[call.name](...call.args);
  } finally {
    release?.();
  }
}

/** An operation's planner passes every error through this: `bytesTransferred` counts all of its steps. */
export function failedAfter(error: unknown, bytes: number): unknown {
  // Any error: a TypeError for an array detached or shrunk while the call waited follows bytes already moved.
  if (error instanceof Error && (error as { bytesTransferred?: number }).bytesTransferred !== bytes) {
    Object.defineProperty(error, "bytesTransferred", { value: bytes, enumerable: true, writable: true });
  }
  return error;
}
