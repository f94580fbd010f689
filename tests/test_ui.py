"""The web UI's handlers, driven directly (no browser, no server): streaming, cards, thumbs,
constraint removal, undo/retry, errors as toasts, escaping, and the Insights numbers."""
from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from chatrec.backends.fake import FakeBackend
from chatrec.errors import ConfigError
from chatrec.insights import from_frames
from chatrec.state import DialogueState
from chatrec.ui_insights import InsightsPanel, kpi_html
from chatrec.ui_session import ChatController
from chatrec.ui_view import banner_html, card_html, safe_markdown
from tests.conftest import SMALL_CATALOG, write_jsonl


@pytest.fixture
def fake():
    return FakeBackend()


@pytest.fixture
def services(make_services, small_catalog_path, fake):
    return make_services(small_catalog_path, backend=fake)


@pytest.fixture
def ui(services):
    return ChatController(services)


def finish(ui, session, text):
    return list(ui.send(session, text))


def card_ids(session):
    return [c.item_id for c in session.cards]


def test_send_streams_the_reply_then_shows_real_catalog_cards(ui, fake):
    fake.enqueue(["For a toddler I'd pick [[Thomas Tank Engine]], a sturdy push-along engine."])
    session = ui.new_session()
    views = finish(ui, session, "a train for my toddler under £20")
    first, streamed, final = views[0], views[1:-1], views[-1]
    assert first.messages == [{"role": "user", "content": "a train for my toddler under £20"},
                              {"role": "assistant", "content": "…"}]
    assert first.draft == "" and first.streaming  # the input box clears at once
    texts = [v.messages[-1]["content"] for v in streamed]
    assert len(texts) >= 5 and all(b.startswith(a) for a, b in zip(texts, texts[1:]))
    assert final.messages[-1]["content"] == "For a toddler I'd pick **Thomas Tank Engine**, a sturdy push-along engine."
    assert not final.streaming and final.status.startswith("Turn 1 · ")
    assert card_ids(session)[0] == "t3"
    assert all(ui.services.catalog.by_id[i].price <= 20 for i in card_ids(session))
    assert "Thomas Tank Engine" in final.cards[0] and "£9.99" in final.cards[0] and "410 reviews" in final.cards[0]
    assert final.cards[len(session.cards):] == [""] * (ui.slots - len(session.cards))  # unused slots hidden
    assert ("Budget: under £20", "budget") in final.choices


def test_invented_item_is_struck_through_and_never_a_card(ui, fake):
    fake.enqueue(["Try the [[Rag Doll Emily]] or the Zorbo Hyperdoll 9000 deluxe."])
    session = ui.new_session()
    final = finish(ui, session, "a soft doll")[-1]
    assert "**Rag Doll Emily**" in final.messages[-1]["content"]
    assert all("Zorbo" not in card for card in final.cards)


def test_message_thumbs_write_a_feedback_row_for_that_turn(ui, fake):
    fake.enqueue(["One: [[Rag Doll Emily]].", "Two: [[Thomas Tank Engine]]."])
    session = ui.new_session()
    finish(ui, session, "a soft doll")
    finish(ui, session, "now a train")
    second = list(session.cards and card_ids(session))
    view = ui.rate_message(session, 3, False)  # chatbot index 3 = second answer
    assert view.toast == ("info", f"Thanks — noted the 👎 on that answer; counted against each of its "
                                  f"{len(second)} items, so I won't suggest them again.")
    assert session.state.rejected == second and len(second) == 5
    assert all("Hidden from now on" in card for card in view.cards)
    view = ui.rate_message(session, 1, True)
    first = ui.services.store.recommended_items(session.state.turn_ids[0])
    assert session.state.liked == [i for i in first if i not in second]  # an item's 👎 still wins
    n = len(session.state.liked)
    assert 0 < n < len(first) == 5  # the two answers share items: the confirmation says so
    assert view.status == (f"Thanks for the 👍 on that answer — counted for {n} of its 5 items; "
                           "your 👎 on the others stays.")
    rows = ui.services.store.feedback_rows(session.state.conversation_id)
    assert [(r.target, r.value, r.turn_id, r.item_id) for r in rows] == [
        ("message", -1, session.state.turn_ids[1], None), ("message", 1, session.state.turn_ids[0], None)]


@pytest.mark.parametrize("index", [0, 2, 99, -1])
def test_thumbs_on_a_user_message_or_missing_index_are_refused(ui, fake, index):
    session = ui.new_session()
    finish(ui, session, "a soft doll")
    view = ui.rate_message(session, index, True)
    assert view.toast == ("warning", "Only my answers can be rated.")
    assert ui.services.store.feedback_rows(session.state.conversation_id) == []


def test_item_thumbs_record_rows_mark_cards_and_change_the_next_turn(ui):
    session = ui.new_session()
    finish(ui, session, "a train set")
    liked, hidden = session.cards[0].item_id, session.cards[1].item_id
    up = ui.rate_item(session, 0, 1)
    down = ui.rate_item(session, 1, -1)
    title = ui.services.catalog.by_id[hidden].title
    assert down.toast == ("info", f"👎 Saved: I won't suggest “{title}” again.")
    assert "You liked this" in down.cards[0] and "Hidden from now on" in down.cards[1] and "rec-rejected" in down.cards[1]
    assert ("liked:" + liked) in [k for _, k in up.choices] and ("rejected:" + hidden) in [k for _, k in down.choices]
    rows = ui.services.store.feedback_rows(session.state.conversation_id)
    assert [(r.target, r.item_id, r.value, r.turn_id) for r in rows] == [
        ("item", liked, 1, session.state.turn_ids[0]), ("item", hidden, -1, session.state.turn_ids[0])]
    finish(ui, session, "more trains please")
    assert hidden not in card_ids(session)


def test_rating_a_card_slot_that_is_empty_is_refused(ui):
    session = ui.new_session()
    assert ui.rate_item(session, 0, 1).toast == ("warning", "That card is no longer on screen.")


def test_unticking_a_constraint_removes_it_and_reranks_now_and_next_turn(ui):
    session = ui.new_session()
    view = finish(ui, session, "a train under £15, no lego")[-1]
    assert all(ui.services.catalog.by_id[i].price <= 15 for i in card_ids(session))
    keep = [k for _, k in view.choices if k != "budget"]
    view = ui.keep_constraints(session, keep)
    assert session.state.prefs.max_price is None
    assert view.status == "Removed budget. Recommendations updated."
    assert {c.source for c in session.cards} == {"rerank"}
    assert any(ui.services.catalog.by_id[i].price > 15 for i in card_ids(session))  # the cap is gone
    assert "budget" not in [k for _, k in view.choices] and "exclude:lego" in [k for _, k in view.choices]
    finish(ui, session, "something fun")
    assert session.state.prefs.max_price is None and session.state.prefs.exclude == ["lego"]


def test_the_age_stated_is_shown_and_can_be_unticked(ui):
    session = ui.new_session()
    view = finish(ui, session, "a train for my 4 year old")[-1]
    assert ("For: a 4-year-old", "age") in view.choices
    view = ui.keep_constraints(session, [k for _, k in view.choices if k != "age"])
    assert session.state.prefs.age is None and view.status == "Removed age. Recommendations updated."


FILMS = [{"id": f"f{i}", "title": title, "description": plot, "category": "movie",
          "attributes": {"genre": genres, "star": stars, "year": year}}
         for i, (title, plot, genres, stars, year) in enumerate([
             ("Liar Liar (1997)", "A lawyer cannot lie for a day.", ["comedy"], ["Jim Carrey"], 1997),
             ("Yes Man (2008)", "A man says yes to everything.", ["comedy"], ["Jim Carrey"], 2008),
             ("Groundhog Day (1993)", "A weatherman relives one day.", ["comedy"], ["Bill Murray"], 1993),
             ("Se7en (1995)", "Two detectives hunt a killer.", ["crime", "thriller"], ["Brad Pitt"], 1995),
             ("Up (2009)", "An old man flies his house away.", ["animation"], ["Ed Asner"], 2009)])]


def test_the_era_genres_and_people_asked_for_are_shown_and_can_be_unticked(make_services, tmp_path):
    ui = ChatController(make_services(write_jsonl(tmp_path / "films.jsonl", FILMS)))
    session = ui.new_session()
    view = finish(ui, session, "a comedy from the 90s with Jim Carrey")[-1]
    assert [c for c in view.choices if c[1] in ("era", "genre:comedy", "person:jim carrey")] == [
        ("Era: the 1990s", "era"), ("Genre: comedy", "genre:comedy"), ("With: Jim Carrey", "person:jim carrey")]
    assert not any(k.startswith("must:") for _, k in view.choices)  # the person, not also a must-have
    assert card_ids(session)[0] == "f0"  # the 90s Jim Carrey comedy
    view = ui.keep_constraints(session, [k for _, k in view.choices if k != "era"])
    assert "era" not in [k for _, k in view.choices] and "Removed era" in view.status
    view = finish(ui, session, "any others?")[-1]
    assert "era" not in [k for _, k in view.choices]  # unticked stays unticked
    assert card_ids(session)[0] == "f1"  # the 2008 Jim Carrey comedy is no longer held back
    view = ui.keep_constraints(session, [k for _, k in view.choices if k != "person:jim carrey"])
    assert "person:jim carrey" not in [k for _, k in view.choices] and session.state.prefs.must_have == []
    view = finish(ui, session, "something from the 80s or 90s, maybe with Bill Murray")[-1]
    assert ("With: Bill Murray", "person:bill murray") in view.choices and "era" in [k for _, k in view.choices]
    view = finish(ui, session, "a comedy from the last 10 years?")[-1]
    assert ("Era: 1999 or later", "era") in view.choices  # counted back from the catalog's newest film
    assert card_ids(session)[0] == "f1"  # Yes Man (2008): the one comedy of those years


def test_a_film_not_seen_yet_is_shown_and_can_be_unticked(make_services, tmp_path):
    """"I haven't seen Se7en yet" keeps Se7en a candidate, and the panel says it was understood; unticked
    (seen after all), it is a film they have and is suggested no more."""
    ui = ChatController(make_services(write_jsonl(tmp_path / "films.jsonl", FILMS)))
    session = ui.new_session()
    view = finish(ui, session, "I haven't seen Se7en yet, I loved Liar Liar")[-1]
    assert ("Not seen yet: Se7en (1995)", "unseen:f3") in view.choices
    finish(ui, session, "anything else?")
    assert "f3" in card_ids(session)
    view = ui.keep_constraints(session, [k for _, k in view.choices if k != "unseen:f3"])
    assert "unseen:f3" not in [k for _, k in view.choices]
    assert view.status == "Removed Not seen yet: Se7en (1995). Recommendations updated."  # not "Removed f3"
    finish(ui, session, "more please")
    assert "f3" not in card_ids(session)


def test_what_films_are_asked_to_be_about_is_shown_as_such(make_services, tmp_path):
    ui = ChatController(make_services(write_jsonl(tmp_path / "films.jsonl", FILMS)))
    session = ui.new_session()
    view = finish(ui, session, "any zombie movies?")[-1]
    assert ("About: zombie", "must:zombie") in view.choices  # a topic, not "Must have: zombie"
    view = ui.keep_constraints(session, [k for _, k in view.choices if k != "must:zombie"])
    assert session.state.prefs.must_have == [] and session.state.prefs.topic_turns == {}


def test_unticking_nothing_changes_nothing(ui):
    session = ui.new_session()
    view = finish(ui, session, "a train under £15")[-1]
    before = card_ids(session)
    again = ui.keep_constraints(session, [k for _, k in view.choices])
    assert again.status == "" and card_ids(session) == before


def test_undo_restores_the_previous_turn_and_returns_the_text(ui, fake):
    fake.enqueue(["First [[Rag Doll Emily]].", "Second [[Thomas Tank Engine]].", "Retried [[Thomas Tank Engine]]."])
    session = ui.new_session()
    finish(ui, session, "a soft doll")
    cards_after_first = card_ids(session)
    finish(ui, session, "a train under £10")
    view = ui.undo(session)
    assert view.draft == "a train under £10"
    assert session.state.n_turns == 1 and session.state.prefs.max_price is None
    assert card_ids(session) == cards_after_first and len(view.messages) == 2
    final = list(ui.retry(session))[-1]
    assert session.state.n_turns == 1 and final.messages[-1]["content"] == "Retried **Thomas Tank Engine**."
    assert final.status.startswith("Turn 1 answered again · ")  # a retry that reads the same still shows it ran
    assert session.state.user_texts() == ["a soft doll"] and len(fake.calls) == 3  # retried the same message


def test_actions_on_a_session_wait_for_its_running_turn(ui, fake):
    from chatrec.ui_session import BUSY_TEXT

    fake.enqueue(["First [[Rag Doll Emily]].", "Second [[Thomas Tank Engine]]."])
    session = ui.new_session()
    finish(ui, session, "a soft doll")
    running = ui.send(session, "a train under £10")
    next(running)  # the turn has started streaming in another worker
    busy = ("info", BUSY_TEXT)
    assert [v.toast for v in ui.send(session, "and a puzzle")] == [busy]  # Enter, then Send
    assert [v.toast for v in ui.retry(session)] == [busy]
    assert ui.exclusive(session, ui.undo).toast == busy
    assert ui.exclusive(session, ui.rate_item, 0, -1).toast == busy
    assert session.state.rejected == [] and len(fake.calls) == 1
    for view in running:
        if not view.streaming:
            break  # the answer is on screen; the stream itself ends a moment later
    assert not ui.busy(session)  # a click right now is not refused
    list(running)
    assert session.state.user_texts() == ["a soft doll", "a train under £10"] and len(session.displays) == 2
    view = ui.exclusive(session, ui.rate_item, 0, -1)
    assert view.toast[0] == "info" and view.toast != busy and session.state.rejected
    assert ui.exclusive(session, ui.undo).draft == "a train under £10"


def test_the_end_of_an_old_stream_does_not_free_the_next_turn(ui, fake):
    fake.enqueue(["First [[Rag Doll Emily]].", "Second [[Thomas Tank Engine]]."])
    session = ui.new_session()
    first = ui.send(session, "a soft doll")
    for view in first:
        if not view.streaming:
            break  # the answer is on screen; its stream has not ended yet
    second = ui.send(session, "a train")
    next(second)  # the next turn starts at once and holds the session
    list(first)  # now the first stream ends
    assert ui.busy(session)  # still held by the second turn
    list(second)
    assert not ui.busy(session)


def test_undo_and_retry_with_nothing_to_undo(ui):
    session = ui.new_session()
    assert ui.undo(session).toast == ("info", "Nothing to undo yet.")
    assert [v.toast for v in ui.retry(session)] == [("info", "Nothing to retry yet.")]


@pytest.mark.parametrize("text,message", [
    ("", "Please type a message first."),
    ("   \n\t ", "Please type a message first."),
    ("x" * 4001, "Your message is 4,001 characters long; the limit is 4,000. Please shorten it."),
])
def test_bad_input_is_a_warning_and_changes_nothing(ui, fake, text, message):
    session = ui.new_session()
    views = finish(ui, session, text)
    assert [v.toast for v in views] == [("warning", message)]
    assert session.state.messages == [] and fake.calls == []


def test_a_failing_model_still_answers_with_catalog_matches(ui, fake):
    fake.enqueue([RuntimeError("CUDA out of memory")])
    session = ui.new_session()
    final = finish(ui, session, "a train set")[-1]
    assert final.toast == ("warning", "The language model failed; showing the best catalog matches instead.")
    assert final.messages[-1]["content"].startswith("⚠️ Sorry — the language model failed")
    assert len(session.cards) == ui.slots


def test_an_unexpected_bug_rolls_back_and_hides_internals(ui, monkeypatch):
    session = ui.new_session()

    def broken(state, text):
        state.messages.append(object())
        yield "partial"
        raise KeyError("internal detail")

    monkeypatch.setattr(ui.recommender, "respond", broken)
    final = finish(ui, session, "a train set")[-1]
    assert final.toast == ("error", "Something went wrong while answering. Please try again; "
                                    "the details are in the server log.")
    assert session.state.messages == [] and session.undo_stack == []


def test_sessions_do_not_share_state(ui):
    a, b = ui.new_session(), ui.new_session()
    finish(ui, a, "a train under £15")
    assert b.state.messages == [] and b.state.prefs.max_price is None and b.cards == []
    assert a.state.conversation_id != b.state.conversation_id


# -- escaping ------------------------------------------------------------------------------
@pytest.mark.parametrize("text,expected", [
    ("**bold** & more", "**bold** &amp; more"),
    ("<img src=x onerror=alert(1)>", "&lt;img src=x onerror=alert(1)&gt;"),
    ("[site](https://example.com/a_(b))", "[site](https://example.com/a_(b))"),
    ("[x](javascript:alert(1))", "x"),
    ("[x](JavaScript:alert(document.cookie))", "x"),
    ("[x](<javascript:alert(1)>)", "x"),
    ("[x](data:text/html;base64,PHNjcmlwdD4=)", "x"),
    ("[x](javascript:a((1)))", "[x] (javascript:a((1)))"),
    ("![pixel](https://tracker.example/p.gif)", "pixel"),
    ("[ref]: javascript:alert(1)", ""),
    ("mail [me](mailto:a@b.c) or [top](#top)", "mail [me](mailto:a@b.c) or [top](#top)"),
    ("", ""),
    ("🧸", "🧸"),
])
def test_safe_markdown(text, expected):
    assert safe_markdown(text) == expected


def test_user_text_and_catalog_fields_are_escaped(make_services, tmp_path, fake):
    rows = SMALL_CATALOG + [{"id": "x1", "title": "<script>alert('t')</script> Train",
                             "category": "Trains<b>", "price": 5.0,
                             "attributes": {"brand": "<img src=x onerror=alert(2)>", "rating": 4.5}}]
    services = make_services(write_jsonl(tmp_path / "evil.jsonl", rows), backend=fake)
    ui = ChatController(services)
    session = ui.new_session()
    view = finish(ui, session, "<b>a train</b> [x](javascript:alert(1))")[-1]
    assert view.messages[0]["content"] == "&lt;b&gt;a train&lt;/b&gt; x"
    html = card_html(services.catalog.by_id["x1"], 1, "<i>why</i>", "ranker")
    assert "<script>" not in html and "<img" not in html and "<b>" not in html and "<i>" not in html
    assert "&lt;script&gt;alert(&#x27;t&#x27;)&lt;/script&gt; Train" in html


def test_a_film_card_shows_its_year_genres_credits_and_plot_not_a_missing_price():
    from chatrec.catalog import Item

    film = Item("f1", "The Babadook (2014)", "A single mother and her son <b>fall</b> into a deep well of paranoia " * 4,
                "movie", attributes={"genre": ["horror", "mystery"], "director": ["Jennifer Kent"],
                                     "star": ["Essie Davis", "Noah Wiseman", "Daniel Henshall"], "year": 2014})
    html = card_html(film, 1, "why", "ranker")
    text = re.sub(r"<[^>]+>", "", html)
    assert "2014 · horror, mystery · dir. Jennifer Kent · Essie Davis, Noah Wiseman" in text
    assert "Daniel Henshall" not in text and "Price not listed" not in text and "No ratings yet" not in text
    plot = re.search(r'<div class="rec-plot">(.*?)</div>', html).group(1)
    assert plot.startswith("A single mother and her son &lt;b&gt;fall&lt;/b&gt;") and plot.endswith("…")
    assert len(re.sub(r"&[a-z]+;", "x", plot)) <= 161
    toy = Item("t1", "Wooden Train", "A train.", "Trains", None, attributes={"brand": "Brio"})
    assert "Price not listed" in card_html(toy, 1, "", "ranker")  # a product keeps its price line


def test_banner_says_no_lm_mode_and_escapes_notices():
    assert "Running without a language model" in banner_html([], no_lm=True)
    assert banner_html([], no_lm=False) == ""
    html = banner_html(["Skipped 1 bad catalog row(s); first: <b>x</b>"], no_lm=False)
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "Running without" not in html


# -- app wiring ----------------------------------------------------------------------------
def test_build_app_has_card_buttons_and_insights(services):
    import gradio as gr

    from chatrec.ui import build_app

    demo = build_app(services.settings, services)
    assert isinstance(demo, gr.Blocks)
    ids = {b.elem_id for b in demo.blocks.values() if getattr(b, "elem_id", None)}
    for n in range(1, services.settings.n_recommendations + 1):
        assert {f"item-up-{n}", f"item-down-{n}", f"item-card-{n}"} <= ids
    assert {"chat", "msg", "send", "retry", "undo", "new-chat", "understood", "insights-refresh",
            "export-csv", "export-parquet", "conv-picker", "notice-banner"} <= ids


@pytest.mark.parametrize("value,expected", [(None, None), ("", None), ("ann:s3cret:x", ("ann", "s3cret:x"))])
def test_parse_auth(value, expected):
    from chatrec.ui import parse_auth
    assert parse_auth(value) == expected


@pytest.mark.parametrize("value", ["ann", "ann:", ":pw"])
def test_parse_auth_rejects_malformed(value):
    from chatrec.ui import parse_auth
    with pytest.raises(ConfigError, match="USER:PASSWORD"):
        parse_auth(value)


def test_app_flags_fall_back_to_env(monkeypatch):
    import app
    from chatrec.cli import settings_from_args

    monkeypatch.setenv("CHATREC_PORT", "9123")
    monkeypatch.setenv("CHATREC_MODEL", "none")
    settings = settings_from_args(app.parse_args(["--host", "0.0.0.0", "--auth", "a:b"]))
    assert (settings.port, settings.model, settings.host, settings.auth) == (9123, "none", "0.0.0.0", "a:b")
    settings = settings_from_args(app.parse_args(["--port", "8000"]))
    assert (settings.port, settings.host) == (8000, "127.0.0.1")


def test_app_stops_at_once_when_its_port_is_taken(monkeypatch, capsys):
    import socket

    import app
    import chatrec.services

    def must_not_load(*args, **kwargs):
        raise AssertionError("services were built although the port is taken")

    monkeypatch.setattr(chatrec.services, "build_services", must_not_load)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert app.main(["--model", "none", "--port", str(port)]) == 2
    assert f"cannot serve on 127.0.0.1:{port}" in capsys.readouterr().err


# -- insights ------------------------------------------------------------------------------
def _frames():
    d1, d2 = datetime(2026, 1, 1, 10), datetime(2026, 1, 2, 9)
    conversations = pd.DataFrame({"id": ["a", "b", "c"], "created_at": [d1, d1, d2], "model": "m", "catalog": ""})
    turns = pd.DataFrame({
        "id": [1, 2, 3, 4], "conversation_id": ["a", "a", "b", "c"], "index": [1, 2, 1, 1],
        "created_at": [d1, d1, d1, d2], "status": ["ok", "ok", "failed", "ok"],
        "latency_ms": [100.0, 300.0, 200.0, 50.0],
        "state_json": ['{"category": "Trains", "budget": "under £20"}', '{"category": "Trains", "budget": null}',
                       '{"category": "Dolls"}', "not json"]})
    feedback = pd.DataFrame({
        "id": [1, 2, 3, 4, 5], "conversation_id": ["a", "a", "a", "b", "c"], "turn_id": [1, 1, 2, 3, 4],
        "target": ["message", "item", "item", "item", "message"], "item_id": [None, "t3", "t3", "d1", None],
        "value": [1, 1, 1, -1, -1], "created_at": [d1, d1, d1, d1, d2]})
    mentions = pd.DataFrame({"id": [1, 2, 3], "turn_id": [1, 2, 4], "text": ["x", "y", "z"],
                             "item_id": ["t3", None, "d1"], "method": "span", "confidence": 1.0})
    return {"conversations": conversations, "turns": turns, "feedback": feedback, "mentions": mentions,
            "recommendations": pd.DataFrame()}


def test_insights_numbers_from_hand_made_rows():
    ins = from_frames(_frames(), title=lambda i: f"Title {i}")
    assert ins.activity.to_dict("list") == {"day": ["2026-01-01", "2026-01-02"], "conversations": [2, 1],
                                            "turns": [3, 1]}
    assert ins.thumbs.to_dict("list") == {"day": ["2026-01-01", "2026-01-01", "2026-01-02"],
                                          "target": ["item", "message", "message"],
                                          "up_rate": [2 / 3, 1.0, 0.0], "votes": [3, 1, 1]}
    assert ins.latency.to_dict("list") == {"day": ["2026-01-01", "2026-01-02"], "p50_ms": [200.0, 50.0],
                                           "p95_ms": [290.0, 50.0], "turns": [3, 1]}
    assert ins.grounding.to_dict("list") == {"day": ["2026-01-01", "2026-01-02"], "mentions": [2, 1],
                                             "ungrounded": [1, 0], "ungrounded_share": [0.5, 0.0]}
    assert ins.top_liked.to_dict("records") == [{"item": "Title t3", "id": "t3", "up": 2, "down": 0}]
    assert ins.most_rejected.to_dict("records") == [{"item": "Title d1", "id": "d1", "up": 0, "down": 1}]
    # counted once per conversation: conversation a asked for Trains in two turns
    assert ins.categories.to_dict("list") == {"category": ["Dolls", "Trains"], "conversations": [1, 1]}
    assert ins.budgets.to_dict("list") == {"budget": ["under £20"], "conversations": [1]}
    s = ins.summary
    assert (s["conversations"], s["turns"], s["failed_turns"], s["votes"]) == (3, 4, 1, 5)
    assert (s["message_up_rate"], s["item_up_rate"], s["ungrounded"], s["ungrounded_share"]) == (0.5, 2 / 3, 1, 1 / 3)
    assert s["latency_p50_ms"] == 150.0
    assert "1 of 3 (33%)" in kpi_html(ins)


def test_insights_of_an_empty_database(services):
    panel = InsightsPanel(services)
    data = panel.refresh()
    assert "<div class=\"kpi-value\">0</div>" in data["kpis"] and data["conversations"] == []
    assert data["top_liked"].to_dict("list") == {"Item": ["No item votes yet"], "👍": [""], "👎": [""]}
    assert data["timeline"].axes[0].get_title(loc="left") == "Conversations and turns per day"


def test_insights_and_viewer_reflect_clicks_in_the_chat(ui, tmp_path):
    session = ui.new_session()
    finish(ui, session, "a train under £20")
    top = session.cards[0].item_id
    ui.rate_item(session, 0, 1)
    ui.rate_message(session, 1, True)
    panel = InsightsPanel(ui.services, export_dir=tmp_path / "exports")
    data = panel.refresh()
    title = ui.services.catalog.by_id[top].title
    assert data["top_liked"].to_dict("records") == [{"Item": title, "👍": 1, "👎": 0}]
    assert data["budgets"].to_dict("list") == {"budget": ["under £20"], "conversations": [1]}
    (label, conv_id), = data["conversations"]
    assert conv_id == session.state.conversation_id and "1 turn(s) · a train under £20" in label
    replay = panel.replay_html(conv_id)
    assert "🧑 a train under £20" in replay and f"{title} <span class='replay-meta'>[ranker]</span> 👍" in replay
    assert data["csv"].endswith(".zip") and data["parquet"].endswith(".zip")


def test_exports_leave_only_zips_and_the_own_folder_goes_with_the_panel(services):
    import gc

    panel = InsightsPanel(services)
    folder = panel.export_dir
    data = panel.refresh()
    assert sorted(p.suffix for p in folder.iterdir()) == [".zip", ".zip"]  # no staging folders left
    assert Path(data["csv"]).parent == folder
    del panel, data
    gc.collect()
    assert not folder.exists()


def test_viewer_without_a_pick(services):
    assert "Pick a conversation" in InsightsPanel(services).replay_html(None)


def test_controller_view_of_empty_state(ui):
    session = ui.new_session()
    view = ui.view(session)
    assert view.messages == [] and view.choices == [] and view.cards == [""] * ui.slots
    assert isinstance(session.state, DialogueState)


# -- the one-line "why" --------------------------------------------------------------------
def _item(**kw):
    from chatrec.catalog import Item

    base = {"id": "x", "title": "Wooden Train Set", "description": "A wooden railway with a bridge.",
            "category": "Trains", "price": 25.0, "attributes": {"brand": "Brio", "rating": 4.5, "review_count": 1}}
    return Item(**{**base, **kw})


@pytest.mark.parametrize("prefs,item,expected", [
    ({}, {}, "Rated 4.5/5 from 1 review"),
    ({"category": "Trains", "max_price": 30.0, "must_have": ["bridge", "tunnel"]}, {},
     "In Trains; has bridge; £25.00 fits your budget (under £30); rated 4.5/5 from 1 review"),
    ({"max_price": 20.0, "exclude": ["lego"]}, {"attributes": {"brand": "Brio", "rating": 3.0}}, "No lego"),
    ({"min_price": 10.0}, {"attributes": {"rating": 4.0, "review_count": 2000}},
     "£25.00, within your range; rated 4/5 from 2,000 reviews"),
    ({}, {"attributes": {"brand": "Brio"}}, "By Brio; a Trains pick close to what you described"),
    ({}, {"attributes": {}, "category": None}, "Close to what you described"),
    ({"must_have": ["jim carrey", "dog"]}, {"title": "The Mask (1994)", "description": "A clerk, a mask and a dog.",
                                            "category": "movie", "attributes": {"star": ["Jim Carrey", "Cameron Diaz"]}},
     "With Jim Carrey; has dog"),  # a person as the catalog spells the name
])
def test_explain_quotes_only_the_item_and_the_request(prefs, item, expected):
    from chatrec.explain import explain
    from chatrec.state import Preferences

    state = DialogueState()
    state.prefs = Preferences(**prefs)
    assert explain(state, _item(**item)) == expected


def test_explain_names_the_genres_years_and_people_the_ranking_followed():
    """On a film catalog: the genres asked for that the film has, its year when it is in the era asked
    for, a person asked for, or else a person it shares with a film the user liked."""
    from chatrec.catalog import Item
    from chatrec.explain import explain

    elf = Item("elf", "Elf (2003)", attributes={"genre": ["comedy", "family"], "star": ["Will Ferrell"], "year": 2003})
    roxbury = Item("rox", "A Night at the Roxbury (1998)", attributes={
        "genre": ["comedy", "music"], "star": ["Will Ferrell", "Chris Kattan"], "year": 1998})
    state = DialogueState(mentioned={"elf": 1})
    lookup = {"elf": elf, "rox": roxbury}.get
    assert explain(state, roxbury, wishes=["Genre: comedy"], era=(1990, 1999), lookup=lookup) == \
        "Comedy; from 1998; with Will Ferrell, as in Elf (2003)"
    assert explain(state, roxbury, wishes=["Genre: comedy", "With: Chris Kattan"], era=(2010, 9999), lookup=lookup) == \
        "Comedy; with Chris Kattan"  # the person asked for; 1998 is not in the era asked for
    assert explain(DialogueState(), roxbury) == "Close to what you described"  # nothing asked: nothing claimed


# -- the start-up page ---------------------------------------------------------------------
def test_startup_page_serves_progress_then_frees_the_port():
    import re
    import socket
    import urllib.error
    import urllib.request

    from chatrec.ui_startup import StartupPage

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    page = StartupPage("127.0.0.1", port)
    assert page.start()
    try:
        assert not StartupPage("127.0.0.1", port).start()  # port busy: stays quiet
        page.update("Loading catalog <toys>...")
        page.update("Embedding 863 catalog items (first start only)...")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/anything", timeout=5)
        assert err.value.code == 503 and err.value.headers["Retry-After"] == "1"
        body = err.value.read().decode()
        assert "Loading catalog &lt;toys&gt;... <span class=\"t\">done in" in body
        assert re.search(r'<li class=now data-began="\d+">Embedding 863 catalog items \(first start only\)\.\.\. '
                         r'<span class="t">\(\d+ s so far\)</span></li></ol>', body)
    finally:
        page.stop()
    with socket.socket() as s:  # what Gradio does next: bind the same port
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))


def test_the_page_speaks_of_films_for_a_film_catalog_and_of_gifts_for_a_shop(tmp_path):
    from chatrec.catalog import load_catalog
    from chatrec.ui_view import FILM_COPY, SHOP_COPY, copy_for, header_html

    films = [{"id": f"f{i}", "title": f"Film {i} (199{i})", "description": "A story.",
              "attributes": {"genre": ["comedy"], "year": 1990 + i}} for i in range(6)]
    assert copy_for(load_catalog(write_jsonl(tmp_path / "films.jsonl", films))) is FILM_COPY
    assert copy_for(load_catalog(write_jsonl(tmp_path / "shop.jsonl", SMALL_CATALOG))) is SHOP_COPY
    assert "film finder" in header_html(6, "none", FILM_COPY) and "🎬" in header_html(6, "none", FILM_COPY)
    assert "gift finder" in header_html(6, "none")
