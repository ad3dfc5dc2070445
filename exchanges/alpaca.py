"""Alpaca: US stocks, ETFs and crypto. Trading API v2 and Market Data API (v2 stocks, v1beta3 crypto).

Docs: https://docs.alpaca.markets/reference (Trading API: account, assets, orders, positions,
clock; Market Data: stock and crypto snapshots, latest quotes, order books, trades, bars),
https://docs.alpaca.markets/docs/orders-at-alpaca, https://docs.alpaca.markets/docs/crypto-orders.

Keys: access_key = the API key id; secret_key = the secret, optionally followed by options:
`paper` (trade the paper account at paper-api.alpaca.markets, with that account's keys),
`extended` (stock limit orders eligible in pre-market and after-hours: `extended_hours`, which
Alpaca takes only on day limit orders) and `sip` (stock data from the SIP feed, which needs a paid
data plan; IEX otherwise, free for every account), e.g. `SECRET,paper`.

Signing: none. Alpaca reads the key id and secret from the headers APCA-API-KEY-ID and
APCA-API-SECRET-KEY of every call (trading and data host alike); nothing is timestamped, so no
clock offset is ever needed (CLOCK_ERRORS is empty).

Hosts: trading https://api.alpaca.markets (live) or https://paper-api.alpaca.markets (paper),
market data https://data.alpaca.markets. `--base-url Alpaca=URL` moves all three,
`--base-url Alpaca.data=URL` (or `Alpaca.paper=URL`) one alone.

Symbols: a stock or ETF is `AAPL_USD` (Alpaca AAPL), a crypto pair `BTC_USD` (Alpaca BTC/USD),
`BTC_USDT` (BTC/USDT). Which is which comes from Alpaca's asset list (GET /v2/assets, cached
like every exchange's markets), never from the name: when a ticker is both a stock and a crypto
base (the ETF "BTC" and the coin), `BTC_USD` is the crypto pair. Stock tickers with a dot
(BRK.B) cannot be written as an FMZ symbol and are not listed.

Order ids given to FMZ are Alpaca's own order ids (UUIDs): order and cancel need nothing else.

Facts relied on (docs above, CCXT's alpaca.py, alpaca-py and user-docs issues):
- Errors are HTTP 4xx with {"code": 40010001, "message": "..."}: 40110000 not authorized (401),
  40310000 forbidden such as "insufficient buying power" (403), 40310100 pattern day trader
  protection (403), 40410000 not found (404), 40010001 / 42210000 invalid request (422),
  42910000 rate limit exceeded (429); the data host answers a bad key 403 {"message": "forbidden."}.
- A client_order_id is unique among all the account's orders, canceled ones included
  (alpaca-py issue #260), so resending one order with one id can never fill twice.
- Crypto orders: market, limit (and stop_limit); time_in_force gtc or ioc. Stocks: a fractional
  quantity or a notional (USD) amount only with time_in_force day, notional only on market orders
  (fractional limit orders are day orders too); qty and notional are exclusive, 9 decimals each.
- Orders outside regular hours (9:30-16:00 New York) are queued for the next open (status
  accepted); extended_hours (pre-market 4:00-9:30, after-hours 16:00-20:00) only for day limits.
- DELETE /v2/orders/{id} answers 204 with no body; an order no longer open is 422 42210000
  ('order is already in "filled" state').
- Times are RFC-3339, in UTC with up to nanoseconds ("2021-03-16T18:38:01.942282Z"), the clock in
  New York time with its offset ("2023-11-22T08:07:57.654738097-05:00").
- GET /v2/orders: status open|closed|all, limit up to 500, after/until (submitted_at, exclusive),
  direction asc|desc (default desc), symbols=A,B. Bars, trades: up to 10000 a page, sort asc|desc,
  next_page_token; start defaults to the beginning of the current day, so it is always sent.
- Market data answers are keyed by symbol under their kind: {"snapshots": {"AAPL": {...}}} (the
  example of Alpaca's public Postman collection for /v2/stocks/snapshots), {"quotes": ...},
  {"orderbooks": ...}, {"bars": ..., "next_page_token": ...}.
Unverified (marked where used): whether the stock snapshots answer may also come keyed by symbol
at its top level, as some clients read it (both are read), that sub-dollar stock prices take 4 decimals
(Reg NMS; the tick here stays 0.01), and that GET /v2/orders/{id}, GET /v2/assets/{symbol} and
DELETE /v2/orders/{id} count in the trading budget (RATE_LIMITS names fixed paths only).
"""
import calendar
import json
import re
from collections import namedtuple

from exchanges._kit import (MARKETS, PluginError, Symbol, book_levels, candle_rows, iso_ms, market, markets_answer,
                            float_or_zero, number_or_zero, one_or_all)
from exchanges._orders import cancel_once, new_client_id, order_size, place_once
from exchanges._throttle import Limit

NAME = "Alpaca"
BASE_URL = "https://api.alpaca.markets"
HOSTS = {"paper": "https://paper-api.alpaca.markets", "data": "https://data.alpaca.markets"}
CLOCK_ERRORS = ()                      # nothing is timestamped: a skewed clock changes nothing
RATE_LIMIT_ERRORS = ("42910000",)      # rate limit exceeded (HTTP 429)
AMBIGUOUS_ERRORS = ()                  # no "outcome unknown" code: a 5xx or a lost answer is (check())
POST_PARAMS = "json"
# The stream (Market Data API "Real-time crypto / stock data", WebSocket): one authenticated
# connection per key and endpoint: crypto wss://stream.data.alpaca.markets/v1beta3/crypto/us,
# stocks .../v2/iex (or .../v2/sip with the key's ,sip). Alpaca greets [{"T": "success", "msg":
# "connected"}]; {"action": "auth", "key", "secret"} is answered [{"T": "success", "msg":
# "authenticated"}] or [{"T": "error", "code": 402, "msg": "auth failed"}] and a close. {"action":
# "subscribe", "quotes": [..], "trades": [..], "dailyBars": [..], "orderbooks": [..]} is answered
# [{"T": "subscription", ...}] listing everything subscribed. Pushes are arrays of {"T": "q"}
# quotes, {"T": "t"} trades, {"T": "d"} daily bars, {"T": "o"} crypto books ("r": true a whole
# book, else changed levels, size 0 removes; no sequence number to check). Most plans allow ONE
# connection per key and endpoint (a second is refused with 406 "connection limit exceeded"), so
# one connection carries every channel of a key, and a robot whose key is already streaming
# elsewhere (another program) gets REST answers while the status says why; the free plan also
# caps the symbols subscribed (405 "symbol limit exceeded"). Stocks have no book stream: depth
# stays REST. Subscriptions wait for "authenticated" (Feed.logged_in). UNVERIFIED: that the daily bar of a quiet symbol may come only after a minute
# (the ticker answers from REST until a quote and a daily bar arrived).
STREAM_URLS = {"crypto": "wss://stream.data.alpaca.markets/v1beta3/crypto/us",
               "iex": "wss://stream.data.alpaca.markets/v2/iex", "sip": "wss://stream.data.alpaca.markets/v2/sip"}
STREAM_LOGIN = ("crypto", "iex", "sip")   # every endpoint takes the robot's key: one connection per key
STREAM_KEEPALIVE = 30.0              # seconds without a message before a ping frame (its pong counts as heard)
STREAM_SILENCE = 60.0                # seconds without any message or pong: the connection is dead
STREAM_CONNECTS = (3, 1.0)           # connection requests per second, per IP (ours: none documented)
STREAM_REQUESTS = (60, 60.0)         # auth / subscribe / unsubscribe messages a minute (ours: none documented)
STREAM_TOPICS = 10_000               # one connection per key carries everything (one is allowed)
STREAM_DEPTH = 10_000                # the crypto book streams whole, as REST gives it
TICKER_CHANNELS = ("quotes", "trades", "dailyBars")   # a ticker: best bid/ask, last price, the day's bar
# Alpaca counts 200 requests a minute per account on the trading API, and 200 a minute per key
# on free market data (Algo Trader Plus: more): one budget each, shared by its endpoints.
TRADING_LIMIT = Limit(200, 60, per="key", pool="alpaca trading")
DATA_LIMIT = Limit(200, 60, per="key", pool="alpaca market data")
RATE_LIMITS = {
    **{endpoint: TRADING_LIMIT for endpoint in (
        "GET /v2/clock", "GET /v2/account", "GET /v2/assets", "GET /v2/positions",
        "POST /v2/orders", "GET /v2/orders", "GET /v2/orders:by_client_order_id")},
    **{endpoint: DATA_LIMIT for endpoint in (
        "GET /v2/stocks/snapshots", "GET /v2/stocks/quotes/latest", "GET /v2/stocks/trades", "GET /v2/stocks/bars",
        "GET /v1beta3/crypto/us/snapshots", "GET /v1beta3/crypto/us/latest/orderbooks",
        "GET /v1beta3/crypto/us/trades", "GET /v1beta3/crypto/us/bars")},
}
STOCK_DATA, CRYPTO_DATA = "/v2/stocks", "/v1beta3/crypto/us"
ORDER_PAGE = 500                       # GET /v2/orders rows a page, at most
DATA_PAGE = 10000                      # bars or trades a page, at most
DEPTH_DEFAULT = 20                     # default levels a side of a crypto book
TRADES_DEFAULT = 100                   # trades a `trades` answer holds
STOCK_TICK = "0.01"                    # stocks trade in cents (above $1; see "Unverified")
FRACTIONAL_STEP = "0.000000001"        # a fractional share: 9 decimals
FRACTIONAL_MIN_USD = 1                 # the smallest fractional order, in USD
CRYPTO_MIN_USD = 10                    # the smallest USD-quoted crypto buy (CCXT found it live; unverified here)
DAY_MS = 86_400_000
# A stock trades about 16 of 24 hours (with the extended sessions), 5 days of 7, and some
# holidays: bars of a stock look back this many times the plain span, plus a week.
STOCK_SPAN = 6
TRADES_LOOKBACK_MS = {"crypto": DAY_MS, "us_equity": 7 * DAY_MS}

# Paper trading's maker and taker rates, {kind: (maker, taker)}: the standard (lowest tier)
# rates the exchange publishes (fee pages, 2025). Its crypto rates: its
# stocks trade commission-free (--paper-fees 0 for those).
FEES = {"spot": ("0.0015", "0.0025")}

# FMZ period in minutes -> Alpaca bar timeframe
PERIODS = {
    1: "1Min", 3: "3Min", 5: "5Min", 15: "15Min", 30: "30Min",
    60: "1Hour", 120: "2Hour", 240: "4Hour", 360: "6Hour", 720: "12Hour",
    1440: "1Day", 10080: "1Week",
}

# Alpaca order status -> FMZ status (docs: "Order Lifecycle"), every word Alpaca lists
STATUS = {
    "new": "pending",                     # routed, working
    "accepted": "pending",                # received, not routed yet (e.g. queued for the open)
    "pending_new": "pending",
    "accepted_for_bidding": "pending",
    "held": "pending",                    # a leg waiting for its parent
    "stopped": "pending",                 # a fill is guaranteed, not yet done
    "suspended": "pending",
    "pending_cancel": "pending",          # still open until the cancel is done
    "pending_replace": "pending",
    "done_for_day": "pending",            # no more fills today; works again next trading day
    "partially_filled": "partial-filled",
    "filled": "filled",
    "calculated": "closed",               # completed for the day, settlement calculations pending
    "canceled": "canceled",
    "expired": "canceled",                # its time in force ended
    "replaced": "canceled",               # a new order (new id) took its place
    "rejected": "canceled",
}

KEY_OPTIONS = ("paper", "extended", "sip")
Keys = namedtuple("Keys", "key_id secret paper extended feed")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_TIME = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?$")
_STOCK_TICKER = re.compile(r"^[A-Z0-9]{1,20}$")


def parse_keys(access_key, secret_key):
    parts = [part.strip() for part in (secret_key or "").split(",")]
    if not (access_key or "").strip() or not parts[0]:
        raise PluginError("Alpaca keys: access_key must be the API key id and secret_key the secret "
                          "(optionally followed by ,paper for the paper account)")
    options = parts[1:]
    if any(option not in KEY_OPTIONS for option in options) or len(set(options)) < len(options):
        raise PluginError("Alpaca keys: after the secret, secret_key takes only the options paper, "
                          "extended and sip, e.g. SECRET,paper")
    return Keys(access_key.strip(), parts[0], "paper" in options, "extended" in options,
                "sip" if "sip" in options else "iex")


def sign(request, keys, now_ms):
    """No signature: the key id and the secret travel as headers (over TLS) on every call."""
    request.headers.update({"APCA-API-KEY-ID": keys.key_id, "APCA-API-SECRET-KEY": keys.secret})


def check(status, reply):
    """A success is HTTP 2xx with the object itself (204 with none); an error is HTTP 4xx/5xx with
    {"code", "message"}, or only "message" (the data host's 403)."""
    if status < 400:
        return
    if isinstance(reply, dict) and (reply.get("code") or reply.get("message")):
        code, message = str(reply.get("code") or status), str(reply.get("message") or "")
    else:
        code, message = str(status), f"HTTP {status} {str(reply)[:80]}"
    if status in (401, 403) and code in ("40110000", "403"):
        message += " (check the key id and secret; keys of a paper account need ,paper after the secret)"
    raise PluginError(f"Alpaca {code}: {message}", code=code, ambiguous=status >= 500)


def server_time(api):
    """GET /v2/clock (New York time with its offset)"""
    return _ms(_trading(api, "GET", "/v2/clock").get("timestamp"))


# ---------------------------------------------------------------------------- hosts, symbols, times

def _trading(api, verb, path, params=None):
    """A call to the trading host: the paper one when the keys say ,paper."""
    return api.call(verb, path, params, signed=True, host="paper" if api.keys.paper else None)


def _market_data(api, specs, path, params=None):
    """GET on the data host for the assets `specs` (all stocks or all crypto): /v2/stocks/...
    with the key's feed, or /v1beta3/crypto/us/..., asking for them by symbols=A,B. Signed (the
    keys travel with it) but the same for every caller with these keys: per_key lets robots on
    one key share an identical read under way (_kit.SHARED_READS), never across keys."""
    stock = specs[0]["asset_class"] == "us_equity"
    query = {"symbols": ",".join(spec["alpaca_symbol"] for spec in specs), **(params or {}),
             "feed": api.keys.feed if stock else None}
    return api.get((STOCK_DATA if stock else CRYPTO_DATA) + path, query, signed=True, host="data", per_key=True)


def _data(reply, key, spec):
    """The one place a market data reply is unwrapped: {key: {SYMBOL: value}}, or {SYMBOL: value}
    as some clients read the stock snapshots (unverified, see the docstring)."""
    by_symbol = reply.get(key, reply) if isinstance(reply, dict) else {}
    value = by_symbol.get(spec["alpaca_symbol"]) if isinstance(by_symbol, dict) else None
    if value is None:
        raise PluginError(f"Alpaca has no {key} for {spec['symbol']} right now"
                          + (" (stock data comes from the IEX feed unless the key says ,sip)"
                             if spec["asset_class"] == "us_equity" else ""))
    return value


def asset(api, symbol):
    """The spec of an FMZ symbol from the cached asset list. A symbol not in it is asked of Alpaca
    alone (GET /v2/assets/{symbol}), so the answer is Alpaca's own: not found (40410000), or
    listed but not tradable."""
    spec = _listed(api).get(str(symbol))         # a failed load is its own error, not "not found"
    if spec is not None:
        return spec
    name = symbol.base if symbol.quote == "USD" else f"{symbol.base}{symbol.quote}"
    found = _trading(api, "GET", f"/v2/assets/{name}")
    raise PluginError(f"Alpaca lists {found.get('symbol', name)} as {found.get('status')} and "
                      f"{'tradable' if found.get('tradable') else 'not tradable'}: not an active asset for {symbol}")


def _listed(api):
    """{FMZ symbol: spec} of every tradable asset, from the markets cache (specs keep the
    Alpaca-only fields alpaca_symbol, asset_class and fractionable)."""
    return MARKETS.get(api, "spot")


def to_symbol(alpaca_symbol, asset_class):
    """BTC/USD -> BTC_USD; AAPL (us_equity) -> AAPL_USD; a crypto name without the slash, as
    positions give it (BTCUSD), is a coin against USD."""
    if "/" in alpaca_symbol:
        base, quote = alpaca_symbol.split("/", 1)
    elif asset_class == "crypto" and alpaca_symbol.endswith("USD"):
        base, quote = alpaca_symbol[:-3], "USD"
    else:
        base, quote = alpaca_symbol, "USD"
    return Symbol(base, quote)


def _ms(text):
    """RFC-3339 with up to nanoseconds and a zone (Z or +hh:mm) -> ms since the epoch; absent is 0."""
    found = _TIME.match(text or "")
    if not found:
        return 0
    year, month, day, hour, minute, second, fraction, zone = found.groups()
    seconds = calendar.timegm((int(year), int(month), int(day), int(hour), int(minute), int(second)))
    if zone and zone != "Z":
        sign_of = -1 if zone[0] == "+" else 1
        seconds += sign_of * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return seconds * 1000 + int((fraction or "0")[:3].ljust(3, "0"))


def _checked_order_id(order_id):
    """The order id FMZ gave back, once it is seen to be an Alpaca UUID."""
    if not _UUID.match(order_id):
        raise PluginError(f"invalid Alpaca order id {order_id[:60]!r}: expected the UUID that trade "
                          f"returned, such as 61e69015-8549-4bfd-b9c3-01e75843f47d")
    return order_id


# ---------------------------------------------------------------------------- markets

def load_markets(api, kind):
    """GET /v2/assets?status=active&asset_class=us_equity, then ...crypto (tradable ones only;
    crypto last, so it wins a name both have). Alpaca has no perpetual swaps."""
    if kind != "spot":
        return {}
    markets = {}
    for asset_class in ("us_equity", "crypto"):
        for a in _trading(api, "GET", "/v2/assets", {"status": "active", "asset_class": asset_class}):
            if a.get("tradable") and a.get("status") == "active":
                spec = _spec(a)
                if spec is not None:
                    markets[spec["symbol"]] = spec
    return markets


def _spec(a):
    """An Alpaca asset as FMZ Market fields (plus alpaca_symbol, asset_class, fractionable).

    Crypto carries its own price_increment, min_trade_increment and min_order_size; a stock
    trades in cents, in whole shares, or in 1e-9 shares (at least $1) if fractionable."""
    crypto = a.get("class") == "crypto"
    if not crypto and not _STOCK_TICKER.match(a.get("symbol", "")):
        return None                                   # BRK.B and the like: no FMZ symbol for them
    symbol = to_symbol(a.get("symbol", ""), a.get("class"))
    fractionable = bool(a.get("fractionable"))
    if crypto:
        tick, lot = number_or_zero(a.get("price_increment")), number_or_zero(a.get("min_trade_increment"))
        minimum = number_or_zero(a.get("min_order_size"))
        min_notional = number_or_zero(CRYPTO_MIN_USD if symbol.quote == "USD" else None)
    else:
        tick, lot = number_or_zero(STOCK_TICK), number_or_zero(FRACTIONAL_STEP if fractionable else 1)
        minimum, min_notional = lot, number_or_zero(FRACTIONAL_MIN_USD if fractionable else None)
    return market(symbol, tick, lot, min_qty=minimum, min_notional=min_notional, alpaca_symbol=a["symbol"],
                  asset_class="crypto" if crypto else "us_equity", fractionable=fractionable)


def markets(api):
    """GET /v2/assets (every tradable stock, ETF and crypto pair, through the markets cache; no raw)"""
    return markets_answer(api, ("spot",))


# ---------------------------------------------------------------------------- market data

def ticker(api, symbol):
    """GET /v2/stocks/snapshots (feed) or GET /v1beta3/crypto/us/snapshots: latest quote, latest
    trade and the daily bar in one call"""
    spec = asset(api, symbol)
    reply = _market_data(api, [spec], "/snapshots")
    return _ticker(spec, _data(reply, "snapshots", spec)), reply


def _ticker(spec, snapshot):
    quote, trade = snapshot.get("latestQuote") or {}, snapshot.get("latestTrade") or {}
    day = snapshot.get("dailyBar") or {}
    return {
        "symbol": spec["symbol"],
        "buy": float_or_zero(quote.get("bp")), "sell": float_or_zero(quote.get("ap")),
        "high": float_or_zero(day.get("h")), "low": float_or_zero(day.get("l")),
        "open": float_or_zero(day.get("o")), "last": float_or_zero(trade.get("p")),
        "vol": float_or_zero(day.get("v")), "time": _ms(quote.get("t") or trade.get("t")),
    }


def tickers(api, symbol=None):
    """GET /v1beta3/crypto/us/snapshots (every crypto pair) and GET /v2/stocks/snapshots of the
    stocks held (GET /v2/positions): the thousands of listed stocks are too many to ask unasked.
    A range such as USDT keeps the pairs of that quote; one symbol is that symbol's ticker."""
    if symbol is not None and symbol.base:
        data, raw = ticker(api, symbol)
        return [data], raw
    listed = _listed(api)
    crypto = [spec for spec in listed.values() if spec["asset_class"] == "crypto"]
    held = [str(to_symbol(p.get("symbol", ""), "us_equity"))
            for p in _trading(api, "GET", "/v2/positions") or [] if p.get("asset_class") == "us_equity"]
    stocks = [listed[name] for name in held if name in listed]
    rows, replies = [], []
    for group in (crypto, stocks):
        group = [spec for spec in group if symbol is None or spec["quote_asset"] == symbol.quote]
        if not group:
            continue
        reply = _market_data(api, group, "/snapshots")
        replies.append(reply)
        for spec in group:
            snapshot = _snapshot(reply, spec)
            if snapshot is not None:
                rows.append(_ticker(spec, snapshot))
    return rows, one_or_all(replies) if replies else None


def _snapshot(reply, spec):
    try:
        return _data(reply, "snapshots", spec)
    except PluginError:
        return None                   # Alpaca has no snapshot of it now: left out of the list


def depth(api, symbol, limit=None):
    """GET /v1beta3/crypto/us/latest/orderbooks (the whole book; `limit` levels a side, default 20).
    A stock has no book in Alpaca's data: GET /v2/stocks/quotes/latest gives its best bid and ask,
    one level a side."""
    spec = asset(api, symbol)
    if spec["asset_class"] == "us_equity":
        reply = _market_data(api, [spec], "/quotes/latest")
        quote = _data(reply, "quotes", spec)
        asks = [[number_or_zero(quote.get("ap")), number_or_zero(quote.get("as"))]]
        bids = [[number_or_zero(quote.get("bp")), number_or_zero(quote.get("bs"))]]
        return {"time": _ms(quote.get("t")), "asks": [a for a in asks if a[0]], "bids": [b for b in bids if b[0]]}, reply
    reply = _market_data(api, [spec], "/latest/orderbooks")
    book = _data(reply, "orderbooks", spec)
    asks = sorted(book_levels(book.get("a"), price="p", amount="s"))[:limit or DEPTH_DEFAULT]
    bids = sorted(book_levels(book.get("b"), price="p", amount="s"), reverse=True)[:limit or DEPTH_DEFAULT]
    return {"time": _ms(book.get("t")), "asks": asks, "bids": bids}, reply


def trades(api, symbol):
    """GET /v2/stocks/trades or GET /v1beta3/crypto/us/trades (the latest 100 of the last
    day for crypto, the last week for a stock; answered oldest first). Crypto trades
    say the taker's side (tks B/S); stock trades do not, so a stock trade is a buy when its price
    is not below the one before (the tick test)."""
    spec = asset(api, symbol)
    start = api.now() - TRADES_LOOKBACK_MS[spec["asset_class"]]
    reply = _market_data(api, [spec], "/trades", {"start": iso_ms(start), "limit": TRADES_DEFAULT, "sort": "desc"})
    answer, previous = [], None
    for t in reversed(_data(reply, "trades", spec) or []):
        answer.append(_trade(t, previous))
        previous = answer[-1]["price"]
    return answer, reply


def _trade(t, previous):
    """A trade row; the side is the taker's (tks) or, for a stock, the tick test against the
    `previous` trade's price."""
    price = float_or_zero(t.get("p"))
    side = {"B": "buy", "S": "sell"}.get(t.get("tks")) or ("sell" if previous and price < previous else "buy")
    return {"id": str(t.get("i", "")), "time": _ms(t.get("t")), "price": price,
            "amount": float_or_zero(t.get("s")), "type": side}


def records(api, symbol, period=60, limit=None):
    """GET /v2/stocks/bars or GET /v1beta3/crypto/us/bars (newest first with sort=desc, paged with
    next_page_token; answered oldest first). A stock has bars only while it trades, so its start
    looks further back (STOCK_SPAN)."""
    timeframe = PERIODS.get(period)
    if timeframe is None:
        raise PluginError(f"Alpaca has no {period}-minute bars; periods: {', '.join(map(str, PERIODS))}")
    spec = asset(api, symbol)
    wanted, span = limit or 100, period * 60_000
    back = wanted * span + span if spec["asset_class"] == "crypto" else wanted * span * STOCK_SPAN + 7 * DAY_MS
    query = {"timeframe": timeframe, "start": iso_ms(api.now() - back), "sort": "desc"}
    rows, pages, token = [], [], None
    while len(rows) < wanted:
        reply = _market_data(api, [spec], "/bars", {**query, "limit": min(wanted - len(rows), DATA_PAGE),
                                                  "page_token": token})
        pages.append(reply)
        bars = (reply.get("bars") or {}).get(spec["alpaca_symbol"]) or []
        rows += candle_rows([_ms(b.get("t")) or None, b.get("o"), b.get("h"), b.get("l"), b.get("c"), b.get("v")]
                            for b in bars)
        token = reply.get("next_page_token")
        if not bars or not token:
            break
    rows.sort(key=lambda row: row[0])
    return rows[-wanted:], one_or_all(pages)


# ---------------------------------------------------------------------------- account

def accounts(api):
    """GET /v2/account (USD cash) and GET /v2/positions (every holding as a currency: AAPL, BTC,
    USDT...). Cash is free; what open orders hold is equity less the positions' market value less
    cash (Alpaca's cash already leaves those holds out, as CCXT found live). A position's free part
    is qty_available, the rest is held by open sell orders."""
    account = _trading(api, "GET", "/v2/account")
    positions = _trading(api, "GET", "/v2/positions")
    cash = number_or_zero(account.get("cash"))
    held = (number_or_zero(account.get("equity")) - number_or_zero(account.get("long_market_value"))
            - number_or_zero(account.get("short_market_value")) - cash)
    rows = [{"currency": account.get("currency") or "USD", "free": cash, "frozen": max(held, number_or_zero(0))}]
    for p in positions or []:
        qty, available = number_or_zero(p.get("qty")), number_or_zero(p.get("qty_available"))
        rows.append({"currency": to_symbol(p.get("symbol", ""), p.get("asset_class")).base,
                     "free": available, "frozen": qty - available})
    return rows, {"account": account, "positions": positions}


assets = accounts


# ---------------------------------------------------------------------------- trading

def trade(api, symbol, order_type, price, amount):
    """POST /v2/orders (limit orders by qty; price None = market; a market buy spends `amount`
    USD, Alpaca's notional). Time in force: crypto gtc; a stock day when the order is a market
    order, fractional or extended-hours, gtc for a whole-share limit order (it rests until canceled)."""
    spec = asset(api, symbol)
    stock = spec["asset_class"] == "us_equity"
    market_buy = price is None and order_type == "buy"
    if market_buy and stock and not spec["fractionable"]:
        raise PluginError(f"Alpaca: {spec['alpaca_symbol']} is not fractionable, so it cannot be bought "
                          f"for a USD amount (a market buy); buy whole shares with a limit order")
    px, size = order_size(api, symbol, price, amount, quote_amount=market_buy)
    extended = stock and price is not None and api.keys.extended
    body = {"symbol": spec["alpaca_symbol"], "side": order_type, "type": "market" if price is None else "limit",
            "time_in_force": _time_in_force(spec, price, size, market_buy, extended),
            "client_order_id": new_client_id(), "limit_price": px,
            "notional" if market_buy else "qty": size, "extended_hours": True if extended else None}

    def send():
        reply = _trading(api, "POST", "/v2/orders", body)
        return {"id": reply["id"]}, reply

    def find():
        try:
            reply = _trading(api, "GET", "/v2/orders:by_client_order_id", {"client_order_id": body["client_order_id"]})
        except PluginError as error:
            if error.code == "40410000":
                return None
            raise
        return {"id": reply["id"]}, reply

    try:
        return place_once(send, find, api, body["client_order_id"], ids_never_reused=True)
    except PluginError as error:
        if stock and not error.ambiguous and not error.rate_limited:
            raise PluginError(f"{error}{_why_refused(api, error)}", code=error.code) from None
        raise


def _time_in_force(spec, price, size, market_buy, extended):
    if spec["asset_class"] == "crypto":
        return "gtc"
    whole_shares = "." not in size            # size is order_size's exact text, e.g. "2" or "0.5"
    return "gtc" if price is not None and whole_shares and not market_buy and not extended else "day"


def _why_refused(api, error):
    """What a trader needs to know beside Alpaca's refusal of a stock order: pattern day trader
    protection, or the market being closed (GET /v2/clock)."""
    if error.code == "40310100":
        return (" (pattern day trader protection: with under $25,000 equity an account may make only "
                "3 day trades in 5 business days)")
    try:
        clock = _trading(api, "GET", "/v2/clock")
    except PluginError:
        return ""
    if clock.get("is_open") is False:
        return f" (the US stock market is closed now; it opens {clock.get('next_open', 'next trading day')})"
    return ""


def orders(api, symbol=None):
    """GET /v2/orders?status=open (every page, newest first: `until` the last one's submitted_at)"""
    query = {"status": "open", "symbols": asset(api, symbol)["alpaca_symbol"] if symbol else None}
    rows, pages = _order_pages(api, query, None, "desc")
    return [_order(o) for o in rows], one_or_all(pages)


def order(api, order_id, symbol=None):
    """GET /v2/orders/{order_id}"""
    reply = _trading(api, "GET", f"/v2/orders/{_checked_order_id(order_id)}")
    return _order(reply), reply


def historyorders(api, symbol, since=None, limit=None):
    """GET /v2/orders?status=closed: with `since` the first `limit` (default 100) from then on
    (direction asc, after=since), else the latest `limit`; oldest first"""
    query = {"status": "closed", "symbols": asset(api, symbol)["alpaca_symbol"],
             "after": iso_ms(since) if since else None}
    direction = "asc" if since else "desc"
    rows, pages = _order_pages(api, query, limit or 100, direction)
    if direction == "desc":
        rows.reverse()                # Alpaca's own order, to the nanosecond, made oldest first
    return [_order(o) for o in rows], one_or_all(pages)


def _order_pages(api, query, wanted, direction):
    """Page GET /v2/orders by submitted_at (after for asc, until for desc: exclusive, and exact to
    the nanosecond as Alpaca gives it) until a short page or `wanted` rows."""
    rows, pages = [], []
    cursor = "after" if direction == "asc" else "until"
    while wanted is None or len(rows) < wanted:
        size = ORDER_PAGE if wanted is None else min(wanted - len(rows), ORDER_PAGE)
        page_query = {**query, "limit": size, "direction": direction, "nested": "false"}
        if rows:
            page_query[cursor] = rows[-1].get("submitted_at")
        reply = _trading(api, "GET", "/v2/orders", page_query)
        pages.append(reply)
        rows += reply or []
        if len(reply or []) < size:
            break
    return rows, pages


def cancel(api, order_id, symbol=None):
    """DELETE /v2/orders/{order_id} (204; sent once, and when its answer is lost the order is looked up)"""
    path = f"/v2/orders/{_checked_order_id(order_id)}"

    def send():
        return True, _trading(api, "DELETE", path)

    return cancel_once(send, lambda: order(api, order_id), api)


def io(api, http_method, path, params):
    """exchange.IO("api", VERB, path, query): any Trading API path (paper with ,paper), with the
    key headers; the reply unchanged (None for a 204)."""
    reply = _trading(api, http_method, path, params)
    return reply, reply


def _order(o):
    notional = o.get("qty") in (None, "")
    return {
        "id": o.get("id", ""),
        "symbol": str(to_symbol(o.get("symbol", ""), o.get("asset_class"))),
        "amount": number_or_zero(o.get("notional") if notional else o.get("qty")),
        "price": number_or_zero(o.get("limit_price")),
        "deal_amount": number_or_zero(o.get("filled_qty")),
        "avg_price": number_or_zero(o.get("filled_avg_price")),     # null until something filled
        "type": o.get("side", ""),
        "offset": "", "contract_type": "",
        "time": _ms(o.get("created_at")),
        "status": STATUS.get(o.get("status"), o.get("status", "")),
    }


# ---------------------------------------------------------------------------- stream (exchanges/_stream.py)

def stream_route(api, symbol, method, period):
    """(endpoint, topic) of a method's channel: the asset list says whether the symbol is a coin
    (the crypto endpoint) or a stock (the key's feed; no depth: REST). Topic (method, BTC/USD).
    Candles stay REST."""
    if method == "records":
        return None
    spec = asset(api, symbol)
    if spec["asset_class"] == "crypto":
        return "crypto", (method, spec["alpaca_symbol"])
    return (api.keys.feed, (method, spec["alpaca_symbol"])) if method != "depth" else None


def stream_login(keys):
    """{"action": "auth", "key", "secret"}: the robot's own key (one connection per key)."""
    return [json.dumps({"action": "auth", "key": keys.key_id, "secret": keys.secret})]


def stream_subscribe(topics):
    """{"action": "subscribe", "quotes": ["BTC/USD"], "trades": [...], "dailyBars": [...],
    "orderbooks": [...]}: a ticker takes quotes, trades and the daily bar, trades the trades,
    depth the crypto book."""
    return [_action("subscribe", topics, TICKER_CHANNELS)]


def stream_unsubscribe(topics):
    """As subscribe; a ticker leaves the trades channel on (a trades topic of the symbol may still
    read it; unread pushes are ignored)."""
    return [_action("unsubscribe", topics, ("quotes", "dailyBars"))]


def _action(action, topics, ticker_channels):
    channels = {}
    for method, name in topics:
        for channel in {"ticker": ticker_channels, "trades": ("trades",), "depth": ("orderbooks",)}[method]:
            channels.setdefault(channel, []).append(name)
    return json.dumps({"action": action, **{channel: sorted(set(names)) for channel, names in channels.items()}})


def stream_ping():
    """No keepalive message of Alpaca's own: a WebSocket ping frame."""
    return None


def stream_read(message, feed):
    """One message from Alpaca: an array of {"T": ...}: success (connected, authenticated), error
    (a refused login or limit: the status says why), subscription, q, t, d, o."""
    for item in json.loads(message):
        kind = item.get("T")
        if kind == "success" and item.get("msg") == "authenticated":
            feed.logged_in()
        elif kind == "error":
            feed.refused(f"Alpaca {item.get('code')}: {str(item.get('msg'))[:100]}")
        elif kind == "subscription":
            for method, channel in (("ticker", "quotes"), ("trades", "trades"), ("depth", "orderbooks")):
                for name in item.get(channel) or ():
                    feed.subscribed((method, name))
        elif kind in STREAM_READERS:
            STREAM_READERS[kind](item, feed)


def _read_quote(item, feed):
    _ticker_part(feed, item, "quote")


def _read_day(item, feed):
    _ticker_part(feed, item, "day")


def _read_trade(item, feed):
    """A trade: one more row for the trades topic, and the ticker's last price (a trade without
    an id or a price is no trade)."""
    if item.get("i") is None or item.get("p") is None:
        return
    name = item.get("S")
    parts = feed.state(("trades", name))
    row = _trade(item, parts.get("previous"))
    parts["previous"] = row["price"]
    feed.trades(("trades", name), [row], item)
    _ticker_part(feed, item, "trade")


def _ticker_part(feed, item, part):
    """The ticker is REST's snapshot made of the latest quote, trade and daily bar: it answers
    once a quote and a daily bar came; the last price is the newer of the last trade and the
    daily bar's close."""
    topic = ("ticker", item.get("S"))
    parts = feed.state(topic)
    parts[part] = item
    quote, day, trade = parts.get("quote"), parts.get("day"), parts.get("trade")
    if quote is None or day is None:
        return
    last = trade if trade is not None and _ms(trade.get("t")) >= _ms(day.get("t")) else {"p": day.get("c"), "t": day.get("t")}
    spec = {"symbol": str(to_symbol(item.get("S", ""), "crypto" if "/" in item.get("S", "") else "us_equity"))}
    feed.ticker(topic, _ticker(spec, {"latestQuote": quote, "latestTrade": last, "dailyBar": day}), item)


def _read_book(item, feed):
    """A crypto book: "r" true is the whole book, else changed levels (size 0 removes); changes
    before a whole book are ignored."""
    topic = ("depth", item.get("S"))
    book = feed.book(topic)
    if book is None:
        return
    rows = lambda side: [[str(level.get("p")), str(level.get("s"))] for level in item.get(side) or ()]
    if item.get("r"):
        book.reset(rows("a"), rows("b"))
        book.sequence = 0
    elif book.sequence is None:
        return
    else:
        book.apply(rows("a"), rows("b"))
    book.time = _ms(item.get("t"))
    feed.depth(topic, item)


STREAM_READERS = {"q": _read_quote, "t": _read_trade, "d": _read_day, "o": _read_book}


METHODS = {
    "markets": markets,
    "ticker": ticker,
    "tickers": tickers,
    "depth": depth,
    "trades": trades,
    "records": records,
    "accounts": accounts,
    "assets": assets,
    "trade": trade,
    "orders": orders,
    "order": order,
    "historyorders": historyorders,
    "cancel": cancel,
    "__api_": io,
}
