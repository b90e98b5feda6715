/**
 * Gather writes and scatter reads: a whole list of heads and byte arrays goes
 * down to the native side as one packed buffer of descriptors, in one FFI call.
 *
 * Nothing the caller controls runs between reading a value and using it. A call first copies its argument
 * into an array of its own and checks each element's kind: the only step where caller code (an iterator, a
 * Proxy, an accessor, a prototype's trap) can run, and nothing is packed yet. Packing then reads heads
 * through their private fields and byte arrays through the intrinsic %TypedArray% getters, and the native
 * call follows with no caller code in between, so no getter can detach, shrink or free a chunk already packed.
 * @module
 */
import {
  ADDRESS_REGION,
  DESCRIPTOR_BYTES,
  ENTRY_BYTES_MAX,
  errno,
  fn,
  IOV_MAX,
  native,
  STAGING_REGION,
} from "../ffi/native.ts";
import {
  type AsyncOptions,
  type Call,
  failedAfter,
  type Plan,
  runAsync,
  runSync,
  type Wait,
  wouldBlock,
} from "./drive.ts";
import { checkAsyncOptions, unwrap } from "./errors.ts";
import { describe, fdOf, type Target, waitsFor } from "./file.ts";
import { type Interest, inWriteTurn } from "./reactor.ts";
import { headInternals, type HeadOwner, type PageHead } from "./head.ts";
import { isDetachedBuffer, kRelease, lengthOf, ownCall } from "./internal.ts";
import { Page } from "./pool.ts";

/** What a gather write takes: heads, and plain byte arrays (small ones are copied, large ones passed by address). */
export type Chunk = PageHead | Uint8Array;
/** What a scatter read fills: whole pages, heads, or plain byte arrays. */
export type ReadTarget = Page | PageHead | Uint8Array;

// The intrinsic getters, captured at load (`byteLength` and `detached` once, in internal.ts): a redefined or
// inherited `byteOffset` or `buffer` (an own property, a subclass, a swapped prototype) is never called.
const getterOf = (target: object, key: PropertyKey) => ownCall(Object.getOwnPropertyDescriptor(target, key)!.get!);
const typedArray = Object.getPrototypeOf(Uint8Array.prototype);
const byteOffsetGetter = getterOf(typedArray, "byteOffset") as (this: ArrayBufferView) => number;
const bufferGetter = getterOf(typedArray, "buffer") as (this: ArrayBufferView) => ArrayBufferLike;
const resizableGetter = getterOf(ArrayBuffer.prototype, "resizable") as (this: ArrayBuffer) => boolean;
const growableGetter = getterOf(SharedArrayBuffer.prototype, "growable") as (this: SharedArrayBuffer) => boolean;
const isView = ArrayBuffer.isView;
const { isHead, pack: packHead, span: headSpan, length: headLength, hold: holdHead, touch } = headInternals;
const pageHead = ownCall(Page.prototype.head);

/** @internal Whether an array's buffer was detached (transferred, or its page or mapping is gone). */
export function isDetached(bytes: Uint8Array): boolean {
  const buffer = bufferGetter.call(bytes);
  try {
    return isDetachedBuffer(buffer as ArrayBuffer);
  } catch {
    return false; // a SharedArrayBuffer, which cannot be detached
  }
}

/** Whether an array's length can change after it is read: a resizable or growable buffer. */
function canResize(bytes: Uint8Array): boolean {
  const buffer = bufferGetter.call(bytes);
  try {
    return resizableGetter.call(buffer as ArrayBuffer);
  } catch {
    return growableGetter.call(buffer as SharedArrayBuffer);
  }
}

/** @internal A fixed view of `[start, start + length)` of a plain array, made from its intrinsic fields. */
export function viewOf(bytes: Uint8Array, start: number, length: number): Uint8Array {
  return new Uint8Array(bufferGetter.call(bytes), byteOffsetGetter.call(bytes) + start, length);
}

/** @internal Whether `value` is a chunk: a real PageHead, or a real typed array posing as nothing else. */
export function isChunk(value: unknown): value is Chunk {
  // isView first: a private-field check on a typed array is a slow lookup in V8 (~35 ns).
  return isView(value) ? value instanceof Uint8Array : isHead(value);
}

/**
 * @internal The caller's chunks as an array of pageio's own: the only step of a gather write where caller
 * code can run (an iterator, a Proxy, an accessor, the prototype trap an `instanceof` may meet). Typed arrays
 * are checked here; anything else must be a real head, which packing checks by private field (no user code).
 */
export function chunkList(chunks: Iterable<Chunk>): Chunk[] {
  if (Array.isArray(chunks)) return checkedCopyOf(chunks);
  const list: Chunk[] = listOf(chunks, "chunks");
  for (let i = 0; i < list.length; i++) {
    const chunk = list[i];
    if (isView(chunk) && !(chunk instanceof Uint8Array)) throw notAChunk(chunk, i);
  }
  return list;
}

/** An array's elements copied and checked in one pass (a gather list is walked once before packing). */
function checkedCopyOf(chunks: readonly Chunk[]): Chunk[] {
  const length = chunks.length;
  const list: Chunk[] = new Array(length);
  for (let i = 0; i < length; i++) {
    const chunk = chunks[i];
    // A hole or a number fails here, before the rest is read: a Proxy claiming a vast length ends at once.
    if (typeof chunk !== "object" || chunk === null || (isView(chunk) && !(chunk instanceof Uint8Array))) {
      throw notAChunk(chunk, i);
    }
    list[i] = chunk;
  }
  return list;
}

function copyOf<T>(values: readonly T[]): T[] {
  const length = values.length;
  const list: T[] = new Array(length);
  for (let i = 0; i < length; i++) {
    const value = values[i];
    list[i] = value;
    // As in checkedCopyOf: what is no object ends the copy at once (the caller's check names it, so it is kept).
    if (typeof value !== "object" || value === null) return list.slice(0, i + 1);
  }
  return list;
}

/**
 * An iterable that is not an array, as an array. A lone chunk (a Uint8Array iterates as numbers, a string as
 * characters) or a non-iterable is refused with what to pass instead.
 */
function listOf<T>(value: Iterable<T>, what: string): T[] {
  if (isView(value) || isHead(value) || value instanceof Page || typeof value === "string") {
    throw new TypeError(`expected a list of ${what}: pass [${describe(value)}], not a ${describe(value)} on its own`);
  }
  if (typeof (value as { [Symbol.iterator]?: unknown } | null)?.[Symbol.iterator] !== "function") {
    throw new TypeError(`expected a list (an iterable) of ${what}, got ${describe(value)}`);
  }
  const list: T[] = [];
  for (const item of value) {
    list.push(item);
    if (typeof item !== "object" || item === null) break; // refused by the caller's check: read no further
  }
  return list;
}

function notAChunk(value: unknown, index: number): TypeError {
  return new TypeError(`a gather list holds PageHeads and Uint8Arrays, got ${describe(value)} at ${index}`);
}

/**
 * Below this many bytes an asynchronous call copies plain arrays whatever the runtime's limit: the caller's
 * code runs while it waits, and a small array's bytes may move when it does (JSC keeps arrays of up to 1 000
 * elements in GC-owned storage that moves to an ArrayBuffer the first time `.buffer` is read).
 */
const ASYNC_STAGING_LIMIT = 4096;
/** Staging never grows past this (its length crosses as a u32); beyond it, arrays go by address. */
const STAGING_BYTES_MAX = 2 ** 31;
const WORDS = DESCRIPTOR_BYTES / 4;

/** Where a plain scatter-read target's bytes were read to in staging, to copy them back. */
interface StagedTarget {
  target: Uint8Array;
  /** Bytes of the whole read before this target's. */
  position: number;
  stagingOffset: number;
  length: number;
}

/**
 * A packed gather list: 16-byte descriptors plus the staging bytes of small plain arrays. The synchronous calls
 * share one; every asynchronous call has its own, untouched until its Promise settles.
 */
export class PackedList {
  list: Uint32Array;
  staging: Uint8Array;
  // Their lengths, kept here: read from the arrays they would go through getters user code can redefine.
  listBytes: number;
  stagingBytes: number;
  stagingUsed = 0;
  /** Descriptors packed (a chunk longer than ENTRY_BYTES_MAX takes several, a run of staged ones one). */
  count = 0;
  readonly out: Float64Array = new Float64Array(offHeap(8));
  /** What an asynchronous call passed by address, referenced here until it settles: `held[heldStart, heldEnd)`. */
  held: readonly unknown[] | null = null;
  #heldStart = 0;
  #heldEnd = 0;
  #at = 0; // next free word of `list`

  /** Room for `entries` descriptors and `stagingBytes` staged bytes; both grow when needed. */
  constructor(entries = IOV_MAX, stagingBytes = 64 * 1024) {
    this.listBytes = 4 * WORDS * entries;
    this.list = new Uint32Array(offHeap(this.listBytes));
    this.stagingBytes = stagingBytes;
    this.staging = new Uint8Array(offHeap(stagingBytes));
  }

  /**
   * A list for one asynchronous call, from a few kept for reuse: making its arrays afresh for every call costs
   * more than the call (allocation, and the first native use of each new buffer). Give it back with `recycle`
   * once the call has settled, never before: the call may still be writing through its addresses.
   */
  static take(): PackedList {
    return spareLists.pop() ?? new PackedList(16, 4096);
  }

  /** Back to the spares, what it held dropped. */
  recycle(): void {
    this.held = null;
    if (spareLists.length < SPARE_LISTS_MAX) spareLists.push(this);
  }

  /** A list sized for one call (an asynchronous call owns its list: nothing to spare, nothing to copy). */
  static exact(entries: number): PackedList {
    return new PackedList(entries, 0);
  }

  #reset(entries: number): void {
    this.stagingUsed = 0;
    this.count = 0;
    this.#at = 0;
    this.#ensure(entries);
  }

  /** Room for `entries` more descriptors, keeping those packed. */
  #ensure(entries: number): void {
    const words = this.#at + WORDS * entries;
    if (4 * words <= this.listBytes) return;
    if (words * 4 > 0xffff_ffff) throw new RangeError(`a gather list of ${words / WORDS} descriptors is too long`);
    const bytes = 4 * Math.max(words, this.listBytes / 2);
    const grown = new Uint32Array(offHeap(bytes));
    grown.set(this.list.subarray(0, this.#at));
    this.list = grown;
    this.listBytes = bytes;
  }

  /** Reserves `length` staging bytes (growing it, keeping what is staged); -1 when over STAGING_BYTES_MAX. */
  #reserve(length: number): number {
    const at = this.stagingUsed;
    if (at + length > this.stagingBytes) {
      if (at + length > STAGING_BYTES_MAX) return -1;
      const bytes = Math.min(STAGING_BYTES_MAX, Math.max(at + length, this.stagingBytes * 2, 4096));
      const grown = new Uint8Array(offHeap(bytes));
      grown.set(this.staging.subarray(0, at));
      this.staging = grown;
      this.stagingBytes = bytes;
    }
    this.stagingUsed = at + length;
    return at;
  }

  /**
   * Where a plain array's bytes go in staging, or -1 to pass it by address: arrays under `limit` are copied, and
   * for an asynchronous call (`held`) so is one whose buffer can be resized while it waits.
   */
  #stagingFor(bytes: Uint8Array, length: number, limit: number, held: boolean): number {
    if (length >= limit && !(held && canResize(bytes))) return -1;
    const offset = this.#reserve(length);
    if (offset < 0 && length >= limit) {
      throw new RangeError(`a resizable array of ${length} bytes is too large to copy for an asynchronous call`);
    }
    return offset;
  }

  #entry(region: number, offset: number, length: number): void {
    const list = this.list, at = this.#at;
    list[at] = region;
    list[at + 1] = offset >>> 0;
    list[at + 2] = (offset - (offset >>> 0)) / 0x1_0000_0000;
    list[at + 3] = length;
    this.#at = at + WORDS;
  }

  /** Descriptors for `length` bytes from `offset` of `region`, at most ENTRY_BYTES_MAX each. */
  #span(region: number, offset: number, length: number, more: number): void {
    this.#ensure(Math.ceil(length / ENTRY_BYTES_MAX) + more);
    for (let done = 0; done < length; done += ENTRY_BYTES_MAX) {
      this.#entry(region, offset + done, Math.min(ENTRY_BYTES_MAX, length - done));
    }
  }

  /**
   * Packs `chunks[start, end)` (an array of pageio's own: see `chunkList`) for a gather write. `queued`, from a
   * brigade, holds each array's length when it was queued: an array now shorter is refused, a longer one
   * (a growable buffer) sends what was queued. `held`: for an asynchronous call, which keeps the chunks
   * referenced until it settles and copies arrays whose buffer can be resized while it waits.
   */
  pack(chunks: readonly Chunk[], start: number, end: number, queued?: readonly number[], held = false): this {
    try {
      return this.#pack(chunks, start, end, queued, held);
    } catch (error) {
      const bad = chunks.slice(start, end).findIndex((chunk) => !isView(chunk) && !isHead(chunk));
      if (bad >= 0) throw notAChunk(chunks[start + bad], start + bad);
      throw error;
    }
  }

  #pack(chunks: readonly Chunk[], start: number, end: number, queued?: readonly number[], held = false): this {
    this.#reset(end - start);
    const limit = held ? Math.max(native.stagingLimit, ASYNC_STAGING_LIMIT) : native.stagingLimit;
    let list = this.list;
    let at = 0; // the hot loop keeps the next free word in a local; slow paths sync it with #at
    for (let i = start; i < end; i++) {
      const chunk = chunks[i];
      // Typed arrays were checked by chunkList (or Brigade.append); anything else is packed as a head, whose
      // private fields a Proxy or a look-alike does not have (a TypeError, reworded by pack).
      let next: number;
      if (isView(chunk)) {
        // By address, one descriptor, written here: the common case of a big plain array, kept to locals (no
        // field access). `#reset` and every `#span` leave room for one descriptor per chunk still to come.
        const length = lengthOf(chunk);
        if (
          length >= limit && length <= ENTRY_BYTES_MAX && !held && (queued === undefined || length === queued[i])
        ) {
          const address = fn.pageio_address(chunk);
          list[at] = ADDRESS_REGION;
          list[at + 1] = address >>> 0;
          list[at + 2] = (address - (address >>> 0)) / 0x1_0000_0000;
          list[at + 3] = length;
          at += WORDS;
          continue;
        }
        next = -2;
      } else {
        next = packHead(chunk as PageHead, list, at, ENTRY_BYTES_MAX);
        if (next >= 0) {
          at = next;
          continue;
        }
      }
      this.#at = at;
      if (next === -1) {
        const { region, offset, length } = headSpan(chunk as PageHead);
        this.#span(region, offset, length, end - i - 1);
      } else {
        const bytes = chunk as Uint8Array;
        let length = lengthOf(bytes);
        if (queued !== undefined && length !== queued[i]) {
          if (length < queued[i]) throw changed(bytes, queued[i], length);
          length = queued[i];
        }
        if (length === 0) {
          if (isDetached(bytes)) throw detached();
          continue;
        }
        const offset = this.#stagingFor(bytes, length, limit, held);
        if (offset >= 0) {
          fn.pageio_stage(this.staging, this.stagingBytes, offset, bytes, length);
          this.#span(STAGING_REGION, offset, length, end - i - 1);
        } else this.#span(ADDRESS_REGION, fn.pageio_address(bytes), length, end - i - 1);
      }
      list = this.list;
      at = this.#at;
    }
    this.#at = at;
    this.count = at / WORDS;
    this.held = held ? chunks : null;
    this.#heldStart = start;
    this.#heldEnd = end;
    return this;
  }

  /**
   * Packs scatter-read targets (an array of pageio's own, every element a PageHead or a Uint8Array); returns
   * the plain arrays that read through staging, to copy back after.
   */
  packTargets(targets: readonly (PageHead | Uint8Array)[], held = false): StagedTarget[] {
    this.#reset(targets.length);
    const limit = held ? Math.max(native.stagingLimit, ASYNC_STAGING_LIMIT) : native.stagingLimit;
    const staged: StagedTarget[] = [];
    let position = 0;
    for (let i = 0; i < targets.length; i++) {
      const target = targets[i];
      const next = isView(target) ? -2 : packHead(target as PageHead, this.list, this.#at, ENTRY_BYTES_MAX);
      if (next >= 0 || next === -1) {
        if (next >= 0) {
          this.#at = next;
        } else {
          const { region, offset, length } = headSpan(target as PageHead);
          this.#span(region, offset, length, targets.length - i - 1);
        }
        position += headLength(target as PageHead);
        continue;
      }
      const bytes = target as Uint8Array;
      const length = lengthOf(bytes);
      if (length === 0) {
        if (isDetached(bytes)) throw detached();
        continue;
      }
      const offset = this.#stagingFor(bytes, length, limit, held);
      if (offset >= 0) {
        this.#span(STAGING_REGION, offset, length, targets.length - i - 1);
        staged.push({ target: bytes, position, stagingOffset: offset, length });
      } else this.#span(ADDRESS_REGION, fn.pageio_address(bytes), length, targets.length - i - 1);
      position += length;
    }
    // 0 is how a read says end of input: a read into no room would say it too, and a caller's loop would stop.
    if (position === 0) {
      throw new RangeError(`a read needs room: its ${targets.length} target(s) hold 0 bytes (0 means end of input)`);
    }
    this.count = this.#at / WORDS;
    this.held = held ? targets : null;
    this.#heldStart = 0;
    this.#heldEnd = targets.length;
    return staged;
  }

  /**
   * After a wait, before the next call: the caller's code ran meanwhile, and an array whose buffer it detached
   * (`transfer()`) has freed or moved memory, a head it released may be on its page's next owner. The packed
   * addresses are then stale: refuse instead of reading or writing through them.
   */
  checkHeld(): void {
    const held = this.held;
    if (held === null) return;
    for (let i = this.#heldStart; i < this.#heldEnd; i++) {
      const item = held[i];
      if (isView(item)) {
        if (isDetached(item as Uint8Array)) throw detachedInFlight();
      } else headSpan(item as PageHead); // throws once released or its page or mapping is gone
    }
  }

  /**
   * Makes the list its own for a call off the JS thread: each head's owner is held (a page is not reused; a
   * mapping's `unmap()` is not stopped by this, the native side pins its region for the call) and, for a write
   * (`copy`), each array it names by address is copied into staging. (Reads go off the thread only under
   * PAGEIO_ASYNC=thread; a lend names pool pages only.) Checked by `checkHeld` just before: every address is
   * live. Returns what lets go of the heads' owners.
   */
  own(copy: boolean): () => void {
    const held = this.held ?? [];
    if (copy) this.#copyAddressed(held); // first: it may throw (staging that cannot grow), holding nothing yet
    const owners: HeadOwner[] = [];
    for (let i = this.#heldStart; i < this.#heldEnd; i++) {
      if (!isView(held[i])) owners.push(holdHead(held[i] as PageHead));
    }
    return () => {
      for (const owner of owners) owner[kRelease]();
    };
  }

  /** Descriptors by address become staged copies (from the held arrays that hold those bytes). */
  #copyAddressed(held: readonly unknown[]): void {
    const list = this.list;
    let next = this.#heldStart; // descriptors come in the order of their chunks
    for (let entry = 0; entry < this.count; entry++) {
      const at = WORDS * entry;
      if (list[at] !== ADDRESS_REGION) continue;
      const address = list[at + 1] + list[at + 2] * 0x1_0000_0000, length = list[at + 3];
      for (; next < this.#heldEnd; next++) {
        const bytes = held[next];
        if (!isView(bytes)) continue;
        const start = lengthOf(bytes as Uint8Array) === 0 ? -1 : fn.pageio_address(bytes);
        const end = start + lengthOf(bytes as Uint8Array);
        if (start < 0 || address < start || address + length > end) continue;
        const offset = this.#reserve(length);
        if (offset < 0) return; // past STAGING_BYTES_MAX: the rest stays by address
        fn.pageio_stage(
          this.staging,
          this.stagingBytes,
          offset,
          viewOf(bytes as Uint8Array, address - start, length),
          length,
        );
        list[at] = STAGING_REGION;
        list[at + 1] = offset;
        list[at + 2] = 0;
        break;
      }
    }
  }

  /** Copies what a scatter read put in staging into its targets (bytes fill the targets in order). */
  copyBack(staged: StagedTarget[], bytesRead: number): void {
    for (const { target, position, stagingOffset, length } of staged) {
      if (position >= bytesRead) break;
      // An asynchronous read's target may have shrunk or been detached while it waited: copy what fits.
      const part = Math.min(length, bytesRead - position, lengthOf(target));
      if (part > 0) viewOf(target, 0, part).set(this.staging.subarray(stagingOffset, stagingOffset + part));
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

  /** One gather write of the packed list, at once: bytes written, 0 when the descriptor would block. */
  write(fd: number, callsMax: number): number {
    const result = this.call("pageio_writev", fd, callsMax).run();
    if (wouldBlock(result, this.out[0])) return 0;
    return unwrap(result, "writev", undefined, this.out[0]);
  }

  /** Bytes the packed descriptors describe. */
  byteLength(): number {
    let bytes = 0;
    for (let i = 0; i < this.count; i++) bytes += this.list[WORDS * i + 3];
    return bytes;
  }

  /** Drops the first `bytes` bytes from the packed descriptors (after a short write); true when none are left. */
  advance(bytes: number): boolean {
    const list = this.list;
    let entry = 0;
    let left = bytes;
    while (entry < this.count && list[WORDS * entry + 3] <= left) left -= list[WORDS * entry++ + 3];
    if (entry < this.count && left > 0) {
      const at = WORDS * entry;
      const low = list[at + 1] + left;
      list[at + 1] = low >>> 0;
      list[at + 2] += (low - (low >>> 0)) / 0x1_0000_0000;
      list[at + 3] -= left;
    }
    if (entry > 0) {
      list.copyWithin(0, WORDS * entry, WORDS * this.count);
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

  check(): void {
    this.packed.checkHeld();
  }

  hold(): () => void {
    this.packed.checkHeld();
    return this.packed.own(this.name === "pageio_writev");
  }

  get args(): readonly unknown[] {
    const { list, listBytes, staging, stagingUsed, count, out } = this.packed;
    const lend = this.name === "pageio_vmsplice";
    return [this.fd, list, listBytes, count, lend ? null : staging, lend ? 0 : stagingUsed, this.callsMax, out];
  }

  run(): number {
    const { list, listBytes, staging, stagingUsed, count, out } = this.packed;
    if (this.name === "pageio_writev") {
      return fn.pageio_writev(this.fd, list, listBytes, count, staging, stagingUsed, this.callsMax, out);
    }
    if (this.name === "pageio_readv") {
      return fn.pageio_readv(this.fd, list, listBytes, count, staging, stagingUsed, this.callsMax, out);
    }
    return fn.pageio_vmsplice(this.fd, list, listBytes, count, null, 0, this.callsMax, out);
  }
}

/**
 * The planner of a gather write (or a lend, by vmsplice) of a packed list: one native call for the whole list;
 * a short one (the descriptor would block) waits and resumes where it stopped. Returns the bytes moved, or
 * null for a lend the kernel refused before anything moved. `first`: the first call's result, when the caller
 * already made it.
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
      packed.checkHeld();
    }
  } catch (error) {
    throw failedAfter(error, total); // an abort or a failure part-way: every step's bytes counted
  }
}

/** The planner of a scatter read: 0 at end of input; a read that would block waits (or throws EAGAIN, sync). */
export function* scatterPlan(fd: number, packed: PackedList, staged: StagedTarget[], first?: number): Plan<number> {
  while (true) {
    const result = first ?? (yield packed.call("pageio_readv", fd, 0)) as number;
    first = undefined;
    const moved = packed.out[0];
    packed.copyBack(staged, moved); // also after a failure part-way
    if (wouldBlock(result, moved) && (yield WAIT_READ)) {
      packed.checkHeld();
      // A resizable target read through staging may have shrunk meanwhile: the read would take bytes that
      // no longer fit, and lose them. Refuse before reading (nothing is taken from the input).
      for (const { target, length } of staged) {
        const now = lengthOf(target);
        if (now < length) throw shrankInFlight("read", length, now);
      }
      continue;
    }
    return unwrap(result, "readv", undefined, moved);
  }
}

const WAIT_WRITE: Wait = { wait: "write" };
const WAIT_READ: Wait = { wait: "read" };
/** errnos with which the kernel refuses to lend (not a pipe, not Linux): copy instead. */
const LEND_REFUSED = new Set([errno.EINVAL, errno.ENOSYS]);

/**
 * @internal Memory for arrays that go to native calls: V8 keeps a small typed array made by length inside the
 * JS heap, where Deno's FFI fast path cannot take its address (every call on a fresh one then takes the slow
 * path, ~10 µs), and JSC may move one; an ArrayBuffer made on its own always has its bytes outside.
 */
export function offHeap(bytes: number): ArrayBuffer {
  return new ArrayBuffer(bytes);
}

function detached(): TypeError {
  return new TypeError("a byte array in the list is detached (its page or mapping is gone, or it was transferred)");
}

function detachedInFlight(): TypeError {
  return new TypeError("a byte array given to an asynchronous call was detached (transferred) before it settled");
}

function shrankInFlight(kind: "read" | "write", length: number, now: number): TypeError {
  return new TypeError(
    `a byte array given to an asynchronous ${kind} shrank from ${length} to ${now} bytes before it settled`,
  );
}

/**
 * @internal After a wait of an asynchronous write that holds its arrays by reference (a socket's `writeAsync`,
 * which copies none): a TypeError for one now shorter than it was given (`lengths`, by chunk), as for a read's
 * target. The bytes past its new end are gone: the write cannot send them, and must not seem to have.
 */
export function checkLengths(chunks: readonly Chunk[], lengths: readonly number[]): void {
  for (let i = 0; i < chunks.length; i++) {
    const chunk = chunks[i];
    if (isView(chunk) && lengthOf(chunk) < lengths[i]) throw shrankInFlight("write", lengths[i], lengthOf(chunk));
  }
}

/**
 * @internal Each chunk's length now (a head's, an array's by the intrinsic getter): what an asynchronous write
 * was given, against which `pack` (as `queued`) and `checkLengths` refuse an array that shrank since.
 */
export function chunkLengths(chunks: readonly Chunk[]): number[] {
  const lengths: number[] = new Array(chunks.length);
  for (let i = 0; i < chunks.length; i++) {
    const chunk = chunks[i];
    lengths[i] = isView(chunk) ? lengthOf(chunk) : headLength(chunk);
  }
  return lengths;
}

function changed(bytes: Uint8Array, queued: number, now: number): TypeError {
  return new TypeError(
    `a queued byte array changed from ${queued} to ${now} bytes (${isDetached(bytes) ? "detached" : "resized"})`,
  );
}

const spareLists: PackedList[] = [];
/** Limit: lists kept for reuse (as many asynchronous calls in flight at once as are common). */
const SPARE_LISTS_MAX = 64;

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
 * import { tmpdir } from "node:os";
 * import { openFile, writev } from "@pageio/pageio";
 * using out = openFile(`${tmpdir()}/pageio-writev-${process.pid}.bin`, "w"); // Deno and Bun alike
 * const written = writev(out, [new TextEncoder().encode("page "), new TextEncoder().encode("heads")]);
 * console.log(written); // 10
 * ```
 */
export function writev(target: Target, chunks: Iterable<Chunk>): number {
  fdOf(target); // a bad target is refused before the caller's code runs
  const list = chunkList(chunks);
  const fd = fdOf(target); // read after it: that code may have closed the handle, its number now another file's
  return list.length === 0 ? 0 : gatherSync(target, fd, shared.pack(list, 0, list.length));
}

/** The synchronous driver over a packed gather write; its first step made here, as most complete at once. */
function gatherSync(target: Target, fd: number, packed: PackedList): number {
  const first = packed.call("pageio_writev", fd, 0).run();
  if (first >= 0 && first === packed.byteLength()) return first; // done: no planner needed at all
  return runSync(gatherPlan("pageio_writev", fd, packed, 0, first), fd, waitsFor(target))!;
}

/**
 * `writev` without holding up the event loop: the system call is tried at once, and only a descriptor that
 * would block waits (on one shared readiness wait, never a thread per call). The chunks must stay as they are
 * (not released, not written to) until the Promise settles; the call keeps them referenced until then. An
 * abort rejects with `ABORT_ERR` and `bytesTransferred`. Async writes to one descriptor (this, `flushAsync`, a
 * socket's `writeAsync`) are queued: each goes out whole, in call order. A synchronous write is not queued: made
 * while an async one waits, its bytes go ahead of the rest of that one.
 *
 * @example
 * ```ts
 * import { tmpdir } from "node:os";
 * import { openFile, writevAsync } from "@pageio/pageio";
 * using out = openFile(`${tmpdir()}/pageio-writevasync-${process.pid}.bin`, "w");
 * console.log(await writevAsync(out, [new TextEncoder().encode("later")])); // 5
 * ```
 */
export async function writevAsync(
  target: Target,
  chunks: Iterable<Chunk>,
  options: AsyncOptions = {},
): Promise<number> {
  const signal = checkAsyncOptions(options, "writevAsync");
  fdOf(target);
  const list = chunkList(chunks);
  const fd = fdOf(target); // after the caller's code, as in writev
  if (list.length === 0) return 0;
  // What it was given: an array that shrank before its turn came is refused (it was sent short and reported
  // as done); one that grew sends what it held at the call. From its turn on, a resizable one is copied.
  const lengths = chunkLengths(list);
  // The packed list holds the chunks (a generator's arrays have no other reference) until the call settles.
  const packed = PackedList.take();
  try {
    return (await inWriteTurn(fd, signal, () => {
      // Packed when its turn comes, as its first call is made: queued behind another write, the caller's code
      // ran meanwhile, and a list packed before named a head released since (its page's next owner's bytes).
      try {
        packed.pack(list, 0, list.length, lengths, true);
      } catch (error) {
        throw failedAfter(error, 0);
      }
      return runAsync(target, fd, gatherPlan("pageio_writev", fd, packed), signal, list);
    }))!;
  } finally {
    packed.recycle();
  }
}

/**
 * Reads from `source` into the targets in order (`readv`), until they are full,
 * the source has no more for now, or end of file. Returns the bytes read; 0 at
 * end of file. Targets with no room at all (an empty list, empty arrays) are a
 * RangeError: their 0 could not be told from end of file.
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
  fdOf(source); // a bad source is refused before the caller's code runs
  const { list: items, made } = targetList(targets); // the caller's code runs here, once
  try {
    const fd = fdOf(source); // read after it: that code may have closed the handle, its number now another file's
    const result = scatterList(fd, items);
    if (result >= 0 || !waitsFor(source)) return unwrap(result, "readv", undefined, shared.out[0]);
    // A pipe pageio made non-blocking only for its async forms: wait as a blocking one would.
    const staged = shared.packTargets(items);
    return runSync(scatterPlan(fd, shared, staged, result), fd, true);
  } finally {
    for (const head of made) head.release();
  }
}

/**
 * @internal One synchronous scatter read through the shared list: the native result (-errno on failure),
 * with the bytes read in `shared.out[0]` either way, already copied into staged targets.
 */
export function scatter(fd: number, targets: Iterable<ReadTarget>): number {
  const { list: items, made } = targetList(targets);
  try {
    return scatterList(fd, items);
  } finally {
    for (const head of made) head.release();
  }
}

function scatterList(fd: number, items: (PageHead | Uint8Array)[]): number {
  const staged = shared.packTargets(items);
  const result = shared.call("pageio_readv", fd, 0).run();
  shared.copyBack(staged, shared.out[0]); // also after a failure part-way
  return result;
}

/**
 * `readv` without holding up the event loop: reads at once what is there, and waits for a pipe or socket
 * that has nothing yet on the shared readiness wait. The targets must stay as they are until the Promise
 * settles. An abort rejects with `ABORT_ERR`, nothing read. Targets with no room at all are a RangeError, as
 * for `readv`.
 *
 * @example
 * ```ts
 * import { openFile, readvAsync } from "@pageio/pageio";
 * using file = openFile("README.md");
 * console.log(await readvAsync(file, [new Uint8Array(8)])); // 8
 * ```
 */
export async function readvAsync(
  source: Target,
  targets: Iterable<ReadTarget>,
  options: AsyncOptions = {},
): Promise<number> {
  const signal = checkAsyncOptions(options, "readvAsync");
  fdOf(source);
  const { list: items, made } = targetList(targets);
  try {
    const fd = fdOf(source); // after the caller's code, as in readv
    const packed = PackedList.take();
    try {
      const staged = packed.packTargets(items, true);
      return await runAsync(source, fd, scatterPlan(fd, packed, staged), signal, items);
    } finally {
      packed.recycle();
    }
  } finally {
    for (const head of made) head.release();
  }
}

/**
 * The caller's read targets as an array of pageio's own (caller code runs only here, before packing), pages
 * turned into heads on their whole page (`made`, released after the call).
 */
function targetList(targets: Iterable<ReadTarget>): { list: (PageHead | Uint8Array)[]; made: PageHead[] } {
  const all: unknown[] = Array.isArray(targets) ? copyOf(targets) : listOf(targets, "read targets");
  const list: (PageHead | Uint8Array)[] = [];
  const made: PageHead[] = [];
  try {
    for (let i = 0; i < all.length; i++) {
      const target = all[i];
      if (isChunk(target)) {
        if (isHead(target)) touch(target); // its bytes will differ from its file's: never moved from the file
        list.push(target);
      } else if (target instanceof Page) {
        const head = pageHead.call(target); // the class's own method: a redefined `head` never runs
        made.push(head);
        list.push(head);
      } else throw new TypeError(`readv targets are Pages, PageHeads and Uint8Arrays, got ${describe(target)} at ${i}`);
    }
  } catch (error) {
    for (const head of made) head.release();
    throw error;
  }
  return { list, made };
}
