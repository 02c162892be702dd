// Starting a real store process on a test member and talking to it: the generated gRPC
// client, and a NATS subscription that records the store's events.

import * as grpc from '@grpc/grpc-js';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { StoreServiceClient } from '#libs/gen/btcfed/v1/store.pb.ts';
import { call } from '#libs/rpc/index.ts';
import { startService, type ServiceProcess } from './process.ts';
import type { TestMember } from './member.ts';

export const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';

export interface RunningStore {
  svc: ServiceProcess;
  port: number;
  client: StoreServiceClient;
  close(): Promise<void>;
}

export async function startStore(member: TestMember, extraArgs: string[] = []): Promise<RunningStore> {
  const svc = startService('services/store/main.ts', ['--data-dir', member.dir, '--listen', '127.0.0.1:0', '--nats', NATS_URL, ...extraArgs]);
  const ready = await svc.waitFor((l) => l.msg === 'store ready');
  const port = ready.grpcPort as number;
  const client = new StoreServiceClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  return {
    svc, port, client,
    async close() {
      client.close();
      await svc.stop();
    },
  };
}

export { call };

export interface Recorded<T> { subject: string; data: T }

/** Subscribes to `subject` and decodes every message; `next` waits for one that matches. */
export async function recordEvents<T>(subject: string, decode: (b: Uint8Array) => T) {
  const nc: NatsConnection = await connect({ servers: NATS_URL });
  const seen: Recorded<T>[] = [];
  const waiters = new Set<() => void>();
  const sub = nc.subscribe(subject);
  void (async () => {
    for await (const m of sub) {
      seen.push({ subject: m.subject, data: decode(m.data) });
      for (const w of waiters) w();
    }
  })();
  await nc.flush();
  return {
    seen,
    next(match: (r: Recorded<T>) => boolean = () => true, timeoutMs = 10_000, from = 0): Promise<Recorded<T>> {
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = seen.slice(from).find(match);
          if (hit) { clearTimeout(timer); waiters.delete(check); resolve(hit); }
        };
        const timer = setTimeout(() => { waiters.delete(check); reject(new Error(`no event on ${subject} within ${timeoutMs} ms; saw ${seen.length}`)); }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    close: () => nc.drain(),
  };
}
