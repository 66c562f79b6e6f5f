"""Client and AsyncClient against a real clusterm daemon (redb store, Serf discovery
with real agents, no-op push) started by the test on loopback."""

import asyncio

import pytest

import clusterm
from clusterm import JobStatus, NodeStatus
from conftest import eventually

WAIT = 60.0


@pytest.fixture(scope="module")
def client(daemon):
    c = clusterm.Client(daemon.url, token=daemon.TOKEN)
    eventually(lambda: len(c.nodes()) == 3, what="three serf members in the inventory")
    return c


def test_reads(client):
    nodes = client.nodes()
    assert [n.name for n in nodes] == ["n1", "n2", "n3"]
    assert all(n.status == NodeStatus.Discovered and n.reachable for n in nodes)
    assert all(n.addr.startswith("127.") for n in nodes)
    assert [n.name for n in client.nodes(status=NodeStatus.Discovered)] == ["n1", "n2", "n3"]
    assert client.nodes(status=NodeStatus.Commissioned) == []
    n1 = client.node("n1")
    assert n1 == nodes[0] or n1.revision >= nodes[0].revision
    assert n1.to_dict()["name"] == "n1"
    events = client.node_events("n1")
    assert events[0].node == "n1" and events[0].kind == "created" and events[0].to == "Discovered"
    assert client.node_events("n1", after=events[-1].seq) == []
    cluster = client.cluster()
    assert cluster.state == clusterm.ClusterState.Empty and cluster.backend == ""
    assert client.globals() == {}
    assert client.set_globals({"ntp": "pool.ntp.org", "n": [1, 2]}) is None
    assert client.globals() == {"ntp": "pool.ntp.org", "n": [1, 2]}
    assert client.jobs() == []
    assert client.active_job() is None and client.last_job() is None
    assert client.url.startswith(f"http://")
    assert "Client" in repr(client)


def test_lifecycle(client):
    one = client.commission("n1", "service-master", {"x": 1})
    job = client.wait_job(one, timeout=WAIT)
    assert job.status == JobStatus.Complete and job.nodes == ["n1"]
    assert job.host_group == "service-master" and job.kind == clusterm.JobKind.Commission
    assert client.node("n1").status == NodeStatus.Commissioned

    many = client.commission(["n2", "n3"], "service-worker")
    assert client.wait_job(many, timeout=WAIT).nodes == ["n2", "n3"]
    assert [n.status for n in client.nodes()] == [NodeStatus.Commissioned] * 3

    roll = client.upgrade(["n2", "n3"], batch_size=1, max_failures=1)
    rolled = client.wait_job(roll, timeout=WAIT)
    assert rolled.status == JobStatus.Complete
    assert (rolled.batch_size, rolled.max_failures) == (1, 1)
    single = client.wait_job(client.upgrade("n1", extra_vars={"version": "2"}), timeout=WAIT)
    assert single.kind == clusterm.JobKind.Upgrade and single.nodes == ["n1"]
    assert client.node("n1").status == NodeStatus.Upgraded

    assert client.wait_job(client.decommission("n3", {"wipe": True}), timeout=WAIT).status == JobStatus.Complete
    assert client.wait_job(client.decommission(["n2"]), timeout=WAIT).status == JobStatus.Complete
    assert client.node("n3").status == NodeStatus.Decommissioned

    lines = list(client.job_logs(one))
    assert any("noop push" in l for l in lines), lines
    assert list(client.job_logs(one, follow=True)) == lines
    ids = [j.id for j in client.jobs()]
    assert ids == sorted(ids) and one in ids and len(ids) == 6
    assert client.last_job().id == ids[-1]
    assert client.job(one).status == JobStatus.Complete
    history = [(e.kind, e.to) for e in client.node_events("n3")]
    assert ("status", "Decommissioning") in history and ("status", "Decommissioned") in history


def test_discover_enrolls_by_address(client):
    job = client.wait_job(client.discover(["127.0.0.99"], {"serf_tags": {}}), timeout=WAIT)
    assert job.kind == clusterm.JobKind.Discover and job.nodes == ["127.0.0.99"]
    node = client.node("127.0.0.99")
    assert node.status == NodeStatus.New and node.addr == "127.0.0.99"


def test_errors_map_like_the_embedded_manager(client, daemon):
    with pytest.raises(clusterm.NotFound) as remote:
        client.node("ghost")
    with clusterm.Manager() as m:
        with pytest.raises(clusterm.NotFound) as local:
            m.node("ghost")
    assert remote.value.code == local.value.code == "not_found"
    assert remote.value.message == local.value.message
    with pytest.raises(clusterm.NotFound):
        client.job(10_000)
    with pytest.raises(clusterm.NotFound):
        client.job_logs(10_000).__next__()
    with pytest.raises(clusterm.IllegalTransition) as e:
        client.decommission("n3")
    assert "n3" in str(e.value) and e.value.code == "illegal_transition"
    with pytest.raises(clusterm.IllegalTransition):
        client.upgrade(["n2"], batch_size=1)
    with pytest.raises(clusterm.InvalidInput):
        client.commission("n3", "no-such-group")
    with pytest.raises(clusterm.InvalidInput):
        client.commission(["n3", "n3"], "service-worker")
    with pytest.raises(clusterm.InvalidInput):
        client.commission("n3", "service-worker", ["not", "an", "object"])
    with pytest.raises(clusterm.InvalidInput):
        client.set_globals(["not", "an", "object"])
    with pytest.raises(clusterm.InvalidInput):
        client.discover(["bad address!"])
    with pytest.raises(clusterm.JobStateError) as e:
        client.cancel(client.last_job().id)
    assert e.value.code == "job_state"
    with pytest.raises(clusterm.Unauthorized) as e:
        clusterm.Client(daemon.url, token="wrong").nodes()
    assert e.value.code == "unauthorized"
    with pytest.raises(clusterm.Unauthorized):
        clusterm.Client(daemon.url).cluster()
    with pytest.raises(clusterm.TransportError) as e:
        clusterm.Client(f"http://127.0.0.1:{_closed_port()}", timeout=5).nodes()
    assert e.value.code == "transport"
    with pytest.raises(clusterm.InvalidInput):
        clusterm.Client("not a url")
    with pytest.raises(ValueError):
        clusterm.Client(daemon.url, timeout=0)
    for exc in (clusterm.NotFound, clusterm.Unauthorized, clusterm.TransportError):
        assert issubclass(exc, clusterm.ClustermError)


def _closed_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_watch_events_streams_the_audit_log(client):
    stream = client.watch_events(after=0, node="n1")
    seen = [next(stream) for _ in range(3)]
    assert [e.node for e in seen] == ["n1"] * 3
    assert seen[0].kind == "created"
    assert [e.seq for e in seen] == sorted(e.seq for e in seen)


def test_async_client(daemon, client):
    async def main():
        ac = clusterm.AsyncClient(daemon.url, token=daemon.TOKEN)
        nodes, cluster, globals_ = await asyncio.gather(ac.nodes(), ac.cluster(), ac.globals())
        assert {n.name for n in nodes} >= {"n1", "n2", "n3"}
        assert globals_["ntp"] == "pool.ntp.org"
        assert isinstance(cluster, clusterm.Cluster)
        node = await ac.node("n3")
        assert node.status == NodeStatus.Decommissioned
        job_id = await ac.commission("n3", "service-worker", {"again": True})
        lines = [line async for line in ac.job_logs(job_id, follow=True)]
        job = await ac.wait_job(job_id, timeout=WAIT)
        assert job.status == JobStatus.Complete
        assert any("noop push" in l for l in lines), lines
        assert (await ac.node("n3")).status == NodeStatus.Commissioned
        assert (await ac.job(job_id)).id == job_id
        assert (await ac.last_job()).id == job_id
        assert await ac.active_job() is None
        assert len(await ac.jobs()) >= 7
        assert (await ac.node_events("n3"))[0].kind == "created"
        await ac.set_globals({"ntp": "pool.ntp.org", "n": [1, 2], "async": 1})
        assert (await ac.globals())["async"] == 1
        inv = await ac.ansible_inventory()
        assert "n3" in inv["service-worker"]["hosts"]
        with pytest.raises(clusterm.NotFound):
            await ac.node("ghost")
        with pytest.raises(clusterm.IllegalTransition):
            await ac.commission(["n3"], "service-worker")
        with pytest.raises(clusterm.Unauthorized):
            await clusterm.AsyncClient(daemon.url).nodes()
        job2 = await ac.wait_job(await ac.decommission(["n3"]), timeout=WAIT)
        assert job2.status == JobStatus.Complete
        with pytest.raises(clusterm.JobStateError):
            await ac.cancel(job2.id)
        job3 = await ac.wait_job(await ac.upgrade("n1", batch_size=1), timeout=WAIT)
        assert job3.batch_size == 1
        job4 = await ac.wait_job(await ac.discover("127.0.0.98"), timeout=WAIT)
        assert job4.nodes == ["127.0.0.98"]
        events = ac.watch_events(node="n3")
        first = await events.__anext__()
        assert first.node == "n3" and first.kind == "created"

    asyncio.run(main())
