"""Fused inference (fastconv.nn.fuse): in evaluation mode under no_grad, batch norms fold into
the convolutions before them and activations fuse into their plans. The fused models equal the
unfused ones within the float32 budget, the state_dict does not change, and plans follow every
change of the weights."""

import numpy as np
import pytest

import fastconv
from fastconv import models, nn, optim
from reference import normalized_error

# A whole network in float32: per-layer rounding of ~1e-7 grows through the batch norms'
# divisions; unfused float32 models differ from float64 by up to ~2e-4 here.
FUSED_TOL = 1e-4


def float64_twin(net):
    """The same model in float64 (its unfused output is the reference)."""
    twin = getattr(models, net.name)(num_classes=10).to(np.float64)
    twin.load_state_dict(net.state_dict())
    return twin.eval()


def trained(name, size=48):
    """A model whose batch norms hold non-trivial running statistics, and an input."""
    fastconv.manual_seed(0)
    net = getattr(models, name)(num_classes=10)
    x = np.random.default_rng(1).standard_normal((2, 3, size, size)).astype(np.float32)
    net.name = name
    net.train()
    for m in net.modules():  # affine parameters away from 1 / 0
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None  # running statistics = this batch's: activations of order 1
            m.weight[...] = np.random.default_rng(2).uniform(0.5, 1.5, m.weight.shape)
            m.bias[...] = np.random.default_rng(3).uniform(-0.2, 0.2, m.bias.shape)
    net(x)
    return net.eval(), x


def conv_fusions(net):
    return [m.fused_with() for m in net.modules() if isinstance(m, nn.Conv2d)]


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "mobilenet_v2", "efficientnet_b0",
                                  "googlenet", "vgg11_bn", "shufflenet_v2_x1_0", "squeezenet1_1",
                                  "densenet121", "resnext50_32x4d"])
def test_fused_inference_equals_unfused(name):
    """Fused float32 inference is as accurate as the unfused float32 model, both measured
    against the unfused model in float64."""
    net, x = trained(name)
    unfused = net(x)  # gradients enabled: every layer as defined
    before = {k: v.copy() for k, v in net.state_dict().items()}
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert all(m._plan is None for m in convs)
    with nn.no_grad():
        fused = net(x)
    # The convolutions ran through their plans (the results may equal the unfused ones bit for
    # bit where no batch norm is folded and the plan runs the stateless call's algorithm); all
    # of them but GoogLeNet's auxiliary heads, which an eval-mode forward does not run.
    idle = {n for n, m in net.named_modules() if isinstance(m, nn.Conv2d) and m._plan is None}
    assert idle == ({"aux1.conv.conv", "aux2.conv.conv"} if name == "googlenet" else set()), idle
    ref = float64_twin(net)(x.astype(np.float64))
    err_fused, err_unfused = normalized_error(fused, ref), normalized_error(unfused, ref)
    print(f"{name}: fused {err_fused:.2e}, unfused {err_unfused:.2e} against float64")
    assert err_fused < max(2 * err_unfused, FUSED_TOL)
    after = net.state_dict()
    assert list(after) == list(before)
    assert all(np.array_equal(after[k], before[k]) for k in before)


def test_what_is_fused():
    net, _ = trained("resnet18")
    fusions = conv_fusions(net)
    # every convolution of ResNet-18 is followed by its batch norm; the ReLU after the first
    # convolution of each block and of the stem fuses too (the second one follows the sum)
    assert all(bn == "BatchNorm2d" for bn, _ in fusions)
    assert sum(act == "relu" for _, act in fusions) == 1 + 8
    # and the last convolution of each of the 8 blocks adds the shortcut, then the ReLU
    residual = [m._residual for m in net.modules() if isinstance(m, nn.Conv2d) and m._residual]
    assert residual == [("relu",)] * 8
    net, _ = trained("mobilenet_v2")
    acts = {act for _, act in conv_fusions(net)}
    assert acts == {"relu6", None}
    net, _ = trained("efficientnet_b0")
    assert {act for bn, act in conv_fusions(net) if bn} == {"silu", None}


def test_plans_follow_weight_changes():
    net, x = trained("resnet18")
    with nn.no_grad():
        first = net(x)
    # a training step in between: the plans must be rebuilt from the new weights
    opt = optim.SGD(net.parameters(), lr=0.1)
    net.train()
    y = net(x)
    net.backward(np.ones_like(y))
    opt.step()
    net.eval()
    unfused = net(x)
    with nn.no_grad():
        fused = net(x)
    assert normalized_error(fused, unfused) < FUSED_TOL
    assert normalized_error(fused, first) > 1e-3
    # loading a state dict, too
    net.load_state_dict({k: v * 1.01 if v.dtype.kind == "f" and "var" not in k else v
                         for k, v in net.state_dict().items()})
    unfused = net(x)
    with nn.no_grad():
        assert normalized_error(net(x), unfused) < FUSED_TOL


def test_backward_in_eval_mode_runs_unfused():
    net, x = trained("mobilenet_v2")
    y = net(x)  # eval mode, gradients enabled
    dx = net.backward(np.ones_like(y))
    assert dx.shape == x.shape and np.isfinite(dx).all()
    assert all(p.grad is not None for p in net.parameters())


def test_explicit_fuse_packs_plans():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.SiLU(),
                        nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8, track_running_stats=False),
                        nn.ReLU())
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    net(x)
    nn.fuse(net, x)
    assert net[0].fused_with() == ("BatchNorm2d", "silu") and net[0]._plan is not None
    # batch statistics in evaluation mode cannot fold: the norm stays, the ReLU after it too
    assert net[3].fused_with() == (None, None)
    unfused = net(x)
    with nn.no_grad():
        assert normalized_error(net(x), unfused) < FUSED_TOL
