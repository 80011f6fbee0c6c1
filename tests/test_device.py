"""One meaning of ``--device`` and ``amp``: the resolver, the precision contexts and the flag on
every ``mggc`` command that computes."""
import pytest
import torch
from torch import nn

from mggc_plugin import device as dev
from mggc_plugin.cli import build_parser, main
from mggc_plugin.deploy import bench as deploy_bench
from mggc_plugin.errors import MGGCUserError

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal where torch sees no CUDA device")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("spec", ["cpu", " CPU ", "Cpu", torch.device("cpu")])
def test_cpu_spellings_resolve_to_the_cpu(spec):
    assert dev.resolve_device(spec) == torch.device("cpu")


@pytest.mark.parametrize("spec", [None, "auto", "AUTO"])
def test_auto_is_cuda_when_available_else_cpu(spec):
    assert dev.resolve_device(spec) == torch.device("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize("spec", ["gpu", "cuda:x", "cuda:-1", "mps", "", "cuda0"])
def test_unknown_values_are_refused_naming_the_value_and_the_choices(spec):
    with pytest.raises(MGGCUserError, match=r"--device .*unknown device; use cpu, cuda, cuda:N .* or auto") as err:
        dev.resolve_device(spec)
    assert f"--device {spec}:" in str(err.value)


def test_a_value_of_another_type_is_refused():
    with pytest.raises(MGGCUserError, match="give a name such as cpu, cuda"):
        dev.resolve_device(0)  # type: ignore[arg-type]


@no_cuda
@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "CUDA:1", torch.device("cuda", 0)])
def test_cuda_without_a_cuda_device_is_one_clear_error(spec):
    with pytest.raises(MGGCUserError, match=r"torch sees no CUDA device here .*use --device cpu"):
        dev.resolve_device(spec)


def test_cuda_indices_are_checked_against_the_device_count(monkeypatch):
    # Resolution only reads the count: two devices are simulated, nothing runs on them.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert dev.resolve_device("cuda") == torch.device("cuda")
    assert dev.resolve_device("cuda:1") == torch.device("cuda", 1)
    assert dev.resolve_device(None) == torch.device("cuda")
    with pytest.raises(MGGCUserError, match=r"--device cuda:2: torch sees 2 CUDA devices \(cuda:0 to cuda:1\)"):
        dev.resolve_device("cuda:2")
    with pytest.raises(MGGCUserError, match="cuda:0 to cuda:1"):
        dev.resolve_device(torch.device("cuda", 7))


def test_amp_settings():
    cpu = torch.device("cpu")
    assert dev.amp_dtype(None, cpu) is None
    assert dev.amp_dtype("bf16", cpu) is torch.bfloat16
    with pytest.raises(MGGCUserError, match="--amp fp16 needs a CUDA device, the device here is cpu: use --amp bf16"):
        dev.amp_dtype("fp16", cpu)
    with pytest.raises(MGGCUserError, match="--amp fp8: choose one of bf16, fp16"):
        dev.amp_dtype("fp8", cpu)


def test_compute_precision_autocasts_only_when_asked():
    cpu = torch.device("cpu")
    layer, x = nn.Linear(4, 3), torch.randn(2, 4)
    with dev.compute_precision(cpu):
        assert layer(x).dtype == torch.float32
    with dev.compute_precision(cpu, "bf16"):
        assert layer(x).dtype == torch.bfloat16
    with pytest.raises(MGGCUserError, match="needs a CUDA device"), dev.compute_precision(cpu, "fp16"):
        pass


def test_exact_float32_restores_the_tf32_settings():
    before = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    with dev.exact_float32():
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == before


#: Every ``mggc`` command that computes, with the arguments it requires (the paths need not exist:
#: the device is resolved before anything is read).
COMMANDS = {
    "demo": ["demo", "--out", "nowhere"],
    "neighbors": ["neighbors", "--dataroot", "d", "--teacher", "t", "--out", "n.pt"],
    "eval fid": ["eval", "fid", "--real", "r", "--fake", "f"],
    "eval kid": ["eval", "kid", "--real", "r", "--fake", "f"],
    "eval paired": ["eval", "paired", "--a", "a", "--b", "b"],
    "eval labels": ["eval", "labels", "--real", "r", "--fake", "f", "--n_classes", "12"],
    "export": ["export", "g.slim.pt"],
    "bench": ["bench", "g.slim.pt"],
}


@pytest.mark.parametrize("command", COMMANDS)
def test_every_computing_command_takes_device(command):
    parser = build_parser()
    assert parser.parse_args(COMMANDS[command] + ["--device", "cpu"]).device == "cpu"
    assert parser.parse_args(COMMANDS[command] + ["--device", "cuda:1"]).device == "cuda:1"
    assert parser.parse_args(COMMANDS[command]).device is None  # auto


@pytest.mark.parametrize("command", COMMANDS)
def test_every_computing_command_refuses_an_unknown_device_in_one_line(command, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(COMMANDS[command] + ["--device", "gpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mggc {command.split()[0]}: error: --device gpu: unknown device") and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []  # refused before any work


@no_cuda
@pytest.mark.parametrize("command", COMMANDS)
def test_every_computing_command_refuses_cuda_without_a_cuda_device(command, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(COMMANDS[command] + ["--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "--device cuda: torch sees no CUDA device here" in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_neighbors_refuses_fp16_on_the_cpu_before_any_work(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(COMMANDS["neighbors"] + ["--device", "cpu", "--amp", "fp16"]) == 2
    assert "--amp fp16 needs a CUDA device, the device here is cpu: use --amp bf16" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_bench_runtimes_run_where_they_can(monkeypatch):
    cuda, cpu = torch.device("cuda", 0), torch.device("cpu")
    monkeypatch.setattr(deploy_bench.onnx_export, "cuda_provider_available", lambda: False)
    assert [deploy_bench.runtime_device(r, cuda) for r in deploy_bench.RUNTIMES] == [cuda, cuda, cuda, cpu, cpu, cpu]
    monkeypatch.setattr(deploy_bench.onnx_export, "cuda_provider_available", lambda: True)
    assert [deploy_bench.runtime_device(r, cuda) for r in deploy_bench.RUNTIMES] == [cuda, cuda, cuda, cuda, cpu, cpu]
    assert {deploy_bench.runtime_device(r, cpu) for r in deploy_bench.RUNTIMES} == {cpu}


@needs_cuda
def test_cuda_indices_on_this_machine():
    count = torch.cuda.device_count()
    assert dev.resolve_device(f"cuda:{count - 1}") == torch.device("cuda", count - 1)
    with pytest.raises(MGGCUserError, match=f"torch sees {count} CUDA device"):
        dev.resolve_device(f"cuda:{count}")
    with dev.compute_precision(torch.device("cuda"), "fp16"):
        assert nn.Linear(4, 3).cuda()(torch.randn(2, 4, device="cuda")).dtype == torch.float16


def test_an_rng_stream_draws_its_seeded_sequence_and_leaves_the_callers_alone():
    cpu = torch.device("cpu")
    torch.manual_seed(123)
    caller_next = torch.rand(3)
    torch.manual_seed(123)
    stream = dev.RNGStream(7, cpu)
    with stream.drawing():
        first = torch.rand(3)
    assert torch.equal(torch.rand(3), caller_next)  # the caller's stream did not move
    with stream.drawing():
        second = torch.rand(3)  # the stream goes on where it stopped
    torch.manual_seed(7)
    assert torch.equal(torch.cat([first, second]), torch.rand(6))
    torch.manual_seed(999)  # whatever the caller drew before, a stream of one seed draws alike
    with dev.RNGStream(7, cpu).drawing():
        assert torch.equal(torch.rand(3), first)
