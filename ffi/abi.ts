/**
 * The boundary with the Zig library, declared once: every enum order, flag bit and reserved number that both
 * sides must agree on, and the errno names the facade branches on. zig/build.zig reads the `abi` literal below
 * and zig/src/abi_check.zig fails the build when a Zig declaration disagrees with it, so edit this table first.
 *
 * Keep `abi` a JSON literal (double-quoted keys, no comments inside; trailing commas are fine): the build
 * parses it as JSON.
 * @module
 */

export const abi = {
  "enums": {
    "FileMode": {
      "zig": "file.Mode",
      "values": ["r", "r+", "w", "w+", "a", "wx+"],
      "tags": ["read", "read_write", "write", "read_write_create", "append", "read_write_exclusive"],
    },
    "FileKind": {
      "zig": "file.Kind",
      "values": ["other", "file", "directory", "character-device", "block-device", "fifo", "socket"],
    },
    "Advice": { "zig": "mapping.Advice", "values": ["normal", "sequential", "random", "willneed", "dontneed"] },
    "RingRole": { "zig": "ring.Role", "values": ["producer", "consumer"] },
    "MoveKind": { "zig": "kernel_move.Kind", "values": ["copy_file_range", "sendfile"] },
    "PairKind": { "zig": "channel.PairKind", "values": ["pipe", "socket"] },
    "FdBlocking": { "zig": "poller.Blocking", "values": ["no", "never_waits", "may_wait", "device"] },
    "Transport": { "zig": "socket.Transport", "values": ["tcp", "unix"] },
    "AddressFamily": { "zig": "socket.Family", "values": ["ipv4", "ipv6", "unix"] },
    "SocketOption": {
      "zig": "socket.Option",
      "values": ["noDelay", "keepAlive", "reuseAddress", "reusePort", "unsentLimit", "cork"],
      "tags": ["no_delay", "keep_alive", "reuse_address", "reuse_port", "unsent_bytes_max", "cork"],
    },
    "Shutdown": { "zig": "socket.Shutdown", "values": ["read", "write", "both"] },
  },
  "flags": {
    "OpenFlags": { "zig": "file.OpenFlags", "bits": { "no_follow": 1, "non_blocking": 2, "pipes_wait_ready": 4 } },
    "MapFlags": { "zig": "mapping.Options", "bits": { "write": 1, "private": 2, "populate": 4 } },
    "ListenFlags": { "zig": "socket.ListenFlags", "bits": { "reuse_port": 1 } },
    "SendFlags": { "zig": "socket.SendFlags", "bits": { "more": 1 } },
  },
  "constants": {
    "STAGING_REGION": { "zig": "gather.staging_region", "value": 0 },
    "ADDRESS_REGION": { "zig": "gather.address_region", "value": 4294967295 },
    "DESCRIPTOR_BYTES": { "zig": "@sizeOf(gather.Descriptor)", "value": 16 },
    "IOV_MAX": { "zig": "gather.iov_count_max", "value": 1024 },
    "BEHIND_IOV_MAX": { "zig": "behind.job_iov_max", "value": 64 },
    "ENTRY_BYTES_MAX": { "zig": "gather.entry_bytes_max", "value": 2147479552 },
    "INTEREST_READ": { "zig": "poller.read_bit", "value": 1 },
    "INTEREST_WRITE": { "zig": "poller.write_bit", "value": 2 },
    "READY_HUP": { "zig": "poller.hup_bit", "value": 4 },
    "DRAIN_AGAIN": { "zig": "poller.drain_again", "value": 65536 },
  },
  "errnos": [
    "EAGAIN",
    "EINVAL",
    "ENOSYS",
    "EXDEV",
    "EOPNOTSUPP",
    "ENOTSUP",
    "EBADF",
    "ESPIPE",
    "EIO",
    "EACCES",
    "ENODEV",
    "ENXIO",
    "EPIPE",
    "ENODATA",
    "ETIMEDOUT",
    "EPROTO",
    "EPERM",
    "ENOTCONN",
    "EALREADY",
    "ENOENT",
    "ENOSPC",
    "EPROTOTYPE",
    "EBUSY",
  ],
} as const;

type Enums = typeof abi.enums;
/** The values of a shared enum, in the order of its Zig declaration: a value's index is its number. */
export type EnumValue<K extends keyof Enums> = Enums[K]["values"][number];

/** The errno names the facade branches on. */
export type ErrnoName = typeof abi.errnos[number];

/** The number of a shared enum's value, e.g. `enumIndex("FileMode", "r+")` is 1; -1 when it is not one. */
export function enumIndex<K extends keyof Enums>(name: K, value: unknown): number {
  return (abi.enums[name].values as readonly unknown[]).indexOf(value);
}

/**
 * The errno numbers of `abi.errnos` on this OS (they differ between Linux and macOS), from the library's own
 * names: looked up once at load, so hot paths compare numbers, never decode names.
 */
export function resolveErrnos(nameOf: (errno: number) => string): Readonly<Record<ErrnoName, number>> {
  const wanted = new Set<string>(abi.errnos);
  const numbers: Record<string, number> = Object.fromEntries(abi.errnos.map((name) => [name, -1]));
  for (let n = 1; n < 512 && wanted.size > 0; n++) {
    const name = nameOf(n);
    if (wanted.delete(name)) numbers[name] = n;
  }
  // Linux has no separate ENOTSUP: it is EOPNOTSUPP.
  if (numbers.ENOTSUP === -1) numbers.ENOTSUP = numbers.EOPNOTSUPP;
  return Object.freeze(numbers) as Record<ErrnoName, number>;
}
