"""Figures for the Python binding, printed as `name value unit` lines.

    python bench/bench.py [NODES]

Embedded manager on a redb store in a temp dir: discovering and commissioning NODES
nodes (no-op push) from Python, listing them as Python objects, the inventory
document, and the round trip of a job through a Python push.
"""

import sys
import tempfile
import time

import clusterm


def timed(name, fn, unit="ms", per=1):
    start = time.perf_counter()
    result = fn()
    elapsed = (time.perf_counter() - start) * 1000.0 / per
    print(f"{name} {elapsed:.3f} {unit}", flush=True)
    return result


class PythonPush:
    def run(self, job):
        return None


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    with tempfile.TemporaryDirectory() as tmp:
        with clusterm.Manager(tmp, config={"log_dir": None}) as m:

            def discover():
                for i in range(n):
                    m.membership(clusterm.MembershipKind.Joined, clusterm.Member(f"node-{i:06}", f"10.{i // 65536}.{i // 256 % 256}.{i % 256}"))
                m.settle()

            timed(f"py_manager_discover_{n}", discover)
            names = [f"node-{i:06}" for i in range(n)]
            job = timed(f"py_manager_commission_accept_{n}", lambda: m.commission(names, "service-worker"))
            done = timed(f"py_manager_commission_wait_{n}", lambda: m.wait_job(job, timeout=600))
            assert done.status == clusterm.JobStatus.Complete, done.error
            nodes = timed(f"py_manager_nodes_{n}", m.nodes)
            assert len(nodes) == n
            timed(f"py_manager_node_get", lambda: [m.node(names[i % n]) for i in range(10_000)], unit="us", per=10)
            timed(f"py_inventory_{n}", m.ansible_inventory)

    with clusterm.Manager(push=PythonPush()) as m:
        m.membership(clusterm.MembershipKind.Joined, clusterm.Member("p1", "10.0.0.1"))
        m.settle()
        m.wait_job(m.commission("p1", "service-master"), timeout=60)
        rounds = 100

        def jobs():
            for _ in range(rounds):
                m.wait_job(m.upgrade("p1"), timeout=60)

        timed("py_push_job_roundtrip", jobs, per=rounds)


if __name__ == "__main__":
    main()
