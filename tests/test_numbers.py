"""Numbers read from exchange replies: garbled fields are 0, never an internal error; numbers
that are not finite are an error, never NaN in an answer."""
import json
from decimal import Decimal

import pytest

import fmz_plugin
from exchanges import bitvavo, okx
from exchanges._kit import PluginError, candle_rows, number_or_zero, whole_or_zero


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


@pytest.mark.parametrize("field", ["NaN", "Infinity", "-inf", float("nan"), float("inf"), "sNaN"])
def test_a_number_that_is_not_finite_is_an_error_not_nan(field):
    """NaN in an answer is no JSON, and a robot must not compute with it (issue #23)."""
    with pytest.raises(PluginError, match="not a finite number"):
        number_or_zero(field)


def test_an_answer_is_json_whatever_numbers_it_holds():
    """A reply's bare NaN (Python's json reads it) stays in raw as null; in data it is an error."""
    assert json.loads(fmz_plugin.to_json({"data": 1, "raw": {"x": float("nan"), "y": [float("inf")]}}),
                      parse_constant=pytest.fail) == {"data": 1, "raw": {"x": None, "y": [None]}}
    answer = fmz_plugin.to_json({"data": {"buy": Decimal("NaN")}, "raw": None})
    assert json.loads(answer, parse_constant=pytest.fail) == {
        "error": "the answer holds a number that is not finite (NaN) at data.buy: not passed on, as it is no JSON"}


def test_answer_numbers_are_the_floats_a_robot_reads():
    """FMZ reads every number of an answer as a float64: a book level or candle value is that
    float of the exchange's text exactly; absent, empty, garbled or non-finite text is 0."""
    from exchanges._kit import answer_number, book_levels
    texts = ["50000.1", "0.00000001", "123456789.123456789", "1e-8", "83975.70", "0.000061000000000000005", 7, 2.5]
    assert [answer_number(text) for text in texts] == [float(text) for text in texts]
    assert [answer_number(text) for text in ["", None, "abc", "NaN", "Infinity", [1]]] == [0.0] * 6
    assert book_levels([["NaN", "1"], ["1", ""], ["1e308", "1e308"], ["2", "3"]]) == [[1e308, 1e308], [2.0, 3.0]]
    assert book_levels([["1.5", "2"]]) == [[1.5, 2.0]] and book_levels([{"p": "3", "q": ""}], "p", "q") == []
    assert candle_rows([["1700000000000", "1", "2", "0.5", "1.5", "10", "x"]]) == [[1700000000000, 1.0, 2.0, 0.5, 1.5, 10.0]]


@pytest.mark.parametrize("row", [["", "1", "2", "0.5", "1.5", "10"], [None, "1", "2", "0.5", "1.5"],
                                 ["1700000000000", "1", "2", "NaN", "1.5", "10"], ["1700000000000", "1", "", "0.5", "1"],
                                 ["1700000000000", "1", "2"], "1,2,3,4,5", {"open": "1"}])
def test_a_candle_whose_time_or_price_does_not_read_is_left_out(row):
    """A low of 0 would look like a crash to a robot's indicators; a candle without a time has no
    place. Only an unreadable volume is 0."""
    good = ["1700000060000", "1", "2", "0.5", "1.5", ""]
    assert candle_rows([row, good]) == [[1700000060000, 1.0, 2.0, 0.5, 1.5, 0.0]]


def test_a_depth_of_400_levels_is_the_exchanges_to_the_float(okx):
    """Through the plugin and its JSON: every level of a 400-level depth equals the float of the
    exchange's own text (raw, its reply), price and amount."""
    answer = okx.call("depth", symbol="BTC_USDT", limit=400)
    book = answer["raw"]["data"][0]
    for side in ("asks", "bids"):
        assert len(answer["data"][side]) == 400
        assert answer["data"][side] == [[float(price), float(amount)] for price, amount, *_ in book[side]]


from hypothesis import given, settings, strategies as st   # noqa: E402

from exchanges._kit import BookSide, _finite_float, book_levels, reply_of   # noqa: E402

NUMBER_TEXT = st.text(alphabet="-+0123456789.eE _", max_size=8) | st.sampled_from(
    ["0", "-0", "0.5", "50000.10", "1e5", "1E-8", "05", "-05", ".5", "5.", "+5", "1_0", " 1", "-", "NaN", "inf", "9" * 400])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(NUMBER_TEXT, NUMBER_TEXT), max_size=4))
def test_a_book_side_is_valid_json_with_the_float_of_each_text(rows):
    """However an exchange spells its numbers, a depth's answer is JSON a robot reads as
    float(text) of each, without the levels where one does not read as a finite number; a side
    written with the exchange's own text holds only plain JSON numbers."""
    side = book_levels([list(row) for row in rows])
    answer = json.loads(fmz_plugin.to_json({"data": {"asks": side}, "raw": None}), parse_constant=pytest.fail)
    readable = [(price, amount) for price, amount in rows if None not in (_finite_float(price), _finite_float(amount))]
    assert answer["data"]["asks"] == [[float(price), float(amount)] for price, amount in readable]
    if isinstance(side, BookSide):
        assert side.json == "[" + ",".join(f"[{price},{amount}]" for price, amount in rows) + "]"


def test_a_plain_book_is_passed_on_in_the_exchanges_own_text():
    side = book_levels([["50000.10", "0.500"], ["-0", "12"]])
    assert isinstance(side, BookSide) and side == [[50000.1, 0.5], [-0.0, 12.0]] and len(side) == 2
    assert fmz_plugin.to_json({"data": {"time": 1, "asks": side, "bids": []}, "raw": None}) == \
        b'{"data":{"time":1,"asks":[[50000.10,0.500],[-0,12]],"bids":[]},"raw":null}'
    assert book_levels([[50000.1, 0.5]]) == [[50000.1, 0.5]]          # numbers, not strings: floats


def test_raw_is_the_exchanges_reply_as_it_was_sent():
    """An answer's raw is the reply's own text (its spacing and key order), not a copy encoded again;
    a reply that is no plain JSON (NaN, a byte order mark) is encoded from what was read."""
    sent = b'{"b": [1, 2.50],  "a": "\\u00e9"}'
    assert fmz_plugin.to_json({"data": 1, "raw": reply_of(sent)}) == b'{"data":1,"raw":' + sent + b'}'
    assert json.loads(fmz_plugin.to_json({"data": 1, "raw": reply_of(b'{"x": NaN}')})) == {"data": 1, "raw": {"x": None}}
    assert fmz_plugin.to_json({"data": 1, "raw": reply_of(b'\xef\xbb\xbf[1]')}) == b'{"data":1,"raw":[1]}'
    assert reply_of(b'"text"') == "text" and reply_of(b"7") == 7
    with pytest.raises(ValueError):
        reply_of(b"\xff{")
