// Issue 9, item 4 (the signer's share): one request must not disable a signer for good, and a
// signer signs proposals only for the views its member leads. Real signers on real files (the
// in-process LocalSigner opened from a data dir, and the same behind mutual-TLS gRPC), real
// SLH-DSA QCs signed by the test validator set.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { blockHash } from '#libs/crypto/index.ts';
import { Phase, roundRobinLeader, type Block, type QuorumCert, type SignRequest } from '#libs/hotstuff/index.ts';
import { refused } from '../services/signer/contract.ts';
import type { LocalSigner, Refusal } from '../services/signer/signer.ts';
import { makeSignerWorld, type SignerWorld } from '../services/signer/testkit.ts';
import { signRequestToWire } from '../services/signer/wire.ts';
import { createPromMetrics } from '#libs/metrics/index.ts';
import { loadSignerConf, openLocalSigner } from '../services/signer/open.ts';
import { openInProcess, serveOverGrpc, silent, type GrpcSigner } from './support/signer.ts';

/** A block at any view, even one whose default timestamp would not be a safe integer. */
function blockAt(w: SignerWorld, view: number, parent: Block, proposer?: number): Block {
  const header = { ...w.header(0, parent, proposer === undefined ? {} : { proposer }), view, timestampMs: 1_700_000_000_000 };
  if (proposer === undefined) header.proposer = roundRobinLeader(view, w.n);
  return { header, hash: blockHash(header), txs: [] };
}

const prepareVote = (view: number, block: Block, justify: QuorumCert): SignRequest =>
  ({ kind: 'vote', epoch: 0, phase: Phase.PREPARE, view, blockHash: block.hash, header: block.header, justify });

describe('the view bound: a request at view v needs a QC at view ≥ v − max_view_jump', () => {
  let w: SignerWorld;
  let s: LocalSigner;
  const refusals: Refusal[] = [];
  const JUMP = 10;
  const metrics = createPromMetrics({ prefix: 'btcfed_', processMetrics: false });

  before(async () => {
    w = await makeSignerWorld({ n: 4, self: 1 });
    await w.writeConf({ max_view_jump: JUMP });
    s = await openLocalSigner({ dataDir: w.dir, conf: await loadSignerConf(w.dir), init: true, log: silent, metrics, onRefusal: (r) => refusals.push(r) });
  });
  after(async () => {
    await s.close();
    await w.cleanup();
  });

  test('a NEW-VIEW, a vote and a proposal at view 2^53−1 are refused with rule view-jump; the marks do not move', async () => {
    const top = Number.MAX_SAFE_INTEGER;
    const led = top - (((top % w.n) - w.self + w.n) % w.n); // the highest safe view this signer leads
    assert.equal(roundRobinLeader(led, w.n), w.self);
    await refused(s.sign({ kind: 'new-view', epoch: 0, view: top, highQC: w.gqc }), 'view-jump');
    await refused(s.sign(prepareVote(top, blockAt(w, top, w.genesis), w.gqc)), 'view-jump');
    await refused(s.sign({ kind: 'proposal', epoch: 0, view: led, block: blockAt(w, led, w.genesis, w.self), justify: w.gqc }), 'view-jump');
    assert.deepEqual([s.state.lastNewView, s.state.lastVote.view, s.state.lastProposalView], [0, 0, 0]);
    const last = refusals.at(-1)!;
    assert.equal(last.rule, 'view-jump');
    assert.match(last.reason, new RegExp(`view ${led} is ${led} views beyond its QC's view 0 \\(max_view_jump ${JUMP}\\)`));
    assert.equal(refusals.filter((r) => r.rule === 'view-jump').length, 3, 'each refusal reported');
    assert.match(await metrics.registry.metrics(), /btcfed_signer_refusals_total\{rule="view-jump"\} 3/, 'and counted');
  });

  test('the bound is exact: v − qc.view = max_view_jump is signed, one more is refused', async () => {
    await refused(s.sign({ kind: 'new-view', epoch: 0, view: JUMP + 1, highQC: w.gqc }), 'view-jump');
    const r = await s.sign({ kind: 'new-view', epoch: 0, view: JUMP, highQC: w.gqc });
    assert.equal(r.replayed, false);
    assert.equal(s.state.lastNewView, JUMP);
  });

  test('a member far behind follows the federation: a valid QC at a high view lets it sign there, whatever its marks', async () => {
    // This signer last signed around view 10; the federation reached view 5000 meanwhile.
    const far = 5000;
    const parent = w.block(far - 1, w.genesis);
    const qc = await w.qc(Phase.PREPARE, far - 1, parent.hash);
    const r = await s.sign(prepareVote(far, w.block(far, parent), qc));
    assert.equal(r.replayed, false);
    assert.equal(s.state.lastVote.view, far);
    const nv = await s.sign({ kind: 'new-view', epoch: 0, view: far - 1 + JUMP, highQC: qc });
    assert.equal(nv.replayed, false);
  });

  test('a QC claiming a high view to carry a jump must verify: a forged one is refused and moves nothing', async () => {
    const before = structuredClone({ v: s.state.lastVote, nv: s.state.lastNewView });
    const high = 10_000_000;
    const real = await w.qc(Phase.PREPARE, 7, w.genesis.hash);
    const forged: QuorumCert = { ...real, view: high - 1 };
    await refused(s.sign({ kind: 'new-view', epoch: 0, view: high, highQC: forged }), 'high-qc');
    await refused(s.sign(prepareVote(high, blockAt(w, high, w.genesis), { ...forged, blockHash: w.genesis.hash })), 'justify-qc');
    assert.deepEqual({ v: s.state.lastVote, nv: s.state.lastNewView }, before);
  });
});

describe('proposals only for the views this member may lead (mayLead from libs/hotstuff schedule.ts)', () => {
  let w: SignerWorld;
  let s: LocalSigner;
  before(async () => {
    w = await makeSignerWorld({ n: 4, self: 1 });
    s = await openInProcess(w, { init: true });
  });
  after(async () => {
    await s.close();
    await w.cleanup();
  });

  test('a proposal naming this signer as proposer for a view it cannot lead is refused with rule leader', async () => {
    // Views 2 and 3: the probe rotation (views 0–3), round robin only. Views 6 and 7: validator 1 is
    // 3 and 2 ring positions after their round-robin leaders, more than f = 1.
    for (const view of [2, 3, 6, 7]) {
      assert.notEqual(roundRobinLeader(view, w.n), w.self);
      await refused(s.sign({ kind: 'proposal', epoch: 0, view, block: w.block(view, w.genesis, { proposer: w.self }), justify: w.gqc }), 'leader');
    }
    assert.equal(s.state.lastProposalView, 0);
    // View 4 (round robin: validator 0): validator 1 leads it when the schedule skips validator 0.
    assert.equal((await s.sign({ kind: 'proposal', epoch: 0, view: 4, block: w.block(4, w.genesis, { proposer: w.self }), justify: w.gqc })).replayed, false);
    const r = await s.sign({ kind: 'proposal', epoch: 0, view: 5, block: w.block(5, w.genesis, { proposer: w.self }), justify: w.gqc });
    assert.equal(roundRobinLeader(5, w.n), w.self);
    assert.equal(r.replayed, false);
  });
});

describe('over gRPC: a view at the edge of the safe integers is refused as a view jump, explained', () => {
  let w: SignerWorld;
  let g: GrpcSigner;
  before(async () => {
    w = await makeSignerWorld({ n: 4, self: 1, tls: true });
    g = await serveOverGrpc(w, true);
  });
  after(async () => {
    await g.client.close();
    await g.server.shutdown({ graceMs: 500 });
    await g.local.close();
    await w.cleanup();
  });

  test('NEW-VIEW at 2^53−1 → FAILED_PRECONDITION rule=view-jump naming both views; the signer still signs after', async () => {
    await assert.rejects(g.client.sign({ kind: 'new-view', epoch: 0, view: Number.MAX_SAFE_INTEGER, highQC: w.gqc }),
      (err: Error & { details?: Record<string, unknown> }) => {
        assert.match(err.message, /rule=view-jump: view 9007199254740991 is 9007199254740991 views beyond its QC's view 0 \(max_view_jump 100000\)/);
        return true;
      });
    const r = await g.client.sign({ kind: 'new-view', epoch: 0, view: 1, highQC: w.gqc });
    assert.equal(r.replayed, false);
  });

  test('a uint64 view above 2^53−1 never reaches the rules: the decoder rejects it, nothing moves', async () => {
    const wire = signRequestToWire({ kind: 'new-view', epoch: 0, view: 2, highQC: w.gqc }, w.n);
    assert.equal(wire.method, 'signNewView');
    const err = await new Promise<{ code?: number; details?: string } | null>((resolve) => {
      g.client.client.signNewView({ ...(wire.request as object), view: 2 ** 60 } as never, (e: unknown) => resolve(e as never));
    });
    assert.ok(err, 'refused');
    assert.match(String(err.details), /deserializ/i);
    assert.equal(g.local.state.lastNewView, 1);
  });
});
