"""A rejection hook for the DAG tests (EMOTION_ON_REJECT=tests.dags.notify_probe:record): writes what a mail or chat
notifier would send to the file named by EMOTION_NOTIFY_FILE."""

from __future__ import annotations

import os
from pathlib import Path


def record(context) -> None:
    Path(os.environ["EMOTION_NOTIFY_FILE"]).write_text(f"{context['ti'].task_id}\n{context.get('exception')}")
