/**
 * The write-with-a-queue pattern Bun sockets need (they do not buffer writes), for test peers, proxies and bench
 * relays: write at once when nothing is queued, queue the unsent rest, and flush the queue on `drain`.
 */

/** The part of a Bun socket this needs. */
export interface Writable {
  write(data: Uint8Array): number;
}

/** Writes `chunk`, or queues it (or its unsent rest). Returns true if everything went out now. */
export function writeOrQueue(sock: Writable, queue: Uint8Array[], chunk: Uint8Array): boolean {
  if (queue.length > 0) {
    queue.push(chunk);
    return false;
  }
  const n = sock.write(chunk);
  if (n >= chunk.byteLength) return true;
  queue.push(chunk.subarray(Math.max(0, n)));
  return false;
}

/** Writes queued chunks until one comes up short. Returns true once the queue is empty. */
export function flushQueue(sock: Writable, queue: Uint8Array[]): boolean {
  while (queue.length > 0) {
    const head = queue[0] as Uint8Array;
    const n = sock.write(head);
    if (n < head.byteLength) {
      queue[0] = head.subarray(Math.max(0, n));
      return false;
    }
    queue.shift();
  }
  return true;
}
