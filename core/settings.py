"""The one Settings object: every knob, from the environment (prefix DIGEST_) or `.env`.

Every outside endpoint is a setting, so tests point them at local servers.
"""

from __future__ import annotations

import re
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

CommaList = Annotated[list[str], NoDecode]


def _split_commas(value: object) -> object:
    """Accept `a, b,c` from the environment as well as a real list."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DIGEST_", env_file=".env", extra="ignore")

    var_dir: Path = Path("var")
    database_url: str = ""  # empty: SQLite file under var_dir
    # How long a command waits for another process's schema upgrade before it gives up.
    migrate_wait_seconds: float = Field(default=900.0, gt=0)
    broker_url: str = ""  # empty: kombu's SQLAlchemy transport over a SQLite file under var_dir
    mail_backend: Literal["outbox", "smtp", "sendgrid"] = "outbox"
    outbox_dir: Path | None = None  # empty: var_dir / "outbox"
    public_url: str = "http://localhost:8000"
    # Newest first; older keys still verify so rotating breaks no link. Empty: a random key is
    # generated once and kept in var_dir (fine for a laptop, never for production).
    secret_keys: CommaList = []
    # A manage link older than this (days since its email) asks for a fresh one by email;
    # unsubscribe links never expire. Keep it above the longest pause (12 weeks).
    manage_link_days: int = Field(default=90, ge=1)

    sendgrid_api_key: str = ""
    sendgrid_host: str = "https://api.sendgrid.com"
    sendgrid_webhook_public_key: str = ""
    smtp_url: str = ""
    max_messages_per_second: float = 0.0  # ceiling per transport and process; 0: none

    arxiv_categories: CommaList = ["cs.CL", "cs.SD", "eess.AS"]
    arxiv_rss_url: str = "https://rss.arxiv.org/rss/"
    arxiv_api_url: str = "https://export.arxiv.org/api/query"
    trending_url: str = "https://huggingface.co/api/daily_papers"
    http_timeout_seconds: float = 30.0

    from_email: str = "Paper Digest <digest@localhost>"
    postal_address: str = "Paper Digest, 1 Example Street, 00000 Example City"

    signup_limit_per_ip: int = 20  # signups per IP (IPv6: per /64) per 10 minutes
    confirmations_per_address_per_day: int = 3
    # Where the per-IP rate limits count: a redis:// URL shares them between every web
    # process; `memory` keeps them in each process. Empty: the broker URL when it names
    # Redis, else memory.
    rate_limit_storage_url: str = ""

    # The admin pages: empty password means no admin at all (every /admin route answers 404).
    # A plain password is hashed at startup; a `scrypt$...` string (`digest admin
    # hash-password`) is used as is, so the plain text need not sit in the environment.
    admin_password: str = ""
    admin_api_token: str = ""  # Bearer token for POST /admin/api/clips; empty: API off (404)
    admin_session_hours: float = 12.0  # an admin login lasts this long

    digest_size: int = 10  # papers per daily email
    relevance_floor: float = 1.5  # the best keyword's minimum score, 0-6 (digest/ranking.py)
    synonyms_file: Path | None = None  # acronym = long form pairs; empty: the shipped file
    lookback_days: int = 7  # how far back a daily digest looks for papers not yet sent
    # Matching by meaning as well as by words (digest/semantic.py): `auto` uses it when the
    # `semantic` extra is installed, `on` refuses to run without it, `off` never uses it.
    semantic: Literal["auto", "on", "off"] = "auto"

    clippings_config: Path | None = None  # sections/tags TOML; empty: digest/data/clippings.toml
    clip_fetch_timeout_seconds: float = 5.0  # page title / arXiv lookups when saving a clip

    # Delivery throughput (see README "Performance"): rows a sender claims at once, requests it
    # keeps in flight to the provider (a crash may repeat twice that many per process), how
    # long a claim lasts, and the waits between transient failures (the last one repeats).
    send_batch_size: int = Field(default=200, ge=1)
    send_concurrency: int = Field(default=8, ge=1, le=256)
    send_lease_seconds: float = Field(default=600.0, gt=0)
    send_retry_seconds: Annotated[list[float], NoDecode] = [60.0, 300.0, 1800.0, 7200.0]
    plan_chunk_size: int = Field(default=20_000, ge=1)  # subscribers ranked and written at once

    _split = field_validator("secret_keys", "arxiv_categories", mode="before")(_split_commas)
    _split_retries = field_validator("send_retry_seconds", mode="before")(_split_commas)

    @field_validator("public_url")
    @classmethod
    def _a_safe_base_for_links(cls, value: str) -> str:
        """Every link in every email starts here, and goes into headers and HTML unescaped."""
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc or re.search(
            r"[\s<>\"',&]", value
        ):
            raise ValueError(
                f"DIGEST_PUBLIC_URL must be an absolute http(s) address such as "
                f"https://digest.example.org, without spaces, quotes, '<', '>', ',' or '&': "
                f"{value[:80]!r}"
            )
        return value

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{self.var_dir / 'digest.db'}"

    @property
    def celery_broker_url(self) -> str:
        return self.broker_url or f"sqla+sqlite:///{self.var_dir / 'broker.db'}"

    @property
    def rate_limit_redis_url(self) -> str:
        """The Redis URL the rate limits count in, or "" to count in each process's memory."""
        url = self.rate_limit_storage_url.strip() or self.broker_url.strip()
        scheme = url.partition("://")[0].lower()
        if scheme in ("redis", "rediss", "unix"):
            return url
        if scheme == "redis+socket":  # Celery's spelling of a Unix socket
            return "unix://" + url.partition("://")[2]
        if self.rate_limit_storage_url.strip() and scheme != "memory":
            raise ValueError("DIGEST_RATE_LIMIT_STORAGE_URL must be redis://, rediss://, "
                             f"unix:// or memory, not {scheme or url!r}")
        return ""

    @property
    def outbox_path(self) -> Path:
        return self.outbox_dir or self.var_dir / "outbox"

    def signing_keys(self) -> list[str]:
        """Keys newest first; a generated one kept in var_dir when none is configured."""
        if self.secret_keys:
            return list(self.secret_keys)
        key_file = self.var_dir / "secret.key"
        if not key_file.exists():
            key_file.parent.mkdir(parents=True, exist_ok=True)
            key_file.write_text(secrets.token_urlsafe(48))
            key_file.chmod(0o600)
        stat = key_file.stat()
        return [_read_key(str(key_file.resolve()), stat.st_mtime_ns, stat.st_size)]


@lru_cache(maxsize=8)
def _read_key(path: str, mtime_ns: int, size: int) -> str:
    """The key file's content, read once per version of the file: senders sign three links
    per email, and reading the file each time was a tenth of a send's CPU. A replaced file
    (new mtime or size) is read again."""
    return Path(path).read_text().strip()


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
