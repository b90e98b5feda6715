import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { FileHandle, openFile, PageIoError } from "../mod.ts";
import { tempDir, tempFile } from "./helpers.ts";

function code(error: unknown): string {
  assert.ok(error instanceof PageIoError, `expected a PageIoError, got ${error}`);
  return error.code;
}

test("openFile opens each mode with its meaning", () => {
  const path = tempFile("hello");
  using r = openFile(path);
  assert.equal(r.size(), 5);
  assert.equal(r.kind(), "file");
  const dir = tempDir();
  using w = openFile(join(dir, "new"), "w");
  assert.equal(w.size(), 0);
  using a = openFile(path, "a");
  assert.equal(a.size(), 5);
  using wr = openFile(path, "w+");
  assert.equal(wr.size(), 0, "w+ truncates");
  assert.equal(readFileSync(path, "utf8"), "");
});

test("OS errors are PageIoErrors with code, errno, syscall and path", () => {
  assert.throws(() => openFile("/nonexistent/pageio/file"), (e: unknown) => {
    assert.equal(code(e), "ENOENT");
    const error = e as PageIoError;
    assert.equal(error.errno, 2);
    assert.equal(error.syscall, "open");
    assert.equal(error.path, "/nonexistent/pageio/file");
    assert.match(error.message, /^ENOENT: no such file or directory, open '\/nonexistent\/pageio\/file'$/);
    return true;
  });
  assert.throws(() => openFile(tempDir(), "w"), (e) => code(e) === "EISDIR");
  assert.throws(() => openFile(""), (e) => code(e) === "ENOENT");
});

test("bad arguments are TypeErrors and RangeErrors", () => {
  assert.throws(() => openFile(42 as unknown as string), TypeError);
  assert.throws(() => openFile("x", "rw" as "r"), TypeError);
  assert.throws(() => openFile("a\0b"), (e) => code(e) === "EINVAL");
  assert.throws(() => new FileHandle(-1), RangeError);
  assert.throws(() => new FileHandle(1.5), RangeError);
});

test("close is idempotent and a closed handle refuses use", () => {
  const file = openFile(tempFile("x"));
  file.close();
  file.close();
  assert.equal(file.closed, true);
  assert.throws(() => file.fd, (e) => code(e) === "ERR_CLOSED");
  assert.throws(() => file.size(), (e) => code(e) === "ERR_CLOSED");
});

test("descriptors are close-on-exec", () => {
  using file = openFile(tempFile("x"));
  const flags = readFileSync(`/proc/self/fdinfo/${file.fd}`, "utf8").match(/flags:\s+(\d+)/)![1];
  assert.ok((parseInt(flags, 8) & 0o2000000) !== 0, `O_CLOEXEC missing from flags ${flags}`);
});

test("noFollow refuses a symbolic link", async () => {
  const dir = tempDir();
  const target = tempFile("x");
  const { symlinkSync } = await import("node:fs");
  symlinkSync(target, join(dir, "link"));
  assert.throws(() => openFile(join(dir, "link"), "r", { noFollow: true }), (e) => code(e) === "ELOOP");
  using followed = openFile(join(dir, "link"));
  assert.equal(followed.size(), 1);
});

test("a child process spawned while pageio holds files and mappings inherits none of its descriptors", async () => {
  const { spawnSync } = await import("node:child_process");
  const { mapFile, PageReader } = await import("../mod.ts");
  const path = tempFile("inherited?");
  using handle = openFile(path);
  using writer = openFile(join(tempDir(), "w"), "w");
  using mapping = mapFile(handle);
  using reader = new PageReader(path);
  const head = reader.read()!;
  const child = spawnSync("sh", ["-c", "ls -l /proc/$$/fd"], { encoding: "utf8" });
  head.release();
  assert.equal(child.status, 0, child.stderr);
  assert.doesNotMatch(child.stdout, /pageio-test-/, `the child holds pageio's files:\n${child.stdout}`);
  assert.ok(mapping.byteLength > 0 && writer.fd > 0);
});
