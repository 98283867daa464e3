"""Builds core._native, the native fast paths (core/_native.c). Everything else is in pyproject.toml.

The extension is optional: without a C compiler the build goes on and core/native.py uses the pure-Python
references. The source's SHA-256 is compiled in, so that a stale in-place build is noticed and not used.
"""

import hashlib
from pathlib import Path

from setuptools import Extension, setup

SOURCE = Path(__file__).resolve().parent / "core" / "_native.c"
DIGEST = hashlib.sha256(SOURCE.read_bytes()).hexdigest()

setup(
    ext_modules=[
        Extension(
            "core._native",
            sources=["core/_native.c"],
            define_macros=[("LICLEDGER_NATIVE_SOURCE", f'"{DIGEST}"')],
            extra_compile_args=["-O3", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            optional=True,
        )
    ]
)
