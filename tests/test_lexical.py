"""TermIndex answers exactly what a scan over every item's text answers; pictographs read as words."""
from __future__ import annotations

import random

import pytest

from chatrec.lexical import LexicalIndex, TermIndex, content_words, has_word, spell_emoji

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
    ("a birthday present for a boy who loves trains", ["boy", "trains"]),  # the occasion is no product word
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


def test_irregular_whitespace_and_cut_words_match_a_full_scan():
    """Texts not normalised (tabs, double or non-breaking spaces, edges): still the scan's answer."""
    rnd = random.Random(1)
    words = "car cards scar remote control lego legolas set a ca rd".split()
    seps = [" ", " ", " ", "  ", "\t", "\n", "\u00a0"]
    texts = []
    for _ in range(400):
        n = rnd.randint(0, 6)
        text = "".join(rnd.choice(words) + (rnd.choice(seps) if i < n - 1 else "") for i in range(n))
        texts.append(rnd.choice(["", " "]) + text + rnd.choice(["", "", "\t"]))
    index = TermIndex(texts)
    terms = ["car", "ar", "a", "", " ", "remote control", "e c", "s sc", "car  set", "lego\tset", " lego",
             "lego ", "a a", "d c", "\u00a0", "car\u00a0set", "zz", "r c a", "ego set car"]
    for term in terms:
        assert index.containing(term).tolist() == [i for i, t in enumerate(texts) if term in t], term
        expected = [i for i, t in enumerate(texts) if term.split() and has_word(t, term)]
        assert index.with_word(term).tolist() == expected, term


@pytest.mark.parametrize("text, spelled", [
    ("🦖 for my son", " t-rex  for my son"),
    ("a 🚂 set", "a  steam locomotive  set"),
    ("🐱 lover", " cat  lover"),  # CAT FACE: the cat
    ("I ❤️ it 👍🏻 😂", "I ❤️ it 👍🏻 😂"),  # feelings and gestures name nothing to search for
    ("plain text", "plain text"),
])
def test_pictographs_that_name_a_thing_are_spelled_out(text, spelled):
    assert spell_emoji(text) == spelled
