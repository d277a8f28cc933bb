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

from bot.playground.serve import bind_error, serve_playground
from bot.settings import Settings
from tests.conftest import REPO_ROOT, require


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


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def test_an_ipv6_host_is_probed_as_ipv6_a_free_port_starts_and_a_busy_one_is_named(tmp_path: Path) -> None:
    require(ipv6_loopback(), "this machine has no IPv6 loopback (::1)")
    with socket.socket(socket.AF_INET6) as busy:
        busy.bind(("::1", 0))
        busy.listen()
        port = int(busy.getsockname()[1])
        settings = Settings(data_dir=tmp_path, host="::1", port=port, _env_file=None)  # type: ignore[call-arg]
        console = Console(record=True, width=200)
        assert serve_playground(settings, console) == 1
        assert f"Port {port} on ::1 is in use" in console.export_text()
    # The same port, now free: nothing is reported (an IPv4 probe refused any IPv6 host).
    assert bind_error("::1", port) is None
    assert bind_error("::", port) is None


def test_a_host_that_cannot_be_listened_on_is_named_with_the_reason_not_as_a_busy_port(
    tmp_path: Path,
) -> None:
    # 192.0.2.1 is a documentation address (TEST-NET-1): no machine has it.
    settings = Settings(data_dir=tmp_path, host="192.0.2.1", port=free_port(), _env_file=None)  # type: ignore[call-arg]
    console = Console(record=True, width=200)
    assert serve_playground(settings, console) == 1
    text = console.export_text()
    assert "cannot listen on 192.0.2.1" in text and "assign requested address" in text, text
    assert "in use" not in text and "Traceback" not in text
