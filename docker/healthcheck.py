"""Container HEALTHCHECK for the Herald images (standard library only, no shell needed).

    healthcheck.py http <path> [port]   GET http://127.0.0.1:<port><path>, healthy on 2xx
                                        (port defaults to $PORT)
    healthcheck.py url <url> [<url>...]  GET each URL, healthy when all answer 2xx (helm test)
    healthcheck.py deps                 TCP connect to the hosts in DATABASE_URL and REDIS_URL

Exit 0 when healthy, 1 otherwise, as Docker expects.
"""

from __future__ import annotations

import os
import socket
import sys
import urllib.request
from urllib.parse import urlsplit

TIMEOUT_SECONDS = 2.5
DEFAULT_PORTS = {"postgresql": 5432, "postgres": 5432, "redis": 6379, "rediss": 6379}


def check_http(path: str, port: str) -> bool:
    return check_url(f"http://127.0.0.1:{int(port)}{path}")


def check_url(url: str) -> bool:
    if urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"not an http(s) URL: {url}")
    with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310 - scheme checked above
        return 200 <= response.status < 300


def check_tcp(url: str) -> bool:
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    host = parts.hostname or "127.0.0.1"
    port = parts.port or DEFAULT_PORTS.get(scheme, 0)
    with socket.create_connection((host, port), timeout=TIMEOUT_SECONDS):
        return True


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "http":
        port = argv[2] if len(argv) > 2 else os.environ.get("PORT", "8000")
        targets = [lambda: check_http(argv[1], port)]
    elif len(argv) >= 2 and argv[0] == "url":
        targets = [lambda url=url: check_url(url) for url in argv[1:]]
    elif argv == ["deps"]:
        redis_url = os.environ.get("REDIS_URL") or os.environ.get("CELERY_BROKER_URL")
        urls = [os.environ.get("DATABASE_URL"), redis_url]
        targets = [lambda url=url: check_tcp(url) for url in urls if url]
    else:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        healthy = all(target() for target in targets)
        if argv[0] == "url":
            print(f"healthy: {' '.join(argv[1:])}")
    except (OSError, ValueError) as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
