/**
 * Picks the runtime, finds the library file, opens it once and checks that
 * its C interface is the one this TypeScript expects.
 *
 * Lookup order: `PAGEIO_LIB`, the local build under `zig/zig-out/`, the
 * prebuilt library shipped with the package. Paths are absolute, built from
 * `import.meta.url` (Deno resolves relative paths against the working directory).
 * @module
 */
import type { Binding } from "./binding.ts";
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

function platform(): { os: string; arch: string } {
  if (runtime === "deno") return { os: Deno.build.os, arch: Deno.build.arch === "aarch64" ? "arm64" : "x64" };
  return { os: process.platform, arch: process.arch };
}

function fileName(os: string): string {
  return os === "darwin" ? "libpageio.dylib" : "libpageio.so";
}

function pathOf(relative: string): string {
  return decodeURIComponent(new URL(relative, import.meta.url).pathname);
}

/** Where the library may be, in the order they are tried. */
export function candidatePaths(): string[] {
  const { os, arch } = platform();
  const paths = [pathOf(`../zig/zig-out/lib/${fileName(os)}`), pathOf(`../lib/${os}-${arch}/${fileName(os)}`)];
  const explicit = env("PAGEIO_LIB");
  return explicit ? [explicit] : paths;
}

async function openBinding(path: string): Promise<Binding> {
  // A variable specifier keeps `bun:ffi` out of Deno's type check and of JSR's graph.
  const module = runtime === "deno" ? await import("./deno.ts") : await import(["./bun", "ts"].join("."));
  return (module as { open(path: string): Binding }).open(path);
}

function isPermissionError(error: unknown): boolean {
  return runtime === "deno" &&
    (error instanceof Deno.errors.PermissionDenied ||
      (Deno.errors as Record<string, unknown>).NotCapable !== undefined &&
        error instanceof (Deno.errors as unknown as { NotCapable: ErrorConstructor }).NotCapable);
}

/** Opens the first library that loads and has the expected ABI; throws with every path tried. */
export async function load(paths: string[] = candidatePaths()): Promise<Binding> {
  const tried: string[] = [];
  for (const path of paths) {
    let binding: Binding;
    try {
      binding = await openBinding(path);
    } catch (error) {
      if (isPermissionError(error)) {
        throw new Error("pageio needs FFI access: run deno with --allow-ffi (e.g. `deno run --allow-ffi main.ts`)", {
          cause: error,
        });
      }
      tried.push(`${path}: ${(error as Error).message}`);
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
    `pageio: no native library could be loaded for ${platform().os}-${platform().arch}. Tried:\n  ` +
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
