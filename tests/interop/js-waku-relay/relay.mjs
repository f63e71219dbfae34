// A js-waku relay node (@waku/sdk 0.0.27 + @waku/relay 0.0.14) that dials a wakufleet node,
// sends one message and reports every message it receives, as JSON lines on stdout.
//   node relay.mjs <multiaddr of our node> <content topic>
// Exits 0 once it has sent its message and received one, 1 on timeout or error.
import { createRelayNode } from "@waku/sdk/relay";
import { createDecoder, createEncoder, Protocols, waitForRemotePeer } from "@waku/sdk";
import { multiaddr } from "@multiformats/multiaddr";

const [address, contentTopic] = process.argv.slice(2);
const out = (event) => process.stdout.write(JSON.stringify(event) + "\n");
const shardInfo = { clusterId: 0, shard: 0 };
setTimeout(() => { out({ event: "timeout" }); process.exit(1); }, 90_000).unref();

try {
  const node = await createRelayNode({
    networkConfig: { clusterId: 0, shards: [0] },
    libp2p: { filterMultiaddrs: false },
  });
  await node.start();
  await node.libp2p.dial(multiaddr(address));
  await waitForRemotePeer(node, [Protocols.Relay], 30_000);

  let received = false;
  let sent = false;
  const finish = async () => {
    if (received && sent) {
      await node.stop();
      process.exit(0);
    }
  };
  await node.relay.subscribe([createDecoder(contentTopic, shardInfo)], async (message) => {
    out({
      event: "received",
      pubsubTopic: message.pubsubTopic,
      contentTopic: message.contentTopic,
      payload: new TextDecoder().decode(message.payload),
      timestampNs: message.proto.timestamp?.toString() ?? null,
    });
    received = true;
    await finish();
  });
  out({ event: "ready", peerId: node.libp2p.peerId.toString() });

  // Gossipsub needs a heartbeat to see our peer's subscription: retry until someone gets it.
  const encoder = createEncoder({ contentTopic, pubsubTopicShardInfo: shardInfo });
  const timestamp = new Date();
  for (let attempt = 0; !sent && attempt < 60; attempt++) {
    const result = await node.relay.send(encoder, {
      payload: new TextEncoder().encode("hello from js-waku"),
      timestamp,
    });
    if (result.successes.length > 0) {
      sent = true;
      out({ event: "sent", timestampNs: (BigInt(timestamp.getTime()) * 1000000n).toString() });
    } else {
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }
  await finish();
} catch (error) {
  out({ event: "error", message: String(error?.stack ?? error) });
  process.exit(1);
}
