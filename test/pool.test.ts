import { test } from "node:test";
import assert from "node:assert/strict";
import { native } from "../ffi/native.ts";
import { type PageIoError, PagePool, pageSize } from "../mod.ts";
import { liveRegionCount } from "../src/system.ts";
import { collectGarbage, root, runScript } from "./helpers.ts";

const code = (e: unknown) => (e as PageIoError).code;

test("pageSize must be a positive multiple of the OS page size", () => {
  assert.throws(() => new PagePool({ pageSize: pageSize + 1 }), RangeError);
  assert.throws(() => new PagePool({ pageSize: 100 }), RangeError);
  assert.throws(() => new PagePool({ pageSize: 0 }), RangeError);
  assert.throws(() => new PagePool({ pageSize: -pageSize }), RangeError);
  assert.throws(() => new PagePool({ pageSize: "4096" as unknown as number }), TypeError);
  assert.throws(() => new PagePool({ maxPages: 0 }), RangeError);
  assert.throws(() => new PagePool({ pages: 10, maxPages: 5 }), RangeError);
  assert.throws(() => new PagePool({ leakDetection: "loud" as "off" }), TypeError);
  using big = new PagePool({ pageSize: 4 * pageSize, pages: 1 });
  const page = big.acquire();
  assert.equal(page.bytes.byteLength, 4 * pageSize);
  page.release();
});

test("pages are page-aligned memory outside the JS heap, distinct from each other", () => {
  using pool = new PagePool({ pages: 8 });
  const pages = Array.from({ length: 8 }, () => pool.acquire());
  const addresses = new Set(pages.map((p) => native.addressOf(p.bytes)));
  assert.equal(addresses.size, 8);
  for (const address of addresses) assert.equal(address % pageSize, 0);
  pages.forEach((p, i) => p.bytes.fill(i));
  pages.forEach((p, i) => assert.ok(p.bytes.every((b) => b === i)));
  pages.forEach((p) => p.release());
});

test("a page returns to the pool only when its last reference goes", () => {
  using pool = new PagePool({ pages: 4 });
  const page = pool.acquire();
  assert.equal(page.refs, 1);
  const head = page.head(10, 20);
  assert.equal(page.refs, 2);
  page.retain();
  assert.equal(page.refs, 3);
  page.release();
  page.release();
  assert.equal(pool.stats.inUse, 1, "the head still holds the page");
  head.bytes[0] = 5;
  head.release();
  assert.deepEqual(pool.stats, {
    pageSize,
    total: pool.stats.total,
    free: pool.stats.total,
    inUse: 0,
    leaked: 0,
    retired: 0,
  });
  assert.equal(page.refs, 0);
});

test("released pages' views are revoked; the next owner's data is never visible through them", () => {
  using pool = new PagePool({ pages: 1, maxPages: 1 });
  const first = pool.acquire();
  const stale = first.bytes;
  const staleHead = first.head(0, 8);
  const staleHeadBytes = staleHead.bytes;
  stale.fill(1);
  staleHead.release();
  first.release();
  assert.equal(stale.length, 0);
  assert.equal(staleHeadBytes.length, 0);
  const second = pool.acquire(); // the same memory, a new owner
  second.bytes.fill(2);
  assert.equal(stale[0], undefined);
  stale[0] = 99; // ignored
  assert.equal(second.bytes[0], 2);
  assert.throws(() => first.bytes, (e) => code(e) === "ERR_RELEASED");
  assert.throws(() => staleHead.bytes, (e) => code(e) === "ERR_RELEASED");
  second.release();
});

test("double release, retain after release and heads on released pages throw", () => {
  using pool = new PagePool({ pages: 2 });
  const page = pool.acquire();
  page.release();
  assert.throws(() => page.release(), (e) => code(e) === "ERR_RELEASED");
  assert.throws(() => page.retain(), (e) => code(e) === "ERR_RELEASED");
  assert.throws(() => page.head(), (e) => code(e) === "ERR_RELEASED");
  assert.equal(pool.stats.inUse, 0, "accounting intact");
  assert.equal(pool.stats.free, pool.stats.total);
  const other = pool.acquire();
  assert.throws(() => other.head(-1), RangeError);
  assert.throws(() => other.head(0, pageSize + 1), RangeError);
  assert.throws(() => other.head(pageSize, 1), RangeError);
  assert.throws(() => other.head(NaN), RangeError);
  assert.equal(other.refs, 1, "a refused head took no reference");
  other.release();
});

test("the pool grows by slabs up to maxPages, then refuses until a page comes back", () => {
  using pool = new PagePool({ pages: 0, maxPages: 300 });
  assert.equal(pool.stats.total, 0);
  const pages = Array.from({ length: 300 }, () => pool.acquire());
  assert.equal(pool.stats.inUse, 300);
  assert.throws(
    () => pool.acquire(),
    (e) => code(e) === "ERR_POOL_EXHAUSTED" && /maxPages \(300\)/.test((e as Error).message),
  );
  pages.pop()!.release();
  const again = pool.acquire();
  again.release();
  pages.forEach((p) => p.release());
  assert.equal(pool.stats.free, pool.stats.total);
});

test("close is graceful: no more acquire, pages in use stay valid, slabs unmap when the last returns", () => {
  const regions = liveRegionCount();
  const pool = new PagePool({ pages: 4 });
  assert.equal(liveRegionCount(), regions + 1);
  const page = pool.acquire();
  page.bytes[0] = 7;
  pool.close();
  pool.close();
  assert.throws(() => pool.acquire(), (e) => code(e) === "ERR_CLOSED");
  assert.equal(page.bytes[0], 7);
  assert.equal(liveRegionCount(), regions + 1);
  page.release();
  assert.equal(liveRegionCount(), regions, "the slab is unmapped");
});

test("a page garbage-collected without release is reported once, with where it was acquired", () => {
  const run = runScript(
    `
    import { PagePool } from "${root}mod.ts";
    const pool = new PagePool({ pages: 4, leakDetection: "paranoid" });
    function leakOne() { pool.acquire().bytes[0] = 1; }
    leakOne();
    const kept = pool.acquire();
    // Until the collector has found it (Bun scans the stack conservatively: a stale word may keep it a while),
    // with a generous bound; then a few more rounds, in which it must not be reported again.
    const collect = async () => {
      if (typeof Deno !== "undefined") globalThis.gc(); else Bun.gc(true);
      await new Promise((r) => setTimeout(r, 20));
    };
    for (const deadline = Date.now() + 30_000; pool.stats.leaked === 0 && Date.now() < deadline;) await collect();
    for (let i = 0; i < 4; i++) await collect();
    console.log(JSON.stringify(pool.stats));
    kept.release();
  `,
    { denoFlags: ["--v8-flags=--expose-gc"] },
  );
  assert.equal(run.status, 0, run.stderr);
  const stats = JSON.parse(run.stdout.trim().split("\n").pop()!);
  assert.equal(stats.leaked, 1);
  assert.equal(stats.inUse, 2);
  assert.equal(run.stderr.match(/pageio LEAK/g)?.length, 1);
  assert.match(run.stderr, /Acquired at:[\s\S]*leakOne/);
});

test("sampled leak detection costs nothing observable and released pages are never reported", async () => {
  using pool = new PagePool({ leakDetection: "sampled" });
  for (let i = 0; i < 1000; i++) pool.acquire().release();
  await collectGarbage();
  assert.equal(pool.stats.leaked, 0);
});

test("revocation under a hot JIT-compiled loop: after release, reads are empty, writes ignored, no crash", () => {
  using pool = new PagePool({ pages: 1, maxPages: 1 });
  const page = pool.acquire();
  const view = page.bytes;
  view.fill(1);
  function spin(bytes: Uint8Array, rounds: number): number {
    let sum = 0;
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < bytes.length; i += 8) {
        sum += bytes[i] ?? 0;
        bytes[i] = 1; // on a revoked view: ignored
      }
    }
    return sum;
  }
  assert.equal(spin(view, 2000), 2000 * (pageSize / 8)); // hot: optimized with the view's length in mind
  page.release();
  assert.equal(spin(view, 2000), 0, "the optimized loop sees an empty view");
  const next = pool.acquire(); // the same memory, a new owner
  next.bytes.fill(9);
  spin(view, 100);
  assert.ok(next.bytes.every((b) => b === 9), "the stale view never wrote the next owner's page");
  next.release();
});

test("a page whose bytes were transferred away is retired on release: no error, never reused, counted", () => {
  // Before: release() threw a raw TypeError (transfer() of a detached buffer) and the page never came back.
  const pool = new PagePool({ pages: 2, maxPages: 2 });
  const page = pool.acquire();
  page.bytes.fill(9);
  const moved = new Uint8Array(page.bytes.buffer.transfer());
  page.release();
  assert.equal(page.refs, 0);
  assert.deepEqual(
    [pool.stats.inUse, pool.stats.free, pool.stats.retired, pool.stats.total],
    [0, 1, 1, 2],
  );
  const next = pool.acquire();
  next.bytes.fill(1);
  assert.throws(() => pool.acquire(), (e) => code(e) === "ERR_POOL_EXHAUSTED", "the retired page is not handed out");
  assert.ok(moved.every((b) => b === 9), "its new owner still reads what it took");
  next.release();
  pool.close(); // the retired page's slab is not unmapped under `moved`
  assert.ok(moved.every((b) => b === 9));
});

/** A pool of three slabs, two pages acquired and viewed, all dropped but one page's view. */
function dropPoolKeepingAView(): Uint8Array {
  const pool = new PagePool({ pages: 600 });
  const pages = [pool.acquire(), pool.acquire()];
  pages[0].bytes.fill(3);
  return pages[1].bytes;
}

test("a pool dropped without close() gives its slabs back once collected; views of its pages are revoked", async () => {
  await collectGarbage();
  const regions = liveRegionCount();
  const held = dropPoolKeepingAView();
  assert.ok(liveRegionCount() >= regions + 3);
  // Bun's collector scans the stack conservatively: a stale word there may keep the pool a few rounds longer.
  for (const deadline = Date.now() + 30_000; liveRegionCount() > regions && Date.now() < deadline;) {
    await collectGarbage();
  }
  // At most as many: the same collections may also unmap what earlier tests dropped.
  assert.ok(liveRegionCount() <= regions, `every slab was unmapped: ${regions} before, ${liveRegionCount()} after`);
  assert.equal(held.byteLength, 0, "a view of a page of the dropped pool reads as empty, not freed memory");
});

// 65 000 mappings in a child: seconds on a loaded machine, past bun's 5 s default.
test("a pool whose construction fails leaves nothing mapped", { timeout: 60_000 }, () => {
  // Fill the region table but for two slots, then ask for three slabs.
  const run = runScript(`
    import { mapAnonymous, PagePool, pageSize } from "${root}mod.ts";
    import { liveRegionCount } from "${root}src/system.ts";
    const filler = [];
    try {
      for (;;) filler.push(mapAnonymous(pageSize));
    } catch (e) {
      if (e.code !== "ENOMEM") throw e;
    }
    filler.pop().unmap();
    filler.pop().unmap();
    const before = liveRegionCount();
    let error;
    try {
      new PagePool({ pages: 3 * Math.floor((1 << 20) / pageSize) });
    } catch (e) {
      error = e.code;
    }
    console.log(JSON.stringify({ error, leftMapped: liveRegionCount() - before, filled: filler.length }));
    for (const m of filler) m.unmap();
  `);
  assert.equal(run.status, 0, run.stderr);
  const out = JSON.parse(run.stdout.trim());
  assert.equal(out.error, "ENOMEM");
  assert.equal(out.leftMapped, 0, "the two slabs made before the failure were unmapped");
  assert.ok(out.filled > 60_000);
});

test("a pool set up with 2^24 pages grows its page lists by doubling: it is made or refused at once, not after minutes", () => {
  // Before: every slab copied the whole free list and view marks into new arrays one slab longer, so 2^24
  // pages (65 536 slabs) took about 2^15 times as long as 2^19 pages (half a second): many minutes.
  const run = runScript(
    `
    import { PagePool, pageSize } from "${root}mod.ts";
    import { liveRegionCount } from "${root}src/system.ts";
    const before = liveRegionCount();
    let outcome;
    try {
      const pool = new PagePool({ pageSize, pages: 2 ** 24, maxPages: 2 ** 24 });
      outcome = pool.stats.total;
      pool.close();
    } catch (e) {
      outcome = e.code;
    }
    console.log(JSON.stringify({ outcome, leftMapped: liveRegionCount() - before }));
  `,
    { timeout: 120_000 },
  );
  assert.equal(run.signal, null, "the child was killed at its 120 s bound");
  assert.equal(run.status, 0, run.stderr);
  const out = JSON.parse(run.stdout.trim());
  assert.ok(out.outcome === 2 ** 24 || out.outcome === "ENOMEM", run.stdout);
  assert.equal(out.leftMapped, 0);
});

test("Page and PagePool internals are out of reach: no refcount or raw view can be touched from outside", () => {
  using pool = new PagePool({ pages: 1 });
  const page = pool.acquire();
  const names = [
    ...Object.getOwnPropertyNames(Object.getPrototypeOf(page)),
    ...Object.getOwnPropertyNames(page),
    ...Object.getOwnPropertyNames(Object.getPrototypeOf(pool)),
  ];
  for (const name of ["releaseRef", "retainRef", "viewBuffer", "region", "regionOffset", "_buffer", "_return"]) {
    assert.ok(!names.includes(name), name);
  }
  const head = page.head(0, 8);
  const headNames = Object.getOwnPropertyNames(Object.getPrototypeOf(head));
  for (const name of ["_pack", "_consume", "_fileSpan", "_lendable", "_replacePages", "_handOver"]) {
    assert.ok(!headNames.includes(name), name);
  }
  head.release();
  page.release();
});
