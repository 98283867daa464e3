"""node.logsafe: what the redaction filter removes from log records, and what it keeps."""

from __future__ import annotations

import io
import logging

from node.logsafe import REDACTED, RedactingFilter, redact
from node.tokens import API_KEY_PREFIX, HOLDER_TOKEN_PREFIX, new_credential

CITIZEN_ID = "44010619900101002X"
KEK = "00112233445566778899aabbccddeeff"


def test_redact_removes_ids_credentials_bearer_values_keks_and_salts() -> None:
    key, token = str(new_credential(API_KEY_PREFIX)), str(new_credential(HOLDER_TOKEN_PREFIX))
    text = (
        f"holder {CITIZEN_ID} key {key} token {token} Authorization: Bearer abc.def kek={KEK} "
        f'"salt": "{"ab" * 32}" id 440106199001010021'
    )
    out = redact(text)
    for secret in (CITIZEN_ID, key, token, "abc.def", KEK, "ab" * 32, "440106199001010021"):
        assert secret not in out, secret
    assert out.count(REDACTED) == 7, out


def test_redact_keeps_license_ids_hashes_and_request_lines() -> None:
    line = (
        '127.0.0.1:5 - "GET /v1/licenses/1.2.156.3005.2.11100000000000000J002.11440000421680613Q.201144000000000'
        ' HTTP/1.1" 200 commitment ' + "cd" * 32 + " request 644df7d1a622ead8219784a8"
    )
    assert redact(line) == line


def test_filter_redacts_arguments_and_exception_text() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("test.node.logsafe")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("lookup of %s failed", CITIZEN_ID)
        try:
            raise ValueError(f"bad holder {CITIZEN_ID}")
        except ValueError:
            logger.exception("request failed")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert CITIZEN_ID not in text
    assert "lookup of [redacted] failed" in text and "ValueError" in text


def test_access_log_lines_keep_method_path_and_status_only() -> None:
    """uvicorn.access records: no client address, no query string (which could carry anything a client sent)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("uvicorn.access")
    logger.addHandler(handler)
    old_level, logger.level = logger.level, logging.INFO
    try:
        logger.info(
            '%s - "%s %s HTTP/%s" %d',
            "203.0.113.7:51234",
            "GET",
            f"/v1/public/licenses?holder={CITIZEN_ID}&name=张三",
            "1.1",
            200,
        )
    finally:
        logger.removeHandler(handler)
        logger.level = old_level
    line = stream.getvalue().strip()
    assert line == '"GET /v1/public/licenses" 200', line
