/**
 * Sharing memory with Workers of the same process, without a copy: the region table is process-wide, so a
 * mapping or a pool page travels as a small descriptor that the Worker turns back into a view of the same
 * memory. The descriptor holds a native reference until taken; the taker's view holds it until released.
 * @module
 */
import { errno, fn, native } from "../ffi/native.ts";
import { checkInteger, PageIoError, unwrap } from "./errors.ts";
import { internalOnly, kConstruct, kRegion, kRelease, kRetain, revoke } from "./internal.ts";
import type { Page } from "./pool.ts";

/**
 * A mapping's or pool page's bytes as a plain object for `postMessage` (it is cloned, nothing is copied
 * but these fields). Take it once, in any thread of this process, with `takeShared` (or
 * `Mapping.fromShared`/`Page.fromShared`).
 */
export interface SharedMemory {
  /** Marks the object as pageio's descriptor. */
  readonly pageio: "shared-memory";
  /** The native share's id. */
  readonly id: number;
  /** Bytes shared. */
  readonly byteLength: number;
}

/** Options of `mapping.share()` and `page.share()`. */
export interface ShareOptions {
  /** First byte shared (default 0). */
  offset?: number;
  /** Bytes shared (default: to the end). */
  length?: number;
  /**
   * Milliseconds within which the descriptor must be taken (default 60 000): until then it keeps the memory
   * even if its owner lets go (a message in flight), and a lost one does not pin the memory for good. Taking
   * it later is `ENOENT`.
   */
  untakenTimeout?: number;
}

const out = new Float64Array(2);

/**
 * @internal A native share of `[regionOffset, regionOffset + length)` of `region`. Takes the `untakenTimeout`
 * option's value, read by the caller before it checked its state: no caller's code runs here.
 */
export function shareRegion(region: number, regionOffset: number, length: number, untakenTimeout: unknown): number {
  const grace = checkInteger("untakenTimeout", untakenTimeout ?? 60_000, 0, 0xFFFF_FFFF);
  const id = fn.pageio_share(region, regionOffset, length, grace);
  if (id === -errno.ENOSPC) { // the kernel's text, "no space left on device", would mislead
    throw new PageIoError(
      "ENOSPC",
      "ENOSPC: the process's table of live shares is full (each descriptor holds " +
        "one until it is taken and released, or its untakenTimeout passes), share",
      { errno: -id, syscall: "share" },
    );
  }
  return unwrap(id, "share");
}

/** @internal The descriptor of a share. */
export function descriptor(id: number, byteLength: number): SharedMemory {
  return { pageio: "shared-memory", id, byteLength };
}

/**
 * The memory a `SharedMemory` descriptor names, as a view of the very same bytes. `release()` it (or let
 * `using` do it): its `bytes` then read as empty and the memory may go once its owner let go too.
 *
 * @example
 * ```ts
 * import { PagePool, takeShared } from "@pageio/pageio";
 * using pool = new PagePool();
 * using page = pool.acquire();
 * const view = takeShared(page.share()); // in a Worker, from the descriptor it was posted
 * view.bytes[0] = 1;
 * console.log(page.bytes[0]); // 1: the same memory
 * view.release();
 * console.log(view.released, view.bytes.byteLength); // true 0
 * ```
 */
export class SharedView {
  #id: number;
  #buffer: ArrayBuffer | null;
  #bytes: Uint8Array<ArrayBuffer>;
  /** Bytes in the view. */
  readonly byteLength: number;

  /** @internal Use `takeShared`. */
  constructor(id: number, region: number, address: number, byteLength: number, key?: symbol) {
    internalOnly(key, "SharedView", "takeShared()");
    this.#id = id;
    this.byteLength = byteLength;
    this.#buffer = byteLength === 0 ? null : native.view(region, address, byteLength);
    this.#bytes = this.#buffer === null ? new Uint8Array(0) : new Uint8Array(this.#buffer);
  }

  /** The shared bytes (no copy). Empty once released. */
  get bytes(): Uint8Array<ArrayBuffer> {
    return this.#bytes;
  }

  /** True once released. */
  get released(): boolean {
    return this.#id === 0;
  }

  /**
   * Revokes the view and gives the reference back. If the view's `ArrayBuffer` was moved out of reach
   * (`transfer()`, a transfer list) it cannot be revoked, so the memory then stays mapped for good rather
   * than under a view that outlives it. Hand the bytes to an API that keeps them after this (a `Response`
   * body) only as a copy. A Worker that ends without releasing keeps the memory mapped (never freed under
   * it). A second call does nothing.
   */
  release(): void {
    const id = this.#id;
    if (id === 0) return;
    this.#id = 0;
    const buffer = this.#buffer;
    this.#buffer = null;
    this.#bytes = new Uint8Array(0);
    // Every view on it now has length 0; detached by someone else, it escaped: keep the memory.
    if (buffer !== null && revoke(buffer, false).escaped) return;
    unwrap(fn.pageio_share_drop(id), "share drop");
  }

  /** Releases, as `release()` does, for `using`. */
  [Symbol.dispose](): void {
    this.release();
  }
}

/**
 * Takes a descriptor from `mapping.share()` or `page.share()` (posted from another thread of this process)
 * and returns a view of the same memory. A descriptor is taken once: again is `EALREADY`; an unknown or
 * expired one is `ENOENT`.
 *
 * @example
 * ```ts
 * import { mapAnonymous, takeShared } from "@pageio/pageio";
 * using memory = mapAnonymous(4096);
 * memory.bytes[0] = 42;
 * const shared = memory.share(); // postMessage(shared) to a Worker, which takes it there
 * using view = takeShared(shared);
 * console.log(view.bytes[0]); // 42
 * ```
 */
export function takeShared(shared: SharedMemory): SharedView {
  if (typeof shared !== "object" || shared === null) {
    throw new TypeError(`expected a SharedMemory descriptor, got ${shared === null ? "null" : typeof shared}`);
  }
  // Each field read once: a getter or Proxy cannot change it between the check and the use.
  const tag: unknown = shared.pageio;
  const id: unknown = shared.id;
  if (tag !== "shared-memory") throw new TypeError('expected a SharedMemory descriptor (pageio: "shared-memory")');
  const share = checkInteger("shared id", id, 1, 0xFFFF_FFFF);
  const taken = fn.pageio_share_take(share, out);
  // The kernel's texts for these ("operation already in progress", "no such file or directory") would mislead.
  if (taken === -errno.EALREADY || taken === -errno.ENOENT) {
    const code = taken === -errno.EALREADY ? "EALREADY" : "ENOENT";
    const why = code === "EALREADY"
      ? "was already taken (a descriptor is taken once)"
      : "names no live shared memory (unknown, taken and released, or expired: untakenTimeout)";
    throw new PageIoError(code, `${code}: shared-memory descriptor ${share} ${why}, share take`, {
      errno: -taken,
      syscall: "share take",
    });
  }
  const length = unwrap(taken, "share take");
  return new SharedView(share, out[1], out[0], length, kConstruct);
}

/** Pool pages shared with other threads, each held until its share is dropped there. */
const sharedPages: { page: Page; id: number }[] = [];

/** @internal A page's share holds a reference on the page, so its pool reuses it only once the taker let go. */
export function sharePage(page: Page, regionOffset: number, length: number, untakenTimeout: unknown): number {
  const id = shareRegion(page[kRegion], regionOffset, length, untakenTimeout);
  page[kRetain]();
  sharedPages.push({ page, id });
  // A closed pool acquires no more, so a timer (not keeping the program alive) also takes pages back.
  if (reclaimTimer === undefined) {
    reclaimTimer = setInterval(() => {
      reclaimSharedPages();
      if (sharedPages.length === 0) {
        clearInterval(reclaimTimer);
        reclaimTimer = undefined;
      }
    }, RECLAIM_EVERY_MS);
    unrefTimer(reclaimTimer);
  }
  return id;
}

/** Limit: how often pages shared out are checked for return while any are (a pool checks at acquire too). */
const RECLAIM_EVERY_MS = 200;
let reclaimTimer: ReturnType<typeof setInterval> | undefined;

function unrefTimer(timer: ReturnType<typeof setInterval>): void {
  if (typeof Deno !== "undefined") Deno.unrefTimer(timer as unknown as number);
  else (timer as unknown as { unref(): void }).unref();
}

/** @internal Releases the pages whose shares are gone (taken and released, or expired); true if any. */
export function reclaimSharedPages(): boolean {
  let reclaimed = false;
  for (let i = sharedPages.length - 1; i >= 0; i--) {
    const { page, id } = sharedPages[i];
    if (fn.pageio_share_live(id) === 1) continue;
    sharedPages.splice(i, 1);
    page[kRelease]();
    reclaimed = true;
  }
  return reclaimed;
}

/** @internal Live native shares in this process (tests). */
export function liveShareCount(): number {
  return fn.pageio_share_count();
}
