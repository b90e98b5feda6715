// Publishing checks, one line each: formatting, lint, documentation lint, the JSR dry run (no slow types),
// and one version everywhere. Ends with "N passed, N failed".
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { zigPath } from "./build.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const deno = join(root, "node_modules", ".bin", "deno");
// test/types/consumer.ts against the npm package's declarations, with DOM types and no Deno namespace.
const typesDir = mkdtempSync(join(tmpdir(), "pageio-types-"));
writeFileSync(
  join(typesDir, "consumer.ts"),
  readFileSync(join(root, "test", "types", "consumer.ts"), "utf8").replace('"../../mod.ts"', '"./mod.js"'),
);
writeFileSync(
  join(typesDir, "tsconfig.json"),
  JSON.stringify({
    compilerOptions: {
      noEmit: true,
      strict: true,
      target: "ES2022",
      module: "ESNext",
      moduleResolution: "Bundler",
      lib: ["ES2024", "DOM", "ESNext.Disposable"],
      types: [],
    },
    files: ["consumer.ts"],
  }),
);
const tsc = join(root, "node_modules", ".bin", "tsc");
const checks = [
  ["deno fmt --check", [deno, "fmt", "--check"]],
  ["zig fmt --check", [zigPath(), "fmt", "--check", "zig/build.zig", "zig/src", "zig/bench"]],
  ["deno lint", [deno, "lint"]],
  ["deno doc --lint mod.ts (every public name documented, explicit types)", [deno, "doc", "--lint", "mod.ts"]],
  ["deno publish --dry-run (without --allow-slow-types)", [deno, "publish", "--dry-run", "--allow-dirty"]],
  ["deno check test/types/consumer.ts (views are Uint8Array<ArrayBuffer>, resources disposable)", [
    deno,
    "check",
    "test/types/consumer.ts",
  ]],
  ["tsc with DOM types on the npm declarations (same file)", [
    "sh",
    "-c",
    `"${tsc}" -p tsconfig.npm.json --emitDeclarationOnly --outDir "${typesDir}" && "${tsc}" -p "${typesDir}/tsconfig.json"`,
  ]],
  ["one version in package.json, deno.json, ffi/load.ts and CHANGELOG.md", [
    "node",
    join(root, "scripts", "check-version.mjs"),
  ]],
];
let passed = 0;
let failed = 0;
for (const [name, command] of checks) {
  const run = spawnSync(command[0], command.slice(1), {
    cwd: root,
    encoding: "utf8",
    env: { ...process.env, NO_COLOR: "1" },
  });
  if (run.status === 0) {
    console.log(`ok - ${name}`);
    passed++;
  } else {
    console.log(`not ok - ${name}\n${run.stdout}${run.stderr}`);
    failed++;
  }
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
