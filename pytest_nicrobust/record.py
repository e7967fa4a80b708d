"""The result record: one plain dict per test, made on the worker, carried to the controller on
the test report (so it survives xdist), written to ``--nicrobust-json`` and read by every output.

Ground floor (no imports from the package). Keys, and the room that writes each:

==================  ==========================================================================
key                 meaning (writer)
==================  ==========================================================================
id, name            pytest node id and test name (``session.new_record``)
suite               absolute path of the suite file (``session``)
device, worker      torch device and xdist worker id; ``device_name``, ``gpu`` on CUDA (``session``)
kind                ``case`` | ``worst-case`` | ``transfer`` | ``crashed`` (``run`` / ``session``)
params              codec, bitrate, attack, objective, dataset, defense (and ``target`` for
                    transfer): what thresholds match and baselines key on (``run``)
attack_params       the attack's budget and steps after overrides (``run.case``, ``run.transfer``)
seed                the test's attack seed (``run``)
timings             seconds per step, {step title: seconds} (``run``)
codec               where the codec came from: label, architecture, quality, weights, file,
                    sha256, identity (``run.measure.codec_record``); ``target_codec`` for transfer
source, target      codec labels of a transfer cell (``run.transfer``)
modes               {mode: {"per_image": [rows], "mean": {metric: value}}} (``run.measure``)
per_image, mean     the headline mode's rows and means: the last gated mode (``run.measure``)
errors              images the codec failed on: [{"images": [...], "error": "..."}] (``run.measure``)
defense             name, random, reversible, draw, seed, per_image, cost (defended cases)
members, winners    worst case: member test names; {metric: {attack: images won}} (``run.worst_case``)
gates, gated        every gate as a dict (see ``verdict.gates.GateResult``), whether any applied
                    (``run.verdict``)
comparison          status against ``--nicrobust-compare``, baseline means, changes (``verdict.baseline``)
outcome, error      pytest's outcome and the exception text, if any (``session``)
==================  ==========================================================================
"""

from __future__ import annotations

HEADLINE = "mean"  # the means the terminal, the summaries and the comparison read


def means_of(result: dict, mode: str) -> dict:
    """The means of one mode of a record (``transfer``, or a record without modes: the headline)."""
    if mode == "transfer" or "modes" not in result:
        return result.get(HEADLINE) or {}
    return (result["modes"].get(mode) or {}).get(HEADLINE) or {}
