// examples/static-server.ts against clients nobody here wrote (curl, wrk) and hostile ones: bytes compared by
// sha256 and dd, keep-alive reuse, error statuses, deadlines, 1 000 dropped connections, graceful shutdown. The
// server must live, leak no descriptor, and keep its memory bounded.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { connectAsync, listen, type Listener, type Socket } from "../mod.ts";
import { haveStrace, isDeno, patternBytes, root, sha256, tempDir } from "./helpers.ts";

const have = (tool: string) => spawnSync(tool, ["--version"], { stdio: "ignore" }).status === 0;
const haveCurl = have("curl");
const haveWrk = spawnSync("wrk", ["-v"], { stdio: "ignore" }).error === undefined;
const havePrlimit = spawnSync("prlimit", ["--version"], { stdio: "ignore" }).status === 0;
// Short, for the slowloris test, yet well past how long a loaded machine may leave the server without a turn: the
// deadline also ends keep-alive connections between requests (curl's and wrk's).
const HEAD_TIMEOUT_MS = 1500;

interface Server {
  child: ChildProcess;
  port: number;
  url: string;
  exited: Promise<{ status: number | null; signal: string | null }>;
}

/** Starts the example on this runtime and resolves once it prints its address. */
async function startServer(dir: string, env: Record<string, string> = {}): Promise<Server> {
  const example = join(root, "examples", "static-server.ts");
  const args = isDeno ? ["run", "-A", example, dir, "0"] : [example, dir, "0"];
  const child = spawn(process.execPath, args, {
    stdio: ["ignore", "pipe", "inherit"],
    env: { ...process.env, STATIC_HEAD_TIMEOUT_MS: String(HEAD_TIMEOUT_MS), STATIC_SEND_TIMEOUT_MS: "3000", ...env },
  });
  const exited = new Promise<{ status: number | null; signal: string | null }>((resolve) =>
    // "close", not "exit": the pipe to the child is closed by then too (no descriptor closes after the test)
    child.on("close", (status, signal) => resolve({ status, signal }))
  );
  const port = await new Promise<number>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (d) => {
      out += d;
      const m = out.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
      if (m) resolve(Number(m[1]));
    });
    exited.then(({ status }) => reject(new Error(`server exited (${status}) before listening: ${out}`)));
  });
  return { child, port, url: `http://127.0.0.1:${port}`, exited };
}

function curl(...args: string[]) {
  const run = spawnSync("curl", ["-s", "--max-time", "20", ...args], { encoding: "buffer", maxBuffer: 1 << 28 });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr.toString() };
}

function serverFds(server: Server): number {
  return readdirSync(`/proc/${server.child.pid}/fd`).length;
}

/** Connections the server holds on `port` (its sockets in /proc/net/tcp but the listener's, TIME_WAIT aside). */
function connectionsOn(port: number): number {
  const local = `:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  return readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1).filter((line) => {
    const fields = line.trim().split(/\s+/);
    return fields.length > 9 && fields[1].endsWith(local) && fields[3] !== "0A" && fields[9] !== "0";
  }).length;
}

/** The status line and the fields of the first response in `answer`, and what follows its head. */
function response(answer: string): { status: string; head: string; rest: string } {
  const end = answer.indexOf("\r\n\r\n");
  return {
    status: answer.slice(0, answer.indexOf("\r\n")),
    head: answer.slice(0, end + 2),
    rest: answer.slice(end + 4),
  };
}

function serverRssKiB(server: Server): number {
  return Number(readFileSync(`/proc/${server.child.pid}/status`, "utf8").match(/VmRSS:\s+(\d+)/)![1]);
}

/** Polls until `check` holds (or gives up after `ms`); returns its last value. */
async function eventually<T>(ms: number, read: () => T, check: (value: T) => boolean): Promise<T> {
  const end = Date.now() + ms;
  let value = read();
  while (!check(value) && Date.now() < end) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    value = read();
  }
  return value;
}

/** Sends raw bytes and reads until the server closes (or `limit` bytes), as latin1: a character per byte. */
async function raw(server: Server, request: string | Uint8Array, limit = 1 << 20): Promise<string> {
  using socket = await connectAsync({ port: server.port });
  await socket.writeAsync([typeof request === "string" ? Buffer.from(request, "latin1") : request]);
  return (await readUntilEnd(socket, limit)).toString("latin1");
}

/** A file's bytes as `raw` reads them. */
const text = (name: string) => Buffer.from(files[name]).toString("latin1");

/**
 * The server stops accepting once it has run its SIGTERM handler, in its own time: polls until a connect is
 * refused. A connect that met the listener while it closed is reset (it was in the backlog): poll on.
 */
async function assertRefusesConnections(port: number): Promise<void> {
  let refused: unknown;
  for (const deadline = Date.now() + 30_000; refused === undefined && Date.now() < deadline;) {
    await connectAsync({ port }).then((early) => early.close(), (e) => {
      if (e.code !== "ECONNRESET") refused = e;
    });
    if (refused === undefined) await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.equal((refused as { code?: string })?.code, "ECONNREFUSED", String(refused));
}

async function readUntilEnd(socket: Socket, limit: number): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  let total = 0;
  while (total < limit) {
    const bytes = new Uint8Array(65536);
    const read = await socket.readAsync(bytes).catch(() => 0);
    if (read === 0) break;
    parts.push(bytes.subarray(0, read));
    total += read;
  }
  return Buffer.concat(parts);
}

const dir = tempDir();
const files: Record<string, Uint8Array> = {
  "empty.bin": new Uint8Array(0),
  "one.bin": patternBytes(1, 1),
  "small.txt": patternBytes(1024, 2),
  "big.bin": patternBytes(5 * 1024 * 1024 + 17, 3),
};
let server: Server;
let baselineFds = 0;
let socketFile: Listener | undefined; // a unix socket's file inside the root

before(async () => {
  if (!haveCurl) return;
  for (const [name, bytes] of Object.entries(files)) writeFileSync(join(dir, name), bytes);
  writeFileSync(join(dir, "huge.bin"), patternBytes(1, 4));
  spawnSync("truncate", ["-s", String(64 * 1024 * 1024), join(dir, "huge.bin")]);
  mkdirSync(join(dir, "sub"));
  writeFileSync(join(dir, "sub", "index.html"), "<p>index</p>");
  for (const name of ["x.constructor", "x.toString", "x.__proto__"]) writeFileSync(join(dir, name), name);
  symlinkSync("/etc/passwd", join(dir, "passwd"));
  spawnSync("mkfifo", [join(dir, "fifo")]);
  socketFile = listen({ path: join(dir, "socket") });
  server = await startServer(dir);
  curl(`${server.url}/small.txt`); // warm up: the runtime's lazily opened descriptors are open from here on
  baselineFds = serverFds(server);
});

after(async () => {
  socketFile?.close();
  if (!server) return;
  server.child.kill("SIGKILL");
  await server.exited;
});

test("curl downloads every file byte for byte (sha256), keep-alive reuses the connection", { skip: !haveCurl }, () => {
  for (const [name, bytes] of Object.entries(files)) {
    const got = curl("--fail", `${server.url}/${name}`);
    assert.equal(got.status, 0, `${name}: ${got.stderr}`);
    assert.equal(sha256(got.stdout), sha256(bytes), name);
  }
  const twice = curl("-v", "-o", "/dev/null", "-o", "/dev/null", `${server.url}/big.bin`, `${server.url}/small.txt`);
  assert.match(twice.stderr, /Re-using existing connection/);
  assert.equal(curl(`${server.url}/sub/`).stdout.toString(), "<p>index</p>");
});

test("single ranges match dd; unsatisfiable ones get 416, several get the whole file", { skip: !haveCurl }, () => {
  const path = join(dir, "big.bin");
  const size = files["big.bin"].length;
  const dd = (skip: number, count: number) =>
    spawnSync("dd", [`if=${path}`, "iflag=skip_bytes,count_bytes", `skip=${skip}`, `count=${count}`, "status=none"], {
      maxBuffer: 1 << 28,
    }).stdout;
  const cases: [string, number, number][] = [
    ["0-0", 0, 1],
    ["10-19", 10, 10],
    ["4000000-", 4_000_000, size - 4_000_000],
    ["-500", size - 500, 500],
    [`5-${size + 1000}`, 5, size - 5],
  ];
  for (const [spec, skip, count] of cases) {
    const got = curl("-D", "-", "-o", "/dev/null", "-r", spec, `${server.url}/big.bin`).stdout.toString();
    assert.match(got, /^HTTP\/1\.1 206 /, spec);
    assert.match(got, new RegExp(`Content-Range: bytes ${skip}-${skip + count - 1}/${size}`), spec);
    assert.equal(sha256(curl("-r", spec, `${server.url}/big.bin`).stdout), sha256(dd(skip, count)), spec);
  }
  const beyond = curl("-D", "-", "-r", `${size}-`, `${server.url}/big.bin`).stdout.toString();
  assert.match(beyond, /^HTTP\/1\.1 416 /);
  assert.match(beyond, new RegExp(`Content-Range: bytes \\*/${size}`));
  const several = curl("-D", "-", "-o", "/dev/null", "-r", "0-1,5-6", `${server.url}/big.bin`).stdout.toString();
  assert.match(several, /^HTTP\/1\.1 200 /);
  // Last position before the first: not a range at all (RFC 9110), so the whole file, never a negative length.
  const backwards = curl("-D", "-", "-o", "/dev/null", "-r", "5-2", `${server.url}/big.bin`).stdout.toString();
  assert.match(backwards, /^HTTP\/1\.1 200 /);
  assert.match(backwards, new RegExp(`Content-Length: ${size}\r`));
});

test("Content-Type follows the file served: / is index.html, a name like x.constructor is no type", {
  skip: !haveCurl,
}, () => {
  const type = (path: string) => curl("-D", "-", "-o", "/dev/null", `${server.url}${path}`).stdout.toString();
  assert.match(type("/sub/"), /\r\nContent-Type: text\/html; charset=utf-8\r\n/);
  assert.match(type("/sub/index.html"), /\r\nContent-Type: text\/html; charset=utf-8\r\n/);
  for (const name of ["x.constructor", "x.toString", "x.__proto__"]) {
    const head = type(`/${name}`);
    assert.match(head, /^HTTP\/1\.1 200 /, name);
    assert.match(head, /\r\nContent-Type: application\/octet-stream\r\n/, name);
  }
});

test("a suffix range of an empty file is 416, never a 206 with a negative last byte", { skip: !haveCurl }, () => {
  const got = curl("-D", "-", "-r", "-5", `${server.url}/empty.bin`).stdout.toString();
  assert.match(got, /^HTTP\/1\.1 416 /);
  assert.match(got, /Content-Range: bytes \*\/0\r/);
});

test("HEAD has the headers of GET and no body", { skip: !haveCurl }, async () => {
  const head = curl("-I", "-w", "%{size_download}", `${server.url}/big.bin`).stdout.toString();
  assert.match(head, /^HTTP\/1\.1 200 /);
  assert.match(head, new RegExp(`Content-Length: ${files["big.bin"].length}\r\n`));
  assert.ok(head.endsWith("\r\n\r\n0"), "no body bytes");
  // A HEAD then a GET on one connection: the GET's response starts right where the HEAD's headers end.
  const both = await raw(
    server,
    "HEAD /small.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /one.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
  );
  const [first, second] = both.split("\r\n\r\n");
  assert.match(first, /^HTTP\/1\.1 200 /);
  assert.match(second, /^HTTP\/1\.1 200 /);
  assert.match(second, /Content-Length: 1$/m);
});

test(
  "paths out of the root, missing files and bad requests get 404, 405, 400 and 431",
  { skip: !haveCurl },
  async () => {
    const status = (...args: string[]) => curl("-o", "/dev/null", "-w", "%{http_code}", ...args).stdout.toString();
    assert.equal(status(`${server.url}/missing`), "404");
    assert.equal(status("--path-as-is", `${server.url}/../../../../etc/passwd`), "404");
    assert.equal(status("--path-as-is", `${server.url}/%2e%2e/%2e%2e/%2e%2e/etc/passwd`), "404");
    assert.equal(status(`${server.url}/passwd`), "404"); // a symbolic link out of the root
    assert.equal(status(`${server.url}/sub`), "404"); // a directory is not a file
    assert.equal(status("-m", "10", `${server.url}/fifo`), "404"); // a FIFO: opened without waiting for a writer
    assert.equal(status(`${server.url}/socket`), "404"); // a unix socket's file (ENXIO): it got no answer at all
    assert.equal(status(`${server.url}/small.txt`), "200"); // and the server is still serving
    assert.equal(status("-X", "DELETE", `${server.url}/small.txt`), "405");
    assert.equal(status(`${server.url}/%ZZ`), "400");
    assert.match(await raw(server, "GARBAGE\r\n\r\n"), /^HTTP\/1\.1 400 /);
    assert.match(await raw(server, "GET / HTTP/1.1\r\n\r\n"), /^HTTP\/1\.1 400 /); // HTTP/1.1 without Host
    assert.match(
      await raw(server, Buffer.concat([patternBytes(3000, 5), Buffer.from("\r\n\r\n")])),
      /^HTTP\/1\.1 400 /,
    );
    const huge = `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`;
    assert.match(await raw(server, huge), /^HTTP\/1\.1 431 /);
  },
);

test("a request head that never ends is cut off (slowloris); a half-closed client still gets its answer", {
  skip: !haveCurl,
}, async () => {
  using slow = await connectAsync({ port: server.port });
  await slow.writeAsync([new TextEncoder().encode("GET /small.txt HTTP/1.1\r\nHost: x\r\n")]);
  const started = Date.now();
  assert.equal((await readUntilEnd(slow, 1 << 20)).length, 0); // closed without an answer
  const waited = Date.now() - started;
  assert.ok(waited >= HEAD_TIMEOUT_MS / 2 && waited < 10 * HEAD_TIMEOUT_MS + 2000, `closed after ${waited} ms`);

  using half = await connectAsync({ port: server.port });
  await half.writeAsync([new TextEncoder().encode("GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")]);
  half.shutdown("write");
  const answer = await readUntilEnd(half, 64 << 20);
  const body = answer.subarray(Buffer.from(answer).indexOf("\r\n\r\n") + 4);
  assert.equal(sha256(body), sha256(files["big.bin"]));
});

test("a slow reader that keeps reading gets every byte; one that stops reading is let go at the send deadline", {
  skip: !haveCurl,
}, async () => {
  const request = (range: string) =>
    new TextEncoder().encode(`GET /huge.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=${range}\r\nConnection: close\r\n\r\n`);
  const length = 8 << 20;
  const expected = new Uint8Array(length);
  expected.set(patternBytes(1, 4)); // huge.bin: one byte, then zeros
  // About 1 MiB/s, steadily: the server's send deadline (3 s here) once moved only every 4 MiB sent, so it cut this
  // reader off part-way, its download short of its Content-Length.
  const slow = await connectAsync({ port: server.port });
  try {
    await slow.writeAsync([request(`0-${length - 1}`)]);
    const parts: Uint8Array[] = [];
    let total = 0;
    for (const began = Date.now();;) {
      const bytes = new Uint8Array(16384);
      const read = await slow.readAsync(bytes).catch(() => 0);
      if (read === 0) break;
      parts.push(bytes.subarray(0, read));
      total += read;
      const ahead = total / 1048.576 - (Date.now() - began); // ms ahead of 1 MiB/s
      if (ahead > 0) await new Promise((resolve) => setTimeout(resolve, ahead));
    }
    const answer = Buffer.concat(parts);
    const body = answer.subarray(answer.indexOf("\r\n\r\n") + 4);
    assert.equal(response(answer.toString("latin1")).status, "HTTP/1.1 206 Partial Content");
    assert.equal(body.length, length);
    assert.equal(sha256(body), sha256(expected));
  } finally {
    slow.close();
  }
  // One that takes a little, then nothing: the server ends it once the deadline is past, and the read sees that.
  const stalled = await connectAsync({ port: server.port });
  try {
    await stalled.writeAsync([request("0-")]);
    await stalled.readAsync(new Uint8Array(65536));
    const held = await eventually(30_000, () => connectionsOn(server.port), (n) => n === 0);
    assert.equal(held, 0, "the server let its end go");
  } finally {
    stalled.close();
  }
});

test(
  "a reader that stops mid-file does not stop the server, and its connection is let go",
  { skip: !haveCurl },
  async () => {
    const stalled = await connectAsync({ port: server.port });
    await stalled.writeAsync([new TextEncoder().encode("GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")]);
    const some = new Uint8Array(1 << 20);
    await stalled.readAsync(some); // take a little, then stop reading
    const meanwhile = curl("--fail", `${server.url}/big.bin`);
    assert.equal(sha256(meanwhile.stdout), sha256(files["big.bin"]));
    stalled.close();
    const fds = await eventually(30_000, () => serverFds(server), (n) => n <= baselineFds);
    assert.ok(fds <= baselineFds, `server holds ${fds} descriptors, ${baselineFds} at the start`);
  },
);

test("1 000 connections opened and dropped: the server lives, leaks no descriptor, memory stays bounded", {
  skip: !haveCurl,
}, async () => {
  const rssBefore = serverRssKiB(server);
  for (let round = 0; round < 4; round++) {
    const sockets = await Promise.all(Array.from({ length: 250 }, () => connectAsync({ port: server.port })));
    sockets.forEach((socket, i) => {
      if (i % 3 === 1) socket.write([new TextEncoder().encode("GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")]);
      if (i % 3 === 2) socket.write([new TextEncoder().encode("GET /sm")]);
    });
    await new Promise((resolve) => setTimeout(resolve, 20));
    sockets.forEach((socket) => socket.close());
  }
  assert.equal(sha256(curl("--fail", `${server.url}/small.txt`).stdout), sha256(files["small.txt"]));
  const fds = await eventually(30_000, () => serverFds(server), (n) => n <= baselineFds);
  assert.ok(fds <= baselineFds, `server holds ${fds} descriptors, ${baselineFds} at the start`);
  const grownMiB = (serverRssKiB(server) - rssBefore) / 1024;
  assert.ok(grownMiB < 48, `server RSS grew by ${grownMiB.toFixed(1)} MiB`);
});

test(
  "a head with a body after it leaves with MSG_MORE, then the body by sendfile; a HEAD answer at once (strace)",
  { skip: (!haveCurl || !haveStrace) && "needs curl and strace" },
  async () => {
    const log = join(tempDir(), "strace-send.log");
    const strace = spawn("strace", [
      "-f",
      "-qq",
      "-e",
      "trace=sendto,sendfile",
      "-o",
      log,
      "-p",
      String(server.child.pid),
    ], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    const closed = new Promise((resolve) => strace.on("close", resolve));
    // strace attaches within moments; a request that comes first is simply not in the log, so wait for it.
    await eventually(30_000, () => {
      curl("-o", "/dev/null", `${server.url}/one.bin`);
      try {
        return readFileSync(log, "utf8");
      } catch {
        return "";
      }
    }, (text) => text.includes("sendfile("));
    assert.equal(curl("--fail", `${server.url}/small.txt`).stdout.length, 1024);
    assert.equal(curl("--fail", "-I", `${server.url}/small.txt`).status, 0);
    strace.kill("SIGINT"); // detaches; the server runs on
    await closed;
    const calls = readFileSync(log, "utf8").split("\n").map((line) => line.replace(/^\d+\s+/, ""));
    const at = calls.findLastIndex((line) => /^sendto\(.*HTTP\/1\.1 200.*, 1\d\d, .*MSG_MORE/.test(line));
    assert.ok(at >= 0, `a GET's head goes with MSG_MORE:\n${calls.join("\n")}`);
    assert.match(calls[at + 1], /^sendfile\(.*= 1024$/, "and its body follows by sendfile");
    assert.ok(
      calls.slice(at + 1).some((line) => line.startsWith("sendto(") && !line.includes("MSG_MORE")),
      `the HEAD answer, with nothing after it, is not held back:\n${calls.join("\n")}`,
    );
    assert.equal(curl("--fail", `${server.url}/small.txt`).stdout.length, 1024, "the server lives on");
  },
);

test("wrk's load is served without errors", { skip: !haveCurl || !haveWrk }, () => {
  // wrk counts a response slower than its timeout (2 s by default) as an error: a loaded machine is no error.
  const run = spawnSync("wrk", ["-t2", "-c32", "-d2s", "--timeout", "20s", `${server.url}/small.txt`], {
    encoding: "utf8",
  });
  assert.equal(run.status, 0, run.stderr);
  const requests = Number(run.stdout.match(/(\d+) requests in/)![1]);
  assert.ok(requests > 100, run.stdout);
  assert.doesNotMatch(run.stdout, /Non-2xx/);
  const errors = run.stdout.match(/Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/);
  assert.ok(errors === null || errors.slice(1).every((n) => n === "0"), run.stdout);
});

test(
  "SIGTERM: the server stops accepting, finishes the response in flight, and exits 0",
  { skip: !haveCurl },
  async () => {
    const own = await startServer(dir);
    using socket = await connectAsync({ port: own.port });
    await socket.writeAsync([new TextEncoder().encode("GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")]);
    const first = new Uint8Array(65536);
    const firstRead = await socket.readAsync(first);
    process.kill(own.child.pid!, "SIGTERM"); // not child.kill(): Deno's ChildProcess then reports its own signal
    await assertRefusesConnections(own.port);
    const rest = await readUntilEnd(socket, 128 << 20);
    const answer = Buffer.concat([first.subarray(0, firstRead), rest]);
    const body = answer.subarray(answer.indexOf("\r\n\r\n") + 4);
    assert.equal(body.length, 64 * 1024 * 1024);
    assert.match(answer.subarray(0, 300).toString(), /Connection: keep-alive/); // it was promised before the signal
    socket.close(); // the server, having sent its FIN, waits for this end's (or its send deadline)
    assert.deepEqual(await own.exited, { status: 0, signal: null });
  },
);

test(
  "SIGTERM with a pipelined request waiting: the response in flight still arrives whole (FIN, not a reset)",
  { skip: !haveCurl },
  async () => {
    const own = await startServer(dir);
    const socket = await connectAsync({ port: own.port });
    await socket.writeAsync([new TextEncoder().encode("GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")]);
    const first = new Uint8Array(65536);
    const firstRead = await socket.readAsync(first);
    // A second request the server has not read when it ends the connection: closing over unread bytes would
    // reset it, and a reset discards the end of the response still queued in the kernel.
    await socket.writeAsync([new TextEncoder().encode("GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n")]);
    process.kill(own.child.pid!, "SIGTERM");
    await assertRefusesConnections(own.port);
    const parts: Uint8Array[] = [first.subarray(0, firstRead)];
    let failure: unknown;
    for (;;) {
      const bytes = new Uint8Array(1 << 16);
      const read = await socket.readAsync(bytes).catch((error) => (failure = error, 0));
      if (read === 0) break;
      parts.push(bytes.subarray(0, read));
    }
    socket.close();
    const answer = Buffer.concat(parts);
    assert.equal(failure, undefined);
    assert.equal(answer.length - (answer.indexOf("\r\n\r\n") + 4), 64 * 1024 * 1024);
    assert.deepEqual(await own.exited, { status: 0, signal: null });
  },
);

test("contradictory copies of Content-Length, Host or Range, or a length that is no number, are 400", {
  skip: !haveCurl,
}, async () => {
  const get = "GET /one.bin HTTP/1.1\r\nHost: x\r\n";
  const next = "GET /small.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  for (
    const [fields, body] of [
      ["Content-Length: 5\r\nContent-Length: 0\r\n", "hello"], // a proxy reading the first sees "hello", then GET
      ["Content-Length: 0\r\nContent-Length: 5\r\n", "hello"],
      ["Content-Length: -5\r\n", ""],
      ["Content-Length: 1e1\r\n", "helloworld"],
      ["Content-Length: \r\n", "hello"], // no digits: was no body, and "hello" began the next request
      ["Host: y\r\n", ""],
      ["Range: bytes=0-0\r\nRange: bytes=5-9\r\n", ""],
    ]
  ) {
    const answer = await raw(server, `${get}${fields}\r\n${body}${next}`);
    assert.match(answer, /^HTTP\/1\.1 400 /, fields);
    assert.equal(answer.split("HTTP/1.1 ").length - 1, 1, `one answer, then the connection closes: ${fields}`);
  }
  // The same value twice is one value.
  const same = await raw(server, `${get}Content-Length: 0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
  assert.match(same, /^HTTP\/1\.1 200 /);
});

test(
  "out of descriptors: a request is 503 with Retry-After and its connection closed; accept waits; then all is served",
  {
    skip: (!haveCurl || !havePrlimit) && "needs curl and prlimit",
  },
  async () => {
    // Its own server, as the limit stays; idle connections must not be ended by the head deadline meanwhile.
    const own = await startServer(dir, { STATIC_HEAD_TIMEOUT_MS: "120000" });
    const idle: Socket[] = [];
    try {
      // Every descriptor the runtime opens lazily is open after these, so what is counted next stays.
      for (const path of ["/small.txt", "/missing", "/sub/"]) curl(`${own.url}${path}`);
      // and curl's connections are closed on the server's side too (it closes each once curl's FIN has come)
      assert.equal(await eventually(30_000, () => connectionsOn(own.port), (n) => n === 0), 0);
      const open = readdirSync(`/proc/${own.child.pid}/fd`).map(Number);
      const free = 4;
      // RLIMIT_NOFILE bounds descriptor numbers: the lowest limit with `free` numbers unused below it.
      let limit = 0;
      while (limit - open.filter((fd) => fd < limit).length < free) limit++;
      const set = spawnSync("prlimit", [`--pid=${own.child.pid}`, `--nofile=${limit}:${limit}`], { encoding: "utf8" });
      assert.equal(set.status, 0, set.stderr);
      const base = serverFds(own);
      const idleUntil = async (count: number) => {
        while (idle.length < count) idle.push(await connectAsync({ port: own.port }));
        const fds = await eventually(30_000, () => serverFds(own), (n) => n === base + count);
        assert.equal(fds, base + count, "the server accepted the idle connections");
      };
      await idleUntil(free - 1); // the last descriptor is the next connection's: then the file cannot be opened
      const refused = response(await raw(own, "GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n")); // read to its end
      assert.equal(refused.status, "HTTP/1.1 503 Service Unavailable");
      assert.match(refused.head, /\r\nRetry-After: 1\r\n/);
      assert.match(refused.head, /\r\nConnection: close\r\n/);
      // At the limit: accept fails (EMFILE), and the connection waits in the backlog while the server tries again.
      await eventually(30_000, () => serverFds(own), (n) => n === base + free - 1);
      await idleUntil(free);
      using waiting = await connectAsync({ port: own.port });
      for (const socket of idle.splice(0)) socket.close();
      // Taken once a descriptor is free; asked only when all are, or its file could be opened while the first is.
      assert.equal(await eventually(30_000, () => serverFds(own), (n) => n === base + 1), base + 1);
      await waiting.writeAsync([
        new TextEncoder().encode("GET /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
      ]);
      const answer = await readUntilEnd(waiting, 64 << 20);
      assert.match(answer.subarray(0, 20).toString(), /^HTTP\/1\.1 200 /);
      assert.equal(sha256(answer.subarray(answer.indexOf("\r\n\r\n") + 4)), sha256(files["big.bin"]));
      assert.equal(sha256(curl("--fail", `${own.url}/small.txt`).stdout), sha256(files["small.txt"]));
      const fds = await eventually(30_000, () => serverFds(own), (n) => n <= base);
      assert.ok(fds <= base, `server holds ${fds} descriptors, ${base} before`);
      assert.equal(own.child.exitCode, null, "the server lives");
    } finally {
      for (const socket of idle) socket.close();
      own.child.kill("SIGKILL");
      await own.exited;
    }
  },
);

test("pipelined requests in one packet, one sent byte by byte, an empty line before one; HEAD answers have no body", {
  skip: !haveCurl,
}, async () => {
  const get = (path: string, close = false) =>
    `GET ${path} HTTP/1.1\r\nHost: x\r\n${close ? "Connection: close\r\n" : ""}\r\n`;
  const head = (path: string) => `HEAD ${path} HTTP/1.1\r\nHost: x\r\n\r\n`;
  // A HEAD of a missing file once had the 404's text after its head, which the client read as the next response.
  const many = await raw(
    server,
    head("/missing") + head("/one.bin") + get("/small.txt") + "\r\n" + get("/one.bin", true),
  );
  // Read as a client does: a head, then as many bytes as its Content-Length says (none after a HEAD's head).
  const got: string[] = [];
  for (let at = 0, i = 0; at < many.length; i++) {
    const end = many.indexOf("\r\n\r\n", at) + 4;
    const head = many.slice(at, end);
    const length = i < 2 ? 0 : Number(head.match(/\r\nContent-Length: (\d+)\r\n/)![1]);
    got.push(`${head.slice(0, head.indexOf("\r\n"))} ${many.slice(end, end + length).length}`);
    if (i >= 2) assert.equal(many.slice(end, end + length), text(i === 2 ? "small.txt" : "one.bin"));
    at = end + length;
  }
  assert.deepEqual(got, ["HTTP/1.1 404 Not Found 0", "HTTP/1.1 200 OK 0", "HTTP/1.1 200 OK 1024", "HTTP/1.1 200 OK 1"]);

  using slow = await connectAsync({ port: server.port });
  slow.noDelay = true;
  for (const byte of new TextEncoder().encode(get("/small.txt", true))) {
    await slow.writeAsync([new Uint8Array([byte])]);
    await new Promise((resolve) => setTimeout(resolve, 1)); // a packet each
  }
  const answer = (await readUntilEnd(slow, 1 << 20)).toString("latin1");
  assert.equal(response(answer).status, "HTTP/1.1 200 OK");
  assert.equal(response(answer).rest, text("small.txt"));
});

test("request targets: absolute-form is served, raw UTF-8 is its bytes; dot-dot, NUL, controls, overlong are not", {
  skip: !haveCurl,
}, async () => {
  const status = async (target: string, fields = "") =>
    response(await raw(server, `GET ${target} HTTP/1.1\r\nHost: x\r\n${fields}Connection: close\r\n\r\n`)).status;
  assert.equal(await status("http://x/small.txt"), "HTTP/1.1 200 OK"); // RFC 9112 3.2.2: a server must take it
  assert.equal(await status("HTTP://x:80/sub/?q=1"), "HTTP/1.1 200 OK");
  // An empty path is "/" (this root has no index.html): it was 400, for a target a proxy may well send.
  for (const target of ["http://x", "http://x?q=1", "HTTPS://x:443"]) {
    assert.equal(await status(target), "HTTP/1.1 404 Not Found", target);
  }
  assert.equal(await status("ftp://x/small.txt"), "HTTP/1.1 400 Bad Request");
  assert.equal(await status("*"), "HTTP/1.1 400 Bad Request");
  for (
    const target of ["/%2e%2e/%2e%2e/etc/passwd", "/sub%2f..%2f..%2f..%2fetc%2fpasswd", "/%2e%2e%2fx", "//etc/passwd"]
  ) {
    assert.equal(await status(target), "HTTP/1.1 404 Not Found", target);
  }
  assert.equal(await status("/sub%2Findex.html"), "HTTP/1.1 200 OK"); // a slash is a slash, inside the root
  assert.equal(await status("/small.txt%00.html"), "HTTP/1.1 400 Bad Request");
  assert.equal(await status("/small\0.txt"), "HTTP/1.1 400 Bad Request");
  assert.equal(await status("/%ff"), "HTTP/1.1 400 Bad Request"); // no UTF-8
  // Raw bytes past 0x7F are the name's own bytes, as percent-encoded ones are: raw UTF-8 (curl sends it so) was read
  // as Latin-1 characters and found nothing, and a raw 0xE9 (Latin-1 for the same letter) served the file
  writeFileSync(join(dir, "\u00e9.txt"), "e-acute");
  const get = async (target: string) =>
    response(await raw(server, `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`));
  assert.deepEqual([(await get("/%C3%A9.txt")).status, (await get("/%C3%A9.txt")).rest], [
    "HTTP/1.1 200 OK",
    "e-acute",
  ]);
  assert.deepEqual([(await get("/\u00c3\u00a9.txt")).status, (await get("/\u00c3\u00a9.txt")).rest], [
    "HTTP/1.1 200 OK",
    "e-acute",
  ]);
  assert.equal(await status("/\u00e9.txt"), "HTTP/1.1 400 Bad Request"); // a lone 0xE9: no UTF-8, as %E9 is
  // a tab or other control is no part of a target (RFC 3986)
  for (const target of ["/small.txt\t", "/small.txt\x7f", "/\x01small.txt"]) {
    assert.equal(await status(target), "HTTP/1.1 400 Bad Request", JSON.stringify(target));
  }
  assert.equal(await status(`/${"a".repeat(300)}`), "HTTP/1.1 404 Not Found"); // a name past NAME_MAX
  assert.equal(await status(`/${"a/".repeat(7000)}`), "HTTP/1.1 404 Not Found");
  assert.equal(await status(`/${"a".repeat(20_000)}`), "HTTP/1.1 431 Request Header Fields Too Large");
  assert.equal(await status("/small.txt", "Host: x\r\n"), "HTTP/1.1 400 Bad Request"); // two Host lines (RFC 9112 3.2)
  // NUL or a bare CR inside a field are refused (RFC 9110 5.5), not passed on
  assert.equal(await status("/small.txt", "X-A: a\0b\r\n"), "HTTP/1.1 400 Bad Request");
  assert.equal(await status("/small.txt", "X-A: a\rb\r\n"), "HTTP/1.1 400 Bad Request");
  assert.equal(sha256(curl("--fail", `${server.url}/small.txt`).stdout), sha256(files["small.txt"]));
});

test("Range edge cases and the If- fields, where no validator is ever sent", { skip: !haveCurl }, async () => {
  const size = files["small.txt"].length;
  const ask = async (fields: string) =>
    response(await raw(server, `GET /small.txt HTTP/1.1\r\nHost: x\r\n${fields}Connection: close\r\n\r\n`));
  const cases: [string, string, string?][] = [
    ["Range: bytes=-0\r\n", "416", `bytes */${size}`], // no last byte is a range of none
    ["Range: bytes=0-\r\n", "206", `bytes 0-${size - 1}/${size}`],
    ["Range: bytes=5-3\r\n", "200"],
    ["Range: bytes=0-1,3-4\r\n", "200"],
    ["Range: bytes=99999999999999999999-\r\n", "416", `bytes */${size}`],
    ["Range: bytes=0-99999999999999999999\r\n", "206", `bytes 0-${size - 1}/${size}`],
    ["Range: bytes=-99999999999999999999\r\n", "206", `bytes 0-${size - 1}/${size}`],
    ["Range:   bytes=2-3  \r\n", "206", `bytes 2-3/${size}`], // whitespace around the value is no part of it
    ["Range: bytes = 2-3\r\n", "200"],
    ["Range: bytes=2 -3\r\n", "200"],
    ["Range: Bytes=2-3\r\n", "206", `bytes 2-3/${size}`], // the unit is case-insensitive
    ["Range: bytes=0x1-2\r\n", "200"],
    ['Range: bytes=2-3\r\nIf-Range: "v1"\r\n', "200"], // a validator that cannot match: the whole file
    ['If-Match: "v1"\r\n', "412"],
    ["If-Match: *\r\n", "200"],
    ['If-None-Match: "v1"\r\n', "200"],
    ["If-None-Match: *\r\n", "304"],
    ["If-Modified-Since: Thu, 01 Jan 2099 00:00:00 GMT\r\n", "200"],
  ];
  for (const [fields, status, contentRange] of cases) {
    const got = await ask(fields);
    assert.equal(got.status.split(" ")[1], status, fields);
    if (contentRange) {
      assert.match(got.head, new RegExp(`\r\nContent-Range: ${contentRange.replace("*", "\\*")}\r\n`), fields);
    }
    if (status === "200") assert.equal(got.rest, text("small.txt"), fields);
    if (status === "304") assert.equal(got.rest, "", "a 304 has no body");
  }
});

test("Expect: 100-continue with a body this server does not read: answered at once, then closed", {
  skip: !haveCurl,
}, () => {
  const body = join(tempDir(), "body");
  writeFileSync(body, patternBytes(2 << 20, 9));
  const run = curl(
    "-v",
    "-X",
    "GET",
    "-H",
    "Expect: 100-continue",
    "--data-binary",
    `@${body}`,
    `${server.url}/small.txt`,
  );
  assert.equal(run.status, 0, run.stderr);
  assert.equal(sha256(run.stdout), sha256(files["small.txt"]));
  assert.match(run.stderr, /< Connection: close/);
  assert.equal(sha256(curl("--fail", `${server.url}/small.txt`).stdout), sha256(files["small.txt"]));
});

test(
  "a file cut short while it is sent ends the connection short of its Content-Length; one replaced is sent as it was opened",
  {
    skip: !haveCurl,
  },
  async () => {
    const path = join(dir, "changing.bin");
    const original = patternBytes(32 << 20, 13);
    /** Asks for the file, takes its first bytes, changes it, then reads to the end: the declared and the body. */
    const sendWhile = async (change: () => void) => {
      writeFileSync(path, original);
      using socket = await connectAsync({ port: server.port });
      await socket.writeAsync([new TextEncoder().encode("GET /changing.bin HTTP/1.1\r\nHost: x\r\n\r\n")]);
      const first = new Uint8Array(65536);
      const got = await socket.readAsync(first);
      change();
      const answer = Buffer.concat([first.subarray(0, got), await readUntilEnd(socket, 64 << 20)]);
      const end = answer.indexOf("\r\n\r\n") + 4;
      return {
        length: Number(answer.subarray(0, end).toString().match(/Content-Length: (\d+)/)![1]),
        body: answer.subarray(end),
      };
    };
    // sendfile reads no mapping, so nothing can raise SIGBUS; the kernel reports the end (ENODATA) and the server
    // closes: the client sees fewer bytes than promised, never a response that looks whole.
    const cut = await sendWhile(() => spawnSync("truncate", ["-s", String(1 << 20), path]));
    assert.equal(cut.length, 32 << 20);
    assert.ok(cut.body.length < 32 << 20, `${cut.body.length} bytes of ${cut.length}`);
    assert.equal(sha256(cut.body.subarray(0, 1 << 20)), sha256(original.subarray(0, 1 << 20)));
    const replaced = await sendWhile(() => {
      writeFileSync(`${path}.new`, "new");
      spawnSync("mv", [`${path}.new`, path]);
    });
    assert.equal(sha256(replaced.body), sha256(original)); // the open descriptor keeps the file it named
    assert.equal(server.child.exitCode, null, "the server lives");
    assert.equal(sha256(curl("--fail", `${server.url}/small.txt`).stdout), sha256(files["small.txt"]));
    const fds = await eventually(30_000, () => serverFds(server), (n) => n <= baselineFds);
    assert.ok(fds <= baselineFds, `server holds ${fds} descriptors, ${baselineFds} at the start`);
  },
);
