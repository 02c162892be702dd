// Every fuzz target, by name: each reads bytes a peer, a client or another operator chooses.
import type { FuzzTarget } from '../engine.ts';
import { attachRequest } from './attach-request.ts';
import { batchDiskValue } from './batch-disk-value.ts';
import { changeForward } from './change-forward.ts';
import { configFiles, genesisCard } from './config-files.ts';
import { eventsCodec } from './events-codec.ts';
import { gatewayFraming } from './gateway-framing.ts';
import { peerExchange } from './peer-exchange.ts';
import { presence } from './presence.ts';
import { publicApi } from './public-api.ts';
import { reconfigTx } from './reconfig-tx.ts';
import { signerRequest } from './signer-request.ts';
import { wireFrame } from './wire-frame.ts';

export const TARGETS: readonly FuzzTarget[] = [
  gatewayFraming, wireFrame, peerExchange, publicApi, signerRequest, eventsCodec, configFiles, genesisCard, reconfigTx, attachRequest, presence, batchDiskValue, changeForward,
] as FuzzTarget[];

export function targetNamed(name: string): FuzzTarget | undefined {
  return TARGETS.find((t) => t.name === name);
}
