"""BatchNormalization statistics recomputed for the weights as they are ("precise BN", Wu and Johnson 2021).

In training a BatchNormalization layer normalises with the batch's own statistics and keeps a moving average of them
for inference. Trained from scratch on a small dataset, the weights move much faster than that average follows:
on JAFFE (114 training images, 4 steps an epoch) every validation image went to one class at every epoch in
inference mode, while the same weights with their statistics recomputed spread their answers over the classes
(README, Real faces). ``recompute`` sets each trainable BatchNormalization layer's statistics to the mean of its
batch statistics over a few training batches, run forward in training mode with the weights unchanged. Layers that
are not trainable (a frozen pretrained base) run in inference mode anyway, and keep their statistics.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


def layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    return [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable]


def recompute(model: keras.Model, data: tf.data.Dataset, batches: int, forward=None) -> int:
    """Set the statistics of ``model``'s trainable BatchNormalization layers to the mean over the first ``batches``
    batches of ``data`` (each element ``(images, ...)``); return how many batches were read.

    Each batch goes forward once in training mode with momentum 0, so afterwards a layer's moving statistics are that
    batch's; they are summed here and their mean assigned at the end. ``forward``: a callable that runs
    ``model(images, training=True)``, e.g. a ``tf.function``: called only here, it is traced with momentum 0 (a
    Python number that Keras reads when tracing), which its graph then keeps.
    """
    bns = layers(model)
    if not bns or batches < 1:
        return 0
    momenta = [layer.momentum for layer in bns]
    sums = [[np.zeros(layer.moving_mean.shape), np.zeros(layer.moving_variance.shape)] for layer in bns]
    read = 0
    try:
        for layer in bns:
            layer.momentum = 0.0
        run = forward or (lambda images: model(images, training=True))
        for element in data.take(batches):
            run(element[0])
            for (mean, variance), layer in zip(sums, bns, strict=True):
                mean += keras.ops.convert_to_numpy(layer.moving_mean)
                variance += keras.ops.convert_to_numpy(layer.moving_variance)
            read += 1
    finally:
        for layer, momentum in zip(bns, momenta, strict=True):
            layer.momentum = momentum
    for (mean, variance), layer in zip(sums, bns, strict=True) if read else ():
        layer.moving_mean.assign(mean / read)
        layer.moving_variance.assign(variance / read)
    return read


class Recompute(keras.callbacks.Callback):
    """Before every validation of a fit, ``recompute`` on ``batches`` batches of the training data.

    Keras calls ``on_test_begin`` inside fit before it validates an epoch, and before the callbacks that read the
    validation score (best weights, early stopping), so the kept weights are saved with the statistics they were
    scored with. Unless the model runs eagerly, the forward pass is one graph, traced at the first validation.
    """

    def __init__(self, data: tf.data.Dataset, batches: int, eager: bool):
        super().__init__()
        self.data = data
        self.batches = batches
        self.eager = eager
        self.forward = None

    def on_test_begin(self, logs=None):
        if self.forward is None and not self.eager:
            spec = tf.TensorSpec((None, *self.model.inputs[0].shape[1:]), self.model.inputs[0].dtype)
            self.forward = tf.function(lambda images: self.model(images, training=True), input_signature=[spec])
        recompute(self.model, self.data, self.batches, self.forward)
