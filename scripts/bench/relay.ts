/**
 * A minimal TCP relay for the benchmark's reference path (`npm run bench -- --ceiling`): no framing, no
 * multiplexing, one outgoing connection per incoming one, backpressure both ways (pause the source while the
 * destination has a queue), FIN forwarded after the queue drained, a read's memory released once written whole
 * (as the tunnel does). Two of these in a chain have the same process count and socket hops as server + agent, so
 * their figures bound what any tunnel built of two Bun processes can reach on this machine.
 *
 *   bun scripts/bench/relay.ts LISTEN_PORT:TARGET_PORT [...]   (loopback; prints "ready" when listening)
 */
import type { Socket } from "bun";
import { flushQueue, writeOrQueue } from "../../test/support/write-queue.ts";
import { releaseChunk } from "../../src/transport/read-buffer.ts";

interface Side {
  peer: Socket<Side> | null;
  /** Bytes for this socket not yet accepted by the kernel. */
  queue: Uint8Array[];
  /** The other side sent FIN: shut this one down once its queue is empty. */
  finPending: boolean;
  closed: boolean;
  /** Incoming side only: bytes (and FIN) that arrived before the outgoing connection was up. */
  early: Uint8Array[];
  earlyEnd: boolean;
}

const newSide = (): Side => ({ peer: null, queue: [], finPending: false, closed: false, early: [], earlyEnd: false });

function send(dst: Socket<Side>, src: Socket<Side>, data: Uint8Array): void {
  // Written whole: free the read now, as the tunnel does (src/transport/read-buffer.ts).
  if (writeOrQueue(dst, dst.data.queue, data)) releaseChunk(data);
  else src.pause();
}

function drain(s: Socket<Side>): void {
  const st = s.data;
  if (!flushQueue(s, st.queue)) return;
  if (st.finPending) {
    st.finPending = false;
    s.shutdown();
  }
  st.peer?.resume();
}

function peerEnded(s: Socket<Side>): void {
  // s's peer finished sending: FIN to s after its queue is out.
  if (s.data.closed) return;
  if (s.data.queue.length === 0) s.shutdown();
  else s.data.finPending = true;
}

const handlers = {
  binaryType: "uint8array" as const,
  data(s: Socket<Side>, chunk: Uint8Array) {
    const peer = s.data.peer;
    if (peer === null) {
      // Outgoing connection not up yet: hold (the visitor side is paused meanwhile).
      s.data.early.push(chunk);
      s.pause();
      return;
    }
    send(peer, s, chunk);
  },
  drain,
  end(s: Socket<Side>) {
    const peer = s.data.peer;
    if (peer) peerEnded(peer);
    else s.data.earlyEnd = true;
  },
  close(s: Socket<Side>, err?: Error) {
    s.data.closed = true;
    const peer = s.data.peer;
    if (peer === null || peer.data.closed) return;
    if (err) peer.terminate();
    else peerEnded(peer);
  },
  error() {},
};

for (const spec of process.argv.slice(2)) {
  const [listenPort, targetPort] = spec.split(":").map(Number) as [number, number];
  Bun.listen<Side>({
    hostname: "127.0.0.1",
    port: listenPort,
    allowHalfOpen: true,
    socket: {
      ...handlers,
      open(visitor) {
        visitor.data = newSide();
        visitor.setNoDelay(true);
        visitor.pause();
        Bun.connect<Side>({
          hostname: "127.0.0.1",
          port: targetPort,
          allowHalfOpen: true,
          data: newSide(),
          socket: { ...handlers, connectError: () => visitor.terminate() },
        }).then(
          (out) => {
            out.setNoDelay(true);
            out.data.peer = visitor;
            visitor.data.peer = out;
            for (const c of visitor.data.early.splice(0)) send(out, visitor, c);
            if (visitor.data.earlyEnd) peerEnded(out);
            if (visitor.data.closed) out.end();
            else if (out.data.queue.length === 0) visitor.resume();
          },
          () => visitor.terminate(),
        );
      },
    },
  });
}
console.log("ready");
