/**
 * The one interface the facade calls: numbers in, numbers out, plus
 * "view this memory". Loads the library once, at first import, synchronously.
 * @module
 */
import type { Binding } from "./binding.ts";
import { load } from "./load.ts";

export { ABI_VERSION } from "./symbols.ts";
export type { Binding, PermissionQuery } from "./binding.ts";

/** The loaded library, for the running runtime. */
export const native: Binding = load();

/** Everything `pageio_*` returns is >= 0 on success and -errno on failure. */
export const fn = native.functions;

const nameBuffer = new Uint8Array(256);
const decoder = new TextDecoder();

/** The platform's name and text for an errno value: `["ENOENT", "No such file or directory"]`. */
export function describeErrno(errno: number): [code: string, text: string] {
  const length = fn.pageio_errno_name(errno, nameBuffer, nameBuffer.length);
  if (length <= 0) return [`E${errno}`, `errno ${errno}`];
  const [name, ...text] = decoder.decode(nameBuffer.subarray(0, length)).split(" ");
  return ["E" + name, text.join(" ")];
}

/** Native region ids reserved for packed descriptors (see zig/src/gather.zig). */
export const STAGING_REGION = 0;
export const ADDRESS_REGION = 0xFFFF_FFFF;
/** A packed descriptor {region, offset low, offset high, length}: 16 bytes (Zig asserts the same size). */
export const DESCRIPTOR_BYTES = 16;
/** Limit: bytes one descriptor names (Linux moves at most this much in one call); longer chunks are split. */
export const ENTRY_BYTES_MAX = 0x7fff_f000;
/** Limit: iovecs per gather system call (IOV_MAX on Linux and macOS). */
export const IOV_MAX = 1024;
