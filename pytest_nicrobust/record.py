"""The result record: one plain dict per test, made on the worker, carried to the controller on
the test report (so it survives xdist), written to ``--nicrobust-json`` and read by every output.

Ground floor (no imports from the package). Keys, and the room that writes each:

==================  ==========================================================================
key                 meaning (writer)
==================  ==========================================================================
id, name            pytest node id and test name (``session.new_record``)
suite               absolute path of the suite file (``session``)
device, worker      torch device and xdist worker id; ``device_name``, ``gpu`` on CUDA (``session``)
kind                ``case`` | ``worst-case`` | ``transfer`` | ``bitstream`` | ``crashed`` (``run`` / ``session``)
params              codec, bitrate, attack, objective, dataset, defense (and ``target`` for
                    transfer): what thresholds match and baselines key on (``run``)
attack_params       the attack's budget and steps after overrides (``run.case``, ``run.transfer``)
seed                the test's attack seed, a decimal string (63-bit: JSON readers such as jq and
                    JavaScript round large integers) (``run``)
timings             seconds per step, {key: seconds}; keys ``load`` and, per mode (``undefended``,
                    ``non-adaptive``, ``adaptive``, ``transfer``), ``attack:<mode>`` (x' made by the
                    attack), ``cache_hit:<mode>`` (x' read from the cache), ``cache_wait:<mode>``
                    (blocked while another worker made x'), ``coding:<mode>``, ``metrics:<mode>``
                    (``run.measure.STEPS``)
started, stopped    Unix times (seconds) the test's call began and ended (``session.attach_record``)
codec               where the codec came from: label, architecture, quality, weights, file,
                    sha256, identity (``run.measure.codec_record``); ``target_codec`` for transfer
source, target      codec labels of a transfer cell (``run.transfer``)
modes               {mode: {"per_image": [rows], "mean": {metric: value}}} (``run.measure``)
per_image, mean     the headline mode's rows and means: the last gated mode (``run.measure``). In
                    memory they alias ``modes[headline]``; the JSON keeps each number once:
                    a record with ``modes`` is written with ``headline_mode`` instead (see
                    :func:`for_json` / :func:`from_json`); a transfer cell has no modes and keeps them
headline_mode       in the JSON only: the mode whose rows and means are the headline (``record.for_json``)
crop                the central crop side of the test's images, or null for full images (``run``)
errors              images the codec failed on: [{"images": [...], "error": "..."}] (``run.measure``)
defense             name, random, reversible, draw, seed, per_image, cost (defended cases)
members, winners    worst case: member test names; {metric: {attack: images won}} (``run.worst_case``)
gates, gated        every gate as a dict (see ``verdict.gates.GateResult``), whether any applied
                    (``run.conclude``)
gates[].kind        ``limit`` (value = the mean, limit) or ``regression`` (value = the change, limit =
                    the allowed change, with ``current`` and ``baseline``) (``verdict.gates``)
comparison          status (``compared``, ``new``, ``not comparable`` + ``reason``) against
                    ``--nicrobust-compare``, baseline means, changes, ``seed_differs`` (``verdict.baseline``)
outcome, error      pytest's outcome and the exception text, if any (``session``)
streams_tried       a bitstream test's distinct streams decoded (``run.bitstreams``)
failures            its findings: property, sha256, size, error, recipe, stream (the file beside the
                    JSON, set by ``outputs.bitstream_files``), replay, data (base64) (``run.bitstreams``)
bitstream           its settings, stream API, max_pixels, rounds, seconds (``run.bitstreams``)
cross_device        GPU encode, CPU decode: checked or skipped with its reason (``run.bitstreams``)
==================  ==========================================================================
"""

from __future__ import annotations

from typing import Any

Record = dict[str, Any]  # a test's result record (keys: this module's docstring)

MEANS = "mean"  # the means the terminal, the summaries and the comparison read


def means_of(result: Record, mode: str) -> dict[str, float]:
    """The means of one mode of a record (``transfer``, or a record without modes: the headline)."""
    if mode == "transfer" or "modes" not in result:
        means: dict[str, float] = result.get(MEANS) or {}
        return means
    means = (result["modes"].get(mode) or {}).get(MEANS) or {}
    return means


def headline_mode(result: Record) -> str | None:
    """The mode whose rows and means are the record's headline (the last one equal to them)."""
    if result.get(MEANS) is None or not isinstance(result.get("modes"), dict):
        return None
    import json  # by text: NaN != NaN, and records that crossed from a worker are copies

    def text(block: Record) -> str:
        return json.dumps([block.get("per_image"), block.get(MEANS)], sort_keys=True, default=str)

    head = text(result)
    found: list[str] = [
        mode for mode, block in result["modes"].items() if isinstance(block, dict) and text(block) == head
    ]
    return found[-1] if found else None


def for_json(result: Record) -> Record:
    """The record as written to the JSON: a record with modes drops the aliased headline
    (``per_image``, ``mean``) and names it in ``headline_mode``; every number appears once."""
    mode = headline_mode(result)
    if mode is None:
        return result
    out = {k: v for k, v in result.items() if k not in ("per_image", MEANS)}
    out["headline_mode"] = mode
    return out


def from_json(result: Record) -> Record:
    """A record read back from the JSON, with its headline restored (the inverse of :func:`for_json`)."""
    mode = result.get("headline_mode")
    block = (result.get("modes") or {}).get(mode) if isinstance(result.get("modes"), dict) else None
    if mode and isinstance(block, dict) and MEANS not in result:
        result["per_image"], result[MEANS] = block.get("per_image", []), block.get(MEANS, {})
    return result
