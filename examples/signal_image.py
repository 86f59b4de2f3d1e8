"""Classic image processing with fastconv.signal on a real photograph (scikit-image's
'camera', 512 x 512, uint8): Sobel edges, unsharp-mask sharpening and template matching.

Run: python examples/signal_image.py [--plot out.png]   (needs scikit-image; matplotlib for
--plot). Prints what it found; the README shows its output.
"""

import argparse
import time

import numpy as np
from skimage import data

from fastconv import signal


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plot", metavar="PNG", help="save the four images side by side")
    args = parser.parse_args()

    image = data.camera().astype(np.float32) / 255.0

    # Edge detection: Sobel derivatives (a convolution, so the kernel is flipped), magnitude.
    sobel_x = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], np.float32)

    def sobel(img):
        gx = signal.convolve2d(img, sobel_x, mode="same", boundary="symm")
        gy = signal.convolve2d(img, sobel_x.T, mode="same", boundary="symm")
        return np.hypot(gx, gy)

    edges = sobel(image)
    print(f"Sobel: strongest edge {edges.max():.3f}, "
          f"{np.mean(edges > 0.5) * 100:.1f} % of pixels above 0.5")

    # Sharpening: unsharp mask, image + 1.5 x (image - 5x5 box blur).
    blur = signal.convolve2d(image, np.full((5, 5), 1 / 25, np.float32), mode="same",
                             boundary="symm")
    sharp = np.clip(image + 1.5 * (image - blur), 0, 1)
    print(f"sharpening: mean Sobel magnitude {np.mean(edges):.4f} -> {np.mean(sobel(sharp)):.4f}")

    # Template matching: cut the camera operator's head out, find it again.
    template = image[80:140, 200:250]
    response = signal.match_template(image, template)  # warm-up: the first call allocates
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        response = signal.match_template(image, template)
        times.append(time.perf_counter() - t0)
    elapsed = sorted(times)[len(times) // 2]
    row, col = (int(v) for v in np.unravel_index(np.argmax(response), response.shape))
    print(f"template 60x50 found at ({row}, {col}) with score {response.max():.4f} "
          f"in {elapsed * 1e3:.1f} ms, median of 5 (method {signal.choose_conv_method(image, template, 'valid')})")

    if args.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, axes = plt.subplots(1, 4, figsize=(16, 4.4))
        for ax, img, title in zip(axes, (image, edges, sharp, response),
                                  ("camera", "Sobel magnitude", "unsharp mask", "match_template")):
            ax.imshow(img, cmap="gray")
            ax.set_title(title)
            ax.set_axis_off()
        axes[3].plot([col], [row], "r+", markersize=16)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=80)
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
