import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import process from "node:process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { FileHandle, openFile, PageIoError } from "../mod.ts";
import { fifo, isDeno, root, runScript, tempDir, tempFile } from "./helpers.ts";

function code(error: unknown): string {
  assert.ok(error instanceof PageIoError, `expected a PageIoError, got ${error}`);
  return error.code;
}

test("openFile opens each mode with its meaning", () => {
  const path = tempFile("hello");
  using r = openFile(path);
  assert.equal(r.size(), 5);
  assert.equal(r.kind(), "file");
  assert.deepEqual(r.stat(), { size: 5, kind: "file" }); // both from one fstat
  const dir = tempDir();
  using d = openFile(dir);
  assert.equal(d.stat().kind, "directory");
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
  assert.throws(() => file.stat(), (e) => code(e) === "ERR_CLOSED");
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

test("only file: URLs are paths: any other scheme is a TypeError naming it, everywhere a path is taken", async () => {
  const { mapFile, PageReader, PageWriter, SharedRing } = await import("../mod.ts");
  const web = new URL("http://example.com/etc/hostname");
  const scheme = /only file: URLs name local files, got a http: URL/;
  assert.throws(() => openFile(web), scheme);
  assert.throws(() => mapFile(web), scheme);
  assert.throws(() => new PageReader(web), scheme);
  assert.throws(() => new PageWriter(new URL("data:,x")), /got a data: URL/);
  assert.throws(() => SharedRing.create({ path: web }), scheme);
  assert.throws(() => SharedRing.open(web), scheme);
  assert.throws(() => openFile(new URL("file://elsewhere/etc/hostname")), /host 'elsewhere'/);
  assert.throws(() => openFile(new URL("file:///tmp/a%2Fb")), /encoded '\/'/);
  assert.throws(() => openFile({ pathname: "/etc/hostname" } as unknown as URL), TypeError);
  // A file: URL is the local path, percent-decoded.
  const path = tempFile("by url", "with space");
  using file = openFile(new URL(`file://${path.replaceAll(" ", "%20")}`));
  assert.equal(file.size(), 6);
  assert.equal(file.path, path);
});

test("a FIFO nobody else opens: mapping and writing fail at once, a reader waits off the JS thread", () => {
  const path = fifo();
  const run = runScript(
    `
    import { mapFile, openFile, PageReader, PageWriter } from "${root}mod.ts";
    const path = ${JSON.stringify(path)};
    const result = {};
    try { mapFile(path); } catch (e) { result.map = e.code; }
    try { new PageWriter(path); } catch (e) { result.writer = e.code; }
    try { openFile(path, "a"); } catch (e) { result.append = e.code; }
    const reader = new PageReader(path); // opens at once; its first read waits for a writer, off the JS thread
    const first = reader.readAsync();
    let ticks = 0;
    await new Promise((resolve) => { const t = setInterval(() => ++ticks === 5 && (clearInterval(t), resolve())); });
    result.ticked = ticks; // the event loop ran while the read waited
    const writer = new PageWriter(path); // now a reader has it open: no ENXIO
    writer.write(new TextEncoder().encode("late writer"));
    writer.close();
    const head = await first;
    result.read = new TextDecoder().decode(head.bytes);
    head.release();
    result.end = await reader.readAsync(); // the writer came and went: end of input
    reader.close();
    console.log(JSON.stringify(result));
  `,
    { timeout: 20_000 },
  );
  assert.equal(run.signal, null, `the child hung in open() and was killed: ${run.stderr}`);
  assert.equal(run.status, 0, run.stderr);
  assert.deepEqual(JSON.parse(run.stdout.trim().split("\n").pop()!), {
    map: "ENODEV", // a FIFO cannot be mapped
    writer: "ENXIO", // no reader: writing would wait for one
    append: "ENXIO",
    ticked: 5,
    read: "late writer",
    end: null,
  });
});

test("procfs and sysfs files are read, not mapped: size 0 is not their end, and mmap refuses them", async () => {
  const { PageReader } = await import("../mod.ts");
  const collect = (path: string) => {
    const parts: Uint8Array[] = [];
    for (const head of new PageReader(path)) {
      parts.push(head.bytes.slice());
      head.release();
    }
    return Buffer.concat(parts).toString();
  };
  assert.equal(collect("/proc/version"), readFileSync("/proc/version", "utf8"));
  assert.match(collect("/proc/self/status"), /^Name:\t/);
  const sys = "/sys/devices/system/cpu/online";
  assert.equal(collect(sys), readFileSync(sys, "utf8"));
  assert.equal(
    await new Response(new PageReader("/proc/version").readable).text(),
    readFileSync("/proc/version", "utf8"),
  );
  assert.equal(await new Response(new PageReader(sys).readable).text(), readFileSync(sys, "utf8"));
  // An empty regular file is still simply empty.
  assert.equal(collect(tempFile("")), "");
  // mapFile says it cannot map them (before: a 0-byte mapping, the file's bytes silently missing).
  const { mapFile } = await import("../mod.ts");
  for (const path of ["/proc/version", sys]) {
    assert.throws(() => mapFile(path), (e) => (e as { code?: string }).code === "ENODEV", path);
  }
  using empty = mapFile(tempFile(""));
  assert.equal(empty.byteLength, 0);
});

/** Runs `source` under `deno run --no-prompt` with exactly `flags`; returns the JSON it printed last. */
function denoWith(flags: string[], source: string) {
  const file = join(tempDir(), "child.ts");
  writeFileSync(file, source);
  const run = spawnSync(process.execPath, ["run", "--no-prompt", ...flags, file], {
    encoding: "utf8",
    timeout: 30_000,
  });
  assert.equal(run.status, 0, run.stderr);
  return JSON.parse(run.stdout.trim().split("\n").pop()!);
}

/** The error class and the flag its message names, or "ok". */
const outcome = `(f) => { try { f(); return "ok"; } catch (e) {
  const flag = e.message.match(/--allow-\\w+/); return (e.code ?? e.name) + (flag ? " " + flag[0] : ""); } }`;

test("Deno: pageio opens only what --allow-read and --allow-write let the program open", { skip: !isDeno }, () => {
  const dir = tempDir();
  const data = tempFile("allowed", "data");
  const result = denoWith(
    [
      "--allow-ffi",
      `--allow-read=${dir},${data}`,
    ],
    `
    import { mapFile, openFile, PageReader, PageWriter, SharedRing } from "${root}mod.ts";
    const outcome = ${outcome};
    console.log(JSON.stringify({
      mapAllowed: outcome(() => mapFile(${JSON.stringify(data)}).unmap()),
      readerAllowed: outcome(() => new PageReader(${JSON.stringify(data)}).close()),
      map: outcome(() => mapFile("/etc/hostname")),
      reader: outcome(() => new PageReader(new URL("file:///etc/hostname"))),
      mapWrite: outcome(() => mapFile(${JSON.stringify(data)}, { write: true })),
      writer: outcome(() => new PageWriter(${JSON.stringify(join(dir, "out"))})),
      append: outcome(() => openFile(${JSON.stringify(data)}, "a")),
      ring: outcome(() => SharedRing.create({ path: ${JSON.stringify(join(dir, "ring"))} })),
      written: outcome(() => Deno.statSync(${JSON.stringify(join(dir, "out"))})),
    }));
  `,
  );
  assert.deepEqual(result, {
    mapAllowed: "ok",
    readerAllowed: "ok",
    map: "EACCES --allow-read",
    reader: "EACCES --allow-read",
    mapWrite: "EACCES --allow-write",
    writer: "EACCES --allow-write",
    append: "EACCES --allow-write",
    ring: "EACCES --allow-write",
    written: "ENOENT", // the refused writer created nothing
  });
  const writable = denoWith(
    [
      "--allow-ffi",
      `--allow-write=${dir}`,
      `--deny-read=${data}`,
    ],
    `
    import { openFile, PageWriter } from "${root}mod.ts";
    const outcome = ${outcome};
    console.log(JSON.stringify({
      writer: outcome(() => new PageWriter(${JSON.stringify(join(dir, "w"))}).close()),
      readWrite: outcome(() => openFile(${JSON.stringify(join(dir, "w"))}, "w+")),
      denied: outcome(() => openFile(${JSON.stringify(data)})),
    }));
  `,
  );
  assert.deepEqual(writable, { writer: "ok", readWrite: "EACCES --allow-read", denied: "EACCES --allow-read" });
});
