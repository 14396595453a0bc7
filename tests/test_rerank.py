def test_the_cross_encoder_prefers_the_passage_that_answers(real_service) -> None:
    scores = real_service.reranker.score(
        "Is Opus 4.8 affected by the ban?",
        [
            "Banana bread needs ripe bananas and an hour in the oven.",
            "Anthropic’s Opus 4.8 and other older AI models were not affected by Friday’s government order.",
        ],
    )
    assert scores[1] > scores[0] + 5
