"""reports/promotion.md: champion beside challenger for each model, the gate's checks, and the verdict."""

from __future__ import annotations

SHOWN = ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "test_images")


def _cell(figures: dict, key: str) -> str:
    value = figures.get(key)
    return "-" if value is None else f"{value}" if isinstance(value, int) else f"{value:.4f}"


def uncertainty(challenger: dict, tolerance: float | None) -> list[str]:
    """The gate's tolerance beside the 95 % interval of the challenger's macro F1 (evaluate's bootstrap)."""
    ci = challenger.get("ci95", {}).get("macro_f1")
    if ci is None or tolerance is None:
        return []
    half = (ci["high"] - ci["low"]) / 2
    inside = "smaller than that, so a drop within the tolerance is well inside what another draw of Test images gives"
    reading = inside if tolerance < half else "at least that, so a drop within the tolerance may be real"
    return [
        f"Macro F1 95 % interval on this Test split: {ci['low']:.4f} to {ci['high']:.4f} (about ±{half:.3f}); the"
        f" tolerance of {tolerance} is {reading}.",
        "",
    ]


def markdown(summary: dict) -> str:
    lines = [
        "# Promotion",
        "",
        f"Decision: **{summary['decision']}**. Gated on the **{summary['split'].title()} split** of this run, the only"
        " split no model trained, tuned or stopped early on; every champion was re-scored on it with the same evaluate"
        " code (fetched from the model registry, or its figures read from the score cache, which is keyed by the"
        " model, this Test data, the evaluate code and the environment), so the figures below are comparable.",
        "",
        f"Run `{summary['run_id']}`, commit `{summary['commit'][:12]}`, raw data `{summary['data']}`.",
        "",
        f"Gate policy (stage, floors, tolerances): {summary.get('policy', 'params.yaml of this workspace')}.",
    ]
    for name, d in summary["models"].items():
        lines += ["", f"## {name}: {d['action']}" + (" (new lineage)" if d.get("new_lineage") else ""), ""]
        lines += [d["reason"] + ".", ""]
        lines += uncertainty(d["challenger"], summary.get("tolerance"))
        columns = [("challenger" + (f" ({name}@{d['version']})" if d["version"] else ""), d["challenger"])]
        columns += [(f"champion {name}@{v}", figures) for v, figures in d["champions"].items()]
        lines += ["| metric | " + " | ".join(title for title, _ in columns) + " |"]
        lines += ["| --- |" + " ---: |" * len(columns)]
        lines += [f"| {key} | " + " | ".join(_cell(f, key) for _, f in columns) + " |" for key in SHOWN]
        if d["checks"]:
            lines += ["", "| check | value | against | least passing | |", "| --- | ---: | --- | ---: | --- |"]
            lines += [
                f"| {c['metric']} | {c['value']:.4f} | {c['against']} | {c['limit']:.4f} | "
                f"{'ok' if c['passed'] else '**FAIL**'} |"
                for c in d["checks"]
            ]
    return "\n".join(lines) + "\n"
