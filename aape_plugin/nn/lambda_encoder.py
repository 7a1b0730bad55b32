"""The Lambda Encoder: input-dependent SBLU poles (decay, frequency) per subband and time patch."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import (
    LayerNorm,
    Linear,
    Module,
    Parameter,
    TransformerEncoder,
    TransformerEncoderLayer,
)

from aape_plugin.nn.patchify import gather_patches, patchify
from aape_plugin.nn.position import sincos_2d


class LambdaEncoder(Module):
    """Estimates ``Lambda = (alpha, beta)`` for every kernel of every patch from the log-mel.

    Each ``p x p`` log-mel patch becomes a token; a narrow, shallow Transformer lets each token
    see the whole clip (fixed 2-D sine-cosine positions); two linear heads give ``num_kernels``
    decays and frequencies per token, i.e. per (subband, time patch).

    The heads are constrained so that the SBLU always targets the alias-prone band:

    * decay ``alpha = min(softplus(a) + min_decay, max_decay) > 0`` (1/frame). The cap keeps the
      centre-tap gain ``2 sinh(alpha / 2) / |Lambda|`` finite in float32; at ``alpha = 20`` the
      kernel is already a unit impulse to within ``exp(-20)``.
    * frequency ``beta = min_frequency + (max_frequency - min_frequency) * sigmoid(b)``
      (rad/frame), by default between the post-patch Nyquist ``pi / p`` and the frame Nyquist
      ``pi``: the band that patching with stride ``p`` folds onto lower frequencies.

    At initialisation the kernels of a subband spread geometrically over the band and all decays
    are ``init_decay``; the (small) head weights then make them vary with the input.

    With ``adaptive=False`` (an ablation) there is no Transformer: each (subband, kernel) has a
    learned pole, the same for every input and time patch, under the same constraints.

    With ``modulation_input=True`` (a project option, not the paper's) each token also receives
    the patch's modulation spectrum: the log power, averaged over the patch's mel rows, of each
    row's Hann-windowed envelope (the log-mel row) at the ``p/2`` non-zero DFT frequencies of the
    patch's ``p`` frames, i.e. the rates the kernels are meant to find. A linear map of the
    patch cannot compute a power, so without it the Transformer must learn one to follow the rate.

    With ``pole_mode="offsets"`` the heads no longer place the poles anywhere in the band: kernel
    ``n`` keeps a fixed centre ``c_n`` (its place in the geometric spread above) and the heads give
    bounded, input-dependent offsets around it, ``beta = c_n * r**(tanh(b) / 2)`` with ``r`` the
    ratio between neighbouring centres (so a kernel stays within its own slot of the band) and
    ``alpha = init_decay * decay_range**tanh(a)``. The spread of centres over the alias band
    cannot collapse, whatever the objective pushes; at initialisation both modes give the same
    poles.
    """

    def __init__(
        self,
        *,
        patch_size: int = 16,
        num_kernels: int = 8,
        dim: int = 64,
        depth: int = 2,
        num_heads: int = 4,
        mlp_ratio: float = 2.0,
        min_decay: float = 1e-3,
        max_decay: float = 20.0,
        init_decay: float = 0.25,
        min_frequency: float | None = None,
        max_frequency: float = math.pi,
        adaptive: bool = True,
        num_subbands: int | None = None,
        pole_mode: str = "free",
        decay_range: float = 4.0,
        modulation_input: bool = False,
    ) -> None:
        """
        :param patch_size: ``p``; the patches (and subbands) are ``p x p`` log-mel cells.
        :param num_kernels: ``N`` kernels (poles) per subband and time patch.
        :param dim: token width of the Transformer ("narrow").
        :param depth: number of Transformer layers ("shallow").
        :param num_heads: attention heads.
        :param mlp_ratio: feed-forward width as a multiple of ``dim``.
        :param min_decay: the ``eps`` of ``softplus(.) + eps``, in 1/frame.
        :param max_decay: upper bound of the decay, in 1/frame.
        :param init_decay: decay at initialisation, in 1/frame.
        :param min_frequency: lower edge of the frequency band in rad/frame; ``None`` means the
            post-patch Nyquist ``pi / patch_size``.
        :param max_frequency: upper edge in rad/frame (``pi``: the frame Nyquist).
        :param adaptive: ``False`` replaces the input-dependent estimate by learned constants.
        :param num_subbands: required when ``adaptive`` is ``False`` (one pole set per subband).
        :param pole_mode: ``free`` (the heads place each pole anywhere in the band) or ``offsets``
            (bounded offsets around fixed centres; see the class docstring).
        :param decay_range: with ``offsets``, decays stay within ``init_decay`` divided or
            multiplied by this factor.
        :param modulation_input: each token also sees its patch's modulation spectrum (see the
            class docstring).
        """
        super().__init__()

        if min_frequency is None:
            min_frequency = math.pi / patch_size

        if not 0.0 <= min_frequency < max_frequency <= math.pi:
            raise ValueError(
                f"The frequency band must satisfy 0 <= min_frequency < max_frequency <= pi, but "
                f"is [{min_frequency}, {max_frequency}] instead."
            )

        if not 0.0 < min_decay < init_decay < max_decay:
            raise ValueError(
                f"The decays must satisfy 0 < min_decay < init_decay < max_decay, but are "
                f"{min_decay}, {init_decay} and {max_decay} instead."
            )

        if dim % 4 != 0 or dim % num_heads != 0:
            raise ValueError(
                f"`dim` must be a multiple of 4 and of `num_heads` ({num_heads}), but is {dim} "
                f"instead."
            )

        if pole_mode not in ("free", "offsets"):
            raise ValueError(f"`pole_mode` must be 'free' or 'offsets', but is {pole_mode!r} instead.")

        if pole_mode == "offsets" and not (decay_range > 1.0 and min_decay < init_decay / decay_range and init_decay * decay_range <= max_decay):
            raise ValueError(
                f"With `pole_mode='offsets'` the decays init_decay / decay_range .. init_decay * decay_range "
                f"({init_decay / decay_range:g} .. {init_decay * decay_range:g}) must lie within (min_decay, max_decay] "
                f"({min_decay:g}, {max_decay:g}], and `decay_range` must be > 1 (is {decay_range:g})."
            )

        self.pole_mode = pole_mode
        self.decay_range = decay_range
        self.patch_size = patch_size
        self.num_kernels = num_kernels
        self.dim = dim
        self.min_decay = min_decay
        self.max_decay = max_decay
        self.init_decay = init_decay
        self.min_frequency = min_frequency
        self.max_frequency = max_frequency
        self.adaptive = adaptive
        self.modulation_input = modulation_input and adaptive

        centres = self._centres()
        self.register_buffer("centre_frequency", centres, persistent=False)
        # The ratio between neighbouring centres (in Python: the module may be built on the meta device).
        self.slot_ratio = (max_frequency / max(min_frequency, 1e-3)) ** (1.0 / num_kernels)

        if not adaptive:
            if num_subbands is None:
                raise ValueError("`num_subbands` must be given when `adaptive` is False.")

            self.num_subbands = num_subbands

            self.static_decay = Parameter(torch.empty(num_subbands, num_kernels))
            self.static_frequency = Parameter(torch.empty(num_subbands, num_kernels))

            self.reset_parameters()

            return

        self.patch_proj = Linear(patch_size * patch_size, dim)

        if self.modulation_input:
            self.register_buffer("modulation_window", torch.hann_window(patch_size, periodic=False), persistent=False)
            self.modulation_proj = Linear(patch_size // 2, dim)

        layer = TransformerEncoderLayer(
            dim,
            num_heads,
            dim_feedforward=int(dim * mlp_ratio),
            dropout=0.0,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )

        self.transformer = TransformerEncoder(layer, depth, enable_nested_tensor=False)

        self.norm = LayerNorm(dim)

        self.decay_head = Linear(dim, num_kernels)
        self.frequency_head = Linear(dim, num_kernels)

        self.reset_parameters()

    def _centres(self) -> Tensor:
        """Kernel n's frequency at initialisation: the geometric centre of the n-th of N equal
        log-width bins of the band (rad/frame, float32)."""
        lo, hi = self.min_frequency, self.max_frequency
        edges = torch.linspace(math.log(max(lo, 1e-3)), math.log(hi), self.num_kernels + 1, dtype=torch.float64)
        return ((edges[:-1] + edges[1:]) / 2).exp().float()

    def reset_parameters(self) -> None:
        """Small head weights; biases that spread the kernels over the band (with ``offsets``:
        zero offsets from the centres, the same poles). Materialising a meta-device model calls
        this (not ``reset_non_persistent_buffers``): the centres are recomputed here too."""
        self.reset_non_persistent_buffers()

        if self.adaptive:
            for head in (self.decay_head, self.frequency_head):
                torch.nn.init.normal_(head.weight, std=0.02)

            decay_bias, frequency_bias = self.decay_head.bias, self.frequency_head.bias
        else:
            decay_bias, frequency_bias = self.static_decay, self.static_frequency

        if self.pole_mode == "offsets":
            torch.nn.init.zeros_(decay_bias)
            torch.nn.init.zeros_(frequency_bias)
            return

        # softplus^-1(init_decay - min_decay)
        target = self.init_decay - self.min_decay
        torch.nn.init.constant_(decay_bias, math.log(math.expm1(target)))

        lo, hi = self.min_frequency, self.max_frequency
        fraction = ((self._centres().double() - lo) / (hi - lo)).clamp(1e-3, 1 - 1e-3)
        with torch.no_grad():
            frequency_bias.copy_(torch.logit(fraction).float().expand_as(frequency_bias))

    def reset_non_persistent_buffers(self) -> None:
        """The centres and the window (non-persistent buffers) after materialising from the meta
        device."""
        self.centre_frequency = self._centres().to(self.centre_frequency.device)
        if self.modulation_input:
            self.modulation_window = torch.hann_window(self.patch_size, periodic=False, device=self.centre_frequency.device)

    def modulation_spectrum(self, patches: Tensor) -> Tensor:
        """``(..., p*p)`` frequency-major patches -> ``(..., p/2)`` log power of the rows'
        windowed envelopes at DFT bins ``1 .. p/2`` (rate ``k / p`` per frame), mean over rows."""
        p = self.patch_size
        rows = patches.unflatten(-1, (p, p)).float()
        rows = (rows - rows.mean(-1, keepdim=True)) * self.modulation_window.to(rows.device)
        power = torch.fft.rfft(rows, dim=-1).abs().square().mean(-2)  # (..., p/2 + 1)
        return torch.log(power[..., 1 : p // 2 + 1] + 1e-4)

    def _constrain(self, decay_logits: Tensor, frequency_logits: Tensor) -> tuple[Tensor, Tensor]:
        if self.pole_mode == "offsets":
            decay = self.init_decay * self.decay_range ** torch.tanh(decay_logits)
            centres = self.centre_frequency.to(device=frequency_logits.device, dtype=torch.float32)
            frequency = centres * self.slot_ratio ** (torch.tanh(frequency_logits) / 2)
            return decay, frequency

        decay = F.softplus(decay_logits) + self.min_decay

        decay = decay.clamp(max=self.max_decay)

        span = self.max_frequency - self.min_frequency

        frequency = self.min_frequency + span * torch.sigmoid(frequency_logits)

        return decay, frequency

    def forward(self, x: Tensor, index: Tensor | None = None, num_clones: int = 1) -> tuple[Tensor, Tensor]:
        """
        :param x: log-mel ``(B, 1, F, T)``, ``F`` and ``T`` multiples of the patch size.
        :param index: optional ``(B*M, n)`` flat patch indices ``s * P + t`` (ascending) of
            ``M = num_clones`` masked views of each clip: estimate only these patches, attending
            only among them, so that no estimate depends on the other (hidden) patches; as a
            masked ViT student does. The patch projection runs once per clip.
        :param num_clones: ``M`` (with ``index``).
        :returns: ``(decay, frequency)`` in 1/frame and rad/frame, each
            ``(B, F/p, T/p, num_kernels)``, or ``(B*M, n, num_kernels)`` when ``index`` is given.
        """
        batch_size, _, num_bins, num_frames = x.shape

        num_subbands = num_bins // self.patch_size
        num_time_patches = num_frames // self.patch_size

        if not self.adaptive:
            if num_subbands != self.num_subbands:
                raise ValueError(
                    f"This LambdaEncoder has poles for {self.num_subbands} subbands, but the "
                    f"input has {num_subbands} (shape {tuple(x.shape)})."
                )

            decay, frequency = self._constrain(self.static_decay, self.static_frequency)  # (S, N)

            if index is not None:
                subband = torch.div(index, num_time_patches, rounding_mode="floor")
                return decay[subband], frequency[subband]

            shape = (batch_size, num_subbands, num_time_patches, self.num_kernels)

            return decay[None, :, None, :].expand(shape), frequency[None, :, None, :].expand(shape)

        patches = patchify(x, self.patch_size).flatten(1, 2)  # (B, S*P, p*p)

        pos = sincos_2d(num_subbands, num_time_patches, self.dim, device=x.device).flatten(0, 1)

        tokens = self.patch_proj(patches) + pos.to(patches.dtype)

        if self.modulation_input:
            with torch.autocast(x.device.type, enabled=False):
                spectrum = self.modulation_spectrum(patches)
            tokens = tokens + self.modulation_proj(spectrum.to(tokens.dtype))

        if index is not None:
            tokens = gather_patches(tokens, index, num_clones)

        tokens = self.norm(self.transformer(tokens))

        # The heads and constraints run in float32 even under autocast (or with bfloat16
        # weights): bfloat16 would round the poles (frequencies by up to ~0.02 rad/frame, ~0.3
        # rad of phase at the outer taps) before the kernel is built in float32.
        with torch.autocast(x.device.type, enabled=False):
            tokens = tokens.float()
            decay, frequency = self._constrain(
                F.linear(tokens, self.decay_head.weight.float(), self.decay_head.bias.float()),
                F.linear(tokens, self.frequency_head.weight.float(), self.frequency_head.bias.float()),
            )

        if index is None:
            shape = (batch_size, num_subbands, num_time_patches, self.num_kernels)
            return decay.view(shape), frequency.view(shape)

        return decay, frequency
