"""FSDP, activation checkpointing and torch.compile hooks, so that fairseq2's
``trainer.data_parallelism=fsdp``, ``trainer.activation_checkpointing`` and ``model.compile``
work with both families."""

from __future__ import annotations

from typing import Any

from fairseq2.error import NotSupportedError
from fairseq2.models.utils.ac import apply_layerwise_ac
from fairseq2.models.utils.fsdp import apply_layerwise_fsdp
from fairseq2.nn.fsdp import FSDPWrapper
from torch.nn import Module, ModuleList

from aape_plugin.models.encoder_model import AapeEncoderModel
from aape_plugin.models.ssl_model import AapeSslModel


def _block_stacks(model: Module) -> list[ModuleList]:
    if isinstance(model, AapeSslModel):
        return [model.student.blocks.blocks, model.teacher.blocks.blocks, model.predictor.blocks]

    if isinstance(model, AapeEncoderModel):
        return [model.encoder.blocks.blocks]

    raise TypeError(f"`model` must be an AaPE model, but is a {type(model).__name__}.")


def apply_fsdp_to_aape(model: Module, granularity: str, wrapper: FSDPWrapper) -> Module:
    """``layer``: each ViT / predictor block is its own FSDP unit (the stems, heads and
    embeddings go with the root unit fairseq2 adds); ``stack``: each block stack is one unit."""
    if granularity == "layer":
        for stack in _block_stacks(model):
            apply_layerwise_fsdp(stack, wrapper)

        return model

    if granularity == "stack":
        if isinstance(model, AapeSslModel):
            model.student.register_module("blocks", wrapper(model.student.blocks))
            model.teacher.register_module("blocks", wrapper(model.teacher.blocks))
            model.register_module("predictor", wrapper(model.predictor))
        else:
            model.encoder.register_module("blocks", wrapper(model.encoder.blocks))

        return model

    raise NotSupportedError(
        f"`granularity` must be 'layer' or 'stack' for AaPE models, but is {granularity!r} instead."
    )


def apply_ac_to_aape(model: Module, every_nth_layer: int) -> Module:
    """Checkpoints every n-th block of the trained stacks (not the teacher: it runs without
    gradients, so it stores no activations)."""
    stacks = _block_stacks(model)

    trained = [stacks[0], stacks[2]] if isinstance(model, AapeSslModel) else stacks

    for stack in trained:
        apply_layerwise_ac(stack, every_nth_layer)

    return model


def compile_aape(model: Module, *args: Any, **kwargs: Any) -> None:
    """Compiles block by block (the blocks are shape-stable; masking and gathers are not)."""
    for stack in _block_stacks(model):
        for block in stack:
            block.compile(*args, **kwargs)
