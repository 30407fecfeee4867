/**
 * The speak rule, once for every client: whose voice frames the server relays.
 *
 * The server drops the frames of anyone who may not speak; clients (the demo page, the
 * mini-program) use this so that they do not record and send what would be dropped,
 * and can say why. The same table of cases (tests/clients/speak_cases.json) is checked
 * against this function and against the server's rule.
 *
 * @module voiceroom/speak
 */

/**
 * @typedef {import('./types.js').Participant} Participant
 * @typedef {import('./types.js').Room} Room
 * @typedef {import('./types.js').Seat} Seat
 */

/**
 * May this participant's voice be heard? Not when a moderator muted them, nor when they
 * muted themselves; in a room with seats (seat_count > 0), only from a seat of the room
 * that a moderator has not muted. In a room without seats, everyone else may speak.
 *
 * Pass the client itself (`maySpeak(client)`) or any `{you, room, seats}` view of the
 * room as the server sent it.
 * @param {{you: Participant|null, room: Room|{seat_count: number}|null, seats: Seat[]|null}} view
 * @returns {boolean}
 */
export function maySpeak({ you, room, seats }) {
  if (!you || !room || you.muted || you.self_muted) return false;
  if (room.seat_count === 0) return true;
  if (you.seat === null || you.seat === undefined || you.seat >= room.seat_count) return false;
  const seat = (seats || []).find((s) => s && s.index === you.seat);
  return !(seat && seat.muted);
}
