// A PageReader's windows after the first (a file the reader opened) are mapped only when a head's bytes are
// needed in memory. What they may cost (maxMappedBytes, the bytes heads need), and what a head says once its
// file was cut, grown or closed under it. A crash is judged from a child's exit status.
import { test } from "node:test";
import assert from "node:assert/strict";
import { closeSync, openSync, readFileSync, truncateSync, writeSync } from "node:fs";
import { join } from "node:path";
import { openFile, type PageHead, type PageIoError, PageReader, pageSize, writev } from "../mod.ts";
import { patternBytes, root, runScript, sha256, tempDir, tempFile } from "./helpers.ts";

const code = (e: unknown) => (e as PageIoError).code;
const MiB = 1 << 20;

/** Bytes of `path` this process has mapped (/proc/self/maps). */
function mappedBytesOf(path: string): number {
  return readFileSync("/proc/self/maps", "utf8").split("\n").filter((line) => line.includes(path))
    .map((line) => line.split(" ")[0].split("-").map((x) => parseInt(x, 16)))
    .reduce((sum, [start, end]) => sum + end - start, 0);
}

/** A sparse file of `size` bytes holding `marks` (offset → bytes) and zeros elsewhere. */
function sparseFile(size: number, marks: [number, Uint8Array][]): string {
  const path = join(tempDir(), "sparse");
  const fd = openSync(path, "w");
  for (const [offset, bytes] of marks) writeSync(fd, bytes, 0, bytes.length, offset);
  closeSync(fd);
  truncateSync(path, size);
  return path;
}

test("a 256 KiB head of a lazy window with windowSize 2 ** 30 costs about its own bytes, not the window", () => {
  const marks: [number, Uint8Array][] = [[32 * MiB + 5, patternBytes(1000, 1)], [3 * 2 ** 30 + 7, patternBytes(99, 2)]];
  const path = sparseFile(4 * 2 ** 30, marks);
  for (const holdFirst of [false, true]) { // the reader's room whole, or taken by a held first window
    const run = runScript(`
    import { PageReader, pageSize } from "${root}mod.ts";
    import { openSync, readFileSync, readSync } from "node:fs";
    const rss = () => Number(readFileSync("/proc/self/statm", "utf8").split(" ")[1]) * pageSize;
    const fd = openSync(${JSON.stringify(path)}, "r");
    const reader = new PageReader(${JSON.stringify(path)}, { windowSize: 2 ** 30, maxMappedBytes: 32 << 20 });
    const out = { grew: [], same: [] };
    let at = 0, first = null;
    for (const want of [32 << 20, 3 * 2 ** 30 + 7]) { // the second window's first head; a later one's
      for (;;) {
        const head = reader.read();
        at += head.byteLength;
        if (at <= want) { if (${holdFirst} && first === null) first = head; else head.release(); continue; }
        const before = rss();
        const bytes = head.bytes;
        let sum = 0;
        for (let i = 0; i < bytes.length; i += 64) sum += bytes[i];
        out.grew.push(rss() - before);
        const expected = new Uint8Array(bytes.length);
        readSync(fd, expected, 0, expected.length, at - bytes.length);
        out.same.push(bytes.length === 256 * 1024 && bytes.every((b, i) => b === expected[i]));
        head.release();
        break;
      }
    }
    first?.release();
    reader.close();
    console.log(JSON.stringify(out));
  `);
    assert.equal(run.signal, null, run.stderr);
    assert.equal(run.status, 0, run.stderr);
    const out = JSON.parse(run.stdout.trim().split("\n").pop()!);
    assert.deepEqual(out.same, [true, true], JSON.stringify(out));
    for (const grew of out.grew) assert.ok(grew < 64 * MiB, `RSS grew ${grew / MiB} MiB (holdFirst ${holdFirst})`);
  }
});

test("many windows held by heads: what is mapped never passes maxMappedBytes, before close() or after", () => {
  const data = patternBytes(200 * pageSize + 5, 81);
  const path = tempFile(data);
  for (const windowSize of [16 * pageSize, 64 * pageSize]) { // one window under the bound, one over it
    const reader = new PageReader(path, { windowSize, chunkSize: 4 * pageSize, maxMappedBytes: 40 * pageSize });
    const heads: PageHead[] = [];
    for (let head = reader.read(); head !== null; head = reader.read()) heads.push(head);
    assert.ok(mappedBytesOf(path) <= 40 * pageSize, `${mappedBytesOf(path) / pageSize} pages mapped`);
    // The first windows' heads used now, the others' only after close(): no more than the bound is ever mapped.
    for (let i = 0; i < 24; i += 2) {
      const start = i * 4 * pageSize;
      assert.equal(sha256(heads[i].bytes), sha256(data.subarray(start, start + heads[i].byteLength)));
      assert.ok(mappedBytesOf(path) <= 40 * pageSize, `${mappedBytesOf(path) / pageSize} pages mapped`);
    }
    reader.close();
    assert.ok(mappedBytesOf(path) <= 40 * pageSize, `${mappedBytesOf(path) / pageSize} pages mapped after close`);
    const target = join(tempDir(), "out");
    using out = openFile(target, "w");
    assert.equal(writev(out, heads), data.byteLength);
    assert.equal(sha256(readFileSync(target)), sha256(data), `windowSize ${windowSize / pageSize} pages`);
    const joined = new Uint8Array(data.byteLength);
    heads.forEach((h, i) => joined.set(h.bytes, i * 4 * pageSize));
    assert.equal(sha256(joined), sha256(data));
    heads.forEach((h) => h.release());
    assert.equal(mappedBytesOf(path), 0);
  }
});

test("a window never mapped, its file cut before the reader closed: ERR_FILE_TRUNCATED after close, as before it", () => {
  const data = patternBytes(64 * pageSize, 82);
  const path = tempFile(data);
  const reader = new PageReader(path, { windowSize: 16 * pageSize, chunkSize: 4 * pageSize });
  for (let i = 0; i < 4; i++) reader.read()!.release();
  const kept = reader.read()!; // [16, 20) pages: the second window, not mapped
  const lost = reader.read()!; // [20, 24) pages
  truncateSync(path, 22 * pageSize);
  reader.close();
  assert.equal(sha256(kept.bytes), sha256(data.subarray(16 * pageSize, 20 * pageSize)), "still in the file");
  assert.throws(() => lost.bytes, (e) => code(e) === "ERR_FILE_TRUNCATED");
  using out = openFile(join(tempDir(), "out"), "w");
  assert.throws(() => writev(out, [lost]), (e) => code(e) === "ERR_FILE_TRUNCATED");
  assert.throws(() => lost.slice(3 * pageSize).bytes, (e) => code(e) === "ERR_FILE_TRUNCATED");
  assert.equal(lost.slice(0, 1).bytes[0], data[20 * pageSize], "a slice of it the file still holds reads");
  kept.release();
  lost.release();
});

test("lazy windows under a cut, a grown file, a closed reader and a transferred buffer: no crash, never wrong bytes", () => {
  const data = patternBytes(96 * pageSize, 83).map((b) => b | 1); // no zero bytes: zeros are the guard's
  const path = tempFile(data);
  const run = runScript(`
    import { openFile, PageReader, pageSize, writev } from "${root}mod.ts";
    import { appendFileSync, readFileSync, truncateSync } from "node:fs";
    const path = ${JSON.stringify(path)};
    const data = new Uint8Array(readFileSync(path));
    const out = {};
    const attempt = (name, f) => { try { out[name] = f(); } catch (e) { out[name] = e.code ?? String(e); } };
    const same = (head, at) => head.bytes.length === head.byteLength && head.bytes.every((b, i) => b === data[at + i]);
    const write = (head) => { using f = openFile(path + ".out", "w"); return writev(f, [head]); };

    // A copy (the first window held fills the room) whose buffer is transferred away, then another head of it.
    let reader = new PageReader(path, { windowSize: 16 * pageSize, chunkSize: 4 * pageSize, maxMappedBytes: 16 * pageSize });
    const first = reader.read();
    for (let i = 1; i < 4; i++) reader.read().release();
    const a = reader.read(), b = reader.read(); // [16, 20) and [20, 24) pages
    attempt("copyA", () => same(a, 16 * pageSize));
    const moved = a.bytes.buffer.transfer(); // its window's whole copy, as a postMessage transfer takes it
    attempt("copyB", () => write(b) === b.byteLength && readFileSync(path + ".out").every((x, i) => x === data[20 * pageSize + i]));
    attempt("moved", () => moved.byteLength > 0);
    [first, a, b].forEach((h) => h.release());
    reader.close();

    // A window mapped, then the file grown and cut under it, and the reader closed: zeros or typed errors.
    reader = new PageReader(path, { windowSize: 16 * pageSize, chunkSize: 4 * pageSize });
    for (let i = 0; i < 4; i++) reader.read().release();
    const c = reader.read(), d = reader.read(); // [16, 20), [20, 24) pages
    attempt("mapped", () => same(c, 16 * pageSize));
    appendFileSync(path, new Uint8Array(8 * pageSize).fill(7));
    attempt("grown", () => same(d, 20 * pageSize));
    const view = d.bytes;
    truncateSync(path, 18 * pageSize);
    reader.close();
    attempt("cutRead", () => view.every((x) => x === 0) && c.bytes.subarray(0, 2 * pageSize).every((x, i) => x === data[16 * pageSize + i]));
    attempt("cutWrite", () => write(d));
    attempt("afterClose", () => c.bytes[3 * pageSize]);
    c.release();
    d.release();
    console.log(JSON.stringify(out));
  `);
  assert.equal(run.signal, null, run.stderr);
  assert.equal(run.status, 0, run.stderr);
  assert.deepEqual(JSON.parse(run.stdout.trim().split("\n").pop()!), {
    copyA: true,
    copyB: true,
    moved: true,
    mapped: true,
    grown: true,
    cutRead: true,
    cutWrite: "ENODATA",
    afterClose: 0,
  });
});
