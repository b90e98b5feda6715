import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { mapAnonymous, mapFile, Mapping, Page, type PageIoError, PagePool, pageSize, takeShared } from "../mod.ts";
import { liveShareCount } from "../src/share.ts";
import { liveRegionCount } from "../src/system.ts";
import { mapsLinesMentioning, root, runScript, tempDir, tempFile } from "./helpers.ts";

const code = (e: unknown) => (e as PageIoError).code;

/**
 * Shared memory whose life can be seen on its own: a mapping of a fresh file, mapped while /proc/self/maps names
 * the file. (The process's region count also moves when a collection unmaps what earlier tests dropped, which
 * on Bun, running every file in one heap, can happen at any await.)
 */
function fileMemory(length: number): { memory: Mapping; mapped: () => boolean } {
  const path = tempFile(new Uint8Array(length), "shared-memory");
  return { memory: mapFile(path, { write: true }), mapped: () => mapsLinesMentioning(path) > 0 };
}

/**
 * A Worker of this process that takes each descriptor it is sent, adds 1 to every byte, answers with the
 * bytes' sum, and releases its view (unless told to keep it: then "release" later).
 */
async function startWorker(): Promise<{ ask(message: unknown): Promise<unknown>; stop(): void }> {
  const file = join(tempDir(), "share-worker.js"); // plain JS: Deno would type-check TypeScript workers
  writeFileSync(
    file,
    `import { takeShared } from "${root}mod.ts";
     const kept = [];
     self.onmessage = ({ data }) => {
       try {
         if (data === "ping") return self.postMessage("pong");
         if (data === "release") { kept.splice(0).forEach((view) => view.release()); return self.postMessage("released"); }
         const view = takeShared(data.shared);
         let sum = 0;
         for (let i = 0; i < view.bytes.length; i++) sum += ++view.bytes[i];
         if (data.keep) kept.push(view); else view.release();
         self.postMessage({ sum, length: view.byteLength, emptied: view.bytes.length === 0 });
       } catch (error) {
         self.postMessage({ error: error.code ?? String(error) });
       }
     };`,
  );
  const worker = new Worker(new URL(`file://${file}`).href, { type: "module" });
  const waiting: ((value: unknown) => void)[] = [];
  worker.onmessage = (event: MessageEvent) => waiting.shift()!(event.data);
  const ask = (message: unknown) => {
    const answer = new Promise((resolve) => waiting.push(resolve));
    worker.postMessage(message);
    return answer;
  };
  // Running first: a Worker's start-up on a loaded machine can take longer than a descriptor waits.
  assert.equal(await ask("ping"), "pong");
  return { ask, stop: () => worker.terminate() };
}

test("a mapping shared with a Worker is the same memory there: its writes are seen here", async () => {
  const worker = await startWorker();
  const { memory: mapping, mapped } = fileMemory(2 * pageSize);
  try {
    using memory = mapping;
    memory.bytes.fill(1);
    const shared = memory.share({ offset: pageSize - 3, length: 10 });
    assert.deepEqual(Object.keys(shared).sort(), ["byteLength", "id", "pageio"]);
    assert.deepEqual(await worker.ask({ shared }), { sum: 20, length: 10, emptied: true });
    assert.deepEqual([...memory.bytes.subarray(pageSize - 4, pageSize + 8)], [1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1]);
    assert.equal(liveShareCount(), 0, "the Worker released its view");
    assert.deepEqual(await worker.ask({ shared }), { error: "ENOENT" }, "a descriptor is taken once");
  } finally {
    worker.stop();
  }
  assert.equal(mapped(), false);
});

test("the owner unmaps while a Worker holds a view: the memory stays until the Worker releases", async () => {
  const worker = await startWorker();
  try {
    const { memory, mapped } = fileMemory(pageSize);
    memory.bytes.fill(5);
    const shared = memory.share();
    memory.unmap(); // before the Worker even took it: the descriptor holds the memory
    assert.equal(memory.bytes.length, 0, "views here are revoked at once");
    assert.throws(() => memory.share(), (e) => code(e) === "ERR_CLOSED" || code(e) === "ERR_RELEASED");
    assert.equal(mapped(), true, "still mapped for the descriptor");
    assert.deepEqual(await worker.ask({ shared, keep: true }), { sum: 6 * pageSize, length: pageSize, emptied: false });
    assert.equal(mapped(), true, "still mapped under the Worker's view");
    assert.equal(await worker.ask("release"), "released");
    assert.equal(mapped(), false, "the Worker's release unmapped it");
  } finally {
    worker.stop();
  }
});

test("a pool page shared with a Worker is not reused until the Worker let go", async () => {
  const worker = await startWorker();
  try {
    using pool = new PagePool({ pages: 0, maxPages: 1 });
    const page = pool.acquire();
    page.bytes.fill(9);
    const shared = page.share({ length: 100 });
    page.release(); // the descriptor still holds the page
    assert.throws(() => pool.acquire(), (e) => code(e) === "ERR_POOL_EXHAUSTED");
    assert.deepEqual(await worker.ask({ shared, keep: true }), { sum: 1000, length: 100, emptied: false });
    assert.throws(() => pool.acquire(), (e) => code(e) === "ERR_POOL_EXHAUSTED", "the Worker still has it");
    assert.equal(await worker.ask("release"), "released");
    const again = pool.acquire(); // taken back: the only page is free again
    assert.equal(again.bytes[0], 10, "the same memory, with the Worker's writes");
    again.release();
    assert.equal(pool.stats.inUse, 0);
  } finally {
    worker.stop();
  }
});

test("a descriptor never taken expires: the memory goes, a late take is ENOENT", async () => {
  const { memory, mapped } = fileMemory(pageSize);
  const shared = memory.share({ untakenTimeout: 20 });
  memory.unmap();
  await new Promise((resolve) => setTimeout(resolve, 60));
  assert.throws(() => takeShared(shared), (e) => code(e) === "ENOENT");
  assert.equal(liveShareCount(), 0);
  assert.equal(mapped(), false, "the expired descriptor let go of the memory");
  using pool = new PagePool({ pages: 0, maxPages: 1 });
  const page = pool.acquire();
  page.share({ untakenTimeout: 20 });
  page.release();
  await new Promise((resolve) => setTimeout(resolve, 60));
  pool.acquire().release(); // the expired share gave the page back
});

test("bad descriptors are typed errors; forged ids never view memory", () => {
  using memory = mapAnonymous(pageSize);
  assert.throws(() => takeShared(null as never), TypeError);
  assert.throws(() => takeShared({} as never), TypeError);
  assert.throws(() => takeShared({ pageio: "shared-memory", id: -1, byteLength: 1 }), RangeError);
  assert.throws(() => takeShared({ pageio: "shared-memory", id: 0xFFFF, byteLength: 1 }), (e) => code(e) === "ENOENT");
  const shared = memory.share({ length: 8 });
  let reads = 0;
  const proxy = new Proxy(shared, {
    get: (target, key) => (key === "id" && reads++ > 0 ? 0xFFFF : Reflect.get(target, key)),
  });
  using view = takeShared(proxy); // the id is read once
  assert.equal(view.byteLength, 8);
  assert.throws(() => Mapping.fromShared(shared), (e) => code(e) === "EALREADY" && /already taken/.test(String(e)));
  // Not the kernel's texts ("operation already in progress", "no such file or directory"): what happened.
  assert.throws(() => takeShared({ pageio: "shared-memory", id: 0xFFFF, byteLength: 1 }), /names no live shared/);
  assert.throws(() => memory.share({ offset: pageSize, length: 1 }), RangeError);
  using pool = new PagePool({ pages: 1 });
  using page = pool.acquire();
  assert.throws(() => page.share({ length: pageSize + 1 }), RangeError);
  assert.equal(typeof Page.fromShared, "function");
});

test("a view whose buffer was transferred away is never unmapped under it", () => {
  const regions = liveRegionCount();
  const memory = mapAnonymous(pageSize);
  const view = takeShared(memory.share());
  const moved = view.bytes.buffer.transfer(); // out of pageio's reach
  memory.unmap();
  view.release();
  moved.slice(0, 1); // still mapped: reading it is safe
  assert.equal(new Uint8Array(moved)[0], 0);
  assert.equal(liveRegionCount(), regions + 1, "kept for good rather than unmapped under the moved buffer");
});

test("exported classes whose constructors trust their arguments cannot be constructed from outside", () => {
  // In a child: new SharedView(id, liveRegion, 8, 4096) made a view at address 8 (SIGSEGV on both runtimes),
  // new Page(pool, i, …) could hand out another owner's page, new Listener(1) closed stdout.
  const run = runScript(`
    import * as pageio from "${root}mod.ts";
    const map = pageio.mapFile("${root}README.md"); // a live region: id 65537 or near
    const pool = new pageio.PagePool();
    const page = pool.acquire();
    const ring = pageio.SharedRing.create({ slots: 2, slotSize: 4096 });
    const tries = {
      SharedView: [[1, 65537, 8, 4096], [1, 65538, 8, 4096]],
      Mapping: [[65537, 8, 4096, 0, 4096, "x"]],
      Page: [[pool, 0, 65537, 0]],
      PageHead: [[page, 0, 1 << 30]],
      RingSlot: [[ring, 1]],
      Socket: [[1]],
      Listener: [[1], [0]],
    };
    const out = {};
    for (const [name, list] of Object.entries(tries)) {
      out[name] = list.map((args) => {
        try { new pageio[name](...args); return "constructed"; } catch (e) { return e.constructor.name; }
      });
    }
    console.log(JSON.stringify(out));
  `);
  assert.equal(run.signal, null, run.stderr);
  assert.equal(run.status, 0, run.stderr);
  assert.deepEqual(JSON.parse(run.stdout.trim()), {
    SharedView: ["TypeError", "TypeError"],
    Mapping: ["TypeError"],
    Page: ["TypeError"],
    PageHead: ["TypeError"],
    RingSlot: ["TypeError"],
    Socket: ["TypeError"],
    Listener: ["TypeError", "TypeError"],
  });
});

test("a full table of shares is ENOSPC saying so, and shares work again once some are taken", () => {
  using memory = mapAnonymous(pageSize);
  const made = [];
  let error: unknown;
  for (;;) {
    try {
      made.push(memory.share());
    } catch (e) {
      error = e;
      break;
    }
  }
  assert.ok(made.length > 0);
  assert.equal(code(error), "ENOSPC");
  assert.match(String(error), /table of live shares is full/);
  for (const shared of made) takeShared(shared).release();
  takeShared(memory.share()).release();
});

test("share() reads its options before the page's or mapping's state: a getter that lets it go is refused, never a view of the next owner", () => {
  const shares = liveShareCount(); // earlier tests' descriptors may still wait to expire
  using pool = new PagePool({ pages: 1, maxPages: 1 });
  const page = pool.acquire();
  page.bytes.fill(0x61);
  const releasing = {
    get untakenTimeout() {
      page.release();
      return 1000;
    },
  };
  assert.throws(() => page.share(releasing), (e) => code(e) === "ERR_RELEASED");
  // The page went back to its pool, whole: its next owner's bytes are its own.
  assert.equal(pool.stats.inUse, 0);
  const next = pool.acquire();
  next.bytes.fill(0x62);
  next.release();
  assert.equal(liveShareCount(), shares);
  const mapping = mapAnonymous(pageSize);
  const unmapping = {
    get untakenTimeout() {
      mapping.unmap();
      return 1000;
    },
  };
  assert.throws(() => mapping.share(unmapping), (e) => code(e) === "ERR_CLOSED" && /unmapped/.test(String(e)));
  for (const key of ["offset", "length"]) {
    const other = pool.acquire();
    const getter = {
      get [key]() {
        other.release();
        return 0;
      },
    };
    assert.throws(() => other.share(getter), (e) => code(e) === "ERR_RELEASED", key);
    assert.equal(pool.stats.inUse, 0, key);
    assert.equal(liveShareCount(), shares, key);
  }
});
