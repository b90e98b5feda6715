/**
 * Pages lent to a pipe (vmsplice): the pipe then holds the pool pages themselves, not copies of them, until
 * its reader takes the bytes. A lent page must not change or go back to its pool before that, so the
 * lender keeps each lent head and releases it once the pipe's unread count (FIONREAD) shows it was read.
 * @module
 */
import { fn } from "../ffi/native.ts";
import type { FileHandle } from "./file.ts";
import { headInternals, type PageHead } from "./head.ts";

/** @internal What a PageWriter on a pipe lends, and when it may have it back. */
export class Lender {
  readonly #pipe: FileHandle;
  /** Bytes put into the pipe through this lender's writer, lent or not: FIONREAD counts them all. */
  #position = 0;
  /** Lent heads, oldest first, each with the position its last byte has in the pipe. */
  #lent: { head: PageHead; end: number }[] = [];
  /** False once the kernel refused to lend (ENOSYS, EINVAL): the writer copies from then on. */
  enabled = true;

  constructor(pipe: FileHandle) {
    this.#pipe = pipe;
  }

  /** The pipe's descriptor. */
  get fd(): number {
    return this.#pipe.fd;
  }

  /** Bytes went into the pipe some other way (copied, or moved by the kernel from a file). */
  advance(bytes: number): void {
    this.#position += bytes;
  }

  /** Takes over a head whose bytes were just lent to the pipe. */
  keep(head: PageHead): void {
    this.#position += headInternals.length(head); // its private field: a redefined byteLength never counts
    this.#lent.push({ head, end: this.#position });
  }

  /** Releases the heads whose bytes the pipe's reader has taken. */
  reclaim(): void {
    if (this.#lent.length === 0 || this.#pipe.closed) return;
    const unread = fn.pageio_pipe_unread(this.#pipe.fd);
    if (unread < 0) return; // unknown: keep them (close() frees them safely)
    // Unread bytes are the newest ones; anything of ours older than them was read. Bytes another writer
    // put in the pipe only make this count higher: a head is kept too long, never given back too soon.
    const readTo = this.#position - unread;
    while (this.#lent.length > 0 && this.#lent[0].end <= readTo) this.#lent.shift()!.head.release();
  }

  /**
   * Gives every head back: those still in the pipe first get fresh memory in their pages (the pipe keeps the
   * old pages, and its reader their bytes), so nothing waits on the reader and no page goes back in use.
   */
  close(): void {
    this.reclaim();
    for (const { head } of this.#lent.splice(0)) {
      headInternals.replacePages(head);
      head.release();
    }
  }
}
