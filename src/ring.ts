/**
 * Shared rings: seed 000's "rings of page-aligned buffers" between two
 * processes. The producer fills a slot where it lies in shared memory and
 * publishes it; the consumer gets a `PageHead` on that same memory and
 * releases it to give the slot back. Nothing is copied on either side.
 * @module
 */
import { constants } from "node:os";
import process from "node:process";
import { abi, errno, fn, native } from "../ffi/native.ts";
import { type AsyncOptions, type Plan, runAsync, runSync } from "./drive.ts";
import {
  checkAsyncOptions,
  checkInteger,
  checkOptions,
  faultError,
  PageIoError,
  stateError,
  unwrap,
} from "./errors.ts";
import { FileHandle, openFile, owned, stat } from "./file.ts";
import { type HeadOwner, PageHead } from "./head.ts";
import {
  internalOnly,
  kAlive,
  kBufferOffset,
  kConstruct,
  kLabel,
  kRegion,
  kRegionOffset,
  kRelease,
  kRetain,
  kViewBuffer,
  revoke,
} from "./internal.ts";
import { pageSize } from "./system.ts";

// What the ring's slots and heads call on it: symbols of this module, so no caller can view a slot that is not
// theirs (a header view outlived close() and faulted) or publish and give back slots out of turn.
const kSlotPlace: unique symbol = Symbol("pageio.ringSlotPlace");
const kRingRegion: unique symbol = Symbol("pageio.ringRegion");
const kOpen: unique symbol = Symbol("pageio.ringOpen");
const kBuffer: unique symbol = Symbol("pageio.ringBuffer");
const kRevoke: unique symbol = Symbol("pageio.ringRevoke");
const kPublish: unique symbol = Symbol("pageio.ringPublish");
const kAbandon: unique symbol = Symbol("pageio.ringAbandon");
const kGiveBack: unique symbol = Symbol("pageio.ringGiveBack");

/** Which side of a ring this process is: one producer and one consumer per ring. */
export type RingRole = "producer" | "consumer";
const roles: readonly RingRole[] = abi.enums.RingRole.values; // the index is the native role

/** Options of `SharedRing.create`. */
export interface SharedRingOptions {
  /** Slots in the ring (default 8, at least 2: the producer fills one while the consumer holds another). */
  slots?: number;
  /** Bytes per slot: a multiple of the OS page size (default 64 KiB). */
  slotSize?: number;
  /** Create the ring as a new file here (e.g. under `/dev/shm`; `EEXIST` if taken). Default: an anonymous memfd. */
  path?: string | URL;
  /** This process's side (default `"producer"`). */
  role?: RingRole;
}

/** Options of the calls that wait. */
export interface RingWaitOptions {
  /** Milliseconds to wait before `ETIMEDOUT` (default: no limit; 0: do not wait). */
  timeout?: number;
}

const FOREVER = 0xFFFF_FFFF; // zig/src/ring.zig forever
const SLOT_SHIFT = 2 ** 32; // receive returns slot * 2^32 + length
const EPROTO = constants.errno.EPROTO;
const END = -1; // #check: receive's ENODATA, the producer closed and all was received
const geometry = new Float64Array(3);

/**
 * Where a slot's bytes are: in the ring's own mapping, or (once a view of the slot was transferred away) in a
 * mapping of the slot's part of the file alone, the old range having been cut loose from the file for that view.
 */
interface Place {
  readonly region: number;
  /** The slot's first byte: its offset in `region`, and its address. */
  readonly offset: number;
  readonly address: number;
}

/** A mapping of the ring's memory: the ring's own, or a slot's (see `Place`). */
interface Memory {
  readonly region: number;
  /** A view of it was transferred away: on Deno it must then stay mapped for good (retired). */
  escaped: boolean;
}

/** What closes a dropped ring, holding nothing that keeps the ring itself alive. */
interface Backstop {
  readonly region: number;
  readonly file: FileHandle;
  readonly role: number;
  /** The ring's own array of slot buffers: the only ones over its memory that are not detached. */
  readonly buffers: (ArrayBuffer | null)[];
  /** Each slot's place (the ring's mapping until a view of it escaped), and every mapping to let go at close. */
  readonly places: Place[];
  readonly memories: Memory[];
  readonly slotSize: number;
}
// Backstop only: a ring dropped without close() is closed as close() would (the peer sees it go, views of its
// slots read as empty) once the ring is unreachable. Heads and slots hold the ring, so none is live then.
const dropped = new FinalizationRegistry<Backstop>((backstop) => {
  fn.pageio_ring_close(backstop.region, backstop.role);
  letGo(backstop);
  backstop.file.close();
});
const mapped = new Float64Array(1);

/**
 * Revokes every slot view and lets go of the ring's mappings; returns the first failure (0 for none). A slot view
 * that was transferred away is cut loose from the file first (the peer may still write it), keeping what it saw:
 * on Bun it holds its mapping itself; on Deno that mapping stays for good.
 */
function letGo(backstop: Backstop): number {
  const { buffers, places, memories, slotSize } = backstop;
  for (let index = 0; index < buffers.length; index++) {
    const buffer = buffers[index];
    buffers[index] = null;
    if (buffer === null || !revoke(buffer, false).escaped) continue;
    const { region, offset } = places[index];
    fn.pageio_privatize(region, offset, slotSize); // best effort: what it cannot cut stays the file's
    memories.find((memory) => memory.region === region)!.escaped = true;
  }
  let failure = 0;
  for (const { region, escaped } of memories) {
    const result = escaped && !native.viewsTracked ? fn.pageio_retire(region) : fn.pageio_unmap(region);
    if (result < 0 && failure === 0) failure = result;
  }
  memories.length = 0;
  return failure;
}

/**
 * One end of a single-producer/single-consumer ring of pages in shared
 * memory. Create it in one process, pass `path` to the other (it may run the
 * other runtime), and open it there. Waiting sleeps in the kernel (futex);
 * a peer that closes or dies makes the other side's waits fail with `EPIPE`
 * instead of hanging.
 *
 * @example
 * ```ts
 * import { SharedRing } from "@pageio/pageio";
 * using producer = SharedRing.create({ slots: 2 });
 * using consumer = SharedRing.open(producer.path);   // normally in another process
 * const slot = producer.reserve();
 * slot.bytes.set([104, 105]);
 * slot.publish(2);
 * const head = consumer.receive()!;
 * console.log(head.bytes);                           // Uint8Array(2) [ 104, 105 ]
 * head.release();                                    // the slot goes back to the producer
 * ```
 */
export class SharedRing {
  /** What the other process passes to `SharedRing.open`. */
  readonly path: string;
  /** This process's side. */
  readonly role: RingRole;
  /** Slots in the ring. */
  readonly slots: number;
  /** Bytes per slot. */
  readonly slotSize: number;
  #file: FileHandle;
  #region = 0;
  #address = 0;
  #dataOffset = 0;
  /** Where each slot's bytes are (see `Place`). */
  #places: Place[] = [];
  /** One revocable ArrayBuffer per slot, made when first viewed. */
  #buffers: (ArrayBuffer | null)[];
  #viewed: Uint8Array;
  #state: "open" | "closing" | "closed" = "open";
  #pending = false;
  #reserved: RingSlot | null = null;
  /** Received slots not yet given back, oldest first. */
  #outstanding: ReceivedSlot[] = [];
  #backstop: Backstop;

  /** Creates a ring in new shared memory; this process takes `options.role` (the producer by default). */
  static create(options: SharedRingOptions = {}): SharedRing {
    checkOptions(options, "SharedRing.create");
    const slots = checkInteger("slots", options.slots ?? 8, 2, 65536);
    const slotSize = checkInteger("slotSize", options.slotSize ?? 65536, pageSize, 2 ** 30);
    if (slotSize % pageSize !== 0) {
      throw new RangeError(`slotSize ${slotSize} is not a multiple of the OS page size ${pageSize}`);
    }
    const role = roleOf(options.role ?? "producer");
    const bytes = unwrap(fn.pageio_ring_bytes(slots, slotSize), "ring");
    let file: FileHandle;
    if (options.path === undefined) {
      file = owned(new FileHandle(unwrap(fn.pageio_memory_file(bytes), "memfd_create")));
    } else {
      file = openFile(options.path, "wx+");
      try {
        unwrap(fn.pageio_truncate(file.fd, bytes), "ftruncate", file.path);
      } catch (error) {
        file.close();
        throw error;
      }
    }
    const path = file.path ?? `/proc/${process.pid}/fd/${file.fd}`;
    return new SharedRing(file, path, role, { slots, slotSize });
  }

  /** Opens a ring another process created; this process takes `options.role` (the consumer by default). */
  static open(path: string | URL, options: { role?: RingRole } = {}): SharedRing {
    checkOptions(options, "SharedRing.open");
    const role = roleOf(options.role ?? "consumer");
    const file = openFile(path, "r+");
    return new SharedRing(file, file.path!, role);
  }

  private constructor(file: FileHandle, path: string, role: RingRole, create?: { slots: number; slotSize: number }) {
    this.#file = file;
    this.path = path;
    this.role = role;
    try {
      const { size } = stat(file.fd, path);
      // Not a regular file: the native side names the error (ENODEV, EISDIR), as mapFile does.
      this.#region = unwrap(fn.pageio_map_file(file.fd, 0, size, 1, mapped), "mmap", path);
      this.#address = mapped[0];
      if (create) unwrap(fn.pageio_ring_init(this.#region, create.slots, create.slotSize), "ring init", path);
      this.#check(fn.pageio_ring_attach(this.#region, roles.indexOf(role), geometry), "ring attach");
      // Checked natively against the mapping already; views are made from these, so checked here too.
      const [slots, slotSize, dataOffset] = geometry;
      if (!(slots >= 1 && slotSize >= 1 && dataOffset >= 0 && dataOffset + slots * slotSize <= size)) {
        throw protocolError(path, "ring attach", `slots ${slots} × ${slotSize} B from ${dataOffset} overrun ${size} B`);
      }
    } catch (error) {
      if (this.#region !== 0) fn.pageio_unmap(this.#region);
      file.close();
      throw error;
    }
    [this.slots, this.slotSize, this.#dataOffset] = geometry;
    this.#buffers = new Array(this.slots).fill(null);
    this.#viewed = new Uint8Array(this.slots);
    for (let index = 0; index < this.slots; index++) {
      const offset = this.#dataOffset + index * this.slotSize;
      this.#places.push({ region: this.#region, offset, address: this.#address + offset });
    }
    this.#backstop = {
      region: this.#region,
      file,
      role: roles.indexOf(role),
      buffers: this.#buffers,
      places: this.#places,
      memories: [{ region: this.#region, escaped: false }],
      slotSize: this.slotSize,
    };
    dropped.register(this, this.#backstop, this.#backstop);
  }

  /**
   * Producer: the slot to fill next, waiting while all are in use. Returns the same slot again until it is
   * published. `EPIPE` once the consumer closed or died; `ETIMEDOUT` after `options.timeout` ms.
   */
  reserve(options?: RingWaitOptions): RingSlot {
    checkOptions(options, "reserve");
    const timeout = timeoutOf(options); // checked also when the slot is at hand: a bad one is never ignored
    this.#enter("producer", "reserve");
    if (this.#reserved !== null) return this.#reserved;
    return this.#reserve(runSync(ringPlan("pageio_ring_reserve", this.#region, timeout)));
  }

  /**
   * `reserve()` as a Promise: a free slot is taken at once; otherwise a short spin, then the futex wait off
   * the JS thread. An abort rejects with `ABORT_ERR` within one wait slice (100 ms).
   */
  async reserveAsync(options?: RingWaitOptions & AsyncOptions): Promise<RingSlot> {
    const signal = checkAsyncOptions(options, "reserveAsync");
    const timeout = timeoutOf(options); // as in reserve
    this.#enter("producer", "reserveAsync");
    if (this.#reserved !== null) return this.#reserved;
    const plan = ringPlan("pageio_ring_reserve", this.#region, timeout);
    return this.#reserve(await this.#offThread(runAsync(null, -1, plan, signal)));
  }

  /**
   * Consumer: a head on the next published slot (its bytes are the producer's, not a copy), waiting while
   * none is; null once the producer closed and everything was received. Release the head to give the slot
   * back. `EPIPE` if the producer died; `ETIMEDOUT` after `options.timeout` ms.
   */
  receive(options?: RingWaitOptions): PageHead | null {
    checkOptions(options, "receive");
    const timeout = timeoutOf(options); // before the state: a getter that closes the ring must meet ERR_CLOSED
    this.#enter("consumer", "receive");
    return this.#receive(runSync(ringPlan("pageio_ring_receive", this.#region, timeout)));
  }

  /**
   * `receive()` as a Promise: a published slot is taken at once; otherwise a short spin, then the futex wait
   * off the JS thread. An abort rejects with `ABORT_ERR` within one wait slice (100 ms).
   */
  async receiveAsync(options?: RingWaitOptions & AsyncOptions): Promise<PageHead | null> {
    const signal = checkAsyncOptions(options, "receiveAsync");
    const timeout = timeoutOf(options); // as in receive
    this.#enter("consumer", "receiveAsync");
    const plan = ringPlan("pageio_ring_receive", this.#region, timeout);
    return this.#receive(await this.#offThread(runAsync(null, -1, plan, signal)));
  }

  /** Consumer: every head until the producer closes; release each. */
  async *[Symbol.asyncIterator](): AsyncIterableIterator<PageHead> {
    for (let head = await this.receiveAsync(); head !== null; head = await this.receiveAsync()) yield head;
  }

  /** True once `close()` has run. */
  get closed(): boolean {
    return this.#state !== "open";
  }

  /**
   * Closes this side: the peer sees the end (the consumer receives null once it has drained the ring; the
   * producer gets `EPIPE`). A wait in progress ends with `ECANCELED`. Heads and slots of this ring become
   * dead, their views empty. A second call does nothing.
   */
  close(): void {
    if (this.#state !== "open") return;
    this.#state = "closing";
    fn.pageio_ring_close(this.#region, roles.indexOf(this.role)); // wakes our own pending wait too
    if (!this.#pending) this.#unmap();
  }

  /** Closes, as `close()` does, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  #unmap(): void {
    this.#state = "closed";
    dropped.unregister(this.#backstop);
    this.#reserved = null;
    this.#outstanding.length = 0;
    const result = letGo(this.#backstop);
    this.#file.close();
    unwrap(result, "munmap", this.path);
  }

  #enter(role: RingRole, operation: string): void {
    if (this.#state !== "open") throw stateError("ERR_CLOSED", "shared ring is closed", operation);
    if (role !== this.role) throw new TypeError(`${operation}() is for the ${role}; this end is the ${this.role}`);
    if (this.#pending) throw stateError("ERR_BUSY", `a ${operation} is already waiting on this ring`, operation);
  }

  /** Keeps the mapping alive while a native wait runs on another thread: close() unmaps once it returns. */
  async #offThread(wait: Promise<number>): Promise<number> {
    this.#pending = true;
    try {
      return await wait;
    } finally {
      this.#pending = false;
      if (this.#state === "closing") this.#unmap();
    }
  }

  #reserve(result: number): RingSlot {
    const index = this.#check(result, "ring reserve", "the consumer closed the ring or its process died");
    if (!(index < this.slots)) throw protocolError(this.path, "ring reserve", `slot ${index} of ${this.slots}`);
    return this.#reserved = new RingSlot(this, index, kConstruct);
  }

  #receive(result: number): PageHead | null {
    const packed = this.#check(result, "ring receive", "the producer's process died");
    if (packed === END) return null;
    const index = Math.floor(packed / SLOT_SHIFT);
    const length = packed - index * SLOT_SHIFT;
    if (!(index < this.slots && length <= this.slotSize)) {
      throw protocolError(
        this.path,
        "ring receive",
        `${length} B in slot ${index} of ${this.slots} × ${this.slotSize} B`,
      );
    }
    const slot = new ReceivedSlot(this, index);
    this.#outstanding.push(slot);
    return new PageHead(slot, 0, length, kConstruct);
  }

  /**
   * A ring call's result, or its error: the guard's cause first (a truncated file, a full filesystem: the
   * ring's memory is no longer the file's), then ENODATA as the end (END), EPIPE naming the peer that went,
   * EPROTO as a peer that lies.
   */
  #check(result: number, syscall: string, pipeMessage = "the other side closed the ring or its process died"): number {
    if (result >= 0) return result;
    const fault = fn.pageio_region_fault(this.#region);
    if (fault > 0) throw faultError(fault, "shared ring", syscall, this.path);
    const code = -result;
    if (code === errno.ENODATA && syscall === "ring receive") return END;
    if (code === errno.ENODATA) throw faultError(-result, "shared ring", syscall, this.path); // shorter than its header
    if (code === errno.EPIPE) {
      throw new PageIoError("EPIPE", `EPIPE: ${pipeMessage}, ${syscall} '${this.path}'`, {
        errno: -result,
        syscall,
        path: this.path,
      });
    }
    if (code === errno.EPROTO) {
      throw new PageIoError(
        "EPROTO",
        `EPROTO: '${this.path}' does not hold a pageio shared ring, or its peer ` +
          `rewrote the header, ${syscall}`,
        { errno: -result, syscall, path: this.path },
      );
    }
    return unwrap(result, syscall, this.path);
  }

  /** @internal The ring's own mapping. */
  get [kRingRegion](): number {
    return this.#region;
  }

  /** @internal Where slot `index`'s bytes are now: its region, its offset there and its address. */
  [kSlotPlace](index: number): Place {
    return this.#places[index];
  }

  /** @internal */
  get [kOpen](): boolean {
    return this.#state === "open";
  }

  /** @internal Slot `index`'s revocable buffer, made on first use. */
  [kBuffer](index: number): ArrayBuffer {
    // Reflection finds symbol-keyed methods: an index off the slots (-1: the header) would be a view close() misses.
    if (!Number.isInteger(index) || index < 0 || index >= this.slots) {
      throw new RangeError(`slot index ${index} is not one of the ring's ${this.slots} slots`);
    }
    this.#viewed[index] = 1;
    const { region, address } = this.#places[index];
    return this.#buffers[index] ??= native.view(region, address, this.slotSize);
  }

  /** @internal Every view of slot `index` handed out so far reads as empty from now on. */
  [kRevoke](index: number): void {
    if (this.#viewed[index] === 0) return;
    this.#viewed[index] = 0;
    // Same memory, new ArrayBuffer: old views empty.
    const revoked = revoke(this.#buffers[index]!, true);
    this.#buffers[index] = revoked.buffer;
    if (revoked.escaped) this.#cutLoose(index);
  }

  /**
   * A view of slot `index` was transferred away, and the slot is about to be written again (the peer's or this
   * side's next message in it): the slot moves to a mapping of its part of the file alone, and its old range
   * becomes a private copy of what it held, so the view's new owner keeps the message it was given and never
   * sees a later one. (Before: the view went on seeing every message written into the slot.) The old memory
   * stays until close, then goes as a transferred view's does: on Bun when the view is let go, on Deno never.
   */
  #cutLoose(index: number): void {
    const old = this.#places[index];
    const offset = this.#dataOffset + index * this.slotSize;
    // The new place first: failing there, nothing has changed yet.
    const region = unwrap(fn.pageio_map_file(this.#file.fd, offset, this.slotSize, 1, mapped), "mmap", this.path);
    const cut = fn.pageio_privatize(old.region, old.offset, this.slotSize);
    if (cut < 0) {
      fn.pageio_unmap(region);
      unwrap(cut, "mremap", this.path);
    }
    const memories = this.#backstop.memories;
    memories.find((memory) => memory.region === old.region)!.escaped = true;
    memories.push({ region, escaped: false });
    this.#places[index] = { region, offset: 0, address: mapped[0] };
  }

  /** @internal The producer publishes its reserved slot. */
  [kPublish](slot: RingSlot, length: number): void {
    this[kRevoke](slot.index);
    this.#reserved = null;
    this.#check(fn.pageio_ring_publish(this.#region, slot.index, length), "ring publish");
  }

  /** @internal The producer let go of its reserved slot without publishing it. */
  [kAbandon](slot: RingSlot): void {
    if (this.#reserved !== slot) return;
    this.#reserved = null;
    if (this.#state === "open") this[kRevoke](slot.index);
  }

  /** @internal The consumer let go of a slot: the oldest run of released slots goes back to the producer. */
  [kGiveBack](slot: ReceivedSlot): void {
    if (this.#state !== "open") return; // closed: every view is already dead, nothing goes back
    this[kRevoke](slot.index);
    let count = 0;
    while (count < this.#outstanding.length && this.#outstanding[count].released) count++;
    if (count === 0) return; // an older slot is still held: the ring gives back in order
    this.#outstanding.splice(0, count);
    this.#check(fn.pageio_ring_release(this.#region, count), "ring release");
  }
}

/**
 * The producer's slot from `SharedRing.reserve()`: fill `bytes`, then
 * `publish()`. After publishing, the slot is the consumer's and `bytes` is
 * empty, so the producer can never scribble on a page the consumer holds.
 */
export class RingSlot {
  #ring: SharedRing | null;
  #bytes: Uint8Array<ArrayBuffer> | null = null;
  /** The slot's index in the ring. */
  readonly index: number;

  /** @internal Slots come from `SharedRing.reserve()`. */
  constructor(ring: SharedRing, index: number, key?: symbol) {
    internalOnly(key, "RingSlot", "ring.reserve()");
    this.#ring = ring;
    this.index = index;
  }

  #live(operation: string): SharedRing {
    const ring = this.#ring;
    if (ring === null) throw stateError("ERR_RELEASED", "ring slot was already published", operation);
    if (!ring[kOpen]) throw stateError("ERR_CLOSED", "shared ring is closed", operation);
    return ring;
  }

  /** The whole slot, writable, in shared memory (no copy). */
  get bytes(): Uint8Array<ArrayBuffer> {
    return this.#bytes ??= new Uint8Array(this.#live("bytes")[kBuffer](this.index));
  }

  /** Bytes the slot holds. */
  get byteLength(): number {
    return this.#ring?.slotSize ?? 0;
  }

  /** Hands the slot's first `length` bytes to the consumer. */
  publish(length: number = this.byteLength): void {
    const ring = this.#live("publish");
    checkInteger("length", length, 0, ring.slotSize);
    this.#ring = null;
    this.#bytes = null;
    ring[kPublish](this, length);
  }

  /**
   * For `using`: an unpublished slot is let go unpublished (its views read as empty; the next `reserve()`
   * hands out the same slot again); a published one is left alone.
   */
  [Symbol.dispose](): void {
    const ring = this.#ring;
    if (ring === null) return;
    this.#ring = null;
    this.#bytes = null;
    ring[kAbandon](this);
  }
}

/** A received slot, owner of the consumer's heads on it. */
class ReceivedSlot implements HeadOwner {
  #refs = 0;
  released = false;
  readonly [kLabel] = "ring slot";
  readonly [kBufferOffset] = 0;
  readonly [kRegion]: number;
  readonly [kRegionOffset]: number;
  readonly byteLength: number;

  constructor(readonly ring: SharedRing, readonly index: number) {
    const { region, offset } = ring[kSlotPlace](index);
    this[kRegion] = region;
    this[kRegionOffset] = offset;
    this.byteLength = ring.slotSize;
  }

  get [kAlive](): boolean {
    return !this.released && this.ring[kOpen];
  }

  [kViewBuffer](): ArrayBuffer {
    return this.ring[kBuffer](this.index);
  }

  [kRetain](): void {
    this.#refs++;
  }

  [kRelease](): void {
    if (--this.#refs > 0) return;
    this.released = true;
    this.ring[kGiveBack](this);
  }
}

function roleOf(role: unknown): RingRole {
  if (!roles.includes(role as RingRole)) throw new TypeError(`role must be "producer" or "consumer", got ${role}`);
  return role as RingRole;
}

/** How long a ring wait spins on the JS thread before it takes a thread: about one hand-off's cost. */
const SPIN_MS = 0.02;
/** Limit: one native wait off the JS thread, so an abort is seen and a worker freed at least this often. */
const SLICE_MS = 100;

/**
 * The planner of a ring wait (reserve or receive): tries at once, spins briefly, then waits in the native
 * call in slices until `timeout` (ms, FOREVER for none) runs out. Returns the native result.
 */
function* ringPlan(
  name: "pageio_ring_reserve" | "pageio_ring_receive",
  region: number,
  timeout: number,
): Plan<number> {
  const spinUntil = performance.now() + SPIN_MS;
  let result: number;
  const now = () => fn[name](region, 0);
  do result = (yield { name, args: [region, 0], run: now }) as number; while (
    result === -errno.ETIMEDOUT && timeout !== 0 && performance.now() < spinUntil
  );
  const deadline = timeout === FOREVER ? Infinity : performance.now() + timeout;
  while (result === -errno.ETIMEDOUT && timeout !== 0) {
    const left = deadline - performance.now();
    if (left <= 0) break;
    const slice = Math.ceil(Math.min(left, SLICE_MS));
    result = (yield { wait: { name, args: [region, slice], run: () => fn[name](region, slice) } }) as number;
  }
  return result;
}

function timeoutOf(options: RingWaitOptions | undefined): number {
  const timeout = options?.timeout;
  if (timeout === undefined || timeout === Infinity) return FOREVER;
  return checkInteger("timeout", timeout, 0, FOREVER - 1);
}

function protocolError(path: string, syscall: string, detail: string): PageIoError {
  return new PageIoError("EPROTO", `EPROTO: the shared ring's peer gave ${detail}, ${syscall} '${path}'`, {
    errno: EPROTO,
    syscall,
    path,
  });
}
