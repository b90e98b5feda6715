// Builds zig/zig-out/lib/libpageio.* when it is missing or older than its sources.
// Zig: $ZIG, else a `zig` on PATH, else the pinned one from npm.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const zigDir = join(root, "zig");

export function zigPath() {
  if (process.env.ZIG) return process.env.ZIG;
  if (spawnSync("zig", ["version"], { stdio: "ignore" }).status === 0) return "zig";
  const pinned = join(root, "node_modules", "@ryoppippi", "zig-linux-x64", "zig");
  if (existsSync(pinned)) return pinned;
  throw new Error("no Zig found: run `npm ci`, put zig on PATH, or set ZIG=/path/to/zig");
}

function newest(paths) {
  return Math.max(...paths.map((p) => statSync(p).mtimeMs));
}

const library = join(zigDir, "zig-out", "lib", process.platform === "darwin" ? "libpageio.dylib" : "libpageio.so");
const sources = [
  join(zigDir, "build.zig"),
  join(zigDir, "build.zig.zon"),
  join(root, "ffi", "abi.ts"), // the boundary table build.zig checks the Zig side against
  ...readdirSync(join(zigDir, "src")).map((f) => join(zigDir, "src", f)),
];

if (process.argv.includes("--force") || !existsSync(library) || statSync(library).mtimeMs < newest(sources)) {
  console.error(`building ${library}`);
  execFileSync(zigPath(), ["build", "-Doptimize=ReleaseSafe"], { cwd: zigDir, stdio: "inherit" });
}
