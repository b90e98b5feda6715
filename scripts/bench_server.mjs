// The file-server benchmark (part of `npm start`; alone: `node scripts/bench_server.mjs`): wrk against
// examples/static-server.ts on Deno and on Bun, beside Deno.serve and Bun.serve (bench/runtime_server.ts), for
// 1 KiB, 64 KiB, 1 MiB and 64 MiB files over loopback; then one 1 GiB download per server for its peak RSS.
// Each server runs in its own process per file size; its CPU is utime+stime from /proc/<pid>/stat across the
// wrk run, its peak RSS VmHWM. Every server runs PAGEIO_BENCH_SERVER_ROUNDS times (default 3) per size, the servers
// taking turns round by round (a slow spell of the machine falls on all of them), and the table gives medians and the
// spread (lowest-highest). PAGEIO_BENCH_WRK_SECONDS sets wrk's -d (default 10), PAGEIO_BENCH_BYTES the big
// download (default 1 GiB; 0: none). For a quick side-by-side run, PAGEIO_BENCH_SERVERS keeps the servers whose
// name matches it (a regular expression, e.g. "Bun|nginx") and PAGEIO_BENCH_SIZES the sizes listed ("1 KiB,64 KiB").
import { spawn, spawnSync } from "node:child_process";
import {
  closeSync,
  existsSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  statSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const www = join(root, ".bench", "www");
const seconds = Number(process.env.PAGEIO_BENCH_WRK_SECONDS ?? 10);
const bigBytes = Number(process.env.PAGEIO_BENCH_BYTES ?? 2 ** 30);
const rounds = Number(process.env.PAGEIO_BENCH_SERVER_ROUNDS ?? 3);
if (!(Number.isInteger(rounds) && rounds > 0)) throw new RangeError("PAGEIO_BENCH_SERVER_ROUNDS: a count, > 0");
const TICKS_PER_SECOND = 100; // USER_HZ: /proc/<pid>/stat counts in these on every Linux
const deno = join(root, "node_modules/.bin/deno");
const bun = join(root, "node_modules/.bin/bun");
const example = join(root, "examples/static-server.ts");
const baseline = join(root, "bench/runtime_server.ts");
const servers = [
  { name: "pageio static-server (Deno)", command: [deno, "run", "-A", example] },
  { name: "pageio static-server (Bun)", command: [bun, example] },
  { name: "Deno.serve + FsFile.readable", command: [deno, "run", "-A", baseline], runtime: true },
  { name: "Bun.serve + Bun.file", command: [bun, baseline], runtime: true },
];
const sizes = [["1 KiB", 1024], ["64 KiB", 64 * 1024], ["1 MiB", 1 << 20], ["64 MiB", 64 << 20]].filter(([label]) =>
  process.env.PAGEIO_BENCH_SIZES?.split(",").map((s) => s.trim()).includes(label) ?? true
);
// A C server as the ceiling of this machine and client, where nginx is installed (a reference, not a runtime's own):
// one worker, sendfile, keep-alive without a request limit, no open-file cache (the JS servers open per request).
const nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"].find((path) => existsSync(path));
if (nginx) {
  servers.push({ name: "reference: nginx, 1 worker (C)", command: [nginx], nginx: true });
}
if (process.env.PAGEIO_BENCH_SERVERS) {
  const keep = new RegExp(process.env.PAGEIO_BENCH_SERVERS);
  servers.splice(0, servers.length, ...servers.filter((server) => keep.test(server.name)));
}

function makeFile(path, size) {
  if (existsSync(path) && statSync(path).size === size) return;
  const fd = openSync(path, "w");
  const chunk = new Uint8Array(Math.min(size, 1 << 20)).map((_, i) => (i * 2654435761) >>> 24);
  for (let at = 0; at < size; at += chunk.length) writeSync(fd, chunk, 0, Math.min(chunk.length, size - at));
  closeSync(fd);
}

/** nginx wants a config and a fixed port; it says nothing when ready, so the start line is printed for it. */
function nginxCommand(command) {
  const dir = join(root, ".bench", "nginx");
  mkdirSync(dir, { recursive: true });
  const port = 20000 + (process.pid % 20000);
  writeFileSync(
    join(dir, "nginx.conf"),
    `worker_processes 1; master_process off; daemon off; pid ${dir}/nginx.pid; error_log ${dir}/error.log;
events { worker_connections 4096; }
http { access_log off; sendfile on; tcp_nodelay on; keepalive_requests 100000000;
  server { listen 127.0.0.1:${port}; root ${www}; } }
`,
  );
  const script = `(sleep 0.5; echo listening on http://127.0.0.1:${port}) & exec ${
    command[0]
  } -p ${dir} -c ${dir}/nginx.conf`;
  return ["sh", ["-c", script]];
}

function start(server) {
  const [exe, args] = server.nginx ? nginxCommand(server.command) : [
    server.command[0],
    [...server.command.slice(1), www, "0"],
  ];
  const child = spawn(exe, args, { stdio: ["ignore", "pipe", "inherit"] });
  return new Promise((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
      if (m) resolve({ child, url: m[1] });
    });
    child.on("exit", (status) => reject(new Error(`${server.name} exited (${status}): ${out}`)));
  });
}

async function stop({ child }) {
  const exited = new Promise((resolve) => child.on("exit", resolve));
  child.kill("SIGKILL");
  await exited;
}

function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND; // utime, stime
}

function peakRssMiB(pid) {
  return Number(readFileSync(`/proc/${pid}/status`, "utf8").match(/VmHWM:\s+(\d+)/)[1]) / 1024;
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b), mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function wrk(url, duration) {
  const run = spawnSync("wrk", ["-t2", "-c64", `-d${duration}s`, "--timeout", "60s", url], { encoding: "utf8" });
  if (run.status !== 0) throw new Error(`wrk failed: ${run.stderr}`);
  const requests = Number(run.stdout.match(/(\d+) requests in ([\d.]+)(m?s)/)[1]);
  const [, value, unit] = run.stdout.match(/Transfer\/sec:\s+([\d.]+)([KMG]?B)/);
  const scale = { B: 1, KB: 2 ** 10, MB: 2 ** 20, GB: 2 ** 30 }[unit];
  const errors = run.stdout.match(/Non-2xx or 3xx responses: (\d+)|Socket errors: .*/g) ?? [];
  return {
    requests,
    rps: Number(run.stdout.match(/Requests\/sec:\s+([\d.]+)/)[1]),
    bytesPerSecond: value * scale,
    errors,
  };
}

export async function benchServers(print) {
  if (spawnSync("wrk", ["-v"]).error) {
    print("## (5) static file server\n\nwrk is not installed (apt-get install wrk): skipped.\n");
    return [];
  }
  mkdirSync(www, { recursive: true });
  for (const [, size] of sizes) makeFile(join(www, `${size}.bin`), size);
  if (bigBytes > 0) {
    const big = join(root, ".bench", `data-${bigBytes}.bin`);
    makeFile(big, bigBytes);
    const bigLink = join(www, "big.bin");
    if (!existsSync(bigLink) || statSync(bigLink).ino !== statSync(big).ino) {
      spawnSync("rm", ["-f", bigLink]);
      linkSync(big, bigLink); // a hard link: a symbolic link out of the root would be refused, rightly
    }
  }
  const runs = [];
  for (const [label, size] of sizes) {
    for (let round = 0; round < rounds; round++) {
      for (const server of servers) {
        const running = await start(server);
        const url = `${running.url}/${size}.bin`;
        wrk(url, 1); // warm up: page cache, JIT, connection set-up
        const cpuBefore = cpuSeconds(running.child.pid);
        const result = wrk(url, seconds);
        const cpu = cpuSeconds(running.child.pid) - cpuBefore;
        runs.push({
          label,
          server: server.name,
          ...result,
          cpuPerGiB: cpu / ((result.bytesPerSecond * seconds) / 2 ** 30),
          peakRssMiB: peakRssMiB(running.child.pid),
        });
        await stop(running);
      }
    }
  }
  const rows = [];
  for (const [label, size] of sizes) {
    for (const server of servers) {
      const mine = runs.filter((r) => r.label === label && r.server === server.name);
      const of = (key) => mine.map((r) => r[key]);
      rows.push({
        label,
        size,
        server: server.name,
        runtime: server.runtime === true,
        rps: median(of("rps")),
        bytesPerSecond: median(of("bytesPerSecond")),
        rpsRange: [Math.min(...of("rps")), Math.max(...of("rps"))],
        cpuPerGiB: median(of("cpuPerGiB")),
        peakRssMiB: Math.max(...of("peakRssMiB")),
        errors: [...new Set(mine.flatMap((r) => r.errors))],
        runs: mine,
      });
    }
  }
  const downloads = [];
  for (const server of bigBytes > 0 ? servers : []) {
    const running = await start(server);
    const started = performance.now();
    const run = spawnSync("curl", ["-s", "-o", "/dev/null", "-w", "%{size_download}", `${running.url}/big.bin`], {
      encoding: "utf8",
    });
    downloads.push({
      server: server.name,
      bytes: Number(run.stdout),
      ms: performance.now() - started,
      peakRssMiB: peakRssMiB(running.child.pid),
    });
    await stop(running);
  }

  print(`## (5) static file server: wrk -t2 -c64 -d${seconds}s over loopback, ${rounds} rounds\n`);
  print(
    `Medians of ${rounds} runs, the servers taking turns; requests/s gives the spread (lowest-highest). ` +
      'Server CPU is utime+stime of the server process across the run. "× best runtime" is throughput over the ' +
      "faster of Deno.serve and Bun.serve for that size (above 1: pageio faster). The nginx row, where nginx is " +
      "installed, is this machine's ceiling for a server in C under the same client, not a runtime's own.\n",
  );
  print("| file | server | requests/s | spread | MB/s | server CPU s per GiB | peak RSS | × best runtime |");
  print("|---|---|---:|---:|---:|---:|---:|---:|");
  for (const [label] of sizes) {
    const group = rows.filter((r) => r.label === label);
    const best = Math.max(...group.filter((r) => r.runtime).map((r) => r.bytesPerSecond));
    for (const r of group) {
      const errors = r.errors.length ? ` (${r.errors.join("; ")})` : "";
      const spread = r.rpsRange.map((n) => n.toFixed(0)).join("-");
      print(
        `| ${label} | ${r.server}${errors} | ${r.rps.toFixed(0)} | ${spread} | ${
          (r.bytesPerSecond / 1e6).toFixed(1)
        } | ` +
          `${r.cpuPerGiB.toFixed(2)} | ${r.peakRssMiB.toFixed(0)} MiB | ${(r.bytesPerSecond / best).toFixed(2)} |`,
      );
    }
  }
  if (downloads.length > 0) {
    print(`\n### one ${(bigBytes / 2 ** 30).toFixed(2)} GiB download with curl\n`);
    print("| server | bytes | time | peak RSS |");
    print("|---|---:|---:|---:|");
    for (const d of downloads) {
      print(`| ${d.server} | ${d.bytes} | ${d.ms.toFixed(0)} ms | ${d.peakRssMiB.toFixed(0)} MiB |`);
    }
  }
  print();
  return { rows, downloads };
}

if (import.meta.url === `file://${process.argv[1]}`) await benchServers(console.log);
