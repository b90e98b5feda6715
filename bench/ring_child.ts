// The other process of the shared-ring benchmarks (started by bench/cases.ts with the same runtime):
//   ring_child.ts <data ring path> <ack ring path>
// Receives from the data ring forever; answers every message shorter than 2 bytes with a 1-byte message on the
// ack ring (so 1-byte messages ping-pong, and a 0-byte message marks the end of a throughput run).
import process from "node:process";
import { SharedRing } from "../mod.ts";

const [dataPath, ackPath] = process.argv.slice(2);
const data = SharedRing.open(dataPath);
const ack = SharedRing.open(ackPath, { role: "producer" });
let sum = 0;
for (let head = data.receive(); head !== null; head = data.receive()) {
  const length = head.byteLength;
  if (length > 0) sum += head.bytes[0]; // the consumer looks at the page it was handed
  head.release();
  if (length < 2) ack.reserve().publish(1);
}
data.close();
ack.close();
if (sum < 0) console.log(sum);
