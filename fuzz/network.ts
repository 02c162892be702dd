// The network-level campaign: mutated inputs sent to a running 4-member federation (real
// processes: test/byzantine/federation.ts) — consensus frames and raw stream bytes to the
// gateways from a keyless libp2p stranger and from a peer holding m3's key (a Byzantine member:
// its frames pass the gateway and reach the consensus service's decoder), peer-exchange messages, raw bytes on the presence protocol,
// and request bodies to the public gRPC API over its real TLS. Meanwhile and after, the honest
// members keep committing, none halts, and no service process exits.
// Inputs come from the seed corpus, mutated as in fuzz/mutate.ts, from one seed.

import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import * as grpc from '@grpc/grpc-js';
import { multiaddr } from '@multiformats/multiaddr';
import { parseConfText } from '#libs/config/index.ts';
import { createClient } from '#libs/rpc/index.ts';
import { memberSecurity } from '#libs/service/index.ts';
import { Federation, HONEST } from '../test/byzantine/federation.ts';
import { strangerNode } from '../test/support/gateway.ts';
import { CONSENSUS_PROTOCOL } from '../services/gateway/consensus.ts';
import { EXCHANGE_PROTOCOL } from '../services/gateway/exchange.ts';
import { PRESENCE_PROTOCOL } from '../services/gateway/presence.ts';
import { encodeFrame as lengthPrefixed } from '../services/gateway/framing.ts';
import { loadCorpus } from './corpus.ts';
import { mutated } from './mutate.ts';

export interface NetworkReport { sent: Record<string, number>; heights: { from: number; to: number }; exited: string[]; failures: string[] }

const API_METHODS = ['SubmitTransaction', 'SubmitTransactions', 'GetTransaction', 'GetStatus', 'GetBlock', 'ListBlocks', 'GetValidators', 'GetEpochs', 'GetEvidence'];

/** A ConsensusService client that sends raw bytes as the request body of any method. */
const RawClient = grpc.makeGenericClientConstructor(Object.fromEntries(API_METHODS.map((m) => [m, {
  path: `/btcfed.v1.ConsensusService/${m}`, requestStream: false, responseStream: false,
  requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b, responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b,
}])), 'RawConsensus');

const sample = (name: string, n: number, seed: number): Uint8Array[] => fc.sample(mutated(loadCorpus(name)), { seed, numRuns: n });

export async function networkCampaign(o: { ms: number; seed: number; say(s: string): void }): Promise<NetworkReport> {
  const sent: Record<string, number> = { consensus_frames: 0, raw_streams: 0, exchange: 0, grpc: 0 };
  const failures: string[] = [];
  o.say('fuzz-network: starting a 4-member federation');
  const fed = await Federation.start();
  const nodes: Awaited<ReturnType<typeof strangerNode>>[] = [];
  const raw: grpc.Client[] = [];
  try {
    const from = await fed.keepsCommitting(1);
    const m3Key = parseConfText(fs.readFileSync(path.join(fed.memberDir(3), 'conf.yaml'), 'utf8')).node.private_key;
    const stranger = await strangerNode();
    const byz = await strangerNode(m3Key);
    nodes.push(stranger, byz);
    const targets = HONEST.map((i) => multiaddr(`/ip4/127.0.0.1/tcp/${fed.ports(i).libp2p}`));
    for (const i of HONEST) {
      const dir = fed.memberDir(i);
      const conf = parseConfText(fs.readFileSync(path.join(dir, 'conf.yaml'), 'utf8'));
      raw.push(createClient(RawClient as never, conf.services.consensus.listen, { security: memberSecurity(conf, dir, 'client').client }));
    }
    const frames = sample('wire-frame', 2000, o.seed);
    const streams = sample('gateway-framing', 500, o.seed + 1);
    const exchange = sample('peer-exchange', 500, o.seed + 2);
    const requests = sample('public-api', 2000, o.seed + 3);
    const deadline = Date.now() + o.ms;
    let k = 0;
    const quietly = async (p: () => Promise<unknown>) => { try { await p(); } catch { /* refused, reset: the member's choice */ } };
    while (Date.now() < deadline) {
      const target = targets[k % targets.length]!;
      const node = k % 2 === 0 ? byz : stranger;
      // A stream of several mutated frames, each behind its length prefix, as a sender writes them.
      await quietly(async () => {
        const s = await node.dialProtocol(target, CONSENSUS_PROTOCOL, { signal: AbortSignal.timeout(2000) });
        for (let j = 0; j < 8; j++) { s.send(lengthPrefixed(frames[(k * 8 + j) % frames.length]!, 64 << 20)); sent.consensus_frames!++; }
        await s.close();
      });
      // Raw bytes on the stream: length prefixes of any value, cut anywhere.
      await quietly(async () => {
        const s = await node.dialProtocol(target, [EXCHANGE_PROTOCOL, CONSENSUS_PROTOCOL, PRESENCE_PROTOCOL, CONSENSUS_PROTOCOL][k % 4]!, { signal: AbortSignal.timeout(2000) });
        s.send(streams[k % streams.length]!.subarray(1)); sent.raw_streams!++;
        await s.close();
      });
      await quietly(async () => {
        const s = await stranger.dialProtocol(target, EXCHANGE_PROTOCOL, { signal: AbortSignal.timeout(2000) });
        s.send(exchange[k % exchange.length]!); sent.exchange!++;
        await s.close();
      });
      // A few gRPC calls with mutated bodies, to every honest member's public API.
      await Promise.all(raw.map((c, i) => quietly(() => new Promise((resolve) => {
        const r = requests[(k * raw.length + i) % requests.length]!;
        const method = API_METHODS[(r[0] ?? 0) % API_METHODS.length]!;
        sent.grpc!++;
        (c as unknown as Record<string, (b: Buffer, o: grpc.CallOptions, cb: (e: unknown) => void) => void>)[method]!(Buffer.from(r.subarray(1)), { deadline: Date.now() + 3000 }, resolve);
      }))));
      k++;
    }
    o.say(`fuzz-network: sent ${JSON.stringify(sent)}; checking the federation`);
    const after = await fed.keepsCommitting(3, 90_000).catch((err: Error) => { failures.push(`the honest members stopped committing: ${err.message}`); return { from: from.to, to: from.to }; });
    await fed.noneHalted().catch((err: Error) => failures.push(err.message));
    await fed.logsAgree().catch((err: Error) => failures.push(`logs disagree: ${err.message}`));
    const exited = fed.net.procs.filter((p) => p.exited).map((p) => `${p.member}/${p.service}`);
    if (exited.length > 0) failures.push(`services exited: ${exited.join(', ')}`);
    return { sent, heights: { from: from.to, to: after.to }, exited, failures };
  } finally {
    for (const c of raw) c.close();
    await Promise.all(nodes.map(async (n) => { try { await n.stop(); } catch { /* already down */ } }));
    await fed.stop();
    await fed.remove(false);
  }
}
