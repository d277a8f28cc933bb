"""`shepherd serve --processes N`: several HTTP processes answer Slack on one port, the workers
run once beside them, and /metrics counts every process's requests."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bot import ids
from bot.emulator import payloads
from bot.emulator.client import SlackClient
from bot.emulator.webapi import FakeSlackWebAPI
from tests.bot.scenario import SIGNING_SECRET

REPO = Path(__file__).resolve().parents[2]
USER = "U0OWNER01"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_env(tmp_path: Path, api: FakeSlackWebAPI, registry: str, **extra: str) -> dict[str, str]:
    """The environment of a `shepherd serve` child process talking to the fake Slack ``api``,
    keeping its data in ``tmp_path``, with ``extra`` settings on top."""
    return {
        **os.environ,
        "SHEPHERD_DATA_DIR": str(tmp_path),
        "SLACK_BOT_TOKEN": api.bot_token,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": api.api_url,
        "SHEPHERD_REGISTRY_CHANNEL": registry,
        "SHEPHERD_EMBEDDINGS": "none",
        "SHEPHERD_SCHEDULER_INTERVAL": "0",
        "PYTHONPATH": str(REPO),
        **extra,
    }


def descendants(pid: int) -> dict[int, str]:
    """Command lines of ``pid``'s child processes and theirs, by process id."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found: dict[int, str] = {}
    frontier = [pid]
    while frontier:
        for child in children.get(frontier.pop(), []):
            try:
                found[child] = (Path("/proc") / str(child) / "cmdline").read_text().replace("\0", " ")
            except OSError:
                continue
            frontier.append(child)
    return found


def requests_counted(metrics: str) -> float:
    return sum(
        float(match.group(1))
        for match in re.finditer(
            r'^shepherd_slack_requests_total\{[^}]*payload="command"[^}]*\} (\S+)$', metrics, re.M
        )
    )


def test_two_http_processes_share_the_port_and_their_metrics(tmp_path: Path) -> None:
    api = FakeSlackWebAPI()
    api.state.add_user(USER, "olivia")
    with api:
        registry = api.state.add_channel("ai-initiatives", members=[USER])
        port = free_port()
        env = serve_env(tmp_path, api, registry.id)
        shared = tmp_path / "metrics"
        (shared / "counter_1.db").parent.mkdir()
        (shared / "counter_1.db").write_bytes(b"stale")  # from an earlier run: must be wiped
        env["PROMETHEUS_MULTIPROC_DIR"] = str(shared)
        log = tmp_path / "serve.log"
        with log.open("w") as log_file:
            server = subprocess.Popen(
                [sys.executable, "-m", "bot.cli", "serve", "--port", str(port), "--processes", "2"],
                cwd=tmp_path,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log_file,
            )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120  # every process imports the whole stack first
            healthy = False
            while time.monotonic() < deadline and server.poll() is None and not healthy:
                with contextlib.suppress(httpx.HTTPError):
                    healthy = httpx.get(base + "/healthz", timeout=2).status_code == 200
                time.sleep(0.2)
            assert healthy, "shepherd serve --processes 2 never answered /healthz"
            # Both HTTP processes come up (each builds its app), plus the inbox and delivery workers.
            while (
                time.monotonic() < deadline
                and sum("spawn_main" in c for c in descendants(server.pid).values()) < 2
            ):
                time.sleep(0.2)
            commands = descendants(server.pid)
            assert sum("spawn_main" in c for c in commands.values()) == 2, commands
            assert sum("bot.worker" in c for c in commands.values()) == 2, commands

            slack = SlackClient(base + "/slack/events", SIGNING_SECRET)
            sent = 0
            # Until both HTTP processes have answered some (the kernel spreads connections), for
            # a minute at most: on a loaded machine the second may still be importing the stack.
            spread = time.monotonic() + 60
            while sent < 30 or (len(served_by_process(shared)) < 2 and time.monotonic() < spread):
                response = slack.send(
                    payloads.slash_command(ids.COMMAND, "help", user_id=USER, channel_id=registry.id)
                )
                assert response.status == 200
                assert "/shepherd new" in response.text
                sent += 1
            served = served_by_process(shared)
            assert len(served) == 2 and sum(served.values()) == sent, served
            # Whichever process answers the scrape, it counts the requests every process served.
            for _ in range(5):
                assert requests_counted(httpx.get(base + "/metrics", timeout=5).text) == sent
            forged = httpx.post(
                base + "/slack/events",
                content=b"command=%2Fshepherd&text=help",
                headers={"X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": "v0=bad"},
                timeout=5,
            )
            assert forged.status_code == 401
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        errors = log.read_text()
        assert "Traceback" not in errors, errors
        # Stopping the server stops the HTTP processes and the workers it started.
        started = [
            pid for pid, command in commands.items() if "spawn_main" in command or "bot.worker" in command
        ]
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(alive(pid) for pid in started):
            time.sleep(0.2)
        assert not [pid for pid in started if alive(pid)]
        assert not (shared / "counter_1.db").exists() or (shared / "counter_1.db").read_bytes() != b"stale"


def served_by_process(shared: Path) -> dict[str, float]:
    """Slash commands each process counted, from its own prometheus_client multiprocess file."""
    from prometheus_client.multiprocess import MultiProcessCollector

    served = {}
    for path in shared.glob("counter_*.db"):
        total = sum(
            sample.value
            for metric in MultiProcessCollector.merge([str(path)], accumulate=True)
            if metric.name == "shepherd_slack_requests"
            for sample in metric.samples
            if sample.name.endswith("_total") and sample.labels.get("payload") == "command"
        )
        if total:
            served[path.stem] = total
    return served


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
