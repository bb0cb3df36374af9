"""train.<model>.random_flip and random_shift (pipeline/data/tfdata.py jitter): each training image mirrored and moved
anew every epoch, by whole pixels with the edge reflected, the U-Net's target alike; what the optimizer steps on."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from pipeline.data import tfdata
from pipeline.training import loop
from tests.training.test_resume import tiny_cfg

SIZE = 10


def pictures() -> np.ndarray:
    """8 pictures of random pixels: every window of one is told apart from every other."""
    return np.random.default_rng(5).integers(0, 256, (8, SIZE, SIZE, 3), dtype=np.uint8)


def batches(reconstruction: bool = True) -> tf.data.Dataset:
    return tfdata.labelled(
        tfdata.image_arrays(pictures()), np.arange(8) % 4, 4, 8, shuffle_seed=0, reconstruction=reconstruction
    )


def originals() -> list[np.ndarray]:
    """Each picture as the model sees it, unmoved."""
    return [tfdata.preprocess(p).numpy() for p in pictures()]


def placements(image: np.ndarray, pad: int) -> list[tuple[int, bool, int, int]]:
    """Which original, mirrored or not, at which offset of its reflected padding, ``image`` is exactly."""
    found = []
    for k, original in enumerate(originals()):
        for mirrored in (False, True):
            source = original[:, ::-1] if mirrored else original
            padded = np.pad(source, [(pad, pad), (pad, pad), (0, 0)], mode="reflect")
            for dy in range(2 * pad + 1):
                for dx in range(2 * pad + 1):
                    if np.allclose(padded[dy : dy + SIZE, dx : dx + SIZE], image, atol=1e-4):
                        found.append((k, mirrored, dy, dx))
    return found


def test_off_leaves_the_data_as_it_is():
    ds = batches()
    assert tfdata.jitter(ds, False, 0.0, 1) is ds


def test_images_are_mirrored_and_moved_by_whole_pixels_with_the_edge_reflected():
    pad = 2  # 0.2 of a 10-pixel side
    (images, y, w), *_ = list(tfdata.jitter(batches(), True, 0.2, 3))
    placed = [placements(image, pad) for image in images.numpy()]
    assert all(len(p) >= 1 for p in placed), "an image is no mirrored, moved window of a picture"
    assert sorted(p[0][0] for p in placed) == list(range(8))  # every picture once
    mirrored = {p[0][1] for p in placed}
    moved = {(p[0][2], p[0][3]) for p in placed}
    assert mirrored == {False, True}
    assert len(moved) > 1 and moved != {(pad, pad)}
    # the targets stay the picture's, and the U-Net gives back what it was shown
    assert y["emotion"].shape == (8, 4) and w["emotion"].numpy().tolist() == [1.0] * 8
    np.testing.assert_array_equal(y["reconstruction"].numpy(), images.numpy())


def test_flip_alone_only_mirrors():
    (images, _, _), *_ = list(tfdata.jitter(batches(), True, 0.0, 3))
    placed = [placements(image, 0) for image in images.numpy()]
    assert all(len(p) == 1 for p in placed)
    assert {p[0][1] for p in placed} == {False, True}


def test_the_draws_change_every_epoch_and_repeat_in_every_run():
    def epochs(ds, n=2):
        return [next(iter(ds))[0].numpy() for _ in range(n)]

    first = epochs(tfdata.jitter(batches(False), True, 0.2, 3))
    again = epochs(tfdata.jitter(batches(False), True, 0.2, 3))
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    # the same pictures in the same order (the shuffle is seeded alike), placed anew
    assert not np.array_equal(first[0], first[1])
    assert tfdata.jitter(batches(), True, 0.2, 3).cardinality() == 1  # a schedule can count its steps


def test_the_optimizer_steps_on_moved_then_blended_images_and_on_the_data_itself_when_all_are_off(params):
    train = batches()
    assert loop.optimizer_data(train, tiny_cfg(params), 3) is train
    moved = loop.optimizer_data(train, tiny_cfg(params, random_flip=True, random_shift=0.2), 3)
    (images, _, _), *_ = list(moved)
    assert all(placements(image, 2) for image in images.numpy())
    blended = loop.optimizer_data(train, tiny_cfg(params, random_flip=True, random_shift=0.2, mixup=0.4), 3)
    (_, y, _), *_ = list(blended)
    assert (y["emotion"].numpy().max(axis=1) < 1.0 - 1e-6).any()
