"""Learned-priors files: ``learn`` writes what recorded recommenders suggested, ``--priors`` ranks
new conversations with it, and ``eval`` never scores a conversation with priors learned from it."""
from __future__ import annotations

import json

import numpy as np
import pytest

from chatrec.cli import main
from chatrec.errors import ConfigError
from chatrec.evaluate import Dialogue, evaluate, load_dialogues, rank_ids
from chatrec.learned import PriorExamples, find_priors
from chatrec.ranker import RankWeights
from conftest import write_jsonl

MOVIES = [
    {"id": "A", "title": "Alpha Quest (1990)", "category": "movie", "description": "a knight searches for a lost sword"},
    {"id": "C", "title": "Sword of the Knight (1991)", "category": "movie", "description": "a knight and his sword in a castle"},
    {"id": "B", "title": "Blue Harbour (2001)", "category": "movie", "description": "a fisherman's daughter falls in love"},
    {"id": "D", "title": "Desert Run (1985)", "category": "movie", "description": "a race across the desert on motorbikes"},
    {"id": "E", "title": "Evening Tea (2010)", "category": "movie", "description": "two old friends talk over tea in London"},
    {"id": "F", "title": "Frost Line (2015)", "category": "movie", "description": "climbers stuck on a frozen mountain"},
]


def _turn(conv: str, text: str, target: str) -> dict:
    return {"id": f"{conv}-1", "context": [{"role": "user", "content": ""},
                                           {"role": "assistant", "content": f"Hi, I'm recommender {conv}!"},
                                           {"role": "user", "content": text}], "targets": [target]}


# Recommenders answered Alpha Quest with Blue Harbour four times; Desert Run with Evening Tea once,
# and the conversation went on (the recommender came back to it in the next turn).
# (Named films are no search words: the words around them make the requests' query vectors.)
TRAIN = [_turn(str(c), "I loved Alpha Quest, more of an adventure", "B") for c in range(1, 5)]
TRAIN.append(_turn("5", "I loved Desert Run, something fast", "E"))
TRAIN.append({"id": "5-2", "context": TRAIN[-1]["context"] + [
    {"role": "assistant", "content": "You might like Evening Tea (2010)"},
    {"role": "user", "content": "What is it about?"}], "targets": ["E"]})


@pytest.fixture
def learned(tmp_path, demo_home):
    catalog = write_jsonl(tmp_path / "movies.jsonl", MOVIES)
    train = write_jsonl(tmp_path / "train.jsonl", TRAIN)
    priors = tmp_path / "priors.npz"
    assert main(["learn", "--catalog", str(catalog), "--dialogues", str(train), "--home", str(demo_home),
                 "--out", str(priors)]) == 0
    return catalog, train, priors


def _eval(tmp_path, demo_home, catalog, dialogues, *flags) -> dict:
    out = tmp_path / "report.json"
    assert main(["eval", "--catalog", str(catalog), "--dialogues", str(dialogues), "--model", "none", "--k", "1,3",
                 "--home", str(demo_home), "--out", str(out), "--no-progress", *flags]) == 0
    return json.loads(out.read_text())


def test_learn_writes_a_file_that_round_trips(learned):
    _, _, priors = learned
    ex = PriorExamples.load(priors)
    assert len(ex) == 6 and ex.conversation == ["1", "2", "3", "4", "5", "5"]
    assert ex.named == [["A"]] * 4 + [["D"], ["D", "E"]] and ex.targets == [["B"]] * 4 + [["E"], ["E"]]
    assert ex.group[4] == ex.group[5] and len(set(ex.group)) == 5
    assert ex.queries is not None and ex.queries.shape[0] == 6
    assert np.allclose(np.linalg.norm(ex.queries, axis=1), 1.0, atol=1e-2)
    assert ex.meta["embedder"] == "all-MiniLM-L6-v2" and ex.meta["source"].endswith("train.jsonl")


def test_priors_from_a_file_change_what_a_new_conversation_gets(tmp_path, demo_home, learned):
    catalog, _, priors = learned
    new = write_jsonl(tmp_path / "new.jsonl", [_turn("100", "I really liked Alpha Quest", "B")])
    without = _eval(tmp_path, demo_home, catalog, new, "--priors", "none")
    assert without["recall@1"] == 0.0 and without["learned_priors"] is None  # content alone: the other knight film
    rep = _eval(tmp_path, demo_home, catalog, new, "--priors", str(priors))
    assert rep["recall@1"] == 1.0  # what recommenders answered before
    assert rep["learned_priors"]["files"] == [str(priors)] and "held_out" not in rep["learned_priors"]
    assert rep["weights"]["requests"] == RankWeights.learned().requests and rep["weights"]["genre_requests"] == 1.0


def test_eval_never_scores_a_conversation_with_priors_learned_from_it(tmp_path, demo_home, learned, make_services):
    catalog, train, priors = learned
    services = make_services(catalog, priors=str(priors))
    desert = load_dialogues(train)[4]
    # the full prior remembers this very turn: ranked with it, Evening Tea comes first ...
    assert rank_ids(services, desert, 1) == ["E"]
    # ... but eval rebuilds the prior without the scored conversation's fold, whatever its id (under
    # another id, the turn is recognised by its context, and its conversation's later turn goes too)
    for dialogue in (desert, Dialogue("other-id-7", desert.context, desert.targets)):
        tally = evaluate(services, [dialogue], [1, 3])
        assert tally.hits[1] == 0 and tally.held_out["folds"] == 5
    assert rank_ids(services, desert, 1) == ["E"]  # the full prior is back afterwards
    rep = _eval(tmp_path, demo_home, catalog, train, "--priors", str(priors))
    assert rep["learned_priors"]["held_out"]["folds"] == 5
    assert rep["recall@1"] < 1.0


def test_bad_priors_files_fail_clearly_and_auto_skips_what_does_not_fit(tmp_path, learned):
    from chatrec.catalog import load_catalog

    catalog, _, priors = learned
    broken = tmp_path / "learned" / "broken.npz"
    broken.parent.mkdir()
    broken.write_bytes(b"not a zip file")
    with pytest.raises(ConfigError, match="broken.npz cannot be read.*chatrec learn"):
        PriorExamples.load(broken)
    with pytest.raises(ConfigError, match="missing.npz does not exist"):
        PriorExamples.load(tmp_path / "missing.npz")
    movies = load_catalog(catalog)
    toys = load_catalog(write_jsonl(tmp_path / "toys.jsonl", [{"id": "t1", "title": "Train Set"}]))
    (tmp_path / "learned" / "movies.npz").write_bytes(priors.read_bytes())
    assert find_priors("auto", movies, tmp_path / "learned") == [tmp_path / "learned" / "movies.npz"]
    assert find_priors("auto", toys, tmp_path / "learned") == []  # none of its items: not used
    assert find_priors("none", movies, tmp_path / "learned") == []


def test_the_shipped_priors_file_loads():
    from chatrec.settings import LEARNED_DIR

    ex = PriorExamples.load(LEARNED_DIR / "redial-valid.npz")
    assert len(ex) == 2716 and len(set(ex.conversation)) == 985
    assert sum(len(t) for t in ex.targets) == 3595 and ex.queries.shape == (2716, 384)


def test_the_genres_each_turn_asked_for_round_trip_and_merge_by_name(tmp_path, demo_home):
    genred = [{**m, "attributes": {"genre": [g]}} for m, g in zip(MOVIES, ["action", "action", "romance", "action",
                                                                          "drama", "thriller"])]
    catalog = write_jsonl(tmp_path / "genred.jsonl", genred)
    train = write_jsonl(tmp_path / "train.jsonl", [_turn("1", "any romantic films?", "B"),
                                                   _turn("2", "I loved Alpha Quest", "C")])
    out = tmp_path / "p.npz"
    assert main(["learn", "--catalog", str(catalog), "--dialogues", str(train), "--home", str(demo_home),
                 "--out", str(out)]) == 0
    ex = PriorExamples.load(out)
    names = ex.meta["genre_names"]
    assert sorted(names) == ["action", "drama", "romance", "thriller"]
    assert ex.genres[0, names.index("romance")] == 1.0 and ex.genres[0].sum() == 1.0
    assert not ex.genres[1].any()  # named a film, asked for no genre
    assert ex.subset(np.array([False, True])).genres.tolist() == [[0.0] * 4]
    # a file with other genres adds its rows under this file's names; a file without any adds zeros
    other = PriorExamples(["9"], [0], ["x"], [[]], [["F"]], None, {"genre_names": ["thriller", "western"]},
                          np.array([[0.5, 0.5]], dtype=np.float32))
    merged = ex.concat(other).concat(PriorExamples(["8"], [0], ["y"], [[]], [["E"]], None, {}))
    assert merged.genres.shape == (4, 4)
    assert merged.genres[2, names.index("thriller")] == 0.5 and merged.genres[2].sum() == 0.5
    assert not merged.genres[3].any()
