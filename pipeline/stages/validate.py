"""Stage `validate`: describe every raw image in a manifest and gate the pipeline on a Great Expectations suite.

Reads data/raw (never writes to it); writes the manifest only when every expectation holds, and the metrics and
the HTML report in any case, so a failed run can be read.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jinja2
import pandas as pd

from pipeline import atomic
from pipeline.config import Params, UserError
from pipeline.data import duplicates, links, shape, suite
from pipeline.data import manifest as manifest_lib
from pipeline.data.suite import Check


class ValidationFailed(UserError, RuntimeError):
    """The raw data broke at least one expectation; the message lists each failure and its files."""


def summarise(frame: pd.DataFrame, counts: pd.DataFrame, checks: list[Check]) -> dict:
    per_class = {
        split: dict(zip(part["label"], part["count"], strict=True))
        for split, part in counts.groupby("split", sort=False)
    }
    return {
        "files": len(frame),
        "images": {split: int(sum(c.values())) for split, c in per_class.items()},
        "per_class": per_class,
        "rejected_files": len({f.split(": ")[0] for c in checks for f in c.findings}),
        "leaks": int(frame["leaks_with"].notna().sum()),
        "imbalance_ratio_train": round(max(per_class["train"].values()) / max(1, min(per_class["train"].values())), 2),
        "expectations": {"evaluated": len(checks), "failed": sum(not c.success for c in checks)},
    }


def failure_message(checks: list[Check], limit: int = 20) -> str:
    lines = []
    for check in checks:
        if check.success:
            continue
        lines.append(f"- {check.problem} [{check.name}], {len(check.findings)} case(s):")
        # one line each, whatever the file name holds
        lines += [f"    {links.printable(finding)}" for finding in check.findings[:limit]]
        if len(check.findings) > limit:
            lines.append(f"    ... and {len(check.findings) - limit} more (see the report)")
    return "\n".join(lines)


# Jinja2 with autoescaping: every value (file names and messages included) is escaped; only the template's own
# markup (<br> between files, the dash of no file) is marked safe. The CSS braces are literal text to Jinja.
REPORT = """<!doctype html><html><head><meta charset="utf-8"><title>Raw data validation</title><style>
body{font-family:sans-serif;margin:2em} table{border-collapse:collapse;margin-bottom:2em}
td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}
tr.bad td:first-child{background:#f8d0d0} tr.ok td:first-child{background:#d0f0d0}</style></head><body>
<h1>Raw data validation: {{ verdict }}</h1>
<p>{{ summary["files"] }} files; images per split: {{ summary["images"] }}; leaks between Train and Test:
{{ summary["leaks"] }}; train imbalance (largest/smallest class): {{ summary["imbalance_ratio_train"] }}.</p>
<h2>Images per class</h2>
<table><tr><th>class</th>{% for split in splits %}<th>{{ split }}</th>{% endfor %}</tr>
{%- for label in summary["per_class"][splits[0]] %}<tr><td>{{ label }}</td>
{%- for split in splits %}<td>{{ summary["per_class"][split][label] }}</td>{% endfor %}</tr>{% endfor %}</table>
<h2>Expectations (Great Expectations suites <code>raw_images</code>, <code>class_counts</code>)</h2>
<table><tr><th>result</th><th>what it guards</th><th>expectation</th><th>files</th></tr>
{%- for c in checks %}<tr class={{ "ok" if c.success else "bad" }}><td>{{
  "passed" if c.success else "FAILED" }}</td><td>{{ c.problem }}</td><td><code>{{ c.name }}</code></td><td>{{
  c.findings | join("<br>" | safe) or "&ndash;" | safe }}</td></tr>
{%- endfor %}</table>
</body></html>
"""


def render_report(summary: dict, checks: list[Check]) -> str:
    failed, evaluated = summary["expectations"]["failed"], summary["expectations"]["evaluated"]
    verdict = f"{failed} of {evaluated} expectations failed" if failed else "all expectations hold"
    template = jinja2.Environment(
        autoescape=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined
    ).from_string(REPORT)
    return template.render(summary=summary, splits=list(summary["per_class"]), checks=checks, verdict=verdict)


def run(params: Params, raw: Path, manifest_path: Path, metrics_path: Path, report_path: Path) -> dict:
    atomic.keep_apart({"--manifest": manifest_path, "--metrics": metrics_path, "--report": report_path}, {"--raw": raw})
    frame = manifest_lib.build(
        raw,
        params.classes,
        params.class_aliases,
        params.split_folders,
        duplicates.rule(params.validate),
        shape.rule(params.validate),
    )
    counts = manifest_lib.class_counts(frame, params.classes, params.split_folders)
    checks = suite.run(frame, counts, params.validate)
    summary = summarise(frame, counts, checks)
    atomic.write_json(metrics_path, summary)
    atomic.write_text(report_path, render_report(summary, checks))
    if summary["expectations"]["failed"]:
        raise ValidationFailed(
            f"raw data in {raw} failed validation (report: {report_path}):\n" + failure_message(checks)
        )
    with atomic.target(manifest_path) as tmp:
        frame.to_csv(tmp, index=False)
    return summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    for option in ("--raw", "--manifest", "--metrics", "--report"):
        parser.add_argument(option, type=Path, required=True)


def main(params: Params, args: argparse.Namespace) -> None:
    summary = run(params, args.raw, args.manifest, args.metrics, args.report)
    print(f"validate: {summary['images']} images, all {summary['expectations']['evaluated']} expectations hold")
