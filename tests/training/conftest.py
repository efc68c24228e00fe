"""Helpers for the training tests that run real processes: generated MovieLens files, the
`tfrec train` arguments they share, free local ports, and subprocesses started on this
checkout of tfrec (each in its own session, so a test can end exactly what it started)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

GLOBAL_BATCH = 640
"""960 training rows in 6 global batches of 160 positives with 3 negatives each (640 pairs),
none partial: a run on two workers of 320 each (80 positives) sees exactly the batches of a
single process with 640."""

STEPS = 6
"""Global batches per epoch."""

MODEL_ARGS = ["--set", "embedding_dim=8", "--set", "dnn_units=[8]", "--set", "history_length=3",
              "--set", "num_negatives=3", "--set", "patience=5"]  # fmt: skip


@pytest.fixture(scope="session")
def movielens_files(tmp_path_factory):
    """`--source local` arguments for generated ml-100k files (60 users, 960 train rows)."""
    from tfrec.data.synthetic import synthetic_tables, write_grouplens_100k

    root = tmp_path_factory.mktemp("cluster-data")
    tables = synthetic_tables(num_users=60, num_movies=80, ratings_per_user=12, seed=8)
    files = write_grouplens_100k(tables, root / "ml")
    return ["--source", "local", "--path", str(files), "--data-dir", str(root / "cache")]


def train_argv(data_args, output, epochs=2, batch_size=GLOBAL_BATCH, extra=()) -> list[str]:
    """`tfrec train deepfm ...` arguments (after the program name) on the generated files."""
    return ["train", "deepfm", *data_args, *MODEL_ARGS, "--epochs", str(epochs),
            "--batch-size", str(batch_size), "--output", str(output), *extra]  # fmt: skip


def free_ports(count: int) -> list[int]:
    """`count` distinct ports free on 127.0.0.1 right now."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def environment(tf_config: dict | None = None) -> dict:
    """This process's environment for a child on this checkout (optionally with TF_CONFIG)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2", TF_USE_LEGACY_KERAS="1")
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return env


class Processes:
    """Children started for one test; `stop` ends each (its whole session) by id."""

    def __init__(self):
        self.children: list[subprocess.Popen] = []

    def start(self, args, log: Path, tf_config=None, cwd=None, path=None) -> subprocess.Popen:
        env = environment(tf_config)
        if path is not None:  # a directory searched first for commands
            env["PATH"] = f"{path}{os.pathsep}{env.get('PATH', '')}"
        child = subprocess.Popen(
            args,
            env=env,
            cwd=cwd,
            stdout=open(log, "w"),  # noqa: SIM115  (closed with the child)
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.children.append(child)
        return child

    def cli(self, argv, log: Path, tf_config=None) -> subprocess.Popen:
        return self.start([sys.executable, "-m", "tfrec.cli", *argv], log, tf_config)

    @staticmethod
    def kill(child: subprocess.Popen) -> None:
        """SIGKILL to the child's session (its own process group: whatever it started too)."""
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # the child and everything it started have exited
        child.wait()

    def stop(self) -> None:
        for child in self.children:
            self.kill(child)
            if child.stdout:
                child.stdout.close()


@pytest.fixture
def processes():
    started = Processes()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def module_processes():
    """`processes` for module-scoped fixtures."""
    started = Processes()
    yield started
    started.stop()


def wait_all(children, timeout: float) -> list[int]:
    """Exit codes of `children`, failing the test if any runs past `timeout` seconds."""
    deadline = time.monotonic() + timeout
    codes = []
    for child in children:
        try:
            codes.append(child.wait(timeout=max(1.0, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            pytest.fail(f"{child.args} ran past {timeout} s")
    return codes


def wait_for_backup(backup_dir, steps: int, child, min_epoch=1, timeout=300.0):
    """Polls `backup_dir` until it holds a mid-epoch backup of epoch >= `min_epoch` (0-based),
    returning the (epoch, step) it resumes at; fails if `child` ends first."""
    from tfrec.training.resume import resume_point

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            pytest.fail(f"training ended (code {child.returncode}) before it could be killed")
        try:
            epoch, step = resume_point(backup_dir, steps)
        except Exception:  # noqa: BLE001  (a checkpoint being replaced: look again)
            epoch, step = 0, 0
        if epoch >= min_epoch and step > 0:
            return epoch, step
        time.sleep(0.02)
    pytest.fail(f"no mid-epoch backup in {backup_dir} after {timeout} s")


def log_text(path: Path) -> str:
    """A child's output without TensorFlow's C++ log lines."""
    skip = ("W0000", "I0000", "E0000", "WARNING: All log")
    return "\n".join(
        line for line in Path(path).read_text().splitlines() if not line.startswith(skip)
    )


@pytest.fixture(scope="session")
def single_process_run(movielens_files, tmp_path_factory):
    """`tfrec train` in this process, 2 epochs at the global batch: the reference run (its
    directory) that resumed and multi-worker runs must reproduce."""
    from tfrec import cli

    output = tmp_path_factory.mktemp("single") / "run"
    assert cli.main(train_argv(movielens_files, output)) == 0
    return output


@pytest.fixture(scope="session")
def kit():
    """The helpers above, for test modules (conftest modules are not importable by name)."""
    import types

    return types.SimpleNamespace(
        GLOBAL_BATCH=GLOBAL_BATCH,
        STEPS=STEPS,
        train_argv=train_argv,
        free_ports=free_ports,
        wait_all=wait_all,
        wait_for_backup=wait_for_backup,
        log_text=log_text,
    )
