"""The gradient-health report for `snnspec train --grad-report`: averaged over batches, as a table,
and as a figure (gradient norm per layer against depth, one line per epoch)."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from ..files import write_atomic
from .health import HealthReport, LayerHealth
from .health_warn import gradient_warning
from .model import SetupError

FIELDS = ("weight_grad", "current_grad", "spike_rate", "silent", "saturated", "surrogate")


def merge(reports: list[HealthReport]) -> HealthReport:
    """The mean of each field over the batches' reports (None where a batch had none)."""
    layers = []
    for rows in zip(*(r.layers for r in reports)):
        values: dict[str, Any] = {}
        for field in FIELDS:
            got = [v for v in (getattr(r, field) for r in rows) if v is not None]
            values[field] = statistics.fmean(got) if got else None
        layers.append(LayerHealth(rows[0].layer, rows[0].depth, **values))
    hints = reports[0].hints
    return HealthReport(layers, gradient_warning(layers, hints), hints)


def table(report: HealthReport, title: str) -> Any:
    """A rich Table: one row per layer."""
    from rich.box import SIMPLE_HEAD
    from rich.table import Table

    t = Table(title=title, box=SIMPLE_HEAD, title_justify="left", pad_edge=False)
    for name in ("#", "layer", "|grad W|", "|grad I|", "rate", "silent", "saturated", "surrogate"):
        t.add_column(name, justify="left" if name == "layer" else "right")

    def sci(v: float | None) -> str:
        return "-" if v is None else f"{v:.2e}"

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{v:.1%}"

    for la in report.layers:
        t.add_row(str(la.depth), la.layer, sci(la.weight_grad), sci(la.current_grad),
                  "-" if la.spike_rate is None else f"{la.spike_rate:.3f}", pct(la.silent), pct(la.saturated),
                  "-" if la.surrogate is None else f"{la.surrogate:.3f}")
    return t


def plot(epochs: list[dict[str, Any]], network: str, path: Path) -> Path:
    """Save the figure: weight and input-current gradient norms per layer against depth (log scale),
    one line per recorded epoch (`epochs`: metrics.json's per-epoch records)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise SetupError("plots need matplotlib: pip install 'snnspec[plot]'") from e
    fig = Figure(figsize=(10, 4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2, sharex=True)
    for ax, field, label in zip(axes, ("weight_grad", "current_grad"), ("weights", "input current")):
        for record in epochs:
            layers = record.get("grad_report", {}).get("layers", [])
            points = [(la["depth"], la[field]) for la in layers if la[field]]
            if points:
                ax.plot(*zip(*points), marker="o", markersize=3, label=f"epoch {record['epoch']}")
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("layer (depth)")
        ax.set_title(f"gradient norm of the {label}", fontsize=10, loc="left")
        if ax.lines:
            ax.legend(fontsize=8, frameon=False)
    fig.suptitle(f"{network}: gradient health", fontsize=11)
    write_atomic(path, lambda f: fig.savefig(f, format=path.suffix.lstrip(".").lower() or "png", dpi=110))
    return path
