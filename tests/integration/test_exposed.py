"""Exposed services against a real `oscar serve` and real containers: busybox `httpd` in the
test image, reached through `/system/services/{svc}/exposed/`, with OSCAR's lifecycle routes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import websockets.sync.client

from tests.support.cli import TEST_IMAGE
from tests.support.server import RunningServer, start_server

pytestmark = pytest.mark.docker

# A web root with a page, a folder, and a CGI program that echoes what reached the replica.
HTTPD_SCRIPT = r"""
mkdir -p /tmp/www/sub /tmp/www/cgi-bin
echo "hello from $OSCAR_SERVICE_NAME at $OSCAR_SERVICE_BASE_PATH" > /tmp/www/index.html
echo "the sub folder" > /tmp/www/sub/index.html
cat > /tmp/www/cgi-bin/echo <<'EOF'
#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
echo "uri=$REQUEST_URI method=$REQUEST_METHOD auth=$HTTP_AUTHORIZATION"
cat
EOF
chmod +x /tmp/www/cgi-bin/echo
echo "replica starting"
exec httpd -f -p 8080 -h /tmp/www
"""

# A WebSocket server in busybox sh (nc forks it per connection): it greets, then answers the
# client's first (masked) text frame with "echo:" and the text; any other request gets "ok".
WEBSOCKET_SCRIPT = r"""
cat > /tmp/ws.sh <<'EOF'
#!/bin/sh
key=""
while IFS= read -r line; do
  line=$(printf '%s' "$line" | tr -d '\r')
  [ -z "$line" ] && break
  case "$line" in [Ss]ec-[Ww]eb[Ss]ocket-[Kk]ey:*) key=$(echo "${line#*:}" | tr -d ' ');; esac
done
if [ -z "$key" ]; then printf 'HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n'; exit; fi
accept=$(printf '%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11' "$key" | sha1sum | cut -d' ' -f1 \
  | xxd -r -p | base64)
printf 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
printf 'Sec-WebSocket-Accept: %s\r\n\r\n' "$accept"
printf '\201\005hello'
set -- $(dd bs=1 count=2 2>/dev/null | od -An -tu1)
len=$(( $2 & 127 ))
set -- $(dd bs=1 count=$((4 + len)) 2>/dev/null | od -An -tu1)
m0=$1 m1=$2 m2=$3 m3=$4; shift 4
out=""; i=0
for b in "$@"; do
  eval m=\$m$((i % 4))
  out="$out\\$(printf '%03o' $((b ^ m)))"
  i=$((i + 1))
done
printf "\\201\\$(printf '%03o' $((len + 5)))echo:$out"
sleep 1
EOF
chmod +x /tmp/ws.sh
exec nc -ll -p 8080 -e /tmp/ws.sh
"""


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, docker_client: object
) -> Iterator[RunningServer]:
    running = start_server(
        tmp_path_factory.mktemp("exposed") / "data",
        env={"OSCAR_EXPOSED_SCALE_INTERVAL": "1", "OSCAR_EXPOSED_STARTUP_SECONDS": "30"},
    )
    yield running
    running.stop()
    assert "Traceback" not in running.log()


def _wait(condition: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError("timed out")


def _expose(server: RunningServer, name: str, script: str = HTTPD_SCRIPT, **expose: Any) -> Any:
    return server.create_service(
        {
            "name": name,
            "image": TEST_IMAGE,
            "script": script,
            "cpu": expose.pop("cpu", "0.2"),
            "expose": {"api_port": 8080, "min_scale": 1, "max_scale": 1, **expose},
        }
    )


def _ready(client: httpx.Client, name: str) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        status: dict[str, Any] = client.get(f"/system/services/{name}/deployment").json()
        return status if status["state"] == "ready" else None

    found: dict[str, Any] = _wait(ready)
    return found


def _replicas(docker_client: Any, name: str) -> list[str]:
    found = docker_client.containers.list(filters={"label": f"oscar.exposed={name}"})
    return sorted(container.id for container in found)


def test_http_is_proxied_to_the_replica_and_nowhere_else(server: RunningServer) -> None:
    _expose(server, "web")
    with server.client() as client:
        status = _ready(client, "web")
        assert status["active_instances"] == 1
        assert status["resource_kind"] == "exposed_service"
        page = httpx.get(f"{server.url}/system/services/web/exposed/")  # no credentials
        assert page.status_code == 200
        assert page.text == "hello from web at /system/services/web/exposed\n"
        # The trailing slash is the replica's to interpret: a folder's index.
        sub = httpx.get(f"{server.url}/system/services/web/exposed/sub/")
        assert sub.text == "the sub folder\n"
        echoed = httpx.post(
            f"{server.url}/system/services/web/exposed/cgi-bin/echo?a=1&b=%2F",
            content=b"body bytes",
        )
        assert echoed.status_code == 200
        assert echoed.text == "uri=/cgi-bin/echo?a=1&b=%2F method=POST auth=\nbody bytes"
        # Path tricks reach the same replica (its 404), never another host, port or route.
        for trick in ("//127.0.0.1:1/x", "/%2e%2e/%2e%2e/%2e%2e/health", "/..%2f..%2fhealth"):
            answer = httpx.get(f"{server.url}/system/services/web/exposed{trick}")
            assert answer.status_code in (400, 404), (trick, answer.status_code)
            assert answer.text != "Ok"
        logs = client.get("/system/services/web/deployment/logs").json()
        assert logs["available"] is True
        assert any(entry["message"] == "replica starting" for entry in logs["entries"])
        assert client.get("/system/services/nosuch/deployment").status_code == 404


def test_set_auth_asks_for_the_service_token_and_keeps_it(server: RunningServer) -> None:
    token = _expose(server, "guarded", set_auth=True)["token"]
    url = f"{server.url}/system/services/guarded/exposed/cgi-bin/echo"
    with server.client() as client:
        _ready(client, "guarded")
    refused = httpx.get(url)
    assert refused.status_code == 401
    assert "Basic" in refused.headers["www-authenticate"]
    assert httpx.get(url, auth=("guarded", "wrong")).status_code == 401
    assert httpx.get(url, auth=server.auth).status_code == 401  # the admin's are not the key
    allowed = httpx.get(url, auth=("guarded", token))
    assert allowed.status_code == 200
    assert "auth=\n" in allowed.text  # not passed on to the replica


def test_dead_replicas_are_replaced_and_lifecycle_routes_work(
    server: RunningServer, docker_client: Any
) -> None:
    _expose(server, "phoenix")
    page = f"{server.url}/system/services/phoenix/exposed/"
    with server.client() as client:
        _ready(client, "phoenix")
        (first,) = _replicas(docker_client, "phoenix")
        docker_client.containers.get(first).kill()
        _wait(lambda: (found := _replicas(docker_client, "phoenix")) and found != [first])
        _ready(client, "phoenix")
        assert httpx.get(page).status_code == 200

        stopped = client.post("/system/services/phoenix/stop").json()
        assert stopped["state"] == "stopped"
        assert _replicas(docker_client, "phoenix") == []
        assert httpx.get(page).status_code == 503

        client.post("/system/services/phoenix/start").raise_for_status()
        _ready(client, "phoenix")
        (second,) = _replicas(docker_client, "phoenix")
        client.post("/system/services/phoenix/restart").raise_for_status()
        _wait(lambda: (found := _replicas(docker_client, "phoenix")) and found != [second])
        _ready(client, "phoenix")
        assert httpx.get(page).status_code == 200

        client.post(
            "/system/services", json={"name": "plain", "image": TEST_IMAGE, "script": "true"}
        ).raise_for_status()
        not_exposed = client.post("/system/services/plain/stop")
        assert not_exposed.status_code == 400
        assert "not exposed" in not_exposed.text
        client.delete("/system/services/phoenix").raise_for_status()
        _wait(lambda: _replicas(docker_client, "phoenix") == [])


def test_websockets_are_proxied_both_ways(server: RunningServer) -> None:
    _expose(server, "chat", WEBSOCKET_SCRIPT)
    with server.client() as client:
        _ready(client, "chat")
    address = f"ws://127.0.0.1:{server.port}/system/services/chat/exposed/room"
    with websockets.sync.client.connect(address, open_timeout=10) as socket:
        assert socket.recv(timeout=10) == "hello"
        socket.send("hi there")
        assert socket.recv(timeout=10) == "echo:hi there"


def test_busy_replicas_scale_up_to_max_scale(server: RunningServer, docker_client: Any) -> None:
    burner = "(while :; do :; done) &\n" + HTTPD_SCRIPT
    _expose(server, "busy", burner, cpu="0.1", max_scale=2, cpu_threshold=50)
    with server.client() as client:
        _wait(lambda: len(_replicas(docker_client, "busy")) == 2, timeout=90)
        status = _ready(client, "busy")
        assert status["active_instances"] == 2
        client.delete("/system/services/busy").raise_for_status()


def test_invalid_expose_settings_are_refused(server: RunningServer) -> None:
    with server.client() as client:
        answer = client.post(
            "/system/services",
            json={"name": "bad", "image": TEST_IMAGE, "script": "-", "expose": {"api_port": 0.5}},
        )
        assert answer.status_code == 400
        assert "expose.api_port" in answer.text
