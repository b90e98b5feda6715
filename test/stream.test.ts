import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, truncateSync } from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import { spawn } from "node:child_process";
import { createHash, randomFillSync } from "node:crypto";
import {
  openFile,
  type PageHead,
  type PageIoError,
  PagePool,
  PageReader,
  pageSize,
  PageWriter,
  pipe,
  readv,
  writev,
} from "../mod.ts";
import { liveRegionCount } from "../src/system.ts";
import {
  fdsOn,
  fifo,
  haveStrace,
  mapsLinesMentioning,
  openDescriptorCount,
  patternBytes,
  root,
  runScript,
  sha256,
  startScript,
  tempDir,
  tempFile,
} from "./helpers.ts";

const code = (e: unknown) => (e as PageIoError).code;

test("PageReader on a regular file hands out heads into the file's mapping, window by window", () => {
  const data = patternBytes(10 * pageSize + 333, 21);
  const path = tempFile(data);
  const regions = liveRegionCount();
  const reader = new PageReader(path, { chunkSize: 5000, windowSize: 4 * pageSize });
  const heads: PageHead[] = [];
  for (const head of reader) {
    assert.ok(head.byteLength <= 5000);
    heads.push(head);
  }
  assert.equal(reader.read(), null, "stays at the end");
  reader.close();
  assert.deepEqual(Buffer.concat(heads.map((h) => h.bytes)), Buffer.from(data));
  assert.ok(mapsLinesMentioning(path) > 0, "windows stay mapped while their heads live");
  heads.forEach((h) => h.release());
  assert.equal(mapsLinesMentioning(path), 0, "each window is unmapped with its last head");
  assert.equal(liveRegionCount(), regions);
});

test("a window is unmapped as soon as the reader has moved on and its heads are released", () => {
  const path = tempFile(patternBytes(8 * pageSize));
  using reader = new PageReader(path, { chunkSize: pageSize, windowSize: 2 * pageSize });
  // Each head's bytes are used, so each window is mapped (windows after the first map only then).
  const readAndRelease = () => {
    const head = reader.read()!;
    assert.equal(head.bytes.byteLength, pageSize);
    head.release();
  };
  readAndRelease();
  const regions = liveRegionCount(); // the first window is mapped
  for (let i = 1; i < 8; i++) {
    readAndRelease();
    assert.equal(liveRegionCount(), regions, "only the current window is mapped");
  }
  assert.equal(reader.read(), null);
  assert.equal(liveRegionCount(), regions - 1, "at the end, no window is left");
});

test("an empty file reads as end at once", () => {
  using reader = new PageReader(tempFile(new Uint8Array(0)));
  assert.equal(reader.read(), null);
});

test("PageReader on a pipe reads into pool pages, byte for byte", async () => {
  const pipe = fifo();
  const data = patternBytes(300_000, 4);
  const source = tempFile(data);
  const writer = startScript(`
    import { openSync, readFileSync, writeSync, closeSync } from "node:fs";
    const fd = openSync(${JSON.stringify(pipe)}, "w");
    const data = readFileSync(${JSON.stringify(source)});
    for (let at = 0; at < data.length; at += 10_000) writeSync(fd, data.subarray(at, at + 10_000));
    closeSync(fd);
  `);
  using pool = new PagePool();
  using reader = new PageReader(pipe, { pool });
  const parts: Uint8Array[] = [];
  for (const head of reader) {
    assert.ok(head.byteLength <= pool.pageSize);
    parts.push(head.bytes.slice());
    head.release();
  }
  assert.equal((await writer.exited).status, 0);
  assert.equal(sha256(Buffer.concat(parts)), sha256(data));
  assert.equal(pool.stats.inUse, 0);
});

test("PageReader on a character device reads pages from it", () => {
  using reader = new PageReader("/dev/zero");
  const head = reader.read()!;
  assert.ok(head.byteLength > 0);
  assert.ok(head.bytes.every((b) => b === 0));
  head.release();
});

test("PageReader into PageWriter copies a file exactly, leaving no descriptor or mapping behind", () => {
  const data = patternBytes(3 * 1024 * 1024 + 17, 8);
  const source = tempFile(data);
  const target = join(tempDir(), "copy");
  const fds = openDescriptorCount();
  const regions = liveRegionCount();
  {
    using reader = new PageReader(source, { windowSize: 1024 * 1024 });
    using writer = new PageWriter(target, { highWaterMark: 512 * 1024 });
    for (const head of reader) writer.write(head);
    writer.flush();
    assert.equal(writer.bytesWritten, data.length);
    assert.deepEqual(writer.pending, { byteLength: 0, count: 0 });
  }
  assert.equal(sha256(readFileSync(target)), sha256(data));
  // At most as many: Bun closes the pipes of the last test's child some time after it exited (seen once: 18 of 19).
  assert.ok(openDescriptorCount() <= fds, `${openDescriptorCount()} descriptors open, ${fds} before`);
  assert.equal(liveRegionCount(), regions);
  assert.equal(mapsLinesMentioning(source), 0);
});

test("PageWriter flushes by itself at IOV_MAX heads and at its high-water mark", () => {
  using pool = new PagePool({ pages: 0 });
  const path = join(tempDir(), "auto");
  using writer = new PageWriter(path, { highWaterMark: 10 * pageSize });
  for (let i = 0; i < 1023; i++) {
    const page = pool.acquire();
    writer.write(page.head(0, 1));
    page.release();
  }
  assert.equal(writer.pending.count, 1023);
  const page = pool.acquire();
  writer.write(page.head(0, 1));
  page.release();
  assert.equal(writer.pending.count, 0, "the 1024th head flushed the queue");
  assert.equal(pool.stats.inUse, 0);
  for (let i = 0; i < 10; i++) {
    const p = pool.acquire();
    writer.write(p.head());
    p.release();
  }
  assert.equal(writer.pending.count, 0, "10 pages reached the high-water mark");
  assert.equal(readFileSync(path).length, 1024 + 10 * pageSize);
});

test("closed readers and writers refuse use; close is idempotent; heads read stay valid", () => {
  const path = tempFile(patternBytes(1000));
  const reader = new PageReader(path);
  const head = reader.read()!;
  reader.close();
  reader.close();
  assert.throws(() => reader.read(), (e) => code(e) === "ERR_CLOSED");
  assert.equal(head.bytes.length, 1000);
  head.release();
  const writer = new PageWriter(join(tempDir(), "w"));
  writer.write(new Uint8Array([1]));
  writer.close();
  writer.close();
  assert.throws(() => writer.write(new Uint8Array([1])), (e) => code(e) === "ERR_CLOSED");
  assert.throws(() => writer.flush(), (e) => code(e) === "ERR_CLOSED");
});

test("a reader that opened its file closes it at the end of input once no head is held; a held head keeps it", async () => {
  // Before: the fd stayed open until close(), which a loop that reads many files to their end never calls.
  const small = tempFile("one line\n");
  for (let i = 0; i < 300; i++) {
    for (const head of new PageReader(small)) head.release();
    for await (const head of new PageReader(new URL(`file://${small}`))) head.release();
  }
  assert.equal(fdsOn(small), 0, "no fd left per file read to its end");

  // Heads held past the end: lazy windows still map from the file, so it stays open until close().
  const data = patternBytes(6 * 16 * pageSize + 5, 9);
  const path = tempFile(data);
  const reader = new PageReader(path, { windowSize: 16 * pageSize, chunkSize: 4 * pageSize });
  const held = [...reader];
  assert.ok(fdsOn(path) > 0, "held heads keep the file open");
  assert.equal(sha256(Buffer.concat(held.map((head) => head.bytes))), sha256(data));
  for (const head of held) head.release();
  reader.close();
  assert.equal(fdsOn(path), 0);
});

test("bad sources, targets and options are typed errors, and leave no descriptor open", () => {
  const fds = openDescriptorCount();
  assert.throws(() => new PageReader("/nonexistent/pageio"), (e) => code(e) === "ENOENT");
  assert.throws(() => new PageReader({} as string), TypeError);
  assert.throws(() => new PageReader(tempFile("x"), { windowSize: pageSize + 1 }), RangeError);
  assert.throws(() => new PageReader(tempFile("x"), { chunkSize: 0 }), RangeError);
  assert.throws(() => new PageWriter(tempDir()), (e) => code(e) === "EISDIR");
  assert.throws(() => new PageWriter(null as unknown as string), TypeError);
  assert.throws(() => new PageWriter(join(tempDir(), "x"), { highWaterMark: -1 }), RangeError);
  const dirHandle = openFile(tempDir());
  assert.throws(() => new PageReader(dirHandle).read(), (e) => code(e) === "EISDIR");
  dirHandle.close();
  assert.throws(() => new PageReader(tempFile("x"), { pool: {} as PagePool }), TypeError);
  assert.throws(() => new PageWriter(join(tempDir(), "never"), { highWaterMark: 0 }), RangeError);
  assert.equal(openDescriptorCount(), fds);
});

test("an OS error of a reader or writer on a path or file: URL names the path, as Deno's own errors do", async () => {
  // Before: open and mmap errors named it, but a read or write on what the path opened said only "readv"/"writev".
  const dir = tempDir();
  const named = (syscallCode: string, path: string) => (e: unknown) => {
    const error = e as PageIoError;
    assert.equal(error.code, syscallCode);
    assert.equal(error.path, path);
    assert.ok(error.message.includes(`'${path}'`), error.message);
    return true;
  };
  assert.throws(() => new PageReader(join(dir, "missing")), named("ENOENT", join(dir, "missing")));
  assert.throws(() => new PageReader(new URL(`file://${dir}/missing`)), named("ENOENT", join(dir, "missing")));
  assert.throws(() => new PageReader(dir).read(), named("EISDIR", dir));
  assert.throws(() => [...new PageReader(new URL(`file://${dir}`))], named("EISDIR", dir));
  await assert.rejects(new PageReader(dir).readAsync(), named("EISDIR", dir));
  await assert.rejects(new PageReader(dir).readable.getReader().read(), named("EISDIR", dir));
  using handle = openFile(dir);
  assert.throws(() => new PageReader(handle).read(), named("EISDIR", dir), "a FileHandle opened on a path");
  assert.throws(() => new PageWriter(dir), named("EISDIR", dir));

  const full = new PageWriter("/dev/full");
  full.write("x");
  assert.throws(() => full.flush(), named("ENOSPC", "/dev/full"));
  await assert.rejects(full.flushAsync(), named("ENOSPC", "/dev/full"));
  assert.throws(() => full.close(), named("ENOSPC", "/dev/full"));

  // The report of what could not be written at exit names it too.
  const run = runScript(`
    import { PageWriter } from "${root}mod.ts";
    new PageWriter("/dev/full").write("never written");`);
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stderr, /13 bytes .* ENOSPC.*'\/dev\/full'/);
});

test("another library's file object is a TypeError that says what to pass: its fd, or a path", async () => {
  // Before: node:fs/promises' handle gave "expected a FileHandle or a file descriptor number, got FileHandle".
  const path = tempFile("x");
  const theirs = await open(path);
  try {
    assert.throws(() => new PageReader(theirs as never), {
      name: "TypeError",
      message: new RegExp(`its fd \\(${theirs.fd}\\)`),
    });
    assert.throws(() => new PageWriter(new Blob(["x"]) as never), {
      name: "TypeError",
      message: /got Blob: pass a path/,
    });
    for (const head of new PageReader(theirs.fd)) head.release(); // as the message says
  } finally {
    await theirs.close();
  }
});

test("append with a FileHandle or fd is a TypeError (it applies to a path the writer opens), and opens nothing", () => {
  const fds = openDescriptorCount();
  using file = openFile(tempFile("kept"), "a");
  assert.throws(() => new PageWriter(file, { append: true }), TypeError);
  assert.throws(() => new PageWriter(file.fd, { append: true }), /append/);
  using writer = new PageWriter(file, { append: false }); // false asks for nothing
  writer.write("!");
  writer.flush();
  assert.equal(readFileSync(file.path!, "utf8"), "kept!");
  writer.close();
  file.close();
  assert.equal(openDescriptorCount(), fds);
});

test("a file cut between windows: read() is ERR_FILE_TRUNCATED, the held window stays, nothing is released twice", () => {
  // Before: the old window was released, the next mapping failed with a RangeError naming mapFile, and
  // close() released the old window again: SIGSEGV at the next read of a held chunk.
  const data = patternBytes(64 * pageSize, 71);
  const path = tempFile(data);
  const run = runScript(
    `
    import { PageReader, pageSize } from "${root}mod.ts";
    import { truncateSync, readFileSync } from "node:fs";
    const data = new Uint8Array(readFileSync(${JSON.stringify(path)}));
    const reader = new PageReader(${JSON.stringify(path)}, { windowSize: 16 * pageSize, chunkSize: 8 * pageSize });
    const held = [reader.read(), reader.read()];
    truncateSync(${JSON.stringify(path)}, 16 * pageSize); // exactly the first window is left
    const out = {};
    for (let i = 0; i < 2; i++) {
      try { reader.read(); out.read = "no error"; } catch (e) { out.read = [e.constructor.name, e.code]; }
    }
    reader.close();
    if (typeof Deno !== "undefined") globalThis.gc(); else Bun.gc(true);
    out.held = held.every((h, i) => h.bytes.every((b, j) => b === data[i * 8 * pageSize + j]));
    held.forEach((h) => h.release());
    console.log(JSON.stringify(out));
  `,
    { denoFlags: ["--v8-flags=--expose-gc"] },
  );
  assert.equal(run.signal, null, run.stderr);
  assert.equal(run.status, 0, run.stderr);
  assert.deepEqual(JSON.parse(run.stdout.trim()), { read: ["PageIoError", "ERR_FILE_TRUNCATED"], held: true });
});

test("a file cut inside a mapped window: the next read() is ERR_FILE_TRUNCATED, no head of zeros is handed out", () => {
  // Before: the window already mapped went on as heads past the file's new end, each reading as zeros.
  const path = tempFile(patternBytes(64 * pageSize, 73));
  const reader = new PageReader(path, { windowSize: 64 * pageSize, chunkSize: 4 * pageSize });
  const held = [reader.read()!, reader.read()!];
  truncateSync(path, 4 * pageSize);
  assert.throws(() => reader.read(), (e) => code(e) === "ERR_FILE_TRUNCATED");
  held.forEach((h) => h.release());
  reader.close();
});

/** Bytes of `path` this process has mapped (/proc/self/maps). */
function mappedBytesOf(path: string): number {
  return readFileSync("/proc/self/maps", "utf8").split("\n").filter((line) => line.includes(path))
    .map((line) => line.split(" ")[0].split("-").map((x) => parseInt(x, 16)))
    .reduce((sum, [start, end]) => sum + end - start, 0);
}

test("maxMappedBytes bounds what a reader maps, whatever heads are held; past it heads are copies", () => {
  const data = patternBytes(100 * pageSize + 5, 72);
  const path = tempFile(data);
  assert.throws(() => new PageReader(path, { maxMappedBytes: 10 }), RangeError);
  const reader = new PageReader(path, {
    windowSize: 16 * pageSize,
    chunkSize: 4 * pageSize,
    maxMappedBytes: 40 * pageSize,
  });
  const heads: PageHead[] = [];
  for (let head = reader.read(); head !== null; head = reader.read()) heads.push(head);
  assert.equal(mappedBytesOf(path), 16 * pageSize, "the first window is mapped at once, the others when used");
  // Every head's bytes used, all heads held: windows map while they fit the budget, the rest are copies.
  const joined = new Uint8Array(data.length);
  let at = 0, most = 0;
  for (const head of heads) {
    joined.set(head.bytes, (at += head.byteLength) - head.byteLength);
    most = Math.max(most, mappedBytesOf(path));
  }
  // Two whole windows fit in 40 pages and the last (4 pages and 5 bytes) does; the others are copies.
  assert.equal(most, 37 * pageSize, "windows map while they fit the budget, and never pass it");
  assert.equal(sha256(joined), sha256(data));
  heads.forEach((h) => h.release());
  reader.close();
  assert.equal(mapsLinesMentioning(path), 0);
});

test("a reader on a FileHandle maps its windows as it reads them; past maxMappedBytes heads come from pool pages", () => {
  const data = patternBytes(100 * pageSize + 5, 74);
  const path = tempFile(data);
  using file = openFile(path);
  const reader = new PageReader(file, {
    windowSize: 16 * pageSize,
    chunkSize: 4 * pageSize,
    maxMappedBytes: 40 * pageSize,
  });
  const heads: PageHead[] = [];
  let most = 0;
  for (let head = reader.read(); head !== null; head = reader.read()) {
    heads.push(head);
    most = Math.max(most, mappedBytesOf(path));
  }
  assert.equal(most, 40 * pageSize, "windows fill the budget and never pass it");
  const joined = new Uint8Array(data.length);
  let at = 0;
  for (const head of heads) joined.set(head.bytes, (at += head.byteLength) - head.byteLength);
  assert.equal(sha256(joined), sha256(data));
  heads.forEach((h) => h.release());
  reader.close();
  assert.equal(mapsLinesMentioning(path), 0);
});

// --- reads of a pipe that fill several pool pages at once ---------------------------------------------------

/** A pipe holding `data` (written here, in one go: it fits), and a reader on it with a pool of 64 KiB pages. */
function filledPipe(data: Uint8Array, options: { length?: number } = {}) {
  const [readEnd, writeEnd] = pipe({ size: 1 << 20 });
  assert.equal(writev(writeEnd, [data]), data.byteLength);
  const pool = new PagePool({ pageSize: 16 * pageSize });
  const reader = new PageReader(readEnd, { pool, ...options });
  return { readEnd, writeEnd, pool, reader };
}

test("readAsync on a pipe holding several pages takes them in one read and hands them out in order, each once", async () => {
  const data = patternBytes(200_000, 11);
  const { readEnd, writeEnd, pool, reader } = filledPipe(data);
  const first = (await reader.readAsync())!;
  assert.equal(first.byteLength, pool.pageSize);
  assert.equal(pool.stats.inUse, Math.ceil(data.byteLength / pool.pageSize), "the rest was read ahead into pages");
  const parts = [first.bytes.slice()];
  let total = first.byteLength;
  first.release();
  while (total < data.byteLength) {
    const head = (await reader.readAsync())!;
    parts.push(head.bytes.slice());
    total += head.byteLength;
    head.release();
  }
  assert.equal(pool.stats.inUse, 0, "every read-ahead page was handed out and released");
  writeEnd.close();
  assert.equal(await reader.readAsync(), null);
  assert.equal(sha256(Buffer.concat(parts)), sha256(data));
  reader.close();
  readEnd.close();
  pool.close();
});

test("readAsync on a pipe its writer keeps ahead of: each read that fills what it asked asks twice as much, up to 1 MiB", async () => {
  const data = patternBytes(1 << 20, 13);
  const more = patternBytes(768 * 1024, 14);
  const { readEnd, writeEnd, pool, reader } = filledPipe(data);
  const heads: PageHead[] = [];
  const batch = async (pages: number, message: string) => {
    heads.push((await reader.readAsync())!);
    assert.equal(pool.stats.inUse, pages, message);
    for (let i = 1; i < pages; i++) heads.push((await reader.readAsync())!); // read ahead by that one readv
    for (const head of heads.splice(0)) {
      parts.push(head.bytes.slice());
      head.release();
    }
  };
  const parts: Uint8Array[] = [];
  await batch(4, "the first read asks 4 pages");
  await batch(8, "it filled them: the next asks 8");
  assert.equal(writev(writeEnd, [more]), more.byteLength); // the pipe full again
  await batch(16, "then 16, and takes a full pipe in one read");
  assert.equal(pool.stats.inUse, 0);
  writeEnd.close();
  assert.equal(await reader.readAsync(), null);
  assert.equal(sha256(Buffer.concat(parts)), sha256(Buffer.concat([data, more])));
  reader.close();
  readEnd.close();
  pool.close();
});

test("read-ahead heads: close() releases them, an aborted readAsync takes none, read() and readable go on from them", async () => {
  const data = patternBytes(200_000, 12);
  {
    const { readEnd, writeEnd, pool, reader } = filledPipe(data);
    const first = (await reader.readAsync())!;
    const aborted = AbortSignal.abort(new Error("stop"));
    await assert.rejects(reader.readAsync({ signal: aborted }), (e) => code(e) === "ABORT_ERR");
    const second = reader.read()!; // the sync form hands out what was read ahead first
    assert.deepEqual(second.bytes, data.subarray(pool.pageSize, 2 * pool.pageSize));
    second.release();
    reader.close(); // two heads still read ahead: released, not lost to the pool
    assert.equal(pool.stats.inUse, 1);
    assert.deepEqual(first.bytes, data.subarray(0, pool.pageSize), "a head handed out stays valid after close");
    first.release();
    assert.equal(pool.stats.inUse, 0);
    readEnd.close();
    writeEnd.close();
    pool.close();
  }
  {
    const { readEnd, writeEnd, pool, reader } = filledPipe(data);
    const first = (await reader.readAsync())!;
    const parts = [first.bytes.slice()];
    first.release();
    writeEnd.close();
    const stream = reader.readable.getReader();
    for (let chunk = await stream.read(); !chunk.done; chunk = await stream.read()) parts.push(chunk.value.slice());
    assert.equal(sha256(Buffer.concat(parts)), sha256(data));
    assert.equal(pool.stats.inUse, 0);
    readEnd.close();
    pool.close();
  }
});

test("a length on a pipe: reads that fill several pages stop at it, the rest stays in the pipe", async () => {
  const data = patternBytes(200_000, 13);
  const { readEnd, writeEnd, pool, reader } = filledPipe(data, { length: 100_001 });
  const parts: Uint8Array[] = [];
  for await (const head of reader) {
    parts.push(head.bytes.slice());
    head.release();
  }
  assert.deepEqual(new Uint8Array(Buffer.concat(parts)), data.subarray(0, 100_001));
  const rest = new Uint8Array(200_000);
  assert.equal(readv(readEnd, [rest]), 200_000 - 100_001);
  assert.deepEqual(rest.subarray(0, 200_000 - 100_001), data.subarray(100_001));
  reader.close();
  readEnd.close();
  writeEnd.close();
  pool.close();
});

test("32 MiB of random bytes from a child, for await over a PageReader: every byte once, in order", async () => {
  const data = new Uint8Array(32 << 20);
  for (let at = 0; at < data.byteLength; at += 65536) randomFillSync(data.subarray(at, at + 65536));
  const source = tempFile(data);
  const [readEnd, writeEnd] = pipe({ size: 1 << 20 });
  const child = spawn("cat", [source], { stdio: ["ignore", writeEnd.fd, "inherit"] });
  writeEnd.close();
  const exited = new Promise((resolve) => child.on("close", resolve));
  const hash = createHash("sha256");
  let total = 0;
  using pool = new PagePool({ pageSize: 16 * pageSize });
  using reader = new PageReader(readEnd, { pool });
  for await (const head of reader) {
    assert.ok(head.byteLength > 0 && head.byteLength <= pool.pageSize);
    hash.update(head.bytes);
    total += head.byteLength;
    head.release();
  }
  assert.equal(await exited, 0);
  readEnd.close();
  assert.equal(total, data.byteLength);
  assert.equal(hash.digest("hex"), sha256(data));
  assert.equal(pool.stats.inUse, 0);
});

test("readAsync of a pipe holding 4 pages makes one readv for all four (strace)", {
  skip: !haveStrace && "strace is not installed",
}, () => {
  const log = join(tempDir(), "strace.log");
  const run = runScript(
    `
    import { PagePool, PageReader, pageSize, pipe, writev } from "${root}mod.ts";
    const [readEnd, writeEnd] = pipe({ size: 1 << 20 });
    using pool = new PagePool({ pageSize: 16 * pageSize });
    const data = new Uint8Array(4 * pool.pageSize).fill(7);
    writev(writeEnd, [data]);
    using reader = new PageReader(readEnd, { pool });
    let total = 0;
    for (let i = 0; i < 4; i++) {
      const head = await reader.readAsync();
      total += head.byteLength;
      head.release();
    }
    console.log(JSON.stringify({ fd: readEnd.fd, total }));
  `,
    { prefix: ["strace", "-f", "-qq", "-e", "trace=readv", "-o", log] },
  );
  assert.equal(run.status, 0, run.stderr);
  const { fd, total } = JSON.parse(run.stdout.trim().split("\n").pop()!);
  assert.equal(total, 4 * 16 * pageSize);
  const reads = readFileSync(log, "utf8").split("\n").filter((l) => new RegExp(` readv\\(${fd},`).test(l));
  assert.equal(reads.length, 1, reads.join("\n"));
});

test("a loop left early closes its reader, as leaving a for await over a stream cancels it; held heads stay valid", async () => {
  // Before: `for (const head of new PageReader(path)) { ...; break; }` kept the file open, one descriptor per loop.
  const data = patternBytes(40 * 256 * 1024 + 5, 29); // more than one window
  const path = tempFile(data, "early.bin");
  const fds = openDescriptorCount();
  let held: PageHead | null = null;
  for (let i = 0; i < 20; i++) {
    for (const head of new PageReader(path)) {
      head.release();
      break;
    }
    for await (const head of new PageReader(path)) {
      head.release();
      break;
    }
  }
  assert.equal(openDescriptorCount(), fds, "no descriptor per loop left");

  const reader = new PageReader(path);
  let seen = 0;
  for (const head of reader) {
    if (++seen === 3) {
      held = head; // kept past the loop
      break;
    }
    head.release();
  }
  assert.throws(() => reader.read(), (e) => code(e) === "ERR_CLOSED");
  assert.deepEqual(held!.bytes, data.subarray(2 * 256 * 1024, 3 * 256 * 1024), "a held head still reads the file");
  held!.release();
  assert.equal(openDescriptorCount(), fds);

  // A throw in the body leaves the loop too; a caller's handle stays open (the reader never closes what it did not open).
  using handle = openFile(path);
  const onHandle = new PageReader(handle);
  await assert.rejects(async () => {
    for await (const head of onHandle) {
      head.release();
      throw new Error("stop");
    }
  }, /stop/);
  assert.throws(() => onHandle.read(), (e) => code(e) === "ERR_CLOSED");
  assert.equal(handle.closed, false);
  const next = new Uint8Array(4);
  assert.equal(readv(handle, [next]), 4, "the handle still reads");

  // A loop run to its end does not close the reader: read() gives null again, as before.
  const whole = new PageReader(path);
  let bytes = 0;
  for (const head of whole) {
    bytes += head.byteLength;
    head.release();
  }
  assert.equal(bytes, data.length);
  assert.equal(whole.read(), null);
  whole.close();
});

test("a reader read to its end while heads are held closes its file once the last of them is released", () => {
  // Before: the file stayed open until close(), so `for (const head of new PageReader(src)) writer.write(head)`,
  // whose writer held the last heads at the end, kept one descriptor per copy for good.
  const data = patternBytes(3 * 8 * 1024 * 1024 + 77, 31); // four windows
  const source = tempFile(data, "held.bin");
  const fds = openDescriptorCount();
  for (let i = 0; i < 5; i++) {
    const target = join(tempDir(), `copy-${i}`);
    using writer = new PageWriter(target);
    for (const head of new PageReader(source)) writer.write(head);
    writer.flush();
    assert.equal(sha256(readFileSync(target)), sha256(data));
  }
  assert.equal(openDescriptorCount(), fds, "no descriptor per copy");

  const held: PageHead[] = [];
  for (const head of new PageReader(source)) {
    if (held.length < 3 || head.byteLength < 256 * 1024) held.push(head); // the first window and the last
    else head.release();
  }
  assert.ok(fdsOn(source) >= 1, "open while heads are held");
  for (const head of held.slice(0, -1)) head.release();
  assert.ok(fdsOn(source) >= 1, "one head is still held");
  assert.deepEqual(held.at(-1)!.bytes, data.subarray(data.length - held.at(-1)!.byteLength));
  held.at(-1)!.release();
  assert.equal(fdsOn(source), 0, "closed with the last head");
  assert.equal(openDescriptorCount(), fds);
});
