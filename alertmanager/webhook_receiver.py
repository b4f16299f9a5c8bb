"""A tiny Alertmanager webhook receiver: prints every notification, keeps the last ones for GET.

Used by the `webhook` service of docker-compose.yml (standard library only, so it runs on a plain
python image) and by the stack tests. Point a webhook_config at http://HOST:PORT/alerts/<name>;
GET / returns the notifications received so far as JSON.
"""

from __future__ import annotations

import json
import os
import sys
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

RECEIVED: deque[dict[str, Any]] = deque(maxlen=200)


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            payload = json.loads(body)
        except ValueError:
            self.send_response(400)
            self.end_headers()
            return
        RECEIVED.append({"path": self.path, "payload": payload})
        for alert in payload.get("alerts", []):
            labels = alert.get("labels", {})
            summary = alert.get("annotations", {}).get("summary", "")
            print(f"{self.path} {alert.get('status', '?').upper()} {labels.get('alertname', '?')} "
                  f"{json.dumps(labels, sort_keys=True)} {summary}", flush=True)
        self.send_response(200)
        self.end_headers()

    def do_GET(self) -> None:
        data = json.dumps(list(RECEIVED)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return  # one line per alert (above) is enough


def main() -> None:
    host = os.environ.get("WEBHOOK_HOST", "0.0.0.0")
    port = int(sys.argv[1]) if len(sys.argv) > 1 else int(os.environ.get("WEBHOOK_PORT", "8080"))
    server = ThreadingHTTPServer((host, port), Handler)
    print(f"webhook receiver listening on {host}:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
