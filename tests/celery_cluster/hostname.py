"""`AIRFLOW__CORE__HOSTNAME_CALLABLE` of the local cluster: its components share one machine, so each says who it
is through EMOTION_WORKER_NAME (in a container, or on a host of its own, the default hostname already does)."""

from __future__ import annotations

import os
import socket


def worker_name() -> str:
    return os.environ.get("EMOTION_WORKER_NAME") or socket.getfqdn()
