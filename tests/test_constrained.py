"""Constrained item spans: every span the model completes is exactly a candidate title.

Unit tests run the processor on a hand-made vocabulary (no tokenizer files); the property test
drives the tiny real model (``tiny_model_dir``) through ``generate`` with greedy and sampled
decoding, batch 1 and 2, over many seeds, prompts and title sets (prefix titles, non-ASCII,
punctuation). A random model rarely writes ``[[`` by itself, so a test-only processor boosts the
tokens containing ``[``: the property is about what happens inside spans.
"""
from __future__ import annotations

import random
import re

import pytest
import torch

from chatrec.backends.base import SpanConstraint
from chatrec.constrained import SpanLogitsProcessor, token_table

VOCAB = ["<eos>", "[[", "[", "[[T", "Foo", " Bar", "]]", "]].", "]", "F", "o", " ", "B", "a", "r", "x",
         "[[x", "Hi", " [[", "Ca", "f", "\xc3", "\xa9", "]] [[x", "]] [[F", "T", "oy"]


class HandTokenizer:
    """Just enough of a tokenizer: pieces are literal text except ids 21/22, the two UTF-8 bytes of 'é'."""

    eos_token_id = 0
    all_special_ids = [0]

    def __len__(self):
        return len(VOCAB)

    def convert_ids_to_tokens(self, ids):
        return VOCAB


def _bytes(tok, piece: str) -> bytes:
    return bytes([ord(piece)]) if piece in ("\xc3", "\xa9") else piece.encode()


@pytest.fixture
def hand():
    tok = HandTokenizer()
    table = token_table(tok)
    table.token_bytes[21], table.token_bytes[22] = b"\xc3", b"\xa9"
    table.__init__(table.token_bytes)  # rebuild the look-ups with the raw bytes
    return tok


def ids_of(*pieces: str) -> set[int]:
    return {VOCAB.index(p) for p in pieces}


def make(tok, titles, prefix=""):
    return SpanLogitsProcessor(tok, SpanConstraint(titles), prompt_length=1, prefix=prefix)


def test_prefix_title_allows_both_close_and_continuation(hand):
    p = make(hand, ["Foo", "Foo Bar", "Toy"])
    assert set(p.allowed_inside(b"Foo")) == ids_of(" Bar", " ", "]]", "]].", "]", "]] [[F")
    assert set(p.allowed_inside(b"")) == ids_of("Foo", "F", "T")
    assert 0 not in p.allowed_inside(b"Fo")  # no end-of-sequence inside an open span


def test_tokens_merging_across_markers(hand):
    p = make(hand, ["Toy"])
    assert p.advance(0, b"Hi [[T") == b"T"
    assert p.advance(b"To", b"y]].") == 0
    assert p.advance(0, b"[[x") is None
    blocked = set(p.blocked_outside(0))
    assert blocked == ids_of("[[x", "]] [[x", "]] [[F")  # "]] [[x" opens a bad span, "]] [[T" does not
    assert ids_of("[[T", "[[", " [[", "[").isdisjoint(blocked)
    # After a lone "[", another "[" completes the marker: "[[" and "[[T" would open "[[[..." spans.
    assert set(p.blocked_outside(1)) == ids_of("[[", "[[T", "[[x", "]] [[x", "]] [[F")


def test_non_ascii_title_goes_byte_by_byte(hand):
    p = make(hand, ["Café"])
    assert set(p.allowed_inside(b"Caf")) == ids_of("\xc3")
    assert set(p.allowed_inside(b"Caf\xc3")) == ids_of("\xa9")
    assert p.advance(b"Caf\xc3\xa9", b"]]") == 0


def test_end_of_sequence_only_when_no_token_can_continue(hand):
    p = make(hand, ["Zed", "Toy"])  # no token starts with "Z"
    assert p.allowed_inside(b"") == sorted(ids_of("T"))
    assert p.allowed_inside(b"Z") == [0]


def test_prefix_starts_generation_inside_a_span(hand):
    p = make(hand, ["Toy"], prefix="1. [[")
    assert p.initial == b""


def test_batch_rows_keep_their_own_state(hand):
    p = make(hand, ["Foo", "Toy"])
    ids = torch.tensor([[0] + [VOCAB.index(x) for x in ("Hi", "[[", "T")],
                        [0] + [VOCAB.index(x) for x in ("Hi", " ", "Hi")]])
    scores = torch.zeros(2, len(VOCAB))
    out = p(ids, scores)
    assert set(torch.nonzero(out[0] > float("-inf")).flatten().tolist()) == ids_of("o", "oy")
    assert set(torch.nonzero(out[1] == float("-inf")).flatten().tolist()) == ids_of("[[x", "]] [[x")  # "]] [[F" opens "Foo"
    assert torch.equal(scores, torch.zeros(2, len(VOCAB)))  # the input scores are left untouched


# -- property test with the tiny real model ------------------------------------------------------

SPAN = re.compile(rb"\[\[(.*?)\]\]", re.S)
WORDS = ["Train", "Set", "Puzzle", "Café", "Crème", "über", "Jouet", "🧸", "Bär", "LEGO", "Doll", "(2014)",
         "&", "-", "Mini", "The", "Racing", "Car", "Ümlaut", "日本", "x", "Foo", "Bar"]
PROMPTS = ["a train set", "something for a toddler", "gift under £20", "I loved Café Crème!", "hi"]


def _titles(rng: random.Random) -> list[str]:
    titles = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 4))) for _ in range(rng.randint(2, 6))]
    base = rng.choice(titles)
    titles.append(base + " " + rng.choice(WORDS))  # a title with another title as its prefix
    titles.append(base + ": " + rng.choice(WORDS) + ", Vol. 2")
    return list(dict.fromkeys(titles))


class BoostOpen:
    """Test-only: push up every token containing '[' so the random model opens spans often."""

    def __init__(self, ids: list[int], amount: float):
        self.ids, self.amount = torch.tensor(ids), amount

    def __call__(self, input_ids, scores):
        scores = scores.clone()
        scores[:, self.ids] += self.amount
        return scores


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    tok.padding_side = "left"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 0.3M-parameter model runs fastest single-threaded
    yield tok, AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    torch.set_num_threads(threads)


def _generate(tok, model, prompts, titles, seed, sample):
    from transformers import LogitsProcessorList

    table = token_table(tok)
    opening = [i for i, b in enumerate(table.token_bytes) if b"[" in b]
    chats = [[{"role": "user", "content": p}] for p in prompts]
    enc = tok.apply_chat_template(chats, add_generation_prompt=True, return_tensors="pt", return_dict=True,
                                  padding=True)
    length = enc["input_ids"].shape[-1]
    processors = LogitsProcessorList([BoostOpen(opening, 6.0 + seed % 4),
                                      SpanLogitsProcessor(tok, SpanConstraint(titles), length)])
    torch.manual_seed(seed)
    extra = dict(do_sample=True, temperature=1.0, top_p=0.95) if sample else dict(do_sample=False)
    with torch.inference_mode():
        out = model.generate(**enc, max_new_tokens=48, logits_processor=processors, pad_token_id=0, **extra)
    return [b"".join(table.token_bytes[i] for i in row[length:].tolist()) for row in out]


def test_every_completed_span_is_a_candidate_title(tiny):
    tok, model = tiny
    spans, prefixed = 0, 0
    for seed in range(60):
        rng = random.Random(seed)
        titles = _titles(rng)
        allowed = {t.encode() for t in titles}
        batch = [rng.choice(PROMPTS) for _ in range(1 + seed % 2)]
        for text in _generate(tok, model, batch, titles, seed, sample=seed % 3 != 0):
            found = SPAN.findall(text)
            assert set(found) <= allowed, (titles, text)
            spans += len(found)
            prefixed += sum(1 for f in found if any(a != f and a.startswith(f) for a in allowed))
    assert spans >= 150  # the property was exercised, not vacuously true
    assert prefixed >= 10  # spans that closed at a title which is the prefix of another title


# -- pre-filled reply opening: the product path that makes a small model pick a real item ---------

def test_reply_prefix_template_opens_a_list_item_only_when_there_are_candidates(small_catalog_path):
    from chatrec.catalog import load_catalog
    from chatrec.prompts import PromptBuilder
    from chatrec.state import DialogueState

    catalog = load_catalog(small_catalog_path)
    builder = PromptBuilder(catalog)
    assert builder.reply_prefix(DialogueState(), catalog.items[:3]) == "1. [["
    assert builder.reply_prefix(DialogueState(), []) == ""


def test_prefilled_turn_recommends_a_constrained_span_pick(tiny_model_dir, small_catalog_path, tmp_path):
    from chatrec.recommender import Recommender
    from chatrec.services import build_services
    from chatrec.settings import Settings
    from conftest import SMALL_CATALOG, HashEmbedder

    settings = Settings.load({"catalog": small_catalog_path, "home": tmp_path, "model": str(tiny_model_dir),
                              "max_new_tokens": 24, "temperature": 0.0, "prefill": True}, env={})
    services = build_services(settings, embedder=HashEmbedder())
    try:
        rec = Recommender(services)
        result = rec.run_turn(rec.new_state(), "a wooden train for my toddler")
        offered = [c.item.title for c in result.candidates[:settings.n_candidates]]
        assert result.status == "ok" and result.reply.startswith("1. [[")
        first = result.reply[len("1. [["):].split("]]")[0]
        assert first in offered  # constrained: the model could only complete an offered title
        assert (result.recommendations[0].item.title, result.recommendations[0].source) == (first, "span")
        assert result.display.startswith(f"1. **{first}**")
        assert first in {row["title"] for row in SMALL_CATALOG}
    finally:
        services.store.close()
