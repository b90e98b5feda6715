/**
 * Gather writes and scatter reads: a whole list of heads and byte arrays goes
 * down to the native side as one packed buffer of descriptors, in one FFI call.
 * @module
 */
import { ADDRESS_REGION, describeErrno, fn, IOV_MAX, native, STAGING_REGION } from "../ffi/native.ts";
import { unwrap } from "./errors.ts";
import { describe, fdOf, type Target } from "./file.ts";
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

  /** The native result of a gather write as bytes; EAGAIN with nothing written is 0; else a typed error. */
  writeResult(result: number, syscall = "writev"): number {
    if (result < 0 && this.out[0] === 0 && describeErrno(-result)[0] === "EAGAIN") return 0;
    return unwrap(result, syscall, undefined, this.out[0]);
  }

  /** One synchronous gather write of the packed list (at most `callsMax` system calls, 0 for no limit). */
  write(fd: number, callsMax: number): number {
    const { list, staging } = this;
    return this.writeResult(
      fn.pageio_writev(fd, list, list.byteLength, this.count, staging, this.stagingUsed, callsMax, this.out),
    );
  }

  /** The same, off the JS thread. */
  async writeAsync(fd: number, callsMax: number): Promise<number> {
    const { list, staging } = this;
    const args = [fd, list, list.byteLength, this.count, staging, this.stagingUsed, callsMax, this.out] as const;
    return this.writeResult(await native.async.pageio_writev(...args));
  }

  /**
   * Lends the packed heads' memory to pipe `fd` (vmsplice): bytes lent, or null when the kernel will not lend
   * (not a pipe, not Linux) and nothing moved. The list must hold only heads (staging is reused per call).
   */
  lend(fd: number, callsMax: number): number | null {
    const { list } = this;
    return this.lendResult(fn.pageio_vmsplice(fd, list, list.byteLength, this.count, null, 0, callsMax, this.out));
  }

  /** The same, off the JS thread. */
  async lendAsync(fd: number, callsMax: number): Promise<number | null> {
    const { list } = this;
    const args = [fd, list, list.byteLength, this.count, null, 0, callsMax, this.out] as const;
    return this.lendResult(await native.async.pageio_vmsplice(...args));
  }

  lendResult(result: number): number | null {
    if (result < 0 && this.out[0] === 0 && ["EINVAL", "ENOSYS"].includes(describeErrno(-result)[0])) return null;
    return this.writeResult(result, "vmsplice");
  }
}

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
 * resumed where it stopped and EINTR retried; on a non-blocking descriptor,
 * EAGAIN returns the bytes written so far. The caller keeps ownership of the
 * heads. Returns the bytes written.
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
  return shared.packChunks(array, 0, array.length).write(fd, 0);
}

/**
 * `writev` off the JS thread: the event loop runs on while a slow pipe or socket drains. The chunks must stay
 * as they are (not released, not written to) until the Promise settles.
 *
 * @example
 * ```ts
 * import { openFile, writevAsync } from "@pageio/pageio";
 * using out = openFile(await Deno.makeTempFile(), "w");
 * console.log(await writevAsync(out, [new TextEncoder().encode("later")])); // 5
 * ```
 */
export async function writevAsync(target: Target, chunks: Iterable<Chunk>): Promise<number> {
  const fd = fdOf(target);
  const array = Array.isArray(chunks) ? chunks as Chunk[] : Array.from(chunks);
  if (array.length === 0) return 0;
  return await PackedList.exact(array.length).packChunks(array, 0, array.length).writeAsync(fd, 0);
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
  const { list, staging, out } = shared;
  const result = fn.pageio_readv(fd, list, list.byteLength, array.length, staging, shared.stagingUsed, 0, out);
  shared.copyBack(staged, out[0]); // also after a failure part-way
  return unwrap(result, "readv", undefined, out[0]);
}

/**
 * `readv` off the JS thread: waits for a pipe or socket without holding up the event loop. The targets must
 * stay as they are until the Promise settles.
 *
 * @example
 * ```ts
 * import { openFile, readvAsync } from "@pageio/pageio";
 * using file = openFile("README.md");
 * console.log(await readvAsync(file, [new Uint8Array(8)])); // 8
 * ```
 */
export async function readvAsync(source: Target, targets: Iterable<ReadTarget>): Promise<number> {
  const fd = fdOf(source);
  const array = Array.isArray(targets) ? targets as ReadTarget[] : Array.from(targets);
  const packed = PackedList.exact(array.length);
  const staged = packed.packTargets(array);
  const { list, staging, out } = packed;
  const result = await native.async.pageio_readv(
    fd,
    list,
    list.byteLength,
    array.length,
    staging,
    packed.stagingUsed,
    0,
    out,
  );
  packed.copyBack(staged, out[0]);
  return unwrap(result, "readv", undefined, out[0]);
}
