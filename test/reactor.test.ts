// The readiness reactor: one native wait for every descriptor, woken per batch; aborts, forgotten fds, no
// starvation, a live event loop, and a process that exits once nothing waits. Each forced mode runs the same
// checks in a child process.
import { test } from "node:test";
import assert from "node:assert/strict";
import { closeSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  adoptSocket,
  connect,
  listen,
  type Listener,
  openFile,
  type PageIoError,
  pipe,
  readv,
  readvAsync,
  type Socket,
  socketPair,
  writev,
  writevAsync,
} from "../mod.ts";
import { edgeState, forget, reactorMode, spinStats, waitingCount, waitReady } from "../src/reactor.ts";
import { haveStrace, isDeno, root, runScript, tempDir, tempFile, until } from "./helpers.ts";

const code = (e: unknown) => (e as PageIoError).code;
/** Whether `promise` settles within `ms`; the timer goes with it (a bound of 30 s must not hold the process). */
const settledWithin = async <T>(promise: Promise<T>, ms: number) => {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise.then(() => true, () => true),
      new Promise<boolean>((r) => timer = setTimeout(() => r(false), ms)),
    ]);
  } finally {
    clearTimeout(timer);
  }
};

test("a pipe is ready to write at once, and to read once bytes arrive", async () => {
  const [r, w] = pipe({ nonBlocking: true });
  try {
    await waitReady(w.fd, "write");
    const readable = waitReady(r.fd, "read");
    assert.equal(await settledWithin(readable, 30), false, "nothing to read yet");
    writev(w, [new Uint8Array([1, 2, 3])]);
    await readable;
    const back = new Uint8Array(3);
    assert.equal(readv(r, [back]), 3);
    assert.deepEqual([...back], [1, 2, 3]);
    assert.equal(waitingCount(), 0);
  } finally {
    r.close();
    w.close();
  }
});

test("a regular file is always ready", async () => {
  using file = openFile(tempFile("x"));
  await waitReady(file.fd, "read");
  await waitReady(file.fd, "write");
  assert.equal(waitingCount(), 0);
});

test("an abort rejects with the signal's reason and leaves nothing waiting", async () => {
  const [r, w] = pipe({ nonBlocking: true });
  try {
    const controller = new AbortController();
    const waiting = waitReady(r.fd, "read", controller.signal);
    const reason = new Error("enough");
    controller.abort(reason);
    await assert.rejects(waiting, (e) => e === reason);
    await assert.rejects(waitReady(r.fd, "read", controller.signal), (e) => e === reason);
    assert.equal(waitingCount(), 0);
    // The fd still works for the next waiter.
    const next = waitReady(r.fd, "read");
    writev(w, [new Uint8Array(1)]);
    await next;
  } finally {
    r.close();
    w.close();
  }
});

test("forget rejects the fd's waiters with ERR_CLOSED before its number can be reused", async () => {
  const [r, w] = pipe({ nonBlocking: true });
  const a = waitReady(r.fd, "read");
  const b = waitReady(r.fd, "read");
  forget(r.fd);
  r.close();
  await assert.rejects(a, (e) => code(e) === "ERR_CLOSED");
  await assert.rejects(b, (e) => code(e) === "ERR_CLOSED");
  // The number comes back for a new pipe: an old wait must not take its readiness.
  const [r2, w2] = pipe({ nonBlocking: true });
  try {
    const fresh = waitReady(r2.fd, "read");
    writev(w2, [new Uint8Array(1)]);
    await fresh;
    assert.equal(waitingCount(), 0);
  } finally {
    r2.close();
    w2.close();
    w.close();
  }
});

test("a read and a write pending on one socket when it closes each report their own bytes, not the other's", async () => {
  const [a, b] = socketPair();
  try {
    const read = readvAsync(a, [new Uint8Array(10)]);
    const write = writevAsync(a, [new Uint8Array(8 << 20)]); // fills the buffers, then waits
    await until(() => waitingCount() >= 2);
    a.close();
    const [readError, writeError] = await Promise.all([read.catch((e) => e), write.catch((e) => e)]);
    assert.equal(code(readError), "ERR_CLOSED");
    assert.equal(code(writeError), "ERR_CLOSED");
    assert.notEqual(readError, writeError); // one error shared took the write's count into the read's
    assert.ok(!(readError.bytesTransferred > 0), `the read moved nothing, said ${readError.bytesTransferred}`);
    assert.ok(writeError.bytesTransferred > 0);
  } finally {
    b.close();
  }
});

test(
  "10^5 reads waiting on one descriptor all start and settle, each with its byte",
  { timeout: 120_000 },
  async () => {
    // Each new waiter scanned every other to arm the fd: 10^5 took minutes to start.
    const [r, w] = socketPair();
    try {
      const count = 100_000;
      const targets = Array.from({ length: count }, () => new Uint8Array(1));
      const reads = targets.map((target) => readvAsync(r, [target]));
      const data = new Uint8Array(count).map((_, i) => i % 251);
      for (let sent = 0; sent < count;) sent += await writevAsync(w, [data.subarray(sent)]);
      assert.ok((await Promise.all(reads)).every((n) => n === 1));
      const sum = (bytes: Iterable<number>) => [...bytes].reduce((s, x) => s + x, 0);
      assert.equal(sum(targets.map((t) => t[0])), sum(data)); // every byte taken once
      assert.equal(waitingCount(), 0);
    } finally {
      r.close();
      w.close();
    }
  },
);

test("bad input is refused with a typed error", async () => {
  await assert.rejects(waitReady(0, "sideways" as "read"), TypeError);
  await assert.rejects(waitReady(999_999, "read"), (e) => code(e) === "EBADF");
  assert.equal(waitingCount(), 0);
});

test("a thousand blocked waits never keep out the one that would unblock them", async () => {
  const pipes = Array.from({ length: 1000 }, () => pipe({ nonBlocking: true }));
  try {
    const blocked = pipes.map(([r]) => waitReady(r.fd, "read"));
    const [sr, sw] = socketPair({ nonBlocking: true });
    await waitReady(sw.fd, "write");
    // Wake them all: each wait resolves, with few wake-ups between them.
    for (const [, w] of pipes) writev(w, [new Uint8Array(1)]);
    await Promise.all(blocked);
    assert.equal(waitingCount(), 0);
    sr.close();
    sw.close();
  } finally {
    for (const [r, w] of pipes) {
      r.close();
      w.close();
    }
  }
});

test("both directions of one socket wait at once", async () => {
  const [a, b] = socketPair({ nonBlocking: true });
  try {
    const readable = waitReady(a.fd, "read");
    await waitReady(a.fd, "write"); // resolved while the read still waits
    assert.equal(await settledWithin(readable, 20), false);
    writev(b, [new Uint8Array(1)]);
    await readable;
  } finally {
    a.close();
    b.close();
  }
});

test("a 10 ms timer keeps firing while waits are pending", async () => {
  const [r, w] = pipe({ nonBlocking: true });
  try {
    const waiting = waitReady(r.fd, "read");
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    // Only the loop can tick the timer, and nothing ends the wait until it has ticked 5 times: a parked loop
    // fails here (a fixed 200 ms window failed on a loaded machine, where 10 ms ticks come late).
    const ticked = await until(() => ticks >= 5);
    clearInterval(timer);
    assert.ok(ticked, `only ${ticks} ticks in 30 s`);
    writev(w, [new Uint8Array(1)]);
    await waiting;
  } finally {
    r.close();
    w.close();
  }
});

/**
 * Runs `step` back to back until a 10 ms interval has ticked `ticks` times (or 30 s have passed); returns the
 * ticks. Steps that never yield to the timers starve it, and the count stays 0; a count over a fixed window
 * would also judge how late a loaded machine runs timers.
 */
async function ticksWhile(ticks: number, step: () => Promise<unknown>): Promise<number> {
  let ticked = 0;
  const timer = setInterval(() => ticked++, 10);
  try {
    for (const end = performance.now() + 30_000; ticked < ticks && performance.now() < end;) await step();
  } finally {
    clearInterval(timer);
  }
  return ticked;
}

test("async calls that complete at once still let a 10 ms timer fire (they never yielded: it starved)", async () => {
  const [a, b] = socketPair({ nonBlocking: true });
  using file = openFile(tempFile(new Uint8Array(64)));
  const bytes = new Uint8Array(64);
  using listener = listen({ hostname: "127.0.0.1", port: 0 });
  using client = connect(listener.addr);
  using server = await listener.acceptAsync();
  try {
    // Data is always there: each call completes on the JS thread, as a microtask.
    const piped = await ticksWhile(3, () => (writev(a, [bytes]), readvAsync(b, [bytes])));
    const fromFile = await ticksWhile(3, () => readvAsync(file, [bytes]));
    const socket = await ticksWhile(3, () => (client.write([bytes]), server.readAsync(bytes)));
    const written = await ticksWhile(3, async () => (await server.writeAsync([bytes]), client.read(bytes)));
    for (const [name, ticks] of Object.entries({ piped, fromFile, socket, written })) {
      assert.ok(ticks >= 3, `${name}: the 10 ms timer fired ${ticks} times in 30 s`);
    }
    assert.equal(waitingCount(), 0);
  } finally {
    a.close();
    b.close();
  }
});

/**
 * Spins run only while no other wait is parked and at most 1 ms in a row without one delivered: a wait that
 * parks and is met (by a write after it) starts the next checks afresh.
 */
async function afterParkedWait(): Promise<void> {
  assert.equal(waitingCount(), 0, "a wait is still parked");
  const [r, w] = pipe({ nonBlocking: true });
  const parked = waitReady(r.fd, "read");
  writev(w, [new Uint8Array(1)]);
  await parked;
  r.close();
  w.close();
}

test("a wait the fd meets within the spin is seen on the JS thread, without parking", async () => {
  const [r, w] = pipe({ nonBlocking: true });
  try {
    await afterParkedWait();
    const before = spinStats();
    await waitReady(w.fd, "write"); // an empty pipe takes a write at once
    const after = spinStats();
    assert.equal(after.hits - before.hits, 1);
    assert.equal(after.parks, before.parks); // how long it spun is timing, not asserted: a loaded machine took 97 µs
  } finally {
    r.close();
    w.close();
  }
});

test("a spin that fails holds the JS thread no longer than its limit, then that fd parks without spinning", async () => {
  // The wall time of one call also counts a preemption or a collection that happened to fall in it, so only
  // a gross overrun fails, and only if it comes back on each of 5 fresh pipes: a spin past its limit always does.
  const helds: number[] = [];
  for (let attempt = 0; attempt < 5 && !(helds.at(-1)! < 50); attempt++) {
    const [r, w] = pipe({ nonBlocking: true });
    try {
      await afterParkedWait();
      const before = spinStats();
      const started = performance.now();
      const first = waitReady(r.fd, "read");
      helds.push(performance.now() - started);
      const missed = spinStats();
      assert.equal(missed.spins - before.spins, 1);
      assert.equal(missed.hits, before.hits);
      assert.equal(missed.parks - before.parks, 1);
      assert.equal(missed.spunNs - before.spunNs, 50_000); // the default limit
      writev(w, [new Uint8Array(1)]);
      await first;
      readv(r, [new Uint8Array(1)]);
      // Backed off: the next waits on this fd park at once until it has sat out its turn.
      const second = waitReady(r.fd, "read");
      assert.equal(spinStats().spins, missed.spins);
      writev(w, [new Uint8Array(1)]);
      await second;
    } finally {
      r.close();
      w.close();
    }
  }
  assert.ok(helds.at(-1)! < 50, `the first wait held the thread ${helds.map((ms) => ms.toFixed(1)).join(", ")} ms`);
});

test("back-to-back waits met by spins still let a 10 ms timer fire (a wait parks at least every few ms)", async () => {
  const [r, w] = pipe({ nonBlocking: true });
  try {
    let fired = false;
    setTimeout(() => fired = true, 10);
    const before = spinStats();
    const started = performance.now();
    // Every wait here is met at once: without a bound on spins in a row this loop would never yield.
    for (let i = 0; !fired && i < 2_000_000; i++) await waitReady(w.fd, "write");
    assert.ok(fired, "the timer never fired");
    assert.ok(performance.now() - started < 5000);
    const after = spinStats();
    assert.ok(after.hits - before.hits > 0, "no wait was met by a spin");
    assert.ok(after.parks - before.parks > 0, "no wait parked");
  } finally {
    r.close();
    w.close();
  }
});

test("an fd met at once by its spins still parks one wait in 16, to measure which way is quicker", async () => {
  const [r, w] = pipe({ nonBlocking: true });
  try {
    await afterParkedWait();
    const before = spinStats();
    for (let i = 0; i < 64; i++) await waitReady(w.fd, "write");
    const after = spinStats();
    assert.equal(after.hits - before.hits + (after.parks - before.parks), 64);
    assert.ok(after.parks - before.parks >= 4, `${after.parks - before.parks} parked`);
  } finally {
    r.close();
    w.close();
  }
});

/**
 * Runs `body` (statements using the names imported below) in a child with read pauses on, as they were by default
 * before measurements showed them slowing a child's stdout (the default is off now: see SETTLE_NS_DEFAULT).
 */
function withPauses(body: string): void {
  const run = runScript(
    `import assert from "node:assert/strict";
     import { pipe, readvAsync, writev } from "${root}mod.ts";
     import { forget, readDone, settleBeforeRead, spinStats } from "${root}src/reactor.ts";
     ${body}`,
    { env: { PAGEIO_SETTLE_US: "20" } },
  );
  assert.deepEqual({ status: run.status, signal: run.signal }, { status: 0, signal: null }, run.stderr);
}

test("a read pauses first only after reads in a row took small pieces of a stream, never after a wait", () => {
  withPauses(`
  const [r, w] = pipe({ nonBlocking: true });
  try {
    const pauses = () => spinStats().pauses;
    const start = pauses();
    settleBeforeRead(r.fd, 65536);
    readDone(r.fd, 65536, 8192);
    settleBeforeRead(r.fd, 65536);
    assert.equal(pauses(), start, "one small read is not a trickle");
    readDone(r.fd, 65536, 8192);
    const began = performance.now();
    settleBeforeRead(r.fd, 65536); // nothing waits in the pipe: one pause of 20 µs
    assert.ok(performance.now() - began >= 0.015, "it did not pause");
    assert.equal(pauses(), start + 1);
    writev(w, [new Uint8Array(65536)]);
    settleBeforeRead(r.fd, 65536); // enough waits: no sleep, but counted
    assert.equal(pauses(), start + 2);
    readDone(r.fd, 65536, 65536); // a full read ends the trickle
    settleBeforeRead(r.fd, 65536);
    assert.equal(pauses(), start + 2);
    for (const result of [8192, 8192, -11]) readDone(r.fd, 65536, result); // EAGAIN: caught up, a reply stream
    settleBeforeRead(r.fd, 65536);
    readDone(r.fd, 65536, 100);
    readDone(r.fd, 65536, 100);
    forget(r.fd);
    settleBeforeRead(r.fd, 65536);
    assert.equal(pauses(), start + 2, "forget drops what was learnt of the fd");
  } finally {
    r.close();
    w.close();
  }
`);
});

test("the first read after a wait pauses only on a bulk stream, and not while another wait is parked", () => {
  withPauses(`
  // A child writing 4 KiB at a time ends each wait with its first write: read at once, every wait took 4 KiB.
  const [r, w] = pipe({ nonBlocking: true, size: 1 << 20 });
  const [otherR, otherW] = pipe({ nonBlocking: true });
  const pauses = () => spinStats().pauses;
  const piece = new Uint8Array(4096).fill(7);
  /** A read of \`r\` that has to wait, ended by one 4 KiB write: what it read, and whether it paused first. */
  const afterWait = async () => {
    const into = new Uint8Array(65536);
    const before = pauses();
    const reading = readvAsync(r, [into]); // the pipe is empty: it waits (a spin, if any, is over by now)
    assert.equal(writev(w, [piece]), 4096);
    const read = await reading;
    assert.deepEqual(into.subarray(0, read), new Uint8Array(read).fill(7));
    return { read, paused: pauses() - before };
  };
  try {
    assert.deepEqual(await afterWait(), { read: 4096, paused: 0 }, "not a bulk stream: a reply is read at once");
    assert.equal(writev(w, [new Uint8Array(65536).fill(7)]), 65536);
    assert.equal(await readvAsync(r, [new Uint8Array(65536)]), 65536); // a read of 64 KiB: a bulk stream now
    assert.deepEqual(await afterWait(), { read: 4096, paused: 1 });
    const parked = readvAsync(otherR, [new Uint8Array(1)]); // another wait parked: no pause holds it up
    assert.deepEqual(await afterWait(), { read: 4096, paused: 0 }, "another wait is parked");
    assert.equal(writev(otherW, [new Uint8Array(1)]), 1);
    assert.equal(await parked, 1);
    for (let i = 0; i < 14; i++) { // small reads (not a trickle: each fills a quarter): the 16th since ends it
      assert.equal(writev(w, [piece]), 4096);
      assert.equal(await readvAsync(r, [new Uint8Array(16384)]), 4096);
    }
    assert.deepEqual(await afterWait(), { read: 4096, paused: 0 }, "16 reads since one of 64 KiB");
    readDone(r.fd, 65536, 65536);
    forget(r.fd);
    assert.deepEqual(await afterWait(), { read: 4096, paused: 0 }, "forget drops what was learnt of the fd");
  } finally {
    for (const end of [r, w, otherR, otherW]) end.close();
  }
`);
});

test("a spin never runs while another wait is parked", async () => {
  const [r, w] = pipe({ nonBlocking: true });
  const [r2, w2] = pipe({ nonBlocking: true });
  try {
    const blocked = waitReady(r.fd, "read");
    const before = spinStats();
    await waitReady(w2.fd, "write");
    assert.equal(spinStats().spins, before.spins);
    writev(w, [new Uint8Array(1)]);
    await blocked;
  } finally {
    for (const end of [r, w, r2, w2]) end.close();
  }
});

/** close(2) on a bare number, as code outside pageio would (Deno's closeSync takes only its own descriptors). */
function closeRaw(fd: number): void {
  if (!isDeno) return closeSync(fd);
  const libc = Deno.dlopen("libc.so.6", { close: { parameters: ["i32"], result: "i32" } });
  try {
    assert.equal(libc.symbols.close(fd), 0);
  } finally {
    libc.close();
  }
}

/** Parks a wait on a pipe until disposed: no wait spins meanwhile, so every wait here parks and registers. */
function spinsOff(): { [Symbol.asyncDispose](): Promise<void> } {
  const [r, w] = pipe({ nonBlocking: true });
  const parked = waitReady(r.fd, "read");
  return {
    async [Symbol.asyncDispose]() {
      writev(w, [new Uint8Array(1)]);
      await parked;
      r.close();
      w.close();
    },
  };
}

/** A connected TCP pair through a fresh listener (pageio's sockets: tracked, edge-triggered waits). */
async function tcpPair(): Promise<[client: Socket, server: Socket, listener: Listener]> {
  const listener = listen({ hostname: "127.0.0.1", port: 0 });
  const client = connect(listener.addr);
  return [client, await listener.acceptAsync(), listener];
}

test("a socket registers once, edge-triggered: data that came after the failed read and before the wait ends it", async () => {
  const [client, server, listener] = await tcpPair();
  await using _ = spinsOff();
  try {
    const bytes = new Uint8Array(8);
    await waitReady(server.fd, "write"); // registers it (writable at once)
    assert.equal(server.read(bytes), null);
    // Arrives after the failed read and is reported before the wait (the doorbell runs within the timeout).
    client.write([new Uint8Array(1)]);
    // The poller's thread reports it in its own time (a loaded machine once took over 30 ms): poll for it.
    await until(() => ((edgeState(server.fd)?.ready ?? 0) & 1) !== 0);
    assert.equal(edgeState(server.fd)?.registered, true);
    assert.ok(edgeState(server.fd)!.ready & 1, "kept: readable, no wait took it yet");
    const parks = spinStats().parks;
    assert.equal(await settledWithin(waitReady(server.fd, "read"), 30_000), true, "ended by what was kept");
    assert.equal(spinStats().parks, parks, "without parking");
    assert.equal(edgeState(server.fd)!.ready & 1, 0, "taken by that wait");
    assert.equal(server.read(bytes), 1);
    // Arrives after the failed read, and the wait begins before it is reported: the delivery ends the wait.
    assert.equal(server.read(bytes), null);
    const waiting = waitReady(server.fd, "read");
    client.write([new Uint8Array(2)]);
    assert.equal(await settledWithin(waiting, 30_000), true);
    assert.equal(server.read(bytes), 2);
    // Nothing kept, nothing coming: the next wait parks until something comes.
    assert.equal(server.read(bytes), null);
    const parked = waitReady(server.fd, "read");
    assert.equal(await settledWithin(parked, 50), false, "nothing came: it waits");
    client.write([new Uint8Array(3)]);
    assert.equal(await settledWithin(parked, 30_000), true);
  } finally {
    client.close();
    server.close();
    listener.close();
  }
});

test("a closed socket's number reused by another: the new one registers anew and its waits end", async () => {
  const [client, server, listener] = await tcpPair();
  await using _ = spinsOff();
  const fd = server.fd;
  await waitReady(fd, "write"); // registered (and writable)
  assert.equal(edgeState(fd)?.registered, true);
  const pending = waitReady(fd, "read").catch((e) => code(e));
  await new Promise((resolve) => setTimeout(resolve, 10));
  server.close();
  assert.equal(await pending, "ERR_CLOSED", "a wait pending at close ends with a typed error");
  assert.equal(edgeState(fd), undefined, "forgotten with its close");
  client.close();
  // The lowest free number: the one just closed, now a connection that never spoke.
  const other = connect(listener.addr);
  const reused = await listener.acceptAsync();
  try {
    const same = reused.fd === fd || other.fd === fd;
    const socket = reused.fd === fd ? reused : other;
    const peer = socket === reused ? other : reused;
    assert.ok(same, `fd ${fd} was not reused (got ${reused.fd}, ${other.fd}): the check below proves nothing`);
    assert.equal(socket.read(new Uint8Array(4)), null);
    const waiting = waitReady(socket.fd, "read");
    assert.equal(await settledWithin(waiting, 50), false, "nothing kept from the closed socket ends it");
    peer.write([new Uint8Array(1)]);
    assert.equal(await settledWithin(waiting, 30_000), true);
    assert.equal(socket.read(new Uint8Array(4)), 1);
  } finally {
    other.close();
    reused.close();
    listener.close();
  }
});

test("a socket's descriptor closed behind pageio's back, its number reused: spurious wakes at most, none lost", async () => {
  const [client, server, listener] = await tcpPair();
  await using _ = spinsOff();
  // A copy adopted and registered, then closed by number elsewhere: epoll keeps the registration under the
  // number (the original still holds the file), so the old file's events may still come under it.
  const adopted = adoptSocket(server.fd);
  const fd = adopted.fd;
  await waitReady(fd, "write");
  closeRaw(fd);
  const [client2, server2] = [connect(listener.addr), await listener.acceptAsync()];
  try {
    const socket: Socket | undefined = [client2, server2].find((s) => s.fd === fd);
    assert.ok(socket, `fd ${fd} was not reused (got ${client2.fd}, ${server2.fd})`);
    const peer = socket === client2 ? server2 : client2;
    for (let round = 0; round < 20; round++) {
      client.write([new Uint8Array(1)]); // traffic on the old file, whose events may name this number
      const bytes = new Uint8Array(4);
      while (socket.read(bytes) !== null);
      const waiting: Promise<number> = socket.readAsync(bytes);
      peer.write([new Uint8Array([round])]);
      assert.equal(await waiting, 1);
      assert.equal(bytes[0], round);
    }
    assert.equal(waitingCount(), 1, "nothing left waiting but the wait that keeps spins off");
  } finally {
    for (const s of [client, server, client2, server2, listener]) s.close();
  }
});

test("a socket's number closed behind pageio's back and reused by a pipe: the pipe's wait ends when data comes", async () => {
  const [client, server, listener] = await tcpPair();
  await using _ = spinsOff(); // the wait parks: only the poller can end it
  const adopted = adoptSocket(server.fd);
  const fd = adopted.fd;
  await waitReady(fd, "write"); // registered, edge-triggered, for the socket's life
  closeRaw(fd);
  const [r, w] = pipe({ nonBlocking: true });
  try {
    assert.equal(r.fd, fd, `the pipe did not get fd ${fd}`);
    const bytes = new Uint8Array(4);
    const reading = readvAsync(r, [bytes]);
    await new Promise((resolve) => setTimeout(resolve, 50)); // parked by now
    writev(w, [new Uint8Array([42])]);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const hung = new Promise((resolve) => timer = setTimeout(() => resolve("hung"), 30_000));
    assert.equal(await Promise.race([reading, hung]), 1, "the pipe's wait never ended (it took the socket's path)");
    clearTimeout(timer);
    assert.equal(bytes[0], 42);
  } finally {
    for (const s of [r, w, client, server, listener]) s.close();
  }
});

test("a pipe's number closed behind pageio's back while a read waits on it, then reused: the new pipe's wait ends", async () => {
  await using _ = spinsOff(); // the waits park: only the poller can end them
  const [r, w] = pipe();
  const fd = r.fd;
  const stale = readvAsync(fd, [new Uint8Array(4)]).catch((e) => e);
  await new Promise((resolve) => setTimeout(resolve, 50)); // parked by now, its arm noted under the number
  closeRaw(fd); // epoll drops the arm with the file; the note of it stayed, so no new wait under it was armed
  const [r2, w2] = pipe();
  try {
    assert.equal(r2.fd, fd, `the new pipe did not get fd ${fd}`);
    assert.equal(code(await stale), "ERR_CLOSED"); // its file is gone: it must not take the new pipe's bytes
    const bytes = new Uint8Array(4);
    const reading = readvAsync(r2, [bytes]);
    await new Promise((resolve) => setTimeout(resolve, 50)); // parked
    writev(w2, [new Uint8Array([42])]);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const hung = new Promise((resolve) => timer = setTimeout(() => resolve("hung"), 30_000));
    assert.equal(await Promise.race([reading, hung]), 1, "the new pipe's wait never ended");
    clearTimeout(timer);
    assert.equal(bytes[0], 42);
  } finally {
    for (const f of [w, r2, w2]) f.close();
  }
});

test("waits met by what a socket kept still let a 10 ms timer fire", async () => {
  const [client, server, listener] = await tcpPair();
  try {
    const bytes = new Uint8Array(1);
    // Each round: data is there before the read, so every readAsync completes without parking.
    const ticks = await ticksWhile(3, async () => {
      client.write([bytes]);
      await server.readAsync(bytes);
      await waitReady(server.fd, "write");
    });
    assert.ok(ticks >= 3, `the 10 ms timer fired ${ticks} times in 30 s`);
  } finally {
    client.close();
    server.close();
    listener.close();
  }
});

test(
  "waits on a socket cost no epoll_ctl each: one registration for its life (strace)",
  { skip: !haveStrace && "strace is not installed" },
  () => {
    const log = join(tempDir(), "strace-edge.log");
    const run = runScript(
      `
    import { connect, listen } from "${root}mod.ts";
    const listener = listen({ hostname: "127.0.0.1", port: 0 });
    const client = connect(listener.addr);
    const server = await listener.acceptAsync();
    const bytes = new Uint8Array(64);
    const echo = (async () => {
      for (let i = 0; i < 200; i++) {
        const n = await server.readAsync(bytes);
        await server.writeAsync([bytes.subarray(0, n)]);
      }
    })();
    for (let i = 0; i < 200; i++) {
      await client.writeAsync([new Uint8Array(1)]);
      await client.readAsync(new Uint8Array(64));
    }
    await echo;
    console.log("done");
    `,
      { prefix: ["strace", "-f", "-qq", "-e", "trace=epoll_ctl", "-o", log], env: { PAGEIO_SPIN_US: "0" } },
    );
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout.trim(), "done");
    const calls = readFileSync(log, "utf8").split("\n").filter((line) => line.includes("epoll_ctl("));
    // The poller's registrations (the runtimes' own loops register other sets of bits).
    const ours = calls.filter((line) => line.includes("EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET"));
    assert.ok(ours.length >= 2 && ours.length <= 3, `one registration per socket:\n${ours.join("\n")}`);
    const armed = calls.filter((line) => line.includes("EPOLLONESHOT"));
    assert.equal(armed.length, 0, `400 waits, ${armed.length} oneshot arms:\n${armed.slice(0, 5).join("\n")}`);
  },
);

test("the last bytes and the peer's end in one report: the read takes the bytes, the next wait still ends", async () => {
  const [client, server, listener] = await tcpPair();
  await using _ = spinsOff();
  try {
    const bytes = new Uint8Array(64);
    const reading = client.readAsync(bytes); // parks: nothing has come yet
    await new Promise((resolve) => setTimeout(resolve, 10));
    server.cork = true; // the byte is held, and leaves with the FIN in one segment: one report for both
    server.write([new Uint8Array([7])]);
    server.shutdown("write");
    assert.equal(await reading, 1);
    // A short read: the next readAsync waits first; the hang-up, already reported, must end that wait.
    assert.equal(await settledWithin(client.readAsync(bytes), 30_000), true, "the end of stream was lost");
    assert.equal(await client.readAsync(bytes), 0);
    assert.ok(edgeState(client.fd)!.ready & 4, "the hang-up is kept for every later wait");
  } finally {
    client.close();
    server.close();
    listener.close();
  }
});

test("a peer that half-closed keeps a full socket's write waits parked until it reads (they ended at once: a writer spun a core)", async () => {
  const [client, server, listener] = await tcpPair();
  await using _ = spinsOff();
  try {
    const chunk = new Uint8Array(1 << 20);
    while (server.write([chunk]) > 0); // the kernel's buffers both ways are full: writable no more
    client.shutdown("write"); // half-close: the client sends nothing more, but may still read
    await waitReady(server.fd, "read"); // registers it; the FIN ends the read wait
    assert.ok(await until(() => ((edgeState(server.fd)?.ready ?? 0) & 4) !== 0), "the half-close is kept");
    const writable = waitReady(server.fd, "write");
    assert.equal(await settledWithin(writable, 50), false, "still full: the write wait parks");
    const bytes = new Uint8Array(1 << 20);
    while (client.read(bytes) !== null); // room again: the wait ends
    assert.equal(await settledWithin(writable, 30_000), true);
    assert.ok(server.write([chunk]) > 0);
    assert.ok(edgeState(server.fd)!.ready & 4, "still kept for reads");
    assert.equal(await settledWithin(waitReady(server.fd, "read"), 30_000), true, "a read wait still ends at once");
  } finally {
    client.close();
    server.close();
    listener.close();
  }
});

const childChecks = (completions: number) => `
import { pipe, readv, writev } from "${root}mod.ts";
import { reactorMode, waitingCount, waitReady, forget } from "${root}src/reactor.ts";
const [a, b] = pipe({ nonBlocking: true });
const [c, d] = pipe({ nonBlocking: true });
const one = new Uint8Array(1);
const other = new Uint8Array(1);
const N = ${completions};
// Ping-pong in one process: every round is two waits and two wake-ups.
const echo = (async () => {
  for (let i = 0; i < N; i++) {
    await waitReady(a.fd, "read");
    if (readv(a, [other]) !== 1) throw new Error("short read");
    writev(d, [other]);
  }
})();
for (let i = 0; i < N; i++) {
  one[0] = i & 0xff;
  writev(b, [one]);
  await waitReady(c.fd, "read");
  if (readv(c, [one]) !== 1 || one[0] !== (i & 0xff)) throw new Error("lost or wrong byte at " + i);
}
await echo;
// A wait that outlives its fd is rejected, not left hanging.
const late = waitReady(a.fd, "read").catch((e) => e.code);
forget(a.fd);
if (await late !== "ERR_CLOSED") throw new Error("forget did not reject");
if (waitingCount() !== 0) throw new Error("waiters left: " + waitingCount());
console.log(reactorMode(), "ok");
// Nothing waits now: the process must exit on its own (a ref'd callback or wait would hang it).
`;

for (const mode of ["doorbell", "call", "poll"]) {
  test(`PAGEIO_REACTOR=${mode}: completions in a child process, which then exits on its own`, () => {
    const run = runScript(childChecks(mode === "doorbell" ? 20_000 : mode === "call" ? 5000 : 1000), {
      env: { PAGEIO_REACTOR: mode },
    });
    assert.equal(run.signal, null, run.stderr);
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout.trim(), `${mode} ok`);
  });
}

test("the doorbell never rings while nothing waits, so exit never meets a ring in flight (Deno crashed)", () => {
  // A read whose wait ended (aborted) leaves its fd armed; data arriving then must be queued, not rung: on Deno a
  // ring blocks the poller's thread inside the isolate until JS runs it, and at exit it crashed the process.
  const run = runScript(
    `
    import { readvAsync, socketPair, writev } from "${root}mod.ts";
    import { ringCount, waitingCount } from "${root}src/reactor.ts";
    const [a, b] = socketPair();
    const controller = new AbortController();
    const pending = readvAsync(b, [new Uint8Array(8)], { signal: controller.signal }).catch((e) => e.code);
    await new Promise((resolve) => setTimeout(resolve, 20));
    controller.abort();
    const code = await pending;
    const before = ringCount();
    writev(a, [new Uint8Array([7])]);
    a.close();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const quiet = ringCount() - before;
    // A later wait on another fd takes what was queued without a ring, and ends.
    const [c, d] = socketPair();
    const later = readvAsync(c, [new Uint8Array(8)]);
    setTimeout(() => writev(d, [new Uint8Array([1, 2])]), 20);
    console.log(JSON.stringify({ code, quiet, later: await later, waiting: waitingCount() }));
    b.close(); c.close(); d.close();
  `,
    { env: { PAGEIO_REACTOR: "doorbell", PAGEIO_SPIN_US: "0" } },
  );
  assert.equal(run.signal, null, run.stderr);
  assert.equal(run.status, 0, run.stderr);
  assert.deepEqual(JSON.parse(run.stdout.trim()), { code: "ABORT_ERR", quiet: 0, later: 2, waiting: 0 });
});

test("a process whose peer hangs up as it exits ends cleanly, every time", () => {
  const script = `
    import { PageReader, socketPair } from "${root}mod.ts";
    const [a, b] = socketPair();
    const reader = new PageReader(b);
    const pending = reader.readAsync();
    reader.close();
    try { await pending; } catch (e) { if (e.code !== "ERR_CLOSED") throw e; }
    a.close();
  `;
  for (let i = 0; i < 8; i++) {
    const run = runScript(script);
    assert.equal(run.signal, null, `run ${i}: ${run.stderr}`);
    assert.equal(run.status, 0, `run ${i}: ${run.stderr}`);
  }
});

test("PAGEIO_SPIN_US=0: no wait spins, and every completion still arrives", () => {
  const run = runScript(
    childChecks(2000) + `
import { spinStats } from "${root}src/reactor.ts";
if (spinStats().spins !== 0) throw new Error("spun " + spinStats().spins);
`,
    { env: { PAGEIO_SPIN_US: "0" } },
  );
  assert.equal(run.signal, null, run.stderr);
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, / ok/);
});

const trickleScript = `
import { spawn } from "node:child_process";
import { PageReader, pipe } from "${root}mod.ts";
import { spinStats } from "${root}src/reactor.ts";
const [readEnd, writeEnd] = pipe({ size: 1 << 20 });
const child = spawn("head", ["-c", "33554432", "/dev/urandom"], { stdio: ["ignore", writeEnd.fd, "inherit"] });
writeEnd.close();
let total = 0;
for await (const head of new PageReader(readEnd)) { total += head.byteLength; head.release(); }
readEnd.close();
console.log(JSON.stringify({ total, pauses: spinStats().pauses }));
`;

test("a child's stdout read with pauses on and off (PAGEIO_SETTLE_US=0): every byte, no pause when off", () => {
  for (const env of [{}, { PAGEIO_SETTLE_US: "0" }, { PAGEIO_SETTLE_US: "100", PAGEIO_SPIN_US: "0" }]) {
    const run = runScript(trickleScript, { env: env as Record<string, string> });
    assert.equal(run.signal, null, run.stderr);
    assert.equal(run.status, 0, run.stderr);
    const { total, pauses } = JSON.parse(run.stdout.trim().split("\n").pop()!);
    assert.equal(total, 33554432);
    if ("PAGEIO_SETTLE_US" in env && env.PAGEIO_SETTLE_US === "0") assert.equal(pauses, 0);
  }
});

test("PAGEIO_SPIN_US and PAGEIO_SETTLE_US out of range or not plain digits are refused by name, at load", () => {
  // " " once meant 0 (spinning silently off), "0x10" 16 and "1e1" 10. A bad PAGEIO_SETTLE_US was once found only
  // by the first pause, part-way through a stream on one runtime and never on the other: now the import fails.
  for (const name of ["PAGEIO_SPIN_US", "PAGEIO_SETTLE_US"]) {
    for (const value of ["500", " ", "0x10", "1e1", "-0", "-1"]) {
      const run = runScript(`import { pipe } from "${root}mod.ts"; pipe(); console.log("loaded");`, {
        env: { [name]: value },
      });
      assert.notEqual(run.status, 0, `${name}="${value}" was taken`);
      assert.equal(run.stdout, "");
      assert.match(run.stderr, new RegExp(`${name} must be an integer from 0 to 100`));
    }
  }
});

test("PAGEIO_REACTOR with an unknown value is refused by name", () => {
  const run = runScript(`import { waitReady } from "${root}src/reactor.ts"; await waitReady(0, "read");`, {
    env: { PAGEIO_REACTOR: "sideways" },
  });
  assert.notEqual(run.status, 0);
  assert.match(run.stderr, /PAGEIO_REACTOR must be/);
});

test("10^6 completions without crash or leak (PAGEIO_REACTOR_LONG=1)", { skip: !longRun(), timeout: 600_000 }, () => {
  const run = runScript(
    childChecks(500_000) + `
const rss = (await import("node:process")).memoryUsage().rss;
if (rss > 400 * 1024 * 1024) throw new Error("rss " + rss);
`,
    { env: { PAGEIO_REACTOR: reactorMode() }, timeout: 590_000 },
  );
  assert.equal(run.signal, null, run.stderr);
  assert.equal(run.status, 0, run.stderr);
});

function longRun(): boolean {
  return (globalThis as unknown as { process?: { env: Record<string, string | undefined> } }).process?.env
    .PAGEIO_REACTOR_LONG === "1";
}

test("an uncaught exception or rejection while socket waits are pending ends the program with status 1, never a crash", () => {
  // Sends that fill the peer's window keep the poller's thread reporting while the program is torn down; a ring
  // into the isolate then was a SIGSEGV on Deno (one run in about seven).
  const source = `
    import { writeFileSync } from "node:fs";
    import { tmpdir } from "node:os";
    import { connect, listen, openFile } from "${root}mod.ts";
    const path = tmpdir() + "/pageio-uncaught-" + process.pid;
    writeFileSync(path, new Uint8Array(16 << 20));
    const listener = listen({ hostname: "127.0.0.1", port: 0 });
    const client = connect(listener.addr);
    const server = listener.accept();
    const file = openFile(path);
    client.readAsync(new Uint8Array(16)).catch(() => {});
    listener.acceptAsync().catch(() => {});
    server.sendFileAsync(file, 0, 16 << 20).catch(() => {});
    server.writeAsync([new Uint8Array(16 << 20)]).catch(() => {});
    const reader = (async () => { for (const bytes = new Uint8Array(65536); await client.readAsync(bytes) > 0;); })();
    setTimeout(() => {
      if (process.argv[2] === "throw") throw new Error("boom");
      Promise.reject(new Error("boom"));
    }, 1);
  `;
  for (let i = 0; i < 20; i++) {
    const how = i % 2 === 0 ? "throw" : "reject";
    const run = runScript(source, { args: [how] });
    assert.deepEqual({ status: run.status, signal: run.signal }, { status: 1, signal: null }, `${how}: ${run.stderr}`);
    assert.match(run.stderr, /boom/);
  }
});
