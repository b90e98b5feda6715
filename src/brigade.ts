/**
 * A brigade: an ordered, append-only queue of heads (and byte arrays) that
 * leaves in gather writes. It owns what it holds: written heads are released.
 * @module
 */
import { BEHIND_IOV_MAX, fn, IOV_MAX } from "../ffi/native.ts";
import { checkAsyncOptions, stateError } from "./errors.ts";
import { type AsyncOptions, type Plan, runAsync, runSync } from "./drive.ts";
import { describe, fdOf, type Target, waitsFor } from "./file.ts";
import { type Chunk, gatherPlan, isChunk, isDetached, PackedList, shared, viewOf } from "./gather.ts";
import { headInternals, PageHead } from "./head.ts";
import { inWriteTurn } from "./reactor.ts";
import type { Lender } from "./lend.ts";
import { lengthOf, ownCall } from "./internal.ts";
import { KIND_COPY_FILE_RANGE, KIND_SENDFILE, type MoveKind, moveKindFor, movePlan } from "./move.ts";

/** What goes out next: a run of file spans for the kernel, of lendable heads for a pipe, or of anything. */
type Step = { span?: { fd: number; offset: number }; lend?: true; chunks: number; bytes: number };

let setLender: (brigade: Brigade, lender: Lender) => void;

/** @internal A PageWriter's brigade lends to `lender`'s pipe. */
export function lendTo(brigade: Brigade, lender: Lender): void {
  setLender(brigade, lender);
}

/**
 * @internal Hands the whole queue of a PageWriter's brigade to the library's write-behind thread, for the
 * regular file `fd`: the job's id, or 0 when it cannot take it (anything but heads into memory, more than
 * BEHIND_IOV_MAX of them, a flush in progress, no job to be had now): write it the usual way then. The brigade
 * must stay as it is, its heads unreleased, until `pageio_behind_wait` has returned for that id (module-private
 * for that reason: called on a brigade whose heads someone then releases, the thread would read freed pages).
 */
export let writeBehind: (brigade: Brigade, fd: number) => number;
/** @internal Drops the front `written` bytes, as writing them does (a write-behind job that stopped short). */
export let consumeWritten: (brigade: Brigade, written: number) => void;
/** @internal Moves every chunk of `from` to the end of `into`, in order, leaving `from` empty. */
export let takeAll: (into: Brigade, from: Brigade) => void;
/**
 * @internal How the last flush wrote file spans: 1 by kernel move, 0 from memory (the target refused kernel
 * moves), -1 it met none.
 */
export let spansMoved: (brigade: Brigade) => number;

/**
 * An ordered queue of heads and byte arrays that leaves in gather writes
 * (APR's brigade). It owns what it holds: fully written heads are released,
 * a partly written one is trimmed in place (one another brigade holds too goes on as a slice).
 *
 * @example
 * ```ts
 * import { tmpdir } from "node:os";
 * import { Brigade, openFile, PagePool } from "@pageio/pageio";
 * using pool = new PagePool();
 * using out = openFile(`${tmpdir()}/pageio-brigade-${process.pid}.bin`, "w"); // Deno and Bun alike
 * const page = pool.acquire();
 * page.bytes.set(new TextEncoder().encode("body"));
 * const brigade = new Brigade();
 * brigade.append(page.head(0, 4));
 * brigade.prepend(new TextEncoder().encode("head "));
 * page.release();
 * console.log(brigade.flush(out), brigade.count); // 9 0
 * ```
 */
export class Brigade {
  #chunks: Chunk[] = [];
  // Each chunk's length when queued (heads: as trimmed since), read once through private fields or the
  // intrinsic getter: byteLength stays exact whatever happens to a queued array's buffer.
  #lengths: number[] = [];
  #start = 0;
  #byteLength = 0;
  #busy = false; // an asynchronous flush owns the front of the queue
  // Set by a PageWriter on a pipe (lendTo): heads only it holds are lent to the pipe, not copied. Private: a
  // look-alike lender set from outside would lend pages and let them be reused in place under the pipe's reader.
  #lender: Lender | null = null;
  #spansMoved = -1;
  static {
    spansMoved = (brigade) => brigade.#spansMoved;
    setLender = (brigade, lender) => brigade.#lender = lender;
    writeBehind = (brigade, fd) => brigade.#writeBehind(fd);
    consumeWritten = (brigade, written) => brigade.#consume(written, brigade.count, null, false);
    takeAll = (into, from) => into.#takeAll(from);
  }

  #writeBehind(fd: number): number {
    const count = this.count;
    if (this.#busy || this.#lender !== null || count === 0 || count > BEHIND_IOV_MAX) return 0;
    for (let i = this.#start; i < this.#chunks.length; i++) {
      const chunk = this.#chunks[i];
      if (!isHead(chunk) || fileSpan(chunk) !== null) return 0;
    }
    const packed = shared.pack(this.#chunks, this.#start, this.#chunks.length, this.#lengths);
    const id = fn.pageio_behind_submit(fd, packed.list, packed.listBytes, packed.count);
    return id > 0 ? id : 0;
  }

  #takeAll(from: Brigade): void {
    if (this.#busy || from.#busy) throw stateError("ERR_BUSY", "the brigade is being flushed asynchronously", "take");
    for (let i = from.#start; i < from.#chunks.length; i++) {
      this.#chunks.push(from.#chunks[i]);
      this.#lengths.push(from.#lengths[i]);
    }
    this.#byteLength += from.#byteLength;
    from.#chunks.length = from.#lengths.length = 0;
    from.#start = from.#byteLength = 0;
  }

  /**
   * Queues chunks at the end; the brigade takes one reference of each head and releases it once written (a head
   * whose references are all queued already is ERR_BUSY: `retain()` it once for each further queue).
   */
  append(...chunks: Chunk[]): this {
    const lengths = lengthsOf(chunks); // checks them all before queuing any
    for (let i = 0; i < chunks.length; i++) {
      this.#chunks.push(chunks[i]);
      this.#lengths.push(lengths[i]);
      this.#byteLength += lengths[i];
    }
    return this;
  }

  /** Queues chunks at the front, in the order given (a header before a body). */
  prepend(...chunks: Chunk[]): this {
    if (this.#busy) throw stateError("ERR_BUSY", "cannot prepend while the brigade is being flushed", "prepend");
    const lengths = lengthsOf(chunks);
    this.#chunks.splice(this.#start, 0, ...chunks);
    this.#lengths.splice(this.#start, 0, ...lengths);
    for (const length of lengths) this.#byteLength += length;
    return this;
  }

  /** Bytes queued. */
  get byteLength(): number {
    return this.#byteLength;
  }

  /** Chunks queued. */
  get count(): number {
    return this.#chunks.length - this.#start;
  }

  /**
   * One gather system call with up to IOV_MAX chunks. Chunks fully written are
   * released; a partly written one is trimmed in place. Returns bytes written
   * (0 when a non-blocking target would block).
   */
  writeTo(target: Target): number {
    return this.#flushSync(target, Math.min(this.count, IOV_MAX), 1);
  }

  /** Writes until the brigade is empty (or a non-blocking target would block); returns bytes written. */
  flush(target: Target): number {
    return this.#flushSync(target, this.count, 0);
  }

  /**
   * Writes the whole queue without holding up the event loop (gather writes, kernel moves and lends, in
   * order, each tried at once and waiting on the shared readiness wait only when the target would block).
   * Heads stay queued, untouched, until their bytes are out. While it runs, `append` works; `prepend`,
   * `writeTo`, `flush`, `flushAsync` and `release` throw `ERR_BUSY` (and take nothing). An abort rejects with
   * `ABORT_ERR` and `bytesTransferred`; what was written is gone from the brigade, the rest stays queued.
   * Made while another async write to `target` is pending (`writevAsync`, a socket's `writeAsync`, another
   * brigade's flush), it starts once that one settles: each goes out whole, in call order.
   */
  async flushAsync(target: Target, options: AsyncOptions = {}): Promise<number> {
    const signal = checkAsyncOptions(options, "flushAsync");
    const fd = fdOf(target);
    this.#enter("flushAsync");
    try {
      return await inWriteTurn(fd, signal, () => runAsync(target, fd, this.#plan(fd, Infinity, 0, true), signal));
    } finally {
      this.#busy = false;
    }
  }

  #flushSync(target: Target, count: number, callsMax: number): number {
    const fd = fdOf(target);
    if (this.#busy) throw stateError("ERR_BUSY", "the brigade is being flushed asynchronously", "flush");
    return runSync(this.#plan(fd, count, callsMax, false), fd, waitsFor(target));
  }

  /**
   * The planner of every flush: up to `count` chunks from the front, runs of memory chunks in gather calls (or
   * lent to a pipe), file spans (heads of a PageReader's windows) by the kernel, in order. `callsMax` 1 stops
   * after one system call's worth. `held`: for the asynchronous driver, each step packs into a list of its
   * own that holds its chunks until the step is done (the synchronous one shares one list), and moves file
   * spans from a duplicate of their descriptor.
   */
  *#plan(fd: number, count: number, callsMax: number, held: boolean): Plan<number> {
    let total = 0;
    let left = count;
    const kind: { move?: MoveKind | null } = {};
    this.#spansMoved = -1;
    const lender = this.#lenderFor(fd);
    for (
      let step = this.#nextStep(fd, left, kind, lender);
      step !== null;
      step = this.#nextStep(fd, left, kind, lender)
    ) {
      try {
        let moved: number | null;
        if (step.span !== undefined) {
          const { span, chunks, bytes } = step;
          // The async driver runs other code between the move's calls (or a thread makes them): the reader may
          // close its file meanwhile, and the number then name a file opened since. A duplicate stays this file.
          const source = held ? fn.pageio_dup(span.fd) : span.fd;
          if (source < 0) { // no descriptor to be had (EMFILE): the spans go from memory
            kind.move = null;
            this.#spansMoved = 0;
            continue;
          }
          try {
            moved = yield* this.#attempt(chunks, movePlan(kind.move!, source, span.offset, fd, bytes), lender, false);
          } finally {
            if (held) fn.pageio_close(source);
          }
          if (moved === null) {
            // Refused for this target. copy_file_range: sendfile also copies in the kernel, between filesystems
            // too (EXDEV); otherwise write spans from memory from now on.
            kind.move = kind.move === KIND_COPY_FILE_RANGE ? KIND_SENDFILE : null;
            if (kind.move === null) this.#spansMoved = 0;
            continue;
          }
          this.#spansMoved = 1;
        } else {
          const end = this.#start + step.chunks;
          const packed = held ? PackedList.take() : shared;
          packed.pack(this.#chunks, this.#start, end, this.#lengths, held);
          const plan = gatherPlan(step.lend ? "pageio_vmsplice" : "pageio_writev", fd, packed, callsMax);
          try {
            moved = yield* this.#attempt(step.chunks, plan, lender, step.lend === true);
          } finally {
            if (held) packed.recycle();
          }
          if (moved === null) {
            lender!.enabled = false; // the kernel will not lend here: copy from now on
            continue;
          }
        }
        total += moved;
        if (moved < step.bytes || callsMax === 1) return total;
        left -= step.chunks;
      } catch (error) {
        throw withSteps(error, total);
      }
    }
    return total;
  }

  /**
   * What goes out next from the front, within `limit` chunks: a run of contiguous file spans for the kernel
   * (when the target takes kernel moves), or a run of chunks for one gather write. Null when nothing is left.
   */
  #nextStep(fd: number, limit: number, kind: { move?: MoveKind | null }, lender: Lender | null): Step | null {
    if (limit <= 0 || this.count === 0) return null;
    const first = this.#chunks[this.#start];
    const span = kind.move === null || !isHead(first) ? null : movableSpan(first);
    if (span !== null) {
      kind.move ??= moveKindFor(fd);
      const [chunks, bytes] = this.#contiguousSpans(span, limit);
      return { span, chunks, bytes };
    }
    const lending = lender?.enabled === true;
    const lend = lending && lendable(first);
    const end = this.#runEnd(limit, kind.move === null, lending, lend);
    const step: Step = { chunks: end, bytes: this.#bytesOf(end) };
    if (lend) step.lend = true;
    return step;
  }

  #lenderFor(fd: number): Lender | null {
    return this.#lender !== null && this.#lender.fd === fd ? this.#lender : null;
  }

  #enter(operation: string): void {
    if (this.#busy) throw stateError("ERR_BUSY", "the brigade is being flushed asynchronously", operation);
    this.#busy = true;
  }

  /** Front chunks that continue `first`'s span in the same file without a gap: one kernel move for all. */
  #contiguousSpans(first: { fd: number; offset: number }, limit: number): [count: number, bytes: number] {
    let count = 1;
    let bytes = this.#lengths[this.#start];
    while (count < limit && this.#start + count < this.#chunks.length) {
      const chunk = this.#chunks[this.#start + count];
      const span = isHead(chunk) ? movableSpan(chunk) : null;
      if (span === null || span.fd !== first.fd || span.offset !== first.offset + bytes) break;
      bytes += this.#lengths[this.#start + count];
      count++;
    }
    return [count, bytes];
  }

  /**
   * Chunks from the front up to the next file span (or all, when spans are written from memory); when
   * lending, a run of lendable heads (`lend`) or of others ends where the other kind starts.
   */
  #runEnd(limit: number, spansAsMemory: boolean, lending: boolean, lend: boolean): number {
    let end = 1;
    while (end < limit && this.#start + end < this.#chunks.length) {
      const chunk = this.#chunks[this.#start + end];
      if (!spansAsMemory && isHead(chunk) && fileSpan(chunk) !== null) break;
      if (lending && lendable(chunk) !== lend) break;
      end++;
    }
    return end;
  }

  #bytesOf(count: number): number {
    let bytes = 0;
    for (let i = this.#start; i < this.#start + count; i++) bytes += this.#lengths[i];
    return bytes;
  }

  /** Runs one step's planner over the front `chunks` chunks and consumes what it moved, also when it throws. */
  *#attempt(chunks: number, plan: Plan<number | null>, lender: Lender | null, lent: boolean): Plan<number | null> {
    let moved: number | null;
    try {
      moved = yield* plan;
    } catch (error) {
      this.#consume((error as { bytesTransferred?: number }).bytesTransferred ?? 0, chunks, lender, lent);
      throw error;
    }
    if (moved !== null) this.#consume(moved, chunks, lender, lent);
    return moved;
  }

  /**
   * Drops the front `written` bytes, and the empty chunks among the front `limit` chunks that they reach.
   * Heads whose bytes were `lent` go to the lender (the pipe holds their pages: they get fresh memory before
   * their next use).
   */
  #consume(written: number, limit: number, lender: Lender | null, lent: boolean): void {
    this.#byteLength -= written;
    const chunks = this.#chunks, lengths = this.#lengths;
    const end = Math.min(chunks.length, this.#start + limit);
    let left = written;
    // `<=` so an empty chunk is written by reaching it: no bytes ever move for it.
    while (this.#start < end && lengths[this.#start] <= left) {
      const chunk = chunks[this.#start];
      left -= lengths[this.#start];
      if (isHead(chunk)) dequeue(chunk);
      if (lent) lender!.lent(chunk as PageHead);
      else if (isHead(chunk)) releaseHead.call(chunk);
      chunks[this.#start++] = undefined as unknown as Chunk;
    }
    if (left > 0) { // a partly written chunk: trim it in place
      const chunk = chunks[this.#start];
      if (lent) markLent(chunk as PageHead); // the rest stays queued; the page gets fresh memory when it goes
      if (!isHead(chunk)) {
        // An array that shrank while a flush waited (its error is on its way) keeps what is left of it, which is
        // shorter than queued, so every later flush refuses it as a pack would (a view past its end: RangeError).
        const now = lengthOf(chunk);
        const from = Math.min(left, now);
        chunks[this.#start] = viewOf(chunk, from, Math.max(0, Math.min(now, lengths[this.#start]) - from));
      } else if (refsOf.call(chunk) === 1) consume(chunk, left);
      else {
        // Another brigade (or the caller) holds this head too: trimmed in place, it would lose these bytes
        // there as well. The rest goes on as a head of its own, and this brigade's reference is let go.
        const rest = sliceHead.call(chunk, left);
        enqueue(rest);
        chunks[this.#start] = rest;
        dequeue(chunk);
        releaseHead.call(chunk);
      }
      lengths[this.#start] -= left;
    }
    if (lent) lender!.settle();
    if (this.#start === chunks.length) {
      chunks.length = lengths.length = 0;
      this.#start = 0;
    } else if (this.#start > 1024 && this.#start * 2 > chunks.length) {
      chunks.splice(0, this.#start);
      lengths.splice(0, this.#start);
      this.#start = 0;
    }
  }

  /** Releases every queued head and empties the brigade. */
  release(): void {
    if (this.#busy) throw stateError("ERR_BUSY", "cannot release while the brigade is being flushed", "release");
    const chunks = this.#chunks.splice(this.#start);
    this.#chunks.length = this.#lengths.length = 0;
    this.#start = 0;
    this.#byteLength = 0;
    for (const chunk of chunks) {
      if (!isHead(chunk)) continue;
      dequeue(chunk);
      if (headLive(chunk)) releaseHead.call(chunk);
    }
  }

  /** Releases everything queued, as `release()` does, for `using`. */
  [Symbol.dispose](): void {
    this.release();
  }

  /** The queued chunks, front first (they stay queued). */
  *[Symbol.iterator](): IterableIterator<Chunk> {
    for (let i = this.#start; i < this.#chunks.length; i++) yield this.#chunks[i];
  }
}

/**
 * A failure after earlier steps of the same flush moved `done` bytes: its `bytesTransferred` counts them
 * too (the failing step's own bytes, if any, are already in it), so the caller's tally matches the target.
 */
function withSteps(error: unknown, done: number): unknown {
  if (typeof error === "object" && error !== null) {
    const counted = error as { bytesTransferred?: number };
    counted.bytesTransferred = done + (counted.bytesTransferred ?? 0);
  }
  return error;
}

function lendable(chunk: Chunk): boolean {
  return isHead(chunk) && lendableHead(chunk);
}

// By private field, so nothing a queued head (or its prototype) redefines ever runs.
const { length: headLength, fileSpan, movableSpan, lendable: lendableHead, markLent, consume, enqueue, dequeue } =
  headInternals;
/** For a chunk already checked (by `append`): a head unless it is a typed array (no private-field lookup). */
const isHead = (chunk: Chunk): chunk is PageHead => !ArrayBuffer.isView(chunk);
// PageHead's own methods, so a queued head's redefined `release`, `slice`… never runs.
const releaseHead = ownCall(PageHead.prototype.release);
const sliceHead = ownCall(PageHead.prototype.slice);
const refsOf = ownCall(Object.getOwnPropertyDescriptor(PageHead.prototype, "refs")!.get!);
const headLive = (head: PageHead): boolean => refsOf.call(head) > 0;

/** Each chunk's length, every chunk checked (a real head still live, or a real attached byte array). */
function lengthsOf(chunks: Chunk[]): number[] {
  const lengths: number[] = new Array(chunks.length);
  for (let i = 0; i < chunks.length; i++) {
    const chunk = chunks[i];
    if (!isChunk(chunk)) throw new TypeError(`a brigade holds PageHeads and Uint8Arrays, got ${describe(chunk)}`);
    if (isHead(chunk)) {
      if (!headLive(chunk)) throw stateError("ERR_RELEASED", "cannot queue a released page head", "append");
      lengths[i] = headLength(chunk);
    } else {
      lengths[i] = lengthOf(chunk);
      if (lengths[i] === 0 && isDetached(chunk)) {
        throw new TypeError(
          "a byte array in the list is detached (its page or mapping is gone, or it was transferred)",
        );
      }
    }
  }
  // Each head gives the brigade one of its references; none is taken unless all are.
  for (let i = 0; i < chunks.length; i++) {
    const chunk = chunks[i];
    if (!isHead(chunk) || enqueue(chunk)) continue;
    for (let j = 0; j < i; j++) if (isHead(chunks[j])) dequeue(chunks[j] as PageHead);
    throw stateError(
      "ERR_BUSY",
      "page head is queued already on each of its references: retain() it once for every further queue",
      "append",
    );
  }
  return lengths;
}
