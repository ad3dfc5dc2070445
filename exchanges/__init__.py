"""The exchanges this plugin serves, registered by name: `POST /OKX` is served by `exchanges/okx.py`.

This folder holds the venues and what the venues share:
    okx.py, binance.py, ...  one exchange each, method by method, registered in EXCHANGES below.
    _kit.py                  errors, symbols, numbers, the transport (Pool, Request, Api),
                             single-flight shared reads and the caches (markets, account settings).
    _throttle.py             the client-side rate limit: RATE_LIMITS read as Limits, the Throttle.
    _orders.py               order sizes, and placing and canceling orders exactly once.
    _paper.py                paper trading: a simulated venue, served where an exchange would be
                             (private methods on a simulated account, public ones from the real
                             exchange), so it lives beside the venues it stands in for.
    _risk.py                 the risk guard: it stands between dispatch and a venue (a trade or
                             margin_level passes it before the exchange module's or _paper's
                             handler runs), and counts open orders and positions through the
                             venue's own handlers.
None of them names an exchange; the underscore says they are not in EXCHANGES.

Adding an exchange is one module in this folder plus one line in EXCHANGES below; the core
(fmz_plugin.py) and the shared modules never name an exchange. The contract an exchange module fulfils (Contract v2),
naming only what every module has:

Constants, every one declared (no defaults are assumed)
    NAME              how the exchange is written in messages and in the banner ("OKX").
    BASE_URL          the default REST host; `--base-url NAME=URL` replaces it (testnet, proxy, fake).
    HOSTS             {"futures": URL} of other REST hosts, reached with `api.get(..., host="futures")`
                      and replaced alone by `--base-url NAME.futures=URL`; {} when there are none.
    POST_PARAMS       "json": a POST's params travel as a JSON body; "query": in the query string
                      (GET and DELETE params always do). _kit builds the request so; sign() only signs.
    CLOCK_ERRORS      error codes (strings) for "timestamp out of window": _kit.Api resyncs the clock
                      (CLOCK_OFFSETS) and sends once more.
    RATE_LIMIT_ERRORS codes for "too many requests": a read waits once and is retried.
    AMBIGUOUS_ERRORS  codes meaning "outcome unknown, the order may exist": _kit.Api marks them
                      ambiguous whatever the HTTP status, so place_once looks the order up.
    RATE_LIMITS       {"VERB /path": (requests, seconds)}: the exchange's documented limits, which
                      _throttle.THROTTLE keeps each key (signed calls) or the process (public) under; a
                      value may instead be a _throttle.Limit (or a list of them) saying what the
                      exchange counts it per (IP, key, key + instrument) and a call's weight. A
                      key may be a template, "GET /v2/{market}/book": every path it matches is
                      that one endpoint, and {market} a param for the Limit's `per` and `cost`.
    PERIODS           {minutes: the exchange's name of that candle period}: the periods `records`
                      serves; the core reads every module's to know a period in minutes from one
                      in seconds (fmz_plugin.MINUTE_PERIODS).
    FEES              {kind: (maker, taker)} as decimal strings, the exchange's standard rates,
                      which paper trading (_paper) charges on that kind's fills.

Functions the core and _kit.Api call
    parse_keys(access_key, secret_key) -> keys   the docker's two strings; any object the
                                                 module's sign() understands.
    sign(request, keys, now_ms)                  the one place the signing scheme lives: adds
                                                 headers or query fields to the _kit.Request;
                                                 writes request.deadline / request.window_ms, when
                                                 set, as the exchange's validity deadline (OKX
                                                 expTime, a recvWindow).
    check(status, reply)                         the one place the exchange's error codes
                                                 become a PluginError(message, code=code).
    server_time(api) -> ms                       the exchange's clock, for CLOCK_ERRORS.
    load_markets(api, kind) -> {symbol: spec}    instrument specs for _kit.MARKETS ("spot"/"swap"):
                                                 _kit.MARKET_FIELDS with Decimal values, optionally
                                                 `quote_step`; `_kit.markets_answer(api, kinds)`
                                                 serves `markets`, `_kit.market_spec` one spec.
Each module also opens its replies' envelope in one private place, `_data(reply)`.
Account settings read before trading (a position mode) are kept per key in _kit.ACCOUNT_SETTINGS.
Calls go through `api.get(path, params, *, signed, host=None)`, `api.post(path, body, *, signed,
idempotent=False, host=None, deadline=False)` and `api.call(method, path, params, *, signed, ...)`:
`signed=` is required; `deadline=True` (orders, and cancels where the exchange takes one) has the
request carry the exchange's validity deadline, --timeout after signing.

Protocol handlers, listed in the module's METHODS dict (exchange.IO under "__api_")
    Each is `handler(api, **params)` and returns `(data, raw)`: `data` in the FMZ shape of
    that method, written once as the answer contract in fmz_plugin.py (ANSWERS, and its
    structures TICKER, DEPTH, TRADE, RECORD, BALANCE, ORDER, MARKET, POSITION, FUNDING: every
    field, its unit, whether it is required), `raw` the exchange's own reply (several:
    `_kit.one_or_all(replies)`). Parameters arrive parsed and checked: `symbol` a _kit.Symbol,
    prices and amounts Decimal (price None for a market order), limits and times int (None when
    the docker sent none). A method the module does not list is answered "<NAME> does not
    support <method>".
    `trade(api, symbol, order_type, price, amount)`: order_type is FMZ's buy, sell, closebuy or
    closesell; a spot market buy's amount is quote currency; answers {"id": ...}, an id that
    carries what order and cancel need. `_orders.order_size` rounds; `_orders.place_once(send, find,
    api, client_id)` places exactly once (send with deadline=True; find looks the client id up,
    None when absent) and `_orders.cancel_once(send, lookup, api)` cancels, each explaining a lost
    or refused answer by looking the order up (see their docstrings for the model). The core
    refuses, before any handler runs, a close type on a spot symbol and a swap-only method
    (positions, margin_level, fundings) on a spot symbol.
    Every order (order, orders, historyorders) is exactly fmz_plugin.ORDER: {"id", "symbol"
    (FMZ form), "amount", "price", "deal_amount", "avg_price", "type": "buy" | "sell" (the side
    that went to the book: a close-long is "sell"), "offset": "open" | "close" for swaps and ""
    for spot, "contract_type": "swap" | "", "time": the creation time in ms (int), "status"
    (FMZ's words)}.

Stream dialect (market data from the exchange's WebSocket; exchanges/_stream.py runs it)
    STREAM_URLS       {endpoint: default wss:// URL}, e.g. {"public": "wss://ws.okx.com:8443/ws/v5/public"};
                      {} when the exchange does not stream (the rest of this section is then unused).
                      `--base-url NAME.ws=ws://HOST:PORT` moves every endpoint's scheme, host and port
                      (its path stays, after the host's own path if one is given), `NAME.ws.ENDPOINT=`
                      one endpoint.
    STREAM_LOGIN      endpoints whose connection must log in (Alpaca's data stream; private streams):
                      they get the robot's parsed keys, one connection per key; every other endpoint
                      is public and never sees a key.
    STREAM_KEEPALIVE  seconds without a message before stream_ping() is sent.
    STREAM_SILENCE    seconds without any message after which the connection is dead and replaced.
    STREAM_CONNECTS   (connection requests, seconds): the exchange's limit per IP; reconnects wait for it.
    STREAM_REQUESTS   (messages, seconds): subscribe, unsubscribe and login messages one connection
                      may send (the exchange's limit; keepalive not counted); a subscription with no
                      room waits its turn while REST answers.
    STREAM_TOPICS     channels one connection carries; more open another connection.
    STREAM_DEPTH      levels a side the depth channel keeps; a deeper request goes to REST.
    DEPTH_DEFAULT, TRADES_DEFAULT, RECORDS_DEFAULT   the levels / trades / candles REST answers
                      when the docker gave no limit (the REST handlers use them too, so both paths
                      answer alike).
    stream_topic(symbol, method, period) -> (endpoint, topic) | None    the channel of "ticker",
                      "depth", "trades" or "records" (of `period` minutes; None for the others) for
                      one symbol; `topic` is any hashable the dialect reads back (OKX: ("tickers",
                      "BTC-USDT")); None: that method is not streamed (REST answers).
    stream_route(api, symbol, method, period) -> (endpoint, topic) | None   in place of stream_topic,
                      for a dialect that needs the exchange's listing or the robot's keys to tell
                      (Alpaca: a stock or a coin, the key's feed); a PluginError means REST answers.
    stream_subscribe(topics) -> [text]   the messages that subscribe these topics;
    stream_unsubscribe(topics) -> [text] and unsubscribe them.
    stream_ping() -> text | None          the keepalive message (None: a WebSocket ping frame).
    stream_login(keys) -> [text]          the login messages (only for STREAM_LOGIN endpoints; the
                      dialect calls feed.logged_in() on the exchange's answer).
    stream_read(message, feed)            one received message (str, or bytes of a binary frame:
                      `_websocket.inflated` opens gzip) into the local copy, through the Feed:
                      feed.subscribed(topic) when the exchange confirms; feed.ticker(topic, ticker,
                      raw) with the REST handler's FMZ ticker; feed.book(topic) -> a _stream.Book to
                      reset(asks, bids) on a snapshot or apply(asks, bids) an update (rows [price
                      text, size text, ...], size 0 removes; book.time = the event's ms,
                      book.sequence free for the dialect's update ids), then feed.depth(topic, raw);
                      feed.trades(topic, rows, raw) with FMZ trade rows, oldest first;
                      feed.candles(topic, rows, raw) with FMZ records rows, oldest first (the
                      candle still open replaces the row of its time);
                      feed.resync(topic, why) when a sequence gap or a checksum says the book is
                      wrong (the manager unsubscribes and subscribes again for a fresh snapshot);
                      feed.topic_named(name, names_of) the topic whose exchange names include
                      `name` (a push that names the exchange's stream, not its topic);
                      feed.state(topic), a dict kept with the local copy for what the dialect
                      needs between messages (a ticker updated by deltas, or made of two of the
                      exchange's channels); feed.send(text) for a message the exchange expects
                      in answer (BingX's "Pong", a snapshot request); feed.reconnect(why) when
                      the exchange announces it will close the connection; feed.logged_in() when
                      the exchange took the login of a STREAM_LOGIN endpoint (its subscriptions wait
                      for it); feed.refused(why) when the exchange refuses the connection (a login it
                      does not take, a connection limit: Alpaca's 402, 406): the status shows `why`
                      (never a secret) while REST answers and the connection is retried with backoff.
                      Data for a topic confirms its subscription too (Binance's and Bybit's acks
                      do not name the topic). Pongs, acks of unsubscribe and notices need no call.
    The manager does everything else (connect, subscribe on first request, answer only while
    live, drop and reconnect, idle unsubscribe, status); a dialect never opens a socket.

Errors
    Raise _kit.PluginError with a message a trader can act on; anything else is a bug and is
    answered "internal error" by the core.
"""
from exchanges import alpaca, binance, bingx, bitvavo, blofin, bybit, coinbase, okx

EXCHANGES = {
    "okx": okx,
    "binance": binance,
    "bybit": bybit,
    "bingx": bingx,
    "bitvavo": bitvavo,
    "alpaca": alpaca,
    "blofin": blofin,
    "coinbase": coinbase,
}
