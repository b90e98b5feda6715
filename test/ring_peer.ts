// The other process of the shared-ring tests, run by either runtime:
//   ring_peer.ts consume <path> [dieAfter] [gate]   receives until the end, prints {count, bytes, sha256}
//                                              (and {error: code} if opening or a receive failed); with a gate
//                                              path, creates <gate>.ready once attached and waits for <gate>
//   ring_peer.ts produce <path> <count> <seed> [dieAfter]   publishes count pattern messages, then closes;
//                                              if one fails, prints {published, error: code} and closes
//   ring_peer.ts lie                           for each stdin line "<path> <word> <value>", writes the u32 value
//                                              at that word of the ring file (a peer rewriting the header), says "ok"
// With dieAfter, the process kills itself (SIGKILL, no cleanup) after that many messages.
import { createHash } from "node:crypto";
import { closeSync, existsSync, openSync, writeFileSync, writeSync } from "node:fs";
import { createInterface } from "node:readline";
import process from "node:process";
import { SharedRing } from "../mod.ts";
import { messageBytes } from "./ring_messages.ts";

const [mode, path, ...rest] = process.argv.slice(2);
if (mode === "consume") {
  const dieAfter = rest[0] === undefined || rest[0] === "" ? Infinity : Number(rest[0]);
  const gate = rest[1];
  const hash = createHash("sha256");
  let count = 0, bytes = 0, error: string | undefined;
  try {
    using ring = SharedRing.open(path);
    if (gate !== undefined) {
      writeFileSync(`${gate}.ready`, "");
      while (!existsSync(gate)) await new Promise((resolve) => setTimeout(resolve, 5));
    }
    for await (const head of ring) {
      hash.update(head.bytes);
      bytes += head.byteLength;
      head.release();
      if (++count === dieAfter) process.kill(process.pid, "SIGKILL");
    }
  } catch (e) {
    error = (e as { code?: string }).code ?? String(e);
  }
  console.log(JSON.stringify({ count, bytes, sha256: hash.digest("hex"), ...(error ? { error } : {}) }));
} else if (mode === "produce") {
  const [count, seed, dieAfter] = [
    Number(rest[0]),
    Number(rest[1]),
    rest[2] === undefined ? Infinity : Number(rest[2]),
  ];
  const ring = SharedRing.open(path, { role: "producer" });
  let i = 0;
  try {
    for (; i < count; i++) {
      if (i === dieAfter) process.kill(process.pid, "SIGKILL");
      const slot = i % 2 === 0 ? ring.reserve() : await ring.reserveAsync();
      const message = messageBytes(i, seed, ring.slotSize);
      slot.bytes.set(message);
      slot.publish(message.length);
    }
  } catch (e) {
    console.log(JSON.stringify({ published: i, error: (e as { code?: string }).code ?? String(e) }));
  }
  ring.close();
} else if (mode === "lie") {
  for await (const line of createInterface({ input: process.stdin })) {
    const [file, word, value] = line.split(" ");
    const fd = openSync(file, "r+");
    const bytes = new Uint8Array(4);
    new DataView(bytes.buffer).setUint32(0, Number(value), true);
    writeSync(fd, bytes, 0, 4, Number(word) * 4);
    closeSync(fd);
    console.log("ok");
  }
} else {
  throw new Error(`unknown mode ${mode}`);
}
