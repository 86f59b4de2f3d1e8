"""fastconv.nn layers and fastconv.optim: every layer's forward and backward (input and parameter
gradients) by central finite differences in float64, state_dict round trips and key names,
train / eval behaviour; where torch is installed, each layer against its torch.nn twin with the
same weights (forward, input gradient, parameter gradients, running statistics) and the
optimisers and schedules against torch.optim step by step."""

import io

import numpy as np
import pytest

import fastconv
from fastconv import nn, optim
import reference_nn as R

try:
    import torch
except ImportError:  # pragma: no cover - torch is in the test extra
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")


def rand(shape, seed=0, dtype=np.float64, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


# (name, constructor, input shape); the constructor runs under a fixed seed
LAYERS = [
    ("Conv1d", lambda: nn.Conv1d(3, 4, 3, padding=1), (2, 3, 7)),
    ("Conv2d", lambda: nn.Conv2d(3, 4, 3, stride=2, padding=1), (2, 3, 7, 6)),
    ("Conv2d_groups", lambda: nn.Conv2d(4, 6, 3, padding=1, groups=2, bias=False), (2, 4, 5, 5)),
    ("Conv2d_reflect", lambda: nn.Conv2d(2, 3, 3, padding=1, padding_mode="reflect"), (1, 2, 5, 4)),
    ("Conv3d", lambda: nn.Conv3d(2, 3, 2), (1, 2, 3, 4, 3)),
    ("ConvTranspose1d", lambda: nn.ConvTranspose1d(3, 2, 4, stride=2, padding=1), (2, 3, 5)),
    ("ConvTranspose2d", lambda: nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1),
     (1, 4, 3, 4)),
    ("ConvTranspose3d", lambda: nn.ConvTranspose3d(2, 2, 2, stride=2), (1, 2, 2, 2, 2)),
    ("MaxPool1d", lambda: nn.MaxPool1d(3, 2, padding=1), (2, 3, 9)),
    ("MaxPool2d", lambda: nn.MaxPool2d(3, stride=2, padding=1), (2, 3, 7, 7)),
    ("MaxPool3d", lambda: nn.MaxPool3d(2), (1, 2, 4, 4, 4)),
    ("AvgPool1d", lambda: nn.AvgPool1d(3, 2, padding=1), (2, 3, 9)),
    ("AvgPool2d", lambda: nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False),
     (2, 3, 7, 7)),
    ("AvgPool3d", lambda: nn.AvgPool3d(2, ceil_mode=True), (1, 2, 3, 3, 3)),
    ("AdaptiveAvgPool1d", lambda: nn.AdaptiveAvgPool1d(3), (2, 3, 7)),
    ("AdaptiveAvgPool2d", lambda: nn.AdaptiveAvgPool2d((2, 3)), (2, 3, 7, 7)),
    ("AdaptiveAvgPool3d", lambda: nn.AdaptiveAvgPool3d(2), (1, 2, 3, 3, 3)),
    ("AdaptiveMaxPool1d", lambda: nn.AdaptiveMaxPool1d(3), (2, 3, 7)),
    ("AdaptiveMaxPool2d", lambda: nn.AdaptiveMaxPool2d(2), (2, 3, 5, 5)),
    ("AdaptiveMaxPool3d", lambda: nn.AdaptiveMaxPool3d(2), (1, 2, 3, 3, 3)),
    ("BatchNorm1d", lambda: nn.BatchNorm1d(5), (6, 5)),
    ("BatchNorm1d_3d", lambda: nn.BatchNorm1d(3, momentum=None), (4, 3, 5)),
    ("BatchNorm2d", lambda: nn.BatchNorm2d(3), (4, 3, 3, 3)),
    ("BatchNorm3d", lambda: nn.BatchNorm3d(2, affine=False), (2, 2, 2, 3, 3)),
    ("InstanceNorm1d", lambda: nn.InstanceNorm1d(3, affine=True), (2, 3, 6)),
    ("InstanceNorm2d", lambda: nn.InstanceNorm2d(3, track_running_stats=True), (2, 3, 4, 4)),
    ("InstanceNorm3d", lambda: nn.InstanceNorm3d(2), (2, 2, 2, 2, 3)),
    ("GroupNorm", lambda: nn.GroupNorm(2, 4), (3, 4, 3, 3)),
    ("LayerNorm", lambda: nn.LayerNorm((3, 4)), (2, 5, 3, 4)),
    ("ReLU", lambda: nn.ReLU(), (3, 8)),
    ("ReLU6", lambda: nn.ReLU6(inplace=True), (3, 8)),
    ("LeakyReLU", lambda: nn.LeakyReLU(0.2), (3, 8)),
    ("Hardtanh", lambda: nn.Hardtanh(-0.5, 0.5), (3, 8)),
    ("ELU", lambda: nn.ELU(0.5, inplace=True), (3, 8)),
    ("Sigmoid", lambda: nn.Sigmoid(), (3, 8)),
    ("Tanh", lambda: nn.Tanh(), (3, 8)),
    ("SiLU", lambda: nn.SiLU(inplace=True), (3, 8)),
    ("Hardsigmoid", lambda: nn.Hardsigmoid(), (3, 8)),
    ("Hardswish", lambda: nn.Hardswish(), (3, 8)),
    ("GELU", lambda: nn.GELU("tanh"), (3, 8)),
    ("Softmax", lambda: nn.Softmax(1), (3, 5, 2)),
    ("LogSoftmax", lambda: nn.LogSoftmax(-1), (3, 5)),
    ("Linear", lambda: nn.Linear(5, 3), (4, 2, 5)),
    ("Flatten", lambda: nn.Flatten(), (2, 3, 2, 2)),
    ("Identity", lambda: nn.Identity(), (2, 3)),
    ("ChannelShuffle", lambda: nn.ChannelShuffle(2), (2, 6, 2, 2)),
    ("SqueezeExcitation", lambda: nn.SqueezeExcitation(4, 2), (2, 4, 3, 3)),
    ("Sequential", lambda: nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3),
                                         nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                                         nn.Linear(12, 2)), (3, 2, 4, 4)),
]


def make(ctor, dtype=np.float64):
    fastconv.manual_seed(0)
    m = ctor()
    return m.to(dtype)


def perturb_params(m, seed=1):
    """Non-trivial affine parameters for the normalisation layers (ones / zeros otherwise)."""
    rng = np.random.default_rng(seed)
    for name, p in m.named_parameters():
        if p.ndim <= 1:
            p[...] = rng.standard_normal(p.shape) * 0.5 + (1 if name.endswith("weight") else 0)


def away_from_kinks(x):
    """Inputs at least 1e-3 away from the activations' kinks and from ties in max pooling."""
    for k in (0.0, -3.0, 3.0, 6.0, -0.5, 0.5, 1.0, -1.0):
        close = np.abs(x - k) < 1e-3
        x[close] += 2e-3
    return x


@pytest.mark.parametrize("name,ctor,shape", LAYERS, ids=[c[0] for c in LAYERS])
def test_layer_gradients_by_finite_differences(name, ctor, shape):
    m = make(ctor)
    perturb_params(m)
    m.train()
    x = away_from_kinks(rand(shape, 3))
    y = m(x.copy())
    g = rand(np.shape(y), 4)
    m.zero_grad()
    dx = m.backward(g)
    assert dx.shape == x.shape

    def f(v):
        return m(v.copy())

    idx, numeric = R.numeric_grad(f, x, g)
    got = dx.reshape(-1)[idx]
    scale = max(np.abs(numeric).max(), 1e-3)
    assert np.abs(got - numeric).max() / scale < 1e-6, (got, numeric)
    for pname, p in m.named_parameters():
        analytic = p.grad.copy()

        def fp(v, p=p):
            saved = p.copy()
            p[...] = v
            try:
                return m(x.copy())
            finally:
                p[...] = saved

        idx, numeric = R.numeric_grad(fp, p.view(np.ndarray), g)
        scale = max(np.abs(numeric).max(), 1e-3)
        assert np.abs(analytic.reshape(-1)[idx] - numeric).max() / scale < 1e-6, pname


def test_state_dict_round_trip_and_strictness(tmp_path):
    fastconv.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                        nn.Linear(16, 2))
    x = rand((5, 3, 4, 4), dtype=np.float32)
    net(x)  # updates the running statistics
    net.eval()
    want = net(x)
    np.savez(tmp_path / "w.npz", **net.state_dict())
    fastconv.manual_seed(1)
    other = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                          nn.Linear(16, 2)).eval()
    assert not np.array_equal(other(x), want)
    other.load_state_dict(dict(np.load(tmp_path / "w.npz")))
    assert np.array_equal(other(x), want)
    assert list(net.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias",
                                      "1.running_mean", "1.running_var",
                                      "1.num_batches_tracked", "4.weight", "4.bias"]
    sd = dict(net.state_dict())
    sd.pop("4.bias")
    with pytest.raises(KeyError, match="4.bias"):
        other.load_state_dict(sd)
    missing, unexpected = other.load_state_dict({**sd, "extra": np.zeros(1)}, strict=False)
    assert missing == ["4.bias"] and unexpected == ["extra"]
    sd["0.weight"] = np.zeros((4, 3, 2, 2))
    with pytest.raises(ValueError, match="size mismatch for 0.weight"):
        other.load_state_dict(sd, strict=False)


def test_module_registration_and_modes():
    fastconv.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5), nn.BatchNorm1d(2))
    assert [n for n, _ in net.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert [n for n, _ in net.named_buffers()] == ["2.running_mean", "2.running_var",
                                                   "2.num_batches_tracked"]
    assert all(m.training for m in net.modules())
    net.eval()
    assert not any(m.training for m in net.modules())
    with pytest.raises(TypeError, match="cannot assign"):
        net[0].weight = np.zeros((2, 2))
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    with pytest.raises(RuntimeError, match="no forward context"):
        nn.Linear(2, 2).backward(np.ones((1, 2)))
    with nn.no_grad():
        net(np.ones((3, 2), np.float32))
    with pytest.raises(RuntimeError, match="no forward context"):
        net.backward(np.ones((3, 2), np.float32))
    assert "Linear(in_features=2, out_features=2, bias=True)" in repr(net)
    p = net[0].weight
    assert type(p + 1) is np.ndarray and type(p) is nn.Parameter
    p -= 1
    assert type(net[0].weight) is nn.Parameter


def test_dropout_and_stochastic_depth_training():
    fastconv.manual_seed(0)
    d = nn.Dropout(0.25)
    x = np.ones((100, 100), np.float32)
    y = d(x)
    assert abs((y == 0).mean() - 0.25) < 0.02
    assert np.array_equal(d.backward(np.ones_like(x)), y)
    sd = nn.StochasticDepth(0.5, "row")
    y = sd(np.ones((200, 3)))
    rows = y[:, 0]
    assert set(np.unique(rows)) <= {0.0, 2.0} and 60 < (rows == 0).sum() < 140
    assert np.array_equal(sd.backward(np.ones((200, 3))), y)


def test_batch_norm_dims_are_checked():
    with pytest.raises(ValueError, match="expected 4D input"):
        nn.BatchNorm2d(3)(np.ones((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match="2D or 3D"):
        nn.BatchNorm1d(3)(np.ones((2, 3, 4, 4), np.float32))


# ---------------------------------------------------------------------------------------------
# against torch.nn

if torch is not None:
    class TorchSqueezeExcitation(torch.nn.Module):
        """torchvision.ops.SqueezeExcitation, written out (torchvision is not a dependency)."""

        def __init__(self, channels, squeeze):
            super().__init__()
            self.avgpool = torch.nn.AdaptiveAvgPool2d(1)
            self.fc1 = torch.nn.Conv2d(channels, squeeze, 1)
            self.fc2 = torch.nn.Conv2d(squeeze, channels, 1)
            self.activation = torch.nn.ReLU()
            self.scale_activation = torch.nn.Sigmoid()

        def forward(self, x):
            s = self.fc2(self.activation(self.fc1(self.avgpool(x))))
            return x * self.scale_activation(s)


def torch_twin(name, m):
    """The torch.nn module matching a fastconv layer of LAYERS, with its weights."""
    tnn = torch.nn
    base = name.split("_")[0]
    if base == "Sequential":
        return tnn.Sequential(*[torch_twin(type(c).__name__, c) for c in m])
    if base == "SqueezeExcitation":
        t = TorchSqueezeExcitation(m.fc1.in_channels, m.fc1.out_channels)
    elif base.startswith("Conv"):
        kw = dict(stride=m.stride, padding=m.padding, dilation=m.dilation, groups=m.groups,
                  bias=m.bias is not None)
        if m.transposed:
            kw["output_padding"] = m.output_padding
        else:
            kw["padding_mode"] = m.padding_mode
        t = getattr(tnn, base)(m.in_channels, m.out_channels, m.kernel_size, **kw)
    elif "Pool" in base and "Adaptive" in base:
        t = getattr(tnn, base)(m.output_size)
    elif "MaxPool" in base:
        t = getattr(tnn, base)(m.kernel_size, m.stride, m.padding, m.dilation, ceil_mode=m.ceil_mode)
    elif "AvgPool" in base:
        kw = dict(ceil_mode=m.ceil_mode, count_include_pad=m.count_include_pad)
        t = getattr(tnn, base)(m.kernel_size, m.stride, m.padding, **kw)
    elif "BatchNorm" in base or "InstanceNorm" in base:
        t = getattr(tnn, base)(m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats)
    elif base == "GroupNorm":
        t = tnn.GroupNorm(m.num_groups, m.num_channels, m.eps, m.affine)
    elif base == "LayerNorm":
        t = tnn.LayerNorm(m.normalized_shape, m.eps)
    elif base == "Linear":
        t = tnn.Linear(m.in_features, m.out_features, m.bias is not None)
    elif base in ("Softmax", "LogSoftmax"):
        t = getattr(tnn, base)(m.dim)
    elif base == "ChannelShuffle":
        t = tnn.ChannelShuffle(m.groups)
    elif base in ("Flatten", "Identity", "Sigmoid", "Tanh"):
        t = getattr(tnn, base)()
    else:  # activations with parameters / inplace
        t = getattr(tnn, base)(**m.params)
    t = t.double()  # before loading: float64 weights stay exact
    t.load_state_dict({k: torch.tensor(np.array(v)) for k, v in m.state_dict().items()})
    return t


@needs_torch
@pytest.mark.parametrize("name,ctor,shape", LAYERS, ids=[c[0] for c in LAYERS])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_layer_matches_torch(name, ctor, shape, mode):
    m = make(ctor)
    perturb_params(m)
    if name == "InstanceNorm2d":  # non-trivial running statistics for eval mode
        m.running_mean[...] = rand(3, 5)
        m.running_var[...] = np.abs(rand(3, 6)) + 0.5
    t = torch_twin(name, m).double()
    m.train(mode == "train")
    t.train(mode == "train")
    x = away_from_kinks(rand(shape, 3))
    tx = torch.tensor(x, requires_grad=True)
    ty = t(tx)
    y = m(x.copy())
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = rand(y.shape, 4)
    ty.backward(torch.tensor(g))
    dx = m.backward(g)
    # torch's hardsigmoid gradient multiplies by 1/6 rounded to float32, even in float64
    rtol = 1e-7 if name == "Hardsigmoid" else 1e-9
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=rtol, atol=1e-11)
    tparams = dict(t.named_parameters())
    for pname, p in m.named_parameters():
        np.testing.assert_allclose(p.grad, tparams[pname].grad.numpy(), rtol=1e-9, atol=1e-11,
                                   err_msg=pname)
    tstate = t.state_dict()
    assert list(tstate) == list(m.state_dict())
    for key, value in m.state_dict().items():
        np.testing.assert_allclose(value, tstate[key].numpy(), rtol=1e-12, err_msg=key)


# ---------------------------------------------------------------------------------------------
# optimisers

OPTIMIZERS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=1e-2)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=1e-3)),
    ("SGD", dict(lr=0.05, momentum=0.5, maximize=True)),
    ("Adam", dict(lr=1e-2)),
    ("Adam", dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=1e-2)),
    ("Adam", dict(lr=1e-2, amsgrad=True)),
    ("AdamW", dict(lr=1e-2)),
    ("AdamW", dict(lr=1e-2, weight_decay=0.1, amsgrad=True)),
]


def _quadratic_grads(params, step):
    """Deterministic gradients that change from step to step."""
    return [np.sin(p * (step + 1)) + 0.1 * step for p in params]


@needs_torch
@pytest.mark.parametrize("name,kw", OPTIMIZERS, ids=lambda v: str(v))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_optimizer_matches_torch(name, kw, dtype):
    values = [rand((3, 4), 1, dtype), rand(5, 2, dtype)]
    ours = [nn.Parameter(v) for v in values]
    theirs = [torch.tensor(v, requires_grad=True) for v in values]
    opt = getattr(optim, name)(ours, **kw)
    topt = getattr(torch.optim, name)(theirs, **kw)
    for step in range(6):
        grads = _quadratic_grads([p.view(np.ndarray) for p in ours], step)
        for p, t, g in zip(ours, theirs, grads):
            p.grad = g.astype(dtype)
            t.grad = torch.tensor(g.astype(dtype))
        opt.step()
        topt.step()
        for p, t in zip(ours, theirs):
            # float32: a few ulps of values of order 1 (torch fuses some products)
            rtol, atol = (2e-6, 1e-7) if dtype == np.float32 else (1e-13, 1e-15)
            np.testing.assert_allclose(p, t.detach().numpy(), rtol=rtol, atol=atol)


@needs_torch
def test_schedules_match_torch():
    p = [nn.Parameter(np.zeros(2))]
    tp = [torch.zeros(2, requires_grad=True)]
    for ours, theirs in (
        (lambda o: optim.lr_scheduler.StepLR(o, 3, 0.5), lambda o: torch.optim.lr_scheduler.StepLR(o, 3, 0.5)),
        (lambda o: optim.lr_scheduler.CosineAnnealingLR(o, 10, 0.01),
         lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 10, 0.01)),
    ):
        opt, topt = optim.SGD(p, lr=0.1), torch.optim.SGD(tp, lr=0.1)
        s, ts = ours(opt), theirs(topt)
        for _ in range(15):
            assert s.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-12)
            assert opt.param_groups[0]["lr"] == pytest.approx(topt.param_groups[0]["lr"], rel=1e-12)
            topt.step()
            s.step()
            ts.step()


def test_optimizer_state_dict_round_trip():
    p = nn.Parameter(np.ones(3))
    opt = optim.Adam([p], lr=0.1)
    p.grad = np.ones(3)
    opt.step()
    state = opt.state_dict()
    q = nn.Parameter(p.copy())
    opt2 = optim.Adam([q], lr=0.5)
    opt2.load_state_dict(state)
    assert opt2.param_groups[0]["lr"] == 0.1
    p.grad = q.grad = np.full(3, 0.5)
    opt.step()
    opt2.step()
    assert np.array_equal(p, q)
    with pytest.raises(ValueError, match="learning rate"):
        optim.SGD([p], lr=-1)
    with pytest.raises(TypeError, match="Parameter"):
        optim.SGD([np.ones(2)], lr=0.1)


def test_models_copy_and_pickle_without_their_plans():
    import copy
    import pickle
    from fastconv import models
    fastconv.manual_seed(0)
    net = models.resnet18(num_classes=4).eval()
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    with nn.no_grad():
        want = net(x)  # builds the fused plans
    for twin in (copy.deepcopy(net), pickle.loads(pickle.dumps(net))):
        with nn.no_grad():
            assert np.array_equal(twin(x), want)
        assert list(twin.state_dict()) == list(net.state_dict())
