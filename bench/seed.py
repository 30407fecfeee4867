"""Bench users straight into the database, in bulk, for `bench.run`.

    python -m bench.seed --count 800 --cache /tmp/users.json   (with the node's env)

Registering over REST hashes each password (PBKDF2, a few hundred milliseconds of one
core per user): 1,600 users took over ten minutes before a run. These users share one
password and so one hash, computed once, and get their API token in the same bulk
insert. They are real accounts (`accounts.models.User`, DRF tokens) that sign in and
join through the REST API like registered ones; only the password hashing is shared.
For a benchmark's database only: never run it against one that holds people.

Appends to the user cache `bench.loadgen --user-cache` reads (bench.rest), so the load
generator finds its users and registers none.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys

from bench.rest import BenchUser, load_user_cache, save_user_cache


def seed(count: int, prefix: str) -> list[BenchUser]:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "voiceroom.settings")
    django.setup()
    from django.contrib.auth.hashers import make_password
    from django.db import transaction
    from rest_framework.authtoken.models import Token

    from accounts.models import User

    password = secrets.token_urlsafe(18) + "-Vr9"
    hashed = make_password(password)
    names = [f"{prefix}-{n}" for n in range(count)]
    with transaction.atomic():
        made = [User(username=name, display_name=name, password=hashed) for name in names]
        User.objects.bulk_create(made, batch_size=500)
        ids = dict(User.objects.filter(username__in=names).values_list("username", "pk"))
        tokens = [Token(user_id=ids[name], key=Token.generate_key()) for name in names]
        Token.objects.bulk_create(tokens, batch_size=500)
    return [
        BenchUser(name, password, token.key, ids[name])
        for name, token in zip(names, tokens, strict=True)
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.seed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--count", type=int, required=True, help="users to add")
    p.add_argument("--cache", required=True, help="the user cache to append them to")
    p.add_argument("--prefix", default=None, help="username prefix (default: random)")
    args = p.parse_args(argv)
    if args.count < 0:
        p.error("--count must be at least 0")
    users = load_user_cache(args.cache)
    prefix = args.prefix or f"bench-seed-{secrets.token_hex(3)}"
    if args.count:
        users += seed(args.count, prefix)
    save_user_cache(args.cache, users)
    print(f"bench.seed: {args.count} users added, {len(users)} in {args.cache}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
