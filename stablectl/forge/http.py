"""The HTTP session under github3.py: retries, rate limits, conditional requests, counting.

Every request github3.py makes passes through `StableSession.request`, so one place decides:
- 5xx, dropped connections and timeouts are retried with exponential backoff and jitter;
- rate limits (403/429 with `Retry-After`, `X-RateLimit-Remaining: 0` + `X-RateLimit-Reset`,
  GitHub's secondary limits) are waited out as told, up to the policy's maximum in total, then
  stop with `RateLimitError` naming the reset time;
- any other 4xx is returned at once (github3 raises, the forge names the object);
- GETs are conditional (`If-None-Match` with the ETag seen before, kept in a small SQLite file
  under the state directory): a 304 costs no rate-limit quota and is answered from the cache;
- requests are counted per forge operation (`ForgeStats`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from github3.session import GitHubSession
from requests.structures import CaseInsensitiveDict
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from stablectl.errors import redact
from stablectl.forge.base import ForgeStats, ForgeUnavailableError, RateLimitError

RETRY_STATUSES = frozenset({500, 502, 503, 504})
SECONDARY_DEFAULT_WAIT = 60.0


class _Retry(Exception):
    def __init__(self, reason: str, wait: float | None, response: requests.Response | None):
        self.reason, self.wait, self.response = reason, wait, response
        super().__init__(reason)


def rate_limit_wait(resp: requests.Response, now: float | None = None) -> float | None:
    """Seconds GitHub asks us to wait, or None if `resp` is not a rate-limit answer."""
    if resp.status_code not in (403, 429):
        return None
    h = resp.headers
    retry_after = h.get("Retry-After")
    if retry_after is not None:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            return SECONDARY_DEFAULT_WAIT
    if h.get("X-RateLimit-Remaining") == "0" and h.get("X-RateLimit-Reset"):
        try:
            reset = float(h["X-RateLimit-Reset"])
        except ValueError:
            return SECONDARY_DEFAULT_WAIT
        return max(0.0, reset - (now if now is not None else time.time())) + 1.0
    if resp.status_code == 429 or "rate limit" in _message(resp).lower():
        return SECONDARY_DEFAULT_WAIT
    return None


def _message(resp: requests.Response) -> str:
    try:
        data = resp.json()
    except ValueError:
        return ""
    return str(data.get("message", "")) if isinstance(data, dict) else ""


class EtagCache:
    """ETags and bodies of earlier GETs, by URL (and a hash of the token: never the token)."""

    def __init__(self, path: Path | None, identity: str) -> None:
        self._mem: dict[str, tuple[str, int, dict[str, str], bytes]] = {}
        self._lock = threading.Lock()
        self._ident = hashlib.sha256(identity.encode()).hexdigest()[:16]
        self._db: sqlite3.Connection | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, timeout=30, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS etags(key TEXT PRIMARY KEY, etag TEXT, status INT,"
                " headers TEXT, body BLOB, stored REAL)"
            )

    def key(self, url: str, accept: str) -> str:
        return hashlib.sha256(f"{self._ident}\0{url}\0{accept}".encode()).hexdigest()

    def get(self, key: str) -> tuple[str, int, dict[str, str], bytes] | None:
        with self._lock:
            if key in self._mem:
                return self._mem[key]
            if self._db is None:
                return None
            row = self._db.execute(
                "SELECT etag, status, headers, body FROM etags WHERE key = ?", (key,)
            ).fetchone()
        if row is None:
            return None
        entry = (row[0], int(row[1]), json.loads(row[2]), bytes(row[3]))
        self._mem[key] = entry
        return entry

    def put(self, key: str, etag: str, resp: requests.Response) -> None:
        headers = {k: v for k, v in resp.headers.items() if k.lower() in _KEEP_HEADERS}
        entry = (etag, resp.status_code, headers, resp.content)
        with self._lock:
            self._mem[key] = entry
            if self._db is not None:
                self._db.execute(
                    "INSERT OR REPLACE INTO etags VALUES (?, ?, ?, ?, ?, ?)",
                    (key, etag, resp.status_code, json.dumps(headers), resp.content, time.time()),
                )
                self._db.commit()

    def close(self) -> None:
        if self._db is not None:
            self._db.close()


_KEEP_HEADERS = {"content-type", "link", "etag", "last-modified"}


class StableSession(GitHubSession):  # type: ignore[misc]
    def __init__(
        self,
        *,
        token: str | None,
        stats: ForgeStats,
        max_rate_limit_wait: float,
        attempts: int = 6,
        backoff: tuple[float, float] = (1.0, 30.0),
        sleep: Callable[[float], None] = time.sleep,
        etags: EtagCache | None = None,
        timeout: tuple[float, float] = (10.0, 60.0),
    ) -> None:
        super().__init__(default_connect_timeout=timeout[0], default_read_timeout=timeout[1])
        if token:
            self.token_auth(token)
        self.stats = stats
        self.max_rate_limit_wait = max_rate_limit_wait
        self.attempts = attempts
        self.backoff = backoff
        self._sleep = sleep
        self.etags = etags
        self.rate_limited_seconds = 0.0
        self.rate_remaining: int | None = None

    # requests.Session.request(method, url, params=None, data=None, headers=None, ...)
    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        retrying = Retrying(
            retry=retry_if_exception_type(_Retry),
            stop=stop_after_attempt(self.attempts),
            wait=self._wait,
            sleep=self._do_sleep,
            before_sleep=self._before_sleep,
            retry_error_callback=self._give_up,
            reraise=False,
        )
        result: requests.Response = retrying(self._once, method, url, *args, **kwargs)
        return result

    def _once(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        cache_key = None
        cached = None
        if method.upper() == "GET" and self.etags is not None:
            params = kwargs.get("params")
            full = requests.Request("GET", url, params=params).prepare().url or url
            accept = headers.get("Accept") or str(self.headers.get("Accept", ""))
            cache_key = self.etags.key(full, accept)
            cached = self.etags.get(cache_key)
            if cached is not None:
                headers["If-None-Match"] = cached[0]
        self.stats.requests[self.stats.current] += 1
        try:
            resp: requests.Response = super().request(method, url, *args, headers=headers, **kwargs)
        except (requests.ConnectionError, requests.Timeout) as e:
            raise _Retry(f"{type(e).__name__} on {method} {_path(url)}", None, None) from e
        self._note_quota(resp)
        if resp.status_code == 304 and cached is not None:
            self.stats.not_modified += 1
            return _from_cache(resp, cached)
        if resp.status_code in RETRY_STATUSES:
            raise _Retry(f"HTTP {resp.status_code} on {method} {_path(url)}", None, resp)
        wait = rate_limit_wait(resp)
        if wait is not None:
            if self.rate_limited_seconds + wait > self.max_rate_limit_wait:
                raise RateLimitError(
                    _limit_message(resp, wait, self.max_rate_limit_wait), status=resp.status_code
                )
            self.rate_limited_seconds += wait
            raise _Retry(f"rate limited on {method} {_path(url)}", wait, resp)
        if cache_key is not None and resp.status_code == 200 and resp.headers.get("ETag"):
            assert self.etags is not None
            self.etags.put(cache_key, resp.headers["ETag"], resp)
        return resp

    def _note_quota(self, resp: requests.Response) -> None:
        remaining = resp.headers.get("X-RateLimit-Remaining")
        if remaining is not None and remaining.isdigit():
            self.rate_remaining = int(remaining)

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retry) and exc.wait is not None:
            return exc.wait
        first, cap = self.backoff
        exp = min(cap, first * 2.0 ** (state.attempt_number - 1))
        return float(exp / 2 + random.uniform(0, exp / 2))

    def _do_sleep(self, seconds: float) -> None:
        self.stats.waited_seconds += seconds
        self._sleep(seconds)

    def _before_sleep(self, state: RetryCallState) -> None:
        self.stats.retries += 1

    def _give_up(self, state: RetryCallState) -> requests.Response:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retry) and exc.response is not None:
            return exc.response  # github3 raises its error for it; the forge names the object
        reason = exc.reason if isinstance(exc, _Retry) else str(exc)
        raise ForgeUnavailableError(
            redact(f"GitHub unreachable after {state.attempt_number} attempts: {reason}")
        )


def _path(url: str) -> str:
    return urllib.parse.urlsplit(url).path


def _from_cache(
    resp: requests.Response, cached: tuple[str, int, dict[str, str], bytes]
) -> requests.Response:
    etag, status, headers, body = cached
    out = requests.Response()
    out.status_code = status
    out._content = body
    out.headers = CaseInsensitiveDict(
        {
            **headers,
            **{k: v for k, v in resp.headers.items() if k.lower().startswith("x-ratelimit")},
        }
    )
    out.headers["ETag"] = etag
    out.url = resp.url
    out.request = resp.request
    out.encoding = "utf-8"
    out.reason = "OK (cached, 304)"
    return out


def _limit_message(resp: requests.Response, wait: float, limit: float) -> str:
    reset = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=wait)
    what = _message(resp) or f"HTTP {resp.status_code}"
    return redact(
        f"GitHub rate limit ({what}): it resets at {reset:%Y-%m-%d %H:%M:%S} UTC, in "
        f"{wait:.0f} s, beyond forge.max_rate_limit_wait ({limit:.0f} s in total per run); "
        "stopping cleanly, the next run resumes"
    )
