"""Actor heads of the Dreamer family: an MLP on the model features, then an action distribution.

One interface for every family: ``actor(feat, sample=True) -> action [..., A]`` (``sample=False``: the
deterministic action used at evaluation; in [-1, 1] for every family, as are the samples of all but
:class:`BoundedNormalActor`, whose samples the env side must clip) and ``actor.dist(feat)``, a :class:`torch.distributions.Distribution` over
actions ``[..., A]`` with ``rsample()``, ``sample()``, ``log_prob(action) -> [...]`` (summed over the action dims),
``entropy() -> [...]`` and ``mode``.

| actor | paper / source | mean | std | support |
|---|---|---|---|---|
| :class:`TanhNormalActor` | Dreamer V1 (``dreamer`` ``tanh_normal``) | ``5 tanh(m / 5)`` pre-tanh | ``softplus(s + softplus⁻¹(5)) + 1e-4`` | ``tanh(N)``, (-1, 1) |
| :class:`TruncNormalActor` | DreamerV2 ``common/nets.py`` ``DistLayer`` ``trunc_normal`` | ``tanh(m)`` | ``2 σ((s + init_std) / 2) + 0.1`` | ``N`` truncated to [-1, 1] |
| :class:`BoundedNormalActor` | DreamerV3 ``embodied/jax/heads.py`` ``Head.bounded_normal`` | ``tanh(m)`` | ``0.9 σ(s + 2) + 0.1`` | ``N``, unbounded (env clips) |
| :class:`OneHotActor` | DreamerV2 ``OneHotDist``, V3 ``outs.OneHot`` (unimix) | | | one-hot over ``A`` |

``m, s`` are the two halves of the MLP output (the author's two dense layers ``mean``/``stddev``, here one layer of
``2 A`` outputs split in two), ``σ`` the logistic sigmoid. The DreamerV2 actor config sets ``min_std: 0.1`` and leaves
``DistLayer``'s ``init_std`` at 0; DreamerV3's ``configs.yaml`` sets ``policy: {minstd: 0.1, maxstd: 1.0, unimix: 0.01}``.

The distributions here are free of host syncs (no ``validate_args``, no ``.item()``/``.any()`` on tensor values),
so imagination with an actor can be captured whole. That is why :class:`TanhNormal` and :class:`TruncNormal` are
our own rather than TorchRL's ``TanhNormal`` (reads ``(high != 1).any()`` on the host) and ``TruncatedNormal``
(``.tolist()`` of its bounds at construction, ``.any()`` in ``log_prob``); those serve as references in the tests.
"""

from __future__ import annotations

import abc
import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Distribution, Independent, Normal, constraints

from dreamer_rl.nets.mlp import MLP, Activation
from dreamer_rl.nets.outputs import log_softmax, onehot_sample, unimix_logits

NormKind = Literal["none", "layer", "rms"]
ActorKind = Literal["tanh_normal", "trunc_normal", "bounded_normal", "onehot"]

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
_LOG_2 = math.log(2.0)


def _tanh_log_det(x: torch.Tensor) -> torch.Tensor:
    """``log(1 - tanh(x)^2) = 2 (log 2 - x - softplus(-2x))``, stable where ``tanh`` saturates."""
    return 2.0 * (_LOG_2 - x - F.softplus(-2.0 * x))


def _straight_through_clamp(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Value of ``clamp(x, low, high)``, gradient of ``x`` (DreamerV2 ``TruncNormalDist.sample``)."""
    return x + (x.clamp(low, high) - x).detach()


class TanhNormal(Distribution):
    """``tanh(N(loc, scale))`` with ``loc, scale [..., A]``; batch shape ``[...]``, event shape ``[A]``.

        log p(y) = sum_a [log N(atanh y_a | loc_a, scale_a) - log(1 - y_a^2)]
        H        = sum_a [0.5 + 0.5 log 2π + log scale_a] + E_x[sum_a log(1 - tanh(x_a)^2)],   x ~ N(loc, scale)

    The entropy has no closed form: the second term is a reparameterised Monte-Carlo estimate over
    ``entropy_samples`` draws (the Gaussian part is exact; Dreamer's ``SampleDist`` instead averaged ``-log p`` of
    100 samples). ``mode`` is ``tanh(loc)``, the V1 evaluation action (the true mode of a tanh-normal differs when
    ``scale`` is large). ``log_prob`` clips ``|y|`` to ``1 - 1e-6``: float32 ``tanh`` returns exactly ±1 beyond
    ``|x| ≈ 9``, where ``atanh`` would be infinite.

    >>> d = TanhNormal(torch.zeros(5, 2), torch.ones(5, 2))
    >>> d.rsample().shape, d.log_prob(torch.zeros(5, 2)).shape   # log N(0|0,1) * 2 = -1.8379 each
    (torch.Size([5, 2]), torch.Size([5]))
    """

    arg_constraints: dict[str, Any] = {}
    support = constraints.independent(constraints.interval(-1.0, 1.0), 1)
    has_rsample = True

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor, *, entropy_samples: int = 100) -> None:
        self.loc, self.scale, self.entropy_samples = loc, scale, entropy_samples
        super().__init__(loc.shape[:-1], loc.shape[-1:], validate_args=False)

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size()) -> torch.Tensor:  # noqa: D102
        eps = torch.randn(self._extended_shape(sample_shape), dtype=self.loc.dtype, device=self.loc.device)
        return torch.tanh(self.loc + self.scale * eps)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:  # noqa: D102
        y = value.clamp(-1.0 + 1e-6, 1.0 - 1e-6)
        x = torch.atanh(y)
        normal = -0.5 * ((x - self.loc) / self.scale).square() - self.scale.log() - _HALF_LOG_2PI
        return (normal - _tanh_log_det(x)).sum(-1)

    def entropy(self) -> torch.Tensor:  # noqa: D102
        gaussian = (0.5 + _HALF_LOG_2PI + self.scale.log()).sum(-1)
        eps = torch.randn((self.entropy_samples, *self.loc.shape), dtype=self.loc.dtype, device=self.loc.device)
        log_det = _tanh_log_det(self.loc + self.scale * eps).sum(-1).mean(0)  # [S, ..., A] -> [...]
        return gaussian + log_det

    @property
    def mode(self) -> torch.Tensor:  # noqa: D102
        return torch.tanh(self.loc)


class TruncNormal(Distribution):
    """``N(loc, scale)`` truncated to ``[low, high]``, independent over the last dim ``[..., A]``.

    With ``α = (low - μ) / σ``, ``β = (high - μ) / σ``, ``Z = Φ(β) - Φ(α)``, ``φ``/``Φ`` the standard normal pdf/cdf:

        log p(a) = sum_a [log φ((a - μ) / σ) - log σ - log Z]                    (-inf outside [low, high])
        H        = sum_a [0.5 log(2πe) + log σ + log Z + (α φ(α) - β φ(β)) / (2Z)]
        sample   = μ + σ Φ⁻¹(Φ(α) + U Z),  U ~ U[0, 1)                             (inverse cdf, reparameterised)

    As DreamerV2's ``TruncNormalDist`` (``common/dists.py``), samples are clipped to ``[low + clip, high - clip]``
    with a straight-through gradient, so a stored action keeps a finite log-probability. The inverse cdf works in
    float32 for ``μ`` inside ``[low, high]`` (the actors' ``tanh`` mean); ``Φ`` of a far tail would lose precision.
    ``mode`` is ``clamp(μ, low, high)``.

    >>> d = TruncNormal(torch.zeros(3, 2), torch.ones(3, 2))
    >>> d.rsample().abs().max() <= 1, d.log_prob(torch.zeros(3, 2))   # 2 * (-0.5 log 2π - log 0.6827)
    (tensor(True), tensor([-1.0744, -1.0744, -1.0744]))
    """

    arg_constraints: dict[str, Any] = {}
    has_rsample = True

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor, low: float = -1.0, high: float = 1.0,
                 clip: float = 1e-6) -> None:
        self.loc, self.scale, self.low, self.high, self.clip = loc, scale, low, high, clip
        self._alpha = (low - loc) / scale
        self._beta = (high - loc) / scale
        self._cdf_alpha = torch.special.ndtr(self._alpha)
        self._z = (torch.special.ndtr(self._beta) - self._cdf_alpha).clamp_min(torch.finfo(loc.dtype).tiny)
        super().__init__(loc.shape[:-1], loc.shape[-1:], validate_args=False)

    @property
    def support(self) -> Any:  # noqa: D102
        return constraints.independent(constraints.interval(self.low, self.high), 1)

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size()) -> torch.Tensor:  # noqa: D102
        u = torch.rand(self._extended_shape(sample_shape), dtype=self.loc.dtype, device=self.loc.device)
        eps = torch.finfo(self.loc.dtype).eps
        # keep Φ⁻¹'s argument off 0 and 1, where the value and the gradient are infinite
        p = (self._cdf_alpha + u * self._z).clamp(eps, 1.0 - eps)
        x = self.loc + self.scale * torch.special.ndtri(p)
        return _straight_through_clamp(x, self.low + self.clip, self.high - self.clip)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:  # noqa: D102
        z = (value - self.loc) / self.scale
        lp = -0.5 * z.square() - _HALF_LOG_2PI - self.scale.log() - self._z.log()
        inside = (value >= self.low) & (value <= self.high)
        return torch.where(inside, lp, torch.full_like(lp, -math.inf)).sum(-1)

    def entropy(self) -> torch.Tensor:  # noqa: D102
        pdf_alpha = torch.exp(-0.5 * self._alpha.square() - _HALF_LOG_2PI)
        pdf_beta = torch.exp(-0.5 * self._beta.square() - _HALF_LOG_2PI)
        tails = (self._alpha * pdf_alpha - self._beta * pdf_beta) / (2.0 * self._z)
        return (0.5 + _HALF_LOG_2PI + self.scale.log() + self._z.log() + tails).sum(-1)

    @property
    def mean(self) -> torch.Tensor:  # noqa: D102
        pdf_alpha = torch.exp(-0.5 * self._alpha.square() - _HALF_LOG_2PI)
        pdf_beta = torch.exp(-0.5 * self._beta.square() - _HALF_LOG_2PI)
        return self.loc + self.scale * (pdf_alpha - pdf_beta) / self._z

    @property
    def mode(self) -> torch.Tensor:  # noqa: D102
        return self.loc.clamp(self.low, self.high)


class OneHotDist(Distribution):
    """Categorical over the last dim, with one-hot events ``[..., K]``; batch shape ``[...]``.

        sample  = one-hot Gumbel-max sample (no gradient)
        rsample = sample + (p - sg(p))        straight-through (DreamerV2 ``OneHotDist.sample``)
        log p(a) = sum_k a_k log p_k,   H = -sum_k p_k log p_k,   mode = one-hot argmax

    ``log_prob`` takes the one-hot action itself (a straight-through sample included), as the author's
    ``outs.OneHot.logp``.

    >>> d = OneHotDist(torch.tensor([0.0, 1.098612]))   # probs [1/4, 3/4]
    >>> d.mode, d.entropy()
    (tensor([0., 1.]), tensor(0.5623))
    """

    arg_constraints: dict[str, Any] = {}
    support = constraints.one_hot
    has_rsample = True

    def __init__(self, logits: torch.Tensor) -> None:
        self.logits = log_softmax(logits)
        super().__init__(logits.shape[:-1], logits.shape[-1:], validate_args=False)

    @property
    def probs(self) -> torch.Tensor:  # noqa: D102
        return self.logits.exp()

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size()) -> torch.Tensor:  # noqa: D102
        return onehot_sample(self.logits.expand(self._extended_shape(sample_shape)))

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size()) -> torch.Tensor:  # noqa: D102
        probs = self.probs
        return self.sample(sample_shape) + (probs - probs.detach())

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return (value * self.logits).sum(-1)

    def entropy(self) -> torch.Tensor:  # noqa: D102
        return -(self.probs * self.logits).sum(-1)

    @property
    def mode(self) -> torch.Tensor:  # noqa: D102
        index = self.logits.argmax(-1, keepdim=True)
        return torch.zeros_like(self.logits).scatter_(-1, index, 1.0)


class _MLPActor(nn.Module, abc.ABC):
    """``MLP(feat_dim -> outputs_per_action * action_dim)``; subclasses turn the output into a distribution."""

    def __init__(self, feat_dim: int, action_dim: int, outputs_per_action: int, *, units: int, layers: int,
                 act: Activation, norm: NormKind) -> None:
        super().__init__()
        # norm only when asked: the plain V1 MLP keeps its exact modules (and checkpoints) whatever MLP accepts
        norm_kw: dict[str, Any] = {} if norm == "none" else {"norm": norm}
        self.net = MLP(feat_dim, outputs_per_action * action_dim, units=units, layers=layers, act=act, **norm_kw)
        self.action_dim = action_dim

    @abc.abstractmethod
    def dist(self, feat: torch.Tensor) -> Distribution:
        """The action distribution at ``feat [..., F]``: batch shape ``[...]``, events ``[..., A]``."""

    def forward(self, feat: torch.Tensor, sample: bool = True) -> torch.Tensor:
        """``[..., F] -> [..., A]``: a reparameterised sample (``sample=True``) or the distribution's mode."""
        dist = self.dist(feat)
        return dist.rsample() if sample else dist.mode


class TanhNormalActor(_MLPActor):
    """Dreamer V1's actor: ``[..., feat] -> [..., A]`` actions in [-1, 1], reparameterised (gradients reach ``feat``).

    With raw outputs ``(m, s)``: ``mean = 5 tanh(m / 5)`` (pre-tanh mean kept in [-5, 5]),
    ``std = softplus(s + softplus⁻¹(init_std)) + min_std``, ``a = tanh(mean + std ε)``, ``ε ~ N(0, I)``, so an
    untrained actor acts with pre-tanh std ``init_std`` (5): almost uniformly in [-1, 1]. ``forward(feat,
    sample=False)`` returns ``tanh(mean)``; :meth:`dist` a :class:`TanhNormal` (entropy: a sample estimate).

    >>> actor = TanhNormalActor(30, 6, units=64, layers=2)
    >>> actor(torch.randn(15, 8, 30)).shape, actor.dist(torch.randn(8, 30)).entropy().shape
    (torch.Size([15, 8, 6]), torch.Size([8]))
    """

    def __init__(self, feat_dim: int, action_dim: int, *, units: int, layers: int, act: Activation = "elu",
                 norm: NormKind = "none", init_std: float = 5.0, min_std: float = 1e-4, mean_scale: float = 5.0,
                 entropy_samples: int = 100) -> None:
        super().__init__(feat_dim, action_dim, 2, units=units, layers=layers, act=act, norm=norm)
        self.raw_init_std = math.log(math.expm1(init_std))
        self.min_std = min_std
        self.mean_scale = mean_scale
        self.entropy_samples = entropy_samples

    def params(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pre-tanh mean and std, each ``[..., A]``."""
        mean, std = self.net(feat).chunk(2, -1)
        mean = self.mean_scale * torch.tanh(mean / self.mean_scale)
        std = F.softplus(std + self.raw_init_std) + self.min_std
        return mean, std

    def dist(self, feat: torch.Tensor) -> TanhNormal:  # noqa: D102
        return TanhNormal(*self.params(feat), entropy_samples=self.entropy_samples)


class TruncNormalActor(_MLPActor):
    """DreamerV2's continuous actor: ``N(tanh(m), 2 σ((s + init_std) / 2) + min_std)`` truncated to [-1, 1].

    From ``common/nets.py`` ``DistLayer`` (``trunc_normal``; ``init_std = 0``, the actor's ``min_std = 0.1``), so an
    untrained actor (``m = s = 0``) has std ``2 σ(0) + 0.1 = 1.1``. Reparameterised by the inverse cdf (V2 used TFP's
    implicit gradients: the same pathwise derivative). :meth:`dist`: a :class:`TruncNormal` (analytic entropy);
    ``forward(feat, sample=False)`` returns its mode ``tanh(m)``.

    >>> actor = TruncNormalActor(30, 6, units=64, layers=2)
    >>> bool(actor(torch.randn(8, 30)).abs().max() < 1)
    True
    """

    def __init__(self, feat_dim: int, action_dim: int, *, units: int, layers: int, act: Activation = "elu",
                 norm: NormKind = "none", init_std: float = 0.0, min_std: float = 0.1, clip: float = 1e-6) -> None:
        super().__init__(feat_dim, action_dim, 2, units=units, layers=layers, act=act, norm=norm)
        self.init_std, self.min_std, self.clip = init_std, min_std, clip

    def params(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean (in (-1, 1)) and std of the untruncated normal, each ``[..., A]``."""
        mean, std = self.net(feat).chunk(2, -1)
        return torch.tanh(mean), 2.0 * torch.sigmoid((std + self.init_std) / 2.0) + self.min_std

    def dist(self, feat: torch.Tensor) -> TruncNormal:  # noqa: D102
        return TruncNormal(*self.params(feat), clip=self.clip)


class BoundedNormalActor(_MLPActor):
    """DreamerV3's continuous actor: ``N(tanh(m), (max_std - min_std) σ(s + 2) + min_std)``, not truncated.

    From ``embodied/jax/heads.py`` ``Head.bounded_normal`` with ``configs.yaml`` ``policy: {minstd: 0.1, maxstd:
    1.0}``: an untrained actor has std ``0.9 σ(2) + 0.1 ≈ 0.893``. :meth:`dist` is a plain ``Independent(Normal)``
    (``rsample`` reparameterised, analytic ``entropy``). As the author's, the sample is **not** bounded: the world
    model, the replay and the REINFORCE term (``logp`` of the sampled action) all take the raw sample, and only the
    env side clips it (``dreamerv3/main.py`` ``wrap_env`` adds ``embodied.wrappers.ClipAction`` for every continuous
    action). So ``forward(feat)`` returns the raw sample, which can leave [-1, 1]: whoever sends it to an env clips
    it there. ``forward(feat, sample=False)`` returns the mean ``tanh(m)``, inside (-1, 1).

    >>> actor = BoundedNormalActor(30, 6, units=64, layers=2)
    >>> actor(torch.randn(8, 30)).shape, bool(actor(torch.randn(8, 30), sample=False).abs().max() < 1)
    (torch.Size([8, 6]), True)
    """

    def __init__(self, feat_dim: int, action_dim: int, *, units: int, layers: int, act: Activation = "elu",
                 norm: NormKind = "none", min_std: float = 0.1, max_std: float = 1.0) -> None:
        super().__init__(feat_dim, action_dim, 2, units=units, layers=layers, act=act, norm=norm)
        self.min_std, self.max_std = min_std, max_std

    def params(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean (in (-1, 1)) and std (in (min_std, max_std)), each ``[..., A]``."""
        mean, std = self.net(feat).chunk(2, -1)
        return torch.tanh(mean), (self.max_std - self.min_std) * torch.sigmoid(std + 2.0) + self.min_std

    def dist(self, feat: torch.Tensor) -> Independent:  # noqa: D102
        mean, std = self.params(feat)
        return Independent(Normal(mean, std, validate_args=False), 1, validate_args=False)


class MultiOneHotDist(Distribution):
    """Independent :class:`OneHotDist` blocks over ``[..., Σ n_i]`` (a MultiDiscrete action, one one-hot per part).

        sample = concat_i sample_i,   log p(a) = Σ_i log p_i(a_i),   H = Σ_i H_i,   mode = concat_i mode_i

    >>> d = MultiOneHotDist(torch.zeros(3 + 4), (3, 4))
    >>> d.sample().sum(), d.entropy()   # log 3 + log 4
    (tensor(2.), tensor(2.4849))
    """

    arg_constraints: dict[str, Any] = {}
    has_rsample = True

    def __init__(self, logits: torch.Tensor, sizes: tuple[int, ...]) -> None:
        self.sizes = tuple(sizes)
        self.parts = [OneHotDist(block) for block in logits.split(list(self.sizes), -1)]
        super().__init__(logits.shape[:-1], logits.shape[-1:], validate_args=False)

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size()) -> torch.Tensor:  # noqa: D102
        return torch.cat([d.sample(sample_shape) for d in self.parts], -1)

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size()) -> torch.Tensor:  # noqa: D102
        return torch.cat([d.rsample(sample_shape) for d in self.parts], -1)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:  # noqa: D102
        blocks = value.split(list(self.sizes), -1)
        return torch.stack([d.log_prob(v) for d, v in zip(self.parts, blocks)], -1).sum(-1)

    def entropy(self) -> torch.Tensor:  # noqa: D102
        return torch.stack([d.entropy() for d in self.parts], -1).sum(-1)

    @property
    def mode(self) -> torch.Tensor:  # noqa: D102
        return torch.cat([d.mode for d in self.parts], -1)


class OneHotActor(_MLPActor):
    """Discrete actions: a categorical per sub-space with one-hot actions ``[..., A]``, ``A = Σ sizes``.

    DreamerV2 ``OneHotDist`` (straight-through ``rsample``), DreamerV3 ``outs.OneHot`` / ``Categorical`` with
    ``unimix`` (V3 policy: 0.01): ``logits = log((1 - u) softmax(l) + u / n)`` per block. ``forward(feat)`` returns
    the straight-through sample (forward value one-hot, gradient of the probabilities), so V1's dynamics
    backpropagation works through it (the TF1 seed's ``discrete`` preset); ``sample=False`` the one-hot argmax.
    :meth:`dist`: a :class:`OneHotDist` (one block, ``sizes=None``) or a :class:`MultiOneHotDist` (a MultiDiscrete
    space, one block per part, each sampled on its own).

    >>> actor = OneHotActor(30, 4, units=64, layers=2, unimix=0.01)
    >>> actor(torch.randn(8, 30)).sum(-1)
    tensor([1., 1., 1., 1., 1., 1., 1., 1.], grad_fn=<SumBackward1>)
    >>> OneHotActor(30, 7, units=64, layers=2, sizes=(3, 4))(torch.randn(2, 30)).sum(-1)
    tensor([2., 2.], grad_fn=<SumBackward1>)
    """

    def __init__(self, feat_dim: int, action_dim: int, *, units: int, layers: int, act: Activation = "elu",
                 norm: NormKind = "none", unimix: float = 0.0, sizes: tuple[int, ...] | None = None) -> None:
        super().__init__(feat_dim, action_dim, 1, units=units, layers=layers, act=act, norm=norm)
        self.unimix = unimix
        self.sizes = tuple(sizes) if sizes is not None else (action_dim,)
        if sum(self.sizes) != action_dim:
            raise ValueError(f"OneHotActor: sizes {self.sizes} must sum to action_dim {action_dim}")

    def dist(self, feat: torch.Tensor) -> OneHotDist | MultiOneHotDist:  # noqa: D102
        raw = self.net(feat)
        if len(self.sizes) == 1:
            return OneHotDist(unimix_logits(raw, self.unimix))
        blocks = [unimix_logits(b, self.unimix) for b in raw.split(list(self.sizes), -1)]
        return MultiOneHotDist(torch.cat(blocks, -1), self.sizes)


_ACTORS: dict[str, type[_MLPActor]] = {
    "tanh_normal": TanhNormalActor,
    "trunc_normal": TruncNormalActor,
    "bounded_normal": BoundedNormalActor,
    "onehot": OneHotActor,
}


def make_actor(kind: ActorKind, feat_dim: int, action_dim: int, *, units: int, layers: int,
               act: Activation = "elu", norm: NormKind = "none", **kw: Any) -> nn.Module:
    """The actor of ``kind`` (V1 ``tanh_normal``, V2 ``trunc_normal``, V3 ``bounded_normal``, discrete ``onehot``).

    ``kw`` goes to the class (``min_std``, ``unimix``, ...).

    >>> make_actor("onehot", 30, 4, units=64, layers=2, unimix=0.01).unimix
    0.01
    """
    if kind not in _ACTORS:
        raise ValueError(f"actor kind {kind!r}; available: {', '.join(map(repr, _ACTORS))}")
    return _ACTORS[kind](feat_dim, action_dim, units=units, layers=layers, act=act, norm=norm, **kw)


__all__ = ["BoundedNormalActor", "MultiOneHotDist", "OneHotActor", "OneHotDist", "TanhNormal", "TanhNormalActor", "TruncNormal",
           "TruncNormalActor", "make_actor"]
