// The other process of the shared-ring tests, run by either runtime:
//   ring_peer.ts consume <path> [dieAfter]     receives until the end, prints {count, bytes, sha256}
//   ring_peer.ts produce <path> <count> <seed> [dieAfter]   publishes count pattern messages, then closes
// With dieAfter, the process kills itself (SIGKILL, no cleanup) after that many messages.
import { createHash } from "node:crypto";
import process from "node:process";
import { SharedRing } from "../mod.ts";
import { messageBytes } from "./ring_messages.ts";

const [mode, path, ...rest] = process.argv.slice(2);
if (mode === "consume") {
  const dieAfter = rest[0] === undefined ? Infinity : Number(rest[0]);
  const ring = SharedRing.open(path);
  const hash = createHash("sha256");
  let count = 0, bytes = 0;
  for await (const head of ring) {
    hash.update(head.bytes);
    bytes += head.byteLength;
    head.release();
    if (++count === dieAfter) process.kill(process.pid, "SIGKILL");
  }
  ring.close();
  console.log(JSON.stringify({ count, bytes, sha256: hash.digest("hex") }));
} else if (mode === "produce") {
  const [count, seed, dieAfter] = [
    Number(rest[0]),
    Number(rest[1]),
    rest[2] === undefined ? Infinity : Number(rest[2]),
  ];
  const ring = SharedRing.open(path, { role: "producer" });
  for (let i = 0; i < count; i++) {
    if (i === dieAfter) process.kill(process.pid, "SIGKILL");
    const slot = i % 2 === 0 ? ring.reserve() : await ring.reserveAsync();
    const message = messageBytes(i, seed, ring.slotSize);
    slot.bytes.set(message);
    slot.publish(message.length);
  }
  ring.close();
} else {
  throw new Error(`unknown mode ${mode}`);
}
