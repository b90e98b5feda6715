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

let list = new Uint32Array(4 * IOV_MAX);
let staging = new Uint8Array(64 * 1024);
let stagingUsed = 0;
const out = new Float64Array(1);

function ensureEntries(count: number): void {
  if (list.length < 4 * count) list = new Uint32Array(Math.max(4 * count, list.length * 2));
}

function stage(length: number): number {
  if (stagingUsed + length > staging.length) {
    const grown = new Uint8Array(Math.max(stagingUsed + length, staging.length * 2));
    grown.set(staging.subarray(0, stagingUsed));
    staging = grown;
  }
  const at = stagingUsed;
  stagingUsed += length;
  return at;
}

/** @internal A detached array (its page or mapping is gone) never reaches native code. */
export function checkAttached(bytes: Uint8Array): void {
  if ((bytes.buffer as ArrayBuffer).detached) {
    throw new TypeError("a byte array in the list is detached (its page or mapping is gone)");
  }
}

function packBytes(bytes: Uint8Array, at: number, copyIn: boolean): number {
  checkAttached(bytes);
  const length = bytes.byteLength;
  if (length === 0) {
    list[at] = STAGING_REGION;
    list[at + 1] = list[at + 2] = list[at + 3] = 0;
  } else if (length < native.stagingLimit) {
    const offset = stage(length);
    if (copyIn) staging.set(bytes, offset);
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
  if (length > 0xffff_ffff) throw new RangeError(`a byte array of ${length} bytes is over the 4 GiB entry limit`);
  return length;
}

/** @internal Packs `chunks[start, end)` into the shared list; returns the entry count. */
export function packChunks(chunks: readonly Chunk[], start: number, end: number): number {
  const count = end - start;
  ensureEntries(count);
  stagingUsed = 0;
  for (let i = 0; i < count; i++) {
    const chunk = chunks[start + i];
    if (chunk instanceof PageHead) chunk._pack(list, 4 * i);
    else if (chunk instanceof Uint8Array) packBytes(chunk, 4 * i, true);
    else throw new TypeError(`a gather list holds PageHeads and Uint8Arrays, got ${describe(chunk)} at ${start + i}`);
  }
  return count;
}

/**
 * @internal One native gather call over the packed list (at most `callsMax`
 * system calls, 0 for as many as it takes). Returns bytes written; EAGAIN
 * with nothing written returns 0; other errors throw with `bytesTransferred`.
 */
export function writePacked(fd: number, count: number, callsMax: number): number {
  const result = fn.pageio_writev(fd, list, list.byteLength, count, staging, stagingUsed, callsMax, out);
  if (result < 0 && out[0] === 0 && describeErrno(-result)[0] === "EAGAIN") return 0;
  return unwrap(result, "writev", undefined, out[0]);
}

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
  return writePacked(fd, packChunks(array, 0, array.length), 0);
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
  ensureEntries(array.length);
  stagingUsed = 0;
  const staged: (Uint8Array | null)[] = new Array(array.length).fill(null);
  for (let i = 0; i < array.length; i++) {
    const target = array[i];
    if (target instanceof PageHead) target._pack(list, 4 * i);
    else if (target instanceof Page) {
      const head = target.head();
      head._pack(list, 4 * i);
      head.release();
    } else if (target instanceof Uint8Array) {
      packBytes(target, 4 * i, false);
      if (list[4 * i] === STAGING_REGION) staged[i] = target;
    } else throw new TypeError(`readv targets are Pages, PageHeads and Uint8Arrays, got ${describe(target)} at ${i}`);
  }
  const result = fn.pageio_readv(fd, list, list.byteLength, array.length, staging, stagingUsed, 0, out);
  // Copy back what landed in staging (entries fill in order), also after a failure part-way.
  let remaining = out[0];
  for (let i = 0; i < array.length && remaining > 0; i++) {
    const part = Math.min(list[4 * i + 3], remaining);
    const target = staged[i];
    if (target !== null) target.set(staging.subarray(list[4 * i + 1], list[4 * i + 1] + part));
    remaining -= part;
  }
  return unwrap(result, "readv", undefined, out[0]);
}
