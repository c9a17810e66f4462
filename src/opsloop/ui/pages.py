"""The dashboard's pages. Each one asks ``/api/v1`` for its data as the visitor
(:class:`~opsloop.ui.client.ApiClient`) and renders a Jinja2 template; actions post a form
that becomes one API call. Buttons show only where the visitor's roles allow the action, and
the API decides the call anyway."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from opsloop.ui.client import ApiClient, ApiError, LoginRequired
from opsloop.ui.views import (
    bars_figure,
    can,
    cost_figure,
    dag_figure,
    line_figure,
    sparkline,
    unified_diff,
)

__all__ = ["COOKIE", "install", "router"]

#: The cookie that holds the visitor's API token (tokens mode).
COOKIE = "opsloop_token"
#: Points a metric chart draws at most (the API downsamples to it).
MAX_POINTS = 2000

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
router = APIRouter(include_in_schema=False)


def _when(value: Any) -> str:
    if not value:
        return ""
    text = str(value).replace("T", " ")
    return text[:19]


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


templates.env.filters["when"] = _when
templates.env.filters["num"] = _num


def _api(request: Request) -> ApiClient:
    token = request.cookies.get(COOKIE) if request.app.state.ui_login else None
    host = request.client.host if request.client else "127.0.0.1"
    return ApiClient(request.app, token, client_host=host)


async def _render(request: Request, api: ApiClient, template: str, **context: Any) -> HTMLResponse:
    me = await api.get("/whoami")
    return templates.TemplateResponse(
        request,
        template,
        {"me": me, "login": request.app.state.ui_login, "path": request.url.path, **context},
    )


def _same_origin(request: Request) -> None:
    """Refuse a form posted from another site: the cookie is SameSite=Strict, and in local
    mode (no cookie) the browser's Origin and Sec-Fetch-Site headers tell."""
    site = request.headers.get("sec-fetch-site")
    origin = request.headers.get("origin")
    host = request.headers.get("host", "")
    if site not in (None, "same-origin", "none"):
        raise ApiError(403, "a form from another site may not act here")
    if origin not in (None, "null") and urlsplit(origin).netloc != host:
        raise ApiError(403, "a form from another site may not act here")


async def _form(request: Request) -> dict[str, str]:
    _same_origin(request)
    body = (await request.body()).decode("utf-8", "replace")
    return {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}


def install(app: FastAPI) -> None:
    """Add the pages and their error handling to ``app``."""
    app.include_router(router)

    async def login_required(request: Request, exc: Exception) -> Response:
        target = quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
        if request.url.path.startswith("/fragments/"):
            return Response(status_code=401)
        return RedirectResponse(f"/login?next={target}", status_code=303)

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return templates.TemplateResponse(
            request,
            "error.html",
            {
                "me": {},
                "login": request.app.state.ui_login,
                "path": request.url.path,
                "status": exc.status,
                "detail": exc.detail,
            },
            status_code=exc.status,
        )

    app.add_exception_handler(LoginRequired, login_required)
    app.add_exception_handler(ApiError, api_error)


# -- login ---------------------------------------------------------------------------------


def _safe_next(target: str) -> str:
    """Only a path of this site (no scheme, no host, no '//'): no open redirect."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, next: str = "/", error: str = "") -> Response:
    if not request.app.state.ui_login:
        return RedirectResponse("/", status_code=303)
    return templates.TemplateResponse(
        request,
        "login.html",
        {"me": {}, "login": True, "path": "/login", "next": _safe_next(next), "error": error},
    )


@router.post("/login")
async def login(request: Request) -> Response:
    form = await _form(request)
    token = form.get("token", "").strip()
    target = _safe_next(form.get("next", "/"))
    if not request.app.state.ui_login:
        return RedirectResponse("/", status_code=303)
    try:
        async with ApiClient(request.app, token or None) as api:
            await api.get("/whoami")
    except LoginRequired:
        return templates.TemplateResponse(
            request,
            "login.html",
            {
                "me": {},
                "login": True,
                "path": "/login",
                "next": target,
                "error": "That token was not accepted.",
            },
            status_code=401,
        )
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    _same_origin(request)
    response = RedirectResponse("/login" if request.app.state.ui_login else "/", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


# -- overview ------------------------------------------------------------------------------


async def _series(
    api: ApiClient, name: str, deployment: str, last: int = 2000
) -> dict[str, tuple[list[Any], list[float]]]:
    """Points of every series ``name`` of one deployment, by the rest of their labels."""
    points = await api.get("/series/points", name=name, last=last)
    out: dict[str, tuple[list[Any], list[float]]] = {}
    for p in points:
        labels = p["labels"]
        if labels.get("deployment") != deployment:
            continue
        key = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "deployment")
        xs, ys = out.setdefault(key or name, ([], []))
        xs.append(p["time"])
        ys.append(p["value"])
    return out


async def _quality_name(api: ApiClient, deployment: str) -> str | None:
    found = await api.items("/series", prefix="quality.", cap=200)
    names = sorted(
        {s["name"] for s in found if s["labels"].get("deployment") == deployment}
        - {"quality.labelled"}
    )
    return names[0] if names else None


async def _cards(api: ApiClient) -> list[dict[str, Any]]:
    deployments = await api.items("/deployments", cap=200)
    incidents = await api.items("/incidents", status="open", cap=200)
    cards = []
    for dep in deployments:
        name = dep["name"]
        drift = await _series(api, "drift.share", name, last=500)
        latest_drift = None
        for key, (xs, ys) in drift.items():
            if xs and (latest_drift is None or xs[-1] > latest_drift["time"]):
                latest_drift = {"time": xs[-1], "share": ys[-1], "series": key}
        quality_name = await _quality_name(api, name)
        spark = None
        if quality_name:
            series = await _series(api, quality_name, name, last=500)
            xs = [x for s in series.values() for x in s[0]]
            ys = [y for s in series.values() for y in s[1]]
            pairs = sorted(zip(xs, ys, strict=True))
            if pairs:
                spark = sparkline([p[0] for p in pairs], [p[1] for p in pairs])
        events = await api.get(
            "/events", object_type="deployment", object_id=name, newest_first=True, limit=4
        )
        cards.append(
            {
                "dep": dep,
                "drift": latest_drift,
                "quality_name": quality_name,
                "spark": spark,
                "incidents": [i for i in incidents if name in i["details"].get("deployments", [])],
                "events": events["items"],
            }
        )
    return cards


@router.get("/", response_class=HTMLResponse)
async def overview(request: Request) -> Response:
    async with _api(request) as api:
        cards = await _cards(api)
        events = await api.get("/events", newest_first=True, limit=8)
        return await _render(request, api, "overview.html", cards=cards, events=events["items"])


@router.get("/fragments/overview", response_class=HTMLResponse)
async def overview_cards(request: Request) -> Response:
    async with _api(request) as api:
        return await _render(request, api, "_cards.html", cards=await _cards(api))


# -- runs ----------------------------------------------------------------------------------


@router.get("/runs", response_class=HTMLResponse)
async def runs(
    request: Request,
    q: str = "",
    status: str = "",
    kind: str = "",
    order_by: str = "-started_at",
    cursor: str = "",
) -> Response:
    filters = [f for f in request.query_params.getlist("filter") if f.strip()]
    if q.strip():
        filters.append(f"name~{q.strip()}")
    async with _api(request) as api:
        found = await api.get(
            "/runs",
            status=status or None,
            kind=kind or None,
            order_by=order_by,
            cursor=cursor or None,
            limit=50,
            filter=filters,
        )
        keys = sorted({k for r in found["items"] for k in r["metrics"]})[:5]
        base = {"q": q, "status": status, "kind": kind, "order_by": order_by}
        return await _render(
            request,
            api,
            "runs.html",
            runs=found["items"],
            next_cursor=found["next_cursor"],
            metric_keys=keys,
            base=base,
            filters=[f for f in request.query_params.getlist("filter") if f.strip()],
        )


async def _metric_chart(api: ApiClient, run_id: str, key: str) -> dict[str, Any]:
    page = await api.get(f"/runs/{run_id}/metrics/{quote(key, safe='')}", max_points=MAX_POINTS)
    points = page["items"]
    return line_figure(
        {key: ([p["step"] for p in points], [p["value"] for p in points])},
        title=key,
        x_title="step",
    )


@router.get("/runs/compare", response_class=HTMLResponse)
async def compare(request: Request) -> Response:
    ids = [i for i in request.query_params.getlist("id") if i]
    async with _api(request) as api:
        if len(ids) < 2:
            raise ApiError(422, "choose two or more runs to compare (tick them in the runs table)")
        found = [await api.get(f"/runs/{quote(i, safe='')}") for i in ids[:10]]
        param_keys = sorted({k for r in found for k in r["params"]})
        metric_keys = sorted({k for r in found for k in r["metrics"]})
        charts = []
        for key in metric_keys:
            traces: dict[str, tuple[list[Any], list[float]]] = {}
            for r in found:
                if key in r["metrics"]:
                    page = await api.get(
                        f"/runs/{r['id']}/metrics/{quote(key, safe='')}", max_points=MAX_POINTS
                    )
                    label = f"{r['name']} ({r['id'][:8]})"
                    traces[label] = (
                        [p["step"] for p in page["items"]],
                        [p["value"] for p in page["items"]],
                    )
            if any(len(xs) > 1 for xs, _ in traces.values()):
                charts.append(line_figure(traces, title=key, x_title="step"))
        return await _render(
            request,
            api,
            "compare.html",
            runs=found,
            param_keys=param_keys,
            differs={k for k in param_keys if len({r["params"].get(k) for r in found}) > 1},
            metric_keys=metric_keys,
            charts=charts,
        )


@router.get("/runs/{run_id}", response_class=HTMLResponse)
async def run_page(request: Request, run_id: str) -> Response:
    async with _api(request) as api:
        run = await api.get(f"/runs/{quote(run_id, safe='')}")
        rid = run["id"]
        charts = []
        for key in sorted(run["metrics"]):
            chart = await _metric_chart(api, rid, key)
            if len(chart["data"][0]["x"]) > 1:  # a single value is in the table already
                charts.append(chart)
        artifacts = await api.get(f"/runs/{rid}/artifacts")
        steps = await api.get(f"/runs/{rid}/steps")
        for s in steps:
            s["duration_s"] = _duration(s.get("started_at"), s.get("ended_at"))
        children = await api.get("/runs", parent_id=rid, limit=100)
        return await _render(
            request,
            api,
            "run.html",
            run=run,
            charts=charts,
            artifacts=artifacts,
            steps=steps,
            dag=dag_figure(steps) if steps else None,
            children=children["items"],
            report=any(a["path"] == "evaluation" for a in artifacts),
        )


def _duration(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


@router.get("/runs/{run_id}/report")
async def run_report(request: Request, run_id: str) -> Response:
    async with _api(request) as api:
        data = await api.get(
            f"/runs/{quote(run_id, safe='')}/artifacts/evaluation", file="report.html"
        )
    # The report is a file a run wrote: shown as a page of its own, sandboxed (no scripts,
    # nothing fetched but inline images and styles).
    return Response(
        data,
        media_type="text/html; charset=utf-8",
        headers={
            "Content-Security-Policy": "sandbox; default-src 'none'; img-src data:; "
            "style-src 'unsafe-inline'",
        },
    )


@router.get("/runs/{run_id}/artifacts/{path:path}")
async def run_artifact(request: Request, run_id: str, path: str, file: str = "") -> Response:
    async with _api(request) as api:
        data = await api.get(
            f"/runs/{quote(run_id, safe='')}/artifacts/{quote(path)}", file=file or None
        )
    name = quote((file or path).rsplit("/", 1)[-1], safe="")
    return Response(
        data,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{name}"},
    )


# -- models --------------------------------------------------------------------------------


@router.get("/models", response_class=HTMLResponse)
async def models(request: Request) -> Response:
    async with _api(request) as api:
        found = await api.items("/models", cap=500)
        return await _render(request, api, "models.html", models=found)


@router.get("/models/{name}", response_class=HTMLResponse)
async def model_page(request: Request, name: str) -> Response:
    async with _api(request) as api:
        model = await api.get(f"/models/{quote(name, safe='')}")
        versions = await api.items(f"/models/{quote(name, safe='')}/versions", cap=200)
        metrics: dict[int, dict[str, Any]] = {}
        for v in versions[:30]:
            if v["run_id"]:
                try:
                    metrics[v["version"]] = (await api.get(f"/runs/{v['run_id']}"))["metrics"]
                except ApiError:
                    metrics[v["version"]] = {}
        keys = sorted({k for m in metrics.values() for k in m if k.startswith("test_")})[:6]
        return await _render(
            request,
            api,
            "model.html",
            model=model,
            versions=versions,
            metrics=metrics,
            metric_keys=keys,
        )


@router.get("/models/{name}/versions/{version}", response_class=HTMLResponse)
async def version_page(request: Request, name: str, version: int, moved: str = "") -> Response:
    async with _api(request) as api:
        base = f"/models/{quote(name, safe='')}"
        model = await api.get(base)
        info = await api.get(f"{base}/versions/{version}")
        security = await api.get(f"{base}/versions/{version}/security")
        run = None
        report = False
        if info["run_id"]:
            run = await api.get(f"/runs/{info['run_id']}")
            artifacts = await api.get(f"/runs/{info['run_id']}/artifacts")
            report = any(a["path"] == "evaluation" for a in artifacts)
        me = await api.get("/whoami")
        return await _render(
            request,
            api,
            "version.html",
            model=model,
            info=info,
            security=security,
            run=run,
            report=report,
            gates=info["details"].get("gates"),
            can_move=can(me, "developer", resource_type="model", resource=name),
            moved=moved,
        )


@router.post("/models/{name}/aliases")
async def move_alias(request: Request, name: str) -> Response:
    form = await _form(request)
    alias = form.get("alias", "").strip()
    version = int(form.get("version", "0") or 0)
    async with _api(request) as api:
        result = await api.send(
            "PUT",
            f"/models/{quote(name, safe='')}/aliases/{quote(alias, safe='')}",
            {"version": version, "allow_rollback": form.get("allow_rollback") == "on"},
        )
    note = quote(f"{alias}: v{result['previous']} → v{result['version']}")
    return RedirectResponse(
        f"/models/{quote(name, safe='')}/versions/{version}?moved={note}", status_code=303
    )


# -- deployments ---------------------------------------------------------------------------


def _traffic_figure(dep: dict[str, Any]) -> dict[str, Any] | None:
    shares = dep["traffic"] or (
        [{"version": dep["version"], "weight": 100}] if dep["version"] else []
    )
    if not shares:
        return None
    return {
        "data": [
            {
                "type": "bar",
                "orientation": "h",
                "name": f"v{s['version']}",
                "x": [s["weight"]],
                "y": ["traffic"],
                "text": [f"v{s['version']} {s['weight']:g}%"],
                "textposition": "inside",
            }
            for s in shares
        ],
        "layout": {
            "barmode": "stack",
            "height": 110,
            "margin": {"l": 60, "r": 10, "t": 10, "b": 30},
            "xaxis": {"range": [0, 100], "ticksuffix": "%"},
            "showlegend": False,
            "paper_bgcolor": "rgba(0,0,0,0)",
            "plot_bgcolor": "rgba(0,0,0,0)",
        },
    }


@router.get("/deployments", response_class=HTMLResponse)
async def deployments(request: Request) -> Response:
    async with _api(request) as api:
        found = await api.items("/deployments", cap=500)
        return await _render(request, api, "deployments.html", deployments=found)


@router.get("/deployments/{name}", response_class=HTMLResponse)
async def deployment_page(request: Request, name: str, commit: str = "") -> Response:
    async with _api(request) as api:
        base = f"/deployments/{quote(name, safe='')}"
        dep = await api.get(base)
        commits = await api.get(f"{base}/commits", limit=20)
        syncs = await api.get(f"{base}/syncs", limit=10)
        me = await api.get("/whoami")
        versions = []
        if dep["model"]:
            try:
                versions = await api.items(
                    f"/models/{quote(dep['model'], safe='')}/versions", cap=50
                )
            except ApiError:
                versions = []
        desired_spec = (dep["desired"] or {}).get("spec")
        diff = unified_diff(
            dep["live"], desired_spec, before_name="live", after_name="desired (Git)"
        )
        return await _render(
            request,
            api,
            "deployment.html",
            dep=dep,
            commits=commits,
            syncs=syncs,
            diff=diff,
            traffic=_traffic_figure(dep),
            versions=versions,
            can_deploy=can(me, "deployer", resource_type="deployment", resource=name),
            commit=commit,
        )


def _planned(dep: dict[str, Any], action: str, form: dict[str, str]) -> tuple[Any, str]:
    """The document's spec after the change (as far as the page can tell before Git does),
    and the change in words."""
    spec = dict((dep["desired"] or {}).get("spec") or {})
    if action == "promote":
        version = int(form.get("version") or 0)
        spec["version"] = version
        spec.pop("alias", None)
        spec.pop("traffic", None)
        return spec, f"promote {dep['model']} v{version} to {dep['name']}"
    if action == "traffic":
        shares = _shares(form)
        spec["traffic"] = [{"version": v, "weight": w} for v, w in shares]
        return spec, "set traffic " + ", ".join(f"v{v} {w:g}%" for v, w in shares)
    return None, f"roll {dep['name']} back: revert the last change of its document"


def _shares(form: dict[str, str]) -> list[tuple[int, float]]:
    shares = []
    for key, value in form.items():
        if key.startswith("weight_") and value.strip():
            try:
                weight = float(value)
            except ValueError:
                raise ApiError(422, f"{key}: {value!r} is not a number") from None
            if not math.isfinite(weight):
                raise ApiError(422, f"{key}: {value!r} is not a number")
            shares.append((int(key.removeprefix("weight_")), weight))
    if not shares:
        raise ApiError(422, "give a weight to at least one version")
    return sorted(shares)


@router.post("/deployments/{name}/confirm", response_class=HTMLResponse)
async def confirm(request: Request, name: str) -> Response:
    form = await _form(request)
    action = form.get("action", "")
    if action not in ("promote", "traffic", "rollback"):
        raise ApiError(422, f"unknown action {action!r}")
    async with _api(request) as api:
        dep = await api.get(f"/deployments/{quote(name, safe='')}")
        current = (dep["desired"] or {}).get("spec")
        planned, words = _planned(dep, action, form)
        if action == "rollback":
            commits = await api.get(f"/deployments/{quote(name, safe='')}/commits", limit=2)
            words += f" ({commits[0]['subject']})" if commits else ""
        diff = (
            unified_diff(current, planned, before_name="HEAD", after_name="after")
            if planned is not None
            else []
        )
        return await _render(
            request,
            api,
            "confirm.html",
            dep=dep,
            action=action,
            words=words,
            diff=diff,
            fields={k: v for k, v in form.items() if k != "action"},
        )


@router.post("/deployments/{name}/{action}")
async def deployment_action(request: Request, name: str, action: str) -> Response:
    form = await _form(request)
    base = f"/deployments/{quote(name, safe='')}"
    async with _api(request) as api:
        if action == "promote":
            dep = await api.get(base)
            body: dict[str, Any] = {"model": dep["model"], "version": int(form["version"])}
        elif action == "traffic":
            body = {"traffic": [{"version": v, "weight": w} for v, w in _shares(form)]}
        elif action == "rollback":
            body = {}
        else:
            raise ApiError(404, f"unknown action {action!r}")
        change = await api.send("POST", f"{base}/{action}", body)
    return RedirectResponse(f"{base}?commit={change['commit'] or ''}", status_code=303)


# -- incidents -----------------------------------------------------------------------------


@router.get("/incidents", response_class=HTMLResponse)
async def incidents(request: Request, status: str = "") -> Response:
    async with _api(request) as api:
        found = await api.items("/incidents", status=status or None, cap=500)
        return await _render(request, api, "incidents.html", incidents=found, status=status)


@router.get("/incidents/{incident_id}", response_class=HTMLResponse)
async def incident_page(request: Request, incident_id: int, done: str = "") -> Response:
    async with _api(request) as api:
        detail = await api.get(f"/incidents/{incident_id}")
        inc = detail["incident"]
        charts = []
        for dep in inc["details"].get("deployments", [])[:3]:
            names = ["drift.share"]
            quality = await _quality_name(api, dep)
            if quality:
                names.append(quality)
            for series in names:
                traces = await _series(api, series, dep)
                if traces:
                    charts.append(line_figure(traces, title=f"{dep}: {series}", x_title="time"))
        causes = inc["root_causes"][:10]
        ranking = None
        if causes:
            labels = [
                str(c.get("node") or c.get("subject") or c.get("name") or i)
                for i, c in enumerate(causes)
            ]
            ranking = {
                "data": [
                    {
                        "type": "bar",
                        "orientation": "h",
                        "y": labels[::-1],
                        "x": [float(c.get("explains") or 0) for c in causes][::-1],
                        "hovertext": [str(c.get("reason") or "") for c in causes][::-1],
                    }
                ],
                "layout": {
                    "height": 90 + 30 * len(causes),
                    "margin": {"l": 220, "r": 20, "t": 10, "b": 45},
                    "xaxis": {"title": {"text": "alerts explained"}, "rangemode": "tozero"},
                    "paper_bgcolor": "rgba(0,0,0,0)",
                    "plot_bgcolor": "rgba(0,0,0,0)",
                },
            }
        waiting = [a for a in detail["actions"] if a["status"] == "awaiting_approval"]
        me = await api.get("/whoami")
        return await _render(
            request,
            api,
            "incident.html",
            detail=detail,
            inc=inc,
            charts=charts,
            ranking=ranking,
            causes=causes,
            waiting=waiting,
            can_approve=can(me, "deployer"),
            done=done,
        )


@router.post("/incidents/{incident_id}/{decision}")
async def decide(request: Request, incident_id: int, decision: str) -> Response:
    form = await _form(request)
    if decision not in ("approve", "reject"):
        raise ApiError(404, f"unknown decision {decision!r}")
    body = {"reason": form.get("reason", "")} if decision == "reject" else None
    async with _api(request) as api:
        actions = await api.send("POST", f"/incidents/{incident_id}/{decision}", body)
    note = quote(", ".join(f"{a['action']}: {a['status']}" for a in actions))
    return RedirectResponse(f"/incidents/{incident_id}?done={note}", status_code=303)


# -- monitoring ----------------------------------------------------------------------------

_HEALTH = (
    "service.request_rate",
    "service.latency_p50",
    "service.latency_p99",
    "service.error_rate",
    "service.batch_size",
)


@router.get("/monitoring", response_class=HTMLResponse)
async def monitoring(
    request: Request, deployment: str = "", feature: str = "", until: str = ""
) -> Response:
    async with _api(request) as api:
        monitors = await api.get("/monitors")
        names = [m["deployment"] for m in monitors]
        chosen = deployment or (names[0] if names else "")
        sections: list[tuple[str, list[dict[str, Any]]]] = []
        window: dict[str, Any] | None = None
        if chosen:
            window = await _window_view(api, chosen, feature, until)
            monitor = next((m for m in monitors if m["deployment"] == chosen), None)
            drift_cfg = (monitor or {}).get("monitoring", {}).get("drift") or {}
            psi = float(drift_cfg.get("psi_threshold", 0.2)) if isinstance(drift_cfg, dict) else 0.2
            drift = []
            for series, limits in (("drift.psi", {"PSI threshold": psi}), ("drift.ks", None)):
                traces = await _series(api, series, chosen)
                if traces:
                    drift.append(
                        line_figure(
                            {_feature(k): v for k, v in traces.items()},
                            title=series,
                            x_title="window",
                            thresholds=limits,
                        )
                    )
            traces = await _series(api, "drift.share", chosen)
            if traces:
                drift.append(line_figure(traces, title="share of drifting features"))
            sections.append(("Drift per feature", drift))
            quality = []
            found = await api.items("/series", prefix="quality.", cap=200)
            for series in sorted(
                {s["name"] for s in found if s["labels"].get("deployment") == chosen}
            ):
                traces = await _series(api, series, chosen)
                if traces:
                    quality.append(line_figure(traces, title=series, x_title="window"))
            sections.append(("Quality (once labels arrive)", quality))
            health = []
            for series in _HEALTH:
                traces = await _series(api, series, chosen)
                if traces:
                    health.append(line_figure(traces, title=series, x_title="window"))
            sections.append(("Service health", health))
        return await _render(
            request,
            api,
            "monitoring.html",
            monitors=monitors,
            chosen=chosen,
            sections=sections,
            window=window,
        )


async def _window_view(api: ApiClient, deployment: str, feature: str, until: str) -> dict[str, Any]:
    """Reference against current shares of one feature in the window ending at ``until``
    (default: the deployment's latest window with requests), the windows to choose from
    (newest first), and the API's problem when there is nothing to compare."""
    view: dict[str, Any] = {"problem": None, "drift": None, "feature": None, "figure": None}
    try:
        drift = await api.get(f"/monitors/{quote(deployment, safe='')}/drift", until=until or None)
    except ApiError as exc:
        if exc.status not in (404, 422):
            raise
        view["problem"] = exc.detail
        drift = None
    length: float | None = drift["window_s"] if drift is not None else None
    view["until"] = _instant(drift["until"]) if drift is not None else _instant(until)
    view["ends"] = await _window_ends(api, deployment, length, view["until"])
    if drift is None:
        return view
    features = {f["name"]: f for f in drift["features"]}
    name = feature if feature in features else drift["most_drifted"] or next(iter(features), "")
    view["drift"] = drift
    chosen = features.get(name)
    view["feature"] = chosen
    if chosen is not None and chosen["distribution"] is not None:
        dist = chosen["distribution"]
        view["figure"] = bars_figure(
            dist["labels"],
            {"reference": dist["reference"], "current": dist["current"]},
            title=f"{name}: reference vs current",
            x_title="bin (lower edge)" if dist["kind"] == "histogram" else "category",
            y_title="share of values",
        )
    return view


def _instant(text: str | None) -> str:
    """An ISO time as ``YYYY-MM-DDTHH:MM:SSZ`` in UTC (naive: UTC); "" when absent or not one."""
    if not text:
        return ""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return ""
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.isoformat().replace("+00:00", "Z")


_CURSOR = "monitor.window"
"""The monitor's cursor series (``opsloop.monitor.service.CURSOR_SERIES``), named here so the
dashboard does not load the monitoring stack to read it."""


async def _window_ends(
    api: ApiClient, deployment: str, length: float | None, current: str
) -> list[str]:
    """Ends of the windows that have a ``drift.share`` point (stamped with the window's
    start), newest first, with ``current`` among them.

    Each window is measured with its own length: the monitor's cursor (``monitor.window``) is
    stamped with the end of every window it covered and holds that window's length, so a
    deployment whose window length changed lists its older windows where they really ended.
    ``length`` (default: the cursor's latest) is used only for windows the cursor no longer
    holds.
    """
    ends: set[str] = {current} if current else set()
    starts = {
        _instant(start)
        for xs, _ys in (await _series(api, "drift.share", deployment)).values()
        for start in xs
    }
    starts.discard("")
    for xs, ys in (await _series(api, _CURSOR, deployment)).values():
        if length is None and xs:
            length = max(zip(xs, ys, strict=True))[1]  # the newest window's
        for end, seconds in zip(xs, ys, strict=True):
            if not (end_at := _instant(end)) or not seconds:
                continue
            if (start := _shifted(end_at, -seconds)) in starts:
                ends.add(end_at)
                starts.discard(start)
    if length:
        ends.update(_shifted(start, length) for start in starts)
    return sorted(ends, reverse=True)


def _shifted(instant: str, seconds: float) -> str:
    """An instant of :func:`_instant`'s form, ``seconds`` later."""
    return _instant((datetime.fromisoformat(instant) + timedelta(seconds=seconds)).isoformat())


def _feature(key: str) -> str:
    for part in key.split(", "):
        if part.startswith("feature="):
            return part.removeprefix("feature=")
    return key


# -- data ----------------------------------------------------------------------------------


@router.get("/data", response_class=HTMLResponse)
async def data(request: Request) -> Response:
    async with _api(request) as api:
        found = await api.items("/datasets", cap=500)
        return await _render(request, api, "data.html", datasets=found)


@router.get("/data/{digest}", response_class=HTMLResponse)
async def dataset_page(request: Request, digest: str) -> Response:
    async with _api(request) as api:
        lineage = await api.get(f"/datasets/{quote(digest, safe=':')}/lineage")
        deployments = await api.items("/deployments", cap=200)
        served = {(v["model_name"], v["version"]) for v in lineage["model_versions"]}
        serving = [
            d
            for d in deployments
            if (d["model"], d["version"]) in served
            or any((d["model"], t["version"]) in served for t in d["traffic"])
        ]
        return await _render(
            request,
            api,
            "dataset.html",
            ds=lineage["dataset"],
            lineage=lineage,
            graph=_lineage_figure(lineage, serving),
            serving=serving,
        )


def _lineage_figure(lineage: dict[str, Any], serving: list[dict[str, Any]]) -> dict[str, Any]:
    """Data set → features → model versions → deployments, as four columns."""
    ds = lineage["dataset"]
    columns: list[list[str]] = [
        [f"{ds['name'] or 'data set'} {ds['digest'][7:19]}"],
        sorted((ds.get("schema_") or {}).keys())[:20] or ["(no schema)"],
        [f"{v['model_name']} v{v['version']}" for v in lineage["model_versions"]],
        [f"deploy {d['name']}" for d in serving],
    ]
    pos: dict[str, tuple[int, float]] = {}
    for x, column in enumerate(columns):
        for y, label in enumerate(column):
            pos[label] = (x, -(y - (len(column) - 1) / 2))
    edges = [(columns[0][0], f) for f in columns[1]]
    edges += [(f, m) for f in columns[1] for m in columns[2]]
    for d in serving:
        for v in lineage["model_versions"]:
            versions = {d["version"], *(t["version"] for t in d["traffic"])}
            if d["model"] == v["model_name"] and v["version"] in versions:
                edges.append((f"{v['model_name']} v{v['version']}", f"deploy {d['name']}"))
    ex: list[float | None] = []
    ey: list[float | None] = []
    for a, b in edges:
        ex += [pos[a][0], pos[b][0], None]
        ey += [pos[a][1], pos[b][1], None]
    labels = list(pos)
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines",
                "x": ex,
                "y": ey,
                "hoverinfo": "skip",
                "line": {"color": "#bdc3c7", "width": 1},
                "showlegend": False,
            },
            {
                "type": "scatter",
                "mode": "markers+text",
                "x": [pos[n][0] for n in labels],
                "y": [pos[n][1] for n in labels],
                "text": labels,
                "textposition": "top center",
                "hoverinfo": "text",
                "showlegend": False,
                "marker": {
                    "size": 16,
                    "color": [pos[n][0] for n in labels],
                    "colorscale": "Viridis",
                },
            },
        ],
        "layout": {
            "height": 120 + 28 * max(len(c) for c in columns),
            "margin": {"l": 20, "r": 20, "t": 20, "b": 20},
            "xaxis": {"visible": False, "range": [-0.5, 3.5]},
            "yaxis": {"visible": False},
            "paper_bgcolor": "rgba(0,0,0,0)",
            "plot_bgcolor": "rgba(0,0,0,0)",
        },
    }


# -- costs ---------------------------------------------------------------------------------

#: The dimensions the Costs page groups by (as ``GET /api/v1/costs`` takes them).
COST_DIMENSIONS = ("team", "cost_centre", "model", "version", "deployment", "run", "kind")


@router.get("/costs", response_class=HTMLResponse)
async def costs(request: Request, by: str = "team", days: int = 30) -> Response:
    by = by if by in COST_DIMENSIONS else "team"
    days = min(max(days, 1), 366)
    since = (datetime.now(UTC) - timedelta(days=days)).replace(minute=0, second=0, microsecond=0)
    window = {"from": since.isoformat()}
    async with _api(request) as api:
        grouped = await api.get("/costs", by=by, **window)
        daily = await api.get("/costs", by="day", **window)
        budgets = await api.get("/costs/budgets")
        return await _render(
            request,
            api,
            "costs.html",
            by=by,
            days=days,
            dimensions=COST_DIMENSIONS,
            grouped=grouped,
            budgets=budgets,
            breakdown=cost_figure(grouped["rows"][:15], currency=grouped["currency"]),
            daily=line_figure(
                {"cost": ([r["key"] for r in daily["rows"]], [r["cost"] for r in daily["rows"]])},
                title=f"cost per day ({daily['currency']})",
            )
            if daily["rows"]
            else None,
        )


# -- audit ---------------------------------------------------------------------------------


@router.get("/audit", response_class=HTMLResponse)
async def audit(
    request: Request,
    kind: str = "",
    actor: str = "",
    object_type: str = "",
    cursor: str = "",
) -> Response:
    async with _api(request) as api:
        found = await api.get(
            "/events",
            kind=kind or None,
            actor=actor or None,
            object_type=object_type or None,
            newest_first=True,
            cursor=cursor or None,
            limit=100,
        )
        verification = await api.get("/events/verify")
        return await _render(
            request,
            api,
            "audit.html",
            events=found["items"],
            next_cursor=found["next_cursor"],
            base={"kind": kind, "actor": actor, "object_type": object_type},
            verification=verification,
            checked_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
