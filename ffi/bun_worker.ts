/**
 * Bun's way to run a blocking symbol off the JS thread: this worker opens the same library (one process, one
 * region table) and makes the call, one at a time. Arrays arrive as their addresses (the caller keeps them
 * alive), so what the call writes lands in the caller's own memory. Loaded only by ffi/bun.ts.
 * @module
 */
// @ts-ignore: bun:ffi exists only in Bun.
import { dlopen } from "bun:ffi";
import { blockingNames, symbols } from "./symbols.ts";

declare const self: {
  onmessage: ((event: { data: Request | { open: string } }) => void) | null;
  postMessage(message: unknown): void;
};
interface Request {
  name: string;
  args: unknown[];
}

const bunTypes = { i32: "i32", u32: "u32", f64: "f64", buffer: "ptr" } as const;
let functions: Record<string, (...args: unknown[]) => number> = {};
/**
 * The calls this thread makes on a blocking pipe or socket end each 100 ms slice with -EINTR and go on where they
 * stopped when made again (zig/src/slices.zig): made again here at once, as one call to the caller, but with this
 * worker's JS run in between, so that a terminated Worker's helper ends (stuck in a write for good, it kept the
 * Worker's thread, and the process, from ever ending).
 */
const SLICED = new Set(["pageio_writev", "pageio_readv", "pageio_vmsplice", "pageio_move"]);
const EINTR = 4; // Linux, the only system with slices

self.onmessage = (event) => {
  const data = event.data;
  if ("open" in data) {
    const table = Object.fromEntries(blockingNames.map((name) => {
      const spec = symbols[name];
      return [name, { args: spec.parameters.map((t) => bunTypes[t]), returns: bunTypes[spec.result] }];
    }));
    table.pageio_thread_sliced = { args: [], returns: "f64" };
    functions = dlopen(data.open, table).symbols;
    functions.pageio_thread_sliced();
    return;
  }
  let result: number;
  try {
    const call = functions[data.name];
    do result = call(...data.args); while (result === -EINTR && SLICED.has(data.name));
  } catch (error) {
    self.postMessage({ error: String(error) });
    return;
  }
  self.postMessage({ result });
};
