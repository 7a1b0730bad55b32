"""FSDP, activation checkpointing and torch.compile hooks, so that fairseq2's
``trainer.data_parallelism=fsdp``, ``trainer.activation_checkpointing`` and ``model.compile``
work with both families."""

from __future__ import annotations

from typing import Any

from fairseq2.error import NotSupportedError
from fairseq2.models.utils.ac import apply_layerwise_ac
from fairseq2.models.utils.fsdp import apply_layerwise_fsdp
from fairseq2.nn.fsdp import FSDPWrapper
from torch.nn import BatchNorm1d, Module, ModuleList, SyncBatchNorm

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


def unsync_batch_norm_on_cpu(module: Module, device_type: str) -> int:
    """Turns the ``SyncBatchNorm`` layers fairseq2's DDP/FSDP wrappers make back into plain
    ones when training on CPU, where PyTorch cannot synchronise batch statistics (it raises);
    each rank then normalises with its own batch, as without synchronisation. Returns how many
    layers were changed (none on GPUs, where statistics stay synchronised)."""
    if device_type in ("cuda", "xpu"):
        return 0

    changed = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, SyncBatchNorm):
                plain = BatchNorm1d(child.num_features, eps=child.eps, momentum=child.momentum, affine=child.affine,
                                    track_running_stats=child.track_running_stats, device=child.running_mean.device if child.running_mean is not None else None)
                plain.load_state_dict(child.state_dict())
                plain.train(child.training)
                setattr(parent, name, plain)
                changed += 1
    return changed
