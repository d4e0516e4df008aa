"""The paper's decision tree (its Figure 3 split the results at about 35K training examples): a
shallow regression tree of the per-combination gain of LW over a reference (baseline or long) on
the features the study varies.

One sample per combination (dataset, arch, train size, label noise, extra axes): the mean over
common seeds of LW − reference test accuracy, in points. Features: log10 training-set size,
architecture, dataset, its number of classes and resolution, label noise, the budget (rounds,
epochs per round, epochs trained) and every other extra axis; a feature enters only if it takes
more than one value among the combinations. Names and strings are one-hot ("arch = vgg").

With fewer than MIN_COMBINATIONS combinations the tree is not fitted: a split of a handful of
noisy means would be drawn as if it were structure. The tree is scikit-learn's CART regressor,
depth 2 (3 from 30 combinations on), at least 2 combinations per leaf, deterministic.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..util.errors import UserError
from .collect import RunRecord, combo_settings
from .part import Part, ReportContext, report_part
from .stats import paired_diff

MIN_COMBINATIONS = 8
SIZE = "log10 train size"


@dataclass(frozen=True)
class Sample:
    combo: tuple  # (dataset, arch, train_size, label_noise, settings)
    features: dict[str, Any]
    gain: float  # mean of method − reference over common seeds, points
    seeds: int


@dataclass
class Node:
    n: int  # combinations in this node
    mean: float  # their mean gain, points
    feature: str | None = None  # None for a leaf
    threshold: float | None = None
    left: Node | None = None  # the samples with feature <= threshold
    right: Node | None = None
    left_text: str = ""  # the condition of each branch in words
    right_text: str = ""

    @property
    def leaf(self) -> bool:
        return self.feature is None


@dataclass
class Tree:
    method: str
    reference: str
    samples: list[Sample]
    fitted: bool
    reason: str = ""  # why not, when not fitted
    root: Node | None = None
    features: list[str] = field(default_factory=list)  # the columns the tree could split on
    first_split: str = ""

    @property
    def target(self) -> str:
        return f"{self.method} − {self.reference}"

    def leaves(self) -> list[tuple[list[str], int, float]]:
        """(conditions from the root, n, mean gain) of every leaf, left to right."""
        out: list[tuple[list[str], int, float]] = []

        def walk(node: Node, path: list[str]) -> None:
            if node.leaf:
                out.append((path, node.n, node.mean))
                return
            walk(node.left, path + [node.left_text])
            walk(node.right, path + [node.right_text])
        if self.root is not None:
            walk(self.root, [])
        return out


def dataset_facts(name: str) -> tuple[int | None, int | None]:
    """(classes, default resolution) from the dataset registry; (None, None) if it is unknown."""
    from ..data import check_dataset
    try:
        info = check_dataset(name)
    except (UserError, OSError, ValueError):
        return None, None
    return info.num_classes, info.resolution


def samples(runs: Iterable[RunRecord], extra_axes: Sequence[str] = (), method: str = "lw",
            reference: str = "baseline",
            facts: Callable[[str], tuple[int | None, int | None]] = dataset_facts) -> list[Sample]:
    """One sample per combination where both methods finished on a common seed."""
    acc: dict[tuple, dict[str, dict[int, RunRecord]]] = {}
    for r in runs:
        if r.status != "finished" or r.test_acc is None or r.method not in (method, reference):
            continue
        a = r.axes
        combo = (a["dataset"], a["arch"], a["train_size"], a["label_noise"], combo_settings(r, extra_axes))
        acc.setdefault(combo, {}).setdefault(r.method, {})[r.seed] = r
    out = []
    for combo in sorted(acc, key=repr):
        mine, ref = acc[combo].get(method, {}), acc[combo].get(reference, {})
        common = sorted(set(mine) & set(ref))
        if not common:
            continue
        d = paired_diff([mine[s].test_acc for s in common], [ref[s].test_acc for s in common])
        out.append(Sample(combo, _features(combo, mine[common[0]], facts), 100 * d.mean, d.n))
    return out


def _features(combo: tuple, run: RunRecord, facts) -> dict[str, Any]:
    dataset, arch, size, noise, settings = combo
    f: dict[str, Any] = {}
    if isinstance(size, (int, float)) and size > 0:
        f[SIZE] = math.log10(size)
    f["arch"], f["dataset"] = arch, dataset
    classes, resolution = facts(dataset)
    f["classes"] = classes
    f["resolution"] = run.config.get("resolution") or resolution
    f["label noise"] = float(noise)
    rounds = run.axes.get("rounds", run.config.get("rounds"))
    epochs = run.axes.get("epochs", run.config.get("epochs"))
    f["rounds"], f["epochs"] = rounds, epochs
    if rounds is not None and epochs is not None:
        f["epochs trained"] = (rounds + 1) * epochs
    for k, v in settings:
        if k not in ("rounds", "epochs", "resolution"):
            f[k] = v
    return f


def _columns(samples: list[Sample]) -> tuple[list[str], list[list[float]], dict[str, str]]:
    """Numeric features as they are, strings and booleans one-hot; constant or partly missing
    features are left out (they cannot split anything). A feature of two levels is one column
    (the second level); the third return value names the level its 0 stands for."""
    names = list(dict.fromkeys(k for s in samples for k in s.features))
    cols: list[tuple[str, list[float]]] = []
    other: dict[str, str] = {}
    for k in names:
        vals = [s.features.get(k) for s in samples]
        if any(v is None for v in vals) or len({repr(v) for v in vals}) < 2:
            continue
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
            cols.append((k, [float(v) for v in vals]))
            continue
        levels = sorted({str(v) for v in vals})
        if len(levels) == 2:
            other[f"{k} = {levels[1]}"] = levels[0]
            levels = levels[1:]
        for level in levels:
            cols.append((f"{k} = {level}", [1.0 if str(v) == level else 0.0 for v in vals]))
    if not cols:
        return [], [], {}
    return [c for c, _ in cols], [list(row) for row in zip(*(v for _, v in cols), strict=True)], other


def fit(samples: list[Sample], method: str = "lw", reference: str = "baseline",
        min_combinations: int = MIN_COMBINATIONS) -> Tree:
    tree = Tree(method, reference, samples, fitted=False)
    if len(samples) < min_combinations:
        tree.reason = (f"not fitted: {len(samples)} combination{'s' if len(samples) != 1 else ''} with both "
                       f"{method} and {reference} finished; a tree needs at least {min_combinations}, or it draws "
                       "noise as structure")
        return tree
    names, X, other = _columns(samples)
    if not names:
        tree.reason = "not fitted: no feature varies among the combinations"
        return tree
    from sklearn.tree import DecisionTreeRegressor
    y = [s.gain for s in samples]
    depth = 2 if len(samples) < 30 else 3
    model = DecisionTreeRegressor(max_depth=depth, min_samples_leaf=2, random_state=0).fit(X, y)
    t = model.tree_

    def node(i: int) -> Node:
        n, mean = int(t.n_node_samples[i]), float(t.value[i].ravel()[0])
        if t.children_left[i] == t.children_right[i]:  # a leaf
            return Node(n, mean)
        feat, thr = names[t.feature[i]], float(t.threshold[i])
        lt, rt = _branch_texts(feat, thr, other.get(feat))
        return Node(n, mean, feat, thr, node(t.children_left[i]), node(t.children_right[i]), lt, rt)

    tree.root, tree.features, tree.fitted = node(0), names, True
    tree.first_split = first_split_text(tree)
    return tree


def _branch_texts(feature: str, threshold: float, other: str | None = None) -> tuple[str, str]:
    if " = " in feature:  # one-hot: <= 0.5 is "not this level" (the other level, if there are two)
        k, level = feature.split(" = ", 1)
        return (f"{k} = {other}" if other is not None else f"{k} ≠ {level}"), f"{k} = {level}"
    if feature == SIZE:
        size = 10 ** threshold
        return f"train size ≤ {size:,.0f}", f"train size > {size:,.0f}"
    return f"{feature} ≤ {threshold:g}", f"{feature} > {threshold:g}"


def first_split_text(tree: Tree) -> str:
    """The first split in one sentence, with n and mean gain on each side."""
    r = tree.root
    if r is None:
        return ""
    if r.leaf:
        return (f"The tree does not split: no feature separates the combinations' {tree.target} gains "
                f"(mean {r.mean:+.2f} points over {r.n}).")
    where = (f"the training-set size at about {10 ** r.threshold:,.0f} examples" if r.feature == SIZE
             else f"{r.feature.split(' = ')[0]} ({r.left_text} or {r.right_text.split(' = ', 1)[1]})"
             if " = " in r.feature and " = " in r.left_text
             else f"{r.feature.split(' = ')[0]} ({r.right_text} or not)" if " = " in r.feature
             else f"{r.feature} at {r.threshold:g}")
    return (f"The first split is on {where}: {tree.target} is {r.left.mean:+.2f} points on average where "
            f"{r.left_text} (n={r.left.n} combinations) and {r.right.mean:+.2f} where {r.right_text} "
            f"(n={r.right.n}).")


def plot(tree: Tree, path: Path) -> Path | None:
    """The fitted tree: each split names its condition, each leaf its n and mean gain."""
    if not tree.fitted or tree.root is None:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    leaves = tree.leaves()
    depth = max(len(p) for p, _, _ in leaves)
    fig, ax = plt.subplots(figsize=(max(6.0, 2.3 * len(leaves)), 1.7 * (depth + 1) + 0.6))
    ax.axis("off")
    pos: dict[int, tuple[float, float]] = {}
    counter = iter(range(len(leaves)))

    def place(node: Node, level: int) -> float:
        if node.leaf:
            x = float(next(counter))
        else:
            x = (place(node.left, level + 1) + place(node.right, level + 1)) / 2
        pos[id(node)] = (x, -level)
        return x

    place(tree.root, 0)
    box = {"boxstyle": "round,pad=0.4", "fc": "white", "ec": "0.4"}

    def draw(node: Node) -> None:
        x, y = pos[id(node)]
        if node.leaf:
            color = "#d8ecd8" if node.mean > 0 else "#f3d9d9" if node.mean < 0 else "white"
            ax.text(x, y, f"n={node.n}\n{node.mean:+.2f} points", ha="center", va="center", fontsize="small",
                    bbox={**box, "fc": color})
            return
        ax.text(x, y, f"{node.left_text}?\nn={node.n}, mean {node.mean:+.2f}", ha="center", va="center",
                fontsize="small", bbox=box)
        for child, label in ((node.left, "yes"), (node.right, "no")):
            cx, cy = pos[id(child)]
            ax.annotate("", (cx, cy + 0.25), (x, y - 0.25), arrowprops={"arrowstyle": "-", "color": "0.5"})
            ax.text((x + cx) / 2, (y + cy) / 2, label, ha="center", va="center", fontsize="x-small", color="0.3")
            draw(child)

    draw(tree.root)
    ax.set_xlim(-0.7, len(leaves) - 0.3)
    ax.set_ylim(-depth - 0.6, 0.6)
    ax.set_title(f"Gain {tree.target} (test accuracy points, mean over seeds) per combination: "
                 f"{len(tree.samples)} combinations", fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def leaf_text(conditions: list[str], n: int, mean: float) -> str:
    where = " and ".join(conditions) if conditions else "all combinations"
    return f"{where}: n={n} combination{'s' if n != 1 else ''}, mean gain {mean:+.2f} points"


def tree_part(col, plots: Path, method: str = "lw", references: Sequence[str] = ("baseline", "long"),
              min_combinations: int = MIN_COMBINATIONS) -> Part | None:
    """The report's Decision tree: one tree per reference the study has finished runs of (None
    without the method's runs); drawn with n and mean gain per leaf, or the reason it is not fitted."""
    finished = {r.method for r in col.runs if r.status == "finished"}
    refs = [ref for ref in references if ref in finished]
    if method not in finished or not refs:
        return None
    lines, figures = [], []
    for ref in refs:
        t = fit(samples(col.runs, col.extra_axes, method, ref), method, ref, min_combinations)
        if not t.fitted:
            lines.append(f"**{t.target}**: {t.reason}.")
            continue
        lines.append(f"**{t.target}** ({len(t.samples)} combinations): {t.first_split}")
        lines += [f"{t.target} leaf: " + leaf_text(*leaf) for leaf in t.leaves()]
        path = plot(t, plots / f"tree_{method}_vs_{ref}.png")
        if path is not None:
            figures.append((path, f"Decision tree of the gain {t.target} per combination"))
    intro = (f"As the paper's Figure 3 did (it split the results at about 35K training examples), a shallow "
             f"regression tree (scikit-learn CART, depth 2, 3 from 30 combinations on, at least 2 per leaf) is "
             f"fitted to the gain of {method} over each reference per combination (mean over common seeds, "
             "test-accuracy points), on the features the study varies: log10 training size, architecture, dataset, "
             "classes, resolution, label noise, the budget and every other extra axis. With fewer than "
             f"{min_combinations} combinations no tree is fitted.")
    return Part("Decision tree", intro, plots=figures, lines=lines)


@report_part("tree", 50)
def _tree_part(ctx: ReportContext) -> Part | None:
    return tree_part(ctx.col, ctx.plots)
