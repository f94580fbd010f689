"""One turn through every stage with a scripted LM: replies, grounded recommendations, DB rows,
bad input, a failing model, and feedback."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from chatrec.backends.fake import FakeBackend
from chatrec.errors import InputError
from chatrec.recommender import Recommender, TurnResult
from chatrec.schema import Feedback, Mention, Recommendation, Turn


@pytest.fixture
def fake():
    return FakeBackend()


@pytest.fixture
def rec(make_services, small_catalog_path, fake):
    return Recommender(make_services(small_catalog_path, backend=fake))


def test_streamed_reply_grounds_real_items_and_flags_invented_ones(rec, fake):
    fake.enqueue(["Try [[Thomas Tank Engine]] for a toddler, or the **FreeMoney 3000** deluxe!"])
    state = rec.new_state()
    events = list(rec.respond(state, "a train for my toddler under £20"))
    partials, result = events[:-1], events[-1]
    assert isinstance(result, TurnResult)
    assert len(partials) >= 5 and all(b.startswith(a) for a, b in zip(partials, partials[1:]))  # streamed
    assert [(r.item.id, r.source) for r in result.recommendations][:1] == [("t3", "span")]
    assert result.ungrounded == ["FreeMoney 3000"]
    assert "FreeMoney 3000" not in [r.item.title for r in result.recommendations]
    assert "~~FreeMoney 3000~~ _(not in our catalog)_" in result.display
    assert "**Thomas Tank Engine**" in result.display
    # every card is a real catalog item within budget
    assert all(r.item.price is None or r.item.price <= 20 for r in result.recommendations)
    assert state.prefs.max_price == 20.0


def test_turn_is_logged_with_recommendations_and_mentions(rec, fake):
    fake.enqueue(["I'd pick [[Rag Doll Emily]].", "Also [[Thomas Tank Engine]]."])
    state = rec.new_state()
    first = rec.run_turn(state, "a soft doll")
    second = rec.run_turn(state, "and something for a train fan")
    with rec.s.store.session() as s:
        turns = s.scalars(select(Turn).order_by(Turn.id)).all()
        assert [(t.index, t.user_text, t.status, t.model) for t in turns] == [
            (1, "a soft doll", "ok", "fake"), (2, "and something for a train fan", "ok", "fake")]
        assert turns[0].reply == "I'd pick [[Rag Doll Emily]]."
        assert "[[Rag Doll Emily]]" in turns[0].prompt or "Candidate items" in turns[0].prompt
        recs = s.scalars(select(Recommendation).where(Recommendation.turn_id == first.turn_id)
                         .order_by(Recommendation.rank)).all()
        assert [r.item_id for r in recs] == [r.item.id for r in first.recommendations]
        assert recs[0].item_id == "d2" and recs[0].source == "span" and recs[0].grounded
        mentions = s.scalars(select(Mention).where(Mention.turn_id == second.turn_id)).all()
        assert [(m.text, m.item_id) for m in mentions] == [("Thomas Tank Engine", "t3")]
    assert state.turn_ids == [first.turn_id, second.turn_id]
    # the LM saw the whole conversation
    messages, _ = fake.calls[1]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]


@pytest.mark.parametrize("text, message", [
    ("", "Please type a message first."),
    ("   \n\t ", "Please type a message first."),
    ("\x00\x01", "Please type a message first."),
    ("x" * 100_000, "Your message is 100,000 characters long; the limit is 4,000."),
])
def test_bad_input_is_refused_and_changes_nothing(rec, text, message):
    state = rec.new_state()
    with pytest.raises(InputError, match=message):
        list(rec.respond(state, text))
    assert state.messages == [] and state.turn_ids == []
    with rec.s.store.session() as s:
        assert s.scalars(select(Turn)).all() == []


@pytest.mark.parametrize("text", ["🚂🚂 train!!", "قطار للأطفال train", "<script>alert(1)</script> train",
                                  "'; DROP TABLE turns; --", "a\u202eb train"])
def test_odd_unicode_and_markup_are_handled_and_stored_verbatim(rec, text):
    state = rec.new_state()
    result = rec.run_turn(state, text)
    assert result.status == "ok" and result.recommendations
    with rec.s.store.session() as s:
        assert s.scalars(select(Turn.user_text)).one() == text


def test_model_failure_mid_reply_is_reported_logged_and_recoverable(rec, fake):
    fake.enqueue([RuntimeError("CUDA exploded"), "Fine again: [[Thomas Tank Engine]]"])
    state = rec.new_state()
    failed = rec.run_turn(state, "a train")
    assert failed.status == "failed" and "CUDA exploded" in failed.error
    assert failed.display.startswith("⚠️ Sorry — the language model failed")
    assert failed.recommendations  # still useful: the ranker's best
    ok = rec.run_turn(state, "a train engine")
    assert ok.status == "ok" and ok.recommendations[0].item.id == "t3"
    with rec.s.store.session() as s:
        assert [t.status for t in s.scalars(select(Turn).order_by(Turn.id))] == ["failed", "ok"]


def test_feedback_rows_and_thumbs_down_item_never_returns(rec, fake):
    state = rec.new_state()
    first = rec.run_turn(state, "train")
    down = first.recommendations[0].item.id
    rec.feedback(state, -1, item_id=down)
    rec.feedback(state, +1, message_index=0)
    for _ in range(3):
        result = rec.run_turn(state, "train please, any train")
        assert down not in [r.item.id for r in result.recommendations]
    rows = rec.s.store.feedback_rows(state.conversation_id)
    assert [(r.target, r.value, r.item_id, r.turn_id) for r in rows] == [
        ("item", -1, down, None), ("message", 1, None, first.turn_id)]
    with pytest.raises(InputError):
        rec.feedback(rec.new_state(), 1, message_index=0)  # nothing to rate yet


def test_no_lm_mode_gives_templated_reply(make_services, small_catalog_path):
    rec = Recommender(make_services(small_catalog_path, backend=None))
    result = rec.run_turn(rec.new_state(), "a jigsaw puzzle")
    assert result.recommendations[0].item.id == "p1"
    assert "**Ravensburger 1000 Piece Jigsaw Puzzle**" in result.display
    assert result.ungrounded == []
