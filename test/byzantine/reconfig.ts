// Reconfiguration attacks by a Byzantine leader that holds a real key: when m3 leads, its proposal
// goes out carrying a reconfiguration transaction the federation never approved — approved by m3
// alone, by m3 under one index three times, by m3's signature under other members' indices, for an
// epoch not reached, or for another chain — re-rooted, re-hashed and re-signed, so that only the
// reconfiguration's own checks (libs/blocks reconfigError) can refuse it. Honest members must refuse
// every such block, blame m3 (a strike: invalid_block), never end their epoch, and keep committing.

import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { blockHash, nextStateHash, proposalSigningBytes, reconfigSigningBytes, toHex } from '#libs/crypto/index.ts';
import { call } from '#libs/rpc/index.ts';
import { txRootOf } from '#libs/blocks/index.ts';
import { encodeReconfigTx, type Approval, type Reconfiguration } from '#libs/validators/index.ts';
import { BYZANTINE, HONEST } from './federation.ts';
import { check, deltas, perHonest, type Scenario } from './scenario.ts';

/** The forgeries, in the order m3 proposes them: what each does to the change or its approvals. */
const FORGERIES = ['one-approval', 'one-approver-thrice', 'borrowed-signatures', 'future-epoch', 'other-chain'] as const;
type Forgery = (typeof FORGERIES)[number];

const reconfigBelowQuorum: Scenario = {
  name: 'reconfig-below-quorum', ci: false,
  async start({ fed, byz, note }) {
    const c = fed.clients[0]!;
    const set = await call(c.getValidators.bind(c), {}, { deadlineMs: 5000 });
    const me = set.validators.find((v) => v.index === BYZANTINE);
    if (!me) throw new Error('m3 is not in m0\'s validator set');
    // A valid change of epoch 0's set: m3's key rotated to a fresh one of the right size. Only its
    // approvals (or its epoch, or its chain) are wrong.
    const rotate = (chainId: string, epoch: number): Reconfiguration => ({
      chainId, epoch, ops: [{ kind: 'rotate', name: me.name, peerId: me.peerId, publicKey: new Uint8Array(randomBytes(me.publicKey.length)) }],
    });
    const forge = async (kind: Forgery): Promise<Uint8Array> => {
      const change = kind === 'future-epoch' ? rotate(byz.chainId, 1) : kind === 'other-chain' ? rotate(`${byz.chainId}-other`, 0) : rotate(byz.chainId, 0);
      const mine = await byz.sign(reconfigSigningBytes(change));
      const approvals: Approval[] = kind === 'one-approver-thrice' ? [3, 3, 3].map((validator) => ({ validator, signature: mine }))
        : kind === 'borrowed-signatures' ? [0, 1, 3].map((validator) => ({ validator, signature: mine }))
        : kind === 'one-approval' ? [{ validator: BYZANTINE, signature: mine }]
        // Epoch and chain forgeries carry what would be a quorum had the signatures been theirs.
        : [0, 1, 3].map((validator) => ({ validator, signature: mine }));
      return encodeReconfigTx({ change, approvals });
    };
    const sent = new Map<Forgery, number>();
    let k = 0;
    byz.play({
      outbound(to, frame) {
        if (frame.type !== 'consensus' || frame.message.type !== 'proposal') return undefined;
        const p = frame.message;
        const parent = byz.driver.engine.block(toHex(p.block.header.parentHash));
        if (!parent) return undefined; // its state hash cannot be computed: sent as built
        const kind = FORGERIES[k++ % FORGERIES.length]!;
        void (async () => {
          const txs = [await forge(kind)];
          const txRoot = txRootOf({ txs });
          const header = { ...p.block.header, txRoot, stateHash: nextStateHash(parent.header.stateHash, txRoot) };
          const block = { header, hash: blockHash(header), txs };
          const signature = await byz.sign(proposalSigningBytes({ chainId: byz.chainId, epoch: 0, view: p.view, blockHash: block.hash, justify: p.justify }));
          sent.set(kind, (sent.get(kind) ?? 0) + 1);
          byz.inject(to, { type: 'consensus', message: { ...p, block, signature } });
        })().catch(() => undefined);
        return [];
      },
    });
    const invalid = () => perHonest(fed, 'btcfed_consensus_peer_offences_total', /peer="3",reason="invalid_block"/);
    const epochs = () => Promise.all(HONEST.map(async (i) => Number((await fed.status(i)).epoch)));
    const [invalid0, logBytes0] = [await invalid(), await Promise.all(HONEST.map((i) => logSize(fed.memberDir(i))))];
    return {
      stop: async () => {},
      async check() {
        const [invalid1, epochs1] = [await invalid(), await epochs()];
        const total = [...sent.values()].reduce((a, b) => a + b, 0);
        note(`m3 proposed ${total} blocks carrying an unapproved reconfiguration (${[...sent].map(([kind, n]) => `${kind} ${n}`).join(', ')}); refused as invalid_block and blamed on m3 ${deltas(invalid0, invalid1)}; honest epochs ${epochs1.join('/')}`);
        check(total > 0, 'm3 never led a view');
        check(invalid1.every((x, k) => x > invalid0[k]!), 'an honest member did not refuse (and blame m3 for) a block carrying an unapproved reconfiguration');
        check(epochs1.every((e) => e === 0), `an honest member left epoch 0: ${epochs1.join('/')}`);
        // What the honest members said about it names the reconfiguration's fault.
        const said = (await Promise.all(HONEST.map((i, j) => logSince(fed.memberDir(i), logBytes0[j]!))))
          .flat().filter((l) => /transaction 0: /.test(l));
        note(`honest consensus logs name the fault, e.g. ${said[0]?.match(/transaction 0: [^"]*/)?.[0]?.slice(0, 160) ?? '(none)'}`);
        check(said.length > 0, 'no honest consensus log names why the reconfiguration was refused');
      },
    };
  },
};

const logPath = (memberDir: string) => path.join(memberDir, 'logs', 'consensus.log');
const logSize = async (memberDir: string): Promise<number> => (await fs.stat(logPath(memberDir)).catch(() => ({ size: 0 }))).size;
async function logSince(memberDir: string, from: number): Promise<string[]> {
  const text = await fs.readFile(logPath(memberDir), 'utf8').catch(() => '');
  return text.slice(from).split('\n');
}

export const RECONFIG_SCENARIOS: Scenario[] = [reconfigBelowQuorum];
