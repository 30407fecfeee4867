"""Who is in each room right now, on which node, connected or inside the resume window.

Two stores behind one interface (`store.Store`):
- `LocalStore` (REDIS_URL unset, realtime/presence/local.py): plain dicts in this
  process; one node.
- `RedisStore` (REDIS_URL set, realtime/presence/redis.py): hashes in Redis shared by
  every node; small Lua scripts make the compare-and-set steps atomic across nodes.

The store in use belongs to the process's runtime (realtime/runtime.py); `store()` is
the way to it. The API is synchronous: services call it from their worker thread; the
voice path never calls it.
"""

from __future__ import annotations

import uuid

from realtime.presence.local import LocalStore
from realtime.presence.redis import MINE_GRACE_S, RedisStore
from realtime.presence.store import SEQ_GAP, AttachResult, ResumeRefused, Session, Store

__all__ = [
    "MINE_GRACE_S",
    "NODE_ID",
    "SEQ_GAP",
    "AttachResult",
    "LocalStore",
    "RedisStore",
    "ResumeRefused",
    "Session",
    "Store",
    "store",
]

NODE_ID = f"{uuid.uuid4().hex[:12]}"


def store() -> Store:
    """The presence store of this process's runtime."""
    from realtime import runtime

    return runtime.current().store
