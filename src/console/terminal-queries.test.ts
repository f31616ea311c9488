import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ReplyArbiter } from './reply-arbiter.js';
import { InputSplitter, QueryScanner, stripQueries } from './terminal-queries.js';

const b = (s: string) => Buffer.from(s, 'latin1');
const CPR_QUERY = '\x1b[6n';

// What systemd 254+ writes on a serial getty to learn the screen's size (terminal_get_size_by_dsr): save the
// cursor, ask where it is, go to the far corner, ask again, restore.
const SYSTEMD_SIZE_PROBE = '\x1b7\x1b[6n\x1b[32766;32766H\x1b[6n\x1b8';

test('stripQueries: the replay keeps the text and the colours, not the questions', () => {
  const output = `Debian GNU/Linux 13 ttyS0\r\n${SYSTEMD_SIZE_PROBE}\x1b[1;32mOK\x1b[0m \x1b[c\x1b[>c\x1b]11;?\x07\x1b[18t\x1bP$qm\x1b\\\x1b[?2004$p\r\nsnabbvm login: `;
  assert.equal(
    stripQueries(b(output)).toString('latin1'),
    'Debian GNU/Linux 13 ttyS0\r\n\x1b7\x1b[32766;32766H\x1b8\x1b[1;32mOK\x1b[0m \r\nsnabbvm login: ',
  );
  const plain = b('no escapes at all\r\n');
  assert.equal(stripQueries(plain), plain, 'output without queries is passed as it is');
});

test('QueryScanner: finds queries, also when a chunk ends inside one', () => {
  const scanner = new QueryScanner();
  assert.deepEqual(scanner.scan(b('login: \x1b[')), []);
  assert.deepEqual(scanner.scan(b('6n')), ['cursor']);
  assert.deepEqual(scanner.scan(b(`${SYSTEMD_SIZE_PROBE}\x1b[c\x1b]1`)), ['cursor', 'cursor', 'attributes']);
  assert.deepEqual(scanner.scan(b('1;?\x1b')), []);
  assert.deepEqual(scanner.scan(b('\\ and \x1b[1mbold\x1b[m')), ['colour']);
  assert.deepEqual(scanner.scan(b('\x1b[31m\x1b[2J\x1b[H\x1b[?25l')), [], 'colours, clearing and cursor moves are not queries');
});

test('InputSplitter: keystrokes and replies apart; a reply cut in two is put together; a lone Escape is a key', async () => {
  const split = new InputSplitter();
  assert.deepEqual(split.split(b('root\r\x1b[28;1Rls\x1b[A')), [{ keys: b('root\r') }, { reply: 'cursor', bytes: b('\x1b[28;1R') }, { keys: b('ls\x1b[A') }]);
  assert.deepEqual(split.split(b('\x1b[40;15')), []);
  assert.equal(split.holding, true);
  assert.deepEqual(split.split(b('0R')), [{ reply: 'cursor', bytes: b('\x1b[40;150R') }]);
  assert.deepEqual(split.split(b('\x1b')), [{ keys: b('\x1b') }], 'Escape alone is not held');
  assert.deepEqual(split.split(b('x\x1b[')), [{ keys: b('x') }]);
  assert.deepEqual(split.flush(), b('\x1b['), 'the held start of a sequence is keys after all (Alt-[)');
  assert.deepEqual(split.split(b('\x1b[?1;2c\x1b]11;rgb:0000/0000/0000\x1b\\\x1b[8;40;150t')), [
    { reply: 'attributes', bytes: b('\x1b[?1;2c') },
    { reply: 'colour', bytes: b('\x1b]11;rgb:0000/0000/0000\x1b\\') },
    { reply: 'window', bytes: b('\x1b[8;40;150t') },
  ]);
});

/** An arbiter whose guest side is a list of what reached the guest. */
function arbiterWithGuest(timings = {}) {
  const guestGot: string[] = [];
  const arbiter = new ReplyArbiter((bytes) => guestGot.push(bytes.toString('latin1')), { holdMs: 40, ...timings });
  return { arbiter, guestGot };
}

test('ReplyArbiter: one answer per live query, however many terminals answer it', () => {
  const { arbiter, guestGot } = arbiterWithGuest();
  const [a, b1, c] = [arbiter.attach(), arbiter.attach(), arbiter.attach()];
  arbiter.guestWrote(b(CPR_QUERY));
  a.write(b('\x1b[28;1R'));
  b1.write(b('\x1b[40;1R'));
  c.write(b('\x1b[30;1R'));
  assert.deepEqual(guestGot, ['\x1b[28;1R']);
  assert.equal(arbiter.waiting, 0);
});

test('ReplyArbiter: replies to no live query are dropped; keystrokes always pass', () => {
  const { arbiter, guestGot } = arbiterWithGuest();
  const late = arbiter.attach();
  late.write(b('\x1b[28;1R\x1b[28;64Rdebian\r'));
  assert.deepEqual(guestGot, ['debian\r'], 'answers to replayed queries never reach the login prompt');
  late.write(b('\x1b[1;2R'));
  assert.deepEqual(guestGot, ['debian\r', '\x1b[1;2R'], 'Shift-F3 looks like a cursor report: with no query waiting it is a key');
});

test('ReplyArbiter: a guest that asks in a loop with nobody attached keeps at most 64 queries waiting', () => {
  const { arbiter } = arbiterWithGuest();
  arbiter.guestWrote(b(CPR_QUERY.repeat(10_000)));
  assert.equal(arbiter.waiting, 64);
});

test('ReplyArbiter: a query the guest stopped waiting for gets no answer', () => {
  let now = 0;
  const guestGot: string[] = [];
  const arbiter = new ReplyArbiter((bytes) => guestGot.push(bytes.toString('latin1')), { queryTtlMs: 5000 }, () => now);
  const t = arbiter.attach();
  arbiter.guestWrote(b(CPR_QUERY));
  now = 6000;
  t.write(b('\x1b[5;5R'));
  assert.deepEqual(guestGot, []);
});

test('ReplyArbiter: the guest gets one terminal\'s size: the one that answered first keeps answering', async () => {
  const { arbiter, guestGot } = arbiterWithGuest();
  const small = arbiter.attach();
  const big = arbiter.attach();
  // systemd's two questions: where is the cursor, then (after moving to the far corner) where is it now
  arbiter.guestWrote(b(CPR_QUERY));
  small.write(b('\x1b[24;1R'));
  big.write(b('\x1b[40;1R'));
  arbiter.guestWrote(b(CPR_QUERY));
  big.write(b('\x1b[40;150R')); // the big one is quicker this time: held for the answerer's reply
  small.write(b('\x1b[24;80R'));
  await sleep(80);
  assert.deepEqual(guestGot, ['\x1b[24;1R', '\x1b[24;80R']);
});

test('ReplyArbiter: the terminal that typed last answers; if it does not, another one does after a moment', async () => {
  const { arbiter, guestGot } = arbiterWithGuest();
  const web = arbiter.attach();
  const tmux = arbiter.attach();
  arbiter.guestWrote(b(CPR_QUERY));
  web.write(b('\x1b[30;1R'));
  tmux.write(b('\x1b[40;1R'));
  tmux.write(b('root\r')); // tmux's user types: tmux answers from now on
  arbiter.guestWrote(b(CPR_QUERY));
  web.write(b('\x1b[30;120R'));
  tmux.write(b('\x1b[40;150R'));
  assert.deepEqual(guestGot, ['\x1b[30;1R', 'root\r', '\x1b[40;150R']);
  // tmux goes away: the web console's answers are taken at once
  tmux.detach();
  arbiter.guestWrote(b(CPR_QUERY));
  web.write(b('\x1b[30;120R'));
  assert.deepEqual(guestGot.at(-1), '\x1b[30;120R');
  // a typist that answers nothing (a pipe): the other's reply goes through after the hold
  const quiet = arbiter.attach();
  quiet.write(b('x'));
  arbiter.guestWrote(b(CPR_QUERY));
  web.write(b('\x1b[30;1R'));
  assert.equal(guestGot.at(-1), 'x');
  await sleep(80);
  assert.equal(guestGot.at(-1), '\x1b[30;1R');
  assert.equal(arbiter.waiting, 0);
});

test('ReplyArbiter: an escape sequence cut at the end of a read is sent as keys if its rest never comes', async () => {
  const { arbiter, guestGot } = arbiterWithGuest({ incompleteMs: 20 });
  const t = arbiter.attach();
  t.write(b('\x1b['));
  assert.deepEqual(guestGot, []);
  await sleep(50);
  assert.deepEqual(guestGot, ['\x1b[']);
});
