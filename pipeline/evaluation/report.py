"""The evaluation report (Markdown): the models side by side, the study's published figures as reference rows."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.config import ENSEMBLE, Params

SUMMARY = [
    ("accuracy", "accuracy"),
    ("balanced_accuracy", "balanced accuracy"),
    ("macro_f1", "macro F1"),
    ("weighted_f1", "weighted F1"),
    ("log_loss", "log loss"),
]


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table, the first column left-aligned and the figures right-aligned; cells are written as given
    (already formatted: no re-parsing of 0.8000 into 0.8)."""
    align = ("left", *["right"] * (len(header) - 1))
    frame = pd.DataFrame(rows, columns=header)
    return frame.to_markdown(index=False, colalign=align, disable_numparse=True).splitlines()


def summary_table(params: Params, results: dict[str, dict]) -> list[str]:
    header = ["", *(label for _, label in SUMMARY), *(f"F1 {c}" for c in params.classes)]
    rows = [
        [
            f"**{name}**",
            *(_cell(r[key]) for key, _ in SUMMARY),
            *(_cell(r["per_class"][c]["f1"]) for c in params.classes),
        ]
        for name, r in results.items()
    ]
    for name, ref in params.evaluate.reference.items():
        published = {"accuracy": ref.accuracy, "macro_f1": ref.macro_f1}
        rows.append(
            [
                f"*{name}*",
                *(_cell(published.get(key)) for key, _ in SUMMARY),
                *(_cell(ref.per_class_f1.get(c)) for c in params.classes),
            ]
        )
    return _table(header, rows)


def uncertainty_lines(results: dict[str, dict]) -> list[str]:
    """Each row's 95 % bootstrap interval (pipeline/evaluation/uncertainty.py), with what it was resampled over."""
    rows = [
        [
            f"**{name}**",
            *(f"{r['ci95'][key]['low']:.2f} – {r['ci95'][key]['high']:.2f}" for key in ("accuracy", "macro_f1")),
        ]
        for name, r in results.items()
        if "ci95" in r
    ]
    if not rows:
        return []
    ci = next(r["ci95"] for r in results.values() if "ci95" in r)
    over = f"{ci['units']} subjects (augment.group_regex)" if ci["by"] == "subject" else f"{ci['units']} images"
    return [
        f"95 % intervals (bootstrap over the {over}, {ci['resamples']} resamples): how far each figure could move with"
        " another Test split of this size. Two models whose intervals overlap widely are not shown apart by it.",
        "",
        *_table(["", "accuracy", "macro F1"], rows),
        "",
    ]


def per_class_table(params: Params, results: dict[str, dict]) -> list[str]:
    header = ["class", "support", *(f"{name} P / R / F1" for name in results)]
    rows = []
    for c in params.classes:
        support = next(iter(results.values()))["per_class"][c]["support"]
        cells = [
            " / ".join(f"{r['per_class'][c][k]:.2f}" for k in ("precision", "recall", "f1")) for r in results.values()
        ]
        rows.append([c, str(support), *cells])
    return _table(header, rows)


def confusion_table(classes: list[str], matrix: np.ndarray) -> list[str]:
    header = ["actual \\ predicted", *classes]
    return _table(header, [[c, *(str(int(v)) for v in row)] for c, row in zip(classes, matrix, strict=True)])


def reference_note(params: Params) -> list[str]:
    """What the italic rows are, when params.yaml configures any (``evaluate.reference``; none: no rows, no note)."""
    if not params.evaluate.reference:
        return []
    return [
        "Rows in italics are published figures, copied from params.yaml (`evaluate.reference`), not computed here "
        "and not on this Test split: a yardstick only when these are the study's data and settings.",
        "",
    ]


def method_notes(params: Params, results: dict[str, dict]) -> list[str]:
    """How the rows were computed beyond a plain forward pass: the ensemble, test-time augmentation."""
    notes = []
    if ENSEMBLE in results:
        members = " and ".join(f"**{m}**" for m in params.evaluate.ensemble)
        notes.append(f"**{ENSEMBLE}**: the mean of the class probabilities of {members} (`evaluate.ensemble`).")
    if params.evaluate.tta:
        notes.append(
            "Test-time augmentation (`evaluate.tta`: "
            f"{', '.join(params.evaluate.tta)}): every model's probabilities are the mean over each image and its "
            "augmented views (flip: its left-right mirror)."
        )
    return [" ".join(notes), ""] if notes else []


def markdown(
    params: Params,
    rows: pd.DataFrame,
    results: dict[str, dict],
    layers: dict[str, str],
    report_dir: Path,
    figures: Path,
    data: str = "the raw dataset",
) -> str:
    def link(name: str) -> str:
        return Path(os.path.relpath(figures / name, report_dir)).as_posix()

    counts = rows.groupby("label").size()
    per_class = ", ".join(f"{c} {int(counts.get(c, 0))}" for c in params.classes)
    view = (
        f"the largest face (Haar cascade, margin {params.augment.face_margin}) cropped, or the whole image when "
        "none is found"
        if params.augment.face_crop
        else "the whole image"
    )
    lines = [
        "# Evaluation on the Test split",
        "",
        f"{len(rows)} Test images of `{data}` ({per_class}), never seen in training or tuning; each shown to the "
        f"models as training saw it: {view}, resized to {params.image_size} px.",
        "",
        "## Summary",
        "",
        *summary_table(params, results),
        "",
        *reference_note(params),
        "Log loss: lower is better.",
        "",
        *uncertainty_lines(results),
        *method_notes(params, results),
        "## Per class",
        "",
        *per_class_table(params, results),
        "",
        "## Confusion matrices",
        "",
    ]
    for name, r in results.items():
        lines += [
            f"### {name}",
            "",
            *confusion_table(params.classes, r["confusion"]),
            "",
            f"![{name} confusion matrix]({link(f'confusion_{name}.png')})",
            "",
        ]
        if "faces_missing" in r:
            lines += [f"No face was found in {r['faces_missing']} of these images; they were classified whole.", ""]
    lines += [
        "## Grad-CAM",
        "",
        "Where each model finds the evidence for the class it predicts (red: strongest). Maps: "
        + "; ".join(f"{k} = `{v}`" for k, v in layers.items())
        + f" (the deepest backbone map at least {params.evaluate.gradcam_min_map_size} px wide).",
        "",
        f"![Grad-CAM grid]({link('gradcam.png')})",
        "",
    ]
    return "\n".join(lines)
