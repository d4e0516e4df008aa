"""Figures without pyplot: an Agg canvas per figure, so plotting never switches the caller's backend
and works on machines without a display."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import AnalysisResult


def figure(ncols: int = 1, width: float = 5.0, height: float = 3.8):
    # imported here: every CLI command imports the analyses registry, few of them plot
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height))
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    return fig, axes


def caption(result: AnalysisResult) -> str:
    info = result.info
    parts = [str(info.get("source") or "(in-memory model)")]
    if info.get("n") is not None:
        parts.append(f"n={info['n']} {info.get('examples', 'examples')}")
    if info.get("seed") is not None:
        parts.append(f"seed={info['seed']}")
    return " · ".join(parts)


def operator_axis(ax, rows: list[dict]) -> None:
    """Operators on the x axis, named by their module."""
    ax.set_xticks(range(len(rows)), [r["name"] for r in rows], rotation=70, fontsize=6)
    ax.set_xlabel("operator (execution order)")


def save(fig: Any, path: str | Path, result: AnalysisResult, title: str) -> None:
    fig.suptitle(f"{title}\n{caption(result)}", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    fig.savefig(str(path), dpi=110)
