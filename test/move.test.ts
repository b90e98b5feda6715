import { test } from "node:test";
import assert from "node:assert/strict";
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import {
  Brigade,
  type FileHandle,
  openFile,
  type PageIoError,
  PagePool,
  PageReader,
  pageSize,
  PageWriter,
  pipe,
  readv,
  readvAsync,
  socketPair,
  writev,
  writevAsync,
} from "../mod.ts";
import {
  fifo,
  haveStrace,
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

function copyWithReader(source: string, target: string | FileHandle, mode: "w" | "a" = "w"): void {
  using out = typeof target === "string" ? openFile(target, mode) : target;
  using reader = new PageReader(source, { chunkSize: 100_000, windowSize: 16 * pageSize });
  using writer = new PageWriter(out);
  for (const head of reader) writer.write(head);
  writer.flush();
}

test("file spans from a PageReader reach a file byte for byte (kernel-side copy)", () => {
  const data = patternBytes(2 * 1024 * 1024 + 77, 31);
  const target = join(tempDir(), "copy");
  copyWithReader(tempFile(data), target);
  assert.equal(sha256(readFileSync(target)), sha256(data));
});

test("an O_APPEND target refuses copy_file_range: the brigade falls back to writev, silently and correctly", () => {
  const data = patternBytes(500_000, 32);
  const target = tempFile("prefix:");
  copyWithReader(tempFile(data), target, "a");
  const written = readFileSync(target);
  assert.equal(written.subarray(0, 7).toString(), "prefix:");
  assert.equal(sha256(written.subarray(7)), sha256(data));
});

test("mixed queues keep their order: memory heads, file spans and byte arrays", () => {
  using pool = new PagePool();
  const data = patternBytes(300_000, 33);
  using reader = new PageReader(tempFile(data), { chunkSize: 100_000 });
  const page = pool.acquire();
  page.bytes.set(new TextEncoder().encode("<page>"));
  const brigade = new Brigade();
  brigade.append(page.head(0, 6), reader.read()!, new TextEncoder().encode("<array>"), reader.read()!, page.head(1, 4));
  brigade.prepend(reader.read()!);
  page.release();
  const target = join(tempDir(), "mixed");
  using out = openFile(target, "w");
  const expected = Buffer.concat([
    data.subarray(200_000, 300_000),
    Buffer.from("<page>"),
    data.subarray(0, 100_000),
    Buffer.from("<array>"),
    data.subarray(100_000, 200_000),
    Buffer.from("page"),
  ]);
  assert.equal(brigade.flush(out), expected.length);
  assert.equal(sha256(readFileSync(target)), sha256(expected));
  assert.equal(pool.stats.inUse, 0);
});

test("spans of a closed reader are written from their mapping (the fd may name another file by then)", () => {
  const data = patternBytes(200_000, 34);
  const reader = new PageReader(tempFile(data), { chunkSize: 64 * 1024 });
  const brigade = new Brigade();
  for (const head of reader) brigade.append(head);
  reader.close();
  const decoy = openFile(tempFile(patternBytes(200_000, 99))); // likely reuses the reader's fd number
  const target = join(tempDir(), "after-close");
  using out = openFile(target, "w");
  brigade.flush(out);
  decoy.close();
  assert.equal(sha256(readFileSync(target)), sha256(data));
});

test("a head whose bytes were changed in place is written as changed, not as its file's bytes by a kernel move", () => {
  // A write into a read-only mapping is the process's private copy: the file, which a kernel move reads, lacks it.
  const data = patternBytes(16 * pageSize, 35);
  const path = tempFile(data);
  const want = data.slice();
  for (let at = 0; at < want.length; at += 3 * pageSize + 1) want[at] ^= 0xff;
  const targets: [string, () => Uint8Array][] = [];
  const file = join(tempDir(), "changed");
  targets.push([file, () => new Uint8Array(readFileSync(file))]);
  const [readEnd, writeEnd] = pipe();
  targets.push(["pipe", () => {
    const got = new Uint8Array(want.length);
    for (let at = 0; at < got.length;) at += readv(readEnd, [got.subarray(at)]);
    return got;
  }]);
  for (const [name, read] of targets) {
    for (const source of ["path", "handle"]) {
      using input = openFile(path);
      // Small windows: a handle's windows after the first map only when a head's bytes are needed.
      using reader = new PageReader(source === "path" ? path : input, {
        chunkSize: pageSize,
        windowSize: 4 * pageSize,
      });
      const heads = [...reader];
      let at = 0;
      for (const head of heads) {
        for (let i = 0; i < head.byteLength; i++, at++) if (want[at] !== data[at]) head.bytes[i] = want[at];
      }
      {
        using out = name === "pipe" ? null : openFile(file, "w");
        using writer = new PageWriter(out ?? writeEnd);
        for (const head of heads) writer.write(head);
        writer.flush();
      }
      assert.deepEqual(read(), want, `${name} from a ${source} reader`);
    }
  }
  // A read into a head changes its bytes too, with no view made.
  {
    using reader = new PageReader(path, { chunkSize: pageSize });
    const head = reader.read()!;
    writev(writeEnd, [new Uint8Array(pageSize).fill(7)]);
    assert.equal(readv(readEnd, [head]), pageSize);
    {
      using out = openFile(file, "w");
      using writer = new PageWriter(out);
      writer.write(head);
      writer.flush();
    }
    assert.deepEqual(new Uint8Array(readFileSync(file)), new Uint8Array(pageSize).fill(7));
  }
  readEnd.close();
  writeEnd.close();
});

// --- a reader closed while its spans are being moved: its fd number may name another file by the next call ---

/** Descriptor numbers of this process open on `path`. */
function fdNumbersOn(path: string): number[] {
  return readdirSync("/proc/self/fd").map(Number).filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === path;
    } catch {
      return false;
    }
  });
}

/**
 * Opens `path` until one of its handles has the number `fd` (a closed number is handed out again, lowest first:
 * a few tries at most); all stay open. Asserts it got that number, or the test would prove nothing.
 */
function openWithNumber(path: string, fd: number): FileHandle[] {
  const opened: FileHandle[] = [];
  while (opened.length < 64 && !opened.some((file) => file.fd === fd)) opened.push(openFile(path));
  assert.ok(opened.some((file) => file.fd === fd), `another file got fd ${fd}`);
  return opened;
}

/** Reads `source` until its end or `length` bytes. */
async function readUpTo(source: FileHandle, length: number): Promise<Uint8Array> {
  const got = new Uint8Array(length);
  let at = 0;
  for (let n; at < length && (n = await readvAsync(source, [got.subarray(at)])) > 0;) at += n;
  return got.subarray(0, at);
}

const havePrlimit = spawnSync("prlimit", ["--version"], { stdio: "ignore" }).status === 0;

const fullTargets = [
  ["pipe", () => pipe()],
  ["blocking pipe (the move waits on a thread)", () => pipe({ nonBlocking: false })],
  ["socket pair", () => socketPair()],
] as const;

/**
 * Makes one async write to a blocking pipe go off the JS thread, so that whatever the runtime opens for that the
 * first time (Bun starts a Worker, with descriptors of its own) is open before a test counts on which number the
 * next open gets: one such descriptor took a closed number first, one run in four.
 */
async function warmThreadPath(): Promise<void> {
  const [readEnd, writeEnd] = pipe({ nonBlocking: false });
  const data = new Uint8Array(1 << 20);
  const received = readUpTo(readEnd, data.byteLength);
  await writevAsync(writeEnd, [data]);
  writeEnd.close();
  assert.equal((await received).byteLength, data.byteLength);
  readEnd.close();
}

for (const [name, pair] of fullTargets) {
  test(`a PageReader closed while flushAsync moves its spans to a full ${name}: the bytes are its file's, not those of a file opened since under its fd number`, async () => {
    // Before: the move waiting for room kept the old fd number, and went on with the other file's bytes.
    await warmThreadPath();
    const data = patternBytes(8 << 20, 50);
    const source = tempFile(data);
    const decoy = tempFile(patternBytes(8 << 20, 51), "decoy");
    const [readEnd, writeEnd] = pair();
    const reader = new PageReader(source);
    const writer = new PageWriter(writeEnd, { highWaterMark: 64 << 20 });
    for (const head of reader) writer.write(head);
    const before = fdNumbersOn(source);
    const flushed = writer.flushAsync(); // the target takes what fits, then the move waits: nobody reads yet
    reader.close();
    const fd = before.find((n) => !fdNumbersOn(source).includes(n))!; // the reader's own
    const decoys = openWithNumber(decoy, fd);
    const received = readUpTo(readEnd, data.byteLength + 1); // the slow reader comes only now
    try {
      assert.equal(await flushed, data.byteLength);
      writer.close();
      writeEnd.close();
      const got = await received;
      assert.equal(got.byteLength, data.byteLength);
      assert.equal(sha256(got), sha256(data));
    } finally {
      for (const file of decoys) file.close();
      readEnd.close();
    }
  });
}

for (const [name, pair] of fullTargets) {
  test(`a move of spans to a full ${name} aborted: its duplicate descriptor is closed, and the rest goes later from memory, byte-exact`, async () => {
    const data = patternBytes(2 << 20, 54);
    const source = tempFile(data);
    const [readEnd, writeEnd] = pair();
    const reader = new PageReader(source);
    const writer = new PageWriter(writeEnd, { highWaterMark: 64 << 20 });
    for (const head of reader) writer.write(head);
    const before = fdNumbersOn(source);
    const abort = new AbortController();
    const flushed = writer.flushAsync({ signal: abort.signal });
    const dups = fdNumbersOn(source).filter((n) => !before.includes(n));
    assert.equal(dups.length, 1, "the move has a descriptor of its own");
    abort.abort();
    // A thread blocked in sendfile gives the call back only once the pipe has room: the reader comes now.
    const received = readUpTo(readEnd, data.byteLength + 1);
    const outcome = await flushed.then((n) => n, code);
    // A thread's sendfile is not interrupted: it may move it all before the abort is seen, and that is done.
    assert.ok(outcome === "ABORT_ERR" || name.startsWith("blocking") && outcome === data.byteLength, `${outcome}`);
    assert.ok(!fdNumbersOn(source).includes(dups[0]), "the duplicate was closed");
    reader.close();
    try {
      await writer.flushAsync();
      writer.close();
      writeEnd.close();
      assert.equal(sha256(await received), sha256(data));
    } finally {
      readEnd.close();
    }
  });
}

test("a move of spans whose target is closed while it waits: ERR_CLOSED, and its duplicate descriptor is closed", async () => {
  const source = tempFile(patternBytes(1 << 20, 56));
  const [readEnd, writeEnd] = pipe();
  using reader = new PageReader(source);
  const writer = new PageWriter(writeEnd);
  for (const head of reader) writer.write(head);
  const before = fdNumbersOn(source);
  const flushed = writer.flushAsync();
  const dups = fdNumbersOn(source).filter((n) => !before.includes(n));
  assert.equal(dups.length, 1, "the move has a descriptor of its own");
  writeEnd.close();
  await assert.rejects(flushed, (e) => code(e) === "ERR_CLOSED");
  assert.ok(!fdNumbersOn(source).includes(dups[0]), "the duplicate was closed");
  assert.throws(() => writer.close(), (e) => code(e) === "ERR_CLOSED"); // the rest had nowhere to go
  readEnd.close();
});

test("no descriptor left for the duplicate (EMFILE): a flushAsync of spans writes them from memory, byte-exact", {
  skip: !havePrlimit && "prlimit is not installed",
}, () => {
  const data = patternBytes(1 << 20, 57);
  const source = tempFile(data);
  const run = runScript(
    `
    import { createHash } from "node:crypto";
    import { openFile, PageReader, PageWriter, pipe, readvAsync } from "${root}mod.ts";
    const [readEnd, writeEnd] = pipe();
    const reader = new PageReader(${JSON.stringify(source)});
    const writer = new PageWriter(writeEnd, { highWaterMark: 64 << 20 });
    // An async read that waits and a flush: what async calls need of their own is had before the table is full.
    const waiting = readvAsync(readEnd, [new Uint8Array(1)]);
    await new Promise((resolve) => setTimeout(resolve, 10));
    writer.write(new Uint8Array(1));
    await writer.flushAsync();
    await waiting;
    for (const head of reader) writer.write(head);
    const filler = [];
    try {
      for (;;) filler.push(openFile(${JSON.stringify(source)}));
    } catch (e) {
      if (e.code !== "EMFILE") throw e;
    }
    const flushed = writer.flushAsync(); // its first step, the duplicate included, is made at once
    const filled = filler.length;
    for (const file of filler) file.close(); // the runtime may need some of its own while this waits
    const got = new Uint8Array(${data.byteLength});
    for (let at = 0; at < got.byteLength;) at += await readvAsync(readEnd, [got.subarray(at)]);
    const written = await flushed;
    console.log(JSON.stringify({ written, filled, sha: createHash("sha256").update(got).digest("hex") }));
  `,
    { prefix: ["prlimit", "--nofile=512"] },
  );
  assert.equal(run.status, 0, run.stderr);
  const result = JSON.parse(run.stdout.trim());
  assert.ok(result.filled > 0);
  assert.deepEqual({ written: result.written, sha: result.sha }, { written: data.byteLength, sha: sha256(data) });
});

test("a PageReader closed between synchronous flushes to a full non-blocking pipe: the rest are its file's bytes", () => {
  const data = patternBytes(1 << 20, 52);
  const source = tempFile(data);
  const decoy = tempFile(patternBytes(1 << 20, 53), "decoy");
  const [readEnd, writeEnd] = pipe({ nonBlocking: true }); // a flush returns what the pipe took
  const reader = new PageReader(source);
  const writer = new PageWriter(writeEnd, { highWaterMark: 64 << 20 });
  for (const head of reader) writer.write(head);
  const before = fdNumbersOn(source);
  let sent = writer.flush(); // what fits: the pipe would block then
  assert.ok(sent > 0 && sent < data.byteLength);
  reader.close();
  const fd = before.find((n) => !fdNumbersOn(source).includes(n))!; // the reader's own
  const decoys = openWithNumber(decoy, fd);
  const got = new Uint8Array(data.byteLength);
  let at = 0;
  try {
    while (at < data.byteLength) {
      at += readv(readEnd, [got.subarray(at)]);
      if (sent < data.byteLength) sent += writer.flush();
    }
    assert.equal(sha256(got), sha256(data));
  } finally {
    writer.close();
    for (const file of decoys) file.close();
    writeEnd.close();
    readEnd.close();
  }
});

test("a span whose file was truncated after it was read is ENODATA, with the progress kept", () => {
  const data = patternBytes(300_000, 35);
  const source = tempFile(data);
  using reader = new PageReader(source, { chunkSize: 300_000 });
  const head = reader.read()!;
  truncateSync(source, 100_000);
  const brigade = new Brigade().append(head);
  using out = openFile(join(tempDir(), "short"), "w");
  assert.throws(
    () => brigade.flush(out),
    (e) =>
      code(e) === "ENODATA" && (e as PageIoError).bytesTransferred === 100_000 &&
      // it says which end was met, not the kernel's "no data available"
      (e as Error).message.includes("the file ends before byte 300000") &&
      (e as Error).message.includes("100000 bytes of it were there"),
  );
  assert.equal(brigade.byteLength, 200_000, "the unwritten rest stays queued");
  brigade.release();
});

test("a kernel copy that fails part-way keeps no disk reserved past what it wrote", () => {
  const source = tempFile(patternBytes(16 << 20, 38));
  using reader = new PageReader(source, { chunkSize: 16 << 20, windowSize: 16 << 20 });
  const head = reader.read()!;
  truncateSync(source, 1 << 20); // the 16 MiB span now ends after 1 MiB: ENODATA there
  const target = join(tempDir(), "short");
  using out = openFile(target, "w");
  const brigade = new Brigade().append(head);
  assert.throws(() => brigade.flush(out), (e) => code(e) === "ENODATA");
  brigade.release();
  const { size, blocks } = statSync(target);
  assert.equal(size, 1 << 20);
  assert.ok(blocks * 512 <= (1 << 20) + (256 << 10), `${blocks * 512} bytes allocated for a ${size}-byte file`);
});

test("to a pipe, file spans go by sendfile to a reader in another process", async () => {
  const pipe = fifo();
  const data = patternBytes(1_000_000, 36);
  const outPath = join(tempDir(), "from-pipe");
  const child = startScript(`
    import { openSync, readSync, writeSync, closeSync } from "node:fs";
    const fd = openSync(${JSON.stringify(pipe)}, "r"), out = openSync(${JSON.stringify(outPath)}, "w");
    const buf = new Uint8Array(65536);
    for (let n; (n = readSync(fd, buf)) > 0;) writeSync(out, buf.subarray(0, n));
    closeSync(out);
  `);
  copyWithReader(tempFile(data), await whenReaderOpens(() => openFile(pipe, "w")));
  assert.equal((await child.exited).status, 0);
  assert.equal(sha256(readFileSync(outPath)), sha256(data));
});

test("strace: a reader-to-writer copy uses copy_file_range to a file and sendfile to a device", {
  skip: !haveStrace && "strace is not installed",
}, () => {
  const source = tempFile(patternBytes(3 * 1024 * 1024, 37));
  const log = join(tempDir(), "strace.log");
  const run = runScript(
    `
    import { PageReader, PageWriter } from "${root}mod.ts";
    using reader = new PageReader(${JSON.stringify(source)});
    using writer = new PageWriter(${JSON.stringify(join(tempDir(), "traced"))});
    for (const head of reader) writer.write(head);
    writer.flush();
    using again = new PageReader(${JSON.stringify(source)});
    using toDevice = new PageWriter("/dev/null");
    for (const head of again) toDevice.write(head);
    toDevice.flush();
  `,
    { prefix: ["strace", "-f", "-e", "trace=copy_file_range,sendfile,writev", "-o", log] },
  );
  assert.equal(run.status, 0, run.stderr);
  const calls = readFileSync(log, "utf8").split("\n");
  const moved = calls.filter((l) => l.includes("copy_file_range(") && /= \d+$/.test(l));
  assert.ok(moved.length > 0, "copy_file_range was used");
  const bytes = moved.reduce((n, l) => n + Number(l.match(/= (\d+)$/)![1]), 0);
  assert.equal(bytes, 3 * 1024 * 1024, "every byte went by copy_file_range");
  const sent = calls.filter((l) => l.includes("sendfile(") && /= \d+$/.test(l));
  assert.equal(
    sent.reduce((n, l) => n + Number(l.match(/= (\d+)$/)![1]), 0),
    3 * 1024 * 1024,
    "every byte to /dev/null went by sendfile",
  );
  assert.equal(
    calls.filter((l) => /writev\(\d+, \[\{iov_base=/.test(l) && !l.includes("writev(1,") && !l.includes("writev(2,"))
      .length,
    0,
    "no user-space write of the data",
  );
});

// --- whole copies the way the README writes them: windows mapped only when needed, spans moved in long runs ---

/** `for (const head of reader) writer.write(head); writer.flush()`, as the README's copy does. */
function readmeCopy(source: string, target: string, reader: object = {}, writer: object = {}): void {
  using r = new PageReader(source, reader);
  using w = new PageWriter(target, writer);
  for (const head of r) w.write(head);
  w.flush();
}

test("a copy is byte-exact whatever the size, range and target: empty, 1 byte, not page-multiple, many windows", () => {
  const windows = { windowSize: 16 * pageSize, chunkSize: 5 * pageSize + 3 }; // heads across window ends
  const sizes = [0, 1, pageSize - 1, pageSize + 1, 3 * 16 * pageSize + 77, (9 << 20) + 5];
  for (const size of sizes) {
    const data = patternBytes(size, 40 + size % 97);
    const source = tempFile(data);
    for (const options of [{}, windows]) {
      const target = join(tempDir(), "copy");
      readmeCopy(source, target, options);
      assert.equal(sha256(readFileSync(target)), sha256(data), `${size} bytes, ${JSON.stringify(options)}`);
      const appended = tempFile("old:");
      readmeCopy(source, appended, options, { append: true });
      const got = readFileSync(appended);
      assert.equal(got.subarray(0, 4).toString(), "old:");
      assert.equal(sha256(got.subarray(4)), sha256(data), `${size} bytes appended, ${JSON.stringify(options)}`);
    }
    for (const [offset, length] of [[0, size], [1, size - 1], [pageSize + 7, size - pageSize - 9]]) {
      if (length < 0 || offset + length > size) continue;
      const target = join(tempDir(), "range");
      readmeCopy(source, target, { ...windows, offset, length });
      assert.equal(sha256(readFileSync(target)), sha256(data.subarray(offset, offset + length)), `${offset}+${length}`);
    }
  }
});

test("a copy between filesystems (/dev/shm to a temporary directory): EXDEV, then sendfile, byte-exact", {
  skip: !existsSync("/dev/shm") && "no /dev/shm",
}, () => {
  const dir = mkdtempSync("/dev/shm/pageio-test-");
  try {
    const data = patternBytes((3 << 20) + 1234, 41);
    const source = join(dir, "source");
    writeFileSync(source, data);
    const target = join(tempDir(), "from-shm");
    readmeCopy(source, target, { windowSize: 16 * pageSize });
    assert.equal(sha256(readFileSync(target)), sha256(data));
    if (!haveStrace) return;
    const calls = tracedReadmeCopy(source, target, "copy_file_range,sendfile");
    assert.equal(sha256(readFileSync(target)), sha256(data));
    const sent = calls.filter((l) => l.includes("sendfile(") && /= \d+$/.test(l));
    const refused = calls.filter((l) => l.includes("copy_file_range(") && l.includes("EXDEV"));
    if (refused.length === 0) return; // a kernel that copies between these filesystems itself
    assert.equal(sent.reduce((n, l) => n + Number(l.match(/= (\d+)$/)![1]), 0), data.byteLength, "all by sendfile");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** The README's copy loop in a child under strace, tracing `calls`: the child's trace lines. */
function tracedReadmeCopy(source: string, target: string, calls: string): string[] {
  const log = join(tempDir(), "strace.log");
  const run = runScript(
    `
    import { PageReader, PageWriter } from "${root}mod.ts";
    using reader = new PageReader(${JSON.stringify(source)});
    using writer = new PageWriter(${JSON.stringify(target)});
    for (const head of reader) writer.write(head);
    writer.flush();
  `,
    { prefix: ["strace", "-f", "-e", `trace=${calls}`, "-o", log] },
  );
  assert.equal(run.status, 0, run.stderr);
  return readFileSync(log, "utf8").split("\n");
}

test("heads of windows never mapped, still held when their reader closes: written from memory, byte-exact", () => {
  const data = patternBytes(200_000, 42);
  const reader = new PageReader(tempFile(data), { windowSize: 16 * pageSize, chunkSize: 10_000 });
  const brigade = new Brigade();
  for (const head of reader) brigade.append(head);
  reader.close(); // its file is closed: the spans cannot go by kernel move, the windows were mapped first
  const target = join(tempDir(), "after-close");
  using out = openFile(target, "w");
  assert.equal(brigade.flush(out), data.byteLength);
  assert.equal(sha256(readFileSync(target)), sha256(data));
});

test("a window that was never mapped, of a file cut since: its head's bytes are ERR_FILE_TRUNCATED, never zeros", () => {
  const source = tempFile(patternBytes(64 * pageSize, 43));
  using reader = new PageReader(source, { windowSize: 16 * pageSize, chunkSize: 16 * pageSize });
  reader.read()!.release();
  const second = reader.read()!; // the second window, not mapped yet
  truncateSync(source, 20 * pageSize);
  assert.throws(() => second.bytes, (e) => code(e) === "ERR_FILE_TRUNCATED");
  second.release();
});

test("strace: a 24 MiB copy the README's way is at most two copy_file_range calls, and maps at most one window", {
  skip: !haveStrace && "strace is not installed",
}, () => {
  const size = 24 << 20;
  const source = tempFile(patternBytes(size, 44));
  const target = join(tempDir(), "traced");
  const calls = tracedReadmeCopy(source, target, "copy_file_range,mmap");
  assert.equal(sha256(readFileSync(target)), sha256(readFileSync(source)));
  const moved = calls.filter((l) => l.includes("copy_file_range(") && /= \d+$/.test(l));
  assert.ok(moved.length >= 1 && moved.length <= 2, moved.join("\n"));
  assert.equal(moved.reduce((n, l) => n + Number(l.match(/= (\d+)$/)![1]), 0), size);
  const windows = calls.filter((l) => /mmap\(NULL, 8388608, [^,]+, [^,]+, \d+, /.test(l)); // of a file
  assert.ok(windows.length <= 1, windows.join("\n"));
});
