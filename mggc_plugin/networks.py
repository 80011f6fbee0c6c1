"""Reference generators and discriminators of pix2pix/CycleGAN.

The networks are written from the published architectures (Isola et al. 2017, Zhu et al. 2017)
with the module structure of ``junyanz/pytorch-CycleGAN-and-pix2pix`` ("upstream"): the same
``nn.Sequential`` nesting, attribute names and bias rules, so that an upstream checkpoint loads
with ``strict=True`` and computes the same function. Nothing here imports upstream.

Upstream's bias rule is kept on purpose: a convolution has a bias only when the norm that
follows it is InstanceNorm (BatchNorm has its own shift); with ``norm="none"`` the convolutions
followed by a (missing) norm therefore have *no* bias, exactly as upstream builds them.

Every network returned by :func:`define_G` / :func:`define_D` carries an :class:`ArchSpec` in
``net.mggc_arch`` naming the builder and its arguments; slim checkpoints store it so that
:func:`mggc_plugin.load_slim` can rebuild the architecture without upstream.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Union

import torch
from torch import nn

from .errors import MGGCUserError
from .fileio import load_torch_file

NormFactory = Callable[[int], nn.Module]

GENERATORS = ("resnet_6blocks", "resnet_9blocks", "unet_128", "unet_256")
DISCRIMINATORS = ("basic", "n_layers", "pixel")
NORMS = ("batch", "instance", "none")


@dataclass(frozen=True)
class ArchSpec:
    """How to rebuild a network: an importable builder (``"package.module:function"``) and its
    keyword arguments (plain ints, floats, strings and bools, so that ``torch.load`` with
    ``weights_only=True`` can read them back)."""

    builder: str
    kwargs: Dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        return {"builder": self.builder, "kwargs": dict(self.kwargs)}


#: The attribute holding a network's :class:`ArchSpec`. It is read and set by name (getattr,
#: setattr) because nn.Module's attribute typing covers only tensors and submodules.
ARCH_ATTR = "mggc_arch"


def set_arch(net: nn.Module, arch: ArchSpec) -> None:
    """Record how to rebuild ``net`` as ``net.mggc_arch`` (the same as assigning it)."""
    setattr(net, ARCH_ATTR, arch)


def arch_of(net: nn.Module) -> Optional[ArchSpec]:
    """``net.mggc_arch``, or None when ``net`` carries no architecture description."""
    return getattr(net, ARCH_ATTR, None)


class Identity(nn.Module):
    """Stands where a norm layer would be with ``norm="none"`` (keeps upstream's indices)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def norm_factory(norm: str) -> NormFactory:
    """Norm layer constructor for ``batch`` (affine, running stats), ``instance`` (no affine, no
    running stats) or ``none`` — upstream's ``get_norm_layer``."""
    if norm == "batch":
        return functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
    if norm == "instance":
        return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
    if norm == "none":
        return lambda num_features: Identity()
    raise ValueError(f"unknown norm {norm!r}: choose one of {', '.join(NORMS)}")


def _conv_bias(norm: str) -> bool:
    # Upstream gives a conv a bias only when an affine-free InstanceNorm follows it.
    return norm == "instance"


class ResnetBlock(nn.Module):
    """``x + conv_block(x)``: pad, 3×3 conv, norm, ReLU, [dropout], pad, 3×3 conv, norm."""

    def __init__(self, dim: int, norm: str, use_dropout: bool, padding_type: str = "reflect"):
        super().__init__()
        pads = {"reflect": nn.ReflectionPad2d, "replicate": nn.ReplicationPad2d}
        if padding_type not in pads and padding_type != "zero":
            raise ValueError(f"unknown padding_type {padding_type!r}: use reflect, replicate or zero")
        make_norm, bias = norm_factory(norm), _conv_bias(norm)

        def padded_conv() -> list:
            if padding_type == "zero":
                return [nn.Conv2d(dim, dim, kernel_size=3, padding=1, bias=bias)]
            return [pads[padding_type](1), nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=bias)]

        layers = padded_conv() + [make_norm(dim), nn.ReLU(True)]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        layers += padded_conv() + [make_norm(dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """Johnson et al.'s transformation network as used by CycleGAN: 7×7 stem, two stride-2
    down-samplings, ``n_blocks`` residual blocks at ``4·ngf`` channels, two transposed-conv
    up-samplings, 7×7 output conv and tanh."""

    def __init__(self, input_nc: int, output_nc: int, ngf: int = 64, norm: str = "batch",
                 use_dropout: bool = False, n_blocks: int = 6):
        super().__init__()
        make_norm, bias = norm_factory(norm), _conv_bias(norm)
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, kernel_size=7, padding=0, bias=bias),
                  make_norm(ngf), nn.ReLU(True)]
        for i in range(2):
            c = ngf * 2 ** i
            layers += [nn.Conv2d(c, 2 * c, kernel_size=3, stride=2, padding=1, bias=bias),
                       make_norm(2 * c), nn.ReLU(True)]
        layers += [ResnetBlock(4 * ngf, norm, use_dropout) for _ in range(n_blocks)]
        for i in range(2):
            c = ngf * 2 ** (2 - i)
            layers += [nn.ConvTranspose2d(c, c // 2, kernel_size=3, stride=2, padding=1,
                                          output_padding=1, bias=bias),
                       make_norm(c // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, kernel_size=7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def _next_level(submodule: nn.Module | None) -> nn.Module:
    if submodule is None:
        raise ValueError("submodule=None: every U-Net level but the innermost wraps the next level's block")
    return submodule


class UnetSkipConnectionBlock(nn.Module):
    """One level of the U-Net: ``cat([x, up(sub(down(x)))])``, or ``up(sub(down(x)))`` at the
    outermost level, which produces the image."""

    def __init__(self, outer_nc: int, inner_nc: int, input_nc: int | None = None,
                 submodule: nn.Module | None = None, outermost: bool = False,
                 innermost: bool = False, norm: str = "batch", use_dropout: bool = False):
        super().__init__()
        self.outermost = outermost
        make_norm, bias = norm_factory(norm), _conv_bias(norm)
        input_nc = outer_nc if input_nc is None else input_nc
        downconv = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=bias)
        if outermost:
            upconv = nn.ConvTranspose2d(2 * inner_nc, outer_nc, kernel_size=4, stride=2, padding=1)
            layers = [downconv, _next_level(submodule), nn.ReLU(True), upconv, nn.Tanh()]
        elif innermost:
            upconv = nn.ConvTranspose2d(inner_nc, outer_nc, kernel_size=4, stride=2, padding=1, bias=bias)
            layers = [nn.LeakyReLU(0.2, True), downconv, nn.ReLU(True), upconv, make_norm(outer_nc)]
        else:
            upconv = nn.ConvTranspose2d(2 * inner_nc, outer_nc, kernel_size=4, stride=2, padding=1, bias=bias)
            layers = [nn.LeakyReLU(0.2, True), downconv, make_norm(inner_nc), _next_level(submodule),
                      nn.ReLU(True), upconv, make_norm(outer_nc)]
            if use_dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    """U-Net with ``num_downs`` stride-2 levels (7 for 128², 8 for 256²), built from the
    innermost level outwards; widths ngf, 2ngf, 4ngf, then 8ngf for every deeper level."""

    def __init__(self, input_nc: int, output_nc: int, num_downs: int, ngf: int = 64,
                 norm: str = "batch", use_dropout: bool = False):
        super().__init__()
        if num_downs < 5:
            raise ValueError(f"num_downs={num_downs}: the U-Net needs at least 5 levels")
        block = UnetSkipConnectionBlock(8 * ngf, 8 * ngf, norm=norm, innermost=True)
        for _ in range(num_downs - 5):
            block = UnetSkipConnectionBlock(8 * ngf, 8 * ngf, submodule=block, norm=norm, use_dropout=use_dropout)
        for mult in (4, 2, 1):
            block = UnetSkipConnectionBlock(mult * ngf, 2 * mult * ngf, submodule=block, norm=norm)
        self.model = UnetSkipConnectionBlock(output_nc, ngf, input_nc=input_nc, submodule=block,
                                             outermost=True, norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class NLayerDiscriminator(nn.Module):
    """PatchGAN: a 4×4 stride-2 conv, ``n_layers - 1`` more stride-2 convs doubling the width (at
    most 8·ndf), one stride-1 conv, and a 1-channel stride-1 output conv."""

    def __init__(self, input_nc: int, ndf: int = 64, n_layers: int = 3, norm: str = "batch"):
        super().__init__()
        make_norm, bias = norm_factory(norm), _conv_bias(norm)
        layers = [nn.Conv2d(input_nc, ndf, kernel_size=4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2 ** n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(ndf * prev, ndf * mult, kernel_size=4, stride=stride, padding=1, bias=bias),
                       make_norm(ndf * mult), nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(ndf * mult, 1, kernel_size=4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PixelDiscriminator(nn.Module):
    """1×1 PixelGAN: classifies every pixel on its own."""

    def __init__(self, input_nc: int, ndf: int = 64, norm: str = "batch"):
        super().__init__()
        make_norm, bias = norm_factory(norm), _conv_bias(norm)
        self.net = nn.Sequential(
            nn.Conv2d(input_nc, ndf, kernel_size=1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, 2 * ndf, kernel_size=1, bias=bias), make_norm(2 * ndf), nn.LeakyReLU(0.2, True),
            nn.Conv2d(2 * ndf, 1, kernel_size=1, bias=bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def init_weights(net: nn.Module, init_gain: float = 0.02) -> nn.Module:
    """Upstream's default ``normal`` initialisation: conv/linear weights ~ N(0, gain), biases 0,
    BatchNorm weights ~ N(1, gain)."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, init_gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, init_gain)
            nn.init.zeros_(m.bias)
    return net


_G_BUILDERS: Dict[str, Callable[..., nn.Module]] = {
    "resnet_6blocks": lambda i, o, ngf, norm, drop: ResnetGenerator(i, o, ngf, norm, drop, n_blocks=6),
    "resnet_9blocks": lambda i, o, ngf, norm, drop: ResnetGenerator(i, o, ngf, norm, drop, n_blocks=9),
    "unet_128": lambda i, o, ngf, norm, drop: UnetGenerator(i, o, 7, ngf, norm, drop),
    "unet_256": lambda i, o, ngf, norm, drop: UnetGenerator(i, o, 8, ngf, norm, drop),
}

_D_BUILDERS: Dict[str, Callable[..., nn.Module]] = {
    "basic": lambda i, ndf, n, norm: NLayerDiscriminator(i, ndf, 3, norm),
    "n_layers": lambda i, ndf, n, norm: NLayerDiscriminator(i, ndf, n, norm),
    "pixel": lambda i, ndf, n, norm: PixelDiscriminator(i, ndf, norm),
}


def _check_choice(kind: str, value: str, choices) -> None:
    if value not in choices:
        raise ValueError(f"unknown {kind} {value!r}: choose one of {', '.join(choices)}")


def define_G(input_nc: int, output_nc: int, ngf: int, netG: str, norm: str = "batch",
             use_dropout: bool = False) -> nn.Module:
    """Build an upstream-compatible generator (``resnet_6blocks``, ``resnet_9blocks``,
    ``unet_128``, ``unet_256``) with upstream's default initialisation, on the CPU."""
    _check_choice("netG", netG, GENERATORS)
    _check_choice("norm", norm, NORMS)
    net = init_weights(_G_BUILDERS[netG](input_nc, output_nc, ngf, norm, use_dropout))
    set_arch(net, ArchSpec("mggc_plugin.networks:define_G", dict(
        input_nc=input_nc, output_nc=output_nc, ngf=ngf, netG=netG, norm=norm, use_dropout=use_dropout)))
    return net


def define_D(input_nc: int, ndf: int, netD: str, n_layers_D: int = 3, norm: str = "batch") -> nn.Module:
    """Build an upstream-compatible discriminator (``basic``, ``n_layers``, ``pixel``) with
    upstream's default initialisation, on the CPU."""
    _check_choice("netD", netD, DISCRIMINATORS)
    _check_choice("norm", norm, NORMS)
    net = init_weights(_D_BUILDERS[netD](input_nc, ndf, n_layers_D, norm))
    set_arch(net, ArchSpec("mggc_plugin.networks:define_D", dict(
        input_nc=input_nc, ndf=ndf, netD=netD, n_layers_D=n_layers_D, norm=norm)))
    return net


def load_state(net: nn.Module, path: Union[str, Path]) -> nn.Module:
    """Load an upstream ``*_net_*.pth`` state dict into ``net`` (strictly), with an error that
    says which architecture options to check when it was saved from another one."""
    state = load_torch_file(path, "an upstream checkpoint",
                            "copy the file again from where the network was trained, or pass another epoch")
    if not isinstance(state, dict):
        raise MGGCUserError(f"{path} does not hold a state dict (found {type(state).__name__}): pass an upstream "
                            f"<epoch>_net_<name>.pth file")
    # DataParallel/DDP checkpoints prefix every key with "module.".
    state = {k.removeprefix("module."): v for k, v in state.items()}
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and tuple(getattr(state[k], "shape", ())) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        arch = arch_of(net)
        built = f" ({arch.kwargs})" if arch else ""
        first = (shapes or missing or unexpected)[0]
        raise MGGCUserError(
            f"{path} was saved from another architecture than the one built here{built}: {len(missing)} missing, "
            f"{len(unexpected)} unexpected and {len(shapes)} differently shaped weights (first: {first}); check "
            f"--netG/--netD, --ngf/--ndf, --norm, --no_dropout and --input_nc/--output_nc against the options it "
            f"was trained with (train_opt.txt beside it)")
    net.load_state_dict(state, strict=True)
    return net
