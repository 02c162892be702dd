// The GatewayService gRPC handlers: Attach (the consensus stream, see attach.ts) and ListPeers.
// FedError codes map to gRPC status in STATUS below, the one place this service does that
// (Attach refuses a second consumer itself, with FAILED_PRECONDITION, before any handler runs).

import * as grpc from '@grpc/grpc-js';
import type { Logger } from '#libs/log/index.ts';
import { rpcHandlers, statusTable } from '#libs/rpc/index.ts';
import type { GatewayServiceServer } from '#libs/gen/btcfed/v1/gateway.pb.ts';
import type { Gateway } from './gateway.ts';

export const STATUS = statusTable({
  FRAME_TOO_LARGE: grpc.status.INVALID_ARGUMENT,
  UNKNOWN_VALIDATOR: grpc.status.INVALID_ARGUMENT,
  SEND_TO_SELF: grpc.status.INVALID_ARGUMENT,
  MUTE_SELF: grpc.status.INVALID_ARGUMENT,
});

export function gatewayService(gateway: () => Gateway, log: Logger): GatewayServiceServer {
  const h = rpcHandlers({ statusOf: STATUS, log });
  return {
    attach: (call) => gateway().attach.handler(call),
    listPeers: h.unary(() => gateway().status()),
  };
}
