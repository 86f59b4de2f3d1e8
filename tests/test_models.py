"""fastconv.models against the same architectures written in torch (tests/torch_models.py):
torch's random weights (and random running statistics) load into the fastconv model by their
state_dict keys; outputs agree within 1e-4 normalised in eval mode (float32) and train mode
(dropout and stochastic depth at p = 0), and so do the input gradient and the parameter
gradients of a backward pass; a few SGD / Adam training steps give the same parameters.

Train mode is compared in float64: batch statistics over the few values of the last, 1x1
feature maps of these small inputs are ill-conditioned, and float32 rounding differences
between two correct implementations grow there beyond any fixed tolerance."""

import numpy as np
import pytest

import fastconv
from fastconv import models, nn, optim
from reference import normalized_error

torch = pytest.importorskip("torch")
from fastconv.bench import torch_models  # noqa: E402  (needs torch)

# name -> input spatial size (the smallest sensible one, to keep the suite fast)
SIZES = {"lenet5": 28, "alexnet": 64, "vgg11": 32, "vgg11_bn": 32, "vgg16": 32, "vgg16_bn": 32,
         "googlenet": 32, "resnet18": 32, "resnet34": 32, "resnet50": 32, "resnext50_32x4d": 32,
         "densenet121": 32, "mobilenet_v2": 32, "squeezenet1_1": 32, "shufflenet_v2_x1_0": 32,
         "efficientnet_b0": 32}
TOL = 1e-4


def pair(name, num_classes=10, dtype=np.float32):
    """The fastconv model and its torch twin holding the same random weights."""
    torch.manual_seed(0)
    t = torch_models.MODELS[name](num_classes=num_classes)
    if dtype == np.float64:
        t = t.double()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for mod in t.modules():  # non-trivial batch-norm parameters and statistics
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.weight.uniform_(0.5, 1.5, generator=gen)
                mod.bias.uniform_(-0.2, 0.2, generator=gen)
                mod.running_mean.uniform_(-0.2, 0.2, generator=gen)
                mod.running_var.uniform_(0.5, 1.5, generator=gen)
    fastconv.manual_seed(0)
    f = getattr(models, name)(num_classes=num_classes).to(dtype)
    state = {k: v.detach().numpy() for k, v in t.state_dict().items()}
    assert list(state) == list(f.state_dict()), "state_dict keys differ from torchvision's"
    f.load_state_dict(state)
    return f, t


def no_dropout(f, t):
    for m in f.modules():
        if isinstance(m, (nn.Dropout, nn.StochasticDepth)) or hasattr(m, "_dropout"):
            if hasattr(m, "p"):
                m.p = 0.0
    for m in t.modules():
        if isinstance(m, (torch.nn.Dropout, torch_models.StochasticDepth)):
            m.p = 0.0


def inputs(name, batch=2, dtype=np.float32):
    channels = 1 if name == "lenet5" else 3
    s = SIZES[name]
    return np.random.default_rng(2).standard_normal((batch, channels, s, s)).astype(dtype)


def as_tuple(y):
    return tuple(y) if isinstance(y, tuple) else (y,)


@pytest.mark.parametrize("name", list(SIZES))
def test_eval_mode_matches_torch(name):
    f, t = pair(name)
    f.eval()
    t.eval()
    x = inputs(name)
    with torch.no_grad():
        want = t(torch.tensor(x)).numpy()
    with nn.no_grad():
        got = f(x)
    assert got.dtype == np.float32 and got.shape == want.shape
    assert normalized_error(got, want) < TOL


@pytest.mark.parametrize("name", list(SIZES))
def test_train_mode_forward_and_backward_match_torch(name):
    f, t = pair(name, dtype=np.float64)
    no_dropout(f, t)
    f.train()
    t.train()
    x = inputs(name, dtype=np.float64)
    tx = torch.tensor(x, requires_grad=True)
    touts = as_tuple(t(tx))
    outs = as_tuple(f(x))
    assert len(outs) == len(touts)
    for got, want in zip(outs, touts):
        assert normalized_error(got, want.detach().numpy()) < TOL
    rng = np.random.default_rng(3)
    grads = [rng.standard_normal(o.shape) for o in outs]
    torch.autograd.backward(touts, [torch.tensor(g) for g in grads])
    dx = f.backward(tuple(grads) if len(grads) > 1 else grads[0])
    assert normalized_error(dx, tx.grad.numpy()) < TOL
    tgrads = {k: p.grad.numpy() for k, p in t.named_parameters()}
    # A gradient that is zero in exact arithmetic (a convolution bias followed by batch norm in
    # training) is rounding noise on both sides: errors are measured against at least 1e-3 of
    # the largest parameter gradient of the model.
    floor = 1e-3 * max(np.abs(g).max() for g in tgrads.values())
    for key, p in f.named_parameters():
        err = np.abs(p.grad - tgrads[key]).max() / max(np.abs(tgrads[key]).max(), floor)
        assert err < TOL, (key, err)
    # running statistics after one training step
    tstate = t.state_dict()
    for key, value in f.state_dict().items():
        if "running" in key:
            assert normalized_error(value, tstate[key].numpy()) < TOL, key


@pytest.mark.parametrize("name,opt", [("lenet5", "sgd"), ("resnet18", "adam")])
def test_training_steps_match_torch(name, opt):
    f, t = pair(name, dtype=np.float64)
    no_dropout(f, t)
    if opt == "sgd":
        fo = optim.SGD(f.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
        to = torch.optim.SGD(t.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    else:
        fo = optim.Adam(f.parameters(), lr=1e-3)
        to = torch.optim.Adam(t.parameters(), lr=1e-3)
    criterion = nn.CrossEntropyLoss()
    x = inputs(name, batch=4, dtype=np.float64)
    target = np.arange(4) % 10
    for _ in range(3):
        fo.zero_grad()
        loss = criterion(f(x), target)
        f.backward(criterion.backward())
        fo.step()
        to.zero_grad()
        tloss = torch.nn.functional.cross_entropy(t(torch.tensor(x)), torch.tensor(target))
        tloss.backward()
        to.step()
        assert abs(float(loss) - tloss.item()) < TOL * max(1.0, abs(tloss.item()))
    tparams = dict(t.named_parameters())
    for key, p in f.named_parameters():
        assert normalized_error(p, tparams[key].detach().numpy()) < TOL, key
