"""Who may act: users, their roles and tenants, and their bearer tokens.

    wh.users.add(admin, "analyst", "enterprise", "bank-a")   # -> (user, token); the token is shown once
    wh.users.authenticate(token)                              # -> Principal

Modules: :mod:`.users`. Errors: ``Unauthenticated``, ``Forbidden``, ``Conflict``.

May import: context, auth, audit and catalog.
"""

__all__ = ["users"]
