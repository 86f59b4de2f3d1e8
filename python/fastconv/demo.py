"""``fastconv demo digits``: train LeNet-5 on scikit-learn's handwritten digits, end to end on
fastconv (forward, backward, Adam), then reload the saved weights and classify.

The data set is the UCI optical digits scikit-learn ships (1797 images of 8 x 8 pixels, 16 grey
levels, ten classes). Each image is scaled to [0, 1], enlarged to 24 x 24 by bilinear
interpolation and framed in a 28 x 28 zero border (MNIST's layout, LeNet-5's input). A
stratified 80 / 20 split gives 1437 training and 360 test images. Training: Adam (lr 2e-3,
cosine schedule), batches of 32, cross entropy. The run writes ``digits_lenet5.npz`` (the
state_dict) and ``digits_training.png`` (loss and accuracy per epoch) into ``--out``.
Needs the ``demo`` extra (scikit-learn, matplotlib).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from . import manual_seed, models, nn, optim


def add_arguments(parser) -> None:
    parser.add_argument("name", choices=["digits"], help="the demo to run")
    parser.add_argument("--epochs", type=int, default=15, help="training epochs (default 15)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and the weights")
    parser.add_argument("--out", default=".", help="folder for the weights and the plot")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG (no matplotlib)")


def _bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of bilinear resampling with aligned pixel centres."""
    pos = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
    lo = np.clip(np.floor(pos).astype(int), 0, n_in - 1)
    hi = np.clip(lo + 1, 0, n_in - 1)
    frac = np.clip(pos - lo, 0, 1)
    m = np.zeros((n_out, n_in))
    m[np.arange(n_out), lo] += 1 - frac
    m[np.arange(n_out), hi] += frac
    return m


def load_digits(seed: int = 0):
    """(x_train, y_train, x_test, y_test): float32 images (N, 1, 28, 28) and int64 labels."""
    try:
        from sklearn.datasets import load_digits as sk_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise SystemExit("fastconv demo digits needs scikit-learn: pip install 'fastconv[demo]'")
    data = sk_digits()
    images = data.images / 16.0
    m = _bilinear_matrix(8, 24)
    big = np.einsum("ij,njk,lk->nil", m, images, m)
    framed = np.zeros((len(big), 1, 28, 28), np.float32)
    framed[:, 0, 2:26, 2:26] = big
    x_train, x_test, y_train, y_test = train_test_split(
        framed, data.target.astype(np.int64), test_size=0.2, stratify=data.target,
        random_state=seed)
    return x_train, y_train, x_test, y_test


def evaluate(model, x, y, batch_size=256):
    """Accuracy of ``model`` (in evaluation mode, fused) on (x, y)."""
    model.eval()
    correct = 0
    with nn.no_grad():
        for i in range(0, len(x), batch_size):
            correct += int((model(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum())
    return correct / len(x)


class _Progress:
    """A one-line progress bar on stderr: redrawn per batch in a terminal, written once per
    epoch otherwise."""

    def __init__(self, total, label):
        self.total, self.label, self.done, self.t0 = total, label, 0, time.perf_counter()
        self.live, self.info = sys.stderr.isatty(), ""

    def update(self, n=1, info=""):
        self.done += n
        self.info = info
        if self.live:
            self._draw()

    def _draw(self):
        width = 30
        filled = int(width * self.done / self.total)
        sys.stderr.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] "
                         f"{self.done}/{self.total} {self.info}")
        sys.stderr.flush()

    def close(self):
        self._draw()
        sys.stderr.write(f"  {time.perf_counter() - self.t0:.1f} s\n")


def train(epochs=15, batch_size=32, seed=0, progress=True):
    """Train LeNet-5 on the digits; returns (model, history, data) with history a dict of
    per-epoch lists: loss, train_accuracy, test_accuracy, seconds."""
    x_train, y_train, x_test, y_test = load_digits(seed)
    rng = manual_seed(seed)
    model = models.lenet5(num_classes=10)
    opt = optim.Adam(model.parameters(), lr=2e-3)
    schedule = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    criterion = nn.CrossEntropyLoss()
    history = {"loss": [], "train_accuracy": [], "test_accuracy": [], "seconds": []}
    start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        order = rng.permutation(len(x_train))
        batches = range(0, len(order), batch_size)
        bar = _Progress(len(batches), f"epoch {epoch + 1:2d}/{epochs}") if progress else None
        total, correct = 0.0, 0
        for i in batches:
            idx = order[i:i + batch_size]
            logits = model(x_train[idx])
            loss = criterion(logits, y_train[idx])
            opt.zero_grad()
            model.backward(criterion.backward())
            opt.step()
            total += float(loss) * len(idx)
            correct += int((logits.argmax(1) == y_train[idx]).sum())
            if bar:
                bar.update(info=f"loss {float(loss):.3f}")
        schedule.step()
        history["loss"].append(total / len(x_train))
        history["train_accuracy"].append(correct / len(x_train))
        history["test_accuracy"].append(evaluate(model, x_test, y_test))
        history["seconds"].append(time.perf_counter() - start)
        if bar:
            bar.update(0, f"loss {history['loss'][-1]:.3f} test {history['test_accuracy'][-1]:.3f}")
            bar.close()
    return model, history, (x_train, y_train, x_test, y_test)


def plot(history, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = np.arange(1, len(history["loss"]) + 1)
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    a.plot(epochs, history["loss"], marker="o")
    a.set(xlabel="epoch", ylabel="training loss (cross entropy)", yscale="log")
    b.plot(epochs, history["train_accuracy"], marker="o", label="train")
    b.plot(epochs, history["test_accuracy"], marker="o", label="test")
    b.set(xlabel="epoch", ylabel="accuracy", ylim=(0.8, 1.0))
    b.legend()
    fig.suptitle("LeNet-5 on scikit-learn's digits, trained with fastconv")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(args) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"LeNet-5 on scikit-learn's digits: {args.epochs} epochs, batch {args.batch_size}")
    model, history, (_, _, x_test, y_test) = train(args.epochs, args.batch_size, args.seed)
    weights = out / "digits_lenet5.npz"
    np.savez(weights, **model.state_dict())
    print(f"trained in {history['seconds'][-1]:.1f} s; test accuracy "
          f"{history['test_accuracy'][-1]:.4f}; weights written to {weights}")
    if not args.no_plot:
        plot(history, out / "digits_training.png")
        print(f"plot written to {out / 'digits_training.png'}")
    # reload into a fresh model and classify
    fresh = models.lenet5(num_classes=10)
    with np.load(weights) as saved:
        fresh.load_state_dict(dict(saved))
    accuracy = evaluate(fresh, x_test, y_test)
    with nn.no_grad():
        pred = fresh(x_test[:12]).argmax(1)
    print(f"reloaded model: test accuracy {accuracy:.4f}")
    print("first test images: predicted " + " ".join(map(str, pred)) +
          "\n                   true      " + " ".join(map(str, y_test[:12])))
    return 0
