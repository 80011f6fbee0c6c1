"""How big a network and one forward pass of it are, measured before anything is allocated.

A width or input size typed by mistake (``--ngf 100000``, ``--size 100000``) would otherwise ask
torch for hundreds of gigabytes, or fail deep inside a convolution. :func:`measure` builds the
network on torch's ``meta`` device (shapes only, no memory) and runs one forward pass there,
adding up every layer's output; :func:`check_runnable` turns an absurd size or an input the
network cannot take into one :class:`~mggc_plugin.errors.MGGCUserError`.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Sequence, Union

import torch
from torch import nn

from .errors import MGGCUserError

#: More parameters than this is absurd for an image-to-image GAN: 20x upstream's largest
#: generator (unet_256 at ngf 64, 54 M), 4 GiB as float32.
MAX_PARAMS = 10**9
#: More layer-output elements in one forward pass at batch 1 than this is absurd: 32 GiB as
#: float32 (resnet_9blocks at ngf 64 and 2048x2048 has 7.2 G).
MAX_ACTIVATIONS = 8 * 10**9


@dataclass(frozen=True)
class Footprint:
    """``params``: the network's parameter count; ``activations``: the elements of every leaf
    layer's output in one forward pass at the measured input shape (an upper bound of what a
    forward pass without gradients holds at once)."""

    params: int
    activations: int

    def gib(self) -> float:
        """Both as float32, in GiB."""
        return 4 * (self.params + self.activations) / 2**30


Network = Union[nn.Module, Callable[[], nn.Module]]


def measure(network: Network, input_shape: Sequence[int]) -> Footprint:
    """The :class:`Footprint` of ``network`` at ``input_shape``: a module (copied to the meta
    device; the original is untouched) or a function building one (called on the meta device,
    so a huge width allocates nothing). Runs in eval mode. Raises what the forward pass raises
    when the network cannot take that shape (``RuntimeError``/``ValueError`` from torch)."""
    if isinstance(network, nn.Module):
        net = copy.deepcopy(network).to("meta")
    else:
        with torch.device("meta"):
            net = network()
    net.eval()
    params = sum(p.numel() for p in net.parameters())
    counted = [0]

    def count(module: nn.Module, inputs: object, output: object) -> None:
        if isinstance(output, torch.Tensor):
            counted[0] += output.numel()

    hooks = [m.register_forward_hook(count) for m in net.modules() if not any(m.children())]
    try:
        with torch.no_grad():
            net(torch.empty(*input_shape, device="meta"))
    finally:
        for h in hooks:
            h.remove()
    return Footprint(params, counted[0])


def check_runnable(network: Network, input_shape: Sequence[int], what: str, fix: str) -> Footprint:
    """:func:`measure`, refusing with one :class:`MGGCUserError` that names ``what`` (e.g.
    ``"resnet_9blocks (ngf 64) at 256x256"``) and ends with ``fix``: a network or input beyond
    :data:`MAX_PARAMS`/:data:`MAX_ACTIVATIONS`, or an input shape the network cannot take."""
    if any(n < 1 for n in input_shape):
        raise MGGCUserError(f"{what}: the input shape {tuple(input_shape)} has an empty dimension; {fix}")
    try:
        found = measure(network, input_shape)
    except (RuntimeError, ValueError) as err:
        first = (str(err).strip().splitlines() or [""])[0]
        raise MGGCUserError(f"{what}: the network cannot take a {'x'.join(map(str, input_shape[-2:]))} input "
                            f"({first}); {fix}") from None
    if found.params > MAX_PARAMS or found.activations > MAX_ACTIVATIONS:
        raise MGGCUserError(f"{what}: {found.params / 1e6:,.0f} M parameters and {found.activations / 1e6:,.0f} M "
                            f"activations in one pass (~{found.gib():,.0f} GiB as float32), beyond any real "
                            f"generator's ({MAX_PARAMS / 1e6:,.0f} M parameters, {MAX_ACTIVATIONS / 1e6:,.0f} M "
                            f"activations at most here); {fix}")
    return found
