// What a consumer of a gateway's Attach stream is, carried in the call's metadata (the contract is
// in proto/btcfed/v1/gateway.proto, rpc Attach): a validator takes part in consensus; an observer
// follows the chain only, so the gateway tells the other validators this member's consensus is
// away. Read in the metadata, not in a first request, so the gateway knows before it says
// anything about the new consumer. Unsaid means validator (consumers that predate it).

import * as grpc from '@grpc/grpc-js';

export const ATTACH_ROLE_METADATA = 'btcfed-attach-role';
export const ATTACH_ROLES = ['validator', 'observer'] as const;
export type AttachRole = typeof ATTACH_ROLES[number];

/** Call metadata saying `role` (for GatewayService.attach). */
export function attachRoleMetadata(role: AttachRole): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set(ATTACH_ROLE_METADATA, role);
  return md;
}

/** The role an Attach call's metadata says, or why it says none that is known. */
export function attachRoleOf(md: grpc.Metadata): { role: AttachRole } | { error: string } {
  const values = md.get(ATTACH_ROLE_METADATA).map(String);
  if (values.length === 0) return { role: 'validator' };
  const [v] = values;
  if (values.length > 1) return { error: `${ATTACH_ROLE_METADATA} given ${values.length} times` };
  const role = ATTACH_ROLES.find((r) => r === v);
  return role ? { role } : { error: `${ATTACH_ROLE_METADATA} ${JSON.stringify(v!.slice(0, 40))} is not one of ${ATTACH_ROLES.join(', ')}` };
}
