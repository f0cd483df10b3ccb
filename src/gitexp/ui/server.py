"""The HTTP side of `gitexp ui`: routes of a Starlette app, served by Uvicorn on a socket
bound before anything else starts (so a taken port is one clear error).

Read-only unless started with `--write`; then removing runs and changing their tags and notes
(as `gitexp remove`, `tag` and `note` do) takes the page's token, JSON and a same-origin
request.
"""

from __future__ import annotations

import errno
import inspect
import json
import secrets
import socket
import threading
import webbrowser
from collections.abc import Callable
from importlib import resources
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from gitexp import __version__
from gitexp.core.render import json_safe
from gitexp.errors import GitexpError, StateError, UsageError
from gitexp.store.git import Repo
from gitexp.ui.comparison import compare, diff_page
from gitexp.ui.details import NotFound, artifact_file, live_log, run_file, run_page
from gitexp.ui.histories import HistoryCache
from gitexp.ui.runs import Query, RunTable, live_name
from gitexp.ui.security import FILE_CSP, Guard, allowed_hosts, check_write, is_wildcard

MAX_BODY = 4 * 1024 * 1024
EVENT_SECONDS = 1.0
TOKEN_PLACEHOLDER = '<meta name="gitexp-token" content="">'


def _json(data: Any, status: int = 200) -> Response:
    body = json.dumps(json_safe(data), allow_nan=False, separators=(",", ":"))
    return Response(body, status_code=status, media_type="application/json")


def _error(message: str, status: int) -> Response:
    return _json({"error": message}, status)


def _flag(request: Request, name: str, default: bool) -> bool:
    value = request.query_params.get(name)
    return default if value is None else value not in ("0", "false", "")


def _int(request: Request, name: str, default: int) -> int:
    try:
        return max(0, int(request.query_params.get(name, default)))
    except ValueError:
        raise UsageError(f"'{name}' must be a whole number") from None


def query_of(request: Request) -> Query:
    params = request.query_params
    return Query(
        filter=params.get("filter", "").strip(),
        sort=params.get("sort", "").strip(),
        desc=_flag(request, "desc", False),
        columns=params.get("columns", ""),
        only_changed=_flag(request, "changed", True),
        group=params.get("group", "").strip(),
        collapsed=frozenset(params.getlist("collapsed")),
        refs=_flag(request, "refs", False),
        history=_flag(request, "history", True),
    )


def _error_response(exc: Exception) -> Response:
    status = 404 if isinstance(exc, NotFound) else 403 if isinstance(exc, PermissionError) else 400
    return _error(str(exc), status)


def handled(func: Callable[..., Any]) -> Callable[[Request], Any]:
    """Errors a user can fix become JSON with a message and a 4xx status; anything else
    stays a bug (500). A plain function runs in a worker thread, as Starlette does."""

    async def endpoint(request: Request) -> Response:
        try:
            if inspect.iscoroutinefunction(func):
                return await func(request)  # type: ignore[no-any-return]
            return await anyio.to_thread.run_sync(func, request)  # type: ignore[no-any-return]
        except (GitexpError, PermissionError) as exc:
            return _error_response(exc)

    endpoint.__name__ = func.__name__
    return endpoint


class App:
    """The app's state (the run table, the histories cache, the write token) and routes."""

    def __init__(self, repo: Repo, *, write: bool, host: str, port: int) -> None:
        self.repo = repo
        self.write = write
        self.token = secrets.token_urlsafe(32) if write else ""
        self.hosts = allowed_hosts(host, port)
        # bound to every address: any IP address of this machine is a fine Host (and Origin)
        self.wildcard_port = port if is_wildcard(host) else None
        self.histories = HistoryCache()
        self.table = RunTable(repo, self.histories)
        static = resources.files("gitexp.ui") / "static"
        self.static_dir = str(static)
        page = (static / "index.html").read_text(encoding="utf-8")
        self.page = page.replace(
            TOKEN_PLACEHOLDER, f'<meta name="gitexp-token" content="{self.token}">'
        )

    def starlette(self) -> Any:
        h = handled
        routes = [
            Route("/", self.index),
            Route("/api/info", h(self.info)),
            Route("/api/runs", h(self.runs)),
            Route("/api/names", h(self.names)),
            Route("/api/compare", h(self.compare), methods=["POST"]),
            Route("/api/diff", h(self.diff)),
            Route("/api/run", h(self.run)),
            Route("/api/log", h(self.log)),
            Route("/api/file", h(self.file)),
            Route("/api/artifact", h(self.artifact)),
            Route("/api/events", self.events),
            Route("/api/remove", h(self.remove), methods=["POST"]),
            Route("/api/tag", h(self.tag), methods=["POST"]),
            Route("/api/note", h(self.note), methods=["POST"]),
            Mount("/static", StaticFiles(directory=self.static_dir)),
        ]
        app = Starlette(routes=routes)
        return Guard(app, self.hosts, self.wildcard_port)

    # --- pages and reading ---------------------------------------------------------------------

    def index(self, request: Request) -> Response:
        return Response(self.page, media_type="text/html; charset=utf-8",
                        headers={"cache-control": "no-store"})  # fmt: skip

    def info(self, request: Request) -> Response:
        return _json(
            {
                "repository": self.repo.root.name,
                "root": str(self.repo.root),
                "version": __version__,
                "write": self.write,
            }
        )

    def runs(self, request: Request) -> Response:
        query = query_of(request)
        self.table.poll()
        try:
            page = self.table.page(query, _int(request, "offset", 0), _int(request, "limit", 200))
        except UsageError as exc:
            return _error(str(exc), 400)
        return _json(page)

    def names(self, request: Request) -> Response:
        return _json({"names": self.table.names(query_of(request), _int(request, "limit", 5000))})

    async def _body(self, request: Request) -> Any:
        """The JSON a POST carries (JSON only: a form from another site cannot send it)."""
        if not request.headers.get("content-type", "").startswith("application/json"):
            raise PermissionError("send JSON")
        data = b""
        async for chunk in request.stream():
            data += chunk
            if len(data) > MAX_BODY:
                raise UsageError("the request is too large")
        try:
            return json.loads(data)
        except (ValueError, RecursionError):
            raise UsageError("the request is not valid JSON") from None

    async def compare(self, request: Request) -> Response:
        body = await self._body(request)
        names = body.get("runs") if isinstance(body, dict) else None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise UsageError('send {"runs": [names]}')

        def work() -> Response:
            self.table.poll()
            return _json(compare(self.repo, self.table, self.histories, names))

        return await anyio.to_thread.run_sync(work)  # type: ignore[no-any-return]

    def diff(self, request: Request) -> Response:
        a, b = request.query_params.get("a"), request.query_params.get("b")
        if not a or not b:
            raise UsageError("name two runs: ?a=RUN&b=RUN")
        return _json(diff_page(self.repo, a, b))

    def run(self, request: Request) -> Response:
        name = request.query_params.get("name", "")
        if not name:
            raise UsageError("name a run: ?name=RUN")
        self.table.poll()
        return _json(run_page(self.repo, self.table, self.histories, name))

    def log(self, request: Request) -> Response:
        name = request.query_params.get("name", "")
        self.table.poll()
        return _json(live_log(self.table, name, _int(request, "offset", 0)))

    def file(self, request: Request) -> Response:
        found = run_file(self.repo, request.query_params.get("name", ""),
                         request.query_params.get("path", ""))  # fmt: skip
        return self._download(found)

    def artifact(self, request: Request) -> Response:
        found = artifact_file(self.repo, request.query_params.get("name", ""),
                              request.query_params.get("path", ""))  # fmt: skip
        return self._download(found)

    def _download(self, found: Any) -> Response:
        disposition = "inline" if found.inline else "attachment"
        headers = {
            "content-disposition": f"{disposition}; filename*=UTF-8''{_quote(found.filename)}",
            "content-security-policy": FILE_CSP,
        }
        if found.path is not None:
            return FileResponse(found.path, media_type=found.media_type, headers=headers)
        return Response(found.data, media_type=found.media_type, headers=headers)

    async def events(self, request: Request) -> Response:
        """Server-sent events: `update` with the table's version whenever runs land, are
        removed, or a run in progress flushes metrics."""

        async def stream() -> Any:
            yield "retry: 2000\n\n"
            last = None
            quiet = 0
            while not await request.is_disconnected():
                await anyio.to_thread.run_sync(self.table.poll)
                live = [
                    {"name": live_name(r), "started": r.started} for r in self.table.live_runs()
                ]
                state = {"version": self.table.version, "live": live}
                if state != last:
                    yield f"event: update\ndata: {json.dumps(state)}\n\n"
                    last, quiet = state, 0
                else:
                    quiet += 1
                    if quiet % 15 == 0:
                        yield ": still here\n\n"
                await anyio.sleep(EVENT_SECONDS)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"cache-control": "no-store"})  # fmt: skip

    # --- actions (--write) ---------------------------------------------------------------------

    async def _action(self, request: Request, act: Callable[[Any], Any]) -> Response:
        """An action that changes the repository: refused unless `--write` was given and the
        request comes from this app's page (see security.check_write)."""
        if not self.write:
            raise PermissionError("this UI is read-only: start it with 'gitexp ui --write'")
        check_write(dict(request.headers), self.token, self.hosts, self.wildcard_port)
        body = await self._body(request)
        if not isinstance(body, dict):
            raise UsageError("send a JSON object")

        def work() -> Response:
            result = act(body)
            self.table.poll(force=True)
            return _json(result)

        return await anyio.to_thread.run_sync(work)  # type: ignore[no-any-return]

    async def remove(self, request: Request) -> Response:
        """As `gitexp remove NAME...`: the runs are remembered, so `pull` leaves them out."""
        from gitexp.workflows.manage import chosen
        from gitexp.workflows.manage import remove as remove_runs

        def act(body: dict[str, Any]) -> Any:
            names = body.get("runs")
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise UsageError('send {"runs": [names]}')
            if not names or any(c in n for n in names for c in "*?["):
                raise UsageError("name the runs to remove one by one")
            runs = chosen(self.repo, names, None)
            remove_runs(self.repo, runs, None, lambda _message: None)
            return {"removed": list(runs)}

        return await self._action(request, act)

    async def tag(self, request: Request) -> Response:
        """As `gitexp tag RUN KEY=VALUE... --delete KEY`."""
        from gitexp.workflows.manage import tag as tag_run

        def act(body: dict[str, Any]) -> Any:
            tags, delete = body.get("tags") or {}, body.get("delete") or []
            if (
                not isinstance(body.get("run"), str)
                or not isinstance(tags, dict)
                or not all(isinstance(v, str | int | float | bool) for v in tags.values())
                or not isinstance(delete, list)
                or not all(isinstance(k, str) for k in delete)
            ):
                raise UsageError(
                    'send {"run": NAME, "tags": {KEY: "VALUE"}, "delete": ["KEY"]}'
                    " (values are text or numbers)"
                )
            values = {str(k): str(v) for k, v in tags.items()}
            return {"tags": tag_run(self.repo, body["run"], values, delete)}

        return await self._action(request, act)

    async def note(self, request: Request) -> Response:
        """As `gitexp note RUN TEXT`; an empty text removes the note."""
        from gitexp.workflows.manage import note as note_run

        def act(body: dict[str, Any]) -> Any:
            if not isinstance(body.get("run"), str) or not isinstance(
                body.get("text"), str | type(None)
            ):
                raise UsageError('send {"run": NAME, "text": TEXT}')
            text = str(body.get("text") or "") or None
            note_run(self.repo, body["run"], text)
            return {"note": text}

        return await self._action(request, act)


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, or one line saying why there is none."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UsageError(f"cannot listen on '{host}': {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise StateError(
                f"port {port} on {host} is in use: pass --port N (or --port 0 for any free port)"
            ) from None
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


def serve(
    repo: Repo, host: str, port: int, *, write: bool, open_browser: bool,
    echo: Callable[[str], None],
) -> None:  # fmt: skip
    """Serves until Ctrl-C. Prints the address as soon as the socket listens; the runs are
    read in the background meanwhile."""
    import uvicorn

    sock = bind(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    app = App(repo, write=write, host=host, port=bound_port)
    wildcard = is_wildcard(host)
    shown = "127.0.0.1" if wildcard else (f"[{host}]" if ":" in host else host)
    url = f"http://{shown}:{bound_port}/"
    config = uvicorn.Config(
        app.starlette(),
        log_level="warning",
        lifespan="off",
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    mode = "read-write" if write else "read-only"
    echo(f"gitexp ui: {repo.root} at {url} ({mode}; Ctrl-C stops)")
    if wildcard:
        reach = "read and change" if write else "read"
        echo(
            f"gitexp ui: listening on every address of this machine ({bound_host}): anyone who"
            f" reaches it on the network can {reach} its runs"
        )
    # The socket already listens; the runs are read meanwhile, ready for the first page.
    threading.Thread(target=app.table.poll, name="gitexp-ui-load", daemon=True).start()
    if open_browser:
        threading.Timer(0.3, webbrowser.open, args=(url,)).start()
    server.run(sockets=[sock])
