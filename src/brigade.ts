/**
 * A brigade: an ordered, append-only queue of heads (and byte arrays) that
 * leaves in gather writes. It owns what it holds: written heads are released.
 * @module
 */
import { IOV_MAX } from "../ffi/native.ts";
import { stateError } from "./errors.ts";
import { describe, fdOf, type Target } from "./file.ts";
import { checkAttached, type Chunk, packChunks, writePacked } from "./gather.ts";
import { PageHead } from "./head.ts";

/**
 * @example
 * ```ts
 * import { Brigade, openFile, PagePool } from "@pageio/pageio";
 * using pool = new PagePool();
 * using out = openFile(await Deno.makeTempFile(), "w");
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
  #start = 0;
  #byteLength = 0;

  /** Queues chunks at the end; the brigade takes ownership of heads. */
  append(...chunks: Chunk[]): this {
    this.#byteLength += totalLength(chunks); // checks them all before queuing any
    this.#chunks.push(...chunks);
    return this;
  }

  /** Queues chunks at the front, in the order given (a header before a body). */
  prepend(...chunks: Chunk[]): this {
    this.#byteLength += totalLength(chunks);
    this.#chunks.splice(this.#start, 0, ...chunks);
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
    return this.#write(target, Math.min(this.count, IOV_MAX), 1);
  }

  /** Writes until the brigade is empty (or a non-blocking target would block); returns bytes written. */
  flush(target: Target): number {
    return this.#write(target, this.count, 0);
  }

  #write(target: Target, count: number, callsMax: number): number {
    const fd = fdOf(target);
    if (count === 0) return 0;
    packChunks(this.#chunks, this.#start, this.#start + count);
    let written = 0;
    try {
      written = writePacked(fd, count, callsMax);
    } catch (error) {
      this.#consume((error as { bytesTransferred?: number }).bytesTransferred ?? 0);
      throw error;
    }
    this.#consume(written);
    return written;
  }

  #consume(written: number): void {
    this.#byteLength -= written;
    const chunks = this.#chunks;
    let left = written;
    while (left > 0) {
      const chunk = chunks[this.#start];
      const length = chunk.byteLength;
      if (left < length) {
        if (chunk instanceof PageHead) chunk._consume(left);
        else chunks[this.#start] = chunk.subarray(left);
        break;
      }
      left -= length;
      if (chunk instanceof PageHead) chunk.release();
      chunks[this.#start++] = undefined as unknown as Chunk;
    }
    if (this.#start === chunks.length) {
      chunks.length = 0;
      this.#start = 0;
    } else if (this.#start > 1024 && this.#start * 2 > chunks.length) {
      chunks.splice(0, this.#start);
      this.#start = 0;
    }
  }

  /** Releases every queued head and empties the brigade. */
  release(): void {
    const chunks = this.#chunks.splice(this.#start);
    this.#chunks.length = 0;
    this.#start = 0;
    this.#byteLength = 0;
    for (const chunk of chunks) if (chunk instanceof PageHead && chunk.refs > 0) chunk.release();
  }

  [Symbol.dispose](): void {
    this.release();
  }

  /** The queued chunks, front first (they stay queued). */
  *[Symbol.iterator](): IterableIterator<Chunk> {
    for (let i = this.#start; i < this.#chunks.length; i++) yield this.#chunks[i];
  }
}

function totalLength(chunks: Chunk[]): number {
  let total = 0;
  for (const chunk of chunks) total += lengthOf(chunk);
  return total;
}

function lengthOf(chunk: Chunk): number {
  if (chunk instanceof PageHead) {
    if (chunk.refs === 0) throw stateError("ERR_RELEASED", "cannot queue a released page head", "append");
    return chunk.byteLength;
  }
  if (chunk instanceof Uint8Array) {
    checkAttached(chunk);
    return chunk.byteLength;
  }
  throw new TypeError(`a brigade holds PageHeads and Uint8Arrays, got ${describe(chunk)}`);
}
