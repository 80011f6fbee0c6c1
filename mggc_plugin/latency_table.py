"""Latency as the budget of Eq. 5: T(v) in milliseconds on a target runtime instead of MACs.

Beyond the paper, whose T counts MACs (issue 14, part 5). MACs are a poor proxy for speed at
small widths (``benchmarks/results/speed_gap.md``: 10 % of a ResNet's MACs ran 7.2× faster, not
10×), so a game that budgets MACs does not know which of two equally costly channels is the
slower one. A :class:`LatencyTable` is measured once, on the machine and runtime the generator
will run on, and gives a differentiable estimate of the sub-network's latency::

    T_ms(v) = Σ_layers ℓ_layer(a_in, a_out) + κ · Σ_groups E_g · a_g + c_0

* ``ℓ_layer``: every counted layer (convolution, transposed convolution, linear) timed *alone*
  (on OpenVINO by its nodes' performance counters, :func:`layer_timing`),
  rebuilt at a grid of input × output widths (:data:`FRACTIONS` of its prunable channels) and
  fed an input of the shape it sees in the network, the measurements made non-decreasing in
  both widths (noise aside, a wider layer is never faster); between grid points the table is
  interpolated bilinearly, beyond them extrapolated linearly (clamped at 0 ms). ``a_in`` and
  ``a_out`` are the layer's kept channels under the gates (:meth:`ChannelGroups.widths`), so
  the estimate is piecewise linear and differentiable in the gates, as the MAC model is.
* ``κ · E_g · a_g``: what the layers alone miss — norms, activations, padding, additions —
  taken as proportional to the activation elements of the groups (``E_g``: elements per channel
  of group g's output, ``a_g``: its kept channels); ``κ`` and ``c_0`` are fitted by least
  squares to the whole network, slimmed uniformly to each fraction, prepared as ``mggc bench``
  deploys it (BatchNorm folded) and timed on the same runtime. :attr:`LatencyTable.fit` keeps
  those measurements beside the estimate, so the table says how well it predicts whole networks.

No library builds such tables for arbitrary PyTorch networks offline (the latency look-up tables
of once-for-all and FBNet are per-device block tables for their own search spaces), hence this
module. Timing uses :func:`mggc_plugin.metrics.latency` on the runtimes of ``mggc bench``
(:func:`mggc_plugin.deploy.bench.prepare`).
"""
from __future__ import annotations

import bisect
import contextlib
import copy
import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .channels import ChannelGroups, CountedLayerWidths
from .deploy import bench
from .deploy.openvino import profile
from .deploy.subpixel import conv_transposes_as_subpixel, interleave_for, rewritable
from .fileio import atomic_write_json
from .metrics.timing import latency
from .slim import slim

PathLike = Union[str, Path]
#: Widths at which each layer is timed, as fractions of its prunable channels.
FRACTIONS = (0.125, 0.25, 0.5, 0.75, 1.0)
#: Seconds a layer alone runs back to back before each profiled pass: a freshly compiled layer's
#: first passes varied widely (0.06–1.9 ms for one small convolution), and one slow pass
#: at a narrow width would raise every wider one (the table is made monotone by running maxima).
LAYER_WARM_S = 0.05
VERSION = 1


@dataclass(frozen=True)
class LayerLatency:
    """One counted layer's measured latencies: ``ms[i][j]`` at ``in_widths[i]`` input and
    ``out_widths[j]`` output channels (a depthwise layer has ``in_widths == (0,)``: its input
    width is its output width)."""

    name: str
    in_widths: Tuple[int, ...]
    out_widths: Tuple[int, ...]
    ms: Tuple[Tuple[float, ...], ...]

    def __call__(self, a_in: torch.Tensor, a_out: torch.Tensor) -> torch.Tensor:
        """The interpolated latency at ``a_in`` × ``a_out`` kept channels, in ms (≥ 0)."""
        total = sum(w_in * w_out * self.ms[i][j] for i, w_in in _weights(self.in_widths, a_in)
                    for j, w_out in _weights(self.out_widths, a_out))
        return torch.as_tensor(total, dtype=torch.float64).clamp(min=0.0)


def _weights(grid: Sequence[int], a: torch.Tensor) -> List[Tuple[int, torch.Tensor]]:
    """Piecewise-linear weights of the grid points around ``a`` (linear extrapolation beyond the
    ends); a grid of one point has weight 1."""
    if len(grid) == 1:
        return [(0, a.new_ones(()))]
    i = min(max(bisect.bisect_right(grid, float(a.detach())) - 1, 0), len(grid) - 2)
    t = (a - grid[i]) / (grid[i + 1] - grid[i])
    return [(i, 1.0 - t), (i + 1, t)]


@dataclass(frozen=True)
class LatencyTable:
    """A generator's latency model on one runtime (module docstring). ``input_shape``: the
    input it was measured at (batch included); ``group_sizes``: the channel groups it belongs
    to; ``group_elements``: E_g; ``per_element_ms`` (κ) and ``overhead_ms`` (c_0): the fitted
    rest; ``fit``: per uniform fraction, the whole network's measured and estimated ms;
    ``machine``: where it was measured (:func:`mggc_plugin.deploy.bench.machine`); ``subpixel``:
    whether U-Net transposed convolutions were timed as sub-pixel convolutions, as ``mggc export``
    writes ONNX and OpenVINO files (:mod:`mggc_plugin.deploy.subpixel`); ``layer_timing``: how
    each layer alone was timed (:func:`layer_timing`; tables written before it was recorded were
    wall-timed)."""

    input_shape: Tuple[int, ...]
    runtime: str
    threads: int
    group_sizes: Tuple[int, ...]
    group_elements: Tuple[float, ...]
    layers: Tuple[LayerLatency, ...]
    per_element_ms: float
    overhead_ms: float
    fit: Tuple[Dict[str, float], ...]
    machine: Dict[str, Any]
    subpixel: bool = False
    layer_timing: str = "wall"

    def check(self, groups: ChannelGroups) -> None:
        """Raise ValueError unless the table was measured for a network with ``groups``'s
        channel groups and counted layers at its input shape."""
        ours = [(layer.name, layer.in_channels, layer.out_channels) for layer in groups.layers]
        theirs = [(layer.name, layer.in_widths[-1], layer.out_widths[-1]) for layer in self.layers]
        depthwise = {layer.name for layer in groups.layers if layer.depthwise}
        theirs = [(n, o if n in depthwise else i, o) for n, i, o in theirs]
        if (tuple(groups.input_shape) != self.input_shape or tuple(groups.sizes) != self.group_sizes
                or ours != theirs):
            raise ValueError(f"the latency table was measured for another network or input (input "
                             f"{list(self.input_shape)}, groups {list(self.group_sizes)}; this one: input "
                             f"{list(groups.input_shape)}, groups {groups.sizes}): measure one for this generator at "
                             f"this input shape (mggc_plugin.latency_table.measure)")

    def __call__(self, groups: ChannelGroups, gates: Sequence[torch.Tensor]) -> torch.Tensor:
        """T_ms(v): the estimated latency in ms of the sub-network ``gates`` select (a float64
        0-d tensor, differentiable in the gates). ``groups`` must be the table's (:meth:`check`)."""
        widths = groups.widths(gates)
        total = torch.full((), self.overhead_ms, dtype=torch.float64, device=widths[0][1].device)
        for layer, (a_in, a_out) in zip(self.layers, widths):
            total = total + layer(a_in, a_out)
        kept = [torch.as_tensor(v).double().sum() for v in gates]
        return total + self.per_element_ms * sum(e * a.to(total.device) for e, a in zip(self.group_elements, kept))

    def span(self, groups: ChannelGroups) -> Tuple[float, float]:
        """The estimate with every group at zero channels (the latency no gate can remove,
        extrapolated) and at full width."""
        return (float(self(groups, [torch.zeros(n) for n in groups.sizes])),
                float(self(groups, [torch.ones(n) for n in groups.sizes])))

    @property
    def full_ms(self) -> float:
        """The whole network's measured latency at full width."""
        return max(self.fit, key=lambda row: row["fraction"])["measured_ms"]

    def to_dict(self) -> Dict[str, Any]:
        return {"version": VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "LatencyTable":
        if d.get("version") != VERSION:
            raise ValueError(f"latency table version {d.get('version')!r}: this mggc-plugin reads version {VERSION}; "
                             f"measure the table again")
        layers = tuple(LayerLatency(layer["name"], tuple(layer["in_widths"]), tuple(layer["out_widths"]),
                                    tuple(tuple(row) for row in layer["ms"])) for layer in d["layers"])
        return cls(tuple(d["input_shape"]), d["runtime"], int(d["threads"]), tuple(d["group_sizes"]),
                   tuple(d["group_elements"]), layers, float(d["per_element_ms"]), float(d["overhead_ms"]),
                   tuple(d["fit"]), dict(d["machine"]), bool(d.get("subpixel", False)),
                   str(d.get("layer_timing", "wall")))

    def save(self, path: PathLike) -> Path:
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: PathLike) -> "LatencyTable":
        return cls.from_dict(json.loads(Path(path).read_text()))


def _grid(full: int, fixed: int, fractions: Sequence[float]) -> Tuple[int, ...]:
    """The widths to time: ``fixed`` plus each fraction of the ``full - fixed`` prunable
    channels, at least one channel, without repeats."""
    prunable = full - fixed
    return tuple(sorted({max(1, fixed + round(f * prunable)) for f in fractions} | {full}))


def _replica(m: nn.Module, c_in: int, c_out: int, depthwise: bool) -> nn.Module:
    """A fresh layer of ``m``'s kind and hyper-parameters with ``c_in`` inputs and ``c_out``
    outputs (random weights: the time does not depend on them)."""
    if isinstance(m, nn.Linear):
        return nn.Linear(c_in, c_out, bias=m.bias is not None)
    if isinstance(m, nn.modules.conv._ConvNd):
        kwargs: Dict[str, Any] = dict(kernel_size=m.kernel_size, stride=m.stride, padding=m.padding,
                                      dilation=m.dilation, groups=c_out if depthwise else 1,
                                      bias=m.bias is not None, padding_mode=m.padding_mode)
        if m.transposed:
            kwargs["output_padding"] = m.output_padding
        return type(m)(c_out if depthwise else c_in, c_out, **kwargs)
    raise ValueError(f"{type(m).__name__} is not a counted layer: only convolutions and linear layers are timed")


def _with_channels(shape: Sequence[int], channels: int, linear: bool) -> Tuple[int, ...]:
    out = list(shape)
    out[-1 if linear else 1] = channels
    return tuple(out)


class _Timer:
    """Milliseconds of one forward pass of a module on ``runtime`` with ``threads`` threads; a
    layer alone timed as ``timing`` says (default: :func:`layer_timing`)."""

    def __init__(self, runtime: str, threads: int, runs: int, warmup: int, work: Path, subpixel: bool = False,
                 timing: Optional[str] = None):
        if runtime not in bench.RUNTIMES:
            raise ValueError(f"runtime={runtime!r}: choose one of {', '.join(bench.RUNTIMES)}")
        reason = bench.runtime_unavailable(runtime)
        if reason is not None:
            raise ValueError(reason)
        self.runtime, self.threads, self.runs, self.warmup, self.work = runtime, threads, runs, warmup, work
        self.subpixel = subpixel
        self.timing = layer_timing(runtime) if timing is None else timing
        self.count = 0

    def __call__(self, module: nn.Module, shape: Tuple[int, ...]) -> float:
        """Wall time of ``module`` as deployed on the runtime (a whole network)."""
        model = self._model(module)
        net = (model.module if self.runtime == "eager"
               else bench.prepare(self.runtime, model, torch.zeros(shape), self.threads, self.work))
        return 1000.0 * latency(net, shape, runs=self.runs, warmup=self.warmup)

    def layer(self, module: nn.Module, shape: Tuple[int, ...]) -> float:
        """Time of one layer alone, as ``timing`` says (:func:`layer_timing`): its wall time, or
        the sum of its executed nodes but the reorders."""
        if self.timing == "wall":
            return self(module, shape)
        x = torch.zeros(shape)
        xml = bench.exported_ir(self._model(module), x, self.work)
        nodes = profile({"layer": xml}, x, self.runs, self.threads, exact=self.runtime not in bench.REDUCED_PRECISION,
                        warm_s=LAYER_WARM_S, require_macs=False)
        return sum(node.ms for node in nodes["layer"] if node.kind != "reorder")

    def _model(self, module: nn.Module) -> bench.BenchModel:
        self.count += 1
        module = module.eval()
        if self.subpixel:
            module = conv_transposes_as_subpixel(module, interleave_for(self.runtime))[0]
        return bench.BenchModel(f"m{self.count}", module, 0.0, 0)


def layer_timing(runtime: str) -> str:
    """How :func:`measure` times a layer alone on ``runtime``: ``"wall"`` (a pass's wall time) or,
    on OpenVINO, ``"node counters"``: the layer's executed nodes by the plugin's performance
    counters, without the reorders into and out of its blocked channel layout. A layer alone
    needs those at its input and output, where inside the network its neighbours take the layout
    as it is; on a 2-core AMD EPYC the output reorder of a 64-channel 256² float32 activation took
    57 ms beside the 8.8 ms of the convolution that made it, so that wall-timed tables estimated
    whole networks at 1.2–5× their measured time (``benchmarks/results/latency_table_timing.md``)."""
    return "node counters" if runtime in bench.OPENVINO_RUNTIMES else "wall"


@contextlib.contextmanager
def _threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _shapes(model: nn.Module, groups: ChannelGroups) -> Tuple[Dict[str, Tuple[int, ...]], Dict[str, Tuple[int, ...]]]:
    """Input and output shape of every counted layer in one forward pass at the groups' input shape."""
    modules = dict(model.named_modules())
    inputs: Dict[str, Tuple[int, ...]] = {}
    outputs: Dict[str, Tuple[int, ...]] = {}
    handles = []
    for layer in groups.layers:
        def hook(module: nn.Module, args: tuple, out: torch.Tensor, name: str = layer.name) -> None:
            inputs[name], outputs[name] = tuple(args[0].shape), tuple(out.shape)
        handles.append(modules[layer.name].register_forward_hook(hook))
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(groups.input_shape, device=next(model.parameters()).device))
    finally:
        for h in handles:
            h.remove()
    return inputs, outputs


def _uniform_masks(groups: ChannelGroups, fraction: float) -> List[torch.Tensor]:
    masks = []
    for n in groups.sizes:
        mask = torch.zeros(n, dtype=torch.bool)
        mask[:max(1, round(fraction * n))] = True
        masks.append(mask)
    return masks


def measure(model: nn.Module, groups: ChannelGroups, runtime: str = "eager", threads: int = 1,
            fractions: Sequence[float] = FRACTIONS, runs: int = 5, warmup: int = 2,
            work: Optional[PathLike] = None, progress: bool = True, subpixel: bool = False,
            timing: Optional[str] = None) -> LatencyTable:
    """Measure ``model``'s :class:`LatencyTable` on ``runtime`` (one of ``mggc bench``'s) with
    ``threads`` threads, at ``groups``'s input shape: every counted layer at each grid width
    (``fractions`` of its prunable channels, plus the full width), then the whole network
    slimmed uniformly to each fraction for the fit of κ and c_0. A whole network's time is the
    median wall time of ``runs`` passes after ``warmup``; a layer's is timed as
    :func:`layer_timing` says for ``runtime`` (on OpenVINO the mean of ``runs`` profiled passes
    after one; ``timing="wall"`` wall-times them there too, as tables before
    :func:`layer_timing` did). ``work``: where exported graphs go (a temporary folder by
    default). ``subpixel``: time U-Net transposed convolutions, alone and in the network, as the
    sub-pixel convolutions ``mggc export`` writes to ONNX and OpenVINO files. Run it on the machine
    the generator will be deployed on, with nothing else busy.
    """
    if not fractions or any(not 0 < f <= 1 for f in fractions):
        raise ValueError(f"fractions={list(fractions)}: give widths as fractions in (0, 1]")
    timing = layer_timing(runtime) if timing is None else timing
    if timing not in ("wall", layer_timing(runtime)):
        raise ValueError(f"timing={timing!r}: on {runtime} layers are timed 'wall' or {layer_timing(runtime)!r}")
    fractions = tuple(sorted(set(fractions) | {1.0}))
    model = copy.deepcopy(model).cpu().eval()
    inputs, outputs = _shapes(model, groups)
    modules = dict(model.named_modules())
    with contextlib.ExitStack() as stack:
        folder = Path(work) if work is not None else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        stack.enter_context(_threads(threads))
        timer = _Timer(runtime, threads, runs, warmup, folder, subpixel, timing)
        jobs = [(layer, _grid(layer.in_channels, layer.fixed_in, fractions) if not layer.depthwise else (0,),
                 _grid(layer.out_channels, layer.fixed_out, fractions)) for layer in groups.layers]
        bar = tqdm(total=sum(len(i) * len(o) for _, i, o in jobs) + len(fractions), desc="latency table",
                   unit="timing", disable=not progress)
        layers = [_measure_layer(modules[layer.name], layer, in_grid, out_grid, inputs[layer.name], timer, bar)
                  for layer, in_grid, out_grid in jobs]
        elements = []
        for group in groups:
            shape = outputs[group.root]
            elements.append(float(np.prod(shape)) / shape[-1 if isinstance(modules[group.root], nn.Linear) else 1])
        rows = []
        for f in fractions:
            masks = _uniform_masks(groups, f)
            # As deployed (mggc bench, mggc export): BatchNorm folded into the convolutions.
            student = bench.deployable(f"uniform{f:g}", slim(model, groups, masks), groups.input_shape).module
            measured = timer(student, groups.input_shape)
            bar.update(1)
            layer_ms = float(sum(layer(a_in, a_out) for layer, (a_in, a_out) in zip(layers, groups.widths(masks))))
            x = sum(e * float(m.sum()) for e, m in zip(elements, masks))
            rows.append((f, measured, layer_ms, x))
        bar.close()
    kappa, c0 = _fit_rest([r[1] - r[2] for r in rows], [r[3] for r in rows])
    fit = tuple({"fraction": f, "measured_ms": measured, "estimated_ms": layer_ms + kappa * x + c0}
                for f, measured, layer_ms, x in rows)
    return LatencyTable(tuple(groups.input_shape), runtime, threads, tuple(groups.sizes), tuple(elements),
                        tuple(layers), kappa, c0, fit, bench.machine(), subpixel, timing)


def times_subpixel(model: nn.Module, subpixel: bool) -> bool:
    """Whether :func:`measure` with ``subpixel`` times any layer of ``model`` as a sub-pixel
    convolution: only where it has a transposed convolution to rewrite
    (:func:`~mggc_plugin.deploy.subpixel.rewritable`); a ResNet's table is the same either way."""
    return subpixel and any(rewritable(m) for m in model.modules())


def load_or_measure(path: PathLike, model: nn.Module, groups: ChannelGroups, runtime: str, threads: int = 1,
                    timing: Optional[str] = None, subpixel: bool = False, **options: Any) -> LatencyTable:
    """The table at ``path`` when it was measured for ``groups`` on ``runtime`` with ``threads``
    threads, its layers timed as ``timing`` (default :func:`layer_timing`) and its U-Net
    transposed convolutions as ``subpixel`` says (:func:`times_subpixel`); else :func:`measure`
    (``options``: its other keyword arguments), saved at ``path``."""
    timing = layer_timing(runtime) if timing is None else timing
    path = Path(path)
    if path.is_file():
        table = LatencyTable.load(path)
        table.check(groups)
        if ((table.runtime, table.threads, table.layer_timing, times_subpixel(model, table.subpixel))
                == (runtime, threads, timing, times_subpixel(model, subpixel))):
            return table
    table = measure(model, groups, runtime, threads, timing=timing, subpixel=subpixel, **options)
    table.save(path)
    return table


def _measure_layer(m: nn.Module, layer: CountedLayerWidths, in_grid: Tuple[int, ...], out_grid: Tuple[int, ...],
                   in_shape: Tuple[int, ...], timer: _Timer, bar: tqdm) -> LayerLatency:
    linear = isinstance(m, nn.Linear)
    ms = []
    for c_in in in_grid:
        row = []
        for c_out in out_grid:
            width_in = c_out if layer.depthwise else c_in
            row.append(timer.layer(_replica(m, width_in, c_out, layer.depthwise),
                                   _with_channels(in_shape, width_in, linear)))
            bar.update(1)
        ms.append(tuple(row))
    return LayerLatency(layer.name, in_grid, out_grid, _monotone(ms))


def _monotone(ms: Sequence[Sequence[float]]) -> Tuple[Tuple[float, ...], ...]:
    """The smallest table above ``ms`` that never falls as either width grows (a running maximum
    along both axes). Timing noise can make a wider layer measure faster than a narrower one;
    the budget needs T to fall whenever channels are removed (the trim's bisection, R's sign)."""
    out = np.maximum.accumulate(np.maximum.accumulate(np.asarray(ms, dtype=np.float64), axis=0), axis=1)
    return tuple(tuple(float(v) for v in row) for row in out)


def _fit_rest(residual_ms: Sequence[float], elements: Sequence[float]) -> Tuple[float, float]:
    """κ ≥ 0 and c_0 ≥ 0 of ``residual ≈ κ·elements + c_0`` by least squares under those bounds:
    the rest neither shrinks as the network widens nor costs less than nothing, so that T stays
    non-decreasing in every gate and positive (noise can make the free fit's c_0 negative)."""
    x, y = np.asarray(elements, dtype=np.float64), np.asarray(residual_ms, dtype=np.float64)
    if len(x) >= 2 and np.ptp(x) > 0:
        kappa, c0 = np.polyfit(x, y, 1)
        if kappa >= 0 and c0 >= 0:
            return float(kappa), float(c0)
    # The optimum lies on a bound: through the origin (c_0 = 0), or flat (κ = 0).
    through_origin = max(float(x @ y / (x @ x)), 0.0) if x @ x > 0 else 0.0
    flat = max(float(y.mean()), 0.0)
    err_origin = float(((y - through_origin * x) ** 2).sum())
    err_flat = float(((y - flat) ** 2).sum())
    return (through_origin, 0.0) if err_origin <= err_flat else (0.0, flat)
