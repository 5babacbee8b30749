"""The demo's inbox (`make run` without a PropertyRadar token): a real SMTP server and a
webhook receiver on 127.0.0.1, so alerts can be watched arriving, and a page showing both.

    python -m devstack.inbox --http-port 5002 --smtp-port 5025

The SMTP server is aiosmtpd's (a thread); the page and the receiver a threaded Werkzeug
server. Each keeps the last MAX_KEPT messages in memory: the demo's, not a mail store.
The page shows each webhook's X-Radar-Signature as received; a real receiver checks it
against the secret the Alerts page showed once.
"""

from __future__ import annotations

import argparse
import html
import json
import threading
from collections import deque
from datetime import UTC, datetime
from email import message_from_bytes
from typing import Any

from aiosmtpd.controller import Controller
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

MAX_KEPT = 100


class Inbox:
    """What arrived, newest first, and the WSGI app that receives and shows it."""

    def __init__(self) -> None:
        self.mails: deque[dict[str, str]] = deque(maxlen=MAX_KEPT)
        self.webhooks: deque[dict[str, Any]] = deque(maxlen=MAX_KEPT)
        self._lock = threading.Lock()

    # aiosmtpd's handler hook
    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802
        message = message_from_bytes(envelope.content)
        body = message.get_payload(decode=True) or b""
        with self._lock:
            self.mails.appendleft({
                "at": _now(), "to": str(message["To"]), "subject": str(message["Subject"]),
                "body": body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body),
            })  # fmt: skip
        return "250 OK"

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        if request.path == "/webhook" and request.method == "POST":
            response = self._receive(request)
        elif request.path == "/messages.json":
            with self._lock:
                payload = {"mails": list(self.mails), "webhooks": list(self.webhooks)}
            response = Response(json.dumps(payload), mimetype="application/json")
        elif request.path == "/":
            response = Response(self._page(), mimetype="text/html")
        else:
            response = Response("Not found", status=404)
        return response(environ, start_response)

    def _receive(self, request: Request) -> Response:
        body = request.get_data(cache=False)
        with self._lock:
            self.webhooks.appendleft({
                "at": _now(), "event": request.headers.get("X-Radar-Event", ""),
                "signature": request.headers.get("X-Radar-Signature", ""),
                "body": body.decode("utf-8", "replace"),
            })  # fmt: skip
        return Response("ok")

    def _page(self) -> str:
        with self._lock:
            mails, hooks = list(self.mails), list(self.webhooks)
        esc = html.escape
        mail_rows = (
            "".join(
                f"<tr><td>{esc(m['at'])}</td><td>{esc(m['to'])}</td><td>{esc(m['subject'])}</td>"
                f"<td><pre>{esc(m['body'])}</pre></td></tr>"
                for m in mails
            )
            or '<tr><td colspan="4">No mail yet.</td></tr>'
        )
        hook_rows = (
            "".join(
                f"<tr><td>{esc(h['at'])}</td><td>{esc(h['event'])}</td>"
                f"<td><code>{esc(h['signature'])}</code></td><td><pre>{esc(h['body'])}</pre></td></tr>"
                for h in hooks
            )
            or '<tr><td colspan="4">No webhook calls yet.</td></tr>'
        )
        return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="5"><title>radar_app demo inbox</title>
<style>body{{font:14px system-ui;margin:2rem}}table{{border-collapse:collapse;width:100%}}
td,th{{border:1px solid #ccc;padding:.3rem;vertical-align:top;text-align:left}}
pre{{margin:0;white-space:pre-wrap}}</style></head><body>
<h1>Demo inbox</h1><p>What radar_app's alerts sent (refreshes every 5 s).</p>
<h2>Webhook calls</h2><table id="webhooks"><tr><th>Received</th><th>Event</th>
<th>Signature</th><th>Body</th></tr>{hook_rows}</table>
<h2>Email (SMTP outbox)</h2><table id="mails"><tr><th>Received</th><th>To</th>
<th>Subject</th><th>Body</th></tr>{mail_rows}</table></body></html>"""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack.inbox")
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--smtp-port", type=int, required=True)
    args = parser.parse_args(argv)
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=args.smtp_port)
    smtp.start()
    server = make_server("127.0.0.1", args.http_port, inbox, threaded=True)
    print(f"demo inbox on http://127.0.0.1:{args.http_port}, SMTP on {args.smtp_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        smtp.stop()


if __name__ == "__main__":
    main()
