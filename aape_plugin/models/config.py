"""Configuration of the AaPE model family (``aape``) and its encoder-only view (``aape_encoder``).

Every field's default is the paper's method at ``aape_base`` scale (``docs/design.md``); the archs in
:mod:`aape_plugin.models.archs` change the sizes. Options this project adds are off by default and
say where they were measured. Frequencies are in rad/frame and decays in
1/frame (one log-mel frame = 10 ms at the default front end).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final, Literal

AAPE_FAMILY: Final = "aape"
"""The self-supervised model (student, EMA teacher, predictor)."""

AAPE_ENCODER_FAMILY: Final = "aape_encoder"
"""The encoder alone, loadable from an ``aape`` checkpoint (downstream use)."""


@dataclass(kw_only=True)
class StemConfig:
    """The patch embedding in front of the ViT."""

    kind: Literal["aape", "plain"] = "aape"
    """``aape``: Aliasing-aware Patch Embedding; ``plain``: the standard conv stem (ablation)."""

    num_kernels: int = 8
    """SBLU kernels (complex poles) per subband and time patch."""

    num_taps: int = 33
    """Taps per SBLU kernel (odd; centred), covering one patch and its neighbours."""

    alias_dim: int = 64
    """Aliasing features per patch, before Patch Fusion."""

    highpass_taps: int | None = None
    """Length of the zero-phase high-pass; ``None`` means ``8 * patch_size + 1``."""

    step: float = 1.0
    """The SBLU step ``Delta``, in frames."""

    centre_tap: Literal["paper", "exact"] = "paper"
    """Centre-tap gain: the published formula, or the exact step average of exp(-Lambda|t|)."""

    lambda_dim: int = 64
    """Width of the Lambda Encoder ("narrow")."""

    lambda_depth: int = 2
    """Layers of the Lambda Encoder ("shallow")."""

    lambda_num_heads: int = 4
    """Attention heads of the Lambda Encoder."""

    lambda_mlp_ratio: float = 2.0
    """Feed-forward ratio of the Lambda Encoder."""

    min_decay: float = 1e-3
    """Decay floor (``softplus(.) + min_decay``), 1/frame."""

    max_decay: float = 20.0
    """Decay cap, 1/frame (a kernel is a unit impulse to exp(-20) there)."""

    init_decay: float = 0.25
    """Decay at initialisation, 1/frame."""

    min_frequency: float | None = None
    """Lower edge of the SBLU band, rad/frame; ``None`` = post-patch Nyquist ``pi / patch_size``."""

    max_frequency: float = math.pi
    """Upper edge of the SBLU band, rad/frame (``pi``: the frame Nyquist)."""

    adaptive: bool = True
    """``True`` (the paper): the Lambda Encoder estimates each patch's poles from the input.
    ``False``: the fixed-pole arm: one pole set per subband, the same for every input and patch,
    with the same band and initial spread (learned with the Lambda Encoder's learning rate, or
    kept at the initial spread with ``optimizer.config.lambda_lr_scale: 0``). "Adaptive minus
    fixed" is what the paper's input-dependent estimate adds."""

    context: Literal["clip", "patch"] = "clip"
    """What the aliasing analysis of a patch looks at: ``clip`` (the 129-tap high-pass and the
    33-tap kernels reach into neighbouring patches) or ``patch`` (the patch's own frames only:
    the same computation in masked pre-training and at inference; see ``docs/design.md``)."""

    pole_mode: Literal["free", "offsets"] = "free"
    """``free``: the Lambda Encoder's heads place each pole anywhere in the band; ``offsets``:
    each kernel keeps a fixed centre of the initial spread over the alias band and the heads give
    bounded, input-dependent offsets (within half the log-distance to its neighbours; decays within
    ``decay_range`` of ``init_decay``), so pre-training cannot move the kernels out of their slots."""

    decay_range: float = 4.0
    """With ``pole_mode: offsets``: decays stay within ``init_decay`` divided or multiplied by this."""

    lambda_modulation_input: bool = False
    """The project's option (not the paper's): the Lambda Encoder's tokens also see each patch's
    modulation spectrum (the log power of its mel rows' envelopes at the patch's DFT rates), the
    quantity its poles are meant to follow; a linear map of the patch cannot compute a power.
    Screened on validation at study scale (``docs/adaptive-poles-screen.md``)."""

    fusion_balance: bool = False
    """Patch Fusion scales the normalised aliasing features by ``sqrt(model_dim / alias_dim)``, so
    that the alias stream brings as much variance into the projection as the conv stream."""


@dataclass(kw_only=True)
class EncoderConfig:
    """The spectrogram ViT (student and teacher share it)."""

    num_mel_bins: int = 80
    """Log-mel bins of the input (16 kHz, 50-8000 Hz)."""

    num_frames: int = 608
    """Input frames (10 ms hop): 608 = 6.08 s, a 5 x 38 patch grid. Readers crop/pad to it."""

    patch_size: int = 16
    """Square patches of ``patch_size`` bins x frames, non-overlapping."""

    model_dim: int = 768
    """Token width ``D``."""

    num_layers: int = 12
    """ViT blocks."""

    num_heads: int = 12
    """Attention heads."""

    mlp_ratio: float = 4.0
    """Feed-forward width as a multiple of ``model_dim``."""

    qkv_bias: bool = True
    """Bias in the fused QKV projection."""

    drop_path: float = 0.0
    """Stochastic depth of the last block (linear from 0) in the student."""

    stem: StemConfig = field(default_factory=StemConfig)
    """The patch embedding."""


@dataclass(kw_only=True)
class MaskingConfig:
    """Multi-mask: M independent masks ("clones") of each clip share one teacher pass."""

    ratio: float = 0.75
    """Fraction of patches hidden from the student (exact per clone, rounded)."""

    num_clones: int = 16
    """Masks per clip, M."""

    hide_from_stem: bool = True
    """Hide masked patches from the stem too: the AaPE aliasing branch looks beyond a patch
    (Lambda Encoder attention; with ``stem.context: clip`` also the high-pass and SBLU taps) and
    would otherwise leak hidden content into visible tokens. Costs one stem pass per clone
    instead of per clip."""

    kind: Literal["random", "inverse_block"] = "random"
    """``random``: uniformly random hidden patches; ``inverse_block``: EAT's masks, where the
    visible patches form blocks of ``block_size x block_size`` neighbours."""

    block_size: int = 3
    """Side (in patches) of the visible blocks of ``inverse_block`` masks."""


@dataclass(kw_only=True)
class PredictorConfig:
    """Cross-attention predictor of the teacher's tokens at masked positions."""

    dim: int = 384
    """Width."""

    num_layers: int = 4
    """Cross-attention blocks."""

    num_heads: int = 6
    """Attention heads."""

    mlp_ratio: float = 4.0
    """Feed-forward ratio."""


@dataclass(kw_only=True)
class TargetConfig:
    """Layer-wise pooled teacher targets."""

    num_layers: int = 8
    """Top-k teacher layers averaged (each instance-normalised over tokens first)."""

    source: Literal["residual", "ffn"] = "residual"
    """Which output of each teacher block: the residual stream after it (``residual``: carries
    the fixed position embedding), or its feed-forward output before the residual add (``ffn``:
    data2vec 2.0 / EAT)."""

    global_target: Literal["patch_mean", "clip"] = "patch_mean"
    """What the CLS token regresses: the mean patch target (``patch_mean``: close to zero, since
    the patch targets are instance-normalised over the clip) or a normalised clip summary of the
    same layers (``clip``: see :func:`aape_plugin.nn.targets.clip_target`)."""

    alias_features: bool = False
    """The predictor also predicts, at the masked positions, the teacher stem's aliasing features
    (a head of ``alias_dim`` outputs, weighted by the criterion's ``alias_weight``). The
    layer-pooled targets need not carry what only the alias branch sees (the modulation rates
    above the patch rate's Nyquist), and a student trained on them alone lets it fade; this term
    asks the visible tokens to carry it. An addition of this project, not the paper's: off in every
    arch; the ``study`` and ``demo`` presets turn it on (with ``alias_norm: subband`` and
    ``alias_visible``), chosen on validation with ``aape_tiny`` at 3,000 steps on the 4.5-hour
    study corpus (``docs/objectives.md``, rounds 2-5). An AaPE-stem option: a plain stem trains
    without it."""

    alias_norm: Literal["patch", "subband"] = "patch"
    """How the aliasing features become targets (:func:`aape_plugin.nn.targets.alias_targets`):
    ``patch`` (LayerNorm per patch; most of what is left is the subband's fixed pattern) or
    ``subband`` (each feature standardised per subband over the batch: what differs between
    clips and patches; in training, the statistics are those of the whole batch, summed over
    the data-parallel ranks)."""

    alias_visible: bool = False
    """With ``alias_features`` (ignored without it): the student's own output tokens at the
    visible positions also predict the aliasing targets there (a second head), and the alias
    term is the mean of the two MSEs. The predictor can rebuild the masked targets from what it
    is given; this asks the encoder's output, the representation a probe or a fine-tuned head
    reads, to keep the rates itself. Off in every arch; the ``study`` and ``demo`` presets turn it
    on (``docs/objectives.md``, round 5: ``aape_tiny``, 3,000 steps)."""


@dataclass(kw_only=True)
class AapeConfig:
    """The ``aape`` family: student encoder, EMA teacher, predictor, heads."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    """Student and teacher encoder."""

    masking: MaskingConfig = field(default_factory=MaskingConfig)
    """Multi-mask settings."""

    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    """Cross-attention predictor."""

    targets: TargetConfig = field(default_factory=TargetConfig)
    """Teacher targets."""

    contrastive_dim: int = 256
    """Width of the projection of the student's CLS token used by the contrastive term."""

    downstream_encoder: Literal["teacher", "student"] = "teacher"
    """Which encoder the ``aape_encoder`` family loads from an ``aape`` checkpoint."""
