import { test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import { closeSync, openSync, readFileSync, writeFileSync, writeSync } from "node:fs";
import { mapAnonymous, mapFile, openFile, type PageIoError, PagePool, pageSize, writev } from "../mod.ts";
import { guardFaultCount, liveRegionCount } from "../src/system.ts";
import {
  fdsOn,
  isDeno,
  mapsLinesMentioning,
  openDescriptorCount,
  patternBytes,
  root,
  runScript,
  tempDir,
  tempFile,
  until,
} from "./helpers.ts";

const code = (e: unknown) => (e as PageIoError).code;

test("mapFile shows the file's bytes, the whole file by default", () => {
  const data = patternBytes(3 * pageSize + 123);
  using m = mapFile(tempFile(data));
  assert.equal(m.byteLength, data.length);
  assert.deepEqual(m.bytes, data);
  assert.equal(m.closed, false);
});

test("offsets need not be page-aligned; length limits the view", () => {
  const data = patternBytes(5 * pageSize);
  const path = tempFile(data);
  const cases: [number, number | undefined][] = [[1, 10], [pageSize - 1, 2], [pageSize + 7, 2 * pageSize], [
    3 * pageSize,
    undefined,
  ]];
  for (const [offset, length] of cases) {
    using m = mapFile(path, { offset, length });
    assert.deepEqual(m.bytes, data.subarray(offset, length === undefined ? undefined : offset + length));
  }
});

test("a path, a FileHandle and an fd number all map; handles stay open, path descriptors close", () => {
  const data = patternBytes(1000);
  const path = tempFile(data);
  // Descriptors on this file only: the runtime's own, or an earlier test file's thread closing its poller,
  // may change the process's total meanwhile.
  const guardFd = process.platform === "linux" ? 1 : 0;
  const viaPath = mapFile(path);
  // The path-opened descriptor is closed; the SIGBUS guard keeps one on the file (its fstat), for all its mappings.
  assert.equal(fdsOn(path), guardFd);
  using handle = openFile(path);
  using viaHandle = mapFile(handle);
  const fd = openSync(path, "r");
  using viaFd = mapFile(fd);
  assert.equal(fdsOn(path), 2 + guardFd, "one guard descriptor for three mappings");
  assert.equal(handle.closed, false);
  assert.equal(handle.size(), 1000);
  for (const m of [viaPath, viaHandle, viaFd]) assert.deepEqual(m.bytes, data);
  viaPath.unmap();
  viaHandle.unmap();
  viaFd.unmap();
  assert.equal(fdsOn(path), 2, "the last unmap closes it");
  for (const m of [viaPath, viaHandle, viaFd]) assert.equal(m.bytes.length, 0);
  closeSync(fd);
});

test("an empty file maps to an empty view; so does a zero length", () => {
  using empty = mapFile(tempFile(new Uint8Array(0)));
  assert.equal(empty.byteLength, 0);
  assert.equal(empty.bytes.length, 0);
  using zero = mapFile(tempFile("abc"), { offset: 3 });
  assert.equal(zero.bytes.length, 0);
  empty.unmap();
  assert.equal(empty.closed, true);
});

test("bad ranges, types and files are typed errors", () => {
  const path = tempFile(patternBytes(100));
  assert.throws(() => mapFile(path, { offset: 101 }), RangeError);
  assert.throws(() => mapFile(path, { offset: 50, length: 51 }), /offset 50 \+ length 51 is past the end of 100 bytes/);
  assert.throws(() => mapFile(path, { offset: -1 }), RangeError);
  assert.throws(() => mapFile(path, { length: -5 }), RangeError);
  assert.throws(() => mapFile(path, { offset: 1.5 }), RangeError);
  assert.throws(() => mapFile(path, { offset: NaN }), RangeError);
  assert.throws(() => mapFile(path, { length: 2 ** 53 + 1 }), RangeError);
  assert.throws(() => mapFile(path, { offset: "1" as unknown as number }), TypeError);
  assert.throws(() => mapFile(null as unknown as string), TypeError);
  assert.throws(() => mapFile({} as unknown as string), TypeError);
  assert.throws(() => mapFile(-3), RangeError);
  assert.throws(() => mapFile(path, null as unknown as object), TypeError);
  assert.throws(
    () => mapFile("/nonexistent/pageio"),
    (e) => code(e) === "ENOENT" && (e as PageIoError).path === "/nonexistent/pageio",
  );
  assert.throws(() => mapFile(tempDir()), (e) => code(e) === "EISDIR");
  assert.throws(() => mapFile("/dev/null"), (e) => code(e) === "ENODEV");
  const closed = openFile(path);
  closed.close();
  assert.throws(() => mapFile(closed), (e) => code(e) === "ERR_CLOSED");
  assert.throws(() => mapFile(999_999), (e) => code(e) === "EBADF");
  assert.throws(() => mapAnonymous(-1), RangeError);
});

test("unmap revokes every view: bytes, subarrays and heads read as empty", () => {
  const m = mapFile(tempFile(patternBytes(2 * pageSize)));
  const bytes = m.bytes;
  const sub = m.bytes.subarray(10, 20);
  const head = m.head(5, 100);
  const headBytes = head.bytes;
  m.unmap();
  assert.equal(m.closed, true);
  assert.equal(bytes.length, 0);
  assert.equal(sub.length, 0);
  assert.equal(headBytes.length, 0);
  assert.equal(m.bytes.length, 0);
  assert.equal(bytes[0], undefined, "reads past a revoked view give undefined, never old memory");
  bytes[0] = 1; // ignored, never a write to unmapped memory
  assert.throws(() => head.bytes, (e) => code(e) === "ERR_RELEASED");
  head.release(); // letting go of a head on an unmapped mapping is fine
  m.unmap(); // second unmap is harmless
  assert.throws(() => m.head(), (e) => code(e) === "ERR_CLOSED");
  assert.throws(() => m.sync(), (e) => code(e) === "ERR_CLOSED");
  assert.throws(() => m.advise("normal"), (e) => code(e) === "ERR_CLOSED");
});

test("leaving a using block unmaps", () => {
  let bytes: Uint8Array;
  {
    using m = mapAnonymous(pageSize);
    bytes = m.bytes;
    bytes[0] = 9;
  }
  assert.equal(bytes.length, 0);
});

test("a shared mapping is the page cache: it sees writes made through other descriptors", () => {
  const path = tempFile(new Uint8Array(pageSize));
  using m = mapFile(path);
  const fd = openSync(path, "r+");
  writeSync(fd, new TextEncoder().encode("written elsewhere"), 0, 17, 100);
  closeSync(fd);
  assert.equal(new TextDecoder().decode(m.bytes.subarray(100, 117)), "written elsewhere");
});

test("a writable shared mapping reaches the file after sync; a private one never does", () => {
  const path = tempFile(new Uint8Array(2 * pageSize));
  {
    using shared = mapFile(path, { write: true });
    shared.bytes.set([1, 2, 3], pageSize + 5);
    shared.sync();
    assert.deepEqual([...readFileSync(path).subarray(pageSize + 5, pageSize + 8)], [1, 2, 3]);
    shared.bytes[0] = 42;
    shared.sync(0, 1);
    assert.equal(readFileSync(path)[0], 42);
  }
  {
    using priv = mapFile(path, { write: true, private: true });
    priv.bytes.fill(7);
    priv.sync();
    assert.equal(priv.bytes[10], 7);
  }
  const after = readFileSync(path);
  assert.equal(after[10], 0, "private writes never reach the file");
  assert.equal(after[0], 42);
});

test("writing into a mapping without write never crashes and never reaches the file", () => {
  const data = patternBytes(64 * pageSize, 7);
  const path = tempFile(data);
  using m = mapFile(path);
  const faults = guardFaultCount();
  for (let i = 0; i < 1000; i++) m.bytes[0] = 74; // SIGSEGV on a read-only page: the kernel copies it instead
  for (let page = 1; page < 64; page += 2) m.bytes[page * pageSize + 3] = ~data[page * pageSize + 3] & 0xff;
  assert.equal(m.bytes[0], 74);
  assert.equal(m.bytes[1], data[1], "the rest of the page is the file's");
  assert.deepEqual(m.bytes.subarray(2 * pageSize, 3 * pageSize), data.subarray(2 * pageSize, 3 * pageSize));
  assert.equal(mapsLinesMentioning(path), 1, "one memory area, however many pages were copied");
  assert.equal(guardFaultCount(), faults, "no signal handler involved");
  assert.deepEqual(readFileSync(path), Buffer.from(data));
  using again = mapFile(path);
  assert.equal(again.bytes[0], data[0], "another mapping sees the file, not the private write");
});

test("dontneed drops a read-only mapping's private copies: the file's bytes again, also in gather writes", () => {
  const data = patternBytes(4 * pageSize, 9);
  const path = tempFile(data);
  using m = mapFile(path);
  m.bytes.fill(0x55, pageSize, 3 * pageSize); // private copies of pages 1 and 2
  const head = m.head(pageSize - 10, 2 * pageSize);
  const out = `${tempDir()}/out`;
  using file = openFile(out, "w");
  writev(file, [head]); // what the view shows: the private bytes
  m.advise("dontneed", pageSize, pageSize); // page 1 only
  assert.deepEqual(m.bytes.subarray(pageSize, 2 * pageSize), data.subarray(pageSize, 2 * pageSize), "not zeros");
  assert.equal(m.bytes[2 * pageSize], 0x55, "page 2 keeps its copy");
  writev(file, [head]);
  head.release();
  const written = readFileSync(out);
  const expected = Buffer.concat([
    data.subarray(pageSize - 10, pageSize),
    new Uint8Array(2 * pageSize - 10).fill(0x55),
    data.subarray(pageSize - 10, 2 * pageSize),
    new Uint8Array(pageSize - 10).fill(0x55),
  ]);
  assert.deepEqual(written, expected);
  assert.deepEqual(readFileSync(path), Buffer.from(data), "the file never saw the writes");
});

test("a read-only mapping refuses writes to the file: write needs write", () => {
  const path = tempFile("abc");
  using ro = mapFile(path);
  using handle = openFile(path);
  assert.throws(() => mapFile(handle, { write: true }), (e) => code(e) === "EACCES");
  assert.equal(ro.bytes[0], 97);
});

test("anonymous mappings are zeroed and writable; advise accepts every name", () => {
  using m = mapAnonymous(3 * pageSize + 1, { shared: true });
  assert.equal(m.byteLength, 3 * pageSize + 1);
  assert.ok(m.bytes.every((b) => b === 0));
  m.bytes.fill(0xab);
  for (const advice of ["normal", "sequential", "random", "willneed"] as const) m.advise(advice);
  m.advise("dontneed", pageSize, pageSize); // anonymous private would zero; shared keeps the data
  assert.throws(() => m.advise("bogus" as "normal"), TypeError);
  assert.throws(() => m.advise("normal", 0, 4 * pageSize), RangeError);
  using empty = mapAnonymous(0);
  assert.equal(empty.bytes.length, 0);
});

test("populate maps with the pages already faulted in", () => {
  const data = patternBytes(64 * pageSize);
  using m = mapFile(tempFile(data), { populate: true });
  assert.deepEqual(m.bytes, data);
});

test("heads into a mapping point at its bytes and hold no copy", () => {
  const data = patternBytes(3 * pageSize);
  using m = mapFile(tempFile(data), { offset: 3 });
  const head = m.head(pageSize, 10);
  assert.deepEqual(head.bytes, data.subarray(pageSize + 3, pageSize + 13));
  assert.equal(head.bytes.buffer, m.bytes.buffer, "the head views the mapping's own memory");
  assert.throws(() => m.head(0, 3 * pageSize), RangeError);
  head.release();
  assert.throws(() => head.release(), (e) => code(e) === "ERR_RELEASED");
});

test("thousands of map/unmap cycles leave no mapping and no descriptor behind", () => {
  const dir = tempDir();
  const path = `${dir}/cycled`;
  writeFileSync(path, patternBytes(3 * pageSize + 5));
  const fds = openDescriptorCount();
  const regions = liveRegionCount();
  for (let i = 0; i < 5000; i++) {
    const m = i % 2 === 0 ? mapFile(path, { offset: i % 100 }) : mapAnonymous(pageSize * (1 + (i % 3)));
    const head = m.head(0, 1);
    m.unmap();
    head.release();
  }
  assert.equal(mapsLinesMentioning(path), 0, "no mapping of the file remains in /proc/self/maps");
  assert.equal(fdsOn(path), 0, "no descriptor on the file remains in /proc/self/fd");
  // At most as many as before, counting the whole process: a leak here would be thousands; fewer is other
  // memory let go meanwhile (Bun's collector runs the deallocators of earlier tests' moved buffers).
  assert.ok(openDescriptorCount() <= fds, `${fds} descriptors before, ${openDescriptorCount()} after`);
  assert.ok(liveRegionCount() <= regions, `${regions} native regions before, ${liveRegionCount()} after`);
});

test("a head on memory whose buffer was transferred away has empty bytes, as its mapping or page has, not a raw TypeError", () => {
  // Before: head.bytes built a view on the detached buffer and threw the runtime's own TypeError.
  const path = tempFile(patternBytes(2 * pageSize, 62));
  const m = mapFile(path);
  using early = m.head(0, 10);
  const moved = new Uint8Array(m.bytes.buffer.transfer());
  using late = m.head(0, 10);
  assert.equal(m.bytes.length, 0);
  assert.equal(early.bytes.length, 0);
  assert.equal(late.bytes.length, 0);
  assert.equal(moved[0], patternBytes(2 * pageSize, 62)[0]);
  m.unmap();
  using pool = new PagePool({ pages: 2 });
  using page = pool.acquire();
  page.bytes.buffer.transfer();
  using head = page.head(0, 10);
  assert.equal(head.bytes.length, 0);
  assert.equal(page.bytes.length, 0);
});

test("bytes transferred away (transfer, structuredClone, postMessage) outlive unmap() and GC: no crash, no error", () => {
  // Before: unmap() threw a raw TypeError and leaked the mapping, and GC of the old buffer unmapped the memory
  // under the new one (SIGSEGV on both runtimes).
  const data = patternBytes(8 * pageSize, 61);
  const path = tempFile(data);
  const worker = tempFile(
    "self.onmessage = (e) => { const b = new Uint8Array(e.data); let s = 0; for (const x of b) s += x; postMessage(s); };",
    "sum-worker.js",
  );
  const run = runScript(
    `
    import { mapAnonymous, mapFile } from "${root}mod.ts";
    import { liveRegionCount, retiredBytes } from "${root}src/system.ts";
    const gc = async () => {
      for (let i = 0; i < 4; i++) {
        if (typeof Deno !== "undefined") globalThis.gc(); else Bun.gc(true);
        await new Promise((r) => setTimeout(r, 10));
      }
    };
    const path = ${JSON.stringify(path)};
    const first = mapFile(path).bytes.slice(); // the file's bytes, copied
    const sum = (b) => { let s = 0; for (const x of b) s += x; return s; };
    const expected = sum(first);
    const what = (buffer) => { const s = sum(new Uint8Array(buffer)); return s === expected ? "data" : s === 0 ? "zeros" : "other"; };
    await gc();
    const regions = liveRegionCount();
    const out = {};

    // Each case in a function of its own, so nothing but its result outlives it.
    await (async () => {
      const m = mapFile(path);
      const moved = m.bytes.buffer.transfer();
      m.unmap(); // must neither throw nor unmap under \`moved\`
      out.closed = m.closed && m.bytes.length === 0;
      await gc();
      out.unmapped = what(moved);
    })();

    await (async () => {
      const clone = (() => { const b = mapFile(path).bytes.buffer; return structuredClone(b, { transfer: [b] }); })();
      await gc(); // the mapping and its first buffer are garbage now
      out.dropped = what(clone);
    })();

    const w = new Worker(new URL("file://${worker}").href, { type: "module" });
    const posted = await new Promise((resolve) => {
      w.onmessage = (e) => resolve(e.data);
      const b = mapFile(path).bytes.buffer;
      w.postMessage(b, [b]);
    });
    await gc();
    out.posted = posted === expected ? "data" : String(posted);
    w.terminate();

    await (async () => {
      const anon = mapAnonymous(4 * ${pageSize});
      const away = new Uint8Array(anon.bytes.buffer.transfer());
      anon.unmap();
      await gc();
      away.fill(7); // writable and mapped still
      out.anonymous = away[4 * ${pageSize} - 1];
    })();

    // Bun frees a buffer when its collector gets to it, and a terminated Worker's heap later still: poll, not
    // once, and by the clock with a generous bound rather than a count of rounds.
    for (const deadline = Date.now() + 30_000; liveRegionCount() !== regions && Date.now() < deadline;) {
      await new Promise((r) => setTimeout(r, 40));
      await gc();
    }
    out.regionsBack = liveRegionCount() === regions;
    out.regionCounts = [regions, liveRegionCount()];
    out.retired = retiredBytes() > 0;
    console.log(JSON.stringify(out));
    `,
    { denoFlags: ["--v8-flags=--expose-gc"] },
  );
  assert.equal(run.signal, null, run.stderr);
  assert.equal(run.status, 0, run.stderr);
  const out = JSON.parse(run.stdout.trim().split("\n").at(-1)!);
  assert.equal(out.closed, true, JSON.stringify(out));
  assert.equal(out.posted, "data");
  assert.equal(out.anonymous, 7);
  if (isDeno) {
    // No deallocator on Deno: memory that escaped stays mapped for good, its file's pages replaced by zeros.
    assert.deepEqual([out.unmapped, out.dropped, out.retired], ["zeros", "zeros", true]);
  } else {
    // Bun's deallocator: the new owner keeps the file's bytes, and they are unmapped once it is freed.
    assert.deepEqual([out.unmapped, out.dropped, out.regionsBack], ["data", "data", true], JSON.stringify(out));
  }
});

test("a Worker terminated while it has a file mapped leaves no mapping of it behind", async () => {
  const path = tempFile(patternBytes(16 * pageSize, 62));
  const script = tempFile(
    `import { mapFile } from "${root}mod.ts";
     const held = [];
     self.onmessage = (e) => {
       const m = mapFile(e.data);
       held.push(m, mapFile(e.data, { offset: ${pageSize} }).bytes);
       postMessage(m.bytes[5]);
     };
     postMessage("ready");`,
    "map-worker.ts",
  );
  const worker = new Worker(new URL(`file://${script}`).href, { type: "module" });
  const replies: unknown[] = [];
  await new Promise<void>((resolve) => {
    worker.onmessage = (e) => {
      replies.push(e.data);
      if (e.data === "ready") worker.postMessage(path);
      else resolve();
    };
  });
  assert.equal(mapsLinesMentioning(path), 2, "the worker mapped the file twice");
  worker.terminate();
  await until(() => mapsLinesMentioning(path) === 0, 60_000); // the Worker's teardown runs in its own time
  assert.equal(mapsLinesMentioning(path), 0);
});

test("Mapping internals are out of reach: no refcount or raw view can be touched from outside", () => {
  using m = mapAnonymous(pageSize);
  const names = [
    ...Object.getOwnPropertyNames(Object.getPrototypeOf(m)),
    ...Object.getOwnPropertyNames(m),
  ];
  for (const name of ["releaseRef", "retainRef", "viewBuffer", "ownBuffer", "region", "regionOffset", "alive"]) {
    assert.ok(!names.includes(name), name);
  }
  assert.equal((m as unknown as Record<string, unknown>).releaseRef, undefined);
});

test("a ring slot's bytes transferred away: publish, close and GC neither throw nor unmap under them", () => {
  const run = runScript(
    `
    import { SharedRing } from "${root}mod.ts";
    const gc = async () => {
      for (let i = 0; i < 4; i++) {
        if (typeof Deno !== "undefined") globalThis.gc(); else Bun.gc(true);
        await new Promise((r) => setTimeout(r, 10));
      }
    };
    const producer = SharedRing.create({ slots: 2 });
    const slot = producer.reserve();
    slot.bytes.fill(5);
    const moved = new Uint8Array(slot.bytes.buffer.transfer());
    slot.publish(16); // revokes: finds the buffer gone, keeps the memory
    producer.close();
    await gc();
    let other = SharedRing.create({ slots: 2 });
    const dropped = other.reserve();
    const away = new Uint8Array(dropped.bytes.buffer.transfer());
    other = null; // dropped without close: the backstop must not unmap under \`away\`
    await gc();
    console.log(JSON.stringify({ moved: moved[100], away: away.length }));
    `,
    { denoFlags: ["--v8-flags=--expose-gc"] },
  );
  assert.equal(run.signal, null, run.stderr);
  assert.equal(run.status, 0, run.stderr);
  // Bun: the slot's bytes stay for their new owner; Deno: retired, the ring file's pages replaced by zeros.
  assert.deepEqual(JSON.parse(run.stdout.trim().split("\n").at(-1)!), { moved: isDeno ? 0 : 5, away: 65536 });
});
