import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { type PageIoError, PagePool, PageReader, pageSize, PageWriter, pipe, writevAsync } from "../mod.ts";
import { liveRegionCount } from "../src/system.ts";
import { collectGarbage, isDeno, openDescriptorCount, patternBytes, sha256, tempDir, tempFile } from "./helpers.ts";

// deno-lint-ignore no-explicit-any
declare const Bun: any;
const code = (e: unknown) => (e as PageIoError).code;

test("a file's readable goes into a Response byte-exact, and its windows are unmapped once the chunks are gone", async () => {
  const data = patternBytes(3 * 1024 * 1024 + 123, 41);
  const path = tempFile(data);
  const regions = liveRegionCount();
  const fds = openDescriptorCount();
  await (async () => {
    const reader = new PageReader(path, { chunkSize: 64 * 1024, windowSize: 256 * pageSize });
    const body = new Uint8Array(await new Response(reader.readable).arrayBuffer());
    assert.equal(sha256(body), sha256(data));
    // Windows that chunks still hold share one descriptor of the SIGBUS guard's on the file.
    assert.ok(openDescriptorCount() <= fds + 1, "the reader closed its file at the end of the stream");
  })();
  await collectGarbage();
  assert.equal(liveRegionCount(), regions, "every window was unmapped once no chunk was reachable");
  assert.equal(openDescriptorCount(), fds, "and the guard's descriptor went with the last");
});

test("chunks from a file's readable stay valid after the stream ends, for as long as they are held", async () => {
  const data = patternBytes(600_000, 42);
  const reader = new PageReader(tempFile(data), { chunkSize: 100_000, windowSize: 16 * pageSize });
  const chunks: Uint8Array[] = [];
  for await (const chunk of reader.readable) chunks.push(chunk);
  assert.ok(chunks.length >= 6);
  await collectGarbage(); // the windows of held chunks must survive this
  const joined = new Uint8Array(data.length);
  let at = 0;
  for (const chunk of chunks) joined.set(chunk, (at += chunk.length) - chunk.length);
  assert.deepEqual(joined, data);
});

test("a pipe's readable carries everything written into the pipe", async () => {
  const [readEnd, writeEnd] = pipe();
  const data = patternBytes(1_000_000, 43);
  const writing = writevAsync(writeEnd, [data]).then(() => writeEnd.close());
  const body = new Uint8Array(await new Response(new PageReader(readEnd).readable).arrayBuffer());
  await writing;
  readEnd.close();
  assert.equal(sha256(body), sha256(data));
});

test("readable.pipeTo(writable) copies a file byte-exact; a writable takes heads and arrays", async () => {
  const data = patternBytes(2_500_000, 44);
  const target = join(tempDir(), "copy");
  await new PageReader(tempFile(data), { chunkSize: 300_000 }).readable.pipeTo(new PageWriter(target).writable);
  assert.deepEqual(new Uint8Array(readFileSync(target)), data);

  const mixed = join(tempDir(), "mixed");
  const writer = new PageWriter(mixed).writable.getWriter();
  using pool = new PagePool();
  const page = pool.acquire();
  page.bytes.set([1, 2, 3]);
  const reused = new Uint8Array([4, 5]);
  await writer.write(page.head(0, 3));
  page.release();
  await writer.write(reused);
  reused.set([6, 7]); // the write settled: the array is ours again
  await writer.write(reused);
  await writer.close();
  assert.deepEqual(new Uint8Array(readFileSync(mixed)), new Uint8Array([1, 2, 3, 4, 5, 6, 7]));
  assert.equal(pool.stats.inUse, 0, "the head was released once written");
});

test("a writable refuses what is not bytes, and a cancelled readable closes its reader", async () => {
  const fds = openDescriptorCount();
  const writer = new PageWriter(join(tempDir(), "bad")).writable.getWriter();
  await assert.rejects(writer.write("text" as unknown as Uint8Array), TypeError);
  assert.equal(openDescriptorCount(), fds, "the errored stream closed its writer");
  const reader = new PageReader(tempFile(patternBytes(1_000_000, 45)));
  const stream = reader.readable.getReader();
  assert.ok((await stream.read()).value!.length > 0);
  await stream.cancel();
  assert.ok(openDescriptorCount() <= fds + 1, "cancel closed the reader's file (a held chunk's window: the guard's)");
  assert.throws(() => reader.read(), (e) => code(e) === "ERR_CLOSED");
});

test("a server answers with a file's pages: Deno.serve or Bun.serve with a PageReader's readable", async () => {
  const data = patternBytes(5 * 1024 * 1024 + 7, 46);
  const path = tempFile(data);
  const handler = () => new Response(new PageReader(path).readable);
  let port: number, stop: () => Promise<void>;
  if (isDeno) {
    const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, handler);
    port = server.addr.port;
    stop = () => server.shutdown();
  } else {
    const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: handler });
    port = server.port;
    stop = () => server.stop(true);
  }
  try {
    for (let i = 0; i < 3; i++) {
      const body = new Uint8Array(await (await fetch(`http://127.0.0.1:${port}/`)).arrayBuffer());
      assert.equal(sha256(body), sha256(data));
    }
  } finally {
    await stop();
  }
});
