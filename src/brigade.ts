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
import { type MoveKind, moveKindFor, moveSpan } from "./move.ts";

/**
 * An ordered queue of heads and byte arrays that leaves in gather writes
 * (APR's brigade). It owns what it holds: fully written heads are released,
 * a partly written one is trimmed in place.
 *
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

  /**
   * Writes up to `count` chunks from the front: runs of memory chunks in gather calls, file spans (heads of
   * a PageReader's windows) by the kernel, in order. `callsMax` 1 stops after one system call's worth.
   */
  #write(target: Target, count: number, callsMax: number): number {
    const fd = fdOf(target);
    let total = 0;
    let left = count;
    let moveKind: MoveKind | null | undefined; // decided at the first span; null once the kernel refused
    while (left > 0 && this.count > 0) {
      const first = this.#chunks[this.#start];
      const span = moveKind === null || !(first instanceof PageHead) ? null : first._fileSpan();
      if (span !== null) {
        moveKind ??= moveKindFor(fd);
        const [spans, length] = this.#contiguousSpans(span, left);
        const moved = this.#attempt(spans, () => moveSpan(moveKind!, span.fd, span.offset, fd, length));
        if (moved !== null) {
          total += moved;
          if (moved < length || callsMax === 1) return total;
          left -= spans;
          continue;
        }
        moveKind = null; // refused for this target: write this span and the rest from memory
      }
      const end = this.#runEnd(left, moveKind === null);
      const runBytes = this.#bytesOf(end);
      packChunks(this.#chunks, this.#start, this.#start + end);
      const written = this.#attempt(end, () => writePacked(fd, end, callsMax))!;
      total += written;
      if (written < runBytes || callsMax === 1) return total;
      left -= end;
    }
    return total;
  }

  /** Front chunks that continue `first`'s span in the same file without a gap: one kernel move for all. */
  #contiguousSpans(first: { fd: number; offset: number }, limit: number): [count: number, bytes: number] {
    let count = 1;
    let bytes = this.#chunks[this.#start].byteLength;
    while (count < limit && this.#start + count < this.#chunks.length) {
      const chunk = this.#chunks[this.#start + count];
      const span = chunk instanceof PageHead ? chunk._fileSpan() : null;
      if (span === null || span.fd !== first.fd || span.offset !== first.offset + bytes) break;
      bytes += chunk.byteLength;
      count++;
    }
    return [count, bytes];
  }

  /** Chunks from the front up to the next file span (or all, when spans are written from memory). */
  #runEnd(limit: number, spansAsMemory: boolean): number {
    let end = 1;
    while (end < limit && this.#start + end < this.#chunks.length) {
      const chunk = this.#chunks[this.#start + end];
      if (!spansAsMemory && chunk instanceof PageHead && chunk._fileSpan() !== null) break;
      end++;
    }
    return end;
  }

  #bytesOf(count: number): number {
    let bytes = 0;
    for (let i = this.#start; i < this.#start + count; i++) bytes += this.#chunks[i].byteLength;
    return bytes;
  }

  /** Runs one move or write over the front `chunks` chunks and consumes what it moved, also when it throws. */
  #attempt(chunks: number, io: () => number | null): number | null {
    let moved: number | null;
    try {
      moved = io();
    } catch (error) {
      this.#consume((error as { bytesTransferred?: number }).bytesTransferred ?? 0, chunks);
      throw error;
    }
    if (moved !== null) this.#consume(moved, chunks);
    return moved;
  }

  /** Drops the front `written` bytes, and the empty chunks among the front `limit` chunks that they reach. */
  #consume(written: number, limit: number): void {
    this.#byteLength -= written;
    const chunks = this.#chunks;
    const end = Math.min(chunks.length, this.#start + limit);
    let left = written;
    // `<=` so an empty chunk is written by reaching it: no bytes ever move for it.
    while (this.#start < end && chunks[this.#start].byteLength <= left) {
      const chunk = chunks[this.#start];
      left -= chunk.byteLength;
      if (chunk instanceof PageHead) chunk.release();
      chunks[this.#start++] = undefined as unknown as Chunk;
    }
    if (left > 0) { // a partly written chunk: trim it in place
      const chunk = chunks[this.#start];
      if (chunk instanceof PageHead) chunk._consume(left);
      else chunks[this.#start] = chunk.subarray(left);
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

  /** Releases everything queued, as `release()` does, for `using`. */
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
