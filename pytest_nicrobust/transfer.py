"""Transfer tests: adversarial images made for a source codec, measured on another codec.

For every (codec, attack, dataset) of a suite, x' (made against the bare codec) is taken
from the adversarial-image cache — or made, if no test has made it yet — and coded by
every other codec of the suite (other architectures, bitrates, checkpoint versions) and
by JPEG, WebP and JPEG 2000 at the source codec's clean bitrate. One test per
(source, target), marked ``transfer``; thresholds gate them by ``transfer_*`` limits.

Importing this module imports no torch (the plugin builds the test list at collection).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .suite import Case, CodecEntry, id_token, test_id

CLASSICAL = ("jpeg", "webp", "jpeg2000")  # Pillow codecs, see codecs/classical.py


@dataclass(frozen=True)
class TransferCase:
    source: Case                    # defense "none": x' is made against the bare codec
    target: CodecEntry | str        # a codec of the suite, or a classical codec name

    @property
    def suite(self) -> str:
        return self.source.suite

    @property
    def target_label(self) -> str:
        return self.target if isinstance(self.target, str) else self.target.display

    @property
    def name(self) -> str:
        return test_id(self.source.codec, f"{self.source.attack_id}-transfer-{id_token(self.target_label)}")

    @property
    def model_key(self) -> str:
        return self.source.model_key

    @property
    def parameters(self) -> dict:
        params = {k: v for k, v in self.source.parameters.items() if k != "defense"}
        return {**params, "target": self.target_label}


def transfer_cases(cases: list[Case]) -> list[TransferCase]:
    """Every source (codec, attack, dataset) × every other codec and the classical codecs.

    The diagonal (a codec against itself) is the white-box result of the ``none`` test;
    when the suite has no ``none`` defense, a transfer test computes it.
    """
    sources = list(dict.fromkeys(replace(c, defense="none") for c in cases))
    codecs = list(dict.fromkeys(c.codec for c in cases))
    with_self = not any(c.defense == "none" for c in cases)
    out = []
    for source in sources:
        targets = [t for t in codecs if with_self or t != source.codec] + list(CLASSICAL)
        out += [TransferCase(source, t) for t in targets]
    return out


def run_transfer(tcase: TransferCase, ctx, result: dict) -> None:
    """Fill ``result`` for one (source, target) cell; raise GateFailure on a passed transfer_* limit."""
    from . import datasets, report
    from .codecs import classical
    from .evaluate import evaluate, mean_of
    from .gates import conclude
    from .runner import attacked, batches, case_seeds, codec_record, gate_modes, stack

    src = tcase.source
    params = tcase.parameters
    seed = case_seeds(ctx.run_seed, src)[0]
    result.update(kind="transfer", params=params, attack_params=src.attack.params, seed=seed,
                  source=src.codec.display, target=tcase.target_label, per_image=[], timings={})
    timings = result["timings"]
    with report.step("load codecs and images", timings):
        source = ctx.codec(src.codec)
        target = None if isinstance(tcase.target, str) else ctx.codec(tcase.target)
        images = ctx.images(src.dataset)
    result["codec"] = codec_record(source)
    if target is not None:
        result["target_codec"] = codec_record(target)
    report.describe_test(params, source.info)
    for group in batches(images, ctx.batch_size):
        x = datasets.to_tensor(group).to(ctx.device)
        with report.step("adversarial images (cache or attack)", timings):
            x_adv = attacked(source, src.attack, seed, group, x, ctx)
        with report.step("encode + decode on the target", timings):
            extra, known = [{} for _ in group], None
            if target is None:  # classical: match the source codec's clean bitrate
                coded, _ = ctx.clean(source, group, x, set(), cached=True)
                source_bpp = [float(coded[i][1]) for i in range(len(group))]
                qualities = [classical.match_quality(classical.to_pixels(xi), tcase.target, b)
                             for xi, b in zip(x, source_bpp)]
                clean = classical.roundtrip(x, tcase.target, qualities)
                adv = classical.roundtrip(x_adv, tcase.target, qualities)
                extra = [{"quality": q, "bpp_source": b} for q, b in zip(qualities, source_bpp)]
            else:
                coded, known = ctx.clean(target, group, x, set(), cached=True)
                clean, adv = stack(coded, list(range(len(group)))), target.roundtrip(x_adv)
        with report.step("metrics", timings):
            rows = evaluate(x, x_adv, clean, adv, ctx.metrics, known)
        if not result["per_image"]:  # the first image's pictures, attached if the cell fails
            first = (group[0].name, x[0], x_adv[0], clean.x_hat[0], adv.x_hat[0])
        result["per_image"] += [{"image": image.name, **row, **extra[i]} for i, (image, row) in enumerate(zip(group, rows))]
    result["mean"] = mean_of(result["per_image"])
    gates = gate_modes(result, ("transfer",), ctx)
    if not all(g.passed for g in gates):
        report.attach_picture(first[0], report.picture_row(*first[1:]))
    conclude(tcase.name, result, gates)
