"""Prompt building: strict templates from prompts/, candidates and state in the system prompt,
oldest turns trimmed to fit the budget (never the system prompt or the current message)."""
from __future__ import annotations

import shutil

import pytest

from chatrec.catalog import load_catalog
from chatrec.errors import ConfigError, InputError
from chatrec.prompts import PROMPTS_DIR, PromptBuilder
from chatrec.state import DialogueState, Message


def words(messages) -> int:
    return sum(len(m["content"].split()) for m in messages)


@pytest.fixture
def catalog(small_catalog_path):
    return load_catalog(small_catalog_path)


def test_system_prompt_lists_candidates_with_markers_and_state(catalog):
    builder = PromptBuilder(catalog)
    state = DialogueState(messages=[Message("user", "a train under £30")])
    state.prefs.max_price = 30.0
    state.prefs.exclude.append("lego")
    state.reject("d1")
    system = builder.system_prompt(state, [catalog.by_id["t2"], catalog.by_id["t3"]])
    assert "Candidate items, all in Trains (best match first):" in system
    assert "1. [[Wooden Train Track Starter]] | £19.50 | brand: BigJigs | rated 4.2/5" in system
    assert "2. [[Thomas Tank Engine]] | £9.99" in system
    assert "- budget: under £30" in system
    assert "- does not want: lego" in system
    assert "- rejected (never recommend again): Barbie Dreamhouse Doll" in system


def test_candidate_lines_say_each_detail_once(catalog):
    """Candidates are re-read every turn, so a line carries no repeats: a brand already in the title,
    a description that opens with the title, a category shared by the whole list (said once)."""
    import dataclasses

    builder = PromptBuilder(catalog)
    hornby = catalog.by_id["t1"]  # brand Hornby, in its title
    echo = dataclasses.replace(catalog.by_id["d2"], description="Rag Doll Emily - soft cloth rag doll, handmade. " + "x" * 200)
    system = builder.system_prompt(DialogueState(), [hornby, echo])
    assert "1. [[Hornby Express Train Set]] | £79.99 | Trains | rated 4.6/5" in system  # mixed: category per line
    assert "brand: Hornby" not in system and "Candidate items (best match first):" in system
    assert "2. [[Rag Doll Emily]] | £14.00 | brand: Jellycat | Dolls | rated 4.9/5\n   soft cloth rag doll, handmade." in system
    blurb = system.split("\n   ")[-1]
    assert blurb.endswith("…") and len(blurb) <= 101  # long descriptions are cut at a word, marked


def test_no_candidates_tells_the_model_to_ask(catalog):
    system = PromptBuilder(catalog).system_prompt(DialogueState(), [])
    assert "(no items match the current constraints" in system
    assert "- nothing specific yet" in system


def test_oldest_turns_are_trimmed_first(catalog):
    builder = PromptBuilder(catalog)
    state = DialogueState()
    for i in range(6):
        state.messages += [Message("user", f"user turn {i} " + "word " * 20), Message("assistant", f"reply {i} " + "x " * 20)]
    state.messages.append(Message("user", "latest question"))
    system_words = words([{"content": builder.system_prompt(state, [catalog.by_id["t1"]])}])
    messages = builder.build(state, [catalog.by_id["t1"]], words, budget=system_words + 100)
    assert messages[0]["role"] == "system" and "[[Hornby Express Train Set]]" in messages[0]["content"]
    assert messages[-1] == {"role": "user", "content": "latest question"}
    assert messages[1]["role"] == "user"  # the window starts on a user turn
    assert words(messages) <= system_words + 100
    assert len(messages) < 1 + len(state.messages)
    kept = [m["content"] for m in messages[1:]]
    assert kept == [m.content for m in state.messages[-len(kept):]]  # a suffix: newest kept, oldest dropped


def test_a_message_too_long_for_the_context_is_a_clear_error(catalog):
    state = DialogueState(messages=[Message("user", "word " * 500)])
    with pytest.raises(InputError, match="too long for the model's context window"):
        PromptBuilder(catalog).build(state, [], words, budget=200)


def test_a_system_prompt_that_alone_overflows_the_context_blames_the_set_up_not_the_user(catalog):
    state = DialogueState(messages=[Message("user", "hi")])
    system_words = words([{"content": PromptBuilder(catalog).system_prompt(state, list(catalog))}])
    with pytest.raises(InputError, match=rf"candidate items alone take {system_words:,} tokens.*budget of 20;"):
        PromptBuilder(catalog).build(state, list(catalog), words, budget=20)


def test_template_with_unknown_variable_fails_on_load(catalog, tmp_path):
    shutil.copytree(PROMPTS_DIR, tmp_path / "p")
    (tmp_path / "p" / "state.j2").write_text("{{ user_secret }} {{ state.budget }}")
    with pytest.raises(ConfigError, match=r"system.j2 uses undefined variable\(s\) user_secret"):
        PromptBuilder(catalog, prompt_dir=tmp_path / "p")


def test_missing_template_fails_on_load(catalog, tmp_path):
    shutil.copytree(PROMPTS_DIR, tmp_path / "p")
    (tmp_path / "p" / "reply_none.j2").unlink()
    with pytest.raises(ConfigError, match="reply_none.j2 is missing"):
        PromptBuilder(catalog, prompt_dir=tmp_path / "p")


def test_none_reply_lists_the_items_and_asks_for_budget(catalog):
    state = DialogueState(messages=[Message("user", "trains")])
    reply = PromptBuilder(catalog).none_reply(state, [catalog.by_id["t3"], catalog.by_id["t2"]])
    assert "1. **Thomas Tank Engine** — £9.99, rated 4.8/5" in reply
    assert "2. **Wooden Train Track Starter** — £19.50" in reply
    assert reply.endswith("Do you have a budget in mind?")


@pytest.mark.parametrize("said", [["hello"], ["hi there!", "what can you do?"]])
def test_a_greeting_gets_asked_what_they_want_not_told_what_it_said(catalog, said):
    """Nothing said yet to follow: the reply asks for it and calls the items popular picks, rather than
    "Based on what you've told me"."""
    state = DialogueState(messages=[Message("user", text) for text in said])
    reply = PromptBuilder(catalog).none_reply(state, [catalog.by_id["t3"]])
    opening = "Hi! Tell me who it's for" if len(said) == 1 else "Tell me who it's for"
    assert reply.startswith(opening) and "told me" not in reply and "1. **Thomas Tank Engine**" in reply
    state.messages.append(Message("user", "trains"))
    assert PromptBuilder(catalog).none_reply(state, [catalog.by_id["t3"]]).startswith("Based on what you've told me")


def test_a_must_have_no_item_mentions_is_owned_up_to(catalog):
    """Asked for fire engines where the catalog has none, the reply says so instead of presenting the
    closest trains as matches; said once, it is not repeated on later turns."""
    state = DialogueState(messages=[Message("user", "he is obsessed with fire engines")])
    state.prefs.must_have = ["fire engines"]
    builder = PromptBuilder(catalog)
    reply = builder.none_reply(state, [catalog.by_id["t3"]])
    assert reply.startswith("I found nothing that mentions fire engines; the closest picks I have:")
    assert "1. **Thomas Tank Engine**" in reply and reply.endswith("Is there something else they like?")
    state.prefs.must_have = ["engines"]  # the item says "engine": it mentions it
    state.messages[0] = Message("user", "anything with engines?")
    assert "nothing that mentions" not in builder.none_reply(state, [catalog.by_id["t3"]])
    state.prefs.must_have = ["fire engines"]
    state.messages.append(Message("user", "ok, trains then"))
    assert "nothing that mentions" not in builder.none_reply(state, [catalog.by_id["t3"]])
    state.messages.append(Message("user", "something cheaper, under a tenner"))
    state.narrowed = True  # a filter changed: what it leaves out is news again
    assert builder.none_reply(state, [catalog.by_id["t3"]]).startswith("I found nothing that mentions fire engines")
    state.messages[0] = Message("user", "he is obsessed with Fire Engines")
    assert builder.none_reply(state, [catalog.by_id["t3"]]).startswith("I found nothing that mentions Fire Engines")


def test_the_lm_is_told_when_no_candidate_has_what_the_user_asked_for(catalog):
    """With an LM, "she loves unicorns" reached the prompt as a must-have only, beside candidates none
    of which mentions unicorns: nothing stopped the LM from calling a gel pen a unicorn gift."""
    state = DialogueState(messages=[Message("user", "she loves unicorns")])
    state.prefs.must_have = ["unicorns"]
    builder = PromptBuilder(catalog)
    line = "- no candidate mentions unicorns: say so, and never claim an item has it"
    assert line in builder.system_prompt(state, [catalog.by_id["t3"], catalog.by_id["d2"]])
    assert line in PromptBuilder(catalog, context_after_history=True).turn_context(state, [catalog.by_id["t3"]])
    state.prefs.must_have = ["engine"]
    state.messages[0] = Message("user", "anything with an engine?")
    assert "no candidate mentions" not in builder.system_prompt(state, [catalog.by_id["t3"]])


def test_a_catalog_without_prices_is_not_asked_about_budget(tmp_path):
    from conftest import write_jsonl
    films = load_catalog(write_jsonl(tmp_path / "films.jsonl", [
        {"id": "f1", "title": "The Shining (1980)", "category": "movie"},
        {"id": "f2", "title": "Get Out (2017)", "category": "movie"}]))
    builder = PromptBuilder(films)
    state = DialogueState(messages=[Message("user", "something scary")])
    reply = builder.none_reply(state, list(films))
    assert "budget" not in reply and "kind of product" not in reply
    assert reply.endswith("Tell me one you already love and I'll find more like it, or rate these with 👍 / 👎.")
    assert "budget" not in builder.system_prompt(state, list(films))
    state.liked.append("f1")
    assert builder.none_reply(state, [films.by_id["f2"]]).endswith("Tell me what you think, or rate the items with 👍 / 👎.")


def test_without_an_lm_the_item_asked_about_is_described(tmp_path):
    """"What is the second one about?" with --model none: the reply opens with the catalog's
    description of that item, before the picks; on a one-category catalog it names no category."""
    from conftest import write_jsonl
    films = load_catalog(write_jsonl(tmp_path / "films.jsonl", [
        {"id": "f1", "title": "The Shining (1980)", "category": "movie",
         "description": "A family heads to an isolated hotel for the winter where a sinister presence "
                        "influences the father into violence."},
        {"id": "f2", "title": "Get Out (2017)", "category": "movie"}]))
    state = DialogueState(messages=[Message("user", "a scary movie"), Message("assistant", "How about ..."),
                                    Message("user", "what is the first one about?")], asked=["f1"])
    state.prefs.category = "movie"
    reply = PromptBuilder(films).none_reply(state, list(films))
    assert reply.startswith("**The Shining (1980)**: A family heads to an isolated hotel for the winter where "
                            "a sinister presence influences the father into violence.\n\nBased on what")
    assert "in movie" not in reply
    state.asked = ["f2"]  # nothing to say about it: just the picks
    assert PromptBuilder(films).none_reply(state, list(films)).startswith("Based on what you've told me")


def test_without_an_lm_which_one_is_best_names_the_best_ranked_of_those(tmp_path):
    """"Which one is the best?" after three suggestions: one answer, the best ranked of them, not
    three descriptions. The tracker reads the question; the template says it."""
    from conftest import write_jsonl

    from chatrec.matching import TitleMatcher
    from chatrec.tracker import Tracker

    plot = "A family heads to an isolated hotel for the winter where a sinister presence lurks."
    films = load_catalog(write_jsonl(tmp_path / "films.jsonl", [
        {"id": f"f{n}", "title": title, "category": "movie", "description": f"{title}: {plot}"}
        for n, title in enumerate(["The Shining (1980)", "Get Out (2017)", "It Follows (2014)"])]))
    tracker = Tracker(films, TitleMatcher(films))
    state = DialogueState()
    tracker.observe(state, Message("user", "a scary movie"))
    tracker.observe(state, Message("assistant", "How about The Shining (1980), Get Out (2017) or It Follows (2014)?"))
    tracker.observe(state, Message("user", "which one is the best?"))
    assert state.wants_pick and len(state.asked) == 3
    ranked = [films.by_id[i] for i in ("f1", "f0", "f2")]  # the ranker's order this turn
    reply = PromptBuilder(films).none_reply(state, ranked)
    assert reply.startswith("Of those, I'd go for **Get Out (2017)**: A family heads")
    assert "**The Shining (1980)**:" not in reply
    tracker.observe(state, Message("user", "what are they about?"))
    assert not state.wants_pick and PromptBuilder(films).none_reply(state, ranked).count("A family heads") == 3


def test_a_kind_none_of_the_picks_is_of_is_owned_up_to(catalog):
    """"a farm set for a toddler": every farm toy is labelled 3+, so the picks were rattles, and the reply
    called them "picks in Farm & Animals"."""
    state = DialogueState(messages=[Message("user", "a doll for a toddler")])
    state.prefs.category, state.prefs.age = "Dolls", 2.0
    builder = PromptBuilder(catalog)
    reply = builder.none_reply(state, [catalog.by_id["t3"], catalog.by_id["t2"]])
    assert reply.startswith("I found nothing in Dolls that fits; the closest picks I have (for a 2-year-old):")
    assert reply.endswith("Is there something else they like?")
    assert builder.none_reply(state, [catalog.by_id["d2"], catalog.by_id["t3"]]).startswith(
        "Here are some picks in Dolls (for a 2-year-old):")  # one of them is a doll


def test_who_is_in_the_film_asked_about_is_answered_from_its_credits(tmp_path):
    """ "who's in the second one?" relisted the picks: the question was no follow-up, and the
    description the no-LM reply gives said nothing of the cast. Credits are now part of it."""
    from chatrec.tracker import Tracker
    from chatrec.matching import TitleMatcher
    from conftest import write_jsonl

    rows = [{"id": "o11", "title": "Ocean's Eleven (2001)", "description": "A heist in Las Vegas.",
             "attributes": {"star": ["George Clooney", "Brad Pitt", "Julia Roberts", "Matt Damon"],
                            "director": ["Steven Soderbergh"]}},
            {"id": "o13", "title": "Ocean's Thirteen (2007)", "description": "A third heist.",
             "attributes": {"star": ["George Clooney"], "director": ["Steven Soderbergh"]}},
            {"id": "toy", "title": "Wooden Train", "description": "A train.", "price": 5.0}]
    catalog = load_catalog(write_jsonl(tmp_path / "c.jsonl", rows))
    tracker = Tracker(catalog, TitleMatcher(catalog))
    state = DialogueState()
    tracker.observe(state, Message("assistant", "Try Ocean's Thirteen (2007) or Ocean's Eleven (2001)."))
    tracker.observe(state, Message("user", "who's in the second one?"))
    assert state.asked == ["o11"]
    reply = PromptBuilder(catalog).none_reply(state, [catalog.by_id["o11"], catalog.by_id["o13"]])
    assert reply.startswith("**Ocean's Eleven (2001)**: A heist in Las Vegas. (starring George Clooney, Brad Pitt "
                            "and Julia Roberts; directed by Steven Soderbergh)")
    state.asked = ["toy"]  # no credits: the description alone
    assert PromptBuilder(catalog).none_reply(state, [catalog.by_id["toy"]]).startswith("**Wooden Train**: A train.\n")
