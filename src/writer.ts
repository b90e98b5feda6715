/**
 * The seed's page_write: a writer that queues heads and sends them in gather
 * writes (or kernel moves, or lends them to a pipe).
 * @module
 */
import { IOV_MAX } from "../ffi/native.ts";
import { checkInteger, stateError } from "./errors.ts";
import { describe, fdOf, FileHandle, openFile, stat, type Target } from "./file.ts";
import { Brigade } from "./brigade.ts";
import type { Chunk } from "./gather.ts";
import { PageHead } from "./head.ts";
import { Lender } from "./lend.ts";
import type { AsyncOptions } from "./drive.ts";

/** Options of `new PageWriter()`. */
export interface PageWriterOptions {
  /** Queued bytes that trigger a flush (default 8 MiB): bounds memory held by queued heads. */
  highWaterMark?: number;
  /**
   * On a pipe (Linux), lend pool pages to it instead of copying them (`vmsplice`; default true): a head
   * nothing else holds goes into the pipe as its page itself, and the page returns to its pool once the
   * reader has taken its bytes (or, at `close()`, gets fresh memory while the pipe keeps the old).
   */
  lend?: boolean;
}

/**
 * Queues heads and writes them with gather system calls (the seed's
 * `page_write`). `write()` takes ownership of the head; `flush()` sends the
 * queue. A queue of IOV_MAX heads or `highWaterMark` bytes flushes by itself.
 *
 * @example
 * ```ts
 * import { PageReader, PageWriter } from "@pageio/pageio";
 * const copy = await Deno.makeTempFile();
 * using reader = new PageReader("README.md");
 * using writer = new PageWriter(copy);
 * for (const head of reader) writer.write(head);
 * writer.flush();
 * ```
 */
export class PageWriter {
  #file: FileHandle | number;
  readonly #ownsFile: boolean;
  readonly #brigade = new Brigade();
  readonly #highWaterMark: number;
  readonly #lender: Lender | null = null;
  #written = 0;
  #closed = false;
  /** The asynchronous flush in flight; later ones queue behind it, `close()` completes after it. */
  #flushing: Promise<number> | null = null;
  #writable: WritableStream<Chunk> | null = null;

  /** A path is opened for writing (created, truncated); a FileHandle or fd is used as it is. */
  constructor(target: string | URL | Target, options: PageWriterOptions = {}) {
    this.#highWaterMark = checkInteger("highWaterMark", options.highWaterMark ?? 8 * 1024 * 1024, 1);
    this.#ownsFile = typeof target === "string" || target instanceof URL;
    this.#file = this.#ownsFile ? openFile(target as string | URL, "w") : target as Target;
    const fd = fdOf(this.#file);
    // Lending needs a FileHandle: its `closed` says when the fd number stops naming this pipe.
    if (options.lend !== false && this.#file instanceof FileHandle && stat(fd).kind === "fifo") {
      this.#brigade._lender = this.#lender = new Lender(this.#file);
    }
  }

  /** Queues a head (the writer owns it now) or a byte array. */
  write(chunk: Chunk): void {
    if (this.#closed) throw stateError("ERR_CLOSED", "page writer is closed", "write");
    this.#brigade.append(chunk);
    // With an async flush in flight, that flush takes this chunk too.
    if (this.#flushing === null && this.#full()) this.flush();
  }

  #full(): boolean {
    return this.#brigade.count >= IOV_MAX || this.#brigade.byteLength >= this.#highWaterMark;
  }

  /** Bytes and heads queued. */
  get pending(): { byteLength: number; count: number } {
    return { byteLength: this.#brigade.byteLength, count: this.#brigade.count };
  }

  /** Bytes written so far. */
  get bytesWritten(): number {
    return this.#written;
  }

  /**
   * Queues a head like `write`, but a flush it triggers does not hold up the event loop: await it to keep
   * memory bounded on a slow target. While another flush is in flight it queues behind it; once the writer is
   * closed it throws `ERR_CLOSED` and takes nothing.
   */
  async writeAsync(chunk: Chunk, options: AsyncOptions = {}): Promise<void> {
    if (this.#closed) throw stateError("ERR_CLOSED", "page writer is closed", "writeAsync");
    this.#brigade.append(chunk);
    if (this.#full()) await this.#flushQueued(options.signal);
  }

  /**
   * `flush` without holding up the event loop: each write is tried at once, and a pipe or socket that is full
   * is waited on (one shared readiness wait, no thread). A second call while one runs queues behind it. An
   * abort rejects with `ABORT_ERR` and `bytesTransferred`; what was not written stays queued.
   */
  flushAsync(options: AsyncOptions = {}): Promise<number> {
    if (this.#closed) return Promise.reject(stateError("ERR_CLOSED", "page writer is closed", "flushAsync"));
    return this.#flushQueued(options.signal);
  }

  #flushQueued(signal?: AbortSignal): Promise<number> {
    const previous = this.#flushing;
    const flushing = (previous === null ? this.#flushOnce(signal) : previous.then(
      () => this.#flushOnce(signal),
      () => this.#flushOnce(signal),
    )).finally(() => {
      if (this.#flushing === flushing) this.#flushing = null;
    });
    this.#flushing = flushing;
    return flushing;
  }

  async #flushOnce(signal?: AbortSignal): Promise<number> {
    this.#lender?.reclaim();
    try {
      const written = await this.#brigade.flushAsync(this.#file, { signal });
      this.#written += written;
      return written;
    } catch (error) {
      this.#written += (error as { bytesTransferred?: number }).bytesTransferred ?? 0;
      throw error;
    }
  }

  /** Writes the queue with as few gather calls as the OS allows; returns bytes written. */
  flush(): number {
    if (this.#closed) throw stateError("ERR_CLOSED", "page writer is closed", "flush");
    return this.#flushSync();
  }

  #flushSync(): number {
    this.#lender?.reclaim();
    try {
      const written = this.#brigade.flush(this.#file);
      this.#written += written;
      return written;
    } catch (error) {
      this.#written += (error as { bytesTransferred?: number }).bytesTransferred ?? 0;
      throw error;
    }
  }

  /**
   * The writer as a `WritableStream` of `Uint8Array`s and `PageHead`s, for `pipeTo`. A head is queued and
   * gathered like `write()` (the writer owns it); a `Uint8Array` is written before its `write()` settles,
   * since the stream's producer may reuse it then. Closing the stream flushes and closes the writer.
   *
   * @example
   * ```ts
   * import { PageReader, PageWriter } from "@pageio/pageio";
   * const copy = await Deno.makeTempFile();
   * await new PageReader("README.md").readable.pipeTo(new PageWriter(copy).writable);
   * console.log(Deno.statSync(copy).size === Deno.statSync("README.md").size); // true
   * ```
   */
  get writable(): WritableStream<Chunk> {
    return this.#writable ??= new WritableStream<Chunk>({
      write: async (chunk) => {
        try {
          if (chunk instanceof PageHead) return await this.writeAsync(chunk);
          if (!(chunk instanceof Uint8Array)) {
            throw new TypeError(`expected a Uint8Array or PageHead, got ${describe(chunk)}`);
          }
          await this.writeAsync(chunk);
          await this.flushAsync();
        } catch (error) {
          this.#discard(); // the stream is errored now: nothing else will close the writer
          throw error;
        }
      },
      close: async () => {
        await this.flushAsync();
        this.close();
      },
      abort: () => this.#discard(),
    });
  }

  /** Releases what is queued without writing it, and closes. */
  #discard(): void {
    if (this.#flushing === null) this.#brigade.release();
    this.close();
  }

  /**
   * Flushes, then releases anything left and closes what the writer opened. During an async flush it
   * refuses further writes at once and completes when that flush settles: the flush writes what was queued,
   * then the descriptor is closed (its reader sees the end) — whether the flush succeeded or not.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#flushing !== null) {
      // Its outcome went to whoever awaited the flush; a failing close of the fd here has no one to tell.
      const finish = () => {
        try {
          this.#finish();
        } catch { /* see above */ }
      };
      this.#flushing.then(finish, finish);
      return;
    }
    try {
      if (this.#brigade.count > 0) this.#flushSync(); // nothing queued: the target may be closed already
    } finally {
      this.#finish();
    }
  }

  #finish(): void {
    this.#brigade.release();
    this.#lender?.close();
    if (this.#ownsFile) (this.#file as FileHandle).close();
  }

  /** Closes, as `close()` does, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}
