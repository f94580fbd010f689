"""Catalog facets (genres, credits): what the user asked for in words and what the named items share
moves exactly the items it should, and catalogs without these attributes are untouched."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from chatrec.catalog import load_catalog
from chatrec.facets import Facets, asked_role
from chatrec.index import EmbeddingIndex
from chatrec.lexical import LexicalIndex
from chatrec.matching import TitleMatcher
from chatrec.ranker import Ranker, RankWeights
from chatrec.state import DialogueState, Message
from chatrec.tracker import Tracker
from conftest import SMALL_CATALOG, HashEmbedder, write_jsonl

# Neutral descriptions: only the attributes tell the films apart.
FILMS = [
    {"id": "h1", "title": "Night Shift (2016)", "description": "a story",
     "attributes": {"genre": ["horror"], "director": ["Ann Vale"], "star": ["Bo Reed"], "year": 2016}},
    {"id": "h2", "title": "Night Shift 2 (2017)", "description": "a story",
     "attributes": {"genre": ["horror", "thriller"], "director": ["Ann Vale"], "star": ["Bo Reed"], "year": 2017}},
    {"id": "c1", "title": "Paper Hats (2016)", "description": "a story",
     "attributes": {"genre": ["comedy"], "director": ["Cy Dunn"], "star": ["Tom Hanks"], "year": 2016}},
    {"id": "c2", "title": "Paper Boats (2017)", "description": "a story",
     "attributes": {"genre": ["comedy", "family"], "director": ["Di Orr"], "star": ["Eve Moss"], "year": 2017}},
    {"id": "a1", "title": "Blue Planet Run (2017)", "description": "a story",
     "attributes": {"genre": ["animation", "family"], "director": ["Fay Lin"], "star": ["Gus Poe"], "year": 2017}},
]
ONLY_FACETS = RankWeights(dense=0, lexical=0, mentioned=0, collab=0, popularity=0, recency=0)


def _pipeline(tmp_path, rows, weights=ONLY_FACETS):
    catalog = load_catalog(write_jsonl(tmp_path / "catalog.jsonl", rows))
    embedder = HashEmbedder()
    index = EmbeddingIndex(embedder.encode([i.search_text() for i in catalog]), embedder)
    return Ranker(catalog, index, LexicalIndex(catalog), None, weights), Tracker(catalog, TitleMatcher(catalog))


def _ranked(ranker, tracker, *texts, roles=None):
    state = DialogueState()
    for n, text in enumerate(texts):
        tracker.observe(state, Message((roles or {}).get(n, "user"), text))
    return state, ranker.score(state, ranker.weights)


def test_genre_words_and_negation(tmp_path):
    facets = Facets(load_catalog(write_jsonl(tmp_path / "c.jsonl", FILMS)))
    wanted = dict(zip(facets.genre_names, facets.wanted_genres(["something scary please", "but not a comedy"])))
    assert wanted["horror"] == 0.5 and wanted["comedy"] == -1.0 and wanted["family"] == 0.0
    later = dict(zip(facets.genre_names, facets.wanted_genres(["I hate cartoons", "ok, an animated one for the kids"])))
    assert later["animation"] == 1.0 and later["family"] == 1.0  # the latest wish wins
    refined = dict(zip(facets.genre_names, facets.wanted_genres(["something scary, nothing with zombies",
                                                                 "I loved Night Shift", "from the 80s maybe?"])))
    assert refined["horror"] == 1.0  # turns about other things do not age it; "no zombies" is no "no horror"
    degree = dict(zip(facets.genre_names, facets.wanted_genres(["a comedy please", "any others? nothing too silly"])))
    assert degree["comedy"] == 1.0  # "nothing too silly" moderates the comedy asked for; it refuses nothing
    non = dict(zip(facets.genre_names, facets.wanted_genres(["some non-animated family films?"])))
    assert non["animation"] == -1.0 and non["family"] == 1.0  # "non" refuses its own word only
    for text, horror in (("not too scary", 0.0), ("not that scary", 0.0), ("something very scary", 1.0),
                         ("she doesn't like horror", -1.0), ("my son dislikes scary films", -1.0)):
        assert dict(zip(facets.genre_names, facets.wanted_genres([text])))["horror"] == horror
    romance = [{"id": "r1", "title": "Love Boat (2010)", "attributes": {"genre": ["romance", "comedy"]}}]
    facets = Facets(load_catalog(write_jsonl(tmp_path / "r.jsonl", FILMS + romance)))
    for text in ("she likes rom coms but I'm more into action", "a romcom", "any rom-coms?"):
        wanted = dict(zip(facets.genre_names, facets.wanted_genres([text])))
        assert wanted["romance"] == wanted["comedy"] == 1.0, text


def test_asked_genre_leads_and_ruled_out_genre_sinks(tmp_path):
    ranker, tracker = _pipeline(tmp_path, FILMS)
    _, (total, signals) = _ranked(ranker, tracker, "I want something scary tonight")
    order = [ranker.catalog.items[i].id for i in np.argsort(-total, kind="stable")]
    assert set(order[:2]) == {"h1", "h2"} and "genre" in signals
    _, (total, _) = _ranked(ranker, tracker, "nothing funny please")
    pos = ranker.catalog.position
    assert total[pos["c1"]] < total[pos["h1"]] and total[pos["c2"]] < total[pos["a1"]]


def test_a_refused_genre_in_the_plural_filters_that_genre(tmp_path):
    films = FILMS + [{"id": "m1", "title": "Song Street (2017)", "description": "a story",
                      "attributes": {"genre": ["musical", "comedy"], "year": 2017}}]
    ranker, tracker = _pipeline(tmp_path, films)
    state, (total, _) = _ranked(ranker, tracker, "a feel-good film, no musicals please")
    assert state.prefs.exclude == ["musicals"]
    pos = ranker.catalog.position
    assert total[pos["m1"]] == -np.inf  # the genre attribute says "musical"
    assert max(total[pos["c1"]], total[pos["c2"]]) > max(total[pos["h1"]], total[pos["a1"]])  # feel-good: comedy


def test_an_everyday_word_for_a_genre_refused_filters_that_genre(tmp_path):
    ranker, tracker = _pipeline(tmp_path, FILMS)
    pos = ranker.catalog.position
    state, (total, _) = _ranked(ranker, tracker, "something for my kids", "not animated please")
    assert state.prefs.exclude == ["animated"]  # no item's text says "animated"; its genre is "animation"
    assert total[pos["a1"]] == -np.inf and np.isfinite(total[pos["c2"]])
    state, (total, _) = _ranked(ranker, tracker, "no scary movies")
    assert state.prefs.exclude == ["scary"] and total[pos["h1"]] == total[pos["h2"]] == -np.inf
    assert np.isfinite(total).sum() == 3
    assert ranker.facets.of_genre_word("dinosaurs").size == 0  # no genre: only the word filters


def test_a_genre_word_in_a_title_is_a_wish_only_when_the_film_is_of_that_genre(tmp_path):
    """"I loved Scary Movie" (a comedy) asked for horror, and its list led with horror films."""
    rows = FILMS + [{"id": "s1", "title": "Scary Hats (2000)", "description": "a story",
                     "attributes": {"genre": ["comedy"], "director": ["Jo Ash"], "year": 2000}},
                    {"id": "s2", "title": "The Horror Hats (2001)", "description": "a story",
                     "attributes": {"genre": ["horror"], "director": ["Jo Ash"], "year": 2001}}]
    ranker, tracker = _pipeline(tmp_path, rows)

    def wanted(*texts):
        state, _ = _ranked(ranker, tracker, *texts)
        return {g for g, v in zip(ranker.facets.genre_names, ranker.wanted_genres(state)) if v > 0}

    assert wanted("I loved Scary Hats") == set()
    assert wanted("I loved The Horror Hats") == {"horror"}  # the title says what the film is
    assert wanted("I loved Scary Hats, something scary now?") == {"horror"}  # the user's own word


def test_films_about_the_topic_asked_for_lead_the_genres_popular_ones(tmp_path):
    """"zombie movies" / "dinosaur movies" led with the popular horror / any popular films; and a
    topic that is part of someone's name ("christian movies") is looked for in what the films are
    about, not in their credits (Christian Bale)."""
    rows = FILMS + [{"id": "z1", "title": "Dead Town (2009)", "description": "zombies overrun a small town",
                     "attributes": {"genre": ["horror", "comedy"], "star": ["Christian Vale"], "year": 2009}},
                    {"id": "z2", "title": "Rot (2012)", "description": "a zombie outbreak in a mall",
                     "attributes": {"genre": ["horror"], "star": ["Ed Moss"], "year": 2012}},
                    {"id": "f1", "title": "Grace (2015)", "description": "a christian family keeps its faith",
                     "attributes": {"genre": ["drama"], "star": ["Ed Moss"], "year": 2015}},
                    {"id": "f2", "title": "The Pastor (2016)", "description": "a christian pastor in a small town",
                     "attributes": {"genre": ["drama"], "star": ["Ed Moss"], "year": 2016}}]
    ranker, tracker = _pipeline(tmp_path, rows, replace(ONLY_FACETS, popularity=RankWeights().popularity))
    ranker.popularity = np.where(np.array([i.id in ("h1", "h2") for i in ranker.catalog]), 1.0, 0.0).astype(np.float32)

    def first(text, k=2):
        _, (total, signals) = _ranked(ranker, tracker, text)
        return {r.item.id for r in ranker.top(total, signals, k=k)}

    assert first("zombie movies please") == {"z1", "z2"}  # not the popular horror films h1, h2
    assert first("christian movies") == {"f1", "f2"}  # not z1, which credits Christian Vale

    def zombie_lift(*texts):
        _, (_, signals) = _ranked(ranker, tracker, *texts)
        return signals["must_have"][ranker.catalog.position["z2"]]

    # unlike "with dinosaurs", a topic fades as later turns ask for other things
    assert zombie_lift("zombie movies please") == ranker.weights.must_have
    assert zombie_lift("zombie movies please", "anything else?") == ranker.weights.must_have  # asks nothing new
    assert zombie_lift("zombie movies please", "actually, what about a comedy?") == 0.5 * ranker.weights.must_have


def test_named_film_pulls_its_director_and_stars_and_genres(tmp_path):
    ranker, tracker = _pipeline(tmp_path, FILMS)
    state, (total, signals) = _ranked(ranker, tracker, "I loved Night Shift (2016)")
    assert state.mentioned == {"h1": 1}
    ranked = [r.item.id for r in ranker.top(total, signals, k=5)]
    assert "h1" not in ranked and ranked[0] == "h2"  # the sequel: same director, star and genre
    assert signals["credits"][ranker.catalog.position["h2"]] == ranker.weights.credits  # the best match: 1 x weight


def test_person_named_in_words(tmp_path):
    ranker, tracker = _pipeline(tmp_path, FILMS)
    _, (total, signals) = _ranked(ranker, tracker, "anything with tom hanks?")
    assert ranker.top(total, signals, k=1)[0].item.id == "c1"
    assert ranker.facets.named_people(["Tom Hankson is great"]) == {}  # whole names only


def test_a_surname_alone_names_the_person_it_can_only_mean(tmp_path):
    """"I like Tarantino films" named nobody: only full names counted. A surname counts alone when
    one person has most of its credits (5+, twice anyone else's) and the catalog's own text does not
    use it as a word ("Stone")."""
    def film(n, person, role="director", description="a story"):
        return {"id": f"{person}{n}", "title": f"Film {''.join(w[0] for w in person.split())}{n} (2001)", "description": description,
                "attributes": {"genre": ["drama"], role: [person]}}
    rows = [film(n, p, role) for n in range(5) for p, role in (("Quentin Tarantino", "director"),
            ("Clint Eastwood", "star"), ("Emma Stone", "star"), ("Robert De Niro", "star"))]
    rows += [film(9, "Scott Eastwood", "star"), film(8, "Ann Vale", description="a stone in the road")]
    facets = Facets(load_catalog(write_jsonl(tmp_path / "c.jsonl", rows)))
    col = facets.person_column
    assert facets.named_people(["i like tarantino films"]) == {col("quentin tarantino"): 1.0}
    assert facets.named_people(["anything with Eastwood?"]) == {col("clint eastwood"): 1.0}
    assert facets.named_people(["a film with Scott Eastwood"]) == {col("scott eastwood"): 1.0}  # not Clint
    assert facets.named_people(["anything with deniro", "or de niro"]) == {col("robert de niro"): 1.0}
    assert facets.named_people(["a movie about a stone"]) == {}  # a word of the catalog's text
    assert facets.named_people(["not a fan of Tarantino"]) == {}
    # one slip in a surname of a full name: "a funny Jim Carey movie"
    assert facets.named_people(["something with clint eastwod"]) == {col("clint eastwood"): 1.0}
    assert facets.named_people(["quentin tarantimo films"]) == {col("quentin tarantino"): 1.0}


def test_a_person_refused_is_no_wish_and_their_films_are_filtered(tmp_path):
    """"Not a fan of Will Ferrell" once lifted every Will Ferrell film: the name counted as a wish and
    "will" (a plain word) made the tracker drop the refusal."""
    rows = FILMS + [{"id": "w1", "title": "Elf Night (2003)", "description": "a story",
                     "attributes": {"genre": ["comedy"], "star": ["Will Ferrell"], "year": 2003}}]
    ranker, tracker = _pipeline(tmp_path, rows)
    people = ranker.facets.named_people
    assert people(["something with Will Ferrell"]) == {ranker.facets.person_column("will ferrell"): 1.0}
    assert people(["I'm not a fan of Will Ferrell"]) == {}
    assert people(["I love Will Ferrell", "actually I'm not a fan of Will Ferrell"]) == {}  # the latest decides
    state, (total, signals) = _ranked(ranker, tracker, "a comedy, not a fan of Will Ferrell")
    assert state.prefs.exclude == ["Will Ferrell"] and "named_credits" not in signals
    assert "w1" not in [r.item.id for r in ranker.top(total, signals, k=len(rows))]
    state, _ = _ranked(ranker, tracker, "a comedy with Will Ferrell")
    assert state.prefs.must_have == ["Will Ferrell"]


def test_catalog_without_facets_is_untouched(tmp_path):
    ranker, tracker = _pipeline(tmp_path, SMALL_CATALOG, weights=RankWeights())
    assert not ranker.facets.has_genres and not ranker.facets.has_credits
    _, (_, signals) = _ranked(ranker, tracker, "a scary wooden train for the kids, like the Hornby Express Train Set")
    assert not {"genre", "seed_genre", "credits", "named_credits"} & set(signals)


def test_a_genre_asked_for_outweighs_popularity_a_taste_does_not(tmp_path):
    """"Any good documentaries?" is an ask: documentaries lead however popular other films are.
    "I like comedies" is a taste, one reason among many (``genre`` only)."""
    rows = FILMS + [{"id": "d1", "title": "Penguin March (2005)", "description": "a story",
                     "attributes": {"genre": ["documentary"], "year": 2005}}]
    ranker, tracker = _pipeline(tmp_path, rows, replace(ONLY_FACETS, popularity=RankWeights().popularity))
    ranker.popularity = np.where(np.array([i.id == "c1" for i in ranker.catalog]), 1.0, 0.0).astype(np.float32)
    facets = ranker.facets
    asked = lambda *texts: {g for g, v in zip(facets.genre_names, facets.asked_genres(texts, facets.wanted_genres(texts))) if v > 0}  # noqa: E731
    assert asked("any good documentaries?") == asked("I'm looking for a documentary") == {"documentary"}
    assert asked("I like documentaries") == asked("not looking for a documentary") == set()
    assert asked("something funny", "I like documentaries") == {"comedy"}  # each genre from its latest turn
    # a message that is little more than the genre asks for it ("a western please" was a taste, and
    # "something newer" after it led with Black Panther)
    assert asked("a documentary please") == asked("maybe a documentary?") == asked("documentaries") == {"documentary"}
    assert asked("how about a comedy?") == {"comedy"}
    assert asked("documentaries are my favourite") == set()
    _, (total, signals) = _ranked(ranker, tracker, "any good documentaries?")
    assert ranker.top(total, signals, k=1)[0].item.id == "d1"
    _, (total, signals) = _ranked(ranker, tracker, "I like documentaries")
    assert ranker.top(total, signals, k=1)[0].item.id == "c1" and "genre_asked" not in signals


def test_asked_for_the_kids_only_films_made_for_them_lead(tmp_path):
    """A comedy for the kids: the family comedy and the cartoon lead the adult comedy, however much
    more popular it is; without the kids, the adult comedy keeps its lead."""
    weights = replace(ONLY_FACETS, popularity=1.0)
    ranker, tracker = _pipeline(tmp_path, FILMS, weights)
    ranker.popularity = np.where(np.array([i.id == "c1" for i in ranker.catalog]), 1.0, 0.0).astype(np.float32)
    _, (total, signals) = _ranked(ranker, tracker, "any comedy I can watch with my daughters?")
    assert [r.item.id for r in ranker.top(total, signals, k=2)] == ["c2", "a1"]
    assert signals["audience"][ranker.catalog.position["c1"]] == -weights.audience
    _, (total, signals) = _ranked(ranker, tracker, "any comedy for tonight?")
    assert ranker.top(total, signals, k=1)[0].item.id == "c1" and "audience" not in signals
    _, (total, signals) = _ranked(ranker, tracker, "a comedy, but not for kids")  # ruled out: no audience
    assert "audience" not in signals


def test_what_people_asking_for_a_genre_were_offered_leads_such_requests(tmp_path):
    from chatrec.collab import TargetPrior
    from chatrec.evaluate import Dialogue

    ranker, tracker = _pipeline(tmp_path, FILMS, replace(ONLY_FACETS, genre=0, genre_asked=0, genre_requests=1.0))

    def genres_of(dialogue):
        state = DialogueState()
        for role, text in dialogue.context:
            tracker.observe(state, Message(role, text))
        return ranker.wanted_genres(state)

    # recorded requests for horror were answered with the sequel twice and the first film once;
    # comedy requests with Paper Hats, and a request that asked for no genre with Blue Planet Run
    train = [Dialogue("1", [("user", "something scary please")], ["h2"]),
             Dialogue("2", [("user", "any horror films?")], ["h2"]),
             Dialogue("3", [("user", "any horror films?")], ["h1"]),
             Dialogue("4", [("user", "a comedy please")], ["c1"]),
             Dialogue("5", [("user", "hi, what do you like?")], ["a1"])]
    prior = TargetPrior.from_dialogues(ranker.catalog, tracker.matcher, train, genres_of=genres_of,
                                       genre_names=ranker.facets.genre_names)
    ranker.set_target_prior(prior)
    state, (_, signals) = _ranked(ranker, tracker, "I'd like a horror film tonight")
    got = dict(zip([i.id for i in ranker.catalog], signals["genre_requests"].tolist()))
    assert got["h2"] == 1.0 and got["h1"] == pytest.approx(np.log(2) / np.log(3))  # log1p of 2 and 1 offers
    assert got["c1"] == got["c2"] == got["a1"] == 0.0
    _, (_, signals) = _ranked(ranker, tracker, "a funny one")
    assert dict(zip([i.id for i in ranker.catalog], signals["genre_requests"].tolist()))["c1"] == 1.0
    _, (_, signals) = _ranked(ranker, tracker, "no horror please")  # a refused genre asks for nothing
    assert "genre_requests" not in signals
    ranker.set_target_prior(TargetPrior.from_dialogues(ranker.catalog, tracker.matcher, train))  # no genres learned
    assert "genre_requests" not in _ranked(ranker, tracker, "I'd like a horror film tonight")[1][1]


DIRECTORS = [
    {"id": "x1", "title": "Glass Harbour (2012)", "description": "a story",
     "attributes": {"genre": ["drama"], "director": ["Ida Kerr"], "star": ["Jon Bell"], "year": 2012}},
    {"id": "x2", "title": "Salt Roads (2015)", "description": "a story",
     "attributes": {"genre": ["western"], "director": ["Ida Kerr"], "star": ["Kim Lowe"], "year": 2015}},
    {"id": "x3", "title": "Low Tide (2016)", "description": "a story",
     "attributes": {"genre": ["drama"], "director": ["Lou Marsh"], "writer": ["Ida Kerr"], "star": ["Jon Bell"], "year": 2016}},
    {"id": "x4", "title": "Quiet Acre (2014)", "description": "a story",
     "attributes": {"genre": ["drama"], "director": ["Max Nye"], "star": ["Nia Ortiz"], "year": 2014}},
    {"id": "x5", "title": "Paper Kite (2010)", "description": "a story",
     "attributes": {"genre": ["comedy"], "director": ["Olu Park"], "star": ["Nia Ortiz"], "year": 2010}},
]


@pytest.mark.parametrize("texts, first, then", [
    # her other film as director first, the one she only wrote next; not the star's other film
    (["I loved Glass Harbour (2012). What else did that director make?"], "x2", "x3"),
    (["I loved Quiet Acre (2014)", "I also liked Glass Harbour (2012)", "anything by the same director?"], "x2", "x3"),
    (["Have you seen Quiet Acre (2014)?", "more with that actress please"], "x5", None),  # the film asked about
])
def test_asked_for_that_directors_or_actors_films(tmp_path, texts, first, then):
    weights = replace(ONLY_FACETS, credits=0.0, seed_genre=0.0)  # only the ask moves the films
    ranker, tracker = _pipeline(tmp_path, DIRECTORS, weights)
    _, (total, signals) = _ranked(ranker, tracker, *texts)
    ranked = [r.item.id for r in ranker.top(total, signals, k=5)]
    assert ranked[0] == first and (then is None or ranked[1] == then), ranked
    assert (signals["role_credits"] > 0).sum() == (2 if then else 1)


def test_a_director_with_nothing_else_in_the_catalog_is_owned_up_to(tmp_path):
    """After Get Out, "what else did that director make?" listed other horror films as if they were Jordan
    Peele's; the reply now says the catalog has no other film of his."""
    from chatrec.prompts import PromptBuilder

    ranker, tracker = _pipeline(tmp_path, DIRECTORS)
    state, _ = _ranked(ranker, tracker, "I loved Paper Kite (2010)", "what else did that director make?")
    assert ranker.role_without_others(state) == ["Olu Park"]
    reply = PromptBuilder(ranker.catalog).none_reply(state, [ranker.catalog.by_id["x4"]], no_others=["Olu Park"])
    assert reply.startswith("I found no other film of Olu Park in the catalog; the closest picks I have:")
    state, _ = _ranked(ranker, tracker, "I loved Glass Harbour (2012)", "what else did that director make?")
    assert ranker.role_without_others(state) == []  # Ida Kerr made Salt Roads
    state, _ = _ranked(ranker, tracker, "I loved Paper Kite (2010)", "anything else?")
    assert ranker.role_without_others(state) == []  # no role asked


def test_a_role_ask_is_no_search_word():
    from chatrec.ranker import informative_texts

    state = DialogueState(messages=[Message("user", "I loved Glass Harbour. What else did that director make?")])
    assert informative_texts(state) == ["I loved Glass Harbour."]
    asks = ("what else has she been in?", "films directed by him", "that star wars film", "the director's cut")
    assert [a and a[0] for a in map(asked_role, asks)] == ["star", "director", None, None]


def test_sad_asks_for_drama_and_the_mood_is_no_search_word(tmp_path):
    ranker, tracker = _pipeline(tmp_path, FILMS + [
        {"id": "d1", "title": "Long Goodbye (2015)", "description": "a story", "attributes": {"genre": ["drama"], "year": 2015}},
        {"id": "m1", "title": "In the Mood (2016)", "description": "a story", "attributes": {"genre": ["comedy"], "year": 2016}}],
        weights=replace(ONLY_FACETS, lexical=0.7))
    _, (total, signals) = _ranked(ranker, tracker, "I'm in the mood for something sad tonight")
    assert ranker.top(total, signals, k=1)[0].item.id == "d1"  # not "In the Mood" for its title's words
    assert "lexical" not in signals  # "mood", "tonight": nothing to search for
    assert ranker.facets.wanted_genres(["I don't like sad movies"])[ranker.facets.genre_names.index("drama")] < 0


def test_genres_asked_for_as_alternatives_take_turns_in_the_list(tmp_path):
    """ "Any good westerns or war films?" listed only war films: popularity and the learned priors
    favour them many times over. Genres asked for as alternatives now take turns; genres stacked on
    one film ("a romantic comedy") and a taste ("I like war movies and westerns") leave the order."""
    rows = [{"id": f"w{n}", "title": f"Trench {n} (201{n})", "description": "a story",
             "attributes": {"genre": ["war"], "year": 2010 + n}} for n in range(4)]
    rows += [{"id": f"x{n}", "title": f"Saddle {n} (196{n})", "description": "a story",
              "attributes": {"genre": ["western"], "year": 1960 + n}} for n in range(2)]
    rows += [{"id": "rc", "title": "Love Hats (2001)", "description": "a story", "attributes": {"genre": ["romance", "comedy"]}},
             {"id": "r1", "title": "Love Boat (2002)", "description": "a story", "attributes": {"genre": ["romance"]}},
             {"id": "c1", "title": "Paper Hats (2003)", "description": "a story", "attributes": {"genre": ["comedy"]}}]
    ranker, tracker = _pipeline(tmp_path, rows, replace(ONLY_FACETS, popularity=RankWeights().popularity))
    ranker.popularity = np.array([1.0 - n / 10 for n in range(len(rows))], dtype=np.float32)  # war first
    facets = ranker.facets
    names = lambda text: [facets.genre_names[g] for g in facets.alternative_genres(text)]  # noqa: E731
    assert names("any good westerns or war films?") == names("war movies, and westerns") == ["war", "western"]
    assert names("a romantic comedy") == names("a funny horror movie") == names("a cartoon for my 7 year old") == []
    top = lambda *texts: [r.item.id for r in ranker.rank(_ranked(ranker, tracker, *texts)[0], k=4)]  # noqa: E731
    assert top("any good westerns or war films?") == ["w0", "x0", "w1", "x1"]
    assert top("I like war movies and westerns") == ["w0", "w1", "w2", "w3"]  # a taste
    assert top("any romantic comedies?")[0] == "rc"


def test_covering_gives_each_group_its_turn_and_leaves_a_mixed_list_alone():
    from chatrec.ranker import covering

    a = np.array([1, 1, 1, 0, 0, 0], dtype=bool)
    b = np.array([0, 0, 0, 1, 1, 1], dtype=bool)
    assert covering([0, 1, 2, 3, 4, 5], [a, b], 4) == [0, 3, 1, 4]
    assert covering([0, 3, 1, 4, 2, 5], [a, b], 6) == [0, 3, 1, 4, 2, 5]  # already taking turns
    both = np.ones(6, dtype=bool)
    assert covering([0, 1, 2, 3], [a, both], 3) == [0, 1, 2]  # an item in both counts for both
    assert covering([0, 1, 2], [a, b], 3) == [0, 1, 2]  # a group with nothing left: the best next


def test_genres_asked_of_one_film_lead_with_the_films_that_have_them_all(tmp_path):
    """ "a funny horror movie" was no ask (the message is little else, but it holds two genre words),
    and an ask for two genres lifted every film of either: popular plain horror led the horror
    comedies. Now it is an ask, and genres asked of one film count by the share a film has."""
    rows = [{"id": "h", "title": "Dark Stair (2017)", "description": "a story", "attributes": {"genre": ["horror"]}},
            {"id": "hc", "title": "Dead Funny (2004)", "description": "a story", "attributes": {"genre": ["horror", "comedy"]}},
            {"id": "c", "title": "Paper Hats (2003)", "description": "a story", "attributes": {"genre": ["comedy"]}}]
    ranker, tracker = _pipeline(tmp_path, rows, replace(ONLY_FACETS, popularity=0.7))
    ranker.popularity = np.array([1.0, 0.5, 0.0], dtype=np.float32)
    facets = ranker.facets
    asked = lambda *texts: {g for g, v in zip(facets.genre_names, facets.asked_genres(texts, facets.wanted_genres(texts))) if v > 0}  # noqa: E731
    assert asked("a funny horror movie") == asked("scary comedies?") == {"comedy", "horror"}
    assert facets.stacked_genres(["a funny horror movie"]) and not facets.stacked_genres(["horror or comedy?"])
    top = lambda *texts: [r.item.id for r in ranker.rank(_ranked(ranker, tracker, *texts)[0], k=3)]  # noqa: E731
    assert top("a funny horror movie") == ["hc", "h", "c"]
    assert top("any good horror or comedy movies?")[:2] == ["h", "hc"]  # alternatives: the popular one may lead


def test_like_a_film_but_funnier_asks_for_comedy_and_everything_but_refuses(tmp_path):
    """ "something like The Notebook but funnier" was a taste at most (Titanic led); "I like
    everything but fantasy movies" asked for nothing and refused nothing. The change asked of a film
    is an ask; "everything but" is "except"."""
    facets = Facets(load_catalog(write_jsonl(tmp_path / "c.jsonl", FILMS)))
    def read(text):
        wanted = facets.wanted_genres([text])
        asked = facets.asked_genres([text], wanted)
        return ({g for g, v in zip(facets.genre_names, wanted) if v < 0},
                {g for g, v in zip(facets.genre_names, asked) if v > 0})
    assert read("something like Night Shift but funnier") == (set(), {"comedy"})
    assert read("like Night Shift, but a bit scarier") == (set(), {"horror"})
    assert read("I like everything but horror movies") == ({"horror"}, set())
    assert read("anything but comedies") == ({"comedy"}, set())


def test_refusing_what_a_film_shows_is_no_refusal_of_its_genre(tmp_path):
    """ "something scary" then "oh and no gore please" listed Scary Movie and Black Panther: "gore" is
    a word for horror, so refusing it refused horror and filtered out every horror film. A refused
    subject ("no gore", "no zombies") leaves out the films whose text has it; "nothing scary" still
    refuses horror."""
    ranker, tracker = _pipeline(tmp_path, FILMS + [
        {"id": "h3", "title": "Blood Farm (2015)", "description": "gore and more gore",
         "attributes": {"genre": ["horror"], "year": 2015}}])
    facets = ranker.facets
    wanted = lambda *texts: {g: float(v) for g, v in zip(facets.genre_names, facets.wanted_genres(texts)) if v}  # noqa: E731
    assert wanted("no gore please") == wanted("nothing with zombies") == {}
    assert wanted("something scary", "oh and no gore please") == {"horror": 1.0}
    assert wanted("nothing scary") == wanted("not a horror fan, no gore") == {"horror": -1.0}
    assert facets.of_genre_word("gore").size == facets.of_genre_word("zombies").size == 0
    state, (total, signals) = _ranked(ranker, tracker, "something scary", "oh and no gore please")
    assert state.prefs.exclude == ["gore"]
    assert sorted(r.item.id for r in ranker.top(total, signals, k=3)[:2]) == ["h1", "h2"]  # not Blood Farm: horror
