"""The one error of the policies library.

``policies`` is a leaf library: it knows nothing of the application, so it has its own small
error rather than the application's tree. The application translates it at its boundary
(``sandbox.datasets.manifest`` turns it into ``ManifestInvalid``).
"""

from __future__ import annotations


class PolicyError(Exception):
    """A policy is invalid, or a question about it cannot be answered safely.

    ``field`` is the dotted path of the offending field (``output.min_group_size``,
    ``columns.uscc``, ``tenants[0]``) or ``None`` when the problem is not one field's.
    ``problems`` lists every problem found (``"field: message"``), the first being ``message``'s.
    """

    def __init__(self, message: str, *, field: str | None = None, problems: tuple[str, ...] = ()) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.message = message
        self.field = field
        self.problems = problems or ((f"{field}: {message}" if field else message),)
