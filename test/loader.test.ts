import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import assert from "node:assert/strict";
import { ABI_VERSION, native } from "../ffi/native.ts";
import { symbols } from "../ffi/symbols.ts";
import { load } from "../ffi/load.ts";
import { pageSize, runtime } from "../mod.ts";
import { isDeno, root, runScript, tempDir } from "./helpers.ts";

test("every symbol of the table is loaded as a function", () => {
  for (const name of Object.keys(symbols)) {
    assert.equal(typeof (native.functions as Record<string, unknown>)[name], "function", name);
  }
  assert.equal(native.functions.pageio_abi_version(), ABI_VERSION);
});

test("the runtime and page size come from the running system", () => {
  assert.equal(runtime, isDeno ? "deno" : "bun");
  assert.ok(pageSize >= 4096 && (pageSize & (pageSize - 1)) === 0);
});

test("a missing library names every path tried and how to build it", async () => {
  await assert.rejects(load(["/nonexistent/libpageio.so", "/also/missing.so"]), (error: Error) => {
    assert.match(error.message, /\/nonexistent\/libpageio\.so/);
    assert.match(error.message, /\/also\/missing\.so/);
    assert.match(error.message, /npm run build/);
    return true;
  });
});

test("PAGEIO_LIB is the only path tried when set", () => {
  const run = runScript(`import * as pageio from "${root}mod.ts"; console.log(pageio.pageSize);`, {
    env: { PAGEIO_LIB: "/nonexistent/elsewhere.so" },
  });
  assert.notEqual(run.status, 0);
  assert.match(run.stderr, /\/nonexistent\/elsewhere\.so/);
  assert.doesNotMatch(run.stderr, /zig-out/);
});

test("PAGEIO_DEBUG=ffi logs native calls", () => {
  const run = runScript(`import * as pageio from "${root}mod.ts"; pageio.mapAnonymous(pageio.pageSize).unmap();`, {
    env: { PAGEIO_DEBUG: "ffi" },
  });
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stderr, /pageio ffi: pageio_map_anonymous\(4096, 0, <Float64Array 8B>\) = \d+/);
  assert.match(run.stderr, /pageio ffi: pageio_unmap\(\d+\) = 0/);
});

test("Deno without --allow-ffi says which permission to grant", { skip: !isDeno }, () => {
  const file = join(tempDir(), "no-ffi.ts");
  writeFileSync(file, `await import("${root}mod.ts");`);
  const child = spawnSync(process.execPath, ["run", "--no-prompt", "--allow-read", "--allow-env", file], {
    encoding: "utf8",
  });
  assert.notEqual(child.status, 0);
  assert.match(child.stderr, /pageio needs FFI access: run deno with --allow-ffi/);
});
