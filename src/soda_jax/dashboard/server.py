"""The executor dashboard: experiments, their steps, provenance and metrics, over HTTP.

    soda dashboard --prefix ./demo-output --port 8265

Pages: ``/`` (experiments), ``/experiment/{key}`` (steps with status, duration, host),
``/step?path=...`` (config, provenance, results, metric plots). ``/api/...`` serves the same as
JSON. Pages refresh themselves, so a running experiment can be watched.
"""

from __future__ import annotations

import html
import io
import json
import logging
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from soda_jax.dashboard.store import PrefixStore, StepView

logger = logging.getLogger(__name__)

REFRESH_S = 10
STATUS_COLOURS = {"SUCCESS": "#2e7d32", "RUNNING": "#1565c0", "FAILED": "#c62828", "DEP_FAILED": "#ef6c00"}
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; } td, th { padding: 4px 10px; border-bottom: 1px solid #ddd; text-align: left; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; } .status { font-weight: bold; }
"""


def status_badge(status: str) -> str:
    colour = STATUS_COLOURS.get(status, "#757575")
    return f'<span class="status" style="color:{colour}">{html.escape(status)}</span>'


def page(title: str, body: str) -> bytes:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<meta http-equiv='refresh' content='{REFRESH_S}'><style>{STYLE}</style></head>"
        f"<body><p><a href='/'>soda-jax dashboard</a></p><h1>{html.escape(title)}</h1>{body}</body></html>"
    ).encode()


def step_link(view: StepView) -> str:
    query = urllib.parse.urlencode({"path": view.output_path})
    return f"<a href='/step?{query}'>{html.escape(view.name or view.output_path)}</a>"


def metrics_png(rows: list[dict[str, Any]]) -> bytes:
    """One small plot per numeric metric against the training step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({k for r in rows for k, v in r.items() if k != "step" and isinstance(v, (int, float))})
    fig, axes = plt.subplots(len(keys), 1, figsize=(7, 2.2 * max(1, len(keys))), squeeze=False)
    for ax, key in zip(axes[:, 0], keys):
        points = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]
        ax.plot([p[0] for p in points], [p[1] for p in points], marker=".", linewidth=1)
        ax.set_ylabel(key, fontsize=8)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("step")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()


class DashboardHandler(BaseHTTPRequestHandler):
    store: PrefixStore  # set by `make_server`

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug(format, *args)

    def send(self, body: bytes, content_type: str = "text/html; charset=utf-8", status: int = HTTPStatus.OK) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, data: Any) -> None:
        self.send(json.dumps(data, indent=2, default=str).encode(), "application/json")

    def do_GET(self) -> None:
        url = urllib.parse.urlparse(self.path)
        query = urllib.parse.parse_qs(url.query)
        try:
            self.route(url.path, {k: v[0] for k, v in query.items()})
        except FileNotFoundError as e:
            self.send(page("not found", f"<p>{html.escape(str(e))}</p>"), status=HTTPStatus.NOT_FOUND)

    def route(self, path: str, query: dict[str, str]) -> None:
        if path == "/":
            return self.send(self.index_page())
        if path == "/api/experiments":
            return self.send_json([{"key": e.key, **e.record} for e in self.store.experiments()])
        if path.startswith("/experiment/"):
            return self.send(self.experiment_page(path.removeprefix("/experiment/")))
        if path.startswith("/api/experiment/"):
            views = self.store.steps_of(path.removeprefix("/api/experiment/"))
            return self.send_json([vars(v) for v in views])
        if path in ("/step", "/api/step", "/metrics.png"):
            step_path = query.get("path", "")
            if not self.store.is_step_path(step_path):
                raise FileNotFoundError(f"no step output at {step_path!r} under {self.store.prefix}")
            if path == "/api/step":
                return self.send_json({**vars(self.store.step(step_path)), "metrics": self.store.metrics(step_path)})
            if path == "/metrics.png":
                return self.send(metrics_png(self.store.metrics(step_path)), "image/png")
            return self.send(self.step_page(step_path))
        raise FileNotFoundError(path)

    def index_page(self) -> bytes:
        rows = []
        for exp in self.store.experiments():
            steps = self.store.steps_of(exp.key)
            counts: dict[str, int] = {}
            for s in steps:
                counts[s.status] = counts.get(s.status, 0) + 1
            summary = " ".join(f"{status_badge(k)}&nbsp;{v}" for k, v in sorted(counts.items()))
            rows.append(
                f"<tr><td><a href='/experiment/{urllib.parse.quote(exp.key)}'>{html.escape(exp.key)}</a></td>"
                f"<td>{html.escape(exp.created_at)}</td><td>{html.escape(exp.description)}</td><td>{summary}</td></tr>"
            )
        body = (
            f"<p>prefix: <code>{html.escape(self.store.prefix)}</code></p><table>"
            "<tr><th>experiment</th><th>created</th><th>description</th><th>steps</th></tr>"
            + "".join(rows) + "</table>"
        )
        return page("experiments", body if rows else "<p>no experiments under this prefix yet</p>")

    def experiment_page(self, key: str) -> bytes:
        record = self.store.experiment_record(key)
        rows = []
        for view in self.store.steps_of(key):
            prov = view.provenance
            rows.append(
                f"<tr><td>{step_link(view)}</td><td>{status_badge(view.status)}</td>"
                f"<td>{prov.get('duration_s', '')}</td><td>{html.escape(str(prov.get('host', '')))}</td>"
                f"<td>{html.escape(str(prov.get('runner', '')))}</td><td><code>{html.escape(view.output_path)}</code></td></tr>"
            )
        body = (
            f"<p>{html.escape(record.get('description', ''))}</p>"
            f"<p>script <code>{html.escape(str(record.get('script')))}</code>, created {html.escape(record.get('created_at', ''))},"
            f" commit <code>{html.escape(str(record.get('git', {}).get('commit')))}</code></p><table>"
            "<tr><th>step</th><th>status</th><th>seconds</th><th>host</th><th>runner</th><th>output</th></tr>"
            + "".join(rows) + "</table>"
        )
        return page(f"experiment {key}", body)

    def step_page(self, output_path: str) -> bytes:
        view = self.store.step(output_path, "")
        name = view.info.get("name", output_path)
        parts = [f"<p>{status_badge(view.status)} <code>{html.escape(output_path)}</code></p>"]
        error = view.provenance.get("error")
        if error:
            parts.append(f"<h2>error</h2><pre>{html.escape(error.get('traceback') or error.get('message', ''))}</pre>")
        if self.store.metrics(output_path):
            query = urllib.parse.urlencode({"path": output_path})
            parts.append(f"<h2>metrics</h2><img src='/metrics.png?{query}' alt='metrics'>")
        for fname, data in view.summaries.items():
            parts.append(f"<h2>{html.escape(fname)}</h2><pre>{html.escape(json.dumps(data, indent=2))}</pre>")
        for title, data in (("provenance", view.provenance), ("executor info", view.info)):
            parts.append(f"<h2>{title}</h2><pre>{html.escape(json.dumps(data, indent=2, default=str))}</pre>")
        return page(f"step {name}", "".join(parts))


def make_server(prefix: str, host: str = "127.0.0.1", port: int = 8265) -> ThreadingHTTPServer:
    handler = type("BoundDashboardHandler", (DashboardHandler,), {"store": PrefixStore(prefix)})
    return ThreadingHTTPServer((host, port), handler)


def serve(prefix: str, host: str = "127.0.0.1", port: int = 8265) -> None:
    server = make_server(prefix, host, port)
    print(f"soda dashboard for {prefix} on http://{host}:{server.server_address[1]}/")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
