"""A sweep on a real local Ray cluster (``ray start --head``), reached by address,
with Ray's token authentication on."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from scn_texts import tiny

BIN = Path(sys.executable).parent
IRQLAB = str(BIN / "irqlab")
RAY = str(BIN / "ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pids_with(marker: str) -> list[int]:
    """Processes whose command line mentions ``marker`` (this cluster's own temp dir)."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    if marker.encode() in f.read():
                        out.append(int(d))
            except OSError:
                pass
    return out


@pytest.fixture(scope="module")
def cluster():
    """A head node with 2 CPUs and token auth on a free port; stopped (only it) at the end."""
    if not os.path.exists(RAY):
        pytest.skip("the ray command is not installed")
    tmp = tempfile.mkdtemp(prefix="irqray")  # short: Ray's socket paths must stay short
    token = Path(tmp) / "token"
    token.write_text(secrets.token_hex(32))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token),
               PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")
    head = subprocess.Popen(
        [RAY, "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
         "--include-dashboard=false", f"--temp-dir={tmp}", "--disable-usage-stats"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if head.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("ray start --head did not come up")
                time.sleep(0.2)
        yield {"address": f"127.0.0.1:{port}", "env": env}
    finally:
        head.send_signal(signal.SIGINT)  # `ray start --block` stops its cluster on SIGINT
        try:
            head.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        time.sleep(0.5)
        for pid in _pids_with(tmp):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.slow
def test_a_sweep_runs_on_a_cluster_reached_by_address(cluster, tmp_path):
    """irqlab sweep --address HOST:PORT runs every run on the cluster and stores it."""
    scn = tmp_path / "tiny.scn"
    scn.write_text(tiny())
    out = tmp_path / "out"
    r = subprocess.run([IRQLAB, "sweep", str(scn), "--out", str(out), "--address",
                        cluster["address"], "--no-progress"],
                       env=cluster["env"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"on ray cluster at {cluster['address']} (2 CPUs)" in r.stdout
    con = sqlite3.connect(out / "results.db")
    assert con.execute("SELECT status, count(*) FROM runs GROUP BY status").fetchall() == [("ok", 12)]
    con.close()


@pytest.mark.slow
def test_ray_address_from_the_environment(cluster, tmp_path):
    """RAY_ADDRESS picks the cluster when --address is not given."""
    scn = tmp_path / "tiny.scn"
    scn.write_text(tiny(thresholds="10"))
    env = dict(cluster["env"], RAY_ADDRESS=cluster["address"])
    r = subprocess.run([IRQLAB, "sweep", str(scn), "--out", str(tmp_path / "out"), "--no-progress"],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "on ray cluster at" in r.stdout


@pytest.mark.slow
def test_connecting_without_the_token_is_a_clear_error(cluster, tmp_path):
    """Without RAY_AUTH_MODE=token the driver cannot connect: exit 2 and a hint, no traceback."""
    scn = tmp_path / "tiny.scn"
    scn.write_text(tiny(thresholds="10"))
    env = {k: v for k, v in cluster["env"].items() if not k.startswith("RAY_AUTH")}
    env["HOME"] = str(tmp_path)  # no ~/.ray/auth_token either
    env["RAY_NUM_REDIS_GET_RETRIES"] = "2"  # Ray retries for ~20 s by default before it gives up
    r = subprocess.run([IRQLAB, "sweep", str(scn), "--out", str(tmp_path / "out"), "--address",
                        cluster["address"], "--no-progress"],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2
    assert "cannot connect to the Ray cluster" in r.stderr and "RAY_AUTH_MODE=token" in r.stderr
    assert "Traceback" not in r.stderr


def test_an_address_nobody_listens_at_fails_fast(tmp_path):
    """--address at a closed port: exit 2 at once (Ray alone retries for minutes, past the
    timeout here)."""
    with socket.socket() as s:  # a port that was free a moment ago and has no listener
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    scn = tmp_path / "tiny.scn"
    scn.write_text(tiny(thresholds="10"))
    r = subprocess.run([IRQLAB, "sweep", str(scn), "--out", str(tmp_path / "out"), "--address",
                        f"127.0.0.1:{port}", "--no-progress"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert f"nothing accepts connections at 127.0.0.1:{port}" in r.stderr
    assert "Traceback" not in r.stderr
