import { test } from "node:test";
import assert from "node:assert/strict";
import { closeSync, ftruncateSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  mapFile,
  openFile,
  PageHead,
  type PageIoError,
  PagePool,
  pageSize,
  PageWriter,
  pipe,
  readv,
  readvAsync,
  writev,
} from "../mod.ts";
import { ENTRY_BYTES_MAX } from "../ffi/native.ts";
import { PackedList } from "../src/gather.ts";
import {
  fifo,
  haveStrace,
  isDeno,
  patternBytes,
  root,
  runScript,
  sha256,
  startScript,
  tempDir,
  tempFile,
  whenReaderOpens,
} from "./helpers.ts";

const code = (e: unknown) => (e as PageIoError).code;

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

test("writev writes heads and byte arrays of every kind, in order, byte for byte", () => {
  using pool = new PagePool();
  const source = patternBytes(4 * pageSize, 7);
  using mapping = mapFile(tempFile(source), { offset: 5 });
  const page = pool.acquire();
  page.bytes.set(patternBytes(pageSize, 3));
  const chunks: (PageHead | Uint8Array)[] = [
    page.head(0, 100), // pool page
    new TextEncoder().encode("small plain array"), // staged copy
    mapping.head(1000, 2 * pageSize), // file mapping
    patternBytes(100_000, 9), // large plain array: passed by address
    new Uint8Array(0), // empty
    page.head(4000, pageSize - 4000),
    patternBytes(50_000, 11).subarray(123, 40_000), // a view with a byteOffset
  ];
  const expected = concat(chunks.map((c) => c instanceof PageHead ? c.bytes.slice() : c.slice()));
  const path = join(tempDir(), "out");
  using out = openFile(path, "w");
  assert.equal(writev(out, chunks), expected.length);
  assert.equal(sha256(readFileSync(path)), sha256(expected));
  // The caller keeps ownership: heads are still live.
  for (const c of chunks) if (c instanceof PageHead) c.release();
  page.release();
  assert.equal(pool.stats.inUse, 0);
});

test("more heads than IOV_MAX go out in order", () => {
  using pool = new PagePool({ pages: 0 });
  const heads: PageHead[] = [];
  for (let i = 0; i < 3000; i++) {
    const page = pool.acquire();
    page.bytes.fill(i & 0xff, 0, 7);
    heads.push(page.head(0, 7));
    page.release();
  }
  const path = join(tempDir(), "many");
  using out = openFile(path, "w");
  assert.equal(writev(out, heads), 3000 * 7);
  const written = readFileSync(path);
  for (let i = 0; i < 3000; i++) assert.equal(written[i * 7 + 6], i & 0xff);
  heads.forEach((h) => h.release());
  assert.equal(pool.stats.inUse, 0);
});

test("writev takes any iterable, and a plain fd from node:fs", () => {
  const path = join(tempDir(), "fd");
  const fd = openSync(path, "w");
  function* parts() {
    yield new TextEncoder().encode("a");
    yield new TextEncoder().encode("bc");
  }
  assert.equal(writev(fd, parts()), 3);
  assert.equal(writev(fd, []), 0);
  closeSync(fd);
  assert.equal(readFileSync(path, "utf8"), "abc");
});

test("bad input is a typed error and writes nothing", () => {
  using pool = new PagePool();
  const path = join(tempDir(), "bad");
  using out = openFile(path, "w");
  const page = pool.acquire();
  const live = page.head(0, 10);
  const released = page.head(0, 10);
  released.release();
  assert.throws(() => writev(out, [live, released]), (e) => code(e) === "ERR_RELEASED");
  assert.throws(() => writev(out, [live, "text" as unknown as Uint8Array]), TypeError);
  assert.throws(() => writev(out, [live, [1, 2] as unknown as Uint8Array]), TypeError);
  // A chunk on its own where a list belongs (a Uint8Array iterates as numbers), or no list at all: said so.
  const lone = /expected a list of (chunks|read targets): pass \[(Uint8Array|PageHead|Page|string)\]/;
  for (const chunk of [new Uint8Array(4), live, page, "text"]) {
    assert.throws(() => writev(out, chunk as unknown as Uint8Array[]), lone);
    assert.throws(() => readv(out, chunk as unknown as Uint8Array[]), lone);
  }
  for (const nothing of [null, undefined, 5, {}]) {
    assert.throws(() => writev(out, nothing as unknown as Uint8Array[]), /expected a list \(an iterable\) of chunks/);
  }
  const detached = new Uint8Array(new ArrayBuffer(8));
  detached.buffer.transfer();
  assert.throws(() => writev(out, [live, detached]), TypeError);
  assert.throws(() => writev("out" as unknown as number, [live]), TypeError);
  assert.throws(() => writev(-1, [live]), RangeError);
  assert.throws(() => writev(999_999, [live]), (e) => code(e) === "EBADF" && (e as PageIoError).syscall === "writev");
  const closed = openFile(path, "r");
  closed.close();
  assert.throws(() => writev(closed, [live]), (e) => code(e) === "ERR_CLOSED");
  assert.equal(readFileSync(path).length, 0, "nothing was written");
  live.release();
  page.release();
  assert.equal(pool.stats.inUse, 0, "pool accounting intact");
});

test("readv scatters into pages, heads and byte arrays, and returns 0 at end of file", () => {
  using pool = new PagePool();
  const data = patternBytes(pageSize + 5000, 5);
  using file = openFile(tempFile(data));
  const page = pool.acquire();
  const other = pool.acquire();
  const head = other.head(100, 1000);
  const small = new Uint8Array(10); // staged and copied back
  const large = new Uint8Array(20_000); // by address
  assert.equal(readv(file, [small, page, head, large]), data.length);
  assert.deepEqual(small, data.subarray(0, 10));
  assert.deepEqual(page.bytes, data.subarray(10, 10 + pageSize));
  assert.deepEqual(head.bytes, data.subarray(10 + pageSize, 1010 + pageSize));
  assert.deepEqual(large.subarray(0, data.length - 1010 - pageSize), data.subarray(1010 + pageSize));
  assert.ok(large.subarray(data.length - 1010 - pageSize).every((b) => b === 0), "nothing past the data");
  assert.equal(readv(file, [small]), 0);
  assert.throws(() => readv(file, [{} as Uint8Array]), TypeError);
  head.release();
  other.release();
  page.release();
  assert.throws(() => readv(file, [page]), (e) => code(e) === "ERR_RELEASED");
});

test("a read into no room is a RangeError, never a 0 that reads as end of file", async () => {
  using pool = new PagePool();
  const page = pool.acquire();
  const empty = page.head(0, 0);
  const data = tempFile("some bytes");
  using file = openFile(data);
  const [readEnd, writeEnd] = pipe();
  writev(writeEnd, [new TextEncoder().encode("waiting")]);
  for (const source of [file, readEnd]) {
    for (const targets of [[], [new Uint8Array(0)], [empty, new Uint8Array(8).subarray(8)]]) {
      assert.throws(() => readv(source, targets), RangeError);
      await assert.rejects(readvAsync(source, targets), RangeError);
    }
  }
  // Nothing was read by the refused calls: the next real reads get every byte.
  const into = new Uint8Array(32);
  assert.equal(readv(file, [empty, into]), 10);
  assert.equal(await readvAsync(readEnd, [into]), 7);
  empty.release();
  page.release();
  readEnd.close();
  writeEnd.close();
});

test("a slow reader in another process gets every byte (short writes resumed)", async () => {
  using pool = new PagePool({ pages: 0 });
  const pipe = fifo();
  const outPath = join(tempDir(), "slow-out");
  const reader = startScript(`
    import { openSync, readSync, writeSync, closeSync } from "node:fs";
    const fd = openSync(${JSON.stringify(pipe)}, "r");
    const out = openSync(${JSON.stringify(outPath)}, "w");
    const buf = new Uint8Array(7000);
    for (let n; (n = readSync(fd, buf)) > 0;) {
      writeSync(out, buf.subarray(0, n));
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
    }
    closeSync(out);
  `);
  const heads: PageHead[] = [];
  const expected: Uint8Array[] = [];
  for (let i = 0; i < 300; i++) {
    const page = pool.acquire();
    page.bytes.set(patternBytes(pageSize, i + 1));
    heads.push(page.head(i % 50, pageSize - (i % 50)));
    expected.push(page.bytes.subarray(i % 50));
    page.release();
  }
  const want = sha256(concat(expected));
  const out = await whenReaderOpens(() => openFile(pipe, "w"));
  assert.equal(writev(out, heads), expected.reduce((n, e) => n + e.length, 0));
  out.close();
  const { status, stderr } = await reader.exited;
  assert.equal(status, 0, stderr);
  assert.equal(sha256(readFileSync(outPath)), want);
  heads.forEach((h) => h.release());
});

test("a reader that goes away is EPIPE, a typed error, and the process lives on", async () => {
  const pipe = fifo();
  const reader = startScript(`import { openSync } from "node:fs"; openSync(${JSON.stringify(pipe)}, "r");`);
  const out = await whenReaderOpens(() => openFile(pipe, "w"));
  await reader.exited;
  assert.throws(
    () => writev(out, [new Uint8Array(1 << 20)]),
    (e) => code(e) === "EPIPE" && (e as PageIoError).syscall === "writev",
  );
  out.close();
});

test(
  "one flush of 1 000 heads is one writev system call (strace)",
  { skip: !haveStrace && "strace is not installed" },
  () => {
    const log = join(tempDir(), "strace.log");
    const run = runScript(
      `
    import { PagePool, PageWriter, openFile } from "${root}mod.ts";
    const pool = new PagePool({ pages: 0 });
    const file = openFile(${JSON.stringify(join(tempDir(), "counted"))}, "w");
    const writer = new PageWriter(file);
    for (let i = 0; i < 1000; i++) { const p = pool.acquire(); writer.write(p.head(0, 100)); p.release(); }
    console.log("fd=" + file.fd);
    writer.flush();
    const heads = [];
    for (let i = 0; i < 3000; i++) { const p = pool.acquire(); heads.push(p.head(0, 10)); p.release(); }
    const { writev } = await import("${root}mod.ts");
    writev(file, heads);
    heads.forEach((h) => h.release());
    writer.close(); file.close();
  `,
      { prefix: ["strace", "-f", "-s", "0", "-e", "trace=writev", "-o", log] },
    );
    assert.equal(run.status, 0, run.stderr);
    const fd = run.stdout.match(/fd=(\d+)/)![1];
    const calls = readFileSync(log, "utf8").split("\n").filter((l) => l.includes(` writev(${fd},`));
    assert.equal(calls.length, 1 + 3, calls.join("\n"));
    assert.match(calls[0], /writev\(\d+, \[.*\], 1000\)\s+= 100000/);
    assert.ok(
      calls.slice(1).every((l) => /, 1024\)\s+= 10240|, 952\)\s+= 9520/.test(l)),
      "3000 heads in batches of IOV_MAX",
    );
  },
);

// A child process runs every hostile list through writev, writevAsync and a Brigade: each call sends exactly
// the bytes a correct reading gives, or throws a typed error with nothing written; the child must exit 0
// (a wild read or write would be SIGSEGV or a malloc abort).
test("hostile chunk lists: lying arrays, detaching getters, Proxies, resizable and shared buffers", () => {
  const dir = tempDir();
  const run = runScript(`
    import { readFileSync } from "node:fs";
    import { Brigade, openFile, PageIoError, PagePool, writev, writevAsync } from "${root}mod.ts";
    import { hostileLists } from "${root}test/hostile.ts";
    const pool = new PagePool();
    const heads = [];
    const makeHead = () => {
      const page = pool.acquire();
      page.bytes.fill(heads.length);
      heads.push(page.head(0, 1000));
      page.release();
      return heads.at(-1);
    };
    const failures = [];
    let n = 0, ran = 0;
    const typed = (e) => e instanceof TypeError || e instanceof RangeError || e instanceof PageIoError;
    const ways = {
      writev: (out, chunks) => writev(out, chunks),
      writevAsync: (out, chunks) => writevAsync(out, chunks),
      brigade: (out, chunks) => { const b = new Brigade(); b.append(...chunks); return b.flush(out); },
    };
    for (const [way, call] of Object.entries(ways)) {
      for (const { name, chunks, expected } of hostileLists(makeHead, n)) {
        const path = ${JSON.stringify(dir)} + "/out" + n++;
        const out = openFile(path, "w");
        let outcome;
        try { outcome = await call(out, chunks); } catch (e) { outcome = e; }
        out.close();
        const written = readFileSync(path);
        ran++;
        if (expected === null) {
          if (!typed(outcome) || written.length !== 0) failures.push({ way, name, outcome: String(outcome), written: written.length });
        } else if (outcome !== expected.length || Buffer.compare(written, Buffer.from(expected)) !== 0) {
          failures.push({ way, name, outcome: String(outcome), written: written.length, expected: expected.length });
        }
      }
    }
    for (const head of heads) if (head.refs > 0) head.release();
    console.log(JSON.stringify({ failures, ran, inUse: pool.stats.inUse }));
  `);
  assert.equal(run.signal, null, run.stderr);
  assert.equal(run.status, 0, run.stderr);
  const result = JSON.parse(run.stdout.trim().split("\n").pop()!);
  assert.deepEqual(result.failures, []);
  assert.ok(result.ran >= 3 * 15, `ran ${result.ran}`);
  assert.equal(result.inUse, 0, "no page left held");
});

test("readv into lying arrays fills each one's real bytes only, and a Proxy head is refused", () => {
  const run = runScript(`
    import { openFile, PagePool, readv, readvAsync } from "${root}mod.ts";
    import { liar, subclassLiar } from "${root}test/hostile.ts";
    const path = ${JSON.stringify(tempFile(patternBytes(300_000, 5)))};
    const data = (await import("node:fs")).readFileSync(path);
    const results = [];
    for (const read of [readv, readvAsync]) {
      // A guard array after each target: a read past a target's real end would show in it (or crash).
      const guard = () => new Uint8Array(1000);
      const smallBuffer = new ArrayBuffer(10), small = liar(new Uint8Array(smallBuffer));
      const large = subclassLiar(new Uint8Array(50_000));
      const largeBuffer = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(Uint8Array.prototype), "buffer").get.call(large);
      const g1 = guard(), g2 = guard();
      using file = openFile(path);
      const n = await read(file, [small, g1, large, g2]);
      results.push({
        n,
        small: Buffer.compare(Buffer.from(smallBuffer), data.subarray(0, 10)),
        g1: Buffer.compare(Buffer.from(g1), data.subarray(10, 1010)),
        large: Buffer.compare(Buffer.from(largeBuffer), data.subarray(1010, 51_010)),
        g2: Buffer.compare(Buffer.from(g2), data.subarray(51_010, 52_010)),
      });
    }
    const pool = new PagePool();
    const head = pool.acquire().head(0, 10);
    let refused = "";
    try { readv(openFile(path), [new Proxy(head, {})]); } catch (e) { refused = e.constructor.name; }
    console.log(JSON.stringify({ results, refused }));
  `);
  assert.equal(run.signal, null, run.stderr);
  assert.equal(run.status, 0, run.stderr);
  const { results, refused } = JSON.parse(run.stdout.trim().split("\n").pop()!);
  for (const r of results) assert.deepEqual(r, { n: 52_010, small: 0, g1: 0, large: 0, g2: 0 });
  assert.equal(refused, "TypeError");
});

test("writevAsync keeps a generator's arrays alive until it settles, and copies a resizable one", () => {
  const run = runScript(
    `
    import { pipe, readvAsync, writevAsync } from "${root}mod.ts";
    import { collectGarbage, patternBytes, sha256 } from "${root}test/helpers.ts";
    const [readEnd, writeEnd] = pipe();
    const count = 64, size = 256 * 1024;
    function* arrays() { for (let i = 0; i < count; i++) yield patternBytes(size, i + 1); }
    // 16 MiB into a 64 KiB pipe: the call waits on the reader while the arrays have no other reference.
    // (The reads are async too: the write waits on this thread's event loop, as Node's would.)
    const pending = writevAsync(writeEnd, arrays());
    await collectGarbage();
    const litter = []; // reuses whatever memory was freed
    for (let i = 0; i < 128; i++) litter.push(new Uint8Array(size).fill(0xee));
    const received = Buffer.alloc(count * size);
    for (let at = 0; at < received.length;) at += await readvAsync(readEnd, [received.subarray(at)]);
    const written = await pending;
    const want = [];
    for (let i = 0; i < count; i++) want.push(patternBytes(size, i + 1));
    // An array on a resizable buffer is copied for an asynchronous call: shrinking it meanwhile changes nothing.
    const resizable = new ArrayBuffer(1 << 20, { maxByteLength: 1 << 21 });
    new Uint8Array(resizable).set(patternBytes(1 << 20, 99));
    const second = writevAsync(writeEnd, [new Uint8Array(resizable)]);
    resizable.resize(0);
    const again = Buffer.alloc(1 << 20);
    for (let at = 0; at < again.length;) at += await readvAsync(readEnd, [again.subarray(at)]);
    console.log(JSON.stringify({
      written,
      same: sha256(received) === sha256(Buffer.concat(want)),
      litter: litter.length,
      resized: [await second, sha256(again) === sha256(patternBytes(1 << 20, 99))],
    }));
  `,
    { denoFlags: ["--v8-flags=--expose-gc"] },
  );
  assert.equal(run.signal, null, run.stderr);
  assert.equal(run.status, 0, run.stderr);
  assert.deepEqual(JSON.parse(run.stdout.trim().split("\n").pop()!), {
    written: 64 * 256 * 1024,
    same: true,
    litter: 128,
    resized: [1 << 20, true],
  });
});

test("lengths of 4 GiB and more are split into descriptors of at most ENTRY_BYTES_MAX, never wrapped", () => {
  const giant = 2 ** 32 + 8192;
  const path = join(tempDir(), "sparse");
  const fd = openSync(path, "w");
  ftruncateSync(fd, giant); // sparse: no disk, and /dev/null never touches the pages
  closeSync(fd);
  using devNull = openFile("/dev/null", "w");
  {
    using mapping = mapFile(path);
    // Bun's ArrayBuffers stop at 2^32 bytes: viewing the mapping is a typed error, its heads still reach every byte.
    if (!isDeno) assert.throws(() => mapping.bytes, RangeError);
    const head = mapping.head();
    assert.equal(head.byteLength, giant);
    const packed = new PackedList().pack([head], 0, 1);
    const entries = Array.from({ length: packed.count }, (_, i) => Array.from(packed.list.subarray(4 * i, 4 * i + 4)));
    assert.deepEqual(entries.map((e) => e[3]), [ENTRY_BYTES_MAX, ENTRY_BYTES_MAX, giant - 2 * ENTRY_BYTES_MAX]);
    let offset = entries[0][1] + entries[0][2] * 2 ** 32;
    for (const [, low, high, length] of entries) {
      assert.equal(low + high * 2 ** 32, offset, "each entry starts where the one before ended");
      offset += length;
    }
    assert.equal(writev(devNull, [head, new Uint8Array(10)]), giant + 10);
    // Split heads between arrays passed by address (one descriptor each, written in place): every entry where
    // it belongs, the list grown as needed.
    const arrays = Array.from({ length: 300 }, (_, i) => new Uint8Array(4096 + i));
    const mixed = [...arrays.slice(0, 100), head, ...arrays.slice(100, 200), head, ...arrays.slice(200)];
    const small = new PackedList(2, 0).pack(mixed, 0, mixed.length);
    assert.equal(small.count, 300 + 2 * 3);
    const lengths = Array.from({ length: small.count }, (_, i) => small.list[4 * i + 3]);
    const split = [ENTRY_BYTES_MAX, ENTRY_BYTES_MAX, giant - 2 * ENTRY_BYTES_MAX];
    assert.deepEqual(lengths, [
      ...arrays.slice(0, 100).map((a) => a.length),
      ...split,
      ...arrays.slice(100, 200).map((a) => a.length),
      ...split,
      ...arrays.slice(200).map((a) => a.length),
    ]);
    assert.equal(writev(devNull, mixed), 2 * giant + arrays.reduce((sum, a) => sum + a.length, 0));
    // A writer flushes it all in one flush (progress every call, never 0 forever); close drops nothing.
    const writer = new PageWriter(devNull, { highWaterMark: 2 ** 40 });
    writer.write(head.slice());
    assert.equal(writer.flush(), giant);
    assert.equal(writer.bytesWritten, giant);
    writer.close();
    head.release();
    if (isDeno) assert.equal(writev(devNull, [new Uint8Array(giant)]), giant);
  }
  // Exactly 2^32 bytes, one past what a u32 length holds: a plain array on both runtimes.
  assert.equal(writev(devNull, [new Uint8Array(2 ** 32), new Uint8Array(1)]), 2 ** 32 + 1);
});

test("close() on a writer whose target would block reports the bytes it could not write", () => {
  using pool = new PagePool({ pageSize: 16 * pageSize });
  const [readEnd, writeEnd] = pipe({ nonBlocking: true });
  const writer = new PageWriter(writeEnd, { lend: false });
  for (let i = 0; i < 8; i++) {
    const page = pool.acquire(); // 8 × 64 KiB: more than the pipe holds
    writer.write(page.head());
    page.release();
  }
  const flushed = writer.flush();
  assert.ok(flushed > 0 && flushed < 8 * 16 * pageSize, `flushed ${flushed}`);
  assert.throws(() => writer.close(), (e) => code(e) === "ERR_UNFLUSHED" && /\d+ queued bytes/.test(String(e)));
  assert.equal(pool.stats.inUse, 0, "what was queued was released");
  readEnd.close();
  writeEnd.close();
});

test(
  "heads that follow on in memory share an iovec: 64 slices of a page are one iovec (strace)",
  { skip: !haveStrace && "strace is not installed" },
  () => {
    const log = join(tempDir(), "strace.log");
    const target = join(tempDir(), "slices");
    const run = runScript(
      `
    import { openFile, PagePool, writev } from "${root}mod.ts";
    const pool = new PagePool({ pageSize: 4096 });
    const page = pool.acquire();
    for (let i = 0; i < 4096; i++) page.bytes[i] = i % 251;
    const heads = Array.from({ length: 64 }, (_, i) => page.head(64 * i, 64));
    const file = openFile(${JSON.stringify(target)}, "w");
    console.log("fd=" + file.fd + " written=" + writev(file, heads));
  `,
      { prefix: ["strace", "-f", "-s", "0", "-e", "trace=writev", "-o", log] },
    );
    assert.equal(run.status, 0, run.stderr);
    const [, fd, written] = run.stdout.match(/fd=(\d+) written=(\d+)/)!;
    assert.equal(Number(written), 4096);
    const calls = readFileSync(log, "utf8").split("\n").filter((l) => l.includes(` writev(${fd},`));
    assert.equal(calls.length, 1, calls.join("\n"));
    assert.match(calls[0], /, 1\)\s+= 4096/);
    const bytes = readFileSync(target);
    assert.ok(bytes.every((b, i) => b === i % 251), "byte for byte");
  },
);

test("a list claiming a vast length (a Proxy) or an endless iterator of non-chunks is refused at its first non-chunk, not read to its end", () => {
  // Before: the whole claimed length was copied first (a Proxy of length 1e8 ran for over a minute on both runtimes).
  const vast = () => new Proxy([new Uint8Array(3)], { get: (t, k) => (k === "length" ? 1e8 : Reflect.get(t, k)) });
  const endless = function* () {
    yield new Uint8Array(3);
    while (true) yield undefined;
  };
  using source = openFile(tempFile(patternBytes(64)));
  using sink = openFile(join(tempDir(), "out"), "w");
  assert.throws(() => writev(sink, vast()), { name: "TypeError", message: /got undefined at 1/ });
  assert.throws(() => writev(sink, endless() as Iterable<Uint8Array>), { name: "TypeError", message: /at 1/ });
  assert.throws(() => readv(source, vast()), { name: "TypeError", message: /got undefined at 1/ });
  assert.throws(() => readv(source, endless() as Iterable<Uint8Array>), { name: "TypeError", message: /at 1/ });
  assert.equal(sink.size(), 0, "nothing was written");
});

test("a readv target that is not an object is named in the error, as writev names a chunk", () => {
  // Before: copyOf stopped at the string without keeping it, so the message said "got undefined at 0".
  using source = openFile(tempFile(patternBytes(64)));
  assert.throws(() => readv(source, ["text" as unknown as Uint8Array]), {
    name: "TypeError",
    message: /got string at 0/,
  });
  assert.throws(() => readv(source, [new Uint8Array(4), 7 as unknown as Uint8Array]), {
    name: "TypeError",
    message: /got number at 1/,
  });
  assert.throws(() => readv(source, [null as unknown as Uint8Array]), { name: "TypeError", message: /got null at 0/ });
});
