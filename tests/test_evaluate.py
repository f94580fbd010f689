"""The ``eval`` command: report keys, ReDial-style Recall@K on a hand-made catalog, the LM path."""
from __future__ import annotations

import argparse
import json

import pytest

from chatrec.backends.fake import FakeBackend
from chatrec.cli import main
from chatrec.errors import InputError
from chatrec.evaluate import evaluate, load_dialogues, parse_ks, report
from chatrec.ranker import RankWeights
from conftest import write_jsonl

ITEMS = [
    {"id": "chess", "title": "Chess Board Classic", "description": "wooden chess board game strategy"},
    {"id": "dragon", "title": "Dragon Card Battle", "description": "fantasy card game with dragons"},
    {"id": "marble", "title": "Marble Run Tower", "description": "marble run construction"},
]
DIALOGUES = [
    # the user names the target: named items are filtered, so this pair is a miss at every K
    {"id": "1-1", "context": [{"role": "user", "content": "I loved Marble Run Tower"}], "targets": ["marble"]},
    # unambiguous: a hit at 1; the unknown id is skipped, not counted
    {"id": "2-1", "context": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello!"},
                              {"role": "user", "content": "a wooden chess board"}], "targets": ["chess", "zzz"]},
    # two targets, neither first (chess leads): misses at 1, hits at 3
    {"id": "3-1", "context": [{"role": "user", "content": "a chess strategy game"}], "targets": ["dragon", "marble"]},
]
KEYS = {"n_turns", "n_pairs", "recall@1", "recall@3", "ungrounded_rate", "latency_ms", "model", "catalog", "n_items",
        "dialogues", "interactions", "train_dialogues", "ranking_path", "ranking_path_note", "weights",
        "learned_priors", "embedder", "skipped_targets", "lm_mentions", "lm_picks", "build_s"}


@pytest.fixture
def files(tmp_path):
    return (write_jsonl(tmp_path / "items.jsonl", ITEMS), write_jsonl(tmp_path / "dialogues.jsonl", DIALOGUES))


def test_eval_command_writes_report_with_hand_computed_recall(tmp_path, files, demo_home, capsys):
    catalog, dialogues = files
    out = tmp_path / "report.json"
    rc = main(["eval", "--catalog", str(catalog), "--dialogues", str(dialogues), "--model", "none",
               "--k", "1,3", "--home", str(demo_home), "--out", str(out), "--no-progress"])
    assert rc == 0
    rep = json.loads(out.read_text())
    assert set(rep) == KEYS
    assert (rep["n_turns"], rep["n_pairs"], rep["skipped_targets"]) == (3, 4, 1)
    assert (rep["recall@1"], rep["recall@3"]) == (0.25, 0.75)
    assert (rep["ungrounded_rate"], rep["model"], rep["ranking_path"]) == (0.0, "none", "ranker")
    assert rep["learned_priors"] is None and rep["weights"]["requests"] == 0.0
    assert set(rep["latency_ms"]) == {"p50", "p95"}
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["recall@3"] == 0.75


def test_train_dialogues_switch_on_learned_priors(tmp_path, files, demo_home):
    catalog, dialogues = files
    # in another split, a request for a chess strategy game was answered with the dragon game
    train = write_jsonl(tmp_path / "train.jsonl", [
        {"id": "9-1", "context": [{"role": "user", "content": "any chess strategy game?"}], "targets": ["dragon"]}])
    out = tmp_path / "report.json"
    assert main(["eval", "--catalog", str(catalog), "--dialogues", str(dialogues), "--model", "none", "--k", "1,3",
                 "--home", str(demo_home), "--out", str(out), "--no-progress", "--train-dialogues", str(train)]) == 0
    rep = json.loads(out.read_text())
    assert rep["learned_priors"] == {"suggestions": 1, "request_turns": 1, "files": [], "training_turns": 1}
    learned = RankWeights.learned()
    assert (rep["weights"]["target_pop"], rep["weights"]["requests"]) == (learned.target_pop, learned.requests)
    # one training turn votes for every query (k nearest of 1): dragon now leads both chess requests,
    # so 3-1 hits at 1 and 2-1 (target chess) no longer does -- the effect is real, the data tiny
    assert rep["recall@1"] == 0.25


def test_limit_and_bad_input(tmp_path, files):
    _, dialogues = files
    assert [d.id for d in load_dialogues(dialogues, limit=2)] == ["1-1", "2-1"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "context": [{"role": "user", "content": "hi"}], "targets": ["a"]}\n{"id": 1}\n')
    with pytest.raises(InputError, match="bad.jsonl:2"):
        load_dialogues(bad)
    with pytest.raises(InputError, match="--k"):
        parse_ks("1,ten")
    assert parse_ks("50,1,10") == [1, 10, 50]


def test_lm_picks_go_first_and_ungrounded_mentions_are_counted(files, make_services):
    catalog, dialogues = files
    fake = FakeBackend()
    services = make_services(catalog, backend=fake, n_recommendations=2)
    for reply in ["Maybe [[Chess Board Classic]]?", "Try [[Chess Board Classic]].",
                  "Try [[Dragon Card Battle]] or the **Unicorn Deluxe 9000**."]:
        fake.enqueue([reply])
    tally = evaluate(services, load_dialogues(dialogues), [1, 3])
    rep = report(services, tally, argparse.Namespace(dialogues=str(dialogues)), skipped_targets=1)
    assert rep["ranking_path"] == "lm+ranker"
    assert rep["recall@1"] == 0.5  # chess (turn 2) and dragon, the LM's pick in turn 3
    assert rep["ungrounded_rate"] == round(1 / 4, 4)  # one invented name among four mentions
