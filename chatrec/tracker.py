"""Dialogue-state tracking: turn each message into updates of ``DialogueState``.

Rule-based and fast (runs every turn, in well under a millisecond for typical messages): budget
phrases ("under £20", "between 10 and 30 pounds"), exclusions ("no Lego", "not horror"),
must-haves ("with a remote control"), the wanted category (words of the catalog's own category
names), and catalog items the user names, with whether they liked or disliked them. It does not
use the LM: state must be right even in ``--model none`` mode.
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Callable, Sequence

from .catalog import Catalog
from .facets import GENRE_SUBJECTS, GENRE_WORDS
from .lexical import FILLER, content_words, spell_emoji
from .matching import COMMON_WORDS, TitleMatcher, normalize
from .state import DialogueState, Message

_NUM = r"(\d{1,3}(?:,\d{3})+(?:\.\d{1,2})?(?!\d)|\d+(?:[.,]\d{1,2})?)"  # "£1,000", "£1,000.50", "20,50 €"
_CUR = r"(?:£|\$|€|gbp\s*|usd\s*)?"
_UNIT = r"(?:\s*(?:pounds?|quid|gbp|dollars?|euros?|bucks))?"
_NOT_MONEY = r"(?!\s*(?:s\b|years?|yrs?|yo\b|months?|year-olds?|cm|mm|m\b|kg|g\b|pieces?|pcs|%))"
_BETWEEN = re.compile(rf"between\s+{_CUR}{_NUM}{_UNIT}\s*(?:and|to|-|–)\s*{_CUR}{_NUM}{_UNIT}", re.I)
_RANGE = re.compile(rf"(?:£|\$|€){_NUM}\s*(?:-|–|to)\s*{_CUR}{_NUM}", re.I)
_MAX = re.compile(rf"(?<!\bno\s)(?<!\bnot\s)(?<!\bnothing\s)\b(?:under|below|less than|cheaper than|max(?:imum)?|"
                  rf"up to|no more than|at most|within|budget(?: is| of)?|not over|not above|nothing (?:over|above|more than)|"
                  rf"tops)\s*:?\s*(?:(?:about|around|roughly|approx(?:imately)?)\s*)?"
                  rf"({_CUR}){_NUM}({_UNIT}){_NOT_MONEY}", re.I)
# not "no more than £25" nor "nothing over $30": those are ceilings (``_MAX``); "nothing under £10" is a floor
_MIN = re.compile(rf"(?<!\bno\s)(?<!\bnot\s)(?<!\bnothing\s)\b(?:over|above|more than|at least|min(?:imum)?|from|"
                  rf"(?:nothing|not|no) (?:under|below|less than|cheaper than))\s*({_CUR}){_NUM}({_UNIT}){_NOT_MONEY}", re.I)
_AROUND = re.compile(rf"\b(?:around|about|roughly|approx(?:imately)?|circa)\s*(?:((?:£|\$|€)){_NUM}|"
                     rf"{_NUM}\s*(?:pounds?|quid|gbp|dollars?|euros?|bucks)\b)", re.I)
_BARE_BUDGET = re.compile(rf"(?:£|\$|€){_NUM}\s*(?:budget|max|or less|or under)", re.I)
# "over £30 is too much", "£20 is a bit steep": that amount is more than they will spend
_TOO_MUCH = re.compile(rf"(?:\b(?:over|above|more than|anything over)\s*)?({_CUR}){_NUM}({_UNIT})\s*(?:is|'s|would be|seems)\s+"
                       rf"(?:(?:way|far|a bit|a little|rather|just)\s+)?(?:too much|too expensive|too pricey|too dear|"
                       rf"too steep|steep|over (?:my|our|the) budget|more than I want)", re.I)
_BUDGET_PHRASES = (_TOO_MUCH, _BETWEEN, _RANGE, _MAX, _MIN, _AROUND, _BARE_BUDGET)
# An amount with its currency and nothing else: "not too expensive, maybe £20?" is a budget.
_BARE_AMOUNT = re.compile(rf"(?:£|\$|€)\s?{_NUM}(?!\s*(?:-|–|to)\s*(?:£|\$|€)?\d)", re.I)
_SLANG_MONEY = {"fiver": "£5", "tenner": "£10"}
_SLANG = re.compile(r"\b(?:an?\s+)?(fiver|tenner)s?\b", re.I)  # "under a tenner"
# Cheaper than what was just shown, with no amount: "something cheaper?", "those are too expensive".
_CHEAPER = re.compile(r"\b(?:cheaper|less expensive|lower[- ]priced|more affordable|"
                      r"too (?:expensive|pricey|dear|much money))\b", re.I)


def money_words(text: str) -> str:
    """Slang amounts as amounts: "under a tenner" -> "under £10"."""
    return _SLANG.sub(lambda m: _SLANG_MONEY[m.group(1).lower()], text)


def without_budget(text: str) -> str:
    """The text minus its budget phrases: "a train set under £40" searches for "a train set", not for
    "40" (which would pull in a "40 piece set"); the budget itself is a price filter."""
    text = _CHEAPER.sub(" ", money_words(text))
    for pattern in _BUDGET_PHRASES:
        text = pattern.sub(" ", text)
    return text

_NUMBER_WORDS = {w: n for n, w in enumerate("zero one two three four five six seven eight nine ten eleven twelve "
                                            "thirteen fourteen fifteen sixteen seventeen eighteen".split())}
_AGE_N = rf"(\d{{1,2}}|{'|'.join(_NUMBER_WORDS)})"
_OF_AGE = re.compile(  # "my 4 year old", "a 10-year-old girl", "18 months old", "6yo", "ages 3+", "she's 7"
    rf"\b{_AGE_N}(?:\s*|-)(?P<unit>years?|yrs?|months?)(?:\s*|-)olds?\b|\b(\d{{1,2}})\s*(?:yo|y/o|y\.o\.)(?!\w)|"
    rf"\bage[sd]?\s*(?:of\s*)?{_AGE_N}\b(?:\s*(?P<unit2>years?|months?))?|\b(?:turns?|turning)\s+{_AGE_N}\b|"
    rf"\b(?:(?:she|he|son|daughter|nephew|niece|grandson|granddaughter|kid|child|boy|girl)(?:'s| is)|"
    rf"(?:kids|children|boys|girls|sons|daughters|twins) are(?: both| aged)?)\s+"
    rf"(?:only\s+|just\s+|nearly\s+|almost\s+|about\s+)?{_AGE_N}\b(?!\s*(?:£|\$|€|pounds?|quid|%|\.\d|pieces?|cm|mm|months?|weeks?))",
    re.I)
# Children then their ages: "for two kids, 5 and 8", "my boys (4 & 6)", "grandchildren aged 3, 5 and 9".
_KIDS_AGED = re.compile(
    rf"\b(?:kids|children|boys|girls|sons|daughters|grandkids|grandchildren|grandsons|granddaughters|twins|nephews|nieces)"
    rf"\s*(?:[,:(-]|aged|ages|of ages?|who are)?\s*(?P<list>{_AGE_N}(?:\s*(?:,|and|&)\s*{_AGE_N})+)\b"
    rf"(?!\s*(?:£|\$|€|pounds?|quid|%|\.\d|pieces?|cm|mm|months?|weeks?))", re.I)
_AGE_WORD = re.compile(r"\bfor (?:a|an|my|our|the)\s+(?:little\s+|young\s+)?(newborn|infant|baby|toddler|tween|teen|teenager)s?\b",
                       re.I)
_AGE_OF_WORD = {"newborn": 0.25, "infant": 0.5, "baby": 0.5, "toddler": 2.0, "tween": 10.0, "teen": 13.0, "teenager": 13.0}

_NEGATION = re.compile(r"\b(?:(?:not|never|n'?t)\s+(?:really\s+|very\s+|too\s+|that\s+)?(?:interested in|into|keen on|"
                       r"big on|in the mood for|(?:an?\s+)?(?:big\s+|huge\s+)?fan of)|no interest in|"
                       r"(?:can'?t|cannot) stand|(?:don'?t|do not) care for|sick of|tired of|"
                       r"no|not|non|without|avoid|except|nothing|hate|don'?t want|do not want|"
                       r"(?:don'?t|do not|doesn'?t|does not|didn'?t|did not) (?:like|want|care for)|hates|dislikes?|"
                       r"anything but|excluding|no more)\s+"
                       r"(?:any\s+|more\s+|(?P<article>an?\s+)|(?:(?:any|some)thing\s+)?(?:with|about|involving|featuring|by|directed by|starring)\s+(?:any\s+|an?\s+)?|"
                       r"(?:any|some)thing\s+)?"
                       r"(?P<term>[\w'&-]+(?:\s+[\w'&-]+)?)", re.I)
# A kind of item the person already has plenty of: "he already has a lot of puzzles", "she has loads
# of dolls", "we've already got a train set". Only with "already" or a quantity: "he has a dinosaur
# obsession" owns nothing. The term counts as refused where it names a kind of item in the catalog.
_OWNED = re.compile(r"\b(?:i|we|he|she|they|i'?ve|we'?ve|he'?s|she'?s|they'?ve)\s+"
                    r"(?:(?P<already>already|also already)\s+)?(?:has|have|owns?|got|has got|have got)\s+"
                    r"(?:(?P<already2>already)\s+)?(?P<many>(?:a lot of|lots of|loads of|plenty of|so many|too many|"
                    r"enough|a ton of|tons of|heaps of|a bunch of)\s+)?(?:an?\s+)?"
                    r"(?P<term>[\w'&-]+(?:\s+[\w'&-]+)?)", re.I)
_PERSON_BEFORE = re.compile(r"\b(?:i|we|he|she|they|you)\s+(?:also\s+|really\s+|already\s+)?$", re.I)  # "he has"
# "sounds fun", "that one looks good": a reaction, no wish for the category "Sound Toys"
_SOUNDS = re.compile(r"\b(?:(?:it|that|this|one|they|those|these|both|which)\s+(?:sounds?|looks?|seems?)|"
                     r"sounds?\s+(?:(?:so|really|pretty|very|quite)\s+)?(?:good|great|fun|interesting|cool|nice|"
                     r"perfect|lovely|like|amazing|awesome|brilliant))\b", re.I)
_SELF = re.compile(r"(?:\bi am|\bi'?m|\bwe are|\bwe'?re|\bhe is|\bshe is|\bhe'?s|\bshe'?s)\s+$", re.I)  # "I'm not a kid"
_NOT_TARGETS = COMMON_WORDS | frozenset(
    "sure thanks thank really too so idea problem worries much bad expensive cheap yet quite "
    "anything something nothing seen watched watching seeing heard tried interested looking keen fan big huge fond over under above below "
    "ones stuff though tho please thanks".split())
_MUST = re.compile(r"\b(?:with|that has|that have|has|must have|must be|needs? to be|needs? to have|including|"
                   r"featuring|should be|should have)\s+(?:a\s+|an\s+|some\s+|lots of\s+)?"
                   r"([\w'&-]+(?:\s+[\w'&-]+)?)", re.I)
# What the films are about: "zombie movies", "a film about sharks" (``Tracker._topic`` decides which words count).
_TOPIC = (re.compile(r"\b([a-z][\w'-]*)\s+(?:movies?|films?|flicks?)\b", re.I),
          re.compile(r"\b(?:movies?|films?|flicks?|something|anything|one)\s+about\s+(?:an?\s+|some\s+|the\s+)?"
                     r"([a-z][\w'-]*(?:\s+[a-z][\w'-]*)?)", re.I))
# What someone loves, in a shop: "she loves unicorns", "he's really into dinosaurs", "a unicorn toy".
# ``Tracker._topic`` decides which words count; a word no item uses is kept so the reply says so.
_INTEREST = (re.compile(r"\b(?:loves?|adores?|(?:is|are|'s|'re|am|i'm|im)\s+(?:really\s+|very\s+|so\s+)?"
                        r"(?:into|obsessed with|crazy about|mad about|fond of)|obsessed with|crazy about|mad about)\s+"
                        r"(?:all things\s+)?(?P<term>[a-z][\w'-]*)\b(?!\s+(?:movies?|films?|flicks?|and|or)\b)", re.I),
             re.compile(r"\b(?:an?|some)\s+(?P<term>[a-z][\w'-]*)\s+(?:toys?|gifts?|presents?)\b", re.I))
_NOT_TOPICS = frozenset("""old classic classics fun bad popular famous underrated overrated cheesy weird indie foreign
short long english american british cult true real happy dark light cute sweet serious intense smart clever deep
boring big little adult adults teen teens teenage tv disney pixar marvel dc netflix hollywood bollywood top
decent solid amazing excellent interesting exciting entertaining recommended upcoming current modern vintage
each every all any those these such what which whose fantastic wonderful terrific brilliant lovely beautiful
crazy wild girly girlie friendly filled packed pack whole entire late early night day weekend heavy random simple
easy hard quick slow strange epic iconic guy guys girl girls life people person genre style series sequel sequels
remake remakes version versions franchise trilogy childrens kiddie two three four five six ten date lead""".split())
_GENRE_WORD_RX = [re.compile(rf"(?:{pattern})\b", re.I) for pattern in (*GENRE_WORDS.values(), *GENRE_WORDS)]
# "that isn't a horror", "ones that aren't plush": refuses a genre, a kind of item or a word of a shop's titles
# only ("isn't sold out", and a question, "Isn't Anthony Hopkins the greatest?", refuse nothing)
_ISNT = re.compile(r"(?<![.!?]\s)(?<!^)\b(?:isn'?t|aren'?t|is not|are not)\s+(?:an?\s+)?(?P<term>[\w'-]+)", re.I)
# The genres a film is of, not an audience a person may be ("I am not a kid" refuses nothing)
_KIND_OF_FILM_RX = [re.compile(rf"(?:{pattern})\b", re.I) for g, pattern in GENRE_WORDS.items() if g != "family"]
_SUBJECTS = GENRE_SUBJECTS | {w + "s" for w in GENRE_SUBJECTS}
# Words after "not"/"no" that say how the user is or what they do, not what to leave out.
_NOT_REFUSED = frozenset("""picky fussy fussed bothered sure sorry certain used matter matters shame lot lots either
neither enough preference preferences upset catch comes come came eighteen remember unlike like enjoy commit mind care
worry worries kidding joking able allowed ready done finished expecting exactly anymore anyway particular saw seen
happy keen fond into big huge fan fans havent hasnt didnt doesnt dont cant wont isnt wasnt arent werent shouldnt
wouldnt couldnt ive im id youre thats theres whats lets objects thing things around make made known going gone
know watches toward towards previous greatest enjoys bit real god tax u""".split())
_SOFTENERS = r"(?:(?:really|very|that|so|a|big|huge|much|of)\s+){0,3}"  # "wasn't a big fan of", "not really into"
_NEG_SENTIMENT = re.compile(rf"\b(?:didn'?t|did not|don'?t|do not|never|wasn'?t|was not|isn'?t|is not|not)\s+{_SOFTENERS}"
                            r"(?:like|love|enjoy|care|fan|good|great|into|interested)|\b(?:hate[sd]?|hating|"
                            r"dislike[sd]?|boring|awful|terrible|worst|overrated|not for me|meh|(?:sick|tired) of|"
                            r"(?<!not )(?<!n.t )too (?:scary|long|slow|violent|confusing|weird|sad|depressing|gory|childish|cheesy))\b", re.I)
# The item itself is what the user refuses: "no Cars 3 or Pixar films", "anything but The Shining".
_NEGATED_MENTION = re.compile(r"(?<!why )(?<!or )\b(?:no|not|nor|except|excluding|without|avoid|anything but|nothing like|"
                              r"nothing similar to|no more|none of)\s+(?:the\s+)?$", re.I)
_POS_SENTIMENT = re.compile(r"\b(?:like[sd]?|love[sd]?|loving|enjoy(?:ed|s)?|favou?rite|great|awesome|"
                            r"amazing|good|fan of|into|adore[sd]?|fun|best|excellent|brilliant|fantastic|"
                            r"wonderful|incredible|hilarious|superb|masterpiece)\b", re.I)
_OPENERS = "\"'“‘(*_["  # may open a title: quotes, brackets, markdown emphasis
_CLOSERS = "\"'”’)*_]"  # and close it
_CLAUSE = re.compile(r"[.!?;]|\bbut\b|\bhowever\b|\bthough\b", re.I)
# The user has not seen a named item, or wants to: it is a wish, not something they already have.
_NOT_SEEN = re.compile(r"\b(?:haven\S*|hasn\S*|have not|has not|never|not yet|didn'?t|did not|not)\s+"
                       r"(?:\w+\s+){0,2}?(?:seen|watched|saw|see|watch|heard of|heard)\b", re.I)
_WANTS = re.compile(r"\b(?:want(?:s|ed)? to|would like to|'d like to|wanna|plan(?:ning)? to|going to|gonna|"
                    r"have to|need to|might)\s+(?:\w+\s+)?(?:see|watch|check)\b|\bon my\s+(?:\w+\s+)?list\b|"
                    r"\bheard\s+(?:\S+\s+){0,3}(?:good|great|funny|scary)\b", re.I)
# ... right before the name: "I have not yet seen X", "also never seen X", "I want to see X", "I heard X was good"
# (not "who hasn't seen X", which says everyone has)
_UNSEEN_BEFORE = re.compile(rf"(?<!who )(?<!who's )(?:{_NOT_SEEN.pattern}|{_WANTS.pattern}|\bheard(?: that| about)?)"
                            r"(?:\s+(?:yet|either|the|a|an|original|first|new|old|movie|film))*$", re.I)
_UNSEEN_AFTER = re.compile(r"\s*(?:\(\d{4}\)\s*)?(?:is|are|'s)\s+(?:on|in)\s+my\s+(?:\w+\s+)?(?:list|queue)\b", re.I)
# The reason an item is refused is that it was seen: "not Training Day, I've seen it", "no Up, we watched that"
_SEEN_IT = re.compile(r"\b(?:i'?ve|i have|we'?ve|we have|already|i|we)\s+(?:already\s+|both\s+)?(?:seen|watched|saw)\b"
                      r"(?!\s+(?:it|that|them)\s+(?:and|but)\s+(?:hated|disliked))", re.I)
_AGAIN = re.compile(r"\b(?:again|once more|re-?watch(?:ing)?)\b", re.I)
# A question about the item itself ("did you like X?", "is X any good?"), unlike a reference ("like X").
_REFERENCE = re.compile(r"\b(?:like[sd]?|similar to|such as|as good as|same as|lines of|kind of|sort of|type of|"
                        r"style of|vein of|fan of|favou?rites? (?:is|are|was)|love[sd]?|enjoy(?:ed|s)?|adore[sd]?|"
                        r"(?:already )?(?:seen|watched|saw))\s*$", re.I)  # "seen X already, something else?"
# Asks for other suggestions than those already shown.
_MORE = re.compile(r"\b(?:any(?:thing|one)? else|something else|what else|any ?others?|anymore|any more\b(?! than)|"
                   r"(?:some|any|a few|few|two|2|three|3) (?:other|more|different) (?:ones?|options?|suggestions?|ideas?|picks?|"
                   r"choices?|recommendations?|movies?|films?|titles?|items?|toys?|products?)|"
                   r"other (?:options|suggestions|ideas|recommendations|choices|picks)|"
                   r"more (?:options|suggestions|ideas|recommendations|choices|picks)|"
                   r"another (?:one|suggestion|option|idea|pick|recommendation)|something different|different ones|"
                   r"more (?:like|similar to) (?:that|this|it|these|those|them)\b|similar ones|others like (?:that|this|it)\b|"
                   r"(?:seen|watched|have|got|had) (?:those|them|these|that one|it|both)(?: all| already| before)?(?: too)?[,.!]? "
                   r"(?:what|anything|any|something) (?:else|other|more))", re.I)
_LIST_GLUE = re.compile(r"\s*(?:,|&|/|\band\b|\bor\b|\bnor\b)(?:\s*(?:and|or)\b)?\s*$", re.I)  # "X, Y and Z"
_ORDINALS = {"first": 0, "1st": 0, "second": 1, "2nd": 1, "third": 2, "3rd": 2, "fourth": 3, "4th": 3,
             "fifth": 4, "5th": 4, "last": -1}
_NTH = "|".join(_ORDINALS)
_ORDINAL = re.compile(rf"\bthe ({_NTH})\b(?! time)", re.I)
_ASKS_OPINION = re.compile(r"\b(?:did|do|does|have|has|would|will) you\s+(?:\w+\s+)?"
                           r"(?:like[sd]?|love[sd]?|enjoy(?:ed)?|seen|watched|see|watch|recommend)\s*$", re.I)
# A follow-up on what the assistant just suggested, naming no item: the answer is about those items.
_FOLLOW_UP = re.compile(
    r"\bwhat(?:'s| is| are| was|s)\s+(?:it|they|that|this|those|these|them|either|both|the \w+(?: one| two)?)"
    r"(?:\s+\w+)?\s+about\b|\bwho(?:'s| is| are)?\s+(?:in|stars? in|plays in|directed|made)\s+(?:it|that|them|this|those|"
    rf"the (?:{_NTH})(?: one)?)\b|"
    r"\btell me (?:more|about (?:it|them|that|those|the))\b|\bmore about (?:it|them|that|those|the)\b|"
    r"\bwhich (?:other )?(?:one|of them|of those|of the|would you)\b|\bnever heard of\b|"
    r"\b(?:haven\S*|have not|never|not)\s+(?:\w+\s+)?(?:seen|watched|heard of)\s+(?:it|them|either|that|those|"
    r"any|one|this|the)\b|\bsounds? (?:good|great|interesting|fun|cool|nice)\b|\bi'?ll (?:check|look|watch|give)|"
    r"\bwill (?:check|watch|look)|\bwhat (?:genre|rating|year) is\b|"
    r"\bis (?:it|that|that one|this one) (?:good|scary|funny|worth|any good|for kids|kid)|"
    rf"\b(?:what|how) about (?:the (?:{_NTH})(?: one)?|that one|this one)\s*(?:\?|$)", re.I)
# "I haven't seen all the Star Wars films": not the series, the film it names
_NOT_ALL = re.compile(r"(?:n'?t|not|never)\s+(?:\w+\s+)?(?:seen|watched|saw|had|have|got|own(?:ed)?)\s+"
                      r"(?:all|every|each|both)(?:\s+one)?(?:\s+of)?(?:\s+the|\s+those)?\s*$", re.I)


# A question about the suggestions as a group: "does any of them sing?", "are any of those wooden?"
_ABOUT_SHOWN = re.compile(r"\b(?:do|does|did|is|are|can|could|will|would|have|has)\s+(?:any|either|one|some|all|both|"
                          r"none|each)\s+of\s+(?:them|those|these|the \w+)\b", re.I)
# Which of the suggestions to take: "which one is the best?", "which would you pick?", "your top pick?"
_PICK = re.compile(r"\bwhich (?:one|movie|film|of (?:them|those|these|the \w+))?\s*(?:(?:is|was|'s|are|would|should|do|did|will)\s+)?"
                   r"(?:(?:the|your|you|i|we)\s+)?(?:\w+\s+)?(?:best|better|favou?rite|top|pick|choose|recommend|suggest|"
                   r"start with|watch first|go (?:for|with))\b|\b(?:if you (?:had|have) to (?:pick|choose)|your (?:top|best) pick|"
                   r"(?:pick|choose) one for me)\b", re.I)
_OTHER = re.compile(r"(?<!than )\bthe other(?: one| movie| film| two| 2)?(?=\s*(?:[?.!,]|$)|\s+(?:one|is|was|about|sounds?|"
                    r"looks?|what|on my list)\b)", re.I)  # "what is the other about?"; not "the other day"

# A reference to what the assistant just suggested, when the message names no item: "I hated that one",
# "loved the second one", "seen them all". One item, unless plural or picked by an ordinal.
_ONE = rf"(?:it|that(?: one| movie| film)?|this(?: one)?|the (?:{_NTH})(?: one)?)"
_ALL = (r"(?:them(?: all)?|those(?: ones| two| three)?|these(?: ones)?|both(?: of them)?|"
        r"all of (?:them|those|these)|all (?:two|three|four|five)|either(?: of them| one)?)")
_REF = rf"(?P<ref>{_ALL}|{_ONE})"
_ABOUT_ITEM = r"(?!\s+(?:when|if|how|that|because|to)\b)"  # "I hate it when...": not about the item
_REF_PLURAL = re.compile(rf"^{_ALL}$", re.I)
_REF_NEGATED = re.compile(r"\b(?:not|never|no)\b|n'?t\b", re.I)
_DISLIKE = (r"hated?|disliked?|(?:didn'?t|did not|don'?t|do not|never) (?:really )?(?:like[sd]?|love[sd]?|"
            r"enjoy(?:ed)?|care for)|(?:can'?t|cannot|couldn'?t) stand|"
            rf"(?:not|wasn'?t|was not|isn'?t|is not)\s+{_SOFTENERS}(?:fan of|into)")
_BAD = (r"boring|awful|terrible|bad|dumb|stupid|lame|overrated|the worst|not (?:good|great|funny|for me)|"
        r"too (?:scary|long|slow|violent)")
_GOOD = r"great|good|amazing|awesome|fun|excellent|brilliant|hilarious"
_REF_PATTERNS = (  # (sentiment, pattern), first match wins
    (-1, re.compile(rf"\b(?:{_DISLIKE})\s+{_REF}\b{_ABOUT_ITEM}", re.I)),
    (-1, re.compile(rf"\b{_REF} (?:was|were|is|are)(?: so| really| pretty| too| kind of| a bit)? (?:{_BAD})\b", re.I)),
    (-1, re.compile(rf"^\W*(?:no\W+)?not {_REF}\s*(?:,|\.|!|$)", re.I)),  # "No, not that one!"
    (1, re.compile(rf"(?<!'d )(?<!would )(?<!might )(?<!will )(?<!may )\b(?:loved?|liked?|enjoyed|adored?)\s+"
                   rf"{_REF}\b{_ABOUT_ITEM}", re.I)),
    (1, re.compile(rf"\b{_REF} (?:was|were)(?: so| really| pretty)? (?:{_GOOD})\b", re.I)),
    (1, re.compile(rf"\b{_REF} (?:is|would be|will be|'s)(?: just)? (?:perfect|exactly what i (?:want|need)(?:ed)?|the one)\b",
                   re.I)),  # "the first one is perfect, thanks!": picked
    # "the second one looks good, anything similar?": a pick to find more like, as a like
    (1, re.compile(rf"\b{_REF} (?:looks?|sounds?|seems?)(?: so| really| pretty| very)? (?:{_GOOD}|nice|cool|"
                   rf"perfect|lovely|cute|interesting)\b(?=.*\b(?:similar|like (?:it|that|this)|more like|others? like)\b)",
                   re.I)),
    (0, re.compile(rf"\b(?:i'?ve|i have|we'?ve|we have|i|we|already)(?: already| both)? (?:seen|watched|saw)\s+"
                   rf"{_REF}\b(?! yet)", re.I)),
    # owned, not watched: "he already has the first one", "we've got that", "I bought them both"
    (0, re.compile(rf"\b(?:i|we|he|she|they|i'?ve|we'?ve|he'?s|she'?s|they'?ve|already)(?: already| both| also)? "
                   rf"(?:have|has|own|owns|got|bought)(?: got)?(?: already)?\s+{_REF}\b{_ABOUT_ITEM}", re.I)),
)


class Tracker:
    """Updates a ``DialogueState`` from messages. Shared (stateless) across sessions."""

    def __init__(self, catalog: Catalog, matcher: TitleMatcher):
        self.catalog = catalog
        self.matcher = matcher
        self.category_words = _category_words(catalog)
        self.category_heads = _category_heads(self.category_words)
        self._kinds = set().union(*self.category_words.values())  # words that name a kind of item
        # A shop's catalog (prices): "she loves unicorns" tells what to look for. In a film catalog what
        # people love is films, people and genres, read elsewhere ("I love romace" is a typo, not a topic).
        self._shop = any(item.price is not None for item in catalog)

    def observe(self, state: DialogueState, message: Message) -> None:
        """Append ``message`` to the state and update what we know from it."""
        state.messages.append(message)
        if message.role == "assistant":
            found = list(dict.fromkeys(m.item_id for m in self.matcher.find_in_text(message.content)))
            if found:  # a reply naming nothing ("both are intense!") keeps the suggestions "those two" means
                state.suggested(found)
            return
        text = spell_emoji(message.content)  # "🦖 for my son": a t-rex
        filters = _filters(state)
        self._update_budget(state, text)
        if (age := stated_age(text)) is not None:
            state.prefs.age = age
        matches = self.matcher.find_in_text(text, typed=True)
        if newest := self.matcher.newest_of_series(text):  # "have you seen the new star wars?": not Star Wars (1977)
            matches = [m for m in matches if not any(m.start < n.end and n.start < m.end for n in newest)] + newest
            matches.sort(key=lambda m: m.start)
        series = [m for m in self.matcher.whole_series(text) if not _NOT_ALL.search(text, 0, m.start)]
        if series:  # "all the Godfather movies are great", "he's seen all the harry potter ones": each of them
            matches = [m for m in matches if not any(m.start < n.end and n.start < m.end for n in series)] + series
            matches.sort(key=lambda m: m.start)
        self._update_terms(state, text, titles=[(m.start, m.end) for m in matches])
        state.title_spans[state.n_turns - 1] = [(m.start, m.end, m.item_id) for m in matches]
        # "no Hornby" is no wish for Hornby, nor "he already has lots of puzzles" for puzzles
        unwanted = [m.span() for rx in (_NEGATION, _SOUNDS) for m in rx.finditer(text)]
        unwanted += [m.span() for m in self._owned_kinds(text)]
        if found := self._category_in(_blank(text, unwanted)):
            state.prefs.category, qualifier = found
            if qualifier and not _has(state.prefs.must_have, qualifier):
                state.prefs.must_have.append(qualifier)
        about = state.asked  # what the previous message asked about: "it" in "I didn't like it much"
        state.asked = []
        state.wants_more = bool(_MORE.search(text))
        state.wants_pick = bool(_PICK.search(text))
        state.narrowed = _filters(state) != filters
        spans = [(m.start, m.end) for m in matches]
        for match in matches:
            sentiment = mention_sentiment(text, match.start, match.end)
            if sentiment >= 0 and mention_unseen(text, match.start, match.end, spans):
                sentiment = 0  # "I have not seen X, I did love Y": X is no film they liked
                state.unseen.setdefault(match.item_id)  # nor one they have: it stays a candidate
            else:
                state.unseen.pop(match.item_id, None)  # "I saw X last week"
            state.mentioned[match.item_id] = sentiment
            if sentiment < 0:
                state.reject(match.item_id)
            elif (mention_interest(text, match.start, match.end, spans)
                  and match.item_id not in state.asked):
                state.asked.append(match.item_id)
        if named := [m.item_id for m in matches if state.mentioned.get(m.item_id, 0) >= 0]:
            state.last_named = list(dict.fromkeys(named))
        if not matches and self._update_referenced(state, text, about):
            state.wants_more = True  # "he already has the first one": the others, not the same list again
        if not any(state.mentioned[m.item_id] >= 0 for m in matches) and _FOLLOW_UP.search(text):
            # not what the user already said they liked: "like Transporter 3" then "I have not watched
            # that" after "Transporter 3 was intense! How about Rogue Nation?" asks about Rogue Nation
            state.asked = [i for i in state.last_shown if i not in state.rejected and state.mentioned.get(i, 0) <= 0]
            if len(about) == 1 and about[0] in state.asked:  # "what's Blockers about?" ... "sounds fun!": Blockers
                state.asked = list(about)
            if m := _ORDINAL.search(text):  # "what is the second one about?": that one
                picked = [i for i in _nth(state.last_shown, m.group(1)) if i not in state.rejected]
                state.asked = picked or state.asked
        if not matches and _ABOUT_SHOWN.search(text):  # "does any of them sing?": those that do
            state.asked = self._shown_with(state, text) or state.asked
        other = _OTHER.search(text)
        if other and not any(m.start <= other.start() < m.end for m in matches):  # not "The Other Guys"
            named = {m.item_id for m in matches}  # "Fireproof was amazing, what is the other about?": not Fireproof
            others = [i for i in state.last_shown if i not in named and i not in state.rejected]
            state.asked = others or state.asked

    def _shown_with(self, state: DialogueState, text: str) -> list[str]:
        """The latest suggestions whose title or description has a word the question asks about
        ("sing" in "Singing Plush Doll"): words of 3+ letters, matched by stem as a word's start."""
        wanted = {_stem(w) for w in content_words(_ABOUT_SHOWN.sub(" ", text)) if len(w) >= 3}
        out = []
        for item_id in state.last_shown:
            item = self.catalog.get(item_id)
            if item is None or item_id in state.rejected:
                continue
            words = normalize(f"{item.title} {item.description}").split()
            if any(w.startswith(stem) for stem in wanted for w in words):
                out.append(item_id)
        return out

    def _update_referenced(self, state: DialogueState, text: str, about: Sequence[str] = ()) -> bool:
        """A dislike of the items the assistant just suggested, referred to rather than named,
        rejects them (never shown again, neighbours demoted); a like or "seen it" marks them as had
        (not recommended back; a like also makes them seeds). See ``referenced``. True when the
        message reacts to some of them."""
        found = referenced(text, state.last_shown, about)
        if found is None:
            return False
        sentiment, item_ids = found
        for item_id in item_ids:
            if sentiment < 0:
                state.reject(item_id)
                state.mentioned[item_id] = -1
            else:
                state.mentioned[item_id] = max(sentiment, state.mentioned.get(item_id, 0))
            state.unseen.pop(item_id, None)
        return bool(item_ids)

    def _update_budget(self, state: DialogueState, text: str) -> None:
        prefs = state.prefs
        text = money_words(text)
        if not any(p.search(text) for p in _BUDGET_PHRASES) and (m := _BARE_AMOUNT.search(text)):
            prefs.max_price = _money(m.group(1))  # the one amount named is the most to spend
            if prefs.min_price is not None and prefs.min_price > prefs.max_price:
                prefs.min_price = None
            return
        if _CHEAPER.search(text) and not any(p.search(text) for p in _BUDGET_PHRASES):
            # no amount: below the middle price of what was just shown ("something cheaper?")
            prices = sorted(p for i in state.last_shown if (p := self._price(i)) is not None)
            if prices:
                cap = prices[(len(prices) - 1) // 2]
                prefs.max_price = cap if prefs.max_price is None else min(prefs.max_price, cap)
                if prefs.min_price is not None and prefs.min_price >= prefs.max_price:
                    prefs.min_price = None
            return
        if m := _TOO_MUCH.search(text):
            prefs.max_price = _money(m.group(2))
            if prefs.min_price is not None and prefs.min_price >= prefs.max_price:
                prefs.min_price = None
            return
        if m := (_BETWEEN.search(text) or _RANGE.search(text)):
            lo, hi = sorted((_money(m.group(1)), _money(m.group(2))))
            prefs.min_price, prefs.max_price = lo, hi
            return
        for m in _MAX.finditer(text):
            if m.group(1) or m.group(3) or "budget" in m.group(0).lower() or _looks_like_price(text):
                prefs.max_price = _money(m.group(2))
        for m in _MIN.finditer(text):
            if m.group(1) or m.group(3):
                prefs.min_price = _money(m.group(2))
        if (m := _AROUND.search(text)) and not re.search(r"\bbudget(?: is| of)?\s*:?\s*$", text[:m.start()], re.I):
            value = _money(m.group(2) or m.group(3))  # "about £25"; a budget of about £25 is a cap (above)
            prefs.min_price, prefs.max_price = round(value * 0.75, 2), round(value * 1.25, 2)
        if m := _BARE_BUDGET.search(text):
            prefs.max_price = _money(m.group(1))
        if prefs.min_price is not None and prefs.max_price is not None and prefs.min_price > prefs.max_price:
            prefs.min_price = None

    def _price(self, item_id: str) -> float | None:
        item = self.catalog.get(item_id)
        return None if item is None else item.price

    def _update_terms(self, state: DialogueState, text: str, titles: list[tuple[int, int]] = ()) -> None:
        """Exclusions and must-haves; a refused item named by its title (``titles``: spans of the
        items found in ``text``) is rejected as that item, not excluded as a word: "not Frozen" must not
        filter every film whose plot says "frozen"."""
        prefs = state.prefs
        refused: list[tuple[int, int]] = []
        for m in self._owned_kinds(text):
            refused.append(m.span())
            term = _clean_term(m.group("term"), self.matcher.is_person)
            if term and not _has(prefs.exclude, term):
                prefs.exclude.append(term)
                prefs.must_have[:] = [t for t in prefs.must_have if t.lower() != term.lower()]
        for m in _ISNT.finditer(text):  # "something that isn't a horror", "one that isn't plush"
            term = normalize(m.group("term"))
            kind = _stem(term) in self._kinds or (self._shop and self.matcher.titles_with(term) >= 3
                                                  and _refusable(term))
            if (kind or any(rx.fullmatch(term) for rx in _KIND_OF_FILM_RX)) and not _has(prefs.exclude, term):
                refused.append(m.span())
                prefs.exclude.append(term)
                prefs.must_have[:] = [t for t in prefs.must_have if t.lower() != term]
        for m in _NEGATION.finditer(text):
            refused.append(m.span())
            if any(lo <= m.start("term") < hi for lo, hi in titles):
                continue
            term = _clean_term(m.group("term"), self.matcher.is_person)
            genre = term is not None and any(rx.fullmatch(term.split()[0]) for rx in _KIND_OF_FILM_RX)
            if term and m.group("article") and not genre and (not any(_stem(w) in self._kinds for w in term.split())
                                                              or _SELF.search(text, 0, m.start())):
                continue  # "not a puzzle", "isn't a horror" refuse; "I'm not a kid", "not a lot of" nothing
            if term and not _refusable(term, self.matcher.is_person):
                continue  # "I'm not picky", "no matter the genre", "they are not making movies like that"
            if term and not _has(prefs.exclude, term):
                prefs.exclude.append(term)
                prefs.must_have[:] = [t for t in prefs.must_have if t.lower() != term.lower()]
        for m in (m for rx in _TOPIC for m in rx.finditer(text)):  # "zombie movies", "a film about sharks"
            if any(lo <= m.start(1) < hi for lo, hi in (*refused, *titles)):
                continue
            term = self._topic(m.group(1), text[m.start(1):m.end()])
            if not term or _has(prefs.exclude, term):
                continue
            if not _has(prefs.must_have, term):
                prefs.must_have.append(term)
                prefs.topic_turns[term] = state.n_turns - 1
            elif term in prefs.topic_turns:  # asked again: fresh
                prefs.topic_turns[term] = state.n_turns - 1
        for m in (m for rx in _INTEREST for m in rx.finditer(text) if self._shop):  # "she loves unicorns"
            if any(lo <= m.start("term") < hi for lo, hi in (*refused, *titles)) or not m.group("term").islower():
                continue  # "he loves Lego", "loves Frozen": a brand or a title, read elsewhere
            term = self._topic(m.group("term"), text[m.start("term"):m.end()], unknown=True)
            if term and not self.matcher.is_person(term) and not _has(prefs.exclude, term):
                if not _has(prefs.must_have, term):
                    prefs.must_have.append(term)
                prefs.topic_turns[term] = state.n_turns - 1
        for m in _MUST.finditer(text):
            if any(lo <= m.start(1) < hi for lo, hi in (*refused, *titles)):
                continue  # "nothing with zombies" refuses zombies; "Friends with Benefits" is a title
            if m.group(0).lower().startswith(("has", "have")) and _PERSON_BEFORE.search(text, 0, m.start()):
                continue  # "he has a lot of energy" tells of him, not of the item
            term = _clean_term(m.group(1), self.matcher.is_person)
            if term and not _refusable(term, self.matcher.is_person, gerund=True):
                continue  # "with a bowl of popcorn" is a thing, but "it must have happened", "a bit of" are none
            if term and not _has(prefs.must_have, term) and not _has(prefs.exclude, term):
                prefs.must_have.append(term)

    def _topic(self, raw: str, phrase: str, unknown: bool = False) -> str | None:
        """What "zombie movies" or "a film about time travel" asks the films to be about: one or two
        words that are no genre's word for how films feel ("funny", "scary", "sci-fi", "chick flick"), no
        chat word ("good", "fantastic", "night") and that some of the catalog's items, but not many, use.
        ``unknown``: also a word of 4+ letters that one item at most uses ("she loves unicorns" in a shop
        with none), for the reply to say when it found nothing (``prompts.missing_must_haves``)."""
        if any(rx.match(phrase) for rx in _GENRE_WORD_RX) and normalize(raw).split()[0] not in _SUBJECTS:
            return None  # "sci-fi movies" is the genre; "zombie movies" a subject too
        words = normalize(raw).split()
        while len(words) > 1 and (words[-1] in FILLER or words[-1] in _NOT_TOPICS):
            words.pop()  # "sharks please"
        if not words or len(words[0]) < 3 or not words[0].isalpha() or words[0] in _NOT_TOPICS or not _refusable(
                words[0], gerund=True):
            return None
        term = " ".join(words)
        count = self.matcher.items_with if len(words) > 1 else self.matcher.doc_freq
        used = max(count(term), count(singular(term)))  # "sharks": plots say "a shark"
        if unknown and used < 2 and len(words) == 1 and len(term) >= 4 and term.isalpha() and not term.endswith("ing"):
            return term  # (almost) nothing has it: the reply owns up to it when the list lacks it
        if words[0] not in _SUBJECTS and not 2 <= used <= max(20, 0.02 * len(self.catalog)):
            return None  # a typo ("horroe"), or a word of every other plot ("life", "time")
        return term

    def _owned_kinds(self, text: str) -> list[re.Match]:
        """``_OWNED`` phrases whose term names a kind of item ("puzzles", "a train set") or a product
        line, words items are described with ("he already has lots of Lego City sets")."""
        return [m for m in _OWNED.finditer(text) if (m.group("already") or m.group("already2") or m.group("many"))
                and self._names_kind_or_line(normalize(m.group("term")).split())]

    def _names_kind_or_line(self, words: list[str]) -> bool:
        return (any(_stem(w) in self._kinds for w in words)
                or len(words) > 1 and self.matcher.items_with(" ".join(words)) >= 1)

    def detect_category(self, text: str) -> str | None:
        """The category whose name's words the text has most of (their share of the name), ties to the
        category named first ("jigsaws & puzzles": Jigsaws, not 3-D Puzzles). A word that only qualifies
        another one of the name is no match by itself: "likes science" is not "Science Fiction &
        Fantasy", "something soft" not "Soft Dolls", "for children" not "Children's Bedding"."""
        found = self._category_in(text)
        return found[0] if found else None

    def _titles_say(self, category: str, word: str) -> bool:
        """Whether most of the category's items have ``word`` in their titles: it is a kind of that
        ("Jigsaws": "... Jigsaw Puzzle (1000 Pieces)"), not a subject of it ("Dinosaurs")."""
        titles = self.__dict__.setdefault("_category_titles", {})
        if not titles:
            for item in self.catalog:
                if item.category:
                    titles.setdefault(item.category, []).append(normalize(item.title))
        return _titles_say_share(titles.get(category, []), word) >= 0.5

    def _category_in(self, text: str) -> tuple[str, str | None] | None:
        """``detect_category``'s pick as (category, the word of another category qualifying it), where a
        noun that names one kind qualifies the next one's ("a dinosaur puzzle" is a puzzle, of dinosaurs)."""
        words = normalize(text).split()
        stems = [_stem(w) for w in words]
        first = {w: i for i, w in reversed(list(enumerate(stems)))}
        found: dict[str, tuple[tuple[float, int], set[int]]] = {}
        for category, keys in self.category_words.items():
            hits = keys & first.keys()
            if hits and hits & self.category_heads[category]:
                at = {i for i, w in enumerate(stems) if w in hits}
                found[category] = ((len(hits) / (len(keys) ** 0.5), -min(at)), at)
        if not found:
            return None
        best = max(found, key=lambda c: found[c][0])
        head = [c for c, (_, at) in found.items() if c != best and max(found[best][1]) + 1 in at
                and not found[best][1] & at]
        if head and not self._titles_say(best, words[max(found[best][1]) + 1]):
            best = max(head, key=lambda c: found[c][0])  # "a dinosaur puzzle": Puzzles, not Dinosaurs
            # but "a jigsaw puzzle" is a jigsaw: most Jigsaws' titles say "puzzle"
        before = min(found[best][1]) - 1  # and the dinosaurs (or the trains of "a train puzzle") a must-have
        qualifies = any(before in at for c, (_, at) in found.items() if c != best)
        return best, words[before] if qualifies and not found[best][1] & {before} else None


def _titles_say_share(titles: Sequence[str], word: str) -> float:
    stem = _stem(word)
    return sum(any(_stem(w) == stem for w in t.split()) for t in titles) / len(titles) if titles else 0.0


def _filters(state: DialogueState) -> tuple:
    prefs = state.prefs
    return prefs.min_price, prefs.max_price, prefs.age, tuple(prefs.exclude)


def without_age(text: str) -> str:
    """The text minus its age phrases: "a 10 year old girl who likes science" searches for "a girl who
    likes science" (the age is a filter on the catalog's recommended ages, not words to match)."""
    text = _KIDS_AGED.sub(lambda m: m.group(0)[:m.start("list") - m.start()], text)
    return _OF_AGE.sub(" ", text)


def stated_age(text: str) -> float | None:
    """The age in years of whoever the item is for, as ``text`` states it ("my 4 year old", "a
    6yo", "18 months old", "ages 3+", "she's 7", "for a toddler"), or None. The youngest when it
    states several ("a 4 year old and a 7 year old": 4; in "a 4 and a 7 year old" a bare "4" is no age)."""
    ages: list[float] = []
    for m in _OF_AGE.finditer(text):
        raw = next(g for g in (m.group(1), m.group(3), m.group(4), m.group(6), m.group(7)) if g)
        n = float(_NUMBER_WORDS[raw.lower()]) if raw.lower() in _NUMBER_WORDS else float(raw)
        unit = m.group("unit") or m.group("unit2") or ""
        ages.append(n / 12 if unit.lower().startswith("month") else n)
    ages += [_AGE_OF_WORD[m.group(1).lower()] for m in _AGE_WORD.finditer(text)]
    ages += [float(_NUMBER_WORDS.get(raw.lower(), raw)) for m in _KIDS_AGED.finditer(text)
             for raw in re.findall(_AGE_N, m.group("list"))]
    return min(ages) if ages else None


def referenced(text: str, shown: list[str], about: Sequence[str] = ()) -> tuple[int, list[str]] | None:
    """(-1 disliked / +1 liked / 0 seen, item ids) for what ``text`` says of the ``shown`` items by
    reference ("I hated that one", "loved the second one", "seen them both"), or None when it says
    nothing of them. "That one" after several items is ambiguous: no ids, unless the user's previous
    message asked about one of them (``about``): "have you seen the new star wars?" ... "I didn't like it"."""
    for sentiment, pattern in _REF_PATTERNS:
        m = pattern.search(text)
        if m is None:
            continue
        if sentiment >= 0 and (_REF_NEGATED.search(text, max(0, m.start() - 25), m.start())
                               or _NOT_SEEN.search(text) or _WANTS.search(text)):
            return None  # "I don't think I have seen that one", "I haven't seen it, I heard it was good"
        return sentiment, _referents(shown, m.group("ref"), about)
    return None


def _referents(shown: list[str], ref: str, about: Sequence[str] = ()) -> list[str]:
    """The suggested items ``ref`` ("it", "the second one", "both") points at; "it" or "that one" is
    the one item shown, else the one item the user asked about just before, if any."""
    if _REF_PLURAL.match(ref):
        return list(shown)
    if m := _ORDINAL.search(ref):
        return _nth(shown, m.group(1))
    if len(shown) == 1:
        return list(shown)
    # "it", "that one": not a bare "that", which is as often a relative pronoun ("movies that were good")
    picked = [i for i in about if i in shown]  # and the reply spoke of it
    return picked if len(picked) == 1 and (ref.lower() == "it" or " " in ref) else []


def _nth(shown: list[str], ordinal: str) -> list[str]:
    """[the suggested item ``ordinal`` ("second", "last") names], or [] when there is no such item."""
    n = _ORDINALS[ordinal.lower()]
    return [shown[n]] if -len(shown) <= n < len(shown) else []


def mention_sentiment(text: str, start: int, end: int) -> int:
    """+1, -1 or 0 for how the clause around text[start:end] speaks of the item."""
    clause = _clause(text, start, end)
    opening = len(text[:start].rstrip(_OPENERS))  # 'no "Get Out"' is "no Get Out"
    if _NEGATED_MENTION.search(text, 0, opening) and not _NEG_SENTIMENT.search(clause):
        # "not Training Day, I've seen it": had, not disliked (its neighbours are no worse for it)
        return 0 if _SEEN_IT.search(text, end, _clause_bounds(text, start, end)[1]) else -1
    if _NEG_SENTIMENT.search(clause):
        return -1
    if _POS_SENTIMENT.search(clause):
        return 1
    return 0


def mention_unseen(text: str, start: int, end: int, mentions: Sequence[tuple[int, int]] = ()) -> bool:
    """Whether the words next to text[start:end] say the user has not seen the item yet or wants to
    ("I haven't seen X", "I'd like to see X", "X is on my list"), unlike "have you seen X?" or "I need
    to see it, I also liked X". ``mentions``: as for ``mention_interest`` ("never seen X or Y")."""
    start = _list_start(text, 0, start, mentions)
    before = text[max(0, start - 60):start].rstrip(_OPENERS).rstrip()
    after = text[end:end + 40]
    return bool((_UNSEEN_BEFORE.search(before) or _UNSEEN_AFTER.match(after))
                and not _AGAIN.match(text[end:end + 12].lstrip(" " + _CLOSERS)))


def _not_seen_near(before: str, after: str) -> bool:
    """Whether "not seen" is said of the item between ``before`` and ``after`` (its clause's words on
    each side): right before it ("I haven't seen the new X"), or within three words after it ("X?
    never seen it"); not of something else ("I have not seen Us yet, I loved Get Out")."""
    last = None
    for last in _NOT_SEEN.finditer(before):
        pass
    if last is not None:
        between = before[last.end():]
        if not re.search(r"[,;]", between) and not _POS_SENTIMENT.search(between) and len(between.split()) <= 4:
            return True
    m = _NOT_SEEN.search(after)
    return m is not None and len(after[:m.start()].split()) <= 3


def _clause(text: str, start: int, end: int) -> str:
    """The words of the clause around text[start:end], without the mention itself."""
    lo, hi = _clause_bounds(text, start, end)
    return text[lo:start] + " " + text[end:hi]


def _clause_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    """Where the clause around text[start:end] begins and ends (``_CLAUSE``: sentence ends, "but"...)."""
    bounds = [0] + [m.end() for m in _CLAUSE.finditer(text)] + [len(text)]
    return max(b for b in bounds if b <= start), min((b for b in bounds if b >= end), default=len(text))


def mention_interest(text: str, start: int, end: int, mentions: Sequence[tuple[int, int]] = ()) -> bool:
    """Whether the clause around text[start:end] asks about the item or says the user has not seen it
    yet ("have you seen X?", "I haven't seen X", "I heard X was good", "X is on my list"): the user
    wants to hear about it, so it is not filtered out as something they already have. ``mentions``:
    the (start, end) of every item named in ``text``, so that the last of a list ("movies like X, Y
    and Z?", "I loved X and Z, anything similar?") is read like the first."""
    lo, hi = _clause_bounds(text, start, end)
    clause = text[lo:start] + " " + text[end:hi]
    if any(lo <= a < hi and (a, b) != (start, end) for a, b in mentions):
        # others named in the clause: only the words next to this one say it is unseen or wanted
        # ("I have not seen X I did love Y" says nothing of Y)
        if mention_unseen(text, start, end, mentions):
            return True
    elif _not_seen_near(text[lo:start], text[end:hi]):
        return True
    elif _WANTS.search(clause) and not _AGAIN.search(clause):  # not "I want to watch Up again"
        return True
    if _AGAIN.search(clause):  # "I want to watch Up again, something like it?": seen, a reference
        return False
    before = text[lo:_list_start(text, lo, start, mentions)].rstrip(_OPENERS).rstrip()  # 'I loved "Get Out"'
    if _ASKS_OPINION.search(before):  # "have you seen Chicago or West Side Story", question mark or not
        return True
    return text[lo:hi].rstrip().endswith("?") and not _REFERENCE.search(before)


def _list_start(text: str, lo: int, start: int, mentions: Sequence[tuple[int, int]]) -> int:
    """Where the list that the mention at ``start`` ends begins: "like X, Y and Z" -> the start of X."""
    while glue := _LIST_GLUE.search(text, lo, start):
        previous = [a for a, b in mentions  # 'I loved "Get Out" and Us': a closing quote may stand between
                    if lo <= a and b <= glue.start() and not text[b:glue.start()].strip(" " + _CLOSERS)]
        if not previous:
            break
        start = previous[0]
    return start


def category_family(category_words: dict[str, set[str]], wanted: str, texts: list[str]) -> set[str]:
    """The wanted category and every category sharing a word of it that the user wrote: "a wooden
    train set" matched "Toy Trains & Accessories", and "Model Trains & Railway Sets" is trains too."""
    said = {_stem(w) for text in texts for w in normalize(text).split()}
    shared = category_words.get(wanted, set()) & said
    return {wanted} | {c for c, keys in category_words.items() if keys & shared}


def _category_words(catalog: Catalog) -> dict[str, set[str]]:
    counts = Counter(c for c in (item.category for item in catalog) if c)
    # and words of who it is for: everything in a toy shop is for kids ("for two kids" is no wish for "Kids'")
    generic = {"and", "other", "misc", "accessories", "toys", "toy", "games", "game", "set", "sets", "kit", "kits",
               "kid", "kids", "child", "children", "childrens"}
    out: dict[str, set[str]] = {}
    for category in counts:
        # not "the" of "Bob the Builder", nor "3" and "d" of "3-D Puzzles" (a category of one word matches best)
        words = {_stem(w) for w in normalize(category).split() if len(w) > 1 and not w.isdigit()} - generic - COMMON_WORDS
        if words:
            out[category] = words
    return out


def _category_heads(category_words: dict[str, set[str]]) -> dict[str, set[str]]:
    """The words of each category name that name a kind of item, not a qualifier of one: the last
    word of each part of the name ("Science Fiction & Fantasy": fiction, fantasy; "Soft Dolls": doll;
    "Board Games": board, since "games" says nothing)."""
    out: dict[str, set[str]] = {}
    for category, keys in category_words.items():
        heads = set()
        for part in re.split(r"[&,]|\band\b", category):
            words = [w for w in (_stem(w) for w in normalize(part).split()) if w in keys]
            if words:
                heads.add(words[-1])
        out[category] = heads
    return out


def singular(term: str) -> str:
    """``term`` with its last word in the singular ("no musicals" refuses the genre "musical")."""
    head, _, last = term.rpartition(" ")
    return f"{head} {_stem(last)}" if head else _stem(last)


def _stem(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _has(terms: list[str], term: str) -> bool:
    return term.lower() in (t.lower() for t in terms)


def _blank(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` with the characters of ``spans`` replaced by spaces."""
    chars = list(text)
    for lo, hi in spans:
        chars[lo:hi] = " " * (hi - lo)
    return "".join(chars)


def _refusable(term: str, is_person: Callable[[str], bool] = lambda name: False, gerund: bool = False) -> bool:
    """Whether a word after a negation names something to leave out (a genre, a thing, a person), not
    how the user is or what they do: "not picky", "no matter", "not actually", "not making", "I did not
    catch that one". An exclusion filters out every item whose text has the word. ``gerund``: an -ing
    word may name an activity ("a cooking movie"), as for must-haves; in "not making movies like that"
    it is what people do."""
    words = normalize(term).split()
    if not words or is_person(" ".join(words)) or any(rx.fullmatch(words[0]) for rx in _GENRE_WORD_RX):
        return bool(words)
    first = words[0]
    if first in FILLER or first in _NOT_REFUSED or (first.endswith("ly") and len(first) > 4):
        return False
    return not re.fullmatch(r"\w+ed" if gerund else r"\w+(?:ing|ed)", first) or first in _SUBJECTS


def _clean_term(raw: str, is_person: Callable[[str], bool] = lambda name: False) -> str | None:
    """The words of a must-have or an exclusion, filler trimmed; None when nothing is left. A credited
    person's name is kept whole and as written, even one that starts like a plain word ("Will Ferrell")."""
    if is_person(normalize(raw)):
        return " ".join(raw.split())
    words = [w for w in normalize(raw).split()]
    while words and words[-1] in _NOT_TARGETS:
        words.pop()
    if not words or words[0] in _NOT_TARGETS or any(ch.isdigit() for ch in words[0]):
        return None
    return " ".join(words)


def _money(raw: str) -> float:
    """"20", "20.50", "20,50" (a decimal comma), "1,000" and "1,000.50" (thousands)."""
    if re.fullmatch(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?", raw):
        return float(raw.replace(",", ""))
    return float(raw.replace(",", "."))


def _looks_like_price(text: str) -> bool:
    return bool(re.search(r"£|\$|€|pounds?|quid|budget|price|cost|spend", text, re.I))
