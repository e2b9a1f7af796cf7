"""What checking a network evaluated: the values it fixes, in SI, that lowering plans it from. The ops
and the train block are already in their lowered form (`LOp`, `LTrain`), which the lowered network
reuses."""

from __future__ import annotations

from .base import Model


class LOp(Model):
    """One op of a path with its arguments evaluated and its output shape."""

    name: str
    args: dict[str, float | int | bool] = {}
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]


class LTrain(Model):
    loss: str = "ce_count"
    loss_args: dict[str, float] = {}
    optimizer: str = "adam"
    optimizer_args: dict[str, float] = {}
    batch: int = 128
    epochs: int = 1


class PathFacts(Model):
    """A path's values as the checker evaluated them: its ops (a `dense` without a size gets the
    size of the layer it feeds) and its `learn` arguments in SI."""

    ops: tuple[LOp, ...]
    learn_args: dict[str, float] = {}


class NetworkFacts(Model):
    """The values a network fixes, in SI, as checking it evaluated them: lowering plans the
    network from these and never evaluates the spec again."""

    dt: float
    dt_has_unit: bool
    overrides: dict[str, dict[str, float]] = {}  # layer -> param -> value
    encodings: dict[str, dict[str, float]] = {}  # input -> argument of its encoding -> value
    paths: tuple[PathFacts, ...] = ()  # in the order of `Network.paths`
    train: LTrain = LTrain()
