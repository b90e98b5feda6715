// Cases found by using pageio from outside, as its users and attackers do: each a regression test.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  Brigade,
  connect,
  type FileHandle,
  listen,
  mapFile,
  openFile,
  type PageIoError,
  PagePool,
  PageReader,
  PageWriter,
  pipe,
  readv,
  readvAsync,
  writev,
  writevAsync,
} from "../mod.ts";
import { root, runScript, tempDir } from "./helpers.ts";

test("gather calls read a FileHandle's descriptor after the caller's iterable ran: one it closes is ERR_CLOSED, never another file", async () => {
  const dir = tempDir();
  const victim = join(dir, "victim.txt");
  const out = join(dir, "out.bin");
  writeFileSync(join(dir, "in.bin"), "input bytes");
  const opened: FileHandle[] = [];
  // The iterable closes the handle and opens the victim, which gets the freed number.
  function* closing(handle: FileHandle, chunk: Uint8Array) {
    const fd = handle.fd;
    handle.close();
    const other = openFile(victim, "r+");
    opened.push(other);
    assert.equal(other.fd, fd); // the number now names the victim
    yield chunk;
  }
  const calls: [string, () => unknown][] = [
    ["writev", () => {
      const h = openFile(out, "w");
      return writev(h, closing(h, new TextEncoder().encode("EVIL")));
    }],
    ["writevAsync", () => {
      const h = openFile(out, "w");
      return writevAsync(h, closing(h, new TextEncoder().encode("EVIL")));
    }],
    ["readv", () => {
      const h = openFile(join(dir, "in.bin"));
      return readv(h, closing(h, new Uint8Array(6)));
    }],
    ["readvAsync", () => {
      const h = openFile(join(dir, "in.bin"));
      return readvAsync(h, closing(h, new Uint8Array(6)));
    }],
  ];
  for (const [name, call] of calls) {
    writeFileSync(victim, "VICTIM");
    await assert.rejects(async () => await call(), (e: PageIoError) => e.code === "ERR_CLOSED", name);
    assert.equal(readFileSync(victim, "utf8"), "VICTIM", name);
    opened.forEach((f) => f.close());
    opened.length = 0;
  }
});

test("readv with a one-shot iterable (a generator) on an empty pipe waits for the bytes, as with an array", async () => {
  const [readEnd, writeEnd] = pipe();
  // A child writes after a pause, so readv must wait; the iterable is run once.
  const child = spawn("sh", ["-c", "sleep 0.3; printf hello"], { stdio: ["ignore", writeEnd.fd, "inherit"] });
  writeEnd.close();
  const exited = new Promise((resolve) => child.on("close", resolve));
  const into = new Uint8Array(5);
  let runs = 0;
  function* targets() {
    runs++;
    yield into;
  }
  try {
    assert.equal(readv(readEnd, targets()), 5);
    assert.equal(new TextDecoder().decode(into), "hello");
    assert.equal(runs, 1);
  } finally {
    await exited;
    readEnd.close();
  }
});

test("Socket.send reads its options before the socket's descriptor: a getter that closes it is ERR_CLOSED, never a send to the next socket", () => {
  // Before: the descriptor was read first, then the `more` getter closed the socket and connected another, which got
  // its number; the bytes went to that other connection's peer.
  using first = listen({ hostname: "127.0.0.1", port: 0 });
  using second = listen({ hostname: "127.0.0.1", port: 0 });
  const sender = connect(first.addr);
  using accepted = first.accept()!;
  let victim: ReturnType<typeof connect> | undefined;
  const options = {
    get more() {
      const fd = sender.fd;
      sender.close();
      victim = connect(second.addr);
      assert.equal(victim.fd, fd); // the number the sender had
      return false;
    },
  };
  try {
    assert.throws(
      () => sender.send(new TextEncoder().encode("for the first peer"), options),
      (e: PageIoError) => e.code === "ERR_CLOSED",
    );
    using peer = second.accept()!;
    victim!.close(); // the peer reads what was sent, then the end
    const into = new Uint8Array(64);
    assert.equal(peer.read(into), 0);
  } finally {
    victim?.close();
    accepted.close();
  }
});

test("a pool option is read once: a getter that gives a PagePool to the check and something else after is refused", () => {
  const dir = tempDir();
  writeFileSync(join(dir, "in.bin"), "bytes");
  using real = new PagePool();
  // The first reads see the real pool; every later one a look-alike.
  const shifty = () => {
    let reads = 0;
    return {
      get pool() {
        return reads++ < 2 ? real : { acquire: () => ({}), pageSize: 4096 };
      },
    };
  };
  const [readEnd, writeEnd] = pipe();
  try {
    writev(writeEnd, [new TextEncoder().encode("hello")]);
    using reader = new PageReader(readEnd, shifty() as never);
    using head = reader.read()!;
    assert.equal(new TextDecoder().decode(head.bytes), "hello");
    using writer = new PageWriter(join(dir, "out.txt"), shifty() as never);
    writer.write("written");
    writer.flush();
    assert.equal(readFileSync(join(dir, "out.txt"), "utf8"), "written");
  } finally {
    readEnd.close();
    writeEnd.close();
  }
});

test("PageWriter reads its append option once: a getter that says true to the check and false after never truncates the file", () => {
  // Before: read twice, the second read (false) opened the path with "w", and the log it was to append to was emptied.
  const path = join(tempDir(), "app.log");
  writeFileSync(path, "kept\n");
  let reads = 0;
  const options = {
    get append() {
      return reads++ === 0;
    },
  };
  const writer = new PageWriter(path, options as never);
  writer.write("added\n");
  writer.close();
  assert.equal(reads, 1);
  assert.equal(readFileSync(path, "utf8"), "kept\nadded\n");
});

test("a Brigade's pipe lender is private: a look-alike set from outside is never used", () => {
  const [readEnd, writeEnd] = pipe();
  using pool = new PagePool();
  let calls = 0;
  const brigade = new Brigade();
  // Before, `_lender` was a public field: lending through a look-alike skipped the fresh memory a lent page
  // needs before reuse, so the pipe's reader could see the page's next owner's bytes.
  (brigade as unknown as { _lender: unknown })._lender = {
    fd: writeEnd.fd,
    enabled: true,
    lent: () => calls++,
    settle: () => calls++,
  };
  try {
    const page = pool.acquire();
    page.bytes.fill(7);
    brigade.append(page.head(0, pool.pageSize));
    page.release();
    assert.equal(brigade.flush(writeEnd), pool.pageSize);
    const into = new Uint8Array(pool.pageSize);
    assert.equal(readv(readEnd, [into]), pool.pageSize);
    assert.ok(into.every((byte) => byte === 7));
    assert.equal(calls, 0);
  } finally {
    readEnd.close();
    writeEnd.close();
  }
});

test("concurrent writeAsync and sendFileAsync calls on one socket go out whole, in call order", async () => {
  const dir = tempDir();
  const fileBytes = new Uint8Array(3 << 20).fill(0x44);
  writeFileSync(join(dir, "d.bin"), fileBytes);
  using file = openFile(join(dir, "d.bin"));
  using listener = listen({ hostname: "127.0.0.1", port: 0 });
  using client = connect(listener.addr);
  using server = await listener.acceptAsync();
  // Each bigger than the socket's buffers, so each waits part-way; before, they took turns at every wait.
  const blocks = [0x41, 0x42, 0x43].map((byte) => new Uint8Array(3 << 20).fill(byte));
  const total = 4 * (3 << 20);
  const got = new Uint8Array(total);
  let read = 0;
  const reading = (async () => {
    while (read < total) {
      const n = await client.readAsync(got.subarray(read));
      if (n === 0) break;
      read += n;
    }
  })();
  const first = server.writeAsync([blocks[0]]);
  const aborted = new AbortController();
  const queued = server.writeAsync([new Uint8Array(1 << 20).fill(0x58)], aborted.signal); // behind the first
  const writes = [
    first,
    server.sendFileAsync(file, 0, fileBytes.length),
    server.writeAsync([blocks[1]]),
    server.writeAsync([blocks[2]]),
  ];
  aborted.abort(); // while queued behind a pending call: rejects, writes nothing
  await assert.rejects(queued, (e: PageIoError) => e.code === "ABORT_ERR");
  assert.deepEqual(await Promise.all(writes), [3 << 20, 3 << 20, 3 << 20, 3 << 20]);
  await reading;
  assert.equal(read, total);
  const runs: string[] = [];
  for (let i = 0; i < total; i++) if (i === 0 || got[i] !== got[i - 1]) runs.push(String.fromCharCode(got[i]));
  assert.deepEqual(runs, ["A", "D", "B", "C"]);
});

test("an async call reads its signal option once: a getter that gives the check an AbortSignal and the call a look-alike is not used", async () => {
  let touched = 0;
  const shifty = () => {
    let reads = 0;
    const real = new AbortController().signal;
    const fake = new Proxy({}, {
      get: () => {
        touched++;
        return () => {};
      },
    });
    return {
      get signal() {
        return reads++ === 0 ? real : fake;
      },
    } as never;
  };
  const [readEnd, writeEnd] = pipe();
  try {
    // Each call waits (an empty pipe, a full one), where a signal is listened to.
    const reading = readvAsync(readEnd, [new Uint8Array(4)], shifty());
    writev(writeEnd, [new TextEncoder().encode("1234")]);
    assert.equal(await reading, 4);
    const reader = new PageReader(readEnd);
    const headReading = reader.readAsync(shifty());
    writev(writeEnd, [new TextEncoder().encode("5678")]);
    const head = await headReading;
    assert.equal(head?.byteLength, 4);
    head?.release();
    const writer = new PageWriter(writeEnd, { lend: false });
    const big = new Uint8Array(1 << 20);
    const writing = writevAsync(writeEnd, [big], shifty());
    writer.write(big);
    const flushing = writer.flushAsync(shifty());
    let drained = 0;
    while (drained < 2 * big.length) drained += await readvAsync(readEnd, [new Uint8Array(1 << 16)]);
    assert.equal(await writing, big.length);
    assert.equal(await flushing, big.length);
    writer.close();
    reader.close();
    assert.equal(touched, 0);
  } finally {
    readEnd.close();
    writeEnd.close();
  }
});

test("a Worker terminated with files and sockets open leaves no descriptor of them behind, and its port free", () => {
  const dir = tempDir();
  const worker = join(dir, "worker.ts");
  writeFileSync(
    worker,
    `import { listen, openFile, pipe, FileHandle } from "${root}mod.ts";
    self.onmessage = async (e) => {
      const listener = listen({ hostname: "127.0.0.1", port: e.data.port });
      const file = openFile(e.data.file);
      const ends = pipe();
      globalThis.held = [listener, file, ends, new FileHandle(e.data.foreign)]; // never closed
      self.postMessage([listener.fd, file.fd, ends[0].fd, ends[1].fd]);
      try { await listener.acceptAsync(); } catch {}
    };`,
  );
  const run = runScript(
    `
    import { listen } from "${root}mod.ts";
    import { openSync, fstatSync, readlinkSync } from "node:fs";
    const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
    const target = (fd) => { try { return readlinkSync("/proc/self/fd/" + fd); } catch { return null; } };
    const probe = listen({ hostname: "127.0.0.1", port: 0 });
    const port = probe.addr.port;
    probe.close();
    const foreign = openSync(${JSON.stringify(worker)}, "r"); // not pageio's: the Worker only wraps it
    const w = new Worker(new URL("file://${worker}").href, { type: "module" });
    const fds = await new Promise((r) => { w.onmessage = (e) => r(e.data); w.postMessage({ port, file: ${
      JSON.stringify(worker)
    }, foreign }); });
    const opened = fds.map(target); // what each number named in the Worker
    w.terminate();
    // The runtime's own descriptors for the Worker may linger; these four are pageio's.
    const open = () => fds.filter((fd, i) => target(fd) === opened[i]).length;
    for (let i = 0; i < 300 && open() > 0; i++) await sleep(20);
    let relisten;
    try { listen({ hostname: "127.0.0.1", port }).close(); relisten = "ok"; } catch (e) { relisten = e.code; }
    fstatSync(foreign); // still open: a wrapped descriptor is its opener's
    console.log(JSON.stringify({ named: opened.every((t) => t !== null), left: open(), relisten }));
    process.exit(0);
  `,
    { timeout: 60_000 },
  );
  assert.equal(run.signal, null, run.stderr);
  assert.equal(run.status, 0, run.stderr);
  assert.deepEqual(JSON.parse(run.stdout.trim().split("\n").at(-1)!), { named: true, left: 0, relisten: "ok" });
});

test("a head queued on each of its references already is ERR_BUSY to queue again or to release; the writer goes on", () => {
  const dir = tempDir();
  const path = join(dir, "twice.bin");
  const pool = new PagePool();
  const page = pool.acquire();
  page.bytes.set(new TextEncoder().encode("abcd"));
  const head = page.head(0, 4);
  page.release();
  const writer = new PageWriter(path, { pool });
  writer.write(head);
  // Before: the second write queued the head again on its one reference; the first write of it released it,
  // and every later flush (and the one at exit) threw ERR_RELEASED with the rest of the queue stuck behind it.
  assert.throws(() => writer.write(head), (e: PageIoError) => e.code === "ERR_BUSY");
  assert.throws(() => new Brigade().append(head), (e: PageIoError) => e.code === "ERR_BUSY");
  assert.throws(() => head.release(), (e: PageIoError) => e.code === "ERR_BUSY"); // the writer releases it
  head[Symbol.dispose](); // `using` a head handed to a writer: the writer has its reference, nothing to do
  assert.equal(head.refs, 1);
  // One reference per queue: retained, the same head goes out twice and each write lets go of one.
  const again = pool.acquire();
  again.bytes.set(new TextEncoder().encode("xy"));
  const shared = again.head(0, 2);
  again.release();
  writer.write(shared.retain());
  writer.write(shared);
  writer.write("!");
  writer.close();
  assert.equal(readFileSync(path, "latin1"), "abcdxyxy!");
  assert.equal(head.refs, 0);
  assert.equal(shared.refs, 0);
  assert.equal(pool.stats.inUse, 0);
  pool.close();
});

test("ArrayBuffer.prototype.transfer and detached redefined after load never keep a view live over memory pageio unmapped or reused", () => {
  // Before: revocation called the redefined `transfer`, which detached nothing: every view stayed live over
  // memory that was then unmapped (SIGSEGV on Deno) or handed to the page's next owner (its bytes, on Bun).
  const run = runScript(`
    import { mapAnonymous, Page, PagePool } from "${root}mod.ts";
    const seen = {};
    Object.defineProperty(ArrayBuffer.prototype, "transfer", { configurable: true, writable: true, value: () => new ArrayBuffer(0) });
    Object.defineProperty(ArrayBuffer.prototype, "detached", { configurable: true, get: () => false });
    const memory = mapAnonymous(1 << 20);
    const view = memory.bytes;
    view[5] = 5;
    memory.unmap();
    seen.unmapped = [view.length, view[5] ?? null];
    const pool = new PagePool({ pages: 1, maxPages: 1 });
    const page = pool.acquire();
    const old = page.bytes;
    const head = page.head(0, 8);
    const headView = head.bytes;
    head.release();
    page.release();
    const next = pool.acquire();
    next.bytes.fill(9);
    seen.reused = [old.length, old[0] ?? null, headView.length];
    const shared = Page.fromShared(next.share());
    const sharedView = shared.bytes;
    shared.release();
    next.release();
    pool.close();
    seen.shared = [sharedView.length, sharedView[0] ?? null];
    console.log(JSON.stringify(seen));
  `);
  assert.equal(run.signal, null, run.stderr);
  assert.equal(run.status, 0, run.stderr);
  assert.deepEqual(JSON.parse(run.stdout.trim().split("\n").at(-1)!), {
    unmapped: [0, null],
    reused: [0, null, 0],
    shared: [0, null],
  });
});

test("a redefined length or byteLength on %TypedArray%.prototype never reaches the native side: BYOB reads, paths, sockets and long gather lists stay inside their arrays", () => {
  // Before: a BYOB read of a file's readable gave pread the lie as its length (heap corruption on Deno), an
  // encoded path or socket address was cut or overrun, and a gather list that grew read descriptors past its end.
  const dir = tempDir();
  writeFileSync(join(dir, "in.bin"), "0123456789abcdef");
  const run = runScript(`
    import { connect, listen, openFile, PageReader, readv, writev } from "${root}mod.ts";
    const dir = ${JSON.stringify(dir)};
    const seen = {};
    const typed = Object.getPrototypeOf(Uint8Array.prototype);
    let lie = 0;
    for (const key of ["length", "byteLength"]) {
      const real = Object.getOwnPropertyDescriptor(typed, key).get;
      Object.defineProperty(typed, key, { configurable: true, get() { return lie || real.call(this); } });
    }
    const reader = new PageReader(dir + "/in.bin").readable.getReader({ mode: "byob" });
    lie = 1 << 24;
    const { value } = await reader.read(new Uint8Array(10));
    seen.byob = String.fromCharCode(...Array.from({ length: 10 }, (_, i) => value[i]));
    await reader.cancel();
    seen.open = openFile(dir + "/in.bin").size();
    lie = 3;
    const listener = listen({ path: dir + "/socket" });
    const client = connect({ path: dir + "/socket" });
    seen.socket = [listener.addr.path === dir + "/socket", client.remoteAddr.path === dir + "/socket"];
    lie = 1 << 28;
    const many = Array.from({ length: 3000 }, () => new Uint8Array(100));
    seen.gather = [writev(openFile("/dev/null", "w"), many), readv(openFile("/dev/zero"), many)];
    lie = 0;
    console.log(JSON.stringify(seen));
    process.exit(0);
  `);
  assert.equal(run.signal, null, run.stderr);
  assert.equal(run.status, 0, run.stderr);
  assert.deepEqual(JSON.parse(run.stdout.trim().split("\n").at(-1)!), {
    byob: "0123456789",
    open: 16,
    socket: [true, true],
    gather: [300_000, 300_000],
  });
});

test("pageio loads and works in a realm whose intrinsics were frozen before it (a hardened realm)", () => {
  // Before: giving the intrinsic getters their own `call` threw at load when they were frozen.
  const run = runScript(`
    const typed = Object.getPrototypeOf(Uint8Array.prototype);
    for (const [target, key] of [[typed, "byteLength"], [typed, "byteOffset"], [typed, "buffer"], [typed, Symbol.toStringTag],
      [ArrayBuffer.prototype, "detached"], [ArrayBuffer.prototype, "resizable"], [SharedArrayBuffer.prototype, "growable"]]) {
      Object.freeze(Object.getOwnPropertyDescriptor(target, key).get);
    }
    Object.freeze(ArrayBuffer.prototype.transfer);
    Object.freeze(String.prototype.charCodeAt);
    const { mapAnonymous, openFile, PageWriter, readv, writev } = await import("${root}mod.ts");
    const many = Array.from({ length: 8 }, () => new Uint8Array(100));
    const seen = { gather: [writev(openFile("/dev/null", "w"), many), readv(openFile("/dev/zero"), many)] };
    const mapping = mapAnonymous(4096);
    const view = mapping.bytes;
    mapping.unmap();
    seen.revoked = view.length;
    const writer = new PageWriter(openFile("/dev/null", "w"));
    writer.write("text");
    writer.close();
    console.log(JSON.stringify(seen));
  `);
  assert.equal(run.signal, null, run.stderr);
  assert.equal(run.status, 0, run.stderr);
  assert.deepEqual(JSON.parse(run.stdout.trim().split("\n").at(-1)!), { gather: [800, 800], revoked: 0 });
});

test("a redefined Function.prototype.call never reaches the native side: gather lists, BYOB reads and string writes stay inside their arrays", () => {
  // Before: the intrinsic getters were called through `.call`, so a redefined one lied about lengths and offsets:
  // writev read 1 GiB past an array (Deno aborted, Bun SIGSEGV) and readv wrote past one.
  const dir = tempDir();
  writeFileSync(join(dir, "in.bin"), "0123456789abcdef");
  const run = runScript(`
    import { openFile, PagePool, PageReader, PageWriter, readv, writev } from "${root}mod.ts";
    const dir = ${JSON.stringify(dir)};
    const seen = {};
    const apply = Reflect.apply;
    let lie = 0;
    Object.defineProperty(Function.prototype, "call", {
      configurable: true,
      writable: true,
      value: function (self, ...args) {
        const result = apply(this, self, args);
        return lie && typeof result === "number" ? lie : result;
      },
    });
    const many = Array.from({ length: 64 }, () => new Uint8Array(100));
    const devNull = openFile("/dev/null", "w");
    const devZero = openFile("/dev/zero");
    const reader = new PageReader(dir + "/in.bin").readable.getReader({ mode: "byob" });
    const pool = new PagePool();
    const head = pool.acquire().head(0, 8);
    const writer = new PageWriter(dir + "/out.txt");
    lie = 1 << 30;
    seen.gather = [writev(devNull, many), readv(devZero, many)];
    const { value } = await reader.read(new Uint8Array(10));
    seen.byob = String.fromCharCode(...Array.from({ length: 10 }, (_, i) => value[i]));
    seen.head = writev(devNull, [head]);
    for (let i = 0; i < 1000; i++) writer.write("line " + i + "\\n");
    writer.flush();
    lie = 0;
    await reader.cancel();
    writer.close();
    seen.text = (await new Response(new PageReader(dir + "/out.txt").readable).text()).length;
    console.log(JSON.stringify(seen));
    process.exit(0);
  `);
  assert.equal(run.signal, null, run.stderr);
  assert.equal(run.status, 0, run.stderr);
  let expectedText = 0;
  for (let i = 0; i < 1000; i++) expectedText += ("line " + i + "\n").length;
  assert.deepEqual(JSON.parse(run.stdout.trim().split("\n").at(-1)!), {
    gather: [6400, 6400],
    byob: "0123456789",
    head: 8,
    text: expectedText,
  });
});

test("mapFile reads its options before a FileHandle's descriptor: a getter that closes the handle is ERR_CLOSED, never the next file's bytes", () => {
  const dir = tempDir();
  writeFileSync(join(dir, "mine.txt"), "MINE");
  writeFileSync(join(dir, "victim.txt"), "VICTIM");
  const handle = openFile(join(dir, "mine.txt"));
  const opened: FileHandle[] = [];
  // Before: the getter ran after the descriptor was read; the victim got the freed number and was mapped.
  const options = {
    get offset() {
      const fd = handle.fd;
      handle.close();
      opened.push(openFile(join(dir, "victim.txt")));
      assert.equal(opened[0].fd, fd);
      return 0;
    },
  };
  try {
    assert.throws(() => mapFile(handle, options), (e: PageIoError) => e.code === "ERR_CLOSED");
  } finally {
    opened.forEach((f) => f.close());
  }
});
