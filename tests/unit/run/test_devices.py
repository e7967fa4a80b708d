"""Which GPU each xdist worker gets, how many workers -n auto starts, how many CPU threads each uses."""

from __future__ import annotations

import pytest

from pytest_nicrobust.run.devices import auto_workers, check_device, threads_per_process, visible_gpus, worker_gpu


@pytest.mark.parametrize(
    "env, count, expected",
    [
        ({}, 0, []),
        ({}, 1, ["0"]),
        ({}, 4, ["0", "1", "2", "3"]),
        ({"CUDA_VISIBLE_DEVICES": "2,3"}, 2, ["2", "3"]),
        ({"CUDA_VISIBLE_DEVICES": "3, 1"}, 2, ["3", "1"]),
        ({"CUDA_VISIBLE_DEVICES": ""}, 0, []),
        ({"CUDA_VISIBLE_DEVICES": "-1"}, 0, []),
        ({"CUDA_VISIBLE_DEVICES": "1,-1,2"}, 1, ["1"]),  # CUDA stops at the first invalid entry
        ({"CUDA_VISIBLE_DEVICES": "GPU-5f2e,GPU-77aa"}, 2, ["GPU-5f2e", "GPU-77aa"]),
    ],
)
def test_visible_gpus_respect_the_mask(env, count, expected):
    assert visible_gpus(env, count) == expected


@pytest.mark.parametrize(
    "gpus, cpus, workers, threads",
    [
        ([], 2, 2, 1),  # CPU only: one worker per core (xdist's rule), one thread each
        ([], 16, 16, 1),
        (["0"], 16, 1, 16),  # one GPU: one worker with every core for coding and metrics
        (["0", "1", "2", "3"], 32, 4, 8),
        (["2", "3"], 32, 2, 16),
    ],
)
def test_auto_workers_and_threads(gpus, cpus, workers, threads):
    assert auto_workers(gpus, cpus) == workers
    assert threads_per_process(gpus, cpus) == threads


def test_each_worker_is_pinned_to_one_gpu_round_robin():
    four = ["0", "1", "2", "3"]
    assert [worker_gpu(f"gw{k}", four, "auto") for k in range(8)] == four + four  # -n 8 on 4 GPUs: two each
    assert [worker_gpu(f"gw{k}", ["2", "3"], "cuda") for k in range(3)] == ["2", "3", "2"]  # a mask
    assert worker_gpu("gw0", ["0"], "auto") == "0"


def test_pinning_follows_the_device_option():
    four = ["0", "1", "2", "3"]
    assert {worker_gpu(f"gw{k}", four, "cuda:1") for k in range(4)} == {"1"}  # every worker on that one
    assert worker_gpu("gw1", ["5", "7"], "cuda:1") == "7"  # index into the visible devices
    assert worker_gpu("gw0", four, "cpu") is None
    assert worker_gpu("gw0", [], "auto") is None  # no GPU: nothing to pin
    assert worker_gpu(None, four, "auto") is None  # one process uses the device as named
    with pytest.raises(ValueError, match="only 2 CUDA device"):
        worker_gpu("gw0", ["0", "1"], "cuda:2")


@pytest.mark.parametrize("text", ["auto", "cpu", "cuda", "cuda:0", "cuda:12"])
def test_device_option_accepts_what_torch_and_the_pinning_understand(text):
    assert check_device(text) == text


@pytest.mark.parametrize("text", ["gpu", "cuda:", "cuda:x", "cuda:-1", "cpu:0", "CUDA", ""])
def test_device_option_refuses_anything_else_by_name(text):
    with pytest.raises(ValueError, match="--nicrobust-device"):
        check_device(text)


def test_auto_worker_count_is_asked_before_the_session_exists(pytester):
    """xdist calls pytest_xdist_auto_num_workers from pytest_cmdline_main, before pytest_configure:
    the answer must come from the options alone (it raised KeyError when the plugin was imported
    from PYTHONPATH, i.e. from a checkout)."""
    from pytest_nicrobust import plugin
    from pytest_nicrobust.session import SESSION

    config = pytester.parseconfig("--nicrobust-device=cpu")
    assert SESSION not in config.stash
    assert plugin.pytest_xdist_auto_num_workers(config) is None
