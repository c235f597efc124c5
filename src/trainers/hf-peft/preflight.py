"""Says whether this Python can run the hf-peft trainer: prints one JSON object on stdout.

{"python": "3.11.7", "executable": ..., "packages": {"torch": {"ok": true, "version": "2.5.1"}, ...},
 "cuda": {"available": true, "device_count": 2, "version": "12.4", "devices": ["NVIDIA H100 80GB HBM3", ...]},
 "site_dirs": [...], "problems": [...], "warnings": [...]}

`site_dirs` are the folders packages are installed into: the studio caches this report for as long
as the interpreter and those folders are unchanged, so that it does not import torch for every start.
"""

import importlib
import json
import site
import sys

MIN_PYTHON = (3, 9)
# What train.py imports; the Trainer itself needs accelerate.
REQUIRED = ["torch", "transformers", "peft", "accelerate"]


def check_package(name, problems):
    try:
        module = importlib.import_module(name)
    except Exception as err:  # an import can fail in many ways (missing, broken build, bad CUDA)
        reason = "is not installed" if isinstance(err, ModuleNotFoundError) else f"fails to import ({err})"
        problems.append(f"{name} {reason} for {sys.executable}")
        return {"ok": False, "version": None, "error": f"{type(err).__name__}: {err}"}
    return {"ok": True, "version": getattr(module, "__version__", None)}


def site_dirs():
    """Where pip installs for this interpreter (user site too, even before it exists)."""
    dirs = list(site.getsitepackages()) if hasattr(site, "getsitepackages") else []
    if site.ENABLE_USER_SITE:
        dirs.append(site.getusersitepackages())
    return dirs


def main():
    problems, warnings = [], []
    report = {
        "python": ".".join(str(p) for p in sys.version_info[:3]),
        "executable": sys.executable,
        "packages": {},
        "cuda": {"available": False, "device_count": 0, "version": None, "devices": []},
        "site_dirs": site_dirs(),
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
        count = torch.cuda.device_count() if available else 0
        report["cuda"] = {
            "available": available,
            "device_count": count,
            # The CUDA version torch was built for; None for a CPU build.
            "version": torch.version.cuda,
            "devices": [torch.cuda.get_device_name(i) for i in range(count)],
        }
        if not available:
            warnings.append("no CUDA GPU is visible: hf-peft tasks will train on the CPU, slowly")
    report["problems"] = problems
    report["warnings"] = warnings
    print(json.dumps(report))


if __name__ == "__main__":
    main()
