// Runs every ```ts block of README.md as written, on Deno and on Bun, in a fresh folder where `"pageio"`
// resolves to this repository (an import map for Deno, a node_modules package for Bun) and the files the
// examples name exist. A block's options go in an HTML comment on the line before it (invisible when rendered):
//   <!-- readme: deno-only | bun-only | file=NAME (saved for another block, not run) | allow-run | allow-net
//        | server=PORT (a server that runs until stopped: it passes once it answers an HTTP GET on PORT) -->
// Deno runs with the flags the README gives: --allow-ffi --allow-read --allow-env --allow-write, plus those named.
// Then every block that runs on Deno is type-checked (`deno check`). Ends with "N passed, N failed".
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const bin = (name) => join(root, "node_modules", ".bin", name);
const readme = readFileSync(join(root, "README.md"), "utf8");

/** Each ```ts block with its line number and options. */
export function blocks(text) {
  const found = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].trim() !== "```ts") continue;
    let before = i - 1;
    while (before > 0 && lines[before].trim() === "") before--;
    const marker = lines[before]?.match(/^<!-- readme: (.*) -->$/)?.[1] ?? "";
    const options = Object.fromEntries(
      marker.split(/\s+/).filter(Boolean).map((t) => t.split("=")).map(([k, v]) => [k, v ?? true]),
    );
    let end = i + 1;
    while (lines[end].trim() !== "```") end++;
    found.push({ line: i + 1, options, code: lines.slice(i + 1, end).join("\n") + "\n" });
    i = end;
  }
  return found;
}

const work = mkdtempSync(join(tmpdir(), "pageio-readme-"));
// The files the examples read.
const data = new Uint8Array(3 * 1024 * 1024).map((_, i) => (i * 7) & 0xff);
writeFileSync(join(work, "data.bin"), data);
writeFileSync(join(work, "big.bin"), data);
mkdirSync(join(work, "public"));
writeFileSync(join(work, "public", "index.html"), "<h1>pageio</h1>\n");
// "pageio" is this repository: for Deno an import map, for Bun a package in node_modules.
writeFileSync(join(work, "deno.json"), JSON.stringify({ imports: { pageio: join(root, "mod.ts") } }));
mkdirSync(join(work, "node_modules", "pageio"), { recursive: true });
writeFileSync(
  join(work, "node_modules", "pageio", "package.json"),
  JSON.stringify({ name: "pageio", type: "module", exports: "./index.ts" }),
);
writeFileSync(
  join(work, "node_modules", "pageio", "index.ts"),
  `export * from ${JSON.stringify(join(root, "mod.ts"))};\n`,
);

const all = blocks(readme);
for (const block of all) {
  if (block.options.file) writeFileSync(join(work, block.options.file), block.code);
}
let passed = 0;
let failed = 0;
for (const block of all) {
  if (block.options.file) continue;
  const file = join(work, `block-${block.line}.ts`);
  writeFileSync(file, block.code);
  for (const runtime of ["deno", "bun"]) {
    if (block.options[`${runtime === "deno" ? "bun" : "deno"}-only`]) continue;
    const flags = ["--allow-ffi", "--allow-read", "--allow-env", "--allow-write"];
    if (block.options["allow-run"]) flags.push("--allow-run");
    if (block.options["allow-net"]) flags.push("--allow-net");
    if (block.options.server) flags.push("--allow-net");
    const argv = runtime === "deno" ? [bin("deno"), "run", ...flags, file] : [bin("bun"), file];
    const run = block.options.server
      ? await serve(argv, Number(block.options.server))
      : spawnSync(argv[0], argv.slice(1), { cwd: work, encoding: "utf8", timeout: 60_000 });
    const name = `README.md:${block.line} on ${runtime}`;
    if (run.status === 0) {
      console.log(`ok - ${name}`);
      if (process.env.README_VERBOSE) console.log(run.stdout + run.stderr);
      passed++;
    } else {
      console.log(
        `not ok - ${name} (exit ${run.status}${run.signal ? `, ${run.signal}` : ""})\n${run.stdout}${run.stderr}`,
      );
      failed++;
    }
  }
}
// Every block that runs on Deno type-checks as a user's `deno check` would (Deno's default libs): a block that runs
// but does not check is what a reader copies into a project and gets errors from.
const checked = all.filter((block) => !block.options["bun-only"])
  .map((block) => block.options.file ?? `block-${block.line}.ts`);
const check = spawnSync(bin("deno"), ["check", ...checked], { cwd: work, encoding: "utf8", timeout: 120_000 });
if (check.status === 0) {
  console.log(`ok - deno check of ${checked.length} README.md blocks`);
  passed++;
} else {
  console.log(`not ok - deno check of README.md blocks (exit ${check.status})\n${check.stdout}${check.stderr}`);
  failed++;
}
rmSync(work, { recursive: true, force: true });

/** Starts a server block, GETs / on `port` until it answers (60 s at most), then stops it. */
async function serve(argv, port) {
  const child = spawn(argv[0], argv.slice(1), { cwd: work, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  const exited = new Promise((resolve) => child.on("close", (status, signal) => resolve({ status, signal })));
  let answer = null;
  for (const deadline = Date.now() + 60_000; answer === null && Date.now() < deadline;) {
    const early = await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 200))]);
    if (early) {
      return { status: early.status ?? 1, signal: early.signal, stdout: output, stderr: "exited before answering" };
    }
    answer = await fetch(`http://127.0.0.1:${port}/`).then(async (r) => `${r.status} ${await r.text()}`, () => null);
  }
  child.kill();
  await exited;
  const ok = answer !== null && answer.startsWith("200");
  return { status: ok ? 0 : 1, signal: null, stdout: output, stderr: ok ? "" : `answer: ${answer}` };
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
