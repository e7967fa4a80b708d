"""JPEG AI against a real reference-software tree: set NICROBUST_JPEGAI_ROOT to a tree whose two
native extensions are built and whose Python dependencies are installed (docs/jpegai.md). Either
line (DIS or IS) runs the same tests: its profile words differ (main, base) and both are tried.

The trained weights are not public; these tests use seeded random weights (``weights = "random"``),
which go through the same saving and loading path as trained ones. They are slow on a CPU (the
tree builds ~50 M parameters per encoder or decoder); images are small.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = os.environ.get("NICROBUST_JPEGAI_ROOT")
pytestmark = pytest.mark.skipif(
    not ROOT,
    reason="NICROBUST_JPEGAI_ROOT is not set: no JPEG AI reference tree "
    "to test against (see docs/jpegai.md to build one)",
)
REPO = Path(__file__).resolve().parents[2]

torch = pytest.importorskip("torch")


def load(root=None, profile="main", quality="b0.012", weights="random", label="random-jpegai", seed=0, **options):
    from pytest_nicrobust.codecs import load_codec

    options = {"root": str(root or ROOT), "profile": profile, "seed": seed, **options}
    return load_codec("jpegai", weights, quality, "cpu", label, options)


def image(size=64):
    from pytest_nicrobust.codecs.checks.conformance import sample_images

    return sample_images((size, size), 1)


@pytest.fixture(scope="module")
def bop():
    return load()


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory):
    """A copy of the tree, made read-only (its code, configuration and built extensions)."""
    dest = tmp_path_factory.mktemp("jpegai") / "tree"
    shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(".git", "__pycache__"), symlinks=True)
    for folder, dirs, files in os.walk(dest):
        for name in files + dirs:
            path = os.path.join(folder, name)
            os.chmod(path, os.stat(path).st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    os.chmod(dest, os.stat(dest).st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    yield dest
    for folder, _, _ in os.walk(dest):
        os.chmod(folder, os.stat(folder).st_mode | stat.S_IWUSR)


def snapshot(root):
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            st = os.stat(path)
            out[os.path.relpath(path, root)] = (st.st_size, st.st_mtime_ns)
    return out


def test_random_weights_are_saved_in_the_tree_layout_and_loaded_back(bop, tmp_path):
    from pytest_nicrobust.codecs.kinds.jpegai.table import weight_files

    saved = {os.path.relpath(p, bop.models) for p in bop.weights_files}
    assert set(weight_files(1, 0.012)) <= saved  # the tree's models/ layout
    models = tmp_path / "models"
    shutil.copytree(bop.models, models)
    trained = load(weights=str(models), label="jpegai")  # the path trained weights take
    x = image()
    a, b = bop.roundtrip(x), trained.roundtrip(x)
    assert a.nbytes == b.nbytes and torch.equal(a.x_hat, b.x_hat)
    assert trained.identity()["weights_sha256"] == bop.identity()["weights_sha256"]
    # every path carries signal: latents are not all zero, the image is not flat
    assert a.bpp.item() > 0.5 and a.x_hat.std().item() > 0.005


def test_random_weights_do_not_depend_on_the_thread_count(bop):
    threads = torch.get_num_threads()
    torch.set_num_threads(1 if threads > 1 else 2)
    try:
        other = load(label="random-jpegai-threads")
    finally:
        torch.set_num_threads(threads)
    assert other.identity()["weights_sha256"] == bop.identity()["weights_sha256"]


def test_random_weights_are_made_once_and_kept_in_the_cache_folder(bop, tmp_path):
    from pytest_nicrobust.codecs.loading import use_cache_folder

    use_cache_folder(str(tmp_path))
    try:
        first, second = load(label="random-jpegai-first"), load(label="random-jpegai-second")
    finally:
        use_cache_folder(None)
    assert first.info.details["weights_cache"].startswith("made and kept in ")
    assert second.info.details["weights_cache"] == first.info.details["weights_cache"].replace(
        "made and kept in", "loaded from"
    )
    assert second.models == first.models and first.models.startswith(str(tmp_path))
    assert first.identity()["weights_sha256"] == second.identity()["weights_sha256"] == bop.identity()["weights_sha256"]
    x = image()
    assert second.encode_bytes(x)[0] == bop.encode_bytes(x)[0]


def test_encoder_and_decoder_in_two_processes_agree_bit_for_bit(bop, tmp_path):
    code = textwrap.dedent(f"""
        import sys, torch
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_jpegai_tree import load, image
        from pytest_nicrobust.codecs.base import pad_to_multiple
        codec = load()
        streams, rec = codec.encode_bytes(pad_to_multiple(image(), codec.multiple))
        open({str(tmp_path / "stream.bin")!r}, 'wb').write(streams[0])
        torch.save(rec, {str(tmp_path / "rec.pt")!r})
        """)
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, "NICROBUST_JPEGAI_ROOT": ROOT},
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    from pytest_nicrobust.codecs.base import pad_to_multiple

    stream = (tmp_path / "stream.bin").read_bytes()
    encoder_side = torch.load(tmp_path / "rec.pt", weights_only=True)
    decoded = bop.decode_bytes([stream])  # the other process's stream, decoded here
    assert torch.equal(decoded, encoder_side)
    again, _ = bop.encode_bytes(pad_to_multiple(image(), bop.multiple))
    assert again == [stream]  # the same seed gives the same weights and the same bytes


@pytest.mark.parametrize("proxy", ["ste", "noise"])
def test_gradients_reach_the_input(bop, proxy):
    x = image().requires_grad_(True)
    g = torch.Generator().manual_seed(0)
    out = bop.forward(x, proxy=proxy, generator=g)
    (grad_recon,) = torch.autograd.grad((out.x_hat - x.detach()).pow(2).mean(), x, retain_graph=True)
    (grad_rate,) = torch.autograd.grad(out.bpp.sum(), x)
    assert torch.isfinite(grad_recon).all() and grad_recon.abs().sum() > 0
    assert torch.isfinite(grad_rate).all() and grad_rate.abs().sum() > 0


def test_the_noise_proxy_reaches_both_models(bop):
    x = image().requires_grad_(True)
    found = {}
    with bop.tree.active("a test"):
        with bop.encoder.proxy("noise", torch.Generator().manual_seed(3)) as twins:
            _, decisions = bop.encoder.differentiable(x)
        for key in ("model_y", "model_uv"):  # luma: through its context model; chroma: its own quantiser
            quantised = decisions["CCS_SGMM"][key]["residual_quant"]
            twin = next(t for dst, t in twins.values() if dst is quantised)
            found[key] = (twin.detach() != twin.detach().round()).float().mean().item()
    assert found["model_y"] > 0.5 and found["model_uv"] > 0.5, found


def test_ste_reconstruction_is_the_encoders_and_bits_track_the_stream(bop):
    from pytest_nicrobust.codecs.base import pad_to_multiple

    x = pad_to_multiple(image(128), bop.multiple)
    with torch.no_grad():
        out = bop.forward(x, proxy="ste")
    streams, encoder_side = bop.encode_bytes(x)
    assert torch.equal(out.x_hat, encoder_side)
    real_bits = 8 * len(streams[0])
    estimated = float(out.bpp[0]) * x.shape[-1] * x.shape[-2]
    assert abs(estimated - real_bits) / real_bits < 0.1, (estimated, real_bits)


def test_check_codec(bop):
    from pytest_nicrobust.codecs import check

    results = check(bop)
    failed = {r.name: r.detail for r in results if not r.passed}
    assert not failed, failed


def test_cwd_torch_settings_and_a_users_src_package_are_untouched(bop, tmp_path, monkeypatch):
    user = tmp_path / "user" / "src"
    user.mkdir(parents=True)
    (user / "__init__.py").write_text("MINE = True\n")
    monkeypatch.syspath_prepend(str(user.parent))
    monkeypatch.delitem(sys.modules, "src", raising=False)
    import src  # a user's own top-level package named like the tree's

    torch.set_num_threads(1)
    before = (
        os.getcwd(),
        torch.get_num_threads(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cuda.matmul.allow_tf32,
        torch.get_float32_matmul_precision(),
        torch.is_grad_enabled(),
    )
    rng = torch.get_rng_state()
    x = image().requires_grad_(True)
    bop.forward(x, proxy="ste").bpp.sum().backward()
    bop.roundtrip(x.detach())
    after = (
        os.getcwd(),
        torch.get_num_threads(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cuda.matmul.allow_tf32,
        torch.get_float32_matmul_precision(),
        torch.is_grad_enabled(),
    )
    assert after == before
    assert torch.equal(torch.get_rng_state(), rng)
    assert sys.modules["src"] is src and src.MINE
    assert not [k for k in sys.modules if k.startswith("src.")]


def test_a_read_only_tree_works_and_is_not_written(tree_copy):
    before = snapshot(tree_copy)
    codec = load(root=tree_copy, label="random-jpegai-ro")
    x = image()
    codec.forward(x.clone().requires_grad_(True), proxy="noise", generator=torch.Generator().manual_seed(1))
    rt = codec.roundtrip(x)
    assert rt.nbytes[0] > 0
    assert snapshot(tree_copy) == before


def test_two_trees_never_mix_modules(bop, tree_copy):
    other = load(root=tree_copy, label="random-jpegai-copy")
    mine = os.path.realpath(bop.tree.modules["src"].__file__)
    theirs = os.path.realpath(other.tree.modules["src"].__file__)
    assert mine.startswith(os.path.realpath(ROOT)) and theirs.startswith(str(tree_copy))
    shared = [k for k in bop.tree.modules if k in other.tree.modules and bop.tree.modules[k] is other.tree.modules[k]]
    assert not shared and len(bop.tree.modules) > 100
    ans = "src.codec.entropy_coding.lib_wrappers.mans.ans"  # native extensions too, each from its own tree
    assert os.path.realpath(other.tree.modules[ans].__file__).startswith(str(tree_copy))
    x = image()
    assert bop.roundtrip(x).nbytes == other.roundtrip(x).nbytes  # the same code and seed: the same stream


def test_exit_and_the_downloader_are_contained(bop, tmp_path):
    from pytest_nicrobust import CodecError

    models = tmp_path / "models" / "VM_bop"
    models.mkdir(parents=True)
    (models / "x.pth.dvc").write_text("outs: []\n")
    with pytest.raises(CodecError, match="exited"), bop.tree.active("a test"):
        downloader = bop.tree.module("src.codec.utils.downloader").Downloader(str(tmp_path / "models"), True)
        downloader.get_file_path("VM_bop", "missing.pth")  # the tree calls exit(-200)
    with pytest.raises(CodecError, match="tried to start a process"), bop.tree.active("a test"):
        downloader = bop.tree.module("src.codec.utils.downloader").Downloader(str(tmp_path / "models"))
        downloader.download_models(["VM_bop"])  # the tree would run dvc
    assert bop.roundtrip(image()).nbytes[0] > 0  # the codec still works


def test_weights_other_than_the_official_are_named_and_lfs_pointers_refused(bop, tmp_path):
    from pytest_nicrobust import CodecError

    models = tmp_path / "models"
    shutil.copytree(bop.models, models)
    trained = load(weights=str(models), label="jpegai")
    identity = trained.identity()
    assert identity["weights_official"] == "not official"
    assert sorted(d.split(" ")[0] for d in identity["weights_not_official"]) == sorted(identity["weights_sha256"])
    assert trained.info.details["weights_official"].startswith("not official: VM_")
    pointer = models / "VM_bop" / "encoder_Y_0.012.pth"
    pointer.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:" + "0" * 64 + "\nsize 2669048\n")
    with pytest.raises(CodecError, match=r"encoder_Y_0.012.pth is a Git LFS pointer .*\(git lfs pull"):
        load(weights=str(models), label="jpegai")


@pytest.fixture(scope="module")
def flat():
    """The same codec as ``bop`` without the gradient through the integer hyperprior."""
    return load(label="random-jpegai-flat", hyper_gradient=False)


def test_the_hyperprior_gradient_keeps_the_forward_and_changes_the_gradient(bop, flat):
    x = image(128)
    outs = []
    for codec in (bop, flat):
        xi = x.clone().requires_grad_(True)
        out = codec.forward(xi, proxy="ste")
        (grad,) = torch.autograd.grad(out.bpp.sum(), xi)
        outs.append((out.x_hat.detach(), out.bpp.detach(), grad))
    (rec, bpp, grad), (flat_rec, flat_bpp, flat_grad) = outs
    assert torch.equal(rec, flat_rec) and torch.equal(bpp, flat_bpp)  # the tree's own forward, bit for bit
    assert (grad - flat_grad).abs().sum() > 0.1 * flat_grad.abs().sum()  # the scales' part of the gradient
    assert bop.identity()["hyper_gradient"] is True and flat.identity()["hyper_gradient"] is False
    assert bop.identity_digest() != flat.identity_digest()  # other gradients, other adversarial images


def test_the_float_scale_decoder_follows_the_integer_one(bop):
    """On a copy of the tree's hyper-scale decoder made integer as trained weights are (weights and
    biases in fixed point, each layer's output scaled to use the 8-bit range of the next layer's
    input, right shifts): the float twin follows the integer output within half a table index."""
    import copy
    import math

    from pytest_nicrobust.codecs.kinds.jpegai.hyperprior import float_scale_decoder

    layers, shift = ("conv1", "depthwise", "pointwise"), 8
    z = torch.randint(-6, 7, (1, 160, 4, 4), generator=torch.Generator().manual_seed(5), dtype=torch.int8)
    with bop.tree.active("a test"):
        decoder = copy.deepcopy(bop.encoder.tool().model_y.common_modules.hyper_scale_decoder)
        peaks = {}
        hooks = [
            getattr(decoder, n).register_forward_hook(lambda m, i, o, n=n: peaks.__setitem__(n, o.abs().max().item()))
            for n in layers
        ]
        decoder(z, 256, 256)  # the float path, for the activations' ranges
        for h in hooks:
            h.remove()
        precision, state, scale_in = decoder.sigma_out_precision, decoder.state_dict(), 0
        for name in layers:  # output units 2**-scale_out: the next input fills [-128, 127]; the scales' own units last
            scale_out = precision if name == "pointwise" else math.floor(math.log2(100 / peaks[name]))
            weight = state[f"{name}.weight"].double() * 2.0 ** (shift + scale_out - scale_in)
            bias = state.get(f"{name}.bias", torch.zeros(weight.shape[0])).double() * 2.0 ** (shift + scale_out)
            state[f"{name}.weight"], state[f"{name}.bias"] = weight.round(), bias.round()
            state[f"{name}.is_quantized"] = torch.tensor([True])
            state[f"{name}.per_channel_shifts"] = torch.full_like(state[f"{name}.per_channel_shifts"], shift)
            scale_in = scale_out
        decoder.load_state_dict(state)
        integer = decoder(z, 256, 256)
        latent = z.float().requires_grad_(True)
        twin = float_scale_decoder(decoder, latent, 256, 256)
        (grad,) = torch.autograd.grad(twin.sum(), latent)
    step = 2.0**precision  # one table index
    assert integer.dtype == torch.int32 and integer.float().std() > 4 * step  # the integer path ran, with spread
    # the integer layers' own rounding (7-bit activations) is noise the twin does not have: it follows on average
    assert (twin.detach() - integer.float()).abs().mean() < step / 2
    assert torch.corrcoef(torch.stack([twin.detach().flatten(), integer.float().flatten()]))[0, 1] > 0.995
    assert grad.abs().sum() > 0


def test_the_hyperprior_gradient_makes_the_bitrate_attack_stronger(bop, flat):
    from pytest_nicrobust.attacks.pgd import PGD

    x = image(128)
    increase = []
    for codec in (flat, bop):
        attacked = PGD(codec, objective="bitrate", proxy="ste", steps=6, seed=11)(x)
        increase.append(codec.roundtrip(attacked).nbytes[0] / codec.roundtrip(x).nbytes[0] - 1)
    assert increase[1] > increase[0] > 0, increase


def test_the_gpu_path_asked_for_on_a_cpu_test_runs_on_the_cpu(bop):
    codec = load(label="random-jpegai-gpu", gpu=True)  # the test's device is the CPU here
    assert codec.tree_device.type == "cpu" and codec.info.details["tree_device"] == "cpu"
    assert codec.identity() == {**bop.identity(), "label": "random-jpegai-gpu"}
    x = image()
    assert codec.encode_bytes(x)[0] == bop.encode_bytes(x)[0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: the tree's GPU path is not measured here")
def test_the_gpu_path_codes_streams_the_cpu_decodes(bop):
    from pytest_nicrobust.codecs import load_codec
    from pytest_nicrobust.codecs.base import pad_to_multiple

    options = {"root": ROOT, "profile": "main", "seed": 0, "gpu": True}
    gpu = load_codec("jpegai", "random", "b0.012", "cuda", "random-jpegai-cuda", options)
    assert gpu.tree_device.type == "cuda" and gpu.identity()["tree_device"] == "cuda"
    x = pad_to_multiple(image(128), 64)
    streams, encoder_side = gpu.encode_bytes(x.cuda())
    decoded = bop.decode_bytes(streams)  # the CPU decoder
    assert torch.equal(decoded, encoder_side), "a stream from the GPU decodes differently on the CPU"
    out = gpu.forward(x.cuda().requires_grad_(True), proxy="ste")
    assert out.x_hat.device.type == "cuda" and torch.isfinite(out.bpp).all()


@pytest.fixture(scope="module")
def hop():
    return load(profile="high", quality="b0.5")


def test_base_and_main_are_the_same_profile_on_either_line(bop):
    from pytest_nicrobust.codecs.kinds.jpegai.table import line

    other = load(profile="base", label="random-jpegai-base")  # bop is "main"
    x = image()
    assert other.info.details["profile_file"] == bop.info.details["profile_file"]
    assert other.info.details["decoder_profile_id"] == 1 and other.info.details["tree_line"] == line(ROOT)
    assert other.encode_bytes(x)[0] == bop.encode_bytes(x)[0]


def test_a_stream_of_another_profile_is_refused(bop, hop):
    from pytest_nicrobust import CodecError
    from pytest_nicrobust.codecs.base import pad_to_multiple

    streams, _ = hop.encode_bytes(pad_to_multiple(image(), hop.multiple))
    with pytest.raises(
        CodecError, match="decoder_profile_id 2.* from the stream's header, but profile 'main' is decoder_profile_id 1"
    ):
        bop.decode_bytes(streams)
    assert hop.decode_bytes(streams).shape[-1] == 64  # its own decoder reads it


def test_hop_runs(hop):
    x = image().requires_grad_(True)
    out = hop.forward(x, proxy="ste")
    (grad,) = torch.autograd.grad(out.x_hat.mean() + out.bpp.sum(), x)
    rt = hop.roundtrip(x.detach())
    assert grad.abs().sum() > 0 and rt.nbytes[0] > 0 and hop.decoder_mismatches == 0
    assert hop.info.details["operation_point"] == "HOP" and hop.identity()["decoder_profile_id"] == 2


SUITE = """
images = 2
crop = 128

[[codecs]]
model = "jpegai"
root = "{root}"
name = "random-jpegai-a"
profile = "main"
qualities = ["b0.012"]
weights = "random"

[[codecs]]
model = "jpegai"
root = "{copy}"
name = "random-jpegai-b"
profile = "main"
qualities = ["b0.012"]
weights = "random"

[[attacks]]
name = "pgd"
presets = ["eps7"]
steps = 2
objectives = ["recon_error", "bitrate"]

[[attacks]]
name = "noise"
presets = ["eps7"]

[[datasets]]
name = "skimage-photos"
"""


def test_a_suite_runs_pgd_and_the_bitrate_objective_on_two_trees(tree_copy, tmp_path):
    from pytest_nicrobust.codecs.kinds.jpegai.table import line

    suite = tmp_path / "jpegai.toml"
    suite.write_text(SUITE.format(root=ROOT, copy=tree_copy))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(suite),
            "-p",
            "no:cacheprovider",
            "-q",
            f"--nicrobust-json={tmp_path / 'results.json'}",
        ],
        capture_output=True,
        text=True,
        timeout=3600,
        env=env,
        cwd=tmp_path,
    )
    assert (tmp_path / "results.json").exists(), proc.stdout[-4000:] + proc.stderr[-2000:]
    doc = json.loads((tmp_path / "results.json").read_text())
    tests = {t["name"]: t for t in doc["tests"]}
    # gate verdicts may fail (default thresholds); nothing may crash or lose images to a codec error
    crashed = [n for n, t in tests.items() if t["kind"] == "crashed" or t.get("errors")]
    assert not crashed, {n: tests[n].get("error") for n in crashed}
    codecs = {t["codec"]["label"]: t["codec"] for t in doc["tests"] if t["kind"] == "case"}
    assert set(codecs) == {"random-jpegai-a", "random-jpegai-b"}
    for c in codecs.values():
        assert c["tree_version"] == f"JAI {line(ROOT)}" and c["tree_line"] == line(ROOT)
        assert c["profile"] == "main" and c["decoder_profile_id"] == 1 and c["operation_point"] == "BOP"
    means = {
        (t["params"]["attack"].split("[")[0], t["params"]["objective"], t["codec"]["label"]): t["modes"][
            t["headline_mode"]
        ]["mean"]
        for t in doc["tests"]
        if t["kind"] == "case"
    }
    for label in codecs:
        noise = next(m for (a, _, lab), m in means.items() if a == "noise" and lab == label)
        assert means[("pgd", "recon_error", label)]["delta_psnr"] > noise["delta_psnr"]
        assert means[("pgd", "bitrate", label)]["bitrate_increase"] > noise["bitrate_increase"]
    transfer = [
        t for t in doc["tests"] if t["kind"] == "transfer" and t["params"]["target"].startswith("random-jpegai-")
    ]
    assert {t["codec"]["label"] for t in transfer} == set(codecs)  # each tree's adversarial images on the other
