"""The pruning agents gen_G and gen_D of MGGC (Eq. 3–4) and the straight-through Gumbel-sigmoid.

An agent maps its peer's architecture embedding to channel logits ``o`` (one vector per channel
group, in the order of :attr:`mggc_plugin.ChannelGroups.sizes`) and its own embedding ``h``::

    o_G, h_G = gen_G(h_D)        v_G = round(sigmoid(-(o_G + g) / τ)),  g ~ Gumbel(0, 1)     (Eq. 3)
    o_D, h_D = gen_D(h_G)        v_D = round(sigmoid(-(o_D + g) / τ))                        (Eq. 4)

**Sign convention.** We implement the paper's formula literally, so ``o`` is a *drop* score:
channel c is kept (v = 1) iff ``o_c + g_c ≤ 0``, and without noise iff ``o_c ≤ 0``. The *keep
logit* of a channel is ``-o``; "lowest-logit channel" (what :meth:`MGGCPruner.finalize` trims
first) means lowest keep logit, i.e. highest ``o``. (The earlier hypernetwork computed
``sigmoid((o + g + base)/T)``: the same up to the sign of o, but with the Gumbel noise on the
keep side; we follow Eq. 3–4 as written, so the noise's long tail drops channels.)

**Start from the full model.** Every agent adds a constant ``-base`` to its head outputs
(``base = 3``, the offset of the authors' earlier gates in ``Alii-Ganjj/InterpretationsSteeredPruning``,
branch ``CIFAR10``, ``Models/hypernet.py``: ``Simplified_Gate(base=3)``; its ``HyperStructure``
defaults to 2), so at initialisation ``o ≈ -3`` for every channel: the deterministic architecture
keeps every channel, and a sampled one keeps each channel with probability
``P(g < 3) = exp(-e^{-3}) ≈ 0.95``.

**The authors' gates** (``keep_side=True, hard=False``; ``MGGCConfig.gates="authors"``, beyond
the paper's text): the earlier hypernetwork adds the noise on the keep side,
``sigmoid((-o + g)/τ)``, where a channel at ``o = -3`` is dropped with probability
``P(g < -3) = exp(-e^{3}) ≈ 2e-9`` instead of ≈ 0.05, and in training it gates the network with
these *soft* values, rounding them (``hard_concrete``) only for the resource term.

The paper leaves the agents' internals to its unavailable supplement; :class:`ArchitectureAgent`
follows the authors' earlier hypernetwork (the same file, class ``HyperStructure``): fixed
orthogonal input tokens (one 64-d token per channel group), a bidirectional GRU with 128 hidden
units each way, LayerNorm + ReLU on every GRU output and one
weight-normalised, bias-free linear head per group. MGGC's G↔D feedback enters as the GRU's
input: the peer's embedding is concatenated to every token. The embedding ``h`` is the mean of
the GRU outputs over the groups ("the outputs of the GRU units ... as their corresponding
model's architecture embedding", §Pruning Agents).

:class:`LogitAgent` is the Table 2 *Baseline* parameterisation ``v = round(sigmoid(-(θ + g)/τ))``:
a learned vector θ per channel and no embedding.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

#: Offset subtracted from every head output so that training starts from the full model.
BASE = 3.0


def gumbel_sigmoid(o: Sequence[torch.Tensor], tau: float, generator: Optional[torch.Generator] = None,
                   deterministic: bool = False, keep_side: bool = False, hard: bool = True) -> List[torch.Tensor]:
    """Architecture vectors ``v = round(sigmoid(-(o + g)/τ))`` of Eq. 3–4, one per group.

    ``g ~ Gumbel(0, 1)`` is drawn on the CPU from ``generator`` (the global generator when None)
    and moved to ``o``'s device, so a run is reproducible across devices; ``deterministic=True``
    uses ``g = 0`` (the final architecture). The forward values are exactly 0.0 or 1.0; the
    backward pass is the straight-through estimator: the gradient of the soft
    ``sigmoid(-(o + g)/τ)`` (Bengio et al. 2013; Jang et al. 2017).

    The authors' gates (module docstring): ``keep_side=True`` computes ``sigmoid((-o + g)/τ)``,
    and ``hard=False`` returns the soft values themselves (:func:`harden` rounds them later).
    """
    if tau <= 0:
        raise ValueError(f"tau={tau}: the Gumbel-sigmoid temperature τ must be positive")
    sizes = [t.numel() for t in o]
    flat = torch.cat(list(o))
    if deterministic:
        z = -flat / tau
    else:
        u = torch.rand(flat.shape, generator=generator, dtype=torch.float32)
        # Clamp so that log(0) never turns the noise into ±inf.
        u = u.clamp(torch.finfo(u.dtype).tiny, 1.0 - torch.finfo(u.dtype).eps)
        g = -torch.log(-torch.log(u)).to(device=flat.device, dtype=flat.dtype)
        z = (g - flat) / tau if keep_side else -(flat + g) / tau
    soft = torch.sigmoid(z)
    if not hard:
        return list(torch.split(soft, sizes))
    rounded = (z >= 0).to(soft.dtype)
    # rounded + (soft - soft) is exactly rounded in the forward pass; the gradient is the sigmoid's.
    v = rounded + (soft - soft.detach())
    return list(torch.split(v, sizes))


def harden(v: torch.Tensor) -> torch.Tensor:
    """Soft gates rounded at 1/2, with the straight-through gradient of the soft ones (the
    authors' ``hard_concrete``)."""
    return (v >= 0.5).to(v.dtype) + (v - v.detach())


class LogitAgent(nn.Module):
    """Table 2's Baseline parameterisation: one learned logit per channel, ``o = θ - base``.

    ``θ`` starts at 0 (every channel at ``o = -base``, the full model). It has no architecture
    embedding (``embed_dim = 0``) and ignores its peer; :meth:`forward` returns ``(o, h)`` with an
    empty ``h`` so it can stand wherever an :class:`ArchitectureAgent` stands.
    """

    def __init__(self, sizes: Sequence[int], base: float = BASE):
        super().__init__()
        self.sizes = [int(s) for s in sizes]
        self.base = float(base)
        self.embed_dim = 0
        self.theta = nn.ParameterList([nn.Parameter(torch.zeros(s)) for s in self.sizes])

    def forward(self, h_peer: Optional[torch.Tensor] = None) -> Tuple[List[torch.Tensor], torch.Tensor]:
        """Return ``(o, h)``: the per-group drop logits and an empty embedding."""
        o = [theta - self.base for theta in self.theta]
        return o, self.theta[0].new_zeros(0)


class ArchitectureAgent(nn.Module):
    """gen_G / gen_D of Eq. 3–4: a bidirectional GRU over one fixed token per channel group,
    followed by one dense head per group that emits that group's drop logits ``o``.

    Arguments:
        sizes: channels per group (``ChannelGroups.sizes`` of the network this agent prunes).
        peer_dim: size of the peer agent's embedding ``h`` (its ``embed_dim``).
        hidden: GRU hidden units per direction; the embedding has ``2 * hidden`` entries.
        token_dim: size of the fixed orthogonal input token of each group.
        base: offset subtracted from the heads' outputs so that every channel starts kept.
        feedback: with False the peer's embedding is replaced by zeros, so ``o`` does not depend
            on it (Table 2's rows without G↔D feedback); the parameters are the same either way.

    ``forward(h_peer)`` returns ``(o, h)``: ``o`` a list of 1-D tensors (one per group), ``h`` the
    agent's own architecture embedding (a ``2 * hidden`` vector, the mean GRU output).
    """

    # Registered as a buffer in __init__; declared so that it reads as a tensor, not as
    # nn.Module.__getattr__'s ``Tensor | Module``.
    tokens: torch.Tensor

    def __init__(self, sizes: Sequence[int], peer_dim: int, hidden: int = 128, token_dim: int = 64,
                 base: float = BASE, feedback: bool = True):
        super().__init__()
        if hidden < 1 or token_dim < 1 or peer_dim < 0:
            raise ValueError(f"hidden={hidden}, token_dim={token_dim}, peer_dim={peer_dim}: sizes must be positive")
        self.sizes = [int(s) for s in sizes]
        self.peer_dim = int(peer_dim)
        self.base = float(base)
        self.feedback = bool(feedback)
        self.embed_dim = 2 * hidden
        tokens = torch.empty(len(self.sizes), token_dim)
        nn.init.orthogonal_(tokens)
        # Fixed, not trained: the hypernetwork's inputs only tell the GRU which group it is at.
        self.register_buffer("tokens", tokens)
        self.gru = nn.GRU(token_dim + self.peer_dim, hidden, batch_first=True, bidirectional=True)
        self.norm = nn.LayerNorm(self.embed_dim)
        self.heads = nn.ModuleList(weight_norm(nn.Linear(self.embed_dim, s, bias=False)) for s in self.sizes)

    def forward(self, h_peer: Optional[torch.Tensor] = None) -> Tuple[List[torch.Tensor], torch.Tensor]:
        """Return ``(o, h)`` given the peer's embedding (None counts as a zero embedding)."""
        peer = self.tokens.new_zeros(self.peer_dim)
        if self.feedback and h_peer is not None:
            if h_peer.shape != (self.peer_dim,):
                raise ValueError(f"h_peer has shape {tuple(h_peer.shape)}, this agent expects the peer's "
                                 f"embedding of shape ({self.peer_dim},)")
            peer = h_peer.to(self.tokens.dtype)
        steps = torch.cat([self.tokens, peer.expand(len(self.sizes), -1)], dim=1)
        out, _ = self.gru(steps.unsqueeze(0))
        out = out[0]
        h = out.mean(dim=0)
        features = torch.relu(self.norm(out))
        o = [head(features[i]) - self.base for i, head in enumerate(self.heads)]
        return o, h


#: Either agent: both map the peer's embedding to ``(o, h)`` and have an ``embed_dim``.
Agent = Union[LogitAgent, ArchitectureAgent]
