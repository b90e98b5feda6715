/**
 * Page pools: page-aligned pages carved from mmap'ed slabs, handed out and
 * taken back without touching the JS heap. A page returns to its pool when
 * its last reference (the page's or a head's) is released; its views are
 * revoked then, so a stale view can never see the page's next owner.
 * @module
 */
import { fn, native } from "../ffi/native.ts";
import { checkInteger, checkOptions, stateError, unwrap } from "./errors.ts";
import { PageHead } from "./head.ts";
import {
  internalOnly,
  isDetachedBuffer,
  kAlive,
  kBufferOffset,
  kConstruct,
  kLabel,
  kLendable,
  kMarkLent,
  kRegion,
  kRegionOffset,
  kRelease,
  kRetain,
  kViewBuffer,
  readEnv,
  revoke,
} from "./internal.ts";
import { pageSize as osPageSize } from "./system.ts";
import {
  descriptor,
  reclaimSharedPages,
  type SharedMemory,
  type SharedView,
  type ShareOptions,
  sharePage,
  takeShared,
} from "./share.ts";

/** The keys of PagePoolOptions. */
const POOL_OPTIONS = ["pageSize", "pages", "maxPages", "leakDetection"] as const;

/** Options of `new PagePool()`. */
export interface PagePoolOptions {
  /** Bytes per page: a multiple of the OS page size (default: the OS page size). */
  pageSize?: number;
  /** Pages to set up now (default: one slab). */
  pages?: number;
  /** Most pages the pool will ever hold (default: 1 GiB worth). */
  maxPages?: number;
  /**
   * Reporting of pages garbage-collected without `release()`: `"sampled"`
   * (default) watches 1 page in 128, `"paranoid"` every page with the stack
   * where it was acquired, `"off"` none. `PAGEIO_LEAKS` may also set it.
   */
  leakDetection?: "off" | "sampled" | "paranoid";
}

/** Counts of a pool's pages. */
export interface PagePoolStats {
  /** Bytes per page. */
  pageSize: number;
  /** Pages the pool has set up (free plus in use). */
  total: number;
  /** Pages ready to be acquired without growing. */
  free: number;
  /** Pages acquired and not yet back (leaked ones included). */
  inUse: number;
  /** Pages garbage-collected while still acquired (reported, never reused). */
  leaked: number;
  /**
   * Pages released after their `bytes.buffer` was transferred away (`transfer()`, `structuredClone`,
   * `postMessage`): never reused, since the new owner may still read them.
   */
  retired: number;
}

/** Limit: bytes per slab mapping; pages come from slabs of about this size. */
const SLAB_BYTES = 1 << 20;
const SAMPLE_EVERY = 128;
const out = new Float64Array(1);

interface LeakRecord {
  pool: WeakRef<PagePool>;
  stack?: string;
}
// Pool methods only its pages call.
const kBuffer = Symbol("pageio.pageBuffer");
const kReturn = Symbol("pageio.pageReturn");
const kLeaked = Symbol("pageio.pageLeaked");
const kShared = Symbol("pageio.pageShared");

const leaks = new FinalizationRegistry<LeakRecord>((record) => record.pool.deref()?.[kLeaked](record.stack));

/**
 * A pool's memory: its slabs and the revocable view of each page. Kept apart from the pool so that the
 * backstop below can let go of it once the pool is collected: every page is then unreachable too (pages
 * hold their pool), and what views remain are revoked, as `close()` would, before the slabs are unmapped.
 */
class Slabs {
  readonly regions: number[] = [];
  readonly addresses: number[] = [];
  /** One revocable ArrayBuffer per page, made when first viewed. */
  readonly buffers: (ArrayBuffer | null)[] = [];
  /** Slabs holding a page whose view escaped: on Deno they are retired, never unmapped. */
  readonly escaped = new Set<number>();
  released = false;

  constructor(readonly pageSize: number, readonly pagesPerSlab: number) {}

  grow(): void {
    const region = unwrap(fn.pageio_map_anonymous(this.pageSize * this.pagesPerSlab, 0, out), "mmap");
    this.regions.push(region);
    this.addresses.push(out[0]);
  }

  slabOf(index: number): number {
    return Math.floor(index / this.pagesPerSlab);
  }

  buffer(index: number): ArrayBuffer {
    let buffer = this.buffers[index];
    if (buffer === null || buffer === undefined) {
      const slab = this.slabOf(index);
      const offset = (index - slab * this.pagesPerSlab) * this.pageSize;
      buffer = native.view(this.regions[slab], this.addresses[slab] + offset, this.pageSize);
      this.buffers[index] = buffer;
    }
    return buffer;
  }

  /** Whether page `index`'s buffer is still this pool's own (not detached by a `transfer()` elsewhere). */
  intact(index: number): boolean {
    const buffer = this.buffers[index];
    return buffer !== null && buffer !== undefined && !isDetachedBuffer(buffer);
  }

  /** Revokes page `index`'s views; false when its buffer escaped (then the page must never be reused). */
  revoke(index: number): boolean {
    const buffer = this.buffers[index];
    if (buffer === null || buffer === undefined) return true;
    const revoked = revoke(buffer, true);
    this.buffers[index] = revoked.buffer;
    if (revoked.escaped) this.escaped.add(this.slabOf(index));
    return !revoked.escaped;
  }

  /** Revokes every view, then lets go of every slab (Deno: a slab with an escaped page is retired). */
  release(): void {
    if (this.released) return;
    this.released = true;
    for (let index = 0; index < this.buffers.length; index++) {
      const buffer = this.buffers[index];
      if (buffer !== null && buffer !== undefined && revoke(buffer, false).escaped) {
        this.escaped.add(this.slabOf(index));
      }
      this.buffers[index] = null;
    }
    let failure = 0;
    this.regions.forEach((region, slab) => {
      const result = this.escaped.has(slab) && !native.viewsTracked
        ? fn.pageio_retire(region)
        : fn.pageio_unmap(region);
      if (result < 0) failure = result;
    });
    this.regions.length = 0;
    unwrap(failure, "munmap");
  }
}

// Backstop for pools dropped without close(): see Slabs.
const droppedPools = new FinalizationRegistry<Slabs>((slabs) => slabs.release());

function leakLevel(option: PagePoolOptions["leakDetection"]): number {
  const level: string = option ?? readEnv("PAGEIO_LEAKS") ?? "sampled";
  switch (level) {
    case "off":
      return 0;
    case "sampled":
      return SAMPLE_EVERY;
    case "paranoid":
      return 1;
    default:
      throw new TypeError(`leakDetection must be "off", "sampled" or "paranoid", got ${String(level)}`);
  }
}

/**
 * A pool of pages.
 *
 * @example
 * ```ts
 * import { PagePool } from "@pageio/pageio";
 * using pool = new PagePool({ pages: 4 });
 * const page = pool.acquire();
 * page.bytes.fill(7);
 * page.release();
 * console.log(pool.stats.inUse); // 0
 * ```
 */
export class PagePool {
  /** Bytes per page: a multiple of the OS page size. */
  readonly pageSize: number;
  /** Most pages the pool will hold; `acquire()` past it throws `ERR_POOL_EXHAUSTED`. */
  readonly maxPages: number;
  readonly #pagesPerSlab: number;
  readonly #slabs: Slabs;
  /** Pages set up (free, in use, leaked or retired). */
  #total = 0;
  #viewed: Uint8Array = new Uint8Array(0);
  #free: Int32Array = new Int32Array(0);
  #freeCount = 0;
  #inUse = 0;
  #leaked = 0;
  #retired = 0;
  #closed = false;
  readonly #leakEvery: number;
  #acquired = 0;
  #sharing = false;

  /** A pool with `pages` pages set up now, growing by slabs of about 1 MiB up to `maxPages`. */
  constructor(options: PagePoolOptions = {}) {
    checkOptions(options, "PagePool", POOL_OPTIONS);
    const size = options.pageSize ?? osPageSize;
    checkInteger("pageSize", size, 1, 2 ** 31 - osPageSize);
    if (size % osPageSize !== 0) {
      throw new RangeError(`pageSize ${size} is not a multiple of the OS page size ${osPageSize}`);
    }
    this.pageSize = size;
    this.#pagesPerSlab = Math.max(1, Math.floor(SLAB_BYTES / size));
    this.maxPages = checkInteger("maxPages", options.maxPages ?? Math.max(1, Math.floor(2 ** 30 / size)), 1, 2 ** 24);
    const pages = checkInteger("pages", options.pages ?? this.#pagesPerSlab, 0, this.maxPages);
    this.#leakEvery = leakLevel(options.leakDetection);
    this.#slabs = new Slabs(size, this.#pagesPerSlab);
    try {
      while (this.#total < pages) this.#grow();
    } catch (error) {
      this.#slabs.release(); // a pool that failed to set up leaves nothing mapped
      throw error;
    }
    droppedPools.register(this, this.#slabs, this);
  }

  /** Takes a page (one reference). Throws `ERR_POOL_EXHAUSTED` past `maxPages` and `ERR_CLOSED` after `close()`. */
  acquire(): Page {
    if (this.#closed) throw stateError("ERR_CLOSED", "page pool is closed", "acquire");
    if (this.#freeCount === 0 && this.#sharing) reclaimSharedPages(); // pages Workers are done with come back
    if (this.#freeCount === 0) {
      if (this.#total >= this.maxPages) {
        throw stateError(
          "ERR_POOL_EXHAUSTED",
          `page pool is at its maxPages (${this.maxPages}); release pages first`,
          "acquire",
        );
      }
      this.#grow();
    }
    const index = this.#free[--this.#freeCount];
    this.#inUse++;
    const slab = Math.floor(index / this.#pagesPerSlab);
    const page = new Page(
      this,
      index,
      this.#slabs.regions[slab],
      (index - slab * this.#pagesPerSlab) * this.pageSize,
      kConstruct,
    );
    if (this.#leakEvery !== 0 && ++this.#acquired % this.#leakEvery === 0) {
      leaks.register(
        page,
        { pool: new WeakRef(this), stack: this.#leakEvery === 1 ? new Error().stack : undefined },
        page,
      );
    }
    return page;
  }

  /** Page counts now. */
  get stats(): PagePoolStats {
    return {
      pageSize: this.pageSize,
      total: this.#total,
      free: this.#freeCount,
      inUse: this.#inUse,
      leaked: this.#leaked,
      retired: this.#retired,
    };
  }

  /** True once `close()` has run. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * No more `acquire()`. The slabs go back to the OS now if every page is
   * back, else when the last one is released: pages in use stay valid.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#inUse - this.#leaked === 0) this.#unmapSlabs();
  }

  /** Closes, as `close()` does, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  #grow(): void {
    this.#slabs.grow();
    const first = this.#total;
    // The last slab may hold pages past maxPages: they are never handed out.
    const total = Math.min(first + this.#pagesPerSlab, this.maxPages);
    if (total > this.#free.length) {
      // Room for twice as many: grown by one slab at a time, copying them all each time was quadratic (a pool of
      // 2^24 pages took minutes to set up).
      const room = Math.min(this.maxPages, Math.max(total, 2 * this.#free.length));
      const free = new Int32Array(room);
      free.set(this.#free.subarray(0, this.#freeCount));
      const viewed = new Uint8Array(room);
      viewed.set(this.#viewed);
      this.#free = free;
      this.#viewed = viewed;
    }
    // Lowest index on top of the stack, so pages go out in address order.
    for (let index = total - 1; index >= first; index--) this.#free[this.#freeCount++] = index;
    this.#total = total;
  }

  #unmapSlabs(): void {
    droppedPools.unregister(this);
    this.#slabs.release();
  }

  /** @internal The page's revocable buffer, made on first use. */
  [kBuffer](index: number): ArrayBuffer {
    this.#viewed[index] = 1;
    return this.#slabs.buffer(index);
  }

  /**
   * @internal The last reference to page `index` went. `privateViews`: no view of it ever reached user code,
   * so there is none to revoke (its buffer stays, still marked viewed: the next owner's views are revoked).
   */
  [kReturn](page: Page, index: number, lost = false, privateViews = false): void {
    if (this.#leakEvery !== 0) leaks.unregister(page);
    this.#inUse--;
    if (this.#viewed[index] === 1 && !(privateViews && !lost && this.#slabs.intact(index))) {
      this.#viewed[index] = 0;
      // Same memory, new ArrayBuffer: every view handed out so far is now empty. Unless the buffer was
      // transferred away: then its new owner may still read the page, which is never handed out again.
      if (!this.#slabs.revoke(index) || lost) this.#retired++;
      else this.#free[this.#freeCount++] = index;
    } else if (lost) this.#retired++; // a lent page whose memory could not be replaced: never reused in place
    else this.#free[this.#freeCount++] = index;
    if (this.#closed && this.#inUse - this.#leaked === 0) this.#unmapSlabs();
  }

  /** @internal A page of this pool was shared with another thread. */
  [kShared](): void {
    this.#sharing = true;
  }

  /** @internal A page was garbage-collected while acquired. */
  [kLeaked](stack?: string): void {
    this.#leaked++;
    console.warn(
      "pageio LEAK: a pool page was garbage-collected before release(); it is lost to the pool." +
        (stack
          ? `\nAcquired at:\n${stack}`
          : ' Set leakDetection: "paranoid" (or PAGEIO_LEAKS=paranoid) to see where.'),
    );
    if (this.#closed && this.#inUse - this.#leaked === 0) this.#unmapSlabs();
  }
}

// Set by Page's static block (see markPrivateViews).
let setPrivateViews: ((page: Page) => void) | undefined;

/**
 * A page from a `PagePool`, holding one reference when acquired.
 *
 * @example
 * ```ts
 * import { PagePool } from "@pageio/pageio";
 * const pool = new PagePool();
 * const page = pool.acquire();
 * console.log(page.bytes.byteLength === pool.pageSize); // true
 * page.release();
 * pool.close();
 * ```
 */
export class Page {
  #pool: PagePool | null;
  readonly #index: number;
  #refs = 1;
  #lent = false;
  #privateViews = false;
  #bytes: Uint8Array<ArrayBuffer> | null = null;
  /** The slab's native region id, and where this page sits in it. */
  readonly #region: number;
  readonly #regionOffset: number;

  /** @internal Pages come from `PagePool.acquire()`. */
  constructor(pool: PagePool, index: number, region: number, regionOffset: number, key?: symbol) {
    internalOnly(key, "Page", "pool.acquire()");
    this.#pool = pool;
    this.#index = index;
    this.#region = region;
    this.#regionOffset = regionOffset;
  }

  #live(operation: string): PagePool {
    if (this.#pool === null) throw stateError("ERR_RELEASED", "page was released to its pool", operation);
    return this.#pool;
  }

  /** The page's memory (no copy). Empty once the page is back in its pool. */
  get bytes(): Uint8Array<ArrayBuffer> {
    return this.#bytes ??= new Uint8Array(this.#live("bytes")[kBuffer](this.#index));
  }

  /** References held (the page's own plus one per head); 0 once back in the pool. */
  get refs(): number {
    return this.#refs;
  }

  /** A head on `[offset, offset + length)` of the page; release it when done. */
  head(offset = 0, length?: number): PageHead {
    const pool = this.#live("head");
    checkInteger("head offset", offset, 0, pool.pageSize);
    const len = length ?? pool.pageSize - offset;
    checkInteger("head length", len, 0, pool.pageSize - offset);
    return new PageHead(this, offset, len, kConstruct);
  }

  /** Adds a reference; each needs its own `release()`. */
  retain(): this {
    this.#live("retain");
    this[kRetain]();
    return this;
  }

  /** Drops a reference; the last one returns the page to its pool. Releasing a released page throws. */
  release(): void {
    this.#live("release");
    this[kRelease]();
  }

  /**
   * A descriptor of `[offset, offset + length)` of this page for `postMessage` to a Worker of this process,
   * which turns it into a view of the same memory (`Page.fromShared`). The descriptor holds a reference on
   * the page: its pool reuses it only after the Worker released its view (or the descriptor expired untaken,
   * see `untakenTimeout`), so the Worker never sees the page's next owner.
   *
   * @example
   * ```ts
   * import { Page, PagePool } from "@pageio/pageio";
   * using pool = new PagePool();
   * using page = pool.acquire();
   * page.bytes[0] = 7;
   * const shared = page.share(); // worker.postMessage(shared)
   * using view = Page.fromShared(shared); // in the Worker
   * console.log(view.bytes[0]); // 7
   * ```
   */
  share(options: ShareOptions = {}): SharedMemory {
    checkOptions(options, "share");
    // Each option read once, before the page's state: a getter that released the page must not get it shared
    // (the descriptor's view was then the page's next owner's memory).
    const { offset: at, length: wanted, untakenTimeout } = options;
    const pool = this.#live("share");
    const offset = checkInteger("share offset", at ?? 0, 0, pool.pageSize);
    const length = checkInteger("share length", wanted ?? pool.pageSize - offset, 0, pool.pageSize - offset);
    const id = sharePage(this, this.#regionOffset + offset, length, untakenTimeout);
    pool[kShared]();
    return descriptor(id, length);
  }

  /** The memory a `share()` descriptor names, as a view of the same bytes (`takeShared`). */
  static fromShared(shared: SharedMemory): SharedView {
    return takeShared(shared);
  }

  /** Releases the page's reference, as `release()` does, for `using`; nothing if already back in its pool. */
  [Symbol.dispose](): void {
    if (this.#pool !== null) this[kRelease]();
  }

  /** @internal */
  get [kAlive](): boolean {
    return this.#pool !== null;
  }

  /** Bytes in the page (the pool's page size); 0 once back in the pool. */
  get byteLength(): number {
    return this.#pool?.pageSize ?? 0;
  }

  /** @internal Only one head holds the page: its memory may be lent to a pipe. */
  get [kLendable](): boolean {
    return this.#refs === 1 && this.#pool !== null;
  }

  /**
   * @internal The page's memory went into a pipe by reference (vmsplice): the pipe, and any pipe or file its
   * reader splices or tees it on to, may hold these very pages for as long as it likes, and nothing the
   * kernel tells us proves they let go. So the page gets fresh memory before it can be acquired again.
   */
  [kMarkLent](): void {
    this.#live("lend");
    this.#lent = true;
  }

  static {
    // A function of this module, not a method: a method (symbol-keyed too) is found and called by user code,
    // which would keep its views of a page that goes to its next owner unrevoked.
    setPrivateViews = (page) => {
      page.#privateViews = true;
    };
  }

  /** @internal */
  get [kRegion](): number {
    return this.#region;
  }

  /** @internal */
  get [kRegionOffset](): number {
    return this.#regionOffset;
  }

  /** @internal */
  readonly [kBufferOffset] = 0;

  /** @internal */
  readonly [kLabel] = "pool page";

  /** @internal */
  [kViewBuffer](): ArrayBuffer {
    return this.#live("bytes")[kBuffer](this.#index);
  }

  /** @internal */
  [kRetain](): void {
    if (this.#refs >= 0x7fff_ffff) throw new RangeError("page reference count would overflow");
    this.#refs++;
  }

  /** @internal */
  [kRelease](): void {
    if (--this.#refs > 0) return;
    const pool = this.#pool!;
    this.#pool = null;
    this.#bytes = null;
    // Lent: fresh pages at the same address (MAP_FIXED), the pipe keeps the old ones; if that fails the page
    // is never handed out again rather than reused in place.
    const lost = this.#lent && fn.pageio_replace_pages(this.#region, this.#regionOffset, pool.pageSize) < 0;
    pool[kReturn](this, this.#index, lost, this.#privateViews);
  }
}

/**
 * @internal Declares that no view of `page` (its `bytes`, a head's `bytes`) will ever reach user code: a writer
 * encoding into a page of its own, whose heads only its brigade holds. Its last release then skips revocation,
 * a `transfer()` that on Bun also counts as fresh memory for the collector, every time.
 */
export const markPrivateViews: (page: Page) => void = setPrivateViews!;
