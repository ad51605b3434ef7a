"""Optional compiled accelerators; the package metadata lives in pyproject.toml.

Each extension has a pure-Python twin that gives the same results, so a machine without
a C compiler (or without SQLite's headers) installs and runs fixgw unchanged, only
slower. ``optional=True`` turns a failed build into a warning.
"""

from pathlib import Path

from setuptools import Extension, setup

ROOT = Path(__file__).resolve().parent

EXTENSIONS = [
    Extension("engine._cengine", ["engine/_cengine.c"], optional=True),
    Extension(
        "surveillance._cwriter",
        ["surveillance/_cwriter.c"],
        libraries=["sqlite3"],
        optional=True,
    ),
]

# A source file that is not there yet is left out rather than reported as a failed build.
setup(ext_modules=[ext for ext in EXTENSIONS if (ROOT / ext.sources[0]).exists()])
