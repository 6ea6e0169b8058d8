"""The six networks of the CIFAR-10 post 「pytorchで初めてゼロから書くSOTA画像分類器(上)」
(docs/sources.md), transcribed from its code.

BnLayer builds nn.Dropout2d(p=0.2) but its forward never calls it (as in the post).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class VeryBasicNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3 * 32 * 32, 10)

    def forward(self, x):
        x = x.view(x.size(0), -1)
        x = self.fc(x)
        return x


class BasicNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(3 * 32 * 32, 40)
        self.fc2 = nn.Linear(40, 10)

    def forward(self, x):
        x = x.view(x.size(0), -1)
        x = F.relu(self.fc1(x))
        x = self.fc2(x)
        return x


class BasicCNN(nn.Module):
    def __init__(self):
        super(BasicCNN, self).__init__()
        self.conv1 = nn.Conv2d(3, 8, 5)
        self.conv2 = nn.Conv2d(8, 16, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = x.view(-1, 16 * 5 * 5)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        x = self.fc3(x)
        return x


class BnLayer(nn.Module):
    def __init__(self, in_chan, out_chan, kernel_size=3, stride=2):
        super().__init__()
        self.dropout = nn.Dropout2d(p=0.2)
        self.conv = nn.Conv2d(in_chan, out_chan, kernel_size=kernel_size, stride=stride,
                              padding=1, bias=False)
        self.bn = nn.BatchNorm2d(out_chan)

    def forward(self, x):
        return self.bn(F.relu(self.conv(x)))


class ConvBnNet(nn.Module):
    def __init__(self, layers, out_dim):
        super(ConvBnNet, self).__init__()
        self.conv1 = nn.Conv2d(3, layers[0], kernel_size=5, stride=1, padding=2)
        self.layer = nn.ModuleList([BnLayer(layers[i], layers[i + 1])
                                    for i in range(len(layers) - 1)])
        self.out = nn.Linear(layers[-1], out_dim)

    def forward(self, x):
        x = self.conv1(x)
        for l in self.layer:
            x = l(x)
        x = F.adaptive_avg_pool2d(x, 1)
        x = x.view(x.size(0), -1)
        return F.log_softmax(self.out(x), dim=-1)


class DeepBnNet(nn.Module):
    def __init__(self, layers, c):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, kernel_size=5, stride=1, padding=2)
        self.layers = nn.ModuleList([BnLayer(layers[i], layers[i + 1])
                                     for i in range(len(layers) - 1)])
        self.layers2 = nn.ModuleList([BnLayer(layers[i + 1], layers[i + 1], stride=1)
                                      for i in range(len(layers) - 1)])
        self.out = nn.Linear(layers[-1], c)

    def forward(self, x):
        super(DeepBnNet).__init__()
        x = self.conv1(x)
        for l, l2 in zip(self.layers, self.layers2):
            x = l(x)
            x = l2(x)
        x = F.adaptive_max_pool2d(x, 1)
        x = x.view(x.size(0), -1)
        return F.log_softmax(self.out(x), dim=-1)


class ResnetLayer(BnLayer):
    def forward(self, x):
        return x + super().forward(x)


class Resnet(nn.Module):
    def __init__(self, layers, c):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, kernel_size=5, stride=1, padding=2)
        self.layers = nn.ModuleList([BnLayer(layers[i], layers[i + 1])
                                     for i in range(len(layers) - 1)])
        self.layers2 = nn.ModuleList([ResnetLayer(layers[i + 1], layers[i + 1], stride=1)
                                      for i in range(len(layers) - 1)])
        self.layers3 = nn.ModuleList([ResnetLayer(layers[i + 1], layers[i + 1], stride=1)
                                      for i in range(len(layers) - 1)])
        self.out = nn.Linear(layers[-1], c)

    def forward(self, x):
        x = self.conv1(x)
        for l, l2, l3 in zip(self.layers, self.layers2, self.layers3):
            x = l3(l2(l(x)))
        x = F.adaptive_max_pool2d(x, 1)
        x = x.view(x.size(0), -1)
        return F.log_softmax(self.out(x), dim=-1)


# spec file → constructor of the post's network it reproduces (out_dim = 10 in the post)
NETS = {
    "cifar10-verybasicnet": lambda: VeryBasicNet(),
    "cifar10-basicnet": lambda: BasicNet(),
    "cifar10-basiccnn": lambda: BasicCNN(),
    "cifar10-convbnnet": lambda: ConvBnNet([10, 20, 40, 80], 10),
    "cifar10-deepbnnet": lambda: DeepBnNet([10, 20, 40, 80, 160], 10),
    "cifar10-resnet": lambda: Resnet([16, 32, 64, 128, 256], 10),
}
