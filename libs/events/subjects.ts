// The subject scheme of every NATS event: btcfed.<member>.<service>.<event>, where the event
// may itself be dotted (config.reloaded, block.committed). Building and checking subjects in
// one place keeps publishers and subscribers agreeing. Must never let a wildcard into a
// subject that is published to.

import { FedError } from '#libs/errors/index.ts';

export const SUBJECT_ROOT = 'btcfed';

/** The JetStream stream of committed blocks and the subjects it captures. */
export const BLOCKS_STREAM = 'BTCFED_BLOCKS';
export const BLOCK_COMMITTED_EVENT = 'block.committed';
export const BLOCKS_SUBJECT = `${SUBJECT_ROOT}.*.consensus.${BLOCK_COMMITTED_EVENT}`;

// NATS treats whitespace as a separator and '*' / '>' as wildcards; '.' splits tokens.
const TOKEN_RE = /^[^\s.*>]+$/;

function invalid(what: string, value: string, why: string): never {
  throw new FedError('EVENT_SUBJECT_INVALID', `${what} ${JSON.stringify(value)}: ${why}`, { what, value });
}

function checkToken(what: string, token: string): void {
  if (token === '') invalid(what, token, 'must not be empty');
  if (!TOKEN_RE.test(token)) invalid(what, token, 'must not contain spaces, ".", "*" or ">"');
}

function checkEvent(event: string): void {
  if (event === '') invalid('event', event, 'must not be empty');
  for (const part of event.split('.')) {
    if (part === '' || !TOKEN_RE.test(part)) {
      invalid('event', event, 'dot-separated parts must be non-empty, without spaces, "*" or ">"');
    }
  }
}

/** `btcfed.<member>.<service>.<event>`, every token checked; never a wildcard. */
export function subject(member: string, service: string, event: string): string {
  checkToken('member', member);
  checkToken('service', service);
  checkEvent(event);
  return `${SUBJECT_ROOT}.${member}.${service}.${event}`;
}

/** What to subscribe to: any field left out (or '*') matches every member / service. */
export interface SubjectFilter {
  member?: string;
  service?: string;
  /** A dotted event name; '*' matches one part, a final '>' the rest. */
  event: string;
}

function checkPatternToken(what: string, token: string): void {
  if (token !== '*') checkToken(what, token);
}

/** Checks a subscription pattern under `btcfed.`; wildcards allowed in whole tokens only. */
export function checkPattern(pattern: string): string {
  const tokens = pattern.split('.');
  if (tokens[0] !== SUBJECT_ROOT) invalid('pattern', pattern, `must start with "${SUBJECT_ROOT}."`);
  if (tokens.length < 4 && tokens.at(-1) !== '>') invalid('pattern', pattern, 'expected btcfed.<member>.<service>.<event>');
  tokens.slice(1).forEach((token, i, rest) => {
    if (token === '>' && i === rest.length - 1) return;
    if (token === '*') return;
    if (token === '' || !TOKEN_RE.test(token)) invalid('pattern', pattern, `token ${i + 1} ${JSON.stringify(token)} is not valid`);
  });
  return pattern;
}

export function patternOf(filter: SubjectFilter): string {
  const member = filter.member ?? '*';
  const service = filter.service ?? '*';
  checkPatternToken('member', member);
  checkPatternToken('service', service);
  return checkPattern(`${SUBJECT_ROOT}.${member}.${service}.${filter.event}`);
}

export interface ParsedSubject {
  member: string;
  service: string;
  event: string;
}

/** Splits a received subject; undefined when it is not in the btcfed scheme. */
export function parseSubject(value: string): ParsedSubject | undefined {
  const tokens = value.split('.');
  const [root, member, service, ...event] = tokens;
  if (root !== SUBJECT_ROOT || !member || !service || event.length === 0) return undefined;
  return { member, service, event: event.join('.') };
}
