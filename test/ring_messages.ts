// Messages both sides of the shared-ring tests agree on: lengths from empty to a full slot, pattern bytes.
import { patternBytes } from "./helpers.ts";

export function messageBytes(index: number, seed: number, slotSize: number): Uint8Array {
  const lengths = [0, 1, slotSize, slotSize - 1, 4096, 12345];
  const length = index % 8 < lengths.length ? lengths[index % 8] : (index * 7919) % slotSize;
  return patternBytes(length, seed + index);
}
