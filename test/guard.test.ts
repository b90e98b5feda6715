// The SIGBUS guard: a file cut short under a mapping must not kill the process. Each case runs in a child
// process, so a crash is a failed assertion here, not a dead test runner.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { truncateSync, writeFileSync } from "node:fs";
import process from "node:process";
import { join } from "node:path";
import { isDeno, patternBytes, root, runScript, tempDir, tempFile } from "./helpers.ts";

const scanner = `
  import { mapFile, openFile, pageSize, writev } from "${root}mod.ts";
  import { guardFaultCount } from "${root}src/system.ts";
  import { truncateSync } from "node:fs";
  function scan(bytes) { let sum = 0; for (let i = 0; i < bytes.length; i += 64) sum += bytes[i]; return sum; }
`;

test("a file cut short by this process: no crash, zeros past the new end, a typed error next", () => {
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
  assert.equal(result.faults, 255, "one absorbed fault per lost page, once each");
  assert.equal(result.headError, "ERR_FILE_TRUNCATED");
  assert.equal(result.syncError, "ERR_FILE_TRUNCATED");
  assert.equal(result.writeError, "EIO", "zeros never go out as the file's data");
  assert.equal(result.unmapped, true);
});

test("a file cut short by another process while a hot loop reads it: no crash", async () => {
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

test("a SIGBUS that is not pageio's gets the same outcome as without pageio (chained to the runtime)", () => {
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
