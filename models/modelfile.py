"""A structural check of a LightGBM text model, before LightGBM ever parses it.

LightGBM does not validate what it reads: a truncated or altered ``model.txt`` (even one
whose sha256 was recorded after the damage) makes it abort the whole process (SIGABRT)
or read past its buffer (SIGSEGV), which no ``try`` can catch. :func:`check_model_text`
therefore reads the text itself, in pure Python, and refuses anything that is not the
complete file LightGBM wrote for the expected features:

* the header: ``tree``, ``version``, one class, ``max_feature_idx`` and ``feature_names``
  equal to the expected features, one ``tree_sizes`` entry per tree;
* every tree block exactly where ``tree_sizes`` says it is (LightGBM jumps by those
  byte counts), numbered in order, with arrays of the lengths ``num_leaves`` implies,
  split features in range, finite numbers, children that form one tree (every node
  reached exactly once from the root, no cycles), categorical splits inside
  ``cat_boundaries``;
* then ``end of trees``, the parameters section closed by ``end of parameters`` and the
  final ``pandas_categorical:`` line holding JSON.

It is cheap (tens of milliseconds for hundreds of trees) and catches truncations and
deleted lines. A text that passes it is still first loaded by a child process
(:mod:`models.model_probe`) before a long-lived process loads it.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Sequence

from models.errors import CoreError

#: The arrays of a tree with one entry per internal node (num_leaves - 1) or per leaf.
INTERNAL_ARRAYS = ("split_feature", "split_gain", "threshold", "decision_type", "left_child", "right_child",
                   "internal_value", "internal_weight", "internal_count")
LEAF_ARRAYS = ("leaf_value", "leaf_weight", "leaf_count")
INT_ARRAYS = {"split_feature", "decision_type", "left_child", "right_child", "internal_count", "leaf_count",
              "cat_boundaries", "cat_threshold"}


class ModelFileError(CoreError, ValueError):
    """The model text is not a complete, well-formed LightGBM model for the expected features."""


def _key_values(lines: Sequence[str], where: str) -> dict[str, str]:
    """``key=value`` lines into a dict; a line without ``=`` or a repeated key is an error."""
    out: dict[str, str] = {}
    for line in lines:
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep or not key or key in out:
            raise ModelFileError(f"{where}: malformed line {line[:60]!r}")
        out[key] = value
    return out


def _numbers(kv: dict[str, str], key: str, where: str) -> list[float]:
    """The space-separated numbers of ``key`` (integers where LightGBM writes integers)."""
    text = kv.get(key)
    if text is None:
        raise ModelFileError(f"{where}: {key} is missing")
    if not text:
        return []
    try:
        values = [float(int(v)) if key in INT_ARRAYS else float(v) for v in text.split(" ")]
    except ValueError as exc:
        raise ModelFileError(f"{where}: {key} holds a value that is not a number ({exc})") from exc
    # a threshold may be +-inf (a split on "anything but missing"); nothing may be NaN
    if not all(math.isfinite(v) or (key == "threshold" and not math.isnan(v)) for v in values):
        raise ModelFileError(f"{where}: {key} holds a value that is not finite")
    return values


def _check_tree(text: str, index: int, n_features: int) -> None:
    """One tree block (without its ``Tree=i`` line): lengths, ranges and the tree's shape."""
    where = f"tree {index}"
    kv = _key_values(text.split("\n"), where)
    leaves = _numbers(kv, "num_leaves", where)
    cats = _numbers(kv, "num_cat", where)
    if len(leaves) != 1 or leaves[0] < 1 or len(cats) != 1 or cats[0] < 0:
        raise ModelFileError(f"{where}: num_leaves or num_cat is malformed")
    n_leaves, n_cat = int(leaves[0]), int(cats[0])
    if kv.get("is_linear", "0") != "0":
        raise ModelFileError(f"{where}: linear trees are not supported")
    _numbers(kv, "shrinkage", where)
    arrays: dict[str, list[float]] = {}
    for key, size in [*((k, n_leaves - 1) for k in INTERNAL_ARRAYS), *((k, n_leaves) for k in LEAF_ARRAYS)]:
        if n_leaves == 1 and key not in ("leaf_value",) and key not in kv:
            continue  # a one-leaf tree has no splits
        arrays[key] = _numbers(kv, key, where)
        if len(arrays[key]) != size:
            raise ModelFileError(f"{where}: {key} has {len(arrays[key])} values, expected {size}")
    if n_leaves == 1:
        return
    if any(not 0 <= f < n_features for f in arrays["split_feature"]):
        raise ModelFileError(f"{where}: a split names a feature outside 0..{n_features - 1}")
    n_bounds = 0
    if n_cat:
        bounds = _numbers(kv, "cat_boundaries", where)
        thresholds = _numbers(kv, "cat_threshold", where)
        if (len(bounds) != n_cat + 1 or bounds[0] != 0 or any(b > a for b, a in itertools.pairwise(bounds))
                or bounds[-1] != len(thresholds)):
            raise ModelFileError(f"{where}: cat_boundaries do not match cat_threshold")
        n_bounds = n_cat
    for kind, threshold in zip(arrays["decision_type"], arrays["threshold"], strict=True):
        kind_bits = int(kind)
        if not 0 <= kind_bits < 16 or (kind_bits >> 2) & 3 == 3:
            raise ModelFileError(f"{where}: unknown decision_type {kind_bits}")
        if kind_bits & 1 and not (threshold == int(threshold) and 0 <= threshold < n_bounds):
            raise ModelFileError(f"{where}: a categorical split points outside its {n_bounds} categories")
    _check_shape(arrays["left_child"], arrays["right_child"], n_leaves, where)


def _check_shape(left: list[float], right: list[float], n_leaves: int, where: str) -> None:
    """Children form one binary tree: from node 0, every node and leaf is reached exactly once."""
    seen_nodes, seen_leaves = {0}, set()
    stack = [0]
    while stack:
        node = stack.pop()
        for child in (int(left[node]), int(right[node])):
            if child >= 0:
                if child >= len(left) or child in seen_nodes:
                    raise ModelFileError(f"{where}: child {child} is out of range or reached twice")
                seen_nodes.add(child)
                stack.append(child)
            else:
                leaf = ~child
                if leaf >= n_leaves or leaf in seen_leaves:
                    raise ModelFileError(f"{where}: leaf {leaf} is out of range or reached twice")
                seen_leaves.add(leaf)
    if len(seen_nodes) != len(left) or len(seen_leaves) != n_leaves:
        raise ModelFileError(f"{where}: some nodes or leaves are not reachable from the root")


def check_model_text(data: bytes, feature_names: Sequence[str], objectives: Sequence[str] = ("binary",)) -> int:
    """Check a LightGBM text model (see the module docstring); the number of trees.

    ``objectives`` are the objectives the caller expects (their names start the header's
    ``objective``): binary classifiers by default; an uplift X-learner's effect models are
    regressions. Raises :class:`ModelFileError` naming the first problem found.
    """
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise ModelFileError(f"the model file is not ASCII text (byte {exc.start})") from exc
    start = text.find("\nTree=0\n")
    if not text.startswith("tree\n") or start < 0:
        raise ModelFileError("the model file does not start with a LightGBM header followed by Tree=0")
    header = _key_values(text[5:start].split("\n"), "header")
    for key in ("version", "num_class", "num_tree_per_iteration", "max_feature_idx", "objective",
                "feature_names", "tree_sizes"):
        if key not in header:
            raise ModelFileError(f"header: {key} is missing")
    if header["num_class"] != "1" or header["num_tree_per_iteration"] != "1" or \
            not header["objective"].startswith(tuple(objectives)):
        raise ModelFileError(f"header: not a {' or '.join(objectives)} model with one tree per iteration")
    if header["feature_names"].split(" ") != list(feature_names) or header["max_feature_idx"] != str(len(feature_names) - 1):
        raise ModelFileError("header: the model's feature names differ from the expected features")
    sizes = [int(v) for v in _numbers(header, "tree_sizes", "header")]
    if not sizes or any(s <= 0 for s in sizes):
        raise ModelFileError("header: tree_sizes is empty or not positive")
    offset = start + 1
    for i, size in enumerate(sizes):
        label = f"Tree={i}\n"
        block = text[offset:offset + size]
        if len(block) != size or not block.startswith(label):
            raise ModelFileError(f"tree {i} is not where tree_sizes says (truncated or altered file)")
        _check_tree(block[len(label):], i, len(feature_names))
        offset += size
    tail = text[offset:]
    if not tail.startswith("end of trees\n"):
        raise ModelFileError(f"'end of trees' is not after the {len(sizes)} trees (truncated or altered file)")
    if "\nparameters:\n" not in tail or "\nend of parameters\n" not in tail:
        raise ModelFileError("the parameters section is missing or unterminated (truncated file)")
    last = tail.rstrip("\n").rsplit("\n", 1)[-1]
    if not last.startswith("pandas_categorical:"):
        raise ModelFileError("the model file does not end with its pandas_categorical line (truncated file)")
    try:
        json.loads(last[len("pandas_categorical:"):])
    except ValueError as exc:
        raise ModelFileError(f"the pandas_categorical line is not JSON ({exc})") from exc
    return len(sizes)
