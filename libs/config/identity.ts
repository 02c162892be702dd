// A member's libp2p identity (the key the gateway listens with) and path resolution
// for files named in conf.yaml.

import path from 'node:path';
import type { Conf } from './schema.ts';

export interface Identity {
  /** base64 protobuf private key, as conf.yaml's node.private_key holds it. */
  privateKey: string;
  /** base64 protobuf public key, as peers.yaml's public_key holds it. */
  publicKey: string;
  peerId: string;
}

export async function generateIdentity(): Promise<Identity> {
  // Loaded here, not at import: most processes that import the config never make a key (values.ts).
  const [{ generateKeyPair, privateKeyToProtobuf, publicKeyToProtobuf }, { peerIdFromPublicKey }] =
    await Promise.all([import('@libp2p/crypto/keys'), import('@libp2p/peer-id')]);
  const key = await generateKeyPair('Ed25519');
  return {
    privateKey: Buffer.from(privateKeyToProtobuf(key)).toString('base64'),
    publicKey: Buffer.from(publicKeyToProtobuf(key.publicKey)).toString('base64'),
    peerId: peerIdFromPublicKey(key.publicKey).toString(),
  };
}

/** A path from conf.yaml, resolved against data_dir (itself relative to conf.yaml's directory). */
export function resolvePath(conf: Pick<Conf, 'data_dir'>, confDir: string, p: string): string {
  const dataDir = conf.data_dir ? path.resolve(confDir, conf.data_dir) : confDir;
  return path.resolve(dataDir, p);
}
