"""Dialogue-state tracking: budgets, exclusions, must-haves, categories and named items with sentiment."""
from __future__ import annotations

import pytest

from chatrec.catalog import load_catalog
from chatrec.matching import TitleMatcher
from chatrec.state import DialogueState, Message
from chatrec.tracker import Tracker, stated_age
from conftest import SMALL_CATALOG, write_jsonl

MOVIES = [
    {"id": "m1", "title": "The Babadook (2014)", "category": "movie", "description": "A widow and her son are haunted."},
    {"id": "m2", "title": "It Follows (2014)", "category": "movie", "description": "A curse passed on by sex."},
    {"id": "m3", "title": "Star Wars: Episode VIII – The Last Jedi (2017)", "category": "movie", "description": "Rey trains."},
    {"id": "m4", "title": "Star Wars (1977)", "category": "movie", "description": "Luke joins the rebels."},
    {"id": "m5", "title": "Get Out (2017)", "category": "movie", "description": "A visit to the girlfriend's parents."},
    {"id": "m6", "title": "The Shining (1980)", "category": "movie", "description": "A hotel in winter."},
    {"id": "m7", "title": "Harry Potter and the Chamber of Secrets (2002)", "category": "movie", "description": "Year two."},
    {"id": "m9", "title": "Up (2009)", "category": "movie", "description": "A balloon house flies up to Paradise Falls."},
]


def _tracker(tmp_path, rows) -> Tracker:
    catalog = load_catalog(write_jsonl(tmp_path / "catalog.jsonl", rows))
    return Tracker(catalog, TitleMatcher(catalog))


def _observe(tracker: Tracker, *texts: str) -> DialogueState:
    state = DialogueState()
    for text in texts:
        tracker.observe(state, Message("user", text))
    return state


@pytest.mark.parametrize("text, lo, hi", [
    ("a train set under £20", None, 20.0),
    ("between 10 and 30 pounds", 10.0, 30.0),
    ("£15-£25 please", 15.0, 25.0),
    ("budget of 40 quid", None, 40.0),
    ("over £25", 25.0, None),
    ("around £30", 22.5, 37.5),
    ("something for under 5s", None, None),  # an age, not a price
    ("up to 5 years", None, None),
    ("max 20", None, None),  # no currency, no price words: too ambiguous to filter on
    ("", None, None),
    ("🚂🚂", None, None),
    ("something under a tenner", None, 10.0),
    ("a fiver or less", None, 5.0),
    ("something cheaper", None, None),  # nothing shown yet: cheaper than nothing
    ("about 25 quid", 18.75, 31.25),
    ("my budget is about 25 quid", None, 25.0),  # a budget is a cap, "about" or not
    ("budget is around £40", None, 40.0),
    ("not too expensive, maybe £20?", None, 20.0),  # the one amount named
    ("£15 please", None, 15.0),
    ("over £30 is too much", None, 30.0),  # a ceiling, though it says "over"
    ("£20 is a bit steep for a stocking filler", None, 20.0),
    ("no more than 25 quid", None, 25.0),  # was also a floor of 25: "more than 25 quid"
    ("nothing over $30", None, 30.0),  # was a floor
    ("nothing over £30, nothing under £10", 10.0, 30.0),
    ("no less than £15", 15.0, None),
    ("a train set, max £1,000", None, 1000.0),  # thousands, not £1.00
    ("between £1,000 and £2,000.50", 1000.0, 2000.5),
    ("under 20,50 €", None, 20.5),  # a decimal comma
])
def test_budget(tmp_path, text, lo, hi):
    prefs = _observe(_tracker(tmp_path, SMALL_CATALOG), text).prefs
    assert (prefs.min_price, prefs.max_price) == (lo, hi)


def test_cheaper_without_an_amount_is_below_the_middle_price_of_what_was_shown(tmp_path):
    tracker = _tracker(tmp_path, SMALL_CATALOG)
    state = _observe(tracker, "a train please")
    tracker.observe(state, Message("assistant", "Try the Hornby Express Train Set, the Wooden Train Track Starter "
                                                "or the Thomas Tank Engine."))  # £79.99, £19.50, £9.99
    tracker.observe(state, Message("user", "something cheaper?"))
    assert state.prefs.max_price == 19.5 and state.prefs.budget_text() == "under £19.50"
    tracker.observe(state, Message("user", "those are too expensive, under £15"))  # an amount wins
    assert state.prefs.max_price == 15.0 and state.prefs.budget_text() == "under £15"


@pytest.mark.parametrize("text, exclude, must_have", [
    ("no Lego please", ["lego"], []),
    ("something scary but nothing with zombies", ["zombies"], []),
    ("anything not by Nolan?", ["nolan"], []),  # a director refused; "not with X" was the only person form
    # what the user is or does, not what to leave out: each filtered out every item whose text has the word
    ("I'm really not picky with movies", [], []),
    ("I am looking for a good movie no matter the genre", [], []),
    ("they are not making movies like they used to", [], []),
    ("I did not catch that one", [], []),
    ("Not necessarily, old or new is ok", [], []),
    ("I am not particularly interested in them", [], []),
    ("something not violent please", ["violent"], []),  # a thing to leave out
    ("no boxing", ["boxing"], []),
    ("you must be a mind reader", [], []),  # "must be X" asks for no X here
    ("it must have happened to you", [], []),
    ("a comedy, nothing starring Jim Carrey", ["jim carrey"], []),
    ("not horror", ["horror"], []),
    ("a film for date night, she doesn't like horror", ["horror"], []),  # someone else's dislike refuses too
    ("he hates cartoons", ["cartoons"], []),
    ("I didn't like the ending", [], []),
    ("a doll, nothing pink", ["pink"], []),
    ("with a remote control", [], ["remote control"]),
    ("no thanks", [], []),
    ("not a puzzle please", ["puzzle"], []),
    ("not a fan of that", [], []),
    ("not a lot of gore please", [], []),  # "a" + a word that names no kind of item: nothing refused
    ("I'm not a kid", [], []),
    ("something fun, but I'm not interested in horror", ["horror"], []),
    ("not a big fan of musicals", ["musicals"], []),
    ("Not really in the mood for horror.", ["horror"], []),
    ("I can't stand Lego", ["lego"], []),
    ("I am so tired of watching cartoons", [], []),  # "watching" is no kind of item
    ("I don't want anything with batteries", ["batteries"], []),  # was "anything", and batteries a wish
    ("not into anything noisy", ["noisy"], []),
    ("I don't want anything", [], []),
    ("he already has a lot of puzzles", ["puzzles"], []),  # owned plenty of: no more of them
    ("she has loads of dolls, something with a remote control", ["dolls"], ["remote control"]),
    ("we've already got a train set", ["train"], []),
    ("any non Lego ones?", ["lego"], []),
    ("I like dramas. No romance though", ["romance"], []),
    ("he has a dinosaur obsession", [], []),  # no "already", no quantity: owns nothing, tells of him
    ("he has a lot of energy", [], []),
    ("lego for my son, he already has lots of Lego City sets", ["lego city"], []),  # a product line owned
    ("he already has lots of good ideas", [], []),  # words no item is described with
    ("one that has a remote control", [], ["remote control"]),
])
def test_exclusions_and_must_haves(tmp_path, text, exclude, must_have):
    prefs = _observe(_tracker(tmp_path, SMALL_CATALOG), text).prefs
    assert (prefs.exclude, prefs.must_have) == (exclude, must_have)


TOPICS = MOVIES + [
    {"id": f"s{n}", "title": f"Deep Water {n} (2001)", "category": "movie", "description": f"A shark hunts surfers {n}."}
    for n in range(3)]


@pytest.mark.parametrize("text, topics", [
    ("zombie movies please", ["zombie"]),  # a genre's subject is a topic too
    ("any shark movies?", ["shark"]),
    ("a film about sharks please", ["sharks"]),
    ("funny movies", []),  # how films feel, not what they are about
    ("some good sci-fi movies", []),
    ("any good chick flicks?", []),
    ("Star Wars movies", []),  # a title
    ("no zombie movies", []),  # refused, not wished
    ("a date night movie", []),
    ("hurricane movies", []),  # no item is about it: nothing to look for
])
def test_what_the_films_are_about_is_a_must_have(tmp_path, text, topics):
    """"zombie movies" led with It and Get Out: the word counted only as the genre and in BM25, and
    what people asking for horror had been offered outweighed it."""
    assert _observe(_tracker(tmp_path, TOPICS), text).prefs.must_have == topics


@pytest.mark.parametrize("text, category", [
    ("a train set under £20", "Trains"),
    ("a puzzle for my nan", "Puzzles"),
    ("no Lego please", None),
    ("hello", None),
    ("a train for my nephew, he already has a lot of puzzles", "Trains"),  # owned: no wish for puzzles
])
def test_category(tmp_path, text, category):
    assert _observe(_tracker(tmp_path, SMALL_CATALOG), text).prefs.category == category


@pytest.mark.parametrize("text, category, must_have", [
    ("a train puzzle", "Puzzles", ["train"]),  # a puzzle (of a train), not a train: the last noun is the kind
    ("a puzzle train", "Trains", ["puzzle"]),
    ("a train set", "Trains", []),
])
def test_a_kind_named_before_another_qualifies_it(tmp_path, text, category, must_have):
    prefs = _observe(_tracker(tmp_path, SMALL_CATALOG), text).prefs
    assert (prefs.category, prefs.must_have) == (category, must_have)


def test_a_kind_whose_items_are_called_by_the_next_word_is_that_kind(tmp_path):
    """ "A 1000 piece jigsaw puzzle for my gran" (the app's own example) picked "3-D Puzzles" with
    "jigsaw" a must-have: a noun before another qualifies it, as in "a train puzzle". But most
    jigsaws' titles say "puzzle": a jigsaw puzzle is a jigsaw."""
    rows = SMALL_CATALOG + [{"id": f"j{n}", "title": f"Seaside {n} Jigsaw Puzzle (1000 Pieces)", "category": "Jigsaws",
                             "price": 9.0} for n in range(3)]
    tracker = _tracker(tmp_path, rows)
    prefs = _observe(tracker, "A 1000 piece jigsaw puzzle for my gran").prefs
    assert (prefs.category, prefs.must_have) == ("Jigsaws", [])
    prefs = _observe(tracker, "a train puzzle").prefs
    assert (prefs.category, prefs.must_have) == ("Puzzles", ["train"])  # no train's title says puzzle


def test_a_reaction_that_sounds_good_asks_for_no_sound_toys(tmp_path):
    rows = SMALL_CATALOG + [{"id": "s1", "title": "Cow Sounder", "category": "Sound Toys", "price": 3.0}]
    tracker = _tracker(tmp_path, rows)
    assert _observe(tracker, "a train please", "the first one sounds fun").prefs.category == "Trains"
    assert _observe(tracker, "a train please", "that looks great").prefs.category == "Trains"
    assert _observe(tracker, "a train please", "any sound toys?").prefs.category == "Sound Toys"


def test_a_common_word_of_a_category_name_does_not_switch_to_it(tmp_path):
    rows = SMALL_CATALOG + [{"id": "bob", "title": "Scoop Digger", "category": "Bob the Builder"}]
    state = _observe(_tracker(tmp_path, rows), "a train set under £20", "what is the first one about?")
    assert state.prefs.category == "Trains"  # not "Bob the Builder", for its "the"
    assert _observe(_tracker(tmp_path, rows), "anything Bob the Builder?").prefs.category == "Bob the Builder"


def test_single_letters_and_digits_are_no_words_of_a_category(tmp_path):
    rows = [{"id": "p", "title": "Dragon Vase", "category": "3-D Puzzles"},
            {"id": "g", "title": "Kids Rake", "category": "Garden Tools"}]
    # "3" and "d" are no words of the category: "puzzle" matches it as fully as "gardens" matches Garden Tools
    assert _observe(_tracker(tmp_path, rows), "a puzzle for my gran, she loves gardens").prefs.category == "3-D Puzzles"
    rows.append({"id": "j", "title": "Castle 1000", "category": "Jigsaws"})
    for text, category in (("something in jigsaws & puzzles", "Jigsaws"), ("puzzles or jigsaws", "3-D Puzzles")):
        assert _observe(_tracker(tmp_path, rows), text).prefs.category == category  # a tie: the one named first


@pytest.mark.parametrize("text, mentioned", [
    ("Hi im looking for a good horroe movie like The Babadook (2014)", {"m1": 1}),
    ("something like the babadok", {"m1": 1}),  # typo, lower case, no year
    ("I thought It Follows was creepy, those were good", {"m2": 1}),
    ("I loved the last jedi", {"m3": 1}),  # partial title
    ("Star Wars is my favourite", {"m4": 1}),  # the film called exactly that, not the sequel
    ("have you seen Get Out?", {"m5": 0}),  # all common words, but written as a title
    ("I want to get out of the house", {}),
    ("I didn't like The Shining", {"m6": -1}),
    ("I loved Get Out but hated The Shining", {"m5": 1, "m6": -1}),
    ("it was shining", {}),  # a lower-case single word is not a title
    ("No Get Out (2017) or horror movies please", {"m5": -1}),  # a negated title is refused
    ("anything but The Shining", {"m6": -1}),
    ("I loved 'Get Out'", {"m5": 1}),  # single quotes are no part of the title's words
    ('anything but "The Shining"', {"m6": -1}),  # quoted or emphasised, a title reads the same
    ("no *Get Out* please", {"m5": -1}),
    # typed lower case after words that take a film, or in a list after them
    ("i hated the shining", {"m6": -1}),
    ("my favourite films are the babadook, it follows and the shining", {"m1": 1, "m2": 1, "m6": 1}),
    ("i saw the movie yesterday", {}),
    ("I loved The Shinign", {"m6": 1}),  # two letters swapped
    ('I want to watch "Up" again, something like it?', {"m9": 1}),  # quoted, a short common word is a name
    ("I loved 'Up'", {"m9": 1}),
    ("it went up again", {}),
    ("not It Follows, and nothing like The Babadook", {"m2": -1, "m1": -1}),
    ("No, I loved The Shining", {"m6": 1}),  # "No," answers a question; the film is liked
    ("why not The Shining?", {"m6": 0}),
    ("I wasnt a very big fan of The Shining, but the score was great", {"m6": -1}),
    ("I'm not much of a fan of Get Out", {"m5": -1}),
    ("I've seen The Shining, too long for me", {"m6": -1}),
    ("I loved The Shining, not too long either", {"m6": 1}),
])
def test_mentions_with_sentiment(tmp_path, text, mentioned):
    state = _observe(_tracker(tmp_path, MOVIES), text)
    assert state.mentioned == mentioned
    assert state.rejected == [i for i, s in mentioned.items() if s < 0]


def test_assistant_mentions_become_shown_not_mentioned(tmp_path):
    tracker = _tracker(tmp_path, MOVIES)
    state = DialogueState()
    tracker.observe(state, Message("assistant", "Have you seen The Shining (1980) or Get Out (2017)?"))
    assert (state.shown, state.mentioned) == (["m6", "m5"], {})


@pytest.mark.parametrize("text, asked", [
    ("have you seen Get Out?", ["m5"]),  # a question about the film itself
    ("Hey, did you like The Shining (1980) ?", ["m6"]),
    ("I haven't seen It Follows yet", ["m2"]),
    ("No, but I heard The Babadook (2014) was good. Which one first?", ["m1"]),
    ("The Shining is on my list", ["m6"]),
    ("any horror movies like The Babadook (2014)?", []),  # a reference ("like X"): they have seen it
    ("I loved Get Out", []),
    ("I liked Get Out, anything else like it?", []),  # "liked" refers like "loved": seen, not asked about
    ("I haven't seen The Shining, and it sounds boring", []),  # a refusal wins
    # the last film of a list is read like the first: liked or referred to, not asked about
    ("Hi! I loved Get Out and The Babadook, anything similar?", []),
    ("I loved Get Out (2017) and The Babadook, anything similar?", []),  # the year's bracket ends the first
    ("seen Get Out already, something else?", []),  # had, not asked about
    ("I already watched The Shining. Did you see It Follows?", ["m2"]),
    ('I loved "Get Out" and The Babadook, anything similar?', []),
    ("any movies like Get Out, It Follows or The Babadook (2014)?", []),
    ("have you seen Get Out or The Shining?", ["m5", "m6"]),
    ("have you seen Get Out or The Shining", ["m5", "m6"]),  # people leave the question mark out
    ("I loved Get Out, what about The Shining?", ["m6"]),
    ("I want to watch Get Out", ["m5"]),
    ("I want to watch Get Out again, something like it?", []),  # seen: a reference, not a question
    # with others named in the clause, only the words next to a film say it is unseen
    ("I have not seen The Shining (1980) I did love Get Out (2017)", ["m6"]),
    ("I like Get Out and It Follows I want to see The Shining", ["m6"]),
    ("I heard The Shining and It Follows were good", ["m6", "m2"]),
    ("I have not seen Us yet, I loved Get Out", []),  # "not seen" of a film the catalog lacks, not of Get Out
])
def test_items_the_user_asks_about_or_has_not_seen(tmp_path, text, asked):
    state = _observe(_tracker(tmp_path, MOVIES), text)
    assert state.asked == asked


@pytest.mark.parametrize("text, unseen, liked", [
    ("I have not seen The Shining (1980) I did love Get Out (2017)", ["m6"], {"m5"}),  # no punctuation between
    ("I haven't seen It Follows or The Babadook", ["m2", "m1"], set()),
    ("The Shining is on my list", ["m6"], set()),
    ("I'd like to see the original Star Wars", ["m4"], set()),
    ("I need to see it, I heard it was great I also liked Get Out", [], {"m5"}),  # the wish is about "it"
    ("Who hasn't seen The Shining, a great one", [], {"m6"}),  # everyone has
    ("have you seen Get Out?", [], set()),  # a question: the answer may be yes
    ("I want to watch Up again", [], set()),
])
def test_films_the_user_has_not_seen_are_remembered_as_not_had(tmp_path, text, unseen, liked):
    """Unlike ``asked`` (the latest message only), the films the user says they have not seen stay
    candidates in later turns, and are no films they liked."""
    state = _observe(_tracker(tmp_path, MOVIES), text, "any suggestions?")
    assert list(state.unseen) == unseen
    assert set(state.summary()["liked"]) == liked


def test_a_film_named_as_seen_later_is_had_again(tmp_path):
    tracker = _tracker(tmp_path, MOVIES)
    state = _observe(tracker, "I haven't seen The Shining yet")
    assert list(state.unseen) == ["m6"]
    tracker.observe(state, Message("user", "ok I watched The Shining last night, loved it"))
    assert list(state.unseen) == [] and state.mentioned["m6"] == 1


@pytest.mark.parametrize("follow_up, asked", [
    ("I haven't seen either, what are they about?", ["m6", "m5"]),
    ("never heard of it. who's in it?", ["m6", "m5"]),
    ("which one would you pick first?", ["m6", "m5"]),
    ("something scarier please", []),  # a new wish, not a question about the suggestions
    ("what is Star Wars (1977) about?", ["m4"]),  # names its own subject
    ("what is the second one about?", ["m5"]),
    ("tell me more about the last one", ["m5"]),
    ("what about the second one?", ["m5"]),
])
def test_a_follow_up_on_the_suggestions_asks_about_them(tmp_path, follow_up, asked):
    tracker = _tracker(tmp_path, MOVIES)
    state = _observe(tracker, "a scary film please")
    tracker.observe(state, Message("assistant", "How about The Shining (1980) or Get Out (2017)?"))
    tracker.observe(state, Message("user", follow_up))
    assert state.asked == asked
    tracker.observe(state, Message("user", "thanks"))
    assert state.asked == []  # it is about the latest message only


def test_a_follow_up_is_not_about_the_film_the_user_already_loved(tmp_path):
    tracker = _tracker(tmp_path, MOVIES)
    state = _observe(tracker, "any crazy horror like The Shining (1980)?")
    tracker.observe(state, Message("assistant", "The Shining (1980) was intense! How about Get Out (2017)?"))
    tracker.observe(state, Message("user", "I have not watched that"))
    assert state.asked == ["m5"]  # not The Shining, which they named as a favourite



@pytest.mark.parametrize("follow_up, asked", [
    ("Get Out (2017) was amazing, what is the other about?", ["m6"]),
    ("Ive seen The Shining (1980) what is the other one about?", ["m5"]),
    ("I would put the other one on my list", ["m6", "m5"]),  # names neither: both stay possible
    ("I saw The Babadook (2014) the other day", []),  # not a reference to a suggestion
])
def test_the_other_one_is_the_suggestion_the_user_did_not_name(tmp_path, follow_up, asked):
    tracker = _tracker(tmp_path, MOVIES)
    state = _observe(tracker, "a scary film please")
    tracker.observe(state, Message("assistant", "How about The Shining (1980) or Get Out (2017)?"))
    tracker.observe(state, Message("user", follow_up))
    assert state.asked == asked


def test_a_reply_naming_nothing_keeps_the_suggestions_a_follow_up_refers_to(tmp_path):
    tracker = _tracker(tmp_path, MOVIES)
    state = _observe(tracker, "a scary film please")
    tracker.observe(state, Message("assistant", "How about The Shining (1980) or Get Out (2017)?"))
    tracker.observe(state, Message("user", "are they scary?"))
    tracker.observe(state, Message("assistant", "Both are really intense!"))
    tracker.observe(state, Message("user", "Which of those two do you like the best?"))
    assert state.asked == ["m6", "m5"]
    tracker.observe(state, Message("assistant", "Then try It Follows (2014)."))
    tracker.observe(state, Message("user", "I hated that one"))
    assert state.rejected == ["m2"]  # the latest suggestion, not the earlier ones

@pytest.mark.parametrize("suggested, reply, rejected, mentioned", [
    (["The Shining (1980)"], "I hated that one", ["m6"], {"m6": -1}),
    (["The Shining (1980)"], "Meh, it was boring", ["m6"], {"m6": -1}),
    (["The Shining (1980)"], "No, not that one!", ["m6"], {"m6": -1}),
    (["The Shining (1980)"], "I loved that movie! What else?", [], {"m6": 1}),
    (["The Shining (1980)"], "I've seen it already", [], {"m6": 0}),
    (["The Shining (1980)", "Get Out (2017)"], "I didn't like the second one", ["m5"], {"m5": -1}),
    (["The Shining (1980)", "Get Out (2017)"], "seen them both, loved them", [], {"m6": 1, "m5": 1}),
    (["The Shining (1980)", "Get Out (2017)"], "I hated that one", [], {}),  # which one? nothing changes
    (["The Shining (1980)"], "I don't think I have seen that one", [], {}),
    (["The Shining (1980)"], "I haven't seen it, I heard it was great", [], {}),  # a wish, not had
    (["The Shining (1980)"], "I hate it when films are too long", [], {}),  # not about the film
    (["The Shining (1980)"], "I loved Get Out, it was great", [], {"m5": 1}),  # "it" is the film named
    (["The Shining (1980)", "Get Out (2017)"], "She didnt care for them at all", ["m6", "m5"], {"m6": -1, "m5": -1}),
    (["The Shining (1980)"], "I wasn't a big fan of that one", ["m6"], {"m6": -1}),
    (["The Shining (1980)", "Get Out (2017)"], "he already has the first one", [], {"m6": 0}),  # owned: had
    (["The Shining (1980)", "Get Out (2017)"], "we've got them both", [], {"m6": 0, "m5": 0}),
    (["The Shining (1980)"], "do you have it in blu-ray?", [], {}),  # a question, not owned
    (["The Shining (1980)", "Get Out (2017)"], "the second one looks good, anything similar?", [], {"m5": 1}),
    (["The Shining (1980)", "Get Out (2017)"], "the second one looks good", [], {}),  # interest only: still on offer
    (["The Shining (1980)", "Get Out (2017)"], "the first one is perfect, thanks!", [], {"m6": 1}),  # picked
])
def test_what_the_user_says_of_the_suggestion_they_refer_to(tmp_path, suggested, reply, rejected, mentioned):
    tracker = _tracker(tmp_path, MOVIES)
    state = _observe(tracker, "a scary film please")
    tracker.observe(state, Message("assistant", "How about " + " or ".join(suggested) + "?"))
    tracker.observe(state, Message("user", reply))
    assert (state.rejected, state.mentioned) == (rejected, mentioned)
    suggested_ids = {row["id"] for row in MOVIES if row["title"] in suggested}
    assert state.wants_more is bool(suggested_ids & set(mentioned))  # reacted to the suggestions: others next

def test_a_film_refused_by_its_title_is_rejected_not_excluded_as_a_word(tmp_path):
    frozen = {"id": "f1", "title": "Frozen (2013)", "category": "movie", "description": "Elsa's ice powers."}
    state = _observe(_tracker(tmp_path, MOVIES + [frozen]), "not Frozen (2013), we've seen it a hundred times")
    # "frozen" as a word would filter plots; seen, the film is had (never shown again), not disliked
    assert (state.mentioned, state.prefs.exclude) == ({"f1": 0}, [])


def test_toy_items_liked_and_rejected(tmp_path):
    state = _observe(_tracker(tmp_path, SMALL_CATALOG),
                     "I loved the Hornby Express Train Set but hated the Mini Drone Quadcopter")
    assert state.mentioned == {"t1": 1, "r2": -1}
    assert state.rejected == ["r2"]


@pytest.mark.parametrize("text", ["Not really interested in Get Out (2017).", "I'm so tired of Get Out (2017)"])
def test_no_interest_in_a_named_film_rejects_it(tmp_path, text):
    state = _observe(_tracker(tmp_path, MOVIES), text)
    assert (state.mentioned, state.rejected) == ({"m5": -1}, ["m5"])


def test_an_ordinal_before_anything_was_suggested_is_no_error(tmp_path):
    state = _observe(_tracker(tmp_path, MOVIES), "tell me more about the last one")  # raised IndexError
    assert (state.asked, state.rejected) == ([], [])


@pytest.mark.parametrize("text, age", [
    ("a present for my 4 year old nephew", 4.0),
    ("a 10-year-old girl who likes science", 10.0),
    ("he is 18 months old", 1.5),
    ("for a 6yo", 6.0),
    ("It's for ages 3 years and up.", 3.0),
    ("she's 7, budget under £30", 7.0),
    ("turning five next week", 5.0),
    ("for a toddler", 2.0),
    ("a 4 and a 7 year old", 7.0),  # only "7 year old" states an age
    ("a 4 year old and a 7 year old", 4.0),  # the youngest
    ("my kids are 5 and 8", 5.0),
    ("for my 3 and 5 year olds", 5.0),
    ("arts and crafts for two kids, 5 and 8", 5.0),  # the children, then their ages
    ("my boys (4 & 6) love trains", 4.0),
    ("two kids and 5 pounds to spend", None),
    ("a baby doll for my niece", None),  # a kind of doll, not an age
    ("the budget is 20", None),
    ("I watched it 10 years ago", None),
    ("something for under 5s", None),
])
def test_the_age_of_whoever_it_is_for(tmp_path, text, age):
    assert stated_age(text) == age
    state = _observe(_tracker(tmp_path, SMALL_CATALOG), text)
    assert state.prefs.age == age


@pytest.mark.parametrize("text, more", [
    ("Anything else you recommend?", True),
    ("any others?", True),
    ("I've seen those already, anything else?", True),
    ("Do you have anymore suggestions?", True),
    ("Could you show me some other options?", True),
    ("more like that one", True),  # others like the one liked, not it again
    ("any similar ones?", True),
    ("I like it more than the first one", False),
    ("more like The Shining", False),  # a named film is filtered anyway; no reaction to the suggestions
    ("no more horror please", False),
    ("something scary", False),
])
def test_asking_for_other_suggestions_is_read_per_message(tmp_path, text, more):
    tracker = _tracker(tmp_path, MOVIES)
    state = _observe(tracker, text)
    assert state.wants_more is more
    tracker.observe(state, Message("user", "a comedy"))
    assert state.wants_more is False  # about the latest message only


@pytest.mark.parametrize("text, had", [
    ("he's seen all the harry potter ones", {"m7", "m8"}),
    ("we watched all of the Star Wars movies", {"m3", "m4"}),
    ("she has every harry potter film, anything similar?", {"m7", "m8"}),
    ("I haven't seen all the star wars films", {"m4"}),  # the film named (neutral), not the series
    ("we've seen all the get out films", set()),  # one film is no series: nothing to say
])
def test_a_whole_series_seen_or_owned_is_never_recommended_back(tmp_path, text, had):
    rows = MOVIES + [{"id": "m8", "title": "Harry Potter and the Goblet of Fire (2005)", "category": "movie"}]
    state = _observe(_tracker(tmp_path, rows), text)
    assert {i for i, s in state.mentioned.items() if s == 0} == had


def test_a_question_about_the_suggestions_as_a_group_asks_about_those_it_fits(tmp_path):
    """"Does any of them sing?" after three toys: the one whose text says it sings is asked about
    (described first, kept on top); a question none fits keeps what was asked before."""
    tracker = _tracker(tmp_path, MOVIES)
    state = _observe(tracker, "a scary film please")
    tracker.observe(state, Message("assistant", "How about The Shining (1980), Get Out (2017) or The Babadook (2014)?"))
    tracker.observe(state, Message("user", "are any of them set in a hotel?"))
    assert state.asked == ["m6"]  # "A hotel in winter."
    tracker.observe(state, Message("user", "do any of those have dragons?"))
    assert state.asked == []


def test_a_word_that_only_qualifies_a_category_name_does_not_pick_it(tmp_path):
    """ "likes science" is no wish for "Science Fiction & Fantasy" (a 10 year old got a Star Trek plush
    for it), nor "something soft" for "Soft Dolls": the word naming the kind must be there."""
    rows = [{"id": "sf", "title": "Starship Plush", "category": "Science Fiction & Fantasy"},
            {"id": "sd", "title": "Rag Doll", "category": "Soft Dolls"},
            {"id": "bg", "title": "Family Quiz", "category": "Board Games"},
            {"id": "kt", "title": "Play Tent", "category": "Kids'"}]
    tracker = _tracker(tmp_path, rows)
    for text in ("a gift for a 10 year old who likes science", "something soft for a baby",
                 "for two kids, 5 and 8"):  # everything in a toy shop is for kids
        assert _observe(tracker, text).prefs.category is None, text
    for text, category in (("she loves fantasy", "Science Fiction & Fantasy"),
                           ("a science fiction fan", "Science Fiction & Fantasy"),
                           ("a doll for my niece", "Soft Dolls"), ("a soft doll", "Soft Dolls"),
                           ("a board game for family night", "Board Games")):  # "games" says nothing: "board" names it
        assert _observe(tracker, text).prefs.category == category, text


def test_a_title_typed_in_lower_case_after_words_that_take_a_film(tmp_path):
    """ "i liked the dark knight" named nothing: three titles hold "the dark knight", so it had to be
    dated or capitalised. After "liked", "seen", "favourite movies are"... a whole title counts when
    the catalog's descriptions use it no more often than its titles; "the family" stays plain words."""
    rows = [{"id": "dk", "title": "The Dark Knight (2008)", "description": "Batman faces the Joker."},
            {"id": "dkr", "title": "The Dark Knight Rises (2012)", "description": "Bane arrives."},
            {"id": "dkt", "title": "Batman: The Dark Knight Returns (2012)", "description": "An old Batman."},
            {"id": "fam", "title": "The Family (2013)", "description": "A mob family hides in France."}]
    rows += [{"id": f"f{n}", "title": f"Film {n}", "description": f"the family moves house, part {n}"} for n in range(5)]
    tracker = _tracker(tmp_path, rows)
    assert _observe(tracker, "i liked the dark knight").mentioned == {"dk": 1}
    assert _observe(tracker, "have you seen the dark knight rises? is it good").asked == ["dkr"]
    assert _observe(tracker, "i loved the family").mentioned == {}  # the catalog's prose says it all the time
    assert _observe(tracker, "the dark knight is a phrase here").mentioned == {}  # no word that takes a film


def test_the_new_film_of_a_series_and_it_after_asking_about_it(tmp_path):
    """ "Have you seen the new star wars?" named nothing, and "I didn't like it much" then rejected
    nothing while the list led with that very film. The newest title of the series is meant, and "it"
    is the one film the previous message asked about."""
    tracker = _tracker(tmp_path, MOVIES)
    state = _observe(tracker, "Have you seen the new star wars?")
    assert state.asked == ["m3"]  # The Last Jedi (2017), not Star Wars (1977)
    tracker.observe(state, Message("assistant", "Star Wars: Episode VIII – The Last Jedi (2017) is good! Or The Shining (1980)."))
    tracker.observe(state, Message("user", "I didn't like it much"))
    assert state.rejected == ["m3"]
    assert _observe(tracker, "something new and scary").mentioned == {}


def test_a_whole_series_named_at_once_names_each_film_and_a_bare_name_is_the_famous_one(tmp_path):
    """ "All of the Godfather movies are excellent" named "Godfather (2007)", an obscure namesake,
    as a neutral mention, and the list then led with The Godfather and its sequels. Now the series is
    each of its films (namesakes nobody watched aside), "excellent" is praise, and a bare
    "Godfather" or "Hangover" is the popular film with "The" in front. "The scary movies" are no
    "Scary Movie" series (in a catalog this small "scary movie" may still read as the one title)."""
    rows = [{"id": "g1", "title": "The Godfather (1972)", "description": "A mafia family."},
            {"id": "g2", "title": "The Godfather Part II (1974)", "description": "The family, later."},
            {"id": "g3", "title": "The Godfather Part III", "description": "The family, last."},
            {"id": "g0", "title": "Godfather (2007)", "description": "A Hungarian drama."},
            {"id": "h1", "title": "The Hangover (2009)", "description": "A bachelor party in Vegas."},
            {"id": "h0", "title": "Hangover (2010)", "description": "A short film."},
            {"id": "s1", "title": "Scary Movie (2000)", "description": "A spoof."},
            {"id": "s2", "title": "Scary Movie 2 (2001)", "description": "Another spoof."},
            {"id": "sp", "title": "Split (2017)", "description": "Twenty-three people."},
            {"id": "ts", "title": "The Split (1968)", "description": "A heist."}]
    catalog = load_catalog(write_jsonl(tmp_path / "catalog.jsonl", rows))
    popularity = [0.0] * len(catalog)
    for item_id, pop in (("g1", 0.9), ("g2", 0.8), ("g3", 0.5), ("h1", 0.7), ("s1", 0.3), ("s2", 0.2)):
        popularity[catalog.position[item_id]] = pop
    tracker = Tracker(catalog, TitleMatcher(catalog, popularity=popularity))
    assert _observe(tracker, "All of the Godfather movies are excellent").mentioned == {"g1": 1, "g2": 1, "g3": 1}
    assert _observe(tracker, "I have seen both Godfather films").mentioned == {"g1": 0, "g2": 0, "g3": 0}
    assert _observe(tracker, "I loved Godfather").mentioned == {"g1": 1}
    assert _observe(tracker, "Hangover was hilarious").mentioned == {"h1": 1}
    assert _observe(tracker, "I loved Split").mentioned == {"sp": 1}  # the bare name first among equals
    assert "s2" not in _observe(tracker, "I like the scary movies").mentioned  # no series named


def test_what_a_child_loves_is_looked_for_in_a_shop_and_said_when_nothing_has_it(make_services, small_catalog_path):
    """ "she's 6 and loves unicorns" was heard as an age only: the list was gel pens and a Star Wars
    calendar, passed off as picks for her. In a shop's catalog what someone loves is a must-have;
    one that no item (or one) mentions is kept, so the reply says it found nothing with it."""
    from chatrec.recommender import Recommender

    services = make_services(small_catalog_path)
    state = DialogueState()
    services.tracker.observe(state, Message("user", "a gift for my nephew, he's really into trains"))
    assert state.prefs.must_have == ["trains"]
    state = DialogueState()
    result = Recommender(services).run_turn(state, "hi, a present for my niece, she's 6 and loves unicorns")
    assert state.prefs.must_have == ["unicorns"]
    assert result.reply.startswith("I found nothing that mentions unicorns; the closest picks I have")
    state = DialogueState()
    services.tracker.observe(state, Message("user", "a mermaid toy please"))
    assert state.prefs.must_have == ["mermaid"]
    state = DialogueState()
    services.tracker.observe(state, Message("user", "he loves Lego and she loves drawing"))
    assert state.prefs.must_have == []  # a brand (capitalised) is read elsewhere; -ing words are no rare topic


def test_in_a_film_catalog_what_people_love_is_films_people_and_genres(tmp_path):
    """ "hi i love romace" (a typo of romance) and "I love ben stiller" are no topics of films."""
    tracker = _tracker(tmp_path, MOVIES)
    for text in ("hi i love romace", "I love ben stiller funny guy", "i love mocumentaries"):
        assert _observe(tracker, text).prefs.must_have == [], text


@pytest.mark.parametrize("text, excluded", [
    ("something that isn't a horror", ["horror"]),
    ("I'm not a horror fan", ["horror"]),
    ("not a comedy please", ["comedy"]),
    ("a cartoon that isn't scary", ["scary"]),
    ("I am not a kid", []),  # an audience a person may be, not a kind of film
    ("Isn't Anthony Hopkins the greatest?", []),  # a question, and a person
    ("I'm waiting till the theater isn't sold out", []),
])
def test_a_genre_refused_with_an_article_or_isnt_is_excluded(tmp_path, text, excluded):
    """ "something that isn't a horror" listed It and Get Out first: "isn't" refused nothing, and "not
    a comedy" was read like "not a kid". A genre refused that way is now an exclusion."""
    rows = MOVIES + [{"id": "mh", "title": "Anthony Hopkins (2010)", "attributes": {"star": ["Anthony Hopkins"]}}]
    assert _observe(_tracker(tmp_path, rows), text).prefs.exclude == excluded


@pytest.mark.parametrize("text, sentiment, rejected", [
    ("not Get Out, I've seen it", 0, []),
    ("not Get Out, we watched that last week", 0, []),
    ("not Get Out, it was boring", -1, ["m5"]),
    ("no Get Out, I already saw it and hated it", -1, ["m5"]),
    ("no Get Out please", -1, ["m5"]),
])
def test_an_item_refused_because_it_was_seen_is_had_not_disliked(tmp_path, text, sentiment, rejected):
    """ "not Training Day, I've seen it" rejected Training Day as disliked, and its neighbours sank:
    Get Out came third for "a thriller with Denzel Washington". Seen is had: never shown again,
    nothing demoted for it."""
    state = _observe(_tracker(tmp_path, MOVIES), text)
    assert state.mentioned == {"m5": sentiment} and state.rejected == rejected


def test_sounds_good_after_asking_about_one_of_the_list_is_about_that_one(tmp_path):
    """ "what's Get Out about?", a reply describing it over a list of three, then "sounds fun, thanks!":
    the reply described all three. The film asked about is the one that sounds fun."""
    tracker = _tracker(tmp_path, MOVIES)
    state = DialogueState()
    tracker.observe(state, Message("assistant", "Try Get Out (2017), The Shining (1980) or It Follows (2014)."))
    tracker.observe(state, Message("user", "what's Get Out about?"))
    assert state.asked == ["m5"]
    tracker.observe(state, Message("assistant", "Get Out (2017): a visit. Also The Shining (1980), It Follows (2014)."))
    tracker.observe(state, Message("user", "sounds fun, thanks!"))
    assert state.asked == ["m5"]
    fresh = DialogueState()
    tracker.observe(fresh, Message("assistant", "Try Get Out (2017), The Shining (1980) or It Follows (2014)."))
    tracker.observe(fresh, Message("user", "sounds fun!"))
    assert fresh.asked == ["m5", "m6", "m2"]  # nothing asked about before: the list


def test_a_series_is_the_titles_its_people_link(tmp_path):
    """ "the Rocky movies are great" also named "The Rocky Horror Picture Show", whose title starts
    the same; "the Dark Knight trilogy" named nothing ("dark" is a common word). Where the catalog
    credits people, a series is the titles linked by shared ones."""
    rows = [{"id": "r1", "title": "Rocky (1976)", "attributes": {"star": ["Sylvester Stallone", "Talia Shire"]}},
            {"id": "r4", "title": "Rocky IV (1985)", "attributes": {"star": ["Sylvester Stallone", "Dolph Lundgren"]}},
            {"id": "rb", "title": "Rocky Balboa (2006)", "attributes": {"star": ["Sylvester Stallone"]}},
            {"id": "rh", "title": "The Rocky Horror Picture Show (1975)", "attributes": {"star": ["Tim Curry"]}},
            {"id": "dk", "title": "The Dark Knight (2008)", "attributes": {"star": ["Christian Bale"]}},
            {"id": "dr", "title": "The Dark Knight Rises (2012)", "attributes": {"star": ["Christian Bale"]}}]
    tracker = _tracker(tmp_path, rows)
    assert _observe(tracker, "the Rocky movies are great").mentioned == {"r1": 1, "r4": 1, "rb": 1}
    assert _observe(tracker, "I loved the Dark Knight trilogy").mentioned == {"dk": 1, "dr": 1}
