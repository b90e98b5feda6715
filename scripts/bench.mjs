// `npm start`: runs every benchmark case on Deno and on Bun, each case in its own process (so peak RSS is its
// own), and prints tables of pageio beside each runtime's built-ins, with ratios of medians and each row's spread.
// PAGEIO_BENCH_BYTES sets the big file's size (default 1 GiB). Writes .bench/results.md (every row),
// .bench/summary.md (pageio against the fastest built-in, per job) and .bench/results.json;
// `npm start -- --readme` also puts the summary into README.md between its bench markers.
import { spawnSync } from "node:child_process";
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  statSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { cpus, release, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { benchServers } from "./bench_server.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dir = join(root, ".bench");
mkdirSync(dir, { recursive: true });
const bigBytes = Number(process.env.PAGEIO_BENCH_BYTES ?? 2 ** 30);
const big = join(dir, `data-${bigBytes}.bin`);
const small = join(dir, "data-1MiB.bin");

function makeFile(path, size) {
  if (existsSync(path) && statSync(path).size === size) return;
  console.error(`writing ${path} (${size} bytes)`);
  const fd = openSync(path, "w");
  const chunk = new Uint8Array(1 << 20);
  let x = 2463534242;
  for (let i = 0; i < chunk.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    chunk[i] = x & 0xff;
  }
  for (let at = 0; at < size; at += chunk.length) {
    chunk[0] = at / chunk.length; // no two megabytes alike
    writeSync(fd, chunk, 0, Math.min(chunk.length, size - at));
  }
  closeSync(fd);
}

function warm(path) {
  const fd = openSync(path, "r");
  const buffer = Buffer.allocUnsafe(1 << 22);
  while (readSync(fd, buffer) > 0);
  closeSync(fd);
}

const runtimes = {
  deno: [join(root, "node_modules/.bin/deno"), "run", "--allow-all", join(root, "bench/main.ts")],
  bun: [join(root, "node_modules/.bin/bun"), join(root, "bench/main.ts")],
};

function run(runtime, args, task) {
  const [exe, ...pre] = runtimes[runtime];
  const env = task === undefined ? process.env : { ...process.env, PAGEIO_BENCH_TASK: String(task) };
  const child = spawnSync(exe, [...pre, ...args], { encoding: "utf8", maxBuffer: 1 << 26, env });
  const line = child.stdout.trim().split("\n").pop();
  if (child.status !== 0 || !line?.startsWith("{")) {
    throw new Error(`${runtime} ${args.join(" ")} failed (${child.status}):\n${child.stderr}`);
  }
  return JSON.parse(line);
}

const mib = (n) => `${(n / 2 ** 20).toFixed(0)} MiB`;
const size = bigBytes >= 2 ** 30 ? `${bigBytes / 2 ** 30} GiB` : mib(bigBytes);
const groups = [
  { title: "(a) time until the first byte can be read, 1 MiB file", args: ["firstByte", small], isolate: true },
  { title: `(a) time until the first byte can be read, ${size} file`, args: ["firstByte", big], isolate: true },
  { title: `(b) read every page of a cached ${size} file`, args: ["everyPage", big], isolate: true },
  { title: `(c) 100 000 random 4 KiB reads from a cached ${size} file`, args: ["randomReads", big], isolate: true },
  { title: "(1) 1 024 × 4 KiB chunks to a file", args: ["gather", join(dir, "gather.out"), "1024", "4096"] },
  { title: "(1) 16 384 × 256 B chunks to a file", args: ["gather", join(dir, "gather.out"), "16384", "256"] },
  { title: "(1) 1 024 × 4 KiB chunks to /dev/null", args: ["gather", "/dev/null", "1024", "4096"] },
  { title: "(1) 16 384 × 256 B chunks to /dev/null", args: ["gather", "/dev/null", "16384", "256"] },
  { title: "(2) 100 000 page acquire+release against allocation (GC included)", args: ["acquireRelease"] },
  { title: `(4.1) a cached ${size} file into a pipe drained by another process`, args: ["fileToPipe", big] },
  { title: `(4.2) ${size} of pages through a pipe into a child process`, args: ["toChild", String(bigBytes)] },
  {
    title: `(4.3) ${size} through a shared ring to another process, against memcpy ("÷ pageio" above 1: ring faster)`,
    args: ["ringThroughput", String(bigBytes)],
  },
  { title: "(4.4) ping-pong between two processes, 10 000 round trips", args: ["pingPong", "10000"] },
  {
    title: "(4.5) 256 MiB of pool pages into a pipe read by `cat`: copied (writev) or lent (vmsplice), 1 MiB a call",
    args: ["spliceOrWritev", String(256 * 2 ** 20)],
  },
  {
    title: "(7.1) async calls that complete at once: 10 000 × (64 B out + 64 B back) over a socket pair, " +
      "async against blocking",
    args: ["asyncImmediate", "10000"],
  },
  { title: "(7.2) 256 MiB from a child's stdout, `for await`", args: ["fromChild", String(256 * 2 ** 20)] },
  { title: "(7.3) 64 B ping-pong through `cat`, async, 2 000 round trips", args: ["pingPongAsync", "2000"] },
  {
    title: "(7.4) 256 MiB through a SharedRing from a producer process: `for await` against the blocking loop",
    args: ["ringAsync", String(256 * 2 ** 20)],
  },
  { title: "(7.5) 100 000 awaited 100 B writes into a child's stdin", args: ["awaitedWrites", "100000"] },
  {
    title: "(6) a log writer: 10^6 lines of ~100 B written as strings to a file",
    args: ["logLines", join(dir, "log.out"), "1000000"],
  },
  {
    title: `(6) a cached ${size} file through a ReadableStream (one byte per page touched)`,
    args: ["streamChunks", big],
  },
];

const lines = [];
const print = (s = "") => {
  console.log(s);
  lines.push(s);
};
const cpu = cpus()[0]?.model?.trim() ?? "unknown CPU";
const versions = Object.fromEntries(
  Object.entries(runtimes).map(([name, [exe]]) => [name, spawnSync(exe, ["--version"], { encoding: "utf8" }).stdout]),
);
const machine = process.argv.includes("--from-json")
  ? readFileSync(join(dir, "machine.txt"), "utf8").trim()
  : `${cpus().length} × ${cpu}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${release()}; ` +
    `deno ${versions.deno.match(/deno (\S+)/)?.[1]}, bun ${versions.bun.trim()}; ${
      new Date().toISOString().slice(0, 10)
    }, commit ${
      spawnSync("git", ["rev-parse", "--short", "HEAD"], { cwd: root, encoding: "utf8" }).stdout.trim() || "?"
    }`;
print(`# pageio benchmarks\n`);
print(
  `Machine: ${machine}. ` +
    `Each figure is the median time of one operation over the runs shown (at least 5; tinybench), with its spread: ` +
    `the median absolute deviation, and the fastest and slowest run. "÷ pageio" is the row's median over the first pageio row's median of the same ` +
    `runtime (above 1: slower than pageio). Peak RSS is the high-water mark of a process that ran only that row ` +
    `("—" where rows shared a process).\n`,
);

const fmt = (ms) => (ms >= 100 ? ms.toFixed(0) : ms >= 1 ? ms.toFixed(2) : ms.toFixed(4));
const spread = (r) => `±${fmt(r.mad)}`;

function table(title, rows) {
  print(`## ${title}\n`);
  print("| runtime | implementation | median | ± MAD | fastest–slowest | runs | ÷ pageio | peak RSS |");
  print("|---|---|---:|---:|---:|---:|---:|---:|");
  for (const r of rows) {
    const range = `${fmt(r.min)}–${fmt(r.max)}`;
    print(
      `| ${r.runtime} | ${r.name} | ${fmt(r.median)} ms | ${
        spread(r)
      } | ${range} | ${r.samples} | ${r.ratio} | ${r.rss} |`,
    );
  }
  print();
}

/** Per job and runtime: pageio's fastest row against the fastest built-in row. */
const summary = [];
function summarize(title, rows) {
  for (const runtime of Object.keys(runtimes)) {
    const mine = rows.filter((r) => r.runtime === runtime);
    const fastest = (list) => list.reduce((a, b) => (b.median < a.median ? b : a));
    const isOurs = (r) => /\bpageio\b/.test(r.name); // "two pipes through cat (pageio writev/readv)" too
    const ours = mine.filter(isOurs);
    const others = mine.filter((r) => !isOurs(r));
    if (ours.length === 0 || others.length === 0) continue;
    const pageio = fastest(ours);
    const best = fastest(others);
    summary.push({ title, runtime, pageio, best });
  }
}

/** .bench/summary.md from `summary` (and the server's tables), and with --readme the README's marked section. */
function writeSummary(extra = []) {
  const summaryLines = [
    `Measured by \`npm start\` on ${machine}: medians of at least 5 runs, ± the median absolute deviation; ` +
    `"built-in ÷ pageio" above 1 means pageio is faster. Every row, with peak RSS and spread: \`bench/results.md\`.`,
    "",
    "| job | runtime | pageio (fastest way) | fastest built-in | built-in ÷ pageio |",
    "|---|---|---|---|---:|",
    ...summary.map(({ title, runtime, pageio, best }) =>
      `| ${title.replace(/\|/g, "\\|")} | ${runtime} | ${pageio.name.replace(/^pageio /, "")}: ` +
      `${fmt(pageio.median)} ms (${spread(pageio)}) | ` +
      `${best.name.replace(/\|/g, "\\|")}: ${fmt(best.median)} ms (${spread(best)}) | ${
        (best.median / pageio.median).toFixed(2)
      } |`
    ),
    "",
    ...extra,
  ];
  writeFileSync(join(dir, "summary.md"), summaryLines.join("\n") + "\n");
  if (process.argv.includes("--readme")) {
    const readmePath = join(root, "README.md");
    const [start, end] = ["<!-- bench:start -->", "<!-- bench:end -->"];
    const readme = readFileSync(readmePath, "utf8");
    const from = readme.indexOf(start);
    const to = readme.indexOf(end);
    if (from < 0 || to < from) throw new Error(`README.md lacks the ${start} ... ${end} markers`);
    writeFileSync(
      readmePath,
      readme.slice(0, from + start.length) + "\n\n" + summaryLines.join("\n") + "\n\n" + readme.slice(to),
    );
    // deno fmt aligns the table, so the checks stay clean after a run.
    spawnSync(join(root, "node_modules/.bin/deno"), ["fmt", readmePath], { stdio: "ignore" });
    console.log("(summary written into README.md)");
  }
}

// --from-json: the summary again from the last run's .bench/results.json, without running anything.
if (process.argv.includes("--from-json")) {
  const groupsSeen = new Map();
  for (const entry of JSON.parse(readFileSync(join(dir, "results.json"), "utf8"))) {
    if (!Array.isArray(entry.results)) continue; // the server section keeps its own shape
    if (!groupsSeen.has(entry.group)) groupsSeen.set(entry.group, []);
    groupsSeen.get(entry.group).push(...entry.results.map((r) => ({ runtime: entry.runtime, ...r })));
  }
  for (const [title, rows] of groupsSeen) summarize(title, rows);
  const last = readFileSync(join(dir, "results.md"), "utf8").split("\n"); // the server's tables, as last printed
  const from = last.findIndex((line) => line.startsWith("## (5)"));
  writeSummary(from < 0 ? [] : last.slice(from).map((s) => s.replace(/^## /, "### ")));
  process.exit(0);
}

makeFile(big, bigBytes);
makeFile(small, 1 << 20);
warm(big);
writeFileSync(join(dir, "machine.txt"), machine + "\n");

const all = [];
for (const group of groups) {
  const rows = [];
  for (const runtime of Object.keys(runtimes)) {
    // Isolated groups: one process per implementation, so its peak RSS is its own.
    const outs = [];
    if (group.isolate) {
      for (let task = 0;; task++) {
        const out = run(runtime, group.args, task);
        if (out.results.length === 0) break;
        outs.push(out);
      }
    } else outs.push(run(runtime, group.args));
    const results = outs.flatMap((out) =>
      out.results.map((r) => ({ ...r, rss: group.isolate ? mib(out.peakRssMiB * 2 ** 20) : "—" }))
    );
    const base = results[0].median; // the first row is pageio's
    for (const r of results) rows.push({ runtime, ...r, ratio: `${(r.median / base).toFixed(2)}` });
    all.push(...outs.map((out) => ({ group: group.title, runtime, ...out })));
  }
  table(group.title, rows);
  summarize(group.title, rows);
}

// (3) copies: each implementation in its own process for its own peak RSS.
const copyRows = [];
const implementations = {
  deno: [
    "pageio PageReader->PageWriter",
    "pageio readable.pipeTo(writable)",
    "node:fs.copyFileSync",
    "Deno.readFile+writeFile",
  ],
  bun: [
    "pageio PageReader->PageWriter",
    "pageio readable.pipeTo(writable)",
    "node:fs.copyFileSync",
    "Bun.write(dst, Bun.file(src))",
  ],
};
for (const runtime of Object.keys(runtimes)) {
  let base = 0;
  for (const implementation of implementations[runtime]) {
    const out = run(runtime, ["copy", implementation, big, join(dir, "copy.out")]);
    const r = out.results[0];
    base ||= r.median;
    // Writing 1 GiB makes this noisy (writeback): the median and the fastest run are steadier than the mean.
    copyRows.push({ runtime, ...r, ratio: (r.median / base).toFixed(2), rss: mib(out.peakRssMiB * 2 ** 20) });
    all.push({ group: `(3) copy a cached ${size} file`, runtime, ...out });
  }
}
table(`(3) copy a cached ${size} file`, copyRows);
summarize(`(3) copy a cached ${size} file`, copyRows);

// (5) the file server against the runtimes' own, under wrk; its tables go into the summary as they are.
const serverLines = [];
all.push({ group: "server", ...(await benchServers((s = "") => (print(s), serverLines.push(s)))) });
writeSummary(serverLines.map((s) => s.replace(/^## /, "### ")));

writeFileSync(join(dir, "results.md"), lines.join("\n") + "\n");
// With --readme the full tables are kept beside the code, so the README's figures can be traced to their run.
if (process.argv.includes("--readme")) {
  writeFileSync(join(root, "bench", "results.md"), lines.join("\n") + "\n");
  spawnSync(join(root, "node_modules/.bin/deno"), ["fmt", join(root, "bench", "results.md")], { stdio: "ignore" });
}
writeFileSync(join(dir, "results.json"), JSON.stringify(all, null, 2));
console.log(`(written to .bench/results.md and .bench/results.json)`);
