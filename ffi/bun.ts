/** The symbol table through `bun:ffi`. Loaded only on Bun. @module */
// @ts-ignore: bun:ffi exists only in Bun; this file is never loaded elsewhere.
import { dlopen, JSCallback, ptr, toArrayBuffer } from "bun:ffi";
import { type Binding, viewRefused } from "./binding.ts";
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
      const retained = functions.pageio_region_retain(region, address, byteLength);
      if (retained < 0) throw viewRefused(region, address, byteLength, -retained);
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
 * Blocking symbols through workers, for the few calls that must wait inside the library (a blocking pipe or
 * socket someone else opened, a futex wait of a shared ring): Bun's FFI has no non-blocking calls. A call goes
 * to an idle worker, or to a new one: never behind a blocked call, so any number of blocked calls cannot keep
 * out the one that would unblock them. Arrays cross by address, not as copies (the worker is in this process,
 * and the caller keeps them referenced until the Promise settles); workers are ref'd only while busy.
 */
const WORKERS_IDLE_MAX = 2;

/**
 * The address a worker may write through: JSC keeps a small typed array's bytes in GC-owned storage that moves
 * to an ArrayBuffer of its own the first time `.buffer` is read, so read it first (the address then stays).
 */
function addressFor(view: ArrayBufferView): number | null {
  if (view.byteLength === 0) return null;
  void view.buffer;
  return ptr(view) as number;
}

function workerFunctions(path: string): AsyncFunctions {
  type Pending = { resolve: (n: number) => void; reject: (e: Error) => void; args: unknown[] };
  type Slot = { worker: Worker; pending: Pending | null };
  const slots: Slot[] = [];
  const ref = (w: Worker, on: boolean) => (w as unknown as { ref(): void; unref(): void })[on ? "ref" : "unref"]();
  const start = (): Slot => {
    // ffi/bun.ts runs the worker's source; the npm package's dist/ffi/bun.js runs the compiled one.
    const file = import.meta.url.endsWith(".js") ? "./bun_worker.js" : "./bun_worker.ts";
    const slot: Slot = { worker: new Worker(new URL(file, import.meta.url).href), pending: null };
    ref(slot.worker, false);
    slot.worker.postMessage({ open: path });
    slot.worker.onmessage = (event: MessageEvent) => {
      const { result, error } = event.data as { result: number; error?: string };
      const call = slot.pending!;
      slot.pending = null;
      ref(slot.worker, false);
      // Beyond a few idle ones, a worker that was needed for a burst of blocked calls goes away.
      if (slots.filter((s) => s.pending === null).length > WORKERS_IDLE_MAX) {
        slots.splice(slots.indexOf(slot), 1);
        slot.worker.terminate();
      }
      if (error !== undefined) call.reject(new Error(`pageio worker: ${error}`));
      else call.resolve(result);
    };
    slots.push(slot);
    return slot;
  };
  return Object.fromEntries(
    blockingNames.map((name) => [name, (...args: unknown[]) =>
      new Promise<number>((resolve, reject) => {
        const slot = slots.find((s) => s.pending === null) ?? start();
        ref(slot.worker, true);
        slot.pending = { resolve, reject, args }; // `args` holds the arrays until the call is back
        const sent = args.map((a) => ArrayBuffer.isView(a) ? addressFor(a) : a);
        slot.worker.postMessage({ name, args: sent });
      })]
    ),
  ) as unknown as AsyncFunctions;
}
