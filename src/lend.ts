/**
 * Pages lent to a pipe (vmsplice): the pipe then holds the pool pages themselves, not copies of them. Nothing
 * the kernel reports proves a lent page was let go: FIONREAD drops to 0 as soon as the reader `splice`s or
 * `tee`s the bytes on, while the pages live on in the next pipe or file. So a lent page is never reused in
 * place: its head is released at once, and the page gets fresh memory (MAP_FIXED, the pipe keeps the old)
 * before its pool hands it out again.
 * @module
 */
import type { FileHandle } from "./file.ts";
import type { PageHead } from "./head.ts";

/** @internal What a PageWriter on a pipe lends to. */
export class Lender {
  readonly #pipe: FileHandle;
  /** False once the kernel refused to lend (ENOSYS, EINVAL): the writer copies from then on. */
  enabled = true;

  constructor(pipe: FileHandle) {
    this.#pipe = pipe;
  }

  /** The pipe's descriptor. */
  get fd(): number {
    return this.#pipe.fd;
  }

  /** A head whose bytes were just lent to the pipe: its page is marked for fresh memory, and it is released. */
  lent(head: PageHead): void {
    head._markLent();
    head.release();
  }
}
