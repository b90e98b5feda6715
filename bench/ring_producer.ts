// The producer of the async ring benchmark (7.4), started by bench/cases.ts with the same runtime:
//   ring_producer.ts <ring path> <slots>
// Fills that many 64 KiB slots (stamping each) and closes its side, so the consumer sees the end.
import process from "node:process";
import { SharedRing } from "../mod.ts";

const [path, count] = process.argv.slice(2);
const ring = SharedRing.open(path, { role: "producer" });
for (let i = 0; i < Number(count); i++) {
  const slot = ring.reserve();
  slot.bytes[0] = i & 0xff;
  slot.publish(ring.slotSize);
}
ring.close();
