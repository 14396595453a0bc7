"""Query understanding: chat-speak spelt out, countries and nationalities found, glossary terms added
only when the knowledge base uses them."""

import re

import pytest

from bot.query import (
    QueryAnalyzer,
    derived_demonyms,
    find_countries,
    in_context,
    is_acknowledgement,
    place_words,
    spell_out,
    the_ask,
    written_forms,
)

KB = [
    "The order bars foreign nationals from the models, including employees in Canada.",
    "Older models and other Claude models were not affected.",
]


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("r ppl in the govt affected rn tho", "are people in the government affected right now though"),
        ("wat r u saying", "what are you saying"),
        ("im a dev, cant use it", "I am a developer, cannot use it"),
        ("is it down? pls", "is it down? please"),
        ("tl;dr?", "summary?"),
        ("does dis ban hit me", "does this ban hit me"),
        ("wen is it back b4 friday", "when is it back before friday"),
    ],
)
def test_chat_speak_is_spelt_out(question: str, expected: str) -> None:
    assert spell_out(question) == expected


@pytest.mark.parametrize("question", ["are US users affected?", "is it in effect", "Who is Kun Chen?", "am I affected"])
def test_ordinary_words_are_left_alone(question: str) -> None:
    assert spell_out(question) == question


def test_a_question_of_nothing_but_filler_is_kept() -> None:
    assert spell_out("lol") == "lol"


@pytest.mark.parametrize(
    ("question", "codes"),
    [
        ("are canadians affected?", ["CA"]),
        ("i live in germany", ["DE"]),
        ("korean grad student", ["KR"]),
        ("im from the united kingdom", ["GB"]),
        ("brazilian and portuguese devs", ["BR", "PT"]),
        ("is it in effect for us", []),
    ],
)
def test_countries_are_found_by_name_or_nationality(question: str, codes: list[str]) -> None:
    assert [c.code for c in find_countries(question)] == codes


@pytest.mark.parametrize(
    ("question", "code"),
    [
        ("r argentinians cut off 2", "AR"),
        ("nepali student here", "NP"),
        ("kazakh devs affected?", "KZ"),
        ("icelandic user", "IS"),
        ("ecuadorian here", "EC"),
    ],
)
def test_nationalities_made_regularly_from_a_country_name_are_found(question: str, code: str) -> None:
    assert [c.code for c in find_countries(question)] == [code]


@pytest.mark.parametrize(
    ("question", "code"),
    [
        ("brit here, am i cut off", "GB"),
        ("can ppl in the uk still use it", "GB"),
        ("saudi dev", "SA"),
        ("aussie here", "AU"),
        ("uae based", "AE"),
    ],
)
def test_informal_names_of_countries_are_found(question: str, code: str) -> None:
    assert [c.code for c in find_countries(question)] == [code]


def test_derived_forms_cover_the_regular_patterns() -> None:
    assert {"argentinian", "argentinians", "nepali", "icelandic", "uzbek"} <= (
        derived_demonyms("argentina")
        | derived_demonyms("nepal")
        | derived_demonyms("iceland")
        | derived_demonyms("uzbekistan")
    )
    assert derived_demonyms("pakistan") & {"paki", "pakis"} == set()


def test_a_foreign_nationality_adds_the_knowledge_bases_own_term_and_the_country() -> None:
    query = QueryAnalyzer(KB).analyze("are canadians affected?")
    assert query.concepts == ("foreign person",)
    assert query.added == ("foreign nationals", "Canada")
    assert query.expanded == "are canadians affected? (foreign nationals, Canada)"


def test_the_home_countrys_nationality_is_not_foreign() -> None:
    query = QueryAnalyzer(KB, home_country="US").analyze("im american, am i affected")
    assert "foreign person" not in query.concepts


def test_naming_only_the_home_country_asks_about_its_own_citizens() -> None:
    kb = [*KB, "US citizens lost access as well."]
    assert QueryAnalyzer(kb, home_country="US").analyze("americans too?").added == ("US citizens",)
    assert "US person" not in QueryAnalyzer(kb).analyze("indian student in the US, am i affected?").concepts


def test_a_residence_status_is_a_cue_of_the_foreign_person_concept() -> None:
    assert "foreign person" in QueryAnalyzer(KB).analyze("green card holder here, can i use it?").concepts


def test_terms_the_knowledge_base_never_uses_are_not_added() -> None:
    query = QueryAnalyzer(["A ferry was grounded in Norway after a fire."]).analyze("im norwegian, is my ferry ok?")
    assert query.added == ("Norway",)
    assert "foreign nationals" not in query.expanded


def test_a_model_family_name_adds_the_generic_term() -> None:
    assert QueryAnalyzer(KB).analyze("is sonnet still up").added == ("other Claude models", "older models")


def test_a_phrase_meets_the_knowledge_bases_wording_with_a_word_between() -> None:
    query = QueryAnalyzer(["Older AI models were not affected."]).analyze("is haiku still up")
    assert query.added == ("older ai models",)


def test_a_phrase_with_more_than_one_word_between_is_not_the_term() -> None:
    query = QueryAnalyzer(["Older and much smaller models were not affected."]).analyze("is haiku still up")
    assert query.added == ()


@pytest.mark.parametrize(
    ("question", "concept", "term"),
    [
        ("bedrock affected?", "cloud platform", "AWS"),
        ("staff too?", "employee", "employees"),
        ("does my api key still work", "developer access", "API access"),
        ("is the claude app down for me", "consumer product", "consumer products"),
        ("grad student here, r we cut off", "academia", "researchers"),
        ("fable gone for me??", "lost access", "lost access"),
    ],
)
def test_a_product_or_role_adds_the_knowledge_bases_term_for_it(question: str, concept: str, term: str) -> None:
    kb = ["Customers on AWS, employees, researchers, API access and consumer products: cut off.", "They lost access."]
    query = QueryAnalyzer(kb).analyze(question)
    assert concept in query.concepts
    assert term in query.added


def test_typo_correction_runs_after_spelling_out() -> None:
    seen = []
    QueryAnalyzer(KB).analyze("r goverments ok", correct=lambda t: seen.append(t) or t)
    assert seen == ["are goverments okay"]


def test_a_short_message_is_read_after_the_question_it_follows() -> None:
    asked = in_context("for how long?", "Are foreigners cut off?", max_words=6)
    assert asked == "Are foreigners cut off? for how long?"


def test_a_longer_message_stands_on_its_own() -> None:
    message = "who is kun chen and why does he think this will fail"
    assert in_context(message, "Are foreigners cut off?", max_words=6) == message


def test_without_a_previous_question_the_message_stands_alone() -> None:
    assert in_context("why?", None, max_words=6) == "why?"
    assert in_context("why?", "Are foreigners cut off?", max_words=0) == "why?"


def test_a_follow_up_that_would_be_too_long_together_stands_alone() -> None:
    assert in_context("why?", "x" * 499, max_words=6, max_chars=500) == "why?"


def test_thanks_and_ok_are_acknowledgements_not_questions() -> None:
    assert is_acknowledgement("ok thanks!") and is_acknowledgement("ty lol")


def test_a_short_question_is_not_an_acknowledgement() -> None:
    assert not is_acknowledgement("opus ok?") and not is_acknowledgement("how long") and not is_acknowledgement("")


def test_nationalities_and_glossary_cues_are_understood_words() -> None:
    query = QueryAnalyzer(KB).analyze("kenyan here, claude app glitchy for me?")
    assert {"kenyan", "app"} <= set(query.understood)
    assert "glitchy" not in query.understood


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("filipino nurse in texas on h1b", ("texas",)),
        ("i live in new south wales, am i affected", ("new", "south", "wales")),
        ("im from lagos", ("lagos",)),
        ("moving from texas to ohio", ("texas", "ohio")),  # the "to" of the first match starts the second
    ],
)
def test_a_place_the_member_is_in_or_from_is_found(text: str, expected: tuple[str, ...]) -> None:
    assert place_words(text) == expected


@pytest.mark.parametrize("text", ["texas ban news", "lake fishing tips", "lagos weather today"])
def test_a_place_name_is_not_a_place_without_in_or_from_before_it(text: str) -> None:
    assert place_words(text) == ()


@pytest.mark.parametrize("text", ["fishing in the lake", "is it in the bank"])
def test_a_common_word_after_in_is_not_a_place_unless_it_names_one(text: str) -> None:
    assert place_words(text) == ()


def test_words_the_chat_speak_normaliser_wrote_are_understood() -> None:
    query = QueryAnalyzer(KB).analyze("haiku still ok? glitchy tho")
    assert {"okay", "though"} <= set(query.understood)  # the member's own words were "ok" and "tho"
    assert "glitchy" not in query.understood


def test_the_place_a_member_is_in_is_understood() -> None:
    assert "texas" in QueryAnalyzer(KB).analyze("nurse in texas, am i cut off?").understood


def test_a_glossary_term_with_a_word_no_article_uses_is_not_looked_up_in_the_text() -> None:
    read: list[int] = []

    def texts() -> list[str]:
        read.append(1)
        return KB

    vocabulary = {w for text in KB for w in re.findall(r"[^\W\d_]+", text.casefold())}
    analyzer = QueryAnalyzer(texts, vocabulary=vocabulary - {"nationals"})
    assert analyzer.analyze("are canadians affected?").added == ("Canada",)
    assert read == [1]  # "Canada" is in the vocabulary, so the text was read once for its written form
    assert analyzer.analyze("r brazilians cut off").added == ()  # no article names Brazil
    assert read == [1]


def test_written_forms_found_once_answer_the_analyser_without_reading_the_articles() -> None:
    vocabulary = {w for text in KB for w in re.findall(r"[^\W\d_]+", text.casefold())}
    forms = written_forms(KB, vocabulary)
    assert forms["foreign nationals"] == "foreign nationals"
    assert forms["Brazil"] is None

    def unread() -> list[str]:
        raise AssertionError("the articles were scanned")

    analyzer = QueryAnalyzer(unread, vocabulary=vocabulary, forms=forms)
    assert analyzer.analyze("are canadians affected?").added == ("foreign nationals", "Canada")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("polish developer, when is fable back", "when is fable back"),
        (
            "korean grad student, my deadline is in 3 weeks, will it be back by then",
            "will it be back by then",
        ),
        ("I am brazilian. can I still use fable?", "can I still use fable?"),
        ("we are a startup in kenya, are we cut off?", "are we cut off?"),
        ("uni student in seoul, claude app gone for me too", "claude app gone for me too"),
    ],
)
def test_the_ask_leaves_out_the_clauses_that_introduce_the_member(text: str, expected: str) -> None:
    assert the_ask(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "are canadians affected?",  # the nationality is the question
        "when is fable back",  # no introduction
        "I am brazilian",  # nothing would be left
        "is my german api key still valid, or was it revoked",  # each clause asks
    ],
)
def test_a_question_with_no_introduction_to_leave_out_is_its_own_ask(text: str) -> None:
    assert the_ask(text) == text


def test_the_analyser_records_the_ask_of_the_spelt_out_question() -> None:
    assert QueryAnalyzer(KB).analyze("im polish, wen is fable back").ask == "when is fable back"
