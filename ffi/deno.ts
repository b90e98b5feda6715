/** The symbol table through `Deno.dlopen`. Loaded only on Deno. @module */
import { type Binding, viewRefused } from "./binding.ts";
import { type AsyncFunctions, blockingNames, callbacks, type NativeFunctions, symbols } from "./symbols.ts";

const denoTypes = { i32: "i32", u32: "u32", f64: "f64", buffer: "buffer", function: "function", void: "void" } as const;

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
  const functions = library.symbols as unknown as NativeFunctions;
  return {
    runtime: "deno",
    functions,
    async: Object.fromEntries(blockingNames.map((name) => [name, all[`${name}_nonblocking`]])) as AsyncFunctions,
    // Deno's getArrayBuffer gives the backing store a no-op deleter (ext/ffi/repr.rs): nothing reports when
    // it is freed, so the region is marked viewed and is retired if its owner cannot revoke every view.
    view(region, address, byteLength) {
      // Checked first: nothing over memory outside the region is ever made.
      const marked = functions.pageio_region_viewed(region, address, byteLength);
      if (marked < 0) throw viewRefused(region, address, byteLength, -marked);
      const pointer = Deno.UnsafePointer.create(BigInt(address));
      if (pointer === null) throw new TypeError("cannot view address 0");
      return Deno.UnsafePointerView.getArrayBuffer(pointer, byteLength);
    },
    viewsTracked: false,
    addressOf(bytes) {
      return Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(bytes)));
    },
    stagingLimit: 256,
    callback(name, fn) {
      const spec = callbacks[name];
      const definition = { parameters: [], result: denoTypes[spec.result] } as const;
      // threadSafe: a call from another thread is queued onto the event loop instead of aborting the process.
      const callback = spec.threadSafe
        ? Deno.UnsafeCallback.threadSafe(definition, fn)
        : new Deno.UnsafeCallback(definition, fn);
      return {
        pointer: callback.pointer,
        ref: () => void callback.ref(),
        unref: () => void callback.unref(),
        close: () => callback.close(),
      };
    },
    permitted: allowed,
    close: () => library.close(),
  };
}

/** As Deno's own ops decide: granted, or prompted for (where a prompt can be shown) and granted then. */
function allowed(descriptor: Deno.PermissionDescriptor): boolean {
  const { state } = Deno.permissions.querySync(descriptor);
  return state === "granted" || (state === "prompt" && Deno.permissions.requestSync(descriptor).state === "granted");
}
