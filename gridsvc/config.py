"""Configuration defaults; the environment is read only inside ``load_config``.

Environment:
  DATABASE_URL            an existing PostGIS server (else the embedded cluster)
  GRIDSVC_HOME            project-local state, default ./.gridsvc
  GRIDSVC_PORT            HTTP port for ``gridsvc serve`` (default 8000)
  GRIDSVC_TEST_DATABASE_URL  the test suite's database (default: <db>_test beside DATABASE_URL)
  GRIDSVC_LOG_LEVEL       logging level (default INFO)
  GRIDSVC_SECRET_KEY      signs tokens; default: generated once into .gridsvc/secret_key
  GRIDSVC_ACCESS_TOKEN_MINUTES / GRIDSVC_REFRESH_TOKEN_DAYS   token lifetimes (60 / 30)
  GRIDSVC_SIGNIN_ADDRESS_FAILURES / GRIDSVC_SIGNIN_ADDRESS_WINDOW_MIN   failed sign-ins from one address (30 / 10)
"""
from __future__ import annotations

import logging
import math
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from gridsvc.clock import timezone_named

DEFAULTS: dict[str, Any] = {
    # A GeoJSON boundary of a whole town is a few MB at most; bigger is abuse.
    "MAX_CONTENT_LENGTH": 10 * 1024 * 1024,
    "API_TITLE": "gridsvc",
    "API_VERSION": "v1",
    "OPENAPI_VERSION": "3.0.3",
    "OPENAPI_URL_PREFIX": "/api",
    "OPENAPI_JSON_PATH": "openapi.json",
    "OPENAPI_SWAGGER_UI_PATH": "/docs",
    # Swagger UI is vendored into gridsvc/static (no CDN: parks run offline).
    "OPENAPI_SWAGGER_UI_URL": "/static/swagger-ui/",
    "API_SPEC_OPTIONS": {
        "info": {"description": "Grid zones, volunteers, parking and service requests for industrial-park communities."},
    },
    "GRIDSVC_LOG_LEVEL": "INFO",
    "GRIDSVC_DB_CONNECT_TIMEOUT": 5,
    "GRIDSVC_DB_POOL_SIZE": 10,
    "GRIDSVC_DEFAULT_TIMEZONE": "Asia/Shanghai",
    "GRIDSVC_ACCESS_TOKEN_MINUTES": 60,
    "GRIDSVC_REFRESH_TOKEN_DAYS": 30,
    "GRIDSVC_SECRET_KEY": None,
    # Failed sign-ins from one client address (an IPv6 /64) within a window before it must wait (429), whatever
    # the usernames: see gridsvc/services/accounts.py. Generous: a factory's Wi-Fi is one address.
    "GRIDSVC_SIGNIN_ADDRESS_FAILURES": 30,
    "GRIDSVC_SIGNIN_ADDRESS_WINDOW_MIN": 10,
    # Volunteers and shifts (issue 4): see gridsvc/services/checks.py
    "GRIDSVC_CHECKIN_OPENS_MIN": 30,
    "GRIDSVC_GEOFENCE_CAP_M": 100,
    "GRIDSVC_CHECKOUT_GRACE_MIN": 120,
    "GRIDSVC_POSITION_RETENTION_DAYS": 7,
    # A reported fix joins the history unless one kept within this many seconds of it lies within this many
    # metres: see HistoryThinning in gridsvc/services/volunteers.py
    "GRIDSVC_POSITION_HISTORY_SECONDS": 60,
    "GRIDSVC_POSITION_HISTORY_METRES": 50,
    "GRIDSVC_OFFLINE_MAX_AGE_H": 24,
    "GRIDSVC_CLOCK_SKEW_MIN": 5,
    "GRIDSVC_OFFLINE_MAX_EVENTS": 200,
    # A write's first answer is given again to a retry with its Idempotency-Key this long: see gridsvc/idempotency.py
    "GRIDSVC_IDEMPOTENCY_HOURS": 24,
    # Service requests (issue 6): see gridsvc/services/requests.py
    "GRIDSVC_DISPATCH_MAX_DISTANCE_M": 3000,
    "GRIDSVC_DISPATCH_ACCEPT_MIN": 5,
    "GRIDSVC_DISPATCH_TASK_CAP": 1,
    "GRIDSVC_DISPATCH_MAX_REFUSALS": 3,
    # Public tiles are kept this long per worker (the max-age they are sent with); 0 turns it off.
    "GRIDSVC_TILE_CACHE_SECONDS": 60,
    "GRIDSVC_TILE_CACHE_MB": 64,
    # Reverse proxies in front (nginx, say) whose X-Forwarded-For/-Proto/-Host/-Prefix headers are believed, so
    # the links we hand out (a phone's calendar_url, OGC and Open311 links) name the public address. 0: none,
    # and the headers are ignored (anyone could send them).
    "GRIDSVC_PROXY_HOPS": 0,
}

DEFAULT_DATABASE = "gridsvc"

# Positions kept at most a century: a cut-off further back than that (a million days) is before year 1, where
# Python's dates end, and "for ever" is no retention under PIPL.
MAX_RETENTION_DAYS = 36_500


@dataclass(frozen=True)
class Bounds:
    """What a numeric setting may be: a whole number or any, from ``least`` (or above it) to ``most``.

    Why the bounds: out of them a setting breaks requests, not the start. No failed sign-in allowed made every
    sign-in a 500; a window or age of centuries runs a date past year 9999 or before year 1 (a 500 per request
    that reads it); a negative token lifetime issues tokens already expired."""

    whole: bool = False
    least: float = 0
    above: bool = False  # the value must exceed ``least``
    most: float = math.inf

    def admits(self, value: float) -> bool:
        return (value > self.least if self.above else value >= self.least) and value <= self.most

    def __str__(self) -> str:
        kind = "a whole number" if self.whole else "a number"
        low = f"above {_written(self.least)}" if self.above else f"from {_written(self.least)}"
        return f"{kind} {low}" + ("" if self.most == math.inf else f", at most {_written(self.most)}")


def _written(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else f"{bound:g}"


_POSITIVE = Bounds(above=True)
# (whole numbers reach SQL as LIMITs and counts: beyond a bigint every such query would fail)
_COUNT = Bounds(whole=True, least=1, most=1_000_000)

# The settings that are numbers (from the environment they arrive as text), and what each may be.
NUMERIC_SETTINGS: dict[str, Bounds] = {
    "GRIDSVC_DB_CONNECT_TIMEOUT": Bounds(whole=True, least=1, most=3_600),  # (0 would wait for ever)
    "GRIDSVC_DB_POOL_SIZE": Bounds(whole=True, least=1, most=1_000),
    "GRIDSVC_ACCESS_TOKEN_MINUTES": Bounds(above=True, most=525_600),  # a year
    "GRIDSVC_REFRESH_TOKEN_DAYS": Bounds(above=True, most=3_650),
    "GRIDSVC_SIGNIN_ADDRESS_FAILURES": _COUNT,
    # (failures older than a day are deleted: a longer window would quietly be a day)
    "GRIDSVC_SIGNIN_ADDRESS_WINDOW_MIN": Bounds(whole=True, least=1, most=1_440),
    "GRIDSVC_CHECKIN_OPENS_MIN": Bounds(most=10_080),  # a week
    "GRIDSVC_GEOFENCE_CAP_M": Bounds(),
    "GRIDSVC_CHECKOUT_GRACE_MIN": Bounds(most=10_080),
    "GRIDSVC_POSITION_RETENTION_DAYS": Bounds(above=True, most=MAX_RETENTION_DAYS),
    "GRIDSVC_OFFLINE_MAX_AGE_H": Bounds(above=True, most=8_760),  # a year
    "GRIDSVC_POSITION_HISTORY_SECONDS": Bounds(most=86_400),  # (0: every fix joins the history)
    "GRIDSVC_POSITION_HISTORY_METRES": Bounds(),
    "GRIDSVC_CLOCK_SKEW_MIN": Bounds(most=1_440),
    "GRIDSVC_OFFLINE_MAX_EVENTS": _COUNT,
    "GRIDSVC_IDEMPOTENCY_HOURS": Bounds(above=True, most=8_760),
    "GRIDSVC_DISPATCH_MAX_DISTANCE_M": _POSITIVE,
    "GRIDSVC_DISPATCH_ACCEPT_MIN": Bounds(above=True, most=1_440),
    "GRIDSVC_DISPATCH_TASK_CAP": _COUNT,
    "GRIDSVC_DISPATCH_MAX_REFUSALS": Bounds(whole=True, most=1_000_000),  # (0: straight to the liaison)
    "GRIDSVC_TILE_CACHE_SECONDS": Bounds(most=86_400),  # (0: off; also the max-age tiles are sent with)
    "GRIDSVC_TILE_CACHE_MB": Bounds(),
}


def check_settings(config: Mapping[str, Any]) -> None:
    """Every setting the app reads, checked before it serves: a ValueError naming the first that is wrong, and
    what it may be. Why: a typo in the environment then stops the start (``create_app``, and ``gridsvc serve``
    before gunicorn starts its workers) with the setting's name, rather than turning every check-in or offer into
    a 500 saying "could not convert string to float"."""
    check_numeric_settings(config)
    check_default_timezone(config)
    proxy_hops(config)
    level = config["GRIDSVC_LOG_LEVEL"]
    if not isinstance(logging.getLevelName(str(level).upper()), int):
        raise ValueError(f"GRIDSVC_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, not {level!r}.")


def check_numeric_settings(config: Mapping[str, Any]) -> None:
    """A ValueError naming the first numeric setting that is not a finite number within its ``Bounds`` ("inf" is
    a float to Python but no JSON number, and no span of time). Also run by ``gridsvc tick``."""
    for key in NUMERIC_SETTINGS:
        numeric_setting(config, key)


def numeric_setting(config: Mapping[str, Any], key: str) -> float:
    """The setting ``key`` as a number within its ``Bounds``, else a ValueError naming it and what it may be."""
    bounds, configured = NUMERIC_SETTINGS[key], config[key]
    try:
        value = int(str(configured).strip()) if bounds.whole else float(configured)
        admitted = not isinstance(configured, bool) and math.isfinite(value) and bounds.admits(value)
    except (TypeError, ValueError, OverflowError):  # (an integer of 309 digits is no float)
        admitted = False
    if not admitted:
        raise ValueError(f"{key} must be {bounds}, not {configured!r}.")
    return value


def check_default_timezone(config: Mapping[str, Any]) -> None:
    """A ValueError naming GRIDSVC_DEFAULT_TIMEZONE when it is no IANA time zone. Why: a typo (Asia/Shangai)
    started the app, and every request that reads a time on that clock (a phone's fix, a search without a
    community) was a 500."""
    name = config["GRIDSVC_DEFAULT_TIMEZONE"]
    try:
        timezone_named(name)
    except ValueError:
        raise ValueError(f"GRIDSVC_DEFAULT_TIMEZONE must be an IANA time zone such as Asia/Shanghai, "
                         f"not {name!r}.") from None


def retention_days(config: Mapping[str, Any]) -> float:
    """GRIDSVC_POSITION_RETENTION_DAYS, above 0 (0 or less would delete every volunteer's last known position, and
    dispatch would find nobody) and at most MAX_RETENTION_DAYS; else a ValueError naming it."""
    return numeric_setting(config, "GRIDSVC_POSITION_RETENTION_DAYS")


class BadDatabaseUrl(ValueError):
    """DATABASE_URL (or GRIDSVC_TEST_DATABASE_URL) is not a PostgreSQL URL; the message says what is expected."""


def normalise_url(url: str, setting: str = "DATABASE_URL") -> str:
    """Accept the usual spellings and always use the psycopg2 driver."""
    expected = f"{setting} must look like postgresql://user:password@host:5432/database"
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    try:
        parsed = make_url(url)
        parsed.port  # a port that is not a number fails only when read
    except (ArgumentError, ValueError):
        raise BadDatabaseUrl(f"{expected}, not {_masked(url)!r}") from None
    if parsed.drivername not in ("postgresql", "postgresql+psycopg2"):
        raise BadDatabaseUrl(f"{expected} (a PostgreSQL server with PostGIS), not {parsed.drivername}://...")
    if parsed.host and "@" in parsed.host:
        # libpq and SQLAlchemy both end the password at its first "@": the rest was read as the host.
        raise BadDatabaseUrl(f"{setting}: the host reads {parsed.host.split('@', 1)[1]!r} after an '@' in the "
                             "password; write special characters of the password percent-encoded (@ as %40, "
                             ": as %3A, / as %2F, # as %23, ? as %3F, % as %25)")
    return parsed.set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)


def _masked(url: str) -> str:
    """The URL as typed, its password (between the first ':' after '//' and the last '@') replaced."""
    head, sep, rest = url.partition("//")
    if not sep or "@" not in rest:
        return url
    credentials, _, place = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{head}//{user}:***@{place}" if ":" in credentials else url


def database_url(env: Mapping[str, str] | None = None) -> str | None:
    """DATABASE_URL, else the embedded cluster's URL once it exists, else None."""
    env = os.environ if env is None else env
    if env.get("DATABASE_URL"):
        return normalise_url(env["DATABASE_URL"])
    from gridsvc import localdb

    info = localdb.cluster_info()
    return info.url(DEFAULT_DATABASE) if info else None


def test_database_url(env: Mapping[str, str] | None = None) -> str | None:
    """The separate database the test suite owns (it is dropped and rebuilt)."""
    env = os.environ if env is None else env
    if env.get("GRIDSVC_TEST_DATABASE_URL"):
        return normalise_url(env["GRIDSVC_TEST_DATABASE_URL"], "GRIDSVC_TEST_DATABASE_URL")
    base = database_url(env)
    if not base:
        return None
    parsed = make_url(base)
    return parsed.set(database=f"{parsed.database}_test").render_as_string(hide_password=False)


def secret_key(home: Path | None = None) -> str:
    """The token-signing secret kept in ``.gridsvc/secret_key``, made on first use.

    Written to a temporary file and hard-linked into place, so two gunicorn
    workers starting together end up with the same key.
    """
    from gridsvc import localdb

    home = home or localdb.home_dir()
    path = home / "secret_key"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        tmp = home / f".secret_key.{os.getpid()}"
        tmp.write_text(secrets.token_urlsafe(48))
        os.chmod(tmp, 0o600)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process won the race; use its key
        finally:
            tmp.unlink(missing_ok=True)
    return path.read_text().strip()


def proxy_hops(config: Mapping[str, Any]) -> int:
    """GRIDSVC_PROXY_HOPS as a whole number from 0 (checked when the app starts)."""
    configured = config["GRIDSVC_PROXY_HOPS"]
    text = str(configured).strip()
    if isinstance(configured, bool) or not (text.isascii() and text.isdigit()) or int(text) > 10:
        raise ValueError(f"GRIDSVC_PROXY_HOPS must be the number of reverse proxies in front, 0 to 10, "
                         f"not {configured!r}.")
    return int(text)


def load_config(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    config = dict(DEFAULTS)
    for key in list(DEFAULTS):
        if key.startswith("GRIDSVC_") and key in os.environ:
            config[key] = os.environ[key]
    config["DATABASE_URL"] = database_url()
    config.update(overrides or {})
    return config
