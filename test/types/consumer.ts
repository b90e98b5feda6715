// Type-checked, never run (scripts/checks.mjs): by `deno check` against the source and by `tsc` with DOM types
// against the npm package's declarations. pageio's views are plain-ArrayBuffer arrays, so the web APIs that
// refuse a SharedArrayBuffer-backed array take them, and `using` works on every resource.
import {
  mapAnonymous,
  type Mapping,
  type Page,
  type PageHead,
  PagePool,
  PageReader,
  pageSize,
  PageWriter,
  type RingSlot,
  SharedRing,
} from "../../mod.ts";

export async function uses(): Promise<void> {
  using mapping: Mapping = mapAnonymous(pageSize);
  const response = new Response(mapping.bytes);
  const blob = new Blob([mapping.bytes]);
  await crypto.subtle.digest("SHA-256", mapping.bytes);
  using pool = new PagePool();
  using page: Page = pool.acquire();
  using head: PageHead = page.head(0, 16);
  const buffer: ArrayBuffer = head.bytes.buffer;
  structuredClone(page.bytes, { transfer: [page.bytes.buffer] });
  new MessageChannel().port1.postMessage(head.bytes, [buffer]);
  using ring = SharedRing.create({ slots: 2 });
  using slot: RingSlot = ring.reserve();
  const bytes: Uint8Array<ArrayBuffer> = slot.bytes;
  await new Request("http://localhost/", { method: "POST", body: bytes }).arrayBuffer();
  void response;
  void blob;
}

/** A reader's readable pipes into a writer's writable, as bytes and as text. */
export async function pipes(): Promise<void> {
  await new PageReader("in").readable.pipeTo(new PageWriter("out").writable);
  await new PageReader("in").readable.pipeThrough(new TextDecoderStream()).pipeTo(new PageWriter("text").writable);
  const writer: WritableStreamDefaultWriter<Uint8Array | PageHead | string> = new PageWriter("mixed").writable
    .getWriter();
  await writer.write("line\n");
  await writer.close();
}
