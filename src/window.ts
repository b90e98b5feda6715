/**
 * A PageReader's window of its file that is mapped only when a head's bytes are needed in memory: heads that
 * go to a file, pipe or socket by kernel move (copy_file_range, sendfile) never map it at all.
 * @module
 */
import { fn } from "../ffi/native.ts";
import { type PageIoError, stateError, unwrap } from "./errors.ts";
import { type FileHandle, stat } from "./file.ts";
import { type FileSource, PageHead } from "./head.ts";
import {
  internalOnly,
  kAlive,
  kBufferOffset,
  kConstruct,
  kLabel,
  kLazy,
  kMemory,
  kNeed,
  kRegion,
  kRegionOffset,
  kRelease,
  kRetain,
  kSource,
  kViewBuffer,
  kWhenClosed,
} from "./internal.ts";
import { mapAnonymous, mapDescriptor, type Mapping } from "./mapping.ts";
import { pageSize } from "./system.ts";

/**
 * @internal `[start, start + byteLength)` of an open file (`start` page-aligned, `byteLength` within the
 * reader's `maxMappedBytes`). Its heads are file spans; the first head whose bytes are needed in memory maps
 * it: the file itself when `room()` (what the reader may still map) allows and the file still holds it, else a
 * copy: memory the window's size, read into from the file only where heads need bytes, as they need them (a
 * 256 KiB head of a 32 MiB window costs 256 KiB, not 32 MiB).
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
  /** A copy's spans read from the file, in order and apart; null while it maps the file (or nothing yet). */
  #filled: [number, number][] | null = null;
  /** Where the heads made on it begin and end: what they may still need once the file is closed. */
  #low = Infinity;
  #high = 0;
  /** Why bytes not read before the file was closed cannot be had (it was cut before). */
  #lost: PageIoError | null = null;
  #refs = 1; // the reader's own, plus one per live head
  #closed = false;
  #whenClosed: (() => void) | null = null;

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

  /** True once its memory exists (the file's mapping, or a copy). */
  get mapped(): boolean {
    return this.#mapping !== null;
  }

  /** A head on `[offset, offset + length)`, within the window (the reader checks). */
  head(offset: number, length: number): PageHead {
    this.#low = Math.min(this.#low, offset);
    this.#high = Math.max(this.#high, offset + length);
    return new PageHead(this, offset, length, kConstruct);
  }

  /**
   * Brings in now what its heads may still need, as their first use would (the reader closes its file, after
   * which nothing more could be read). What the file no longer holds fails its heads' uses with the error met
   * here (ERR_FILE_TRUNCATED for a file cut short), as it would have before the close.
   */
  readNow(): void {
    if (this.#closed || this.#low >= this.#high) return;
    try {
      this.#need(this.#low, this.#high - this.#low);
    } catch (error) {
      this.#lost = error as PageIoError;
    }
  }

  /** @internal */
  get [kAlive](): boolean {
    return !this.#closed;
  }

  /** @internal True while heads must ask for their bytes (`kNeed`): nothing mapped yet, or a copy. */
  get [kLazy](): boolean {
    return this.#mappedBytes === 0;
  }

  /** @internal Its region if mapped or copied already, else 0 (nothing is mapped for this). */
  get [kMemory](): number {
    return this.#closed ? 0 : this.#mapping?.[kRegion] ?? 0;
  }

  /** @internal The whole window in memory. */
  get [kRegion](): number {
    return this.#need(0, this.byteLength)[kRegion];
  }

  /** @internal Its region, once `[offset, offset + length)` holds the file's bytes. */
  [kNeed](offset: number, length: number): number {
    return this.#need(offset, length)[kRegion];
  }

  /** @internal The window starts on a page boundary, in its mapping and in its copy alike. */
  get [kRegionOffset](): number {
    return 0;
  }

  /** @internal */
  get [kBufferOffset](): number {
    return 0;
  }

  /** @internal Heads ask for their bytes first (`kNeed`): this makes the memory, it reads nothing in. */
  [kViewBuffer](): ArrayBuffer {
    return this.#need(0, 0)[kViewBuffer]();
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
    this.#whenClosed?.();
  }

  /** @internal Runs `then` once the window has closed (at once if it has). */
  [kWhenClosed](then: () => void): void {
    if (this.#closed) then();
    else this.#whenClosed = then;
  }

  /** Its memory, with `[offset, offset + length)` holding the file's bytes. */
  #need(offset: number, length: number): Mapping {
    const mapping = this.#mapping;
    if (mapping !== null && (this.#filled === null || this.#holds(offset, offset + length))) return mapping;
    if (this.#closed) throw stateError("ERR_RELEASED", `${this.#label} is no longer live`, "map");
    if (this.#file.closed) {
      throw this.#lost ??
        stateError("ERR_CLOSED", `the file of this ${this.#label} was closed before it was read`, "map");
    }
    const fd = this.#file.fd, start = this.#source.offset, size = this.byteLength;
    if (mapping === null) {
      if (this.#room() >= size && stat(fd, this.#file.path).size >= start + size) {
        const mapped = mapDescriptor(fd, { offset: start, length: size }, this.#label, this.#file.path);
        mapped.advise("sequential");
        this.#mapping = mapped;
        this.#mappedBytes = size;
        return mapped;
      }
      // Past the reader's room (or the file cut within it): memory no page of which is touched until read into.
      this.#mapping = mapAnonymous(size);
      this.#filled = [];
    }
    this.#fill(fd, offset, offset + length);
    return this.#mapping!;
  }

  /** Whether a copy holds the file's bytes over `[from, to)` (its spans are apart: one must hold it all). */
  #holds(from: number, to: number): boolean {
    if (from >= to) return true;
    for (const [s, e] of this.#filled!) if (s <= from && to <= e) return true;
    return false;
  }

  /** Reads into a copy the pages over `[from, to)` it lacks; ERR_FILE_TRUNCATED where the file ends before. */
  #fill(fd: number, from: number, to: number): void {
    let at = from - (from % pageSize);
    const end = Math.min(this.byteLength, Math.ceil(to / pageSize) * pageSize);
    const gaps: [number, number][] = [];
    for (const [s, e] of this.#filled!) {
      if (e <= at) continue;
      if (s >= end) break;
      if (s > at) gaps.push([at, s]);
      at = e;
    }
    if (at < end) gaps.push([at, end]);
    const region = this.#mapping![kRegion], start = this.#source.offset;
    for (const [s, e] of gaps) {
      let done = 0;
      try {
        while (s + done < e) {
          const want = Math.min(e - s - done, 1 << 30);
          // By region, not through a view: a head's buffer may have been transferred away meanwhile.
          const read = unwrap(
            fn.pageio_pread_region(fd, region, s + done, want, start + s + done),
            "pread",
            this.#file.path,
          );
          if (read === 0) throw this.#truncated(fd, start + e);
          done += read;
        }
      } finally {
        if (done > 0) this.#record(s, s + done); // what was read stays good, whatever comes after
      }
    }
  }

  /** Adds `[from, to)` to a copy's spans read, joining those it touches. */
  #record(from: number, to: number): void {
    const spans: [number, number][] = [];
    let placed = false;
    for (const [s, e] of this.#filled!) {
      if (e < from) spans.push([s, e]);
      else if (to < s) {
        if (!placed) spans.push([from, to]);
        placed = true;
        spans.push([s, e]);
      } else {
        from = Math.min(from, s);
        to = Math.max(to, e);
      }
    }
    if (!placed) spans.push([from, to]);
    this.#filled = spans;
  }

  #truncated(fd: number, expected: number): PageIoError {
    const { size } = stat(fd, this.#file.path);
    return stateError(
      "ERR_FILE_TRUNCATED",
      `the file behind this ${this.#label} was cut to ${size} bytes before its bytes were read (${expected} expected)`,
      "read",
    );
  }
}
