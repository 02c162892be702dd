// A probe process for services/consensus/tx-index.test.ts: commits blocks into a real block store,
// optionally prunes or merges the index, then kills itself (SIGKILL: no close, no merge of the transaction index), so
// the test can open what a crash leaves behind.
//
//   node test/durability/commit-probe.ts --dir DIR --blocks "a,b;c;d,e" [--prune H] [--flush] [--merge-at N]

import { parseArgs } from 'node:util';
import { blockHash, sha256 } from '#libs/crypto/index.ts';
import { Phase, genesisBlock, type Block } from '#libs/hotstuff/index.ts';
import { BlockStore } from '../../services/consensus/block-store.ts';

const { values } = parseArgs({ options: { dir: { type: 'string' }, blocks: { type: 'string' }, prune: { type: 'string' }, flush: { type: 'boolean' }, 'merge-at': { type: 'string' } } });
const CHAIN = 'commit-probe';
const enc = (s: string) => new TextEncoder().encode(s);
const store = new BlockStore({ path: values.dir!, limits: { validatorCount: 4, signatureBytes: 4, maxBlockTxs: 100, maxBlockBytes: 10_000 },
  hashBlock: blockHash, txIndex: { mergeAt: Number(values['merge-at'] ?? 1_000_000) } });
let tip: Block = genesisBlock(CHAIN, blockHash);
for (const [k, list] of values.blocks!.split(';').entries()) {
  const view = k + 1;
  const txs = list === '' ? [] : list.split(',');
  const header = { chainId: CHAIN, epoch: 0, height: tip.header.height + 1, view, parentHash: tip.hash, proposer: view % 4,
    timestampMs: 1000 + view, txRoot: sha256(enc(txs.join())), stateHash: sha256(enc(`s${view}`)) };
  tip = { header, hash: blockHash(header), txs: txs.map(enc) };
  await store.commit([tip], { phase: Phase.COMMIT, view, blockHash: tip.hash, signers: [0, 1, 2], signatures: [1, 2, 3].map((i) => new Uint8Array(4).fill(i)) });
}
if (values.prune) await store.prune(Number(values.prune));
if (values.flush) await store.flushTxIndex();
const { recent, indexedTo, merges, absent } = store.txIndexStats();
process.stdout.write(`${JSON.stringify({ committed: store.committedHeight(), recent, indexedTo, merges, absent, pruned: store.prunedTo() })}\n`);
process.kill(process.pid, 'SIGKILL');
