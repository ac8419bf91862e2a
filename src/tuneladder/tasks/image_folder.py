"""A folder of images, one subfolder per class, read by torchvision's ImageFolder.

Two layouts: ``path/<class>/<image>``, which the library splits (stratified), or
the folder's own split, ``path/train/<class>/...`` and ``path/test/<class>/...``
with an optional ``path/val/...``. Every image is resized to ``image_size`` and
read as a float tensor in [0, 1]. The default model is the digits task's family
(a small CNN, or an MLP with ``arch: mlp``); ``model`` swaps in a factory of
one's own. torchvision is an optional extra: ``pip install "tuneladder[images]"``.

Nothing here imports torch or torchvision until data is read or a model built,
so resolving a config stays light.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneladder.core.errors import DataError
from tuneladder.tasks._base import DataInfo, Task
from tuneladder.tasks.digits import applies

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["Augment", "build_model", "folder_signature", "load_datasets", "make_task"]

OPTIONS = {"path", "image_size", "channels", "augment", "split", "model", "default_model"}
AUGMENTATIONS = ("crop", "flip")
DEFAULT_MODEL = {"arch": "cnn", "width": 64, "num_layers": 2, "channels": 16, "dropout": 0.1}


def folder_signature(path: str | Path) -> str:
    """A digest of an image folder's listing: each file's path, size and modification time.

    The workflow re-prepares when it changes. A folder as a Snakemake input is
    judged by the folder's own time, which an edited or replaced image leaves as it
    was; a stat of every file costs well under a second for tens of thousands.
    """
    root = Path(str(path)).expanduser().resolve()
    digest = hashlib.sha256()
    for folder, subfolders, files in os.walk(root, followlinks=True):  # as ImageFolder does
        subfolders.sort()
        for name in sorted(files):
            file = os.path.join(folder, name)
            try:
                stat = os.stat(file)
            except OSError:  # removed meanwhile, or a broken link: its name still counts
                stat = None
            size, mtime = (stat.st_size, stat.st_mtime_ns) if stat else (-1, -1)
            digest.update(f"{os.path.relpath(file, root)}\0{size}\0{mtime}\n".encode())
    return digest.hexdigest()[:16]


def make_task(options: Mapping[str, Any]) -> Task:
    unknown = sorted(set(options) - OPTIONS)
    if unknown:
        raise ValueError(
            f"unknown option task.options.{unknown[0]} (image_folder takes {sorted(OPTIONS)})"
        )
    if not options.get("path"):
        raise ValueError("task.options.path is required for the image_folder task")
    if importlib.util.find_spec("torchvision") is None:
        raise ValueError(
            "the image_folder task needs torchvision: pip install 'tuneladder[images]'"
        )
    path = Path(str(options["path"])).expanduser().resolve()
    if not path.is_dir():
        raise ValueError(f"task.options.path: image folder not found: {path}")
    size = _image_size(options.get("image_size", 32))
    channels = options.get("channels", 3)
    if channels not in (1, 3):
        raise ValueError(f"task.options.channels must be 1 or 3, got {channels!r}")
    augment = list(options.get("augment", []))
    if not set(augment) <= set(AUGMENTATIONS):
        raise ValueError(
            f"task.options.augment may list {', '.join(AUGMENTATIONS)}, got {augment!r}"
        )
    build, default_model, model_applies = _model(options)
    return Task(
        name=f"image_folder:{path.name}",
        kind="classification",
        load_datasets=partial(load_datasets, path, size=size, channels=channels),
        train_transform=Augment(size, augment) if augment else None,
        build_model=build,
        default_model=default_model,
        split=tuple(options.get("split", (0.6, 0.2, 0.2))),
        applies=model_applies,
    )


def _image_size(value: Any) -> tuple[int, int]:
    sizes = [value, value] if isinstance(value, int) else list(value)
    if len(sizes) != 2 or not all(isinstance(v, int) and v >= 4 for v in sizes):
        raise ValueError(
            f"task.options.image_size must be an int >= 4 or [height, width], got {value!r}"
        )
    return sizes[0], sizes[1]


def _model(options: Mapping[str, Any]) -> tuple[Callable[..., Any], dict[str, Any], Any]:
    """The default model family, or ``model: "module:function"`` with its ``default_model``."""
    if "model" not in options:
        if "default_model" in options:
            raise ValueError("task.options.default_model goes with task.options.model")
        return build_model, dict(DEFAULT_MODEL), applies
    from tuneladder.tasks._base import plugin_path

    module_name, _, name = str(options["model"]).partition(":")
    plugin_path()
    try:
        factory = getattr(importlib.import_module(module_name), name, None)
    except ImportError as err:
        raise ValueError(f"task.options.model: cannot import {module_name!r} ({err})") from None
    if not callable(factory):
        raise ValueError(f"task.options.model: {module_name} has no function {name!r}")
    return factory, dict(options.get("default_model", {})), None


def load_datasets(path: Path, *, size: tuple[int, int], channels: int) -> Any | dict[str, Any]:
    """One ImageFolder, or the folder's own splits, with train's class numbering in all.

    Class folders are listed, not read: ImageFolder reads an image when asked for it.
    """
    own = (path / "train").is_dir() and (path / "test").is_dir()
    if not own:
        return _folder(path, size, channels)
    folders = {"train": _folder(path / "train", size, channels)}
    for name in ("val", "test"):
        if (path / name).is_dir():
            folders[name] = _folder(path / name, size, channels)
            _renumber(folders[name], folders["train"].class_to_idx)
    return folders


def _folder(root: Path, size: tuple[int, int], channels: int) -> Any:
    from torchvision.datasets import ImageFolder

    try:
        return ImageFolder(str(root), transform=_to_tensor(size, channels))
    except (FileNotFoundError, OSError) as err:
        raise DataError(f"image folder {root}: {err}") from None


def _to_tensor(size: tuple[int, int], channels: int) -> Any:
    import torch
    from torchvision.transforms import v2

    steps = [v2.ToImage()]
    if channels == 1:
        steps.append(v2.Grayscale(num_output_channels=1))
    steps += [v2.Resize(size, antialias=True), v2.ToDtype(torch.float32, scale=True)]
    return v2.Compose(steps)


def _renumber(folder: Any, class_to_idx: Mapping[str, int]) -> None:
    """Number ``folder``'s classes as train does: a split missing a class keeps the others'."""
    extra = sorted(set(folder.class_to_idx) - set(class_to_idx))
    if extra:
        raise DataError(f"image folder {folder.root}: class {extra[0]!r} is not in train")
    old = {index: cls for cls, index in folder.class_to_idx.items()}
    folder.samples = [(file, class_to_idx[old[index]]) for file, index in folder.samples]
    folder.imgs = folder.samples
    folder.targets = [index for _, index in folder.samples]
    folder.classes = sorted(class_to_idx, key=class_to_idx.__getitem__)
    folder.class_to_idx = dict(class_to_idx)


class Augment:
    """Random crop (padded by an eighth of the side) and/or horizontal flip, on tensors.

    Built on first use, so that making the task imports no torchvision.
    """

    def __init__(self, size: tuple[int, int], kinds: list[str]) -> None:
        self.size, self.kinds = size, tuple(kinds)
        self._pipeline: Any = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self._pipeline is None:
            from torchvision.transforms import v2

            steps: list[Any] = []
            if "crop" in self.kinds:
                steps.append(v2.RandomCrop(self.size, padding=max(1, min(self.size) // 8)))
            if "flip" in self.kinds:
                steps.append(v2.RandomHorizontalFlip())
            self._pipeline = v2.Compose(steps)
        return self._pipeline(x)


def build_model(hp: Mapping[str, Any], info: DataInfo) -> nn.Module:
    """The digits task's family: ``arch`` cnn (default) or mlp."""
    from tuneladder.tasks.models import mlp_or_cnn

    return mlp_or_cnn(hp, info)
