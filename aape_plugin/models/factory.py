"""Factories of the ``aape`` and ``aape_encoder`` families."""

from __future__ import annotations

from aape_plugin.models.config import AapeConfig, EncoderConfig
from aape_plugin.models.encoder_model import AapeEncoderModel
from aape_plugin.models.ssl_model import AapeSslModel
from aape_plugin.nn.audio_encoder import AudioEncoder
from aape_plugin.nn.patch_embed import AaPEPatchEmbed, PlainPatchEmbed
from aape_plugin.nn.predictor import CrossAttentionPredictor


def create_stem(config: EncoderConfig) -> AaPEPatchEmbed | PlainPatchEmbed:
    stem = config.stem

    if stem.kind == "plain":
        return PlainPatchEmbed(
            embed_dim=config.model_dim, num_mel_bins=config.num_mel_bins, patch_size=config.patch_size
        )

    if stem.kind != "aape":
        raise ValueError(f"`encoder.stem.kind` must be 'aape' or 'plain', but is {stem.kind!r} instead.")

    return AaPEPatchEmbed(
        embed_dim=config.model_dim,
        num_mel_bins=config.num_mel_bins,
        patch_size=config.patch_size,
        num_kernels=stem.num_kernels,
        num_taps=stem.num_taps,
        alias_dim=stem.alias_dim,
        highpass_taps=stem.highpass_taps,
        step=stem.step,
        centre_tap=stem.centre_tap,
        lambda_dim=stem.lambda_dim,
        lambda_depth=stem.lambda_depth,
        lambda_num_heads=stem.lambda_num_heads,
        lambda_mlp_ratio=stem.lambda_mlp_ratio,
        min_decay=stem.min_decay,
        max_decay=stem.max_decay,
        init_decay=stem.init_decay,
        min_frequency=stem.min_frequency,
        max_frequency=stem.max_frequency,
        adaptive=stem.adaptive,
        context=stem.context,
        pole_mode=stem.pole_mode,
        decay_range=stem.decay_range,
        fusion_balance=stem.fusion_balance,
        lambda_modulation_input=stem.lambda_modulation_input,
    )


def validate_encoder_config(config: EncoderConfig) -> None:
    """Checks the encoder geometry up front, naming the field that is wrong."""
    p = config.patch_size

    if config.num_mel_bins % p != 0:
        raise ValueError(
            f"`encoder.num_mel_bins` ({config.num_mel_bins}) must be a multiple of "
            f"`encoder.patch_size` ({p})."
        )

    if config.num_frames % p != 0 or config.num_frames < 2 * p:
        raise ValueError(
            f"`encoder.num_frames` ({config.num_frames}) must be a multiple of "
            f"`encoder.patch_size` ({p}) and at least {2 * p}."
        )

    if config.model_dim % config.num_heads != 0 or config.model_dim % 4 != 0:
        raise ValueError(
            f"`encoder.model_dim` ({config.model_dim}) must be a multiple of 4 and of "
            f"`encoder.num_heads` ({config.num_heads})."
        )


def create_encoder(config: EncoderConfig, *, drop_path: float | None = None, mask_stem_input: bool = True) -> AudioEncoder:
    validate_encoder_config(config)

    return AudioEncoder(
        create_stem(config),
        depth=config.num_layers,
        num_heads=config.num_heads,
        mlp_ratio=config.mlp_ratio,
        qkv_bias=config.qkv_bias,
        drop_path=config.drop_path if drop_path is None else drop_path,
        mask_stem_input=mask_stem_input,
    )


def create_aape_model(config: AapeConfig) -> AapeSslModel:
    """Student and teacher start identical (the teacher without stochastic depth)."""
    if config.targets.num_layers > config.encoder.num_layers:
        raise ValueError(
            f"`targets.num_layers` ({config.targets.num_layers}) must not exceed "
            f"`encoder.num_layers` ({config.encoder.num_layers})."
        )

    hide = config.masking.hide_from_stem

    student = create_encoder(config.encoder, mask_stem_input=hide)
    teacher = create_encoder(config.encoder, drop_path=0.0, mask_stem_input=hide)

    teacher.load_state_dict(student.state_dict())

    predictor = CrossAttentionPredictor(
        context_dim=config.encoder.model_dim,
        out_dim=config.encoder.model_dim,
        dim=config.predictor.dim,
        num_layers=config.predictor.num_layers,
        num_heads=config.predictor.num_heads,
        mlp_ratio=config.predictor.mlp_ratio,
    )

    return AapeSslModel(config, student, teacher, predictor)


def create_aape_encoder(config: AapeConfig) -> AapeEncoderModel:
    return AapeEncoderModel(config, create_encoder(config.encoder, drop_path=0.0))
