"""The plain-HTTP endpoints etcd serves next to gRPC: /metrics, /health, /livez, /readyz,
/version, on the ``--listen-metrics-urls`` listeners.

A small HTTP/1.1 server on the member's own event loop (one request per connection), so the
handlers read the member's state without locks, exactly as the gRPC services do. https
listeners use an ssl.SSLContext built from the client TLS settings, as etcd does, whose
certificate follows the files on disk (cairn.pki.ReloadingSSLContext).
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from cairn.api.health import check_health, probe_checks
from cairn.api.maintenance import ETCD_API_VERSION
from cairn.member.raft_member import RaftMember

log = logging.getLogger("cairn.http")

MAX_HEADER_BYTES = 16 * 1024
READ_TIMEOUT_S = 10.0

_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}
TEXT = "text/plain; charset=utf-8"


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = TEXT
    headers: tuple[tuple[str, str], ...] = ()


Handler = Callable[[dict[str, list[str]]], Awaitable[Response]]


class HealthCounters:
    """etcd_server_health_success / _failures, counted by /health."""

    def __init__(self) -> None:
        self.success = 0
        self.failures = 0


def routes(
    member: RaftMember,
    render_metrics: Callable[[], bytes],
    metrics_content_type: str,
    health_counts: HealthCounters,
) -> dict[str, Handler]:
    """Each endpoint's handler, by path."""

    async def metrics(_query: dict[str, list[str]]) -> Response:
        return Response(200, render_metrics(), metrics_content_type)

    async def health(query: dict[str, list[str]]) -> Response:
        serializable = query.get("serializable", ["false"])[-1].lower() == "true"
        excluded = query.get("exclude", [])
        result = await check_health(member, serializable=serializable, excluded_alarms=excluded)
        if result.healthy:
            health_counts.success += 1
        else:
            log.warning("/health error: %s", result.reason)
            if not result.reason.startswith("ALARM"):
                # etcd 3.4.23 counts neither outcome of a check refused for an alarm.
                health_counts.failures += 1
        return Response(200 if result.healthy else 503, result.body())

    async def version(_query: dict[str, list[str]]) -> Response:
        body = json.dumps(
            {"etcdserver": ETCD_API_VERSION, "etcdcluster": ETCD_API_VERSION},
            separators=(",", ":"),
        )
        return Response(200, body.encode(), "application/json")

    def probe(ready: bool) -> Handler:
        async def handle(query: dict[str, list[str]]) -> Response:
            checks = await probe_checks(member, ready=ready)
            passed = all(ok for _, ok in checks)
            verbose = "verbose" in query
            lines = [f"[+]{name} ok" if ok else f"[-]{name} failed" for name, ok in checks]
            name = "readyz" if ready else "livez"
            if passed:
                text = "\n".join([*lines, f"{name} check passed"]) if verbose else "ok"
                return Response(200, text.encode())
            return Response(503, "\n".join([*lines, f"{name} check failed"]).encode())

        return handle

    return {
        "/metrics": metrics,
        "/health": health,
        "/version": version,
        "/livez": probe(ready=False),
        "/readyz": probe(ready=True),
    }


def _encode(response: Response, head_only: bool) -> bytes:
    reason = _REASONS.get(response.status, "")
    head = [
        f"HTTP/1.1 {response.status} {reason}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
        "X-Content-Type-Options: nosniff",
        "Connection: close",
        *(f"{key}: {value}" for key, value in response.headers),
    ]
    raw = ("\r\n".join(head) + "\r\n\r\n").encode()
    return raw if head_only else raw + response.body


async def _answer(handlers: dict[str, Handler], method: str, target: str) -> Response:
    parts = urlsplit(target)
    handler = handlers.get(parts.path)
    if handler is None:
        return Response(404, b"404 page not found\n")
    if method not in ("GET", "HEAD"):
        return Response(405, b"Method Not Allowed\n", headers=(("Allow", "GET"),))
    return await handler(parse_qs(parts.query))


def connection_handler(
    handlers: dict[str, Handler],
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_S)
            if len(head) > MAX_HEADER_BYTES:
                return
            request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
            method, target, _version = request_line.split(" ", 2)
            response = await _answer(handlers, method, target)
            writer.write(_encode(response, head_only=method == "HEAD"))
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        except ValueError:
            writer.write(_encode(Response(400, b"400 Bad Request\n"), head_only=False))
        except (ConnectionError, ssl.SSLError) as error:
            log.debug("metrics connection ended: %s", error)
        except Exception:
            log.exception("metrics endpoint failed")
            writer.write(_encode(Response(500, b"internal error\n"), head_only=False))
        finally:
            writer.close()

    return serve


async def serve_http(
    urls: list[str],
    handlers: dict[str, Handler],
    tls: ssl.SSLContext | None,
) -> list[asyncio.Server]:
    """Listen on every URL (https ones with ``tls``); returns the servers to close later."""
    servers = []
    serve = connection_handler(handlers)
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme == "https" and tls is None:
            raise ValueError(f"--listen-metrics-urls: {url} needs --cert-file and --key-file")
        if parts.scheme not in ("http", "https") or parts.port is None:
            raise ValueError(f"--listen-metrics-urls: {url} must be http(s)://host:port")
        servers.append(
            await asyncio.start_server(
                serve,
                parts.hostname or "0.0.0.0",
                parts.port,
                ssl=tls if parts.scheme == "https" else None,
                reuse_address=True,
            )
        )
    return servers
