"""The embedded Manager driven from Python: memory and redb stores, Python pushes and
discovery sources, job logs, cancellation, and the inventory it exports."""

import datetime
import threading

import pytest

import clusterm
from clusterm import MembershipKind, Member, NodeStatus, JobStatus
from conftest import eventually

WAIT = 60.0


class RecordingPush:
    """Remembers every job it is given; hosts listed in `fail` fail with a reason."""

    name = "recording"

    def __init__(self, fail=None):
        self.jobs = []
        self.fail = dict(fail or {})

    def run(self, job):
        self.jobs.append(
            {
                "job": job.job,
                "action": job.action,
                "hosts": [(h.name, h.addr, h.group, h.vars) for h in job.hosts],
            }
        )
        job.log(f"python push {job.action} on {len(job.hosts)} host(s)")
        return {h.name: self.fail.get(h.name, True) for h in job.hosts}


def join(manager, *names, tags=None):
    for i, name in enumerate(names):
        manager.membership(
            MembershipKind.Joined, Member(name, f"10.0.0.{i + 1}", serial=f"SN{i}", tags=tags or {})
        )
    manager.settle()


@pytest.fixture
def push():
    return RecordingPush()


@pytest.fixture
def manager(push):
    with clusterm.Manager(push=push) as m:
        yield m


def test_discovered_nodes_are_typed(manager):
    join(manager, "n1", "n2", tags={"rack": "r1"})
    nodes = manager.nodes()
    assert [n.name for n in nodes] == ["n1", "n2"]
    assert [n.name for n in manager.nodes(status=NodeStatus.Discovered)] == ["n1", "n2"]
    assert manager.nodes(status=NodeStatus.Failed) == []
    assert manager.node_events("n1")[0].kind == "created"
    with pytest.raises(clusterm.NotFound):
        manager.node_events("ghost")
    n1 = manager.node("n1")
    assert n1.status == NodeStatus.Discovered
    assert str(n1.status) == "Discovered"
    assert NodeStatus.parse("Discovered") == n1.status
    assert n1.addr == "10.0.0.1" and n1.serial == "SN0"
    assert n1.tags == {"rack": "r1"}
    assert n1.reachable and n1.reachability == "reachable"
    assert n1.unreachable_since is None
    assert n1.host_group is None and n1.vars == {} and n1.error is None
    assert n1.revision > 0
    assert isinstance(n1.updated_at, datetime.datetime) and n1.updated_at.tzinfo is not None
    d = n1.to_dict()
    assert d["name"] == "n1" and d["status"] == "Discovered"
    assert n1 == manager.node("n1")
    assert "n1" in repr(n1)


def test_commission_one_merges_vars_and_logs_from_python(manager, push):
    join(manager, "n1")
    manager.set_globals({"ntp": "pool", "deep": {"a": 1, "b": 1}})
    assert manager.globals() == {"ntp": "pool", "deep": {"a": 1, "b": 1}}
    node = manager.set_node_vars("n1", {"deep": {"b": 2}, "disk": "/dev/sdb"})
    assert node.vars == {"deep": {"b": 2}, "disk": "/dev/sdb"}

    job_id = manager.commission("n1", "service-master", {"deep": {"c": 3}, "flag": True})
    job = manager.wait_job(job_id, timeout=WAIT)
    assert job.status == JobStatus.Complete and job.finished
    assert job.kind == clusterm.JobKind.Commission
    assert job.nodes == ["n1"] and job.host_group == "service-master"
    assert job.failed == {} and job.error is None
    assert job.ended_at >= job.created_at

    [run] = push.jobs
    assert run["action"] == "provision" and run["job"] == job_id
    [(name, addr, group, merged)] = run["hosts"]
    assert (name, addr, group) == ("n1", "10.0.0.1", "service-master")
    assert merged["ntp"] == "pool" and merged["disk"] == "/dev/sdb" and merged["flag"] is True
    assert merged["deep"] == {"a": 1, "b": 2, "c": 3}

    n1 = manager.node("n1")
    assert n1.status == NodeStatus.Commissioned and n1.host_group == "service-master"
    assert n1.last_job == job_id
    lines = list(manager.job_logs(job_id))
    assert "python push provision on 1 host(s)" in lines
    assert manager.last_job().id == job_id
    assert manager.active_job() is None
    assert [j.id for j in manager.jobs()] == [job_id]
    assert manager.job(job_id) == job


def test_batch_decommission_and_rolling_upgrade(manager, push):
    join(manager, "a", "b", "c")
    job = manager.wait_job(manager.commission(["a", "b", "c"], "service-worker"), timeout=WAIT)
    assert job.status == JobStatus.Complete and job.nodes == ["a", "b", "c"]
    assert [n.status for n in manager.nodes()] == [NodeStatus.Commissioned] * 3

    up = manager.wait_job(manager.upgrade(["a", "b"], batch_size=1, max_failures=0), timeout=WAIT)
    assert up.status == JobStatus.Complete
    assert up.batch_size == 1 and up.max_failures == 0
    upgrades = [r for r in push.jobs if r["action"] == "upgrade"]
    assert [[h[0] for h in r["hosts"]] for r in upgrades] == [["a"], ["b"]]
    assert manager.node("a").status == NodeStatus.Upgraded

    down = manager.wait_job(manager.decommission(["a", "c"], {"wipe": True}), timeout=WAIT)
    assert down.status == JobStatus.Complete
    cleanup = [r for r in push.jobs if r["action"] == "cleanup"]
    assert sorted(h[0] for h in cleanup[0]["hosts"]) == ["a", "c"]
    assert cleanup[0]["hosts"][0][3]["wipe"] is True
    assert manager.node("a").status == NodeStatus.Decommissioned
    assert manager.node("b").status == NodeStatus.Upgraded


def test_python_push_failures_fail_their_nodes():
    push = RecordingPush(fail={"bad": "disk full", "worse": False})
    with clusterm.Manager(push=push) as m:
        join(m, "good", "bad", "worse")
        job = m.wait_job(m.commission(["good", "bad", "worse"], "service-worker"), timeout=WAIT)
        assert job.status == JobStatus.Errored
        assert set(job.failed) == {"bad", "worse"}
        assert "disk full" in job.failed["bad"]
        assert m.node("good").status == NodeStatus.Commissioned
        bad = m.node("bad")
        assert bad.status == NodeStatus.Failed and "disk full" in bad.error


def test_python_push_exception_fails_every_host():
    class Broken:
        def run(self, job):
            raise ValueError("inventory file missing")

    with clusterm.Manager(push=Broken()) as m:
        join(m, "n1")
        job = m.wait_job(m.commission("n1", "service-master"), timeout=WAIT)
        assert job.status == JobStatus.Errored
        assert "ValueError: inventory file missing" in job.failed["n1"]
        assert m.node("n1").status == NodeStatus.Failed


def test_push_object_needs_run_and_results_must_be_well_formed():
    assert isinstance(RecordingPush(), clusterm.ConfigPush)
    assert not isinstance(object(), clusterm.ConfigPush)
    with pytest.raises(TypeError, match="run"):
        clusterm.Manager(push=object())

    class Odd:
        def run(self, job):
            return {h.name: 42 for h in job.hosts}

    with clusterm.Manager(push=Odd()) as m:
        join(m, "n1")
        job = m.wait_job(m.commission("n1", "service-master"), timeout=WAIT)
        assert job.status == JobStatus.Errored
        assert "bool, str or None" in job.failed["n1"]


def test_cancel_a_running_python_push_and_follow_its_log():
    started = threading.Event()

    class Slow:
        def run(self, job):
            job.log("waiting for cancellation")
            started.set()
            cancelled = job.wait_cancelled(WAIT)
            job.log(f"cancelled={cancelled} flag={job.cancelled}")
            return None

    with clusterm.Manager(push=Slow()) as m:
        join(m, "n1", "n2")
        job_id = m.commission("n1", "service-master")
        assert started.wait(WAIT)
        assert m.active_job().id == job_id
        assert m.node("n1").status == NodeStatus.Commissioning

        with pytest.raises(clusterm.NodeBusy) as busy:
            m.commission("n1", "service-master")
        assert busy.value.code == "node_busy" and "n1" in str(busy.value)

        follower = m.job_logs(job_id, follow=True)
        first = next(follower)
        m.cancel(job_id)
        # Following ends by itself once the job has ended.
        followed = [first] + list(follower)
        assert "waiting for cancellation" in followed
        job = m.wait_job(job_id, timeout=WAIT)
        assert job.status == JobStatus.Cancelled
        assert m.node("n1").status == NodeStatus.Failed
        assert m.node("n2").status == NodeStatus.Discovered
        assert followed[: len(list(m.job_logs(job_id)))] == list(m.job_logs(job_id))[: len(followed)]

        with pytest.raises(clusterm.JobStateError) as finished:
            m.cancel(job_id)
        assert finished.value.code == "job_state"


def test_blocking_calls_release_the_gil():
    """The push waits for a Python timer thread; both need the GIL while the main
    thread is blocked in wait_job, so holding it there would end in TimeoutError."""
    gate = threading.Event()

    class Gated:
        def run(self, job):
            if not gate.wait(WAIT):
                return {h.name: "gate never opened" for h in job.hosts}
            return None

    with clusterm.Manager(push=Gated()) as m:
        join(m, "n1")
        job_id = m.commission("n1", "service-master")
        with pytest.raises(TimeoutError):
            m.wait_job(job_id, timeout=0.0)
        threading.Timer(0.05, gate.set).start()
        assert m.wait_job(job_id, timeout=WAIT).status == JobStatus.Complete


def test_errors_map_to_exception_classes(manager):
    join(manager, "n1")
    with pytest.raises(clusterm.NotFound) as e:
        manager.node("ghost")
    assert e.value.code == "not_found" and "ghost" in e.value.message
    assert isinstance(e.value, clusterm.ClustermError)
    with pytest.raises(clusterm.NotFound):
        manager.job(4242)
    with pytest.raises(clusterm.IllegalTransition) as e:
        manager.decommission("n1")
    assert e.value.code == "illegal_transition" and "n1" in str(e.value)
    with pytest.raises(clusterm.InvalidInput) as e:
        manager.commission("n1", "no-such-group")
    assert e.value.code == "invalid_input"
    with pytest.raises(clusterm.InvalidInput):
        manager.commission("n1", "service-master", ["not", "an", "object"])
    with pytest.raises(clusterm.InvalidInput):
        manager.commission([], "service-master")
    with pytest.raises(clusterm.InvalidInput):
        manager.upgrade("n1", max_failures=1)
    with pytest.raises(clusterm.InvalidInput):
        manager.set_globals([1, 2])
    with pytest.raises(clusterm.InvalidInput):
        manager.discover(["not an address!"])
    with pytest.raises(TypeError):
        manager.set_globals({"x": object()})
    with pytest.raises(TypeError):
        manager.set_globals({1: "int key"})
    assert manager.node("n1").status == NodeStatus.Discovered
    assert manager.jobs() == []
    assert clusterm.NotFound.code == "not_found"
    assert clusterm.IllegalTransition.code == "illegal_transition"


def test_config_dict_and_config_errors():
    config = {"host_groups": {"master": "masters", "worker": "workers"}, "job_timeout": 30}
    with clusterm.Manager(config=config) as m:
        join(m, "n1")
        with pytest.raises(clusterm.InvalidInput):
            m.commission("n1", "service-master")
        job = m.wait_job(m.commission("n1", "masters"), timeout=WAIT)
        assert job.status == JobStatus.Complete
    with pytest.raises(clusterm.ConfigError) as e:
        clusterm.Manager(config={"no_such_setting": 1})
    assert e.value.code == "config"


def test_redb_store_survives_a_restart(tmp_path, push):
    with clusterm.Manager(str(tmp_path), push=push) as m:
        join(m, "n1", "n2")
        job_id = m.commission("n1", "service-master")
        m.wait_job(job_id, timeout=WAIT)
        m.set_globals({"kept": True})
    with clusterm.Manager(str(tmp_path)) as m:
        assert m.node("n1").status == NodeStatus.Commissioned
        assert m.node("n2").status == NodeStatus.Discovered
        assert m.job(job_id).status == JobStatus.Complete
        assert m.globals() == {"kept": True}
        spilled = (tmp_path / "logs" / f"job-{job_id}.log").read_text()
        assert "python push provision on 1 host(s)" in spilled
        assert list(m.job_logs(job_id)) == spilled.splitlines()
        kinds = [(e.kind, e.to) for e in m.events("n1")]
        assert ("created", "Discovered") in kinds and ("status", "Commissioned") in kinds
        everyone = m.events(after=0, limit=1000)
        assert {e.node for e in everyone} >= {"n1", "n2"}
        assert [e.seq for e in everyone] == sorted(e.seq for e in everyone)


def test_python_discovery_source_and_enroll(push):
    class Fleet:
        poll_interval = 0.05

        def __init__(self):
            self.members_now = [Member("d1", "10.1.0.1"), Member("d2", "10.1.0.2")]
            self.enrolled = []

        def members(self):
            return list(self.members_now)

        def enroll(self, addrs, vars):
            self.enrolled.append((list(addrs), dict(vars)))
            return {"serf_join": "10.1.0.1"}

    fleet = Fleet()
    with clusterm.Manager(push=push, discovery=fleet) as m:
        eventually(lambda: len(m.nodes()) == 2, what="two discovered nodes")
        fleet.members_now = [
            Member("d1", "10.1.0.1", status=clusterm.MemberStatus.Failed),
            Member("d2", "10.1.0.2"),
            Member("d3", "10.1.0.3", tags={"role": "db"}),
        ]
        eventually(lambda: m.node("d1").reachability == "unreachable", what="d1 unreachable")
        assert m.node("d1").unreachable_since is not None
        eventually(lambda: [n.name for n in m.nodes()] == ["d1", "d2", "d3"], what="d3 joined")
        assert m.node("d3").tags == {"role": "db"}

        job = m.wait_job(m.discover(["10.1.0.9"], {"agent": "serf"}), timeout=WAIT)
        assert job.kind == clusterm.JobKind.Discover and job.status == JobStatus.Complete
        assert fleet.enrolled == [(["10.1.0.9"], {"agent": "serf"})]
        discover_run = [r for r in push.jobs if r["action"] == "discover"][0]
        assert discover_run["hosts"][0][3]["serf_join"] == "10.1.0.1"
        assert m.node("10.1.0.9").status == NodeStatus.New

    with pytest.raises(TypeError, match="members"):
        clusterm.Manager(discovery=object())


def test_manager_inventory(manager):
    join(manager, "m1", "w1", "idle")
    manager.set_globals({"cluster_name": "c1"})
    manager.set_node_vars("w1", {"ansible_user": "ops"})
    manager.wait_job(manager.commission("m1", "service-master"), timeout=WAIT)
    manager.wait_job(manager.commission("w1", "service-worker"), timeout=WAIT)
    inv = manager.ansible_inventory()
    assert inv["service-master"]["hosts"] == ["m1"]
    assert inv["service-worker"]["hosts"] == ["w1"]
    assert inv["status_commissioned"]["hosts"] == ["m1", "w1"]
    assert inv["status_discovered"]["hosts"] == ["idle"]
    assert inv["all"]["vars"] == {"cluster_name": "c1"}
    hv = inv["_meta"]["hostvars"]["w1"]
    assert hv["ansible_host"] == "10.0.0.2" and hv["ansible_user"] == "ops"
    assert hv["clusterm_status"] == "Commissioned" and hv["clusterm_host_group"] == "service-worker"
    assert clusterm.ansible_host_vars(manager.node("w1")) == hv
    assert clusterm.ansible_inventory(manager.nodes(), manager.globals()) == inv


def test_shutdown_refuses_new_work(push):
    m = clusterm.Manager(push=push)
    join(m, "n1")
    m.shutdown()
    with pytest.raises(clusterm.ShutdownError) as e:
        m.membership(MembershipKind.Joined, Member("n2", "10.0.0.2"))
    assert e.value.code == "shutdown"


def test_watch_events_follows_the_audit_log(manager):
    join(manager, "n1", "n2")
    stream = manager.watch_events(after=0, node="n1")
    first = next(stream)
    assert first.node == "n1" and first.kind == "created"
    got = []
    follower = threading.Thread(target=lambda: got.extend(next(stream) for _ in range(2)))
    follower.start()
    manager.wait_job(manager.commission("n1", "service-master"), timeout=WAIT)
    follower.join(WAIT)
    assert [(e.kind, e.to) for e in got] == [("status", "Commissioning"), ("status", "Commissioned")]
    assert all(e.seq > first.seq for e in got)
    everyone = manager.watch_events()
    assert {next(everyone).node for _ in range(2)} == {"n1", "n2"}
    with pytest.raises(clusterm.NotFound):
        manager.watch_events(node="ghost")

    async def read_async():
        return await manager.watch_events(node="n2").__anext__()

    import asyncio

    assert asyncio.run(read_async()).node == "n2"


def test_a_dropped_manager_releases_its_store(tmp_path):
    import gc

    m = clusterm.Manager(str(tmp_path))
    join(m, "kept")
    del m
    gc.collect()

    def reopen():
        try:
            return clusterm.Manager(str(tmp_path))
        except clusterm.StoreError:
            return None

    again = eventually(reopen, what="the store to be released")
    with again:
        assert again.node("kept").status == NodeStatus.Discovered
