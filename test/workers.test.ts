// Terminating a Worker that uses pageio: the process lives on, and what the Worker held is let go.
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { fifo, root, runScript, tempDir } from "./helpers.ts";

test("Workers terminated while waiting in a ring receive, holding a mapping or waiting on a FIFO never crash the process", () => {
  const dir = tempDir();
  const file = join(dir, "mapped.bin");
  writeFileSync(file, new Uint8Array(1 << 20));
  const pipe = fifo();
  const worker = join(dir, "worker.ts");
  writeFileSync(
    worker,
    `import { SharedRing, mapFile, openFile, readvAsync } from "${root}mod.ts";
    self.onmessage = async (e) => {
      const { mode, path } = e.data;
      if (mode === "ring") { const r = SharedRing.open(path); self.postMessage("waiting"); await r.receiveAsync(); }
      if (mode === "map") { globalThis.m = mapFile(path); self.postMessage("waiting"); }
      if (mode === "read") { const f = openFile(path, "r"); self.postMessage("waiting"); await readvAsync(f, [new Uint8Array(65536)]); }
    };`,
  );
  const run = runScript(
    `import { SharedRing, openFile, readvAsync, writev } from "${root}mod.ts";
    import { readdirSync, readFileSync, readlinkSync } from "node:fs";
    // A terminated Worker's poller: its epoll set and wake-up eventfd.
    const pollerFds = () => readdirSync("/proc/self/fd").filter((fd) => {
      try { return /eventpoll|eventfd/.test(readlinkSync("/proc/self/fd/" + fd)); } catch { return false; }
    }).length;
    const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
    // A terminated Worker's teardown (its unmaps, its poller's close) runs in its own time: poll, generously.
    const until = async (check) => {
      for (const deadline = Date.now() + 30_000; !check() && Date.now() < deadline;) await sleep(10);
    };
    const mappedAreas = () =>
      readFileSync("/proc/self/maps", "utf8").split("\\n").filter((l) => l.includes("mapped.bin")).length;
    const out = {};
    const hold = openFile(${JSON.stringify(pipe)}, "r+");
    async function inWorker(mode, path) {
      const w = new Worker(new URL("file://${worker}").href, { type: "module" });
      const ready = new Promise((r) => (w.onmessage = r));
      w.postMessage({ mode, path });
      await ready;
      await sleep(50); // the wait has begun
      w.terminate();
      await sleep(150);
    }
    // (1) A consumer waiting off the JS thread: its ring must stay mapped until that wait is over, and the
    // producer learns the consumer is gone instead of waiting for it for ever.
    const ring = SharedRing.create({ slots: 2, slotSize: 4096 });
    await inWorker("ring", ring.path);
    try {
      for (let i = 0; i < 3; i++) ring.reserve({ timeout: 30_000 }).publish(1); // EPIPE once its teardown has run
      out.producer = "no error";
    } catch (error) {
      out.producer = error.code;
    }
    // (2) Workers holding file mappings: unmapped at their end.
    for (let i = 0; i < 3; i++) await inWorker("map", ${JSON.stringify(file)});
    await until(() => mappedAreas() === 0);
    out.mappings = mappedAreas();
    // (3) Workers waiting for readiness on a FIFO: nothing of theirs may run once they are gone, and the
    // bytes written next are the main thread's to read.
    const pollers = pollerFds();
    for (let i = 0; i < 3; i++) await inWorker("read", ${JSON.stringify(pipe)});
    await until(() => pollerFds() <= pollers);
    out.pollerFdsLeft = Math.max(0, pollerFds() - pollers); // fewer: an earlier Worker's runtime closed late
    writev(hold, [new Uint8Array(3000).fill(9)]);
    await sleep(200);
    out.read = await Promise.race([readvAsync(hold, [new Uint8Array(65536)]), sleep(30_000).then(() => "nothing")]);
    console.log(JSON.stringify(out));
    process.exit(0);
    `,
    { denoFlags: ["--v8-flags=--expose-gc"], timeout: 120_000 },
  );
  assert.equal(run.signal, null, run.stderr);
  assert.equal(run.status, 0, run.stderr);
  const out = JSON.parse(run.stdout.trim().split("\n").at(-1)!);
  assert.deepEqual(out, { producer: "EPIPE", mappings: 0, pollerFdsLeft: 0, read: 3000 });
});

test("a Worker terminated while it moves a PageReader's spans to a full FIFO leaves no descriptor of the file open", () => {
  const dir = tempDir();
  const source = join(dir, "source.bin");
  writeFileSync(source, new Uint8Array(1 << 20).fill(7));
  const pipe = fifo();
  const worker = join(dir, "worker.ts");
  writeFileSync(
    worker,
    `import { PageReader, PageWriter } from "${root}mod.ts";
    self.onmessage = (e) => {
      const reader = new PageReader(e.data.source);
      const writer = new PageWriter(e.data.pipe);
      for (const head of reader) writer.write(head);
      writer.flushAsync(); // the FIFO takes 64 KiB: the move waits, on a duplicate of the reader's descriptor
      self.postMessage("waiting");
    };`,
  );
  const run = runScript(
    `import { openFile } from "${root}mod.ts";
    import { readdirSync, readlinkSync } from "node:fs";
    const onSource = () => readdirSync("/proc/self/fd").filter((fd) => {
      try { return readlinkSync("/proc/self/fd/" + fd) === ${JSON.stringify(source)}; } catch { return false; }
    }).length;
    const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
    const hold = openFile(${JSON.stringify(pipe)}, "r+"); // a reader that never reads
    const w = new Worker(new URL("file://${worker}").href, { type: "module" });
    const ready = new Promise((r) => (w.onmessage = r));
    w.postMessage({ source: ${JSON.stringify(source)}, pipe: ${JSON.stringify(pipe)} });
    await ready;
    const during = onSource();
    w.terminate();
    // Its teardown runs in its own time. The FIFO, opened by path, is non-blocking: the move waits by readiness,
    // never inside a blocking sendfile (a thread there could not end before a reader drained the FIFO).
    for (const deadline = Date.now() + 30_000; onSource() > 0 && Date.now() < deadline;) await sleep(10);
    console.log(JSON.stringify({ during: during > 0, after: onSource() }));
    hold.close();
    process.exit(0);
    `,
    { timeout: 120_000 },
  );
  assert.equal(run.signal, null, run.stderr);
  assert.equal(run.status, 0, run.stderr);
  assert.deepEqual(JSON.parse(run.stdout.trim().split("\n").at(-1)!), { during: true, after: 0 });
});

test("a Worker terminated while its async write waits in a blocking pipe nobody reads lets the process end by itself", () => {
  // Before, on Bun: the write's helper stayed in writev(2) for good, the terminated Worker's thread waited for it,
  // and the process never exited (killed here after the timeout). Now the call returns within a slice (Linux).
  const dir = tempDir();
  const worker = join(dir, "worker.ts");
  writeFileSync(
    worker,
    `import { pipe, writevAsync } from "${root}mod.ts";
    import { openSync } from "node:fs";
    self.onmessage = (e) => {
      // A pipe() made blocking, and a FIFO's descriptor from node:fs (blocking, held open for reading, never read).
      let target;
      if (e.data.mode === "pipe") {
        const [readEnd, writeEnd] = pipe({ nonBlocking: false });
        globalThis.readEnd = readEnd;
        target = writeEnd;
      } else {
        globalThis.readFd = openSync(e.data.fifo, "r+");
        target = openSync(e.data.fifo, "w");
      }
      writevAsync(target, [new Uint8Array(8 << 20)]); // the pipe takes 64 KiB: the rest waits on a thread
      self.postMessage("writing");
    };`,
  );
  for (const mode of ["pipe", "fifo"]) {
    const run = runScript(
      `import { readdirSync, readFileSync } from "node:fs";
      const inPipeWrite = () => readdirSync("/proc/self/task").some((task) => {
        try { return readFileSync("/proc/self/task/" + task + "/wchan", "utf8").includes("pipe_write"); } catch { return false; }
      });
      const w = new Worker(new URL("file://${worker}").href, { type: "module" });
      await new Promise((resolve) => { w.onmessage = resolve; w.postMessage({ mode: "${mode}", fifo: ${
        JSON.stringify(fifo())
      } }); });
      // Until a thread blocks in the write (the rest of 8 MiB): only then is the case this test is about met.
      let blocked = false;
      for (const deadline = Date.now() + 30_000; !(blocked = inPipeWrite()) && Date.now() < deadline;) {
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      w.terminate();
      console.log(JSON.stringify({ blocked }));
      // No process.exit: the process must end once nothing is left to run.`,
      { timeout: 60_000 },
    );
    assert.equal(run.signal, null, `${mode}: the process did not end by itself\n${run.stderr}`);
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(JSON.parse(run.stdout.trim().split("\n").at(-1)!), { blocked: true });
  }
});
