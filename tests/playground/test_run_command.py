"""`shepherd run` (what `make run` starts) without Slack credentials serves the playground."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from rich.console import Console

from bot.playground.serve import serve_playground
from bot.settings import Settings
from tests.conftest import REPO_ROOT


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_run_without_credentials_prints_next_steps_and_serves_the_playground(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "SHEPHERD_", "OPENAI_"))}
    env.update(
        SHEPHERD_DATA_DIR=str(tmp_path / "data"),
        SHEPHERD_PORT=str(port),
        SHEPHERD_EMBEDDINGS="none",
        COLUMNS="200",
    )
    script = "from bot.cli import main; main()"
    process = subprocess.Popen(
        [sys.executable, "-c", script, "run"],
        cwd=tmp_path,  # no .env from the checkout
        env={**env, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = ""
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 90
        while "Playground ready" not in output:
            line = process.stdout.readline()
            assert line or process.poll() is None, f"shepherd run exited early:\n{output}"
            output += line
            assert time.monotonic() < deadline, f"no playground in time:\n{output}"
        assert "Next steps" in output and "slack-manifest.yaml" in output
        assert f"http://127.0.0.1:{port}" in output
        state = None
        for _ in range(50):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/state", timeout=5) as response:
                    state = json.loads(response.read())
                break
            except OSError:
                time.sleep(0.1)
        assert state is not None and state["channels"][0]["name"] == "ai-initiatives"
        assert (tmp_path / "data" / "playground" / "shepherd.db").exists()
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise AssertionError("shepherd run did not stop on Ctrl+C") from None
        if process.stdout is not None:
            process.stdout.close()


def test_a_busy_port_is_reported_in_a_sentence(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = int(busy.getsockname()[1])
        settings = Settings(data_dir=tmp_path, port=port, _env_file=None)  # type: ignore[call-arg]
        console = Console(record=True, width=200)
        assert serve_playground(settings, console) == 1
    text = console.export_text()
    assert f"Port {port} on 127.0.0.1 is in use" in text and "SHEPHERD_PORT" in text
