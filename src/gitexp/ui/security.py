"""What keeps `gitexp ui` safe on a shared machine and in a browser that visits other sites:
a Host check (against DNS rebinding), strict response headers (a Content-Security-Policy with
no inline script and nothing from the network), a token and an Origin check for the actions
that change the repository, and the rules for paths a request names.
"""

from __future__ import annotations

import hmac
import ipaddress
import posixpath
import re
import socket
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from gitexp.errors import UsageError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

# Every script, style and image comes from this server; no inline script; no frames.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
# A file from a run opened on its own (an SVG, say) runs nothing.
FILE_CSP = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; sandbox"
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
TOKEN_HEADER = "x-gitexp-token"
_MD5 = re.compile(r"^[0-9a-f]{32}$")


def is_wildcard(host: str) -> bool:
    """A bind to every address of the machine."""
    return host in ("0.0.0.0", "::", "")


def allowed_hosts(host: str, port: int) -> set[str]:
    """The Host headers a request may carry: the bound address with its port, and its other
    loopback names. A wildcard bind (0.0.0.0, ::) accepts any IP address and this machine's
    names, never another domain name, which is what a DNS-rebinding page would send."""
    names = {host.lower()}
    if host in ("127.0.0.1", "localhost", "::1"):
        names |= {"127.0.0.1", "localhost", "::1"}
    if is_wildcard(host):
        names |= {"localhost", socket.gethostname().lower(), socket.getfqdn().lower()}
    found = set()
    for name in names:
        shown = f"[{name}]" if ":" in name else name
        found.add(f"{shown}:{port}")
        if port == 80:
            found.add(shown)
    return found


def host_ok(header: str, allowed: set[str], wildcard_port: int | None) -> bool:
    header = header.strip().lower()
    if header in allowed:
        return True
    if wildcard_port is None:
        return False
    name, _, port = header.rpartition(":")
    if port != str(wildcard_port):
        return False
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


class Guard:
    """ASGI middleware: refuses requests with a foreign Host header (421) and adds the
    security headers to every response."""

    def __init__(self, app: App, allowed: set[str], wildcard_port: int | None = None) -> None:
        self.app = app
        self.allowed = allowed
        self.wildcard_port = wildcard_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        host = headers.get(b"host", b"").decode("latin-1")
        if not host_ok(host, self.allowed, self.wildcard_port):
            await _plain(send, 421, "gitexp ui: this Host is not served here\n")
            return
        path = scope.get("path", "")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                own = [(k.lower(), v) for k, v in message.get("headers", [])]
                names = {k for k, _ in own}
                extra = [(k, v) for k, v in HEADERS if k not in names]
                if path.startswith("/api/"):
                    extra.append((b"cache-control", b"no-store"))
                message["headers"] = own + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _plain(send: Send, status: int, text: str) -> None:
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def check_write(
    headers: MutableMapping[str, str], token: str, allowed: set[str], wildcard_port: int | None
) -> None:
    """An action that changes the repository must come from this app's own page: the page's
    token in a header (another site cannot read it), JSON (a form cannot send it without a
    preflight, which fails), and no foreign Origin (the Host rule applies to it)."""
    sent = headers.get(TOKEN_HEADER, "")
    if not token or not hmac.compare_digest(sent.encode(), token.encode()):
        raise PermissionError("missing or wrong token: reload the page")
    if not headers.get("content-type", "").startswith("application/json"):
        raise PermissionError("actions take JSON")
    origin = headers.get("origin")
    if origin is not None and not (
        origin.startswith("http://") and host_ok(origin[7:], allowed, wildcard_port)
    ):
        raise PermissionError(f"requests from {origin} are refused")


def tree_path(raw: str) -> str:
    """A path inside a run's tree as the request gives it, refused unless it is plain:
    relative, no '..' or '.git' part, no control characters."""
    if not raw or len(raw) > 4096 or any(ord(c) < 32 for c in raw) or "\\" in raw:
        raise UsageError(f"invalid path {raw!r}")
    path = posixpath.normpath(raw)
    parts = path.split("/")
    if (
        path.startswith("/")
        or ".." in parts
        or "." in parts
        or ".git" in (p.lower() for p in parts)
    ):
        raise UsageError(f"invalid path {raw!r}: give a path inside the run")
    return path


def cache_file(cache_dir: Path, digest: str) -> Path:
    """The file of an object in DVC's cache; refused unless the digest is an md5 and the
    file resolves inside the cache (symlinks included)."""
    if not _MD5.match(digest):
        raise UsageError("invalid object id")
    root = cache_dir.resolve()
    path = (root / "files" / "md5" / digest[:2] / digest[2:]).resolve()
    if root not in path.parents:
        raise UsageError("the object is outside DVC's cache")
    return path
