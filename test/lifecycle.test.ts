// Async lifecycles: a blocked writer and the read that drains it in one process, aborts in the middle of a big
// transfer, close and cancel while an operation is in flight, concurrent calls, no starvation, a live event
// loop under every waiting form, and the fallbacks forced.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  Brigade,
  connect,
  listen,
  type PageIoError,
  PagePool,
  PageReader,
  PageWriter,
  pipe,
  readvAsync,
  SharedRing,
  type Socket,
  writevAsync,
} from "../mod.ts";
import { fdsOn, fifo, patternBytes, root, runScript, sha256, tempDir, until } from "./helpers.ts";
import { join } from "node:path";

const code = (e: unknown) => (e as PageIoError).code;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Reads `readEnd` asynchronously until end of input, hashing what arrives; `slow` pauses between reads. */
async function drain(readEnd: Parameters<typeof readvAsync>[0], onBytes?: (total: number) => void, slow = 0) {
  const hash = createHash("sha256");
  const buffer = new Uint8Array(256 * 1024);
  let total = 0;
  for (let n; (n = await readvAsync(readEnd, [buffer])) > 0;) {
    hash.update(buffer.subarray(0, n));
    total += n;
    onBytes?.(total);
    if (slow) await sleep(slow);
  }
  return { total, sha: hash.digest("hex") };
}

/**
 * Runs `work` while a 10 ms interval counts its ticks and measures the longest gap between them; `work` gets the
 * count so far, to wait for ticks rather than for a time (a loaded machine runs late timers).
 */
async function withTimer<T>(
  work: (ticks: () => number) => Promise<T>,
): Promise<{ result: T; ticks: number; gap: number }> {
  let last = performance.now(), gap = 0, ticks = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    gap = Math.max(gap, now - last);
    last = now;
    ticks++;
  }, 10);
  try {
    const result = await work(() => ticks);
    return { result, ticks, gap };
  } finally {
    clearInterval(timer);
  }
}

test("a blocked writer and the read that drains it, in one process, with a live event loop", async () => {
  const [readEnd, writeEnd] = pipe();
  const data = patternBytes(8 << 20, 201);
  const { result, ticks } = await withTimer(async () => {
    const reading = drain(readEnd, undefined, 1);
    const written = await writevAsync(writeEnd, [data]); // 8 MiB into a 64 KiB pipe: waits on the reader
    writeEnd.close();
    return { written, read: await reading };
  });
  readEnd.close();
  assert.equal(result.written, data.length);
  assert.deepEqual(result.read, { total: data.length, sha: sha256(data) });
  assert.ok(ticks >= 3, `the 10 ms timer ticked ${ticks} times`);
});

test("abort in the middle of a 100 MiB transfer: bytes counted, nothing lost or duplicated", async () => {
  const [readEnd, writeEnd] = pipe({ size: 1 << 20 });
  const data = patternBytes(100 << 20, 202);
  const controller = new AbortController();
  const reading = drain(readEnd, (total) => {
    if (total >= 30 << 20) controller.abort(new Error("enough"));
  });
  let sent = 0;
  await assert.rejects(writevAsync(writeEnd, [data], { signal: controller.signal }), (e) => {
    assert.equal(code(e), "ABORT_ERR");
    assert.equal((e as { cause?: Error }).cause?.message, "enough");
    sent = (e as PageIoError).bytesTransferred!;
    return sent >= 30 << 20 && sent < data.length;
  });
  // The rest goes after: the reader must see every byte exactly once.
  assert.equal(await writevAsync(writeEnd, [data.subarray(sent)]), data.length - sent);
  writeEnd.close();
  assert.deepEqual(await reading, { total: data.length, sha: sha256(data) });
  readEnd.close();
});

test("abort of a PageWriter flush: what was written is counted, the rest stays queued and goes later", async () => {
  const [readEnd, writeEnd] = pipe();
  using pool = new PagePool({ pageSize: 64 * 1024, pages: 0 });
  const pages = Array.from({ length: 64 }, (_, i) => {
    const page = pool.acquire();
    page.bytes.set(patternBytes(page.bytes.length, 300 + i));
    return page;
  });
  const expected = createHash("sha256");
  const writer = new PageWriter(writeEnd, { highWaterMark: 1 << 30, lend: false });
  for (let round = 0; round < 4; round++) {
    for (const page of pages) {
      writer.write(page.head());
      expected.update(page.bytes);
    }
  }
  const total = 4 * 64 * 64 * 1024;
  const controller = new AbortController();
  const reading = drain(readEnd, (got) => {
    if (got >= total / 3) controller.abort();
  }, 0);
  await assert.rejects(writer.flushAsync({ signal: controller.signal }), (e) => code(e) === "ABORT_ERR");
  assert.ok(writer.bytesWritten > 0 && writer.bytesWritten < total, String(writer.bytesWritten));
  assert.equal(writer.bytesWritten + writer.pending.byteLength, total);
  await writer.flushAsync();
  writer.close();
  writeEnd.close();
  assert.deepEqual(await reading, { total, sha: expected.digest("hex") });
  readEnd.close();
  pages.forEach((page) => page.release());
  assert.equal(pool.stats.inUse, 0);
});

test("close() during flushAsync completes once the flush settles: the fd is closed, the reader sees the end", async () => {
  const path = fifo();
  const reader = new PageReader(path); // its end opens first, so the writer's open does not fail
  const onFifo = () => fdsOn(path);
  const writer = new PageWriter(path, { highWaterMark: 1 << 30 });
  assert.equal(onFifo(), 2);
  const data = patternBytes(4 << 20, 203);
  writer.write(data.subarray(0, 2 << 20));
  const flushing = writer.flushAsync(); // more than the pipe holds: it waits on the reader
  await writer.writeAsync(data.subarray(2 << 20)); // queued behind, taken by the same or the next flush
  assert.doesNotThrow(() => writer.close());
  assert.throws(() => writer.write(new Uint8Array(1)), (e) => code(e) === "ERR_CLOSED");
  await assert.rejects(writer.writeAsync(new Uint8Array(1)), (e) => code(e) === "ERR_CLOSED");
  const hash = createHash("sha256");
  let total = 0;
  for await (const head of reader) { // ends only when the writer's fd is closed
    hash.update(head.bytes);
    total += head.byteLength;
    head.release();
  }
  await flushing;
  assert.equal(total, data.length);
  assert.equal(hash.digest("hex"), sha256(data));
  assert.equal(writer.bytesWritten, data.length);
  // The reader opened its end itself and every head was released: the end of input closed it too.
  assert.equal(onFifo(), 0, "the writer's descriptor is closed, and the reader's");
  reader.close();
});

test("writeAsync while another is pending queues: every chunk goes once, none is released twice", async () => {
  const [readEnd, writeEnd] = pipe();
  using pool = new PagePool({ pageSize: 64 * 1024, pages: 0 });
  const writer = new PageWriter(writeEnd, { highWaterMark: 64 * 1024, lend: false });
  const expected = createHash("sha256");
  const pending: Promise<void>[] = [];
  for (let i = 0; i < 32; i++) { // each fills the high-water mark: every call starts or queues a flush
    const page = pool.acquire();
    page.bytes.set(patternBytes(page.bytes.length, 400 + i));
    expected.update(page.bytes);
    pending.push(writer.writeAsync(page.head()));
    page.release();
  }
  const reading = drain(readEnd);
  await Promise.all(pending);
  await writer.flushAsync();
  writer.close();
  writeEnd.close();
  assert.deepEqual(await reading, { total: 32 * 64 * 1024, sha: expected.digest("hex") });
  readEnd.close();
  assert.equal(pool.stats.inUse, 0);
});

test("cancelling readable on a pipe waits for its queued read; the fd number's next owner keeps its bytes", async () => {
  const [readEnd, writeEnd] = pipe();
  const reader = new PageReader(readEnd);
  const stream = reader.readable.getReader();
  const pulled = stream.read(); // nothing in the pipe: the pull waits
  await sleep(10);
  await stream.cancel();
  assert.deepEqual(await pulled, { done: true, value: undefined });
  const number = readEnd.fd;
  readEnd.close();
  writeEnd.close();
  const [next, nextWrite] = pipe(); // most likely the same numbers again
  try {
    const sent = new TextEncoder().encode("for the new owner");
    await writevAsync(nextWrite, [sent]);
    await sleep(20); // a stale read would take them now
    const back = new Uint8Array(64);
    const n = await readvAsync(next, [back]);
    assert.equal(new TextDecoder().decode(back.subarray(0, n)), "for the new owner", `fd ${number} reused`);
  } finally {
    next.close();
    nextWrite.close();
  }
});

test("PageReader.close() during readAsync ends the wait with ERR_CLOSED and closes what it owns", async () => {
  const path = fifo();
  const reader = new PageReader(path);
  assert.equal(fdsOn(path), 1);
  const reading = reader.readAsync();
  await sleep(10);
  reader.close();
  await assert.rejects(reading, (e) => code(e) === "ERR_CLOSED");
  // The descriptor goes once the read's wait off the JS thread has returned, which a loaded machine may delay.
  await until(() => fdsOn(path) === 0);
  assert.equal(fdsOn(path), 0);
  await assert.rejects(reader.readAsync(), (e) => code(e) === "ERR_CLOSED");
});

test("a PageReader.readAsync that rejects and is handled leaves no unhandled rejection behind", () => {
  // Run in a child: an unhandled rejection ends the process (Deno at once, Bun at exit).
  const run = runScript(`
    import { PageReader, socketPair } from "${root}mod.ts";
    const [a, b] = socketPair();
    const reader = new PageReader(b);
    const codes = [];
    try { await reader.readAsync({ signal: AbortSignal.abort() }); } catch (e) { codes.push(e.code); }
    const pending = reader.readAsync();
    reader.close();
    try { await pending; } catch (e) { codes.push(e.code); }
    await new Promise((resolve) => setTimeout(resolve, 50));
    a.close();
    console.log(JSON.stringify(codes));
  `);
  assert.equal(run.signal, null, run.stderr);
  assert.equal(run.status, 0, run.stderr);
  assert.deepEqual(JSON.parse(run.stdout.trim()), ["ABORT_ERR", "ERR_CLOSED"]);
});

test("any number of blocked calls on blocking pipes never keeps out the one that would unblock them", async () => {
  const pipes = Array.from({ length: 12 }, () => pipe({ nonBlocking: false }));
  try {
    const reads = pipes.map(([r]) => readvAsync(r, [new Uint8Array(8)]));
    await sleep(20);
    // A 13th call, a write, unblocks the first read.
    assert.equal(await writevAsync(pipes[0][1], [new Uint8Array([1, 2, 3])]), 3);
    assert.equal(await reads[0], 3);
    for (const [, w] of pipes.slice(1)) await writevAsync(w, [new Uint8Array(1)]);
    assert.deepEqual(await Promise.all(reads.slice(1)), new Array(11).fill(1));
  } finally {
    for (const [r, w] of pipes) {
      r.close();
      w.close();
    }
  }
});

test("a 10 ms timer keeps firing under every waiting form", async () => {
  const [r1, w1] = pipe();
  const [r2, w2] = pipe();
  const [r3, w3] = pipe({ nonBlocking: false });
  using producer = SharedRing.create({ slots: 2, slotSize: 4096 });
  using consumer = SharedRing.open(producer.path);
  const reader = new PageReader(r3);
  const writer = new PageWriter(w2, { lend: false });
  const { ticks, gap } = await withTimer(async (ticked) => {
    const waits: Promise<unknown>[] = [
      readvAsync(r1, [new Uint8Array(1)]), // a read on the reactor
      writevAsync(w2, [patternBytes(1 << 20, 5)]), // a blocked write on the reactor
      reader.readAsync(), // a blocking pipe: readiness, then the read
      consumer.receiveAsync(), // a ring: the futex wait off the JS thread
    ];
    writer.write(patternBytes(1 << 20, 6));
    waits.push(writer.flushAsync()); // behind the blocked write
    // Nothing ends these waits until the timer has ticked 10 times: a form that parks the loop never gets there.
    assert.ok(await until(() => ticked() >= 10), `only ${ticked()} ticks in 30 s while the waits were pending`);
    writevAsync(w1, [new Uint8Array(1)]);
    writevAsync(w3, [new Uint8Array(1)]);
    producer.reserve().publish(1);
    const drained = drain(r2);
    const all = await Promise.all(waits.slice(0, 4));
    for (const head of [all[2], all[3]]) (head as { release(): void }).release();
    await waits[4];
    writer.close();
    w2.close();
    return drained;
  });
  assert.ok(ticks >= 10, `only ${ticks} ticks`);
  // A form that holds the loop for a while each time shows here; a preemption or a collection on a loaded
  // machine can take a few hundred ms of its own, so only a whole second fails.
  assert.ok(gap < 1000, `the timer waited ${gap.toFixed(0)} ms at worst`);
  for (const end of [r1, w1, r2, r3, w3]) end.close();
});

test("ring receiveAsync ends on abort (ABORT_ERR) and leaves the ring usable", async () => {
  using producer = SharedRing.create({ slots: 2, slotSize: 4096 });
  using consumer = SharedRing.open(producer.path);
  const controller = new AbortController();
  const waiting = consumer.receiveAsync({ signal: controller.signal });
  setTimeout(() => controller.abort(), 20);
  const started = performance.now();
  await assert.rejects(waiting, (e) => code(e) === "ABORT_ERR");
  assert.ok(performance.now() - started < 10_000, "the abort ended the wait (it has no timeout of its own)");
  producer.reserve().publish(3);
  const head = (await consumer.receiveAsync())!;
  assert.equal(head.byteLength, 3);
  head.release();
});

const fallbackScript = `
import { createHash } from "node:crypto";
import { readdirSync, readlinkSync } from "node:fs";
import { PageReader, PageWriter, pipe, readvAsync, writevAsync } from "${root}mod.ts";
import { patternBytes } from "${root}test/helpers.ts";
const [r, w] = pipe();
const data = patternBytes(3 << 20, 7);
const writer = new PageWriter(w, { highWaterMark: 256 * 1024 });
const sending = (async () => {
  for (let at = 0; at < data.length; at += 100_000) await writer.writeAsync(data.slice(at, at + 100_000));
  await writer.flushAsync();
  writer.close();
  w.close();
})();
const hash = createHash("sha256");
let total = 0;
for await (const head of new PageReader(r)) { hash.update(head.bytes); total += head.byteLength; head.release(); }
await sending;
const [r2, w2] = pipe({ nonBlocking: false });
const back = new Uint8Array(4);
const read = readvAsync(r2, [back]);
await writevAsync(w2, [new Uint8Array([9, 8, 7, 6])]);
console.log(JSON.stringify({ total, sha: hash.digest("hex"), read: await read, back: [...back] }));
`;

for (
  const env of [{ PAGEIO_ASYNC: "thread" }, { PAGEIO_REACTOR: "poll" }, { PAGEIO_REACTOR: "call" }] as Record<
    string,
    string
  >[]
) {
  test(`fallback forced (${Object.entries(env)[0].join("=")}): the same bytes through the same forms`, () => {
    const run = runScript(fallbackScript, { env });
    assert.equal(run.signal, null, run.stderr);
    assert.equal(run.status, 0, run.stderr);
    const data = patternBytes(3 << 20, 7);
    assert.deepEqual(JSON.parse(run.stdout.trim().split("\n").pop()!), {
      total: data.length,
      sha: sha256(data),
      read: 4,
      back: [9, 8, 7, 6],
    });
  });
}

test("an async call's arrays and heads are checked after each wait: transferred or released meanwhile is a typed error, never another owner's memory", () => {
  // Before: the wait ended and the call went on through the addresses packed before it, into freed memory
  // (another array's pages read into, another allocation's bytes written out) or into a page's next owner.
  const run = runScript(
    `
    import { PagePool, pipe, readvAsync, writev, writevAsync } from "${root}mod.ts";
    const gc = typeof Deno !== "undefined" ? globalThis.gc : () => Bun.gc(true);
    const out = {};
    {
      const [r, w] = pipe({ size: 1 << 16 });
      let target = new Uint8Array(16 << 20);
      const reading = readvAsync(r, [target]);
      await new Promise((ok) => setTimeout(ok, 20));
      target.buffer.transfer(16); target = null; gc();
      const victims = Array.from({ length: 4 }, () => new Uint8Array(16 << 20).fill(7));
      writev(w, [new Uint8Array(1 << 16).fill(0xab)]);
      out.read = await reading.then((n) => n, (e) => e.constructor.name);
      out.readVictims = victims.every((v) => v.every((b) => b === 7));
    }
    {
      const [r, w] = pipe({ size: 1 << 16 });
      let source = new Uint8Array(16 << 20).fill(0x11);
      const writing = writevAsync(w, [source]);
      await new Promise((ok) => setTimeout(ok, 20));
      source.buffer.transfer(16); source = null; gc();
      const victims = Array.from({ length: 4 }, () => new Uint8Array(16 << 20).fill(0x5a));
      const buf = new Uint8Array(1 << 20);
      let foreign = 0;
      const settled = writing.then((n) => n, (e) => e.constructor.name);
      const draining = (async () => { for (;;) { const n = await readvAsync(r, [buf]); if (n === 0) return; for (let i = 0; i < n; i++) if (buf[i] !== 0x11) foreign++; } })();
      out.write = await settled;
      w.close();
      await draining;
      out.foreign = foreign;
      victims.length = 0;
    }
    {
      const [r, w] = pipe({ size: 1 << 16 });
      const pool = new PagePool();
      const page = pool.acquire();
      const head = page.head(0, 4096);
      const reading = readvAsync(r, [head]);
      await new Promise((ok) => setTimeout(ok, 20));
      head.release(); page.release();
      const next = pool.acquire(); next.bytes.fill(7);
      writev(w, [new Uint8Array(4096).fill(0xab)]);
      out.head = await reading.then((n) => n, (e) => e.code);
      out.nextOwner = next.bytes.every((b) => b === 7);
    }
    console.log(JSON.stringify(out));
  `,
    { denoFlags: ["--v8-flags=--expose-gc"] },
  );
  assert.equal(run.signal, null, run.stderr);
  assert.equal(run.status, 0, run.stderr);
  assert.deepEqual(JSON.parse(run.stdout.trim()), {
    read: "TypeError",
    readVictims: true,
    write: "TypeError",
    foreign: 0,
    head: "ERR_RELEASED",
    nextOwner: true,
  });
});

test("an async read whose resizable target shrank while it waited is a typed error, and the pipe keeps every byte", () => {
  // Before: the read went on into staging sized for the old length, copied back what still fitted and resolved
  // with the whole count: 50 000 bytes taken from the pipe, 10 (or none) in the target, the rest lost.
  const run = runScript(
    `
    import { pipe, readv, readvAsync, writev } from "${root}mod.ts";
    const out = [];
    for (const tracking of [true, false]) {
      const [r, w] = pipe({ size: 1 << 16 });
      const buffer = new ArrayBuffer(1 << 20, { maxByteLength: 4 << 20 });
      const target = tracking ? new Uint8Array(buffer) : new Uint8Array(buffer, 0, 1 << 20);
      const reading = readvAsync(r, [target]);
      await new Promise((ok) => setTimeout(ok, 20));
      buffer.resize(10);
      writev(w, [new Uint8Array(50_000).fill(7)]);
      const result = await reading.then((n) => n, (e) => e.constructor.name);
      w.close(); // what the pipe still holds, then the end (0), never a wait
      const rest = new Uint8Array(1 << 16);
      out.push(result, readv(r, [rest]), rest.subarray(0, 50_000).every((b) => b === 7));
      r.close();
    }
    console.log(JSON.stringify(out));
  `,
  );
  assert.equal(run.signal, null, run.stderr);
  assert.equal(run.status, 0, run.stderr);
  assert.deepEqual(JSON.parse(run.stdout.trim()), ["TypeError", 50_000, true, "TypeError", 50_000, true]);
});

test("an async write whose source shrank or was detached is a typed error with bytesTransferred, never a short success", async () => {
  const dir = tempDir();
  let n = 0;
  const pair = async () => {
    const path = join(dir, `s${n++}`);
    const listener = listen({ path });
    const writer = connect({ path });
    const reader = (await listener.acceptAsync()) as Socket;
    listener.close();
    return { writer, reader };
  };
  /** Every byte the peer sends until it closes: their count, and whether each is `fill`. */
  const drain = async (reader: Socket, fill: number) => {
    const buffer = new Uint8Array(1 << 16);
    let count = 0, same = true;
    for (let got; (got = await reader.readAsync(buffer)) > 0;) {
      count += got;
      same &&= buffer.subarray(0, got).every((b) => b === fill);
    }
    return { count, same };
  };
  type Failure = Error & { code?: string; bytesTransferred?: number };
  /** Starts `write`, runs `meanwhile` while it waits for the peer, then drains: its error and what the peer got. */
  const attempt = async (write: (writer: Socket) => Promise<number>, meanwhile: () => void) => {
    const { writer, reader } = await pair();
    const writing = write(writer);
    meanwhile();
    const received = drain(reader, 7);
    const error = await writing.then(() => null, (e) => e as Failure);
    writer.close();
    const got = await received;
    reader.close();
    return { error, ...got };
  };
  const SIZE = 8 << 20; // far more than a unix socket's buffer: the write waits
  const resizable = (tracking: boolean) => {
    const buffer = new ArrayBuffer(SIZE, { maxByteLength: SIZE });
    const chunk = (tracking ? new Uint8Array(buffer) : new Uint8Array(buffer, 0, SIZE)).fill(7);
    return { buffer, chunk };
  };

  // Socket.writeAsync holds the caller's arrays (no copy): shrunk while it waits, the rest is gone. Before: it sent
  // what was left and resolved with that short count, no error (3.9 MB of 8 MiB).
  for (const tracking of [true, false]) {
    const { buffer, chunk } = resizable(tracking);
    const { error, count, same } = await attempt((w) => w.writeAsync([chunk]), () => buffer.resize(1000));
    assert.ok(error instanceof TypeError, String(error));
    assert.match(error.message, /shrank from 8388608 to (1000|0) bytes/);
    assert.ok(count > 0 && count < SIZE && same, `${count} bytes out before the wait`);
    assert.equal((error as Failure).bytesTransferred, count);
  }

  // Shrunk while queued behind another write: refused when its turn comes, nothing of it sent. Before: both forms
  // sent the 10 bytes left of 1 MiB and resolved with 10.
  for (const form of ["writeAsync", "writevAsync"]) {
    const write = (w: Socket, chunk: Uint8Array) =>
      form === "writeAsync" ? w.writeAsync([chunk]) : writevAsync(w, [chunk]);
    const { writer, reader } = await pair();
    const first = write(writer, new Uint8Array(SIZE).fill(7));
    const buffer = new ArrayBuffer(1 << 20, { maxByteLength: 1 << 20 });
    const second = write(writer, new Uint8Array(buffer).fill(8));
    buffer.resize(10);
    const received = drain(reader, 7);
    assert.equal(await first, SIZE, form);
    const error = await second.then(() => null, (e) => e as Failure);
    writer.close();
    assert.ok(error instanceof TypeError, `${form}: ${error}`);
    assert.equal((error as Failure).bytesTransferred, 0, form);
    assert.deepEqual(await received, { count: SIZE, same: true }, form);
    reader.close();
  }

  // writevAsync's array detached while it waits: the TypeError counts what went out. Before: no bytesTransferred.
  {
    const chunk = new Uint8Array(SIZE).fill(7);
    const { error, count } = await attempt(
      (w) => writevAsync(w, [chunk]),
      () => structuredClone(chunk.buffer, { transfer: [chunk.buffer] }),
    );
    assert.ok(error instanceof TypeError, String(error));
    assert.ok(count > 0 && count < SIZE);
    assert.equal((error as Failure).bytesTransferred, count);
  }

  // A brigade's flush (which copied the resizable array) aborted after the array shrank: ABORT_ERR with what went
  // out, the rest queued. Before: a RangeError from trimming the shrunk array, bytesTransferred 0.
  for (const tracking of [true, false]) {
    const { buffer, chunk } = resizable(tracking);
    const brigade = new Brigade().append(chunk);
    const abort = new AbortController();
    const { error, count } = await attempt((w) => brigade.flushAsync(w, { signal: abort.signal }), () => {
      buffer.resize(1000);
      setTimeout(() => abort.abort(), 20);
    });
    assert.equal((error as Failure | null)?.code, "ABORT_ERR", String(error));
    assert.equal((error as Failure).bytesTransferred, count);
    assert.equal(brigade.byteLength, SIZE - count);
    brigade.release();
  }
});

test("on a blocking pipe, an async call's memory is checked after its wait and held while it runs off the JS thread: never freed or another owner's memory", () => {
  // Before: the wait for a blocking descriptor was no planner wait, so nothing was checked after it (a read
  // into a transferred array's freed memory crashed Bun), and a write that went off the JS thread read on
  // from memory the caller meanwhile transferred and reused, released to the page's next owner, or unmapped.
  const run = runScript(
    `
    import { mapAnonymous, PagePool, pipe, readv, readvAsync, writev, writevAsync } from "${root}mod.ts";
    const gc = typeof Deno !== "undefined" ? globalThis.gc : () => Bun.gc(true);
    const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));
    const out = {};
    const drain = async (r, total, expected) => {
      const buf = new Uint8Array(1 << 20);
      let foreign = 0;
      for (let got = 0; got < total;) {
        const n = readv(r, [buf]);
        for (let i = 0; i < n; i++) if (buf[i] !== expected) foreign++;
        got += n;
        await sleep(0);
      }
      return foreign;
    };
    {
      const [r, w] = pipe({ nonBlocking: false });
      let target = new Uint8Array(16 << 20);
      const reading = readvAsync(r, [target]);
      await sleep(20);
      target.buffer.transfer(16); target = null; gc();
      const victims = Array.from({ length: 4 }, () => new Uint8Array(16 << 20).fill(7));
      writev(w, [new Uint8Array(4096).fill(0xab)]);
      out.read = await reading.then((n) => n, (e) => e.constructor.name);
      out.readVictims = victims.every((v) => v.every((b) => b === 7));
    }
    {
      const [r, w] = pipe({ nonBlocking: false });
      const source = new Uint8Array(8 << 20).fill(0x11);
      const writing = writevAsync(w, [source]);
      await sleep(20);
      new Uint8Array(source.buffer.transfer()).fill(0x5a); // the caller's memory again, reused
      const foreign = drain(r, 8 << 20, 0x11);
      out.array = [await writing, await foreign];
    }
    {
      const [r, w] = pipe({ nonBlocking: false });
      const pool = new PagePool({ pageSize: 1 << 20, pages: 16 });
      const heads = Array.from({ length: 8 }, () => {
        const page = pool.acquire();
        page.bytes.fill(0x22);
        const head = page.head();
        page.release();
        return head;
      });
      const writing = writevAsync(w, heads);
      await sleep(20);
      heads.forEach((head) => head.release());
      const next = Array.from({ length: 8 }, () => pool.acquire().bytes.fill(0x5a));
      const foreign = drain(r, 8 << 20, 0x22);
      out.heads = [await writing, await foreign, pool.stats.inUse];
      next.length = 0;
    }
    {
      const [r, w] = pipe({ nonBlocking: false });
      const memory = mapAnonymous(8 << 20);
      memory.bytes.fill(0x33);
      const head = memory.head();
      const writing = writevAsync(w, [head]);
      await sleep(20);
      head.release();
      memory.unmap();
      const others = Array.from({ length: 4 }, () => mapAnonymous(8 << 20).bytes.fill(0x5a));
      const foreign = drain(r, 8 << 20, 0x33);
      out.mapping = [await writing, await foreign];
      others.length = 0;
    }
    console.log(JSON.stringify(out));
    process.exit(0);
  `,
    { denoFlags: ["--v8-flags=--expose-gc"] },
  );
  assert.equal(run.signal, null, run.stderr);
  assert.equal(run.status, 0, run.stderr);
  assert.deepEqual(JSON.parse(run.stdout.trim().split("\n").at(-1)!), {
    read: "TypeError",
    readVictims: true,
    array: [8 << 20, 0],
    heads: [8 << 20, 0, 8],
    mapping: [8 << 20, 0],
  });
});
