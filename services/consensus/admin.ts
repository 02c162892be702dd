// The operator's AdminService: pause and resume signing, force a view change, forgive a muted
// validator, dump the engine's state, submit a reconfiguration. On its own listener (admin_listen), for the member's
// operator certificate only (and, with admin_clients, only those fingerprints). Every request is
// logged with the client certificate's subject.

import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { FedError } from '#libs/errors/index.ts';
import { peerCertificate, requirePeer, rpcHandlers, statusTable } from '#libs/rpc/index.ts';
import type { AdminServiceServer } from '#libs/gen/btcfed/v1/consensus.pb.ts';
import type { ConsensusDriver } from './driver.ts';
import type { PendingChange } from './epoch-switch.ts';


const STATUS = statusTable({
  REQUEST_INVALID: grpc.status.INVALID_ARGUMENT,
  RECONFIG_MALFORMED: grpc.status.INVALID_ARGUMENT,
  RECONFIG_INVALID: grpc.status.INVALID_ARGUMENT,
  RECONFIG_UNAUTHORISED: grpc.status.PERMISSION_DENIED,
  RECONFIG_BUSY: grpc.status.FAILED_PRECONDITION,
  RECONFIG_UNAVAILABLE: grpc.status.UNIMPLEMENTED,
  RPC_PEER_UNAUTHENTICATED: grpc.status.UNAUTHENTICATED,
  RPC_PEER_NOT_ALLOWED: grpc.status.PERMISSION_DENIED,
});

export interface AdminDeps {
  log: Logger;
  driver: ConsensusDriver;
  /** The size of the current epoch's validator set (Unmute names a validator by index). */
  validators(): number;
  /** Client certificate fingerprints allowed; undefined = any certificate the transport accepted. */
  allowedClients?: readonly string[];
}

export function adminService(d: AdminDeps): AdminServiceServer {
  const h = rpcHandlers({ statusOf: STATUS, log: d.log });
  const allowed = d.allowedClients;
  const operator = <Req, Res>(method: string, fn: (req: Req) => Res | Promise<Res>) => h.unary<Req, Res>((req, call) => {
    const peer = allowed ? requirePeer(call, allowed) : peerCertificate(call);
    d.log.warn({ method, client: peer?.subject ?? 'loopback (no TLS)' }, 'admin request');
    return fn(req);
  });
  return {
    pause: operator('Pause', () => { d.driver.setPaused(true); return { paused: true }; }),
    resume: operator('Resume', () => { d.driver.setPaused(false); return { paused: false }; }),
    forceViewChange: operator('ForceViewChange', () => ({ view: d.driver.forceViewChange() })),
    unmute: operator('Unmute', (req: { validator: number }) => {
      const n = d.validators();
      if (!Number.isInteger(req.validator) || req.validator >= n) {
        throw new FedError('REQUEST_INVALID', `validator: ${req.validator} is not in the set of ${n}`);
      }
      return { wasMuted: d.driver.forgive(req.validator) };
    }),
    submitReconfiguration: operator('SubmitReconfiguration', async (req: { tx: Uint8Array }) => {
      const id = await d.driver.submitChangeDurably(req.tx);
      return { reconfigId: id, epoch: d.driver.epoch };
    }),
    dumpState: operator('DumpState', () => {
      const e = d.driver.engine;
      // Bytes as hex: a Uint8Array, and a Buffer, which JSON.stringify has turned into { type: 'Buffer', data } before the replacer sees it.
      const hex = (_k: string, v: unknown) => {
        if (v instanceof Uint8Array) return Buffer.from(v).toString('hex');
        const b = v as { type?: unknown; data?: unknown } | null;
        return b !== null && typeof b === 'object' && b.type === 'Buffer' && Array.isArray(b.data) ? Buffer.from(b.data as number[]).toString('hex') : v;
      };
      return { stateJson: JSON.stringify({ epoch: d.driver.epoch, self: d.driver.self, validators: d.validators(), view: e.view, halted: e.halted, paused: d.driver.paused, safety: e.safety,
        committed: { height: e.committed.header.height, hash: e.committed.hash }, suspectedLeaders: e.suspectedLeaders, skippedLeaders: e.skippedLeaders(e.view),
        muted: d.driver.penalties.summary().filter((p) => p.muted).map((p) => p.peer), failure: d.driver.failure?.message,
        pendingChange: pending(d.driver.pendingChange) }, hex, 2) };
    }),
  };
}

/** The change a member holds for its epoch, as DumpState shows it: whose it is, not its bytes. */
function pending(p: PendingChange | undefined): { id: string; epoch: number; ops: number; from: number | 'submitted here' } | null {
  return p ? { id: p.id, epoch: p.epoch, ops: p.ops, from: p.from ?? 'submitted here' } : null;
}
