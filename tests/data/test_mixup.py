"""mixup (train.<model>.mixup, pipeline/data/tfdata.py): what the optimizer steps on when images are blended."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.data import tfdata
from pipeline.training import callbacks, loop
from tests.training.test_resume import FOR_PHASE, tiny_cfg, tiny_model


def batches(reconstruction: bool = False, weights: np.ndarray | None = None, classes: int = 4):
    """4 images of one flat value each (0, 60, 120, 180), of classes 0 to 3, in one batch."""
    images = np.stack([np.full((8, 8, 3), 60 * i, np.uint8) for i in range(4)])
    return tfdata.labelled(
        tfdata.image_arrays(images),
        np.arange(4),
        classes,
        4,
        shuffle_seed=0,
        reconstruction=reconstruction,
        weights=weights,
    )


def flat(value: int) -> float:
    return float(tfdata.preprocess(np.full((1,), value, np.uint8)).numpy()[0])


def test_alpha_zero_leaves_the_data_as_it_is():
    ds = batches()
    assert tfdata.mixup(ds, 0.0, 1) is ds


def test_each_image_is_blended_with_a_partner_by_the_share_its_target_says():
    values = np.array([flat(60 * i) for i in range(4)])
    (images, y, w), *_ = list(tfdata.mixup(batches(reconstruction=True, weights=np.arange(1.0, 5.0)), 0.4, 3))
    images, target = images.numpy(), y["emotion"].numpy()
    mixed = 0
    for i in range(4):
        # the label order of the batch is shuffled: find which images went into this one from its target
        own = int(np.argmax(target[i]))
        lam = target[i][own]
        assert 0.5 <= lam <= 1.0 + 1e-6
        assert target[i].sum() == pytest.approx(1.0, abs=1e-5)
        other = [k for k in range(4) if k != own and target[i][k] > 1e-6]
        partner = other[0] if other else own
        assert len(other) <= 1
        expected = lam * values[own] + (1 - lam) * values[partner]
        np.testing.assert_allclose(images[i], expected, atol=1e-5)
        assert w["emotion"].numpy()[i] == pytest.approx(lam * (own + 1) + (1 - lam) * (partner + 1), abs=1e-5)
        mixed += bool(other)
    assert mixed >= 1  # Beta(0.4, 0.4) leaves almost no image as it is
    # the U-Net gives back what it was shown: the blended image
    np.testing.assert_array_equal(y["reconstruction"].numpy(), images)
    np.testing.assert_array_equal(w["reconstruction"].numpy(), np.ones((4, 8, 8)))


def test_the_draws_change_every_epoch_and_repeat_in_every_run():
    def epochs(ds, n=2):
        return [next(iter(ds))[1]["emotion"].numpy() for _ in range(n)]

    first = epochs(tfdata.mixup(batches(), 0.4, 3))
    again = epochs(tfdata.mixup(batches(), 0.4, 3))
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    # the shares drawn, whatever the shuffled order
    assert not np.array_equal(np.sort(first[0].max(axis=1)), np.sort(first[1].max(axis=1)))
    assert tfdata.mixup(batches(), 0.4, 3).cardinality() == 1  # a schedule can count its steps


def test_training_steps_on_blended_images_and_recomputes_statistics_on_the_images_as_they_are(
    monkeypatch, params, tmp_path
):
    """Through the train stage's loop: the optimizer's batches are blended, the statistics' batches are not."""
    seen = {}

    def spy(model, cfg, state, phase, live, history, train):
        seen["statistics"] = train
        return FOR_PHASE(model, cfg, state, phase, live, history, train)

    monkeypatch.setattr(callbacks, "for_phase", spy)
    fitted = []
    original = loop.phase_runner

    def runner(model):
        made = original(model)
        fit = made.fit
        made.fit = lambda data, **kwargs: (fitted.append(data), fit(data, **kwargs))[1]
        return made

    monkeypatch.setattr(loop, "phase_runner", runner)
    train = batches(classes=6)  # the stand-in model's classes
    weights = []
    for alpha in (0.0, 0.4):
        state = tmp_path / f"state{alpha}"
        state.mkdir()
        model = tiny_model(1)
        history = loop.fit(
            model, tiny_cfg(params, mixup=alpha), train, batches(classes=6), state, tmp_path / "live", seed=3
        )
        assert len(history) == 3
        assert seen["statistics"] is train
        weights.append(model.get_weights())
    assert fitted[0] is train  # no blending: the data as it is
    assert fitted[1] is not train
    blended = next(iter(fitted[1]))[1]["emotion"].numpy()
    assert (blended.max(axis=1) < 1.0 - 1e-6).any()
    assert any(not np.allclose(a, b) for a, b in zip(*weights, strict=True))
