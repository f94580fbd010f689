"""End to end through the real transformers backend, with a tiny model the tests build themselves
(random Llama + trained tokenizer, ChatML template, saved and loaded with from_pretrained)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from sqlalchemy import func, select

from chatrec.backends.local import TransformersBackend
from chatrec.errors import ModelLoadError
from chatrec.recommender import Recommender
from chatrec.schema import Conversation, Mention, Recommendation, Turn
from chatrec.services import build_services
from chatrec.settings import Settings
from conftest import ROOT, HashEmbedder


def test_multi_turn_chat_through_the_real_transformers_backend(tiny_model_dir, small_catalog_path, tmp_path):
    settings = Settings.load({"catalog": small_catalog_path, "home": tmp_path, "model": str(tiny_model_dir),
                              "max_new_tokens": 24, "temperature": 0.0}, env={})
    services = build_services(settings, embedder=HashEmbedder())
    assert isinstance(services.backend, TransformersBackend) and services.notices == []
    rec = Recommender(services)
    state = rec.new_state()
    results = [rec.run_turn(state, text) for text in
               ["I want a train set for my son", "under £30 please", "no Thomas, something wooden"]]
    for r in results:
        assert r.status == "ok", r.error
        assert r.reply.strip()  # the model produced text
        assert 1 <= len(r.recommendations) <= settings.n_recommendations
        assert all(x.item.id in services.catalog for x in r.recommendations)
    last = results[-1]
    assert all(x.item.price <= 30 for x in last.recommendations if x.item.price is not None)
    assert "t3" not in [x.item.id for x in last.recommendations]  # "no Thomas" is a hard exclusion
    with services.store.session() as s:
        assert s.scalar(select(func.count()).select_from(Conversation)) == 1
        turns = s.scalars(select(Turn).order_by(Turn.index)).all()
        assert [t.index for t in turns] == [1, 2, 3]
        assert all(t.model == str(tiny_model_dir) and t.latency_ms > 0 and "<|im_start|>" not in t.reply
                   for t in turns)
        n_recs = s.scalar(select(func.count()).select_from(Recommendation))
        assert n_recs == sum(len(r.recommendations) for r in results)
        ungrounded = s.scalars(select(Mention.text).where(Mention.item_id.is_(None))).all()
        assert sorted(ungrounded) == sorted(m for r in results for m in r.ungrounded)
    services.store.close()


def test_missing_model_path_falls_back_to_no_lm_with_a_clear_notice(small_catalog_path, tmp_path):
    settings = Settings.load({"catalog": small_catalog_path, "home": tmp_path,
                              "model": str(tmp_path / "no-such-model")}, env={})
    services = build_services(settings, embedder=HashEmbedder())
    assert services.backend is None
    assert len(services.notices) == 1
    notice = services.notices[0]
    assert notice.startswith("Running without a language model: no usable model at path")
    assert "--model PATH" in notice and "--model none" in notice
    result = Recommender(services).run_turn(Recommender(services).new_state(), "a puzzle")
    assert result.recommendations[0].item.id == "p1"
    services.store.close()


def test_broken_model_dir_raises_model_load_error(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="no usable model at path"):
        TransformersBackend(str(tmp_path))


def test_chat_command_json_contract(tiny_model_dir, small_catalog_path, tmp_path, demo_home):
    cmd = [sys.executable, "-m", "chatrec", "chat", "--model", str(tiny_model_dir), "--catalog",
           str(small_catalog_path), "--db", f"sqlite:///{tmp_path / 'chat.db'}", "--home", str(demo_home),
           "--max-new-tokens", "16", "--json", "a jigsaw puzzle", "under £15"]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [line["turn"] for line in lines] == [1, 2]
    for line in lines:
        assert set(line) >= {"turn", "reply", "recommendations", "ungrounded_mentions", "latency_ms"}
        assert isinstance(line["latency_ms"], float) and line["latency_ms"] > 0
        for r in line["recommendations"]:
            assert set(r) >= {"id", "title", "score"} and isinstance(r["score"], float)
    # The LM's constrained pick comes first (a random model picks any candidate); the ranker's best follows.
    assert "p1" in [r["id"] for r in lines[0]["recommendations"]]


def test_chat_command_reports_bad_catalog_without_traceback(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1", "title": "ok"}\n{"id": "1", "title": "dup"}\n')
    out = subprocess.run([sys.executable, "-m", "chatrec", "chat", "--model", "none", "--catalog", str(bad),
                          "--home", str(tmp_path), "hi"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 2
    assert f"{bad}:2: duplicate id '1' (first on line 1)" in out.stderr
    assert "Traceback" not in out.stderr
