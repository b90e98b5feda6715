import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import {
  type PageIoError,
  PagePool,
  PageReader,
  pageSize,
  PageWriter,
  pipe,
  readv,
  socketPair,
  writev,
} from "../mod.ts";
import { patternBytes, sha256, tempFile } from "./helpers.ts";

const code = (e: unknown) => (e as PageIoError).code;

test("a pipe carries pages byte for byte: an async writer and an async reader in one process", async () => {
  const [readEnd, writeEnd] = pipe({ size: 1 << 20 });
  using pool = new PagePool({ pageSize: 16 * pageSize, pages: 0 });
  const data = patternBytes(5_000_000, 71);
  const writer = new PageWriter(writeEnd, { highWaterMark: 256 * 1024 });
  const sending = (async () => {
    for (let at = 0; at < data.length; at += pool.pageSize) {
      const page = pool.acquire();
      const part = data.subarray(at, at + pool.pageSize);
      page.bytes.set(part);
      await writer.writeAsync(page.head(0, part.length));
      page.release();
    }
    await writer.flushAsync();
    writer.close();
    writeEnd.close();
  })();
  const parts: Uint8Array[] = [];
  const reader = new PageReader(readEnd, { pool });
  for await (const head of reader) {
    parts.push(head.bytes.slice());
    head.release();
  }
  await sending;
  reader.close();
  readEnd.close();
  assert.equal(sha256(Buffer.concat(parts)), sha256(data));
  assert.equal(pool.stats.inUse, 0);
});

test("a socket pair is two-way; file spans reach a socket by sendfile", () => {
  const [a, b] = socketPair();
  writev(a, [new TextEncoder().encode("ping")]);
  const got = new Uint8Array(4);
  assert.equal(readv(b, [got]), 4);
  assert.equal(new TextDecoder().decode(got), "ping");
  writev(b, [new TextEncoder().encode("pong")]);
  assert.equal(readv(a, [got]), 4);
  assert.equal(new TextDecoder().decode(got), "pong");
  const data = patternBytes(100_000, 72);
  {
    using reader = new PageReader(tempFile(data));
    using writer = new PageWriter(a);
    for (const head of reader) writer.write(head);
    writer.flush();
  }
  const received = new Uint8Array(100_000);
  let total = 0;
  while (total < received.length) total += readv(b, [received.subarray(total)]);
  assert.equal(sha256(received), sha256(data));
  a.close();
  b.close();
});

test("pipe sizes and non-blocking ends behave as asked; bad options are typed errors", () => {
  const [r, w] = pipe({ nonBlocking: true, size: 1 << 20 });
  const big = new Uint8Array(2 << 20);
  const first = writev(w, [big]); // a 1 MiB pipe takes 1 MiB, then would block
  assert.ok(first >= 1 << 20 && first < 2 << 20, `wrote ${first}`);
  assert.equal(writev(w, [big]), 0, "a full non-blocking pipe returns 0, never waits");
  assert.throws(() => readv(r, [{} as Uint8Array]), TypeError);
  r.close();
  w.close();
  assert.throws(() => pipe({ size: 0 }), RangeError);
  assert.throws(() => pipe({ size: -1 }), RangeError);
  const flags = readFileSync(`/proc/self/fdinfo/${socketPair()[0].fd}`, "utf8").match(/flags:\s+(\d+)/)![1];
  assert.ok((parseInt(flags, 8) & 0o2000000) !== 0, "close-on-exec");
  assert.throws(() => writev(w, [big]), (e) => code(e) === "ERR_CLOSED");
});
