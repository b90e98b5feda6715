// Hostile chunk lists for gather calls: arrays that lie about their length or buffer, getters that detach or
// release what came before, Proxies posing as heads or lists, resizable and shared buffers. Shared by the
// crash checks (test/gather.test.ts, run in a child process) and the argument fuzzer (test/fuzz.test.ts).
import { type PageHead, PageHead as PageHeadClass } from "../mod.ts";
import { patternBytes } from "./helpers.ts";

/** One hostile list: what to pass, and the bytes a correct gather write sends (null: it must throw). */
export interface Hostile {
  name: string;
  chunks: Iterable<PageHead | Uint8Array>;
  expected: Uint8Array | null;
}

/** Detaches an array's buffer (moves its memory to a new, unreferenced ArrayBuffer). */
export function detach(bytes?: Uint8Array): void {
  (bytes?.buffer as ArrayBuffer | undefined)?.transfer();
}

/** An array whose own `byteLength`, `byteOffset`, `length` and `buffer` lie. */
export function liar(bytes: Uint8Array): Uint8Array {
  for (const key of ["byteLength", "length", "byteOffset"]) {
    Object.defineProperty(bytes, key, { get: () => 1 << 30 });
  }
  Object.defineProperty(bytes, "buffer", { get: () => new ArrayBuffer(1 << 20) });
  return bytes;
}

/** A subclass whose getters lie (and would detach `victim` if they ever ran). */
export function subclassLiar(bytes: Uint8Array, victim?: Uint8Array): Uint8Array {
  class Liar extends Uint8Array {
    override get byteLength(): number {
      detach(victim);
      return 1 << 30;
    }
    override get byteOffset(): number {
      return 1 << 20;
    }
    override get buffer(): ArrayBuffer {
      detach(victim);
      return new ArrayBuffer(1 << 20);
    }
    override subarray(): Uint8Array<ArrayBuffer> {
      throw new Error("subarray ran");
    }
  }
  const out = new Liar(bytes.length);
  out.set(bytes);
  return out;
}

/** A list whose element `index` is an accessor that runs `sideEffect` first. */
export function withGetter<T>(items: T[], index: number, sideEffect: () => void): T[] {
  const value = items[index];
  Object.defineProperty(items, index, {
    get() {
      sideEffect();
      return value;
    },
  });
  return items;
}

type Builder = (makeHead: () => PageHead, big: () => Uint8Array, small: () => Uint8Array) => Hostile;

/** Each hostile shape as a builder of a fresh instance (`makeHead` gives a live head; the caller releases it). */
export const hostileBuilders: readonly Builder[] = [
  (_, big) => {
    const a = big();
    return { name: "redefined byteLength/buffer on an instance", chunks: [liar(a)], expected: a.slice() };
  },
  (_, big, small) => {
    const a = big(), b = small();
    return { name: "a subclass with getters", chunks: [a, subclassLiar(b, a)], expected: concat(a, b) };
  },
  (_, big, small) => {
    const a = big(), b = small();
    const list = withGetter([a, b], 1, () => detach(a));
    return { name: "a later chunk's getter detaches an earlier chunk", chunks: list, expected: null };
  },
  (_, big, small) => {
    const a = big();
    function* detaching() {
      yield a;
      detach(a);
      yield small();
    }
    return { name: "a generator detaches what it yielded", chunks: detaching(), expected: null };
  },
  (makeHead, _, small) => {
    const spare = makeHead();
    const list = withGetter<PageHead | Uint8Array>([spare, small()], 1, () => spare.release());
    return { name: "a later chunk's getter releases an earlier head", chunks: list, expected: null };
  },
  (makeHead) => ({ name: "a Proxy posing as a PageHead", chunks: [new Proxy(makeHead(), {})], expected: null }),
  () => ({
    name: "an object made from PageHead.prototype",
    chunks: [Object.create(PageHeadClass.prototype)],
    expected: null,
  }),
  (makeHead, big, small) => {
    const a = big(), b = small();
    const proxy = new Proxy([a, b, makeHead()], {
      get: (target, key, receiver) => {
        if (key === "1") detach(a);
        return Reflect.get(target, key, receiver);
      },
    });
    return { name: "a Proxy array whose trap detaches an earlier chunk", chunks: proxy, expected: null };
  },
  (makeHead, big, small) => {
    const a = big(), b = small(), head = makeHead();
    const proxy = new Proxy([a, b, head], {});
    return { name: "a transparent Proxy array", chunks: proxy, expected: concat(a, b, head.bytes.slice()) };
  },
  (_, big, small) => {
    const content = big();
    const buffer = new ArrayBuffer(content.length, { maxByteLength: 4 * content.length });
    const view = new Uint8Array(buffer); // tracks the buffer's length
    view.set(content);
    const list = withGetter([view, small()], 1, () => buffer.resize(content.length >> 2));
    return {
      name: "a resizable buffer shrinking before packing",
      chunks: list,
      expected: concat(content.subarray(0, content.length >> 2), small()),
    };
  },
  (_, big) => {
    const content = big();
    const buffer = new ArrayBuffer(100, { maxByteLength: 4 * content.length });
    const view = new Uint8Array(buffer);
    view.set(content.subarray(0, 100));
    const list = withGetter([view], 0, () => buffer.resize(content.length));
    const grown = new Uint8Array(content.length);
    grown.set(content.subarray(0, 100));
    return { name: "a resizable buffer growing before packing", chunks: list, expected: grown };
  },
  (_, big, small) => {
    const content = big();
    const shared = new SharedArrayBuffer(content.length, { maxByteLength: 4 * content.length });
    const view = new Uint8Array(shared);
    view.set(content);
    return { name: "a growable SharedArrayBuffer", chunks: [view, small()], expected: concat(content, small()) };
  },
  (_, _big, small) => {
    const view = new Uint8Array(new SharedArrayBuffer(100));
    view.set(small());
    return { name: "a SharedArrayBuffer", chunks: [view], expected: small() };
  },
  () => {
    const floats = new Float64Array(16).fill(1.5);
    Object.setPrototypeOf(floats, Uint8Array.prototype);
    return {
      name: "a Float64Array posing as a Uint8Array",
      chunks: [floats as unknown as Uint8Array],
      expected: new Uint8Array(new Float64Array(16).fill(1.5).buffer),
    };
  },
  () => {
    const dataView = new DataView(new ArrayBuffer(8));
    Object.setPrototypeOf(dataView, Uint8Array.prototype);
    return { name: "a DataView posing as a Uint8Array", chunks: [dataView as unknown as Uint8Array], expected: null };
  },
];

/** Every hostile shape, built fresh, with arrays of `bigBytes` (past both runtimes' staging limits by default). */
export function hostileLists(makeHead: () => PageHead, seed = 1, bigBytes = 100_000): Hostile[] {
  return hostileBuilders.map((build) =>
    build(makeHead, () => patternBytes(bigBytes, seed), () => patternBytes(100, seed + 1))
  );
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}
