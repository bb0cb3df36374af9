"""The machine a benchmark ran on, and what it used: rates, peak memory (host and GPU)."""

from __future__ import annotations

import os
import platform
import resource
import sys

import cv2
import keras
import tensorflow as tf


def rate(count: int, seconds: float) -> float:
    return round(count / max(seconds, 1e-9), 2)


def peak_memory() -> dict:
    """Peak resident memory of this process so far and, per visible GPU, TensorFlow's peak allocation."""
    # Linux reports ru_maxrss in KiB, macOS in bytes
    scale = 1 if sys.platform == "darwin" else 1024
    out = {"rss_peak_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20, 1)}
    for i, _ in enumerate(tf.config.list_physical_devices("GPU")):
        out[f"gpu{i}_peak_mib"] = round(tf.config.experimental.get_memory_info(f"GPU:{i}")["peak"] / 2**20, 1)
    return out


def reset_gpu_peaks() -> None:
    for i, _ in enumerate(tf.config.list_physical_devices("GPU")):
        tf.config.experimental.reset_memory_stats(f"GPU:{i}")


def machine() -> dict:
    gpus = tf.config.list_physical_devices("GPU")
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "opencv": cv2.__version__,
        "devices": [d.name for d in tf.config.list_physical_devices()],
        "gpus": [tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus],
    }
