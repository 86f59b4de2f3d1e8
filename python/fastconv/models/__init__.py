"""The model zoo: LeNet-5 through EfficientNet-B0 on :mod:`fastconv.nn`, with torchvision's
architectures and state_dict keys (torchvision weights converted to NumPy arrays load as they
are) and a backward through the whole network.

>>> import numpy as np
>>> from fastconv import models
>>> net = models.resnet18(num_classes=10)
>>> sorted(net.state_dict())[:3]
['bn1.bias', 'bn1.num_batches_tracked', 'bn1.running_mean']
"""

from .densenet import densenet121
from .efficientnet import efficientnet_b0
from .googlenet import GoogLeNetOutputs, googlenet
from .lenet import lenet5
from .mobilenet import mobilenet_v2
from .resnet import resnet18, resnet34, resnet50, resnext50_32x4d
from .shufflenet import shufflenet_v2_x1_0
from .squeezenet import squeezenet1_1
from .vgg import alexnet, vgg11, vgg11_bn, vgg16, vgg16_bn

__all__ = ["lenet5", "alexnet", "vgg11", "vgg11_bn", "vgg16", "vgg16_bn", "googlenet",
           "GoogLeNetOutputs", "resnet18", "resnet34", "resnet50", "resnext50_32x4d",
           "densenet121", "mobilenet_v2", "squeezenet1_1", "shufflenet_v2_x1_0",
           "efficientnet_b0"]
