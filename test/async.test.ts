// The Promise forms: the same bytes as the blocking calls, and an event loop that keeps running while a slow
// pipe drains (a 10 ms timer must keep firing on time).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  Brigade,
  connectAsync,
  listen,
  openFile,
  type PageIoError,
  PagePool,
  PageReader,
  PageWriter,
  pipe,
  readv,
  readvAsync,
  writevAsync,
} from "../mod.ts";
import { fifo, patternBytes, sha256, startScript, tempDir, tempFile, whenReaderOpens } from "./helpers.ts";

const code = (e: unknown) => (e as PageIoError).code;

/**
 * A child's side of a handshake that proves the event loop runs while this process waits on the child: half way
 * through, the child stops until `go` exists, which only a timer here creates. A wait that held the thread
 * would never let the timer run, and the child gives up after 30 s with status 3.
 */
const awaitGo = (go: string) => `
  const until = Date.now() + 30_000;
  while (!existsSync(${JSON.stringify(go)})) {
    if (Date.now() > until) process.exit(3);
    Atomics.wait(pause, 0, 0, 5);
  }`;

/** Runs `work` while a 10 ms interval measures the longest gap between its ticks. */
async function longestTimerGap(work: () => Promise<unknown>): Promise<number> {
  let last = performance.now();
  let longest = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
  }, 10);
  try {
    await work();
  } finally {
    clearInterval(timer);
  }
  return longest;
}

test("writevAsync and readvAsync move the same bytes as their blocking twins", async () => {
  using pool = new PagePool();
  const page = pool.acquire();
  page.bytes.set(patternBytes(pool.pageSize, 61));
  const path = join(tempDir(), "async");
  {
    using out = openFile(path, "w");
    const small = new TextEncoder().encode("small");
    const large = patternBytes(100_000, 62);
    assert.equal(await writevAsync(out, [page.head(), small, large]), pool.pageSize + 5 + 100_000);
  }
  const written = readFileSync(path);
  assert.equal(sha256(written.subarray(0, pool.pageSize)), sha256(page.bytes));
  using back = openFile(path);
  const first = new Uint8Array(10); // staged, copied back
  const target = pool.acquire();
  assert.equal(await readvAsync(back, [first, target]), 10 + pool.pageSize);
  assert.deepEqual(Buffer.from(first), written.subarray(0, 10));
  assert.deepEqual(Buffer.from(target.bytes), written.subarray(10, 10 + pool.pageSize));
  target.release();
  page.release();
  await assert.rejects(writevAsync(999_999, [new Uint8Array(1)]), (e) => code(e) === "EBADF");
});

test("100 MiB through a slow pipe to another process: the event loop never stalls, every byte arrives", async () => {
  const pipe = fifo();
  const received = join(tempDir(), "received");
  const go = join(tempDir(), "go");
  const reader = startScript(`
    import { existsSync, openSync, readSync, writeSync, closeSync } from "node:fs";
    import process from "node:process";
    const fd = openSync(${JSON.stringify(pipe)}, "r"), out = openSync(${JSON.stringify(received)}, "w");
    const buf = new Uint8Array(1 << 20);
    const pause = new Int32Array(new SharedArrayBuffer(4));
    let total = 0, waited = false;
    for (let n; (n = readSync(fd, buf)) > 0;) {
      writeSync(out, buf.subarray(0, n));
      Atomics.wait(pause, 0, 0, 1);
      if ((total += n) >= 50 << 20 && !waited) { waited = true; ${awaitGo(go)} }
    }
    closeSync(out);
  `);
  using pool = new PagePool({ pageSize: 64 * 1024, pages: 0 });
  const pages = Array.from({ length: 64 }, (_, i) => {
    const page = pool.acquire();
    page.bytes.set(patternBytes(page.bytes.length, 100 + i));
    return page;
  });
  const rounds = 25; // 25 × 64 × 64 KiB = 100 MiB
  const writer = await whenReaderOpens(() => new PageWriter(pipe));
  const timer = setTimeout(() => writeFileSync(go, ""), 50); // runs only if the writes below leave the loop free
  const gap = await longestTimerGap(async () => {
    for (let r = 0; r < rounds; r++) for (const page of pages) await writer.writeAsync(page.head());
    await writer.flushAsync();
  });
  clearTimeout(timer);
  writer.close();
  assert.equal((await reader.exited).status, 0);
  assert.equal(writer.bytesWritten, rounds * 64 * 64 * 1024);
  const expected = Buffer.concat(Array.from({ length: rounds }, () => pages.map((p) => p.bytes)).flat());
  assert.equal(sha256(readFileSync(received)), sha256(expected));
  // The handshake proved the loop ran; this bounds how long it was ever held. A preemption or a collection on
  // a loaded machine takes a few hundred ms of its own, so only a whole second fails.
  assert.ok(gap < 1000, `the 10 ms timer waited ${gap.toFixed(0)} ms at worst`);
  pages.forEach((p) => p.release());
  assert.equal(pool.stats.inUse, 0);
});

test("readAsync waits on a slowly fed pipe without holding up the event loop", async () => {
  const pipe = fifo();
  const data = patternBytes(2_000_000, 63);
  const source = tempFile(data);
  const go = join(tempDir(), "go");
  const writer = startScript(`
    import { existsSync, openSync, readFileSync, writeSync, closeSync } from "node:fs";
    import process from "node:process";
    const fd = openSync(${JSON.stringify(pipe)}, "w"), data = readFileSync(${JSON.stringify(source)});
    const pause = new Int32Array(new SharedArrayBuffer(4));
    for (let at = 0; at < data.length; at += 100_000) {
      writeSync(fd, data.subarray(at, at + 100_000));
      Atomics.wait(pause, 0, 0, 20);
      if (at === 1_000_000) { ${awaitGo(go)} }
    }
    closeSync(fd);
  `);
  const parts: Uint8Array[] = [];
  const timer = setTimeout(() => writeFileSync(go, ""), 50); // runs only if the reads below leave the loop free
  const gap = await longestTimerGap(async () => {
    using reader = new PageReader(pipe);
    for await (const head of reader) {
      parts.push(head.bytes.slice());
      head.release();
    }
  });
  clearTimeout(timer);
  assert.equal((await writer.exited).status, 0);
  assert.equal(sha256(Buffer.concat(parts)), sha256(data));
  assert.ok(gap < 1000, `the 10 ms timer waited ${gap.toFixed(0)} ms at worst`); // as above: only gross stalls
});

test("while an asynchronous flush runs, append works and the front of the queue is guarded", async () => {
  using pool = new PagePool();
  const page = pool.acquire();
  const brigade = new Brigade().append(page.head(0, 100));
  using out = openFile(join(tempDir(), "busy"), "w");
  const flushing = brigade.flushAsync(out); // a file is always ready: its write is made at once
  brigade.append(page.head(100, 50)); // queued behind it, whatever the flush has done by now
  assert.throws(() => brigade.prepend(new Uint8Array(1)), (e) => code(e) === "ERR_BUSY");
  assert.throws(() => brigade.flush(out), (e) => code(e) === "ERR_BUSY");
  assert.throws(() => brigade.release(), (e) => code(e) === "ERR_BUSY");
  await assert.rejects(brigade.flushAsync(out), (e) => code(e) === "ERR_BUSY");
  const written = await flushing;
  assert.equal(written + brigade.byteLength, 150);
  assert.equal(written + await brigade.flushAsync(out), 150);
  assert.equal(brigade.count, 0);
  page.release();
  assert.equal(pool.stats.inUse, 0);
});

/** Reads `fd`'s pipe in small pieces, a pause now and then, so that writers keep finding it full. */
async function drainSlowly(readEnd: ReturnType<typeof pipe>[0], total: number): Promise<Uint8Array> {
  const out = new Uint8Array(total);
  for (let at = 0, reads = 0; at < total; reads++) {
    at += await readvAsync(readEnd, [out.subarray(at, Math.min(total, at + 4096))]);
    if (reads % 16 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
  }
  return out;
}

/** The runs of equal bytes in `bytes`: [byte, length] each. */
function runs(bytes: Uint8Array): [number, number][] {
  const found: [number, number][] = [];
  for (const byte of bytes) {
    if (found.length > 0 && found[found.length - 1][0] === byte) found[found.length - 1][1]++;
    else found.push([byte, 1]);
  }
  return found;
}

test("concurrent async writes to one pipe, by any form, go out whole and in call order (they interleaved)", async () => {
  const [readEnd, writeEnd] = pipe();
  using pool = new PagePool();
  const size = 150_000, count = 24;
  const writes: Promise<number>[] = [];
  const pages = [];
  for (let i = 0; i < count; i++) {
    const block = new Uint8Array(size).fill(i + 1);
    if (i % 3 === 0) writes.push(writevAsync(writeEnd, [block.subarray(0, 1000), block.subarray(1000)]));
    else if (i % 3 === 1) writes.push(new Brigade().append(block).flushAsync(writeEnd));
    else {
      const page = pool.acquire();
      pages.push(page);
      page.bytes.fill(i + 1);
      const brigade = new Brigade().append(block.subarray(0, size - page.bytes.length)).append(page.head());
      writes.push(brigade.flushAsync(writeEnd));
    }
  }
  // Room made while the first waits: a later write tried at once took it, its bytes inside the first's.
  const early = new Uint8Array(8192);
  assert.equal(readv(readEnd, [early]), early.length);
  writes.push(writevAsync(writeEnd, [new Uint8Array(size).fill(count + 1)]));
  const out = new Uint8Array(size * (count + 1));
  out.set(early);
  out.set(await drainSlowly(readEnd, out.length - early.length), early.length);
  assert.deepEqual(await Promise.all(writes), new Array(count + 1).fill(size));
  assert.deepEqual(runs(out), Array.from({ length: count + 1 }, (_, i) => [i + 1, size]));
  for (const page of pages) page.release();
  readEnd.close();
  writeEnd.close();
});

test("an async write aborted or failing while queued lets the next go; close ends each queued one by itself", async () => {
  const [readEnd, writeEnd] = pipe();
  const size = 300_000;
  const block = (byte: number) => new Uint8Array(size).fill(byte);
  const controller = new AbortController();
  const first = writevAsync(writeEnd, [block(1)]); // fills the pipe and waits
  const early = new Uint8Array(8192);
  readv(readEnd, [early]);
  const aborted = writevAsync(writeEnd, [block(2)], { signal: controller.signal });
  const third = writevAsync(writeEnd, [block(3)]);
  controller.abort();
  await assert.rejects(aborted, (e) => code(e) === "ABORT_ERR" && (e as PageIoError).bytesTransferred === 0);
  const out = new Uint8Array(2 * size);
  out.set(early);
  out.set(await drainSlowly(readEnd, out.length - early.length), early.length);
  assert.deepEqual([await first, await third], [size, size]);
  assert.deepEqual(runs(out), [[1, size], [3, size]]);

  const waiting = writevAsync(writeEnd, [block(4)]);
  const queued = [writevAsync(writeEnd, [block(5)]), new Brigade().append(block(6)).flushAsync(writeEnd)];
  writeEnd.close();
  const errors = await Promise.all([waiting, ...queued].map((write) => write.then(() => null, (e) => e)));
  assert.deepEqual(errors.map(code), ["ERR_CLOSED", "ERR_CLOSED", "ERR_CLOSED"]);
  assert.equal(new Set(errors).size, 3); // each its own error, with its own bytesTransferred
  assert.deepEqual(errors.slice(1).map((e) => (e as PageIoError).bytesTransferred), [0, 0]);
  readEnd.close();
});

test("what was made for a plain fd number never reaches the file pageio opens next under that number", async () => {
  // Queued writes, a writer's second flush and a reader's second read, all made while the number was a pipe's:
  // the pipe's handle closes and the number is reopened at once, on a file.
  const dir = tempDir();
  const [readEnd, writeEnd] = pipe();
  const out = writeEnd.fd;
  const waiting = writevAsync(out, [new Uint8Array(1 << 20).fill(1)]); // fills the pipe and waits
  const queued = writevAsync(out, [new TextEncoder().encode("queued write")]);
  const writer = new PageWriter(out);
  writer.write(new TextEncoder().encode("writer's bytes"));
  const flushing = writer.flushAsync();
  const [sourceEnd, feedEnd] = pipe();
  const source = sourceEnd.fd;
  const reader = new PageReader(source);
  const reads = [reader.readAsync(), reader.readAsync()]; // the pipe is empty: both wait
  await new Promise((resolve) => setTimeout(resolve, 10));
  writeEnd.close();
  sourceEnd.close();
  writeFileSync(join(dir, "other"), "the other file's bytes");
  const others = [openFile(join(dir, "other"), "r+"), openFile(join(dir, "other"), "r+")];
  assert.deepEqual(others.map((f) => f.fd).sort(), [out, source].sort()); // both numbers name it now
  const outcomes = await Promise.all([waiting, queued, flushing, ...reads].map((p) => p.then(() => "ok", code)));
  assert.deepEqual(outcomes, ["ERR_CLOSED", "ERR_CLOSED", "ERR_CLOSED", "ERR_CLOSED", "ERR_CLOSED"]);
  assert.throws(() => writer.flush(), (e) => code(e) === "ERR_CLOSED");
  assert.throws(() => reader.read(), (e) => code(e) === "ERR_CLOSED");
  assert.equal(readFileSync(join(dir, "other"), "utf8"), "the other file's bytes"); // no pipe's bytes in it
  assert.throws(() => writer.close(), (e) => code(e) === "ERR_CLOSED"); // what it held is released all the same
  reader.close();
  for (const handle of [...others, readEnd, feedEnd]) handle.close();
});

test("a socket's writeAsync and writevAsync on it share one queue", async () => {
  // A unix socket, whose buffers hold less than one of these writes: loopback TCP took all three at once, so
  // none was ever queued (the test passed with no queue at all).
  using listener = listen({ path: join(tempDir(), "queue.sock") });
  const [a, b] = await Promise.all([connectAsync(listener.addr), listener.acceptAsync()]);
  const size = 500_000;
  const writes = [a.writeAsync([new Uint8Array(size).fill(1)])];
  const out = new Uint8Array(3 * size);
  let at = b.read(out.subarray(0, 65536)) ?? 0; // room while the first waits
  writes.push(writevAsync(a, [new Uint8Array(size).fill(2)]), a.writeAsync([new Uint8Array(size).fill(3)]));
  while (at < out.length) at += await b.readAsync(out.subarray(at, Math.min(out.length, at + 8192)));
  assert.deepEqual(await Promise.all(writes), [size, size, size]);
  assert.deepEqual(runs(out), [[1, size], [2, size], [3, size]]);
  a.close();
  b.close();
});

test("a writevAsync queued behind another takes its chunks as they are when its turn comes: a head released meanwhile is ERR_RELEASED, not its page's next owner's bytes", async () => {
  const [readEnd, writeEnd] = pipe({ nonBlocking: true });
  using pool = new PagePool({ pages: 1, maxPages: 1 });
  const size = 300_000;
  const first = writevAsync(writeEnd, [new Uint8Array(size).fill(1)]); // fills the pipe and waits
  const page = pool.acquire();
  page.bytes.fill(2);
  const head = page.head();
  page.release();
  const queued = writevAsync(writeEnd, [head]).then(() => null, (e) => e);
  head.release(); // against the contract, while it waits its turn: the page goes back to the pool
  const next = pool.acquire(); // the pool's one page, now another's
  next.bytes.fill(3);
  const out = new Uint8Array(size);
  for (let at = 0; at < size;) at += await readvAsync(readEnd, [out.subarray(at)]);
  assert.equal(await first, size);
  assert.equal(code(await queued), "ERR_RELEASED");
  assert.throws(() => readv(readEnd, [new Uint8Array(1)]), (e) => code(e) === "EAGAIN"); // nothing more came
  assert.ok(out.every((byte) => byte === 1));
  next.release();
  readEnd.close();
  writeEnd.close();
});

test("20 000 asynchronous completions all settle, in order, with nothing leaked", async () => {
  using out = openFile("/dev/null", "w");
  const small = new Uint8Array(16);
  const results = await Promise.all(Array.from({ length: 20_000 }, () => writevAsync(out, [small])));
  assert.ok(results.every((n: number) => n === 16));
  for (let i = 0; i < 2_000; i++) assert.equal(await writevAsync(out, [small]), 16);
});
