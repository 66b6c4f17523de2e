"""Security headers on every answer of the panel and the plugin server, and their policy.

Shared by both apps (they are independent siblings, so it lives here, below them). Every
response gets ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer``,
``X-Frame-Options: DENY`` and a ``Content-Security-Policy``. The policy lets the page run
only scripts served by the panel itself (the shell, React from ``/static/vendor/``, the
plugins' bundles under ``/plugins/``): an injected inline script, an ``eval``, a
``<script src="https://elsewhere">``, a plugin, or an ``<object>`` does not run, and no other site
may frame the panel. The one inline script of the shell, its import map, is allowed by
its sha256 (browsers have no external import maps); the shell's response carries that
policy (:func:`shell_policy`), everything else the plain one::

    app.add_middleware(SecurityHeadersMiddleware, private_prefixes=("/api/",))
    app.add_exception_handler(Exception, answer_internal_error)
    policy(script_hashes=["sha256-..."])                   # the shell's policy

``private_prefixes``: answers to these paths also get ``Cache-Control: no-store`` unless
the route set its own (tokens, users, the audit log: nothing a shared cache or the
browser's disk should keep).

A request that crashes (an exception no handler maps) never reaches this middleware with
an answer: Starlette's ``ServerErrorMiddleware``, outside every ``add_middleware`` one,
answers it. :func:`answer_internal_error` is the handler it calls: JSON
``{"detail": "internal error"}`` with these headers, nothing of the exception.

``/docs`` and ``/redoc`` are FastAPI's pages, which load Swagger UI / ReDoc from
cdn.jsdelivr.net; they get their own policy (:func:`install_docs`).

A route that sets its own ``Content-Security-Policy`` keeps it; the other headers are
added only when missing.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: The directives of every answer. Images may come from https (catalog icons are URLs);
#: styles only from the panel's files (React's ``style`` props are not inline CSS to CSP).
_BASE = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data: https:",
    "connect-src": "'self'",
    "font-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}
_CDN = "https://cdn.jsdelivr.net"
#: FastAPI's documentation pages: Swagger UI and ReDoc from the CDN, their inline styles.
_DOCS = _BASE | {
    "script-src": f"'self' {_CDN}",
    "style-src": f"'self' 'unsafe-inline' {_CDN} https://fonts.googleapis.com",
    "font-src": "'self' https://fonts.gstatic.com",
    "worker-src": "'self' blob:",
}

OTHER_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}

_INLINE_SCRIPT = re.compile(r"<script(?P<attrs>[^>]*)>(?P<body>.*?)</script>", re.S | re.I)


def policy(
    script_hashes: list[str] | tuple[str, ...] = (),
    *,
    docs: bool = False,
    style_hashes: list[str] | tuple[str, ...] = (),
) -> str:
    """The Content-Security-Policy value, allowing the inline scripts (styles) with these hashes."""
    directives = dict(_DOCS if docs else _BASE)
    for directive, hashes in (("script-src", script_hashes), ("style-src", style_hashes)):
        if hashes:
            quoted = " ".join(f"'{h}'" for h in hashes)
            directives[directive] = f"{directives[directive]} {quoted}"
    return "; ".join(f"{name} {value}" for name, value in directives.items())


def source_hash(text: str) -> str:
    """``sha256-…`` of an inline script's or style's text, as CSP names it."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "sha256-" + base64.b64encode(digest).decode("ascii")


def inline_script_hashes(html: str, *, types: tuple[str, ...] | None = None) -> list[str]:
    """``sha256-…`` of each inline ``<script>`` in ``html`` (of the given ``type``s, if any).

    Only for HTML the panel writes itself (the built shell, FastAPI's docs): hashing the
    scripts of a page that holds user data would allow an injected one too.
    """
    hashes = []
    for match in _INLINE_SCRIPT.finditer(html):
        attrs = match.group("attrs")
        if re.search(r"\bsrc\s*=", attrs, re.I):
            continue  # an external script: its text is never run
        kind = re.search(r"""\btype\s*=\s*["']?([^"'\s>]+)""", attrs, re.I)
        if types is not None and (kind.group(1).lower() if kind else "") not in types:
            continue
        hashes.append(source_hash(match.group("body")))
    return hashes


def shell_policy(index_html: str) -> str:
    """The shell's policy: the plain one plus the hash of its import map."""
    return policy(inline_script_hashes(index_html, types=("importmap",)))


#: A plugin's frame document (``<iframe sandbox="allow-scripts allow-forms">``): scripts and
#: styles from the panel only, no request of its own (its calls go through the shell's
#: bridge), no form post, no nested frame, framed by the panel and nothing else.
_FRAME = _BASE | {
    "default-src": "'none'",
    "connect-src": "'none'",
    "form-action": "'none'",
    "frame-src": "'none'",
    "worker-src": "'none'",
    "manifest-src": "'none'",
    "media-src": "'self' data: https:",
    "frame-ancestors": "'self'",
}


def frame_policy(frame_html: str) -> str:
    """The frame document's policy: :data:`_FRAME` plus the hash of its import map."""
    quoted = " ".join(f"'{h}'" for h in inline_script_hashes(frame_html, types=("importmap",)))
    directives = dict(_FRAME)
    directives["script-src"] = f"{directives['script-src']} {quoted}".strip()
    return "; ".join(f"{name} {value}" for name, value in directives.items())


def security_headers() -> dict[str, str]:
    """The headers every answer carries (the plain policy)."""
    return {"content-security-policy": policy()} | OTHER_HEADERS


class SecurityHeadersMiddleware:
    """Add the security headers to every HTTP answer (pure ASGI: streams pass through).

    ``private_prefixes``: paths whose answers also get ``Cache-Control: no-store`` when
    the route set no ``Cache-Control`` of its own. ``applies``: which requests get the
    headers (default all; an embedding host leaves its own routes' answers alone).
    """

    def __init__(
        self,
        app: ASGIApp,
        private_prefixes: tuple[str, ...] = (),
        applies: Callable[[Scope], bool] | None = None,
    ) -> None:
        self.app = app
        self.default_policy = policy()
        self.private_prefixes = private_prefixes
        self.applies = applies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self.applies is not None and not self.applies(scope)):
            await self.app(scope, receive, send)
            return

        private = str(scope.get("path", "")).startswith(self.private_prefixes)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("content-security-policy", self.default_policy)
                for name, value in OTHER_HEADERS.items():
                    headers.setdefault(name, value)
                if private:
                    headers.setdefault("cache-control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def answer_internal_error(_request: Request, _error: Exception) -> JSONResponse:
    """A crash's answer: a 500 in JSON with the security headers, nothing of the exception.

    Install with ``app.add_exception_handler(Exception, answer_internal_error)``: Starlette
    hands that one handler to its ``ServerErrorMiddleware``, the outermost layer, which
    still logs the traceback after answering.
    """
    headers = security_headers() | {"cache-control": "no-store"}
    return JSONResponse({"detail": "internal error"}, status_code=500, headers=headers)


def install_docs(app: FastAPI, *, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """FastAPI's ``/docs`` and ``/redoc``, each with a policy that lets it load.

    Create the app with ``docs_url=None, redoc_url=None`` and call this instead.
    """

    def openapi_url(request: Request) -> str:
        root: str = request.scope.get("root_path", "")
        return root.rstrip("/") + (app.openapi_url or "")

    async def swagger_ui(request: Request) -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=openapi_url(request),
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=None,  # bearer tokens only: no OAuth2 redirect page
            swagger_ui_parameters=app.swagger_ui_parameters,
        )
        html = bytes(page.body).decode("utf-8")
        page.headers["content-security-policy"] = policy(inline_script_hashes(html), docs=True)
        return page

    async def redoc(request: Request) -> HTMLResponse:
        page = get_redoc_html(openapi_url=openapi_url(request), title=f"{app.title} - ReDoc")
        page.headers["content-security-policy"] = policy(docs=True)
        return page

    app.add_route(docs_url, swagger_ui, include_in_schema=False)
    app.add_route(redoc_url, redoc, include_in_schema=False)
