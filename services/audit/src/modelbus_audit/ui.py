"""The compliance page: one request's lineage as a timeline, plain HTML and CSS, no script.

``/ui/requests/{id}`` renders server-side from the same views the API answers with (so the
role rules are the same: text only for compliance). A browser cannot send ``X-API-Key``, so
``/ui/login`` takes the key in a form and keeps it in an HttpOnly, SameSite=Strict cookie
scoped to ``/``; the key is checked, never echoed. Everything shown is escaped.
"""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from modelbus_audit.lineage import by_tenant
from modelbus_audit.store import AuditStore
from modelbus_audit.views import lineage_dict

CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2430}
header{background:#1d2430;color:#fff;padding:14px 24px}header h1{margin:0;font-size:18px}
main{max-width:980px;margin:18px auto;padding:0 16px}
section{background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:14px 18px;margin:14px 0}
h2{font-size:15px;margin:0 0 10px}dl{display:grid;grid-template-columns:160px 1fr;margin:0}
dt{color:#5b6575}dd{margin:0 0 4px}.muted{color:#5b6575}
ol.timeline{list-style:none;margin:0;padding:0 0 0 18px;border-left:3px solid #c9d1dc}
ol.timeline li{position:relative;margin:0 0 12px;padding-left:10px}
ol.timeline li:before{content:"";position:absolute;left:-27px;top:5px;width:12px;height:12px;
border-radius:50%;background:#7b8798}
li.status-ok:before{background:#2e9d57}li.status-error:before,li.status-dead_letter:before{
background:#d0433a}li.status-partial:before{background:#e3a21a}
.kind{display:inline-block;min-width:78px;font-weight:600;text-transform:uppercase;font-size:12px}
time{font-family:ui-monospace,monospace;color:#5b6575;margin-right:8px}
.details{font-size:13px;color:#3b4656;margin-top:2px}pre{white-space:pre-wrap;margin:4px 0;
background:#f1f3f6;padding:8px;border-radius:6px}.rejected{color:#a13a32}
form input{padding:6px;width:420px}form button{padding:6px 14px}
"""


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    html = (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{escape(title)}"
            f"</title><style>{CSS}</style></head><body><header><h1>modelbus audit</h1></header>"
            f"<main>{body}</main></body></html>")
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def _login_form(next_url: str, error: str = "") -> str:
    message = f'<p class="rejected" data-testid="login-error">{escape(error)}</p>' if error else ""
    return (f'<section><h2>Sign in with an audit API key</h2>{message}'
            f'<form method="post" action="/ui/login"><input type="password" name="key" '
            f'id="key" placeholder="API key" autocomplete="off">'
            f'<input type="hidden" name="next" value="{escape(next_url)}"> '
            f'<button type="submit" id="sign-in">Sign in</button></form></section>')


def _safe_next(value: str) -> str:
    return value if value.startswith("/ui/") and not value.startswith("//") else "/ui/"


def ui_router(store: AuditStore) -> APIRouter:
    from modelbus_audit.api import COOKIE, role_of

    router = APIRouter(prefix="/ui", include_in_schema=False)

    @router.get("/login")
    async def login_form(next: str = "/ui/") -> Response:
        return _page("Sign in", _login_form(_safe_next(next)))

    @router.post("/login")
    async def login(request: Request) -> Response:
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        key, target = form.get("key", [""])[0], _safe_next(form.get("next", ["/ui/"])[0])
        if role_of(request, key) is None or not key:
            return _page("Sign in", _login_form(target, "That key is not valid."), 401)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(COOKIE, key, httponly=True, samesite="strict", path="/")
        return response

    @router.get("/logout")
    async def logout() -> Response:
        response = RedirectResponse("/ui/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    @router.get("/")
    async def home(request: Request, request_id: str = "") -> Response:
        if role_of(request, request.headers.get("x-api-key")) is None:
            return RedirectResponse("/ui/login", status_code=303)
        if request_id:
            return RedirectResponse(f"/ui/requests/{quote(request_id, safe='')}", 303)
        return _page("Find a request", '<section><h2>Open a request</h2><form method="get">'
                     '<input name="request_id" placeholder="request id"> '
                     '<button type="submit">Show lineage</button></form></section>')

    @router.get("/requests/{request_id}")
    async def request_page(request: Request, request_id: str) -> Response:
        role = role_of(request, request.headers.get("x-api-key"))
        if role is None:
            target = f"/ui/login?next={quote('/ui/requests/' + request_id, safe='')}"
            return RedirectResponse(target, status_code=303)
        tenant = request.query_params.get("tenant") or None
        if tenant is not None and (len(tenant) > 256 or "\x00" in tenant):
            tenant = None
        events = await store.lineage(request_id, tenant) if len(request_id) <= 256 else []
        if not events:
            body = (f'<section data-testid="not-found"><h2>No audit records for request '
                    f'{escape(request_id)}</h2></section>')
            return _page("Not found", body, 404)
        lineages = by_tenant(request_id, events)
        body = "".join(render_lineage(lineage_dict(x, role), role.value) for x in lineages)
        if len(lineages) > 1:
            tenants = ", ".join(escape(str(x.tenant)) for x in lineages)
            body = (f'<section data-testid="several-tenants"><p>This request id was used by '
                    f'{len(lineages)} tenants ({tenants}); each is shown apart.</p></section>'
                    + body)
        return _page(f"Request {request_id}", body)

    return router


def render_lineage(view: dict[str, Any], role: str) -> str:
    request = view.get("request") or {}
    response = (view.get("responses") or [{}])[-1]
    summary = [
        ("Request", view["request_id"]), ("Tenant", request.get("tenant")),
        ("Team", request.get("team")), ("User", request.get("user")),
        ("Task", request.get("task")), ("Data class", request.get("data_class")),
        ("Policy version", (view.get("decision") or {}).get("policy_version")),
        ("Outcome", response.get("status")), ("Total cost (USD)", f"{view['total_cost_usd']:.6f}"),
        ("Events", view["events"]), ("Your role", role),
    ]
    rows = "".join(f'<dt>{escape(k)}</dt><dd data-testid="summary-{escape(_slug(k))}">'
                   f'{escape(str(v if v is not None else "—"))}</dd>' for k, v in summary)
    steps = "".join(_step(step) for step in view["timeline"])
    return (f'<section><h2>Request <span data-testid="request-id">{escape(view["request_id"])}'
            f'</span></h2><dl>{rows}</dl></section>'
            f'<section><h2>Timeline</h2><ol class="timeline" data-testid="timeline">{steps}</ol>'
            f'</section>{_text_section(view)}'
            f'<p class="muted"><a href="/ui/logout">Sign out</a></p>')


def _step(step: dict[str, Any]) -> str:
    details = step.get("details") or {}
    parts = []
    for key, value in details.items():
        if key == "rejected":
            value = "; ".join(f"{r['model']} ({r['reason']})" for r in value)
            parts.append(f'<span class="rejected">rejected: {escape(value)}</span>')
        else:
            text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
            parts.append(f"{escape(key)}: {escape(text)}")
    kind, status = step["kind"], step.get("status", "")
    return (f'<li class="step kind-{escape(kind)} status-{escape(str(status))}" '
            f'data-kind="{escape(kind)}"><time>{escape(step.get("time") or "")}</time>'
            f'<span class="kind">{escape(kind)}</span> <span class="title">'
            f'{escape(step["title"])}</span><div class="details">{" · ".join(parts)}</div></li>')


def _text_section(view: dict[str, Any]) -> str:
    if not view.get("text_visible"):
        return ('<section data-testid="text-hidden"><h2>Prompt and response</h2><p class="muted">'
                'Text is hidden for your role (ops sees metadata only).</p></section>')
    text = view.get("text") or {}
    prompt = "".join(f'<pre data-testid="prompt">{escape(str(m.get("role")))}: '
                     f'{escape(str(m.get("content")))}</pre>'
                     for m in text.get("messages", []) if isinstance(m, dict))
    answers = "".join(f'<pre data-testid="answer">{escape(str(a))}</pre>'
                      for a in text.get("responses", []) if a is not None)
    purged = '<p class="muted">Text removed by retention.</p>' if text.get("purged") else ""
    return (f'<section data-testid="text"><h2>Prompt and response</h2>{purged}'
            f'<h3>Prompt</h3>{prompt or "<p class=muted>—</p>"}'
            f'<h3>Response</h3>{answers or "<p class=muted>—</p>"}</section>')


def _slug(label: str) -> str:
    return label.lower().replace(" ", "-").replace("(", "").replace(")", "")
