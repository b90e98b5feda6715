/**
 * The one interface the facade calls: numbers in, numbers out, plus
 * "view this memory". Loads the library once, at first import, synchronously.
 * @module
 */
import type { Binding } from "./binding.ts";
import { abi, type ErrnoName, resolveErrnos } from "./abi.ts";
import { load } from "./load.ts";

export { ABI_VERSION } from "./symbols.ts";
export { abi, enumIndex, type EnumValue, type ErrnoName } from "./abi.ts";
export type { Binding, PermissionQuery } from "./binding.ts";

/** The loaded library, for the running runtime. */
export const native: Binding = load();

/** Everything `pageio_*` returns is >= 0 on success and -errno on failure. */
export const fn = native.functions;

const NAME_BYTES = 256;
const nameBuffer = new Uint8Array(NAME_BYTES);
const decoder = new TextDecoder();

/** The platform's name and text for an errno value: `["ENOENT", "No such file or directory"]`. */
export function describeErrno(errno: number): [code: string, text: string] {
  const length = fn.pageio_errno_name(errno, nameBuffer, NAME_BYTES);
  if (length <= 0) return [`E${errno}`, `errno ${errno}`];
  const [name, ...text] = decoder.decode(nameBuffer.subarray(0, length)).split(" ");
  return ["E" + name, text.join(" ")];
}

/** The errno numbers the facade branches on, for this OS: `errno.EAGAIN`… (ffi/abi.ts lists them). */
export const errno: Readonly<Record<ErrnoName, number>> = resolveErrnos((n) => describeErrno(n)[0]);

const { constants } = abi;
/** Native region ids reserved for packed descriptors (see zig/src/gather.zig). */
export const STAGING_REGION: number = constants.STAGING_REGION.value;
export const ADDRESS_REGION: number = constants.ADDRESS_REGION.value;
/** A packed descriptor {region, offset low, offset high, length}: 16 bytes (Zig asserts the same size). */
export const DESCRIPTOR_BYTES: number = constants.DESCRIPTOR_BYTES.value;
/** Limit: bytes one descriptor names (Linux moves at most this much in one call); longer chunks are split. */
export const ENTRY_BYTES_MAX: number = constants.ENTRY_BYTES_MAX.value;
/** Limit: iovecs per gather system call (IOV_MAX on Linux and macOS). */
export const IOV_MAX: number = constants.IOV_MAX.value;
/** Limit: heads one write-behind job takes (more go the synchronous way). */
export const BEHIND_IOV_MAX: number = constants.BEHIND_IOV_MAX.value;
