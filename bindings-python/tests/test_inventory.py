"""`python -m clusterm.ansible_inventory` against a daemon, read back by Ansible's own
`ansible-inventory` so the JSON is checked by the consumer it is written for."""

import json
import os
import subprocess
import sys
import time

import pytest

import clusterm
from conftest import require_binary

WAIT = 60.0


@pytest.fixture(scope="module")
def fleet(daemon):
    c = clusterm.Client(daemon.url, token=daemon.TOKEN)
    deadline = time.monotonic() + WAIT
    while len(c.nodes()) < 3:
        assert time.monotonic() < deadline, "serf members never reached the inventory"
        time.sleep(0.05)
    c.set_globals({"ntp_server": "pool.ntp.org"})
    c.wait_job(c.commission("n1", "service-master"), timeout=WAIT)
    c.wait_job(c.commission(["n2"], "service-worker"), timeout=WAIT)
    return c


def script(daemon, *args, env_only=False):
    argv = [sys.executable, "-m", "clusterm.ansible_inventory", *args]
    env = dict(os.environ)
    if env_only:
        env.update(CLUSTERM_URL=daemon.url, CLUSTERM_TOKEN=daemon.TOKEN)
    else:
        argv += ["--url", daemon.url, "--token", daemon.TOKEN]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=WAIT)


def test_list_groups_by_host_group_and_status(daemon, fleet):
    out = script(daemon, "--list")
    assert out.returncode == 0, out.stderr
    inv = json.loads(out.stdout)
    assert inv["service-master"] == {"hosts": ["n1"]}
    assert inv["service-worker"] == {"hosts": ["n2"]}
    assert inv["status_commissioned"] == {"hosts": ["n1", "n2"]}
    assert inv["status_discovered"] == {"hosts": ["n3"]}
    assert inv["all"]["vars"] == {"ntp_server": "pool.ntp.org"}
    assert sorted(inv["all"]["children"]) == sorted(k for k in inv if k not in ("all", "_meta"))
    n1 = inv["_meta"]["hostvars"]["n1"]
    assert n1["ansible_host"] == fleet.node("n1").addr
    assert n1["clusterm_status"] == "Commissioned" and n1["clusterm_host_group"] == "service-master"
    assert inv == fleet.ansible_inventory()


def test_host_and_errors(daemon, fleet):
    out = script(daemon, "--host", "n2", env_only=True)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == clusterm.ansible_host_vars(fleet.node("n2"))
    missing = script(daemon, "--host", "ghost")
    assert missing.returncode == 1 and "ghost" in missing.stderr
    assert script(daemon).returncode == 2  # --list or --host is required
    refused = subprocess.run(
        [sys.executable, "-m", "clusterm.ansible_inventory", "--url", daemon.url, "--list"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "CLUSTERM_TOKEN"},
        timeout=WAIT,
    )
    assert refused.returncode == 1 and "token" in refused.stderr


def test_ansible_inventory_reads_the_script(daemon, fleet, tmp_path):
    ansible_inventory = require_binary("ansible-inventory", "ansible-core")
    wrapper = tmp_path / "clusterm_inventory.py"
    wrapper.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        "from clusterm.ansible_inventory import main\n"
        "sys.exit(main())\n"
    )
    wrapper.chmod(0o755)
    env = dict(os.environ)
    env.update(
        CLUSTERM_URL=daemon.url,
        CLUSTERM_TOKEN=daemon.TOKEN,
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"),
        ANSIBLE_HOME=str(tmp_path / "ansible-home"),
        ANSIBLE_INVENTORY_UNPARSED_FAILED="true",
    )
    out = subprocess.run(
        [ansible_inventory, "-i", str(wrapper), "--list"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    inv = json.loads(out.stdout)
    assert inv["service-master"]["hosts"] == ["n1"]
    assert inv["service-worker"]["hosts"] == ["n2"]
    assert sorted(inv["status_commissioned"]["hosts"]) == ["n1", "n2"]
    assert inv["status_discovered"]["hosts"] == ["n3"]
    hostvars = inv["_meta"]["hostvars"]
    assert set(hostvars) == {"n1", "n2", "n3"}
    assert hostvars["n1"]["ansible_host"] == fleet.node("n1").addr
    assert hostvars["n1"]["clusterm_status"] == "Commissioned"
    assert hostvars["n1"]["ntp_server"] == "pool.ntp.org"

    one = subprocess.run(
        [ansible_inventory, "-i", str(wrapper), "--host", "n2"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert one.returncode == 0, one.stderr
    assert json.loads(one.stdout)["clusterm_host_group"] == "service-worker"
