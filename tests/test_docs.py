"""The examples in the public docstrings run and print what they claim (doctest)."""

import doctest
import importlib

import pytest

MODULES = ["fastconv", "fastconv._runtime", "fastconv._plan", "fastconv.functional",
           "fastconv.grad", "fastconv._ops.conv", "fastconv._ops.pool", "fastconv._ops.norm",
           "fastconv._ops.activation", "fastconv._ops.linear", "fastconv._ops.loss",
           "fastconv._random", "fastconv.nn", "fastconv.nn.module", "fastconv.nn.conv",
           "fastconv.nn.pool", "fastconv.nn.norm", "fastconv.nn.activation", "fastconv.nn.linear",
           "fastconv.nn.blocks", "fastconv.nn.loss", "fastconv.nn.fusion", "fastconv.optim", "fastconv.demo", "fastconv.models",
           "fastconv.models.lenet", "fastconv.models.resnet", "fastconv.models.mobilenet",
           "fastconv.models.shufflenet", "fastconv.models.squeezenet", "fastconv.signal",
           "fastconv.bench.results"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"


def test_docstring_examples_exist():
    """Every public function of functional and grad carries an example."""
    for name in ("fastconv.functional", "fastconv.grad", "fastconv.signal"):
        module = importlib.import_module(name)
        for attr in module.__all__:
            doc = getattr(module, attr).__doc__ or ""
            assert ">>>" in doc, f"{name}.{attr} has no example"
