import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  mapFile,
  openFile,
  type PageHead,
  PagePool,
  PageReader,
  pageSize,
  PageWriter,
  pipe,
  readv,
  writev,
} from "../mod.ts";
import { liveRegionCount } from "../src/system.ts";
import { openDescriptorCount, patternBytes, tempDir, tempFile } from "./helpers.ts";

const data = patternBytes(10 * pageSize + 333, 61);
const path = tempFile(data, "range.bin");

function readAll(reader: PageReader): Buffer {
  const heads: PageHead[] = [...reader];
  const bytes = Buffer.concat(heads.map((h) => h.bytes));
  heads.forEach((h) => h.release());
  return bytes;
}

test("PageReader { offset, length } reads exactly that byte range, across windows, and says its size", () => {
  const regions = liveRegionCount();
  const cases: [number, number | undefined][] = [
    [0, undefined],
    [1, 10],
    [pageSize - 1, 2],
    [pageSize, 3 * pageSize],
    [5000, 6 * pageSize + 7], // unaligned start, crosses windows
    [data.length - 1, 1],
    [data.length, 0],
    [777, undefined], // to the end
    [0, 0],
  ];
  for (const [offset, length] of cases) {
    using reader = new PageReader(path, { offset, length, chunkSize: 5000, windowSize: 4 * pageSize });
    const end = length === undefined ? data.length : offset + length;
    assert.equal(reader.size, end - offset, `size of ${offset}+${length}`);
    assert.deepEqual(readAll(reader), Buffer.from(data.subarray(offset, end)), `bytes of ${offset}+${length}`);
    assert.equal(reader.read(), null);
  }
  assert.equal(liveRegionCount(), regions);
});

test("a range goes to a file by kernel move and to a Response as the same bytes", async () => {
  const out = join(tempDir(), "part.bin");
  {
    using reader = new PageReader(path, { offset: 3 * pageSize + 5, length: 4 * pageSize });
    using writer = new PageWriter(out);
    for (const head of reader) writer.write(head);
  }
  assert.deepEqual(readFileSync(out), Buffer.from(data.subarray(3 * pageSize + 5, 7 * pageSize + 5)));
  const body = await new Response(new PageReader(path, { offset: 100, length: 20_000 }).readable).arrayBuffer();
  assert.deepEqual(new Uint8Array(body), data.subarray(100, 20_100));
});

test("a range past the end, negative or fractional is a RangeError naming the values; nothing stays open", () => {
  const fds = openDescriptorCount();
  assert.throws(
    () => new PageReader(path, { offset: data.length + 1 }),
    new RegExp(`^RangeError: offset ${data.length + 1} is past the end of the ${data.length}-byte file$`),
  );
  assert.throws(
    () => new PageReader(path, { offset: 10, length: data.length }),
    new RegExp(`offset 10 \\+ length ${data.length} is past the end of the ${data.length}-byte file`),
  );
  assert.throws(() => new PageReader(path, { offset: -1 }), RangeError);
  assert.throws(() => new PageReader(path, { length: 1.5 }), RangeError);
  assert.throws(() => new PageReader(path, { offset: "3" as unknown as number }), TypeError);
  assert.equal(openDescriptorCount(), fds);
});

test("on a pipe, length stops the reader there and leaves the rest in the pipe; offset is refused", () => {
  const [readEnd, writeEnd] = pipe({ size: 1 << 20 });
  const sent = patternBytes(200_000, 62);
  assert.equal(writev(writeEnd, [sent]), sent.length);
  {
    using reader = new PageReader(readEnd, { length: 70_001 });
    assert.equal(reader.size, 70_001);
    assert.deepEqual(readAll(reader), Buffer.from(sent.subarray(0, 70_001)));
  }
  const rest = new Uint8Array(sent.length);
  writeEnd.close();
  let got = 0;
  for (let n = readv(readEnd, [rest]); n > 0; n = readv(readEnd, [rest.subarray(got)])) got += n;
  assert.deepEqual(rest.subarray(0, got), sent.subarray(70_001));
  assert.throws(() => new PageReader(readEnd, { offset: 1 }), /offset 1 needs a regular file/);
  using unbounded = new PageReader(readEnd);
  assert.equal(unbounded.size, null);
  readEnd.close();
});

test("an empty file's size is 0 (a Content-Length), and a procfs file (size 0, not empty) takes a length as a bound", async () => {
  // Before: an empty file's size was null, as for a stream of unknown length, and { length } on a procfs file was
  // a RangeError "past the end of the 0-byte file" although the file had bytes to read.
  const fds = openDescriptorCount();
  const empty = tempFile("", "empty.bin");
  {
    using reader = new PageReader(empty);
    assert.equal(reader.size, 0);
    assert.equal(readAll(reader).length, 0);
  }
  {
    using zero = new PageReader(empty, { length: 0 });
    assert.equal(zero.size, 0);
  }
  assert.equal(await new Response(new PageReader(empty).readable).text(), "");
  assert.throws(() => new PageReader(empty, { length: 1 }), /offset 0 \+ length 1 is past the end of the 0-byte file/);
  assert.throws(() => new PageReader(empty, { offset: 1 }), /offset 1 is past the end of the 0-byte file/);

  const version = readFileSync("/proc/version");
  {
    using unbounded = new PageReader("/proc/version");
    assert.equal(unbounded.size, null, "its length is known only once read");
  }
  {
    using reader = new PageReader("/proc/version", { length: 10 });
    assert.equal(reader.size, 10);
    assert.deepEqual(readAll(reader), version.subarray(0, 10));
  }
  assert.equal(
    await new Response(new PageReader("/proc/version", { length: 7 }).readable).text(),
    version.toString().slice(0, 7),
  );
  assert.throws(() => new PageReader("/proc/version", { offset: 3 }), /offset 3 needs a file whose size is known/);
  assert.equal(openDescriptorCount(), fds, "every reader closed its file (refused ones too)");
});

test("an option that is not one is a TypeError naming it, before anything is opened: Node's { start, end } and { flags: 'a' } are not ignored", () => {
  // Before: unknown keys were ignored, so { start, end } read the whole file and { flags: "a" } truncated the log.
  const fds = openDescriptorCount();
  const log = tempFile("kept\n", "kept.log");
  const refused = (what: string, key: string, hint?: RegExp) => (e: unknown) =>
    e instanceof TypeError && e.message.startsWith(`${what} has no option "${key}" (its options: `) &&
    (hint === undefined || hint.test(e.message));
  assert.throws(
    () => new PageReader(path, { start: 0, end: 9 } as never),
    refused("PageReader", "start", /\{ offset, length \}/),
  );
  assert.throws(() => new PageWriter(log, { flags: "a" } as never), refused("PageWriter", "flags", /append: true/));
  assert.throws(() => new PageWriter(log, { apend: true } as never), refused("PageWriter", "apend"));
  assert.equal(readFileSync(log, "utf8"), "kept\n", "the log was not opened for writing, so not truncated");
  assert.throws(() => mapFile(path, { writable: true } as never), refused("mapFile", "writable"));
  assert.throws(() => new PagePool({ size: 4096 } as never), refused("PagePool", "size"));
  assert.throws(() => openFile(path, "r", { encoding: "utf8" } as never), refused("openFile", "encoding", /UTF-8/));
  assert.equal(openDescriptorCount(), fds);
  // Every documented option is still taken, and a key whose value is undefined is a default.
  using reader = new PageReader(path, {
    pool: undefined,
    chunkSize: pageSize,
    windowSize: pageSize,
    offset: 1,
    length: 2,
    maxMappedBytes: pageSize,
  });
  assert.equal(reader.size, 2);
  new PageWriter(log, { highWaterMark: 10, lend: false, append: true, pool: undefined }).close();
  mapFile(path, { write: false, private: true, offset: 0, length: 1, populate: true }).unmap();
  new PagePool({ pageSize, pages: 1, maxPages: 2, leakDetection: "off" }).close();
  openFile(path, "r", { noFollow: true, nonBlocking: false }).close();
  assert.equal(readFileSync(log, "utf8"), "kept\n");
});
