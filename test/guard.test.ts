// Child processes on a loaded machine take seconds: every test here allows a minute (bun's default is 5 s).
// The SIGBUS guard: a file cut short under a mapping, or one whose filesystem is full, must not kill the
// process, must hold a bounded number of memory areas, and must say which it was. Each case runs in a child
// process, so a crash is a failed assertion here, not a dead test runner.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync, truncateSync, writeFileSync } from "node:fs";
import process from "node:process";
import { join } from "node:path";
import { isDeno, noTmpfs, patternBytes, root, runScript, tempDir, tempFile, withTmpfs } from "./helpers.ts";

const scanner = `
  import { mapFile, openFile, pageSize, writev } from "${root}mod.ts";
  import { guardFaultCount } from "${root}src/system.ts";
  import { truncateSync } from "node:fs";
  function scan(bytes) { let sum = 0; for (let i = 0; i < bytes.length; i += 64) sum += bytes[i]; return sum; }
`;

test(
  "a file cut short by this process: no crash, zeros past the new end, a typed error next",
  { timeout: 60_000 },
  () => {
    const path = tempFile(patternBytes(256 * 4096, 41).map((b) => b | 1)); // no zero bytes before the cut
    const out = join(tempDir(), "out");
    const run = runScript(`${scanner}
    const m = mapFile(${JSON.stringify(path)});
    const head = m.head(0, 2 * pageSize);
    let before = 0;
    for (let k = 0; k < 300; k++) before += scan(m.bytes); // hot: the JIT compiles the loop
    truncateSync(${JSON.stringify(path)}, pageSize);
    const faultsBefore = guardFaultCount();
    const started = performance.now();
    let past = 0;
    for (let k = 0; k < 300; k++) past += scan(m.bytes.subarray(pageSize));
    const elapsed = performance.now() - started;
    const kept = scan(m.bytes.subarray(0, pageSize));
    m.bytes[pageSize * 3] = 7; // a write to a lost page lands on the zero page, never in the file
    const result = { before: before > 0, past, kept: kept > 0, truncated: m.truncated, faults: guardFaultCount() - faultsBefore, firstScanMs: elapsed };
    try { m.head(); } catch (e) { result.headError = e.code; }
    try { m.sync(); } catch (e) { result.syncError = e.code; }
    using file = openFile(${JSON.stringify(out)}, "w");
    try { writev(file, [head]); } catch (e) { result.writeError = e.code; }
    head.release();
    m.unmap();
    result.unmapped = m.closed;
    console.log(JSON.stringify(result));
  `);
    assert.equal(run.status, 0, `the child died (${run.signal ?? run.status}): ${run.stderr}`);
    const result = JSON.parse(run.stdout.trim().split("\n").pop()!);
    assert.equal(result.before, true);
    assert.equal(result.past, 0, "reads past the new end give zeros");
    assert.equal(result.kept, true, "the page still in the file keeps its bytes");
    assert.equal(result.truncated, true);
    assert.equal(result.faults, 1, "one absorbed fault took the whole tail");
    assert.equal(result.headError, "ERR_FILE_TRUNCATED");
    assert.equal(result.syncError, "ERR_FILE_TRUNCATED");
    assert.equal(result.writeError, "ENODATA", "zeros never go out as the file's data");
    assert.equal(result.unmapped, true);
  },
);

test("a gather call on pages a cut file lost, never touched from JS, says ENODATA, not EFAULT", {
  timeout: 60_000,
}, () => {
  const path = tempFile(patternBytes(64 * 4096, 43));
  const out = join(tempDir(), "out");
  const run = runScript(`${scanner}
    import { readv } from "${root}mod.ts";
    const m = mapFile(${JSON.stringify(path)}, { write: true });
    const other = mapFile(${JSON.stringify(path)}, { write: true });
    const head = m.head(8 * pageSize, 4 * pageSize);
    const into = other.head(16 * pageSize, pageSize);
    truncateSync(${JSON.stringify(path)}, pageSize); // the kernel, not JS, meets the lost pages
    const codes = [];
    using file = openFile(${JSON.stringify(out)}, "w");
    try { writev(file, [head]); } catch (e) { codes.push(e.code, e.bytesTransferred); }
    try { readv(openFile("/dev/zero"), [into]); } catch (e) { codes.push(e.code); }
    try { m.head(0, 1); } catch (e) { codes.push(e.code); }
    console.log(JSON.stringify(codes));
  `);
  assert.equal(run.signal, null, run.stderr);
  assert.equal(run.status, 0, run.stderr);
  assert.deepEqual(JSON.parse(run.stdout.trim()), ["ENODATA", 0, "ENODATA", "ERR_FILE_TRUNCATED"]);
  assert.equal(readFileSync(out).length, 0); // nothing went out
});

test("a file cut short by another process while a hot loop reads it: no crash", { timeout: 60_000 }, async () => {
  const path = tempFile(patternBytes(512 * 4096, 42).map((b) => b | 1));
  const file = join(tempDir(), "reader.ts");
  writeFileSync(
    file,
    `${scanner}
    const m = mapFile(${JSON.stringify(path)});
    console.log("ready");
    const deadline = performance.now() + 20_000;
    let rounds = 0;
    while (!m.truncated && performance.now() < deadline) { scan(m.bytes); rounds++; }
    let past = 0;
    for (let k = 0; k < 50; k++) past += scan(m.bytes.subarray(pageSize));
    console.log(JSON.stringify({ truncated: m.truncated, rounds, past }));
    m.unmap();
  `,
  );
  const child = spawn(process.execPath, isDeno ? ["run", "--allow-all", file] : [file]);
  let stdout = "";
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
    child.on("close", (code, signal) => resolve({ code, signal }))
  );
  await new Promise<void>((resolve) =>
    child.stdout.on("data", (d) => {
      stdout += d;
      if (stdout.includes("ready")) resolve();
    })
  );
  await new Promise((resolve) => setTimeout(resolve, 50));
  truncateSync(path, 4096); // cut while the child is inside its loop
  const { code, signal } = await exited;
  assert.equal(signal, null, `the child was killed by ${signal}: ${stderr}`);
  assert.equal(code, 0, stderr);
  const result = JSON.parse(stdout.trim().split("\n").pop()!);
  assert.equal(result.truncated, true);
  assert.equal(result.past, 0);
  assert.ok(result.rounds > 0);
});

test("a SIGBUS that is not pageio's gets the same outcome as without pageio (chained to the runtime)", {
  timeout: 60_000,
}, () => {
  const path = tempFile("x");
  const outcome = (withGuard: boolean) => {
    const run = runScript(`
      import { mapFile } from "${root}mod.ts";
      if (${withGuard}) mapFile(${JSON.stringify(path)}).unmap(); // installs the guard
      process.kill(process.pid, "SIGBUS");
      await new Promise((r) => setTimeout(r, 300));
      console.log("survived");
    `);
    return { status: run.status, signal: run.signal, survived: run.stdout.includes("survived") };
  };
  assert.deepEqual(outcome(true), outcome(false));
});

/** Runs `source` in a child and returns its last stdout line as JSON; a signal or a failing status fails. */
function childResult(source: string) {
  const run = runScript(source);
  assert.equal(run.signal, null, `the child was killed by ${run.signal}: ${run.stderr.slice(-2000)}`);
  assert.equal(run.status, 0, run.stderr.slice(-2000));
  return JSON.parse(run.stdout.trim().split("\n").pop()!);
}

// Memory areas of the whole process (the runtime's own come and go: a bound, not an exact count), and those
// still backed by the file.
const areas = `
  import { readFileSync } from "node:fs";
  const maps = () => readFileSync("/proc/self/maps", "utf8").split("\\n");
  const areas = () => maps().length;
  const fileAreas = (path) => maps().filter((line) => line.endsWith(path)).length;
`;

test(
  "writing every page of a 300 MiB mapping opened without write: no crash, one memory area",
  { timeout: 60_000 },
  () => {
    const path = join(tempDir(), "big");
    writeFileSync(path, "x");
    truncateSync(path, 300 * 2 ** 20); // sparse: no disk needed
    const result = childResult(`${scanner}${areas}
    const before = areas();
    const m = mapFile(${JSON.stringify(path)});
    m.bytes.fill(1); // once a private copy per page, each its own area: past vm.max_map_count
    const result = { grew: areas() - before, sum: scan(m.bytes.subarray(0, 1 << 20)), faults: guardFaultCount() };
    result.fileAreas = fileAreas(${JSON.stringify(path)});
    m.unmap();
    console.log(JSON.stringify(result));
  `);
    assert.ok(result.grew < 64, `${result.grew} new memory areas`); // one per page was 76 800
    assert.equal(result.fileAreas, 1, "the copies live inside the mapping's one area");
    assert.equal(result.sum, (1 << 20) / 64);
    assert.equal(result.faults, 0);
    const start = readFileSync(path).subarray(0, 4096);
    assert.ok(start[0] === 120 && start.subarray(1).every((b) => b === 0), "the file never saw the writes");
  },
);

test(
  "a 600 MiB mapped file cut to 0 and read every other page: no crash, bounded memory areas",
  { timeout: 60_000 },
  () => {
    const path = join(tempDir(), "big");
    writeFileSync(path, "");
    truncateSync(path, 600 * 2 ** 20);
    const result = childResult(`${scanner}${areas}
    const m = mapFile(${JSON.stringify(path)});
    const before = areas();
    truncateSync(${JSON.stringify(path)}, 0);
    let sum = 0;
    for (let at = 0; at < m.byteLength; at += 2 * pageSize) sum += m.bytes[at];
    const result = { grew: areas() - before, sum, faults: guardFaultCount(), truncated: m.truncated };
    result.fileAreas = fileAreas(${JSON.stringify(path)});
    try { m.sync(); } catch (e) { result.syncError = e.code; }
    m.unmap();
    console.log(JSON.stringify(result));
  `);
    assert.ok(result.grew < 64, `${result.grew} new memory areas`); // one per page read was 76 800
    assert.equal(result.fileAreas, 0, "the whole mapping is past the new end: one zero area replaced it");
    assert.equal(result.sum, 0);
    assert.equal(result.faults, 1, "one fault, one replacement of the whole tail");
    assert.equal(result.truncated, true);
    assert.equal(result.syncError, "ERR_FILE_TRUNCATED");
  },
);

test("a writable mapping of a sparse file on a full filesystem: ENOSPC, not truncation, and no zeros out", {
  skip: noTmpfs,
  timeout: 60_000,
}, () =>
  withTmpfs(256 * 1024, (dir) => {
    const path = join(dir, "sparse");
    const out = join(tempDir(), "out");
    writeFileSync(path, "");
    truncateSync(path, 1 << 20); // four times what the filesystem holds
    const result = childResult(`${scanner}
    const m = mapFile(${JSON.stringify(path)}, { write: true });
    const head = m.head(0, 4 * pageSize);
    m.bytes.fill(7); // pages past the filesystem's room fault: SIGBUS without the guard
    const result = { truncated: m.truncated, faults: guardFaultCount(), first: m.bytes[0] };
    for (const [name, call] of [["sync", () => m.sync()], ["head", () => m.head()], ["advise", () => m.advise("normal")]]) {
      try { call(); } catch (e) { result[name] = e.code; result[name + "Errno"] = e.errno; }
    }
    using file = openFile(${JSON.stringify(out)}, "w");
    try { writev(file, [head]); } catch (e) { result.writev = e.code; }
    head.release();
    m.unmap();
    console.log(JSON.stringify(result));
  `);
    assert.equal(result.truncated, false);
    assert.equal(result.faults, 1);
    assert.equal(result.first, 7, "pages the filesystem had room for keep the writes");
    assert.equal(result.sync, "ENOSPC");
    assert.ok(result.syncErrno > 0);
    assert.equal(result.head, "ENOSPC");
    assert.equal(result.advise, "ENOSPC");
    assert.equal(result.writev, "ENOSPC");
    assert.equal(readFileSync(out).length, 0, "nothing went out");
  }));

test("a file cut while its readable is read: the chunks before the cut, then ERR_FILE_TRUNCATED, never zeros", {
  timeout: 60_000,
}, () => {
  const data = patternBytes(4 * 2 ** 20, 43).map((b) => b | 1); // no zero byte: a chunk of zeros would show
  const path = tempFile(data);
  const result = childResult(`
    import { PageReader, PageWriter } from "${root}mod.ts";
    import { readFileSync, truncateSync, writeFileSync } from "node:fs";
    const path = ${JSON.stringify(path)};
    const result = {};
    // Read chunk by chunk; the file is cut to 1 MiB after the first.
    let got = 0, zeros = 0;
    try {
      for await (const chunk of new PageReader(path, { chunkSize: 256 * 1024 }).readable) {
        if (got === 0) truncateSync(path, 2 ** 20);
        zeros += chunk.filter((b) => b === 0).length;
        got += chunk.length;
      }
    } catch (e) { result.readError = e.code; }
    Object.assign(result, { got, zeros });
    // Into a PageWriter: the copy holds what the file had, nothing else.
    const copy = path + ".copy";
    writeFileSync(path, readFileSync(${JSON.stringify(tempFile(data, "again"))}));
    const reader = new PageReader(path, { chunkSize: 256 * 1024 });
    let cut = false;
    const piped = reader.readable.pipeThrough(new TransformStream({
      transform(chunk, controller) { if (!cut) { cut = true; truncateSync(path, 2 ** 20); } controller.enqueue(chunk); },
    })).pipeTo(new PageWriter(copy).writable);
    try { await piped; } catch (e) { result.pipeError = e.code; }
    const written = readFileSync(copy);
    result.copied = written.length;
    result.copyZeros = written.filter((b) => b === 0).length;
    console.log(JSON.stringify(result));
  `);
  assert.equal(result.readError, "ERR_FILE_TRUNCATED");
  assert.equal(result.got, 2 ** 20, "every byte the file still has, and no more");
  assert.equal(result.zeros, 0);
  assert.equal(result.pipeError, "ERR_FILE_TRUNCATED");
  assert.ok(result.copied <= 2 ** 20, `${result.copied} bytes copied`);
  assert.equal(result.copyZeros, 0, "no zeros written into the copy");
});
