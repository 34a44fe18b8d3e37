"""Makes torch report no native bf16, so that `precision: auto` resolves to fp32 as on an AVX2-only CPU.

Put this folder on PYTHONPATH, as an absolute path (the end-to-end tests pass it and the three
variables below on to DVC's stages, which run in other folders), and force the AVX2 code paths
too, to time an AVX512-BF16 host as the closest stand-in for an AVX2-only one:

    PYTHONPATH=$PWD/benchmarks/no_native_bf16 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 \
        ONEDNN_MAX_CPU_ISA=AVX2 .venv/bin/python -m pytest -q

torch.cpu is patched when it is first imported, not here, so processes that never import torch
(a stage's `--help`, the report) stay as light as they are.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from types import ModuleType


class _NoNativeBf16(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path, target=None):
        if name != "torch.cpu":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module

        def exec_module(module: ModuleType) -> None:
            load(module)
            module._is_avx512_bf16_supported = lambda: False
            module._is_amx_tile_supported = lambda: False

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


sys.meta_path.insert(0, _NoNativeBf16())
