/** Stand-ins for a stream's local socket in tests that drive a Session without sockets (test/mux, test/e2e). */
import type { LocalSocket } from "../../src/mux/stream.ts";

/**
 * A local socket that takes at most `room` bytes per write (all by default), keeps what it took in `got`, and
 * records terminate().
 */
export class FakeLocal implements LocalSocket {
  got: number[] = [];
  room = Infinity;
  terminated = false;
  write(data: Uint8Array, byteOffset = 0, byteLength = data.byteLength - byteOffset): number {
    const n = Math.min(byteLength, this.room);
    for (let i = 0; i < n; i++) this.got.push(data[byteOffset + i] as number);
    return n;
  }
  pause(): void {}
  resume(): void {}
  shutdown(): void {}
  end(): void {}
  terminate(): void {
    this.terminated = true;
  }
}
