// `btcfed status | submit | watch`: a client of one member's public API, with that member's
// client certificate (tls/client.pem) when its conf.yaml has TLS (the member dir is --member,
// default .devnet/m0); `btcfed admin` with its operator certificate (tls/operator.pem).

import fs from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { parseConfText } from '#libs/config/index.ts';
import { toHex } from '#libs/crypto/index.ts';
import { call, createClient } from '#libs/rpc/index.ts';
import { memberSecurity } from '#libs/service/index.ts';
import { AdminServiceClient, ConsensusServiceClient, TxStatus, type StreamCommitsResponse } from '#libs/gen/btcfed/v1/consensus.pb.ts';

export function consensusClient(memberDir: string, address?: string): ConsensusServiceClient {
  const file = path.join(memberDir, 'conf.yaml');
  if (!fs.existsSync(file)) throw new Error(`${file} not found: point --member at a member dir (made by btcfed init or npm start)`);
  const conf = parseConfText(fs.readFileSync(file, 'utf8'), file);
  return createClient(ConsensusServiceClient, address ?? conf.services.consensus.listen, {
    security: memberSecurity(conf, memberDir, 'client').client,
    grpcOptions: { 'grpc.max_receive_message_length': 64 << 20 }, // full blocks in StreamCommits
  });
}

/** AdminService of a member, with its operator certificate (tls/operator.pem, made by btcfed init). */
export function adminClient(memberDir: string, address?: string): AdminServiceClient {
  const file = path.join(memberDir, 'conf.yaml');
  const conf = parseConfText(fs.readFileSync(file, 'utf8'), file);
  return createClient(AdminServiceClient, address ?? conf.services.consensus.admin_listen, { security: memberSecurity(conf, memberDir, 'operator').client });
}

export async function admin(client: AdminServiceClient, action: string): Promise<void> {
  switch (action) {
    case 'pause': console.log(JSON.stringify(await call(client.pause.bind(client), {}))); return;
    case 'resume': console.log(JSON.stringify(await call(client.resume.bind(client), {}))); return;
    case 'force-view-change': console.log(JSON.stringify(await call(client.forceViewChange.bind(client), {}))); return;
    case 'dump': console.log((await call(client.dumpState.bind(client), {})).stateJson); return;
    default: throw new Error(`admin: unknown action "${action}" (pause, resume, force-view-change, dump)`);
  }
}

export async function status(client: ConsensusServiceClient): Promise<void> {
  const s = await call(client.getStatus.bind(client), {}, { waitForReady: true });
  console.log(JSON.stringify({ ...s, committedHash: toHex(s.committedHash) }, null, 2));
}

/** Submits the given transactions (strings), or `count` random ones of `size` bytes, and waits for their commit. */
export async function submit(client: ConsensusServiceClient, txs: Uint8Array[], wait: boolean): Promise<void> {
  const hashes: Uint8Array[] = [];
  const t0 = Date.now();
  for (const tx of txs) {
    const r = await call(client.submitTransaction.bind(client), { tx }, { waitForReady: true });
    hashes.push(r.txHash);
    if (txs.length <= 10) console.log(`${toHex(r.txHash)}${r.duplicate ? ' (duplicate)' : ''} accepted`);
  }
  if (txs.length > 10) console.log(`${txs.length} transactions accepted in ${Date.now() - t0} ms`);
  if (!wait) return;
  for (const [i, hash] of hashes.entries()) {
    for (;;) {
      const r = await call(client.getTransaction.bind(client), { txHash: hash });
      if (r.status === TxStatus.TX_STATUS_COMMITTED) {
        if (txs.length <= 10 || i === hashes.length - 1) console.log(`${toHex(hash)} committed at height ${r.height}`);
        break;
      }
      await new Promise((res) => setTimeout(res, 100));
    }
  }
  if (txs.length > 10) console.log(`all ${txs.length} committed ${Date.now() - t0} ms after the first submit`);
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
