// The facts the store reports, as a tagged union; publish.ts turns them into NATS messages.

export type Trigger = 'startup' | 'signal' | 'file_change' | 'api';

export type StoreEvent =
  | {
    type: 'config.reloaded'; version: number; trigger: Trigger; changedFiles: string[];
    confSha: string; peersSha: string; durationSeconds: number;
  }
  | {
    type: 'config.rejected'; keptVersion: number; trigger: Trigger;
    file: string; field: string; reason: string; backupPath: string;
  }
  | {
    type: 'peers.changed'; version: number; added: string[]; removed: string[]; updated: string[]; count: number;
  };
