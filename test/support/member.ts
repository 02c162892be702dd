// Fresh member data dirs for tests: a conf.yaml (optionally without a private key, as an
// operator would start) and a peers.yaml, in a temp dir removed afterwards.

import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { stringify } from 'yaml';
import { generateIdentity, type Identity } from '#libs/config/index.ts';

export interface TestMember {
  dir: string;
  name: string;
  identity: Identity;
  confPath: string;
  peersPath: string;
  cleanup(): Promise<void>;
}

export function uniqueName(prefix = 't'): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

export async function makeMember(opts: { withKey?: boolean; peers?: Identity[]; extra?: Record<string, unknown> } = {}): Promise<TestMember> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-test-'));
  const name = uniqueName('m');
  const identity = await generateIdentity();
  const conf = {
    node: { name, ...(opts.withKey === false ? {} : { private_key: identity.privateKey }) },
    network: { addresses: ['/ip4/127.0.0.1/tcp/0'] },
    peers: { exchange_interval: '30s', connection_timeout: '5s' },
    logging: { level: 'debug', format: 'json' },
    ...opts.extra,
  };
  const confPath = path.join(dir, 'conf.yaml');
  const peersPath = path.join(dir, 'peers.yaml');
  await fs.writeFile(confPath, `# test member ${name}\n${stringify(conf)}`);
  const peers = (opts.peers ?? []).map((p, i) => ({ public_key: p.publicKey, addresses: [`/ip4/127.0.0.1/tcp/${41000 + i}`] }));
  await fs.writeFile(peersPath, stringify({ peers }));
  return { dir, name, identity, confPath, peersPath, cleanup: () => fs.rm(dir, { recursive: true, force: true }) };
}
