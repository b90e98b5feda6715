// Publishing checks, one line each: formatting, lint, documentation lint, the JSR dry run (no slow types),
// and one version everywhere. Ends with "N passed, N failed".
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const deno = join(root, "node_modules", ".bin", "deno");
const checks = [
  ["deno fmt --check", [deno, "fmt", "--check"]],
  ["deno lint", [deno, "lint"]],
  ["deno doc --lint mod.ts (every public name documented, explicit types)", [deno, "doc", "--lint", "mod.ts"]],
  ["deno publish --dry-run (without --allow-slow-types)", [deno, "publish", "--dry-run", "--allow-dirty"]],
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
