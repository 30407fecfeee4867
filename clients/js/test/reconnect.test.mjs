// Network loss against a real server: the client resumes with its resume token, falls
// back to a fresh ticket when the token is refused or the window has passed, and never
// holds a participant twice. The loss is simulated by terminate() on the client's
// socket: the TCP connection is destroyed without a closing handshake.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';

import { RESUME_WINDOW_S, closeAll, collect, collectVoice, live, newUser, uniqueName, until } from '../testlib/helpers.mjs';

after(closeAll);

async function pair(guestOptions = {}) {
  const owner = await newUser();
  const room = await owner.createRoom({ name: uniqueName('room'), seat_count: 2 });
  await owner.join(room.id);
  const guest = await newUser(guestOptions);
  const joined = owner.once('participant.joined', { timeoutMs: 5000 });
  await guest.join(room.id);
  await joined;
  return { owner, guest, room };
}

const ids = (client) => [...client.participants.keys()].sort((a, b) => a - b);

test('after a network loss the client resumes: same seat, same state, nobody doubled', live, async () => {
  const { owner, guest } = await pair();
  const seated = owner.once('seat.updated', { timeoutMs: 5000, where: (e) => e.seat.user_id === guest.user.id });
  guest.takeSeat(1);
  await seated;
  guest.selfMute(true);
  await until(() => owner.participants.get(guest.user.id).self_muted, { what: 'self mute' });
  const before = ids(owner);

  const away = owner.once('participant.updated', { timeoutMs: 5000, where: (e) => !e.participant.connected });
  const back = owner.once('participant.updated', {
    timeoutMs: 8000,
    where: (e) => e.participant.user_id === guest.user.id && e.participant.connected,
  });
  const welcome = guest.once('welcome', { timeoutMs: 8000 });
  const closes = collect(guest, 'close');
  guest.connection.raw.terminate();

  await away;
  assert.equal((await welcome).resumed, true);
  await back;
  assert.equal(closes[0].willReconnect, true);
  assert.equal(guest.state, 'open');
  assert.equal(guest.you.seat, 1);
  assert.equal(guest.you.self_muted, true);
  assert.equal(guest.seats[1].user_id, guest.user.id);
  assert.deepEqual(ids(guest), before);
  assert.deepEqual(ids(owner), before);
  assert.equal(owner.participantList().length, 2);

  // Voice goes on, the sequence continuing where it was.
  guest.selfMute(false);
  await until(() => !owner.participants.get(guest.user.id).self_muted, { what: 'unmute' });
  const heard = collectVoice(owner);
  guest.sendVoice(new Uint8Array([1, 2, 3]));
  await until(() => heard.length === 1, { what: 'voice after resume' });
  assert.equal(heard[0].senderId, guest.user.id);
});

test('every welcome brings a new single-use token: two losses in a row both resume', live, async () => {
  const { owner, guest } = await pair();
  const tickets = [];
  const realRequest = guest.request.bind(guest);
  guest.request = (method, path, body) => {
    if (path.endsWith('/ticket')) tickets.push(path);
    return realRequest(method, path, body);
  };
  const seen = [guest.session.resume_token];
  for (let i = 0; i < 2; i += 1) {
    const away = owner.once('participant.updated', {
      timeoutMs: 5000,
      where: (e) => e.participant.user_id === guest.user.id && !e.participant.connected,
    });
    const welcome = guest.once('welcome', { timeoutMs: 8000 });
    guest.connection.raw.terminate();
    await away;
    const w = await welcome;
    assert.equal(w.resumed, true);
    seen.push(w.session.resume_token);
  }
  assert.equal(new Set(seen).size, 3);
  assert.deepEqual(tickets, []);
  await until(() => owner.participants.get(guest.user.id)?.connected, { what: 'connected again' });
});

test('a refused resume token falls back to a fresh ticket', live, async () => {
  const { owner, guest } = await pair();
  const tickets = [];
  const realRequest = guest.request.bind(guest);
  guest.request = (method, path, body) => {
    if (path.endsWith('/ticket')) tickets.push(path);
    return realRequest(method, path, body);
  };
  guest.session.resume_token = 'no-longer-valid';
  const welcome = guest.once('welcome', { timeoutMs: 8000 });
  guest.connection.raw.terminate();
  const w = await welcome;
  assert.equal(w.resumed, false);
  assert.equal(tickets.length, 1);
  assert.notEqual(guest.session.resume_token, 'no-longer-valid');
  await until(() => owner.participants.get(guest.user.id)?.connected, { what: 'connected again' });
  assert.deepEqual(ids(guest), ids(owner));
  assert.equal(ids(owner).length, 2);
});

test('after the resume window the client comes back with a fresh ticket', live, async () => {
  // The first reconnect waits past the node's resume window.
  const windowMs = RESUME_WINDOW_S * 1000;
  const { owner, guest } = await pair({ reconnect: { baseDelayMs: windowMs + 1500, maxDelayMs: windowMs + 1500 }, random: () => 1 });
  const timedOut = owner.once('participant.left', {
    timeoutMs: windowMs + 6000,
    where: (e) => e.user_id === guest.user.id,
  });
  const rejoined = owner.once('participant.joined', {
    timeoutMs: windowMs + 8000,
    where: (e) => e.participant.user_id === guest.user.id,
  });
  const welcome = guest.once('welcome', { timeoutMs: windowMs + 8000 });
  guest.connection.raw.terminate();
  assert.equal((await timedOut).reason, 'timeout');
  assert.equal((await welcome).resumed, false);
  await rejoined;
  assert.equal(guest.state, 'open');
  assert.deepEqual(ids(owner), ids(guest));
  assert.equal(ids(owner).length, 2);
});
