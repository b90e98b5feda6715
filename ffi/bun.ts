/** The symbol table through `bun:ffi`. Loaded only on Bun. @module */
// @ts-ignore: bun:ffi exists only in Bun; this file is never loaded elsewhere.
import { dlopen, ptr, toArrayBuffer } from "bun:ffi";
import type { Binding } from "./binding.ts";
import { type NativeFunctions, symbols } from "./symbols.ts";

const bunTypes = { i32: "i32", u32: "u32", f64: "f64", buffer: "ptr" } as const;

export function open(path: string): Binding {
  const table = Object.fromEntries(
    Object.entries(symbols).map(([name, spec]) => [
      name,
      { args: spec.parameters.map((t) => bunTypes[t]), returns: bunTypes[spec.result] },
    ]),
  );
  const library = dlopen(path, table);
  return {
    runtime: "bun",
    functions: library.symbols as NativeFunctions,
    // No deallocator: the memory belongs to a mapping that pageio unmaps itself.
    view: (address, byteLength) => toArrayBuffer(address, 0, byteLength) as ArrayBuffer,
    addressOf: (bytes) => ptr(bytes) as number,
    stagingLimit: 1024,
    close: () => library.close(),
  };
}
