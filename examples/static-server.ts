// A static HTTP/1.1 file server on pageio's sockets, for Deno and Bun:
//   deno run -A examples/static-server.ts <root> [port]      bun examples/static-server.ts <root> [port]
// GET and HEAD, single byte ranges, keep-alive, paths confined to <root> (openat2 RESOLVE_BENEATH), a deadline
// for request heads (slowloris) and for stalled readers, graceful shutdown on SIGINT/SIGTERM. Headers go out in
// one send, bodies by sendfile straight from the page cache. Port 0 or none: any free port.
import process from "node:process";
import { type FileHandle, listen, openBeneath, openFile, type PageIoError, PagePool, type Socket } from "../mod.ts";

const [rootArg, portArg = "0"] = process.argv.slice(2);
if (!rootArg) {
  console.error("usage: static-server.ts <root> [port]");
  process.exit(2);
}
const HEAD_BYTES_MAX = 16 * 1024; // a request head larger than this gets 431
const HEAD_TIMEOUT_MS = Number(process.env.STATIC_HEAD_TIMEOUT_MS ?? 10_000); // whole head, and keep-alive idle
const SEND_TIMEOUT_MS = Number(process.env.STATIC_SEND_TIMEOUT_MS ?? 30_000); // a reader that stops taking bytes
if (!(HEAD_TIMEOUT_MS > 0 && SEND_TIMEOUT_MS > 0)) throw new RangeError("STATIC_*_TIMEOUT_MS: milliseconds, > 0");
// A full socket is waited on until it has taken this much more: progress is noted (and the send deadline moved) this
// often, so a slow reader that keeps reading is never cut (at 4 MiB, one under 140 KB/s was, part-way).
const SEND_STEP_BYTES = 64 * 1024;
// A head leaves in one packet with the start of a body up to this size; above it alone, as the client takes its RTT
// from that first segment (which carries the time the request waited here): with it in, its window grew to megabytes
// and a 1 MiB response cost this server 30% more CPU (loopback delivery done in its sendfile) for no more throughput.
const HEAD_WITH_BODY_MAX = 256 * 1024;
const CONNECTIONS_MAX = 4096;

const root = openFile(rootArg);
if (root.kind() !== "directory") throw new Error(`${rootArg} is not a directory`);
const pool = new PagePool({ pageSize: HEAD_BYTES_MAX, maxPages: CONNECTIONS_MAX });
const listener = listen({ hostname: "127.0.0.1", port: Number(portArg) });
const latin1 = new TextDecoder("latin1");
const encoder = new TextEncoder();
// deno-fmt-ignore
const types: Record<string, string> = { html: "text/html; charset=utf-8", txt: "text/plain; charset=utf-8",
  css: "text/css", js: "text/javascript", json: "application/json", png: "image/png", jpg: "image/jpeg",
  svg: "image/svg+xml", wasm: "application/wasm" };
// deno-fmt-ignore
const reasons: Record<number, string> = { 200: "OK", 206: "Partial Content", 400: "Bad Request", 403: "Forbidden",
  304: "Not Modified", 404: "Not Found", 405: "Method Not Allowed", 412: "Precondition Failed",
  416: "Range Not Satisfiable", 431: "Request Header Fields Too Large", 503: "Service Unavailable" };

/** A connection and what it is doing, for the sweep that enforces deadlines and for shutdown. `cut`: closed by the
 * sweep or shutdown, so its pending wait ends with ERR_CLOSED (no abort signal per wait). */
type Conn = { socket: Socket; cut: boolean; phase: "head" | "send"; since: number };
const conns = new Set<Conn>();
let stopping = false;
let date = new Date().toUTCString();

const sweep = setInterval(() => {
  const now = Date.now();
  date = new Date(now).toUTCString();
  for (const conn of conns) {
    const limit = conn.phase === "head" ? HEAD_TIMEOUT_MS : SEND_TIMEOUT_MS;
    if (now - conn.since > limit) cut(conn);
  }
}, Math.max(10, Math.min(1000, HEAD_TIMEOUT_MS / 4)));

function cut(conn: Conn): void {
  conn.cut = true;
  conn.socket.close();
}
function shutdown(): void {
  if (stopping) return;
  stopping = true;
  listener.close(); // no new connections; idle ones end now, responses in flight finish
  for (const conn of conns) if (conn.phase === "head") cut(conn);
  setTimeout(() => process.exit(0), 10_000).unref?.(); // a reader that never drains cannot hold us forever
  finish();
}
function finish(): void {
  if (stopping && conns.size === 0) {
    clearInterval(sweep);
    root.close();
    pool.close();
    process.exit(0);
  }
}
process.on("SIGINT", shutdown);
process.on("SIGTERM", shutdown);

/** Index just past the blank line that ends a head (CRLF CRLF, or bare LFs), or -1. */
function headEnd(bytes: Uint8Array, from: number, to: number): number {
  for (let i = bytes.indexOf(10, from); i >= 0 && i < to; i = bytes.indexOf(10, i + 1)) {
    if (bytes[i + 1] === 10 && i + 1 < to) return i + 2;
    if (bytes[i + 1] === 13 && bytes[i + 2] === 10 && i + 2 < to) return i + 3;
  }
  return -1;
}

type Request = { method: string; path: string; headers: Map<string, string>; keepAlive: boolean };
type Asked = Pick<Request, "method" | "keepAlive">;
const MALFORMED: Asked = { method: "", keepAlive: false };

const SINGLE = new Set(["host", "content-length", "range"]);

/** The request in a head, or null when it is malformed (400). */
function parse(head: string): Request | null {
  const lines = head.replace(/^\r?\n/, "").split(/\r?\n/); // an empty line before the request is ignored
  // No tab or other control in a target (RFC 3986); bytes past 0x7F are taken as the bytes they are, below
  const line = /^([A-Z]+) ([^\0- \x7f]+) HTTP\/1\.([01])$/.exec(lines[0]);
  if (line === null) return null;
  // origin-form, or absolute-form (which a server must accept too, RFC 9112 3.2.2): its authority is ignored, and
  // an empty path ("http://x", "http://x?q") is "/"
  const target = line[2].replace(/^https?:\/\/[^/?]*\/?/i, "/");
  if (!target.startsWith("/")) return null;
  const headers = new Map<string, string>();
  for (let i = 1; i < lines.length && lines[i] !== ""; i++) {
    const colon = lines[i].indexOf(":");
    // NUL or a bare CR in a field: invalid and dangerous, to be refused (RFC 9110 5.5)
    if (colon <= 0 || /\s/.test(lines[i].slice(0, colon)) || /[\0\r]/.test(lines[i])) return null;
    const name = lines[i].slice(0, colon).toLowerCase(), value = lines[i].slice(colon + 1).trim();
    // Two copies of a field that has one value: a proxy in front may have read the other (RFC 9112 3.2, 6.3).
    if (SINGLE.has(name) && headers.has(name) && (name === "host" || headers.get(name) !== value)) return null;
    headers.set(name, value);
  }
  // "-5", "1e3", "5, 6", or empty: no length at all (1*DIGIT, RFC 9110 8.6)
  if (headers.has("content-length") && !/^\d+$/.test(headers.get("content-length")!)) return null;
  if (line[3] === "1" && !headers.has("host")) return null; // HTTP/1.1 requires Host
  const connection = headers.get("connection")?.toLowerCase() ?? "";
  const keepAlive = line[3] === "1" ? !connection.includes("close") : connection.includes("keep-alive");
  let path: string;
  try {
    // A raw byte past 0x7F (the head is read as Latin-1, a byte a character) is decoded as if percent-encoded, as its
    // UTF-8 byte: it was taken as the Latin-1 character, so raw UTF-8 (as curl sends it) named no file and a raw 0xE9
    // served the file named "\u00e9".
    path = decodeURIComponent(target.split("?")[0].replace(/[\x80-\xff]/g, (c) => `%${c.charCodeAt(0).toString(16)}`));
  } catch {
    return null;
  }
  if (path.includes("\0")) return null;
  // A request with a body this server does not read: answer it, then close (the body would be misread).
  const hasBody = headers.has("transfer-encoding") || Number(headers.get("content-length") ?? 0) !== 0;
  return { method: line[1], path, headers, keepAlive: keepAlive && !hasBody };
}

/** The single byte range asked for: [start, end) of `size`; undefined for the whole file, null if unsatisfiable. */
function range(header: string | undefined, size: number): [number, number] | undefined | null {
  const m = header === undefined ? null : /^bytes=(\d*)-(\d*)$/i.exec(header);
  if (m === null || (m[1] === "" && m[2] === "")) return undefined; // absent, several ranges or malformed: ignore
  const n = Number(m[2]), start = Number(m[1]), last = m[2] === "" ? Infinity : n;
  if (m[1] === "") return n === 0 || size === 0 ? null : [Math.max(0, size - n), size]; // the last n bytes, if any
  if (last < start) return undefined; // last-pos before first-pos: not a valid range (RFC 9110 14.1.1), ignore it
  return start >= size ? null : [start, Math.min(size, last + 1)];
}

/** Where heads are encoded, one at a time: each is sent at once, and what the socket did not take is copied. */
const headOut = new Uint8Array(8192);

function headBytes(status: number, fields: string[], keepAlive: boolean, body = ""): Uint8Array {
  const connection = keepAlive && !stopping ? "keep-alive" : "close";
  const text = `HTTP/1.1 ${status} ${reasons[status]}\r\nDate: ${date}\r\nServer: pageio\r\n` +
    `${fields.map((field) => `${field}\r\n`).join("")}Connection: ${connection}\r\n\r\n${body}`;
  const { read, written } = encoder.encodeInto(text, headOut);
  return read === text.length ? headOut.subarray(0, written) : encoder.encode(text);
}

/** Sends a head (for errors with a short body); `more`: a body follows, so it leaves in one packet with its start
 * (MSG_MORE: one delivery to the client, not two). What does not fit waits until the socket is writable. */
function sendHead(conn: Conn, bytes: Uint8Array, more = false): Promise<number> | undefined {
  const written = conn.socket.send(bytes, { more });
  if (written < bytes.length) return conn.socket.writeAsync([bytes.slice(written)]); // headOut is the next head's
}

/** Sends a file span by sendfile: at once as far as the socket takes it, then waiting for room, a step at a time. */
async function sendBody(conn: Conn, file: FileHandle, start: number, end: number): Promise<void> {
  for (let at = start; at < end;) {
    conn.since = Date.now();
    at += conn.socket.sendFile(file, at, end - at);
    if (at === end) break;
    const step = Math.min(SEND_STEP_BYTES, end - at);
    await conn.socket.sendFileAsync(file, at, step);
    at += step;
  }
}

/** Answers with a status and a line of text (no body for HEAD or 304); returns whether the connection stays. */
async function answer(conn: Conn, status: number, request: Asked, extra: string[] = []): Promise<boolean> {
  const text = `${status} ${reasons[status]}\n`;
  const bodyless = request.method === "HEAD" || status === 304; // a body would be read as the next response
  const fields = status === 304 ? extra : [...extra, "Content-Type: text/plain", `Content-Length: ${text.length}`];
  await sendHead(conn, headBytes(status, fields, request.keepAlive, bodyless ? "" : text));
  return request.keepAlive;
}

/** The file a path names with its size, or the status to answer instead. */
function openTarget(path: string): { file: FileHandle; size: number; type: string } | number {
  const relative = path.slice(1) + (path.endsWith("/") ? "index.html" : ""); // "/" too: the path starts with it
  try {
    const file = openBeneath(root, relative);
    const { kind, size } = file.stat();
    const ext = relative.split(".").pop()!; // by the name opened: "/" is index.html
    const type = Object.hasOwn(types, ext) ? types[ext] : "application/octet-stream"; // "x.constructor" is no type
    if (kind === "file") return { file, size, type };
    file.close();
    return 404;
  } catch (error) {
    const code = (error as PageIoError).code;
    if (code === "EACCES") return 403;
    if (code === "EMFILE" || code === "ENFILE") return 503; // out of descriptors: the client is to try again soon
    // ENXIO, ENODEV: a unix socket's file, or a device without a driver, which no open reaches
    if (["ENOENT", "ENOTDIR", "EXDEV", "ELOOP", "ENAMETOOLONG", "EINVAL", "ENXIO", "ENODEV"].includes(code)) return 404;
    throw error;
  }
}

/** Answers one request; returns whether the connection may carry another. */
async function respond(conn: Conn, request: Request): Promise<boolean> {
  const { method, headers, keepAlive } = request;
  if (method !== "GET" && method !== "HEAD") return answer(conn, 405, request, ["Allow: GET, HEAD"]);
  const target = openTarget(request.path);
  // Out of descriptors: and close, as this connection holds one the server is short of.
  if (target === 503) return answer(conn, 503, { method, keepAlive: false }, ["Retry-After: 1"]);
  if (typeof target === "number") return answer(conn, target, request);
  const { file, size, type } = target;
  try {
    // No validator is sent (ETag, Last-Modified), so none a client sends matches (RFC 9110 13.1): If-Match fails,
    // so does If-None-Match "*", and an If-Range asks for the whole file.
    const ifMatch = headers.get("if-match");
    if (ifMatch !== undefined && ifMatch !== "*") return await answer(conn, 412, request);
    if (headers.get("if-none-match") === "*") return await answer(conn, 304, request);
    const span = headers.has("if-range") ? undefined : range(headers.get("range"), size);
    if (span === null) return await answer(conn, 416, request, [`Content-Range: bytes */${size}`]);
    const [start, end] = span ?? [0, size];
    const fields = [`Content-Type: ${type}`, `Content-Length: ${end - start}`, "Accept-Ranges: bytes"];
    if (span !== undefined) fields.push(`Content-Range: bytes ${start}-${end - 1}/${size}`);
    conn.phase = "send";
    const body = method === "GET" && start < end;
    const more = body && end - start <= HEAD_WITH_BODY_MAX;
    await sendHead(conn, headBytes(span === undefined ? 200 : 206, fields, keepAlive), more);
    if (body) await sendBody(conn, file, start, end);
    return keepAlive;
  } finally {
    file.close();
  }
}

const discard = new Uint8Array(4096);

/** Ends a connection the server chose to end: its FIN goes out after the bytes still queued, and what the client
 * sent meanwhile (a pipelined request, a body) is read until it closes. A close with unread bytes would be a
 * reset, and a reset throws away the end of the response still in the kernel's queue. The send deadline holds. */
async function linger(conn: Conn): Promise<void> {
  conn.phase = "send";
  conn.since = Date.now();
  try {
    conn.socket.shutdown("write");
    while (await conn.socket.readAsync(discard) > 0);
  } catch {
    // reset, or cut by the deadline: nothing more to do for it
  }
}

/** Reads requests from one connection and answers them in order until it closes or must close. */
async function serve(socket: Socket): Promise<void> {
  const conn: Conn = { socket, cut: false, phase: "head", since: Date.now() };
  conns.add(conn);
  const page = pool.acquire(); // CONNECTIONS_MAX keeps this within the pool's bound
  const bytes = page.bytes;
  let filled = 0;
  let ended = false; // the client closed or the connection failed: nothing of its is left to read
  try {
    socket.noDelay = true; // the head and a small body go out at once, not held back by Nagle's algorithm
    for (let open = true; open && !stopping;) {
      conn.phase = "head";
      conn.since = Date.now();
      let end = headEnd(bytes, 0, filled);
      while (end < 0) {
        if (filled === bytes.length) return void await answer(conn, 431, MALFORMED);
        const head = page.head(filled);
        const read = await socket.readAsync(head).finally(() => head.release()); // waits only if nothing is there
        if (read === 0) return void (ended = true); // the client closed (or half-closed) its side
        end = headEnd(bytes, Math.max(0, filled - 2), filled + read);
        filled += read;
      }
      const request = parse(latin1.decode(bytes.subarray(0, end)));
      if (request === null) return void await answer(conn, 400, MALFORMED);
      open = await respond(conn, request);
      bytes.copyWithin(0, end, filled); // a pipelined request that came along
      filled -= end;
    }
  } catch (error) {
    ended = true;
    const gone = conn.cut || ["ECONNRESET", "EPIPE", "ENOTCONN", "ERR_CLOSED"].includes((error as PageIoError).code);
    if (!gone) console.error("static-server:", error); // a file cut short while sent (ENODATA), say
  } finally {
    page.release();
    if (!ended && !conn.cut) await linger(conn);
    socket.close();
    conns.delete(conn);
    finish();
  }
}

console.log(`listening on http://127.0.0.1:${(listener.addr as { port: number }).port}`);
// Out of descriptors, a connection waits in the backlog while the loop tries again (every 50 ms) until some close.
for await (const socket of listener) {
  if (conns.size >= CONNECTIONS_MAX) socket.close(); // over the limit: refuse rather than grow without bound
  else serve(socket);
}
