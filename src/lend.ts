/**
 * Pages lent to a pipe (vmsplice): the pipe then holds the pool pages themselves, not copies of them. Nothing
 * the kernel reports proves a lent page was let go: FIONREAD drops to 0 as soon as the reader `splice`s or
 * `tee`s the bytes on, while the pages live on in the next pipe or file. So a lent page is never reused in
 * place: right after the lend it gets fresh memory at the same address (MAP_FIXED; the pipe keeps the old),
 * one native call per run of adjacent pages, and its head goes back at once.
 * @module
 */
import { fn } from "../ffi/native.ts";
import type { FileHandle } from "./file.ts";
import { headInternals, PageHead } from "./head.ts";
import { ownCall } from "./internal.ts";

const { lendable, markLent, page: pageOf } = headInternals;
// PageHead's own release, so a lent head's redefined `release` never runs.
const release = ownCall(PageHead.prototype.release);

/** @internal What a PageWriter on a pipe lends to. */
export class Lender {
  readonly #pipe: FileHandle;
  /** Heads just lent whose pages nothing else holds: they get fresh memory together in `settle()`. */
  #batch: PageHead[] = [];
  /** False once the kernel refused to lend (ENOSYS, EINVAL): the writer copies from then on. */
  enabled = true;

  constructor(pipe: FileHandle) {
    this.#pipe = pipe;
  }

  /** The pipe's descriptor. */
  get fd(): number {
    return this.#pipe.fd;
  }

  /** A head whose bytes were just lent to the pipe: its page gets fresh memory, now or at its last release. */
  lent(head: PageHead): void {
    if (lendable(head)) return void this.#batch.push(head);
    markLent(head); // another head holds the page (the unsent rest of this one): replaced once it goes
    release.call(head);
  }

  /** Fresh memory for the batch's pages, one call per run of adjacent pages; then the heads go back. */
  settle(): void {
    const heads = this.#batch;
    if (heads.length === 0) return;
    this.#batch = [];
    const pages = heads.map(pageOf);
    for (let start = 0; start < heads.length;) {
      const { region, offset } = pages[start];
      let length = pages[start].length, end = start + 1;
      while (end < heads.length && pages[end].region === region && pages[end].offset === offset + length) {
        length += pages[end++].length;
      }
      // Failed (ENOMEM): each page is replaced on its own at release instead, or never used again.
      if (fn.pageio_replace_pages(region, offset, length) < 0) { for (let i = start; i < end; i++) markLent(heads[i]); }
      start = end;
    }
    for (const head of heads) release.call(head);
  }
}
