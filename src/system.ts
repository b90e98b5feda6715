/** Facts about the running system and runtime. @module */
import { fn, native } from "../ffi/native.ts";

/**
 * The OS page size in bytes, read at run time (4096 on x86-64 Linux, 16384 on Apple silicon).
 *
 * @example
 * ```ts
 * import { pageSize } from "@pageio/pageio";
 * console.log(pageSize % 4096); // 0
 * ```
 */
export const pageSize: number = fn.pageio_page_size();

/**
 * Which runtime binding was loaded.
 *
 * @example
 * ```ts
 * import { runtime } from "@pageio/pageio";
 * console.log(runtime === "deno" || runtime === "bun"); // true
 * ```
 */
export const runtime: "deno" | "bun" = native.runtime;

/** @internal Live native regions (mappings and pool slabs), to prove nothing leaks. */
export function liveRegionCount(): number {
  return fn.pageio_region_count();
}

/** @internal SIGBUS faults the guard absorbed (zero pages mapped) in this process. */
export function guardFaultCount(): number {
  return fn.pageio_fault_count();
}

/** @internal Bytes kept mapped for good because a view that escaped (transferred) may still reach them. */
export function retiredBytes(): number {
  return fn.pageio_retired_bytes();
}
