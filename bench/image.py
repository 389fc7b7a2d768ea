"""Image data through ciaostack's Glance API against a plain copy of the same file, in one run.

    /work/venv/bin/python -m bench.image [--size-mb 1024] [--memory-mb 1024,4096] [--rounds 3]

(a) upload: PUT /image/v2/images/{id}/file streamed from a file, (b) download:
GET .../file streamed into a file, each against (c) a plain copy of the same
file on the same disk (what `cp` does: copy_file_range). Every transfer ends
with its destination flushed to disk, as the image store does before it
answers. The three alternate, round after round, so drift on the machine is
shared; the median of the rounds is reported, with the ratio to the copy.

A fourth figure, (d) a copy that also computes the MD5 and SHA-512 digests
(in two threads, as the API does), shows what the digests every upload must
compute cost by themselves on this CPU; a fifth, (e) a download whose client
discards the bytes, shows how fast the API serves them when the client's own
writing to disk is not in the way.

Then the API worker's peak memory (VmHWM, reset through /proc/<pid>/clear_refs
before each transfer) while it receives and sends images of each size given
by --memory-mb: flat means the worker never holds an image in memory.
The client is curl (`-T` up, `-o` down); it shares the CPUs with the server,
as a client on the same machine would.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as bench/image.py rather than -m bench.image
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests  # noqa: E402

from bench import servers  # noqa: E402

CURL = shutil.which("curl")
MIB = 1 << 20
BLOCK = MIB
TARGET_RATIO = 0.70
PATTERN_MIB = 64  # the source files repeat one random block of this size


def bounded(low: int, high: int):  # noqa: ANN201 - an argparse type
    def parse(text: str) -> int:
        value = int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}")
        return value

    return parse


def sizes(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or any(not 1 <= v <= 8192 for v in values):
        raise argparse.ArgumentTypeError("sizes in MiB between 1 and 8192, comma-separated")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.image", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--size-mb", type=bounded(16, 4096), default=1024, help="throughput file (MiB)"
    )
    parser.add_argument("--rounds", type=bounded(1, 5), default=3, help="alternating rounds")
    parser.add_argument(
        "--memory-mb", type=sizes, default=[1024, 4096], help="image sizes for peak memory"
    )
    parser.add_argument(
        "--dir", type=Path, default=Path(tempfile.gettempdir()), help="where files go (one disk)"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    return parser


def make_source(path: Path, size_mib: int) -> str:
    """A file of `size_mib` MiB; returns its MD5 (what the image's checksum must be)."""
    block = os.urandom(PATTERN_MIB * MIB)
    md5 = hashlib.md5(usedforsecurity=False)
    with open(path, "wb") as out:
        left = size_mib * MIB
        while left:
            piece = block[: min(left, len(block))]
            out.write(piece)
            md5.update(piece)
            left -= len(piece)
        out.flush()
        os.fsync(out.fileno())
    return md5.hexdigest()


@dataclasses.dataclass(frozen=True)
class Timing:
    seconds: float
    cpu_seconds: float  # of whoever did the work: this process, or the API server


def plain_copy(src: Path, dst: Path) -> Timing:
    started, cpu = time.perf_counter(), time.process_time()
    shutil.copyfile(src, dst)
    with open(dst, "rb+") as f:
        os.fsync(f.fileno())
    timing = Timing(time.perf_counter() - started, time.process_time() - cpu)
    dst.unlink()
    return timing


def hashing_copy(src: Path, dst: Path) -> Timing:
    """A copy that computes the upload's two digests on the way, in two threads."""
    md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha512()
    started, cpu = time.perf_counter(), time.process_time()
    with (
        open(src, "rb", buffering=0) as inp,
        open(dst, "wb", buffering=0) as out,
        ThreadPoolExecutor(2) as pool,
    ):
        pending: tuple[Future, ...] = ()
        while chunk := inp.read(BLOCK):
            for done in pending:
                done.result()
            pending = (pool.submit(md5.update, chunk), pool.submit(sha.update, chunk))
            out.write(chunk)
        for done in pending:
            done.result()
        os.fsync(out.fileno())
    timing = Timing(time.perf_counter() - started, time.process_time() - cpu)
    dst.unlink()
    return timing


def curl(*args: str) -> None:
    done = subprocess.run(
        [CURL, "--silent", "--show-error", "--fail", *args], capture_output=True, timeout=900
    )
    if done.returncode != 0:
        raise RuntimeError(f"curl {' '.join(args[:2])}: {done.stderr.decode()}")


class ImageAPI:
    def __init__(self, server: servers.Server) -> None:
        self.server = server
        self.token, _ = server.issue(server.password_body(server.project_scope()))
        self.images = f"{server.base}/image/v2/images"
        self.auth = {"X-Auth-Token": self.token}

    def create(self) -> str:
        resp = requests.post(
            self.images,
            json={"name": "bench", "disk_format": "raw", "container_format": "bare"},
            headers=self.auth,
            timeout=60,
        )
        assert resp.status_code == 201, resp.text
        return resp.json()["id"]

    def show(self, image_id: str) -> dict[str, Any]:
        return requests.get(f"{self.images}/{image_id}", headers=self.auth, timeout=60).json()

    def delete(self, image_id: str) -> None:
        requests.delete(f"{self.images}/{image_id}", headers=self.auth, timeout=60)

    def upload(self, image_id: str, src: Path) -> Timing:
        started, cpu = time.perf_counter(), self.server.cpu_seconds()
        curl(
            "--upload-file",
            str(src),
            "--header",
            f"X-Auth-Token: {self.token}",
            "--header",
            "Content-Type: application/octet-stream",
            "--output",
            os.devnull,
            f"{self.images}/{image_id}/file",
        )
        return Timing(time.perf_counter() - started, self.server.cpu_seconds() - cpu)

    def download(self, image_id: str, dst: Path | None) -> Timing:
        """Into `dst`, flushed to disk; None: the client discards the bytes."""
        started, cpu = time.perf_counter(), self.server.cpu_seconds()
        curl(
            "--header",
            f"X-Auth-Token: {self.token}",
            "--output",
            str(dst) if dst is not None else os.devnull,
            f"{self.images}/{image_id}/file",
        )
        if dst is not None:
            with open(dst, "rb+") as f:
                os.fsync(f.fileno())
        return Timing(time.perf_counter() - started, self.server.cpu_seconds() - cpu)


def worker_pids(server: servers.Server) -> list[int]:
    assert server.process is not None
    master = server.process.pid
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if int(text[text.rindex(")") + 2 :].split()[1]) == master:
            pids.append(int(stat.parent.name))
    return pids


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def reset_peaks(pids: list[int]) -> dict[int, int]:
    """Reset each worker's peak RSS to its current RSS; returns the current RSS (KiB)."""
    for pid in pids:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    return {pid: _status_kib(pid, "VmRSS") for pid in pids}


def peak_rss_mib(pids: list[int]) -> float:
    return max(_status_kib(pid, "VmHWM") for pid in pids) / 1024


def throughput(api: ImageAPI, work: Path, size_mib: int, rounds: int) -> dict[str, Any]:
    src = work / "source.img"
    checksum = make_source(src, size_mib)
    kinds = ("copy", "hashing_copy", "upload", "download", "download_discard")
    runs: dict[str, list[Timing]] = {k: [] for k in kinds}
    for i in range(rounds):
        runs["copy"].append(plain_copy(src, work / "copy.img"))
        runs["hashing_copy"].append(hashing_copy(src, work / "copy.img"))
        image_id = api.create()
        runs["upload"].append(api.upload(image_id, src))
        image = api.show(image_id)
        assert image["checksum"] == checksum and image["size"] == size_mib * MIB, image
        dst = work / "downloaded.img"
        runs["download"].append(api.download(image_id, dst))
        assert dst.stat().st_size == size_mib * MIB
        dst.unlink()
        runs["download_discard"].append(api.download(image_id, None))
        api.delete(image_id)
        print(
            f"  round {i + 1}: "
            + "  ".join(f"{k} {size_mib / runs[k][-1].seconds:7.1f} MiB/s" for k in kinds),
            flush=True,
        )
    src.unlink()
    rates = {k: [size_mib / t.seconds for t in v] for k, v in runs.items()}
    medians = {k: statistics.median(v) for k, v in rates.items()}
    cpu = {
        k: statistics.median(t.cpu_seconds * 1000 / size_mib for t in v) for k, v in runs.items()
    }
    return {
        "size_mib": size_mib,
        "runs_mib_s": rates,
        "median_mib_s": medians,
        "cpu_ms_per_mib": cpu,
        "ratio_upload": medians["upload"] / medians["copy"],
        "ratio_download": medians["download"] / medians["copy"],
    }


def memory(api: ImageAPI, work: Path, size_mib: int) -> dict[str, float]:
    src = work / "memory.img"
    make_source(src, size_mib)
    pids = worker_pids(api.server)
    image_id = api.create()
    before = max(reset_peaks(pids).values()) / 1024
    up = api.upload(image_id, src).seconds
    upload_peak = peak_rss_mib(pids)
    src.unlink()
    reset_peaks(pids)
    dst = work / "memory-out.img"
    down = api.download(image_id, dst).seconds
    download_peak = peak_rss_mib(pids)
    dst.unlink()
    api.delete(image_id)
    figures = {
        "size_mib": size_mib,
        "rss_before_mib": before,
        "upload_peak_mib": upload_peak,
        "download_peak_mib": download_peak,
        "upload_mib_s": size_mib / up,
        "download_mib_s": size_mib / down,
    }
    print(
        f"  {size_mib} MiB image: worker RSS before {before:.1f} MiB, peak during upload "
        f"{upload_peak:.1f} MiB ({figures['upload_mib_s']:.0f} MiB/s), during download "
        f"{download_peak:.1f} MiB ({figures['download_mib_s']:.0f} MiB/s)",
        flush=True,
    )
    return figures


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if CURL is None:
        raise SystemExit(
            "this benchmark drives the API with curl: install it (apt-get install curl)"
        )
    biggest = max([args.size_mb, *args.memory_mb])
    free = shutil.disk_usage(args.dir).free // MIB
    if free < 3 * biggest + 1024:
        raise SystemExit(f"{args.dir} has {free} MiB free; this run needs {3 * biggest + 1024}")
    work = Path(tempfile.mkdtemp(prefix="ciaostack-bench-image-", dir=args.dir))
    gunicorn = servers.Gunicorn.like_ciaostack(workers=2, threads=4)
    print(
        f"ciaostack image data vs plain copy: gunicorn {gunicorn.worker_class} workers=2 "
        f"threads=4; file store, MD5 + SHA-512 on upload; {os.cpu_count()} CPUs shared by "
        f"server and client; work dir {work}",
        flush=True,
    )
    server = None
    try:
        server = servers.start_ciaostack(work, gunicorn, 4, secrets.token_urlsafe(16))
        api = ImageAPI(server)
        print(f"throughput, {args.size_mb} MiB, {args.rounds} rounds:", flush=True)
        result: dict[str, Any] = {"throughput": throughput(api, work, args.size_mb, args.rounds)}
        print("peak worker memory:", flush=True)
        result["memory"] = [memory(api, work, size) for size in args.memory_mb]
        tracebacks = server.tracebacks_since(0)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    t = result["throughput"]
    m = t["median_mib_s"]
    print()
    c = t["cpu_ms_per_mib"]
    print(f"| {args.size_mb} MiB, median of {args.rounds} | MiB/s | ratio to copy | CPU ms/MiB |")
    print("| --- | --- | --- | --- |")
    print(f"| plain copy (cp + fsync) | {m['copy']:.0f} | 1.00 | {c['copy']:.2f} |")
    hashing = m["hashing_copy"] / m["copy"]
    print(
        f"| copy computing MD5 + SHA-512 | {m['hashing_copy']:.0f} | {hashing:.2f} "
        f"| {c['hashing_copy']:.2f} |"
    )
    print(
        f"| upload (PUT .../file) | {m['upload']:.0f} | {t['ratio_upload']:.2f} "
        f"| {c['upload']:.2f} (server) |"
    )
    print(
        f"| download (GET .../file) | {m['download']:.0f} | {t['ratio_download']:.2f} "
        f"| {c['download']:.2f} (server) |"
    )
    print(
        f"| download, client discards | {m['download_discard']:.0f} "
        f"| {m['download_discard'] / m['copy']:.2f} | {c['download_discard']:.2f} (server) |"
    )
    print()
    print("| image | worker RSS before | peak, upload | peak, download |")
    print("| --- | --- | --- | --- |")
    for row in result["memory"]:
        print(
            f"| {row['size_mib']} MiB | {row['rss_before_mib']:.1f} MiB | "
            f"{row['upload_peak_mib']:.1f} MiB | {row['download_peak_mib']:.1f} MiB |"
        )
    for way in ("upload", "download"):
        if t[f"ratio_{way}"] < TARGET_RATIO:
            print(f"note: {way} is below the target of {TARGET_RATIO:.0%} of the plain copy rate")
    if tracebacks:
        print(f"error: the server logged {tracebacks} tracebacks")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 1 if tracebacks else 0


if __name__ == "__main__":
    sys.exit(main())
