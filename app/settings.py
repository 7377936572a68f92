"""Settings read once from the environment, with safe defaults for the embedded profile."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class SettingsError(RuntimeError):
    """A setting is missing or malformed; the message says which and how to fix it."""


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from exc


def _str(name: str, default: str | None = None) -> str | None:
    raw = os.environ.get(name)
    return raw if raw not in (None, "") else default


@dataclass(frozen=True)
class Settings:
    app_env: str = "dev"
    var_dir: Path = ROOT / "var"
    database_url: str = ""
    redis_url: str | None = None
    secret_key: str = ""
    base_url: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = 8000
    default_locale: str = "ja"
    seed_demo: bool = True
    migrate_on_start: bool = True
    session_idle_minutes: int = 30
    session_absolute_hours: int = 10
    login_max_failures: int = 10
    login_lock_minutes: int = 15
    login_ip_max_failures: int = 50
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_from: str = "telework-hub@localhost"
    smtp_starttls: bool = False
    mail_poll_seconds: int = 15
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None
    oidc_scopes: str = "openid email profile"
    oidc_timeout_seconds: int = 10
    oidc_leeway_seconds: int = 60
    local_login: str = "all"
    oidc_hosted_domain: str | None = None
    jobs_interval_seconds: int = 60
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    rtc_max_participants: int = 12
    rtc_max_forwarded_streams: int = 600
    rtc_video_kbps: int = 800
    rtc_screen_kbps: int = 1500
    rtc_ice_servers: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def production(self) -> bool:
        return self.app_env == "production"

    @property
    def sso_enabled(self) -> bool:
        return bool(self.oidc_issuer and self.oidc_client_id and self.oidc_client_secret)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Build settings from the environment; overrides win (used by tests and the CLI)."""
        app_env = str(overrides.get("app_env") or _str("APP_ENV", "dev"))
        if app_env not in {"dev", "production", "test"}:
            raise SettingsError(f"APP_ENV must be dev, production or test, got {app_env!r}")
        var_dir = Path(str(overrides.get("var_dir") or _str("VAR_DIR", str(ROOT / "var"))))
        database_url = str(
            overrides.get("database_url")
            or _str("DATABASE_URL", f"sqlite+aiosqlite:///{var_dir}/telework.db")
        )
        database_url = _async_driver(database_url)
        secret = overrides.get("secret_key") or _str("SECRET_KEY")
        if not secret:
            if app_env == "production":
                raise SettingsError("SECRET_KEY is required when APP_ENV=production")
            secret = _stored_secret(var_dir)
        values: dict[str, object] = {
            "app_env": app_env,
            "var_dir": var_dir,
            "database_url": database_url,
            "redis_url": _str("REDIS_URL"),
            "secret_key": secret,
            "base_url": (_str("BASE_URL") or "").rstrip("/") or None,
            "host": _str("HOST", "127.0.0.1"),
            "port": _int("PORT", 8000),
            "default_locale": _str("DEFAULT_LOCALE", "ja"),
            "seed_demo": _bool("SEED_DEMO", app_env == "dev"),
            "migrate_on_start": _bool("MIGRATE_ON_START", app_env != "production"),
            "session_idle_minutes": _int("SESSION_IDLE_MINUTES", 30),
            "session_absolute_hours": _int("SESSION_ABSOLUTE_HOURS", 10),
            "login_max_failures": _int("LOGIN_MAX_FAILURES", 10),
            "login_lock_minutes": _int("LOGIN_LOCK_MINUTES", 15),
            "login_ip_max_failures": _int("LOGIN_IP_MAX_FAILURES", 50),
            "smtp_host": _str("SMTP_HOST"),
            "smtp_port": _int("SMTP_PORT", 25),
            "smtp_user": _str("SMTP_USER"),
            "smtp_password": _str("SMTP_PASSWORD"),
            "smtp_from": _str("SMTP_FROM", "telework-hub@localhost"),
            "smtp_starttls": _bool("SMTP_STARTTLS", False),
            "mail_poll_seconds": _int("MAIL_POLL_SECONDS", 15),
            "oidc_issuer": _str("OIDC_ISSUER"),
            "oidc_client_id": _str("OIDC_CLIENT_ID"),
            "oidc_client_secret": _str("OIDC_CLIENT_SECRET"),
            "oidc_scopes": _str("OIDC_SCOPES", "openid email profile"),
            "oidc_timeout_seconds": _int("OIDC_TIMEOUT_SECONDS", 10),
            "oidc_leeway_seconds": _int("OIDC_LEEWAY_SECONDS", 60),
            "local_login": _str("LOCAL_LOGIN", "all"),
            "oidc_hosted_domain": _str("OIDC_HOSTED_DOMAIN"),
            "jobs_interval_seconds": _int("JOBS_INTERVAL_SECONDS", 60),
            "argon2_time_cost": _int("ARGON2_TIME_COST", 3),
            "argon2_memory_kib": _int("ARGON2_MEMORY_KIB", 65536),
            "rtc_max_participants": _int("RTC_MAX_PARTICIPANTS", 12),
            "rtc_max_forwarded_streams": _int("RTC_MAX_FORWARDED_STREAMS", 600),
            "rtc_video_kbps": _int("RTC_VIDEO_KBPS", 800),
            "rtc_screen_kbps": _int("RTC_SCREEN_KBPS", 1500),
            "rtc_ice_servers": _str("RTC_ICE_SERVERS", ""),
        }
        values.update({k: v for k, v in overrides.items() if k not in {"app_env", "var_dir", "database_url"}})
        if values["base_url"] is None:
            values["base_url"] = f"http://{values['host']}:{values['port']}"
        if values["local_login"] not in {"all", "admins"}:
            raise SettingsError("LOCAL_LOGIN must be all or admins")
        if values["oidc_issuer"] and not (values["oidc_client_id"] and values["oidc_client_secret"]):
            raise SettingsError("OIDC_ISSUER needs OIDC_CLIENT_ID and OIDC_CLIENT_SECRET")
        poll = values["mail_poll_seconds"]
        if not isinstance(poll, int) or poll < 0:
            raise SettingsError("MAIL_POLL_SECONDS must be 0 (off) or more")
        if values["default_locale"] not in {"ja", "en"}:
            raise SettingsError("DEFAULT_LOCALE must be ja or en")
        return cls(**values)  # type: ignore[arg-type]


def _async_driver(url: str) -> str:
    """Accept the URLs people paste (postgres://, postgresql://, sqlite:///) and pick the async driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    return url


def _stored_secret(var_dir: Path) -> str:
    """Generate a secret once and keep it under var/ so sessions survive restarts in the embedded profile."""
    var_dir.mkdir(parents=True, exist_ok=True)
    path = var_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_urlsafe(48)
    path.write_text(value)
    path.chmod(0o600)
    return value
