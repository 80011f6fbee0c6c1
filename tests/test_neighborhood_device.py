"""The neighbourhood stage on a chosen device: caches hold no device and are reused on any, mixed
precision (amp) is part of the keys it changes, fp16 is refused on the CPU. Tests marked
``needs_cuda`` check the GPU side (cross-device tolerance, fp16) where a CUDA device exists."""
import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from mggc_plugin import encoders, networks
from mggc_plugin import neighborhoods as nbh
from mggc_plugin.encoders import SwAVConfig, SwAVEncoder, SwAVNet
from mggc_plugin.errors import MGGCUserError
from mggc_plugin.neighborhoods.pipeline import embeddings_key

SIZE = 32
TINY_SWAV = SwAVConfig(arch="resnet18", feat_dim=16, hidden_mlp=0, n_prototypes=8, size_crops=(32, 16),
                       nmb_crops=(2, 2), min_scale_crops=(0.5, 0.2), max_scale_crops=(1.0, 0.5), epochs=1,
                       warmup_epochs=0, batch_size=4)
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture
def setup(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "data" / "train").mkdir(parents=True)
    for i in range(10):
        Image.fromarray(rng.integers(0, 256, (SIZE, 2 * SIZE, 3), dtype=np.uint8)).save(
            tmp_path / "data" / "train" / f"{i}.png")
    torch.manual_seed(0)
    torch.save(networks.define_G(3, 3, 4, "resnet_6blocks", "instance").state_dict(), tmp_path / "G.pth")
    teacher = nbh.TeacherSpec(tmp_path / "G.pth", "resnet_6blocks", ngf=4, norm="instance")
    return nbh.DatasetSpec(tmp_path / "data", "aligned", "AtoB"), teacher, nbh.Preprocess(SIZE)


def keys_of(obj):
    """Every dict key anywhere in ``obj``."""
    if isinstance(obj, dict):
        return set(obj) | set().union(*(keys_of(v) for v in obj.values()))
    if isinstance(obj, (list, tuple)):
        return set().union(*(keys_of(v) for v in obj)) if obj else set()
    return set()


def tiny_encoder(device="cpu", amp=None):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = SwAVNet("resnet18", 16, 0, 8)
    return SwAVEncoder(net, SIZE, device=device, amp=amp)


def outputs_of(setup, root, device="cpu"):
    dataset, teacher, pre = setup
    return nbh.build_teacher_outputs(root, dataset, teacher, pre, batch_size=4, progress=False, device=device)


def test_teacher_outputs_hold_no_device_and_are_reused_under_any_device_name(setup, tmp_path):
    outputs, report = outputs_of(setup, tmp_path / "cache", "cpu")
    assert not report.reused and report.computed == 10
    manifest = json.loads((tmp_path / "cache" / "manifest.json").read_text())
    assert "device" not in keys_of(manifest)
    for other in ("auto", " CPU ", None):  # on a CUDA machine, auto and None build on the GPU: still reused
        again, report = outputs_of(setup, tmp_path / "cache", other)
        assert report.reused and again.digest == outputs.digest


def test_embeddings_are_reused_on_any_device_but_not_across_amp(setup, tmp_path, caplog):
    outputs, _ = outputs_of(setup, tmp_path / "cache" / "teacher_outputs")
    cache = tmp_path / "cache"
    enc_key = {"name": "tiny"}
    caplog.set_level(logging.INFO, logger="mggc_plugin.neighborhoods")
    fp32 = nbh.build_embeddings(cache, outputs, tiny_encoder("cpu"), enc_key, progress=False)
    stored = torch.load(cache / "embeddings.pt", weights_only=True)
    assert stored["key"] == embeddings_key(outputs, enc_key, None) and "device" not in keys_of(stored["key"])
    assert stored["embeddings"].device.type == "cpu" and stored["embeddings"].dtype == torch.float32

    caplog.clear()
    again = nbh.build_embeddings(cache, outputs, tiny_encoder("auto"), enc_key, progress=False)
    assert "embeddings: reusing" in caplog.text and torch.equal(again, fp32)

    caplog.clear()
    bf16 = nbh.build_embeddings(cache, outputs, tiny_encoder("cpu", "bf16"), enc_key, progress=False)
    assert "embeddings: reusing" not in caplog.text
    assert torch.load(cache / "embeddings.pt", weights_only=True)["key"]["amp"] == "bf16"
    assert bf16.dtype == torch.float32 and not torch.equal(bf16, fp32)
    rel = ((bf16 - fp32).norm(dim=1) / fp32.norm(dim=1)).max()
    assert rel < 0.05  # bfloat16 keeps 8 bits of mantissa: ~1e-2 relative at most

    caplog.clear()
    back = nbh.build_embeddings(cache, outputs, tiny_encoder("cpu"), enc_key, progress=False)
    assert "embeddings: reusing" not in caplog.text and torch.equal(back, fp32)


def test_swav_with_bf16_on_the_cpu_and_its_fingerprint(setup, tmp_path, caplog):
    dataset, teacher, pre = setup
    caplog.set_level(logging.INFO, logger="mggc_plugin.neighborhoods")
    out, cache = tmp_path / "nb.pt", tmp_path / "cache"

    def build(amp):
        return nbh.build_neighborhoods(dataset, teacher, pre, out, cache, k=3, encoder="swav", swav_config=TINY_SWAV,
                                       progress=False, device="cpu", amp=amp)

    nb, _ = build("bf16")
    meta = nb.metadata["encoder"]
    assert meta["amp"] == "bf16" and meta["train_amp"] == "bf16" and np.isfinite(meta["final_loss"])
    trained = torch.load(cache / "encoder_swav.pt", weights_only=True)
    assert trained["fingerprint"]["amp"] == "bf16" and "device" not in keys_of(trained["fingerprint"])
    assert all(t.device.type == "cpu" and t.dtype != torch.bfloat16 for t in trained["model"].values())

    caplog.clear()
    nb32, _ = build(None)
    assert "trained differently: retraining" in caplog.text and "embeddings: reusing" not in caplog.text
    assert nb32.metadata["encoder"]["amp"] is None and "train_amp" not in nb32.metadata["encoder"]
    assert "amp" not in torch.load(cache / "encoder_swav.pt", weights_only=True)["fingerprint"]

    caplog.clear()
    build(None)
    assert "encoder: reusing SwAV" in caplog.text and "embeddings: reusing" in caplog.text


def test_fp16_is_refused_on_the_cpu_before_any_work(setup, tmp_path):
    dataset, teacher, pre = setup
    with pytest.raises(MGGCUserError, match="--amp fp16 needs a CUDA device, the device here is cpu"):
        nbh.build_neighborhoods(dataset, teacher, pre, tmp_path / "nb.pt", tmp_path / "cache", k=3,
                                device="cpu", amp="fp16")
    assert not (tmp_path / "cache").exists()
    with pytest.raises(MGGCUserError, match="needs a CUDA device"):
        encoders.train_swav(SwAVNet("resnet18", 16, 0, 8), [Image.new("RGB", (SIZE, SIZE))] * 4, TINY_SWAV,
                            progress=False, device="cpu", amp="fp16")
    with pytest.raises(MGGCUserError, match="needs a CUDA device"):
        encoders.InceptionEncoder("cpu", "fp16")
    with pytest.raises(MGGCUserError, match="needs a CUDA device"):
        tiny_encoder("cpu", "fp16")


@pytest.mark.fid_wheel
def test_inception_embeds_in_bf16_on_the_cpu():
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    fp32 = encoders.InceptionEncoder("cpu").embed(x)
    bf16 = encoders.InceptionEncoder("cpu", "bf16")
    e = bf16.embed(x)
    assert e.dtype == torch.float32 and bf16.describe()["amp"] == "bf16" and not torch.equal(e, fp32)
    assert ((e - fp32).norm(dim=1) / fp32.norm(dim=1)).max() < 0.05


def test_topk_returns_cpu_tensors_from_any_device():
    x = torch.randn(50, 8, generator=torch.Generator().manual_seed(0))
    i_cpu, v_cpu = nbh.topk_cosine(x, 5, chunk_size=16)
    i_auto, v_auto = nbh.topk_cosine(x, 5, chunk_size=16, device="auto")
    assert i_auto.device.type == v_auto.device.type == "cpu"
    assert torch.equal(i_auto, i_cpu) and torch.allclose(v_auto, v_cpu, rtol=1e-5, atol=1e-6)


@needs_cuda
def test_a_cache_built_on_the_cpu_is_reused_on_cuda_and_matches_a_cuda_build(setup, tmp_path):
    cpu, _ = outputs_of(setup, tmp_path / "cpu", "cpu")
    _, report = outputs_of(setup, tmp_path / "cpu", "cuda")
    assert report.reused
    gpu, report = outputs_of(setup, tmp_path / "cuda", "cuda")
    assert not report.reused
    a = np.stack([np.asarray(cpu.image(i)).astype(int) for i in range(len(cpu))])
    b = np.stack([np.asarray(gpu.image(i)).astype(int) for i in range(len(gpu))])
    assert np.abs(a - b).max() <= 1 and (a != b).mean() < 1e-2  # the docstring's tolerance: one 8-bit level, rarely

    emb_cpu = nbh.build_embeddings(tmp_path / "e_cpu", cpu, tiny_encoder("cpu"), {"n": 1}, progress=False)
    emb_gpu = nbh.build_embeddings(tmp_path / "e_gpu", cpu, tiny_encoder("cuda"), {"n": 1}, progress=False)
    assert emb_gpu.device.type == "cpu"
    assert ((emb_gpu - emb_cpu).norm(dim=1) / emb_cpu.norm(dim=1)).max() < 1e-4
    i_cpu, v_cpu = nbh.topk_cosine(emb_cpu, 3, device="cpu")
    i_gpu, v_gpu = nbh.topk_cosine(emb_cpu, 3, device="cuda")
    torch.testing.assert_close(v_gpu, v_cpu, rtol=1e-5, atol=1e-6)
    # lists may differ only where the similarities tie within the tolerance
    differ = (i_gpu != i_cpu).any(dim=1)
    gaps = (v_cpu[:, :-1] - v_cpu[:, 1:]).abs().min(dim=1).values
    assert bool((gaps[differ] < 1e-5).all())


@needs_cuda
@pytest.mark.parametrize("amp", ["fp16", "bf16"])
def test_swav_trains_with_amp_on_cuda_and_saves_cpu_states(amp):
    if amp == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bfloat16")
    images = [Image.fromarray(np.random.default_rng(i).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8))
              for i in range(8)]
    states = []
    net = SwAVNet("resnet18", 16, 0, 8)
    losses = encoders.train_swav(net, images, TINY_SWAV, on_epoch_end=states.append, progress=False, device="cuda",
                                 amp=amp)
    assert np.isfinite(losses).all() and next(net.parameters()).device.type == "cuda"
    state = states[-1]
    assert all(t.device.type == "cpu" for t in state.model.values())
    assert (state.scaler is not None) == (amp == "fp16")
    e = SwAVEncoder(net, SIZE, amp=amp).embed(torch.rand(2, 3, SIZE, SIZE) * 2 - 1)
    assert e.dtype == torch.float32 and torch.isfinite(e).all()
