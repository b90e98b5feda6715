/** The symbol table through `Deno.dlopen`. Loaded only on Deno. @module */
import type { Binding } from "./binding.ts";
import { type AsyncFunctions, blockingNames, type NativeFunctions, symbols } from "./symbols.ts";

const denoTypes = { i32: "i32", u32: "u32", f64: "f64", buffer: "buffer" } as const;

export function open(path: string): Binding {
  const entries: [string, Deno.ForeignFunction][] = Object.entries(symbols).map(([name, spec]) => [
    name,
    { parameters: spec.parameters.map((t) => denoTypes[t]), result: denoTypes[spec.result] },
  ]);
  // Each blocking symbol again, under a second key, as a non-blocking call: Deno runs it on its FFI threads.
  for (const name of blockingNames) {
    const spec = symbols[name];
    entries.push([`${name}_nonblocking`, {
      name,
      parameters: spec.parameters.map((t) => denoTypes[t]),
      result: denoTypes[spec.result],
      nonblocking: true,
    }]);
  }
  const library = Deno.dlopen(path, Object.fromEntries(entries) as Deno.ForeignLibraryInterface);
  // `--allow-ffi=<paths>` lets the library load, but Deno's pointer views (`UnsafePointer.create`, which every
  // mapping and page needs) check the FFI permission without a path: only a plain `--allow-ffi` passes.
  if (!allowed({ name: "ffi" })) {
    library.close();
    throw new Deno.errors.NotCapable(
      `pageio needs --allow-ffi without a path list: Deno lets only a plain --allow-ffi make pointer views ` +
        `(UnsafePointer), and pageio views every mapping and page through one; --allow-ffi=${path} only loads it`,
    );
  }
  const all = library.symbols as unknown as Record<string, unknown>;
  return {
    runtime: "deno",
    functions: library.symbols as unknown as NativeFunctions,
    async: Object.fromEntries(blockingNames.map((name) => [name, all[`${name}_nonblocking`]])) as AsyncFunctions,
    view(address, byteLength) {
      const pointer = Deno.UnsafePointer.create(BigInt(address));
      if (pointer === null) throw new TypeError("cannot view address 0");
      return Deno.UnsafePointerView.getArrayBuffer(pointer, byteLength);
    },
    addressOf(bytes) {
      return Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(bytes)));
    },
    stagingLimit: 8192,
    checkPath(path, read, write) {
      if (read) demand("read", path);
      if (write) demand("write", path);
    },
    close: () => library.close(),
  };
}

/** As Deno's own ops decide: granted, or prompted for (where a prompt can be shown) and granted then. */
function allowed(descriptor: Deno.PermissionDescriptor): boolean {
  const { state } = Deno.permissions.querySync(descriptor);
  return state === "granted" || (state === "prompt" && Deno.permissions.requestSync(descriptor).state === "granted");
}

/** Deno's check and Deno's error (`Deno.openSync` throws the same), for a path pageio opens through FFI. */
function demand(name: "read" | "write", path: string): void {
  if (!allowed({ name, path })) {
    throw new Deno.errors.NotCapable(`Requires ${name} access to "${path}", run again with the --allow-${name} flag`);
  }
}
