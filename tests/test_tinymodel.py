"""The tiny offline model loads through from_pretrained, round-trips text, renders ChatML and generates."""
from __future__ import annotations

import json
import threading

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from transformers import AutoModelForCausalLM, AutoTokenizer, TextIteratorStreamer  # noqa: E402

from chatrec.tinymodel import build_tiny_model, main  # noqa: E402

MESSAGES = [{"role": "system", "content": "You recommend toys."}, {"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny"), corpus=["Wooden Train Set", "Café Crème plush"])


@pytest.fixture(scope="module")
def tokenizer(tiny_dir):
    return AutoTokenizer.from_pretrained(tiny_dir)


@pytest.fixture(scope="module")
def model(tiny_dir):
    return AutoModelForCausalLM.from_pretrained(tiny_dir).eval()


@pytest.mark.parametrize("text", [
    "hello world",
    " leading space",
    "Café Crème — £12.99 🧸",
    "  double  spaces\nnew line\ttab",
    "Wooden Train Set",
])
def test_token_ids_round_trip(tokenizer, text):
    ids = tokenizer.encode(text)
    assert ids
    assert tokenizer.decode(ids) == text
    assert tokenizer.unk_token_id is None  # byte-level: every string is representable


def test_special_tokens_are_single_ids(tokenizer, model):
    ids = {t: tokenizer.encode(t) for t in ("<|im_start|>", "<|im_end|>", "<|endoftext|>")}
    assert all(len(v) == 1 for v in ids.values()), ids
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    eos, pad = ids["<|im_end|>"][0], ids["<|endoftext|>"][0]
    for cfg in (model.config, model.generation_config):
        assert cfg.eos_token_id == eos and cfg.pad_token_id == pad and cfg.bos_token_id == pad
    assert model.config.vocab_size == len(tokenizer)


def test_chatml_rendering(tokenizer):
    text = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)
    assert text == ("<|im_start|>system\nYou recommend toys.<|im_end|>\n"
                    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    no_prompt = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=False, tokenize=False)
    assert no_prompt == text[: -len("<|im_start|>assistant\n")]


def test_chat_template_tokenized_matches_text(tokenizer):
    text = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)
    enc = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=True)
    # transformers 5 returns a BatchEncoding (dict-like) here, not a bare list of ids.
    ids = enc["input_ids"] if hasattr(enc, "keys") else enc
    assert ids == tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.decode(ids) == text


def test_generate_and_stream(tokenizer, model):
    inputs = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, return_tensors="pt",
                                           return_dict=True)
    prompt_len = inputs["input_ids"].shape[-1]
    out = model.generate(**inputs, max_new_tokens=20, do_sample=False)
    new = out[0, prompt_len:]
    assert 0 < new.shape[-1] <= 20
    greedy = tokenizer.decode(new, skip_special_tokens=True)
    assert greedy.strip()

    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=30)
    worker = threading.Thread(target=model.generate,
                              kwargs=dict(**inputs, max_new_tokens=20, do_sample=False, streamer=streamer))
    worker.start()
    streamed = "".join(streamer)
    worker.join(timeout=30)
    assert streamed.strip()
    assert streamed == greedy


def test_build_is_deterministic(tmp_path):
    a = build_tiny_model(tmp_path / "a", seed=3)
    b = build_tiny_model(tmp_path / "b", seed=3)
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert (a / "tokenizer.json").read_bytes() == (b / "tokenizer.json").read_bytes()


def test_cli_uses_catalog_titles(tmp_path):
    catalog = tmp_path / "cat.jsonl"
    titles = ["Zorblax Glitter Unicorn", "Zorblax Racing Car", "Zorblax Puzzle Box"]
    catalog.write_text("\n".join(json.dumps({"id": str(i), "title": t}) for i, t in enumerate(titles)) + "\n\nnot json\n",
                       encoding="utf-8")
    out = tmp_path / "cli"
    assert main([str(out), "--catalog", str(catalog)]) == 0
    tok = AutoTokenizer.from_pretrained(out)
    assert "ĠZorblax" in tok.get_vocab() or "Zorblax" in tok.get_vocab()
    for t in titles:
        assert tok.decode(tok.encode(t)) == t


def test_cli_defaults_to_the_demo_catalog_titles(tmp_path):
    out = tmp_path / "cli"
    assert main([str(out)]) == 0
    tok = AutoTokenizer.from_pretrained(out)
    title = "Wooden Thomas & Friends: James the Red Engine"  # a demo catalog title
    assert tok.decode(tok.encode(title)) == title
    plain = tmp_path / "plain"
    assert main([str(plain), "--catalog", "none"]) == 0
    assert len(tok.encode(title)) < len(AutoTokenizer.from_pretrained(plain).encode(title))
