// What exactly a member signs for each message: the canonical bytes of libs/crypto, filled
// from the engine's messages and sign requests. One place, so the signer, the verifying
// driver and the simulator can never disagree about which fields a signature covers.

import { newViewSigningBytes, proposalSigningBytes, voteSigningBytes } from '#libs/crypto/index.ts';
import type { SignedMessage, SignRequest } from '#libs/hotstuff/index.ts';

/** The bytes `m.signature` must verify over. */
export function signingBytesOf(chainId: string, m: SignedMessage): Uint8Array {
  switch (m.type) {
    case 'proposal':
      return proposalSigningBytes({ chainId, epoch: m.block.header.epoch, view: m.view, blockHash: m.block.hash, justify: m.justify });
    case 'vote':
      return voteSigningBytes({ chainId, epoch: m.epoch, phase: m.phase, view: m.view, blockHash: m.blockHash });
    case 'new-view':
      return newViewSigningBytes({ chainId, epoch: m.epoch, view: m.view, highQC: m.highQC });
    default: {
      const never: never = m;
      throw new Error(`no signing bytes for ${JSON.stringify(never)}`);
    }
  }
}

/** The bytes a signer signs when it grants `req` (the same bytes as the resulting message's). */
export function signingBytesOfRequest(chainId: string, req: SignRequest): Uint8Array {
  switch (req.kind) {
    case 'proposal':
      return proposalSigningBytes({ chainId, epoch: req.epoch, view: req.view, blockHash: req.block.hash, justify: req.justify });
    case 'vote':
      return voteSigningBytes({ chainId, epoch: req.epoch, phase: req.phase, view: req.view, blockHash: req.blockHash });
    case 'new-view':
      return newViewSigningBytes({ chainId, epoch: req.epoch, view: req.view, highQC: req.highQC });
    default: {
      const never: never = req;
      throw new Error(`no signing bytes for ${JSON.stringify(never)}`);
    }
  }
}
