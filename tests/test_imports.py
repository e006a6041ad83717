"""Heavy optional dependencies load only when the chosen config needs them.

A fresh interpreter builds everything `ftlab train experiment=digits_scratch` builds before its
first step (Hydra compose with plugin discovery, data, model, callbacks, trainer, the tracking
modules) and lists the heavy packages that ended up in `sys.modules`.

torchmetrics, which `import lightning.pytorch` loads, imports transformers and matplotlib by
itself whenever they are installed. The child hides those two from torchmetrics only (its
availability flags read False), so what remains in `sys.modules` is what ftlab imported.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

HEAVY = [
    "transformers", "timm", "peft", "matplotlib", "plotly", "optuna", "optuna_integration", "sklearn",
]  # fmt: skip

CHILD = textwrap.dedent(
    """
    import importlib.abc, importlib.util, json, sys, tempfile

    TORCHMETRICS_FLAGS = "torchmetrics.utilities.imports"
    HIDDEN = ["_TRANSFORMERS_AVAILABLE", "_TRANSFORMERS_GREATER_EQUAL_4_4",
              "_TRANSFORMERS_GREATER_EQUAL_4_10", "_MATPLOTLIB_AVAILABLE"]

    class HideFromTorchmetrics(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name != TORCHMETRICS_FLAGS:
                return None
            sys.meta_path.remove(self)
            spec = importlib.util.find_spec(name)
            run_module = spec.loader.exec_module

            def exec_module(module):
                run_module(module)
                for flag in HIDDEN:
                    setattr(module, flag, False)

            spec.loader.exec_module = exec_module
            return spec

    sys.meta_path.insert(0, HideFromTorchmetrics())

    from ftlab import builders
    from ftlab.config.setup import compose_train
    from ftlab.tracking import logger, record, run  # what train() imports for a tracked run

    cfg = compose_train(["experiment=digits_scratch", "data.max_samples=100"], tempfile.mkdtemp())
    datamodule = builders.build_datamodule(cfg)
    model = builders.build_model(cfg, datamodule)
    callbacks = builders.build_callbacks(cfg, with_logger=True)
    builders.build_trainer(cfg, callbacks)
    print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
    """
)


def test_a_digits_run_imports_no_heavy_optional_dependency() -> None:
    child = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=300
    )
    assert child.returncode == 0, child.stderr[-3000:]
    loaded = set(json.loads(child.stdout.strip().splitlines()[-1]))
    assert "torchmetrics" in loaded  # the hiding above took effect on a real import
    assert sorted(loaded.intersection(HEAVY)) == []


def test_digits_read_without_scikit_learn_equal_its_loader() -> None:
    from sklearn.datasets import load_digits

    from ftlab.data.digits import read_digits

    images, targets = read_digits()
    digits = load_digits()
    # Byte-equal, so the data fingerprint of every earlier digits run stays the same.
    assert images.tobytes() == digits.images.tobytes() and images.shape == digits.images.shape
    assert targets.tobytes() == digits.target.tobytes()


# Packages and modules of ftlab, from the command line down to the shared names: each may import
# its own layer (without circles) and the layers below, never one above.
LAYERS = [
    {"__main__", "cli"},
    {"train"},
    {"reproduce", "sweep"},
    {"tracking"},
    {"builders"},
    {"finetune", "callbacks"},
    {"models", "data"},
    {"config"},
    {"console", "stopping", "filelock", "redact", "collector", "allocator"},
    {"names", "errors", "ftlab"},
]


def _package_imports() -> dict[str, set[str]]:
    import ast

    root = Path(__file__).resolve().parents[1] / "src" / "ftlab"
    edges: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root).with_suffix("").parts
        package = parts[0] if parts[0] != "__init__" else "ftlab"
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ftlab"):
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.startswith("ftlab")]
            for name in names:
                target = name.split(".")[1] if "." in name else "ftlab"
                if target != package:
                    edges.setdefault(package, set()).add(target)
    return edges


def test_imports_go_one_way_down_the_layers() -> None:
    layer = {name: index for index, names in enumerate(LAYERS) for name in names}
    edges = _package_imports()
    assert set(edges) <= set(layer), f"place {set(edges) - set(layer)} in LAYERS"
    upward = [f"{a} -> {b}" for a, bs in edges.items() for b in bs if layer[b] < layer[a]]
    assert not upward, f"imports against the layers: {upward}"
    circles = [f"{a} <-> {b}" for a, bs in edges.items() for b in bs if a in edges.get(b, ())]
    assert not circles, f"packages importing each other: {circles}"
