// The catch-up word's hysteresis (catching-up.ts): said only once the engine has been behind for
// CATCH_UP_ENTER_MS (one missed proposal's fetch says nothing), unsaid once it is not, and never
// more often than one word every CATCH_UP_MIN_SAID_MS; a service starts saying it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CATCH_UP_ENTER_MS, CATCH_UP_MIN_SAID_MS, CATCH_UP_REFRESH_MS, CatchUpWord, watchCatchUp } from './catching-up.ts';
import { createLogger } from '#libs/log/index.ts';

/** Feeds `word` one poll every 250 ms from `t0` over `behind` (one entry per poll); returns the words said, at their times. */
function run(word: CatchUpWord, t0: number, behind: boolean[]): Array<[number, boolean]> {
  const said: Array<[number, boolean]> = [];
  behind.forEach((b, i) => {
    const w = word.observe(t0 + i * 250, b);
    if (w !== undefined) said.push([t0 + i * 250, w]);
  });
  return said;
}

test('catch-up word: a fetch shorter than the enter time says nothing; a long one is said once and unsaid when it ends', () => {
  const word = new CatchUpWord();
  // Behind for three polls (750 ms), then not: a missed proposal fetched again.
  assert.deepEqual(run(word, 0, [true, true, true, false, true, false]), []);
  assert.equal(word.saying, false);
  // Behind from 10 s for 10 s: said at 10 s + ENTER, unsaid at the first poll not behind.
  const long = [...Array(40).fill(true), false, false];
  const said = run(word, 10_000, long);
  assert.deepEqual(said, [[10_000 + CATCH_UP_ENTER_MS, true], [20_000, false]]);
  assert.equal(word.saying, false);
});

test('catch-up word: a word stands at least its minimum, so flapping says at most one word every few seconds', () => {
  const word = new CatchUpWord();
  // Behind 1.25 s, caught up 0.25 s, behind again…, for 30 s.
  const flapping = Array.from({ length: 120 }, (_, i) => i % 6 !== 5);
  const said = run(word, 0, flapping);
  assert.ok(said.length >= 2, `some words said (${said.length})`);
  for (let i = 1; i < said.length; i++) {
    assert.ok(said[i]![0] - said[i - 1]![0] >= CATCH_UP_MIN_SAID_MS, `words at ${said[i - 1]![0]} and ${said[i]![0]} ms`);
    assert.ok(said[i]![1] !== said[i - 1]![1] || said[i]![0] - said[i - 1]![0] >= CATCH_UP_REFRESH_MS, 'a word said again is said no sooner than the refresh');
  }
  // Caught up within the minimum after the word: unsaid when the minimum has passed.
  const w2 = new CatchUpWord();
  const s2 = run(w2, 0, [...Array(5).fill(true), false, false, false, false, false, false, false, false, false, false, false, false, false, false]);
  assert.deepEqual(s2, [[CATCH_UP_ENTER_MS, true], [CATCH_UP_ENTER_MS + CATCH_UP_MIN_SAID_MS, false]]);
});

test('catch-up word: a service starts saying it, and unsays it at the first commit that reaches it, or once its sync ends', () => {
  // Restarted current: its first commit comes at 0.5 s, and the word goes at once (the start's word
  // need not stand its minimum); a sync right after is said again only after the minimum.
  const current = new CatchUpWord({ saying: true, at: 0 });
  assert.equal(current.saying, true);
  assert.deepEqual(run(current, 0, [true, true, ...Array(20).fill(false)]), [[500, false]]);
  assert.deepEqual(run(current, 1000, Array(20).fill(true)), [[500 + CATCH_UP_MIN_SAID_MS, true]]);
  // Restarted far behind: no commit, then a sync of 25 s; said again every 10 s, unsaid at its end.
  const far = new CatchUpWord({ saying: true, at: 0 });
  assert.deepEqual(run(far, 0, [...Array(100).fill(true), false]), [[CATCH_UP_REFRESH_MS, true], [2 * CATCH_UP_REFRESH_MS, true], [25_000, false]]);
});

test('catch-up watch: the start\'s word is said at once and unsaid at the commit that pokes it, not a poll later', () => {
  let behind = true;
  const said: boolean[] = [];
  const w = watchCatchUp({ behind: () => behind, say: (b) => said.push(b), log: createLogger({ service: 'test', level: 'silent' }), now: () => 0 });
  try {
    assert.deepEqual(said, [true], 'said at the start, before any poll');
    w.poke();
    assert.deepEqual(said, [true], 'still behind: nothing new');
    behind = false; // the first commit
    w.poke();
    assert.deepEqual(said, [true, false], 'unsaid at the poke, synchronously');
    assert.equal(w.catchingUp, false);
  } finally {
    w.stop();
  }
});
