/**
 * The shapes the server sends and the client emits (JSDoc only; nothing runs here).
 * Other modules refer to them as `import('./types.js').Room` and so on.
 *
 * @module voiceroom/types
 */
/**
 * @typedef {Object} User
 * @property {number} id
 * @property {string} username
 * @property {string} display_name
 */

/**
 * @typedef {Object} Room
 * @property {number} id
 * @property {string} name
 * @property {string} topic
 * @property {User} owner
 * @property {'open'|'closed'} status
 * @property {number} capacity
 * @property {number} seat_count
 * @property {'opus'|'pcm16'} codec what every client of the room sends (v1.1; set at creation)
 * @property {boolean} is_private
 * @property {number} online_count
 * @property {string} created_at
 * @property {Participant[]} [participants] only from getRoom()
 */

/**
 * @typedef {Object} Member
 * @property {User} user
 * @property {'owner'|'admin'|'member'} role
 * @property {boolean} muted
 * @property {boolean} banned
 * @property {boolean} online
 * @property {number|null} seat
 * @property {string} joined_at
 */

/**
 * @typedef {Object} Participant
 * @property {number} user_id
 * @property {string} username
 * @property {string} display_name
 * @property {'owner'|'admin'|'member'} role
 * @property {boolean} muted       muted by a moderator
 * @property {boolean} self_muted
 * @property {number|null} seat
 * @property {boolean} connected   false while inside the resume window
 */

/**
 * @typedef {Object} Seat
 * @property {number} index
 * @property {number|null} user_id
 * @property {boolean} locked
 * @property {boolean} muted
 */

/**
 * A pending request for a seat (beyond the contract; index null: any free seat).
 * @typedef {Object} SeatRequest
 * @property {number} user_id
 * @property {number|null} index
 * @property {string} ts
 */

/**
 * @typedef {Object} Page
 * @property {number} count
 * @property {string|null} next
 * @property {string|null} previous
 * @property {Room[]} results
 */

/**
 * @typedef {Object} AuthResult
 * @property {User} user
 * @property {string} token
 */

/**
 * @typedef {Object} JoinResult
 * @property {Room} room
 * @property {Member} member
 * @property {string} ws_url where the room lives: an absolute ws(s):// URL of its home
 *   node, or the path /ws/rooms/{id}/ (relative to the REST origin)
 * @property {string} ticket
 * @property {number} ticket_expires_in
 */

/**
 * @typedef {Object} WelcomeEvent
 * @property {'welcome'} type
 * @property {Room} room
 * @property {Participant} you
 * @property {Participant[]} participants
 * @property {Seat[]} seats
 * @property {SeatRequest[]} [seat_requests] a moderator's queue, or your own request
 * @property {{resume_token: string, resume_window_s: number}} session
 * @property {boolean} resumed
 */

/** @typedef {{type: 'participant.joined', participant: Participant}} ParticipantJoinedEvent */
/** @typedef {{type: 'participant.left', user_id: number, reason: 'left'|'timeout'|'kicked'|'banned'}} ParticipantLeftEvent */
/** @typedef {{type: 'participant.updated', participant: Participant}} ParticipantUpdatedEvent */
/** @typedef {{type: 'seat.updated', seat: Seat}} SeatUpdatedEvent */
/** @typedef {{type: 'room.updated', room: Room}} RoomUpdatedEvent */
/** @typedef {{type: 'seat.requested', request: SeatRequest}} SeatRequestedEvent */
/** @typedef {{type: 'seat.request.resolved', user_id: number, accepted: boolean, index?: number}} SeatRequestResolvedEvent */
/** @typedef {{type: 'seat.request.cancelled', user_id: number, reason: string}} SeatRequestCancelledEvent */
/** @typedef {{type: 'room.closed'}} RoomClosedEvent */
/** @typedef {{type: 'chat', from: number, text: string, ts: string}} ChatEvent */
/** @typedef {{type: 'whisper', from: number, to: number, text: string, ts: string}} WhisperEvent */
/** @typedef {{type: 'error', code: string, detail: string}} ErrorEvent */
/** @typedef {{type: 'pong', ts: string}} PongEvent */

/**
 * A voice frame from the server, header parsed.
 * @typedef {Object} VoiceFrame
 * @property {1|2} kind          VOICE_ROOM or VOICE_WHISPER
 * @property {number} senderId
 * @property {number} seq         per sender, +1 per relayed frame
 * @property {Uint8Array} payload the sender's bytes, unchanged
 */

/**
 * @typedef {'idle'|'connecting'|'open'|'reconnecting'|'closed'} ConnectionState
 */

/**
 * @typedef {Object} CloseEvent
 * @property {number} code
 * @property {string} reason
 * @property {boolean} willReconnect
 */

/**
 * Every event `on()` accepts, with what the listener receives. Server frames are passed
 * as received (after the client has merged them into its state); the rest are the
 * client's own.
 * @typedef {Object} VoiceRoomEventMap
 * @property {WelcomeEvent} welcome
 * @property {ParticipantJoinedEvent} participant.joined
 * @property {ParticipantLeftEvent} participant.left
 * @property {ParticipantUpdatedEvent} participant.updated
 * @property {SeatUpdatedEvent} seat.updated
 * @property {RoomUpdatedEvent} room.updated
 * @property {SeatRequestedEvent} seat.requested
 * @property {SeatRequestResolvedEvent} seat.request.resolved
 * @property {SeatRequestCancelledEvent} seat.request.cancelled
 * @property {RoomClosedEvent} room.closed
 * @property {ChatEvent} chat
 * @property {WhisperEvent} whisper
 * @property {ErrorEvent} error              a client frame was refused (socket stays open)
 * @property {PongEvent} pong
 * @property {VoiceFrame} voice
 * @property {{participants: Participant[]}} participants  the participant map changed
 * @property {{seats: Seat[]}} seats                       the seat list changed
 * @property {{state: ConnectionState, previous: ConnectionState}} state
 * @property {CloseEvent} close                            the socket closed
 * @property {{attempt: number, delayMs: number}} reconnecting
 * @property {{type: string} & Record<string, any>} message every server text frame
 */

export {};
