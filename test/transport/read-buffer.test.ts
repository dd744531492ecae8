import { describe, expect, test } from "bun:test";
import { RELEASE_MIN_BYTES, releaseChunk } from "../../src/transport/read-buffer.ts";

describe("releaseChunk", () => {
  test("detaches a whole read of at least RELEASE_MIN_BYTES: its views become empty", () => {
    const chunk = new Uint8Array(RELEASE_MIN_BYTES);
    const view = chunk.subarray(10, 20);
    releaseChunk(chunk);
    expect(chunk.buffer.detached).toBe(true);
    expect(chunk.byteLength).toBe(0);
    expect(view.byteLength).toBe(0);
    releaseChunk(chunk); // twice is harmless
  });

  test("leaves small reads, views of part of a buffer and shared buffers alone", () => {
    const small = new Uint8Array(RELEASE_MIN_BYTES - 1);
    releaseChunk(small);
    expect(small.buffer.detached).toBe(false);
    const big = new Uint8Array(RELEASE_MIN_BYTES * 2);
    releaseChunk(big.subarray(1));
    releaseChunk(big.subarray(0, RELEASE_MIN_BYTES));
    expect(big.buffer.detached).toBe(false);
    const shared = new Uint8Array(new SharedArrayBuffer(RELEASE_MIN_BYTES));
    releaseChunk(shared);
    expect(shared.byteLength).toBe(RELEASE_MIN_BYTES);
  });

  test("a real socket read can be released after use", async () => {
    const size = 4 * 1024 * 1024;
    const sent = new Uint8Array(size).map((_, i) => (i * 31 + 7) & 0xff);
    let got = 0;
    let bad = 0;
    let released = 0;
    const { promise: done, resolve } = Promise.withResolvers<void>();
    const server = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        data(_s, chunk) {
          for (let i = 0; i < chunk.byteLength; i++) if (chunk[i] !== sent[got + i]) bad++;
          got += chunk.byteLength;
          const before = chunk.byteLength;
          releaseChunk(chunk);
          if (before >= RELEASE_MIN_BYTES && chunk.byteLength === 0) released++;
          if (got >= size) resolve();
        },
      },
    });
    let off = 0;
    const client = await Bun.connect({
      hostname: "127.0.0.1",
      port: server.port,
      socket: {
        data() {},
        drain(s) {
          while (off < size) {
            const n = s.write(sent, off, size - off);
            if (n <= 0) return;
            off += n;
          }
        },
      },
    });
    while (off < size) {
      const n = client.write(sent, off, size - off);
      if (n <= 0) break;
      off += n;
    }
    await done;
    client.end();
    server.stop(true);
    expect(got).toBe(size);
    expect(bad).toBe(0);
    expect(released).toBeGreaterThan(0);
  });
});
