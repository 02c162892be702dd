// `btcfed status | submit | watch | evidence`: a client of one member's public API, with that member's
// client certificate (tls/client.pem) when its conf.yaml has TLS (the member dir is --member,
// default .devnet/m0); `btcfed admin` with its operator certificate (tls/operator.pem).

import fs from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { parseConfText } from '#libs/config/index.ts';
import { toHex } from '#libs/crypto/index.ts';
import { FedError } from '#libs/errors/index.ts';
import { call, createClient, errorCodeOf } from '#libs/rpc/index.ts';
import { memberSecurity } from '#libs/service/index.ts';
import { AdminServiceClient, ConsensusServiceClient, TxStatus, type Evidence, type StreamCommitsResponse } from '#libs/gen/btcfed/v1/consensus.pb.ts';
import { readPatiently } from './reads.ts';

function memberConf(memberDir: string) {
  const file = path.join(memberDir, 'conf.yaml');
  if (!fs.existsSync(file)) throw new FedError('MEMBER_DIR_INVALID', `${file} not found: point --member at a member dir (made by btcfed init, btcfed devnet or btcfed member init)`, { file });
  return parseConfText(fs.readFileSync(file, 'utf8'), file);
}

/** The consensus address a client of this member dials: `address`, else its conf.yaml's listen. */
export function consensusAddress(memberDir: string, address?: string): string {
  return address ?? memberConf(memberDir).services.consensus.listen;
}

export function consensusClient(memberDir: string, address?: string): ConsensusServiceClient {
  const conf = memberConf(memberDir);
  return createClient(ConsensusServiceClient, address ?? conf.services.consensus.listen, {
    security: memberSecurity(conf, memberDir, 'client').client,
    grpcOptions: { 'grpc.max_receive_message_length': 64 << 20 }, // full blocks in StreamCommits
  });
}

/** AdminService of a member, with its operator certificate (tls/operator.pem, made by btcfed init). */
export function adminClient(memberDir: string, address?: string): AdminServiceClient {
  const conf = memberConf(memberDir);
  return createClient(AdminServiceClient, address ?? conf.services.consensus.admin_listen, { security: memberSecurity(conf, memberDir, 'operator').client });
}

/** Hex strings longer than this are shortened in the dump's summary (signatures are 17 KB and more). */
const SUMMARY_HEX_CHARS = 64;

/**
 * The state dump as an operator reads it: every value, long hex strings (signatures, QCs'
 * bitmaps) shortened to their start and byte count; `full` keeps them whole.
 */
export function dumpText(stateJson: string, full = false): string {
  if (full) return stateJson;
  const short = (_k: string, v: unknown) =>
    (typeof v === 'string' && v.length > SUMMARY_HEX_CHARS && /^[0-9a-f]+$/.test(v) ? `${v.slice(0, 16)}… (${v.length / 2} bytes)` : v);
  return JSON.stringify(JSON.parse(stateJson), short, 2);
}

export async function admin(client: AdminServiceClient, action: string, validator?: number, full = false): Promise<void> {
  switch (action) {
    case 'unmute': console.log(JSON.stringify(await call(client.unmute.bind(client), { validator: validator ?? 0 }))); return;
    case 'pause': console.log(JSON.stringify(await call(client.pause.bind(client), {}))); return;
    case 'resume': console.log(JSON.stringify(await call(client.resume.bind(client), {}))); return;
    case 'force-view-change': console.log(JSON.stringify(await call(client.forceViewChange.bind(client), {}))); return;
    case 'dump': console.log(dumpText((await call(client.dumpState.bind(client), {})).stateJson, full)); return;
    default: throw new Error(`admin: unknown action "${action}" (pause, resume, force-view-change, unmute, dump)`);
  }
}

/** GetStatus of one member; no answer in time is an error naming the address and what to check. */
export async function status(client: ConsensusServiceClient, address: string, timeoutMs = 5000): Promise<void> {
  const s = await reach(client, address, timeoutMs);
  console.log(JSON.stringify({ ...s, committedHash: toHex(s.committedHash) }, null, 2));
}

/**
 * The member's status, asked first by every command that talks to it: a consensus service that is
 * not running (or not where conf.yaml says) is CONSENSUS_UNREACHABLE within `timeoutMs`, a TLS
 * mismatch its RPC_TLS_ code at once — not a gRPC deadline after a command's own long wait.
 */
async function reach(client: ConsensusServiceClient, address: string, timeoutMs: number) {
  try {
    return await call(client.getStatus.bind(client), {}, { waitForReady: true, deadlineMs: timeoutMs });
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    // A TLS mismatch (wrong CA, certificate refused, name not in it) is said as such, at once.
    if (errorCodeOf(err)?.startsWith('RPC_TLS_')) throw err;
    if (code === grpc.status.DEADLINE_EXCEEDED || code === grpc.status.UNAVAILABLE) {
      throw new FedError('CONSENSUS_UNREACHABLE', `no answer from the consensus service at ${address} within ${timeoutMs} ms: is it running `
        + '(btcfed devnet, or systemctl status btcfed-consensus@<member>), is that its services.consensus.listen, and does this member dir hold the client certificate its CA signed?',
        { address });
    }
    throw err;
  }
}

/** SubmitTransactions takes at most this many per call (services/consensus/api.ts). */
const SUBMIT_BATCH = 10_000;

/**
 * Submits the transactions in batches of SUBMIT_BATCH (one call each), then — unless told not to
 * wait — waits until every accepted one is committed, or `timeoutMs` passes (an error naming how
 * many are still pending). Refused ones are reported with the member's reason and make it fail.
 */
export async function submit(client: ConsensusServiceClient, address: string, txs: Uint8Array[], wait: boolean, timeoutMs = 60_000): Promise<void> {
  await reach(client, address, 5000);
  const hashes: Uint8Array[] = [];
  const refused = new Map<string, number>();
  const t0 = Date.now();
  for (let i = 0; i < txs.length; i += SUBMIT_BATCH) {
    const batch = txs.slice(i, i + SUBMIT_BATCH);
    const r = await call(client.submitTransactions.bind(client), { txs: batch }, { waitForReady: true, deadlineMs: 30_000 });
    for (const res of r.results) {
      if (res.errorCode) refused.set(res.errorCode, (refused.get(res.errorCode) ?? 0) + 1);
      else hashes.push(res.txHash);
      if (txs.length <= 10) console.log(`${toHex(res.txHash)}${res.errorCode ? ` refused (${res.errorCode})` : res.duplicate ? ' (duplicate)' : ''} ${res.errorCode ? '' : 'accepted'}`.trimEnd());
    }
  }
  if (txs.length > 10) console.log(`${hashes.length} of ${txs.length} transactions accepted in ${Date.now() - t0} ms`);
  if (refused.size > 0) {
    const why = [...refused].map(([code, n]) => `${n} ${code}`).join(', ');
    if (hashes.length === 0) throw new Error(`every transaction was refused: ${why}`);
    console.log(`refused: ${why}`);
  }
  if (!wait) return;
  const pending = new Set(hashes.map(toHex));
  let last = { hash: '', height: 0 };
  while (pending.size > 0) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`${pending.size} of ${hashes.length} accepted transactions not committed after ${timeoutMs} ms (they stay in the mempool; \`btcfed status\` shows whether the member commits)`);
    for (const hex of [...pending]) {
      const r = await call(client.getTransaction.bind(client), { txHash: Buffer.from(hex, 'hex'), withProof: false });
      if (r.status !== TxStatus.TX_STATUS_COMMITTED) break; // committed in order, mostly: poll again from here
      pending.delete(hex);
      if (txs.length <= 10) console.log(`${hex} committed at height ${r.height}`);
      if (Number(r.height) >= last.height) last = { hash: hex, height: Number(r.height) };
    }
    if (pending.size > 0) await new Promise((res) => setTimeout(res, 100));
  }
  if (txs.length > 10) console.log(`all ${hashes.length} committed ${Date.now() - t0} ms after the first submit (last at height ${last.height})`);
}

/** One evidence item as a line: where it sits, the epoch and view, what conflicted, who, and when it was seen. */
export function evidenceLine(e: Evidence): string {
  const who = e.offenderName ? `${e.offenderName} (validator ${e.offender})` : `validator ${e.offender}`;
  const what = e.kind === 'proposal' ? 'two proposals' : `two ${e.kind} votes`;
  return `#${e.seq} epoch ${e.epoch} view ${e.view}: ${who} signed ${what} (seen ${new Date(Number(e.seenAtMs)).toISOString()})`;
}

/**
 * The member's equivocation evidence from (fromEpoch, fromView) on, every page of it: a line per
 * item, or with `json` one JSON object per item with both signed messages in hex (what a third
 * party checks the signatures of). Ends with how many items there were.
 */
export async function evidence(client: ConsensusServiceClient, address: string, from: { epoch: number; view: number }, json: boolean): Promise<number> {
  await reach(client, address, 5000);
  let afterSeq = 0;
  let n = 0;
  for (;;) {
    const r = await readPatiently(client.getEvidence.bind(client), { fromEpoch: from.epoch, fromView: from.view, afterSeq, limit: 0 }, { deadlineMs: 15_000 });
    for (const e of r.evidence) {
      n++;
      console.log(json
        ? JSON.stringify({ seq: Number(e.seq), epoch: Number(e.epoch), view: Number(e.view), kind: e.kind, offender: e.offender, offenderName: e.offenderName,
          seenAtMs: Number(e.seenAtMs), first: toHex(e.first), second: toHex(e.second) })
        : evidenceLine(e));
    }
    if (!r.more || r.evidence.length === 0) break;
    afterSeq = Number(r.evidence.at(-1)!.seq);
  }
  if (!json) console.log(n === 0 ? 'no equivocation evidence' : `${n} item${n === 1 ? '' : 's'} of equivocation evidence`);
  return n;
}

export async function watch(client: ConsensusServiceClient, fromHeight: number): Promise<void> {
  const stream = client.streamCommits({ fromHeight, headersOnly: false });
  stream.on('data', (r: StreamCommitsResponse) => {
    const b = r.block?.block;
    if (!b?.header) return;
    console.log(`height ${b.header.height}  view ${b.header.view}  proposer ${b.header.proposer}  txs ${b.txs.length}  hash ${toHex(r.block!.blockHash).slice(0, 16)}…`);
  });
  await new Promise<void>((resolve, reject) => {
    stream.on('end', resolve);
    stream.on('error', (e: grpc.ServiceError) => (e.code === grpc.status.CANCELLED ? resolve() : reject(e)));
    process.once('SIGINT', () => stream.cancel());
  });
}
