// Argument fuzzing: every public entry point with offsets, lengths, counts and descriptors drawn from values
// that break naive code. Every call must either work or throw a TypeError, RangeError or PageIoError, and when
// it is all over no mapping, slab or descriptor may be left behind. PAGEIO_FUZZ_CASES sets the count
// (default 10⁶ per runtime).
import { test } from "node:test";
import assert from "node:assert/strict";
import { closeSync, openSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import {
  adoptSocket,
  Brigade,
  FileHandle,
  mapAnonymous,
  mapFile,
  openFile,
  PageIoError,
  PagePool,
  PageReader,
  pageSize,
  PageWriter,
  pipe,
  readv,
  readvAsync,
  SharedRing,
  socketPair,
  writev,
  writevAsync,
} from "../mod.ts";
import { liveRegionCount } from "../src/system.ts";
import { collectGarbage, openDescriptorCount, patternBytes, tempDir, tempFile } from "./helpers.ts";
import { hostileBuilders } from "./hostile.ts";

const CASES = Number(process.env.PAGEIO_FUZZ_CASES ?? 1_000_000);

const values: unknown[] = [
  0,
  1,
  2,
  7,
  4095,
  4096,
  4097,
  8191,
  8192,
  65536,
  -1,
  -0,
  -4096,
  0.5,
  1.5,
  4096.5,
  NaN,
  Infinity,
  -Infinity,
  2 ** 31 - 1,
  2 ** 31,
  2 ** 32,
  2 ** 32 + 1,
  2 ** 53 - 1,
  2 ** 53,
  2 ** 53 + 1,
  1e300,
  Number.MIN_VALUE,
  "1",
  "",
  null,
  undefined,
  {},
  [],
  true,
  10n,
];

// A million calls: seconds on a loaded 2-core machine, past bun's 5 s default.
test(`argument fuzzing: ${CASES} calls, each works or throws a typed error, nothing leaks`, {
  timeout: 120_000,
}, async () => {
  const path = tempFile(patternBytes(3 * pageSize + 100, 51));
  const outPath = `${tempDir()}/fuzz-out`;
  {
    // Asynchronous calls may start the runtime's helper threads (and their descriptors) once: before the count.
    const warm = openSync("/dev/null", "w");
    await Promise.all(Array.from({ length: 8 }, () => writevAsync(warm, [new Uint8Array(1)])));
    closeSync(warm);
  }
  await collectGarbage(); // earlier tests' dropped mappings and rings go to their backstops now, not mid-count
  const fds = openDescriptorCount();
  const regions = liveRegionCount();
  using pool = new PagePool({ pages: 8, maxPages: 64, leakDetection: "off" });
  using mapping = mapFile(path);
  const page = pool.acquire();
  const head = page.head(0, 1000);
  // A fuzzed descriptor must never name one of the runtime's own (stdin, an epoll fd…): whole numbers in
  // range become /dev/null or a number no file has; everything else goes through as it is.
  using devNull = new PageWriter("/dev/null");
  const nullFd = openSync("/dev/null", "r+");
  const fdFor = (a: number) => Number.isInteger(a) && a >= 0 && a < 2 ** 31 ? (a % 2 === 0 ? nullFd : 2 ** 30) : a;
  let seed = 12345;
  const pick = () => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return values[seed % values.length] as number;
  };
  // Each entry calls one API with fuzzed numbers and releases whatever it got.
  const calls: ((a: number, b: number) => void)[] = [
    (a, b) => mapping.head(a, b).release(),
    (a, b) => mapping.advise("normal", a, b),
    (a, b) => mapping.sync(a, b),
    (a, b) => head.slice(a, b).release(),
    (a, b) => page.head(a, b).release(),
    (a) => new FileHandle(fdFor(a) === nullFd ? 2 ** 30 : fdFor(a)), // never closes a real descriptor
    (a, b) => mapFile(path, { offset: a, length: b }).unmap(),
    (a) => mapAnonymous(a % 2 ** 24 === a ? a : a).unmap(),
    (a, b) => new PagePool({ pageSize: a, pages: b, maxPages: 4 }).close(),
    (a) => writev(fdFor(a), [head]),
    (a) => readv(fdFor(a), [new Uint8Array(1)]),
    (a, b) => new PageReader(path, { chunkSize: a, windowSize: b }).close(),
    (a) => new PageWriter(outPath, { highWaterMark: a }).close(),
  ];
  // Hostile chunk lists (lying arrays, detaching getters, Proxies, resizable and shared buffers), built fresh
  // with fuzzed sizes, through every gather entry point; heads they take are released after.
  const made: ReturnType<typeof page.head>[] = [];
  const makeHead = () => {
    made.push(page.head(0, 100));
    return made[made.length - 1];
  };
  const sized = (a: number) => Number.isInteger(a) && a > 0 && a <= 65536 ? a : 3000;
  const hostile = (a: number, b: number) => {
    const build = hostileBuilders[(seed >>> 8) % hostileBuilders.length];
    return build(makeHead, () => patternBytes(sized(a), 3), () => patternBytes(sized(b) % 200 + 1, 4)).chunks;
  };
  const dropHeads = () => {
    for (const h of made.splice(0)) if (h.refs > 0) h.release();
  };
  const async: Promise<unknown>[] = [];
  calls.push(
    (a, b) => writev(nullFd, hostile(a, b)),
    (a, b) => readv(nullFd, hostile(a, b)),
    (a, b) => {
      const brigade = new Brigade();
      try {
        brigade.append(...hostile(a, b));
        brigade.flush(nullFd);
      } finally {
        brigade.release();
      }
    },
    (a, b) => {
      // Settled below; a rejection must be a typed error too.
      if (async.length < 256) async.push(writevAsync(nullFd, hostile(a, b)).catch((e) => e));
    },
  );
  const outcomes = { ok: 0, TypeError: 0, RangeError: 0, PageIoError: 0 };
  for (let i = 0; i < CASES; i++) {
    const a = pick();
    const b = pick();
    const call = calls[i % calls.length];
    try {
      call(a, b);
      outcomes.ok++;
    } catch (error) {
      if (error instanceof PageIoError) outcomes.PageIoError++;
      else if (error instanceof RangeError) outcomes.RangeError++;
      else if (error instanceof TypeError) outcomes.TypeError++;
      else throw new Error(`case ${i}: call ${i % calls.length}(${String(a)}, ${String(b)}) threw ${error}`);
    }
    if (made.length > 64) dropHeads();
  }
  for (const settled of await Promise.all(async)) {
    if (typeof settled === "number") continue;
    if (!(settled instanceof PageIoError || settled instanceof RangeError || settled instanceof TypeError)) {
      throw new Error(`writevAsync of a hostile list rejected with ${settled}`);
    }
  }
  dropHeads();
  head.release();
  page.release();
  closeSync(nullFd);
  devNull.close();
  assert.equal(pool.stats.inUse, 0);
  mapping.unmap();
  pool.close();
  // At most as many: a million calls run the collector, which may also unmap what earlier tests dropped (Bun
  // frees their moved buffers then); a leak would be many more.
  assert.ok(
    liveRegionCount() <= regions,
    `no mapping or slab left behind: ${regions} before, ${liveRegionCount()} after`,
  );
  // At most as many: `deno test` runs each earlier test file on a thread of its own, and when such a thread
  // ends meanwhile its poller is closed (two descriptors fewer), which is no leak.
  const left = openDescriptorCount();
  assert.ok(left <= fds, `no descriptor left behind: ${fds} before, ${left} after`);
  assert.ok(outcomes.ok > 0 && outcomes.RangeError > 0 && outcomes.TypeError > 0, JSON.stringify(outcomes));
  console.log(`fuzz outcomes: ${JSON.stringify(outcomes)}`);
});

test("options that are not objects (null, a number, a string) are TypeErrors naming the call, never ignored", async () => {
  const file = tempFile("some bytes");
  const out = join(tempDir(), "out");
  const [readEnd, writeEnd] = pipe();
  const [a, b] = socketPair();
  using pool = new PagePool();
  using ring = SharedRing.create({ slots: 2, slotSize: pageSize });
  using mapping = mapFile(file);
  // deno-lint-ignore no-explicit-any
  const calls: [string, (options: any) => unknown][] = [
    ["writevAsync", (o) => writevAsync(writeEnd, [new Uint8Array(1)], o)],
    ["readvAsync", (o) => readvAsync(readEnd, [new Uint8Array(1)], o)],
    ["mapAnonymous", (o) => mapAnonymous(pageSize, o)],
    ["PagePool", (o) => new PagePool(o)],
    ["PageReader", (o) => new PageReader(file, o)],
    ["readAsync", (o) => new PageReader(file).readAsync(o)],
    ["PageWriter", (o) => new PageWriter(out, o)],
    ["writeAsync", (o) => new PageWriter(out).writeAsync("x", o)],
    ["flushAsync", (o) => new PageWriter(out).flushAsync(o)],
    ["flushAsync", (o) => new Brigade().flushAsync(writeEnd, o)],
    ["openFile", (o) => openFile(file, "r", o)],
    ["pipe", (o) => pipe(o)],
    ["socketPair", (o) => socketPair(o)],
    ["adoptSocket", (o) => adoptSocket(a.fd, o)],
    ["SharedRing.create", (o) => SharedRing.create(o)],
    ["reserveAsync", (o) => ring.reserveAsync(o)],
    ["share", (o) => mapping.share(o)],
    ["share", (o) => pool.acquire().share(o)],
  ];
  for (const [name, call] of calls) {
    for (const bad of [null, 5, "x"]) {
      const refused = (e: unknown) =>
        e instanceof TypeError &&
        e.message === `${name} options must be an object, got ${bad === null ? "null" : typeof bad}`;
      try {
        await call(bad);
        assert.fail(`${name}(${String(bad)}) was taken`);
      } catch (error) {
        assert.ok(refused(error), `${name}(${String(bad)}): ${error}`);
      }
    }
  }
  for (const end of [readEnd, writeEnd, a, b]) end.close();
});
