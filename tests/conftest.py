"""Shared fixtures of the fastconv test suite.

- ``isa``: parametrised over ``fastconv.info()['isas']``; activates that ISA for the test and
  restores the previous one afterwards.
- ``algo``: parametrised over ``fastconv.algorithms()`` (the registry; never hard-coded names).
- ``load_layers()`` / ``layers``: the standard layer set, from
  ``<workspace>/shared/shapes/layers.json`` when it exists, else the packaged copy
  ``python/fastconv/data/layers.json``.
- ``record_error``: tests report each normalised error here; the worst one per dtype (and per
  dtype × algorithm) is printed in the terminal summary at the end of the session.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
# tests import the float64 oracle as `reference`, whatever pytest's import mode is
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

import fastconv  # noqa: E402

SHARED_LAYERS = Path(__file__).resolve().parents[2] / "shared" / "shapes" / "layers.json"
PACKAGED_LAYERS_IN_REPO = REPO_ROOT / "python" / "fastconv" / "data" / "layers.json"

ISAS = list(fastconv.info()["isas"])
ALGOS = list(fastconv.algorithms())


def packaged_layers_path():
    """The packaged layers.json: the repo copy, or the one inside the installed package."""
    if PACKAGED_LAYERS_IN_REPO.is_file():
        return PACKAGED_LAYERS_IN_REPO
    try:
        from importlib.resources import files

        p = files("fastconv") / "data" / "layers.json"
        if p.is_file():
            return Path(str(p))
    except Exception:  # pragma: no cover - resources unavailable
        pass
    return None


def layers_path():
    if SHARED_LAYERS.is_file():
        return SHARED_LAYERS
    p = packaged_layers_path()
    if p is None:
        pytest.skip("no layers.json found (neither shared/shapes nor the packaged copy)")
    return p


def load_layers(op=None):
    """List of layer dicts from layers.json, optionally only those with the given op."""
    with open(layers_path(), encoding="utf-8") as f:
        layers = json.load(f)["layers"]
    return [l for l in layers if op is None or l["op"] == op]


@pytest.fixture(scope="session")
def layers():
    return load_layers()


@pytest.fixture(params=ISAS)
def isa(request):
    prev = fastconv.set_isa(request.param)
    try:
        assert fastconv.get_isa() == request.param
        yield request.param
    finally:
        fastconv.set_isa(prev)


@pytest.fixture(params=ALGOS)
def algo(request):
    return request.param


# ---------------------------------------------------------------- worst-error bookkeeping
# key (dtype name, algo) -> (error, isa, case description)
WORST_ERRORS = {}
# algo -> number of (config, isa, dtype) combinations it declined with "does not support"
DECLINED = {}


def _record(dtype, algo, err, isa="", case=""):
    key = (np.dtype(dtype).name, algo)
    if key not in WORST_ERRORS or err > WORST_ERRORS[key][0]:
        WORST_ERRORS[key] = (float(err), isa, case)


def _record_declined(algo):
    DECLINED[algo] = DECLINED.get(algo, 0) + 1


@pytest.fixture(scope="session")
def record_error():
    """record_error(dtype, algo, err, isa='', case='') -> None."""
    return _record


@pytest.fixture(scope="session")
def record_declined():
    return _record_declined


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not WORST_ERRORS:
        return
    tr = terminalreporter
    tr.section("fastconv worst normalised error (max|y-ref| / max|ref| vs float64 reference)")
    info = fastconv.info()
    tr.write_line(f"isas tested: {ISAS}; algorithms: {ALGOS}; threads: {info.get('num_threads')}")
    for dt in sorted({k[0] for k in WORST_ERRORS}):
        items = [(v, k[1]) for k, v in WORST_ERRORS.items() if k[0] == dt]
        (err, isa_, case), algo_ = max(items, key=lambda t: t[0][0])
        tr.write_line(f"{dt}: worst {err:.3e}  (algo={algo_}, isa={isa_}, case={case})")
        for (e, i, c), a in sorted(items, key=lambda t: t[1]):
            tr.write_line(f"    {dt} {a:>16}: {e:.3e}  (isa={i}, case={c})")
    if DECLINED:
        tr.write_line(f"combinations declined with 'does not support': {DECLINED}")
