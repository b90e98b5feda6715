// Runs every suite: the Zig unit tests, the node:test suite under Deno and under Bun, the publishing
// checks, and the npm package installed from its tarball; ends with one line, "N passed, N failed",
// over all of them. With test files as arguments, runs only those (and the Zig tests).
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { zigPath } from "./build.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const bin = (name) => join(root, "node_modules", ".bin", name);
const files = process.argv.slice(2); // optional: only these test files
const testFiles = files.length ? files : ["test/"];

const suites = [
  {
    name: "zig",
    command: [zigPath(), "build", "test", "--summary", "all"],
    cwd: join(root, "zig"),
    // "Build Summary: 3/3 steps succeeded; 14/14 tests passed" or "...; 1 failed"
    parse: (out) => {
      const m = out.match(/(\d+)\/(\d+) tests passed/);
      const failed = Number(out.match(/(\d+) (?:tests )?failed/)?.[1] ?? 0);
      return m ? { passed: Number(m[1]), failed: failed || Number(m[2]) - Number(m[1]) } : null;
    },
  },
  {
    name: "deno",
    // --doc also runs every JSDoc example of the public API (src/, mod.ts).
    command: [
      bin("deno"),
      "test",
      "--allow-all",
      "--v8-flags=--expose-gc",
      ...(files.length ? files : ["--doc", "test/", "src/", "mod.ts"]),
    ],
    cwd: root,
    // "ok | 12 passed (3 steps) | 0 failed" (steps are node:test's nested tests)
    parse: (out) => {
      // deno-lint-ignore no-control-regex
      const m = out.replace(/\x1b\[[0-9;]*m/g, "").match(
        /(\d+) passed(?: \((\d+) steps?\))? \| (\d+) failed(?: \((\d+) steps?\))?/,
      );
      return m ? { passed: Number(m[2] ?? m[1]), failed: Number(m[4] ?? m[3]) } : null;
    },
  },
  {
    name: "bun",
    // Bun fails any test past 5 s by default, which a loaded machine reaches with child processes (Deno has no
    // such limit): a test with no timeout of its own gets two minutes, still a failure if it hangs.
    command: [
      bin("bun"),
      "test",
      "--timeout",
      "120000",
      ...testFiles.map((f) => (f.startsWith(".") ? f : `./${f}`)),
    ],
    cwd: root,
    // " 12 pass" / " 0 fail"
    parse: (out) => {
      const passed = out.match(/^\s*(\d+) pass$/m);
      const failed = out.match(/^\s*(\d+) fail$/m);
      return passed ? { passed: Number(passed[1]), failed: Number(failed?.[1] ?? 0) } : null;
    },
  },
];

// "N passed, N failed" as the last such line: the plain format of scripts/checks.mjs and test-package.mjs.
const plain = (out) => {
  const m = [...out.matchAll(/^(\d+) passed, (\d+) failed$/gm)].pop();
  return m ? { passed: Number(m[1]), failed: Number(m[2]) } : null;
};
if (files.length === 0) {
  suites.push(
    { name: "checks", command: ["node", join(root, "scripts", "checks.mjs")], cwd: root, parse: plain },
    { name: "package", command: ["node", join(root, "scripts", "test-package.mjs")], cwd: root, parse: plain },
    { name: "readme", command: ["node", join(root, "scripts", "readme.mjs")], cwd: root, parse: plain },
  );
}

const SUITE_TIMEOUT_MS = 25 * 60 * 1000;
// Every suite's temporary files go under one directory, removed at the end whatever the suites left (a killed
// child, a crashed runtime): runs must not fill the disk of the machine they share.
const scratch = mkdtempSync(join(tmpdir(), "pageio-run-"));
process.on("exit", () => rmSync(scratch, { recursive: true, force: true }));
let passed = 0;
let failed = 0;
for (const suite of suites) {
  console.log(`\n=== ${suite.name}: ${suite.command.map((a) => a.replace(root + "/", "")).join(" ")}`);
  const run = spawnSync(suite.command[0], suite.command.slice(1), {
    cwd: suite.cwd,
    encoding: "utf8",
    maxBuffer: 256 * 1024 * 1024,
    env: { ...process.env, NO_COLOR: "1", TMPDIR: scratch },
    // A suite that hangs is killed and counted as failed, so the closing line still comes (CI stops at 90 min).
    timeout: SUITE_TIMEOUT_MS,
    killSignal: "SIGKILL",
  });
  const out = `${run.stdout ?? ""}${run.stderr ?? ""}`;
  process.stdout.write(out);
  if (run.error || run.signal) console.log(`=== ${suite.name}: ${run.error?.message ?? `killed by ${run.signal}`}`);
  const counts = suite.parse(out);
  if (counts === null) {
    console.log(`=== ${suite.name}: no test count found (exit ${run.status}); counted as 1 failure`);
    failed += 1;
    continue;
  }
  // A runner that exits non-zero with no failed test still failed (a crash, a load error).
  const extra = run.status !== 0 && counts.failed === 0 ? 1 : 0;
  console.log(`=== ${suite.name}: ${counts.passed} passed, ${counts.failed + extra} failed (exit ${run.status})`);
  passed += counts.passed;
  failed += counts.failed + extra;
}
console.log(`\n${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
