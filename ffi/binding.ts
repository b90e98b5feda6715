/**
 * What each runtime binding (`deno.ts`, `bun.ts`) provides: the symbols as
 * functions, plus the two things only the runtime can do with memory.
 * @module
 */
import type { AsyncFunctions, CallbackName, NativeCallback, NativeFunctions } from "./symbols.ts";

export interface Binding {
  readonly runtime: "deno" | "bun";
  readonly functions: NativeFunctions;
  /** The symbols that may block, as Promises that never hold up the JS thread. */
  readonly async: AsyncFunctions;
  /**
   * An ArrayBuffer that *is* `byteLength` bytes of native memory at `address`, inside live region `region`.
   * Where the runtime reports the release of a backing store (Bun's deallocator), the view holds a reference
   * on the region until then, wherever the buffer is transferred; elsewhere (Deno) the region is marked
   * viewed, and is retired instead of unmapped if its owner cannot revoke every view.
   */
  view(region: number, address: number, byteLength: number): ArrayBuffer;
  /** Whether views hold their region until the runtime frees them (Bun), so no transfer can outlive it. */
  readonly viewsTracked: boolean;
  /** The address of a non-empty, attached typed array's first byte. */
  addressOf(bytes: Uint8Array): number;
  /**
   * Below this many bytes, copying a plain Uint8Array into the staging buffer
   * (one iovec for a whole run) costs less than the kernel's per-iovec work
   * on its own address. Addresses come from an FFI call's pointer argument
   * (`pageio_address`: 16 ns on Deno, 3 ns on Bun); on Deno the limit stays
   * above 64 bytes, where V8 keeps an array's bytes inside its moving heap.
   */
  readonly stagingLimit: number;
  /**
   * A native callback of a type in the `callbacks` table, calling `fn` on the JS thread (when the library calls
   * it from another thread, the runtime queues the call onto the event loop). Ref'd: call `unref()` while the
   * library has nothing to call it for, so the process can exit.
   */
  callback(name: CallbackName, fn: () => void): NativeCallback;
  /**
   * Whether the runtime's own permissions grant this (Deno's `--allow-net`, `--allow-read`, `--allow-write`
   * scopes; FFI could bypass them, pageio does not). Always true on Bun.
   */
  permitted(descriptor: PermissionQuery): boolean;
  close(): void;
}

/** A view refused natively: its region is not open, or the span is not wholly inside it (no view is made). */
export function viewRefused(region: number, address: number, byteLength: number, errno: number): RangeError {
  return new RangeError(
    `cannot view ${byteLength} bytes at 0x${address.toString(16)} of region ${region}: ` +
      `the region is not open or the span is not inside it (errno ${errno})`,
  );
}

/** A permission as Deno names it: network access to `host` ("host:port"; none: to all) or file access to `path`. */
export type PermissionQuery = { name: "net"; host?: string } | { name: "read" | "write"; path: string };
