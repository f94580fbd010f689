"""Numbers for the Insights tab, computed from the logged tables as pandas DataFrames.

Per day: conversations and turns, thumbs-up rate (messages and items), latency p50/p95 and the
share of LM item mentions that matched no catalog item (ungrounded, so never shown as cards).
Overall: top liked and most rejected items (item thumbs), and the categories and budgets users
asked for (from ``turns.state_json``, counted once per conversation). Pure functions of the
frames, so tests feed them hand-made rows. Plotting lives in the UI; nothing here draws.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from .catalog import Catalog
    from .store import Store

Frames = dict[str, pd.DataFrame]


@dataclass
class Insights:
    summary: dict[str, float | int | None]
    activity: pd.DataFrame  # day, conversations, turns
    thumbs: pd.DataFrame  # day, target (message|item), up_rate, votes
    latency: pd.DataFrame  # day, p50_ms, p95_ms, turns
    grounding: pd.DataFrame  # day, mentions, ungrounded, ungrounded_share
    top_liked: pd.DataFrame  # item, id, up, down
    most_rejected: pd.DataFrame  # item, id, up, down
    categories: pd.DataFrame  # category, conversations
    budgets: pd.DataFrame  # budget, conversations
    notes: list[str] = field(default_factory=list)


def compute(store: "Store", catalog: "Catalog | None" = None) -> Insights:
    from .export import table_frames
    return from_frames(table_frames(store), _titler(catalog))


def from_frames(frames: Frames, title: Callable[[str], str] = str, top: int = 10) -> Insights:
    turns, feedback, mentions = frames["turns"], frames["feedback"], frames["mentions"]
    turns = turns.assign(day=_day(turns["created_at"]))
    feedback = feedback.assign(day=_day(feedback["created_at"]), up=feedback["value"] > 0)
    mentions = mentions.merge(turns[["id", "day"]].rename(columns={"id": "turn_id"}), on="turn_id", how="left")
    requests = _requests(turns)
    return Insights(
        summary=_summary(frames["conversations"], turns, feedback, mentions),
        activity=_activity(frames["conversations"], turns),
        thumbs=_thumbs(feedback),
        latency=_latency(turns),
        grounding=_grounding(mentions),
        top_liked=_leaderboard(feedback, title, by="up", top=top),
        most_rejected=_leaderboard(feedback, title, by="down", top=top),
        categories=_counts(requests, "category", top),
        budgets=_counts(requests, "budget", top),
    )


def _day(column: pd.Series) -> pd.Series:
    return pd.to_datetime(column).dt.strftime("%Y-%m-%d")


def _rate(flags: pd.Series) -> float | None:
    return float(flags.mean()) if len(flags) else None


def _summary(conversations: pd.DataFrame, turns: pd.DataFrame, feedback: pd.DataFrame,
             mentions: pd.DataFrame) -> dict[str, float | int | None]:
    latency = turns["latency_ms"].astype(float)
    ungrounded = int(mentions["item_id"].isna().sum())
    return {
        "conversations": len(conversations),
        "turns": len(turns),
        "failed_turns": int((turns["status"] != "ok").sum()),
        "votes": len(feedback),
        "message_up_rate": _rate(feedback.loc[feedback["target"] == "message", "up"]),
        "item_up_rate": _rate(feedback.loc[feedback["target"] == "item", "up"]),
        "mentions": len(mentions),
        "ungrounded": ungrounded,
        "ungrounded_share": ungrounded / len(mentions) if len(mentions) else None,
        "latency_p50_ms": float(np.percentile(latency, 50)) if len(latency) else None,
        "latency_p95_ms": float(np.percentile(latency, 95)) if len(latency) else None,
    }


def _activity(conversations: pd.DataFrame, turns: pd.DataFrame) -> pd.DataFrame:
    convs = _day(conversations["created_at"]).value_counts().rename("conversations")
    per_day = turns.groupby("day").size().rename("turns")
    out = pd.concat([convs, per_day], axis=1).fillna(0).astype(int).sort_index()
    return out.rename_axis("day").reset_index()


def _thumbs(feedback: pd.DataFrame) -> pd.DataFrame:
    if feedback.empty:
        return pd.DataFrame(columns=["day", "target", "up_rate", "votes"])
    grouped = feedback.groupby(["day", "target"])["up"]
    out = pd.DataFrame({"up_rate": grouped.mean(), "votes": grouped.size()}).reset_index()
    return out.sort_values(["day", "target"], ignore_index=True)


def _latency(turns: pd.DataFrame) -> pd.DataFrame:
    if turns.empty:
        return pd.DataFrame(columns=["day", "p50_ms", "p95_ms", "turns"])
    grouped = turns.groupby("day")["latency_ms"]
    return pd.DataFrame({"p50_ms": grouped.quantile(0.5), "p95_ms": grouped.quantile(0.95),
                         "turns": grouped.size()}).reset_index()


def _grounding(mentions: pd.DataFrame) -> pd.DataFrame:
    if mentions.empty:
        return pd.DataFrame(columns=["day", "mentions", "ungrounded", "ungrounded_share"])
    flagged = mentions.assign(ungrounded=mentions["item_id"].isna())
    grouped = flagged.groupby("day")["ungrounded"]
    out = pd.DataFrame({"mentions": grouped.size(), "ungrounded": grouped.sum().astype(int)}).reset_index()
    return out.assign(ungrounded_share=out["ungrounded"] / out["mentions"])


def _leaderboard(feedback: pd.DataFrame, title: Callable[[str], str], by: str, top: int) -> pd.DataFrame:
    """Item thumbs only: a thumbs on a message rates the whole answer, not one item."""
    items = feedback[(feedback["target"] == "item") & feedback["item_id"].notna()]
    if items.empty:
        return pd.DataFrame(columns=["item", "id", "up", "down"])
    counts = items.groupby("item_id")["value"].agg(up=lambda v: int((v > 0).sum()),
                                                   down=lambda v: int((v < 0).sum()))
    other = "down" if by == "up" else "up"
    counts = counts[counts[by] > 0].sort_values([by, other], ascending=[False, True]).head(top)
    out = counts.rename_axis("id").reset_index()
    out.insert(0, "item", [title(i) for i in out["id"]])
    return out[["item", "id", "up", "down"]]


def _requests(turns: pd.DataFrame) -> pd.DataFrame:
    """(conversation, category, budget) per turn, from what the tracker understood."""
    rows = []
    for conv, raw in zip(turns["conversation_id"], turns["state_json"]):
        try:
            state = json.loads(raw or "{}")
        except (TypeError, ValueError):
            continue  # a hand-edited or truncated row must not break the dashboard
        if isinstance(state, dict):
            rows.append({"conversation_id": conv, "category": state.get("category"), "budget": state.get("budget")})
    return pd.DataFrame(rows, columns=["conversation_id", "category", "budget"])


def _counts(requests: pd.DataFrame, column: str, top: int) -> pd.DataFrame:
    pairs = requests[["conversation_id", column]].dropna().drop_duplicates()
    # groupby sorts names, the stable sort keeps that order among equal counts: deterministic ties
    counts = pairs.groupby(column).size().sort_values(ascending=False, kind="stable").head(top)
    return counts.rename("conversations").rename_axis(column).reset_index()


def _titler(catalog: "Catalog | None") -> Callable[[str], str]:
    if catalog is None:
        return str
    return lambda item_id: catalog.by_id[item_id].title if item_id in catalog.by_id else f"{item_id} (not in catalog)"
