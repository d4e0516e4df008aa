"""What an analysis contributes to the report, declared beside its code.

    @register
    class Distance(Analysis):
        name = "distance"
        topic = Topic("Why: distance from initialization", "What the numbers mean ...")
        metrics = (Metric("relative_total", "||w - w0|| / ||w0||, all parameters", better="none"),
                   Metric("relative.{group}", "||w - w0|| / ||w0||, {group}"))

The report builds its one metric catalog from these declarations (report/catalog.py): every
declared metric gets a row in the "why" section's tables under its topic, a figure when the topic
has none of its own, and can be named by a claims test, with no report file edited.

A key with one `{placeholder}` declares a family (one number per group, per sigma, ...): the
members are the values found in the runs' analysis.json keys, in numeric order when every value is
a number, else in the runs' own order (groups bottom to top).
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping

Better = Literal["higher", "lower", "none"]
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Metric:
    key: str  # the analysis' own number ("q50") or a family ("linear_acc.{group}"); qualified in the catalog
    label: str  # what a reader sees; a family's label names its placeholder: "linear probe after {group} (%)"
    better: Better = "none"  # which direction is better, where one is (claims test the declared direction)
    percent: bool = False  # an accuracy or fraction: shown x100, differences in points
    also: tuple[str, ...] = ()  # other analyses' flat keys holding the same number, read where this one is absent
    fallback: str | None = None  # the per-round diagnostics key measuring the same thing (the final round's)
    topic: str | None = ""  # the why topic it is shown under: "" its analysis' own, None: catalog only
    where: Callable[[str], bool] | None = None  # which family members are shown (flatness: sigma > 0)
    compute: Callable[[Mapping[str, Any]], float | None] | None = None  # derived from a run's flat numbers
    source: Literal["analysis", "result", "diagnostics"] = "analysis"  # the report's built-ins read the others

    @property
    def placeholder(self) -> str | None:
        m = _PLACEHOLDER.search(self.key)
        return m.group(1) if m else None

    def pattern(self) -> re.Pattern:
        """Matches the flat keys of the family's members; the member is the placeholder's group."""
        name = self.placeholder
        head, _, tail = self.key.partition("{" + name + "}")
        return re.compile(f"^{re.escape(head)}(?P<{name}>.+){re.escape(tail)}$")

    def member(self, value: str) -> "Metric":
        """The family's metric for one placeholder value (key, label and aliases filled in)."""
        fill = {self.placeholder: value}
        return dataclasses.replace(self, key=self.key.format(**fill), label=self.label.format(**fill),
                                   also=tuple(a.format(**fill) for a in self.also), where=None,
                                   fallback=self.fallback.format(**fill) if self.fallback else None)


@dataclass(frozen=True)
class Topic:
    """A part of the report's "why" section, owned by one analysis (its name is the topic's key)."""

    title: str
    intro: str
    combos: Literal["all", "label_noise"] = "all"  # "label_noise": only combinations with label noise
