/** The symbol table through `bun:ffi`. Loaded only on Bun. @module */
// @ts-ignore: bun:ffi exists only in Bun; this file is never loaded elsewhere.
import { dlopen, ptr, toArrayBuffer } from "bun:ffi";
import type { Binding } from "./binding.ts";
import { type AsyncFunctions, blockingNames, type NativeFunctions, symbols } from "./symbols.ts";

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
    async: workerFunctions(path),
    // No deallocator: the memory belongs to a mapping that pageio unmaps itself.
    view: (address, byteLength) => toArrayBuffer(address, 0, byteLength) as ArrayBuffer,
    addressOf: (bytes) => ptr(bytes) as number,
    stagingLimit: 1024,
    close: () => library.close(),
  };
}

/**
 * Blocking symbols through a worker: Bun's FFI has no non-blocking calls, and its thread-safe JSCallback has open
 * crash reports under many completions (oven-sh/bun#28113, #33840). One worker, started at first use, unref'd so
 * it never keeps the process alive; calls queue in order.
 */
function workerFunctions(path: string): AsyncFunctions {
  type Pending = { resolve: (n: number) => void; reject: (e: Error) => void; args: unknown[] };
  let worker: Worker | null = null;
  let nextId = 0;
  const pending = new Map<number, Pending>();
  const start = (): Worker => {
    // ffi/bun.ts runs the worker's source; the npm package's dist/ffi/bun.js runs the compiled one.
    const file = import.meta.url.endsWith(".js") ? "./bun_worker.js" : "./bun_worker.ts";
    const w = new Worker(new URL(file, import.meta.url).href);
    (w as unknown as { unref(): void }).unref(); // ref'd only while calls are pending
    w.postMessage({ open: path });
    w.onmessage = (event: MessageEvent) => {
      const { id, result, error, args } = event.data as { id: number; result: number; error?: string; args: unknown[] };
      const call = pending.get(id)!;
      pending.delete(id);
      if (pending.size === 0) (w as unknown as { unref(): void }).unref();
      if (error !== undefined) return call.reject(new Error(`pageio worker: ${error}`));
      // Copy back what the call wrote (results, bytes read) into the caller's arrays.
      call.args.forEach((arg, i) => {
        if (ArrayBuffer.isView(arg) && args[i]) {
          new Uint8Array(arg.buffer, arg.byteOffset, arg.byteLength).set(
            new Uint8Array(
              (args[i] as ArrayBufferView).buffer,
              (args[i] as ArrayBufferView).byteOffset,
              arg.byteLength,
            ),
          );
        }
      });
      call.resolve(result);
    };
    return w;
  };
  return Object.fromEntries(
    blockingNames.map((name) => [name, (...args: unknown[]) =>
      new Promise<number>((resolve, reject) => {
        worker ??= start();
        if (pending.size === 0) (worker as unknown as { ref(): void }).ref();
        const id = nextId++;
        pending.set(id, { resolve, reject, args });
        worker.postMessage({ id, name, args });
      })]
    ),
  ) as unknown as AsyncFunctions;
}
