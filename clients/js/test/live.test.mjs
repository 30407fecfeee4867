// The SDK against a real server (VOICEROOM_TEST_URL): accounts, rooms, events, voice,
// whisper, moderation, and the ways a socket ends.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';

import { VoiceRoomError } from '../voiceroom.js';
import { PASSWORD, closeAll, collect, collectVoice, live, makeClient, newUser, sleep, uniqueName, until } from '../testlib/helpers.mjs';

after(closeAll);

/** An owner in a new room, plus `count` more users who joined it. */
async function roomWith(count, fields = {}) {
  const owner = await newUser();
  const room = await owner.createRoom({ name: uniqueName('room'), seat_count: 0, ...fields });
  await owner.join(room.id);
  const others = [];
  for (let i = 0; i < count; i++) {
    const other = await newUser();
    const seen = owner.once('participant.joined', { timeoutMs: 5000 });
    await other.join(room.id);
    await seen;
    others.push(other);
  }
  return { room, owner, others };
}

test('register, log in, me, and the errors a user can get', live, async () => {
  const client = makeClient();
  const username = uniqueName();
  const registered = await client.register({ username, password: PASSWORD, display_name: 'Ann' });
  assert.equal(registered.user.username, username);
  assert.equal(client.token, registered.token);
  assert.equal((await client.me()).display_name, 'Ann');

  const other = makeClient();
  const logged = await other.login({ username, password: PASSWORD });
  assert.equal(logged.user.id, registered.user.id);
  await assert.rejects(other.login({ username, password: 'wrong-password-1' }), (err) => {
    assert.ok(err instanceof VoiceRoomError);
    assert.equal(err.code, 'invalid_credentials');
    assert.equal(err.status, 400);
    return true;
  });
  await assert.rejects(makeClient().register({ username, password: PASSWORD }), { code: 'username_taken' });
  await other.logout();
  await assert.rejects(client.me(), { status: 401 });
});

test('create, list with live online counts, join: both see each other once', live, async () => {
  const { room, owner, others } = await roomWith(1);
  const [guest] = others;
  const listed = await until(async () => {
    const page = await guest.listRooms({ status: 'open' });
    const found = page.results.find((r) => r.id === room.id);
    return found && found.online_count === 2 && found;
  }, { what: 'online_count 2' });
  assert.equal(listed.owner.id, owner.user.id);
  for (const c of [owner, guest]) {
    assert.deepEqual([...c.participants.keys()].sort(), [owner.user.id, guest.user.id].sort());
    assert.equal(c.state, 'open');
  }
  assert.equal(guest.you.user_id, guest.user.id);
  assert.equal(guest.participants.get(owner.user.id).role, 'owner');
  const detail = await guest.getRoom(room.id);
  assert.equal(detail.participants.length, 2);
});

test('chat, seats, self-mute and moderation arrive as typed events and update state', live, async () => {
  const { room, owner, others } = await roomWith(1, { seat_count: 3 });
  const [guest] = others;
  assert.equal(guest.seats.length, 3);

  const chat = guest.once('chat', { timeoutMs: 5000 });
  const own = owner.once('chat', { timeoutMs: 5000 });
  owner.chat('hello room');
  assert.deepEqual([(await chat).text, (await own).from], ['hello room', owner.user.id]);

  const seat = owner.once('seat.updated', { timeoutMs: 5000, where: (e) => e.seat.user_id === guest.user.id });
  guest.takeSeat(2);
  assert.equal((await seat).seat.index, 2);
  await until(() => guest.seats[2].user_id === guest.user.id && guest.you.seat === 2, { what: 'own seat' });
  assert.equal(owner.participants.get(guest.user.id).seat, 2);

  const selfMuted = owner.once('participant.updated', { timeoutMs: 5000, where: (e) => e.participant.self_muted });
  guest.selfMute(true);
  await selfMuted;
  assert.equal(owner.participants.get(guest.user.id).self_muted, true);

  const muted = guest.once('participant.updated', { timeoutMs: 5000, where: (e) => e.participant.muted });
  owner.moderate('mute', guest.user.id);
  await muted;
  assert.equal(guest.you.muted, true);

  const locked = guest.once('seat.updated', { timeoutMs: 5000, where: (e) => e.seat.index === 0 && e.seat.locked });
  owner.lockSeat(0, true);
  await locked;
  const seatMuted = guest.once('seat.updated', { timeoutMs: 5000, where: (e) => e.seat.index === 1 && e.seat.muted });
  owner.muteSeat(1, true);
  await seatMuted;
  assert.deepEqual(
    guest.seats.map((s) => [s.locked, s.muted]),
    [[true, false], [false, true], [false, false]],
  );

  const refused = guest.once('error', { timeoutMs: 5000 });
  guest.moderate('kick', owner.user.id);
  assert.equal((await refused).code, 'forbidden');

  const left = owner.once('participant.left', { timeoutMs: 5000 });
  const closed = guest.once('close', { timeoutMs: 5000 });
  owner.moderate('kick', guest.user.id);
  assert.equal((await left).reason, 'kicked');
  assert.deepEqual(await closed, { code: 4010, reason: '', willReconnect: false });
  await sleep(300);
  assert.equal(guest.state, 'closed');
  assert.deepEqual([...owner.participants.keys()], [owner.user.id]);
  assert.equal(room.seat_count, 3);
});

test('voice round trip: header parsed into kind, sender and sequence, payload unchanged', live, async () => {
  const { owner, others } = await roomWith(1);
  const [guest] = others;
  const frames = collectVoice(guest);
  for (let i = 0; i < 10; i++) assert.equal(owner.sendVoice(new Uint8Array(160).fill(i)), true);
  await until(() => frames.length === 10, { what: '10 frames' });
  assert.deepEqual(
    frames.map((f) => [f.kind, f.senderId, f.seq, f.payload.length, f.payload[0]]),
    Array.from({ length: 10 }, (_, i) => [1, owner.user.id, i + 1, 160, i]),
  );
  assert.ok(frames[0].payload instanceof Uint8Array);
  assert.throws(() => owner.sendVoice(new Uint8Array(4097)), RangeError);
});

test('whisper: text and voice reach only the target', live, async () => {
  const { owner, others } = await roomWith(2);
  const [target, bystander] = others;
  const heardByTarget = collectVoice(target);
  const heardByBystander = collectVoice(bystander);
  const whispersSeen = collect(bystander, 'whisper');

  const whisper = target.once('whisper', { timeoutMs: 5000 });
  owner.whisper(target.user.id, 'psst');
  assert.deepEqual(
    (({ from, to, text }) => ({ from, to, text }))(await whisper),
    { from: owner.user.id, to: target.user.id, text: 'psst' },
  );

  owner.setVoiceTarget(target.user.id);
  await sleep(100); // the target applies to frames sent after it
  for (let i = 0; i < 3; i++) owner.sendVoice(new Uint8Array([7, i]));
  await until(() => heardByTarget.length === 3, { what: 'whispered frames' });
  assert.deepEqual(heardByTarget.map((f) => f.kind), [2, 2, 2]);

  owner.setVoiceTarget(null);
  await sleep(100);
  owner.sendVoice(new Uint8Array([8]));
  await until(() => heardByBystander.length === 1 && heardByTarget.length === 4, { what: 'room frame' });
  assert.deepEqual([heardByBystander[0].kind, heardByBystander[0].seq], [1, 4]);
  assert.deepEqual(whispersSeen, []);
});

test('a clean leave and a REST leave end the socket without a reconnect', live, async () => {
  const { room, owner, others } = await roomWith(2);
  const [first, second] = others;
  const reconnects = collect(first, 'reconnecting').concat(collect(second, 'reconnecting'));

  const left = owner.once('participant.left', { timeoutMs: 5000, where: (e) => e.user_id === first.user.id });
  await first.leave();
  assert.equal((await left).reason, 'left');
  assert.equal(first.state, 'closed');

  const closed = second.once('close', { timeoutMs: 5000 });
  await second.request('POST', `/api/rooms/${room.id}/leave`);
  assert.equal((await closed).code, 4000);
  await sleep(300);
  assert.deepEqual([first.state, second.state, reconnects.length], ['closed', 'closed', 0]);
});

test('the same user connecting again replaces the older socket (4012, no reconnect)', live, async () => {
  const { room, owner } = await roomWith(0);
  const second = makeClient({ token: owner.token });
  const closed = owner.once('close', { timeoutMs: 5000 });
  await second.connect(room.id);
  assert.deepEqual(await closed, { code: 4012, reason: '', willReconnect: false });
  await sleep(300);
  assert.equal(owner.state, 'closed');
  assert.equal(second.state, 'open');
});

test('seat requests and mute all, over the socket and REST', live, async () => {
  const { room, owner, others } = await roomWith(2, { seat_count: 2 });
  const [ann, bob] = others;

  // Ann asks over the socket; the owner sees the request and keeps the queue.
  const asked = owner.once('seat.requested', { timeoutMs: 5000 });
  ann.requestSeat(1);
  assert.deepEqual([(await asked).request.user_id, (await asked).request.index], [ann.user.id, 1]);
  await until(() => ann.seatRequests.length === 1, { what: "ann's own request" });
  assert.deepEqual(owner.seatRequests.map((r) => r.user_id), [ann.user.id]);

  // Bob asks over REST, then withdraws the request.
  const bobAsked = owner.once('seat.requested', { timeoutMs: 5000, where: (e) => e.request.user_id === bob.user.id });
  await bob.createSeatRequest(room.id);
  await bobAsked;
  assert.deepEqual((await owner.listSeatRequests(room.id)).map((r) => r.user_id), [ann.user.id, bob.user.id]);
  const withdrawn = owner.once('seat.request.cancelled', { timeoutMs: 5000 });
  bob.cancelSeatRequest();
  assert.equal((await withdrawn).user_id, bob.user.id);

  // The owner accepts Ann's over the socket: she is seated on the seat she asked for.
  const seated = ann.once('seat.request.resolved', { timeoutMs: 5000 });
  owner.acceptSeatRequest(ann.user.id);
  assert.deepEqual([(await seated).accepted, (await seated).index], [true, 1]);
  await until(() => ann.you.seat === 1 && ann.maySpeak(), { what: 'ann seated, may speak' });
  await until(() => owner.seatRequests.length === 0, { what: "the owner's queue emptied" });

  // Bob asks again; the owner refuses over REST.
  bob.requestSeat();
  await until(() => owner.seatRequests.length === 1, { what: "bob's second request" });
  const refused = bob.once('seat.request.resolved', { timeoutMs: 5000 });
  await owner.resolveSeatRequest(room.id, bob.user.id, false);
  assert.equal((await refused).accepted, false);

  // Mute all over the socket: Ann may no longer speak; unmute all over REST.
  owner.muteAll(true);
  await until(() => ann.you.muted && bob.participants.get(ann.user.id).muted, { what: 'ann muted by mute all' });
  assert.equal(ann.maySpeak(), false);
  const members = await owner.muteAllMembers(room.id, false);
  assert.deepEqual(members.map((m) => m.muted), [false, false]);
  await until(() => !ann.you.muted && ann.maySpeak(), { what: 'ann unmuted' });

  // A plain member may not mute all: the server refuses with an error event.
  const error = ann.once('error', { timeoutMs: 5000 });
  ann.muteAll(true);
  assert.equal((await error).code, 'forbidden');
});
