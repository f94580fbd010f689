"""A small run of ``scripts/load_test.py`` against the app served in this process: 5 shoppers x 3
turns at once over HTTP (gradio_client), with their card thumbs. Every answer must show only the
shopper's own messages, budget and in-budget cards, and the database must hold each confirmed
click exactly once in the right conversation. The full 50 x 10 run is the script itself (README).
"""
from __future__ import annotations

import importlib.util
import sys

import pytest

from tests.conftest import ROOT, SMALL_CATALOG, HashEmbedder, write_jsonl
from tests.test_browser import free_port


def _load_script():
    spec = importlib.util.spec_from_file_location("load_test", ROOT / "scripts" / "load_test.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["load_test"] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def load_test():
    return _load_script()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from chatrec.backends.fake import FakeBackend
    from chatrec.services import build_services
    from chatrec.settings import Settings
    from chatrec.ui import build_app, launch_options

    tmp_path = tmp_path_factory.mktemp("load")
    catalog = write_jsonl(tmp_path / "catalog.jsonl", SMALL_CATALOG)
    settings = Settings.load({"catalog": catalog, "home": tmp_path / "home", "model": "fake", "port": free_port()},
                             env={})
    services = build_services(settings, backend=FakeBackend(), embedder=HashEmbedder())
    demo = build_app(settings, services).queue(default_concurrency_limit=4)
    demo.launch(**launch_options(settings), prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{settings.port}/", services, catalog
    demo.close()
    services.store.close()


@pytest.mark.slow
def test_concurrent_shoppers_see_only_their_own_state_and_every_click_is_stored_once(load_test, served):
    url, services, catalog = served
    report, shoppers = load_test.run_load(url, users=5, turns=3, catalog_path=catalog, deadline_s=240)
    assert report.errors == []
    assert report.requests == 5 * 3 + 5 and [s.sent for s in shoppers] == [3] * 5
    assert all(len(s.clicks) == 1 for s in shoppers)
    assert load_test.check_store(services.store, shoppers) == []
    assert len(services.store.feedback_rows()) == 5


@pytest.mark.slow
def test_a_1mb_message_over_http_is_refused_and_the_conversation_kept(load_test, served):
    from gradio_client import Client

    from tests.test_hostile import LIMIT_1MB

    url, services, _ = served
    api = load_test.AppApi(Client(url, verbose=False))
    first = api.call("send", "click", "a train under £20", timeout=120)
    n_turns = len(services.store.table_rows("turns"))
    after = api.call("send", "click", LIMIT_1MB, timeout=120)
    assert after["chat"] == first["chat"] and after["understood"] == first["understood"]
    assert [after[f"item-card-{n}"] for n in range(1, 6)] == [first[f"item-card-{n}"] for n in range(1, 6)]
    assert len(services.store.table_rows("turns")) == n_turns
    assert len(api.call("send", "click", "and a doll", timeout=120)["chat"]) == 4  # the session still works


def test_check_store_catches_a_lost_and_a_doubled_click(load_test, tmp_path):
    from chatrec.store import Store, TurnRecord

    store = Store(f"sqlite:///{tmp_path / 'chatrec.db'}")

    shopper = load_test.Shopper(0, "abcd000", 12, sent=1, clicks=[("t3", 1)])
    store.log_turn(TurnRecord("conv-a", 1, "hello (ref abcd000)", "hi", "fake", 1.0))
    assert load_test.check_store(store, [shopper]) == ["shopper abcd000: feedback rows [] != confirmed clicks [('t3', 1)]"]
    store.add_feedback("conv-a", 1, target="item", item_id="t3")
    assert load_test.check_store(store, [shopper]) == []
    store.add_feedback("conv-a", 1, target="item", item_id="t3")
    assert load_test.check_store(store, [shopper]) == [
        "shopper abcd000: feedback rows [('t3', 1), ('t3', 1)] != confirmed clicks [('t3', 1)]"]
    store.close()


def test_check_view_catches_another_shoppers_message_and_budget(load_test):
    me = load_test.Shopper(0, "abcd000", 12, sent=1)
    view = {"chat": [{"role": "user", "content": [{"text": "a gift (ref abcd001)", "type": "text"}]},
                     {"role": "assistant", "content": [{"text": "ok", "type": "text"}]}],
            "understood": {"choices": [["Budget: under £14", "budget"]]},
            "item-card-1": '<div class="rec-card" data-item-id="t2">',
            "item-card-2": '<div class="rec-card" data-item-id="t9">',  # no price: the ranker may keep it
            "item-card-3": '<div class="rec-card" data-item-id="zz">'}
    problems = load_test.check_view(me, view, {"abcd000", "abcd001"}, {"t2": 19.5, "t9": None})
    assert problems == ["chat holds messages of ['abcd001']; own code missing or foreign",
                        "'What I understood' shows ['Budget: under £14'], expected under £12",
                        "card t2 costs 19.5, over this shopper's £12", "card 'zz' is not a catalog item"]


def test_refuses_a_host_that_is_not_loopback(load_test):
    with pytest.raises(SystemExit, match="only targets loopback"):
        load_test.check_loopback("http://10.0.0.5:7860/")
    load_test.check_loopback("http://localhost:7860/")
