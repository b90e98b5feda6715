// PageWriter on a pipe lends pool pages (vmsplice) instead of copying them: the pipe holds the pages
// themselves until its reader takes the bytes, so a lent page may neither change nor be reused before then.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { PagePool, pageSize, PageWriter, pipe, readv } from "../mod.ts";
import { haveStrace, patternBytes, root, runScript, sha256, tempDir } from "./helpers.ts";

/** Fills pages from a small pool with `data` and writes them; every page is reused many times over. */
async function sendThroughPool(writer: PageWriter, pool: PagePool, data: Uint8Array): Promise<void> {
  for (let at = 0; at < data.length; at += pool.pageSize) {
    while (pool.stats.free === 0 && pool.stats.total >= pool.maxPages) { // every page is in the pipe: let it drain
      await new Promise((resolve) => setTimeout(resolve, 1));
      await writer.flushAsync();
    }
    const page = pool.acquire();
    const part = data.subarray(at, at + pool.pageSize);
    page.bytes.set(part);
    const head = page.head(0, part.length);
    page.release(); // the head is the page's only holder: lendable
    await writer.writeAsync(head);
  }
  await writer.flushAsync();
}

test("pages lent to a pipe reach a reader process byte-exact, though the pool reuses them at once", async () => {
  const [readEnd, writeEnd] = pipe({ size: 256 * 1024 });
  const out = join(tempDir(), "received");
  const child = spawn("sh", ["-c", `cat > ${out}`], { stdio: [readEnd.fd, "ignore", "inherit"] });
  readEnd.close();
  const exited = new Promise((resolve) => child.on("close", resolve));
  const pool = new PagePool({ pageSize: 16 * pageSize, pages: 0, maxPages: 24 }); // 1.5 MiB for 20 MiB of data
  const data = patternBytes(20 * 1024 * 1024 + 99, 51);
  const writer = new PageWriter(writeEnd, { highWaterMark: 128 * 1024 });
  await sendThroughPool(writer, pool, data);
  writer.close();
  writeEnd.close();
  await exited;
  assert.equal(sha256(readFileSync(out)), sha256(data));
  assert.equal(pool.stats.inUse, 0, "every lent page came back");
  pool.close();
});

test("a lent page stays out of its pool until the reader takes its bytes; close() gives it fresh memory", () => {
  const [readEnd, writeEnd] = pipe();
  using pool = new PagePool({ pages: 0 });
  const writer = new PageWriter(writeEnd);
  const heads = [1, 2, 3].map((fill) => {
    const page = pool.acquire();
    page.bytes.fill(fill);
    const head = page.head();
    page.release();
    return head;
  });
  heads.forEach((head) => writer.write(head));
  writer.flush();
  assert.equal(pool.stats.inUse, 3, "all three pages are in the pipe, lent");
  const back = new Uint8Array(pageSize);
  assert.equal(readv(readEnd, [back]), pageSize);
  assert.deepEqual(back, new Uint8Array(pageSize).fill(1));
  writer.flush(); // reclaims what was read
  assert.equal(pool.stats.inUse, 2);
  writer.close(); // two pages still in the pipe: they come back with fresh memory, the pipe keeps the old
  assert.equal(pool.stats.inUse, 0);
  const reused = pool.acquire();
  reused.bytes.fill(9); // must not reach the pipe
  assert.equal(readv(readEnd, [back]), pageSize);
  assert.deepEqual(back, new Uint8Array(pageSize).fill(2));
  assert.equal(readv(readEnd, [back]), pageSize);
  assert.deepEqual(back, new Uint8Array(pageSize).fill(3));
  reused.release();
  readEnd.close();
  writeEnd.close();
});

test("a page someone else still holds is copied, not lent: changing it after the write changes nothing", () => {
  const [readEnd, writeEnd] = pipe();
  using pool = new PagePool({ pages: 0 });
  const writer = new PageWriter(writeEnd);
  const page = pool.acquire();
  page.bytes.fill(4);
  writer.write(page.head(0, 16));
  writer.flush();
  page.bytes.fill(5); // the page is still ours
  const back = new Uint8Array(16);
  readv(readEnd, [back]);
  assert.deepEqual(back, new Uint8Array(16).fill(4));
  assert.equal(page.refs, 1, "the written head was released: it was copied");
  page.release();
  writer.close();
  readEnd.close();
  writeEnd.close();
});

test("lend: false copies; a writer whose pipe was closed under it still gives its pages back", () => {
  using pool = new PagePool({ pages: 0 });
  const head = () => {
    const page = pool.acquire();
    const h = page.head(0, 100);
    page.release();
    return h;
  };
  const [readEnd, writeEnd] = pipe();
  const copying = new PageWriter(writeEnd, { lend: false });
  copying.write(head());
  copying.flush();
  assert.equal(pool.stats.inUse, 0, "copied: the page is back at once");
  copying.close();
  const lending = new PageWriter(writeEnd);
  lending.write(head());
  lending.flush();
  assert.equal(pool.stats.inUse, 1);
  writeEnd.close();
  lending.close();
  assert.equal(pool.stats.inUse, 0);
  readEnd.close();
});

test("strace: a PageWriter on a pipe lends its pages by vmsplice, and copies nothing", {
  skip: !haveStrace && "strace is not installed",
}, () => {
  const log = join(tempDir(), "strace.log");
  const run = runScript(
    `
    import { PagePool, PageWriter, pipe } from "${root}mod.ts";
    import { spawnSync } from "node:child_process";
    const [readEnd, writeEnd] = pipe({ size: 1 << 20 });
    using pool = new PagePool({ pageSize: 65536 });
    const writer = new PageWriter(writeEnd);
    for (let i = 0; i < 8; i++) {
      const page = pool.acquire();
      page.bytes.fill(i);
      writer.write(page.head());
      page.release();
    }
    writer.flush();
    writer.close();
    writeEnd.close();
    readEnd.close();
  `,
    { prefix: ["strace", "-f", "-e", "trace=vmsplice,writev", "-o", log] },
  );
  assert.equal(run.status, 0, run.stderr);
  const calls = readFileSync(log, "utf8").split("\n");
  const lent = calls.filter((l) => l.includes("vmsplice(") && /= \d+$/.test(l));
  assert.equal(lent.reduce((n, l) => n + Number(l.match(/= (\d+)$/)![1]), 0), 8 * 65536, "every byte lent");
  assert.equal(calls.filter((l) => /writev\(\d+, \[\{iov_base=/.test(l) && !/writev\([12],/.test(l)).length, 0);
});
