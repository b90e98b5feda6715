// Shared by every test file: temporary files, GC, and what the process holds.
import { createHash } from "node:crypto";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import process from "node:process";
import { join } from "node:path";
import { runtime } from "../mod.ts";

export const isDeno = runtime === "deno";

/** A fresh temporary directory, removed when the process exits. */
export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "pageio-test-"));
  dirs.push(dir);
  return dir;
}
const dirs: string[] = [];
const removeDirs = () => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true }));
// Deno's test runner dispatches unload to each test file; Bun's never does, but emits the process's exit (before,
// every directory of a Bun run stayed behind: tens of GB in /tmp after a day of runs, and then ENOSPC).
globalThis.addEventListener?.("unload", removeDirs);
process.on("exit", removeDirs);

/** A temporary file holding `bytes`. */
export function tempFile(bytes: Uint8Array | string, name = "file"): string {
  const path = join(tempDir(), name);
  writeFileSync(path, bytes);
  return path;
}

/** Deterministic pseudo-random bytes (xorshift), so failures reproduce. */
export function patternBytes(length: number, seed = 1): Uint8Array {
  const bytes = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    bytes[i] = x & 0xff;
  }
  return bytes;
}

/** Runs a full garbage collection (Deno needs --v8-flags=--expose-gc). */
export async function collectGarbage(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    if (isDeno) (globalThis as unknown as { gc(): void }).gc();
    else (globalThis as unknown as { Bun: { gc(full: boolean): void } }).Bun.gc(true);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Descriptors this process has open. */
export function openDescriptorCount(): number {
  return readdirSync("/proc/self/fd").length;
}

/**
 * Descriptors of this process open on `path`: unlike a count of all of them, immune to the runtime's own
 * descriptors and to those an earlier test's thread closes meanwhile.
 */
export function fdsOn(path: string): number {
  return readdirSync("/proc/self/fd").filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === path;
    } catch {
      return false;
    }
  }).length;
}

/**
 * Polls `check` until it holds or `timeoutMs` has passed; returns whether it held. For what the runtime or the
 * kernel does in its own time (a Worker's teardown, a collector, another process): a generous bound, not a guess.
 */
export async function until(check: () => boolean, timeoutMs = 30_000, stepMs = 10): Promise<boolean> {
  for (const deadline = Date.now() + timeoutMs; !check();) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, stepMs));
  }
  return true;
}

/** Lines of /proc/self/maps that mention `text` (a path). */
export function mapsLinesMentioning(text: string): number {
  return readFileSync("/proc/self/maps", "utf8").split("\n").filter((line) => line.includes(text)).length;
}

/** Runs a TypeScript file in a child of this runtime; returns its exit status and output. */
export function runScript(
  source: string,
  options: {
    args?: string[];
    env?: Record<string, string>;
    prefix?: string[];
    denoFlags?: string[];
    timeout?: number;
  } = {},
) {
  const file = join(tempDir(), "child.ts");
  writeFileSync(file, source);
  const exe = process.execPath;
  const argv = isDeno
    ? [exe, "run", "--allow-all", ...(options.denoFlags ?? []), file, ...(options.args ?? [])]
    : [exe, file, ...(options.args ?? [])];
  const command = [...(options.prefix ?? []), ...argv];
  const run = spawnSync(command[0], command.slice(1), {
    encoding: "utf8",
    env: { ...process.env, ...options.env },
    timeout: options.timeout ?? 60_000,
  });
  return { status: run.status, signal: run.signal, stdout: run.stdout ?? "", stderr: run.stderr ?? "" };
}

/** The repository root as an absolute path, for child scripts' imports. */
export const root: string = decodeURIComponent(new URL("..", import.meta.url).pathname);

/** Whether strace is installed (.ci/run installs it). */
export const haveStrace: boolean = spawnSync("strace", ["-V"], { stdio: "ignore" }).status === 0;

/** A named pipe in a fresh directory. */
export function fifo(): string {
  const path = join(tempDir(), "fifo");
  spawnSync("mkfifo", [path]);
  return path;
}

/**
 * Runs `open` (something that opens a FIFO's write end) until a reader has the FIFO open: opening never waits
 * for the other end, it fails with ENXIO until then.
 */
export async function whenReaderOpens<T>(open: () => T, timeoutMs = 30_000): Promise<T> {
  for (const deadline = Date.now() + timeoutMs;;) {
    try {
      return open();
    } catch (error) {
      if ((error as { code?: string }).code !== "ENXIO" || Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }
}

/** Starts a TypeScript file in a child of this runtime without waiting; resolves with its exit. */
export function startScript(source: string): { exited: Promise<{ status: number | null; stderr: string }> } {
  const file = join(tempDir(), "child.ts");
  writeFileSync(file, source);
  const argv = isDeno ? ["run", "--allow-all", file] : [file];
  const child = spawn(process.execPath, argv, { stdio: ["ignore", "inherit", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (d) => (stderr += d));
  return { exited: new Promise((resolve) => child.on("close", (status) => resolve({ status, stderr }))) };
}

/** SHA-256 of bytes, hex. */
export function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/**
 * Starts `test/<script>` under the *other* runtime (Deno runs it on Bun, Bun on Deno) without waiting;
 * resolves with its exit, signal and output.
 */
export function startOnOtherRuntime(script: string, args: string[]) {
  const file = join(root, "test", script);
  const [exe, argv] = isDeno
    ? [join(root, "node_modules/.bin/bun"), [file, ...args]]
    : [join(root, "node_modules/.bin/deno"), ["run", "--allow-all", file, ...args]];
  const child = spawn(exe, argv, { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "", stderr = "";
  child.stdout!.on("data", (d) => (stdout += d));
  child.stderr!.on("data", (d) => (stderr += d));
  const exited = new Promise<{ status: number | null; signal: string | null; stdout: string; stderr: string }>(
    (resolve) => child.on("close", (status, signal) => resolve({ status, signal, stdout, stderr })),
  );
  return { exited };
}

/** Why a test that needs a small tmpfs (a filesystem to fill) cannot run here, or false: mounting takes root. */
export const noTmpfs: string | false = process.platform === "linux" && process.getuid?.() === 0 &&
    spawnSync("mount", ["--version"], { stdio: "ignore" }).status === 0
  ? false
  : "needs root to mount a small tmpfs";

/** Runs `body` with a fresh tmpfs of `bytes` mounted on a temporary directory, unmounted after it. */
export async function withTmpfs<T>(bytes: number, body: (dir: string) => T | Promise<T>): Promise<T> {
  const dir = tempDir();
  const mount = spawnSync("mount", ["-t", "tmpfs", "-o", `size=${bytes}`, "tmpfs", dir], { encoding: "utf8" });
  if (mount.status !== 0) throw new Error(`mount: ${mount.stderr}`);
  try {
    return await body(dir);
  } finally {
    spawnSync("umount", ["-l", dir]);
  }
}
