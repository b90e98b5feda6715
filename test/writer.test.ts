import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import process from "node:process";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import {
  Brigade,
  openFile,
  type PageIoError,
  PagePool,
  PageReader,
  pageSize,
  PageWriter,
  pipe,
  readvAsync,
} from "../mod.ts";
import { liveRegionCount } from "../src/system.ts";
import { haveStrace, isDeno, noTmpfs, patternBytes, root, runScript, tempDir, tempFile, withTmpfs } from "./helpers.ts";

const code = (e: unknown) => (e as PageIoError).code;
const encoder = new TextEncoder();

/** Lines with every UTF-8 length (1-4 bytes, surrogate pairs, a lone surrogate) so page ends fall inside characters. */
function mixedLines(count: number): string[] {
  const pieces = ["plain ascii", "é ü ß", "中文字符", "🙂 emoji 🚀", "lone \ud800 surrogate", "x".repeat(4097)];
  return Array.from({ length: count }, (_, i) => `${i} ${pieces[i % pieces.length]}\n`);
}

test("write(string) encodes UTF-8 into pool pages, in order with heads and arrays, across page ends", () => {
  const regions = liveRegionCount();
  const path = join(tempDir(), "mixed.txt");
  const lines = mixedLines(3000);
  const expected: Uint8Array[] = [];
  {
    using pool = new PagePool({ pageSize }); // small pages: characters straddle many page ends
    const page = pool.acquire();
    page.bytes.set(encoder.encode("<head>"));
    using writer = new PageWriter(path, { pool });
    lines.forEach((line, i) => {
      writer.write(line);
      expected.push(encoder.encode(line));
      if (i % 97 === 0) {
        writer.write(page.head(0, 6));
        expected.push(encoder.encode("<head>"));
      } else if (i % 101 === 0) {
        writer.write(encoder.encode("[array]"));
        expected.push(encoder.encode("[array]"));
      }
    });
    const big = "🙂".repeat(40_000) + "end"; // one write far over a page and over a batch
    writer.write(big);
    expected.push(encoder.encode(big));
    page.release();
  }
  assert.deepEqual(readFileSync(path), Buffer.concat(expected));
  assert.equal(liveRegionCount(), regions, "the writer's pages and pools are gone");
});

test("write(string) takes ropes, empty strings and repeats, and never calls a redefined String.prototype method", () => {
  const path = join(tempDir(), "ropes.txt");
  const intrinsic = String.prototype.charCodeAt;
  // deno-lint-ignore no-explicit-any
  const bufferPrototype = Buffer.prototype as any;
  const utf8Write = bufferPrototype.utf8Write; // Bun's writer encodes with the intrinsic taken at load
  let called = 0;
  String.prototype.charCodeAt = function (this: string, index: number) {
    called++;
    return intrinsic.call(this, index);
  };
  bufferPrototype.utf8Write = function (this: Uint8Array, ...args: unknown[]) {
    called++;
    return utf8Write.apply(this, args);
  };
  const expected: string[] = [];
  try {
    using writer = new PageWriter(path);
    const repeated = `${"a".repeat(3)}-${1}-${"b".repeat(2)}\n`; // a rope, written many times
    for (let i = 0; i < 5000; i++) {
      const line = i % 3 === 0 ? repeated : i % 3 === 1 ? "" : `${i} ${"é".repeat(i % 7)} ${"🙂"}\n`;
      writer.write(line);
      expected.push(line);
    }
  } finally {
    String.prototype.charCodeAt = intrinsic;
    bufferPrototype.utf8Write = utf8Write;
  }
  assert.equal(called, 0);
  assert.equal(readFileSync(path, "utf8"), expected.join(""));
});

test("each write(string) is encoded on its own: surrogate halves in two writes are two U+FFFD wherever a batch ends", () => {
  const encoder = new TextEncoder();
  for (const padLength of [0, 5, 16383, 16384, 40000]) {
    const path = join(tempDir(), `halves-${padLength}.txt`);
    const writes = ["x".repeat(padLength) + "\uD83D", "\uDE00 and a pair: \uD83D\uDE00", "\uDE00", "end\uD83D"];
    {
      using writer = new PageWriter(path);
      for (const text of writes) writer.write(text);
    }
    const expected = Buffer.concat(writes.map((text) => encoder.encode(text))); // as each alone would be
    assert.deepEqual(readFileSync(path), expected, `pad ${padLength}`);
  }
});

test("the gather writes counted: far fewer calls than lines", { skip: !haveStrace }, () => {
  const dir = tempDir();
  const path = join(dir, "log.txt");
  const trace = join(dir, "trace");
  const child = join(dir, "child.ts");
  writeFileSync(
    child,
    `import { PageWriter } from "${root}mod.ts";
     const w = new PageWriter(${JSON.stringify(path)});
     for (let i = 0; i < 20000; i++) w.write("line " + i + " " + "y".repeat(90) + "\\n");
     w.close();`,
  );
  const argv = isDeno ? [process.execPath, "run", "-A", child] : [process.execPath, child];
  // -y names each descriptor's file, so the runtime's own writes (its module cache) are told apart.
  const syscalls = "trace=write,writev,pwrite64,pwritev";
  const run = spawnSync("strace", ["-f", "-qq", "-y", "-e", syscalls, "-o", trace, ...argv], {
    encoding: "utf8",
    timeout: 60_000,
  });
  assert.equal(run.status, 0, run.stderr);
  const toFile = readFileSync(trace, "utf8").split("\n").filter((l) => l.includes(`<${path}>`));
  assert.ok(readFileSync(path).length > 2_000_000);
  // ~2 MB in 64 KiB pages: what strings filled goes out every 512 KiB (below the 8 MiB high-water mark, so
  // it is written while still in cache), a few gather writes; never one per line.
  assert.ok(toFile.length >= 3 && toFile.length <= 6, `${toFile.length} writes:\n${toFile.join("\n")}`);
});

test("a writer given a path appends with { append: true }, kernel moves included", () => {
  const source = tempFile(patternBytes(3 * pageSize + 17, 5));
  const path = tempFile("old line\n", "log.txt");
  {
    using writer = new PageWriter(path, { append: true });
    writer.write("new line\n");
    using reader = new PageReader(source);
    for (const head of reader) writer.write(head); // file spans: a kernel move where the OS allows one
    writer.write("last\n");
  }
  assert.deepEqual(
    readFileSync(path),
    Buffer.concat([Buffer.from("old line\nnew line\n"), readFileSync(source), Buffer.from("last\n")]),
  );
  using truncating = new PageWriter(path);
  truncating.write("fresh\n");
  truncating.close();
  assert.equal(readFileSync(path, "utf8"), "fresh\n");
});

test("pending counts encoded strings; a closed writer refuses strings; a bad pool is a TypeError", () => {
  const path = join(tempDir(), "p.txt");
  const writer = new PageWriter(path);
  writer.write("héllo");
  assert.deepEqual(writer.pending, { byteLength: 6, count: 1 });
  assert.equal(writer.flush(), 6);
  assert.deepEqual(writer.pending, { byteLength: 0, count: 0 });
  writer.close();
  assert.throws(() => writer.write("late"), (e) => code(e) === "ERR_CLOSED");
  assert.equal(readFileSync(path, "utf8"), "héllo");
  assert.throws(() => new PageWriter(path, { pool: {} as PagePool }), TypeError);
});

test("no page to encode into: the string is kept, nothing written before is lost", () => {
  const path = join(tempDir(), "full.txt");
  const pool = new PagePool({ pageSize, pages: 0, maxPages: 2 });
  const writer = new PageWriter(path, { pool });
  const held = [pool.acquire(), pool.acquire()]; // every page the pool may have
  writer.write("a".repeat(pageSize * 2));
  assert.throws(() => writer.flush(), (e) => code(e) === "ERR_POOL_EXHAUSTED");
  held.forEach((page) => page.release());
  writer.close(); // now there are pages: everything goes out
  assert.equal(readFileSync(path, "utf8"), "a".repeat(pageSize * 2));
  pool.close();
});

const endings: Record<string, string> = {
  "returns from its main module": "",
  "calls exit(0)": isDeno ? "Deno.exit(0);" : "process.exit(0);",
  "dies of an uncaught exception": 'throw new Error("boom");', // Deno dispatches no unload then
  "dies of an unhandled rejection": 'Promise.reject(new Error("boom"));',
};
for (const [how, exit] of Object.entries(endings)) {
  test(`a program that writes strings and ${how} without flush or close leaves the complete file`, () => {
    const path = join(tempDir(), "exit.txt");
    const run = runScript(
      `import { PageWriter } from "${root}mod.ts";
       const w = new PageWriter(${JSON.stringify(path)});
       for (let i = 0; i < 50000; i++) w.write("line " + i + "\\n");
       w.write(new TextEncoder().encode("bytes\\n"));
       w.write("tail");
       ${exit}`,
    );
    assert.equal(run.signal, null, run.stderr);
    assert.equal(run.status, exit.includes("boom") ? 1 : 0, run.stderr);
    const expected = Array.from({ length: 50000 }, (_, i) => `line ${i}\n`).join("") + "bytes\ntail";
    assert.equal(readFileSync(path, "utf8"), expected);
  });
}

test("a writer whose pool the caller closed before it flushed still writes every string, at exit too", () => {
  // Before (Deno): strings not yet encoded needed a page of the closed pool at the exit flush, and were lost.
  const path = join(tempDir(), "closed-pool.txt");
  const run = runScript(
    `import { PagePool, PageWriter } from "${root}mod.ts";
     const pool = new PagePool();
     const w = new PageWriter(${JSON.stringify(path)}, { pool });
     w.write("hello ");
     pool.close();
     w.write("world\\n");`,
  );
  assert.equal(run.status, 0, run.stderr);
  assert.equal(run.stderr, "");
  assert.equal(readFileSync(path, "utf8"), "hello world\n");
  const again = join(tempDir(), "closed-pool-flush.txt");
  const pool = new PagePool();
  const writer = new PageWriter(again, { pool });
  writer.write("a");
  pool.close();
  writer.write("b");
  assert.equal(writer.flush(), 2);
  writer.close();
  assert.equal(readFileSync(again, "utf8"), "ab");
});

test("data that cannot be written at exit (a pipe's reader gone) is reported in one line: how much, and why", () => {
  // Before: a stack trace of the exit hook, and no word of how many bytes were lost.
  const run = runScript(
    `import { pipe, PageWriter } from "${root}mod.ts";
     const [readEnd, writeEnd] = pipe();
     readEnd.close();
     new PageWriter(writeEnd).write("never read\\n");`,
  );
  assert.equal(run.signal, null, run.stderr);
  assert.equal(run.status, 0, run.stderr);
  assert.equal(
    run.stderr.trim(),
    "pageio: 11 bytes of a PageWriter's data could not be written at exit: EPIPE: broken pipe, writev",
  );
});

test("write(bytes) copies them: a buffer reused for every line writes every line, in order with strings and heads", () => {
  // Before: the writer queued the array itself, so a reused buffer went out N times with its last contents.
  const path = join(tempDir(), "reused.txt");
  const writer = new PageWriter(path);
  const line = new Uint8Array(4);
  const pool = new PagePool();
  for (let i = 0; i < 3; i++) {
    line.set(new TextEncoder().encode(`L${i}\n`));
    writer.write(line.subarray(0, 3));
    writer.write(i === 1 ? "s\n" : "");
  }
  const page = pool.acquire();
  page.bytes.set(new TextEncoder().encode("head\n"));
  writer.write(page.head(0, 5));
  page.release();
  line.fill(0); // after write() returned: must not matter
  writer.write(patternBytes(200_000, 9)); // across pool pages
  writer.close();
  const got = readFileSync(path);
  assert.equal(got.subarray(0, 16).toString(), "L0\nL1\ns\nL2\nhead\n");
  assert.deepEqual(new Uint8Array(got.subarray(16)), patternBytes(200_000, 9));
  assert.throws(() => new PageWriter(join(tempDir(), "x")).write({} as Uint8Array), TypeError);
  pool.close();
});

test("write(bytes) of fresh small arrays, arrays over odd buffers and a detached one: every byte in order, the detached refused", () => {
  const path = join(tempDir(), "arrays.txt");
  const writer = new PageWriter(path);
  const expected: number[] = [];
  const put = (bytes: Uint8Array) => {
    writer.write(bytes);
    expected.push(...bytes);
  };
  for (let i = 0; i < 5000; i++) {
    put(encoder.encode(`line ${i}\n`)); // a fresh small array each time, the way a log is often written
    if (i % 7 === 0) {
      writer.write(`s${i}\n`);
      expected.push(...encoder.encode(`s${i}\n`));
    }
    if (i % 11 === 0) put(new Uint8Array(new SharedArrayBuffer(8), 2, 5).fill(i & 0xff));
    if (i % 13 === 0) put(new Uint8Array(new ArrayBuffer(16, { maxByteLength: 64 }), 4, 8).fill(0x41));
    if (i % 997 === 0) put(patternBytes(70_000, i)); // across a page end
  }
  const gone = new Uint8Array(8);
  gone.buffer.transfer();
  assert.throws(() => writer.write(gone), TypeError);
  writer.write(new Uint8Array(0)); // nothing, and no error
  writer.close();
  assert.deepEqual(new Uint8Array(readFileSync(path)), new Uint8Array(expected));
});

test("the writer's own pages go back to its pool without revoking views (none left it); the next owner's are", () => {
  const path = join(tempDir(), "private.txt");
  using pool = new PagePool({ pageSize });
  const transfer = ArrayBuffer.prototype.transfer;
  let transfers = 0;
  ArrayBuffer.prototype.transfer = function (this: ArrayBuffer, length?: number) {
    transfers++;
    return transfer.call(this, length);
  };
  const text = mixedLines(400).join("");
  try {
    const writer = new PageWriter(path, { pool });
    for (let round = 0; round < 3; round++) { // pages written out, back in the pool, filled again
      for (const line of mixedLines(400)) writer.write(line);
      writer.flush();
    }
    assert.equal(transfers, 0, "no page of the writer's was revoked");
    writer.close();
  } finally {
    ArrayBuffer.prototype.transfer = transfer;
  }
  assert.deepEqual(readFileSync(path), Buffer.from(encoder.encode(text.repeat(3))));
  assert.deepEqual([pool.stats.inUse, pool.stats.free, pool.stats.retired], [0, pool.stats.total, 0]);
  // The same pages handed out again (the last returned go first): their new owner's bytes are what a head writes, and its views are revoked.
  const pages = [0, 1, 2, 3].map(() => pool.acquire());
  const views = pages.map((page, i) => {
    page.bytes.fill(65 + i);
    return page.bytes;
  });
  const out = join(tempDir(), "owners.txt");
  {
    using writer = new PageWriter(out);
    for (const page of pages) writer.write(page.head(0, 3));
  }
  assert.equal(readFileSync(out, "utf8"), "AAABBBCCCDDD");
  pages.forEach((page) => page.release());
  assert.deepEqual(views.map((view) => view.byteLength), [0, 0, 0, 0]);
});

test("strings written while flushAsync lends pages to a pipe arrive whole and in order; close while busy", async () => {
  const [readEnd, writeEnd] = pipe();
  using pool = new PagePool({ pageSize, pages: 0 });
  const writer = new PageWriter(writeEnd, { pool }); // a pipe: filled pages are lent (vmsplice) where possible
  const lines = mixedLines(6000);
  const reading = (async () => {
    const hash = createHash("sha256");
    const buffer = new Uint8Array(256 * 1024);
    let total = 0;
    for (let n; (n = await readvAsync(readEnd, [buffer])) > 0; total += n) hash.update(buffer.subarray(0, n));
    return { total, sha: hash.digest("hex") };
  })();
  let flushes = 0;
  const pending: Promise<number>[] = [];
  lines.forEach((line, i) => {
    writer.write(line);
    if (i % 500 === 0) {
      pending.push(writer.flushAsync()); // more than a pipe holds: later writes land while it waits
      flushes++;
    }
  });
  writer.close(); // busy: completes once the queued flushes settle
  await Promise.all(pending);
  writeEnd.close();
  const expected = encoder.encode(lines.join(""));
  assert.deepEqual(await reading, {
    total: expected.length,
    sha: createHash("sha256").update(expected).digest("hex"),
  });
  assert.ok(flushes > 5);
  readEnd.close();
  assert.equal(pool.stats.inUse, 0);
});

test("write() never flushes a pipe below highWaterMark: a reader on this same thread is never waited for", async () => {
  // A write() that flushed early would block on this pipe (its reader below runs on this thread) or, non-blocking,
  // leave part of the bytes in the pipe: both are caught here (pending counts every byte, the pipe holds none).
  for (const nonBlocking of [true, undefined]) {
    const [readEnd, writeEnd] = pipe(nonBlocking ? { nonBlocking } : {});
    const writer = new PageWriter(writeEnd, { highWaterMark: 64 << 20, lend: false });
    const lines = mixedLines(3000);
    for (const line of lines) writer.write(line);
    writer.write(patternBytes(3 << 20, 7)); // arrays are copied into the writer's pages too
    const expected = Buffer.concat([
      Buffer.from(encoder.encode(lines.join(""))),
      Buffer.from(patternBytes(3 << 20, 7)),
    ]);
    assert.equal(writer.pending.byteLength, expected.length, "nothing was written yet");
    const reading = (async () => {
      const chunks: Uint8Array[] = [];
      for (let n, buffer; (n = await readvAsync(readEnd, [buffer = new Uint8Array(1 << 20)])) > 0;) {
        chunks.push(buffer.subarray(0, n));
      }
      return Buffer.concat(chunks);
    })();
    await writer.flushAsync();
    writer.close();
    writeEnd.close();
    assert.deepEqual(await reading, expected);
    readEnd.close();
  }
});

test("to a regular file, bytes the writer copied go out every 512 KiB (while cached), in order, whatever the target form", () => {
  const lines = mixedLines(4000);
  const expected = Buffer.concat([Buffer.from(encoder.encode(lines.join(""))), Buffer.from(patternBytes(1 << 20, 9))]);
  for (const form of ["path", "handle", "fd"] as const) {
    const path = join(tempDir(), `early-${form}.txt`);
    const handle = form === "path" ? null : openFile(path, "w");
    const writer = new PageWriter(form === "path" ? path : form === "handle" ? handle! : handle!.fd);
    for (const line of lines) writer.write(line);
    writer.write(patternBytes(1 << 20, 9));
    // `pending` waits for the write in flight (the write-behind thread's): on disk after it, in order.
    assert.ok(writer.pending.byteLength < 640 * 1024, `${form}: ${writer.pending.byteLength} bytes still queued`);
    const onDisk = statSync(path).size;
    assert.ok(onDisk >= expected.length - (1 << 20), `${form}: ${onDisk} of ${expected.length} bytes out before flush`);
    writer.close();
    handle?.close();
    assert.deepEqual(readFileSync(path), expected, form);
  }
  // A smaller highWaterMark still rules.
  const path = join(tempDir(), "small-mark.txt");
  const writer = new PageWriter(path, { highWaterMark: 100_000 });
  for (const line of lines.slice(0, 500)) writer.write(line);
  assert.ok(writer.pending.byteLength < 100_000 + 65536, `${writer.pending.byteLength} queued`);
  writer.close();
  assert.deepEqual(readFileSync(path), Buffer.from(encoder.encode(lines.slice(0, 500).join(""))));
});

test("a write that finds no page takes nothing and throws, or takes all: retrying duplicates nothing", () => {
  const path = join(tempDir(), "atomic.txt");
  const pool = new PagePool({ pageSize, pages: 0, maxPages: 16 });
  const writer = new PageWriter(path, { pool });
  writer.write("start\n");
  assert.equal(writer.pending.byteLength, 6); // encoded: the writer holds one page
  const held = [];
  while (pool.stats.total < 16 || pool.stats.free > 0) held.push(pool.acquire()); // every other page
  const big = patternBytes(3 * pageSize, 11);
  assert.throws(() => writer.write(big), (e) => code(e) === "ERR_POOL_EXHAUSTED");
  assert.equal(writer.pending.byteLength, 6, "none of the array was taken");
  const text = "a".repeat(40_000); // more than the pages left: kept in the batch (a full one), not thrown
  writer.write(text);
  assert.throws(() => writer.write("b"), (e) => code(e) === "ERR_POOL_EXHAUSTED"); // the batch is stuck: not taken
  assert.throws(() => writer.flush(), (e) => code(e) === "ERR_POOL_EXHAUSTED");
  held.forEach((page) => page.release());
  writer.write(big); // the retry
  writer.write("c");
  writer.close();
  assert.deepEqual(
    readFileSync(path),
    Buffer.concat([Buffer.from("start\n" + text), Buffer.from(big), Buffer.from("c")]),
  );
  assert.equal(pool.stats.inUse, 0);
  pool.close();
});

test("no method user code can reach on a page keeps its views alive past release (the writer's private mark is not one)", () => {
  // In a child: calling pageio's internal methods from outside is what an attacker would do, not a state this
  // suite's other tests should share.
  const run = runScript(
    `import { PagePool, pageSize } from "${root}mod.ts";
     const pool = new PagePool({ pageSize });
     const proto = Object.getPrototypeOf(pool.acquire());
     // The symbol-keyed ones: pageio's internal methods, which user code finds all the same (the string-keyed
     // ones are the documented API).
     const keys = Object.getOwnPropertySymbols(proto).filter((key) =>
       typeof Object.getOwnPropertyDescriptor(proto, key).value === "function");
     const alive = [];
     for (const key of keys) {
       const page = pool.acquire();
       const view = page.bytes;
       view.fill(1);
       try { proto[key].call(page); } catch { /* refused: fine */ }
       try { while (page.refs > 0) page.release(); } catch { /* released by the call: fine */ }
       if (view.byteLength !== 0) alive.push(String(key));
     }
     console.log(JSON.stringify({ keys: keys.length, alive }));`,
  );
  assert.equal(run.signal, null, run.stderr);
  assert.equal(run.status, 0, run.stderr);
  const { keys, alive } = JSON.parse(run.stdout.trim());
  assert.ok(keys > 0);
  assert.deepEqual(alive, [], "these methods left a view of a page that went back to its pool");
});

test("a regular file's flushes every 512 KiB are written by the library's own thread, in order", {
  skip: !haveStrace && "strace is not installed",
}, () => {
  const dir = tempDir();
  const path = join(dir, "behind.txt");
  const log = join(dir, "strace.log");
  const lines = mixedLines(6000);
  const run = runScript(
    `
    import process from "node:process";
    import { PageWriter } from "${root}mod.ts";
    const pieces = ["plain ascii", "é ü ß", "中文字符", "🙂 emoji 🚀", "lone \\ud800 surrogate", "x".repeat(4097)];
    const writer = new PageWriter(${JSON.stringify(path)});
    for (let i = 0; i < 6000; i++) writer.write(i + " " + pieces[i % pieces.length] + "\\n");
    writer.close();
    console.log(JSON.stringify({ pid: process.pid }));
  `,
    { prefix: ["strace", "-f", "-qq", "-e", "trace=writev", "-o", log] },
  );
  assert.equal(run.status, 0, run.stderr);
  const { pid } = JSON.parse(run.stdout.trim().split("\n").pop()!);
  assert.deepEqual(readFileSync(path), Buffer.from(encoder.encode(lines.join(""))));
  const calls = readFileSync(log, "utf8").split("\n").filter((l) => / writev\(/.test(l) && !/ writev\([12],/.test(l));
  const byThread = calls.filter((l) => Number(l.split(" ")[0]) !== pid);
  assert.ok(byThread.length >= 4, `${byThread.length} of ${calls.length} writev calls on another thread`);
  // Nothing outside pageio can hand a brigade to that thread (its heads could be released while it reads them).
  const names = Object.getOwnPropertyNames(Brigade.prototype);
  assert.deepEqual(names.filter((name) => /behind|take|consume/i.test(name)), []);
});

test("close and the caller's own close while a write-behind job is in flight: the job's bytes land, in order", () => {
  const lines = mixedLines(3000);
  const bytes = Buffer.from(encoder.encode(lines.join("")));
  assert.ok(bytes.length > 1 << 20);
  // The writer's close waits for the job, then writes the rest.
  const path = join(tempDir(), "close-behind.txt");
  const writer = new PageWriter(path);
  for (const line of lines) writer.write(line);
  writer.close();
  assert.deepEqual(readFileSync(path), bytes);
  // The caller closes the descriptor under the writer: the job in flight writes through a duplicate of its own,
  // so what it took still lands (and nothing else: the number may name another file by now); the rest fails.
  const other = join(tempDir(), "closed-under.txt");
  const handle = openFile(other, "w");
  const under = new PageWriter(handle);
  let taken = 0;
  for (const line of lines) {
    under.write(line);
    taken += encoder.encode(line).length;
    if (taken > 600 * 1024) break;
  }
  handle.close();
  assert.throws(() => under.close(), (e) => code(e) === "ERR_CLOSED");
  const landed = readFileSync(other);
  assert.ok(landed.length >= 512 * 1024, `${landed.length} bytes landed`);
  assert.deepEqual(landed, bytes.subarray(0, landed.length));
});

test("a full filesystem under write-behind: every byte counted once, a write that throws took nothing", {
  skip: noTmpfs,
}, async () => {
  await withTmpfs(1 << 20, (dir) => {
    const path = join(dir, "full.txt");
    const lines = mixedLines(4000);
    const writer = new PageWriter(path);
    const taken: string[] = [];
    let thrown: unknown = null;
    for (let i = 0; thrown === null && i < 100_000; i++) {
      const line = lines[i % lines.length];
      try {
        writer.write(line);
        taken.push(line);
      } catch (error) {
        thrown = error;
      }
    }
    assert.equal(code(thrown), "ENOSPC");
    const all = Buffer.from(encoder.encode(taken.join("")));
    const onDisk = readFileSync(path);
    assert.deepEqual(onDisk, all.subarray(0, onDisk.length), "what landed is what was taken, in order, once");
    assert.equal(writer.bytesWritten, onDisk.length);
    assert.equal(writer.pending.byteLength, all.length - onDisk.length, "the rest is still queued");
    assert.throws(() => writer.close(), (e) => code(e) === "ENOSPC");
    assert.deepEqual(readFileSync(path), onDisk, "a failed close wrote nothing twice");
  });
});

test("a write whose flush fails (512 KiB of strings to a file, highWaterMark of arrays) takes nothing of its chunk", () => {
  // A regular file the writer cannot write (opened read-only): the flush every 512 KiB fails with EBADF.
  const file = openFile(tempFile("", "readonly.txt"), "r");
  const line = "é🙂 a line that straddles pages and flushes\n";
  const strings = new PageWriter(file);
  let thrown: unknown = null;
  for (let i = 0; i < 20_000 && thrown === null; i++) {
    const before = strings.pending.byteLength;
    try {
      strings.write(line);
    } catch (error) {
      thrown = error;
      assert.equal(strings.pending.byteLength, before, "a write that threw queued its string");
    }
  }
  assert.equal(code(thrown), "EBADF");
  assert.throws(() => strings.close(), (e) => code(e) === "EBADF");
  file.close();

  const arrays = new PageWriter("/dev/full", { highWaterMark: 1000 });
  arrays.write(new Uint8Array(200_000)); // taken: its own flush fails, the next write or close reports it
  assert.throws(() => arrays.write(new Uint8Array(700)), (e) => code(e) === "ENOSPC");
  assert.equal(arrays.pending.byteLength, 200_000, "a write that threw queued its array");
  assert.throws(() => arrays.close(), (e) => code(e) === "ENOSPC");
});

test("a writeAsync whose flush fails takes nothing of its chunk; one whose chunk was taken resolves", async () => {
  const file = openFile(tempFile("", "readonly-async.txt"), "r");
  const line = "é🙂 a line that straddles pages and flushes\n";
  const strings = new PageWriter(file);
  let thrown: unknown = null;
  for (let i = 0; i < 20_000 && thrown === null; i++) {
    const before = strings.pending.byteLength;
    try {
      await strings.writeAsync(line);
    } catch (error) {
      thrown = error;
      assert.equal(strings.pending.byteLength, before, "a writeAsync that rejected queued its string");
    }
  }
  assert.equal(code(thrown), "EBADF", "the failed flush was never reported");
  await assert.rejects(strings.flushAsync(), (e) => code(e) === "EBADF");
  assert.throws(() => strings.close(), (e) => code(e) === "EBADF");
  file.close();

  const arrays = new PageWriter("/dev/full", { highWaterMark: 1000 });
  await arrays.writeAsync(new Uint8Array(200_000)); // taken: its flush fails, the next call reports it
  await assert.rejects(arrays.writeAsync(new Uint8Array(700)), (e) => code(e) === "ENOSPC");
  assert.equal(arrays.pending.byteLength, 200_000, "a writeAsync that rejected queued its array");
  assert.throws(() => arrays.close(), (e) => code(e) === "ENOSPC");
});

test("writes to a full non-blocking pipe above highWaterMark try one writev each, not two (strace)", {
  skip: !haveStrace,
}, () => {
  const dir = tempDir();
  const trace = join(dir, "trace");
  const child = join(dir, "child.ts");
  writeFileSync(
    child,
    `import { PageWriter, pipe } from "${root}mod.ts";
     const [r, w] = pipe({ nonBlocking: true });
     const writer = new PageWriter(w, { highWaterMark: 100_000, lend: false });
     for (let i = 0; i < 1000; i++) writer.write(new Uint8Array(1000)); // nobody reads: the pipe fills
     r.close();
     try { writer.close(); } catch { /* EPIPE: the reader is gone */ }
     w.close();`,
  );
  const argv = isDeno ? [process.execPath, "run", "-A", child] : [process.execPath, child];
  const run = spawnSync("strace", ["-f", "-qq", "-e", "trace=writev", "-o", trace, ...argv], {
    encoding: "utf8",
    timeout: 60_000,
  });
  assert.equal(run.status, 0, run.stderr);
  const full = readFileSync(trace, "utf8").split("\n").filter((l) => l.includes("EAGAIN")).length;
  // The pipe fills at 64 KiB, the queue reaches 100 000 bytes ~100 writes in: one try per write after that.
  assert.ok(full > 700 && full <= 1000, `${full} writev calls met a full pipe for 1000 writes`);
});
