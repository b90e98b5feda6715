/**
 * The seed's page_read: a reader that supplies the buffer, a head into the
 * file's mapping or into a pool page.
 * @module
 */
import { fn } from "../ffi/native.ts";
import { abortError, checkAsyncOptions, checkInteger, checkOptions, stateError, unwrap, withPath } from "./errors.ts";
import { describe, fdOf, FileHandle, openFile, stat, type Target } from "./file.ts";
import type { AsyncOptions } from "./drive.ts";
import { readv, readvAsync } from "./gather.ts";
import { sameFileCheck, waitReady } from "./reactor.ts";
import type { PageHead } from "./head.ts";
import { kConstruct, kRelease, kWhenClosed, lengthOf } from "./internal.ts";
import { mapDescriptor, type Mapping } from "./mapping.ts";
import { type Page, PagePool } from "./pool.ts";
import { pageSize } from "./system.ts";
import { FileWindow } from "./window.ts";
import { isPageWritable } from "./writer.ts";

/**
 * Limit: pool pages one asynchronous read of a pipe or socket may fill (1 MiB in the default 64 KiB pages: the
 * biggest pipe an unprivileged process may make, `/proc/sys/fs/pipe-max-size`). A writer ahead of the reader is
 * then caught up with in one system call (and one promise, and one wake-up of a writer waiting on a full pipe);
 * the pages a read does not fill go back to the pool at once.
 */
const READ_PAGES = 16;
/**
 * Pool pages a reader's reads start at (256 KiB in 64 KiB pages). A read that fills more than half of what it
 * asked doubles the next one's, up to `READ_PAGES`; `SMALL_READS` in a row that fill at most a page each go back
 * to this. Each page asked costs its taking and giving back: a stream of small messages read 16 pages at a time
 * took 8 µs a read, not 6. (Back at once after one small read, or grown only by reads that filled all they
 * asked, a child's stdout took as many reads as at 4 pages always.)
 */
const READ_PAGES_MIN = 4;
/** Reads in a row that fill at most a page before a reader's reads ask `READ_PAGES_MIN` pages again. */
const SMALL_READS = 4;

/** One byte, read to tell an empty file from a procfs one (both say size 0). */
const probe = new Uint8Array(1);

/** The keys of PageReaderOptions. */
const READER_OPTIONS = ["pool", "chunkSize", "windowSize", "offset", "length", "maxMappedBytes"] as const;

/** Options of `new PageReader()`. */
export interface PageReaderOptions {
  /** Pool for pipes, sockets and devices (default: a pool of the reader's own, closed with it). */
  pool?: PagePool;
  /** Most bytes per head from a regular file (default 256 KiB). */
  chunkSize?: number;
  /** Bytes of a regular file mapped at once, a multiple of the page size (default 8 MiB; at most `maxMappedBytes`). */
  windowSize?: number;
  /** Where in a regular file to start (default 0): with `length`, a byte range, as an HTTP `Range` asks. */
  offset?: number;
  /**
   * Bytes to read (default: to the end of the file, or of the stream). On a regular file `offset + length` must
   * lie within the file, else a RangeError: clamp an HTTP `Range` that runs past the end to the file's size
   * first, as a server answers it. On a pipe or socket, the most bytes read.
   */
  length?: number;
  /**
   * Most bytes of a regular file this reader keeps mapped, windows still held by unreleased heads
   * included (default 32 MiB, at least the page size). Past it, heads are read into pool pages instead,
   * until held windows are released. `readable` maps nothing at all. A reader that opened its file itself
   * (a path) maps each window after the first only when a head's bytes are first needed in memory (heads
   * that a PageWriter hands to the kernel never map theirs), and a window that would pass this bound then
   * is a copy, which holds (and costs) only the bytes its heads needed, read from the file as they need them.
   */
  maxMappedBytes?: number;
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
  /** A plain fd number: throws once pageio closed it or gave it to another file (a FileHandle says so itself). */
  readonly #sameFile: (() => void) | undefined;
  readonly #ownsFile: boolean;
  #mapped: boolean;
  /** A FIFO this reader opened, no writer seen yet: it reads as ended until one comes, so wait for one. */
  #awaitWriter: boolean;
  /** Where reading stops in a file; bytes left to read from a stream (Infinity: to its end). */
  readonly #end: number;
  #left: number;
  #rangeLength: number | null;
  readonly #chunkSize: number;
  readonly #windowSize: number;
  readonly #maxMappedBytes: number;
  /** Windows made so far that may still be held by heads (pruned as they close). */
  #windows: (Mapping | FileWindow)[] = [];
  /** Windows after the first are mapped when needed (a file this reader opened: it outlives their heads' use). */
  readonly #lazy: boolean;
  #windowsMade = 0;
  #pool: PagePool | null;
  readonly #ownsPool: boolean;
  #window: Mapping | FileWindow | null = null;
  readonly #label: string;
  readonly #path: string | undefined;
  #windowStart = 0;
  #position = 0;
  #ended = false;
  #closed = false;
  #readable: ReadableStream<Uint8Array<ArrayBuffer>> | null = null;
  /** Heads of a stream read ahead by the last read (it filled more than one page), handed out first. */
  #queue: PageHead[] = [];
  /** Pool pages the next asynchronous read of a stream asks for (`READ_PAGES_MIN` to `READ_PAGES`). */
  #readPages = READ_PAGES_MIN;
  /** Reads in a row that filled at most one page. */
  #smallReads = 0;
  /** The asynchronous read in flight (the next one queues behind it; `close()` completes after it). */
  #reading: Promise<unknown> | null = null;
  /** Ends a read's wait when the reader closes. */
  readonly #closing = new AbortController();

  /**
   * Reads `source`: a path or `file:` URL (opened here; closed by `close()`, or at the end of input once no head
   * read from it is held), a FileHandle or an fd (left open).
   * A FIFO path opens at once and is read as a pipe: the first read waits for a writer to come (`readAsync` and
   * `readable` off the JS thread), as a blocking `open()` would have, but the constructor never waits.
   */
  constructor(source: string | URL | Target, options: PageReaderOptions = {}) {
    checkOptions(options, "PageReader", READER_OPTIONS);
    // Options first: a bad one must not leave an opened file behind.
    this.#chunkSize = checkInteger("chunkSize", options.chunkSize ?? 256 * 1024, 1, 2 ** 31);
    this.#windowSize = checkInteger("windowSize", options.windowSize ?? 8 * 1024 * 1024, pageSize, 2 ** 40);
    if (this.#windowSize % pageSize !== 0) {
      throw new RangeError(`windowSize ${this.#windowSize} is not a multiple of the page size ${pageSize}`);
    }
    this.#maxMappedBytes = checkInteger(
      "maxMappedBytes",
      options.maxMappedBytes ?? 32 * 1024 * 1024,
      pageSize,
      2 ** 50,
    );
    const pool = options.pool; // read once: a getter cannot pass the check, then give something else
    if (pool !== undefined && !(pool instanceof PagePool)) {
      throw new TypeError(`pool must be a PagePool, got ${describe(pool)}`);
    }
    const offset = checkInteger("offset", options.offset ?? 0, 0);
    const length = options.length;
    const wanted = length === undefined ? undefined : checkInteger("length", length, 0);
    this.#ownsPool = pool === undefined;
    this.#pool = pool ?? null;
    this.#ownsFile = typeof source === "string" || source instanceof URL;
    this.#lazy = this.#ownsFile;
    this.#file = this.#ownsFile ? openFile(source as string | URL) : source as Target;
    this.#sameFile = typeof this.#file === "number" ? sameFileCheck(this.#file, "PageReader") : undefined;
    const path = this.#file instanceof FileHandle ? this.#file.path : undefined;
    this.#path = path;
    try {
      const { size, kind } = stat(fdOf(this.#file), path);
      this.#mapped = kind === "file" && size > 0;
      this.#awaitWriter = this.#ownsFile && kind === "fifo";
      // Size 0 is not end of file on procfs: such a file is read as a stream, to its end (or `length`). One byte
      // read at 0 tells it from an empty file, whose size (a Content-Length) is 0, as any regular file's is its own.
      const pseudo = kind === "file" && size === 0 && this.#hasBytesAtStart(path);
      if (pseudo) {
        if (offset !== 0) {
          throw new TypeError(
            `offset ${offset} needs a file whose size is known; this one says 0 bytes (a procfs file) and has more`,
          );
        }
      } else if (kind === "file") {
        if (offset + (wanted ?? 0) > size) {
          throw new RangeError(
            wanted === undefined
              ? `offset ${offset} is past the end of the ${size}-byte file`
              : `offset ${offset} + length ${wanted} is past the end of the ${size}-byte file`,
          );
        }
      } else if (offset !== 0) {
        throw new TypeError(`offset ${offset} needs a regular file; a ${kind} is read from where it is`);
      }
      this.#position = offset;
      const empty = kind === "file" && size === 0 && !pseudo;
      this.#end = this.#mapped ? offset + (wanted ?? size - offset) : Infinity;
      this.#left = this.#mapped ? Infinity : empty ? 0 : wanted ?? Infinity;
      this.#rangeLength = this.#mapped ? this.#end - offset : empty ? 0 : wanted ?? null;
    } catch (error) {
      if (this.#ownsFile) (this.#file as FileHandle).close();
      throw error;
    }
    this.#label = path === undefined ? `mapping of fd ${fdOf(this.#file)}` : `mapping of '${path}'`;
  }

  /** Whether a regular file that says it is empty has a byte at 0 (procfs: its size is no bound). */
  #hasBytesAtStart(path: string | undefined): boolean {
    return unwrap(fn.pageio_pread(fdOf(this.#file), probe, 1, 0), "pread", path) > 0;
  }

  /**
   * Bytes this reader reads in all: the range's length (the whole file by default; 0 for an empty file), or
   * `length` on a stream; null for a stream read to its end, whose length is not known (also a procfs file,
   * which says size 0 and has more). A `Content-Length`.
   *
   * @example
   * ```ts
   * import { PageReader } from "@pageio/pageio";
   * using reader = new PageReader("README.md", { offset: 2, length: 5 }); // bytes 2-6, as `Range: bytes=2-6`
   * console.log(reader.size); // 5
   * ```
   */
  get size(): number | null {
    return this.#rangeLength;
  }

  /** The next head, or null at end of input. */
  read(): PageHead | null {
    if (this.#closed) throw stateError("ERR_CLOSED", "page reader is closed", "read");
    if (this.#ended) return null;
    return this.#mapped ? this.#readMapped() : this.#readIntoPage();
  }

  #readMapped(): PageHead | null {
    if (this.#position >= this.#end) return this.#finish();
    let window = this.#window;
    if (window === null || this.#position >= this.#windowStart + window.byteLength) {
      // Forget the old window before anything can throw: close() must not release it a second time.
      this.#window = null;
      window?.[kRelease](); // unmapped once its last head is released too
      try {
        window = this.#mapWindow();
      } catch (error) {
        // sysfs (and other pseudo files) cannot be mapped: read them instead, from the start.
        if (this.#position !== 0 || (error as { code?: string }).code !== "ENODEV") throw error;
        this.#mapped = false;
        this.#left = this.#end; // no more than its size or the length asked, if read() gives that much
        this.#rangeLength = null; // its size is only a bound
        return this.#readIntoPage();
      }
      if (window === null) return this.#readAt();
    }
    const offset = this.#position - this.#windowStart;
    const length = Math.min(this.#chunkSize, window.byteLength - offset);
    // Every head, not only every window: a file cut under a mapped window must not go on as heads of zeros.
    // (A window not mapped checks when it maps; a kernel move of a span the file no longer holds is ENODATA.)
    if (!(window instanceof FileWindow) || window.mapped) this.#checkSize(this.#position + length);
    this.#position += length;
    return window.head(offset, length);
  }

  /** The next window from the page holding `position`, or null when held windows leave no room for one. */
  #mapWindow(): Mapping | FileWindow | null {
    this.#windows = this.#windows.filter((w) => !w.closed);
    const start = this.#position - (this.#position % pageSize);
    if (this.#lazy && this.#windowsMade++ > 0) {
      // Not the first window (which maps at once: a small file's only one, and where a file that cannot be
      // mapped is found while it can still be read instead).
      // No bigger than maxMappedBytes, so that mapped whole it fits an empty room (a copy costs what is read).
      const length = Math.min(
        this.#windowSize,
        this.#end - start,
        this.#maxMappedBytes - this.#maxMappedBytes % pageSize,
      );
      this.#checkSize(start + length);
      const window = new FileWindow(this.#file as FileHandle, start, length, this.#label, this.#mapRoom, kConstruct);
      this.#windowStart = start;
      this.#window = window;
      this.#windows.push(window);
      return window;
    }
    const room = this.#mapRoom();
    const length = Math.min(this.#windowSize, this.#end - start, room - (room % pageSize));
    if (length <= this.#position - start) return null;
    this.#checkSize(start + length);
    this.#sameFile?.();
    // Heads of a window on a FileHandle are file spans too: a PageWriter lets the kernel move them.
    const handle = this.#file instanceof FileHandle ? this.#file : undefined;
    const window = mapDescriptor(
      fdOf(this.#file),
      // No populate: heads that go by kernel move never touch these pages; those read fault in on use.
      { offset: start, length },
      this.#label,
      handle?.path,
      handle,
    );
    this.#windowStart = start;
    this.#window = window;
    this.#windows.push(window);
    window.advise("sequential");
    return window;
  }

  /** Bytes this reader may still map: its bound less what its live windows have mapped. */
  readonly #mapRoom = (): number => {
    let held = 0;
    for (const w of this.#windows) held += w instanceof FileWindow ? w.mappedBytes : w.closed ? 0 : w.byteLength;
    return this.#maxMappedBytes - held;
  };

  /** The file must still hold `end` bytes; cut shorter, reading on would give zeros or fail. */
  #checkSize(end: number): void {
    const { size } = stat(fdOf(this.#file), this.#path);
    if (size < end) {
      throw stateError(
        "ERR_FILE_TRUNCATED",
        `the file behind this ${this.#label} was cut to ${size} bytes while being read (${end} expected)`,
        "read",
      );
    }
  }

  /** A head into a pool page read at the reader's position (held windows are at `maxMappedBytes`). */
  #readAt(): PageHead {
    const page = (this.#pool ??= new PagePool({ pageSize: 16 * pageSize })).acquire();
    try {
      const bytes = page.bytes;
      const read = this.#pread(bytes.subarray(0, Math.min(bytes.byteLength, this.#chunkSize)));
      return page.head(0, read);
    } finally {
      page.release();
    }
  }

  /** Reads into `into` at the reader's position, up to the range's end; ERR_FILE_TRUNCATED if cut. */
  #pread(into: Uint8Array): number {
    const want = Math.min(lengthOf(into), this.#end - this.#position, 2 ** 31); // what `into` really holds
    if (want === 0) return 0;
    this.#sameFile?.();
    const read = unwrap(fn.pageio_pread(fdOf(this.#file), into, want, this.#position), "pread", this.#path);
    if (read === 0) this.#checkSize(this.#position + 1);
    this.#position += read;
    return read;
  }

  #readIntoPage(): PageHead | null {
    if (this.#queue.length !== 0) return this.#queue.shift()!;
    if (this.#left === 0) return this.#finish();
    const page = (this.#pool ??= new PagePool({ pageSize: 16 * pageSize })).acquire();
    try {
      this.#sameFile?.();
      if (this.#awaitWriter) this.#writerCame(fn.pageio_wait_readable(fdOf(this.#file), 0xffff_ffff));
      let read: number;
      try {
        read = readv(this.#file, [this.#room(page)]);
      } catch (error) {
        throw withPath(error, this.#path);
      }
      return this.#took(read, page);
    } finally {
      page.release();
    }
  }

  /** What of `page` to read into: no more than `length` has left. */
  #room(page: Page): Page | Uint8Array {
    return this.#left >= this.#pool!.pageSize ? page : page.bytes.subarray(0, this.#left);
  }

  #took(read: number, page: Page): PageHead | null {
    if (read === 0) return this.#finish();
    this.#left -= read;
    return page.head(0, read);
  }

  /**
   * The next head without holding up the event loop: what a pipe or socket holds is read at once, and one
   * that is empty is waited on (one shared readiness wait, no thread); a regular file's next head is ready at
   * once. A call while another is pending queues behind it. `close()` ends a pending wait (it rejects with
   * `ERR_CLOSED`); an abort rejects with `ABORT_ERR`, nothing read.
   */
  readAsync(options: AsyncOptions = {}): Promise<PageHead | null> {
    let signal: AbortSignal | undefined;
    try {
      signal = checkAsyncOptions(options, "readAsync");
    } catch (error) {
      return Promise.reject(error); // a Promise-returning call never throws
    }
    if (this.#closed) return Promise.reject(stateError("ERR_CLOSED", "page reader is closed", "readAsync"));
    if (this.#reading === null && this.#queue.length !== 0 && !signal?.aborted) {
      return Promise.resolve(this.#queue.shift()!);
    }
    const read = this.#reading === null
      ? this.#readAsync(signal)
      : this.#reading.then(() => this.#readAsync(signal), () => this.#readAsync(signal));
    // Tracks settling only: it never rejects (the caller handles `read`; a rejecting copy would go unhandled).
    const settled = () => {
      if (this.#reading === tracked) this.#reading = null;
    };
    const tracked = this.#reading = read.then(settled, settled);
    return read;
  }

  async #readAsync(signal?: AbortSignal): Promise<PageHead | null> {
    if (this.#closed) throw stateError("ERR_CLOSED", "page reader is closed", "readAsync");
    if (this.#ended) return null;
    if (this.#mapped) return this.#readMapped();
    if (this.#queue.length !== 0) {
      if (signal?.aborted) throw abortError(signal.reason); // as a read that would have waited: nothing taken
      return this.#queue.shift()!;
    }
    if (this.#left === 0) return this.#finish();
    const pool = this.#pool ??= new PagePool({ pageSize: 16 * pageSize });
    const pages = [pool.acquire()];
    try {
      // Up to #readPages pages in one readv: a pipe that holds more than a page gives it in one system call
      // (and one wait at most); pages it does not fill go straight back.
      let room = Math.min(this.#left, pool.pageSize * this.#readPages) - pool.pageSize;
      while (room > 0 && (pool.stats.free > 0 || pool.stats.total < pool.maxPages)) {
        pages.push(pool.acquire());
        room -= pool.pageSize;
      }
      const targets: (Page | Uint8Array)[] = [...pages];
      if (this.#left < pool.pageSize * pages.length) {
        const last = pages.length - 1;
        targets[last] = pages[last].bytes.subarray(0, this.#left - pool.pageSize * last);
      }
      const read = await this.#receive(targets, signal);
      if (read === 0) return this.#finish();
      if (2 * read > pool.pageSize * pages.length) {
        this.#readPages = Math.min(READ_PAGES, 2 * this.#readPages);
        this.#smallReads = 0;
      } else if (read > pool.pageSize) this.#smallReads = 0;
      else if (++this.#smallReads >= SMALL_READS) this.#readPages = READ_PAGES_MIN;
      this.#left -= read;
      const first = pages[0].head(0, Math.min(read, pool.pageSize));
      for (let i = 1; i * pool.pageSize < read; i++) {
        this.#queue.push(pages[i].head(0, Math.min(read - i * pool.pageSize, pool.pageSize)));
      }
      return first;
    } finally {
      for (const page of pages) page.release();
    }
  }

  /** One asynchronous read of what the pipe or socket has (waiting for it when it has nothing yet). */
  async #receive(into: (Page | Uint8Array)[], signal?: AbortSignal): Promise<number> {
    const closing = this.#closing.signal;
    const signals = signal === undefined ? closing : AbortSignal.any([signal, closing]);
    try {
      this.#sameFile?.();
      // A FIFO with no writer yet reads as ended; it turns readable once a writer writes, or comes and goes.
      if (this.#awaitWriter) {
        await waitReady(fdOf(this.#file), "read", signals);
        this.#awaitWriter = false;
      }
      return await readvAsync(this.#file, into, { signal: signals });
    } catch (error) {
      if (closing.aborted) throw stateError("ERR_CLOSED", "page reader was closed during a read", "readAsync");
      throw withPath(error, this.#path);
    }
  }

  /**
   * Reads heads until the end of input, asynchronously: `for await (const head of reader)`. A loop left early
   * closes the reader, as for the synchronous loop.
   *
   * @example
   * ```ts
   * import { PageReader } from "@pageio/pageio";
   * // A file line by line: each head is a view of the file's mapping, decoded where it lies.
   * const decoder = new TextDecoder();
   * let rest = "";
   * let lines = 0;
   * for await (const head of new PageReader("README.md")) {
   *   const parts = (rest + decoder.decode(head.bytes, { stream: true })).split("\n");
   *   head.release(); // the last one released at the end: the reader closes the file it opened
   *   rest = parts.pop()!;
   *   lines += parts.length;
   * }
   * console.log(lines > 100); // true
   * ```
   */
  async *[Symbol.asyncIterator](): AsyncIterableIterator<PageHead> {
    let ended = false;
    try {
      for (let head = await this.readAsync(); head !== null; head = await this.readAsync()) yield head;
      ended = true;
    } finally {
      if (!ended) this.close(); // see [Symbol.iterator]
    }
  }

  /**
   * The input as a byte stream (`type: "bytes"`), for `new Response(...)`, `Deno.serve`, `Bun.serve` or
   * `pipeTo`; the reader closes when the stream ends or is cancelled. Each chunk is memory of the stream's
   * own that the kernel reads into (`pread` at the reader's position for a file, `readv` for a pipe or
   * socket): nothing mapped ever leaves pageio, so a chunk is valid for as long as anyone holds it, and a
   * reader serving many clients holds no more memory than the chunks in flight. With
   * `getReader({ mode: "byob" })` the kernel reads straight into the caller's buffer. A file cut short while
   * being read errors the stream with `ERR_FILE_TRUNCATED`. Read heads or the stream, not both.
   *
   * @example
   * ```ts
   * import { PageReader } from "@pageio/pageio";
   * const body = new Response(new PageReader("README.md").readable);
   * console.log((await body.text()).startsWith("#")); // true
   *
   * const reader = new PageReader("README.md").readable.getReader({ mode: "byob" });
   * const { value } = await reader.read(new Uint8Array(4096)); // read into this buffer
   * console.log(String.fromCharCode(value![0])); // "#"
   * await reader.cancel();
   * ```
   */
  get readable(): ReadableStream<Uint8Array<ArrayBuffer>> {
    // A buffer no bigger than what is left to read: a 64 KiB file must not cost a zeroed 256 KiB one.
    const left = this.#mapped ? this.#end - this.#position : this.#left;
    let pulled = false;
    return this.#readable ??= new PageReadable({
      type: "bytes",
      autoAllocateChunkSize: Math.max(1, Math.min(this.#chunkSize, 1024 * 1024, left)),
      pull: async (controller) => {
        pulled = true;
        // With autoAllocateChunkSize there is always a request: the caller's buffer or one made for it.
        const request = controller.byobRequest!;
        let read: number;
        try {
          read = await this.#readInto(request.view as Uint8Array<ArrayBuffer>);
        } catch (error) {
          this.close();
          throw error;
        }
        if (read === 0) {
          this.close();
          controller.close();
          request.respond(0);
        } else {
          request.respond(read);
          // The last bytes close the stream at once: no further pull (and no buffer made for it) to learn so.
          if (this.#mapped ? this.#position >= this.#end : this.#left === 0 && this.#queue.length === 0) {
            this.close();
            controller.close();
          }
        }
      },
      // Settles once a pull in flight has: the fd stays open, and its number taken, until then.
      cancel: () => {
        const reading = this.#reading;
        this.close();
        return reading?.then(() => {}, () => {});
      },
    }, () => pulled ? null : this) as ReadableStream<Uint8Array<ArrayBuffer>>;
  }

  async #readInto(view: Uint8Array): Promise<number> {
    if (this.#closed) throw stateError("ERR_CLOSED", "page reader is closed", "readable");
    if (this.#ended) return 0;
    // pread works where mmap does not (sysfs): it stops at the real end, the size being only a bound there.
    if (this.#mapped) return this.#pread(view);
    if (this.#queue.length !== 0) return this.#copyQueued(view);
    if (this.#left === 0) return 0;
    const reading = this.#reading = this.#receive([view.subarray(0, Math.min(view.byteLength, this.#left))]);
    try {
      const read = await reading;
      this.#left -= read;
      return read;
    } finally {
      if (this.#reading === reading) this.#reading = null;
    }
  }

  /** Bytes of read-ahead heads copied into `view` (a stream read after heads were): in order, each once. */
  #copyQueued(view: Uint8Array): number {
    let copied = 0;
    while (this.#queue.length !== 0 && copied < view.byteLength) {
      const head = this.#queue[0];
      const bytes = head.bytes;
      const n = Math.min(bytes.byteLength, view.byteLength - copied);
      view.set(bytes.subarray(0, n), copied);
      copied += n;
      if (n === bytes.byteLength) this.#queue.shift()!.release();
      else {
        this.#queue[0] = head.slice(n);
        head.release();
      }
    }
    return copied;
  }

  #writerCame(result: number): void {
    unwrap(result, "poll", this.#path);
    this.#awaitWriter = false;
  }

  #finish(): null {
    this.#ended = true;
    const window = this.#window;
    this.#window = null;
    window?.[kRelease]();
    // Nothing more is read into the reader's own pool: its slabs go as the last head on them is released,
    // also for a reader iterated to its end and never closed.
    if (this.#ownsPool) this.#pool?.close();
    // A file the reader opened, read to its end, is closed once every head read from it is released, as a
    // runtime's own file stream closes at its end: a loop over many files that never calls close() must not
    // keep an fd for each. A head still held keeps it open till then (a window not mapped yet maps from it, and
    // a PageWriter's kernel move reads from it): the last window to close closes it (or close(), if first).
    if (this.#ownsFile) {
      const file = this.#file as FileHandle;
      const open = this.#windows.filter((w) => !w.closed);
      const closeOnce = () => {
        if (!file.closed && open.every((w) => w.closed)) file.close();
      };
      if (open.length === 0) file.close();
      else for (const w of open) w[kWhenClosed](closeOnce);
    }
    return null;
  }

  /**
   * Reads heads until the end of input. A loop left early (`break`, `return`, a throw) closes the reader, as
   * leaving a `for await` over a stream cancels it: `for (const head of new PageReader(path)) break;` keeps no
   * descriptor. Heads already read stay valid until released. To read on after a loop, call `read()` instead.
   */
  *[Symbol.iterator](): IterableIterator<PageHead> {
    let ended = false;
    try {
      for (let head = this.read(); head !== null; head = this.read()) yield head;
      ended = true;
    } finally {
      if (!ended) this.close();
    }
  }

  /**
   * Closes what the reader opened (a file it opened is closed at the end of input already, once no head read
   * from it is held). Heads already read stay valid until released. A pending `readAsync` is
   * ended (it rejects with `ERR_CLOSED`), and what the reader owns is released once it has settled.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#reading !== null) {
      this.#closing.abort();
      const release = () => this.#release();
      this.#reading.then(release, release);
      return;
    }
    this.#release();
  }

  #release(): void {
    const queued = this.#queue;
    this.#queue = [];
    for (const head of queued) head.release();
    const window = this.#window;
    this.#window = null;
    window?.[kRelease]();
    if (this.#ownsPool) this.#pool?.close();
    // Heads still held keep their bytes: windows read in what those may need now, before their file is closed.
    for (const w of this.#windows) if (w instanceof FileWindow) w.readNow();
    this.#windows = [];
    if (this.#ownsFile) (this.#file as FileHandle).close();
  }

  /** Closes, as `close()` does, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** ReadableStream's constructor for a byte source (the lib's typed overload has no type argument to extend). */
type ByteStream = new (source: UnderlyingByteSource) => ReadableStream<Uint8Array<ArrayBuffer>>;

/**
 * A PageReader's byte stream. Piped into a PageWriter's `writable`, it hands over the reader's heads instead of
 * chunks: the writer moves file spans in the kernel (`copy_file_range`, `sendfile`) and writes pool pages as they
 * are, where chunks would be copied twice (into the stream's buffer, then into the writer's pages). A stream
 * pulled before goes the standard way (bytes it pulled may wait in its queue).
 */
class PageReadable extends (ReadableStream as unknown as ByteStream) {
  readonly #heads: () => PageReader | null;
  #controller: ReadableByteStreamController | null = null;

  constructor(source: UnderlyingByteSource, heads: () => PageReader | null) {
    let controller: ReadableByteStreamController | null = null;
    super({ ...source, start: (c: ReadableByteStreamController) => void (controller = c) });
    this.#controller = controller;
    this.#heads = heads;
  }

  override pipeTo(destination: WritableStream<Uint8Array>, options: StreamPipeOptions = {}): Promise<void> {
    let read: StreamPipeOptions;
    try {
      const { preventClose, preventAbort, preventCancel, signal } = options ?? {}; // each read once
      read = { preventClose, preventAbort, preventCancel, signal };
    } catch (error) {
      return Promise.reject(error); // a getter's throw, as pipeTo has it
    }
    const { signal } = read, reader = this.#heads();
    if (
      reader === null || this.locked || !isPageWritable(destination) || destination.locked ||
      (signal !== undefined && !(signal instanceof AbortSignal)) // pipeTo's own TypeError
    ) return super.pipeTo(destination, read);
    return this.#pipeHeads(reader, destination as unknown as WritableStream<PageHead>, read);
  }

  /** pipeTo's rules (both locked throughout, what each side is owed when the other ends), with heads for chunks. */
  async #pipeHeads(reader: PageReader, destination: WritableStream<PageHead>, options: StreamPipeOptions) {
    const { preventClose, preventAbort, preventCancel, signal } = options;
    const input = this.getReader(), output = destination.getWriter();
    let failing: "source" | "destination" | "abort" = "abort";
    try {
      signal?.throwIfAborted();
      const wait = { signal }; // a read waiting for a pipe or socket ends with the abort
      for (;;) {
        failing = "source";
        const head = await reader.readAsync(wait);
        if (head === null) break;
        if (signal?.aborted) head.release();
        failing = "abort";
        signal?.throwIfAborted();
        failing = "destination";
        await output.write(head);
      }
    } catch (error) {
      const reason = signal?.aborted ? signal.reason : error; // the read's own ABORT_ERR is the abort's
      if (signal?.aborted) failing = "abort";
      if (failing === "source") this.#controller!.error(reason); // the stream is errored with its source's error
      if (failing === "source" || preventCancel) input.releaseLock();
      else await input.cancel(reason).catch(() => {});
      if (failing === "destination" || preventAbort) output.releaseLock();
      else await output.abort(reason).catch(() => {});
      throw reason;
    }
    this.#controller!.close();
    input.releaseLock();
    if (preventClose) output.releaseLock();
    else await output.close().finally(() => output.releaseLock());
  }
}
