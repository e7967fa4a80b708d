"""Which device and how many CPU threads each process uses (xdist workers included).

* ``-n auto`` starts one worker per visible CUDA device (``CUDA_VISIBLE_DEVICES`` respected),
  one per CPU core when there is none (xdist's own rule).
* Worker ``gwK`` is pinned to visible device K mod n before CUDA initialises (its
  ``CUDA_VISIBLE_DEVICES`` narrowed to that one device), so ``-n 8`` on 4 GPUs puts two
  workers on each; ``--nicrobust-device cuda:I`` puts every worker on visible device I.
* On CPU every process computes with one torch thread, so kernels sum in the same order under
  ``-n 0`` and ``-n 2`` and the numbers are bit-identical; the cores are used by measuring a
  test's images in parallel instead (:func:`image_workers` threads per process, each image on
  one thread). On CUDA the torch CPU thread count is the machine's share per ``-n auto`` worker.

The functions here are pure (no torch, no CUDA) so the mapping is tested on any machine.
"""

from __future__ import annotations

import os


def check_device(text: str) -> str:
    """``--nicrobust-device``: ``auto``, ``cpu``, ``cuda`` or ``cuda:I``; anything else is refused here,
    before a test hands it to torch."""
    kind, sep, index = text.partition(":")
    if text in ("auto", "cpu", "cuda") or (kind == "cuda" and sep and index.isdigit()):
        return text
    raise ValueError(f"--nicrobust-device {text!r}: expected auto, cpu, cuda or cuda:I (I a visible device index)")


def visible_gpus(env: dict, device_count: int) -> list[str]:
    """Physical ids of the CUDA devices this process may use (``CUDA_VISIBLE_DEVICES`` order)."""
    mask = env.get("CUDA_VISIBLE_DEVICES")
    if mask is None:
        return [str(i) for i in range(device_count)]
    ids = [d.strip() for d in mask.split(",") if d.strip()]
    # CUDA stops at the first invalid entry ("-1" hides every device)
    out = []
    for d in ids:
        if d.startswith("-"):
            break
        out.append(d)
    return out[:device_count] if device_count else out


def auto_workers(gpus: list[str], cpu_count: int) -> int:
    """``-n auto``: one worker per visible GPU, else one per CPU core."""
    return len(gpus) if gpus else max(1, cpu_count)


def threads_per_process(gpus: list[str], cpu_count: int) -> int:
    """The CPU share of one ``-n auto`` worker (torch's CPU threads beside a GPU)."""
    return max(1, cpu_count // auto_workers(gpus, cpu_count))


def image_workers(cpu_count: int, workers: int) -> int:
    """Images measured at once in one process on CPU: its share of the cores."""
    return max(1, cpu_count // max(1, workers))


def worker_gpu(worker_id: str | None, gpus: list[str], requested: str) -> str | None:
    """The physical GPU a process is pinned to, or None (CPU, or nothing to pin).

    ``worker_id``: ``"gw3"`` under xdist, None otherwise (one process uses the device as named).
    ``requested``: ``--nicrobust-device`` (``auto``, ``cpu``, ``cuda`` or ``cuda:I``, I indexing
    the visible devices).
    """
    if worker_id is None or not gpus or not (requested == "auto" or requested.startswith("cuda")):
        return None  # one process (it uses the device as named), or no GPU asked for
    if requested.startswith("cuda:"):
        index = int(requested.split(":", 1)[1])
        if index >= len(gpus):
            raise ValueError(
                f"--nicrobust-device {requested}: only {len(gpus)} CUDA device(s) visible ({','.join(gpus)})"
            )
        return gpus[index]
    return gpus[int(worker_id.removeprefix("gw")) % len(gpus)]


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
