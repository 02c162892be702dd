// The command line's reads of a member's public API. A member refuses a client that has spent its
// read budget (RESOURCE_EXHAUSTED, API_RATE_LIMIT) and names the wait ("try again in 6.0 s"): the
// command waits it out and asks again, saying so on stderr, instead of failing — a `btcfed verify`
// run by a client whose certificate another tool's reads share, say. Any other error fails the
// command as before, and so does a refusal past a minute's patience.

import { callPatiently, type CallOptions, type UnaryMethod } from '#libs/rpc/index.ts';

export function readPatiently<Req, Res>(method: UnaryMethod<Req, Res>, request: Req, opts: CallOptions = {}): Promise<Res> {
  return callPatiently(method, request, {
    ...opts,
    onWait: (ms, details) => process.stderr.write(`btcfed: the member refused a read (${details}); asking again in ${(ms / 1000).toFixed(1)} s\n`),
  });
}
