/**
 * What each runtime binding (`deno.ts`, `bun.ts`) provides: the symbols as
 * functions, plus the two things only the runtime can do with memory.
 * @module
 */
import type { AsyncFunctions, NativeFunctions } from "./symbols.ts";

export interface Binding {
  readonly runtime: "deno" | "bun";
  readonly functions: NativeFunctions;
  /** The symbols that may block, as Promises that never hold up the JS thread. */
  readonly async: AsyncFunctions;
  /** An ArrayBuffer that *is* `byteLength` bytes of native memory at `address`. */
  view(address: number, byteLength: number): ArrayBuffer;
  /** The address of a non-empty, attached typed array's first byte. */
  addressOf(bytes: Uint8Array): number;
  /**
   * Below this many bytes, copying a plain Uint8Array into the staging buffer
   * is cheaper than asking the runtime for its address (Deno's
   * `UnsafePointer.of` costs ~0.5 µs, Bun's `ptr` ~15 ns).
   */
  readonly stagingLimit: number;
  /**
   * Throws unless the runtime's own permissions let this program open `path` for reading and/or writing (Deno's
   * `--allow-read`/`--allow-write` scopes; Bun has none). FFI itself would open anything.
   */
  checkPath(path: string, read: boolean, write: boolean): void;
  close(): void;
}
