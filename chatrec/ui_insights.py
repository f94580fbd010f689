"""The Insights tab: KPIs, plots and tables from ``insights.py``, exports, and a conversation viewer.

``InsightsPanel`` holds the shared services and a folder for export files; its methods return
plain values (HTML, DataFrames, a matplotlib figure, file paths) so tests call them directly, and
:meth:`InsightsPanel.build` lays out the Gradio components. It reads the store only; nothing on
this tab changes data. Access control is the app-wide ``--auth`` (see ``app.py``).
"""
from __future__ import annotations

import html
import re
import shutil
import tempfile
import time
import weakref
from pathlib import Path
from typing import Any

import pandas as pd

from .export import export_zip
from .insights import Insights, compute
from .services import Services

_BOLD = re.compile(r"\*\*(.+?)\*\*|\[\[(.+?)\]\]")
EXPORT_TTL_S = 600  # older export files in the app's export folder are pruned on each refresh


class InsightsPanel:
    def __init__(self, services: Services, export_dir: Path | None = None):
        self.services = services
        if export_dir is None:  # a folder of our own, removed when the panel goes or the app exits
            export_dir = tempfile.mkdtemp(prefix="chatrec-exports-")
            weakref.finalize(self, shutil.rmtree, export_dir, ignore_errors=True)
        self.export_dir = Path(export_dir)

    # -- data ------------------------------------------------------------------------------
    def compute(self) -> Insights:
        return compute(self.services.store, self.services.catalog)

    def exports(self) -> tuple[Path, Path]:
        self.export_dir.mkdir(parents=True, exist_ok=True)
        cutoff = time.time() - EXPORT_TTL_S
        for old in self.export_dir.glob("chatrec-export-*"):
            if old.is_file() and old.stat().st_mtime < cutoff:
                old.unlink(missing_ok=True)
        store, catalog = self.services.store, self.services.catalog
        return (export_zip(store, "csv", self.export_dir, catalog),
                export_zip(store, "parquet", self.export_dir, catalog))

    def conversation_choices(self) -> list[tuple[str, str]]:
        out = []
        for c in self.services.store.conversation_list():
            first = c["first_message"] or ""
            first = first if len(first) <= 60 else first[:57] + "…"
            out.append((f"{c['created_at']:%Y-%m-%d %H:%M} · {c['n_turns']} turn(s) · {first}", c["id"]))
        return out

    def replay_html(self, conversation_id: str | None) -> str:
        """Every turn of one conversation with its cards and the thumbs it received, escaped."""
        if not conversation_id:
            return '<div class="panel-hint">Pick a conversation to replay it.</div>'
        store, catalog = self.services.store, self.services.catalog
        votes = store.feedback_rows(conversation_id)
        turns = store.turns(conversation_id)
        if not turns:
            return '<div class="panel-hint">This conversation has no turns.</div>'
        return "".join(_turn_html(t, votes, catalog) for t in turns)

    # -- rendering -------------------------------------------------------------------------
    def refresh(self) -> dict[str, Any]:
        ins = self.compute()
        csv_zip, parquet_zip = self.exports()
        return {"kpis": kpi_html(ins), "timeline": timeline_figure(ins), "requests": requests_figure(ins),
                "categories": ins.categories, "budgets": ins.budgets, "top_liked": _table(ins.top_liked), "most_rejected": _table(ins.most_rejected),
                "csv": str(csv_zip), "parquet": str(parquet_zip), "conversations": self.conversation_choices()}

    def build(self) -> tuple[Any, list[Any]]:
        """Lay out the tab inside the current Blocks/Tab context; return (refresh fn, its outputs)."""
        import gradio as gr

        with gr.Row():
            gr.HTML('<div class="panel-title">How chatrec is doing</div>'
                    '<div class="panel-hint">Computed from the conversation log; refresh to update.</div>')
            refresh = gr.Button("↻ Refresh", elem_id="insights-refresh", scale=0, min_width=110, size="sm")
        kpis = gr.HTML(elem_id="insights-kpis")
        timeline = gr.Plot(show_label=False, elem_id="insights-timeline", format="png")
        requests = gr.Plot(show_label=False, elem_id="insights-requests", format="png")
        with gr.Row():
            widths = ["76%", "12%", "12%"]
            top_liked = gr.Dataframe(label="Top liked items (item 👍)", elem_id="top-liked", interactive=False,
                                     column_widths=widths, wrap=True)
            most_rejected = gr.Dataframe(label="Most rejected items (item 👎)", elem_id="most-rejected",
                                         interactive=False, column_widths=widths, wrap=True)
        with gr.Row():
            csv_btn = gr.DownloadButton("⬇ Export CSV (zip)", elem_id="export-csv", variant="secondary")
            parquet_btn = gr.DownloadButton("⬇ Export Parquet (zip)", elem_id="export-parquet", variant="secondary")
        gr.HTML('<div class="panel-title">Conversation viewer</div>')
        picker = gr.Dropdown(label="Conversation", choices=[], elem_id="conv-picker", interactive=True)
        replay = gr.HTML(self.replay_html(None), elem_id="conv-replay")

        outputs = [kpis, timeline, requests, top_liked, most_rejected, csv_btn, parquet_btn, picker]

        def on_refresh():
            data = self.refresh()
            return [data["kpis"], data["timeline"], data["requests"], data["top_liked"],
                    data["most_rejected"], data["csv"], data["parquet"],
                    gr.Dropdown(choices=data["conversations"])]

        refresh.click(on_refresh, outputs=outputs, concurrency_id="insights", concurrency_limit=2)
        picker.change(self.replay_html, inputs=picker, outputs=replay)
        return on_refresh, outputs


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def _ms(value: float | None) -> str:
    return "–" if value is None else (f"{value:,.0f} ms" if value < 1000 else f"{value / 1000:.1f} s")


def kpi_html(ins: Insights) -> str:
    s = ins.summary
    caught = "–" if not s["mentions"] else f"{s['ungrounded']} of {s['mentions']} ({_pct(s['ungrounded_share'])})"
    tiles = [("Conversations", f"{s['conversations']:,}"), ("Turns", f"{s['turns']:,}"),
             ("👍 rate, answers", _pct(s["message_up_rate"])), ("👍 rate, items", _pct(s["item_up_rate"])),
             ("Invented names caught", caught), ("Latency p50 / p95",
                                                 f"{_ms(s['latency_p50_ms'])} / {_ms(s['latency_p95_ms'])}"),
             ("Votes", f"{s['votes']:,}")]
    cells = "".join(f'<div class="kpi"><div class="kpi-value">{html.escape(v)}</div>'
                    f'<div class="kpi-label">{html.escape(k)}</div></div>' for k, v in tiles)
    return f'<div class="kpi-row">{cells}</div>'


def _figure(width: float, height: float):
    import matplotlib
    matplotlib.use("Agg")  # a server has no display; must precede any pyplot import
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def timeline_figure(ins: Insights):
    """Four small per-day panels; markers so a single day still shows."""
    fig = _figure(12, 5.6)
    axes = fig.subplots(2, 2)
    _series(axes[0, 0], ins.activity, ["conversations", "turns"], "Conversations and turns per day", "count")
    thumbs = (ins.thumbs.pivot(index="day", columns="target", values="up_rate").reset_index()
              if not ins.thumbs.empty else pd.DataFrame(columns=["day"]))
    _series(axes[0, 1], thumbs, [c for c in ("message", "item") if c in thumbs], "Thumbs-up rate per day", "share",
            percent=True, labels={"message": "answers", "item": "items"})
    _series(axes[1, 0], ins.latency, ["p50_ms", "p95_ms"], "Latency per turn", "ms",
            labels={"p50_ms": "p50", "p95_ms": "p95"})
    _series(axes[1, 1], ins.grounding, ["ungrounded_share"], "LM mentions not in the catalog (caught)", "share",
            percent=True, labels={"ungrounded_share": "ungrounded"})
    return fig


def _series(ax, frame: pd.DataFrame, columns: list[str], title: str, ylabel: str, percent: bool = False,
            labels: dict[str, str] | None = None) -> None:
    ax.set_title(title, fontsize=11, loc="left")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if frame.empty or not columns:
        ax.text(0.5, 0.5, "No data yet", ha="center", va="center", transform=ax.transAxes, color="#888")
        ax.set_xticks([])
        ax.set_yticks([])
        return
    for n, col in enumerate(columns):  # shrinking markers: equal values on a day stay visible as rings
        ax.plot(frame["day"], frame[col].astype(float), marker="os^"[n % 3], markersize=9 - 3 * n,
                label=(labels or {}).get(col, col))
    ax.set_ylabel(ylabel, fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    ax.tick_params(labelsize=8)
    if percent:
        ax.set_ylim(-0.02, 1.02)
        ax.yaxis.set_major_formatter(matplotlib_percent())
    else:
        top = float(frame[columns].astype(float).max().max())
        ax.set_ylim(0, top * 1.2 if top > 0 else 1)  # headroom: a point at the top edge is hard to see
    ax.legend(fontsize=8, frameon=False)


def requests_figure(ins: Insights):
    """What users asked for: categories and budgets, counted once per conversation."""
    fig = _figure(12, 3.2)
    for ax, frame, column, title in zip(fig.subplots(1, 2), (ins.categories, ins.budgets),
                                        ("category", "budget"), ("Requested categories", "Requested budgets")):
        ax.set_title(title, fontsize=11, loc="left")
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        if frame.empty:
            ax.text(0.5, 0.5, "No data yet", ha="center", va="center", transform=ax.transAxes, color="#888")
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        labels = [v if len(v) <= 34 else v[:33] + "…" for v in frame[column].astype(str)][::-1]
        ax.barh(labels, frame["conversations"][::-1], color="#6366f1", height=0.6)
        pad = max(0, 5 - len(labels)) / 2  # room for five bars: two bars are as thin as five
        ax.set_ylim(-0.5 - pad, len(labels) - 0.5 + pad)
        ax.set_xlim(0, float(frame["conversations"].max()) * 1.15)
        ax.set_xlabel("conversations", fontsize=9)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.tick_params(labelsize=8)
        ax.grid(axis="x", alpha=0.3)
    return fig


def matplotlib_percent():
    from matplotlib.ticker import PercentFormatter
    return PercentFormatter(1.0)


def _table(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.drop(columns=["id"]).rename(columns={"item": "Item", "up": "👍", "down": "👎"})
    return out if not out.empty else pd.DataFrame({"Item": ["No item votes yet"], "👍": [""], "👎": [""]})


def _turn_html(turn, votes, catalog) -> str:
    e = html.escape
    message_votes = [v.value for v in votes if v.target == "message" and v.turn_id == turn.id]
    item_votes: dict[str, list[int]] = {}
    for v in votes:
        if v.target == "item" and v.turn_id == turn.id and v.item_id:
            item_votes.setdefault(v.item_id, []).append(v.value)
    items = []
    for r in turn.recommendations:
        item = catalog.get(r.item_id)
        title = item.title if item else f"{r.item_id} (not in catalog)"
        marks = "".join("👍" if x > 0 else "👎" for x in item_votes.get(r.item_id, []))
        items.append(f"<li>{e(title)} <span class='replay-meta'>[{e(r.source)}]</span> {marks}</li>")
    reply = _BOLD.sub(lambda m: f"<b>{m.group(1) or m.group(2)}</b>", e(turn.reply))  # item names in bold
    verdict = "".join("👍" if x > 0 else "👎" for x in message_votes)
    meta = f"turn {turn.index} · {turn.created_at:%Y-%m-%d %H:%M:%S} · {turn.latency_ms:,.0f} ms · {turn.status}"
    return (f'<div class="replay-turn"><div class="replay-meta">{e(meta)} {verdict}</div>'
            f'<div class="replay-user">🧑 {e(turn.user_text)}</div>'
            f'<div class="replay-reply">🤖 {reply}</div><ul class="replay-items">{"".join(items)}</ul></div>')
