"""train.<model>: the knobs of one model's training, which a search (tune.space) may also set."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import model_validator

from pipeline.config import rules
from pipeline.config.errors import problem
from pipeline.config.rules import Count, Fraction, Strict, nonempty, within


class UnetConfig(Strict):
    decoder_filters: Annotated[list[Count], nonempty()]
    reconstruction_weight: Annotated[float, within(0)]


class TrainConfig(Strict):
    architecture: Literal["irv2", "irv2_unet"]
    weights: Annotated[str | None, rules.named]
    head_units: Count
    dropout: Fraction
    optimizer: Literal["adam", "sgd"]
    learning_rate: Annotated[float, within(0, above=True)]
    momentum: Fraction
    # decoupled weight decay: every step each kernel shrinks by learning rate x weight_decay (biases and
    # BatchNormalization's scales and offsets are left alone); 0: none
    weight_decay: Annotated[float, within(0)]
    batch_size: Count
    epochs: Count
    finetune_epochs: Annotated[int, within(0)]
    finetune_learning_rate: Annotated[float, within(0, above=True)]
    unfreeze_top_layers: Annotated[int, within(0)]
    label_smoothing: Fraction
    class_weight: Literal["balanced", "none"]
    early_stopping_patience: Annotated[int, within(0)]  # Keras: 0 stops at the first epoch without improvement
    reduce_lr_patience: Annotated[int, within(0)]
    # plateau: the learning rate halves after reduce_lr_patience epochs without a lower validation loss;
    # cosine: it decays along a half cosine from its value to 0 over each phase's epochs (reduce_lr_patience unused)
    lr_schedule: Literal["plateau", "cosine"]
    # which weights training ends with: best, those of the epoch with the best validation macro F1 (and early stopping
    # after early_stopping_patience epochs without a better one); last, those of the last epoch (no early stopping)
    keep: Literal["best", "last"]
    # mixup: each training image blended with another of its batch, with a share drawn from Beta(mixup, mixup)
    # (pipeline/data/tfdata.py); 0: no blending
    mixup: Annotated[float, within(0)]
    # each training image, anew every epoch: mirrored left to right (half of them), and moved by up to random_shift of
    # its side each way, the edge reflected (pipeline/data/tfdata.py jitter); false and 0: as augment wrote it
    random_flip: bool
    random_shift: Annotated[float, within(0, 0.4)]
    mixed_precision: bool
    xla: bool
    run_eagerly: bool
    # before each validation, BatchNormalization statistics recomputed from this many training batches
    # (pipeline/training/batchnorm.py); 0: Keras' moving averages as they are
    bn_recompute_batches: Annotated[int, within(0)]
    unet: UnetConfig | None

    @model_validator(mode="after")
    def _unet_for_irv2_unet(self) -> TrainConfig:
        if (self.architecture == "irv2_unet") != (self.unet is not None):
            raise problem("give it for architecture irv2_unet (and only then)", "unet")
        return self
