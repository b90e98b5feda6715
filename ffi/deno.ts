/** The symbol table through `Deno.dlopen`. Loaded only on Deno. @module */
import type { Binding } from "./binding.ts";
import { type NativeFunctions, symbols } from "./symbols.ts";

const denoTypes = { i32: "i32", u32: "u32", f64: "f64", buffer: "buffer" } as const;

export function open(path: string): Binding {
  const table = Object.fromEntries(
    Object.entries(symbols).map(([name, spec]) => [
      name,
      { parameters: spec.parameters.map((t) => denoTypes[t]), result: denoTypes[spec.result] },
    ]),
  ) as Deno.ForeignLibraryInterface;
  const library = Deno.dlopen(path, table);
  return {
    runtime: "deno",
    functions: library.symbols as unknown as NativeFunctions,
    view(address, byteLength) {
      const pointer = Deno.UnsafePointer.create(BigInt(address));
      if (pointer === null) throw new TypeError("cannot view address 0");
      return Deno.UnsafePointerView.getArrayBuffer(pointer, byteLength);
    },
    addressOf(bytes) {
      return Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(bytes)));
    },
    stagingLimit: 8192,
    close: () => library.close(),
  };
}
