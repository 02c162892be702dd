// How a member's other services follow its store: fetch the config in force, then every new
// version through WatchConfig, reconnecting when the stream is lost. Versions are applied one
// at a time, in order; a version that fails to apply is logged and skipped, never retried in a loop.

import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { parseConfObject, type Conf } from '#libs/config/index.ts';
import { errorMessage } from '#libs/errors/index.ts';
import { call } from '#libs/rpc/index.ts';
import type { ConfigSnapshot, StoreServiceClient } from '#libs/gen/btcfed/v1/store.pb.ts';

export interface MemberConfig { snapshot: ConfigSnapshot; conf: Conf }

export function toMemberConfig(snapshot: ConfigSnapshot): MemberConfig {
  return { snapshot, conf: parseConfObject(JSON.parse(snapshot.confJson), `conf.yaml of ${snapshot.member} (version ${snapshot.version})`) };
}

export async function fetchConfig(client: StoreServiceClient, includePrivateKey = false): Promise<MemberConfig> {
  const res = await call(client.getConfig.bind(client), { includePrivateKey }, { waitForReady: true, deadlineMs: 30_000 });
  if (!res.snapshot) throw new Error('the store answered GetConfig without a snapshot');
  return toMemberConfig(res.snapshot);
}

export function watchConfig(client: StoreServiceClient, opts: { afterVersion: number; includePrivateKey?: boolean },
  apply: (c: MemberConfig) => Promise<void> | void, log: Logger): () => void {
  let stream: grpc.ClientReadableStream<{ snapshot?: ConfigSnapshot | undefined }> | undefined;
  let stopped = false;
  let after = opts.afterVersion;
  let chain = Promise.resolve();
  const open = () => {
    if (stopped) return;
    stream = client.watchConfig({ includePrivateKey: opts.includePrivateKey ?? false, afterVersion: after });
    stream.on('data', (res: { snapshot?: ConfigSnapshot | undefined }) => {
      const s = res.snapshot;
      if (!s || s.version <= after) return;
      after = s.version;
      chain = chain.then(() => apply(toMemberConfig(s)))
        .catch((err: unknown) => log.error({ version: s.version, err: errorMessage(err) }, 'config version not applied'));
    });
    stream.on('error', (err: Error) => { if (!stopped) log.warn({ err: errorMessage(err) }, 'config watch lost; retrying'); });
    stream.on('close', () => { if (!stopped) setTimeout(open, 1000).unref(); });
  };
  open();
  return () => { stopped = true; stream?.cancel(); };
}
