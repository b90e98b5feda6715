// Model-based test: random sequences of acquire / head / slice / retain / release / write / append / prepend /
// writeTo / flush run against pageio and against a plain-JS model of what they should do; any difference is a
// failure that names its seed. PAGEIO_MODEL_RUNS × PAGEIO_MODEL_COMMANDS (default 1 000 × 100) run in the
// normal suite; `npm run test:model-long` runs 10⁶ commands; PAGEIO_MODEL_SEED=n replays one run.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ftruncateSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { Brigade, type Page, type PageHead, PageIoError, PagePool, pageSize } from "../mod.ts";
import { tempDir } from "./helpers.ts";

const RUNS = Number(process.env.PAGEIO_MODEL_RUNS ?? 1000);
const COMMANDS = Number(process.env.PAGEIO_MODEL_COMMANDS ?? 100);
const ONLY_SEED = process.env.PAGEIO_MODEL_SEED;
const MAX_PAGES = 12;

/** mulberry32: small, seedable, good enough to drive commands. */
function random(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) / 4294967296 * n) | 0;
  };
}

interface ModelPage {
  real: Page;
  data: Uint8Array; // what the page holds
  refs: number; // the page's own references plus one per live head
  own: number; // references held through the Page object itself
}
interface ModelHead {
  real: PageHead;
  page: ModelPage;
  offset: number;
  length: number;
  refs: number;
}

function expectCode(fn: () => unknown, code: string, where: string): void {
  try {
    fn();
  } catch (error) {
    if (error instanceof PageIoError && error.code === code) return;
    throw new Error(`${where}: expected ${code}, got ${error}`);
  }
  throw new Error(`${where}: expected ${code}, nothing was thrown`);
}

function runOnce(seed: number, pool: PagePool, fd: number, outPath: string): number {
  const next = random(seed);
  const pages: ModelPage[] = [];
  const heads: ModelHead[] = []; // held by the test (the user)
  const dead: PageHead[] = []; // released heads: every use must throw
  const queue: ModelHead[] = []; // owned by the brigade, front first
  const brigade = new Brigade();
  const expected: number[] = [];
  ftruncateSync(fd, 0);
  const pageRef = (p: ModelPage, delta: number) => {
    p.refs += delta;
    if (p.refs === 0) pages.splice(pages.indexOf(p), 1);
  };
  const written = (count: number) => {
    for (const h of queue.splice(0, count)) {
      for (let i = 0; i < h.length; i++) expected.push(h.page.data[h.offset + i]);
      pageRef(h.page, -1);
    }
  };
  for (let step = 0; step < COMMANDS; step++) {
    const where = `seed ${seed}, command ${step}`;
    const live = pages.filter((p) => p.own > 0);
    switch (next(12)) {
      case 0: { // acquire
        if (pages.length >= MAX_PAGES) {
          expectCode(() => pool.acquire(), "ERR_POOL_EXHAUSTED", where);
          break;
        }
        const real = pool.acquire();
        const data = new Uint8Array(pageSize);
        for (let i = 0; i < 64; i++) data[next(pageSize)] = next(256);
        real.bytes.set(data);
        pages.push({ real, data, refs: 1, own: 1 });
        break;
      }
      case 1: { // head on a page the test holds
        if (live.length === 0) break;
        const page = live[next(live.length)];
        const offset = next(pageSize);
        const length = next(pageSize - offset + 1);
        heads.push({ real: page.real.head(offset, length), page, offset, length, refs: 1 });
        pageRef(page, 1);
        break;
      }
      case 2: { // slice of a head
        if (heads.length === 0) break;
        const h = heads[next(heads.length)];
        const start = next(h.length + 1);
        const end = start + next(h.length - start + 1);
        heads.push({
          real: h.real.slice(start, end),
          page: h.page,
          offset: h.offset + start,
          length: end - start,
          refs: 1,
        });
        pageRef(h.page, 1);
        break;
      }
      case 3: { // retain a head, or a page
        if (heads.length > 0 && next(2) === 0) {
          const h = heads[next(heads.length)];
          h.real.retain();
          h.refs++;
        } else if (live.length > 0) {
          const p = live[next(live.length)];
          p.real.retain();
          p.own++;
          pageRef(p, 1);
        }
        break;
      }
      case 4:
      case 5: { // release a head, or a page
        if (heads.length > 0 && next(2) === 0) {
          const h = heads[next(heads.length)];
          h.real.release();
          if (--h.refs === 0) {
            heads.splice(heads.indexOf(h), 1);
            dead.push(h.real);
            pageRef(h.page, -1);
          }
        } else if (live.length > 0) {
          const p = live[next(live.length)];
          p.real.release();
          p.own--;
          pageRef(p, -1);
        }
        break;
      }
      case 6: { // write into a page the test holds
        if (live.length === 0) break;
        const p = live[next(live.length)];
        const at = next(pageSize);
        const value = next(256);
        p.real.bytes[at] = value;
        p.data[at] = value;
        break;
      }
      case 7:
      case 8: { // hand a head to the brigade (the test's reference goes with it)
        if (heads.length === 0) break;
        const h = heads[next(heads.length)];
        const front = next(3) === 0;
        const handed = h.refs > 1 ? h.real.slice() : h.real; // a head with other references: queue a slice
        const model = { ...h, real: handed, refs: 1 };
        if (handed === h.real) heads.splice(heads.indexOf(h), 1);
        else pageRef(h.page, 1);
        if (front) {
          brigade.prepend(handed);
          queue.unshift(model);
        } else {
          brigade.append(handed);
          queue.push(model);
        }
        break;
      }
      case 9: { // one gather write
        const count = Math.min(queue.length, 1024);
        const bytes = queue.slice(0, count).reduce((n, h) => n + h.length, 0);
        assert.equal(brigade.writeTo(fd), bytes, where);
        written(count);
        break;
      }
      case 10: { // flush
        const bytes = queue.reduce((n, h) => n + h.length, 0);
        assert.equal(brigade.flush(fd), bytes, where);
        written(queue.length);
        break;
      }
      case 11: { // misuse: everything must refuse, nothing may change
        if (dead.length > 0) {
          const d = dead[next(dead.length)];
          expectCode(() => d.release(), "ERR_RELEASED", where);
          expectCode(() => d.retain(), "ERR_RELEASED", where);
          expectCode(() => brigade.append(d), "ERR_RELEASED", where);
        }
        break;
      }
    }
    assert.equal(brigade.count, queue.length, where);
    assert.equal(brigade.byteLength, queue.reduce((n, h) => n + h.length, 0), where);
    assert.equal(pool.stats.inUse, pages.length, `${where}: pages in use`);
    for (const h of heads) assert.equal(h.real.refs, h.refs, where);
  }
  // Drain: write what is queued, then let go of everything; the pool must be whole again.
  written(queue.length);
  brigade.flush(fd);
  for (const h of heads) for (let r = 0; r < h.refs; r++) h.real.release();
  for (const p of [...pages]) for (let r = 0; r < p.own; r++) p.real.release();
  assert.equal(pool.stats.inUse, 0, `seed ${seed}: pages outstanding at the end`);
  const out = readFileSync(outPath);
  assert.equal(out.length, expected.length, `seed ${seed}: bytes written`);
  assert.ok(out.equals(Uint8Array.from(expected)), `seed ${seed}: the written bytes differ from the model`);
  return COMMANDS;
}

// 120 s: 100 000 commands pass bun's 5 s default on a loaded machine.
test(`model: ${ONLY_SEED ? `seed ${ONLY_SEED}` : `${RUNS} runs × ${COMMANDS} commands`} against a plain-JS model`, {
  timeout: 120_000,
}, () => {
  const outPath = join(tempDir(), "model.out");
  const fd = openSync(outPath, "a+");
  using pool = new PagePool({ pages: 0, maxPages: MAX_PAGES, leakDetection: "off" });
  const seeds = ONLY_SEED ? [Number(ONLY_SEED)] : Array.from({ length: RUNS }, (_, i) => i + 1);
  let commands = 0;
  for (const seed of seeds) commands += runOnce(seed, pool, fd, outPath);
  assert.equal(commands, seeds.length * COMMANDS);
});
