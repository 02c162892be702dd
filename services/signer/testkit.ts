// Test fixtures for the signer: a data dir with signer.yaml, an encrypted key (0600), a
// passphrase file and optionally a fresh mTLS PKI, plus the whole validator set's keys so tests
// can build real blocks and real, signed QCs. Generated material lives in a temp dir that
// cleanup() removes; nothing here is ever committed. Must never be imported by production code.

import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { blockHash, createSlhDsa, merkleRoot, nextStateHash, reconfigSigningBytes, toHex, txHash, voteSigningBytes, type BackendChoice, type KeyPair, type SlhDsa } from '#libs/crypto/index.ts';
import { Phase, genesisBlock, genesisQC, quorumSize, type Block, type BlockHeader, type QuorumCert } from '#libs/hotstuff/index.ts';
import { encodeReconfigTx, type Reconfiguration } from '#libs/validators/index.ts';
import type { EpochChangeProof } from '#libs/verify/index.ts';
import { sealKey } from './keyfile.ts';
import { generateIdentity } from '#libs/config/index.ts';

export const TEST_PASSPHRASE = 'correct horse battery staple';
/** Cheap scrypt for tests: the production cost is a property of the file, not of the code path. */
export const TEST_KDF = { N: 1 << 12, r: 8, p: 1 };

export interface TlsFiles {
  caFile: string; serverCert: string; serverKey: string;
  /** The consensus client: the one signer.yaml's allowed_clients lists. */
  clientCert: string; clientKey: string;
  /** Signed by another CA: fails the handshake. */
  otherClientCert: string; otherClientKey: string;
  /** Signed by the signer's own CA but not allowed (another service of the member, say its gateway). */
  siblingCert: string; siblingKey: string;
  /** SHA-256 fingerprint of clientCert. */
  clientFingerprint: string;
  /** SHA-256 fingerprint of siblingCert (an operator's certificate, in the approval tests). */
  siblingFingerprint: string;
}

export interface SignerWorld {
  dir: string;
  chainId: string;
  n: number;
  /** The signer's validator index. */
  self: number;
  slh: SlhDsa;
  /** Every validator's key pair, in index order (keys[self] is the signer's). */
  keys: KeyPair[];
  genesis: Block;
  gqc: QuorumCert;
  tls: TlsFiles | undefined;
  /** A header at `view` on `parent`; `salt` varies the timestamp to make conflicting blocks. */
  header(view: number, parent: Block, opts?: { salt?: number; proposer?: number }): BlockHeader;
  block(view: number, parent: Block, opts?: { salt?: number; proposer?: number }): Block;
  /** A QC signed by `signers` (default: the first quorum of validators). */
  qc(phase: Phase, view: number, hash: Uint8Array, signers?: number[]): Promise<QuorumCert>;
  /** Rewrites signer.yaml with `patch` applied on top of the generated config. */
  writeConf(patch?: Record<string, unknown>): Promise<void>;
  cleanup(): Promise<void>;
}

export interface WorldOptions {
  n?: number;
  self?: number;
  backend?: BackendChoice;
  tls?: boolean;
  chainId?: string;
}

async function writeTls(dir: string): Promise<TlsFiles> {
  const { generateCa, issueClientCertificate, issueServerCertificate } = await import('#libs/rpc/certs.ts');
  const { certificateFingerprint } = await import('#libs/rpc/index.ts');
  const ca = await generateCa({ commonName: 'signer test CA' });
  const server = await issueServerCertificate(ca, { commonName: 'signer' });
  const client = await issueClientCertificate(ca, { commonName: 'consensus' });
  const sibling = await issueClientCertificate(ca, { commonName: 'gateway' });
  const otherCa = await generateCa({ commonName: 'other CA' });
  const other = await issueClientCertificate(otherCa, { commonName: 'intruder' });
  const write = async (name: string, pem: string) => {
    const file = path.join(dir, name);
    await fs.writeFile(file, pem, { mode: 0o600 });
    return file;
  };
  return {
    caFile: await write('ca.pem', ca.cert), serverCert: await write('server.pem', server.cert), serverKey: await write('server-key.pem', server.key),
    clientCert: await write('client.pem', client.cert), clientKey: await write('client-key.pem', client.key),
    otherClientCert: await write('other-client.pem', other.cert), otherClientKey: await write('other-client-key.pem', other.key),
    siblingCert: await write('sibling.pem', sibling.cert), siblingKey: await write('sibling-key.pem', sibling.key),
    clientFingerprint: certificateFingerprint(client.cert),
    siblingFingerprint: certificateFingerprint(sibling.cert),
  };
}

export async function makeSignerWorld(opts: WorldOptions = {}): Promise<SignerWorld> {
  const n = opts.n ?? 4;
  const self = opts.self ?? 1;
  const chainId = opts.chainId ?? 'btcfed-test';
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-signer-'));
  const slh = createSlhDsa({ backend: opts.backend ?? 'node' });
  const keys = Array.from({ length: n }, () => slh.generateKeyPair());
  await fs.writeFile(path.join(dir, 'passphrase'), `${TEST_PASSPHRASE}\n`, { mode: 0o600 });
  await fs.writeFile(path.join(dir, 'signer.key'), await sealKey(slh.paramSet, keys[self]!.secretKey, TEST_PASSPHRASE, TEST_KDF), { mode: 0o600 });
  const tls = opts.tls ? await writeTls(dir) : undefined;
  const peerIds = await Promise.all(keys.map(async () => (await generateIdentity()).peerId));
  const base = {
    member: `m${self}`,
    chain_id: chainId,
    listen: '127.0.0.1:0',
    // Least privilege, as btcfed init writes it: only the consensus client may call.
    ...(tls ? { tls: { ca_file: 'ca.pem', cert_file: 'server.pem', key_file: 'server-key.pem' }, allowed_clients: [tls.clientFingerprint] } : {}),
    crypto: { param_set: slh.paramSet, backend: opts.backend ?? 'node' },
    key_file: 'signer.key',
    passphrase_file: 'passphrase',
    logging: { level: 'debug', format: 'json' },
    validators: keys.map((k, i) => ({ name: `m${i}`, peer_id: peerIds[i]!, public_key: toHex(k.publicKey) })),
  };
  const writeConf = (patch: Record<string, unknown> = {}) => fs.writeFile(path.join(dir, 'signer.yaml'), stringify({ ...base, ...patch }));
  await writeConf();
  const genesis = genesisBlock(chainId, blockHash);
  const qcCache = new Map<string, QuorumCert>();

  const header = (view: number, parent: Block, o: { salt?: number; proposer?: number } = {}): BlockHeader => ({
    chainId, epoch: 0, height: parent.header.height + 1, view, parentHash: parent.hash, proposer: o.proposer ?? view % n,
    timestampMs: 1_700_000_000_000 + view * 1000 + (o.salt ?? 0), txRoot: new Uint8Array(32), stateHash: new Uint8Array(32),
  });

  return {
    dir, chainId, n, self, slh, keys, genesis, gqc: genesisQC(genesis), tls, writeConf,
    header,
    block(view, parent, o) {
      const h = header(view, parent, o);
      return { header: h, hash: blockHash(h), txs: [] };
    },
    async qc(phase, view, hash, signers) {
      const who = signers ?? Array.from({ length: quorumSize(n) }, (_, i) => i);
      const key = `${phase}:${view}:${toHex(hash)}:${who.join(',')}`;
      const cached = qcCache.get(key);
      if (cached) return cached;
      const message = voteSigningBytes({ chainId, epoch: 0, phase, view, blockHash: hash });
      const signatures = await Promise.all(who.map((i) => slh.sign(keys[i]!.secretKey, message)));
      const qc = { phase, view, blockHash: hash, signers: who, signatures };
      qcCache.set(key, qc);
      return qc;
    },
    cleanup: () => fs.rm(dir, { recursive: true, force: true }),
  };
}


/** A block of `epoch` at `view` on `parent` carrying `txs` (proposer: view mod 4). */
export function epochChild(w: SignerWorld, parent: Block, view: number, txs: Uint8Array[], epoch: number): Block {
  const txRoot = merkleRoot(txs.map((t) => txHash(t)));
  const header = { chainId: w.chainId, epoch, height: parent.header.height + 1, view, parentHash: parent.hash, proposer: view % 4,
    timestampMs: parent.header.timestampMs + 1000, txRoot, stateHash: nextStateHash(parent.header.stateHash, txRoot) };
  return { header, hash: blockHash(header), txs };
}

/** A QC of `epoch` on `b` by `signers` (indices in that epoch's set), each signing with `keyOf(index)`. */
export async function epochQc(w: SignerWorld, phase: Phase, b: Block, signers: number[], keyOf: (i: number) => Uint8Array, epoch = b.header.epoch): Promise<QuorumCert> {
  const bytes = voteSigningBytes({ chainId: w.chainId, epoch, phase, view: b.header.view, blockHash: b.hash });
  return { phase, view: b.header.view, blockHash: b.hash, signers, signatures: await Promise.all(signers.map((i) => w.slh.sign(keyOf(i), bytes))) };
}

/** The block ending `change.epoch` on `parent`, approved by `approvers`, and a COMMIT QC on it by `signers`: what AdvanceEpoch is shown. */
export async function epochProof(w: SignerWorld, parent: Block, change: Reconfiguration, approvers: number[], signers: number[], keyOf: (i: number) => Uint8Array): Promise<EpochChangeProof> {
  const approvals = await Promise.all(approvers.map(async (validator) => ({ validator, signature: await w.slh.sign(keyOf(validator), reconfigSigningBytes(change)) })));
  const last = epochChild(w, parent, 3, [new TextEncoder().encode('a payment'), encodeReconfigTx({ change, approvals })], change.epoch);
  return { last, suffix: [], qc: await epochQc(w, Phase.COMMIT, last, signers, keyOf) };
}
