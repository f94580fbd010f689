"""Thumbs change what comes next: in the same conversation (rejected never again, neighbours of
liked items up, of disliked items down) and, aggregated over conversations with a minimum count,
for everyone."""
from __future__ import annotations

import json

from chatrec.recommender import Recommender
from chatrec.ranker import RankWeights
from conftest import write_jsonl

GAMES = [
    {"id": "g1", "title": "Chess Board Classic", "description": "wooden chess board game strategy"},
    {"id": "g2", "title": "Chess Travel Set", "description": "magnetic chess board game strategy travel"},
    {"id": "g3", "title": "Dragon Card Battle", "description": "fantasy card game dragons"},
    {"id": "g4", "title": "Dragon Dice Quest", "description": "fantasy dice game dragons"},
    {"id": "g5", "title": "Marble Run Tower", "description": "marble run construction"},
]


def _rec(make_services, tmp_path, **weights):
    services = make_services(write_jsonl(tmp_path / "games.jsonl", GAMES))
    services.ranker.weights = RankWeights(popularity=0.0, **weights)
    return Recommender(services)


def _ids(result):
    return [r.item.id for r in result.recommendations]


def test_item_thumbs_down_is_never_recommended_again_and_demotes_neighbours(make_services, tmp_path):
    rec = _rec(make_services, tmp_path, shown_penalty=0.0)
    state = rec.new_state()
    first = rec.run_turn(state, "a fantasy game with dragons")
    rejected, twin = _ids(first)[:2]
    assert {rejected, twin} == {"g3", "g4"}
    rec.feedback(state, -1, item_id=rejected)
    second = rec.run_turn(state, "a fantasy game with dragons")
    assert rejected not in _ids(second)
    before = {c.item.id: c for c in first.candidates}
    after = {c.item.id: c for c in second.candidates}
    assert after[twin].signals["rejected"] < -0.1  # its near-twin is pushed down...
    assert after[twin].score < before[twin].score - 0.1
    assert after["g5"].signals.get("rejected", 0.0) == 0.0  # ...an unrelated item is not


def test_item_thumbs_up_promotes_similar_items(make_services, tmp_path):
    rec = _rec(make_services, tmp_path)
    plain = rec.run_turn(rec.new_state(), "a game")
    state = rec.new_state()
    rec.run_turn(state, "a game")
    rec.feedback(state, +1, item_id="g1")
    after = rec.run_turn(state, "a game")
    assert state.liked == ["g1"]
    assert _ids(plain).index("g2") > 1
    assert [i for i in _ids(after) if i != "g1"][0] == "g2"  # the other chess set now leads the rest


def test_message_thumbs_count_for_every_item_of_the_message(make_services, tmp_path):
    rec = _rec(make_services, tmp_path)
    rec.s.settings = rec.s.settings.replace(n_recommendations=2)
    state = rec.new_state()
    first = rec.run_turn(state, "a fantasy game with dragons")
    shown = _ids(first)
    assert set(shown) == {"g3", "g4"}
    rec.feedback(state, -1, message_index=0)
    assert sorted(state.rejected) == ["g3", "g4"]
    second = rec.run_turn(state, "a fantasy game with dragons")
    assert not set(_ids(second)) & {"g3", "g4"}
    rec.feedback(state, +1, message_index=1)
    assert sorted(state.liked) == sorted(_ids(second))


def test_feedback_prior_across_conversations_needs_the_minimum_count(make_services, tmp_path):
    rec = _rec(make_services, tmp_path, feedback=5.0, feedback_min_count=3)
    for n in range(3):
        state = rec.new_state()
        rec.run_turn(state, "a marble run")
        rec.feedback(state, -1, item_id="g5")
        prior = float(rec.s.ranker.feedback_prior[rec.s.catalog.position["g5"]])
        assert prior == (0.0 if n < 2 else -0.75)  # (0 - 3) / (3 + 1) once three people agree
    fresh = rec.new_state()
    assert _ids(rec.run_turn(fresh, "a marble run"))[-1] == "g5"  # a new conversation sees the prior
    # the incremental prior equals what a restart computes from the store
    rec.s.ranker.set_feedback(rec.s.store.item_feedback())
    assert float(rec.s.ranker.feedback_prior[rec.s.catalog.position["g5"]]) == -0.75
    assert json.dumps(rec.s.store.item_feedback()) == json.dumps({"g5": [0, 3]})
