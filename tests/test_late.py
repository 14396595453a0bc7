import numpy as np

from bot.late import TokenMatrix, maxsim, pack, unpack


def matrix(rows: list[list[float]]) -> TokenMatrix:
    vectors = np.asarray(rows, dtype=np.float16)
    spans = np.asarray([[i, i + 1] for i in range(len(rows))], dtype=np.int32).reshape(-1, 2)
    return TokenMatrix(vectors, spans)


def test_maxsim_averages_each_query_tokens_best_match() -> None:
    query = np.asarray([[1, 0], [0, 1]], dtype=np.float32)
    doc = np.asarray([[1, 0], [0.6, 0.8]], dtype=np.float16)
    assert abs(maxsim(query, doc) - (1.0 + 0.8) / 2) < 1e-3  # float16 storage


def test_maxsim_of_an_empty_side_is_zero() -> None:
    assert maxsim(np.zeros((0, 2), np.float32), np.ones((3, 2), np.float16)) == 0.0
    assert maxsim(np.ones((1, 2), np.float32), np.zeros((0, 2), np.float16)) == 0.0


def test_pack_then_unpack_round_trips_including_empty_chunks() -> None:
    mats = [matrix([[1, 0], [0, 1]]), matrix([]), matrix([[0.5, 0.5]])]
    mats[1] = TokenMatrix(np.zeros((0, 2), np.float16), np.zeros((0, 2), np.int32))
    back = unpack(*pack(mats))
    assert len(back) == 3
    for a, b in zip(mats, back, strict=True):
        assert np.array_equal(a.vectors, b.vectors) and np.array_equal(a.spans, b.spans)


def test_token_spans_point_at_the_text_they_encode(real_service) -> None:
    text = "Anthropic took Fable 5 offline."
    (mat,) = real_service.late.encode_documents([text])
    pieces = [text[s:e] for s, e in mat.spans]
    assert pieces[0] == "Anthropic"[: len(pieces[0])]
    assert "offline" in "".join(pieces)
    assert np.allclose(np.linalg.norm(mat.vectors.astype(np.float32), axis=1), 1.0, atol=1e-2)
