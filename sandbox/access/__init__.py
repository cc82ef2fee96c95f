"""Who may act: users, their roles and tenants, and their bearer tokens.

    wh.users.add(admin, "analyst", "enterprise", "bank-a")   # -> (user, token); the token is shown once
    wh.users.authenticate(token)                              # -> Principal (unknown, revoked, expired: refused)
    wh.users.issue(admin, "analyst", days=30, label="ci")     # -> (listing entry, token); list_tokens, revoke_token

Modules: :mod:`.users` (users, token issue/list/revoke, expiry, last use; ``subject`` users bound to
one privacy-unit value), :mod:`.throttle` (failed authentications counted per source, audited in
aggregate, rate-limited), :mod:`.authorisations` (a data subject's consent to one tenant and purpose:
grant, import, revoke, who is covered). Errors: ``Unauthenticated``,
``Forbidden``, ``Conflict``, ``RateLimited``.

May import: context, auth, audit and catalog.
"""

__all__ = ["authorisations", "throttle", "users"]
