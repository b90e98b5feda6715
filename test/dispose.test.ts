import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { type PageIoError, PagePool, PageReader, PageWriter, pipe, SharedRing } from "../mod.ts";
import { root, runScript, tempDir } from "./helpers.ts";

const code = (e: unknown) => (e as PageIoError).code;

test("using releases pages and heads; disposing what was released already does nothing", () => {
  using pool = new PagePool({ pages: 4 });
  {
    using page = pool.acquire();
    using head = page.head(0, 8);
    head.bytes.fill(1);
    assert.equal(page.refs, 2);
    assert.equal(pool.stats.inUse, 1);
  }
  assert.equal(pool.stats.inUse, 0, "both references went at the end of the block");
  {
    using page = pool.acquire();
    page.release(); // released by hand inside the block: the dispose after it is a no-op
    const other = pool.acquire();
    const head = other.head();
    other.release(); // the head holds the page now
    head[Symbol.dispose]();
    head[Symbol.dispose]();
    assert.equal(head.byteLength, 0);
  }
  assert.equal(pool.stats.inUse, 0);
});

test("a ring slot disposed before publish goes unpublished, and reserve hands it out again", () => {
  using producer = SharedRing.create({ slots: 2 });
  using consumer = SharedRing.open(producer.path);
  let index: number;
  let stale: Uint8Array;
  {
    using slot = producer.reserve();
    index = slot.index;
    stale = slot.bytes;
    slot.bytes[0] = 9;
  }
  assert.equal(stale.byteLength, 0, "views of the abandoned slot read as empty");
  assert.throws(() => consumer.receive({ timeout: 0 }), (e) => code(e) === "ETIMEDOUT");
  {
    using slot = producer.reserve();
    assert.equal(slot.index, index);
    slot.bytes[0] = 7;
    slot.publish(1); // published inside the block: dispose leaves it to the consumer
  }
  using head = consumer.receive()!;
  assert.deepEqual([...head.bytes], [7]);
});

test("await using a PageWriter flushes asynchronously and closes: to a file, and to a pipe read on this thread", async () => {
  const path = join(tempDir(), "await-using.txt");
  let kept: PageWriter;
  {
    await using writer = new PageWriter(path);
    kept = writer;
    writer.write("hello\n");
    assert.ok(writer[Symbol.asyncDispose]() instanceof Promise, "an async dispose of its own");
  }
  assert.equal(readFileSync(path, "utf8"), "hello\n");
  assert.throws(() => kept.write("more"), (e) => code(e) === "ERR_CLOSED");
  await kept[Symbol.asyncDispose](); // a second dispose does nothing

  // Before: `await using` fell back to the synchronous dispose, whose flush of a full pipe blocked the thread
  // its reader runs on: for ever with waiting ends (so in a child), ERR_UNFLUSHED with non-blocking ones.
  const lines = 100_000;
  const expected = Array.from({ length: lines }, (_, i) => `line ${i}\n`).join("").length;
  for (const options of [{}, { nonBlocking: true }]) {
    const run = runScript(
      `
      import { PageReader, PageWriter, pipe } from "${root}mod.ts";
      const [readEnd, writeEnd] = pipe(${JSON.stringify(options)});
      const reading = (async () => {
        let bytes = 0;
        for await (const head of new PageReader(readEnd)) {
          bytes += head.byteLength;
          head.release();
        }
        return bytes;
      })();
      {
        await using writer = new PageWriter(writeEnd);
        for (let i = 0; i < ${lines}; i++) writer.write(\`line \${i}\\n\`);
      }
      writeEnd.close();
      console.log(await reading);`,
      { timeout: 30_000 },
    );
    assert.equal(run.status, 0, `${JSON.stringify(options)}: ${run.signal ?? ""} ${run.stderr}`);
    assert.equal(Number(run.stdout.trim()), expected, JSON.stringify(options));
  }
});

test("await using a PageWriter whose flush fails rejects with the flush's error and still closes", async () => {
  let kept: PageWriter | undefined;
  await assert.rejects(async () => {
    await using writer = new PageWriter("/dev/full");
    kept = writer;
    writer.write("lost");
  }, (e) => code(e) === "ENOSPC");
  assert.throws(() => kept!.write("x"), (e) => code(e) === "ERR_CLOSED");
});

test("await using a PageWriter closed during a flush ends once that flush settled: everything is written", async () => {
  // Before: the dispose saw the writer closed and returned at once, with the flush still in flight; closing the
  // pipe then (as after the block) cut the data short.
  const [readEnd, writeEnd] = pipe();
  const received = new Response(new PageReader(readEnd).readable).arrayBuffer();
  const data = new Uint8Array(4 << 20).fill(7);
  let kept: PageWriter;
  {
    await using writer = new PageWriter(writeEnd);
    kept = writer;
    writer.write(data);
    const flushing = writer.flushAsync(); // more than the pipe holds: it waits on the reader
    writer.close(); // completes once the flush settles
    flushing.catch(() => {});
  }
  assert.equal(kept.bytesWritten, data.length);
  writeEnd.close();
  assert.equal((await received).byteLength, data.length);
  readEnd.close();
});
