"""The fake backend: delays, requested and random failures, usage, surviving restarts."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import pytest

from ciaostack.agents.backends import (
    BackendError,
    ImageError,
    InstanceNotFound,
    NetworkError,
    NodeResources,
    console_tail,
)
from ciaostack.agents.backends.fake import FakeBackend
from ciaostack.core.ssntp import payloads as P

RESOURCES = NodeResources(mem_mb=8192, disk_mb=100_000, vcpus=8)


def _start(instance: str, fail: str = "", mem_mb: int = 1024) -> P.Start:
    return P.Start(
        instance_uuid=instance,
        tenant_uuid="t",
        image_uuid="i",
        requirements=P.Requirements(mem_mb=mem_mb, vcpus=2, disk_mb=2048),
        metadata={"fake_fail": fail} if fail else {},
    )


def _fake(tmp_path: Path, **kwargs: object) -> FakeBackend:
    return FakeBackend(tmp_path / "fake", RESOURCES, **kwargs)  # type: ignore[arg-type]


def test_create_boots_after_the_delay_and_is_idempotent(tmp_path: Path) -> None:
    async def scenario() -> None:
        fake = _fake(tmp_path, boot_delay=0.2)
        began = time.monotonic()
        await fake.create(_start("a"))
        assert time.monotonic() - began >= 0.2
        await fake.create(_start("a"))  # a repeated create changes nothing
        assert await fake.reattach(["a"]) == {"a": P.InstanceState.RUNNING}
        assert "boot 1" in await fake.console_output("a")
        assert "boot 2" not in await fake.console_output("a")

    asyncio.run(scenario())


def test_requested_failures(tmp_path: Path) -> None:
    async def scenario() -> None:
        fake = _fake(tmp_path, boot_delay=0)
        with pytest.raises(BackendError) as launch:
            await fake.create(_start("l", "launch"))
        assert launch.value.reason == P.StartFailureReason.LAUNCH_FAILURE
        with pytest.raises(ImageError) as image:
            await fake.create(_start("i", "image"))
        assert image.value.reason == P.StartFailureReason.IMAGE_FAILURE
        with pytest.raises(NetworkError):
            await fake.create(_start("n", "network"))
        assert await fake.reattach(["l", "i", "n"]) == {}  # nothing left behind

        await fake.create(_start("s", "stop, detach"))
        with pytest.raises(BackendError):
            await fake.stop("s")
        await fake.attach_volume("s", "v", "")
        with pytest.raises(BackendError):
            await fake.detach_volume("s", "v")
        await fake.reboot("s", hard=True)  # not asked to fail

    asyncio.run(scenario())


def test_random_failure_rate(tmp_path: Path) -> None:
    async def scenario() -> None:
        fake = _fake(tmp_path, boot_delay=0, failure_rate=0.5, rng=random.Random(7))
        failed = 0
        for n in range(200):
            try:
                await fake.create(_start(f"r{n}"))
            except BackendError:
                failed += 1
        assert 60 < failed < 140
        always = _fake(tmp_path / "b", boot_delay=0, failure_rate=1.0)
        with pytest.raises(BackendError):
            await always.create(_start("x"))

    asyncio.run(scenario())
    with pytest.raises(ValueError):
        _fake(tmp_path, failure_rate=1.5)


def test_lifecycle_usage_and_capacity(tmp_path: Path) -> None:
    async def scenario() -> None:
        fake = _fake(tmp_path, boot_delay=0)
        await fake.create(_start("a", mem_mb=1000))
        await fake.create(_start("b"))
        for _ in range(20):
            usage = await fake.stats()
            assert 300 <= usage["a"].memory_mb <= 800
            assert 1 <= usage["a"].cpu_percent <= 60
            assert 0 < usage["a"].disk_mb <= 2048
        await fake.stop("b")
        await fake.stop("b")  # idempotent
        assert (await fake.stats())["b"].memory_mb == 0
        assert (await fake.capacity()).mem_mb == RESOURCES.mem_mb
        assert (await fake.capacity()).load == pytest.approx(0.1)
        await fake.start("b")
        await fake.attach_volume("a", "v1", "")
        await fake.attach_volume("a", "v1", "")
        await fake.detach_volume("a", "v2")  # not attached: fine
        await fake.delete("a")
        await fake.delete("a")  # unknown: fine
        with pytest.raises(InstanceNotFound):
            await fake.stop("a")
        assert await fake.console_output("b", length=1) == "instance-b login: "
        tail = await fake.console_output("b", length=3)
        assert tail.startswith("[    2.021004] systemd") and tail.count("\n") == 2

    asyncio.run(scenario())


def test_instances_survive_a_new_backend_object(tmp_path: Path) -> None:
    async def scenario() -> None:
        fake = _fake(tmp_path, boot_delay=0)
        await fake.create(_start("up"))
        await fake.create(_start("down"))
        await fake.stop("down")
        await fake.attach_volume("up", "vol", "/dev/vdc")
        reborn = _fake(tmp_path, boot_delay=0)
        assert await reborn.stats() == {}  # knows nothing until asked to re-attach
        found = await reborn.reattach(["up", "down", "never"])
        assert found == {"up": P.InstanceState.RUNNING, "down": P.InstanceState.STOPPED}
        assert set(await reborn.stats()) == {"up", "down"}
        await reborn.detach_volume("up", "vol")

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("log", "length", "tail"),
    [
        ("a\nb\nc\nd", 3, "b\nc\nd"),
        ("a\nb\nc\n", 3, "b\nc\n"),  # 2 lines and an empty piece: 3 parts
        ("a\nb", 5, "a\nb"),
        ("a\nb", 0, ""),
        ("a\nb\n", None, "a\nb\n"),
    ],
)
def test_console_tail_is_novas(log: str, length: int | None, tail: str) -> None:
    assert console_tail(log, length) == tail
    if length:
        assert len(console_tail(log, length).split("\n")) == min(length, len(log.split("\n")))
