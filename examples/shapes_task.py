"""An example plugin task on torch Datasets: images of shapes, with fixed splits.

Point a config at it with ``task.name: "examples.shapes_task:make_task"``; the
module is found from the directory you run snakemake in. The images are drawn
from a seed, so nothing is downloaded.

Run as a script, it writes the same kind of images as PNG files into a folder
that the built-in ``image_folder`` task reads::

    python -m examples.shapes_task data/shapes --per-class 200
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from tuneladder.tasks import DataInfo, Task

CLASSES = ("circle", "square", "triangle")


def make_task(options: Mapping[str, Any]) -> Task:
    """``options``: samples (train size, default 1500) and size (pixels, default 16)."""
    samples = int(options.get("samples", 1500))
    size = int(options.get("size", 16))
    if samples < 30:
        raise ValueError(f"task.options.samples must be >= 30, got {samples}")

    def load_datasets() -> dict[str, Dataset]:
        # the task's own fixed splits; the library reads test only in the final rung
        return {
            "train": Shapes(samples, seed=1, size=size),
            "val": Shapes(samples // 5, seed=2, size=size),
            "test": Shapes(samples // 5, seed=3, size=size),
        }

    return Task(
        name="shapes",
        kind="classification",
        load_datasets=load_datasets,
        train_transform=shift,  # augmentation: training samples only
        build_model=build_model,
        default_model={"channels": 8, "width": 32},
    )


class Shapes(Dataset):
    """``n`` grey images of circles, squares and triangles; sample i is drawn from (seed, i)."""

    def __init__(self, n: int, *, seed: int, size: int = 16) -> None:
        self.n, self.seed, self.size = n, seed, size
        # labels known without drawing an image: prepare reads them from here
        self.targets = [i % len(CLASSES) for i in range(n)]
        self.classes = list(CLASSES)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        label = self.targets[index]
        image = draw(label, np.random.default_rng([self.seed, index]), self.size)
        return torch.from_numpy(image)[None], label  # (1, size, size), class index


def draw(label: int, rng: np.random.Generator, size: int) -> np.ndarray:
    """One shape of random place and size on a noisy background, in [0, 1]."""
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    r = rng.uniform(0.22, 0.35) * size
    cy, cx = rng.uniform(r, size - r, 2)
    if CLASSES[label] == "circle":
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    elif CLASSES[label] == "square":
        mask = (abs(yy - cy) <= 0.8 * r) & (abs(xx - cx) <= 0.8 * r)
    else:
        mask = (yy >= cy - r) & (yy <= cy + r) & (abs(xx - cx) <= (yy - cy + r) / 2)
    image = 0.1 + 0.8 * mask + rng.normal(0, 0.05, (size, size))
    return np.clip(image, 0, 1).astype(np.float32)


def shift(x: torch.Tensor) -> torch.Tensor:
    """Move the image by up to 2 pixels each way (wrapping round)."""
    dy, dx = torch.randint(-2, 3, (2,)).tolist()
    return torch.roll(x, shifts=(dy, dx), dims=(1, 2))


def build_model(hp: Mapping[str, Any], info: DataInfo) -> nn.Module:
    """Two conv blocks that halve the image, then one hidden layer."""
    c, width = int(hp["channels"]), int(hp["width"])
    _, height, breadth = info.input_shape
    return nn.Sequential(
        nn.Conv2d(info.input_shape[0], c, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(c, 2 * c, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(2 * c * (height // 4) * (breadth // 4), width),
        nn.ReLU(),
        nn.Linear(width, info.n_outputs),
    )


def write_folder(
    root: str | Path, *, per_class: int, size: int = 16, seed: int = 0, test: int = 0
) -> Path:
    """PNG files ``root/<class>/<i>.png``; with ``test`` > 0, the folder's own split:
    ``root/train/<class>/`` (``per_class`` each) and ``root/test/<class>/`` (``test`` each)."""
    from PIL import Image

    root = Path(root)
    parts = {"": per_class} if test == 0 else {"train": per_class, "test": test}
    for part, count in parts.items():
        for label, name in enumerate(CLASSES):
            folder = root / part / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                rng = np.random.default_rng([seed, len(part), label, i])
                pixels = (draw(label, rng, size) * 255).round().astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i:04d}.png")
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description="write PNG images of shapes, one folder a class")
    parser.add_argument("root", type=Path)
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--test", type=int, default=0, help="per class; >0: train/ and test/")
    args = parser.parse_args()
    write_folder(args.root, per_class=args.per_class, size=args.size, test=args.test)
    print(f"wrote {args.root}")


if __name__ == "__main__":
    main()
