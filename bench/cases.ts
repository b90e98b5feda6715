// Benchmark cases: each measures pageio beside the running runtime's built-in way of doing the same job.
// Run one with: deno run -A bench/main.ts <case> <file>   or   bun bench/main.ts <case> <file>
import { spawn, spawnSync } from "node:child_process";
import { pipeline } from "node:stream/promises";
import * as fs from "node:fs";
import process from "node:process";
import { Bench } from "tinybench";
import {
  Brigade,
  type FileHandle,
  mapFile,
  type PageHead,
  PagePool,
  PageReader,
  pageSize,
  PageWriter,
  pipe,
  readv,
  readvAsync,
  runtime,
  SharedRing,
  socketPair,
  writev,
  writevAsync,
} from "../mod.ts";

import { fn } from "../ffi/native.ts";
import { PackedList } from "../src/gather.ts";
import { headInternals } from "../src/head.ts";

// deno-lint-ignore no-explicit-any
declare const Bun: any;

/** One measured implementation: ms per operation, and how many operations one "op" holds. */
export interface Measured {
  name: string;
  /** Mean, median, fastest and slowest time of one operation, and the median absolute deviation, in ms. */
  ms: number;
  median: number;
  min: number;
  max: number;
  mad: number;
  samples: number;
}

type Task = { name: string; fn: () => unknown | Promise<unknown>; setup?: () => void; only?: "deno" | "bun" };

async function measure(tasks: Task[], options: { time: number; iterations: number }): Promise<Measured[]> {
  const bench = new Bench({ time: options.time, iterations: options.iterations, warmupIterations: 1, warmupTime: 0 });
  let mine = tasks.filter((t) => !t.only || t.only === runtime);
  // PAGEIO_BENCH_TASK=i runs only the i-th task, so a process's peak RSS is that task's alone.
  const only = process.env.PAGEIO_BENCH_TASK;
  if (only !== undefined) mine = mine.slice(Number(only), Number(only) + 1);
  for (const task of mine) {
    bench.add(task.name, task.fn, task.setup ? { beforeEach: task.setup } : undefined);
  }
  await bench.run();
  return bench.tasks.map((task) => {
    const result = task.result as {
      latency?: { mean: number; p50: number; min: number; max: number; mad: number; samplesCount: number };
      error?: unknown;
    };
    if (!result.latency) {
      throw new Error(`${task.name} failed: ${String((result.error as Error)?.stack ?? result.error)}`);
    }
    const { mean, p50, min, max, mad, samplesCount } = result.latency;
    return { name: task.name, ms: mean, median: p50, min, max, mad, samples: samplesCount };
  });
}

let sink = 0; // keeps reads from being optimised away

function touchPages(bytes: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < bytes.length; i += 4096) sum += bytes[i];
  return sum;
}

// --- issue 2: mmap ---------------------------------------------------------------------------

/** (a) time until the first byte can be read. */
export function firstByte(path: string): Promise<Measured[]> {
  const heavy = fs.statSync(path).size > 64 * 1024 * 1024;
  return measure([
    {
      name: "pageio mapFile",
      fn: () => {
        const m = mapFile(path);
        sink += m.bytes[0];
        m.unmap();
      },
    },
    { name: "node:fs.readFileSync", fn: () => (sink += fs.readFileSync(path)[0]) },
    { name: "Deno.readFileSync", only: "deno", fn: () => (sink += Deno.readFileSync(path)[0]) },
    { name: "Deno.readFile", only: "deno", fn: async () => (sink += (await Deno.readFile(path))[0]) },
    { name: "Bun.file().bytes()", only: "bun", fn: async () => (sink += (await Bun.file(path).bytes())[0]) },
    { name: "Bun.mmap", only: "bun", fn: () => (sink += Bun.mmap(path)[0]) },
  ], heavy ? { time: 2000, iterations: 4 } : { time: 500, iterations: 50 });
}

/** (b) read every page of a cached file (one byte per 4 KiB page, from open to close). */
export function everyPage(path: string): Promise<Measured[]> {
  return measure([
    {
      name: "pageio mapFile",
      fn: () => {
        using m = mapFile(path);
        sink += touchPages(m.bytes);
      },
    },
    {
      name: "pageio mapFile populate",
      fn: () => {
        using m = mapFile(path, { populate: true });
        sink += touchPages(m.bytes);
      },
    },
    { name: "node:fs.readFileSync", fn: () => (sink += touchPages(fs.readFileSync(path))) },
    { name: "Deno.readFileSync", only: "deno", fn: () => (sink += touchPages(Deno.readFileSync(path))) },
    { name: "Deno.readFile", only: "deno", fn: async () => (sink += touchPages(await Deno.readFile(path))) },
    { name: "Bun.file().bytes()", only: "bun", fn: async () => (sink += touchPages(await Bun.file(path).bytes())) },
    { name: "Bun.mmap", only: "bun", fn: () => (sink += touchPages(Bun.mmap(path))) },
  ], { time: 3000, iterations: 4 });
}

/** (c) 100 000 random 4 KiB reads (copied into one reused buffer, as a read would). */
export function randomReads(path: string): Promise<Measured[]> {
  const size = fs.statSync(path).size;
  const offsets = new Float64Array(100_000);
  let x = 12345;
  for (let i = 0; i < offsets.length; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    offsets[i] = (x % Math.floor(size / 4096)) * 4096;
  }
  const buffer = new Uint8Array(4096);
  return measure([
    {
      name: "pageio mapFile (copy out)",
      fn: () => {
        using m = mapFile(path);
        const bytes = m.bytes;
        for (const o of offsets) buffer.set(bytes.subarray(o, o + 4096));
        sink += buffer[0];
      },
    },
    {
      name: "pageio mapFile (view, no copy)",
      fn: () => {
        using m = mapFile(path);
        const bytes = m.bytes;
        for (const o of offsets) sink += bytes.subarray(o, o + 4096)[4095];
      },
    },
    {
      name: "node:fs.readSync (pread)",
      fn: () => {
        const fd = fs.openSync(path, "r");
        for (const o of offsets) fs.readSync(fd, buffer, 0, 4096, o);
        fs.closeSync(fd);
        sink += buffer[0];
      },
    },
    {
      name: "Deno.FsFile seekSync+readSync",
      only: "deno",
      fn: () => {
        using file = Deno.openSync(path);
        for (const o of offsets) {
          file.seekSync(o, Deno.SeekMode.Start);
          file.readSync(buffer);
        }
        sink += buffer[0];
      },
    },
  ], { time: 3000, iterations: 5 });
}

// --- issue 3: pools and gather writes ---------------------------------------------------------

/** (1) many chunks to one target: gather writes against per-chunk writes, concat-then-write and writevSync. */
export function gather(target: string, chunkCount: number, chunkBytes: number): Promise<Measured[]> {
  // Chunks are packed into pages as a pool user would: 16 chunks of 256 B share a 4 KiB page.
  const perPage = Math.max(1, Math.floor(pageSize / chunkBytes));
  const pool = new PagePool({ pageSize: pageSize * Math.ceil(chunkBytes / pageSize), pages: 0 });
  const pages = Array.from({ length: Math.ceil(chunkCount / perPage) }, (_, i) => {
    const page = pool.acquire();
    page.bytes.fill(i & 0xff);
    return page;
  });
  const headOf = (i: number) => pages[Math.floor(i / perPage)].head((i % perPage) * chunkBytes, chunkBytes);
  const heads: PageHead[] = Array.from({ length: chunkCount }, (_, i) => headOf(i));
  const arrays = Array.from({ length: chunkCount }, (_, i) => new Uint8Array(chunkBytes).fill(i & 0xff));
  const buffers = arrays.map((a) => Buffer.from(a.buffer));
  const fd = fs.openSync(target, "a");
  const truncate = target === "/dev/null" ? undefined : () => fs.ftruncateSync(fd, 0);
  const denoFile = runtime === "deno" ? Deno.openSync(target, { append: true }) : null;
  const brigade = new Brigade();
  return measure([
    { name: "pageio writev (heads)", setup: truncate, fn: () => writev(fd, heads) },
    {
      name: "pageio Brigade (new heads, flush)",
      setup: truncate,
      fn: () => {
        for (let i = 0; i < chunkCount; i++) brigade.append(headOf(i));
        brigade.flush(fd);
      },
    },
    { name: "pageio writev (plain arrays)", setup: truncate, fn: () => writev(fd, arrays) },
    {
      name: "node:fs.writeSync per chunk",
      setup: truncate,
      fn: () => {
        for (const a of arrays) fs.writeSync(fd, a);
      },
    },
    {
      name: "Deno FsFile.writeSync per chunk",
      only: "deno",
      setup: truncate,
      fn: () => {
        for (const a of arrays) denoFile!.writeSync(a);
      },
    },
    { name: "concat then node:fs.writeSync", setup: truncate, fn: () => fs.writeSync(fd, Buffer.concat(buffers)) },
    // The kernel's floor for 16 384 x 256 B to a file truncated first (C on the 2-core bench VM, 2026-12):
    // 16 x writev of 1 024 iovecs 0.89 ms median (0.77 fastest), one pre-joined 4 MiB write 0.55, and
    // joining them first then writing 0.92. writevSync sits at that floor, so 1.5x of it cannot be had here;
    // /dev/null shows the JS cost alone (writevSync ~9 ns a chunk, its 16 calls 0.045 ms).
    { name: "node:fs.writevSync", setup: truncate, fn: () => fs.writevSync(fd, arrays) },
  ], { time: 1000, iterations: 20 });
}

/** (2) acquire + release against allocating a fresh page-sized array; 100 000 per op, GC included. */
export function acquireRelease(): Promise<Measured[]> {
  const pool = new PagePool({ pages: 256 });
  const batch = 100_000;
  return measure([
    {
      name: "pageio acquire+release",
      fn: () => {
        for (let i = 0; i < batch; i++) pool.acquire().release();
      },
    },
    {
      name: "pageio acquire+write+release (view made, then revoked)",
      fn: () => {
        for (let i = 0; i < batch; i++) {
          const page = pool.acquire();
          page.bytes[0] = i;
          page.release();
        }
      },
    },
    {
      name: "new Uint8Array(pageSize)+write",
      fn: () => {
        for (let i = 0; i < batch; i++) new Uint8Array(pageSize)[0] = i;
      },
    },
  ], { time: 2000, iterations: 10 });
}

/** (3) copy a file: one implementation per process, so peak RSS is its own. */
export async function copy(implementation: string, source: string, target: string): Promise<Measured[]> {
  const copies: Record<string, () => unknown> = {
    "pageio PageReader->PageWriter": () => {
      using reader = new PageReader(source);
      using writer = new PageWriter(target);
      for (const head of reader) writer.write(head);
      writer.flush();
    },
    "pageio readable.pipeTo(writable)": () => new PageReader(source).readable.pipeTo(new PageWriter(target).writable),
    "node:fs.copyFileSync": () => fs.copyFileSync(source, target),
    "Deno.readFile+writeFile": async () => await Deno.writeFile(target, await Deno.readFile(source)),
    "Bun.write(dst, Bun.file(src))": async () => await Bun.write(target, Bun.file(source)),
  };
  const fn = copies[implementation];
  if (!fn) throw new Error(`unknown copy ${implementation}`);
  // Untimed before each copy: the last copy's gigabyte of dirty pages goes to disk first, or writeback
  // throttling of the previous run lands on whichever implementation runs next.
  const setup = () => {
    fs.rmSync(target, { force: true });
    spawnSync("sync");
  };
  const result = await measure([{ name: implementation, fn, setup }], { time: 5000, iterations: 5 });
  if (fs.statSync(target).size !== fs.statSync(source).size) throw new Error(`${implementation} copied the wrong size`);
  return result;
}

export function sinkValue(): number {
  return sink;
}

// --- issue 4: between descriptors and processes ---------------------------------------------------------------

/**
 * Starts `cat > /dev/null` reading from a fresh pipe (of `pipeBytes`) or, with 0, a unix socket pair (what
 * Bun.spawn gives a child's stdin); returns the end to write and the child's exit. `blocking`: a truly blocking
 * write end, for writers that are not pageio's own (node:fs streams, raw native calls), which take EAGAIN as failure.
 */
function drainingChild(pipeBytes: number, blocking = false): { writeEnd: FileHandle; exited: Promise<unknown> } {
  const options = blocking ? { nonBlocking: false } : {};
  const [readEnd, writeEnd] = pipeBytes === 0 ? socketPair(options).reverse() : pipe({ size: pipeBytes, ...options });
  const child = spawn("sh", ["-c", "cat > /dev/null"], { stdio: [readEnd.fd, "ignore", "inherit"] });
  readEnd.close();
  return { writeEnd, exited: new Promise((resolve) => child.on("close", resolve)) };
}

/** A task: a PageReader on `source` into a PageWriter on a draining child's pipe (`pipeBytes`) or socket pair (0). */
function readerToChild(source: string, name: string, pipeBytes: number): Task {
  return {
    name,
    fn: async () => {
      const { writeEnd, exited } = drainingChild(pipeBytes);
      {
        using reader = new PageReader(source);
        using writer = new PageWriter(writeEnd);
        for (const head of reader) writer.write(head);
        writer.flush();
      }
      writeEnd.close();
      await exited;
    },
  };
}

/** (4.1) a cached file into a pipe drained by another process: PageReader→PageWriter against stream piping. */
export function fileToPipe(source: string): Promise<Measured[]> {
  return measure([
    readerToChild(source, "pageio PageReader->PageWriter (sendfile)", 1 << 20),
    readerToChild(source, "pageio PageReader->PageWriter, socket pair (sendfile)", 0),
    {
      // Deno's node:fs streams refuse a descriptor node:fs did not open (EBADF), so this baseline is Bun's.
      name: "node:stream pipeline(createReadStream, createWriteStream)",
      only: "bun",
      fn: async () => {
        // node:fs streams expect a blocking descriptor (EAGAIN is "write failed" to them).
        const { writeEnd, exited } = drainingChild(1 << 20, true);
        await pipeline(fs.createReadStream(source), fs.createWriteStream("", { fd: writeEnd.fd, autoClose: false }));
        writeEnd.close();
        await exited;
      },
    },
    {
      name: "Deno.open().readable.pipeTo(child stdin)",
      only: "deno",
      fn: async () => {
        const child = new Deno.Command("sh", { args: ["-c", "cat > /dev/null"], stdin: "piped" }).spawn();
        await (await Deno.open(source)).readable.pipeTo(child.stdin);
        await child.status;
      },
    },
    {
      // Bun opens the file in the child and dup2s it onto fd 0 (strace): the child reads the file itself,
      // no pipe at all. The pipe rows above are what a child whose stdin must be a pipe costs.
      name: "Bun.spawn({ stdin: Bun.file(src) })",
      only: "bun",
      fn: async () => {
        await Bun.spawn(["sh", "-c", "cat > /dev/null"], { stdin: Bun.file(source) }).exited;
      },
    },
  ], { time: 4000, iterations: 5 });
}

/** (4.2) 1 GiB of pages through a pipe into a child process, against the runtime's child stdin writes. */
export function toChild(totalBytes: number): Promise<Measured[]> {
  const chunkBytes = 64 * 1024;
  const chunk = new Uint8Array(chunkBytes).fill(7);
  const pool = new PagePool({ pageSize: chunkBytes, pages: 0 });
  const pages = Array.from({ length: 64 }, () => pool.acquire());
  // A task: `totalBytes` of heads over the 64 pages into a draining child's pipe (`pipeBytes`) or socket pair (0).
  const pagesToChild = (name: string, pipeBytes: number): Task => ({
    name,
    fn: async () => {
      const { writeEnd, exited } = drainingChild(pipeBytes);
      const writer = new PageWriter(writeEnd, { highWaterMark: 256 * 1024 });
      for (let n = 0, i = 0; n < totalBytes; n += chunkBytes, i++) writer.write(pages[i % 64].head());
      writer.close();
      writeEnd.close();
      await exited;
    },
  });
  // Pages filled and handed over one by one (nothing else holds them): the writer lends them to a pipe.
  const lentPool = new PagePool({ pageSize: chunkBytes, pages: 0, leakDetection: "off" });
  const lentToChild: Task = {
    name: "pageio pipe + PageWriter, pages lent (vmsplice, 1 MiB pipe)",
    fn: async () => {
      const { writeEnd, exited } = drainingChild(1 << 20);
      const writer = new PageWriter(writeEnd, { highWaterMark: 256 * 1024 });
      for (let n = 0; n < totalBytes; n += chunkBytes) {
        if (lentPool.stats.free === 0 && lentPool.stats.total >= 64) writer.flush(); // take back what was read
        const page = lentPool.acquire();
        writer.write(page.head());
        page.release();
      }
      writer.close();
      writeEnd.close();
      await exited;
    },
  };
  return measure([
    pagesToChild("pageio socketPair + PageWriter", 0),
    pagesToChild("pageio pipe + PageWriter (1 MiB pipe)", 1 << 20),
    lentToChild,
    {
      name: "Deno.Command stdin writer.write",
      only: "deno",
      fn: async () => {
        const child = new Deno.Command("sh", { args: ["-c", "cat > /dev/null"], stdin: "piped" }).spawn();
        const writer = child.stdin.getWriter();
        for (let n = 0; n < totalBytes; n += chunkBytes) await writer.write(chunk);
        await writer.close();
        await child.status;
      },
    },
    {
      name: "Bun.spawn stdin.write + flush",
      only: "bun",
      fn: async () => {
        const child = Bun.spawn(["sh", "-c", "cat > /dev/null"], { stdin: "pipe" });
        for (let n = 0; n < totalBytes; n += chunkBytes) {
          child.stdin.write(chunk);
          await child.stdin.flush();
        }
        child.stdin.end();
        await child.exited;
      },
    },
  ], { time: 4000, iterations: 5 });
}

/** This runtime's command line for a script of this folder. */
function sameRuntime(script: string, args: string[]): [string, string[]] {
  const file = new URL(script, import.meta.url).pathname;
  return runtime === "deno"
    ? [process.execPath, ["run", "--allow-all", file, ...args]]
    : [process.execPath, [file, ...args]];
}

/**
 * A child of this runtime consuming a fresh data ring and answering on an ack ring (bench/ring_child.ts); the
 * child has attached both once the first ack arrives.
 */
async function ringChild(slotSize: number): Promise<{ data: SharedRing; ack: SharedRing; stop(): Promise<void> }> {
  const data = SharedRing.create({ slots: 16, slotSize });
  const ack = SharedRing.create({ slots: 2, slotSize: pageSize, role: "consumer" });
  const [exe, args] = sameRuntime("ring_child.ts", [data.path, ack.path]);
  const child = spawn(exe, args, { stdio: ["ignore", "inherit", "inherit"] });
  const exited = new Promise((resolve) => child.on("close", resolve));
  data.reserve().publish(0);
  (await ack.receiveAsync({ timeout: 30_000 }))!.release();
  return {
    data,
    ack,
    async stop() {
      data.close();
      await exited;
      ack.close();
    },
  };
}

/** (4.3) shared-ring throughput with 64 KiB pages into another process, against memcpy bandwidth here. */
export async function ringThroughput(totalBytes: number): Promise<Measured[]> {
  const slotSize = 64 * 1024;
  const slotsPerRun = Math.ceil(totalBytes / slotSize);
  const { data, ack, stop } = await ringChild(slotSize);
  const source = new Uint8Array(64 << 20).fill(3), target = new Uint8Array(64 << 20);
  const results = await measure([
    {
      name: "pageio SharedRing, 64 KiB pages to a consumer process (producer stamps 8 B, consumer reads 1 B)",
      fn: () => {
        for (let i = 0; i < slotsPerRun; i++) {
          const slot = data.reserve();
          slot.bytes[0] = i & 0xff; // a real page handed over, not an empty message
          slot.publish(slotSize);
        }
        data.reserve().publish(0); // the end of this run: the consumer answers once it has seen every page
        ack.receive()!.release();
      },
    },
    {
      name: "memcpy of the same bytes in 64 KiB chunks (Uint8Array.set, 64 MiB buffers)",
      fn: () => {
        for (let i = 0, at = 0; i < slotsPerRun; i++, at = (at + slotSize) % source.length) {
          target.set(source.subarray(at, at + slotSize), at);
        }
        sink += target[slotSize - 1];
      },
    },
  ], { time: 3000, iterations: 5 });
  await stop();
  return results;
}

/** (4.4) ping-pong latency between two processes: a 1-byte message each way, against a pipe. */
export async function pingPong(roundTrips: number): Promise<Measured[]> {
  const { data, ack, stop } = await ringChild(pageSize);
  const one = new Uint8Array([1]);
  const echo = () => {
    const [toChild, childIn] = pipe().reverse();
    const [childOut, fromChild] = pipe();
    const child = spawn("cat", [], { stdio: [childIn.fd, fromChild.fd, "inherit"] });
    childIn.close();
    fromChild.close();
    return { toChild, childOut, exited: new Promise((resolve) => child.on("close", resolve)) };
  };
  const cat = echo();
  const back = new Uint8Array(1);
  const results = await measure([
    {
      name: `pageio SharedRing, ${roundTrips} round trips (two rings, futex wake-ups)`,
      fn: () => {
        for (let i = 0; i < roundTrips; i++) {
          data.reserve().publish(1);
          ack.receive()!.release();
        }
      },
    },
    {
      name: `two pipes through cat, ${roundTrips} round trips (pageio writev/readv)`,
      fn: () => {
        for (let i = 0; i < roundTrips; i++) {
          writev(cat.toChild, [one]);
          readv(cat.childOut, [back]);
        }
      },
    },
    ...runtimeCatPingPong(roundTrips, one),
  ], { time: 3000, iterations: 5 });
  cat.toChild.close();
  cat.childOut.close();
  await cat.exited;
  await stop();
  return results;
}

/**
 * (4.5) Should a PageWriter on a pipe lend its pages (vmsplice) instead of copying them (writev)? `totalBytes` of
 * pool pages, 1 MiB per call, into a 1 MiB pipe drained by `cat` (which read()s), at three page sizes. The pages
 * never change during those runs, so lending them is safe there; the last three rows rewrite them each time.
 */
export async function spliceOrWritev(totalBytes: number): Promise<Measured[]> {
  const tasks: Task[] = [];
  const pools: PagePool[] = [];
  for (const size of [4096, 65536, 262144]) {
    const pool = new PagePool({ pageSize: size, pages: 0, leakDetection: "off" });
    pools.push(pool);
    const pages = Array.from({ length: (1 << 20) / size }, () => pool.acquire());
    const list = new PackedList().pack(pages.map((page) => page.head()), 0, pages.length);
    for (const [how, call] of [["writev", fn.pageio_writev], ["vmsplice", fn.pageio_vmsplice]] as const) {
      tasks.push({
        name: `${how}, ${size / 1024} KiB pages`,
        fn: async () => {
          const { writeEnd, exited } = drainingChild(1 << 20, true);
          for (let sent = 0; sent < totalBytes; sent += 1 << 20) {
            const result = call(writeEnd.fd, list.list, list.list.byteLength, list.count, null, 0, 0, list.out);
            if (result !== 1 << 20) throw new Error(`${how} wrote ${result}`);
          }
          writeEnd.close();
          await exited;
        },
      });
    }
  }
  // What lending costs when pages are reused safely: the producer writes into every page again between sends
  // (here one byte per OS page, which faults in whatever memory is there), and a lent page first gets fresh
  // memory (PageWriter's replacement: one MAP_FIXED|MAP_POPULATE mmap per run of adjacent pages): against a
  // copy, and against reuse in place (the previous design, which a reader that splices or tees the bytes on
  // sees overwritten).
  const size = 65536;
  const pool = new PagePool({ pageSize: size, pages: 0, leakDetection: "off" });
  pools.push(pool);
  const pages = Array.from({ length: (1 << 20) / size }, () => pool.acquire());
  const views = pages.map((page) => page.bytes);
  const spans = pages.map((page) => {
    const head = page.head();
    const span = headInternals.page(head);
    head.release();
    return span;
  });
  const list = new PackedList().pack(pages.map((page) => page.head()), 0, pages.length);
  const touch = (round: number) => {
    for (const bytes of views) for (let at = 0; at < size; at += 4096) bytes[at] = round;
  };
  const refilled = [
    ["writev", fn.pageio_writev, false],
    ["vmsplice, reused in place (unsafe)", fn.pageio_vmsplice, false],
    ["vmsplice + fresh pages, a call per page", fn.pageio_vmsplice, true],
    ["vmsplice + fresh pages, a call per 1 MiB run (PageWriter)", fn.pageio_vmsplice, "batch"],
  ] as const;
  for (const [how, call, replace] of refilled) {
    tasks.push({
      name: `${how}, 64 KiB pages, rewritten each time`,
      fn: async () => {
        const { writeEnd, exited } = drainingChild(1 << 20, true);
        for (let sent = 0, round = 0; sent < totalBytes; sent += 1 << 20, round++) {
          touch(round);
          const result = call(writeEnd.fd, list.list, list.list.byteLength, list.count, null, 0, 0, list.out);
          if (result !== 1 << 20) throw new Error(`${how} wrote ${result}`);
          if (replace === "batch") fn.pageio_replace_pages(spans[0].region, spans[0].offset, 1 << 20);
          else if (replace) { for (const span of spans) fn.pageio_replace_pages(span.region, span.offset, size); }
        }
        writeEnd.close();
        await exited;
      },
    });
  }
  const results = await measure(tasks, { time: 3000, iterations: 5 });
  pools.forEach((pool) => pool.close());
  return results;
}

/**
 * (6) A log writer: `count` lines of ~100 B written as strings to a file, open to close, beside each runtime's
 * best built-in way (a write per line with node:fs, Deno's FsFile, Bun's buffered FileSink).
 */
export function logLines(target: string, count: number): Promise<Measured[]> {
  const lines = Array.from({ length: 1000 }, (_, i) =>
    `2026-12-01T19:55:${String(i % 60).padStart(2, "0")}Z ` +
    `INFO request ${i} served in ${i % 97} ms ${"abcdefghij".repeat(5 + (i % 3))}\n`);
  const bytes = (() => {
    let n = 0;
    for (let i = 0; i < count; i++) n += encoder.encode(lines[i % 1000]).length;
    return n;
  })();
  const check = () => {
    if (fs.statSync(target).size !== bytes) throw new Error(`wrote ${fs.statSync(target).size} bytes, not ${bytes}`);
  };
  // Every run starts with no file (removed untimed): `Bun.file().writer()` opens without O_TRUNC, so on the last
  // run's file it would overwrite 100 MB of cached pages in place while the others free them (truncate) and
  // allocate them again, a cost of the benchmark's order, not of the writers.
  const task = (name: string, fn: () => unknown | Promise<unknown>, only?: "deno" | "bun"): Task => ({
    name,
    only,
    setup: () => fs.rmSync(target, { force: true }),
    fn: async () => {
      await fn();
      check();
    },
  });
  return measure([
    task("pageio PageWriter.write(string)", () => {
      using writer = new PageWriter(target);
      for (let i = 0; i < count; i++) writer.write(lines[i % 1000]);
    }),
    task("pageio PageWriter.write(encoder.encode(string))", () => {
      using writer = new PageWriter(target);
      for (let i = 0; i < count; i++) writer.write(encoder.encode(lines[i % 1000]));
    }),
    task("node:fs.writeSync per line", () => {
      const fd = fs.openSync(target, "w");
      for (let i = 0; i < count; i++) fs.writeSync(fd, lines[i % 1000]);
      fs.closeSync(fd);
    }),
    task("node:fs.createWriteStream().write per line", async () => {
      const stream = fs.createWriteStream(target);
      for (let i = 0; i < count; i++) {
        if (!stream.write(lines[i % 1000])) await new Promise<void>((resolve) => stream.once("drain", () => resolve()));
      }
      await new Promise((resolve) => stream.end(resolve));
    }, "deno"), // Bun 1.4.5: 77 s a run (median of 5, bench of 242613f), most of the whole `npm start`: left out there
    task("Deno.FsFile.writeSync(encoder.encode(line))", () => {
      using file = Deno.openSync(target, { write: true, create: true, truncate: true });
      for (let i = 0; i < count; i++) file.writeSync(encoder.encode(lines[i % 1000]));
    }, "deno"),
    task("Bun.file().writer().write per line", async () => {
      const writer = Bun.file(target).writer();
      for (let i = 0; i < count; i++) writer.write(lines[i % 1000]);
      await writer.end();
    }, "bun"),
  ], { time: 3000, iterations: 5 });
}
const encoder = new TextEncoder();

// --- issue 12: readable -----------------------------------------------------------------------

/** (6) a cached file through a ReadableStream, one byte per 4 KiB page touched, from open to close. */
export function streamChunks(path: string): Promise<Measured[]> {
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) sink += touchPages(chunk);
  };
  return measure([
    {
      name: "pageio PageReader.readable (pread into the stream's buffers)",
      fn: () => drain(new PageReader(path).readable),
    },
    {
      name: "pageio PageReader.readable, BYOB reader (pread into one reused buffer)",
      fn: async () => {
        const reader = new PageReader(path).readable.getReader({ mode: "byob" });
        let buffer = new ArrayBuffer(256 * 1024);
        for (;;) {
          const { value, done } = await reader.read(new Uint8Array(buffer));
          if (done) break;
          sink += touchPages(value);
          buffer = value.buffer;
        }
      },
    },
    {
      name: "pageio PageReader heads (the mapping itself, no copy)",
      fn: () => {
        using reader = new PageReader(path);
        for (const head of reader) {
          sink += touchPages(head.bytes);
          head.release();
        }
      },
    },
    { name: "Deno.open().readable", only: "deno", fn: async () => drain((await Deno.open(path)).readable) },
    { name: "Bun.file().stream()", only: "bun", fn: () => drain(Bun.file(path).stream()) },
  ], { time: 3000, iterations: 4 });
}

// --- issue 11: asynchronous I/O ------------------------------------------------------------------------------

/**
 * (7.1) One async read or write that can complete at once, against the same blocking call: 64 B out and back
 * over a socket pair (10 000 rounds); the difference per call is what the async form costs.
 */
export function asyncImmediate(rounds: number): Promise<Measured[]> {
  const [a, b] = socketPair();
  const out = new Uint8Array(64).fill(1), back = new Uint8Array(64);
  return measure([
    {
      name: `pageio writevAsync + readvAsync, ${rounds} × 64 B each way (every call completes at once)`,
      fn: async () => {
        for (let i = 0; i < rounds; i++) {
          await writevAsync(a, [out]);
          await readvAsync(b, [back]);
        }
      },
    },
    {
      name: `pageio writev + readv (blocking), the same ${rounds} rounds`,
      fn: () => {
        for (let i = 0; i < rounds; i++) {
          writev(a, [out]);
          readv(b, [back]);
        }
      },
    },
  ], { time: 2000, iterations: 5 });
}

/** (7.2) `totalBytes` from a child's stdout (`head -c`), read with `for await` against the runtime's own. */
export function fromChild(totalBytes: number): Promise<Measured[]> {
  const command = ["head", "-c", String(totalBytes), "/dev/zero"];
  return measure([
    {
      name: "pageio for await over a PageReader on the child's stdout pipe",
      fn: async () => {
        const [readEnd, writeEnd] = pipe({ size: 1 << 20 });
        const child = spawn(command[0], command.slice(1), { stdio: ["ignore", writeEnd.fd, "inherit"] });
        writeEnd.close();
        const exited = new Promise((resolve) => child.on("close", resolve));
        let total = 0;
        using reader = new PageReader(readEnd);
        for await (const head of reader) {
          total += head.byteLength;
          head.release();
        }
        readEnd.close();
        await exited;
        if (total !== totalBytes) throw new Error(`read ${total}`);
      },
    },
    {
      name: "Deno.Command stdout, for await",
      only: "deno",
      fn: async () => {
        const child = new Deno.Command(command[0], { args: command.slice(1), stdout: "piped" }).spawn();
        let total = 0;
        for await (const chunk of child.stdout) total += chunk.byteLength;
        await child.status;
        if (total !== totalBytes) throw new Error(`read ${total}`);
      },
    },
    {
      name: "Bun.spawn stdout, for await",
      only: "bun",
      fn: async () => {
        const child = Bun.spawn(command, { stdout: "pipe" });
        let total = 0;
        for await (const chunk of child.stdout) total += chunk.byteLength;
        await child.exited;
        if (total !== totalBytes) throw new Error(`read ${total}`);
      },
    },
  ], { time: 3000, iterations: 5 });
}

/** (7.3) 64 B ping-pong through `cat` with the async forms, against the runtime's own child streams. */
export function pingPongAsync(roundTrips: number): Promise<Measured[]> {
  const one = new Uint8Array(64).fill(1);
  return measure([
    {
      name: `pageio writevAsync/readvAsync through cat, ${roundTrips} round trips`,
      fn: async () => {
        const [childIn, toChild] = pipe();
        const [fromChild, childOut] = pipe();
        const child = spawn("cat", [], { stdio: [childIn.fd, childOut.fd, "inherit"] });
        childIn.close();
        childOut.close();
        const exited = new Promise((resolve) => child.on("close", resolve));
        const back = new Uint8Array(64);
        for (let i = 0; i < roundTrips; i++) {
          await writevAsync(toChild, [one]);
          for (let got = 0; got < 64;) got += await readvAsync(fromChild, [back.subarray(got)]);
        }
        toChild.close();
        await exited;
        fromChild.close();
      },
    },
    ...runtimeCatPingPong(roundTrips, one),
  ], { time: 3000, iterations: 5 });
}

/** The runtimes' own child streams through `cat`: `message` out and all of it back, `roundTrips` times. */
function runtimeCatPingPong(roundTrips: number, message: Uint8Array): Task[] {
  return [
    {
      name: `Deno.Command stdin/stdout through cat, ${roundTrips} round trips`,
      only: "deno",
      fn: async () => {
        const child = new Deno.Command("cat", { stdin: "piped", stdout: "piped" }).spawn();
        const writer = child.stdin.getWriter(), reader = child.stdout.getReader();
        for (let i = 0; i < roundTrips; i++) {
          await writer.write(message);
          for (let got = 0; got < message.length;) got += (await reader.read()).value!.byteLength;
        }
        await writer.close();
        await child.status;
      },
    },
    {
      name: `Bun.spawn stdin/stdout through cat, ${roundTrips} round trips`,
      only: "bun",
      fn: async () => {
        const child = Bun.spawn(["cat"], { stdin: "pipe", stdout: "pipe" });
        const reader = child.stdout.getReader();
        for (let i = 0; i < roundTrips; i++) {
          child.stdin.write(message);
          await child.stdin.flush();
          for (let got = 0; got < message.length;) got += (await reader.read()).value!.byteLength;
        }
        child.stdin.end();
        await child.exited;
      },
    },
  ];
}

/** (7.4) SharedRing from another process: `for await` against the blocking receive loop. */
export async function ringAsync(totalBytes: number): Promise<Measured[]> {
  const slotSize = 64 * 1024;
  const slots = Math.ceil(totalBytes / slotSize);
  const runs: { ring: SharedRing; stop: () => Promise<unknown> }[] = [];
  // A producer child per run: it fills `slots` slots and closes (bench/ring_producer.ts).
  const producer = () => {
    const ring = SharedRing.create({ slots: 16, slotSize, role: "consumer" });
    const [exe, args] = sameRuntime("ring_producer.ts", [ring.path, String(slots)]);
    const child = spawn(exe, args, { stdio: ["ignore", "inherit", "inherit"] });
    const exited = new Promise((resolve) => child.on("close", resolve));
    const run = { ring, stop: () => exited };
    runs.push(run);
    return run;
  };
  const results = await measure([
    {
      name: `pageio SharedRing for await, ${slots} × 64 KiB slots from a producer process`,
      fn: async () => {
        const { ring, stop } = producer();
        let n = 0;
        for await (const head of ring) {
          n++;
          head.release();
        }
        ring.close();
        await stop();
        if (n !== slots) throw new Error(`received ${n}`);
      },
    },
    {
      name: `pageio SharedRing blocking receive() loop, the same`,
      fn: async () => {
        const { ring, stop } = producer();
        let n = 0;
        for (let head = ring.receive(); head !== null; head = ring.receive()) {
          n++;
          head.release();
        }
        ring.close();
        await stop();
        if (n !== slots) throw new Error(`received ${n}`);
      },
    },
  ], { time: 3000, iterations: 5 });
  return results;
}

/** (7.5) `count` awaited 100 B writes into a child (`cat > /dev/null`), against the runtime's own writer. */
export function awaitedWrites(count: number): Promise<Measured[]> {
  const line = new Uint8Array(100).fill(0x61);
  return measure([
    {
      name: `pageio await writevAsync, ${count} × 100 B into a pipe to cat`,
      fn: async () => {
        const [childIn, writeEnd] = pipe();
        const child = spawn("sh", ["-c", "cat > /dev/null"], { stdio: [childIn.fd, "ignore", "inherit"] });
        childIn.close();
        const exited = new Promise((resolve) => child.on("close", resolve));
        for (let i = 0; i < count; i++) await writevAsync(writeEnd, [line]);
        writeEnd.close();
        await exited;
      },
    },
    {
      name: `pageio await PageWriter.writeAsync, ${count} × 100 B, then flushAsync`,
      fn: async () => {
        const [childIn, writeEnd] = pipe();
        const child = spawn("sh", ["-c", "cat > /dev/null"], { stdio: [childIn.fd, "ignore", "inherit"] });
        childIn.close();
        const exited = new Promise((resolve) => child.on("close", resolve));
        const writer = new PageWriter(writeEnd, { highWaterMark: 64 * 1024 });
        for (let i = 0; i < count; i++) await writer.writeAsync(line.slice());
        await writer.flushAsync();
        writer.close();
        writeEnd.close();
        await exited;
      },
    },
    {
      name: `Deno.Command stdin writer, ${count} awaited writes`,
      only: "deno",
      fn: async () => {
        const child = new Deno.Command("sh", { args: ["-c", "cat > /dev/null"], stdin: "piped" }).spawn();
        const writer = child.stdin.getWriter();
        for (let i = 0; i < count; i++) await writer.write(line);
        await writer.close();
        await child.status;
      },
    },
    {
      name: `Bun.spawn stdin FileSink, ${count} awaited write + flush`,
      only: "bun",
      fn: async () => {
        const child = Bun.spawn(["sh", "-c", "cat > /dev/null"], { stdin: "pipe" });
        for (let i = 0; i < count; i++) {
          child.stdin.write(line);
          await child.stdin.flush();
        }
        child.stdin.end();
        await child.exited;
      },
    },
  ], { time: 3000, iterations: 5 });
}
