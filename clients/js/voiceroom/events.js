/**
 * The client's event emitter: `on`, `off`, `once`, and the `'*'` wildcard.
 *
 * @module voiceroom/events
 */

import { VoiceRoomError } from './errors.js';

/** @typedef {import('./types.js').VoiceRoomEventMap} VoiceRoomEventMap */

export class Emitter {
  constructor() {
    /** @type {Map<string, Set<Function>>} */
    this._listeners = new Map();
  }

  /**
   * Listen to an event (see VoiceRoomEventMap); `'*'` receives `(type, event)` for all.
   * @template {keyof VoiceRoomEventMap} K
   * @param {K|'*'} type
   * @param {(event: VoiceRoomEventMap[K], type?: string) => void} fn
   * @returns {() => void} call it to stop listening
   */
  on(type, fn) {
    let set = this._listeners.get(type);
    if (!set) this._listeners.set(type, (set = new Set()));
    set.add(fn);
    return () => this.off(type, fn);
  }

  /**
   * @param {string} type
   * @param {Function} fn
   */
  off(type, fn) {
    const set = this._listeners.get(type);
    if (set) set.delete(fn);
  }

  /**
   * Resolve with the next event of a type (optionally one that `where` accepts).
   * @template {keyof VoiceRoomEventMap} K
   * @param {K} type
   * @param {{where?: (event: VoiceRoomEventMap[K]) => boolean, timeoutMs?: number}} [options]
   * @returns {Promise<VoiceRoomEventMap[K]>}
   */
  once(type, options = {}) {
    return new Promise((resolve, reject) => {
      /** @type {any} */
      let timer = null;
      const off = this.on(type, (event) => {
        if (options.where && !options.where(event)) return;
        off();
        if (timer) clearTimeout(timer);
        resolve(event);
      });
      if (options.timeoutMs) {
        timer = setTimeout(() => {
          off();
          reject(new VoiceRoomError('timeout', `no ${String(type)} within ${options.timeoutMs} ms`));
        }, options.timeoutMs);
      }
    });
  }

  /**
   * @param {string} type
   * @param {any} event
   */
  _emit(type, event) {
    for (const key of [type, '*']) {
      const set = this._listeners.get(key);
      if (!set) continue;
      for (const fn of Array.from(set)) {
        try {
          if (key === '*') fn(type, event);
          else fn(event);
        } catch (err) {
          // A listener's bug must not break the protocol handling.
          setTimeout(() => {
            throw err;
          }, 0);
        }
      }
    }
  }
}
