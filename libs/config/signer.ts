// The schema of signer.yaml, the signer's OWN config file: it lives in the signer's data dir,
// possibly on another (hardened) host, and holds the validator set the signer checks QCs
// against — never one it is sent. Errors name file, field and reason like conf.yaml's do.
// Pieces shared with conf.yaml (validator entries, crypto, logging, nats, tls, chain id) are
// taken from confSchema itself so the two files cannot drift apart.
// Must never hold a passphrase or key material: only where to find them.

import { z } from 'zod';
import { paramSpec } from '#libs/crypto/index.ts';
import { configInvalid, parseYaml, type ConfigIssue } from './parse.ts';
import { MEMBER_NAME, confSchema } from './schema.ts';
import { parseHostPort } from './values.ts';

const shared = confSchema.shape;

const listen = z.string().default('127.0.0.1:7400').superRefine((v, ctx) => {
  const r = parseHostPort(v, true);
  if (!r.ok) ctx.addIssue({ code: 'custom', message: r.reason });
});

const metricsEndpoint = z.string().default('').superRefine((v, ctx) => {
  if (v === '') return;
  const r = parseHostPort(v, true);
  if (!r.ok) ctx.addIssue({ code: 'custom', message: r.reason });
});

/** SHA-256 of a client certificate's DER: 64 hex digits, colons and case as the operator likes. */
const fingerprint = z.string().transform((v, ctx) => {
  const hex = v.replace(/[:\s]/g, '').toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(hex)) {
    ctx.addIssue({ code: 'custom', message: 'must be a SHA-256 certificate fingerprint (64 hex digits, colons allowed)' });
    return z.NEVER;
  }
  return hex;
});

/** A plain file name inside the data dir, or an absolute path. */
const fileName = z.string().min(1).refine((v) => !v.includes('\0'), 'must be a file path');

export const signerConfSchema = z.strictObject({
  member: z.string().regex(MEMBER_NAME, 'must be 1–32 characters of a-z, 0-9 and "-", starting with a letter or digit'),
  chain_id: shared.consensus.unwrap().shape.chain_id,
  listen,
  /** Required unless the signer runs with --insecure on loopback. */
  tls: shared.tls,
  /** Empty: any certificate the CA signed may call; otherwise only these fingerprints. */
  allowed_clients: z.array(fingerprint).default([]),
  crypto: shared.crypto,
  /** The encrypted SLH-DSA key, relative to the data dir. */
  key_file: fileName.default('signer.key'),
  passphrase_file: fileName.optional(),
  passphrase_env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name').optional(),
  /** Absent: refusals are logged and journaled but not published. */
  nats: z.strictObject({
    url: z.string().regex(/^(nats|tls):\/\/[^\s]+$/, 'must be a nats:// or tls:// URL'),
  }).optional(),
  metrics: metricsEndpoint,
  logging: shared.logging,
  /** The validator set in index order (same shape as conf.yaml's); empty only before keygen. */
  validators: shared.validators,
}).superRefine((conf, ctx) => {
  const sources = (conf.passphrase_file ? 1 : 0) + (conf.passphrase_env ? 1 : 0);
  if (sources !== 1) {
    ctx.addIssue({ code: 'custom', path: ['passphrase_file'], message: 'exactly one of passphrase_file and passphrase_env is required' });
  }
  const keyBytes = paramSpec(conf.crypto.param_set).publicKeyBytes;
  const seen = { name: new Set<string>(), peer_id: new Set<string>(), public_key: new Set<string>() };
  conf.validators.forEach((v, i) => {
    if (v.public_key.length !== keyBytes * 2) {
      ctx.addIssue({ code: 'custom', path: ['validators', i, 'public_key'],
        message: `must be ${keyBytes} bytes (${keyBytes * 2} hex characters) for ${conf.crypto.param_set}, got ${v.public_key.length / 2}` });
    }
    for (const field of ['name', 'peer_id', 'public_key'] as const) {
      if (seen[field].has(v[field])) ctx.addIssue({ code: 'custom', path: ['validators', i, field], message: `duplicate ${field} "${v[field]}"` });
      seen[field].add(v[field]);
    }
  });
});

export type SignerConfInput = z.input<typeof signerConfSchema>;
export type SignerConf = z.output<typeof signerConfSchema>;

// parse.ts keeps its zod→issue mapping private; this is the same mapping for this file.
function issuesOf(file: string, error: z.ZodError): ConfigIssue[] {
  return error.issues.flatMap((issue): ConfigIssue[] => {
    const base = issue.path.map(String);
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((k) => ({ file, field: [...base, k].join('.'), reason: 'unknown field' }));
    }
    return [{ file, field: base.join('.'), reason: issue.message }];
  });
}

export function parseSignerConfObject(data: unknown, file = 'signer.yaml'): SignerConf {
  const r = signerConfSchema.safeParse(data);
  if (!r.success) throw configInvalid(file, issuesOf(file, r.error));
  return r.data;
}

export function parseSignerConfText(text: string, file = 'signer.yaml'): SignerConf {
  return parseSignerConfObject(parseYaml(text, file), file);
}
