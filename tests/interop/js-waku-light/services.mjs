// A js-waku light node (@waku/sdk 0.0.36) using our node as its service node: it subscribes
// with filter, lightpushes one message, and reports the lightpush result and every message
// the filter delivers, as JSON lines on stdout.
//   node services.mjs <multiaddr of our node> <content topic>
import { createLightNode, Protocols } from "@waku/sdk";
import { multiaddr } from "@multiformats/multiaddr";

const [address, contentTopic] = process.argv.slice(2);
const out = (event) => process.stdout.write(JSON.stringify(event) + "\n");
setTimeout(() => { out({ event: "timeout" }); process.exit(1); }, 90_000).unref();

try {
  const node = await createLightNode({
    defaultBootstrap: false,
    networkConfig: { clusterId: 0, numShardsInCluster: 1 },
    discovery: { dns: false, peerExchange: false, peerCache: false },
    numPeersToUse: 1,
    libp2p: { filterMultiaddrs: false },
  });
  await node.start();
  const target = multiaddr(address);
  await node.libp2p.dial(target);
  await node.waitForPeers([Protocols.LightPush, Protocols.Filter], 30_000);
  // waitForPeers can resolve before identify has told js-waku what we serve: wait for the
  // peer store to list both service protocols (js-waku picks service peers from it).
  const wanted = ["/vac/waku/filter-subscribe/2.0.0-beta1", "/vac/waku/lightpush/3.0.0"];
  for (let i = 0; i < 200; i++) {
    const peer = node.libp2p.getPeers().find((p) => p.toString() === target.getPeerId());
    const protocols = peer ? (await node.libp2p.peerStore.get(peer)).protocols : [];
    if (wanted.every((w) => protocols.includes(w))) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }

  const decoder = node.createDecoder({ contentTopic });
  const encoder = node.createEncoder({ contentTopic });
  let received = 0;
  const subscribed = await node.filter.subscribe(decoder, (message) => {
    received += 1;
    out({
      event: "filtered",
      contentTopic: message.contentTopic,
      pubsubTopic: message.pubsubTopic,
      payload: new TextDecoder().decode(message.payload),
    });
    if (received === 1) setTimeout(() => process.exit(0), 200);
  });
  out({ event: "subscribed", ok: subscribed });

  const timestamp = new Date();
  const result = await node.lightPush.send(encoder, {
    payload: new TextEncoder().encode("pushed by js-waku"),
    timestamp,
  });
  out({
    event: "pushed",
    successes: result.successes.map((p) => p.toString()),
    failures: result.failures.map((f) => String(f.error)),
    timestampNs: (BigInt(timestamp.getTime()) * 1000000n).toString(),
  });
} catch (error) {
  out({ event: "error", message: String(error?.stack ?? error) });
  process.exit(1);
}
