// Proves the npm package works from the tarball, not only from the repository: `npm pack` (which
// cross-compiles every prebuilt library and emits dist/), install the tarball into an empty folder, then
// import it from Deno and from Bun and run a small program that maps a file and gathers a write.
// Ends with "N passed, N failed".
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const bin = (name) => join(root, "node_modules", ".bin", name);
const work = mkdtempSync(join(tmpdir(), "pageio-package-"));
let passed = 0;
let failed = 0;
function check(name, fn) {
  try {
    fn();
    console.log(`ok - ${name}`);
    passed++;
  } catch (error) {
    console.log(`not ok - ${name}\n${error.stack ?? error}`);
    failed++;
  }
}

let tarball;
check("npm pack builds every platform's library and the JavaScript", () => {
  const out = execFileSync("npm", ["pack", "--json", "--pack-destination", work], { cwd: root, encoding: "utf8" });
  const info = JSON.parse(out.slice(out.indexOf("[")))[0];
  tarball = join(work, info.filename);
  const files = info.files.map((f) => f.path);
  for (
    const needed of [
      "dist/mod.js",
      "dist/mod.d.ts",
      "dist/ffi/bun.js",
      "dist/ffi/deno.js",
      "prebuilt/linux-x64-gnu/libpageio.so",
      "prebuilt/linux-arm64-musl/libpageio.so",
      "prebuilt/darwin-arm64/libpageio.dylib",
      "README.md",
      "LICENSE",
    ]
  ) {
    if (!files.includes(needed)) throw new Error(`the tarball lacks ${needed}`);
  }
  const strays = files.filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts"));
  if (strays.length) throw new Error(`TypeScript sources in the npm package (Deno refuses them): ${strays.join(", ")}`);
  console.log(`  ${info.filename}: ${info.files.length} files, ${(info.size / 1024).toFixed(0)} KiB packed`);
});

const app = join(work, "app");
check("the tarball installs into an empty project", () => {
  execFileSync("mkdir", ["-p", app]);
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
  execFileSync("npm", ["install", "--no-audit", "--no-fund", tarball], { cwd: app, stdio: "pipe" });
});

const program = `
import { mapFile, openFile, PagePool, runtime, writev, writevAsync } from "pageio";
import { readFileSync, writeFileSync } from "node:fs";
const input = ${JSON.stringify(join(work, "input.txt"))};
const output = ${JSON.stringify(join(work, "output-"))} + runtime;
writeFileSync(input, "mapped bytes");
using mapping = mapFile(input);
using pool = new PagePool();
const page = pool.acquire();
page.bytes.set(new TextEncoder().encode(" + pooled"));
const heads = [mapping.head(0, 12), page.head(0, 9)];
{
  using out = openFile(output, "w");
  writev(out, heads);
  await writevAsync(out, [new TextEncoder().encode("\\n")]); // off the JS thread: Deno's FFI pool, Bun's worker
}
heads.forEach((h) => h.release());
page.release();
const got = readFileSync(output, "utf8");
if (got !== "mapped bytes + pooled\\n") throw new Error("wrote " + JSON.stringify(got));
console.log("pageio from the tarball works on " + runtime);
`;
writeFileSync(join(app, "main.ts"), program);

for (
  const [runtime, command] of [["deno", [
    bin("deno"),
    "run",
    "--allow-ffi",
    "--allow-read",
    "--allow-write",
    "--allow-env",
    "main.ts",
  ]], ["bun", [bin("bun"), "main.ts"]]]
) {
  check(`${runtime} imports the installed package and maps, pools and gathers`, () => {
    const run = spawnSync(command[0], command.slice(1), { cwd: app, encoding: "utf8" });
    if (run.status !== 0) throw new Error(`${runtime} exited ${run.status}:\n${run.stdout}${run.stderr}`);
    if (!run.stdout.includes(`works on ${runtime}`)) throw new Error(run.stdout);
  });
}

check("bun can require() the installed package (no top-level await in it)", () => {
  writeFileSync(join(app, "require.cjs"), `const p = require("pageio"); console.log("required on " + p.runtime);`);
  const run = spawnSync(bin("bun"), ["require.cjs"], { cwd: app, encoding: "utf8" });
  if (run.status !== 0 || !run.stdout.includes("required on bun")) {
    throw new Error(`bun exited ${run.status}:\n${run.stdout}${run.stderr}`);
  }
});

check("the installed package loads its own prebuilt library", () => {
  const probe = join(app, "probe.ts");
  writeFileSync(
    probe,
    `import { candidatePaths } from "./node_modules/pageio/dist/ffi/load.js"; console.log(JSON.stringify(candidatePaths()));`,
  );
  const run = spawnSync(bin("bun"), [probe], { cwd: app, encoding: "utf8" });
  const paths = JSON.parse(run.stdout);
  if (!paths.some((p) => p.includes("node_modules/pageio/prebuilt/"))) throw new Error(`looked in ${paths.join(", ")}`);
});

rmSync(work, { recursive: true, force: true });
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
