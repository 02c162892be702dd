// Target change-forward: a reconfiguration another validator passes on (wire ReconfigForward), as
// the consensus service reads it (services/consensus/inbound.ts → change-intake.ts): the frame is
// decoded, then the change checked against this epoch's set at most once per sender per epoch.
// Refusal: FedError WIRE_INVALID (the frame); what the intake refuses it says through its
// callbacks, never by throwing. Properties: a change is taken exactly when it is for this epoch and
// decodes, applies to the set and carries a quorum of approvals (the same checks restated); the
// sender's next forward in the epoch verifies no signature; a refusal as an offence says why.

import fc from 'fast-check';
import { isFedError } from '#libs/errors/index.ts';
import type { Block } from '#libs/hotstuff/index.ts';
import { authorizeChange, decodeReconfigTx, nextValidatorSet } from '#libs/validators/index.ts';
import { ConsensusFrame } from '#libs/gen/btcfed/v1/wire.pb.ts';
import { decodeFrame } from '#libs/wire/index.ts';
import { ChangeIntake } from '../../services/consensus/change-intake.ts';
import type { Epoch } from '../../services/consensus/epochs.ts';
import type { PendingChange } from '../../services/consensus/epoch-switch.ts';
import type { SignatureVerifier } from '../../services/consensus/verifier.ts';
import { violated, type FuzzTarget } from '../engine.ts';
import { RULES, SET, reconfigTx } from './reconfig-tx.ts';
import { CHAIN, LIMITS, SIG_BYTES, wildU64 } from './wire-values.ts';
import { protoBytes } from './wire-frame.ts';

/** Signatures "verify" when their first byte is 1 (as in reconfig-tx). */
const good = (sig: Uint8Array): boolean => sig[0] === 1;

/** Whether the change passes every check the intake makes of it, restated. */
function acceptable(tx: Uint8Array): boolean {
  try {
    const { change, approvals } = decodeReconfigTx(tx);
    nextValidatorSet(SET, change, RULES);
    authorizeChange(SET, change, approvals, (_pk, _m, sig) => good(sig));
    return true;
  } catch {
    return false;
  }
}

function run(input: Uint8Array): void {
  const frame = decodeFrame(input, LIMITS);
  if (frame.type !== 'reconfig-forward') return;
  let verified = 0;
  const epoch: Epoch = {
    number: SET.epoch, set: SET, root: undefined as unknown as Block, verifier: undefined as unknown as SignatureVerifier, params: undefined,
    reconfig: { rules: RULES, verify: (_pk, _m, sig) => { verified++; return good(sig); } },
  };
  const said: { kind: string; reason: string; detail: Record<string, unknown> }[] = [];
  let adopted = 0;
  let pending: PendingChange | undefined;
  const intake = new ChangeIntake({
    epoch: () => epoch, switching: () => false, pending: () => pending, signatureBytes: SIG_BYTES,
    adopt: (change) => { adopted++; pending = change; },
    refuse: (_from, reason, detail) => { said.push({ kind: 'refuse', reason, detail }); },
    useless: (_from, reason, detail) => { said.push({ kind: 'useless', reason, detail }); },
  });
  intake.onForward(1, frame.epoch, frame.tx);
  const ok = frame.epoch === SET.epoch && frame.tx.length <= intake.maxBytes(epoch) && acceptable(frame.tx);
  if (ok !== (adopted === 1)) violated(ok ? `a valid change of this epoch was not taken: ${JSON.stringify(said)}` : 'a change that fails its checks was taken');
  if (adopted > 1) violated('taken twice');
  for (const s of said) if (s.kind === 'refuse' && !(typeof s.detail.why === 'string' && s.detail.why.length > 0)) violated(`refused (${s.reason}) without saying why`);
  // The sender again: nothing verified, whatever it sends.
  const before = verified;
  intake.onForward(1, frame.epoch, frame.tx);
  intake.onForward(1, frame.epoch, frame.tx.subarray(1));
  if (verified !== before) violated(`the sender's later forwards in the epoch verified ${verified - before} signatures`);
  if (adopted > 1) violated('taken again');
}

const epochs = fc.oneof(fc.constant(SET.epoch), fc.constant(SET.epoch + 1), wildU64);

export const changeForward: FuzzTarget = {
  name: 'change-forward',
  describe: 'a reconfiguration another validator passes on (a forged change, a quorum of fake approvals, another epoch, junk): decoded, then checked against the epoch\'s set once per sender per epoch',
  sources: ['services/consensus/change-intake.ts', 'services/consensus/epoch-switch.ts', 'libs/validators/reconfig-tx.ts', 'libs/validators/reconfig.ts', 'libs/wire/frame.ts'],
  // A wild epoch the writer refuses (past 2^64) is sent as nothing.
  generate: fc.tuple(epochs, reconfigTx.generate).map(([epoch, tx]) => protoBytes(ConsensusFrame.encode, { chainId: CHAIN, body: { $case: 'reconfigForward', value: { epoch, tx } } })),
  run,
  refusal: (err) => isFedError(err, 'WIRE_INVALID'),
};
