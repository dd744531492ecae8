/**
 * A target whose accept can be held back: a discard listener in a child process (this file, run as a script) that
 * the test stops with SIGSTOP. The kernel then completes connections only until the listener's accept queue is full;
 * {@link StalledTarget.stall} fills that queue with connections of its own, so every later connect (the agent's
 * dials) waits: its SYN is dropped and retransmitted (Linux: 1 s, then 3 s after the first). After `release()`
 * (SIGCONT) the queued connections are accepted and the waiting dials complete at their next retransmission.
 */
import type { Socket, Subprocess } from "bun";

/** A discard target that can stop accepting. */
export interface StalledTarget {
  readonly port: number;
  /** Stops accepting and fills the accept queue; resolves once a connect is seen to wait. */
  stall(): Promise<void>;
  /** Accepts again (the dials waiting meanwhile complete at their next SYN retransmission). */
  release(): void;
  /** Bytes the target has read in all, as last reported (it reports every 100 ms). */
  readonly received: number;
  /** Connections the target has accepted, as last reported. */
  readonly accepted: number;
  stop(): Promise<void>;
}

/** Spawns the child and learns its port. */
export async function startStalledTarget(): Promise<StalledTarget> {
  const proc: Subprocess<"ignore", "pipe", "inherit"> = Bun.spawn([process.execPath, import.meta.path, "--child"], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "inherit",
  });
  let port = 0;
  let received = 0;
  let accepted = 0;
  let portKnown!: () => void;
  const portP = new Promise<void>((r) => (portKnown = r));
  void (async () => {
    const decoder = new TextDecoder();
    let buf = "";
    for await (const chunk of proc.stdout) {
      buf += decoder.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const msg = JSON.parse(buf.slice(0, nl)) as { port?: number; received?: number; accepted?: number };
        buf = buf.slice(nl + 1);
        if (msg.port !== undefined) {
          port = msg.port;
          portKnown();
        }
        if (msg.received !== undefined) received = msg.received;
        if (msg.accepted !== undefined) accepted = msg.accepted;
      }
    }
  })();
  await portP;
  const fillers: Socket<undefined>[] = [];
  let stopped = false;
  /** Fillers are closed on release; one that connects only after its stall's release is closed at once. */
  let stall = 0;
  const closeFillers = () => {
    for (const s of fillers.splice(0)) s.terminate();
  };
  return {
    port,
    get received() {
      return received;
    },
    get accepted() {
      return accepted;
    },
    async stall() {
      proc.kill("SIGSTOP");
      stopped = true;
      const mine = ++stall;
      // Batches of connects until one of a batch does not complete: the accept queue is full from then on.
      for (let batch = 0; batch < 64; batch++) {
        let done = 0;
        // A filler still waiting when the target is stopped for good fails to connect: expected, not an error.
        const conns = Array.from({ length: 64 }, () =>
          Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {}, open: () => void done++, connectError() {} } }).then(
            (s) => void (mine === stall && stopped ? fillers.push(s) : s.terminate()),
            () => {},
          ),
        );
        const deadline = performance.now() + 300;
        while (done < conns.length && performance.now() < deadline) await new Promise((r) => setTimeout(r, 5));
        if (done < conns.length) return;
      }
      throw new Error("the target's accept queue never filled");
    },
    release() {
      if (stopped) proc.kill("SIGCONT");
      stopped = false;
      closeFillers();
    },
    async stop() {
      if (stopped) proc.kill("SIGCONT");
      stopped = false;
      closeFillers();
      proc.kill();
      await proc.exited;
    },
  };
}

/** The child: a discard listener that reports its port, then the bytes read and connections accepted. */
function child(): void {
  let received = 0;
  let accepted = 0;
  let last = "";
  const l = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open: () => void accepted++,
      data: (_s, d) => void (received += d.byteLength),
    },
  });
  console.log(JSON.stringify({ port: l.port }));
  setInterval(() => {
    const line = JSON.stringify({ received, accepted });
    if (line !== last) console.log(line);
    last = line;
  }, 100);
}

if (import.meta.main && process.argv.includes("--child")) child();
