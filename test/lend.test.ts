// PageWriter on a pipe lends pool pages (vmsplice) instead of copying them: the pipe holds the pages
// themselves, and whatever the reader splices or tees them into may hold them as long as it likes, so a lent
// page is never reused in place: it gets fresh memory before its pool hands it out again.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { openFile, PagePool, pageSize, PageWriter, pipe, readv } from "../mod.ts";
import { fifo, haveStrace, patternBytes, root, runScript, sha256, tempDir, whenReaderOpens } from "./helpers.ts";

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

test("a lent page goes back to its pool at once with fresh memory: reusing it changes nothing in the pipe", () => {
  const [readEnd, writeEnd] = pipe();
  using pool = new PagePool({ pages: 0, maxPages: 3 });
  const writer = new PageWriter(writeEnd);
  for (const fill of [1, 2, 3]) {
    const page = pool.acquire();
    page.bytes.fill(fill);
    const head = page.head();
    page.release();
    writer.write(head);
  }
  writer.flush();
  assert.equal(pool.stats.inUse, 0, "lent pages are back, though the pipe still holds their old memory");
  const reused = [1, 2, 3].map(() => pool.acquire()); // the same three pages (maxPages 3)
  for (const page of reused) {
    assert.deepEqual(page.bytes, new Uint8Array(pageSize), "fresh zeroed memory, not the lent bytes");
    page.bytes.fill(9); // must not reach the pipe
  }
  const back = new Uint8Array(pageSize);
  for (const fill of [1, 2, 3]) {
    assert.equal(readv(readEnd, [back]), pageSize);
    assert.deepEqual(back, new Uint8Array(pageSize).fill(fill));
  }
  reused.forEach((page) => page.release());
  writer.close();
  readEnd.close();
  writeEnd.close();
});

const havePython = spawnSync("python3", ["-c", "import ctypes; ctypes.CDLL(None).tee"]).status === 0;

// The reader moves the lent pages on without reading them (splice into a second pipe, or tee and then read
// the first): the first pipe then reads as empty (FIONREAD 0) while the second still holds the very pages.
const forwarder = `
import ctypes, fcntl, os, sys
libc = ctypes.CDLL(None, use_errno=True)
mode, total, go, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
r, w = os.pipe()
fcntl.fcntl(w, 1031, 1 << 20)  # F_SETPIPE_SZ: room for all of it
moved = 0
while moved < total:
    n = libc.splice(0, None, w, None, total - moved, 0) if mode == "splice" else libc.tee(0, w, total - moved, 0)
    if n <= 0: sys.exit("%s failed: errno %d" % (mode, ctypes.get_errno()))
    moved += n
    if mode == "tee":
        left = n  # tee leaves the bytes in the first pipe: read them off it, as a reader would
        while left > 0: left -= len(os.read(0, left))
print("moved", flush=True)
open(go).read()  # until the writer has reused its pages
with open(out, "wb") as f:
    while moved > 0:
        b = os.read(r, moved); f.write(b); moved -= len(b)
`;

for (const mode of ["splice", "tee"] as const) {
  test(`a lent page whose bytes the reader ${mode}s on is not reused under them`, {
    skip: !havePython && "python3 with ctypes is not installed",
  }, async () => {
    const [readEnd, writeEnd] = pipe({ size: 1 << 20 });
    const go = fifo();
    const out = join(tempDir(), "forwarded");
    const pageBytes = 16 * pageSize;
    const data = patternBytes(8 * pageBytes, 61);
    const child = spawn("python3", ["-c", forwarder, mode, String(data.length), go, out], {
      stdio: [readEnd.fd, "pipe", "inherit"],
    });
    readEnd.close();
    const exited = new Promise<number | null>((resolve) => child.on("close", resolve));
    const moved = new Promise((resolve) => child.stdout!.on("data", resolve));
    using pool = new PagePool({ pageSize: pageBytes, pages: 0, maxPages: 8 });
    const writer = new PageWriter(writeEnd);
    for (let i = 0; i < 8; i++) {
      const page = pool.acquire();
      page.bytes.set(data.subarray(i * pageBytes, (i + 1) * pageBytes));
      const head = page.head();
      page.release();
      writer.write(head);
    }
    writer.flush();
    await moved; // the first pipe is empty now; the bytes sit in the second one
    writer.flush();
    const reused = Array.from({ length: 8 }, () => pool.acquire()); // all 8 pages again (maxPages 8)
    reused.forEach((page) => page.bytes.fill(0xee));
    (await whenReaderOpens(() => openFile(go, "w"))).close(); // let the child read what it forwarded
    assert.equal(await exited, 0);
    assert.equal(sha256(readFileSync(out)), sha256(data), "the forwarded bytes are the ones written");
    reused.forEach((page) => page.release());
    writer.close();
    writeEnd.close();
  });
}

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

test("lend: false copies (the page is reused as it is); a lent page comes back with fresh memory", () => {
  using pool = new PagePool({ pages: 0, maxPages: 1 });
  const head = () => {
    const page = pool.acquire();
    page.bytes.fill(7);
    const h = page.head(0, 100);
    page.release();
    return h;
  };
  const firstByteOfNextPage = () => {
    const page = pool.acquire();
    const first = page.bytes[0];
    page.release();
    return first;
  };
  const [readEnd, writeEnd] = pipe();
  const copying = new PageWriter(writeEnd, { lend: false });
  copying.write(head());
  copying.flush();
  assert.equal(pool.stats.inUse, 0, "copied: the page is back at once");
  assert.equal(firstByteOfNextPage(), 7, "copied: nothing else holds it, so it is reused in place");
  copying.close();
  const lending = new PageWriter(writeEnd);
  lending.write(head());
  lending.flush();
  assert.equal(pool.stats.inUse, 0, "lent: back at once");
  assert.equal(firstByteOfNextPage(), 0, "lent: fresh memory, the pipe keeps the old");
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
