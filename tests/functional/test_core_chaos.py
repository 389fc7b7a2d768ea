"""kill -9 of the scheduler, the controller and a launcher while hundreds of
instances start: afterwards every instance ends ACTIVE or ERROR with a fault,
none is stuck, none runs twice, and quota usage matches what exists.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import func, select

from ciaostack.core import quota
from ciaostack.core.controller import operations, states
from ciaostack.core.db.models import Instance
from ciaostack.core.db.session import Database
from tests.support.core import Process, core_env, free_port, prepare, wait_until

LAUNCHERS = 4
INSTANCES = 300


def _launcher(index: int, env: dict[str, str], home: Path) -> Process:
    return Process(
        f"launcher{index}",
        ["launcher", "--state-dir", str(home / f"node{index}"), "--hostname", f"node{index}"],
        env,
        home,
    )


def _counts(db: Database) -> Counter:
    with db.session(readonly=True) as s:
        rows = s.execute(select(Instance.vm_state, func.count()).group_by(Instance.vm_state))
        return Counter(dict(rows.all()))


def _running_copies(home: Path) -> Counter:
    """How many nodes hold each instance, read from the fake hypervisors' own records."""
    copies: Counter = Counter()
    for index in range(LAUNCHERS):
        for path in (home / f"node{index}" / "fake").glob("*.json"):
            data = json.loads(path.read_text())
            if data.get("state") not in ("deleted",):
                copies[path.stem] += 1
    return copies


def test_kill9_everything_while_starting(tmp_path: Path, database_url_factory) -> None:  # noqa: ANN001
    url = database_url_factory()
    env = core_env(
        tmp_path,
        url,
        free_port(),
        CIAOSTACK_CONTROLLER__RESEND_AFTER="4",
        CIAOSTACK_LAUNCHER__FAKE_BOOT_DELAY="1.0",
        CIAOSTACK_LAUNCHER__STATS_INTERVAL="2",
        CIAOSTACK_LAUNCHER__STATE_FSYNC="false",
        CIAOSTACK_LAUNCHER__FAKE_MEM_MB="65536",
        CIAOSTACK_LAUNCHER__FAKE_VCPUS="512",
    )
    prepare(env)
    db = Database(url)
    scheduler = Process("scheduler", ["scheduler"], env, tmp_path).start()
    controller = Process("controller", ["controller"], env, tmp_path).start()
    launchers = [_launcher(i, env, tmp_path).start() for i in range(LAUNCHERS)]
    procs = [scheduler, controller, *launchers]
    spec = operations.InstanceSpec(
        project_id="p", user_id="u", name="vm", image_id="img", mem_mb=128, vcpus=1
    )
    ids: list[str] = []

    def create(count: int) -> None:
        with db.session() as s:
            ids.extend(i.id for i in operations.create_instances(s, spec, count=count))

    def wave() -> None:
        """A third of the instances: half, then (once some of those run) the other
        half, so that the kill that follows lands while instances are being started
        (each takes a second to boot; a whole half can turn ACTIVE at once)."""
        create(INSTANCES // 6)
        started = _counts(db)[states.ACTIVE]
        wait_until(lambda: _counts(db)[states.ACTIVE] > started, timeout=60, what="progress")
        create(INSTANCES // 6)

    try:
        for victim in (scheduler, controller, launchers[1]):
            wave()
            assert _counts(db)[states.BUILDING] > 0, f"the {victim.name} must die mid-flight"
            victim.kill9()
            time.sleep(0.5)
            victim.start()

        def settled() -> bool:
            counts = _counts(db)
            return counts[states.ACTIVE] + counts[states.ERROR] == INSTANCES

        wait_until(settled, timeout=150, interval=0.5, what="every instance ACTIVE or ERROR")
        with db.session(readonly=True) as s:
            rows = s.scalars(select(Instance).where(Instance.id.in_(ids))).all()
            errored = [r for r in rows if r.vm_state == states.ERROR]
            assert all(r.fault and r.fault["message"] for r in errored)
            active = [r for r in rows if r.vm_state == states.ACTIVE]
            assert all(r.task_state is None and r.node_uuid for r in active)
            # A server in error holds its quota until deleted, as in Nova.
            held = len(active) + len(errored)
            assert quota.usage(s, "p") == {"instances": held, "cores": held, "ram": 128 * held}
        # No instance runs on two nodes; every ACTIVE one runs somewhere.
        wait_until(
            lambda: max(_running_copies(tmp_path).values(), default=1) == 1,
            timeout=30,
            what="duplicates cleaned up",
        )
        copies = _running_copies(tmp_path)
        assert {r.id for r in active} <= set(copies)
        for proc in procs:
            assert proc.alive(), f"{proc.name} died:\n{proc.text()[-3000:]}"
    finally:
        for proc in procs:
            proc.stop()
        db.dispose()
    for proc in procs:
        assert "Traceback" not in proc.text(), f"{proc.name}:\n{proc.text()[-4000:]}"
