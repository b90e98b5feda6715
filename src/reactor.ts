/**
 * Readiness for non-blocking descriptors: one native wait (an epoll set in zig/src/poller.zig) shared by every
 * descriptor this JS isolate waits on. An operation tries its system call first; only one that would block
 * waits here, and a wake-up delivers every descriptor that became ready at once.
 *
 * How the wake-up reaches JS (`PAGEIO_REACTOR` forces one):
 * - `doorbell` (default on the main thread): the poller's thread queues ready fds and calls a thread-safe
 *   callback only when the queue goes from drained to non-empty; JS takes the whole batch with one synchronous
 *   call. No thread per wait, no hop per operation; the callback is ref'd only while something waits.
 * - `call` (default in a Worker, see `inWorker`): one outstanding non-blocking `pageio_poller_wait` (Deno's FFI
 *   thread pool, Bun's worker) returns each batch; woken to return when nothing waits any more.
 * - `poll`: no poller (not Linux, or forced): each wait is a `poll(2)` off the JS thread, in short slices so a
 *   runtime with a bounded worker pool never starves a later wait.
 * @module
 */
import { abi, errno, fn, native } from "../ffi/native.ts";
import type { NativeCallback } from "../ffi/symbols.ts";
import { stateError, unwrap } from "./errors.ts";

declare const process: { env: Record<string, string | undefined> };

/** What an operation waits for. */
export type Interest = "read" | "write";

/** Interest bits shared with zig/src/poller.zig (ffi/abi.ts). */
const READ = abi.constants.INTEREST_READ.value;
const WRITE = abi.constants.INTEREST_WRITE.value;
/** Limit: ready events taken per native call (the native queue holds more; JS comes back for them). */
const BATCH_MAX = 256;
/** The poll(2) fallback waits in slices this long, so it rechecks aborts and frees its worker now and then. */
const POLL_SLICE_MS = 20;

type Mode = "doorbell" | "call" | "poll";

interface Waiter {
  readonly bit: number;
  resolve(): void;
  reject(reason: unknown): void;
}

interface FdState {
  readonly waiters: Set<Waiter>;
  /** Bits armed in the poller and not yet reported (oneshot). */
  armed: number;
}

function requestedMode(): Mode | undefined {
  let value: string | undefined;
  try {
    value = native.runtime === "deno" ? Deno.env.get("PAGEIO_REACTOR") : process.env.PAGEIO_REACTOR;
  } catch {
    return undefined; // Deno without --allow-env: the default
  }
  if (value === undefined || value === "") return undefined;
  if (value === "doorbell" || value === "call" || value === "poll") return value;
  throw new RangeError(`PAGEIO_REACTOR must be "doorbell", "call" or "poll", got "${value}"`);
}

const fds = new Map<number, FdState>();
const events = new Int32Array(2 * BATCH_MAX);
let waiting = 0;
let mode: Mode | undefined;
let poller = -1;
let doorbell: NativeCallback | undefined;
let calling = false;

/**
 * Whether this is a Worker's thread. A Worker can be terminated at any moment, and neither runtime tells FFI
 * code when its isolate goes: a poller thread ringing a doorbell then calls into a freed isolate and the whole
 * process crashes. A Worker's waits use the call mode, whose outstanding call completes harmlessly into nothing.
 */
function inWorker(): boolean {
  const scope = (globalThis as { WorkerGlobalScope?: abstract new () => unknown }).WorkerGlobalScope;
  if (typeof scope === "function" && globalThis instanceof scope) return true; // Deno
  return native.runtime === "bun" && !(globalThis as unknown as { Bun: { isMainThread: boolean } }).Bun.isMainThread;
}

function start(): Mode {
  mode = requestedMode() ?? (inWorker() ? "call" : "doorbell");
  if (mode === "doorbell" && inWorker()) mode = "call"; // forced doorbell: still never in a Worker
  if (mode === "poll") return mode;
  if (mode === "doorbell") doorbell = native.callback("doorbell", drain);
  const id = fn.pageio_poller_open(doorbell?.pointer ?? null);
  if (id < 0) {
    // No epoll here (macOS) or none left: every wait falls back to poll(2).
    doorbell?.close();
    doorbell = undefined;
    return mode = "poll";
  }
  doorbell?.unref();
  poller = id;
  return mode;
}

/** The doorbell: everything the poller queued, in as few calls as it takes. */
function drain(): void {
  let n: number;
  do {
    n = fn.pageio_poller_drain(poller, events, BATCH_MAX);
    if (n < 0) return;
    deliver(n);
  } while (n === BATCH_MAX);
}

function deliver(count: number): void {
  for (let i = 0; i < count; i++) {
    const fd = events[2 * i];
    const ready = events[2 * i + 1];
    const state = fds.get(fd);
    if (state === undefined) continue; // forgotten meanwhile
    state.armed = 0;
    for (const waiter of state.waiters) {
      if (waiter.bit & ready) waiter.resolve();
    }
    if (state.waiters.size === 0) fds.delete(fd);
    else arm(fd, state);
  }
}

/** Call mode: one outstanding wait while anything waits. */
async function callLoop(): Promise<void> {
  calling = true;
  try {
    while (waiting > 0) {
      const n = await native.async.pageio_poller_wait(poller, events, BATCH_MAX, -1);
      if (n < 0) unwrap(n, "epoll_wait");
      deliver(n);
    }
  } finally {
    calling = false;
  }
}

function hold(): void {
  if (waiting++ > 0) return;
  if (mode === "doorbell") doorbell!.ref();
  else if (mode === "call" && !calling) void callLoop();
}

let idleCheck: ReturnType<typeof setTimeout> | undefined;

function letGo(): void {
  if (--waiting > 0) return;
  if (mode === "doorbell") doorbell!.unref();
  // The outstanding wait keeps the process alive: end it once nothing waits, but not between an operation's
  // wake-up and its next wait (a ping-pong would pay a new call per round).
  else if (mode === "call") {
    idleCheck ??= setTimeout(() => {
      idleCheck = undefined;
      if (waiting === 0) fn.pageio_poller_wake(poller);
    }, 0);
  }
}

/** Arms what the fd's waiters want and is not armed yet; false when the fd is always ready (a regular file). */
function arm(fd: number, state: FdState): boolean {
  let want = 0;
  for (const waiter of state.waiters) want |= waiter.bit;
  if (want === 0 || (want & ~state.armed) === 0) return true;
  const result = fn.pageio_poller_arm(poller, fd, want);
  if (result === -errno.EPERM) return false;
  unwrap(result, "epoll_ctl");
  state.armed = want;
  return true;
}

/**
 * Resolves once `fd` is ready for `interest` (or has hung up or failed: the next system call says which);
 * rejects with `signal.reason` on abort, or with `ERR_CLOSED` when `forget(fd)` is called first. A regular
 * file is always ready. Spurious wake-ups are possible: retry the system call, and wait again on `EAGAIN`.
 */
export function waitReady(fd: number, interest: Interest, signal?: AbortSignal): Promise<void> {
  if (interest !== "read" && interest !== "write") {
    return Promise.reject(new TypeError(`interest must be "read" or "write", got ${String(interest)}`));
  }
  if (signal?.aborted) return Promise.reject(signal.reason);
  if ((mode ?? start()) === "poll") return pollWait(fd, interest === "read" ? READ : WRITE, signal);
  return new Promise<void>((resolve, reject) => {
    let state = fds.get(fd);
    if (state === undefined) fds.set(fd, state = { waiters: new Set(), armed: 0 });
    const settle = (then: () => void) => {
      if (!state!.waiters.delete(waiter)) return;
      signal?.removeEventListener("abort", onAbort);
      if (state!.waiters.size === 0 && fds.get(fd) === state && state!.armed === 0) fds.delete(fd);
      letGo();
      then();
    };
    const waiter: Waiter = {
      bit: interest === "read" ? READ : WRITE,
      resolve: () => settle(resolve),
      reject: (reason) => settle(() => reject(reason)),
    };
    const onAbort = () => waiter.reject(signal!.reason);
    state.waiters.add(waiter);
    hold();
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      if (!arm(fd, state)) waiter.resolve();
    } catch (error) {
      waiter.reject(error);
    }
  });
}

/**
 * Drops `fd` from the reactor: its waiters reject with `ERR_CLOSED`. Call it before closing a descriptor that may
 * be waited on, so a wait never outlives the number it was for (the next `open` may reuse it).
 */
export function forget(fd: number): void {
  const error = () => stateError("ERR_CLOSED", `fd ${fd} was closed while an operation waited on it`, "wait");
  for (const abort of pollWaiters.get(fd) ?? []) abort(error());
  const state = fds.get(fd);
  if (state === undefined) return;
  fds.delete(fd);
  if (state.armed !== 0) fn.pageio_poller_forget(poller, fd);
  const reason = error();
  for (const waiter of [...state.waiters]) waiter.reject(reason);
}

/** @internal How waits reach JS in this process: `doorbell`, `call` or `poll`. */
export function reactorMode(): Mode {
  return mode ?? start();
}

/** @internal Descriptors with waiters (tests prove nothing is left behind). */
export function waitingCount(): number {
  return waiting;
}

// The poll(2) fallback: per fd, how to end its waits early (forget).
const pollWaiters = new Map<number, Set<(reason: unknown) => void>>();

function pollWait(fd: number, bit: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let done = false;
    let set = pollWaiters.get(fd);
    if (set === undefined) pollWaiters.set(fd, set = new Set());
    const finish = (error?: unknown, failed = false) => {
      if (done) return;
      done = true;
      set!.delete(end);
      if (set!.size === 0 && pollWaiters.get(fd) === set) pollWaiters.delete(fd);
      signal?.removeEventListener("abort", onAbort);
      letGo();
      if (failed) reject(error);
      else resolve();
    };
    const end = (reason: unknown) => finish(reason, true);
    const onAbort = () => finish(signal!.reason, true);
    set.add(end);
    hold();
    signal?.addEventListener("abort", onAbort, { once: true });
    // A slice ends the native wait now and then even when nothing happens: what was aborted or forgotten
    // meanwhile frees its thread within a slice.
    const slice = (): void => {
      if (done) return;
      native.async.pageio_wait_fd(fd, bit, POLL_SLICE_MS).then((ready) => {
        if (done) return;
        if (ready < 0) {
          try {
            unwrap(ready, "poll");
          } catch (error) {
            return finish(error, true);
          }
        }
        if (ready !== 0) finish();
        else slice();
      }, (error) => finish(error, true));
    };
    slice();
  });
}
