// One benchmark case in this process; prints one JSON line with the figures and this process's peak RSS.
// Usage: <runtime> bench/main.ts <case> [args...]   (scripts/bench.mjs runs them all on both runtimes)
import { readFileSync } from "node:fs";
import process from "node:process";
import { runtime } from "../mod.ts";
import * as cases from "./cases.ts";

const args: string[] = process.argv.slice(2);
const [name, ...rest] = args;

const runs: Record<string, () => Promise<cases.Measured[]>> = {
  firstByte: () => cases.firstByte(rest[0]),
  everyPage: () => cases.everyPage(rest[0]),
  randomReads: () => cases.randomReads(rest[0]),
  gather: () => cases.gather(rest[0], Number(rest[1]), Number(rest[2])),
  acquireRelease: () => cases.acquireRelease(),
  copy: () => cases.copy(rest[0], rest[1], rest[2]),
  fileToPipe: () => cases.fileToPipe(rest[0]),
  toChild: () => cases.toChild(Number(rest[0])),
  ringThroughput: () => cases.ringThroughput(Number(rest[0])),
  pingPong: () => cases.pingPong(Number(rest[0])),
  spliceOrWritev: () => cases.spliceOrWritev(Number(rest[0])),
  asyncImmediate: () => cases.asyncImmediate(Number(rest[0])),
  fromChild: () => cases.fromChild(Number(rest[0])),
  pingPongAsync: () => cases.pingPongAsync(Number(rest[0])),
  ringAsync: () => cases.ringAsync(Number(rest[0])),
  awaitedWrites: () => cases.awaitedWrites(Number(rest[0])),
  logLines: () => cases.logLines(rest[0], Number(rest[1])),
  streamChunks: () => cases.streamChunks(rest[0]),
};
if (!runs[name]) throw new Error(`unknown case ${name}; one of ${Object.keys(runs).join(", ")}`);
const results = await runs[name]();
const peakRssKiB = Number(readFileSync("/proc/self/status", "utf8").match(/VmHWM:\s+(\d+)/)![1]);
console.log(
  JSON.stringify({
    runtime,
    case: name,
    args: rest,
    results,
    peakRssMiB: peakRssKiB / 1024,
    sink: cases.sinkValue() > -1,
  }),
);
