/**
 * Gather writes and scatter reads: a whole list of heads and byte arrays goes
 * down to the native side as one packed buffer of descriptors, in one FFI call.
 * @module
 */
import { ADDRESS_REGION, fn, IOV_MAX, native, STAGING_REGION } from "../ffi/native.ts";
import type { Interest } from "./reactor.ts";
import {
  type AsyncOptions,
  type Call,
  errnoNamed,
  failedAfter,
  type Plan,
  runAsync,
  runSync,
  type Wait,
  wouldBlock,
} from "./drive.ts";
import { unwrap } from "./errors.ts";
import { describe, fdOf, type Target, waitsFor } from "./file.ts";
import { PageHead } from "./head.ts";
import { Page } from "./pool.ts";

/** What a gather write takes: heads, and plain byte arrays (small ones are copied, large ones passed by address). */
export type Chunk = PageHead | Uint8Array;
/** What a scatter read fills: whole pages, heads, or plain byte arrays. */
export type ReadTarget = Page | PageHead | Uint8Array;

/**
 * A packed gather list: 16-byte descriptors plus the staging bytes of small plain arrays. The synchronous calls
 * share one; every asynchronous call has its own, untouched until its Promise settles.
 */
export class PackedList {
  list: Uint32Array;
  staging: Uint8Array;
  stagingUsed = 0;
  count = 0;
  readonly out: Float64Array = new Float64Array(1);

  /** Room for `entries` descriptors and `stagingBytes` staged bytes; both grow when needed. */
  constructor(entries = IOV_MAX, stagingBytes = 64 * 1024) {
    this.list = new Uint32Array(4 * entries);
    this.staging = new Uint8Array(stagingBytes);
  }

  /** A list sized for one call (an asynchronous call owns its list: nothing to spare, nothing to copy). */
  static exact(entries: number): PackedList {
    return new PackedList(entries, 0);
  }

  #ensureEntries(count: number): void {
    if (this.list.length < 4 * count) this.list = new Uint32Array(Math.max(4 * count, this.list.length * 2));
  }

  #stage(length: number): number {
    if (this.stagingUsed + length > this.staging.length) {
      const grown = new Uint8Array(Math.max(this.stagingUsed + length, this.staging.length * 2, 256));
      grown.set(this.staging.subarray(0, this.stagingUsed));
      this.staging = grown;
    }
    const at = this.stagingUsed;
    this.stagingUsed += length;
    return at;
  }

  #packBytes(bytes: Uint8Array, at: number, copyIn: boolean): void {
    checkAttached(bytes);
    const length = bytes.byteLength;
    const list = this.list;
    if (length > 0xffff_ffff) throw new RangeError(`a byte array of ${length} bytes is over the 4 GiB entry limit`);
    if (length === 0) {
      list[at] = STAGING_REGION;
      list[at + 1] = list[at + 2] = list[at + 3] = 0;
    } else if (length < native.stagingLimit) {
      const offset = this.#stage(length);
      if (copyIn) this.staging.set(bytes, offset);
      list[at] = STAGING_REGION;
      list[at + 1] = offset;
      list[at + 2] = 0;
      list[at + 3] = length;
    } else {
      const address = native.addressOf(bytes);
      list[at] = ADDRESS_REGION;
      list[at + 1] = address >>> 0;
      list[at + 2] = Math.floor(address / 0x1_0000_0000);
      list[at + 3] = length;
    }
  }

  /** Packs `chunks[start, end)` for a gather write. */
  packChunks(chunks: readonly Chunk[], start: number, end: number): this {
    const count = end - start;
    this.#ensureEntries(count);
    this.stagingUsed = 0;
    this.count = count;
    const list = this.list;
    for (let i = 0; i < count; i++) {
      const chunk = chunks[start + i];
      if (chunk instanceof PageHead) chunk._pack(list, 4 * i);
      else if (chunk instanceof Uint8Array) this.#packBytes(chunk, 4 * i, true);
      else throw new TypeError(`a gather list holds PageHeads and Uint8Arrays, got ${describe(chunk)} at ${start + i}`);
    }
    return this;
  }

  /** Packs scatter-read targets; returns the plain arrays that read through staging (copied back after). */
  packTargets(targets: readonly ReadTarget[]): (Uint8Array | null)[] {
    this.#ensureEntries(targets.length);
    this.stagingUsed = 0;
    this.count = targets.length;
    const staged: (Uint8Array | null)[] = new Array(targets.length).fill(null);
    for (let i = 0; i < targets.length; i++) {
      const target = targets[i];
      if (target instanceof PageHead) target._pack(this.list, 4 * i);
      else if (target instanceof Page) {
        const head = target.head();
        head._pack(this.list, 4 * i);
        head.release();
      } else if (target instanceof Uint8Array) {
        this.#packBytes(target, 4 * i, false);
        if (this.list[4 * i] === STAGING_REGION) staged[i] = target;
      } else throw new TypeError(`readv targets are Pages, PageHeads and Uint8Arrays, got ${describe(target)} at ${i}`);
    }
    return staged;
  }

  /** Copies what a scatter read put in staging into its targets (entries fill in order). */
  copyBack(staged: (Uint8Array | null)[], bytesRead: number): void {
    let remaining = bytesRead;
    for (let i = 0; i < staged.length && remaining > 0; i++) {
      const part = Math.min(this.list[4 * i + 3], remaining);
      const target = staged[i];
      if (target !== null) target.set(this.staging.subarray(this.list[4 * i + 1], this.list[4 * i + 1] + part));
      remaining -= part;
    }
  }

  /** A gather call over this list, one object per kind reused for every call (a hot path allocates nothing). */
  call(name: ListCallName, fd: number, callsMax: number): Call {
    const call = this.#calls[name] ??= new ListCall(name, this);
    call.fd = fd;
    call.callsMax = callsMax;
    return call;
  }
  #calls: { [K in ListCallName]?: ListCall } = {};

  /** Bytes the packed entries describe. */
  byteLength(): number {
    let bytes = 0;
    for (let i = 0; i < this.count; i++) bytes += this.list[4 * i + 3];
    return bytes;
  }

  /** Drops the first `bytes` bytes from the packed entries (after a short write); true when none are left. */
  advance(bytes: number): boolean {
    const list = this.list;
    let entry = 0;
    let left = bytes;
    while (entry < this.count && list[4 * entry + 3] <= left) left -= list[4 * entry++ + 3];
    if (entry < this.count && left > 0) {
      const low = list[4 * entry + 1] + left;
      list[4 * entry + 1] = low >>> 0;
      list[4 * entry + 2] += Math.floor(low / 0x1_0000_0000);
      list[4 * entry + 3] -= left;
    }
    if (entry > 0) {
      list.copyWithin(0, 4 * entry, 4 * this.count);
      this.count -= entry;
    }
    return this.count === 0;
  }
}

type ListCallName = "pageio_writev" | "pageio_readv" | "pageio_vmsplice";

/** `pageio_writev`/`readv`/`vmsplice` over a packed list, called directly (a spread call misses FFI fast paths). */
class ListCall implements Call {
  fd = -1;
  callsMax = 0;
  readonly interest: Interest;

  constructor(readonly name: ListCallName, readonly packed: PackedList) {
    this.interest = name === "pageio_readv" ? "read" : "write";
  }

  get bytes(): number {
    return this.packed.byteLength();
  }

  get args(): readonly unknown[] {
    const { list, staging, stagingUsed, count, out } = this.packed;
    const lend = this.name === "pageio_vmsplice";
    return [this.fd, list, list.byteLength, count, lend ? null : staging, lend ? 0 : stagingUsed, this.callsMax, out];
  }

  run(): number {
    const { list, staging, stagingUsed, count, out } = this.packed;
    if (this.name === "pageio_writev") {
      return fn.pageio_writev(this.fd, list, list.byteLength, count, staging, stagingUsed, this.callsMax, out);
    }
    if (this.name === "pageio_readv") {
      return fn.pageio_readv(this.fd, list, list.byteLength, count, staging, stagingUsed, this.callsMax, out);
    }
    return fn.pageio_vmsplice(this.fd, list, list.byteLength, count, null, 0, this.callsMax, out);
  }
}

/**
 * The planner of a gather write (or a lend, by vmsplice) of a packed list: one native call for the whole list;
 * a short one (the descriptor would block) waits and resumes where it stopped. Returns the bytes moved, with a
 * lend refused before anything moved as null.
 */
export function* gatherPlan(
  name: "pageio_writev" | "pageio_vmsplice",
  fd: number,
  packed: PackedList,
  callsMax = 0,
  first?: number,
): Plan<number | null> {
  let total = 0;
  const syscall = name === "pageio_writev" ? "writev" : "vmsplice";
  try {
    while (true) {
      const result = first ?? (yield packed.call(name, fd, callsMax)) as number;
      first = undefined;
      const moved = packed.out[0];
      if (result < 0 && !wouldBlock(result, moved)) {
        if (name === "pageio_vmsplice" && total === 0 && moved === 0 && LEND_REFUSED.has(-result)) return null;
        total += moved;
        unwrap(result, syscall, undefined, total);
      }
      total += moved;
      if (packed.advance(moved) || callsMax !== 0) return total;
      if (!(yield WAIT_WRITE)) return total;
    }
  } catch (error) {
    throw failedAfter(error, total); // an abort or a failure part-way: every step's bytes counted
  }
}

/** The planner of a scatter read: 0 at end of input; a read that would block waits (or throws EAGAIN, sync). */
export function* scatterPlan(
  fd: number,
  packed: PackedList,
  staged: (Uint8Array | null)[],
  first?: number,
): Plan<number> {
  while (true) {
    const result = first ?? (yield packed.call("pageio_readv", fd, 0)) as number;
    first = undefined;
    const moved = packed.out[0];
    packed.copyBack(staged, moved); // also after a failure part-way
    if (wouldBlock(result, moved) && (yield WAIT_READ)) continue;
    return unwrap(result, "readv", undefined, moved);
  }
}

const WAIT_WRITE: Wait = { wait: "write" };
const WAIT_READ: Wait = { wait: "read" };
/** errnos with which the kernel refuses to lend (not a pipe, not Linux): copy instead. */
const LEND_REFUSED = new Set([errnoNamed("EINVAL"), errnoNamed("ENOSYS")]);

/** @internal A detached array (its page or mapping is gone) never reaches native code. */
export function checkAttached(bytes: Uint8Array): void {
  if ((bytes.buffer as ArrayBuffer).detached) {
    throw new TypeError("a byte array in the list is detached (its page or mapping is gone)");
  }
}

/** @internal The list the synchronous calls share. */
export const shared: PackedList = new PackedList();

/**
 * Writes every chunk, in order, to `target` with gather system calls
 * (`writev`, up to IOV_MAX entries each) made in one FFI call. A short write is
 * resumed where it stopped and EINTR retried; on a descriptor opened
 * non-blocking, EAGAIN returns the bytes written so far (pageio's own pipes and
 * socket pairs wait instead, unless made with `nonBlocking: true`). The caller
 * keeps ownership of the heads. Returns the bytes written.
 *
 * @example
 * ```ts
 * import { openFile, writev } from "@pageio/pageio";
 * using out = openFile(await Deno.makeTempFile(), "w");
 * const written = writev(out, [new TextEncoder().encode("page "), new TextEncoder().encode("heads")]);
 * console.log(written); // 10
 * ```
 */
export function writev(target: Target, chunks: Iterable<Chunk>): number {
  const fd = fdOf(target);
  const array = Array.isArray(chunks) ? chunks as Chunk[] : Array.from(chunks);
  if (array.length === 0) return 0;
  const packed = shared.packChunks(array, 0, array.length);
  // The planner's first step made here: a write that completes at once (most do) costs no planner at all.
  const first = packed.call("pageio_writev", fd, 0).run();
  if (first >= 0 && first === packed.byteLength()) return first;
  return runSync(gatherPlan("pageio_writev", fd, packed, 0, first), fd, waitsFor(target))!;
}

/**
 * `writev` without holding up the event loop: the system call is tried at once, and only a descriptor that
 * would block waits (on one shared readiness wait, never a thread per call). The chunks must stay as they are
 * (not released, not written to) until the Promise settles; the call keeps them referenced until then. An
 * abort rejects with `ABORT_ERR` and `bytesTransferred`.
 *
 * @example
 * ```ts
 * import { openFile, writevAsync } from "@pageio/pageio";
 * using out = openFile(await Deno.makeTempFile(), "w");
 * console.log(await writevAsync(out, [new TextEncoder().encode("later")])); // 5
 * ```
 */
export function writevAsync(target: Target, chunks: Iterable<Chunk>, options: AsyncOptions = {}): Promise<number> {
  try {
    const fd = fdOf(target);
    const array = Array.isArray(chunks) ? chunks as Chunk[] : Array.from(chunks);
    if (array.length === 0) return Promise.resolve(0);
    const packed = PackedList.exact(array.length).packChunks(array, 0, array.length);
    return runAsync(target, fd, gatherPlan("pageio_writev", fd, packed), options.signal, array) as Promise<number>;
  } catch (error) {
    return Promise.reject(error);
  }
}

/**
 * Reads from `source` into the targets in order (`readv`), until they are full,
 * the source has no more for now, or end of file. Returns the bytes read; 0 at
 * end of file.
 *
 * @example
 * ```ts
 * import { openFile, readv } from "@pageio/pageio";
 * using file = openFile("README.md");
 * const first = new Uint8Array(2), rest = new Uint8Array(10);
 * console.log(readv(file, [first, rest])); // 12
 * ```
 */
export function readv(source: Target, targets: Iterable<ReadTarget>): number {
  const fd = fdOf(source);
  const array = Array.isArray(targets) ? targets as ReadTarget[] : Array.from(targets);
  const staged = shared.packTargets(array);
  const first = shared.call("pageio_readv", fd, 0).run(); // as in writev: the planner only when it must wait
  if (first >= 0) {
    shared.copyBack(staged, first);
    return first;
  }
  return runSync(scatterPlan(fd, shared, staged, first), fd, waitsFor(source));
}

/**
 * `readv` without holding up the event loop: reads at once what is there, and waits for a pipe or socket
 * that has nothing yet on the shared readiness wait. The targets must stay as they are until the Promise
 * settles. An abort rejects with `ABORT_ERR` and nothing read.
 *
 * @example
 * ```ts
 * import { openFile, readvAsync } from "@pageio/pageio";
 * using file = openFile("README.md");
 * console.log(await readvAsync(file, [new Uint8Array(8)])); // 8
 * ```
 */
export function readvAsync(source: Target, targets: Iterable<ReadTarget>, options: AsyncOptions = {}): Promise<number> {
  try {
    const fd = fdOf(source);
    const array = Array.isArray(targets) ? targets as ReadTarget[] : Array.from(targets);
    const packed = PackedList.exact(array.length);
    const staged = packed.packTargets(array);
    return runAsync(source, fd, scatterPlan(fd, packed, staged), options.signal, array);
  } catch (error) {
    return Promise.reject(error);
  }
}
