/**
 * A UDP flood from many source addresses, in its own process (so that it does not share the tunnel's event loop):
 * `bun scripts/lib/udp-flood.ts <port> <addresses>` sends 64-byte datagrams to 127.0.0.1:<port> from 127.1.x.y
 * (x.y counting up to <addresses>), 500 sockets at a time, each bound to port 0 and sending two datagrams, round
 * after round until killed. Prints "addresses N" once the first round went out. Used by
 * test/security/udp-flood.test.ts and the bench's UDP stage (scripts/bench/udp.ts).
 */
if (import.meta.main) {
  const port = Number(process.argv[2]);
  const addresses = Number(process.argv[3] ?? 10_000);
  const payload = new Uint8Array(64).fill(0x55);
  let round = 0;
  for (;;) {
    for (let base = 0; base < addresses; base += 500) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(500, addresses - base) }, (_, k) =>
          Bun.udpSocket({ hostname: `127.1.${((base + k) >> 8) & 255}.${(base + k) & 255}` })),
      );
      for (const s of batch) {
        try {
          s.send(payload, port, "127.0.0.1");
          s.send(payload, port, "127.0.0.1");
        } catch {
          // ECONNREFUSED: the first datagram found nothing listening (the unrouted reference); go on flooding
        }
      }
      for (const s of batch) s.close();
      await Bun.sleep(0);
    }
    if (round++ === 0) console.log(`addresses ${addresses}`);
  }
}
