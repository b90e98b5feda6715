/**
 * A PageReader's window of its file that is mapped only when a head's bytes are needed in memory: heads that
 * go to a file, pipe or socket by kernel move (copy_file_range, sendfile) never map it at all.
 * @module
 */
import { fn } from "../ffi/native.ts";
import { stateError, unwrap } from "./errors.ts";
import { type FileHandle, stat } from "./file.ts";
import { type FileSource, PageHead } from "./head.ts";
import {
  internalOnly,
  kAlive,
  kBufferOffset,
  kConstruct,
  kLabel,
  kLazy,
  kRegion,
  kRegionOffset,
  kRelease,
  kRetain,
  kSource,
  kViewBuffer,
} from "./internal.ts";
import { mapAnonymous, mapDescriptor, type Mapping } from "./mapping.ts";

/**
 * @internal `[start, start + byteLength)` of an open file (`start` page-aligned). Its heads are file spans; the
 * first head whose bytes are needed in memory maps it: the file itself when `room()` (what the reader may still
 * map) allows, else a private copy read from the file, as a reader past its `maxMappedBytes` does.
 */
export class FileWindow {
  readonly byteLength: number;
  readonly #file: FileHandle;
  readonly #source: FileSource;
  readonly #label: string;
  readonly #room: () => number;
  #mapping: Mapping | null = null;
  /** Bytes of the file this window has mapped (0 unmapped, or a copy). */
  #mappedBytes = 0;
  #refs = 1; // the reader's own, plus one per live head
  #closed = false;

  constructor(file: FileHandle, start: number, length: number, label: string, room: () => number, key?: symbol) {
    internalOnly(key, "FileWindow", "a PageReader");
    this.#file = file;
    this.byteLength = length;
    this.#source = { file, offset: start };
    this.#label = label;
    this.#room = room;
  }

  /** True once its last head and the reader let go of it. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Bytes of the file it keeps mapped now (what counts towards the reader's `maxMappedBytes`). */
  get mappedBytes(): number {
    return this.#closed ? 0 : this.#mappedBytes;
  }

  /** True once its memory exists (mapped or copied). */
  get mapped(): boolean {
    return this.#mapping !== null;
  }

  /** A head on `[offset, offset + length)`, within the window (the reader checks). */
  head(offset: number, length: number): PageHead {
    return new PageHead(this, offset, length, kConstruct);
  }

  /**
   * Maps it now whatever the reader's room (the reader closes its file, after which it could not be mapped).
   * A file cut short meanwhile leaves it unmapped: its heads then fail when their bytes are asked for.
   */
  mapNow(): void {
    if (this.#closed || this.#mapping !== null) return;
    try {
      this.#map(true);
    } catch { /* see above */ }
  }

  /** @internal */
  get [kAlive](): boolean {
    return !this.#closed;
  }

  /** @internal True while nothing is mapped: a head asks for the region only when it needs the memory. */
  get [kLazy](): boolean {
    return this.#mapping === null;
  }

  /** @internal Maps the window if it is not yet. */
  get [kRegion](): number {
    return this.#map(false)[kRegion];
  }

  /** @internal The window starts on a page boundary, in its mapping and in its copy alike. */
  get [kRegionOffset](): number {
    return 0;
  }

  /** @internal */
  get [kBufferOffset](): number {
    return 0;
  }

  /** @internal */
  [kViewBuffer](): ArrayBuffer {
    return this.#map(false)[kViewBuffer]();
  }

  /** @internal */
  get [kLabel](): string {
    return this.#label;
  }

  /** @internal */
  get [kSource](): FileSource {
    return this.#source;
  }

  /** @internal */
  [kRetain](): void {
    this.#refs++;
  }

  /** @internal */
  [kRelease](): void {
    if (--this.#refs > 0) return;
    this.#closed = true;
    const mapping = this.#mapping;
    this.#mapping = null;
    this.#mappedBytes = 0;
    mapping?.unmap();
  }

  #map(force: boolean): Mapping {
    if (this.#mapping !== null) return this.#mapping;
    if (this.#closed) throw stateError("ERR_RELEASED", `${this.#label} is no longer live`, "map");
    if (this.#file.closed) {
      throw stateError("ERR_CLOSED", `the file of this ${this.#label} was closed before it was mapped`, "map");
    }
    const fd = this.#file.fd, start = this.#source.offset, length = this.byteLength;
    if (force || this.#room() >= length) {
      this.#checkSize(fd, start + length);
      const mapping = mapDescriptor(fd, { offset: start, length }, this.#label, this.#file.path);
      mapping.advise("sequential");
      this.#mapping = mapping;
      this.#mappedBytes = length;
      return mapping;
    }
    // Past the reader's room: a copy, read from the file once (the file's pages stay unmapped).
    const copy = mapAnonymous(length);
    try {
      const bytes = copy.bytes;
      for (let done = 0; done < length;) {
        const want = Math.min(length - done, 1 << 30);
        const read = unwrap(fn.pageio_pread(fd, bytes.subarray(done), want, start + done), "pread", this.#file.path);
        if (read === 0) this.#checkSize(fd, Infinity);
        done += read;
      }
    } catch (error) {
      copy.unmap();
      throw error;
    }
    this.#mapping = copy;
    return copy;
  }

  /** The file must still hold `end` bytes (Infinity: a read met its end early). */
  #checkSize(fd: number, end: number): void {
    const { size } = stat(fd, this.#file.path);
    if (size < end) {
      const expected = Number.isFinite(end) ? end : this.#source.offset + this.byteLength;
      throw stateError(
        "ERR_FILE_TRUNCATED",
        `the file behind this ${this.#label} was cut to ${size} bytes before it was mapped (${expected} expected)`,
        "map",
      );
    }
  }
}
