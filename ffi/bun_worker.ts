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

self.onmessage = (event) => {
  const data = event.data;
  if ("open" in data) {
    const table = Object.fromEntries(blockingNames.map((name) => {
      const spec = symbols[name];
      return [name, { args: spec.parameters.map((t) => bunTypes[t]), returns: bunTypes[spec.result] }];
    }));
    functions = dlopen(data.open, table).symbols;
    return;
  }
  let result: number;
  try {
    result = functions[data.name](...data.args);
  } catch (error) {
    self.postMessage({ error: String(error) });
    return;
  }
  self.postMessage({ result });
};
