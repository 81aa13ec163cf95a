"""Whether this host has an NVIDIA GPU for containers (OSCAR's `gpu_available`).

The NVIDIA driver's control device is the sign; the Docker Engine then needs the NVIDIA
Container Toolkit to hand the GPU to a container (`device_requests`), and says so when a
container asks for one without it. `OSCAR_GPU_DEVICE` names another device to look for.
"""

from __future__ import annotations

import os

DEFAULT_DEVICE = "/dev/nvidiactl"


def host_has_gpu() -> bool:
    return os.path.exists(os.environ.get("OSCAR_GPU_DEVICE") or DEFAULT_DEVICE)
