"""TermIndex answers exactly what a scan over every item's text answers."""
from __future__ import annotations

import random

import pytest

from chatrec.lexical import LexicalIndex, TermIndex, content_words, has_word

WORDS = "car cards scar remote control lego legolas train set red blue a an the".split()
random.seed(0)
TEXTS = [" ".join(random.choice(WORDS) for _ in range(random.randint(0, 8))) for _ in range(2000)]
INDEX = TermIndex(TEXTS)


@pytest.mark.parametrize("term", ["car", "ar", "remote control", "ote contr", "lego", "a", "red blue car",
                                  "the lego set", "zzz", "s sc", "e c", "control lego legolas", ""])
def test_matches_a_full_scan(term):
    assert INDEX.containing(term).tolist() == [i for i, t in enumerate(TEXTS) if term in t]
    expected_words = [i for i, t in enumerate(TEXTS) if term.split() and has_word(t, term)]
    assert INDEX.with_word(term).tolist() == expected_words


def test_whole_word_does_not_match_inside_words():
    index = TermIndex(["legolas figure", "lego city", "duplo lego"])
    assert index.with_word("lego").tolist() == [1, 2]
    assert index.containing("lego").tolist() == [0, 1, 2]


@pytest.mark.parametrize("text, words", [
    ("Could you show me some other options?", []),
    ("anything else?", []),
    ("HELLO SUGGEST ME UR FAVOURITE MOVIES", []),
    ("", []),
    ("🙂👍", []),
    ("something scary please", ["scary"]),
    ("I'd love a Lego train under £20", ["lego", "train", "20"]),
])
def test_content_words_drop_filler(text, words):
    assert content_words(text) == words


def test_bm25_ignores_filler_words(tmp_path):
    from chatrec.catalog import load_catalog
    from conftest import write_jsonl

    rows = [{"id": "a", "title": "Show Me Something Good", "description": "a film about options"},
            {"id": "b", "title": "Lego Train", "description": "bricks"}]
    lexical = LexicalIndex(load_catalog(write_jsonl(tmp_path / "c.jsonl", rows)))
    assert lexical.scores("show me something good, other options?").tolist() == [0.0, 0.0]
    scores = lexical.scores("show me a lego train")
    assert scores[1] > 0 and scores[0] == 0.0
