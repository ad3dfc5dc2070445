"""Numbers read from exchange replies: garbled fields are 0, never an internal error."""
from decimal import Decimal

import pytest

from exchanges import bitvavo, okx
from exchanges._kit import number_or_zero, whole_or_zero


@pytest.mark.parametrize("field, whole", [
    ("1700000000123", 1700000000123), (1700000000123, 1700000000123), ("12.9", 12), ("-3.5", -3),
    ("", 0), (None, 0), ("abc", 0), ("NaN", 0), ("Infinity", 0), ("-inf", 0), (float("nan"), 0),
])
def test_whole_or_zero_reads_a_time_or_a_count(field, whole):
    assert whole_or_zero(field) == whole


def test_number_or_zero_keeps_exact_decimals():
    assert number_or_zero("0.00001") == Decimal("0.00001") and number_or_zero("") == 0


def test_a_garbled_time_in_a_reply_maps_to_zero():
    assert okx._ticker({"instId": "BTC-USDT", "ts": "NaN"})["time"] == 0
    assert bitvavo._order({"market": "BTC-EUR", "orderId": "x", "created": "Infinity"})["time"] == 0


def test_answer_numbers_are_the_floats_a_robot_reads():
    """FMZ reads every number of an answer as a float64: a book level or candle value is that
    float of the exchange's text exactly; absent, empty, garbled or non-finite text is 0."""
    from exchanges._kit import answer_number, book_levels, candle_row
    texts = ["50000.1", "0.00000001", "123456789.123456789", "1e-8", "83975.70", "0.000061000000000000005", 7, 2.5]
    assert [answer_number(text) for text in texts] == [float(text) for text in texts]
    assert [answer_number(text) for text in ["", None, "abc", "NaN", "Infinity", [1]]] == [0.0] * 6
    assert book_levels([["NaN", "1"], ["1", ""], ["1e308", "1e308"]]) == [[0.0, 1.0], [1.0, 0.0], [1e308, 1e308]]
    assert book_levels([["1.5", "2"]]) == [[1.5, 2.0]] and book_levels([{"p": "3", "q": ""}], "p", "q") == [[3.0, 0.0]]
    assert candle_row(["1700000000000", "1", "2", "0.5", "1.5", "10", "x"]) == [1700000000000, 1.0, 2.0, 0.5, 1.5, 10.0]


def test_a_depth_of_400_levels_is_the_exchanges_to_the_float(okx):
    """Through the plugin and its JSON: every level of a 400-level depth equals the float of the
    exchange's own text (raw, its reply), price and amount."""
    answer = okx.call("depth", symbol="BTC_USDT", limit=400)
    book = answer["raw"]["data"][0]
    for side in ("asks", "bids"):
        assert len(answer["data"][side]) == 400
        assert answer["data"][side] == [[float(price), float(amount)] for price, amount, *_ in book[side]]
