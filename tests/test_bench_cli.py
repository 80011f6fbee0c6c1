"""``mggc bench`` times a slim model beside its teacher and skips runtimes that are not installed."""
import json

import torch

from mggc_plugin import ChannelGroups, count_macs, networks, save_slim, slim
from mggc_plugin.cli import main
from mggc_plugin.deploy import runtimes


def test_bench_writes_its_table_and_skips_a_missing_runtime(tmp_path, monkeypatch, capsys):
    torch.manual_seed(0)
    G = networks.define_G(3, 3, 8, "resnet_6blocks", norm="instance")
    groups = ChannelGroups.discover(G, torch.zeros(1, 3, 32, 32))
    small = slim(G, groups, [torch.arange(n) % 2 == 0 for n in groups.sizes])
    save_slim(small, tmp_path / "g.slim.pt")
    torch.save(G.state_dict(), tmp_path / "latest_net_G.pth")
    real = runtimes.missing
    monkeypatch.setattr(runtimes, "missing", lambda modules: ["onnxruntime"] if "onnxruntime" in modules
                        else real(modules))
    out = tmp_path / "res" / "bench.json"
    assert main(["bench", str(tmp_path / "g.slim.pt"), "--teacher", str(tmp_path), "--runtimes", "eager",
                 "onnxruntime", "--batch", "1", "--threads", "1", "--runs", "2", "--warmup", "0",
                 "--warm_s", "0.01", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    table = (tmp_path / "res" / "bench.md").read_text()
    hint = "pip install 'mggc-plugin[export]'"
    assert hint in result["skipped"]["onnxruntime"] and f"Skipped onnxruntime: the onnxruntime runtime needs " \
                                                          f"onnxruntime: {hint}" in table
    assert [(r["model"], r["runtime"]) for r in result["rows"]] == [("teacher", "eager"), ("g.slim", "eager")]
    ideal = count_macs(G, (1, 3, 32, 32)).total / count_macs(small, (1, 3, 32, 32)).total
    assert abs(result["rows"][1]["ideal_speedup"] - ideal) < 1e-9 and result["rows"][0]["speedup"] == 1.0
    assert "| g.slim | eager | 1 | 1 |" in table and "| teacher | eager | 1 | 1 |" in table
    assert result["machine"]["cores"] and "torch" in result["machine"]["versions"]
    assert result["warm_s"] == 0.01 and "each network run back to back for 0.01 s before each timed pass" in table
    assert "wrote " + str(out) in capsys.readouterr().out


def test_channels_last_eager_computes_the_same_in_nhwc(tmp_path):
    from mggc_plugin.deploy.bench import ChannelsLast, deployable, prepare

    torch.manual_seed(0)
    G = networks.define_G(3, 3, 8, "unet_128", norm="batch").eval()
    x = torch.rand(1, 3, 128, 128)
    model = deployable("g", G, x.shape)
    net = prepare("eager_channels_last", model, x, 1, tmp_path)
    assert isinstance(net, ChannelsLast)
    assert next(p for p in net.parameters() if p.dim() == 4).is_contiguous(memory_format=torch.channels_last)
    assert not next(p for p in model.module.parameters() if p.dim() == 4).is_contiguous(
        memory_format=torch.channels_last), "the deployed module itself stays NCHW for the other runtimes"
    with torch.no_grad():
        assert torch.allclose(net(x), model.module(x), atol=1e-5)
