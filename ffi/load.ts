/**
 * Picks the runtime, finds the library file, opens it once and checks that
 * its C interface is the one this TypeScript expects.
 *
 * Lookup order: `PAGEIO_LIB`, the local build under `zig/zig-out/`, the
 * prebuilt library shipped with the package. Paths are absolute, built from
 * `import.meta.url` (Deno resolves relative paths against the working directory).
 *
 * Everything here is synchronous, so the package has no top-level `await`: Bun can `require()` it and a
 * Worker that imports it gets its first message.
 * @module
 */
import type { Binding } from "./binding.ts";
import { open as openDeno } from "./deno.ts";
import { ABI_VERSION, type NativeFunctions } from "./symbols.ts";

declare const Bun: unknown;
declare const process: { platform: string; arch: string; env: Record<string, string | undefined> };

const runtime: "deno" | "bun" = typeof Deno !== "undefined"
  ? "deno"
  : typeof Bun !== "undefined"
  ? "bun"
  : unsupported();

function unsupported(): never {
  throw new Error("pageio runs on Deno or Bun; this runtime is neither");
}

function env(name: string): string | undefined {
  try {
    return runtime === "deno" ? Deno.env.get(name) : process.env[name];
  } catch {
    return undefined; // Deno without --allow-env: the variable is as good as unset
  }
}

/** Platforms with a prebuilt library: `os-arch[-libc]`, as under prebuilt/. */
export const SUPPORTED_PLATFORMS: readonly string[] = [
  "linux-x64-gnu",
  "linux-arm64-gnu",
  "linux-x64-musl",
  "linux-arm64-musl",
  "darwin-x64",
  "darwin-arm64",
];

/** This machine's platform key, e.g. `linux-x64-gnu` or `darwin-arm64`. */
export function platformKey(): string {
  const os = runtime === "deno" ? Deno.build.os : process.platform;
  const rawArch = runtime === "deno" ? Deno.build.arch : process.arch;
  const arch = rawArch === "aarch64" ? "arm64" : rawArch === "x86_64" ? "x64" : rawArch;
  return os === "linux" ? `${os}-${arch}-${isMusl(arch) ? "musl" : "gnu"}` : `${os}-${arch}`;
}

function isMusl(arch: string): boolean {
  // musl's dynamic loader has a fixed name; glibc systems do not have it.
  const loader = `/lib/ld-musl-${arch === "arm64" ? "aarch64" : "x86_64"}.so.1`;
  try {
    return runtime === "deno"
      ? Deno.statSync(loader).isFile
      : (globalThis as unknown as BunGlobal).Bun.file(loader).size > 0;
  } catch {
    return false; // not there, or no --allow-read: glibc is the common case
  }
}
type BunGlobal = { Bun: { file(path: string): { size: number } } };

function fileName(platform: string): string {
  return platform.startsWith("darwin") ? "libpageio.dylib" : "libpageio.so";
}

function pathOf(relative: string): string {
  return decodeURIComponent(new URL(relative, import.meta.url).pathname);
}

// The package root: this file is ffi/load.ts in the source and dist/ffi/load.js in the npm package.
const packageRoot = import.meta.url.includes("/dist/ffi/") ? "../../" : "../";

/** The package version; scripts/check-version.mjs keeps it equal to deno.json and package.json. */
export const PACKAGE_VERSION = "0.2.0";

/** Where the library may be, in the order they are tried. */
export function candidatePaths(platform: string = platformKey()): string[] {
  const explicit = env("PAGEIO_LIB");
  if (explicit) return [explicit];
  if (!SUPPORTED_PLATFORMS.includes(platform)) {
    // Windows has no mmap/writev/pipe semantics the library is written against: nothing to build there.
    const advice = platform.startsWith("windows")
      ? "Windows is not supported: the library is written against POSIX calls (mmap, writev, splice) and does not build for it; use WSL 2 (linux-x64-gnu)."
      : "Set PAGEIO_LIB to a library you built for it from this repository's zig/ folder.";
    throw new Error(
      `pageio has no library for this platform (${platform}); it supports ${SUPPORTED_PLATFORMS.join(", ")}. ` +
        advice,
    );
  }
  const prebuilt = new URL(`${packageRoot}prebuilt/${platform}/${fileName(platform)}`, import.meta.url);
  if (prebuilt.protocol !== "file:") return [cachedCopy(prebuilt, platform)];
  return [pathOf(`${packageRoot}zig/zig-out/lib/${fileName(platform)}`), decodeURIComponent(prebuilt.pathname)];
}

/**
 * Imported over https (JSR): dlopen needs a local file, so the prebuilt
 * library is fetched once into a cache keyed by version and platform
 * (`PAGEIO_CACHE`, else `$XDG_CACHE_HOME/pageio` or `~/.cache/pageio`).
 */
function cachedCopy(url: URL, platform: string): string {
  const base = env("PAGEIO_CACHE") ?? `${env("XDG_CACHE_HOME") ?? `${env("HOME") ?? "."}/.cache`}/pageio`;
  const dir = `${base}/${PACKAGE_VERSION}/${platform}`;
  const path = `${dir}/${url.pathname.split("/").pop()}`;
  try {
    if (Deno.statSync(path).size > 0) return path;
  } catch { /* not cached yet */ }
  Deno.mkdirSync(dir, { recursive: true });
  const partial = `${path}.${Deno.pid}.partial`; // renamed into place: a concurrent loader never sees half a file
  fetchSync(url, partial);
  Deno.renameSync(partial, path);
  return path;
}

/** Limit: how long the first import from JSR waits for the library to download. */
const FETCH_TIMEOUT_MS = 120_000;

/**
 * Deno has no synchronous fetch, and an `await` here would make the whole package an async module. A
 * worker fetches into `path` while this thread waits on a shared flag (once per machine and version: the
 * file is cached). The worker inherits this program's permissions, so `--allow-net` still decides.
 */
function fetchSync(url: URL, path: string): void {
  const source = `self.onmessage = async ({ data: { url, path, state } }) => {
    const flag = new Int32Array(state, 0, 1), text = new Uint8Array(state, 4);
    try {
      const response = await fetch(url);
      if (!response.ok) throw new Error("HTTP " + response.status);
      Deno.writeFileSync(path, new Uint8Array(await response.arrayBuffer()));
      Atomics.store(flag, 0, 1);
    } catch (error) {
      text.set(new TextEncoder().encode(String(error?.message ?? error)).subarray(0, text.length));
      Atomics.store(flag, 0, 2);
    }
    Atomics.notify(flag, 0);
  };`;
  const state = new SharedArrayBuffer(4 + 1024);
  const flag = new Int32Array(state, 0, 1);
  const worker = new Worker(`data:text/javascript,${encodeURIComponent(source)}`, { type: "module" });
  try {
    worker.postMessage({ url: url.href, path, state });
    Atomics.wait(flag, 0, 0, FETCH_TIMEOUT_MS);
  } finally {
    worker.terminate();
  }
  if (flag[0] === 1) return;
  const reason = flag[0] === 0
    ? `no answer in ${FETCH_TIMEOUT_MS / 1000} s`
    : new TextDecoder().decode(new Uint8Array(state, 4)).replace(/\0+$/, "");
  throw new Error(`pageio: fetching ${url} for the native library failed: ${reason}`);
}

function openBinding(path: string): Binding {
  if (runtime === "deno") return openDeno(path);
  // Bun's require is synchronous; a variable specifier keeps `bun:ffi` out of Deno's type check and JSR's graph.
  const require = (import.meta as unknown as { require(id: string): { open(path: string): Binding } }).require;
  return require(["./bun", import.meta.url.endsWith(".js") ? "js" : "ts"].join(".")).open(path);
}

function isPermissionError(error: unknown): boolean {
  return runtime === "deno" &&
    (error instanceof Deno.errors.PermissionDenied ||
      (Deno.errors as Record<string, unknown>).NotCapable !== undefined &&
        error instanceof (Deno.errors as unknown as { NotCapable: ErrorConstructor }).NotCapable);
}

/** Opens the first library that loads and has the expected ABI; throws with every path tried. */
export function load(paths?: string[]): Binding {
  paths ??= candidatePaths();
  const tried: string[] = [];
  for (const path of paths) {
    let binding: Binding;
    try {
      binding = openBinding(path);
    } catch (error) {
      if (isPermissionError(error)) {
        // ffi/deno.ts names a scoped --allow-ffi itself; anything else is Deno refusing dlopen.
        const own = (error as Error).message.startsWith("pageio");
        const message = "pageio needs FFI access: run deno with --allow-ffi (e.g. `deno run --allow-ffi main.ts`)";
        throw new Error(own ? (error as Error).message : message, { cause: error });
      }
      const message = (error as Error).message;
      // A symbol the table declares but the file lacks: an old or foreign build.
      const stale = /symbol/i.test(message) ? " (a stale build? `npm run build` makes a fresh one)" : "";
      tried.push(`${path}: ${message}${stale}`);
      continue;
    }
    const abi = binding.functions.pageio_abi_version();
    if (abi !== ABI_VERSION) {
      binding.close();
      throw new Error(
        `pageio: ${path} has ABI version ${abi}, this code expects ${ABI_VERSION}: a stale or mismatched build; ` +
          "rebuild it with `npm run build`",
      );
    }
    return env("PAGEIO_DEBUG")?.split(",").includes("ffi") ? withLogging(binding) : binding;
  }
  throw new Error(
    `pageio: no native library could be loaded for ${platformKey()}. Tried:\n  ` +
      tried.join("\n  ") + "\nBuild it with `npm run build` (needs Zig), or set PAGEIO_LIB to its path.",
  );
}

/** PAGEIO_DEBUG=ffi: every native call with its arguments and result, on stderr. */
function withLogging(binding: Binding): Binding {
  const functions = Object.fromEntries(
    Object.entries(binding.functions).map(([name, fn]) => [name, (...args: unknown[]) => {
      const result = (fn as (...a: unknown[]) => number)(...args);
      const shown = args.map((a) => ArrayBuffer.isView(a) ? `<${a.constructor.name} ${a.byteLength}B>` : String(a));
      console.error(`pageio ffi: ${name}(${shown.join(", ")}) = ${result}`);
      return result;
    }]),
  ) as unknown as NativeFunctions;
  return { ...binding, functions };
}
