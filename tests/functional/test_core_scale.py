"""200 launchers (simulated nodes in one launcher process, each its own TLS session,
node UUID and state) behind a real scheduler and controller."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from sqlalchemy import func, select

from ciaostack.core.controller import operations, states
from ciaostack.core.db.models import ComputeNode, Instance
from ciaostack.core.db.session import Database
from tests.support.core import Process, core_env, free_port, prepare, wait_until

NODES = 200
INSTANCES = 400


def test_200_launchers_share_the_work(tmp_path: Path, database_url_factory) -> None:  # noqa: ANN001
    url = database_url_factory()
    env = core_env(
        tmp_path,
        url,
        free_port(),
        CIAOSTACK_LAUNCHER__STATE_FSYNC="false",
        CIAOSTACK_LAUNCHER__STATS_INTERVAL="30",
        CIAOSTACK_SSNTP__HEARTBEAT="5",
    )
    prepare(env)
    db = Database(url)
    procs = [
        Process("scheduler", ["scheduler"], env, tmp_path).start(),
        Process("controller", ["controller"], env, tmp_path).start(),
        Process(
            "launchers",
            [
                "launcher",
                "--simulate",
                str(NODES),
                "--state-dir",
                str(tmp_path / "nodes"),
                "--hostname",
                "sim",
            ],
            env,
            tmp_path,
        ).start(),
    ]
    try:

        def connected() -> int:
            with db.session(readonly=True) as s:
                return s.scalar(
                    select(func.count())
                    .select_from(ComputeNode)
                    .where(ComputeNode.connected.is_(True))
                )

        wait_until(
            lambda: connected() == NODES, timeout=120, interval=0.5, what=f"{NODES} nodes connected"
        )
        with db.session() as s:
            operations.create_instances(
                s,
                operations.InstanceSpec(
                    project_id="p", user_id="u", name="vm", image_id="img", mem_mb=256, vcpus=1
                ),
                count=INSTANCES,
            )

        def states_now() -> Counter:
            with db.session(readonly=True) as s:
                return Counter(
                    dict(
                        s.execute(
                            select(Instance.vm_state, func.count()).group_by(Instance.vm_state)
                        ).all()
                    )
                )

        wait_until(
            lambda: states_now()[states.ACTIVE] == INSTANCES,
            timeout=120,
            interval=0.5,
            what="every instance ACTIVE",
        )
        with db.session(readonly=True) as s:
            per_node = Counter(s.scalars(select(Instance.node_uuid)))
        # Round robin over identical nodes: every node got exactly its share.
        assert len(per_node) == NODES
        assert set(per_node.values()) == {INSTANCES // NODES}
        for proc in procs:
            assert proc.alive(), proc.text()[-3000:]
    finally:
        for proc in procs:
            proc.stop()
        db.dispose()
    for proc in procs:
        assert "Traceback" not in proc.text(), f"{proc.name}:\n{proc.text()[-4000:]}"
