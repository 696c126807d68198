"""testcontainers-python against `skiff serve`, with Ryuk disabled.

Run by tests/tests/api.rs (`testcontainers_python`) with DOCKER_HOST (the server's socket),
TESTCONTAINERS_RYUK_DISABLED=true and SKIFF_CGROUP (the cgroup parent for containers). The
busybox image is already in the server's engine root (no hub access here).
"""

import os
import socket
import time

import docker
import pytest
from testcontainers.core.container import DockerContainer
from testcontainers.core.wait_strategies import LogMessageWaitStrategy

CGROUP = os.environ["SKIFF_CGROUP"]

SERVER = (
    "echo starting; sleep 1; echo 'server ready on 8080'; "
    "while true; do echo hello-from-skiff | nc -l -p 8080; done"
)


def fetch(host, port):
    """One line from the published port (the listener may be between two `nc` runs)."""
    last = None
    for _ in range(50):
        try:
            with socket.create_connection((host, port), timeout=5) as s:
                data = b""
                while not data.endswith(b"\n"):
                    chunk = s.recv(64)
                    if not chunk:
                        break
                    data += chunk
                if data:
                    return data
        except OSError as e:
            last = e
        time.sleep(0.1)
    raise AssertionError(f"nothing read from {host}:{port}: {last}")


def test_generic_container_published_port_and_log_wait():
    assert os.environ.get("TESTCONTAINERS_RYUK_DISABLED") == "true"
    ctr = (
        DockerContainer("busybox:latest")
        .with_command(["sh", "-c", SERVER])
        .with_exposed_ports(8080)
        .with_kwargs(cgroup_parent=CGROUP)
        .waiting_for(LogMessageWaitStrategy("server ready on 8080"))
    )
    t = time.monotonic()
    with ctr:
        # The wait strategy returned only once the line was logged (after the `sleep 1`).
        assert time.monotonic() - t >= 1.0
        out, _ = ctr.get_logs()
        assert b"server ready on 8080" in out
        assert ctr.status == "running"
        host = ctr.get_container_host_ip()
        port = ctr.get_exposed_port(8080)
        assert fetch(host, port) == b"hello-from-skiff\n"
        cid = ctr.get_container_id()
        # The other connection modes read the bridge's gateway and address from the list
        # (`GET /containers/json`), which must agree with inspect.
        dc = ctr.get_docker_client()
        nets = dc.client.api.inspect_container(cid)["NetworkSettings"]["Networks"]
        assert dc.gateway_ip(cid) == nets["bridge"]["Gateway"] != ""
        assert dc.bridge_ip(cid) == nets["bridge"]["IPAddress"] != ""
        labels = ctr.get_wrapped_container().labels
        assert labels.get("org.testcontainers") == "true", labels
    # Leaving the block removed the container (there is no Ryuk to do it).
    client = docker.from_env()
    with pytest.raises(docker.errors.NotFound):
        client.containers.get(cid)
    client.close()


def test_log_wait_fails_when_the_container_exits():
    ctr = (
        DockerContainer("busybox:latest")
        .with_command(["sh", "-c", "echo not the line; exit 3"])
        .with_kwargs(cgroup_parent=CGROUP)
        .waiting_for(LogMessageWaitStrategy("never printed").with_startup_timeout(20))
    )
    with pytest.raises(Exception) as e:
        ctr.start()
    assert "never printed" in str(e.value) or "exited" in str(e.value).lower(), e.value
    ctr.stop()
