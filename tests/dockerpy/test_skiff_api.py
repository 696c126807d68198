"""docker-py 7 (the Docker SDK for Python) against `skiff serve`.

Run by tests/tests/api.rs (`docker_py_sdk`) with SKIFF_SOCK (the server's socket), SKIFF_CGROUP
(the cgroup parent for containers) and SKIFF_REGISTRY (a local registry holding busybox:py).
"""

import os
import socket
import time

import docker
import pytest

SOCK = os.environ["SKIFF_SOCK"]
CGROUP = os.environ["SKIFF_CGROUP"]
REGISTRY = os.environ.get("SKIFF_REGISTRY", "")


@pytest.fixture()
def client():
    c = docker.DockerClient(base_url="unix://" + SOCK, version="1.45")
    yield c
    for ct in c.containers.list(all=True):
        ct.remove(force=True, v=True)
    c.close()


def run(c, cmd, **kw):
    return c.containers.run("busybox", cmd, cgroup_parent=CGROUP, **kw)


def test_version_and_ping(client):
    assert client.ping()
    assert client.version()["ApiVersion"] == "1.50"
    assert client.info()["Images"] >= 1


def test_run_remove_output_and_error(client):
    assert run(client, ["echo", "hi"], remove=True) == b"hi\n"
    with pytest.raises(docker.errors.ContainerError) as e:
        run(client, ["sh", "-c", "echo boom >&2; exit 3"], remove=True, stderr=True)
    assert e.value.exit_status == 3
    assert client.containers.list(all=True) == []


def test_detached_exec_logs_and_wait(client):
    ct = run(client, ["sh", "-c", "echo ready; sleep 300"], detach=True, name="pyweb",
             environment={"WHO": "py"}, labels={"suite": "api"})
    ct.reload()
    assert ct.status == "running"
    assert ct.attrs["State"]["Pid"] > 0
    assert [c.name for c in client.containers.list(filters={"label": "suite=api"})] == ["pyweb"]
    assert client.containers.list(filters={"label": "suite=other"}) == []
    for _ in range(100):
        if ct.logs() == b"ready\n":
            break
        time.sleep(0.1)
    assert ct.logs() == b"ready\n"
    r = ct.exec_run(["sh", "-c", "echo out $WHO; echo err >&2; exit 2"], demux=True)
    assert r.exit_code == 2
    assert r.output == (b"out py\n", b"err\n")
    # A streamed exec.
    r = ct.exec_run(["sh", "-c", "for i in 1 2 3; do echo $i; done"], stream=True)
    assert b"".join(r.output) == b"1\n2\n3\n"
    ct.kill(signal="KILL")
    assert ct.wait(timeout=20)["StatusCode"] == 137
    ct.remove()
    with pytest.raises(docker.errors.NotFound):
        client.containers.get("pyweb")


def test_attach_socket_and_stdin(client):
    ct = client.containers.create("busybox", ["sh", "-c", "read x; echo got $x"],
                                  stdin_open=True, cgroup_parent=CGROUP)
    s = ct.attach_socket(params={"stdin": 1, "stdout": 1, "stream": 1})
    ct.start()
    raw = s._sock
    raw.sendall(b"hello\n")
    raw.shutdown(socket.SHUT_WR)
    data = b""
    raw.settimeout(20)
    while True:
        chunk = raw.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    # stdcopy framing: stream 1, three zero bytes, big-endian length.
    assert data[:1] == b"\x01" and data[1:4] == b"\x00\x00\x00"
    assert data[8:] == b"got hello\n"
    assert ct.wait(timeout=20)["StatusCode"] == 0


def test_images_and_volumes(client):
    img = client.images.get("busybox")
    assert "busybox:latest" in img.tags
    img.tag("example/py", "t1")
    assert "example/py:t1" in client.images.get("example/py:t1").tags
    client.images.remove("example/py:t1")
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get("example/py:t1")
    v = client.volumes.create("pyvol", labels={"k": "v"})
    assert client.volumes.get("pyvol").attrs["Labels"] == {"k": "v"}
    assert [x.name for x in client.volumes.list(filters={"label": "k=v"})] == ["pyvol"]
    out = run(client, ["sh", "-c", "echo data > /v/f; cat /v/f"], remove=True,
              volumes={"pyvol": {"bind": "/v", "mode": "rw"}})
    assert out == b"data\n"
    v.remove()
    with pytest.raises(docker.errors.NotFound):
        client.volumes.get("pyvol")


def test_bad_requests(client):
    with pytest.raises(docker.errors.ImageNotFound):
        client.containers.create("no-such-image-here", ["true"])
    with pytest.raises(docker.errors.NotFound):
        client.api.inspect_container("nope")
    with pytest.raises(docker.errors.APIError) as e:
        client.api.create_container("busybox", ["true"], host_config={"Memory": "lots"})
    assert e.value.status_code == 400
    assert "HostConfig.Memory" in str(e.value)


@pytest.mark.skipif(not REGISTRY, reason="no local registry")
def test_streamed_pull_progress(client):
    ref = REGISTRY + "/busybox"
    events = list(client.api.pull(ref, tag="py", stream=True, decode=True))
    statuses = [e.get("status", "") for e in events]
    assert not any("error" in e for e in events), events
    assert any(s.startswith("Digest: sha256:") for s in statuses), statuses
    assert any(s.startswith("Status: ") for s in statuses), statuses
    assert any(s in ("Pull complete", "Already exists") for s in statuses), statuses
    assert ref + ":py" in client.images.get(ref + ":py").tags
    bad = list(client.api.pull(REGISTRY + "/no-such-repo", tag="x", stream=True, decode=True))
    assert any("error" in e for e in bad), bad
