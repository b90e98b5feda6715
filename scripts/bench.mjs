// `npm start`: runs every benchmark case on Deno and on Bun, each case in its own process (so peak RSS is its
// own), and prints tables of pageio beside each runtime's built-ins, with ratios.
// PAGEIO_BENCH_BYTES sets the big file's size (default 1 GiB); results also go to .bench/results.md.
import { spawnSync } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readSync, statSync, writeFileSync, writeSync } from "node:fs";
import { cpus, totalmem } from "node:os";
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

makeFile(big, bigBytes);
makeFile(small, 1 << 20);
warm(big);

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
    title: "(5) a log writer: 10^6 lines of ~100 B written as strings to a file",
    args: ["logLines", join(dir, "log.out"), "1000000"],
  },
];

const lines = [];
const print = (s = "") => {
  console.log(s);
  lines.push(s);
};
const cpu = cpus()[0]?.model ?? "unknown CPU";
print(`# pageio benchmarks\n`);
print(
  `Machine: ${cpus().length} × ${cpu}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Linux. ` +
    `Each figure is the mean time of one operation (tinybench). "÷ pageio" is the row's time over the first pageio ` +
    `row's time of the same runtime (above 1: slower than pageio). Peak RSS is the high-water mark of a process ` +
    `that ran only that row ("—" where rows shared a process).\n`,
);

function table(title, rows) {
  print(`## ${title}\n`);
  print("| runtime | implementation | time per op | ÷ pageio | peak RSS |");
  print("|---|---|---:|---:|---:|");
  for (const r of rows) {
    const ms = r.ms >= 100 ? r.ms.toFixed(0) : r.ms >= 1 ? r.ms.toFixed(2) : r.ms.toFixed(4);
    print(`| ${r.runtime} | ${r.name} | ${ms} ms | ${r.ratio} | ${r.rss} |`);
  }
  print();
}

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
    const base = results[0].ms; // the first row is pageio's
    for (const r of results) {
      rows.push({ runtime, name: r.name, ms: r.ms, ratio: `${(r.ms / base).toFixed(2)}`, rss: r.rss });
    }
    all.push(...outs.map((out) => ({ group: group.title, runtime, ...out })));
  }
  table(group.title, rows);
}

// (3) copies: each implementation in its own process for its own peak RSS.
const copyRows = [];
const implementations = {
  deno: ["pageio PageReader->PageWriter", "node:fs.copyFileSync", "Deno.readFile+writeFile"],
  bun: ["pageio PageReader->PageWriter", "node:fs.copyFileSync", "Bun.write(dst, Bun.file(src))"],
};
for (const runtime of Object.keys(runtimes)) {
  let base = 0;
  for (const implementation of implementations[runtime]) {
    const out = run(runtime, ["copy", implementation, big, join(dir, "copy.out")]);
    const r = out.results[0];
    base ||= r.median;
    // Writing 1 GiB makes this noisy (writeback): the median and the fastest run are steadier than the mean.
    copyRows.push({
      runtime,
      name: `${r.name} (median; fastest ${r.min.toFixed(0)} ms)`,
      ms: r.median,
      ratio: (r.median / base).toFixed(2),
      rss: mib(out.peakRssMiB * 2 ** 20),
    });
    all.push({ group: "copy", runtime, ...out });
  }
}
table(`(3) copy a cached ${size} file`, copyRows);

// (5) the file server against the runtimes' own, under wrk.
all.push({ group: "server", ...(await benchServers(print)) });

writeFileSync(join(dir, "results.md"), lines.join("\n") + "\n");
writeFileSync(join(dir, "results.json"), JSON.stringify(all, null, 2));
console.log(`(written to .bench/results.md and .bench/results.json)`);
