"""Test support: real processes (serf agents, the clusterm daemon) on loopback with
free ports, owned by the test and killed by process group even when a test fails."""

import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
START_TIMEOUT = 120.0


def require_binary(binary, package):
    """Fails (never skips) naming the Debian package when `binary` is missing."""
    path = shutil.which(binary)
    if path is None:
        pytest.fail(f"`{binary}` not found on PATH: install it with `apt-get install -y {package}`")
    return path


def free_port(ip):
    """A TCP port that was free on `ip` a moment ago."""
    with socket.socket() as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def loopback_ip(n):
    """A loopback address of its own per test process and agent."""
    return f"127.{16 + os.getpid() % 200}.1.{n + 2}"


class Process:
    """A child in its own process group; `stop` ends the whole group."""

    def __init__(self, name, argv, log_path, env=None):
        self.name = name
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            argv,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )

    def running(self):
        return self.proc.poll() is None

    def output(self):
        self.log.flush()
        return pathlib.Path(self.log_path).read_text(errors="replace")[-4000:]

    def stop(self, grace=10.0):
        if self.running():
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.log.close()


def wait_for(check, what, proc=None, timeout=START_TIMEOUT):
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if proc is not None and not proc.running():
            pytest.fail(f"{proc.name} exited while waiting for {what}:\n{proc.output()}")
        if time.monotonic() > deadline:
            tail = proc.output() if proc is not None else ""
            pytest.fail(f"{what} not reached within {timeout} s\n{tail}")
        time.sleep(0.05)


def eventually(check, timeout=60.0, what="condition"):
    """Polls `check` until it returns a truthy value, which it returns."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(0.02)


def tcp_open(addr):
    host, port = addr.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


def daemon_binary():
    """The clusterm daemon: $CLUSTERM_DAEMON_BIN, else built with cargo."""
    given = os.environ.get("CLUSTERM_DAEMON_BIN")
    if given:
        if not os.access(given, os.X_OK):
            pytest.fail(f"CLUSTERM_DAEMON_BIN={given} is not an executable")
        return given
    cargo = require_binary("cargo", "cargo")
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    build = subprocess.run(
        [cargo, "build", "-p", "clusterm-examples", "--bin", "clusterm"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if build.returncode != 0:
        pytest.fail(f"cannot build the clusterm daemon:\n{build.stderr[-4000:]}")
    path = target / "debug" / "clusterm"
    if not path.is_file():
        pytest.fail(f"the daemon build did not produce {path}")
    return str(path)


class Daemon:
    """A clusterm daemon (redb store, Serf discovery, a push) and its serf agents."""

    TOKEN = "py-test-token"

    def __init__(self, tmp):
        self.tmp = tmp
        self.agents = []
        self.proc = None
        self.ip = "127.0.0.1"
        self.port = free_port(self.ip)
        self.url = f"http://{self.ip}:{self.port}"

    def start(self, node_names, push_toml=('[push]', 'name = "noop"')):
        """Starts one agent per name and the daemon; `push_toml` is the push section."""
        require_binary("serf", "serf")
        binary = daemon_binary()
        first_gossip = None
        rpc_addr = None
        for i, name in enumerate(node_names):
            ip = loopback_ip(i)
            gossip = f"{ip}:{free_port(ip)}"
            rpc = f"{ip}:{free_port(ip)}"
            argv = ["serf", "agent", f"-node={name}", f"-bind={gossip}", f"-rpc-addr={rpc}", "-profile=local"]
            if first_gossip is not None:
                argv += [f"-retry-join={first_gossip}", "-retry-interval=1s"]
            agent = Process(f"serf {name}", argv, self.tmp / f"serf-{name}.log")
            self.agents.append(agent)
            wait_for(lambda: tcp_open(rpc), f"serf {name} RPC", agent)
            first_gossip = first_gossip or gossip
            rpc_addr = rpc_addr or rpc
        data = self.tmp / "data"
        config = self.tmp / "clusterm.toml"
        config.write_text(
            "\n".join(
                [
                    f"data_dir = {json.dumps(str(data))}",
                    "[api]",
                    f'listen = "{self.ip}:{self.port}"',
                    f'token = "{self.TOKEN}"',
                    "[store]",
                    'name = "redb"',
                    "[discovery]",
                    'name = "serf"',
                    "[discovery.config]",
                    f'rpc_addr = "{rpc_addr}"',
                    *push_toml,
                    "",
                ]
            )
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLUSTERM_")}
        self.proc = Process("clusterm daemon", [binary, "--config", str(config)], self.tmp / "daemon.log", env=env)
        wait_for(self.healthy, "daemon /healthz", self.proc)

    def healthy(self):
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def stop(self):
        for p in [self.proc] + self.agents:
            if p is not None:
                p.stop()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    d = Daemon(tmp_path_factory.mktemp("daemon"))
    try:
        d.start(["n1", "n2", "n3"])
        yield d
    finally:
        d.stop()
