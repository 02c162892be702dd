// `btcfed verify`: ask any member (or observer) for a committed block and check it against the
// validator set of a conf.yaml you trust — never against what that member says about itself.
// When the block's own QC is not a COMMIT QC (it was committed together with a descendant),
// the headers up to the first descendant with one are fetched and checked as links. A
// transaction alone (`--tx` without `--height`) is checked by its inclusion proof: the header,
// the Merkle branch to its tx_root, and that header's commit — without the block's transactions.

import fs from 'node:fs';
import { parseConfText } from '#libs/config/index.ts';
import { blockHash, createSlhDsa, fromHex, paramSpec } from '#libs/crypto/index.ts';
import { Phase, type BlockHeader, type QuorumCert } from '#libs/hotstuff/index.ts';
import { call } from '#libs/rpc/index.ts';
import { verifyCommitted, verifyIncluded, type CommitProof, type TrustRoot, type Verdict } from '#libs/verify/index.ts';
import { blockFromWire, headerFromWire, qcFromWire, type WireLimits } from '#libs/wire/index.ts';
import { TxStatus, type ConsensusServiceClient } from '#libs/gen/btcfed/v1/consensus.pb.ts';

/** How far above the block a COMMIT QC is looked for. */
const MAX_DESCENDANTS = 64;

/** The trust root from a conf.yaml: chain id, parameter set and the validators' public keys. */
export function trustRootFrom(confFile: string): TrustRoot & { limits: WireLimits } {
  const conf = parseConfText(fs.readFileSync(confFile, 'utf8'), confFile);
  const dsa = createSlhDsa({ paramSet: conf.crypto.param_set, backend: conf.crypto.backend });
  return {
    chainId: conf.consensus.chain_id, dsa, publicKeys: conf.validators.map((v) => fromHex(v.public_key)),
    limits: { validatorCount: conf.validators.length, signatureBytes: paramSpec(conf.crypto.param_set).signatureBytes },
  };
}

/**
 * The COMMIT QC for the block at `height`: its own, or the first descendant's within
 * MAX_DESCENDANTS, with the headers in between (read headers-only: no transactions move).
 */
async function commitProof(client: ConsensusServiceClient, limits: WireLimits, height: number, ownQc: QuorumCert | undefined): Promise<CommitProof | { reason: string }> {
  let qc = ownQc;
  const descendants: BlockHeader[] = [];
  while (qc?.phase !== Phase.COMMIT) {
    if (descendants.length >= MAX_DESCENDANTS) return { reason: `no COMMIT QC within ${MAX_DESCENDANTS} blocks above height ${height}` };
    const next = await call(client.listBlocks.bind(client), { fromHeight: height + descendants.length + 1, limit: 1, headersOnly: true });
    const b = next.blocks[0];
    if (!b) return { reason: `the member holds no COMMIT QC for height ${height} or any block above it` };
    descendants.push(headerFromWire('descendant', b.block?.header));
    qc = b.qc ? qcFromWire('qc', b.qc, limits) : undefined;
  }
  return { qc, descendants };
}

export async function verifyBlock(client: ConsensusServiceClient, root: TrustRoot & { limits: WireLimits }, height: number, txHash?: Uint8Array): Promise<Verdict> {
  const res = await call(client.getBlock.bind(client), { by: { $case: 'height', value: height } });
  const block = blockFromWire('block', res.block, root.limits, blockHash);
  const proof = await commitProof(client, root.limits, height, res.qc ? qcFromWire('qc', res.qc, root.limits) : undefined);
  if ('reason' in proof) return { ok: false, reason: proof.reason };
  return verifyCommitted(root, block, proof, txHash);
}

/**
 * A transaction by its hash alone: GetTransaction with its inclusion proof (header, count, Merkle
 * branch), then the header's COMMIT QC — the block's transactions are never fetched.
 */
export async function verifyTransaction(client: ConsensusServiceClient, root: TrustRoot & { limits: WireLimits }, txHash: Uint8Array): Promise<Verdict> {
  const r = await call(client.getTransaction.bind(client), { txHash, withProof: true });
  if (r.status !== TxStatus.TX_STATUS_COMMITTED) return { ok: false, reason: `the member says the transaction is not committed (status ${r.status === TxStatus.TX_STATUS_PENDING ? 'pending' : 'unknown'})` };
  if (!r.header) return { ok: false, reason: 'the member answered no inclusion proof (an older version?)' };
  const header = headerFromWire('header', r.header);
  if (header.height !== r.height) return { ok: false, reason: `the proof's header is at height ${header.height}, the answer says ${r.height}` };
  const own = await call(client.listBlocks.bind(client), { fromHeight: header.height, limit: 1, headersOnly: true });
  const ownQc = own.blocks[0]?.qc ? qcFromWire('qc', own.blocks[0].qc, root.limits) : undefined;
  const proof = await commitProof(client, root.limits, header.height, ownQc);
  if ('reason' in proof) return { ok: false, reason: proof.reason };
  return verifyIncluded(root, { header, txHash, index: r.index, txCount: r.txCount, siblings: r.proof }, proof);
}
