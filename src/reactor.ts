/**
 * Readiness for non-blocking descriptors: one native wait (an epoll set in zig/src/poller.zig) shared by every
 * descriptor this JS isolate waits on. An operation tries its system call first; only one that would block
 * waits here, and a wake-up delivers every descriptor that became ready at once.
 *
 * How the wake-up reaches JS (`PAGEIO_REACTOR` forces one):
 * - `doorbell` (default on the main thread): the poller's thread queues ready fds and calls a thread-safe
 *   callback only when the queue goes from drained to non-empty; JS takes the whole batch with one synchronous
 *   call. No thread per wait, no hop per operation; the callback is ref'd only while something waits. A drain
 *   also takes what the kernel has ready. Once events come faster than rings (a busy server), the thread stops
 *   watching and JS drains again after it has handled each batch (`drainSoon`), until a drain finds nothing:
 *   the server then takes its events on its own thread, not from a thread woken for each.
 * - `call` (default in a Worker, see `inWorker`): one outstanding non-blocking `pageio_poller_wait` (Deno's FFI
 *   thread pool, Bun's worker) returns each batch; woken to return when nothing waits any more.
 * - `poll`: no poller (not Linux, or forced): each wait is a `poll(2)` off the JS thread, in short slices so a
 *   runtime with a bounded worker pool never starves a later wait.
 *
 * A descriptor whose owner forgets it before closing it (pageio's sockets: `track`) is registered once, edge-
 * triggered: it reports each time it turns ready, whether or not anything waits, and what no wait took is kept
 * here; a wait that finds it kept ends at once, and no wait costs a system call (`epoll_ctl`) of its own. Other
 * descriptors are armed oneshot per wait: a number closed elsewhere and opened again would otherwise still be
 * registered under the file it named before, or not at all.
 *
 * Before any of these, a wait may spin: poll the fd on the JS thread, without sleeping, for a few microseconds
 * (`PAGEIO_SPIN_US`: at most 50 by default, 0 turns it off). A peer that answers that quickly (a child echoing a
 * message) is then seen without this thread sleeping and being woken, which costs tens of microseconds where
 * cores sit idle (a virtual machine's halted CPU above all). It adapts per fd, as adaptive mutexes do: the budget
 * follows four times what its recent spins took; a spin that fails turns spinning off for the fd until a parked
 * wait ends quickly, after a back-off that doubles with each failure in a row. It never spins while another wait
 * is parked (a server's other connections would wait behind it), nor for more than `STREAK_MS` without the event
 * loop turning.
 *
 * Operations that complete at once resolve as microtasks, which alone would keep timers out for as long as data
 * keeps coming: once they (or deliveries back to back) have run for `TURN_MS`, the next waits for a 0 ms timeout,
 * so timers and the runtime's other callbacks get their turn (`turn`).
 * @module
 */
import { abi, errno, fn, native } from "../ffi/native.ts";
import type { NativeCallback } from "../ffi/symbols.ts";
import { abortError, PageIoError, stateError, unwrap } from "./errors.ts";
import { readEnv } from "./internal.ts";

/** What an operation waits for. */
export type Interest = "read" | "write";

/** Interest bits shared with zig/src/poller.zig (ffi/abi.ts). */
const READ = abi.constants.INTEREST_READ.value;
const WRITE = abi.constants.INTEREST_WRITE.value;
/**
 * Reported once no more bytes will come (the peer's FIN, a hang-up, an error): every later read wait on a
 * registered fd ends at once. Not a write wait: a peer that half-closed may still read, slowly, and a writer on a
 * full socket must park (a full hang-up or an error reports writable itself, and the write then fails).
 */
const HUP = abi.constants.READY_HUP.value;
/** Limit: ready events taken per native call (the native queue holds more; JS comes back for them). */
const BATCH_MAX = 256;
/** Added to what a drain returns while JS drains on its own (zig/src/poller.zig `drain_again`). */
const DRAIN_AGAIN = abi.constants.DRAIN_AGAIN.value;
/** The poll(2) fallback waits in slices this long, so it rechecks aborts and frees its worker now and then. */
const POLL_SLICE_MS = 20;

type Mode = "doorbell" | "call" | "poll";

/** Default limit of one spin, in ns (the native side caps any value at 100 µs). */
const SPIN_NS_DEFAULT = 50_000;
/** A parked wait that ended within this many ns suggests a spin would have seen it: the fd may spin again. */
const SPIN_PROBE_NS = 250_000;
/** Limit: ms of back-to-back spins before a wait parks anyway, so timers and other I/O get the event loop. */
const STREAK_MS = 1;
/** Limit: how many parked waits an fd sits out after repeated failed spins (2^misses, up to this). */
const SPIN_BACKOFF_MAX = 1024;

/**
 * Default pause before a read of a stream that trickles in (ns; `PAGEIO_SETTLE_US`); the native side caps it at
 * 100 µs. Off: with 20 µs pauses, 256 MiB from a child's stdout took 20-30% longer on both runtimes (fewer, bigger
 * reads, but the writer waited on the pipe's lock through each big copy).
 */
const SETTLE_NS_DEFAULT = 0;
/** Reads in a row that took under a quarter of what they asked before the next one pauses first. */
const TRICKLE_READS = 2;
/** A read that took this many bytes marks its fd a bulk stream for the next `BULK_READS` reads. */
const BULK_BYTES = 64 * 1024;
/** Reads after one of `BULK_BYTES` during which the fd counts as a bulk stream (`settleAfterWait`). */
const BULK_READS = 16;

/** The shortest budget a spin gets once it adapts to quick answers (ns). */
const SPIN_NS_MIN = 10_000;

/**
 * Limit: ms that operations completing at once, or deliveries arriving back to back, run without timers getting
 * a turn. Past it, they wait for one (a 0 ms timeout, which the runtimes clamp to 1-4 ms when nested).
 */
const TURN_MS = 5;

/**
 * How one fd spins: `limit` ns (0: not now), adapted to four times `typical`, a moving average of how long
 * its spins took to see it ready; after `misses` failed spins in a row it sits out `skip` parked waits.
 * `parkedNs` is the moving average of its parked waits (-1: none yet): where the scheduler keeps the peer on
 * this thread's CPU a parked wait can be the quicker one (a spinning thread pushes the peer to another CPU),
 * so when parking has been quicker the fd parks, and every `SAMPLE_EVERY`th wait tries the other way.
 */
interface Spin {
  limit: number;
  typical: number;
  misses: number;
  skip: number;
  parkedNs: number;
  waits: number;
}

/** One wait in this many takes the way (spin or park) that has lately been the slower, to measure it again. */
const SAMPLE_EVERY = 16;

interface Waiter {
  readonly bit: number;
  resolve(): void;
  reject(reason: unknown): void;
}

interface FdState {
  readonly waiters: Set<Waiter>;
  /** Bits armed in the poller and not yet reported (oneshot). */
  armed: number;
  /** Registered for good, edge-triggered (a tracked fd); the state then lives until `forget`. */
  registered: boolean;
  /** Tracked fds: bits reported ready that no wait has taken yet. */
  ready: number;
}

function requestedMode(): Mode | undefined {
  const value = readEnv("PAGEIO_REACTOR");
  if (value === undefined || value === "") return undefined;
  if (value === "doorbell" || value === "call" || value === "poll") return value;
  throw new RangeError(`PAGEIO_REACTOR must be "doorbell", "call" or "poll", got "${value}"`);
}

/** A limit in ns from `name` (integer microseconds, 0 to 100; 0: off), else `fallback`. */
function microseconds(name: string, fallback: number): number {
  const value = readEnv(name);
  if (value === undefined || value === "") return fallback;
  const us = Number(value); // digits only: Number() would take " " as 0 (off) and "0x10" as 16
  if (!/^[0-9]+$/.test(value) || us > 100) {
    throw new RangeError(`${name} must be an integer from 0 to 100 (microseconds), got "${value}"`);
  }
  return us * 1000;
}

const fds = new Map<number, FdState>();
/** Descriptors whose owner calls `forget` before closing them: these wait edge-triggered (`track`). */
const tracked = new Set<number>();
const spins = new Map<number, Spin>();
// Read once, at load: a bad value fails at once on both runtimes, not part-way through a stream (or never,
// when that runtime happened not to spin or pause before the stream ended).
const requested = requestedMode();
const spinMax = microseconds("PAGEIO_SPIN_US", SPIN_NS_DEFAULT);
const settleNs = microseconds("PAGEIO_SETTLE_US", SETTLE_NS_DEFAULT);
/** When the current run of spins began, with no wait parked since (-1: none). */
let streakSince = -1;
const spinCounts = { spins: 0, hits: 0, spunNs: 0, parks: 0, pauses: 0 };
const events = new Int32Array(2 * BATCH_MAX);
let waiting = 0;
let mode: Mode | undefined;
let poller = -1;
let doorbell: NativeCallback | undefined;
let calling = false;
/** The 0 ms timeout that marks a turn of the event loop's timers, and when the current wait for one began. */
let beat: ReturnType<typeof setTimeout> | undefined;
let beatSince = 0;
/** What waits for that turn: continuations of operations, and a drain the doorbell asked for. */
let afterBeat: (() => void)[] = [];
let drainAfterBeat = false;

function onBeat(): void {
  beat = undefined;
  const due = afterBeat;
  afterBeat = [];
  for (const resume of due) resume();
  if (drainAfterBeat) {
    drainAfterBeat = false;
    drain();
  }
}

/** Calls of `overdue` between two looks at the clock while a beat is pending (a clock read per completion cost
 * ~3% of a busy server's time on Bun). */
const CLOCK_EVERY = 8;
let sinceClock = 0;

/** True when timers have had no turn for `TURN_MS`: the caller waits for `onBeat` (which it sets going otherwise). */
function overdue(): boolean {
  if (beat === undefined) {
    beatSince = performance.now();
    beat = setTimeout(onBeat, 0);
    sinceClock = 0;
    return false;
  }
  if (++sinceClock < CLOCK_EVERY) return false;
  sinceClock = 0;
  return performance.now() - beatSince > TURN_MS;
}

/**
 * @internal An operation that completed without waiting ends with this: usually nothing, but a promise for the
 * next turn of the timers once operations have completed at once for `TURN_MS` in a row (microtasks alone would
 * keep every timer and every other callback out for as long as the data keeps coming).
 */
export function turn(): Promise<void> | undefined {
  if (!overdue()) return undefined;
  return new Promise<void>((resolve) => afterBeat.push(resolve));
}

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
  mode = requested ?? (inWorker() ? "call" : "doorbell");
  if (mode === "doorbell" && inWorker()) mode = "call"; // forced doorbell: still never in a Worker
  if (mode === "poll") return mode;
  if (mode === "doorbell") doorbell = native.callback("doorbell", () => (rings++, drain()));
  const id = fn.pageio_poller_open(doorbell?.pointer ?? null);
  if (id < 0) {
    // No epoll here (macOS) or none left: every wait falls back to poll(2).
    doorbell?.close();
    doorbell = undefined;
    return mode = "poll";
  }
  doorbell?.unref();
  poller = id;
  if (mode === "doorbell" && native.runtime === "deno") {
    for (const event of ["error", "unhandledrejection"]) globalThis.addEventListener(event, hush);
  }
  return mode;
}

/**
 * Deno ends a program on an uncaught exception or rejection without its event loop's end, and a ring then calls
 * into an isolate being torn down (SIGSEGV): the thread rings no more from here. A program that goes on (a
 * listener prevented the end) is rung again at its next turn, and drains what was queued meanwhile.
 */
function hush(): void {
  if (waiting === 0) return; // the thread rings only while something waits
  fn.pageio_poller_want(poller, 0);
  setTimeout(() => {
    if (waiting > 0 && fn.pageio_poller_want(poller, 1) > 0) drain();
  }, 0);
}

/** The doorbell: everything the poller queued, in as few calls as it takes. */
function drain(): void {
  // Deliveries back to back (a busy server) would keep timers out where the runtime runs these callbacks
  // first: past the limit the queue waits for the timers' turn (the doorbell rings again only once drained).
  if (overdue()) {
    drainAfterBeat = true;
    return;
  }
  let n: number;
  let again = false;
  do {
    n = fn.pageio_poller_drain(poller, events, BATCH_MAX);
    if (n < 0) return;
    again = n >= DRAIN_AGAIN;
    n %= DRAIN_AGAIN;
    deliver(n);
  } while (n === BATCH_MAX);
  // Busy: the poller's thread waits for nothing until a drain finds none, so drain again once what was delivered
  // has run (a busy server then takes its events itself, not from a thread woken for each).
  if (again) drainSoon();
  if (unanswered) {
    unanswered = false;
    doorbell!.unref();
  }
}

/** A drain that found events asked for another once they have been handled (`drainSoon`). */
let drainDue = false;

/** Drains again once what the last drain delivered has run: the callbacks it resumed, and what they resumed. */
function drainSoon(): void {
  if (drainDue) return;
  drainDue = true;
  setImmediate(() => {
    drainDue = false;
    if (waiting > 0) drain(); // else the thread waits in the kernel already (pageio_poller_want turned it back)
  });
}

function deliver(count: number): void {
  streakSince = -1; // the poller reported: the event loop has turned since the spins began
  for (let i = 0; i < count; i++) {
    const fd = events[2 * i];
    const ready = events[2 * i + 1];
    const state = fds.get(fd);
    if (state === undefined) continue; // forgotten meanwhile
    if (state.registered) {
      // What a waiter takes is used up (it retries its call); the rest is kept for the next wait, and a
      // hang-up for every read wait to come.
      let kept = ready;
      for (const waiter of state.waiters) {
        if (waiter.bit & ready) {
          kept &= ~waiter.bit | HUP;
          waiter.resolve();
        }
      }
      state.ready |= kept;
      continue;
    }
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

/**
 * Doorbell mode: a ring JS had not drained when its last wait ended. The ring holds the poller's thread inside
 * the isolate until JS runs it (Deno), so the event loop stays alive until then: exiting under it crashes.
 */
let unanswered = false;

function hold(): void {
  if (waiting++ > 0) return;
  if (mode === "doorbell") {
    if (unanswered) unanswered = false; // its ref is the waits' now
    else doorbell!.ref();
    // The thread rings only while something waits: what it queued meanwhile is drained here.
    if (fn.pageio_poller_want(poller, 1) > 0) queueMicrotask(drain);
  } else if (mode === "call" && !calling) void callLoop();
}

let idleCheck: ReturnType<typeof setTimeout> | undefined;

function letGo(): void {
  if (--waiting > 0) return;
  if (mode === "doorbell") {
    if (fn.pageio_poller_want(poller, 0) > 0) unanswered = true;
    else doorbell!.unref();
  } else if (mode === "call") {
    // The outstanding wait keeps the process alive: end it once nothing waits, but not between an operation's
    // wake-up and its next wait (a ping-pong would pay a new call per round).
    idleCheck ??= setTimeout(() => {
      idleCheck = undefined;
      if (waiting === 0) fn.pageio_poller_wake(poller);
    }, 0);
  }
}

/**
 * Arms what the fd's waiters want and is not armed yet; false when the fd is always ready (a regular file).
 * `adding`: the bit of the one waiter just added, the others' being armed already (a scan of every waiter
 * per new one made 10^5 waits on one fd take minutes to start).
 */
function arm(fd: number, state: FdState, adding?: number): boolean {
  if (state.registered) return true;
  if (tracked.has(fd)) {
    const result = fn.pageio_poller_register(poller, fd); // reports at once what is ready already
    if (result === -errno.EPERM) return false;
    unwrap(result, "epoll_ctl");
    state.registered = true;
    return true;
  }
  let want = 0;
  if (adding !== undefined) want = state.armed | adding;
  else for (const waiter of state.waiters) want |= waiter.bit;
  if (want === 0 || (want & ~state.armed) === 0) return true;
  const result = fn.pageio_poller_arm(poller, fd, want);
  if (result === -errno.EPERM) return false;
  unwrap(result, "epoll_ctl");
  state.armed = want;
  return true;
}

/**
 * Spins on `fd` if it may: true when it turned ready within its budget. Errors are left to the wait and the
 * system call after it, which report them in full.
 */
function spin(fd: number, bit: number): boolean {
  const max = spinMax;
  if (max === 0 || waiting > 0) return false;
  let state = spins.get(fd);
  if (state === undefined) {
    spins.set(fd, state = { limit: max, typical: max / 4, misses: 0, skip: 0, parkedNs: -1, waits: 0 });
  }
  if (state.limit === 0) return false;
  const now = performance.now();
  if (streakSince < 0) streakSince = now;
  else if (now - streakSince > STREAK_MS) return false; // park this one: the event loop turns meanwhile
  const parkQuicker = state.parkedNs >= 0 && state.parkedNs < state.typical;
  if (parkQuicker !== (++state.waits % SAMPLE_EVERY === 0)) return false;
  spinCounts.spins++;
  const result = fn.pageio_spin_fd(fd, bit, state.limit);
  if (result >= 0) {
    spinCounts.hits++;
    spinCounts.spunNs += result;
    state.typical += (result - state.typical) / 8;
    state.limit = Math.min(max, Math.max(SPIN_NS_MIN, Math.round(4 * state.typical)));
    state.misses = 0;
    return true;
  }
  if (result !== -errno.ETIMEDOUT) {
    spins.delete(fd); // not a pollable fd (closed, say): the wait reports it
    return false;
  }
  spinCounts.spunNs += state.limit;
  state.limit = 0;
  state.misses++;
  state.skip = Math.min(SPIN_BACKOFF_MAX, 2 ** state.misses);
  return false;
}

/** A parked wait on `fd` ended after `ns`: one that ended quickly lets the fd spin again (after its back-off). */
function parked(fd: number, ns: number): void {
  const state = spins.get(fd);
  if (state === undefined) return;
  state.parkedNs = state.parkedNs < 0 ? ns : state.parkedNs + (ns - state.parkedNs) / 4;
  if (state.limit !== 0) return;
  if (state.skip > 0) state.skip--;
  else if (ns <= SPIN_PROBE_NS) {
    state.limit = spinMax;
    state.typical = spinMax / 4;
  }
}

/** Per fd: reads in a row that took under a quarter of what they asked, with no EAGAIN between. */
const trickles = new Map<number, number>();
/** Per fd: reads left before it no longer counts as a bulk stream (one that gave `BULK_BYTES` in a read). */
const bulk = new Map<number, number>();

/**
 * Before an asynchronous read of `bytes` from non-blocking `fd`: when its last reads each took a small piece
 * of what was there to take (a writer adding 8 KiB at a time to a pipe read in 64 KiB pages), pauses once for
 * up to `PAGEIO_SETTLE_US` µs (default 0: never) unless that much is waiting already, so that one read takes what
 * would have been several. Each read costs a system call and its JS; fewer of them leave the CPU to the
 * writer. A stream read only after it was ready (EAGAIN, then a wait) never pauses, nor does a reply.
 */
export function settleBeforeRead(fd: number, bytes: number): void {
  if ((trickles.get(fd) ?? 0) < TRICKLE_READS) return;
  const ns = settleNs;
  if (ns === 0) return;
  spinCounts.pauses++;
  if (fn.pageio_settle_fd(fd, Math.min(bytes, 2 ** 31), ns) < 0) trickles.delete(fd);
}

/**
 * Before the first read of non-blocking `fd` once a wait for it to turn readable ended: on a bulk stream (one
 * of its last `BULK_READS` reads took `BULK_BYTES` or more), pauses once as `settleBeforeRead` does unless
 * that much (or `bytes`, if less) is waiting already. Its writer ended the wait with its first write into an
 * empty pipe, and a read at once takes that one write: a child writing 4 KiB at a time was read 4 KiB per
 * wait, each wait a wake-up of this thread that, on a CPU shared with the writer, also put the writer off.
 * Paused, the read takes what the writer adds meanwhile. A stream of small replies never pauses, nor does
 * one whose wait ends with a page's worth waiting.
 */
export function settleAfterWait(fd: number, bytes: number): void {
  if (bulk.size === 0 || waiting > 0 || !bulk.has(fd)) return;
  const ns = settleNs;
  if (ns === 0) return;
  spinCounts.pauses++;
  if (fn.pageio_settle_fd(fd, Math.min(bytes, BULK_BYTES), ns) < 0) bulk.delete(fd);
}

/** After an asynchronous read from non-blocking `fd` asked for `bytes` and returned `result`. */
export function readDone(fd: number, bytes: number, result: number): void {
  if (result >= BULK_BYTES) bulk.set(fd, BULK_READS);
  else if (bulk.size !== 0 && result !== -errno.EAGAIN) {
    const left = (bulk.get(fd) ?? 0) - 1;
    if (left > 0) bulk.set(fd, left);
    else bulk.delete(fd);
  }
  if (result > 0 && result < bytes / 4) trickles.set(fd, (trickles.get(fd) ?? 0) + 1);
  else if (trickles.size !== 0) trickles.delete(fd); // took a lot, would block, ended or failed
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
  const bit = interest === "read" ? READ : WRITE;
  const how = mode ?? start();
  const known = fds.get(fd);
  if (known !== undefined && known.ready & (bit === READ ? bit | HUP : bit)) {
    // Reported since the caller's call failed (or before: then it is one spurious wake). A hang-up stays: a
    // read that took the last bytes before it has not seen the end yet, and no further edge will come.
    known.ready &= ~bit;
    return turn() ?? Promise.resolve();
  }
  if (spin(fd, bit)) return turn() ?? Promise.resolve();
  spinCounts.parks++;
  const began = performance.now();
  const done = () => parked(fd, (performance.now() - began) * 1e6);
  if (how === "poll") return pollWait(fd, bit, signal).then(done);
  return new Promise<void>((resolve, reject) => {
    let state = fds.get(fd);
    if (state === undefined) fds.set(fd, state = { waiters: new Set(), armed: 0, registered: false, ready: 0 });
    const settle = (then: () => void) => {
      if (!state!.waiters.delete(waiter)) return;
      signal?.removeEventListener("abort", onAbort);
      if (state!.waiters.size === 0 && fds.get(fd) === state && state!.armed === 0 && !state!.registered) {
        fds.delete(fd);
      }
      letGo();
      then();
    };
    const waiter: Waiter = {
      bit,
      resolve: () => settle(() => (done(), resolve())),
      reject: (reason) => settle(() => reject(reason)),
    };
    const onAbort = () => waiter.reject(signal!.reason);
    state.waiters.add(waiter);
    hold();
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      if (!arm(fd, state, bit)) waiter.resolve();
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
  ended(fd);
  const error = () => stateError("ERR_CLOSED", `fd ${fd} was closed while an operation waited on it`, "wait");
  for (const abort of pollWaiters.get(fd) ?? []) abort(error());
  spins.delete(fd);
  trickles.delete(fd);
  bulk.delete(fd);
  tracked.delete(fd);
  writeTails.delete(fd); // writes still queued end with ERR_CLOSED; a new file under the number waits for none
  const state = fds.get(fd);
  if (state === undefined) return;
  fds.delete(fd);
  if (state.armed !== 0 || state.registered) fn.pageio_poller_forget(poller, fd);
  // One error each: an operation's planner adds its own bytesTransferred to the error it gets.
  for (const waiter of [...state.waiters]) waiter.reject(error());
}

/** Per descriptor, a promise that settles once every async write queued on it so far has. */
const writeTails = new Map<number, Promise<unknown>>();

/**
 * Per descriptor number, how many times pageio saw it stop naming its file: closed through pageio (`forget`), or
 * given to a new file (`renumbered`). A plain number outlives its file; this tells an operation made under
 * one count not to go on under the next.
 */
const ends = new Map<number, number>();

/** @internal How many times `fd` stopped naming its file so far (see `ends`). */
export function endsOf(fd: number): number {
  return ends.get(fd) ?? 0;
}

function ended(fd: number): void {
  ends.set(fd, (ends.get(fd) ?? 0) + 1);
}

/**
 * @internal For what works on plain fd number `fd` later than it was made for it (a write queued behind
 * another, a reader or writer given the number): a check, made before each use, that throws `ERR_CLOSED` if
 * pageio closed the number or gave it to another file since. Without it, a write queued on a pipe's
 * number went into the file opened next under that number, and a read queued there returned that file's bytes.
 */
export function sameFileCheck(fd: number, what: string): () => void {
  const count = endsOf(fd);
  return () => {
    if (endsOf(fd) === count) return;
    throw new PageIoError(
      "ERR_CLOSED",
      `fd ${fd} was closed, or given to another file, since this ${what} was made for it`,
      {
        syscall: what,
        bytesTransferred: 0,
      },
    );
  };
}

/**
 * @internal Runs `write`, an async write on `fd`, once the ones queued on `fd` before it have settled (at once
 * when none is pending): concurrent async writes to one pipe or socket go out whole and in call order, never
 * interleaved, whichever form made them (`writevAsync`, a brigade's or writer's flush, a socket's writes). One
 * that fails or is aborted lets the next go. An abort while queued rejects with `ABORT_ERR`, nothing written; a
 * close of the number meanwhile (by pageio: `forget`, `renumbered`) with `ERR_CLOSED`, nothing written.
 */
export function inWriteTurn<T>(fd: number, signal: AbortSignal | undefined, write: () => Promise<T>): Promise<T> {
  const before = writeTails.get(fd);
  const check = before === undefined ? undefined : sameFileCheck(fd, "write");
  const result = before === undefined ? write() : settledFirst(before, signal).then(() => (check!(), write()));
  const tail: Promise<unknown> = before === undefined ? result.catch(() => {}) : Promise.allSettled([before, result]);
  writeTails.set(fd, tail);
  tail.then(() => {
    if (writeTails.get(fd) === tail) writeTails.delete(fd);
  });
  return result;
}

/** Resolves once `before` has settled; an abort first rejects with `ABORT_ERR`. */
function settledFirst(before: Promise<unknown>, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(abortError(signal!.reason));
    if (signal?.aborted) return onAbort();
    signal?.addEventListener("abort", onAbort, { once: true });
    before.then(() => {
      signal?.removeEventListener("abort", onAbort);
      if (signal?.aborted) onAbort();
      else resolve();
    });
  });
}

/**
 * @internal The kernel just gave `fd` to a new file: whatever still waits under the number waited on a file
 * closed behind pageio's back. Those waits end with `ERR_CLOSED`, as `forget` ends them: left, the note that
 * the number was armed kept every wait on the new file from arming (epoll dropped the arm with the old file),
 * and an old wait woken by the new file would have read its bytes.
 */
export function renumbered(fd: number): void {
  if (fds.has(fd) || pollWaiters.has(fd) || writeTails.has(fd)) forget(fd);
  else ended(fd); // an operation between two calls on the number (off the JS thread, say) must not go on here
}

/**
 * @internal A new handle names `fd`: if a tracked socket had that number, it was closed without `forget` (by its
 * foreign owner, or by number), and its registration is stale: without this, a wait on the new file (a pipe) took
 * the registered path, which arms nothing, and never ended.
 */
export function untrack(fd: number): void {
  if (!tracked.delete(fd)) return;
  const stale = fds.get(fd);
  if (stale !== undefined && stale.waiters.size === 0) fds.delete(fd);
}

/**
 * @internal `fd`, just opened by pageio, is closed only after `forget(fd)` (a `Socket`): its waits may use one
 * edge-triggered registration for its whole life instead of an arm per wait.
 */
export function track(fd: number): void {
  tracked.add(fd);
  const stale = fds.get(fd);
  if (stale !== undefined && stale.waiters.size === 0) fds.delete(fd); // a number closed without forget: anew
}

/** @internal Whether `fd` is registered edge-triggered, and the bits kept for it (tests). */
export function edgeState(fd: number): { registered: boolean; ready: number } | undefined {
  const state = fds.get(fd);
  return state === undefined ? undefined : { registered: state.registered, ready: state.ready };
}

/** @internal How waits reach JS in this process: `doorbell`, `call` or `poll`. */
export function reactorMode(): Mode {
  return mode ?? start();
}

/** @internal Spins so far, how many saw the fd ready, the ns they took, waits that parked, reads that paused. */
export function spinStats(): { spins: number; hits: number; spunNs: number; parks: number; pauses: number } {
  return { ...spinCounts };
}

/** @internal Descriptors with waiters (tests prove nothing is left behind). */
export function waitingCount(): number {
  return waiting;
}

let rings = 0;

/** @internal Times the poller's thread rang the doorbell (tests: never while nothing waits). */
export function ringCount(): number {
  return rings;
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
        streakSince = -1;
        if (ready !== 0) finish();
        else slice();
      }, (error) => finish(error, true));
    };
    slice();
  });
}
