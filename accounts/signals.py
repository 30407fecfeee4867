"""Signals of the accounts app, for apps that hold credentials of their own (rooms)."""

from django.dispatch import Signal

# Sent inside the transaction that revoked every credential of `user` (signing out, a
# password change, deactivation): sender is the User class, keyword argument `user`.
# Receivers that act outside the database do so after commit (transaction.on_commit).
credentials_revoked = Signal()
