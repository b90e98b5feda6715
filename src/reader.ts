/**
 * The seed's page_read: a reader that supplies the buffer, a head into the
 * file's mapping or into a pool page.
 * @module
 */
import { checkInteger, stateError } from "./errors.ts";
import { describe, fdOf, FileHandle, openFile, stat, type Target, waitsFor } from "./file.ts";
import { type AsyncOptions, runAsync, runSync } from "./drive.ts";
import { PackedList, scatterPlan, shared } from "./gather.ts";
import type { PageHead } from "./head.ts";
import { mapDescriptor, type Mapping } from "./mapping.ts";
import { Page, PagePool } from "./pool.ts";
import { pageSize } from "./system.ts";

/** Options of `new PageReader()`. */
export interface PageReaderOptions {
  /** Pool for pipes, sockets and devices (default: a pool of the reader's own, closed with it). */
  pool?: PagePool;
  /** Most bytes per head from a regular file (default 256 KiB). */
  chunkSize?: number;
  /** Bytes of a regular file mapped at once, a multiple of the page size (default 8 MiB). */
  windowSize?: number;
}

/**
 * Reads a file, pipe, socket or device as page heads. On a regular file each
 * head points into a mapping of the file (no copy at all; the file is mapped
 * window by window); on anything else it points into a pool page. Release
 * each head (or hand it to a `PageWriter`, which does).
 *
 * @example
 * ```ts
 * import { PageReader } from "@pageio/pageio";
 * using reader = new PageReader("README.md");
 * let bytes = 0;
 * for (const head of reader) {
 *   bytes += head.byteLength;
 *   head.release();
 * }
 * console.log(bytes > 0); // true
 * ```
 */
export class PageReader implements Iterable<PageHead> {
  #file: FileHandle | number;
  readonly #ownsFile: boolean;
  readonly #mapped: boolean;
  readonly #size: number;
  readonly #chunkSize: number;
  readonly #windowSize: number;
  #pool: PagePool | null;
  readonly #ownsPool: boolean;
  #window: Mapping | null = null;
  readonly #label: string;
  #windowStart = 0;
  #position = 0;
  #ended = false;
  #closed = false;
  #readable: ReadableStream<Uint8Array> | null = null;
  /** The asynchronous read in flight (the next one queues behind it; `close()` completes after it). */
  #reading: Promise<unknown> | null = null;
  /** Ends a read's wait when the reader closes. */
  readonly #closing = new AbortController();

  /** Reads `source`: a path (opened here, closed by `close()`), a FileHandle or an fd (left open). */
  constructor(source: string | URL | Target, options: PageReaderOptions = {}) {
    // Options first: a bad one must not leave an opened file behind.
    this.#chunkSize = checkInteger("chunkSize", options.chunkSize ?? 256 * 1024, 1, 2 ** 31);
    this.#windowSize = checkInteger("windowSize", options.windowSize ?? 8 * 1024 * 1024, pageSize, 2 ** 40);
    if (this.#windowSize % pageSize !== 0) {
      throw new RangeError(`windowSize ${this.#windowSize} is not a multiple of the page size ${pageSize}`);
    }
    if (options.pool !== undefined && !(options.pool instanceof PagePool)) {
      throw new TypeError(`pool must be a PagePool, got ${describe(options.pool)}`);
    }
    this.#ownsPool = options.pool === undefined;
    this.#pool = options.pool ?? null;
    this.#ownsFile = typeof source === "string" || source instanceof URL;
    this.#file = this.#ownsFile ? openFile(source as string | URL) : source as Target;
    try {
      const { size, kind } = stat(fdOf(this.#file));
      this.#mapped = kind === "file";
      this.#size = size;
    } catch (error) {
      if (this.#ownsFile) (this.#file as FileHandle).close();
      throw error;
    }
    const path = this.#file instanceof FileHandle ? this.#file.path : undefined;
    this.#label = path === undefined ? `mapping of fd ${fdOf(this.#file)}` : `mapping of '${path}'`;
  }

  /** The next head, or null at end of input. */
  read(): PageHead | null {
    if (this.#closed) throw stateError("ERR_CLOSED", "page reader is closed", "read");
    if (this.#ended) return null;
    return this.#mapped ? this.#readMapped() : this.#readIntoPage();
  }

  #readMapped(): PageHead | null {
    if (this.#position >= this.#size) return this.#end();
    let window = this.#window;
    if (window === null || this.#position >= this.#windowStart + window.byteLength) {
      window?.releaseRef(); // unmapped once its last head is released too
      this.#windowStart = this.#position - (this.#position % pageSize);
      const length = Math.min(this.#windowSize, this.#size - this.#windowStart);
      // Heads of a window on a FileHandle are file spans too: a PageWriter lets the kernel move them.
      const handle = this.#file instanceof FileHandle ? this.#file : undefined;
      window = this.#window = mapDescriptor(
        fdOf(this.#file),
        // No populate: heads that go by kernel move never touch these pages; those read fault in on use.
        { offset: this.#windowStart, length },
        this.#label,
        handle?.path,
        handle,
      );
      window.advise("sequential");
    }
    const offset = this.#position - this.#windowStart;
    const length = Math.min(this.#chunkSize, window.byteLength - offset);
    this.#position += length;
    return window.head(offset, length);
  }

  #readIntoPage(): PageHead | null {
    const page = this.#page();
    try {
      const staged = shared.packTargets([page]);
      const read = runSync(scatterPlan(fdOf(this.#file), shared, staged), fdOf(this.#file), waitsFor(this.#file));
      return read === 0 ? this.#end() : page.head(0, read);
    } finally {
      page.release();
    }
  }

  #page() {
    return (this.#pool ??= new PagePool({ pageSize: 16 * pageSize })).acquire();
  }

  /**
   * The next head without holding up the event loop: what a pipe or socket holds is read at once, and one
   * that is empty is waited on (one shared readiness wait, no thread); a regular file's next head is ready at
   * once. A call while another is pending queues behind it. `close()` ends a pending wait (it rejects with
   * `ERR_CLOSED`); an abort rejects with `ABORT_ERR`, nothing read.
   */
  readAsync(options: AsyncOptions = {}): Promise<PageHead | null> {
    if (this.#closed) return Promise.reject(stateError("ERR_CLOSED", "page reader is closed", "readAsync"));
    const read = this.#reading === null
      ? this.#readAsync(options.signal)
      : this.#reading.then(() => this.#readAsync(options.signal), () => this.#readAsync(options.signal));
    const tracked = this.#reading = read.finally(() => {
      if (this.#reading === tracked) this.#reading = null;
    });
    return read;
  }

  async #readAsync(signal?: AbortSignal): Promise<PageHead | null> {
    if (this.#closed) throw stateError("ERR_CLOSED", "page reader is closed", "readAsync");
    if (this.#ended) return null;
    if (this.#mapped) return this.#readMapped();
    const read = await this.#readOnce(this.#page(), signal);
    return read.bytes === 0 ? this.#end() : read.head;
  }

  /** One async read into `into` (a pool page, or a plain array for a stream chunk); it owns `into` after. */
  async #readOnce<T extends Page | Uint8Array>(
    into: T,
    signal?: AbortSignal,
  ): Promise<{ bytes: number; head: PageHead | null }> {
    const fd = fdOf(this.#file);
    const packed = PackedList.exact(1);
    const staged = packed.packTargets([into]);
    const signals = signal === undefined ? this.#closing.signal : AbortSignal.any([signal, this.#closing.signal]);
    try {
      const bytes = await runAsync(this.#file, fd, scatterPlan(fd, packed, staged), signals, into);
      return { bytes, head: into instanceof Page && bytes > 0 ? into.head(0, bytes) : null };
    } catch (error) {
      if (this.#closing.signal.aborted) {
        throw stateError("ERR_CLOSED", "page reader was closed during a read", "readAsync");
      }
      throw error;
    } finally {
      if (into instanceof Page) into.release();
    }
  }

  /** Reads heads until the end of input, asynchronously: `for await (const head of reader)`. */
  async *[Symbol.asyncIterator](): AsyncIterableIterator<PageHead> {
    for (let head = await this.readAsync(); head !== null; head = await this.readAsync()) yield head;
  }

  /**
   * The input as a `ReadableStream` of `Uint8Array`s, for `new Response(...)`, `Deno.serve`, `Bun.serve` or
   * `pipeTo`; the reader closes when the stream ends or is cancelled. From a regular file each chunk is the
   * file's mapped pages themselves (no copy), in an ArrayBuffer of its own that stays valid for as long as
   * anyone holds it: its window is unmapped once every chunk on it is garbage-collected and the reader has
   * moved on. From a pipe or socket each chunk is a fresh array the kernel reads into (its one copy).
   * Read heads or the stream, not both.
   *
   * @example
   * ```ts
   * import { PageReader } from "@pageio/pageio";
   * const body = new Response(new PageReader("README.md").readable);
   * console.log((await body.text()).startsWith("#")); // true
   * ```
   */
  get readable(): ReadableStream<Uint8Array> {
    return this.#readable ??= new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        const chunk = await this.#nextChunk();
        if (chunk === null) {
          this.close();
          controller.close();
        } else controller.enqueue(chunk);
      },
      // Settles once a pull in flight has: the fd stays open, and its number taken, until then.
      cancel: () => {
        const reading = this.#reading;
        this.close();
        return reading?.then(() => {}, () => {});
      },
    }, { highWaterMark: 0 });
  }

  async #nextChunk(): Promise<Uint8Array | null> {
    if (this.#closed) throw stateError("ERR_CLOSED", "page reader is closed", "readable");
    if (this.#mapped) {
      for (let head = this.read(); head !== null; head = this.read()) {
        if (head.byteLength > 0) return head._handOver()!;
        head.release();
      }
      return null;
    }
    // A pool page would go back to the pool (and be reused) while a consumer still holds the chunk.
    const bytes = new Uint8Array(16 * pageSize);
    const read = this.#reading = this.#readOnce(bytes);
    try {
      const { bytes: n } = await read;
      return n === 0 ? null : bytes.subarray(0, n);
    } finally {
      if (this.#reading === read) this.#reading = null;
    }
  }

  #end(): null {
    this.#ended = true;
    this.#window?.releaseRef();
    this.#window = null;
    return null;
  }

  /** Reads heads until the end of input. */
  *[Symbol.iterator](): IterableIterator<PageHead> {
    for (let head = this.read(); head !== null; head = this.read()) yield head;
  }

  /**
   * Closes what the reader opened. Heads already read stay valid until released. A pending `readAsync` is
   * ended (it rejects with `ERR_CLOSED`), and what the reader owns is released once it has settled.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#reading !== null) {
      this.#closing.abort();
      const finish = () => this.#finish();
      this.#reading.then(finish, finish);
      return;
    }
    this.#finish();
  }

  #finish(): void {
    this.#window?.releaseRef();
    this.#window = null;
    if (this.#ownsPool) this.#pool?.close();
    if (this.#ownsFile) (this.#file as FileHandle).close();
  }

  /** Closes, as `close()` does, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}
