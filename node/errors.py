"""Errors the provincial node raises on purpose, in the tree of :mod:`core.errors`.

Their HTTP status is decided in one place, :mod:`node.api.errors`:

* :class:`~core.errors.DocumentError` / :class:`~core.errors.FormatError` -> 422 with field errors;
* :class:`ConflictError` (a :class:`~core.errors.VerificationError`: the request is well formed but
  contradicts the record) -> 409, with the evidence; any other :class:`~core.errors.VerificationError` -> 400;
* :class:`NotFoundError` -> 404; :class:`AuthenticationError` -> 401; :class:`PermissionDeniedError` -> 403.
"""

from __future__ import annotations

from core.errors import LicledgerError, VerificationError


class NodeError(LicledgerError):
    """Base of the node's own errors."""


class NotFoundError(NodeError):
    """The named object (license, version, key) does not exist on this node."""

    def __init__(self, what: str, name: str) -> None:
        self.what = what
        self.name = name
        super().__init__(f"{what} {name} not found")


class AuthenticationError(NodeError):
    """No credential, or one that is malformed, unknown or revoked. The message never echoes it."""


class PermissionDeniedError(NodeError):
    """The caller is authenticated but its role or scope does not cover this request."""

    def __init__(self, message: str, *, role: str) -> None:
        self.role = role
        super().__init__(message)


class ConflictError(VerificationError):
    """A well-formed request contradicts the record: carries what the record says and what was asked."""

    def __init__(self, message: str, *, current: str | None = None, requested: str | None = None) -> None:
        self.current = current
        self.requested = requested
        super().__init__(message)


class InvalidTransitionError(ConflictError):
    """A lifecycle event is not allowed from the license's current status (:mod:`node.lifecycle`)."""

    def __init__(self, event: str, status: str) -> None:
        super().__init__(
            f"event {event!r} is not allowed while the license is {status}", current=status, requested=event
        )


class RateLimitedError(NodeError):
    """Too many requests from one client on a rate-limited route; retry after ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(f"rate limit exceeded; retry after {retry_after} s")


class RotationPendingError(NodeError):
    """The province's key is being rotated (a pending key exists): nothing is sealed or signed until the rotation
    is submitted, because a signature by the old key after the request time would not verify once it commits."""

    retry_after = 30

    def __init__(self, pending: str) -> None:
        super().__init__(
            f"a key rotation is pending ({pending}): issuing, changes and anchoring resume once "
            "`licledger node rotate-key submit` has switched the key"
        )
