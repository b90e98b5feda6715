/**
 * The seed's page_write: a writer that queues heads and sends them in gather
 * writes (or kernel moves, or lends them to a pipe).
 * @module
 */
import { abi, errno, fn, IOV_MAX } from "../ffi/native.ts";
import { checkAsyncOptions, checkInteger, checkOptions, PageIoError, stateError, unwrap, withPath } from "./errors.ts";
import { describe, fdOf, FileHandle, openFile, stat, type Target } from "./file.ts";
import { Brigade, consumeWritten, lendTo, spansMoved, takeAll, writeBehind } from "./brigade.ts";
import { headInternals } from "./head.ts";
import { type Chunk, isChunk, isDetached, viewOf } from "./gather.ts";
import { lengthOf, ownCall } from "./internal.ts";
import { Lender } from "./lend.ts";
import type { AsyncOptions } from "./drive.ts";
import { markPrivateViews, type Page, PagePool } from "./pool.ts";
import { sameFileCheck } from "./reactor.ts";
import { pageSize, runtime } from "./system.ts";

/** The `writable`s of PageWriters: a PageReader's stream piped into one hands it heads (`isPageWritable`). */
const pageWritables = new WeakSet<WritableStream>();

/** @internal Whether `stream` is a PageWriter's `writable` (it takes heads as well as bytes). */
export function isPageWritable(stream: unknown): boolean {
  return pageWritables.has(stream as WritableStream);
}

/** The keys of PageWriterOptions. */
const WRITER_OPTIONS = ["highWaterMark", "lend", "append", "pool"] as const;

/** Options of `new PageWriter()`. */
export interface PageWriterOptions {
  /**
   * Queued bytes that trigger a flush (default 8 MiB): bounds memory held by queued heads. Once a flush has
   * handed a PageReader's heads to the kernel (copy_file_range, sendfile), such file spans no longer count:
   * they hold no memory of their own, and the kernel moves a longer run of them in fewer calls.
   */
  highWaterMark?: number;
  /**
   * On a pipe (Linux), lend pool pages to it instead of copying them (`vmsplice`; default true): a head
   * nothing else holds goes into the pipe as its page itself, and the page returns to its pool once the
   * reader has taken its bytes (or, at `close()`, gets fresh memory while the pipe keeps the old).
   */
  lend?: boolean;
  /**
   * A path is opened to append (mode `"a"`) instead of truncated (mode `"w"`). Only for a path or URL: a
   * FileHandle or fd is written as it was opened (`openFile(path, "a")` appends), so `true` there is a TypeError.
   */
  append?: boolean;
  /** Pool whose pages strings are encoded into (default: a pool of the writer's own, closed with it). */
  pool?: PagePool;
}

const { fileSpan, length: headLength } = headInternals;
const encoder = new TextEncoder();
const charCodeAt = ownCall(String.prototype.charCodeAt); // the intrinsic: a redefined one never runs
/** Limit: UTF-16 units of strings joined before they are encoded (at most 48 KiB of UTF-8: within a 64 KiB page). */
const TEXT_BATCH_CHARS = 16 * 1024;
/**
 * Limit: bytes the writer copied into its pages (strings, arrays) that trigger a flush of a regular file even
 * below highWaterMark. Written while they are still in the CPU's cache and into pages reused while still cached,
 * they cost 2-3x less (user and kernel time both) than 8 MiB at a time; the gather calls stay few (one per
 * 512 KiB). Only a regular file: a write() that flushes a pipe or socket early could block on a reader that
 * runs on this same thread (and wait forever), which the caller's highWaterMark is there to rule out.
 */
const COPIED_FLUSH_BYTES = 512 * 1024;

/**
 * Bun's native UTF-8 encoder into an array at an offset (`Buffer.prototype.utf8Write`, taken at load and checked
 * once against TextEncoder, lone surrogates included): there, one call per string costs less than joining strings
 * and encoding the batch (20 vs 30-35 ns a line). Null on Deno, whose `utf8Write` is JavaScript: batches win there.
 */
const utf8Write = nativeUtf8Write();
function nativeUtf8Write(): ((this: Uint8Array, text: string, offset: number) => number) | null {
  if (runtime !== "bun") return null;
  const write = (globalThis as { Buffer?: { prototype: { utf8Write?: unknown } } }).Buffer?.prototype.utf8Write;
  if (typeof write !== "function") return null;
  const probe = "a\ud800\u00e9\u{1f642}\udc00";
  const expected = encoder.encode(probe);
  const got = new Uint8Array(expected.length + 1);
  try {
    if (write.call(got, probe, 1) !== expected.length) return null;
  } catch {
    return null;
  }
  return expected.every((byte, i) => got[i + 1] === byte)
    ? ownCall(write as NonNullable<ReturnType<typeof nativeUtf8Write>>)
    : null;
}

/**
 * Writers holding bytes not yet written, flushed when the program exits: a log that never called
 * `flush()` is still complete. Held strongly only while they hold data.
 */
const unflushed = new Set<PageWriter>();
let exitHookInstalled = false;
/** The flush at exit, which may wait on a target that returns at once when full (a socket). */
const kFlushAtExit = Symbol("flushAtExit");
/**
 * Limit: at exit, how long a target that would block may take no bytes at all before what is left is given up (and
 * reported). Progress starts it again, so a slow reader gets everything.
 */
const EXIT_STALL_MS = 10_000;
const INTEREST_WRITE = abi.constants.INTEREST_WRITE.value;
function flushAllAtExit(): void {
  for (const writer of [...unflushed]) {
    try {
      writer[kFlushAtExit]();
    } catch (error) {
      // One line that says what was lost and why: a stack trace here points only at this hook.
      let lost = "";
      try {
        lost = `${writer.pending.byteLength} bytes of `;
      } catch { /* its state is gone with the error: the message alone */ }
      const why = error instanceof Error ? error.message : String(error);
      console.error(`pageio: ${lost}a PageWriter's data could not be written at exit: ${why}`);
    }
  }
}
function watchForExit(writer: PageWriter): void {
  unflushed.add(writer);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  if (runtime === "deno") {
    // Deno dispatches no unload when an uncaught exception or rejection ends the program: flush then too.
    for (const event of ["unload", "error", "unhandledrejection"]) globalThis.addEventListener(event, flushAllAtExit);
    return;
  }
  // Bun: 'exit' runs on a natural end, on process.exit() and after an uncaught error; synchronous work only.
  (globalThis as unknown as { process: { on(e: string, f: () => void): void } }).process.on("exit", flushAllAtExit);
}

/**
 * Queues heads and writes them with gather system calls (the seed's
 * `page_write`). `write()` takes ownership of the head; `flush()` sends the
 * queue. A queue of IOV_MAX heads or `highWaterMark` bytes flushes by itself.
 *
 * @example
 * ```ts
 * import { tmpdir } from "node:os";
 * import { PageReader, PageWriter } from "@pageio/pageio";
 * const copy = `${tmpdir()}/pageio-copy-${process.pid}.md`; // Deno and Bun alike
 * using reader = new PageReader("README.md");
 * using writer = new PageWriter(copy);
 * for (const head of reader) writer.write(head);
 * writer.write("\n-- copied\n"); // strings are encoded into pool pages and gathered too
 * writer.flush();
 * ```
 */
export class PageWriter {
  #file: FileHandle | number;
  readonly #ownsFile: boolean;
  /** The path the target was opened with, named in its errors. */
  readonly #path: string | undefined;
  #brigade = new Brigade();
  /**
   * The write-behind job in flight (its id, 0 for none) and the heads it writes, kept until it is waited for:
   * a regular file's flush every COPIED_FLUSH_BYTES goes to the library's thread, so the kernel copies these
   * pages into the page cache while this thread fills the next ones. At most one job: the next waits for it.
   */
  #behindId = 0;
  #behind: Brigade | null = null;
  readonly #behindOut = new Float64Array(1);
  readonly #highWaterMark: number;
  #written = 0;
  #closed = false;
  /**
   * A plain fd number: throws once pageio closed it or gave it to another file, so what was written for one file
   * never goes into the next under its number (a FileHandle says so itself).
   */
  readonly #sameFile: (() => void) | undefined;
  /** The asynchronous flush in flight; later ones queue behind it, `close()` completes after it. */
  #flushing: Promise<number> | null = null;
  #writable: WritableStream<Chunk | string> | null = null;
  #pool: PagePool | null;
  #ownsPool: boolean;
  /** The page strings are being encoded into, its bytes, and where its unqueued part starts and ends. */
  #fill: Page | null = null;
  #fillBytes: Uint8Array = new Uint8Array(0);
  #fillStart = 0;
  #fillEnd = 0;
  /** Strings written and not yet encoded. */
  #text = "";
  /** Bytes of the writer's own pages queued since the last flush began, and the limit on them (COPIED_FLUSH_BYTES). */
  #copied = 0;
  readonly #copiedMax: number;
  /** In the set of writers flushed at exit. */
  #watched = false;
  /** Bytes of file spans queued, and whether this target takes them by kernel move (then they do not count). */
  #spanBytes = 0;
  #spansMove = false;

  /**
   * A path or `file:` URL is opened for writing (created, truncated; appended to with `append: true`); a
   * FileHandle or fd is used as it is. A FIFO path with no reader at its other end fails at once with `ENXIO`
   * instead of waiting for one.
   */
  constructor(target: string | URL | Target, options: PageWriterOptions = {}) {
    checkOptions(options, "PageWriter", WRITER_OPTIONS);
    this.#highWaterMark = checkInteger("highWaterMark", options.highWaterMark ?? 8 * 1024 * 1024, 1);
    const pool = options.pool; // read once: a getter cannot pass the check, then give something else
    if (pool !== undefined && !(pool instanceof PagePool)) {
      throw new TypeError(`pool must be a PagePool, got ${describe(pool)}`);
    }
    this.#ownsPool = pool === undefined;
    this.#pool = pool ?? null;
    this.#ownsFile = typeof target === "string" || target instanceof URL;
    const { append, lend } = options; // read once: a getter that said append to the check must not truncate
    if (append && !this.#ownsFile) {
      throw new TypeError(
        'append applies to a path or URL the writer opens; a FileHandle or fd is written as it was opened (openFile(path, "a") appends)',
      );
    }
    this.#file = this.#ownsFile ? openFile(target as string | URL, append ? "a" : "w") : target as Target;
    this.#path = this.#file instanceof FileHandle ? this.#file.path : undefined;
    this.#sameFile = typeof this.#file === "number" ? sameFileCheck(this.#file, "PageWriter") : undefined;
    const kind = stat(fdOf(this.#file), this.#path).kind;
    this.#copiedMax = kind === "file" ? Math.min(COPIED_FLUSH_BYTES, this.#highWaterMark) : Infinity;
    // Lending needs a FileHandle: its `closed` says when the fd number stops naming this pipe.
    if (lend !== false && this.#file instanceof FileHandle && kind === "fifo") {
      lendTo(this.#brigade, new Lender(this.#file));
    }
  }

  /**
   * Queues a head (the writer owns it now: no copy), or a string, encoded as UTF-8 straight into pool pages
   * (no array per string), or a byte array, whose bytes are copied into pool pages at once, as every
   * runtime's writer does, so the caller may reuse the array as soon as `write()` returns. Filled pages are
   * queued as heads and gathered.
   */
  write(chunk: Chunk | string): void {
    if (this.#closed) throw stateError("ERR_CLOSED", "page writer is closed", "write");
    // The common case first: a string that surely fits the current page (see #take) queues nothing new, so it
    // cannot make the queue full.
    if (typeof chunk === "string" && this.#watched && this.#encodeInPlace(chunk)) return;
    // A write that throws has taken nothing of its chunk (a retry duplicates nothing): a queue left full by a
    // failed flush is flushed again before the chunk is taken, and that flush's error is the one thrown; the
    // flush after it, once the chunk is taken, cannot throw (what it fails to write stays queued for the next
    // write, flush or close to retry and report). With an async flush in flight, that flush takes the chunk too.
    let drained = true;
    if (this.#flushing === null && this.#full()) {
      this.flush();
      drained = !this.#full(); // a target that would block took what it could: no second try for this write
    }
    this.#take(chunk);
    if (drained && this.#flushing === null && this.#full()) {
      try {
        if (!this.#flushBehind()) this.flush();
      } catch { /* see above */ }
    }
  }

  /**
   * A regular file's flush of what the writer copied, handed to the write-behind thread once the last job
   * is done; false when it cannot be (the last job failed, or the queue holds what the thread does not take).
   */
  #flushBehind(): boolean {
    // Only the full-size flush: with a small highWaterMark, a thread's round trip per flush costs more than it saves.
    if (this.#copiedMax !== COPIED_FLUSH_BYTES || !this.#collect()) return false;
    try {
      this.#sameFile?.();
    } catch {
      return false; // the flush that follows reports it
    }
    this.#queueText();
    const id = writeBehind(this.#brigade, fdOf(this.#file));
    if (id === 0) return false;
    this.#behindId = id;
    this.#behind = this.#brigade;
    this.#brigade = new Brigade();
    this.#copied = 0;
    return true;
  }

  /**
   * Waits for the write-behind job, if any. Its heads are released once written; true then. A job that
   * failed puts what it did not write back at the front of the queue and leaves the queue full: the next
   * write, flush or close writes it again the synchronous way and reports the error; false then.
   */
  #collect(): boolean {
    const behind = this.#behind;
    if (behind === null) return true;
    const result = fn.pageio_behind_wait(this.#behindId, this.#behindOut);
    this.#behind = null;
    this.#behindId = 0;
    const written = result >= 0 ? result : this.#behindOut[0];
    this.#written += written;
    if (result >= 0) {
      behind.release();
      return true;
    }
    consumeWritten(behind, written);
    takeAll(behind, this.#brigade);
    this.#brigade = behind;
    this.#copied = Math.max(this.#copied, this.#copiedMax);
    return false;
  }

  /**
   * Takes a chunk whole or, throwing, not at all: a write that throws has queued nothing of its chunk (a retry
   * duplicates nothing), and one that returns has queued all of it, also when no page could be had for a
   * string yet (it waits in the batch; the next write, flush or close encodes it or reports why not).
   */
  #take(chunk: Chunk | string): void {
    if (typeof chunk === "string") {
      if (!this.#watched) this.#watch();
      if (utf8Write !== null && this.#text.length === 0) {
        if (!this.#encodeInPlace(chunk)) {
          // One that may not fit the current page is encoded alone, across as many pages as it needs.
          this.#text = chunk;
          try {
            this.#encodeText();
          } catch { /* no page: what is left of it stays in the batch (see above) */ }
        }
        return;
      }
      // Strings are joined first (the engine's ropes: no copy yet) and encoded a batch at a time: one
      // encodeInto per batch, not per line, is what makes a log writer faster than a buffered file sink.
      // Reading a character makes the engine flatten a string built by concatenation (a rope) in place, once:
      // a batch joined from flat strings encodes 3-15x faster than one whose pieces are ropes themselves, and
      // a string written again (a template's constant, a repeated line) is flat from then on.
      const first = charCodeAt.call(chunk, 0);
      // A full batch is encoded before this string joins it: if that fails, this string is not taken.
      if (this.#text.length >= TEXT_BATCH_CHARS) this.#encodeText();
      // Each write is encoded as TextEncoder would encode it alone (a lone surrogate half as U+FFFD): a string
      // that begins with a low surrogate is not joined to one that ended with a high one, which would make a
      // pair of them or not depending on where a batch happened to end.
      else if (first >= 0xdc00 && first <= 0xdfff && this.#text.length > 0) {
        const last = charCodeAt.call(this.#text, this.#text.length - 1);
        if (last >= 0xd800 && last <= 0xdbff) this.#encodeText();
      }
      this.#text += chunk;
      return;
    }
    if (!isChunk(chunk)) {
      throw new TypeError(`a page writer takes PageHeads, Uint8Arrays and strings, got ${describe(chunk)}`);
    }
    if (chunk instanceof Uint8Array) this.#copyIn(chunk);
    else {
      this.#queueText(); // what was written before goes first
      this.#brigade.append(chunk);
      if (fileSpan(chunk) !== null) this.#spanBytes += headLength(chunk);
    }
    if (!this.#watched) this.#watch();
  }

  /** Copies a byte array's bytes into pool pages after what strings and arrays put there before. */
  #copyIn(bytes: Uint8Array): void {
    const length = lengthOf(bytes); // 0 when detached: such an array goes the way below, and is refused
    // The common case, bytes that fit the current page, copied by `set` (it reads the array's own fields, no
    // caller code) without reading `.buffer`: on Bun that gives a small array made by length (a fresh
    // `TextEncoder.encode` result) an ArrayBuffer of its own first, which cost a log line about 0.5 µs.
    if (length !== 0 && length <= this.#fillBytes.byteLength - this.#fillEnd && this.#text.length === 0) {
      this.#fillBytes.set(bytes, this.#fillEnd);
      this.#fillEnd += length;
      return;
    }
    if (isDetached(bytes)) throw new TypeError("a byte array given to write() is detached");
    if (this.#text.length > 0) this.#encodeText();
    const room = this.#fillBytes.byteLength - this.#fillEnd;
    // Every page the bytes need is had before any is copied: no page, nothing taken.
    const pages: Page[] = [];
    try {
      for (let needed = length - room; needed > 0; needed -= this.#pool!.pageSize) pages.push(this.#acquire());
    } catch (error) {
      for (const page of pages) page.release();
      throw error;
    }
    for (let from = 0, next = 0; from < length;) {
      if (this.#fillEnd === this.#fillBytes.byteLength) {
        this.#nextFill(pages[next++]);
        continue;
      }
      const part = Math.min(this.#fillBytes.byteLength - this.#fillEnd, length - from);
      this.#fillBytes.set(viewOf(bytes, from, part), this.#fillEnd);
      this.#fillEnd += part;
      from += part;
    }
  }

  /**
   * Bun: encodes `text` straight into the current page when it surely fits (UTF-8 takes at most 3 bytes per
   * UTF-16 unit) and no batch is waiting; false, with nothing taken, otherwise.
   */
  #encodeInPlace(text: string): boolean {
    if (utf8Write === null || this.#text.length > 0) return false;
    if (text.length * 3 > this.#fillBytes.byteLength - this.#fillEnd) return false;
    if (text.length > 0) this.#fillEnd += utf8Write.call(this.#fillBytes, text, this.#fillEnd);
    return true;
  }

  #full(): boolean {
    const bytes = this.#brigade.byteLength - (this.#spansMove ? this.#spanBytes : 0);
    return this.#brigade.count >= IOV_MAX || bytes >= this.#highWaterMark || this.#copied >= this.#copiedMax;
  }

  /** After a flush: whether its spans went by kernel move, and the span bytes still queued. */
  #flushed(brigade: Brigade): void {
    const moved = spansMoved(brigade);
    if (moved >= 0) this.#spansMove = moved === 1;
    let bytes = 0;
    for (const chunk of this.#brigade) {
      if (!ArrayBuffer.isView(chunk) && fileSpan(chunk) !== null) bytes += headLength(chunk);
    }
    this.#spanBytes = bytes;
  }

  /** Encodes the strings written so far into pool pages; filled pages are queued. */
  #encodeText(): void {
    for (;;) {
      const rest = this.#text;
      // encodeInto never splits a character: `read` stops before one that does not fit.
      const { read, written } = encoder.encodeInto(rest, this.#fillBytes.subarray(this.#fillEnd));
      this.#fillEnd += written;
      if (read === rest.length) {
        this.#text = "";
        return;
      }
      this.#text = rest.slice(read); // kept if no page can be had: nothing written is dropped
      this.#nextFill();
    }
  }

  /** A page of the writer's pool, to encode or copy into. */
  #acquire(): Page {
    if (!this.#ownsPool && this.#pool!.closed) {
      // The caller's pool was closed under the writer: what was written still goes out, in pages of its own.
      this.#pool = null;
      this.#ownsPool = true;
    }
    const page = (this.#pool ??= new PagePool({ pageSize: 16 * pageSize, leakDetection: "off" })).acquire();
    markPrivateViews(page); // its bytes and heads stay in this writer and its brigade
    return page;
  }

  /** Queues the filled part of the current page and starts a fresh one (`page`, or one acquired now). */
  #nextFill(page: Page = this.#acquire()): void {
    this.#queueFill();
    this.#fill?.release(); // the queued head keeps it until written
    this.#fill = page;
    this.#fillBytes = page.bytes;
    this.#fillStart = this.#fillEnd = 0;
  }

  /** Queues what strings filled of the current page since the last time, as one head. */
  #queueFill(): void {
    if (this.#fillEnd === this.#fillStart) return;
    this.#copied += this.#fillEnd - this.#fillStart;
    this.#brigade.append(this.#fill!.head(this.#fillStart, this.#fillEnd - this.#fillStart));
    this.#fillStart = this.#fillEnd;
  }

  /** Every string written so far, encoded and queued. */
  #queueText(): void {
    if (this.#text.length > 0) this.#encodeText();
    this.#queueFill();
  }

  #watch(): void {
    this.#watched = true;
    watchForExit(this);
  }

  /** Nothing left to write: no need to flush at exit. */
  #settled(): void {
    if (
      this.#brigade.count === 0 && this.#behind === null && this.#text.length === 0 &&
      this.#fillEnd === this.#fillStart
    ) {
      this.#watched = false;
      unflushed.delete(this);
    }
  }

  /**
   * Bytes and heads queued (strings written are encoded and queued first). A regular file's write in flight
   * is waited for first: what it could not write is queued again.
   */
  get pending(): { byteLength: number; count: number } {
    if (!this.#closed) {
      this.#collect();
      this.#queueText();
    }
    return { byteLength: this.#brigade.byteLength, count: this.#brigade.count };
  }

  /** Bytes written so far. */
  get bytesWritten(): number {
    return this.#written;
  }

  /**
   * Queues a head, string or byte array like `write`, but a flush it triggers does not hold up the event loop:
   * await it to keep memory bounded on a slow target. While another flush is in flight it queues behind it; once the writer is
   * closed it throws `ERR_CLOSED` and takes nothing. As with `write`, a call that rejects has taken nothing of
   * its chunk (a retry duplicates nothing); a flush that fails once the chunk is taken is reported by the next
   * write, flush or close.
   *
   * @example
   * ```ts
   * import { PageReader, PageWriter, pipe } from "@pageio/pageio";
   * const [readEnd, writeEnd] = pipe();
   * const received = new Response(new PageReader(readEnd).readable).arrayBuffer(); // read on this same thread
   * const writer = new PageWriter(writeEnd, { highWaterMark: 64 * 1024 });
   * for (let i = 0; i < 1000; i++) await writer.writeAsync(new Uint8Array(1024)); // waits while the pipe is full
   * await writer.flushAsync();
   * writer.close();
   * writeEnd.close();
   * console.log((await received).byteLength); // 1024000
   * readEnd.close();
   * ```
   */
  async writeAsync(chunk: Chunk | string, options: AsyncOptions = {}): Promise<void> {
    const signal = checkAsyncOptions(options, "writeAsync");
    if (this.#closed) throw stateError("ERR_CLOSED", "page writer is closed", "writeAsync");
    // As write(): a queue left full by a failed flush is flushed before the chunk is taken (its error rejects
    // this call, nothing of the chunk taken); the flush after, once the chunk is taken, is awaited but cannot
    // reject it (what it could not write stays queued: the next write, flush or close retries and reports).
    if (this.#flushing === null && this.#full()) {
      await this.#flushQueued(signal);
      if (this.#closed) throw stateError("ERR_CLOSED", "page writer is closed", "writeAsync");
    }
    this.#take(chunk);
    if (this.#full()) await this.#flushQueued(signal).catch(() => {});
  }

  /**
   * `flush` without holding up the event loop: each write is tried at once, and a pipe or socket that is full
   * is waited on (one shared readiness wait, no thread). A second call while one runs queues behind it. An
   * abort rejects with `ABORT_ERR` and `bytesTransferred`; what was not written stays queued.
   */
  flushAsync(options: AsyncOptions = {}): Promise<number> {
    let signal: AbortSignal | undefined;
    try {
      signal = checkAsyncOptions(options, "flushAsync");
    } catch (error) {
      return Promise.reject(error); // a Promise-returning call never throws
    }
    if (this.#closed) return Promise.reject(stateError("ERR_CLOSED", "page writer is closed", "flushAsync"));
    return this.#flushQueued(signal);
  }

  #flushQueued(signal?: AbortSignal): Promise<number> {
    const previous = this.#flushing;
    const next = () => this.#flushOnce(signal);
    const flushing = (previous === null ? this.#flushOnce(signal) : previous.then(next, next)).finally(() => {
      if (this.#flushing === flushing) this.#flushing = null;
    });
    this.#flushing = flushing;
    return flushing;
  }

  async #flushOnce(signal?: AbortSignal): Promise<number> {
    const before = this.#written;
    this.#collect(); // a regular file's job: done in about the time a page cache copy of 512 KiB takes
    const collected = this.#written - before;
    this.#queueText();
    const copied = this.#copied;
    this.#copied = 0; // what writes copy from now on counts towards the next flush
    let written: number;
    const brigade = this.#brigade;
    try {
      this.#sameFile?.();
      written = await brigade.flushAsync(this.#file, { signal });
    } catch (error) {
      this.#copied += copied; // not written: the queue stays full, so the next write retries (see write)
      this.#written += (error as { bytesTransferred?: number }).bytesTransferred ?? 0; // what did go out
      throw withPath(error, this.#path);
    } finally {
      this.#flushed(brigade);
    }
    this.#written += written;
    this.#settled();
    return collected + written;
  }

  /** Writes the queue with as few gather calls as the OS allows; returns bytes written. */
  flush(): number {
    if (this.#closed) throw stateError("ERR_CLOSED", "page writer is closed", "flush");
    const before = this.#written;
    this.#collect();
    const collected = this.#written - before;
    this.#queueText();
    let written: number;
    try {
      this.#sameFile?.();
      written = this.#brigade.flush(this.#file);
      this.#copied = 0; // not after a failure: the queue stays full, so the next write retries (see write)
    } catch (error) {
      this.#written += (error as { bytesTransferred?: number }).bytesTransferred ?? 0; // what did go out
      throw withPath(error, this.#path);
    } finally {
      this.#flushed(this.#brigade);
    }
    this.#written += written;
    this.#settled();
    return collected + written;
  }

  /**
   * @internal `flush()` until the queue is empty, for the exit hook: a target whose writes return at once when it is
   * full (a socket, a non-blocking pipe opened elsewhere) is waited on (`poll`, the event loop is gone) while it takes
   * bytes. `flush()` alone wrote what fitted in its buffer and returned, and the rest was lost without a word.
   */
  [kFlushAtExit](): void {
    this.flush();
    for (let deadline = Date.now() + EXIT_STALL_MS; this.pending.count > 0;) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new PageIoError("ETIMEDOUT", `ETIMEDOUT: the target took no bytes for ${EXIT_STALL_MS / 1000} s`, {
          errno: errno.ETIMEDOUT,
          syscall: "poll",
        });
      }
      unwrap(fn.pageio_wait_fd(fdOf(this.#file), INTEREST_WRITE, left), "poll");
      const before = this.pending.byteLength;
      this.flush();
      if (this.pending.byteLength < before) deadline = Date.now() + EXIT_STALL_MS;
    }
  }

  /**
   * The writer as a `WritableStream` of `Uint8Array`s, `PageHead`s and strings, for `pipeTo`. A head is queued
   * and gathered like `write()` (the writer owns it); a `Uint8Array`'s bytes are copied into pool pages, as
   * `write()` does, so the stream's producer may reuse it; a string is encoded as UTF-8 straight into pool pages,
   * as `write()` does (no `TextEncoderStream` needed, nor its array per chunk). Closing the stream flushes and
   * closes the writer.
   * Aborting it closes the writer too: to a regular file, what earlier writes put in the stream is written first
   * (their promises resolved: accepted); to a pipe or socket, whatever is still queued is dropped. A write that
   * errors the stream (a chunk that is neither bytes nor a string: a TypeError) closes the writer once what earlier writes put in
   * the stream is written; to a pipe or socket that waits for its reader, as closing the stream does.
   *
   * @example
   * ```ts
   * import { statSync } from "node:fs";
   * import { tmpdir } from "node:os";
   * import { PageReader, PageWriter } from "@pageio/pageio";
   * const copy = `${tmpdir()}/pageio-writable-${process.pid}.md`; // Deno and Bun alike
   * await new PageReader("README.md").readable.pipeTo(new PageWriter(copy).writable);
   * console.log(statSync(copy).size === statSync("README.md").size); // true
   * ```
   */
  get writable(): WritableStream<Chunk | string> {
    if (this.#writable !== null) return this.#writable;
    this.#writable = new WritableStream<Chunk | string>({
      write: async (chunk) => {
        try {
          await this.writeAsync(chunk);
        } catch (error) {
          this.#closeAccepted(); // the stream is errored now: nothing else will close the writer
          throw error;
        }
      },
      close: async () => {
        try {
          await this.flushAsync();
        } catch (error) {
          this.#discard(); // as for a failed write: the stream is errored, and nothing else closes the writer
          throw error;
        }
        this.close();
      },
      abort: () => {
        // A write that resolved was accepted, as a runtime's own file stream has written it by then: a regular
        // file gets it before the end. Any other target could block the abort forever: what is queued is dropped.
        try {
          if (this.#copiedMax !== Infinity && this.#flushing === null) this.flush();
        } catch { /* the stream is errored by the abort already: its reason is what the producer sees */ }
        this.#discard();
      },
    });
    pageWritables.add(this.#writable);
    return this.#writable;
  }

  /**
   * Closes after a write errored the stream: what earlier writes queued was accepted (their promises resolved),
   * so it is still written, to a regular file at once, to a pipe or socket by an async flush that the close
   * waits for (a reader that is slow holds nothing up). A failure of that flush has no one to tell: the
   * stream's error is the write's, and what is left is released.
   */
  #closeAccepted(): void {
    if (this.#closed) return;
    try {
      if (this.#copiedMax === Infinity) this.#flushQueued().catch(() => {});
      this.close(); // a regular file: flushes now; otherwise completes once that flush settles
    } catch { /* see above */ }
  }

  /** Releases what is queued without writing it, and closes. */
  #discard(): void {
    this.#collect(); // the job's memory is the kernel's to read until it is done
    if (this.#flushing === null) this.#brigade.release(); // else close() releases once the flush settles
    this.#text = "";
    this.#fillStart = this.#fillEnd;
    this.close();
  }

  /**
   * Flushes, then releases anything left and closes what the writer opened. During an async flush it
   * refuses further writes at once and completes when that flush settles: the flush writes what was queued
   * (strings included), then everything is released and the descriptor closed, so its reader sees the end,
   * whether the flush succeeded or not.
   */
  close(): void {
    if (this.#closed) return;
    if (this.#flushing !== null) {
      this.#queueText(); // the flush in flight takes it
      this.#closed = true;
      // The flush's outcome went to whoever awaited it; a failing close of the fd has no one to tell here.
      const finish = () => {
        try {
          this.#release();
        } catch { /* see above */ }
      };
      this.#flushing.then(finish, finish);
      return;
    }
    let dropped = 0;
    try {
      if (this.pending.count > 0) this.flush(); // nothing queued: the target may be closed already
      dropped = this.pending.byteLength; // a non-blocking target that would block: never dropped silently
    } finally {
      this.#release();
    }
    if (dropped > 0) {
      throw new PageIoError(
        "ERR_UNFLUSHED",
        `${dropped} queued bytes could not be written before close (the target would block); they were released`,
        { syscall: "close" },
      );
    }
  }

  #release(): void {
    this.#closed = true;
    unflushed.delete(this);
    this.#collect(); // its pages are the kernel's to read, and its descriptor a duplicate, until it is done
    this.#brigade.release();
    this.#fill?.release();
    this.#fill = null;
    this.#text = "";
    this.#fillBytes = new Uint8Array(0);
    this.#fillStart = this.#fillEnd = 0;
    if (this.#ownsPool) this.#pool?.close(); // its slabs go once the last lent or queued page is back
    if (this.#ownsFile) (this.#file as FileHandle).close();
  }

  /** Closes, as `close()` does, for `using` (to a pipe read on this same thread, use `await using`). */
  [Symbol.dispose](): void {
    this.close();
  }

  /**
   * For `await using`: flushes as `flushAsync` does, without holding up the event loop (a pipe read on this
   * same thread is drained meanwhile; a synchronous flush would wait on it for ever), then closes. A flush that
   * fails rejects with its error once everything is released and the descriptor closed.
   *
   * @example
   * ```ts
   * import { PageReader, PageWriter, pipe } from "@pageio/pageio";
   * const [readEnd, writeEnd] = pipe();
   * const reading = new Response(new PageReader(readEnd).readable).text();
   * {
   *   await using writer = new PageWriter(writeEnd);
   *   for (let i = 0; i < 10_000; i++) writer.write(`line ${i}\n`); // more than the pipe holds
   * }
   * writeEnd.close();
   * console.log((await reading).length); // 98890
   * ```
   */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#closed) {
      // close() during a flush completes when that flush settles: the dispose too (its outcome is its caller's).
      await this.#flushing?.then(() => {}, () => {});
      return;
    }
    try {
      await this.flushAsync();
    } catch (error) {
      this.#discard();
      throw error;
    }
    this.close();
  }
}
