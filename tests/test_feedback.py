"""Thumbs change what comes next: in the same conversation (rejected never again, neighbours of
liked items up, of disliked items down) and, aggregated over conversations with a minimum count,
for everyone."""
from __future__ import annotations

import json

import pytest

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
# g3's near-duplicate (hash-embedding similarity 0.94 >= the 0.8 threshold; g4 is only 0.44 similar)
TWIN = {"id": "g6", "title": "Dragon Card Battle Deluxe", "description": "fantasy card game dragons"}


def _rec(make_services, tmp_path, rows=GAMES, **weights):
    services = make_services(write_jsonl(tmp_path / "games.jsonl", rows))
    services.ranker.weights = RankWeights(popularity=0.0, **weights)
    return Recommender(services)


def _ids(result):
    return [r.item.id for r in result.recommendations]


def test_item_thumbs_down_is_never_recommended_again_and_demotes_only_near_duplicates(make_services, tmp_path):
    rec = _rec(make_services, tmp_path, GAMES + [TWIN], shown_penalty=0.0, shown_again=0.0, rejected_similar=1.0)
    state = rec.new_state()
    first = rec.run_turn(state, "a fantasy card game with dragons")
    assert _ids(first)[:2] in (["g3", "g6"], ["g6", "g3"])
    rec.feedback(state, -1, item_id="g3")
    for _ in range(3):  # never again in this conversation, however often the user asks
        again = rec.run_turn(state, "a fantasy card game with dragons")
        assert "g3" not in _ids(again) and "g3" not in [c.item.id for c in again.candidates]
    before = {c.item.id: c for c in first.candidates}
    after = {c.item.id: c for c in again.candidates}
    assert after["g6"].signals["rejected"] == pytest.approx(-1.0)  # the near-duplicate loses rejected_similar
    assert after["g6"].score == pytest.approx(before["g6"].score - 1.0)
    for other in ("g1", "g2", "g4", "g5"):  # a merely similar item (g4, same theme) keeps its score
        assert after[other].signals.get("rejected", 0.0) == 0.0
        assert after[other].score == pytest.approx(before[other].score)
    assert _ids(again)[0] == "g4"  # so the next-best dragon game now leads, ahead of the near-duplicate


def test_thumbs_down_then_other_options_keeps_the_request(make_services, tmp_path):
    # "any other options?" says nothing new: the dragons request still drives the ranking
    rec = _rec(make_services, tmp_path, shown_penalty=0.0)
    state = rec.new_state()
    first = rec.run_turn(state, "a fantasy game with dragons")
    rec.feedback(state, -1, item_id=_ids(first)[0])
    follow = rec.run_turn(state, "Could you show me some other options?")
    assert _ids(follow)[0] == _ids(first)[1]
    assert follow.candidates[0].signals["dense"] == first.candidates[1].signals["dense"]


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


def test_the_log_names_which_suggestions_were_liked_on_which_turn(make_services, tmp_path):
    from chatrec.store import LikedTurn

    services = make_services(write_jsonl(tmp_path / "games.jsonl", GAMES), n_recommendations=2)
    rec = Recommender(services)
    state = rec.new_state()
    first = rec.run_turn(state, "a fantasy card game with dragons")
    second = rec.run_turn(state, "no dragons, a wooden chess board instead")
    assert not set(_ids(first)) & set(_ids(second))
    rec.feedback(state, 1, message_index=0)  # counts for both items of the first answer...
    rec.feedback(state, -1, item_id=_ids(first)[1])  # ...except the one voted down afterwards
    rec.feedback(state, -1, item_id=_ids(second)[0])
    rec.feedback(state, 1, item_id=_ids(second)[0])  # the latest vote wins
    other = rec.new_state()
    rec.run_turn(other, "a chess board")  # no votes: nothing to learn
    assert services.store.liked_turns() == [
        LikedTurn(state.conversation_id, 1, [("user", "a fantasy card game with dragons")], [_ids(first)[0]]),
        LikedTurn(state.conversation_id, 2, [("user", "a fantasy card game with dragons"), ("assistant", first.reply),
                                             ("user", "no dragons, a wooden chess board instead")], [_ids(second)[0]])]


@pytest.mark.parametrize("likes, learn, leads", [(30, True, "g2"), (29, True, "g1"), (30, False, "g1")])
def test_liked_suggestions_become_learned_priors_after_a_restart(make_services, tmp_path, likes, learn, leads):
    """From 30 liked suggestions in the log on, a restarted app ranks what people who asked alike
    liked higher (learned priors); below that, or with learning off, nothing changes."""
    path = write_jsonl(tmp_path / "games.jsonl", GAMES)
    rec = Recommender(make_services(path, n_recommendations=2))
    for _ in range(likes):
        state = rec.new_state()
        cards = _ids(rec.run_turn(state, "a chess board game"))
        assert cards == ["g1", "g2"]  # the wooden set leads on words alone
        rec.feedback(state, 1, item_id="g2")  # but people keep choosing the travel set
    assert _ids(rec.run_turn(rec.new_state(), "a chess board game"))[0] == "g1"  # priors are read at start-up
    restarted = Recommender(make_services(path, n_recommendations=2, learn_from_logs=learn))
    assert (restarted.s.ranker.target_prior is not None) == (likes >= 30 and learn)
    assert _ids(restarted.run_turn(restarted.new_state(), "a chess board game"))[0] == leads
