/**
 * Frees a socket read's memory as soon as its bytes are consumed, instead of whenever the garbage collector
 * gets to it.
 *
 * Bun hands every `data` event a fresh buffer of up to 512 KiB (a clone of its read buffer, bun-platform.md §1.7)
 * that only the collector frees. At several hundred MB/s tens of MiB of spent reads wait for it, which is most of
 * a process's growth during a transfer (BENCHMARKS.md, "Memory during transfers"). Detaching the ArrayBuffer
 * (`ArrayBuffer.prototype.transfer(0)`) gives its bytes back to the allocator at once.
 */

/** Reads smaller than this are left to the collector: detaching allocates a new (empty) ArrayBuffer object. */
export const RELEASE_MIN_BYTES = 64 * 1024;

/**
 * Releases `chunk`'s memory now. Ownership: call it only with a chunk exactly as a socket `data` event delivered
 * it, after its bytes were copied or written out, when no view of it is kept anywhere: every view of it becomes
 * empty (length 0). Does nothing for a view of part of a buffer (for example the bytes after a handshake), for a
 * shared buffer, or for a chunk smaller than {@link RELEASE_MIN_BYTES}. Never throws.
 */
export function releaseChunk(chunk: Uint8Array): void {
  // Sizes first: `.buffer` of a small typed array made in JS materializes its ArrayBuffer, which is costly.
  if (chunk.byteOffset !== 0 || chunk.byteLength < RELEASE_MIN_BYTES) return;
  const buf = chunk.buffer;
  if (!(buf instanceof ArrayBuffer)) return;
  if (buf.byteLength !== chunk.byteLength || buf.detached) return;
  buf.transfer(0);
}

/**
 * Count of views of received chunks kept past the `data` event that delivered them (mux/inbound-queue.ts counts each
 * one it keeps), ever. Whoever decodes a chunk compares it before and after: unchanged means nothing holds a view of
 * that chunk, so its memory can be released at once (a Session for a TCP read, a WsSocket for the read it unframed).
 */
export const chunkViews = { kept: 0 };
