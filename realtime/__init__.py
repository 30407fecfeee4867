"""The realtime layer: the voice relay, presence and the server adapters. It never touches
the database (import-linter checks it); the rooms app drives it."""
