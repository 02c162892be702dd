// A small client for a member's store, built at run time from the .proto files with
// @grpc/proto-loader, the way an outside tool would talk to it.
//
//   storectl [--store HOST:PORT] get-config | list-peers | watch
//   storectl [--store HOST:PORT] upsert-peer PUBLIC_KEY MULTIADDR... | remove-peer PEER_ID

import * as grpc from '@grpc/grpc-js';
import { loadBtcfedProtos } from '#libs/rpc/index.ts';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({ options: { store: { type: 'string', default: '127.0.0.1:7100' } }, allowPositionals: true });
const pkg = grpc.loadPackageDefinition(loadBtcfedProtos()) as unknown as {
  btcfed: { v1: { StoreService: new (addr: string, creds: grpc.ChannelCredentials) => grpc.Client & Record<string, Function> } };
};
const client = new pkg.btcfed.v1.StoreService(values.store!, grpc.credentials.createInsecure());
const deadline = () => ({ deadline: new Date(Date.now() + 5000) });

function unary(method: string, req: object): Promise<unknown> {
  return new Promise((resolve, reject) => {
    client[method]!.call(client, req, deadline(), (err: grpc.ServiceError | null, res: unknown) => (err ? reject(err) : resolve(res)));
  });
}

const [cmd, ...rest] = positionals;
try {
  switch (cmd) {
    case 'get-config': {
      const res = (await unary('GetConfig', {})) as { snapshot: { confJson: string } & Record<string, unknown> };
      console.log(JSON.stringify({ ...res.snapshot, confJson: JSON.parse(res.snapshot.confJson) }, null, 2));
      break;
    }
    case 'list-peers':
      console.log(JSON.stringify(await unary('ListPeers', {}), null, 2));
      break;
    case 'upsert-peer':
      console.log(JSON.stringify(await unary('UpsertPeers', { peers: [{ publicKey: rest[0], addresses: rest.slice(1) }] }), null, 2));
      break;
    case 'remove-peer':
      console.log(JSON.stringify(await unary('RemovePeer', { peerId: rest[0] }), null, 2));
      break;
    case 'watch': {
      const stream = client['WatchConfig']!.call(client, {}) as grpc.ClientReadableStream<{ snapshot: { version: string } }>;
      stream.on('data', (r) => console.log(`version ${r.snapshot.version} at ${new Date().toISOString()}`));
      await new Promise((resolve) => stream.on('end', resolve).on('error', resolve));
      break;
    }
    default:
      console.error('usage: storectl [--store HOST:PORT] get-config | list-peers | watch | upsert-peer KEY ADDR... | remove-peer PEER_ID');
      process.exitCode = 2;
  }
} catch (err) {
  const e = err as grpc.ServiceError;
  console.error(`storectl: ${e.code !== undefined ? grpc.status[e.code] + ': ' : ''}${e.details ?? e.message}`);
  process.exitCode = 1;
} finally {
  client.close();
}
