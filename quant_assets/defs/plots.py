"""Matplotlib figures as markdown images for materialisation metadata."""

import base64
import io

import dagster as dg
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def figure() -> tuple[plt.Figure, plt.Axes]:
    return plt.subplots(figsize=(7, 3.5), dpi=90)


def as_markdown(fig: plt.Figure, title: str) -> dg.MetadataValue:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode()
    return dg.MetadataValue.md(f"![{title}](data:image/png;base64,{data})")
