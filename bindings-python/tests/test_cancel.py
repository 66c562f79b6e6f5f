"""Cancelling running jobs through the daemon, blocking and async, while following
their logs: the daemon runs the `command` push with an upgrade that never finishes."""

import asyncio
import threading
import time

import pytest

import clusterm
from clusterm import JobStatus, NodeStatus
from conftest import Daemon

WAIT = 60.0
STARTED = "upgrade started"

PUSH = (
    "[push]",
    'name = "command"',
    "[push.config]",
    "kill_grace_secs = 1.0",
    "[push.config.commands]",
    'provision = ["true"]',
    'cleanup = ["true"]',
    'discover = ["true"]',
    'verify = ["true"]',
    f'upgrade = ["sh", "-c", "echo {STARTED}; exec sleep 600"]',
)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    d = Daemon(tmp_path_factory.mktemp("cancel-daemon"))
    try:
        d.start(["c1", "c2"], push_toml=PUSH)
        c = clusterm.Client(d.url, token=d.TOKEN)
        deadline = time.monotonic() + WAIT
        while len(c.nodes()) < 2:
            assert time.monotonic() < deadline, "serf members never reached the inventory"
            time.sleep(0.05)
        job = c.wait_job(c.commission(["c1", "c2"], "service-worker"), timeout=WAIT)
        assert job.status == JobStatus.Complete, job.failed
        yield c
    finally:
        d.stop()


def test_cancel_while_a_thread_follows_the_log(client):
    job_id = client.upgrade("c1")
    lines = []
    started = threading.Event()

    def follow():
        # Blocks in the client (GIL released) until the job ends.
        for line in client.job_logs(job_id, follow=True):
            lines.append(line)
            if STARTED in line:
                started.set()

    follower = threading.Thread(target=follow)
    follower.start()
    try:
        assert started.wait(WAIT), f"upgrade never started: {lines}"
        active = client.active_job()
        assert active is not None and active.id == job_id and active.status == JobStatus.Running
        assert client.node("c1").status == NodeStatus.Upgrading
        with pytest.raises(clusterm.NodeBusy):
            client.upgrade("c1")
        assert client.cancel(job_id) is None
    finally:
        follower.join(WAIT)
    assert not follower.is_alive(), "following did not end with the job"
    job = client.wait_job(job_id, timeout=WAIT)
    assert job.status == JobStatus.Cancelled
    assert client.node("c1").status == NodeStatus.Failed
    assert any(STARTED in l for l in lines)
    with pytest.raises(clusterm.JobStateError):
        client.cancel(job_id)


def test_async_cancel(client, tmp_path):
    async def main():
        ac = clusterm.AsyncClient(client.url, token=Daemon.TOKEN)
        job_id = await ac.upgrade(["c2"], batch_size=1)
        async for line in ac.job_logs(job_id, follow=True):
            if STARTED in line:
                break
        assert (await ac.active_job()).id == job_id
        await ac.cancel(job_id)
        job = await ac.wait_job(job_id, timeout=WAIT)
        assert job.status == JobStatus.Cancelled
        assert (await ac.node("c2")).status == NodeStatus.Failed
        # A failed node may be commissioned again.
        again = await ac.wait_job(await ac.commission("c2", "service-worker"), timeout=WAIT)
        assert again.status == JobStatus.Complete

    asyncio.run(main())
