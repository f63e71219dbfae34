// A js-waku light node (@waku/sdk 0.0.36) querying our node's store with queryGenerator, forward
// and backward with a small page size. Prints each direction's pages of message hashes (hex,
// computed by js-waku) as JSON lines on stdout.
//   node store.mjs <multiaddr of our node> <content topic> <page size>
import { createLightNode, Protocols } from "@waku/sdk";
import { messageHashStr } from "@waku/core";
import { multiaddr } from "@multiformats/multiaddr";

const [address, contentTopic, pageSize] = process.argv.slice(2);
const out = (event) => process.stdout.write(JSON.stringify(event) + "\n");
setTimeout(() => { out({ event: "timeout" }); process.exit(1); }, 90_000).unref();

try {
  const node = await createLightNode({
    defaultBootstrap: false,
    networkConfig: { clusterId: 0, numShardsInCluster: 1 },
    discovery: { dns: false, peerExchange: false, peerCache: false },
    libp2p: { filterMultiaddrs: false },
  });
  await node.start();
  const target = multiaddr(address);
  await node.libp2p.dial(target);
  await node.waitForPeers([Protocols.Store], 30_000);
  // Wait until identify has listed our store protocol (js-waku picks store peers from it).
  for (let i = 0; i < 200; i++) {
    const peer = node.libp2p.getPeers().find((p) => p.toString() === target.getPeerId());
    const protocols = peer ? (await node.libp2p.peerStore.get(peer)).protocols : [];
    if (protocols.includes("/vac/waku/store-query/3.0.0")) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const decoder = node.createDecoder({ contentTopic });
  for (const forward of [true, false]) {
    const pages = [];
    for await (const page of node.store.queryGenerator([decoder], {
      paginationForward: forward,
      paginationLimit: Number(pageSize),
    })) {
      const messages = (await Promise.all(page)).filter(Boolean);
      pages.push(messages.map((m) => ({
        // m.timestamp is a millisecond Date: hash the wire message to keep nanoseconds.
        hash: messageHashStr(m.pubsubTopic, m.proto),
        hashFromDecoded: messageHashStr(m.pubsubTopic, m),
        payload: new TextDecoder().decode(m.payload),
      })));
    }
    out({ event: "pages", forward, pages });
  }
  await node.stop();
  process.exit(0);
} catch (error) {
  out({ event: "error", message: String(error?.stack ?? error) });
  process.exit(1);
}
