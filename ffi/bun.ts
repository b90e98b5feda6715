/** The symbol table through `bun:ffi`. Loaded only on Bun. @module */
// @ts-ignore: bun:ffi exists only in Bun; this file is never loaded elsewhere.
import { dlopen, JSCallback, ptr, toArrayBuffer } from "bun:ffi";
import type { Binding } from "./binding.ts";
import {
  type AsyncFunctions,
  blockingNames,
  callbacks,
  type NativeCallback,
  type NativeFunctions,
  symbols,
} from "./symbols.ts";

// A callback crosses as its address ("ptr" takes null too, "function" does not).
const bunTypes = { i32: "i32", u32: "u32", f64: "f64", buffer: "ptr", function: "ptr", void: "void" } as const;

export function open(path: string): Binding {
  const table = Object.fromEntries(
    Object.entries(symbols).map(([name, spec]) => [
      name,
      { args: spec.parameters.map((t) => bunTypes[t]), returns: bunTypes[spec.result] },
    ]),
  );
  const library = dlopen(path, table);
  const functions = library.symbols as NativeFunctions;
  const release = functions.pageio_view_release_address();
  return {
    runtime: "bun",
    functions,
    async: workerFunctions(path),
    // Each view holds a reference on its region that Bun's deallocator gives back when the backing store
    // is freed: after the last JS object holding it is collected, wherever transfer() or postMessage took it.
    view(region, address, byteLength) {
      const retained = functions.pageio_region_retain(region);
      if (retained < 0) throw new RangeError(`cannot view region ${region}: it is not open (${-retained})`);
      // Past 2^32 bytes this throws, and Bun calls the deallocator itself: the reference is given back.
      return toArrayBuffer(address, 0, byteLength, region, release) as ArrayBuffer;
    },
    viewsTracked: true,
    addressOf: (bytes) => ptr(bytes) as number,
    stagingLimit: 128,
    callback,
    permitted: () => true, // Bun has no permission model
    close: () => library.close(),
  };
}

/** A JSCallback does not keep Bun's event loop alive: one idle timer does, while any callback is ref'd. */
let refs = 0;
let keepAlive: { ref(): void; unref(): void } | undefined;

function callback(name: keyof typeof callbacks, fn: () => void): NativeCallback {
  const spec = callbacks[name];
  // threadsafe: a call from another thread is queued onto the event loop (it returns at once, the JS runs later).
  const native = new JSCallback(fn, { args: [], returns: bunTypes[spec.result], threadsafe: spec.threadSafe });
  let reffed = false;
  const ref = (on: boolean) => {
    if (reffed === on) return;
    reffed = on;
    refs += on ? 1 : -1;
    keepAlive ??= setInterval(() => {}, 2 ** 30) as unknown as { ref(): void; unref(): void };
    if (refs === 0) keepAlive.unref();
    else keepAlive.ref();
  };
  ref(true);
  return {
    pointer: native.ptr,
    ref: () => ref(true),
    unref: () => ref(false),
    close: () => {
      ref(false);
      native.close();
    },
  };
}

/**
 * Blocking symbols through workers: Bun's FFI has no non-blocking calls, and its thread-safe JSCallback has open
 * crash reports under many completions (oven-sh/bun#28113, #33840). A call goes to an idle worker, or to a new
 * one while there are fewer than `WORKERS_MAX` (a writer blocked on a full pipe must not hold up the read that
 * would drain it); workers are ref'd only while they have calls pending.
 */
const WORKERS_MAX = 8;

function workerFunctions(path: string): AsyncFunctions {
  type Pending = { resolve: (n: number) => void; reject: (e: Error) => void; args: unknown[] };
  type Slot = { worker: Worker; pending: Map<number, Pending> };
  const slots: Slot[] = [];
  let nextId = 0;
  const ref = (w: Worker, on: boolean) => (w as unknown as { ref(): void; unref(): void })[on ? "ref" : "unref"]();
  const start = (): Slot => {
    // ffi/bun.ts runs the worker's source; the npm package's dist/ffi/bun.js runs the compiled one.
    const file = import.meta.url.endsWith(".js") ? "./bun_worker.js" : "./bun_worker.ts";
    const slot: Slot = { worker: new Worker(new URL(file, import.meta.url).href), pending: new Map() };
    ref(slot.worker, false);
    slot.worker.postMessage({ open: path });
    slot.worker.onmessage = (event: MessageEvent) => {
      const { id, result, error, args } = event.data as { id: number; result: number; error?: string; args: unknown[] };
      const call = slot.pending.get(id)!;
      slot.pending.delete(id);
      if (slot.pending.size === 0) ref(slot.worker, false);
      if (error !== undefined) return call.reject(new Error(`pageio worker: ${error}`));
      // Copy back what the call wrote (results, bytes read) into the caller's arrays.
      call.args.forEach((arg, i) => {
        const back = args[i] as ArrayBufferView | null;
        if (ArrayBuffer.isView(arg) && back) {
          new Uint8Array(arg.buffer, arg.byteOffset, arg.byteLength).set(
            new Uint8Array(back.buffer, back.byteOffset, arg.byteLength),
          );
        }
      });
      call.resolve(result);
    };
    slots.push(slot);
    return slot;
  };
  const choose = (): Slot => {
    const idle = slots.find((s) => s.pending.size === 0);
    if (idle) return idle;
    if (slots.length < WORKERS_MAX) return start();
    return slots.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
  };
  return Object.fromEntries(
    blockingNames.map((name) => [name, (...args: unknown[]) =>
      new Promise<number>((resolve, reject) => {
        const slot = choose();
        if (slot.pending.size === 0) ref(slot.worker, true);
        const id = nextId++;
        slot.pending.set(id, { resolve, reject, args });
        slot.worker.postMessage({ id, name, args });
      })]
    ),
  ) as unknown as AsyncFunctions;
}
