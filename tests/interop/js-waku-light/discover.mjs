// A js-waku light node (@waku/sdk 0.0.36) given only a tree URL and a DNS server: js-waku's
// own DNS discovery walks the tree (verifying the root's signature), then the light node dials
// a discovered node over the WebSocket address its ENR announces and reports the metadata
// handshake, as JSON lines on stdout.
//   node discover.mjs <enrtree://…> <dns ip:port> <cluster id>
import { Resolver } from "node:dns/promises";
import { createLightNode } from "@waku/sdk";
import { DnsNodeDiscovery } from "@waku/discovery";

const [tree, server, clusterArg] = process.argv.slice(2);
const clusterId = Number(clusterArg);
const out = (event) => process.stdout.write(JSON.stringify(event) + "\n");
setTimeout(() => { out({ event: "timeout" }); process.exit(1); }, 60_000).unref();

// js-waku resolves over DNS-over-HTTPS by default; a client on a private network passes its own
// DnsClient. This one asks the given server over plain DNS, as any stub resolver would.
const resolver = new Resolver({ timeout: 2000, tries: 3 });
resolver.setServers([server]);
const dnsClient = {
  async resolveTXT(domain) {
    const records = await resolver.resolveTxt(domain);
    return records.map((chunks) => chunks.join(""));
  },
};

try {
  const discovery = new DnsNodeDiscovery(dnsClient);
  const found = [];
  for await (const enr of discovery.getNextPeer([tree])) {
    found.push(enr);
  }
  const websocket = found.flatMap((enr) =>
    enr.getFullMultiaddrs().filter((m) => m.toString().includes("/ws")));
  out({ event: "discovered", records: found.length, websocket: websocket.map(String) });
  if (websocket.length === 0) process.exit(1);

  const node = await createLightNode({
    defaultBootstrap: false,
    networkConfig: { clusterId, numShardsInCluster: 8 },
    discovery: { dns: false, peerExchange: false, peerCache: false },
    libp2p: { filterMultiaddrs: false },
  });
  await node.start();
  const target = websocket[Math.floor(Math.random() * websocket.length)];
  const peerId = target.getPeerId();
  await node.libp2p.dial(target);
  const metadata = node.libp2p.services.metadata;
  let recorded;
  for (let i = 0; i < 100 && !recorded; i++) {
    recorded = metadata.handshakesConfirmed.get(peerId);
    if (!recorded) await new Promise((resolve) => setTimeout(resolve, 100));
  }
  out({
    event: "handshake",
    dialled: String(target),
    recorded: recorded ? { clusterId: recorded.clusterId, shards: recorded.shards } : null,
  });
  await node.stop();
  process.exit(0);
} catch (error) {
  out({ event: "error", message: String(error?.stack ?? error) });
  process.exit(1);
}
