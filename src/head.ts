/**
 * Page heads (seed 000's `a_page_head`): small descriptors that point *into*
 * a pool page or a mapping and are never part of it. Each live head holds one
 * reference on what it points into.
 * @module
 */
import { fn } from "../ffi/native.ts";
import { checkInteger, stateError } from "./errors.ts";
import type { FileHandle } from "./file.ts";
import {
  internalOnly,
  isDetachedBuffer,
  kAlive,
  kBufferOffset,
  kConstruct,
  kLabel,
  kLazy,
  kLendable,
  kMarkLent,
  kMemory,
  kNeed,
  kRegion,
  kRegionOffset,
  kRelease,
  kRetain,
  kSource,
  kViewBuffer,
} from "./internal.ts";

/** What a head can point into (a pool `Page`, a `Mapping`, a ring slot). Package-internal: symbol keys. */
export interface HeadOwner {
  /** False once unmapped or returned to its pool: heads on it are then dead. */
  readonly [kAlive]: boolean;
  /** Bytes a head may span, from the owner's byte 0. */
  readonly byteLength: number;
  /** Native region id and where the owner's byte 0 sits in that region. */
  readonly [kRegion]: number;
  /**
   * True while the owner may not hold a head's bytes yet (a PageReader window not mapped, or a copy read into
   * only where heads needed bytes): its heads ask `kNeed` with their span when their bytes are needed in memory.
   */
  readonly [kLazy]?: boolean;
  /** A lazy owner's region, once `[offset, offset + length)` of it holds its bytes (read in, or mapped). */
  [kNeed]?(offset: number, length: number): number;
  /**
   * For an owner with a file source: its region once its memory may differ from the file (mapped, copied or
   * viewed, or read into), else 0; nothing is made for this.
   */
  readonly [kMemory]?: number;
  readonly [kRegionOffset]: number;
  /** The revocable ArrayBuffer over the owner's memory, and where byte 0 sits in it. */
  [kViewBuffer](): ArrayBuffer;
  readonly [kBufferOffset]: number;
  [kRetain](): void;
  [kRelease](): void;
  /** What to call it in error messages. */
  readonly [kLabel]: string;
  /** The open file whose bytes these are, from `offset` on: lets the kernel move them (PageReader windows). */
  readonly [kSource]?: FileSource;
  /** True when the owner's memory may be lent to a pipe now (a pool page held by nothing but one head). */
  readonly [kLendable]?: boolean;
  /** Its memory was lent to a pipe: it gets fresh memory before it is used again (pool pages). */
  [kMarkLent]?(): void;
}

/** @internal What pageio's other modules may do with a head, by its private fields (see `headInternals`). */
export interface HeadInternals {
  /**
   * Whether `value` is a PageHead made by pageio: a private-field brand check, so neither a Proxy of a head
   * nor an object made from `PageHead.prototype` passes, and no user code runs.
   */
  readonly isHead: (value: unknown) => value is PageHead;
  /**
   * Writes a live head's packed descriptor {region, offset low, offset high, length} at `list[at]` (no getter
   * or method the user could redefine runs); returns `at + 4`, or -1 when the head is longer than `entryMax`
   * (the caller splits it, from `span`). Throws if it is released.
   */
  readonly pack: (head: PageHead, list: Uint32Array, at: number, entryMax: number) => number;
  /** A live head's {region, region offset, length}, for a head packed as several descriptors. */
  readonly span: (head: PageHead) => { region: number; offset: number; length: number };
  /** Bytes in a head (0 once released). */
  readonly length: (head: PageHead) => number;
  /**
   * Where a head's bytes are in a still-open file, for a kernel-side move; null for pool pages, user
   * mappings, or once the file is closed (an fd number could by then name another file).
   */
  readonly fileSpan: (head: PageHead) => { fd: number; offset: number } | null;
  /**
   * `fileSpan`, unless the head's memory no longer shows the file's bytes there (a write into it made private
   * copies): a kernel move would send the file's, so such a head is written from memory.
   */
  readonly movableSpan: (head: PageHead) => { fd: number; offset: number } | null;
  /** A read goes into a head: its owner's memory is made (as a view would), so `movableSpan` looks at it. */
  readonly touch: (head: PageHead) => void;
  /** Whether a writer may lend a head's memory to a pipe: nobody else can reach its page. */
  readonly lendable: (head: PageHead) => boolean;
  /** A head's bytes were lent to a pipe: its page gets fresh memory at its last release. */
  readonly markLent: (head: PageHead) => void;
  /** The whole pool page under a live head, as {region, offset in it, bytes}. */
  readonly page: (head: PageHead) => { region: number; offset: number; length: number };
  /** Drops a head's first `count` bytes (a partly written head in a brigade). */
  readonly consume: (head: PageHead, count: number) => void;
  /**
   * A brigade takes one of a head's references: false when brigades hold all of them already (the same head
   * queued twice on one reference would be released twice: every later flush would meet a released head).
   */
  readonly enqueue: (head: PageHead) => boolean;
  /** A brigade lets go of the reference it took (before it releases the head, or on a failed append). */
  readonly dequeue: (head: PageHead) => void;
  /**
   * Holds a live head's page or mapping for a call that runs off the JS thread (its caller may release the
   * head meanwhile): the owner is returned, to be let go with `[kRelease]()` once the call has returned.
   */
  readonly hold: (head: PageHead) => HeadOwner;
}
let internals: HeadInternals;

/** An open file and the file offset of an owner's byte 0. */
export interface FileSource {
  readonly file: FileHandle;
  readonly offset: number;
}

/**
 * A reference-counted window `{owner, offset, length}` onto a page or mapping.
 * `release()` drops this head's reference; the memory lives until the last
 * head and its owner let go.
 *
 * @example
 * ```ts
 * import { PagePool } from "@pageio/pageio";
 * using pool = new PagePool();
 * const page = pool.acquire();
 * page.bytes.set([1, 2, 3]);
 * const head = page.head(0, 3);
 * page.release();                 // the head still holds the page
 * console.log(head.bytes);        // Uint8Array(3) [ 1, 2, 3 ]
 * head.release();                 // now the page goes back to the pool
 * ```
 */
export class PageHead {
  #owner: HeadOwner | null;
  #offset: number;
  #length: number;
  #refs = 1;
  #queued = 0; // references held by brigades (each releases its own once its bytes are written)
  #bytes: Uint8Array<ArrayBuffer> | null = null;
  // The packed descriptor's words, kept ready: a gather list is built per call.
  #region: number;
  #low = 0;
  #high = 0;

  static {
    internals = Object.freeze({
      isHead: (value: unknown): value is PageHead => typeof value === "object" && value !== null && #owner in value,
      pack: (head: PageHead, list: Uint32Array, at: number, entryMax: number) => {
        const owner = head.#owner; // a TypeError for anything not a real head (callers check with isHead first)
        if (owner === null || !owner[kAlive]) head.#live("gather"); // throws the right error
        const length = head.#length;
        if (length > entryMax) return -1;
        if (head.#region === 0) head.#regionOf(owner!); // a window mapped only now
        list[at] = head.#region;
        list[at + 1] = head.#low;
        list[at + 2] = head.#high;
        list[at + 3] = length;
        return at + 4;
      },
      span: (head: PageHead) => {
        const owner = head.#live("gather");
        return { region: head.#regionOf(owner), offset: owner[kRegionOffset] + head.#offset, length: head.#length };
      },
      length: (head: PageHead) => head.#owner === null ? 0 : head.#length,
      fileSpan: (head: PageHead) => {
        const source = head.#owner?.[kSource];
        if (source === undefined || source.file.closed || !head.#owner![kAlive]) return null;
        return { fd: source.file.fd, offset: source.offset + head.#offset };
      },
      touch: (head: PageHead) => {
        const owner = head.#owner;
        if (owner?.[kSource] !== undefined && owner[kAlive]) owner[kViewBuffer]();
      },
      movableSpan: (head: PageHead) => {
        const span = internals.fileSpan(head);
        if (span === null || head.#length === 0) return span;
        const owner = head.#owner!;
        // No memory yet (a window never mapped nor copied): nothing can have changed its bytes.
        const region = owner[kMemory] ?? (owner[kLazy] === true ? 0 : owner[kRegion]);
        if (region === 0) return span;
        return fn.pageio_region_changed(region, owner[kRegionOffset] + head.#offset, head.#length) === 0 ? span : null;
      },
      lendable: (head: PageHead) => head.#refs === 1 && head.#owner?.[kLendable] === true,
      markLent: (head: PageHead) => head.#live("lend")[kMarkLent]!(),
      page: (head: PageHead) => {
        const owner = head.#live("lend");
        return { region: head.#region, offset: owner[kRegionOffset], length: owner.byteLength };
      },
      consume: (head: PageHead, count: number) => {
        head.#offset += count;
        head.#length -= count;
        head.#bytes = null;
        head.#setDescriptorOffset(head.#owner![kRegionOffset] + head.#offset);
      },
      enqueue: (head: PageHead) => {
        if (head.#queued >= head.#refs) return false;
        head.#queued++;
        return true;
      },
      dequeue: (head: PageHead) => {
        if (head.#queued > 0) head.#queued--;
      },
      hold: (head: PageHead) => {
        const owner = head.#live("gather");
        owner[kRetain]();
        return owner;
      },
    });
  }

  /** @internal Heads come from `page.head()`, `mapping.head()`, `head.slice()` and `PageReader.read()`. */
  constructor(owner: HeadOwner, offset: number, length: number, key?: symbol) {
    internalOnly(key, "PageHead", "page.head(), mapping.head() or head.slice()");
    if (!owner[kAlive]) throw stateError("ERR_RELEASED", `${owner[kLabel]} is no longer live`, "head");
    this.#owner = owner;
    this.#offset = offset;
    this.#length = length;
    this.#region = owner[kLazy] === true ? 0 : owner[kRegion]; // 0: asked for when needed
    this.#setDescriptorOffset(owner[kRegionOffset] + offset);
    owner[kRetain]();
  }

  #setDescriptorOffset(regionOffset: number): void {
    this.#low = regionOffset >>> 0;
    this.#high = (regionOffset - this.#low) / 0x1_0000_0000;
  }

  /** Its region; a lazy owner is asked with the head's span, whose bytes it brings in first. */
  #regionOf(owner: HeadOwner): number {
    if (this.#region === 0 && this.#length > 0) {
      this.#region = owner[kNeed]?.(this.#offset, this.#length) ?? owner[kRegion];
    }
    return this.#region;
  }

  #live(operation: string): HeadOwner {
    const owner = this.#owner;
    if (owner === null) throw stateError("ERR_RELEASED", "page head was released", operation);
    if (!owner[kAlive]) throw stateError("ERR_RELEASED", `page head's ${owner[kLabel]} is no longer live`, operation);
    return owner;
  }

  /** The bytes this head points at: a view of the page or mapping itself, not a copy. */
  get bytes(): Uint8Array<ArrayBuffer> {
    const owner = this.#live("bytes");
    if (this.#bytes) return this.#bytes;
    this.#regionOf(owner);
    const buffer = owner[kViewBuffer]();
    // Transferred away (by the caller, through another view): the memory is the new owner's, and the head's
    // view is empty, as its page's or mapping's own is.
    if (isDetachedBuffer(buffer)) return new Uint8Array(0);
    return this.#bytes = new Uint8Array(buffer, owner[kBufferOffset] + this.#offset, this.#length);
  }

  /** Bytes in the head; 0 once released. */
  get byteLength(): number {
    return this.#owner === null ? 0 : this.#length;
  }

  /** References held on this head; 0 once released. */
  get refs(): number {
    return this.#refs;
  }

  /** A new head on `[start, end)` of this one, holding its own reference (release it too). */
  slice(start = 0, end: number = this.#length): PageHead {
    const owner = this.#live("slice");
    checkInteger("slice start", start, 0, this.#length);
    checkInteger("slice end", end, start, this.#length);
    return new PageHead(owner, this.#offset + start, end - start, kConstruct);
  }

  /** Adds a reference; each needs its own `release()`. */
  retain(): this {
    this.#live("retain");
    if (this.#refs >= 0x7fff_ffff) throw new RangeError("page head reference count would overflow");
    this.#refs++;
    return this;
  }

  /**
   * Drops a reference; the last one lets go of the page or mapping. Releasing a released head throws, and so does
   * releasing a reference a brigade or PageWriter took (ERR_BUSY): it releases that one once the bytes are written.
   */
  release(): void {
    const owner = this.#owner;
    if (owner === null) throw stateError("ERR_RELEASED", "page head was already released", "release");
    if (this.#refs <= this.#queued) {
      // Released under a brigade (or a PageWriter) that owns it, the head would meet every later flush released.
      throw stateError("ERR_BUSY", "page head is queued for writing: it is released once written", "release");
    }
    if (--this.#refs > 0) return;
    this.#owner = null;
    this.#bytes = null;
    owner[kRelease]();
  }

  /**
   * Releases this head's reference, as `release()` does, for `using`; nothing if already released, or if the
   * reference was handed to a brigade or PageWriter (`using head = reader.read(); writer.write(head);` is right).
   */
  [Symbol.dispose](): void {
    if (this.#owner !== null && this.#refs > this.#queued) this.release();
  }
}

/** @internal Head operations by private field, for gather packing and brigades; frozen, made once. */
export const headInternals: HeadInternals = internals!;
