// The signer's metrics (btcfed_signer_*): requests by kind and decision, refusals by rule (every
// rule's series from the start), durations, the safety state's marks, and whether the key's custody
// answers. What LocalSigner reports; the alert rules read these names (deploy/prometheus).

import type { Metrics } from '#libs/metrics/index.ts';
import { RULES, type SignerSafety } from './rules.ts';

export function signerMetrics(metrics: Metrics) {
  const requests = metrics.counter('signer_requests_total', 'Signing requests by kind and decision (signed, replayed, refused)', ['kind', 'decision']);
  const refusals = metrics.counter('signer_refusals_total', 'Refused signing requests by rule', ['rule']);
  // Every rule's series from the start: alerts see the first refusal as an increase from 0.
  for (const rule of RULES) refusals.inc({ rule }, 0);
  const duration = metrics.histogram('signer_request_duration_seconds', 'From dequeue to reply: rules, QC checks, signing, fsyncs', ['kind'],
    [0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1]);
  const lastVote = metrics.gauge('signer_last_vote_view', 'View of the last vote signed');
  const epoch = metrics.gauge('signer_epoch', 'The newest epoch this signer has been shown the proof of: the only one it signs for');
  const seated = metrics.gauge('signer_seat_state', '1 while this signer\'s key is in its epoch\'s validator set, 0 when it signs nothing (removed, rotated out, not yet added)');
  const locked = metrics.gauge('signer_locked_view', 'View of the QC the signer is locked on');
  const signed = metrics.gauge('signer_signatures', 'Signatures issued by this key (from the safety state)');
  const custodyFailures = metrics.counter('signer_custody_failures_total', 'Requests not signed because the key\'s token did not answer (signing, or authenticating the safety state)');
  custodyFailures.inc({}, 0);
  const custodyState = metrics.gauge('signer_custody_state', '1 while the key\'s custody answers (always for the file back-end), 0 while its token does not');
  custodyState.set(1);
  let down = false;
  return {
    requests, refusals, duration,
    get custodyDown(): boolean {
      return down;
    },
    custody(ok: boolean): void {
      if (!ok) custodyFailures.inc();
      down = !ok;
      custodyState.set(ok ? 1 : 0);
    },
    observe(s: SignerSafety, inSet: boolean): void {
      epoch.set(s.epoch);
      seated.set(inSet ? 1 : 0);
      lastVote.set(s.lastVote.view);
      locked.set(s.locked.view);
      signed.set(s.signed);
    },
  };
}
