"""The dashboard's web application: server-rendered pages over the session identity's vault.

READ-ONLY: the only state-changing requests are login and logout (a session, nothing in the project). No
page runs JavaScript; the CSS is shipped in the package and served from ``/static``. Every response carries a
Content-Security-Policy that allows no script, no inline style, no frame and no foreign origin, and
``Cache-Control: no-store``. Templates are Jinja2 with autoescape on for every file: model names,
annotations, file names in lineage and alert details are attacker-controlled text.

Without a valid session, ``GET`` pages redirect (302) to ``/login`` and anything else answers 401; an identity
below auditor (no ``registry:read`` + ``log:read``) gets 403 at login and on every page.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from bastion.errors import AccessDenied, AuthenticationFailed, BastionError
from bastion.serve.connections import client_host
from bastion.ui import data, svg
from bastion.ui.sessions import (
    COOKIE,
    SECURE_COOKIE,
    LoginThrottled,
    Session,
    Sessions,
    may_view,
    same_origin,
)

logger = logging.getLogger(__name__)

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
MAX_FORM_BYTES = 4096
PAGES: tuple[tuple[str, str], ...] = (
    ("/", "Overview"),
    ("/inventory", "Inventory"),
    ("/lineage", "Lineage"),
    ("/audits", "Audits"),
    ("/alerts", "Alerts"),
    ("/hunt", "Hunting"),
    ("/drift", "Drift"),
    ("/log", "Audit log"),
)


def _templates() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("bastion.ui", "templates"),
        autoescape=True,  # every template, whatever its name
        undefined=jinja2.StrictUndefined,
    )
    env.filters["num"] = lambda v: f"{v:.4g}" if isinstance(v, float) else ("-" if v is None else v)
    return env


def create_app(
    *,
    sessions: Sessions,
    secure: bool,
    reports: tuple[Any, ...] = (),
    extra: Mapping[str, Callable[[Any], Mapping[str, Any]]] | None = None,
    on_shutdown: Sequence[Callable[[], None]] = (),
) -> Any:
    """The FastAPI app. ``secure``: served over TLS (the cookie gets ``Secure`` and the ``__Host-`` prefix).
    ``reports``: directories holding audit ``report.json`` files (matched by their recorded SHA-256).
    ``extra``: page name -> ``fn(vault) -> context`` for the hunting page (findings and response actions)."""
    env = _templates()
    cookie = SECURE_COOKIE if secure else COOKIE
    css = resources.files("bastion.ui").joinpath("static/style.css").read_bytes()

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        try:
            yield
        finally:
            sessions.close()
            for close in on_shutdown:
                close()

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    hunting = dict(extra or {})

    @app.middleware("http")
    async def _headers(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Cache-Control"] = "no-store"
        if secure:
            response.headers["Strict-Transport-Security"] = "max-age=31536000"
        return response

    def render(name: str, status: int = 200, session: Session | None = None, **ctx: Any) -> HTMLResponse:
        page = env.get_template(name).render(
            pages=PAGES, identity=session.identity if session else None, **ctx
        )
        return HTMLResponse(page, status_code=status)

    def denied(request: Request) -> Response:
        if request.method == "GET":
            return RedirectResponse("/login", status_code=302)
        return Response("authentication required", status_code=401, media_type="text/plain")

    def session_of(request: Request) -> Session | None:
        return sessions.get(request.cookies.get(cookie))

    def page(path: str, title: str, template: str, build: Callable[[Any], Mapping[str, Any]]) -> None:
        def handler(request: Request) -> Response:
            session = session_of(request)
            if session is None:
                return denied(request)
            if not may_view(session.identity):
                return render(
                    "error.html",
                    403,
                    session,
                    title="Forbidden",
                    current=path,
                    message="this identity may not view the dashboard",
                )
            try:
                with session.lock:
                    ctx = build(session.vault)
            except AccessDenied as exc:
                return render("error.html", 403, session, title="Forbidden", current=path, message=str(exc))
            except BastionError as exc:
                return render("error.html", 500, session, title="Error", current=path, message=str(exc))
            except Exception:  # malformed data must not break a page with a traceback: say so, log it
                logger.exception("ui: building %s failed", path)
                return render(
                    "error.html",
                    500,
                    session,
                    title="Error",
                    current=path,
                    message="this page could not be built",
                )
            try:
                return render(template, 200, session, title=title, current=path, **ctx)
            except Exception:
                logger.exception("ui: rendering %s failed", path)
                return render(
                    "error.html",
                    500,
                    session,
                    title="Error",
                    current=path,
                    message="this page could not be built",
                )

        app.add_api_route(path, handler, methods=["GET"], response_class=HTMLResponse, name=template)

    @app.get("/static/style.css")
    def _css() -> Response:
        return Response(css, media_type="text/css")

    @app.get("/login", response_class=HTMLResponse)
    def _login_form(request: Request) -> Response:
        if session_of(request) is not None:
            return RedirectResponse("/", status_code=302)
        return render("login.html", title="Sign in", current="/login", error=None)

    @app.post("/login", response_class=HTMLResponse)
    async def _login(request: Request) -> Response:
        client = client_host(request.client)
        headers = request.headers
        if not same_origin(  # login CSRF: a form posted from another site signs nobody in
            origin=headers.get("origin"), fetch_site=headers.get("sec-fetch-site"), host=headers.get("host")
        ):
            return render(
                "login.html", 403, title="Sign in", current="/login", error="cross-site sign-in refused"
            )
        if sessions.throttled(client):
            return render(
                "login.html",
                429,
                title="Sign in",
                current="/login",
                error="too many failed sign-ins: wait a minute",
            )
        body = await request.body()
        ctype = request.headers.get("content-type", "").split(";")[0].strip()
        if len(body) > MAX_FORM_BYTES or ctype != "application/x-www-form-urlencoded":
            return render(
                "login.html", 400, title="Sign in", current="/login", error="malformed sign-in form"
            )
        token = (parse_qs(body.decode("utf-8", "replace")).get("token") or [""])[0].strip()
        if not token:
            return render("login.html", 401, title="Sign in", current="/login", error="enter an API token")
        try:
            sid = sessions.login(token, client=client)
        except LoginThrottled:
            return render(
                "login.html", 429, title="Sign in", current="/login", error="too many sign-ins: wait a minute"
            )
        except AuthenticationFailed:
            return render("login.html", 401, title="Sign in", current="/login", error="invalid token")
        except AccessDenied:
            return render(
                "login.html",
                403,
                title="Sign in",
                current="/login",
                error="this token's role may not view the dashboard (auditor or admin needed)",
            )
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            cookie,
            sid,
            httponly=True,
            secure=secure,
            samesite="strict",
            path="/",
            max_age=int(sessions.max_age_s),
        )
        return response

    @app.post("/logout")
    def _logout(request: Request) -> Response:
        sessions.logout(request.cookies.get(cookie))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(cookie, path="/", secure=secure, httponly=True, samesite="strict")
        return response

    def overview(vault: Any) -> Mapping[str, Any]:
        from bastion.governance.inventory import inventory

        entries = inventory(vault=vault)
        recent = data.recent_entries(vault, window=1000)
        return {
            "log": data.log_state(vault),
            "models": sum(1 for e in entries if e.kind == "model"),
            "datasets": sum(1 for e in entries if e.kind == "dataset"),
            "prod": [e for e in entries if e.env == "prod" and e.kind == "model"],
            "alerts": data.alerts(recent)[:10],
            "now": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }

    def inventory_page(vault: Any) -> Mapping[str, Any]:
        from bastion.governance.inventory import inventory

        return {"entries": inventory(vault=vault)}

    def lineage_index(vault: Any) -> Mapping[str, Any]:
        refs = [v.ref for v in vault.list()]
        graphs = []
        for ref in refs[-20:]:
            graph = data.lineage_graph(vault, ref)
            if graph is not None:
                graphs.append((ref, svg.lineage_svg(graph, title=f"Lineage of {ref}"), graph))
        return {"graphs": graphs, "refs": refs}

    def audits_page(vault: Any) -> Mapping[str, Any]:
        views = data.audit_views(vault, reports=reports)
        charts = {}
        for view in views:
            figs = []
            for family, fam in view.families.items():
                metrics = {k: v for k, v in (fam.get("metrics") or {}).items() if isinstance(v, int | float)}
                if metrics:
                    figs.append(svg.bar_svg(metrics, title=f"{view.ref} {family} metrics"))
                for title, series, xl, yl, logx in data.audit_series(family, view.curves.get(family, {})):
                    figs.append(
                        svg.line_svg(series, title=f"{view.ref}: {title}", xlabel=xl, ylabel=yl, logx=logx)
                    )
            charts[view.ref] = figs
        return {"audits": views, "charts": charts, "reports_dirs": [str(r) for r in reports]}

    def alerts_page(vault: Any) -> Mapping[str, Any]:
        return {"alerts": data.alerts(data.recent_entries(vault))[:500]}

    def drift_page(vault: Any) -> Mapping[str, Any]:
        views = data.drift_views(vault, data.recent_entries(vault))
        charts = {}
        for v in views:
            figs = [
                svg.bar_svg({k: val}, title=f"{v.model} {k}", limit=v.thresholds.get(k.replace("max_", "")))
                for k, val in v.figures.items()
            ]
            if v.history:
                figs.append(
                    svg.line_svg(
                        {"max feature PSI": list(enumerate((p for _, p in v.history), 1))},
                        title=f"{v.model}: drift alerts",
                        xlabel="alert",
                        ylabel="PSI",
                    )
                )
            charts[v.model] = figs
        return {"drift": views, "charts": charts}

    def hunt_page(vault: Any) -> Mapping[str, Any]:
        build = hunting.get("hunt")
        ctx = dict(build(vault)) if build is not None else {}
        ctx.setdefault("findings", [])
        ctx.setdefault("actions", [])
        ctx.setdefault("available", build is not None)
        return ctx

    def log_page(vault: Any) -> Mapping[str, Any]:
        state = data.log_state(vault)
        entries = data.recent_entries(vault, window=100) if state.status != "FAILED" else []
        return {"log": state, "entries": list(reversed(entries))}

    page("/", "Overview", "index.html", overview)
    page("/inventory", "Inventory", "inventory.html", inventory_page)
    page("/lineage", "Lineage", "lineage.html", lineage_index)
    page("/audits", "Audits", "audits.html", audits_page)
    page("/alerts", "Alerts", "alerts.html", alerts_page)
    page("/hunt", "Hunting", "hunt.html", hunt_page)
    page("/drift", "Drift", "drift.html", drift_page)
    page("/log", "Audit log", "log.html", log_page)

    @app.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    def _other(request: Request, rest: str) -> Response:
        session = session_of(request)
        if session is None:
            return denied(request)
        return render(
            "error.html", 404, session, title="Not found", current="", message=f"no page {quote('/' + rest)}"
        )

    return app


__all__ = ["CSP", "PAGES", "create_app"]
