// `btcfed verify`: ask any member (or observer) for a committed block and check it against the
// validator set of a conf.yaml you trust — never against what that member says about itself.
// When the block's own QC is not a COMMIT QC (it was committed together with a descendant),
// the headers up to the first descendant with one are fetched and checked as links. A
// transaction alone (`--tx` without `--height`) is checked by its inclusion proof: the header,
// the Merkle branch to its tx_root, and that header's commit — without the block's transactions.
// A block of a later epoch is checked against that epoch's keys, reached from genesis's set by
// walking the proofs that each epoch before it ended (GetEpochs, libs/verify followEpoch): the
// member is trusted for nothing, not even the validator sets. With --trusted-epochs FILE the
// client keeps what it walked (libs/verify ended-epochs.ts, bound to the chain and its genesis
// set) and next time starts from there: only the epochs that ended since are fetched and checked.

import fs from 'node:fs';
import { parseConfText } from '#libs/config/index.ts';
import { blockHash, createSlhDsa, fromHex, paramSpec, sha256Hex, type SlhDsa } from '#libs/crypto/index.ts';
import { FedError, errorMessage } from '#libs/errors/index.ts';
import { writeFileAtomic } from '#libs/files/index.ts';
import { EpochHistory, ValidatorSet, isReconfigTx } from '#libs/validators/index.ts';
import { Phase, type BlockHeader, type QuorumCert } from '#libs/hotstuff/index.ts';
import { readPatiently } from './reads.ts';
import {
  decodeEndedEpochs, encodeEndedEpochs, epochHeights, followEpoch, replayEndedEpochs, trustRootOf, verifyCommitted, verifyIncluded,
  type CommitProof, type EndedEpoch, type EpochChangeProof, type TrustRoot, type Verdict,
} from '#libs/verify/index.ts';
import { WIRE_MAX_VALIDATORS, blockFromWire, headerFromWire, qcFromWire, type WireLimits } from '#libs/wire/index.ts';
import { TxStatus, type ConsensusServiceClient } from '#libs/gen/btcfed/v1/consensus.pb.ts';

/** How far above the block a COMMIT QC is looked for. */
const MAX_DESCENDANTS = 64;

export type Trust = TrustRoot & { limits: WireLimits; genesis: ValidatorSet; publicKeyBytes: number; dsa: SlhDsa };

/** The trust root from a conf.yaml: chain id, parameter set and the genesis validators' public keys. */
export function trustRootFrom(confFile: string): Trust {
  const conf = parseConfText(fs.readFileSync(confFile, 'utf8'), confFile);
  const dsa = createSlhDsa({ paramSet: conf.crypto.param_set, backend: conf.crypto.backend });
  return {
    chainId: conf.consensus.chain_id, dsa, publicKeys: conf.validators.map((v) => fromHex(v.public_key)),
    // Later epochs may seat more validators than genesis: their QCs are read up to the wire's bound.
    limits: { validatorCount: WIRE_MAX_VALIDATORS, signatureBytes: paramSpec(conf.crypto.param_set).signatureBytes },
    genesis: ValidatorSet.fromConfig(conf.validators), publicKeyBytes: paramSpec(conf.crypto.param_set).publicKeyBytes,
  };
}

/** The proofs that epochs `from`… ended, as the member serves them (paged). */
export async function fetchEpochProofs(client: ConsensusServiceClient, limits: WireLimits, from: number, until: number): Promise<{ proofs: EpochChangeProof[]; current: number }> {
  const proofs: EpochChangeProof[] = [];
  let current = 0;
  for (let e = from; e < until;) {
    // Only as many as needed (the server caps a page): an epoch's last block can be megabytes.
    const r = await readPatiently(client.getEpochs.bind(client), { fromEpoch: e, limit: Math.min(until - e, 0xffff_ffff) });
    current = Number(r.currentEpoch);
    if (r.proofs.length === 0) break;
    for (const [i, p] of r.proofs.entries()) {
      const at = `epochs[${e + i}]`;
      proofs.push({ last: blockFromWire(`${at}.last`, p.last, limits, blockHash), suffix: p.suffix.map((h, k) => headerFromWire(`${at}.suffix[${k}]`, h)), qc: qcFromWire(`${at}.qc`, p.qc, limits) });
    }
    e += r.proofs.length;
  }
  return { proofs, current };
}

/** The document format of a light client's trusted epochs. */
export const TRUSTED_EPOCHS_FORMAT = 'btcfed-trusted-epochs';

/** The epochs a client has walked and keeps (`--trusted-epochs FILE`), replayed from genesis. */
export interface KeptEpochs { file: string; history: EpochHistory; ended: EndedEpoch[] }

const historyFrom = (trust: Trust): EpochHistory =>
  EpochHistory.fromGenesis(trust.genesis, { chainId: trust.chainId, publicKeyBytes: trust.publicKeyBytes }, (pk, m, sig) => trust.dsa.verifySync(pk, m, sig));

/** What a trusted-epochs file is bound to: the genesis set it was walked from. */
const genesisDigest = (trust: Trust): string =>
  sha256Hex(JSON.stringify(trust.genesis.members.map((v) => [v.name, v.peerId, v.publicKey])));

const badStore = (file: string, why: string): FedError =>
  new FedError('VERIFY_TRUSTED_EPOCHS', `trusted epochs ${file} cannot be used: ${why}; remove it to walk from genesis again`, { file, why });

/**
 * The epochs kept in `file` (none when it does not exist), each change checked again against the
 * set it changed (the approvals; the commit QCs were checked when they were walked). Refused,
 * naming why, when the file is damaged, of another chain or genesis set, or does not replay.
 */
export function loadKeptEpochs(file: string, trust: Trust): KeptEpochs {
  const history = historyFrom(trust);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { file, history, ended: [] };
    throw badStore(file, errorMessage(err));
  }
  const d = decodeEndedEpochs(text, TRUSTED_EPOCHS_FORMAT, ['chain_id', 'genesis']);
  if (!d.ok) throw badStore(file, d.why);
  if (d.bound.chain_id !== trust.chainId) throw badStore(file, `it is of chain ${JSON.stringify(d.bound.chain_id)}, the trusted conf.yaml's is ${JSON.stringify(trust.chainId)}`);
  if (d.bound.genesis !== genesisDigest(trust)) throw badStore(file, 'it was walked from another genesis validator set than the trusted conf.yaml\'s');
  const replayed = replayEndedEpochs(history, d.ended);
  if (!replayed.ok) throw badStore(file, replayed.why);
  return { file, history, ended: d.ended };
}

async function saveKeptEpochs(kept: KeptEpochs, trust: Trust): Promise<void> {
  await writeFileAtomic(kept.file, encodeEndedEpochs(TRUSTED_EPOCHS_FORMAT, kept.ended, { chain_id: trust.chainId, genesis: genesisDigest(trust) }), { mode: 0o644 });
}

/**
 * The trust root of `epoch`: genesis's, or the set reached by checking each epoch's end from
 * genesis on (each proof against the keys and set of the epoch it ends) — from the last epoch
 * `kept` holds, when given, which then keeps the ends walked here. With the proof of `epoch`'s own
 * end when the member has it (it proves that epoch's last block committed), checked like the
 * others. The root holds the epoch's heights as far as the ends walked or kept tell them: a block
 * of an ended epoch above its last is refused, for an ended epoch's keys are retired, and retired
 * keys may have signed anything (docs/signer.md).
 */
export async function epochTrust(client: ConsensusServiceClient, trust: Trust, epoch: number, kept?: KeptEpochs): Promise<{ root: TrustRoot; walked: number; fromKept: number; end?: EpochChangeProof } | { reason: string }> {
  const history = kept?.history ?? historyFrom(trust);
  const known = history.current.epoch;
  const rootOf = (e: number): TrustRoot => ({ ...(e === 0 ? trust : trustRootOf(trust.chainId, history.setOf(e)!, trust.dsa)), heights: epochHeights(history, e)! });
  if (epoch < known) {
    const { proofs } = await fetchEpochProofs(client, trust.limits, epoch, epoch + 1);
    return { root: rootOf(epoch), walked: 0, fromKept: epoch, ...(proofs[0] ? { end: proofs[0] } : {}) };
  }
  const { proofs } = await fetchEpochProofs(client, trust.limits, known, epoch + 1);
  if (proofs.length < epoch - known) return { reason: `the member serves the proofs of ${known + proofs.length} ended epochs; epoch ${epoch} needs ${epoch}` };
  // `walked` counts the ends that reach `epoch`'s set; its own end, when served, is checked and kept too.
  let walked = 0;
  let ends = 0;
  try {
    for (let e = known; e < Math.min(known + proofs.length, epoch + 1); e++) {
      const proof = proofs[e - known]!;
      const v = followEpoch(history, trust.chainId, proof, trust.dsa);
      if (!v.ok) return { reason: `the proof that epoch ${e} ended does not verify: ${v.reason}` };
      ends++;
      if (e < epoch) walked++;
      kept?.ended.push({ height: v.height, root: proof.last.hash, tx: proof.last.txs.find((t) => isReconfigTx(t))! });
    }
  } finally {
    // What was proven is kept even when a later proof is refused.
    if (kept && ends > 0) await saveKeptEpochs(kept, trust);
  }
  return { root: rootOf(epoch), walked, fromKept: known, ...(proofs[epoch - known] ? { end: proofs[epoch - known] } : {}) };
}

/**
 * The COMMIT QC for the block at `height`: its own, or the first descendant's within
 * MAX_DESCENDANTS, with the headers in between (read headers-only: no transactions move).
 */
async function commitProof(client: ConsensusServiceClient, limits: WireLimits, height: number, ownQc: QuorumCert | undefined, end?: EpochChangeProof): Promise<CommitProof | { reason: string }> {
  // A block below its epoch's last one, committed with it, is proven by the proof its epoch ended
  // with once the walk up reaches that block (its QC, over the suffix of empty blocks its epoch
  // certified above it): above it the member's log holds the next epoch's blocks.
  let qc = ownQc;
  const descendants: BlockHeader[] = [];
  while (qc?.phase !== Phase.COMMIT) {
    if (end && height + descendants.length + 1 === end.last.header.height) return { qc: end.qc, descendants: [...descendants, end.last.header, ...end.suffix] };
    if (descendants.length >= MAX_DESCENDANTS) return { reason: `no COMMIT QC within ${MAX_DESCENDANTS} blocks above height ${height}` };
    const next = await readPatiently(client.listBlocks.bind(client), { fromHeight: height + descendants.length + 1, limit: 1, headersOnly: true });
    const b = next.blocks[0];
    if (!b) return { reason: `the member holds no COMMIT QC for height ${height} or any block above it` };
    descendants.push(headerFromWire('descendant', b.block?.header));
    qc = b.qc ? qcFromWire('qc', b.qc, limits) : undefined;
  }
  return { qc, descendants };
}

export type EpochVerdict = Verdict & { epoch?: number; walked?: number; fromKept?: number };

export async function verifyBlock(client: ConsensusServiceClient, trust: Trust, height: number, txHash?: Uint8Array, kept?: KeptEpochs): Promise<EpochVerdict> {
  const res = await readPatiently(client.getBlock.bind(client), { by: { $case: 'height', value: height } });
  const block = blockFromWire('block', res.block, trust.limits, blockHash);
  const epoch = block.header.epoch;
  const at = await epochTrust(client, trust, epoch, kept);
  if ('reason' in at) return { ok: false, reason: at.reason };
  // The last block of an epoch is proven by the proof its epoch ended with.
  const proof = at.end && Buffer.compare(at.end.last.hash, block.hash) === 0 ? { qc: at.end.qc, descendants: at.end.suffix }
    : await commitProof(client, trust.limits, height, res.qc ? qcFromWire('qc', res.qc, trust.limits) : undefined, at.end);
  if ('reason' in proof) return { ok: false, reason: proof.reason };
  return { ...verifyCommitted(at.root, block, proof, txHash), epoch, walked: at.walked, fromKept: at.fromKept };
}

/**
 * A transaction by its hash alone: GetTransaction with its inclusion proof (header, count, Merkle
 * branch), then the header's COMMIT QC — the block's transactions are never fetched.
 */
export async function verifyTransaction(client: ConsensusServiceClient, trust: Trust, txHash: Uint8Array, kept?: KeptEpochs): Promise<EpochVerdict> {
  const root = trust;
  const r = await readPatiently(client.getTransaction.bind(client), { txHash, withProof: true });
  if (r.status !== TxStatus.TX_STATUS_COMMITTED) return { ok: false, reason: `the member says the transaction is not committed (status ${r.status === TxStatus.TX_STATUS_PENDING ? 'pending' : 'unknown'})` };
  if (!r.header) return { ok: false, reason: 'the member answered no inclusion proof (an older version?)' };
  const header = headerFromWire('header', r.header);
  if (header.height !== r.height) return { ok: false, reason: `the proof's header is at height ${header.height}, the answer says ${r.height}` };
  const at = await epochTrust(client, trust, header.epoch, kept);
  if ('reason' in at) return { ok: false, reason: at.reason };
  const own = await readPatiently(client.listBlocks.bind(client), { fromHeight: header.height, limit: 1, headersOnly: true });
  const ownQc = own.blocks[0]?.qc ? qcFromWire('qc', own.blocks[0].qc, root.limits) : undefined;
  const proof = at.end && Buffer.compare(at.end.last.hash, blockHash(header)) === 0 ? { qc: at.end.qc, descendants: at.end.suffix }
    : await commitProof(client, root.limits, header.height, ownQc, at.end);
  if ('reason' in proof) return { ok: false, reason: proof.reason };
  return { ...verifyIncluded(at.root, { header, txHash, index: r.index, txCount: r.txCount, siblings: r.proof }, proof), epoch: header.epoch, walked: at.walked, fromKept: at.fromKept };
}
