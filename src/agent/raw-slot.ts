/**
 * One TUNNEL_PROTOCOL=mosn connection slot to one server (SPEC.md §7): dial → MOSN InitInfo → status 1 → a new
 * connection to the one service → the two spliced byte for byte (transport/splice.ts), bytes that came behind the
 * response first → (either side closes) → dial again. This is what a MOSN agent's data connection does with its
 * hosting listener; unlike MOSN's, a refused handshake backs off and retries instead of leaving a dead slot.
 * States as ConnectionSlot's: dialing → handshaking → ready → (draining) → backoff | stopped.
 */
import type { ServiceConfig } from "../config.ts";
import { formatHostPort } from "../config-parse.ts";
import type { ConnectionInitResponse } from "../protocol/handshake.ts";
import { HandshakeStatus, handshakeStatusName } from "../protocol/constants.ts";
import { connect, type NetSocket, type SocketOwner } from "../transport/tcp.ts";
import { Splice, type SpliceResult } from "../transport/splice.ts";
import { channelBinding } from "../transport/tls.ts";
import { TunnelError, isTunnelError, type ErrorCode } from "../errors.ts";
import { logger } from "../log.ts";
import { Backoff } from "./backoff.ts";
import { AgentHandshake, encodeMosnInitInfo, type HandshakeOutcome } from "./handshake.ts";
import type { SlotContext, SlotState } from "./connection.ts";

const log = logger("agent");

/** Up this long (ms), or having carried a byte, a connection that closes is dialled again at once. */
const HEALTHY_RESET_MS = 10_000;

/** Holds a socket's bytes (pausing it, when known) until the splice takes it over. */
class Holding implements SocketOwner {
  readonly chunks: Uint8Array[] = [];
  gone = false;
  constructor(private readonly socket: NetSocket | null) {}
  onData(chunk: Uint8Array): void {
    this.chunks.push(chunk);
    this.socket?.pause();
  }
  onDrain(): void {}
  onEnd(): void {
    this.gone = true;
    this.socket?.end();
  }
  onClose(): void {
    this.gone = true;
  }
}

/** One raw (MOSN) connection slot. Fields match ConnectionSlot's where the admin endpoint reads them. */
export class RawSlot implements HandshakeOutcome {
  state: SlotState = "dialing";
  readonly role = "data";
  /** A raw connection has no session (and MOSN's server names no connection). */
  readonly session = null;
  readonly connectionId = null;
  lastStatus: number | null = null;
  reconnects = 0;
  /** Local `ip:port` of the tunnel connection while it is up (what a GracefulClose names), else null. */
  localAddress: string | null = null;
  /** Resolves once the slot is stopped and its connection is closed. */
  readonly closed: Promise<void>;
  private markClosed!: () => void;
  private readonly backoff: Backoff;
  private splice: Splice | null = null;
  private tunnel: NetSocket | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private stopped = false;
  private failures = 0;
  private readyAt = 0;

  constructor(
    private readonly ctx: SlotContext,
    readonly serverHost: string,
    readonly serverPort: number,
    readonly slot: number,
    private readonly service: ServiceConfig,
  ) {
    this.backoff = new Backoff(ctx.config.reconnectBaseMs, ctx.config.reconnectMaxMs, ctx.random);
    this.closed = new Promise((resolve) => (this.markClosed = resolve));
  }

  /** Address label for logs. */
  get server(): string {
    return `${this.serverHost}:${this.serverPort}`;
  }

  /** 1 while the spliced connection has carried bytes (a visitor is, or was, on it), else 0. */
  get activeStreams(): number {
    const s = this.splice;
    return s !== null && s.aToB + s.bToA > 0 ? 1 : 0;
  }

  start(): void {
    void this.dial();
  }

  /**
   * Stops the slot: no more dials. Graceful: the connection up now lives on until either side closes it (the
   * caller bounds the wait); otherwise it is closed at once. `closed` resolves after either.
   */
  stop(graceful: boolean): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.tunnel === null) return this.setStopped();
    if (graceful) {
      this.state = "draining";
      return;
    }
    if (this.splice !== null) this.splice.close(false);
    else this.tunnel.terminate();
  }

  private setStopped(): void {
    this.state = "stopped";
    this.markClosed();
  }

  private async dial(): Promise<void> {
    if (this.stopped) return this.setStopped();
    this.state = "dialing";
    const { config } = this.ctx;
    const hs = new AgentHandshake(this);
    let socket: NetSocket;
    try {
      socket = await connect({ host: this.serverHost, port: this.serverPort, tls: this.ctx.tls, timeoutMs: config.connectTimeoutMs, owner: hs });
    } catch (e) {
      const code = isTunnelError(e, "ERR_TLS") ? "ERR_TLS" : undefined;
      return this.retry(`dial failed: ${(e as Error).message}`, false, code);
    }
    if (this.stopped) {
      socket.terminate();
      return this.setStopped();
    }
    this.state = "handshaking";
    // Known from now on: a GracefulClose sent while the handshake is in flight lists it too (the server may have
    // registered it already).
    this.localAddress = formatHostPort({ host: socket.localAddress, port: socket.localPort ?? 0 });
    hs.begin(socket, config.connectTimeoutMs);
    const initInfo = encodeMosnInitInfo(config, channelBinding(socket, this.ctx.tls !== undefined));
    if (socket.write(initInfo) !== initInfo.byteLength) hs.abort(new TunnelError("ERR_HANDSHAKE_CLOSED", "could not send the handshake"));
  }

  /** The server answered: on status 1 the service is dialled and spliced to this connection. */
  handshakeDone(socket: NetSocket, response: ConnectionInitResponse, rest: Uint8Array): void {
    this.lastStatus = response.status;
    this.ctx.stats.handshake(response.status);
    if (this.stopped) {
      socket.end();
      return this.setStopped();
    }
    if (response.status !== HandshakeStatus.SUCCESS) {
      socket.end();
      const auth = response.status === HandshakeStatus.AUTH_FAILED || response.status === HandshakeStatus.VALIDATOR_NOT_FOUND;
      const err = new TunnelError("ERR_HANDSHAKE_REFUSED", `handshake refused with status ${response.status} (${handshakeStatusName(response.status)})`);
      return this.retry(err.message, auth, err.code);
    }
    const holding = new Holding(socket);
    socket.data.owner = holding;
    this.tunnel = socket;
    const { service } = this;
    const early = new Holding(null); // a service that speaks first (a banner) before the splice takes over
    connect({ host: service.host, port: service.port, timeoutMs: this.ctx.config.connectTimeoutMs, owner: early }).then(
      (target) => this.spliceTo(socket, target, holding, early, rest),
      (e: unknown) => {
        log.warn("service dial failed: closing the tunnel connection", { server: this.server, slot: this.slot, service: service.name, error: (e as Error).message });
        socket.terminate();
        this.connectionGone();
        this.retry(`service ${service.name} dial failed`, false, isTunnelError(e, "ERR_CONNECT_TIMEOUT") ? "ERR_CONNECT_TIMEOUT" : "ERR_CONNECT_REFUSED");
      },
    );
  }

  handshakeFailed(error: TunnelError): void {
    this.ctx.stats.handshake(null);
    this.retry(`handshake failed: ${error.message}`, false);
  }

  /** The service answered: splice it to the tunnel connection (a = tunnel, b = service). */
  private spliceTo(tunnel: NetSocket, target: NetSocket, holding: Holding, early: Holding, rest: Uint8Array): void {
    if (holding.gone || early.gone || this.stopped) {
      target.terminate();
      if (!holding.gone) tunnel.end();
      this.connectionGone();
      return this.stopped ? this.setStopped() : this.retry("connection closed before the service answered", false);
    }
    const first = [rest.slice(), ...holding.chunks];
    const splice = new Splice(tunnel, target, (r) => this.spliceDone(r), { toB: first, toA: early.chunks });
    this.splice = splice;
    tunnel.data.owner = splice.a;
    target.data.owner = splice.b;
    tunnel.resume();
    this.state = "ready";
    this.readyAt = performance.now();
    this.failures = 0;
    log.info("connected", { server: this.server, protocol: "mosn", slot: this.slot, local: this.localAddress, service: this.service.name });
  }

  private spliceDone(r: SpliceResult): void {
    this.splice = null;
    this.connectionGone();
    if (r.aToB + r.bToA > 0) this.ctx.stats.rawEnded(this.service.name, r.aToB, r.bToA);
    log.debug("connection closed", { server: this.server, slot: this.slot, how: r.how, toService: r.aToB, fromService: r.bToA });
    if (this.stopped) return this.setStopped();
    this.reconnects++;
    this.ctx.stats.reconnect(this.server);
    // A connection that carried a visitor, or lived long, closed as MOSN's do: dial again now.
    if (r.aToB + r.bToA > 0 || performance.now() - this.readyAt >= HEALTHY_RESET_MS) {
      this.backoff.reset();
      void this.dial();
      return;
    }
    this.retry(`connection closed (${r.how}) without carrying a byte`, false);
  }

  private connectionGone(): void {
    this.tunnel = null;
    this.localAddress = null;
  }

  private retry(reason: string, authFailure: boolean, code?: ErrorCode): void {
    this.localAddress = null;
    if (this.stopped) return this.setStopped();
    this.failures++;
    const limit = this.ctx.config.connectRetryTimes;
    if (limit >= 0 && this.failures > limit) {
      log.error("giving up on server after retries", { server: this.server, slot: this.slot, reason, retries: limit });
      this.stopped = true;
      return this.setStopped();
    }
    const delay = authFailure ? this.backoff.max() : this.backoff.next();
    const fields = { server: this.server, slot: this.slot, reason, retryInMs: delay, ...(code ? { code } : {}) };
    if (code === "ERR_TLS") log.error("TLS with the server failed", fields);
    else if (authFailure) log.error("handshake refused", fields);
    else log.warn("connection down", fields);
    this.state = "backoff";
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.dial();
    }, delay);
  }
}
