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
from contextlib import contextmanager
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


@contextmanager
def ray_head():
    """A head node with 2 CPUs and token auth on a free port; stopped (only it) at the end.
    Yields ``{"address", "env", "kill"}``; ``kill()`` SIGKILLs every process of the head."""
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

    def kill() -> None:
        for pid in _pids_with(tmp):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

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
        yield {"address": f"127.0.0.1:{port}", "env": env, "kill": kill}
    finally:
        head.send_signal(signal.SIGINT)  # `ray start --block` stops its cluster on SIGINT
        try:
            head.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        time.sleep(0.5)
        kill()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster():
    """A head node with 2 CPUs and token auth on a free port; stopped (only it) at the end."""
    with ray_head() as head:
        yield head


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


def _sweep_status(db: Path) -> tuple[str | None, int]:
    """(the sweep's status, its ok runs); status None before the sweep's row is written
    (the database's tables exist a moment before it)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        row = con.execute("SELECT status FROM sweeps").fetchone()
        return (None if row is None else row[0],
                con.execute("SELECT count(*) FROM runs WHERE status = 'ok'").fetchone()[0])
    finally:
        con.close()


@pytest.mark.slow
def test_a_lost_cluster_is_a_clear_error_and_the_sweep_resumes_inline(tmp_path):
    """The head killed during sweep --address: an irqlab message, exit 2, the sweep marked
    'error' with no run recorded as failed; the same command inline then finishes it."""
    scn = tmp_path / "slow.scn"
    scn.write_text(tiny(duration="10ms", thresholds="10, 100, 1000, 10000",
                        replications=15, backend="numpy"))  # 120 runs
    out = tmp_path / "out"
    db = out / "results.db"
    with ray_head() as head:
        p = subprocess.Popen([IRQLAB, "sweep", str(scn), "--out", str(out), "--address",
                              head["address"], "--max-lanes", "4", "--no-progress",
                              "--no-table"], env=head["env"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and p.poll() is None:
            try:
                if _sweep_status(db)[1] >= 8:
                    break
            except sqlite3.Error:
                pass
            time.sleep(0.2)
        assert p.poll() is None, "the sweep ended before the cluster could be killed"
        head["kill"]()
        _, err = p.communicate(timeout=120)
    assert p.returncode == 2, err
    assert "lost the Ray cluster at" in err and "Traceback" not in err
    status, stored = _sweep_status(db)
    assert status == "error" and 8 <= stored < 120
    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*) FROM runs WHERE status != 'ok'").fetchone()[0] == 0
    con.close()
    r = subprocess.run([IRQLAB, "sweep", str(scn), "--out", str(out), "--launcher", "inline",
                        "--no-progress", "--no-table"], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    assert f"{stored} already done, {120 - stored} run now" in r.stdout
    assert _sweep_status(db) == ("done", 120)
