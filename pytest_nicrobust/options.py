"""The plugin's command-line options, each checked where it is declared (``type=parse_*``).

A wrong value stops the run before collection with pytest's one-line usage error naming the
option; what the option holds afterwards is already parsed (a tuple of metrics, a shard pair,
allowed changes). Torch-free.
"""

from __future__ import annotations

import argparse
import os

from . import NicrobustError
from .config.regression import parse_cli, parse_mapping
from .config.shards import parse_shard
from .metrics.registry import METRICS, parse_metrics
from .run.devices import check_device


def _checked(parse):
    """argparse shows an ArgumentTypeError's message as is: one line naming the option."""

    def wrapper(text):
        try:
            return parse(text)
        except (ValueError, NicrobustError) as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    wrapper.__name__ = parse.__name__
    return wrapper


def _number(text: str, cast, what: str):
    try:
        return cast(text)
    except ValueError:
        raise ValueError(f"expected {what}, got {text!r}") from None


def parse_positive_int(text: str) -> int:
    value = _number(text, int, "a whole number")
    if value < 1:
        raise ValueError(f"must be at least 1, got {value}")
    return value


def parse_seconds(text: str) -> float:
    value = _number(text, float, "seconds")
    if not 0 <= value < float("inf"):
        raise ValueError(f"expected a finite number of seconds >= 0 (0: no limit), got {text!r}")
    return value


def parse_seed(text: str) -> int:
    return _number(text, int, "an integer")


SUMMARY_CHOICES = ("failed", "worst", "all")


def parse_summary(text: str) -> str:
    """--nicrobust-summary: how much of the gate table the terminal shows."""
    if text not in SUMMARY_CHOICES:
        raise ValueError(f"expected one of {', '.join(SUMMARY_CHOICES)}, got {text!r}")
    return text


POLICY_CHOICES = ("warn", "fail")


def parse_policy(text: str) -> str:
    """--nicrobust-masking / --nicrobust-convergence: a suspicion is a warning (default) or a failure."""
    if text not in POLICY_CHOICES:
        raise ValueError(f"expected one of {', '.join(POLICY_CHOICES)}, got {text!r}")
    return text


def add_options(parser) -> None:
    parser.addini(
        "nicrobust_suites",
        type="paths",
        default=[],
        help="suite files whose names do not end in .suite.toml (relative to the ini file)",
    )
    group = parser.getgroup("nicrobust", "neural image codec robustness (pytest-nicrobust)")
    add = group.addoption
    add(
        "--nicrobust-data",
        metavar="DIR",
        default=os.environ.get("NICROBUST_DATA"),
        help="folder holding kodak/, bsds/, nips2017/ (env NICROBUST_DATA)",
    )
    add(
        "--nicrobust-cityscapes",
        metavar="DIR",
        default=os.environ.get("NICROBUST_CITYSCAPES"),
        help="your Cityscapes images, e.g. leftImg8bit/val (env NICROBUST_CITYSCAPES)",
    )
    add(
        "--nicrobust-thresholds",
        metavar="PATH",
        default=None,
        help="limits file (default: thresholds.toml in the rootdir, else the plugin's own limits)",
    )
    add(
        "--nicrobust-json",
        metavar="PATH",
        default=None,
        help="write every test's per-image and mean values to this JSON file",
    )
    add(
        "--nicrobust-seed",
        type=_checked(parse_seed),
        default=0,
        help="run seed; each test derives its own seed from it and its id (default 0)",
    )
    add(
        "--nicrobust-device",
        type=_checked(check_device),
        default="auto",
        help="auto, cpu, cuda, cuda:1 ... (default: cuda if available; under xdist one GPU per worker)",
    )
    add(
        "--nicrobust-threads",
        type=_checked(parse_positive_int),
        default=None,
        help="on CPU, images measured in parallel per process, one torch thread each "
        "(default: cores per xdist worker); the numbers do not depend on it",
    )
    add(
        "--nicrobust-batch-size",
        type=_checked(parse_positive_int),
        default=None,
        help="images per attack batch (default: 1 on CPU, 8 on CUDA)",
    )
    add(
        "--nicrobust-metrics",
        type=_checked(parse_metrics),
        default=",".join(METRICS),
        help="comma-separated full-reference metrics to compute (default: all)",
    )
    add(
        "--nicrobust-heavy",
        action="store_true",
        help="also run cases marked heavy (full data sets); they are deselected otherwise",
    )
    add(
        "--nicrobust-eot-samples",
        type=_checked(parse_positive_int),
        default=4,
        help="random draws a defense-adaptive attack averages over per step (EOT; default 4)",
    )
    add(
        "--nicrobust-no-transfer",
        action="store_true",
        help="do not generate transfer tests (or deselect them with -m 'not transfer')",
    )
    add(
        "--nicrobust-cache",
        metavar="DIR",
        default=None,
        help="adversarial-image cache (default: nicrobust/ in the pytest cache directory)",
    )
    add(
        "--nicrobust-timeout",
        type=_checked(parse_seconds),
        default=1800.0,
        metavar="SECONDS",
        help="time limit per robustness test (default 1800; 0: none)",
    )
    add(
        "--nicrobust-shard",
        type=_checked(parse_shard),
        metavar="K/N",
        default=None,
        help="run the K-th of N deterministic parts of the suites (whole models per part); "
        "python -m pytest_nicrobust merge joins their JSON",
    )
    add(
        "--nicrobust-summary",
        type=_checked(parse_summary),
        default="worst",
        metavar="failed|worst|all",
        help="terminal gate table: failing tests only, failures and the closest passes (default), or every test",
    )
    add(
        "--nicrobust-masking",
        type=_checked(parse_policy),
        default="warn",
        metavar="warn|fail",
        help="a worst case that suspects gradient masking (docs/method.md, What a pass means): a warning the "
        "verdict line repeats (default), or a failure",
    )
    add(
        "--nicrobust-convergence",
        type=_checked(parse_policy),
        default="warn",
        metavar="warn|fail",
        help="a test whose attack had not converged (its objective still rose in the last quarter of its steps): "
        "a warning (default), or a failure",
    )
    add(
        "--nicrobust-compare",
        metavar="BASELINE.json",
        default=None,
        help="compare with a previous run's --nicrobust-json (tests matched by parameters)",
    )
    add(
        "--nicrobust-compare-fail",
        type=_checked(parse_cli),
        metavar="LIMITS",
        default={},
        help="fail a test that got worse than allowed, e.g. delta_psnr:0.3,bitrate_increase:10%% "
        "(also [regression] in thresholds.toml)",
    )
    add(
        "--nicrobust-compare-map",
        type=_checked(parse_mapping),
        metavar="OLD=NEW,...",
        default={},
        help="baseline codec labels to compare with this run's, e.g. ourcodec-v1=ourcodec-v2",
    )
