/**
 * pageio: page-based zero-copy I/O for Deno and Bun. Memory-mapped files,
 * page pools, reference-counted page heads, gather writes and page streams,
 * over a small Zig library.
 *
 * @example
 * ```ts
 * import { mapFile } from "@pageio/pageio";
 * using file = mapFile("README.md");
 * console.log(file.byteLength > 0); // true
 * ```
 * @module
 */
export { PageIoError } from "./src/errors.ts";
export type { AsyncOptions } from "./src/drive.ts";
export {
  FileHandle,
  type FileKind,
  type FileMode,
  type FileStat,
  openBeneath,
  openFile,
  type OpenOptions,
  type PairOptions,
  pipe,
  socketPair,
  type Target,
} from "./src/file.ts";
export { type Advice, mapAnonymous, mapFile, type MapFileOptions, Mapping } from "./src/mapping.ts";
export { PageHead } from "./src/head.ts";
export { Page, PagePool, type PagePoolOptions, type PagePoolStats } from "./src/pool.ts";
export { type Chunk, type ReadTarget, readv, readvAsync, writev, writevAsync } from "./src/gather.ts";
export { Brigade } from "./src/brigade.ts";
export { PageReader, type PageReaderOptions } from "./src/reader.ts";
export { PageWriter, type PageWriterOptions } from "./src/writer.ts";
export { type RingRole, RingSlot, type RingWaitOptions, SharedRing, type SharedRingOptions } from "./src/ring.ts";
export {
  adoptSocket,
  connect,
  connectAsync,
  type ConnectOptions,
  listen,
  Listener,
  type NetAddr,
  Socket,
  type TcpListenOptions,
  type UnixListenOptions,
} from "./src/socket.ts";
export { type SharedMemory, SharedView, type ShareOptions, takeShared } from "./src/share.ts";
export { pageSize, runtime } from "./src/system.ts";
