/**
 * Names the facade modules share and user code cannot reach: module-private symbols (mod.ts never
 * re-exports this module), so no caller can move a reference count or take a raw view.
 * @module
 */
import { fn, native } from "../ffi/native.ts";

/** A page head's owner (a pool `Page`, a `Mapping`, a ring slot): see `HeadOwner` in head.ts. */
export const kAlive: unique symbol = Symbol("pageio.alive");
export const kRegion: unique symbol = Symbol("pageio.region");
export const kRegionOffset: unique symbol = Symbol("pageio.regionOffset");
export const kBufferOffset: unique symbol = Symbol("pageio.bufferOffset");
export const kViewBuffer: unique symbol = Symbol("pageio.viewBuffer");
export const kRetain: unique symbol = Symbol("pageio.retain");
export const kRelease: unique symbol = Symbol("pageio.release");
export const kLabel: unique symbol = Symbol("pageio.label");
export const kSource: unique symbol = Symbol("pageio.source");
export const kLendable: unique symbol = Symbol("pageio.lendable");
export const kMarkLent: unique symbol = Symbol("pageio.markLent");
export const kLazy: unique symbol = Symbol("pageio.lazy");
export const kNeed: unique symbol = Symbol("pageio.need");
/** A reader window's hook, run once its last reference went (the reader's and every head's). */
export const kWhenClosed: unique symbol = Symbol("pageio.whenClosed");
export const kMemory: unique symbol = Symbol("pageio.memory");

/** An environment variable (`PAGEIO_*`), or undefined when unset or unreadable (Deno without --allow-env). */
export function readEnv(name: string): string | undefined {
  try {
    return native.runtime === "deno"
      ? Deno.env.get(name)
      : (globalThis as unknown as { process: { env: Record<string, string | undefined> } }).process.env[name];
  } catch {
    return undefined; // the default then
  }
}

/** What pageio's own code passes to constructors that trust their arguments (addresses, regions, indexes). */
export const kConstruct: unique symbol = Symbol("pageio.construct");

/** Throws unless `key` is `kConstruct`: such a constructor called from outside could name any memory. */
export function internalOnly(key: unknown, what: string, use: string): void {
  if (key !== kConstruct) throw new TypeError(`${what} is not constructed directly: use ${use}`);
}

// This thread runs JS: what it maps is let go when it ends (a terminated Worker's heap releases nothing).
fn.pageio_thread_attach();

const callIntrinsic = Function.prototype.call;
const bindIntrinsic = Function.prototype.bind;
const applyIntrinsic = Reflect.apply;

/**
 * Gives `method` an own, fixed `call`, so `method.call(self)` never looks up `Function.prototype.call`: a redefined
 * one returned whatever length or offset it liked, and `writev` read 1 GiB past an array. An own property costs
 * nothing where a bound `call` or `Reflect.apply` cost 2-2.5x on Bun for a getter's call.
 */
export function ownCall<F extends (...args: never[]) => unknown>(method: F): F {
  if (Object.getOwnPropertyDescriptor(method, "call")?.value === callIntrinsic) return method;
  try {
    Object.defineProperty(method, "call", { value: callIntrinsic }); // not writable, not configurable
    return method;
  } catch {
    // A frozen intrinsic (a hardened realm): a stand-in whose `call` is the intrinsic `call` bound to it.
    return { call: applyIntrinsic(bindIntrinsic, callIntrinsic, [method]) } as unknown as F;
  }
}

// The intrinsics revocation stands on, taken at load and called without a lookup user code can redefine: a
// redefined `transfer` that detached nothing left every view live over memory that was then unmapped (a crash on
// Deno) or reused.
const transferIntrinsic = ownCall(
  ArrayBuffer.prototype.transfer as (this: ArrayBuffer, length?: number) => ArrayBuffer,
);
const detachedIntrinsic = ownCall(
  Object.getOwnPropertyDescriptor(ArrayBuffer.prototype, "detached")!.get! as (this: ArrayBuffer) => boolean,
);

const byteLengthIntrinsic = ownCall(
  Object.getOwnPropertyDescriptor(Object.getPrototypeOf(Uint8Array.prototype), "byteLength")!
    .get! as (this: ArrayBufferView) => number,
);

/**
 * Bytes in a typed array by the intrinsic getter (0 when detached), for every length that goes to the native
 * side with the array: a redefined `length` or `byteLength` (on %TypedArray%.prototype) made it read and write
 * past the array (a BYOB read into a readable's `pread`, an encoded path, a socket address).
 */
export function lengthOf(bytes: ArrayBufferView): number {
  return byteLengthIntrinsic.call(bytes);
}

/** Whether pageio's own `buffer` was detached (transferred away, or revoked), by the intrinsic getter. */
export function isDetachedBuffer(buffer: ArrayBuffer): boolean {
  return detachedIntrinsic.call(buffer);
}

/**
 * Revokes a view pageio made: every array on `buffer` reads as empty from now on. Returns false when the
 * buffer was already detached by someone else (`transfer()`, a structuredClone or postMessage transfer
 * list): then its memory lives on in another ArrayBuffer and must never be unmapped or reused under it.
 */
export function revoke(buffer: ArrayBuffer, keep: boolean): { escaped: boolean; buffer: ArrayBuffer | null } {
  if (detachedIntrinsic.call(buffer)) return { escaped: true, buffer: null };
  return { escaped: false, buffer: keep ? transferIntrinsic.call(buffer) : (transferIntrinsic.call(buffer, 0), null) };
}
