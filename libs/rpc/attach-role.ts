// What a consumer of a gateway's Attach stream is, carried in the call's metadata (the contract is
// in proto/btcfed/v1/gateway.proto, rpc Attach): a validator takes part in consensus; an observer
// follows the chain only, so the gateway tells the other validators this member's consensus is
// away; a validator whose engine is catching up (`btcfed-attach-catching-up: true`) takes no part
// until it says otherwise (a Participation request). Read in the metadata, not in a first request,
// so the gateway knows before it says anything about the new consumer: a validator restarted
// catching up is never said present for the moment between its attach and its first request.
// Unsaid means validator, not catching up (consumers that predate it).

import * as grpc from '@grpc/grpc-js';

export const ATTACH_ROLE_METADATA = 'btcfed-attach-role';
export const ATTACH_CATCHING_UP_METADATA = 'btcfed-attach-catching-up';
export const ATTACH_ROLES = ['validator', 'observer'] as const;
export type AttachRole = typeof ATTACH_ROLES[number];

/** Call metadata saying `role`, and that the consumer is catching up (for GatewayService.attach). */
export function attachRoleMetadata(role: AttachRole, catchingUp = false): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set(ATTACH_ROLE_METADATA, role);
  if (catchingUp) md.set(ATTACH_CATCHING_UP_METADATA, 'true');
  return md;
}

/** The role an Attach call's metadata says, and whether it is catching up; or why it says none that is known. */
export function attachRoleOf(md: grpc.Metadata): { role: AttachRole; catchingUp: boolean } | { error: string } {
  const values = md.get(ATTACH_ROLE_METADATA).map(String);
  const said = md.get(ATTACH_CATCHING_UP_METADATA).map(String);
  if (values.length > 1) return { error: `${ATTACH_ROLE_METADATA} given ${values.length} times` };
  if (said.length > 1) return { error: `${ATTACH_CATCHING_UP_METADATA} given ${said.length} times` };
  const role = values.length === 0 ? 'validator' : ATTACH_ROLES.find((r) => r === values[0]);
  if (!role) return { error: `${ATTACH_ROLE_METADATA} ${JSON.stringify(values[0]!.slice(0, 40))} is not one of ${ATTACH_ROLES.join(', ')}` };
  if (said.length === 0) return { role, catchingUp: false };
  if (said[0] !== 'true' && said[0] !== 'false') return { error: `${ATTACH_CATCHING_UP_METADATA} ${JSON.stringify(said[0]!.slice(0, 40))} is not true or false` };
  const catchingUp = said[0] === 'true';
  if (catchingUp && role === 'observer') return { error: `${ATTACH_CATCHING_UP_METADATA}: an observer takes no part, it cannot be catching up` };
  return { role, catchingUp };
}
