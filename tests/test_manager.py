"""The manager server listens with room for a thread-per-request app's connection bursts (labapp/manager.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from labtools import ROOT, wait_for

from workerlab.procs import free_port

APP_DIR = ROOT / "services" / "app"


@pytest.mark.skipif(not shutil.which("ss"), reason="ss (iproute2) not installed")
def test_the_manager_listens_with_a_backlog_of_1024_not_multiprocessings_16():
    from labapp.manager import LISTEN_BACKLOG

    port = free_port()
    env = {**os.environ, "LAB_MANAGER_AUTHKEY": "test-key", "PYTHONPATH": str(APP_DIR)}
    proc = subprocess.Popen([sys.executable, "-m", "labapp.manager", "--address", f"127.0.0.1:{port}"], env=env,
                            cwd=APP_DIR, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().startswith("manager listening")

        def listening():
            out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True).stdout.split()
            return out or None

        fields = wait_for(listening, 10, "the manager's listening socket")
        assert int(fields[2]) == LISTEN_BACKLOG == 1024  # ss: Send-Q of a listening socket is its backlog
    finally:
        proc.terminate()
        proc.wait(timeout=10)
