// Injected faults, black-box: the real library under `strace -e inject=…`, which makes chosen system calls
// fail with a chosen errno. Output must stay byte-identical where the fault is transient (EINTR), progress
// must be returned without a spin (EAGAIN), and hard errors must be typed with nothing lost (ENOSPC, EPIPE).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { haveStrace, isDeno, patternBytes, root, runScript, sha256, tempDir } from "./helpers.ts";

const skip = !haveStrace && "strace is not installed";

function flushUnder(inject: string, target: string, heads = 300) {
  const log = join(tempDir(), "strace.log");
  const run = runScript(
    `
    import { PagePool, PageWriter, openFile } from "${root}mod.ts";
    import { patternBytes } from "${root}test/helpers.ts";
    using pool = new PagePool({ pages: 0 });
    using file = openFile(${JSON.stringify(target)}, "w");
    const writer = new PageWriter(file, { highWaterMark: 2 ** 40 });
    for (let i = 0; i < ${heads}; i++) {
      const page = pool.acquire();
      page.bytes.set(patternBytes(page.bytes.length, i + 1));
      writer.write(page.head(i % 7, 4000 - (i % 7)));
      page.release();
    }
    const result = { fd: file.fd };
    try { result.written = writer.flush(); } catch (e) { result.error = e.code; result.bytesTransferred = e.bytesTransferred; }
    result.pending = writer.pending;
    result.inUse = pool.stats.inUse;
    result.pipePending = /^(SigPnd|ShdPnd):\\s*0*[1-9a-f]/m.test(await (await import("node:fs")).readFileSync("/proc/self/status", "utf8"));
    console.log(JSON.stringify(result));
  `,
    { prefix: ["strace", "-f", "-qq", "-e", "trace=writev", "-e", `inject=writev:${inject}`, "-o", log] },
  );
  assert.equal(run.status, 0, run.stderr);
  const result = JSON.parse(run.stdout.trim().split("\n").pop()!);
  const calls = readFileSync(log, "utf8").split("\n").filter((l) => l.includes(` writev(${result.fd},`));
  return { result, calls };
}

function expectedBytes(): Uint8Array {
  const parts: Uint8Array[] = [];
  for (let i = 0; i < 300; i++) parts.push(patternBytes(4096, i + 1).subarray(i % 7, 4000));
  return Buffer.concat(parts);
}

test("EINTR on every other writev: retried, output byte-identical", { skip }, () => {
  const target = join(tempDir(), "eintr");
  const { result, calls } = flushUnder("error=EINTR:when=1+2", target);
  assert.equal(result.error, undefined);
  assert.equal(sha256(readFileSync(target)), sha256(expectedBytes()));
  assert.ok(calls.some((l) => l.includes("EINTR")), "faults were injected");
  assert.equal(result.inUse, 0);
});

test("EAGAIN: progress returned at once, no spin, the queue intact", { skip }, () => {
  const target = join(tempDir(), "eagain");
  const { result, calls } = flushUnder("error=EAGAIN", target);
  assert.equal(result.written, 0);
  assert.equal(result.pending.count, 300, "nothing lost");
  assert.equal(calls.length, 1, "one attempt, no spin");
});

test("ENOSPC: a typed error, nothing lost, pages accounted", { skip }, () => {
  const target = join(tempDir(), "enospc");
  // A PageWriter flushes by itself at IOV_MAX (1 024) heads; the explicit flush of the other 476 fails.
  const { result } = flushUnder("error=ENOSPC:when=2", target, 1500);
  assert.equal(result.error, "ENOSPC");
  assert.equal(result.bytesTransferred, 0);
  let firstCall = 0;
  for (let i = 0; i < 1024; i++) firstCall += 4000 - (i % 7);
  assert.equal(readFileSync(target).length, firstCall, "the automatic flush went out");
  assert.equal(result.pending.count, 1500 - 1024, "the failed heads stay queued");
  assert.equal(result.inUse, result.pending.count);
});

test("an error after progress inside one gather call carries the bytes that went out", { skip }, () => {
  const target = join(tempDir(), "partial");
  const log = join(tempDir(), "strace.log");
  const run = runScript(
    `
    import { PagePool, openFile, writev } from "${root}mod.ts";
    using pool = new PagePool({ pages: 0 });
    using file = openFile(${JSON.stringify(target)}, "w");
    const heads = [];
    for (let i = 0; i < 1500; i++) { const page = pool.acquire(); heads.push(page.head(0, 100)); page.release(); }
    try { writev(file, heads); } catch (e) { console.log(JSON.stringify({ code: e.code, bytes: e.bytesTransferred })); }
    heads.forEach((h) => h.release());
  `,
    { prefix: ["strace", "-f", "-qq", "-e", "trace=writev", "-e", "inject=writev:error=ENOSPC:when=2", "-o", log] },
  );
  assert.equal(run.status, 0, run.stderr);
  assert.deepEqual(JSON.parse(run.stdout.trim().split("\n").pop()!), { code: "ENOSPC", bytes: 102_400 });
  assert.equal(readFileSync(target).length, 102_400);
});

test("EPIPE: a typed error, the process alive, no SIGPIPE pending", { skip }, () => {
  const target = join(tempDir(), "epipe");
  const { result } = flushUnder("error=EPIPE", target);
  assert.equal(result.error, "EPIPE");
  assert.equal(result.pending.count, 300);
  assert.equal(result.pipePending, false);
});

test(
  "a flush failing after earlier steps counts them: bytesTransferred and bytesWritten match the file",
  { skip },
  () => {
    const target = join(tempDir(), "steps");
    const source = join(tempDir(), "source");
    const log = join(tempDir(), "strace.log");
    const run = runScript(
      `
    import { writeFileSync } from "node:fs";
    import { PagePool, PageReader, PageWriter, openFile } from "${root}mod.ts";
    import { patternBytes } from "${root}test/helpers.ts";
    writeFileSync(${JSON.stringify(source)}, patternBytes(100_000, 3));
    using pool = new PagePool({ pages: 0 });
    using file = openFile(${JSON.stringify(target)}, "w");
    const writer = new PageWriter(file, { highWaterMark: 2 ** 40 });
    // Step 1: the file's heads, moved by the kernel (copy_file_range); step 2: pool pages by writev, which fails.
    for (const head of new PageReader(${JSON.stringify(source)})) writer.write(head);
    for (let i = 0; i < 300; i++) { const page = pool.acquire(); writer.write(page.head(0, 1000)); page.release(); }
    const result = {};
    try { writer.flush(); } catch (e) { result.error = e.code; result.bytesTransferred = e.bytesTransferred; }
    result.bytesWritten = writer.bytesWritten;
    result.pending = writer.pending;
    console.log(JSON.stringify(result));
  `,
      {
        prefix: [
          "strace",
          "-f",
          "-qq",
          "-e",
          "trace=writev,copy_file_range",
          "-e",
          "inject=writev:error=ENOSPC",
          "-o",
          log,
        ],
      },
    );
    assert.equal(run.status, 0, run.stderr);
    const result = JSON.parse(run.stdout.trim().split("\n").pop()!);
    assert.equal(readFileSync(target).length, 100_000, "the kernel move went out");
    assert.deepEqual(result, {
      error: "ENOSPC",
      bytesTransferred: 100_000,
      bytesWritten: 100_000,
      pending: { byteLength: 300_000, count: 300 },
    });
    assert.ok(readFileSync(log, "utf8").includes("copy_file_range"), "step 1 was a kernel move");
  },
);

/**
 * A child under `ulimit -f 20000` (512 or 1024 B blocks). Deno's caches live in a fresh directory: its code cache
 * grows to tens of MB after many runs, and Deno's own write past the limit ends it by SIGXFSZ, pageio or not.
 */
const limited = { prefix: ["sh", "-c", 'ulimit -f 20000 && exec "$0" "$@"'], env: { DENO_DIR: tempDir() } };

test("a write past the file size limit (ulimit -f) is EFBIG with the bytes written, not a SIGXFSZ that ends the process", () => {
  // Before (Deno): SIGXFSZ's default action killed the process; Bun ignores the signal and saw EFBIG.
  const path = join(tempDir(), "limited.bin");
  const run = runScript(
    `import { statSync } from "node:fs";
     import { openFile, PageWriter, writev } from "${root}mod.ts";
     const file = openFile(${JSON.stringify(path)}, "w");
     const seen = [];
     try { writev(file, [new Uint8Array(30 << 20)]); } catch (e) { seen.push(e.code, e.bytesTransferred); }
     try { writev(file, [new Uint8Array(1)]); } catch (e) { seen.push(e.code); }
     file.close();
     seen.push(statSync(${JSON.stringify(path)}).size);
     const writer = new PageWriter(${JSON.stringify(path)});
     writer.write(new Uint8Array(30 << 20));
     try { writer.flush(); } catch (e) { seen.push(e.code); }
     try { writer.close(); } catch (e) { seen.push(e.code); }
     console.log(JSON.stringify(seen));`,
    limited,
  );
  assert.equal(run.signal, null, run.stderr);
  assert.equal(run.status, 0, run.stderr);
  const seen = JSON.parse(run.stdout.trim());
  const [first, written, second, size, ...writer] = seen;
  assert.deepEqual([first, second], ["EFBIG", "EFBIG"]);
  assert.ok(written > 0 && written === size, run.stdout); // what the first call wrote is there, and counted
  assert.ok(writer.length > 0 && writer.every((c: string) => c === "EFBIG" || c === "ERR_UNFLUSHED"), run.stdout);
});

test("a child spawned after pageio's writes, one of them refused (EPIPE), starts with SIGPIPE and SIGXFSZ unblocked and not ignored", () => {
  // Once, each thread that wrote through pageio blocked both for good, and children inherit a thread's mask, so a
  // child of node:child_process, Deno.Command or Bun.spawn never died of SIGPIPE (`yes | head` printed errors).
  // Before that, pageio ignored SIGXFSZ, and an ignored signal stays ignored in children too (Deno leaves it at its
  // default; Bun ignores it itself).
  const run = runScript(
    `import { execFileSync } from "node:child_process";
     import { pipe, writev, writevAsync } from "${root}mod.ts";
     const [readEnd, writeEnd] = pipe();
     writev(writeEnd, [new Uint8Array(100)]);
     readEnd.close();
     const codes = [];
     try { writev(writeEnd, [new Uint8Array(100)]); } catch (e) { codes.push(e.code); }
     try { await writevAsync(writeEnd, [new Uint8Array(100)]); } catch (e) { codes.push(e.code); }
     const status = execFileSync("sh", ["-c", "grep -E 'SigBlk|SigIgn' /proc/self/status"]).toString();
     console.log(codes.join(" "), status.split(/\\s+/).filter((w) => /^[0-9a-f]{16}$/.test(w)).join(" "));`,
  );
  assert.deepEqual({ status: run.status, signal: run.signal }, { status: 0, signal: null }, run.stderr);
  const [first, second, blocked, ignored] = run.stdout.trim().split(" ");
  assert.deepEqual([first, second], ["EPIPE", "EPIPE"], run.stdout);
  const [pipeBit, fileSizeBit] = [1n << 12n, 1n << 24n]; // SIGPIPE (13) and SIGXFSZ (25)
  assert.equal(BigInt(`0x${blocked}`) & (pipeBit | fileSizeBit), 0n, `SigBlk ${blocked}`);
  if (isDeno) assert.equal(BigInt(`0x${ignored}`) & fileSizeBit, 0n, `SigIgn ${ignored}`);
});

test("a shared ring past the file size limit (ulimit -f) is EFBIG, not a SIGXFSZ that ends the process", () => {
  // Before (Deno): SharedRing.create's ftruncate of its memfd raised SIGXFSZ, whose default action ended the process.
  const path = join(tempDir(), "ring.bin");
  const run = runScript(
    `import { SharedRing } from "${root}mod.ts";
     const seen = [];
     for (const options of [{}, { path: ${JSON.stringify(path)} }]) {
       try { SharedRing.create({ ...options, slots: 512, slotSize: 65536 }).close(); seen.push("made"); }
       catch (e) { seen.push(e.code); }
     }
     using ring = SharedRing.create({ slots: 2 }); // a ring that fits is still made
     seen.push(ring.slots);
     console.log(JSON.stringify(seen));`,
    limited, // 32 MiB rings against a limit of ~10-20 MB
  );
  assert.equal(run.signal, null, run.stderr);
  assert.equal(run.status, 0, run.stderr);
  assert.deepEqual(JSON.parse(run.stdout.trim()), ["EFBIG", "EFBIG", 2]);
});
