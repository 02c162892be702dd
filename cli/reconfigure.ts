// `btcfed reconfigure`: the operators' ceremony for a change of the validator set, up to the
// transaction a leader would put in a block (docs/reconfiguration.md):
//   propose   — anyone: the change (add a member from its card, remove one, rotate one to a new
//               card) as change.yaml, checked against the current set, with its id;
//   approve   — each operator, on its own signer: the signer signs the change (only for operator
//               certificates, signer.yaml operator_clients) → approval-<member>.yaml;
//   assemble  — anyone: the change and a quorum of approvals, each checked against the set's
//               keys, as the reconfiguration transaction (reconfig.tx);
//   submit    — an operator: the transaction to its member (AdminService SubmitReconfiguration),
//               which checks it against its current epoch and proposes it when it leads;
//   inspect   — what a change, approval or transaction file holds;
//   history   — the chain's epochs and the changes that ended them, each end checked from genesis.
// propose and assemble check against the member's current epoch's set (GetValidators); when the
// member cannot be asked they say so and check against conf.yaml's validators, genesis's set (the
// member checks again at submit). Must never write a transaction whose approvals it has not
// verified.

import fs from 'node:fs/promises';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { parseCardText, parseConfText, parseDuration, type MemberCard } from '#libs/config/index.ts';
import { createSlhDsa, fromHex, paramSpec, toHex, type ParamSet } from '#libs/crypto/index.ts';
import { FedError, errorMessage, isFedError } from '#libs/errors/index.ts';
import { writeFileAtomic } from '#libs/files/index.ts';
import {
  EpochHistory, ValidatorSet, authorizeChange, decodeReconfigTx, encodeReconfigTx, isReconfigTx, nextValidatorSet, reconfigId,
  type Approval, type ReconfigOp, type Reconfiguration,
} from '#libs/validators/index.ts';
import { call, parseAddress } from '#libs/rpc/index.ts';
import { adminClient, consensusClient } from './client.ts';
import { fetchEpochProofs, trustRootFrom } from './verify.ts';
import { followEpoch } from '#libs/verify/index.ts';
import { createRemoteSigner } from '../services/signer/client.ts';

interface Context {
  chainId: string;
  set: ValidatorSet;
  paramSet: ParamSet;
  /** Where the set came from, in words (the member's current epoch, or genesis when it could not be asked). */
  source: string;
}

/**
 * `check` against the context's set; a refusal says which set it was checked against — above all
 * genesis's, when the member could not be asked (a change for a later epoch then reads as "not
 * the current 0", which is true only of genesis).
 */
function against<T>(c: Context, check: () => T): T {
  try {
    return check();
  } catch (err) {
    if (!isFedError(err)) throw err;
    throw new FedError(err.code, `${err.message} (checked against ${c.source})`, err.details, { cause: err });
  }
}

/**
 * How long propose and assemble wait for the member's answer before checking against genesis. A
 * member that is not running answers at once (UNAVAILABLE); a busy one may take seconds. With 3 s,
 * a full Byzantine run's assemble once checked a change of epoch 1 against genesis's set (why the
 * member was not asked was not said then; a refusal says it now).
 */
const ASK_MEMBER_MS = 15_000;

/** The chain and parameter set from a member dir's conf.yaml; the set of the member's current epoch (else genesis's). */
async function contextOf(memberDir: string): Promise<Context> {
  const file = path.join(memberDir, 'conf.yaml');
  const conf = parseConfText(await fs.readFile(file, 'utf8'), file);
  const base = { chainId: conf.consensus.chain_id, paramSet: conf.crypto.param_set };
  let client: ReturnType<typeof consensusClient> | undefined;
  try {
    client = consensusClient(memberDir);
    const r = await call(client.getValidators.bind(client), {}, { deadlineMs: ASK_MEMBER_MS });
    const set = ValidatorSet.fromConfig(r.validators.map((v) => ({ name: v.name, peer_id: v.peerId, public_key: toHex(v.publicKey) })), { epoch: Number(r.epoch) });
    return { ...base, set, source: `member ${conf.node.name}'s current epoch, ${set.epoch}` };
  } catch (err) {
    return { ...base, set: ValidatorSet.fromConfig(conf.validators),
      source: `genesis's set in conf.yaml (epoch 0): member ${conf.node.name} could not be asked for its current epoch (${errorMessage(err)}); it checks the change again at submit` };
  } finally {
    client?.close();
  }
}

const rules = (c: Context) => ({ chainId: c.chainId, publicKeyBytes: paramSpec(c.paramSet).publicKeyBytes });

async function card(file: string): Promise<MemberCard> {
  return parseCardText(await fs.readFile(file, 'utf8'), file);
}

// ------------------------------------------------------------------ files

interface ChangeYaml {
  kind: 'btcfed-reconfiguration';
  id: string;
  chain_id: string;
  epoch: number;
  ops: Array<{ kind: ReconfigOp['kind']; name?: string; peer_id?: string; public_key?: string; addresses?: string[]; base_timeout_ms?: number; idle_heartbeat_ms?: number }>;
}

const duration = (ms: number) => (ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`);

/** One operation in a line, `detail` adding the card's identity and addresses. */
function describeOp(op: ReconfigOp, detail: boolean): string {
  if (op.kind === 'params') return `params: base_timeout ${duration(op.baseTimeoutMs)}, idle_heartbeat ${duration(op.idleHeartbeatMs)}`;
  if (op.kind === 'remove' || !detail) return `${op.kind} ${op.name}`;
  return `${op.kind} ${op.name} (peer ${op.peerId}, key ${toHex(op.publicKey).slice(0, 16)}…${op.addresses?.length ? `, at ${op.addresses.join(' ')}` : ''})`;
}

function toYaml(change: Reconfiguration): ChangeYaml {
  return {
    kind: 'btcfed-reconfiguration', id: reconfigId(change), chain_id: change.chainId, epoch: change.epoch,
    ops: change.ops.map((op) => (op.kind === 'params' ? { kind: op.kind, base_timeout_ms: op.baseTimeoutMs, idle_heartbeat_ms: op.idleHeartbeatMs }
      : op.kind === 'remove' ? { kind: op.kind, name: op.name }
        : { kind: op.kind, name: op.name, peer_id: op.peerId, public_key: toHex(op.publicKey), ...(op.addresses?.length ? { addresses: [...op.addresses] } : {}) })),
  };
}

const bad = (file: string, why: string): never => {
  throw new FedError('RECONFIG_FILE_INVALID', `${file}: ${why}`, { file });
};

/** A change file back: its id must be the id of what it holds (a file edited after proposing is refused). */
export async function readChange(file: string): Promise<Reconfiguration> {
  const y = parse(await fs.readFile(file, 'utf8')) as Partial<ChangeYaml> | null;
  if (!y || y.kind !== 'btcfed-reconfiguration' || !Array.isArray(y.ops)) return bad(file, 'not a change file from btcfed reconfigure propose');
  const ops = y.ops.map((op, i): ReconfigOp => {
    if (op.kind === 'params') {
      if (!Number.isSafeInteger(op.base_timeout_ms) || !Number.isSafeInteger(op.idle_heartbeat_ms)) return bad(file, `ops[${i}]: base_timeout_ms and idle_heartbeat_ms must be whole numbers of milliseconds`);
      return { kind: 'params', baseTimeoutMs: op.base_timeout_ms!, idleHeartbeatMs: op.idle_heartbeat_ms! };
    }
    if (op.kind === 'remove') return { kind: 'remove', name: String(op.name) };
    if ((op.kind !== 'add' && op.kind !== 'rotate') || typeof op.public_key !== 'string' || typeof op.peer_id !== 'string') return bad(file, `ops[${i}] is malformed`);
    if (op.addresses !== undefined && (!Array.isArray(op.addresses) || !op.addresses.every((a) => typeof a === 'string'))) return bad(file, `ops[${i}].addresses is not a list of addresses`);
    return { kind: op.kind, name: String(op.name), peerId: op.peer_id, publicKey: fromHex(op.public_key), ...(op.addresses?.length ? { addresses: op.addresses } : {}) };
  });
  const change: Reconfiguration = { chainId: String(y.chain_id), epoch: Number(y.epoch), ops };
  if (reconfigId(change) !== y.id) bad(file, `its id ${String(y.id).slice(0, 16)}… is not the id of what it holds (${reconfigId(change).slice(0, 16)}…): it was edited after it was proposed`);
  return change;
}

interface ApprovalYaml { kind: 'btcfed-approval'; id: string; member: string; validator: number; signature: string }

async function readApproval(file: string): Promise<ApprovalYaml> {
  const y = parse(await fs.readFile(file, 'utf8')) as Partial<ApprovalYaml> | null;
  if (!y || y.kind !== 'btcfed-approval' || typeof y.signature !== 'string' || typeof y.id !== 'string' || !Number.isInteger(y.validator)) {
    return bad(file, 'not an approval file from btcfed reconfigure approve');
  }
  return y as ApprovalYaml;
}

// ------------------------------------------------------------------ commands

export interface ProposeOptions {
  memberDir: string;
  add: string[];
  remove: string[];
  /** name=card-file */
  rotate: string[];
  /** New consensus parameters (durations, both or neither): the federation's base view timeout and idle heartbeat. */
  baseTimeout?: string;
  idleHeartbeat?: string;
  out: string;
}

export async function propose(o: ProposeOptions): Promise<{ change: Reconfiguration; id: string; file: string; size: number; checkedAgainst: string }> {
  const c = await contextOf(o.memberDir);
  const ops: ReconfigOp[] = [];
  for (const f of o.add) {
    const k = await card(f);
    ops.push({ kind: 'add', name: k.name, peerId: k.libp2p.peer_id, publicKey: fromHex(k.slh_dsa.public_key), addresses: k.libp2p.addresses });
  }
  for (const name of o.remove) ops.push({ kind: 'remove', name });
  for (const r of o.rotate) {
    const at = r.indexOf('=');
    if (at <= 0) throw new FedError('CLI_INVALID', `--rotate ${r}: expected NAME=CARD (the member's new card)`);
    const k = await card(r.slice(at + 1));
    if (k.name !== r.slice(0, at)) throw new FedError('CLI_INVALID', `--rotate ${r}: the card is ${k.name}'s, not ${r.slice(0, at)}'s`);
    ops.push({ kind: 'rotate', name: k.name, peerId: k.libp2p.peer_id, publicKey: fromHex(k.slh_dsa.public_key), addresses: k.libp2p.addresses });
  }
  if ((o.baseTimeout === undefined) !== (o.idleHeartbeat === undefined)) {
    throw new FedError('CLI_INVALID', 'a parameter change states both: give --base-timeout and --idle-heartbeat (0 for a block every view)');
  }
  if (o.baseTimeout !== undefined && o.idleHeartbeat !== undefined) {
    const ms = (flag: string, v: string) => {
      const d = v.trim() === '0' ? { ok: true as const, value: 0 } : parseDuration(v);
      if (!d.ok) throw new FedError('CLI_INVALID', `${flag} ${v}: ${d.reason}`);
      return Math.round(d.value);
    };
    ops.push({ kind: 'params', baseTimeoutMs: ms('--base-timeout', o.baseTimeout), idleHeartbeatMs: ms('--idle-heartbeat', o.idleHeartbeat) });
  }
  if (ops.length === 0) throw new FedError('CLI_INVALID', 'nothing to change: give --add CARD, --remove NAME, --rotate NAME=CARD or --base-timeout with --idle-heartbeat');
  const change: Reconfiguration = { chainId: c.chainId, epoch: c.set.epoch, ops };
  const next = against(c, () => nextValidatorSet(c.set, change, rules(c))); // refuses an invalid change, naming the field
  await writeFileAtomic(o.out, stringify(toYaml(change)));
  return { change, id: reconfigId(change), file: o.out, size: next.n, checkedAgainst: c.source };
}

export interface ApproveOptions {
  change: string;
  /** The signer's address, and the operator's certificate for it (its fingerprint is in signer.yaml operator_clients). */
  signer: string;
  caFile: string;
  certFile: string;
  keyFile: string;
  memberDir: string;
  out: string;
}

export async function approve(o: ApproveOptions): Promise<{ id: string; validator: number; member: string; file: string }> {
  const change = await readChange(o.change);
  const c = await contextOf(o.memberDir);
  const signer = createRemoteSigner({
    address: o.signer, validatorCount: c.set.n,
    // The signer's certificate is checked against the host dialled, as every client here does.
    security: { mode: 'mtls', caFile: o.caFile, certFile: o.certFile, keyFile: o.keyFile, serverName: parseAddress(o.signer).host },
  });
  try {
    const id = await signer.identity();
    const a = await signer.approve(change);
    const y: ApprovalYaml = { kind: 'btcfed-approval', id: a.id, member: id.member, validator: a.validatorIndex, signature: toHex(a.signature) };
    await writeFileAtomic(o.out, stringify(y));
    return { id: a.id, validator: a.validatorIndex, member: id.member, file: o.out };
  } finally {
    await signer.close();
  }
}

export interface AssembleOptions {
  memberDir: string;
  change: string;
  approvals: string[];
  out: string;
}

export async function assemble(o: AssembleOptions): Promise<{ id: string; approvals: number; quorum: number; bytes: number; file: string; checkedAgainst: string }> {
  const c = await contextOf(o.memberDir);
  const change = await readChange(o.change);
  const id = reconfigId(change);
  const approvals: Approval[] = [];
  for (const f of o.approvals) {
    const a = await readApproval(f);
    if (a.id !== id) bad(f, `approves change ${a.id.slice(0, 16)}…, not ${id.slice(0, 16)}…`);
    approvals.push({ validator: a.validator, signature: fromHex(a.signature) });
  }
  approvals.sort((x, y) => x.validator - y.validator);
  const slh = createSlhDsa({ paramSet: c.paramSet });
  against(c, () => {
    nextValidatorSet(c.set, change, rules(c));
    authorizeChange(c.set, change, approvals, (pk, m, s) => slh.verifySync(pk, m, s)); // every signature, before anything is written
  });
  const tx = encodeReconfigTx({ change, approvals });
  await writeFileAtomic(o.out, tx);
  return { id, approvals: approvals.length, quorum: c.set.quorum, bytes: tx.length, file: o.out, checkedAgainst: c.source };
}

/** A one-screen description of a change, approval or transaction file. */
export async function inspect(file: string): Promise<string> {
  const raw = await fs.readFile(file);
  let change: Reconfiguration;
  let extra = '';
  try {
    const tx = decodeReconfigTx(raw);
    change = tx.change;
    extra = `\n  approvals: ${tx.approvals.map((a) => a.validator).join(', ')} (${tx.approvals.length})`;
  } catch {
    const y = parse(raw.toString('utf8')) as { kind?: string } | null;
    if (y?.kind === 'btcfed-approval') {
      const a = y as ApprovalYaml;
      return `approval by ${a.member} (validator ${a.validator}) of change ${a.id}`;
    }
    change = await readChange(file);
  }
  const ops = change.ops.map((op) => describeOp(op, true));
  return `change ${reconfigId(change)}\n  chain ${change.chainId}, ends epoch ${change.epoch}\n  ${ops.join('\n  ')}${extra}`;
}

/**
 * Hands the transaction to a member's consensus (its admin API, with the operator certificate),
 * which passes it on to every validator: whichever leads next proposes it.
 */
export async function submit(o: { memberDir: string; tx: string; admin?: string }): Promise<{ id: string; epoch: number }> {
  const tx = new Uint8Array(await fs.readFile(o.tx));
  decodeReconfigTx(tx); // a file that is not a transaction is named here, before any call
  const client = adminClient(o.memberDir, o.admin);
  try {
    const r = await call(client.submitReconfiguration.bind(client), { tx }, { deadlineMs: 10_000 });
    return { id: r.reconfigId, epoch: r.epoch };
  } finally {
    client.close();
  }
}

/**
 * The chain's epochs as a member serves them, each end checked from this member's genesis set on
 * (the same walk `btcfed verify` makes): when and where each epoch ended, by which change, approved
 * by whom, and the set that followed. A proof that does not verify stops the listing, named.
 */
export async function history(o: { memberDir: string; consensus?: string }): Promise<string[]> {
  const trust = trustRootFrom(path.join(o.memberDir, 'conf.yaml'));
  const client = consensusClient(o.memberDir, o.consensus);
  try {
    const { proofs, current } = await fetchEpochProofs(client, trust.limits, 0, Number.MAX_SAFE_INTEGER);
    const names = (set: ValidatorSet, at: number[]) => at.map((i) => set.byIndex(i).name).join(', ');
    const lines = [`epoch 0: ${trust.genesis.n} validators (genesis): ${trust.genesis.members.map((v) => v.name).join(', ')}`];
    const walk = EpochHistory.fromGenesis(trust.genesis, { chainId: trust.chainId, publicKeyBytes: trust.publicKeyBytes }, (pk, m, s) => trust.dsa.verifySync(pk, m, s));
    for (const [e, proof] of proofs.entries()) {
      const before = walk.current;
      const v = followEpoch(walk, trust.chainId, proof, trust.dsa);
      if (!v.ok) {
        lines.push(`epoch ${e} ended with a proof that does not verify: ${v.reason}`);
        return lines;
      }
      const { change, approvals } = decodeReconfigTx(proof.last.txs.find(isReconfigTx)!);
      const ops = change.ops.map((op) => describeOp(op, false)).join('; ');
      lines.push(`epoch ${e} ended at height ${proof.last.header.height} (block ${toHex(proof.last.hash).slice(0, 16)}…) by change ${reconfigId(change).slice(0, 16)}…: ${ops}; approved by ${approvals.length} of ${before.n} (${names(before, approvals.map((a) => a.validator))})`);
      lines.push(`epoch ${e + 1}: ${v.set.n} validators: ${v.set.members.map((x) => x.name).join(', ')}`);
    }
    lines.push(`the member is in epoch ${current}; every epoch end above verified from this member's genesis set`);
    return lines;
  } finally {
    client.close();
  }
}
