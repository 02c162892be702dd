// The payload codec an event carries: structurally what ts-proto generates for every
// message (`ConfigReloaded`, `BlockCommitted`, ...), so generated objects are passed as is.
// Must never be JSON: events are protobuf so that fields can be added compatibly.

export interface Codec<T> {
  encode(message: T): { finish(): Uint8Array };
  decode(input: Uint8Array): T;
}

export function encodeWith<T>(codec: Codec<T>, message: T): Uint8Array {
  return codec.encode(message).finish();
}
