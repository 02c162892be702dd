// `btcfed verify`: ask any member (or observer) for a committed block and check it against the
// validator set of a conf.yaml you trust — never against what that member says about itself.
// When the block's own QC is not a COMMIT QC (it was committed together with a descendant),
// the headers up to the first descendant with one are fetched and checked as links.

import fs from 'node:fs';
import { parseConfText } from '#libs/config/index.ts';
import { blockHash, createSlhDsa, fromHex, paramSpec } from '#libs/crypto/index.ts';
import { Phase, type BlockHeader, type QuorumCert } from '#libs/hotstuff/index.ts';
import { call } from '#libs/rpc/index.ts';
import { verifyCommitted, type TrustRoot, type Verdict } from '#libs/verify/index.ts';
import { blockFromWire, headerFromWire, qcFromWire, type WireLimits } from '#libs/wire/index.ts';
import type { ConsensusServiceClient } from '#libs/gen/btcfed/v1/consensus.pb.ts';

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

export async function verifyBlock(client: ConsensusServiceClient, root: TrustRoot & { limits: WireLimits }, height: number, txHash?: Uint8Array): Promise<Verdict> {
  const res = await call(client.getBlock.bind(client), { by: { $case: 'height', value: height } });
  const block = blockFromWire('block', res.block, root.limits, blockHash);
  let qc: QuorumCert | undefined = res.qc ? qcFromWire('qc', res.qc, root.limits) : undefined;
  const descendants: BlockHeader[] = [];
  while (qc?.phase !== Phase.COMMIT) {
    if (descendants.length >= MAX_DESCENDANTS) return { ok: false, reason: `no COMMIT QC within ${MAX_DESCENDANTS} blocks above height ${height}` };
    const next = await call(client.listBlocks.bind(client), { fromHeight: height + descendants.length + 1, limit: 1, headersOnly: true });
    const b = next.blocks[0];
    if (!b) return { ok: false, reason: `the member holds no COMMIT QC for height ${height} or any block above it` };
    descendants.push(headerFromWire('descendant', b.block?.header));
    qc = b.qc ? qcFromWire('qc', b.qc, root.limits) : undefined;
  }
  return verifyCommitted(root, block, { qc, descendants }, txHash);
}
