"""The provincial node's settings: one pydantic-settings class, environment prefix ``LICLEDGER_``.

Sources, highest precedence first: environment variables (``LICLEDGER_PROVINCE=440000``), then the node
directory's settings file ``node.env`` written by ``licledger node init`` (same names, dotenv syntax).

Rules (after the full-stack-fastapi-template ``Settings`` class):

1. ``mode`` is ``production`` unless set to ``development``. Outside development every insecure default is
   refused when the settings are loaded: the key-encryption key (``LICLEDGER_KEK``) must be set, from the
   environment only, never from ``node.env``; the database URL must be given explicitly; the rate limit
   must be on; binding all interfaces needs ``LICLEDGER_ALLOW_PUBLIC_BIND=true``.
2. In development a fixed, published KEK (``DEVELOPMENT_KEK``, all zero bytes) and an SQLite file in the node
   directory are used when nothing is set. Data protected by them is not protected.
3. There is no administrator password or default API key anywhere: ``node init`` prints the first operator
   key once, and keys live hashed in the database (:mod:`node.tokens`).
4. Secrets are :class:`pydantic.SecretStr` and never appear in ``repr`` or logs.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.codes import validate_uscc
from core.divisions import PROVINCES
from core.errors import DocumentError
from core.keystore import KEKError, kek_from_hex
from core.licenses import in_province

ENV_PREFIX = "LICLEDGER_"
SETTINGS_FILE = "node.env"
KEY_FILE = "province-key.enc"
SECRET_FILE = "node-secret.enc"  # noqa: S105 - a file name
DATABASE_FILE = "node.db"
DEVELOPMENT_KEK = "0" * 32
"""Used only in development mode when ``LICLEDGER_KEK`` is unset. Published, so it protects nothing."""


class SettingsError(ValueError):
    """The settings are missing, inconsistent or insecure for the mode they run in."""


class NodeSettings(BaseSettings):
    """Everything a provincial node is configured with. See the module docstring for the rules."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", frozen=True, hide_input_in_errors=True, env_ignore_empty=True
    )

    mode: Literal["development", "production"] = "production"
    dir: Path = Field(default=Path("."), description="The node directory: settings file, keys, SQLite file.")
    province: str = Field(description="GB/T 2260 provincial-level code of the province this node serves.")
    authority: str = Field(min_length=1, max_length=200, description="The issuing authority's name.")
    authority_uscc: str = Field(description="The issuing authority's unified social credit code (GB 32100).")
    database_url: str | None = None
    kek: SecretStr | None = Field(default=None, description="32 hex digits; from the environment only.")
    host: str = "127.0.0.1"
    port: int = Field(default=8600, ge=1, le=65535)
    allow_public_bind: bool = False
    public_rate_per_second: float = Field(default=5.0, ge=0)
    public_rate_burst: int = Field(default=20, ge=0)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    anchor_batch_size: int = Field(default=4096, ge=1, le=1 << 20, description="Anchoring worker: leaves.")
    anchor_batch_max_age_ms: int = Field(default=5000, ge=1, description="Anchoring worker: oldest leaf age.")
    ledger_urls: str | None = Field(default=None, description="Comma-separated peer URLs, own member's first.")
    network_id: str | None = Field(default=None, description="SM3 (hex) of the ledger's genesis.")
    ledger_timeout_s: float = Field(default=30.0, gt=0, le=300, description="Wait for a commit, per request.")
    ledger_backend: Literal["embedded", "fabric"] = Field(
        default="embedded", description="Where the ledger runs: the embedded network's peers or Hyperledger Fabric."
    )
    fabric_gateway: str | None = Field(
        default=None, description="Fabric: the peers' Gateway endpoints, host:port[,host:port...]."
    )
    fabric_msp_id: str | None = Field(default=None, description="Fabric: the MSP id of the node's identity.")
    fabric_msp_dir: Path | None = Field(
        default=None, description="Fabric: the node identity's MSP directory (signcerts/*.pem, keystore/)."
    )
    fabric_tls_ca: Path | None = Field(default=None, description="Fabric: PEM of the peer's TLS CA (TLS on).")
    fabric_server_name: str | None = Field(default=None, description="Fabric: the peer's name in its certificate.")
    fabric_channel: str = Field(default="licledger", min_length=1, description="Fabric: the channel.")
    fabric_chaincode: str = Field(default="licledger", min_length=1, description="Fabric: the chaincode's name.")
    checkpoint_duty_interval_s: float = Field(
        default=5.0, ge=0, description="Fabric: seconds between checkpoint duty passes (0 = off)."
    )
    checkpoint_refresh_ms: int = Field(
        default=600_000, ge=1000, description="Fabric: re-checkpoint an unchanged ledger after this long."
    )
    anchor_in_process: bool = Field(default=True, description="`node serve` runs the anchoring scheduler.")
    anchor_interval_ms: int = Field(default=1000, ge=50, description="Anchoring worker: time between passes.")
    reconcile_interval_s: int = Field(default=600, ge=0, description="In-process reconciliation; 0 = off.")
    public_url: str | None = Field(default=None, description="The node's URL as printed in voucher QR codes.")
    checkpoint_cache_ms: int = Field(default=1000, ge=0, description="How long proofs reuse a final checkpoint.")
    node_directory: str | None = Field(
        default=None,
        description="Other provinces' nodes, `PROVINCE=URL` separated by commas: where a proof request for "
        "another province's license is referred (307).",
    )
    announce_interval_s: int = Field(
        default=0,
        ge=0,
        description="`serve` announces `public_url` on the ledger at start and then every N seconds when the "
        "ledger holds another URL (0 = off: `licledger node announce` by hand).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("province")
    @classmethod
    def _province(cls, value: str) -> str:
        if value not in PROVINCES:
            raise ValueError("must be a GB/T 2260 provincial-level code (e.g. 440000) or 660000")
        return value

    @field_validator("authority_uscc")
    @classmethod
    def _uscc(cls, value: str) -> str:
        try:
            return validate_uscc(value)
        except DocumentError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("network_id")
    @classmethod
    def _network_id(cls, value: str | None) -> str | None:
        if value is not None and re.fullmatch(r"[0-9a-f]{64}", value) is None:
            raise ValueError("must be 64 lower-case hex digits (the SM3 of the genesis)")
        return value

    @field_validator("ledger_urls", "public_url")
    @classmethod
    def _urls(cls, value: str | None) -> str | None:
        if value is None:
            return None
        for url in value.split(","):
            if re.fullmatch(r"https?://[\x21-\x7e]+", url.strip()) is None:
                raise ValueError("must be http(s) URLs of printable ASCII, separated by commas")
        return value

    @field_validator("node_directory")
    @classmethod
    def _directory(cls, value: str | None) -> str | None:
        if value is not None:
            parse_node_directory(value)
        return value

    @field_validator("fabric_gateway")
    @classmethod
    def _gateway(cls, value: str | None) -> str | None:
        if value is not None:
            parts = [p.strip() for p in value.split(",")]
            bad = [p for p in parts if re.fullmatch(_HOST_PORT, p) is None]
            if bad:
                raise ValueError(
                    f"must be host:port, or several separated by commas (Fabric peers' Gateway endpoints); "
                    f"not {', '.join(repr(b) for b in bad)}"
                )
        return value

    @model_validator(mode="after")
    def _secure(self) -> Self:
        if self.ledger_backend == "fabric":
            missing = [
                f"LICLEDGER_{name.upper()}"
                for name in ("fabric_gateway", "fabric_msp_id", "fabric_msp_dir")
                if getattr(self, name) is None
            ]
            if missing:
                raise ValueError("the Fabric ledger needs " + ", ".join(missing))
        if not in_province(self.authority_uscc[2:8], self.province):
            raise ValueError(f"authority_uscc is registered outside province {self.province}")
        if self.kek is not None:
            try:
                kek_from_hex(self.kek.get_secret_value(), "LICLEDGER_KEK")
            except KEKError as exc:
                raise ValueError(str(exc)) from None
        if self.mode == "development":
            return self
        problems = []
        if self.kek is None:
            problems.append("LICLEDGER_KEK (the 32-hex-digit key-encryption key) must be set")
        elif self.kek.get_secret_value().strip() == DEVELOPMENT_KEK:
            problems.append("LICLEDGER_KEK must not be the published development KEK")
        if not self.database_url:
            problems.append("LICLEDGER_DATABASE_URL must be set")
        if self.public_rate_per_second <= 0 or self.public_rate_burst <= 0:
            problems.append("the public rate limit must be on (rate and burst above 0)")
        if self.host in ("0.0.0.0", "::", "") and not self.allow_public_bind:  # noqa: S104
            problems.append("binding all interfaces needs LICLEDGER_ALLOW_PUBLIC_BIND=true")
        if self.ledger_backend == "fabric" and self.fabric_tls_ca is None:
            problems.append("the Fabric gateway needs TLS: set LICLEDGER_FABRIC_TLS_CA")
        if problems:
            raise ValueError("insecure settings outside development mode: " + "; ".join(problems))
        return self

    # --- derived values ---

    @property
    def kek_bytes(self) -> bytes:
        """The 16-byte KEK (the development KEK only in development mode)."""
        if self.kek is not None:
            return kek_from_hex(self.kek.get_secret_value(), "LICLEDGER_KEK")
        if self.mode != "development":
            raise SettingsError("LICLEDGER_KEK is not set")
        return bytes.fromhex(DEVELOPMENT_KEK)

    @property
    def url(self) -> str:
        """The SQLAlchemy database URL (an SQLite file in the node directory if unset, in development)."""
        if self.database_url:
            return self.database_url
        return sqlite_url(self.dir / DATABASE_FILE)

    @property
    def ledger_url_list(self) -> list[str]:
        """The peers to talk to, in preference order (empty: the node is not joined to a ledger)."""
        return [u.strip() for u in (self.ledger_urls or "").split(",") if u.strip()]

    @property
    def fabric_gateway_list(self) -> list[str]:
        """The Fabric peers' Gateway endpoints, in preference order (empty without a Fabric backend)."""
        return [g.strip() for g in (self.fabric_gateway or "").split(",") if g.strip()]

    @property
    def has_ledger(self) -> bool:
        """Whether the node is joined to a ledger (a network id and peers or a Fabric gateway)."""
        if not self.network_id:
            return False
        return self.fabric_gateway is not None if self.ledger_backend == "fabric" else bool(self.ledger_url_list)

    @property
    def node_url(self) -> str:
        """Where verifiers reach this node (voucher QR codes): ``public_url`` or the bind address."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def node_directory_map(self) -> dict[str, str]:
        """Province code -> node URL (no trailing slash) of the other provinces' nodes this node refers to."""
        return parse_node_directory(self.node_directory or "")

    @property
    def key_file(self) -> Path:
        return self.dir / KEY_FILE

    @property
    def secret_file(self) -> Path:
        return self.dir / SECRET_FILE


_HOST_PORT = r"[A-Za-z0-9.\-]+:[0-9]{1,5}|\[[0-9A-Fa-f:]+\]:[0-9]{1,5}"


def parse_node_directory(text: str) -> dict[str, str]:
    """``110000=https://a.example,310000=https://b.example`` as ``{province: url}``; ``ValueError`` naming the bad
    entry (an unknown province code, a URL that is not http(s) printable ASCII, a province given twice)."""
    out: dict[str, str] = {}
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        province, _, url = entry.partition("=")
        province, url = province.strip(), url.strip().rstrip("/")
        if province not in PROVINCES:
            raise ValueError(f"{province!r} is not a GB/T 2260 provincial-level code (entries are PROVINCE=URL)")
        if re.fullmatch(r"https?://[\x21-\x7e]+", url) is None or "," in url:
            raise ValueError(f"the URL for {province} must be an http(s) URL of printable ASCII")
        if province in out:
            raise ValueError(f"province {province} is listed twice")
        out[province] = url
    return out


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of an SQLite file (absolute path)."""
    return f"sqlite:///{path.resolve()}"


def load_settings(directory: Path | str | None = None, **overrides: Any) -> NodeSettings:
    """Settings of the node in ``directory`` (default: ``LICLEDGER_DIR`` or the current directory).

    Reads ``directory/node.env`` and the environment; refuses a KEK written in the settings file.
    Raises :class:`SettingsError` naming every problem.
    """
    base = Path(directory if directory is not None else os.environ.get(ENV_PREFIX + "DIR", ".")).resolve()
    env_file = base / SETTINGS_FILE
    if env_file.exists() and _file_sets(env_file, ENV_PREFIX + "KEK"):
        raise SettingsError(f"{env_file} sets LICLEDGER_KEK; the KEK must come from the environment only")
    try:
        arguments: dict[str, Any] = {"_env_file": env_file if env_file.exists() else None, "dir": base}
        return NodeSettings(**arguments, **overrides)
    except ValueError as exc:
        raise SettingsError(_describe(exc)) from None


def _file_sets(path: Path, name: str) -> bool:
    for line in path.read_text(encoding="utf-8").splitlines():
        key = line.strip().removeprefix("export ").split("=", 1)[0].strip()
        if key.upper() == name:
            return True
    return False


def _describe(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc)
    parts = []
    for err in errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in err["loc"])
        message = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{ENV_PREFIX}{where.upper()}: {message}" if where else message)
    return "; ".join(parts)


def render_settings_file(values: dict[str, str]) -> str:
    """The text of a ``node.env`` file holding ``values`` (field name -> value), one ``LICLEDGER_X=...``."""
    lines = [
        "# licledger provincial node settings (environment variables override these).",
        "# Never put LICLEDGER_KEK here: it comes from the environment only.",
    ]
    for name, value in values.items():
        if "\n" in value or '"' in value:
            raise ValueError(f"setting {name} cannot hold a newline or a double quote")
        lines.append(f'{ENV_PREFIX}{name.upper()}="{value}"')
    return "\n".join(lines) + "\n"
