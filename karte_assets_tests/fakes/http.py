"""A threaded HTTP server on 127.0.0.1 that routes requests to a fake service's handlers."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    groups: tuple[str, ...] = ()
    # Every value of a repeated query parameter (``query`` keeps the last).
    query_lists: dict[str, list[str]] = field(default_factory=dict)

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, payload: object, status: int = 200) -> Response:
        return cls(status, json.dumps(payload).encode(), {"Content-Type": "application/json"})

    @classmethod
    def error(cls, status: int, message: str, reason: str = "invalid") -> Response:
        # The error shape of Google's JSON APIs, which the clients turn into typed exceptions.
        return cls.json(
            {
                "error": {
                    "code": status,
                    "message": message,
                    "errors": [{"message": message, "reason": reason}],
                }
            },
            status,
        )


Handler = Callable[[Request], Response]


class FakeHttpService:
    """Subclasses add routes (method, path regex) -> handler; every request is recorded."""

    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.requests: list[Request] = []
        self._server: ThreadingHTTPServer | None = None

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        self.routes.append((method, re.compile(pattern + "$"), handler))

    def dispatch(self, request: Request) -> Response:
        self.requests.append(request)
        for method, pattern, handler in self.routes:
            match = pattern.match(request.path)
            if method == request.method and match:
                request.groups = tuple(unquote(group) for group in match.groups())
                return handler(request)
        return Response.error(501, f"the fake does not implement {request.method} {request.path}")

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeHttpService:
        service = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes; without this, each keep-alive request of the
            # clients waits ~40 ms for a delayed ACK.
            disable_nagle_algorithm = True

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                query = parse_qs(parts.query)
                request = Request(
                    method=self.command,
                    path=parts.path,
                    query={key: values[-1] for key, values in query.items()},
                    headers={key.lower(): value for key, value in self.headers.items()},
                    body=self.rfile.read(length) if length else b"",
                    query_lists=query,
                )
                try:
                    response = service.dispatch(request)
                except Exception as error:  # a bug in the fake: tell the client, loudly
                    response = Response.error(500, f"fake failed: {type(error).__name__}: {error}")
                self.send_response(response.status)
                for key, value in response.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(response.body)))
                self.end_headers()
                self.wfile.write(response.body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

            def log_message(self, format: str, *args: object) -> None:  # quiet test output
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
