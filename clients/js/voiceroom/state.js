/**
 * The client's view of the room, merged from the server's events: `room`, `you`,
 * `participants` (by user id), `seats` and `seatRequests`. Plain functions over any
 * object holding those fields (the client passes itself).
 *
 * @module voiceroom/state
 */

/**
 * @typedef {import('./types.js').Participant} Participant
 * @typedef {import('./types.js').Room} Room
 * @typedef {import('./types.js').Seat} Seat
 * @typedef {import('./types.js').SeatRequest} SeatRequest
 * @typedef {import('./types.js').WelcomeEvent} WelcomeEvent
 * @typedef {{room: Room|null, you: Participant|null, participants: Map<number, Participant>, seats: Seat[], seatRequests: SeatRequest[]}} RoomView
 */

/** @param {number} index @returns {Seat} */
export function emptySeat(index) {
  return { index, user_id: null, locked: false, muted: false };
}

/**
 * The welcome is the whole truth: replace, never append, so a resume cannot duplicate.
 * @param {RoomView} view
 * @param {WelcomeEvent} welcome
 */
export function applyWelcome(view, welcome) {
  view.room = welcome.room;
  view.you = welcome.you;
  view.participants = new Map();
  for (const p of welcome.participants) view.participants.set(p.user_id, p);
  view.participants.set(welcome.you.user_id, welcome.you);
  view.seats = welcome.seats.map((s) => ({ ...s }));
  view.seatRequests = (welcome.seat_requests || []).map((r) => ({ ...r }));
}

/**
 * Merge one server event into the view.
 * @param {RoomView} view
 * @param {any} message
 * @returns {'participants'|'seats'|'seatRequests'|null} the list that changed, if any
 */
export function applyEvent(view, message) {
  switch (message.type) {
    case 'participant.joined':
    case 'participant.updated': {
      const p = message.participant;
      const merged = { ...(view.participants.get(p.user_id) || {}), ...p };
      view.participants.set(p.user_id, merged);
      if (view.you && p.user_id === view.you.user_id) view.you = merged;
      return 'participants';
    }
    case 'participant.left':
      view.participants.delete(message.user_id);
      return 'participants';
    case 'seat.updated': {
      const seat = message.seat;
      const count = view.room && typeof view.room.seat_count === 'number' ? view.room.seat_count : null;
      // A seat removed by a smaller seat_count is announced freed after room.updated:
      // that event must not bring the seat back.
      if (count !== null && seat.index >= count) return 'seats';
      while (view.seats.length <= seat.index) view.seats.push(emptySeat(view.seats.length));
      view.seats[seat.index] = { ...seat };
      return 'seats';
    }
    case 'room.updated':
      view.room = /** @type {Room} */ ({ ...(view.room || {}), ...message.room });
      resizeSeats(view.seats, message.room.seat_count);
      return 'seats';
    case 'seat.requested': {
      const request = message.request;
      view.seatRequests = view.seatRequests.filter((r) => r.user_id !== request.user_id).concat([{ ...request }]);
      return 'seatRequests';
    }
    case 'seat.request.resolved':
    case 'seat.request.cancelled':
      view.seatRequests = view.seatRequests.filter((r) => r.user_id !== message.user_id);
      return 'seatRequests';
    default:
      return null;
  }
}

/**
 * @param {Seat[]} seats
 * @param {number|undefined} count
 */
function resizeSeats(seats, count) {
  if (typeof count !== 'number') return;
  if (seats.length > count) seats.length = count;
  while (seats.length < count) seats.push(emptySeat(seats.length));
}
