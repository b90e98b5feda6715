import { test } from "node:test";
import assert from "node:assert/strict";
import { type PageIoError, PagePool, SharedRing } from "../mod.ts";

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
