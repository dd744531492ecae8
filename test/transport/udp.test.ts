/**
 * UDP sockets (src/transport/udp.ts): a route's socket asks for a 4 MiB receive buffer (Bun.udpSocket has no option
 * for it), capped by the kernel at net.core.rmem_max and doubled as Linux counts it.
 */
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { bindUdp, ROUTE_RECEIVE_BUFFER_BYTES } from "../../src/transport/udp.ts";

const rmemMax = Number(readFileSync("/proc/sys/net/core/rmem_max", "utf8").trim());

test("a route socket's receive buffer is the larger one asked for, as far as net.core.rmem_max allows", async () => {
  const route = await bindUdp({ host: "127.0.0.1", port: 0, onDatagram() {} });
  try {
    expect(route.receiveBufferBytes).toBe(2 * Math.min(ROUTE_RECEIVE_BUFFER_BYTES, rmemMax));
    const small = await bindUdp({ host: "127.0.0.1", port: 0, receiveBufferBytes: 65_536, onDatagram() {} });
    expect(small.receiveBufferBytes).toBe(2 * 65_536);
    small.close();
  } finally {
    route.close();
  }
});

test("a burst larger than the kernel's default buffer arrives whole while the event loop is busy", async () => {
  // 3,000 datagrams of 1,400 bytes (4.2 MB, about 20 times the default 208 KiB) sent while the receiver's loop is
  // held: with the default buffer most would be dropped by the kernel before it reads.
  if (rmemMax < ROUTE_RECEIVE_BUFFER_BYTES) return; // this kernel caps the buffer lower: nothing to show
  let got = 0;
  const route = await bindUdp({ host: "127.0.0.1", port: 0, onDatagram: () => void got++ });
  const sender = await Bun.udpSocket({ hostname: "127.0.0.1" });
  const d = new Uint8Array(1400).fill(3);
  const packets: (Uint8Array | number | string)[] = [];
  for (let i = 0; i < 100; i++) packets.push(d, route.port, "127.0.0.1");
  for (let i = 0; i < 30; i++) sender.sendMany(packets); // synchronous: the receiver reads nothing meanwhile
  const deadline = performance.now() + 5_000;
  while (got < 3_000 && performance.now() < deadline) await Bun.sleep(5);
  expect(got).toBe(3_000);
  sender.close();
  route.close();
});
