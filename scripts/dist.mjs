// Cross-compiles the library for every supported platform into prebuilt/<platform>/ and checks each binary:
// its format, every symbol of ffi/symbols.ts exported, and the ABI version marker. Then emits the npm
// package's JavaScript and declarations into dist/ (Deno has type-checked the source already).
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { zigPath } from "./build.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

/** The platforms pageio ships for; keys are ffi/load.ts's platform names. */
export const targets = [
  { key: "linux-x64-gnu", zig: "x86_64-linux-gnu.2.17", file: "libpageio.so" },
  { key: "linux-arm64-gnu", zig: "aarch64-linux-gnu.2.17", file: "libpageio.so" },
  { key: "linux-x64-musl", zig: "x86_64-linux-musl", file: "libpageio.so" },
  { key: "linux-arm64-musl", zig: "aarch64-linux-musl", file: "libpageio.so" },
  { key: "darwin-x64", zig: "x86_64-macos.11.0", file: "libpageio.dylib" },
  { key: "darwin-arm64", zig: "aarch64-macos.11.0", file: "libpageio.dylib" },
];

const symbolsSource = readFileSync(join(root, "ffi", "symbols.ts"), "utf8");
const symbolNames = [...symbolsSource.matchAll(/^\s+(pageio_\w+):/gm)].map((m) => m[1]);
const abiVersion = Number(symbolsSource.match(/export const ABI_VERSION = (\d+);/)[1]);

/** Throws unless `path` is a library of the right format exporting every symbol and the ABI marker. */
export function checkLibrary(path, target) {
  const bytes = readFileSync(path);
  const elf = bytes.subarray(0, 4).equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]));
  const machO = bytes.readUInt32LE(0) === 0xfeedfacf;
  if (target.file.endsWith(".so") ? !elf : !machO) {
    throw new Error(`${path}: not a ${target.file.endsWith(".so") ? "ELF" : "Mach-O"} library`);
  }
  const machine = elf ? bytes.readUInt16LE(18) : bytes.readUInt32LE(4);
  const wantMachine = target.key.includes("arm64") ? (elf ? 183 : 0x0100000c) : (elf ? 62 : 0x01000007);
  if (machine !== wantMachine) throw new Error(`${path}: built for machine ${machine}, expected ${wantMachine}`);
  // Exported names sit NUL-terminated in the symbol string table (with a leading "_" in Mach-O).
  const prefix = machO ? "_" : "";
  const missing = symbolNames.filter((name) => !bytes.includes(Buffer.from(`\0${prefix}${name}\0`)));
  if (missing.length) throw new Error(`${path}: missing symbols ${missing.join(", ")}`);
  if (!bytes.includes(Buffer.from(`pageio-abi-${abiVersion}\0`))) {
    throw new Error(`${path}: ABI version is not ${abiVersion}`);
  }
  return { path, bytes: bytes.length, symbols: symbolNames.length, abi: abiVersion };
}

function buildAll() {
  const zig = zigPath();
  for (const target of targets) {
    const dir = join(root, "prebuilt", target.key);
    mkdirSync(dir, { recursive: true });
    execFileSync(zig, ["build", `-Dtarget=${target.zig}`, "-Doptimize=ReleaseSafe", "--prefix-lib-dir", dir], {
      cwd: join(root, "zig"),
      stdio: "inherit",
    });
    const checked = checkLibrary(join(dir, target.file), target);
    console.log(`${target.key}: ${checked.bytes} bytes, ${checked.symbols} symbols, ABI ${checked.abi}`);
  }
}

function emitJavaScript() {
  rmSync(join(root, "dist"), { recursive: true, force: true });
  execFileSync(join(root, "node_modules", ".bin", "tsc"), ["-p", join(root, "tsconfig.npm.json")], {
    stdio: "inherit",
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  buildAll();
  emitJavaScript();
}
