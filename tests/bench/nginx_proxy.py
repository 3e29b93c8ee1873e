"""A compiled HTTP reverse proxy beside ours: nginx, one worker process, keep-alive to the worker.

What a mature C proxy adds on this machine is the honest ceiling for any proxy's latency aim: it
parses HTTP, picks an upstream and relays, as ours does, with none of the interpreter's cost. It is
set up for the job: one worker process (our router's one event loop), HTTP/1.1 upstream keep-alive,
no buffering either way (streams pass through as they come), no access log, and ten million
requests per connection (the default 1,000 would close connections mid-load). nginx is Debian's
(``apt-get install nginx-light``); where it is missing the bench says so and goes on without it.

The config is written into ``workdir`` with every temp path inside it, so nginx runs unprivileged
and leaves nothing behind.
"""

from __future__ import annotations

import shutil
from pathlib import Path

__all__ = ["NGINX", "nginx_proxy"]

NGINX = "nginx (C, 1 worker)"

CONFIG = """\
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log error;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 10000000;  # the default (1000) closes a client's connection mid-load
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream worker {{
        server {host}:{upstream};
        keepalive 128;
        keepalive_requests 10000000;
    }}
    server {{
        listen {host}:{port} reuseport;
        location / {{
            proxy_pass http://worker;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
        }}
    }}
}}
"""


def nginx_proxy(host: str, upstream_port: int, port: int, workdir: Path) -> tuple[str, list[str]] | None:
    """The argv that runs nginx in front of ``upstream_port`` on ``port``; None when nginx is not installed."""
    binary = shutil.which("nginx") or next(
        (str(p) for p in (Path("/usr/sbin/nginx"), Path("/usr/local/sbin/nginx")) if p.exists()), None
    )
    if binary is None:
        return None
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "nginx.conf"
    config.write_text(CONFIG.format(dir=workdir.resolve(), host=host, upstream=upstream_port, port=port))
    return NGINX, [binary, "-p", str(workdir.resolve()), "-c", str(config), "-e", "stderr"]
