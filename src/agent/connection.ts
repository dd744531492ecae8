/**
 * One agent connection slot to one server: dial → handshake → session → (lost) → backoff → dial again.
 * Lifecycle states: dialing → handshaking → ready → draining → closed. Each slot runs on its own, so an unreachable
 * server never blocks the others (MOSN's serial Start, mosn-tunnel.md §6.8).
 */
import type { ConnectionInitResponse } from "../protocol/handshake.ts";
import { HandshakeStatus, WireCode, handshakeStatusName } from "../protocol/constants.ts";
import type { ControlMessage } from "../protocol/control.ts";
import { Session } from "../mux/session.ts";
import { sessionOptions } from "../mux/session-options.ts";
import type { TunnelSocket } from "../transport/ws-socket.ts";
import { channelBinding } from "../transport/tls.ts";
import { TunnelError, type ErrorCode } from "../errors.ts";
import { logger } from "../log.ts";
import { Backoff } from "./backoff.ts";
import { AgentHandshake, encodeInitInfo, type HandshakeOutcome } from "./handshake.ts";
import { dialFailureCode, dialSlot, serverLabel, type ServerVia, type SlotContext } from "./server-dial.ts";

export { serverLabel, type ServerVia, type SlotContext } from "./server-dial.ts";

const log = logger("agent");

/** A connection slot's state. */
export type SlotState = "dialing" | "handshaking" | "ready" | "draining" | "backoff" | "stopped";

/** Healthy this long (ms) → the backoff starts from the base again. */
const HEALTHY_RESET_MS = 10_000;
/** Connections a slot keeps draining after the server's GOAWAY (each finishing its streams) before closing the oldest. */
const MAX_DRAINING_PER_SLOT = 2;

/** One data connection slot to one server address. */
export class ConnectionSlot implements HandshakeOutcome {
  state: SlotState = "dialing";
  session: Session | null = null;
  connectionId: string | null = null;
  /** Status of the last refused handshake, for logs and status. */
  lastStatus: number | null = null;
  reconnects = 0;
  /** Aside slot: the server acknowledged that a data connection drained. */
  onDrained: ((connectionId: string) => void) | null = null;
  /** Resolves once the slot is stopped and its connection is closed. */
  readonly closed: Promise<void>;
  private markClosed!: () => void;
  /** Sessions this slot replaced after a GOAWAY, still finishing their streams. */
  private readonly oldSessions = new Set<Session>();
  private readonly backoff: Backoff;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private stopped = false;
  private failures = 0;
  private readyAt = 0;

  constructor(
    private readonly ctx: SlotContext,
    readonly serverHost: string,
    readonly serverPort: number,
    readonly slot: number,
    readonly role: "data" | "aside" = "data",
    readonly via: ServerVia = {},
  ) {
    this.backoff = new Backoff(ctx.config.reconnectBaseMs, ctx.config.reconnectMaxMs, ctx.random);
    this.closed = new Promise((resolve) => (this.markClosed = resolve));
  }

  /** Address label for logs. */
  get server(): string {
    return serverLabel(this.serverHost, this.serverPort, this.via.ws);
  }

  /** Starts the dial loop. */
  start(): void {
    void this.dial();
  }

  /**
   * Stops the slot: no reconnects. With graceful, sends GOAWAY and lets its streams finish (the connection closes
   * when they are done; the caller bounds the wait); otherwise closes at once. `closed` resolves after either.
   */
  stop(graceful: boolean, code: number = WireCode.SHUTTING_DOWN): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (!graceful) for (const old of this.oldSessions) old.close();
    const s = this.session;
    if (s === null || s.closed) {
      this.setStopped();
      return;
    }
    if (graceful) {
      // GOAWAY, then wait for the server to close the connection once it stopped routing here and the last stream
      // ended (closing at once could drop an OPEN already in flight); the caller bounds the wait.
      this.state = "draining";
      s.goAway(code);
      if (s.peerGoneAway && s.activeStreams === 0) s.close();
    } else {
      s.close();
    }
  }

  /** Sends a CONTROL message on this (aside) connection; false if it is not connected. */
  sendControl(msg: ControlMessage): boolean {
    const s = this.session;
    if (s === null || s.closed || this.state !== "ready") return false;
    s.sendControl(msg);
    return true;
  }

  private setStopped(): void {
    if (this.oldSessions.size > 0) return; // closed once the replaced sessions are gone too (see replaceDraining)
    this.state = "stopped";
    this.markClosed();
  }

  /** Open streams on this slot's session. */
  get activeStreams(): number {
    return this.session?.activeStreams ?? 0;
  }

  private async dial(): Promise<void> {
    if (this.stopped) return this.setStopped();
    this.state = "dialing";
    const { config } = this.ctx;
    const hs = new AgentHandshake(this);
    let socket: TunnelSocket;
    try {
      socket = await dialSlot(this.ctx, this.serverHost, this.serverPort, this.via, hs);
    } catch (e) {
      // A TLS failure (certificate from another CA, wrong name, expired...) and a refused proxy password are
      // logged as errors with their code; a proxy or WebSocket refusal as a warning with its code.
      this.retry(`dial failed: ${(e as Error).message}`, false, undefined, dialFailureCode(e));
      return;
    }
    if (this.stopped) {
      socket.terminate();
      this.setStopped();
      return;
    }
    this.state = "handshaking";
    hs.begin(socket, config.connectTimeoutMs);
    const binding = channelBinding(socket, this.ctx.tls !== undefined);
    const initInfo = encodeInitInfo(config, { role: this.role, slot: this.slot, instance: this.ctx.instance }, binding);
    // A fresh connection takes the small InitInfo whole; anything less is a broken connection.
    if (socket.write(initInfo) !== initInfo.byteLength) hs.abort(new TunnelError("ERR_HANDSHAKE_CLOSED", "could not send the handshake"));
  }

  /** Called by the handshake owner with the server's answer. */
  handshakeDone(socket: TunnelSocket, response: ConnectionInitResponse, rest: Uint8Array): void {
    if (this.stopped) {
      socket.end();
      return this.setStopped();
    }
    if (response.status !== HandshakeStatus.SUCCESS || !response.backchannel) {
      this.lastStatus = response.status;
      this.ctx.stats.handshake(response.status);
      socket.end();
      const auth = response.status === HandshakeStatus.AUTH_FAILED || response.status === HandshakeStatus.VALIDATOR_NOT_FOUND;
      const why = `handshake refused with status ${response.status} (${handshakeStatusName(response.status)})`;
      const err = new TunnelError("ERR_HANDSHAKE_REFUSED", why);
      this.retry(err.message, auth, response.retry_after_ms, err.code);
      return;
    }
    const { config } = this.ctx;
    const session = new Session(
      socket,
      sessionOptions("agent", this.role, config, response.backchannel),
      {
        onOpen: (stream) => {
          this.ctx.stats.streamOpened(stream);
          this.ctx.services.serve(stream);
        },
        onRefused: (reason) => {
          if (this.ctx.stats.refused[reason]++ === 0) log.warn("streams refused (REFUSED_STREAM; counted, logged once)", { server: this.server, reason });
        },
        onControl: (msg) => {
          if (msg.type === "drained") this.onDrained?.(msg.connection_id);
        },
        onStreamEnd: (stream, code) => {
          this.ctx.stats.streamEnded(stream, code);
          log.debug("stream closed", { streamId: stream.id, service: stream.label, code, bytesIn: stream.bytesIn, bytesOut: stream.bytesOut });
          // After the server's GOAWAY no OPEN can follow (frames are ordered): close once idle. After our own
          // GOAWAY the server closes the connection itself once it saw it and the last stream ended.
          if (session.peerGoneAway && session.activeStreams === 0) session.close();
        },
        onGoAway: () => {
          // The server will open no more streams here: replace this connection now, close it once idle.
          if (session.activeStreams === 0) session.close();
          else if (!this.stopped) this.replaceDraining(session);
        },
        onRtt: (ms) => void (this.role === "data" && this.ctx.stats.rtt(this.server, ms)),
        onClose: (error) => this.sessionClosed(session, error),
      },
    );
    this.session = session;
    this.connectionId = response.connection_id ?? null;
    this.state = "ready";
    this.readyAt = performance.now();
    this.failures = 0;
    this.lastStatus = HandshakeStatus.SUCCESS;
    this.ctx.stats.handshake(HandshakeStatus.SUCCESS);
    socket.data.owner = session;
    log.info("connected", { server: this.server, role: this.role, slot: this.slot, connectionId: this.connectionId });
    if (rest.byteLength > 0) session.onData(rest);
  }

  /** Handshake failed before a response (closed, timed out, garbage). */
  handshakeFailed(error: TunnelError): void {
    this.ctx.stats.handshake(null);
    this.retry(`handshake failed: ${error.message}`, false);
  }

  /**
   * The server sent GOAWAY on a connection with streams: they finish on it while this slot dials a replacement. A
   * connection that lived less than HEALTHY_RESET_MS is replaced after the backoff delay, not at once (a server that
   * sends GOAWAY after every handshake must not make the agent redial without limit), and at most
   * MAX_DRAINING_PER_SLOT replaced connections are kept: past that the oldest is closed.
   */
  private replaceDraining(old: Session): void {
    if (this.session !== old) return;
    this.session = null;
    this.oldSessions.add(old);
    void old.gone.then(() => {
      this.oldSessions.delete(old);
      if (this.stopped && this.session === null && this.state !== "dialing" && this.state !== "handshaking") this.setStopped();
    });
    if (this.oldSessions.size > MAX_DRAINING_PER_SLOT) {
      const oldest = this.oldSessions.values().next().value as Session;
      log.warn("too many draining connections on one slot: closing the oldest", { server: this.server, slot: this.slot, streams: oldest.activeStreams });
      oldest.close();
    }
    if (performance.now() - this.readyAt >= HEALTHY_RESET_MS) {
      this.backoff.reset();
      this.state = "dialing";
      void this.dial();
      return;
    }
    this.schedule(this.backoff.next());
  }

  private sessionClosed(session: Session, error?: TunnelError): void {
    if (this.session !== session) return; // an old, replaced session finished draining
    this.session = null;
    log.debug("connection closed", { server: this.server, role: this.role, slot: this.slot, connectionId: this.connectionId, reason: error?.message ?? "closed" });
    this.connectionId = null;
    if (this.stopped) {
      // Stopped only once the last staged frames were written and the socket is gone.
      void session.gone.then(() => this.setStopped());
      return;
    }
    if (performance.now() - this.readyAt >= HEALTHY_RESET_MS) this.backoff.reset();
    this.reconnects++;
    this.ctx.stats.reconnect(this.server);
    this.retry(`connection lost: ${error?.message ?? "closed"}`, false);
  }

  private retry(reason: string, authFailure: boolean, retryAfterMs?: number, code?: ErrorCode): void {
    if (this.stopped) {
      this.setStopped();
      return;
    }
    this.failures++;
    const limit = this.ctx.config.connectRetryTimes;
    if (limit >= 0 && this.failures > limit) {
      log.error("giving up on server after retries", { server: this.server, slot: this.slot, reason, retries: limit });
      this.stopped = true;
      this.setStopped();
      return;
    }
    // A retry time from the server (SERVER_BUSY) is honoured as given (with jitter) instead of the backoff.
    const hinted = retryAfterMs !== undefined && retryAfterMs > 0 && !authFailure;
    const delay = hinted ? this.backoff.hinted(retryAfterMs) : authFailure ? this.backoff.max() : this.backoff.next();
    const fields = { server: this.server, slot: this.slot, reason, retryInMs: delay, ...(code ? { code } : {}) };
    if (code === "ERR_TLS") log.error("TLS with the server failed", fields);
    else if (code === "ERR_PROXY_AUTH") log.error("the proxy refused the proxy credentials", fields);
    else if (authFailure) log.error("handshake refused", fields);
    else log.warn("connection down", fields);
    this.schedule(delay);
  }

  /** Dials again after `delayMs` (state `backoff` meanwhile). */
  private schedule(delayMs: number): void {
    this.state = "backoff";
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.dial();
    }, delayMs);
  }
}
