"""Says whether this Python can run the hf-peft trainer: prints one JSON object on stdout.

{"python": "3.11.7", "executable": ..., "packages": {"torch": {"ok": true, "version": "2.5.1"}, ...},
 "cuda": {"available": true, "device_count": 2}, "problems": [...], "warnings": [...]}
"""

import importlib
import json
import sys

MIN_PYTHON = (3, 9)
# What train.py imports; the Trainer itself needs accelerate.
REQUIRED = ["torch", "transformers", "peft", "accelerate"]


def check_package(name, problems):
    try:
        module = importlib.import_module(name)
    except Exception as err:  # an import can fail in many ways (missing, broken build, bad CUDA)
        reason = "is not installed" if isinstance(err, ModuleNotFoundError) else f"fails to import ({err})"
        problems.append(f"{name} {reason} for {sys.executable} (pip install {name})")
        return {"ok": False, "version": None, "error": f"{type(err).__name__}: {err}"}
    return {"ok": True, "version": getattr(module, "__version__", None)}


def main():
    problems, warnings = [], []
    report = {
        "python": ".".join(str(p) for p in sys.version_info[:3]),
        "executable": sys.executable,
        "packages": {},
        "cuda": {"available": False, "device_count": 0},
    }
    if sys.version_info[:2] < MIN_PYTHON:
        problems.append(
            f"Python {report['python']} is too old; the hf-peft trainer needs {'.'.join(map(str, MIN_PYTHON))} or newer"
        )
    for name in REQUIRED:
        report["packages"][name] = check_package(name, problems)
    if report["packages"]["torch"]["ok"]:
        import torch

        available = torch.cuda.is_available()
        report["cuda"] = {
            "available": available,
            "device_count": torch.cuda.device_count() if available else 0,
        }
        if not available:
            warnings.append("no CUDA GPU is visible: hf-peft tasks will train on the CPU, slowly")
    report["problems"] = problems
    report["warnings"] = warnings
    print(json.dumps(report))


if __name__ == "__main__":
    main()
