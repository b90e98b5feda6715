/**
 * Memory mappings of files and of anonymous memory, seen as a Uint8Array
 * that *is* the mapping. Views are revocable: `unmap()` detaches them first.
 * @module
 */
import { abi, errno, fn, native } from "../ffi/native.ts";
import { descriptor, type SharedMemory, type SharedView, type ShareOptions, shareRegion, takeShared } from "./share.ts";
import { checkInteger, checkOptions, checkRange, faultError, stateError, unwrap } from "./errors.ts";
import { describe, fdOf, FileHandle, openFile, stat } from "./file.ts";
import { type FileSource, PageHead } from "./head.ts";
import {
  internalOnly,
  kAlive,
  kBufferOffset,
  kConstruct,
  kLabel,
  kMemory,
  kRegion,
  kRegionOffset,
  kRelease,
  kRetain,
  kSource,
  kViewBuffer,
  kWhenClosed,
  revoke,
} from "./internal.ts";
import { pageSize } from "./system.ts";

/** Options of `mapFile`. */
export interface MapFileOptions {
  /**
   * Writes to `bytes` reach the file (a shared writable mapping; the file must be writable). Default false:
   * the mapping shares the file's pages for reading, and a write to `bytes` gets a private copy of its page
   * (the kernel's copy-on-write) that never reaches the file, since JS cannot make a view read-only;
   * `advise("dontneed")` drops such copies, and the pages read as the file again.
   */
  write?: boolean;
  /** With `write`: writes stay in this process and never reach the file (copy-on-write). */
  private?: boolean;
  /** First byte to map; need not be page-aligned (default 0). */
  offset?: number;
  /** Bytes to map (default: to the end of the file). */
  length?: number;
  /** Fault every page in now so first reads do not wait on the disk (for reading: nothing is copied). */
  populate?: boolean;
}

/** `madvise` hints by name. */
export type Advice = "normal" | "sequential" | "random" | "willneed" | "dontneed";
const advices: readonly Advice[] = abi.enums.Advice.values; // the index is the native advice
const mapBits = abi.flags.MapFlags.bits;

const out = new Float64Array(1);

// Backstops for mappings dropped without unmap(), never an unmap under a live view. A mapping never viewed
// is unmapped once collected; so is one on Bun, whose views hold the memory themselves until Bun frees them.
// On Deno nothing reports when a view's backing store is freed, and a transferred one outlives the buffer
// pageio made: a viewed mapping is retired (kept mapped, its file's pages replaced by zeros) once collected.
const dropped = new FinalizationRegistry<number>((region) => fn.pageio_unmap(region));
const droppedViewed = new FinalizationRegistry<number>((region) => fn.pageio_retire(region));

/**
 * A live mapping. `bytes` is the mapped memory itself; after `unmap()` (or
 * the end of a `using` block) every view of it reads as empty.
 *
 * @example
 * ```ts
 * import { mapAnonymous } from "@pageio/pageio";
 * using memory = mapAnonymous(8192);
 * memory.bytes[8191] = 1;
 * console.log(memory.byteLength); // 8192
 * ```
 */
export class Mapping {
  #region: number;
  #address: number;
  #mappedLength: number;
  readonly #delta: number;
  /** The revocable view of the whole mapping, made when first asked for. */
  #buffer: ArrayBuffer | null = null;
  #bytes: Uint8Array<ArrayBuffer> | null = null;
  #refs = 1; // the mapping's own, plus one per live head
  #whenClosed: (() => void) | null = null;
  #closed = false;
  /** The mapped length in bytes as requested (the view's length). */
  readonly byteLength: number;
  readonly #label: string;
  readonly #source: FileSource | undefined;

  /** @internal Use `mapFile` or `mapAnonymous`. */
  constructor(
    region: number,
    address: number,
    mappedLength: number,
    delta: number,
    length: number,
    label: string,
    source?: FileSource,
    key?: symbol,
  ) {
    internalOnly(key, "Mapping", "mapFile() or mapAnonymous()");
    this.#source = source;
    this.#region = region;
    this.#address = address;
    this.#mappedLength = mappedLength;
    this.#delta = delta;
    this.byteLength = length;
    this.#label = label;
    if (mappedLength !== 0) dropped.register(this, region, this);
  }

  /** The mapped bytes (no copy). Empty once unmapped. */
  get bytes(): Uint8Array<ArrayBuffer> {
    if (this.#closed) return new Uint8Array(0);
    return this.#bytes ??= new Uint8Array(this[kViewBuffer](), this.#delta, this.byteLength);
  }

  /** True once unmapped. */
  get closed(): boolean {
    return this.#closed;
  }

  /** @internal */
  get [kAlive](): boolean {
    return !this.#closed;
  }

  /** @internal */
  get [kRegion](): number {
    return this.#region;
  }

  /** @internal */
  get [kRegionOffset](): number {
    return this.#delta;
  }

  /** @internal */
  get [kBufferOffset](): number {
    return this.#delta;
  }

  /** @internal */
  get [kLabel](): string {
    return this.#label;
  }

  /** @internal The file these bytes come from, while its handle stays open (PageReader windows). */
  get [kSource](): FileSource | undefined {
    return this.#source;
  }

  /**
   * @internal Its region once a view of it was made (or a read went into it), else 0: before that no write
   * can have made a page of it differ from its file.
   */
  get [kMemory](): number {
    return this.#buffer === null || this.#closed ? 0 : this.#region;
  }

  /** @internal */
  [kViewBuffer](): ArrayBuffer {
    if (this.#closed || this.#mappedLength === 0) return new ArrayBuffer(0);
    if (this.#buffer === null) {
      this.#buffer = viewOf(this.#region, this.#address, this.#mappedLength);
      if (!native.viewsTracked) {
        dropped.unregister(this);
        droppedViewed.register(this.#buffer, this.#region, this);
      }
    }
    return this.#buffer;
  }

  /** A head on `[offset, offset + length)` of the mapping; release it when done. */
  head(offset = 0, length?: number): PageHead {
    this.#live("head");
    const range = checkRange("head", this.byteLength, offset, length);
    return new PageHead(this, range.offset, range.length, kConstruct);
  }

  /** Tells the kernel how the mapping will be used (`madvise`). */
  advise(advice: Advice, offset = 0, length?: number): void {
    this.#live("advise");
    const index = advices.indexOf(advice);
    if (index < 0) throw new TypeError(`advice must be one of ${advices.join(", ")}, got ${String(advice)}`);
    const range = checkRange("advise", this.byteLength, offset, length);
    if (range.length === 0) return;
    unwrap(
      fn.pageio_advise(this.#region, this.#delta + range.offset, range.length, index),
      "madvise",
      this.#label,
    );
  }

  /** Writes dirty pages of a shared writable mapping to the file and waits (`msync(MS_SYNC)`). */
  sync(offset = 0, length?: number): void {
    this.#live("sync");
    const range = checkRange("sync", this.byteLength, offset, length);
    if (range.length === 0) return;
    unwrap(fn.pageio_sync(this.#region, this.#delta + range.offset, range.length), "msync", this.#label);
  }

  /**
   * Detaches every view, then unmaps. Heads on it become dead. A second call does nothing. If `bytes.buffer`
   * was transferred away (`transfer()`, `structuredClone`, `postMessage`), the memory stays valid for its new
   * owner: on Bun until that buffer is freed, on Deno for the life of the process (a file's pages
   * replaced by zeros, so the file itself is let go).
   */
  unmap(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#bytes = null;
    if (this.#mappedLength === 0) return; // an empty mapping maps nothing
    dropped.unregister(this);
    droppedViewed.unregister(this);
    const buffer = this.#buffer;
    this.#buffer = null;
    const escaped = buffer !== null && revoke(buffer, false).escaped;
    // Deno: a view that escaped cannot be tracked, so its memory is retired, never unmapped.
    const result = escaped && !native.viewsTracked ? fn.pageio_retire(this.#region) : fn.pageio_unmap(this.#region);
    unwrap(result, "munmap", this.#label);
  }

  /**
   * A descriptor of `[offset, offset + length)` of this mapping for `postMessage` to a Worker of this
   * process, which turns it into a view of the same memory (`Mapping.fromShared`). The memory stays mapped
   * while the descriptor waits to be taken (see `untakenTimeout`) and while the view lives, even after
   * `unmap()` here.
   *
   * @example
   * ```ts
   * import { mapAnonymous, Mapping } from "@pageio/pageio";
   * using memory = mapAnonymous(4096);
   * const shared = memory.share({ length: 16 }); // new Worker(...).postMessage(shared)
   * using view = Mapping.fromShared(shared);      // in the Worker
   * console.log(view.byteLength); // 16
   * ```
   */
  share(options: ShareOptions = {}): SharedMemory {
    checkOptions(options, "share");
    const { offset, length, untakenTimeout } = options; // read once, before the state: a getter may unmap
    this.#live("share");
    const range = checkRange("share", this.byteLength, offset ?? 0, length);
    const id = shareRegion(this.#region, this.#delta + range.offset, range.length, untakenTimeout);
    return descriptor(id, range.length);
  }

  /** The memory a `share()` descriptor names, as a view of the same bytes (`takeShared`). */
  static fromShared(shared: SharedMemory): SharedView {
    return takeShared(shared);
  }

  /** Unmaps, as `unmap()` does: `using` ends the mapping at the end of its block. */
  [Symbol.dispose](): void {
    this.unmap();
  }

  /** @internal */
  [kRetain](): void {
    this.#refs++;
  }

  /** @internal A head let go; the mapping's own reference goes too when a PageReader moves past it. */
  [kRelease](): void {
    if (--this.#refs !== 0) return;
    this.unmap();
    const then = this.#whenClosed;
    this.#whenClosed = null;
    then?.();
  }

  /** @internal A PageReader's window: runs `then` once its last reference went (at once if unmapped). */
  [kWhenClosed](then: () => void): void {
    if (this.#closed) then();
    else this.#whenClosed = then;
  }

  #live(operation: string): void {
    if (this.closed) throw stateError("ERR_CLOSED", `${this.#label} is unmapped`, operation);
    const fault = this.#fault();
    if (fault !== 0) throw faultError(fault, this.#label, operation);
  }

  /** 0, or the errno the SIGBUS guard recorded for the region (its bytes from some page on are zeros). */
  #fault(): number {
    return this.#closed || this.#mappedLength === 0 ? 0 : fn.pageio_region_fault(this.#region);
  }

  /** True once the file was cut short under the mapping and a read past its new end gave zeros (SIGBUS guard). */
  get truncated(): boolean {
    const fault = this.#fault();
    return fault !== 0 && faultError(fault, this.#label, "truncated").code === "ERR_FILE_TRUNCATED";
  }
}

/** A view of a live mapping; Bun's ArrayBuffers stop at 4 GiB (heads still reach every byte by gather I/O). */
function viewOf(region: number, address: number, byteLength: number): ArrayBuffer {
  try {
    return native.view(region, address, byteLength);
  } catch (error) {
    throw new RangeError(`${byteLength} bytes cannot be one ArrayBuffer on ${native.runtime}: map a smaller range`, {
      cause: error,
    });
  }
}

const probe = new Uint8Array(1);

/** The keys of MapFileOptions. */
const MAP_OPTIONS = ["write", "private", "offset", "length", "populate"] as const;

/**
 * Maps a file (a path, a `FileHandle` or an fd number) into memory. By default
 * the file is not written: writes to `bytes` stay in this process
 * (copy-on-write), reads share its page cache. A path-opened file's
 * descriptor is closed at once; on Linux the signal guard keeps one
 * descriptor per mapped file until its last mapping is unmapped.
 *
 * @example
 * ```ts
 * import { mapFile } from "@pageio/pageio";
 * using readme = mapFile("README.md");
 * console.log(String.fromCharCode(readme.bytes[0])); // "#"
 * ```
 */
export function mapFile(file: string | URL | FileHandle | number, options: MapFileOptions = {}): Mapping {
  checkOptions(options, "mapFile", MAP_OPTIONS);
  // Read once, before the descriptor is looked at: a getter that closed a FileHandle (its number then naming
  // the next file opened) ran after, and that other file was mapped.
  const { write, private: isPrivate, offset, length, populate } = options;
  const wanted: MapFileOptions = { write, private: isPrivate, offset, length, populate };
  // Non-blocking: the descriptor only lives to be mapped (O_NONBLOCK means nothing to mmap or a regular
  // file), and keeping the open flag saves the fcntl that would clear it.
  const opened = typeof file === "string" || file instanceof URL
    ? openFile(file, write && !isPrivate ? "r+" : "r", { nonBlocking: true })
    : null;
  try {
    const handle = opened ?? file;
    if (!(handle instanceof FileHandle) && typeof handle !== "number") {
      throw new TypeError(`expected a path, URL, FileHandle or fd, got ${describe(file)}`);
    }
    const fd = fdOf(handle);
    const label = handle instanceof FileHandle && handle.path ? `mapping of '${handle.path}'` : `mapping of fd ${fd}`;
    return mapDescriptor(fd, wanted, label, handle instanceof FileHandle ? handle.path : undefined);
  } finally {
    opened?.close();
  }
}

/**
 * @internal Maps `[offset, offset + length)` of an open regular file. With `source`, the mapping's heads
 * are file spans that a brigade may hand to the kernel.
 */
export function mapDescriptor(
  fd: number,
  options: MapFileOptions,
  label: string,
  path?: string,
  source?: FileHandle,
): Mapping {
  const { size, kind } = stat(fd, path);
  if (kind !== "file") {
    unwrap(fn.pageio_map_file(fd, 0, 1, 0, out), "mmap", path); // the native side names the error
    throw new Error("unreachable: a non-regular file was mapped");
  }
  const { offset, length } = checkRange("mapFile", size, options.offset ?? 0, options.length);
  if (length === 0) {
    // A procfs or sysfs file says 0 bytes and yet has some: mmap refuses those (ENODEV), and an empty mapping
    // would silently miss its bytes. A 1-byte pread tells it from an empty file (as PageReader does).
    if (size === 0 && fn.pageio_pread(fd, probe, 1, 0) > 0) unwrap(-errno.ENODEV, "mmap", path);
    return new Mapping(0, 0, 0, 0, 0, label, undefined, kConstruct);
  }
  const delta = offset % pageSize;
  const flags = (options.write ? mapBits.write : 0) | (options.private ? mapBits.private : 0) |
    (options.populate ? mapBits.populate : 0);
  const region = unwrap(fn.pageio_map_file(fd, offset - delta, length + delta, flags, out), "mmap", path);
  const fileSource = source === undefined ? undefined : { file: source, offset };
  return new Mapping(region, out[0], length + delta, delta, length, label, fileSource, kConstruct);
}

/**
 * Maps `length` bytes of zeroed anonymous memory (private by default; `shared`
 * survives `fork` as shared memory).
 *
 * @example
 * ```ts
 * import { mapAnonymous, pageSize } from "@pageio/pageio";
 * const memory = mapAnonymous(pageSize);
 * console.log(memory.bytes[0]); // 0
 * memory.unmap();
 * ```
 */
export function mapAnonymous(length: number, options: { shared?: boolean } = {}): Mapping {
  checkOptions(options, "mapAnonymous");
  checkInteger("length", length);
  if (length === 0) return new Mapping(0, 0, 0, 0, 0, "anonymous mapping", undefined, kConstruct);
  const region = unwrap(fn.pageio_map_anonymous(length, options.shared ? 1 : 0, out), "mmap");
  return new Mapping(region, out[0], length, 0, length, "anonymous mapping", undefined, kConstruct);
}
