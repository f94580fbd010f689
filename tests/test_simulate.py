"""The simulated shopper: honest utterances built from the target only, the success@k arithmetic,
thumbs-down items never coming back, and the command end to end (hash embedder, in-memory DB)."""
from __future__ import annotations

import argparse
import json
import re

import pytest
from sqlalchemy import func, select

from chatrec import cli, simulate
from chatrec.backends.fake import FakeBackend
from chatrec.catalog import Catalog, Item
from chatrec.errors import InputError
from chatrec.matching import TitleMatcher, normalize
from chatrec.recommender import Recommender
from chatrec.schema import Feedback
from chatrec.simulate import (FALLBACK, Outcome, Vocabulary, budget_bound, converse, make_shopper,
                              plan_utterances, summarize)
from chatrec.state import DialogueState, Message
from chatrec.tracker import Tracker
from conftest import SMALL_CATALOG, HashEmbedder, write_jsonl

# Every word a template can contribute; anything else a shopper says must come from its target.
TEMPLATE_WORDS = set(normalize(
    "Hi! I'm looking for something in. More precisely, ideally. My budget is under £. Ideally something by. "
    "Something with, please. It's for ages. Oh, and ideally with. " + FALLBACK).split())

EXTRA = [
    {"id": "c1", "title": "Wooden Teaching Clock", "description": "Learn to tell the time with movable hands.",
     "category": "Teaching Clocks", "price": 11.5,
     "attributes": {"brand": "Generic", "category_path": ["Baby & Toddler Toys", "Teaching Clocks"],
                    "recommended_age": "3 years and up"}},
    {"id": "c2", "title": "Teaching Clocks", "description": "A clock with big numbers.",
     "category": "Teaching Clocks", "price": 8.0,
     "attributes": {"brand": "Orchard", "category_path": ["Baby & Toddler Toys", "Teaching Clocks", "Clocks"]}},
]
CATALOG_ROWS = SMALL_CATALOG + EXTRA


def _catalog() -> Catalog:
    return Catalog([Item(**row) for row in CATALOG_ROWS])


def _target_words(item: Item) -> set[str]:
    a = item.attributes
    data = " ".join([item.title, item.description, item.category or "", " ".join(a.get("category_path", [])),
                     str(a.get("brand", "")), str(a.get("recommended_age", ""))])
    return set(normalize(data).split())


@pytest.mark.parametrize("item", _catalog().items, ids=lambda i: i.id)
def test_utterances_use_only_the_targets_own_data_and_never_name_it(item):
    catalog = _catalog()
    shopper = make_shopper(item, Vocabulary(catalog), TitleMatcher(catalog))
    assert shopper.lines, "every target has something to say"
    told = " ".join(shopper.lines)
    words = set(normalize(told).split())
    bound = str(budget_bound(item.price)) if item.price else None
    assert words - TEMPLATE_WORDS - _target_words(item) - {bound} == set()
    assert item.id not in told
    assert normalize(item.title) not in normalize(told)
    # at most two words that only the title/description could have supplied
    background = set(normalize(" ".join([item.category or "", *item.attributes.get("category_path", []),
                                         str(item.brand), str(item.attributes.get("recommended_age", ""))])).split())
    revealed = (words - TEMPLATE_WORDS - background) & set(normalize(f"{item.title} {item.description}").split())
    assert len(revealed) <= 2, revealed


def test_sentences_that_would_name_the_target_are_dropped():
    catalog = _catalog()
    target = catalog.by_id["c2"]  # its title is its own category name
    planned = plan_utterances(target, Vocabulary(catalog))
    shopper = make_shopper(target, Vocabulary(catalog), TitleMatcher(catalog))
    assert "More precisely teaching clocks, ideally clocks." in planned
    assert "More precisely teaching clocks, ideally clocks." not in shopper.lines
    assert shopper.lines == [line for line in planned if "teaching clocks" not in line]
    tracker, state = Tracker(catalog, TitleMatcher(catalog)), DialogueState()
    for line in shopper.lines:
        tracker.observe(state, Message("user", line))
    assert "c2" not in state.mentioned and "c2" not in state.rejected


def test_shopper_reveals_facts_vaguest_first_and_skips_missing_ones():
    catalog = _catalog()
    lines = plan_utterances(catalog.by_id["c1"], Vocabulary(catalog))
    assert lines[0] == "Hi! I'm looking for something in baby & toddler toys."
    assert lines[1] == "My budget is under £15."
    assert lines[2] == "More precisely teaching clocks."
    assert not any("Generic" in line for line in lines)  # a placeholder brand says nothing
    assert "It's for ages 3 years and up." in lines
    assert make_shopper(catalog.by_id["c1"], Vocabulary(catalog), TitleMatcher(catalog)).say(99) == FALLBACK


@pytest.mark.parametrize("price, bound", [(0.5, 5), (4.99, 10), (12.0, 15), (19.99, 25), (20.0, 30),
                                          (79.99, 100), (149.0, 200), (1000.0, 1300)])
def test_budget_is_a_round_bound_above_the_price_and_the_tracker_reads_it(price, bound):
    assert budget_bound(price) == bound
    catalog = _catalog()
    state = DialogueState()
    Tracker(catalog, TitleMatcher(catalog)).observe(state, Message("user", f"My budget is under £{bound}."))
    assert state.prefs.max_price == bound >= price


def test_success_at_k_and_turns_by_hand():
    outcomes = [Outcome("a", 1, 1), Outcome("b", 2, 4), Outcome("c", 3, 2), Outcome("d"), Outcome("e", 6, 1)]
    row = summarize(outcomes, [1, 3, 5], turns=5)
    # found by turn 5: a (rank 1), b (rank 4), c (rank 2); e came too late, d never
    assert row == {"n_targets": 5, "success@1": 0.2, "success@3": 0.4, "success@5": 0.6,
                   "avg_turns_to_success": 2.0, "failed_turns": 0, "success_by_turn": [0.2, 0.4, 0.6, 0.6, 0.6]}
    assert summarize(outcomes, [5], turns=2)["success@5"] == 0.4
    assert summarize([Outcome("x")], [1], turns=3)["avg_turns_to_success"] is None


# One category, one card a turn, a shopper who only ever says the department: the ranking alone
# cannot find the target, and a decoy that echoes the shopper's words outranks everything.
RAILWAY = [{"id": f"m{i}", "title": title, "description": text, "category": "Model Railways", "price": price,
            "attributes": {"brand": brand, "category_path": ["Hobbies", "Model Railways"],
                           "recommended_age": "8 years and up", "review_count": reviews}}
           for i, (title, text, price, brand, reviews) in enumerate([
               ("Steam Locomotive Starter Set", "Model railway steam locomotive with oval track.", 89.0, "Hornby", 300),
               ("Diesel Shunter Engine", "Model railway diesel shunter engine.", 35.0, "Bachmann", 40),
               ("Signal Box Kit", "Plastic signal box kit for a model railway layout.", 12.0, "Peco", 10),
               ("Railway Station Platform", "Model railway station platform with lamps.", 18.0, "Hornby", 25),
               ("Coal Wagon Pack", "Three coal wagons for model railway freight trains.", 22.0, "Dapol", 5),
               ("Level Crossing", "Working level crossing for a model railway.", 15.0, "Gaugemaster", 2),
               ("Hobby Shop Voucher", "Looking for something in hobbies? Hi! Something in hobbies for all.",
                20.0, "Hobbycraft", 900)])]
DECOY = "m6"


@pytest.fixture
def railway(make_services, tmp_path):
    services = make_services(write_jsonl(tmp_path / "rail.jsonl", RAILWAY), n_recommendations=1)
    # each conversation here must walk the same order: switch off the cross-conversation feedback prior
    # (its own effect is tested in test_feedback.py), or earlier shoppers' 👎 reorder later ones
    services.ranker.weights = services.ranker.weights.without("feedback")
    return services, Recommender(services), Vocabulary(services.catalog)


def test_thumbs_down_items_never_come_back_so_every_target_is_found(railway):
    services, rec, vocab = railway
    targets = [i for i in services.catalog if i.id != DECOY]
    found_turns = []
    for item in targets:
        shopper = make_shopper(item, vocab, services.matcher, order=("department",))
        out = converse(rec, shopper, turns=len(RAILWAY), feedback=True)
        cards = [c for turn in out.shown for c in turn]
        assert len(cards) == len(set(cards)), (item.id, out.shown)  # nothing rejected is shown again
        assert out.shown[0] == [DECOY] and out.rejected[0] == [DECOY]
        # one new card a turn over 7 items: found by turn 7 at the latest, at rank 1 (one card)
        assert out.found_rank == 1 and out.shown[out.found_turn - 1] == [item.id]
        assert out.rejected[-1] == [] and all(item.id not in r for r in out.rejected)
        found_turns.append(out.found_turn)
    assert sorted(found_turns) == list(range(2, len(RAILWAY) + 1))  # the decoy took turn 1 every time
    with services.store.session() as s:
        downs = s.scalar(select(func.count()).select_from(Feedback).where(Feedback.value == -1))
        linked = s.scalar(select(func.count()).select_from(Feedback).where(Feedback.turn_id.is_not(None)))
    assert downs == linked == sum(t - 1 for t in found_turns)  # one 👎 per missed turn, tied to its turn


def test_without_feedback_the_decoy_comes_back_unless_the_shopper_asks_for_others(railway):
    services, rec, vocab = railway
    state = rec.new_state()
    cards = lambda text: [r.item.id for r in rec.run_turn(state, text).recommendations]  # noqa: E731
    assert cards("Hi! I'm looking for something in hobbies.") == [DECOY]
    assert cards("Something for model railways please.") == [DECOY]  # shown before: only demoted, not removed
    assert cards("Any other options?") == ["m0"]  # asked for others: past everything already shown
    assert cards("Any other options?") != [DECOY]
    shopper = make_shopper(services.catalog.by_id["m2"], vocab, services.matcher, order=("department",))
    out = converse(rec, shopper, turns=len(RAILWAY), feedback=False)
    shown = [turn[0] for turn in out.shown]  # the shopper asks for other options after its first line
    assert shown[0] == DECOY and len(shown) == len(set(shown)) and shown[-1] == "m2"
    assert all(r == [] for r in out.rejected)
    assert services.store.feedback_rows() == []


def test_lm_picks_count_and_failed_turns_are_reported(make_services, tmp_path):
    fake = FakeBackend([RuntimeError("boom"), "You might like the Signal Box Kit."])
    services = make_services(write_jsonl(tmp_path / "rail.jsonl", RAILWAY), backend=fake, n_recommendations=1)
    shopper = make_shopper(services.catalog.by_id["m2"], Vocabulary(services.catalog), services.matcher,
                           order=("department",))
    out = converse(Recommender(services), shopper, turns=3, feedback=True)
    # turn 1: the LM failed, the ranker's card (the decoy) was shown and rejected; turn 2: the LM's pick
    assert out.shown == [[DECOY], ["m2"]] and (out.found_turn, out.found_rank) == (2, 1)
    assert out.failed == 1 and summarize([out], [1], turns=3)["failed_turns"] == 1


def test_command_prints_table_writes_report_and_leaves_user_db_alone(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("chatrec.services.SentenceTransformerEmbedder", lambda *a, **kw: HashEmbedder())
    catalog = write_jsonl(tmp_path / "cat.jsonl", CATALOG_ROWS)
    home, out = tmp_path / "home", tmp_path / "report.json"
    code = cli.main(["simulate", "--catalog", str(catalog), "--home", str(home), "--n-targets", "50",
                     "--turns", "3", "--cards", "3", "--k", "1,3", "--seed", "7", "--out", str(out), "--no-progress",
                     "--weight", "rejected_similar=0", "--weight", "feedback_min_count=2"])
    assert code == 0
    table = capsys.readouterr().out.strip().splitlines()
    assert table[0].startswith("| run | targets | success@1 (≤3 turns) | success@3 (≤3 turns) |")
    assert [line.split(" | ")[0] for line in table[2:]] == ["| thumbs-down feedback", "| no feedback (ablation)"]
    report = json.loads(out.read_text())
    assert report["n_targets"] == len(CATALOG_ROWS) and report["turns"] == 3 and report["cards"] == 3
    assert set(report["runs"]) == {"thumbs-down feedback", "no feedback (ablation)"}
    for row in report["runs"].values():
        assert 0 <= row["success@1"] <= row["success@3"] <= 1 and len(row["success_by_turn"]) == 3
    assert report["model"] == "none"
    assert report["weights"]["rejected_similar"] == 0.0 and report["weights"]["feedback_min_count"] == 2
    assert not (home / "chatrec.db").exists()


@pytest.mark.parametrize("argv, message", [(["--k", "1,6"], "between 1 and the cards shown (5)"),
                                           (["--reveal", "budget,colour"], "--reveal 'budget,colour'"),
                                           (["--n-targets", "0"], "--turns and --n-targets must be at least 1"),
                                           (["--weight", "dense"], "--weight 'dense': use NAME=NUMBER"),
                                           (["--weight", "nope=1"], "--weight 'nope=1': use NAME=NUMBER")])
def test_bad_flags_say_how_to_fix(tmp_path, monkeypatch, argv, message):
    monkeypatch.setattr("chatrec.services.SentenceTransformerEmbedder", lambda *a, **kw: HashEmbedder())
    catalog = write_jsonl(tmp_path / "cat.jsonl", CATALOG_ROWS)
    parser = argparse.ArgumentParser()
    simulate.add_arguments(parser)
    args = parser.parse_args(["--catalog", str(catalog), "--home", str(tmp_path / "h"), "--no-progress", *argv])
    with pytest.raises(InputError, match=re.escape(message)):
        simulate.run(args)


def test_another_listing_of_the_target_is_a_find(make_services, tmp_path):
    rows = RAILWAY + [{**RAILWAY[0], "id": "m0-again", "attributes": {**RAILWAY[0]["attributes"], "review_count": 1}}]
    services = make_services(write_jsonl(tmp_path / "rail2.jsonl", rows), n_recommendations=3)
    rec, vocab = Recommender(services), Vocabulary(services.catalog)
    shopper = make_shopper(services.catalog.by_id["m0-again"], vocab, services.matcher)
    out = converse(rec, shopper, turns=len(rows), feedback=True)
    cards = [c for turn in out.shown for c in turn]
    assert cards.count("m0") + cards.count("m0-again") == 1 and out.found_turn is not None  # one card, a find
