"""A small HTTP client for the peer API (standard library only), used by the CLI, bootstrap, tests and
benchmarks.

It transports; it does not trust. Whatever it returns from another peer is checked by the caller
(:mod:`network.peer.bootstrap` re-executes every block it fetches).
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

from core.errors import LicledgerError


class PeerRequestError(LicledgerError):
    """A request to a peer failed: connection refused, timeout, or an error status (with the peer's
    reason)."""

    def __init__(self, url: str, status: int | None, body: Any) -> None:
        self.url = url
        self.status = status
        self.body = body
        detail = body.get("detail") if isinstance(body, dict) else body
        super().__init__(f"{url}: {'no answer' if status is None else f'HTTP {status}'}: {detail}")


class PeerClient:
    """Calls one peer's ``/v1`` API on ``base_url`` (e.g. ``http://127.0.0.1:8401``)."""

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def _request(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: Any = None,
        timeout: float | None = None,
    ) -> tuple[bytes, dict[str, str]]:
        url = self.base_url + path + ("?" + urllib.parse.urlencode(list(query)) if query else "")
        data = None if body is None else json.dumps(body).encode("utf-8")
        req = urllib.request.Request(url, data=data, method=method)  # noqa: S310 (http(s) checked above)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout or self.timeout) as resp:  # noqa: S310
                return resp.read(), dict(resp.headers.items())
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                parsed: Any = json.loads(raw)
            except ValueError:
                parsed = raw.decode("utf-8", errors="replace")
            raise PeerRequestError(url, exc.code, parsed) from None
        except (urllib.error.URLError, OSError) as exc:
            raise PeerRequestError(url, None, str(getattr(exc, "reason", exc))) from None

    def get_json(self, path: str, query: Sequence[tuple[str, str]] = (), timeout: float | None = None) -> Any:
        raw, _ = self._request("GET", path, query=query, timeout=timeout)
        return json.loads(raw)

    def status(self, timeout: float | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self.get_json("/v1/status", timeout=timeout)
        return result

    def blocks(self, start: int, limit: int = 100) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.get_json("/v1/blocks", [("from", str(start)), ("limit", str(limit))])[
            "blocks"
        ]
        return result

    def submit(self, envelopes: Sequence[bytes], *, wait: bool = False, timeout: float = 30.0) -> dict[str, Any]:
        body = {"envelopes": [base64.b64encode(e).decode("ascii") for e in envelopes]}
        query = [("wait", "true" if wait else "false"), ("timeout", str(timeout))]
        raw, _ = self._request("POST", "/v1/transactions", query=query, body=body, timeout=timeout + 15)
        result: dict[str, Any] = json.loads(raw)
        return result

    def query(self, function: str, args: Sequence[str] = ()) -> tuple[int, bytes]:
        """A chaincode query: ``(height it was computed at, raw answer)``."""
        raw, headers = self._request(
            "GET", f"/v1/query/{urllib.parse.quote(function)}", query=[("arg", a) for a in args]
        )
        return int(headers.get("X-Ledger-Height", headers.get("x-ledger-height", "0"))), raw

    def checkpoint(self) -> bytes:
        raw, _ = self._request("GET", "/v1/checkpoint")
        return raw

    def state_digest(self) -> dict[str, Any]:
        result: dict[str, Any] = self.get_json("/v1/state/digest")
        return result
