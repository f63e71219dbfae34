// A js-waku light node (@waku/sdk 0.0.36) that connects to a wakufleet node and reports the
// metadata handshake as js-waku recorded it, as JSON lines on stdout.
//   node light.mjs <multiaddr of our node> <cluster id>
import { createLightNode } from "@waku/sdk";
import { multiaddr } from "@multiformats/multiaddr";

const [address, clusterArg] = process.argv.slice(2);
const clusterId = Number(clusterArg);
const out = (event) => process.stdout.write(JSON.stringify(event) + "\n");
setTimeout(() => { out({ event: "timeout" }); process.exit(1); }, 60_000).unref();

try {
  const node = await createLightNode({
    defaultBootstrap: false,
    networkConfig: { clusterId, numShardsInCluster: 8 },
    discovery: { dns: false, peerExchange: false, peerCache: false },
    libp2p: { filterMultiaddrs: false },
  });
  await node.start();
  const target = multiaddr(address);
  const peerId = target.getPeerId();
  await node.libp2p.dial(target);
  const metadata = node.libp2p.services.metadata;

  // Our node sends its metadata request on connect; js-waku records it as our shard info.
  let recorded;
  for (let i = 0; i < 100 && !recorded; i++) {
    recorded = metadata.handshakesConfirmed.get(peerId);
    if (!recorded) await new Promise((resolve) => setTimeout(resolve, 100));
  }
  // And js-waku's own query must be answered by our server.
  const queried = await metadata.query(node.libp2p.getPeers().find((p) => p.toString() === peerId));
  const peer = await node.libp2p.peerStore.get(node.libp2p.getPeers().find((p) => p.toString() === peerId));
  out({
    event: "handshake",
    recorded: recorded ? { clusterId: recorded.clusterId, shards: recorded.shards } : null,
    queried: queried.shardInfo
      ? { clusterId: queried.shardInfo.clusterId, shards: queried.shardInfo.shards }
      : { error: String(queried.error) },
    protocols: peer.protocols,
    agent: new TextDecoder().decode(peer.metadata.get("AgentVersion") ?? new Uint8Array()),
  });
  await node.stop();
  process.exit(0);
} catch (error) {
  out({ event: "error", message: String(error?.stack ?? error) });
  process.exit(1);
}
