import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Brigade, openFile, PageHead, type PageIoError, PagePool, pageSize, pipe, readv } from "../mod.ts";
import { fifo, patternBytes, tempDir } from "./helpers.ts";

const code = (e: unknown) => (e as PageIoError).code;
const text = (s: string) => new TextEncoder().encode(s);

function headOf(pool: PagePool, bytes: Uint8Array): PageHead {
  const page = pool.acquire();
  page.bytes.set(bytes);
  const head = page.head(0, bytes.length);
  page.release();
  return head;
}

test("append and prepend keep order; byteLength, count and iteration agree", () => {
  using pool = new PagePool();
  const brigade = new Brigade();
  brigade.append(headOf(pool, text("body ")), text("tail"));
  brigade.prepend(text("first "), headOf(pool, text("second ")));
  assert.equal(brigade.count, 4);
  assert.equal(brigade.byteLength, 6 + 7 + 5 + 4);
  const seen = [...brigade].map((c) => new TextDecoder().decode(c instanceof PageHead ? c.bytes : c)).join("");
  assert.equal(seen, "first second body tail");
  const path = join(tempDir(), "order");
  using out = openFile(path, "w");
  assert.equal(brigade.flush(out), 22);
  assert.equal(readFileSync(path, "utf8"), "first second body tail");
  assert.equal(brigade.count, 0);
  assert.equal(brigade.byteLength, 0);
  assert.equal(pool.stats.inUse, 0, "written heads were released");
});

test("writeTo is one gather call of at most IOV_MAX chunks; flush empties the rest", () => {
  using pool = new PagePool({ pages: 0 });
  const brigade = new Brigade();
  for (let i = 0; i < 2000; i++) brigade.append(headOf(pool, new Uint8Array([i & 0xff, i >> 8])));
  const path = join(tempDir(), "batches");
  using out = openFile(path, "w");
  assert.equal(brigade.writeTo(out), 1024 * 2);
  assert.equal(brigade.count, 2000 - 1024);
  assert.equal(pool.stats.inUse, 2000 - 1024);
  assert.equal(brigade.flush(out), (2000 - 1024) * 2);
  const written = readFileSync(path);
  for (let i = 0; i < 2000; i++) assert.equal(written[2 * i] | (written[2 * i + 1] << 8), i);
  assert.equal(pool.stats.inUse, 0);
});

test("a partial write trims the head in place; would-block returns 0 and keeps the rest", () => {
  using pool = new PagePool({ pageSize: 16 * pageSize });
  const pipe = fifo();
  // O_RDWR on a FIFO never waits for a peer on Linux; non-blocking makes a full pipe return early.
  using end = openFile(pipe, "r+", { nonBlocking: true });
  const data = patternBytes(3 * 16 * pageSize, 3);
  const brigade = new Brigade();
  for (let i = 0; i < 3; i++) brigade.append(headOf(pool, data.subarray(i * 16 * pageSize, (i + 1) * 16 * pageSize)));
  const first = brigade.writeTo(end); // the pipe holds 64 KiB by default: less than the 192 KiB queued
  assert.ok(first > 0 && first < data.length, `wrote ${first}`);
  assert.equal(brigade.byteLength, data.length - first);
  assert.equal(brigade.writeTo(end), 0, "a full non-blocking pipe: nothing written, nothing lost");
  assert.equal(brigade.byteLength, data.length - first);
  const received: Uint8Array[] = [];
  for (let total = 0; total < data.length;) {
    const chunk = new Uint8Array(first);
    const n = readv(end, [chunk]);
    received.push(chunk.subarray(0, n));
    total += n;
    if (brigade.count > 0) brigade.flush(end);
  }
  assert.deepEqual(Buffer.concat(received), Buffer.from(data));
  assert.equal(pool.stats.inUse, 0);
});

test("a partial write of a head another brigade holds too leaves that brigade's bytes whole", () => {
  using pool = new PagePool({ pageSize: 16 * pageSize });
  const data = patternBytes(16 * pageSize, 5);
  const head = headOf(pool, data).retain(); // one reference for each brigade
  const [readEnd, writeEnd] = pipe({ size: 16 * pageSize });
  const first = new Brigade().append(new Uint8Array(1000), head);
  const second = new Brigade().append(head);
  const wrote = first.writeTo(writeEnd); // the pipe holds less than the two chunks: the head goes out in part
  assert.ok(wrote > 1000 && wrote < 1000 + data.length, `wrote ${wrote}`);
  const path = join(tempDir(), "shared-head");
  using out = openFile(path, "w");
  assert.equal(second.flush(out), data.length);
  assert.deepEqual(readFileSync(path), Buffer.from(data), "the second brigade wrote the whole head");
  assert.equal(second.count, 0);
  assert.equal(first.byteLength, 1000 + data.length - wrote);
  first.release();
  assert.equal(head.refs, 0);
  assert.equal(pool.stats.inUse, 0, "every page went back to the pool");
  readEnd.close();
  writeEnd.close();
});

test("a failed write leaves the brigade intact; release drops everything", () => {
  using pool = new PagePool();
  const brigade = new Brigade();
  brigade.append(headOf(pool, text("keep")), headOf(pool, text("me")));
  assert.throws(() => brigade.flush(999_999), (e) => code(e) === "EBADF");
  assert.throws(() => brigade.writeTo("x" as unknown as number), TypeError);
  assert.equal(brigade.count, 2);
  assert.equal(brigade.byteLength, 6);
  assert.equal(pool.stats.inUse, 2);
  brigade.release();
  assert.equal(brigade.count, 0);
  assert.equal(pool.stats.inUse, 0);
});

test("bad chunks are refused and nothing of the call is queued", () => {
  using pool = new PagePool();
  const brigade = new Brigade();
  const released = headOf(pool, text("x"));
  released.release();
  assert.throws(() => brigade.append(text("ok"), released), (e) => code(e) === "ERR_RELEASED");
  assert.throws(() => brigade.append(text("ok"), 42 as unknown as Uint8Array), TypeError);
  assert.throws(() => brigade.prepend({} as Uint8Array), TypeError);
  assert.equal(brigade.count, 0);
  assert.equal(brigade.byteLength, 0);
});

test("byteLength is what was queued: a resizable buffer growing or shrinking under a queued array", () => {
  const path = join(tempDir(), "resizable");
  using out = openFile(path, "w");
  const buffer = new ArrayBuffer(1000, { maxByteLength: 1 << 16 });
  const view = new Uint8Array(buffer); // tracks the buffer's length
  view.set(patternBytes(1000, 4));
  const brigade = new Brigade();
  brigade.append(view, text("!"));
  buffer.resize(5000); // grows: the queued 1 000 bytes go out, not 5 000
  assert.equal(brigade.byteLength, 1001);
  assert.equal(brigade.flush(out), 1001);
  assert.equal(brigade.byteLength, 0);
  assert.deepEqual(readFileSync(path), Buffer.concat([patternBytes(1000, 4), text("!")]));
  brigade.append(view); // 5 000 bytes now
  buffer.resize(10); // shrinks under it: refused, nothing written, nothing drifts
  assert.throws(() => brigade.flush(out), TypeError);
  assert.equal(brigade.byteLength, 5000);
  assert.equal(brigade.count, 1);
  assert.equal(readFileSync(path).length, 1001);
  brigade.release();
  assert.equal(brigade.byteLength, 0);
});

test("a Proxy or an object posing as a PageHead is refused, and a lying array counts its real length", () => {
  using pool = new PagePool();
  const head = headOf(pool, text("real"));
  const brigade = new Brigade();
  assert.throws(() => brigade.append(new Proxy(head, {})), TypeError);
  assert.throws(() => brigade.append(Object.create(PageHead.prototype)), TypeError);
  assert.throws(() => brigade.prepend(new Proxy(head, {})), TypeError);
  assert.equal(brigade.count, 0);
  const lying = text("twelve bytes");
  Object.defineProperty(lying, "byteLength", { value: 1 << 30 });
  brigade.append(lying, head);
  assert.equal(brigade.byteLength, 12 + 4);
  const path = join(tempDir(), "lying");
  using out = openFile(path, "w");
  assert.equal(brigade.flush(out), 16);
  assert.equal(readFileSync(path, "utf8"), "twelve bytesreal");
  assert.equal(pool.stats.inUse, 0);
});
